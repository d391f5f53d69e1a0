"""EcoTaxa exports: tab-separated meta tables."""

from __future__ import annotations

from pathlib import Path

from plankton_store.io import read_source
from tests.conftest import write_flowcam_export


def test_read_source_sees_labels_in_a_tab_separated_meta(tmp_path: Path) -> None:
    root = write_flowcam_export(tmp_path / "exp", {"copepod": 3, "diatom": 2}, with_features=False)
    meta = root / "meta.csv"
    meta.write_text(meta.read_text().replace(",", "\t"))
    export, has_labels = read_source(root, label_column="level2")
    assert has_labels
    assert sorted(export.table["label"].astype(str)) == ["copepod"] * 3 + ["diatom"] * 2
