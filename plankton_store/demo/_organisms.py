"""Shape painters of living plankton: dinoflagellates, animals, diatoms, tintinnids.

Each painter takes the image's random generator and its recipe's ``params`` and returns
primitives (see :mod:`plankton_store.demo._geometry`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from plankton_store.demo._geometry import Prim, Rng, curve, ellipse, specks, wobbly


def shape_ceratium(rng: Rng, p: dict[str, Any]) -> list[Prim]:
    """Neoceratium: small body with a long apical horn and one or two antapical horns."""
    body = ellipse(0.0, 0.0, 0.28, 0.2)
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
    body = wobbly(rng, 0.75, rng.uniform(0.6, 0.75), 0.05)
    return [
        ("line", np.array([[-0.6, 0.0], [-1.0, 0.0]]), 0.12, 180),
        ("line", np.array([[0.6, -0.25], [0.95, -0.35]]), 0.06, 180),
        ("line", np.array([[0.6, 0.25], [0.95, 0.35]]), 0.06, 180),
        ("poly", body, rng.uniform(110, 160), 220),
        ("line", np.array([[0.0, -0.68], [0.05, 0.68]]), 0.05, 220),  # cingulum
    ]


def shape_dinophysis(rng: Rng, p: dict[str, Any]) -> list[Prim]:
    """Dinophysiales: compressed oval body with a funnel-like cingular list at one end."""
    body = ellipse(0.1, 0.0, 0.8, rng.uniform(0.5, 0.65))
    sail = np.array([[-0.55, -0.3], [-0.95, -0.55], [-0.95, 0.55], [-0.55, 0.3]])
    return [("poly", sail, 90, 200), ("poly", body, rng.uniform(120, 170), 220)]


def shape_horrida(rng: Rng, p: dict[str, Any]) -> list[Prim]:
    """Ceratocorys horrida: round body with several long radiating spines."""
    prims: list[Prim] = []
    for a in rng.uniform(0, 2 * np.pi) + np.arange(5) * 2 * np.pi / 5 + rng.normal(0, 0.2, 5):
        prims.append(("line", np.array([[0, 0], [math.cos(a), math.sin(a)]]), 0.04, 180))
    prims.append(("poly", wobbly(rng, 0.4, 0.4, 0.05), 160, 230))
    return prims


def shape_nauplius(rng: Rng, p: dict[str, Any]) -> list[Prim]:
    """Nauplius larva: pear-shaped body with three pairs of setose appendages at the front."""
    body = ellipse(0.1, 0.0, 0.7, 0.45)
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
    pro = ellipse(-0.2, 0.0, 0.65, 0.65 / ar)
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
    spine = curve(rng, 2.0, n=int(rng.integers(6, 11)), bend=0.6)
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
        prims.append(("poly", ellipse(0, 0, 0.5, 0.5), 190, 240))
        return prims
    prims = []
    for k in range(5):
        r = 0.2 + 0.07 * k
        a = 2.1 * k
        prims.append(
            (
                "poly",
                ellipse(0.35 * math.cos(a) * k / 4, 0.35 * math.sin(a) * k / 4, r, r),
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
            prims.append(("poly", ellipse(side * 0.55, 0.1, 0.45, 0.5), 90, 170))
    body = ellipse(0, 0, 0.6, 0.55)
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
    disc = ellipse(0, 0, 1.0, rng.uniform(0.85, 1.0))
    prims: list[Prim] = [("poly", disc, rng.uniform(70, 110), 220)]
    if p.get("areolae"):
        r = np.sqrt(np.linspace(0.02, 0.7, 40))
        a = np.arange(40) * 2.4  # golden-angle spiral
        prims.append(("dots", np.column_stack([r * np.cos(a), r * np.sin(a)]), 0.05, 170))
    else:
        prims.append(("poly", ellipse(0, 0, 0.3, 0.3), 160, 200))
    return prims


def shape_egg(rng: Rng, p: dict[str, Any]) -> list[Prim]:
    """Egg: round, a light membrane around a dark embryo."""
    r = rng.uniform(0.55, 0.8)
    return [("poly", ellipse(0, 0, 1, 0.95), 45, 150), ("poly", ellipse(0, 0, r, r), 200, 230)]


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
        prims.append(specks(rng, outline, 14, 0.03, 200))
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
    return [("poly", outline, rng.uniform(100, 150), 180), specks(rng, outline, 12, 0.05, 210)]
