"""Scans while a builder commits (RELIABILITY §6.2 K5): consistent snapshot, recorded, never blocked.

A real builder commits part after part while three ``probe scan`` processes run against the
same index. Each scan must succeed, record the snapshot V it pinned, V must be a snapshot the
builder had committed, and its result must equal a re-scan of the index pinned at V (a copy
with the later snapshots removed): it read V and nothing newer or partial.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from helpers import make_docs, popen_probe, run_probe, write_jsonl, write_parquet
from probe.config import BuildConfig, TextSpec
from probe.index import format as fmt
from probe.index.build import build_index

pytestmark = pytest.mark.crash

COLUMNS = ["id", "verdict", "coverage", "contaminated_default", "whole_token_coverage_3", "whole_matched_8"]


def _table(out: Path) -> list[dict]:
    return pq.read_table(out / "examples.parquet", columns=COLUMNS).to_pylist()


def test_scans_during_a_build_read_one_committed_snapshot(tmp_path: Path) -> None:
    texts = [make_docs(600, seed=800 + i, max_words=60) for i in range(12)]
    shards = [str(write_parquet(tmp_path / "corpus" / f"s{i}.parquet", t, row_group_size=75))
              for i, t in enumerate(texts)]
    # quotes from every shard: the scan result changes with every few committed parts
    dataset = write_jsonl(tmp_path / "d.jsonl", [t for ts in texts for t in ts[::50] if len(t.split()) > 15])
    index = tmp_path / "idx"
    build_index(shards[:1], index, TextSpec(ns=(3, 8)), BuildConfig(workers=1, row_groups_per_part=1))
    builder = popen_probe("index", "build", *shards, "--index", str(index), "--n", "3,8",
                          "--row-groups-per-part", "1", "--workers", "1", "--silent")
    scans = []
    try:
        deadline = time.monotonic() + 120
        while len(fmt.list_snapshot_numbers(index)) < 10 and time.monotonic() < deadline:
            time.sleep(0.01)  # the builder is committing
        for i in range(3):
            out = tmp_path / f"scan{i}"
            scans.append((out, popen_probe("scan", str(dataset), "--index", str(index), "--out", str(out),
                                           "--silent")))
            time.sleep(0.4)
        results = [(out, proc.wait(timeout=180), proc.stderr.read()) for out, proc in scans]
        build_code = builder.wait(timeout=240)
    finally:
        for proc in [builder, *(p for _o, p in scans)]:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
    assert build_code == 0, builder.stderr
    final = fmt.list_snapshot_numbers(index)
    pinned_versions = []
    for out, code, err in results:
        assert code == 0, err
        v = json.loads((out / "summary.json").read_text())["index"]["snapshot"]
        assert v in final
        pinned_versions.append(v)
        pinned = tmp_path / f"pinned-{out.name}"
        shutil.copytree(index, pinned)
        for n in final:
            if n > v:
                (pinned / fmt.SNAPSHOT_DIR / fmt.snapshot_name(n)).unlink()
        again = tmp_path / f"again-{out.name}"
        res = run_probe("scan", str(dataset), "--index", str(pinned), "--out", str(again), "--silent")
        assert res.returncode == 0, res.stderr
        assert _table(again) == _table(out)
    print("scans pinned snapshots", pinned_versions, "of", final[-1])
    assert any(8 < v < final[-1] for v in pinned_versions)  # at least one scan read a mid-build snapshot
