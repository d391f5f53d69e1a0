"""meta.csv as all-string columns, and the integer parsing of objids.

:func:`_parse_meta` reads a well-formed meta.csv with pandas' C parser, after a vectorised
scan of its records (:func:`_scan_records`) says where each row starts; a file with
malformed rows falls back to the csv module (:func:`_read_meta_csv`), which knows the line
of every record. :func:`_parse_int64` turns a column of objid strings into Int64 values;
the feature tables and the image names use it too.

:func:`_read_meta` is what the FlowCam reader calls: it reads a well-formed meta.csv in
pieces of :data:`META_PIECE_BYTES` (cut at record ends), keeping only the columns asked
for, so that a large export's file, text and scan never sit in memory whole; any piece it
is unsure of sends the whole file to :func:`_parse_meta`, which gives the same rows and
the errors.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

from plankton_store.io._export import ExportError, _hash_part, _hash_prefix
from plankton_store.io._layout import META_FILE

# An integer objid: optional sign, digits; surrounding blanks are tolerated.
_INT_RE = r"\s*[+-]?\d+\s*"
_INT64_MAX = np.iinfo(np.int64).max
_INT64_MIN = np.iinfo(np.int64).min


def _parse_meta(
    meta_path: str, data: bytes, usecols: list[str] | None = None
) -> tuple[pd.DataFrame, np.ndarray, list[tuple[int, int]]]:
    """Parse meta.csv into all-string columns without evaluating any cell.

    Returns the rows with the header's number of fields, the 1-based line on which each
    of them starts (the header is line 1) and ``(line, fields)`` of every malformed row.
    ``usecols`` (header order) keeps only those columns; None keeps every one.
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
    delimiter = _delimiter(text.split("\n", 1)[0])
    try:
        header = next(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), None)
    except csv.Error as e:
        raise ExportError(f"{meta_path}: unreadable CSV header ({e}); fix line 1") from None
    _check_header(meta_path, header)
    scan = _scan_records(data, delimiter)
    if scan is not None and len(scan[0]) > 1 and (scan[1] == len(header)).all():
        meta = _read_meta_fast(text, delimiter, header, len(scan[0]) - 1, usecols)
        if meta is not None:
            return meta, scan[0][1:], []
    meta, lines, bad = _read_meta_csv(meta_path, text, delimiter, header)
    return (meta if usecols is None else meta[list(usecols)]), lines, bad


def _check_header(meta_path: str, header: list[str] | None) -> None:
    if not header:
        raise ExportError(f"{meta_path}: empty; it needs a header line (objid,...)")
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise ExportError(
            f"{meta_path}: duplicate column names {dupes}; give each column a unique name"
        )


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
    text: str | bytes,
    delimiter: str,
    header: list[str],
    n_rows: int,
    usecols: list[str] | None = None,
    names: bool = False,
) -> pd.DataFrame | None:
    """pandas' C parser; None when its reading disagrees with :func:`_scan_records`.

    ``text`` is the file's text, or (``names``) UTF-8 bytes of whole records after the
    header, which ``header`` names."""
    try:
        meta = pd.read_csv(
            io.BytesIO(text) if isinstance(text, bytes) else io.StringIO(text),
            sep=delimiter,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            engine="c",
            usecols=usecols,
            header=None if names else "infer",
            names=header if names else None,
            encoding="utf-8",
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, csv.Error, ValueError):
        return None
    ok = (
        list(meta.columns) == (header if usecols is None else list(usecols))
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


def _delimiter(first_line: str) -> str:
    """The field separator of a meta table from its first line.

    EcoTaxa also writes tab-separated tables; they are accepted under the same name.
    """
    return "\t" if "\t" in first_line and "," not in first_line else ","


#: Bytes of meta.csv read and parsed at a time, cut at record ends: a 2.4-million-row
#: meta.csv (370 MB) read whole held its bytes, its text and the scan's index arrays at
#: once, about 1.4 GB in the job process. Tests force tiny pieces to run this path.
META_PIECE_BYTES = 4 << 20


@dataclass
class _Meta:
    """meta.csv as :func:`_read_meta` read it."""

    rows: pd.DataFrame  # the kept columns, all strings (objid: see ``objid``)
    lines: np.ndarray  # the line each row starts on
    bad: list[tuple[int, int]]  # (line, fields) of each malformed row
    header: list[str]
    # (is an integer, Int64 value) of each row's objid, when parsed piece by piece; then
    # rows["objid"] keeps only the text of the objids without a value ("" for the others).
    objid: tuple[pd.Series, pd.Series] | None = None


def _read_meta(
    meta_path: str,
    file: BinaryIO,
    size: int,
    digest: Any,
    keep: list[str] | None,
    label_column: str,
) -> tuple[_Meta, Any]:
    """Read meta.csv from ``file`` (``size`` bytes), keeping the columns in ``keep`` (None:
    every one); also returns a copy of ``digest`` that hashed it as :func:`_hash_part` does.

    A well-formed file is read in pieces of :data:`META_PIECE_BYTES`, each piece's objids
    parsed and its ``label_column`` cells made to share one string per distinct value; a
    file the piecewise reader is unsure of (malformed rows, odd quotes, not UTF-8, no data
    row) is read whole by :func:`_parse_meta`, which gives its rows and its errors.
    """
    streamed = digest.copy()
    _hash_prefix(streamed, META_FILE, size)
    found = _read_pieces(meta_path, file, streamed, keep, label_column)
    if found is not None:
        return found, streamed
    file.seek(0)
    data = file.read()
    whole = digest.copy()
    _hash_part(whole, META_FILE, data)
    meta, lines, bad = _parse_meta(meta_path, data)
    header = list(meta.columns)
    if keep is not None:
        meta = meta[[c for c in header if c in keep]]
    return _Meta(meta, lines, bad, header), whole


def _read_pieces(
    meta_path: str, file: BinaryIO, digest: Any, keep: list[str] | None, label_column: str
) -> _Meta | None:
    """The piecewise reader of :func:`_read_meta`; None when the file must be read whole."""
    header: list[str] = []
    delimiter, usecols, line = ",", None, 0  # line: newlines before the piece
    parts, lines = [], []
    for piece in _record_pieces(file, META_PIECE_BYTES):
        digest.update(piece)
        first = not header
        try:
            text = piece.decode("utf-8-sig" if first else "utf-8")
            if first:
                delimiter = _delimiter(text.split("\n", 1)[0])
                header = next(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), [])
                _check_header(meta_path, header)
                if "objid" not in header or label_column not in header:
                    return None  # the caller's checks name what is missing
                usecols = None if keep is None else [c for c in header if c in keep]
        except (UnicodeDecodeError, csv.Error, ExportError):
            return None  # the whole-file reader gives the error, in its order
        del text
        scan = _scan_records(piece, delimiter)
        if scan is None or not (scan[1] == len(header)).all() or (first and not len(scan[0])):
            return None
        records = scan[0][1:] if first else scan[0]
        if len(records):
            body = piece[_record_end(piece) :] if first else piece
            rows = _read_meta_fast(body, delimiter, header, len(records), usecols, names=True)
            if rows is None:
                return None
            parts.append(_compact(rows, label_column))
            lines.append(records + line)
        line += piece.count(b"\n")
    if not parts:
        return None
    return _joined(parts, lines, header)


def _record_end(piece: bytes) -> int:
    """Where the first record of a piece ends (after its newline)."""
    b = np.frombuffer(piece, dtype=np.uint8)
    ends = np.flatnonzero(b == ord("\n"))
    quotes = np.flatnonzero(b == ord('"'))
    if len(quotes):
        ends = ends[np.searchsorted(quotes, ends) % 2 == 0]
    return int(ends[0]) + 1 if len(ends) else len(piece)


def _compact(
    rows: pd.DataFrame, label_column: str
) -> tuple[pd.DataFrame, tuple[pd.Series, pd.Series]]:
    """One piece's rows with equal labels sharing one string, and its parsed objids (the
    objid column then keeps only the text of those without a value)."""
    is_int, objid = _parse_int64(rows["objid"])
    if label_column != "objid":
        rows["objid"] = rows["objid"].where(objid.isna(), "")
    if label_column in rows.columns:
        codes, uniques = pd.factorize(rows[label_column].to_numpy(dtype=object))
        rows[label_column] = pd.Series(
            np.asarray(uniques, dtype=object)[codes], index=rows.index, dtype="str"
        )
    return rows, (is_int, objid)


def _joined(
    parts: list[tuple[pd.DataFrame, tuple[pd.Series, pd.Series]]],
    lines: list[np.ndarray],
    header: list[str],
) -> _Meta:
    rows = pd.concat([p[0] for p in parts], ignore_index=True)
    is_int = pd.concat([p[1][0] for p in parts], ignore_index=True)
    objid = pd.concat([p[1][1] for p in parts], ignore_index=True)
    return _Meta(rows, np.concatenate(lines).astype(np.int64), [], header, (is_int, objid))


def _record_pieces(file: BinaryIO, piece_bytes: int) -> Iterator[bytes]:
    """``file``'s bytes in pieces of about ``piece_bytes``, each ending after a newline that
    lies outside quotes (so a piece holds whole records); the last piece holds the rest."""
    carry = b""
    while True:
        chunk = file.read(piece_bytes)
        if not chunk:
            if carry:
                yield carry
            return
        buf = carry + chunk
        b = np.frombuffer(buf, dtype=np.uint8)
        ends = np.flatnonzero(b == ord("\n"))
        quotes = np.flatnonzero(b == ord('"'))
        if len(quotes):  # a piece starts outside quotes: an even count before a record end
            ends = ends[np.searchsorted(quotes, ends) % 2 == 0]
        if not len(ends):
            carry = buf
            continue
        cut = int(ends[-1]) + 1
        yield buf[:cut]
        carry = buf[cut:]
