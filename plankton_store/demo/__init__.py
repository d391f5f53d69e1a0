"""The demo data: a synthetic FlowCam / EcoTaxa export shaped like the reference workload.

:func:`make_demo_export` writes ``meta.csv``, ``taxo.csv``, a native feature table and
``imgs.zip`` with the reference export's columns, its class counts (times a scale) and image
sizes; image ``i`` depends only on ``(seed, i)``. :func:`make_ecotaxa_demo_export` writes the
same rows as an EcoTaxa export (one TSV per sample folder).
"""

from plankton_store.demo._ecotaxa import make_ecotaxa_demo_export
from plankton_store.demo._make import DEMO_FORMATS, DemoDataResult, make_demo_data
from plankton_store.demo._recipes import RECIPES
from plankton_store.demo._render import image_rng, render_image, render_row, sample_image_size
from plankton_store.demo._shapes import SHAPES
from plankton_store.demo._taxonomy import (
    EMPTY_LABEL,
    EMPTY_LABEL_COUNT,
    LEVEL2_COUNTS,
    LINEAGES,
    MIN_CLASS_COUNT,
    expected_level2_counts,
    level1_classes,
    taxonomy_table,
)
from plankton_store.demo._writer import (
    FEATURES_FILE,
    META_COLUMNS,
    TAXO_COLUMNS,
    make_demo_export,
    make_meta,
    preview_sheet,
    timed_export,
)

__all__ = [
    "DEMO_FORMATS",
    "EMPTY_LABEL",
    "EMPTY_LABEL_COUNT",
    "FEATURES_FILE",
    "LEVEL2_COUNTS",
    "LINEAGES",
    "META_COLUMNS",
    "MIN_CLASS_COUNT",
    "RECIPES",
    "SHAPES",
    "TAXO_COLUMNS",
    "DemoDataResult",
    "expected_level2_counts",
    "image_rng",
    "level1_classes",
    "make_demo_data",
    "make_demo_export",
    "make_ecotaxa_demo_export",
    "make_meta",
    "preview_sheet",
    "render_image",
    "render_row",
    "sample_image_size",
    "taxonomy_table",
    "timed_export",
]
