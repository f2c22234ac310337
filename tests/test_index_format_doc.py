"""docs/index-format.md is executable: its reference code and DuckDB examples run against a real index."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

from helpers import REPO, Corpus, IndexTables, index_tables, ref_ngram_hashes, ref_token_hash
from probe import kernels
from probe.config import BuildConfig, TextSpec
from probe.index.build import build_index
from probe.index.maintenance import verify_index

DOC = REPO / "docs" / "index-format.md"


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(), flags=re.S)


@pytest.fixture(scope="module")
def built(corpus: Corpus, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, IndexTables]:
    idx = tmp_path_factory.mktemp("doc") / "idx"
    build_index(corpus.paths, idx, TextSpec(), BuildConfig(workers=1))
    assert verify_index(idx)["orphans"] == []  # the glob examples assume no unreferenced segments
    return idx, index_tables(idx)


def sql(index: Path, i: int) -> str:
    return blocks("sql")[i].replace("indexes/demo", str(index))


def test_reference_hash_code_matches_kernels() -> None:
    ns: dict = {}
    exec(blocks("python")[0], ns)  # noqa: S102 - our own documentation; its asserts run here
    rng = random.Random(3)
    for seed in (0, 1, 2**64 - 1):
        for token in ("", "a", "café", "東京", "<num>", "x" * 40):
            cps = np.frombuffer(token.encode("utf-32-le"), np.uint32)
            assert ns["token_hash"](token, seed) == int(kernels.hash_codepoints(cps, np.uint64(seed)))
        ids = [rng.randrange(0, 2**31) for _ in range(20)]
        assert [ns["token_id_hash"](i, seed) for i in ids] == kernels.hash_token_ids(np.array(ids), np.uint64(seed)).tolist()
    for n in (1, 2, 8, 13):
        toks = np.array([rng.randrange(2**64) for _ in range(30)], np.uint64)
        h, _, _ = kernels.ngram_hashes(toks, np.array([30]), n, 1)
        assert h.tolist() == [ns["ngram_hash"](toks[i:i + n].tolist()) for i in range(31 - n)]
        assert h.tolist() == ref_ngram_hashes(toks.tolist(), n)
    assert ns["token_hash"]("hello") == ref_token_hash("hello")


def top10(tables: IndexTables, n: int = 13) -> list[tuple[int, int, int]]:
    return sorted(tables.tables[("surface", n)], key=lambda r: (-r[1], r[0]))[:10]


def test_sql_top_ngrams(built) -> None:
    index, tables = built
    rows = duckdb.sql(sql(index, 0)).fetchall()
    assert rows == top10(tables)
    assert rows[0][1] > 1  # the shared passages repeat


def test_sql_lookup_given_hashes(built) -> None:
    index, tables = built
    present = [h for h, _c, _d in tables.tables[("surface", 13)][::50]]
    big = [h for h, _c, _d in tables.tables[("surface", 13)] if h >= 2**63][:3]  # UBIGINT, exact
    wanted = sorted(set(present + big))
    query = re.sub(r"IN \([^)]*\)", "IN (" + ", ".join(map(str, [*wanted, 1])) + ")", sql(index, 1))
    rows = duckdb.sql(query).fetchall()
    expected = {h: (c, d) for h, c, d in tables.tables[("surface", 13)]}
    assert rows == [(h, *expected[h]) for h in wanted]  # hash 1 is absent: no row


def test_sql_document_samples(built) -> None:
    index, tables = built
    rows = duckdb.sql(sql(index, 2)).fetchall()
    assert set(rows) == tables.samples[("surface", 13)]
    assert len(rows) == len(set(rows))


def test_python_exact_form(built) -> None:
    index, tables = built
    ns: dict = {}
    exec(blocks("python")[1].replace("indexes/demo", str(index)), ns)  # noqa: S102
    assert ns["top"] == top10(tables)


def test_uint64_hashes_round_trip_through_duckdb(built) -> None:
    index, _ = built
    files = sorted(str(p) for p in index.glob("segments/*/view=surface/n=8.parquet"))
    via_duck = duckdb.execute("SELECT hash FROM read_parquet($f) ORDER BY hash", {"f": files}).fetchall()
    via_arrow = sorted(h for f in files for h in pq.read_table(f, columns=["hash"]).column("hash").to_pylist())
    assert [r[0] for r in via_duck] == via_arrow
    assert via_arrow[-1] >= 2**63 and via_arrow[0] < 2**63
    assert duckdb.execute("SELECT typeof(hash) FROM read_parquet($f) LIMIT 1", {"f": files}).fetchone()[0] == \
        "UBIGINT"


def test_json_examples_match_real_files(built) -> None:
    index, _ = built
    examples = [json.loads(b) for b in blocks("json")]
    header, snapshot, manifest = examples
    real_header = json.loads((index / "probe-index.json").read_text())
    assert set(header) == set(real_header) and set(header["spec"]) == set(real_header["spec"])
    assert header["spec"] == {**TextSpec().to_dict(), "unicode_version": header["spec"]["unicode_version"]}
    real_snap = json.loads(sorted((index / "snapshots").glob("*.json"))[-1].read_text())
    assert set(snapshot) == set(real_snap)
    assert set(snapshot["segments"][0]) == set(real_snap["segments"][0])
    real_shard = next(iter(real_snap["shards"].values()))
    assert set(next(iter(snapshot["shards"].values()))) == set(real_shard)
    assert set(next(iter(next(iter(snapshot["shards"].values()))["parts"].values()))) == set(
        next(iter(real_shard["parts"].values())))
    real_manifest = json.loads((index / real_snap["segments"][0]["manifest"]).read_text())
    assert set(manifest) == set(real_manifest)
    assert set(manifest["files"][0]) == set(real_manifest["files"][0])
    assert set(manifest["docs_file"]) == set(real_manifest["docs_file"])


def test_documented_docs_columns_and_schema(built) -> None:
    index, _ = built
    seg = next(index.glob("segments/*"))
    docs_schema = pq.read_schema(seg / "docs.parquet")
    assert docs_schema.names == ["doc", "shard", "row", "id", "source", "tokens"]
    ngram = pq.ParquetFile(seg / "view=surface" / "n=13.parquet")
    assert ngram.schema_arrow.names == ["hash", "doc0"]
    assert [str(t) for t in ngram.schema_arrow.types] == ["uint64", "uint32"]
    side = pq.ParquetFile(seg / "repeated" / "view=surface" / "n=13.parquet")
    assert side.schema_arrow.names == ["hash", "count", "docs", "doc_sample"]
    assert [str(t) for t in side.schema_arrow.types] == ["uint64", "uint64", "uint32", "list<element: uint32>"]
    text = DOC.read_text()
    for name in docs_schema.names + ngram.schema_arrow.names + side.schema_arrow.names:
        assert f"`{name}`" in text
