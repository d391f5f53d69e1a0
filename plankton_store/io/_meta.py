"""meta.csv as all-string columns, and the integer parsing of objids.

:func:`_parse_meta` reads a well-formed meta.csv with pandas' C parser, after a vectorised
scan of its records (:func:`_scan_records`) says where each row starts; a file with
malformed rows falls back to the csv module (:func:`_read_meta_csv`), which knows the line
of every record. :func:`_parse_int64` turns a column of objid strings into Int64 values;
the feature tables and the image names use it too.
"""

from __future__ import annotations

import csv
import io

import numpy as np
import pandas as pd

from plankton_store.io._export import ExportError

# An integer objid: optional sign, digits; surrounding blanks are tolerated.
_INT_RE = r"\s*[+-]?\d+\s*"
_INT64_MAX = np.iinfo(np.int64).max
_INT64_MIN = np.iinfo(np.int64).min


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
    delimiter = _delimiter(text.split("\n", 1)[0])
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


def _delimiter(first_line: str) -> str:
    """The field separator of a meta table from its first line.

    EcoTaxa also writes tab-separated tables; they are accepted under the same name.
    """
    return "\t" if "\t" in first_line and "," not in first_line else ","
