"""Chat-template and role markers, removed from dataset text before matching.

Why: ``<|im_start|>``, ``[INST]`` or an Alpaca ``### Response:`` header is in millions of
corpus documents, so left in a dataset field it would create n-gram hits of its own and
make every templated example look contaminated. Each marker becomes a newline, so words
on either side never merge.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from probe.errors import ConfigError

__all__ = ["DEFAULT_MARKER_LITERALS", "DEFAULT_TEMPLATE_MARKERS", "compile_markers", "strip_template_markers"]


def _phrase(words: str) -> str:
    """A literal phrase as a regex whose spaces also match line breaks and runs of spaces."""
    return r"\s+".join(re.escape(w) for w in words.split(" "))


DEFAULT_TEMPLATE_MARKERS: tuple[str, ...] = (
    # ChatML (OpenAI, Qwen, Yi, ...), with the role word that follows the start tag.
    r"<\|im_start\|>(?:[ \t]*(?:system|user|assistant|tool|function)\b)?",
    r"<\|im_end\|>",
    r"<\|endoftext\|>",
    # Llama 2 / Mistral.
    r"\[/?INST\]",
    r"<</?SYS>>",
    r"</?s>",
    # Llama 3: the whole header, role included.
    r"<\|begin_of_text\|>",
    r"<\|end_of_text\|>",
    r"<\|start_header_id\|>[^<\n]{0,32}<\|end_header_id\|>",
    r"<\|eot_id\|>",
    # Zephyr / TULU / Phi-3 role tags.
    r"<\|(?:system|user|assistant|end)\|>",
    # Gemma.
    r"<start_of_turn>(?:user|model|system)?",
    r"<end_of_turn>",
    # Alpaca preambles (with and without input), then its section headers at line starts.
    _phrase("Below is an instruction that describes a task")
    + r"(?:,\s+"
    + _phrase("paired with an input that provides further context")
    + r")?\.\s+"
    + _phrase("Write a response that appropriately completes the request."),
    r"^[ \t]*###[ \t]*(?:Instruction|Input|Response|Human|Assistant|System)[ \t]*:",
    # Vicuna system prompts (v0 says "human", v1.1 "user"), and role prefixes at line starts
    # (upper case only, as Vicuna writes them; "the user: said" is prose).
    _phrase("A chat between a curious")
    + r"\s+(?:user|human)\s+"
    + _phrase("and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite")
    + r"\s+"
    + _phrase("answers to the")
    + r"\s+(?:user|human)'s\s+questions\.",
    r"^[ \t]*(?:USER|ASSISTANT)[ \t]*:",
)

# Every default marker contains one of these literally: a text without any of them has no
# marker, and a few substring searches (C speed) spare the regex scan of ordinary text.
DEFAULT_MARKER_LITERALS: tuple[str, ...] = ("<", "[", "###", "Below", "curious", "USER", "ASSISTANT")


_BLANK_RUNS = re.compile(r"\n(?:[ \t]*\n)+")


@lru_cache(maxsize=16)
def compile_markers(markers: tuple[str, ...]) -> re.Pattern[str] | None:
    """One alternation for all markers, compiled once per marker set."""
    if not markers:
        return None
    try:
        # Spaces around a marker go with it: "a [/INST] b" -> "a\nb", not "a \n b".
        return re.compile("[ \t]*(?:" + "|".join(f"(?:{m})" for m in markers) + ")[ \t]*", re.MULTILINE)
    except re.error as e:
        raise ConfigError(f"invalid template marker regex: {e}") from e


def strip_template_markers(text: str, markers: Sequence[str] | re.Pattern[str] | None) -> str:
    """Remove chat-template and role markers so templates cannot create n-gram hits.

    Each marker becomes a newline (so ``foo<|im_end|>bar`` does not merge into one word), then
    runs of blank lines collapse and the ends are trimmed. Text without any marker is returned
    unchanged, so character offsets into ordinary fields stay exact.
    """
    pattern = (
        markers if isinstance(markers, re.Pattern) or markers is None else compile_markers(tuple(markers))
    )
    if pattern is None:
        return text
    if pattern is compile_markers(DEFAULT_TEMPLATE_MARKERS) and not any(
            literal in text for literal in DEFAULT_MARKER_LITERALS):
        return text
    stripped, count = pattern.subn("\n", text)
    if not count:
        return text
    # A removal can expose a new line-start marker ("[INST]USER: hi"); repeat (bounded, in case
    # a custom marker matches the empty string) so that stripping is idempotent.
    for _ in range(8):
        stripped, count = pattern.subn("\n", stripped)
        if not count:
            break
    return _BLANK_RUNS.sub("\n\n", stripped).strip()

