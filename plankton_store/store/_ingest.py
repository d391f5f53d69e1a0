"""Ingest: add a new export to an existing store, all or nothing for readers.

The client reads the export, drops the rows whose objid the store already holds (listed
with their reason), plans the rest with the store's own options and seed (the split rule of
:func:`plankton_store.store.make_plan`), and places the new samples from the next shard
boundary on: each Dask task then writes whole shards that no old sample shares, through
arrays grown in memory only (:func:`plankton_store.store._versions.grown`). The rows up to
that boundary (the gap) are never written and read as rejected. A pending marker in the
root attributes records the ingest while it runs; the commit resizes the arrays and
rewrites the root ``zarr.json`` once (:func:`plankton_store.store._versions.commit_root`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import fsspec
import numpy as np
import pandas as pd
import zarr

from plankton_store.io import (
    ECOTAXA_LAYOUT,
    Export,
    ExportError,
    Taxonomy,
    TaxonomyError,
    class_lineages,
)
from plankton_store.store import format as fmt
from plankton_store.store._block import (
    BlockResult,
    BlockTask,
    block_tasks,
    run_block_tasks,
    split_written,
)
from plankton_store.store._open import PlanktonStore, open_store
from plankton_store.store._plan import BuildOptions, BuildPlan, count_by_class_and_split
from plankton_store.store._plan_hashed import plan_with_planner
from plankton_store.store._source import read_for_store
from plankton_store.store._versions import (
    commit_root,
    grown,
    resize_samples,
    version_id,
    written_mask,
)
from plankton_store.store.format import Attr


class IngestStateError(RuntimeError):
    """An ingest is pending and was not resumed, or there is none to resume."""


@dataclass
class IngestPlan:
    """Where and what an ingest writes: the new samples and the rows it leaves out."""

    version: str
    plan: BuildPlan
    class_names: list[str]  # the store's classes, then the new ones
    duplicates: pd.DataFrame  # objid, image, reason
    start: int  # first new sample (a shard boundary)
    stop: int  # the store's samples once committed
    tasks: list[BlockTask] = field(default_factory=list)


@dataclass
class IngestSummary:
    """What an ingest did; printed at the end and logged as the new version."""

    store: str
    version: str
    source: str
    rows_read: int
    rows_stored: int
    augmented_copies: int
    duplicates: int
    rejects: pd.DataFrame
    new_classes: list[str]
    start: int
    stop: int
    counts: dict[str, dict[str, int]]
    seconds: float
    notes: list[str] = field(default_factory=list)


def ingest_store(
    store: str,
    source: str,
    client: Any,
    resume: bool = False,
    progress: bool = True,
    echo: Any = print,
    storage_options: dict[str, Any] | None = None,
    source_storage_options: dict[str, Any] | None = None,
    taxonomy: Taxonomy | None = None,
    statuses: tuple[str, ...] | None = None,
) -> IngestSummary:
    """Add the export ``source`` to the complete store ``store`` as a new version.

    Parameters
    ----------
    store
        A complete plankton store (path or fsspec URL).
    source
        Export folder (FlowCam/EcoTaxa layout or image folder), read with the store's
        label column.
    client
        A ``distributed.Client``.
    resume
        Finish the ingest that started but never committed; the same ``source`` is needed.
    storage_options, source_storage_options
        fsspec options of a URL ``store`` / ``source``.
    taxonomy
        The regrouping the caller asks for; the export is always regrouped as the store was
        built (its :attr:`~plankton_store.store.format.Attr.TAXONOMY`), and a different one
        is refused. None: the store's.
    statuses
        EcoTaxa TSV export: the statuses whose labels are used; None: the store's own
        (``BuildOptions.statuses``).

    Returns
    -------
    IngestSummary

    Raises
    ------
    TaxonomyError
        ``taxonomy`` groups the labels otherwise than the store.
    IngestStateError
        An ingest is pending (and ``resume`` is False), or ``resume`` with none pending.
    ExportError
        A structural problem with the export, or (resume) another export than the pending one.
    """
    started = time.perf_counter()
    st = open_store(store, storage_options=storage_options)
    pending = _check_pending(st, resume)
    options = BuildOptions.from_attrs(st.attrs[Attr.BUILD_OPTIONS])
    grouping = store_taxonomy(st, taxonomy)
    export = read_for_store(
        source,
        st.label_column,
        options.statuses if statuses is None else statuses,
        grouping,
        client,
        source_storage_options,
        echo,
    )
    ingest = plan_ingest(st, export, options)
    if pending is not None:
        _check_resume(pending, export, ingest)
        done, todo = _resume_state(st, ingest, export)
    elif ingest.tasks:
        _begin(st, export, ingest, options)
        done, todo = [], ingest.tasks
    else:
        done, todo = [], []
    echo(
        f"Version {ingest.version}: {len(ingest.plan.samples)} new samples at "
        f"{ingest.start}-{ingest.stop - 1} ({len(ingest.duplicates)} duplicates skipped); "
        f"{len(todo)} of {len(ingest.tasks)} blocks to write"
    )
    results = done + run_block_tasks(
        client, todo, export.fetcher, progress, name="ingest-block", desc="ingest"
    )
    summary = _summarise(st, source, ingest, export, results, started)
    if ingest.tasks or pending is not None:
        _commit(st, export, ingest, summary, options, grouping)
    else:
        summary.version = st.version
        summary.notes.append(f"nothing new: the store stays at version {st.version}")
    summary.seconds = time.perf_counter() - started
    return summary


def store_taxonomy(st: PlanktonStore, asked: Taxonomy | None = None) -> Taxonomy:
    """The regrouping ``st`` was built with; ``asked`` must be the same (or None).

    Raises
    ------
    TaxonomyError
        ``asked`` gives other labels than the store's regrouping.
    """
    recorded = Taxonomy.from_attrs(st.attrs.get(Attr.TAXONOMY))
    if asked is not None and not asked.same_grouping(recorded):
        raise TaxonomyError(
            f"{st.path} was built with {recorded.describe()}; this ingest asks for "
            f"{asked.describe()}. An ingest uses the store's regrouping: run it without "
            "--taxonomy-map / --lineage-level (or with the store's), or build a new store"
        )
    return recorded


def _check_pending(st: PlanktonStore, resume: bool) -> dict[str, Any] | None:
    pending = st.pending_ingest
    if pending is not None and not resume:
        raise IngestStateError(
            f"an ingest of {pending['source']} into {st.path} started on {pending['created']} "
            "and never finished (readers still see the store without it): run the same "
            "command with --resume to finish it"
        )
    if pending is None and resume:
        raise IngestStateError(f"nothing to resume: {st.path} has no unfinished ingest")
    return pending


def plan_ingest(st: PlanktonStore, export: Export, options: BuildOptions) -> IngestPlan:
    """The new samples of ``export`` for ``st``: duplicates out, planned with the store's
    options and seed, labels coded in the store's class list (new classes appended), placed
    from the first shard boundary after the committed samples."""
    table, duplicates = _drop_duplicates(st, export)
    if len(table):
        if export.layout == ECOTAXA_LAYOUT:  # rejects name the column the labels came from
            options = replace(options, label_column=export.label_column)
        plan = plan_with_planner(table, options, export.rejects, export.rows_read)
    else:
        columns = ["objid", "label", "split", "source_objid", "augmentation", "image", "row"]
        plan = BuildPlan(pd.DataFrame(columns=columns), [], export.rejects, export.rows_read)
    class_names = st.class_names + sorted(set(plan.class_names) - set(st.class_names))
    codes = np.array([class_names.index(c) for c in plan.class_names], dtype=np.int16)
    samples = plan.samples
    if len(samples):
        samples = samples.assign(label=codes[samples["label"].to_numpy(np.int64)])
        # make_plan numbered the rows of ``table``; the export's own positions are kept.
        samples = samples.assign(row=table["row"].to_numpy()[samples["row"].to_numpy()])
    plan.samples = samples
    block = st.block_size
    start = -(-st.n_samples // block) * block
    version = version_id(len(st.versions))
    ingest = IngestPlan(version, plan, class_names, duplicates, start, start + len(samples))
    if len(samples):
        ingest.tasks = _tasks(st, export, ingest, options)
    return ingest


def _drop_duplicates(st: PlanktonStore, export: Export) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The export's rows whose objid the store does not hold yet, and the others (with their
    reason: the version that holds them)."""
    n = st.n_samples
    objid = st.array(fmt.OBJID)[:n]
    is_original = (st.array(fmt.AUGMENTATION)[:n] == 0) & written_mask(st.attrs, n)
    held = pd.Series(st.provenance[is_original], index=objid[is_original])
    held = held[~held.index.duplicated(keep="first")]
    table = export.table.assign(row=np.arange(len(export.table)))
    dup = table["objid"].isin(held.index).to_numpy()
    duplicates = pd.DataFrame(
        {
            "objid": table.loc[dup, "objid"].astype("Int64"),
            "image": table.loc[dup, "image"].astype("string"),
            "reason": "duplicate: objid already in the store (version "
            + held.reindex(table.loc[dup, "objid"]).astype(str).to_numpy()
            + ")",
        },
        columns=list(fmt.REJECTS_COLUMNS),
    ).reset_index(drop=True)
    return table[~dup].reset_index(drop=True), duplicates


def _tasks(
    st: PlanktonStore, export: Export, ingest: IngestPlan, options: BuildOptions
) -> list[BlockTask]:
    """Shard-aligned block tasks of the new samples, numbered after the store's blocks."""
    samples = ingest.plan.samples
    row_objids = export.table["objid"].to_numpy(np.int64)[samples["row"].to_numpy()]
    features = {}
    for table in st.feature_tables:
        arr, columns = st.features(table)
        frame = export.features.get(table)
        if frame is None:
            features[table] = np.full((len(samples), len(columns)), np.nan, np.float32)
            continue
        frame = frame[~frame.index.duplicated(keep="first")]
        frame.columns = [str(c) for c in frame.columns]
        features[table] = frame.reindex(index=row_objids, columns=columns).to_numpy(np.float32)
    features.pop(fmt.COMPUTED_FEATURES, None)  # computed from the images by each task
    tasks = block_tasks(
        st.path,
        samples,
        st.block_size,
        features,
        options.size,
        options.resize_mode,  # type: ignore[arg-type]
        st.storage_options,
        compute_features=fmt.COMPUTED_FEATURES in st.feature_tables,
    )
    first = ingest.start // st.block_size
    code = len(st.attrs.get(Attr.PROVENANCE_CODES) or {st.version: 0})
    return [
        replace(
            task,
            block_index=task.block_index + first,
            start=task.start + ingest.start,
            grown_to=ingest.stop,
            columns={**task.columns, fmt.PROVENANCE: np.full(len(task), code, np.int16)},
        )
        for task in tasks
    ]


def _begin(st: PlanktonStore, export: Export, ingest: IngestPlan, options: BuildOptions) -> None:
    """Before any block is written: the provenance array (stores built before it), cleared
    checksums of the new blocks, then the pending marker."""
    group = zarr.open_group(
        st.path, mode="r+", storage_options=st.storage_options, use_consolidated=False
    )
    if fmt.PROVENANCE not in group.array_keys():
        group.create_array(
            fmt.PROVENANCE,
            shape=(st.n_samples,),
            chunks=(st.block_size,),
            dtype=fmt.PROVENANCE_DTYPE,
            fill_value=0,
            dimension_names=(fmt.SAMPLE_DIM,),
        )
    if ingest.tasks:
        n_blocks = -(-ingest.stop // st.block_size)
        checksums = zarr.Array(grown(group[fmt.BLOCK_CHECKSUM]._async_array, n_blocks))
        first = ingest.start // st.block_size
        checksums[first:n_blocks] = 0  # a block written by an abandoned ingest is redone
    attrs = dict(st.attrs)
    attrs[Attr.PENDING] = _pending_entry(export, ingest, options)
    commit_root(st.path, attrs, st.storage_options)


def _pending_entry(export: Export, ingest: IngestPlan, options: BuildOptions) -> dict[str, Any]:
    return {
        "id": ingest.version,
        "source": export.root,
        "input_fingerprint": export.fingerprint,
        "start": ingest.start,
        "stop": ingest.stop,
        "created": fmt.now(),
        "options": options.to_attrs(),
    }


def _check_resume(pending: dict[str, Any], export: Export, ingest: IngestPlan) -> None:
    if pending["input_fingerprint"] != export.fingerprint:
        raise ExportError(
            f"the pending ingest read {pending['source']} (fingerprint "
            f"{pending['input_fingerprint']}), not this export ({export.fingerprint}): resume "
            "with the same export"
        )
    if (pending["start"], pending["stop"]) != (ingest.start, ingest.stop):
        raise ExportError(
            f"the pending ingest planned samples {pending['start']}-{pending['stop']}, this "
            f"one {ingest.start}-{ingest.stop}: the store or the export changed"
        )


def _resume_state(
    st: PlanktonStore, ingest: IngestPlan, export: Export
) -> tuple[list[BlockResult], list[BlockTask]]:
    """Blocks the pending ingest wrote (trusted by checksum; their rejects decoded again) and
    the blocks still to write."""
    group = zarr.open_group(st.path, mode="r", storage_options=st.storage_options)
    n_blocks = -(-ingest.stop // st.block_size)
    checksums = zarr.Array(grown(group[fmt.BLOCK_CHECKSUM]._async_array, n_blocks))[:]
    splits = zarr.Array(grown(group[fmt.SPLIT]._async_array, ingest.stop))
    return split_written(ingest.tasks, checksums, splits, export.fetcher.fetch)


def _summarise(
    st: PlanktonStore,
    source: str,
    ingest: IngestPlan,
    export: Export,
    results: list[BlockResult],
    started: float,
) -> IngestSummary:
    samples = ingest.plan.samples
    is_copy = samples["augmentation"].to_numpy() != 0 if len(samples) else np.zeros(0, bool)
    failed = np.array(
        [r.start - ingest.start + p for r in results for p in r.failures], dtype=np.int64
    )
    reasons = [reason for r in results for reason in r.failures.values()]
    original = ~is_copy[failed] if len(failed) else np.zeros(0, bool)
    decode = pd.DataFrame(
        {
            "objid": samples["objid"].to_numpy()[failed[original]] if len(failed) else [],
            "image": samples["image"].to_numpy()[failed[original]] if len(failed) else [],
            "reason": np.asarray(reasons, dtype=object)[original] if len(failed) else [],
        }
    )
    parts = [p for p in (ingest.plan.rejects, ingest.duplicates, decode) if len(p)]
    rejects = pd.concat(parts, ignore_index=True) if parts else decode
    stored = np.ones(len(samples), dtype=bool)
    stored[failed] = False
    split = samples["split"].to_numpy().copy() if len(samples) else np.zeros(0, np.int8)
    split[~stored] = fmt.Split.REJECTED
    labels = samples["label"].to_numpy() if len(samples) else np.zeros(0, np.int16)
    return IngestSummary(
        store=st.path,
        version=ingest.version,
        source=source,
        rows_read=export.rows_read,
        rows_stored=int((stored & ~is_copy).sum()),
        augmented_copies=int((stored & is_copy).sum()),
        duplicates=len(ingest.duplicates),
        rejects=rejects,
        new_classes=ingest.class_names[len(st.class_names) :],
        start=ingest.start,
        stop=ingest.stop,
        counts=count_by_class_and_split(labels, split, ingest.class_names),
        seconds=time.perf_counter() - started,
        notes=list(ingest.plan.notes),
    )


def _commit(
    st: PlanktonStore,
    export: Export,
    ingest: IngestPlan,
    summary: IngestSummary,
    options: BuildOptions,
    taxonomy: Taxonomy,
) -> None:
    """Rejects table, resized arrays, then the one write of the root that commits."""
    path = fmt.version_rejects_path(st.path, ingest.version)
    with fsspec.open(path, "w", **(st.storage_options or {})) as f:
        summary.rejects.to_csv(f, index=False)
    n = max(st.n_samples, ingest.stop)
    resize_samples(st.path, n, -(-n // st.block_size), st.storage_options)
    attrs = dict(st.attrs)
    log = st.versions
    pending = attrs.pop(Attr.PENDING, None) or _pending_entry(export, ingest, options)
    entry = {
        **pending,
        "kind": "ingest",
        "source_layout": export.layout,
        "n_samples": n,
        "n_classes": len(ingest.class_names),
        "rows_read": summary.rows_read,
        "rows_stored": summary.rows_stored,
        "rows_rejected": len(summary.rejects),
        "duplicates": summary.duplicates,
        "augmented_copies": summary.augmented_copies,
        "new_classes": summary.new_classes,
        "finished": fmt.now(),
        "seconds": round(summary.seconds, 3),
    }
    codes = dict(attrs.get(Attr.PROVENANCE_CODES) or {st.version: 0})
    codes[ingest.version] = len(codes)
    counts = {c: dict(v) for c, v in st.counts().items()}
    for name, by_split in summary.counts.items():
        old = counts.setdefault(name, {s: 0 for s in by_split})
        counts[name] = {s: old.get(s, 0) + k for s, k in by_split.items()}
    lineages = dict(attrs.get(Attr.CLASS_LINEAGES) or {})
    found = class_lineages(export.table, taxonomy.lineage_level)
    lineages.update({c: found[c] for c in summary.new_classes if c in found})
    attrs.update(
        {
            Attr.CLASS_LINEAGES: lineages,
            Attr.N_SAMPLES: n,
            Attr.CLASS_NAMES: ingest.class_names,
            Attr.VERSIONS: [*log, entry],
            Attr.PROVENANCE_CODES: codes,
            Attr.COUNTS: counts,
        }
    )
    commit_root(st.path, attrs, st.storage_options)


def format_ingest(summary: IngestSummary) -> str:
    """The end-of-ingest report: what was added, left out and why, and the new version."""
    lines = [
        f"Store: {summary.store} is now version {summary.version} ({summary.stop} samples)",
        f"Rows read {summary.rows_read} = stored {summary.rows_stored} + rejected "
        f"{len(summary.rejects)} (of which {summary.duplicates} duplicates); augmented "
        f"copies (train only) {summary.augmented_copies}",
    ]
    if summary.new_classes:
        lines.append(f"New classes: {', '.join(summary.new_classes)}")
    if len(summary.rejects) and summary.start == summary.stop:
        lines.append("Rejects (no version written, so no rejects table):")
        lines += [f"  {r.objid}  {r.reason}" for r in summary.rejects.head(10).itertuples()]
        if len(summary.rejects) > 10:
            lines.append(f"  ... and {len(summary.rejects) - 10} more")
    elif len(summary.rejects):
        kinds = summary.rejects["reason"].astype(str).str.split(":").str[0].value_counts()
        path = fmt.version_rejects_path(summary.store, summary.version)
        lines.append(f"Rejects by reason (all in {path}):")
        lines += [f"  {n:>8}  {reason}" for reason, n in kinds.items()]
    lines += [f"Note: {note}" for note in summary.notes]
    lines.append(
        f"{summary.rows_stored + summary.augmented_copies} samples in {summary.seconds:.1f} s"
    )
    return "\n".join(lines)
