"""probe side by side with the tools users would otherwise pick (issue #5), in ONE run on the same data.

Peers (each in its own process so its peak RSS is measured; the ones from PyPI in their own venv under
``bench/peers/.venvs/``, created by ``--setup``):

- **probe**: ``probe index build`` (default spec: n = 8,13, surface view; ``--sample-mod K`` build once
  more for the size trade), then ``probe scan`` per dataset; the 13-gram answer is read from
  ``examples.parquet`` (``contaminated_lmeval`` = any 13-gram of the whole example in the corpus,
  ``contaminated_gpt3`` = the same ignoring 13-grams found in more than 10 documents).
- **duckdb**: plain SQL (``lower`` → ``regexp_split_to_array`` → ``hash`` over 13 ``lead()`` windows →
  ``GROUP BY`` into a persisted table → join the datasets' 13-grams, computed by the same SQL), 2 threads.
- **pyset**: plain Python, ``re.findall(r"\\w+", text.lower())``, ``hash(tuple(13 words))`` in a ``set``,
  corpus streamed as record batches.
- **infinigram** (PyPI ``infini-gram``, byte mode ``--token_dtype u8``): the corpus is converted to JSONL
  with each document *normalized* to ``" " + " ".join(re.findall(r"\\w+", text.lower())) + " "`` (timed:
  it is part of its time to first answer); a word 13-gram is queried as the bytes
  ``" " + " ".join(gram) + " "``, so a byte match is exactly a word-13-gram match under the pyset
  tokenization. ``engine.count`` per distinct 13-gram, capped per dataset (``--infinigram-seconds``);
  figures beyond the cap are extrapolated from the measured qps and labelled so.
- **lmeval**: lm-evaluation-harness janitor. Library: ``Janitor().normalize_string`` and ``word_ngrams``
  from ``lm_eval.decontamination.janitor``. Re-implemented (the wheel lacks
  ``scripts/clean_training_data/``): the corpus side of ``generate_13_grams.py`` (same normalization and
  n-grams over every document) fused with the lookup of ``decontaminate.py`` (a corpus 13-gram that is
  one of the benchmark's 13-grams flags the benchmark docs holding it), without writing, sorting and
  compressing the 500 bucket files. ``PYTHONHASHSEED=0``. One corpus pass per run: GSM8K alone, then
  all datasets together (the "k datasets" cost).
- **datatrove**: ``NGramsDecontIndexer`` tried as documented (the exact error is recorded); then its
  index files are written directly (the workaround) and ``NGramsDecontFilter`` streams the corpus once
  per dataset (``--datatrove-datasets``, default GSM8K only: each is a full corpus re-scan).

Every peer reads the same example text: the ``whole`` text probe scores (fields joined by newlines, from
probe's dataset reader), written once to ``WORK/datasets/NAME.jsonl``.

    .venv/bin/python bench/peers/run.py --setup --corpus /work/shared/data/corpus/shards \\
        --datasets gsm8k,mmlu,alpaca --out bench/out/peers.json --results bench/RESULTS.md
    .venv/bin/python bench/peers/run.py --smoke --no-results          # 3,000 docs, 200 examples each
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from common import (  # noqa: E402
    REPO_ROOT,
    ForeignLoad,
    command_line,
    fmt_bytes,
    fmt_rate,
    machine_info,
    md_table,
    run_measured,
    write_section,
)

HEADING = "Peers"
DATA = Path("/work/shared/data")
DATASETS = {
    "gsm8k": DATA / "benchmarks" / "gsm8k" / "test.jsonl",
    "mmlu": DATA / "benchmarks" / "mmlu" / "test.jsonl",
    "alpaca": DATA / "instruct" / "alpaca_5000" / "alpaca_5000.jsonl",
}
VENVS = HERE / ".venvs"
VENV_PACKAGES = {
    "infinigram": ["infini-gram", "numpy", "zstandard", "transformers"],
    "lmeval": ["lm-eval", "pyarrow"],
    "datatrove": ["datatrove", "regex", "orjson", "xxhash<4", "lighteval", "pyarrow", "spacy"],
}
N = 13
WORD_RE = r"\w+"


def _log(msg: str) -> None:
    print(f"[peers {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _corpus_files(corpus: str) -> list[str]:
    p = Path(corpus)
    return sorted(glob.glob(str(p / "*.parquet"))) if p.is_dir() else [str(p)]


def _iter_corpus_text(corpus: str, batch_rows: int = 8192, max_docs: int | None = None):
    """Yield (doc_index, text) over every shard, streamed as record batches (pyarrow needed)."""
    import pyarrow.parquet as pq

    doc = 0
    for f in _corpus_files(corpus):
        pf = pq.ParquetFile(f)
        for batch in pf.iter_batches(batch_size=batch_rows, columns=["text"]):
            for t in batch.column(0).to_pylist():
                if max_docs is not None and doc >= max_docs:
                    return
                yield doc, t or ""
                doc += 1


def _words(text: str) -> list[str]:
    return re.findall(WORD_RE, text.lower())


# =========================================================================== children
def duckdb_grams_sql(source: str, key: str) -> str:
    """(doc, 13-gram hash) rows of a text source: one row per word (position kept), then hash(w, next 12
    words) over a window per document (also used by bench/peers/fresh.py)."""
    leads = ", ".join(f"lead(w, {k}) OVER win" for k in range(1, N))
    return f"""
        WITH d AS (SELECT {key} AS doc, regexp_split_to_array(lower(text), '[^\\p{{L}}\\p{{N}}_]+') AS ws
                   FROM {source}),
             t AS (SELECT doc, unnest(ws) AS w, generate_subscripts(ws, 1) AS pos FROM d),
             t2 AS (SELECT * FROM t WHERE w <> ''),
             g AS (SELECT doc, hash(w, {leads}) AS h, lead(w, {N - 1}) OVER win AS last FROM t2
                   WINDOW win AS (PARTITION BY doc ORDER BY pos))
        SELECT doc, h FROM g WHERE last IS NOT NULL"""


def child_duckdb(corpus: str, work: str, datasets: list[str], threads: int) -> dict[str, Any]:
    import duckdb

    db = Path(work) / "duckdb" / "grams.duckdb"
    db.parent.mkdir(parents=True, exist_ok=True)
    for p in db.parent.glob("grams.duckdb*"):
        p.unlink()
    con = duckdb.connect(str(db))
    con.execute(f"SET threads={threads}")
    con.execute("SET preserve_insertion_order=false")
    con.execute(f"SET temp_directory='{db.parent / 'tmp'}'")
    grams_sql = duckdb_grams_sql

    files = ", ".join(f"'{f}'" for f in _corpus_files(corpus))
    t0 = time.perf_counter()
    con.execute(f"CREATE TABLE grams AS SELECT h, count(*)::UINTEGER AS c FROM "
                f"({grams_sql(f'read_parquet([{files}])', 'row_number() OVER ()')}) GROUP BY h")
    con.execute("CHECKPOINT")
    build = time.perf_counter() - t0
    distinct, total = con.execute("SELECT count(*), sum(c) FROM grams").fetchone()
    out: dict[str, Any] = {"build_seconds": build, "distinct_13grams": int(distinct), "corpus_13grams": int(total),
                           "index_bytes": db.stat().st_size, "threads": threads, "datasets": {}}
    for name in datasets:
        path = Path(work) / "datasets" / f"{name}.jsonl"
        t0 = time.perf_counter()
        src = f"read_json('{path}')"
        con.execute(f"CREATE OR REPLACE TEMP TABLE q AS {grams_sql(src, 'i')}")
        lookups = con.execute("SELECT count(*) FROM q").fetchone()[0]
        flagged = [r[0] for r in con.execute("SELECT DISTINCT doc FROM q SEMI JOIN grams USING (h)").fetchall()]
        sec = time.perf_counter() - t0
        out["datasets"][name] = {"seconds": sec, "lookups": int(lookups), "flagged": sorted(int(x) for x in flagged)}
    con.close()
    return out


def _dataset_grams(path: Path) -> list[tuple[int, list[tuple[str, ...]]]]:
    rows = _read_jsonl(path)
    out = []
    for r in rows:
        ws = _words(r["text"])
        out.append((r["i"], [tuple(ws[k:k + N]) for k in range(len(ws) - N + 1)]))
    return out


def child_pyset(corpus: str, work: str, datasets: list[str], max_docs: int | None) -> dict[str, Any]:
    t0 = time.perf_counter()
    table: set[int] = set()
    tokens = 0
    for _doc, text in _iter_corpus_text(corpus, max_docs=max_docs):
        ws = _words(text)
        tokens += len(ws)
        table.update(hash(tuple(ws[k:k + N])) for k in range(len(ws) - N + 1))
    build = time.perf_counter() - t0
    out: dict[str, Any] = {"build_seconds": build, "distinct_13grams": len(table), "corpus_tokens": tokens,
                           "datasets": {}}
    for name in datasets:
        t0 = time.perf_counter()
        grams = _dataset_grams(Path(work) / "datasets" / f"{name}.jsonl")
        lookups = 0
        flagged: list[int] = []
        first: dict[int, str] = {}
        for i, gs in grams:
            lookups += len(gs)
            for g in gs:
                if hash(g) in table:
                    flagged.append(i)
                    first[i] = " ".join(g)
                    break
        sec = time.perf_counter() - t0
        out["datasets"][name] = {"seconds": sec, "lookups": lookups, "flagged": flagged,
                                 "first_match": {str(k): v for k, v in list(first.items())[:2000]}}
    return out


def child_ig_convert(corpus: str, dest: str, max_docs: int | None) -> dict[str, Any]:
    """Parquet -> JSONL for infini-gram, each document normalized to ' w1 w2 ... wn ' (lowercase \\w+ words)."""
    d = Path(dest)
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    t0 = time.perf_counter()
    docs = nbytes = tokens = 0
    with open(d / "corpus.jsonl", "w", encoding="utf-8") as f:
        for _doc, text in _iter_corpus_text(corpus, max_docs=max_docs):
            ws = _words(text)
            tokens += len(ws)
            s = " " + " ".join(ws) + " "
            nbytes += len(s.encode("utf-8"))
            f.write(json.dumps({"text": s}, ensure_ascii=False) + "\n")
            docs += 1
    return {"seconds": time.perf_counter() - t0, "docs": docs, "bytes": nbytes, "tokens": tokens}


def child_ig_query(index: str, work: str, datasets: list[str], cap: float) -> dict[str, Any]:
    from infini_gram.engine import InfiniGramEngine

    t0 = time.perf_counter()
    # vocab_size=256 does not fit the u8 engine's pybind signature; eos must be < vocab_size
    engine = InfiniGramEngine(index_dir=index, eos_token_id=254, vocab_size=255, token_dtype="u8")
    load = time.perf_counter() - t0
    out: dict[str, Any] = {"load_seconds": load, "cap_seconds": cap, "datasets": {}}
    for name in datasets:
        grams = _dataset_grams(Path(work) / "datasets" / f"{name}.jsonl")
        distinct = len({g for _i, gs in grams for g in gs})
        total = sum(len(gs) for _i, gs in grams)
        cache: dict[tuple[str, ...], int] = {}
        flagged: list[int] = []
        done_examples = 0
        queries = 0
        t0 = time.perf_counter()
        capped = False
        for i, gs in grams:
            if time.perf_counter() - t0 > cap:
                capped = True
                break
            hit = False
            for g in gs:  # every 13-gram is counted (a count per n-gram, not a stop at the first hit)
                c = cache.get(g)
                if c is None:
                    ids = list((" " + " ".join(g) + " ").encode("utf-8"))
                    r = engine.count(input_ids=ids)
                    c = int(r["count"]) if "count" in r else -1
                    cache[g] = c
                    queries += 1
                hit = hit or c > 0
            if hit:
                flagged.append(i)
            done_examples += 1
        sec = time.perf_counter() - t0
        qps = queries / sec if sec > 0 else None
        out["datasets"][name] = {
            "seconds": sec, "queries": queries, "distinct_13grams": distinct, "lookups_total": total,
            "examples_done": done_examples, "examples": len(grams), "capped": capped, "qps": qps,
            "extrapolated_seconds": (distinct / qps) if (capped and qps) else None,
            "flagged": flagged,
        }
    return out


def child_lmeval(corpus: str, work: str, datasets: list[str], max_docs: int | None) -> dict[str, Any]:
    from lm_eval.decontamination.janitor import Janitor, word_ngrams  # the library part

    janitor = Janitor()  # ngram_n=13, as in the documented GPT-3 settings
    t0 = time.perf_counter()
    ngram_to_examples: dict[str, dict[str, set[int]]] = {}
    lookups = {}
    for name in datasets:  # benchmark side (decontaminate.py: normalize_string + word_ngrams per doc)
        n = 0
        for r in _read_jsonl(Path(work) / "datasets" / f"{name}.jsonl"):
            for g in word_ngrams(janitor.normalize_string(r["text"]), N):
                ngram_to_examples.setdefault(g, {}).setdefault(name, set()).add(r["i"])
                n += 1
        lookups[name] = n
    bench_side = time.perf_counter() - t0
    # corpus side (generate_13_grams.py, re-implemented: same normalize + word_ngrams; the bucket
    # files/sort/compress steps are replaced by the in-memory lookup decontaminate.py does afterwards)
    t0 = time.perf_counter()
    flagged: dict[str, set[int]] = {name: set() for name in datasets}
    corpus_ngrams = docs = 0
    matched_docs = 0
    for _doc, text in _iter_corpus_text(corpus, max_docs=max_docs):
        docs += 1
        hit = False
        for g in word_ngrams(janitor.normalize_string(text), N):
            corpus_ngrams += 1
            owners = ngram_to_examples.get(g)
            if owners is not None:
                hit = True
                for name, ids in owners.items():
                    flagged[name].update(ids)
        matched_docs += hit
    corpus_pass = time.perf_counter() - t0
    return {"datasets": datasets, "benchmark_side_seconds": bench_side, "corpus_pass_seconds": corpus_pass,
            "corpus_docs": docs, "corpus_13grams": corpus_ngrams, "matched_docs": matched_docs,
            "lookups": lookups, "flagged": {k: sorted(v) for k, v in flagged.items()},
            "pythonhashseed": os.environ.get("PYTHONHASHSEED")}


def child_datatrove(corpus: str, work: str, name: str, max_docs: int | None) -> dict[str, Any]:
    import importlib.metadata as md
    import traceback

    out: dict[str, Any] = {"versions": {}}
    for pkg in ("datatrove", "lighteval"):
        try:
            out["versions"][pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out["versions"][pkg] = "not installed"
    from datatrove.pipeline.decont import NGramsDecontConfig, NGramsDecontFilter, NGramsDecontIndexer

    idx_dir = Path(work) / "datatrove" / name / "index"
    if idx_dir.parent.exists():
        shutil.rmtree(idx_dir.parent)
    idx_dir.mkdir(parents=True)
    task = {"gsm8k": "lighteval|gsm8k|0", "mmlu": "original|mmlu|0", "alpaca": "lighteval|alpaca|0"}[name]
    config = NGramsDecontConfig(n_grams=N)
    # 1) as documented: the indexer builds the lighteval task list itself
    t0 = time.perf_counter()
    try:
        NGramsDecontIndexer(output_folder=str(idx_dir / "documented"), lighteval_tasks=task,
                            config=config).run(None, rank=0, world_size=1)
        out["documented_indexer"] = {"ok": True, "seconds": time.perf_counter() - t0}
    except Exception as e:  # noqa: BLE001 - the exact error is the result
        tb = traceback.format_exc().strip().splitlines()
        out["documented_indexer"] = {"ok": False, "error": f"{type(e).__name__}: {e}", "where": tb[-3:]}
    # 2) workaround: write the index file run() would write, hashes from the indexer's own compute_hashes
    #    (the whole example text as the "label", no query: every 13-gram of the example)
    import numpy as np

    t0 = time.perf_counter()
    indexer = NGramsDecontIndexer(output_folder=str(idx_dir / "workaround"), lighteval_tasks=None, config=config)
    rows = _read_jsonl(Path(work) / "datasets" / f"{name}.jsonl")
    hashes: dict[int, list[int]] = {}
    for r in rows:
        for h in indexer.compute_hashes(r["text"]):
            hashes.setdefault(h, []).append(r["i"])
    arr = np.array(list(hashes), dtype=config.hash_config.np_descr)
    (idx_dir / "workaround").mkdir()
    with open(idx_dir / "workaround" / f"{name}.index.hashes", "wb") as f:
        arr.tofile(f)
    out["index_seconds"] = time.perf_counter() - t0
    out["index_hashes"] = int(arr.shape[0])
    out["index_bytes"] = int(arr.nbytes)
    # 3) the filter over the corpus (one full pass per dataset); it stops at a document's first match
    from datatrove.data import Document

    filt = NGramsDecontFilter(index_folder=str(idx_dir / "workaround"), config=config)
    t0 = time.perf_counter()
    removed = docs = 0
    flagged: set[int] = set()
    first_ngrams: dict[str, int] = {}
    for doc, text in _iter_corpus_text(corpus, max_docs=max_docs):
        docs += 1
        d = Document(text=text, id=str(doc))
        keep = filt.filter(d)
        if (keep[0] if isinstance(keep, tuple) else keep) is False:
            removed += 1
            m = d.metadata.get("contaminated_ngram")
            if m:
                flagged.update(hashes.get(filt.hash_func(m), []))
                first_ngrams[m] = first_ngrams.get(m, 0) + 1
    out["filter_seconds"] = time.perf_counter() - t0
    out["docs"] = docs
    out["removed_docs"] = removed
    out["flagged"] = sorted(flagged)
    out["top_contaminated_ngrams"] = sorted(first_ngrams.items(), key=lambda kv: -kv[1])[:10]
    return out


def child_probe_stages(index: str, dataset: str) -> dict[str, Any]:
    """Where a probe scan's time goes: import, index table loading, and the rest of one scan."""
    t0 = time.perf_counter()
    import numpy as np

    from probe.index.reader import open_index
    from probe.scan import scan_dataset

    t_import = time.perf_counter() - t0
    t0 = time.perf_counter()
    reader = open_index(index)
    for n in reader.spec.ns:
        reader.lookup("surface", n, np.array([1], dtype=np.uint64))
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        res = scan_dataset(dataset, index, tmp)
    t_scan = time.perf_counter() - t0
    return {"import_seconds": t_import, "index_load_seconds": t_load, "scan_seconds": t_scan,
            "scan_summary_seconds": res.summary.seconds, "lookups": res.summary.lookups}


CHILDREN = {"duckdb", "pyset", "ig_convert", "ig_query", "lmeval", "datatrove"}


def child_main(kind: str, payload: dict[str, Any]) -> None:
    fn = {"probe_stages": child_probe_stages, "duckdb": child_duckdb, "pyset": child_pyset, "ig_convert": child_ig_convert, "ig_query": child_ig_query,
          "lmeval": child_lmeval, "datatrove": child_datatrove}[kind]
    res = fn(**payload)
    sys.stdout.write("\n" + json.dumps(res) + "\n")


# =========================================================================== parent helpers
def venv_python(name: str) -> Path:
    return VENVS / name / "bin" / "python"


def setup_venvs(names: list[str]) -> dict[str, Any]:
    out = {}
    for name in names:
        py = venv_python(name)
        if not py.exists():
            subprocess.run([sys.executable, "-m", "venv", str(VENVS / name)], check=True)
        t0 = time.perf_counter()
        r = subprocess.run([str(py), "-m", "pip", "install", "-q", *VENV_PACKAGES[name]], capture_output=True,
                           text=True, check=False)
        out[name] = {"rc": r.returncode, "seconds": time.perf_counter() - t0,
                     "stderr": "\n".join(ln for ln in r.stderr.splitlines() if "WARNING: Location" not in ln)[-2000:]}
    return out


def pip_freeze(name: str, pkgs: list[str]) -> dict[str, str]:
    py = venv_python(name)
    if not py.exists():
        return {}
    r = subprocess.run([str(py), "-m", "pip", "list", "--format", "json"], capture_output=True, text=True, check=False)
    try:
        allp = {p["name"].lower().replace("_", "-"): p["version"] for p in json.loads(r.stdout)}
    except json.JSONDecodeError:
        return {}
    return {p: allp.get(p, "—") for p in pkgs}


def run_child(kind: str, payload: dict[str, Any], python: Path | str = sys.executable,
              env_extra: dict[str, str] | None = None) -> dict[str, Any]:
    cmd = [str(python), str(Path(__file__).resolve()), "--child", kind, json.dumps(payload)]
    env = dict(os.environ)
    env.update(env_extra or {})
    with ForeignLoad() as fl:
        run = run_measured(cmd, cwd=REPO_ROOT, env=env)
    cpu = run.user_seconds + run.sys_seconds
    meta = {"process_wall": run.wall_seconds, "cpu_seconds": cpu, "peak_rss": run.tree.peak_tree_bytes,
            "maxrss_single": run.maxrss_single_bytes,
            "other_processes_cores": round(fl.cores(cpu), 3), "returncode": run.returncode}
    if run.returncode != 0:
        meta["error"] = run.stderr.strip()[-3000:]
        _log(f"child {kind} failed rc={run.returncode}: {run.stderr.strip().splitlines()[-1:] if run.stderr else ''}")
        return meta
    try:
        res = json.loads(run.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        meta["error"] = "no JSON on stdout: " + run.stdout[-1000:] + run.stderr[-2000:]
        return meta
    res.update(meta)
    return res


def run_cmd(cmd: list[str], env_extra: dict[str, str] | None = None) -> dict[str, Any]:
    env = dict(os.environ)
    env.update(env_extra or {})
    with ForeignLoad() as fl:
        run = run_measured(cmd, cwd=REPO_ROOT, env=env)
    cpu = run.user_seconds + run.sys_seconds
    return {"wall": run.wall_seconds, "cpu_seconds": cpu, "returncode": run.returncode,
            "peak_rss": run.tree.peak_tree_bytes, "maxrss_single": run.maxrss_single_bytes,
            "other_processes_cores": round(fl.cores(cpu), 3), "stdout": run.stdout, "stderr": run.stderr}


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


# =========================================================================== prep
def prep(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Corpus subset for --smoke; the datasets' whole text (probe's reader) as WORK/datasets/NAME.jsonl."""
    from probe.sources.datasets import DatasetOptions, read_examples

    out: dict[str, Any] = {"datasets": {}}
    if args.smoke:
        import pyarrow as pa
        import pyarrow.parquet as pq

        dest = work / "smoke_corpus"
        dest.mkdir(parents=True, exist_ok=True)
        pf = pq.ParquetFile(_corpus_files(args.corpus)[0])
        batch = next(pf.iter_batches(batch_size=args.smoke_docs))
        pq.write_table(pa.Table.from_batches([batch]), dest / "part-00000.parquet", row_group_size=1000)
        out["corpus"] = str(dest)
    else:
        out["corpus"] = str(Path(args.corpus).resolve())
    dsdir = work / "datasets"
    dsdir.mkdir(parents=True, exist_ok=True)
    for name in args.datasets:
        src = DATASETS[name] if name in DATASETS else Path(name)
        orig = dsdir / f"{name}.orig.jsonl"
        with open(src, encoding="utf-8") as f, open(orig, "w", encoding="utf-8") as g:
            for k, line in enumerate(f):
                if args.smoke and k >= args.smoke_examples:
                    break
                g.write(line)
        n = 0
        with open(dsdir / f"{name}.jsonl", "w", encoding="utf-8") as g:
            for batch in read_examples(orig, DatasetOptions()):
                for ex in batch:
                    g.write(json.dumps({"i": ex.row, "text": ex.whole_text()}, ensure_ascii=False) + "\n")
                    n += 1
        out["datasets"][name] = {"source": str(src), "examples": n, "file": str(orig)}
    return out


# =========================================================================== peers (parent side)
def run_probe(args: argparse.Namespace, work: Path, corpus: str, info: dict[str, Any]) -> dict[str, Any]:
    import pyarrow.parquet as pq

    probe = str(REPO_ROOT / ".venv" / "bin" / "probe")
    out: dict[str, Any] = {"spec": "default (words, nfkc_casefold, n=8,13, surface, sample-mod 1)"}
    idx = work / "probe_index"
    shutil.rmtree(idx, ignore_errors=True)
    _log("probe: index build")
    b = run_cmd([probe, "index", "build", corpus, "--index", str(idx), "--silent", "--format", "json"])
    out["build"] = {k: v for k, v in b.items() if k not in ("stdout", "stderr")}
    if b["returncode"] != 0:
        out["build"]["error"] = b["stderr"][-3000:]
        return out
    inf = subprocess.run([probe, "index", "info", str(idx), "--top", "0", "--format", "json"], capture_output=True,
                         text=True, check=False)
    try:
        out["info"] = json.loads(inf.stdout)
    except json.JSONDecodeError:
        out["info"] = {"error": inf.stderr[-2000:]}
    out["index_bytes"] = dir_bytes(idx)
    out["datasets"] = {}
    for name in args.datasets:
        _log(f"probe: scan {name}")
        rep = work / "probe_reports" / name
        shutil.rmtree(rep, ignore_errors=True)
        s = run_cmd([probe, "scan", info["datasets"][name]["file"], "--index", str(idx), "--out", str(rep),
                     "--silent", "--format", "json"])
        d = {k: v for k, v in s.items() if k not in ("stdout", "stderr")}
        if s["returncode"] != 0:
            d["error"] = s["stderr"][-3000:]
            out["datasets"][name] = d
            continue
        summ = json.loads((rep / "summary.json").read_text())
        d["lookups"] = summ.get("lookups")
        d["scan_seconds"] = summ.get("seconds")
        d["contaminated"] = summ.get("contaminated")
        t = pq.read_table(rep / "examples.parquet", columns=["row", "contaminated_lmeval", "contaminated_gpt3"])
        rows = t.column("row").to_pylist()
        d["flagged_lmeval"] = [r for r, v in zip(rows, t.column("contaminated_lmeval").to_pylist(), strict=True) if v]
        d["flagged_gpt3"] = [r for r, v in zip(rows, t.column("contaminated_gpt3").to_pylist(), strict=True) if v]
        d["unassessable_13"] = sum(1 for v in t.column("contaminated_lmeval").to_pylist() if v is None)
        out["datasets"][name] = d
    # one `probe scan A B C` call: the index loads once, each further dataset costs its own lookups
    _log("probe: all datasets in one `probe scan` call")
    multi = work / "probe_reports_multi"
    shutil.rmtree(multi, ignore_errors=True)
    files = [info["datasets"][name]["file"] for name in args.datasets]
    s = run_cmd([probe, "scan", *files, "--index", str(idx), "--out", str(multi), "--silent", "--format", "json"])
    out["one_call"] = {k: v for k, v in s.items() if k not in ("stdout", "stderr")}
    if s["returncode"] == 0:
        summaries = json.loads(s["stdout"])
        summaries = summaries if isinstance(summaries, list) else [summaries]
        out["one_call"]["seconds"] = {name: summ.get("seconds") for name, summ in zip(args.datasets, summaries,
                                                                                      strict=True)}
    else:
        out["one_call"]["error"] = s["stderr"][-3000:]
    _log(f"probe: stage profile ({args.datasets[0]})")
    out["stages"] = run_child("probe_stages", {"index": str(idx), "dataset": info["datasets"][args.datasets[0]]["file"]})
    if args.sample_mod > 1:
        _log(f"probe: index build --sample-mod {args.sample_mod}")
        idx2 = work / f"probe_index_sm{args.sample_mod}"
        shutil.rmtree(idx2, ignore_errors=True)
        b2 = run_cmd([probe, "index", "build", corpus, "--index", str(idx2), "--sample-mod", str(args.sample_mod),
                      "--silent", "--format", "json"])
        out["sample_mod_build"] = {k: v for k, v in b2.items() if k not in ("stdout", "stderr")}
        out["sample_mod_build"]["sample_mod"] = args.sample_mod
        out["sample_mod_build"]["index_bytes"] = dir_bytes(idx2) if b2["returncode"] == 0 else None
        shutil.rmtree(idx2, ignore_errors=True)
    return out


def run_infinigram(args: argparse.Namespace, work: Path, corpus: str) -> dict[str, Any]:
    out: dict[str, Any] = {"versions": pip_freeze("infinigram", ["infini-gram", "numpy", "zstandard",
                                                                 "transformers"])}
    py = venv_python("infinigram")
    if not py.exists():
        out["error"] = f"no venv at {py} (run with --setup)"
        return out
    max_docs = args.smoke_docs if args.smoke else None
    jdir = work / "infinigram" / "jsonl"
    idx = work / "infinigram" / "index"
    _log("infinigram: parquet -> normalized JSONL")
    out["convert"] = run_child("ig_convert", {"corpus": corpus, "dest": str(jdir), "max_docs": max_docs})
    shutil.rmtree(idx, ignore_errors=True)
    _log("infinigram: indexing (u8)")
    b = run_cmd([str(py), "-m", "infini_gram.indexing", "--data_dir", str(jdir.resolve()), "--save_dir",
                 str(idx.resolve()), "--token_dtype", "u8", "--cpus", str(os.cpu_count() or 2), "--mem",
                 str(args.infinigram_mem), "--ulimit", str(resource.getrlimit(resource.RLIMIT_NOFILE)[1])])
    out["build"] = {k: v for k, v in b.items() if k not in ("stdout", "stderr")}
    if b["returncode"] != 0:
        out["build"]["error"] = (b["stderr"] + b["stdout"])[-3000:]
        return out
    out["index_bytes"] = dir_bytes(idx)
    out["index_files"] = {f.name: f.stat().st_size for f in idx.iterdir() if f.is_file()}
    _log("infinigram: count queries")
    out["query"] = run_child("ig_query", {"index": str(idx.resolve()), "work": str(work), "datasets": args.datasets,
                                          "cap": args.infinigram_seconds}, python=py)
    if not args.keep:
        shutil.rmtree(jdir, ignore_errors=True)
    return out


def run_lmeval(args: argparse.Namespace, work: Path, corpus: str) -> dict[str, Any]:
    py = venv_python("lmeval")
    out: dict[str, Any] = {"versions": pip_freeze("lmeval", ["lm-eval", "pyarrow"])}
    if not py.exists():
        out["error"] = f"no venv at {py} (run with --setup)"
        return out
    max_docs = args.smoke_docs if args.smoke else None
    env = {"PYTHONHASHSEED": "0"}
    first = args.datasets[0]
    _log(f"lmeval: corpus pass for {first}")
    out["first"] = run_child("lmeval", {"corpus": corpus, "work": str(work), "datasets": [first],
                                        "max_docs": max_docs}, python=py, env_extra=env)
    if len(args.datasets) > 1:
        _log("lmeval: corpus pass for all datasets")
        out["all"] = run_child("lmeval", {"corpus": corpus, "work": str(work), "datasets": args.datasets,
                                          "max_docs": max_docs}, python=py, env_extra=env)
    return out


def run_datatrove(args: argparse.Namespace, work: Path, corpus: str) -> dict[str, Any]:
    py = venv_python("datatrove")
    out: dict[str, Any] = {"versions": pip_freeze("datatrove", ["datatrove", "lighteval", "xxhash", "regex",
                                                                "orjson"]), "datasets": {}}
    if not py.exists():
        out["error"] = f"no venv at {py} (run with --setup)"
        return out
    max_docs = args.smoke_docs if args.smoke else args.datatrove_max_docs
    out["max_docs"] = max_docs
    for name in args.datatrove_datasets:
        if name not in args.datasets:
            continue
        _log(f"datatrove: {name}")
        out["datasets"][name] = run_child("datatrove", {"corpus": corpus, "work": str(work), "name": name,
                                                        "max_docs": max_docs}, python=py)
    return out


# =========================================================================== agreement + report
def agreement(probe_set: list[int], peer_set: list[int] | None, limit_to: int | None = None) -> dict[str, Any] | None:
    if peer_set is None:
        return None
    a = {x for x in probe_set if limit_to is None or x < limit_to}
    b = set(peer_set)
    return {"both": len(a & b), "probe_only": sorted(a - b), "peer_only": sorted(b - a), "probe": len(a),
            "peer": len(b), "limited_to_first": limit_to}


def compute(res: dict[str, Any], datasets: list[str]) -> None:
    """Agreement vs probe's lmeval (any 13-gram) set per peer and dataset, and ratios."""
    pr = res.get("probe", {}).get("datasets", {})
    agr: dict[str, dict[str, Any]] = {}
    for name in datasets:
        base = pr.get(name, {}).get("flagged_lmeval")
        if base is None:
            continue
        row: dict[str, Any] = {}
        row["duckdb"] = agreement(base, res.get("duckdb", {}).get("datasets", {}).get(name, {}).get("flagged"))
        row["pyset"] = agreement(base, res.get("pyset", {}).get("datasets", {}).get(name, {}).get("flagged"))
        q = res.get("infinigram", {}).get("query", {}).get("datasets", {}).get(name)
        if q:
            row["infinigram"] = agreement(base, q["flagged"], q["examples_done"] if q["capped"] else None)
        lm = res.get("lmeval", {}).get("all") or res.get("lmeval", {}).get("first") or {}
        row["lmeval"] = agreement(base, lm.get("flagged", {}).get(name))
        dt = res.get("datatrove", {}).get("datasets", {}).get(name)
        if dt and "flagged" in dt:
            row["datatrove"] = agreement(base, dt["flagged"])
        agr[name] = row
    res["agreement"] = agr


def _s(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{x:.{digits}f} s"


def _ratio(x: float | None, y: float | None) -> str:
    return "—" if not x or not y else f"{x / y:.1f}×"


def _agr_cell(a: dict[str, Any] | None) -> str:
    if not a:
        return "—"
    lim = f" (first {a['limited_to_first']:,})" if a.get("limited_to_first") else ""
    return f"{a['both']} / {len(a['probe_only'])} / {len(a['peer_only'])}{lim}"


def render(res: dict[str, Any], args: argparse.Namespace) -> str:  # noqa: C901, PLR0912, PLR0915
    ds = args.datasets
    first = ds[0]
    m = res["machine"]
    pr = res.get("probe", {})
    info = pr.get("info", {})
    tokens = _find_tokens(info)
    res["probe_tokens"] = tokens
    corpus_tokens = tokens or res.get("pyset", {}).get("corpus_tokens")
    rows = []

    def per_tok(nbytes: int | None) -> str:
        return "—" if not nbytes or not corpus_tokens else f"{nbytes / corpus_tokens:.2f}"

    # ---------- probe
    pb = pr.get("build", {})
    pds = pr.get("datasets", {})
    p_first = pds.get(first, {}).get("wall")
    p_add = [pds[n]["wall"] for n in ds[1:] if n in pds and "wall" in pds[n]]
    p_ttfa = (pb.get("wall") or 0) + (p_first or 0) if pb.get("wall") and p_first else None
    p_lookups = sum(pds[n].get("lookups") or 0 for n in ds if n in pds)
    p_scan_s = sum(pds[n].get("wall") or 0 for n in ds if n in pds)
    res["probe_summary"] = {"ttfa": p_ttfa, "first": p_first, "additional": p_add}
    one = pr.get("one_call", {}).get("seconds") or {}
    one_add = [one[n] for n in ds[1:] if one.get(n) is not None]
    res["probe_summary"]["additional_one_call"] = one_add
    add_text = ", ".join(_s(x, 2) for x in p_add) or "—"
    if one_add:
        add_text = (f"{add_text} (a process each); {', '.join(_s(x, 2) for x in one_add)} "
                    f"(one `probe scan {' '.join(ds)}` call: {_s(pr['one_call'].get('wall'), 1)} wall for all)")
    rows.append(["**probe** (n=8,13 index)", _s(pb.get("wall")), per_tok(pr.get("index_bytes")),
                 _s(p_first, 2), add_text, _s(p_ttfa),
                 fmt_rate(p_lookups / p_scan_s if p_scan_s else None) + " (scan wall, 8+13, 4 fields)",
                 f"build {fmt_bytes(pb.get('peak_rss'))}, scan ≤ {fmt_bytes(max([pds[n].get('peak_rss') or 0 for n in ds if n in pds] or [0]))}",
                 "(reference)", "—"])
    # ---------- duckdb
    du = res.get("duckdb", {})
    if "build_seconds" in du:
        dd = du["datasets"]
        d_first = dd.get(first, {}).get("seconds")
        d_add = [dd[n]["seconds"] for n in ds[1:] if n in dd]
        d_ttfa = du["build_seconds"] + (d_first or 0)
        lk = sum(dd[n]["lookups"] for n in dd)
        sec = sum(dd[n]["seconds"] for n in dd)
        rows.append(["plain DuckDB SQL (2 threads)", _s(du["build_seconds"]), per_tok(du.get("index_bytes")),
                     _s(d_first, 2), ", ".join(_s(x, 2) for x in d_add), _s(d_ttfa), fmt_rate(lk / sec if sec else None),
                     fmt_bytes(du.get("peak_rss")), _agr_cell(res["agreement"].get(first, {}).get("duckdb")),
                     _ratio(d_ttfa, p_ttfa)])
    elif du:
        rows.append(["plain DuckDB SQL", "failed", "", "", "", "", "", "", "", du.get("error", "")[-200:]])
    # ---------- pyset
    py = res.get("pyset", {})
    if "build_seconds" in py:
        dd = py["datasets"]
        s_first = dd.get(first, {}).get("seconds")
        s_ttfa = py["build_seconds"] + (s_first or 0)
        lk = sum(dd[n]["lookups"] for n in dd)
        sec = sum(dd[n]["seconds"] for n in dd)
        rows.append(["plain Python set (`\\w+`, hash(tuple))", _s(py["build_seconds"]), "in RAM only",
                     _s(s_first, 2), ", ".join(_s(dd[n]["seconds"], 2) for n in ds[1:] if n in dd), _s(s_ttfa),
                     fmt_rate(lk / sec if sec else None), fmt_bytes(py.get("peak_rss")),
                     _agr_cell(res["agreement"].get(first, {}).get("pyset")), _ratio(s_ttfa, p_ttfa)])
    elif py:
        rows.append(["plain Python set", "failed", "", "", "", "", "", "", "", py.get("error", "")[-200:]])
    # ---------- infinigram
    ig = res.get("infinigram", {})
    if ig.get("build", {}).get("returncode") == 0 and "datasets" in ig.get("query", {}):
        q = ig["query"]["datasets"]
        conv = ig["convert"].get("seconds", 0.0)

        def qtime(n: str) -> tuple[float | None, bool]:
            d = q.get(n)
            if not d:
                return None, False
            return (d["extrapolated_seconds"], True) if d["capped"] else (d["seconds"], False)

        def lab(n: str) -> str:
            t, ex = qtime(n)
            return "—" if t is None else (f"~{t:.0f} s (extrapolated)" if ex else f"{t:.1f} s")

        t1, _ = qtime(first)
        i_ttfa = conv + ig["build"]["wall"] + (t1 or 0)
        qs = sum(q[n]["queries"] for n in q)
        sec = sum(q[n]["seconds"] for n in q)
        rows.append([f"infini-gram {ig['versions'].get('infini-gram', '')} (u8 bytes of normalized words)",
                     f"{conv:.1f} s convert + {ig['build']['wall']:.1f} s index",
                     per_tok(ig.get("index_bytes")), lab(first), ", ".join(lab(n) for n in ds[1:]),
                     f"{i_ttfa:.0f} s" + (" (extrapolated)" if qtime(first)[1] else ""),
                     fmt_rate(qs / sec if sec else None) + " count queries/s (distinct 13-grams)",
                     f"build {fmt_bytes(ig['build'].get('peak_rss'))}, query {fmt_bytes(ig['query'].get('peak_rss'))}",
                     _agr_cell(res["agreement"].get(first, {}).get("infinigram")), _ratio(i_ttfa, p_ttfa)])
    elif ig:
        err = ig.get("error") or ig.get("build", {}).get("error") or ig.get("query", {}).get("error") or "?"
        rows.append(["infini-gram", "failed", "", "", "", "", "", "", "", err.strip().splitlines()[-1][:200]])
    # ---------- lmeval
    lm = res.get("lmeval", {})
    if "corpus_pass_seconds" in lm.get("first", {}):
        f1 = lm["first"]
        t_first = f1["process_wall"]
        al = lm.get("all", {})
        per_add = ((al["process_wall"] - t_first) / (len(ds) - 1)) if "process_wall" in al and len(ds) > 1 else None
        lk = al.get("corpus_13grams") if al else f1.get("corpus_13grams")
        lsec = al.get("corpus_pass_seconds") if al else f1.get("corpus_pass_seconds")
        rows.append([f"lm-eval {lm['versions'].get('lm-eval', '')} janitor 13-grams", "none (corpus pass per run)",
                     "—", _s(t_first, 1) + " (full corpus pass)",
                     (_s(per_add, 1) + " each (all in one pass: " + _s(al.get("process_wall"), 1) + ")")
                     if per_add is not None else "—", _s(t_first),
                     fmt_rate(lk / lsec if lsec else None) + " corpus 13-grams/s",
                     fmt_bytes(max(f1.get("peak_rss") or 0, al.get("peak_rss") or 0)),
                     _agr_cell(res["agreement"].get(first, {}).get("lmeval")), _ratio(t_first, p_ttfa)])
    elif lm:
        err = lm.get("error") or lm.get("first", {}).get("error") or "?"
        rows.append(["lm-eval janitor", "failed", "", "", "", "", "", "", "", err.strip().splitlines()[-1][:200]])
    # ---------- datatrove
    dt = res.get("datatrove", {})
    for name, d in dt.get("datasets", {}).items():
        if "filter_seconds" in d:
            tt = d["index_seconds"] + d["filter_seconds"]
            scope = "full corpus" if not dt.get("max_docs") else f"first {dt['max_docs']:,} docs"
            rows.append([f"datatrove {dt['versions'].get('datatrove', '')} NGramsDecontFilter ({name}, {scope})",
                         f"index {d['index_seconds']:.1f} s (workaround)",
                         f"{d['index_bytes'] / max(1, d['index_hashes']):.0f} B/bench 13-gram",
                         _s(tt, 1) + " (index + corpus pass)", f"≈ {tt:.0f} s each (one corpus pass per dataset)",
                         _s(tt), fmt_rate(d["docs"] / d["filter_seconds"]) + " docs/s",
                         fmt_bytes(d.get("peak_rss")), _agr_cell(res["agreement"].get(name, {}).get("datatrove")),
                         _ratio(tt, p_ttfa) if name == first else "—"])
        else:
            err = d.get("error") or d.get("documented_indexer", {}).get("error") or "?"
            rows.append([f"datatrove ({name})", "failed", "", "", "", "", "", "", "",
                         err.strip().splitlines()[-1][:300]])

    header = ["tool", "build", "index bytes / token", f"first dataset ({first})",
              "each additional (" + ", ".join(ds[1:]) + ")", "raw shards → first answer", "n-gram lookups/s",
              "peak RSS", f"{first} agreement ∩ / probe−peer / peer−probe", "time to first answer peer/probe"]
    lines = []
    lines.append(f"Generated by `bench/peers/run.py` on {m['date']}; machine: {m['nproc']} vCPU "
                 f"({m['cpu_model']}), {m['ram_gib']} GiB RAM, kernel {m['kernel']}, Python {m['python']}, "
                 f"git {m['git_commit']}.")
    lines.append("")
    lines.append(f"Command: `{res['command']}`")
    lines.append("")
    corpus_desc = "smoke subset" if args.smoke else "the shared corpus (5 shards, 265 MB text, 145,401 docs)"
    lines.append((f"Corpus: {corpus_desc}; probe tokens: {tokens:,}" if tokens else f"Corpus: {corpus_desc}")
                 + "; datasets: " + ", ".join(f"{n} ({res['prep']['datasets'][n]['examples']:,} examples)" for n in ds)
                 + ". Every peer reads the same per-example text (probe's `whole` field: the example's fields "
                 "joined by newlines).")
    lines.append("")
    lines.append(md_table(header, rows))
    lines.append("")
    # agreement for all datasets
    arow = []
    for name in ds:
        p = pds.get(name, {})
        if "flagged_lmeval" not in p:
            continue
        cells = [name, f"{len(p['flagged_lmeval'])} lmeval / {len(p['flagged_gpt3'])} gpt3"]
        for peer in ("duckdb", "pyset", "infinigram", "lmeval", "datatrove"):
            cells.append(_agr_cell(res["agreement"].get(name, {}).get(peer)))
        arow.append(cells)
    lines.append("Agreement with probe's 13-gram set (`contaminated_lmeval`: any 13-gram of the whole example "
                 "occurs in the corpus) per dataset, as |probe ∩ peer| / |probe − peer| / |peer − probe|:")
    lines.append("")
    lines.append(md_table(["dataset", "probe flagged", "DuckDB", "Python set", "infini-gram", "lm-eval janitor",
                           "datatrove"], arow))
    lines.append("")
    # detail rows
    det = []
    for name in ds:
        p = pds.get(name, {})
        if "wall" in p:
            det.append([f"probe scan {name}", f"{p['wall']:.2f} s wall ({p.get('scan_seconds') or 0:.2f} s inside)",
                        f"{p.get('lookups') or 0:,} lookups", fmt_bytes(p.get("peak_rss")),
                        f"{p.get('other_processes_cores')}"])
    if pb:
        det.append(["probe index build", f"{pb.get('wall', 0):.1f} s", fmt_bytes(pr.get("index_bytes")),
                    fmt_bytes(pb.get("peak_rss")), f"{pb.get('other_processes_cores')}"])
    for g in info.get("ngrams", []):
        det.append([f"probe index, {g['view']} n={g['n']} files", "",
                    f"{fmt_bytes(g['bytes'])} = {per_tok(g['bytes'])} B/token, {g['distinct']:,} distinct "
                    f"(hash + doc0; count, docs, doc sample k={info['spec'].get('doc_sample_k')} of the rows seen "
                    "more than once)", "", ""])
    st = pr.get("stages", {})
    if "index_load_seconds" in st:
        det.append([f"probe scan {first}: stages (one process)",
                    f"import {st['import_seconds']:.2f} s, index load {st['index_load_seconds']:.2f} s, then "
                    f"`scan_dataset` {st['scan_seconds']:.2f} s (its own timer {st['scan_summary_seconds']:.2f} s, "
                    "index loaded again by a new reader)", "", fmt_bytes(st.get("peak_rss")),
                    f"{st.get('other_processes_cores')}"])
    sm = pr.get("sample_mod_build")
    if sm:
        det.append([f"probe index build --sample-mod {sm['sample_mod']}", f"{sm.get('wall', 0):.1f} s",
                    f"{fmt_bytes(sm.get('index_bytes'))} ({per_tok(sm.get('index_bytes'))} B/token)",
                    fmt_bytes(sm.get("peak_rss")), f"{sm.get('other_processes_cores')}"])
    if "build_seconds" in du:
        det.append(["DuckDB GROUP BY build", f"{du['build_seconds']:.1f} s",
                    f"{du['distinct_13grams']:,} distinct 13-grams, {fmt_bytes(du['index_bytes'])}",
                    fmt_bytes(du.get("peak_rss")), f"{du.get('other_processes_cores')}"])
        for n, d in du["datasets"].items():
            det.append([f"DuckDB {n}", f"{d['seconds']:.2f} s", f"{d['lookups']:,} lookups", "", ""])
    if "build_seconds" in py:
        det.append(["Python set build", f"{py['build_seconds']:.1f} s",
                    f"{py['distinct_13grams']:,} distinct 13-grams, {py['corpus_tokens']:,} `\\w+` words",
                    fmt_bytes(py.get("peak_rss")), f"{py.get('other_processes_cores')}"])
        for n, d in py["datasets"].items():
            det.append([f"Python set {n}", f"{d['seconds']:.2f} s", f"{d['lookups']:,} lookups", "", ""])
    if ig.get("convert"):
        c = ig["convert"]
        det.append(["infini-gram Parquet → normalized JSONL", _s(c.get("seconds")),
                    f"{c.get('bytes', 0):,} bytes, {c.get('tokens', 0):,} words", fmt_bytes(c.get("peak_rss")),
                    f"{c.get('other_processes_cores')}"])
    if ig.get("build"):
        bb = ig["build"]
        ib = ig.get("index_bytes")
        cb = ig.get("convert", {}).get("bytes")
        det.append(["infini-gram indexing (u8)", _s(bb.get("wall")),
                    f"{fmt_bytes(ib)} = {ib / cb:.2f} B per indexed byte" if ib and cb else "—",
                    fmt_bytes(bb.get("peak_rss")), f"{bb.get('other_processes_cores')}"])
    for n, d in ig.get("query", {}).get("datasets", {}).items():
        det.append([f"infini-gram counts {n}",
                    f"{d['seconds']:.1f} s for {d['queries']:,} of {d['distinct_13grams']:,} distinct 13-grams "
                    f"({d['examples_done']:,}/{d['examples']:,} examples)"
                    + (f"; all: ~{d['extrapolated_seconds']:.0f} s extrapolated" if d["capped"] else ""),
                    f"{fmt_rate(d['qps'])} qps ({1e6 / d['qps']:.0f} µs/query)" if d.get("qps") else "—",
                    fmt_bytes(ig["query"].get("peak_rss")), f"{ig['query'].get('other_processes_cores')}"])
    for key in ("first", "all"):
        d = lm.get(key)
        if d and "corpus_pass_seconds" in d:
            det.append([f"lm-eval janitor pass ({', '.join(d['datasets'])})", f"{d['process_wall']:.1f} s wall",
                        f"benchmark side {d['benchmark_side_seconds']:.2f} s, corpus pass "
                        f"{d['corpus_pass_seconds']:.1f} s, {d['corpus_13grams']:,} corpus 13-grams",
                        fmt_bytes(d.get("peak_rss")), f"{d.get('other_processes_cores')}"])
    for n, d in dt.get("datasets", {}).items():
        if "filter_seconds" in d:
            det.append([f"datatrove {n}", f"index {d['index_seconds']:.1f} s + filter {d['filter_seconds']:.1f} s",
                        f"{d['index_hashes']:,} benchmark 13-gram hashes; {d['removed_docs']:,} of {d['docs']:,} "
                        f"docs removed; {len(d['flagged'])} examples named", fmt_bytes(d.get("peak_rss")),
                        f"{d.get('other_processes_cores')}"])
    lines.append("Details (other processes' CPU during each step, in cores, from /proc/stat: contention "
                 "is visible there):")
    lines.append("")
    lines.append(md_table(["step", "time", "size / work", "peak RSS", "other cores"], det))
    lines.append("")
    # disagreement samples
    samp = disagreement_samples(res, args)
    if samp:
        lines.append("Disagreement samples (probe's longest whole-text match, the Python set's first matched "
                     "13-gram; text cut to 160 characters):")
        lines.append("")
        lines.append(md_table(["dataset", "peer", "side", "row", "probe longest match (tokens)",
                               "peer's 13-gram", "example text"], samp))
        lines.append("")
    # errors
    errs = []
    for n, d in dt.get("datasets", {}).items():
        di = d.get("documented_indexer")
        if di and not di.get("ok"):
            errs.append(f"- datatrove `NGramsDecontIndexer(lighteval_tasks=…).run()` ({n}): `{di['error']}`")
    for key, val in (("infinigram", ig), ("lmeval", lm), ("duckdb", du), ("pyset", py)):
        e = val.get("error") if isinstance(val, dict) else None
        if e:
            errs.append(f"- {key}: `{e.strip().splitlines()[-1][:300]}`")
    if errs:
        lines.append("Errors recorded:")
        lines.append("")
        lines.extend(errs)
        lines.append("")
    return "\n".join(lines)


def disagreement_samples(res: dict[str, Any], args: argparse.Namespace, per: int = 3) -> list[list[str]]:
    """A few |probe - peer| and |peer - probe| rows per (dataset, peer), with probe's match and the text."""
    out: list[list[str]] = []
    work = Path(args.work)
    if res.get("smoke"):
        work = work.with_name(work.name + "_smoke")
    for name, peers in res.get("agreement", {}).items():
        ex = work / "probe_reports" / name / "examples.parquet"
        info: dict[int, tuple[str, int, str]] = {}
        if ex.exists():
            import pyarrow.parquet as pq

            t = pq.read_table(ex, columns=["row", "whole_text", "whole_longest_match_text",
                                           "whole_longest_match_tokens"]).to_pylist()
            info = {r["row"]: (r["whole_text"] or "", r["whole_longest_match_tokens"] or 0,
                               r["whole_longest_match_text"] or "") for r in t}
        first = res.get("pyset", {}).get("datasets", {}).get(name, {}).get("first_match", {})
        for peer, a in peers.items():
            if not a:
                continue
            for side, ids in (("probe only", a["probe_only"]), ("peer only", a["peer_only"])):
                for i in ids[:per]:
                    text, ntok, m = info.get(i, ("", 0, ""))
                    out.append([name, peer, side, str(i), f"{_cut(m, 100)} ({ntok})",
                                _cut(first.get(str(i), ""), 100), _cut(text, 160)])
    return out


def _cut(s: str, n: int) -> str:
    s = " ".join(s.split()).replace("|", "\\|")
    return s if len(s) <= n else s[: n - 1] + "…"


def _find_tokens(info: dict[str, Any]) -> int | None:
    for key in ("tokens", "corpus_tokens"):
        if isinstance(info.get(key), int):
            return info[key]
    for v in info.values():
        if isinstance(v, dict):
            t = _find_tokens(v)
            if t:
                return t
    return None


# =========================================================================== main
def main(argv: list[str] | None = None) -> int:  # noqa: PLR0915
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", default=str(DATA / "corpus" / "shards"))
    ap.add_argument("--datasets", default="gsm8k,mmlu,alpaca", help="comma-separated: gsm8k, mmlu, alpaca or paths")
    ap.add_argument("--peers", default="probe,duckdb,pyset,infinigram,lmeval,datatrove")
    ap.add_argument("--work", default=str(REPO_ROOT / "bench" / "out" / "peers"))
    ap.add_argument("--out", default=str(REPO_ROOT / "bench" / "out" / "peers.json"))
    ap.add_argument("--results", default=None, help="write the '## Peers' section of this RESULTS.md")
    ap.add_argument("--setup", action="store_true", help="create/update the peers' venvs from PyPI first")
    ap.add_argument("--smoke", action="store_true", help="tiny subset (first --smoke-docs docs of shard 0)")
    ap.add_argument("--smoke-docs", type=int, default=3000)
    ap.add_argument("--smoke-examples", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2, help="DuckDB threads")
    ap.add_argument("--sample-mod", type=int, default=16, help="extra probe build with --sample-mod K (0/1: skip)")
    ap.add_argument("--infinigram-seconds", type=float, default=120.0, help="cap of count-query time per dataset")
    ap.add_argument("--infinigram-mem", type=int, default=8, help="infini-gram --mem (GiB)")
    ap.add_argument("--datatrove-datasets", default="gsm8k", help="datasets datatrove re-scans the corpus for")
    ap.add_argument("--datatrove-max-docs", type=int, default=None, help="datatrove: only the first N corpus docs")
    ap.add_argument("--keep", action="store_true", help="keep the infini-gram JSONL")
    ap.add_argument("--render-from", help="re-render the table from an earlier --out JSON (no runs)")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child_main(args.child[0], json.loads(args.child[1]))
        return 0
    if args.render_from:
        res = json.loads(Path(args.render_from).read_text())
        args.datasets = [d for d in args.datasets.split(",") if d]
        args.smoke = res.get("smoke", False)
        compute(res, args.datasets)
        md = render(res, args)
        print(md)
        if args.results:
            write_results(Path(args.results), md)
        return 0

    args.datasets = [d for d in args.datasets.split(",") if d]
    args.datatrove_datasets = [d for d in args.datatrove_datasets.split(",") if d]
    peers = [p for p in args.peers.split(",") if p]
    work = Path(args.work)
    if args.smoke:
        work = work.with_name(work.name + "_smoke")
    work.mkdir(parents=True, exist_ok=True)
    res: dict[str, Any] = {"machine": machine_info(), "command": command_line(), "peers": peers,
                           "smoke": args.smoke}
    if args.setup:
        _log("setting up venvs")
        res["setup"] = setup_venvs([p for p in peers if p in VENV_PACKAGES])
    t_all = time.perf_counter()
    res["prep"] = prep(args, work)
    corpus = res["prep"]["corpus"]
    max_docs = None
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        out_path.write_text(json.dumps(res, indent=1, default=str))

    if "probe" in peers:
        res["probe"] = run_probe(args, work, corpus, res["prep"])
        save()
    if "duckdb" in peers:
        _log("duckdb")
        res["duckdb"] = run_child("duckdb", {"corpus": corpus, "work": str(work), "datasets": args.datasets,
                                             "threads": args.threads})
        save()
    if "pyset" in peers:
        _log("python set")
        res["pyset"] = run_child("pyset", {"corpus": corpus, "work": str(work), "datasets": args.datasets,
                                           "max_docs": max_docs})
        save()
    if "lmeval" in peers:
        res["lmeval"] = run_lmeval(args, work, corpus)
        save()
    if "infinigram" in peers:
        res["infinigram"] = run_infinigram(args, work, corpus)
        save()
    if "datatrove" in peers:
        res["datatrove"] = run_datatrove(args, work, corpus)
        save()
    res["total_seconds"] = time.perf_counter() - t_all
    compute(res, args.datasets)
    md = render(res, args)
    save()
    print(md)
    if args.results:
        write_results(Path(args.results), md)
    return 0


def write_results(path: Path, md: str) -> None:
    """The '## Peers' section: the generated table, then bench/peers/NOTES.md (hand-written analysis)."""
    notes = HERE / "NOTES.md"
    body = md + ("\n" + notes.read_text() if notes.exists() else "")
    write_section(HEADING, body, path)
    _log(f"wrote ## {HEADING} in {path}")


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
