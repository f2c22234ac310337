"""Contamination definitions as registered objects: name, the n it judges at, citation, predicate.

Each definition is one :class:`Definition` in a registry. The scan asks every selected
definition which n it needs (:meth:`Definition.judge_n`): when the index lacks it the
definition is *unavailable* (with the reason, never a silent 0); otherwise its
predicate turns the per-field n-gram metrics of the scan's target field into one
boolean per example, and examples with no n-gram of that n are null (not "clean").
Adding a definition is one :func:`register_definition` call; nothing in the scan
changes.

Built-in definitions (all judge the scan's target field, the whole example by default,
tokenized by the index's tokenizer):

- ``gpt2``  (Radford et al. 2019, §4 "Generalization vs Memorization"): share of the
  example's 8-grams found in the corpus; flagged at ≥ ``gpt2`` (default 50 %).
- ``gpt3``  (Brown et al. 2020, App. C): any 13-gram overlap, ignoring 13-grams that
  occur in more than ``max_docs`` (10) training documents.
- ``palm``  (Chowdhery et al. 2022, §8): ≥ 70 % of the example's 8-grams occur in the
  corpus.
- ``gpt4``  (OpenAI 2023, App. C): three 50-character substrings (spaces and symbols
  removed) sampled from the example (the whole example if shorter); any match.
  Needs an index built with ``--tokenizer chars --n 50``; otherwise unavailable.
- ``llama2`` (Touvron et al. 2023, App. A.6): share of tokens inside matched spans of
  ≥ 10 tokens; "dirty" at ≥ 80 % (flagged), "clean" below 20 %. Judged at the largest
  index n ≤ ``llama2_min_span``.
- ``llama3`` (Dubey et al. 2024, §5.1.4): share of tokens inside matched 8-grams;
  flagged at ≥ ``llama3`` (default 50 %; Meta tunes it per benchmark).
- ``lmeval`` (lm-evaluation-harness decontamination): any 13-gram overlap.
- ``default`` (ours): at the smallest n, either at least ``min_hash_matches`` (2)
  *rare* matched surface n-grams (found in ≤ ``max_docs`` documents) with rare token
  coverage ≥ 50 % or a rare matched span ≥ 20 tokens; or (pattern view) at least 2
  rare matched pattern n-grams with rare pattern token coverage ≥ 80 %. Rationale:
  requiring rare n-grams ignores boilerplate and templates; two hash matches make a
  64-bit collision negligible (≈1e-9 per 1,000-n-gram field); coverage or a long span
  catches verbatim and lightly edited items, the pattern view catches items with
  swapped numbers and names.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from probe.errors import ConfigError

if TYPE_CHECKING:
    from probe.config import TextSpec
    from probe.scoring import NgramScores, Thresholds


@dataclass(frozen=True)
class Evidence:
    """What a definition's predicate may read: the target field's metrics per view and n."""

    surface: dict[int, NgramScores]
    pattern: dict[int, NgramScores] | None
    windows50: NgramScores | None  # GPT-4's three sampled 50-char windows (chars index with n=50)
    thresholds: Thresholds


@dataclass(frozen=True)
class Definition:
    """One published (or our own) contamination definition.

    ``judge_n`` returns the n-gram size the definition is judged at for an index of these
    n values and this spec, or None when the index cannot support it (``needs`` then says
    what it lacks). ``predicate`` returns one boolean per example of a batch.
    """

    name: str
    citation: str
    rule: str  # one sentence: what is flagged
    needs: str  # why it is unavailable when judge_n is None; ``{th.<threshold>}`` is filled in
    judge_n: Callable[[Sequence[int], TextSpec, Thresholds], int | None]
    predicate: Callable[[Evidence, int], np.ndarray]
    # why it cannot be computed from a sampled index (sample_mod > 1); None: it can, as an estimate
    not_from_sample: str | None = None


_REGISTRY: dict[str, Definition] = {}


def register_definition(definition: Definition, *, replace: bool = False) -> Definition:
    """Add a definition to the registry (every later scan can compute it)."""
    if definition.name in _REGISTRY and not replace:
        raise ConfigError(f"a definition named {definition.name!r} is already registered")
    if not definition.name.isidentifier():
        raise ConfigError(f"definition name {definition.name!r} must be an identifier (it names a column)")
    _REGISTRY[definition.name] = definition
    return definition


def unregister_definition(name: str) -> None:
    """Remove a definition (tests that register a toy one clean up with this)."""
    _REGISTRY.pop(name, None)


def definition_names() -> tuple[str, ...]:
    """Registered definition names, in registration order (built-ins first)."""
    return tuple(_REGISTRY)


def get_definition(name: str) -> Definition:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown definition {name!r}; choose from {', '.join(_REGISTRY)}") from None


@dataclass(frozen=True)
class Judgement:
    """Per-definition flags of one batch (null where the definition's n has no n-grams)."""

    flags: dict[str, np.ndarray]  # definition → bool per example (False where masked)
    masks: dict[str, np.ndarray]  # definition → True where the example is not judged (null)
    judged_at: dict[str, int]  # definition → n
    unavailable: dict[str, str]  # definition → why it cannot be computed from this index


def judge(names: Sequence[str], evidence: Evidence, spec: TextSpec, assessable: np.ndarray) -> Judgement:
    """Apply the named definitions to one batch's evidence."""
    ns = sorted(evidence.surface)
    flags: dict[str, np.ndarray] = {}
    masks: dict[str, np.ndarray] = {}
    judged_at: dict[str, int] = {}
    unavailable: dict[str, str] = {}
    for name in names:
        d = get_definition(name)
        if spec.sample_mod > 1 and d.not_from_sample is not None:
            unavailable[name] = (f"cannot be computed from a sampled index (sample_mod {spec.sample_mod}): "
                                 f"{d.not_from_sample}; build the index with sample_mod 1")
            continue
        n = d.judge_n(ns, spec, evidence.thresholds)
        if n is None or n not in evidence.surface:
            unavailable[name] = d.needs.format(th=evidence.thresholds)
            continue
        has_ngrams = evidence.surface[n].ngrams > 0
        flags[name] = np.asarray(d.predicate(evidence, n), bool) & has_ngrams & assessable
        masks[name] = ~has_ngrams
        judged_at[name] = n
    return Judgement(flags, masks, judged_at, unavailable)


# --------------------------------------------------------------------------- built-ins
def _fixed(n: int) -> Callable[[Sequence[int], TextSpec, Thresholds], int | None]:
    return lambda ns, _spec, _th: n if n in ns else None


def _smallest(ns: Sequence[int], _spec: TextSpec, _th: Thresholds) -> int | None:
    return min(ns) if ns else None


def llama2_n(ns: Sequence[int], _spec: TextSpec | None, thresholds: Thresholds) -> int | None:
    """Llama-2 judges spans of ≥ llama2_min_span tokens: the largest index n not above that."""
    small = [n for n in ns if n <= thresholds.llama2_min_span]
    return max(small) if small else None


def _gpt4_n(ns: Sequence[int], spec: TextSpec, _th: Thresholds) -> int | None:
    return 50 if spec.tokenizer == "chars" and 50 in ns else None


def _default(ev: Evidence, n: int) -> np.ndarray:
    th = ev.thresholds
    # evidence = rare matches that are neither templates of the dataset nor low-information
    # (probe.measures.templates); on a sampled index coverage is the sampled estimate
    s = ev.surface[n]
    matched, coverage, longest = s.evidence()
    # on a sampled index one sampled match stands for ~sample_mod matched n-grams (and a 64-bit hash
    # collision is ~5e-11 per lookup): one is enough, or short items could never be judged
    need = 1 if s.estimate else th.min_hash_matches
    hit = (matched >= need) & ((coverage >= th.default_coverage) | (longest >= th.default_span))
    if ev.pattern is not None and n in ev.pattern:
        # the pattern branch stands on its own rare matches: swapped numbers and names
        # can leave fewer than two rare *surface* matches in a short item
        p_matched, p_coverage, _p_longest = ev.pattern[n].evidence()
        hit |= (p_matched >= need) & (p_coverage >= th.default_pattern)
    return hit


def _gpt4(ev: Evidence, _n: int) -> np.ndarray:
    if ev.windows50 is None:  # judge_n already required a chars index with n=50
        raise ConfigError("gpt4 needs the sampled 50-character windows of the target field")
    return ev.windows50.matched >= 1


_SPANS = ("it counts runs of consecutive matched n-grams, and a sample never holds consecutive n-grams "
          "(tokens between sampled positions are not looked up)")
_ANY_OVERLAP = "'any overlap' needs every n-gram looked up; a sample sees each n-gram with probability 1/sample_mod"

BUILTIN_DEFINITIONS = (
    Definition("default", "probe (this project): rare-n-gram coverage or span, with a pattern-view branch",
               "≥ 2 rare matched n-grams at the smallest n with rare coverage ≥ 50 % or a rare span ≥ 20 "
               "tokens (or rare pattern coverage ≥ 80 %)", "needs an n-gram size in the index",
               _smallest, _default),
    Definition("gpt2", "Radford et al. 2019, §4", "≥ 50 % of the 8-grams found", "needs n=8 in the index",
               _fixed(8), lambda ev, n: ev.surface[n].ngram_coverage >= ev.thresholds.gpt2),
    Definition("gpt3", "Brown et al. 2020, App. C", "any 13-gram found in ≤ max_docs documents",
               "needs n=13 in the index", _fixed(13), lambda ev, n: ev.surface[n].matched_rare >= 1, _ANY_OVERLAP),
    Definition("palm", "Chowdhery et al. 2022, §8", "≥ 70 % of the 8-grams found", "needs n=8 in the index",
               _fixed(8), lambda ev, n: ev.surface[n].ngram_coverage >= ev.thresholds.palm),
    Definition("gpt4", "OpenAI 2023, App. C", "any of three sampled 50-character substrings found",
               "needs an index built with --tokenizer chars --n 50", _gpt4_n, _gpt4, _ANY_OVERLAP),
    Definition("llama2", "Touvron et al. 2023, App. A.6", "≥ 80 % of tokens in matched spans ≥ 10 tokens",
               "needs an n <= {th.llama2_min_span} in the index", llama2_n,
               lambda ev, n: ev.surface[n].span_coverage >= ev.thresholds.llama2_dirty, _SPANS),
    Definition("llama3", "Dubey et al. 2024, §5.1.4", "≥ 50 % of tokens inside matched 8-grams",
               "needs n=8 in the index", _fixed(8),
               lambda ev, n: ev.surface[n].token_coverage >= ev.thresholds.llama3),
    Definition("lmeval", "lm-evaluation-harness decontamination", "any 13-gram found",
               "needs n=13 in the index", _fixed(13), lambda ev, n: ev.surface[n].matched >= 1, _ANY_OVERLAP),
)
for _d in BUILTIN_DEFINITIONS:
    register_definition(_d)
DEFINITIONS = tuple(d.name for d in BUILTIN_DEFINITIONS)  # the built-ins (definition_names() adds registered)
