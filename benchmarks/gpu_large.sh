#!/usr/bin/env bash
# The large preset's real-image benchmark on one GPU (issue 38), offline, in about 9 minutes.
#
#   bash benchmarks/gpu_large.sh WHEELS NDSB_DEV [WORKDIR]
#
# Run from the repository root on a Linux machine with Python 3.12 and jax[cuda] installed
# (no other packages, no internet). WHEELS is a folder of wheels (the project's runtime
# dependencies without TensorFlow and JAX, plus keras and plankton_jobs itself); NDSB_DEV the
# export (meta.csv, imgs.zip). It installs them into a virtual environment that sees the
# system's jax (or, where venv is missing, next to it), then runs benchmarks/real_quality.py
# --preset large on Keras' JAX backend (mixed precision on the GPU) for level2 and level1
# with the README's split (stores padded to 96x96), and prints accuracy and macro-F1 with
# their 95% bootstrap intervals over the test images (8-view TTA).
#
# Environment: PYTHON (default python3.12, else python3), BUDGET_MINUTES (training minutes per
# level, default 2.75), HEAD (softmax, the default here to fit the time; auto / logistic refit
# the head on CPUs: 1-2 more minutes per level), SIZE (default 96x96).
set -euo pipefail

WHEELS=$(cd "${1:?usage: gpu_large.sh WHEELS NDSB_DEV [WORKDIR]}" && pwd)
SOURCE=$(cd "${2:?usage: gpu_large.sh WHEELS NDSB_DEV [WORKDIR]}" && pwd)
WORK=${3:-${TMPDIR:-/tmp}/plankton-large}
BUDGET_MINUTES=${BUDGET_MINUTES:-2.75}
HEAD=${HEAD:-softmax}
SIZE=${SIZE:-96x96}
PYTHON=${PYTHON:-$(command -v python3.12 || command -v python3)}
REPO=$(pwd)
[ -f "$REPO/benchmarks/real_quality.py" ] || { echo "run from the repository root" >&2; exit 2; }
mkdir -p "$WORK"
started=$(date +%s)

# The runtime dependencies of pyproject.toml without tensorflow; keras comes on its own.
REQUIREMENTS=(
  "dask[distributed]>=2024.12" "zarr>=3.1.6,<4" "numpy>=1.26" "pandas>=2.2" "pillow>=10.3"
  "simplejpeg>=1.8" "scikit-learn>=1.5" "scipy>=1.15" "imbalanced-learn>=0.12" "click>=8.1"
  "matplotlib>=3.8" "tqdm>=4.66" "pyyaml>=6" "fsspec>=2024.6" "xarray>=2025.1" "skops>=0.10"
  "threadpoolctl>=3.1" "keras>=3.8"
)
if "$PYTHON" -m venv --system-site-packages "$WORK/venv" 2>/dev/null; then
  PY="$WORK/venv/bin/python"
else
  echo "no venv module: installing next to the system's jax" >&2
  PY="$PYTHON"
  export PIP_BREAK_SYSTEM_PACKAGES=1
fi
# numpy and scipy come with jax[cuda]; WHEELS/extra may hold them for a machine without.
LINKS=(--find-links "$WHEELS")
[ -d "$WHEELS/extra" ] && LINKS+=(--find-links "$WHEELS/extra")
"$PY" -m pip install -q --no-index "${LINKS[@]}" "${REQUIREMENTS[@]}"
# The project without its tensorflow requirement (not needed on JAX).
"$PY" -m pip install -q --no-index --no-deps --find-links "$WHEELS" plankton_jobs
"$PY" -c "import jax; print('jax', jax.__version__, jax.devices())"
echo "installed in $(( $(date +%s) - started )) s"

# The checkout's code wins over the installed wheel.
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false
"$PY" "$REPO/benchmarks/real_quality.py" --source "$SOURCE" --levels level2,level1 \
  --preset large --size "$SIZE" --head "$HEAD" --budget-minutes "$BUDGET_MINUTES" \
  --workdir "$WORK/real" 2>&1 | grep -v -e "^I0000" -e "^WARNING: All log messages" \
  | tee "$WORK/real_quality.log"

"$PY" - "$WORK/real" <<'EOF'
import json, sys
from pathlib import Path

print("\nlevel   accuracy [95% interval]     macro-F1 [95% interval]     train min  epochs")
for level in ("level2", "level1"):
    path = Path(sys.argv[1]) / f"summary-{level}.json"
    if not path.is_file():
        print(f"{level}: no summary")
        continue
    r = json.loads(path.read_text())
    iv = r["intervals"]
    print(
        f"{level}  {r['accuracy']:.4f} [{iv['accuracy'][0]:.4f}, {iv['accuracy'][1]:.4f}]"
        f"   {r['macro_f1']:.4f} [{iv['macro_f1'][0]:.4f}, {iv['macro_f1'][1]:.4f}]"
        f"   {r['train_minutes']:>8}  {r['epochs']:>6}"
    )
EOF
echo "wall time $(( $(date +%s) - started )) s; logs and models in $WORK"
