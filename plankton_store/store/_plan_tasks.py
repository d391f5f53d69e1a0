"""The hashed planner's per-partition tasks: each reads one partition's compact rows from
the working folder, so no task holds more than one partition (or one store-order bucket).

``mapping`` (one per partition) turns the partition's own label codes into class codes
(>= 0) or reject reasons (``-1 - reason``); its last entry is for missing labels. ``ctx``
carries what the client has settled so far (cap and split thresholds, bucket counts).
"""

from __future__ import annotations

from typing import Any

import fsspec
import numpy as np
import pandas as pd

from plankton_store.store._plan_keys import (
    KEY_CAP,
    KEY_ORDER,
    KEY_SPLIT,
    PART_DTYPE,
    REJECT_DTYPE,
    SAMPLE_DTYPE,
    SCATTER_DTYPE,
    below,
    bins_of,
    row_base,
    row_key,
)
from plankton_store.store.format import NO_SOURCE, Split


def _fs(path: str, storage_options: dict[str, Any] | None) -> tuple[Any, str]:
    return fsspec.core.url_to_fs(path, **(storage_options or {}))


def _create(path: str, storage_options: dict[str, Any] | None) -> Any:
    """An fsspec file open for writing at ``path``, its folder made if needed."""
    fs, fs_path = _fs(path, storage_options)
    fs.makedirs(fs._parent(fs_path), exist_ok=True)
    return fs.open(fs_path, "wb")


def save_array(path: str, array: np.ndarray, storage_options: dict[str, Any] | None) -> None:
    """Write ``array`` as a ``.npy`` file at an fsspec ``path``."""
    with _create(path, storage_options) as f:
        np.save(f, array, allow_pickle=False)


def load_array(path: str, storage_options: dict[str, Any] | None) -> np.ndarray:
    """Read a ``.npy`` file from an fsspec ``path``."""
    fs, fs_path = _fs(path, storage_options)
    with fs.open(fs_path, "rb") as f:
        return np.load(f, allow_pickle=False)


def part_path(work: str, i: int) -> str:
    """The compact rows of partition ``i`` in the working folder."""
    return f"{work}/part-{i:05d}.npy"


def ingest_part(
    i: int, part: Any, work: str, storage_options: dict[str, Any] | None
) -> dict[str, Any]:
    """Pass 1: keep a partition's objid, row and label code; count its labels.

    ``part`` is a DataFrame (``objid``, ``label``, ``row``: the row's position in the whole
    table) or a callable that makes it, so that it exists only inside this task.
    """
    frame = part() if callable(part) else part
    codes, uniques = pd.factorize(frame["label"])
    rec = np.empty(len(frame), dtype=PART_DTYPE)
    rec["objid"] = frame["objid"].to_numpy(np.int64)
    rec["row"] = frame["row"].to_numpy(np.int64)
    rec["label"] = codes
    save_array(part_path(work, i), rec, storage_options)
    return {
        "labels": [str(u) for u in uniques],
        "counts": np.bincount(codes[codes >= 0], minlength=len(uniques)),
        "missing": int((codes < 0).sum()),
    }


def _usable(
    rec: np.ndarray, mapping: np.ndarray, ctx: dict[str, Any], capped: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions of the rows that have a class (and, with ``capped``, survive the cap), their
    class codes and key bases."""
    label = mapping[rec["label"]]
    where = np.flatnonzero(label >= 0)
    label = label[where].astype(np.int64)
    base = row_base(ctx["seed"], rec["objid"][where])
    if capped:
        kept = _kept(rec, where, label, base, ctx)
        where, label, base = where[kept], label[kept], base[kept]
    return where, label, base


def _kept(
    rec: np.ndarray, where: np.ndarray, label: np.ndarray, base: np.ndarray, ctx: dict[str, Any]
) -> np.ndarray:
    """Which usable rows survive the cap: the ``max_per_class`` smallest cap keys."""
    if ctx.get("cap_key") is None:
        return np.ones(len(where), dtype=bool)
    key = row_key(base, KEY_CAP)
    return below(key, rec["row"][where], ctx["cap_key"][label], ctx["cap_row"][label])


def histogram_task(
    i: int,
    mapping: np.ndarray,
    work: str,
    ctx: dict[str, Any],
    stage: int,
    bits: int,
    storage_options: dict[str, Any] | None,
) -> np.ndarray:
    """Per class, the rows of each top-``bits`` bin of key ``stage`` (cap or split)."""
    rec = load_array(part_path(work, i), storage_options)
    _, label, base = _usable(rec, mapping, ctx, capped=stage == KEY_SPLIT)
    flat = (label << bits) + bins_of(row_key(base, stage), bits)
    n = ctx["n_classes"] << bits
    return np.bincount(flat, minlength=n).reshape(ctx["n_classes"], 1 << bits)


def boundary_task(
    i: int,
    mapping: np.ndarray,
    work: str,
    ctx: dict[str, Any],
    stage: int,
    bits: int,
    wanted: np.ndarray,
    storage_options: dict[str, Any] | None,
) -> dict[str, np.ndarray]:
    """The rows that fall in a boundary bin (``wanted[class, bin]``), with their keys."""
    rec = load_array(part_path(work, i), storage_options)
    where, label, base = _usable(rec, mapping, ctx, capped=stage == KEY_SPLIT)
    key = row_key(base, stage)
    bins = bins_of(key, bits)
    inside = wanted[label, bins]
    return {
        "label": label[inside],
        "bin": bins[inside],
        "key": key[inside],
        "row": rec["row"][where][inside],
    }


def bucket_of(split: np.ndarray, key: np.ndarray, buckets: np.ndarray) -> np.ndarray:
    """Store-order bucket of each sample: its split's buckets cut the key range evenly."""
    first = np.concatenate([[0], np.cumsum(buckets)[:-1]]).astype(np.uint64)
    n = buckets.astype(np.uint64)[split]
    return (first[split] + (((key >> np.uint64(32)) * n) >> np.uint64(32))).astype(np.int64)


def scatter(
    records: np.ndarray,
    path: str,
    buckets: np.ndarray,
    storage_options: dict[str, Any] | None,
) -> np.ndarray:
    """Write ``records`` ordered by store-order bucket to ``path``; the count per bucket."""
    bucket = bucket_of(records["split"].astype(np.int64), records["key"], buckets)
    order = np.argsort(bucket, kind="stable")
    with _create(path, storage_options) as f:
        f.write(records[order].tobytes())
    return np.bincount(bucket, minlength=int(buckets.sum()))


def _splits(
    rec: np.ndarray, where: np.ndarray, label: np.ndarray, base: np.ndarray, ctx: dict[str, Any]
) -> np.ndarray:
    """Split of the usable, kept rows: the ``n_test`` smallest split keys of a class go to
    test, the next ``n_val`` to val, the rest to train."""
    key = row_key(base, KEY_SPLIT)
    row = rec["row"][where]
    split = np.full(len(where), Split.TRAIN, dtype=np.int8)
    top_key, top_row = ctx["split_key"], ctx["split_row"]
    split[below(key, row, top_key[label, 1], top_row[label, 1])] = Split.VAL
    split[below(key, row, top_key[label, 0], top_row[label, 0])] = Split.TEST
    return split


def assign_task(
    i: int,
    mapping: np.ndarray,
    work: str,
    out: str,
    ctx: dict[str, Any],
    storage_options: dict[str, Any] | None,
) -> dict[str, Any]:
    """Last pass over a partition: write its rejects and its samples (scattered by store
    order bucket); return the bucket counts, the reject counts per reason and the train
    rows of the classes to augment."""
    rec = load_array(part_path(work, i), storage_options)
    where, label, base = _usable(rec, mapping, ctx, capped=False)
    kept = _kept(rec, where, label, base, ctx)
    reason = mapping[rec["label"]].astype(np.int64)
    reason = np.where(reason < 0, -1 - reason, -1)
    reason[where[~kept]] = ctx["cap_reason"][label[~kept]]
    where, label, base = where[kept], label[kept], base[kept]
    rejected = np.flatnonzero(reason >= 0)
    rejects = np.empty(len(rejected), dtype=REJECT_DTYPE)
    rejects["objid"], rejects["row"] = rec["objid"][rejected], rec["row"][rejected]
    rejects["reason"] = reason[rejected]
    save_array(f"{out}/rejects/part-{i:05d}.npy", rejects, storage_options)
    split = _splits(rec, where, label, base, ctx)
    records = np.empty(len(where), dtype=SCATTER_DTYPE)
    records["objid"], records["row"] = rec["objid"][where], rec["row"][where]
    records["key"] = row_key(base, KEY_ORDER)
    records["source_objid"], records["label"] = NO_SOURCE, label
    records["split"], records["augmentation"] = split, 0
    counts = scatter(records, f"{work}/scatter-{i:05d}.bin", ctx["buckets"], storage_options)
    augment = (split == Split.TRAIN) & ctx["augment"][label]
    return {
        "buckets": counts,
        "rejects": np.bincount(rejects["reason"], minlength=ctx["n_reasons"]),
        "train": {
            "label": label[augment],
            "objid": records["objid"][augment],
            "row": records["row"][augment],
        },
    }


def bucket_task(
    j: int,
    sources: list[tuple[str, int, int]],
    out: str,
    storage_options: dict[str, Any] | None,
) -> int:
    """Gather store-order bucket ``j`` from the scattered files (``(path, first record,
    records)`` each), sort it by store-order key and write it as one piece."""
    pieces = []
    for path, first, count in sources:
        fs, fs_path = _fs(path, storage_options)
        with fs.open(fs_path, "rb") as f:
            f.seek(first * SCATTER_DTYPE.itemsize)
            pieces.append(np.frombuffer(f.read(count * SCATTER_DTYPE.itemsize), SCATTER_DTYPE))
    records = np.concatenate(pieces) if pieces else np.empty(0, SCATTER_DTYPE)
    records = records[_store_order(records)]
    samples = np.empty(len(records), dtype=SAMPLE_DTYPE)
    for name in SAMPLE_DTYPE.names:
        samples[name] = records[name]
    save_array(piece_path(out, j), samples, storage_options)
    return len(samples)


def _store_order(records: np.ndarray) -> np.ndarray:
    """The order of ``records`` by ``(key, row, augmentation)``: a sort of the keys alone
    (0.45 s for 2 million against 0.70 s), unless two keys are equal (an objid twice)."""
    order = np.argsort(records["key"])
    key = records["key"][order]
    if (key[1:] == key[:-1]).any():
        return np.lexsort((records["augmentation"], records["row"], records["key"]))
    return order


def piece_path(out: str, j: int) -> str:
    """Piece ``j`` of the store order in the plan's folder."""
    return f"{out}/samples/piece-{j:05d}.npy"
