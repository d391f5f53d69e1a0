"""An export's images as references: the members of ``imgs.zip`` or the files of ``imgs/``.

Each listing gives a frame of :func:`_ref_frame` (the reference, whether it is unsafe or
not an image, and the objid its name gives) and the bytes that fingerprint the images.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass

import numpy as np
import pandas as pd

from plankton_store.io._export import ExportError, _Deflated
from plankton_store.io._fetch import _is_unsafe
from plankton_store.io._fs import _Folder
from plankton_store.io._layout import IMAGE_EXTENSIONS, IMAGES_DIR, ZIP_NAME
from plankton_store.io._meta import _parse_int64
from plankton_store.io._zip import _open_zip
from plankton_store.io._zipdir import _read_zip_listing, _ZipListing


def _split_name(name: str) -> tuple[str, str]:
    """``"imgs/a/42.jpg"`` -> ``("42", ".jpg")``; ``".DS_Store"`` -> ``("", ".DS_Store")``."""
    stem, dot, ext = name.rpartition("/")[2].rpartition(".")
    return (stem, dot + ext) if dot else (ext, "")


#: Names looked at a time by :func:`_ref_frame`: the split names of 2.4 million zip
#: members at once (a tuple and two strings each) cost the listing process ~400 MB.
REF_PIECE_NAMES = 1 << 18


def _ref_frame(names: list[str], walked: bool = False) -> pd.DataFrame:
    """Columns ``ref`` (the name), ``unsafe`` (a path leading out of the folder; never for
    ``walked`` names, which a walk of the folder produced), ``not_image`` (no image file
    extension) and ``objid`` (Int64: the number an image is named by, NA for other names)."""
    pieces = [
        _ref_piece(names[start : start + REF_PIECE_NAMES], walked)
        for start in range(0, len(names), REF_PIECE_NAMES)
    ] or [_ref_piece([], walked)]
    return pd.DataFrame(
        {
            "ref": pd.Series(names, dtype="str"),
            "unsafe": np.concatenate([p[0] for p in pieces]),
            "not_image": np.concatenate([p[1] for p in pieces]),
            "objid": pd.concat([p[2] for p in pieces], ignore_index=True),
        }
    )


def _ref_piece(names: list[str], walked: bool) -> tuple[np.ndarray, np.ndarray, pd.Series]:
    """``unsafe``, ``not_image`` and ``objid`` of :func:`_ref_frame` for some names."""
    # Plain comprehensions: several times faster than pandas string methods here.
    parts = [_split_name(n) for n in names]
    unsafe = np.asarray(
        [
            not walked and (n[:1] in ("/", "\\") or (".." in n or ":" in n) and _is_unsafe(n))
            for n in names
        ],
        dtype=bool,
    )
    stem = pd.Series([p[0] for p in parts], dtype="str")
    extension = pd.Series([p[1] for p in parts], dtype="str")  # with its dot, as written
    del parts
    not_image = ~unsafe & ~extension.str.lower().isin(IMAGE_EXTENSIONS).to_numpy()
    usable = ~unsafe & ~not_image
    objid = pd.Series(pd.NA, index=stem.index, dtype="Int64")
    objid[usable] = _parse_int64(stem[usable])[1]
    return unsafe, not_image, objid


def _list_zip(folder: _Folder) -> tuple[_ZipListing, pd.DataFrame]:
    """The zip's listing and the frame of :func:`_ref_frame` (what another process can read
    for this one: the listing pickles as its names and entries array)."""
    try:
        with folder.open(ZIP_NAME) as f:
            listing = _read_zip_listing(f)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise ExportError(
            f"{folder.join(ZIP_NAME)}: not a readable zip file ({e}); re-create it, e.g. with "
            f"`zip -r0 {ZIP_NAME} {IMAGES_DIR}/`"
        ) from None
    return listing, _ref_frame(listing.names)


_EMPTY = np.zeros(0, dtype=np.int64)  # what an unpacked _PackedListing holds


@dataclass
class _PackedListing:
    """A zip's listing and its :func:`_ref_frame` as another process sends them: the names
    as one NUL-separated UTF-8 text (no Python string per member in the message), the
    frame's columns as arrays, the fingerprint text deflated (:class:`_Deflated`).
    :meth:`unpack` empties it: the future that brought it still holds it."""

    names: bytes
    count: int
    fingerprint: _Deflated
    entries: np.ndarray
    unsafe: np.ndarray
    not_image: np.ndarray
    objid: np.ndarray  # int64; 0 where ``has_objid`` is False (NA)
    has_objid: np.ndarray

    def unpack(self) -> tuple[_ZipListing, pd.DataFrame]:
        """The listing and the frame :func:`_list_zip` gave (once: this is emptied)."""
        text = self.names.decode("utf-8", "surrogatepass")
        self.names = b""
        names = text.split("\0") if self.count else []
        del text
        listing = _ZipListing(names, self.fingerprint, self.entries)  # type: ignore[arg-type]
        refs = pd.DataFrame(
            {
                "ref": pd.Series(names, dtype="str"),
                "unsafe": self.unsafe,
                "not_image": self.not_image,
                "objid": pd.arrays.IntegerArray(self.objid, ~self.has_objid),
            }
        )
        self.entries = self.unsafe = self.not_image = self.objid = self.has_objid = _EMPTY
        return listing, refs


def _list_zip_to_send(
    folder: _Folder,
) -> _PackedListing | tuple[_ZipListing, pd.DataFrame]:
    """:func:`_list_zip` in another process, packed (:class:`_PackedListing`): at 10x the
    reference (2.4 million members) the pickled names, the frame's strings and the
    fingerprint text made a 267 MB message whose arrival took the client from 668 to
    1,297 MiB. A listing with a NUL in a name (never from the one-pass reader) is sent as
    it is, its fingerprint deflated."""
    listing, refs = _list_zip(folder)
    fingerprint = _Deflated.of(listing.fingerprint)  # type: ignore[arg-type]
    names = "\0".join(listing.names)
    if names.count("\0") != max(len(listing.names) - 1, 0):
        return listing._replace(fingerprint=fingerprint), refs
    objid = refs["objid"].array
    return _PackedListing(
        names=names.encode("utf-8", "surrogatepass"),
        count=len(listing.names),
        fingerprint=fingerprint,
        entries=listing.entries,
        unsafe=refs["unsafe"].to_numpy(),
        not_image=refs["not_image"].to_numpy(),
        objid=objid.to_numpy(dtype=np.int64, na_value=0),
        has_objid=~objid.isna(),
    )


def _zip_listing(
    folder: _Folder,
    listed: _PackedListing | tuple[_ZipListing, pd.DataFrame] | None = None,
) -> tuple[pd.DataFrame, bytes | _Deflated]:
    """The file members of the zip, and its listing (name, CRC, size) to fingerprint.

    ``listed`` is what :func:`_list_zip_to_send` gave, when another process read the zip.
    """
    if isinstance(listed, _PackedListing):
        listed = listed.unpack()
    listing, refs = listed or _list_zip(folder)
    # The reader ImageFetcher.batch uses here: no second parse of the directory.
    _open_zip(folder.join(ZIP_NAME), folder.storage_options, listing.members, complete=True)
    return refs, listing.fingerprint


def _folder_listing(folder: _Folder, sub: str) -> tuple[pd.DataFrame, bytes]:
    files = folder.walk_files(sub)
    listing = "\n".join(f"{name}\t{size}" for name, size in files).encode()
    return _ref_frame([name for name, _ in files], walked=True), listing
