"""The original images behind a store's samples, found through the exports it was built from.

A store records, per version (its build and each ingest), the export it read and the range
of samples it wrote (:mod:`plankton_store.store._versions`). The original image of a sample
is the row of that export with the sample's objid (an augmented copy's: its
``source_objid``). Where the export is no longer there (moved or deleted), its samples fall
back to their stored, resized image and the page says so.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from plankton_store.io import read_source
from plankton_store.report._thumbs import Pictures, original_thumb, store_images
from plankton_store.store import PlanktonStore
from plankton_store.store import format as fmt


def _sample_objids(store: PlanktonStore, samples: np.ndarray) -> np.ndarray:
    """The objid of each sample's original image (an augmented copy's source objid)."""
    if not len(samples):
        return np.zeros(0, np.int64)
    order = np.argsort(samples, kind="stable")
    sel = (samples[order],)
    objid = store.array(fmt.OBJID).get_orthogonal_selection(sel)
    source = store.array(fmt.SOURCE_OBJID).get_orthogonal_selection(sel)
    out = np.empty(len(samples), np.int64)
    out[order] = np.where(source != fmt.NO_SOURCE, source, objid)
    return out


def _version_refs(
    entry: dict, label_column: str, objids: np.ndarray
) -> tuple[Callable[[str], bytes] | None, np.ndarray, str]:
    """Fetch function, image ref per objid (None where absent) and a note, for one version."""
    source = entry.get("source")
    nothing = np.full(len(objids), None, object)
    if not source:
        return None, nothing, f"version {entry.get('id')} names no export"
    try:
        export, _ = read_source(str(source), label_column)
    except Exception as exc:  # noqa: BLE001 - moved, deleted, offline: the page says why
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return None, nothing, f"{source} is not reachable ({reason})"
    table = export.table
    index = pd.Series(table["image"].astype(str).to_numpy(), index=table["objid"].to_numpy())
    index = index[~index.index.duplicated(keep="first")]
    refs = index.reindex(objids).to_numpy(dtype=object)
    refs[pd.isna(refs)] = None
    note = ""
    if export.fingerprint != entry.get("input_fingerprint"):
        note = f"{source} changed since it was stored: its originals are matched by objid"
    absent = int(sum(r is None for r in refs))
    if absent:
        note = f"{absent} objids are no longer in {source}" + (f"; {note}" if note else "")
    return export.fetcher.fetch, refs, note


def store_pictures(store: PlanktonStore, samples: np.ndarray) -> Pictures:
    """The original and the stored images of a store's ``samples`` (rows index ``samples``).

    Parameters
    ----------
    store
        An open store.
    samples
        Sample indices; row ``r`` of the readers is sample ``samples[r]``.

    Returns
    -------
    Pictures
        ``originals`` reads ``None`` for a row whose export is not reachable, ``stored``
        always reads; ``note`` names the exports that could not be used, and why.
    """
    samples = np.asarray(samples, dtype=np.int64)
    objids = _sample_objids(store, samples)
    fetchers: list[Callable[[str], bytes] | None] = []
    which = np.full(len(samples), -1, np.int64)
    refs = np.full(len(samples), None, object)
    notes: list[str] = []
    unreachable = 0
    for entry in store.versions:
        inside = (samples >= int(entry["start"])) & (samples < int(entry["stop"]))
        if not inside.any():
            continue
        fetch, found, note = _version_refs(entry, store.label_column, objids[inside])
        if note:
            notes.append(note)
        if fetch is None:
            unreachable += int(inside.sum())
            continue
        which[inside] = len(fetchers)
        refs[inside] = found
        fetchers.append(fetch)

    def originals(rows: np.ndarray) -> list[np.ndarray | None]:
        out = []
        for r in np.asarray(rows, dtype=np.int64):
            k = which[r]
            fetch = fetchers[k] if k >= 0 else None
            out.append(original_thumb(fetch, refs[r]) if fetch is not None else None)
        return out

    text = ""
    if notes:
        text = "Original images: " + "; ".join(notes) + "."
        if unreachable:
            text += " Images of an export that is not reachable show their stored version."
    return Pictures(originals if fetchers else None, store_images(store, samples), text)
