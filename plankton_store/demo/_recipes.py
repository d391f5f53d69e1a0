"""Recipes: the morphology of every class of the demo export.

Every image is drawn from its class's recipe (:data:`RECIPES`): a morphology (``shape``, a key
of :data:`plankton_store.demo.SHAPES`), a size and aspect offset, blur and darkness. Related
classes share a shape with nearby parameters, so a classifier finds some classes easy and some
hard.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from plankton_store.demo._taxonomy import EMPTY_LABEL


@dataclass(frozen=True)
class Recipe:
    """How to draw one class.

    Attributes
    ----------
    shape : str
        Key of :data:`plankton_store.demo.SHAPES`, the drawing function.
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
