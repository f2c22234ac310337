"""The dataset reader's public types: canonical fields, options, the detected schema, read accounting.

They live apart from detection (:mod:`probe.sources.detect`) and file reading
(:mod:`probe.sources.readers`) because both use them; :mod:`probe.sources.datasets` re-exports
them as the public entry point.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from probe.errors import ConfigError
from probe.sources.templates import DEFAULT_TEMPLATE_MARKERS, compile_markers

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

# DetectedSchema.id_field (and summary.json dataset.id_field) of a dataset without an id column: its
# example ids are hashes of their content, stable when rows are inserted or reordered
CONTENT_HASH_ID_FIELD = "(content hash)"


@dataclass(frozen=True, slots=True)
class Example:
    """One dataset record as the scorer sees it."""

    id: str  # id field / detected id column, else a hash of the example's content (datasets.content_id)
    row: int  # 0-based record index in the file
    group: str | None  # value of the group column (subject, task, category, ...)
    fields: dict[str, str]  # subset of FIELDS -> text; missing and empty fields are absent
    # A conversation's turns joined in the order they were spoken; None = fields in FIELDS order.
    whole: str | None = None

    def whole_text(self) -> str:
        """All the example's text as one string, conversation order kept for multi-turn chats.

        Joining the fields (all user turns, then all assistant turns) would put words side by
        side that never were, and n-grams across them would match nothing real.
        """
        if self.whole is not None:
            return self.whole
        return "\n".join(self.fields[f] for f in FIELDS if self.fields.get(f))


@dataclass(frozen=True)
class DatasetOptions:
    """How to read a dataset. Defaults mean "detect everything"."""

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
    delimiter: str | None = None  # CSV/TSV field separator (one character); None = "," for csv, tab for tsv
    skip_bad_records: bool = False  # False: the first bad record raises InputError; True: skip and count it
    # system prompts (a "system" turn or column) are left out of the judged text by default: the same
    # prompt on every row dilutes coverage; True reads them as the input field, as before
    include_system_prompts: bool = False


@dataclass(frozen=True)
class DetectedSchema:
    """The layout found (or forced) and, in words, which source columns feed which field."""

    name: str  # one of SCHEMAS
    mapping: dict[str, str]  # canonical field -> description, e.g. "question.stem + question.choices"
    id_field: str | None  # the id column, or CONTENT_HASH_ID_FIELD when ids are content hashes
    group_field: str | None


@dataclass
class DatasetReadStats:
    """Input accounting filled in while reading: every record is an example or a counted skip."""

    records: int = 0
    examples: int = 0
    skipped: int = 0  # records without text, and bad records when skip_bad_records is set
    skipped_reasons: dict[str, int] = field(default_factory=dict)  # reason -> count
    skipped_examples: list[str] = field(default_factory=list)  # "file:line N: reason", first few
    schema: DetectedSchema | None = None
    ignored: dict[str, int] = field(default_factory=dict)  # parts left out: blank lines, tool turns, ...


def validate_options(options: DatasetOptions) -> None:
    """Option conflicts first, before any file is opened (STYLE rule 6)."""
    if options.schema is not None and options.schema not in SCHEMAS:
        raise ConfigError(f"unknown schema {options.schema!r}; choose one of {', '.join(SCHEMAS)}")
    if options.schema == "fields" and not options.field_map:
        raise ConfigError("schema 'fields' needs field_map (FIELD=COLUMN) mappings")
    if options.field_map and options.schema not in (None, "fields"):
        raise ConfigError("field_map mappings replace schema detection; do not combine them with a schema")
    for pair in options.field_map:
        if len(pair) != 2 or pair[0] not in FIELDS or not isinstance(pair[1], str) or not pair[1]:
            raise ConfigError(
                f"bad field_map entry {pair!r}: expected (FIELD, COLUMN) pairs, FIELD=COLUMN with FIELD in "
                f"{', '.join(FIELDS)}"
            )
    if options.file_format is not None and options.file_format not in FORMATS:
        raise ConfigError(f"unknown format {options.file_format!r}; choose one of {', '.join(FORMATS)}")
    for name in ("batch_size", "csv_field_size_limit", "max_line_bytes"):
        if getattr(options, name) < 1:
            raise ConfigError(f"{name} must be at least 1")
    if options.delimiter is not None and (
        not isinstance(options.delimiter, str) or len(options.delimiter) != 1 or options.delimiter in "\r\n\""
    ):
        raise ConfigError(
            f"delimiter must be a single character other than a quote or a line break, got {options.delimiter!r}"
        )
    if options.strip_templates:
        compile_markers(tuple(options.template_markers))
