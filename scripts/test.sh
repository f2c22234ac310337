#!/usr/bin/env bash
# Quickstart 2: set up, then run the linter and the whole test suite (crash tests included).
# Extra arguments go to pytest, e.g. `scripts/test.sh -m "not slow"`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
.venv/bin/ruff check probe tests bench
set +e
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: failing (nothing checked is not success)" >&2
  exit 1
fi
exit "$rc"
