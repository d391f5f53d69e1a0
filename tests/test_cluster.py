"""The jobs' Dask set-up: local clusters and their settings from the cluster config."""

from __future__ import annotations

import click
import dask.config
import pytest

from jobs.cluster import dask_client, load_cluster_config


def _profiling(dask_worker) -> bool:
    return "profile" in dask_worker.periodic_callbacks


@pytest.mark.parametrize("profiler", [None, True])
def test_local_workers_run_without_dask_profiler_unless_the_config_asks(tmp_path, profiler):
    config = tmp_path / "cluster.yaml"
    lines = ["plankton-jobs:", "  cluster:", "    dashboard-address: ':0'"]
    if profiler is not None:
        lines.append(f"    worker-profiler: {str(profiler).lower()}")
    config.write_text("\n".join(lines) + "\n")
    assert load_cluster_config(config)["worker-profiler"] is bool(profiler)
    with dask_client(workers=1, config=config, echo=lambda _: None) as client:
        enabled = client.run(lambda: dask.config.get("distributed.worker.profile.enabled"))
        sampling = client.run(_profiling)
    assert list(enabled.values()) == [bool(profiler)]
    assert list(sampling.values()) == [bool(profiler)]


def test_settings_read_from_dask_environment_variables(monkeypatch, tmp_path):
    """Dask spells the keys of its environment variables with ``_``; they still count."""
    config = tmp_path / "cluster.yaml"
    config.write_text("plankton-jobs:\n  cluster:\n    dashboard-address: ':0'\n")
    monkeypatch.setenv("DASK_PLANKTON_JOBS__CLUSTER__N_WORKERS", "3")
    monkeypatch.setenv("DASK_PLANKTON_JOBS__CLUSTER__WORKER_PROFILER", "true")
    dask.config.refresh()
    try:
        settings = load_cluster_config(config)
        assert settings["n-workers"] == 3 and "n_workers" not in settings
        with dask_client(workers=1, config=config, echo=lambda _: None) as client:
            assert list(client.run(_profiling).values()) == [True]
        monkeypatch.setenv("DASK_PLANKTON_JOBS__CLUSTER__WORKER_PROFILER", "maybe")
        monkeypatch.setenv("DASK_PLANKTON_JOBS__CLUSTER__N_WORKRES", "3")
        dask.config.refresh()
        with pytest.raises(click.UsageError, match=r"unknown keys \['n-workres'\]"):
            load_cluster_config(config)
        monkeypatch.delenv("DASK_PLANKTON_JOBS__CLUSTER__N_WORKRES")
        dask.config.refresh()
        with pytest.raises(click.UsageError, match="worker-profiler: 'maybe' is not true or false"):
            with dask_client(workers=1, config=config, echo=lambda _: None):
                pass
    finally:
        monkeypatch.undo()
        dask.config.refresh()
