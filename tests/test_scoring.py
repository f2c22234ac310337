"""Scoring: per-field metrics against a plain-Python oracle, the definitions and verdicts at their boundaries.

The oracle below is written from the definitions in docs/scan-output.md and the
docstring of :mod:`probe.scoring`, one document at a time with Python sets and
lists, so a disagreement points at the vectorized code, not at the test.
"""

from __future__ import annotations

import statistics
from dataclasses import MISSING, dataclass, fields, replace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from probe.config import TextSpec
from probe.definitions import DEFINITIONS, Evidence, judge
from probe.scoring import NgramScores, Thresholds, llama2_class, score_ngrams, verdicts


def contamination(surface: dict[int, NgramScores], pattern: dict[int, NgramScores] | None,
                  chars50: NgramScores | None, th: Thresholds) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The registry's judgement of one batch: (flags, unavailable), as the scan computes it."""
    surface = dict(surface)
    spec = TextSpec(ns=tuple(sorted(surface)))
    if chars50 is not None:  # GPT-4's windows exist only for a chars index with n=50
        surface.setdefault(50, chars50)
        spec = TextSpec(tokenizer="chars", ns=tuple(sorted(surface)))
    e = next(iter(surface.values())).ngrams.shape[0]
    result = judge(DEFINITIONS, Evidence(surface, pattern, chars50, th), spec, np.ones(e, bool))
    return result.flags, result.unavailable


# --------------------------------------------------------------------------- inputs and oracle
@dataclass
class Doc:
    """One field of one example: its token count and, per n-gram position, (count, docs)."""

    tokens: int
    grams: list[tuple[int, int]]  # (count, docs); count 0 = not found


def _arrays(docs: list[Doc]) -> tuple[np.ndarray, ...]:
    """The inputs of score_ngrams: n-grams at consecutive positions, global token indices."""
    counts, ndocs, positions, ngram_ends, token_ends = [], [], [], [], []
    tok_base = 0
    for d in docs:
        for j, (c, k) in enumerate(d.grams):
            counts.append(c)
            ndocs.append(k)
            positions.append(tok_base + j)
        tok_base += d.tokens
        ngram_ends.append(len(counts))
        token_ends.append(tok_base)
    return (np.array(counts, np.uint64), np.array(ndocs, np.uint64), np.array(positions, np.int64),
            np.array(ngram_ends, np.int64), np.array(token_ends, np.int64))


def _runs(flags: list[bool]) -> list[tuple[int, int]]:
    """Maximal runs [start, end] (inclusive) of True, in order."""
    runs, start = [], None
    for j, f in enumerate([*flags, False]):
        if f and start is None:
            start = j
        elif not f and start is not None:
            runs.append((start, j - 1))
            start = None
    return runs


def _longest(flags: list[bool], n: int) -> tuple[int, int, int]:
    """(span tokens, first token, last token) of the first longest run; (0, -1, -1) without one."""
    best = (0, -1, -1)
    for a, b in _runs(flags):
        span = b - a + n
        if span > best[0]:
            best = (span, a, b + n - 1)
    return best


def _covered(flags: list[bool], n: int) -> set[int]:
    return {t for j, f in enumerate(flags) if f for t in range(j, j + n)}


def _ratio(a: float, b: float) -> float:
    return a / b if b else 0.0


def oracle(docs: list[Doc], n: int, th: Thresholds) -> dict[str, list]:
    out: dict[str, list] = {f.name: [] for f in fields(NgramScores)}
    tok_base = ng_base = 0
    for d in docs:
        matched = [c > 0 for c, _ in d.grams]
        rare = [c > 0 and k <= th.max_docs for c, k in d.grams]
        ngrams = len(d.grams)
        span, first, last = _longest(matched, n)
        span_tokens = {t for a, b in _runs(matched) if b - a + n >= th.llama2_min_span for t in range(a, b + n)}
        hits = [(c, k) for c, k in d.grams if c > 0]
        out["tokens"].append(d.tokens)
        out["ngrams"].append(ngrams)
        out["matched"].append(sum(matched))
        out["matched_rare"].append(sum(rare))
        out["ngram_coverage"].append(_ratio(sum(matched), ngrams))
        out["token_coverage"].append(_ratio(len(_covered(matched, n)), d.tokens))
        out["token_coverage_rare"].append(_ratio(len(_covered(rare, n)), d.tokens))
        out["span_coverage"].append(_ratio(len(span_tokens), d.tokens))
        out["longest"].append(span)
        out["longest_first"].append(tok_base + first if span else -1)
        out["longest_last"].append(tok_base + last if span else -1)
        out["longest_rare"].append(_longest(rare, n)[0])
        out["max_count"].append(max((c for c, _ in hits), default=0))
        out["median_count"].append(float(statistics.median(c for c, _ in hits)) if hits else 0.0)
        out["max_docs"].append(max((k for _, k in hits), default=0))
        out["first_match"].append(ng_base + first if span else -1)
        tok_base += d.tokens
        ng_base += ngrams
    return out


@st.composite
def batches(draw: st.DrawFn) -> tuple[list[Doc], int, Thresholds]:
    n = draw(st.sampled_from([1, 2, 3, 8]))
    th = Thresholds(llama2_min_span=draw(st.sampled_from([2, 5, 10])))
    docs = []
    for _ in range(draw(st.integers(0, 5))):
        tokens = draw(st.integers(0, 24))  # includes empty documents and documents shorter than n
        grams = []
        for _ in range(max(0, tokens - n + 1)):
            if draw(st.booleans()):
                count = draw(st.integers(1, 40))
                grams.append((count, draw(st.integers(1, min(count, 20)))))  # docs <= count, both sides of 10
            else:
                grams.append((0, 0))
        docs.append(Doc(tokens, grams))
    return docs, n, th


# --------------------------------------------------------------------------- score_ngrams
@given(batches())
def test_score_ngrams_matches_the_oracle(batch: tuple[list[Doc], int, Thresholds]) -> None:
    docs, n, th = batch
    got = score_ngrams(*_arrays(docs), n, th)
    want = oracle(docs, n, th)
    for f in fields(NgramScores):
        if f.default is not MISSING:  # the discounted evidence: see the test below
            continue
        values = getattr(got, f.name)
        assert values.shape == (len(docs),), f.name
        if values.dtype.kind == "f":
            np.testing.assert_allclose(values, want[f.name], rtol=1e-12, atol=0, err_msg=f.name)
        else:
            assert values.tolist() == want[f.name], f.name


@given(batches())
def test_discounted_ngrams_are_not_evidence(batch: tuple[list[Doc], int, Thresholds]) -> None:
    docs, n, th = batch
    args = _arrays(docs)
    m = args[0].shape[0]
    plain = score_ngrams(*args, n, th)
    kept = score_ngrams(*args, n, th, discount=np.zeros(m, bool))
    assert [a.tolist() for a in kept.evidence()] == [
        plain.matched_rare.tolist(), plain.token_coverage_rare.tolist(), plain.longest_rare.tolist()]
    gone = score_ngrams(*args, n, th, discount=np.ones(m, bool), template=np.ones(m, bool))
    assert all(not a.any() for a in gone.evidence())
    # rare (frequency-only) values are untouched: gpt3 reads them
    assert gone.matched_rare.tolist() == plain.matched_rare.tolist()
    assert gone.template_token_share.tolist() == [1.0 if x > 0 else 0.0 for x in plain.matched.tolist()]


@given(batches())
def test_first_match_is_the_ngram_where_the_longest_span_starts(batch: tuple[list[Doc], int, Thresholds]) -> None:
    docs, n, th = batch
    counts, _docs, positions, *_ = args = _arrays(docs)
    got = score_ngrams(*args, n, th)
    for i in np.nonzero(got.first_match >= 0)[0]:
        k = got.first_match[i]
        assert positions[k] == got.longest_first[i]
        assert counts[k] > 0
        assert got.longest_last[i] - got.longest_first[i] + 1 == got.longest[i]


def test_documents_shorter_than_n_and_empty_ones_score_zero() -> None:
    th = Thresholds()
    docs = [Doc(0, []), Doc(7, []), Doc(8, [(3, 1)]), Doc(0, [])]
    got = score_ngrams(*_arrays(docs), 8, th)
    assert got.tokens.tolist() == [0, 7, 8, 0]
    assert got.ngrams.tolist() == [0, 0, 1, 0]  # ngrams == 0: the scan calls these unassessable
    assert got.ngram_coverage.tolist() == [0.0, 0.0, 1.0, 0.0]
    assert got.token_coverage.tolist() == [0.0, 0.0, 1.0, 0.0]
    assert got.longest.tolist() == [0, 0, 8, 0]
    assert got.longest_first.tolist() == [-1, -1, 7, -1]  # global token index: the 7 tokens of doc 1 come first
    assert got.longest_last.tolist() == [-1, -1, 14, -1]


def test_an_empty_batch() -> None:
    got = score_ngrams(*_arrays([]), 8, Thresholds())
    assert all(getattr(got, f.name).shape == (0,) for f in fields(NgramScores) if f.default is MISSING)


def test_frequent_ngrams_count_for_coverage_but_not_for_the_rare_variants() -> None:
    th = Thresholds(max_docs=10)
    # 12 tokens, n=3: ten n-grams, all matched; the first five in 11 documents (boilerplate)
    docs = [Doc(12, [(50, 11)] * 5 + [(2, 10)] * 5)]
    got = score_ngrams(*_arrays(docs), 3, th)
    assert got.token_coverage[0] == 1.0 and got.longest[0] == 12
    assert got.matched_rare[0] == 5 and got.longest_rare[0] == 7
    assert got.token_coverage_rare[0] == pytest.approx(7 / 12)
    assert (got.max_count[0], got.median_count[0], got.max_docs[0]) == (50, 26.0, 11)


# --------------------------------------------------------------------------- contamination
def scores(e: int = 1, **values: object) -> NgramScores:
    """Hand-made NgramScores: every array zero except the given ones (scalars broadcast)."""
    base = {}
    for f in fields(NgramScores):
        if f.default is not MISSING:
            continue  # no discount given: `default` reads the rare values
        kind = np.float64 if f.name.endswith(("coverage", "coverage_rare")) or f.name == "median_count" else np.int64
        base[f.name] = np.zeros(e, kind)
    base["ngrams"] = np.full(e, 10, np.int64)
    base["tokens"] = np.full(e, 20, np.int64)
    for k, v in values.items():
        base[k] = np.broadcast_to(np.asarray(v, base[k].dtype), (e,)).copy()
    return NgramScores(**base)


def flags(surface: dict[int, NgramScores], pattern: dict[int, NgramScores] | None = None,
          chars50: NgramScores | None = None, th: Thresholds | None = None) -> dict[str, list[bool]]:
    out, _ = contamination(surface, pattern, chars50, th or Thresholds())
    return {k: v.tolist() for k, v in out.items()}


def test_palm_and_gpt2_are_inclusive_at_their_thresholds() -> None:
    s8 = scores(3, ngram_coverage=[0.7, 0.69999, 0.5], ngrams=10)
    got = flags({8: s8, 13: scores(3)})
    assert got["palm"] == [True, False, False]  # exactly 0.7 is flagged
    assert got["gpt2"] == [True, True, True]  # >= 0.5
    assert flags({8: scores(1, ngram_coverage=0.49999)})["gpt2"] == [False]
    assert flags({8: scores(1, ngram_coverage=7 / 10)})["palm"] == [True]


def test_llama3_reads_token_coverage_at_n8() -> None:
    got = flags({8: scores(3, token_coverage=[0.5, 0.49999, 1.0], ngram_coverage=0.0)})
    assert got["llama3"] == [True, False, True]


def test_llama2_uses_span_coverage_at_the_largest_n_up_to_min_span() -> None:
    s8 = scores(3, span_coverage=[0.8, 0.79999, 0.0])
    s5 = scores(3, span_coverage=[0.0, 1.0, 1.0])
    got = flags({5: s5, 8: s8, 13: scores(3, span_coverage=1.0)})
    assert got["llama2"] == [True, False, False]  # n=8 decides (the largest n <= 10), not 5 or 13


def test_gpt3_ignores_13grams_in_more_than_max_docs_documents_and_lmeval_does_not() -> None:
    th = Thresholds(max_docs=10)
    for docs, gpt3 in [(10, True), (11, False)]:
        # one matched 13-gram (positions 0..12 of a 20-token field) found in `docs` documents
        s13 = score_ngrams(*_arrays([Doc(20, [(docs + 5, docs)] + [(0, 0)] * 7)]), 13, th)
        got = flags({8: scores(1), 13: s13}, th=th)
        assert (got["gpt3"], got["lmeval"]) == ([gpt3], [True]), docs
    got = flags({13: scores(2, matched=[0, 1], matched_rare=[0, 0])})
    assert (got["gpt3"], got["lmeval"]) == ([False, False], [False, True])


def test_default_needs_two_rare_matches_and_coverage_or_a_long_span_or_pattern() -> None:
    th = Thresholds()
    s = scores(9, matched_rare=[2, 1, 2, 2, 2, 5, 2, 1, 2],
               token_coverage_rare=[0.5, 1.0, 0.49999, 0.0, 0.0, 0.1, 0.0, 0.0, 0.0],
               longest_rare=[0, 30, 19, 20, 0, 0, 0, 0, 0])
    pattern = scores(9, matched_rare=[0, 0, 0, 0, 2, 2, 0, 2, 1],
                     token_coverage_rare=[0, 0, 0, 0, 0.8, 0.79999, 0.0, 0.9, 0.9])
    got = flags({8: s, 13: scores(9)}, {8: pattern, 13: scores(9)}, th=th)
    # coverage 0.5 | one rare match only | below both | span exactly 20 | pattern 0.8 | pattern just below |
    # nothing | pattern branch on its own two rare matches (one rare surface match) | one rare pattern match
    assert got["default"] == [True, False, False, True, True, False, False, True, False]
    # without the pattern view the pattern clause cannot fire
    assert flags({8: s, 13: scores(9)}, None, th=th)["default"] == [True, False, False, True, False, False, False,
                                                                    False, False]


def test_default_reads_the_smallest_n_and_nothing_on_unassessable_fields() -> None:
    s13 = scores(1, matched_rare=5, token_coverage_rare=1.0)
    assert flags({8: scores(1), 13: s13})["default"] == [False]
    assert flags({8: scores(1, matched_rare=5, token_coverage_rare=1.0, ngrams=0)})["default"] == [False]


def test_gpt4_needs_a_chars50_score_and_fires_on_any_match() -> None:
    s = {8: scores(2), 13: scores(2)}
    out, unavailable = contamination(s, None, None, Thresholds())
    assert "gpt4" not in out and "chars" in unavailable["gpt4"] and "50" in unavailable["gpt4"]
    assert flags(s, chars50=scores(2, matched=[0, 1]))["gpt4"] == [False, True]


@pytest.mark.parametrize(("ns", "missing"), [
    ((8,), {"gpt3": "n=13", "lmeval": "n=13"}),
    ((13,), {"gpt2": "n=8", "palm": "n=8", "llama3": "n=8", "llama2": "n <= 10"}),
    ((8, 13), {}),
    ((50,), {"gpt2": "n=8", "palm": "n=8", "llama3": "n=8", "llama2": "n <= 10", "gpt3": "n=13", "lmeval": "n=13"}),
])
def test_unavailable_definitions_say_why(ns: tuple[int, ...], missing: dict[str, str]) -> None:
    out, unavailable = contamination({n: scores(1) for n in ns}, None, None, Thresholds())
    assert set(unavailable) == {*missing, "gpt4"}
    for name, needle in missing.items():
        assert needle in unavailable[name], (name, unavailable[name])
    assert set(out) | set(unavailable) == set(DEFINITIONS)
    assert not set(out) & set(unavailable)
    assert all(v.dtype == bool for v in out.values())


# --------------------------------------------------------------------------- verdicts and llama2 classes
def test_verdict_boundaries() -> None:
    th = Thresholds()
    cov = np.array([1.0, 0.6, 0.59999, 0.2, 0.19999, 0.0, 1.0])
    ok = np.array([True, True, True, True, True, True, False])
    assert verdicts(cov, ok, th).tolist() == ["seen", "seen", "partial", "partial", "novel", "novel",
                                              "unassessable"]
    custom = replace(th, seen=0.9, partial=0.5)
    assert verdicts(np.array([0.9, 0.89, 0.5, 0.49]), np.ones(4, bool), custom).tolist() == [
        "seen", "partial", "partial", "novel"]


def test_unassessable_is_never_clean() -> None:
    th = Thresholds()
    cov = np.array([0.0, 0.0])
    assert verdicts(cov, np.array([False, True]), th).tolist() == ["unassessable", "novel"]
    assert llama2_class(cov, np.array([False, True]), th).tolist() == ["unassessable", "clean"]


def test_llama2_class_boundaries() -> None:
    th = Thresholds()
    span = np.array([0.8, 0.79999, 0.5, 0.49999, 0.2, 0.19999, 0.0])
    assert llama2_class(span, np.ones(7, bool), th).tolist() == [
        "dirty", "not dirty", "not dirty", "not clean", "not clean", "clean", "clean"]
