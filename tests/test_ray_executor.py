"""`probe index build --executor ray`: same index as the local pool, same errors, on real text.

Each CLI call starts (and stops) a local Ray instance with 2 CPUs, as a user without a
cluster would. Skips cleanly where Ray is not installed or cannot start here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import index_tables, run_probe
from probe.demo.corpus import build_demo_corpus

pytest.importorskip("ray")

ARGS = ("--silent", "--row-groups-per-part", "1")


@pytest.fixture(scope="module")
def stdlib_shards(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Real prose (the installed standard library's docstrings), in 3 Parquet shards."""
    out = tmp_path_factory.mktemp("ray-corpus")
    return [str(p) for p in build_demo_corpus(out, max_docs=3000, docs_per_shard=1000)]


def build_with_ray(shards: list[str], index: Path, *extra: str):
    res = run_probe("index", "build", *shards, "--index", str(index), "--executor", "ray", "--workers", "2",
                    *ARGS, *extra, timeout=300)
    if res.returncode == 2 and "cannot start or reach Ray" in res.stderr:
        pytest.skip(f"Ray cannot start on this machine: {res.stderr.strip()[-300:]}")
    return res


def test_ray_build_equals_local_build(stdlib_shards: list[str], tmp_path: Path) -> None:
    local = run_probe("index", "build", *stdlib_shards, "--index", str(tmp_path / "local"), "--workers", "2", *ARGS)
    assert local.returncode == 0, local.stderr
    res = build_with_ray(stdlib_shards, tmp_path / "ray")
    assert res.returncode == 0, res.stderr
    ray_tables = index_tables(tmp_path / "ray")
    assert ray_tables == index_tables(tmp_path / "local")
    assert len(ray_tables.parts) == 3 and all(docs > 0 for _fp, _part, docs, _tok, _skip in ray_tables.parts)
    # resumable like any build: a second run has nothing left to do
    again = build_with_ray(stdlib_shards, tmp_path / "ray", "--format", "json")
    assert again.returncode == 0, again.stderr
    assert '"parts_committed": 0' in again.stdout and '"parts_already_indexed": 3' in again.stdout


def test_ray_build_bad_shard_names_file_and_line_and_keeps_good_parts(stdlib_shards: list[str],
                                                                       tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a fine first document with enough words"}\n{"text": "broken\n', encoding="utf-8")
    res = build_with_ray([stdlib_shards[0], str(bad)], tmp_path / "idx")
    assert res.returncode == 3, res.stderr
    assert "bad.jsonl" in res.stderr and "line 2" in res.stderr
    tables = index_tables(tmp_path / "idx")
    assert len(tables.parts) == 1  # the good shard was committed; the bad one was not


def test_ray_address_without_ray_executor_is_a_usage_error(tmp_path: Path) -> None:
    res = run_probe("index", "build", str(tmp_path / "x.jsonl"), "--index", str(tmp_path / "idx"),
                    "--ray-address", "auto")
    assert res.returncode == 2 and "--executor ray" in res.stderr


def test_segment_not_visible_from_the_coordinator_is_refused(stdlib_shards: list[str], tmp_path: Path) -> None:
    """A worker on a node without the shared index dir: its segment must never be committed."""
    from probe.errors import ConfigError
    from probe.index.ray_executor import check_segment_visible

    res = run_probe("index", "build", stdlib_shards[0], "--index", str(tmp_path / "idx"), "--workers", "1", *ARGS)
    assert res.returncode == 0, res.stderr
    snap = sorted((tmp_path / "idx" / "snapshots").glob("*.json"))[-1]
    seg = json.loads(snap.read_text())["segments"][0]
    check_segment_visible(tmp_path / "idx", {"segment": seg})  # visible: no error
    manifest = json.loads((tmp_path / "idx" / seg["manifest"]).read_text())
    (tmp_path / "idx" / manifest["files"][0]["path"]).unlink()
    with pytest.raises(ConfigError, match="shared|same path"):
        check_segment_visible(tmp_path / "idx", {"segment": seg})
    with pytest.raises(ConfigError, match="not visible"):
        check_segment_visible(tmp_path / "elsewhere", {"segment": seg})
