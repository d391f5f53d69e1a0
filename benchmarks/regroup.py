"""Benchmark the taxonomy regrouping (``--taxonomy-map`` / ``--lineage-level``) on its own.

    python benchmarks/regroup.py --scale 1.0        # the 243,610 rows of the full demo

The demo's meta.csv rows (:func:`plankton_store.demo.make_meta`: no image is drawn) are put
in an export table as the FlowCam reader returns it (labels from ``level1``), then each
regrouping runs ``--rounds`` times (best kept) with :func:`plankton_store.io.class_lineages`
after it: what build-store adds to the client's work before planning.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from plankton_store.demo import make_meta, taxonomy_table
from plankton_store.io import Export, ImageFetcher, Taxonomy, class_lineages, regroup


def demo_export(scale: float, seed: int) -> Export:
    """The demo's rows as the FlowCam reader's table (level1 labels), without images."""
    table = pd.DataFrame(make_meta(scale, seed)).astype(str)
    label = table.pop("level1").replace("", pd.NA).astype("string")
    table.insert(0, "label", label)
    table["objid"] = table["objid"].astype("int64")
    table.insert(2, "image", "imgs/" + table["objid"].astype(str) + ".jpg")
    rejects = pd.DataFrame(
        {
            "objid": pd.array([], dtype="Int64"),
            "image": pd.array([], dtype="string"),
            "reason": pd.Series([], dtype=str),
        }
    )
    fetcher = ImageFetcher("/none", None, None)
    return Export("flowcam", "/none", "level1", table, rejects, {}, fetcher, len(table), "-")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    export = demo_export(args.scale, args.seed)
    to_level2 = tuple((t["level1"], t["level2"]) for t in taxonomy_table())
    cases = {
        "map level1 -> level2": Taxonomy(mapping=to_level2, map_name="l2.csv"),
        "lineage level 3": Taxonomy(lineage_level=3),
        "lineage level 4 + map (1 merge, 1 drop)": Taxonomy(
            lineage_level=4, mapping=(("Harosa", "protists"), ("artefact", "")), map_name="m.csv"
        ),
    }
    print(f"{len(export.table):,} rows")
    for name, taxonomy in cases.items():
        best = float("inf")
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            out = regroup(export, taxonomy)
            best = min(best, time.perf_counter() - t0)
        t0 = time.perf_counter()
        lineages = class_lineages(out.table, taxonomy.lineage_level)
        seconds = time.perf_counter() - t0
        print(
            f"{name}: regroup {best:.3f} s (best of {args.rounds}), class_lineages "
            f"{seconds:.3f} s; {out.table['label'].nunique()} classes, {len(lineages)} with a "
            f"lineage, {len(out.rejects)} rejects"
        )


if __name__ == "__main__":
    main()
