"""Soak: build and scan in a loop with random SIGKILLs for a bounded time (RELIABILITY §6.1 C2, §6.2 K5, §6.9 E2).

For ``PROBE_SOAK_SECONDS`` (default 90 s) a seeded loop starts real ``python -m probe``
processes and SIGKILLs them at random times:

* ``probe index build`` (1 or 2 workers) at U(0.1, 1.1) x the time an uninterrupted CLI
  build takes, after spawn: before, during or after the first commits. After each kill ``probe index verify`` passes (orphans allowed)
  and committed parts never go backwards. When a build runs to completion, the next
  iteration starts a fresh index, so later kills still hit builds in progress.
* ``probe scan`` against whatever snapshot the index has, at U(0.05, 1.5) x an uninterrupted
  scan's time (some finish). After each kill, the report files at their final names are absent or complete (E2), never partial. Scans that
  finish record their pinned snapshot V, which must be a committed snapshot (K5).

At the end every index a kill touched is resumed (a final uninterrupted build), passes
``probe index verify --deep``, and is EQ to a clean build; a scan of it equals a scan of
the clean build; and each completed mid-build scan equals a re-scan pinned at its V.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from helpers import index_tables, make_docs, probe_env, run_probe, write_jsonl, write_parquet
from probe.config import BuildConfig, TextSpec
from probe.index import format as fmt
from probe.index.build import build_index
from probe.index.maintenance import verify_index

pytestmark = [pytest.mark.slow, pytest.mark.crash]

SPEC = TextSpec(ns=(3, 8))
CONFIG = BuildConfig(workers=1, row_groups_per_part=1)
CLI_ARGS = ["--n", "3,8", "--row-groups-per-part", "1", "--silent"]
SEED = int(os.environ.get("PROBE_SOAK_SEED", "20261123"))
SECONDS = float(os.environ.get("PROBE_SOAK_SECONDS", "90"))
VERDICT_COLUMNS = ["id", "verdict", "coverage", "assessable", "contaminated_default", "whole_token_coverage_3",
                   "whole_matched_8", "whole_longest_match_tokens"]


def _popen(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "probe", *args], env=probe_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def _committed(index: Path) -> int:
    try:
        snap = fmt.latest_snapshot(index)
    except Exception:  # noqa: BLE001 - no header yet
        return 0
    return len(snap.committed_parts()) if snap else 0


def _scan_table(out: Path):
    return pq.read_table(out / "examples.parquet", columns=VERDICT_COLUMNS).to_pylist()


def _check_report_dir(out: Path) -> int:
    """Final names are complete or absent; returns the number of leftover temp files."""
    if (out / "summary.json").exists():
        summary = json.loads((out / "summary.json").read_text())
        assert summary["schema_version"] == 1
    if (out / "examples.parquet").exists():
        pq.read_table(out / "examples.parquet")
    return len([p for p in out.glob(".*tmp*")]) if out.exists() else 0


def test_soak_random_kills_build_and_scan(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    print(f"soak seed {SEED}, {SECONDS:.0f}s")
    corpus = tmp_path / "corpus"
    shard_texts = [make_docs(600, seed=500 + i, max_words=60) for i in range(8)]
    shards = [str(write_parquet(corpus / f"s{i}.parquet", texts, row_group_size=75))
              for i, texts in enumerate(shard_texts)]
    total_parts = 8 * 8
    quotes = [t for texts in shard_texts for t in texts[::60] if len(t.split()) > 20][:20]
    novel = make_docs(20, seed=999, min_words=15)
    dataset = write_jsonl(tmp_path / "dataset.jsonl", quotes + novel)
    reference = tmp_path / "reference"
    # time a real uninterrupted CLI build and scan: kill delays are fractions of these, so the kills land
    # before, during and (rarely) after the work on a fast or a loaded machine alike
    t0 = time.monotonic()
    res = run_probe("index", "build", *shards, "--index", str(reference), "--workers", "1", *CLI_ARGS)
    build_seconds = time.monotonic() - t0
    assert res.returncode == 0, res.stderr
    ref_tables = index_tables(reference)
    ref_scan = tmp_path / "ref-scan"
    t0 = time.monotonic()
    assert run_probe("scan", str(dataset), "--index", str(reference), "--out", str(ref_scan),
                     "--silent").returncode == 0
    scan_seconds = time.monotonic() - t0
    print(f"uninterrupted: build {build_seconds:.1f}s, scan {scan_seconds:.1f}s")

    generation = 0
    index = tmp_path / f"idx{generation}"
    build_kills = scan_kills = builds_done = 0
    killed: set[str] = set()  # indexes some SIGKILLed build wrote to
    scans_done: list[tuple[Path, int, list]] = []  # (index, pinned snapshot, result table)
    leftovers = 0
    log = []
    deadline = time.monotonic() + SECONDS
    i = 0
    while time.monotonic() < deadline:
        i += 1
        has_snapshot = bool(fmt.list_snapshot_numbers(index)) if (index / "snapshots").is_dir() else False
        if has_snapshot and rng.random() < 0.35:
            out = tmp_path / "scans" / f"s{rng.randrange(3)}"  # reused: a killed scan's temp files get cleaned
            proc = _popen("scan", str(dataset), "--index", str(index), "--out", str(out), "--silent")
            delay = rng.uniform(0.05, 1.5) * scan_seconds
            try:
                proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
            _, err = proc.communicate(timeout=120)
            log.append(("scan", round(delay, 2), proc.returncode))
            if proc.returncode == -signal.SIGKILL:
                scan_kills += 1
            else:
                assert proc.returncode == 0, err.decode()
                v = json.loads((out / "summary.json").read_text())["index"]["snapshot"]
                assert v in fmt.list_snapshot_numbers(index)
                scans_done.append((index, v, _scan_table(out)))
            leftovers = _check_report_dir(out)
            continue
        before = _committed(index)
        workers = rng.choice([1, 2])
        delay = rng.uniform(0.1, 1.1) * build_seconds
        proc = _popen("index", "build", *shards, "--index", str(index), "--workers", str(workers), *CLI_ARGS)
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=240)
        after = _committed(index)
        log.append(("build", workers, round(delay, 2), proc.returncode, before, after))
        assert proc.returncode in (0, -signal.SIGKILL), err.decode()
        assert after >= before
        if proc.returncode == -signal.SIGKILL:
            build_kills += 1
            killed.add(index.name)
        if (index / fmt.SPEC_FILE).exists() and fmt.list_snapshot_numbers(index):
            report = verify_index(index)
            assert report["ok"] and report["problems"] == [], report
        if after == total_parts:
            builds_done += 1
            generation += 1
            index = tmp_path / f"idx{generation}"
    print(f"iterations {i}: build kills {build_kills}, scan kills {scan_kills}, completed builds {builds_done}, "
          f"completed scans {len(scans_done)}, temp files in the last killed scan's directory {leftovers}")
    print("log:", log)
    assert build_kills >= max(3, SECONDS // 10) and build_kills + scan_kills >= max(4, SECONDS // 6)

    # a successful scan into each report directory removes the temp files of killed ones (R8)
    for out in sorted((tmp_path / "scans").glob("s*")):
        assert run_probe("scan", str(dataset), "--index", str(reference), "--out", str(out),
                         "--silent").returncode == 0
        assert _check_report_dir(out) == 0, sorted(p.name for p in out.iterdir())
    # every index converges: resume, verify --deep (the CLI), EQ with the clean build, same scan result
    indexes = sorted((p for p in tmp_path.glob("idx*") if p.name in killed), key=lambda p: int(p.name[3:]))
    print(f"{len(indexes)} index(es) touched by a kill, checked for EQ")
    for idx in indexes:
        build_index(shards, idx, SPEC, CONFIG)
        if idx == indexes[-1]:  # the CLI once; the same function in-process for the others
            res = run_probe("index", "verify", str(idx), "--deep", "--format", "json")
            assert res.returncode == 0 and json.loads(res.stdout)["ok"], res.stdout + res.stderr
        else:
            report = verify_index(idx, deep=True)
            assert report["ok"], report
        assert index_tables(idx) == ref_tables
    last = indexes[-1]
    out = tmp_path / "final-scan"
    assert run_probe("scan", str(dataset), "--index", str(last), "--out", str(out), "--silent").returncode == 0
    assert _scan_table(out) == _scan_table(ref_scan)
    # snapshot reads: a scan that ran mid-build equals a re-scan pinned at the same snapshot
    for k, (idx, v, table) in enumerate(rng.sample(scans_done, min(3, len(scans_done)))):
        pinned = tmp_path / f"pinned{k}-{v}-{idx.name}"
        shutil.copytree(idx, pinned)
        for n in fmt.list_snapshot_numbers(pinned):
            if n > v:
                (pinned / fmt.SNAPSHOT_DIR / fmt.snapshot_name(n)).unlink()
        again = tmp_path / f"rescan{k}-{v}-{idx.name}"
        assert run_probe("scan", str(dataset), "--index", str(pinned), "--out", str(again),
                         "--silent").returncode == 0
        assert _scan_table(again) == table
