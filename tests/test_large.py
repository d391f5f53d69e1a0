"""The large preset (a residual cnn) and --init, at a tiny size: train, save, predict on Dask
workers, start from another model's weights (same or other classes), JAX backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from jobs.train import train_command
from plankton_store.io import prepare_images, read_export
from plankton_store.ml import ModelInputs, TrainOptions, _large, load_model, predict_source, train
from plankton_store.store import open_store
from tests.test_train import _NO_TENSORFLOW

#: A few filters in two stages: the same code as the real preset, at test size.
TINY_STAGES = ((4, 1), (8, 1))


@pytest.fixture(autouse=True)
def tiny_net(monkeypatch):
    monkeypatch.setattr(_large, "LARGE_STAGES", TINY_STAGES)


@pytest.fixture(scope="module")
def large_model(small_store, tmp_path_factory):
    """A large-preset model of ``small_store`` trained by the CLI (2 epochs)."""
    out = tmp_path_factory.mktemp("large") / "large"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_large, "LARGE_STAGES", TINY_STAGES)
        args = [small_store, "--out", str(out), "--preset", "large", "--epochs", "2"]
        args += ["--threads", "1", "--head", "softmax", "--batch-size", "32"]
        result = CliRunner().invoke(train_command, args)
    assert result.exit_code == 0, result.output
    return out


def test_preset_defaults_and_checks():
    options = TrainOptions(preset="large").resolved()
    assert (options.model, options.head, options.batch_size, options.augment) == (
        "cnn",
        "auto",
        128,
        True,
    )
    assert TrainOptions(preset="large", head="softmax", lr=1e-3).resolved().lr == 1e-3
    assert TrainOptions().resolved().head == "logistic"  # the default cnn is unchanged
    with pytest.raises(ValueError, match="--preset large is a cnn"):
        TrainOptions(model="mlp", preset="large").resolved()
    with pytest.raises(ValueError, match="unknown --preset"):
        TrainOptions(preset="huge").resolved()
    with pytest.raises(ValueError, match="--init is for the Keras models"):
        TrainOptions(model="features", init="somewhere").resolved()


def test_the_saved_model_is_a_residual_cnn(large_model):
    meta = json.loads((large_model / "model.json").read_text())
    assert meta["kind"] == "cnn" and meta["options"]["preset"] == "large"
    net = load_model(large_model).estimator
    kinds = [type(layer).__name__ for layer in net.layers]
    assert kinds.count("Add") == len(TINY_STAGES)  # one residual block per stage
    assert "JittableRandomZoom" in kinds  # scale jitter
    assert "JittableRandomRotation" not in kinds  # small_store is stretched: no any-angle
    history = pd.read_csv(large_model / "history.csv")
    assert len(history) == 2 and history["lr"].iloc[1] < history["lr"].iloc[0]  # cosine


def test_predict_on_workers_equals_the_model_in_process(
    large_model, small_export, small_store, dask_client, tmp_path
):
    out = tmp_path / "predictions.csv"
    predict_source(
        small_export, large_model, out, dask_client, block_size=50, progress=False, echo=print
    )
    frame = pd.read_csv(out, keep_default_na=False)
    export = read_export(small_export)
    model = load_model(large_model)
    refs = export.table["image"].tolist()
    pixels, height, width, failures = prepare_images(
        export.fetcher.fetch, refs, ["none"] * len(refs), model.image_size, model.resize_mode
    )
    assert not failures
    proba = model.predict_proba(ModelInputs(pixels, height, width, {}))
    names = np.asarray(model.class_names)
    assert frame["objid"].tolist() == export.table["objid"].tolist()
    assert frame["predicted"].tolist() == names[proba.argmax(axis=1)].tolist()
    np.testing.assert_allclose(frame["probability"], proba.max(axis=1), atol=1e-4)


def test_init_with_the_same_classes_starts_from_the_same_predictions(large_model, small_store):
    st = open_store(small_store)
    source = load_model(large_model)
    net = _large.build_large_for(
        st.image_size, len(st.class_names), source.normalisation, 1e-3, True, True
    )
    inputs = ModelInputs.from_store(st, st.split_indices("val"))
    before = source.predict_proba(inputs)
    copied = _large.init_from(net, large_model, st.class_names)
    assert copied == len([la for la in net.layers if la.weights and la.name != "standardise_size"])
    after = source.__class__(
        "cnn", net, source.class_names, source.label_column, source.store_fingerprint,
        source.image_size, source.resize_mode, source.normalisation,
    ).predict_proba(inputs)  # fmt: skip
    np.testing.assert_allclose(after, before, atol=1e-5)


def test_init_with_other_classes_replaces_only_the_classifier(large_model, demo_store, tmp_path):
    """``demo_store`` has other classes (and the same 32x24 images): the output layer is
    new, every other layer starts from the earlier model."""
    source = load_model(large_model).estimator
    lines: list[str] = []
    options = TrainOptions(
        preset="large", init=str(large_model), epochs=1, head="softmax", threads=1, lr=1e-9
    )
    train(demo_store, tmp_path / "m", options, echo=lines.append)
    assert any("layers copied (other classes: new output layer)" in line for line in lines)
    tuned = load_model(tmp_path / "m").estimator
    n_classes = len(open_store(demo_store).class_names)
    assert (
        tuned.get_layer("probabilities").units
        == n_classes
        != source.get_layer("probabilities").units
    )
    # lr 1e-9: the first conv's kernel is still the earlier model's (a fresh one differs).
    first = [la for la in tuned.layers if type(la).__name__ == "Conv2D"][0]
    theirs = [la for la in source.layers if type(la).__name__ == "Conv2D"][0]
    np.testing.assert_allclose(first.get_weights()[0], theirs.get_weights()[0], atol=1e-6)


def test_init_refuses_another_net(small_store, large_model, tmp_path, monkeypatch):
    monkeypatch.setattr(_large, "LARGE_STAGES", ((4, 1), (8, 1), (8, 1)))
    st = open_store(small_store)
    net = _large.build_large_for(
        st.image_size, len(st.class_names), load_model(large_model).normalisation, 1e-3, True, True
    )
    with pytest.raises(ValueError, match="another net"):
        _large.init_from(net, large_model, st.class_names)


def test_mixed_precision_net_is_saved_as_a_float32_copy(small_store, large_model):
    st = open_store(small_store)
    norm = load_model(large_model).normalisation
    args = (st.image_size, len(st.class_names), norm, 1e-3, True, True)
    mixed = _large.build_large_for(*args, mixed=True)
    assert any(la.compute_dtype == "float16" for la in mixed.layers)
    assert mixed.get_layer("probabilities").compute_dtype == "float32"
    copy = _large.float32_copy(mixed, lambda: _large.build_large_for(*args))
    assert all(la.compute_dtype != "float16" for la in copy.layers)
    for a, b in zip(copy.get_weights(), mixed.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_large_preset_trains_on_the_jax_backend(demo_store, tmp_path):
    """The GPU recipe's path, on a machine without TensorFlow: trains in mixed precision on
    JAX with XLA (rotation and zoom included), saves float32, loads under TensorFlow."""
    pytest.importorskip("jax")
    out = tmp_path / "m"
    code = _NO_TENSORFLOW + (
        "import keras\n"
        "assert keras.backend.backend() == 'jax'\n"
        "from plankton_store.ml import TrainOptions, train, _large, _fit_keras\n"
        f"_large.LARGE_STAGES = {TINY_STAGES!r}\n"
        "_fit_keras.use_mixed_precision = lambda: True  # as on a GPU: mixed_float16\n"
        f"train({demo_store!r}, {str(out)!r}, TrainOptions(preset='large', epochs=1, "
        "head='softmax', threads=1, batch_size=32), echo=None)\n"
        "from plankton_store.ml import Normalisation\n"
        "norm = Normalisation(image_mean=200.0, image_std=40.0, size_mean=(4.0, 4.0), "
        "size_std=(0.5, 0.5))\n"
        "net = _large.build_large_for((32, 32), 3, norm, 1e-3, True, True)\n"
        "assert net.jit_compile  # XLA with the rotation and zoom layers: fast on a GPU\n"
        "assert 'tensorflow' not in sys.modules\n"
    )
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=300)
    model = load_model(out)
    assert model.kind == "cnn"
    assert {layer.compute_dtype for layer in model.estimator.layers} <= {"float32", "uint8"}
