"""The reference export's taxonomy: class counts, level1 sub-classes, names and lineages.

:data:`LEVEL2_COUNTS` holds the images per ``level2`` class of the real export; a demo export
at ``scale`` has :func:`expected_level2_counts` rows per class. Some ``level2`` groups are
split into finer ``level1`` classes (:func:`level1_classes`); every ``level1`` class has an
EcoTaxa-style unique name and a lineage (:func:`taxonomy_table`).
"""

from __future__ import annotations

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
