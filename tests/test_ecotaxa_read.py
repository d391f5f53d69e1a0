"""Reading EcoTaxa TSV exports: statuses, bad rows, zips, features, objids (no Dask here)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from plankton_store.io import (
    ExportError,
    read_ecotaxa_export,
    read_ecotaxa_table,
    read_export,
    read_flowcam_export,
    read_source,
)
from tests.conftest import jpeg, shape_image
from tests.ecotaxa_export import flowcam_to_ecotaxa, make_demo_flowcam, zip_folder


@pytest.fixture(scope="module")
def demo_flowcam(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_demo_flowcam(tmp_path_factory.mktemp("demo") / "export")


def small_table(root: Path, header: list[str], lines: list[str], encoding="latin-1") -> Path:
    """``root/s/ecotaxa_s.tsv`` from raw lines, with images 1.jpg..4.jpg beside it."""
    folder = root / "s"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(1, 5):
        (folder / f"{i}.jpg").write_bytes(jpeg(shape_image(i, 30, 20, rng)))
    text = "\n".join(["\t".join(header), *lines]) + "\n"
    bom = b"\xef\xbb\xbf" if encoding == "utf-8" else b""
    (folder / "ecotaxa_s.tsv").write_bytes(bom + text.encode(encoding))
    return root


HEADER = [
    "object_id",
    "img_file_name",
    "object_annotation_status",
    "object_annotation_category",
    "object_area",
]


def test_statuses_choose_the_ground_truth_and_status_needs_category(tmp_path: Path) -> None:
    root = small_table(
        tmp_path / "eco",
        HEADER,
        [
            "a\t1.jpg\tvalidated\tcopepod\t1",
            "b\t2.jpg\tdubious\tdiatom\t2",
            "c\t3.jpg\tvalidated\t\t3",  # a status, no category
            "d\t4.jpg\t\tdiatom\t4",  # a category, no status
        ],
    )
    for statuses, labels in [
        (("validated",), ["copepod", pd.NA]),
        (("validated", "dubious"), ["copepod", "diatom"]),
        (("Dubious",), [pd.NA, "diatom"]),
    ]:
        export = read_export(root, label_column="level2", statuses=statuses)
        assert export.layout == "ecotaxa"
        assert export.table["object_id"].tolist() == ["a", "b"]
        assert export.table["label"].tolist() == labels
        reasons = export.rejects["reason"].tolist()
        assert reasons == [
            "object_annotation_status without object_annotation_category (EcoTaxa needs both)",
            "object_annotation_category without object_annotation_status (EcoTaxa needs both)",
        ]
        assert export.rows_read == len(export.table) + len(export.rejects) == 4
    export, has_labels = read_source(root, "level2", statuses=("dubious",))
    assert has_labels and export.table["label"].tolist() == [pd.NA, "diatom"]


@pytest.mark.parametrize(
    ("type_row", "why"),
    [
        ("[t]\t[t]\t[t]\t[t]\t[x]", "malformed type row (5 cells for 5 columns"),
        ("[t]\t[t]\t[t]\t[f]", "malformed type row (4 cells for 5 columns"),
        ("[t]\t[t]\t[t]\t[t]\t[f]\t[f]", "malformed type row (6 cells for 5 columns"),
    ],
)
def test_a_malformed_type_row_is_rejected_not_read_as_data(
    tmp_path: Path, type_row: str, why: str
) -> None:
    root = small_table(tmp_path / "eco", HEADER, [type_row, "a\t1.jpg\tvalidated\tcopepod\t1.5"])
    export = read_ecotaxa_export(root)
    assert export.table["object_id"].tolist() == ["a"]
    assert len(export.rejects) == 1 and export.rows_read == 2
    assert export.rejects["reason"][0].startswith(f"s/ecotaxa_s.tsv: {why}")
    # Without a type row the column is numeric by its values: a feature all the same.
    assert export.features["ecotaxa"]["object_area"].tolist() == [1.5]


def test_a_data_row_with_one_bracketed_value_is_data() -> None:
    table = read_ecotaxa_table(b"object_id\tobject_note\tobject_area\na\t[sic]\t2\n")
    assert table.types is None and table.reasons == [""]
    assert table.frame["object_note"].tolist() == ["[sic]"]


def test_a_non_number_in_a_float_column_rejects_its_row_naming_the_column(
    tmp_path: Path,
) -> None:
    root = small_table(
        tmp_path / "eco",
        HEADER,
        [
            "[t]\t[t]\t[t]\t[t]\t[f]",
            "a\t1.jpg\tvalidated\tcopepod\t1.5",
            "b\t2.jpg\tvalidated\tcopepod\tlarge",
            "c\t3.jpg\tvalidated\tdiatom\t",  # empty: a missing value, not an error
            "d\t4.jpg\tvalidated\tdiatom\tNaN",
            "e\t4.jpg\tvalidated\tdiatom\t1\textra cell",
        ],
    )
    export = read_ecotaxa_export(root)
    assert export.table["object_id"].tolist() == ["a", "c", "d"]
    assert export.rejects["reason"].tolist() == [
        "s/ecotaxa_s.tsv: object_area 'large' is not a number ([f] column)",
        "s/ecotaxa_s.tsv: 6 cells for 5 columns",
    ]
    assert export.rows_read == 5
    values = export.features["ecotaxa"]["object_area"].to_numpy()
    assert values[0] == np.float32(1.5) and np.isnan(values[1:]).all()


def test_mixed_encodings_are_each_decoded(tmp_path: Path) -> None:
    header = [*HEADER[:4], "object_size_µm", "sample_note"]
    root = tmp_path / "eco"
    for name, encoding in [("bom", "utf-8"), ("latin", "latin-1")]:
        folder = root / name
        folder.mkdir(parents=True)
        (folder / "1.jpg").write_bytes(jpeg(shape_image(0, 20, 20, np.random.default_rng(1))))
        text = "\t".join(header) + f"\n{name}\t1.jpg\tvalidated\tcopepod\t3\t5 µm net\n"
        bom = b"\xef\xbb\xbf" if encoding == "utf-8" else b""
        (folder / f"ecotaxa_{name}.tsv").write_bytes(bom + text.encode(encoding))
    export = read_ecotaxa_export(root)
    assert export.table["object_id"].tolist() == ["bom", "latin"]
    assert export.table["sample_note"].tolist() == ["5 µm net", "5 µm net"]
    assert export.features["ecotaxa"]["object_size_µm"].tolist() == [3.0, 3.0]
    # Latin-1 bytes 0x85 (U+0085) in a value do not split a line.
    table = read_ecotaxa_table(b"object_id\tobject_note\nx\ta\x85b\n")
    assert table.frame["object_note"].tolist() == ["a\x85b"] and table.reasons == [""]


def test_no_table_stops_before_any_work_naming_what_was_looked_for(tmp_path: Path) -> None:
    root = tmp_path / "eco.zip"
    with zipfile.ZipFile(root, "w") as zf:
        zf.writestr("sample/data.tsv", "object_id\n1\n")
    with pytest.raises(ExportError, match=r"eco\.zip: no EcoTaxa table; looked for ecotaxa\*"):
        read_export(root)


def test_an_export_in_a_zip_reads_like_its_folder(demo_flowcam: Path, tmp_path: Path) -> None:
    folder = tmp_path / "eco"
    flowcam_to_ecotaxa(demo_flowcam, folder, integer_ids=False)
    # Deeper in the zip than in the folder: the tables are found at any depth.
    zipped = zip_folder(folder, tmp_path / "export.zip", prefix="export/")
    a, b = read_export(folder), read_export(zipped)
    assert b.layout == "ecotaxa" and b.root == str(zipped)
    assert len(a.table) == len(b.table) == 1248 and len(b.rejects) == 0
    assert b.table["object_id"].tolist() == a.table["object_id"].tolist()
    assert b.table["label"].tolist() == a.table["label"].tolist()
    assert b.table["image"].tolist() == ["export/" + r for r in a.table["image"]]
    for ref_a, ref_b in list(zip(a.table["image"], b.table["image"], strict=True))[::97]:
        assert a.fetcher.fetch(ref_a) == b.fetcher.fetch(ref_b)
    pd.testing.assert_frame_equal(a.features["ecotaxa"], b.features["ecotaxa"])
    batch = b.fetcher.batch(b.table["image"].tolist()[:5])
    assert batch(b.table["image"][4]) == a.fetcher.fetch(a.table["image"][4])


def test_zip_members_outside_their_folder_are_rejected(tmp_path: Path) -> None:
    image = jpeg(shape_image(0, 20, 20, np.random.default_rng(2)))
    out = tmp_path / "bad.zip"
    lines = [
        "\t".join(HEADER[:4]),
        "a\tok.jpg\tvalidated\tcopepod",
        "b\t../up.jpg\tvalidated\tcopepod",
        "c\t/etc/abs.jpg\tvalidated\tcopepod",
        "d\tsub/../../up.jpg\tvalidated\tcopepod",
        "e\t./ok.jpg\tvalidated\tcopepod",  # stays in its folder
    ]
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("s/ecotaxa_s.tsv", "\n".join(lines) + "\n")
        zf.writestr("../ecotaxa_evil.tsv", "\n".join(lines[:2]) + "\n")
        for name in ["s/ok.jpg", "up.jpg", "/etc/abs.jpg", "ok.jpg"]:
            zf.writestr(name, image)
    export = read_export(out)
    assert export.table["object_id"].tolist() == ["a", "e"]
    assert export.table["image"].tolist() == ["s/ok.jpg", "s/ok.jpg"]
    reasons = export.rejects["reason"].tolist()
    assert reasons == [
        "../ecotaxa_evil.tsv: the table lies outside the export",
        "s/ecotaxa_s.tsv: img_file_name '../up.jpg' leaves the table's folder",
        "s/ecotaxa_s.tsv: img_file_name '/etc/abs.jpg' leaves the table's folder",
        "s/ecotaxa_s.tsv: img_file_name 'sub/../../up.jpg' leaves the table's folder",
    ]
    assert export.rows_read == 6


def test_numeric_object_columns_become_the_ecotaxa_feature_table(
    demo_flowcam: Path, tmp_path: Path
) -> None:
    for type_row in (True, False):
        folder = tmp_path / f"eco-{type_row}"
        rows = flowcam_to_ecotaxa(demo_flowcam, folder, type_row=type_row)
        export = read_export(folder)
        features = export.features["ecotaxa"]
        assert list(features.columns) == [
            "object_area",
            "object_mean",
            "object_perim.",
            "object_circ.",
            "object_%area",
            "object_length_µm",
        ]
        assert features.dtypes.eq(np.float32).all() and features.index.name == "objid"
        assert features.index.tolist() == export.table["objid"].tolist()
        np.testing.assert_allclose(
            features["object_perim."], pd.to_numeric(rows["object_perim."]), rtol=1e-6
        )
        # The fixed columns stay table metadata, text, beside the sample and acquisition.
        for column in ["object_lat", "object_depth_max", "object_date", "sample_id", "acq_id"]:
            assert column in export.table and column not in features
        assert export.table["object_date"].str.fullmatch(r"\d{8}").all()


def test_integer_object_ids_are_the_objids_and_match_the_flowcam_layout(
    demo_flowcam: Path, tmp_path: Path
) -> None:
    flowcam = read_flowcam_export(demo_flowcam, "level2")
    flowcam_to_ecotaxa(demo_flowcam, tmp_path / "int")
    ecotaxa = read_export(tmp_path / "int")
    assert ecotaxa.table["objid"].tolist() == flowcam.table["objid"].tolist()
    assert ecotaxa.table["label"].tolist() == flowcam.table["label"].tolist()
    assert ecotaxa.table["object_id"].tolist() == flowcam.table["objid"].astype(str).tolist()
    # Text ids (or one repeated, or not an integer) give 1..N in reading order.
    flowcam_to_ecotaxa(demo_flowcam, tmp_path / "text", integer_ids=False)
    text = read_export(tmp_path / "text")
    assert text.table["objid"].tolist() == list(range(1, 1249))
    root = small_table(
        tmp_path / "mixed", HEADER[:2], ["12\t1.jpg", "7\t2.jpg", "007\t3.jpg", "-3\t4.jpg"]
    )
    assert read_export(root).table["objid"].tolist() == [1, 2, 3, 4]
    root = small_table(tmp_path / "ints", HEADER[:2], ["12\t1.jpg", "7\t2.jpg", "9\t5.jpg"])
    export = read_export(root)
    assert export.table["objid"].tolist() == [12, 7]
    assert export.rejects["objid"].tolist() == [9]


def test_an_ecotaxa_export_at_a_url_reads_like_the_local_one(
    demo_flowcam: Path, tmp_path: Path
) -> None:
    import fsspec

    flowcam_to_ecotaxa(demo_flowcam, tmp_path / "eco", integer_ids=False)
    zip_folder(tmp_path / "eco", tmp_path / "eco.zip")
    fs = fsspec.filesystem("memory")
    try:
        fs.put(str(tmp_path / "eco"), "/eco-tests/folder", recursive=True)
        fs.put(str(tmp_path / "eco.zip"), "/eco-tests/eco.zip")
        local = read_export(tmp_path / "eco")
        for url in ["memory://eco-tests/folder", "memory://eco-tests/eco.zip"]:
            remote = read_export(url)
            assert remote.layout == "ecotaxa" and remote.root == url
            assert remote.table.equals(local.table)
            assert remote.features["ecotaxa"].equals(local.features["ecotaxa"])
            for ref in local.table["image"][:3]:
                assert remote.fetcher.fetch(ref) == local.fetcher.fetch(ref)
    finally:
        fs.rm("/eco-tests", recursive=True)
