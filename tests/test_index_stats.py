"""`probe index info` numbers: exact distinct counts and top n-grams merged across segments."""

from __future__ import annotations

import pytest

from helpers import index_tables, make_docs, write_parquet
from probe.config import BuildConfig, TextSpec
from probe.index import stats
from probe.index.build import build_index
from probe.index.reader import open_index
from probe.text.tokenizers import Tokenizer

NS = (3, 8)


@pytest.fixture(scope="module", params=[8, 0], ids=["256-buckets", "no-buckets"])
def built(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """Three shards indexed in three runs (three segments); the shared passages of ``make_docs``
    put many n-grams in several segments and several times within one."""
    root = tmp_path_factory.mktemp(f"stats{request.param}")
    spec = TextSpec(ns=NS, bucket_bits=request.param)
    index = root / "idx"
    for i in range(3):
        shard = write_parquet(root / f"s{i}.parquet", make_docs(120, seed=40 + i), row_group_size=40)
        build_index([str(shard)], index, spec, BuildConfig(workers=1))
    return index, index_tables(index)


def _expected_top(rows: list[tuple[int, int, int]], k: int) -> list[tuple[int, int, int]]:
    return sorted(rows, key=lambda r: (-r[1], r[0]))[:k]  # ORDER BY count DESC, hash


@pytest.mark.parametrize("rows_per_chunk", [1, 300, 10**9])  # a range per bucket, a few buckets, all at once
def test_distinct_and_top_match_the_merged_tables(built, rows_per_chunk: int) -> None:
    index, tables = built
    reader = open_index(index)
    assert len(reader.manifests) >= 3
    for n in NS:
        entries = [e for _si, e in reader.ngram_entries("surface", n)]
        rows = tables.tables[("surface", n)]
        assert sum(e["rows"] for e in entries) > len(rows)  # n-grams shared by segments: a real merge
        for k in (0, 1, 10, len(rows) + 5):
            distinct, top = stats._merged_counts(reader, entries, k, rows_per_chunk)
            assert distinct == len(rows)
            assert top == _expected_top(rows, k)
        assert _expected_top(rows, 10)[0][1] > 1


def test_top_ngrams_name_a_document_that_holds_them(built) -> None:
    index, tables = built
    info = stats.index_info(index, top_k=5)
    tok = Tokenizer(open_index(index).spec)
    for row in info["ngrams"]:
        view, n = row["view"], row["n"]
        assert row["distinct"] == len(tables.tables[(view, n)])
        assert [(int(t["hash"]), t["count"], t["docs"]) for t in row["top"]] == _expected_top(
            tables.tables[(view, n)], 5)
        for t in row["top"]:
            assert t["text"]  # read back from the corpus document the first segment holding it names
            assert len(tok.tokenize([t["text"]], view).token_hashes) == n


def test_index_without_doc_samples_reports_top_ngrams_without_text(tmp_path) -> None:
    """k = 0 stores no document per row (no ``doc0`` column): counts still, text None, no error."""
    index = tmp_path / "idx"
    for i in range(2):
        shard = write_parquet(tmp_path / f"s{i}.parquet", make_docs(60, seed=70 + i), row_group_size=30)
        build_index([str(shard)], index, TextSpec(ns=NS, doc_sample_k=0), BuildConfig(workers=1))
    tables = index_tables(index)
    info = stats.index_info(index, top_k=3)
    for row in info["ngrams"]:
        assert row["distinct"] == len(tables.tables[(row["view"], row["n"])])
        assert [(int(t["hash"]), t["count"], t["docs"]) for t in row["top"]] == _expected_top(
            tables.tables[(row["view"], row["n"])], 3)
        assert [t["text"] for t in row["top"]] == [None, None, None]
