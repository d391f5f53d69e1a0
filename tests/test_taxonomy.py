"""Taxonomy regrouping: --taxonomy-map and --lineage-level on every input kind."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from jobs.build_store import build_store_command
from plankton_store.demo import make_demo_export, taxonomy_table
from plankton_store.io import (
    Taxonomy,
    TaxonomyError,
    class_lineages,
    read_export,
    read_image_folder,
    read_taxonomy_map,
    regroup,
)
from tests.conftest import SMALL_STORE_OPTIONS, jpeg, shape_image

#: Small enough to draw in a second; every class has at least 3 rows.
DEMO_SCALE = 0.002


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "export"
    return make_demo_export(out, scale=DEMO_SCALE, seed=0, workers=1, progress=False)


def write_map(path: Path, rows: list[tuple[str, str]], header: str = "from,to") -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        f.write(header + "\n")
        csv.writer(f, lineterminator="\n").writerows(rows)
    return path


def level1_to_level2() -> list[tuple[str, str]]:
    """The demo's taxo.csv as a map: how the seed's level2 groups its level1 classes."""
    return [(t["level1"], t["level2"]) for t in taxonomy_table()]


# --- the map file ---------------------------------------------------------------------------


def test_a_map_reads_with_bom_blank_lines_extra_columns_and_empty_to(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_bytes("\ufeffnote,From,to\nx, a ,A\n\n,b,\ny,c,A\n".encode())
    assert read_taxonomy_map(path) == (("a", "A"), ("b", ""), ("c", "A"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("old,new\na,b\n", r"m\.csv, line 1: .*from,to; found old,new"),
        ("from,to\na,A\nb,B\na,C\n", r"m\.csv, line 4: 'a' is mapped again \(first on line 2\)"),
        ("from,to\na,A,extra\n", r"m\.csv, line 2: 3 fields, the header has 2"),
        ("from,to\n ,A\n", r"m\.csv, line 2: empty 'from'"),
        ("", r"m\.csv, line 1: .*found nothing"),
    ],
)
def test_a_bad_map_names_the_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "m.csv"
    path.write_text(text)
    with pytest.raises(TaxonomyError, match=message):
        read_taxonomy_map(path)


def test_the_cli_refuses_a_bad_map_before_any_work(demo: Path, tmp_path: Path) -> None:
    bad = write_map(tmp_path / "bad.csv", [("a", "A"), ("a", "B")])
    store = tmp_path / "s.zarr"
    result = CliRunner().invoke(
        build_store_command, [str(demo), str(store), "--taxonomy-map", str(bad)]
    )
    assert result.exit_code == 2
    assert "bad.csv, line 3: 'a' is mapped again" in result.output
    assert not store.exists()


# --- regroup on each input kind -------------------------------------------------------------


def test_the_level1_to_level2_map_gives_the_level2_labels_row_by_row(
    demo: Path, tmp_path: Path
) -> None:
    mapping = tuple(level1_to_level2())
    regrouped = regroup(read_export(demo, "level1"), Taxonomy(mapping=mapping, map_name="t.csv"))
    level2 = read_export(demo, "level2")
    assert regrouped.table["objid"].tolist() == level2.table["objid"].tolist()
    pd.testing.assert_series_equal(regrouped.table["label"], level2.table["label"])
    assert len(regrouped.rejects) == 0


def test_a_map_merges_and_drops_classes_with_their_reason(demo: Path, tmp_path: Path) -> None:
    export = read_export(demo, "level2")
    before = export.table["label"].value_counts()
    mapping = (("Calanoida", "x"), ("artefact", ""), ("badfocus (artefact)", ""))
    mapping += (("Copepoda", "crustacea"), ("nauplii (Crustacea)", "crustacea"))
    out = regroup(export, Taxonomy(mapping=mapping, map_name="groups.csv"))
    after = out.table["label"].value_counts()
    assert after["crustacea"] == before["Copepoda"] + before["nauplii (Crustacea)"]
    assert "x" not in after  # Calanoida is a level1 name: no level2 row has it
    for gone in ("Copepoda", "nauplii (Crustacea)", "artefact", "badfocus (artefact)"):
        assert gone not in after
    untouched = before.drop(["Copepoda", "nauplii (Crustacea)", "artefact", "badfocus (artefact)"])
    pd.testing.assert_series_equal(after.drop("crustacea").sort_index(), untouched.sort_index())
    reasons = out.rejects["reason"].value_counts()
    assert reasons["class 'artefact' dropped by taxonomy map groups.csv"] == before["artefact"]
    assert (
        reasons["class 'badfocus (artefact)' dropped by taxonomy map groups.csv"]
        == before["badfocus (artefact)"]
    )
    assert len(out.table) + len(out.rejects) == out.rows_read == export.rows_read
    # The rejected rows are exactly the dropped ones, with their objid and image.
    dropped = export.table[export.table["label"].isin(["artefact", "badfocus (artefact)"])]
    assert sorted(out.rejects["objid"].astype(int)) == sorted(dropped["objid"])


def expected_cut(lineage: str, level: int) -> str:
    return lineage.split("/")[:level][-1]


def test_lineage_cut_on_a_flowcam_meta_csv(demo: Path) -> None:
    export = read_export(demo, "level1")
    out = regroup(export, Taxonomy(lineage_level=3))
    meta = pd.read_csv(demo / "meta.csv", dtype=str, keep_default_na=False)
    labelled = meta[meta["level1"] != ""]
    want = [expected_cut(x, 3) for x in labelled["lineage"]]
    got = out.table.loc[out.table["label"].notna()]
    assert got["objid"].astype(str).tolist() == labelled["objid"].tolist()
    assert got["label"].tolist() == want
    assert {"Harosa", "Opisthokonta", "detritus", "artefact"} <= set(want)
    # A lineage shorter than the level keeps its last level.
    assert "not-living/detritus" in set(labelled["lineage"]) and "detritus" in want
    assert len(out.rejects) == 0


def test_lineage_cut_then_map_and_class_lineages(demo: Path) -> None:
    export = read_export(demo, "level1")
    taxonomy = Taxonomy(lineage_level=3, mapping=(("Harosa", "protists"), ("artefact", "")))
    out = regroup(export, taxonomy)
    labels = set(out.table["label"].dropna())
    assert "protists" in labels and "Harosa" not in labels
    assert out.rejects["reason"].str.startswith("class 'artefact' dropped").all()
    lineages = class_lineages(out.table, 3)
    assert lineages["Opisthokonta"] == "living>Eukaryota>Opisthokonta"
    assert lineages["detritus"] == "not-living>detritus"
    assert "protists" not in lineages  # a name of the lab's own: no lineage


def write_ecotaxa(root: Path) -> Path:
    """One EcoTaxa table: validated rows with hierarchies, one without, one predicted."""
    rng = np.random.default_rng(3)
    root.mkdir(parents=True)
    rows = [
        ("o1", "validated", "Calanus", "Biota>Arthropoda>Copepoda>Calanus"),
        ("o2", "validated", "Oithona", "Biota>Arthropoda>Copepoda>Oithona"),
        ("o3", "validated", "Copepoda", "Biota>Arthropoda>Copepoda"),
        ("o4", "validated", "detritus", "not-living>detritus"),
        ("o5", "validated", "mystery", ""),
        ("o6", "predicted", "Calanus", "Biota>Arthropoda>Copepoda>Calanus"),
    ]
    lines = [
        "object_id\timg_file_name\tobject_annotation_status\tobject_annotation_category"
        "\tobject_annotation_hierarchy"
    ]
    for i, (oid, status, category, hierarchy) in enumerate(rows):
        (root / f"{oid}.jpg").write_bytes(jpeg(shape_image(i, 30, 20, rng)))
        lines.append(f"{oid}\t{oid}.jpg\t{status}\t{category}\t{hierarchy}")
    (root / "ecotaxa_t.tsv").write_text("\n".join(lines) + "\n", encoding="latin-1")
    return root


def test_lineage_cut_on_an_ecotaxa_tsv(tmp_path: Path) -> None:
    export = read_export(write_ecotaxa(tmp_path / "eco"))
    out = regroup(export, Taxonomy(lineage_level=3))
    assert out.table["object_id"].tolist() == ["o1", "o2", "o3", "o4", "o6"]
    assert out.table["label"].tolist() == ["Copepoda", "Copepoda", "Copepoda", "detritus", pd.NA]
    assert out.rejects["reason"].tolist() == ["no lineage to cut at level 3"]
    assert class_lineages(out.table, 3) == {
        "Copepoda": "Biota>Arthropoda>Copepoda",
        "detritus": "not-living>detritus",
    }
    # Without a cut, merged classes get the taxon they share.
    merged = regroup(export, Taxonomy(mapping=(("Calanus", "Copepoda"), ("Oithona", "Copepoda"))))
    assert class_lineages(merged.table)["Copepoda"] == "Biota>Arthropoda>Copepoda"


def test_a_lineage_cut_needs_a_lineage_column(tmp_path: Path) -> None:
    root = tmp_path / "folder"
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        (root / label / "1.jpg").write_bytes(jpeg(shape_image(0, 20, 20, rng)))
    export = read_image_folder(root)
    with pytest.raises(TaxonomyError, match="needs a lineage column"):
        regroup(export, Taxonomy(lineage_level=2))
    out = regroup(export, Taxonomy(mapping=(("a", "b"),), map_name="m.csv"))  # maps work
    assert out.table["label"].tolist() == ["b", "b"]


# --- the store records it; ingest keeps it --------------------------------------------------


def test_build_records_the_regrouping_and_ingest_keeps_it(
    demo: Path, tmp_path: Path, dask_client
) -> None:
    from plankton_store.store import BuildOptions, build_store, ingest_store, open_store
    from plankton_store.store import format as fmt

    rows = [(a, "" if b == "artefact" else b) for a, b in level1_to_level2()]
    map_path = write_map(tmp_path / "groups.csv", rows)
    mapping = read_taxonomy_map(map_path)
    taxonomy = Taxonomy(mapping=mapping, map_name="groups.csv")
    options = BuildOptions(label_column="level1", drop_classes=(), **SMALL_STORE_OPTIONS)
    path = str(tmp_path / "s.zarr")
    quiet = dict(progress=False, echo=lambda _: None)
    summary = build_store(str(demo), path, options, dask_client, taxonomy=taxonomy, **quiet)
    store = open_store(path)
    assert store.attrs[fmt.Attr.TAXONOMY] == {
        "lineage_level": None,
        "map_file": "groups.csv",
        "map": [list(p) for p in mapping],
    }
    level2 = read_export(demo, "level2").table["label"].value_counts()
    originals = store.array(fmt.AUGMENTATION)[:] == 0
    stored = pd.Series(np.asarray(store.class_names)[store.labels[originals]]).value_counts()
    assert stored.to_dict() == level2.drop("artefact").to_dict()
    assert store.attrs[fmt.Attr.CLASS_LINEAGES]["detritus"] == "not-living>detritus"
    rejects = pd.read_csv(fmt.rejects_path(path))
    assert (rejects["reason"] == "class 'artefact' dropped by taxonomy map groups.csv").sum() == (
        level2["artefact"]
    )
    assert summary.rows_stored + len(summary.rejects) == summary.rows_read
    from plankton_store.report import explore_store

    notes = explore_store(path).notes
    assert any("map groups.csv: " in n and "1 dropped" in n for n in notes), notes

    with pytest.raises(TaxonomyError, match="was built with map groups.csv"):
        ingest_store(path, str(demo), dask_client, taxonomy=Taxonomy(lineage_level=2), **quiet)
    # The same map under another name is the same grouping; an ingest of the same rows
    # adds nothing, and its dropped rows are still dropped, not new classes.
    again = ingest_store(path, str(demo), dask_client, taxonomy=Taxonomy(mapping=mapping), **quiet)
    assert again.new_classes == [] and again.rows_stored == 0
    assert (again.rejects["reason"].str.contains("dropped by taxonomy map")).sum() == level2[
        "artefact"
    ]


def test_evaluate_scores_an_export_with_the_model_s_grouping(
    demo: Path, tmp_path: Path, dask_client
) -> None:
    from plankton_store.ml import ModelMismatchError, TrainOptions, evaluate, read_model_info, train
    from plankton_store.store import BuildOptions, build_store

    taxonomy = Taxonomy(mapping=tuple(level1_to_level2()), map_name="taxo-map.csv")
    path = str(tmp_path / "s.zarr")
    options = BuildOptions(label_column="level1", **SMALL_STORE_OPTIONS)
    quiet = dict(progress=False, echo=lambda _: None)
    build_store(str(demo), path, options, dask_client, taxonomy=taxonomy, **quiet)
    model = tmp_path / "model"
    train(path, model, TrainOptions(model="mlp", epochs=1, threads=1), echo=None)
    info = read_model_info(model)  # train copied the store's regrouping into model.json
    assert info.taxonomy is not None and info.taxonomy["map_file"] == "taxo-map.csv"
    assert info.class_lineages["Copepoda"].endswith(">Hexanauplia>Copepoda")

    # The export's level1 labels are regrouped into the store's level2 groups, then scored.
    ev = evaluate(
        demo, model, tmp_path / "report", client=dask_client, skip_unknown_labels=True, **quiet
    )  # the store's --drop-class classes are unknown to the model
    level2 = read_export(demo, "level2").table["label"]
    scored = level2[level2.isin(info.class_names)]
    assert len(ev.y_true) == len(scored)
    assert any("regrouped" in note for note in ev.notes)
    # Told to keep the labels as read, the level1 classes are unknown to the model.
    with pytest.raises(ModelMismatchError, match="Calanoida"):
        evaluate(demo, model, tmp_path / "r2", client=dask_client, taxonomy=Taxonomy(), **quiet)


def test_build_store_and_ingest_commands_take_both_options(
    demo: Path, tmp_path: Path, dask_client
) -> None:
    from jobs.ingest import ingest_command
    from plankton_store.store import format as fmt
    from plankton_store.store import open_store

    groups = write_map(tmp_path / "g.csv", [("Harosa", "protists"), ("artefact", "")])
    store = str(tmp_path / "s.zarr")
    scheduler = ["--scheduler", dask_client.scheduler.address]
    args = [str(demo), store, "--label-column", "level1", "--lineage-level", "3"]
    args += ["--taxonomy-map", str(groups), "--keep-all-classes", "--size", "32x24"]
    result = CliRunner().invoke(build_store_command, args + scheduler)
    assert result.exit_code == 0, result.output
    st = open_store(store)
    assert st.attrs[fmt.Attr.TAXONOMY] == {
        "lineage_level": 3,
        "map_file": "g.csv",
        "map": [["Harosa", "protists"], ["artefact", ""]],
    }
    assert {"protists", "Opisthokonta", "detritus"} <= set(st.class_names)
    assert "Harosa" not in st.class_names and "artefact" not in st.class_names
    assert st.attrs[fmt.Attr.CLASS_LINEAGES]["Opisthokonta"] == "living>Eukaryota>Opisthokonta"

    refused = CliRunner().invoke(
        ingest_command, [store, str(demo), "--lineage-level", "2"] + scheduler
    )
    assert refused.exit_code == 1
    assert "was built with lineage cut after level 3, then map g.csv" in refused.output
    assert open_store(store).version == st.version
