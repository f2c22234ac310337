"""Index reader: background prefetch, parallel searches, the streaming path and doc samples
(doc0 + repeated-rows files) give the same answers as a plain synchronous load."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from helpers import Corpus, index_tables, make_docs, write_parquet
from probe import kernels
from probe.config import BuildConfig, TextSpec
from probe.errors import IndexFormatError
from probe.index import segment
from probe.index.build import build_index
from probe.index.maintenance import verify_index
from probe.index.reader import LookupResult, open_index
from probe.text.tokenizers import Tokenizer

SPEC = TextSpec(ns=(3, 5), doc_sample_k=3)


@pytest.fixture(scope="module")
def small_groups_index(corpus: Corpus, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared test corpus built with tiny row groups, so files have many bucket ranges."""
    mp = pytest.MonkeyPatch()
    mp.setattr(segment, "ROWS_PER_ROW_GROUP", 64)
    try:
        idx = tmp_path_factory.mktemp("reader") / "idx"
        build_index(corpus.paths, idx, SPEC, BuildConfig(workers=1))
    finally:
        mp.undo()
    return idx


def queries(corpus: Corpus, n: int) -> np.ndarray:
    """Every n-gram hash of the corpus plus as many absent ones."""
    texts = corpus.texts
    tb = Tokenizer(SPEC).tokenize(texts, "surface")
    h, _de, _pos = kernels.ngram_hashes(tb.token_hashes, tb.doc_token_ends, n, 1)
    absent = np.random.default_rng(0).integers(0, 2**63, size=h.shape[0], dtype=np.uint64)
    return np.concatenate([h, absent])


def as_sets(res: LookupResult) -> list[tuple[int, int, frozenset[int], bool]]:
    return [(int(res.counts[i]), int(res.docs[i]), frozenset(res.sample(i).tolist()), bool(res.sample_complete[i]))
            for i in range(res.counts.shape[0])]


@pytest.mark.parametrize("n", SPEC.ns)
def test_prefetch_stream_and_sync_paths_agree(small_groups_index: Path, corpus: Corpus, n: int) -> None:
    q = queries(corpus, n)
    sync = open_index(small_groups_index)
    expected = as_sets(sync.lookup("surface", n, q))
    assert any(d > 1 for _c, d, _s, _ok in expected), "the corpus must have n-grams in several documents"

    pre = open_index(small_groups_index)
    pre.prefetch([("surface", m, True) for m in SPEC.ns])
    assert pre._loading  # noqa: SLF001 - the loads were queued
    assert as_sets(pre.lookup("surface", n, q)) == expected
    pre.close()

    streaming = open_index(small_groups_index)
    streaming.memory_bytes = 1  # nothing fits: bucket ranges are read on every lookup
    streaming.prefetch([("surface", n, True)])
    assert not streaming._loading  # noqa: SLF001 - over budget: nothing queued
    assert as_sets(streaming.lookup("surface", n, q)) == expected


def test_samples_equal_the_files_independently_parsed(small_groups_index: Path) -> None:
    """Each n-gram's sample (doc0, or its repeated-rows file row) resolves to the same documents as
    the test helper's own reading of the Parquet files."""
    tables = index_tables(small_groups_index)
    reader = open_index(small_groups_index)
    for n in SPEC.ns:
        key = ("surface", n)
        hashes = np.array(sorted({h for h, _c, _d in tables.tables[key]}), np.uint64)
        res = reader.lookup("surface", n, hashes)
        keys = np.unique(res.doc_keys)
        where = {int(k): (d["shard"], int(d["row"])) for k, d in zip(keys.tolist(), reader.documents(keys),
                                                                       strict=True)}
        multi = 0
        for i, h in enumerate(hashes.tolist()):
            want = {ref for seg in tables.segment_samples[key] for ref in seg.get(h, [])}
            got = {where[int(k)] for k in res.sample(i).tolist()}
            assert got == want
            multi += len(got) > 1
        assert multi > 0


def test_damaged_repeated_file_is_detected(small_groups_index: Path, tmp_path: Path) -> None:
    idx = tmp_path / "idx"
    shutil.copytree(small_groups_index, idx)
    entry = next(e for m in open_index(idx).manifests for e in m["files"] if e["n"] == 3)
    side = idx / entry["repeated_file"]["path"]
    data = bytearray(side.read_bytes())
    data[len(data) // 3] ^= 0xFF
    side.write_bytes(bytes(data))
    report = verify_index(idx, deep=True)
    assert not report["ok"] and any(entry["repeated_file"]["path"] in p for p in report["problems"])
    reader = open_index(idx)
    with pytest.raises(IndexFormatError):
        reader.prefetch([("surface", 3, True)])
        reader.lookup("surface", 3, np.array([1, 2, 3], np.uint64))


def test_missing_repeated_file_is_an_index_error(small_groups_index: Path, tmp_path: Path) -> None:
    idx = tmp_path / "idx"
    shutil.copytree(small_groups_index, idx)
    entry = next(e for m in open_index(idx).manifests for e in m["files"] if e["n"] == 5)
    (idx / entry["repeated_file"]["path"]).unlink()
    with pytest.raises(IndexFormatError, match="missing"):
        open_index(idx).lookup("surface", 5, np.array([1], np.uint64))
    assert not verify_index(idx)["ok"]


def test_doc_sample_k_one_keeps_counts_in_the_repeated_file(tmp_path: Path) -> None:
    texts = make_docs(40, seed=3) + ["the same words here again"] * 5
    shard = write_parquet(tmp_path / "a.parquet", texts)
    spec = TextSpec(ns=(3,), doc_sample_k=1)
    build_index([str(shard)], tmp_path / "idx", spec, BuildConfig(workers=1))
    reader = open_index(tmp_path / "idx")
    entry = reader.manifests[0]["files"][0]
    rep = pq.read_table(tmp_path / "idx" / entry["repeated_file"]["path"])
    assert rep.column_names == ["hash", "count", "docs"]  # no doc_sample list: doc0 is the whole sample
    assert entry["repeated_file"]["path"] == segment.repeated_file_rel(entry["path"])
    tb = Tokenizer(spec).tokenize(["the same words here again"], "surface")
    h, _de, _pos = kernels.ngram_hashes(tb.token_hashes, tb.doc_token_ends, 3, 1)
    res = reader.lookup("surface", 3, h)
    assert (res.docs >= 5).all() and all(res.sample(i).shape[0] == 1 for i in range(h.shape[0]))
    assert not res.sample_complete.any()  # 5 documents, sample of 1: an estimate
    assert verify_index(tmp_path / "idx", deep=True)["ok"]


def test_repeated_file_holds_exactly_the_rows_seen_more_than_once(small_groups_index: Path) -> None:
    """Format 3: the n-gram table is hash + doc0 only; every row with count > 1, and no other, is in the
    repeated-rows file, and the manifest's count_sum is the table's real total."""
    repeated = 0
    for man in open_index(small_groups_index).manifests:
        for entry in man["files"]:
            table = pq.read_table(small_groups_index / entry["path"])
            assert table.column_names == ["hash", "doc0"]
            full = segment.read_ngram_row_groups(small_groups_index, entry, SPEC.doc_sample_k)
            rep = pq.read_table(small_groups_index / entry["repeated_file"]["path"]).to_pydict()
            assert rep["hash"] == full.hashes[full.counts > 1].tolist()
            assert int(full.counts.sum()) == entry["count_sum"] >= len(full)
            assert len(rep["hash"]) < len(full) / 2  # most n-grams of a corpus occur once
            repeated += len(rep["hash"])
    assert repeated > 0


def test_repeated_rows_missing_from_the_table_are_an_index_error(small_groups_index: Path, tmp_path: Path) -> None:
    """A repeated-rows file that names hashes its table does not hold (files from different builds)."""
    entries = [e for m in open_index(small_groups_index).manifests for e in m["files"]]
    def hashes(rel: str) -> set[int]:
        return set(pq.read_table(small_groups_index / rel, columns=["hash"]).column("hash").to_pylist())

    a, b = next((a, b) for a in entries for b in entries
                if a["n"] == b["n"] and hashes(b["repeated_file"]["path"]) - hashes(a["path"]))
    with pytest.raises(IndexFormatError, match="not in"):
        segment.read_ngram_row_groups(small_groups_index, {**a, "repeated_file": b["repeated_file"]},
                                      SPEC.doc_sample_k)


def test_close_cancels_background_loads_and_lookups_still_work(small_groups_index: Path, corpus: Corpus) -> None:
    reader = open_index(small_groups_index)
    reader.prefetch([("surface", n, True) for n in SPEC.ns])
    reader.close()
    assert not reader.loading()
    q = queries(corpus, 3)
    assert as_sets(reader.lookup("surface", 3, q)) == as_sets(open_index(small_groups_index).lookup("surface", 3, q))
