"""The hashed planner's augmented copies, planned on the client from the gathered train rows
of the classes under ``--augment-below`` (fewer than ``augment_below`` rows per class)."""

from __future__ import annotations

import numpy as np

from plankton_store.store._plan import COPY_OBJID, BuildOptions, copy_rounds
from plankton_store.store._plan_keys import (
    KEY_COPIES,
    KEY_COPY_ORDER,
    SCATTER_DTYPE,
    row_base,
    row_key,
)
from plankton_store.store.format import AUGMENTATIONS, Split


def plan_copies(
    train: dict[str, np.ndarray], copies: np.ndarray, options: BuildOptions
) -> np.ndarray:
    """The copies (:data:`SCATTER_DTYPE` records) of the train rows ``train`` (``label``,
    ``objid``, ``row``), ``copies[c]`` for class ``c``.

    As in :func:`make_plan`: each train image gets at most one copy per operation; round
    ``r`` uses operation ``ops[(r + k) % len(ops)]`` for the image ``k`` in the class's copy
    order, here the order of the rows' copy keys (ties by row) instead of a permutation.
    """
    ops = np.asarray([AUGMENTATIONS.index(op) for op in options.augmentations], dtype=np.int8)
    parts = []
    for c in np.flatnonzero(copies > 0):
        inside = train["label"] == c
        objid, row = train["objid"][inside], train["row"][inside]
        key = row_key(row_base(options.seed, objid), KEY_COPIES)
        order = np.lexsort((row, key))
        n_copies = int(copies[c])
        images, operations = copy_rounds(order, n_copies, ops)
        records = np.empty(n_copies, dtype=SCATTER_DTYPE)
        records["objid"] = COPY_OBJID
        records["source_objid"], records["row"] = objid[images], row[images]
        records["label"], records["split"] = c, Split.TRAIN
        records["augmentation"] = operations
        base = row_base(options.seed, records["source_objid"])
        records["key"] = row_key(base, KEY_COPY_ORDER + records["augmentation"].astype(np.int64))
        parts.append(records)
    return np.concatenate(parts) if parts else np.empty(0, dtype=SCATTER_DTYPE)
