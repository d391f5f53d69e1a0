"""The cnn's refitted logistic head: sampling, fitting, ``train --head``, save and load."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from jobs.train import train_command
from plankton_store.ml import (
    HEAD_FILE,
    ModelInputs,
    TrainOptions,
    fit_head,
    keras_inputs,
    load_model,
    train,
)
from plankton_store.ml._head import head_sample
from plankton_store.report import macro_f1
from plankton_store.store import open_store


def test_head_sample_keeps_small_classes_whole_and_shares_the_rest():
    labels = np.repeat([0, 1, 2, 3], [5, 40, 300, 1000])
    rows = head_sample(labels, 200, seed=0)
    assert np.all(np.diff(rows) > 0)
    kept = np.bincount(labels[rows], minlength=4)
    # Cap 40 fits (5 + 40 + 40 + 40 = 125); the other 75 go to the two big classes.
    assert kept.tolist() == [5, 40, 77, 77]
    np.testing.assert_array_equal(head_sample(labels, 5000), np.arange(len(labels)))


def _sized_inputs(labels: np.ndarray, rng: np.random.Generator) -> ModelInputs:
    """Inputs whose class shows only in the original size (square, so every view agrees)."""
    side = (20 * (labels + 1) + rng.integers(-3, 4, len(labels))).astype(np.int32)
    images = rng.integers(0, 256, (len(labels), 8, 8), dtype=np.uint8)
    return ModelInputs(images, side, side.copy(), {})


def test_fit_head_learns_from_every_view_and_keeps_class_codes():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 2, 5], [60, 30, 6])  # codes with gaps; class 5 is rare
    inputs = _sized_inputs(labels, rng)
    views = []

    def embed(x: ModelInputs) -> np.ndarray:  # noise: the class is in the features only
        views.append(x.images.copy())
        return rng.normal(size=(len(x), 4)).astype(np.float32)

    head = fit_head(
        embed, lambda x: x.log_size, inputs, labels, np.bincount(labels, minlength=6), "pad"
    )
    assert len(views) == 8 and not all(np.array_equal(views[0], v) for v in views[1:])
    assert head.classes_.tolist() == [0, 2, 5]
    test = _sized_inputs(np.repeat([0, 2, 5], 10), rng)
    x = np.concatenate([embed(test), test.log_size], axis=1)
    assert macro_f1(np.repeat([0, 2, 5], 10), head.classes_[head.predict_proba(x).argmax(1)]) > 0.9


@pytest.fixture(scope="module")
def cnn_with_head(demo_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("head") / "cnn"
    options = TrainOptions(model="cnn", epochs=4, threads=1, head="logistic")
    result = train(demo_store, out, options, echo=None)
    return result, out


def test_logistic_head_is_saved_loaded_and_makes_the_predictions(cnn_with_head, demo_store):
    result, out = cnn_with_head
    store = open_store(demo_store)
    meta = json.loads((out / "model.json").read_text())
    assert meta["head"] == "logistic" and (out / HEAD_FILE).is_file()
    assert meta["feature_columns"] == {t: store.features(t)[1] for t in store.feature_tables}
    fit = meta["head_fit"]
    assert fit["views"] == 8 and fit["train_samples"] == len(store.split_indices("train"))
    for name in ("softmax", "logistic"):
        assert 0 <= fit[name]["val_macro_f1"] <= 1 and 0 <= fit[name]["val_accuracy"] <= 1
    model = load_model(out)
    assert model.head is not None and model.head_kind == "logistic"
    val_idx = store.split_indices("val")
    val = ModelInputs.from_store(store, val_idx)
    proba = model.predict_proba(val)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    own_layer = model.estimator.predict(keras_inputs(val, "cnn"), verbose=0)
    assert np.abs(proba - own_layer).max() > 0.05  # the head, not the softmax layer, predicts
    assert macro_f1(store.labels[val_idx], proba.argmax(axis=1)) > 0.2


def test_a_model_dir_without_its_head_file_is_refused(cnn_with_head, tmp_path):
    _, out = cnn_with_head
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    (broken / HEAD_FILE).unlink()
    with pytest.raises(FileNotFoundError, match=HEAD_FILE):
        load_model(broken)


def test_head_softmax_keeps_the_nets_own_layer(demo_store, tmp_path):
    out = tmp_path / "cnn"
    options = TrainOptions(model="cnn", epochs=1, threads=1, head="softmax")
    train(demo_store, out, options, echo=None)
    meta = json.loads((out / "model.json").read_text())
    assert meta["head"] == "softmax" and "head_fit" not in meta
    assert not (out / HEAD_FILE).exists() and load_model(out).head is None


def test_head_defaults_and_misuse():
    assert TrainOptions(model="cnn").resolved().head == "logistic"
    assert TrainOptions(model="mlp").resolved().head == "softmax"
    with pytest.raises(ValueError, match="for the cnn"):
        TrainOptions(model="features", head="logistic").resolved()
    with pytest.raises(ValueError, match="unknown --head"):
        TrainOptions(model="cnn", head="forest").resolved()
    result = CliRunner().invoke(
        train_command, ["store.zarr", "--model", "mlp", "--head", "auto", "--out", "m"]
    )
    assert result.exit_code == 2 and "for the cnn model" in result.output
