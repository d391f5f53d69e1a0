"""The demo export read back through the FlowCam reader, as a user would use it."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from jobs.cli import main
from plankton_store.demo import expected_level2_counts
from plankton_store.io import read_export


@pytest.fixture(scope="module")
def demo_002(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "d"
    result = CliRunner().invoke(main, ["make-demo-data", str(out), "--scale", "0.02"])
    assert result.exit_code == 0, result.output
    return out


def test_reader_gives_the_expected_count_per_class(demo_002):
    export = read_export(demo_002)
    assert export.rejects.empty and export.rows_read == len(export.table)
    counts = export.table["label"].value_counts(dropna=False)
    expected = expected_level2_counts(0.02, include_empty=False)
    assert {k: int(counts[k]) for k in expected} == expected
    assert int(export.table["label"].isna().sum()) == expected_level2_counts(0.02)[""]
    assert sorted(export.features) == ["native"]
    assert {"area", "esd", "perim.", "circ."} <= set(export.features["native"].columns)
    level1 = read_export(demo_002, label_column="level1").table
    assert level1["label"].nunique() > len(expected)


def test_demo_export_builds_into_a_store(demo_002, tmp_path):
    store = tmp_path / "demo.zarr"
    result = CliRunner().invoke(
        main, ["build-store", str(demo_002), str(store), "--workers", "2", "--size", "32x24"]
    )
    assert result.exit_code == 0, result.output
    assert "rejected" in result.output and "images/s" in result.output
    from plankton_store.store import open_store

    opened = open_store(str(store))
    assert len(opened.class_names) == 37  # 39 classes less the two artefact classes
    assert opened.feature_tables == ["native"]
