"""Benchmark ingest against a build of the same export alone, and embed against inference.

    python benchmarks/ingest.py --scale 1.0        # the full 243,610-image demo export
    python benchmarks/ingest.py --scale 0.2        # a smaller one

The demo export is cut by objid (seeded) into a base (90%) and a new export (10%). The base
is built into a store (no class cap, as benchmarks/build_store.py); then, in alternating
rounds, the new export is (a) built into a store of its own and (b) ingested into a fresh
copy of the base store. Target (issue 36): ingest time <= 1.2 x the build of the 10% alone
(median of the rounds), as the old data are not rewritten. Then a cnn is trained briefly
(its weights do not matter for speed) and ``embed`` runs over the grown store; its images/s
are printed beside the model's own inference rate (``predict_proba`` on one block, in this
process).
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

TARGET_RATIO = 1.2


def split_export(export: Path, out: Path, fraction: float, seed: int) -> tuple[Path, Path]:
    """``out/base`` and ``out/new``: the export's rows cut by objid, ``fraction`` new."""
    meta = pd.read_csv(export / "meta.csv", dtype=str, keep_default_na=False)
    rng = np.random.default_rng(seed)
    is_new = rng.random(len(meta)) < fraction
    parts = {}
    features = pd.read_csv(export / "features_native.csv.gz", dtype=str, keep_default_na=False)
    with zipfile.ZipFile(export / "imgs.zip") as src:
        members = {Path(n).stem: n for n in src.namelist() if not n.endswith("/")}
        for name, rows in (("base", meta[~is_new]), ("new", meta[is_new])):
            folder = out / name
            folder.mkdir(parents=True, exist_ok=True)
            rows.to_csv(folder / "meta.csv", index=False)
            keep = set(rows["objid"])
            with gzip.open(folder / "features_native.csv.gz", "wt") as f:
                features[features["objid"].isin(keep)].to_csv(f, index=False)
            with zipfile.ZipFile(folder / "imgs.zip", "w", zipfile.ZIP_STORED) as dst:
                for objid in rows["objid"]:
                    if objid in members:
                        dst.writestr(members[objid], src.read(members[objid]))
            parts[name] = folder
    return parts["base"], parts["new"]


def timed(label: str, func, *args, **kwargs):  # noqa: ANN001, ANN201
    started = time.perf_counter()
    result = func(*args, **kwargs)
    seconds = time.perf_counter() - started
    print(f"{label}: {seconds:.1f} s")
    return result, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="Demo export scale.")
    parser.add_argument("--fraction", type=float, default=0.1, help="Share of the new export.")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / "plankton-bench"
    )
    parser.add_argument(
        "--max-per-class", type=int, default=0, help="Class cap of both builds; 0 = none."
    )
    parser.add_argument("--rounds", type=int, default=3, help="Alternating rounds.")
    parser.add_argument("--no-embed", action="store_true", help="Skip the embed measurement.")
    parser.add_argument("--keep", action="store_true", help="Keep the stores (path printed).")
    args = parser.parse_args()

    from distributed import Client

    from benchmarks.build_store import demo_export
    from plankton_store.cluster import local_cluster
    from plankton_store.store import BuildOptions, build_store, ingest_store, open_store

    export = demo_export(args.scale, args.seed, args.cache)
    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    try:
        (base, new), _ = timed("split export", split_export, export, work, args.fraction, 0)
        quiet = dict(progress=False, echo=lambda _: None)
        options = BuildOptions(max_per_class=args.max_per_class or None)
        with local_cluster(args.workers) as cluster, Client(cluster) as client:
            base_store, store = str(work / "base.zarr"), str(work / "store.zarr")
            timed("build base (90%)", build_store, str(base), base_store, options, client,
                  **quiet)  # fmt: skip
            n_base = open_store(base_store).n_samples
            ratios = []
            for _ in range(args.rounds):  # alternating: the machine's speed drifts
                shutil.rmtree(store, ignore_errors=True)
                shutil.copytree(base_store, store)
                alone, t_alone = timed(
                    "build new (10%) alone", build_store, str(new), str(work / "alone.zarr"),
                    options, client, overwrite=True, **quiet,
                )  # fmt: skip
                summary, t_ingest = timed("ingest new (10%)", ingest_store, store, str(new),
                                          client, **quiet)  # fmt: skip
                ratios.append(t_ingest / t_alone)
            ratio = float(np.median(ratios))
            print(
                f"store of {n_base} samples + {summary.stop - summary.start} ingested "
                f"({alone.samples} when built alone); ingest / build alone per round "
                f"{', '.join(f'{r:.2f}' for r in ratios)}, median {ratio:.2f} "
                f"(target <= {TARGET_RATIO}): {'PASS' if ratio <= TARGET_RATIO else 'FAIL'}"
            )
            if not args.no_embed:
                embed_rates(store, work, client)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def embed_rates(store: str, work: Path, client) -> None:  # noqa: ANN001
    """``embed`` images/s over the whole store beside the cnn's in-process inference rate."""
    from plankton_store.ml import ModelInputs, TrainOptions, embed_store, load_model, train
    from plankton_store.store import open_store

    model_dir = work / "cnn"
    timed("train cnn (1 short epoch)", train, store, model_dir,
          TrainOptions(model="cnn", epochs=1, time_budget=60), echo=None)  # fmt: skip
    summary, _ = timed("embed", embed_store, store, str(model_dir), client, progress=False,
                       echo=lambda _: None)  # fmt: skip
    st = open_store(store)
    model = load_model(model_dir)
    rows = np.arange(min(st.n_samples, st.block_size))
    inputs = ModelInputs.from_store(st, rows)
    model.predict_proba(inputs.subset(np.arange(8)))  # warm-up: graph building
    started = time.perf_counter()
    model.predict_proba(inputs, batch_size=512)
    rate = len(rows) / (time.perf_counter() - started)
    print(
        f"embed: {summary.samples} images in {summary.seconds:.1f} s = "
        f"{summary.images_per_second:,.0f} images/s on the cluster; cnn inference "
        f"(predict_proba, one process, one block of {len(rows)}): {rate:,.0f} images/s"
    )


if __name__ == "__main__":
    main()
