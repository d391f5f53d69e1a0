"""A synthetic FlowCam/EcoTaxa export: same files, columns, class counts and image sizes.

:func:`make_demo_export` writes a folder that looks like a real export::

    meta.csv               objid, projid, id, status, latitude, longitude, objdate, objtime,
                           depth_min, depth_max, unique_name, lineage, level1, level2
    taxo.csv               one row per level1 class: level1, level2, unique_name, lineage, count
    features_native.csv.gz objid + :data:`plankton_store.features.FEATURE_COLUMNS`
    imgs.zip               imgs/<objid>.jpg, grayscale JPEGs, stored without compression

The ``level2`` counts are those of the real export times ``scale`` (:func:`expected_level2_counts`).
Every image is drawn from its class's recipe (:data:`RECIPES`): a morphology (``shape``), a size
and aspect offset, blur and darkness. Related classes share a shape with nearby parameters, so a
classifier finds some classes easy and some hard. Image ``i`` only depends on ``(seed, i)``, so
the output is identical whatever the number of worker processes.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import os
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from tqdm.auto import tqdm

from plankton_store.features import FEATURE_COLUMNS, SIZE_COLUMNS, compute_features

#: Images per level2 class in the real export (scale 1.0), largest first.
LEVEL2_COUNTS: dict[str, int] = {
    "detritus": 138439,
    "feces": 26936,
    "Neoceratium": 14014,
    "nauplii (Crustacea)": 9293,
    "badfocus (artefact)": 7848,
    "silks": 5629,
    "Copepoda": 5141,
    "Thalassionema": 5117,
    "rods": 4044,
    "multiple (other)": 3261,
    "Codonellopsis (Dictyocystidae)": 2888,
    "Protoperidinium": 2256,
    "Tintinnidiidae": 2227,
    "Rhizosolenids": 2160,
    "Chaetoceros": 2105,
    "artefact": 1849,
    "pollen": 1821,
    "Codonaria": 845,
    "chainlarge": 751,
    "Undellidae": 710,
    "egg (other)": 685,
    "Hemiaulus": 670,
    "Dictyocysta": 549,
    "Dinophysiales": 525,
    "Annelida": 481,
    "Rhabdonella": 367,
    "Stenosemella": 357,
    "Coscinodiscids": 334,
    "Retaria": 257,
    "Pleurosigma": 191,
    "Ceratocorys horrida": 186,
    "centric": 145,
    "Odontella (Mediophyceae)": 131,
    "Asterionellopsis": 117,
    "Cyttarocylis": 100,
    "Lithodesmioides": 68,
    "tempChaetoceros danicus": 61,
    "Xystonellidae": 37,
    "Bacteriastrum": 12,
}
#: Rows of the real export whose level1 and level2 are empty (taxa outside both levels).
EMPTY_LABEL_COUNT = 1003
#: How an empty label is written in meta.csv (pandas reads it back as NaN).
EMPTY_LABEL = ""
#: Every class keeps at least this many images at small scales.
MIN_CLASS_COUNT = 3

META_COLUMNS: tuple[str, ...] = (
    "objid",
    "projid",
    "id",
    "status",
    "latitude",
    "longitude",
    "objdate",
    "objtime",
    "depth_min",
    "depth_max",
    "unique_name",
    "lineage",
    "level1",
    "level2",
)
TAXO_COLUMNS: tuple[str, ...] = ("level1", "level2", "unique_name", "lineage", "count")

META_FILE = "meta.csv"
TAXO_FILE = "taxo.csv"
FEATURES_FILE = "features_native.csv.gz"
IMAGES_FILE = "imgs.zip"

#: Real image size quartiles (pixels): height 70 / 109 / 166, width 50 / 73 / 122.
HEIGHT_RANGE = (9, 739)
WIDTH_RANGE = (6, 972)
#: Fraction of non-size feature cells blanked, as real tables have a few NaNs.
NAN_FRACTION = 0.001
JPEG_QUALITY = 90
#: Rows per task sent to a worker process; fixed so that the output never depends on it.
CHUNK_ROWS = 2000
_ZIP_DATE = (2020, 1, 1, 0, 0, 0)


def expected_level2_counts(scale: float, include_empty: bool = True) -> dict[str, int]:
    """Rows per ``level2`` class in an export generated at ``scale``.

    Parameters
    ----------
    scale : float
        Fraction of the real export, > 0. At 1.0 the counts are the real ones (243,610 rows).
    include_empty : bool
        Also return the rows without a label under the key :data:`EMPTY_LABEL` (``""``).

    Returns
    -------
    dict of str to int
        ``max(MIN_CLASS_COUNT, round(n * scale))`` per class (exactly ``n`` at scale 1.0).
    """
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    counts = dict(LEVEL2_COUNTS)
    if include_empty:
        counts[EMPTY_LABEL] = EMPTY_LABEL_COUNT
    if scale == 1.0:
        return counts
    return {k: max(MIN_CLASS_COUNT, round(n * scale)) for k, n in counts.items()}


# --------------------------------------------------------------------------------------------
# Taxonomy: level2 -> level1 sub-classes, lineages.
# --------------------------------------------------------------------------------------------

_EUK = "living/Eukaryota"
_DINO = f"{_EUK}/Harosa/Alveolata/Myzozoa/Holodinophyta/Dinophyceae"
_CILI = f"{_EUK}/Harosa/Alveolata/Ciliophora/Spirotrichea/Tintinnida"
_DIAT = f"{_EUK}/Harosa/Stramenopiles/Ochrophyta/Bacillariophyta"
_CRUS = f"{_EUK}/Opisthokonta/Holozoa/Metazoa/Arthropoda/Crustacea"

#: Lineage of each level2 group (a level1 sub-class appends its own name).
LINEAGES: dict[str, str] = {
    "detritus": "not-living/detritus",
    "feces": "not-living/detritus/feces",
    "Neoceratium": f"{_DINO}/Gonyaulacales/Ceratiaceae/Neoceratium",
    "nauplii (Crustacea)": f"{_CRUS}/nauplii",
    "badfocus (artefact)": "not-living/artefact/badfocus",
    "silks": "not-living/detritus/silks",
    "Copepoda": f"{_CRUS}/Multicrustacea/Hexanauplia/Copepoda",
    "Thalassionema": f"{_DIAT}/Bacillariophyceae/Thalassionemataceae/Thalassionema",
    "rods": "not-living/detritus/rods",
    "multiple (other)": "not-living/multiple",
    "Codonellopsis (Dictyocystidae)": f"{_CILI}/Dictyocystidae/Codonellopsis",
    "Protoperidinium": f"{_DINO}/Peridiniales/Protoperidiniaceae/Protoperidinium",
    "Tintinnidiidae": f"{_CILI}/Tintinnidiidae",
    "Rhizosolenids": f"{_DIAT}/Coscinodiscophyceae/Rhizosoleniales",
    "Chaetoceros": f"{_DIAT}/Mediophyceae/Chaetocerotales/Chaetoceros",
    "artefact": "not-living/artefact",
    "pollen": f"{_EUK}/Archaeplastida/Viridiplantae/Streptophyta/pollen",
    "Codonaria": f"{_CILI}/Codonellidae/Codonaria",
    "chainlarge": f"{_DIAT}/chainlarge",
    "Undellidae": f"{_CILI}/Undellidae",
    "egg (other)": "living/other/egg",
    "Hemiaulus": f"{_DIAT}/Mediophyceae/Hemiaulales/Hemiaulus",
    "Dictyocysta": f"{_CILI}/Dictyocystidae/Dictyocysta",
    "Dinophysiales": f"{_DINO}/Dinophysiales",
    "Annelida": f"{_EUK}/Opisthokonta/Holozoa/Metazoa/Annelida",
    "Rhabdonella": f"{_CILI}/Rhabdonellidae/Rhabdonella",
    "Stenosemella": f"{_CILI}/Codonellopsidae/Stenosemella",
    "Coscinodiscids": f"{_DIAT}/Coscinodiscophyceae/Coscinodiscids",
    "Retaria": f"{_EUK}/Harosa/Rhizaria/Retaria",
    "Pleurosigma": f"{_DIAT}/Bacillariophyceae/Naviculales/Pleurosigma",
    "Ceratocorys horrida": f"{_DINO}/Gonyaulacales/Ceratocoryaceae/Ceratocorys horrida",
    "centric": f"{_DIAT}/centric",
    "Odontella (Mediophyceae)": f"{_DIAT}/Mediophyceae/Odontella",
    "Asterionellopsis": f"{_DIAT}/Bacillariophyceae/Asterionellopsis",
    "Cyttarocylis": f"{_CILI}/Cyttarocylidae/Cyttarocylis",
    "Lithodesmioides": f"{_DIAT}/Mediophyceae/Lithodesmiales",
    "tempChaetoceros danicus": f"{_DIAT}/Mediophyceae/Chaetocerotales/Chaetoceros danicus",
    "Xystonellidae": f"{_CILI}/Xystonellidae",
    "Bacteriastrum": f"{_DIAT}/Mediophyceae/Chaetocerotales/Bacteriastrum",
}

#: level2 groups split into finer level1 classes: (level1, share of the group's rows).
#: Groups not listed have a single level1 class of the same name.
LEVEL1_SPLITS: dict[str, tuple[tuple[str, float], ...]] = {
    "detritus": (("detritus", 0.72), ("fiber (detritus)", 0.16), ("light (detritus)", 0.12)),
    "feces": (("feces", 0.75), ("fluffy (feces)", 0.25)),
    "Neoceratium": (("Neoceratium tripos", 0.7), ("Neoceratium fusus", 0.3)),
    "nauplii (Crustacea)": (("nauplii (Crustacea)", 0.8), ("nauplii (Cirripedia)", 0.2)),
    "silks": (("silks", 0.7), ("dense (silks)", 0.3)),
    "Copepoda": (("Calanoida", 0.55), ("Oithonidae", 0.3), ("Copepoda", 0.15)),
    "Thalassionema": (("Thalassionema", 0.8), ("single (Thalassionema)", 0.2)),
}

#: Taxa of the rows without level1/level2 (unique_name, lineage).
EMPTY_TAXA: tuple[tuple[str, str], ...] = (
    ("othertocheck", "temporary/othertocheck"),
    ("Ciliophora", f"{_EUK}/Harosa/Alveolata/Ciliophora"),
    ("Bacillariophyceae", f"{_DIAT}/Bacillariophyceae"),
    ("Foraminifera", f"{_EUK}/Harosa/Rhizaria/Retaria/Foraminifera"),
)


def level1_classes(level2: str) -> tuple[tuple[str, float], ...]:
    """The ``(level1, share)`` sub-classes of a level2 group (itself when not split)."""
    return LEVEL1_SPLITS.get(level2, ((level2, 1.0),))


def unique_name(level1: str) -> str:
    """EcoTaxa-style unique name: ``"fiber (detritus)"`` -> ``"fiber<detritus"``."""
    if level1.endswith(")") and " (" in level1:
        name, parent = level1[:-1].split(" (", 1)
        return f"{name}<{parent}"
    return level1


def level1_lineage(level1: str, level2: str) -> str:
    """Full lineage of a level1 class (the group's lineage, plus the sub-class if different)."""
    base = LINEAGES[level2]
    return base if level1 == level2 else f"{base}/{unique_name(level1)}"


def taxonomy_table() -> list[dict[str, str]]:
    """One dict per level1 class: ``level1``, ``level2``, ``unique_name``, ``lineage``."""
    return [
        {
            "level1": l1,
            "level2": l2,
            "unique_name": unique_name(l1),
            "lineage": level1_lineage(l1, l2),
        }
        for l2 in LEVEL2_COUNTS
        for l1, _ in level1_classes(l2)
    ]


# --------------------------------------------------------------------------------------------
# Recipes: class -> morphology.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipe:
    """How to draw one class.

    Attributes
    ----------
    shape : str
        Key of :data:`SHAPES`, the drawing function.
    size : float
        Log offset of the image size (0 = typical; +0.4 = 1.5 times bigger).
    aspect : float
        Log offset of height/width (> 0 taller); the object is drawn to fit the image.
    blur : float
        Gaussian blur radius as a fraction of the image's smaller side (plus a base blur).
    ink : float
        Darkness scale of the object, 1 = the shape's own values.
    params : dict
        Shape-specific proportions (see the shape functions).
    """

    shape: str
    size: float = 0.0
    aspect: float = 0.0
    blur: float = 0.0
    ink: float = 1.0
    params: dict[str, Any] = field(default_factory=dict)


def _lorica(size: float, aspect: float, **params: Any) -> Recipe:
    # Tintinnid loricas: one shape, classes differ only in proportions and wall texture.
    return Recipe("lorica", size=size, aspect=aspect, params=params)


#: Morphology of every level1 class, and of the unlabelled rows (key ``""``).
RECIPES: dict[str, Recipe] = {
    # not-living
    "detritus": Recipe("blob", params={"rough": 0.35, "ink": (70, 170), "specks": 12}),
    "fiber (detritus)": Recipe("fiber", size=-0.1, params={"n": 1, "width": 0.05}),
    "light (detritus)": Recipe("blob", size=0.1, ink=0.55, params={"rough": 0.45, "specks": 6}),
    "feces": Recipe("pellet", size=0.1, aspect=0.5, params={"aspect": (2.2, 4.0)}),
    "fluffy (feces)": Recipe("blob", aspect=0.2, params={"rough": 0.2, "ink": (160, 220)}),
    "badfocus (artefact)": Recipe("badfocus", blur=0.07),
    "silks": Recipe("fiber", size=0.3, params={"n": 4, "width": 0.02}),
    "dense (silks)": Recipe("fiber", size=0.4, params={"n": 9, "width": 0.02}),
    "rods": Recipe("rod", size=-0.1, aspect=0.9, params={"aspect": (6, 14), "ink": 200}),
    "multiple (other)": Recipe("multiple", size=0.45),
    "artefact": Recipe("artefact", size=-0.2),
    "egg (other)": Recipe("egg", size=-0.3, aspect=0.0),
    # dinoflagellates
    "Neoceratium tripos": Recipe("ceratium", size=0.55, params={"horns": 3}),
    "Neoceratium fusus": Recipe("ceratium", size=0.45, aspect=0.9, params={"horns": 2}),
    "Protoperidinium": Recipe("peridinium", size=-0.2, aspect=0.1),
    "Dinophysiales": Recipe("dinophysis", size=-0.25, aspect=0.1),
    "Ceratocorys horrida": Recipe("horrida", size=0.0),
    # crustaceans, worms, rhizaria
    "nauplii (Crustacea)": Recipe("nauplius", size=0.0, aspect=0.2, params={"frontal": False}),
    "nauplii (Cirripedia)": Recipe("nauplius", size=0.05, aspect=0.1, params={"frontal": True}),
    "Calanoida": Recipe("copepod", size=0.5, aspect=0.6, params={"body": 2.6, "antenna": 1.0}),
    "Oithonidae": Recipe("copepod", size=0.1, aspect=0.7, params={"body": 3.2, "antenna": 0.45}),
    "Copepoda": Recipe("copepod", size=0.3, aspect=0.5, params={"body": 2.4, "antenna": 0.7}),
    "Annelida": Recipe("annelid", size=0.6, aspect=0.8),
    "Retaria": Recipe("retaria", size=0.2),
    "pollen": Recipe("pollen", size=-0.15, aspect=-0.2),
    # diatoms
    "Thalassionema": Recipe("zigzag", size=0.5, params={"n": (3, 8)}),
    "single (Thalassionema)": Recipe("rod", size=0.1, aspect=1.0, params={"aspect": (12, 22)}),
    "Rhizosolenids": Recipe("rhizosolenia", size=0.4, aspect=1.1),
    "Chaetoceros": Recipe("chain", size=0.2, aspect=-0.3, params={"cells": (3, 7), "setae": 2}),
    "Bacteriastrum": Recipe("chain", size=0.3, aspect=-0.2, params={"cells": (3, 6), "setae": 6}),
    "tempChaetoceros danicus": Recipe(
        "chain", size=0.0, aspect=-0.2, params={"cells": (1, 2), "setae": 2, "thick": True}
    ),
    "chainlarge": Recipe("chain", size=0.5, aspect=-0.5, params={"cells": (3, 8), "setae": 0}),
    "Hemiaulus": Recipe("hemiaulus", size=0.3, aspect=-0.4),
    "Odontella (Mediophyceae)": Recipe("odontella", size=0.1, aspect=-0.3),
    "Lithodesmioides": Recipe("lithodesmium", size=-0.1),
    "Asterionellopsis": Recipe("star", size=0.4),
    "Pleurosigma": Recipe("pleurosigma", size=0.3, aspect=0.8),
    "centric": Recipe("disc", size=-0.3, params={"areolae": False}),
    "Coscinodiscids": Recipe("disc", size=0.2, params={"areolae": True}),
    # tintinnids: (bowl length, bowl radius, collar height, collar flare, aboral, texture)
    "Codonellopsis (Dictyocystidae)": _lorica(
        0.1, 0.5, bowl=0.45, radius=0.27, collar=0.55, flare=0.0, aboral="round", tex="rings"
    ),
    "Codonaria": _lorica(
        0.0, 0.3, bowl=0.65, radius=0.32, collar=0.3, flare=0.12, aboral="round", tex="rings"
    ),
    "Dictyocysta": _lorica(
        -0.15, 0.2, bowl=0.6, radius=0.33, collar=0.4, flare=0.05, aboral="round", tex="windows"
    ),
    "Stenosemella": _lorica(
        -0.2, 0.25, bowl=0.8, radius=0.34, collar=0.15, flare=-0.04, aboral="round", tex="dots"
    ),
    "Undellidae": _lorica(
        0.0, 0.3, bowl=0.85, radius=0.36, collar=0.12, flare=0.04, aboral="blunt", tex="none"
    ),
    "Rhabdonella": _lorica(
        0.2, 0.7, bowl=0.9, radius=0.22, collar=0.08, flare=0.05, aboral="point", tex="ribs"
    ),
    "Cyttarocylis": _lorica(
        0.15, 0.5, bowl=0.8, radius=0.3, collar=0.12, flare=0.08, aboral="point", tex="windows"
    ),
    "Xystonellidae": _lorica(
        0.3, 1.0, bowl=1.0, radius=0.16, collar=0.1, flare=0.06, aboral="point", tex="ribs"
    ),
    "Tintinnidiidae": Recipe("tintinnidium", size=0.1, aspect=0.6),
    # rows with empty level1/level2
    EMPTY_LABEL: Recipe("other"),
}

# --------------------------------------------------------------------------------------------
# Image size: correlated log-normal per class, centred so that the overall quartiles are real.
# --------------------------------------------------------------------------------------------

_LOG_H = math.log(110.0)
_LOG_W = math.log(73.0)
_SIGMA_H = 0.6
_SIGMA_W = 0.63
_SIZE_CORR = 0.7


def _class_shares() -> dict[str, float]:
    """Share of all rows of each level1 class (and the empty label) at scale 1."""
    total = sum(LEVEL2_COUNTS.values()) + EMPTY_LABEL_COUNT
    shares = {EMPTY_LABEL: EMPTY_LABEL_COUNT / total}
    for l2, n in LEVEL2_COUNTS.items():
        for l1, share in level1_classes(l2):
            shares[l1] = n * share / total
    return shares


def _size_centres() -> tuple[float, float]:
    """Mean log offsets of height and width over the real class mix (subtracted below)."""
    shares = _class_shares()
    dh = sum(s * (RECIPES[c].size + RECIPES[c].aspect / 2) for c, s in shares.items())
    dw = sum(s * (RECIPES[c].size - RECIPES[c].aspect / 2) for c, s in shares.items())
    return dh, dw


_CENTRE_H, _CENTRE_W = _size_centres()


def sample_image_size(level1: str, rng: np.random.Generator) -> tuple[int, int]:
    """Draw the ``(height, width)`` of one image of a level1 class.

    Correlated log-normal around the class's size and aspect offsets, clipped to the real
    extremes (9..739 x 6..972). Over the real class mix the quartiles are close to the real
    ones (height 70 / 109 / 166, width 50 / 73 / 122).
    """
    r = RECIPES[level1]
    z1, z2 = rng.standard_normal(2)
    z2 = _SIZE_CORR * z1 + math.sqrt(1 - _SIZE_CORR**2) * z2
    log_h = _LOG_H + r.size + r.aspect / 2 - _CENTRE_H + _SIGMA_H * z1
    log_w = _LOG_W + r.size - r.aspect / 2 - _CENTRE_W + _SIGMA_W * z2
    h = int(np.clip(round(math.exp(log_h)), *HEIGHT_RANGE))
    w = int(np.clip(round(math.exp(log_w)), *WIDTH_RANGE))
    return h, w


# --------------------------------------------------------------------------------------------
# Shapes. Each returns primitives in local coordinates with the long axis along x; the
# renderer rotates them and scales them uniformly to fit the image.
#   ("poly", points (n, 2), fill ink, outline ink)
#   ("line", points (n, 2), width, ink)
#   ("dots", centres (n, 2), radius, ink)
# Ink is darkness 0..255 (0 = background).
# --------------------------------------------------------------------------------------------

Prim = tuple[Any, ...]
Rng = np.random.Generator

_THETA = np.linspace(0, 2 * np.pi, 28, endpoint=False)
_COS, _SIN = np.cos(_THETA), np.sin(_THETA)


def _ellipse(cx: float, cy: float, a: float, b: float, rot: float = 0.0) -> np.ndarray:
    x, y = a * _COS, b * _SIN
    c, s = math.cos(rot), math.sin(rot)
    return np.column_stack([cx + c * x - s * y, cy + s * x + c * y])


def _wobbly(rng: Rng, a: float, b: float, rough: float) -> np.ndarray:
    """Closed outline: ellipse with random low-frequency radial harmonics."""
    r = np.ones_like(_THETA)
    for k in range(2, 6):
        r += rough / k * rng.standard_normal() * np.cos(k * _THETA + rng.uniform(0, 2 * np.pi))
    r = np.clip(r, 0.35, None)
    return np.column_stack([a * r * _COS, b * r * _SIN])


def _curve(rng: Rng, length: float, n: int = 10, bend: float = 0.5) -> np.ndarray:
    """Smooth random polyline of about ``length`` along x."""
    turns = np.cumsum(rng.normal(0, bend / math.sqrt(n), n))
    turns -= turns.mean()
    step = length / n
    pts = np.zeros((n + 1, 2))
    pts[1:, 0] = np.cumsum(step * np.cos(turns))
    pts[1:, 1] = np.cumsum(step * np.sin(turns))
    return pts - pts.mean(axis=0)


def _specks(rng: Rng, outline: np.ndarray, n: int, scale: float, ink: float) -> Prim:
    """Small dark dots inside (roughly) the outline's extent."""
    lo, hi = outline.min(axis=0), outline.max(axis=0)
    centre = (lo + hi) / 2
    pts = centre + (rng.uniform(-0.35, 0.35, (n, 2)) * (hi - lo))
    return ("dots", pts, scale, ink)


def shape_blob(rng: Rng, p: dict[str, Any]) -> list[Prim]:
    """Amorphous detritus: irregular translucent blob with darker specks."""
    lo, hi = p.get("ink", (60, 150))
    outline = _wobbly(rng, 1.0, rng.uniform(0.45, 1.0), p.get("rough", 0.3))
    ink = rng.uniform(lo, hi)
    prims: list[Prim] = [("poly", outline, ink, min(255, ink + 40))]
    if p.get("specks", 0):
        n = int(rng.integers(1, p["specks"] + 1))
        prims.append(_specks(rng, outline, n, rng.uniform(0.03, 0.08), min(255, ink + 70)))
    return prims


def shape_fiber(rng: Rng, p: dict[str, Any]) -> list[Prim]:
    """Filaments: one (detritus fiber) or several tangled (silks)."""
    prims: list[Prim] = []
    for i in range(p.get("n", 1)):
        pts = _curve(rng, 2.0, n=12, bend=1.2)
        if i:  # tangles: rotate and shift each extra filament a little
            a = rng.uniform(0, np.pi)
            rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
            pts = pts @ rot.T + rng.normal(0, 0.2, 2)
        prims.append(("line", pts, p.get("width", 0.04) * rng.uniform(0.7, 1.4), 150 + 60 * i % 90))
    return prims


def shape_pellet(rng: Rng, p: dict[str, Any]) -> list[Prim]:
    """Faecal pellet: dense dark capsule with a lighter granular texture."""
    ar = rng.uniform(*p.get("aspect", (2.0, 4.0)))
    outline = _wobbly(rng, 1.0, 1.0 / ar, 0.06)
    outline[:, 0] = np.sign(outline[:, 0]) * np.abs(outline[:, 0]) ** 0.7  # squarer ends
    ink = rng.uniform(190, 235)
    return [("poly", outline, ink, 250), _specks(rng, outline, 10, 0.04, ink - 60)]


def shape_rod(rng: Rng, p: dict[str, Any]) -> list[Prim]:
    """Straight thin rod with rounded ends."""
    ar = rng.uniform(*p.get("aspect", (6, 14)))
    return [("line", np.array([[-1.0, 0.0], [1.0, 0.0]]), 2.0 / ar, p.get("ink", 170))]


def shape_ceratium(rng: Rng, p: dict[str, Any]) -> list[Prim]:
    """Neoceratium: small body with a long apical horn and one or two antapical horns."""
    body = _ellipse(0.0, 0.0, 0.28, 0.2)
    apical = np.array([[0.0, 0.0], [-1.6, rng.normal(0, 0.05)]])
    w = 0.045
    prims: list[Prim] = [("line", apical, w, 190)]
    if p.get("horns", 3) == 3:
        spread = rng.uniform(0.35, 0.8)
        for side in (-1, 1):
            horn = np.array([[0.1, 0.0], [0.45, side * 0.25], [0.2 - 0.6, side * spread]])
            horn[2, 0] = rng.uniform(-0.6, 0.0)
            prims.append(("line", horn, w, 190))
    else:
        prims.append(("line", np.array([[0.0, 0.0], [1.2, rng.normal(0, 0.06)]]), w, 190))
    prims.append(("poly", body, 150, 220))
    return prims


def shape_peridinium(rng: Rng, p: dict[str, Any]) -> list[Prim]:
    """Protoperidinium: pear-shaped body, short apical horn, two short antapical spines."""
    body = _wobbly(rng, 0.75, rng.uniform(0.6, 0.75), 0.05)
    return [
        ("line", np.array([[-0.6, 0.0], [-1.0, 0.0]]), 0.12, 180),
        ("line", np.array([[0.6, -0.25], [0.95, -0.35]]), 0.06, 180),
        ("line", np.array([[0.6, 0.25], [0.95, 0.35]]), 0.06, 180),
        ("poly", body, rng.uniform(110, 160), 220),
        ("line", np.array([[0.0, -0.68], [0.05, 0.68]]), 0.05, 220),  # cingulum
    ]


def shape_dinophysis(rng: Rng, p: dict[str, Any]) -> list[Prim]:
    """Dinophysiales: compressed oval body with a funnel-like cingular list at one end."""
    body = _ellipse(0.1, 0.0, 0.8, rng.uniform(0.5, 0.65))
    sail = np.array([[-0.55, -0.3], [-0.95, -0.55], [-0.95, 0.55], [-0.55, 0.3]])
    return [("poly", sail, 90, 200), ("poly", body, rng.uniform(120, 170), 220)]


def shape_horrida(rng: Rng, p: dict[str, Any]) -> list[Prim]:
    """Ceratocorys horrida: round body with several long radiating spines."""
    prims: list[Prim] = []
    for a in rng.uniform(0, 2 * np.pi) + np.arange(5) * 2 * np.pi / 5 + rng.normal(0, 0.2, 5):
        prims.append(("line", np.array([[0, 0], [math.cos(a), math.sin(a)]]), 0.04, 180))
    prims.append(("poly", _wobbly(rng, 0.4, 0.4, 0.05), 160, 230))
    return prims


def shape_nauplius(rng: Rng, p: dict[str, Any]) -> list[Prim]:
    """Nauplius larva: pear-shaped body with three pairs of setose appendages at the front."""
    body = _ellipse(0.1, 0.0, 0.7, 0.45)
    body[:, 1] *= 1 - 0.3 * (body[:, 0] + 0.6) / 1.4  # narrower at the back
    prims: list[Prim] = []
    for i, x0 in enumerate((-0.4, -0.15, 0.1)):
        for side in (-1, 1):
            a = side * (1.9 - 0.35 * i + rng.normal(0, 0.15))
            tip = np.array([x0 + 0.7 * math.cos(a), 0.3 * side + 0.7 * math.sin(a)])
            prims.append(("line", np.array([[x0, 0.3 * side], tip]), 0.05, 170))
    if p.get("frontal"):
        for side in (-1, 1):
            prims.append(("line", np.array([[-0.5, 0.3 * side], [-0.8, 0.75 * side]]), 0.08, 220))
    prims += [
        ("poly", body, rng.uniform(130, 180), 230),
        ("dots", np.array([[-0.45, 0]]), 0.07, 250),
    ]
    return prims


def shape_copepod(rng: Rng, p: dict[str, Any]) -> list[Prim]:
    """Copepod: long prosome, narrow urosome with furca, antennules swept back."""
    ar = p.get("body", 2.6) * rng.uniform(0.9, 1.1)
    pro = _ellipse(-0.2, 0.0, 0.65, 0.65 / ar)
    pro[pro[:, 0] < -0.5, 1] *= 0.85
    uro = np.array([[0.4, 0.0], [1.0, rng.normal(0, 0.05)]])
    ant = p.get("antenna", 0.8)
    prims: list[Prim] = []
    for side in (-1, 1):
        a = side * rng.uniform(1.2, 1.6)
        tip = np.array([-0.75 + ant * math.cos(a) * 0.6, side * 0.05 + ant * math.sin(a)])
        prims.append(("line", np.array([[-0.75, side * 0.05], tip]), 0.035, 190))
        prims.append(("line", np.array([[1.0, 0], [1.25, side * 0.08]]), 0.02, 170))
    prims += [
        ("line", uro, 0.09, 200),
        ("poly", pro, rng.uniform(140, 200), 235),
        ("dots", np.array([[-0.7, 0.0]]), 0.05, 250),
    ]
    return prims


def shape_annelid(rng: Rng, p: dict[str, Any]) -> list[Prim]:
    """Polychaete larva/worm: chain of segments along a curve, with chaetae on both sides."""
    spine = _curve(rng, 2.0, n=int(rng.integers(6, 11)), bend=0.6)
    prims: list[Prim] = []
    for x, y in spine:
        for side in (-1, 1):
            prims.append(("line", np.array([[x, y], [x + 0.05, y + side * 0.28]]), 0.02, 170))
    prims.append(("line", spine, 0.22, 170))
    prims.append(("dots", spine, 0.1, 215))
    return prims


def shape_retaria(rng: Rng, p: dict[str, Any]) -> list[Prim]:
    """Radiolarian (sphere with fine radiating spines) or foraminifer (spiral of chambers)."""
    if rng.random() < 0.5:
        prims: list[Prim] = []
        for a in np.linspace(0, 2 * np.pi, 16, endpoint=False) + rng.uniform(0, 1):
            prims.append(("line", np.array([[0, 0], [math.cos(a), math.sin(a)]]), 0.02, 150))
        prims.append(("poly", _ellipse(0, 0, 0.5, 0.5), 190, 240))
        return prims
    prims = []
    for k in range(5):
        r = 0.2 + 0.07 * k
        a = 2.1 * k
        prims.append(
            (
                "poly",
                _ellipse(0.35 * math.cos(a) * k / 4, 0.35 * math.sin(a) * k / 4, r, r),
                170,
                235,
            )
        )
    return prims


def shape_pollen(rng: Rng, p: dict[str, Any]) -> list[Prim]:
    """Pollen grain: round textured body, often with two air sacs (bisaccate pine pollen)."""
    prims: list[Prim] = []
    if rng.random() < 0.6:
        for side in (-1, 1):
            prims.append(("poly", _ellipse(side * 0.55, 0.1, 0.45, 0.5), 90, 170))
    body = _ellipse(0, 0, 0.6, 0.55)
    prims.append(("poly", body, 150, 210))
    grid = np.stack(np.meshgrid(np.linspace(-0.4, 0.4, 5), np.linspace(-0.35, 0.35, 5)), -1)
    prims.append(("dots", grid.reshape(-1, 2) + rng.normal(0, 0.03, (25, 2)), 0.045, 225))
    return prims


def shape_zigzag(rng: Rng, p: dict[str, Any]) -> list[Prim]:
    """Thalassionema colony: thin rods joined end to end at alternating angles (zigzag/star)."""
    n = int(rng.integers(*p.get("n", (3, 8))))
    pts = [np.zeros(2)]
    a = rng.uniform(-0.5, 0.5)
    for i in range(n):
        a += (1 if i % 2 else -1) * rng.uniform(0.9, 1.6)
        pts.append(pts[-1] + [math.cos(a), math.sin(a)])
    prims = [
        ("line", np.array([pts[i], pts[i + 1]]), 0.07, 170) for i in range(n)
    ]  # separate lines: no fill between joints
    return prims


def shape_rhizosolenia(rng: Rng, p: dict[str, Any]) -> list[Prim]:
    """Rhizosolenid: long light cylinder with tapering pointed ends."""
    r = 1.0 / rng.uniform(7, 14)
    outline = np.array([[-1.0, 0], [-0.85, -r], [0.85, -r], [1.0, 0], [0.85, r], [-0.85, r]])
    chl = rng.uniform(-0.6, 0.6, (4, 2)) * [1, r]
    return [("poly", outline, 80, 200), ("dots", chl, r * 0.6, 170)]


def shape_chain(rng: Rng, p: dict[str, Any]) -> list[Prim]:
    """Chain-forming diatom: cells in a row; setae at each junction (none for ``chainlarge``)."""
    n = int(rng.integers(p["cells"][0], p["cells"][1] + 1))
    cell_w = 2.0 / n
    h = cell_w * (rng.uniform(0.9, 1.4) if p.get("setae") else rng.uniform(1.2, 1.8))
    prims: list[Prim] = []
    setae = p.get("setae", 2)
    thick = 0.035 if p.get("thick") else 0.015
    for k in range(n + 1):
        x = -1 + k * cell_w
        for j in range(setae):
            a = (j + 0.5) / setae * np.pi + rng.normal(0, 0.15)
            for side in (-1, 1):
                tip = [x + 0.9 * math.cos(a) * 0.5, side * (h / 2 + 0.9 * math.sin(a))]
                prims.append(("line", np.array([[x, side * h / 4], tip]), thick, 150))
    for k in range(n):
        x0 = -1 + k * cell_w + 0.02
        cell = np.array(
            [[x0, -h / 2], [x0 + cell_w - 0.04, -h / 2], [x0 + cell_w - 0.04, h / 2], [x0, h / 2]]
        )
        prims.append(("poly", cell, rng.uniform(90, 140), 210))
    return prims


def shape_hemiaulus(rng: Rng, p: dict[str, Any]) -> list[Prim]:
    """Hemiaulus: chain of cells linked by long horns at the corners (gaps between cells)."""
    n = int(rng.integers(2, 5))
    cw, gap, h = 1.4 / n, 0.6 / n, rng.uniform(0.3, 0.45)
    prims: list[Prim] = []
    for k in range(n):
        x0 = -1 + k * (cw + gap)
        cell = np.array([[x0, -h / 2], [x0 + cw, -h / 2], [x0 + cw, h / 2], [x0, h / 2]])
        prims.append(("poly", cell, 110, 210))
        for side in (-1, 1):
            prims.append(
                (
                    "line",
                    np.array([[x0 + cw, side * h / 2], [x0 + cw + gap, side * 0.8 * h / 2]]),
                    0.03,
                    200,
                )
            )
    return prims


def shape_odontella(rng: Rng, p: dict[str, Any]) -> list[Prim]:
    """Odontella: box-shaped cell with a horn on each of the four corners."""
    h = rng.uniform(0.6, 0.8)
    box = np.array([[-0.75, -h / 2], [0.75, -h / 2], [0.75, h / 2], [-0.75, h / 2]])
    prims: list[Prim] = [
        ("line", np.array([[sx * 0.65, sy * h / 2], [sx * 0.95, sy * (h / 2 + 0.3)]]), 0.06, 200)
        for sx in (-1, 1)
        for sy in (-1, 1)
    ]
    prims.append(("poly", box, rng.uniform(100, 150), 220))
    return prims


def shape_lithodesmium(rng: Rng, p: dict[str, Any]) -> list[Prim]:
    """Lithodesmioides: triangular prism, outer and inner triangle."""
    a = np.array([0, 2 * np.pi / 3, 4 * np.pi / 3]) + rng.normal(0, 0.1, 3)
    outer = np.column_stack([np.cos(a), np.sin(a)])
    return [("poly", outer, 100, 220), ("poly", outer * 0.6, 150, 230)]


def shape_star(rng: Rng, p: dict[str, Any]) -> list[Prim]:
    """Asterionellopsis: rods radiating from a centre, with thicker bases."""
    prims: list[Prim] = []
    n = int(rng.integers(4, 9))
    for a in rng.uniform(0, 2 * np.pi) + np.arange(n) * 2 * np.pi / n + rng.normal(0, 0.15, n):
        c, s = math.cos(a), math.sin(a)
        prims.append(("line", np.array([[0, 0], [c, s]]), 0.03, 170))
        prims.append(("line", np.array([[0, 0], [0.2 * c, 0.2 * s]]), 0.09, 200))
    return prims


def shape_pleurosigma(rng: Rng, p: dict[str, Any]) -> list[Prim]:
    """Pleurosigma: sigmoid lanceolate cell (S-shaped midline, tapering width)."""
    t = np.linspace(-1, 1, 15)
    mid = np.column_stack([t, 0.12 * np.sin(np.pi * t) * rng.choice([-1, 1])])
    half = 0.16 * np.sqrt(1 - t**2) + 0.01
    outline = np.vstack(
        [mid + np.column_stack([0 * t, half]), (mid - np.column_stack([0 * t, half]))[::-1]]
    )
    return [("poly", outline, rng.uniform(110, 160), 220), ("line", mid[2:-2], 0.015, 230)]


def shape_disc(rng: Rng, p: dict[str, Any]) -> list[Prim]:
    """Centric diatom in valve view: disc with a rim, with areolae for Coscinodiscids."""
    disc = _ellipse(0, 0, 1.0, rng.uniform(0.85, 1.0))
    prims: list[Prim] = [("poly", disc, rng.uniform(70, 110), 220)]
    if p.get("areolae"):
        r = np.sqrt(np.linspace(0.02, 0.7, 40))
        a = np.arange(40) * 2.4  # golden-angle spiral
        prims.append(("dots", np.column_stack([r * np.cos(a), r * np.sin(a)]), 0.05, 170))
    else:
        prims.append(("poly", _ellipse(0, 0, 0.3, 0.3), 160, 200))
    return prims


def shape_egg(rng: Rng, p: dict[str, Any]) -> list[Prim]:
    """Egg: round, a light membrane around a dark embryo."""
    r = rng.uniform(0.55, 0.8)
    return [("poly", _ellipse(0, 0, 1, 0.95), 45, 150), ("poly", _ellipse(0, 0, r, r), 200, 230)]


def shape_lorica(rng: Rng, p: dict[str, Any]) -> list[Prim]:
    """Tintinnid lorica in side view: bowl, collar and aboral end, with a wall texture."""
    j = rng.normal(1.0, 0.06, 4)
    bowl, rad, collar, flare = p["bowl"] * j[0], p["radius"] * j[1], p["collar"] * j[2], p["flare"]
    t = np.linspace(0, 1, 9)
    bowl_x = bowl * t
    if p["aboral"] == "point":
        bowl_r = rad * np.sin(np.pi / 2 * np.minimum(t * 1.6, 1.0)) ** 1.5
        bowl_x = np.concatenate([[-0.25 * bowl], bowl_x])
        bowl_r = np.concatenate([[0.0], bowl_r])
    elif p["aboral"] == "blunt":
        bowl_r = rad * np.sqrt(np.clip(0.15 + t * 2.5, 0, 1))
    else:
        bowl_r = rad * np.sqrt(np.sin(np.pi / 2 * np.minimum(t * 1.8, 1.0)))
    neck = 0.82 * rad
    coll_x = bowl + collar * np.array([0.15, 1.0])
    coll_r = np.array([neck, neck * (1 + flare * j[3] * 4)])
    xs = np.concatenate([bowl_x, coll_x])
    rs = np.concatenate([bowl_r, coll_r])
    xs = xs - xs.mean()
    outline = np.vstack([np.column_stack([xs, rs]), np.column_stack([xs, -rs])[::-1]])
    prims: list[Prim] = [("poly", outline, rng.uniform(90, 130), 225)]
    tex = p["tex"]
    x_mouth = xs[-1]
    if tex == "rings":
        for x in x_mouth - collar * np.linspace(0.15, 0.85, 4):
            prims.append(("line", np.array([[x, -neck], [x, neck]]), 0.02, 200))
    elif tex == "windows":
        cx = xs[len(bowl_x) - 1] - bowl * 0.15
        pts = [[cx - k * 0.12, y] for k in range(2) for y in np.linspace(-0.6, 0.6, 4) * rad]
        prims.append(("dots", np.array(pts), 0.035, 20))
    elif tex == "dots":
        prims.append(_specks(rng, outline, 14, 0.03, 200))
    elif tex == "ribs":
        for y in np.linspace(-0.6, 0.6, 4) * rad:
            prims.append(("line", np.array([[xs[1], y * 0.3], [x_mouth - collar, y]]), 0.015, 190))
    return prims


def shape_tintinnidium(rng: Rng, p: dict[str, Any]) -> list[Prim]:
    """Tintinnidiidae: soft irregular tube-like lorica, open at one end, agglutinated debris."""
    rad = rng.uniform(0.3, 0.4)
    t = np.linspace(-1, 1, 10)
    r = rad * (1 + rng.normal(0, 0.07, 10))
    r[0] *= 0.6
    outline = np.vstack([np.column_stack([t, r]), np.column_stack([t, -r])[::-1]])
    return [("poly", outline, rng.uniform(100, 150), 180), _specks(rng, outline, 12, 0.05, 210)]


def shape_artefact(rng: Rng, p: dict[str, Any]) -> list[Prim]:
    """Artefacts: air bubble (dark ring, light centre) or straight scratches."""
    if rng.random() < 0.5:
        return [
            ("poly", _ellipse(0, 0, 1, 1), 230, 250),
            ("poly", _ellipse(0, 0, 0.7, 0.7), 25, 60),
        ]
    return [
        ("line", np.array([[-1, rng.normal(0, 0.3)], [1, rng.normal(0, 0.3)]]), 0.05, 120)
        for _ in range(int(rng.integers(2, 5)))
    ]


#: Shapes that "multiple", "badfocus" and unlabelled rows borrow from.
_BORROWED = ("blob", "pellet", "copepod", "ceratium", "lorica", "chain", "disc", "rod")


def _borrow(rng: Rng) -> list[Prim]:
    names = [n for n, r in RECIPES.items() if r.shape in _BORROWED]
    r = RECIPES[names[int(rng.integers(len(names)))]]
    return SHAPES[r.shape](rng, r.params)


def shape_multiple(rng: Rng, p: dict[str, Any]) -> list[Prim]:
    """Several objects side by side (two to four borrowed shapes)."""
    prims: list[Prim] = []
    n = int(rng.integers(2, 5))
    for k in range(n):
        a = rng.uniform(0, 2 * np.pi)
        rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        offset = np.array([k * 1.7 - (n - 1) * 0.85, rng.normal(0, 0.6)])
        scale = rng.uniform(0.5, 0.9)
        for prim in _borrow(rng):
            kind, pts, *rest = prim
            pts = (np.asarray(pts, float) @ rot.T) * scale + offset
            if kind == "poly":
                prims.append((kind, pts, *rest))
            else:
                prims.append((kind, pts, rest[0] * scale, rest[1]))
    return prims


def shape_other(rng: Rng, p: dict[str, Any]) -> list[Prim]:
    """Unlabelled rows: any borrowed shape."""
    return _borrow(rng)


#: Drawing functions, by the ``shape`` of a recipe.
SHAPES: dict[str, Callable[[Rng, dict[str, Any]], list[Prim]]] = {
    "blob": shape_blob,
    "fiber": shape_fiber,
    "pellet": shape_pellet,
    "rod": shape_rod,
    "ceratium": shape_ceratium,
    "peridinium": shape_peridinium,
    "dinophysis": shape_dinophysis,
    "horrida": shape_horrida,
    "nauplius": shape_nauplius,
    "copepod": shape_copepod,
    "annelid": shape_annelid,
    "retaria": shape_retaria,
    "pollen": shape_pollen,
    "zigzag": shape_zigzag,
    "rhizosolenia": shape_rhizosolenia,
    "chain": shape_chain,
    "hemiaulus": shape_hemiaulus,
    "odontella": shape_odontella,
    "lithodesmium": shape_lithodesmium,
    "star": shape_star,
    "pleurosigma": shape_pleurosigma,
    "disc": shape_disc,
    "egg": shape_egg,
    "lorica": shape_lorica,
    "tintinnidium": shape_tintinnidium,
    "artefact": shape_artefact,
    "multiple": shape_multiple,
    "badfocus": shape_other,
    "other": shape_other,
}


# --------------------------------------------------------------------------------------------
# Rendering.
# --------------------------------------------------------------------------------------------


def _fit(prims: list[Prim], h: int, w: int, rng: Rng) -> tuple[np.ndarray, float, np.ndarray]:
    """Rotation matrix, scale and offset that fit the primitives into an h x w image."""
    pts = np.concatenate([np.asarray(p[1], float).reshape(-1, 2) for p in prims])
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    # The long axis (x, by convention) follows the image's long side, with some jitter.
    base = 0.0 if (hi - lo)[0] >= (hi - lo)[1] else np.pi / 2
    base += 0.0 if w >= h else np.pi / 2
    angle = base + rng.normal(0, 0.25) + np.pi * int(rng.integers(2))
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    r = pts @ rot.T
    lo, hi = r.min(axis=0), r.max(axis=0)
    margin = 1.0 + 0.06 * min(h, w)
    span = np.maximum(hi - lo, 1e-6)
    scale = min((w - 2 * margin) / span[0], (h - 2 * margin) / span[1])
    scale = max(scale, 1e-3)
    slack = np.maximum(np.array([w, h]) - 2 * margin - span * scale, 0)
    offset = margin + slack * rng.uniform(0.3, 0.7, 2) - lo * scale
    return rot, scale, offset


def _draw(prims: list[Prim], h: int, w: int, rng: Rng, ink_scale: float) -> Image.Image:
    """Draw the primitives as a darkness layer ("L", 0 = background)."""
    rot, scale, offset = _fit(prims, h, w, rng)
    layer = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(layer)
    for kind, pts, *rest in prims:
        xy = np.asarray(pts, float).reshape(-1, 2) @ rot.T * scale + offset
        if kind == "poly":
            fill, outline = rest
            d.polygon(
                [tuple(p) for p in xy.tolist()],
                fill=int(min(255, fill * ink_scale)),
                outline=int(min(255, outline * ink_scale)),
            )
        elif kind == "line":
            width, ink = rest
            d.line(
                [tuple(p) for p in xy.tolist()],
                fill=int(min(255, ink * ink_scale)),
                width=max(1, round(width * scale)),
            )
        else:  # dots
            radius, ink = rest
            r = max(0.6, radius * scale)
            fill = int(min(255, ink * ink_scale))
            for x, y in xy.tolist():
                d.ellipse((x - r, y - r, x + r, y + r), fill=fill)
    return layer


def render_image(
    level1: str, rng: np.random.Generator, size: tuple[int, int] | None = None
) -> np.ndarray:
    """Draw one synthetic image of a level1 class.

    Parameters
    ----------
    level1 : str
        A key of :data:`RECIPES` (a level1 class, or ``""`` for an unlabelled row).
    rng : numpy.random.Generator
        Source of all randomness of this image.
    size : (int, int), optional
        ``(height, width)``; drawn with :func:`sample_image_size` when omitted.

    Returns
    -------
    numpy.ndarray
        ``uint8`` array of shape (height, width): light background (about 200-245 with noise
        and vignetting), dark object.
    """
    recipe = RECIPES[level1]
    h, w = size if size is not None else sample_image_size(level1, rng)
    prims = SHAPES[recipe.shape](rng, recipe.params)
    layer = _draw(prims, h, w, rng, recipe.ink * rng.uniform(0.85, 1.1))
    # A little blur always (optics); badfocus much more, relative to the image size.
    radius = 0.4 + rng.uniform(0, 0.5) + recipe.blur * min(h, w) * rng.uniform(0.7, 1.3)
    peak = layer.getextrema()[1]
    layer = layer.filter(ImageFilter.GaussianBlur(radius))
    ink = np.asarray(layer, dtype=np.float32) * (1 / 255)
    if recipe.blur:
        # Heavy blur spreads thin objects into nothing: keep some contrast, as real
        # out-of-focus objects are still seen (and cropped) by the instrument.
        ink *= max(1.0, 0.6 * peak / 255 / max(float(ink.max()), 1e-3))

    bg = rng.uniform(205.0, 240.0)
    yy = np.linspace(-1, 1, h, dtype=np.float32)[:, None] ** 2
    xx = np.linspace(-1, 1, w, dtype=np.float32)[None, :] ** 2
    background = bg - rng.uniform(0, 10) * (yy + xx)  # vignetting: darker corners
    dark = rng.uniform(10, 40)
    img = background - ink * (background - dark)
    img += rng.uniform(1.0, 2.5) * rng.standard_normal((h, w), dtype=np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def encode_jpeg(gray: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """Encode a 2-D uint8 array as a grayscale JPEG."""
    buf = io.BytesIO()
    Image.fromarray(gray, mode="L").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def image_rng(seed: int, index: int) -> np.random.Generator:
    """The random generator of row ``index`` (its size, shape, noise and NaN cells)."""
    # Row index, not worker or chunk: the output does not depend on how work is split.
    return np.random.default_rng([seed, 1, index])


def render_row(seed: int, index: int, level1: str) -> tuple[bytes, list[float]]:
    """JPEG bytes and feature values (in :data:`FEATURE_COLUMNS` order) of row ``index``."""
    rng = image_rng(seed, index)
    jpeg = encode_jpeg(render_image(level1, rng))
    # Features of the image as stored, i.e. after JPEG compression, like a real export.
    decoded = np.asarray(Image.open(io.BytesIO(jpeg)))
    feats = compute_features(decoded)
    values = [feats[c] for c in FEATURE_COLUMNS]
    blank = rng.random(len(FEATURE_COLUMNS)) < NAN_FRACTION
    for k, c in enumerate(FEATURE_COLUMNS):
        if blank[k] and c not in SIZE_COLUMNS:
            values[k] = math.nan
    return jpeg, values


def _render_chunk(args: tuple[int, int, Sequence[str]]) -> tuple[list[bytes], list[list[float]]]:
    seed, start, level1s = args
    jpegs, feats = [], []
    for k, l1 in enumerate(level1s):
        jpeg, values = render_row(seed, start + k, l1)
        jpegs.append(jpeg)
        feats.append(values)
    return jpegs, feats


# --------------------------------------------------------------------------------------------
# The export.
# --------------------------------------------------------------------------------------------


def _split_counts(n: int, shares: Sequence[float]) -> list[int]:
    """Integers summing to n, proportional to shares (largest remainder)."""
    raw = np.asarray(shares, float) / sum(shares) * n
    out = np.floor(raw).astype(int)
    for k in np.argsort(-(raw - out), kind="stable")[: n - out.sum()]:
        out[k] += 1
    return out.tolist()


def make_meta(scale: float, seed: int) -> list[dict[str, Any]]:
    """The rows of meta.csv (shuffled classes, increasing objids) as dicts.

    Parameters
    ----------
    scale : float
        Fraction of the real export (see :func:`expected_level2_counts`).
    seed : int
        Seed of the shuffling and of the sample metadata.

    Returns
    -------
    list of dict
        One dict per row with the keys of :data:`META_COLUMNS`, in objid order.
    """
    rng = np.random.default_rng([seed, 0])
    counts = expected_level2_counts(scale)
    taxon_ids = {row["level1"]: 45000 + 7 * k for k, row in enumerate(taxonomy_table())}
    labels: list[tuple[str, str, str, str, int]] = []  # level1, level2, unique_name, lineage, id
    for l2, n in counts.items():
        if l2 == EMPTY_LABEL:
            for k, m in enumerate(_split_counts(n, [4, 2, 1, 1])):
                name, lineage = EMPTY_TAXA[k]
                labels += [("", "", name, lineage, 90000 + k)] * m
            continue
        subs = level1_classes(l2)
        for (l1, _), m in zip(subs, _split_counts(n, [s for _, s in subs]), strict=True):
            labels += [(l1, l2, unique_name(l1), level1_lineage(l1, l2), taxon_ids[l1])] * m
    order = rng.permutation(len(labels))
    n = len(labels)
    objids = 10_000_000 + np.cumsum(rng.integers(1, 60, n))
    # Rows come in samples (one net tow or bottle each): contiguous objid ranges.
    n_samples = max(1, n // 500)
    sample = np.sort(rng.integers(0, n_samples, n))
    s_lat = 43.685 + rng.normal(0, 0.03, n_samples)
    s_lon = 7.316 + rng.normal(0, 0.03, n_samples)
    s_day = rng.integers(0, 6 * 365, n_samples)
    s_sec = rng.integers(6 * 3600, 18 * 3600, n_samples)
    s_depth = rng.choice([20.0, 50.0, 75.0], n_samples)
    base = np.datetime64("2008-01-01")
    rows = []
    for k in range(n):
        l1, l2, name, lineage, taxon = labels[order[k]]
        s = sample[k]
        sec = int(s_sec[s]) + k % 900
        rows.append(
            {
                "objid": int(objids[k]),
                "projid": 2251 + int(s_day[s] // 730),
                "id": taxon,
                "status": "validated",
                "latitude": round(float(s_lat[s]), 4),
                "longitude": round(float(s_lon[s]), 4),
                "objdate": str(base + np.timedelta64(int(s_day[s]), "D")),
                "objtime": f"{sec // 3600:02d}:{sec // 60 % 60:02d}:{sec % 60:02d}",
                "depth_min": 0.0,
                "depth_max": float(s_depth[s]),
                "unique_name": name,
                "lineage": lineage,
                "level1": l1,
                "level2": l2,
            }
        )
    return rows


def _write_csv(path: Path, columns: Sequence[str], rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _format(v: float) -> str:
    return "" if math.isnan(v) else f"{v:.6g}"


def _chunks(level1s: Sequence[str], seed: int) -> Iterator[tuple[int, int, Sequence[str]]]:
    for start in range(0, len(level1s), CHUNK_ROWS):
        yield seed, start, level1s[start : start + CHUNK_ROWS]


def make_demo_export(
    out: str | Path,
    scale: float = 0.01,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
) -> Path:
    """Write a synthetic FlowCam/EcoTaxa export into the folder ``out``.

    Parameters
    ----------
    out : str or Path
        Folder to write (created if missing; existing files of the export are replaced).
    scale : float
        Fraction of the real export's 243,610 images (see :func:`expected_level2_counts`).
    seed : int
        Same seed, same bytes: meta.csv, taxo.csv, the features and every image.
    workers : int, optional
        Worker processes drawing the images; default the CPUs available. 1 draws in-process.
        The output does not depend on it.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    Path
        The export folder.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = make_meta(scale, seed)
    _write_csv(out / META_FILE, META_COLUMNS, rows)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["level1"]] = counts.get(r["level1"], 0) + 1
    taxo = [dict(t, count=counts.get(t["level1"], 0)) for t in taxonomy_table()]
    _write_csv(out / TAXO_FILE, TAXO_COLUMNS, taxo)

    level1s = [r["level1"] for r in rows]
    objids = [r["objid"] for r in rows]
    if workers is None:
        workers = (
            len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else os.cpu_count() or 1
        )
    bar = tqdm(total=len(rows), unit="img", desc="make-demo-data", disable=not progress)
    # mtime=0 and no file name in the gzip header: identical bytes for identical content.
    with (
        zipfile.ZipFile(
            out / IMAGES_FILE, "w", compression=zipfile.ZIP_STORED, allowZip64=True
        ) as zf,
        open(out / FEATURES_FILE, "wb") as raw,
        gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as gz,
        io.TextIOWrapper(gz, encoding="utf-8", newline="\n") as ft,
    ):
        ft.write(",".join(("objid", *FEATURE_COLUMNS)) + "\n")
        pool = ProcessPoolExecutor(max_workers=workers) if workers > 1 else None
        try:
            results = (
                pool.map(_render_chunk, _chunks(level1s, seed))
                if pool
                else map(_render_chunk, _chunks(level1s, seed))
            )
            i = 0
            for jpegs, feats in results:  # in row (= objid) order
                for jpeg, values in zip(jpegs, feats, strict=True):
                    info = zipfile.ZipInfo(f"imgs/{objids[i]}.jpg", date_time=_ZIP_DATE)
                    info.compress_type = zipfile.ZIP_STORED
                    info.external_attr = 0o644 << 16
                    zf.writestr(info, jpeg)
                    ft.write(f"{objids[i]}," + ",".join(_format(v) for v in values) + "\n")
                    i += 1
                bar.update(len(jpegs))
        finally:
            if pool:
                pool.shutdown(cancel_futures=True)
            bar.close()
    return out


# --------------------------------------------------------------------------------------------
# Preview.
# --------------------------------------------------------------------------------------------


def preview_sheet(export_dir: str | Path, out_png: str | Path, per_class: int = 8) -> Path:
    """Draw a grid of example images, one row per level2 class (largest first).

    Parameters
    ----------
    export_dir : str or Path
        A folder written by :func:`make_demo_export` (or a real export with the same layout).
    out_png : str or Path
        PNG file to write.
    per_class : int
        Examples per class (the first ones in objid order).

    Returns
    -------
    Path
        ``out_png``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    export_dir = Path(export_dir)
    meta = pd.read_csv(
        export_dir / META_FILE, usecols=["objid", "level1", "level2"], keep_default_na=False
    )
    classes = list(meta["level2"].value_counts().index)
    fig, axes = plt.subplots(
        len(classes), per_class, figsize=(1.3 * per_class + 2.2, 1.3 * len(classes)), squeeze=False
    )
    with zipfile.ZipFile(export_dir / IMAGES_FILE) as zf:
        for r, cls in enumerate(classes):
            sub = meta[meta["level2"] == cls]
            for c in range(per_class):
                ax = axes[r, c]
                ax.set_xticks([])
                ax.set_yticks([])
                for spine in ax.spines.values():
                    spine.set_visible(False)
                if c < len(sub):
                    row = sub.iloc[c]
                    img = np.asarray(Image.open(io.BytesIO(zf.read(f"imgs/{row.objid}.jpg"))))
                    ax.imshow(img, cmap="gray", vmin=0, vmax=255)
                    if row.level1 != cls:
                        ax.set_title(row.level1, fontsize=6)
            name = cls or "(no label)"
            axes[r, 0].set_ylabel(
                f"{name}\n{len(sub)}", rotation=0, ha="right", va="center", fontsize=9
            )
    fig.tight_layout()
    out_png = Path(out_png)
    fig.savefig(out_png, dpi=80)
    plt.close(fig)
    return out_png


def timed_export(**kwargs: Any) -> tuple[Path, int, float]:
    """Run :func:`make_demo_export`; return its folder, the number of rows and the seconds."""
    t0 = time.perf_counter()
    out = make_demo_export(**kwargs)
    seconds = time.perf_counter() - t0
    with open(out / META_FILE, encoding="utf-8") as f:
        n = sum(1 for _ in f) - 1
    return out, n, seconds
