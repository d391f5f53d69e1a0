"""The worker side of build-store: turn one planned block into stored arrays.

One call handles one block of thousands of images (Dask costs ~2 ms per task, so never one
task per image) and writes exactly the sample range that block owns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

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


def run_block(task: BlockTask, fetch: Callable[[str], bytes]) -> BlockResult:
    """Decode, augment and resize a block's images and write all its arrays.

    A sample whose image fails keeps zero pixels and gets split code -1 (rejected); the
    reason is returned so the client can record it in the rejects table.
    """
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


def block_tasks(
    store: str,
    samples: Any,
    block_size: int,
    features: Mapping[str, np.ndarray],
    size: tuple[int, int],
    resize_mode: ResizeMode,
    storage_options: dict[str, Any] | None = None,
    compute_features: bool = False,
) -> list[BlockTask]:
    """Cut planned samples (a DataFrame, see :class:`plankton_store.store.BuildPlan`) into
    shard-aligned block tasks. ``features`` holds each table already aligned to the samples;
    ``compute_features`` has each task compute the ``computed`` table from its images."""
    names = [fmt.OBJID, fmt.LABEL, fmt.SPLIT, fmt.SOURCE_OBJID, fmt.AUGMENTATION]
    columns = {name: samples[name].to_numpy() for name in names}
    refs = samples["image"].tolist()
    tasks = []
    for index, start in enumerate(range(0, len(samples), block_size)):
        stop = min(start + block_size, len(samples))
        tasks.append(
            BlockTask(
                store=store,
                block_index=index,
                start=start,
                refs=refs[start:stop],
                columns={k: v[start:stop] for k, v in columns.items()},
                features={t: v[start:stop] for t, v in features.items()},
                size=size,
                resize_mode=resize_mode,
                storage_options=storage_options,
                compute_features=compute_features,
            )
        )
    return tasks


def run_block_tasks(
    client: Any,
    tasks: list[BlockTask],
    fetcher: ImageFetcher,
    progress: bool,
    name: str,
    desc: str,
) -> list[BlockResult]:
    """Run block tasks on Dask, each writing whole shards of its own.

    Tasks are idempotent (same bytes to the same shard), so retries after a lost worker are
    safe. A remote export is fetched a block at a time; a local one image by image.
    """
    key = run_id()
    calls = [(replace(task, run_id=key), fetcher.batch(task.refs)) for task in tasks]
    return run_blocks(
        client,
        run_block,
        calls,
        name=name,
        desc=desc,
        retries=3,
        sizes=[len(task) for task in tasks],
        progress=progress,
        key=key,
    )


def split_written(
    tasks: list[BlockTask],
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
