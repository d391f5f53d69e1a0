"""ingest: a store grows by whole shards, all or nothing for readers, versioned."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import zarr

from tests.conftest import write_flowcam_export

#: The full export: 'newcomer' exists only in the second half.
COUNTS = {"detritus": 90, "copepod": 40, "diatom": 25, "newcomer": 12}
OPTIONS = dict(block_size=32, chunk_size=16, augment_below=30, size=(32, 24))


def _subset(full: Path, dest: Path, keep) -> Path:
    """A copy of the export ``full`` with only the rows whose (objid, label) ``keep`` takes."""
    dest.mkdir(parents=True)
    header, *rows = (full / "meta.csv").read_text().splitlines()
    kept = [r for r in rows if keep(int(r.split(",")[0]), r.split(",")[3])]
    ids = {r.split(",")[0] for r in kept}
    (dest / "meta.csv").write_text("\n".join([header, *kept]) + "\n")
    with zipfile.ZipFile(full / "imgs.zip") as src, zipfile.ZipFile(dest / "imgs.zip", "w") as out:
        for name in src.namelist():
            if Path(name).stem in ids:
                out.writestr(name, src.read(name))
    with gzip.open(full / "features_native.csv.gz", "rt") as f:
        head, *lines = f.read().splitlines()
    with gzip.open(dest / "features_native.csv.gz", "wt") as f:
        f.write("\n".join([head, *(x for x in lines if x.split(",")[0] in ids)]) + "\n")
    return dest


@pytest.fixture(scope="module")
def halves(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, int]:
    """First half (no 'newcomer'), second half (with it, and 5 rows of the first half)."""
    root = tmp_path_factory.mktemp("halves")
    full = write_flowcam_export(root / "full", COUNTS)
    n = sum(COUNTS.values())
    first = _subset(full, root / "a", lambda i, lab: i < 1000 + n // 2 and lab != "newcomer")
    overlap = (
        set(range(1000, 1000 + n // 2, 17))
        - {  # 5 rows of the first half again
            int(r.split(",")[0])
            for r in (full / "meta.csv").read_text().splitlines()[1:]
            if r.endswith(",newcomer")
        }
    )
    second = _subset(
        full, root / "b", lambda i, lab: i >= 1000 + n // 2 or lab == "newcomer" or i in overlap
    )
    return first, second, len(overlap)


def _digests(path: str) -> dict[str, str]:
    """sha256 of every array of a store, as a plain Zarr reader sees it (consolidated)."""
    group = zarr.open_group(path, mode="r")
    return {
        name: hashlib.sha256(np.ascontiguousarray(group[name][:]).tobytes()).hexdigest()
        for name in group.array_keys()
    }


def _build(export: Path, path: Path, client) -> str:
    from plankton_store.store import BuildOptions, build_store

    build_store(str(export), str(path), BuildOptions(**OPTIONS), client, progress=False,
                echo=lambda _: None)  # fmt: skip
    return str(path)


def _ingest(store: str, export: Path, client, **kw):
    from plankton_store.store import ingest_store

    return ingest_store(store, str(export), client, progress=False, echo=lambda _: None, **kw)


def test_ingest_grows_by_whole_shards_and_keeps_old_samples(halves, tmp_path, dask_client):
    import dask.array as da
    import xarray as xr

    from plankton_store.store import format as fmt
    from plankton_store.store import open_store, verify_blocks

    first, second, n_overlap = halves
    store = _build(first, tmp_path / "s.zarr", dask_client)
    old = open_store(store)
    n_old, old_classes = old.n_samples, old.class_names
    before = {k: old.array(k)[:] for k in old.group.array_keys()}
    summary = _ingest(store, second, dask_client)
    new = open_store(store)
    # Every old sample identical in every array, and every old block's recorded checksum;
    # old classes keep their codes, new ones are appended.
    for name, values in before.items():
        np.testing.assert_array_equal(new.array(name)[: len(values)], values, err_msg=name)
    assert len(before[fmt.BLOCK_CHECKSUM]) == -(-n_old // old.block_size)
    assert new.class_names[: len(old_classes)] == old_classes
    assert new.class_names[len(old_classes) :] == ["newcomer"] == summary.new_classes
    # The new samples start at the next shard boundary; the gap rows read as rejected.
    assert summary.start == -(-n_old // old.block_size) * old.block_size
    assert new.n_samples == summary.stop > summary.start
    assert (new.splits[n_old : summary.start] == fmt.Split.REJECTED).all()
    # Nothing dropped silently: rows read = stored + rejected, duplicates listed.
    assert summary.duplicates == n_overlap
    assert summary.rows_read == summary.rows_stored + len(summary.rejects)
    dup = summary.rejects[summary.rejects["reason"].str.startswith("duplicate")]
    assert len(dup) == n_overlap and dup["reason"].str.contains("version v0").all()
    # Totals: the two halves less the duplicates (every original row decodes here).
    originals = new.array(fmt.AUGMENTATION)[: new.n_samples] == 0
    stored = originals & (new.splits >= 0)
    assert stored.sum() == sum(COUNTS.values())
    assert len(set(new.array(fmt.OBJID)[: new.n_samples][stored])) == sum(COUNTS.values())
    # Versions, provenance, block checksums and plain readers.
    assert [v["id"] for v in new.versions] == ["v0", "v1"] and new.version == "v1"
    assert new.versions[1]["duplicates"] == n_overlap and new.pending_ingest is None
    prov = new.provenance
    assert set(prov[:n_old]) == {"v0"} and set(prov[summary.start :]) == {"v1"}
    assert verify_blocks(store) == {}
    assert xr.open_zarr(store).sizes[fmt.SAMPLE_DIM] == new.n_samples
    assert da.from_zarr(store, component=fmt.IMAGES).shape[0] == new.n_samples
    # The split rule: new classes get train, val and test samples like any other.
    newcomer = new.class_names.index("newcomer")
    assert set(new.splits[new.labels == newcomer]) == {0, 1, 2}


def test_second_ingest_adds_nothing(halves, tmp_path, dask_client):
    from plankton_store.store import open_store

    first, second, _ = halves
    store = _build(first, tmp_path / "s.zarr", dask_client)
    _ingest(store, second, dask_client)
    digests = _digests(store)
    again = _ingest(store, second, dask_client)
    assert again.rows_stored == 0 and again.duplicates == again.rows_read
    assert again.version == "v1" and open_store(store).version == "v1"
    assert _digests(store) == digests


def test_killed_ingest_leaves_old_store_and_resume_completes(
    halves, tmp_path, dask_client, monkeypatch
):
    import xarray as xr

    from plankton_store.store import IngestStateError, open_store, verify_blocks
    from plankton_store.store import _ingest as ingest_mod

    first, second, _ = halves
    store = _build(first, tmp_path / "s.zarr", dask_client)
    reference = _build(first, tmp_path / "ref.zarr", dask_client)
    _ingest(reference, second, dask_client)
    digests, n_old = _digests(store), open_store(store).n_samples
    real = ingest_mod.run_block_tasks

    def killed(client, tasks, fetcher, progress, **names):  # the first block lands, then a crash
        real(client, tasks[:1], fetcher, progress, **names)
        raise RuntimeError("worker killed")

    monkeypatch.setattr(ingest_mod, "run_block_tasks", killed)
    with pytest.raises(RuntimeError, match="killed"):
        ingest_mod.ingest_store(
            store, str(second), dask_client, progress=False, echo=lambda _: None
        )
    monkeypatch.undo()
    # Readers see the old store exactly; only the pending marker tells of the ingest.
    after = _digests(store)
    assert after == digests
    st = open_store(store)
    assert st.n_samples == n_old and st.version == "v0" and st.pending_ingest["id"] == "v1"
    assert xr.open_zarr(store).sizes["sample"] == n_old
    with pytest.raises(IngestStateError, match="--resume"):
        ingest_mod.ingest_store(store, str(second), dask_client, progress=False)
    summary = ingest_mod.ingest_store(
        store, str(second), dask_client, resume=True, progress=False, echo=lambda _: None
    )
    assert summary.version == "v1" and open_store(store).pending_ingest is None
    assert verify_blocks(store) == {}
    assert _digests(store).keys() == _digests(reference).keys()
    for name, digest in _digests(reference).items():
        assert _digests(store)[name] == digest, name


def test_ingest_refuses_resume_without_pending(halves, tmp_path, dask_client):
    from plankton_store.store import IngestStateError

    first, _, _ = halves
    store = _build(first, tmp_path / "s.zarr", dask_client)
    with pytest.raises(IngestStateError, match="nothing to resume"):
        _ingest(store, first, dask_client, resume=True)
    shutil.rmtree(store)


def test_evaluate_scores_the_models_version_unless_asked(halves, tmp_path, dask_client):
    import json

    from plankton_store.ml import ModelMismatchError, evaluate
    from plankton_store.store import open_store
    from tests.conftest import fit_small_model

    first, second, _ = halves
    store = _build(first, tmp_path / "s.zarr", dask_client)
    model = fit_small_model(store, tmp_path / "mlp")
    meta = json.loads((model / "model.json").read_text())
    assert "store_version" not in meta  # the hand-made model: pin it as train does
    (model / "model.json").write_text(json.dumps({**meta, "store_version": "v0"}))
    n_old = open_store(store).n_samples
    old_test = int((open_store(store).splits == 2).sum())
    _ingest(store, second, dask_client)
    assert int((open_store(store).splits == 2).sum()) > old_test
    ev = evaluate(store, model, tmp_path / "ev", "test", client=dask_client, progress=False,
                  echo=lambda _: None)  # fmt: skip
    assert len(ev.y_true) == old_test and (ev.ids["sample"] < n_old).all()
    assert any("only the" in note and "v0" in note for note in ev.notes)
    with pytest.raises(ModelMismatchError, match="newcomer"):
        evaluate(store, model, tmp_path / "ev2", "test", client=dask_client, progress=False,
                 echo=lambda _: None, all_samples=True)  # fmt: skip


def test_ingest_command_reports_the_version_and_refuses_a_bad_resume(halves, tmp_path, dask_client):
    from click.testing import CliRunner

    from jobs.ingest import ingest_command

    first, second, n_overlap = halves
    store = _build(first, tmp_path / "s.zarr", dask_client)
    args = [store, str(second), "--scheduler", dask_client.scheduler.address]
    result = CliRunner().invoke(ingest_command, args)
    assert result.exit_code == 0, result.output
    assert "is now version v1" in result.output and "New classes: newcomer" in result.output
    assert f"(of which {n_overlap} duplicates)" in result.output
    assert (tmp_path / "s.zarr.v1.rejects.csv").is_file()
    again = CliRunner().invoke(ingest_command, args)
    assert again.exit_code == 0 and "nothing new" in again.output
    resume = CliRunner().invoke(ingest_command, [*args, "--resume"])
    assert resume.exit_code == 1 and "nothing to resume" in resume.output
    missing = CliRunner().invoke(ingest_command, [store, str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "no such folder" in missing.output


def test_ingested_samples_get_their_feature_tables(halves, tmp_path, dask_client):
    import pandas as pd

    from plankton_store.store import BuildOptions, build_store, open_store
    from plankton_store.store import format as fmt

    first, second, _ = halves
    store = str(tmp_path / "s.zarr")
    options = BuildOptions(**OPTIONS, compute_features=True)
    build_store(str(first), store, options, dask_client, progress=False, echo=lambda _: None)
    summary = _ingest(store, second, dask_client)
    st = open_store(store)
    assert st.feature_tables == ["computed", "native"]
    new = np.arange(summary.start, summary.stop)
    new = new[(st.array(fmt.AUGMENTATION)[new] == 0) & (st.splits[new] >= 0)]
    native, columns = st.features("native")
    expected = pd.read_csv(second / "features_native.csv.gz", index_col="objid")
    objids = st.array(fmt.OBJID)[new]
    np.testing.assert_allclose(
        native.oindex[new, :], expected.loc[objids, columns].to_numpy(np.float32), rtol=1e-6
    )
    computed, _ = st.features("computed")
    assert np.isfinite(computed.oindex[new, :]).all()
