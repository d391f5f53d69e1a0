"""predict --format ecotaxa: the API CSV beside the zip, and the hierarchy of known classes."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from plankton_store.demo import make_demo_export
from plankton_store.io import (
    ECOTAXA_API_COLUMNS,
    Taxonomy,
    ecotaxa_api_path,
    ecotaxa_api_table,
    ecotaxa_predictions,
)
from tests.conftest import SMALL_STORE_OPTIONS


def test_the_api_table_carries_internal_ids_only_when_known() -> None:
    proba = np.array([[0.7, 0.3], [0.2, 0.8]])
    frame = ecotaxa_predictions(["a1", "a2"], proba, ["copepod", "diatom"])
    without = ecotaxa_api_table(frame)
    assert list(without.columns) == list(ECOTAXA_API_COLUMNS)
    assert without["objid"].isna().all()
    assert without["object_id"].tolist() == ["a1", "a2"]
    assert without["category"].tolist() == ["copepod", "diatom"]
    assert without["score"].tolist() == [0.7, 0.8]
    with_ids = ecotaxa_api_table(frame, [101, 202])
    assert with_ids["objid"].tolist() == [101, 202]
    assert ecotaxa_api_path("x/pred.zip") == Path("x/pred.api.csv")


@pytest.fixture(scope="module")
def lineage_model(tmp_path_factory: pytest.TempPathFactory, dask_client) -> tuple[Path, Path]:
    """The demo export and a tiny model of its labels cut at lineage level 3."""
    from plankton_store.ml import TrainOptions, train
    from plankton_store.store import BuildOptions, build_store

    root = tmp_path_factory.mktemp("api")
    demo = make_demo_export(root / "demo", scale=0.002, seed=0, workers=1, progress=False)
    store = str(root / "s.zarr")
    options = BuildOptions(label_column="level1", **SMALL_STORE_OPTIONS)
    build_store(
        str(demo),
        store,
        options,
        dask_client,
        progress=False,
        echo=len,
        taxonomy=Taxonomy(lineage_level=3),
    )
    model = root / "model"
    train(store, model, TrainOptions(model="mlp", epochs=1, threads=1), echo=None)
    return demo, model


def test_predict_ecotaxa_writes_hierarchy_and_the_api_csv(
    lineage_model: tuple[Path, Path], tmp_path: Path, dask_client
) -> None:
    from plankton_store.ml import predict_source, read_model_info

    demo, model = lineage_model
    info = read_model_info(model)  # train copied the store's grouping into model.json
    assert info.taxonomy == {"lineage_level": 3, "map_file": None, "map": []}
    assert set(info.class_lineages) == set(info.class_names)
    out = tmp_path / "pred.zip"
    result = predict_source(
        demo, model, out, dask_client, out_format="ecotaxa", gallery=False, progress=False, echo=len
    )
    assert result.api_csv == tmp_path / "pred.api.csv"
    with zipfile.ZipFile(out) as zf:
        data = zf.read("ecotaxa_predictions.tsv")
    tsv = pd.read_csv(io.BytesIO(data), sep="\t", encoding="utf-8-sig", skiprows=[1], dtype=str)
    for category, hierarchy in zip(
        tsv["object_annotation_category"], tsv["object_annotation_hierarchy"], strict=True
    ):
        assert hierarchy == info.class_lineages[category]
        assert hierarchy.split(">")[-1] == category and len(hierarchy.split(">")) <= 3
    api = pd.read_csv(result.api_csv, dtype={"object_id": str})
    meta = pd.read_csv(demo / "meta.csv")
    # A database dump's objid is EcoTaxa's internal id: the API's target_ids.
    assert api["objid"].tolist() == meta["objid"].tolist()
    assert api["object_id"].tolist() == tsv["object_id"].tolist()
    assert api["category"].tolist() == tsv["object_annotation_category"].tolist()
    assert api["hierarchy"].tolist() == tsv["object_annotation_hierarchy"].tolist()
    assert np.allclose(api["score"], tsv["object_score"].astype(float))


def test_predict_copies_labels_regrouped_like_the_model_s_store(
    lineage_model: tuple[Path, Path], tmp_path: Path, dask_client
) -> None:
    from plankton_store.io import read_export, regroup
    from plankton_store.ml import predict_source

    demo, model = lineage_model
    result = predict_source(
        demo, model, tmp_path / "p.csv", dask_client, gallery=False, progress=False, echo=len
    )
    frame = pd.read_csv(tmp_path / "p.csv", keep_default_na=False)
    want = regroup(read_export(demo, "level1"), Taxonomy(lineage_level=3)).table["label"]
    assert frame["label"].tolist() == want.fillna("").tolist()  # every row, cut at level 3
    assert "Harosa" in set(frame["label"]) and "Calanoida" not in set(frame["label"])
    assert result.n_predicted == len(frame) == len(pd.read_csv(demo / "meta.csv"))
