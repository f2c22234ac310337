"""Resource exhaustion (RELIABILITY §6.7 R4–R6, §6.4 I6) and shard-listing changes (§6.1 C10, §6.4 I10).

Limits are applied in the child with ``resource.setrlimit`` (``preexec_fn``): RLIMIT_AS for
memory, RLIMIT_NOFILE for open files. R1–R3, R7 and R8 are tested elsewhere (docs/guarantees.md).
"""

from __future__ import annotations

import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from helpers import index_tables, make_docs, probe_env, write_jsonl, write_parquet
from probe.cli import main
from probe.config import BuildConfig, TextSpec
from probe.index import format as fmt
from probe.index.build import build_index
from probe.index.maintenance import verify_index
from probe.text.tokenizers import Tokenizer

SPEC = TextSpec(ns=(3, 8))
CLI_ARGS = ["--n", "3,8", "--silent"]


def _limited(args: list[str], **limits: int) -> subprocess.CompletedProcess[str]:
    def apply() -> None:
        for name, value in limits.items():
            resource.setrlimit(getattr(resource, name), (value, value))

    return subprocess.run([sys.executable, "-m", "probe", *args], env=probe_env(), capture_output=True, text=True,
                          timeout=300, preexec_fn=apply)


# --------------------------------------------------------------------------- R4 linear-time tokenizing
PATHOLOGICAL = {
    "one-char": "a" * 10,
    "punct-space": ". " * 5,
    "combining": "e\u0301\u0302\u0303\u0304 " * 2,
    "digits-dots": "1.2.3.4.5.",
    "mixed-scripts": "aΩ東1_é ",
}


@pytest.mark.parametrize("name", list(PATHOLOGICAL))
def test_tokenizer_time_is_linear_on_pathological_input(name: str) -> None:
    unit = PATHOLOGICAL[name]
    small = unit * ((1 << 20) // len(unit))  # ~1 MB
    big = small * 4
    for view in ("surface", "pattern"):
        tok = Tokenizer(TextSpec(views=("surface", "pattern")))
        tok.tokenize([unit * 100], view)  # compile/warm
        t0 = time.perf_counter()
        tok.tokenize([small], view)
        t1 = time.perf_counter()
        tok.tokenize([big], view)
        t2 = time.perf_counter()
        assert t2 - t1 < 8 * (t1 - t0) + 0.5, (name, view, t1 - t0, t2 - t1)  # 4x the input, not 16x
        assert t2 - t1 < 10, (name, view)


# --------------------------------------------------------------------------- R5 many shards, few fds
def test_many_small_shards_with_64_file_descriptors(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    texts = make_docs(600, seed=61, max_words=20)
    for i in range(150):
        write_jsonl(corpus / f"shard-{i:04d}.jsonl", texts[2 * i:2 * i + 2])
    index = tmp_path / "idx"
    res = _limited(["index", "build", str(corpus), "--index", str(index), "--workers", "2", *CLI_ARGS],
                   RLIMIT_NOFILE=64)  # fewer fds than shards: a leak per shard fails
    assert res.returncode == 0, res.stderr[-3000:]
    reference = tmp_path / "reference"
    build_index([str(corpus)], reference, SPEC, BuildConfig(workers=1))
    assert index_tables(index) == index_tables(reference)
    assert len(fmt.latest_snapshot(index).shards) == 150


# --------------------------------------------------------------------------- R6 / I6 bounded memory
GIB = 1 << 30


def test_huge_line_is_refused_under_a_memory_limit(tmp_path: Path) -> None:
    """A 64 MiB line without a newline, 16 MiB record limit, 1.5 GiB address space: a clean error."""
    shard = tmp_path / "huge.jsonl"
    with open(shard, "wb") as f:
        f.write(b'{"text": "')
        chunk = b"word " * (1 << 16)
        for _ in range(64 * (1 << 20) // len(chunk)):
            f.write(chunk)  # never closed: no newline, no closing quote
    res = _limited(["index", "build", str(shard), "--index", str(tmp_path / "idx"), "--workers", "1",
                    "--max-record-bytes", "16M", *CLI_ARGS], RLIMIT_AS=3 * GIB // 2)
    assert res.returncode == 3, res.stderr[-3000:]
    assert "MemoryError" not in res.stderr and "Traceback" not in res.stderr
    assert str(shard) in res.stderr and "line 1" in res.stderr


def test_build_under_a_memory_limit_spills_and_equals_unlimited(tmp_path: Path) -> None:
    """High-entropy corpus, 2 GiB address space, a small --memory budget: spills, no truncation (EQ)."""
    import random

    rng = random.Random(62)
    alphabet = "abcdefghijklmnopqrstuvwxyz"
    docs = [" ".join("".join(rng.choice(alphabet) for _ in range(rng.randint(3, 9))) for _ in range(400))
            for _ in range(400)]
    shard = write_parquet(tmp_path / "entropy.parquet", docs, row_group_size=200)
    index = tmp_path / "idx"
    res = _limited(["index", "build", str(shard), "--index", str(index), "--workers", "1", "--memory", "64M",
                    "--row-groups-per-part", "2", *CLI_ARGS], RLIMIT_AS=2 * GIB)
    assert res.returncode == 0, res.stderr[-3000:]
    reference = tmp_path / "reference"
    build_index([str(shard)], reference, SPEC, BuildConfig(workers=1, row_groups_per_part=2))
    assert index_tables(index) == index_tables(reference)
    assert verify_index(index, deep=True)["ok"]


# --------------------------------------------------------------------------- C10 / I10 listing changes
def test_shard_listing_changes_between_runs(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    a = write_parquet(corpus / "a.parquet", make_docs(40, seed=63), row_group_size=20)
    b = write_jsonl(corpus / "b.jsonl", make_docs(20, seed=64))
    index = tmp_path / "idx"
    build_index([str(corpus)], index, SPEC, BuildConfig(workers=1))
    before = index_tables(index)
    # new file: indexed; nothing else redone
    c = write_jsonl(corpus / "c.jsonl", make_docs(20, seed=65))
    res = CliRunner().invoke(main, ["index", "build", str(corpus), "--index", str(index), "--format", "json",
                                    "--n", "8,13"])
    assert res.exit_code == 2 and "n" in res.stderr  # a different spec is refused, not mixed
    result = build_index([str(corpus)], index, SPEC, BuildConfig(workers=1))
    assert result.parts_committed == 1 and result.parts_skipped == 2
    assert before.parts < index_tables(index).parts
    # removed file: stays committed, the index still verifies (its data lives in the index)
    b.unlink()
    result = build_index([str(corpus)], index, SPEC, BuildConfig(workers=1))
    assert result.parts_committed == 0
    assert any(rec["uri"] == str(b) for rec in fmt.latest_snapshot(index).shards.values())
    assert verify_index(index, deep=True)["ok"]
    # modified in place under the same name: refused (never mixed), exit 3 naming the file
    write_jsonl(c, make_docs(21, seed=66))
    res = CliRunner().invoke(main, ["index", "build", str(corpus), "--index", str(index), "--n", "3,8"])
    assert res.exit_code == 3 and str(c) in res.stderr and "changed since it was indexed" in res.stderr
    assert str(a) not in res.stderr


def test_parquet_still_being_written_is_not_committed(tmp_path: Path) -> None:
    """A shard whose writer has not closed it (no footer yet): an error, nothing from it committed."""
    corpus = tmp_path / "corpus"
    write_parquet(corpus / "good.parquet", make_docs(40, seed=67), row_group_size=20)
    growing = corpus / "growing.parquet"
    table = pa.table({"text": make_docs(40, seed=68)})
    writer = pq.ParquetWriter(growing, table.schema)
    writer.write_table(table, row_group_size=20)  # row groups flushed, footer not written
    index = tmp_path / "idx"
    try:
        res = CliRunner().invoke(main, ["index", "build", str(corpus), "--index", str(index), *CLI_ARGS])
        assert res.exit_code == 3, res.output
        assert str(growing) in res.stderr and "Traceback" not in res.output
        snap = fmt.latest_snapshot(index)
        assert snap is None or all(rec["uri"] != str(growing) for rec in snap.shards.values())
    finally:
        writer.close()
    # once complete it is indexed, and the result equals a clean build
    build_index([str(corpus)], index, SPEC, BuildConfig(workers=1))
    clean = tmp_path / "clean"
    shutil.copytree(corpus, tmp_path / "corpus2")
    build_index([str(tmp_path / "corpus2")], clean, SPEC, BuildConfig(workers=1))
    assert index_tables(index) == index_tables(clean)
