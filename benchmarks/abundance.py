"""Thresholds and corrected abundances on real plankton: shifted samples from the test split.

Usage::

    python benchmarks/abundance.py [--source ../shared/data/ndsb-dev] [--kind features]
        [--label-column level2] [--samples 200] [--sample-size 500] [--seed 0] [--workdir DIR]

Builds a store of ndsb-dev (70/30 stratified split, 10% val), trains a ``--kind`` model
(``features`` is fast; ``cnn`` is the default recipe, ~20 CPU minutes), fits the thresholds on
val at precision 0.9 (``plankton-jobs thresholds``) and scores the test split once. Then it
draws ``--samples`` synthetic samples of ``--sample-size`` test objects whose class mix
differs strongly from the training mix: half Dirichlet(0.3) mixes, half dominated (70%) by
one class. For each it prints the mean absolute error of relative abundance over classes,
raw (classify and count) and corrected (adjusted classify-and-count, NNLS), and the share of
(sample, class) pairs whose true count lies in the corrected 95% interval; and, for the
threshold run, the share of test images auto-classified and their precision.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "jobs.cli", *args], check=True)


def shifted_mix(rng: np.random.Generator, n_classes: int, dominated: bool) -> np.ndarray:
    mix = rng.dirichlet(np.full(n_classes, 0.3))
    if dominated:
        mix = 0.3 * mix
        mix[rng.integers(n_classes)] += 0.7
    return mix


def em_priors(proba: np.ndarray, train_prior: np.ndarray, steps: int = 200) -> np.ndarray:
    """EM re-estimation of a sample's class priors (Saerens et al. 2002), for comparison."""
    prior = train_prior.copy()
    for _ in range(steps):
        post = proba * (prior / np.maximum(train_prior, 1e-12))
        post /= post.sum(axis=1, keepdims=True)
        prior = post.mean(axis=0)
    return prior


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", default="../shared/data/ndsb-dev")
    ap.add_argument("--kind", default="features")
    ap.add_argument("--label-column", default="level2")
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--sample-size", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", default=None)
    a = ap.parse_args()
    work = Path(a.workdir or tempfile.mkdtemp(prefix="abundance-"))
    store, model = work / f"ndsb-{a.label_column}.zarr", work / f"{a.kind}-{a.label_column}"
    if not store.exists():
        cli("build-store", a.source, str(store), "--label-column", a.label_column,
            "--resize", "pad", "--size", "64x64", "--test-fraction", "0.3",
            "--val-fraction", "0.1", "--augment-below", "0", "--keep-all-classes",
            "--max-per-class", "0", "--compute-features", "--workers", "2")  # fmt: skip
    if not model.exists():
        cli("train", str(store), "--out", str(model), "--model", a.kind)
    cli("thresholds", str(store), "--model", str(model), "--target-precision", "0.9")

    from plankton_store.ml import (
        load_thresholds,
        load_val_confusion,
        read_model_info,
        threshold_report,
    )
    from plankton_store.ml._evaluate import class_mapping, predict_store, split_indices
    from plankton_store.report import estimate_abundance
    from plankton_store.store import open_store

    info = read_model_info(model)
    st = open_store(str(store))
    test = split_indices(st, "test")
    y_test = class_mapping(info, st.class_names, "store")[st.labels[test]]
    proba = predict_store(st, info, test, None, False, False)
    pred = proba.argmax(axis=1)
    k = len(info.class_names)
    _, auto = threshold_report(y_test, proba, load_thresholds(model, info.class_names),
                               info.class_names)  # fmt: skip
    val_true, val_pred = load_val_confusion(model)
    rng = np.random.default_rng(a.seed)
    by_class = [np.flatnonzero(y_test == c) for c in range(k)]
    present = np.array([len(b) > 0 for b in by_class])
    train_prior = np.bincount(val_true, minlength=k) / len(val_true)
    raw_err, cor_err, em_err, covered = [], [], [], []
    for s in range(a.samples):
        mix = shifted_mix(rng, k, dominated=s % 2 == 1) * present
        counts = rng.multinomial(a.sample_size, mix / mix.sum())
        idx = np.concatenate([rng.choice(by_class[c], n) for c, n in enumerate(counts) if n])
        est = estimate_abundance(pred[idx], val_true, val_pred, k, resamples=100, seed=s)
        truth = counts / counts.sum()
        raw_err.append(np.abs(est.raw / est.raw.sum() - truth).mean())
        cor_err.append(np.abs(est.corrected / max(est.corrected.sum(), 1e-9) - truth).mean())
        em_err.append(np.abs(em_priors(proba[idx], train_prior) - truth).mean())
        covered.append((est.low <= counts) & (counts <= est.high))
    result = {
        "model": info.name,
        "label_column": a.label_column,
        "samples": a.samples,
        "sample_size": a.sample_size,
        "mae_raw": float(np.mean(raw_err)),
        "mae_corrected": float(np.mean(cor_err)),
        "mae_em": float(np.mean(em_err)),
        "coverage_95": float(np.mean(covered)),
        **auto,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
