"""Thresholds and corrected abundances on real plankton: shifted samples from the test split.

Usage::

    python benchmarks/abundance.py [--source ../shared/data/ndsb-dev] [--kind features]
        [--label-column level2] [--samples 200] [--sample-size 500] [--resamples 100]
        [--seed 0] [--workdir DIR]

Builds a store of ndsb-dev (70/30 stratified split, 10% val), trains a ``--kind`` model
(``features`` is fast; ``cnn`` is the default recipe, ~20 CPU minutes), fits the thresholds on
val at precision 0.9 (``plankton-jobs thresholds``) and scores the test split once. Then it
draws ``--samples`` synthetic samples of ``--sample-size`` test objects whose class mix
differs strongly from the training mix: half Dirichlet(0.3) mixes, half dominated (70%) by
one class. For each estimator of ``plankton-jobs abundance --method`` (em, pacc, acc, cc = raw
classify and count) it prints the mean absolute error of relative abundance over classes, its
ratio to the raw error, and the share of (sample, class) pairs whose true count lies in the
95% interval (``--resamples`` bootstrap replicates of val and sample), overall and by true
count, plain and widened by the margins ``thresholds`` fitted on val
(``coverage_95_widened``); and, for the threshold run, the share of test images
auto-classified and their precision.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
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


def coverage_by_count(truth: np.ndarray, low: np.ndarray, high: np.ndarray) -> dict:
    """Interval coverage of (sample, class) pairs, overall and by true count."""
    hit = (low <= truth) & (truth <= high)
    bins = {"0": (0, 0), "1-5": (1, 5), "6-30": (6, 30), ">30": (31, np.inf)}
    out = {"all": float(hit.mean())}
    for name, (lo, hi) in bins.items():
        sel = (truth >= lo) & (truth <= hi)
        out[name] = float(hit[sel].mean()) if sel.any() else float("nan")
    return out


def error_by_count(truth: np.ndarray, estimates: list[np.ndarray]) -> dict:
    """Mean signed error (estimate - truth, objects) of (sample, class) pairs by true count."""
    err = np.concatenate(estimates) - truth
    bins = {"0": (0, 0), "1-5": (1, 5), "6-30": (6, 30), ">30": (31, np.inf)}
    return {
        name: float(err[(truth >= lo) & (truth <= hi)].mean()) for name, (lo, hi) in bins.items()
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", default="../shared/data/ndsb-dev")
    ap.add_argument("--kind", default="features")
    ap.add_argument("--label-column", default="level2")
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--sample-size", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resamples", type=int, default=100)
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
        load_abundance_margins,
        load_thresholds,
        load_val_scores,
        read_model_info,
        threshold_report,
    )
    from plankton_store.ml._evaluate import class_mapping, predict_store, split_indices
    from plankton_store.report import METHODS, estimate_abundance, fit_val, widen_interval
    from plankton_store.store import open_store

    info = read_model_info(model)
    st = open_store(str(store))
    test = split_indices(st, "test")
    y_test = class_mapping(info, st.class_names, "store")[st.labels[test]]
    proba = predict_store(st, info, test, None, False, False).astype(float)
    k = len(info.class_names)
    _, auto = threshold_report(y_test, proba, load_thresholds(model, info.class_names),
                               info.class_names)  # fmt: skip
    val_true, val_pred, val_proba = load_val_scores(model, info.class_names)
    margins = load_abundance_margins(model)  # fitted on val by the thresholds job above
    started = time.perf_counter()
    fit = fit_val(val_true, val_pred, k, val_proba, resamples=a.resamples, seed=a.seed)
    fit_seconds = time.perf_counter() - started
    rng = np.random.default_rng(a.seed)
    by_class = [np.flatnonzero(y_test == c) for c in range(k)]
    present = np.array([len(b) > 0 for b in by_class])
    errors = {m: [] for m in METHODS}
    bounds = {m: [] for m in METHODS}
    widened = {m: [] for m in METHODS}
    estimates = {m: [] for m in METHODS}
    seconds = dict.fromkeys(METHODS, 0.0)
    truths = []
    for s in range(a.samples):
        mix = shifted_mix(rng, k, dominated=s % 2 == 1) * present
        counts = rng.multinomial(a.sample_size, mix / mix.sum())
        idx = np.concatenate([rng.choice(by_class[c], n) for c, n in enumerate(counts) if n])
        truths.append(counts)
        for method in METHODS:
            t0 = time.perf_counter()
            est = estimate_abundance(fit, None, proba[idx], method=method, seed=s)
            seconds[method] += time.perf_counter() - t0
            share = est.corrected / max(est.corrected.sum(), 1e-9)
            errors[method].append(np.abs(share - counts / counts.sum()).mean())
            bounds[method].append((est.low, est.high))
            widened[method].append(
                widen_interval(est.corrected, est.low, est.high, idx.size, margins, method)
            )
            estimates[method].append(est.corrected)
    truth = np.concatenate(truths)
    dominated = np.arange(a.samples) % 2 == 1
    per_method = {}
    for method in METHODS:
        low = np.concatenate([b[0] for b in bounds[method]])
        high = np.concatenate([b[1] for b in bounds[method]])
        per_method[method] = {
            "mae": float(np.mean(errors[method])),
            "mae_ratio_to_cc": float(np.mean(errors[method]) / np.mean(errors["cc"])),
            "mae_dirichlet": float(np.mean(np.asarray(errors[method])[~dominated])),
            "mae_dominated": float(np.mean(np.asarray(errors[method])[dominated])),
            "coverage_95": coverage_by_count(truth, low, high),
            "coverage_95_widened": coverage_by_count(
                truth,
                np.concatenate([b[0] for b in widened[method]]),
                np.concatenate([b[1] for b in widened[method]]),
            ),
            "mean_width_widened": float(
                np.mean(np.concatenate([b[1] - b[0] for b in widened[method]]))
            ),
            "mean_width": float(np.mean(high - low)),
            "mean_error_by_count": error_by_count(truth, estimates[method]),
            "seconds_per_sample": seconds[method] / a.samples,
        }
    result = {
        "model": info.name,
        "label_column": a.label_column,
        "samples": a.samples,
        "sample_size": a.sample_size,
        "resamples": a.resamples,
        "val_fit_seconds": fit_seconds,
        "margins": margins.to_json(),
        "methods": per_method,
        **auto,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
