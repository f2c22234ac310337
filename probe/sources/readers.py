"""Dataset file reading: records in, one ``(row, location, record)`` at a time, from any source.

A dataset is a file (JSONL, optionally ``.gz``/``.zst``; a JSON document; Parquet; CSV/TSV)
at a local path or an object-store URI (``s3://``, ``gs://``), or records already in memory
(a list of dicts, a ``pyarrow.Table``, a pandas DataFrame). Every file goes through
:mod:`probe.sources._io`, so datasets get the corpus reader's guarantees: the magic bytes must
agree with the name, compressed streams are read to a verified end, lines are read with a
length limit, and a bad record raises :class:`~probe.errors.InputError` naming the file and
line (or, with ``DatasetOptions.skip_bad_records``, is counted with its reason and place).
Dataset files are data: no pickle, no eval.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

from probe.errors import InputError
from probe.sources._io import (
    BOM,
    STREAM_ERRORS,
    BadRecord,
    bad_record,
    check_magic,
    decode_utf8_line,
    format_from_name,
    iter_lines,
    json_error_message,
    open_binary,
    open_stream,
    parse_json_line,
    split_compression,
    stream_error,
)
from probe.sources.dataset_model import FORMATS, DatasetOptions, DatasetReadStats
from probe.sources.detect import Sample

__all__ = ["Dataset", "RawRecord", "dataset_name", "open_dataset", "peek", "read_records"]

Dataset = Any  # str | os.PathLike[str] | list[dict] | pyarrow.Table | pandas.DataFrame
"""What the dataset functions accept: a path or URI, or records in memory."""

# A record as read: 0-based row, human location ("line 12", "row 3"), parsed value.
RawRecord = tuple[int, str, Any]

SAMPLE_RECORDS = 50  # records peeked for detection

_SUFFIX_FORMATS: tuple[tuple[str, str], ...] = (
    (".jsonl", "jsonl"),
    (".ndjson", "jsonl"),
    (".jsonlines", "jsonl"),
    (".json", "json"),
    (".parquet", "parquet"),
    (".pq", "parquet"),
    (".csv", "csv"),
    (".tsv", "tsv"),
    (".tab", "tsv"),
)
_DECODER = json.JSONDecoder()  # the stdlib's: NaN reads as a float (a missing value), not an error


@dataclass
class _Source:
    """One dataset opened for reading: where it is, how to read it, where the accounting goes."""

    name: str  # the path or URI as given, or "<records>" for data in memory
    fmt: str  # one of FORMATS, or "records" (in memory)
    compression: str | None
    data: Any  # the in-memory records (a list or a pyarrow.Table); None for a file
    options: DatasetOptions
    stats: DatasetReadStats
    ignored: Counter[str]

    def bad(self, location: str, bad: BadRecord) -> None:
        """A bad record: raise naming the place, or (skip_bad_records) count it and go on."""
        bad_record(self.name, location, bad, self.options.skip_bad_records, self.stats)
        self.stats.records += 1


# --------------------------------------------------------------------------- what the dataset is


def _pandas_frame(dataset: Any) -> bool:
    # by the type's name, never through the pandas module: pandas is never imported here, and another
    # thread (pyarrow converts lazily) may be importing it right now, half-initialized in sys.modules
    return any(c.__name__ == "DataFrame" and c.__module__.partition(".")[0] == "pandas"
               for c in type(dataset).__mro__)


def _arrow_table(dataset: Any) -> bool:
    pyarrow = sys.modules.get("pyarrow")
    return pyarrow is not None and isinstance(dataset, pyarrow.Table)


def dataset_name(dataset: Dataset) -> str:
    """How messages and reports name a dataset: its path or URI, or ``<records>`` for data in memory."""
    if isinstance(dataset, (list, tuple)) or _arrow_table(dataset) or _pandas_frame(dataset):
        return "<records>"
    if isinstance(dataset, (str, os.PathLike)):
        return os.fspath(dataset)
    raise TypeError(
        f"a dataset is a path, a URI, a list of dicts, a pyarrow.Table or a pandas.DataFrame, "
        f"not {type(dataset).__name__}"
    )


def resolve_format(name: str, options: DatasetOptions) -> tuple[str, str | None]:
    """(format, compression) from DatasetOptions.file_format or the file name."""
    base = name.rstrip("/").rsplit("/", 1)[-1]
    _, compression = split_compression(base)
    found = format_from_name(base, _SUFFIX_FORMATS, frozenset(FORMATS))
    fmt = options.file_format or (found[0] if found else None)
    if fmt is None:
        raise InputError(
            name, f"cannot tell the file format from the name; pass --format ({', '.join(FORMATS)})"
        )
    if fmt == "parquet" and compression:
        raise InputError(name, "compressed Parquet files are not supported; Parquet compresses internally")
    return fmt, compression


def open_dataset(
    dataset: Dataset, options: DatasetOptions, stats: DatasetReadStats, ignored: Counter[str]
) -> _Source:
    """Name the dataset and decide how to read it (nothing is read yet)."""
    name = dataset_name(dataset)
    if name != "<records>":
        fmt, compression = resolve_format(name, options)
        return _Source(name, fmt, compression, None, options, stats, ignored)
    data = dataset
    if _pandas_frame(dataset):
        import pyarrow as pa

        data = pa.Table.from_pandas(dataset, preserve_index=False)
    return _Source(name, "records", None, data, options, stats, ignored)


# --------------------------------------------------------------------------- file formats


def _iter_jsonl(src: _Source) -> Iterator[RawRecord]:
    limit = src.options.max_line_bytes
    row = 0
    with open_stream(src.name, "jsonl", src.compression) as stream:
        for line_no, start, line, _length in iter_lines(stream, src.name, limit, None):
            location = f"line {line_no + 1}"
            if line is None:
                src.bad(location, BadRecord("line too long", f"line longer than {limit:,} bytes (max_line_bytes)"))
                row += 1
                continue
            if line_no == 0 and line.startswith(BOM):
                line, start = line[len(BOM) :], start + len(BOM)
            if not line.strip():
                src.ignored["blank line"] += 1
                continue
            try:
                record = parse_json_line(decode_utf8_line(line, start, src.compression is not None), _DECODER)
            except BadRecord as bad:
                src.bad(location, bad)
                row += 1
                continue
            yield row, location, record
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


def _iter_json(src: _Source) -> Iterator[RawRecord]:
    """A JSON document: a list of records, or an object holding one. Read whole (not streamed)."""
    name = src.name
    with open_stream(name, "json", src.compression) as stream:
        try:
            raw = stream.read()
        except STREAM_ERRORS as e:
            raise stream_error(name, e) from e
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise InputError(name, "not valid UTF-8; the file must be UTF-8", f"line {line}") from e
    try:
        document = json.loads(text)
    except json.JSONDecodeError as e:
        if e.msg == "Extra data":  # JSON Lines saved as .json (Hugging Face `to_json` does this)
            del raw, text
            yield from _iter_jsonl(src)
            return
        raise InputError(name, json_error_message(e), f"line {e.lineno}") from e
    except RecursionError as e:
        raise InputError(name, "invalid JSON: nested too deeply") from e
    records = document
    if isinstance(document, dict):
        lists = {k: v for k, v in document.items() if isinstance(v, list)}
        key = next((k for k in lists if k.lower() in _RECORD_LIST_KEYS), None)
        if key is None and len(lists) == 1:
            key = next(iter(lists))
        if key is None:
            raise InputError(
                name,
                f"a JSON object without one list of records (keys: {sorted(document)[:20]}); expected a "
                f"top-level array or an object with one of {list(_RECORD_LIST_KEYS)}",
            )
        records = lists[key]
    if not isinstance(records, list):
        raise InputError(name, f"expected a JSON array of records, found {type(records).__name__}")
    for row, record in enumerate(records):
        yield row, f"row {row + 1}", record


def _iter_parquet(src: _Source, columns: Sequence[str] | None, batch_size: int) -> Iterator[RawRecord]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    name = src.name
    with open_binary(name) as native:
        try:
            head = native.read(4)
            native.seek(0)
        except OSError as e:
            raise InputError(name, f"read error: {e}") from e
        check_magic(name, "parquet", None, head)
        try:
            parquet = pq.ParquetFile(native, page_checksum_verification=True)
        except (pa.ArrowException, OSError, ValueError) as e:
            raise InputError(name, f"not a readable Parquet file: {e}") from e
        row = 0
        try:
            for batch in parquet.iter_batches(batch_size=batch_size, columns=columns):
                for record in batch.to_pylist():
                    yield row, f"row {row + 1}", record
                    row += 1
        except (pa.ArrowException, OSError) as e:
            raise InputError(name, f"Parquet read failed (truncated or corrupt?): {e}", f"row {row + 1}") from e


def _iter_memory(src: _Source, columns: Sequence[str] | None, batch_size: int) -> Iterator[RawRecord]:
    """Records in memory: a list (of dicts) as it is; an Arrow table batch by batch, columns projected."""
    if isinstance(src.data, (list, tuple)):
        for row, record in enumerate(src.data):
            yield row, f"row {row + 1}", record
        return
    table = src.data.select(list(columns)) if columns is not None else src.data
    row = 0
    for batch in table.to_batches(max_chunksize=batch_size):
        for record in batch.to_pylist():
            yield row, f"row {row + 1}", record
            row += 1


def _iter_csv(src: _Source) -> Iterator[RawRecord]:
    """CSV/TSV with a header row; strict quoting, explicit field limit, errors with record and line."""
    name, options = src.name, src.options
    limit = options.csv_field_size_limit
    delimiter = options.delimiter or ("\t" if src.fmt == "tsv" else ",")

    def next_row(reader: Any) -> list[str] | None:
        # The limit is process-global in the csv module: set it around each read, then restore.
        previous = csv.field_size_limit(limit)
        try:
            return next(reader, None)
        finally:
            csv.field_size_limit(previous)

    with (
        open_stream(name, src.fmt, src.compression) as binary,
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
                    name,
                    f"malformed CSV in {what} (lines {start}-{reader.line_num}): {e}{hint}",
                    f"line {start}",
                ) from e
            except UnicodeDecodeError as e:
                raise InputError(
                    name,
                    "not valid UTF-8 (at or after this line); the file must be UTF-8 — there is no --encoding "
                    "option, convert it first (e.g. iconv -f cp1252 -t utf-8)",
                    f"line {start}",
                ) from e
            except STREAM_ERRORS as e:
                raise stream_error(name, e, f"line {start}") from e
            if fields is None:
                return
            if not fields:
                src.ignored["blank line"] += 1
                continue
            if header is None:
                header = fields
                duplicates = sorted({h for h in header if sum(x.lower() == h.lower() for x in header) > 1})
                if duplicates:
                    raise InputError(name, f"duplicate column names in the header: {duplicates}", "line 1")
                continue
            record_no += 1
            if len(fields) != len(header):
                message = f"record {record_no} has {len(fields)} fields, the header has {len(header)}"
                src.bad(f"line {start}", BadRecord("wrong field count", message))
                row += 1
                continue
            yield row, f"line {start}", {k: (v if v != "" else None) for k, v in zip(header, fields, strict=True)}
            row += 1


# --------------------------------------------------------------------------- records


def _objects(src: _Source, records: Iterator[RawRecord]) -> Iterator[RawRecord]:
    """Only records that are objects pass; anything else is a bad record (raised or counted)."""
    for row, location, value in records:
        if isinstance(value, dict):
            yield row, location, value
        else:
            kind = type(value).__name__
            src.bad(location, BadRecord("not an object", f"expected a JSON object per record, found {kind}"))


def read_records(
    src: _Source, columns: Sequence[str] | None = None, batch_size: int = SAMPLE_RECORDS
) -> Iterator[RawRecord]:
    """The source's records (objects only). ``columns`` projects Parquet and Arrow reads."""
    if src.fmt == "jsonl":
        records = _iter_jsonl(src)
    elif src.fmt == "json":
        records = _iter_json(src)
    elif src.fmt == "parquet":
        records = _iter_parquet(src, columns, batch_size)
    elif src.fmt == "records":
        records = _iter_memory(src, columns, batch_size)
    else:
        records = _iter_csv(src)
    return _objects(src, records)


def lower_record(raw: RawRecord) -> tuple[int, str, dict[str, Any]]:
    """Keys lower-cased: detection and extraction are case-insensitive."""
    row, location, value = raw
    return row, location, {(k.lower() if isinstance(k, str) else str(k)): v for k, v in value.items()}


def peek(src: _Source) -> tuple[list[tuple[int, str, dict[str, Any]]], Sample, Iterator[RawRecord]]:
    """Read the first records and build the detection sample (original key spellings kept)."""
    records = read_records(src)
    raw_head = list(islice(records, SAMPLE_RECORDS))
    names: dict[str, str] = {}
    for _, _, value in raw_head:
        for key in value:
            if isinstance(key, str):
                names.setdefault(key.lower(), key)
    head = [lower_record(r) for r in raw_head]
    return head, Sample([r for _, _, r in head], names), records
