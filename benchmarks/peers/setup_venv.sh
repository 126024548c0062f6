#!/usr/bin/env bash
# Create .venv-peers (git-ignored) with our package and the peer planners, keeping torch at the
# 2.13.0 CPU wheel. Run from the repository root:  bash benchmarks/peers/setup_venv.sh
set -euo pipefail
VENV="${VENV:-.venv-peers}"
HERE="benchmarks/peers"
test -x "$VENV/bin/python" || python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet torch==2.13.0  # FIRST: an unpinned torch pulls a CUDA build
"$VENV/bin/pip" install --quiet -c "$HERE/constraints.txt" -e .
"$VENV/bin/pip" install --quiet -c "$HERE/constraints.txt" -r "$HERE/requirements.txt"
"$VENV/bin/pip" install --quiet --no-deps -c "$HERE/constraints.txt" -r "$HERE/requirements-nodeps.txt"
"$VENV/bin/python" -c "import torch, pytorch_mppi, torchrl; print('torch', torch.__version__)"
