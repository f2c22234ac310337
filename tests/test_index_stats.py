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


# --------------------------------------------------------------------------- provenance (probe.index.provenance)
def _indexed_doc(tmp_path, text: str = "the quick brown fox jumps over the lazy dog near the river bank"):
    import json

    shard = tmp_path / "s.jsonl"
    shard.write_text(json.dumps({"text": "another document entirely", "id": "d0", "src": "web"}) + "\n"
                     + json.dumps({"text": text, "id": "d1", "src": "books"}) + "\n")
    index = tmp_path / "idx"
    build_index([str(shard)], index, TextSpec(ns=(3,)),
                BuildConfig(workers=1, id_field="id", source_field="src"))
    reader = open_index(index)
    tb = Tokenizer(reader.spec).tokenize([text])
    from probe import kernels

    h, _, _ = kernels.ngram_hashes(tb.token_hashes, tb.doc_token_ends, 3, 1)
    doc_key = int(reader.lookup("surface", 3, h[:1]).sample(0)[0])
    return shard, reader, doc_key, int(h[0])


def test_match_document_reads_the_span_and_its_provenance(tmp_path) -> None:
    shard, reader, doc_key, h = _indexed_doc(tmp_path)
    found = stats.match_document(reader, doc_key, h, 3, 4)
    assert (found.uri, found.row, found.id, found.source) == (str(shard), 1, "d1", "books")
    assert found.snippet_unavailable is None and found.verifiable and not found.collision
    assert found.text == "the quick brown fox" and found.match_tokens == ["the", "quick", "brown", "fox"]
    assert "[[the quick brown fox]]" in found.snippet
    # the dict the scan reads: the old keys, with the new ones added
    old = stats.document_match(reader, doc_key, h, 3, 4)
    assert {"uri", "row", "id", "source", "snippet", "text", "match_tokens"} <= set(old)
    assert old["snippet"] == found.snippet and old["shard"] == found.shard


def test_match_document_of_a_moved_shard_keeps_what_the_index_knows(tmp_path) -> None:
    """A moved or deleted shard: shard, row, id and source from the docs table, and why there is no snippet."""
    shard, reader, doc_key, h = _indexed_doc(tmp_path)
    shard.rename(tmp_path / "moved.jsonl")
    found = stats.match_document(reader, doc_key, h, 3, 4)
    assert (found.uri, found.row, found.id, found.source) == (str(shard), 1, "d1", "books")
    assert found.shard in reader.snapshot.shards
    assert found.snippet is None and found.match_tokens is None and not found.verifiable
    assert found.snippet_unavailable == f"shard {shard} not found (moved or deleted since it was indexed)"
    assert stats.document_match(reader, doc_key, h, 3, 4) is None  # the old contract: None when unreadable
    assert stats.ngram_text_in_document(reader, "surface", 3, h, doc_key) is None


def test_match_document_of_a_truncated_shard_says_why(tmp_path) -> None:
    shard, reader, doc_key, h = _indexed_doc(tmp_path)
    shard.write_text(shard.read_text().splitlines()[0] + "\n")  # row 1 is gone
    found = stats.match_document(reader, doc_key, h, 3, 4)
    assert found.id == "d1" and found.snippet is None
    assert found.snippet_unavailable.startswith(f"cannot read row 1 of shard {shard}: ")
