"""The store format: every array name, dimension, code table and attribute key, defined once.

A plankton store is one Zarr v3 group. Each sample (an image as stored, original or
augmented copy) is one index along the ``sample`` dimension of every per-sample array.
Readers in any language need only this page:

========================  ===================  ========  ==========================================
array                     dimensions           dtype     meaning
========================  ===================  ========  ==========================================
``images``                sample, y, x         uint8     grayscale image after decode/op/resize
``label``                 sample               int16     index into ``class_names`` (attrs)
``objid``                 sample               int64     instrument object id of the image
``split``                 sample               int8      ``split_codes`` (attrs); -1 = rejected
``source_objid``          sample               int64     objid an augmented copy came from, else -1
``augmentation``          sample               int8      ``augmentation_codes`` (attrs); 0 = none
``orig_height``           sample               int32     height before resizing (after the op)
``orig_width``            sample               int32     width before resizing (after the op)
``features_<table>``      sample, <table>_     float32   a feature table, columns in its attrs
                          feature                        (``features_computed``: computed from
                                                         the images by build-store)
``block_checksum``        block                uint64    crc32 of each written block + 2**32 once
                                                         written (0 = block not written yet)
========================  ===================  ========  ==========================================

No string arrays: tensorstore and other readers cannot read them. Strings live in attributes.
"""

from __future__ import annotations

from enum import IntEnum

#: Name of the format, stored in the root attributes.
FORMAT_NAME = "plankton-store"
#: Bumped whenever a reader of the previous version would misread a new store.
FORMAT_VERSION = 1

#: Key of the root attribute dictionary that holds everything this project writes.
ROOT_ATTRS_KEY = "plankton_store"

SAMPLE_DIM = "sample"
Y_DIM = "y"
X_DIM = "x"
BLOCK_DIM = "block"

IMAGES = "images"
LABEL = "label"
OBJID = "objid"
SPLIT = "split"
SOURCE_OBJID = "source_objid"
AUGMENTATION = "augmentation"
ORIG_HEIGHT = "orig_height"
ORIG_WIDTH = "orig_width"
BLOCK_CHECKSUM = "block_checksum"
FEATURES_PREFIX = "features_"
#: Feature table that build-store computes from the images (``--compute-features``).
COMPUTED_FEATURES = "computed"

#: Flag added to a block's crc32 so that a written block never reads as 0 (= not written).
BLOCK_WRITTEN_FLAG = 1 << 32

#: The per-sample 1-D arrays with their dtypes (``images`` and features are separate).
SAMPLE_ARRAYS: dict[str, str] = {
    LABEL: "int16",
    OBJID: "int64",
    SPLIT: "int8",
    SOURCE_OBJID: "int64",
    AUGMENTATION: "int8",
    ORIG_HEIGHT: "int32",
    ORIG_WIDTH: "int32",
}
#: Arrays whose values are only known once a worker has decoded the images of a block.
WORKER_ARRAYS = (IMAGES, ORIG_HEIGHT, ORIG_WIDTH)

#: Value of ``source_objid`` for an original (not augmented) sample.
NO_SOURCE = -1


class Split(IntEnum):
    """Codes of the ``split`` array."""

    REJECTED = -1  # planned, but its image could not be decoded (see STORE.rejects.csv)
    TRAIN = 0
    VAL = 1
    TEST = 2


#: Operations for augmented copies; the code is the index. 0 is the original image.
AUGMENTATIONS: tuple[str, ...] = (
    "none",
    "flip_lr",
    "flip_tb",
    "rot90",
    "blur",
    "smooth",
    "detail",
    "sharpen",
)

#: Suffix of the rejects table written beside a store (``STORE.rejects.csv``): one row per
#: input row that was not stored. Beside, not inside: Zarr tools warn about foreign files.
REJECTS_SUFFIX = ".rejects.csv"
REJECTS_COLUMNS = ("objid", "image", "reason")


def rejects_path(store: str) -> str:
    """Path or URL of the rejects table of ``store``."""
    return store.rstrip("/") + REJECTS_SUFFIX


def features_array_name(table: str) -> str:
    """Array name of a feature table, e.g. ``native`` -> ``features_native``."""
    return f"{FEATURES_PREFIX}{table}"


def features_dim_name(table: str) -> str:
    """Name of the column dimension of a feature table, e.g. ``native_feature``."""
    return f"{table}_feature"


def split_codes() -> dict[str, int]:
    """``{"train": 0, "val": 1, "test": 2, "rejected": -1}`` for the attributes."""
    return {s.name.lower(): int(s) for s in Split}


def augmentation_codes() -> dict[str, int]:
    """``{"none": 0, "flip_lr": 1, ...}`` for the attributes."""
    return {name: code for code, name in enumerate(AUGMENTATIONS)}
