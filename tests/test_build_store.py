"""build-store end to end on small generated exports, on a real two-process Dask cluster."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr
import zarr
from click.testing import CliRunner
from PIL import Image

from jobs.build_store import build_store_command
from plankton_store.io import COMPUTED_COLUMNS, RESAMPLE, augment, compute_features, read_export
from plankton_store.store import (
    BuildOptions,
    IncompleteStoreError,
    build_store,
    make_plan,
    open_store,
)
from plankton_store.store import format as fmt
from tests.conftest import SMALL_COUNTS, write_flowcam_export

# Small blocks so that even a small export spans many shards and both workers.
OPTIONS = BuildOptions(block_size=32, chunk_size=16, augment_below=30, size=(32, 24))


@pytest.fixture(scope="module")
def built(small_export: Path, tmp_path_factory, dask_client) -> tuple[str, object]:
    path = str(tmp_path_factory.mktemp("built") / "store.zarr")
    summary = build_store(str(small_export), path, OPTIONS, dask_client, progress=False)
    return path, summary


def test_counts_per_class_and_split_equal_the_plan(built, small_export):
    path, summary = built
    export = read_export(small_export)
    plan = make_plan(export.table, OPTIONS, export.rejects, export.rows_read)
    store = open_store(path)
    assert store.counts() == plan.counts() == summary.counts
    assert store.class_names == plan.class_names
    assert store.n_samples == len(plan.samples)
    np.testing.assert_array_equal(store.labels, plan.samples["label"])
    np.testing.assert_array_equal(store.splits, plan.samples["split"])
    np.testing.assert_array_equal(store.array(fmt.OBJID)[:], plan.samples["objid"])


def test_every_row_is_stored_or_rejected_with_a_reason(built, small_export):
    path, summary = built
    store = open_store(path)
    rejects = pd.read_csv(fmt.rejects_path(path))
    originals = store.array(fmt.AUGMENTATION)[:] == 0
    assert int(originals.sum()) + len(rejects) == sum(SMALL_COUNTS.values())
    assert summary.rows_stored + len(summary.rejects) == summary.rows_read
    assert set(rejects["reason"]) == {"class 'artefact' dropped (--drop-class)"}
    assert store.attrs["rows_read"] == summary.rows_read


def test_no_augmented_copy_outside_train_and_no_objid_in_two_splits(built):
    store = open_store(built[0])
    augmentation = store.array(fmt.AUGMENTATION)[:]
    source = store.array(fmt.SOURCE_OBJID)[:]
    objid = store.array(fmt.OBJID)[:]
    copies = augmentation != 0
    assert copies.any(), "the small classes should have been augmented"
    assert (store.splits[copies] == fmt.Split.TRAIN).all()
    # Copies come from train images only.
    train_objids = set(objid[(store.splits == fmt.Split.TRAIN) & ~copies])
    assert set(source[copies]) <= train_objids
    assert (source[~copies] == fmt.NO_SOURCE).all()
    split_of = pd.Series(store.splits[~copies]).groupby(objid[~copies]).nunique()
    assert (split_of == 1).all() and objid[~copies].size == np.unique(objid[~copies]).size


def test_stored_images_equal_a_direct_pillow_decode_and_resize(built, small_export):
    """Pillow, step by step: draft-mode JPEG decode (DCT-domain shrink, as Image.thumbnail
    does) for geometric operations, grayscale, the operation, a bilinear resize."""
    store = open_store(built[0])
    images = store.images[:]
    objid = store.array(fmt.OBJID)[:]
    source = store.array(fmt.SOURCE_OBJID)[:]
    augmentation = store.array(fmt.AUGMENTATION)[:]
    height, width = store.image_size
    side = max(height, width)
    reduced = 0
    with zipfile.ZipFile(small_export / "imgs.zip") as zf:
        for i in range(store.n_samples):
            obj = objid[i] if augmentation[i] == 0 else source[i]
            operation = fmt.AUGMENTATIONS[augmentation[i]]
            with Image.open(io.BytesIO(zf.read(f"imgs/{obj}.jpg"))) as im:
                full_width, full_height = im.size
                if operation in ("none", "flip_lr", "flip_tb", "rot90"):
                    im.draft("L", (side, side))
                reduced += im.size != (full_width, full_height)
                im = augment(im.convert("L"), operation)
                expected = np.asarray(im.resize((width, height), RESAMPLE))
            if operation == "rot90":
                full_width, full_height = full_height, full_width
            assert store.array(fmt.ORIG_HEIGHT)[i] == full_height
            assert store.array(fmt.ORIG_WIDTH)[i] == full_width
            np.testing.assert_array_equal(images[i], expected, err_msg=f"sample {i}")
    assert reduced > 0, "no image exercised the draft-mode decode"


def test_features_follow_their_samples(built, small_export):
    store = open_store(built[0])
    table, columns = store.features("native")
    assert columns == ["area", "mean"]
    frame = pd.read_csv(small_export / "features_native.csv.gz", index_col="objid")
    objid = store.array(fmt.OBJID)[:]
    key = np.where(objid == -1, store.array(fmt.SOURCE_OBJID)[:], objid)
    np.testing.assert_allclose(table[:], frame.loc[key].to_numpy(np.float32))


def test_other_tools_read_the_store(built):
    path = built[0]
    ds = xr.open_zarr(path)
    assert ds[fmt.IMAGES].dims == (fmt.SAMPLE_DIM, fmt.Y_DIM, fmt.X_DIM)
    assert ds[fmt.IMAGES].dtype == np.uint8
    assert ds.attrs[fmt.ROOT_ATTRS_KEY]["format_version"] == fmt.FORMAT_VERSION
    images = da.from_zarr(path, component=fmt.IMAGES)
    np.testing.assert_array_equal(images.compute(), ds[fmt.IMAGES].values)
    group = zarr.open_group(path, mode="r")
    for name in group.array_keys():
        assert group[name].metadata.dimension_names is not None, name
        assert group[name].dtype.kind in "uif", f"{name}: no string arrays"


def test_every_shard_written_once_and_checksummed(built):
    store = open_store(built[0])
    checksums = store.array(fmt.BLOCK_CHECKSUM)[:]
    assert len(checksums) == -(-store.n_samples // OPTIONS.block_size) > 2
    assert (checksums >= fmt.BLOCK_WRITTEN_FLAG).all()
    # Every stored image has dark pixels: no block was lost to a concurrent shard write.
    assert (store.images[:].min(axis=(1, 2)) < 128).all()
    assert (store.array(fmt.ORIG_HEIGHT)[:] > 0).all()


def test_one_and_two_workers_give_identical_arrays(built, small_export, tmp_path):
    from distributed import Client, LocalCluster

    path = str(tmp_path / "one.zarr")
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0") as cluster:
        with Client(cluster) as client:
            build_store(str(small_export), path, OPTIONS, client, progress=False)
    one, two = zarr.open_group(path, mode="r"), zarr.open_group(built[0], mode="r")
    assert sorted(one.array_keys()) == sorted(two.array_keys())
    for name in one.array_keys():
        np.testing.assert_array_equal(one[name][:], two[name][:], err_msg=name)


def test_bad_images_are_rejected_with_reason_and_marked(tmp_path, dask_client):
    good = io.BytesIO()
    Image.new("L", (30, 20), 200).save(good, format="JPEG")
    export = write_flowcam_export(
        tmp_path / "export",
        {"a": 20, "b": 20},
        extra_images={"imgs/1003.jpg": good.getvalue()[:40], "imgs/1004.jpg": b""},
    )
    path = str(tmp_path / "store.zarr")
    summary = build_store(str(export), path, OPTIONS, dask_client, progress=False)
    rejects = pd.read_csv(fmt.rejects_path(path)).set_index("objid")
    assert rejects.loc[1004, "reason"] == "empty file (0 bytes)"
    assert rejects.loc[1003, "reason"].startswith("corrupt or truncated image")
    # The summary counts them by kind (the reason up to its first colon).
    assert summary.reject_reasons() == {"empty file (0 bytes)": 1, "corrupt or truncated image": 1}
    store = open_store(path)
    objid = store.array(fmt.OBJID)[:]
    for bad in (1003, 1004):
        assert (store.splits[objid == bad] == fmt.Split.REJECTED).all()
        assert bad not in store.split_indices("train")
    assert summary.rows_stored + len(summary.rejects) == summary.rows_read == 40
    total = sum(v for c in store.counts().values() for v in c.values())
    assert total == summary.samples == int((store.splits >= 0).sum())


def test_pad_mode_keeps_aspect_ratio(tmp_path, dask_client):
    export = tmp_path / "export"
    export.mkdir()
    (export / "meta.csv").write_text("objid,level2\n1,wide\n2,wide\n3,wide\n")
    wide = Image.new("L", (100, 20), 230)
    wide.paste(0, (10, 5, 90, 15))  # a dark bar inside a wide light image
    with zipfile.ZipFile(export / "imgs.zip", "w") as zf:
        for objid in (1, 2, 3):
            buf = io.BytesIO()
            wide.save(buf, format="PNG")
            zf.writestr(f"imgs/{objid}.png", buf.getvalue())
    options = BuildOptions(
        size=(40, 40), resize_mode="pad", augment_below=0, block_size=8, chunk_size=8
    )
    path = str(tmp_path / "pad.zarr")
    build_store(str(export), path, options, dask_client, progress=False)
    image = open_store(path).images[0]
    # 100x20 scaled by 0.4 is 40x8, centred: rows 16-23 hold the image, the rest is padding
    # in the image's own background grey.
    assert (image[:16] == 230).all() and (image[24:] == 230).all()
    assert (image[16:24] < 128).any()
    assert image.shape == (40, 40) and image.dtype == np.uint8


def test_incomplete_store_is_refused(tmp_path, small_export, dask_client):
    path = str(tmp_path / "store.zarr")
    build_store(str(small_export), path, OPTIONS, dask_client, progress=False)
    group = zarr.open_group(path, mode="r+")
    attrs = dict(group.attrs[fmt.ROOT_ATTRS_KEY])
    attrs["complete"] = False
    group.attrs[fmt.ROOT_ATTRS_KEY] = attrs
    zarr.consolidate_metadata(path)
    with pytest.raises(IncompleteStoreError, match="--resume"):
        open_store(path)
    assert open_store(path, allow_incomplete=True).n_samples > 0


def test_cli_builds_and_refuses_to_overwrite(tmp_path, small_export):
    path = tmp_path / "cli.zarr"
    args = [
        str(small_export),
        str(path),
        "--workers",
        "1",
        "--block-size",
        "64",
        "--chunk-size",
        "32",
        "--size",
        "16x12",
        "--resize",
        "pad",
    ]
    result = CliRunner().invoke(build_store_command, args)
    assert result.exit_code == 0, result.output
    assert "Rows read 196 = stored 190 + rejected 6" in result.output
    assert open_store(str(path)).image_size == (16, 12)
    again = CliRunner().invoke(build_store_command, args)
    assert again.exit_code != 0 and "--overwrite" in again.output
    bad = CliRunner().invoke(build_store_command, [*args, "--overwrite", "--size", "big"])
    assert bad.exit_code == 2 and "HEIGHTxWIDTH" in bad.output


def test_computed_features_describe_each_full_resolution_image(tmp_path, dask_client):
    bad = {"imgs/1003.jpg": b"not a jpeg"}
    export = write_flowcam_export(
        tmp_path / "export", {"a": 30, "b": 12}, extra_images=bad, with_features=False
    )
    path = str(tmp_path / "store.zarr")
    options = BuildOptions(**{**OPTIONS.to_attrs(), "compute_features": True})
    build_store(str(export), path, options, dask_client, progress=False, echo=lambda _: None)
    store = open_store(path)
    assert store.feature_tables == [fmt.COMPUTED_FEATURES]
    table, columns = store.features(fmt.COMPUTED_FEATURES)
    assert columns == list(COMPUTED_COLUMNS)
    values = table[:]
    objid = store.array(fmt.OBJID)[:]
    source = np.where(objid == -1, store.array(fmt.SOURCE_OBJID)[:], objid)
    operations = store.array(fmt.AUGMENTATION)[:]
    assert (operations > 0).any(), "no augmented copy exercised"
    with zipfile.ZipFile(export / "imgs.zip") as zf:
        for i in range(store.n_samples):
            if source[i] == 1003:
                assert np.isnan(values[i]).all()  # rejected image: no features
                continue
            im = Image.open(io.BytesIO(zf.read(f"imgs/{source[i]}.jpg"))).convert("L")
            im = augment(im, fmt.AUGMENTATIONS[operations[i]])
            expected = compute_features(np.asarray(im), descriptors=True)
            np.testing.assert_allclose(
                values[i], [expected[c] for c in COMPUTED_COLUMNS], rtol=1e-5, err_msg=str(i)
            )
    area = values[:, columns.index("area")]
    assert (area[source != 1003] > 0).all()
