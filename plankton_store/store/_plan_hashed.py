"""The hashed planner: the same kind of plan as :func:`make_plan`, made partition by partition.

Every random choice compares per-row keys (:mod:`plankton_store.store._plan_keys`), so the
plan depends on the seed and the rows only, never on how the table is partitioned. The
passes, each a few Dask tasks per partition (no per-row data goes through the client except
the train rows of the classes to augment, under ``augment_below`` per class):

1. read each partition once into a compact working file; count the labels;
2. cap (``--max-per-class``): a class keeps its rows of smallest cap key, the threshold
   found exactly from a histogram of the keys' top bits summed over partitions and a second
   pass gathering the rows of the boundary bin only;
3. split: within a class, the ``n_test`` smallest split keys go to test, the next ``n_val``
   to val, the rest to train (sizes from ``_split_counts``, as today), same selection;
4. assign: rejects written per partition; samples scattered by store-order bucket (the top
   bits of their store-order key: uniform, so the buckets are balanced without sampling);
   the augmented copies are planned on the client from the gathered train rows;
5. each bucket is sorted by its store-order key and written as one piece; positions follow
   from the bucket sizes.
"""

from __future__ import annotations

import functools
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from plankton_store.store._plan import (
    SMALL_CLASS,
    BuildOptions,
    BuildPlan,
    _notes,
    _split_counts,
    make_plan,
)
from plankton_store.store._plan_copies import plan_copies
from plankton_store.store._plan_keys import (
    KEY_CAP,
    KEY_SPLIT,
    boundary_bins,
    thresholds,
)
from plankton_store.store._plan_tasks import (
    _fs,
    assign_task,
    boundary_task,
    bucket_task,
    histogram_task,
    ingest_part,
    load_array,
    piece_path,
    scatter,
)
from plankton_store.store.format import REJECTS_COLUMNS

#: Rows per partition when a table in memory is planned with the hashed planner.
PARTITION_ROWS = 1_000_000
#: Samples per store-order bucket (one sorting task, one written piece).
BUCKET_ROWS = 2_000_000
#: Top key bits of the selection histograms: 4,096 bins per class.
HISTOGRAM_BITS = 12
SPLIT_NAMES = ("train", "val", "test")
TRAIN_FIELDS = ("label", "objid", "row")


@dataclass
class PartitionedPlan:
    """What :func:`plan_partitioned` wrote, and its totals.

    ``pieces`` list the store order: ``{"path", "start", "stop"}`` per ``.npy`` record array
    of samples (``objid``, ``label`` code, ``split``, ``source_objid``, ``augmentation``,
    ``row``); ``reject_pieces`` the ``.npy`` record arrays of rejects (``objid``, ``row``,
    ``reason``: a code into ``reasons``).
    """

    class_names: list[str]
    counts: dict[str, dict[str, int]]
    n_samples: int
    rows_read: int
    reasons: list[str]
    reject_counts: dict[str, int]
    notes: list[str] = field(default_factory=list)
    pieces: list[dict[str, Any]] = field(default_factory=list)
    reject_pieces: list[str] = field(default_factory=list)

    def samples(self, storage_options: dict[str, Any] | None = None) -> pd.DataFrame:
        """Every planned sample in store order (for plans that fit in memory)."""
        arrays = [load_array(p["path"], storage_options) for p in self.pieces]
        return pd.DataFrame(np.concatenate(arrays)) if arrays else pd.DataFrame()

    def rejects(self, storage_options: dict[str, Any] | None = None) -> pd.DataFrame:
        """Every rejected row: ``objid``, ``row``, ``reason`` (text); ordered by reason, as
        :data:`reasons` lists them, then by row."""
        arrays = [load_array(p, storage_options) for p in self.reject_pieces]
        found = np.concatenate(arrays)
        found = pd.DataFrame(found[np.lexsort((found["row"], found["reason"]))])
        reason = np.asarray(self.reasons, dtype=object)[found["reason"].to_numpy()]
        return found.assign(reason=reason)


class _Runner:
    """Runs a task per item on a Dask client, or in this process without one."""

    def __init__(self, client: Any | None) -> None:
        self.client = client

    def map(self, fn: Callable[..., Any], *items: Any, **kwargs: Any) -> list:
        """``fn(*item, **kwargs)`` for every item (zipped over ``items``), gathered."""
        if self.client is None:
            return [fn(*args, **kwargs) for args in zip(*items, strict=True)]
        # The common arguments ride with the function: passed as map's keyword arguments,
        # large ones became tasks named after the argument, which the next pass reused.
        task = functools.partial(fn, **kwargs)
        return self.client.gather(self.client.map(task, *items, pure=False))

    def map_sum(self, fn: Callable[..., Any], *items: Any, **kwargs: Any) -> np.ndarray:
        """The sum of the tasks' arrays, added up on a worker."""
        if self.client is None:
            return sum(fn(*args, **kwargs) for args in zip(*items, strict=True))
        futures = self.client.map(functools.partial(fn, **kwargs), *items, pure=False)
        return self.client.submit(_add_up, futures, pure=False).result()


class _Clock:
    """Reports the seconds each pass took to ``echo`` (when given)."""

    def __init__(self, echo: Callable[[str], None] | None) -> None:
        self.echo, self.started = echo, time.perf_counter()

    def __call__(self, what: str) -> None:
        now = time.perf_counter()
        if self.echo is not None:
            self.echo(f"{what}: {now - self.started:.1f} s")
        self.started = now


def _add_up(arrays: list[np.ndarray]) -> np.ndarray:
    return np.sum(arrays, axis=0)


def _classes(firsts: list[dict], options: BuildOptions) -> dict[str, Any]:
    """Class list, per-partition label mappings and reject reasons from the label counts."""
    totals: dict[str, int] = {}
    for first in firsts:
        for label, n in zip(first["labels"], first["counts"], strict=True):
            totals[label] = totals.get(label, 0) + int(n)
    blank = {label for label in totals if label.strip() == ""}
    dropped = sorted(set(totals) & set(options.drop_classes) - blank)
    names = sorted(set(totals) - blank - set(dropped))
    code = {name: c for c, name in enumerate(names)}
    code.update({label: -1 for label in blank})
    code.update({label: -2 - d for d, label in enumerate(dropped)})
    reasons = [f"no {options.label_column} label"]
    reasons += [f"class {name!r} dropped (--drop-class)" for name in dropped]
    mappings = [
        np.array([code[label] for label in first["labels"]] + [-1], dtype=np.int32)
        for first in firsts
    ]
    sizes = np.array([totals[name] for name in names], dtype=np.int64)
    return {"names": names, "sizes": sizes, "reasons": reasons, "mappings": mappings}


def _select(
    runner: _Runner,
    items: tuple[list, list],
    common: dict[str, Any],
    stage: int,
    ranks: np.ndarray,
    bits: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact ``(key, row)`` thresholds of key ``stage`` at ``ranks`` (classes, m): a
    histogram pass, then a pass gathering the rows of the boundary bins."""
    hist = runner.map_sum(histogram_task, *items, stage=stage, bits=bits, **common)
    bins = boundary_bins(hist, ranks)
    wanted = np.zeros(hist.shape, dtype=bool)
    for c, j in zip(*np.nonzero(bins >= 0), strict=True):
        wanted[c, bins[c, j]] = True
    found = runner.map(boundary_task, *items, stage=stage, bits=bits, wanted=wanted, **common)
    gathered = {k: np.concatenate([f[k] for f in found]) for k in ("label", "bin", "key", "row")}
    return thresholds(hist, ranks, bins, gathered)


def _sizes(kept: np.ndarray, options: BuildOptions) -> dict[str, np.ndarray]:
    """Per class: split sizes and the number of augmented copies (known before assigning)."""
    split = np.array(
        [_split_counts(int(n), options.test_fraction, options.val_fraction) for n in kept],
        dtype=np.int64,
    ).reshape(len(kept), 3)
    n_train = split[:, 0]
    augment = (n_train < options.augment_below) & bool(options.augmentations)
    wanted = np.where(augment, options.augment_below - n_train, 0)
    copies = np.minimum(wanted, n_train * len(options.augmentations))
    return {"split": split, "augment": augment, "copies": copies, "wanted": wanted}


def plan_partitioned(
    partitions: list[Any],
    options: BuildOptions,
    out: str,
    client: Any | None = None,
    rows_read: int | None = None,
    storage_options: dict[str, Any] | None = None,
    bucket_rows: int = BUCKET_ROWS,
    bits: int = HISTOGRAM_BITS,
    echo: Callable[[str], None] | None = None,
) -> PartitionedPlan:
    """Plan a table given as partitions with the hashed planner; write the plan to ``out``.

    Parameters
    ----------
    partitions
        One item per partition: a DataFrame with ``objid``, ``label`` and ``row`` (the row's
        position in the whole table), a Dask future of one, or a callable that makes one
        (then it exists only in the task that reads it).
    options
        The build options (``seed``, cap, fractions, augmentation).
    out
        Folder (path or fsspec URL, reachable from the workers) to write the samples and
        rejects to, with an index ``plan.json``; its ``_work`` subfolder holds working
        files while planning and is removed at the end.
    client
        A ``distributed.Client`` to run the passes on its workers; None runs them here.
    rows_read
        Input rows read; defaults to the rows of the partitions.
    storage_options
        fsspec options of a URL ``out``.
    bucket_rows, bits
        Samples per store-order piece; top key bits of the selection histograms.
    echo
        Called with the seconds of each pass (``"split: 3.2 s"``); None: silent.

    Returns
    -------
    PartitionedPlan
        Class list, counts per class and split, reject counts and the pieces written. The
        same for a seed and a table whatever the partitioning.
    """
    if not partitions:
        raise ValueError("plan_partitioned needs at least one partition (it may be empty)")
    runner, clock = _Runner(client), _Clock(echo)
    work = f"{out}/_work"
    common = {"work": work, "storage_options": storage_options}
    firsts = runner.map(ingest_part, range(len(partitions)), partitions, **common)
    clock("read")
    found = _classes(firsts, options)
    items = (list(range(len(partitions))), found["mappings"])
    ctx: dict[str, Any] = {"seed": options.seed, "n_classes": len(found["names"])}
    kept, cap_reason = _cap(runner, items, common, ctx, found, options, bits)
    clock("cap")
    sized = _sizes(kept, options)
    n_test, n_val = sized["split"][:, 2], sized["split"][:, 1]
    ranks = np.stack([n_test, n_test + n_val], axis=1)
    split_key, split_row = _select(runner, items, {**common, "ctx": ctx}, KEY_SPLIT, ranks, bits)
    clock("split")
    per_split = sized["split"].sum(axis=0) + np.array([sized["copies"].sum(), 0, 0])
    buckets = np.maximum(1, -(-per_split // bucket_rows)).astype(np.int64)
    ctx.update(split_key=split_key, split_row=split_row, cap_reason=cap_reason)
    ctx.update(augment=sized["augment"], buckets=buckets, n_reasons=len(found["reasons"]))
    assigned = runner.map(assign_task, *items, out=out, ctx=ctx, **common)
    train = {k: np.concatenate([a["train"][k] for a in assigned]) for k in TRAIN_FIELDS}
    copies = plan_copies(train, sized["copies"], options)
    copy_counts = scatter(copies, f"{work}/scatter-copies.bin", buckets, storage_options)
    clock("assign")
    pieces = _sort_buckets(runner, assigned, copy_counts, work, out, storage_options)
    clock("store order")
    if rows_read is None:
        rows_read = sum(int(f["counts"].sum()) + f["missing"] for f in firsts)
    plan = _summary(found, kept, sized, options, rows_read, assigned)
    plan.pieces = pieces
    plan.reject_pieces = [f"{out}/rejects/part-{i:05d}.npy" for i in range(len(partitions))]
    _finish(plan, out, work, storage_options)
    return plan


def _cap(
    runner: _Runner,
    items: tuple[list, list],
    common: dict[str, Any],
    ctx: dict[str, Any],
    found: dict[str, Any],
    options: BuildOptions,
    bits: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Rows kept per class under ``--max-per-class``, and each capped class's reject reason
    code (-1: not capped); the cap thresholds go into ``ctx``, the reasons into ``found``."""
    sizes, names = found["sizes"], found["names"]
    cap = options.max_per_class
    kept = sizes if cap is None else np.minimum(sizes, cap)
    cap_reason = np.full(len(names), -1, dtype=np.int64)
    if (kept < sizes).any():
        top_key, top_row = _select(
            runner, items, {**common, "ctx": ctx}, KEY_CAP, kept[:, None], bits
        )
        ctx.update(cap_key=top_key[:, 0], cap_row=top_row[:, 0])
        for c in np.flatnonzero(kept < sizes):
            cap_reason[c] = len(found["reasons"])
            found["reasons"].append(f"class {names[c]!r} capped at {cap} (--max-per-class)")
    return kept, cap_reason


def _summary(
    found: dict[str, Any],
    kept: np.ndarray,
    sized: dict[str, np.ndarray],
    options: BuildOptions,
    rows_read: int,
    assigned: list[dict[str, Any]],
) -> PartitionedPlan:
    """The plan's totals and notes (the same notes as :func:`make_plan`)."""
    names, split, copies = found["names"], sized["split"], sized["copies"]
    counts = {}
    for c, name in enumerate(names):
        counts[name] = {s: int(n) for s, n in zip(SPLIT_NAMES, split[c], strict=True)}
        counts[name]["train"] += int(copies[c])
    small = [
        f"{names[c]} ({'/'.join(str(n) for n in split[c])})"
        for c in np.flatnonzero(kept < SMALL_CLASS)
    ]
    short = [
        f"{names[c]} ({split[c, 0] + copies[c]})"
        for c in np.flatnonzero((copies < sized["wanted"]) & (copies > 0))
    ]
    rejected = np.sum([a["rejects"] for a in assigned], axis=0)
    return PartitionedPlan(
        class_names=names,
        counts=counts,
        n_samples=int(split.sum() + copies.sum()),
        rows_read=rows_read,
        reasons=found["reasons"],
        reject_counts={r: int(n) for r, n in zip(found["reasons"], rejected, strict=True) if n},
        notes=_notes(small, short, options),
    )


def _sort_buckets(
    runner: _Runner,
    assigned: list[dict[str, Any]],
    copy_counts: np.ndarray,
    work: str,
    out: str,
    storage_options: dict[str, Any] | None,
) -> list[dict[str, Any]]:
    """Sort every store-order bucket from the scattered files; the pieces, in store order."""
    counts = np.stack([a["buckets"] for a in assigned] + [copy_counts])
    paths = [f"{work}/scatter-{i:05d}.bin" for i in range(len(assigned))]
    paths.append(f"{work}/scatter-copies.bin")
    first = np.cumsum(counts, axis=1) - counts
    sources = [
        [(paths[f], int(first[f, j]), int(counts[f, j])) for f in np.flatnonzero(counts[:, j])]
        for j in range(counts.shape[1])
    ]
    sizes = runner.map(
        bucket_task, range(len(sources)), sources, out=out, storage_options=storage_options
    )
    stops = np.cumsum(sizes)
    return [
        {"path": piece_path(out, j), "start": int(stop - size), "stop": int(stop)}
        for j, (size, stop) in enumerate(zip(sizes, stops, strict=True))
    ]


def _finish(
    plan: PartitionedPlan, out: str, work: str, storage_options: dict[str, Any] | None
) -> None:
    """Write the plan's index next to its pieces and remove the working files."""
    fs, fs_path = _fs(out, storage_options)
    with fs.open(f"{fs_path}/plan.json", "w") as f:
        json.dump(asdict(plan), f, indent=1)
    fs.rm(_fs(work, storage_options)[1], recursive=True)


def plan_table(
    table: pd.DataFrame,
    options: BuildOptions,
    reader_rejects: pd.DataFrame | None = None,
    rows_read: int | None = None,
    client: Any | None = None,
    partition_rows: int = PARTITION_ROWS,
    **kwargs: Any,
) -> BuildPlan:
    """:func:`make_plan` with the hashed planner, for a table in memory.

    Parameters
    ----------
    table, options, reader_rejects, rows_read
        As for :func:`make_plan`.
    client
        A ``distributed.Client`` whose workers see this machine's temporary folder, or None
        (the norm) to run the passes in this process.
    partition_rows
        Rows per partition: ``table`` is cut into these, planned by
        :func:`plan_partitioned` into a temporary folder, then read back.
    **kwargs
        ``bucket_rows`` and ``bits`` of :func:`plan_partitioned`.

    Returns
    -------
    BuildPlan
        The same plan whatever ``partition_rows``; rejects ordered by reason, then row,
        after ``reader_rejects``.
    """
    rows = table[["objid", "label"]].assign(row=np.arange(len(table)))
    starts = range(0, max(len(rows), 1), partition_rows)  # an empty table: one partition
    parts = [rows.iloc[i : i + partition_rows] for i in starts]
    if rows_read is None:
        rows_read = len(table) + (len(reader_rejects) if reader_rejects is not None else 0)
    with tempfile.TemporaryDirectory(prefix="plankton-plan-") as out:
        planned = plan_partitioned(parts, options, out, client, rows_read, **kwargs)
        found = planned.samples()
        rejected = planned.rejects()
    images = table["image"].to_numpy()
    samples = pd.DataFrame({k: found[k] for k in ("objid", "label", "split")})
    samples["source_objid"], samples["augmentation"] = found["source_objid"], found["augmentation"]
    samples["image"], samples["row"] = images[found["row"].to_numpy()], found["row"]
    rejects = pd.DataFrame(
        {
            "objid": pd.array(rejected["objid"].to_numpy(), dtype="Int64"),
            "image": pd.array(images[rejected["row"].to_numpy()], dtype="string"),
            "reason": rejected["reason"].to_numpy(),
        },
        columns=list(REJECTS_COLUMNS),
    )
    if reader_rejects is not None and len(reader_rejects):
        rejects = pd.concat([reader_rejects, rejects], ignore_index=True)
    notes = planned.notes
    return BuildPlan(samples, planned.class_names, rejects.reset_index(drop=True), rows_read, notes)


def plan_with_planner(
    table: pd.DataFrame,
    options: BuildOptions,
    reader_rejects: pd.DataFrame | None = None,
    rows_read: int | None = None,
) -> BuildPlan:
    """The plan of ``table`` by the planner ``options.planner`` names."""
    if options.planner == "hashed":
        return plan_table(table, options, reader_rejects, rows_read)
    return make_plan(table, options, reader_rejects, rows_read)
