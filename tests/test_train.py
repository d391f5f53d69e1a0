"""The train job: every model on a small generated store, MODEL_DIR, leaks, grids, the CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import zarr
from click.testing import CliRunner

from jobs.train import train_command
from plankton_store.ml import (
    ModelInputs,
    TrainOptions,
    configure_keras,
    load_model,
    parse_grid,
    run_grid,
    train,
)
from plankton_store.report import macro_f1
from plankton_store.store import StoreFormatError, open_store
from plankton_store.store import format as fmt

#: Short runs that still learn on the 32x24 demo store.
RUNS = {
    "mlp": TrainOptions(model="mlp", epochs=30, threads=1),
    "features": TrainOptions(model="features", epochs=3, threads=1),
    "cnn": TrainOptions(model="cnn", epochs=12, threads=1),
    # Batches of 16: the seed's batch norms keep Keras' momentum .99, whose running statistics
    # need a few hundred steps to follow the weights (60 steps of 100 left them ~half initial).
    # Its val macro-F1 dips for the first ~10 epochs and passes 0.5 by epoch 14 at one thread
    # per op or two (each order of sums its own curve): 16 epochs, no early stop in the dip.
    "seed-cnn": TrainOptions(
        model="seed-cnn", epochs=16, patience=16, batch_size=16, balance="none", threads=1
    ),
}


def stratified_baseline(store) -> float:
    """Val macro-F1 of guessing classes at their train frequencies (mean of 20 draws)."""
    train_y = store.labels[store.split_indices("train")]
    val_y = store.labels[store.split_indices("val")]
    prior = np.bincount(train_y) / len(train_y)
    rng = np.random.default_rng(0)
    return float(
        np.mean([macro_f1(val_y, rng.choice(len(prior), len(val_y), p=prior)) for _ in range(20)])
    )


@pytest.fixture(scope="module", params=list(RUNS))
def trained(request, demo_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("models") / request.param
    result = train(demo_store, out, RUNS[request.param], echo=None)
    return result, out


def test_model_beats_stratified_random_and_writes_model_dir(trained, demo_store):
    result, out = trained
    store = open_store(demo_store)
    baseline = stratified_baseline(store)
    assert baseline < 0.1
    assert result.val_macro_f1 > baseline + 0.1, (result.model, result.val_macro_f1, baseline)
    meta = json.loads((out / "model.json").read_text())
    for key in ("kind", "class_names", "label_column", "store_fingerprint", "store", "image_size",
                "resize_mode", "normalisation", "options", "seed", "best_epoch", "val_macro_f1",
                "val_accuracy", "plankton_jobs_version"):  # fmt: skip
        assert key in meta, key
    assert meta["store_fingerprint"] == store.fingerprint
    assert meta["class_names"] == store.class_names
    model_file = "model.keras" if result.model in ("cnn", "seed-cnn") else "model.skops"
    assert (out / model_file).is_file() and (out / "history.png").stat().st_size > 1000
    history = pd.read_csv(out / "history.csv")
    assert {"epoch", "loss", "accuracy", "val_macro_f1", "val_accuracy", "seconds"} <= set(history)
    assert history["val_macro_f1"].max() == pytest.approx(meta["val_macro_f1"])
    # The loaded model reproduces the recorded val macro-F1 of its best epoch, or with a
    # refitted head (the cnn's default when it scores at least as well) that of the head.
    model = load_model(out)
    val_idx = store.split_indices("val")
    val = ModelInputs.from_store(store, val_idx)
    proba = model.predict_proba(val, batch_size=64)
    assert proba.shape == (len(val_idx), len(store.class_names)) and proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    if result.model == "cnn":
        assert meta["head"] == model.head_kind
    else:
        assert "head" not in meta and model.head is None
    if model.head is None:
        f1 = macro_f1(store.labels[val_idx], proba.argmax(axis=1))
        assert f1 == pytest.approx(meta["val_macro_f1"], abs=1e-6)
    else:
        from plankton_store.ml import predict_proba_tta

        tta = predict_proba_tta(model, val, model.resize_mode)
        f1 = macro_f1(store.labels[val_idx], tta.argmax(axis=1))
        assert f1 == pytest.approx(meta["head_fit"]["logistic"]["val_macro_f1"], abs=1e-4)


def test_cnn_learning_rate_warms_up_then_decays_to_zero(trained):
    result, out = trained
    if result.model != "cnn":
        pytest.skip("the cosine schedule is the cnn's")
    history = pd.read_csv(out / "history.csv")
    planned, lr0 = RUNS["cnn"].epochs, 2e-3
    progress = history["epoch"].to_numpy() / planned
    expected = lr0 * 0.5 * (1 + np.cos(np.pi * progress))
    np.testing.assert_allclose(history["lr"], expected, rtol=0.1, atol=lr0 * 0.02)
    assert np.all(np.diff(history["lr"]) < 0)


def test_cnn_schedule_is_fitted_to_the_time_budget(demo_store, tmp_path):
    lines: list[str] = []
    options = TrainOptions(model="cnn", epochs=500, patience=500, time_budget=15.0, threads=1)
    result = train(demo_store, tmp_path / "cnn", options, echo=lines.append)
    planned = [line for line in lines if line.startswith("time budget: planning")]
    assert len(planned) == 1, lines
    n_planned = int(planned[0].split()[3])
    assert 3 <= n_planned < 500 and result.epochs_run >= n_planned - 1
    history = pd.read_csv(tmp_path / "cnn" / "history.csv")
    # Re-fitted after every epoch: the run fills the budget and overruns it by < one epoch.
    epoch_seconds = history["seconds"].iloc[1:].median()
    assert 15.0 - 2 * epoch_seconds <= history["elapsed"].iloc[-1] <= 15.0 + epoch_seconds
    assert history["lr"].iloc[-1] < 0.15 * 2e-3  # ended on a small learning rate


def test_a_thread_count_that_cannot_take_effect_is_reported():
    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # whatever an earlier test started it with
        configure_keras(threads=1, seed=0)
    tf.constant(1.0) + 1  # the runtime runs: its thread pools are fixed from here on
    current = tf.config.threading.get_intra_op_parallelism_threads()
    with pytest.warns(RuntimeWarning, match=f"threads={current + 3} cannot take effect"):
        configure_keras(threads=current + 3, seed=0)
    if current:  # asking again for the size it runs with is no change
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            configure_keras(threads=current, seed=0)


def test_mlp_is_repeatable_and_never_sees_val_or_test(demo_store, tmp_path):
    """Poisoning every val and test image and label leaves the training curve unchanged:
    no val/test sample reaches training (or the normalisation statistics)."""
    poisoned = tmp_path / "poisoned.zarr"
    shutil.copytree(demo_store, poisoned)
    group = zarr.open_group(str(poisoned), mode="r+")
    store = open_store(demo_store)
    held_out = np.flatnonzero(store.splits > fmt.Split.TRAIN)
    images = group[fmt.IMAGES][:]
    images[held_out] = np.random.default_rng(1).integers(0, 256, images[held_out].shape)
    group[fmt.IMAGES][:] = images
    labels = group[fmt.LABEL][:]
    labels[held_out] = labels[held_out][::-1]
    group[fmt.LABEL][:] = labels
    options = TrainOptions(model="mlp", epochs=4, threads=1, patience=100)
    runs = [train(p, tmp_path / name, options, echo=None) for p, name in
            ((demo_store, "a"), (demo_store, "b"), (str(poisoned), "c"))]  # fmt: skip
    curves = [pd.read_csv(tmp_path / n / "history.csv") for n in "abc"]
    pd.testing.assert_frame_equal(curves[0].drop(columns=["seconds", "elapsed"]),
                                  curves[1].drop(columns=["seconds", "elapsed"]))  # fmt: skip
    for column in ("loss", "accuracy", "samples"):
        np.testing.assert_array_equal(curves[0][column], curves[2][column])
    norms = [json.loads((tmp_path / n / "model.json").read_text())["normalisation"] for n in "ac"]
    assert norms[0] == norms[1]
    assert runs[0].val_macro_f1 != runs[2].val_macro_f1  # val itself did change


def test_mlp_train_accuracy_is_not_measured_before_the_model_exists(demo_store, tmp_path):
    """The mlp's train accuracy is taken before each update: with one block per epoch the
    first epoch has none (NaN and a dash), not an accuracy of 0."""
    lines: list[str] = []
    options = TrainOptions(model="mlp", epochs=2, batch_size=4096, patience=100, threads=1)
    train(demo_store, tmp_path / "m", options, echo=lines.append)
    history = pd.read_csv(tmp_path / "m" / "history.csv")
    assert (history["samples"] < 4096).all()  # one block (of whole batches) per epoch
    assert np.isnan(history["accuracy"].iloc[0])
    assert 0.0 <= history["accuracy"].iloc[1] <= 1.0
    epoch_lines = [line for line in lines if line.startswith("epoch")]
    assert "acc   -    val_loss" in epoch_lines[0] and "acc nan" not in epoch_lines[0]
    assert "acc 0." in epoch_lines[1] or "acc 1.000" in epoch_lines[1]


def test_mlp_job_never_imports_tensorflow(demo_store, tmp_path):
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from jobs.cli import main\n"
        "assert CliRunner().invoke(main, ['--help']).exit_code == 0\n"
        "import jobs.train, plankton_store.ml, plankton_store.report, plankton_store.store\n"
        "from plankton_store.ml import TrainOptions, train\n"
        f"train({demo_store!r}, {str(tmp_path / 'm')!r}, TrainOptions(model='mlp', epochs=1, "
        "threads=1), echo=None)\n"
        "from plankton_store.ml import load_model\n"
        f"load_model({str(tmp_path / 'm')!r})\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]\n"
        "assert not bad, bad[:5]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


#: Run first in a subprocess: makes ``import tensorflow`` fail, as on a machine without it.
_NO_TENSORFLOW = """
import importlib.abc, sys
class NoTensorflow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "tensorflow":
            raise ModuleNotFoundError("No module named 'tensorflow' (hidden by the test)")
sys.meta_path.insert(0, NoTensorflow())
"""


def test_cnn_trains_on_the_jax_backend_without_tensorflow(demo_store, tmp_path):
    """``KERAS_BACKEND=jax`` (e.g. a GPU machine without TensorFlow) trains the cnn through
    the same job, and the saved model predicts the same under TensorFlow."""
    pytest.importorskip("jax")
    out = tmp_path / "m"
    code = _NO_TENSORFLOW + (
        "import keras, numpy as np\n"
        "assert keras.backend.backend() == 'jax'\n"
        "from plankton_store.ml import TrainOptions, train\n"
        f"train({demo_store!r}, {str(out)!r}, TrainOptions(model='cnn', epochs=2, "
        "head='softmax', threads=1), echo=None)\n"
        "from plankton_store.ml import ModelInputs, load_model\n"
        "from plankton_store.store import open_store\n"
        f"store = open_store({demo_store!r})\n"
        "inputs = ModelInputs.from_store(store, store.split_indices('val'))\n"
        f"np.save({str(tmp_path / 'jax.npy')!r}, load_model({str(out)!r}).predict_proba(inputs))\n"
        "from plankton_store.ml import Normalisation, build_cnn\n"
        "norm = Normalisation(image_mean=200.0, image_std=40.0, size_mean=(4.0, 4.0), "
        "size_std=(0.5, 0.5))\n"
        "assert build_cnn((32, 32), 3, norm, rotate=True).jit_compile  # XLA with rotations too\n"
        "assert 'tensorflow' not in sys.modules\n"
        "import os\n"
        "assert os.environ['XLA_PYTHON_CLIENT_PREALLOCATE'] == 'false'  # GPUs shared by workers\n"
    )
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    env.pop("XLA_PYTHON_CLIENT_PREALLOCATE", None)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300, env=env)
    history = pd.read_csv(out / "history.csv")
    assert list(history["epoch"]) == [1, 2]
    assert history["loss"].iloc[1] < history["loss"].iloc[0]  # it learns
    st = open_store(demo_store)
    proba = load_model(out).predict_proba(ModelInputs.from_store(st, st.split_indices("val")))
    np.testing.assert_allclose(proba, np.load(tmp_path / "jax.npy"), atol=1e-4)


def test_clear_errors(demo_store, tmp_path):
    options = TrainOptions(model="mlp", epochs=1, threads=1)
    with pytest.raises(StoreFormatError, match="no store"):
        train(str(tmp_path / "missing.zarr"), tmp_path / "m", options, echo=None)
    (tmp_path / "exists").mkdir()
    (tmp_path / "exists" / "model.json").write_text("{}")
    with pytest.raises(FileExistsError, match="--overwrite"):
        train(demo_store, tmp_path / "exists", options, echo=None)
    train(demo_store, tmp_path / "exists", options, overwrite=True, echo=None)
    # A class whose train samples were all moved to val.
    moved = tmp_path / "moved.zarr"
    shutil.copytree(demo_store, moved)
    group = zarr.open_group(str(moved), mode="r+")
    split, label = group[fmt.SPLIT][:], group[fmt.LABEL][:]
    split[(label == 0) & (split == fmt.Split.TRAIN)] = fmt.Split.VAL
    group[fmt.SPLIT][:] = split
    name = open_store(demo_store).class_names[0]
    with pytest.raises(ValueError, match=f"no train samples for class.*{name}"):
        train(str(moved), tmp_path / "m2", options, echo=None)
    with pytest.raises(ValueError, match="unknown --balance"):
        train(demo_store, tmp_path / "m3", TrainOptions(model="mlp", balance="magic"), echo=None)


def test_grid_runs_on_dask_with_summary(demo_store, tmp_path, dask_client):
    grid = parse_grid(["hidden=20,40", "lr=1e-3"])
    assert [g["_name"] for g in grid] == ["hidden=20_lr=0.001", "hidden=40_lr=0.001"]
    assert grid[0]["hidden"] == (20,)
    table = run_grid(demo_store, tmp_path, TrainOptions(model="mlp", epochs=3), grid, dask_client,
                     echo=None)  # fmt: skip
    assert len(table) == 2 and table["val_macro_f1"].is_monotonic_decreasing
    for name in ("hidden=20_lr=0.001", "hidden=40_lr=0.001"):
        meta = json.loads((tmp_path / name / "model.json").read_text())
        assert meta["options"]["hidden"] == [int(name.split("=")[1].split("_")[0])]
        assert meta["options"]["threads"] == 1
    assert (tmp_path / "grid_summary.csv").is_file()
    with pytest.raises(ValueError, match="unknown"):
        parse_grid(["depth=3"])


def test_cli_progress_and_refusal(demo_store, tmp_path):
    out = tmp_path / "cli"
    args = [demo_store, "--model", "mlp", "--out", str(out), "--epochs", "2", "--threads", "1"]
    result = CliRunner().invoke(train_command, args)
    assert result.exit_code == 0, result.output
    assert "epoch   1/2" in result.output and "epoch   2/2" in result.output
    assert "val_macro_f1" in result.output
    again = CliRunner().invoke(train_command, args)
    assert again.exit_code != 0 and "--overwrite" in again.output
    missing = CliRunner().invoke(train_command, [str(tmp_path / "nope"), "--out", str(out) + "x"])
    assert missing.exit_code != 0 and "no store" in missing.output
    assert "seed-cnn" in CliRunner().invoke(train_command, ["--help"]).output
