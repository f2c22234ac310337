"""Fine-tuning and benchmark datasets: files (or records in memory) in, :class:`Example` batches out.

The public entry point. Reading is split in three: :mod:`probe.sources.readers` turns a
file (JSONL, optionally ``.gz``/``.zst``; a JSON array; Parquet; CSV/TSV; local or ``s3://``)
or in-memory records (a list of dicts, a ``pyarrow.Table``, a pandas DataFrame) into
records; :mod:`probe.sources.detect` peeks at the first of them to *detect* the layout and
plan which columns feed ``instruction``, ``input`` and ``response``; this module streams the
records through that plan into examples, stripping chat-template markers
(:mod:`probe.sources.templates`) so that ``<|im_start|>`` never creates n-gram hits.

Why the care: the scanner reports per-field coverage, so the mapping must be explicit
(:class:`DetectedSchema.mapping` says it in words), and no record may vanish silently:
records with no text are skipped *and counted* in :class:`DatasetReadStats`; malformed input
raises :class:`~probe.errors.InputError` naming the file and line or row, unless
``DatasetOptions.skip_bad_records`` asks to skip and count bad records instead.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterator
from itertools import chain
from typing import Any

from probe.errors import NothingAssessableError
from probe.sources._io import count_skip
from probe.sources.dataset_model import (
    FIELDS,
    FORMATS,
    SCHEMAS,
    DatasetOptions,
    DatasetReadStats,
    DetectedSchema,
    Example,
    validate_options,
)
from probe.sources.detect import SYSTEM, Out, Plan, get_path, make_plan, text_of
from probe.sources.readers import Dataset, dataset_name, lower_record, open_dataset, peek, read_records
from probe.sources.templates import (
    DEFAULT_MARKER_LITERALS,
    DEFAULT_TEMPLATE_MARKERS,
    compile_markers,
    strip_template_markers,
)

__all__ = [
    "DEFAULT_TEMPLATE_MARKERS",
    "FIELDS",
    "FORMATS",
    "SCHEMAS",
    "DatasetOptions",
    "DatasetReadStats",
    "DetectedSchema",
    "Example",
    "dataset_name",
    "detect_schema",
    "read_examples",
    "strip_template_markers",
]

_compile_markers = compile_markers  # the name tests and older callers use
_ = DEFAULT_MARKER_LITERALS  # re-exported for callers that import it from here
_SURROGATES = re.compile("[\ud800-\udfff]")


def detect_schema(dataset: Dataset, options: DatasetOptions) -> DetectedSchema:
    """Peek at the first records and say which layout the dataset has and what maps where.

    ``dataset`` is a path or URI, a list of dicts, a ``pyarrow.Table`` or a pandas DataFrame.
    Raises InputError for an unknown or ambiguous layout (listing keys and candidates),
    ConfigError for bad options, NothingAssessableError for a dataset without records.
    """
    validate_options(options)
    src = open_dataset(dataset, options, DatasetReadStats(), Counter())
    head, sample, records = peek(src)
    close = getattr(records, "close", None)
    if close:
        close()
    if not head:
        raise NothingAssessableError(f"{src.name}: the dataset holds no records")
    return make_plan(src.name, sample, options).detected


def read_examples(
    dataset: Dataset, options: DatasetOptions, stats: DatasetReadStats | None = None
) -> Iterator[list[Example]]:
    """Stream the dataset as batches of at most ``options.batch_size`` examples.

    Options are validated and the schema detected *now* (errors surface at the call);
    records are read lazily. Memory is bounded by the batch, except for JSON-array files,
    which the json module parses whole. ``stats`` (if given) is filled in as batches are
    consumed; a dataset without records yields nothing and leaves ``stats.schema`` as None.
    """
    validate_options(options)
    stats = stats if stats is not None else DatasetReadStats()
    ignored: Counter[str] = Counter()
    src = open_dataset(dataset, options, stats, ignored)
    head, sample, records = peek(src)
    if not head:
        stats.ignored = dict(ignored)
        return iter(())
    plan = make_plan(src.name, sample, options)
    stats.schema = plan.detected
    rows: Iterator[tuple[int, str, dict[str, Any]]]
    if src.fmt in ("parquet", "records"):  # re-read with only the needed columns (the peek read all)
        close = getattr(records, "close", None)
        if close:
            close()
        rows = (lower_record(r) for r in read_records(src, plan.columns, options.batch_size))
    else:
        rows = chain(head, (lower_record(r) for r in records))
    return _batches(src.name, plan, rows, options, stats, ignored)


def _batches(
    name: str,
    plan: Plan,
    rows: Iterator[tuple[int, str, dict[str, Any]]],
    options: DatasetOptions,
    stats: DatasetReadStats,
    ignored: Counter[str],
) -> Iterator[list[Example]]:
    pattern = compile_markers(tuple(options.template_markers)) if options.strip_templates else None
    batch: list[Example] = []
    hash_ids_seen: Counter[str] = Counter()  # content-hash ids given so far (identical records get -2, -3, ...)
    for row, location, record in rows:
        stats.records += 1
        example = _example(plan, row, record, pattern, ignored, options.include_system_prompts)
        if example is not None and not plan.id_path:
            example = _with_content_id(example, hash_ids_seen)
        if example is None:
            keys = ", ".join(sorted(record)[:12]) or "none"
            count_skip(stats, name, location, "no text fields", f"no text fields (keys: {keys})")
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


def _clean(text: str, pattern: re.Pattern[str] | None) -> str:
    if _SURROGATES.search(text):  # lone surrogates from JSON "\ud800" cannot be encoded later
        text = _SURROGATES.sub("\ufffd", text)
    if pattern is not None:
        text = strip_template_markers(text, pattern)
    return text


def _usable(chunks: Any) -> list[str]:
    return [c for c in chunks if c and not c.isspace()]


def _example(
    plan: Plan, row: int, record: dict[str, Any], pattern: re.Pattern[str] | None, ignored: Counter[str],
    include_system: bool = False,
) -> Example | None:
    out = Out()
    for part in plan.parts:
        part.extract(record, out, ignored)
    system = out.pop(SYSTEM, None)
    if system is not None:
        if include_system:  # read as the input field, before any other input (as a chat template puts it)
            out["input"] = system + out.get("input", [])
        else:
            ignored["system prompt (not judged)"] += 1
    fields: dict[str, str] = {}
    for name in FIELDS:
        chunks = _usable(out.get(name, ()))
        if not chunks:
            continue
        text = _clean("\n".join(chunks), pattern)
        if text and not text.isspace():
            fields[name] = text
    if not fields:
        return None
    whole = None
    if plan.conversational:  # turns in the order spoken, not all user turns before all answers
        spoken = (c for f, c in out.sequence if f != SYSTEM or include_system)
        whole = "\n".join(_usable(_clean(c, pattern) for c in _usable(spoken)))
    id_value = text_of(get_path(record, plan.id_path)) if plan.id_path else ""
    group_value = get_path(record, plan.group_path) if plan.group_path else None
    group = (
        text_of(group_value)
        if group_value is not None and not isinstance(group_value, (list, dict))
        else None
    )
    # ids and groups are written to Parquet/JSON too: lone surrogates become U+FFFD like the text
    id_value = _SURROGATES.sub("\ufffd", id_value)
    group = _SURROGATES.sub("\ufffd", group) if group else group
    # Without an id column, _batches replaces the row-number id with a content hash (see content_id).
    return Example(id=id_value or str(row), row=row, group=group or None, fields=fields, whole=whole)


# 64 bits of SHA-256: two different examples share a hash with odds ~n²/2⁶⁵ (3e-8 for a million); even
# then ids stay unique, the second one numbered like a duplicate
CONTENT_ID_HEX = 16


def content_id(example: Example) -> str:
    """A stable id for an example of a dataset without an id column: a hash of its content.

    Row numbers shift when one row is inserted at the top, so a baseline diff by row would call
    every later example "new"; a hash of what the example *says* (its fields as scanned, its
    group, its conversation order) stays with the example wherever it moves. SHA-256 of a
    canonical JSON form, first :data:`CONTENT_ID_HEX` hex digits.
    """
    canon = json.dumps({"fields": example.fields, "group": example.group, "whole": example.whole},
                       sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canon.encode("utf-8", "surrogatepass")).hexdigest()[:CONTENT_ID_HEX]


def _with_content_id(example: Example, seen: Counter[str]) -> Example:
    """``example`` with its content hash as id; the k-th identical example (k >= 2) gets ``HASH-k``,
    so ids stay unique (duplicates are numbered in dataset order) and the first copy keeps the bare hash."""
    base = content_id(example)
    seen[base] += 1
    ident = base if seen[base] == 1 else f"{base}-{seen[base]}"
    return Example(id=ident, row=example.row, group=example.group, fields=example.fields, whole=example.whole)
