"""Fresh-process time to answer: `probe scan` vs the DuckDB SQL query over its own pre-built table.

Issue 15's first target: with the index built and in the page cache, one `probe scan DATASET` in
a new process (MMLU test, Alpaca 5000) against the plain DuckDB peer of bench/peers/run.py in a
new process (`duckdb.connect(grams.duckdb)`, the dataset's 13-grams by the same SQL, `SEMI JOIN`
the pre-built 13-gram table). Both sides are timed as whole processes (interpreter start, imports,
index open, answer, exit) and alternate run by run, because the machine is shared: best and
median of ``--repeats`` are reported, with the load average. Optional sides: the same probe index
without lookup files (``--parquet-side``: only meaningful for an index that has them, as on the
lookup-file experiment of bench/peers/NOTES.md; main's index format 3 has none), and a cold read (every
file of both indexes evicted with ``posix_fadvise(DONTNEED)`` before the run; ``--cold``).
The 13-gram answers (probe's ``contaminated_lmeval`` = DuckDB's flagged examples) must agree.

    .venv/bin/python bench/peers/fresh.py --index indexes/shared --repeats 5 --parquet-side --cold
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent.parent))

import run as peers  # noqa: E402  (bench/peers/run.py: the DuckDB peer's SQL and the datasets)

PY = sys.executable


def _duckdb_query_child(db: str, dataset: str, threads: int) -> None:
    """One fresh DuckDB process: open the persisted table, answer the dataset's 13-gram question."""
    t0 = time.perf_counter()
    import duckdb

    con = duckdb.connect(db, read_only=True)
    con.execute(f"SET threads={threads}")
    src = f"read_json('{dataset}')"
    con.execute(f"CREATE TEMP TABLE q AS {peers.duckdb_grams_sql(src, 'i')}")
    flagged = sorted(int(r[0]) for r in con.execute("SELECT DISTINCT doc FROM q SEMI JOIN grams USING (h)").fetchall())
    print(json.dumps({"seconds": time.perf_counter() - t0, "flagged": flagged}))


def _build_duckdb(corpus: str, db: Path, threads: int) -> float:
    import duckdb

    db.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(db))
    con.execute(f"SET threads={threads}")
    con.execute("SET preserve_insertion_order=false")
    files = ", ".join(f"'{f}'" for f in peers._corpus_files(corpus))  # noqa: SLF001
    t0 = time.perf_counter()
    con.execute(f"CREATE TABLE grams AS SELECT h, count(*)::UINTEGER AS c FROM "
                f"({peers.duckdb_grams_sql(f'read_parquet([{files}])', 'row_number() OVER ()')}) GROUP BY h")
    con.execute("CHECKPOINT")
    con.close()
    return time.perf_counter() - t0


def _whole_text_jsonl(src: Path, dest: Path) -> None:
    from probe.sources.datasets import DatasetOptions, read_examples

    with open(dest, "w", encoding="utf-8") as g:
        for batch in read_examples(src, DatasetOptions()):
            for ex in batch:
                g.write(json.dumps({"i": ex.row, "text": ex.whole_text()}, ensure_ascii=False) + "\n")


def _evict(paths: list[Path]) -> None:
    """Drop these files' pages from the page cache (no root needed; clean pages only)."""
    for root in paths:
        for f in ([root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]):
            fd = os.open(f, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def _timed(cmd: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if p.returncode not in (0, 1):
        raise RuntimeError(f"{cmd[:4]} exit {p.returncode}: {p.stderr[-2000:]}")
    return wall, p.stdout


def _probe_scan(index: Path, dataset: Path, out: Path) -> tuple[float, dict[str, Any]]:
    import pyarrow.parquet as pq

    shutil.rmtree(out, ignore_errors=True)
    wall, _ = _timed([PY, "-m", "probe", "scan", str(dataset), "--index", str(index), "--out", str(out), "--silent"])
    summ = json.loads((out / "summary.json").read_text())
    t = pq.read_table(out / "examples.parquet", columns=["row", "contaminated_lmeval"])
    flagged = sorted(r for r, v in zip(t.column("row").to_pylist(), t.column("contaminated_lmeval").to_pylist(),
                                       strict=True) if v)
    return wall, {"seconds": summ["seconds"], "flagged": flagged, "lookups": summ["lookups"]}


def _stats(xs: list[float]) -> dict[str, float]:
    return {"best": min(xs), "median": statistics.median(xs), "runs": xs}


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0915
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--index", default=str(peers.REPO_ROOT / "indexes" / "shared"))
    ap.add_argument("--corpus", default=str(peers.DATA / "corpus" / "shards"))
    ap.add_argument("--datasets", default="mmlu,alpaca")
    ap.add_argument("--work", default=str(peers.REPO_ROOT / "bench" / "out" / "fresh"))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--parquet-side", action="store_true", help="also the index without lookup files")
    ap.add_argument("--cold", action="store_true", help="also one cold run per side (posix_fadvise DONTNEED)")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    ap.add_argument("--child-duckdb", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child_duckdb:
        _duckdb_query_child(args.child_duckdb[0], args.child_duckdb[1], int(args.child_duckdb[2]))
        return 0
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    index = Path(args.index)
    db = work / "grams.duckdb"
    res: dict[str, Any] = {"index": str(index), "loadavg_start": os.getloadavg(), "datasets": {}}
    if not db.exists():
        res["duckdb_build_seconds"] = _build_duckdb(args.corpus, db, args.threads)
    sides = {"probe": index}
    if args.parquet_side:
        pq_index = work / "index_parquet_only"
        if not pq_index.exists():
            shutil.copytree(index, pq_index)
            for d in pq_index.glob("segments/*/lookup"):
                shutil.rmtree(d)
        sides["probe_parquet"] = pq_index
    for name in args.datasets.split(","):
        src = peers.DATASETS.get(name, Path(name))
        whole = work / f"{name}.whole.jsonl"
        _whole_text_jsonl(src, whole)
        walls: dict[str, list[float]] = {s: [] for s in [*sides, "duckdb"]}
        inner: dict[str, list[float]] = {s: [] for s in walls}
        answers: dict[str, list[int]] = {}

        def run_side(side: str, walls=walls, inner=inner, answers=answers, src=src, whole=whole, name=name) -> float:
            if side == "duckdb":
                wall, out = _timed([PY, __file__, "--child-duckdb", str(db), str(whole), str(args.threads)])
                d = json.loads(out)
            else:
                wall, d = _probe_scan(sides[side], src, work / f"out_{side}_{name}")
            answers[side] = d["flagged"]
            inner[side].append(d["seconds"])
            return wall

        for side in walls:  # warm-up: page cache and numba caches
            run_side(side)
        for _ in range(args.repeats):
            for side in walls:  # alternate the sides run by run
                walls[side].append(run_side(side))
        entry: dict[str, Any] = {s: {"wall": _stats(walls[s]), "in_process": _stats(inner[s])} for s in walls}
        entry["agree"] = len({tuple(v) for v in answers.values()}) == 1
        entry["flagged"] = {s: len(v) for s, v in answers.items()}
        if args.cold:
            for side in walls:
                _evict([db] if side == "duckdb" else [sides[side]])
                entry[side]["cold_wall"] = run_side(side)
        entry["ratio_duckdb_over_probe"] = {"best": walls["duckdb"] and min(walls["duckdb"]) / min(walls["probe"]),
                                            "median": statistics.median(walls["duckdb"])
                                            / statistics.median(walls["probe"])}
        res["datasets"][name] = entry
        print(json.dumps({name: {s: (entry[s]["wall"]["best"], entry[s]["wall"]["median"], entry[s].get("cold_wall"))
                                 for s in walls}, "ratio": entry["ratio_duckdb_over_probe"], "agree": entry["agree"]}),
              flush=True)
    res["loadavg_end"] = os.getloadavg()
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
