"""EcoTaxa exports through the jobs: build-store, train, predict, evaluate, explore, abundance."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from jobs.abundance import abundance_command
from jobs.build_store import build_store_command
from jobs.evaluate import evaluate_command
from jobs.explore import explore_command
from jobs.predict import predict_command
from jobs.thresholds import thresholds_command
from jobs.train import train_command
from plankton_store.store import BuildOptions, build_store, open_store
from plankton_store.store import format as fmt
from tests.conftest import fit_small_model
from tests.ecotaxa_export import flowcam_to_ecotaxa, make_demo_flowcam, zip_folder

#: Small, quick stores: 32x24 images, no augmentation, several blocks.
OPTIONS = dict(block_size=64, chunk_size=32, augment_below=0, size=(32, 24))
BUILD_ARGS = ["--size", "32x24", "--block-size", "64", "--chunk-size", "32", "--augment-below", "0"]


@pytest.fixture(scope="module")
def demo_flowcam(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_demo_flowcam(tmp_path_factory.mktemp("demo") / "export")


@pytest.fixture(scope="module")
def eco_zip(demo_flowcam: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    """The demo as a zipped EcoTaxa export: text object_ids, every 10th row dubious."""
    root = tmp_path_factory.mktemp("eco")
    rows = flowcam_to_ecotaxa(demo_flowcam, root / "folder", integer_ids=False, dubious_every=10)
    return zip_folder(root / "folder", root / "export.zip", prefix="export/"), rows


def invoke(command, args: list[str], client) -> str:
    result = CliRunner().invoke(command, [*args, "--scheduler", client.scheduler.address])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def eco_store(eco_zip, tmp_path_factory: pytest.TempPathFactory, dask_client) -> str:
    """build-store on the zip with --status validated,dubious."""
    store = str(tmp_path_factory.mktemp("store") / "store.zarr")
    args = [str(eco_zip[0]), store, *BUILD_ARGS, "--status", "validated,dubious"]
    invoke(build_store_command, args, dask_client)
    return store


@pytest.fixture(scope="module")
def eco_model(eco_store: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny real model of ``eco_store``, with thresholds.json (for abundance)."""
    model = fit_small_model(eco_store, tmp_path_factory.mktemp("eco-model") / "model")
    result = CliRunner().invoke(thresholds_command, [eco_store, "--model", str(model)])
    assert result.exit_code == 0, result.output
    return model


def test_flowcam_layout_and_its_ecotaxa_conversion_give_identical_stores(
    demo_flowcam: Path, tmp_path: Path, dask_client
) -> None:
    flowcam_to_ecotaxa(demo_flowcam, tmp_path / "eco")
    stores = {}
    for name, source in [("flowcam", demo_flowcam), ("ecotaxa", tmp_path / "eco")]:
        stores[name] = str(tmp_path / f"{name}.zarr")
        options = BuildOptions(label_column="level2", seed=3, **OPTIONS)
        build_store(str(source), stores[name], options, dask_client, progress=False, echo=str)
    a, b = open_store(stores["flowcam"]), open_store(stores["ecotaxa"])
    assert a.class_names == b.class_names and a.n_samples == b.n_samples > 1000
    for array in (fmt.OBJID, fmt.LABEL, fmt.SPLIT, fmt.IMAGES, fmt.ORIG_HEIGHT):
        np.testing.assert_array_equal(a.array(array)[:], b.array(array)[:], err_msg=array)
    assert a.feature_tables == ["native"] and b.feature_tables == ["ecotaxa"]
    native, native_columns = a.features("native")
    ecotaxa, columns = b.features("ecotaxa")
    assert columns[:4] == ["object_area", "object_mean", "object_perim.", "object_circ."]
    for name in ("area", "perim."):
        np.testing.assert_array_equal(
            ecotaxa[:][:, columns.index(f"object_{name}")],
            native[:][:, native_columns.index(name)],
        )


def test_status_option_widens_the_ground_truth_of_build_store(
    eco_zip, eco_store: str, tmp_path: Path, dask_client
) -> None:
    zipped, rows = eco_zip
    dubious = rows["object_annotation_status"].eq("dubious").sum()
    assert dubious > 100
    store = open_store(eco_store)
    assert store.label_column == "object_annotation_category"
    assert store.attrs[fmt.Attr.BUILD_OPTIONS]["statuses"] == ["validated", "dubious"]
    narrow = str(tmp_path / "narrow.zarr")
    invoke(build_store_command, [str(zipped), narrow, *BUILD_ARGS], dask_client)
    assert open_store(narrow).n_samples == store.n_samples - dubious + (
        pd.read_csv(eco_store + fmt.REJECTS_SUFFIX)["reason"].str.contains("dropped").sum()
        - pd.read_csv(narrow + fmt.REJECTS_SUFFIX)["reason"].str.contains("dropped").sum()
    )
    rejects = pd.read_csv(narrow + fmt.REJECTS_SUFFIX)
    assert rejects["reason"].eq("no object_annotation_category label").sum() == dubious + 5
    bad = CliRunner().invoke(build_store_command, [str(zipped), narrow, "--status", "checked"])
    assert bad.exit_code == 2 and "give a comma-separated few of" in bad.output


def test_a_features_model_trains_on_the_ecotaxa_feature_table(eco_store: str, tmp_path) -> None:
    store = open_store(eco_store)
    assert store.feature_tables == ["ecotaxa"]
    _, columns = store.features("ecotaxa")
    assert "object_%area" in columns and "object_lat" not in columns
    out = tmp_path / "features-model"
    args = [eco_store, "--model", "features", "--out", str(out), "--epochs", "3"]
    result = CliRunner().invoke(train_command, [*args, "--threads", "1"])
    assert result.exit_code == 0, result.output
    info = json.loads((out / "model.json").read_text())
    assert "object_perim." in info["feature_columns"]["ecotaxa"]


def read_tsv_zip(path: Path) -> tuple[bytes, pd.DataFrame]:
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist() == ["ecotaxa_predictions.tsv"]
        data = zf.read("ecotaxa_predictions.tsv")
    frame = pd.read_csv(io.BytesIO(data), sep="\t", encoding="utf-8-sig", skiprows=[1], dtype=str)
    return data, frame


def test_round_trip_to_predictions_ecotaxa_read_back_independently(
    eco_zip, eco_store: str, eco_model: Path, tmp_path: Path, dask_client
) -> None:
    zipped, rows = eco_zip
    model = eco_model
    out = tmp_path / "predictions.zip"
    args = [str(zipped), "--model", str(model), "--out", str(out), "--format", "ecotaxa"]
    invoke(predict_command, [*args, "--no-gallery"], dask_client)
    data, frame = read_tsv_zip(out)
    assert data.startswith(b"\xef\xbb\xbf")
    names, types = data.decode("utf-8-sig").splitlines()[:2]
    assert types.split("\t") == [
        "[f]" if n.endswith("_score") else "[t]" for n in names.split("\t")
    ]
    assert sorted(frame["object_id"]) == sorted(rows["object_id"])  # each exactly once
    assert frame["img_file_name"].str.startswith("export/sample_").all()
    assert (frame["object_annotation_status"] == "predicted").all()
    assert frame["object_annotation_category"].isin(open_store(eco_store).class_names).all()
    pyecotaxa = pytest.importorskip(
        "pyecotaxa.archive", reason="pyecotaxa (test extra) not installed"
    )
    with pyecotaxa.Archive(out) as archive:
        archive.validate()  # EcoTaxa's structure checks, as pyecotaxa mimics them
        tables = list(archive.iter_tsv())
    assert [name for name, _ in tables] == ["ecotaxa_predictions.tsv"]
    back = tables[0][1]
    assert back["object_id"].tolist() == frame["object_id"].tolist()
    assert back["object_score"].dtype == np.float64  # read as [f]


def test_keep_column_sample_id_and_abundance_by_sample(
    eco_zip, eco_store: str, eco_model: Path, tmp_path: Path, dask_client
) -> None:
    zipped, rows = eco_zip
    model = eco_model
    csv = tmp_path / "predictions.csv"
    args = [str(zipped), "--model", str(model), "--out", str(csv), "--no-gallery"]
    invoke(predict_command, [*args, "--keep-column", "sample_id", "--probabilities"], dask_client)
    predictions = pd.read_csv(csv, dtype=str)
    expected = rows.set_index("object_id")["sample_id"]
    # The text object_id comes back unchanged, the sample beside it.
    assert predictions["object_id"].tolist() == rows["object_id"].tolist()
    assert predictions["sample_id"].tolist() == expected[predictions["object_id"]].tolist()
    args = [str(csv), "--model", str(model), "--by", "sample_id", "--out", str(tmp_path / "ab")]
    result = CliRunner().invoke(abundance_command, args)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "ab" / "abundance.csv")
    assert set(table["group"]) == {"sample_0", "sample_1", "sample_2"}
    # The default estimator (EM) accounts for every object of each sample.
    corrected = table.groupby("group")["corrected_count"].sum()
    assert corrected.round().to_dict() == predictions["sample_id"].value_counts().to_dict()


def test_evaluate_and_explore_read_an_ecotaxa_export(
    eco_zip, eco_store: str, eco_model: Path, tmp_path: Path, dask_client
) -> None:
    zipped, rows = eco_zip
    model = eco_model
    scored = {}
    for status in ("validated", "validated,dubious"):
        out = tmp_path / f"eval-{status}"
        args = [str(zipped), "--model", str(model), "--out", str(out), "--status", status]
        invoke(evaluate_command, [*args, "--skip-unknown-labels"], dask_client)
        assert (out / "report.md").is_file()
        scored[status] = len(pd.read_csv(out / "predictions.csv"))
    known = rows["object_annotation_category"].isin(open_store(eco_store).class_names)
    validated = rows["object_annotation_status"].eq("validated") & known
    dubious = rows["object_annotation_status"].eq("dubious") & known
    assert scored == {
        "validated": validated.sum(),
        "validated,dubious": (validated | dubious).sum(),
    }
    out = tmp_path / "explore"
    output = invoke(explore_command, [str(zipped), "--out", str(out)], dask_client)
    assert "Report:" in output
    report = (out / "report.md").read_text()
    assert "ecotaxa export" in report and "object_annotation_category" in report


def test_ingest_takes_an_ecotaxa_export_with_its_own_status_choice(
    demo_flowcam: Path, tmp_path: Path, dask_client
) -> None:
    from jobs.ingest import ingest_command

    rows = flowcam_to_ecotaxa(demo_flowcam, tmp_path / "all", dubious_every=4)
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    for folder in sorted((tmp_path / "all").iterdir()):
        folder.rename((first if folder.name == "sample_0" else second) / folder.name)
    store = str(tmp_path / "store.zarr")
    invoke(build_store_command, [str(first), store, *BUILD_ARGS], dask_client)
    before = open_store(store).n_samples
    output = invoke(
        ingest_command, [store, str(second), "--status", "validated,dubious"], dask_client
    )
    assert "Version" in output and "0 duplicates skipped" in output
    later = rows[rows["sample_id"] != "sample_0"]
    objids = open_store(store).array(fmt.OBJID)[:]
    new = set(objids[before:][objids[before:] > 0].tolist())
    dubious = later[later["object_annotation_status"] == "dubious"]["object_id"].astype(int)
    assert set(dubious) & new and new <= set(later["object_id"].astype(int))
