"""The store version a model was trained on, and what of a later version it may score.

A model records the id of the store version it was trained on (``store_version`` in
``model.json``). After an ingest, the store has more samples and maybe more classes; the
samples that existed at that version keep their indices and label codes, so scoring them
alone (the default of ``evaluate``) measures the model on the data it was made for.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from plankton_store.ml._modeldir import ModelInfo
from plankton_store.store import PlanktonStore, find_version


@dataclass(frozen=True)
class VersionScope:
    """The samples and classes of a store that an evaluation uses, and why."""

    n_samples: int  # samples [0, n_samples) are scored
    class_names: list[str]
    note: str | None = None


def version_scope(store: PlanktonStore, info: ModelInfo, all_samples: bool = False) -> VersionScope:
    """What of ``store`` to score with the model ``info``.

    The model's version when the store has it and ``all_samples`` is False; otherwise the
    whole store, with a note when it is later than the model's version.
    """
    whole = VersionScope(store.n_samples, store.class_names)
    pinned = info.store_version
    if not pinned or pinned == store.version or info.store_fingerprint != store.fingerprint:
        return whole
    try:
        entry = find_version(store.versions, pinned)
    except KeyError:
        return VersionScope(
            whole.n_samples,
            whole.class_names,
            f"the model was trained on store version {pinned}, which this store's log does "
            f"not hold (it is at {store.version}): all its samples are scored",
        )
    if all_samples:
        return VersionScope(
            whole.n_samples,
            whole.class_names,
            f"the model was trained on store version {pinned}; the store is at "
            f"{store.version} and all its samples are scored (--all-samples): samples added "
            "since are new to the model",
        )
    n, classes = int(entry["n_samples"]), store.class_names[: int(entry["n_classes"])]
    return VersionScope(
        n,
        classes,
        f"the model was trained on store version {pinned}; the store is at {store.version}: "
        f"only the {n} samples of {pinned} are scored (pass --all-samples to score the "
        "samples added since too)",
    )


def in_scope(indices: np.ndarray, scope: VersionScope) -> np.ndarray:
    """``indices`` below the scope's sample count."""
    return indices[indices < scope.n_samples]
