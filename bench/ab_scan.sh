#!/usr/bin/env bash
# A/B of `probe scan` between two checkouts, fresh process each, alternating (the machine is shared:
# only runs taken in the same minutes compare). Prints wall and in-scan seconds per run.
#   bench/ab_scan.sh BASE_PYTHON BASE_INDEX NEW_PYTHON NEW_INDEX [DATASET] [RUNS]
# e.g. a worktree of the old commit with its own venv, each side on an index it built itself:
#   bench/ab_scan.sh /work/wt/base/.venv/bin/python indexes/shared-base .venv/bin/python indexes/shared
set -euo pipefail
base_py=$1 base_idx=$2 new_py=$3 new_idx=$4
dataset=${5:-../shared/data/benchmarks/mmlu/test.jsonl}
runs=${6:-4}
out=$(mktemp -d)
for _ in $(seq "$runs"); do
  for side in base new; do
    if [ "$side" = base ]; then py=$base_py idx=$base_idx; else py=$new_py idx=$new_idx; fi
    rm -rf "$out/$side"
    wall=$( { /usr/bin/time -f "%e" "$py" -m probe scan "$dataset" --index "$idx" --out "$out/$side" --silent \
      --format json > "$out/$side.json"; } 2>&1 )
    echo "$side wall=${wall}s scan_seconds=$("$py" -c "import json,sys; print(json.load(open(sys.argv[1]))['seconds'])" "$out/$side.json")"
  done
done
rm -rf "$out"
