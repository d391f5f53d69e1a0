"""Shape painters of non-living objects and mixtures, and the registry :data:`SHAPES`.

Detritus, faecal pellets, rods and artefacts are drawn here; ``multiple``, ``badfocus`` and
unlabelled rows borrow the shapes of other classes. The painters of living plankton are in
:mod:`plankton_store.demo._organisms`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from plankton_store.demo._geometry import Prim, Rng, curve, ellipse, specks, wobbly
from plankton_store.demo._organisms import (
    shape_annelid,
    shape_ceratium,
    shape_chain,
    shape_copepod,
    shape_dinophysis,
    shape_disc,
    shape_egg,
    shape_hemiaulus,
    shape_horrida,
    shape_lithodesmium,
    shape_lorica,
    shape_nauplius,
    shape_odontella,
    shape_peridinium,
    shape_pleurosigma,
    shape_pollen,
    shape_retaria,
    shape_rhizosolenia,
    shape_star,
    shape_tintinnidium,
    shape_zigzag,
)
from plankton_store.demo._recipes import RECIPES


def shape_blob(rng: Rng, p: dict[str, Any]) -> list[Prim]:
    """Amorphous detritus: irregular translucent blob with darker specks."""
    lo, hi = p.get("ink", (60, 150))
    outline = wobbly(rng, 1.0, rng.uniform(0.45, 1.0), p.get("rough", 0.3))
    ink = rng.uniform(lo, hi)
    prims: list[Prim] = [("poly", outline, ink, min(255, ink + 40))]
    if p.get("specks", 0):
        n = int(rng.integers(1, p["specks"] + 1))
        prims.append(specks(rng, outline, n, rng.uniform(0.03, 0.08), min(255, ink + 70)))
    return prims


def shape_fiber(rng: Rng, p: dict[str, Any]) -> list[Prim]:
    """Filaments: one (detritus fiber) or several tangled (silks)."""
    prims: list[Prim] = []
    for i in range(p.get("n", 1)):
        pts = curve(rng, 2.0, n=12, bend=1.2)
        if i:  # tangles: rotate and shift each extra filament a little
            a = rng.uniform(0, np.pi)
            rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
            pts = pts @ rot.T + rng.normal(0, 0.2, 2)
        prims.append(("line", pts, p.get("width", 0.04) * rng.uniform(0.7, 1.4), 150 + 60 * i % 90))
    return prims


def shape_pellet(rng: Rng, p: dict[str, Any]) -> list[Prim]:
    """Faecal pellet: dense dark capsule with a lighter granular texture."""
    ar = rng.uniform(*p.get("aspect", (2.0, 4.0)))
    outline = wobbly(rng, 1.0, 1.0 / ar, 0.06)
    outline[:, 0] = np.sign(outline[:, 0]) * np.abs(outline[:, 0]) ** 0.7  # squarer ends
    ink = rng.uniform(190, 235)
    return [("poly", outline, ink, 250), specks(rng, outline, 10, 0.04, ink - 60)]


def shape_rod(rng: Rng, p: dict[str, Any]) -> list[Prim]:
    """Straight thin rod with rounded ends."""
    ar = rng.uniform(*p.get("aspect", (6, 14)))
    return [("line", np.array([[-1.0, 0.0], [1.0, 0.0]]), 2.0 / ar, p.get("ink", 170))]


def shape_artefact(rng: Rng, p: dict[str, Any]) -> list[Prim]:
    """Artefacts: air bubble (dark ring, light centre) or straight scratches."""
    if rng.random() < 0.5:
        return [
            ("poly", ellipse(0, 0, 1, 1), 230, 250),
            ("poly", ellipse(0, 0, 0.7, 0.7), 25, 60),
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
