"""Per-field coverage metrics and verdicts (the definitions reading them: probe.definitions).

Everything here works on whole batches of examples at once (numpy over per-n-gram
arrays with document boundaries); nothing loops over n-grams in Python.

The contamination definitions that read these metrics are registered objects in
:mod:`probe.definitions`.

Verdict (coverage label): ``seen`` when the best of surface and pattern token
coverage at the smallest n is ≥ ``seen`` (60 %), ``partial`` when ≥ ``partial``
(20 %), else ``novel`` (teach explicitly); ``unassessable`` when the whole example
has fewer tokens than the smallest n.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from probe import kernels

VERDICTS = ("seen", "partial", "novel", "unassessable")


@dataclass(frozen=True)
class Thresholds:
    """Every number a verdict depends on; embedded in every report."""

    max_docs: int = 10  # frequency-aware metrics ignore n-grams in more documents (GPT-3, lm-eval)
    seen: float = 0.6
    partial: float = 0.2
    gpt2: float = 0.5
    palm: float = 0.7
    llama2_dirty: float = 0.8
    llama2_clean: float = 0.2
    llama2_min_span: int = 10
    llama3: float = 0.5
    default_coverage: float = 0.5
    default_span: int = 20
    default_pattern: float = 0.8
    min_hash_matches: int = 2
    # dataset-side templates: an n-gram in more than template_examples examples AND more than
    # template_share of the scanned dataset's examples is a template of the dataset, not evidence of a leak
    template_examples: int = 10
    template_share: float = 0.01
    # low-information n-grams: at least this share of numbers / single Latin letters, or at most
    # low_info_distinct distinct tokens (number runs, "D D D D", option lists "A. 1 B. 2 C. 3")
    low_info_share: float = 0.75
    low_info_distinct: int = 2

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class NgramScores:
    """Metrics of one (field, view, n) for every example of a batch (arrays of len E)."""

    tokens: np.ndarray
    ngrams: np.ndarray
    matched: np.ndarray
    matched_rare: np.ndarray
    ngram_coverage: np.ndarray
    token_coverage: np.ndarray
    token_coverage_rare: np.ndarray
    span_coverage: np.ndarray  # tokens in matched spans >= llama2_min_span tokens
    longest: np.ndarray  # tokens
    longest_first: np.ndarray  # global token index (into the batch's tokens), -1 if none
    longest_last: np.ndarray
    longest_rare: np.ndarray
    max_count: np.ndarray
    median_count: np.ndarray
    max_docs: np.ndarray
    first_match: np.ndarray  # index (into the batch's n-grams) where the longest match starts, -1
    # `default`'s evidence: rare matches that are neither dataset templates nor low-information
    # (None: no discount was given, the rare values stand)
    matched_evidence: np.ndarray | None = None
    token_coverage_evidence: np.ndarray | None = None
    longest_evidence: np.ndarray | None = None
    template_token_share: np.ndarray | None = None  # matched tokens covered by template n-grams / matched
    estimate: bool = False  # from a sampled index: coverage is an estimate (see coverage_interval)

    def evidence(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(matches, token coverage, longest span) that count as evidence for `default`."""
        if self.matched_evidence is None:
            return self.matched_rare, self.token_coverage_rare, self.longest_rare
        return self.matched_evidence, self.token_coverage_evidence, self.longest_evidence


def _per_doc_sum(values: np.ndarray, doc_ends: np.ndarray) -> np.ndarray:
    """Sum of ``values`` within each document's [start, end) range (empty → 0)."""
    csum = np.concatenate(([0], np.cumsum(values, dtype=np.int64)))
    starts = np.concatenate(([0], doc_ends[:-1])) if doc_ends.shape[0] else doc_ends
    return csum[doc_ends] - csum[starts]


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.zeros(num.shape[0], dtype=np.float64)
    ok = den > 0
    out[ok] = num[ok] / den[ok]
    return out


def score_ngrams(
    counts: np.ndarray,
    docs: np.ndarray,
    positions: np.ndarray,
    ngram_doc_ends: np.ndarray,
    doc_token_ends: np.ndarray,
    n: int,
    thresholds: Thresholds,
    discount: np.ndarray | None = None,
    template: np.ndarray | None = None,
    sample_mod: int = 1,
) -> NgramScores:
    """Coverage, spans and frequency statistics of one field at one n, for a batch.

    ``discount`` (one bool per n-gram) marks n-grams that are not evidence for `default`
    (dataset templates, low-information n-grams); ``template`` marks the dataset templates
    among them (for the per-example template share). With ``sample_mod`` K > 1 the n-grams are
    the sampled ones (hash % K == 0): token coverage is then *estimated* by the sampled
    n-grams' matched share (see :func:`coverage_interval`), because tokens between sampled
    positions are never looked up and counting only the sampled n-grams' tokens is biased low.
    """
    e = ngram_doc_ends.shape[0]
    tokens = np.diff(doc_token_ends, prepend=0)
    ngrams = np.diff(ngram_doc_ends, prepend=0)
    matched = counts > 0
    rare = matched & (docs <= thresholds.max_docs)
    n_matched = _per_doc_sum(matched, ngram_doc_ends)
    n_rare = _per_doc_sum(rare, ngram_doc_ends)
    best, first, last, covered, span_cov = kernels.field_spans(
        matched, positions, ngram_doc_ends, doc_token_ends, n, thresholds.llama2_min_span)
    best_r, _fr, _lr, covered_r, _sr = kernels.field_spans(
        rare, positions, ngram_doc_ends, doc_token_ends, n, thresholds.llama2_min_span)
    # max / median count and max docs over matched n-grams, per example
    doc_of_ngram = np.repeat(np.arange(e), ngrams)
    max_count = np.zeros(e, np.uint64)
    max_docs = np.zeros(e, np.uint64)
    median = np.zeros(e, np.float64)
    if matched.any():
        mi = doc_of_ngram[matched]
        mc = counts[matched]
        np.maximum.at(max_count, mi, mc)
        np.maximum.at(max_docs, mi, docs[matched])
        order = np.lexsort((mc, mi))
        mi_s, mc_s = mi[order], mc[order].astype(np.float64)
        starts = np.searchsorted(mi_s, np.arange(e), "left")
        ends = np.searchsorted(mi_s, np.arange(e), "right")
        has = ends > starts
        lo = (starts + ends - 1) // 2
        hi = (starts + ends) // 2
        median[has] = (mc_s[lo[has]] + mc_s[hi[has]]) / 2
    # where the longest match starts, as an n-gram index (for provenance lookups)
    first_match = np.full(e, -1, np.int64)
    has_best = first >= 0
    if has_best.any():
        # n-gram whose position equals the span's first token, within the example
        ng_starts = np.concatenate(([0], ngram_doc_ends[:-1]))
        for d in np.nonzero(has_best)[0]:  # per flagged example, not per n-gram
            lo_, hi_ = ng_starts[d], ngram_doc_ends[d]
            k = np.searchsorted(positions[lo_:hi_], first[d])
            first_match[d] = lo_ + k
    extra: dict[str, Any] = {}
    sampled = sample_mod > 1
    if discount is not None:
        evidence = rare & ~discount
        best_e, _fe, _le, covered_e, _se = kernels.field_spans(
            evidence, positions, ngram_doc_ends, doc_token_ends, n, thresholds.llama2_min_span)
        n_evidence = _per_doc_sum(evidence, ngram_doc_ends)
        extra["matched_evidence"] = n_evidence
        extra["token_coverage_evidence"] = (_ratio(n_evidence, ngrams) if sampled
                                            else _ratio(_per_doc_sum(covered_e, doc_token_ends), tokens))
        extra["longest_evidence"] = best_e
    if template is not None:
        _bt, _ft, _lt, covered_t, _st = kernels.field_spans(
            matched & template, positions, ngram_doc_ends, doc_token_ends, n, thresholds.llama2_min_span)
        extra["template_token_share"] = _ratio(_per_doc_sum(covered_t, doc_token_ends),
                                               _per_doc_sum(covered, doc_token_ends))
    if sampled:  # the sampled n-grams are a uniform sample of the field's n-grams: their matched share
        token_coverage = _ratio(n_matched, ngrams)  # estimates the n-gram (≈ token) coverage unbiasedly
        token_coverage_rare = _ratio(n_rare, ngrams)
    else:
        token_coverage = _ratio(_per_doc_sum(covered, doc_token_ends), tokens)
        token_coverage_rare = _ratio(_per_doc_sum(covered_r, doc_token_ends), tokens)
    return NgramScores(
        tokens=tokens, ngrams=ngrams, matched=n_matched, matched_rare=n_rare,
        ngram_coverage=_ratio(n_matched, ngrams),
        token_coverage=token_coverage,
        token_coverage_rare=token_coverage_rare,
        span_coverage=_ratio(_per_doc_sum(span_cov, doc_token_ends), tokens),
        longest=best, longest_first=first, longest_last=last, longest_rare=best_r,
        max_count=max_count, median_count=median, max_docs=max_docs, first_match=first_match,
        estimate=sampled, **extra,
    )


def coverage_interval(matched: np.ndarray, sampled: np.ndarray, z: float = 1.96) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval (95 % by default) of a coverage estimated from sampled n-grams.

    Under ``sample_mod`` K the scan sees each n-gram with probability 1/K (a hash test, so
    independent of the text); ``matched / sampled`` estimates the field's matched share and the
    Wilson interval bounds it. With no sampled n-gram the interval is [0, 1] (nothing is known).
    """
    m = matched.astype(np.float64)
    k = sampled.astype(np.float64)
    lo = np.zeros(m.shape[0])
    hi = np.ones(m.shape[0])
    ok = k > 0
    p = m[ok] / k[ok]
    den = 1 + z * z / k[ok]
    centre = (p + z * z / (2 * k[ok])) / den
    half = z * np.sqrt(p * (1 - p) / k[ok] + z * z / (4 * k[ok] ** 2)) / den
    lo[ok] = np.clip(centre - half, 0.0, 1.0)
    hi[ok] = np.clip(centre + half, 0.0, 1.0)
    return lo, hi


def llama2_class(span_coverage: np.ndarray, tokens_ok: np.ndarray, thresholds: Thresholds) -> np.ndarray:
    """Llama-2's four-way label: clean / not clean / not dirty / dirty."""
    labels = np.where(span_coverage >= thresholds.llama2_dirty, "dirty",
                      np.where(span_coverage < thresholds.llama2_clean, "clean",
                               np.where(span_coverage >= 0.5, "not dirty", "not clean")))
    return np.where(tokens_ok, labels, "unassessable")


def verdicts(coverage: np.ndarray, assessable: np.ndarray, thresholds: Thresholds) -> np.ndarray:
    """seen / partial / novel from a coverage score; unassessable where too short."""
    v = np.where(coverage >= thresholds.seen, "seen", np.where(coverage >= thresholds.partial, "partial", "novel"))
    return np.where(assessable, v, "unassessable")
