"""Stream corpus shards (Parquet, JSONL, gzip/zstd JSONL, plain text) as bounded batches of documents.

Why this module is so strict: an index build commits a shard only after its reader
finished, so the reader is the one place that can tell a complete shard from a
damaged one. Compressed streams are therefore read to a *verified* end (python-zstandard's
``stream_reader`` silently accepts a truncated file; gzip only notices at the very end),
Parquet pages are CRC-checked, and every bad record is either an :class:`InputError`
naming ``file:line`` / ``file:row`` or, with ``skip_bad_records``, counted with its location.
Memory stays bounded whatever the file size: lines are read with a length limit,
decompression is fed in small slices, and Parquet is read as column-projected record batches.

Opening goes through :func:`probe.sources._io.open_binary` only, so local paths and object-store URIs
(``s3://``, ``gs://``, ``file://``; via ``pyarrow.fs``) share all the format logic.
Heavy dependencies (pyarrow, zstandard, xxhash) are imported inside the functions that
need them, to keep ``import probe`` cheap.
"""

from __future__ import annotations

import fnmatch
import json
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from probe.errors import ConfigError, InputError
from probe.sources._io import (
    BOM,
    BadRecord,
    bad_record,
    check_magic,
    decode_utf8_line,
    format_from_name,
    is_uri,
    iter_lines,
    open_binary,
    open_stream,
    parse_json_line,
    read_call,
    read_exact,
    refuse_credentials,
)

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq

__all__ = [
    "SHARD_FORMATS",
    "DocBatch",
    "ReaderOptions",
    "ShardPart",
    "ShardReadStats",
    "ShardRef",
    "discover_shards",
    "fingerprint_shard",
    "read_document",
    "read_shard",
    "shard_parts",
]

SHARD_FORMATS = ("parquet", "jsonl", "jsonl.gz", "jsonl.zst", "txt")

# Longest suffixes first, so "x.jsonl.gz" is not taken for something else.
_SUFFIX_FORMATS: tuple[tuple[str, str], ...] = (
    (".parquet", "parquet"),
    (".jsonl", "jsonl"),
    (".ndjson", "jsonl"),
    (".txt", "txt"),
)
_EXTENSIONS_HELP = ".jsonl.gz, .ndjson.gz, .jsonl.zst, .ndjson.zst, .parquet, .jsonl, .ndjson, .txt"

_FINGERPRINT_CHUNK = 8 << 20
DEFAULT_ID_FIELD = "id"  # read when ReaderOptions.id_field is None and the shard has it
DEFAULT_SOURCE_FIELD = "source"  # likewise for ReaderOptions.source_field
_GLOB_CHARS = frozenset("*?[")


# --------------------------------------------------------------------------- public types


@dataclass(frozen=True, slots=True)
class ShardRef:
    """One corpus shard as discovered: identity (uri, size, mtime) plus how to read it."""

    uri: str  # absolute local path, or a URI with a scheme (s3://...) for object storage
    format: str  # one of SHARD_FORMATS
    size: int  # bytes
    mtime_ns: int


@dataclass(frozen=True, slots=True)
class ShardPart:
    """A slice of a shard that can be read (and committed) independently."""

    index: int  # 0-based part number
    total: int  # number of parts of this shard
    row_groups: tuple[int, ...] | None  # Parquet row groups of this part; None = whole file


@dataclass(frozen=True)
class ReaderOptions:
    """How to pull documents out of a shard, and how much damage to tolerate."""

    text_field: str = (
        "text"  # Parquet column or JSONL key holding the text (dotted path a.b allowed for JSONL)
    )
    # Column/key with a document id, and one with a source label. None reads the conventional
    # "id" / "source" column when the shard has one (and nothing when it has not): shards
    # usually carry them, and provenance without them names only a row.
    id_field: str | None = None
    source_field: str | None = None
    batch_docs: int = 8192  # max documents per batch
    batch_bytes: int = 32 << 20  # max text bytes per batch (approximate: a batch holds at least one doc)
    max_record_bytes: int = 256 << 20  # a larger line/document is a bad record (error naming file:line)
    max_decompressed_bytes: int | None = None  # per-file cap against gzip/zstd (and Parquet) bombs
    skip_bad_records: bool = False  # False: first bad record raises InputError; True: skip, count, remember

    def __post_init__(self) -> None:
        if not self.text_field:
            raise ConfigError("text_field must not be empty")
        for name in ("batch_docs", "batch_bytes", "max_record_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.max_decompressed_bytes is not None and self.max_decompressed_bytes < 1:
            raise ConfigError(
                f"max_decompressed_bytes must be positive or None (unlimited), got {self.max_decompressed_bytes!r}"
            )


@dataclass
class DocBatch:
    """Up to ``batch_docs`` documents with their positions in the shard (for provenance)."""

    texts: list[str]  # document texts (never None, never empty/whitespace-only)
    rows: np.ndarray  # int64, 0-based record index in the shard (Parquet row; JSONL physical line; txt 0)
    ids: list[str] | None
    sources: list[str] | None


@dataclass
class ShardReadStats:
    """What a read saw; filled in while :func:`read_shard` runs, so partial reads are visible too."""

    records: int = 0  # records seen (lines with content / rows)
    docs: int = 0  # documents yielded
    bytes_read: int = 0  # text bytes yielded (utf-8)
    skipped: int = 0  # bad records skipped (only with skip_bad_records)
    skipped_reasons: dict[str, int] = field(default_factory=dict)  # reason -> count
    skipped_examples: list[str] = field(default_factory=list)  # first 20 "file:line: reason" strings
    blank_lines: int = 0  # blank lines in JSONL (ignored, counted, not an error)


# --------------------------------------------------------------------------- discovery


def discover_shards(paths: Sequence[str]) -> list[ShardRef]:
    """Expand files, globs (``*``, ``**``) and directories into sorted, de-duplicated shards.

    Explicitly named files must have a known extension (a typo should not silently
    index nothing); files found by a walk or a glob with other extensions are ignored.
    Every shard's first bytes are sniffed, so a gzip file named ``.jsonl`` fails here,
    before any work is done. Directory walks never follow symlinked directories, so a
    symlink loop cannot recurse forever.
    """
    if isinstance(paths, str):  # a bare string is a Sequence[str] of characters
        paths = [paths]
    if not paths:
        raise ConfigError("no corpus paths given")
    refs: list[tuple[str, ShardRef]] = []  # (dedupe key, ref)
    for path in paths:
        if is_uri(path):
            refs.extend(_discover_uri(path))
        else:
            refs.extend(_discover_local(path))
    refs.sort(key=lambda item: item[1].uri)
    seen: set[str] = set()
    unique: list[ShardRef] = []
    for key, ref in refs:
        if key not in seen:
            seen.add(key)
            unique.append(ref)
    return unique


def _format_for_name(name: str) -> str | None:
    found = format_from_name(name, _SUFFIX_FORMATS, frozenset({"jsonl"}))
    if found is None:
        return None
    fmt, compression = found
    return fmt if compression is None else {"gzip": "jsonl.gz", "zstd": "jsonl.zst"}[compression]


def _is_glob(path: str) -> bool:
    return any(ch in _GLOB_CHARS for ch in path)


def _match_segments(pattern: list[str], segments: list[str]) -> bool:
    """Full match of path segments against glob segments; ``**`` spans zero or more segments."""
    if not pattern:
        return not segments
    head = pattern[0]
    if head == "**":
        return any(_match_segments(pattern[1:], segments[i:]) for i in range(len(segments) + 1))
    return (
        bool(segments)
        and fnmatch.fnmatchcase(segments[0], head)
        and _match_segments(pattern[1:], segments[1:])
    )


def _could_match_below(pattern: list[str], segments: list[str]) -> bool:
    """True when something below the directory ``segments`` may still match (prunes the walk)."""
    if not segments:
        return True
    if not pattern:
        return False
    if pattern[0] == "**":
        return True
    return fnmatch.fnmatchcase(segments[0], pattern[0]) and _could_match_below(pattern[1:], segments[1:])


def _split_glob(path: str, sep: str) -> tuple[str, list[str]]:
    """Split ``a/b/*/c*.jsonl`` into the literal base ``a/b`` and the glob segments."""
    parts = path.split(sep)
    for i, part in enumerate(parts):
        if _is_glob(part):
            base = sep.join(parts[:i])
            return (base if base or i == 0 else sep), [p for p in parts[i:] if p]
    return path, []


def _glob_selects(pattern: list[str], rel: list[str]) -> bool:
    """A file is selected when it, or one of its directories, matches the pattern (like shell globs of dirs)."""
    return any(_match_segments(pattern, rel[:k]) for k in range(1, len(rel) + 1))


def _discover_local(path: str) -> list[tuple[str, ShardRef]]:
    files: list[tuple[str, str]] = []  # (absolute path, format)
    if _is_glob(path) and not os.path.lexists(path):  # "data[1].jsonl" that exists is a name, not a pattern
        base, pattern = _split_glob(os.path.abspath(path), os.sep)
        if os.path.isdir(base):
            for dirpath, dirnames, filenames in os.walk(base, onerror=_raise_walk_error, followlinks=False):
                rel_dir = _rel_segments(base, dirpath)
                dirnames[:] = sorted(
                    d
                    for d in dirnames
                    if _could_match_below(pattern, [*rel_dir, d]) or _glob_selects(pattern, [*rel_dir, d])
                )
                for name in sorted(filenames):
                    fmt = _format_for_name(name)
                    if fmt is not None and _glob_selects(pattern, [*rel_dir, name]):
                        files.append((os.path.join(dirpath, name), fmt))
        if not files:
            raise InputError(path, f"glob pattern matched no shard files (looked for {_EXTENSIONS_HELP})")
    elif os.path.isdir(path):
        files = _walk_dir(os.path.abspath(path))
        if not files:
            raise InputError(path, f"directory contains no shard files (looked for {_EXTENSIONS_HELP})")
    elif os.path.lexists(path):
        fmt = _format_for_name(os.path.basename(path))
        if fmt is None:
            raise InputError(path, f"unknown shard file extension; expected one of {_EXTENSIONS_HELP}")
        files = [(os.path.abspath(path), fmt)]
    else:
        raise InputError(path, "no such file or directory")
    return [(os.path.realpath(p), _local_ref(p, fmt)) for p, fmt in files]


def _rel_segments(base: str, dirpath: str) -> list[str]:
    rel = os.path.relpath(dirpath, base)
    return [] if rel == os.curdir else rel.split(os.sep)


def _walk_dir(root: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=_raise_walk_error, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            fmt = _format_for_name(name)
            if fmt is not None:
                found.append((os.path.join(dirpath, name), fmt))
    return found


def _raise_walk_error(err: OSError) -> None:
    raise InputError(err.filename or "?", f"cannot list directory: {err.strerror or err}") from err


def _local_ref(path: str, fmt: str) -> ShardRef:
    try:
        st = os.stat(path)
    except OSError as e:
        raise InputError(path, f"cannot access file: {e.strerror or e}") from e
    if not stat.S_ISREG(st.st_mode):  # a FIFO or device would block or never end
        raise InputError(path, "not a regular file")
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as e:
        raise InputError(path, f"cannot read file: {e.strerror or e}") from e
    _check_magic(path, fmt, head)
    return ShardRef(uri=path, format=fmt, size=st.st_size, mtime_ns=st.st_mtime_ns)


def _discover_uri(uri: str) -> list[tuple[str, ShardRef]]:
    """Object-store discovery through pyarrow.fs: a file, a prefix ("directory") or a glob."""
    import pyarrow.fs as pafs

    refuse_credentials(uri)
    scheme_prefix = uri[: uri.index("://") + 3]
    base_uri, pattern = _split_glob(uri, "/") if _is_glob(uri[len(scheme_prefix) :]) else (uri, [])
    try:
        fs, base_path = pafs.FileSystem.from_uri(base_uri)
        info = fs.get_file_info(base_path)
    except (OSError, ValueError) as e:  # ArrowInvalid is a ValueError, ArrowIOError an OSError
        raise InputError(uri, f"cannot access: {e}") from e
    found: list[tuple[str, str, int, int]] = []  # (uri, format, size, mtime_ns)

    def add(file_info: Any) -> None:
        fmt = _format_for_name(file_info.base_name)
        if fmt is not None:
            found.append((scheme_prefix + file_info.path, fmt, file_info.size or 0, file_info.mtime_ns or 0))

    if info.type == pafs.FileType.File and not pattern:
        if _format_for_name(info.base_name) is None:
            raise InputError(uri, f"unknown shard file extension; expected one of {_EXTENSIONS_HELP}")
        add(info)
    elif info.type == pafs.FileType.Directory:
        try:
            listing = fs.get_file_info(pafs.FileSelector(base_path, recursive=True))
        except OSError as e:
            raise InputError(uri, f"cannot list: {e}") from e
        root = base_path.rstrip("/")
        for item in sorted(listing, key=lambda i: i.path):
            if item.type != pafs.FileType.File:
                continue
            rel = item.path[len(root) :].strip("/").split("/")
            if not pattern or _glob_selects(pattern, rel):
                add(item)
        if not found:
            raise InputError(uri, f"matched no shard files (looked for {_EXTENSIONS_HELP})")
    elif pattern:
        raise InputError(uri, f"glob pattern matched no shard files (looked for {_EXTENSIONS_HELP})")
    else:
        raise InputError(uri, "no such object or prefix")
    refs: list[tuple[str, ShardRef]] = []
    for file_uri, fmt, size, mtime_ns in found:
        with open_binary(file_uri) as fh:
            _check_magic(file_uri, fmt, read_exact(fh, 8, file_uri))
        refs.append((file_uri, ShardRef(uri=file_uri, format=fmt, size=size, mtime_ns=mtime_ns)))
    return refs


# --------------------------------------------------------------------------- opening


_SHARD_CONTAINERS: dict[str, tuple[str, str | None]] = {
    "parquet": ("parquet", None),
    "jsonl": ("jsonl", None),
    "jsonl.gz": ("jsonl", "gzip"),
    "jsonl.zst": ("jsonl", "zstd"),
    "txt": ("txt", None),
}


def _container(uri: str, fmt: str) -> tuple[str, str | None]:
    """A shard format (``jsonl.gz``) as the input layer's (content format, compression)."""
    if fmt not in _SHARD_CONTAINERS:
        raise InputError(uri, f"unknown shard format {fmt!r}; expected one of {', '.join(SHARD_FORMATS)}")
    return _SHARD_CONTAINERS[fmt]


def _check_magic(uri: str, fmt: str, head: bytes) -> None:
    check_magic(uri, *_container(uri, fmt), head)


def _open_stream(ref: ShardRef) -> Any:
    """The decompressed bytes of a JSONL/txt shard, after checking the magic bytes."""
    return open_stream(ref.uri, *_container(ref.uri, ref.format))


# --------------------------------------------------------------------------- bad records and batching


def _utf8_len(text: str, what: str) -> int:
    """UTF-8 size of a text; a lone surrogate (from a ``\\ud800`` escape) is a bad record here, not a crash later."""
    if text.isascii():  # O(1) in CPython
        return len(text)
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError as e:
        raise BadRecord(
            "lone surrogate",
            f"{what} contains a lone surrogate U+{ord(text[e.start]):04X} at character {e.start} (not valid Unicode)",
        ) from e


def _check_text(text: str, what: str, max_bytes: int) -> int:
    if not text or text.isspace():
        raise BadRecord("empty text", f"{what} is empty or whitespace-only")
    nbytes = _utf8_len(text, what)
    if nbytes > max_bytes:
        raise BadRecord(
            "record too large", f"{what} has {nbytes:,} bytes, more than max_record_bytes ({max_bytes:,})"
        )
    return nbytes


def _labels(values: list[str | None], explicit: bool) -> list[str] | None:
    """Ids or sources of a batch: None when no document had one and none was asked for."""
    if not explicit and all(v is None for v in values):
        return None
    return [v or "" for v in values]


class _Batcher:
    """Collect documents into batches bounded by count and (approximately) by text bytes."""

    def __init__(self, options: ReaderOptions, stats: ShardReadStats) -> None:
        self._options = options
        self._stats = stats
        self._explicit_ids = options.id_field is not None
        self._explicit_sources = options.source_field is not None
        self._reset()

    def _reset(self) -> None:
        self._texts: list[str] = []
        self._rows: list[int] = []
        self._ids: list[str | None] = []
        self._sources: list[str | None] = []
        self._bytes = 0

    def add(self, text: str, nbytes: int, row: int, doc_id: str | None, source: str | None) -> list[DocBatch]:
        out: list[DocBatch] = []
        if self._texts and self._bytes + nbytes > self._options.batch_bytes:
            out.append(self._emit())
        self._texts.append(text)
        self._rows.append(row)
        self._ids.append(doc_id)
        self._sources.append(source)
        self._bytes += nbytes
        if len(self._texts) >= self._options.batch_docs or self._bytes >= self._options.batch_bytes:
            out.append(self._emit())
        return out

    def finish(self) -> list[DocBatch]:
        return [self._emit()] if self._texts else []

    def _emit(self) -> DocBatch:
        batch = DocBatch(
            texts=self._texts,
            rows=np.asarray(self._rows, dtype=np.int64),
            ids=_labels(self._ids, self._explicit_ids),
            sources=_labels(self._sources, self._explicit_sources),
        )
        self._stats.docs += len(self._texts)
        self._stats.bytes_read += self._bytes
        self._reset()
        return batch


# --------------------------------------------------------------------------- parts, fingerprint, dispatch


def shard_parts(ref: ShardRef, row_groups_per_part: int = 2) -> list[ShardPart]:
    """Split a shard into independently readable parts: consecutive row groups for Parquet, else one part.

    Parts let a large Parquet shard be indexed (and resumed) in pieces; a shard with no
    row groups still gets one (empty) part so it is committed rather than retried forever.
    """
    if row_groups_per_part < 1:
        raise ConfigError(f"row_groups_per_part must be >= 1, got {row_groups_per_part}")
    if ref.format != "parquet":
        return [ShardPart(index=0, total=1, row_groups=None)]
    with open_binary(ref.uri) as native:
        num_row_groups = _open_parquet(native, ref.uri).metadata.num_row_groups
    starts = list(range(0, num_row_groups, row_groups_per_part)) or [0]
    return [
        ShardPart(
            index=i,
            total=len(starts),
            row_groups=tuple(range(s, min(s + row_groups_per_part, num_row_groups))),
        )
        for i, s in enumerate(starts)
    ]


def fingerprint_shard(ref: ShardRef) -> str:
    """Content fingerprint ``xxh3-128:<32 hex>`` of the whole file, streamed in 8 MiB chunks.

    Size and mtime can stay equal while content changes (and differ while it does not,
    after a copy), so completion checks compare this instead.
    """
    import xxhash

    digest = xxhash.xxh3_128()
    with open_binary(ref.uri) as native:
        while True:
            chunk = read_exact(native, _FINGERPRINT_CHUNK, ref.uri)
            if not chunk:
                break
            digest.update(chunk)
    return f"xxh3-128:{digest.hexdigest()}"


def read_shard(
    ref: ShardRef, options: ReaderOptions, stats: ShardReadStats, part: ShardPart | None = None
) -> Iterator[DocBatch]:
    """Yield the documents of a shard (or of one part) as bounded batches.

    The generator only returns normally after the whole input was read and verified
    (complete compressed frames, CRC-checked pages); any damage to the container raises
    :class:`InputError` at the point it is found, possibly after earlier batches were
    yielded, so a caller must commit only once iteration finished. ``stats`` is updated
    as the read progresses.
    """
    if ref.format == "parquet":
        yield from _read_parquet(ref, options, stats, part)
        return
    if part is not None and (part.row_groups is not None or part.total != 1):
        raise ConfigError(f"{ref.uri}: a {ref.format} shard has a single part; got {part}")
    if ref.format in ("jsonl", "jsonl.gz", "jsonl.zst"):
        yield from _read_jsonl(ref, options, stats)
    elif ref.format == "txt":
        yield from _read_txt(ref, options, stats)
    else:
        raise InputError(
            ref.uri, f"unknown shard format {ref.format!r}; expected one of {', '.join(SHARD_FORMATS)}"
        )


def read_document(ref: ShardRef, row: int, options: ReaderOptions) -> str:
    """Read back one document by its row, for provenance snippets in reports.

    Parquet locates the row group from the footer and reads only that group's text
    column; JSONL scans lines up to ``row`` (slow for big files, but this is rare).
    Raises :class:`InputError` when the row is gone or unusable, which usually means the
    shard changed since it was indexed.
    """
    if row < 0:
        raise InputError(ref.uri, f"row {row} is negative")
    if ref.format == "parquet":
        return _read_parquet_document(ref, row, options)
    if ref.format in ("jsonl", "jsonl.gz", "jsonl.zst"):
        return _read_jsonl_document(ref, row, options)
    if ref.format == "txt":
        if row != 0:
            raise InputError(ref.uri, f"row {row} out of range: a text shard is a single document (row 0)")
        with _open_stream(ref) as stream:
            data = read_call(stream, options.max_record_bytes + 1, ref.uri, line=False)
        try:
            text, _ = _decode_txt(data, options)
        except BadRecord as bad:
            raise InputError(ref.uri, bad.message, bad.location or "row 1") from bad
        return text
    raise InputError(
        ref.uri, f"unknown shard format {ref.format!r}; expected one of {', '.join(SHARD_FORMATS)}"
    )


# --------------------------------------------------------------------------- JSONL


class _JsonNumber(str):
    """A JSON number kept as its source text: no 4,300-digit int limit, never mistaken for a string."""

    __slots__ = ()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_JSON_DECODER = json.JSONDecoder(
    parse_int=_JsonNumber, parse_float=_JsonNumber, parse_constant=_reject_constant
)


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, _JsonNumber):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "a string"


def _display(text: str, limit: int = 40) -> str:
    """Keys from untrusted files, safe to print: control characters escaped, length bounded."""
    shown = text if text.isprintable() else repr(text)[1:-1]
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


_MISSING = object()


def _lookup(record: dict[str, Any], dotted: str) -> Any:
    """Value at a key or a dotted path (``meta.body``); a literal key containing dots wins."""
    if dotted in record:
        return record[dotted]
    current: Any = record
    for part in dotted.split("."):
        if not isinstance(current, dict) or part not in current:
            return _MISSING
        current = current[part]
    return current


def _missing_message(record: dict[str, Any], dotted: str) -> str:
    current: Any = record
    for part in dotted.split("."):
        if not isinstance(current, dict) or part not in current:
            break
        current = current[part]
    if isinstance(current, dict):
        keys = [_display(str(k)) for k in list(current)[:20]]
        more = ", …" if len(current) > 20 else ""
        available = ", ".join(keys) + more if keys else "(none)"
        return f"field '{_display(dotted)}' missing; available keys: {available}"
    return f"field '{_display(dotted)}' missing; the path crosses {_json_kind(current)}"


def _optional_text(record: dict[str, Any], dotted: str | None, default: str) -> str | None:
    """An id/source value as a string. Lenient on purpose: a bad id should not cost the document.

    With no field named (``dotted`` None) the ``default`` key is read when the record has it;
    a record without it gives None (no label), an explicitly named but missing field "".
    """
    if dotted is None:
        if default not in record:
            return None
        dotted = default
    value = _lookup(record, dotted)
    if value is _MISSING or value is None:
        return ""
    if isinstance(value, str):
        text = str(value)
        if not text.isascii():
            text = text.encode("utf-8", "backslashreplace").decode("utf-8")
        return text
    return json.dumps(value, ensure_ascii=True)


def _parse_jsonl_record(
    line: bytes, line_start: int, options: ReaderOptions, compressed: bool
) -> tuple[str, int, str | None, str | None]:
    """Decode, parse and validate one JSONL line (stdlib json, strict) into (text, bytes, id, source)."""
    record = parse_json_line(decode_utf8_line(line, line_start, compressed), _JSON_DECODER)
    if not isinstance(record, dict):
        raise BadRecord("not an object", f"record is {_json_kind(record)}, expected a JSON object")
    text = _lookup(record, options.text_field)
    what = f"field '{_display(options.text_field)}'"
    if text is _MISSING:
        raise BadRecord("missing field", _missing_message(record, options.text_field))
    if text is None:
        raise BadRecord("null text", f"{what} is null")
    if type(text) is not str:  # excludes _JsonNumber
        raise BadRecord("non-string text", f"{what} is {_json_kind(text)}, expected a string")
    nbytes = _check_text(text, what, options.max_record_bytes)
    return (
        text,
        nbytes,
        _optional_text(record, options.id_field, DEFAULT_ID_FIELD),
        _optional_text(record, options.source_field, DEFAULT_SOURCE_FIELD),
    )


def _read_jsonl(ref: ShardRef, options: ReaderOptions, stats: ShardReadStats) -> Iterator[DocBatch]:
    compressed = ref.format != "jsonl"
    cap = options.max_decompressed_bytes if compressed else None
    batcher = _Batcher(options, stats)
    with _open_stream(ref) as stream:
        for line_no, start, line, length in iter_lines(stream, ref.uri, options.max_record_bytes, cap):
            location = f"line {line_no + 1}"
            if line is None:
                stats.records += 1
                bad = BadRecord(
                    "record too large",
                    f"line of {length:,} bytes exceeds max_record_bytes ({options.max_record_bytes:,})",
                )
                bad_record(ref.uri, location, bad, options.skip_bad_records, stats)
                continue
            if line_no == 0 and line.startswith(BOM):
                line = line[len(BOM) :]
                start += len(BOM)
            if not line.strip(b" \t\r\n"):
                stats.blank_lines += 1
                continue
            stats.records += 1
            try:
                text, nbytes, doc_id, source = _parse_jsonl_record(line, start, options, compressed)
            except BadRecord as bad:
                bad_record(ref.uri, location, bad, options.skip_bad_records, stats)
                continue
            yield from batcher.add(text, nbytes, line_no, doc_id, source)
    yield from batcher.finish()


def _read_jsonl_document(ref: ShardRef, row: int, options: ReaderOptions) -> str:
    compressed = ref.format != "jsonl"
    cap = options.max_decompressed_bytes if compressed else None
    with _open_stream(ref) as stream:
        for line_no, start, line, length in iter_lines(stream, ref.uri, options.max_record_bytes, cap):
            if line_no < row:
                continue
            location = f"line {line_no + 1}"
            if line is None:
                raise InputError(ref.uri, f"line of {length:,} bytes exceeds max_record_bytes", location)
            if line_no == 0 and line.startswith(BOM):
                line = line[len(BOM) :]
                start += len(BOM)
            if not line.strip(b" \t\r\n"):
                raise InputError(
                    ref.uri, "line is blank: no document here (the shard may have changed)", location
                )
            try:
                return _parse_jsonl_record(line, start, options, compressed)[0]
            except BadRecord as bad:
                raise InputError(ref.uri, bad.message, location) from bad
    raise InputError(
        ref.uri, f"row {row} out of range: the file has fewer lines (the shard may have changed)"
    )


# --------------------------------------------------------------------------- plain text


def _decode_txt(data: bytes, options: ReaderOptions) -> tuple[str, int]:
    if len(data) > options.max_record_bytes:
        raise BadRecord(
            "record too large", f"document exceeds max_record_bytes ({options.max_record_bytes:,})"
        )
    start = len(BOM) if data.startswith(BOM) else 0
    try:
        text = data[start:].decode("utf-8")
    except UnicodeDecodeError as e:
        offset = start + e.start
        raise BadRecord(
            "invalid UTF-8",
            f"invalid UTF-8 (byte 0x{data[offset]:02x}, {e.reason}) at byte offset {offset}",
            f"byte {offset}",
        ) from e
    return text, _check_text(text, "document", options.max_record_bytes)


def _read_txt(ref: ShardRef, options: ReaderOptions, stats: ShardReadStats) -> Iterator[DocBatch]:
    batcher = _Batcher(options, stats)
    with _open_stream(ref) as stream:
        data = read_call(stream, options.max_record_bytes + 1, ref.uri, line=False)
    stats.records += 1
    try:
        text, nbytes = _decode_txt(data, options)
    except BadRecord as bad:
        bad_record(ref.uri, "row 1", bad, options.skip_bad_records, stats)
        return
    name = os.path.basename(ref.uri)
    yield from batcher.add(text, nbytes, 0, name if options.id_field else None, None)
    yield from batcher.finish()


# --------------------------------------------------------------------------- Parquet


def _open_parquet(native: Any, uri: str) -> pq.ParquetFile:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        head = native.read(4)
        native.seek(0)
    except OSError as e:
        raise InputError(uri, f"read error: {e}") from e
    _check_magic(uri, "parquet", head)
    try:
        return pq.ParquetFile(native, page_checksum_verification=True)
    except (pa.ArrowException, OSError, ValueError) as e:
        raise InputError(
            uri,
            f"cannot read Parquet footer: {e} (the file is truncated, still being written, or not Parquet)",
        ) from e


def _is_string_type(dtype: pa.DataType) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(dtype):
        dtype = dtype.value_type
    is_view = getattr(pa.types, "is_string_view", None)
    return bool(pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or (is_view and is_view(dtype)))


def _parquet_columns(
    uri: str, schema: pa.Schema, options: ReaderOptions
) -> tuple[list[str], str | None, str | None]:
    """The projected columns (text first), validated against the schema; also the id and source columns.

    A column asked for must exist with a usable type; the default ``id``/``source`` columns
    are read only when they exist with one (a shard without them is not an error).
    """

    names = schema.names
    available = ", ".join(_display(n) for n in names) or "(none)"
    columns: list[str] = []
    resolved: dict[str, str | None] = {"id": None, "source": None}
    for role, name, default in (
        ("text", options.text_field, None),
        ("id", options.id_field, DEFAULT_ID_FIELD),
        ("source", options.source_field, DEFAULT_SOURCE_FIELD),
    ):
        if name is None:
            if default not in names or not _is_label_type(schema.field(default).type):
                continue
            name = default
        if name not in names:
            raise InputError(
                uri, f"{role} column '{_display(name)}' not found; available columns: {available}"
            )
        dtype = schema.field(name).type
        if role == "text" and not _is_string_type(dtype):
            raise InputError(
                uri, f"text column '{_display(name)}' has type {dtype}; expected a string column"
            )
        if role != "text" and not _is_label_type(dtype):
            raise InputError(
                uri, f"{role} column '{_display(name)}' has type {dtype}; expected strings or integers"
            )
        columns.append(name)
        if role != "text":
            resolved[role] = name
    return columns, resolved["id"], resolved["source"]


def _is_label_type(dtype: pa.DataType) -> bool:
    import pyarrow as pa

    return _is_string_type(dtype) or pa.types.is_integer(dtype)


def _column_values(array: Any) -> list[Any]:
    """Python values of a column; invalid UTF-8 (Parquet does not validate it) becomes a marker per row."""
    try:
        return array.to_pylist()
    except UnicodeDecodeError:
        values: list[Any] = []
        for i in range(len(array)):
            try:
                values.append(array[i].as_py())
            except UnicodeDecodeError as e:
                values.append(e)
        return values


def _parquet_row_groups(uri: str, metadata: Any, part: ShardPart | None) -> list[int]:
    total = metadata.num_row_groups
    if part is None or part.row_groups is None:
        return list(range(total))
    for g in part.row_groups:
        if not 0 <= g < total:
            raise InputError(
                uri,
                f"row group {g} out of range: the file has {total} row group(s) (the shard changed since planning?)",
            )
    return list(part.row_groups)


def _column_uncompressed(metadata: Any, group: int, columns: list[str]) -> dict[str, int]:
    rg = metadata.row_group(group)
    sizes = dict.fromkeys(columns, 0)
    for i in range(rg.num_columns):
        chunk = rg.column(i)
        top = chunk.path_in_schema.split(".", 1)[0]
        if top in sizes:
            sizes[top] += chunk.total_uncompressed_size
    return sizes


def _read_parquet(
    ref: ShardRef, options: ReaderOptions, stats: ShardReadStats, part: ShardPart | None
) -> Iterator[DocBatch]:
    import pyarrow as pa

    uri = ref.uri
    with open_binary(uri) as native:
        pf = _open_parquet(native, uri)
        metadata = pf.metadata
        columns, id_field, source_field = _parquet_columns(uri, pf.schema_arrow, options)
        groups = _parquet_row_groups(uri, metadata, part)
        starts = np.concatenate(
            [[0], np.cumsum([metadata.row_group(g).num_rows for g in range(metadata.num_row_groups)])]
        ).astype(np.int64)
        sizes = {g: _column_uncompressed(metadata, g, columns) for g in groups}
        if options.max_decompressed_bytes is not None:
            total = sum(sum(s.values()) for s in sizes.values())
            if total > options.max_decompressed_bytes:
                raise InputError(
                    uri,
                    f"uncompressed size of the needed columns ({total:,} bytes) exceeds "
                    f"max_decompressed_bytes ({options.max_decompressed_bytes:,})",
                )
        text_field = options.text_field
        what = f"column '{_display(text_field)}'"
        batcher = _Batcher(options, stats)
        for g in groups:
            rows_in_group = metadata.row_group(g).num_rows
            # Size record batches from the footer so a batch of huge documents stays near batch_bytes.
            avg_bytes = max(1, sizes[g][text_field] // max(1, rows_in_group))
            batch_size = max(1, min(options.batch_docs, options.batch_bytes // avg_bytes))
            row = int(starts[g])
            try:
                for record_batch in pf.iter_batches(batch_size=batch_size, row_groups=[g], columns=columns):
                    texts = _column_values(record_batch.column(text_field))
                    ids = _column_values(record_batch.column(id_field)) if id_field else None
                    sources = _column_values(record_batch.column(source_field)) if source_field else None
                    for i, text in enumerate(texts):
                        stats.records += 1
                        try:
                            if text is None:
                                raise BadRecord("null text", f"{what} is null")
                            if isinstance(text, UnicodeDecodeError):
                                raise BadRecord(
                                    "invalid UTF-8", f"{what} holds invalid UTF-8 ({text.reason})"
                                )
                            nbytes = _check_text(text, what, options.max_record_bytes)
                        except BadRecord as bad:
                            bad_record(uri, f"row {row + i + 1}", bad, options.skip_bad_records, stats)
                            continue
                        doc_id = _parquet_label(ids[i]) if ids is not None else None
                        source = _parquet_label(sources[i]) if sources is not None else None
                        yield from batcher.add(text, nbytes, row + i, doc_id, source)
                    row += len(texts)
            except (pa.ArrowException, OSError) as e:
                raise InputError(uri, f"corrupt Parquet data in row group {g}: {e}") from e
        yield from batcher.finish()


def _parquet_label(value: Any) -> str:
    if value is None or isinstance(value, UnicodeDecodeError):
        return ""
    return str(value)


def _read_parquet_document(ref: ShardRef, row: int, options: ReaderOptions) -> str:
    import pyarrow as pa

    uri = ref.uri
    with open_binary(uri) as native:
        pf = _open_parquet(native, uri)
        metadata = pf.metadata
        _parquet_columns(uri, pf.schema_arrow, ReaderOptions(text_field=options.text_field))
        first = 0
        for g in range(metadata.num_row_groups):
            n = metadata.row_group(g).num_rows
            if row < first + n:
                break
            first += n
        else:
            raise InputError(
                uri,
                f"row {row} out of range: the file has {metadata.num_rows} rows (the shard may have changed)",
            )
        offset = row - first
        try:
            for record_batch in pf.iter_batches(
                batch_size=1024, row_groups=[g], columns=[options.text_field]
            ):
                if offset < record_batch.num_rows:
                    value = _column_values(record_batch.column(0).slice(offset, 1))[0]
                    break
                offset -= record_batch.num_rows
            else:  # pragma: no cover - metadata and data disagree
                raise InputError(uri, f"row {row} not found in row group {g}")
        except (pa.ArrowException, OSError) as e:
            raise InputError(uri, f"corrupt Parquet data in row group {g}: {e}") from e
    if value is None or isinstance(value, UnicodeDecodeError):
        raise InputError(uri, "no usable text in this row", f"row {row + 1}")
    return str(value)
