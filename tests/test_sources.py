"""Tests of the export readers on small hand-made exports."""

from __future__ import annotations

import gzip
import io
import multiprocessing
import os
import pickle
import re
import shutil
import zipfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from plankton_store.io import (
    Export,
    ExportError,
    ImageFetcher,
    _export,
    _flowcam,
    _meta,
    read_export,
    read_flowcam_export,
    read_image_folder,
)

HEADER = ["objid", "projid", "status", "latitude", "level1", "level2"]


def jpeg_bytes(value: int, size: tuple[int, int] = (6, 5)) -> bytes:
    """A tiny grayscale JPEG whose pixels are all ``value``."""
    buf = io.BytesIO()
    Image.new("L", size, color=value).save(buf, format="JPEG")
    return buf.getvalue()


def row(objid: object, level1: str = "copepod_calanoid", level2: str = "copepod") -> list[str]:
    return [str(objid), "7", "validated", "43.5", level1, level2]


GOOD_ROWS = [
    row(42),
    row(7, "chaetognath_sagitta", "chaetognath"),
    row(100, "detritus_other", "detritus"),
]


def make_export(
    root: Path,
    rows: list[list[str]] | None = None,
    *,
    header: list[str] | None = None,
    images: dict[str, bytes] | None = None,
    layout: str = "zip",
    meta_text: str | None = None,
) -> Path:
    """Write ``meta.csv`` and the images (``imgs.zip`` or an ``imgs/`` folder) into ``root``.

    ``images`` defaults to one JPEG ``imgs/<objid>.jpg`` per row; ``meta_text`` replaces
    the generated meta.csv verbatim.
    """
    rows = GOOD_ROWS if rows is None else rows
    header = HEADER if header is None else header
    root.mkdir(parents=True, exist_ok=True)
    if meta_text is None:
        meta_text = "\n".join(",".join(r) for r in [header, *rows]) + "\n"
    (root / "meta.csv").write_text(meta_text, encoding="utf-8")
    if images is None:
        images = {f"imgs/{r[0]}.jpg": jpeg_bytes(10 * i) for i, r in enumerate(rows)}
    if layout == "zip":
        with zipfile.ZipFile(root / "imgs.zip", "w", zipfile.ZIP_STORED) as zf:
            for name, data in images.items():
                zf.writestr(zipfile.ZipInfo(name), data)  # ZipInfo keeps odd names as given
    elif layout == "folder":
        for name, data in images.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(data)
    return root


def make_image_folder(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def check_invariant(export: Export) -> None:
    """Nothing disappears: every input row is in the table or in the rejects."""
    assert len(export.table) + len(export.rejects) == export.rows_read
    assert isinstance(export.table.index, pd.RangeIndex)
    assert isinstance(export.rejects.index, pd.RangeIndex)
    assert export.table["objid"].dtype == np.int64
    assert isinstance(export.table["label"].dtype, pd.StringDtype)
    assert export.table["label"].dtype.na_value is pd.NA
    assert list(export.rejects.columns) == ["objid", "image", "reason"]
    assert export.rejects["objid"].dtype == "Int64"
    assert export.rejects["reason"].notna().all()
    assert export.table["objid"].is_unique


def reasons(export: Export) -> list[str]:
    return export.rejects["reason"].tolist()


# --------------------------------------------------------------------------- good data


def test_flowcam_zip_good(tmp_path: Path) -> None:
    export = read_flowcam_export(make_export(tmp_path / "exp"))
    check_invariant(export)
    assert export.layout == "flowcam"
    assert export.root == str(tmp_path / "exp")
    assert export.label_column == "level2"
    assert export.rows_read == 3
    assert export.rejects.empty
    t = export.table
    assert list(t.columns) == ["objid", "label", "image", "projid", "status", "latitude"] + [
        "level1",
        "level2",
    ]
    assert t["objid"].tolist() == [42, 7, 100]  # input order
    assert t["label"].tolist() == ["copepod", "chaetognath", "detritus"]
    assert t["image"].tolist() == ["imgs/42.jpg", "imgs/7.jpg", "imgs/100.jpg"]
    assert t["latitude"].tolist() == ["43.5"] * 3  # other columns kept as strings
    assert export.features == {}
    assert export.fetcher == ImageFetcher(str(tmp_path / "exp"), "imgs.zip")
    assert len(export.fingerprint) == 16
    int(export.fingerprint, 16)


def test_zip_and_folder_variants_give_same_table(tmp_path: Path) -> None:
    from_zip = read_export(make_export(tmp_path / "z", layout="zip"))
    from_dir = read_export(make_export(tmp_path / "d", layout="folder"))
    check_invariant(from_dir)
    pd.testing.assert_frame_equal(from_zip.table, from_dir.table)
    assert from_dir.fetcher == ImageFetcher(str(tmp_path / "d"), None)
    for ref in from_zip.table["image"]:
        assert from_zip.fetcher.fetch(ref) == from_dir.fetcher.fetch(ref)


def test_label_column_level1(tmp_path: Path) -> None:
    export = read_export(make_export(tmp_path), label_column="level1")
    check_invariant(export)
    assert export.label_column == "level1"
    assert export.table["label"].tolist() == [
        "copepod_calanoid",
        "chaetognath_sagitta",
        "detritus_other",
    ]
    assert "level2" in export.table.columns and "level1" in export.table.columns


def test_empty_label_is_na_not_rejected(tmp_path: Path) -> None:
    rows = [row(1, level2=""), row(2, level2="  "), row(3)]
    export = read_export(make_export(tmp_path, rows))
    check_invariant(export)
    assert export.rejects.empty
    assert export.table["label"].isna().tolist() == [True, True, False]
    assert export.table["label"][0] is pd.NA


def test_cells_are_never_evaluated(tmp_path: Path) -> None:
    text = (
        "objid,level2,note,lat\n"
        '1,copepod,"=cmd|\' /C calc\'!A0","0012"\n'
        '2,"cope, pod","two\nlines",NA\n'
        "3,NaN,None,1e5\n"
    )
    export = read_export(make_export(tmp_path, [["1"], ["2"], ["3"]], meta_text=text))
    check_invariant(export)
    t = export.table
    assert t["note"].tolist() == ["=cmd|' /C calc'!A0", "two\nlines", "None"]
    assert t["lat"].tolist() == ["0012", "NA", "1e5"]
    assert t["label"].tolist() == ["copepod", "cope, pod", "NaN"]


def test_liberal_image_names(tmp_path: Path) -> None:
    images = {
        "imgs/1.JPG": jpeg_bytes(1),
        "imgs/sub/2.png": jpeg_bytes(2),
        "imgs/0003.jpeg": jpeg_bytes(3),
        "imgs/": b"",  # a directory entry: not an input row
    }
    export = read_export(make_export(tmp_path, [row(1), row(2), row(3)], images=images))
    check_invariant(export)
    assert export.rejects.empty
    assert export.table["image"].tolist() == ["imgs/1.JPG", "imgs/sub/2.png", "imgs/0003.jpeg"]


def test_tab_separated_meta(tmp_path: Path) -> None:
    text = "objid\tlevel2\n5\tcopepod\n"
    export = read_export(make_export(tmp_path, [["5"]], meta_text=text))
    check_invariant(export)
    assert export.table["label"].tolist() == ["copepod"]


def test_fingerprint_is_deterministic(tmp_path: Path) -> None:
    a = make_export(tmp_path / "a")
    b = tmp_path / "b"
    shutil.copytree(a, b)
    os.utime(b / "meta.csv", (0, 0))  # mtimes are not inputs
    fa, fb = read_export(a).fingerprint, read_export(b).fingerprint
    assert fa == fb
    (b / "meta.csv").write_text((b / "meta.csv").read_text() + "\n", encoding="utf-8")
    assert read_export(b).fingerprint != fa
    c = make_export(
        tmp_path / "c",
        images={"imgs/42.jpg": jpeg_bytes(200)}
        | {f"imgs/{r[0]}.jpg": jpeg_bytes(0) for r in GOOD_ROWS[1:]},
    )
    assert read_export(c).fingerprint != fa


# --------------------------------------------------------------------------- image folder


def test_image_folder_good(tmp_path: Path) -> None:
    root = make_image_folder(
        tmp_path / "imgs_by_class",
        {
            "copepod/b.jpg": jpeg_bytes(1),
            "copepod/a.PNG": jpeg_bytes(2),
            "diatom/x/deep.tiff": jpeg_bytes(3),
            "loose.jpeg": jpeg_bytes(4),
        },
    )
    export = read_export(root)
    check_invariant(export)
    assert export.layout == "image-folder"
    assert export.label_column == "folder"
    assert export.rows_read == 4 and export.rejects.empty
    t = export.table
    assert list(t.columns) == ["objid", "label", "image"]
    assert t["objid"].tolist() == [1, 2, 3, 4]
    assert t["image"].tolist() == [
        "copepod/a.PNG",
        "copepod/b.jpg",
        "diatom/x/deep.tiff",
        "loose.jpeg",
    ]
    assert t["label"].tolist()[:3] == ["copepod", "copepod", "diatom"]
    assert t["label"][3] is pd.NA
    assert export.features == {}
    assert export.fetcher == ImageFetcher(str(root), None)
    assert export.fetcher.fetch("copepod/a.PNG") == jpeg_bytes(2)


def test_image_folder_unlabelled_flat(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path, {"p1.jpg": jpeg_bytes(1), "p2.jpg": jpeg_bytes(2)})
    export = read_image_folder(root)
    check_invariant(export)
    assert export.table["label"].isna().all()
    assert export.table["image"].tolist() == ["p1.jpg", "p2.jpg"]


def test_image_folder_non_image_files_are_rejects(tmp_path: Path) -> None:
    root = make_image_folder(
        tmp_path,
        {"README.txt": b"hi", "copepod/.DS_Store": b"\0", "copepod/1.jpg": jpeg_bytes(1)},
    )
    export = read_export(root)
    check_invariant(export)
    assert export.rows_read == 3
    assert export.table["image"].tolist() == ["copepod/1.jpg"]
    assert export.rejects["image"].tolist() == ["README.txt", "copepod/.DS_Store"]
    assert reasons(export) == ["not an image file extension"] * 2
    assert export.rejects["objid"].isna().all()


def test_image_folder_fingerprint(tmp_path: Path) -> None:
    a = make_image_folder(tmp_path / "a", {"c/1.jpg": jpeg_bytes(1)})
    b = make_image_folder(tmp_path / "b", {"c/1.jpg": jpeg_bytes(1)})
    assert read_image_folder(a).fingerprint == read_image_folder(b).fingerprint
    (b / "c" / "2.jpg").write_bytes(jpeg_bytes(2))
    assert read_image_folder(a).fingerprint != read_image_folder(b).fingerprint


def test_both_layouts_same_table_semantics(tmp_path: Path) -> None:
    flow = read_export(make_export(tmp_path / "f"))
    folder = read_export(make_image_folder(tmp_path / "i", {"copepod/1.jpg": jpeg_bytes(1)}))
    for export in (flow, folder):
        check_invariant(export)
        assert list(export.table.columns[:3]) == ["objid", "label", "image"]
        assert export.table["image"].dtype == flow.table["image"].dtype
        for ref in export.table["image"]:
            assert export.fetcher.fetch(ref)[:2] == b"\xff\xd8"  # JPEG magic


# --------------------------------------------------------------------------- fetcher


def _fetch_in_worker(fetcher: ImageFetcher, refs: list[str]) -> tuple[int, list[bytes]]:
    return os.getpid(), [fetcher.fetch(r) for r in refs]


@pytest.mark.parametrize("layout", ["zip", "folder"])
def test_fetcher_round_trip_pickle_and_process(tmp_path: Path, layout: str) -> None:
    images = {f"imgs/{r[0]}.jpg": jpeg_bytes(30 * i + 5) for i, r in enumerate(GOOD_ROWS)}
    export = read_export(make_export(tmp_path, images=images, layout=layout))
    fetcher = export.fetcher
    refs = export.table["image"].tolist()
    assert [fetcher.fetch(r) for r in refs] == list(images.values())  # opens the zip
    blob = pickle.dumps(fetcher)
    assert len(blob) < 300  # two strings, no file handle
    clone = pickle.loads(blob)
    assert clone == fetcher
    assert clone.fetch(refs[1]) == images[refs[1]]
    decoded = Image.open(io.BytesIO(clone.fetch(refs[2])))
    assert decoded.size == (6, 5)
    # fork: the child inherits the parent's open zip but must open its own.
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else None)
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        pid, got = pool.submit(_fetch_in_worker, fetcher, refs).result(timeout=60)
    assert pid != os.getpid()
    assert got == list(images.values())


@pytest.mark.parametrize("layout", ["zip", "folder"])
def test_fetcher_missing_ref(tmp_path: Path, layout: str) -> None:
    fetcher = read_export(make_export(tmp_path, layout=layout)).fetcher
    with pytest.raises(FileNotFoundError, match="no image 'imgs/999.jpg'"):
        fetcher.fetch("imgs/999.jpg")


def test_fetcher_refuses_to_leave_root(tmp_path: Path) -> None:
    (tmp_path / "secret.jpg").write_bytes(b"x")
    fetcher = ImageFetcher(str(tmp_path / "root"), None)
    with pytest.raises(FileNotFoundError, match="leaves"):
        fetcher.fetch("../secret.jpg")


# --------------------------------------------------------------------------- row problems


def test_non_numeric_objid(tmp_path: Path) -> None:
    rows = [row(1), row("abc"), row("1.5"), row(""), row(" 2 ")]
    images = {"imgs/1.jpg": jpeg_bytes(1), "imgs/2.jpg": jpeg_bytes(2)}
    export = read_export(make_export(tmp_path, rows, images=images))
    check_invariant(export)
    assert export.table["objid"].tolist() == [1, 2]
    assert reasons(export) == [
        "objid 'abc' is not an integer",
        "objid '1.5' is not an integer",
        "objid '' is not an integer",
    ]
    assert export.rejects["objid"].isna().all()


def test_objid_out_of_int64_range(tmp_path: Path) -> None:
    rows = [row(1), row(2**63), row(-(2**63))]
    images = {"imgs/1.jpg": jpeg_bytes(1), f"imgs/{-(2**63)}.jpg": jpeg_bytes(2)}
    export = read_export(make_export(tmp_path, rows, images=images))
    check_invariant(export)
    assert export.table["objid"].tolist() == [1, -(2**63)]
    assert reasons(export) == [f"objid '{2**63}' is out of the int64 range"]


def test_duplicate_objid(tmp_path: Path) -> None:
    rows = [row(5), row(42), row(42, level2="x"), row(5), row(42)]
    images = {"imgs/5.jpg": jpeg_bytes(1), "imgs/42.jpg": jpeg_bytes(2)}
    export = read_export(make_export(tmp_path, rows, images=images))
    check_invariant(export)
    assert export.rows_read == 5
    assert export.table["objid"].tolist() == [5, 42]
    assert export.table["label"].tolist() == ["copepod", "copepod"]  # the first row wins
    assert reasons(export) == [
        "duplicate objid 42 (first seen on line 3)",
        "duplicate objid 5 (first seen on line 2)",
        "duplicate objid 42 (first seen on line 3)",
    ]
    assert export.rejects["objid"].tolist() == [42, 5, 42]


@pytest.mark.parametrize(("layout", "where"), [("zip", "in imgs.zip"), ("folder", "in imgs/")])
def test_missing_image(tmp_path: Path, layout: str, where: str) -> None:
    images = {"imgs/42.jpg": jpeg_bytes(1), "imgs/100.jpg": jpeg_bytes(2)}
    export = read_export(make_export(tmp_path, images=images, layout=layout))
    check_invariant(export)
    assert export.table["objid"].tolist() == [42, 100]
    assert reasons(export) == [f"no image imgs/7.jpg {where}"]
    assert export.rejects["objid"].tolist() == [7]
    assert export.rejects["image"].isna().all()


def test_image_without_row(tmp_path: Path) -> None:
    images = {f"imgs/{r[0]}.jpg": jpeg_bytes(1) for r in GOOD_ROWS}
    images |= {"imgs/99.jpg": jpeg_bytes(2), "imgs/extra_shot.png": jpeg_bytes(3)}
    export = read_export(make_export(tmp_path, images=images))
    check_invariant(export)
    assert export.rows_read == 5
    assert len(export.table) == 3
    assert reasons(export) == [
        "image imgs/99.jpg has no row in meta.csv",
        "image imgs/extra_shot.png has no row in meta.csv",
    ]
    assert export.rejects["objid"].tolist() == [99, pd.NA]
    assert export.rejects["image"].tolist() == ["imgs/99.jpg", "imgs/extra_shot.png"]


def test_unsafe_zip_members_are_never_used(tmp_path: Path) -> None:
    images = {f"imgs/{r[0]}.jpg": jpeg_bytes(1) for r in GOOD_ROWS}
    images |= {"../evil.jpg": b"x", "/abs/7.jpg": b"x", "imgs/../../100.jpg": b"x"}
    export = read_export(make_export(tmp_path, images=images))
    check_invariant(export)
    assert export.table["image"].tolist() == ["imgs/42.jpg", "imgs/7.jpg", "imgs/100.jpg"]
    assert reasons(export) == [
        "unsafe path in zip: ../evil.jpg",
        "unsafe path in zip: /abs/7.jpg",
        "unsafe path in zip: imgs/../../100.jpg",
    ]
    assert export.rejects["objid"].isna().all()


def test_unsafe_member_does_not_count_as_the_rows_image(tmp_path: Path) -> None:
    images = {"imgs/42.jpg": jpeg_bytes(1), "imgs/100.jpg": jpeg_bytes(1), "../7.jpg": b"x"}
    export = read_export(make_export(tmp_path, images=images))
    check_invariant(export)
    assert reasons(export) == ["no image imgs/7.jpg in imgs.zip", "unsafe path in zip: ../7.jpg"]


def test_non_image_and_second_image_members(tmp_path: Path) -> None:
    images = {f"imgs/{r[0]}.jpg": jpeg_bytes(1) for r in GOOD_ROWS}
    images |= {"imgs/notes.txt": b"x", "imgs/42.png": jpeg_bytes(2)}
    export = read_export(make_export(tmp_path, images=images))
    check_invariant(export)
    assert export.table["image"].tolist() == ["imgs/42.jpg", "imgs/7.jpg", "imgs/100.jpg"]
    assert reasons(export) == [
        "not an image file extension",
        "second image for objid 42: imgs/42.png (kept imgs/42.jpg)",
    ]
    assert export.rejects["objid"].tolist() == [pd.NA, 42]


def test_malformed_csv_lines(tmp_path: Path) -> None:
    text = (
        "objid,level1,level2\n"
        "1,a,copepod\n"
        "2,a,copepod,surplus,fields\n"
        "\n"  # blank: not a row
        "3,a\n"
        '4,"quoted\nnewline",copepod\n'
        "5,a,b,c\n"
        "6,a,copepod\n"
    )
    images = {f"imgs/{i}.jpg": jpeg_bytes(i) for i in range(1, 7)}
    export = read_export(make_export(tmp_path, images=images, meta_text=text))
    check_invariant(export)
    assert export.table["objid"].tolist() == [1, 4, 6]
    assert reasons(export) == [
        "malformed CSV line 3: expected 3 fields, saw 5",
        "malformed CSV line 5: expected 3 fields, saw 2",
        "malformed CSV line 8: expected 3 fields, saw 4",
        "image imgs/2.jpg has no row in meta.csv",
        "image imgs/3.jpg has no row in meta.csv",
        "image imgs/5.jpg has no row in meta.csv",
    ]
    assert export.rows_read == 9


def test_every_problem_at_once_keeps_the_count(tmp_path: Path) -> None:
    rows = [row(1), row("x"), row(1), row(2), ["3", "too", "few"]]
    images = {"imgs/1.jpg": b"1", "imgs/9.jpg": b"9", "../e.jpg": b"e", "imgs/a.txt": b"a"}
    export = read_export(make_export(tmp_path, rows, images=images))
    check_invariant(export)
    assert export.rows_read == 5 + 3  # 5 rows + 3 members with no row
    assert export.table["objid"].tolist() == [1]


# --------------------------------------------------------------------------- features


def write_features(root: Path, name: str, text: str) -> None:
    (root / f"features_{name}.csv.gz").write_bytes(gzip.compress(text.encode()))


def test_feature_tables(tmp_path: Path) -> None:
    root = make_export(tmp_path)
    write_features(root, "native", "objid,area,Mean Grey\n42,10,0.5\n7,,NaN\n100,3.25,n/a\n")
    write_features(root, "skimage", "objid,eccentricity\n7,0.1\n42,abc\n")
    export = read_export(root)
    check_invariant(export)
    assert set(export.features) == {"native", "skimage"}
    native = export.features["native"]
    assert list(native.columns) == ["area", "Mean Grey"]
    assert native.index.name == "objid" and native.index.dtype == np.int64
    assert native.index.tolist() == [42, 7, 100]
    assert (native.dtypes == np.float32).all()
    assert native.loc[42, "area"] == 10 and native.loc[100, "area"] == np.float32(3.25)
    assert np.isnan(native.loc[7, "area"]) and np.isnan(native.loc[7, "Mean Grey"])
    assert np.isnan(native.loc[100, "Mean Grey"])
    skimage = export.features["skimage"]
    assert skimage["eccentricity"].dtype == np.float32
    assert np.isnan(skimage.loc[42, "eccentricity"])  # a text cell becomes NaN
    fp = export.fingerprint
    write_features(root, "skimage", "objid,eccentricity\n7,0.2\n42,abc\n")
    assert read_export(root).fingerprint != fp


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id,area\n1,2\n", "no 'objid' column"),
        ("objid,area\n1,2\nx,3\n", "objid 'x' on line 3 is not an integer"),
        ("objid,area\n1,2\n1,3\n", "objid 1 appears twice"),
        ("objid,area\n1,2\n,3\n", "objid '' on line 3 is not an integer"),
        (
            "objid,area\n1,2\n99999999999999999999,3\n",
            "objid '99999999999999999999' on line 3 is out of the int64 range",
        ),
    ],
)
def test_bad_feature_tables(tmp_path: Path, text: str, message: str) -> None:
    root = make_export(tmp_path)
    write_features(root, "native", text)
    with pytest.raises(ExportError, match=message) as info:
        read_export(root)
    assert "features_native.csv.gz" in str(info.value)


def test_corrupt_feature_gzip(tmp_path: Path) -> None:
    root = make_export(tmp_path)
    (root / "features_native.csv.gz").write_bytes(b"not gzip at all")
    with pytest.raises(ExportError, match="features_native.csv.gz: unreadable feature table"):
        read_export(root)


class RecordingExecutor(ProcessPoolExecutor):
    """A pool of other processes that records the names of the functions it runs."""

    def __init__(self) -> None:
        super().__init__(1, mp_context=multiprocessing.get_context("spawn"))
        self.ran: list[str] = []

    def submit(self, fn, /, *args, **kwargs):
        self.ran.append(fn.__name__)
        return super().submit(fn, *args, **kwargs)


def test_zip_and_features_read_by_other_processes_give_the_same_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """build-store has its idle workers list the zip and parse the feature tables."""
    monkeypatch.setattr(_flowcam, "EXECUTOR_MIN_META_BYTES", 0)  # these exports are tiny
    # The listing's fingerprint text comes deflated and is hashed in pieces of 7 bytes.
    monkeypatch.setattr(_export, "INFLATE_PIECE_BYTES", 7)
    rows = [row(1), row("x"), row(1), row(2), ["3", "too", "few"], row(42)]
    images = {
        "imgs/1.jpg": jpeg_bytes(1),
        "imgs/9.jpg": jpeg_bytes(9),
        "../e.jpg": b"e",
        "imgs/a.txt": b"a",
        "imgs/42.jpg": jpeg_bytes(42),
        "imgs/42.png": b"second image",
    }
    root = make_export(tmp_path / "messy", rows, images=images)
    write_features(root, "native", "objid,area\n1,2\n42,3.5\n")
    corrupt = make_export(tmp_path / "corrupt")
    (corrupt / "imgs.zip").write_bytes(b"PK\x03\x04 this is not really a zip")
    here = read_export(root)
    with RecordingExecutor() as pool:
        there = read_export(root, executor=pool)
        assert sorted(pool.ran) == ["_list_zip_to_send", "_read_features"]
        with pytest.raises(ExportError, match=r"imgs.zip: not a readable zip file"):
            read_export(corrupt, executor=pool)
    check_invariant(there)
    pd.testing.assert_frame_equal(there.table, here.table)
    pd.testing.assert_frame_equal(there.rejects, here.rejects)
    pd.testing.assert_frame_equal(there.features["native"], here.features["native"])
    assert (there.rows_read, there.fingerprint) == (here.rows_read, here.fingerprint)
    assert there.table["objid"].tolist() == [1, 42]
    # This process's zip reader was given the shipped listing.
    assert there.fetcher.fetch(there.table["image"][1]) == jpeg_bytes(42)


def test_small_export_is_read_without_other_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Round trips to other processes cost a small export more than they save."""
    root = make_export(tmp_path)
    write_features(root, "native", "objid,area\n1,2\n")
    meta_bytes = (root / "meta.csv").stat().st_size
    with RecordingExecutor() as pool:
        monkeypatch.setattr(_flowcam, "EXECUTOR_MIN_META_BYTES", meta_bytes + 1)
        small = read_export(root, executor=pool)
        assert pool.ran == []
        monkeypatch.setattr(_flowcam, "EXECUTOR_MIN_META_BYTES", meta_bytes)
        big = read_export(root, executor=pool)
        assert sorted(pool.ran) == ["_list_zip_to_send", "_read_features"]
    pd.testing.assert_frame_equal(small.table, big.table)
    pd.testing.assert_frame_equal(small.features["native"], big.features["native"])


# --------------------------------------------------------------------------- structural errors


def test_no_meta_csv_but_flowcam_files(tmp_path: Path) -> None:
    root = make_export(tmp_path)
    (root / "meta.csv").unlink()
    with pytest.raises(ExportError, match=r"meta.csv: not found.*looks like a FlowCam export"):
        read_export(root)
    with pytest.raises(ExportError, match=r"meta.csv: not found; a FlowCam export needs"):
        read_flowcam_export(root)


def test_no_meta_csv_lone_imgs_folder(tmp_path: Path) -> None:
    root = make_export(tmp_path, layout="folder")
    (root / "meta.csv").unlink()
    with pytest.raises(ExportError, match=r"looks like a FlowCam export \(imgs/\)"):
        read_export(root)


def test_meta_without_objid(tmp_path: Path) -> None:
    root = make_export(tmp_path, meta_text="id,level2\n1,copepod\n")
    with pytest.raises(ExportError, match=r"meta.csv: no 'objid' column \(columns: id, level2\)"):
        read_export(root)


def test_meta_without_label_column(tmp_path: Path) -> None:
    root = make_export(tmp_path)
    with pytest.raises(ExportError) as info:
        read_export(root, label_column="taxon")
    msg = str(info.value)
    assert str(root / "meta.csv") in msg
    assert "no label column 'taxon'" in msg
    assert "objid, projid, status, latitude, level1, level2" in msg
    assert "--label-column" in msg


def test_no_images(tmp_path: Path) -> None:
    root = make_export(tmp_path, layout="none")
    with pytest.raises(ExportError, match="no images: neither imgs.zip nor an imgs/ folder"):
        read_export(root)


def test_corrupt_zip(tmp_path: Path) -> None:
    root = make_export(tmp_path)
    (root / "imgs.zip").write_bytes(b"PK\x03\x04 this is not really a zip")
    with pytest.raises(ExportError, match=r"imgs.zip: not a readable zip file"):
        read_export(root)


def test_empty_meta_and_bad_encoding(tmp_path: Path) -> None:
    root = make_export(tmp_path, meta_text="")
    with pytest.raises(ExportError, match="meta.csv: empty"):
        read_export(root)
    (root / "meta.csv").write_bytes(b"objid,level2\n1,cop\xe9pode\n")
    with pytest.raises(ExportError, match="meta.csv: not UTF-8 text"):
        read_export(root)


def test_header_only_meta_rejects_every_image(tmp_path: Path) -> None:
    root = make_export(tmp_path, [], images={"imgs/1.jpg": b"1"}, meta_text="objid,level2\n")
    export = read_export(root)
    check_invariant(export)
    assert export.table.empty and list(export.table.columns) == ["objid", "label", "image"] + [
        "level2"
    ]
    assert reasons(export) == ["image imgs/1.jpg has no row in meta.csv"]


def test_meta_with_reserved_or_duplicate_column(tmp_path: Path) -> None:
    root = make_export(tmp_path, meta_text="objid,level2,image\n42,a,b\n")
    with pytest.raises(ExportError, match="column named 'image'"):
        read_export(root)
    root = make_export(tmp_path, meta_text="objid,level2,level2\n42,a,b\n")
    with pytest.raises(ExportError, match=r"duplicate column names \['level2'\]"):
        read_export(root)


def test_empty_or_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="no image files"):
        read_export(tmp_path)
    (tmp_path / "README.txt").write_text("nothing here")
    with pytest.raises(ExportError, match=r"no image files \(only 1 other files\)"):
        read_image_folder(tmp_path)
    with pytest.raises(ExportError, match="no such folder"):
        read_export(tmp_path / "missing")
    with pytest.raises(ExportError, match="no such folder"):
        read_image_folder(tmp_path / "missing")


def test_export_error_is_a_value_error() -> None:
    assert issubclass(ExportError, ValueError)


# --------------------------------------------------------------------------- CSV parsing paths

TRICKY_META = (
    "\ufeffobjid,level2,note\r\n"
    '1,copepod,"a, b"\r\n'
    "\r\n"
    '2,"multi\r\nline",""\r\n'
    '3,copepod,"say ""hi"""\r\n'
    "2,diatom,x"  # no final newline
)


def test_fast_and_csv_parsers_agree(tmp_path: Path) -> None:
    """The pandas fast path and the csv-module path give the same rows and lines."""
    from plankton_store.io._meta import _read_meta_csv, _read_meta_fast, _scan_records

    data = TRICKY_META.encode()
    scan = _scan_records(data, ",")
    assert scan is not None
    lines, fields = scan
    assert lines.tolist() == [1, 2, 4, 6, 7] and fields.tolist() == [3] * 5
    text = data.decode("utf-8-sig")
    header = ["objid", "level2", "note"]
    fast = _read_meta_fast(text, ",", header, len(lines) - 1)
    slow, slow_lines, bad = _read_meta_csv(tmp_path / "meta.csv", text, ",", header)
    assert fast is not None and bad == []
    pd.testing.assert_frame_equal(fast, slow)
    assert slow_lines.tolist() == lines[1:].tolist()
    assert fast["note"].tolist() == ["a, b", "", 'say "hi"', "x"]


def test_duplicate_line_numbers_after_multiline_cell(tmp_path: Path) -> None:
    images = {f"imgs/{i}.jpg": jpeg_bytes(i) for i in (1, 2, 3)}
    export = read_export(make_export(tmp_path, images=images, meta_text=TRICKY_META))
    check_invariant(export)
    assert export.table["label"].tolist() == ["copepod", "multi\r\nline", "copepod"]
    assert reasons(export) == ["duplicate objid 2 (first seen on line 4)"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # A stray quote inside an unquoted field: literal, as the csv module reads it.
        ('objid,level2\n1,12" net\n2,copepod\n', ['12" net', "copepod"]),
        # A whitespace-only line is a malformed row (1 field), not a blank one.
        ("objid,level2\n1,a\n   \n2,b\n", ["a", "b"]),
    ],
)
def test_odd_but_readable_csv(tmp_path: Path, text: str, expected: list[str]) -> None:
    images = {"imgs/1.jpg": b"1", "imgs/2.jpg": b"2"}
    export = read_export(make_export(tmp_path, images=images, meta_text=text))
    check_invariant(export)
    assert export.table["label"].tolist() == expected
    if "   " in text:
        assert reasons(export) == ["malformed CSV line 3: expected 2 fields, saw 1"]


def test_well_formed_meta_takes_the_fast_path(tmp_path: Path, monkeypatch) -> None:
    def fail(*args: object) -> None:
        raise AssertionError("the csv-module fallback ran on a well-formed meta.csv")

    monkeypatch.setattr(_meta, "_read_meta_csv", fail)
    images = {f"imgs/{i}.jpg": jpeg_bytes(i) for i in (1, 2, 3)}
    export = read_export(make_export(tmp_path, images=images, meta_text=TRICKY_META))
    assert len(export.table) == 3


def zipfile_listing(data: bytes) -> tuple[list[str], dict, bytes]:
    """What the directory reader must give, from zipfile's own listing."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = zf.infolist()
    files = [i for i in infos if not i.is_dir()]
    members = {
        i.filename: (i.header_offset, i.compress_size, i.compress_type, i.CRC, len(i.extra))
        for i in files
    }
    lines = "\n".join(f"{i.filename}\t{i.CRC}\t{i.file_size}" for i in infos)
    return [i.filename for i in files], members, lines.encode()


def make_zip(
    entries: int,
    comment: bytes = b"",
    accents: str = "none",
    member_comment: bytes = b"a member comment",
) -> bytes:
    """A zip with folders, stored and deflated members, extra fields and comments; member
    names with accents (UTF-8 flagged by zipfile) in ``"some"`` or ``"all"`` of them."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.comment = comment
        zf.mkdir("imgs")
        for i in range(entries):
            accented = accents == "all" or (accents == "some" and i % 7 == 0)
            info = zipfile.ZipInfo(f"imgs/ü-{i}.jpg" if accented else f"imgs/{i}.jpg")
            info.compress_type = zipfile.ZIP_DEFLATED if i % 3 else zipfile.ZIP_STORED
            if i % 5 == 0:
                info.extra = b"\xfe\xca\x04\x00" + i.to_bytes(4, "little")  # an unknown field
                info.comment = member_comment
            zf.writestr(info, bytes([i % 256]) * (i % 50))
    return buf.getvalue()


@pytest.mark.parametrize(
    ("data", "one_pass"),
    [
        pytest.param(make_zip(40), True, id="plain"),
        pytest.param(make_zip(40, comment=b"an archive comment"), True, id="archive-comment"),
        pytest.param(make_zip(40, accents="all"), True, id="utf8-names"),
        pytest.param(make_zip(0xFFFF + 5), True, id="zip64-directory"),  # > 65,535 entries
        pytest.param(make_zip(40, accents="some"), True, id="mixed-name-encodings"),
        # A record signature inside a member comment: the records are walked one by one.
        pytest.param(make_zip(40, member_comment=b"xPK\x01\x02y"), True, id="signature-in-comment"),
        # Read by zipfile: data before the zip shifts every offset (self-extracting zips).
        pytest.param(b"#!/bin/sh\n" * 50 + make_zip(40), False, id="prepended-data"),
    ],
)
def test_zip_directory_reader_agrees_with_zipfile(data: bytes, one_pass: bool) -> None:
    """The one-pass central directory reader lists what zipfile lists, byte for byte, and
    leaves to zipfile the zips it does not parse itself."""
    from plankton_store.io._zipdir import (
        _central_directory,
        _parse_central_directory,
        _read_zip_listing,
    )

    directory = _central_directory(io.BytesIO(data))
    parsed = None if directory is None else _parse_central_directory(directory)
    assert (parsed is not None) == one_pass
    listing = _read_zip_listing(io.BytesIO(data))
    names, members, fingerprint = zipfile_listing(data)
    assert listing.names == names
    assert {name: tuple(m) for name, m in listing.members.items()} == members
    assert listing.fingerprint == fingerprint


def test_zip_directory_reader_refuses_damaged_zips() -> None:
    from plankton_store.io._zipdir import _read_zip_listing

    data = make_zip(40)
    with pytest.raises(zipfile.BadZipFile):
        _read_zip_listing(io.BytesIO(data[: len(data) // 2]))
    start = data.index(b"PK\x01\x02")  # a damaged first directory record
    with pytest.raises(zipfile.BadZipFile):
        _read_zip_listing(io.BytesIO(data[:start] + b"XXXX" + data[start + 4 :]))


@pytest.mark.parametrize(
    "text",
    ["42", " 42 ", "+5", "-0", "007", "\t7\n", "٤٢", "4_2", "1e3", "", "x", "1 2", "0x1f"]
    + ["9223372036854775807", "-9223372036854775808", "9223372036854775808", "9" * 20],
)
def test_objids_parse_as_the_integer_pattern_says(text: str) -> None:
    """The one-loop int() path for a column of objids accepts exactly what ``_INT_RE``
    accepts (not int()'s digit groups) and gives NA out of the int64 range."""
    from plankton_store.io._meta import _INT_RE, _parse_int64

    column = pd.Series(["1", text, "2"], dtype="str")
    is_int, values = _parse_int64(column)
    matches = re.fullmatch(_INT_RE, text) is not None
    assert is_int.tolist() == [True, matches, True]
    fits = matches and -(2**63) <= int(text) < 2**63
    assert values.tolist() == [1, int(text) if fits else pd.NA, 2]
