"""The export layouts: their names and the names of their files, defined once.

FlowCam / EcoTaxa layout::

    export/
        meta.csv                  objid, <label column>, any other columns
        imgs.zip                  members imgs/<objid>.jpg  (or an imgs/ folder instead)
        features_native.csv.gz    optional: objid + numeric columns
        features_skimage.csv.gz   optional
        taxo.csv                  optional, not read: the taxonomy of the labels

EcoTaxa TSV layout (read by :func:`plankton_store.io.read_ecotaxa_export`), a folder or
a ``.zip``::

    export/<any>/ecotaxa*.tsv     object_id, img_file_name, object_annotation_status,
                                  object_annotation_category, ... (or ecotaxa*.txt)
    export/<any>/<img_file_name>  the images, relative to their table's folder

EcoTaxa predictions (written by ``predict --format ecotaxa``)::

    predictions.zip
        ecotaxa_predictions.tsv   UTF-8 with BOM, tab-separated, column names then a type row
    predictions.api.csv           objid, object_id, category, hierarchy, score: for EcoTaxa's
                                  API (``/object_set/classify_auto``), beside the zip

Image-folder layout::

    root/<class>/<file>.jpg       label = <class>; files directly in root are unlabelled
"""

from __future__ import annotations

import os
import re
from pathlib import Path

#: Layout name of a FlowCam / EcoTaxa ``meta.csv`` export (``Export.layout``).
FLOWCAM_LAYOUT = "flowcam"
#: Layout name of a folder of class folders of images.
FOLDER_LAYOUT = "image-folder"
#: Name of the EcoTaxa TSV layout, also the ``predict --format`` that writes it.
ECOTAXA_LAYOUT = "ecotaxa"
#: The TSV member of the zip that ``predict --format ecotaxa`` writes.
ECOTAXA_PREDICTIONS_FILE = "ecotaxa_predictions.tsv"
#: Suffix of the CSV for EcoTaxa's API that ``predict --format ecotaxa`` writes beside its
#: zip (``predictions.zip`` -> ``predictions.api.csv``), and its columns.
ECOTAXA_API_SUFFIX = ".api.csv"
ECOTAXA_API_COLUMNS = ("objid", "object_id", "category", "hierarchy", "score")
#: An EcoTaxa export's tables: ``ecotaxa*.tsv`` or ``ecotaxa*.txt`` at any depth.
ECOTAXA_TABLE = re.compile(r"^ecotaxa[^/]*\.(?:tsv|txt)$")
#: The label column of an EcoTaxa export, and the statuses that make a label ground truth.
ECOTAXA_LABEL_COLUMN = "object_annotation_category"
ECOTAXA_STATUS_COLUMN = "object_annotation_status"
ECOTAXA_TRUSTED_STATUSES = ("validated",)
#: The lineage columns (root first): EcoTaxa's, joined with ``>``, and meta.csv's, joined
#: with ``/`` in EcoTaxa database dumps (or ``>``).
ECOTAXA_HIERARCHY_COLUMN = "object_annotation_hierarchy"
META_LINEAGE_COLUMN = "lineage"
LINEAGE_SEPARATOR = ">"
META_LINEAGE_SEPARATOR = "/"
#: The columns of a ``--taxonomy-map`` CSV.
TAXONOMY_MAP_COLUMNS = ("from", "to")
#: The statuses an EcoTaxa object can have (``--status`` takes a comma-separated few).
ECOTAXA_STATUSES = ("predicted", "validated", "dubious")
#: Name of the feature table holding an EcoTaxa export's numeric free ``object_*`` columns.
ECOTAXA_FEATURES = "ecotaxa"

META_FILE = "meta.csv"
ZIP_NAME = "imgs.zip"
IMAGES_DIR = "imgs"
TAXO_FILE = "taxo.csv"
#: Lower-case file extensions accepted as images.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff"})
#: Label column name reported for the image-folder layout.
FOLDER_LABEL_COLUMN = "folder"
#: A feature table's file: ``features_<name>.csv`` or ``.csv.gz``.
FEATURE_FILE = re.compile(r"^features_(?P<name>[A-Za-z0-9_]+)\.csv(?:\.gz)?$")


def feature_file(name: str) -> str:
    """The file of feature table ``name`` as writers name it: ``features_<name>.csv.gz``."""
    return f"features_{name}.csv.gz"


def ecotaxa_api_path(out: str | os.PathLike[str]) -> Path:
    """The API CSV beside the zip ``out``: ``predictions.zip`` -> ``predictions.api.csv``."""
    out = Path(out)
    return out.with_name(out.stem + ECOTAXA_API_SUFFIX)


def image_member(objid: int | str) -> str:
    """Where an export keeps the image of ``objid``: ``imgs/<objid>.jpg``."""
    return f"{IMAGES_DIR}/{objid}.jpg"
