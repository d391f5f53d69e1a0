"""The cluster settings: ``cluster.yaml``, Dask's config and their defaults.

Settings come, in order of precedence, from command-line options, the cluster config file
(``cluster.yaml``, dask-config style, key ``plankton-jobs.cluster``) and Dask's own config.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dask.config
import yaml


class ClusterConfigError(ValueError):
    """A cluster setting is missing, unknown or malformed; the message names it."""


CONFIG_ENV = "PLANKTON_JOBS_CLUSTER_CONFIG"
CONFIG_KEY = "plankton-jobs.cluster"
DEFAULTS: dict[str, Any] = {
    "scheduler-address": None,
    "n-workers": 2,
    "threads-per-worker": 1,
    "memory-limit": "auto",
    "dashboard-address": ":8787",
    "worker-profiler": False,
    # Batch-scheduler clusters (kind slurm or pbs, through dask-jobqueue).
    "kind": "local",
    "cores": 1,
    "memory": "2GiB",
    "walltime": "01:00:00",
    "queue": None,
    "account": None,
    "job-extra-directives": [],
    "job-script-prologue": [],
    "python": None,
    "interface": None,
    "log-directory": None,
    "minimum-workers": None,
    "maximum-workers": None,
    "worker-timeout": 600,
}

#: The cluster kinds: a local cluster (or an existing scheduler), or worker jobs of a batch
#: scheduler that the job submits and cancels itself.
KINDS = ("local", "slurm", "pbs")


def load_cluster_config(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Cluster settings: DEFAULTS, overlaid with Dask's config, overlaid with the config file.

    The file is ``path``, else ``$PLANKTON_JOBS_CLUSTER_CONFIG``, else ``./cluster.yaml`` when
    it exists.
    """
    settings = {
        **DEFAULTS,
        **_section(dask.config.get(CONFIG_KEY, default={}), f"Dask config {CONFIG_KEY}"),
    }
    candidate = path or os.environ.get(CONFIG_ENV)
    if candidate is None and Path("cluster.yaml").is_file():
        candidate = "cluster.yaml"
    if candidate is not None:
        file = Path(candidate)
        if not file.is_file():
            raise ClusterConfigError(f"cluster config {file} does not exist")
        try:
            data = yaml.safe_load(file.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ClusterConfigError(f"cluster config {file} is not valid YAML: {exc}") from None
        section = data.get("plankton-jobs", {}).get("cluster", {}) if isinstance(data, dict) else {}
        settings.update(_section(section, f"cluster config {file}"))
    settings["worker-profiler"] = flag(settings["worker-profiler"], "worker-profiler")
    check_kind(settings["kind"])
    return settings


def check_kind(kind: Any) -> str:
    """``kind`` if it is one of :data:`KINDS`; else fail naming the setting."""
    if kind not in KINDS:
        raise ClusterConfigError(f"kind: {kind!r} is not one of {', '.join(KINDS)}")
    return kind


def _section(section: Any, where: str) -> dict[str, Any]:
    """A ``plankton-jobs.cluster`` section, its keys spelt as in DEFAULTS.

    Dask's config treats ``_`` and ``-`` in keys alike, and the environment variables it
    reads (``DASK_PLANKTON_JOBS__CLUSTER__N_WORKERS``) can only spell them ``_``.
    """
    settings = {str(key).replace("_", "-"): value for key, value in (section or {}).items()}
    unknown = set(settings) - set(DEFAULTS)
    if unknown:
        known = sorted(DEFAULTS)
        raise ClusterConfigError(f"{where}: unknown keys {sorted(unknown)}; known: {known}")
    return settings


def flag(value: Any, key: str) -> bool:
    """A yes/no setting: a YAML boolean, or text from an environment variable."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0"):
        return False
    raise ClusterConfigError(f"cluster config key {key}: {value!r} is not true or false")
