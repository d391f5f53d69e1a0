"""The jobs' Dask set-up: local clusters and their settings from the cluster config."""

from __future__ import annotations

import dask.config
import pytest

from plankton_store.cluster import (
    QUIET_HOUSEKEEPING,
    WORKER_ENVIRONMENT,
    ClusterConfigError,
    dask_client,
    load_cluster_config,
)


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


def _callback_ms(server) -> dict[str, float]:
    return {name: pc.callback_time for name, pc in server.periodic_callbacks.items()}


def test_local_cluster_housekeeping_is_quieter_unless_the_dask_config_says_otherwise(tmp_path):
    """Every server of a job's local cluster (scheduler, nanny, worker) checks its event loop
    every 500 ms instead of every 20 ms, and so on, except where the user set a value."""
    assert QUIET_HOUSEKEEPING["distributed.admin.tick.interval"] == "500ms"
    config = tmp_path / "cluster.yaml"
    config.write_text("plankton-jobs:\n  cluster:\n    dashboard-address: ':0'\n")
    with (
        dask.config.set({"distributed.admin.system-monitor.interval": "750ms"}),
        dask_client(workers=1, config=config, echo=lambda _: None) as client,
    ):
        workers = list(client.run(lambda dask_worker: _callback_ms(dask_worker)).values())
        scheduler = client.run_on_scheduler(lambda dask_scheduler: _callback_ms(dask_scheduler))
        nannies = [_callback_ms(nanny) for nanny in client.cluster.workers.values()]
        memory_interval = client.run(
            lambda: dask.config.get("distributed.worker.memory.monitor-interval")
        )
    for callbacks in [*workers, scheduler, *nannies]:
        assert callbacks["tick"] == 500
        assert callbacks["monitor"] == 750  # the user's value
    assert workers[0]["memory_monitor"] == nannies[0]["memory_monitor"] == 500
    assert list(memory_interval.values()) == ["500ms"]
    # The job's process keeps its own config once the cluster has started.
    assert dask.config.get("distributed.admin.tick.interval") == "20ms"


def _malloc_trim() -> str | None:
    import os

    return os.environ.get("MALLOC_TRIM_THRESHOLD_")


@pytest.mark.parametrize("user_value", [None, 131072])
def test_local_workers_keep_glibc_adaptive_malloc_unless_the_dask_config_says_otherwise(
    tmp_path, monkeypatch, user_value
):
    """Dask's default MALLOC_TRIM_THRESHOLD_ makes each large buffer a fresh mapping,
    page-faulted in again for every block; a job's local workers go without it."""
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)  # as in a fresh shell
    config = tmp_path / "cluster.yaml"
    config.write_text("plankton-jobs:\n  cluster:\n    dashboard-address: ':0'\n")
    overrides = {}
    if user_value is not None:
        overrides = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": user_value}
    with (
        dask.config.set(overrides),
        dask_client(workers=1, config=config, echo=lambda _: None) as client,
    ):
        values = list(client.run(_malloc_trim).values())
    assert values == [None if user_value is None else str(user_value)]
    assert dask.config.get(next(iter(WORKER_ENVIRONMENT))) == 65536  # Dask's default here


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
        with pytest.raises(ClusterConfigError, match=r"unknown keys \['n-workres'\]"):
            load_cluster_config(config)
        monkeypatch.delenv("DASK_PLANKTON_JOBS__CLUSTER__N_WORKRES")
        dask.config.refresh()
        with pytest.raises(
            ClusterConfigError, match="worker-profiler: 'maybe' is not true or false"
        ):
            with dask_client(workers=1, config=config, echo=lambda _: None):
                pass
    finally:
        monkeypatch.undo()
        dask.config.refresh()
