"""verify/compact/gc return typed reports whose to_dict() is what `--format json` prints."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from click.testing import CliRunner

from probe.cli import main
from probe.config import BuildConfig, TextSpec
from probe.index.build import build_index
from probe.index.maintenance import compact_index, gc_index, verify_index
from probe.index.reports import CompactReport, GcReport, VerifyReport


def _index(tmp_path: Path) -> Path:
    for i in range(2):  # two shards: two segments to compact
        pq.write_table(pa.table({"text": [f"shard {i} holds the quick brown fox jumping over a lazy dog {i}"]}),
                       tmp_path / f"s{i}.parquet")
    idx = tmp_path / "idx"
    build_index([str(tmp_path / "s0.parquet"), str(tmp_path / "s1.parquet")], idx, TextSpec(ns=(3,)),
                BuildConfig(workers=1))
    return idx


def test_reports_are_typed_and_read_like_the_json_they_print(tmp_path: Path) -> None:
    idx = _index(tmp_path)
    verify = verify_index(idx, deep=True)
    assert isinstance(verify, VerifyReport) and verify.ok and verify["ok"] and verify.deep
    assert verify.files_checked > 0 and dict(verify) == verify.to_dict()
    compact = compact_index(idx)
    assert isinstance(compact, CompactReport) and (compact.segments_before, compact.segments_after) == (2, 1)
    gc = gc_index(idx, older_than_seconds=0)
    assert isinstance(gc, GcReport) and gc.removed and gc.bytes > 0 and not gc.dry_run
    for command, report in (["verify", "--deep"], verify_index(idx, deep=True)), (["gc", "--older-than", "0"],
                                                                                    gc_index(idx, 0, dry_run=True)):
        out = CliRunner().invoke(main, ["index", *command[:1], str(idx), *command[1:], "--format", "json"])
        assert out.exit_code == 0, out.output
        assert set(json.loads(out.stdout)) == set(report.to_dict())
