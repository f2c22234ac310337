"""The one input layer under corpus shards and datasets: open, sniff, decompress, split lines, parse.

Why one module: a corpus shard and a fine-tuning dataset are both "bytes from a local path or
an object store, maybe gzip/zstd, usually JSON Lines", and every guarantee the corpus reader
earned (a *verified* compressed end, magic bytes that must agree with the name, bounded line
reads, errors naming ``file:line``) must hold for datasets too. So there is exactly one
:func:`open_binary`, one verified zstd reader, one format-from-name resolver, one magic-byte
check and one bad-UTF-8 / bad-JSON message here, and both readers call them.

A single bad *record* is a :class:`BadRecord`; the caller's policy (:func:`bad_record`) either
raises :class:`~probe.errors.InputError` naming the place or, with ``skip_bad_records``, counts
it with its reason and location. Damage to the *container* (truncation, corrupt frames) is
always an :class:`InputError`: skipping cannot make a cut-off file whole.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any, Protocol

from probe.errors import ConfigError, InputError

READ_CHUNK = 1 << 20  # bytes per read from the underlying file
# zstd can expand ~32,768x (RLE blocks), so compressed input is fed in small slices:
# one call then produces at most ~32 MiB, whatever the file contains.
_ZSTD_FEED = 1024
_ZSTD_MAX_WINDOW = 1 << 27  # 128 MiB, zstd's own default limit; a larger window is refused
MAX_SKIPPED_EXAMPLES = 20  # "file:line: reason" strings kept per read
BOM = b"\xef\xbb\xbf"
_URI_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
COMPRESSION_SUFFIXES: tuple[tuple[str, str], ...] = ((".gz", "gzip"), (".zst", "zstd"), (".zstd", "zstd"))


def is_uri(path: str) -> bool:
    """True for ``s3://…``, ``gs://…``, ``file://…``: opened through ``pyarrow.fs``, not ``open()``."""
    return bool(_URI_RE.match(path))


def refuse_credentials(uri: str) -> None:
    """A URI carrying ``user:secret@`` is refused with the secret redacted: it would reach logs and reports."""
    netloc = uri.split("://", 1)[1].split("/", 1)[0]
    if "@" in netloc:
        redacted = uri.replace(netloc, "***@" + netloc.rsplit("@", 1)[1], 1)
        raise ConfigError(f"{redacted}: credentials inside a URI are not accepted (they would be echoed in "
                          "messages); pass them through the environment (e.g. AWS_ACCESS_KEY_ID, "
                          "AWS_SECRET_ACCESS_KEY) instead")


# --------------------------------------------------------------------------- names and magic bytes


def split_compression(name: str) -> tuple[str, str | None]:
    """``("data.jsonl", "gzip")`` for ``Data.JSONL.gz``: the lower-cased stem and the compression, if any."""
    lower = name.lower()
    for suffix, kind in COMPRESSION_SUFFIXES:
        if lower.endswith(suffix):
            return lower[: -len(suffix)], kind
    return lower, None


def format_from_name(
    name: str, suffixes: tuple[tuple[str, str], ...], compressible: frozenset[str]
) -> tuple[str, str | None] | None:
    """``(format, compression)`` from a file name, or None when no suffix is known.

    ``suffixes`` maps content suffixes (``.jsonl``) to formats; a compression suffix
    (``.gz``, ``.zst``, ``.zstd``) may follow one of the ``compressible`` formats. Each
    reader passes its own table (a corpus shard walk must not pick up ``.csv`` files).
    """
    lower, compression = split_compression(name)
    for suffix, fmt in suffixes:
        if lower.endswith(suffix):
            if compression is not None and fmt not in compressible:
                return None
            return fmt, compression
    return None


def _sniff(head: bytes) -> str | None:
    """Name the container format the first bytes belong to, if any we know."""
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"\x28\xb5\x2f\xfd") or (
        len(head) >= 4 and head[1:4] == b"\x2a\x4d\x18" and head[0] & 0xF0 == 0x50
    ):
        return "zstd"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(b"BZh") and len(head) >= 4 and head[3:4].isdigit():
        return "bzip2"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head.startswith(b"PAR1"):
        return "parquet"
    return None


def check_magic(uri: str, fmt: str, compression: str | None, head: bytes) -> None:
    """Refuse a file whose first bytes contradict its name (gzip named .jsonl, text named .zst).

    ``fmt`` is the content format (``jsonl``, ``txt``, ``csv``, ``parquet``, …) and
    ``compression`` the outer container (None, ``gzip`` or ``zstd``).
    """
    kind = _sniff(head)
    if compression is not None:
        magics = [b"\x1f\x8b"] if compression == "gzip" else [b"\x28\xb5\x2f\xfd"]
        if compression == "zstd" and head and head[0] & 0xF0 == 0x50:
            magics.append(head[:1] + b"\x2a\x4d\x18")  # a skippable frame
        if not head or (len(head) < 4 and kind is None and any(m.startswith(head) for m in magics)):
            raise InputError(
                uri,
                f"compressed stream truncated: the file is {len(head)} bytes (a complete {compression} file is "
                "longer)",
            )
        if kind != compression:
            looks = f"{kind} data" if kind else "uncompressed data"
            raise InputError(
                uri, f"file is not {compression}-compressed (it looks like {looks}); check the extension"
            )
    elif fmt == "parquet":
        if kind is not None and kind != "parquet":
            raise InputError(uri, f"file looks like {kind} data, not Parquet")
    elif kind is not None and not (kind == "parquet" and fmt == "txt"):
        raise InputError(
            uri, f"file looks like {kind} data, but its name says plain {fmt}; rename it with the right extension"
        )


# --------------------------------------------------------------------------- opening


def open_binary(uri: str) -> Any:
    """Open a file for binary reading: the only place that knows local paths from object stores.

    Returns a random-access ``pyarrow.NativeFile`` (usable as a context manager), which
    both the Parquet readers and the byte-stream readers accept.
    """
    import pyarrow as pa

    try:
        if is_uri(uri):
            import pyarrow.fs as pafs

            refuse_credentials(uri)
            fs, path = pafs.FileSystem.from_uri(uri)
            return fs.open_input_file(path)
        return pa.OSFile(uri, "r")
    except (OSError, ValueError) as e:
        raise InputError(uri, f"cannot open: {e}") from e


def read_exact(fh: Any, size: int, uri: str) -> bytes:
    """Up to ``size`` bytes from a NativeFile, an I/O error becoming an InputError naming the file."""
    try:
        return bytes(fh.read(size))
    except OSError as e:
        raise InputError(uri, f"read error: {e}") from e


class _RawReader(io.RawIOBase):
    """Adapt a ``NativeFile`` to ``io.RawIOBase`` so ``io.BufferedReader`` gives a C-speed bounded readline."""

    def __init__(self, source: Any) -> None:
        self._source = source

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._source.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        return n


class ZstdVerifiedReader(io.RawIOBase):
    """Decompress a zstd file frame by frame and prove every frame ended.

    ``stream_reader`` returns a clean EOF for a truncated file, so the input would be
    silently part-read. Here each frame gets its own ``decompressobj``; when the
    compressed input runs out while a frame is open, that is a truncation error.
    Skippable frames are handled by the decompressor; trailing garbage fails to parse
    as a frame and is an error too.
    """

    def __init__(self, source: IO[bytes], uri: str) -> None:
        import zstandard

        self._zstd_error = zstandard.ZstdError
        self._source = source
        self._uri = uri
        self._dctx = zstandard.ZstdDecompressor(max_window_size=_ZSTD_MAX_WINDOW)
        self._dobj = self._dctx.decompressobj()
        self._frame_open = False  # the current decompressobj has consumed input but not reached eof
        self._input = memoryview(b"")
        self._carry = b""  # bytes after the end of the previous frame
        self._output = memoryview(b"")
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._output:
            if self._done:
                return 0
            self._step()
        n = min(len(buffer), len(self._output))
        buffer[:n] = self._output[:n]
        self._output = self._output[n:]
        return n

    def _step(self) -> None:
        if self._carry:
            piece: bytes | memoryview = self._carry
            self._carry = b""
        else:
            if not self._input:
                try:
                    chunk = self._source.read(READ_CHUNK)
                except OSError as e:
                    raise InputError(self._uri, f"read error: {e}") from e
                if not chunk:
                    if self._frame_open:
                        raise InputError(
                            self._uri,
                            "compressed stream truncated: the last zstd frame is incomplete "
                            "(the file was cut short; re-download or re-create it)",
                        )
                    self._done = True
                    return
                self._input = memoryview(chunk)
            piece = self._input[:_ZSTD_FEED]
            self._input = self._input[_ZSTD_FEED:]
        try:
            out = self._dobj.decompress(piece)
        except self._zstd_error as e:
            raise InputError(self._uri, f"corrupt zstd data (or trailing garbage after a frame): {e}") from e
        self._frame_open = True
        if self._dobj.eof:
            self._carry = self._dobj.unused_data
            self._dobj = self._dctx.decompressobj()
            self._frame_open = False
        self._output = memoryview(out)


@contextmanager
def open_stream(uri: str, fmt: str, compression: str | None) -> Iterator[IO[bytes]]:
    """The decompressed bytes of a line/text file, after checking its magic bytes against its name."""
    with open_binary(uri) as native:
        raw = io.BufferedReader(_RawReader(native), buffer_size=READ_CHUNK)
        try:
            head = raw.peek(8)[:8]
        except OSError as e:
            raise InputError(uri, f"read error: {e}") from e
        check_magic(uri, fmt, compression, head)
        if compression == "gzip":
            yield gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[misc]
        elif compression == "zstd":
            yield io.BufferedReader(ZstdVerifiedReader(raw, uri), buffer_size=READ_CHUNK)
        else:
            yield raw


def stream_error(uri: str, exc: BaseException, location: str | None = None) -> InputError:
    """A decompression or read failure mid-stream as an InputError naming the file (and place)."""
    if isinstance(exc, EOFError):  # gzip: stream ended before the end-of-stream marker
        return InputError(
            uri,
            "compressed stream truncated: gzip data ended before its end-of-stream marker "
            "(the file was cut short; re-download or re-create it)",
            location,
        )
    # gzip.BadGzipFile (bad CRC, trailing garbage) is an OSError
    return InputError(uri, f"corrupt compressed data or read error: {exc}", location)


STREAM_ERRORS: tuple[type[BaseException], ...] = (EOFError, OSError, zlib.error)


def read_call(stream: IO[bytes], size: int, uri: str, *, line: bool) -> bytes:
    """One bounded read, with decompression failures turned into InputError naming the file."""
    try:
        return stream.readline(size) if line else stream.read(size)
    except STREAM_ERRORS as e:
        raise stream_error(uri, e) from e


def iter_lines(
    stream: IO[bytes], uri: str, limit: int, cap: int | None
) -> Iterator[tuple[int, int, bytes | None, int]]:
    """Yield ``(line_index, byte_offset, line_or_None, length)`` with memory bounded by ``limit``.

    ``line`` keeps its terminator (JSON ignores it) and is ``None`` when its content is
    longer than ``limit``; the rest of such a line is drained in bounded chunks. ``cap``
    bounds the total decompressed bytes (against bombs).
    """
    line_no = 0
    offset = 0
    while True:
        line = read_call(stream, limit + 2, uri, line=True)
        if not line:
            return
        start = offset
        offset += len(line)
        oversized = False
        if line.endswith(b"\n"):
            content = len(line) - (2 if line.endswith(b"\r\n") else 1)
            oversized = content > limit
        elif len(line) == limit + 2:  # no newline within the limit: drain the rest of the line
            oversized = True
            while True:
                if cap is not None and offset > cap:
                    break
                more = read_call(stream, READ_CHUNK, uri, line=True)
                offset += len(more)
                if not more or more.endswith(b"\n"):
                    break
        else:
            oversized = len(line.rstrip(b"\r")) > limit
        if cap is not None and offset > cap:
            raise InputError(
                uri,
                f"decompressed data exceeds max_decompressed_bytes ({cap:,}); possibly a decompression bomb",
            )
        yield line_no, start, None if oversized else line, offset - start
        line_no += 1


# --------------------------------------------------------------------------- bad records


class BadRecord(Exception):
    """A single record is unusable; the caller's policy decides whether to raise or skip."""

    def __init__(self, reason: str, message: str, location: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason  # short category for stats.skipped_reasons
        self.message = message
        self.location = location  # overrides the caller's location (e.g. "byte 17" in a text file)


class SkipStats(Protocol):
    """What :func:`bad_record` counts into (ShardReadStats and DatasetReadStats both have it)."""

    skipped: int
    skipped_reasons: dict[str, int]
    skipped_examples: list[str]


def count_skip(stats: SkipStats, uri: str, location: str, reason: str, message: str) -> None:
    """Count one skipped record by reason, remembering the first few ``file:line: message`` strings."""
    stats.skipped += 1
    stats.skipped_reasons[reason] = stats.skipped_reasons.get(reason, 0) + 1
    if len(stats.skipped_examples) < MAX_SKIPPED_EXAMPLES:
        stats.skipped_examples.append(f"{uri}:{location}: {message}")


def bad_record(uri: str, location: str, bad: BadRecord, skip: bool, stats: SkipStats) -> None:
    """Fail fast (``skip`` False: InputError naming the place) or count the record as skipped."""
    location = bad.location or location
    if not skip:
        raise InputError(uri, bad.message, location) from bad
    count_skip(stats, uri, location, bad.reason, bad.message)


def decode_utf8_line(line: bytes, line_start: int, compressed: bool) -> str:
    """One line as text; invalid UTF-8 is a BadRecord giving the byte within the line and in the file."""
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError as e:
        where = "decompressed stream" if compressed else "file"
        raise BadRecord(
            "invalid UTF-8",
            f"invalid UTF-8 (byte 0x{line[e.start]:02x}, {e.reason}) at byte {e.start} of the line, "
            f"byte offset {line_start + e.start} in the {where}",
        ) from e


def json_error_message(error: json.JSONDecodeError, text: str | None = None) -> str:
    """``invalid JSON: <what> at column N`` — one position, never json's own nested "line 2 column 1".

    For a single line (``text`` given), an error past its last character says "at the end of
    the line", since json counts the line's newline as the start of a second line.
    """
    what = error.msg
    if text is not None and error.pos >= len(text.rstrip("\r\n")):
        place = "the end of the line"
        return f"invalid JSON: {what[:-3] if what.endswith(' at') else what} at {place}"
    # "Unterminated string starting at", "Invalid control character at": the message ends in "at"
    joiner = " " if what.endswith(" at") else " at "
    return f"invalid JSON: {what}{joiner}column {error.colno}"


def parse_json_line(text: str, decoder: json.JSONDecoder) -> Any:
    """One JSON Lines record (already decoded); malformed JSON is a BadRecord with one clear position."""
    try:
        return decoder.decode(text)
    except json.JSONDecodeError as e:
        raise BadRecord("invalid JSON", json_error_message(e, text)) from e
    except RecursionError as e:
        raise BadRecord("invalid JSON", "invalid JSON: nested too deeply") from e
    except ValueError as e:  # NaN/Infinity where the decoder refuses them (parse_constant)
        raise BadRecord("invalid JSON", f"invalid JSON: {e}") from e
