"""The plankton store: its format, how it is planned, built, written and read.

:mod:`plankton_store.store.format` defines every array, code table and attribute key;
:func:`build_store` turns an export into a store on a Dask cluster (plan on the client, one
task per shard on the workers); :func:`open_store` reads it.
"""

from plankton_store.store import format
from plankton_store.store._block import BlockResult, BlockTask, block_tasks, run_block
from plankton_store.store._build import (
    BuildSummary,
    StoreExistsError,
    aligned_features,
    build_store,
    format_summary,
    staging_path,
)
from plankton_store.store._ingest import (
    IngestStateError,
    IngestSummary,
    format_ingest,
    ingest_store,
)
from plankton_store.store._open import (
    IncompleteStoreError,
    PlanktonStore,
    StoreFormatError,
    is_store,
    open_store,
    store_state,
)
from plankton_store.store._plan import (
    DEFAULT_AUGMENTATIONS,
    DEFAULT_DROP_CLASSES,
    PLANNERS,
    BuildOptions,
    BuildPlan,
    count_by_class_and_split,
    make_plan,
)
from plankton_store.store._plan_hashed import PartitionedPlan, plan_partitioned, plan_table
from plankton_store.store._versions import find_version, segments, written_mask
from plankton_store.store._write import (
    StoreLayout,
    block_array_names,
    block_checksum,
    create_store,
    finalize_store,
    verify_blocks,
    write_block,
)
from plankton_store.store.format import Attr, Split

__all__ = [
    "DEFAULT_AUGMENTATIONS",
    "DEFAULT_DROP_CLASSES",
    "PLANNERS",
    "Attr",
    "BlockResult",
    "BlockTask",
    "BuildOptions",
    "BuildPlan",
    "BuildSummary",
    "IncompleteStoreError",
    "IngestStateError",
    "IngestSummary",
    "PartitionedPlan",
    "PlanktonStore",
    "Split",
    "StoreExistsError",
    "StoreFormatError",
    "StoreLayout",
    "aligned_features",
    "block_array_names",
    "block_checksum",
    "block_tasks",
    "build_store",
    "count_by_class_and_split",
    "create_store",
    "finalize_store",
    "find_version",
    "format_ingest",
    "format",
    "format_summary",
    "ingest_store",
    "is_store",
    "make_plan",
    "open_store",
    "plan_partitioned",
    "plan_table",
    "run_block",
    "segments",
    "staging_path",
    "store_state",
    "verify_blocks",
    "write_block",
    "written_mask",
]
