"""Where the jobs run: cluster settings, the Dask client, and the block loop on Dask."""

from plankton_store.cluster._blocks import run_blocks, run_id
from plankton_store.cluster._config import (
    CONFIG_ENV,
    CONFIG_KEY,
    DEFAULTS,
    KINDS,
    ClusterConfigError,
    load_cluster_config,
)
from plankton_store.cluster._local import (
    QUIET_HOUSEKEEPING,
    WORKER_ENVIRONMENT,
    dask_client,
    local_cluster,
)

__all__ = [
    "CONFIG_ENV",
    "CONFIG_KEY",
    "DEFAULTS",
    "KINDS",
    "QUIET_HOUSEKEEPING",
    "WORKER_ENVIRONMENT",
    "ClusterConfigError",
    "dask_client",
    "load_cluster_config",
    "local_cluster",
    "run_blocks",
    "run_id",
]
