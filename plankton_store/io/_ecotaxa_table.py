"""One EcoTaxa table parsed, with a reason for each row it cannot take: :func:`read_ecotaxa_table`.

A table is tab-separated text, latin-1 unless it starts with a UTF-8 byte-order mark (as
EcoTaxa's importer reads it). Row 1 names the columns (trimmed and lower-cased, as EcoTaxa
does); an optional row 2 types them, ``[t]`` (text) or ``[f]`` (float). Nothing in a table
stops a build: a row the parser cannot take stays in the frame with its reason, so that the
reader rejects it and every row is accounted for.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import numpy as np
import pandas as pd

__all__ = ["EcoTaxaTable", "read_ecotaxa_table"]

_BOM = b"\xef\xbb\xbf"
#: Type-row values, as EcoTaxa writes them.
TEXT_TYPE = "[t]"
FLOAT_TYPE = "[f]"
# A cell that looks like a type (``[t]``, ``[x]``, ``[float]``): its row is meant as a type row.
_LOOKS_TYPED = re.compile(r"^\[[^\]]*\]$")


class EcoTaxaTable(NamedTuple):
    """What :func:`read_ecotaxa_table` found in one table.

    Attributes
    ----------
    frame : pandas.DataFrame
        Every data row (a malformed type row included) as text, empty string when empty;
        columns trimmed and lower-cased.
    types : list of str or None
        The type row (``[t]`` / ``[f]`` per column) when the table has a well-formed one.
    reasons : list of str
        Per row of ``frame``: why it cannot be read ("" when it can).
    """

    frame: pd.DataFrame
    types: list[str] | None
    reasons: list[str]


def _decode(data: bytes) -> str:
    return data[len(_BOM) :].decode("utf-8") if data.startswith(_BOM) else data.decode("latin-1")


def _split(text: str) -> tuple[list[str], list[list[str]]]:
    """Column names and the cells of each non-blank line (only ``\\n`` ends a line: latin-1
    text may hold U+0085, which ``str.splitlines`` would take for a line break)."""
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    header = [c.strip().lower() for c in lines[0].split("\t")] if lines else []
    return header, [line.split("\t") for line in lines[1:] if line.strip(" \t")]


def _looks_typed(cells: list[str]) -> bool:
    """Whether a row is meant as a type row: at least half its cells look like types (a
    data row with one bracketed value is still data)."""
    typed = sum(bool(_LOOKS_TYPED.match(c.strip())) for c in cells)
    return typed > 0 and 2 * typed >= len(cells)


def read_ecotaxa_table(data: bytes) -> EcoTaxaTable:
    """Parse one EcoTaxa table's bytes.

    A second row whose cells mostly look like types (``[...]``) is the type row: well-formed when
    it has one ``[t]`` or ``[f]`` per column, else it is kept as a row with the reason
    "malformed type row". A row with more cells than column names has a reason; a shorter
    one is padded with empty cells. A non-number in an ``[f]`` column gives its row a reason
    naming the column. A table that names a column twice gives every row that reason.

    Parameters
    ----------
    data
        The file's bytes.

    Returns
    -------
    EcoTaxaTable
    """
    header, cells = _split(_decode(data))
    n = len(header)
    types: list[str] | None = None
    first_reason = ""
    if cells and _looks_typed(cells[0]):
        row = [c.strip().lower() for c in cells[0]]
        if len(row) == n and all(c in (TEXT_TYPE, FLOAT_TYPE) for c in row):
            types, cells = row, cells[1:]
        else:
            first_reason = (
                f"malformed type row ({len(row)} cells for {n} columns; each must be "
                f"{TEXT_TYPE} or {FLOAT_TYPE})"
            )
    reasons = [f"{len(r)} cells for {n} columns" if len(r) > n else "" for r in cells]
    if first_reason:
        reasons[0] = first_reason
    rows = [(r + [""] * (n - len(r)))[:n] for r in cells]
    frame = pd.DataFrame(rows, columns=range(n), dtype=object).astype(str)
    if not rows:
        frame = pd.DataFrame({i: pd.Series([], dtype=str) for i in range(n)})
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        # Unusable as a table: its columns could not be told apart.
        why = f"column {repeated[0]} appears twice"
        return EcoTaxaTable(pd.DataFrame(index=range(len(rows))), None, [why] * len(rows))
    frame.columns = header
    if types is not None:
        _check_numbers(frame, types, reasons)
    return EcoTaxaTable(frame, types, reasons)


def _check_numbers(frame: pd.DataFrame, types: list[str], reasons: list[str]) -> None:
    """Give each row a reason naming its first ``[f]`` column holding a non-number."""
    for column, kind in zip(frame.columns, types, strict=True):
        if kind != FLOAT_TYPE:
            continue
        _, ok = parse_numbers(frame[column])
        for i in np.flatnonzero(~ok.to_numpy()).tolist():
            if not reasons[i]:
                value = frame[column].iloc[i].strip()
                reasons[i] = f"{column} {value!r} is not a number ([f] column)"


def parse_numbers(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Text cells as float64 (NaN when empty, ``nan`` or not a number), and whether each
    cell is empty or a number."""
    text = values.astype(str).str.strip()
    numbers = pd.to_numeric(text.mask(text == "", "nan"), errors="coerce").astype(np.float64)
    return numbers, numbers.notna() | text.str.lower().isin(["", "nan"])
