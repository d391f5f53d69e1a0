"""EcoTaxa: tab-separated meta tables, and predictions written back as an EcoTaxa TSV."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from jobs.predict import predict_command
from plankton_store.io import (
    ExportError,
    check_ecotaxa_limits,
    ecotaxa_predictions,
    ecotaxa_tsv,
    ecotaxa_types,
    read_ecotaxa_export,
    read_ecotaxa_table,
    read_export,
    read_source,
)
from plankton_store.ml import read_model_info
from tests.conftest import jpeg, shape_image, write_flowcam_export


def test_read_source_sees_labels_in_a_tab_separated_meta(tmp_path: Path) -> None:
    root = write_flowcam_export(tmp_path / "exp", {"copepod": 3, "diatom": 2}, with_features=False)
    meta = root / "meta.csv"
    meta.write_text(meta.read_text().replace(",", "\t"))
    export, has_labels = read_source(root, label_column="level2")
    assert has_labels
    assert sorted(export.table["label"].astype(str)) == ["copepod"] * 3 + ["diatom"] * 2


# --- predict --format ecotaxa: a zip holding an EcoTaxa classification update -------------


def read_ecotaxa_zip(path: Path) -> tuple[bytes, pd.DataFrame]:
    """The TSV's raw bytes and its rows read by pandas (type row skipped, all text)."""
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist() == ["ecotaxa_predictions.tsv"]
        data = zf.read("ecotaxa_predictions.tsv")
    frame = pd.read_csv(
        io.BytesIO(data),
        sep="\t",
        encoding="utf-8-sig",
        skiprows=[1],
        dtype=str,
        keep_default_na=False,
    )
    return data, frame


def test_predict_format_ecotaxa_through_the_cli(
    small_export: Path, small_model: Path, dask_client, tmp_path: Path
) -> None:
    out = tmp_path / "out" / "predictions.zip"
    args = [str(small_export), "--model", str(small_model), "--out", str(out)]
    args += ["--format", "ecotaxa", "--scheduler", dask_client.scheduler.address]
    result = CliRunner().invoke(predict_command, args)
    assert result.exit_code == 0, result.output
    data, frame = read_ecotaxa_zip(out)

    assert data.startswith(b"\xef\xbb\xbf")
    lines = data.decode("utf-8-sig").splitlines()
    names, types = lines[0].split("\t"), lines[1].split("\t")
    assert names == frame.columns.tolist()
    assert types == ["[f]" if n.endswith("_score") else "[t]" for n in names]
    assert names == [
        "object_id",
        "img_file_name",
        "object_annotation_status",
        "object_annotation_category",
        "object_score",
        "object_top1_category",
        "object_top1_score",
        "object_top2_category",
        "object_top2_score",
        "object_top3_category",
        "object_top3_score",
    ]

    export = read_export(small_export)
    expected_ids = export.table["objid"].astype(str)
    assert sorted(frame["object_id"]) == sorted(expected_ids)
    assert not frame["object_id"].duplicated().any()
    assert (frame["object_annotation_status"] == "predicted").all()
    classes = set(read_model_info(small_model).class_names)
    for column in ["object_annotation_category"] + [f"object_top{k}_category" for k in (1, 2, 3)]:
        assert set(frame[column]) <= classes
    assert (frame["object_annotation_category"] == frame["object_top1_category"]).all()
    scores = frame[[f"object_top{k}_score" for k in (1, 2, 3)]].astype(float).to_numpy()
    assert (np.diff(scores, axis=1) <= 0).all() and ((scores >= 0) & (scores <= 1)).all()
    assert (frame["object_score"].astype(float) == scores[:, 0]).all()
    assert (frame[["object_top1_category", "object_top2_category"]].nunique(axis=1) == 2).all()

    # The same classification as the default CSV format.
    csv_out = tmp_path / "predictions.csv"
    csv_args = [a if a != str(out) else str(csv_out) for a in args if a not in ("--format",)]
    csv_args.remove("ecotaxa")
    result = CliRunner().invoke(predict_command, csv_args)
    assert result.exit_code == 0, result.output
    csv = pd.read_csv(csv_out, dtype={"objid": str}, keep_default_na=False)
    assert csv["objid"].tolist() == frame["object_id"].tolist()
    assert csv["image"].tolist() == frame["img_file_name"].tolist()
    assert csv["predicted"].tolist() == frame["object_annotation_category"].tolist()
    np.testing.assert_allclose(csv["probability"], frame["object_score"].astype(float), atol=1e-4)


def test_text_ids_stay_unchanged_and_hierarchy_is_optional() -> None:
    proba = np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]])
    ids = ["007", "sample_1-µ obj"]
    plain = ecotaxa_predictions(ids, proba, ["a", "b", "c"])
    assert "object_annotation_hierarchy" not in plain and "img_file_name" not in plain
    with_tree = ecotaxa_predictions(
        ids, proba, ["a", "b", "c"], images=["x/1.jpg", "2.jpg"], hierarchy={"b": "living>b"}
    )
    assert with_tree["object_annotation_hierarchy"].tolist() == ["living>b", ""]
    assert with_tree["object_top2_category"].tolist() == ["c", "c"]
    data = ecotaxa_tsv(with_tree)
    back = pd.read_csv(io.BytesIO(data), sep="\t", encoding="utf-8-sig", skiprows=[1], dtype=str)
    assert back["object_id"].tolist() == ids
    assert back["img_file_name"].tolist() == ["x/1.jpg", "2.jpg"]
    assert data.decode("utf-8-sig").splitlines()[1].split("\t") == ecotaxa_types(with_tree)


def test_two_classes_give_two_top_columns() -> None:
    frame = ecotaxa_predictions([1, 2], np.array([[0.9, 0.1], [0.3, 0.7]]), ["a", "b"])
    assert frame["object_annotation_category"].tolist() == ["a", "b"]
    assert "object_top3_category" not in frame and "object_top2_score" in frame


def widen(frame: pd.DataFrame, columns: dict[str, object]) -> pd.DataFrame:
    """``frame`` with constant columns added in one go."""
    extra = pd.DataFrame({c: [v] * len(frame) for c, v in columns.items()}, index=frame.index)
    return pd.concat([frame, extra], axis=1)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.assign(object_id=["1", "1"]), "unique"),
        (lambda f: f.drop(columns="object_id"), "object_id"),
        (lambda f: f.assign(object_annotation_category=["a", ""]), "status needs"),
        (lambda f: f.drop(columns="object_annotation_category"), "status needs"),
        (lambda f: f.assign(object_top1_category=["x" * 251, "a"]), "longer than 250"),
        (
            lambda f: widen(f, {f"object_note{i}": "t" for i in range(19)}),
            "text and",
        ),
        (
            lambda f: widen(f, {f"object_v{i}": 1.0 for i in range(498)}),
            "0 text|2 text and 501",
        ),
        (lambda f: f.assign(object_top1_category=["a\tb", "a"]), "tabs"),
    ],
)
def test_ecotaxa_import_rules_are_enforced(change, message) -> None:
    frame = ecotaxa_predictions([1, 2], np.array([[0.9, 0.1], [0.3, 0.7]]), ["a", "b"])
    ecotaxa_tsv(frame)  # the unchanged frame is fine
    with pytest.raises(ValueError, match=message):
        ecotaxa_tsv(change(frame))


def test_limits_are_exactly_ecotaxa_s() -> None:
    frame = ecotaxa_predictions([1], np.array([[1.0]]), ["a"])  # 1 text, 2 numeric free
    extra = {f"object_t{i}": "t" * 250 for i in range(19)}
    at_limit = widen(frame, extra | {f"object_v{i}": 1.0 for i in range(498)})
    check_ecotaxa_limits(at_limit)
    with pytest.raises(ValueError):
        check_ecotaxa_limits(at_limit.assign(object_v_extra=[1.0]))
    with pytest.raises(ValueError):
        check_ecotaxa_limits(at_limit.assign(object_t_extra=["t"]))


# --- reading an EcoTaxa TSV export ---------------------------------------------------------


def write_ecotaxa_export(root: Path) -> Path:
    """Two sample folders: a latin-1 table with a type row and a µ column name, and a
    UTF-8-with-BOM table without a type row, images in a sub-folder; bad rows included."""
    rng = np.random.default_rng(3)

    def image(path: Path, label_index: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(jpeg(shape_image(label_index, 40, 30, rng)))

    a = root / "sample_a"
    header = [
        "Object_ID ",
        "img_file_name",
        "img_rank",
        "object_annotation_status",
        "object_annotation_category",
        "object_area_µm2",
    ]
    rows = [
        ["a-001", "1.jpg", "0", "validated", "copepod", "12.5"],
        ["a-002", "2.jpg", "0", "predicted", "diatom", "3"],
        ["a-002", "2b.jpg", "1", "predicted", "diatom", "3"],  # second image rank
        ["a-003", "missing.jpg", "0", "validated", "copepod", "1"],
        ["a-001", "1.jpg", "0", "validated", "copepod", "12.5"],  # repeated
    ]
    for name, idx in [("1.jpg", 0), ("2.jpg", 1), ("2b.jpg", 1)]:
        image(a / name, idx)
    lines = ["\t".join(header), "\t".join(["[t]", "[t]", "[f]", "[t]", "[t]", "[f]"])]
    lines += ["\t".join(r) for r in rows]
    a.mkdir(parents=True, exist_ok=True)
    (a / "ecotaxa_a.tsv").write_bytes(("\n".join(lines) + "\n").encode("latin-1"))

    b = root / "two" / "sample_b"
    image(b / "imgs" / "007.png", 1)
    image(b / "imgs" / "008.png", 0)
    text = "object_id\timg_file_name\tobject_annotation_status\tobject_annotation_category\n"
    text += "007\timgs/007.png\tvalidated\tdiatom\n008\timgs/008.png\tdubious\tcopepod\n"
    b.mkdir(parents=True, exist_ok=True)
    (b / "ecotaxa_b.txt").write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    (root / "notes.tsv").write_text("object_id\nignored\n")  # not an ecotaxa* table
    return root


def test_read_ecotaxa_export_merges_tables_and_rejects_bad_rows(tmp_path: Path) -> None:
    export = read_ecotaxa_export(write_ecotaxa_export(tmp_path / "eco"))
    table = export.table
    assert export.layout == "ecotaxa"
    assert table["object_id"].tolist() == ["a-001", "a-002", "007", "008"]
    assert table["image"].tolist() == [
        "sample_a/1.jpg",
        "sample_a/2.jpg",
        "two/sample_b/imgs/007.png",
        "two/sample_b/imgs/008.png",
    ]
    # Only validated rows are ground truth; the others stay, to classify, unlabelled.
    assert table["label"].tolist() == ["copepod", pd.NA, "diatom", pd.NA]
    assert "object_area_µm2" in table.columns  # latin-1 read, names trimmed and lower-cased
    assert table["object_area_µm2"].tolist()[:2] == ["12.5", "3"]
    reasons = export.rejects["reason"].tolist()
    assert len(reasons) == 3 and len(table) + len(reasons) == export.rows_read == 7
    assert any("img_rank" in r for r in reasons)
    assert any("missing.jpg not found" in r for r in reasons)
    assert any("repeated object_id" in r for r in reasons)
    assert export.table["objid"].is_unique
    for ref in table["image"]:
        assert export.fetcher.fetch(ref)[:2] in (b"\xff\xd8", b"\x89P")


def test_read_ecotaxa_export_wider_statuses_and_type_row_detection(tmp_path: Path) -> None:
    root = write_ecotaxa_export(tmp_path / "eco")
    export = read_ecotaxa_export(root, statuses=("validated", "dubious"))
    assert export.table["label"].tolist() == ["copepod", pd.NA, "diatom", "copepod"]
    frame, types, _ = read_ecotaxa_table((root / "sample_a" / "ecotaxa_a.tsv").read_bytes())
    assert types == ["[t]", "[t]", "[f]", "[t]", "[t]", "[f]"] and len(frame) == 5
    frame, types, _ = read_ecotaxa_table((root / "two/sample_b/ecotaxa_b.txt").read_bytes())
    assert types is None and frame["object_id"].tolist() == ["007", "008"]


def test_an_ecotaxa_table_without_object_id_is_rejected_and_no_table_stops(
    tmp_path: Path,
) -> None:
    root = tmp_path / "eco"
    root.mkdir()
    (root / "ecotaxa_x.tsv").write_text("img_file_name\n1.jpg\n2.jpg\n")
    export = read_ecotaxa_export(root)
    assert len(export.table) == 0 and len(export.rejects) == 2
    assert (export.rejects["reason"].str.contains("no object_id")).all()
    (root / "ecotaxa_x.tsv").unlink()
    with pytest.raises(ExportError, match=r"ecotaxa\*\.tsv"):
        read_ecotaxa_export(root)


def write_bigger_ecotaxa_export(root: Path) -> tuple[Path, list[str]]:
    """Two sample tables of validated copepods and diatoms plus a few ``predicted`` rows."""
    rng = np.random.default_rng(11)
    ids = []
    for sample, n in [("s1", 30), ("s2", 30)]:
        folder = root / sample
        (folder / "img").mkdir(parents=True)
        lines = ["object_id\timg_file_name\tobject_annotation_status\tobject_annotation_category"]
        lines.append("[t]\t[t]\t[t]\t[t]")
        for i in range(n):
            label = ["copepod", "diatom"][i % 2]
            status = "predicted" if i % 10 == 9 else "validated"
            object_id = f"{sample}_obj-{i:03d}"
            size = (int(rng.integers(20, 70)), int(rng.integers(15, 60)))
            (folder / "img" / f"{i}.jpg").write_bytes(jpeg(shape_image(i % 2, *size, rng)))
            lines.append(f"{object_id}\timg/{i}.jpg\t{status}\t{label}")
            ids.append(object_id)
        (folder / f"ecotaxa_{sample}.tsv").write_text("\n".join(lines) + "\n", "latin-1")
    return root, ids


def test_ecotaxa_round_trip_build_store_to_predict_format_ecotaxa(
    dask_client, tmp_path: Path
) -> None:
    from plankton_store.store import BuildOptions, build_store, open_store
    from plankton_store.store import format as fmt
    from tests.conftest import SMALL_STORE_OPTIONS, fit_small_model

    root, ids = write_bigger_ecotaxa_export(tmp_path / "eco")
    store_path = str(tmp_path / "store.zarr")
    build_store(
        str(root),
        store_path,
        BuildOptions(**SMALL_STORE_OPTIONS),
        dask_client,
        progress=False,
        echo=lambda _: None,
    )
    store = open_store(store_path)
    assert sorted(store.class_names) == ["copepod", "diatom"]
    assert store.label_column == "object_annotation_category"
    # The 6 predicted rows (objids 10, 20, ...) are not ground truth; augmented copies are -1.
    objids = store.array(fmt.OBJID)[:]
    assert set(objids[objids > 0].tolist()) == set(range(1, 61)) - set(range(10, 61, 10))
    model = fit_small_model(store_path, tmp_path / "model")

    out = tmp_path / "pred.zip"
    args = [str(root), "--model", str(model), "--out", str(out), "--format", "ecotaxa"]
    result = CliRunner().invoke(
        predict_command, args + ["--scheduler", dask_client.scheduler.address]
    )
    assert result.exit_code == 0, result.output
    _, frame = read_ecotaxa_zip(out)
    assert frame["object_id"].tolist() == ids  # every row, text ids unchanged
    assert set(frame["object_annotation_category"]) <= {"copepod", "diatom"}
    assert (frame["object_annotation_status"] == "predicted").all()
