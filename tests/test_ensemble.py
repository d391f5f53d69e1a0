"""ensemble: pooled probabilities, weights fitted on val, and the MODEL_DIR end to end."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from jobs.ensemble import ensemble_command
from plankton_store.ml import (
    ModelMismatchError,
    cached_model,
    ensemble,
    evaluate,
    fit_weights,
    pool_probabilities,
    pool_views,
    predict_source,
    read_model_info,
)
from plankton_store.report import macro_f1
from plankton_store.store import BuildOptions, build_store, open_store
from plankton_store.store import format as fmt
from tests.conftest import SMALL_STORE_OPTIONS, fit_small_model, write_flowcam_export


def quiet(_: str) -> None:
    pass


def test_pooling_is_a_normalised_weighted_geometric_mean():
    a = np.array([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])
    b = np.array([[0.2, 0.7, 0.1], [0.5, 0.4, 0.1]])
    pooled = pool_probabilities([a, b], [3, 1])
    expected = a**0.75 * b**0.25
    np.testing.assert_allclose(pooled, expected / expected.sum(1, keepdims=True), rtol=1e-5)
    np.testing.assert_allclose(pool_probabilities([a, b], [1, 0]), a, rtol=1e-5)
    with pytest.raises(ValueError, match="non-negative"):
        pool_probabilities([a, b], [0, 0])


def test_weights_favour_the_member_that_helps_and_drop_noise():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 50)
    good = np.full((200, 4), 0.1)
    good[np.arange(200), y] = 0.7
    good[:20] = 0.25  # undecided on the first 20: only a partner can fix those
    partner = np.full((200, 4), 0.2)
    partner[np.arange(200), y] = 0.4
    noise = rng.dirichlet(np.ones(4), size=200)
    weights, best = fit_weights([noise, good, partner], y)
    assert weights.sum() == pytest.approx(1.0)
    assert weights[0] == 0.0 and weights[1] > 0
    assert best >= macro_f1(y, good.argmax(1))
    assert best == pytest.approx(macro_f1(y, pool_probabilities([noise, good, partner],
                                                                weights).argmax(1)))  # fmt: skip


@pytest.fixture(scope="module")
def featureless(tmp_path_factory, dask_client):
    """A store with computed features from an export without feature tables, an image model
    and a features model trained on it, and their ensemble."""
    root = tmp_path_factory.mktemp("ensemble")
    export = write_flowcam_export(
        root / "export", {"copepod": 60, "diatom": 40, "detritus": 80}, with_features=False
    )
    store = str(root / "store.zarr")
    options = BuildOptions(**SMALL_STORE_OPTIONS, compute_features=True)
    build_store(str(export), store, options, dask_client, progress=False, echo=quiet)
    image_model = fit_small_model(store, root / "mlp", kind="mlp")
    features_model = fit_small_model(store, root / "features", kind="features")
    result = ensemble(store, [image_model, features_model], root / "pool", echo=quiet)
    return export, store, image_model, features_model, result


def test_ensemble_is_a_model_dir_no_worse_on_val_than_its_members(featureless, tmp_path):
    export, store, image_model, features_model, result = featureless
    meta = json.loads((Path(result.model_dir) / "model.json").read_text())
    assert meta["kind"] == "ensemble" and meta["members"] == ["../mlp", "../features"]
    assert sum(meta["weights"]) == pytest.approx(1.0)
    assert result.val_macro_f1 >= max(result.member_val_macro_f1)
    info = read_model_info(result.model_dir)
    assert fmt.COMPUTED_FEATURES in info.feature_columns and not info.is_keras
    # evaluate takes it like any model and reproduces the pooled val figure.
    ev = evaluate(store, result.model_dir, tmp_path / "report", split="val", progress=False,
                  echo=quiet)  # fmt: skip
    assert ev.summary["macro_f1"] == pytest.approx(result.val_macro_f1, abs=1e-4)
    assert ev.summary["model"]["kind"] == "ensemble"


def test_weights_fitted_with_tta_are_scored_as_evaluate_tta_scores(featureless, tmp_path):
    """The val figures the ensemble reports are those evaluate --tta computes with it."""
    _, store, _, features_model, _ = featureless
    # A weak, unsure image model, so that both members get a weight (the fixture's image
    # model is perfect on val and takes all of it). How strong a given C makes it depends
    # on the scikit-learn release (1.9 moved the usable window from 1e-6 to about 5e-5).
    for c in (1e-6, 1e-5, 3e-5, 5e-5, 1e-4):
        weak = fit_small_model(store, tmp_path / f"weak-{c:g}", kind="mlp", regularisation=c)
        result = ensemble(
            store, [weak, features_model], tmp_path / f"pool-{c:g}", tta=True, echo=quiet
        )
        if 0 < min(result.weights):
            break
    assert 0 < min(result.weights) and result.val_macro_f1 < 1
    ev = evaluate(store, result.model_dir, tmp_path / "report", split="val", tta=True,
                  progress=False, echo=quiet)  # fmt: skip
    assert ev.summary["macro_f1"] == pytest.approx(result.val_macro_f1, abs=5e-5)  # 4 decimals
    assert ev.summary["accuracy"] == pytest.approx(result.val_accuracy, abs=1e-4)
    assert not ev.summary["notes"]
    # Used without the TTA its weights were fitted for: the report says so.
    plain = evaluate(store, result.model_dir, tmp_path / "plain", split="val", progress=False,
                     echo=quiet)  # fmt: skip
    assert any("fitted with --tta and is used without" in n for n in plain.summary["notes"])


def test_weights_fitted_on_views_beat_weights_fitted_on_averaged_views():
    """What TTA deploys is each view pooled, then averaged: fitting the weights on members'
    averaged views optimises another function, and does worse on the deployed one."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 300)

    def member(strength: float) -> np.ndarray:  # 8 views that disagree, true class favoured
        logits = rng.normal(0, 1.5, (8, 300, 4))
        logits[:, np.arange(300), y] += strength
        return np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)

    views = [member(1.0), member(0.8)]
    weights, best = fit_weights(views, y)
    assert best == pytest.approx(macro_f1(y, pool_views(views, weights).argmax(1)))
    averaged, _ = fit_weights([v.mean(0) for v in views], y)
    assert best > macro_f1(y, pool_views(views, averaged).argmax(1)) + 0.005


def test_pool_views_pools_each_view_then_averages():
    rng = np.random.default_rng(2)
    a, b = rng.dirichlet(np.ones(5), size=(8, 30)), rng.dirichlet(np.ones(5), size=(8, 30))
    pooled = pool_views([a, b], [0.7, 0.3])
    per_view = [pool_probabilities([a[v], b[v]], [0.7, 0.3]) for v in range(8)]
    np.testing.assert_allclose(pooled, np.mean(per_view, axis=0), rtol=1e-5)
    mean_first = pool_probabilities([a.mean(0), b.mean(0)], [0.7, 0.3])
    assert not np.allclose(pooled, mean_first, atol=1e-3)  # the order matters
    np.testing.assert_allclose(pool_views([a[0], b[0]], [1, 1]), pool_probabilities(
        [a[0], b[0]], [1, 1]))  # fmt: skip


def test_predict_on_an_export_computes_the_features_as_build_store_did(
    featureless, dask_client, tmp_path
):
    """The export has no feature tables: predict computes them from the images, and every
    image scores exactly as it does from the store."""
    export, store, _, _, result = featureless
    out = tmp_path / "predictions.csv"
    predict_source(export, result.model_dir, out, dask_client, progress=False, echo=quiet)
    frame = pd.read_csv(out, keep_default_na=False).set_index("objid")
    st = open_store(store)
    test = st.split_indices("test")
    ev = evaluate(store, result.model_dir, tmp_path / "report", split="test", progress=False,
                  echo=quiet)  # fmt: skip
    scored = pd.read_csv(tmp_path / "report" / "predictions.csv").set_index("objid")
    objid = st.array(fmt.OBJID)[:][test]
    assert len(objid) == ev.summary["n_samples"] > 10
    assert frame.loc[objid, "predicted"].tolist() == scored.loc[objid, "predicted"].tolist()


def test_members_of_another_store_are_refused(featureless, small_store, small_model, tmp_path):
    _, store, image_model, _, _ = featureless
    with pytest.raises(ModelMismatchError, match="another store"):
        ensemble(store, [image_model, small_model], tmp_path / "pool", echo=quiet)
    runner = CliRunner()
    args = [store, "--member", str(image_model), "--out", str(tmp_path / "one")]
    assert "at least two" in runner.invoke(ensemble_command, args).output


def test_a_retrained_member_is_not_served_from_the_worker_cache(featureless):
    """Workers cache one loaded model: an ensemble must be reloaded when a member changes,
    even though the ensemble's own model.json did not."""
    _, _, image_model, _, result = featureless
    first = cached_model(result.model_dir)
    assert cached_model(result.model_dir) is first
    member_json = Path(image_model) / "model.json"
    stat = member_json.stat()
    os.utime(member_json, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    try:
        assert cached_model(result.model_dir) is not first
    finally:
        os.utime(member_json, ns=(stat.st_atime_ns, stat.st_mtime_ns))
