"""Balanced sampling, gathering, streaming and augmentation (plankton_store.ml._trainset,
_balance, _batches and _augment)."""

from __future__ import annotations

import numpy as np
import pytest

from plankton_store.ml import (
    BALANCE_POLICIES,
    BalancedSampler,
    BatchPipeline,
    Normalisation,
    TrainSet,
    augment_batch,
    gather_images,
    turn_images,
)
from plankton_store.ml._augment import blend_images
from plankton_store.store import format as fmt
from plankton_store.store import open_store


@pytest.fixture(scope="module")
def store(demo_store):
    return open_store(demo_store)


@pytest.fixture(scope="module")
def train_set(store):
    return TrainSet(store)


def _sampler(train_set, policy, seed=0):
    represent = train_set.pooled() if policy in ("cluster-centroids", "smote") else None
    return BalancedSampler(train_set.labels, train_set.n_classes, policy, seed, represent)


def test_gather_images_matches_direct_reads(store):
    rng = np.random.default_rng(0)
    idx = rng.integers(0, store.n_samples, 300)  # unsorted, with repeats
    expected = store.images[:][idx]
    np.testing.assert_array_equal(gather_images(store.images, idx), expected)
    np.testing.assert_array_equal(gather_images(store.images, idx, span=64), expected)
    assert gather_images(store.images, np.array([], dtype=int)).shape == (0, 32, 24)


@pytest.mark.parametrize("policy", BALANCE_POLICIES)
def test_policy_counts_and_new_draw_every_epoch(train_set, policy):
    sampler = _sampler(train_set, policy)
    counts = train_set.counts()
    first, second = sampler.epoch(0), sampler.epoch(1)
    for selection in (first, second):
        assert len(selection) == sampler.epoch_size()
        per_class = np.bincount(train_set.labels[selection.positions], minlength=len(counts))
        if policy in ("none", "class-weight"):
            np.testing.assert_array_equal(per_class, counts)
        elif policy == "sqrt":  # proportional to sqrt(count): rare classes drawn more often
            np.testing.assert_array_equal(per_class, sampler.sqrt_targets())
            share = np.sqrt(counts) / np.sqrt(counts).sum()
            np.testing.assert_allclose(per_class / per_class.sum(), share, atol=0.01)
            rare, big = counts.argmin(), counts.argmax()
            assert per_class[rare] > counts[rare] and per_class[big] < counts[big]
        else:  # balanced: per-class counts within one of equal
            assert per_class.max() - per_class.min() <= 1
            target = (
                counts.min() if policy in ("undersample", "cluster-centroids") else counts.max()
            )
            assert per_class.min() == target
        if policy == "class-weight":
            weight_sums = np.bincount(
                train_set.labels[selection.positions], weights=selection.weights
            )
            np.testing.assert_allclose(weight_sums, weight_sums.mean(), rtol=1e-5)
    assert not np.array_equal(first.positions, second.positions), "epochs must differ"
    again = _sampler(train_set, policy).epoch(1)
    np.testing.assert_array_equal(again.positions, second.positions)  # seeded: repeatable


@pytest.mark.parametrize("policy", ["undersample", "oversample"])
def test_random_resampling_matches_imbalanced_learn(train_set, policy):
    from imblearn.over_sampling import RandomOverSampler
    from imblearn.under_sampling import RandomUnderSampler

    kind = RandomUnderSampler if policy == "undersample" else RandomOverSampler
    reference = kind(sampling_strategy="all", random_state=0)
    positions = np.arange(len(train_set))
    reference.fit_resample(positions.reshape(-1, 1), train_set.labels)
    expected = np.bincount(train_set.labels[reference.sample_indices_])
    drawn = _sampler(train_set, policy).epoch(0).positions
    np.testing.assert_array_equal(np.bincount(train_set.labels[drawn]), expected)
    if policy == "undersample":  # a subset: no sample twice
        assert len(np.unique(drawn)) == len(drawn)
    else:  # every sample kept, the rest repeats
        assert set(drawn.tolist()) == set(positions.tolist())


def test_smote_partners_are_same_class_neighbours(train_set):
    selection = _sampler(train_set, "smote").epoch(0)
    syn = selection.partners >= 0
    assert syn.any()
    labels = train_set.labels
    np.testing.assert_array_equal(labels[selection.positions[syn]], labels[selection.partners[syn]])
    assert ((selection.steps[syn] >= 0) & (selection.steps[syn] < 1)).all()


def test_batches_hold_train_samples_only_for_every_policy(store, train_set):
    train = set(store.split_indices("train").tolist())
    for policy in BALANCE_POLICIES:
        pipeline = BatchPipeline(train_set, _sampler(train_set, policy), 64, augment=True)
        fed = np.concatenate([b.indices for e in range(2) for b in pipeline.batches(e)])
        assert set(fed.tolist()) <= train, policy
        assert (store.splits[fed] == fmt.Split.TRAIN).all()


def test_tiny_policy_still_gives_one_batch(train_set):
    # Undersampling leaves ~15 x min-count samples: far fewer than a batch of 10,000.
    pipeline = BatchPipeline(train_set, _sampler(train_set, "undersample"), 10_000)
    assert pipeline.steps_per_epoch() == 1
    batches = list(pipeline.batches(0))
    assert len(batches) == 1 and len(batches[0].labels) == pipeline.sampler.epoch_size()


def test_streamed_equals_in_ram_content(store):
    in_ram = TrainSet(store)
    streamed = TrainSet(store, memory_limit=0)
    assert in_ram.in_ram and not streamed.in_ram
    sampler = _sampler(in_ram, "oversample")
    ram_batches = list(BatchPipeline(in_ram, sampler, 50).batches(3))
    stream_batches = list(BatchPipeline(streamed, sampler, 50, window_chunks=2).batches(3))
    ram = np.concatenate([b.indices for b in ram_batches])
    stream = np.concatenate([b.indices for b in stream_batches])
    # Same multiset of samples, fed in a chunk-friendly order; pixels follow their sample.
    np.testing.assert_array_equal(np.sort(ram), np.sort(stream))
    images = store.images[:]
    for b in stream_batches[:3]:
        np.testing.assert_array_equal(b.images, images[b.indices])
    assert Normalisation.from_train(in_ram) == Normalisation.from_train(streamed)


def test_normalisation_uses_train_pixels_only(store, train_set):
    norm = Normalisation.from_train(train_set)
    pixels = store.images[:][store.split_indices("train")].astype(np.float64)
    assert norm.image_mean == pytest.approx(pixels.mean())
    assert norm.image_std == pytest.approx(pixels.std())
    x = norm.images(store.images[:][train_set.indices])
    assert abs(float(x.mean())) < 1e-3 and float(x.std()) == pytest.approx(1.0, rel=1e-3)


def test_augmentation_is_flips_and_rotations():
    rng = np.random.default_rng(0)
    square = rng.integers(0, 256, (200, 8, 8), dtype=np.uint8)
    sizes = np.log(rng.integers(10, 100, (200, 2)).astype(np.float32))
    out, out_sizes = augment_batch(square, sizes, rng)
    variants = []
    for img in square:
        v = [np.rot90(img, k) for k in range(4)]
        variants.append([*v, *(np.fliplr(a) for a in v)])
    assert all(any(np.array_equal(o, v) for v in vs) for o, vs in zip(out, variants, strict=True))
    changed = [not np.array_equal(o, i) for o, i in zip(out, square, strict=True)]
    assert 0.7 < np.mean(changed) < 0.95  # 7 of 8 dihedral transforms change the image
    swapped = ~np.isclose(out_sizes[:, 0], sizes[:, 0])
    np.testing.assert_allclose(out_sizes[swapped], sizes[swapped][:, ::-1])
    # Non-square: a rotation is a transpose resized back, so the shape is kept.
    tall = rng.integers(0, 256, (20, 16, 12), dtype=np.uint8)
    out, _ = augment_batch(tall, np.zeros((20, 2), np.float32), rng)
    assert out.shape == tall.shape and out.dtype == np.uint8


def _dihedral(img: np.ndarray) -> list[np.ndarray]:
    """The 8 flips / 90-degree turns of one image, as the pipeline makes them."""
    turned = turn_images(img[None])[0]
    flips = [lambda a: a, np.fliplr, np.flipud, lambda a: np.flipud(np.fliplr(a))]
    return [f(a) for a in (img, turned) for f in flips]


def test_turn_of_a_non_square_image_is_a_transpose_resized_back():
    rng = np.random.default_rng(0)
    tall = rng.integers(0, 256, (5, 16, 12), dtype=np.uint8)
    out = turn_images(tall)
    assert out.shape == tall.shape and out.dtype == np.uint8

    def bilinear(img, h, w):  # half-pixel centres, edges clamped: pixel by pixel
        def source(n_out, n_in, i):
            c = min(max((i + 0.5) * n_in / n_out - 0.5, 0), n_in - 1)
            lo = int(np.floor(c))
            return lo, min(lo + 1, n_in - 1), c - lo

        out = np.zeros((h, w))
        for i in range(h):
            y0, y1, fy = source(h, img.shape[0], i)
            for j in range(w):
                x0, x1, fx = source(w, img.shape[1], j)
                top = img[y0, x0] * (1 - fx) + img[y0, x1] * fx
                bottom = img[y1, x0] * (1 - fx) + img[y1, x1] * fx
                out[i, j] = top * (1 - fy) + bottom * fy
        return np.clip(np.rint(out), 0, 255)

    for o, t in zip(out, tall, strict=True):
        np.testing.assert_allclose(o, bilinear(t.T.astype(float), 16, 12), atol=1)
    square = tall[:, :12, :]
    np.testing.assert_array_equal(turn_images(square), square.transpose(0, 2, 1))


def test_augmented_batches_hold_a_flip_or_turn_of_each_sample(store, monkeypatch):
    # TrainSet.read turns the images (augment_batch only flips them here): patch it there.
    import plankton_store.ml._trainset as trainset

    calls = []
    real_turn = trainset.turn_images
    monkeypatch.setattr(trainset, "turn_images", lambda x: calls.append(len(x)) or real_turn(x))
    images = store.images[:]
    sizes = np.log(np.stack([store.array("orig_height")[:], store.array("orig_width")[:]], 1))
    for memory_limit in (10**9, 0):  # turned once and kept, or turned on read
        train_set = TrainSet(store, memory_limit=memory_limit)
        calls.clear()
        pipeline = BatchPipeline(train_set, _sampler(train_set, "oversample"), 64, augment=True)
        turned, seen = 0, 0
        for epoch in range(2):
            for b in pipeline.batches(epoch):
                for x, s, i in zip(b.images, b.log_size, b.indices, strict=True):
                    assert any(np.array_equal(x, v) for v in _dihedral(images[i]))
                    if not np.allclose(sizes[i], sizes[i][::-1]):  # not square originally
                        turned += bool(np.allclose(s, sizes[i][::-1]))
                        seen += 1
        assert seen > 100 and 0.3 < turned / seen < 0.7
        if memory_limit:
            assert calls == [len(train_set)]  # every train image, once
        else:
            assert len(calls) >= 2 and calls != [len(train_set)]  # turned as read


def test_smote_blend_is_the_rounded_interpolation():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (50, 8, 6), dtype=np.uint8)
    other = rng.integers(0, 256, (50, 8, 6), dtype=np.uint8)
    step = rng.random(50, dtype=np.float32)
    step[:2] = [0.0, 0.999]
    out = blend_images(base, other, step)
    exact = base + step[:, None, None] * (other.astype(np.float32) - base)
    assert out.dtype == np.uint8
    assert np.abs(out - exact).max() <= 1.0  # step in 1/256ths
    np.testing.assert_array_equal(out[0], base[0])
    extremes = blend_images(np.full((1, 2, 2), 255, np.uint8), np.zeros((1, 2, 2), np.uint8), [0.0])
    np.testing.assert_array_equal(extremes, 255)  # no uint16 overflow at the top
