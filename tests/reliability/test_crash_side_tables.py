"""kill -9 during a side-table build (``index build --measures``, ``index add``) resumes and converges.

Each case is a real ``python -m probe`` subprocess SIGKILLed at a named fault point
(``PROBE_FAULT=point:nth``, see probe.index.format.fault_point). After the kill: the index
verifies (orphans allowed), re-running the same command converges to side-table files
identical (content hash per part and file) to an uninterrupted build's, ``gc`` removes the
orphans and ``verify --deep`` passes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from helpers import make_docs, popen_probe, run_probe, write_jsonl, write_parquet
from probe.config import BuildConfig, TextSpec
from probe.index import format as fmt
from probe.index.build import add_side_tables, build_index
from probe.index.maintenance import gc_index, verify_index
from probe.index.reader import open_index
from probe.index.side_tables import SideTableRequest, open_side_table

pytest.importorskip("rensa")
pytest.importorskip("scipy")
pytestmark = pytest.mark.crash

SPEC = TextSpec(ns=(3, 8))
CONFIG = BuildConfig(workers=1, row_groups_per_part=1)
BUILD_ARGS = ["--n", "3,8", "--row-groups-per-part", "1", "--workers", "1", "--silent"]
MEASURES = ["--measures", "minhash,distribution"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("crash_side")
    c = root / "corpus"
    shards = [str(write_parquet(c / "p1.parquet", make_docs(60, seed=21, max_words=300), row_group_size=20)),
              str(write_jsonl(c / "j1.jsonl", make_docs(20, seed=22, max_words=300)))]
    plain = root / "plain"  # n-gram index only: the template each `index add` case starts from
    build_index(shards, plain, SPEC, CONFIG)
    reference = root / "reference"
    shutil.copytree(plain, reference)
    add_side_tables(reference, [SideTableRequest("minhash"), SideTableRequest("distribution")], CONFIG)
    return {"shards": shards, "plain": plain, "reference": _digests(reference)}


def _digests(index: Path) -> dict[tuple[str, str, int, str], str]:
    reader = open_index(index)
    return {(name, p.fingerprint, p.part, stem): entry["xxh3_128"]
            for name in reader.snapshot.side_tables for p in open_side_table(reader, name).parts
            for stem, entry in p.manifest["files"].items()}


def _killed(args: list[str], fault: str) -> None:
    proc = popen_probe(*args, env={"PROBE_FAULT": fault})
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode == -9, f"expected a SIGKILL at {fault}, got {proc.returncode}: {err}"


def _converges(index: Path, args: list[str], expected: dict) -> None:
    if fmt.latest_snapshot(index) is not None:
        report = verify_index(index)
        assert report["ok"], report["problems"]  # a killed writer leaves only unreferenced files
    done = run_probe(*args)
    assert done.returncode == 0, done.stderr
    assert _digests(index) == expected
    gc_index(index, older_than_seconds=0)
    report = verify_index(index, deep=True)
    assert report["ok"] and not report["orphans"], report


@pytest.mark.parametrize("fault", ["after_data_fsync:1", "after_data_fsync:3", "before_log_publish:2",
                                   "after_log_publish_before_dirfsync:3"])
def test_killed_index_add_resumes_and_converges(world: dict, tmp_path: Path, fault: str) -> None:
    index = tmp_path / "idx"
    shutil.copytree(world["plain"], index)
    args = ["index", "add", str(index), *MEASURES, "--workers", "1", "--row-groups-per-part", "1", "--silent"]
    _killed(args, fault)
    snap = fmt.latest_snapshot(index)
    committed = sum(len(parts) for t in snap.side_tables.values() for parts in t["parts"].values())
    assert committed < len(world["reference"]) // 2  # the kill stopped it before the end
    _converges(index, args, world["reference"])


@pytest.mark.parametrize("fault", ["after_data_fsync:2", "after_data_fsync:5", "before_log_publish:2"])
def test_killed_build_with_measures_resumes_and_converges(world: dict, tmp_path: Path, fault: str) -> None:
    index = tmp_path / "idx"
    args = ["index", "build", *world["shards"], "--index", str(index), *BUILD_ARGS, *MEASURES]
    _killed(args, fault)
    _converges(index, args, world["reference"])
