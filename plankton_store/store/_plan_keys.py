"""Per-row keys of the hashed planner, and the exact selection of a rank by their top bits.

Every random choice of the hashed planner is a comparison of keys that are pure functions
of a row: ``key(seed, objid, k)`` (splitmix64 finalisers chained over the seed, the objid
and the key index ``k``), ties broken by the row's position in the export table. So a row's
fate never depends on which partition holds it, nor on the order the partitions are read.
"""

from __future__ import annotations

import numpy as np

_MASK = (1 << 64) - 1
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)

#: Key indices: cap (``--max-per-class``), split, augmentation order, store order.
KEY_CAP, KEY_SPLIT, KEY_COPIES, KEY_ORDER = 0, 1, 2, 3
#: A copy's store-order key index is this plus its operation code.
KEY_COPY_ORDER = 8
#: The threshold above every (key, row): a rank equal to the class size selects every row.
TOP_KEY = np.uint64(_MASK)
TOP_ROW = np.iinfo(np.int64).max

#: A compact input row, as the first pass stores it: label is a code into the partition's
#: own list of labels (-1: missing).
PART_DTYPE = np.dtype([("objid", "<i8"), ("row", "<i8"), ("label", "<i4")])
#: A planned sample on its way to the store order (``key``: its store-order key).
SCATTER_DTYPE = np.dtype(
    [
        ("objid", "<i8"),
        ("row", "<i8"),
        ("key", "<u8"),
        ("source_objid", "<i8"),
        ("label", "<i2"),
        ("split", "i1"),
        ("augmentation", "i1"),
    ]
)
#: A planned sample as written: one record array (``.npy``) per piece of the store order.
SAMPLE_DTYPE = np.dtype(
    [
        ("objid", "<i8"),
        ("label", "<i2"),
        ("split", "i1"),
        ("source_objid", "<i8"),
        ("augmentation", "i1"),
        ("row", "<i8"),
    ]
)
#: A rejected input row as written: ``reason`` is a code into the plan's reasons.
REJECT_DTYPE = np.dtype([("objid", "<i8"), ("row", "<i8"), ("reason", "<i2")])


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, in place on a uint64 array (wrapping arithmetic)."""
    z += _GOLDEN
    z ^= z >> np.uint64(30)
    z *= _M1
    z ^= z >> np.uint64(27)
    z *= _M2
    z ^= z >> np.uint64(31)
    return z


def row_base(seed: int, objid: np.ndarray) -> np.ndarray:
    """The part of every key that depends on the seed and the objid only."""
    seeded = _mix(np.array([seed & _MASK], dtype=np.uint64))[0]
    return _mix(np.asarray(objid, dtype=np.int64).view(np.uint64) ^ seeded)


def row_key(base: np.ndarray, k: int | np.ndarray) -> np.ndarray:
    """Key ``k`` of rows whose :func:`row_base` is ``base`` (``k`` may vary per row)."""
    return _mix(base ^ np.asarray(k, dtype=np.uint64))


def below(key: np.ndarray, row: np.ndarray, top_key: np.ndarray, top_row: np.ndarray) -> np.ndarray:
    """Whether ``(key, row)`` sorts before the threshold ``(top_key, top_row)``."""
    return (key < top_key) | ((key == top_key) & (row < top_row))


def bins_of(key: np.ndarray, bits: int) -> np.ndarray:
    """The histogram bin of each key: its top ``bits`` bits."""
    return (key >> np.uint64(64 - bits)).astype(np.int64)


def boundary_bins(hist: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """Per class and rank, the bin holding the row of that rank (-1: rank = class size).

    ``hist`` is (classes, bins) row counts, ``ranks`` (classes, m) ranks in ``[0, size]``.
    """
    cum = np.cumsum(hist, axis=1)
    found = np.full(ranks.shape, -1, dtype=np.int64)
    for c in range(hist.shape[0]):
        inside = ranks[c] < cum[c, -1]
        found[c, inside] = np.searchsorted(cum[c], ranks[c, inside], side="right")
    return found


def thresholds(
    hist: np.ndarray, ranks: np.ndarray, bins: np.ndarray, gathered: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """The exact ``(key, row)`` thresholds below which ``ranks`` rows of each class lie.

    ``bins`` comes from :func:`boundary_bins`; ``gathered`` holds the ``label``, ``bin``,
    ``key`` and ``row`` of every row in a boundary bin (the second pass).
    """
    top_key = np.full(ranks.shape, TOP_KEY, dtype=np.uint64)
    top_row = np.full(ranks.shape, TOP_ROW, dtype=np.int64)
    before = np.cumsum(hist, axis=1) - hist
    for c, j in zip(*np.nonzero(bins >= 0), strict=True):
        b = bins[c, j]
        inside = (gathered["label"] == c) & (gathered["bin"] == b)
        key, row = gathered["key"][inside], gathered["row"][inside]
        at = np.lexsort((row, key))[ranks[c, j] - before[c, b]]
        top_key[c, j], top_row[c, j] = key[at], row[at]
    return top_key, top_row
