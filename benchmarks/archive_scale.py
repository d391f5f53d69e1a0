"""Measure build-store and its planner on exports many times the reference (issue 39).

    python benchmarks/archive_scale.py --scale 0.1 --repeat 10          # (a) build 1x vs 10x
    python benchmarks/archive_scale.py --no-build --plan-rows 1e6,5e6   # (b) planning only

(a) Generates the demo export at ``--scale`` once (cached as benchmarks/build_store.py does),
writes an export ``--repeat`` times as large by reusing its images (meta.csv and the
feature table repeated with new unique objids, imgs.zip with each stored member copied
under the new name), then builds both on a fresh local cluster each, in a fresh process
each, and prints images/s, per-image cost of the large build relative to the small one,
and the peak resident memory of the job process (client, which also hosts the local
cluster's scheduler and nannies), of each worker, and the job process's memory right after
the export was read and after it was planned.
With ``--separate-scheduler`` each build runs on a ``dask scheduler`` and ``dask worker``
processes started with the CLI on loopback: the job process is the client alone, and the
scheduler's peak is reported apart.
(b) Builds synthetic tables of ``--plan-rows`` rows (objid, image reference, level2 label
drawn with the reference class mix: 39 classes, 57% detritus) and runs the store's planner
on each in a fresh process: seconds and peak memory per million rows.
Targets (issue 39, 2 cores): client, scheduler and workers <= 1 GiB at 10x the reference
(2.4 million rows); per-image build cost within 15% of the 1x build; 100 million rows
planned with no process above 2 GiB, time linear in rows.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from plankton_store.io import ZIP_NAME
from plankton_store.store import BuildOptions

GIB = 1 << 30
MIB = 1 << 20
TARGET_PROCESS_MEMORY = GIB
TARGET_PLAN_MEMORY = 2 * GIB
TARGET_PER_IMAGE_COST = 1.15
REFERENCE_ROWS = 243_610
#: New objid of copy k of a row: objid + k * OBJID_STRIDE (demo objids are ~10 million).
OBJID_STRIDE = 1_000_000_000
FEATURES_FILE = "features_native.csv.gz"


def vm_hwm(pid: str | int = "self") -> int:
    """Peak resident memory (bytes) of a process since it started its program (VmHWM)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def vm_rss() -> int:
    """Current resident memory (bytes) of this process."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class RssSampler(threading.Thread):
    """The largest resident memory of this process seen every ``interval`` seconds."""

    def __init__(self, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.interval, self.peak, self._done = interval, 0, threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, vm_rss())
            self._done.wait(self.interval)

    def stop(self) -> int:
        self._done.set()
        self.join()
        return self.peak


# --- (a) the repeated export -------------------------------------------------------------


def repeated_export(base: Path, repeat: int, cache: Path) -> Path:
    """``base`` with every row, feature row and image ``repeat`` times (new objids), kept."""
    out = cache / f"{base.name}-x{repeat}"
    if (out / "meta.csv").exists():
        return out
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=out.name + ".", dir=cache))
    header, *lines = (base / "meta.csv").read_text(encoding="utf-8").splitlines()
    rows = [line.split(",", 1) for line in lines]
    with open(tmp / "meta.csv", "w", encoding="utf-8") as f:
        f.write(header + "\n")
        for k in range(repeat):
            f.writelines(f"{int(o) + k * OBJID_STRIDE},{rest}\n" for o, rest in rows)
    with gzip.open(base / FEATURES_FILE, "rt") as f:
        header, *lines = f.read().splitlines()
    rows = [line.split(",", 1) for line in lines]
    with gzip.open(tmp / FEATURES_FILE, "wt", compresslevel=1) as f:
        f.write(header + "\n")
        for k in range(repeat):
            f.writelines(f"{int(o) + k * OBJID_STRIDE},{rest}\n" for o, rest in rows)
    for extra in base.iterdir():  # taxo.csv and the like
        if extra.is_file() and not (tmp / extra.name).exists() and extra.name != ZIP_NAME:
            shutil.copy(extra, tmp / extra.name)
    with (
        zipfile.ZipFile(base / ZIP_NAME) as src,
        zipfile.ZipFile(tmp / ZIP_NAME, "w", zipfile.ZIP_STORED, allowZip64=True) as dst,
    ):
        members = [(info, src.read(info)) for info in src.infolist()]
        for k in range(repeat):
            for info, data in members:
                stem, dot, ext = info.filename.rpartition("/")[2].rpartition(".")
                name = info.filename
                if dot and stem.isdigit():
                    folder = info.filename[: -len(stem + dot + ext)]
                    name = f"{folder}{int(stem) + k * OBJID_STRIDE}.{ext}"
                copy = zipfile.ZipInfo(name, date_time=info.date_time)
                copy.compress_type = zipfile.ZIP_STORED
                dst.writestr(copy, data)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    print(f"wrote {out} ({repeat}x) in {time.perf_counter() - started:.0f} s", flush=True)
    return out


#: The Dask config of the CLI scheduler and workers: the settings the jobs' local clusters
#: use (plankton_store.cluster's QUIET_HOUSEKEEPING, WORKER_ENVIRONMENT, no profiler), so
#: that both ways of running measure the same workers.
CLI_DASK_CONFIG = """\
distributed:
  admin:
    tick:
      interval: 500ms
    system-monitor:
      interval: 2s
  worker:
    memory:
      monitor-interval: 500ms
    profile:
      enabled: false
  nanny:
    pre-spawn-environ:
      MALLOC_TRIM_THRESHOLD_: null
"""


@contextlib.contextmanager
def cli_cluster(workers: int, worker_memory: str) -> Iterator[tuple[str, list]]:
    """A ``dask scheduler`` and ``workers`` ``dask worker`` processes (one thread each) on
    loopback, started with the CLI as a lab starts them; the scheduler's address. Every
    process is stopped on exit (SIGTERM to its process group, SIGKILL after 30 s)."""
    folder = Path(tempfile.mkdtemp(prefix="archive-scale-cli-"))
    (folder / "dask.yaml").write_text(CLI_DASK_CONFIG)
    env = {**os.environ, "DASK_CONFIG": str(folder)}
    dask_cli = str(Path(sys.executable).parent / "dask")
    scheduler_file = folder / "scheduler.json"
    common = {"env": env, "start_new_session": True, "stdout": subprocess.DEVNULL}
    processes = []
    try:
        log = open(folder / "scheduler.log", "w")  # noqa: SIM115 (closed with the folder)
        processes.append(
            subprocess.Popen(
                [
                    dask_cli,
                    "scheduler",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--no-dashboard",
                    "--scheduler-file",
                    str(scheduler_file),
                ],
                stderr=log,
                **common,
            )
        )
        deadline = time.monotonic() + 120
        while not scheduler_file.exists() or not scheduler_file.read_text().strip():
            if processes[0].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dask scheduler did not start: {folder / 'scheduler.log'}")
            time.sleep(0.2)
        time.sleep(0.2)  # the file is written in one go, but let it be closed
        address = json.loads(scheduler_file.read_text())["address"]
        for i in range(workers):
            log = open(folder / f"worker{i}.log", "w")  # noqa: SIM115
            processes.append(
                subprocess.Popen(
                    [
                        dask_cli,
                        "worker",
                        address,
                        "--nthreads",
                        "1",
                        "--nworkers",
                        "1",
                        "--memory-limit",
                        worker_memory,
                        "--no-dashboard",
                        "--name",
                        f"w{i}",
                    ],
                    stderr=log,
                    **common,
                )
            )
        yield address, processes
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        shutil.rmtree(folder, ignore_errors=True)


def one_build(export_dir: str, workers: int, worker_memory: str, separate: bool = False) -> dict:
    """Build ``export_dir`` on a fresh local cluster; figures as a dict (run in a fresh
    process, so that its VmHWM is this build's). ``separate``: on a CLI scheduler and CLI
    workers (:func:`cli_cluster`) instead, so that this process is the client alone and the
    scheduler's peak memory is its own."""
    from distributed import Client

    from plankton_store.cluster import local_cluster
    from plankton_store.store import build_store

    marks: dict[str, int] = {}

    def echo(message: str) -> None:  # build_store reports each phase through this
        marks[message.split()[0].lower()] = vm_rss()

    options = BuildOptions(chunk_size=512, max_per_class=None)
    store = Path(tempfile.mkdtemp(prefix="archive-scale-")) / "store.zarr"
    sampler = RssSampler()
    try:
        with contextlib.ExitStack() as stack:
            if separate:
                address, _ = stack.enter_context(cli_cluster(workers, worker_memory))
                client = stack.enter_context(Client(address))
                client.wait_for_workers(workers, timeout=120)
            else:
                cluster = stack.enter_context(
                    local_cluster(workers, memory_limit=worker_memory, dashboard_address=":0")
                )
                client = stack.enter_context(Client(cluster))
            client.run(lambda: None)
            before = vm_rss()
            cpu_before = client.run(time.process_time)
            sampler.start()
            started = time.perf_counter()
            summary = build_store(
                export_dir, str(store), options, client, progress=False, echo=echo
            )
            seconds = time.perf_counter() - started
            worker_cpu = sum(client.run(time.process_time).values()) - sum(cpu_before.values())
            worker_peaks = list(client.run(vm_hwm).values())
            scheduler_peak = client.run_on_scheduler(vm_hwm) if separate else 0
            sampled = sampler.stop()
    finally:
        shutil.rmtree(store.parent, ignore_errors=True)
    return {
        "rows_read": summary.rows_read,
        "samples": summary.samples,
        "seconds": seconds,
        "worker_cpu": worker_cpu,
        "client_peak": vm_hwm(),
        "client_sampled_peak": sampled,
        "client_before": before,
        "client_after_read": marks.get("read", 0),
        "client_after_plan": marks.get("planned", 0),
        "worker_peaks": worker_peaks,
        "separate": separate,
        "scheduler_peak": scheduler_peak,
    }


def breakdown(export_dir: str) -> dict:
    """Bytes per row of each structure the job process holds for a build of ``export_dir``
    (measured without a cluster: the same objects :func:`build_store` makes), and what
    tracemalloc sees the build's client steps hold and peak at, per row."""
    import pickle
    import tracemalloc

    from plankton_store.io import read_export
    from plankton_store.store import make_plan
    from plankton_store.store._block import block_tasks
    from plankton_store.store._build import _FeatureRows

    traced: dict[str, tuple[int, int]] = {}
    tracemalloc.start()

    def mark(step: str) -> None:
        current, peak = tracemalloc.get_traced_memory()
        traced[step] = (current, peak)
        tracemalloc.reset_peak()

    export = read_export(export_dir, extra_columns=())
    mark("read_export(extra_columns=()): table, rejects, features, zip listing")
    rows = len(export.table) + len(export.rejects)
    plan = make_plan(export.table, BuildOptions(max_per_class=None), export.rejects)
    mark("make_plan")
    feature_rows = _FeatureRows(export, plan)
    tasks = block_tasks("memory://x", plan.samples, 4096, feature_rows, (64, 48), "stretch")
    window = [(t, export.fetcher.batch(t.refs)) for t in tasks[:8]]
    mark("block tasks: 8 made (one window of 2 workers)")
    tracemalloc.stop()
    sizes = {
        "export.table (objid, label, image)": export.table.memory_usage(deep=True).sum(),
        "export.features (float32 frames)": sum(
            f.memory_usage(deep=True).sum() for f in export.features.values()
        ),
        "plan.samples": plan.samples.memory_usage(deep=True).sum(),
        "plan.rejects": plan.rejects.memory_usage(deep=True).sum(),
        "feature rows' objids (one int64 per sample)": feature_rows.row_objids.nbytes,
        "one window of 8 block tasks, pickled": len(pickle.dumps(window, protocol=5)),
    }
    return {"rows": rows, "samples": len(plan.samples), "bytes": sizes, "traced": traced}


# --- (b) planning only -------------------------------------------------------------------


def synthetic_table(n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` rows as a reader returns them: objid, label (the reference level2 class mix,
    empty labels included), image reference."""
    from plankton_store.demo import EMPTY_LABEL_COUNT, LEVEL2_COUNTS

    names = [*LEVEL2_COUNTS, ""]
    counts = np.array([*LEVEL2_COUNTS.values(), EMPTY_LABEL_COUNT], dtype=np.float64)
    codes = np.random.default_rng(seed).choice(len(names), n, p=counts / counts.sum())
    label = pd.Series(pd.Categorical.from_codes(codes, names)).astype("string")
    label = label.where(label != "")
    objid = 10_000_000 + np.arange(n, dtype=np.int64) * 7
    image = pd.Series("imgs/" + pd.Series(objid).astype(str) + ".jpg", dtype="str")
    return pd.DataFrame({"objid": objid, "label": label, "image": image})


def one_plan(rows: int, cap: int, planner: str = "sequential") -> dict:
    """Plan a synthetic table of ``rows`` rows in this process with ``make_plan``, or with
    the hashed planner's ``plan_table`` ("hashed-local"); figures as a dict (run in a fresh
    process)."""
    from plankton_store.store import make_plan, plan_table

    started = time.perf_counter()
    table = synthetic_table(rows)
    table_seconds = time.perf_counter() - started
    before = vm_rss()
    hashed = planner == "hashed-local"
    options = BuildOptions(max_per_class=cap or None, planner="hashed" if hashed else planner)
    started = time.perf_counter()
    plan = (plan_table if hashed else make_plan)(table, options)
    seconds = time.perf_counter() - started
    return {
        "rows": rows,
        "samples": len(plan.samples),
        "rejects": len(plan.rejects),
        "table_seconds": table_seconds,
        "seconds": seconds,
        "table_rss": before,
        "peak": vm_hwm(),
    }


def synthetic_partition(i: int, partition_rows: int, n_rows: int, seed: int = 0) -> pd.DataFrame:
    """Partition ``i`` of a synthetic table of ``n_rows`` rows, made on the worker that plans
    it: objid, label (categorical: the reference level2 mix, empty labels missing), row."""
    from plankton_store.demo import EMPTY_LABEL_COUNT, LEVEL2_COUNTS

    names = [*LEVEL2_COUNTS, ""]
    counts = np.array([*LEVEL2_COUNTS.values(), EMPTY_LABEL_COUNT], dtype=np.float64)
    start = i * partition_rows
    row = np.arange(start, min(start + partition_rows, n_rows), dtype=np.int64)
    codes = np.random.default_rng([seed, i]).choice(len(names), len(row), p=counts / counts.sum())
    codes[codes == len(names) - 1] = -1  # missing label
    label = pd.Categorical.from_codes(codes, names[:-1])
    return pd.DataFrame({"objid": 10_000_000 + row * 7, "label": label, "row": row})


def one_hashed_plan(
    rows: int, cap: int, partition_rows: int, workers: int, worker_memory: str
) -> dict:
    """Plan a synthetic table of ``rows`` rows with the hashed planner on a CLI scheduler and
    ``workers`` CLI workers (:func:`cli_cluster`), the partitions made on the workers; the
    plan written to a temporary folder, removed after. Figures as a dict."""
    import functools

    from distributed import Client

    from plankton_store.store import plan_partitioned

    options = BuildOptions(max_per_class=cap or None, planner="hashed")
    n_parts = -(-rows // partition_rows)
    parts = [
        functools.partial(synthetic_partition, i, partition_rows, rows) for i in range(n_parts)
    ]
    out = Path(tempfile.mkdtemp(prefix="archive-scale-plan-"))
    try:
        with cli_cluster(workers, worker_memory) as (address, _), Client(address) as client:
            client.wait_for_workers(workers, timeout=120)
            pids = client.run(os.getpid)
            started = time.perf_counter()
            passes: list[str] = []
            plan = plan_partitioned(parts, options, str(out), client, echo=passes.append)
            seconds = time.perf_counter() - started
            disk = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
            restarted = client.run(os.getpid) != pids
            worker_peaks = list(client.run(vm_hwm).values())
            scheduler_peak = client.run_on_scheduler(vm_hwm)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return {
        "rows": rows,
        "partitions": n_parts,
        "samples": plan.n_samples,
        "rejects": sum(plan.reject_counts.values()),
        "pieces": len(plan.pieces),
        "seconds": seconds,
        "disk": disk,
        "client_peak": vm_hwm(),
        "scheduler_peak": scheduler_peak,
        "worker_peaks": worker_peaks,
        "workers_restarted": restarted,
        "passes": passes,
    }


def report_hashed_plans(plans: list[dict]) -> None:
    for p in plans:
        millions = p["rows"] / 1e6
        peaks = [p["client_peak"], p["scheduler_peak"], *p["worker_peaks"]]
        print(
            f"hashed plan {p['rows']:,} rows in {p['partitions']} partitions "
            f"({p['samples']:,} samples in {p['pieces']} pieces, {p['rejects']:,} rejects, "
            f"{p['disk'] / GIB:.2f} GiB written): {p['seconds']:.1f} s = "
            f"{p['seconds'] / millions:.2f} s per million rows; peak MiB client "
            f"{p['client_peak'] / MIB:,.0f}, scheduler {p['scheduler_peak'] / MIB:,.0f}, "
            f"workers {', '.join(f'{w / MIB:,.0f}' for w in p['worker_peaks'])}; largest / "
            f"2 GiB {max(peaks) / TARGET_PLAN_MEMORY:.2f}"
            + ("; A WORKER WAS RESTARTED" if p["workers_restarted"] else "")
        )
        print(f"  passes: {', '.join(p['passes'])}")
    if len(plans) >= 2:
        a, b = plans[0], plans[-1]
        per = [p["seconds"] / p["rows"] * 1e6 for p in (a, b)]
        print(
            f"time per million rows {per[0]:.2f} s at {a['rows']:,}, {per[1]:.2f} s at "
            f"{b['rows']:,}: ratio {per[1] / per[0]:.2f} (1.00 = linear)"
        )


# --- driver ------------------------------------------------------------------------------


def in_fresh_process(*args: str) -> dict:
    """Run this script's ``--child`` mode with ``args``; its JSON answer."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), *sys.path]))}
    done = subprocess.run(
        [sys.executable, __file__, "--child", *args],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def report_builds(small: dict, large: dict, repeat: int) -> None:
    per_image = [b["seconds"] / b["samples"] for b in (small, large)]
    cpu_per_image = [b["worker_cpu"] / b["samples"] for b in (small, large)]
    for name, b in (("1x", small), (f"{repeat}x", large)):
        print(
            f"{name:>4} build: {b['rows_read']:,} rows, {b['samples']:,} samples in "
            f"{b['seconds']:.1f} s = {b['samples'] / b['seconds']:,.0f} images/s; worker CPU "
            f"{1e6 * b['worker_cpu'] / b['samples']:.0f} us/image"
        )
        who = "client alone" if b.get("separate") else "client + scheduler + nannies"
        print(
            f"      job process ({who}): peak {b['client_peak'] / MIB:,.0f}"
            f" MiB (sampled {b['client_sampled_peak'] / MIB:,.0f}; {b['client_before'] / MIB:,.0f}"
            f" before the build, {b['client_after_read'] / MIB:,.0f} after reading the export, "
            f"{b['client_after_plan'] / MIB:,.0f} after planning); ratio to 1 GiB "
            f"{b['client_peak'] / TARGET_PROCESS_MEMORY:.2f}"
        )
        if b.get("separate"):
            print(
                f"      scheduler (dask scheduler process): peak "
                f"{b['scheduler_peak'] / MIB:,.0f} MiB; ratio to 1 GiB "
                f"{b['scheduler_peak'] / TARGET_PROCESS_MEMORY:.2f}"
            )
        print(
            "      workers: peak "
            + ", ".join(f"{p / MIB:,.0f}" for p in b["worker_peaks"])
            + f" MiB; ratio to 1 GiB {max(b['worker_peaks']) / TARGET_PROCESS_MEMORY:.2f}"
        )
    growth = (large["client_peak"] - small["client_peak"]) / (
        large["rows_read"] - small["rows_read"]
    )
    print(
        f"per-image wall cost {repeat}x / 1x: {per_image[1] / per_image[0]:.2f} (target <= "
        f"{TARGET_PER_IMAGE_COST}); worker CPU per image: {cpu_per_image[1] / cpu_per_image[0]:.2f}"
    )
    print(
        f"job process growth: {growth:,.0f} bytes per row; at 10x the reference "
        f"({10 * REFERENCE_ROWS:,} rows) about "
        f"{(small['client_peak'] + growth * (10 * REFERENCE_ROWS - small['rows_read'])) / GIB:.2f}"
        " GiB (linear extrapolation)"
    )


def report_plans(plans: list[dict]) -> None:
    for p in plans:
        millions = p["rows"] / 1e6
        print(
            f"plan {p['rows']:,} rows ({p['samples']:,} samples, {p['rejects']:,} rejects): "
            f"{p['seconds']:.1f} s = {p['seconds'] / millions:.2f} s per million rows; peak "
            f"{p['peak'] / MIB:,.0f} MiB = {p['peak'] / MIB / millions:,.0f} MiB per million rows "
            f"(table alone {p['table_rss'] / MIB:,.0f} MiB, planning adds "
            f"{(p['peak'] - p['table_rss']) / MIB / millions:,.0f} MiB per million rows); ratio "
            f"to 2 GiB {p['peak'] / TARGET_PLAN_MEMORY:.2f}"
        )
    if len(plans) >= 2:
        a, b = plans[0], plans[-1]
        slope = (b["peak"] - a["peak"]) / (b["rows"] - a["rows"])
        print(
            f"peak memory grows {slope:,.0f} bytes per row: 100 million rows would need about "
            f"{(a['peak'] + slope * (1e8 - a['rows'])) / GIB:,.0f} GiB (linear extrapolation); "
            f"time per million rows {a['seconds'] / a['rows'] * 1e6:.2f} s at "
            f"{a['rows']:,}, {b['seconds'] / b['rows'] * 1e6:.2f} s at {b['rows']:,}"
        )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind, *rest = sys.argv[2:]
        if kind == "build":
            print(json.dumps(one_build(rest[0], int(rest[1]), rest[2], rest[3:] == ["separate"])))
        elif kind == "breakdown":
            print(json.dumps(breakdown(rest[0]), default=int))
        elif kind == "hashed":
            rows, cap, partition_rows, workers = (int(x) for x in rest[:4])
            print(json.dumps(one_hashed_plan(rows, cap, partition_rows, workers, rest[4])))
        else:
            print(json.dumps(one_plan(int(rest[0]), int(rest[1]), *rest[2:])))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.1, help="demo export scale (1x)")
    parser.add_argument("--repeat", type=int, default=10, help="the large export = 1x times this")
    parser.add_argument(
        "--base-repeat",
        type=int,
        default=1,
        help="the 1x build is the demo export repeated this many times [default: 1]",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--worker-memory",
        default="2GiB",
        help="each worker's Dask memory limit (restarted at 95%% of it) [default: 2GiB]",
    )
    parser.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / "plankton-bench"
    )
    parser.add_argument("--no-build", action="store_true", help="skip (a), the builds")
    parser.add_argument(
        "--separate-scheduler",
        action="store_true",
        help="run each build on a `dask scheduler` and `dask worker` processes started with "
        "the CLI on loopback (as on a lab's cluster), so that the job process is the client "
        "alone and the scheduler's peak memory is reported apart",
    )
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="also print the bytes per row of each structure of the large build's job process "
        "and what tracemalloc sees each step hold and peak at",
    )
    parser.add_argument(
        "--plan-rows", default="", help="comma-separated table sizes for (b), e.g. 1e6,5e6"
    )
    parser.add_argument(
        "--plan-cap", type=int, default=0, help="--max-per-class of the plans (0: none)"
    )
    parser.add_argument(
        "--plan-planner",
        choices=("sequential", "hashed", "hashed-local"),
        default="sequential",
        help="(b) with 'sequential': make_plan on the whole table in one process; with "
        "'hashed-local': the hashed planner the same way (plan_table, as a build runs it); "
        "with 'hashed': plan_partitioned on a CLI scheduler and --workers CLI workers of "
        "--worker-memory, the table made partition by partition on the workers",
    )
    parser.add_argument(
        "--plan-partition-rows",
        type=float,
        default=2e6,
        help="rows per partition of the hashed plans [default: 2e6]",
    )
    args = parser.parse_args()

    if not args.no_build:
        sys.path.insert(0, str(Path(__file__).parent))
        from build_store import demo_export

        args.cache.mkdir(parents=True, exist_ok=True)
        base = demo_export(args.scale, args.seed, args.cache)
        large = repeated_export(base, args.repeat, args.cache)
        if args.base_repeat > 1:
            base = repeated_export(base, args.base_repeat, args.cache)
        small_build, large_build = (
            in_fresh_process(
                "build",
                str(export),
                str(args.workers),
                args.worker_memory,
                *(["separate"] if args.separate_scheduler else []),
            )
            for export in (base, large)
        )
        report_builds(small_build, large_build, args.repeat // args.base_repeat)
        if args.breakdown:
            found = in_fresh_process("breakdown", str(large))
            print(f"job process structures, {found['rows']:,} rows, {found['samples']:,} samples:")
            for what, size in found["bytes"].items():
                print(f"  {size / found['rows']:8,.0f} bytes per row  {what}")
            print("tracemalloc, client steps (held after the step / peak during it):")
            for what, (held, peak) in found["traced"].items():
                print(
                    f"  {held / found['rows']:8,.0f} / {peak / found['rows']:8,.0f} bytes per "
                    f"row  {what}"
                )
    sizes = [str(int(float(n))) for n in args.plan_rows.split(",") if n]
    if args.plan_planner == "hashed":
        hashed = [
            in_fresh_process(
                "hashed",
                n,
                str(args.plan_cap),
                str(int(args.plan_partition_rows)),
                str(args.workers),
                args.worker_memory,
            )
            for n in sizes
        ]
        if hashed:
            report_hashed_plans(hashed)
        return
    plans = [in_fresh_process("plan", n, str(args.plan_cap), args.plan_planner) for n in sizes]
    if plans:
        report_plans(plans)


if __name__ == "__main__":
    main()
