"""predict on exports and unlabelled image folders, on the shared two-process Dask cluster."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from jobs.predict import predict_command
from plankton_store.io import prepare_images, read_export
from plankton_store.ml import (
    ModelMismatchError,
    predict_proba_tta,
    predict_source,
    rejects_path_for,
)
from plankton_store.store import format as fmt
from plankton_store.store import open_store
from tests.conftest import fit_small_model, jpeg, shape_image

pytest.importorskip("plankton_store.ml._models")
from plankton_store.ml import ModelInputs, load_model


def quiet(_: str) -> None:
    pass


def decode_directly(export, model) -> ModelInputs:
    refs = export.table["image"].tolist()
    pixels, height, width, failures = prepare_images(
        export.fetcher.fetch, refs, ["none"] * len(refs), model.image_size, model.resize_mode
    )
    assert not failures
    return ModelInputs(pixels, height, width, {})


@pytest.fixture(scope="module")
def predicted(small_export, small_model, dask_client, tmp_path_factory):
    out = tmp_path_factory.mktemp("predict") / "predictions.csv"
    # Blocks of 50 rows: 4 tasks over the 196 rows, spread over both workers.
    result = predict_source(
        small_export, small_model, out, dask_client, block_size=50, progress=False, echo=quiet
    )
    return out, result


def test_rows_in_input_order_and_equal_to_a_direct_decode(predicted, small_export, small_model):
    out, result = predicted
    frame = pd.read_csv(out, keep_default_na=False)
    assert frame.columns.tolist() == ["objid", "image", "label", "predicted", "probability", "top3"]
    export = read_export(small_export)
    assert frame["objid"].tolist() == export.table["objid"].tolist()
    assert frame["label"].tolist() == export.table["label"].tolist()  # artefact rows too
    model = load_model(small_model)
    proba = model.predict_proba(decode_directly(export, model))
    names = np.asarray(model.class_names)
    assert frame["predicted"].tolist() == names[proba.argmax(axis=1)].tolist()
    np.testing.assert_allclose(frame["probability"], proba.max(axis=1), atol=1e-4)
    top3 = frame["top3"].str.split("|")
    assert (top3.str.len() == 3).all()
    assert (top3.str[0].str.split(":").str[0] == frame["predicted"]).all()
    values = top3.apply(lambda parts: [float(p.rsplit(":", 1)[1]) for p in parts])
    assert all(a >= b >= c for a, b, c in values)
    assert result.rejects is None and result.n_predicted == len(export.table)


def test_predict_sees_exactly_the_pixels_of_the_store(predicted, small_store, small_model):
    """Same decode + resize code: a test image scored from the store and from the export
    gets the same probabilities."""
    frame = pd.read_csv(predicted[0], keep_default_na=False).set_index("objid")
    store = open_store(small_store)
    test = store.split_indices("test")
    model = load_model(small_model)
    proba = model.predict_proba(ModelInputs.from_store(store, test))
    objid = store.array(fmt.OBJID)[:][test]
    np.testing.assert_allclose(frame.loc[objid, "probability"], proba.max(axis=1), atol=1e-4)
    names = np.asarray(model.class_names)
    assert frame.loc[objid, "predicted"].tolist() == names[proba.argmax(axis=1)].tolist()


@pytest.fixture
def unlabelled_folder(tmp_path):
    root = tmp_path / "new-images"
    root.mkdir()
    rng = np.random.default_rng(5)
    for i in range(5):
        im = shape_image(i, int(rng.integers(20, 80)), int(rng.integers(20, 60)), rng)
        if i % 2:
            im.save(root / f"img_{i}.png")
        else:
            (root / f"img_{i}.jpg").write_bytes(jpeg(im))
    (root / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (root / "notes.txt").write_text("not an image")
    return root


def test_unlabelled_image_folder_with_tta_through_the_cli(
    unlabelled_folder, small_model, dask_client, tmp_path
):
    out = tmp_path / "out" / "pred.csv"
    args = [str(unlabelled_folder), "--model", str(small_model), "--out", str(out), "--tta"]
    args += ["--scheduler", dask_client.scheduler.address]
    result = CliRunner().invoke(predict_command, args)
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out)
    assert frame.columns.tolist() == ["objid", "image", "predicted", "probability", "top3"]
    assert frame["image"].tolist() == [f"img_{i}.{'png' if i % 2 else 'jpg'}" for i in range(5)]
    rejects = pd.read_csv(rejects_path_for(out))
    reasons = dict(zip(rejects["image"], rejects["reason"], strict=True))
    assert set(reasons) == {"broken.jpg", "notes.txt"}
    assert "not an image file" in reasons["notes.txt"] and "image" in reasons["broken.jpg"]
    # TTA: the mean over the 8 views of the very pixels build-store would have stored.
    export = read_export(unlabelled_folder)
    export.table = export.table[export.table["image"] != "broken.jpg"].reset_index(drop=True)
    model = load_model(small_model)
    proba = predict_proba_tta(model, decode_directly(export, model), model.resize_mode)
    np.testing.assert_allclose(frame["probability"], proba.max(axis=1), atol=1e-4)


def test_a_features_model_needs_the_feature_table(
    small_store, unlabelled_folder, dask_client, tmp_path
):
    model_dir = fit_small_model(small_store, tmp_path / "features", kind="features")
    with pytest.raises(ModelMismatchError, match="feature table 'native'"):
        predict_source(
            unlabelled_folder,
            model_dir,
            tmp_path / "p.csv",
            dask_client,
            progress=False,
            echo=quiet,
        )


def test_a_flowcam_export_without_the_label_column_is_classified(
    small_export, small_model, dask_client, tmp_path
):
    export = tmp_path / "export"
    export.mkdir()
    meta = pd.read_csv(small_export / "meta.csv", dtype=str).drop(columns=["level2"])
    meta.to_csv(export / "meta.csv", index=False)
    (export / "imgs.zip").write_bytes((small_export / "imgs.zip").read_bytes())
    result = predict_source(
        export, small_model, tmp_path / "p.csv", dask_client, progress=False, echo=quiet
    )
    assert "label" not in result.predictions.columns
    assert result.predictions["objid"].tolist() == meta["objid"].astype(int).tolist()
