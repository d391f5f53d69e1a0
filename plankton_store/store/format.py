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
``provenance``            sample               int16     version that wrote the sample: index into
                                                         ``provenance_codes`` (attrs); absent = 0
``embedding_<name>``      sample, <name>_dim   float32   a network's embedding (``embed``); NaN =
                                                         not computed yet
``block_checksum``        block                uint64    crc32 of each written block + 2**32 once
                                                         written (0 = block not written yet)
========================  ===================  ========  ==========================================

No string arrays: tensorstore and other readers cannot read them. Strings live in attributes.

The root attributes are one dictionary under :data:`ROOT_ATTRS_KEY`; :class:`Attr` names its
keys and :func:`root_attrs` is the one place that assembles them for a new store.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from enum import IntEnum
from typing import Any

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
PROVENANCE = "provenance"
PROVENANCE_DTYPE = "int16"
FEATURES_PREFIX = "features_"
EMBEDDING_PREFIX = "embedding_"
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
    PROVENANCE: PROVENANCE_DTYPE,
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


def embedding_array_name(name: str) -> str:
    """Array name of an embedding, e.g. ``cnn`` -> ``embedding_cnn``."""
    return f"{EMBEDDING_PREFIX}{name}"


def embedding_dim_name(name: str) -> str:
    """Name of the column dimension of an embedding, e.g. ``cnn_dim``."""
    return f"{name}_dim"


def is_checksummed(name: str) -> bool:
    """Whether a block's checksum covers array ``name``: not the checksums themselves, nor
    what is written after the block (provenance of an ingest, embeddings)."""
    return name not in (BLOCK_CHECKSUM, PROVENANCE) and not name.startswith(EMBEDDING_PREFIX)


def version_rejects_path(store: str, version: str) -> str:
    """Rejects table of one ingest (``STORE.<version>.rejects.csv``), beside the store."""
    return f"{store.rstrip('/')}.{version}{REJECTS_SUFFIX}"


def split_codes() -> dict[str, int]:
    """``{"train": 0, "val": 1, "test": 2, "rejected": -1}`` for the attributes."""
    return {s.name.lower(): int(s) for s in Split}


def augmentation_codes() -> dict[str, int]:
    """``{"none": 0, "flip_lr": 1, ...}`` for the attributes."""
    return {name: code for code, name in enumerate(AUGMENTATIONS)}


class Attr:
    """Keys of the root attribute dictionary (``group.attrs[ROOT_ATTRS_KEY]``)."""

    #: :data:`FORMAT_NAME`, and :data:`FORMAT_VERSION` of the writer.
    FORMAT = "format"
    FORMAT_VERSION = "format_version"
    #: False until the build has written every block and its summary.
    COMPLETE = "complete"
    #: Samples per block (= per ``images`` shard); block ``i`` starts at ``i * block_size``.
    BLOCK_SIZE = "block_size"
    #: UTC times (ISO 8601) the build started and finished.
    CREATED = "created"
    FINISHED = "finished"
    #: Label names; the ``label`` array indexes this list.
    CLASS_NAMES = "class_names"
    #: The export column the labels came from.
    LABEL_COLUMN = "label_column"
    #: How the labels were regrouped (``plankton_store.io.Taxonomy.to_attrs``): the lineage
    #: level and the taxonomy map's content (``[[from, to], ...]``) and file name; absent
    #: or null when the labels are as read. Ingests must use the same.
    TAXONOMY = "taxonomy"
    #: Class name -> its lineage joined with ``>`` (root first), for the classes whose
    #: lineage the export told (``plankton_store.io.class_lineages``).
    CLASS_LINEAGES = "class_lineages"
    #: The code tables of the ``split`` and ``augmentation`` arrays.
    SPLIT_CODES = "split_codes"
    AUGMENTATION_CODES = "augmentation_codes"
    #: ``[height, width]`` of the stored images and how they were resized into it.
    IMAGE_SIZE = "image_size"
    RESIZE_MODE = "resize_mode"
    #: Every build option (``BuildOptions.to_attrs``); ``--resume`` reuses them.
    BUILD_OPTIONS = "build_options"
    #: The export: where it was, its layout and the digest of its content.
    SOURCE = "source"
    SOURCE_LAYOUT = "source_layout"
    INPUT_FINGERPRINT = "input_fingerprint"
    #: Digest of the input fingerprint and the build options: models record it.
    STORE_FINGERPRINT = "store_fingerprint"
    #: Feature table name -> its column names.
    FEATURE_COLUMNS = "feature_columns"
    #: The plankton-jobs version that built the store.
    VERSION = "plankton_jobs_version"
    #: The build's summary, written when it finishes.
    COUNTS = "counts"
    ROWS_READ = "rows_read"
    ROWS_STORED = "rows_stored"
    AUGMENTED_COPIES = "augmented_copies"
    ROWS_REJECTED = "rows_rejected"
    REJECT_REASONS = "reject_reasons"
    NOTES = "notes"
    BUILD_SECONDS = "build_seconds"
    #: Committed samples: readers trust this over the array shapes (an ingest writes
    #: beyond them before it commits). Absent in stores built before versions.
    N_SAMPLES = "n_samples"
    #: The versions log: one entry per build or ingest (see ``store._versions``).
    VERSIONS = "versions"
    #: Version id -> code of the ``provenance`` array.
    PROVENANCE_CODES = "provenance_codes"
    #: The ingest in progress (or failed): its version entry, until it commits.
    PENDING = "pending_ingest"


#: Attribute of a feature array: its column names.
COLUMNS_ATTR = "columns"


def now() -> str:
    """The current UTC time as the attributes record it (ISO 8601, seconds)."""
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def root_attrs(
    *,
    class_names: Sequence[str],
    label_column: str,
    image_size: tuple[int, int],
    resize_mode: str,
    block_size: int,
    build_options: Mapping[str, Any],
    source: str,
    source_layout: str,
    input_fingerprint: str,
    store_fingerprint: str,
    feature_columns: Mapping[str, Sequence[str]],
    version: str,
    taxonomy: Mapping[str, Any] | None = None,
    class_lineages: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The root attributes of a new, still incomplete store (see :class:`Attr`)."""
    return {
        Attr.FORMAT: FORMAT_NAME,
        Attr.FORMAT_VERSION: FORMAT_VERSION,
        Attr.CLASS_NAMES: list(class_names),
        Attr.LABEL_COLUMN: label_column,
        Attr.TAXONOMY: dict(taxonomy) if taxonomy else None,
        Attr.CLASS_LINEAGES: dict(class_lineages or {}),
        Attr.SPLIT_CODES: split_codes(),
        Attr.AUGMENTATION_CODES: augmentation_codes(),
        Attr.IMAGE_SIZE: list(image_size),
        Attr.RESIZE_MODE: resize_mode,
        Attr.BUILD_OPTIONS: dict(build_options),
        Attr.SOURCE: source,
        Attr.SOURCE_LAYOUT: source_layout,
        Attr.INPUT_FINGERPRINT: input_fingerprint,
        Attr.STORE_FINGERPRINT: store_fingerprint,
        Attr.FEATURE_COLUMNS: {t: list(c) for t, c in feature_columns.items()},
        Attr.VERSION: version,
        Attr.COMPLETE: False,
        Attr.BLOCK_SIZE: block_size,
        Attr.CREATED: now(),
    }
