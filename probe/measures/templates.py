"""Discounts of the n-gram evidence: dataset-side templates and low-information n-grams.

Two kinds of matched n-gram say "the model saw this *form*" rather than "the model saw this
item", so they count for coverage and the verdict but not as `default` contamination:

- **Templates of the scanned dataset.** An n-gram in many of the dataset's own examples
  (a shared 30-word question stem) is a template even when the corpus holds it in one
  document. The scan counts, in a first pass, how many examples hold each n-gram
  (:class:`DatasetNgramFrequency`); an n-gram in more than ``template_examples`` examples
  *and* more than ``template_share`` of them is a template.
- **Low-information n-grams**: mostly numbers or single Latin letters, or one or two distinct
  tokens (:func:`low_information`).

Memory of the first pass is bounded: a count-min sketch (depth 4, 2^22 uint32 counters per
view, 64 MiB) of per-example-distinct n-gram hashes. A count-min sketch never undercounts; it
overcounts an n-gram by about (n-gram occurrences in the dataset) / 2^22 per row, minimised
over 4 rows, so for datasets under ~10 M n-grams the counts are exact in practice, and an
n-gram can only be *wrongly* called a template when the dataset is far larger than that.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from probe import kernels
from probe.text.tokenizers import MASK_TOKENS

SKETCH_DEPTH = 4
SKETCH_BITS = 22
TOP_TEMPLATES = 20  # templates listed in summary.json (the most shared first)
_SKETCH_MULTIPLIERS = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9,
                                0xD6E8FEB86659FD93], dtype=np.uint64)
NUMBERS_KNOWN = 10_000  # digit strings 0..9999 are recognised as numbers by their token hash


def _token_hash(text: str, seed: int) -> int:
    return int(kernels.hash_codepoints(np.frombuffer(text.encode("utf-32-le"), np.uint32), seed))


@lru_cache(maxsize=8)
def low_information_token_hashes(seed: int) -> np.ndarray:
    """Sorted token hashes of low-information tokens: numbers 0–9999, single letters a–z, ``<num>``.

    The scan has token hashes, not token texts; a number token's hash is that of its digit
    string, so numbers up to 9999 (every step of "1 × 2 × … × 24", option values, years) are
    recognised; longer numbers are rarer and carry more information. The pattern view's
    ``<num>`` stands for any number.
    """
    texts = [str(i) for i in range(NUMBERS_KNOWN)] + [f"{i:02d}" for i in range(10)]
    texts += [chr(c) for c in range(ord("a"), ord("z") + 1)] + [MASK_TOKENS[0]]
    return np.unique(np.array([_token_hash(t, seed) for t in texts], dtype=np.uint64))


def low_information(token_hashes: np.ndarray, positions: np.ndarray, n: int, seed: int,
                    thresholds: Any) -> np.ndarray:
    """One bool per n-gram: mostly numbers/single letters, or at most ``low_info_distinct`` distinct tokens."""
    table = low_information_token_hashes(seed)
    k = np.searchsorted(table, token_hashes)
    token_low = table[np.minimum(k, table.shape[0] - 1)] == token_hashes
    min_low = max(1, int(np.ceil(thresholds.low_info_share * n)))
    return kernels.low_information_ngrams(token_hashes, token_low, positions, n, min_low,
                                          thresholds.low_info_distinct)


def _per_example_unique(hashes: np.ndarray, doc_ends: np.ndarray) -> np.ndarray:
    """The hashes of every document with repeats inside one document removed (one count per example)."""
    doc_of = np.repeat(np.arange(doc_ends.shape[0], dtype=np.int64), np.diff(doc_ends, prepend=0))
    order = np.lexsort((hashes, doc_of))  # by document, then hash (np.unique(axis=1) is ~5x slower)
    h, d = hashes[order], doc_of[order]
    first = np.ones(h.shape[0], bool)
    first[1:] = (h[1:] != h[:-1]) | (d[1:] != d[:-1])
    return h[first]


class DatasetNgramFrequency:
    """How many examples of the scanned dataset hold each n-gram (count-min sketch, bounded memory)."""

    def __init__(self) -> None:
        self.table = np.zeros((SKETCH_DEPTH, 1 << SKETCH_BITS), np.uint32)
        self.examples = 0

    def _rows(self, hashes: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            mixed = hashes[None, :] * _SKETCH_MULTIPLIERS[:, None]
        return (mixed >> np.uint64(64 - SKETCH_BITS)).astype(np.int64)

    def observe(self, hashes: np.ndarray, doc_ends: np.ndarray) -> None:
        """Count each document's distinct n-grams once (the documents are examples)."""
        self.examples += int(doc_ends.shape[0])
        if hashes.shape[0] == 0:
            return
        kernels.count_into(self.table, self._rows(_per_example_unique(hashes, doc_ends)))

    def counts(self, hashes: np.ndarray) -> np.ndarray:
        """Estimated examples holding each hash (never below the true count)."""
        if hashes.shape[0] == 0:
            return np.zeros(0, np.uint32)
        rows = self._rows(hashes)
        return np.min(np.stack([self.table[d][rows[d]] for d in range(SKETCH_DEPTH)]), axis=0)

    def templates(self, hashes: np.ndarray, thresholds: Any) -> tuple[np.ndarray, np.ndarray]:
        """(is template, examples holding it) per hash: above both the absolute and the relative threshold."""
        counts = self.counts(hashes)
        floor = max(thresholds.template_examples, thresholds.template_share * self.examples)
        return counts > floor, counts


@dataclass
class TemplateRecord:
    text: str  # a run of consecutive template n-grams of one example (normalized text)
    view: str
    examples: int  # examples of the dataset holding its n-grams (the fewest; sketch estimate, never low)
    corpus_docs: int  # corpus documents holding its n-grams (the most, from the index)


class TemplateList:
    """The most shared templates of a scan (top ``TOP_TEMPLATES`` by examples), for summary.json."""

    def __init__(self) -> None:
        self.by_text: dict[tuple[str, str], TemplateRecord] = {}

    def add(self, view: str, examples: int, corpus_docs: int, text: str) -> None:
        """One run of template n-grams; the same text found in several examples is listed once."""
        key = (view, text)
        if key not in self.by_text:
            self.by_text[key] = TemplateRecord(text, view, examples, corpus_docs)
            if len(self.by_text) > 4 * TOP_TEMPLATES:  # keep memory bounded: drop the least shared
                keep = heapq.nlargest(TOP_TEMPLATES, self.by_text.items(), key=lambda kv: kv[1].examples)
                self.by_text = dict(keep)

    def to_list(self) -> list[dict[str, Any]]:
        top = heapq.nlargest(TOP_TEMPLATES, self.by_text.values(), key=lambda r: (r.examples, r.text))
        return [{"text": r.text, "view": r.view, "examples": r.examples, "corpus_docs": r.corpus_docs}
                for r in top]
