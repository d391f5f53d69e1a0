"""Reading an export for a store write: :func:`read_for_store`, shared by build and ingest."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from distributed import Client

from plankton_store.io import (
    META_LINEAGE_COLUMN,
    Export,
    Taxonomy,
    read_export,
    regroup,
    release_free_memory,
)

__all__ = ["read_for_store"]


def read_for_store(
    source: str,
    label_column: str,
    statuses: Sequence[str],
    taxonomy: Taxonomy,
    client: Client,
    storage_options: dict[str, Any] | None,
    echo: Callable[[str], None],
    keep_features: bool = False,
) -> Export:
    """Read ``source`` compactly and regroup its labels by ``taxonomy``, saying so.

    Only objid, label and image are stored, so the table keeps no other column but the
    lineage (it names each class's taxon). The workers, idle until the plan is made, list
    the zip and parse the feature tables; with ``keep_features`` (a build) the tables
    stay on the worker that parsed them (:attr:`Export.kept_features`).
    """
    export = read_export(
        source,
        label_column=label_column,
        storage_options=storage_options,
        statuses=statuses,
        executor=client.get_executor(pure=False),
        extra_columns=(META_LINEAGE_COLUMN,),
        keep_features=client if keep_features else None,
    )
    echo(f"Read {export.rows_read} rows from {source} ({export.layout} layout)")
    if not taxonomy.is_identity:
        export = regroup(export, taxonomy)
        echo(f"Labels regrouped: {taxonomy.describe()}")
    # The reading's temporaries (meta.csv's pieces, the listing's message, the matching)
    # leave free holes in the heap that planning could not reuse: at 2.4 million rows the
    # client then peaked while planning.
    release_free_memory()
    return export
