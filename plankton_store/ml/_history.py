"""Per-epoch history of a training run: console progress, early stopping, time budget."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from plankton_store.ml._options import TrainOptions
from plankton_store.report import macro_f1


class History:
    """Per-epoch rows, console progress, early stopping and the time budget."""

    def __init__(self, options: TrainOptions, echo: Callable[[str], None] | None) -> None:
        self.options = options
        self.echo = echo
        self.rows: list[dict[str, Any]] = []
        self.started = time.perf_counter()
        self.best_f1 = -1.0
        self.best_epoch = 0
        self.train_seconds = 0.0
        self.train_samples = 0

    def out_of_time(self) -> bool:
        budget = self.options.time_budget
        return budget is not None and time.perf_counter() - self.started >= budget

    def add(self, epoch: int, seconds: float, samples: int, **metrics: float) -> bool:
        """Record an epoch; True when it is the best so far."""
        self.train_seconds += seconds
        self.train_samples += samples
        row = {
            "epoch": epoch,
            **metrics,
            "samples": samples,
            "seconds": round(seconds, 3),
            "elapsed": round(time.perf_counter() - self.started, 3),
        }
        self.rows.append(row)
        improved = row["val_macro_f1"] > self.best_f1
        if improved:
            self.best_f1, self.best_epoch = row["val_macro_f1"], epoch
        if self.echo:
            lr = f"  lr {row['lr']:.2g}" if "lr" in row and row["lr"] == row["lr"] else ""
            self.echo(
                f"epoch {epoch:>3}/{self.options.epochs}  loss {row['loss']:.4f}  "
                f"acc {_measured(row['accuracy'])}  val_loss {row['val_loss']:.4f}  "
                f"val_acc {row['val_accuracy']:.3f}  val_macro_f1 {row['val_macro_f1']:.3f}"
                f"{' *' if improved else '  '}{lr}  {seconds:.1f} s "
                f"({samples / max(seconds, 1e-9):,.0f} samples/s)"
            )
        return improved

    def should_stop(self, epoch: int) -> str | None:
        if epoch - self.best_epoch >= self.options.patience:
            return f"no better val macro-F1 for {self.options.patience} epochs"
        if self.out_of_time():
            return f"time budget of {self.options.time_budget:g} s used"
        return None

    def stopping(self, epoch: int) -> bool:
        """Whether training stops after ``epoch`` (:meth:`should_stop`); says why on the
        console when it does."""
        reason = self.should_stop(epoch)
        if reason and self.echo:
            self.echo(f"stopping: {reason}")
        return bool(reason)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)


def _measured(value: float) -> str:
    """A metric for the epoch line: three decimals, or a dash where it was not measured."""
    return "  -  " if math.isnan(value) else f"{value:.3f}"


def val_metrics(proba: np.ndarray, y: np.ndarray) -> dict[str, float]:
    pred = proba.argmax(axis=1)
    p = np.clip(proba[np.arange(len(y)), y], 1e-7, 1.0)
    return {
        "val_loss": float(-np.log(p).mean()),
        "val_accuracy": float((pred == y).mean()),
        "val_macro_f1": macro_f1(y, pred),
    }
