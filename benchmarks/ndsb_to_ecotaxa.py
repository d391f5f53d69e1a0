"""Turn a FlowCam-layout export (the real ndsb-dev images) into an EcoTaxa export, and check
that both layouts give the same store.

    python benchmarks/ndsb_to_ecotaxa.py --source ../shared/data/ndsb-dev --workers 2

The EcoTaxa export (in --out, a temporary folder by default) has --samples sample folders,
``sample_<k>/ecotaxa_sample_<k>.tsv`` each (latin-1, column names then a ``[t]``/``[f]``
type row), holding contiguous runs of meta.csv's rows, so that the reader meets the rows in
meta.csv's order; the images are copied beside their table. ``object_id`` is meta.csv's
objid; ``object_annotation_category`` its --label column (level2 by default);
``object_annotation_status`` ``validated`` (meta.csv's ``status`` where it has one, and
empty with the category for an unlabelled row); ``object_annotation_hierarchy`` the
``lineage`` column with ``>`` between levels, when meta.csv has one; ``sample_id`` the
sample folder. Numeric ``features_native.csv.gz`` columns, when present, become free
``object_<name>`` columns.

Then it builds a store from each layout with the same options and seed and compares rows
read, samples, classes, labels per objid, split membership and the stored images, and
prints the figures. A difference stops with exit status 1.

With ``--flow``, it then runs the README's real-image flow on both layouts through the
command line (``build-store`` with the README's options, ``train --model features``,
``evaluate`` on test) and compares the test accuracy and macro-F1 of the two reports.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
from distributed import Client

from plankton_store.cluster import local_cluster
from plankton_store.io import ECOTAXA_NUMERIC_FIXED, meta_to_ecotaxa, read_export
from plankton_store.store import BuildOptions, build_store, open_store
from plankton_store.store import format as fmt


def ecotaxa_rows(source: Path, label: str) -> pd.DataFrame:
    """meta.csv (and the native features, if any) as EcoTaxa columns, all text."""
    meta = pd.read_csv(source / "meta.csv", dtype=str, keep_default_na=False)
    rows = meta_to_ecotaxa(meta, label)
    features = source / "features_native.csv.gz"
    if features.exists():
        native = pd.read_csv(features, dtype=str, keep_default_na=False)
        native = native.set_index("objid").add_prefix("object_")
        rows = rows.join(native, on="object_id").fillna("")
    return rows


def write_ecotaxa_export(source: Path, out: Path, samples: int, label: str) -> pd.DataFrame:
    """Write the EcoTaxa export; returns its rows with their ``sample_id``."""
    rows = ecotaxa_rows(source, label)
    chunks = np.array_split(np.arange(len(rows)), samples)
    width = len(str(samples - 1))
    rows["sample_id"] = ""
    for k, chunk in enumerate(chunks):
        rows.loc[rows.index[chunk], "sample_id"] = f"sample_{k:0{width}d}"
    fixed_text = {"object_id", "img_file_name", "object_date", "object_time", "sample_id"}
    types = [
        "[f]"
        if c in ECOTAXA_NUMERIC_FIXED or (c.startswith("object_") and _numeric(rows[c]))
        else "[t]"
        for c in rows.columns
    ]
    types = [
        "[t]" if c in fixed_text or "annotation" in c else t
        for c, t in zip(rows, types, strict=True)
    ]
    with zipfile.ZipFile(source / "imgs.zip") as zf:
        for sample, part in rows.groupby("sample_id", sort=True):
            folder = out / sample
            folder.mkdir(parents=True, exist_ok=True)
            for objid in part["object_id"]:
                (folder / f"{objid}.jpg").write_bytes(zf.read(f"imgs/{objid}.jpg"))
            lines = ["\t".join(rows.columns), "\t".join(types)]
            lines += ["\t".join(r) for r in part.itertuples(index=False, name=None)]
            table = folder / f"ecotaxa_{sample}.tsv"
            table.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    return rows


def _numeric(values: pd.Series) -> bool:
    text = values[values.str.strip() != ""]
    return len(text) > 0 and pd.to_numeric(text, errors="coerce").notna().all()


def compare_stores(a_path: str, b_path: str) -> dict[str, object]:
    """Figures of two stores and whether their samples are identical."""
    a, b = open_store(a_path), open_store(b_path)
    out: dict[str, object] = {
        "samples": (a.n_samples, b.n_samples),
        "classes": (len(a.class_names), len(b.class_names)),
        "same class names": a.class_names == b.class_names,
    }
    if a.n_samples != b.n_samples:
        return out
    for name in (fmt.OBJID, fmt.SPLIT, fmt.SOURCE_OBJID, fmt.AUGMENTATION, fmt.ORIG_HEIGHT):
        out[f"same {name}"] = bool(np.array_equal(a.array(name)[:], b.array(name)[:]))
    names_a, names_b = np.asarray(a.class_names), np.asarray(b.class_names)
    out["same label per sample"] = bool(np.array_equal(names_a[a.labels], names_b[b.labels]))
    step = 4096
    out["same images"] = all(
        np.array_equal(a.images[i : i + step], b.images[i : i + step])
        for i in range(0, a.n_samples, step)
    )
    split_names = {int(s): s.name.lower() for s in fmt.Split}
    counts = pd.Series(a.splits).map(split_names).value_counts()
    out["split counts"] = counts.to_dict()
    return out


#: The README's real-image build options.
README_BUILD = [
    "--resize", "pad", "--size", "64x64", "--test-fraction", "0.3", "--val-fraction", "0.1",
    "--augment-below", "0", "--keep-all-classes", "--max-per-class", "0",
    "--compute-features",
]  # fmt: skip


def readme_flow(name: str, source: Path, label: str, workers: int, work: Path) -> dict:
    """The README's real-image flow with the fast features model; the test summary."""
    cli = [sys.executable, "-m", "jobs.cli"]
    store, model, report = (work / f"flow-{name}{ext}" for ext in (".zarr", "-model", "-rep"))
    started = time.perf_counter()
    build = ["build-store", str(source), str(store), "--label-column", label, *README_BUILD]
    steps = [
        [*build, "--workers", str(workers), "--overwrite"],
        ["train", str(store), "--model", "features", "--out", str(model)],
        ["evaluate", str(store), "--model", str(model), "--out", str(report)],
    ]
    for step in steps:
        subprocess.run([*cli, *step], check=True, capture_output=True)
    summary = json.loads((report / "summary.json").read_text())
    summary["seconds"] = time.perf_counter() - started
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", type=Path, default=Path("../shared/data/ndsb-dev"))
    parser.add_argument("--out", type=Path, default=None, help="EcoTaxa export folder to write")
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--label", default="level2", help="meta.csv label column (or level1)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--flow", action="store_true", help="also run the README's flow (features model)"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ndsb-ecotaxa-"))
    out = args.out or work / "ecotaxa"
    started = time.perf_counter()
    rows = write_ecotaxa_export(args.source, out, args.samples, args.label)
    print(
        f"wrote {len(rows)} rows in {args.samples} samples to {out} "
        f"in {time.perf_counter() - started:.1f} s"
    )
    read = {"flowcam": read_export(args.source, args.label), "ecotaxa": read_export(out)}
    for name, export in read.items():
        print(
            f"{name}: {export.rows_read} rows read, {len(export.table)} accepted, "
            f"{len(export.rejects)} rejected by the reader"
        )
    options = BuildOptions(label_column=args.label, seed=args.seed)
    stores = {}
    with (
        local_cluster(args.workers, dashboard_address=":0") as cluster,
        Client(cluster) as client,
    ):
        for name, source in [("flowcam", args.source), ("ecotaxa", out)]:
            stores[name] = str(work / f"{name}.zarr")
            summary = build_store(
                str(source), stores[name], options, client, progress=False, echo=lambda _: None
            )
            print(
                f"{name}: build {summary.seconds:.1f} s, {summary.rows_read} rows read, "
                f"{summary.rows_stored} stored, {summary.augmented_copies} augmented, "
                f"{len(summary.rejects)} rejected"
            )
    figures = compare_stores(stores["flowcam"], stores["ecotaxa"])
    for key, value in figures.items():
        print(f"{key}: {value}")
    same = all(v for k, v in figures.items() if k.startswith("same")) and len(figures) > 3
    print("IDENTICAL" if same else "DIFFERENT")
    if args.flow:
        flows = {
            name: readme_flow(name, src, args.label, args.workers, work)
            for name, src in [("flowcam", args.source), ("ecotaxa", out)]
        }
        for name, summary in flows.items():
            print(
                f"{name} flow: accuracy {summary['accuracy']:.4f}, "
                f"macro-F1 {summary['macro_f1']:.4f} ({summary['seconds']:.0f} s)"
            )
        keys = ("accuracy", "macro_f1")
        same_flow = all(flows["flowcam"][k] == flows["ecotaxa"][k] for k in keys)
        print("same figures" if same_flow else "DIFFERENT figures")
        same = same and same_flow
    shutil.rmtree(work, ignore_errors=True)
    if args.out is None:
        shutil.rmtree(out, ignore_errors=True)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
