"""Jobs on worker jobs of a real single-node SLURM (tests/slurm_cluster.py), through
dask-jobqueue: the jobs run, and no job is left in ``squeue`` afterwards, also after a bad
setting or an interrupted run."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import REPO_ROOT, SMALL_COUNTS, write_flowcam_export
from tests.slurm_cluster import SlurmCluster, unavailable

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    """munged, slurmctld and slurmd on loopback; stopped after the last test."""
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm")).start()
    try:
        yield cluster
    finally:
        cluster.stop()


def write_config(path: Path, **overrides: object) -> Path:
    """A cluster config for the test SLURM: 1-core workers running this checkout's code."""
    settings = {
        "kind": "slurm",
        "cores": 1,
        "memory": "1GiB",
        "walltime": "00:15:00",
        "queue": "debug",
        "interface": "lo",
        "python": sys.executable,
        "job-script-prologue": [f"export PYTHONPATH={REPO_ROOT}"],
        "dashboard-address": "127.0.0.1:0",
        "worker-timeout": 300,
        "log-directory": str(path.parent / "worker-logs"),
        **overrides,
    }
    path.write_text(yaml.safe_dump({"plankton-jobs": {"cluster": settings}}))
    return path


def _default_sigint() -> None:
    # A test run started in the background by a shell without job control inherits SIGINT
    # ignored, and so would the job: give it the default, as a terminal's Ctrl-C finds it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def cli(slurm: SlurmCluster, *args: str, **kwargs) -> subprocess.Popen:
    env = {**slurm.env, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "jobs.cli", *args],
        preexec_fn=_default_sigint,
        env=env,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


def run_cli(slurm: SlurmCluster, *args: str) -> tuple[int, str]:
    proc = cli(slurm, *args)
    out, _ = proc.communicate(timeout=500)
    return proc.returncode, out


def test_build_store_and_predict_on_slurm_workers(slurm, small_model, tmp_path):
    config = write_config(tmp_path / "cluster.yaml")
    export = write_flowcam_export(tmp_path / "export", SMALL_COUNTS)
    store = str(tmp_path / "store.zarr")
    code, out = run_cli(
        slurm, "build-store", str(export), store, "--cluster-config", str(config),
        "--workers", "2", "--block-size", "32", "--size", "32x24",
    )  # fmt: skip
    assert code == 0, out
    assert "slurm cluster, 2 worker jobs submitted" in out
    assert "waiting for workers: 2/2 joined" in out
    from plankton_store.store import open_store

    assert len(open_store(store).labels) > 0
    assert slurm.jobs() == []

    predictions = tmp_path / "predictions.csv"
    code, out = run_cli(
        slurm, "predict", str(export), "--model", str(small_model), "--out", str(predictions),
        "--cluster", "slurm", "--workers", "1", "--cluster-config", str(config),
    )  # fmt: skip
    assert code == 0, out
    assert "waiting for workers: 1/1 joined" in out
    assert len(pd.read_csv(predictions)) == sum(SMALL_COUNTS.values())
    assert slurm.jobs() == []


def test_unknown_kind_names_the_setting(slurm, small_export, tmp_path):
    config = write_config(tmp_path / "cluster.yaml", kind="kubernetes")
    code, out = run_cli(
        slurm, "build-store", str(small_export), str(tmp_path / "s.zarr"),
        "--cluster-config", str(config),
    )  # fmt: skip
    assert code != 0
    assert "kind: 'kubernetes' is not one of local, slurm, pbs" in out
    assert slurm.jobs() == []


def test_missing_partition_names_the_setting(slurm, small_export, tmp_path):
    config = write_config(tmp_path / "cluster.yaml", queue="no-such-partition")
    code, out = run_cli(
        slurm, "build-store", str(small_export), str(tmp_path / "s.zarr"),
        "--cluster-config", str(config),
    )  # fmt: skip
    assert code != 0
    assert "queue: SLURM has no partition 'no-such-partition'" in out
    assert slurm.jobs() == []


def test_no_workers_in_time_names_the_setting_and_cancels(slurm, small_export, tmp_path):
    # The jobs may not start for an hour: no worker can join within the timeout.
    config = write_config(
        tmp_path / "cluster.yaml", **{"job-extra-directives": ["--begin=now+3600"]},
        **{"worker-timeout": 6},
    )  # fmt: skip
    code, out = run_cli(
        slurm, "build-store", str(small_export), str(tmp_path / "s.zarr"),
        "--cluster-config", str(config), "--workers", "2",
    )  # fmt: skip
    assert code != 0
    assert "worker-timeout: only 0 of 2 workers joined within 6 s" in out
    assert "waiting for workers: 0/2" in out
    assert slurm.jobs() == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_run_cancels_its_jobs(slurm, small_export, tmp_path, signum):
    # Three 1-core workers on a 2-CPU node: two jobs run, the third stays pending, so the job
    # waits for workers until it is interrupted, with running and pending jobs queued.
    config = write_config(tmp_path / "cluster.yaml")
    proc = cli(
        slurm, "build-store", str(small_export), str(tmp_path / "s.zarr"),
        "--cluster-config", str(config), "--workers", "3",
    )  # fmt: skip
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "waiting for workers: 2/3" in line:
            break
    assert any("2/3" in line for line in lines), "".join(lines)
    assert len(slurm.jobs()) == 3
    proc.send_signal(signum)
    out = "".join(lines) + proc.communicate(timeout=120)[0]
    assert proc.returncode != 0, out
    assert slurm.jobs() == [], out


def test_adaptive_workers_between_minimum_and_maximum(slurm, small_export, tmp_path):
    config = write_config(tmp_path / "cluster.yaml", **{"minimum-workers": 1, "maximum-workers": 2})
    store = str(tmp_path / "store.zarr")
    code, out = run_cli(
        slurm, "build-store", str(small_export), store, "--cluster-config", str(config),
        "--block-size", "32", "--size", "32x24",
    )  # fmt: skip
    assert code == 0, out
    assert "slurm cluster, adaptive 1-2 worker jobs" in out
    assert "waiting for workers: 1/1 joined" in out
    assert slurm.jobs() == []


def test_failed_job_cancels_its_workers(slurm, tmp_path):
    # A folder without images fails only once the workers have joined.
    (tmp_path / "empty-export").mkdir()
    config = write_config(tmp_path / "cluster.yaml")
    code, out = run_cli(
        slurm, "build-store", str(tmp_path / "empty-export"), str(tmp_path / "s.zarr"),
        "--cluster-config", str(config), "--workers", "1",
    )  # fmt: skip
    assert code != 0
    assert "waiting for workers: 1/1 joined" in out
    assert "no image files" in out
    assert slurm.jobs() == []
