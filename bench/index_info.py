"""`probe index info`: probe's merged statistics vs the same numbers by plain DuckDB SQL, each in its own process.

What it measures (index: ``indexes/shared``, default spec: surface view, n = 8, 13; 11 segments):

1. probe: ``probe index info INDEX --format json`` (the CLI, top 10 n-grams with their text read back
   from the corpus) and ``--top 0`` (distinct counts only), ``--repeats`` times alternating with 2.;
2. plain DuckDB (the PEERS.md baseline, 2 threads): per n, ``count(DISTINCT hash)`` over the segments'
   n-gram files, and the top 10 by ``sum(count)`` over the n-gram files UNION ALL the repeated-rows
   files (docs/index-format.md §4.2), i.e. the queries `probe index info` ran before it merged the
   sorted segments itself. Text read-back is not part of the baseline (it is the same code either way).

Distinct counts and the top 10 (hash, count, docs) must agree exactly. Peak RSS is the process tree's,
polled every 50 ms. Writes "## Index info" in bench/RESULTS.md (other sections kept).

    .venv/bin/python bench/index_info.py              # ~3 minutes on 2 vCPUs
    .venv/bin/python bench/index_info.py --repeats 1 --no-results
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import (  # noqa: E402
    REPO_ROOT,
    command_line,
    fmt_bytes,
    machine_info,
    md_table,
    run_measured,
    write_section,
)

HEADING = "Index info"
DEFAULT_INDEX = REPO_ROOT / "indexes" / "shared"
TOP = 10

DUCKDB_CHILD = r"""
import json, sys, time
from probe._duck import connect
from probe.index.reader import open_index
reader = open_index(sys.argv[1])
con = connect(2)
out = []
t0 = time.perf_counter()
for view in reader.spec.views:
    for n in reader.spec.ns:
        entries = [e for _si, e in reader.ngram_entries(view, n)]
        files = [str(reader.root / e["path"]) for e in entries]
        reps = [str(reader.root / e["repeated_file"]["path"]) for e in entries]
        distinct = con.execute("SELECT count(DISTINCT hash) FROM read_parquet(?)", [files]).fetchone()[0]
        top = con.execute(
            "SELECT hash, sum(c)::UBIGINT, sum(d)::UBIGINT FROM ("
            " SELECT hash, 1 AS c, 1 AS d FROM read_parquet(?)"
            " UNION ALL SELECT hash, count - 1, docs - 1 FROM read_parquet(?)"
            ") GROUP BY hash ORDER BY 2 DESC, hash LIMIT ?", [files, reps, TOP]).fetchall()
        out.append({"view": view, "n": n, "distinct": int(distinct), "top": [[int(x) for x in r] for r in top]})
print(json.dumps({"seconds": time.perf_counter() - t0, "ngrams": out}))
""".replace("TOP]", f"{TOP}]")


def _probe(index: Path, top: int) -> dict[str, Any]:
    run = run_measured([sys.executable, "-m", "probe", "index", "info", str(index), "--top", str(top),
                        "--format", "json"], cwd=REPO_ROOT)
    if run.returncode != 0:
        raise SystemExit(f"probe index info failed ({run.returncode}):\n{run.stderr}")
    info = json.loads(run.stdout)
    ngrams = [{"view": r["view"], "n": r["n"], "distinct": r["distinct"],
               "top": [[int(t["hash"]), t["count"], t["docs"]] for t in r["top"]]} for r in info["ngrams"]]
    return {"wall": run.wall_seconds, "cpu": run.user_seconds + run.sys_seconds, "peak_rss": run.tree.peak_tree_bytes,
            "ngrams": ngrams, "rows": {f"{r['view']}/{r['n']}": r["rows"] for r in info["ngrams"]},
            "segments": len(info["shards"])}


def _duckdb(index: Path) -> dict[str, Any]:
    run = run_measured([sys.executable, "-c", DUCKDB_CHILD, str(index)], cwd=REPO_ROOT)
    if run.returncode != 0:
        raise SystemExit(f"DuckDB baseline failed ({run.returncode}):\n{run.stderr}")
    res = json.loads(run.stdout.strip().splitlines()[-1])  # the last line: anything before is not ours
    return {"wall": run.wall_seconds, "cpu": run.user_seconds + run.sys_seconds, "peak_rss": run.tree.peak_tree_bytes,
            "query_seconds": res["seconds"], "ngrams": res["ngrams"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index", type=Path, default=DEFAULT_INDEX)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--no-results", action="store_true", help="do not write bench/RESULTS.md")
    args = ap.parse_args()
    if not (args.index / "probe-index.json").exists():
        raise SystemExit(f"no index at {args.index}: build it first (README, 'shared corpus index')")
    runs: dict[str, list[dict[str, Any]]] = {"probe": [], "probe_top0": [], "duckdb": []}
    for i in range(args.repeats):
        for name, fn in (("probe", lambda: _probe(args.index, TOP)), ("probe_top0", lambda: _probe(args.index, 0)),
                         ("duckdb", lambda: _duckdb(args.index))):
            r = fn()
            runs[name].append(r)
            print(f"{name} run {i + 1}: {r['wall']:.2f} s, peak RSS {fmt_bytes(r['peak_rss'])}", flush=True)
    results = {"machine": machine_info(), "command": command_line(), "index": str(args.index), "runs": runs}
    md = report(results)
    print()
    print(md)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    if not args.no_results:
        write_section(HEADING, md)
    agree = _agreement(runs)
    return 0 if agree else 1


def _agreement(runs: dict[str, list[dict[str, Any]]]) -> bool:
    ref = runs["duckdb"][0]["ngrams"]
    probe = runs["probe"][0]["ngrams"]
    top0 = runs["probe_top0"][0]["ngrams"]
    return (all(a["distinct"] == b["distinct"] == c["distinct"] for a, b, c in zip(ref, probe, top0, strict=True))
            and all(a["top"] == b["top"] for a, b in zip(ref, probe, strict=True)))


def report(r: dict[str, Any]) -> str:
    m = r["machine"]
    runs = r["runs"]
    first = runs["probe"][0]
    rows = []
    labels = {"probe": f"probe `index info --top {TOP}` (distinct + top {TOP} with text)",
              "probe_top0": "probe `index info --top 0` (distinct only)",
              "duckdb": f"plain DuckDB SQL, 2 threads: `count(DISTINCT hash)` + top {TOP} `GROUP BY` (no text)"}
    best = {name: min(rs, key=lambda x: x["wall"]) for name, rs in runs.items()}
    for name, label in labels.items():
        b = best[name]
        walls = ", ".join(f"{x['wall']:.2f}" for x in runs[name])
        ratio = best["duckdb"]["wall"] / b["wall"]
        rows.append([label, f"{b['wall']:.2f} s (runs: {walls})", f"{b['cpu']:.2f} s", fmt_bytes(b["peak_rss"]),
                     f"{ratio:.2f}×"])
    agree = _agreement(runs)
    n_rows = ", ".join(f"{k} {v:,}" for k, v in first["rows"].items())
    distinct = ", ".join(f"{g['view']}/{g['n']} {g['distinct']:,}" for g in first["ngrams"])
    lines = [
        f"`{r['command']}` — {m.get('date', '')}; {m.get('cpu_model', '')}, {m.get('nproc', '')} CPUs "
        f"(shared with other engineers: timings noisy), {m.get('ram_gib', '')} GiB; index `{r['index']}` "
        f"({first['segments']} shards; rows over all segments: {n_rows}). Every method runs in its own process "
        "(interpreter start included); best wall time of the repeats; peak RSS is the process tree's.",
        "",
        md_table(["method", "wall", "CPU (user + sys)", "peak RSS", "DuckDB wall ÷ this"], rows),
        "",
        f"- Distinct n-grams: {distinct}; DuckDB and probe (both runs) "
        + ("**agree exactly**, and so do the top-10 (hash, count, docs) rows." if agree
           else "**DISAGREE** (see the JSON with `--out`)."),
        "- How probe does it (`probe/index/stats.py:_merged_counts`): one pass over the segments' sorted `hash` "
        "columns, bucket range by bucket range (~4 M rows at a time): a stable sort merges the sorted runs, "
        "distinct = value changes, count = segments holding the hash + what the small repeated-rows files add. "
        "The top n-grams' text is read from one document found through the row groups of their bucket, "
        "instead of loading every table for a full lookup.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
