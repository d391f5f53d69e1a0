"""Readers for the inputs of a build: a FlowCam / EcoTaxa export or a folder of class folders.

Both readers return an :class:`Export`: one table row per accepted input row, one
``rejects`` row per input row that cannot be used (with a specific reason), the optional
feature tables and a picklable :class:`ImageFetcher` that returns an image's raw bytes. No
image is decoded here; that is the workers' job. Every input row ends up in exactly one of
``table`` and ``rejects``: ``len(table) + len(rejects) == rows_read``.

FlowCam / EcoTaxa layout::

    export/
        meta.csv                  objid, <label column>, any other columns
        imgs.zip                  members imgs/<objid>.jpg  (or an imgs/ folder instead)
        features_native.csv.gz    optional: objid + numeric columns
        features_skimage.csv.gz   optional

Image-folder layout::

    root/<class>/<file>.jpg       label = <class>; files directly in root are unlabelled

An export may be a local folder or an fsspec URL (``s3://bucket/export``, ``gs://...``,
``file:///...``). Local paths and ``file://`` URLs take a fast path through the OS; any
other URL is read through fsspec, whose endpoint and credentials come from the usual fsspec
configuration (``FSSPEC_S3_*`` environment variables, ``~/.config/fsspec/``, ``AWS_*``
variables for s3fs) or from ``storage_options``.
"""

from __future__ import annotations

import bisect
import csv
import gzip
import hashlib
import io
import itertools
import json
import os
import re
import struct
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import numpy as np
import pandas as pd

__all__ = [
    "EXECUTOR_MIN_META_BYTES",
    "IMAGE_EXTENSIONS",
    "Export",
    "ExportError",
    "ImageFetcher",
    "read_export",
    "read_flowcam_export",
    "read_image_folder",
]

META_FILE = "meta.csv"
ZIP_NAME = "imgs.zip"
IMAGES_DIR = "imgs"
#: Lower-case file extensions accepted as images.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff"})
#: Label column name reported for the image-folder layout.
FOLDER_LABEL_COLUMN = "folder"
#: The smallest meta.csv (about 14,000 rows) whose export :func:`read_flowcam_export` has
#: other processes help read: below it their round trips cost more than they save (the 1%
#: scaling export, 2,447 rows: 54-66 ms read alone, 75-124 ms with a 2-worker cluster's
#: help; about even for the 10% one, 24,501 rows and 3.7 MB of meta.csv).
EXECUTOR_MIN_META_BYTES = 2 << 20

_FEATURE_FILE = re.compile(r"^features_(?P<name>[A-Za-z0-9_]+)\.csv(?:\.gz)?$")
# An integer objid: optional sign, digits; surrounding blanks are tolerated.
_INT_RE = r"\s*[+-]?\d+\s*"
_INT64_MAX = np.iinfo(np.int64).max
_INT64_MIN = np.iinfo(np.int64).min


class ExportError(ValueError):
    """A structural problem with an export (no meta.csv, no label column, no images...).

    The message names the file and says what to do.
    """


# --------------------------------------------------------------------------- fetcher

# One open zip per (zip path, storage options, process): a forked or spawned worker never
# reuses the parent's file handle, whose file offset it would share.
_ZIP_CACHE: dict[tuple[str, str, int], Any] = {}
_ZIP_CACHE_LOCK = threading.Lock()
_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")  # zip local file header, 30 bytes
_LOCAL_HEADER_SLACK = 256  # local extra fields may be longer than the central directory's
# Batched remote reads merge member ranges less than _MERGE_GAP apart, up to _MERGE_BLOCK.
_MERGE_GAP = 16 * 1024
_MERGE_BLOCK = 8 * 1024 * 1024


def is_url(path: str | os.PathLike[str]) -> bool:
    """True for an fsspec URL read through fsspec; False for a local path or ``file://``."""
    text = os.fspath(path)
    return isinstance(text, str) and ("://" in text or "::" in text) and not _local_url(text)


def _local_url(text: str) -> bool:
    return text.startswith(("file://", "local://"))


def _local_path(text: str) -> str:
    """A plain path from a path or a ``file://`` / ``local://`` URL."""
    return text.split("://", 1)[1] if _local_url(text) else text


def _options_key(storage_options: dict[str, Any] | None) -> str:
    if not storage_options:  # the common case, on the per-image path: skip the JSON
        return ""
    return json.dumps(storage_options, sort_keys=True, default=str)


def _filesystem(url: str, storage_options: dict[str, Any] | None) -> tuple[Any, str]:
    import fsspec

    return fsspec.core.url_to_fs(url, **(storage_options or {}))


# Where one zip member lies and how to check it, what a read needs from the central
# directory: (header offset, compressed size, compression method, CRC-32, length of the
# directory's extra field). A plain tuple: a ZipInfo is ten times larger to ship with a
# task, and building or pickling 243,610 named tuples cost the client about a second.
_ZipMember = tuple[int, int, int, int, int]


class _ZipListing(NamedTuple):
    """What readers need from a zip's central directory."""

    names: list[str]  # file members (no folders), in directory order
    fingerprint: bytes  # "name<TAB>CRC<TAB>size" of every entry, for the export fingerprint
    entries: np.ndarray  # (len(names), 5) int64: the members' _ZipMember fields, in order

    @property
    def members(self) -> _ListingMembers:
        """Name -> :data:`_ZipMember`, read from ``entries``."""
        return _ListingMembers(self.names, self.entries)


# An entries row for a name the zip does not hold (a member's header offset is never < 0).
_NO_ENTRY = (-1, 0, 0, 0, 0)


class _ListingMembers(Mapping[str, _ZipMember]):
    """A whole listing's members, name -> :data:`_ZipMember`, each read from the entries
    array when asked for: 243,610 tuples built up front cost the client ~0.2 s before the
    first task, and only the names index (built on first use) is needed to ship entries."""

    def __init__(self, names: list[str], entries: np.ndarray) -> None:
        self.names = names
        self.entries = entries
        self._lookup: tuple[pd.Index, np.ndarray] | None = None  # see _names_index

    def _names_index(self) -> tuple[pd.Index, np.ndarray]:
        """The distinct names as a hashed Index, and each one's row in ``entries``."""
        if self._lookup is None:
            listed = pd.Index(self.names, dtype=object)
            last = ~listed.duplicated(keep="last")  # a repeated name: the last one wins
            self._lookup = (listed[last], np.flatnonzero(last))
        return self._lookup

    def __getitem__(self, name: str) -> _ZipMember:
        unique, rows_of = self._names_index()
        row = rows_of[unique.get_loc(name)]  # KeyError when not listed
        return tuple(self.entries[row].tolist())  # type: ignore[return-value]

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(self.names))

    def __len__(self) -> int:
        return len(dict.fromkeys(self.names))

    def entries_of(self, names: Sequence[str]) -> np.ndarray:
        """The rows of ``names``, a :data:`_NO_ENTRY` row for a name not listed."""
        # One hash lookup in C for all the names: a block's 4,096 one by one in Python
        # cost the client ~4 ms, ~0.25 s before the reference build's last block was sent.
        unique, rows_of = self._names_index()
        found = unique.get_indexer(pd.Index(names, dtype=object))  # -1: not listed
        entries = np.empty((len(found), len(_NO_ENTRY)), dtype=np.int64)
        entries[:] = _NO_ENTRY
        hit = found >= 0
        entries[hit] = self.entries[rows_of[found[hit]]]
        return entries


_END_RECORD = struct.Struct("<4s4H2LH")  # end of central directory record, 22 bytes
_ZIP64_LOCATOR = struct.Struct("<4sLQL")  # zip64 end of central directory locator, 20 bytes
_ZIP64_END_RECORD = struct.Struct("<4sQ2H2L4Q")  # zip64 end of central directory, 56 bytes
# Central directory file header (46 bytes), then name, extra field and comment.
_CENTRAL_HEADER = np.dtype(
    [
        ("magic", "S4"),
        ("made_by", "<u2"),
        ("needed", "<u2"),
        ("flags", "<u2"),
        ("method", "<u2"),
        ("time", "<u2"),
        ("date", "<u2"),
        ("crc", "<u4"),
        ("packed", "<u4"),
        ("size", "<u4"),
        ("name_length", "<u2"),
        ("extra_length", "<u2"),
        ("comment_length", "<u2"),
        ("disk", "<u2"),
        ("internal_attributes", "<u2"),
        ("external_attributes", "<u4"),
        ("offset", "<u4"),
    ]
)
_VARIABLE_LENGTHS = struct.Struct("<28x3H")  # name, extra and comment lengths of a header
# The header fields of a _ZipMember, in its order.
_MEMBER_FIELDS = ("offset", "packed", "method", "crc", "extra_length")
_UTF8_NAME = 0x800  # general purpose flag: the name is UTF-8, not cp437
_ZIP64_MARK = 0xFFFFFFFF  # a 32-bit field whose value lies in the zip64 extra field


def _read_zip_listing(file: BinaryIO) -> _ZipListing:
    """List a zip's members from its central directory (``file`` is seekable, binary).

    The directory is read in two requests and parsed in one pass over its records:
    ``zipfile`` builds a ``ZipInfo`` per entry, about 15 us each, so 3.7 s of the client's
    time for the 243,610 images of the reference workload before any task could start
    (a tenth of the build). Zips this pass does not parse exactly as ``zipfile`` does
    (zip64 entries, data before the zip, split archives, NUL bytes in names) and damaged
    ones are listed by ``zipfile``, which also gives damaged ones their error.
    """
    directory = _central_directory(file)
    listing = None if directory is None else _parse_central_directory(directory)
    if listing is not None:
        return listing
    file.seek(0)
    with zipfile.ZipFile(file) as zf:
        infos = zf.infolist()
    files = [i for i in infos if not i.is_dir()]
    fields = [
        (i.header_offset, i.compress_size, i.compress_type, i.CRC, len(i.extra)) for i in files
    ]
    names = [i.filename for i in files]
    entries = np.array(fields, dtype=np.int64).reshape(-1, len(_MEMBER_FIELDS))
    fingerprint = "\n".join(f"{i.filename}\t{i.CRC}\t{i.file_size}" for i in infos)
    return _ZipListing(names, fingerprint.encode(), entries)


def _central_directory(file: BinaryIO) -> tuple[bytes, int] | None:
    """The central directory's bytes and its entry count, or None when in doubt."""
    size = file.seek(0, os.SEEK_END)
    tail_size = min(size, _ZIP64_LOCATOR.size + _END_RECORD.size + 0xFFFF)  # + longest comment
    file.seek(size - tail_size)
    tail = file.read(tail_size)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + _END_RECORD.size > len(tail):
        return None
    _, disk, directory_disk, _, entries, length, offset, comment = _END_RECORD.unpack_from(tail, at)
    end_record = size - tail_size + at
    if at + _END_RECORD.size + comment != len(tail) or disk or directory_disk:
        return None
    if entries == 0xFFFF or length == _ZIP64_MARK or offset == _ZIP64_MARK:
        if at < _ZIP64_LOCATOR.size:
            return None
        magic, _, end_record, _ = _ZIP64_LOCATOR.unpack_from(tail, at - _ZIP64_LOCATOR.size)
        if magic != b"PK\x06\x07":
            return None
        file.seek(end_record)
        record = file.read(_ZIP64_END_RECORD.size)
        if len(record) != _ZIP64_END_RECORD.size:
            return None
        magic, _, _, _, disk, directory_disk, _, entries, length, offset = _ZIP64_END_RECORD.unpack(
            record
        )
        if magic != b"PK\x06\x06" or disk or directory_disk:
            return None
    if offset + length != end_record:  # data before the zip shifts every offset: zipfile
        return None
    file.seek(offset)
    directory = file.read(length)
    return (directory, entries) if len(directory) == length else None


def _record_starts(data: bytes) -> np.ndarray | None:
    """Offsets of the central directory's records, or None when a record runs past the end.

    Each record holds the length of its variable part, so the records form a chain. Every
    place the record signature occurs is taken as a record and the chain is checked in one
    vectorised pass; only when a signature also occurs inside a name or an extra field
    does the check fail, and the chain is walked record by record (0.5 s in Python for the
    reference workload's 243,610 entries, against ~30 ms).
    """
    raw = np.frombuffer(data, np.uint8)
    size = _CENTRAL_HEADER.itemsize
    if len(raw) >= size:
        at = np.flatnonzero(
            (raw[:-3] == ord("P")) & (raw[1:-2] == ord("K")) & (raw[2:-1] == 1) & (raw[3:] == 2)
        )
        at = at[at <= len(raw) - size]
        if len(at) and at[0] == 0:
            lengths = raw[at[:, None] + np.arange(28, 34)].astype(np.int64)
            ends = at + size + lengths[:, 0::2].sum(axis=1) + 256 * lengths[:, 1::2].sum(axis=1)
            if (ends[:-1] == at[1:]).all() and ends[-1] == len(raw):
                return at
    starts = []
    pos = 0
    try:
        while pos < len(data):
            starts.append(pos)
            name_length, extra_length, comment_length = _VARIABLE_LENGTHS.unpack_from(data, pos)
            pos += size + name_length + extra_length + comment_length
    except struct.error:
        return None
    return np.asarray(starts, dtype=np.int64) if pos == len(data) else None


def _parse_central_directory(directory: tuple[bytes, int]) -> _ZipListing | None:
    data, entries = directory
    # Find the records, then read their fixed parts all at once.
    at = _record_starts(data)
    if at is None or len(at) != entries or not len(at):
        return None
    raw = np.frombuffer(data, np.uint8)
    header = raw[at[:, None] + np.arange(_CENTRAL_HEADER.itemsize)].view(_CENTRAL_HEADER)[:, 0]
    if (header["magic"] != b"PK\x01\x02").any():
        return None
    if any((header[f] == _ZIP64_MARK).any() for f in ("packed", "size", "offset")):
        return None  # zip64 entries: their real values lie in extra fields
    name_starts = (at + _CENTRAL_HEADER.itemsize).tolist()
    name_ends = (at + _CENTRAL_HEADER.itemsize + header["name_length"]).tolist()
    raw_names = [data[a:b] for a, b in zip(name_starts, name_ends, strict=True)]
    all_names = [""] * len(raw_names)
    utf8 = header["flags"] & _UTF8_NAME != 0
    for encoding, group in (("utf-8", np.flatnonzero(utf8)), ("cp437", np.flatnonzero(~utf8))):
        if not len(group):
            continue
        # One decode for all the names of an encoding, NUL-separated.
        decoded = b"\x00".join([raw_names[i] for i in group]).decode(encoding).split("\x00")
        if len(decoded) != len(group):  # a NUL byte in a name
            return None
        for i, name in zip(group.tolist(), decoded, strict=True):
            all_names[i] = name
    crc, size = header["crc"].tolist(), header["size"].tolist()
    fingerprint = "\n".join(
        map("\t".join, zip(all_names, map(str, crc), map(str, size), strict=True))
    ).encode()
    is_file = [not name.endswith("/") for name in all_names]
    files = np.flatnonzero(is_file)
    names = [all_names[i] for i in files]
    entries = np.stack([header[f][files].astype(np.int64) for f in _MEMBER_FIELDS], axis=1)
    return _ZipListing(names, fingerprint, entries)


class _IndexedZip:
    """Zip members read straight from their byte ranges, found once in the central directory.

    Block tasks read images in plan order, which is shuffled with respect to the zip, so a
    buffered reader would fetch a whole buffer per image, and ``zipfile.ZipFile.read`` costs
    more per small member than decoding it; here each read touches just the member's range.
    The index may start with just the members a block task shipped (``complete`` False): the
    central directory, 243,610 entries for the reference workload, is then read and parsed
    only if a member outside them is asked for. Subclasses say how a byte range is read and
    how the directory is listed.
    """

    url: str
    size: int
    # A listing's members, or a dict of some (shipped with a block task) and those found.
    members: Mapping[str, _ZipMember]
    complete: bool

    def read_range(self, start: int, end: int) -> bytes:
        raise NotImplementedError

    def entries_of(self, names: Sequence[str]) -> np.ndarray:
        """The members' entries as an ``(n, 5)`` int64 array, a :data:`_NO_ENTRY` row for a
        name outside the known members: what a block task ships, since thousands of
        tuples cost the client, the scheduler and the worker a pickling each."""
        if isinstance(self.members, _ListingMembers):
            return self.members.entries_of(names)
        rows = [self.members.get(name, _NO_ENTRY) for name in names]
        return np.array(rows, dtype=np.int64).reshape(-1, len(_NO_ENTRY))

    def list_members(self) -> Mapping[str, _ZipMember]:
        raise NotImplementedError

    def add_members(self, members: dict[str, _ZipMember]) -> None:
        """Known members (from the client's listing of this zip), so they need no lookup."""
        if not self.complete:  # a complete index holds them already
            self.members.update(members)  # type: ignore[attr-defined]

    def member(self, name: str) -> _ZipMember:
        """The member's entry; KeyError when the zip has no such member."""
        try:
            return self.members[name]
        except KeyError:
            if self.complete:
                raise
        with _ZIP_CACHE_LOCK:
            if not self.complete:
                self.members = {**self.list_members(), **self.members}
                self.complete = True
        return self.members[name]

    def member_range(self, name: str, member: _ZipMember | None = None) -> tuple[int, int]:
        """Byte range that usually holds the member's local header and data."""
        offset, packed, _, _, extra_len = member or self.member(name)
        guess = _LOCAL_HEADER.size + len(name.encode()) + extra_len + _LOCAL_HEADER_SLACK
        return offset, min(offset + guess + packed, self.size)

    def read(self, name: str) -> bytes:
        """The member's uncompressed bytes; KeyError when there is no such member."""
        member = self.member(name)
        return self.extract(name, self.read_range(*self.member_range(name, member)), member)

    def extract(self, name: str, buf: bytes, member: _ZipMember | None = None) -> bytes:
        """The member's bytes from ``buf``, which starts at its local header."""
        start, packed, method, crc, _ = member or self.member(name)
        if method not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise zipfile.BadZipFile(
                f"{self.url}: {name} uses compression {method}; "
                "re-create the zip with stored or deflated members"
            )
        magic, *_, name_len, extra_len = _LOCAL_HEADER.unpack_from(buf)
        if magic != b"PK\x03\x04":
            raise zipfile.BadZipFile(f"{self.url}: bad local header for {name}")
        begin = _LOCAL_HEADER.size + name_len + extra_len
        stop = begin + packed
        if stop > len(buf):  # an unusually long local extra field: read the rest
            buf += self.read_range(start + len(buf), start + stop)
        data = buf[begin:stop]
        if method == zipfile.ZIP_DEFLATED:
            data = zlib.decompress(data, -15)
        if zlib.crc32(data) != crc:
            raise zipfile.BadZipFile(f"{self.url}: bad CRC-32 for {name}")
        return data


def _index(
    members: Mapping[str, _ZipMember] | None,
    complete: bool,
    list_members: Callable[[], Mapping[str, _ZipMember]],
) -> Mapping[str, _ZipMember]:
    """A reader's first index: the directory's, a complete listing as given, or a copy of
    some members (the reader adds to it)."""
    if members is None:
        return list_members()
    return members if complete else dict(members)


class _LocalZip(_IndexedZip):
    """A local zip read with ``os.pread``: no seek, no per-member file object."""

    def __init__(
        self,
        path: str,
        members: Mapping[str, _ZipMember] | None = None,
        complete: bool = False,
    ) -> None:
        self.url = path
        self.complete = members is None or complete
        self.members = _index(members, complete, self.list_members)
        self.fd = os.open(path, os.O_RDONLY)
        self.size = os.fstat(self.fd).st_size

    def list_members(self) -> Mapping[str, _ZipMember]:
        with open(self.url, "rb") as f:
            return _read_zip_listing(f).members

    def read_range(self, start: int, end: int) -> bytes:
        return os.pread(self.fd, end - start, start)

    def __del__(self) -> None:
        # Closed when the last reference goes (a replaced reader may still serve a read).
        if getattr(self, "fd", None) is not None:
            os.close(self.fd)


class _RemoteZip(_IndexedZip):
    """Members of a zip on an object store, each read with one ranged request."""

    def __init__(
        self,
        url: str,
        storage_options: dict[str, Any] | None,
        members: Mapping[str, _ZipMember] | None = None,
        complete: bool = False,
    ) -> None:
        self.url = url
        self.fs, self.path = _filesystem(url, storage_options)
        self.complete = members is None or complete
        self.members = _index(members, complete, self.list_members)
        self.size = self.fs.size(self.path)

    def list_members(self) -> Mapping[str, _ZipMember]:
        with self.fs.open(self.path, "rb") as f:
            return _read_zip_listing(f).members

    def read_range(self, start: int, end: int) -> bytes:
        # Keywords: s3fs's third positional parameter is version_id.
        return self.fs.cat_file(self.path, start=start, end=end)

    def read_many(self, names: list[str]) -> dict[str, bytes | Exception]:
        """Several members with few, concurrent requests (nearby ranges merged)."""
        from fsspec.utils import merge_offset_ranges

        out: dict[str, bytes | Exception] = {}
        wanted = []
        for name in dict.fromkeys(names):
            try:
                wanted.append((*self.member_range(name), name))
            except KeyError as exc:
                out[name] = exc
        wanted.sort()
        if not wanted:
            return out
        _, starts, ends = merge_offset_ranges(
            [self.path] * len(wanted),
            [w[0] for w in wanted],
            [w[1] for w in wanted],
            max_gap=_MERGE_GAP,
            max_block=_MERGE_BLOCK,
            sort=True,
        )
        blocks = self.fs.cat_ranges([self.path] * len(starts), starts, ends, on_error="return")
        for start, end, name in wanted:
            i = bisect.bisect_right(starts, start) - 1
            block = blocks[i]
            try:
                if isinstance(block, Exception):
                    raise block
                out[name] = self.extract(name, block[start - starts[i] : end - starts[i]])
            except (OSError, zipfile.BadZipFile, zlib.error) as exc:
                out[name] = exc
        return out


def _open_zip(
    path: str,
    storage_options: dict[str, Any] | None = None,
    members: Mapping[str, _ZipMember] | None = None,
    complete: bool = False,
) -> Any:
    """This process's reader of the zip at ``path``. ``members`` (some, or all when
    ``complete``: a fresh listing, which replaces this process's reader) spare it from
    reading the central directory for those members."""
    key = (path, _options_key(storage_options), os.getpid())
    zf = _ZIP_CACHE.get(key)
    if complete and zf is not None:
        with _ZIP_CACHE_LOCK:
            _ZIP_CACHE.pop(key, None)
        zf = None
    if zf is None:
        with _ZIP_CACHE_LOCK:
            zf = _ZIP_CACHE.get(key)
            if zf is None:
                if is_url(path):
                    zf = _RemoteZip(path, storage_options, members, complete)
                else:
                    zf = _LocalZip(_local_path(path), members, complete)
                _ZIP_CACHE[key] = zf
                return zf
    if members:
        with _ZIP_CACHE_LOCK:
            zf.add_members(members)
    return zf


def _read_member(zf: _IndexedZip, ref: str, zip_path: str) -> bytes:
    """A zip member's bytes, with :meth:`ImageFetcher.fetch`'s errors."""
    try:
        return zf.read(ref)
    except KeyError:
        raise FileNotFoundError(f"no image {ref!r} in {zip_path}") from None
    except (zipfile.BadZipFile, zlib.error) as exc:
        # An OSError, like any other unreadable file: the row is rejected, not fatal.
        raise OSError(f"corrupt zip member {ref!r}: {exc}") from None


@dataclass(frozen=True)
class ImageFetcher:
    """Picklable, cheap: fetches one image's raw bytes by its reference.

    Each process opens the zip (or the remote filesystem) itself, lazily, once (the cache
    is keyed on ``(zip path, storage options, os.getpid())``), and reads its central
    directory only for a member that no :meth:`batch` brought along; no file handle is ever
    pickled. Concurrent calls from threads of one process are safe (positioned reads, no
    shared file offset).

    Parameters
    ----------
    root : str
        Absolute path or fsspec URL of the export folder or image-folder root.
    zip_name : str or None
        ``"imgs.zip"`` when the images are in a zip inside ``root``, else ``None`` (the
        images are files under ``root``).
    storage_options : dict or None
        fsspec options of a URL ``root`` (endpoint, credentials...); None uses the fsspec
        configuration of each process (environment, config files).
    """

    root: str
    zip_name: str | None = None
    storage_options: dict[str, Any] | None = field(default=None, hash=False)

    def fetch(self, ref: str) -> bytes:
        """Return the raw (encoded) bytes of one image.

        Parameters
        ----------
        ref : str
            The ``image`` value of a table row: a zip member name, or a posix path
            relative to ``root``.

        Returns
        -------
        bytes
            The file's bytes, not decoded.

        Raises
        ------
        FileNotFoundError
            No image with this reference (or the reference leaves ``root``).
        OSError
            The zip member is corrupt (bad CRC, bad header, undecompressable).
        """
        if self.zip_name is not None:
            zip_path = self._zip_path()
            return _read_member(_open_zip(zip_path, self.storage_options), ref, zip_path)
        if _is_unsafe(ref):
            raise FileNotFoundError(f"refusing to read {ref!r}: it leaves {self.root}")
        if is_url(self.root):
            fs, fs_path = _filesystem(self.root, self.storage_options)
            try:
                return fs.cat_file(fs_path.rstrip("/") + "/" + ref)
            except (FileNotFoundError, IsADirectoryError):
                raise FileNotFoundError(f"no image {ref!r} under {self.root}") from None
        path = os.path.join(_local_path(self.root), ref)
        try:
            with open(path, "rb") as f:
                return f.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise FileNotFoundError(f"no image {ref!r} under {self.root}") from None

    def batch(self, refs: Sequence[str]) -> Callable[[str], bytes]:
        """A fetch function for a known batch of references (one block task's images).

        Called where the export was read (the client): for a zip it carries the batch's
        entries of the zip's central directory, which the client has read, so that a worker
        never reads and parses the whole directory itself. For an export behind a URL it
        fetches the whole batch on its first call, with few concurrent requests, since one
        request per image would make a build wait on object-store latency; a local export is
        read image by image.
        """
        entries = None
        if self.zip_name is not None:
            entries = _open_zip(self._zip_path(), self.storage_options).entries_of(refs)
        elif not is_url(self.root):
            return self.fetch
        return _BatchFetch(self, tuple(refs), entries)

    def _zip_path(self) -> str:
        assert self.zip_name is not None
        return _join(self.root, self.zip_name)

    def fetch_many(self, refs: Sequence[str]) -> dict[str, bytes | Exception]:
        """Each distinct reference's bytes, or the exception :meth:`fetch` would raise."""
        if self.zip_name is not None and is_url(self.root):
            zip_path = self._zip_path()
            found = _open_zip(zip_path, self.storage_options).read_many(list(refs))
            return {
                ref: FileNotFoundError(f"no image {ref!r} in {zip_path}")
                if isinstance(v, KeyError)
                else v
                for ref, v in found.items()
            }
        if self.zip_name is None and is_url(self.root):
            fs, fs_path = _filesystem(self.root, self.storage_options)
            out: dict[str, bytes | Exception] = {}
            paths = {}
            for ref in dict.fromkeys(refs):
                if _is_unsafe(ref):
                    out[ref] = FileNotFoundError(f"refusing to read {ref!r}: it leaves {self.root}")
                else:
                    paths[fs_path.rstrip("/") + "/" + ref] = ref
            for path, value in fs.cat(list(paths), on_error="return").items():
                ref = paths.get(path) or paths[path.split("://", 1)[-1]]
                if isinstance(value, (FileNotFoundError, IsADirectoryError)):
                    value = FileNotFoundError(f"no image {ref!r} under {self.root}")
                out[ref] = value
            return out
        out = {}
        for ref in dict.fromkeys(refs):
            try:
                out[ref] = self.fetch(ref)
            except FileNotFoundError as exc:
                out[ref] = exc
        return out


@dataclass
class _BatchFetch:
    """``fetch`` for one batch of references, filled by one :meth:`ImageFetcher.fetch_many`."""

    fetcher: ImageFetcher
    refs: tuple[str, ...]
    zip_entries: np.ndarray | None = field(default=None, repr=False)  # see entries_of
    _found: dict[str, bytes | Exception] | None = field(default=None, repr=False)
    # This process's reader of a local zip and its path: never pickled (an open file).
    _zip: tuple[_IndexedZip, str] | None = field(default=None, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_zip": None}

    def __call__(self, ref: str) -> bytes:
        if self.zip_entries is not None:  # first call in this process: index the zip
            known = (self.zip_entries[:, 0] >= 0).tolist()
            members = dict(
                zip(
                    itertools.compress(self.refs, known),
                    zip(*self.zip_entries[known].T.tolist(), strict=True),
                    strict=True,
                )
            )
            zip_path = self.fetcher._zip_path()
            zf = _open_zip(zip_path, self.fetcher.storage_options, members)
            self.zip_entries = None
            if not is_url(self.fetcher.root):
                # Kept for the batch: looking the reader up per image costs ~3 us.
                self._zip = (zf, zip_path)
        if self._zip is not None:  # a local zip, already indexed: the usual case
            zf, zip_path = self._zip
            return _read_member(zf, ref, zip_path)
        if not is_url(self.fetcher.root):
            return self.fetcher.fetch(ref)
        if self._found is None:
            self._found = self.fetcher.fetch_many(self.refs)
        value = self._found.get(ref)
        if value is None:  # not in the batch: fetch it alone
            return self.fetcher.fetch(ref)
        if isinstance(value, Exception):
            raise value
        return value


def _join(root: str, name: str) -> str:
    return root.rstrip("/") + "/" + name if is_url(root) else os.path.join(root, name)


class _Folder:
    """An export folder: local (pathlib and os, the fast path) or on an fsspec filesystem.

    ``root`` is what messages and the fetcher use: the absolute local path, or the URL.
    """

    def __init__(
        self, path: str | os.PathLike[str], storage_options: dict[str, Any] | None = None
    ) -> None:
        text = os.fspath(path)
        self.storage_options = storage_options
        if is_url(text):
            self.fs, self.path = _filesystem(text, storage_options)
            self.path = self.path.rstrip("/")
            self.root = text.rstrip("/")
        else:
            self.fs = None
            self.path = str(Path(_local_path(text)).absolute())
            self.root = self.path

    def join(self, name: str) -> str:
        return _join(self.root, name)

    def _fs_path(self, name: str) -> str:
        return f"{self.path}/{name}" if name else self.path

    def is_dir(self, name: str = "") -> bool:
        if self.fs is None:
            return os.path.isdir(os.path.join(self.path, name))
        return self.fs.isdir(self._fs_path(name))

    def is_file(self, name: str) -> bool:
        if self.fs is None:
            return os.path.isfile(os.path.join(self.path, name))
        return self.fs.isfile(self._fs_path(name))

    def size(self, name: str) -> int:
        if self.fs is None:
            return os.path.getsize(os.path.join(self.path, name))
        return int(self.fs.size(self._fs_path(name)))

    def read_bytes(self, name: str) -> bytes:
        if self.fs is None:
            return Path(self.path, name).read_bytes()
        return self.fs.cat_file(self._fs_path(name))

    def open(self, name: str) -> BinaryIO:
        """The file opened for reading, seekable (local or remote)."""
        if self.fs is None:
            return open(os.path.join(self.path, name), "rb")
        return self.fs.open(self._fs_path(name), "rb")

    def children(self) -> list[tuple[str, bool]]:
        """``(name, is_dir)`` of every entry directly in the folder, sorted by name."""
        if self.fs is None:
            return sorted((e.name, e.is_dir()) for e in os.scandir(self.path))
        entries = self.fs.ls(self.path, detail=True)
        return sorted(
            (e["name"].rstrip("/").rsplit("/", 1)[-1], e["type"] == "directory") for e in entries
        )

    def walk_files(self, sub: str = "") -> list[tuple[str, int]]:
        """``(posix path relative to the folder, size)`` of every file under ``sub``, sorted."""
        if self.fs is None:
            return _walk_files(Path(self.path, sub), Path(self.path))
        found = self.fs.find(self._fs_path(sub), detail=True)
        prefix = self.path + "/"
        return sorted(
            (name[len(prefix) :], int(info.get("size") or 0))
            for name, info in found.items()
            if info.get("type") != "directory" and name.startswith(prefix)
        )


# --------------------------------------------------------------------------- export


@dataclass
class Export:
    """What a reader found in one export.

    Attributes
    ----------
    layout : str
        ``"flowcam"`` or ``"image-folder"``.
    root : str
        Absolute path or fsspec URL of the export folder.
    label_column : str
        The meta.csv column the labels came from; ``"folder"`` for the image-folder layout.
    table : pandas.DataFrame
        One row per accepted input row, in input order, with a RangeIndex. Columns:
        ``objid`` (int64), ``label`` (string, ``pd.NA`` when empty or missing), ``image``
        (str, the reference for :meth:`ImageFetcher.fetch`), then every other meta.csv
        column unchanged, as strings.
    rejects : pandas.DataFrame
        Columns ``objid`` (Int64, NA when unknown), ``image`` (string or NA) and
        ``reason`` (str).
    features : dict of str to pandas.DataFrame
        ``"native"``, ``"skimage"``... (from ``features_<name>.csv.gz``) to a float32
        DataFrame indexed by objid (int64), original column names.
    fetcher : ImageFetcher
        Fetches the bytes of ``table["image"]`` references.
    rows_read : int
        Input rows seen: meta.csv data rows (malformed and duplicate ones included) plus
        files or zip members that had no row.
    fingerprint : str
        Short hex digest of the inputs; identical input gives an identical fingerprint.
    """

    layout: str
    root: str
    label_column: str
    table: pd.DataFrame
    rejects: pd.DataFrame
    features: dict[str, pd.DataFrame]
    fetcher: ImageFetcher
    rows_read: int
    fingerprint: str


def read_export(
    path: str | os.PathLike[str],
    label_column: str = "level2",
    storage_options: dict[str, Any] | None = None,
    executor: Executor | None = None,
) -> Export:
    """Read an export, detecting its layout.

    A folder with ``meta.csv`` is a FlowCam / EcoTaxa export; any other folder is read as
    an image folder (class sub-folders of images, or images directly in it).

    Parameters
    ----------
    path : str or os.PathLike
        The export folder: a local path or an fsspec URL (``s3://bucket/export``).
    label_column : str, default "level2"
        meta.csv column holding the labels (FlowCam layout only).
    storage_options : dict, optional
        fsspec options of a URL ``path``; None uses the fsspec configuration.
    executor : concurrent.futures.Executor, optional
        Other processes (a Dask client's ``get_executor()``) that read a FlowCam export's
        zip directory and feature tables while this one reads meta.csv.

    Returns
    -------
    Export

    Raises
    ------
    ExportError
        Not a folder, a FlowCam export without meta.csv, or a structural problem found by
        :func:`read_flowcam_export` or :func:`read_image_folder`.
    """
    folder = _Folder(path, storage_options)
    # Messages name the folder as the user gave it.
    root = os.fspath(path).rstrip("/") if folder.fs is not None else str(Path(path))
    if not folder.is_dir():
        raise ExportError(
            f"{root}: no such folder; give the folder of a FlowCam export or of images"
        )
    if folder.is_file(META_FILE):
        return read_flowcam_export(path, label_column, storage_options, executor)
    # imgs.zip, feature tables or a lone imgs/ folder say "FlowCam export", whose
    # meta.csv is missing; reading it as an image folder would silently invent labels.
    children = folder.children()
    subdirs = [name for name, is_dir in children if is_dir and not name.startswith(".")]
    flowcam_hints = [name for name, _ in children if name == ZIP_NAME or _FEATURE_FILE.match(name)]
    if flowcam_hints or subdirs == [IMAGES_DIR]:
        found = ", ".join(sorted(flowcam_hints) or [IMAGES_DIR + "/"])
        raise ExportError(
            f"{_join(root, META_FILE)}: not found, but {root} looks like a FlowCam export "
            f"({found}); add the meta.csv of the export (objid + label columns)"
        )
    return read_image_folder(path, storage_options=storage_options)


# --------------------------------------------------------------------------- flowcam


def read_flowcam_export(
    path: str | os.PathLike[str],
    label_column: str = "level2",
    storage_options: dict[str, Any] | None = None,
    executor: Executor | None = None,
) -> Export:
    """Read a FlowCam / EcoTaxa export folder.

    Parameters
    ----------
    path : str or os.PathLike
        Folder (local path or fsspec URL) with ``meta.csv``, images in ``imgs.zip``
        (preferred when both exist) or an ``imgs/`` folder, and optional
        ``features_<name>.csv.gz`` tables.
    label_column : str, default "level2"
        meta.csv column holding the labels. Blank cells give ``pd.NA`` labels; they are
        not rejected here.
    storage_options : dict, optional
        fsspec options of a URL ``path``; None uses the fsspec configuration.
    executor : concurrent.futures.Executor, optional
        Other processes that read the zip directory and the feature tables meanwhile,
        when meta.csv has at least :data:`EXECUTOR_MIN_META_BYTES` (without one, or for a
        smaller export, the feature tables are read in a thread).

    Returns
    -------
    Export

    Raises
    ------
    ExportError
        No meta.csv, no ``objid`` or label column, no images, an unreadable zip, a
        meta.csv that is not UTF-8, or a feature table that cannot be read.
    """
    folder = _Folder(path, storage_options)
    if not folder.is_file(META_FILE):
        raise ExportError(
            f"{folder.join(META_FILE)}: not found; a FlowCam export needs a meta.csv with objid "
            "and label columns (or give a folder of class sub-folders of images)"
        )
    # The feature tables are parsed meanwhile, in a thread (pandas' CSV tokenizer and zlib
    # release the GIL) or with the zip directory in other processes: for the reference
    # workload each takes about as long as meta.csv, and the cluster's workers are idle
    # until the plan is made. A small export is read here: the round trips would cost more.
    if executor is not None and folder.size(META_FILE) < EXECUTOR_MIN_META_BYTES:
        executor = None
    has_zip = folder.is_file(ZIP_NAME)  # asked once: a request, on an object store
    with ThreadPoolExecutor(1) as pool:
        feature_tables = (executor or pool).submit(_read_features, folder)
        zip_listing = None
        if executor is not None and has_zip:
            zip_listing = executor.submit(_list_zip, folder)
        return _read_flowcam_export(
            folder, label_column, storage_options, has_zip, feature_tables, zip_listing
        )


def _read_flowcam_export(
    folder: _Folder,
    label_column: str,
    storage_options: dict[str, Any] | None,
    has_zip: bool,
    feature_tables: Future[tuple[dict[str, pd.DataFrame], list[tuple[str, bytes]]]],
    zip_listing: Future[tuple[_ZipListing, pd.DataFrame]] | None = None,
) -> Export:
    root = folder.root
    meta_path = folder.join(META_FILE)
    meta_bytes = folder.read_bytes(META_FILE)
    digest = hashlib.sha256()
    _hash_part(digest, META_FILE, meta_bytes)

    meta, lines, bad = _parse_meta(meta_path, meta_bytes)
    if "objid" not in meta.columns:
        raise ExportError(
            f"{meta_path}: no 'objid' column (columns: {', '.join(meta.columns)}); "
            "the first column of an EcoTaxa export must be objid"
        )
    if label_column not in meta.columns:
        others = ", ".join(c for c in meta.columns)
        raise ExportError(
            f"{meta_path}: no label column {label_column!r}; its columns are: {others}. "
            "Choose one with --label-column"
        )
    if "image" in meta.columns:
        raise ExportError(
            f"{meta_path}: has a column named 'image', a name the reader uses for the image "
            "reference; rename that column"
        )

    # --- rows: objid, duplicates (before the images: another process may still be listing them)
    raw_objid = meta["objid"]
    is_int, objid = _parse_int64(raw_objid)
    too_big = is_int & objid.isna()
    row_reason = pd.Series(pd.NA, index=meta.index, dtype="string")
    row_reason[~is_int] = "objid " + raw_objid[~is_int].map(repr) + " is not an integer"
    row_reason[too_big] = "objid " + raw_objid[too_big].map(repr) + " is out of the int64 range"
    valid = objid.notna()
    dup = valid & objid.duplicated(keep="first")
    if dup.any():
        first_line = pd.Series(lines[valid.to_numpy()], index=objid[valid].to_numpy())
        first_line = first_line[~first_line.index.duplicated(keep="first")]
        dup_ids = objid[dup].astype("int64")
        row_reason[dup] = (
            "duplicate objid "
            + dup_ids.astype(str)
            + " (first seen on line "
            + dup_ids.map(first_line).astype(str)
            + ")"
        )
    # Images: a listing of every zip member or file, with a reference for each.
    if has_zip:
        refs, listing = _zip_listing(folder, zip_listing.result() if zip_listing else None)
        fetcher = ImageFetcher(root, ZIP_NAME, storage_options)
        where = f"in {ZIP_NAME}"
    elif folder.is_dir(IMAGES_DIR):
        refs, listing = _folder_listing(folder, IMAGES_DIR)
        fetcher = ImageFetcher(root, None, storage_options)
        where = f"in {IMAGES_DIR}/"
    else:
        raise ExportError(
            f"{root}: no images: neither {ZIP_NAME} nor an {IMAGES_DIR}/ folder; put the "
            f"images of the export in {ZIP_NAME} as {IMAGES_DIR}/<objid>.jpg"
        )
    _hash_part(digest, "images", listing)

    features, feature_files = feature_tables.result()
    for file_name, data in feature_files:
        _hash_part(digest, file_name, data)

    # --- images: match each usable member to a row by its numeric stem
    ok_rows = valid & ~dup
    unsafe, not_image, ref_objid = refs["unsafe"], refs["not_image"], refs["objid"]
    candidate = ref_objid.notna()
    ids = set(objid[ok_rows].astype("int64").tolist())
    matched = candidate & ref_objid.isin(ids)
    # Two files for one objid (42.jpg and 42.png): the first in listing order wins.
    second = matched & ref_objid.where(matched).duplicated(keep="first")
    matched &= ~second
    image_of = pd.Series(
        refs["ref"][matched].to_numpy(), index=ref_objid[matched].astype("int64").to_numpy()
    )
    row_image = objid.where(ok_rows).astype("Int64").map(image_of)
    no_image = ok_rows & row_image.isna()
    row_reason[no_image] = (
        "no image "
        + IMAGES_DIR
        + "/"
        + objid[no_image].astype("int64").astype(str)
        + ".jpg "
        + where
    )
    accepted = ok_rows & ~no_image

    # --- table
    acc = accepted.to_numpy()
    label = meta[label_column][acc].str.strip()
    label = label.where(label != "").astype("string").reset_index(drop=True)
    others = [c for c in meta.columns if c not in ("objid", "label")]
    table = meta.loc[acc, others].reset_index(drop=True)
    table.insert(0, "image", pd.Series(row_image[acc].to_numpy(), dtype="str"))
    table.insert(0, "label", label)
    table.insert(0, "objid", objid[acc].to_numpy(dtype=np.int64))

    # --- rejects: rows in line order (malformed ones among them), then unused files
    n_bad = len(bad)
    row_rej = pd.DataFrame(
        {
            "line": np.concatenate([lines[~acc], np.asarray([b[0] for b in bad], np.int64)]),
            "objid": pd.array([*objid[~acc].tolist(), *([pd.NA] * n_bad)], dtype="Int64"),
            "image": pd.array([pd.NA] * (int((~acc).sum()) + n_bad), dtype="string"),
            "reason": [
                *row_reason[~acc].tolist(),
                *(
                    f"malformed CSV line {ln}: expected {len(meta.columns)} fields, saw {n}"
                    for ln, n in bad
                ),
            ],
        }
    ).sort_values("line", kind="stable")
    orphan = ~matched
    ref_reason = pd.Series(pd.NA, index=refs.index, dtype="string")
    ref_reason[unsafe] = "unsafe path in zip: " + refs["ref"][unsafe]
    ref_reason[not_image] = "not an image file extension"
    if second.any():
        kept_for = ref_objid[second].astype("int64")
        ref_reason[second] = (
            "second image for objid "
            + kept_for.astype(str)
            + ": "
            + refs["ref"][second]
            + " (kept "
            + kept_for.map(image_of)
            + ")"
        )
    no_row = orphan & ~unsafe & ~not_image & ~second
    ref_reason[no_row] = "image " + refs["ref"][no_row] + " has no row in " + META_FILE
    file_rej = pd.DataFrame(
        {
            "objid": ref_objid.where(~unsafe)[orphan].to_numpy(),
            "image": refs["ref"][orphan].to_numpy(),
            "reason": ref_reason[orphan].to_numpy(),
        }
    )
    rejects = _rejects_frame([row_rej.drop(columns="line"), file_rej])
    return Export(
        layout="flowcam",
        root=root,
        label_column=label_column,
        table=table,
        rejects=rejects,
        features=features,
        fetcher=fetcher,
        rows_read=len(meta) + n_bad + int(orphan.sum()),
        fingerprint=digest.hexdigest()[:16],
    )


def _parse_meta(
    meta_path: str, data: bytes
) -> tuple[pd.DataFrame, np.ndarray, list[tuple[int, int]]]:
    """Parse meta.csv into all-string columns without evaluating any cell.

    Returns the rows with the header's number of fields, the 1-based line on which each
    of them starts (the header is line 1) and ``(line, fields)`` of every malformed row.
    A well-formed file is read by pandas' C parser; a file with malformed rows by the csv
    module (several times slower), because pandas' bad-line hook says neither on which
    line a bad row was nor, for a short row, that it was bad.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ExportError(
            f"{meta_path}: not UTF-8 text (bad byte at offset {e.start}); re-save it as UTF-8"
        ) from None
    first = text.split("\n", 1)[0]
    # EcoTaxa also writes tab-separated tables; accept them under the same name.
    delimiter = "\t" if "\t" in first and "," not in first else ","
    try:
        header = next(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), None)
    except csv.Error as e:
        raise ExportError(f"{meta_path}: unreadable CSV header ({e}); fix line 1") from None
    if not header:
        raise ExportError(f"{meta_path}: empty; it needs a header line (objid,...)")
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise ExportError(
            f"{meta_path}: duplicate column names {dupes}; give each column a unique name"
        )
    scan = _scan_records(data, delimiter)
    if scan is not None and len(scan[0]) > 1 and (scan[1] == len(header)).all():
        meta = _read_meta_fast(text, delimiter, header, len(scan[0]) - 1)
        if meta is not None:
            return meta, scan[0][1:], []
    return _read_meta_csv(meta_path, text, delimiter, header)


def _scan_records(data: bytes, delimiter: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Start line and number of fields of every non-blank CSV record, vectorised.

    A newline or delimiter ends a record or field only outside quotes, i.e. after an even
    number of quote characters. A stray quote inside an unquoted field breaks this rule:
    then None (odd number of quotes) or counts that disagree with the parser's, and the
    caller falls back to the csv module.
    """
    b = np.frombuffer(data, dtype=np.uint8)
    nl = np.flatnonzero(b == ord("\n"))
    sep = np.flatnonzero(b == ord(delimiter))
    quotes = np.flatnonzero(b == ord('"'))
    if len(quotes) % 2:
        return None
    ends = nl
    if len(quotes):
        ends = nl[np.searchsorted(quotes, nl) % 2 == 0]
        sep = sep[np.searchsorted(quotes, sep) % 2 == 0]
    if len(b) and b[-1] != ord("\n"):
        ends = np.append(ends, len(b))
    starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64)
    length = ends - starts
    blank = length == 0
    one = np.flatnonzero(length == 1)
    blank[one] = b[starts[one]] == ord("\r")
    # Separators before each record's end, less those before the previous one's: a lookup
    # per record, not one per separator.
    fields = np.diff(np.searchsorted(sep, ends), prepend=0) + 1
    lines = np.searchsorted(nl, starts) + 1
    return lines[~blank].astype(np.int64), fields[~blank]


def _read_meta_fast(
    text: str, delimiter: str, header: list[str], n_rows: int
) -> pd.DataFrame | None:
    """pandas' C parser; None when its reading disagrees with :func:`_scan_records`."""
    try:
        meta = pd.read_csv(
            io.StringIO(text),
            sep=delimiter,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            engine="c",
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, csv.Error):
        return None
    ok = (
        list(meta.columns) == header
        and isinstance(meta.index, pd.RangeIndex)
        and len(meta) == n_rows
    )
    return meta if ok else None


def _read_meta_csv(
    meta_path: str, text: str, delimiter: str, header: list[str]
) -> tuple[pd.DataFrame, np.ndarray, list[tuple[int, int]]]:
    """The csv-module reader: slower, but it knows the line of every record."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    width = len(header)
    good: list[list[str]] = []
    good_lines: list[int] = []
    bad: list[tuple[int, int]] = []
    try:
        next(reader)
        last = reader.line_num
        for row in reader:
            start, last = last + 1, reader.line_num
            if len(row) == width:
                good.append(row)
                good_lines.append(start)
            elif row:  # blank lines carry no row: skipped like pandas does
                bad.append((start, len(row)))
    except csv.Error as e:
        raise ExportError(
            f"{meta_path}: unreadable CSV near line {reader.line_num}: {e}; fix that line"
        ) from None
    columns = list(zip(*good, strict=True)) if good else [()] * width
    meta = pd.DataFrame(
        {name: pd.array(list(col), dtype="str") for name, col in zip(header, columns, strict=True)}
    )
    return meta, np.asarray(good_lines, dtype=np.int64), bad


def _parse_int64(s: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Which strings are integers (``_INT_RE``), and their values as Int64 (NA for the
    others and for integers out of the int64 range)."""
    values = s.to_numpy(dtype=object)
    # The usual case, in one C loop: int() takes exactly the strings _INT_RE matches, plus
    # digit groups ("1_000"), and fails on any other or out of range.
    try:
        if "_" not in "".join(values):
            parsed = values.astype(np.int64)
            return pd.Series(True, index=s.index), pd.Series(parsed, s.index, dtype="Int64")
    except (ValueError, OverflowError, TypeError):
        pass
    is_int = s.str.fullmatch(_INT_RE)
    out = pd.Series(pd.NA, index=s.index, dtype="Int64")
    out[is_int] = _to_int64(s[is_int])
    return is_int, out


def _to_int64(s: pd.Series) -> pd.Series:
    """Integer strings (already validated by ``_INT_RE``) to Int64; NA where out of range."""
    s = s.str.strip()
    values = np.zeros(len(s), dtype=np.int64)
    missing = np.ones(len(s), dtype=bool)
    short = (s.str.len() <= 18).to_numpy()  # 18 characters always fit in int64
    values[short] = s[short].astype("int64").to_numpy()
    missing[short] = False
    for i in np.flatnonzero(~short):  # rare: check the range by hand
        v = int(s.iloc[i])
        if _INT64_MIN <= v <= _INT64_MAX:
            values[i], missing[i] = v, False
    return pd.Series(pd.arrays.IntegerArray(values, missing), index=s.index)


def _is_unsafe(ref: str) -> bool:
    parts = re.split(r"[/\\]", ref)
    return ref.startswith(("/", "\\")) or bool(re.match(r"[A-Za-z]:", ref)) or ".." in parts


def _split_name(name: str) -> tuple[str, str]:
    """``"imgs/a/42.jpg"`` -> ``("42", ".jpg")``; ``".DS_Store"`` -> ``("", ".DS_Store")``."""
    stem, dot, ext = name.rpartition("/")[2].rpartition(".")
    return (stem, dot + ext) if dot else (ext, "")


def _ref_frame(names: list[str], walked: bool = False) -> pd.DataFrame:
    """Columns ``ref`` (the name), ``unsafe`` (a path leading out of the folder; never for
    ``walked`` names, which a walk of the folder produced), ``not_image`` (no image file
    extension) and ``objid`` (Int64: the number an image is named by, NA for other names)."""
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
    not_image = ~unsafe & ~extension.str.lower().isin(IMAGE_EXTENSIONS).to_numpy()
    usable = ~unsafe & ~not_image
    objid = pd.Series(pd.NA, index=stem.index, dtype="Int64")
    objid[usable] = _parse_int64(stem[usable])[1]
    return pd.DataFrame(
        {
            "ref": pd.Series(names, dtype="str"),
            "unsafe": unsafe,
            "not_image": not_image,
            "objid": objid,
        }
    )


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


def _zip_listing(
    folder: _Folder, listed: tuple[_ZipListing, pd.DataFrame] | None = None
) -> tuple[pd.DataFrame, bytes]:
    """The file members of the zip, and its listing (name, CRC, size) to fingerprint.

    ``listed`` is what :func:`_list_zip` gave, when another process read the zip.
    """
    listing, refs = listed or _list_zip(folder)
    # The reader ImageFetcher.batch uses here: no second parse of the directory.
    _open_zip(folder.join(ZIP_NAME), folder.storage_options, listing.members, complete=True)
    return refs, listing.fingerprint


def _walk_files(top: Path, rel_to: Path) -> list[tuple[str, int]]:
    """``(posix path relative to rel_to, size)`` of every file under ``top``, sorted."""
    out: list[tuple[str, int]] = []
    for dirpath, _dirnames, filenames in os.walk(top):
        rel_dir = Path(dirpath).relative_to(rel_to)
        for name in filenames:
            full = os.path.join(dirpath, name)
            try:
                size = os.stat(full).st_size
            except OSError:  # a dangling symlink: still listed, it becomes a reject later
                size = -1
            out.append(((rel_dir / name).as_posix(), size))
    out.sort()
    return out


def _folder_listing(folder: _Folder, sub: str) -> tuple[pd.DataFrame, bytes]:
    files = folder.walk_files(sub)
    listing = "\n".join(f"{name}\t{size}" for name, size in files).encode()
    return _ref_frame([name for name, _ in files], walked=True), listing


def _read_features(
    folder: _Folder,
) -> tuple[dict[str, pd.DataFrame], list[tuple[str, bytes]]]:
    """Every ``features_<name>.csv[.gz]`` in the folder as a float32 frame indexed by objid,
    and each file's name and bytes (for the export's fingerprint)."""
    features: dict[str, pd.DataFrame] = {}
    files: list[tuple[str, bytes]] = []
    for file_name, is_dir in folder.children():
        m = _FEATURE_FILE.match(file_name)
        if not m or is_dir:
            continue
        path = folder.join(file_name)
        name = m["name"]
        if name in features:
            raise ExportError(
                f"{path}: a second feature table named {name!r}; keep only one of "
                f"features_{name}.csv and features_{name}.csv.gz"
            )
        data = folder.read_bytes(file_name)
        files.append((file_name, data))
        try:
            df = pd.read_csv(
                io.BytesIO(data),
                compression="gzip" if file_name.endswith(".gz") else None,
                dtype={"objid": "str"},
                keep_default_na=True,
            )
        except (
            pd.errors.ParserError,
            pd.errors.EmptyDataError,
            gzip.BadGzipFile,
            zlib.error,
            EOFError,
            UnicodeDecodeError,
        ) as e:
            raise ExportError(f"{path}: unreadable feature table ({e}); fix or remove it") from None
        if "objid" not in df.columns:
            raise ExportError(f"{path}: no 'objid' column; fix or remove this feature table")
        raw = df.pop("objid").fillna("").astype("str")
        # meta.csv's parser: one C loop for a table of plain integers, as there usually is.
        is_int, objid = _parse_int64(raw)
        bad = objid.isna().to_numpy()  # not an integer, or out of range
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            problem = "is out of the int64 range" if is_int.iloc[i] else "is not an integer"
            raise ExportError(
                f"{path}: objid {raw.iloc[i]!r} on line {i + 2} {problem}; "
                "fix or remove this feature table"
            )
        index = pd.Index(objid.to_numpy(np.int64), name="objid")
        if index.has_duplicates:
            dup = int(index[index.duplicated()][0])
            raise ExportError(f"{path}: objid {dup} appears twice; fix or remove this table")
        for col in df.columns:
            if not pd.api.types.is_numeric_dtype(df[col].dtype):
                df[col] = pd.to_numeric(df[col], errors="coerce")  # text cells -> NaN
        df = df.astype(np.float32)
        df.index = index
        features[name] = df
    return features, files


def _hash_part(digest: Any, name: str, data: bytes) -> None:
    # Length-prefixed so that moving bytes between parts changes the digest.
    digest.update(f"{name}\0{len(data)}\0".encode())
    digest.update(data)


def _rejects_frame(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate reject parts with the documented dtypes and a RangeIndex."""
    df = pd.concat(
        [p for p in parts if len(p)] or [pd.DataFrame(columns=["objid", "image", "reason"])],
        ignore_index=True,
    )
    return pd.DataFrame(
        {
            "objid": pd.array(df["objid"].tolist(), dtype="Int64"),
            "image": pd.array(df["image"].tolist(), dtype="string"),
            "reason": pd.Series(df["reason"].tolist(), dtype="str"),
        }
    )


# --------------------------------------------------------------------------- image folder


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
        layout="image-folder",
        root=root,
        label_column=FOLDER_LABEL_COLUMN,
        table=table,
        rejects=rejects,
        features={},
        fetcher=ImageFetcher(root, None, storage_options),
        rows_read=len(names),
        fingerprint=digest.hexdigest()[:16],
    )
