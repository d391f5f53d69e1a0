"""The build plan: which input rows become which samples, in which split, with which operation.

Planning runs on the client, is cheap (vectorised pandas, no image is opened) and is
deterministic for a seed. The split is made BEFORE any augmentation, and augmented copies
are planned for the train split only, so no copy of a training image can reach val or test.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd

from plankton_store.io import ECOTAXA_TRUSTED_STATUSES
from plankton_store.store.format import AUGMENTATIONS, NO_SOURCE, REJECTS_COLUMNS, Split

DEFAULT_DROP_CLASSES: tuple[str, ...] = ("artefact", "badfocus (artefact)")
#: The seed notebook's augmentation operations, in the order they are used.
DEFAULT_AUGMENTATIONS: tuple[str, ...] = AUGMENTATIONS[1:]
#: Classes with fewer original images than this are listed in the plan's notes.
SMALL_CLASS = 10
#: ``objid`` of an augmented copy: it is not an instrument object of its own.
COPY_OBJID = -1
#: Largest automatic block (= shard = one Dask task): 4096 images of 64x48 are 12 MiB.
MAX_BLOCK_SIZE = 4096
#: Smaller stores get smaller blocks, so that at least this many share out the work.
MIN_BLOCKS = 16
#: The planners a build can use (``BuildOptions.planner``).
PLANNERS: tuple[str, ...] = ("sequential", "hashed")


@dataclass(frozen=True)
class BuildOptions:
    """Every option that shapes a store; recorded in the store's attributes."""

    label_column: str = "level2"
    drop_classes: tuple[str, ...] = DEFAULT_DROP_CLASSES
    max_per_class: int | None = 20000
    test_fraction: float = 0.2
    val_fraction: float = 0.1
    augment_below: int = 1000
    augmentations: tuple[str, ...] = DEFAULT_AUGMENTATIONS
    size: tuple[int, int] = (64, 48)
    resize_mode: str = "stretch"
    block_size: int | None = None  # None: see resolved()
    chunk_size: int = 512
    seed: int = 0
    compute_features: bool = False
    #: EcoTaxa TSV exports: the object_annotation_status values whose labels are used.
    statuses: tuple[str, ...] = ECOTAXA_TRUSTED_STATUSES
    #: "sequential" (:func:`make_plan`, one random generator) or "hashed" (per-row keys:
    #: partitioned, the same plan whatever the partitioning; another plan for a seed).
    planner: str = "sequential"

    def __post_init__(self) -> None:
        if not 0 <= self.test_fraction < 1 or not 0 <= self.val_fraction < 1:
            raise ValueError("--test-fraction and --val-fraction must be in [0, 1)")
        if self.test_fraction + self.val_fraction >= 1:
            raise ValueError("--test-fraction + --val-fraction must leave room for training")
        if self.max_per_class is not None and self.max_per_class < 1:
            raise ValueError("--max-per-class must be at least 1")
        if self.chunk_size < 1 or (
            self.block_size is not None
            and (self.block_size < 1 or self.block_size % self.chunk_size)
        ):
            raise ValueError("block size must be a positive multiple of the chunk size")
        if self.planner not in PLANNERS:
            raise ValueError(f"unknown planner {self.planner!r}; known {PLANNERS}")
        unknown = set(self.augmentations) - set(AUGMENTATIONS[1:])
        if unknown:
            raise ValueError(f"unknown augmentations {sorted(unknown)}; known {AUGMENTATIONS[1:]}")

    def resolved(self, n_samples: int) -> BuildOptions:
        """These options with a concrete block size for a store of ``n_samples``.

        The automatic block size is :data:`MAX_BLOCK_SIZE` samples, smaller (in whole chunks)
        for small stores so that at least :data:`MIN_BLOCKS` blocks share out the work
        between the workers. Not below one chunk: every task has a fixed cost (opening the
        store, writing each array), which smaller blocks would multiply. It depends on the
        store only, never on the cluster.
        """
        if self.block_size is not None:
            return self
        per_block = -(-n_samples // MIN_BLOCKS)
        chunk = self.chunk_size
        block = min(MAX_BLOCK_SIZE, max(1, -(-per_block // chunk)) * chunk)
        return replace(self, block_size=max(chunk, block - block % chunk))

    @classmethod
    def from_attrs(cls, attrs: dict) -> BuildOptions:
        """The options recorded in a store's attributes (inverse of :meth:`to_attrs`)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in attrs.items()})

    def to_attrs(self) -> dict:
        """JSON-ready dictionary for the store attributes."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass
class BuildPlan:
    """The samples to write, in store order, and the rows that will not be stored.

    ``samples`` columns: ``objid``, ``label`` (code into ``class_names``), ``split``,
    ``source_objid``, ``augmentation`` (code), ``image`` (fetcher reference) and ``row``
    (position in the export table the pixels come from).
    """

    samples: pd.DataFrame
    class_names: list[str]
    rejects: pd.DataFrame
    rows_read: int
    notes: list[str] = field(default_factory=list)

    def blocks(self, block_size: int) -> list[tuple[int, int]]:
        """``(start, stop)`` sample ranges, one per shard: the unit of work of one task."""
        n = len(self.samples)
        return [(start, min(start + block_size, n)) for start in range(0, n, block_size)]

    def counts(self) -> dict[str, dict[str, int]]:
        """Planned samples per class and split: ``{class: {"train": n, ...}}``."""
        return count_by_class_and_split(
            self.samples["label"].to_numpy(), self.samples["split"].to_numpy(), self.class_names
        )


def count_by_class_and_split(
    labels: np.ndarray, splits: np.ndarray, class_names: list[str]
) -> dict[str, dict[str, int]]:
    """Counts per class and split, every split named for every class (zeros included).

    Rows with another split code (``REJECTED``) are not counted.
    """
    kept = [s for s in Split if s != Split.REJECTED]
    n_classes = len(class_names)
    labels = np.asarray(labels, dtype=np.int64)
    splits = np.asarray(splits, dtype=np.int64)
    counts = np.zeros((n_classes, len(kept)), dtype=np.int64)
    for column, split in enumerate(kept):
        counts[:, column] = np.bincount(labels[splits == int(split)], minlength=n_classes)
    return {
        name: {split.name.lower(): int(counts[code, column]) for column, split in enumerate(kept)}
        for code, name in enumerate(class_names)
    }


def _reject(rows: pd.DataFrame, reason: str | pd.Series) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "objid": rows["objid"].astype("Int64"),
            "image": rows["image"].astype("string"),
            "reason": reason,
        },
        columns=list(REJECTS_COLUMNS),
    )


def _split_counts(n: int, test_fraction: float, val_fraction: float) -> tuple[int, int, int]:
    """(train, val, test) sizes of one class; every split gets at least one image when it can.

    1 image: train only. 2 images: train + test (when a test split is asked for).
    """
    n_test = round(n * test_fraction)
    n_val = round(n * val_fraction)
    if n >= 3:
        n_test = max(n_test, 1) if test_fraction > 0 else 0
        n_val = max(n_val, 1) if val_fraction > 0 else 0
    elif n == 2:
        n_test, n_val = (1 if test_fraction > 0 else 0), 0
    else:
        n_test = n_val = 0
    return n - n_test - n_val, n_val, n_test


def make_plan(
    table: pd.DataFrame,
    options: BuildOptions,
    reader_rejects: pd.DataFrame | None = None,
    rows_read: int | None = None,
) -> BuildPlan:
    """Plan a build from an export table (see :class:`plankton_store.io.Export`).

    Parameters
    ----------
    table
        One row per readable input row with at least ``objid``, ``label`` and ``image``.
    options
        The build options; ``seed`` makes the plan repeatable.
    reader_rejects
        Rows the reader already rejected; carried into the plan's rejects.
    rows_read
        Input rows the reader saw; defaults to ``len(table) + len(reader_rejects)``.
    """
    rng = np.random.default_rng(options.seed)
    rejects = [reader_rejects] if reader_rejects is not None and len(reader_rejects) else []
    rows = _usable_rows(table.assign(row=np.arange(len(table))), options, rejects)
    # One pass over the rows groups them by class (in row order within a class); the loop
    # below then works on index arrays, so its cost per class is small and fixed.
    label_codes, uniques = pd.factorize(rows["label"].to_numpy(), sort=True)
    class_names = [str(name) for name in uniques]
    by_class = np.argsort(label_codes, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(label_codes, minlength=len(uniques)))])
    short: list[str] = []  # classes that stay under --augment-below after augmentation
    small: list[str] = []  # classes too small to split reliably
    # (positions in ``rows``, split, augmentation code) of each class's originals, then of
    # its augmented copies (positions of their source images).
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for code, name in enumerate(class_names):
        members = by_class[bounds[code] : bounds[code + 1]]
        parts += _plan_class(members, name, rows, options, rng, rejects, small, short)
    samples = _samples(parts, rows, label_codes, rng)
    all_rejects = (
        pd.concat(rejects, ignore_index=True) if rejects else pd.DataFrame(columns=REJECTS_COLUMNS)
    )
    if rows_read is None:
        rows_read = len(table) + (len(reader_rejects) if reader_rejects is not None else 0)
    return BuildPlan(samples, class_names, all_rejects, rows_read, _notes(small, short, options))


def _usable_rows(
    rows: pd.DataFrame, options: BuildOptions, rejects: list[pd.DataFrame]
) -> pd.DataFrame:
    """``rows`` without those that have no label or a dropped class (added to ``rejects``)."""
    no_label = _blank(rows["label"])
    if no_label.any():
        rejects.append(_reject(rows[no_label], f"no {options.label_column} label"))
        rows = rows[~no_label]
    dropped = rows["label"].isin(options.drop_classes)
    if dropped.any():
        reasons = "class " + rows.loc[dropped, "label"].map(repr) + " dropped (--drop-class)"
        rejects.append(_reject(rows[dropped], reasons))
        rows = rows[~dropped]
    return rows


def _blank(labels: pd.Series) -> np.ndarray:
    """Which labels are missing or blank; each distinct label is stripped once (stripping
    2.4 million labels made as many new strings)."""
    codes, uniques = pd.factorize(labels)  # missing: -1
    blank = pd.Series(uniques).astype("string").str.strip() == ""
    return np.append(blank.to_numpy(dtype=bool), True)[codes]


def _plan_class(
    members: np.ndarray,
    name: str,
    rows: pd.DataFrame,
    options: BuildOptions,
    rng: np.random.Generator,
    rejects: list[pd.DataFrame],
    small: list[str],
    short: list[str],
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """One class's originals (capped, split) and its augmented copies, as plan parts.

    ``members`` are the class's positions in ``rows``; capped rows go to ``rejects``, and the
    class is named in ``small`` / ``short`` when it is too small to split reliably / stays
    under ``--augment-below`` after augmentation.
    """
    order = rng.permutation(len(members))
    if options.max_per_class is not None and len(members) > options.max_per_class:
        capped = members[np.sort(order[options.max_per_class :])]
        reason = f"class {name!r} capped at {options.max_per_class} (--max-per-class)"
        rejects.append(_reject(rows.iloc[capped], reason))
        members = members[np.sort(order[: options.max_per_class])]
        order = rng.permutation(len(members))
    n_train, n_val, n_test = _split_counts(
        len(members), options.test_fraction, options.val_fraction
    )
    split = np.empty(len(members), dtype=np.int8)
    split[order[:n_train]] = Split.TRAIN
    split[order[n_train : n_train + n_val]] = Split.VAL
    split[order[n_train + n_val :]] = Split.TEST
    if len(members) < SMALL_CLASS:
        small.append(f"{name} ({n_train}/{n_val}/{n_test})")
    parts = [(members, split, np.zeros(len(members), np.int8))]
    if n_train < options.augment_below and options.augmentations:
        sources, operations = _plan_copies(members[split == Split.TRAIN], options, rng, short, name)
        parts.append((sources, np.full(len(sources), Split.TRAIN, np.int8), operations))
    return parts


def _notes(small: list[str], short: list[str], options: BuildOptions) -> list[str]:
    notes = []
    if small:
        notes.append(
            f"{len(small)} classes have fewer than {SMALL_CLASS} images, split "
            f"train/val/test as: {', '.join(small)}"
        )
    if short:
        notes.append(
            f"{len(short)} classes stay under --augment-below {options.augment_below} train "
            f"images with one copy per operation per image: {', '.join(short)}"
        )
    return notes


def _samples(
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    rows: pd.DataFrame,
    label_codes: np.ndarray,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """The planned samples in store order: train, val, test, each shuffled, so that any chunk
    is a representative mix of classes (streamed training reads whole chunks)."""
    objids = rows["objid"].to_numpy(np.int64)
    positions = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
    augmentation = np.concatenate([p[2] for p in parts]) if parts else np.zeros(0, np.int8)
    is_copy = augmentation != 0
    samples = pd.DataFrame(
        {
            "objid": np.where(is_copy, np.int64(COPY_OBJID), objids[positions]),
            "label": label_codes[positions].astype(np.int16),
            "split": np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int8),
            "source_objid": np.where(is_copy, objids[positions], np.int64(NO_SOURCE)),
            "augmentation": augmentation,
            "image": rows["image"].to_numpy()[positions],
            "row": rows["row"].to_numpy()[positions],
        }
    )
    shuffle = rng.permutation(len(samples))
    samples = samples.iloc[shuffle]
    return samples.sort_values("split", kind="stable").reset_index(drop=True)


def _plan_copies(
    train: np.ndarray,
    options: BuildOptions,
    rng: np.random.Generator,
    short: list[str],
    name: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Augmented copies of one rare class's train images, up to ``augment_below`` in all.

    ``train`` holds the positions of the class's train images; returns the positions of
    each copy's source image and its operation code. Each train image gets at most one copy
    per operation; the (image, operation) pairs used are a seeded random choice, spread
    evenly over the images.
    """
    wanted = options.augment_below - len(train)
    ops = [AUGMENTATIONS.index(op) for op in options.augmentations]
    n_copies = min(wanted, len(train) * len(ops))
    if n_copies <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int8)
    if n_copies < wanted:
        short.append(f"{name} ({len(train) + n_copies})")
    images, operations = copy_rounds(
        rng.permutation(len(train)), n_copies, np.asarray(ops, dtype=np.int8)
    )
    return train[images], operations


def copy_rounds(order: np.ndarray, n_copies: int, ops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ``n_copies`` copies of a class's train images taken in ``order``.

    Round ``r`` uses operation ``ops[(r + k) % len(ops)]`` for the ``k``-th image of
    ``order``, so every image gets a copy before any image gets a second one. Returns each
    copy's source (an item of ``order``) and its operation code. Both planners use it.
    """
    n = len(order)
    rounds = -(-n_copies // n)
    images = np.tile(order, rounds)[:n_copies]
    op_index = np.repeat(np.arange(rounds), n) + np.tile(np.arange(n), rounds)
    return images, ops[op_index[:n_copies] % len(ops)]
