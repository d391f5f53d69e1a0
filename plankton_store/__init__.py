"""plankton_store: the library behind plankton-jobs.

The store format (:mod:`plankton_store.store.format`), export readers (:mod:`~.sources`), image
operations (:mod:`~.imageops`), the build plan (:mod:`~.plan`), store access (:mod:`~.store`)
and the synthetic FlowCam export generator (:mod:`~.synthetic`).

The names below are imported on first use, so ``import plankton_store`` stays cheap.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("plankton-jobs")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

_EXPORTS = {
    "open_store": "plankton_store.store",
    "PlanktonStore": "plankton_store.store",
    "IncompleteStoreError": "plankton_store.store",
    "StoreFormatError": "plankton_store.store",
    "build_store": "plankton_store.store",
    "BuildOptions": "plankton_store.store",
    "make_plan": "plankton_store.store",
    "read_export": "plankton_store.io",
    "Export": "plankton_store.io",
    "ExportError": "plankton_store.io",
    "make_demo_export": "plankton_store.demo",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'plankton_store' has no attribute {name!r}")
