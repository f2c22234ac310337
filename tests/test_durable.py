"""probe.durable: the one atomic writer (temp → fsync → replace → fsync dir; no temp left on failure)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from probe import durable


@pytest.fixture
def fsynced(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the path behind every fd that os.fsync is called on (in order)."""
    seen: list[str] = []
    real = os.fsync

    def spy(fd: int) -> None:
        seen.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    return seen


def test_write_bytes_atomic_fsyncs_the_file_then_the_directory(tmp_path: Path, fsynced: list[str]) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    durable.write_bytes_atomic(target, b"new content")
    assert target.read_bytes() == b"new content"
    assert len(fsynced) == 2
    assert Path(fsynced[0]).parent == tmp_path and Path(fsynced[0]).name.startswith(".out.bin.tmp-")
    assert fsynced[1] == str(tmp_path)  # the rename is made durable too
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_write_json_atomic_format(tmp_path: Path) -> None:
    path = durable.write_json_atomic(tmp_path / "s.json", {"b": "é", "a": [1, 2]})
    assert path.read_text(encoding="utf-8") == '{\n  "b": "é",\n  "a": [\n    1,\n    2\n  ]\n}\n'
    with pytest.raises(ValueError):
        durable.write_json_atomic(tmp_path / "nan.json", {"x": float("nan")})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json"]  # nothing half-written


@pytest.mark.parametrize("error", [RuntimeError("disk on fire"), KeyboardInterrupt()])
def test_failure_inside_the_writer_keeps_the_old_file_and_no_temp(tmp_path: Path, error: BaseException) -> None:
    target = tmp_path / "report.md"
    target.write_text("old complete")
    with pytest.raises(type(error)), durable.atomic_writer(target) as f:
        f.write(b"half a rep")
        raise error
    assert target.read_text() == "old complete"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]


def test_failed_fsync_removes_the_temp_and_is_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def eio(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", eio)
    with pytest.raises(OSError, match="Input/output error"):
        durable.write_bytes_atomic(tmp_path / "x", b"data")
    assert list(tmp_path.iterdir()) == []


def test_publish_file_fsyncs_replaces_and_fsyncs_the_directory(tmp_path: Path, fsynced: list[str]) -> None:
    final = tmp_path / "examples.parquet"
    tmp = durable.temp_path(final)
    tmp.write_bytes(b"streamed by a ParquetWriter")
    durable.publish_file(tmp, final)
    assert final.read_bytes() == b"streamed by a ParquetWriter" and not tmp.exists()
    assert fsynced == [str(tmp), str(tmp_path)]


def test_publish_file_failure_removes_the_temp(tmp_path: Path) -> None:
    tmp = durable.temp_path(tmp_path / "f")
    tmp.write_bytes(b"x")
    with pytest.raises(OSError):
        durable.publish_file(tmp, tmp_path / "missing-dir" / "f")
    assert list(tmp_path.iterdir()) == []


def test_temp_names_are_unique_and_recognised_as_temps(tmp_path: Path) -> None:
    a, b = durable.temp_path(tmp_path / "n=8.parquet"), durable.temp_path(tmp_path / "n=8.parquet")
    assert a != b and a.parent == tmp_path and a.name.startswith(f".n=8.parquet.tmp-{os.getpid()}-")


def test_remove_stale_temps_keeps_live_writers_and_other_files(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = [tmp_path / f".summary.json.tmp-{dead.pid}", tmp_path / f".report.html.tmp-{dead.pid}-0123abcd"]
    live = [durable.temp_path(tmp_path / "summary.json"), tmp_path / f".x.tmp-{os.getpid()}"]
    other = [tmp_path / "summary.json", tmp_path / ".hidden", tmp_path / f"a.tmp-{dead.pid}"]
    for p in [*stale, *live, *other]:
        p.write_bytes(b"x")
    assert sorted(durable.remove_stale_temps(tmp_path)) == sorted(p.name for p in stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in [*live, *other])


def test_write_new_file_removes_the_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    durable.write_new_file(tmp_path / "ok", b"fine")
    assert (tmp_path / "ok").read_bytes() == b"fine"

    def eio(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", eio)
    with pytest.raises(OSError):
        durable.write_new_file(tmp_path / "bad", b"data")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok"]


def test_one_atomic_writer_in_the_tree() -> None:
    """No second temp-then-rename writer: every os.replace of a written file goes through probe.durable."""
    root = Path(__file__).resolve().parents[1] / "probe"
    users = sorted(str(p.relative_to(root)) for p in root.rglob("*.py") if "os.replace(" in p.read_text())
    allowed = {"durable.py", "text/tokenizers.py"}  # tokenizers: a cache file
    assert set(users) <= allowed, users
