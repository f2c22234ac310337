"""The exact n-gram measure: per field, view and n, coverage, spans and counts from the index tables.

One bulk lookup per (view, n) covers every field of a batch (the fields are one document
list, see :class:`probe.measures.ScanBatch`); :func:`probe.scoring.score_ngrams` turns
the hits into per-example metrics. Its payload (:class:`NgramEvidence`) is what the
definitions, the verdict and provenance read.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pyarrow as pa

from probe import kernels
from probe.errors import ConfigError
from probe.index.reader import LookupResult
from probe.measures import Measure as _Measure
from probe.measures import MeasureAggregate, MeasureBatch, Requirement, ScanBatch, ScanContext
from probe.measures.templates import DatasetNgramFrequency, TemplateList, low_information
from probe.scoring import NgramScores, Thresholds, coverage_interval, score_ngrams
from probe.sources.datasets import FIELDS

SCAN_FIELDS = (*FIELDS, "whole")
WHOLE = SCAN_FIELDS.index("whole")
DISCOUNT_OPTIONS = ("template_examples", "template_share", "low_info_share", "low_info_distinct")
HIST_BINS = 20
MAX_COUNTED_TEMPLATES = 100_000  # distinct pattern templates counted (memory bound)
LONGEST_EDGES = (0, 1, 8, 13, 20, 50, 100, 200)  # longest-match histogram bins (tokens)


@dataclass(frozen=True)
class NgramHashes:
    """The n-gram hashes of a batch at one (view, n): hashes, per-document ends, token positions."""

    hashes: np.ndarray
    doc_ends: np.ndarray
    positions: np.ndarray


@dataclass(frozen=True)
class NgramEvidence:
    """The n-gram measure's payload for one batch."""

    scores: dict[tuple[str, str, int], NgramScores]  # (field, view, n) → metrics
    windows50: NgramScores | None  # GPT-4's three sampled 50-char windows of the target field
    samples: LookupResult | None  # the surface lookup at the smallest n, with document samples
    sample_hashes: NgramHashes | None  # ... and its n-grams
    lookups: int
    nmin: int
    templates: list[tuple[str, int, int, int, int, int, int]] = dataclasses.field(default_factory=list)
    # runs of matched template n-grams: (view, first hash, examples (fewest of the run), corpus docs
    # (most of the run), batch document, first token, last token)

    def target(self, target_field: str, view: str) -> dict[int, NgramScores] | None:
        out = {n: s for (f, v, n), s in self.scores.items() if f == target_field and v == view}
        return out or None


class NgramMeasure(_Measure):
    name = "ngram"
    title = "exact n-gram overlap"
    cost = "one hashed lookup per n-gram per (view, n)"
    required = True  # the verdict and the definitions read it
    first_pass = True  # counts how many examples hold each n-gram (dataset-side templates)

    def __init__(self) -> None:
        self.frequency: dict[str, DatasetNgramFrequency] = {}

    def thresholds(self, ctx: ScanContext) -> Thresholds:
        """The scan's thresholds with this measure's options (``template_examples`` …) applied."""
        options = dict(self.options(ctx))
        unknown = sorted(set(options) - set(DISCOUNT_OPTIONS))
        if unknown:
            raise ConfigError(f"unknown option(s) {unknown} of measure 'ngram'; choose from "
                              f"{', '.join(DISCOUNT_OPTIONS)}")
        return dataclasses.replace(ctx.config.thresholds, **options)

    def observe(self, batch: ScanBatch, ctx: ScanContext) -> None:
        """Count, per view, the examples holding each whole-example n-gram at the smallest n."""
        e = batch.size
        for view, tb in batch.tokens.items():
            tok_lo = int(tb.doc_token_ends[WHOLE * e - 1]) if WHOLE * e else 0
            h, de, _pos = kernels.ngram_hashes(tb.token_hashes[tok_lo:], tb.doc_token_ends[WHOLE * e:] - tok_lo,
                                              min(ctx.ns), ctx.reader.spec.sample_mod)
            self.frequency.setdefault(view, DatasetNgramFrequency()).observe(h, de)

    def needs(self, ctx: ScanContext) -> Requirement:
        nmin = min(ctx.ns)
        # in the order the first batch looks them up (doc samples only where the scan uses them)
        return Requirement(tables=tuple((view, n, view == "surface" and n == nmin)
                                        for view in ctx.views for n in ctx.ns))

    def estimate(self, ctx: ScanContext) -> bool:
        return ctx.reader.spec.sample_mod > 1

    def compute(self, batch: ScanBatch, ctx: ScanContext, earlier: dict[str, MeasureBatch]) -> MeasureBatch:
        evidence = lookup_and_score(batch, ctx, self.frequency, self.thresholds(ctx))
        columns = field_columns(batch, ctx, evidence)
        joint, joint_exact = joint_same_document(evidence, batch.size)
        columns["joint_same_doc"] = pa.array(joint)
        columns["joint_exact"] = pa.array(joint_exact)
        return MeasureBatch(columns, evidence)

    def aggregate(self, ctx: ScanContext) -> NgramAggregate:
        return NgramAggregate("pattern" in ctx.reader.spec.views, ctx.config.target_field,
                              ctx.reader.spec.sample_mod)


def _discounts(view: str, tb: Any, h: np.ndarray, de: np.ndarray, pos: np.ndarray, n: int, res: LookupResult,
               ctx: ScanContext, frequency: dict[str, DatasetNgramFrequency] | None, thresholds: Thresholds
               ) -> tuple[np.ndarray, np.ndarray, list[tuple[str, int, int, int, int, int, int]]]:
    """(not evidence, template) per n-gram, and the matched templates found."""
    discount = low_information(tb.token_hashes, pos, n, ctx.reader.spec.seed, thresholds)
    template = np.zeros(h.shape[0], bool)
    found: list[tuple[str, int, int, int, int, int, int]] = []
    if frequency and view in frequency:
        template, examples = frequency[view].templates(h, thresholds)
        hits = np.nonzero(template & (res.counts > 0))[0]
        if hits.shape[0]:
            # one entry per run of consecutive matched template n-grams of one document (the stem, whole)
            doc_of = np.searchsorted(de, hits, side="right")
            breaks = np.nonzero((np.diff(doc_of) != 0) | (np.diff(pos[hits]) != 1))[0] + 1
            for run in np.split(np.arange(hits.shape[0]), breaks):
                first, last = hits[run[0]], hits[run[-1]]
                found.append((view, int(h[first]), int(examples[hits[run]].min()), int(res.docs[hits[run]].max()),
                              int(doc_of[run[0]]), int(pos[first]), int(pos[last]) + n - 1))
        discount |= template
    return discount, template, found


def lookup_and_score(batch: ScanBatch, ctx: ScanContext, frequency: dict[str, DatasetNgramFrequency] | None = None,
                     thresholds: Thresholds | None = None) -> NgramEvidence:
    """Look every n-gram of the batch up, once per (view, n), and score each field.

    At the smallest n (the one `default` judges at) each n-gram is also tested for the two
    discounts of :mod:`probe.measures.templates`: a template of the dataset (``frequency``,
    from the first pass) or a low-information n-gram; either keeps it out of `default`'s evidence.
    """
    reader, config = ctx.reader, ctx.config
    thresholds = thresholds or config.thresholds
    sample_mod = reader.spec.sample_mod
    templates: list[tuple[str, int, int, int, int, int, int]] = []
    e = batch.size
    ns = ctx.ns
    nmin = ns[0]
    chars50 = reader.spec.tokenizer == "chars" and 50 in ns
    scores: dict[tuple[str, str, int], NgramScores] = {}
    lookups = 0
    samples: LookupResult | None = None
    sample_hashes: NgramHashes | None = None
    windows50: NgramScores | None = None
    for view, tb in batch.tokens.items():
        for n in ns:
            h, de, pos = kernels.ngram_hashes(tb.token_hashes, tb.doc_token_ends, n, reader.spec.sample_mod)
            want_samples = view == "surface" and n == nmin
            res = reader.lookup(view, n, h, with_samples=want_samples)
            lookups += h.shape[0]
            if want_samples:
                samples, sample_hashes = res, NgramHashes(h, de, pos)
            discount = template = None
            if n == nmin:
                discount, template, found = _discounts(view, tb, h, de, pos, n, res, ctx, frequency, thresholds)
                templates += found
            for fi, f in enumerate(SCAN_FIELDS):
                lo_doc, hi_doc = fi * e, (fi + 1) * e
                ng_lo = int(de[lo_doc - 1]) if lo_doc else 0
                tok_lo = int(tb.doc_token_ends[lo_doc - 1]) if lo_doc else 0
                sl = slice(ng_lo, int(de[hi_doc - 1]))
                args = (res.docs[sl], pos[sl] - tok_lo, de[lo_doc:hi_doc] - ng_lo,
                        tb.doc_token_ends[lo_doc:hi_doc] - tok_lo, n, thresholds)
                scores[(f, view, n)] = score_ngrams(
                    res.counts[sl], *args, discount=None if discount is None else discount[sl],
                    template=None if template is None else template[sl], sample_mod=sample_mod)
                if chars50 and n == 50 and view == "surface" and f == config.target_field:
                    # GPT-4 samples three windows; coverage and spans use every window
                    windows50 = score_ngrams(_three_windows(res.counts[sl], de[lo_doc:hi_doc] - ng_lo), *args)
    return NgramEvidence(scores, windows50, samples, sample_hashes, lookups, nmin, templates)


def field_columns(batch: ScanBatch, ctx: ScanContext, evidence: NgramEvidence) -> dict[str, pa.Array]:
    """Per-field metric columns (docs/scan-output.md), including the longest match's text and offsets."""
    e = batch.size
    has_pattern = "pattern" in batch.tokens
    scores = evidence.scores
    tbs = batch.tokens["surface"]
    # offset-map pieces are mostly single characters that repeat: normalize each once per batch
    normalize_piece = lru_cache(maxsize=1 << 16)(ctx.tokenizer.normalize_one)
    cols: dict[str, pa.Array] = {}
    for fi, f in enumerate(SCAN_FIELDS):
        texts = batch.field_texts[f]
        absent = ~np.array([bool(t) for t in texts])
        base = scores[(f, "surface", evidence.nmin)]
        # the example's own text, so reports can show matches in context (offsets index it)
        cols[f"{f}_text"] = pa.array([t if t else None for t in texts], pa.string())
        cols[f"{f}_tokens"] = pa.array(base.tokens.astype(np.int64), mask=absent)
        cols[f"{f}_assessable"] = pa.array(base.ngrams > 0, mask=absent)
        for n in ctx.ns:
            s = scores[(f, "surface", n)]
            cols[f"{f}_ngram_coverage_{n}"] = pa.array(s.ngram_coverage, mask=absent)
            cols[f"{f}_token_coverage_{n}"] = pa.array(s.token_coverage, mask=absent)
            cols[f"{f}_rare_token_coverage_{n}"] = pa.array(s.token_coverage_rare, mask=absent)
            cols[f"{f}_matched_{n}"] = pa.array(s.matched.astype(np.int64), mask=absent)
            if has_pattern:
                cols[f"{f}_pattern_token_coverage_{n}"] = pa.array(scores[(f, "pattern", n)].token_coverage,
                                                                   mask=absent)
        if base.template_token_share is not None:
            cols[f"{f}_template_token_share"] = pa.array(base.template_token_share, mask=absent)
        # a sampled index: the coverage is an estimate, with its 95 % interval; exact: a zero-width interval
        low, high = (coverage_interval(base.matched, base.ngrams) if base.estimate
                     else (base.token_coverage, base.token_coverage))
        cols[f"{f}_token_coverage_low"] = pa.array(low, mask=absent)
        cols[f"{f}_token_coverage_high"] = pa.array(high, mask=absent)
        cols[f"{f}_longest_match_tokens"] = pa.array(base.longest, mask=absent)
        cols[f"{f}_longest_rare_match_tokens"] = pa.array(base.longest_rare, mask=absent)
        cols[f"{f}_max_count"] = pa.array(base.max_count, mask=absent)
        cols[f"{f}_median_count"] = pa.array(base.median_count, mask=absent)
        cols[f"{f}_max_docs"] = pa.array(base.max_docs, mask=absent)
        spans = [_longest_span(tbs, fi * e + i, base, i, texts[i], normalize_piece) for i in range(e)]
        cols[f"{f}_longest_match_text"] = pa.array([s[0] if s else None for s in spans], pa.string())
        cols[f"{f}_longest_match_start"] = pa.array([s[1] if s else None for s in spans], pa.int64())
        cols[f"{f}_longest_match_end"] = pa.array([s[2] if s else None for s in spans], pa.int64())
    return cols


def _longest_span(tbs: Any, doc: int, base: NgramScores, i: int, original: str,
                  normalize_piece: Callable[[str], str]) -> tuple[str, int, int] | None:
    """The longest match of example ``i``'s field as (text, start, end) in the original text."""
    if base.longest[i] <= 0:
        return None
    # longest_first/last are field-relative token indices; the field's documents start at doc - i
    field_lo = int(tbs.doc_token_ends[doc - i - 1]) if doc - i else 0
    a = int(tbs.token_starts[field_lo + int(base.longest_first[i])])
    b = int(tbs.token_ends[field_lo + int(base.longest_last[i])])
    cmap = char_map(original, tbs.texts[doc], normalize_piece)
    if cmap is not None:
        a, b = int(cmap[0][a]), int(cmap[1][b])
    return original[a:b], a, b


def char_map(original: str, normalized: str, normalize: Callable[[str], str]) -> tuple[np.ndarray, np.ndarray] | None:
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


def joint_same_document(evidence: NgramEvidence, e: int) -> tuple[np.ndarray, np.ndarray]:
    """Do an example's matched instruction and response n-grams share a corpus document?

    Returns (joint, exact): exact is False where some matched n-gram's document sample
    was truncated (more documents than the index keeps), so ``joint`` is an estimate there.
    """
    joint = np.zeros(e, bool)
    exact = np.ones(e, bool)
    res, ngrams = evidence.samples, evidence.sample_hashes
    if res is None or ngrams is None:
        return joint, exact
    de = ngrams.doc_ends
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
    pairs, counts = np.unique(both, axis=0, return_counts=True)
    joint[pairs[counts > 1][:, 0]] = True
    incomplete = ~res.sample_complete & res.found
    if incomplete.any():
        bad_docs = np.unique(doc_of[incomplete])
        bad_fields = bad_docs // e
        exact[np.unique(bad_docs[(bad_fields == 0) | (bad_fields == 2)] % e)] = False
    return joint, exact


class NgramAggregate(MeasureAggregate):
    """Coverage histograms per field and view, the longest-match histogram, the lookup count."""

    def __init__(self, has_pattern: bool, target_field: str, sample_mod: int = 1) -> None:
        self.views = ("surface", "pattern") if has_pattern else ("surface",)
        self.hist: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(HIST_BINS, np.int64))
        self.sums: Counter[str] = Counter()
        self.longest_hist = np.zeros(len(LONGEST_EDGES), np.int64)
        self.lookups = 0
        self.target_field = target_field
        self.sample_mod = sample_mod
        self.templates = TemplateList()
        self.pattern_templates: set[int] = set()
        self.template_examples = 0  # examples with at least one matched template n-gram (target field)

    def add(self, output: MeasureBatch, batch: ScanBatch) -> None:
        ev: NgramEvidence = output.payload
        self.lookups += ev.lookups
        for f in SCAN_FIELDS:
            # a field absent from an example is not a 0-coverage field; "whole" is always present
            present = None if f == "whole" else np.array([bool(t) for t in batch.field_texts[f]])
            for view in self.views:
                values = ev.scores[(f, view, ev.nmin)].token_coverage
                if present is not None:
                    values = values[present]
                key = f"{f}.{view}"
                bins = np.minimum((values * HIST_BINS).astype(np.int64), HIST_BINS - 1)
                self.hist[key] += np.bincount(bins, minlength=HIST_BINS)
                self.sums[key] += float(values.sum())
        self._add_templates(ev, batch)
        longest = ev.scores[(self.target_field, "surface", ev.nmin)].longest
        self.longest_hist += np.bincount(np.searchsorted(np.array(LONGEST_EDGES[1:]), longest, side="right"),
                                         minlength=len(LONGEST_EDGES))

    def _add_templates(self, ev: NgramEvidence, batch: ScanBatch) -> None:
        share = ev.scores[(self.target_field, "surface", ev.nmin)].template_token_share
        if share is not None:
            self.template_examples += int((share > 0).sum())
        tb = batch.tokens["surface"]
        for view, hash_, examples, docs, doc, first, last in ev.templates:
            if view != "surface":  # pattern n-grams have no text of their own; counted only
                if len(self.pattern_templates) < MAX_COUNTED_TEMPLATES:
                    self.pattern_templates.add(hash_)
                continue
            # token offsets are relative to the document's normalized text (tb.texts[doc])
            a = int(tb.token_starts[first])
            b = int(tb.token_ends[last])
            self.templates.add(view, examples, docs, tb.texts[doc][a:b])

    def to_dict(self) -> dict[str, Any]:
        coverage = {}
        for key, hist in sorted(self.hist.items()):
            total = int(hist.sum())
            coverage[key] = {"examples": total, "mean": round(self.sums[key] / total, 6) if total else 0.0,
                             "histogram": hist.tolist()}
        return {"coverage": coverage,
                "longest_match_histogram": {"edges": list(LONGEST_EDGES), "counts": self.longest_hist.tolist()},
                "lookups": self.lookups,
                "templates": {"examples_with_template": self.template_examples,
                              "pattern_templates": len(self.pattern_templates),
                              "top": self.templates.to_list()}}
