"""The train split of a store, and the statistics every model standardises with.

:func:`gather_images`
    Reads any set of samples chunk by chunk (each store chunk decompressed once per call).
:class:`TrainSet`
    The train split: labels and original sizes always in RAM, images in RAM when they fit
    under ``memory_limit`` bytes, else read chunk by chunk from the store every epoch.
:class:`Normalisation`
    Pixel and log-size mean/std of the train split, saved with the model.

Only the train split is ever sampled, resampled or augmented: a :class:`TrainSet` holds train
samples only, and every index a batch carries is one of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from plankton_store.ml._augment import turn_images
from plankton_store.store import PlanktonStore

__all__ = [
    "DEFAULT_MEMORY_LIMIT",
    "Normalisation",
    "TrainSet",
    "gather_images",
    "log_sizes",
    "pooled",
]

#: Default bytes of train images held in RAM; larger train splits are streamed.
DEFAULT_MEMORY_LIMIT = 2 * 1024**3
#: Samples read per store call when gathering: consecutive chunks are read together.
_READ_SPAN = 8192


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
