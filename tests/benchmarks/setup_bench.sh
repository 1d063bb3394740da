#!/usr/bin/env bash
# Create (or update) the benchmark environment .venv-bench: the project with PyTorch,
# TensorFlow (CPU) and JAX exactly as in constraints.txt, plus the peer libraries of
# tests/benchmarks/requirements-bench.txt. The peers never go into .venv, where tests run.
#
#   tests/benchmarks/setup_bench.sh            # or: make bench (runs this when needed)
#   PYTHON=python3.11 VENV_BENCH=/tmp/vb tests/benchmarks/setup_bench.sh
set -euo pipefail

cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
VENV_BENCH=${VENV_BENCH:-.venv-bench}
PY="$VENV_BENCH/bin/python"
PIP=("$PY" -m pip install --quiet --disable-pip-version-check)

if [ ! -x "$PY" ]; then
    echo "creating $VENV_BENCH with $PYTHON"
    "$PYTHON" -m venv "$VENV_BENCH"
fi

echo "installing the project with its frameworks (torch==2.13.0 CPU build, tensorflow-cpu, jax)"
"${PIP[@]}" -c constraints.txt -e ".[torch,tensorflow-cpu,jax]"

echo "installing the peers (tests/benchmarks/requirements-bench.txt)"
"${PIP[@]}" -c constraints.txt -r tests/benchmarks/requirements-bench.txt
# Without their declared dependencies, see requirements-bench.txt: xplique would pull
# tensorflow[and-cuda]<=2.20, tf-keras the full `tensorflow` package.
"${PIP[@]}" --no-deps xplique==2.0.2 tf-keras==2.21.0

echo "checking that every contender imports"
TF_CPP_MIN_LOG_LEVEL=3 "$PY" - <<'PYTHON'
import captum.attr
import saliency.core
import tf_keras_vis.saliency
import xplique.attributions

import adapters.jax
import adapters.tensorflow
import adapters.torch

print("bench environment ready:", captum.__version__, xplique.__version__)
PYTHON
touch "$VENV_BENCH/.bench-installed"
