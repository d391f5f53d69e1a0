"""Small EcoTaxa TSV exports for the tests, made from a FlowCam-layout export (the demo's).

Not a test module: the tests of EcoTaxa reading import :func:`flowcam_to_ecotaxa`.
"""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from plankton_store.io import ECOTAXA_NUMERIC_FIXED, meta_to_ecotaxa

#: ZooProcess-like feature names: the demo's feature table names, with their punctuation.
FEATURES = ["area", "mean", "perim.", "circ."]


def flowcam_to_ecotaxa(
    src: Path,
    dst: Path,
    samples: int = 3,
    integer_ids: bool = True,
    type_row: bool = True,
    label: str = "level2",
    dubious_every: int = 0,
) -> pd.DataFrame:
    """Write the FlowCam export ``src`` as an EcoTaxa export folder ``dst``.

    ``samples`` sample folders (``sample_<k>``, contiguous runs of meta.csv rows, so that
    reading order is meta.csv's), each with ``ecotaxa_sample_<k>.tsv`` (latin-1, a ``µ`` in
    a column name) and its images under ``images/``. ``object_id`` is the objid, or
    ``obj-<objid>`` when not ``integer_ids``. Numeric features become free ``object_*``
    columns (``object_perim.``, ``object_%area``...). Every ``dubious_every``-th row (if
    not 0) is ``dubious`` instead of ``validated``. Returns the rows written (text).
    """
    meta = pd.read_csv(src / "meta.csv", dtype=str, keep_default_na=False)
    features_file = src / "features_native.csv.gz"
    if features_file.exists():
        with gzip.open(features_file, "rt") as f:
            feats = pd.read_csv(f, dtype=str, keep_default_na=False)
        meta = meta.merge(feats, on="objid", how="left")
    rows = meta_to_ecotaxa(meta, label, image_prefix="images/")
    if not integer_ids:
        rows["object_id"] = "obj-" + rows["object_id"]
    if dubious_every:
        dubious = (rows.index % dubious_every == dubious_every - 1) & (
            rows["object_annotation_category"] != ""
        )
        rows.loc[dubious, "object_annotation_status"] = "dubious"
    for name in FEATURES:
        if name in meta:
            rows[f"object_{name}"] = meta[name]
    if "area" in meta and "width" in meta:
        number = {c: pd.to_numeric(meta[c], errors="coerce") for c in ("area", "width", "height")}
        area = 100 * number["area"] / (number["width"] * number["height"])
        rows["object_%area"] = area.round(3).astype(str).replace("nan", "")
    rows["object_length_µm"] = (np.arange(len(rows)) * 0.5).astype(str)
    chunks = np.array_split(np.arange(len(rows)), samples)
    rows["sample_id"] = ""
    for k, chunk in enumerate(chunks):
        rows.loc[chunk, "sample_id"] = f"sample_{k}"
    rows["acq_id"] = "acq_" + rows["sample_id"]
    types = [
        "[f]"
        if c in ECOTAXA_NUMERIC_FIXED or (c.startswith("object_") and c[7:] in FEATURES)
        else "[t]"
        for c in rows.columns
    ]
    types = [
        "[f]" if c in ("object_%area", "object_length_µm") else t
        for c, t in zip(rows.columns, types, strict=True)
    ]
    with zipfile.ZipFile(src / "imgs.zip") as zf:
        for k, chunk in enumerate(chunks):
            folder = dst / f"sample_{k}"
            (folder / "images").mkdir(parents=True, exist_ok=True)
            part = rows.iloc[chunk]
            for objid in meta["objid"].iloc[chunk]:
                (folder / "images" / f"{objid}.jpg").write_bytes(zf.read(f"imgs/{objid}.jpg"))
            write_table(folder / f"ecotaxa_sample_{k}.tsv", part, types if type_row else None)
    return rows


def make_demo_flowcam(root: Path) -> Path:
    """The demo export at a small scale: about 1,250 images, FlowCam layout."""
    from plankton_store.demo import make_demo_export

    return make_demo_export(root, scale=0.005, seed=0, workers=1, progress=False)


def write_table(
    path: Path, rows: pd.DataFrame, types: list[str] | None, encoding: str = "latin-1"
) -> None:
    """One EcoTaxa table: names, the type row if any, rows; UTF-8 files get a BOM."""
    lines = ["\t".join(rows.columns)] + (["\t".join(types)] if types else [])
    lines += ["\t".join(map(str, r)) for r in rows.itertuples(index=False, name=None)]
    data = ("\n".join(lines) + "\n").encode(encoding)
    path.write_bytes((b"\xef\xbb\xbf" if encoding == "utf-8" else b"") + data)


def zip_folder(folder: Path, out: Path, prefix: str = "") -> Path:
    """Every file under ``folder`` into the zip ``out``, below ``prefix`` inside it."""
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, prefix + path.relative_to(folder).as_posix())
    return out
