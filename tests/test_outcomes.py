"""One outcome per example (probe.outcomes), stitched-span provenance, and chat system prompts.

A tiny corpus plants each case: a short instruction and a short response in two
different documents (a pair seen apart), the same pair in one document, a boilerplate
sentence in 12 documents, and a span whose first half is in one document and second
half in another (stitched).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_scan import write_jsonl

from probe.config import BuildConfig, TextSpec
from probe.errors import ConfigError
from probe.index.build import build_index
from probe.outcomes import action, cross_document_only, guess_dataset_kind, outcomes, resolve_dataset_kind
from probe.scan import ScanConfig, scan_dataset
from probe.scan_output import ScanSummary

Q = "which river flows north through the old granite"  # 8 tokens: one 8-gram
R = "canyon near the silver mountain town of ashford"  # 8 tokens
Q2 = "what bird nests under the copper bell tower"
R2 = "the grey heron that fishes in the quiet moat"
BOILER = "click here to subscribe to our newsletter for weekly updates and offers"
STITCH = ("one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
          "seventeen eighteen nineteen twenty twentyone twentytwo twentythree twentyfour").split()
FIRST_HALF = " ".join(STITCH[:12])  # tokens 0..11: 5 8-grams
SECOND_HALF = " ".join(STITCH[4:])  # tokens 4..23: 13 8-grams; every 8-gram of the 24 tokens is in one of the two


def corpus() -> list[str]:
    docs = [f"Quiz notes: {Q}.", f"Travel notes: {R}.", f"Birds: {Q2}? Answer: {R2}.",
            f"Counting A: {FIRST_HALF} stop.", f"Counting B: {SECOND_HALF} stop."]
    return docs + [f"Footer {i}: {BOILER}." for i in range(12)]


EXAMPLES: list[dict[str, Any]] = [
    {"id": "apart", "instruction": Q, "output": R},
    {"id": "together", "instruction": Q2, "output": R2},
    {"id": "boiler", "instruction": BOILER, "output": BOILER},
    {"id": "stitched", "instruction": " ".join(STITCH), "output": "ok"},
    {"id": "single", "instruction": FIRST_HALF, "output": R},  # instruction alone in d3, response in d1
    {"id": "novel", "instruction": "Describe a purple submarine that sings opera to lonely whales at midnight",
     "output": "It hums softly to them."},
]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("outcomes")
    texts = corpus()
    shard = root / "corpus.parquet"
    pq.write_table(pa.table({"text": texts, "id": [f"d{i}" for i in range(len(texts))]}), shard)
    build_index([str(shard)], root / "idx", TextSpec(), BuildConfig(workers=1, id_field="id"))
    return {"root": root, "idx": root / "idx", "data": write_jsonl(root / "train.jsonl", EXAMPLES)}


def rows_of(world: dict[str, Path], data: Path | None = None, **config: Any) -> dict[str, dict[str, Any]]:
    result = scan_dataset(data or world["data"], world["idx"], None, ScanConfig(**config))
    return {r["id"]: r for r in result.examples.to_pylist()}


# --------------------------------------------------------------------------- the rule, as arrays
def test_boilerplate_only_matches_stay_novel_and_a_leak_wins_over_coverage() -> None:
    verdict = np.array(["seen", "partial", "novel", "partial", "unassessable"])
    rare = np.array([0.0, 0.0, 0.0, 0.3, 0.0])
    leaked = np.array([False, False, True, False, False])
    assert outcomes(verdict, rare, leaked).tolist() == ["novel", "novel", "leaked", "partial", "unassessable"]


def test_cross_document_pairs_need_both_fields_an_exact_sample_and_no_single_field_flag() -> None:
    t, f = True, False
    got = cross_document_only(np.array([t, t, t, t, f]), np.array([t, t, t, f, t]), np.array([t, t, t, t, t]),
                              np.array([f, t, f, f, f]), np.array([t, t, f, t, t]), np.array([f, f, f, f, f]))
    assert got.tolist() == [True, False, False, False, False]
    assert not cross_document_only(*(np.array([x]) for x in (t, t, t, f, t, t))).any()  # one field alone leaked


def test_dataset_kind_is_guessed_from_the_path_and_eval_novel_is_clean() -> None:
    assert [guess_dataset_kind(p) for p in ("benchmarks/mmlu/test.jsonl", "gsm8k/dev.jsonl", "HumanEval.jsonl",
                                            "data/val-00000.parquet", "instruct/alpaca_5000/alpaca.jsonl",
                                            "gsm8k_train/train.jsonl", "<records>", "benchmarks/bbh/bbh.jsonl",
                                            "/tmp/test_golden0/data.jsonl")] == \
        ["eval", "eval", "eval", "eval", "train", "train", "train", "eval", "train"]
    assert resolve_dataset_kind("train", "test.jsonl") == ("train", False)
    assert resolve_dataset_kind("auto", "test.jsonl") == ("eval", True)
    with pytest.raises(ConfigError, match="dataset kind"):
        resolve_dataset_kind("benchmark", "x")
    assert action("eval", "novel")[0] == "clean" and "teach" not in action("eval", "novel")[1]
    assert "teach explicitly" in action("train", "novel")[1]


# --------------------------------------------------------------------------- the scan
def test_a_pair_seen_only_in_different_documents_is_not_leaked(world) -> None:
    rows = rows_of(world)
    apart, together = rows["apart"], rows["together"]
    assert apart["contaminated_default"] is True and apart["joint_same_doc"] is False
    assert apart["cross_document_only"] is True and apart["outcome"] == "seen"
    assert together["contaminated_default"] is True and together["joint_same_doc"] is True
    assert together["cross_document_only"] is False and together["outcome"] == "leaked"
    # one field alone in the corpus is leaked whatever the other field matched
    single = rows["single"]
    assert single["joint_same_doc"] is False and single["response_matched_8"] == 1
    assert single["outcome"] == "leaked" and single["cross_document_only"] is False


def test_boilerplate_only_example_is_novel_not_seen(world) -> None:
    row = rows_of(world)["boiler"]
    assert row["verdict"] == "seen" and row["whole_rare_token_coverage_8"] == 0.0
    assert row["contaminated_default"] is False and row["outcome"] == "novel"


def test_no_example_is_both_contaminated_and_to_be_taught(world) -> None:
    rows = rows_of(world)
    assert rows["novel"]["outcome"] == "novel"
    for r in rows.values():
        if r["contaminated_default"] and not r["cross_document_only"]:
            assert r["outcome"] == "leaked", r["id"]
        assert not (r["outcome"] == "novel" and r["contaminated_default"]), r["id"]


def test_summary_counts_outcomes_and_records_the_kind(world, tmp_path: Path) -> None:
    result = scan_dataset(world["data"], world["idx"], tmp_path / "out")
    summary = result.summary
    assert sum(summary.outcomes.values()) == summary.examples
    assert summary.outcomes["leaked"] == sum(r == "leaked" for r in result.examples.column("outcome").to_pylist())
    assert (summary.dataset.kind, summary.dataset.kind_guessed) == ("train", True)
    assert summary.config.outcome_definition == "default"
    evals = scan_dataset(write_jsonl(tmp_path / "test.jsonl", EXAMPLES), world["idx"]).summary
    assert evals.dataset.kind == "eval"
    assert scan_dataset(world["data"], world["idx"], None, ScanConfig(dataset_kind="eval")).summary.dataset.kind \
        == "eval"
    # a summary written before outcomes existed still loads, with empty counts and the train kind
    old = summary.to_dict()
    del old["outcomes"], old["dataset"]["kind"], old["dataset"]["kind_guessed"], old["config"]["outcome_definition"]
    for g in old["groups"].values():
        del g["outcomes"]
    loaded = ScanSummary.from_dict(old)
    assert loaded.outcomes == {} and loaded.dataset.kind == "train" and loaded.config.outcome_definition == "default"


def test_outcome_definition_is_validated() -> None:
    with pytest.raises(ConfigError, match="outcome definition"):
        ScanConfig(outcome_definition="nope")
    with pytest.raises(ConfigError, match="dataset kind"):
        ScanConfig(dataset_kind="bench")


# --------------------------------------------------------------------------- provenance of the span
def test_a_stitched_span_names_the_document_holding_most_of_it_and_verifies_as_stitched(world) -> None:
    row = rows_of(world, verify=True)["stitched"]
    assert row["instruction_longest_match_tokens"] == len(STITCH)
    # the second document holds 20 of the 24 tokens (13 n-grams against the first's 5)
    assert (row["match_doc_id"], row["match_kind"], row["match_documents"]) == ("d4", "stitched", 2)
    assert row["match_span_tokens"] == 20 and f"[[{SECOND_HALF}]]" in row["match_snippet"]
    assert row["match_stitched_from"] == ["d3", "d4"]  # the documents it was stitched from, in span order
    assert row["match_verified"] is True  # its part of the span is really there: not a hash collision


def test_a_span_in_one_document_is_single(world) -> None:
    rows = rows_of(world, verify=True)
    for name, doc in (("together", "d2"), ("single", "d3")):
        r = rows[name]
        assert (r["match_doc_id"], r["match_kind"], r["match_documents"], r["match_verified"]) == \
            (doc, "single", 1, True), name
        assert r["match_stitched_from"] is None, name
    assert rows["novel"]["match_kind"] is None and rows["novel"]["match_documents"] is None


def test_span_source_picks_the_document_in_most_of_the_span_and_counts_the_cover() -> None:
    from probe.match_provenance import span_source

    def s(*keys: int) -> np.ndarray:
        return np.array(keys, np.uint64)

    src = span_source([s(1), s(1, 2), s(2), s(2), s(2, 3), s()])
    assert (src.doc_key, src.first, src.last, src.documents, src.kind, src.cover) == (2, 1, 4, 2, "stitched", (1, 2))
    one = span_source([s(5, 7), s(5), s(5, 9)])
    assert (one.doc_key, one.documents, one.kind) == (5, 1, "single")
    assert span_source([s(), s()]) is None


# --------------------------------------------------------------------------- chat system prompts
def test_a_chat_dataset_and_its_alpaca_twin_get_the_same_verdicts(world, tmp_path: Path) -> None:
    chat = [{"id": ex["id"], "messages": [{"role": "system", "content": "You are a helpful assistant."},
                                          {"role": "user", "content": ex["instruction"]},
                                          {"role": "assistant", "content": ex["output"]}]} for ex in EXAMPLES]
    twin = rows_of(world)
    chats = rows_of(world, write_jsonl(tmp_path / "chat.jsonl", chat))
    keys = ("verdict", "outcome", "contaminated_default", "coverage")
    assert {i: tuple(r[k] for k in keys) for i, r in chats.items()} == \
        {i: tuple(r[k] for k in keys) for i, r in twin.items()}


def test_the_report_names_a_stitched_span_s_documents(world, tmp_path: Path) -> None:
    from probe.report.html import render_html
    from probe.report.model import load_report

    scan_dataset(world["data"], world["idx"], tmp_path / "r", ScanConfig(verify=True))
    html = render_html(load_report(tmp_path / "r"))
    assert "verified; stitched from 2 documents: d3, d4 (this one holds 20 tokens)" in html
    assert "hash collision" not in html
