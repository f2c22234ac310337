"""Index format (version 3, ``FORMAT_VERSION``) on a local filesystem: spec file, snapshots, segments, lock.

The commit protocol follows Delta/Iceberg: data files are immutable and uniquely
named (a fresh segment directory per task), and a commit is *one* new snapshot file
published put-if-absent (``os.link`` of an fsynced temp file; never ``os.rename``,
which silently overwrites). Nothing is visible until that snapshot exists, so a
crash at any point leaves only unreferenced files, which ``probe index gc`` removes.

Layout (see docs/index-format.md)::

    <index>/probe-index.json                 format version + text spec (written once)
    <index>/snapshots/00000001.json          the commit log; the highest one is the index
    <index>/segments/<uuid>/manifest.json    files of one segment with sizes and xxh3-128
    <index>/segments/<uuid>/view=<v>/n=<n>.parquet   sorted (hash, doc0) of every n-gram
    <index>/segments/<uuid>/repeated/view=<v>/n=<n>.parquet   (hash, count, docs, doc_sample) of rows with count > 1
    <index>/segments/<uuid>/docs.parquet     document ordinal -> shard, row, id, source
    <index>/tokenizers/<sha256>.json         the hf: tokenizer's file (hf: specs only; written once)
    <index>/sidetables/<name>/<uuid>/        one measure's side table for one shard part (probe.index.side_tables)
    <index>/LOCK                             flock'ed by the single writer
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import signal
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import xxhash

from probe.config import TextSpec
from probe.durable import fsync_dir, write_new_file
from probe.errors import (
    ConfigError,
    IndexFormatError,
    IndexLockedError,
    IndexMissingError,
    IndexWriteError,
    SpecMismatchError,
)

FORMAT_NAME = "probe-index"
FORMAT_VERSION = 3  # 2: doc0 column + doc-sample files instead of a doc_sample list column;
#                    3: count/docs/samples only for repeated rows (the n-gram table is hash + doc0)
SPEC_FILE = "probe-index.json"
SNAPSHOT_DIR = "snapshots"
SEGMENT_DIR = "segments"
LOCK_FILE = "LOCK"
TOKENIZER_DIR = "tokenizers"  # hf: tokenizer files, named by their sha256 (the spec's tokenizer_sha256)
TMP_PREFIX = ".tmp-"


# --------------------------------------------------------------------------- faults
def fault_point(name: str) -> None:
    """SIGKILL this process at a named point when ``PROBE_FAULT=name[:nth]`` says so.

    Used by crash tests (in the style of DuckDB's ``debug_checkpoint_abort``): the
    nth time (default 1st) the point is reached, the process dies without cleanup.
    """
    spec = os.environ.get("PROBE_FAULT")
    if not spec:
        return
    point, _, nth = spec.partition(":")
    if point != name:
        return
    hits = _FAULT_HITS.get(name, 0) + 1
    _FAULT_HITS[name] = hits
    if hits >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)


_FAULT_HITS: dict[str, int] = {}


# --------------------------------------------------------------------------- durable I/O
def write_file_durable(path: Path, data: bytes | memoryview) -> None:
    """Write bytes and fsync them (the path must not be visible to readers yet).

    :func:`probe.durable.write_new_file` with the index's error policy: an OS error
    (disk full, file too large, I/O error, read-only filesystem) becomes an
    :class:`IndexWriteError` naming the file; the partial file is removed.
    """
    try:
        write_new_file(path, data)
    except OSError as e:
        raise IndexWriteError(f"cannot write index file {path}: {e.strerror or e}; nothing from this step "
                              "was committed (free space, then re-run the same command to resume)") from e


def publish_exclusive(directory: Path, name: str, data: bytes) -> bool:
    """Create ``directory/name`` with ``data`` atomically, only if it does not exist.

    Temp file → fsync → ``os.link`` (fails if the name exists) → fsync dir. Returns
    False when another writer published that name first.
    """
    tmp = directory / f"{TMP_PREFIX}{uuid.uuid4().hex}"
    try:
        write_file_durable(tmp, data)  # inside the try: an interrupt mid-write leaves no temp file
        fault_point("before_log_publish")
        os.link(tmp, directory / name)
    except FileExistsError:
        return False
    except OSError as e:
        raise IndexWriteError(f"cannot publish {directory / name}: {e.strerror or e}; nothing was committed") from e
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    fault_point("after_log_publish_before_dirfsync")
    try:
        fsync_dir(directory)
    except OSError as e:
        # the entry is linked but maybe not durable: the commit is in doubt, never retried blindly
        raise IndexWriteError(f"{directory / name} was published but fsync of {directory} failed: "
                              f"{e.strerror or e}; the commit is in doubt: run `probe index verify`, "
                              "then re-run the same command") from e
    return True


def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def file_digest(path: Path) -> str:
    h = xxhash.xxh3_128()
    with open(path, "rb") as f:
        while chunk := f.read(8 << 20):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------- where an index lives
_URI_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):/")  # "s3://b/i"; also "s3:/b/i", as Path() folds "//"


def local_index_root(path: str | Path) -> Path:
    """The index directory as a local path; ConfigError for a URI (``s3://…``, ``gs://…``).

    An index needs a POSIX directory (flock, ``os.link``, directory fsync). Taken as a
    path, ``s3://bucket/idx`` would silently become a local folder ``./s3:/bucket/idx``.
    """
    m = _URI_SCHEME.match(str(path))
    if m:
        raise ConfigError(f"index directory {str(path)!r} is a {m.group(1)}: URI; an index must be a local "
                          "directory (object storage is supported for corpus shards, not yet for indexes): "
                          "build into a local directory, then copy it")
    return Path(path)


# --------------------------------------------------------------------------- spec file
def read_spec(root: Path) -> TextSpec:
    """Read and validate ``probe-index.json`` (format name and version, spec)."""
    path = root / SPEC_FILE
    if not path.exists():
        raise IndexMissingError(f"{root} is not a probe index (no {SPEC_FILE}); build one with `probe index build`")
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError) as e:
        raise IndexFormatError(f"{path}: unreadable or malformed index header: {e}") from e
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        raise IndexFormatError(f"{path}: not a probe index header")
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise IndexFormatError(
            f"{path}: index format version {version!r}; this probe reads version {FORMAT_VERSION}"
            + (" (index written by a newer probe: upgrade probe)" if isinstance(version, int) and version > FORMAT_VERSION
               else " (written by an older probe: rebuild it into a new directory with `probe index build`)"
               if isinstance(version, int) else "")
        )
    try:
        spec = TextSpec.from_dict(data["spec"])
    except (KeyError, TypeError, ConfigError) as e:
        raise IndexFormatError(f"{path}: invalid text spec: {e}") from e
    return attach_tokenizer(root, spec)


def tokenizer_copy(root: Path, spec: TextSpec) -> Path | None:
    """Where the index keeps its copy of an hf: spec's tokenizer file (None for words/chars)."""
    if not spec.tokenizer.startswith("hf:") or not spec.tokenizer_sha256:
        return None
    return root / TOKENIZER_DIR / f"{spec.tokenizer_sha256}.json"


def attach_tokenizer(root: Path, spec: TextSpec) -> TextSpec:
    """``spec`` reading its hf: tokenizer from the index's copy, so the index works from any directory.

    An index built before copies were stored has none: its ``hf:PATH`` is used as recorded.
    """
    copy = tokenizer_copy(root, spec)
    return spec.with_tokenizer_file(copy) if copy is not None and copy.is_file() else spec


def store_tokenizer(root: Path, spec: TextSpec) -> None:
    """Copy an hf: spec's tokenizer file into the index (once; put-if-absent, named by its sha256).

    The file is small and its sha256 is part of the spec, so the index is self-contained:
    it can be moved, shared, or opened from another directory than the one it was built in.
    """
    copy = tokenizer_copy(root, spec)
    if copy is None or copy.is_file():
        return
    source = spec.tokenizer_path()
    try:
        data = source.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read tokenizer file {source}: {e.strerror or e}") from e
    if hashlib.sha256(data).hexdigest() != spec.tokenizer_sha256:
        raise ConfigError(f"tokenizer file {source} changed while the index was being created "
                          f"(sha256 differs from {spec.tokenizer_sha256}); re-run the same command")
    copy.parent.mkdir(exist_ok=True)
    publish_exclusive(copy.parent, copy.name, data)  # False: a concurrent creator stored the same bytes


def create_or_check_spec(root: Path, spec: TextSpec) -> TextSpec:
    """Create the index header with ``spec``, or check an existing one equals it."""
    root.mkdir(parents=True, exist_ok=True)
    (root / SNAPSHOT_DIR).mkdir(exist_ok=True)
    (root / SEGMENT_DIR).mkdir(exist_ok=True)
    if not (root / SPEC_FILE).exists():
        header = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "spec": spec.to_dict(),
                  "spec_fingerprint": spec.fingerprint()}
        publish_exclusive(root, SPEC_FILE, json.dumps(header, indent=2, sort_keys=True).encode())
    existing = read_spec(root)
    if existing != spec:
        lines = "\n  ".join(existing.diff(spec))
        raise SpecMismatchError(
            f"index {root} was built with a different text spec (index != requested):\n  {lines}\n"
            "Build into a new --index directory, or repeat the index's options."
        )
    if existing.tokenizer_file is None:  # a new index, or one built before tokenizer copies were kept
        store_tokenizer(root, spec)
        existing = attach_tokenizer(root, existing)
    return existing


# --------------------------------------------------------------------------- lock
class WriterLock:
    """The single-writer lock: ``flock`` on ``LOCK``, released by the kernel on death.

    flock (not a PID file) means a ``kill -9``'d builder never leaves a stale lock.
    Readers never take it. Local POSIX filesystems only (not NFS/SMB).
    """

    def __init__(self, root: Path) -> None:
        self.path = root / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "another process"
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise IndexLockedError(
                    f"index {self.path.parent} is locked by a running writer (pid {holder}); "
                    "wait for it to finish (readers are never blocked)"
                ) from e
            raise
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> WriterLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


# --------------------------------------------------------------------------- snapshots
@dataclass
class Snapshot:
    """One committed state of the index (the content of ``snapshots/N.json``)."""

    number: int
    segments: list[dict[str, Any]] = field(default_factory=list)
    shards: dict[str, dict[str, Any]] = field(default_factory=dict)  # fingerprint -> shard record
    stats: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    operation: str = "build"
    spec_fingerprint: str = ""
    # measure side tables: name -> {"config", "config_fingerprint", "parts": {fingerprint: {part: record}}}
    side_tables: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        body = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "snapshot": self.number,
            "created": self.created,
            "operation": self.operation,
            "spec_fingerprint": self.spec_fingerprint,
            "segments": self.segments,
            "shards": self.shards,
            "stats": self.stats,
        }
        if self.side_tables:  # absent when empty: snapshots without side tables stay byte-identical
            body["side_tables"] = self.side_tables
        body["checksum"] = xxhash.xxh3_128_hexdigest(canonical_json(body))
        return body

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: Path) -> Snapshot:
        try:
            # The version comes first: a newer format may checksum differently, and
            # "written by a newer probe" is the message that tells the user what to do.
            version = data.get("format_version")
            if data.get("format") != FORMAT_NAME or version != FORMAT_VERSION:
                newer = isinstance(version, int) and version > FORMAT_VERSION
                raise IndexFormatError(
                    f"{source}: snapshot format {data.get('format')!r} v{version!r}; "
                    f"this probe reads {FORMAT_NAME} v{FORMAT_VERSION}"
                    + (" (index written by a newer probe: upgrade probe)" if newer else
                       " (written by an older probe: rebuild the index)" if isinstance(version, int) else "")
                )
            body = {k: v for k, v in data.items() if k != "checksum"}
            if data.get("checksum") != xxhash.xxh3_128_hexdigest(canonical_json(body)):
                raise IndexFormatError(f"{source}: snapshot checksum mismatch (corrupt or edited)")
            segments, shards = data["segments"], data["shards"]
            if not (isinstance(segments, list) and all(isinstance(x, dict) for x in segments)
                    and isinstance(shards, dict) and all(isinstance(x, dict) for x in shards.values())):
                raise IndexFormatError(f"{source}: malformed snapshot: segments/shards have the wrong types")
            side_tables = data.get("side_tables", {})
            if not (isinstance(side_tables, dict) and all(
                    isinstance(t, dict) and isinstance(t.get("parts"), dict) and isinstance(t.get("config"), dict)
                    for t in side_tables.values())):
                raise IndexFormatError(f"{source}: malformed snapshot: side_tables have the wrong types")
            return cls(
                number=int(data["snapshot"]),
                segments=list(data["segments"]),
                shards=dict(data["shards"]),
                stats=dict(data.get("stats", {})),
                created=str(data.get("created", "")),
                operation=str(data.get("operation", "build")),
                spec_fingerprint=str(data.get("spec_fingerprint", "")),
                side_tables=dict(side_tables),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise IndexFormatError(f"{source}: malformed snapshot: {e!r}") from e

    def committed_parts(self) -> set[tuple[str, int]]:
        return {(fp, int(p)) for fp, rec in self.shards.items() for p in rec.get("parts", {})}

    def next(self, operation: str) -> Snapshot:
        """A copy to become snapshot number+1 (deep enough: records are replaced, not mutated)."""
        return Snapshot(
            number=self.number + 1,
            segments=list(self.segments),
            shards={fp: {**rec, "parts": dict(rec.get("parts", {}))} for fp, rec in self.shards.items()},
            stats=dict(self.stats),
            operation=operation,
            spec_fingerprint=self.spec_fingerprint,
            side_tables={name: {**t, "parts": {fp: dict(parts) for fp, parts in t["parts"].items()}}
                         for name, t in self.side_tables.items()},
        )


def snapshot_name(number: int) -> str:
    return f"{number:08d}.json"


def list_snapshot_numbers(root: Path) -> list[int]:
    d = root / SNAPSHOT_DIR
    if not d.is_dir():
        return []
    out = []
    for p in d.iterdir():
        if p.name.endswith(".json") and not p.name.startswith(TMP_PREFIX) and p.stem.isdigit():
            out.append(int(p.stem))
    return sorted(out)


def read_snapshot(root: Path, number: int) -> Snapshot:
    path = root / SNAPSHOT_DIR / snapshot_name(number)
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError as e:
        raise IndexMissingError(f"{path}: snapshot {number} does not exist") from e
    except (OSError, ValueError, RecursionError) as e:
        raise IndexFormatError(f"{path}: unreadable or truncated snapshot: {e}") from e
    if not isinstance(data, dict):
        raise IndexFormatError(f"{path}: malformed snapshot (not an object)")
    snap = Snapshot.from_dict(data, path)
    if snap.number != number:
        raise IndexFormatError(f"{path}: file name says snapshot {number} but content says {snap.number}")
    return snap


def latest_snapshot(root: Path) -> Snapshot | None:
    """The highest committed snapshot, or None for a freshly created index.

    A malformed tail snapshot is an error, never silently skipped: it was published
    atomically, so damage means corruption, not an interrupted write.
    """
    numbers = list_snapshot_numbers(root)
    return read_snapshot(root, numbers[-1]) if numbers else None


def commit_snapshot(root: Path, snap: Snapshot) -> bool:
    """Publish ``snap`` as ``snapshots/<number>.json``; False if that number is taken."""
    snap.created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    data = json.dumps(snap.to_dict(), indent=1, sort_keys=True, allow_nan=False).encode()
    return publish_exclusive(root / SNAPSHOT_DIR, snapshot_name(snap.number), data)


def new_segment_dir(root: Path) -> tuple[str, Path]:
    seg_id = uuid.uuid4().hex
    path = root / SEGMENT_DIR / seg_id
    path.mkdir(parents=True)
    return seg_id, path


def ngram_file(view: str, n: int) -> str:
    return f"view={view}/n={n}.parquet"


def safe_relative(root: Path, rel: str) -> Path:
    """Resolve a path read from a manifest; only plain relative paths under root are allowed."""
    if not rel or "://" in rel or "::" in rel or rel.startswith("/") or ".." in Path(rel).parts:
        raise IndexFormatError(f"{root}: manifest path {rel!r} is not a relative path inside the index")
    return root / rel
