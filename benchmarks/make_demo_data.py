"""Benchmark: time a synthetic export against the 10-minute limit of the full scale.

Usage: python benchmarks/make_demo_data.py [--scale 1.0] [--out DIR] [--workers W] [--keep]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from plankton_store.demo import timed_export

LIMIT_S = 600.0  # full scale (243,610 images) must take at most 10 minutes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None, help="default: a temporary folder")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()

    tmp = None if args.out else Path(tempfile.mkdtemp(prefix="demo-export-"))
    out = args.out or tmp
    try:
        _, rows, seconds = timed_export(
            out=out, scale=args.scale, seed=args.seed, workers=args.workers, progress=True
        )
        size_mb = sum(f.stat().st_size for f in Path(out).iterdir()) / 1e6
        full = seconds / args.scale  # linear extrapolation to scale 1.0
        print(f"scale {args.scale}: {rows} rows in {seconds:.1f} s = {rows / seconds:.0f} images/s")
        print(f"output {size_mb:.1f} MB in {out}")
        print(f"ratio to the 10-minute limit: {seconds / LIMIT_S:.3f}")
        print(f"extrapolated to scale 1.0: {full:.0f} s, ratio {full / LIMIT_S:.3f}")
    finally:
        if tmp is not None and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
