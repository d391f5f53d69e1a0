"""The build's bounded-memory paths (issue 39) give the same store as the default ones.

meta.csv read in pieces, the feature tables parsed in pieces and hashed in pieces, and the
block tasks made one at a time as a bounded window of them runs: each is forced here with
tiny sizes on the demo export, and the store, its counts and its rejects must not change.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import zarr

from plankton_store.io import Taxonomy, _features, _flowcam, _listing, _meta, read_export
from plankton_store.store import BuildOptions, _block, build_store
from plankton_store.store import format as fmt
from plankton_store.store._source import read_for_store

#: Attributes that say when or how long, not what.
VOLATILE = {"created", "finished", "build_seconds"}


@pytest.fixture(scope="module")
def demo_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from plankton_store.demo import make_demo_export

    root = tmp_path_factory.mktemp("archive-scale")
    return make_demo_export(root / "export", scale=0.005, seed=3, workers=2, progress=False)


def tiny_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every piecewise path of a build with pieces a few rows long."""
    monkeypatch.setattr(_meta, "META_PIECE_BYTES", 200)
    monkeypatch.setattr(_features, "FEATURE_PIECE_ROWS", 7)
    monkeypatch.setattr(_flowcam, "HASH_PIECE_BYTES", 100)
    monkeypatch.setattr(_block, "TASKS_PER_THREAD", 1)
    monkeypatch.setattr(_listing, "REF_PIECE_NAMES", 5)


def without_volatile(value: object) -> object:
    """``value`` (attributes: dicts, lists...) without the :data:`VOLATILE` keys."""
    if isinstance(value, dict):
        return {k: without_volatile(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [without_volatile(v) for v in value]
    return value


def store_contents(path: str) -> tuple[object, dict[str, np.ndarray]]:
    group = zarr.open_group(path, mode="r")
    arrays = {name: array[...] for name, array in group.arrays()}
    return without_volatile(dict(group.attrs)), arrays


def assert_same_build(summary, path: str, other, other_path: str) -> dict[str, np.ndarray]:
    """Two builds gave the same counts, rejects, attributes, arrays and rejects file."""
    assert summary.counts == other.counts
    assert (summary.rows_read, summary.rows_stored, summary.augmented_copies) == (
        other.rows_read,
        other.rows_stored,
        other.augmented_copies,
    )
    pd.testing.assert_frame_equal(summary.rejects, other.rejects)
    attrs, arrays = store_contents(path)
    other_attrs, other_arrays = store_contents(other_path)
    assert attrs == other_attrs
    assert sorted(arrays) == sorted(other_arrays)
    assert fmt.features_array_name("native") in arrays  # the feature rows went through
    for name, values in arrays.items():
        np.testing.assert_array_equal(values, other_arrays[name], err_msg=name)
    rejects = [Path(fmt.rejects_path(p)).read_bytes() for p in (path, other_path)]
    assert rejects[0] == rejects[1]
    return arrays


def test_tiny_pieces_build_the_same_store(
    demo_export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dask_client
) -> None:
    options = BuildOptions(
        size=(32, 24), block_size=64, chunk_size=32, augment_below=40, max_per_class=60
    )
    default = str(tmp_path / "default.zarr")
    summary = build_store(str(demo_export), default, options, dask_client, progress=False)
    tiny_pieces(monkeypatch)
    pieces = str(tmp_path / "pieces.zarr")
    tiny = build_store(str(demo_export), pieces, options, dask_client, progress=False)

    arrays = assert_same_build(summary, default, tiny, pieces)
    # Many blocks, so the window of tasks moved on many times.
    assert arrays[fmt.BLOCK_CHECKSUM].size >= 8


def test_feature_tables_kept_on_the_cluster_build_the_same_store(
    demo_export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dask_client
) -> None:
    """A large export's feature tables stay on the worker that parsed them; the block
    tasks gather their rows there (the demo export is small: the threshold is lowered)."""
    options = BuildOptions(size=(32, 24), block_size=64, chunk_size=32, max_per_class=60)
    default = str(tmp_path / "default.zarr")
    summary = build_store(str(demo_export), default, options, dask_client, progress=False)
    monkeypatch.setattr(_flowcam, "EXECUTOR_MIN_META_BYTES", 0)
    monkeypatch.setattr(_block, "TASKS_PER_THREAD", 1)
    export = read_for_store(
        str(demo_export), "level2", (), Taxonomy(), dask_client, None, print, keep_features=True
    )
    here = read_export(demo_export)
    assert export.kept_features is not None
    assert len(export.features["native"]) == 0  # the client holds the columns only
    assert list(export.features["native"].columns) == list(here.features["native"].columns)
    kept_path = str(tmp_path / "kept.zarr")
    kept = build_store(str(demo_export), kept_path, options, dask_client, progress=False)
    assert_same_build(summary, default, kept, kept_path)


@pytest.mark.parametrize("piece_bytes", [1, 97, 1 << 20])
def test_compact_read_keeps_what_the_build_uses(
    demo_export: Path, monkeypatch: pytest.MonkeyPatch, piece_bytes: int
) -> None:
    """``extra_columns=()`` keeps objid, label and image only, equal to the full read's,
    whatever the piece size; the rejects and the fingerprint do not change."""
    full = read_export(demo_export)
    monkeypatch.setattr(_meta, "META_PIECE_BYTES", piece_bytes)
    monkeypatch.setattr(_features, "FEATURE_PIECE_ROWS", 5)
    compact = read_export(demo_export, extra_columns=())
    assert list(compact.table.columns) == ["objid", "label", "image"]
    pd.testing.assert_frame_equal(compact.table, full.table[["objid", "label", "image"]])
    pd.testing.assert_frame_equal(compact.rejects, full.rejects)
    assert (compact.rows_read, compact.fingerprint) == (full.rows_read, full.fingerprint)
    for name, frame in full.features.items():
        pd.testing.assert_frame_equal(compact.features[name], frame)
    kept = read_export(demo_export, extra_columns=("depth_min",))
    assert list(kept.table.columns) == ["objid", "label", "image", "depth_min"]
    assert kept.table["depth_min"].tolist() == full.table["depth_min"].tolist()


def test_zip_names_looked_at_in_pieces_give_the_same_references(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    names = ["imgs/1.jpg", "../x.jpg", "/a.png", "c:d.jpg", "imgs/b.txt", ".DS_Store"]
    names += ["imgs/99999999999999999999.jpg", "imgs/7.JPG", "\\x.jpg", "imgs/x/3.png"]
    whole = _listing._ref_frame(names * 3)
    monkeypatch.setattr(_listing, "REF_PIECE_NAMES", 4)
    pd.testing.assert_frame_equal(_listing._ref_frame(names * 3), whole)
    assert whole["objid"].tolist()[:10] == [1, *[pd.NA] * 6, 7, pd.NA, 3]
    assert whole["unsafe"].tolist()[:10] == [False, True, True, True, *[False] * 4, True, False]


@pytest.mark.parametrize("limit", [0, 64, 1500])
def test_zip64_members_are_listed_in_one_pass_as_zipfile_lists_them(
    monkeypatch: pytest.MonkeyPatch, limit: int
) -> None:
    """Past 4 GiB (the 10x export's zip is 7 GB) members carry their sizes and offsets in
    zip64 extra fields; the one-pass reader reads them instead of handing the whole
    listing to zipfile. Lowering zipfile's limit makes such records in a small zip."""
    import zipfile

    from plankton_store.io._zipdir import _central_directory, _parse_central_directory
    from tests.test_sources import make_zip, zipfile_listing

    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", limit)
    data = make_zip(40)
    directory = _central_directory(io.BytesIO(data))
    assert directory is not None
    parsed = _parse_central_directory(directory)
    assert parsed is not None
    names, members, fingerprint = zipfile_listing(data)
    assert parsed.names == names
    assert {name: tuple(m) for name, m in parsed.members.items()} == members
    assert parsed.fingerprint == fingerprint
    if limit == 0:  # every record is zip64: at least one offset came from its extra field
        assert data.count(b"\xff\xff\xff\xff") >= 40


def _square(x: int) -> int:
    return x * x


def test_a_window_of_tasks_reads_each_call_once_and_keeps_the_order(dask_client) -> None:
    """run_blocks with a window reads ``calls[i]`` only when it submits task i, once."""
    from plankton_store.cluster import run_blocks

    class Calls(Sequence[tuple[int]]):
        def __init__(self) -> None:
            self.read: list[int] = []

        def __len__(self) -> int:
            return 23

        def __getitem__(self, index):  # type: ignore[no-untyped-def]
            self.read.append(index)
            return (index,)

    calls = Calls()
    finished: list[int] = []

    def on_result(index: int, result: int) -> None:
        finished.append(index)
        # Never more than the window submitted ahead of what has finished.
        assert len(calls.read) <= len(finished) + 3

    results = run_blocks(
        dask_client, _square, calls, name="square", window=3, progress=False, on_result=on_result
    )
    assert results == [i * i for i in range(23)]
    assert calls.read == list(range(23))
