"""plankton_store: the library behind plankton-jobs.

The store format (:mod:`plankton_store.format`), export readers, image operations, the build
plan, store access, balanced sampling and the synthetic FlowCam export generator.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("plankton-jobs")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
