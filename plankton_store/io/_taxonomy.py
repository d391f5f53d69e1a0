"""Taxonomy regrouping: cut the lineage after N levels, then map classes to others.

A lab trains on its own grouping of the taxa: ``--lineage-level N`` relabels each labelled
row with the N-th level of its lineage (EcoTaxa's ``object_annotation_hierarchy``, or the
``lineage`` column of a meta.csv); ``--taxonomy-map FILE.csv`` (columns ``from,to``) then
renames classes, merges them (several ``from`` with one ``to``) or drops them (an empty
``to``). :func:`regroup` applies a :class:`Taxonomy` to what a reader returned, moving the
rows of dropped classes to the rejects so that stored + rejected = read still holds.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from plankton_store.io._export import Export, ExportError, _rejects_frame
from plankton_store.io._layout import (
    ECOTAXA_HIERARCHY_COLUMN,
    LINEAGE_SEPARATOR,
    META_LINEAGE_COLUMN,
    META_LINEAGE_SEPARATOR,
    TAXONOMY_MAP_COLUMNS,
)

__all__ = [
    "Taxonomy",
    "TaxonomyError",
    "class_lineages",
    "lineage_column",
    "read_taxonomy_map",
    "regroup",
]


class TaxonomyError(ExportError):
    """A taxonomy map that cannot be read, or a regrouping the export cannot take."""


@dataclass(frozen=True)
class Taxonomy:
    """How labels are regrouped: a lineage cut, then a map.

    Attributes
    ----------
    lineage_level : int or None
        Keep the first ``lineage_level`` levels of each row's lineage (root first) and use
        the last kept one as the label; None: no cut.
    mapping : tuple of (str, str)
        ``(from, to)`` pairs in file order; an empty ``to`` drops the class. Labels that
        are no ``from`` stay as they are. Applied once, not transitively.
    map_name : str
        The file the map came from (its name only), for messages and the store attributes.
    """

    lineage_level: int | None = None
    mapping: tuple[tuple[str, str], ...] = ()
    map_name: str = ""

    def __post_init__(self) -> None:
        if self.lineage_level is not None and self.lineage_level < 1:
            raise TaxonomyError(f"--lineage-level must be at least 1, got {self.lineage_level}")

    @property
    def is_identity(self) -> bool:
        """Whether this regrouping leaves every label as it is."""
        return self.lineage_level is None and not self.mapping

    def same_grouping(self, other: Taxonomy) -> bool:
        """Whether ``other`` gives the same labels (the map file's name does not count)."""
        return self.lineage_level == other.lineage_level and dict(self.mapping) == dict(
            other.mapping
        )

    def to_attrs(self) -> dict[str, Any] | None:
        """JSON-ready record for the store attributes; None for the identity."""
        if self.is_identity:
            return None
        return {
            "lineage_level": self.lineage_level,
            "map_file": self.map_name or None,
            "map": [[a, b] for a, b in self.mapping],
        }

    @classmethod
    def from_attrs(cls, record: Mapping[str, Any] | None) -> Taxonomy:
        """The regrouping recorded by :meth:`to_attrs` (the identity for None)."""
        if not record:
            return cls()
        return cls(
            lineage_level=record.get("lineage_level"),
            mapping=tuple((str(a), str(b)) for a, b in record.get("map") or ()),
            map_name=str(record.get("map_file") or ""),
        )

    def describe(self) -> str:
        """One line for people: ``lineage level 3, then map groups.csv (12 classes: ...)``."""
        if self.is_identity:
            return "labels as read (no regrouping)"
        parts = []
        if self.lineage_level is not None:
            parts.append(f"lineage cut after level {self.lineage_level}")
        if self.mapping:
            dropped = sum(1 for _, to in self.mapping if not to)
            targets = len({to for _, to in self.mapping if to})
            parts.append(
                f"map {self.map_name or '(inline)'}: {len(self.mapping)} classes mapped onto "
                f"{targets}, {dropped} dropped"
            )
        return ", then ".join(parts)


def read_taxonomy_map(path: str | os.PathLike[str]) -> tuple[tuple[str, str], ...]:
    """Read a taxonomy map: a CSV with columns ``from`` and ``to`` (others are ignored).

    Values are trimmed; blank lines are skipped; an empty ``to`` drops the class.

    Raises
    ------
    TaxonomyError
        The file is missing or not UTF-8, has no ``from``/``to`` header, a row with another
        number of fields, an empty ``from``, or a ``from`` repeated (naming both lines).
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as e:
        raise TaxonomyError(f"{path}: cannot read the taxonomy map ({e.strerror})") from None
    except UnicodeDecodeError as e:
        raise TaxonomyError(f"{path}: not UTF-8 text (bad byte at offset {e.start})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip().lower() for h in next(reader, [])]
    except csv.Error as e:
        raise TaxonomyError(f"{path}, line 1: unreadable CSV ({e})") from None
    wanted = list(TAXONOMY_MAP_COLUMNS)
    if not all(c in header for c in wanted):
        raise TaxonomyError(
            f"{path}, line 1: a taxonomy map is a CSV whose header names the columns "
            f"{','.join(wanted)}; found {','.join(header) or 'nothing'}"
        )
    src, dst = header.index(wanted[0]), header.index(wanted[1])
    seen: dict[str, int] = {}
    pairs = []
    try:
        for row in reader:
            line = reader.line_num
            if not any(v.strip() for v in row):
                continue
            if len(row) != len(header):
                raise TaxonomyError(
                    f"{path}, line {line}: {len(row)} fields, the header has {len(header)}"
                )
            old, new = row[src].strip(), row[dst].strip()
            if not old:
                raise TaxonomyError(f"{path}, line {line}: empty '{wanted[0]}'")
            if old in seen:
                raise TaxonomyError(
                    f"{path}, line {line}: {old!r} is mapped again (first on line {seen[old]})"
                )
            seen[old] = line
            pairs.append((old, new))
    except csv.Error as e:
        raise TaxonomyError(f"{path}, line {reader.line_num}: unreadable CSV ({e})") from None
    return tuple(pairs)


def lineage_column(table: pd.DataFrame) -> tuple[str, str] | None:
    """The lineage column of an export table and its separator, or None.

    EcoTaxa's ``object_annotation_hierarchy`` (``>``) first, else a meta.csv ``lineage``
    column: ``>`` when any of its values holds one, else ``/`` (EcoTaxa database dumps).
    """
    if ECOTAXA_HIERARCHY_COLUMN in table:
        return ECOTAXA_HIERARCHY_COLUMN, LINEAGE_SEPARATOR
    if META_LINEAGE_COLUMN in table:
        values = table[META_LINEAGE_COLUMN].astype(str)
        uses_gt = bool(values.str.contains(LINEAGE_SEPARATOR, regex=False).any())
        return META_LINEAGE_COLUMN, LINEAGE_SEPARATOR if uses_gt else META_LINEAGE_SEPARATOR
    return None


def _levels(values: pd.Series, separator: str) -> tuple[np.ndarray, list[list[str]]]:
    """Each value's code into a list of unique lineages, each split into trimmed levels."""
    codes, uniques = pd.factorize(values.fillna("").astype(str))
    levels = [[p.strip() for p in u.split(separator) if p.strip()] for u in uniques]
    return codes, levels


def _cut_labels(export: Export, level: int) -> tuple[pd.Series, np.ndarray]:
    """Labels after the lineage cut and which labelled rows have no lineage."""
    found = lineage_column(export.table)
    if found is None:
        raise TaxonomyError(
            f"{export.root}: --lineage-level needs a lineage column "
            f"({ECOTAXA_HIERARCHY_COLUMN} in an EcoTaxa TSV, {META_LINEAGE_COLUMN} in "
            f"meta.csv); this {export.layout} export has none"
        )
    column, separator = found
    codes, levels = _levels(export.table[column], separator)
    cut = np.asarray([lv[:level][-1] if lv else "" for lv in levels], dtype=object)
    labels = export.table["label"]
    labelled = labels.notna().to_numpy()
    new = cut[codes]
    missing = labelled & (new == "")
    out = pd.Series(np.where(labelled & ~missing, new, None), dtype="string")
    return out, missing


def regroup(export: Export, taxonomy: Taxonomy, drop: bool = True) -> Export:
    """Apply ``taxonomy`` to ``export.table["label"]``; returns a new :class:`Export`.

    The lineage cut relabels every labelled row with the ``lineage_level``-th level of its
    lineage (the whole lineage when it is shorter); a labelled row without lineage is
    rejected ("no lineage to cut at level N"), unlabelled rows stay unlabelled. The map then
    renames the labels it lists; the rows of a class mapped to an empty ``to`` are rejected
    ("class 'X' dropped by taxonomy map FILE"). Rejected rows leave ``table`` for
    ``rejects``, after the reader's own; ``rows_read`` does not change. With ``drop``
    False they stay in ``table``, unlabelled (to classify them all, as ``predict`` does).

    Raises
    ------
    TaxonomyError
        A lineage cut on an export without lineage column.
    """
    if taxonomy.is_identity:
        return export
    table = export.table
    labels = table["label"].astype("string")
    reasons = pd.Series(pd.NA, index=table.index, dtype="string")
    if taxonomy.lineage_level is not None:
        labels, missing = _cut_labels(export, taxonomy.lineage_level)
        reasons[missing] = f"no lineage to cut at level {taxonomy.lineage_level}"
    if taxonomy.mapping:
        mapping = dict(taxonomy.mapping)
        mapped = labels.map(lambda v: mapping.get(v, v) if isinstance(v, str) else v)
        dropped = (labels.isin([k for k, v in mapping.items() if not v]) & reasons.isna()).to_numpy(
            dtype=bool
        )
        name = taxonomy.map_name or "(inline)"
        reasons[dropped] = "class '" + labels[dropped] + f"' dropped by taxonomy map {name}"
        labels = mapped.astype("string")
    labels = labels.where(reasons.isna(), pd.NA)
    out = reasons.isna().to_numpy() | (not drop)
    new_table = table.assign(label=labels.where(labels != "", pd.NA))[out].reset_index(drop=True)
    gone = table[~out]
    rejects = _rejects_frame(
        [
            export.rejects,
            pd.DataFrame(
                {
                    "objid": gone["objid"].to_numpy(),
                    "image": gone["image"].astype(str).to_numpy(),
                    "reason": reasons[~out].astype(str).to_numpy(),
                }
            ),
        ]
    )
    return replace(export, table=new_table, rejects=rejects)


def class_lineages(table: pd.DataFrame, lineage_level: int | None = None) -> dict[str, str]:
    """Each class's lineage, joined with ``>``, where the table tells it.

    A class's lineage is the longest common start of its rows' lineages (cut after
    ``lineage_level`` levels), up to the level named like the class: a class merged from
    several taxa gets the taxon they share, a class named like none of its levels (most
    ``level2`` groups of the seed) none. An export without lineage column gives an empty dict.
    """
    found = lineage_column(table)
    labels = table["label"]
    if found is None or not labels.notna().any():
        return {}
    column, separator = found
    labelled = table[labels.notna().to_numpy()]
    codes, levels = _levels(labelled[column], separator)
    pairs = pd.DataFrame({"label": labelled["label"].astype(str).to_numpy(), "code": codes})
    out = {}
    for label, group in pairs.drop_duplicates().groupby("label", sort=True):
        common = _common_start([levels[c][:lineage_level] for c in group["code"]])
        if label in common:  # the class's own level, deepest first
            end = len(common) - common[::-1].index(label)
            out[str(label)] = LINEAGE_SEPARATOR.join(common[:end])
    return out


def _common_start(lineages: Sequence[list[str]]) -> list[str]:
    """The levels every lineage starts with."""
    first = lineages[0]
    n = len(first)
    for other in lineages[1:]:
        n = min(n, len(other))
        n = next((i for i in range(n) if other[i] != first[i]), n)
    return first[:n]
