"""Plain Zarr v3 against Icechunk for the store's images: write and read speed, and who opens it.

    pip install "icechunk==1.1.21"      # not a dependency of plankton-jobs
    RUST_LOG=error python benchmarks/icechunk_compare.py STORE [--samples 36864]

Copies the first ``--samples`` images of a built store, shard by shard (4096 images, chunks
of 512, zstd level 1: the store's own layout), into a plain Zarr v3 group and into an
Icechunk repository (one commit), then reads each back whole; best of ``--repeat`` runs, one
process. Then tries the plain readers on both paths with no extra arguments:
``zarr.open_group``, ``xarray.open_zarr`` and ``dask.array.from_zarr``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import zarr
from zarr.codecs import ZstdCodec

SHARD, CHUNK = 4096, 512


def write(group: zarr.Group, images: np.ndarray) -> None:
    n, h, w = images.shape
    array = group.create_array(
        "images", shape=images.shape, chunks=(CHUNK, h, w), shards=(SHARD, h, w),
        dtype="uint8", compressors=ZstdCodec(level=1), fill_value=0,
        dimension_names=("sample", "y", "x"),
    )  # fmt: skip
    for start in range(0, n, SHARD):
        array[start : start + SHARD] = images[start : start + SHARD]


def plain_write(path: Path, images: np.ndarray) -> None:
    write(zarr.open_group(path, mode="w", zarr_format=3), images)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zarr.consolidate_metadata(str(path))


def icechunk_write(path: Path, images: np.ndarray) -> None:
    import icechunk

    repo = icechunk.Repository.create(icechunk.local_filesystem_storage(str(path)))
    session = repo.writable_session("main")
    write(zarr.open_group(session.store, mode="w", zarr_format=3), images)
    session.commit("images")


def plain_read(path: Path) -> np.ndarray:
    return zarr.open_group(path, mode="r")["images"][:]


def icechunk_read(path: Path) -> np.ndarray:
    import icechunk

    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(path)))
    store = repo.readonly_session(branch="main").store
    return zarr.open_group(store, mode="r")["images"][:]


def best(func, *args, repeat: int) -> float:  # noqa: ANN001
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        func(*args)
        times.append(time.perf_counter() - started)
    return min(times)


def openers(path: Path) -> dict[str, str]:
    """Whether each plain reader opens ``path`` with no extra arguments."""
    import dask.array as da
    import xarray as xr

    tries = {
        "zarr.open_group": lambda: zarr.open_group(path, mode="r")["images"].shape,
        "xarray.open_zarr": lambda: xr.open_zarr(path).sizes["sample"],
        "dask.array.from_zarr": lambda: da.from_zarr(str(path), component="images").shape,
    }
    out = {}
    for name, attempt in tries.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out[name] = f"opens ({attempt()})"
        except Exception as exc:  # noqa: BLE001 - any failure is the answer
            out[name] = f"fails: {type(exc).__name__}: {str(exc).splitlines()[0][:90]}"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", help="A built plankton store to take the images from.")
    parser.add_argument("--samples", type=int, default=36864)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    images = zarr.open_group(args.store, mode="r")["images"][: args.samples]
    mib = images.nbytes / 2**20
    work = Path(tempfile.mkdtemp(prefix="bench-icechunk-"))
    try:
        for name, writer, reader in (
            ("plain Zarr v3", plain_write, plain_read),
            ("Icechunk", icechunk_write, icechunk_read),
        ):
            path = work / name.split()[0].lower()
            t_write = best(lambda p=path, w=writer: (shutil.rmtree(p, True), w(p, images)),
                           repeat=args.repeat)  # fmt: skip
            t_read = best(reader, path, repeat=args.repeat)
            assert np.array_equal(reader(path), images)
            print(
                f"{name}: {len(images)} images ({mib:.0f} MiB): write {t_write:.2f} s "
                f"({len(images) / t_write:,.0f} images/s), read {t_read:.2f} s "
                f"({len(images) / t_read:,.0f} images/s)"
            )
            for reader_name, result in openers(path).items():
                print(f"  {reader_name}({path.name}): {result}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
