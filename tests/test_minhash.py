"""The MinHash near-duplicate measure: chunking, sketching, LSH keys, exact containment, scan columns."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from helpers import write_parquet
from probe.cli import main
from probe.config import BuildConfig, TextSpec
from probe.errors import ConfigError
from probe.index.build import build_index
from probe.index.side_tables import SideDocs, SideTableRequest
from probe.measures.minhash import (
    BUILD_DEFAULTS,
    MinHashBuilder,
    band_keys,
    configure,
    distinct_sets,
    signatures,
)
from probe.scan import ScanConfig, scan_dataset
from probe.text.tokenizers import Tokenizer

pytest.importorskip("rensa")

SPEC = TextSpec(ns=(8, 13))
VOCAB = [f"v{i}" for i in range(5000)]


def _doc(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(VOCAB) for _ in range(words))


def _side_docs(texts: list[str]) -> SideDocs:
    tb = Tokenizer(SPEC).tokenize(texts, "surface", with_offsets=True)
    return SideDocs(texts, np.arange(len(texts), dtype=np.int64) + 100, 0, tb)


@pytest.mark.parametrize(("options", "message"), [
    ({"overlap_tokens": 3, "shingle": 5}, "overlap_tokens must be in"),
    ({"overlap_tokens": 256}, "overlap_tokens must be in"),
    ({"num_perm": 64, "band_rows": 3}, "multiple of band_rows"),
    ({"shingle": 0}, ">= 1"),
    ({"seed": True}, "non-negative integer"),
    ({"chunks": 3}, "unknown minhash option"),
])
def test_bad_build_options_are_refused(options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        configure(options, SPEC)


def test_chunks_cover_every_shingle_once_with_the_configured_overlap() -> None:
    rng = random.Random(1)
    texts = [_doc(rng, 600), _doc(rng, 3), _doc(rng, 256), _doc(rng, 257)]
    builder = MinHashBuilder(SPEC, configure({"shingle": 5}, SPEC))
    builder.add(_side_docs(texts))
    chunks = builder.tables()["chunks"].to_pydict()
    spans = list(zip(chunks["doc"], chunks["token_start"], chunks["token_end"], strict=True))
    # 600 tokens: starts 0, 224, 448 (stride 256 - 32); a 3-token doc has no 5-token shingle; 257 needs two chunks
    assert spans == [(0, 0, 256), (0, 224, 480), (0, 448, 600), (2, 0, 256), (3, 0, 256), (3, 224, 257)]
    assert chunks["row"] == [100, 100, 100, 102, 103, 103]
    first = texts[0].split()
    assert chunks["snippet"][1] == " ".join(first[224:])[:BUILD_DEFAULTS["snippet_chars"]]
    shingles = builder.tables()["shingles"].column("shingles").to_pylist()
    assert [len(s) for s in shingles] == chunks["shingles"]
    assert all(s == sorted(set(s)) for s in shingles)


def test_signatures_depend_on_the_set_only() -> None:
    h = np.random.default_rng(0).integers(0, 2**63, size=200, dtype=np.uint64)
    a = signatures(h, np.array([0, 200]), 64, 1)
    b = signatures(np.concatenate([h[::-1], h[:50]]), np.array([0, 250]), 64, 1)
    assert a.shape == (1, 64) and a.dtype == np.uint32 and np.array_equal(a, b)
    assert not np.array_equal(a, signatures(h, np.array([0, 200]), 64, 2))  # the seed picks the permutations


def test_band_keys_with_one_row_per_band_are_the_signature_values() -> None:
    sig = np.array([[7, 9, 11, 13]], np.uint32)
    assert band_keys(sig, 1).tolist() == [[7, (1 << 32) | 9, (2 << 32) | 11, (3 << 32) | 13]]
    two = band_keys(sig, 2)
    assert two.shape == (1, 2) and (two[0] >> np.uint64(56)).tolist() == [0, 1]
    assert band_keys(np.array([[7, 9, 11, 14]], np.uint32), 2)[0, 0] == two[0, 0]  # band 0 unchanged


def test_distinct_sets_dedupe_per_set() -> None:
    flat = np.array([5 << 32, 3 << 32, 5 << 32, 3 << 32, 9 << 32], np.uint64)
    values, offsets = distinct_sets(flat, np.array([0, 0, 0, 2, 2]), 3)
    assert values.tolist() == [3, 5, 3, 9] and offsets.tolist() == [0, 2, 2, 4]


def _perturb(words: list[str], every: int) -> list[str]:
    """A paraphrase-ish rewrite: one word in every ``every`` replaced (a synonym the corpus never has)."""
    return [f"syn{i}" if i % every == every // 2 else w for i, w in enumerate(words)]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("minhash")
    rng = random.Random(7)
    docs = [_doc(rng, rng.randint(80, 700)) for _ in range(120)]
    shard = write_parquet(root / "c.parquet", docs, row_group_size=60)
    index = root / "idx"
    build_index([str(shard)], index, SPEC, BuildConfig(workers=1), side_tables=[SideTableRequest("minhash")])
    source = docs[17].split()
    passage = source[300:340] if len(source) > 340 else source[:40]
    data = [
        {"instruction": " ".join(passage), "output": "verbatim"},
        {"instruction": " ".join(_perturb(passage, 7)), "output": "paraphrase"},
        {"instruction": _doc(random.Random(99), 40), "output": "unrelated"},
    ]
    return {"index": index, "data": data, "shard": str(shard), "source_row": 17, "source": docs[17]}


def test_verbatim_and_paraphrase_are_found_where_ngrams_miss_the_paraphrase(world: dict) -> None:
    result = scan_dataset(world["data"], world["index"], config=ScanConfig(measures=("minhash",)))
    rows = result.examples.to_pylist()
    verbatim, paraphrase, unrelated = rows
    assert verbatim["minhash_instruction_containment"] == 1.0
    assert verbatim["minhash_instruction_row"] == world["source_row"]
    assert verbatim["minhash_instruction_shard"] == world["shard"]
    # one word in seven replaced: no 8-gram of the index survives, the 3-word shingles partly do
    assert paraphrase["coverage"] == 0.0 and paraphrase["verdict"] == "novel"
    assert paraphrase["minhash_instruction_containment"] >= 0.4
    assert paraphrase["minhash_instruction_row"] == world["source_row"]
    assert paraphrase["minhash_instruction_snippet"] in world["source"]
    assert unrelated["minhash_instruction_containment"] < 0.05
    assert 0.0 <= paraphrase["minhash_instruction_jaccard"] <= paraphrase["minhash_instruction_containment"]


def test_provenance_threshold_is_a_scan_option_and_options_are_checked(world: dict) -> None:
    config = ScanConfig(measures=("minhash",), measure_options={"minhash": {"provenance_threshold": 0.9}})
    rows = scan_dataset(world["data"], world["index"], config=config).examples.to_pylist()
    assert rows[0]["minhash_instruction_row"] == world["source_row"]  # verbatim: containment 1.0
    assert rows[1]["minhash_instruction_row"] is None and rows[1]["minhash_instruction_snippet"] is None
    assert rows[1]["minhash_instruction_containment"] < 0.9
    with pytest.raises(ConfigError, match="unknown minhash scan option"):
        scan_dataset(world["data"], world["index"],
                     config=ScanConfig(measures=("minhash",), measure_options={"minhash": {"k": 1}}))


def test_summary_aggregates_distribution_and_cost(world: dict) -> None:
    summary = scan_dataset(world["data"], world["index"], config=ScanConfig(measures=("minhash",))).summary
    mh = summary.to_dict()["measures"]["minhash"]
    assert mh["available"] and mh["estimate"]
    field = mh["fields"]["instruction"]
    assert field["assessable"] == 3 and field["at_least_0.8"] == 1
    assert sum(field["containment_histogram"]["counts"]) == 3
    assert mh["corpus_chunks"] > 120 and mh["candidates_confirmed"] > 0
    assert mh["measured_cost"]["compute_seconds"] > 0 and mh["measured_cost"]["lsh_keys_in_memory_bytes"] > 0


def test_an_index_without_the_side_table_reports_minhash_unavailable(world: dict, tmp_path: Path) -> None:
    index = tmp_path / "plain"
    build_index([world["shard"]], index, SPEC, BuildConfig(workers=1))
    result = scan_dataset(world["data"], index, config=ScanConfig(measures=("minhash",)))
    info = result.summary.to_dict()["measures"]["minhash"]
    assert info["available"] is False and "no minhash side table" in info["reason"]
    assert not any(c.startswith("minhash_") for c in result.examples.column_names)  # no zeros pretending


def test_end_to_end_cli_build_with_measures_then_scan(world: dict, tmp_path: Path) -> None:
    runner = CliRunner()
    index = tmp_path / "idx"
    out = runner.invoke(main, ["index", "build", world["shard"], "--index", str(index), "--silent",
                               "--measures", "minhash,distribution"])
    assert out.exit_code == 0, out.output
    dataset = tmp_path / "d.jsonl"
    dataset.write_text("".join(json.dumps(r) + "\n" for r in world["data"]))
    report = tmp_path / "report"
    out = runner.invoke(main, ["scan", str(dataset), "--index", str(index), "--out", str(report), "--silent",
                               "--measures", "minhash,distribution", "--format", "json"])
    assert out.exit_code == 0, out.output
    columns = pq.read_schema(report / "examples.parquet").names
    for field in ("instruction", "input", "response", "whole"):
        assert f"minhash_{field}_containment" in columns and f"distribution_{field}_mean_log_freq" in columns
    summary = json.loads((report / "summary.json").read_text())
    assert summary["config"]["measures"] == ["ngram", "minhash", "distribution"]
    assert summary["measures"]["minhash"]["fields"]["instruction"]["at_least_0.8"] == 1
    assert summary["measures"]["distribution"]["kl_divergence"]["unigram"]["value"] > 0
