"""Reliability: bad inputs, worker faults, interrupted builds, verification, determinism."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import zarr
from click.testing import CliRunner
from distributed import Client, LocalCluster
from distributed.diagnostics.plugin import WorkerPlugin
from PIL import Image

from jobs.build_store import build_store_command
from jobs.verify import verify_command
from plankton_store.store import (
    BuildOptions,
    IncompleteStoreError,
    StoreExistsError,
    build_store,
    open_store,
)
from plankton_store.store import format as fmt
from tests.conftest import REPO_ROOT, jpeg, write_flowcam_export

OPTIONS = BuildOptions(block_size=16, chunk_size=16, augment_below=20, size=(24, 16))
TIMESTAMPS = {"created", "finished", "build_seconds"}


def arrays_of(path: str) -> dict[str, np.ndarray]:
    group = zarr.open_group(path, mode="r")
    return {name: group[name][:] for name in group.array_keys()}


def _untimed(attrs: dict) -> dict:
    """Root attributes without their timestamps (also those of the versions log)."""
    out = {k: v for k, v in attrs.items() if k not in TIMESTAMPS}
    versions = [{k: v for k, v in e.items() if k not in TIMESTAMPS} for e in out["versions"]]
    return {**out, "versions": versions}


def assert_same_store(a: str, b: str) -> None:
    left, right = arrays_of(a), arrays_of(b)
    assert sorted(left) == sorted(right)
    for name in left:
        np.testing.assert_array_equal(left[name], right[name], err_msg=name)
    attrs_a = zarr.open_group(a, mode="r").attrs[fmt.ROOT_ATTRS_KEY]
    attrs_b = zarr.open_group(b, mode="r").attrs[fmt.ROOT_ATTRS_KEY]
    assert _untimed(attrs_a) == _untimed(attrs_b)
    assert pd.read_csv(fmt.rejects_path(a)).equals(pd.read_csv(fmt.rejects_path(b)))


@pytest.fixture(scope="module")
def medium_export(tmp_path_factory) -> Path:
    counts = {"a": 150, "b": 90, "c": 40, "d": 12}
    return write_flowcam_export(tmp_path_factory.mktemp("medium") / "export", counts, seed=3)


@pytest.fixture(scope="module")
def reference_store(medium_export, tmp_path_factory, dask_client) -> str:
    path = str(tmp_path_factory.mktemp("reference") / "store.zarr")
    build_store(str(medium_export), path, OPTIONS, dask_client, progress=False)
    return path


def image_bytes(mode: str, size=(30, 20), fmt_name: str = "PNG", value: int = 90) -> bytes:
    buf = io.BytesIO()
    im = Image.new("L", size, 220)
    im.paste(value, (5, 5, size[0] - 5, size[1] - 5))
    if mode == "I;16":
        im = Image.fromarray(np.asarray(im).astype(np.uint16) * 257)
    else:
        im = im.convert(mode)
    im.save(buf, format=fmt_name)
    return buf.getvalue()


def test_bad_inputs_mixed_with_good_ones(tmp_path, dask_client):
    """Every readable image is stored; every other row is rejected with its reason."""
    root = tmp_path / "export"
    good = write_flowcam_export(root, {"a": 30, "b": 30}, with_features=False)
    meta = (good / "meta.csv").read_text().splitlines()
    meta += [
        "2001,validated,a_fine,a",  # truncated JPEG
        "2002,validated,a_fine,a",  # zero-byte file
        "2003,validated,a_fine,a",  # not an image
        "2004,validated,a_fine,a",  # PNG
        "2005,validated,b_fine,b",  # TIFF
        "2006,validated,b_fine,b",  # 16-bit PNG
        "2007,validated,b_fine,b",  # RGB JPEG
        "2008,validated,b_fine,b",  # palette GIF-style PNG
        "2009,validated,b_fine,b",  # over the decompression-bomb limit (set low below)
        "2010,validated,b_fine,b",  # meta row whose image is missing
        "2011,validated,b_fine,b",  # duplicate objid (second row)
        "2011,validated,b_fine,b",
        "2012,validated,,",  # empty label
        "2013,validated,a_fine,a,surplus,fields",  # malformed CSV line
        "abc,validated,a_fine,a",  # non-numeric objid
    ]
    (good / "meta.csv").write_text("\n".join(meta) + "\n")
    full = jpeg(Image.new("L", (40, 30), 100))
    extra = {
        "imgs/2001.jpg": full[: len(full) // 2],
        "imgs/2002.jpg": b"",
        "imgs/2003.jpg": b"this is not an image at all",
        "imgs/2004.png": image_bytes("L"),
        "imgs/2005.tif": image_bytes("L", fmt_name="TIFF"),
        "imgs/2006.png": image_bytes("I;16"),
        "imgs/2007.jpg": image_bytes("RGB", fmt_name="JPEG"),
        "imgs/2008.png": image_bytes("P"),
        "imgs/2009.png": image_bytes("L", size=(300, 300)),
        "imgs/2011.jpg": full,
        "imgs/2012.jpg": full,
        "imgs/2013.jpg": full,
        "imgs/9999.jpg": full,  # image with no row
        "../evil.jpg": full,  # unsafe member name
    }
    with zipfile.ZipFile(good / "imgs.zip", "a") as zf:
        for name, data in extra.items():
            zf.writestr(zipfile.ZipInfo(name), data)
    features = ["objid,area"] + [f"{1000 + i},{i}" for i in range(0, 60, 2)]  # half missing
    import gzip

    with gzip.open(good / "features_native.csv.gz", "wt") as f:
        f.write("\n".join(features) + "\n")

    def small_bomb_limit() -> None:
        Image.MAX_IMAGE_PIXELS = 20_000  # 300x300 = 90,000 > 2x the limit

    dask_client.run(small_bomb_limit)
    try:
        path = str(tmp_path / "store.zarr")
        summary = build_store(str(good), path, OPTIONS, dask_client, progress=False)
    finally:
        dask_client.run(lambda: setattr(Image, "MAX_IMAGE_PIXELS", 89_478_485))

    rejects = pd.read_csv(fmt.rejects_path(path), dtype={"objid": "Int64"})
    by_objid = rejects.dropna(subset=["objid"]).groupby("objid")["reason"].apply(list)
    assert by_objid[2001][0].startswith("corrupt or truncated image")
    assert by_objid[2002] == ["empty file (0 bytes)"]
    assert by_objid[2003] == ["not a readable image (unknown format)"]
    assert by_objid[2009][0].startswith("decompression-bomb guard")
    assert "imgs/2010.jpg" in by_objid[2010][0]
    assert any("duplicate objid 2011" in r for r in by_objid[2011])
    assert by_objid[2012] == ["no level2 label"]
    assert any("malformed CSV line" in r for r in rejects["reason"])
    assert any("'abc'" in r for r in rejects["reason"])
    assert any("9999" in str(r) and "no row" in r for r in rejects["reason"])
    assert any("unsafe path" in r for r in rejects["reason"])
    store = open_store(path)
    objid = store.array(fmt.OBJID)[:]
    stored_ok = set(objid[(store.splits >= 0) & (objid >= 0)])
    assert {2004, 2005, 2006, 2007, 2008}.issubset(stored_ok)
    # Only the first of the duplicate rows is stored; every other rejected objid is not.
    assert stored_ok & set(by_objid.index) == {2011}
    assert (objid == 2011).sum() == 1
    assert summary.rows_stored + len(rejects) == summary.rows_read
    # The 16-bit image kept its contrast (mapped, not clipped to white).
    index = int(np.flatnonzero(objid == 2006)[0])
    assert store.images[index].min() < 120
    # Missing feature rows are NaN, present ones are kept.
    table, _ = store.features("native")
    area = dict(zip(objid.tolist(), table[:, 0].tolist(), strict=True))
    assert area[1000] == 0 and np.isnan(area[1001])


class DieOnce(WorkerPlugin):
    """Kill the worker process the first time it starts one given block task."""

    def __init__(self, marker: str, block: int) -> None:
        self.marker, self.block = marker, block

    def setup(self, worker) -> None:
        self.worker = worker

    def transition(self, key, start, finish, **kwargs) -> None:
        if (
            finish == "executing"
            and str(key).endswith(f"-{self.block}")
            and "build-block" in str(key)
            and not os.path.exists(self.marker)
        ):
            Path(self.marker).touch()
            os.kill(os.getpid(), signal.SIGKILL)


def test_worker_killed_mid_build_still_gives_identical_arrays(
    medium_export, reference_store, tmp_path
):
    marker = tmp_path / "killed"
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster:
        with Client(cluster) as client:
            client.register_plugin(DieOnce(str(marker), block=3))
            path = str(tmp_path / "store.zarr")
            build_store(str(medium_export), path, OPTIONS, client, progress=False)
    assert marker.exists(), "the fault was not injected"
    assert_same_store(reference_store, path)


def blocks_written(path: Path) -> int:
    try:
        return int((zarr.open_group(str(path), mode="r")[fmt.BLOCK_CHECKSUM][:] > 0).sum())
    except (FileNotFoundError, KeyError, zarr.errors.GroupNotFoundError):
        return 0  # the client has not created the store yet


class SlowBlocks(WorkerPlugin):
    """Hold every block task from the given one on for a while (time to kill the client)."""

    def __init__(self, from_block: int, seconds: float) -> None:
        self.from_block, self.seconds = from_block, seconds

    def transition(self, key, start, finish, **kwargs) -> None:
        if finish == "executing" and "build-block" in str(key):
            if int(str(key).rsplit("-", 1)[1]) >= self.from_block:
                time.sleep(self.seconds)


def test_interrupted_build_is_refused_then_resumed_to_identical(
    medium_export, reference_store, tmp_path
):
    path = tmp_path / "store.zarr"
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster:
        with Client(cluster) as client:
            client.register_plugin(SlowBlocks(from_block=4, seconds=6), name="slow")
            command = [
                sys.executable, "-m", "jobs.cli", "build-store", str(medium_export), str(path),
                "--scheduler", cluster.scheduler_address, "--block-size", "16",
                "--chunk-size", "16", "--augment-below", "20", "--size", "24x16",
            ]  # fmt: skip
            client_process = subprocess.Popen(command, cwd=REPO_ROOT, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 60
            while blocks_written(path) < 4 and time.monotonic() < deadline:
                time.sleep(0.05)
            client_process.kill()  # the client dies mid-build
            client_process.wait()
            client.unregister_worker_plugin("slow")
            client.restart()  # drop the held tasks
            with pytest.raises(IncompleteStoreError, match="--resume"):
                open_store(str(path))
            written = zarr.open_group(str(path), mode="r")[fmt.BLOCK_CHECKSUM][:]
            assert 0 < (written > 0).sum() < len(written)
            with pytest.raises(StoreExistsError, match="--resume"):
                build_store(str(medium_export), str(path), OPTIONS, client, progress=False)
            summary = build_store(
                str(medium_export), str(path), OPTIONS, client, resume=True, progress=False
            )
    assert summary.rows_stored + len(summary.rejects) == summary.rows_read
    assert_same_store(reference_store, str(path))


def test_same_inputs_and_seed_give_identical_store(medium_export, reference_store, tmp_path):
    path = str(tmp_path / "again.zarr")
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0") as cluster:
        with Client(cluster) as client:
            build_store(str(medium_export), path, OPTIONS, client, progress=False)
    assert_same_store(reference_store, path)
    other_seed = str(tmp_path / "seed1.zarr")
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0") as cluster:
        with Client(cluster) as client:
            build_store(
                str(medium_export),
                other_seed,
                BuildOptions(**{**OPTIONS.__dict__, "seed": 1}),
                client,
                progress=False,
            )
    assert not np.array_equal(arrays_of(other_seed)[fmt.OBJID], arrays_of(path)[fmt.OBJID])


def test_verify_names_a_corrupted_block(reference_store, tmp_path):
    import shutil

    path = tmp_path / "copy.zarr"
    shutil.copytree(reference_store, path)
    ok = CliRunner().invoke(verify_command, [str(path)])
    assert ok.exit_code == 0 and "every block matches" in ok.output
    # Flip one byte inside a chunk of the label array (block 2 = its third chunk).
    chunk = next(p for p in (path / fmt.LABEL / "c").iterdir() if p.name == "2")
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    bad = CliRunner().invoke(verify_command, [str(path)])
    assert bad.exit_code == 1
    assert "block 2:" in bad.output and "block 1:" not in bad.output


def test_failed_rebuild_keeps_the_previous_store(medium_export, reference_store, tmp_path):
    import shutil

    path = tmp_path / "keep.zarr"
    shutil.copytree(reference_store, path)
    shutil.copy(fmt.rejects_path(reference_store), fmt.rejects_path(str(path)))
    refused = CliRunner().invoke(build_store_command, [str(medium_export), str(path)])
    assert refused.exit_code == 2 and "--overwrite" in refused.output
    # A rebuild whose blocks all fail (unreachable store path inside the task).
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0") as cluster:
        with Client(cluster) as client:

            def break_writes() -> None:
                import plankton_store.store._block as build

                def fail(*args, **kwargs):
                    raise RuntimeError("disk on fire")

                build.write_block = fail

            client.run(break_writes)
            with pytest.raises(RuntimeError, match="disk on fire"):
                build_store(
                    str(medium_export), str(path), OPTIONS, client, overwrite=True, progress=False
                )
    assert_same_store(reference_store, str(path))
    assert open_store(str(path)).complete
