"""Grids of training runs: one Dask task per combination of settings."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from plankton_store.cluster import run_blocks
from plankton_store.ml._options import TrainOptions
from plankton_store.ml._train import TrainResult, train

#: The summary table a grid writes into its output folder.
GRID_SUMMARY = "grid_summary.csv"
#: ``--grid`` keys -> (TrainOptions field, value parser).
GRID_KEYS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "hidden": ("hidden", lambda v: tuple(int(h) for h in v.split("x"))),
    "lr": ("lr", float),
    "alpha": ("alpha", float),
    "batch-size": ("batch_size", int),
    "balance": ("balance", str),
    "epochs": ("epochs", int),
    "seed": ("seed", int),
}


def parse_grid(specs: Iterable[str]) -> list[dict[str, Any]]:
    """``["hidden=50,100", "lr=1e-3,5e-4"]`` -> one TrainOptions override dict per
    combination (4 here), in order. ``hidden`` takes ``AxB`` for several layers."""
    axes: list[list[tuple[str, str, Any]]] = []
    for spec in specs:
        key, sep, values = spec.partition("=")
        key = key.strip().replace("_", "-")
        if not sep or not values:
            raise ValueError(f"--grid {spec!r}: expected KEY=V1,V2,...")
        if key not in GRID_KEYS:
            raise ValueError(f"--grid key {key!r} unknown; known: {sorted(GRID_KEYS)}")
        name, parse = GRID_KEYS[key]
        try:
            axes.append([(key, name, parse(v.strip())) for v in values.split(",") if v.strip()])
        except ValueError:
            raise ValueError(f"--grid {spec!r}: bad value") from None
    return [
        {"_name": "_".join(f"{k}={_label(v)}" for k, _, v in combo), **{n: v for _, n, v in combo}}
        for combo in itertools.product(*axes)
    ]


def _label(value: Any) -> str:
    return (
        "x".join(map(str, value))
        if isinstance(value, tuple)
        else f"{value:g}"
        if isinstance(value, float)
        else str(value)
    )


def _train_task(store: str, out: str, options: TrainOptions, overwrite: bool) -> TrainResult:
    return train(store, out, options, overwrite=overwrite, echo=None)


def run_grid(
    store: str,
    out: str | os.PathLike,
    options: TrainOptions,
    grid: list[dict[str, Any]],
    client: Any,
    overwrite: bool = False,
    echo: Callable[[str], None] | None = print,
) -> pd.DataFrame:
    """Train one model per grid combination as Dask tasks, each into ``out/<run-name>/``.

    Each task runs single-threaded (``threads=1``): the cluster's workers are the
    parallelism. Returns the summary table, best val macro-F1 first.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names, calls = [], []
    for combo in grid:
        name = combo["_name"]
        run_options = replace(
            options, threads=1, **{k: v for k, v in combo.items() if k != "_name"}
        )
        run_options.resolved()  # fail early on bad settings, on the client
        names.append(name)
        calls.append((store, str(out / name), run_options, overwrite))

    def done(index: int, result: TrainResult) -> None:
        if echo:
            echo(
                f"done {names[index]}: val macro-F1 {result.val_macro_f1:.4f} "
                f"({result.seconds:.0f} s)"
            )

    results = run_blocks(
        client, _train_task, calls, name="train", retries=0, progress=False, on_result=done
    )
    rows = [
        {
            "run": name,
            "val_macro_f1": result.val_macro_f1,
            "val_accuracy": result.val_accuracy,
            "best_epoch": result.best_epoch,
            "epochs": result.epochs_run,
            "seconds": round(result.seconds, 1),
            "model_dir": result.model_dir,
        }
        for name, result in zip(names, results, strict=True)
    ]
    table = pd.DataFrame(rows).sort_values("val_macro_f1", ascending=False, ignore_index=True)
    table.to_csv(out / GRID_SUMMARY, index=False)
    return table
