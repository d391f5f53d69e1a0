"""embed: write a cnn's embedding of every sample into the store, on Dask, block by block.

``embedding_<name>`` is a ``(sample, <name>_dim)`` float32 array chunked like the store's
blocks, so each Dask task writes exactly one chunk of its own. Its attributes record the
model and how many samples it covers; after an ingest, only the blocks added since are
computed (an ingest starts on a block boundary, so they are whole blocks). The optional
PCA reduction (``embedding_<name>_pca<D>``, as EcoTaxa keeps) is fitted once on the train
split and stored with its projection, which later blocks reuse.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import zarr

from plankton_store.cluster import run_blocks
from plankton_store.ml._inference import cached_model
from plankton_store.ml._inputs import ModelInputs
from plankton_store.ml._modeldir import model_fingerprint, read_model_info
from plankton_store.store import PlanktonStore, open_store, written_mask
from plankton_store.store import format as fmt
from plankton_store.store._versions import commit_root

#: Attributes of an embedding array.
MODEL_ATTR = "model"
MODEL_FINGERPRINT_ATTR = "model_fingerprint"
COVERED_ATTR = "n_samples"  # samples [0, n) are computed
VERSION_ATTR = "store_version"
PCA_MEAN_ATTR = "pca_mean"
PCA_COMPONENTS_ATTR = "pca_components"
#: Train samples the PCA is fitted on, at most.
PCA_FIT_SAMPLES = 20000


@dataclass
class EmbedSummary:
    """What an embed run did."""

    store: str
    name: str
    dim: int
    samples: int  # samples computed by this run
    blocks: int
    seconds: float
    pca: str | None = None

    @property
    def images_per_second(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else float("nan")


def _group(path: str, storage_options: dict[str, Any] | None) -> zarr.Group:
    """The store's root for writing, read past the consolidated metadata (which lists the
    arrays only as of the last commit)."""
    return zarr.open_group(path, mode="r+", storage_options=storage_options, use_consolidated=False)


def embedding_dim(model_dir: str) -> int:
    """Width of a cnn's embedding (run on a worker: it loads the model there)."""
    model = cached_model(model_dir)
    height, width = model.image_size
    probe = ModelInputs(
        np.zeros((1, height, width), np.uint8), np.ones(1, np.int32), np.ones(1, np.int32), {}
    )
    return int(model.embed(probe).shape[1])


def embed_block(
    store_path: str,
    array_name: str,
    start: int,
    stop: int,
    model_dir: str,
    batch_size: int = 512,
    storage_options: dict[str, Any] | None = None,
) -> int:
    """Embed samples ``[start, stop)`` (one block) and write them; never-written gap rows
    of an ingest stay NaN. Returns the number of samples embedded."""
    store = open_store(store_path, storage_options=storage_options)
    rows = slice(start, stop)
    inputs = ModelInputs(
        np.asarray(store.images[rows]),
        np.asarray(store.array(fmt.ORIG_HEIGHT)[rows], np.int32),
        np.asarray(store.array(fmt.ORIG_WIDTH)[rows], np.int32),
        {},
    )
    out = cached_model(model_dir).embed(inputs, batch_size)
    out[~written_mask(store.attrs, stop)[start:stop]] = np.nan
    target = zarr.open_array(
        store_path, path=array_name, mode="r+", storage_options=storage_options
    )
    target[start:stop] = out
    return stop - start


def project_block(
    store_path: str,
    source: str,
    target: str,
    start: int,
    stop: int,
    storage_options: dict[str, Any] | None = None,
) -> int:
    """Write the PCA projection of one block of ``source`` into ``target`` (NaN stays NaN)."""
    group = _group(store_path, storage_options)
    out = group[target]
    mean = np.asarray(out.attrs[PCA_MEAN_ATTR], np.float32)
    components = np.asarray(out.attrs[PCA_COMPONENTS_ATTR], np.float32)
    values = np.asarray(group[source][start:stop], np.float32)
    out[start:stop] = (values - mean) @ components.T
    return stop - start


def embed_store(
    store: str,
    model_dir: str,
    client: Any,
    name: str | None = None,
    pca: int | None = None,
    batch_size: int = 512,
    progress: bool = True,
    echo: Callable[[str], None] = print,
    storage_options: dict[str, Any] | None = None,
) -> EmbedSummary:
    """Compute the embedding of every sample not yet embedded and write it into ``store``.

    Parameters
    ----------
    store
        A complete plankton store.
    model_dir
        A ``cnn`` MODEL_DIR; its embedding is what its output layer (or head) sees.
    client
        A ``distributed.Client``; each block is one task.
    name
        The embedding's name (array ``embedding_<name>``); default the model kind.
    pca
        Also write a PCA reduction to this many dimensions (``embedding_<name>_pca<D>``).

    Returns
    -------
    EmbedSummary

    Raises
    ------
    ValueError
        The model has no embedding (not a cnn), or the store has an ingest pending.
    """
    started = time.perf_counter()
    info = read_model_info(model_dir)
    if info.kind != "cnn":
        raise ValueError(f"{model_dir} is a {info.kind} model: only a cnn has an embedding")
    st = open_store(store, storage_options=storage_options)
    if st.pending_ingest is not None:
        raise ValueError(
            f"{store} has an unfinished ingest: finish it with `plankton-jobs ingest "
            f"{store} {st.pending_ingest['source']} --resume` before embedding"
        )
    if tuple(info.image_size) != st.image_size:
        raise ValueError(f"the model takes {info.image_size} images, {store} has {st.image_size}")
    name = name or info.kind
    dim = client.submit(embedding_dim, info.model_dir, pure=False).result()
    array_name, first = _prepare(st, name, dim, info.model_dir, echo)
    starts = list(range(first, st.n_samples, st.block_size))
    calls = [
        (store, array_name, s, min(s + st.block_size, st.n_samples), info.model_dir, batch_size,
         storage_options)
        for s in starts
    ]  # fmt: skip
    echo(f"Embedding {st.n_samples - first} of {st.n_samples} samples into {array_name} ({dim})")
    run_blocks(
        client, embed_block, calls, name="embed-block", desc="embed",
        sizes=[c[3] - c[2] for c in calls], progress=progress,
    )  # fmt: skip
    _group(store, storage_options)[array_name].attrs.update(
        {COVERED_ATTR: st.n_samples, VERSION_ATTR: st.version}
    )
    reduced = _reduce(st, array_name, pca, first, client, progress) if pca else None
    commit_root(store, st.attrs, storage_options)  # consolidate: plain readers see the arrays
    return EmbedSummary(
        store, name, dim, st.n_samples - first, len(calls), time.perf_counter() - started, reduced
    )


def _prepare(
    st: PlanktonStore, name: str, dim: int, model_dir: str, echo: Callable[[str], None]
) -> tuple[str, int]:
    """The embedding array (created, or reused when it holds this model's embedding) and
    the first sample still to compute."""
    array_name = fmt.embedding_array_name(name)
    fingerprint = model_fingerprint(model_dir)
    group = _group(st.path, st.storage_options)
    if array_name in group.array_keys():
        existing = group[array_name]
        same = existing.attrs.get(MODEL_FINGERPRINT_ATTR) == fingerprint
        if same and existing.shape[1] == dim:
            return array_name, _block_ceil(existing.attrs.get(COVERED_ATTR, 0), st.block_size)
        echo(f"{array_name} holds another model's embedding: computing it afresh")
    group.create_array(
        array_name,
        shape=(st.n_samples, dim),
        chunks=(st.block_size, dim),
        dtype="float32",
        fill_value=float("nan"),
        dimension_names=(fmt.SAMPLE_DIM, fmt.embedding_dim_name(name)),
        attributes={MODEL_ATTR: model_dir, MODEL_FINGERPRINT_ATTR: fingerprint, COVERED_ATTR: 0},
        overwrite=True,
    )
    return array_name, 0


def _block_ceil(n: int, block_size: int) -> int:
    """The first block boundary at or after ``n``: where an ingest's samples begin."""
    return -(-int(n) // block_size) * block_size


def _reduce(
    st: PlanktonStore, source: str, dim: int, first: int, client: Any, progress: bool
) -> str:
    """Write the PCA reduction of ``source``: fitted once (train split, seeded sample), then
    applied to the blocks from ``first`` on (all of them when it is new)."""
    from sklearn.decomposition import PCA

    target, prefix = f"{source}_pca{dim}", fmt.EMBEDDING_PREFIX
    group = _group(st.path, st.storage_options)
    embedding = group[source]
    covered = group[target].attrs.get(COVERED_ATTR) if target in group.array_keys() else None
    first = _block_ceil(covered, st.block_size) if covered is not None and first else 0
    if not first:
        train = st.split_indices("train")
        rng = np.random.default_rng(0)
        rows = np.sort(rng.choice(train, min(len(train), PCA_FIT_SAMPLES), replace=False))
        values = np.asarray(embedding.oindex[rows, :], np.float32)
        n = min(dim, *values.shape)
        fitted = PCA(n_components=n, random_state=0).fit(values[np.isfinite(values).all(1)])
        group.create_array(
            target,
            shape=(st.n_samples, n),
            chunks=(st.block_size, n),
            dtype="float32",
            fill_value=float("nan"),
            dimension_names=(fmt.SAMPLE_DIM, fmt.embedding_dim_name(target[len(prefix) :])),
            attributes={
                PCA_MEAN_ATTR: fitted.mean_.tolist(),
                PCA_COMPONENTS_ATTR: fitted.components_.tolist(),
            },
            overwrite=True,
        )
    calls = [
        (st.path, source, target, s, min(s + st.block_size, st.n_samples), st.storage_options)
        for s in range(first, st.n_samples, st.block_size)
    ]
    run_blocks(client, project_block, calls, name="pca-block", desc="pca", progress=progress)
    group[target].attrs.update({COVERED_ATTR: st.n_samples, VERSION_ATTR: st.version})
    return target
