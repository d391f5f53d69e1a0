"""The hashed planner: the same plan whatever the partitioning, the sequential planner's sizes.

Small tables with the memory-relevant paths forced: partitions of a few hundred rows, tiny
store-order buckets and histograms of 1-3 key bits, so that the boundary-bin second pass
and the bucket shuffle do real work.
"""

from __future__ import annotations

import functools
import shutil

import numpy as np
import pandas as pd
import pytest
import zarr
from click.testing import CliRunner

from plankton_store.store import (
    BuildOptions,
    Split,
    make_plan,
    open_store,
    plan_partitioned,
    plan_table,
)
from plankton_store.store import format as fmt
from plankton_store.store._plan_keys import boundary_bins, row_base, row_key, thresholds
from plankton_store.store.format import NO_SOURCE, Attr

N_ROWS = 4000
#: Hashed-planner options: rare classes augmented, one class capped, 'artefact' dropped.
OPTIONS = BuildOptions(max_per_class=900, augment_below=300, planner="hashed")
#: Forced small: tiny store-order buckets, 2-bit histograms.
SMALL = dict(bucket_rows=97, bits=2)


def table(n: int = N_ROWS, seed: int = 1) -> pd.DataFrame:
    """Labels of uneven classes, blank and missing ones, a dropped class, a tiny class."""
    rng = np.random.default_rng(seed)
    names = ["detritus", "copepod", "diatom", "egg", " ", "artefact", "rare", "single"]
    p = np.array([0.5, 0.2, 0.1, 0.1, 0.03, 0.03, 0.04, 0.0])
    labels = pd.Series(rng.choice(names, n, p=p / p.sum()), dtype="string")
    labels[rng.random(n) < 0.02] = pd.NA
    labels[n // 2] = "single"
    objid = rng.permutation(n).astype(np.int64) * 11 + 3
    images = pd.Series([f"imgs/{i}.jpg" for i in objid], dtype="string")
    return pd.DataFrame({"objid": objid, "label": labels, "image": images})


def _rows(rejects: pd.DataFrame) -> pd.DataFrame:
    return rejects.assign(objid=rejects["objid"].astype("int64")).sort_values("objid")


@pytest.fixture(scope="module")
def plans():
    t = table()
    return t, {
        parts: plan_table(t, OPTIONS, partition_rows=-(-N_ROWS // parts), **SMALL)
        for parts in (1, 3, 7)
    }


def test_same_samples_and_rejects_for_1_3_and_7_partitions(plans):
    _, by_parts = plans
    one = by_parts[1]
    assert len(one.samples) > 1000 and len(one.rejects) > 1000
    for parts in (3, 7):
        other = by_parts[parts]
        pd.testing.assert_frame_equal(other.samples, one.samples)  # every column, store order
        pd.testing.assert_frame_equal(
            _rows(other.rejects).reset_index(drop=True), _rows(one.rejects).reset_index(drop=True)
        )
        assert other.notes == one.notes and other.class_names == one.class_names


def test_dask_partitions_give_the_same_plan_as_one_process(plans, dask_client, tmp_path):
    t, by_parts = plans
    rows = t[["objid", "label"]].assign(row=np.arange(len(t)))
    # Partitions as callables (made inside the task) and as futures of DataFrames.
    cuts = [0, 5, 1300, 1301, 2900, N_ROWS]
    ranges = [slice(a, b) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    made = [functools.partial(rows.iloc.__getitem__, r) for r in ranges]
    futures = dask_client.scatter([rows.iloc[r] for r in ranges])
    interleaved = dask_client.scatter([rows.iloc[i::3] for i in (2, 0, 1)])  # rows mixed
    expected = by_parts[1].samples
    for i, parts in enumerate((made, futures, interleaved)):
        out = str(tmp_path / f"plan{i}")
        planned = plan_partitioned(parts, OPTIONS, out, dask_client, **SMALL)
        samples = planned.samples()
        for column in ("objid", "label", "split", "source_objid", "augmentation", "row"):
            np.testing.assert_array_equal(samples[column], expected[column], err_msg=column)
        assert planned.n_samples == len(expected) and len(planned.pieces) > 3
        assert sum(planned.reject_counts.values()) == len(by_parts[1].rejects)
        assert not (tmp_path / f"plan{i}" / "_work").exists()


def test_same_seed_same_plan_other_seed_other_plan(plans):
    t, by_parts = plans
    again = plan_table(t, OPTIONS, partition_rows=N_ROWS // 2, **SMALL)
    pd.testing.assert_frame_equal(again.samples, by_parts[1].samples)
    other = plan_table(t, BuildOptions(**{**OPTIONS.to_attrs(), "seed": 1}), **SMALL)
    assert len(other.samples) == len(again.samples)
    assert not np.array_equal(other.samples["objid"], again.samples["objid"])
    assert set(other.samples["objid"]) != set(again.samples["objid"])  # another cap


def test_sizes_equal_the_sequential_planners(plans):
    t, by_parts = plans
    hashed = by_parts[7]
    sequential = make_plan(t, BuildOptions(**{**OPTIONS.to_attrs(), "planner": "sequential"}))
    assert hashed.class_names == sequential.class_names
    assert hashed.counts() == sequential.counts()  # split sizes, copies, the cap
    assert (
        hashed.rejects["reason"].value_counts().to_dict()
        == sequential.rejects["reason"].value_counts().to_dict()
    )
    assert "class 'detritus' capped at 900 (--max-per-class)" in set(hashed.rejects["reason"])
    assert hashed.notes == sequential.notes and hashed.notes  # the tiny class is named


def test_every_row_is_stored_once_or_rejected(plans):
    t, by_parts = plans
    plan = by_parts[3]
    originals = plan.samples[plan.samples["augmentation"] == 0]
    rows = np.concatenate([originals["row"].to_numpy(), t.index[t["objid"].isin(
        plan.rejects["objid"].astype("int64"))].to_numpy()])  # fmt: skip
    assert np.array_equal(np.sort(rows), np.arange(len(t)))
    assert len(plan.samples) - (plan.samples["augmentation"] > 0).sum() + len(plan.rejects) == (
        plan.rows_read
    )
    np.testing.assert_array_equal(
        originals["objid"].to_numpy(), t["objid"].to_numpy()[originals["row"]]
    )


def test_copies_come_from_train_rows_only_and_stay_in_train(plans):
    _, by_parts = plans
    s = by_parts[7].samples
    copies = s[s["augmentation"] > 0]
    assert len(copies) > 100
    assert (copies["split"] == Split.TRAIN).all() and (copies["objid"] == -1).all()
    train = s[(s["augmentation"] == 0) & (s["split"] == Split.TRAIN)]
    assert set(copies["source_objid"]) <= set(train["objid"])
    assert (s.loc[s["augmentation"] == 0, "source_objid"] == NO_SOURCE).all()
    # No pair of (image, operation) twice; store order: train, val, test.
    assert not copies.duplicated(["source_objid", "augmentation"]).any()
    assert (np.diff(s["split"].to_numpy()) >= 0).all()


def test_thresholds_from_coarse_histograms_equal_a_full_sort():
    rng = np.random.default_rng(3)
    label = rng.integers(0, 3, 500)
    row = np.arange(500)
    key = row_key(row_base(7, rng.integers(0, 50, 500)), 1)  # duplicated objids: ties
    for bits in (1, 3, 8):
        bins = (key >> np.uint64(64 - bits)).astype(np.int64)
        hist = np.zeros((3, 1 << bits), dtype=np.int64)
        np.add.at(hist, (label, bins), 1)
        sizes = hist.sum(axis=1)
        ranks = np.stack([np.zeros(3, int), sizes // 3, sizes - 1, sizes], axis=1)
        where = boundary_bins(hist, ranks)
        top_key, top_row = thresholds(
            hist, ranks, where, {"label": label, "bin": bins, "key": key, "row": row}
        )
        for c in range(3):
            inside = np.flatnonzero(label == c)
            ordered = inside[np.lexsort((row[inside], key[inside]))]
            for j, r in enumerate(ranks[c]):
                below = (key[inside] < top_key[c, j]) | (
                    (key[inside] == top_key[c, j]) & (row[inside] < top_row[c, j])
                )
                assert set(inside[below]) == set(ordered[:r])


def test_histogram_bits_do_not_change_the_plan(plans):
    t, by_parts = plans
    coarse = plan_table(t, OPTIONS, partition_rows=500, bucket_rows=10_000, bits=1)
    pd.testing.assert_frame_equal(coarse.samples, by_parts[1].samples)


def test_build_store_with_the_hashed_planner_verifies(tmp_path, dask_client):
    from jobs.build_store import build_store_command
    from jobs.verify import verify_command
    from plankton_store.demo import make_demo_export
    from plankton_store.io import read_export

    export = make_demo_export(tmp_path / "export", scale=0.01, seed=0, workers=2, progress=False)
    store = str(tmp_path / "hashed.zarr")
    args = [str(export), store, "--planner", "hashed", "--size", "16x12", "--workers", "2"]
    built = CliRunner().invoke(build_store_command, [*args, "--max-per-class", "40"])
    assert built.exit_code == 0, built.output
    assert CliRunner().invoke(verify_command, [store]).exit_code == 0
    st = open_store(store)
    options = BuildOptions.from_attrs(st.attrs[Attr.BUILD_OPTIONS])
    assert options.planner == "hashed"
    exp = read_export(str(export))
    planned = plan_table(exp.table, options, exp.rejects, exp.rows_read)
    assert st.attrs[Attr.COUNTS] == planned.counts()
    np.testing.assert_array_equal(st.array(fmt.OBJID)[: st.n_samples], planned.samples["objid"])
    # --resume without --planner replans with the recorded hashed planner: the same blocks.
    resumed = str(tmp_path / "resumed.zarr")
    shutil.copytree(store, resumed)
    group = zarr.open_group(resumed, mode="r+")
    group.attrs[fmt.ROOT_ATTRS_KEY] = {**group.attrs[fmt.ROOT_ATTRS_KEY], Attr.COMPLETE: False}
    last = (st.n_samples - 1) // st.block_size
    group[fmt.BLOCK_CHECKSUM][last] = 0  # the last block never written
    group[fmt.OBJID][last * st.block_size : st.n_samples] = 0
    again = CliRunner().invoke(
        build_store_command, [str(export), resumed, "--resume", "--workers", "2"]
    )
    assert again.exit_code == 0, again.output
    np.testing.assert_array_equal(open_store(resumed).array(fmt.OBJID)[:], st.array(fmt.OBJID)[:])


def test_ingest_into_a_hashed_store_plans_with_the_hashed_planner(tmp_path, dask_client):
    from plankton_store.io import read_export
    from plankton_store.store import build_store, ingest_store
    from tests.conftest import write_flowcam_export
    from tests.test_ingest import _subset

    full = write_flowcam_export(tmp_path / "full", {"detritus": 60, "copepod": 30, "new": 12})
    first = _subset(full, tmp_path / "a", lambda i, lab: i < 1050 and lab != "new")
    second = _subset(full, tmp_path / "b", lambda i, lab: i >= 1050 or lab == "new")
    options = BuildOptions(block_size=32, chunk_size=16, augment_below=30, size=(16, 12))
    store = str(tmp_path / "s.zarr")
    quiet = dict(progress=False, echo=lambda _: None)
    build_store(str(first), store, BuildOptions(**{**options.to_attrs(), "planner": "hashed"}),
                dask_client, **quiet)  # fmt: skip
    summary = ingest_store(store, str(second), dask_client, **quiet)
    recorded = BuildOptions.from_attrs(open_store(store).attrs[Attr.BUILD_OPTIONS])
    exp = read_export(str(second))
    expected = plan_table(exp.table, recorded, exp.rejects, exp.rows_read)
    assert summary.counts == expected.counts() and summary.new_classes == ["new"]
    objid = open_store(store).array(fmt.OBJID)[summary.start : summary.stop]
    np.testing.assert_array_equal(objid, expected.samples["objid"])
    sequential = make_plan(
        exp.table, BuildOptions(**{**recorded.to_attrs(), "planner": "sequential"})
    )
    assert not np.array_equal(objid, sequential.samples["objid"])


def test_all_rejected_and_empty_tables_plan_nothing():
    t = table(60).assign(label=pd.Series(["artefact", " ", pd.NA] * 20, dtype="string"))
    for rows in (t, t.iloc[:0]):
        hashed = plan_table(rows, OPTIONS, partition_rows=7, **SMALL)
        sequential = make_plan(rows, OPTIONS)
        assert len(hashed.samples) == 0 and hashed.class_names == [] and hashed.counts() == {}
        assert sorted(map(tuple, hashed.rejects.astype(str).to_numpy())) == sorted(
            map(tuple, sequential.rejects.astype(str).to_numpy())
        )
        assert len(hashed.rejects) == len(rows) == hashed.rows_read


def test_rows_with_the_same_objid_are_told_apart_by_their_row(tmp_path):
    t = table(1500)
    t["objid"] = np.arange(len(t)) // 4  # 4 rows share each objid, hence each key
    rows = t[["objid", "label"]].assign(row=np.arange(len(t)))
    cuts = {"one": [rows], "interleaved": [rows.iloc[i::5] for i in (3, 1, 4, 0, 2)]}
    plans = {k: plan_partitioned(p, OPTIONS, str(tmp_path / k), **SMALL) for k, p in cuts.items()}
    s = plans["one"].samples()
    pd.testing.assert_frame_equal(plans["interleaved"].samples(), s)
    assert not s.duplicated(["row", "augmentation"]).any()
    assert s.loc[s["augmentation"] == 0, "objid"].duplicated().any()  # one objid, 2 samples
