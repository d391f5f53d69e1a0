"""The image-folder reader: one sub-folder per class, or a flat folder of images.

The layout is described in :mod:`plankton_store.io._layout`.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import numpy as np
import pandas as pd

from plankton_store.io._export import Export, ExportError, _hash_part, _rejects_frame
from plankton_store.io._fetch import ImageFetcher
from plankton_store.io._fs import _Folder
from plankton_store.io._layout import FOLDER_LABEL_COLUMN, FOLDER_LAYOUT, IMAGE_EXTENSIONS

__all__ = ["read_image_folder"]


def read_image_folder(
    path: str | os.PathLike[str], storage_options: dict[str, Any] | None = None
) -> Export:
    """Read a folder of images, one sub-folder per class.

    ``<root>/<class>/<file>`` gets label ``<class>`` (the top-level folder, however deep
    the file is); files directly in ``root`` are unlabelled (``pd.NA``), so a flat folder
    of images is a valid input for prediction. objids are 1..N in sorted order of the
    relative posix path, which is also the image reference.

    Parameters
    ----------
    path : str or os.PathLike
        The root folder: a local path or an fsspec URL.
    storage_options : dict, optional
        fsspec options of a URL ``path``; None uses the fsspec configuration.

    Returns
    -------
    Export
        ``layout="image-folder"``, ``label_column="folder"``, no feature tables. Files
        whose extension is not an image extension are rejects.

    Raises
    ------
    ExportError
        The folder does not exist or holds no image file.
    """
    folder = _Folder(path, storage_options)
    root = folder.root
    if not folder.is_dir():
        raise ExportError(f"{root}: no such folder; give a folder of class sub-folders of images")
    files = folder.walk_files()
    names = [name for name, _ in files]
    is_image = np.fromiter(
        (os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS for n in names), bool, len(names)
    )
    if not is_image.any():
        other = f" (only {len(names)} other files)" if names else ""
        raise ExportError(
            f"{root}: no image files{other}; expected <class>/<file> with extensions "
            f"{', '.join(sorted(IMAGE_EXTENSIONS))}"
        )
    images = [n for n, ok in zip(names, is_image, strict=True) if ok]
    labels = [n.split("/", 1)[0] if "/" in n else pd.NA for n in images]
    table = pd.DataFrame(
        {
            "objid": np.arange(1, len(images) + 1, dtype=np.int64),
            "label": pd.array(labels, dtype="string"),
            "image": pd.Series(images, dtype="str"),
        }
    )
    others = [n for n, ok in zip(names, is_image, strict=True) if not ok]
    rejects = _rejects_frame(
        [
            pd.DataFrame(
                {
                    "objid": [pd.NA] * len(others),
                    "image": others,
                    "reason": ["not an image file extension"] * len(others),
                }
            )
        ]
    )
    digest = hashlib.sha256()
    _hash_part(digest, "images", "\n".join(f"{n}\t{s}" for n, s in files).encode())
    return Export(
        layout=FOLDER_LAYOUT,
        root=root,
        label_column=FOLDER_LABEL_COLUMN,
        table=table,
        rejects=rejects,
        features={},
        fetcher=ImageFetcher(root, None, storage_options),
        rows_read=len(names),
        fingerprint=digest.hexdigest()[:16],
    )
