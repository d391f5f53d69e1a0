"""Opt-in test of the FlowCam reader on the real ndsb-dev export (skipped when absent).

The export lives outside the repository, in ``<repo>/../shared/data/ndsb-dev``; the
environment variable ``PLANKTON_NDSB_DEV`` points elsewhere.
"""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest
from PIL import Image

from plankton_store.io import read_export
from tests.conftest import NDSB_DEV

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(not NDSB_DEV.is_dir(), reason=f"real export not found at {NDSB_DEV}"),
]

ROWS = 21_233


def test_real_export_level2() -> None:
    export = read_export(NDSB_DEV)
    assert export.layout == "flowcam"
    assert export.rows_read == ROWS
    assert len(export.table) == ROWS
    assert export.rejects.empty, export.rejects.head(20).to_string()
    t = export.table
    assert t["objid"].is_unique and t["objid"].dtype == np.int64
    assert t["label"].notna().all()
    assert t["label"].nunique() == 35
    assert {"copepod", "chaetognath", "detritus"} <= set(t["label"])
    assert list(t.columns) == ["objid", "label", "image", "level1", "level2"]
    assert (t["image"] == "imgs/" + t["objid"].astype(str) + ".jpg").all()
    assert export.features == {}  # this export has no feature tables
    assert read_export(NDSB_DEV).fingerprint == export.fingerprint

    fetcher = pickle.loads(pickle.dumps(export.fetcher))
    for i in (0, 1, len(t) // 2, len(t) - 1):
        with Image.open(io.BytesIO(fetcher.fetch(t["image"][i]))) as im:
            im.load()
            assert im.format == "JPEG"
            assert 21 <= min(im.size) and max(im.size) <= 428
            gray = np.asarray(im.convert("L"))
            assert gray.dtype == np.uint8 and gray.shape == im.size[::-1]


def test_real_export_level1() -> None:
    export = read_export(NDSB_DEV, label_column="level1")
    assert len(export.table) == ROWS and export.rejects.empty
    assert export.table["label"].nunique() == 121
    # level1 classes refine level2 groups: the group is the first word of the class.
    t = export.table
    assert (t["label"].str.split("_").str[0] == t["level2"]).all()
