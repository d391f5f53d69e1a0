"""Every option of a training run, with the defaults that depend on the model."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from plankton_store.ml._balance import BALANCE_POLICIES
from plankton_store.ml._head import HEAD_CHOICES
from plankton_store.ml._large import apply_preset
from plankton_store.ml._modeldir import MODEL_KINDS
from plankton_store.ml._trainset import DEFAULT_MEMORY_LIMIT

#: Defaults that depend on the model: (balance, epochs, batch size, learning rate, augment).
MODEL_DEFAULTS: dict[str, tuple[str, int, int, float, bool]] = {
    "mlp": ("undersample", 50, 200, 5e-4, False),
    "cnn": ("sqrt", 40, 128, 2e-3, True),
    "seed-cnn": ("undersample", 40, 100, 1e-3, False),
    "features": ("class-weight", 40, 0, 0.1, False),
}


@dataclass(frozen=True)
class TrainOptions:
    """Every option of a training run; ``None`` means the model's default
    (:data:`MODEL_DEFAULTS`). Recorded in ``model.json``."""

    model: str = "cnn"
    balance: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    augment: bool | None = None
    hidden: tuple[int, ...] = (100,)
    alpha: float = 1e-4
    patience: int = 8
    time_budget: float | None = None
    seed: int = 0
    threads: int | None = None
    memory_limit: int = DEFAULT_MEMORY_LIMIT
    head: str | None = None
    #: ``large``: the residual net of :mod:`plankton_store.ml._large` and its defaults.
    preset: str | None = None
    #: A MODEL_DIR whose Keras weights the net starts from (``--init``).
    init: str | None = None

    def resolved(self) -> TrainOptions:
        """These options with every ``None`` default filled in for the model."""
        if self.model not in MODEL_KINDS:
            raise ValueError(f"unknown model {self.model!r}; choose from {MODEL_KINDS}")
        balance, epochs, batch, lr, augment = MODEL_DEFAULTS[self.model]
        base = apply_preset(self)  # the preset's defaults come before the model's
        if base.init is not None and base.model not in ("cnn", "seed-cnn"):
            raise ValueError("--init is for the Keras models (cnn, seed-cnn)")
        options = replace(
            base,
            balance=base.balance or balance,
            epochs=base.epochs or epochs,
            batch_size=base.batch_size or batch,
            lr=base.lr or lr,
            augment=augment if base.augment is None else base.augment,
            threads=base.threads or _cpus(),
            hidden=tuple(int(h) for h in base.hidden),
            head=base.head or ("logistic" if base.model == "cnn" else "softmax"),
        )
        if options.balance not in BALANCE_POLICIES:
            raise ValueError(
                f"unknown --balance {options.balance!r}; choose from {BALANCE_POLICIES}"
            )
        if options.augment and options.model not in ("cnn", "seed-cnn"):
            raise ValueError("--augment is for the cnn and seed-cnn models")
        if options.head not in HEAD_CHOICES:
            raise ValueError(f"unknown --head {options.head!r}; choose from {HEAD_CHOICES}")
        if options.head != "softmax" and options.model != "cnn":
            raise ValueError("--head auto / logistic is for the cnn model")
        if options.epochs < 1 or (options.model != "features" and options.batch_size < 1):
            raise ValueError("--epochs and --batch-size must be at least 1")
        return options


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
