"""Balanced batches of the train split, for Keras (``tf.data``) and scikit-learn.

:class:`BatchPipeline` turns each epoch's :class:`~plankton_store.ml.Selection` into batches
of uint8 images (optionally flipped / rotated), log sizes, labels and weights;
:meth:`BatchPipeline.keras_batches` (:meth:`BatchPipeline.tf_dataset` under TensorFlow) and
:meth:`BatchPipeline.blocks` feed Keras and ``partial_fit`` loops.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from plankton_store.ml._augment import augment_batch, blend_images
from plankton_store.ml._balance import BalancedSampler, Selection
from plankton_store.ml._trainset import Normalisation, TrainSet

__all__ = ["PARTIAL_FIT_BLOCK", "Batch", "BatchPipeline"]

#: Samples per :meth:`BatchPipeline.blocks` block by default (see there why not more).
PARTIAL_FIT_BLOCK = 1024


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
