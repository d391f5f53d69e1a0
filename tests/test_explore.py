"""explore on a hand-made export (with missing labels), an image folder and a store."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from jobs.explore import explore_command
from plankton_store.report import EXPLORE_FILES, NO_LABEL, explore_export, write_exploration
from plankton_store.store import format as fmt
from plankton_store.store import open_store
from tests.conftest import write_flowcam_export


@pytest.fixture(scope="module")
def export_with_gaps(tmp_path_factory):
    """Three classes and two rows without a label, plus one corrupt image."""
    root = tmp_path_factory.mktemp("explore") / "export"
    write_flowcam_export(root, {"copepod": 6, "diatom": 3, "egg": 1, "": 2}, seed=2)
    with zipfile.ZipFile(root / "imgs.zip", "a") as zf:
        zf.writestr("imgs/9999.jpg", b"garbage")
    meta = (root / "meta.csv").read_text()
    (root / "meta.csv").write_text(meta + "9999,validated,egg_fine,egg\n")
    return root


def test_export_report_counts_sizes_and_files(export_with_gaps, tmp_path):
    ex = explore_export(export_with_gaps, per_class=4)
    assert ex.counts["images"].to_dict() == {"copepod": 6, "diatom": 3, NO_LABEL: 2, "egg": 2}
    assert ex.missing_labels == 2 and ex.unreadable == 1
    # Sizes are those of the image files, the corrupt one left out.
    with zipfile.ZipFile(export_with_gaps / "imgs.zip") as zf:
        sizes = {}
        for name in zf.namelist():
            try:
                with Image.open(io.BytesIO(zf.read(name))) as im:
                    sizes[int(name[5:-4])] = (im.height, im.width)
            except OSError:
                pass
    assert len(ex.sizes) == len(sizes) == 12
    assert sorted(zip(ex.sizes["height"], ex.sizes["width"], strict=True)) == sorted(sizes.values())
    assert (ex.sizes["area"] == ex.sizes["height"] * ex.sizes["width"]).all()
    assert {k: len(v) for k, v in ex.examples.items()} == {
        "copepod": 4,
        "diatom": 3,
        NO_LABEL: 2,
        "egg": 1,  # its second image is the corrupt one
    }
    out = write_exploration(ex, tmp_path / "report")
    for name in EXPLORE_FILES:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    for name in EXPLORE_FILES:
        if name.endswith(".png"):
            with Image.open(out / name) as im:
                assert im.format == "PNG"
    counts = pd.read_csv(out / "class_counts.csv", keep_default_na=False).set_index("class")
    assert counts["images"].to_dict() == ex.counts["images"].to_dict()
    table = pd.read_csv(out / "sizes.csv", keep_default_na=False).set_index("label")
    assert table.loc["ALL", "area_count"] == 12
    assert table.loc["copepod", "height_50%"] == pytest.approx(
        ex.sizes[ex.sizes["label"] == "copepod"]["height"].median()
    )
    md = (out / "report.md").read_text()
    assert (
        "Missing labels: 2" in md and "| copepod | 6 |" in md and "![Examples](examples.png)" in md
    )


def test_store_report_through_the_cli(small_store, tmp_path):
    out = tmp_path / "store-report"
    result = CliRunner().invoke(explore_command, [small_store, "--out", str(out)])
    assert result.exit_code == 0, result.output
    store = open_store(small_store)
    originals = store.array(fmt.AUGMENTATION)[:] == 0
    counts = pd.read_csv(out / "class_counts.csv").set_index("class")
    labels = store.labels[originals]
    expected = {n: int((labels == i).sum()) for i, n in enumerate(store.class_names)}
    assert counts["images"].to_dict() == expected
    for split in ("train", "val", "test"):
        want = {n: c[split] for n, c in store.counts().items()}
        if split != "train":  # train also counts the augmented copies in the store attributes
            assert counts[split].to_dict() == want
    assert (counts["train"] + counts["val"] + counts["test"] == counts["images"]).all()
    sizes = pd.read_csv(out / "sizes.csv").set_index("label")
    assert sizes.loc["ALL", "height_max"] == store.array(fmt.ORIG_HEIGHT)[:][originals].max()
    for name in EXPLORE_FILES:
        assert (out / name).is_file(), name


def test_unlabelled_image_folder(tmp_path):
    root = tmp_path / "flat"
    root.mkdir()
    for i in range(3):
        Image.fromarray(np.full((10 + i, 20, 1), 200, np.uint8)[:, :, 0]).save(root / f"{i}.png")
    ex = explore_export(root)
    assert ex.counts["images"].to_dict() == {NO_LABEL: 3} and ex.missing_labels == 3
    assert sorted(ex.sizes["height"]) == [10, 11, 12]
    write_exploration(ex, tmp_path / "out")
    assert (tmp_path / "out" / "examples.png").is_file()
