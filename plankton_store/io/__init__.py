"""Reading exports: FlowCam / EcoTaxa folders and image folders, their images and features.

Every reader returns an :class:`Export` (accepted rows, rejected rows with their reasons,
feature tables and a picklable :class:`ImageFetcher`); :func:`prepare_images` decodes and
resizes images exactly as the store keeps them, and :func:`compute_features` measures shape
and grey-level features from an image. The layouts and their file names are defined in
:mod:`plankton_store.io._layout`.
"""

from plankton_store.io._computed import (
    COMPUTED_COLUMNS,
    DESCRIPTOR_COLUMNS,
    FEATURE_COLUMNS,
    SIZE_COLUMNS,
    compute_features,
    object_mask,
    shape_descriptors,
)
from plankton_store.io._ecotaxa import (
    find_ecotaxa_tables,
    is_ecotaxa_zip,
    read_ecotaxa_export,
)
from plankton_store.io._ecotaxa_table import EcoTaxaTable, read_ecotaxa_table
from plankton_store.io._ecotaxa_write import (
    PREDICTED_STATUS,
    check_ecotaxa_limits,
    ecotaxa_predictions,
    ecotaxa_tsv,
    ecotaxa_types,
    write_ecotaxa_zip,
)
from plankton_store.io._export import Export, ExportError
from plankton_store.io._fetch import ImageFetcher
from plankton_store.io._flowcam import EXECUTOR_MIN_META_BYTES, read_flowcam_export
from plankton_store.io._folder import read_image_folder
from plankton_store.io._fs import is_url
from plankton_store.io._images import (
    GEOMETRIC_OPS,
    OPERATIONS,
    RESAMPLE,
    RESIZE_MODES,
    ImageDecodeError,
    ResizeMode,
    augment,
    background_level,
    decode_gray,
    draft_target,
    image_features,
    parse_size,
    prepare_image,
    prepare_images,
    resize,
)
from plankton_store.io._layout import (
    ECOTAXA_FEATURES,
    ECOTAXA_LABEL_COLUMN,
    ECOTAXA_LAYOUT,
    ECOTAXA_PREDICTIONS_FILE,
    ECOTAXA_STATUS_COLUMN,
    ECOTAXA_STATUSES,
    ECOTAXA_TABLE,
    ECOTAXA_TRUSTED_STATUSES,
    FEATURE_FILE,
    FLOWCAM_LAYOUT,
    FOLDER_LABEL_COLUMN,
    FOLDER_LAYOUT,
    IMAGE_EXTENSIONS,
    IMAGES_DIR,
    META_FILE,
    TAXO_FILE,
    ZIP_NAME,
    feature_file,
    image_member,
)
from plankton_store.io._read import read_export, read_source

__all__ = [
    "COMPUTED_COLUMNS",
    "DESCRIPTOR_COLUMNS",
    "ECOTAXA_FEATURES",
    "ECOTAXA_LABEL_COLUMN",
    "ECOTAXA_LAYOUT",
    "ECOTAXA_PREDICTIONS_FILE",
    "ECOTAXA_STATUSES",
    "ECOTAXA_STATUS_COLUMN",
    "ECOTAXA_TABLE",
    "ECOTAXA_TRUSTED_STATUSES",
    "EXECUTOR_MIN_META_BYTES",
    "FEATURE_COLUMNS",
    "FEATURE_FILE",
    "FLOWCAM_LAYOUT",
    "FOLDER_LABEL_COLUMN",
    "FOLDER_LAYOUT",
    "GEOMETRIC_OPS",
    "IMAGE_EXTENSIONS",
    "IMAGES_DIR",
    "META_FILE",
    "OPERATIONS",
    "PREDICTED_STATUS",
    "RESAMPLE",
    "RESIZE_MODES",
    "SIZE_COLUMNS",
    "TAXO_FILE",
    "ZIP_NAME",
    "EcoTaxaTable",
    "Export",
    "ExportError",
    "ImageDecodeError",
    "ImageFetcher",
    "ResizeMode",
    "augment",
    "background_level",
    "check_ecotaxa_limits",
    "compute_features",
    "decode_gray",
    "draft_target",
    "ecotaxa_predictions",
    "ecotaxa_tsv",
    "ecotaxa_types",
    "feature_file",
    "find_ecotaxa_tables",
    "image_features",
    "image_member",
    "is_ecotaxa_zip",
    "is_url",
    "object_mask",
    "parse_size",
    "prepare_image",
    "prepare_images",
    "read_ecotaxa_export",
    "read_ecotaxa_table",
    "read_export",
    "read_flowcam_export",
    "read_image_folder",
    "read_source",
    "resize",
    "shape_descriptors",
    "write_ecotaxa_zip",
]
