"""Fine-tuning and benchmark dataset adapters: files in, :class:`Example` batches out.

A dataset is read as a stream of records (JSONL, optionally ``.gz``/``.zst``; a JSON array;
Parquet; CSV/TSV). The first records are peeked to *detect* the layout (Alpaca, ShareGPT,
chat messages, prompt/completion, question/answer families, ...), which becomes a plan of
small "parts" that pull text out of each record into the canonical fields ``instruction``,
``input`` and ``response``. Detection is case-insensitive and handles nested objects and
lists, so every benchmark and instruction file in ``../shared/data`` loads without options;
``DatasetOptions.field_map`` (``--field instruction=COL``) and ``schema`` (``--schema``)
override it.

Why the care: the scanner reports per-field coverage, so which column feeds which field must
be explicit (:class:`DetectedSchema.mapping` says it in words), and no record may vanish
silently. Records with no text are skipped *and counted* in :class:`DatasetReadStats`;
malformed input raises :class:`~probe.errors.InputError` naming the file and line or row.
Chat-template markers are stripped so that ``<|im_start|>`` or ``### Response:`` never
create n-gram hits of their own. Dataset files are data: no pickle, no eval.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import chain, islice
from pathlib import Path
from typing import Any, BinaryIO

from probe.errors import ConfigError, InputError, NothingAssessableError

__all__ = [
    "DEFAULT_TEMPLATE_MARKERS",
    "FIELDS",
    "FORMATS",
    "SCHEMAS",
    "DatasetOptions",
    "DatasetReadStats",
    "DetectedSchema",
    "Example",
    "detect_schema",
    "read_examples",
    "strip_template_markers",
]

FIELDS: tuple[str, ...] = ("instruction", "input", "response")
"""Canonical fields. The scorer derives ``whole`` from them."""

SCHEMAS: tuple[str, ...] = (
    "messages",  # [{role, content}] lists
    "sharegpt",  # [{from, value}] lists
    "alpaca",  # instruction [+ input] + output, optionally history (LIMA) or context (Dolly)
    "self_instruct",  # instruction + instances[{input, output}]
    "prompt_completion",  # prompt + completion | response | chosen | canonical_solution ...
    "turns",  # MT-bench / Vicuna: turns[] [+ reference[]]
    "flan_template",  # input_template + target_template
    "niv2",  # definition + positive_examples
    "multirc",  # passage{text, questions[{question, answers[{text, label}]}]}
    "question_answer",  # question (+ choices, passage, rationale) + answer | answerKey | label
    "sentence_pair",  # premise/hypothesis, sentence1/sentence2 + label
    "input_target",  # input | goal + target (BBH, StrategyQA, AdvBench)
    "text",  # text | x | sentence (+ code | label | y)
    "fields",  # explicit DatasetOptions.field_map
)

FORMATS: tuple[str, ...] = ("jsonl", "json", "parquet", "csv", "tsv")


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

_SAMPLE_RECORDS = 50  # records peeked for detection
_MAX_SKIPPED_EXAMPLES = 20  # skipped-record descriptions kept in DatasetReadStats


# --------------------------------------------------------------------------- public types


@dataclass(frozen=True, slots=True)
class Example:
    """One dataset record as the scorer sees it."""

    id: str  # --id-field / detected id column, else the 1-based record number
    row: int  # 0-based record index in the file
    group: str | None  # value of the group column (subject, task, category, ...)
    fields: dict[str, str]  # subset of FIELDS -> text; missing and empty fields are absent


@dataclass(frozen=True)
class DatasetOptions:
    """How to read a dataset file. Defaults mean "detect everything"."""

    schema: str | None = None  # force one of SCHEMAS; None = auto-detect
    field_map: tuple[tuple[str, str], ...] = ()  # (canonical field, column or dotted path); repeats join
    id_field: str | None = None  # column holding the example id
    group_by: str | None = None  # column to group results by
    strip_templates: bool = True  # remove chat-template / role markers before matching
    template_markers: tuple[str, ...] = DEFAULT_TEMPLATE_MARKERS  # regexes, each replaced by a newline
    file_format: str | None = None  # one of FORMATS; None = by extension
    batch_size: int = 4096  # examples per yielded batch
    csv_field_size_limit: int = 16 << 20  # characters per CSV field (csv module default is 131,072)
    max_line_bytes: int = 64 << 20  # longest JSONL line accepted; bounds memory on hostile input


@dataclass(frozen=True)
class DetectedSchema:
    """The layout found (or forced) and, in words, which source columns feed which field."""

    name: str  # one of SCHEMAS
    mapping: dict[str, str]  # canonical field -> description, e.g. "question.stem + question.choices"
    id_field: str | None
    group_field: str | None


@dataclass
class DatasetReadStats:
    """Input accounting filled in while reading: every record is an example or a counted skip."""

    records: int = 0
    examples: int = 0
    skipped: int = 0
    skipped_reasons: dict[str, int] = field(default_factory=dict)
    skipped_examples: list[str] = field(default_factory=list)  # "file:line N: reason", first few
    schema: DetectedSchema | None = None
    ignored: dict[str, int] = field(default_factory=dict)  # parts left out: blank lines, tool turns, ...


# --------------------------------------------------------------------------- template stripping


_BLANK_RUNS = re.compile(r"\n(?:[ \t]*\n)+")
_SURROGATES = re.compile("[\ud800-\udfff]")


@lru_cache(maxsize=16)
def _compile_markers(markers: tuple[str, ...]) -> re.Pattern[str] | None:
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
        markers if isinstance(markers, re.Pattern) or markers is None else _compile_markers(tuple(markers))
    )
    if pattern is None:
        return text
    if pattern is _compile_markers(DEFAULT_TEMPLATE_MARKERS) and not any(
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


# --------------------------------------------------------------------------- value helpers


def _child(obj: Any, key: str) -> Any:
    """``obj[key]`` for a dict, matching the key case-insensitively; None otherwise."""
    if not isinstance(obj, dict):
        return None
    if key in obj:
        return obj[key]
    for k, v in obj.items():
        if isinstance(k, str) and k.lower() == key:
            return v
    return None


def _get_path(record: dict[str, Any], path: tuple[str, ...]) -> Any:
    """Follow a (lower-case) key path through nested dicts."""
    value: Any = record
    for key in path:
        value = _child(value, key)
        if value is None:
            return None
    return value


def _split_path(dotted: str, keys: Iterable[str]) -> tuple[str, ...]:
    """``"question.stem"`` -> ``("question", "stem")``, unless the whole name is a column (CSV)."""
    lowered = dotted.lower()
    if lowered in keys:
        return (lowered,)
    return tuple(part for part in lowered.split(".") if part)


def _text_of(value: Any) -> str:
    """Flatten any JSON/Arrow value to text: lists join by line, dicts prefer their text."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value != value:  # NaN
            return ""
        # 51.0 -> "51": benchmark answers are stored as floats but written as integers.
        return str(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value)
    if isinstance(value, (list, tuple)):
        return "\n".join(t for t in (_text_of(v) for v in value) if t)
    if isinstance(value, dict):
        for key in ("text", "content", "value"):
            inner = _child(value, key)
            if inner is not None:
                return _text_of(inner)
        return "\n".join(t for t in (_text_of(v) for v in value.values()) if t)
    return str(value)


# "A)5(√3 + 1)" (AQuA): a choice that carries its own letter. Digits are not labels ("1.5 m").
_LABELED_CHOICE = re.compile(r"^\s*\(?([A-Za-z])\)")
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _choice_items(value: Any) -> list[tuple[str, str]]:
    """Choices as (label, display line) in source order; the line is "" for an empty choice.

    Handles lists of {label, text} (ARC, CommonsenseQA), lists of strings (AQuA, MMLU columns)
    and dicts (label -> text, or Hugging Face's parallel {label: [...], text: [...]}).
    """
    items: list[tuple[str | None, str]] = []
    if isinstance(value, dict):
        labels, texts = _child(value, "label"), _child(value, "text")
        if isinstance(labels, list) and isinstance(texts, list):
            items = [(_text_of(lab), _text_of(t)) for lab, t in zip(labels, texts, strict=False)]
        else:
            items = [(str(k), _text_of(v)) for k, v in value.items()]
    elif isinstance(value, (list, tuple)):
        for element in value:
            if isinstance(element, dict):
                label = _child(element, "label") or _child(element, "key")
                items.append((_text_of(label) or None, _text_of(element)))
            else:
                items.append((None, _text_of(element)))
    lines: list[tuple[str, str]] = []
    for i, (label, text) in enumerate(items):
        own = _LABELED_CHOICE.match(text) if label is None else None
        if own:  # keep the text exactly as the benchmark wrote it
            lines.append((own.group(1), text))
        else:
            label = label or (_LETTERS[i] if i < len(_LETTERS) else str(i + 1))
            lines.append((label, f"{label}. {text}" if text else ""))
    return lines


def _resolve_answer(value: Any, choices: list[tuple[str, str]]) -> str:
    """An answer key ("B", 1, "1") -> that choice's line; anything else stays as it is.

    A label match wins (ARC's numeric labels "1".."4" are labels); otherwise an integer is a
    0-based index, as in MMLU's ``answer`` and SuperGLUE COPA's ``label``.
    """
    if choices and value is not None and not isinstance(value, (list, dict)):
        key = _text_of(value).strip()
        for label, line in choices:
            if line and label.lower() == key.lower():
                return line
        if key.isdigit() and int(key) < len(choices) and choices[int(key)][1]:
            return choices[int(key)][1]
    return _text_of(value)


# --------------------------------------------------------------------------- extraction parts


Out = dict[str, list[str]]


class _Part:
    """Pulls text for one or more canonical fields out of a (lower-cased) record."""

    def extract(self, record: dict[str, Any], out: Out, ignored: Counter[str]) -> None:
        raise NotImplementedError

    def describe(self) -> dict[str, str]:
        """Canonical field -> words for DetectedSchema.mapping."""
        raise NotImplementedError

    def columns(self) -> set[str]:
        """Top-level (lower-case) columns read, for Parquet projection."""
        raise NotImplementedError


@dataclass(frozen=True)
class _Column(_Part):
    field: str
    path: tuple[str, ...]
    label: str

    def extract(self, record: dict[str, Any], out: Out, ignored: Counter[str]) -> None:
        out.setdefault(self.field, []).append(_text_of(_get_path(record, self.path)))

    def describe(self) -> dict[str, str]:
        return {self.field: self.label}

    def columns(self) -> set[str]:
        return {self.path[0]}


@dataclass(frozen=True)
class _Choices:
    """Where a record keeps its answer choices: one list/dict value, or numbered columns."""

    path: tuple[str, ...] | None
    numbered: tuple[str, ...]
    label: str
    # (record, its choices) of the last call: the choice list and the answer key of one record
    # both need the choices; building them once reads MMLU test in 0.43 s instead of 0.50 s
    _last: list[Any] = field(default_factory=lambda: [None, None], compare=False, repr=False)

    def get(self, record: dict[str, Any]) -> list[tuple[str, str]]:
        if self._last[0] is record:
            return self._last[1]
        if self.path is not None:
            items = _choice_items(_get_path(record, self.path))
        else:
            items = _choice_items([_get_path(record, (c,)) for c in self.numbered])
        self._last[0], self._last[1] = record, items
        return items

    def columns(self) -> set[str]:
        return {self.path[0]} if self.path else set(self.numbered)


@dataclass(frozen=True)
class _ChoiceList(_Part):
    field: str
    choices: _Choices

    def extract(self, record: dict[str, Any], out: Out, ignored: Counter[str]) -> None:
        out.setdefault(self.field, []).append("\n".join(line for _, line in self.choices.get(record) if line))

    def describe(self) -> dict[str, str]:
        return {self.field: self.choices.label}

    def columns(self) -> set[str]:
        return self.choices.columns()


@dataclass(frozen=True)
class _Answer(_Part):
    field: str
    path: tuple[str, ...]
    label: str
    choices: _Choices | None

    def extract(self, record: dict[str, Any], out: Out, ignored: Counter[str]) -> None:
        value = _get_path(record, self.path)
        choices = self.choices.get(record) if self.choices else []
        out.setdefault(self.field, []).append(_resolve_answer(value, choices))

    def describe(self) -> dict[str, str]:
        return {self.field: f"{self.label} (key -> choice text)" if self.choices else self.label}

    def columns(self) -> set[str]:
        return {self.path[0]} | (self.choices.columns() if self.choices else set())


@dataclass(frozen=True)
class _Gather(_Part):
    """``subkey`` of a dict, or of every dict in a list (Self-Instruct instances, NIv2 examples)."""

    field: str
    path: tuple[str, ...]
    subkey: str
    label: str

    def extract(self, record: dict[str, Any], out: Out, ignored: Counter[str]) -> None:
        value = _get_path(record, self.path)
        elements = value if isinstance(value, list) else [value]
        texts = [_text_of(_child(e, self.subkey)) for e in elements if isinstance(e, dict)]
        out.setdefault(self.field, []).append("\n".join(t for t in texts if t))

    def describe(self) -> dict[str, str]:
        return {self.field: self.label}

    def columns(self) -> set[str]:
        return {self.path[0]}


@dataclass(frozen=True)
class _History(_Part):
    """LLaMA-Factory ``history``: earlier [user, assistant] pairs, before the current turn."""

    path: tuple[str, ...]
    label: str

    def extract(self, record: dict[str, Any], out: Out, ignored: Counter[str]) -> None:
        history = _get_path(record, self.path)
        if not isinstance(history, list):
            return
        for pair in history:
            if isinstance(pair, (list, tuple)):
                if len(pair) >= 1:
                    out.setdefault("instruction", []).append(_text_of(pair[0]))
                if len(pair) >= 2:
                    out.setdefault("response", []).append(_text_of(pair[1]))

    def describe(self) -> dict[str, str]:
        return {"instruction": f"{self.label}[*][0]", "response": f"{self.label}[*][1]"}

    def columns(self) -> set[str]:
        return {self.path[0]}


_USER_ROLES = frozenset({"user", "human", "prompter"})
_ASSISTANT_ROLES = frozenset({"assistant", "gpt", "chatgpt", "bing", "bard", "model", "bot", "ai", "claude"})
_SYSTEM_ROLES = frozenset({"system", "developer"})
_TOOL_ROLES = frozenset({"tool", "function", "ipython", "observation", "function_call"})


def _content_text(content: Any, ignored: Counter[str]) -> str:
    """Message content: a string, or a list of parts of which only text parts count."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and _child(part, "type") in (
                None,
                "text",
                "input_text",
                "output_text",
            ):
                text = _child(part, "text")
                if isinstance(text, str):
                    texts.append(text)
                else:
                    ignored["non-text content part"] += 1
            else:
                ignored["non-text content part"] += 1
        return "\n".join(texts)
    if content is not None:
        ignored["non-text content"] += 1
    return ""


@dataclass(frozen=True)
class _Conversation(_Part):
    """A list of turns: user -> instruction, assistant -> response, system -> input."""

    path: tuple[str, ...]
    role_key: str
    content_key: str
    label: str
    role_words: tuple[str, str, str]  # how this layout names user, system, assistant (for describe)

    def extract(self, record: dict[str, Any], out: Out, ignored: Counter[str]) -> None:
        turns = _get_path(record, self.path)
        if not isinstance(turns, list):
            return
        for turn in turns:
            if not isinstance(turn, dict):
                ignored["malformed turn"] += 1
                continue
            role = _child(turn, self.role_key)
            if not isinstance(role, str):
                ignored["non-string role"] += 1
                continue
            role = role.strip().lower()
            if role in _TOOL_ROLES:
                ignored["tool turn"] += 1
                continue
            target = (
                "instruction"
                if role in _USER_ROLES
                else "response"
                if role in _ASSISTANT_ROLES
                else "input"
                if role in _SYSTEM_ROLES
                else None
            )
            if target is None:
                ignored["unknown role"] += 1
                continue
            content = _child(turn, self.content_key)
            if content is None:
                has_call = _child(turn, "tool_calls") or _child(turn, "function_call")
                ignored["tool call" if has_call else "null content"] += 1
                continue
            out.setdefault(target, []).append(_content_text(content, ignored))

    def describe(self) -> dict[str, str]:
        user, system, assistant = (
            f"{self.label}[{self.role_key}={w}].{self.content_key}" for w in self.role_words
        )
        return {"instruction": user, "input": system, "response": assistant}

    def columns(self) -> set[str]:
        return {self.path[0]}


@dataclass(frozen=True)
class _PassageQuestions(_Part):
    """MultiRC: passage{text, questions[{question, answers[{text, label}]}]}; correct answers only."""

    path: tuple[str, ...]
    label: str

    def extract(self, record: dict[str, Any], out: Out, ignored: Counter[str]) -> None:
        passage = _get_path(record, self.path)
        out.setdefault("input", []).append(_text_of(_child(passage, "text")))
        questions = _child(passage, "questions")
        for q in questions if isinstance(questions, list) else []:
            out.setdefault("instruction", []).append(_text_of(_child(q, "question")))
            answers = _child(q, "answers")
            for a in answers if isinstance(answers, list) else []:
                if _text_of(_child(a, "label")).lower() in ("1", "true"):
                    out.setdefault("response", []).append(_text_of(_child(a, "text")))

    def describe(self) -> dict[str, str]:
        p = self.label
        return {
            "instruction": f"{p}.questions[*].question",
            "input": f"{p}.text",
            "response": f"{p}.questions[*].answers[label=1].text",
        }

    def columns(self) -> set[str]:
        return {self.path[0]}


# --------------------------------------------------------------------------- detection


class _Sample:
    """The first records (keys lower-cased) plus what detection asks of them."""

    def __init__(self, records: list[dict[str, Any]], names: dict[str, str]) -> None:
        self.records = records
        self.names = names  # lower-case key -> spelling in the file (first seen)
        self.keys = set(names)

    def first(self, *candidates: str) -> str | None:
        return next((c for c in candidates if c in self.keys), None)

    def name(self, key: str) -> str:
        return self.names.get(key, key)

    def values(self, path: tuple[str, ...]) -> list[Any]:
        return [v for v in (_get_path(r, path) for r in self.records) if v is not None]

    def is_text(self, key: str) -> bool:
        """Non-null values are all scalars (strings, numbers): usable as text or a label."""
        values = self.values((key,))
        return bool(values) and all(not isinstance(v, (list, dict)) for v in values)

    def is_str_list(self, key: str) -> bool:
        values = self.values((key,))
        return bool(values) and all(
            isinstance(v, list) and all(isinstance(e, str) for e in v) for v in values
        )

    def element_keys(self, path: tuple[str, ...]) -> set[str]:
        """Lower-case keys of the dicts inside list values at ``path``."""
        keys: set[str] = set()
        for value in self.values(path):
            for element in value if isinstance(value, list) else []:
                if isinstance(element, dict):
                    keys.update(k.lower() for k in element if isinstance(k, str))
        return keys

    def dict_keys(self, path: tuple[str, ...]) -> set[str]:
        keys: set[str] = set()
        for value in self.values(path):
            if isinstance(value, dict):
                keys.update(k.lower() for k in value if isinstance(k, str))
        return keys


Rule = Callable[[_Sample], "list[_Part] | None"]

_CONVERSATION_KEYS = ("messages", "conversations", "conversation", "chat", "dialog", "dialogue", "turns")


def _col(s: _Sample, fld: str, key: str) -> _Column:
    return _Column(fld, (key,), s.name(key))


def _system_part(s: _Sample) -> list[_Part]:
    key = s.first("system", "system_prompt")
    return [_col(s, "input", key)] if key and s.is_text(key) else []


def _conversation_rule(
    role_key: str, content_keys: tuple[str, ...], role_words: tuple[str, str, str]
) -> Rule:
    def rule(s: _Sample) -> list[_Part] | None:
        for key in _CONVERSATION_KEYS:
            if key in s.keys:
                element_keys = s.element_keys((key,))
                content = next((c for c in content_keys if c in element_keys), None)
                if role_key in element_keys and content:
                    return [
                        *_system_part(s),
                        _Conversation((key,), role_key, content, s.name(key), role_words),
                    ]
        return None

    return rule


def _rule_self_instruct(s: _Sample) -> list[_Part] | None:
    if "instruction" not in s.keys or "instances" not in s.keys:
        return None
    inner = s.element_keys(("instances",))
    if not inner & {"input", "output"}:
        return None
    name = s.name("instances")
    return [
        _col(s, "instruction", "instruction"),
        _Gather("input", ("instances",), "input", f"{name}[*].input"),
        _Gather("response", ("instances",), "output", f"{name}[*].output"),
    ]


def _rule_alpaca(s: _Sample) -> list[_Part] | None:
    output = s.first("output", "response", "completion")
    if "instruction" not in s.keys or output is None:
        return None
    parts: list[_Part] = []
    history = s.first("history")
    if history:
        parts.append(_History((history,), s.name(history)))
    parts.append(_col(s, "instruction", "instruction"))
    parts += _system_part(s)
    source = s.first("input", "context")
    if source:
        parts.append(_col(s, "input", source))
    parts.append(_col(s, "response", output))
    return parts


def _rule_prompt_completion(s: _Sample) -> list[_Part] | None:
    response = s.first(
        "completion", "response", "chosen", "canonical_solution", "output", "solution", "answer"
    )
    if "prompt" not in s.keys or response is None:
        return None
    return [_col(s, "instruction", "prompt"), *_system_part(s), _col(s, "response", response)]


def _rule_turns(s: _Sample) -> list[_Part] | None:
    if "turns" not in s.keys or not s.is_str_list("turns"):
        return None
    parts: list[_Part] = [_col(s, "instruction", "turns")]
    reference = s.first("reference", "references")
    if reference:
        parts.append(_col(s, "response", reference))
    return parts


def _rule_flan_template(s: _Sample) -> list[_Part] | None:
    if "input_template" not in s.keys:
        return None
    parts: list[_Part] = [_col(s, "instruction", "input_template")]
    if "target_template" in s.keys:
        parts.append(_col(s, "response", "target_template"))
    return parts


def _rule_niv2(s: _Sample) -> list[_Part] | None:
    if "definition" not in s.keys:
        return None
    parts: list[_Part] = [_col(s, "instruction", "definition")]
    examples = s.first("positive_examples", "examples")
    if examples:
        name = s.name(examples)
        star = "[*]" if s.element_keys((examples,)) else ""
        parts.append(_Gather("input", (examples,), "input", f"{name}{star}.input"))
        parts.append(_Gather("response", (examples,), "output", f"{name}{star}.output"))
    return parts


def _rule_multirc(s: _Sample) -> list[_Part] | None:
    if "passage" not in s.keys or not {"text", "questions"} <= s.dict_keys(("passage",)):
        return None
    return [_PassageQuestions(("passage",), s.name("passage"))]


_NUMBERED_CHOICE = re.compile(r"^(?:choice|option|ending)[ _]?(\d+|[a-e])$")


def _find_choices(s: _Sample) -> _Choices | None:
    key = s.first("choices", "options", "endings", "candidates")
    if key and not s.is_text(key):
        return _Choices((key,), (), s.name(key))
    # choice0..choice3 (MMLU), choice1/choice2 (COPA), option_a..: sorted as numbers, not strings.
    suffixes = {k: m.group(1) for k in s.keys if (m := _NUMBERED_CHOICE.match(k))}
    numbered = sorted(suffixes, key=lambda k: (len(suffixes[k]), suffixes[k]))
    if len(numbered) >= 2:
        return _Choices(None, tuple(numbered), f"{s.name(numbered[0])}..{s.name(numbered[-1])}")
    return None


def _rule_question_answer(s: _Sample) -> list[_Part] | None:
    question = s.first("question", "squestion", "query", "problem")
    if question is None:
        return None
    parts: list[_Part] = []
    body = s.first("body")
    if body:
        parts.append(_col(s, "instruction", body))
    choices: _Choices | None = None
    inner = s.dict_keys((question,))
    qname = s.name(question)
    if "stem" in inner:  # ARC / CommonsenseQA: question{stem, choices[{label, text}]}
        parts.append(_Column("instruction", (question, "stem"), f"{qname}.stem"))
        if "choices" in inner:
            choices = _Choices((question, "choices"), (), f"{qname}.choices")
    elif s.is_text(question):
        parts.append(_col(s, "instruction", question))
    else:
        return None
    choices = choices or _find_choices(s)
    if choices:
        parts.append(_ChoiceList("instruction", choices))
    context = s.first("passage", "context", "premise", "paragraph", "article")
    if context:
        parts.append(_col(s, "input", context))
    rationale = s.first("rationale", "explanation")
    if rationale:
        parts.append(_col(s, "response", rationale))
    answer = s.first(
        "best answer", "best_answer", "answer", "answers", "lsolutions", "solution", "final_answer",
        "output", "response", "target", "answerkey", "correct", "correct_answer", "label", "gold",
    )  # fmt: skip
    if answer:
        parts.append(_Answer("response", (answer,), s.name(answer), choices))
    return parts


def _rule_sentence_pair(s: _Sample) -> list[_Part] | None:
    first = s.first("premise", "sentence1", "sentence_1", "text1", "text_a", "question1")
    second = s.first("hypothesis", "sentence2", "sentence_2", "text2", "text_b", "question2")
    if first is None or second is None:
        return None
    parts: list[_Part] = [_col(s, "instruction", first), _col(s, "input", second)]
    label = s.first("label", "gold_label")
    if label:
        parts.append(_col(s, "response", label))
    return parts


def _rule_input_target(s: _Sample) -> list[_Part] | None:
    source = s.first("input", "inputs", "goal")
    target = s.first("target", "targets", "output", "outputs")
    if source is None or target is None or not s.is_text(source):
        return None
    return [_col(s, "instruction", source), _col(s, "response", target)]


def _rule_text(s: _Sample) -> list[_Part] | None:
    text = next(
        (k for k in ("text", "content", "document", "sentence", "x") if k in s.keys and s.is_text(k)), None
    )
    if text is None:
        return None
    parts: list[_Part] = [_col(s, "instruction", text)]
    response = next(
        (
            k
            for k in ("code", "solution", "completion", "summary", "label", "y", "target")
            if k in s.keys and s.is_text(k)
        ),
        None,
    )
    if response:
        parts.append(_col(s, "response", response))
    return parts


# Rules by tier, most specific first. Two matches in one tier are ambiguous; a lower tier is
# only consulted when no rule of a higher tier matched.
_RULES: tuple[tuple[int, str, Rule, str], ...] = (
    (
        1,
        "messages",
        _conversation_rule("role", ("content", "text"), ("user", "system", "assistant")),
        "messages|conversations[{role, content}]",
    ),
    (
        1,
        "sharegpt",
        _conversation_rule("from", ("value", "text"), ("human", "system", "gpt")),
        "conversations[{from, value}]",
    ),
    (2, "self_instruct", _rule_self_instruct, "instruction + instances[{input, output}]"),
    (2, "alpaca", _rule_alpaca, "instruction [+ input] + output|response"),
    (
        2,
        "prompt_completion",
        _rule_prompt_completion,
        "prompt + completion|response|chosen|canonical_solution",
    ),
    (2, "turns", _rule_turns, "turns[] [+ reference[]]"),
    (2, "flan_template", _rule_flan_template, "input_template + target_template"),
    (2, "niv2", _rule_niv2, "definition + positive_examples"),
    (2, "multirc", _rule_multirc, "passage{text, questions}"),
    (
        3,
        "question_answer",
        _rule_question_answer,
        "question [+ choices|passage|rationale] + answer|answerKey",
    ),
    (3, "sentence_pair", _rule_sentence_pair, "premise+hypothesis | sentence1+sentence2 [+ label]"),
    (3, "input_target", _rule_input_target, "input|goal + target"),
    (4, "text", _rule_text, "text|sentence|x [+ code|label|y]"),
)
_RULES_BY_NAME = {name: rule for _, name, rule, _ in _RULES}

_ID_CANDIDATES = ("id", "_id", "uid", "guid", "task_id", "question_id", "example_id", "qid", "idx", "iindex")
_GROUP_CANDIDATES = ("subject", "task", "category", "type")


def _detect_auto(s: _Sample, path: Path) -> tuple[str, list[_Part]]:
    for tier in sorted({t for t, *_ in _RULES}):
        matched = [(name, parts) for t, name, rule, _ in _RULES if t == tier and (parts := rule(s))]
        if len(matched) == 1:
            return matched[0]
        if len(matched) > 1:
            found = "; ".join(
                f"{name} (via {', '.join(_describe(parts).values())})" for name, parts in matched
            )
            raise InputError(
                str(path), f"ambiguous dataset schema: the keys {_key_list(s)} fit {found}. {_HINT}"
            )
    known = "; ".join(f"{name}: {signature}" for _, name, _, signature in _RULES)
    hint = _HINT
    if any(";" in k or "\t" in k for k in s.names.values()):
        hint += " A column name contains ';' or a tab: the CSV delimiter may be wrong."
    raise InputError(
        str(path), f"unknown dataset schema: found keys {_key_list(s)}; known schemas are {known}. {hint}"
    )


_HINT = "Pass --schema NAME, or map columns with --field instruction=COL --field response=COL."


def _key_list(s: _Sample) -> str:
    return "[" + ", ".join(sorted(s.names.values(), key=str.lower)) + "]"


def _describe(parts: list[_Part]) -> dict[str, str]:
    described: dict[str, list[str]] = {}
    for part in parts:
        for fld, words in part.describe().items():
            described.setdefault(fld, []).append(words)
    return {f: " + ".join(described[f]) for f in FIELDS if f in described}


def _pick_id(s: _Sample) -> str | None:
    for key in _ID_CANDIDATES:
        if key in s.keys and s.is_text(key):
            values = [_text_of(v) for v in s.values((key,))]
            if len(set(values)) == len(values):  # an id column that repeats is not an id
                return key
    return None


def _pick_group(s: _Sample) -> str | None:
    for key in _GROUP_CANDIDATES:
        values = s.values((key,)) if key in s.keys else []
        if values and all(isinstance(v, str) for v in values):
            # A group has few distinct values; a column unique per record (NIv2 "task") is an id.
            if len(set(values)) <= max(2, len(s.records) // 2):
                return key
    return None


def _explicit_path(s: _Sample, dotted: str, what: str) -> tuple[str, ...]:
    path = _split_path(dotted, s.keys)
    if not path or path[0] not in s.keys:
        raise ConfigError(f"{what} {dotted!r} is not a column of the dataset; columns found: {_key_list(s)}")
    return path


@dataclass(frozen=True)
class _Plan:
    detected: DetectedSchema
    parts: tuple[_Part, ...]
    id_path: tuple[str, ...] | None
    group_path: tuple[str, ...] | None
    columns: tuple[str, ...]  # top-level columns to read, spelled as in the file


def _plan(path: Path, s: _Sample, options: DatasetOptions) -> _Plan:
    if options.field_map:
        name = "fields"
        parts: list[_Part] = [
            _Column(fld, _explicit_path(s, column, f"--field {fld}="), column)
            for fld, column in options.field_map
        ]
    elif options.schema:
        name = options.schema
        found = _RULES_BY_NAME[name](s)
        if not found:
            signature = next(sig for _, n, _, sig in _RULES if n == name)
            raise InputError(
                str(path), f"does not fit --schema {name} ({signature}); keys found: {_key_list(s)}. {_HINT}"
            )
        parts = found
    else:
        name, parts = _detect_auto(s, path)
    id_path = _explicit_path(s, options.id_field, "--id-field") if options.id_field else None
    if id_path is None and (auto_id := _pick_id(s)):
        id_path = (auto_id,)
    group_path = _explicit_path(s, options.group_by, "--group-by") if options.group_by else None
    if group_path is None and (auto_group := _pick_group(s)):
        group_path = (auto_group,)
    wanted = set().union(*(p.columns() for p in parts))
    wanted |= {p[0] for p in (id_path, group_path) if p}
    detected = DetectedSchema(
        name=name,
        mapping=_describe(parts),
        id_field=options.id_field or (s.name(id_path[0]) if id_path else None),
        group_field=options.group_by or (s.name(group_path[0]) if group_path else None),
    )
    columns = tuple(sorted(s.name(k) for k in wanted if k in s.keys))
    return _Plan(detected, tuple(parts), id_path, group_path, columns)


# --------------------------------------------------------------------------- readers


# A record as read: 0-based row, human location ("line 12", "row 3"), parsed value.
RawRecord = tuple[int, str, Any]


def _resolve_format(path: Path, options: DatasetOptions) -> tuple[str, str | None]:
    """(format, compression) from DatasetOptions.file_format or the file name."""
    name = path.name.lower()
    compression = None
    for suffix, kind in ((".gz", "gzip"), (".zst", "zstd"), (".zstd", "zstd")):
        if name.endswith(suffix):
            compression, name = kind, name[: -len(suffix)]
            break
    if options.file_format:
        fmt = options.file_format
    elif name.endswith((".jsonl", ".ndjson", ".jsonlines")):
        fmt = "jsonl"
    elif name.endswith(".json"):
        fmt = "json"
    elif name.endswith((".parquet", ".pq")):
        fmt = "parquet"
    elif name.endswith(".csv"):
        fmt = "csv"
    elif name.endswith((".tsv", ".tab")):
        fmt = "tsv"
    else:
        raise InputError(
            str(path), f"cannot tell the file format from the name; pass --format ({', '.join(FORMATS)})"
        )
    if fmt == "parquet" and compression:
        raise InputError(
            str(path), "compressed Parquet files are not supported; Parquet compresses internally"
        )
    return fmt, compression


class _ZstdStream(io.RawIOBase):
    """Streaming zstd that *fails* on truncation (``stream_reader`` silently returns short data)."""

    _CHUNK = 1 << 16

    def __init__(self, raw: BinaryIO, path: Path) -> None:
        import zstandard

        self._raw, self._path = raw, path
        self._dctx = zstandard.ZstdDecompressor()
        self._dobj = self._dctx.decompressobj()
        self._fed = False  # bytes went into the current frame
        self._pending = memoryview(b"")
        self._done = False

    def readable(self) -> bool:
        return True

    def _fill(self) -> None:
        while not self._pending and not self._done:
            data = self._raw.read(self._CHUNK)
            if not data:
                self._done = True
                if self._fed and not self._dobj.eof:
                    raise EOFError("zstd stream ends inside a frame (file truncated)")
                return
            out = []
            while data:
                self._fed = True
                out.append(self._dobj.decompress(data))
                if self._dobj.eof:  # next frame, if any, starts in unused_data
                    data = self._dobj.unused_data
                    self._dobj, self._fed = self._dctx.decompressobj(), False
                else:
                    data = b""
            self._pending = memoryview(b"".join(out))

    def readinto(self, buffer: Any) -> int:
        self._fill()
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


def _open_binary(path: Path, compression: str | None) -> BinaryIO:
    try:
        if compression == "gzip":
            return gzip.open(path, "rb")  # type: ignore[return-value]
        raw = open(path, "rb")  # noqa: SIM115 - closed by the caller's with-block
        if compression == "zstd":
            return io.BufferedReader(_ZstdStream(raw, path), buffer_size=1 << 16)  # type: ignore[return-value]
        return raw
    except OSError as e:
        raise InputError(str(path), f"cannot open: {e.strerror or e}") from e


def _read_error(path: Path, compression: str | None, exc: BaseException, location: str | None) -> InputError:
    what = "compressed input is truncated or corrupt" if compression else "read failed"
    return InputError(str(path), f"{what}: {exc}", location)


def _stream_errors() -> tuple[type[BaseException], ...]:
    """Exceptions raised mid-read: truncated/corrupt gzip or zstd, or an I/O error."""
    import zstandard

    return (EOFError, zlib.error, gzip.BadGzipFile, zstandard.ZstdError, OSError)


def _parse_json_line(path: Path, raw: bytes, location: str) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(
            str(path), f"not valid UTF-8 (byte {e.start} of the line); the file must be UTF-8", location
        ) from e
    try:
        return json.loads(text)
    except RecursionError as e:
        raise InputError(str(path), "invalid JSON: nested too deeply", location) from e
    except ValueError as e:
        raise InputError(str(path), f"invalid JSON: {e}", location) from e


def _iter_jsonl(
    path: Path, compression: str | None, options: DatasetOptions, ignored: Counter[str]
) -> Iterator[RawRecord]:
    limit = options.max_line_bytes
    errors = _stream_errors()
    with _open_binary(path, compression) as fh:
        line_no = row = 0
        while True:
            try:
                raw = fh.readline(limit + 1)
            except errors as e:
                raise _read_error(path, compression, e, f"line {line_no + 1}") from e
            if not raw:
                return
            line_no += 1
            if len(raw) > limit and not raw.endswith(b"\n"):
                raise InputError(
                    str(path), f"line longer than {limit:,} bytes (max_line_bytes)", f"line {line_no}"
                )
            if line_no == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            if not raw.strip():
                ignored["blank line"] += 1
                continue
            yield row, f"line {line_no}", _parse_json_line(path, raw, f"line {line_no}")
            row += 1


_RECORD_LIST_KEYS = (
    "data",
    "examples",
    "rows",
    "records",
    "train",
    "instances",
    "items",
    "test",
    "validation",
)


def _iter_json(
    path: Path, compression: str | None, options: DatasetOptions, ignored: Counter[str]
) -> Iterator[RawRecord]:
    """A JSON document: a list of records, or an object holding one. Read whole (not streamed)."""
    with _open_binary(path, compression) as fh:
        try:
            raw = fh.read()
        except _stream_errors() as e:
            raise _read_error(path, compression, e, None) from e
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise InputError(str(path), "not valid UTF-8; the file must be UTF-8", f"line {line}") from e
    try:
        document = json.loads(text)
    except json.JSONDecodeError as e:
        if e.msg == "Extra data":  # JSON Lines saved as .json (Hugging Face `to_json` does this)
            del raw, text
            yield from _iter_jsonl(path, compression, options, ignored)
            return
        raise InputError(str(path), f"invalid JSON: {e.msg} (column {e.colno})", f"line {e.lineno}") from e
    except RecursionError as e:
        raise InputError(str(path), "invalid JSON: nested too deeply") from e
    records = document
    if isinstance(document, dict):
        lists = {k: v for k, v in document.items() if isinstance(v, list)}
        key = next((k for k in lists if k.lower() in _RECORD_LIST_KEYS), None)
        if key is None and len(lists) == 1:
            key = next(iter(lists))
        if key is None:
            raise InputError(
                str(path),
                f"a JSON object without one list of records (keys: {sorted(document)[:20]}); expected a "
                f"top-level array or an object with one of {list(_RECORD_LIST_KEYS)}",
            )
        records = lists[key]
    if not isinstance(records, list):
        raise InputError(str(path), f"expected a JSON array of records, found {type(records).__name__}")
    for row, record in enumerate(records):
        yield row, f"row {row + 1}", record


def _iter_parquet(path: Path, columns: Sequence[str] | None, batch_size: int) -> Iterator[RawRecord]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path, page_checksum_verification=True)
    except (pa.ArrowException, OSError) as e:
        raise InputError(str(path), f"not a readable Parquet file: {e}") from e
    row = 0
    try:
        with parquet:
            for batch in parquet.iter_batches(batch_size=batch_size, columns=columns):
                for record in batch.to_pylist():
                    yield row, f"row {row + 1}", record
                    row += 1
    except (pa.ArrowException, OSError) as e:
        raise InputError(
            str(path), f"Parquet read failed (truncated or corrupt?): {e}", f"row {row + 1}"
        ) from e


def _iter_csv(
    path: Path, compression: str | None, delimiter: str, options: DatasetOptions, ignored: Counter[str]
) -> Iterator[RawRecord]:
    """CSV/TSV with a header row; strict quoting, explicit field limit, errors with record and line."""
    limit = options.csv_field_size_limit

    def next_row(reader: Any) -> list[str] | None:
        # The limit is process-global in the csv module: set it around each read, then restore.
        previous = csv.field_size_limit(limit)
        try:
            return next(reader, None)
        finally:
            csv.field_size_limit(previous)

    with (
        _open_binary(path, compression) as binary,
        io.TextIOWrapper(binary, encoding="utf-8-sig", newline="") as fh,
    ):
        reader = csv.reader(fh, delimiter=delimiter, strict=True)
        record_no, row, header = 0, 0, None
        while True:
            start = reader.line_num + 1
            try:
                fields = next_row(reader)
            except csv.Error as e:
                what = "header" if header is None else f"record {record_no + 1}"
                hint = f"; raise csv_field_size_limit ({limit:,})" if "field limit" in str(e) else ""
                raise InputError(
                    str(path),
                    f"malformed CSV in {what} (lines {start}-{reader.line_num}): {e}{hint}",
                    f"line {start}",
                ) from e
            except UnicodeDecodeError as e:
                raise InputError(
                    str(path),
                    "not valid UTF-8 (at or after this line); the file must be UTF-8 — there is no --encoding "
                    "option, convert it first (e.g. iconv -f cp1252 -t utf-8)",
                    f"line {start}",
                ) from e
            except _stream_errors() as e:
                raise _read_error(path, compression, e, f"line {start}") from e
            if fields is None:
                return
            if not fields:
                ignored["blank line"] += 1
                continue
            if header is None:
                header = fields
                duplicates = sorted({h for h in header if sum(x.lower() == h.lower() for x in header) > 1})
                if duplicates:
                    raise InputError(
                        str(path), f"duplicate column names in the header: {duplicates}", "line 1"
                    )
                continue
            record_no += 1
            if len(fields) != len(header):
                raise InputError(
                    str(path),
                    f"record {record_no} has {len(fields)} fields, the header has {len(header)}",
                    f"line {start}",
                )
            yield (
                row,
                f"line {start}",
                {k: (v if v != "" else None) for k, v in zip(header, fields, strict=True)},
            )
            row += 1


def _iter_raw(path: Path, options: DatasetOptions, ignored: Counter[str]) -> Iterator[RawRecord]:
    fmt, compression = _resolve_format(path, options)
    if fmt == "jsonl":
        return _iter_jsonl(path, compression, options, ignored)
    if fmt == "json":
        return _iter_json(path, compression, options, ignored)
    if fmt == "parquet":  # the peek reads a small first batch of all columns
        return _iter_parquet(path, None, _SAMPLE_RECORDS)
    return _iter_csv(path, compression, "\t" if fmt == "tsv" else ",", options, ignored)


def _lower_record(path: Path, raw: RawRecord) -> tuple[int, str, dict[str, Any]]:
    row, location, value = raw
    if not isinstance(value, dict):
        raise InputError(
            str(path), f"expected a JSON object per record, found {type(value).__name__}", location
        )
    return row, location, {(k.lower() if isinstance(k, str) else str(k)): v for k, v in value.items()}


def _peek(
    path: Path, options: DatasetOptions, ignored: Counter[str]
) -> tuple[list[tuple[int, str, dict[str, Any]]], _Sample, Iterator[RawRecord]]:
    """Read the first records and build the detection sample (original key spellings kept)."""
    records = _iter_raw(path, options, ignored)
    raw_head = list(islice(records, _SAMPLE_RECORDS))
    names: dict[str, str] = {}
    for _, _, value in raw_head:
        if isinstance(value, dict):
            for key in value:
                if isinstance(key, str):
                    names.setdefault(key.lower(), key)
    head = [_lower_record(path, r) for r in raw_head]
    return head, _Sample([r for _, _, r in head], names), records


# --------------------------------------------------------------------------- public API


def _validate(options: DatasetOptions) -> None:
    """Option conflicts first, before any file is opened (STYLE rule 6)."""
    if options.schema is not None and options.schema not in SCHEMAS:
        raise ConfigError(f"unknown schema {options.schema!r}; choose one of {', '.join(SCHEMAS)}")
    if options.schema == "fields" and not options.field_map:
        raise ConfigError("schema 'fields' needs --field FIELD=COLUMN mappings")
    if options.field_map and options.schema not in (None, "fields"):
        raise ConfigError("--field mappings replace schema detection; do not combine them with --schema")
    for pair in options.field_map:
        if len(pair) != 2 or pair[0] not in FIELDS or not isinstance(pair[1], str) or not pair[1]:
            raise ConfigError(
                f"bad --field mapping {pair!r}: expected FIELD=COLUMN with FIELD in {', '.join(FIELDS)}"
            )
    if options.file_format is not None and options.file_format not in FORMATS:
        raise ConfigError(f"unknown format {options.file_format!r}; choose one of {', '.join(FORMATS)}")
    for name in ("batch_size", "csv_field_size_limit", "max_line_bytes"):
        if getattr(options, name) < 1:
            raise ConfigError(f"{name} must be at least 1")
    if options.strip_templates:
        _compile_markers(tuple(options.template_markers))


def detect_schema(path: str | Path, options: DatasetOptions) -> DetectedSchema:
    """Peek at the first records and say which layout the file has and what maps where.

    Raises InputError for an unknown or ambiguous layout (listing keys and candidates),
    ConfigError for bad options, NothingAssessableError for a file without records.
    """
    path = Path(path)
    _validate(options)
    head, sample, records = _peek(path, options, Counter())
    close = getattr(records, "close", None)
    if close:
        close()
    if not head:
        raise NothingAssessableError(f"{path}: the file holds no records")
    return _plan(path, sample, options).detected


def read_examples(
    path: str | Path, options: DatasetOptions, stats: DatasetReadStats | None = None
) -> Iterator[list[Example]]:
    """Stream the file as batches of at most ``options.batch_size`` examples.

    Options are validated and the schema detected *now* (errors surface at the call);
    records are read lazily. Memory is bounded by the batch, except for JSON-array files,
    which the json module parses whole. ``stats`` (if given) is filled in as batches are
    consumed; a file without records yields nothing and leaves ``stats.schema`` as None.
    """
    path = Path(path)
    _validate(options)
    stats = stats if stats is not None else DatasetReadStats()
    ignored: Counter[str] = Counter()
    head, sample, records = _peek(path, options, ignored)
    if not head:
        stats.ignored = dict(ignored)
        return iter(())
    plan = _plan(path, sample, options)
    stats.schema = plan.detected
    fmt, _ = _resolve_format(path, options)
    rows: Iterator[tuple[int, str, dict[str, Any]]]
    if fmt == "parquet":  # re-read with only the needed columns (the peek read all of them)
        close = getattr(records, "close", None)
        if close:
            close()
        rows = (_lower_record(path, r) for r in _iter_parquet(path, plan.columns, options.batch_size))
    else:
        rows = chain(head, (_lower_record(path, r) for r in records))
    return _batches(path, plan, rows, options, stats, ignored)


def _batches(
    path: Path,
    plan: _Plan,
    rows: Iterator[tuple[int, str, dict[str, Any]]],
    options: DatasetOptions,
    stats: DatasetReadStats,
    ignored: Counter[str],
) -> Iterator[list[Example]]:
    pattern = _compile_markers(tuple(options.template_markers)) if options.strip_templates else None
    batch: list[Example] = []
    for row, location, record in rows:
        stats.records += 1
        example = _example(plan, row, record, pattern, ignored)
        if example is None:
            _skip(stats, path, location, "no text fields", record)
        else:
            stats.examples += 1
            batch.append(example)
            if len(batch) >= options.batch_size:
                stats.ignored = dict(ignored)
                yield batch
                batch = []
    stats.ignored = dict(ignored)
    if batch:
        yield batch


def _skip(stats: DatasetReadStats, path: Path, location: str, reason: str, record: dict[str, Any]) -> None:
    stats.skipped += 1
    stats.skipped_reasons[reason] = stats.skipped_reasons.get(reason, 0) + 1
    if len(stats.skipped_examples) < _MAX_SKIPPED_EXAMPLES:
        keys = ", ".join(sorted(record)[:12]) or "none"
        stats.skipped_examples.append(f"{path}:{location}: {reason} (keys: {keys})")


def _example(
    plan: _Plan, row: int, record: dict[str, Any], pattern: re.Pattern[str] | None, ignored: Counter[str]
) -> Example | None:
    out: Out = {}
    for part in plan.parts:
        part.extract(record, out, ignored)
    fields: dict[str, str] = {}
    for name in FIELDS:
        chunks = [c for c in out.get(name, ()) if c and not c.isspace()]
        if not chunks:
            continue
        text = "\n".join(chunks)
        if _SURROGATES.search(text):  # lone surrogates from JSON "\ud800" cannot be encoded later
            text = _SURROGATES.sub("\ufffd", text)
        if pattern is not None:
            text = strip_template_markers(text, pattern)
        if text and not text.isspace():
            fields[name] = text
    if not fields:
        return None
    id_value = _text_of(_get_path(record, plan.id_path)) if plan.id_path else ""
    group_value = _get_path(record, plan.group_path) if plan.group_path else None
    group = (
        _text_of(group_value)
        if group_value is not None and not isinstance(group_value, (list, dict))
        else None
    )
    # ids and groups are written to Parquet/JSON too: lone surrogates become U+FFFD like the text
    id_value = _SURROGATES.sub("\ufffd", id_value)
    group = _SURROGATES.sub("\ufffd", group) if group else group
    return Example(id=id_value or str(row + 1), row=row, group=group or None, fields=fields)
