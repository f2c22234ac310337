#!/usr/bin/env bash
# Quickstart 1: set up, then run the main job end to end on the embedded default
# (the installed Python stdlib's docstrings as a corpus + a shipped fine-tuning set).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh base  # the package only, no test extras (Ray alone is ~900 MB)
exec .venv/bin/probe demo "$@"
