"""A zip's central directory, listed in one vectorised pass.

:func:`_read_zip_listing` gives a :class:`_ZipListing`: the file members' names, their
entries (:data:`_ZipMember` fields) as one int64 array, and the text that fingerprints the
zip. The readers of :mod:`plankton_store.io._zip` read members from these entries.
"""

from __future__ import annotations

import os
import struct
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from typing import BinaryIO, NamedTuple

import numpy as np

# Where one zip member lies and how to check it, what a read needs from the central
# directory: (header offset, compressed size, compression method, CRC-32, length of the
# directory's extra field). A plain tuple: a ZipInfo is ten times larger to ship with a
# task, and building or pickling 243,610 named tuples cost the client about a second.
_ZipMember = tuple[int, int, int, int, int]


class _ZipListing(NamedTuple):
    """What readers need from a zip's central directory."""

    names: list[str]  # file members (no folders), in directory order
    # "name<TAB>CRC<TAB>size" of every entry, for the export fingerprint (deflated when
    # sent from another process: see plankton_store.io._listing._list_zip_to_send)
    fingerprint: bytes | tuple[bytes, int]  # tuple: a plankton_store.io._export._Deflated
    entries: np.ndarray  # (len(names), 5) int64: the members' _ZipMember fields, in order

    @property
    def members(self) -> _ListingMembers:
        """Name -> :data:`_ZipMember`, read from ``entries``."""
        return _ListingMembers(self.names, self.entries)


# A _ZipMember in 24 bytes: its fields at their widths in the zip format (the sizes and the
# offset of a zip64 entry need 64 bits), packed.
_COMPACT_ENTRY = np.dtype(
    [("offset", "<i8"), ("packed", "<i8"), ("method", "<u2"), ("crc", "<u4"), ("extra", "<u2")]
)

# An entries row for a name the zip does not hold (a member's header offset is never < 0).
_NO_ENTRY = (-1, 0, 0, 0, 0)


class _ListingMembers(Mapping[str, _ZipMember]):
    """A whole listing's members, name -> :data:`_ZipMember`, each read from the entries
    array when asked for: 243,610 tuples built up front cost the client ~0.2 s before the
    first task, and only the names index (built on first use) is needed to ship entries."""

    def __init__(self, names: list[str], entries: np.ndarray) -> None:
        self.names = names
        # 24 bytes a member instead of 40 (39 MB less at 2.4 million members)
        self.entries = np.empty(len(entries), dtype=_COMPACT_ENTRY)
        for i, name in enumerate(_COMPACT_ENTRY.names):
            self.entries[name] = entries[:, i]
        self._lookup: tuple[np.ndarray, np.ndarray] | None = None  # see _hashed_names

    def _hashed_names(self) -> tuple[np.ndarray, np.ndarray]:
        """Each name's ``hash()`` in sorted order and the rows of ``names`` in that order
        (equal hashes in row order): a name is found by binary search and checked by
        comparison. A hashed ``pd.Index`` of 2.4 million names cost the client ~120 MB
        (its table, built with the first block); these two arrays cost 16 bytes a name."""
        if self._lookup is None:
            hashes = np.fromiter(map(hash, self.names), np.int64, len(self.names))
            order = np.argsort(hashes, kind="stable")
            self._lookup = (hashes[order], order)
        return self._lookup

    def _rows_of(self, names: Sequence[str]) -> np.ndarray:
        """Each name's row in ``entries`` (the last one for a repeated name), -1 when the
        name is not listed."""
        hashes, order = self._hashed_names()
        wanted = np.fromiter(map(hash, names), np.int64, len(names))
        first = np.searchsorted(hashes, wanted, side="left")
        last = np.searchsorted(hashes, wanted, side="right")
        rows = np.full(len(names), -1, dtype=np.int64)
        for i, (a, b, name) in enumerate(zip(first.tolist(), last.tolist(), names, strict=True)):
            for j in range(b - 1, a - 1, -1):  # equal hashes: the last row that matches
                if self.names[order[j]] == name:
                    rows[i] = order[j]
                    break
        return rows

    def __getitem__(self, name: str) -> _ZipMember:
        row = int(self._rows_of([name])[0])
        if row < 0:
            raise KeyError(name)
        return tuple(int(v) for v in self.entries[row].tolist())  # type: ignore[return-value]

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(self.names))

    def __len__(self) -> int:
        return len(dict.fromkeys(self.names))

    def entries_of(self, names: Sequence[str]) -> np.ndarray:
        """The rows of ``names``, a :data:`_NO_ENTRY` row for a name not listed."""
        found = self._rows_of(names)
        entries = np.empty((len(found), len(_NO_ENTRY)), dtype=np.int64)
        entries[:] = _NO_ENTRY
        hit = found >= 0
        rows = self.entries[found[hit]]
        for i, name in enumerate(_COMPACT_ENTRY.names):
            entries[hit, i] = rows[name]
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
    # zipfile reads the zip64 records whenever their locator is there, marks or not.
    located = at >= _ZIP64_LOCATOR.size and tail[at - _ZIP64_LOCATOR.size :].startswith(
        b"PK\x06\x07"
    )
    if located or entries == 0xFFFF or length == _ZIP64_MARK or offset == _ZIP64_MARK:
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
        at = _signatures(raw)
        at = at[at <= len(raw) - size]
        if len(at) and at[0] == 0:
            lengths = _gather(raw, at, 28, 6).astype(np.int64)
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


#: Central directory records looked at a time: 2.4 million at once (an index array of 46
#: int64 per record to gather their fixed parts, the names as bytes, then as text) took the
#: process listing the zip past 2 GiB.
DIRECTORY_PIECE_RECORDS = 1 << 16


def _signatures(raw: np.ndarray) -> np.ndarray:
    """Every offset where the record signature ``PK\\1\\2`` starts, a piece at a time."""
    step = DIRECTORY_PIECE_RECORDS * 64
    found = []
    for first in range(0, max(len(raw) - 3, 0), step):
        part = raw[first : first + step + 3]
        hits = (part[:-3] == ord("P")) & (part[1:-2] == ord("K"))
        hits &= (part[2:-1] == 1) & (part[3:] == 2)
        found.append(np.flatnonzero(hits) + first)
    return np.concatenate(found) if found else np.zeros(0, np.int64)


def _gather(raw: np.ndarray, at: np.ndarray, offset: int, width: int) -> np.ndarray:
    """``raw[at[i] + offset : at[i] + offset + width]`` of every ``at[i]``, as rows."""
    out = np.empty((len(at), width), dtype=np.uint8)
    columns = np.arange(offset, offset + width)
    for first in range(0, len(at), DIRECTORY_PIECE_RECORDS):
        piece = at[first : first + DIRECTORY_PIECE_RECORDS]
        out[first : first + len(piece)] = raw[piece[:, None] + columns]
    return out


def _decode_names(data: bytes, starts: np.ndarray, header: np.ndarray) -> list[str] | None:
    """The names of some records (their name fields start at ``starts``); None when a name
    holds a NUL byte."""
    ends = (starts + header["name_length"]).tolist()
    raw_names = [data[a:b] for a, b in zip(starts.tolist(), ends, strict=True)]
    names = [""] * len(raw_names)
    utf8 = header["flags"] & _UTF8_NAME != 0
    for encoding, group in (("utf-8", np.flatnonzero(utf8)), ("cp437", np.flatnonzero(~utf8))):
        if not len(group):
            continue
        # One decode for all the names of an encoding, NUL-separated.
        decoded = b"\x00".join([raw_names[i] for i in group]).decode(encoding).split("\x00")
        if len(decoded) != len(group):  # a NUL byte in a name
            return None
        for i, name in zip(group.tolist(), decoded, strict=True):
            names[i] = name
    return names


def _fingerprint_lines(names: list[str], crc: np.ndarray, size: np.ndarray) -> bytes:
    """``name<TAB>CRC<TAB>size`` of some records, one per line."""
    crc, size = crc.tolist(), size.tolist()
    return "\n".join(
        map("\t".join, zip(names, map(str, crc), map(str, size), strict=True))
    ).encode()


def _zip64_fields(data: bytes, at: np.ndarray, header: np.ndarray) -> dict[str, np.ndarray] | None:
    """The records' fields as int64, with the real sizes and offsets of zip64 entries (a
    field of 0xFFFFFFFF is in the record's zip64 extra field), as ``zipfile`` reads them;
    None when such an extra field is damaged (``zipfile`` then gives the error). An export
    over 4 GiB (the 10x benchmark's is 7 GB) has them: ``zipfile``'s listing of its 2.4
    million members took a worker 30 s and 2.4 GB."""
    fields = {f: header[f].astype(np.int64) for f in ("crc", "size", *_MEMBER_FIELDS)}
    marked = (header["size"] == _ZIP64_MARK) | (header["packed"] == _ZIP64_MARK)
    marked |= header["offset"] == _ZIP64_MARK
    size, packed, offset = fields["size"], fields["packed"], fields["offset"]
    extra_at = at + _CENTRAL_HEADER.itemsize + header["name_length"]
    for i in np.flatnonzero(marked).tolist():
        pos, end = int(extra_at[i]), int(extra_at[i] + header["extra_length"][i])
        while end - pos >= 4:
            tag, length = struct.unpack_from("<HH", data, pos)
            if pos + 4 + length > end:
                return None
            if tag == 0x0001:  # zip64: the marked fields, in this order
                values = data[pos + 4 : pos + 4 + length]
                for field in (size, packed, offset):
                    if field[i] == _ZIP64_MARK:
                        if len(values) < 8:
                            return None
                        field[i] = struct.unpack_from("<Q", values)[0]
                        values = values[8:]
            pos += 4 + length
    return fields


def _parse_central_directory(directory: tuple[bytes, int]) -> _ZipListing | None:
    data, entries = directory
    # Find the records, then read their fixed parts all at once.
    at = _record_starts(data)
    if at is None or len(at) != entries or not len(at):
        return None
    raw = np.frombuffer(data, np.uint8)
    header = _gather(raw, at, 0, _CENTRAL_HEADER.itemsize).view(_CENTRAL_HEADER)[:, 0]
    if (header["magic"] != b"PK\x01\x02").any():
        return None
    fields = _zip64_fields(data, at, header)
    if fields is None:
        return None
    starts = at + _CENTRAL_HEADER.itemsize
    all_names: list[str] = []
    for first in range(0, len(at), DIRECTORY_PIECE_RECORDS):
        piece = slice(first, first + DIRECTORY_PIECE_RECORDS)
        names_piece = _decode_names(data, starts[piece], header[piece])
        if names_piece is None:
            return None
        all_names += names_piece
    del header, raw, starts  # ~250 MB for 2.4 million records, before the fingerprint
    fingerprint = b"\n".join(
        _fingerprint_lines(all_names[piece], fields["crc"][piece], fields["size"][piece])
        for piece in (
            slice(first, first + DIRECTORY_PIECE_RECORDS)
            for first in range(0, len(at), DIRECTORY_PIECE_RECORDS)
        )
    )
    files = np.flatnonzero([not name.endswith("/") for name in all_names])
    names = all_names if len(files) == len(all_names) else [all_names[i] for i in files]
    entries = np.stack([fields.pop(f)[files] for f in _MEMBER_FIELDS], axis=1)
    return _ZipListing(names, fingerprint, entries)
