"""Build a store from an export on a Dask cluster: read, plan, run the blocks, finalize.

The client reads the export and makes the plan; each block of the plan is one Dask task
(:func:`plankton_store.store._block.run_block`) that decodes, augments and resizes its
images and writes exactly the shard it owns; the client then writes the summary and the
rejects table and marks the store complete.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import fsspec
import numpy as np
import pandas as pd

from plankton_store import __version__
from plankton_store.io import (
    COMPUTED_COLUMNS,
    ECOTAXA_LAYOUT,
    Export,
    ExportError,
    Taxonomy,
    class_lineages,
    release_free_memory,
)
from plankton_store.store import format as fmt
from plankton_store.store._block import (
    BlockResult,
    BlockTask,
    BlockTasks,
    FeatureObjids,
    SortedFeatureRows,
    block_tasks,
    run_block_tasks,
    sorted_feature_tables,
    split_written,
)
from plankton_store.store._open import open_store, store_state
from plankton_store.store._plan import (
    BuildOptions,
    BuildPlan,
    count_by_class_and_split,
)
from plankton_store.store._plan_hashed import plan_with_planner
from plankton_store.store._source import read_for_store
from plankton_store.store._versions import build_version_attrs
from plankton_store.store._write import StoreLayout, create_store, finalize_store
from plankton_store.store.format import Attr


@dataclass
class BuildSummary:
    """What a build did; printed at the end and stored (as attributes) in the store."""

    store: str
    rows_read: int
    rows_stored: int
    augmented_copies: int
    rejects: pd.DataFrame
    counts: dict[str, dict[str, int]]
    seconds: float
    notes: list[str] = field(default_factory=list)

    @property
    def samples(self) -> int:
        return self.rows_stored + self.augmented_copies

    @property
    def images_per_second(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else float("nan")

    def reject_reasons(self) -> dict[str, int]:
        """Reject counts per kind of reason (the reason text up to its first colon)."""
        # Split each distinct reason once, not each of the (often ~100,000) reject rows.
        counts = self.rejects["reason"].astype(str).value_counts()
        kinds = counts.groupby(counts.index.str.split(":").str[0], sort=False).sum()
        return {
            str(k): int(v) for k, v in kinds.sort_values(ascending=False, kind="stable").items()
        }


class StoreExistsError(FileExistsError):
    """The target store exists and the user did not ask to replace or resume it."""


def staging_path(store: str) -> str:
    """Where a rebuild over a complete store is written until it has finished."""
    return store.rstrip("/") + ".building"


def aligned_features(export: Export, plan: BuildPlan) -> dict[str, np.ndarray]:
    """Each feature table as float32 rows aligned to the planned samples.

    An augmented copy takes its source image's features; a sample whose objid is missing
    from a table gets NaN for that table.
    """
    row_objids = export.table["objid"].to_numpy(np.int64)[plan.samples["row"].to_numpy()]
    aligned = {}
    for table, frame in export.features.items():
        frame = frame[~frame.index.duplicated(keep="first")]
        aligned[table] = frame.reindex(row_objids).to_numpy(np.float32)
    return aligned


def _row_objids(export: Export, plan: BuildPlan) -> np.ndarray:
    """Each planned sample's objid in the feature tables (a copy's: its source's)."""
    return export.table["objid"].to_numpy(np.int64)[plan.samples["row"].to_numpy()]


class _FeatureRows:
    """Each feature table's float32 rows of a range of planned samples, gathered when a
    block task is made: the whole aligned copy (:func:`aligned_features`) held 72 bytes per
    sample on the client at once. Rows are found by binary search in the table's objids
    (sorted, first of each repeated one), not by ``reindex``, whose hash table of the
    index cost the client ~16-24 bytes per row more for the whole build."""

    def __init__(self, export: Export, plan: BuildPlan) -> None:
        self.row_objids = _row_objids(export, plan)
        self.frames = {table: SortedFeatureRows(frame) for table, frame in export.features.items()}

    def __call__(self, start: int, stop: int) -> dict[str, np.ndarray]:
        objids = self.row_objids[start:stop]
        return {t: rows(objids) for t, rows in self.frames.items()}


def build_store(
    source: str,
    store: str,
    options: BuildOptions,
    client: Any,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = True,
    echo: Callable[[str], None] = print,
    storage_options: dict[str, Any] | None = None,
    source_storage_options: dict[str, Any] | None = None,
    taxonomy: Taxonomy | None = None,
) -> BuildSummary:
    """Build a store from an export on a Dask cluster.

    Parameters
    ----------
    source
        Export folder (FlowCam/EcoTaxa layout or image folder): a path or an fsspec URL.
        Workers read the images from it themselves.
    store
        Path or fsspec URL of the store to create; workers write their blocks to it.
    options
        Plan and image options (label column, split fractions, size, ...). Ignored with
        ``resume``: an interrupted build resumes with the options it started with.
    client
        A ``distributed.Client``.
    overwrite
        Replace an existing store. A complete store is replaced only once the new build has
        finished (it is built beside it, in ``STORE.building``), so a failed rebuild never
        destroys it.
    resume
        Finish an interrupted build: only the blocks that were never written are run.
    storage_options, source_storage_options
        fsspec options of a URL ``store`` / ``source``, shipped to the workers with each
        task. None (the norm) lets every process use its fsspec configuration (environment
        variables, config files), so no credentials travel with the tasks.
    taxonomy
        How to regroup the labels (:func:`plankton_store.io.regroup`), recorded in the
        store's attributes; None keeps them as read. Ignored with ``resume``, like
        ``options``.

    Returns
    -------
    BuildSummary

    Raises
    ------
    StoreExistsError
        ``store`` exists and neither ``overwrite`` nor ``resume`` applies.
    ExportError
        A structural problem with the export, or (resume) the export changed.
    """
    started = time.perf_counter()
    state = store_state(store, storage_options)
    taxonomy = taxonomy or Taxonomy()
    if resume:
        options, taxonomy = _resume_options(store, state, storage_options)
        echo(f"Resuming {store} with the options it was started with")
    elif state is not None and not overwrite:
        hint = (
            "pass --resume to finish it or --overwrite to start again"
            if state == "incomplete"
            else "pass --overwrite to replace it"
        )
        raise StoreExistsError(f"{store} already exists ({state or 'not a store'}): {hint}")
    # A complete store is kept until its replacement has finished.
    target = staging_path(store) if state == "complete" and not resume else store

    export = read_for_store(
        source,
        options.label_column,
        options.statuses,
        taxonomy,
        client,
        source_storage_options,
        echo,
        keep_features=True,
    )
    plan, options, tasks = _plan_blocks(source, target, export, options, storage_options)
    release_free_memory()  # planning's temporaries: ~120-240 MiB at 2.4 million rows
    if resume:
        done_results, tasks = _resume_state(target, tasks, export, storage_options)
    else:
        done_results = []
        _create(target, export, plan, options, storage_options, taxonomy)
    echo(
        f"Planned {len(plan.samples)} samples in {len(tasks) + len(done_results)} blocks of "
        f"{options.block_size}" + (f"; {len(tasks)} left to build" if resume else "")
    )
    # Feature tables left on the cluster: made ready where they are, gathered by each task.
    tables = None
    if export.kept_features is not None and export.features:
        tables = client.submit(sorted_feature_tables, export.kept_features, pure=False)
    results = done_results + run_block_tasks(
        client, tasks, export.fetcher, progress, "build-block", "build-store", tables
    )
    summary = _summarise(store, plan, sorted(results, key=lambda r: r.block_index), started)
    _finish(store, target, summary, started, storage_options)
    summary.seconds = time.perf_counter() - started
    return summary


def _resume_options(
    store: str, state: str | None, storage_options: dict[str, Any] | None
) -> tuple[BuildOptions, Taxonomy]:
    """The options and regrouping an interrupted build of ``store`` started with."""
    if state != "incomplete":
        raise StoreExistsError(
            f"nothing to resume at {store}: it is "
            + ("absent" if state is None else f"a {state} store")
            + (" (run without --resume)" if state in (None, "complete") else "")
        )
    started_with = open_store(store, allow_incomplete=True, storage_options=storage_options)
    return (
        BuildOptions.from_attrs(started_with.attrs[Attr.BUILD_OPTIONS]),
        Taxonomy.from_attrs(started_with.attrs.get(Attr.TAXONOMY)),
    )


def _plan_blocks(
    source: str,
    target: str,
    export: Export,
    options: BuildOptions,
    storage_options: dict[str, Any] | None,
) -> tuple[BuildPlan, BuildOptions, BlockTasks]:
    """The plan, the options resolved for its size, and its shard-aligned block tasks."""
    # Rejects name the column the labels came from (an EcoTaxa export's fallback included).
    named = (
        replace(options, label_column=export.label_column)
        if export.layout == ECOTAXA_LAYOUT
        else options
    )
    plan = plan_with_planner(export.table, named, export.rejects, export.rows_read)
    options = options.resolved(len(plan.samples))
    if not len(plan.samples):
        raise ExportError(
            f"nothing to store from {source}: all {plan.rows_read} rows were rejected "
            f"(see the reasons with --label-column / --drop-class)"
        )
    if options.compute_features and fmt.COMPUTED_FEATURES in export.features:
        raise ExportError(
            f"{source} has a feature table named {fmt.COMPUTED_FEATURES!r} already, which "
            "--compute-features would replace: rename its file or drop --compute-features"
        )
    kept = export.kept_features is not None and export.features
    tasks = block_tasks(
        target,
        plan.samples,
        options.block_size,
        FeatureObjids(_row_objids(export, plan)) if kept else _FeatureRows(export, plan),
        options.size,
        options.resize_mode,  # type: ignore[arg-type]
        storage_options,
        compute_features=options.compute_features,
    )
    return plan, options, tasks


def _finish(
    store: str,
    target: str,
    summary: BuildSummary,
    started: float,
    storage_options: dict[str, Any] | None,
) -> None:
    """Write the rejects and the summary, mark the store complete and, for a rebuild, swap
    it in for the old store."""
    _write_rejects(target, summary.rejects, storage_options)
    update = {
        Attr.COUNTS: summary.counts,
        Attr.ROWS_READ: summary.rows_read,
        Attr.ROWS_STORED: summary.rows_stored,
        Attr.AUGMENTED_COPIES: summary.augmented_copies,
        Attr.ROWS_REJECTED: len(summary.rejects),
        Attr.REJECT_REASONS: summary.reject_reasons(),
        Attr.NOTES: summary.notes,
        Attr.BUILD_SECONDS: round(time.perf_counter() - started, 3),
    }
    built = open_store(target, allow_incomplete=True, storage_options=storage_options)
    update.update(build_version_attrs({**built.attrs, **update}, built.images.shape[0]))
    finalize_store(target, update, storage_options=storage_options)
    if target != store:
        fs, fs_path = fsspec.core.url_to_fs(store, **(storage_options or {}))
        _replace(fs, fs_path, fsspec.core.url_to_fs(target, **(storage_options or {}))[1])


def _create(
    target: str,
    export: Export,
    plan: BuildPlan,
    options: BuildOptions,
    storage_options: dict[str, Any] | None,
    taxonomy: Taxonomy,
) -> None:
    feature_columns = {t: [str(c) for c in f.columns] for t, f in export.features.items()}
    if options.compute_features:
        feature_columns[fmt.COMPUTED_FEATURES] = list(COMPUTED_COLUMNS)
    grouping = taxonomy.to_attrs()
    # A regrouping changes the store; without one the fingerprint is what it always was.
    digested = [export.fingerprint, options.to_attrs()] + ([grouping] if grouping else [])
    digest = hashlib.sha256(json.dumps(digested, sort_keys=True).encode())
    store_fingerprint = digest.hexdigest()[:16]
    lineages = class_lineages(export.table, taxonomy.lineage_level)
    layout = StoreLayout(
        n_samples=len(plan.samples),
        image_size=options.size,
        block_size=options.block_size,
        chunk_size=options.chunk_size,
        feature_columns=feature_columns,
    )
    attrs = fmt.root_attrs(
        class_names=plan.class_names,
        # An EcoTaxa export falls back to object_annotation_category: record what was read.
        label_column=export.label_column
        if export.layout == ECOTAXA_LAYOUT
        else options.label_column,
        image_size=options.size,
        resize_mode=options.resize_mode,
        block_size=options.block_size,
        build_options=options.to_attrs(),
        source=export.root,
        source_layout=export.layout,
        input_fingerprint=export.fingerprint,
        store_fingerprint=store_fingerprint,
        feature_columns=feature_columns,
        version=__version__,
        taxonomy=grouping,
        class_lineages={c: lineages[c] for c in plan.class_names if c in lineages},
    )
    create_store(
        target,
        layout,
        attrs,
        overwrite=True,  # the caller decided; a leftover staging store is replaced
        storage_options=storage_options,
    )


def _resume_state(
    target: str,
    tasks: BlockTasks,
    export: Export,
    storage_options: dict[str, Any] | None,
) -> tuple[list[BlockResult], list[BlockTask]]:
    """Split the blocks of an interrupted build into finished results and tasks to run.

    Finished blocks are trusted by their recorded checksum; the reasons of their rejected
    images are recovered by decoding just those images again.
    """
    st = open_store(target, allow_incomplete=True, storage_options=storage_options)
    recorded = st.attrs[Attr.INPUT_FINGERPRINT]
    if recorded != export.fingerprint:
        raise ExportError(
            f"the export changed since the build of {target} started (fingerprint "
            f"{export.fingerprint} != {recorded}): rebuild with --overwrite instead of --resume"
        )
    checksums = st.array(fmt.BLOCK_CHECKSUM)[:]
    return split_written(tasks, checksums, st.array(fmt.SPLIT), export.fetcher.fetch)


def _replace(fs: Any, store_path: str, new_path: str) -> None:
    """Swap a finished rebuild in for the old store (and its rejects table)."""
    # Workers (other processes) wrote the new store: drop listings cached before they did.
    fs.invalidate_cache()
    old = store_path.rstrip("/") + ".old"
    if fs.exists(old):
        fs.rm(old, recursive=True)
    _move_tree(fs, store_path, old)
    _move_tree(fs, new_path, store_path)
    new_rejects, rejects = fmt.rejects_path(new_path), fmt.rejects_path(store_path)
    if fs.exists(new_rejects):
        fs.mv(new_rejects, rejects)
    fs.rm(old, recursive=True)


def _move_tree(fs: Any, src: str, dst: str) -> None:
    """Move a folder: a rename on local disk; on an object store, which has no folders and
    no rename, copy every object, then delete the originals."""
    from fsspec.implementations.local import LocalFileSystem

    if isinstance(fs, LocalFileSystem):
        fs.mv(src, dst, recursive=True)
        return
    # fs.mv(recursive=True) also tries to copy the pseudo-folders, which fails on s3fs.
    files = fs.find(src)
    fs.copy(files, [dst + f[len(src) :] for f in files])
    fs.rm(src, recursive=True)


def _summarise(
    store: str, plan: BuildPlan, results: list[BlockResult], started: float
) -> BuildSummary:
    samples = plan.samples
    failed = np.array([r.start + pos for r in results for pos in r.failures], dtype=np.int64)
    reasons = [reason for r in results for reason in r.failures.values()]
    is_copy = samples["augmentation"].to_numpy() != 0
    split = samples["split"].to_numpy().copy()
    split[failed] = fmt.Split.REJECTED
    failed_originals = failed[~is_copy[failed]] if len(failed) else failed
    decode_rejects = pd.DataFrame(
        {
            "objid": samples["objid"].to_numpy()[failed_originals],
            "image": samples["image"].to_numpy()[failed_originals],
            "reason": np.asarray(reasons, dtype=object)[~is_copy[failed]] if len(failed) else [],
        }
    )
    rejects = pd.concat([plan.rejects, decode_rejects], ignore_index=True)
    rejects["objid"] = rejects["objid"].astype("Int64")
    stored = split != fmt.Split.REJECTED
    notes = list(plan.notes)
    lost_copies = int((is_copy & ~stored).sum())
    if lost_copies:
        notes.append(f"{lost_copies} augmented copies lost with their unreadable source images")
    return BuildSummary(
        store=store,
        rows_read=plan.rows_read,
        rows_stored=int((stored & ~is_copy).sum()),
        augmented_copies=int((stored & is_copy).sum()),
        rejects=rejects,
        counts=count_by_class_and_split(samples["label"].to_numpy(), split, plan.class_names),
        seconds=time.perf_counter() - started,
        notes=notes,
    )


def _write_rejects(
    store: str, rejects: pd.DataFrame, storage_options: dict[str, Any] | None
) -> None:
    with fsspec.open(fmt.rejects_path(store), "w", **(storage_options or {})) as f:
        rejects.to_csv(f, index=False)


def format_summary(summary: BuildSummary) -> str:
    """The end-of-build report: per class and split counts, rejects, time and speed."""
    counts = pd.DataFrame(summary.counts).T[["train", "val", "test"]]
    counts["total"] = counts.sum(axis=1)
    counts = counts.sort_values("total", ascending=False)
    counts.loc["ALL"] = counts.sum()
    lines = [
        f"Store: {summary.store}",
        counts.to_string(),
        "",
        f"Rows read {summary.rows_read} = stored {summary.rows_stored} "
        f"+ rejected {len(summary.rejects)}; augmented copies (train only) "
        f"{summary.augmented_copies}",
    ]
    if len(summary.rejects):
        lines.append(f"Rejects by reason (all in {fmt.rejects_path(summary.store)}):")
        lines += [f"  {n:>8}  {reason}" for reason, n in summary.reject_reasons().items()]
    lines += [f"Note: {note}" for note in summary.notes]
    lines.append(
        f"{summary.samples} samples in {summary.seconds:.1f} s "
        f"({summary.images_per_second:,.0f} images/s)"
    )
    return "\n".join(lines)
