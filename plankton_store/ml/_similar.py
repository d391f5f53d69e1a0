"""similar: the stored images nearest to one object by embedding (cosine similarity).

Reads the embedding block by block (one chunk at a time, so memory stays at one block),
keeps the original, stored samples (no augmented copies, no rejected or gap rows), and
writes the neighbours as a CSV and a mosaic PNG.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from plankton_store.report import example_grid_png
from plankton_store.store import format as fmt
from plankton_store.store import open_store

SIMILAR_CSV = "similar.csv"
SIMILAR_PNG = "similar.png"
#: Neighbours per mosaic row.
MOSAIC_COLUMNS = 10


@dataclass
class Neighbours:
    """The query sample and its nearest samples, most similar first."""

    query: int  # sample index of the query
    table: pd.DataFrame  # rank, sample, objid, label, split, version, similarity
    csv: Path
    png: Path


def similar(
    store: str,
    objid: int,
    out_dir: str | Path,
    k: int = 20,
    embedding: str | None = None,
) -> Neighbours:
    """The ``k`` samples whose embedding is nearest (cosine) to the object ``objid``'s.

    Parameters
    ----------
    store
        A store with an embedding (``plankton-jobs embed``).
    objid
        The instrument object id of the query image (an original sample of the store).
    out_dir
        Folder for :data:`SIMILAR_CSV` and :data:`SIMILAR_PNG`.
    embedding
        Name of the embedding (default: the only one, or the first of several).

    Raises
    ------
    KeyError
        No such embedding, or no stored sample with that objid, or its embedding is not
        computed yet.
    """
    st = open_store(store)
    names = [e for e in st.embeddings if "_pca" not in e] or st.embeddings
    name = embedding or (names[0] if names else "")
    array = st.embedding(name)
    n = st.n_samples
    usable = (st.splits >= 0) & (st.array(fmt.AUGMENTATION)[:n] == 0)
    objids = st.array(fmt.OBJID)[:n]
    found = np.flatnonzero((objids == objid) & usable)
    if not len(found):
        raise KeyError(f"no stored original sample of {store} has objid {objid}")
    query = int(found[0])
    q = np.asarray(array[query], np.float32)
    if not np.isfinite(q).all():
        raise KeyError(f"objid {objid} has no embedding yet: run `plankton-jobs embed` first")
    q = q / (np.linalg.norm(q) or 1.0)
    scores = np.full(n, -np.inf, dtype=np.float32)
    for start in range(0, n, st.block_size):
        block = np.asarray(array[start : start + st.block_size], np.float32)
        norms = np.linalg.norm(block, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            scores[start : start + len(block)] = (block @ q) / norms
    scores[~usable | ~np.isfinite(scores)] = -np.inf
    scores[query] = -np.inf
    order = np.argsort(-scores, kind="stable")[:k]
    order = order[np.isfinite(scores[order])]
    return _write(st, query, order, scores, Path(out_dir))


def _write(st, query: int, order: np.ndarray, scores: np.ndarray, out: Path) -> Neighbours:
    out.mkdir(parents=True, exist_ok=True)
    labels, splits = st.labels, st.splits
    split_names = {code: name for name, code in fmt.split_codes().items()}
    table = pd.DataFrame(
        {
            "rank": np.arange(1, len(order) + 1),
            "sample": order,
            "objid": st.array(fmt.OBJID)[: st.n_samples][order],
            "label": [st.class_names[c] for c in labels[order]],
            "split": [split_names[int(s)] for s in splits[order]],
            "version": st.provenance[order],
            "similarity": np.round(scores[order], 4),
        }
    )
    csv = out / SIMILAR_CSV
    table.to_csv(csv, index=False)
    objid = int(st.array(fmt.OBJID)[query])
    rows = {f"query {objid} ({st.class_names[labels[query]]})": [st.images[query]]}
    for r in range(0, len(order), MOSAIC_COLUMNS):
        picked = order[r : r + MOSAIC_COLUMNS]
        rows[f"{r + 1}-{r + len(picked)}"] = [st.images[int(i)] for i in picked]
    png = example_grid_png(
        rows, out / SIMILAR_PNG, per_class=MOSAIC_COLUMNS, title=f"Nearest to objid {objid}"
    )
    return Neighbours(query, table, csv, png)
