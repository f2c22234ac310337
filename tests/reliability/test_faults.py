"""Signals, disk full and I/O errors during a build (RELIABILITY §6.1 C4–C7, §6.7 R8, §6.9 E1 code 130).

* C7: SIGTERM/SIGINT to a running ``probe index build`` (one worker, two workers, the whole
  process group): a clean stop with exit 130 and one line on stderr (no traceback), the
  writer lock released, no half-written snapshot, and re-running converges (EQ + verify --deep).
* C6: disk full, simulated with ``RLIMIT_FSIZE`` in the child (``preexec_fn``): the build
  fails with a message naming the file it could not write, nothing partial is visible,
  no temp file is left, and re-running without the limit converges.
* C5: ``os.fsync`` raising EIO (data file, snapshot temp file, snapshot directory): the
  commit fails, is never retried blindly, the index stays consistent, resume converges.
* C4 (the part that applies to a local POSIX filesystem): the order of durable operations
  at every commit, spied on a real build: every file a snapshot references, and its
  directory, is fsynced before the snapshot is linked; the snapshot directory is fsynced
  after the link and before the next commit.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from helpers import _WARM_CHILD, IndexTables, index_tables, make_docs, probe_env, run_probe, write_parquet
from probe.cli import main
from probe.config import BuildConfig, TextSpec
from probe.index import format as fmt
from probe.index.build import build_index
from probe.index.maintenance import verify_index

pytestmark = pytest.mark.crash

SPEC = TextSpec(ns=(3, 8))
CONFIG = BuildConfig(workers=1, row_groups_per_part=1)
CLI_ARGS = ["--n", "3,8", "--row-groups-per-part", "1", "--silent"]
N_PARTS = 32  # 4 shards x 8 row groups


@dataclass
class Env:
    shards: list[str]
    reference: Path
    tables: IndexTables
    base_index: Path  # the first shard only
    base_tables: IndexTables


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Env:
    root = tmp_path_factory.mktemp("faults")
    shards = [str(write_parquet(root / "corpus" / f"s{i}.parquet", make_docs(400, seed=300 + i, max_words=60),
                                row_group_size=50)) for i in range(4)]
    reference = root / "reference"
    build_index(shards, reference, SPEC, CONFIG)
    base = root / "base"
    build_index(shards[:1], base, SPEC, CONFIG)
    return Env(shards, reference, index_tables(reference), base, index_tables(base))


def committed(index: Path) -> int:
    snap = fmt.latest_snapshot(index)
    return len(snap.committed_parts()) if snap else 0


def assert_consistent(index: Path) -> None:
    """What a crash or failure may leave: a valid index (orphans allowed), no temp files visible."""
    report = verify_index(index)
    assert report["ok"] and report["problems"] == [], report
    assert not list((index / fmt.SNAPSHOT_DIR).glob(f"{fmt.TMP_PREFIX}*"))


def assert_converges(env: Env, index: Path) -> None:
    build_index(env.shards, index, SPEC, CONFIG)
    report = verify_index(index, deep=True)
    assert report["ok"], report
    assert index_tables(index) == env.tables
    assert not (index / "tmp").exists()


# --------------------------------------------------------------------------- C7 signals
def _warm_builder(shards: list[str], index: Path, workers: int, mark: str) -> subprocess.Popen[str]:
    """A builder that paid its startup, in its own session (so the test can signal its process group)."""
    return subprocess.Popen(
        [sys.executable, "-c", _WARM_CHILD, "index", "build", *shards, "--index", str(index),
         "--workers", str(workers), *CLI_ARGS],
        env=probe_env({"PROBE_TEST_MARK": mark}), text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, start_new_session=True)


def _marked(mark: str) -> list[int]:
    needle = f"PROBE_TEST_MARK={mark}".encode()
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if state != "Z" and needle in environ.split(b"\0"):
            out.append(int(entry.name))
    return out


SIGNAL_CASES = [
    ("SIGTERM", 1, False),
    ("SIGTERM", 2, False),  # coordinator only: it must stop its pool workers itself
    ("SIGTERM", 2, True),  # the whole process group (a CI runner cancelling the job)
    ("SIGINT", 1, False),
    ("SIGINT", 2, True),  # Ctrl-C in a terminal
]


@pytest.mark.parametrize(("signame", "workers", "group"), SIGNAL_CASES,
                         ids=[f"{s}-w{w}{'-group' if g else ''}" for s, w, g in SIGNAL_CASES])
def test_signal_during_build_stops_cleanly_and_resumes(env: Env, tmp_path: Path, signame: str, workers: int,
                                                       group: bool) -> None:
    index = tmp_path / "idx"
    shutil.copytree(env.base_index, index)
    before = committed(index)
    mark = f"faults-{os.getpid()}-{signame}-{workers}-{group}"
    proc = _warm_builder(env.shards, index, workers, mark)
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.stdin.write("go\n")
        proc.stdin.flush()
        # signal once the build is under way: at least two new parts committed (mid-build, not at startup)
        deadline = time.monotonic() + 60
        while committed(index) < before + 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proc.poll() is None, "the build finished before the signal: make the corpus bigger"
        at_signal = committed(index)
        sig = getattr(signal, signame)
        if group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert err.endswith("interrupted; re-run the same command to resume\n"), err
    after = committed(index)
    assert at_signal <= after < N_PARTS  # what was committed stays; the build did stop
    deadline = time.monotonic() + 10
    while _marked(mark) and time.monotonic() < deadline:  # no pool worker outlives the interrupted build
        time.sleep(0.1)
    assert _marked(mark) == []
    assert_consistent(index)
    with fmt.WriterLock(index):  # the lock was released
        pass
    assert index_tables(index).parts <= env.tables.parts
    assert_converges(env, index)
    assert err == "interrupted; re-run the same command to resume\n", err  # one line, no traceback


def test_sigterm_handler_is_scoped_to_the_command() -> None:
    """The CLI installs its SIGINT/SIGTERM handler only while a command runs (library users keep theirs)."""
    from probe import cli

    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    seen = {}

    @cli.handle_errors
    def command() -> None:
        seen.update({sig: signal.getsignal(sig) for sig in before})

    command()
    assert seen == dict.fromkeys(before, cli._terminate)
    assert {sig: signal.getsignal(sig) for sig in before} == before


def test_interrupt_surfacing_wrapped_is_still_exit_130(capsys: pytest.CaptureFixture[str]) -> None:
    """Ctrl-C inside a numba/pyarrow callback arrives as e.g. SystemError from KeyboardInterrupt; or a
    library turns it into its own error. Both are an interruption (130, one line), not a bug (70)."""
    from probe import cli
    from probe.errors import InputError

    @cli.handle_errors
    def wrapped() -> None:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as e:
            raise SystemError("<function _numba_unpickle> returned a result with an exception set") from e

    @cli.handle_errors
    def swallowed() -> None:
        try:
            os.kill(os.getpid(), signal.SIGTERM)  # the CLI's handler raises KeyboardInterrupt here
            time.sleep(5)
        except KeyboardInterrupt:
            pass
        raise InputError("/x.jsonl", "read failed")  # what a library made of it

    @cli.handle_errors
    def real_bug() -> None:
        raise SystemError("a bug")

    for command, code in ((wrapped, 130), (swallowed, 130), (real_bug, 70)):
        with pytest.raises(SystemExit) as info:
            command()
        assert info.value.code == code
        err = capsys.readouterr().err
        if code == 130:
            assert err == "interrupted; re-run the same command to resume\n"


def test_stop_swallowed_by_a_finalizer_is_still_exit_130(capsys: pytest.CaptureFixture[str]) -> None:
    """A signal whose handler runs inside a ``__del__`` (pyarrow's ParquetWriter, collected after a part
    was written) raises there and Python drops the exception. The command must not then report success:
    exit 130 with the one "interrupted" line, no "Exception ignored" traceback."""
    import gc

    from probe import cli

    class Finalized:
        def __del__(self) -> None:
            os.kill(os.getpid(), signal.SIGTERM)  # the CLI's handler raises KeyboardInterrupt in here
            time.sleep(5)

    @cli.handle_errors
    def finishes() -> str:
        obj = Finalized()
        del obj  # the finalizer swallows the stop; the command goes on to the end
        gc.collect()
        return "done"

    with pytest.raises(SystemExit) as info:
        finishes()
    assert info.value.code == 130
    assert capsys.readouterr().err == "interrupted; re-run the same command to resume\n"


@pytest.mark.parametrize("workers", [1, 2])
def test_build_stops_at_the_next_part_after_a_swallowed_stop(env: Env, tmp_path: Path, workers: int) -> None:
    """The build's safe point between parts raises a recorded stop: nothing more is committed."""
    from probe import interrupt

    index = tmp_path / "idx"
    shutil.copytree(env.base_index, index)
    before = committed(index)
    interrupt.record(signal.SIGTERM)
    try:
        with pytest.raises(KeyboardInterrupt):
            build_index(env.shards, index, SPEC, dataclasses.replace(CONFIG, workers=workers))
    finally:
        interrupt.reset()
    assert committed(index) == before
    assert_consistent(index)
    assert_converges(env, index)


# --------------------------------------------------------------------------- C6 disk full
def _fsize_limit(limit: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # Python ignores it too; be explicit

    return apply


def _build_limited(env: Env, index: Path, limit: int, workers: int = 1) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "probe", "index", "build", *env.shards, "--index", str(index),
                           "--workers", str(workers), *CLI_ARGS], env=probe_env(), capture_output=True, text=True,
                          timeout=240, preexec_fn=_fsize_limit(limit))


def _file_sizes(index: Path) -> tuple[int, list[int]]:
    data = max(p.stat().st_size for p in (index / fmt.SEGMENT_DIR).rglob("*") if p.is_file())
    snaps = [p.stat().st_size for p in sorted((index / fmt.SNAPSHOT_DIR).glob("*.json"))]
    return data, snaps


@pytest.mark.parametrize("workers", [1, 2])
def test_disk_full_writing_segment_data(env: Env, tmp_path: Path, workers: int) -> None:
    """No segment file fits: every part fails, the file is named, the previous version is untouched."""
    index = tmp_path / "idx"
    shutil.copytree(env.base_index, index)
    snaps_before = fmt.list_snapshot_numbers(index)
    biggest, _ = _file_sizes(env.reference)
    res = _build_limited(env, index, limit=biggest // 3, workers=workers)
    assert res.returncode == 4, res.stderr  # the index could not be written: an index error, not bad input
    assert "Traceback" not in res.stderr
    assert "cannot write index file" in res.stderr and "File too large" in res.stderr
    assert f"{index / fmt.SEGMENT_DIR}/" in res.stderr  # names the file being written
    assert "0 committed" in res.stderr and "re-run to resume" in res.stderr
    assert fmt.list_snapshot_numbers(index) == snaps_before
    assert index_tables(index) == env.base_tables
    assert_consistent(index)
    assert verify_index(index)["orphans"] == []  # failed parts removed their segment directories
    assert_converges(env, index)


def test_disk_full_writing_a_snapshot(env: Env, tmp_path: Path) -> None:
    """Data files fit but a later (bigger) snapshot does not: exit 4, last good version intact, resumable."""
    index = tmp_path / "idx"
    shutil.copytree(env.base_index, index)
    biggest, snaps = _file_sizes(env.reference)
    limit = max(biggest, snaps[len(snaps) // 2]) + 64
    assert limit < snaps[-1], "corpus too small to separate data files from snapshots"
    res = _build_limited(env, index, limit=limit)
    assert res.returncode == 4, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("probe: error: cannot write index file"), res.stderr
    assert f"{index / fmt.SNAPSHOT_DIR}/" in lines[0] and "File too large" in lines[0]
    done = committed(index)
    assert 8 < done < N_PARTS
    assert_consistent(index)
    # the last published snapshot is complete and every snapshot fits the limit
    assert all(p.stat().st_size <= limit for p in (index / fmt.SNAPSHOT_DIR).iterdir())
    assert index_tables(index).parts <= env.tables.parts
    assert_converges(env, index)


# --------------------------------------------------------------------------- C5 EIO
def _fd_path(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""


@pytest.mark.parametrize(("target", "nth", "code", "new_parts"), [
    ("data", 3, 4, N_PARTS - 8 - 1),  # the 3rd data-file fsync: that part fails, the others commit
    ("snapshot", 2, 4, 1),  # the 2nd snapshot temp file: commit #2 fails, the build stops
    ("snapshot-dir", 2, 4, 2),  # the 2nd snapshot directory fsync: commit #2 is in doubt (linked), stop
])
def test_fsync_eio_during_commit(env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str,
                                 nth: int, code: int, new_parts: int) -> None:
    index = tmp_path / "idx"
    shutil.copytree(env.base_index, index)
    real_fsync = os.fsync
    snapdir = str((index / fmt.SNAPSHOT_DIR).resolve())
    segdir = str((index / fmt.SEGMENT_DIR).resolve())
    hits = {"n": 0, "after": 0}

    def failing_fsync(fd: int) -> None:
        path = _fd_path(fd)
        kind = ("snapshot-dir" if path == snapdir else
                "snapshot" if path.startswith(snapdir + "/") else
                "data" if path.startswith(segdir + "/") and path.endswith(".parquet") else "")
        if hits["n"] >= nth and path.startswith(snapdir):
            hits["after"] += 1  # a snapshot fsync after the failure: a blind retry
        if kind == target:
            hits["n"] += 1
            if hits["n"] == nth:
                raise OSError(errno.EIO, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", failing_fsync)
    res = CliRunner().invoke(main, ["index", "build", *env.shards, "--index", str(index), "--workers", "1",
                                    *CLI_ARGS])
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert res.exit_code == code, res.output
    assert "Input/output error" in res.stderr and "Traceback" not in res.stderr
    if target == "snapshot-dir":
        assert "in doubt" in res.stderr
        assert hits["after"] == 0  # stopped at once: no retried fsync, no further commit
    elif target == "snapshot":
        assert hits["after"] == 0
    assert committed(index) == 8 + new_parts
    assert_consistent(index)
    assert index_tables(index).parts <= env.tables.parts
    assert_converges(env, index)


# --------------------------------------------------------------------------- C4 durable order
def test_commit_order_fsync_data_then_link_then_fsync_dir(env: Env, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Spy every fsync and link of a real build; check the crash-consistency order of each commit."""
    index = tmp_path / "idx"
    events: list[tuple[str, str]] = []
    real_fsync, real_link = os.fsync, os.link

    def spy_fsync(fd: int) -> None:
        real_fsync(fd)
        events.append(("fsync", _fd_path(fd)))

    sources: dict[str, str] = {}

    def spy_link(src, dst, *a, **k) -> None:
        real_link(src, dst, *a, **k)
        sources[str(Path(dst).resolve())] = str(Path(src).resolve())
        events.append(("link", str(Path(dst).resolve())))

    monkeypatch.setattr(os, "fsync", spy_fsync)
    monkeypatch.setattr(os, "link", spy_link)
    build_index(env.shards[:2], index, SPEC, CONFIG)
    monkeypatch.undo()
    root = index.resolve()
    snapdir = str(root / fmt.SNAPSHOT_DIR)
    links = [i for i, (op, p) in enumerate(events) if op == "link" and p.startswith(snapdir + "/")]
    assert len(links) == 16
    synced: set[str] = set()
    cursor = 0
    for i in links:
        synced.update(p for op, p in events[cursor:i] if op == "fsync")
        cursor = i
        name = events[i][1]
        assert sources[name] in synced, f"the content of {name} was not fsynced before it was linked"
        snap = json.loads(Path(name).read_text())
        for seg in snap["segments"]:
            manifest = json.loads((root / seg["manifest"]).read_text())
            files = [seg["manifest"], manifest["docs_file"]["path"], *(f["path"] for f in manifest["files"])]
            for rel in files:
                path = root / rel
                assert str(path) in synced, f"{rel} not fsynced before {name} was published"
                for d in path.relative_to(root).parents:
                    if d != Path("."):
                        assert str(root / d) in synced, f"directory {d} not fsynced before {name}"
        # the snapshot directory is fsynced after the link, before anything else is published
        nxt = next((j for j in links if j > i), len(events))
        assert ("fsync", snapdir) in events[i + 1:nxt], f"no directory fsync after publishing {name}"


def test_fsize_child_really_fails_writes(tmp_path: Path) -> None:
    """Self-check of the harness: the RLIMIT_FSIZE child gets EFBIG (not SIGXFSZ death)."""
    code = ("import sys\ntry:\n    open(sys.argv[1], 'wb').write(b'x' * 100000)\n"
            "except OSError as e:\n    print(e.errno)\n")
    res = subprocess.run([sys.executable, "-c", code, str(tmp_path / "f")], capture_output=True, text=True,
                         preexec_fn=_fsize_limit(4096), timeout=60)
    assert res.returncode == 0 and res.stdout.strip() == str(errno.EFBIG), res


# --------------------------------------------------------------------------- R8 report temp files
def test_stale_report_temp_files_are_removed_at_next_start(tmp_path: Path) -> None:
    """``.NAME.tmp-PID`` of a killed scan (dead PID) goes at the next scan; a live writer's stays."""
    docs = make_docs(30, seed=91, min_words=20)
    shard = write_parquet(tmp_path / "c.parquet", docs)
    index = tmp_path / "idx"
    build_index([str(shard)], index, SPEC, CONFIG)
    dataset = tmp_path / "d.jsonl"
    dataset.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs[:3]))
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = [out / f".examples.parquet.tmp-{dead.pid}", out / f".summary.json.tmp-{dead.pid}",
             out / f".report.html.tmp-{dead.pid}"]
    live = out / f".summary.json.tmp-{os.getpid()}"
    for p in [*stale, live]:
        p.write_bytes(b"half a file")
    res = run_probe("check", str(dataset), "--index", str(index), "--out", str(out), "--max-contaminated", "100%",
                    "--silent")
    assert res.returncode == 0, res.stderr
    assert not any(p.exists() for p in stale)
    assert live.exists()
    assert {p.name for p in out.iterdir()} == {"examples.parquet", "summary.json", "gate.json", "report.html",
                                              "report.md", "junit.xml", live.name}


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_signal_during_check_publishes_no_partial_report(env: Env, tmp_path: Path, signame: str) -> None:
    """`probe check` interrupted mid-scan: exit 130, one line, no report file and no temp file left."""
    docs = make_docs(4000, seed=92, min_words=30)
    dataset = tmp_path / "big.jsonl"
    dataset.write_text("".join(json.dumps({"instruction": d, "output": d[::-1]}) + "\n" for d in docs))
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-c", _WARM_CHILD, "check", str(dataset), "--index", str(env.reference), "--out", str(out),
         "--batch-size", "200", "--silent"],
        env=probe_env(), text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.stdin.write("go\n")
        proc.stdin.flush()
        deadline = time.monotonic() + 60
        while not list(out.glob(".examples.parquet.tmp-*")) and time.monotonic() < deadline:
            time.sleep(0.005)  # the scan has written its first batch
        assert proc.poll() is None, "the check finished before the signal"
        proc.send_signal(getattr(signal, signame))
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert err == "interrupted; re-run the same command to resume\n", err
    assert list(out.iterdir()) == []  # nothing published, nothing half-written


# --------------------------------------------------------------------------- crashes during compaction
def _same_content(index: Path, before: IndexTables) -> None:
    """EQ allowing for compaction: same tables and parts; doc samples = the global bottom-k once compacted."""
    after = index_tables(index)
    assert after.tables == before.tables and after.parts == before.parts
    compacted = len(after.segment_docs) == 1 < len(before.segment_docs)
    assert after.samples == (before.global_bottom_k(SPEC.doc_sample_k) if compacted else before.samples)


@pytest.mark.parametrize(("point", "nth"), [("mid_parquet_write", 1), ("before_log_publish", 1),
                                            ("after_log_publish_before_dirfsync", 1)])
def test_sigkill_during_compaction_then_rerun(env: Env, tmp_path: Path, point: str, nth: int) -> None:
    """Compaction is a writer too: killed at any fault point, the index is the old one or the compacted one."""
    index = tmp_path / "idx"
    shutil.copytree(env.reference, index)
    segments_before = len(fmt.latest_snapshot(index).segments)
    res = run_probe("index", "compact", str(index), "--silent", env={"PROBE_FAULT": f"{point}:{nth}"})
    assert res.returncode == -signal.SIGKILL, res.stderr
    report = verify_index(index)
    assert report["ok"] and report["problems"] == [], report
    published = point == "after_log_publish_before_dirfsync"
    assert len(fmt.latest_snapshot(index).segments) == (1 if published else segments_before)
    _same_content(index, env.tables)  # the old index or the compacted one, nothing in between
    res = run_probe("index", "compact", str(index), "--silent")
    assert res.returncode == 0, res.stderr
    assert len(fmt.latest_snapshot(index).segments) == 1
    assert run_probe("index", "gc", str(index), "--older-than", "0").returncode == 0
    report = verify_index(index, deep=True)
    assert report["ok"] and report["orphans"] == [], report
    assert not list(index.rglob(f"{fmt.TMP_PREFIX}*"))
    _same_content(index, env.tables)


# --------------------------------------------------------------------------- Ray workers killed
def test_ray_workers_killed_then_resume(env: Env, tmp_path: Path) -> None:
    """`--executor ray`: every Ray worker SIGKILLs itself after writing its first segment (before any
    commit). The build fails cleanly (exit 70, one message), commits nothing half-done, and resumes."""
    pytest.importorskip("ray")
    index = tmp_path / "idx"
    shutil.copytree(env.base_index, index)
    res = run_probe("index", "build", *env.shards[:2], "--index", str(index), "--executor", "ray", "--workers", "2",
                    "--n", "3,8", "--row-groups-per-part", "1", "--silent",
                    env={"PROBE_FAULT": "after_data_fsync:1"}, timeout=300)
    if res.returncode == 2 and "cannot start or reach Ray" in res.stderr:
        pytest.skip(f"Ray cannot start here: {res.stderr.strip()[-300:]}")
    assert res.returncode == 70, res.stderr
    assert "probe: error: a worker process died" in res.stderr and "Traceback" not in res.stderr
    assert_consistent(index)
    assert committed(index) == 8  # the base shard only: no part of a killed task was committed
    assert index_tables(index) == env.base_tables
    assert_converges(env, index)
