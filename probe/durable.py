"""The one durable, atomic writer of the project (reports, scan output, index files, demo corpus).

One policy, the strictest: a unique temp name in the target's directory → write →
flush + fsync → ``os.replace`` over the final name → fsync the directory, so a reader
sees the old file or the whole new one, and the new one survives power loss once the
call returns. The temp file is removed on *any* failure, ``KeyboardInterrupt``
included; a writer killed outright (``kill -9``) leaves ``.NAME.tmp-PID-XXXX``, which
:func:`remove_stale_temps` removes once that PID is gone. fsync errors are raised,
never swallowed: a file that may not be durable is not reported as written.

Two other mechanisms live elsewhere on purpose and only share the fsync helpers:
the index's put-if-absent snapshot commit (``os.link``, which never overwrites; see
:mod:`probe.index.format`) and :func:`write_new_file` for files inside a directory no
reader can see yet (an uncommitted index segment), where a rename would add nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

_TEMP_MARK = ".tmp-"
_TEMP_NAME = re.compile(r"^\.[\w.=-]+\.tmp-(\d+)(?:-[0-9a-f]+)?$")


def fsync_dir(path: str | Path) -> None:
    """fsync a directory so a new, renamed or removed entry in it survives power loss."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: str | Path) -> None:
    """fsync a file that someone else wrote and closed (e.g. a ParquetWriter's output)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_path(final: str | Path) -> Path:
    """A fresh temp name next to ``final``: ``.NAME.tmp-PID-RANDOM``.

    Same directory, so ``os.replace`` is atomic; the PID lets :func:`remove_stale_temps`
    tell a killed writer's leftovers from a live writer's file; the random part keeps
    two threads (or two writers of one name) of the same process apart.
    """
    final = Path(final)
    return final.with_name(f".{final.name}{_TEMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:12]}")


def publish_file(tmp: str | Path, final: str | Path) -> Path:
    """Make a complete, closed temp file the final one: fsync it, ``os.replace``, fsync the directory.

    For writers that stream into a temp file themselves (a ParquetWriter given
    :func:`temp_path`). The temp file is removed if any step fails before the rename.
    """
    tmp, final = Path(tmp), Path(final)
    try:
        fsync_file(tmp)
        os.replace(tmp, final)  # replaces a symlink at ``final`` itself; never writes through it
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(final.parent)
    return final


@contextlib.contextmanager
def atomic_writer(path: str | Path) -> Iterator[IO[bytes]]:
    """Yield a binary file; on a clean exit its content replaces ``path`` durably, else nothing changes."""
    final = Path(path)
    tmp = temp_path(final)
    try:
        with open(tmp, "xb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(final.parent)


def write_bytes_atomic(path: str | Path, data: bytes | bytearray | memoryview) -> Path:
    """Replace ``path`` with ``data`` atomically and durably."""
    with atomic_writer(path) as f:
        f.write(data)
    return Path(path)


def json_bytes(obj: Any) -> bytes:
    """The project's JSON file format: indent 2, no NaN/Infinity, UTF-8 as is, trailing newline."""
    return (json.dumps(obj, indent=2, allow_nan=False, ensure_ascii=False) + "\n").encode("utf-8")


def write_json_atomic(path: str | Path, obj: Any) -> Path:
    """Replace ``path`` with ``obj`` as JSON (:func:`json_bytes`) atomically and durably."""
    return write_bytes_atomic(path, json_bytes(obj))


def write_new_file(path: str | Path, data: bytes | bytearray | memoryview) -> None:
    """Write and fsync a file in a directory that no reader can see yet; remove it on any failure.

    No temp name and no rename: the directory itself is published later (an index
    segment becomes visible only through a snapshot), and its publisher fsyncs it.
    """
    try:
        with open(path, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise


def remove_stale_temps(directory: str | Path) -> list[str]:
    """Remove ``.NAME.tmp-PID[-RANDOM]`` files whose writer (PID) is gone; return their names.

    A temp file of a live process (another writer in this directory) is kept.
    """
    removed = []
    for path in Path(directory).iterdir():
        m = _TEMP_NAME.match(path.name)
        if not m or not path.is_file() or _alive(int(m.group(1))):
            continue
        try:
            path.unlink()
        except OSError:
            continue
        removed.append(path.name)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


__all__ = [
    "atomic_writer",
    "fsync_dir",
    "fsync_file",
    "json_bytes",
    "publish_file",
    "remove_stale_temps",
    "temp_path",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_new_file",
]
