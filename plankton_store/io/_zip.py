"""Readers of zip members by byte range, local or remote, one per zip and process.

:func:`_open_zip` gives this process's reader of a zip (cached, never shared with a forked
or spawned process); :func:`_read_member` reads one member with the errors
:meth:`~plankton_store.io.ImageFetcher.fetch` documents. The central directory is parsed by
:mod:`plankton_store.io._zipdir`.
"""

from __future__ import annotations

import bisect
import os
import struct
import threading
import zipfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from plankton_store.io._fs import _filesystem, _local_path, _options_key, is_url
from plankton_store.io._zipdir import (
    _NO_ENTRY,
    _ListingMembers,
    _read_zip_listing,
    _ZipMember,
)

# One open zip per (zip path, storage options, process): a forked or spawned worker never
# reuses the parent's file handle, whose file offset it would share.
_ZIP_CACHE: dict[tuple[str, str, int], Any] = {}
_ZIP_CACHE_LOCK = threading.Lock()
_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")  # zip local file header, 30 bytes
_LOCAL_HEADER_SLACK = 256  # local extra fields may be longer than the central directory's
# Batched remote reads merge member ranges less than _MERGE_GAP apart, up to _MERGE_BLOCK.
_MERGE_GAP = 16 * 1024
_MERGE_BLOCK = 8 * 1024 * 1024


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
