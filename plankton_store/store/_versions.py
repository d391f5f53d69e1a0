"""Store versions: the log in the root attributes, the atomic commit, and grown arrays.

Each build or ingest is one version: an entry of the ``versions`` log (:class:`Attr`) with
its id (``v0``, ``v1``, ...), the export's fingerprint, the sample range it wrote, counts,
time and options. Readers trust the root attributes: an ingest writes its samples beyond
the committed shape of every array (through :func:`grown`, in memory), then resizes the
arrays and writes the root ``zarr.json`` once, with the new attributes and the consolidated
metadata of every array (:func:`commit_root`). That one write is the commit: before it,
``zarr.open_group``, ``xarray.open_zarr`` and :func:`open_store` read the old store.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import zarr

from plankton_store.store import format as fmt
from plankton_store.store.format import Attr

#: Keys of one entry of the versions log.
VERSION_KEYS = (
    "id",
    "kind",
    "source",
    "source_layout",
    "input_fingerprint",
    "start",
    "stop",
    "n_samples",
    "n_classes",
    "rows_read",
    "rows_stored",
    "rows_rejected",
    "duplicates",
    "augmented_copies",
    "created",
    "finished",
    "options",
)


def version_id(index: int) -> str:
    """Id of the ``index``-th version of a store: ``v0`` is its build."""
    return f"v{index}"


def build_version(attrs: Mapping[str, Any], n_samples: int) -> dict[str, Any]:
    """The log entry of a store's build (``v0``), from its root attributes."""
    return {
        "id": version_id(0),
        "kind": "build",
        "source": attrs.get(Attr.SOURCE),
        "source_layout": attrs.get(Attr.SOURCE_LAYOUT),
        "input_fingerprint": attrs.get(Attr.INPUT_FINGERPRINT),
        "start": 0,
        "stop": int(n_samples),
        "n_samples": int(n_samples),
        "n_classes": len(attrs.get(Attr.CLASS_NAMES, [])),
        "rows_read": attrs.get(Attr.ROWS_READ),
        "rows_stored": attrs.get(Attr.ROWS_STORED),
        "rows_rejected": attrs.get(Attr.ROWS_REJECTED),
        "duplicates": 0,
        "augmented_copies": attrs.get(Attr.AUGMENTED_COPIES),
        "created": attrs.get(Attr.CREATED),
        "finished": attrs.get(Attr.FINISHED) or fmt.now(),
        "options": attrs.get(Attr.BUILD_OPTIONS),
    }


def build_version_attrs(attrs: Mapping[str, Any], n_samples: int) -> dict[str, Any]:
    """Root attributes a finished build adds: its sample count, v0 and the provenance codes."""
    entry = build_version(attrs, n_samples)
    return {
        Attr.N_SAMPLES: int(n_samples),
        Attr.VERSIONS: [entry],
        Attr.PROVENANCE_CODES: {entry["id"]: 0},
    }


def versions_log(attrs: Mapping[str, Any], n_samples: int) -> list[dict[str, Any]]:
    """The versions log; a store built before versions existed has one entry, its build."""
    log = attrs.get(Attr.VERSIONS)
    return [dict(v) for v in log] if log else [build_version(attrs, n_samples)]


def committed_samples(attrs: Mapping[str, Any], shape_n: int) -> int:
    """Samples of the committed store: the root's count (else, for an old store, the shape)."""
    n = attrs.get(Attr.N_SAMPLES)
    return int(n) if n is not None else int(shape_n)


def segments(attrs: Mapping[str, Any], n_samples: int) -> list[tuple[int, int]]:
    """``(start, stop)`` sample ranges the versions wrote; the rows between them (up to an
    ingest's first shard boundary) were never written and read as rejected."""
    return [(int(v["start"]), int(v["stop"])) for v in versions_log(attrs, n_samples)]


def written_mask(attrs: Mapping[str, Any], n_samples: int) -> np.ndarray:
    """Boolean mask of the samples some version wrote (False on the gap rows)."""
    mask = np.zeros(n_samples, dtype=bool)
    for start, stop in segments(attrs, n_samples):
        mask[start:stop] = True
    return mask


def find_version(log: list[dict[str, Any]], version: str) -> dict[str, Any]:
    """The entry of ``version`` in ``log``.

    Raises
    ------
    KeyError
        No such version (with the ones there are).
    """
    for entry in log:
        if entry["id"] == version:
            return entry
    raise KeyError(f"version {version!r} is not in the store's log ({[v['id'] for v in log]})")


def grown(array: Any, n_samples: int) -> Any:
    """``array`` (a ``zarr.AsyncArray``) with a sample axis of ``n_samples``, in memory only:
    writes through it may go beyond the stored shape, which readers keep seeing."""
    shape = (int(n_samples), *array.metadata.shape[1:])
    if shape == tuple(array.metadata.shape):
        return array
    return zarr.AsyncArray(
        metadata=array.metadata.update_shape(shape),
        store_path=array.store_path,
        config=array.config,
    )


def commit_root(
    path: str, attrs: Mapping[str, Any], storage_options: dict[str, Any] | None = None
) -> None:
    """Write the root attributes and the consolidated metadata in one write of ``zarr.json``.

    ``attrs`` replaces the dictionary under :data:`plankton_store.store.format.ROOT_ATTRS_KEY`;
    the consolidated metadata is read from every array's own ``zarr.json``. This write is
    atomic for readers (one object), so it is the commit point of an ingest.
    """
    from zarr.core.sync import sync

    sync(_commit_root(path, dict(attrs), storage_options))


async def _commit_root(
    path: str, attrs: dict[str, Any], storage_options: dict[str, Any] | None
) -> None:
    from zarr.core.group import AsyncGroup, ConsolidatedMetadata
    from zarr.storage._common import make_store_path

    store_path = await make_store_path(path, mode="r+", storage_options=storage_options)
    group = await AsyncGroup.open(store_path, zarr_format=3, use_consolidated=False)
    members = {
        k: v.metadata
        async for k, v in group.members(max_depth=None, use_consolidated_for_children=False)
    }
    ConsolidatedMetadata._flat_to_nested(members)
    metadata = dataclasses.replace(
        group.metadata,
        attributes={**group.metadata.attributes, fmt.ROOT_ATTRS_KEY: attrs},
        consolidated_metadata=ConsolidatedMetadata(metadata=members),
    )
    await dataclasses.replace(group, metadata=metadata)._save_metadata()


def resize_samples(
    path: str, n_samples: int, n_blocks: int, storage_options: dict[str, Any] | None = None
) -> None:
    """Resize every per-sample array to ``n_samples`` and ``block_checksum`` to ``n_blocks``
    (each array's own metadata; readers see it only once :func:`commit_root` runs)."""
    group = zarr.open_group(
        path, mode="r+", storage_options=storage_options, use_consolidated=False
    )
    for name in group.array_keys():
        array = group[name]
        n = n_blocks if name == fmt.BLOCK_CHECKSUM else n_samples
        if array.shape[0] < n:
            array.resize((n, *array.shape[1:]))
