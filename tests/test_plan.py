"""The build plan: filtering, capping, splitting before augmentation, determinism."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from plankton_store.store import BuildOptions, make_plan
from plankton_store.store._plan import COPY_OBJID
from plankton_store.store.format import AUGMENTATIONS, NO_SOURCE, Split


def table(counts: dict[str, int], empty: int = 0) -> pd.DataFrame:
    labels = [name for name, n in counts.items() for _ in range(n)] + [pd.NA] * empty
    return pd.DataFrame(
        {
            "objid": np.arange(100, 100 + len(labels), dtype=np.int64),
            "label": pd.array(labels, dtype="string"),
            "image": [f"imgs/{100 + i}.jpg" for i in range(len(labels))],
        }
    )


def test_drops_caps_and_rejects_with_reasons():
    rows = table({"detritus": 50, "artefact": 5, "copepod": 20}, empty=3)
    plan = make_plan(rows, BuildOptions(max_per_class=30, augment_below=0))
    reasons = plan.rejects["reason"].value_counts().to_dict()
    assert reasons == {
        "class 'detritus' capped at 30 (--max-per-class)": 20,
        "class 'artefact' dropped (--drop-class)": 5,
        "no level2 label": 3,
    }
    assert plan.class_names == ["copepod", "detritus"]
    assert len(plan.samples) + len(plan.rejects) == plan.rows_read == len(rows)
    assert set(plan.samples["objid"]).isdisjoint(set(plan.rejects["objid"]))


def test_split_is_stratified_and_small_classes_are_handled():
    rows = table({"big": 100, "three": 3, "two": 2, "one": 1})
    plan = make_plan(rows, BuildOptions(augment_below=0))
    counts = plan.counts()
    assert counts["big"] == {"train": 70, "val": 10, "test": 20}
    assert counts["three"] == {"train": 1, "val": 1, "test": 1}
    assert counts["two"] == {"train": 1, "val": 0, "test": 1}
    assert counts["one"] == {"train": 1, "val": 0, "test": 0}
    assert any("one (1/0/0)" in note and "two (1/0/1)" in note for note in plan.notes)
    # Store order: train, then val, then test.
    assert (np.diff(plan.samples["split"].to_numpy()) >= 0).all()


def test_copies_only_of_train_images_and_only_in_train():
    rows = table({"big": 200, "rare": 10})
    plan = make_plan(rows, BuildOptions(augment_below=40))
    samples = plan.samples
    copies = samples[samples["augmentation"] != 0]
    originals = samples[samples["augmentation"] == 0]
    rare = plan.class_names.index("rare")
    train_rare = originals[(originals["label"] == rare) & (originals["split"] == Split.TRAIN)]
    assert len(train_rare) + len(copies) == 40
    assert (copies["split"] == Split.TRAIN).all()
    assert set(copies["source_objid"]) <= set(train_rare["objid"])
    assert (copies["objid"] == COPY_OBJID).all() and (originals["source_objid"] == NO_SOURCE).all()
    # At most one copy per (image, operation), operations spread over the images.
    assert not copies.duplicated(["source_objid", "augmentation"]).any()
    assert copies["augmentation"].between(1, len(AUGMENTATIONS) - 1).all()
    assert (
        copies.groupby("source_objid").size().max() - copies.groupby("source_objid").size().min()
        <= 1
    )


def test_augmentation_limited_to_one_copy_per_operation():
    plan = make_plan(table({"rare": 4}), BuildOptions(augment_below=1000))
    copies = (plan.samples["augmentation"] != 0).sum()
    assert copies == 2 * 7  # 4 images: 2 train, each gets every one of the 7 operations
    assert any("stay under --augment-below" in note for note in plan.notes)


def test_plan_is_deterministic_for_a_seed():
    rows = table({"a": 300, "b": 40, "c": 7})
    first = make_plan(rows, BuildOptions(seed=5, max_per_class=100))
    again = make_plan(rows, BuildOptions(seed=5, max_per_class=100))
    other = make_plan(rows, BuildOptions(seed=6, max_per_class=100))
    pd.testing.assert_frame_equal(first.samples, again.samples)
    pd.testing.assert_frame_equal(first.rejects, again.rejects)
    assert not first.samples["objid"].equals(other.samples["objid"])


def test_blocks_cover_every_sample_once():
    plan = make_plan(table({"a": 70}), BuildOptions(augment_below=0))
    blocks = plan.blocks(16)
    assert blocks[0] == (0, 16) and blocks[-1] == (64, 70)
    assert sum(stop - start for start, stop in blocks) == len(plan.samples)


@pytest.mark.parametrize(
    "kwargs",
    [{"test_fraction": 0.6, "val_fraction": 0.5}, {"max_per_class": 0}, {"block_size": 100},
     {"augmentations": ("twirl",)}],
)  # fmt: skip
def test_invalid_options_are_refused(kwargs):
    with pytest.raises(ValueError):
        BuildOptions(**kwargs)


@pytest.mark.parametrize(
    ("n_samples", "block"),
    [(100, 512), (6_000, 512), (36_000, 2560), (65_536, 4096), (245_369, 4096)],
)
def test_automatic_block_size_gives_enough_blocks_for_the_workers(n_samples, block):
    options = BuildOptions().resolved(n_samples)
    assert options.block_size == block and block % options.chunk_size == 0
    assert options.chunk_size == 512
    assert BuildOptions(block_size=1024).resolved(n_samples).block_size == 1024
