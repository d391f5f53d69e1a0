"""embed and similar: a cnn's embedding in the store, grown with an ingest, searched."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.test_ingest import _build, _ingest, halves  # noqa: F401 - the fixture


@pytest.fixture(scope="module")
def cnn(halves, tmp_path_factory, dask_client):  # noqa: F811 - the fixture
    from plankton_store.ml import TrainOptions, train

    first, second, _ = halves
    root = tmp_path_factory.mktemp("embed")
    store = _build(first, root / "s.zarr", dask_client)
    train(store, root / "cnn", TrainOptions(model="cnn", epochs=1, threads=1), echo=None)
    return store, str(root / "cnn"), second


def test_embed_writes_every_sample_then_only_the_ingested_ones(cnn, dask_client, tmp_path):
    import json
    from pathlib import Path

    import xarray as xr

    from plankton_store.ml import embed_store, similar
    from plankton_store.store import open_store

    store, model, second = cnn
    assert json.loads((Path(model) / "model.json").read_text())["store_version"] == "v0"
    quiet = dict(progress=False, echo=lambda _: None)
    first = embed_store(store, model, dask_client, pca=4, **quiet)
    st = open_store(store)
    n_old = st.n_samples
    assert first.samples == n_old and st.embeddings == ["cnn", "cnn_pca4"]
    old = st.embedding("cnn")[:]
    assert old.shape == (n_old, first.dim) and np.isfinite(old).all()
    assert np.isfinite(st.embedding("cnn_pca4")[:]).all()
    assert "embedding_cnn" in xr.open_zarr(store).data_vars

    summary = _ingest(store, second, dask_client)
    grown = open_store(store).embedding("cnn")
    assert grown.shape[0] == summary.stop and np.isnan(grown[summary.start :]).all()
    again = embed_store(store, model, dask_client, pca=4, **quiet)
    assert again.samples == summary.stop - summary.start  # only the new blocks
    st = open_store(store)
    values = st.embedding("cnn")[:]
    np.testing.assert_array_equal(values[:n_old], old)
    assert np.isnan(values[n_old : summary.start]).all()  # the gap rows: never samples
    assert np.isfinite(values[summary.start :]).all()
    assert np.isfinite(st.embedding("cnn_pca4")[summary.start :]).all()

    aug = st.array("augmentation")[: st.n_samples]
    new_originals = np.flatnonzero((aug == 0) & (st.splits >= 0))
    objid = int(st.array("objid")[new_originals[new_originals >= summary.start][0]])
    found = similar(store, objid, tmp_path / "sim", k=5)
    assert len(found.table) == 5 and found.png.is_file() and found.csv.is_file()
    assert objid not in set(found.table["objid"])
    assert found.table["similarity"].is_monotonic_decreasing
    assert (aug[found.table["sample"]] == 0).all()  # originals only, no augmented copies
    assert set(found.table["version"]) <= {"v0", "v1"}

    from click.testing import CliRunner

    from jobs.similar import similar_command

    out = tmp_path / "cli"
    result = CliRunner().invoke(similar_command, [store, "--objid", str(objid), "--k", "3",
                                                  "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (out / "similar.png").is_file() and len(pd.read_csv(out / "similar.csv")) == 3
    unknown = CliRunner().invoke(similar_command, [store, "--objid", "-5", "--out", str(out)])
    assert unknown.exit_code == 1 and "no stored original sample" in unknown.output


def test_embed_refuses_a_model_without_embedding(cnn, dask_client, tmp_path):
    from plankton_store.ml import embed_store
    from tests.conftest import fit_small_model

    store, _, _ = cnn
    mlp = fit_small_model(store, tmp_path / "mlp")
    with pytest.raises(ValueError, match="only a cnn"):
        embed_store(store, str(mlp), dask_client, progress=False)
