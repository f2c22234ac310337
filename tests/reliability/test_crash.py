"""Crash, resume and concurrency tests for index builds (RELIABILITY §6.1 C1–C3, C8, C12; §6.2 K1, K2, K6).

Every builder here is a real ``python -m probe index build`` subprocess killed with SIGKILL,
at a named fault point (``PROBE_FAULT=point:nth``) or at a random time. After a kill:
``probe index verify`` passes (orphans allowed), re-running the build converges, and the
final index is EQ (logically equal) to an uninterrupted build, and passes ``verify --deep``.

Subprocesses are launched concurrently where they are independent: each pays ~1-2 s of
imports and numba cache loading, and 2 cores overlap that well.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from helpers import (
    Corpus,
    IndexTables,
    index_tables,
    make_docs,
    popen_probe,
    start_warm,
    wait_ready,
    warm_probe,
    write_jsonl,
    write_parquet,
)
from probe.cli import main
from probe.config import BuildConfig, TextSpec
from probe.errors import IndexLockedError
from probe.index import build as build_mod
from probe.index import format as fmt
from probe.index.build import build_index
from probe.index.maintenance import gc_index, verify_index

pytestmark = pytest.mark.crash

SPEC = TextSpec(ns=(3, 8))
CONFIG = BuildConfig(workers=1, row_groups_per_part=1)
CLI_ARGS = ["--n", "3,8", "--row-groups-per-part", "1", "--silent"]
SEED = 20261122


@dataclass
class CrashEnv:
    corpus: Corpus
    base_shard: str
    reference: Path  # uninterrupted build of every shard
    base_index: Path  # the base shard only (template copied for each case)
    reference_tables: IndexTables

    @property
    def shards(self) -> list[str]:
        return self.corpus.paths


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> CrashEnv:
    root = tmp_path_factory.mktemp("crash")
    c = root / "corpus"
    shards = {
        write_parquet(c / "base.parquet", make_docs(20, seed=10), row_group_size=20): None,
        write_parquet(c / "p1.parquet", make_docs(60, seed=11), row_group_size=20): None,  # 3 parts
        write_parquet(c / "p2.parquet", make_docs(40, seed=12), row_group_size=20): None,  # 2 parts
        write_jsonl(c / "j1.jsonl", make_docs(30, seed=13)): None,
        write_jsonl(c / "j2.jsonl.gz", make_docs(20, seed=14)): None,
    }
    corpus = Corpus(c, {p: [] for p in shards})
    reference = root / "reference"
    build_index(corpus.paths, reference, SPEC, CONFIG)
    base = root / "base-index"
    build_index([str(c / "base.parquet")], base, SPEC, CONFIG)
    return CrashEnv(corpus, str(c / "base.parquet"), reference, base, index_tables(reference))


def verify_cli(index: Path, deep: bool = False) -> tuple[int, dict]:
    res = CliRunner().invoke(main, ["index", "verify", str(index), "--format", "json", *(["--deep"] if deep else [])])
    return res.exit_code, (json.loads(res.stdout) if res.stdout.strip() else {"stderr": res.stderr})


def committed_parts(index: Path) -> int:
    snap = fmt.latest_snapshot(index)
    return len(snap.committed_parts()) if snap else 0


def assert_converges(env: CrashEnv, index: Path) -> None:
    """Resume (in-process: same code path as the CLI) → EQ with the reference, verify --deep, gc."""
    build_index(env.shards, index, SPEC, CONFIG)
    code, report = verify_cli(index, deep=True)
    assert code == 0 and report["ok"], report
    assert not (index / "tmp").exists()  # spill leftovers of the crashed run are gone
    gc_index(index, older_than_seconds=0)  # gc only removes unreferenced files: EQ below covers both
    assert verify_index(index)["orphans"] == []
    assert not list(index.rglob(f"{fmt.TMP_PREFIX}*"))
    assert index_tables(index) == env.reference_tables


# --------------------------------------------------------------------------- named fault points
@dataclass(frozen=True)
class Fault:
    point: str
    nth: int
    workers: int = 1
    fresh: bool = False  # start from an empty directory instead of the base index
    new_commits: int | None = None  # parts committed by the killed run (workers=1: deterministic)

    @property
    def id(self) -> str:
        return f"{self.point}:{self.nth}-w{self.workers}{'-fresh' if self.fresh else ''}"


# Fault points in the code: grep 'fault_point(' probe/. With --n 3,8 every part writes two n-gram
# files (mid_parquet_write/after_data_write hit twice per part) and one manifest (after_data_fsync).
FAULTS = [
    Fault("mid_parquet_write", 1, new_commits=0),
    Fault("mid_parquet_write", 2, new_commits=0),
    Fault("after_data_write", 1, new_commits=0),
    Fault("after_data_write", 2, new_commits=0),
    Fault("after_data_fsync", 1, new_commits=0),
    Fault("after_data_fsync", 2, new_commits=1),
    Fault("before_log_publish", 1, new_commits=0),
    Fault("before_log_publish", 2, new_commits=1),
    Fault("after_log_publish_before_dirfsync", 1, new_commits=1),
    Fault("after_log_publish_before_dirfsync", 2, new_commits=2),
    # on a fresh directory the first publish is the index header itself
    Fault("before_log_publish", 1, fresh=True),
    Fault("after_log_publish_before_dirfsync", 1, fresh=True),
    # coordinator killed while two pool workers run
    Fault("before_log_publish", 2, workers=2),
]
WORKER_FAULT = Fault("after_data_fsync", 1, workers=2)  # a pool worker dies, not the coordinator


def test_fault_points_cover_the_code() -> None:
    src = Path(build_mod.__file__).parents[1]
    named = set()
    for path in src.rglob("*.py"):
        for line in path.read_text().splitlines():
            if 'fault_point("' in line and "def fault_point" not in line:
                named.add(line.split('fault_point("', 1)[1].split('"', 1)[0])
    assert named == {f.point for f in FAULTS}


@pytest.fixture(scope="module")
def fault_runs(env: CrashEnv, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, str, Path]]:
    """Launch every fault case at once (independent indexes) and collect (returncode, stderr, index)."""
    root = tmp_path_factory.mktemp("faults")
    procs = {}
    for fault in [*FAULTS, WORKER_FAULT]:
        index = root / fault.id.replace(":", "_") / "idx"
        if fault.fresh:
            index.parent.mkdir(parents=True)
        else:
            shutil.copytree(env.base_index, index)
        procs[fault.id] = (popen_probe("index", "build", *env.shards, "--index", str(index), "--workers",
                                       str(fault.workers), *CLI_ARGS,
                                       env={"PROBE_FAULT": f"{fault.point}:{fault.nth}",
                                            "PROBE_TEST_MARK": _mark(fault)}), index)
    out = {}
    for fid, (proc, index) in procs.items():
        _stdout, stderr = proc.communicate(timeout=240)
        out[fid] = (proc.returncode, stderr, index)
    return out


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.id)
def test_sigkill_at_fault_point_then_resume(fault: Fault, env: CrashEnv, fault_runs) -> None:
    returncode, stderr, index = fault_runs[fault.id]
    assert returncode == -signal.SIGKILL, stderr
    if fault.fresh:
        # nothing was committed yet: the directory is "not an index" or "no snapshot", never corrupt
        code, report = verify_cli(index)
        assert code == 4 and ("not a probe index" in report["stderr"] or "no committed snapshot" in report["stderr"])
    else:
        code, report = verify_cli(index)
        assert code == 0 and report["ok"] and report["problems"] == [], report
        # durability: what the killed builder published survives; nothing half-done is visible
        if fault.new_commits is not None:
            assert committed_parts(index) == 1 + fault.new_commits
        crashed = index_tables(index)
        assert crashed.parts <= env.reference_tables.parts
    assert_converges(env, index)


def test_worker_killed_in_pool_then_resume(env: CrashEnv, fault_runs) -> None:
    """A pool worker SIGKILLed (e.g. by the OOM killer) fails the build; nothing partial is committed."""
    returncode, stderr, index = fault_runs[WORKER_FAULT.id]
    assert returncode == 70, stderr  # ExitCode.INTERNAL via WorkerDiedError: one clear message
    assert "a worker process died" in stderr and "Re-run the same command" in stderr
    assert stderr.count("worker process died") == 1
    code, report = verify_cli(index)
    assert code == 0 and report["ok"], report
    assert index_tables(index).parts <= env.reference_tables.parts
    assert_converges(env, index)


def test_orphan_workers_exit_when_coordinator_is_killed(fault_runs) -> None:
    """kill -9 of the coordinator must not leave pool workers running (they would hold memory forever)."""
    fault = next(f for f in FAULTS if f.workers == 2)
    assert fault_runs[fault.id][0] == -signal.SIGKILL
    mark = _mark(fault)
    deadline = time.monotonic() + 10
    while _marked_processes(mark) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _marked_processes(mark) == []


def _mark(fault: Fault) -> str:
    return f"crash-test-{os.getpid()}-{fault.id}"


def _marked_processes(mark: str) -> list[int]:
    """Live (non-zombie) processes whose environment carries ``PROBE_TEST_MARK=mark``."""
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


# --------------------------------------------------------------------------- random-time kills
@dataclass
class ManyParts:
    shards: list[str]
    reference: Path
    tables: IndexTables
    work_seconds: float  # an uninterrupted in-process build (no interpreter startup)


@pytest.fixture(scope="module")
def many_parts(tmp_path_factory: pytest.TempPathFactory) -> ManyParts:
    """16 small parts (4 shards x 4 row groups)."""
    root = tmp_path_factory.mktemp("many")
    paths = [str(write_parquet(root / f"s{i}.parquet", make_docs(200, seed=100 + i, max_words=40),
                               row_group_size=50)) for i in range(4)]
    reference = root / "reference"
    t0 = time.monotonic()
    build_index(paths, reference, SPEC, CONFIG)
    work = time.monotonic() - t0
    return ManyParts(paths, reference, index_tables(reference), work)


def _segment_dirs(index: Path) -> set[str]:
    seg = index / fmt.SEGMENT_DIR
    return {p.name for p in seg.iterdir()} if seg.is_dir() else set()


def _wait_for_work(proc, index: Path, segments_before: set[str], timeout: float = 60) -> None:
    """Until the builder started its first new segment (planning done, a part in progress) or exited."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and _segment_dirs(index) <= segments_before and time.monotonic() < deadline:
        time.sleep(0.005)


def test_random_time_kills_then_resume(many_parts: ManyParts, tmp_path: Path) -> None:
    """10 SIGKILLs at random times (seeded), each followed by a resume; finally EQ and verify --deep.

    Every builder is a real process running ``probe index build`` (``probe.cli.main``), started
    warm (imports and numba cache loaded beforehand, see helpers.warm_probe) so that the kill
    time, U(0.05, 1.0) x the time the remaining parts take uninterrupted, lands in the work and
    not in the interpreter start: the clock starts when the builder creates its first new
    segment. When a run finishes before its kill, the next iteration starts a fresh index, so
    later kills still hit a build in progress.
    """
    rng = random.Random(SEED)
    print(f"random kill seed: {SEED}")
    plans = [(2 if i % 4 == 3 else 1, rng.uniform(0.05, 1.0)) for i in range(10)]
    # all builders warm up at once (2 cores); each then waits for "go" with its own --index decided later,
    # so pass a placeholder directory and symlink it to the current index just before "go"
    procs = []
    for i, (workers, _delay) in enumerate(plans):
        link = tmp_path / f"run{i}"
        procs.append((link, warm_probe("index", "build", *many_parts.shards, "--index", str(link),
                                       "--workers", str(workers), *CLI_ARGS)))
    try:
        outcomes = _run_kills(plans, procs, many_parts, tmp_path)
    finally:
        for _link, proc in procs:  # a failed assertion must not leave warm builders waiting
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=60)
    print(f"work {many_parts.work_seconds:.2f}s; kills (delay s, workers, returncode, parts before, "
          "parts after, index):", outcomes)
    assert sum(1 for o in outcomes if o[2] == -signal.SIGKILL) >= 5
    for index in sorted(tmp_path.glob("idx*")):
        build_index(many_parts.shards, index, SPEC, CONFIG)
        assert index_tables(index) == many_parts.tables
        code, report = verify_cli(index, deep=True)
        assert code == 0 and report["ok"], report


def _run_kills(plans, procs, many_parts: ManyParts, tmp_path: Path) -> list[tuple]:
    for _link, proc in procs:
        wait_ready(proc)
    generation = 0
    index = tmp_path / f"idx{generation}"
    outcomes = []
    for (workers, fraction), (link, proc) in zip(plans, procs, strict=True):
        index.mkdir(exist_ok=True)
        link.symlink_to(index, target_is_directory=True)
        before = committed_parts(index) if (index / "snapshots").exists() else 0
        # U(0.05, 1.0) of the time the remaining parts take (measured uninterrupted, in-process)
        delay = fraction * many_parts.work_seconds * (16 - before) / 16
        segments_before = _segment_dirs(index)
        start_warm(proc)
        _wait_for_work(proc, index, segments_before)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        _out, err = proc.communicate(timeout=240)
        after = committed_parts(index) if (index / "snapshots").exists() else 0
        outcomes.append((round(delay, 2), workers, proc.returncode, before, after, index.name))
        assert proc.returncode in (0, -signal.SIGKILL), err
        assert after >= before  # committed parts never go backwards
        code, report = verify_cli(index)
        if code != 0:  # only before the first commit: no header or no snapshot yet
            assert "not a probe index" in report["stderr"] or "no committed snapshot" in report["stderr"], report
        else:
            assert report["ok"], report
        if after == 16:
            generation += 1
            index = tmp_path / f"idx{generation}"
    return outcomes


# --------------------------------------------------------------------------- concurrency
def test_two_concurrent_builders_never_corrupt(env: CrashEnv, tmp_path: Path) -> None:
    """Overlapping shard sets at the same time: one is refused ("locked", exit 4) or they serialize."""
    index = tmp_path / "idx"
    shutil.copytree(env.base_index, index)
    shards = env.shards
    a = [s for s in shards if "p1" in s or "p2" in s or "j1" in s]
    b = [s for s in shards if "p2" in s or "j1" in s or "j2" in s]
    procs = [popen_probe("index", "build", *group, "--index", str(index), "--workers", "1", *CLI_ARGS)
             for group in (a, b)]
    results = [(p.wait(timeout=240), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    for code, err in results:
        assert code in (0, 4), err
        if code == 4:
            assert "locked by a running writer" in err
    code, report = verify_cli(index, deep=True)
    assert code == 0 and report["ok"], report
    snap_numbers = fmt.list_snapshot_numbers(index)
    assert snap_numbers == list(range(1, len(snap_numbers) + 1))  # contiguous, nothing overwritten
    # every part is committed at most once
    snap = fmt.latest_snapshot(index)
    seg_parts = [(p["shard"], p["part"]) for s in snap.segments
                 for p in json.loads((index / s["manifest"]).read_text())["parts"]]
    assert len(seg_parts) == len(set(seg_parts)) == len(snap.committed_parts())
    assert_converges(env, index)


def test_live_lock_refuses_second_writer(env: CrashEnv, tmp_path: Path) -> None:
    index = tmp_path / "idx"
    shutil.copytree(env.base_index, index)
    with fmt.WriterLock(index):
        res = CliRunner().invoke(main, ["index", "build", *env.shards, "--index", str(index), "--workers", "1",
                                        *CLI_ARGS])
        assert res.exit_code == 4 and f"(pid {os.getpid()})" in res.stderr
        with pytest.raises(IndexLockedError):
            build_index(env.shards, index, SPEC, CONFIG)
        for cmd in (["index", "compact", str(index)], ["index", "gc", str(index)]):
            assert CliRunner().invoke(main, cmd).exit_code == 4
        # readers take no lock
        assert CliRunner().invoke(main, ["index", "info", str(index), "--top", "0"]).exit_code == 0
        assert verify_cli(index)[0] == 0
    assert committed_parts(index) == 1
    assert_converges(env, index)


def test_stale_lock_file_does_not_block(env: CrashEnv, tmp_path: Path) -> None:
    """A LOCK left by a kill -9'd builder (dead pid inside) is not a lock: flock dies with its holder."""
    index = tmp_path / "idx"
    shutil.copytree(env.base_index, index)
    (index / "LOCK").write_text("999999")
    assert_converges(env, index)
    assert (index / "LOCK").read_text() == str(os.getpid())  # the new holder wrote its pid


def test_commit_is_put_if_absent_and_idempotent(env: CrashEnv, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Two writers racing for snapshot N+1: the loser rebases to N+2; a re-executed task is a no-op."""
    index = tmp_path / "idx"
    shutil.copytree(env.base_index, index)
    latest = fmt.latest_snapshot(index)
    tasks, _skipped, _dups = build_mod.plan_tasks(index, SPEC, build_mod.discover_shards(env.shards), CONFIG,
                                                  latest)
    t1, t2 = tasks[0], tasks[1]
    r1, r2 = build_mod.run_task(t1), build_mod.run_task(t2)
    assert build_mod._commit_part(index, SPEC, t1, r1) == latest.number + 1
    # t2's writer read the old snapshot N before t1 committed: its first publish collides
    real_latest = fmt.latest_snapshot
    calls = []

    def stale_then_real(root):
        calls.append(1)
        return latest if len(calls) == 1 else real_latest(root)

    monkeypatch.setattr(fmt, "latest_snapshot", stale_then_real)
    assert not fmt.commit_snapshot(index, latest.next("build"))  # the name N+1 is taken: put-if-absent
    assert build_mod._commit_part(index, SPEC, t2, r2) == latest.number + 2
    monkeypatch.setattr(fmt, "latest_snapshot", real_latest)
    snap = fmt.latest_snapshot(index)
    assert {t1.key, t2.key} <= snap.committed_parts()
    # a zombie re-run of t1 (Ray lineage re-execution, speculation) commits nothing
    r1_again = build_mod.run_task(t1)
    assert build_mod._commit_part(index, SPEC, t1, r1_again) is None
    assert fmt.latest_snapshot(index).number == snap.number
    assert_converges(env, index)
