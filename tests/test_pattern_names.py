"""Tokenizer rules 3: the pattern view masks capitalized sentence-initial words that are not common starters.

Under rules 2 a sentence-initial word was only lowercased, so "French people don't …" and the
swapped "Priya people don't …" differed in the pattern view (TruthfulQA 171 and 38 in the planted
benchmark scored 0). Rules 3 mask it as ``<name>`` unless it is a common sentence starter
(``probe.text.tokenizers.SENTENCE_STARTERS``); the surface view does not change.
"""

from __future__ import annotations

import pytest

from probe.config import TextSpec
from probe.text.tokenizers import MASK_TOKENS, Tokenizer, mask_hashes


def _pattern(text: str, rules: int) -> list[int]:
    return Tokenizer(TextSpec(views=("surface", "pattern"), tokenizer_rules=rules)).tokenize(
        [text], "pattern").token_hashes.tolist()


def test_a_swapped_sentence_initial_name_has_the_same_pattern_under_rules_3() -> None:
    a, b = "French people don't eat snails. Why?", "Priya people don't eat snails. Why?"
    assert _pattern(a, 2) != _pattern(b, 2)
    assert _pattern(a, 3) == _pattern(b, 3)
    name = int(mask_hashes(0)[MASK_TOKENS.index("<name>")])
    assert _pattern(a, 3)[0] == name


@pytest.mark.parametrize("text", ["The cat sat on the mat today", "Which of these is true? What is it?",
                                  "Find the value of x in the equation"])
def test_common_sentence_starters_are_kept(text: str) -> None:
    assert _pattern(text, 3) == _pattern(text, 2)


def test_the_surface_view_is_the_same_under_rules_2_and_3() -> None:
    text = "French people don't eat snails. Priya does."
    s2 = Tokenizer(TextSpec(tokenizer_rules=2)).tokenize([text]).token_hashes.tolist()
    s3 = Tokenizer(TextSpec(tokenizer_rules=3)).tokenize([text]).token_hashes.tolist()
    assert s2 == s3


def test_rules_3_pattern_hashes_golden() -> None:
    # pinned: a change of the starter list or of the rule changes every rules-3 pattern index
    assert _pattern("Priya said hello. The end", 3) == GOLDEN


GOLDEN = [3726302071822790640, 16956358596797553104, 16844978562278765124, 14645693024798636849,
          11403286434641368400]
