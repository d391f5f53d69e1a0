"""The worker side of build-store: turn one planned block into stored arrays.

One call handles one block of thousands of images (Dask costs ~2 ms per task, so never one
task per image) and writes exactly the sample range that block owns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple, overload

import numpy as np
import pandas as pd

from plankton_store.cluster import run_blocks, run_id
from plankton_store.io import ImageFetcher, ResizeMode, image_features, prepare_images
from plankton_store.store import format as fmt
from plankton_store.store._write import write_block


@dataclass
class BlockTask:
    """Everything a worker needs for one block; small enough to ship with the task."""

    store: str
    block_index: int
    start: int
    refs: list[str]
    columns: dict[str, np.ndarray]  # the planned 1-D arrays (objid, label, split, ...)
    features: dict[str, np.ndarray] = field(default_factory=dict)  # table -> (n, F) float32
    size: tuple[int, int] = (64, 48)
    resize_mode: ResizeMode = "stretch"
    storage_options: dict[str, Any] | None = None
    compute_features: bool = False  # write the ``computed`` feature table too
    run_id: str = ""  # the build run: a worker opens the store's arrays once per run
    grown_to: int | None = None  # an ingest: the store's samples once it commits
    # Each sample's objid in the feature tables kept on the cluster (see FeatureObjids):
    # the worker gathers ``features`` itself.
    feature_objids: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.refs)


@dataclass
class BlockResult:
    """What a block task reports back: its checksum and the images it could not use."""

    block_index: int
    start: int
    n_samples: int
    checksum: int
    failures: dict[int, str]  # position in the block -> reason


def run_block(
    task: BlockTask,
    fetch: Callable[[str], bytes],
    feature_rows: Mapping[str, np.ndarray] | None = None,
) -> BlockResult:
    """Decode, augment and resize a block's images and write all its arrays.

    A sample whose image fails keeps zero pixels and gets split code -1 (rejected); the
    reason is returned so the client can record it in the rejects table.
    ``feature_rows``: the rows of ``task.feature_objids`` that :func:`gather_feature_rows`
    took from the feature tables kept on the cluster, the task's features.
    """
    if task.feature_objids is not None:
        task = replace(task, features=dict(feature_rows or {}), feature_objids=None)
    operations = [fmt.AUGMENTATIONS[c] for c in task.columns[fmt.AUGMENTATION]]
    pixels, orig_height, orig_width, failures = prepare_images(
        fetch, task.refs, operations, task.size, task.resize_mode
    )
    split = np.array(task.columns[fmt.SPLIT], dtype=np.int8, copy=True)
    if failures:
        split[list(failures)] = fmt.Split.REJECTED
    arrays: dict[str, np.ndarray] = {
        **{name: np.asarray(v, dtype=fmt.SAMPLE_ARRAYS[name]) for name, v in task.columns.items()},
        fmt.SPLIT: split,
        fmt.IMAGES: pixels,
        fmt.ORIG_HEIGHT: orig_height,
        fmt.ORIG_WIDTH: orig_width,
        **{fmt.features_array_name(t): v for t, v in task.features.items()},
    }
    if task.compute_features:
        arrays[fmt.features_array_name(fmt.COMPUTED_FEATURES)] = image_features(
            fetch, task.refs, operations, skip=failures
        )
    checksum = write_block(
        task.store,
        task.block_index,
        task.start,
        arrays,
        task.storage_options,
        task.run_id,
        task.grown_to,
    )
    return BlockResult(task.block_index, task.start, len(task), checksum, failures)


#: Block tasks submitted and unfinished at a time, per worker thread: each one's rows are
#: gathered on the client when it is submitted, so the graph never holds every block's
#: images, plan columns and feature rows at once (160 bytes per sample).
TASKS_PER_THREAD = 4

#: A block's feature rows: ``features(start, stop)`` gives each table's float32 rows of the
#: samples ``start:stop``.
FeatureRows = Callable[[int, int], dict[str, np.ndarray]]


class SortedFeatureRows:
    """A feature frame's float32 rows by objid: ``reindex(objids)`` (NaN rows for objids
    it lacks, the first row of a repeated objid), by binary search."""

    def __init__(self, frame: pd.DataFrame) -> None:
        # Column by column: a frame read in pieces holds one block per column, and
        # to_numpy() would copy them all (175 MB at 2.4 million rows of 18 features).
        self.columns = [
            np.asarray(frame.iloc[:, j], dtype=np.float32) for j in range(frame.shape[1])
        ]
        ids = frame.index.to_numpy()
        self.order: np.ndarray | None = None
        if ids.dtype != np.int64 or (len(ids) > 1 and not (ids[1:] > ids[:-1]).all()):
            self.order = np.argsort(ids, kind="stable")
            ids = ids[self.order]
            first = np.ones(len(ids), dtype=bool)
            first[1:] = ids[1:] != ids[:-1]
            ids, self.order = ids[first], self.order[first]
        self.ids = ids

    def __call__(self, objids: np.ndarray) -> np.ndarray:
        out = np.full((len(objids), len(self.columns)), np.nan, dtype=np.float32)
        if not len(self.ids):
            return out
        at = np.minimum(np.searchsorted(self.ids, objids), len(self.ids) - 1)
        hit = self.ids[at] == objids
        rows = at[hit] if self.order is None else self.order[at[hit]]
        for j, column in enumerate(self.columns):
            out[hit, j] = column[rows]
        return out


class FeatureObjids(NamedTuple):
    """Each planned sample's objid in feature tables kept on the cluster: a block task
    carries its samples' objids and its worker gathers their rows (the client holds no
    feature row)."""

    objids: np.ndarray


def sorted_feature_tables(
    read: tuple[dict[str, pd.DataFrame], Any],
) -> dict[str, SortedFeatureRows]:
    """The feature tables that :attr:`plankton_store.io.Export.kept_features` left on the
    cluster, ready for :func:`run_block` (run on the worker that holds them)."""
    return {table: SortedFeatureRows(frame) for table, frame in read[0].items()}


def gather_feature_rows(
    tables: Mapping[str, SortedFeatureRows], objids: np.ndarray
) -> dict[str, np.ndarray]:
    """One block's feature rows, taken where the tables are (a small task of its own, so
    that the tables, ~195 MB at 2.4 million rows, are never copied to another worker)."""
    return {table: rows(objids) for table, rows in tables.items()}


class BlockTasks(Sequence[BlockTask]):
    """The block tasks of planned samples, each made when it is asked for (see
    :func:`block_tasks`)."""

    def __init__(
        self,
        template: BlockTask,
        columns: dict[str, np.ndarray],
        refs: np.ndarray,
        features: Mapping[str, np.ndarray] | FeatureRows | FeatureObjids,
        block_size: int,
    ) -> None:
        self.template, self.columns, self.refs = template, columns, refs
        self.features, self.block_size = features, block_size

    def __len__(self) -> int:
        return -(-len(self.refs) // self.block_size)

    def sizes(self) -> list[int]:
        """Each block's number of samples, without making the tasks."""
        n, size = len(self.refs), self.block_size
        return [min(size, n - start) for start in range(0, n, size)]

    @overload
    def __getitem__(self, index: int) -> BlockTask: ...
    @overload
    def __getitem__(self, index: slice) -> list[BlockTask]: ...
    def __getitem__(self, index: int | slice) -> BlockTask | list[BlockTask]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        index %= len(self)
        start = index * self.block_size
        stop = min(start + self.block_size, len(self.refs))
        objids = None
        if isinstance(self.features, FeatureObjids):
            features, objids = {}, self.features.objids[start:stop]
        elif callable(self.features):
            features = self.features(start, stop)
        else:
            features = {t: v[start:stop] for t, v in self.features.items()}
        return replace(
            self.template,
            block_index=index,
            start=start,
            refs=self.refs[start:stop].tolist(),
            columns={k: v[start:stop] for k, v in self.columns.items()},
            features=features,
            feature_objids=objids,
        )


def block_tasks(
    store: str,
    samples: Any,
    block_size: int,
    features: Mapping[str, np.ndarray] | FeatureRows | FeatureObjids,
    size: tuple[int, int],
    resize_mode: ResizeMode,
    storage_options: dict[str, Any] | None = None,
    compute_features: bool = False,
) -> BlockTasks:
    """Cut planned samples (a DataFrame, see :class:`plankton_store.store.BuildPlan`) into
    shard-aligned block tasks, each made when it is asked for. ``features`` holds each
    table already aligned to the samples, or gives a block's rows
    (``features(start, stop)``), or each sample's objid in tables kept on the cluster
    (:class:`FeatureObjids`); ``compute_features`` has each task compute the
    ``computed`` table from its images."""
    names = [fmt.OBJID, fmt.LABEL, fmt.SPLIT, fmt.SOURCE_OBJID, fmt.AUGMENTATION]
    columns = {name: samples[name].to_numpy() for name in names}
    template = BlockTask(
        store=store,
        block_index=0,
        start=0,
        refs=[],
        columns={},
        size=size,
        resize_mode=resize_mode,
        storage_options=storage_options,
        compute_features=compute_features,
    )
    refs = samples["image"].to_numpy(dtype=object)
    return BlockTasks(template, columns, refs, features, block_size)


class _Calls(Sequence[tuple[BlockTask, Callable[[str], bytes]]]):
    """Each block's call, made when it is submitted."""

    def __init__(
        self,
        tasks: Sequence[BlockTask],
        fetcher: ImageFetcher,
        key: str,
        client: Any = None,
        tables: Any = None,
    ) -> None:
        self.tasks, self.fetcher, self.key = tasks, fetcher, key
        self.client, self.tables = client, tables

    def __len__(self) -> int:
        return len(self.tasks)

    def __getitem__(self, index: Any) -> Any:
        task = replace(self.tasks[index], run_id=self.key)
        if task.feature_objids is not None:  # rows taken where the tables are
            rows = self.client.submit(
                gather_feature_rows,
                self.tables,
                task.feature_objids,
                key=f"gather-features-{self.key}-{task.block_index}",
                retries=3,
            )
            return task, self.fetcher.batch(task.refs), rows
        return task, self.fetcher.batch(task.refs)


def run_block_tasks(
    client: Any,
    tasks: Sequence[BlockTask],
    fetcher: ImageFetcher,
    progress: bool,
    name: str,
    desc: str,
    tables: Any = None,
) -> list[BlockResult]:
    """Run block tasks on Dask, each writing whole shards of its own.

    Tasks are idempotent (same bytes to the same shard), so retries after a lost worker are
    safe. A remote export is fetched a block at a time; a local one image by image. At most
    :data:`TASKS_PER_THREAD` tasks per worker thread are submitted at a time, each made
    (and its zip entries looked up) when it is submitted. ``tables``: the future of
    :func:`sorted_feature_tables`, for tasks whose feature rows are gathered where it is.
    """
    key = run_id()
    sizes = tasks.sizes() if isinstance(tasks, BlockTasks) else [len(t) for t in tasks]
    threads = sum(client.nthreads().values()) or 1
    return run_blocks(
        client,
        run_block,
        _Calls(tasks, fetcher, key, client, tables),
        name=name,
        desc=desc,
        retries=3,
        sizes=sizes,
        progress=progress,
        key=key,
        window=TASKS_PER_THREAD * threads,
    )


def split_written(
    tasks: Sequence[BlockTask],
    checksums: np.ndarray,
    splits: Any,
    fetch: Callable[[str], bytes],
) -> tuple[list[BlockResult], list[BlockTask]]:
    """Split the blocks of an interrupted write into finished results and tasks to run.

    A block with a recorded checksum is trusted; the reasons of its rejected images (split
    < 0 in ``splits``, an array indexed by sample) are recovered by decoding just those
    images again.
    """
    done, todo = [], []
    for task in tasks:
        checksum = int(checksums[task.block_index])
        if checksum == 0:
            todo.append(task)
            continue
        rejected = np.flatnonzero(splits[task.start : task.start + len(task)] < 0)
        failures = {}
        if len(rejected):
            ops = [fmt.AUGMENTATIONS[task.columns[fmt.AUGMENTATION][i]] for i in rejected]
            refs = [task.refs[i] for i in rejected]
            *_, found = prepare_images(fetch, refs, ops, task.size, task.resize_mode)
            failures = {int(rejected[i]): reason for i, reason in found.items()}
        done.append(BlockResult(task.block_index, task.start, len(task), checksum, failures))
    return done, todo
