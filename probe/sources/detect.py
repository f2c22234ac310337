"""Schema detection: which layout a dataset has, and a plan that pulls canonical fields out of records.

The first records are peeked (by :mod:`probe.sources.readers`) into a :class:`Sample`; rules
tried most specific first recognise the layout (Alpaca, ShareGPT, chat messages,
prompt/completion, question/answer families, ...) and return small *parts*, each pulling
text for one or more of ``instruction``, ``input`` and ``response`` out of a record. Why parts:
the scanner reports per-field coverage, so which column feeds which field must be explicit
(:class:`~probe.sources.dataset_model.DetectedSchema.mapping` says it in words). Detection is
case-insensitive and handles nested objects and lists; ``DatasetOptions.field_map`` and
``schema`` override it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from probe.errors import ConfigError, InputError
from probe.sources.dataset_model import CONTENT_HASH_ID_FIELD, FIELDS, DatasetOptions, DetectedSchema

__all__ = ["Out", "Plan", "Sample", "get_path", "make_plan", "text_of"]


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


def get_path(record: dict[str, Any], path: tuple[str, ...]) -> Any:
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


def text_of(value: Any) -> str:
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
        return "\n".join(t for t in (text_of(v) for v in value) if t)
    if isinstance(value, dict):
        for key in ("text", "content", "value"):
            inner = _child(value, key)
            if inner is not None:
                return text_of(inner)
        return "\n".join(t for t in (text_of(v) for v in value.values()) if t)
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
            items = [(text_of(lab), text_of(t)) for lab, t in zip(labels, texts, strict=False)]
        else:
            items = [(str(k), text_of(v)) for k, v in value.items()]
    elif isinstance(value, (list, tuple)):
        for element in value:
            if isinstance(element, dict):
                label = _child(element, "label") or _child(element, "key")
                items.append((text_of(label) or None, text_of(element)))
            else:
                items.append((None, text_of(element)))
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
        key = text_of(value).strip()
        for label, line in choices:
            if line and label.lower() == key.lower():
                return line
        if key.isdigit() and int(key) < len(choices) and choices[int(key)][1]:
            return choices[int(key)][1]
    return text_of(value)


# --------------------------------------------------------------------------- extraction parts


SYSTEM = "system"
"""Pseudo-field of system prompts: left out of the judged text unless DatasetOptions.include_system_prompts
(then read as ``input``). A system prompt such as "You are a helpful assistant." is the same in every
row: counted in ``whole`` it dilutes coverage, so a chat dataset would score lower than the same rows
in Alpaca layout."""


class Out(dict[str, list[str]]):
    """Field -> text chunks, plus ``sequence``: every chunk with its field, in extraction order.

    The per-field lists feed per-field coverage; the sequence keeps a conversation's turns
    in the order they were spoken for the example's whole text.
    """

    def __init__(self) -> None:
        super().__init__()
        self.sequence: list[tuple[str, str]] = []

    def add(self, name: str, text: str) -> None:
        self.setdefault(name, []).append(text)
        self.sequence.append((name, text))


class _Part:
    """Pulls text for one or more canonical fields out of a (lower-cased) record."""

    def extract(self, record: dict[str, Any], out: Out, ignored: Counter[str]) -> None:
        raise NotImplementedError

    def describe(self) -> dict[str, str]:
        """Canonical field -> words for DetectedSchema.mapping."""
        raise NotImplementedError

    def columns(self) -> set[str]:
        """Top-level (lower-case) columns read, for Parquet projection: by default, the part's own path."""
        return {self.path[0]}  # type: ignore[attr-defined]


@dataclass(frozen=True)
class _Column(_Part):
    field: str
    path: tuple[str, ...]
    label: str

    def extract(self, record: dict[str, Any], out: Out, ignored: Counter[str]) -> None:
        out.add(self.field, text_of(get_path(record, self.path)))

    def describe(self) -> dict[str, str]:
        return {self.field: self.label}


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
            items = _choice_items(get_path(record, self.path))
        else:
            items = _choice_items([get_path(record, (c,)) for c in self.numbered])
        self._last[0], self._last[1] = record, items
        return items

    def columns(self) -> set[str]:
        return {self.path[0]} if self.path else set(self.numbered)


@dataclass(frozen=True)
class _ChoiceList(_Part):
    field: str
    choices: _Choices

    def extract(self, record: dict[str, Any], out: Out, ignored: Counter[str]) -> None:
        out.add(self.field, "\n".join(line for _, line in self.choices.get(record) if line))

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
        value = get_path(record, self.path)
        choices = self.choices.get(record) if self.choices else []
        out.add(self.field, _resolve_answer(value, choices))

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
        value = get_path(record, self.path)
        elements = value if isinstance(value, list) else [value]
        texts = [text_of(_child(e, self.subkey)) for e in elements if isinstance(e, dict)]
        out.add(self.field, "\n".join(t for t in texts if t))

    def describe(self) -> dict[str, str]:
        return {self.field: self.label}


@dataclass(frozen=True)
class _History(_Part):
    """LLaMA-Factory ``history``: earlier [user, assistant] pairs, before the current turn."""

    path: tuple[str, ...]
    label: str

    def extract(self, record: dict[str, Any], out: Out, ignored: Counter[str]) -> None:
        history = get_path(record, self.path)
        if not isinstance(history, list):
            return
        for pair in history:
            if isinstance(pair, (list, tuple)):
                if len(pair) >= 1:
                    out.add("instruction", text_of(pair[0]))
                if len(pair) >= 2:
                    out.add("response", text_of(pair[1]))

    def describe(self) -> dict[str, str]:
        return {"instruction": f"{self.label}[*][0]", "response": f"{self.label}[*][1]"}


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
    """A list of turns: user -> instruction, assistant -> response, system -> SYSTEM (see make_plan)."""

    path: tuple[str, ...]
    role_key: str
    content_key: str
    label: str
    role_words: tuple[str, str, str]  # how this layout names user, system, assistant (for describe)

    def extract(self, record: dict[str, Any], out: Out, ignored: Counter[str]) -> None:
        turns = get_path(record, self.path)
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
                else SYSTEM
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
            out.add(target, _content_text(content, ignored))

    def describe(self) -> dict[str, str]:
        user, system, assistant = (
            f"{self.label}[{self.role_key}={w}].{self.content_key}" for w in self.role_words
        )
        return {"instruction": user, SYSTEM: system, "response": assistant}


@dataclass(frozen=True)
class _PassageQuestions(_Part):
    """MultiRC: passage{text, questions[{question, answers[{text, label}]}]}; correct answers only."""

    path: tuple[str, ...]
    label: str

    def extract(self, record: dict[str, Any], out: Out, ignored: Counter[str]) -> None:
        passage = get_path(record, self.path)
        out.add("input", text_of(_child(passage, "text")))
        questions = _child(passage, "questions")
        for q in questions if isinstance(questions, list) else []:
            out.add("instruction", text_of(_child(q, "question")))
            answers = _child(q, "answers")
            for a in answers if isinstance(answers, list) else []:
                if text_of(_child(a, "label")).lower() in ("1", "true"):
                    out.add("response", text_of(_child(a, "text")))

    def describe(self) -> dict[str, str]:
        p = self.label
        return {
            "instruction": f"{p}.questions[*].question",
            "input": f"{p}.text",
            "response": f"{p}.questions[*].answers[label=1].text",
        }


# --------------------------------------------------------------------------- detection


class Sample:
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
        return [v for v in (get_path(r, path) for r in self.records) if v is not None]

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


Rule = Callable[[Sample], "list[_Part] | None"]

_CONVERSATION_KEYS = ("messages", "conversations", "conversation", "chat", "dialog", "dialogue", "turns")


def _col(s: Sample, fld: str, key: str) -> _Column:
    return _Column(fld, (key,), s.name(key))


def _system_part(s: Sample) -> list[_Part]:
    key = s.first("system", "system_prompt")
    return [_col(s, SYSTEM, key)] if key and s.is_text(key) else []


def _conversation_rule(
    role_key: str, content_keys: tuple[str, ...], role_words: tuple[str, str, str]
) -> Rule:
    def rule(s: Sample) -> list[_Part] | None:
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


def _rule_self_instruct(s: Sample) -> list[_Part] | None:
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


def _rule_alpaca(s: Sample) -> list[_Part] | None:
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


def _rule_prompt_completion(s: Sample) -> list[_Part] | None:
    response = s.first(
        "completion", "response", "chosen", "canonical_solution", "output", "solution", "answer"
    )
    if "prompt" not in s.keys or response is None:
        return None
    return [_col(s, "instruction", "prompt"), *_system_part(s), _col(s, "response", response)]


def _rule_turns(s: Sample) -> list[_Part] | None:
    if "turns" not in s.keys or not s.is_str_list("turns"):
        return None
    parts: list[_Part] = [_col(s, "instruction", "turns")]
    reference = s.first("reference", "references")
    if reference:
        parts.append(_col(s, "response", reference))
    return parts


def _rule_flan_template(s: Sample) -> list[_Part] | None:
    if "input_template" not in s.keys:
        return None
    parts: list[_Part] = [_col(s, "instruction", "input_template")]
    if "target_template" in s.keys:
        parts.append(_col(s, "response", "target_template"))
    return parts


def _rule_niv2(s: Sample) -> list[_Part] | None:
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


def _rule_multirc(s: Sample) -> list[_Part] | None:
    if "passage" not in s.keys or not {"text", "questions"} <= s.dict_keys(("passage",)):
        return None
    return [_PassageQuestions(("passage",), s.name("passage"))]


_NUMBERED_CHOICE = re.compile(r"^(?:choice|option|ending)[ _]?(\d+|[a-e])$")


def _find_choices(s: Sample) -> _Choices | None:
    key = s.first("choices", "options", "endings", "candidates")
    if key and not s.is_text(key):
        return _Choices((key,), (), s.name(key))
    # choice0..choice3 (MMLU), choice1/choice2 (COPA), option_a..: sorted as numbers, not strings.
    suffixes = {k: m.group(1) for k in s.keys if (m := _NUMBERED_CHOICE.match(k))}
    numbered = sorted(suffixes, key=lambda k: (len(suffixes[k]), suffixes[k]))
    if len(numbered) >= 2:
        return _Choices(None, tuple(numbered), f"{s.name(numbered[0])}..{s.name(numbered[-1])}")
    return None


def _rule_question_answer(s: Sample) -> list[_Part] | None:
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


def _rule_sentence_pair(s: Sample) -> list[_Part] | None:
    first = s.first("premise", "sentence1", "sentence_1", "text1", "text_a", "question1")
    second = s.first("hypothesis", "sentence2", "sentence_2", "text2", "text_b", "question2")
    if first is None or second is None:
        return None
    parts: list[_Part] = [_col(s, "instruction", first), _col(s, "input", second)]
    label = s.first("label", "gold_label")
    if label:
        parts.append(_col(s, "response", label))
    return parts


def _rule_input_target(s: Sample) -> list[_Part] | None:
    source = s.first("input", "inputs", "goal")
    target = s.first("target", "targets", "output", "outputs")
    if source is None or target is None or not s.is_text(source):
        return None
    return [_col(s, "instruction", source), _col(s, "response", target)]


def _rule_text(s: Sample) -> list[_Part] | None:
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
    (1, "messages", _conversation_rule("role", ("content", "text"), ("user", "system", "assistant")),
     "messages|conversations[{role, content}]"),
    (1, "sharegpt", _conversation_rule("from", ("value", "text"), ("human", "system", "gpt")),
     "conversations[{from, value}]"),
    (2, "self_instruct", _rule_self_instruct, "instruction + instances[{input, output}]"),
    (2, "alpaca", _rule_alpaca, "instruction [+ input] + output|response"),
    (2, "prompt_completion", _rule_prompt_completion,
     "prompt + completion|response|chosen|canonical_solution"),
    (2, "turns", _rule_turns, "turns[] [+ reference[]]"),
    (2, "flan_template", _rule_flan_template, "input_template + target_template"),
    (2, "niv2", _rule_niv2, "definition + positive_examples"),
    (2, "multirc", _rule_multirc, "passage{text, questions}"),
    (3, "question_answer", _rule_question_answer,
     "question [+ choices|passage|rationale] + answer|answerKey"),
    (3, "sentence_pair", _rule_sentence_pair, "premise+hypothesis | sentence1+sentence2 [+ label]"),
    (3, "input_target", _rule_input_target, "input|goal + target"),
    (4, "text", _rule_text, "text|sentence|x [+ code|label|y]"),
)
_RULES_BY_NAME = {name: rule for _, name, rule, _ in _RULES}

_ID_CANDIDATES = ("id", "_id", "uid", "guid", "task_id", "question_id", "example_id", "qid", "idx", "iindex")
_GROUP_CANDIDATES = ("subject", "task", "category", "type")


def _detect_auto(s: Sample, name: str) -> tuple[str, list[_Part]]:
    for tier in sorted({t for t, *_ in _RULES}):
        matched = [(name, parts) for t, name, rule, _ in _RULES if t == tier and (parts := rule(s))]
        if len(matched) == 1:
            return matched[0]
        if len(matched) > 1:
            found = "; ".join(
                f"{name} (via {', '.join(_describe(parts).values())})" for name, parts in matched
            )
            raise InputError(
                name, f"ambiguous dataset schema: the keys {_key_list(s)} fit {found}. {_HINT}"
            )
    known = "; ".join(f"{name}: {signature}" for _, name, _, signature in _RULES)
    hint = _HINT
    if any(";" in k or "\t" in k for k in s.names.values()):
        hint += " A column name contains ';' or a tab: the CSV delimiter may be wrong."
    raise InputError(
        name, f"unknown dataset schema: found keys {_key_list(s)}; known schemas are {known}. {hint}"
    )


_HINT = "Pass --schema NAME, or map columns with --field instruction=COL --field response=COL."


def _key_list(s: Sample) -> str:
    return "[" + ", ".join(sorted(s.names.values(), key=str.lower)) + "]"


def _describe(parts: list[_Part], include_system_prompts: bool = False) -> dict[str, str]:
    described: dict[str, list[str]] = {}
    for part in parts:
        for fld, words in part.describe().items():
            if fld == SYSTEM and include_system_prompts:
                fld = "input"
            described.setdefault(fld, []).append(words)
    mapping = {f: " + ".join(described[f]) for f in FIELDS if f in described}
    if SYSTEM in described:  # said, so the mapping shows the system prompt was found and left out
        mapping[SYSTEM] = " + ".join(described[SYSTEM]) + " (not judged)"
    return mapping


def _pick_id(s: Sample) -> str | None:
    for key in _ID_CANDIDATES:
        if key in s.keys and s.is_text(key):
            values = [text_of(v) for v in s.values((key,))]
            if len(set(values)) == len(values):  # an id column that repeats is not an id
                return key
    return None


def _pick_group(s: Sample) -> str | None:
    for key in _GROUP_CANDIDATES:
        values = s.values((key,)) if key in s.keys else []
        if values and all(isinstance(v, str) for v in values):
            # A group has few distinct values; a column unique per record (NIv2 "task") is an id.
            if len(set(values)) <= max(2, len(s.records) // 2):
                return key
    return None


def _explicit_path(s: Sample, dotted: str, what: str) -> tuple[str, ...]:
    path = _split_path(dotted, s.keys)
    if not path or path[0] not in s.keys:
        raise ConfigError(f"{what} {dotted!r} is not a column of the dataset; columns found: {_key_list(s)}")
    return path


@dataclass(frozen=True)
class Plan:
    detected: DetectedSchema
    parts: tuple[_Part, ...]
    id_path: tuple[str, ...] | None
    group_path: tuple[str, ...] | None
    columns: tuple[str, ...]  # top-level columns to read, spelled as in the file

    @property
    def conversational(self) -> bool:
        """Turns interleave user and assistant text: the whole example keeps their order."""
        return any(isinstance(p, (_Conversation, _History)) for p in self.parts)


def make_plan(name: str, s: Sample, options: DatasetOptions) -> Plan:
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
                name, f"does not fit --schema {name} ({signature}); keys found: {_key_list(s)}. {_HINT}"
            )
        parts = found
    else:
        name, parts = _detect_auto(s, name)
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
        mapping=_describe(parts, options.include_system_prompts),
        id_field=options.id_field or (s.name(id_path[0]) if id_path else CONTENT_HASH_ID_FIELD),
        group_field=options.group_by or (s.name(group_path[0]) if group_path else None),
    )
    columns = tuple(sorted(s.name(k) for k in wanted if k in s.keys))
    return Plan(detected, tuple(parts), id_path, group_path, columns)


