"""The embedded demo: stdlib-prose corpus and the shipped fine-tuning set.

The quickstart's promise ("runs anywhere, no download") rests on these: the
corpus must build quickly and reproducibly from whatever Python is installed,
and the fine-tuning set's ``category`` labels must be true of that corpus, or the
demo report would show the wrong answers.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from probe.demo import DEMO_CATEGORIES, build_demo_corpus, demo_dataset_path
from probe.demo.corpus import MANIFEST_NAME
from probe.errors import ConfigError

_WORD = re.compile(r"\w+")
FIELDS = ("id", "category", "instruction", "input", "output")


def _tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _ngrams(tokens: list[str], n: int) -> set[tuple[str, ...]]:
    return set(zip(*(tokens[i:] for i in range(n)), strict=False))


def _read(paths: list[Path]) -> pa.Table:
    return pa.concat_tables([pq.read_table(p) for p in paths])


@pytest.fixture(scope="module")
def full_corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], pa.Table, float]:
    out = tmp_path_factory.mktemp("demo-full")
    start = time.perf_counter()
    paths = build_demo_corpus(out)
    elapsed = time.perf_counter() - start
    return paths, _read(paths), elapsed


@pytest.fixture(scope="module")
def corpus_index(full_corpus: tuple[list[Path], pa.Table, float]) -> tuple[set[tuple[str, ...]], str]:
    """13-gram set of the whole corpus, and every document as ' tok tok ... ' (one per line).

    The joined string answers "is this 40-token run contiguous in some document":
    a window is searched with surrounding spaces and cannot span two documents,
    because documents are separated by newlines, not spaces.
    """
    _, table, _ = full_corpus
    grams: set[tuple[str, ...]] = set()
    lines: list[str] = []
    for text in table.column("text").to_pylist():
        toks = _tokens(text)
        grams |= _ngrams(toks, 13)
        lines.append(" " + " ".join(toks) + " ")
    return grams, "\n".join(lines)


@pytest.fixture(scope="module")
def records() -> list[dict]:
    with demo_dataset_path().open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _record_tokens(rec: dict) -> list[str]:
    # The Alpaca prompt is instruction + input; a quote may sit in either or in the output.
    return _tokens("\n".join((rec["instruction"], rec["input"], rec["output"])))


# ------------------------------------------------------------------ corpus


def test_small_build_is_valid_parquet(tmp_path: Path) -> None:
    paths = build_demo_corpus(tmp_path, max_docs=500, docs_per_shard=200)
    assert [p.name for p in paths] == [f"stdlib-{i:05d}.parquet" for i in range(3)]
    table = _read(paths)
    assert table.num_rows == 500
    assert table.schema.names == ["id", "source", "text"]
    assert all(field.type == pa.string() for field in table.schema)
    assert all(t.strip() for t in table.column("text").to_pylist())
    ids = table.column("id").to_pylist()
    assert len(set(ids)) == len(ids)
    assert set(table.column("source").to_pylist()) <= {
        "stdlib-docstring",
        "stdlib-comments",
        "stdlib-reference",
    }
    meta = pq.ParquetFile(paths[0]).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"
    # No temp files left behind by the atomic writes.
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([MANIFEST_NAME, *(p.name for p in paths)])


def test_build_is_deterministic(tmp_path: Path) -> None:
    a = _read(build_demo_corpus(tmp_path / "a", max_docs=500))
    b = _read(build_demo_corpus(tmp_path / "b", max_docs=500))
    assert a.equals(b)


def test_second_call_is_idempotent(tmp_path: Path) -> None:
    paths = build_demo_corpus(tmp_path, max_docs=500)
    before = {p: p.stat().st_mtime_ns for p in [*paths, tmp_path / MANIFEST_NAME]}
    time.sleep(0.01)
    assert build_demo_corpus(tmp_path, max_docs=500) == paths
    assert {p: p.stat().st_mtime_ns for p in before} == before


def test_damaged_shard_or_new_parameters_trigger_rebuild(tmp_path: Path) -> None:
    paths = build_demo_corpus(tmp_path, max_docs=500, docs_per_shard=100)
    assert len(paths) == 5
    expected = _read(paths)
    paths[2].write_bytes(b"not parquet")
    again = build_demo_corpus(tmp_path, max_docs=500, docs_per_shard=100)
    assert _read(again).equals(expected)
    # Fewer, larger shards: the stale stdlib-00002..4 must not linger next to the new set.
    fewer = build_demo_corpus(tmp_path, max_docs=500, docs_per_shard=250)
    assert len(fewer) == 2
    assert sorted(tmp_path.glob("stdlib-*.parquet")) == fewer
    assert _read(fewer).equals(expected)


@pytest.mark.parametrize("kwargs", [{"max_docs": 0}, {"docs_per_shard": 0}])
def test_bad_parameters(tmp_path: Path, kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        build_demo_corpus(tmp_path, **kwargs)


def test_full_build_size_and_speed(full_corpus: tuple[list[Path], pa.Table, float]) -> None:
    paths, table, elapsed = full_corpus
    texts = table.column("text").to_pylist()
    mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    by_source = Counter(table.column("source").to_pylist())
    print(
        f"demo corpus: {table.num_rows} docs, {mb:.2f} MB text, {len(paths)} shards, {elapsed:.1f} s, {dict(by_source)}"
    )
    # (its speed is measured in bench/, not asserted here: a timed unit test fails on a loaded machine)
    assert table.num_rows >= 5000
    assert mb >= 2.0
    assert len(set(table.column("id").to_pylist())) == table.num_rows
    for path in paths:
        meta = pq.ParquetFile(path).metadata
        assert all(meta.row_group(i).num_rows <= 1024 for i in range(meta.num_row_groups))


# ------------------------------------------------------------------ dataset


def test_dataset_is_valid_jsonl(records: list[dict]) -> None:
    path = demo_dataset_path()
    assert path.is_file()
    for line in path.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        assert tuple(rec) == FIELDS
        assert all(isinstance(rec[k], str) for k in FIELDS)
        assert rec["instruction"].strip() and rec["output"].strip()
        assert rec["category"] in DEMO_CATEGORIES
    assert len({r["id"] for r in records}) == len(records)
    counts = Counter(r["category"] for r in records)
    assert 40 <= len(records) <= 60
    assert counts["quoted"] >= 10 and counts["novel"] >= 12
    assert counts["edited"] >= 6 and counts["paraphrase"] >= 6 and counts["template"] >= 5


def _has_verbatim_window(tokens: list[str], joined: str, n: int = 40) -> bool:
    return any(f" {' '.join(tokens[i : i + n])} " in joined for i in range(len(tokens) - n + 1))


def test_quoted_records_are_in_the_corpus(records: list[dict], corpus_index: tuple[set, str]) -> None:
    _, joined = corpus_index
    missing = [
        r["id"]
        for r in records
        if r["category"] == "quoted" and not _has_verbatim_window(_record_tokens(r), joined)
    ]
    assert missing == []


def test_novel_records_share_no_13gram(records: list[dict], corpus_index: tuple[set, str]) -> None:
    grams, _ = corpus_index
    leaks = {
        r["id"]: sorted(" ".join(g) for g in _ngrams(_record_tokens(r), 13) & grams)[:3]
        for r in records
        if r["category"] == "novel"
    }
    assert {k: v for k, v in leaks.items() if v} == {}


def test_edited_records_are_detectable_and_paraphrases_are_not_quotes(
    records: list[dict], corpus_index: tuple[set, str]
) -> None:
    """Edits keep long runs of the original (so an n-gram index must see them);
    paraphrases must not accidentally contain a verbatim quote."""
    grams, joined = corpus_index
    undetected = [
        r["id"] for r in records if r["category"] == "edited" and not (_ngrams(_record_tokens(r), 13) & grams)
    ]
    assert undetected == []
    quoting = [
        r["id"]
        for r in records
        if r["category"] == "paraphrase" and _has_verbatim_window(_record_tokens(r), joined)
    ]
    assert quoting == []


def test_outdated_demo_index_is_discarded_but_current_or_newer_is_kept(tmp_path: Path) -> None:
    """Re-running the demo after an index-format change rebuilds its own index instead of failing."""
    from probe.demo.pipeline import discard_outdated_index
    from probe.index import format as fmt

    idx = tmp_path / "demo"
    for version, removed in ((fmt.FORMAT_VERSION - 1, True), (fmt.FORMAT_VERSION, False),
                             (fmt.FORMAT_VERSION + 1, False)):
        (idx / "segments").mkdir(parents=True, exist_ok=True)
        (idx / fmt.SPEC_FILE).write_text(json.dumps({"format": fmt.FORMAT_NAME, "format_version": version}))
        assert discard_outdated_index(idx) is removed
        assert idx.exists() is not removed
    assert discard_outdated_index(tmp_path / "absent") is False


@pytest.mark.slow
def test_run_demo_end_to_end_reports_scan_progress(tmp_path: Path) -> None:
    """The whole demo pipeline: the scan reports its progress in examples, the reports are written."""
    from probe.demo.pipeline import run_demo

    class Recorder:
        examples = 0

        def advance(self, examples: int, lookups: int = 0) -> None:
            self.examples += examples

    scan_progress = Recorder()
    result = run_demo(tmp_path, workers=1, scan_progress=scan_progress)
    assert scan_progress.examples == result["summary"].examples > 0
    assert all(Path(p).is_file() for p in result["reports"].values())
