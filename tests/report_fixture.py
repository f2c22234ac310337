"""Hand-written scan outputs (summary.json + examples.parquet, docs/scan-output.md) for report tests.

``write_report_dir`` writes a small FIXED report directory full of hostile strings;
``write_large_report_dir`` writes a synthetic one with many examples and groups. Both
follow the schema_version 1 contract column by column, so the renderers are tested
without an index or a scan.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

DEFINITIONS = ("default", "gpt2", "gpt3", "palm", "gpt4", "llama2", "llama3", "lmeval")
AVAILABLE = tuple(d for d in DEFINITIONS if d != "gpt4")
FIELDS = ("instruction", "input", "response")
SCAN_FIELDS = (*FIELDS, "whole")
NS = (8, 13)
THRESHOLDS = {"max_docs": 10, "seen": 0.6, "partial": 0.2, "gpt2": 0.5, "palm": 0.7, "llama2_dirty": 0.8,
              "llama2_clean": 0.2, "llama2_min_span": 10, "llama3": 0.5, "default_coverage": 0.5,
              "default_span": 20, "default_pattern": 0.8, "min_hash_matches": 2}

SCRIPT = "<script>alert(1)</script>"
ATTR_BREAKOUT = '"><img src=x onerror=alert(1)>'
JS_URL = "javascript:alert(1)"
RTL = "\u202e"
PWN_TITLE = "<script>document.title='PWNED'</script>"
PWN_ATTR = "<img src=x onerror=\"document.body.setAttribute('data-pwned','1')\">"
HOSTILE = (SCRIPT, ATTR_BREAKOUT, JS_URL, RTL, "::error::", "```", "|", "@octocat", "{{7*7}}", "\x1b[2J")


def _span(text: str, needle: str) -> tuple[int, int]:
    a = text.index(needle)
    return a, a + len(needle)


def fixed_examples() -> list[dict[str, Any]]:
    """Eight examples: contaminated, partial, novel and unassessable, each carrying hostile text."""
    r1 = f"The answer is {SCRIPT} and it was copied from the corpus word for word here."
    i2 = f"Visit {JS_URL} or {ATTR_BREAKOUT} to see the original quiz question text."
    r3 = f"{RTL}desrever si txet sihT\n::error::pwned by a workflow command\n::add-mask::secret value"
    r4 = "Run ```` ``` ```` then pipe | it | @octocat [x](javascript:alert(1)) #123 <details>open</details>"
    r7 = f"Clear \x1b[2J the screen\r with {{{{7*7}}}} {PWN_TITLE}{PWN_ATTR} and the quoted passage continues."
    return [
        {"id": "ex-001", "group": "algebra", "verdict": "seen", "coverage": 0.92, "flags": AVAILABLE,
         "fields": {"instruction": "Solve the problem below.", "response": r1},
         "match": ("response", r1, _span(r1, f"{SCRIPT} and it was copied from the corpus")),
         "snippet": f"…before text [[{SCRIPT} and it was copied from the corpus]] after text…",
         "uri": "corpus/shard-0001.parquet"},
        {"id": ATTR_BREAKOUT, "group": "<b>bold</b>", "verdict": "partial", "coverage": 0.55,
         "flags": ("default", "gpt3", "lmeval"),
         "fields": {"instruction": i2, "input": "quiz 7", "response": "Paris is the capital."},
         "match": ("instruction", i2, _span(i2, f"{JS_URL} or {ATTR_BREAKOUT} to see")),
         "snippet": f"[[{JS_URL} or {ATTR_BREAKOUT} to see]] the rest", "uri": JS_URL},
        {"id": "ex-003", "group": "algebra", "verdict": "partial", "coverage": 0.31, "flags": ("llama3",),
         "fields": {"instruction": "Reverse this text.", "response": r3},
         "match": ("response", r3, (0, r3.index(" by a workflow"))), "snippet": None, "uri": None},
        {"id": "ex-004 | pipe `tick`", "group": "geometry|pipes", "verdict": "novel", "coverage": 0.0, "flags": (),
         "fields": {"instruction": "Explain pipes.", "response": r4}, "match": None, "snippet": None, "uri": None},
        {"id": "ex-005 @octocat #123", "group": "[/bold] markup", "verdict": "novel", "coverage": 0.05, "flags": (),
         "fields": {"instruction": "Write a poem about [red]rich[/red] markup.", "response": "Roses are red."},
         "match": None, "snippet": None, "uri": None},
        {"id": "ex-006", "group": "geometry|pipes", "verdict": "unassessable", "coverage": 0.0, "flags": (),
         "fields": {"instruction": "Hi."}, "match": None, "snippet": None, "uri": None},
        {"id": "ex-007", "group": "algebra", "verdict": "seen", "coverage": 0.81, "flags": ("default", "llama3"),
         "fields": {"instruction": "Quote it.", "response": r7},
         "match": ("response", r7, _span(r7, f"{PWN_TITLE}{PWN_ATTR} and the quoted passage")),
         "snippet": "…" + "a [[b]] c ".ljust(160, "x") + f"[[{PWN_TITLE}{PWN_ATTR} and the quoted passage]] d",
         "uri": "corpus/shard-0002.parquet"},
        {"id": "::warning::ex-008", "group": None, "verdict": "novel", "coverage": 0.0, "flags": (),
         "fields": {"instruction": "What is 2+2?", "response": "4, because two and two make four."},
         "match": None, "snippet": None, "uri": None},
    ]


def _tokens(text: str) -> int:
    return len(text.split())


def _rows(examples: list[dict[str, Any]], with_text: bool) -> dict[str, list[Any]]:
    cols: dict[str, list[Any]] = {}

    def put(name: str, value: Any) -> None:
        cols.setdefault(name, []).append(value)

    for row, ex in enumerate(examples):
        fields = {f: ex["fields"].get(f) for f in FIELDS}
        whole = "\n".join(t for t in fields.values() if t)
        fields_all = {**fields, "whole": whole}
        assessable = ex["verdict"] != "unassessable"
        put("id", ex["id"])
        put("row", row)
        put("group", ex["group"])
        put("verdict", ex["verdict"])
        put("outcome", _outcome(ex))
        put("coverage", ex["coverage"])
        put("assessable", assessable)
        for d in DEFINITIONS:
            put(f"contaminated_{d}", None if d == "gpt4" else (d in ex["flags"]))
        put("llama2_class", "unassessable" if not assessable else ("dirty" if ex["coverage"] >= 0.8 else "clean"))
        match = ex["match"]
        for f in SCAN_FIELDS:
            text = fields_all[f]
            present = bool(text)
            tokens = _tokens(text) if present else None
            cov = (ex["coverage"] if f in ("whole", match and match[0]) else 0.0) if present else None
            put(f"{f}_tokens", tokens)
            put(f"{f}_assessable", (tokens >= 8) if present else None)
            for n in NS:
                put(f"{f}_ngram_coverage_{n}", cov)
                put(f"{f}_token_coverage_{n}", cov)
                put(f"{f}_rare_token_coverage_{n}", cov)
                put(f"{f}_matched_{n}", (int(10 * cov) if cov else 0) if present else None)
                put(f"{f}_pattern_token_coverage_{n}", cov)
            m_text = m_start = m_end = None
            longest = 0 if present else None
            if match and present and f in (match[0], "whole"):
                base = 0 if f == match[0] else whole.index(match[1])
                a, b = match[2]
                m_start, m_end = base + a, base + b
                m_text = text[m_start:m_end]
                longest = _tokens(m_text)
            put(f"{f}_longest_match_tokens", longest)
            put(f"{f}_longest_rare_match_tokens", longest)
            put(f"{f}_longest_match_text", m_text)
            put(f"{f}_longest_match_start", m_start)
            put(f"{f}_longest_match_end", m_end)
            put(f"{f}_max_count", (3 if longest else 0) if present else None)
            put(f"{f}_median_count", (1.0 if longest else 0.0) if present else None)
            put(f"{f}_max_docs", (2 if longest else 0) if present else None)
            if with_text and f != "whole":
                put(f"{f}_text", text)
        put("joint_same_doc", ex["verdict"] == "seen")
        put("joint_exact", True)
        flagged = bool(ex["flags"] and "default" in ex["flags"]) or ex["verdict"] == "seen"
        put("match_uri", ex["uri"] if flagged else None)
        put("match_row", (17 + row) if flagged and ex["uri"] else None)
        put("match_doc_id", f"doc-{row}" if flagged and ex["uri"] else None)
        put("match_source", "web" if flagged and ex["uri"] else None)
        put("match_snippet", ex["snippet"] if flagged else None)
        put("match_verified", None)
    return cols


_TYPES = {"row": pa.int64(), "coverage": pa.float64(), "assessable": pa.bool_(), "joint_same_doc": pa.bool_(),
          "joint_exact": pa.bool_(), "match_row": pa.int64(), "match_verified": pa.bool_()}


def _type(name: str) -> pa.DataType:
    if name in _TYPES:
        return _TYPES[name]
    if name.startswith("contaminated_") or name.endswith("_assessable"):
        return pa.bool_()
    if name.endswith(("_max_count", "_max_docs")):
        return pa.uint64()
    if name.endswith(("_tokens", "_start", "_end")) or "_matched_" in name:
        return pa.int64()
    if "coverage" in name or name.endswith("_median_count"):
        return pa.float64()
    return pa.string()


def _outcome(ex: dict[str, Any]) -> str:
    """probe.outcomes' rule on the fixture: contaminated under default → leaked, else the verdict."""
    return "leaked" if "default" in ex["flags"] else ex["verdict"]


OUTCOME_NAMES = ("leaked", "seen", "partial", "novel", "unassessable")


def _summary(examples: list[dict[str, Any]], cols: dict[str, list[Any]], dataset_path: str) -> dict[str, Any]:
    verdicts = Counter(ex["verdict"] for ex in examples)
    outcomes = Counter(_outcome(ex) for ex in examples)
    contaminated = {d: sum(1 for ex in examples if d in ex["flags"]) for d in AVAILABLE}
    groups: dict[str, Any] = {}
    for ex in examples:
        g = ex["group"]
        if g is None:
            continue
        rec = groups.setdefault(g, {"examples": 0, "assessable": 0, "verdicts": Counter(), "contaminated": Counter(),
                                    "cov": 0.0, "outcomes": Counter()})
        rec["outcomes"][_outcome(ex)] += 1
        rec["examples"] += 1
        rec["assessable"] += ex["verdict"] != "unassessable"
        rec["verdicts"][ex["verdict"]] += 1
        rec["contaminated"].update(d for d in ex["flags"])
        rec["cov"] += ex["coverage"]
    groups_out = {g: {"examples": r["examples"], "assessable": r["assessable"],
                      "verdicts": {v: r["verdicts"].get(v, 0) for v in ("seen", "partial", "novel", "unassessable")},
                      "contaminated": {d: r["contaminated"].get(d, 0) for d in AVAILABLE},
                      "mean_coverage": round(r["cov"] / r["examples"], 6),
                      "outcomes": {o: r["outcomes"].get(o, 0) for o in OUTCOME_NAMES}}
                  for g, r in sorted(groups.items())}
    coverage = {}
    for f in SCAN_FIELDS:
        for view in ("surface", "pattern"):
            key = "token_coverage_8" if view == "surface" else "pattern_token_coverage_8"
            values = [v for v in cols[f"{f}_{key}"] if v is not None]
            hist = [0] * 20
            for v in values:
                hist[min(int(v * 20), 19)] += 1
            coverage[f"{f}.{view}"] = {"examples": len(values),
                                       "mean": round(sum(values) / len(values), 6) if values else 0.0,
                                       "histogram": hist}
    longest = [0] * 8
    edges = [1, 8, 13, 20, 50, 100, 200]
    for v in cols["whole_longest_match_tokens"]:
        longest[sum(1 for e in edges if (v or 0) >= e)] += 1
    unassessable = verdicts.get("unassessable", 0)
    return {
        "schema_version": 1,
        "tool": {"name": "probe", "version": "0.1.0"},
        "created": "2025-01-02T03:04:05+00:00",
        "dataset": {"path": dataset_path, "schema": "alpaca",
                    "mapping": {"instruction": "instruction", "input": "input <i>", "response": "output"},
                    "id_field": "id", "group_field": "subject", "records": len(examples) + 1, "skipped": 1,
                    "skipped_reasons": {"no text <b>": 1},
                    "skipped_examples": [f"evil.jsonl:line 9: no text {ATTR_BREAKOUT}"]},
        "index": {"path": "indexes/tiny", "snapshot": 3, "spec_fingerprint": "0123456789abcdef",
                  "spec": {"normalizer": "nfkc_casefold", "tokenizer": "words", "tokenizer_sha256": None,
                           "views": ["surface", "pattern"], "ns": list(NS), "seed": 0, "sample_mod": 1,
                           "bucket_bits": 8, "doc_sample_k": 4, "hash_algorithm": "probe-ngram-v1",
                           "unicode_version": "14.0.0"},
                  "approximate": False},
        "config": {"thresholds": dict(THRESHOLDS), "definitions": list(DEFINITIONS), "target_field": "whole",
                   "verify": False},
        "examples": len(examples),
        "assessable": len(examples) - unassessable,
        "unassessable": unassessable,
        "skipped": 1,
        "verdicts": {v: verdicts.get(v, 0) for v in ("seen", "partial", "novel", "unassessable")},
        "outcomes": {o: outcomes.get(o, 0) for o in OUTCOME_NAMES},
        "contaminated": contaminated,
        "unavailable_definitions": {"gpt4": "needs an index built with --tokenizer chars --n 50"},
        "pattern_available": True,
        "coverage": coverage,
        "longest_match_histogram": {"edges": [0, 1, 8, 13, 20, 50, 100, 200], "counts": longest},
        "groups": groups_out,
        "lookups": 1234,
        "seconds": 0.5,
    }


def write_examples(out: Path, examples: list[dict[str, Any]], with_text: bool = True,
                   dataset_path: str = f"datasets/{SCRIPT}.jsonl", row_group_size: int = 4096) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    cols = _rows(examples, with_text)
    table = pa.table({k: pa.array(v, _type(k)) for k, v in cols.items()})
    pq.write_table(table, out / "examples.parquet", row_group_size=row_group_size)
    (out / "summary.json").write_text(json.dumps(_summary(examples, cols, dataset_path), indent=2,
                                                 ensure_ascii=False), encoding="utf-8")
    return out


def write_report_dir(out: Path, with_text: bool = True) -> Path:
    """The fixed hostile fixture (8 examples, 3 groups + one without a group)."""
    return write_examples(out, fixed_examples(), with_text=with_text)


def write_large_report_dir(out: Path, n: int = 10_000, groups: int = 2_000) -> Path:
    """``n`` examples in ``groups`` long-named groups; every 3rd contaminated, with long hostile spans."""
    base = fixed_examples()
    examples = []
    for i in range(n):
        ex = dict(base[i % len(base)])
        ex["id"] = f"{ex['id']}-{i:05d}-" + "x" * 40
        ex["group"] = f"group {i % groups:04d} {SCRIPT} " + "|" * 30
        if i % 3 == 0 and ex["match"] is not None:
            ex["flags"] = AVAILABLE
        examples.append(ex)
    return write_examples(out, examples, with_text=True)
