"""Balanced batches from the train split of a store, for Keras (``tf.data``) and scikit-learn.

The pieces, in the order a training job uses them:

:func:`gather_images`
    Reads any set of samples chunk by chunk (each store chunk decompressed once per call).
:class:`TrainSet`
    The train split: labels and original sizes always in RAM, images in RAM when they fit
    under ``memory_limit`` bytes, else read chunk by chunk from the store every epoch.
:class:`Normalisation`
    Pixel and log-size mean/std of the train split, saved with the model.
:class:`BalancedSampler`
    A new balanced selection of train positions every epoch, by policy
    (:data:`BALANCE_POLICIES`). Random under/over-sampling draws sample indices per class
    (targets by imbalanced-learn's sampling-strategy rules); ``cluster-centroids`` and
    ``smote`` need a pixel representation, so they work on a small pooled copy of the images
    and still return indices (SMOTE as ``(i, j, step)`` triples whose pixels are interpolated
    per batch): no copy of the pixels is resampled.
:class:`BatchPipeline`
    Turns a selection into batches of uint8 images (optionally flipped / rotated), log sizes,
    labels and weights; :meth:`BatchPipeline.keras_batches` (:meth:`BatchPipeline.tf_dataset`
    under TensorFlow) and :meth:`BatchPipeline.blocks` feed Keras and ``partial_fit`` loops.

Only the train split is ever sampled, resampled or augmented: a :class:`TrainSet` holds train
samples only, and every index a batch carries is one of them.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from plankton_store.store import PlanktonStore

__all__ = [
    "BALANCE_POLICIES",
    "PARTIAL_FIT_BLOCK",
    "Batch",
    "BatchPipeline",
    "BalancedSampler",
    "Normalisation",
    "Selection",
    "TrainSet",
    "augment_batch",
    "blend_images",
    "gather_images",
    "log_sizes",
    "pooled",
    "turn_images",
]

#: Values of ``--balance``.
BALANCE_POLICIES: tuple[str, ...] = (
    "none",
    "undersample",
    "oversample",
    "class-weight",
    "sqrt",
    "cluster-centroids",
    "smote",
)
#: Default bytes of train images held in RAM; larger train splits are streamed.
DEFAULT_MEMORY_LIMIT = 2 * 1024**3
#: Samples read per store call when gathering: consecutive chunks are read together.
_READ_SPAN = 8192
#: Images turned per step by :func:`turn_images` (bounds its float32 temporaries).
_TURN_SPAN = 4096
#: Samples per :meth:`BatchPipeline.blocks` block by default (see there why not more).
PARTIAL_FIT_BLOCK = 1024
#: Images blended per step by :func:`blend_images`.
_BLEND_SPAN = 256


def gather_images(
    images: Any, indices: np.ndarray, span: int = _READ_SPAN, out: np.ndarray | None = None
) -> np.ndarray:
    """Images at ``indices`` (any order, repeats allowed), reading each needed chunk once.

    Runs of needed chunks that lie close together are read with one slice of at most
    ``span`` samples, which costs far less than one read per sample (or per chunk).

    Parameters
    ----------
    images
        The store's ``(sample, y, x)`` array (zarr or numpy).
    indices
        Sample indices to read.
    span
        Most samples read by one slice.
    out
        Optional ``(len(indices), y, x)`` uint8 array to fill.

    Returns
    -------
    numpy.ndarray
        ``(len(indices), y, x)`` uint8, in the order of ``indices``.
    """
    indices = np.asarray(indices, dtype=np.int64)
    if out is None:
        out = np.empty((len(indices), *images.shape[1:]), dtype=np.uint8)
    if not len(indices):
        return out
    chunk = int(images.chunks[0]) if hasattr(images, "chunks") else span
    order = np.argsort(indices, kind="stable")
    sorted_idx = indices[order]
    n = images.shape[0]
    pos = 0
    while pos < len(sorted_idx):
        start = (sorted_idx[pos] // chunk) * chunk
        stop = min(n, start + max(span, chunk))
        stop = min(n, -(-stop // chunk) * chunk)
        end = int(np.searchsorted(sorted_idx, stop, side="left"))
        # Read only up to the chunk that holds the last index of this run.
        last = int(sorted_idx[end - 1])
        stop = min(n, (last // chunk + 1) * chunk)
        block = np.asarray(images[start:stop])
        out[order[pos:end]] = block[sorted_idx[pos:end] - start]
        pos = end
    return out


def log_sizes(orig_height: np.ndarray, orig_width: np.ndarray) -> np.ndarray:
    """``(n, 2)`` float32 ``log(height), log(width)`` of the images before resizing."""
    sizes = np.stack([orig_height, orig_width], axis=1).astype(np.float32)
    return np.log(np.maximum(sizes, 1.0))


def pooled(images: np.ndarray, target: tuple[int, int] = (16, 12)) -> np.ndarray:
    """Block-mean pooled, flattened float32 copies: a cheap representation for clustering
    and nearest neighbours (``cluster-centroids``, ``smote``)."""
    n, h, w = images.shape
    fy, fx = max(1, h // target[0]), max(1, w // target[1])
    hh, ww = (h // fy) * fy, (w // fx) * fx
    x = images[:, :hh, :ww].reshape(n, hh // fy, fy, ww // fx, fx)
    return x.mean(axis=(2, 4), dtype=np.float32).reshape(n, -1)


@dataclass(frozen=True)
class Normalisation:
    """Train-split statistics every model standardises its inputs with.

    ``image_mean`` / ``image_std`` are over all pixels (one value: flips and rotations move
    pixels, so per-pixel statistics would not survive augmentation); ``size_mean`` /
    ``size_std`` are of ``log(orig_height), log(orig_width)``.
    """

    image_mean: float
    image_std: float
    size_mean: tuple[float, float]
    size_std: tuple[float, float]

    @classmethod
    def from_train(cls, train: TrainSet) -> Normalisation:
        """Statistics of a :class:`TrainSet`, exact, from a grey-level histogram."""
        hist = np.zeros(256, dtype=np.int64)
        for block in train.iter_blocks():
            hist += np.bincount(block.ravel(), minlength=256)
        levels = np.arange(256, dtype=np.float64)
        total = max(int(hist.sum()), 1)
        mean = float((hist * levels).sum() / total)
        std = float(np.sqrt((hist * (levels - mean) ** 2).sum() / total))
        sizes = train.log_size.astype(np.float64)
        return cls(
            image_mean=mean,
            image_std=max(std, 1e-3),
            size_mean=tuple(float(v) for v in sizes.mean(axis=0)),  # type: ignore[arg-type]
            size_std=tuple(float(max(v, 1e-3)) for v in sizes.std(axis=0)),  # type: ignore[arg-type]
        )

    def images(self, images: np.ndarray) -> np.ndarray:
        """Standardised float32 images (any shape)."""
        # x / std - mean / std: the cast fused into the multiply, two passes over the
        # pixels instead of three (the float32 blocks for partial_fit are memory-bound).
        scale = np.float32(1.0 / self.image_std)
        x = np.multiply(images, scale, dtype=np.float32)
        x -= np.float32(self.image_mean) * scale
        return x

    def sizes(self, log_size: np.ndarray) -> np.ndarray:
        """Standardised float32 log sizes, ``(n, 2)``."""
        mean = np.asarray(self.size_mean, np.float32)
        return ((log_size - mean) / np.asarray(self.size_std, np.float32)).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {
            "image_mean": self.image_mean,
            "image_std": self.image_std,
            "size_mean": list(self.size_mean),
            "size_std": list(self.size_std),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Normalisation:
        return cls(
            image_mean=float(data["image_mean"]),
            image_std=float(data["image_std"]),
            size_mean=tuple(data["size_mean"]),  # type: ignore[arg-type]
            size_std=tuple(data["size_std"]),  # type: ignore[arg-type]
        )


class TrainSet:
    """The train split of a store: everything a sampler and a batch pipeline need.

    Parameters
    ----------
    store
        An open store.
    memory_limit
        Hold the train images in RAM when they take at most this many bytes; otherwise read
        them chunk by chunk from the store whenever a batch needs them.
    indices
        Store indices to use instead of the train split (tests only; must be train samples).

    Attributes
    ----------
    indices : numpy.ndarray
        Store index of each train position, ascending.
    labels : numpy.ndarray
        Label code of each position (int64).
    log_size : numpy.ndarray
        ``(n, 2)`` log original height and width.
    in_ram : bool
        Whether the images are held in RAM.
    """

    def __init__(
        self,
        store: PlanktonStore,
        memory_limit: int = DEFAULT_MEMORY_LIMIT,
        indices: np.ndarray | None = None,
    ) -> None:
        self.store = store
        train = store.split_indices("train")
        if indices is None:
            indices = train
        elif not np.isin(indices, train).all():
            raise ValueError("a TrainSet holds train samples only")
        self.indices = np.asarray(indices, dtype=np.int64)
        self.labels = store.labels[self.indices].astype(np.int64)
        self.n_classes = len(store.class_names)
        height = store.array("orig_height")[:][self.indices]
        width = store.array("orig_width")[:][self.indices]
        self.log_size = log_sizes(height, width)
        self.image_size: tuple[int, int] = store.image_size
        self.chunk = int(store.images.chunks[0])
        nbytes = len(self.indices) * int(np.prod(self.image_size))
        self.in_ram = nbytes <= memory_limit
        self._images = gather_images(store.images, self.indices) if self.in_ram else None
        # Every image turned by 90 degrees, computed once when first needed, if it fits too.
        self._keep_turned = self.in_ram and 2 * nbytes <= memory_limit
        self._turned: np.ndarray | None = None
        # Train positions grouped by the store chunk they live in (for streamed epochs).
        self.chunk_of = self.indices // self.chunk

    def __len__(self) -> int:
        return len(self.indices)

    def counts(self) -> np.ndarray:
        """Train samples per class code."""
        return np.bincount(self.labels, minlength=self.n_classes)

    def read(self, positions: np.ndarray, turned: np.ndarray | None = None) -> np.ndarray:
        """uint8 images of train ``positions`` (from RAM, or chunk-wise from the store).

        ``turned`` (boolean, one per position) returns those images turned by 90 degrees
        (:func:`turn_images`). A train set held in RAM turns all its images once, the first
        time, when twice its images fit in ``memory_limit`` (a turn of a non-square image is a
        resize, the costliest step of augmenting a batch); otherwise they are turned on read.
        """
        if self._images is not None:
            images = self._images[positions]
        else:
            images = gather_images(self.store.images, self.indices[positions])
        if turned is None or not turned.any():
            return images
        if self._keep_turned:
            if self._turned is None:
                assert self._images is not None
                self._turned = turn_images(self._images)
            images[turned] = self._turned[positions[turned]]
        else:
            images[turned] = turn_images(images[turned])
        return images

    def iter_blocks(self, size: int = _READ_SPAN) -> Iterator[np.ndarray]:
        """All train images in order, ``size`` at a time (bounded memory when streamed)."""
        for start in range(0, len(self), size):
            yield self.read(np.arange(start, min(start + size, len(self))))

    def pooled(self) -> np.ndarray:
        """:func:`pooled` representation of every train image (computed once)."""
        if not hasattr(self, "_pooled"):
            self._pooled = np.concatenate(
                [pooled(b) for b in self.iter_blocks()] or [np.zeros((0, 1), np.float32)]
            )
        return self._pooled


@dataclass
class Selection:
    """One epoch's draw: train positions in the order they are fed.

    ``partners`` / ``steps`` describe SMOTE samples: the pixels fed are
    ``x[position] + step * (x[partner] - x[position])`` where ``partner >= 0``.
    ``weights`` are per-sample loss weights (``class-weight``), else None.
    """

    positions: np.ndarray
    partners: np.ndarray | None = None
    steps: np.ndarray | None = None
    weights: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.positions)

    def take(self, order: np.ndarray) -> Selection:
        return Selection(
            self.positions[order],
            None if self.partners is None else self.partners[order],
            None if self.steps is None else self.steps[order],
            None if self.weights is None else self.weights[order],
        )


class BalancedSampler:
    """Draws a new, shuffled, balanced selection of train positions every epoch.

    Parameters
    ----------
    labels
        Label code of each train position.
    n_classes
        Number of classes (codes ``0 .. n_classes - 1``).
    policy
        One of :data:`BALANCE_POLICIES`:

        - ``none``: every train sample once.
        - ``undersample`` / ``oversample``: random under- / over-sampling of the indices
          as imbalanced-learn's ``RandomUnderSampler`` / ``RandomOverSampler`` do it (a
          class keeps a random subset without replacement, or all its samples plus random
          repeats); every class gets the smallest / largest class's count.
        - ``class-weight``: every sample once, weighted ``n / (classes * count[class])``.
        - ``sqrt``: as many samples as the train split, each class drawn in proportion to the
          square root of its count (random under- and over-sampling to per-class targets):
          rare classes are seen far more often than in ``none`` while
          big classes keep most of their variety, a middle way that suits long-tailed data.
        - ``cluster-centroids``: imbalanced-learn's ``ClusterCentroids`` with hard voting
          (the real sample nearest to each centroid) and ``MiniBatchKMeans`` as the
          estimator, per class on ``represent`` (pooled images), so that it stays fast on
          the full-scale store; every class gets the smallest class's count.
        - ``smote``: imbalanced-learn's SMOTE algorithm (5 nearest neighbours in the class,
          uniform step), neighbours found once on ``represent``; every class is raised to
          the largest class's count, the synthetic samples kept as ``(i, j, step)``.
    seed
        Epoch ``e`` draws from ``numpy.random.default_rng([seed, e])``: repeatable.
    represent
        ``(n, d)`` float32 representation for ``cluster-centroids`` and ``smote``
        (e.g. :meth:`TrainSet.pooled`).
    """

    def __init__(
        self,
        labels: np.ndarray,
        n_classes: int,
        policy: str = "none",
        seed: int = 0,
        represent: np.ndarray | None = None,
    ) -> None:
        if policy not in BALANCE_POLICIES:
            raise ValueError(f"unknown balance policy {policy!r}; choose from {BALANCE_POLICIES}")
        if policy in ("cluster-centroids", "smote") and represent is None:
            raise ValueError(f"--balance {policy} needs a sample representation")
        self.labels = np.asarray(labels, dtype=np.int64)
        self.n_classes = n_classes
        self.policy = policy
        self.seed = seed
        self.represent = represent
        self.counts = np.bincount(self.labels, minlength=n_classes)
        present = self.counts[self.counts > 0]
        if not len(present):
            raise ValueError("the train split is empty")
        self.min_count, self.max_count = int(present.min()), int(present.max())
        self._neighbours: dict[int, np.ndarray] = {}
        self._targets = self._resolve_targets()
        # Train positions of each class (ascending), found once: every epoch's draw is then
        # per class and costs O(epoch size). (imbalanced-learn's samplers re-validate and
        # re-scan the whole label vector on every call: ~16 ms per epoch on the full-scale
        # train split, more than a 2,700-sample undersampled epoch takes to draw and gather.)
        order = np.argsort(self.labels, kind="stable")
        bounds = np.cumsum(self.counts)[:-1]
        self._members = dict(enumerate(np.split(order, bounds)))

    def _resolve_targets(self) -> np.ndarray | None:
        """Samples per class code of a random under/over-sampling policy (None for the
        others), with imbalanced-learn's sampling-strategy rules."""
        from imblearn.utils import check_sampling_strategy

        if self.policy == "undersample":
            keep = check_sampling_strategy("all", self.labels, "under-sampling")
            return self._as_targets(keep)
        if self.policy == "oversample":
            add = check_sampling_strategy("all", self.labels, "over-sampling")
            return self.counts + self._as_targets(add)
        if self.policy == "sqrt":
            return self.sqrt_targets()
        return None

    def _as_targets(self, per_class: dict) -> np.ndarray:
        targets = np.zeros(self.n_classes, dtype=np.int64)
        for code, n in per_class.items():
            targets[int(code)] = int(n)
        return targets

    def epoch_size(self) -> int:
        """Samples per epoch (the same every epoch)."""
        if self._targets is not None:  # undersample, oversample, sqrt
            return int(self._targets.sum())
        n_present = int((self.counts > 0).sum())
        if self.policy == "cluster-centroids":
            return n_present * self.min_count
        if self.policy == "smote":
            return n_present * self.max_count
        return len(self.labels)

    def sqrt_targets(self) -> np.ndarray:
        """Samples per class code of the ``sqrt`` policy: proportional to ``sqrt(count)``,
        at least one for every present class, summing to about the train size."""
        root = np.sqrt(self.counts.astype(np.float64))
        targets = np.rint(len(self.labels) * root / root.sum()).astype(np.int64)
        return np.where(self.counts > 0, np.maximum(targets, 1), 0)

    def class_weights(self) -> np.ndarray:
        """scikit-learn's ``balanced`` weights per class code (0 for absent classes)."""
        n_present = int((self.counts > 0).sum())
        with np.errstate(divide="ignore"):
            weights = len(self.labels) / (n_present * self.counts.astype(np.float64))
        return np.where(self.counts > 0, weights, 0.0).astype(np.float32)

    def epoch(self, epoch: int) -> Selection:
        """The shuffled selection of epoch ``epoch``."""
        rng = np.random.default_rng([self.seed, epoch])
        state = int(rng.integers(2**31 - 1))
        positions = np.arange(len(self.labels))
        if self._targets is not None:
            selection = Selection(self._draw(self._targets, rng))
        elif self.policy == "class-weight":
            selection = Selection(positions, weights=self.class_weights()[self.labels])
        elif self.policy == "cluster-centroids":
            selection = Selection(self._cluster_centroids(state))
        elif self.policy == "smote":
            selection = self._smote(rng)
        else:
            selection = Selection(positions)
        return selection.take(rng.permutation(len(selection)))

    def _draw(self, targets: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``targets[c]`` positions of each class ``c``: a random subset without
        replacement where the class has more, all of them plus random repeats where fewer."""
        drawn = []
        for code, members in self._members.items():
            target = int(targets[code])
            if target <= len(members):
                drawn.append(rng.choice(members, target, replace=False))
            else:
                drawn.append(members)
                drawn.append(rng.choice(members, target - len(members), replace=True))
        return np.concatenate(drawn) if drawn else np.zeros(0, dtype=np.int64)

    def _cluster_centroids(self, state: int) -> np.ndarray:
        from sklearn.cluster import MiniBatchKMeans
        from sklearn.metrics import pairwise_distances_argmin

        assert self.represent is not None
        chosen = []
        target = self.min_count
        for code in np.flatnonzero(self.counts):
            members = self._members[int(code)]
            if len(members) <= target:
                chosen.append(members)
                continue
            # What ClusterCentroids(voting="hard") does: k-means with k = target, then the
            # real sample nearest to each centroid. Samples, not synthetic centroids, so the
            # selection stays a list of indices.
            x = self.represent[members]
            kmeans = MiniBatchKMeans(
                n_clusters=target,
                n_init=1,
                max_iter=20,
                batch_size=max(1024, 3 * target),
                random_state=state,
            ).fit(x)
            chosen.append(members[pairwise_distances_argmin(kmeans.cluster_centers_, x)])
        return np.concatenate(chosen)

    def _smote(self, rng: np.random.Generator) -> Selection:
        positions, partners, steps = [np.arange(len(self.labels))], [], []
        partners.append(np.full(len(self.labels), -1, dtype=np.int64))
        steps.append(np.zeros(len(self.labels), dtype=np.float32))
        for code in np.flatnonzero(self.counts):
            members = self._members[int(code)]
            missing = self.max_count - len(members)
            if missing <= 0:
                continue
            seeds = rng.integers(0, len(members), missing)
            neighbours = self._class_neighbours(int(code), members)
            if neighbours.shape[1] == 0:  # a single sample: nothing to interpolate with
                partner = np.full(missing, -1, dtype=np.int64)
                step = np.zeros(missing, dtype=np.float32)
            else:
                pick = rng.integers(0, neighbours.shape[1], missing)
                partner = members[neighbours[seeds, pick]]
                step = rng.random(missing, dtype=np.float32)
            positions.append(members[seeds])
            partners.append(partner)
            steps.append(step)
        return Selection(np.concatenate(positions), np.concatenate(partners), np.concatenate(steps))

    def _class_neighbours(self, code: int, members: np.ndarray, k: int = 5) -> np.ndarray:
        """Within-class nearest neighbours (positions into ``members``), computed once."""
        if code not in self._neighbours:
            from sklearn.neighbors import NearestNeighbors

            assert self.represent is not None
            k = min(k, len(members) - 1)
            if k < 1:
                self._neighbours[code] = np.zeros((len(members), 0), dtype=np.int64)
            else:
                x = self.represent[members]
                nn = NearestNeighbors(n_neighbors=k + 1).fit(x)
                self._neighbours[code] = nn.kneighbors(x, return_distance=False)[:, 1:]
        return self._neighbours[code]


@dataclass
class Batch:
    """One batch as fed to a model.

    ``images`` are uint8 ``(b, h, w)``: standardisation happens in the model (Keras) or in
    :meth:`BatchPipeline.blocks` (scikit-learn). ``indices`` are the store indices of every
    sample whose pixels went into the batch (SMOTE partners included).
    """

    images: np.ndarray
    log_size: np.ndarray
    labels: np.ndarray
    weights: np.ndarray | None
    indices: np.ndarray = field(repr=False)


def _interpolation_matrix(n_out: int, n_in: int) -> np.ndarray:
    """Bilinear (half-pixel centres) resampling matrix ``(n_out, n_in)``."""
    centres = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
    centres = np.clip(centres, 0, n_in - 1)
    lo = np.floor(centres).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = (centres - lo).astype(np.float32)
    m = np.zeros((n_out, n_in), dtype=np.float32)
    m[np.arange(n_out), lo] += 1 - frac
    m[np.arange(n_out), hi] += frac
    return m


def turn_images(images: np.ndarray) -> np.ndarray:
    """The ``(n, h, w)`` uint8 images turned by 90 degrees, at the same ``(h, w)``.

    A 90-degree turn of a non-square image is a transpose resized back to ``(h, w)``: for
    stretched images that is exactly what the store would hold for the turned original (whose
    height and width swap). Square images are just transposed.
    """
    turned = images.transpose(0, 2, 1)
    n, h, w = images.shape
    if h == w:
        return np.ascontiguousarray(turned)
    ry, rx = _interpolation_matrix(h, w), _interpolation_matrix(w, h)
    out = np.empty_like(images)
    for start in range(0, n, _TURN_SPAN):  # bounded float32 temporaries
        part = turned[start : start + _TURN_SPAN].astype(np.float32)
        out[start : start + _TURN_SPAN] = np.clip(np.rint(ry @ part @ rx.T), 0, 255)  # 2 matmuls
    return out


def augment_batch(
    images: np.ndarray, log_size: np.ndarray, rng: np.random.Generator, rotate: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Random flips (left-right, top-bottom) and 90-degree turns (:func:`turn_images`, whose
    images swap height and width, so ``log_size`` swaps too) of a batch.

    ``rotate=False`` (padded stores, or images turned already) keeps flips only. Returns new
    arrays; the inputs are not changed.
    """
    images = images.copy()
    log_size = log_size.copy()
    n = len(images)
    lr = rng.random(n) < 0.5
    images[lr] = images[lr, :, ::-1]
    tb = rng.random(n) < 0.5
    images[tb] = images[tb, ::-1, :]
    if rotate:
        rot = np.flatnonzero(rng.random(n) < 0.5)
        if len(rot):
            images[rot] = turn_images(images[rot])
            log_size[rot] = log_size[rot, ::-1]
    return images, log_size


def blend_images(base: np.ndarray, other: np.ndarray, step: np.ndarray) -> np.ndarray:
    """SMOTE pixels: ``base + step * (other - base)`` per image, rounded, as uint8.

    Integer arithmetic with ``step`` in 1/256ths (``(base * (256 - s) + other * s + 128) >> 8``
    fits uint16): half the memory traffic of float32 and no rounding pass, for a step
    resolution far below what a random step in [0, 1) needs.
    """
    s = np.rint(np.asarray(step, np.float32) * 256).astype(np.uint16)[:, None, None]
    out = np.empty_like(base)
    # A few hundred images at a time into two reused uint16 buffers that stay in the CPU
    # cache (fresh temporaries per operation cost more than the arithmetic).
    mixed = np.empty((min(_BLEND_SPAN, len(base)), *base.shape[1:]), np.uint16)
    term = np.empty_like(mixed)
    for i in range(0, len(base), _BLEND_SPAN):
        n = min(_BLEND_SPAN, len(base) - i)
        part, acc, tmp = slice(i, i + n), mixed[:n], term[:n]
        np.multiply(base[part], 256 - s[part], out=acc, dtype=np.uint16)
        np.multiply(other[part], s[part], out=tmp, dtype=np.uint16)
        acc += tmp
        acc += 128
        acc >>= 8
        out[part] = acc
    return out


def _swapped(log_size: np.ndarray, turned: np.ndarray | None) -> np.ndarray:
    """``log_size`` with height and width swapped where ``turned``."""
    if turned is None or not turned.any():
        return log_size
    log_size = log_size.copy()
    log_size[turned] = log_size[turned, ::-1]
    return log_size


class BatchPipeline:
    """Batches of the balanced selection of each epoch.

    Parameters
    ----------
    train
        The train split.
    sampler
        Draws each epoch's selection.
    batch_size
        Samples per batch (the last batch of an epoch may be smaller, never empty, and an
        epoch always has at least one batch, however few samples the policy leaves).
    augment
        Random flips and 90-degree rotations (train only, per sample). An in-RAM train set
        turns its images once per run (see :meth:`TrainSet.read`).
    rotate
        Allow 90-degree rotations when augmenting (False for padded stores).
    seed
        Seeds the order within streamed windows and the augmentation.
    window_chunks
        Streamed train sets: store chunks whose samples are shuffled together.
    """

    def __init__(
        self,
        train: TrainSet,
        sampler: BalancedSampler,
        batch_size: int = 128,
        augment: bool = False,
        rotate: bool = True,
        seed: int = 0,
        window_chunks: int = 16,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch size must be at least 1")
        self.train = train
        self.sampler = sampler
        self.batch_size = batch_size
        self.augment = augment
        self.rotate = rotate
        self.seed = seed
        self.window_chunks = window_chunks

    def steps_per_epoch(self) -> int:
        """Batches per epoch: at least 1 (a policy that leaves fewer samples than one batch
        still gives one, smaller batch)."""
        return max(1, -(-self.sampler.epoch_size() // self.batch_size))

    @property
    def weighted(self) -> bool:
        """Whether batches carry sample weights (the ``class-weight`` policy)."""
        return self.sampler.policy == "class-weight"

    def _ordered(self, epoch: int, rng: np.random.Generator) -> Selection:
        selection = self.sampler.epoch(epoch)
        if self.train.in_ram:
            return selection
        # Streamed: visit chunks in random order, a window of chunks at a time, so that each
        # chunk is read once per window and samples still mix across chunks.
        chunk_of = self.train.chunk_of[selection.positions]
        chunks = np.unique(chunk_of)
        rank = np.empty(chunks.max() + 1, dtype=np.int64)
        rank[rng.permutation(chunks)] = np.arange(len(chunks))
        window = rank[chunk_of] // self.window_chunks
        order = np.lexsort((rng.random(len(selection)), window))
        return selection.take(order)

    def batches(self, epoch: int, batch_size: int | None = None) -> Iterator[Batch]:
        """The batches of epoch ``epoch`` (repeatable for a seed), of ``batch_size``
        samples (default: the pipeline's)."""
        batch_size = batch_size or self.batch_size
        rng = np.random.default_rng([self.seed, epoch, 1])
        selection = self._ordered(epoch, rng)
        read_size = batch_size
        if not self.train.in_ram:
            read_size = max(batch_size, self.window_chunks * self.train.chunk)
            read_size = -(-read_size // batch_size) * batch_size
        for start in range(0, max(len(selection), 1), read_size):
            part = selection.take(np.arange(start, min(start + read_size, len(selection))))
            # 90-degree turns are drawn here and read ready-made (TrainSet.read); flips
            # commute with them, so each sample still gets one of the 8 at random.
            turned = rng.random(len(part)) < 0.5 if self.augment and self.rotate else None
            images = self.train.read(part.positions, turned)
            log_size = _swapped(self.train.log_size[part.positions], turned)
            if part.partners is not None and (part.partners >= 0).any():
                images, log_size = self._interpolate(part, images, log_size, turned)
            for b in range(0, len(part), batch_size):
                sl = slice(b, b + batch_size)
                x, s = images[sl], log_size[sl]
                if self.augment:
                    x, s = augment_batch(x, s, rng, rotate=False)
                w = None if part.weights is None else part.weights[sl]
                pos = [part.positions[sl]]
                if part.partners is not None:
                    pos.append(part.partners[sl][part.partners[sl] >= 0])
                yield Batch(
                    images=x,
                    log_size=s,
                    labels=self.train.labels[part.positions[sl]],
                    weights=w,
                    indices=self.train.indices[np.concatenate(pos)],
                )

    def _interpolate(
        self,
        part: Selection,
        images: np.ndarray,
        log_size: np.ndarray,
        turned: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        assert part.partners is not None and part.steps is not None
        syn = np.flatnonzero(part.partners >= 0)
        # A turned sample interpolates towards its partner turned the same way.
        partner_turned = None if turned is None else turned[syn]
        other = self.train.read(part.partners[syn], partner_turned)
        step = part.steps[syn]
        # Both arrays are this read's own (fancy-indexed) copies: changed in place.
        images[syn] = blend_images(images[syn], other, step)
        partner_size = _swapped(self.train.log_size[part.partners[syn]], partner_turned)
        log_size[syn] += step[:, None] * (partner_size - log_size[syn])
        return images, log_size

    def blocks(
        self, epoch: int, normalisation: Normalisation, block_size: int = PARTIAL_FIT_BLOCK
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
        """``(X, y, sample_weight)`` blocks for ``partial_fit``: standardised, flattened
        float32 pixels, ``block_size`` samples at a time (the last block may be smaller).

        About a thousand 64x48 samples (12 MB) per block is the quick size: much larger
        blocks are fresh memory from the OS each time (glibc maps allocations over 32 MiB
        anew), whose page faults then cost more than standardising the pixels.
        """
        # Drawn as batches of block_size: one gather and one standardisation per block.
        for batch in self.batches(epoch, block_size):
            x = normalisation.images(batch.images).reshape(len(batch.labels), -1)
            yield x, batch.labels, batch.weights

    def keras_batches(self, with_size: bool = True, first_epoch: int = 0) -> Iterator[tuple]:
        """Endless ``(inputs, labels[, weights])`` batches, epoch after epoch, for Keras
        ``fit`` on any backend; pass ``steps_per_epoch=self.steps_per_epoch()``.

        ``inputs`` is ``{"image": (b, h, w, 1) uint8, "size": (b, 2) float32}`` (``size``
        only when ``with_size``); weights only with the ``class-weight`` policy.
        """
        for epoch in itertools.count(first_epoch):
            for batch in self.batches(epoch):
                inputs = {"image": batch.images[..., None]}
                if with_size:
                    inputs["size"] = batch.log_size
                if self.weighted:
                    yield inputs, batch.labels, batch.weights
                else:
                    yield inputs, batch.labels

    def tf_dataset(self, with_size: bool = True, first_epoch: int = 0) -> Any:
        """:meth:`keras_batches` as a ``tf.data.Dataset`` that prepares the next batches in
        the background while TensorFlow trains on the current one. Imports TensorFlow."""
        import tensorflow as tf

        h, w = self.train.image_size
        spec = {"image": tf.TensorSpec((None, h, w, 1), tf.uint8)}
        if with_size:
            spec["size"] = tf.TensorSpec((None, 2), tf.float32)
        signature: tuple = (spec, tf.TensorSpec((None,), tf.int64))
        if self.weighted:
            signature += (tf.TensorSpec((None,), tf.float32),)
        dataset = tf.data.Dataset.from_generator(
            lambda: self.keras_batches(with_size, first_epoch), output_signature=signature
        )
        return dataset.prefetch(2)
