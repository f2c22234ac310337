"""Side-table costs and MinHash parameter choice on a real corpus shard (../shared/data).

For each MinHash configuration: `probe index add` time and bytes per corpus token and per chunk,
the scan's examples/s with the measure, and detection on planted queries cut from corpus documents
(40-word passages: verbatim, one word in 7 or in 4 replaced, every 6th word dropped) against
negatives (benchmark questions with no 8-gram in the corpus). Per variant: "found" = the best
chunk is in the source document, and the mean containment; negatives report the share with
containment >= 0.3 and the 99th percentile. The distribution side table's cost is measured once.

    [PROBE_SHARED_DATA=../shared/data] .venv/bin/python bench/side_tables.py [--shard PATH] [--queries 200] [--configs default,perm128,...]

Prints a Markdown table (paste into bench/RESULTS.md).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from probe.config import BuildConfig, TextSpec
from probe.index.build import add_side_tables, build_index
from probe.index.side_tables import SideTableRequest
from probe.index.stats import index_info
from probe.scan import ScanConfig, scan_dataset

SHARED = Path(os.environ.get("PROBE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
CONFIGS = {
    "default": {},
    "perm128": {"num_perm": 128},
    "perm32": {"num_perm": 32},
    "band2": {"band_rows": 2},
    "shingle5": {"shingle": 5},
    "chunk128": {"chunk_tokens": 128, "overlap_tokens": 16},
    "shingle4": {"shingle": 4},
    "perm128_shingle5": {"shingle": 5, "num_perm": 128},
}
VARIANTS = ("verbatim", "sub1in7", "sub1in4", "drop1in6")


def _variant(words: list[str], kind: str, rng: random.Random) -> list[str]:
    if kind == "verbatim":
        return words
    if kind == "drop1in6":
        return [w for i, w in enumerate(words) if i % 6 != 3]
    every = 7 if kind == "sub1in7" else 4
    return [f"zq{rng.randrange(10**6)}" if i % every == every // 2 else w for i, w in enumerate(words)]


def planted(shard: Path, n: int, seed: int) -> tuple[list[dict], list[int]]:
    table = pq.read_table(shard, columns=["text"])
    texts = table.column("text").to_pylist()
    rng = random.Random(seed)
    rows = [i for i, t in enumerate(texts) if len(t.split()) >= 80]
    picked = rng.sample(rows, min(n, len(rows)))
    records, sources = [], []
    for row in picked:
        words = texts[row].split()
        start = rng.randrange(0, len(words) - 40)
        passage = words[start:start + 40]
        for kind in VARIANTS:
            records.append({"instruction": " ".join(_variant(passage, kind, rng)), "output": "", "group": kind})
            sources.append(row)
    return records, sources


def negatives(limit: int) -> list[dict]:
    out = []
    for rel, key in (("benchmarks/gsm8k/test.jsonl", "question"), ("benchmarks/arc/ARC-Challenge-Test.jsonl",
                                                                      "question")):
        with open(SHARED / rel, encoding="utf-8") as f:
            for line in f:
                q = json.loads(line)[key]
                out.append({"instruction": q if isinstance(q, str) else json.dumps(q), "output": "",
                            "group": "negative"})
    random.Random(1).shuffle(out)
    return out[:limit]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shard", default=str(SHARED / "corpus" / "shards" / "corpus-00004.parquet"))
    ap.add_argument("--queries", type=int, default=150)
    ap.add_argument("--negatives", type=int, default=300)
    ap.add_argument("--configs", default=",".join(CONFIGS))
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="probe-side-bench-"))
    config = BuildConfig(workers=1)
    try:
        plain = work / "plain"
        t0 = time.perf_counter()
        build_index([args.shard], plain, TextSpec(), config)
        plain_seconds = time.perf_counter() - t0
        info = index_info(plain, top_k=0)
        tokens = info["totals"]["tokens"]
        print(f"corpus: {args.shard}: {info['totals']['docs']:,} docs, {tokens:,} tokens; n-gram build "
              f"{plain_seconds:.1f}s, {info['bytes_on_disk']:,} bytes ({info['bytes_per_token']} B/token)")
        dist = work / "dist"
        shutil.copytree(plain, dist)
        t0 = time.perf_counter()
        add_side_tables(dist, [SideTableRequest("distribution")], config)
        d = index_info(dist, top_k=0)["side_tables"][0]
        print(f"distribution: add {time.perf_counter() - t0:.1f}s (builder {d['build_seconds']}s), "
              f"{d['bytes']:,} bytes ({d['bytes_per_token']} B/token)")
        records, sources = planted(Path(args.shard), args.queries, seed=5)
        neg = negatives(args.negatives)
        base = scan_dataset(neg, plain).examples
        neg = [r for r, cov in zip(neg, base.column("coverage").to_pylist(), strict=True) if cov == 0.0]
        data = records + neg
        t0 = time.perf_counter()
        scan_dataset(data, plain)
        ngram_scan = time.perf_counter() - t0
        print(f"{len(records)} planted ({args.queries} passages x {len(VARIANTS)}), {len(neg)} negatives "
              f"(no 8-gram in the corpus); n-gram-only scan {len(data) / ngram_scan:.0f} examples/s")
        print()
        print("| config | add s | B/token | B/chunk | chunks | scan ex/s | load s | "
              + " | ".join(f"{v} found / mean C" for v in VARIANTS) + " | neg >=0.3 | neg p99 |")
        print("|---" * (9 + len(VARIANTS)) + "|")
        for name in args.configs.split(","):
            idx = work / name
            shutil.copytree(plain, idx)
            t0 = time.perf_counter()
            add_side_tables(idx, [SideTableRequest("minhash", CONFIGS[name])], config)
            add_s = time.perf_counter() - t0
            st = index_info(idx, top_k=0)["side_tables"][0]
            t0 = time.perf_counter()
            res = scan_dataset(data, idx, config=ScanConfig(measures=("minhash",)))
            scan_s = time.perf_counter() - t0
            mh = res.summary.to_dict()["measures"]["minhash"]
            ex = res.examples
            cont = np.asarray(ex.column("minhash_instruction_containment").to_pylist(), float)
            # the best chunk's document: provenance columns only above the threshold, so ask for all of them
            res_rows = scan_dataset(data, idx, config=ScanConfig(
                measures=("minhash",), measure_options={"minhash": {"provenance_threshold": 0.0}})).examples
            best_row = res_rows.column("minhash_instruction_row").to_pylist()
            found, mean_c = {}, {}
            for v_i, v in enumerate(VARIANTS):
                idxs = list(range(v_i, len(records), len(VARIANTS)))
                found[v] = sum(1 for i in idxs if best_row[i] == sources[i]) / len(idxs)
                mean_c[v] = float(np.mean(cont[idxs]))
            neg_c = cont[len(records):]
            print(f"| {name} {CONFIGS[name] or ''} | {add_s:.1f} | {st['bytes_per_token']} | "
                  f"{st['bytes'] / st['rows']['chunks']:.0f} | {st['rows']['chunks']:,} | "
                  f"{len(data) / scan_s:.0f} | {mh['measured_cost']['load_seconds']} | "
                  + " | ".join(f"{found[v]:.2f} / {mean_c[v]:.2f}" for v in VARIANTS)
                  + f" | {float((neg_c >= 0.3).mean()):.3f} | {float(np.quantile(neg_c, 0.99)):.3f} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
