"""Scan a dataset against an index: per-example, per-field coverage and contamination.

Flow per batch of examples: texts of each field (instruction, input, response, and
``whole`` = all three joined) → the index's own tokenizer and views → n-gram hashes
→ one bulk lookup per (view, n) for all fields of the batch → vectorized scoring
(:mod:`probe.scoring`) → rows appended to ``examples.parquet``. A summary with
counts per verdict, per definition and per group is accumulated on the way and
written as ``summary.json``. Memory is bounded by the batch.
"""

from __future__ import annotations

import json
import os
import time
import unicodedata
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from probe import interrupt, kernels
from probe._alloc import tune_allocator
from probe.errors import ConfigError, NothingAssessableError
from probe.index.reader import IndexReader, LookupResult, open_index
from probe.scoring import (
    DEFINITIONS,
    VERDICTS,
    NgramScores,
    Thresholds,
    contamination,
    llama2_class,
    score_ngrams,
    verdicts,
)
from probe.sources.datasets import FIELDS, DatasetOptions, DatasetReadStats, detect_schema, read_examples
from probe.text.tokenizers import TokenBatch, Tokenizer

SCHEMA_VERSION = 1
SCAN_FIELDS = (*FIELDS, "whole")
HIST_BINS = 20


@dataclass(frozen=True)
class ScanConfig:
    """What a scan computes; every field is recorded in summary.json."""

    thresholds: Thresholds = field(default_factory=Thresholds)
    definitions: tuple[str, ...] = DEFINITIONS
    target_field: str = "whole"  # field the contamination definitions and verdicts judge
    provenance_limit: int = 200  # flagged examples whose corpus source is read back
    verify: bool = False  # re-check hash matches against the corpus text
    dataset: DatasetOptions = field(default_factory=DatasetOptions)

    def __post_init__(self) -> None:
        bad = [d for d in self.definitions if d not in DEFINITIONS]
        if bad:
            raise ConfigError(f"unknown definition(s) {bad}; choose from {', '.join(DEFINITIONS)}")
        if self.target_field not in SCAN_FIELDS:
            raise ConfigError(f"--target-field must be one of {', '.join(SCAN_FIELDS)}")
        if self.dataset.batch_size < 1:
            raise ConfigError("batch size must be >= 1")


@dataclass
class ScanResult:
    summary: dict[str, Any]
    out_dir: Path


def _whole(ex_fields: dict[str, str]) -> str:
    return "\n".join(ex_fields[f] for f in FIELDS if ex_fields.get(f))


def _char_map(original: str, normalized: str, normalize: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """Map normalized-text offsets back to the original text (None = identity).

    Returns (start_map, end_map), each of length ``len(normalized) + 1``: a span
    [a, b) of the normalized text is ``original[start_map[a]:end_map[b]]``; an offset
    inside the normalization of one original piece rounds down for starts and up for
    ends, so the piece is kept whole. Pieces are cut so that each normalizes on its
    own: before every starter (a combining sequence such as NFD "e" + U+0301 stays
    whole), else at spaces; the pieces' normalizations must add up to ``normalized``.
    """
    if original.isascii():  # ASCII normalizes character by character (lower/identity)
        return None
    for cut in (lambda ch: unicodedata.combining(ch) == 0, str.isspace):
        bounds = [0] + [i for i in range(1, len(original)) if cut(original[i])] + [len(original)]
        pieces = [normalize(original[x:y]) for x, y in zip(bounds[:-1], bounds[1:], strict=True)]
        if "".join(pieces) == normalized:
            break
    else:  # cannot happen for NFKC (text never composes across a space); keep the whole text
        bounds, pieces = [0, len(original)], [normalized]
    orig_starts = np.array(bounds, np.int64)
    norm_starts = np.concatenate(([0], np.cumsum([len(x) for x in pieces], dtype=np.int64)))
    offsets = np.arange(len(normalized) + 1)
    k = np.searchsorted(norm_starts, offsets, side="right") - 1
    start_map = orig_starts[k]
    end_map = np.where(norm_starts[k] == offsets, start_map, orig_starts[np.minimum(k + 1, len(bounds) - 1)])
    return start_map, end_map


class _SummaryAccumulator:
    """Counts for summary.json, overall and per group, accumulated batch by batch."""

    def __init__(self, definitions: list[str]) -> None:
        self.definitions = definitions
        self.examples = 0
        self.verdicts: Counter[str] = Counter()
        self.contaminated: Counter[str] = Counter()
        self.groups: dict[str, dict[str, Any]] = {}
        self.hist: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(HIST_BINS, np.int64))
        self.sums: Counter[str] = Counter()
        self.longest_hist = np.zeros(8, np.int64)  # 0, 1-7, 8-12, 13-19, 20-49, 50-99, 100-199, 200+

    def add(self, groups: list[str | None], verdict: np.ndarray, flags: dict[str, np.ndarray],
            coverage: dict[str, np.ndarray], longest: np.ndarray) -> None:
        self.examples += verdict.shape[0]
        self.verdicts.update(verdict.tolist())
        for d, arr in flags.items():
            self.contaminated[d] += int(arr.sum())
        for key, values in coverage.items():
            bins = np.minimum((values * HIST_BINS).astype(np.int64), HIST_BINS - 1)
            self.hist[key] += np.bincount(bins, minlength=HIST_BINS)
            self.sums[key] += float(values.sum())
        edges = np.array([1, 8, 13, 20, 50, 100, 200])
        self.longest_hist += np.bincount(np.searchsorted(edges, longest, side="right"), minlength=8)
        for i, g in enumerate(groups):
            if g is None:
                continue
            rec = self.groups.setdefault(g, {"examples": 0, "verdicts": Counter(), "contaminated": Counter(),
                                             "coverage_sum": 0.0})
            rec["examples"] += 1
            rec["verdicts"][str(verdict[i])] += 1
            for d, arr in flags.items():
                rec["contaminated"][d] += int(arr[i])
            rec["coverage_sum"] += float(coverage.get("whole.surface", np.zeros(len(groups)))[i])


def scan_dataset(dataset: str | Path, index_dir: str | Path, out_dir: str | Path | None = None,
                 config: ScanConfig | None = None, progress: Any = None,
                 reader: IndexReader | None = None) -> ScanResult:
    """Scan ``dataset`` against the pinned latest snapshot of ``index_dir``.

    Pass the ``reader`` of an earlier scan (``open_index(index_dir)``) to scan several
    datasets against one pinned snapshot: the index tables it loaded stay loaded, so
    each further dataset costs only its own lookups.
    """
    config = config or ScanConfig()
    started = time.perf_counter()
    tune_allocator()
    own_reader = reader is None
    if reader is None:
        reader = open_index(index_dir)
    try:
        return _scan(dataset, reader, out_dir, config, progress, started)
    finally:
        if own_reader:
            reader.close()


def _scan(dataset: str | Path, reader: IndexReader, out_dir: str | Path | None, config: ScanConfig,
          progress: Any, started: float) -> ScanResult:
    spec = reader.spec
    schema = detect_schema(dataset, config.dataset)
    tokenizer = Tokenizer(spec)
    ns = list(spec.ns)
    nmin = min(ns)
    has_pattern = "pattern" in spec.views
    # the index tables load on background threads while the dataset is read and tokenized,
    # in the order the first batch looks them up (doc samples only where the scan uses them)
    reader.prefetch([(view, n, view == "surface" and n == nmin)
                     for view in ("surface", *(("pattern",) if has_pattern else ())) for n in ns])
    chars50 = spec.tokenizer == "chars" and 50 in ns
    stats = DatasetReadStats()
    out_path = Path(out_dir) if out_dir is not None else None
    writer: pq.ParquetWriter | None = None
    tmp_examples = None
    created_out = out_path is not None and not out_path.exists()
    if out_path is not None:
        out_path.mkdir(parents=True, exist_ok=True)
        from probe.report.render import remove_stale_temps

        remove_stale_temps(out_path)  # temp files of an earlier, killed scan
        tmp_examples = out_path / f".examples.parquet.tmp-{os.getpid()}"
    acc = _SummaryAccumulator(list(config.definitions))
    unavailable: dict[str, str] = {}
    lookups = 0
    provenance_left = config.provenance_limit
    timings = Counter()
    try:
        views = ["surface"] + (["pattern"] if has_pattern else [])
        for batch, prepared in _prepared_batches(read_examples(dataset, config.dataset, stats), reader,
                                                 tokenizer, views):
            interrupt.check()  # a stop swallowed by a finalizer during the last batch
            t0 = time.perf_counter()
            table, info = _scan_batch(batch, prepared, reader, tokenizer, config, ns, nmin, has_pattern, chars50,
                                      provenance_left)
            timings["scan"] += time.perf_counter() - t0
            provenance_left -= info["provenance_used"]
            lookups += info["lookups"]
            unavailable.update(info["unavailable"])
            acc.add([ex.group for ex in batch], info["verdict"], info["flags"], info["coverage"], info["longest"])
            if tmp_examples is not None:
                if writer is None:
                    writer = pq.ParquetWriter(tmp_examples, table.schema, compression="zstd")
                writer.write_table(table)
            if progress is not None:
                progress.advance(len(batch), info["lookups"])
    except BaseException:
        if writer is not None:
            writer.close()
        if tmp_examples is not None and tmp_examples.exists():
            tmp_examples.unlink()
        raise
    seconds = time.perf_counter() - started
    summary = _build_summary(dataset, reader, schema, stats, config, acc, unavailable, has_pattern,
                             lookups, seconds)
    if acc.examples == 0 or summary["assessable"] == 0:
        if writer is not None:
            writer.close()
            tmp_examples.unlink()
        if out_path is not None and created_out and not any(out_path.iterdir()):
            out_path.rmdir()  # leave no empty report directory behind
        raise NothingAssessableError(
            f"{dataset}: nothing assessable ({acc.examples} examples read, {stats.skipped} skipped; "
            f"every example is shorter than n={nmin} tokens or empty)")
    if out_path is not None:
        writer.close()
        _fsync_file(tmp_examples)
        os.replace(tmp_examples, out_path / "examples.parquet")
        write_json_atomic(out_path / "summary.json", summary)
    return ScanResult(summary, out_path or Path("."))


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_atomic(path: Path, data: Any) -> None:
    """temp + fsync + replace, so CI never reads half a report."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=False, allow_nan=False, ensure_ascii=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


LOOKAHEAD_BATCHES = 4  # batches tokenized ahead while the index is still loading


@dataclass
class _PreparedBatch:
    """A batch's field texts and its tokens per view (field f occupies documents [f*e, (f+1)*e))."""

    field_texts: dict[str, list[str]]
    tokens: dict[str, TokenBatch]


def _prepare_batch(batch, tokenizer: Tokenizer, views: list[str]) -> _PreparedBatch:
    field_texts = {f: [ex.fields.get(f, "") for ex in batch] for f in FIELDS}
    field_texts["whole"] = [_whole(ex.fields) for ex in batch]
    # tokenize every field of the batch as one document list per view
    all_texts = [t for f in SCAN_FIELDS for t in field_texts[f]]
    tokens = {view: tokenizer.tokenize(all_texts, view, with_offsets=(view == "surface")) for view in views}
    return _PreparedBatch(field_texts, tokens)


def _prepared_batches(batches, reader: IndexReader, tokenizer: Tokenizer, views: list[str]):
    """Yield (batch, prepared) in order; while the index still loads, read and tokenize ahead.

    The index loads on background threads; rather than block on the first lookup, the
    scan keeps the core busy with the next batches' reading and tokenizing (at most
    LOOKAHEAD_BATCHES held, so memory stays bounded by a few batches).
    """
    ahead: deque = deque()
    source = iter(batches)
    done = False
    while True:
        while not done and (not ahead or (len(ahead) < LOOKAHEAD_BATCHES and reader.loading())):
            batch = next(source, None)
            if batch is None:
                done = True
            else:
                ahead.append((batch, _prepare_batch(batch, tokenizer, views)))
        if not ahead:
            return
        yield ahead.popleft()


def _scan_batch(batch, prepared: _PreparedBatch, reader: IndexReader, tokenizer: Tokenizer, config: ScanConfig,
                ns: list[int], nmin: int, has_pattern: bool, chars50: bool,
                provenance_left: int) -> tuple[pa.Table, dict[str, Any]]:
    thresholds = config.thresholds
    e = len(batch)
    field_texts = prepared.field_texts
    tokens = prepared.tokens
    views = list(tokens)
    scores: dict[tuple[str, str, int], NgramScores] = {}
    lookups = 0
    surface_min_lookup: LookupResult | None = None
    surface_min_ngrams: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    gpt4_scores: NgramScores | None = None
    for view in views:
        tb = tokens[view]
        for n in ns:
            h, de, pos = kernels.ngram_hashes(tb.token_hashes, tb.doc_token_ends, n, reader.spec.sample_mod)
            want_samples = view == "surface" and n == nmin
            res = reader.lookup(view, n, h, with_samples=want_samples)
            lookups += h.shape[0]
            if want_samples:
                surface_min_lookup, surface_min_ngrams = res, (h, de, pos)
            counts, docs = res.counts, res.docs
            for fi, f in enumerate(SCAN_FIELDS):
                lo_doc, hi_doc = fi * e, (fi + 1) * e
                ng_lo = int(de[lo_doc - 1]) if lo_doc else 0
                tok_lo = int(tb.doc_token_ends[lo_doc - 1]) if lo_doc else 0
                sl = slice(ng_lo, int(de[hi_doc - 1]))
                args = (docs[sl], pos[sl] - tok_lo, de[lo_doc:hi_doc] - ng_lo,
                        tb.doc_token_ends[lo_doc:hi_doc] - tok_lo, n, thresholds)
                scores[(f, view, n)] = score_ngrams(counts[sl], *args)
                if chars50 and n == 50 and view == "surface" and f == config.target_field:
                    # GPT-4 samples three windows; coverage and spans use every window
                    gpt4_scores = score_ngrams(_three_windows(counts[sl], de[lo_doc:hi_doc] - ng_lo), *args)
    target = config.target_field
    surface = {n: scores[(target, "surface", n)] for n in ns}
    pattern = {n: scores[(target, "pattern", n)] for n in ns} if has_pattern else None
    flags, unavailable = contamination(surface, pattern, gpt4_scores, thresholds)
    flags = {d: v for d, v in flags.items() if d in config.definitions}
    s_min = surface[nmin]
    assessable = s_min.ngrams > 0
    cov = s_min.token_coverage.copy()
    if pattern is not None:
        cov = np.maximum(cov, pattern[nmin].token_coverage)
    verdict = verdicts(cov, assessable, thresholds)
    for d in flags:
        flags[d] = flags[d] & assessable
    # a definition judges only examples with at least one n-gram of its own n (else: null, never "clean")
    definition_n = {"gpt2": 8, "palm": 8, "llama3": 8, "gpt3": 13, "lmeval": 13, "gpt4": 50, "default": nmin}
    small_ns = [n for n in ns if n <= thresholds.llama2_min_span]
    if small_ns:
        definition_n["llama2"] = max(small_ns)
    flag_masks = {d: surface[definition_n[d]].ngrams == 0 for d in flags if definition_n.get(d) in surface}
    cols: dict[str, Any] = {
        "id": pa.array([ex.id for ex in batch], pa.string()),
        "row": pa.array([ex.row for ex in batch], pa.int64()),
        "group": pa.array([ex.group for ex in batch], pa.string()),
        "verdict": pa.array(verdict.tolist(), pa.string()),
        "coverage": pa.array(cov),
        "assessable": pa.array(assessable),
    }
    for d in config.definitions:
        cols[f"contaminated_{d}"] = (pa.array(flags[d], mask=flag_masks.get(d)) if d in flags
                                     else pa.nulls(e, pa.bool_()))
    small = [n for n in ns if n <= thresholds.llama2_min_span]
    if small:
        sl2 = surface[max(small)]
        cols["llama2_class"] = pa.array(llama2_class(sl2.span_coverage, sl2.ngrams > 0, thresholds).tolist())
    else:  # no n <= llama2_min_span in the index: unavailable (null), like contaminated_llama2
        cols["llama2_class"] = pa.nulls(e, pa.string())
    # per-field metrics
    tbs = tokens["surface"]
    starts_all = tbs.token_starts
    ends_all = tbs.token_ends
    # offset-map pieces are mostly single characters that repeat: normalize each once per batch
    normalize_piece = lru_cache(maxsize=1 << 16)(tokenizer.normalize_one)
    for fi, f in enumerate(SCAN_FIELDS):
        present = np.array([bool(t) for t in field_texts[f]])
        base = scores[(f, "surface", nmin)]
        tok_lo = int(tbs.doc_token_ends[fi * e - 1]) if fi else 0
        # the example's own text, so reports can show matches in context (offsets index it)
        cols[f"{f}_text"] = pa.array([t if t else None for t in field_texts[f]], pa.string())
        cols[f"{f}_tokens"] = pa.array(base.tokens.astype(np.int64), mask=~present)
        cols[f"{f}_assessable"] = pa.array(base.ngrams > 0, mask=~present)
        for n in ns:
            s = scores[(f, "surface", n)]
            cols[f"{f}_ngram_coverage_{n}"] = pa.array(s.ngram_coverage, mask=~present)
            cols[f"{f}_token_coverage_{n}"] = pa.array(s.token_coverage, mask=~present)
            cols[f"{f}_rare_token_coverage_{n}"] = pa.array(s.token_coverage_rare, mask=~present)
            cols[f"{f}_matched_{n}"] = pa.array(s.matched.astype(np.int64), mask=~present)
            if has_pattern:
                p = scores[(f, "pattern", n)]
                cols[f"{f}_pattern_token_coverage_{n}"] = pa.array(p.token_coverage, mask=~present)
        cols[f"{f}_longest_match_tokens"] = pa.array(base.longest, mask=~present)
        cols[f"{f}_longest_rare_match_tokens"] = pa.array(base.longest_rare, mask=~present)
        cols[f"{f}_max_count"] = pa.array(base.max_count, mask=~present)
        cols[f"{f}_median_count"] = pa.array(base.median_count, mask=~present)
        cols[f"{f}_max_docs"] = pa.array(base.max_docs, mask=~present)
        texts_f, starts_f, ends_f = [], [], []
        for i in range(e):
            if base.longest[i] <= 0:
                texts_f.append(None)
                starts_f.append(None)
                ends_f.append(None)
                continue
            doc = fi * e + i
            first_tok = tok_lo + int(base.longest_first[i])
            last_tok = tok_lo + int(base.longest_last[i])
            a, b = int(starts_all[first_tok]), int(ends_all[last_tok])
            orig = field_texts[f][i]
            cmap = _char_map(orig, tbs.texts[doc], normalize_piece)
            if cmap is not None:
                a, b = int(cmap[0][a]), int(cmap[1][b])
            texts_f.append(orig[a:b])
            starts_f.append(a)
            ends_f.append(b)
        cols[f"{f}_longest_match_text"] = pa.array(texts_f, pa.string())
        cols[f"{f}_longest_match_start"] = pa.array(starts_f, pa.int64())
        cols[f"{f}_longest_match_end"] = pa.array(ends_f, pa.int64())
    # joint (same-document) coverage of instruction and response matches
    joint, joint_exact = _joint(surface_min_lookup, surface_min_ngrams, e, thresholds)
    cols["joint_same_doc"] = pa.array(joint)
    cols["joint_exact"] = pa.array(joint_exact)
    # provenance of flagged examples' longest match
    flagged = (flags.get("default", np.zeros(e, bool)) | (verdict == "seen"))
    prov, used = _provenance(reader, tokenizer, surface_min_lookup, surface_min_ngrams, scores, batch, flagged,
                             e, nmin, provenance_left, config.verify, tbs)
    for key, values in prov.items():
        cols[key] = values
    table = pa.table(cols)
    coverage = {f"{f}.surface": scores[(f, "surface", nmin)].token_coverage for f in SCAN_FIELDS}
    if has_pattern:
        coverage.update({f"{f}.pattern": scores[(f, "pattern", nmin)].token_coverage for f in SCAN_FIELDS})
    for f in SCAN_FIELDS:
        present = np.array([bool(t) for t in field_texts[f]])
        for key in (f"{f}.surface", f"{f}.pattern"):
            if key in coverage:
                coverage[key] = coverage[key][present] if f != "whole" else coverage[key]
    return table, {"verdict": verdict, "flags": flags, "unavailable": unavailable, "lookups": lookups,
                   "coverage": coverage, "longest": scores[(target, "surface", nmin)].longest,
                   "provenance_used": used}


def _three_windows(counts: np.ndarray, doc_ends: np.ndarray) -> np.ndarray:
    """Keep 3 evenly spaced 50-char windows per example (GPT-4's sampling), zero the rest."""
    keep = np.zeros(counts.shape[0], bool)
    start = 0
    for end in doc_ends.tolist():
        m = end - start
        if m > 0:
            idx = np.unique(np.linspace(start, end - 1, num=min(3, m)).astype(np.int64))
            keep[idx] = True
        start = end
    return np.where(keep, counts, 0)


def _joint(res: LookupResult | None, ngrams: tuple | None, e: int, thresholds: Thresholds):
    """Do an example's matched instruction and response n-grams share a corpus document?"""
    joint = np.zeros(e, bool)
    exact = np.ones(e, bool)
    if res is None or ngrams is None:
        return joint, exact
    _h, de, _pos = ngrams
    doc_of = np.repeat(np.arange(de.shape[0]), np.diff(de, prepend=0))
    per_ngram = np.diff(res.sample_offsets)
    field_of_key = np.repeat(doc_of, per_ngram) // e  # 0 instruction, 1 input, 2 response, 3 whole
    example_of_key = np.repeat(doc_of, per_ngram) % e
    keys = res.doc_keys
    instr_keys = field_of_key == 0
    resp_keys = field_of_key == 2
    if not instr_keys.any() or not resp_keys.any():
        return joint, exact
    a = np.unique(np.stack([example_of_key[instr_keys], keys[instr_keys].astype(np.int64)], 1), axis=0)
    b = np.unique(np.stack([example_of_key[resp_keys], keys[resp_keys].astype(np.int64)], 1), axis=0)
    both = np.concatenate([a, b])
    _u, counts_ = np.unique(both, axis=0, return_counts=True)
    joint[_u[counts_ > 1][:, 0]] = True
    # estimates where some matched n-gram's sample was truncated (more docs than k)
    incomplete = ~res.sample_complete & res.found
    if incomplete.any():
        bad_docs = np.unique(doc_of[incomplete])
        bad_fields = bad_docs // e
        exact[np.unique(bad_docs[(bad_fields == 0) | (bad_fields == 2)] % e)] = False
    return joint, exact


def _provenance(reader, tokenizer, res, ngrams, scores, batch, flagged, e, nmin, limit, verify, tbs):
    """Corpus document and snippet for flagged examples' longest whole-example match."""
    uri = [None] * e
    row = [None] * e
    doc_id = [None] * e
    source = [None] * e
    snippet = [None] * e
    verified = [None] * e
    used = 0
    if res is not None and ngrams is not None and limit > 0:
        from probe.index.stats import document_match, prefetch_document_texts

        s = scores[("whole", "surface", nmin)]
        whole_doc0 = 3 * e
        h, de, _pos = ngrams
        ng_base = int(de[whole_doc0 - 1]) if whole_doc0 else 0
        wanted = np.nonzero(flagged & (s.first_match >= 0))[0][:limit]
        # read the documents these examples will show two at a time (Parquet decoding releases the GIL)
        firsts = [res.sample(ng_base + int(s.first_match[i]))[:1] for i in wanted]
        prefetch_document_texts(reader, [int(f[0]) for f in firsts if f.shape[0]])
        for i in wanted:
            gi = ng_base + int(s.first_match[i])
            sample = res.sample(gi)
            if not sample.shape[0]:
                continue
            used += 1
            info = document_match(reader, int(sample[0]), int(h[gi]), nmin, int(s.longest[i]))
            if info is None:
                continue
            if info.get("collision"):
                # the n-gram's hash is in the index but its text is not in the document
                verified[i] = False if verify else None
                continue
            uri[i], row[i], doc_id[i], source[i], snippet[i] = (info["uri"], info["row"], info["id"],
                                                                 info["source"], info["snippet"])
            if verify:
                first = int(s.longest_first[i])
                lo_tok = int(tbs.doc_token_ends[whole_doc0 - 1])  # field base: longest_first is field-relative
                a = int(tbs.token_starts[lo_tok + first])
                b = int(tbs.token_ends[lo_tok + int(s.longest_last[i])])
                query_tokens = tokenizer.token_texts(tbs.texts[whole_doc0 + i][a:b])
                verified[i] = info["match_tokens"] == query_tokens[: len(info["match_tokens"])]
    return {
        "match_uri": pa.array(uri, pa.string()), "match_row": pa.array(row, pa.int64()),
        "match_doc_id": pa.array(doc_id, pa.string()), "match_source": pa.array(source, pa.string()),
        "match_snippet": pa.array(snippet, pa.string()), "match_verified": pa.array(verified, pa.bool_()),
    }, used


def _build_summary(dataset, reader: IndexReader, schema, stats: DatasetReadStats, config: ScanConfig,
                   acc: _SummaryAccumulator, unavailable: dict[str, str], has_pattern: bool, lookups: int,
                   seconds: float) -> dict[str, Any]:
    assessable = acc.examples - acc.verdicts.get("unassessable", 0)
    definitions = [d for d in config.definitions if d not in unavailable]
    groups = {}
    for g, rec in sorted(acc.groups.items()):
        groups[g] = {
            "examples": rec["examples"],
            "assessable": rec["examples"] - rec["verdicts"].get("unassessable", 0),
            "verdicts": {v: rec["verdicts"].get(v, 0) for v in VERDICTS},
            "contaminated": {d: rec["contaminated"].get(d, 0) for d in definitions},
            "mean_coverage": round(rec["coverage_sum"] / rec["examples"], 6) if rec["examples"] else 0.0,
        }
    coverage = {}
    for key, hist in sorted(acc.hist.items()):
        total = int(hist.sum())
        coverage[key] = {"examples": total, "mean": round(acc.sums[key] / total, 6) if total else 0.0,
                         "histogram": hist.tolist()}
    spec = reader.spec
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "probe", "version": _version()},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "dataset": {"path": str(dataset), "schema": schema.name, "mapping": schema.mapping,
                    "id_field": schema.id_field, "group_field": schema.group_field,
                    "records": stats.records, "skipped": stats.skipped,
                    "skipped_reasons": dict(stats.skipped_reasons),
                    "skipped_examples": list(stats.skipped_examples)},
        "index": {"path": str(reader.root), "snapshot": reader.snapshot.number,
                  "spec_fingerprint": spec.fingerprint(), "spec": spec.to_dict(),
                  "approximate": spec.sample_mod > 1},
        "config": {"thresholds": config.thresholds.to_dict(), "definitions": list(config.definitions),
                   "target_field": config.target_field, "verify": config.verify},
        "examples": acc.examples,
        "assessable": assessable,
        "unassessable": acc.verdicts.get("unassessable", 0),
        "skipped": stats.skipped,
        "verdicts": {v: acc.verdicts.get(v, 0) for v in VERDICTS},
        "contaminated": {d: acc.contaminated.get(d, 0) for d in definitions},
        "unavailable_definitions": {d: why for d, why in unavailable.items() if d in config.definitions},
        "pattern_available": has_pattern,
        "coverage": coverage,
        "longest_match_histogram": {"edges": [0, 1, 8, 13, 20, 50, 100, 200],
                                    "counts": acc.longest_hist.tolist()},
        "groups": groups,
        "lookups": lookups,
        "seconds": round(seconds, 3),
    }


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("probe")
    except Exception:  # noqa: BLE001 - not installed (running from a checkout)
        return "0+unknown"
