"""Index builds: exact tables against plain-Python oracles, incremental builds, duplicates, spec
checks, parallel and spilled builds, sampling, compaction, gc, bad inputs (issue 2 "done")."""

from __future__ import annotations

import gzip
import json
import os
import random
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import (
    Corpus,
    index_tables,
    make_docs,
    oracle_tables,
    ref_doc_ngrams,
    ref_normalize,
    ref_words,
    shard_fingerprint,
    write_corpus,
    write_jsonl,
    write_parquet,
)
from probe import kernels
from probe.cli import main
from probe.config import BuildConfig, TextSpec
from probe.errors import ConfigError, InputError, SpecMismatchError
from probe.index import build as build_mod
from probe.index.build import build_index
from probe.index.maintenance import gc_index, verify_index
from probe.index.reader import open_index
from probe.text.tokenizers import Tokenizer

SPEC = TextSpec(ns=(3, 8), views=("surface", "pattern"))
ONE = BuildConfig(workers=1)


def cli(*args: str):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result


def kernel_oracle(texts: list[str], spec: TextSpec, view: str, n: int) -> list[tuple[int, int, int]]:
    """(hash, count, docs) via the tokenizer + a Python Counter (for views without a Python reference)."""
    tb = Tokenizer(spec).tokenize(texts, view)
    h, ends, _ = kernels.ngram_hashes(tb.token_hashes, tb.doc_token_ends, n, spec.sample_mod)
    count: Counter[int] = Counter()
    docs: Counter[int] = Counter()
    for a, b in zip([0, *ends[:-1].tolist()], ends.tolist(), strict=True):
        hs = h[a:b].tolist()
        count.update(hs)
        docs.update(set(hs))
    return sorted((h, count[h], docs[h]) for h in count)


@pytest.fixture(scope="module")
def built(corpus: Corpus, tmp_path_factory: pytest.TempPathFactory):
    idx = tmp_path_factory.mktemp("built") / "idx"
    result = build_index(corpus.paths, idx, SPEC, ONE)
    return idx, result


# --------------------------------------------------------------------------- exact contents
def test_build_result_accounting(built, corpus: Corpus) -> None:
    idx, result = built
    assert result.shards_total == 4
    assert result.parts_planned == result.parts_committed == 6  # 2 + 2 row-group parts, 2 JSONL parts
    assert result.parts_skipped == 0 and result.failures == [] and result.duplicates == []
    assert result.docs == len(corpus.texts)
    assert result.tokens == sum(len(ref_words(ref_normalize(t))) for t in corpus.texts)
    assert verify_index(idx, deep=True)["ok"]


def test_surface_tables_equal_plain_python_oracle(built, corpus: Corpus) -> None:
    idx, _ = built
    tables = index_tables(idx).tables
    expected = oracle_tables(corpus.texts, SPEC.ns)
    for n in SPEC.ns:
        assert tables[("surface", n)] == expected[n]
    assert any(d > SPEC.doc_sample_k for _h, _c, d in expected[3])  # the shared passages are exercised
    assert any(c > d for _h, c, d in expected[3])  # and repeats within a document


def test_pattern_tables_equal_counter_oracle(built, corpus: Corpus) -> None:
    idx, _ = built
    tables = index_tables(idx).tables
    for n in SPEC.ns:
        assert tables[("pattern", n)] == kernel_oracle(corpus.texts, SPEC, "pattern", n)


def test_doc_samples_are_bottom_k_per_segment(built, corpus: Corpus) -> None:
    idx, _ = built
    content = index_tables(idx)
    texts = {(shard_fingerprint(p), row): t for p, ts in corpus.shards.items() for row, t in enumerate(ts)}
    k = SPEC.doc_sample_k
    for n in SPEC.ns:
        grams = {ref: set(ref_doc_ngrams(t, n)) for ref, t in texts.items()}
        for seg_docs, seg_samples in zip(content.segment_docs, content.segment_samples[("surface", n)],
                                         strict=True):
            for h, sample in seg_samples.items():
                assert sample == [ref for ref in seg_docs if h in grams[ref]][:k]


def test_tokens_and_ngrams_per_document(built, corpus: Corpus) -> None:
    idx, _ = built
    reader = open_index(idx)
    by_ref = {(shard_fingerprint(p), row): t for p, ts in corpus.shards.items() for row, t in enumerate(ts)}
    seen = 0
    for man in reader.manifests:
        docs = pq.read_table(idx / man["docs_file"]["path"]).to_pydict()
        for fp, row, tokens in zip(docs["shard"], docs["row"], docs["tokens"], strict=True):
            text = by_ref[(fp, row)]
            assert tokens == len(ref_words(ref_normalize(text)))
            seen += 1
    assert seen == len(corpus.texts)
    tok = Tokenizer(SPEC)
    tb = tok.tokenize(corpus.texts)
    for n in SPEC.ns:
        _, ends, _ = kernels.ngram_hashes(tb.token_hashes, tb.doc_token_ends, n, 1)
        assert np.diff(ends, prepend=0).tolist() == [max(0, int(t) - n + 1) for t in tb.doc_token_counts()]


def test_every_ngram_of_every_indexed_document_is_found(built, corpus: Corpus) -> None:
    idx, _ = built
    reader = open_index(idx)
    tok = Tokenizer(reader.spec)
    for view in SPEC.views:
        tb = tok.tokenize(corpus.texts, view)
        for n in SPEC.ns:
            h, _, _ = kernels.ngram_hashes(tb.token_hashes, tb.doc_token_ends, n, 1)
            res = reader.lookup(view, n, h)
            assert res.found.all() and (res.docs >= 1).all()
            expected = dict((hh, (c, d)) for hh, c, d in kernel_oracle(corpus.texts, SPEC, view, n))
            assert [(int(c), int(d)) for c, d in zip(res.counts, res.docs, strict=True)] == [
                expected[int(x)] for x in h]


def test_provenance_resolves_to_the_document(built, corpus: Corpus) -> None:
    idx, _ = built
    reader = open_index(idx)
    path = next(p for p in corpus.shards if p.suffix == ".jsonl")
    text = corpus.shards[path][7]
    h = ref_doc_ngrams(text, 8)
    if not h:
        pytest.skip("document shorter than 8 tokens")
    res = reader.lookup("surface", 8, np.array(h[:1], np.uint64))
    docs = reader.documents(res.sample(0))
    assert any(d["uri"] == str(path) and d["row"] == 7 for d in docs) or res.docs[0] > SPEC.doc_sample_k


def test_cli_build_equals_library_build(built, corpus: Corpus, tmp_path: Path) -> None:
    idx, _ = built
    out = tmp_path / "cli-idx"
    res = cli("index", "build", *corpus.paths, "--index", str(out), "--n", "8,3", "--views", "surface,pattern",
              "--workers", "1", "--silent", "--format", "json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["parts_committed"] == 6 and summary["docs"] == len(corpus.texts)
    assert index_tables(out) == index_tables(idx)


def test_two_workers_equal_one_worker(built, corpus: Corpus, tmp_path: Path) -> None:
    idx, _ = built
    out = tmp_path / "w2"
    res = cli("index", "build", *corpus.paths, "--index", str(out), "--n", "3,8", "--views", "surface,pattern",
              "--workers", "2", "--silent")
    assert res.exit_code == 0, res.output
    assert index_tables(out) == index_tables(idx)


def test_spilled_build_equals_in_memory_build(built, corpus: Corpus, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A tiny memory budget spills sorted runs after every batch; the merge must give the same tables."""
    idx, _ = built
    spills = []
    real_spill = build_mod._Buffers.spill

    def counting_spill(self):
        spills.append(sum(len(v) for v in self.rows.values()))
        return real_spill(self)

    monkeypatch.setattr(build_mod._Buffers, "spill", counting_spill)
    monkeypatch.setattr(build_mod._Buffers, "over_budget", lambda self: self.nbytes * 4 > self.budget)
    # per-task budgets have a 64 MiB floor, so shrink the task budget itself
    real_plan = build_mod.plan_tasks

    def tiny_plan(*args, **kwargs):
        tasks, skipped, dups = real_plan(*args, **kwargs)
        from dataclasses import replace

        return [replace(t, memory_bytes=1 << 10) for t in tasks], skipped, dups

    monkeypatch.setattr(build_mod, "plan_tasks", tiny_plan)
    out = tmp_path / "spill"
    build_index(corpus.paths, out, SPEC, BuildConfig(workers=1, memory_bytes=1 << 20, batch_docs=16))
    assert len(spills) > 10
    assert not (out / "tmp").exists() or not any((out / "tmp").iterdir())  # spill runs cleaned up
    assert index_tables(out) == index_tables(idx)
    assert verify_index(out, deep=True)["ok"]


# --------------------------------------------------------------------------- hypothesis: indexed alone
DOC_TEXT = st.lists(
    st.one_of(st.sampled_from(["the", "cat", "sat", "on", "mat", ".", "Δ", "é", "東京", "1"]),
              st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=4)),
    min_size=1, max_size=15,
).map(" ".join).filter(lambda t: not t.isspace())


@settings(max_examples=max(10, settings().max_examples // 4))  # each example is a full build
@given(texts=st.lists(DOC_TEXT, min_size=1, max_size=4))
def test_text_indexed_alone_is_fully_found(texts: list[str]) -> None:
    spec = TextSpec(ns=(1, 3, 8), doc_sample_k=2)
    with tempfile.TemporaryDirectory() as d:
        shard = write_jsonl(Path(d) / "s.jsonl", texts)
        build_index([str(shard)], Path(d) / "idx", spec, ONE)
        reader = open_index(Path(d) / "idx")
        tok = Tokenizer(spec)
        for n in spec.ns:
            oracle = dict((h, (c, dd)) for h, c, dd in oracle_tables(texts, [n])[n])
            for text in texts:
                tb = tok.tokenize([text])
                h, _, _ = kernels.ngram_hashes(tb.token_hashes, tb.doc_token_ends, n, 1)
                assert len(h) == max(0, len(ref_words(ref_normalize(text))) - n + 1)
                res = reader.lookup("surface", n, h)
                assert res.found.all()
                assert [(int(c), int(x)) for c, x in zip(res.counts, res.docs, strict=True)] == [
                    oracle[int(v)] for v in h]


# --------------------------------------------------------------------------- incremental, duplicates
def test_incremental_build_processes_only_new_shards(tmp_path: Path) -> None:
    c = write_corpus(tmp_path / "c", seed=3, sizes=[("a.parquet", 50), ("b.jsonl", 30), ("c.jsonl", 20)])
    paths = c.paths
    idx = tmp_path / "idx"
    first = build_index(paths[:2], idx, TextSpec(), ONE)
    assert first.parts_committed == 2  # a.parquet: 2 row groups = 1 part; b.jsonl: 1 part
    second = build_index(paths, idx, TextSpec(), ONE)
    assert (second.parts_planned, second.parts_committed, second.parts_skipped) == (1, 1, 2)
    assert second.docs == 20
    third = build_index(paths, idx, TextSpec(), ONE)
    assert (third.parts_planned, third.parts_committed, third.parts_skipped) == (0, 0, 3)
    assert third.snapshot == second.snapshot  # nothing new: no new snapshot
    whole = tmp_path / "whole"
    build_index(paths, whole, TextSpec(), ONE)
    assert index_tables(idx) == index_tables(whole)


def test_same_content_under_two_paths_is_indexed_once(tmp_path: Path) -> None:
    c = write_corpus(tmp_path / "c", seed=4, sizes=[("a.parquet", 30)])
    a = c.paths[0]
    copy = tmp_path / "c" / "copy.parquet"
    shutil.copy(a, copy)
    link = tmp_path / "c" / "link.parquet"
    os.symlink(a, link)
    idx = tmp_path / "idx"
    res = build_index([a, a, str(link), str(copy)], idx, TextSpec(), ONE)
    assert res.shards_total == 2  # the same path twice and a symlink to it are one shard
    assert res.duplicates == [(str(copy), a)]
    assert res.docs == 30
    # added later under another path: still one copy in the index, and reported
    other = tmp_path / "other.parquet"
    shutil.copy(a, other)
    again = build_index([str(other)], idx, TextSpec(), ONE)
    assert again.parts_committed == 0 and again.duplicates == [(str(other), a)]
    info = json.loads(cli("index", "info", str(idx), "--format", "json", "--top", "0").stdout)
    assert info["totals"]["docs"] == 30 and info["totals"]["shards"] == 1
    res = cli("index", "build", str(copy), "--index", str(idx), "--workers", "1", "--silent", "--format", "json")
    assert json.loads(res.stdout)["duplicate_shards"] == [{"uri": str(copy), "same_content_as": a}]


def test_empty_shard_is_committed_once(tmp_path: Path) -> None:
    blank = tmp_path / "blank.jsonl"
    blank.write_text("\n\n  \n")
    empty_pq = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"text": pa.array([], pa.string())}), empty_pq)
    idx = tmp_path / "idx"
    res = build_index([str(blank), str(empty_pq)], idx, TextSpec(), ONE)
    assert res.parts_committed == 2 and res.docs == 0
    again = build_index([str(blank), str(empty_pq)], idx, TextSpec(), ONE)
    assert again.parts_committed == 0 and again.parts_skipped == 2
    assert verify_index(idx, deep=True)["ok"]
    assert open_index(idx).lookup("surface", 8, np.array([1, 2], np.uint64)).counts.tolist() == [0, 0]


# --------------------------------------------------------------------------- spec checks
def test_spec_mismatch_is_refused_with_both_values(small_corpus: Corpus, tmp_path: Path) -> None:
    idx = tmp_path / "idx"
    build_index(small_corpus.paths[:1], idx, TextSpec(), ONE)
    with pytest.raises(SpecMismatchError, match=r"ns: \[8, 13\] != \[13\]"):
        build_index(small_corpus.paths, idx, TextSpec(ns=(13,)), ONE)
    res = CliRunner().invoke(main, ["index", "build", *small_corpus.paths, "--index", str(idx), "--n", "13",
                                    "--seed", "5", "--workers", "1", "--silent"])
    assert res.exit_code == 2
    assert "ns: [8, 13] != [13]" in res.stderr and "seed: 0 != 5" in res.stderr
    assert len(list((idx / "snapshots").glob("*.json"))) == 1  # nothing was added


@pytest.mark.parametrize("bad", [
    {"ns": (0,)}, {"ns": ()}, {"sample_mod": 0}, {"bucket_bits": 17}, {"doc_sample_k": 65}, {"seed": -1},
    {"views": ("surface", "meaning")}, {"tokenizer": "bpe"},
])
def test_invalid_spec_is_config_error(bad: dict) -> None:
    with pytest.raises(ConfigError):
        TextSpec(**bad)


def test_spec_order_is_canonical() -> None:
    assert TextSpec(ns=(13, 8, 8)) == TextSpec(ns=(8, 13))
    assert TextSpec(views=("pattern", "surface")).views == ("surface", "pattern")
    assert TextSpec.from_dict(TextSpec().to_dict()) == TextSpec()
    with pytest.raises(ConfigError, match="newer probe"):
        TextSpec.from_dict({**TextSpec().to_dict(), "future_field": 1})


# --------------------------------------------------------------------------- sampling
def test_sample_mod_keeps_only_multiples(corpus: Corpus, tmp_path: Path) -> None:
    spec = TextSpec(ns=(3, 8), sample_mod=5)
    idx = tmp_path / "idx"
    build_index(corpus.paths, idx, spec, ONE)
    tables = index_tables(idx).tables
    expected = oracle_tables(corpus.texts, spec.ns, sample_mod=5)
    for n in spec.ns:
        assert tables[("surface", n)] == expected[n]
        assert tables[("surface", n)] and all(h % 5 == 0 for h, _, _ in tables[("surface", n)])
    info = json.loads(cli("index", "info", str(idx), "--format", "json", "--top", "0").stdout)
    assert info["approximate"] is True and info["spec"]["sample_mod"] == 5


# --------------------------------------------------------------------------- compact, gc
def test_compact_keeps_tables_and_verifies(built, tmp_path: Path) -> None:
    src, _ = built
    idx = tmp_path / "idx"
    shutil.copytree(src, idx)
    before = index_tables(idx)
    assert len(before.segment_docs) == 6
    reader = open_index(idx)
    tok = Tokenizer(reader.spec)
    tb = tok.tokenize(["It was the best of times, it was the worst of times"])
    h, _, _ = kernels.ngram_hashes(tb.token_hashes, tb.doc_token_ends, 3, 1)
    looked = reader.lookup("surface", 3, h)
    res = cli("index", "compact", str(idx), "--format", "json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert (report["segments_before"], report["segments_after"]) == (6, 1)
    after = index_tables(idx)
    assert after.tables == before.tables and after.parts == before.parts
    assert after.samples == before.global_bottom_k(SPEC.doc_sample_k)
    assert len(after.segment_docs) == 1 and sorted(after.segment_docs[0]) == sorted(
        d for seg in before.segment_docs for d in seg)
    again = open_index(idx).lookup("surface", 3, h)
    assert again.counts.tolist() == looked.counts.tolist() and again.docs.tolist() == looked.docs.tolist()
    assert cli("index", "verify", str(idx), "--deep").exit_code == 0
    # compacting one segment is a no-op
    assert json.loads(cli("index", "compact", str(idx), "--format", "json").stdout)["segments_after"] == 1
    # the old segments are now unreferenced; gc --older-than 0 removes them and the snapshots using them
    old = verify_index(idx)["orphans"]
    assert len(old) == 6
    res = cli("index", "gc", str(idx), "--older-than", "0", "--format", "json")
    assert res.exit_code == 0
    removed = json.loads(res.stdout)["removed"]
    assert set(old) <= set(removed) and any(r.startswith("snapshots/") for r in removed)
    assert verify_index(idx, deep=True).orphans == []
    assert verify_index(idx)["orphans"] == []
    assert index_tables(idx) == after


def test_gc_removes_only_orphans_older_than_threshold(small_corpus: Corpus, tmp_path: Path) -> None:
    idx = tmp_path / "idx"
    build_index(small_corpus.paths, idx, TextSpec(), ONE)
    before = index_tables(idx)
    old = idx / "segments" / "deadbeef-old"
    new = idx / "segments" / "deadbeef-new"
    for d in (old, new):
        (d / "view=surface").mkdir(parents=True)
        (d / "view=surface" / "n=8.parquet").write_bytes(b"partial")
    stale_tmp = idx / "snapshots" / ".tmp-crashed"
    stale_tmp.write_bytes(b"{")
    two_hours_ago = time.time() - 7200
    for p in (old, stale_tmp):
        os.utime(p, (two_hours_ago, two_hours_ago))
    assert sorted(verify_index(idx)["orphans"]) == ["segments/deadbeef-new", "segments/deadbeef-old"]
    assert verify_index(idx)["ok"]  # orphans are reported, not errors
    dry = json.loads(cli("index", "gc", str(idx), "--dry-run", "--format", "json").stdout)
    assert sorted(dry["removed"]) == ["segments/deadbeef-old", "snapshots/.tmp-crashed"] and dry["dry_run"]
    assert old.exists()
    res = cli("index", "gc", str(idx), "--older-than", "1h")
    assert res.exit_code == 0 and "removed 2" in res.stdout
    assert not old.exists() and not stale_tmp.exists() and new.exists()
    assert index_tables(idx) == before
    assert gc_index(idx, older_than_seconds=0)["removed"] == ["segments/deadbeef-new"]


@pytest.mark.parametrize("command", [
    ["index", "info"], ["index", "verify"], ["index", "lookup", "{idx}", "some text"], ["index", "compact"],
    ["index", "gc"],
])
def test_missing_index_exits_4(command: list[str], tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    args = [a.replace("{idx}", str(missing)) for a in command]
    if "{idx}" not in command:
        args.append(str(missing))
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 4, res.output
    assert "not a probe index" in res.stderr and str(missing) in res.stderr
    assert not missing.exists()  # and nothing was created there


def test_index_without_snapshot_exits_4(tmp_path: Path) -> None:
    from probe.index import format as fmt

    fmt.create_or_check_spec(tmp_path / "idx", TextSpec())
    res = CliRunner().invoke(main, ["index", "info", str(tmp_path / "idx")])
    assert res.exit_code == 4 and "no committed snapshot" in res.stderr


# --------------------------------------------------------------------------- bad inputs
GOOD_LINES = [json.dumps({"text": f"document number {i} has a few plain words"}) for i in range(6)]


def _jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def bad_malformed(d: Path) -> Path:
    return _jsonl(d / "malformed.jsonl", GOOD_LINES[:2] + ['{"text": "trailing comma",}'] + GOOD_LINES[2:])


def bad_utf8(d: Path) -> Path:
    p = d / "utf8.jsonl"
    p.write_bytes(("\n".join(GOOD_LINES[:2]) + "\n").encode() + b'{"text": "bad \xff byte"}\n'
                  + ("\n".join(GOOD_LINES[2:]) + "\n").encode())
    return p


def bad_missing_field(d: Path) -> Path:
    return _jsonl(d / "missing.jsonl", GOOD_LINES[:2] + ['{"body": "no text here"}'] + GOOD_LINES[2:])


def bad_empty_docs(d: Path) -> Path:
    return _jsonl(d / "empty.jsonl", GOOD_LINES[:2] + ['{"text": "   \\t "}', '{"text": ""}'] + GOOD_LINES[2:])


def bad_missing_column(d: Path) -> Path:
    p = d / "nocol.parquet"
    pq.write_table(pa.table({"body": ["a b c"]}), p)
    return p


def bad_truncated_gz(d: Path) -> Path:
    raw = gzip.compress(("\n".join(GOOD_LINES * 200) + "\n").encode())
    p = d / "trunc.jsonl.gz"
    p.write_bytes(raw[: len(raw) // 2])
    return p


def bad_truncated_zst(d: Path) -> Path:
    import zstandard

    raw = zstandard.ZstdCompressor().compress(("\n".join(GOOD_LINES * 200) + "\n").encode())
    p = d / "trunc.jsonl.zst"
    p.write_bytes(raw[: len(raw) - 3])
    return p


def bad_truncated_parquet(d: Path) -> Path:
    p = d / "trunc.parquet"
    write_parquet(p, make_docs(50, seed=9))
    p.write_bytes(p.read_bytes()[:-100])
    return p


def bad_bitflip_parquet(d: Path) -> Path:
    p = d / "flip.parquet"
    pq.write_table(pa.table({"text": make_docs(200, seed=9)}), p, write_page_checksum=True, compression="zstd")
    col = pq.ParquetFile(p).metadata.row_group(0).column(0)
    start = col.dictionary_page_offset if col.has_dictionary_page else col.data_page_offset
    data = bytearray(p.read_bytes())
    data[start + col.total_compressed_size // 2] ^= 0x10
    p.write_bytes(bytes(data))
    return p


def bad_unreadable(d: Path) -> Path:
    return d / "does-not-exist.jsonl"


# (writer, expected location in the message, skippable: counted under --skip-bad-records with this reason)
BAD_INPUTS = {
    "malformed-jsonl": (bad_malformed, ":line 3", "invalid JSON"),
    "invalid-utf8": (bad_utf8, ":line 3", "invalid UTF-8"),
    "missing-field": (bad_missing_field, ":line 3", "missing field"),
    "empty-docs": (bad_empty_docs, ":line 3", "empty text"),
    "missing-column": (bad_missing_column, "text column 'text' not found; available columns: body", None),
    "truncated-gz": (bad_truncated_gz, "compressed stream truncated", None),
    "truncated-zst": (bad_truncated_zst, "compressed stream truncated", None),
    "truncated-parquet": (bad_truncated_parquet, "Parquet magic bytes not found", None),
    "bitflip-parquet": (bad_bitflip_parquet, "corrupt Parquet data in row group 0", None),
    "unreadable-path": (bad_unreadable, "no such file or directory", None),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_exit_3_naming_file_and_location(case: str, tmp_path: Path) -> None:
    writer, where, _reason = BAD_INPUTS[case]
    path = writer(tmp_path)
    idx = tmp_path / "idx"
    res = CliRunner().invoke(main, ["index", "build", str(path), "--index", str(idx), "--workers", "1",
                                    "--silent"])
    assert res.exit_code == 3, res.output
    assert str(path) in res.stderr and where in res.stderr, res.stderr
    assert res.stdout == ""
    if (idx / "snapshots").exists():
        assert list((idx / "snapshots").glob("*.json")) == []  # nothing of the bad shard was committed


@pytest.mark.parametrize("case", sorted(c for c, v in BAD_INPUTS.items() if v[2]))
def test_bad_records_skipped_and_counted(case: str, tmp_path: Path) -> None:
    writer, _where, reason = BAD_INPUTS[case]
    path = writer(tmp_path)
    idx = tmp_path / "idx"
    res = CliRunner().invoke(main, ["index", "build", str(path), "--index", str(idx), "--workers", "1",
                                    "--silent", "--skip-bad-records", "--format", "json"])
    assert res.exit_code == 0, res.output
    skipped = 2 if case == "empty-docs" else 1
    assert json.loads(res.stdout)["skipped_records"] == skipped
    info = json.loads(CliRunner().invoke(main, ["index", "info", str(idx), "--format", "json"]).stdout)
    assert info["totals"]["skipped_records"] == skipped
    assert info["totals"]["skipped_reasons"] == {reason: skipped}
    assert info["totals"]["docs"] == len(GOOD_LINES)
    assert info["shards"][0]["skipped_records"] == skipped
    snap = open_index(idx).snapshot
    part = next(iter(snap.shards.values()))["parts"]["0"]
    assert part["skipped_examples"] and f"{path}:line 3" in part["skipped_examples"][0]


def test_container_damage_is_not_skippable(tmp_path: Path) -> None:
    """--skip-bad-records skips records, never a damaged container (it would index part of a shard)."""
    for writer in (bad_truncated_gz, bad_truncated_zst, bad_truncated_parquet, bad_bitflip_parquet):
        path = writer(tmp_path)
        res = CliRunner().invoke(main, ["index", "build", str(path), "--index", str(tmp_path / "idx"),
                                        "--workers", "1", "--silent", "--skip-bad-records"])
        assert res.exit_code == 3 and str(path) in res.stderr


def test_good_shards_commit_when_another_fails(tmp_path: Path) -> None:
    good = write_jsonl(tmp_path / "good.jsonl", make_docs(20, seed=2))
    bad = bad_malformed(tmp_path)
    idx = tmp_path / "idx"
    with pytest.raises(InputError, match=r"(?s)1 shard part\(s\) failed.*malformed.jsonl:line 3"):
        build_index([str(good), str(bad)], idx, TextSpec(), ONE)
    assert open_index(idx).totals()["docs"] == 20  # the good shard is committed; re-run resumes


def test_large_record_limit(tmp_path: Path) -> None:
    big = " ".join(random.Random(0).choice(["alpha", "beta", "gamma", "delta"]) for _ in range(250_000))
    path = write_jsonl(tmp_path / "big.jsonl", ["small document here", big])
    cfg = BuildConfig(workers=1, max_record_bytes=1 << 20)
    with pytest.raises(InputError, match=r"big.jsonl:line 2: line of [\d,]+ bytes exceeds max_record_bytes"):
        build_index([str(path)], tmp_path / "idx", TextSpec(), cfg)
    res = build_index([str(path)], tmp_path / "idx2", TextSpec(),
                      BuildConfig(workers=1, max_record_bytes=1 << 20, skip_bad_records=True))
    assert res.skipped_records == 1 and res.docs == 1
    res = build_index([str(path)], tmp_path / "idx3", TextSpec(), ONE)  # default limit: indexed
    assert res.docs == 2 and res.tokens == 250_003


@pytest.mark.slow
def test_fifty_megabyte_single_document(tmp_path: Path) -> None:
    rng = random.Random(0)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
    chunks, size = [], 0
    while size < 50_000_000:
        w = rng.choice(words)
        chunks.append(w)
        size += len(w) + 1
    text = " ".join(chunks)
    path = write_jsonl(tmp_path / "big.jsonl", [text])
    res = build_index([str(path)], tmp_path / "idx", TextSpec(), ONE)
    assert res.docs == 1 and res.tokens == len(chunks)
    reader = open_index(tmp_path / "idx")
    probe_text = " ".join(chunks[1000:1013])
    tb = Tokenizer(reader.spec).tokenize([probe_text])
    h, _, _ = kernels.ngram_hashes(tb.token_hashes, tb.doc_token_ends, 13, 1)
    assert reader.lookup("surface", 13, h).found.all()


# --------------------------------------------------------------------------- hf tokenizer build
def test_build_with_hf_tokenizer_directory(tmp_path: Path) -> None:
    from test_kernels import make_hf_dir

    d = make_hf_dir(tmp_path / "tok")
    texts = ["the cat sat on the mat", "the dog sat on the log today", "a quick brown fox"]
    shard = write_jsonl(tmp_path / "s.jsonl", texts)
    res = CliRunner().invoke(main, ["index", "build", str(shard), "--index", str(tmp_path / "idx"), "--tokenizer",
                                    f"hf:{d}", "--n", "2", "--workers", "1", "--silent"])
    assert res.exit_code == 0, res.output
    reader = open_index(tmp_path / "idx")
    assert reader.spec.tokenizer_sha256 and not (d / "EXECUTED").exists()
    tb = Tokenizer(reader.spec).tokenize(texts)
    h, _, _ = kernels.ngram_hashes(tb.token_hashes, tb.doc_token_ends, 2, 1)
    assert reader.lookup("surface", 2, h).found.all()
    # a changed tokenizer.json is a changed spec
    data = json.loads((d / "tokenizer.json").read_text())
    data["model"]["vocab"]["zzzz"] = max(data["model"]["vocab"].values()) + 1
    (d / "tokenizer.json").write_text(json.dumps(data))
    with pytest.raises(SpecMismatchError, match="tokenizer_sha256"):
        build_index([str(shard)], tmp_path / "idx", TextSpec(tokenizer=f"hf:{d}", ns=(2,)), ONE)


# --------------------------------------------------------------------------- real text (../shared/data)
@pytest.mark.shared
def test_real_text_counts_against_python_oracle(shared_data: Path, tmp_path: Path) -> None:
    """≥ 1,000 random n-grams of real corpus text: count and doc frequency equal a tuple Counter."""
    shard = shared_data / "corpus" / "shards" / "corpus-00004.parquet"
    if not shard.exists():
        pytest.skip(f"{shard} not found")
    table = pq.ParquetFile(shard).read_row_group(0, columns=["text"])
    rng = random.Random(20261122)
    texts = [t for t in table.column("text").to_pylist() if t and not t.isspace()]
    texts = [texts[i] for i in sorted(rng.sample(range(len(texts)), 600))]
    write_parquet(tmp_path / "real.parquet", texts, row_group_size=200)
    spec = TextSpec(ns=(2, 5, 13))
    build_index([str(tmp_path / "real.parquet")], tmp_path / "idx", spec, ONE)
    reader = open_index(tmp_path / "idx")
    tokens_per_doc = [ref_words(ref_normalize(t)) for t in texts]
    from helpers import ref_ngram_hash, ref_token_hash

    checked = 0
    for n in spec.ns:
        count: Counter[tuple[str, ...]] = Counter()
        docs: Counter[tuple[str, ...]] = Counter()
        for toks in tokens_per_doc:
            grams = [tuple(toks[i:i + n]) for i in range(len(toks) - n + 1)]
            count.update(grams)
            docs.update(set(grams))
        picked = rng.sample(sorted(count), min(len(count), 400))
        hashes = np.array([ref_ngram_hash([ref_token_hash(t) for t in g]) for g in picked], np.uint64)
        res = reader.lookup("surface", n, hashes)
        assert res.counts.tolist() == [count[g] for g in picked]
        assert res.docs.tolist() == [docs[g] for g in picked]
        checked += len(picked)
        # an n-gram that is not in the corpus is not found (hash matches are hash matches)
        absent = np.array([ref_ngram_hash([ref_token_hash(t) for t in ("zqxv", "wvut") + ("a",) * (n - 2)])],
                          np.uint64)
        assert reader.lookup("surface", n, absent).counts.tolist() == [0]
    assert checked >= 1000
    totals = reader.totals()
    assert totals["docs"] == len(texts) and totals["tokens"] == sum(len(t) for t in tokens_per_doc)


def test_changed_row_groups_per_part_is_refused(tmp_path: Path) -> None:
    shard = write_parquet(tmp_path / "a.parquet", make_docs(80, seed=6), row_group_size=20)  # 4 row groups
    idx = tmp_path / "idx"
    build_index([str(shard)], idx, TextSpec(), BuildConfig(workers=1, row_groups_per_part=1))
    res = CliRunner().invoke(main, ["index", "build", str(shard), "--index", str(idx), "--workers", "1",
                                    "--silent", "--row-groups-per-part", "2"])
    assert res.exit_code == 2 and "committed with 4 parts, now 2" in res.stderr
    res = CliRunner().invoke(main, ["index", "build", str(shard), "--index", str(idx), "--workers", "1",
                                    "--silent", "--row-groups-per-part", "1"])
    assert res.exit_code == 0 and "committed 0 part(s), 4 already indexed" in res.stdout


def test_changed_shard_content_under_the_same_path_is_refused(tmp_path: Path) -> None:
    """Identity is the content fingerprint; a rewritten file under a committed path would double-count."""
    path = write_jsonl(tmp_path / "a.jsonl", ["first version of the document text"])
    idx = tmp_path / "idx"
    build_index([str(path)], idx, TextSpec(ns=(2,)), ONE)
    write_jsonl(path, ["second version of the document text"])
    res = CliRunner().invoke(main, ["index", "build", str(path), "--index", str(idx), "--n", "2", "--workers", "1",
                                    "--silent"])
    assert res.exit_code == 3 and str(path) in res.stderr and "shard changed since it was indexed" in res.stderr
    assert open_index(idx).totals()["docs"] == 1
    # the same new content under a new path is simply another shard
    other = tmp_path / "b.jsonl"
    other.write_bytes(path.read_bytes())
    assert build_index([str(other)], idx, TextSpec(ns=(2,)), ONE).parts_committed == 1
    assert open_index(idx).totals()["shards"] == 2


def test_relative_hf_tokenizer_is_stored_in_the_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Built with a relative hf: path, the index works from any directory and after being moved:
    it reads its own copy of tokenizer.json (named by the sha256 the spec records)."""
    from test_kernels import make_hf_dir

    from probe.index.stats import lookup_text
    from probe.scan import scan_dataset

    work = tmp_path / "work"
    make_hf_dir(work / "tok")
    texts = ["the cat sat on the mat", "the dog sat on the log today", "a quick brown fox"]
    write_jsonl(work / "s.jsonl", texts)
    monkeypatch.chdir(work)
    build_index(["s.jsonl"], "idx", TextSpec(tokenizer="hf:tok", ns=(2,)), ONE)
    sha = open_index("idx").spec.tokenizer_sha256
    assert (work / "idx" / "tokenizers" / f"{sha}.json").read_bytes() == (work / "tok" / "tokenizer.json").read_bytes()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert lookup_text(work / "idx", "the cat sat")["found"] == 2
    moved = tmp_path / "moved-idx"
    shutil.move(str(work / "idx"), moved)
    shutil.rmtree(work / "tok")  # not even the original file is needed any more
    reader = open_index(moved)
    assert reader.spec.tokenizer == "hf:tok" and reader.spec.fingerprint() == TextSpec.from_dict(
        reader.spec.to_dict()).fingerprint()  # where the copy lives is not part of the spec's identity
    assert lookup_text(moved, "the dog sat on")["found"] == 3
    dataset = write_jsonl(elsewhere / "d.jsonl", ["the cat sat on the mat"])
    summary = scan_dataset(dataset, moved, out_dir=elsewhere / "out").summary
    assert summary.examples == 1


@pytest.mark.parametrize("uri", ["s3://bucket/idx", "gs://b/i", Path("s3://bucket/idx")])
def test_index_directory_uri_is_refused_by_the_library(uri: str | Path, small_corpus: Corpus, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    with pytest.raises(ConfigError, match="URI; an index must be a local directory"):
        build_index(small_corpus.paths[:1], uri, TextSpec(), ONE)
    with pytest.raises(ConfigError, match="URI"):
        open_index(uri)
    with pytest.raises(ConfigError, match="URI"):
        gc_index(uri)
    assert list(cwd.iterdir()) == []  # no ./s3:/bucket/idx
