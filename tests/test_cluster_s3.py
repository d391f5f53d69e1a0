"""Scale-out: build-store on a real multi-process Dask cluster, into a real S3 server.

The module starts, as separate processes on 127.0.0.1, an S3-compatible server (moto in
server mode), a Dask scheduler (``dask scheduler``) and two workers (``dask worker``) whose
environment carries the S3 endpoint and credentials, exactly as a deployment would. It
builds stores into ``s3://`` from a local export (with the CLI) and from an export on S3 (in
process), reads them back from S3 with zarr, xarray and open_store, and compares them with
a local build of the same export. Every process started here is stopped at the end, also
when a test fails, and the teardown fails if one of them (or a child) is still alive.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
import zarr

pytest.importorskip("s3fs")
pytest.importorskip("moto")

from plankton_store.cluster import dask_client, load_cluster_config
from plankton_store.store import BuildOptions, build_store, open_store
from plankton_store.store import format as fmt  # noqa: E402

BIN = Path(sys.executable).parent
BUCKET = "plankton"
# Small blocks so that the small export spans many shards, hence both workers.
OPTIONS = BuildOptions(block_size=32, chunk_size=16, augment_below=30, size=(32, 24))
CLI_OPTIONS = ["--block-size", "32", "--chunk-size", "16", "--augment-below", "30"]
CLI_OPTIONS += ["--size", "32x24"]
# Attributes that differ between two builds of the same input.
VOLATILE = {"created", "finished", "build_seconds", "source"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Processes:
    """Processes started by this module, each in its own process group (session)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[subprocess.Popen] = []
        self.seen: dict[int, psutil.Process] = {}  # every pid seen, children included

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()  # the child holds its own descriptor
        self.started.append(proc)
        self.record()
        return proc

    def record(self) -> None:
        """Remember every live process of ours and their children (nannies spawn workers)."""
        for proc in self.started:
            try:
                parent = psutil.Process(proc.pid)
                for p in [parent, *parent.children(recursive=True)]:
                    self.seen.setdefault(p.pid, p)
            except psutil.NoSuchProcess:
                pass

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")[-3000:]

    def stop_all(self) -> None:
        """SIGTERM each process group, SIGKILL what is left after 15 s."""
        self.record()
        for proc in reversed(self.started):
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.started:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait(timeout=10)
        # Children may outlive their parent by a moment: kill the stragglers by pid.
        gone, alive = psutil.wait_procs(list(self.seen.values()), timeout=10)
        for p in alive:
            p.kill()

    def alive(self) -> list[str]:
        out = []
        for p in self.seen.values():
            try:
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    out.append(f"{p.pid} {' '.join(p.cmdline())[:120]}")
            except psutil.NoSuchProcess:
                pass
        return out


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


@dataclass
class S3:
    endpoint: str
    env: dict[str, str]  # what every process of the deployment gets
    options: dict[str, str]  # the same, as explicit fsspec storage options


@dataclass
class Cluster:
    address: str
    s3: S3
    env: dict[str, str]
    processes: Processes


def wait_until(check, what: str, timeout: float, processes: Processes, name: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise TimeoutError(f"{what} not up after {timeout} s; log:\n{processes.log(name)}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    processes = Processes(tmp_path_factory.mktemp("logs"))
    try:
        # --- S3 server
        port = free_port()
        endpoint = f"http://127.0.0.1:{port}"
        s3_env = {
            "AWS_ENDPOINT_URL": endpoint,  # botocore >= 1.31 reads it; so does s3fs
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FSSPEC_"))}
        env.pop("PLANKTON_JOBS_CLUSTER_CONFIG", None)
        env.update(s3_env)
        moto = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
        processes.start("moto", moto, env)

        def s3_up() -> bool:
            try:
                urllib.request.urlopen(endpoint + "/moto-api/", timeout=1).close()
                return True
            except OSError:
                return False

        wait_until(s3_up, "moto server", 30, processes, "moto")
        s3 = S3(endpoint, s3_env, {"endpoint_url": endpoint, "key": "testing", "secret": "testing"})
        import s3fs

        s3fs.S3FileSystem(**s3.options).mkdir(BUCKET)

        # --- Dask scheduler and two single-threaded workers, each its own process
        address = f"tcp://127.0.0.1:{free_port()}"
        scheduler = [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1"]
        scheduler += ["--port", address.rsplit(":", 1)[1], "--no-dashboard"]
        processes.start("scheduler", scheduler, env)
        for i in range(2):
            worker = [str(BIN / "dask"), "worker", address, "--nthreads", "1", "--nworkers", "1"]
            worker += ["--host", "127.0.0.1", "--no-dashboard", "--memory-limit", "1GiB"]
            worker += ["--name", f"worker-{i}", "--death-timeout", "60"]
            processes.start(f"worker-{i}", worker, env)
        from distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=90)
        processes.record()  # the workers the nannies spawned
        yield Cluster(address, s3, env, processes)
    finally:
        processes.stop_all()
        leftovers = processes.alive()
        assert not leftovers, f"processes still running after the tests: {leftovers}"


def arrays_of(group: zarr.Group) -> dict[str, np.ndarray]:
    return {name: group[name][:] for name in group.array_keys()}


def _stable(attrs: dict) -> dict:
    """Root attributes without what differs between two builds (also in the versions log)."""
    out = {k: v for k, v in attrs.items() if k not in VOLATILE}
    versions = [{k: v for k, v in e.items() if k not in VOLATILE} for e in out["versions"]]
    return {**out, "versions": versions}


def assert_same_store(group: zarr.Group, reference: zarr.Group) -> None:
    left, right = arrays_of(group), arrays_of(reference)
    assert sorted(left) == sorted(right)
    for name in left:
        np.testing.assert_array_equal(left[name], right[name], err_msg=name)
    attrs, ref_attrs = (g.attrs[fmt.ROOT_ATTRS_KEY] for g in (group, reference))
    assert _stable(attrs) == _stable(ref_attrs)


@pytest.fixture(scope="module")
def reference(cluster: Cluster, small_export: Path, tmp_path_factory) -> str:
    """A local-disk build of the small export on the same cluster."""
    from distributed import Client

    path = str(tmp_path_factory.mktemp("reference") / "store.zarr")
    with Client(cluster.address) as client:
        build_store(str(small_export), path, OPTIONS, client, progress=False, echo=lambda _: None)
    return path


def test_cli_builds_into_s3_on_a_remote_scheduler(cluster, reference, small_export, tmp_path):
    url = f"s3://{BUCKET}/cli.zarr"
    command = [str(BIN / "plankton-jobs"), "build-store", str(small_export), url]
    command += ["--scheduler", cluster.address, *CLI_OPTIONS]
    # cwd: no ./cluster.yaml; env: the S3 endpoint and credentials, nothing in the command.
    done = subprocess.run(
        command, env=cluster.env, cwd=tmp_path, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"connected to {cluster.address} (2 workers)" in done.stdout
    options = cluster.s3.options

    # Both workers took part: block tasks were spread over the two processes.
    group = zarr.open_group(url, mode="r", storage_options=options)
    assert_same_store(group, zarr.open_group(reference, mode="r"))

    import xarray as xr

    ds = xr.open_zarr(url, storage_options=options)
    local = xr.open_zarr(reference)
    assert ds[fmt.IMAGES].dims == (fmt.SAMPLE_DIM, fmt.Y_DIM, fmt.X_DIM)
    np.testing.assert_array_equal(ds[fmt.IMAGES].values, local[fmt.IMAGES].values)
    np.testing.assert_array_equal(ds[fmt.LABEL].values, local[fmt.LABEL].values)

    store = open_store(url, storage_options=options)
    assert store.complete and store.counts() == open_store(reference).counts()
    assert store.to_xarray()[fmt.IMAGES].shape == ds[fmt.IMAGES].shape
    rejects = pd.read_csv(fmt.rejects_path(url), storage_options=options)
    assert rejects.equals(pd.read_csv(fmt.rejects_path(reference)))


def test_build_from_an_export_on_s3_and_rebuild_over_it(cluster, reference, small_export):
    import s3fs
    from distributed import Client

    options = cluster.s3.options
    fs = s3fs.S3FileSystem(**options)
    fs.put(str(small_export), f"{BUCKET}/export", recursive=True)
    url = f"s3://{BUCKET}/from-s3.zarr"
    with Client(cluster.address) as client:
        # Explicit options here (shipped with each task); the CLI test uses the environment.
        for overwrite in (False, True):  # the second run replaces a complete store on S3
            summary = build_store(
                f"s3://{BUCKET}/export",
                url,
                OPTIONS,
                client,
                overwrite=overwrite,
                progress=False,
                echo=lambda _: None,
                storage_options=options,
                source_storage_options=options,
            )
            assert summary.rows_stored + len(summary.rejects) == summary.rows_read
        workers = client.run(os.getpid)
    assert len(set(workers.values())) == 2
    group = zarr.open_group(url, mode="r", storage_options=options)
    assert_same_store(group, zarr.open_group(reference, mode="r"))
    assert group.attrs[fmt.ROOT_ATTRS_KEY]["source"] == f"s3://{BUCKET}/export"
    fs.invalidate_cache()
    leftovers = [p for p in fs.ls(BUCKET) if p.endswith((".building", ".old"))]
    assert not leftovers


def test_cluster_config_file_selects_the_scheduler(cluster, tmp_path):
    config = tmp_path / "cluster.yaml"
    config.write_text(f"plankton-jobs:\n  cluster:\n    scheduler-address: {cluster.address}\n")
    assert load_cluster_config(config)["scheduler-address"] == cluster.address
    messages: list[str] = []
    with dask_client(config=config, echo=messages.append) as client:
        assert len(client.scheduler_info()["workers"]) == 2
    assert messages[0] == f"Dask: connected to {cluster.address} (2 workers)"
