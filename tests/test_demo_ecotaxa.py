"""make-demo-data --format ecotaxa: the demo as an EcoTaxa export, read back by build-store."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from jobs.make_demo_data import make_demo_data_command
from plankton_store.demo import make_demo_export, make_meta
from plankton_store.io import read_export
from tests.conftest import SMALL_STORE_OPTIONS

SCALE = 0.002


@pytest.fixture(scope="module")
def eco(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("eco") / "export"
    result = CliRunner().invoke(
        make_demo_data_command,
        [str(out), "--scale", str(SCALE), "--format", "ecotaxa", "--workers", "1"],
    )
    assert result.exit_code == 0, result.output
    return out


def read_tables(root: Path) -> pd.DataFrame:
    """Every table read independently of the project's reader (pandas, the encoding and
    type row told by the first bytes), with its sample folder."""
    parts = []
    for path in sorted(root.glob("*/ecotaxa_*.tsv")):
        data = path.read_bytes()
        encoding = "utf-8-sig" if data.startswith(b"\xef\xbb\xbf") else "latin-1"
        frame = pd.read_csv(path, sep="\t", encoding=encoding, dtype=str, keep_default_na=False)
        if frame.iloc[0, 0] == "[t]":
            frame = frame.iloc[1:]
        parts.append(frame.assign(folder=path.parent.name))
    return pd.concat(parts, ignore_index=True).fillna("")


def test_the_tables_look_like_a_real_ecotaxa_export(eco: Path) -> None:
    tables = sorted(eco.glob("*/ecotaxa_*.tsv"))
    assert [p.parent.name for p in tables] == ["demo_s01", "demo_s02", "demo_s03", "demo_s04"]
    raw = [p.read_bytes() for p in tables]
    header = [r.split(b"\n", 1)[0] for r in raw]
    assert b"object_area_\xb5m2" in header[0]  # latin-1
    assert raw[1].startswith(b"\xef\xbb\xbf") and "object_area_µm2".encode() in header[1]
    assert b"object_area_" not in header[2]
    has_type_row = [r.split(b"\n")[1].startswith(b"[t]\t") for r in raw]
    assert has_type_row == [True, False, True, True]

    rows = read_tables(eco)
    meta = make_meta(SCALE, 0)
    main = rows[rows["img_rank"] == "0"]
    assert main["object_id"].tolist() == [f"demo_{i:06d}" for i in range(len(meta))]
    assert main["object_annotation_category"].tolist() == [m["unique_name"] for m in meta]
    assert main["object_annotation_hierarchy"].tolist() == [
        m["lineage"].replace("/", ">") for m in meta
    ]
    status = main["object_annotation_status"].value_counts()
    assert set(status.index) == {"validated", "predicted", "dubious"}
    assert status["validated"] > status["predicted"] > status["dubious"] > 0
    second = rows[rows["img_rank"] == "1"]
    assert len(second) == len(meta) // 25 and second["object_id"].isin(main["object_id"]).all()
    assert (main["object_date"].str.fullmatch(r"\d{8}")).all()
    assert (main["object_time"].str.fullmatch(r"\d{6}")).all()
    assert set(rows["sample_id"]) == {"demo_s01", "demo_s02", "demo_s03", "demo_s04"}
    assert (rows["sample_id"] == rows["folder"]).all()
    for name in rows["img_file_name"]:
        assert name.startswith("images/")
    for folder, name in zip(rows["folder"], rows["img_file_name"], strict=True):
        assert (eco / folder / name).is_file()


def test_the_reader_rejects_second_images_and_keeps_non_validated_rows_unlabelled(
    eco: Path,
) -> None:
    rows = read_tables(eco)
    export = read_export(eco)
    assert export.layout == "ecotaxa"
    assert export.rows_read == len(rows)
    assert len(export.table) + len(export.rejects) == export.rows_read
    assert (export.rejects["reason"].str.contains("img_rank")).all()
    assert len(export.rejects) == int((rows["img_rank"] == "1").sum())
    main = rows[rows["img_rank"] == "0"].reset_index(drop=True)
    assert export.table["object_id"].tolist() == main["object_id"].tolist()
    validated = main["object_annotation_status"] == "validated"
    want = main["object_annotation_category"].where(validated)
    assert export.table["label"].isna().tolist() == want.isna().tolist()
    assert export.table["label"].dropna().tolist() == want.dropna().tolist()
    # µ decoded the same from latin-1 and UTF-8: one merged column, empty where absent.
    micro = export.table["object_area_µm2"]
    assert (micro[export.table["sample_id"].isin(["demo_s01", "demo_s02", "demo_s04"])] != "").all()
    assert (micro[export.table["sample_id"] == "demo_s03"] == "").all()


def test_build_store_reads_the_demo_ecotaxa_export(eco: Path, tmp_path: Path, dask_client) -> None:
    from plankton_store.store import BuildOptions, build_store, open_store

    options = BuildOptions(drop_classes=(), **SMALL_STORE_OPTIONS)
    summary = build_store(
        str(eco), str(tmp_path / "s.zarr"), options, dask_client, progress=False, echo=len
    )
    rows = read_tables(eco)
    main = rows[rows["img_rank"] == "0"]
    validated = main[main["object_annotation_status"] == "validated"]
    assert summary.rows_read == len(rows)
    assert summary.rows_stored == len(validated)
    assert summary.rows_stored + len(summary.rejects) == summary.rows_read
    reasons = summary.rejects["reason"]
    assert reasons.str.contains("not the main image").sum() == (rows["img_rank"] == "1").sum()
    unlabelled = reasons.str.fullmatch(r"no \S+ label")  # predicted and dubious rows
    assert unlabelled.sum() == len(main) - len(validated)
    assert unlabelled.sum() + reasons.str.contains("not the main image").sum() == len(reasons)
    store = open_store(str(tmp_path / "s.zarr"))
    assert store.label_column == "object_annotation_category"
    assert sorted(store.class_names) == sorted(set(validated["object_annotation_category"]))


def test_the_ecotaxa_demo_has_the_flowcam_demo_s_images(eco: Path, tmp_path: Path) -> None:
    import zipfile

    flowcam = make_demo_export(tmp_path / "fc", scale=SCALE, seed=0, workers=1, progress=False)
    meta = pd.read_csv(flowcam / "meta.csv", dtype=str)
    with zipfile.ZipFile(flowcam / "imgs.zip") as zf:
        first = zf.read(f"imgs/{meta['objid'][0]}.jpg")
    assert (eco / "demo_s01" / "images" / "demo_000000.jpg").read_bytes() == first


def test_a_preview_needs_the_flowcam_format(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        make_demo_data_command,
        [str(tmp_path / "x"), "--format", "ecotaxa", "--preview", str(tmp_path / "p.png")],
    )
    assert result.exit_code == 2 and "--preview needs --format flowcam" in result.output
