"""Measure side tables in the index: built in the build pass or added later, committed per part, verified.

The promises are the n-gram segments' (docs/index-format.md §side tables): one immutable
directory per (part, side table), referenced by a snapshot; a committed part is never rebuilt;
``index add`` re-reads committed shards and yields the same files a same-pass build writes;
a damaged or missing side table is named, never read as zeros.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from helpers import make_docs, write_jsonl, write_parquet
from probe.cli import main
from probe.config import BuildConfig, TextSpec
from probe.errors import ConfigError, IndexFormatError, InputError
from probe.index import format as fmt
from probe.index.build import add_side_tables, build_index
from probe.index.maintenance import compact_index, gc_index, verify_index
from probe.index.reader import open_index
from probe.index.side_tables import SideTableRequest, open_side_table, side_table_unavailable
from probe.index.stats import index_info
from probe.scan import ScanConfig, scan_dataset

pytest.importorskip("rensa")
pytest.importorskip("scipy")

SPEC = TextSpec(ns=(3, 8))
CONFIG = BuildConfig(workers=1, row_groups_per_part=1)
BOTH = [SideTableRequest("minhash"), SideTableRequest("distribution")]


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    c = tmp_path_factory.mktemp("side_corpus")
    return [str(write_parquet(c / "p1.parquet", make_docs(60, seed=1, max_words=400), row_group_size=20)),
            str(write_jsonl(c / "j1.jsonl", make_docs(25, seed=2, max_words=300)))]


@pytest.fixture(scope="module")
def same_pass(shards: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    index = tmp_path_factory.mktemp("same_pass") / "idx"
    result = build_index(shards, index, SPEC, CONFIG, side_tables=BOTH)
    assert result.side_parts_committed == 2 * 4  # 3 Parquet parts + 1 JSONL part, two side tables each
    return index


def _file_digests(index: Path) -> dict[tuple[str, str, str, str], str]:
    """(table, shard fingerprint, part, file stem) -> content hash, from the latest snapshot."""
    reader = open_index(index)
    out = {}
    for name in reader.snapshot.side_tables:
        for part in open_side_table(reader, name).parts:
            for stem, entry in part.manifest["files"].items():
                out[(name, part.fingerprint, str(part.part), stem)] = entry["xxh3_128"]
    return out


def test_same_pass_build_covers_every_part_and_verifies_deep(same_pass: Path) -> None:
    reader = open_index(same_pass)
    for name in ("minhash", "distribution"):
        assert side_table_unavailable(reader, name) is None
    report = verify_index(same_pass, deep=True)
    assert report["ok"], report["problems"]
    assert report["files_checked"] > 8 * 2  # the n-gram files plus 3 + 1 files per side part


def test_info_lists_rows_bytes_and_build_time_per_side_table(same_pass: Path) -> None:
    info = {t["name"]: t for t in index_info(same_pass, top_k=0)["side_tables"]}
    assert set(info) == {"minhash", "distribution"}
    mh = info["minhash"]
    assert mh["complete"] and mh["parts"] == mh["parts_total"] == 4
    assert mh["rows"]["chunks"] == mh["rows"]["shingles"] > 0
    assert mh["rows"]["lsh"] == mh["rows"]["chunks"] * mh["config"]["num_perm"]  # one key per band, band_rows 1
    assert mh["bytes"] > 0 and mh["bytes_per_token"] > 0 and mh["build_seconds"] > 0
    assert info["distribution"]["rows"] == {"counts": 4 * 10_000}


def test_add_to_an_existing_index_writes_the_files_a_same_pass_build_writes(shards: list[str], same_pass: Path,
                                                                           tmp_path: Path) -> None:
    index = tmp_path / "idx"
    build_index(shards, index, SPEC, CONFIG)
    assert not fmt.latest_snapshot(index).side_tables
    result = add_side_tables(index, BOTH, CONFIG)
    assert result.side_parts_committed == 8 and result.parts_committed == 0 and result.docs == 0
    assert _file_digests(index) == _file_digests(same_pass)  # same chunks, ordinals, rows, counts
    snapshot = fmt.latest_snapshot(index).number
    again = add_side_tables(index, BOTH, CONFIG)  # a committed part is never rebuilt
    assert again.side_parts_committed == 0 and fmt.latest_snapshot(index).number == snapshot


def test_an_index_without_side_tables_keeps_the_old_snapshot_bytes(shards: list[str], tmp_path: Path) -> None:
    build_index(shards[1:], tmp_path / "idx", SPEC, CONFIG)
    raw = json.loads((tmp_path / "idx" / "snapshots" / fmt.snapshot_name(1)).read_bytes())
    assert "side_tables" not in raw


def test_recorded_build_options_are_reused_and_other_ones_refused(shards: list[str], tmp_path: Path) -> None:
    index = tmp_path / "idx"
    build_index(shards[1:], index, SPEC, CONFIG, side_tables=[SideTableRequest("minhash", {"chunk_tokens": 128})])
    with pytest.raises(ConfigError, match="chunk_tokens: index 128 != requested 256"):
        build_index(shards[:1], index, SPEC, CONFIG, side_tables=[SideTableRequest("minhash", {"num_perm": 64})])
    build_index(shards[:1], index, SPEC, CONFIG, side_tables=[SideTableRequest("minhash")])  # no options: reuse
    assert open_side_table(open_index(index), "minhash").config["chunk_tokens"] == 128
    with pytest.raises(ConfigError, match="unknown minhash option"):
        build_index(shards, index, SPEC, CONFIG, side_tables=[SideTableRequest("minhash", {"chunk": 1})])
    with pytest.raises(ConfigError, match="no side table named 'nope'"):
        build_index(shards, index, SPEC, CONFIG, side_tables=[SideTableRequest("nope")])


def test_new_shards_without_measures_make_the_side_table_incomplete_until_added(shards: list[str],
                                                                                tmp_path: Path) -> None:
    index = tmp_path / "idx"
    build_index(shards[:1], index, SPEC, CONFIG, side_tables=[SideTableRequest("minhash")])
    build_index(shards[1:], index, SPEC, CONFIG)  # the JSONL shard gets no side table
    summary = scan_dataset([{"instruction": "alpha beta gamma delta epsilon zeta eta theta", "output": "iota kappa"}], index,
                           config=ScanConfig(measures=("minhash",))).summary.to_dict()
    assert summary["measures"]["minhash"]["available"] is False
    assert "covers 3 of 4 shard parts" in summary["measures"]["minhash"]["reason"]
    assert "j1.jsonl" in summary["measures"]["minhash"]["reason"]
    add_side_tables(index, [SideTableRequest("minhash")], CONFIG)
    assert side_table_unavailable(open_index(index), "minhash") is None


def test_add_refuses_a_shard_that_reads_back_differently(shards: list[str], tmp_path: Path) -> None:
    corpus = tmp_path / "c.jsonl"
    shutil.copy(shards[1], corpus)
    index = tmp_path / "idx"
    build_index([str(corpus)], index, SPEC, CONFIG)
    with pytest.raises(InputError, match="read it with the text column"):
        add_side_tables(index, [SideTableRequest("distribution")],
                        BuildConfig(workers=1, row_groups_per_part=1, text_field="meta", skip_bad_records=True))
    assert not fmt.latest_snapshot(index).side_tables  # nothing committed
    assert not list((index / "sidetables").rglob("*.parquet"))  # and nothing left behind


def test_compaction_keeps_side_tables_and_gc_keeps_their_files(same_pass: Path, tmp_path: Path) -> None:
    index = tmp_path / "idx"
    shutil.copytree(same_pass, index)
    before = _file_digests(index)
    compact_index(index)
    gc_index(index, older_than_seconds=0)
    assert _file_digests(index) == before
    assert verify_index(index, deep=True)["ok"]


def test_gc_removes_unreferenced_side_table_directories(same_pass: Path, tmp_path: Path) -> None:
    index = tmp_path / "idx"
    shutil.copytree(same_pass, index)
    stray = index / "sidetables" / "minhash" / ("0" * 32)
    stray.mkdir()
    (stray / "chunks.parquet").write_bytes(b"left by a killed build")
    assert f"sidetables/minhash/{'0' * 32}" in verify_index(index)["orphans"]
    report = gc_index(index, older_than_seconds=0)
    assert f"sidetables/minhash/{'0' * 32}" in report["removed"] and not stray.exists()
    assert verify_index(index, deep=True)["ok"]


def _side_file(index: Path, name: str, stem: str) -> Path:
    part = open_side_table(open_index(index), name).parts[0]
    return index / part.manifest["files"][stem]["path"]


def test_a_damaged_side_table_file_is_named_by_verify_and_by_the_scan(same_pass: Path, tmp_path: Path) -> None:
    index = tmp_path / "idx"
    shutil.copytree(same_pass, index)
    path = _side_file(index, "minhash", "lsh")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    problems = verify_index(index, deep=True)["problems"]
    assert any(str(path) in p and "content hash mismatch" in p for p in problems)
    with pytest.raises(IndexFormatError, match=str(path)):
        scan_dataset([{"instruction": "alpha beta gamma delta epsilon zeta eta theta", "output": "iota kappa"}], index,
                     config=ScanConfig(measures=("minhash",)))


def test_a_truncated_side_table_file_is_named(same_pass: Path, tmp_path: Path) -> None:
    index = tmp_path / "idx"
    shutil.copytree(same_pass, index)
    path = _side_file(index, "distribution", "counts")
    path.write_bytes(path.read_bytes()[:100])
    assert any(str(path) in p and "truncated" in p for p in verify_index(index)["problems"])
    with pytest.raises(IndexFormatError, match="truncated"):
        scan_dataset([{"instruction": "alpha beta gamma delta", "output": "iota kappa"}], index, config=ScanConfig(measures=("distribution",)))


def test_a_missing_side_table_manifest_makes_the_measure_unavailable_naming_it(same_pass: Path,
                                                                               tmp_path: Path) -> None:
    index = tmp_path / "idx"
    shutil.copytree(same_pass, index)
    part = open_side_table(open_index(index), "distribution").parts[0]
    manifest = index / part.record["manifest"]
    manifest.unlink()
    summary = scan_dataset([{"instruction": "alpha beta gamma delta epsilon", "output": "iota kappa"}], index,
                           config=ScanConfig(measures=("distribution",))).summary.to_dict()
    assert summary["measures"]["distribution"] == {"available": False,
                                                   "reason": f"side table file {manifest} is missing (referenced "
                                                             f"by snapshot {part_snapshot(index)})"}
    assert any(str(manifest) in p for p in verify_index(index)["problems"])


def part_snapshot(index: Path) -> int:
    return fmt.latest_snapshot(index).number


def test_cli_build_with_measures_add_and_info(shards: list[str], tmp_path: Path) -> None:
    runner = CliRunner()
    index = tmp_path / "idx"
    out = runner.invoke(main, ["index", "build", shards[1], "--index", str(index), "--n", "3,8", "--silent",
                               "--measures", "distribution", "--measure-option", "distribution.buckets=500"])
    assert out.exit_code == 0, out.output
    assert "side table distribution: 1 part(s), 500 rows" in out.output
    out = runner.invoke(main, ["index", "add", str(index), "--measures", "minhash", "--silent", "--workers", "1",
                               "--format", "json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["side_parts_committed"] == 1
    out = runner.invoke(main, ["index", "info", str(index), "--top", "0"])
    assert out.exit_code == 0, out.output
    assert "side table distribution: 1/1 parts, counts 500 rows" in out.output
    assert "side table minhash: 1/1 parts, chunks" in out.output


@pytest.mark.parametrize(("args", "message"), [
    (["--measure-option", "minhash.num_perm=32"], "--measures"),
    (["--measures", "minhash", "--measure-option", "distribution.buckets=10"], "which --measures does not name"),
    (["--measures", "minhash", "--measure-option", "minhash.num_perm=x"], "non-negative integer"),
])
def test_cli_add_usage_errors(same_pass: Path, args: list[str], message: str) -> None:
    out = CliRunner().invoke(main, ["index", "add", str(same_pass), *args])
    assert out.exit_code == 2 and message in out.output, out.output


def test_documented_side_table_examples_match_real_files(same_pass: Path) -> None:
    import re

    from helpers import REPO

    doc = (REPO / "docs" / "index-format.md").read_text()
    entry, manifest = (json.loads(b) for b in re.findall(r"```jsonc\n(.*?)```", doc, flags=re.S))
    real = fmt.latest_snapshot(same_pass).side_tables["minhash"]
    assert set(entry) == set(real) and entry["config"] == real["config"]  # the defaults as documented
    real_part = next(iter(next(iter(real["parts"].values())).values()))
    assert set(next(iter(next(iter(entry["parts"].values())).values()))) == set(real_part)
    real_manifest = json.loads((same_pass / real_part["manifest"]).read_text())
    assert set(manifest) == set(real_manifest) and set(manifest["files"]) == set(real_manifest["files"])
    chunks = pq.read_schema(same_pass / real_manifest["files"]["chunks"]["path"]).names
    section = doc[doc.index("### 14.1"):doc.index("### 14.2")]
    assert all(f"`{c}`" in section for c in chunks)
