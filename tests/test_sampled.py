"""A sampled index (sample_mod K > 1): estimates marked as such, definitions that need every n-gram unavailable.

Before: a verbatim copy scanned against a sample_mod 8 index got token coverage ≈ 0.45 (only the
tokens of sampled n-grams count as covered), verdict ``partial``, and ``llama2`` reported 0
contaminated — a number it cannot compute from a sample.
"""

from __future__ import annotations

import json

import pytest

from helpers import make_docs, write_parquet
from probe.config import BuildConfig, TextSpec
from probe.index.build import build_index
from probe.scan import scan_dataset

SPAN_OR_ANY = {"llama2", "gpt3", "lmeval", "gpt4"}


@pytest.fixture(scope="module", params=[4, 16])
def sampled_scan(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    k = request.param
    tmp = tmp_path_factory.mktemp(f"sampled{k}")
    docs = make_docs(120, seed=4, min_words=150, max_words=200)
    write_parquet(tmp / "corpus" / "shard.parquet", docs)
    build_index([str(tmp / "corpus")], tmp / "index", TextSpec(ns=(8, 13), sample_mod=k), BuildConfig(workers=1))
    data = tmp / "copies.jsonl"
    data.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs[:40]))
    res = scan_dataset(data, tmp / "index")
    return k, res.summary.to_dict(), res.examples.to_pylist()


def test_no_definition_reports_a_count_it_cannot_compute(sampled_scan) -> None:
    _k, summary, rows = sampled_scan
    assert summary["index"]["approximate"] is True
    assert summary["measures"]["ngram"]["estimate"] is True
    unavailable = summary["unavailable_definitions"]
    assert set(unavailable) == SPAN_OR_ANY
    assert all("sampled index" in why for d, why in unavailable.items() if d != "gpt4")
    # an unavailable definition has no count at all (never 0) and a null column
    assert not SPAN_OR_ANY & set(summary["contaminated"])
    for d in SPAN_OR_ANY:
        assert all(r[f"contaminated_{d}"] is None for r in rows), d


def test_verbatim_copies_are_estimated_fully_covered_and_flagged(sampled_scan) -> None:
    k, summary, rows = sampled_scan
    for r in rows:
        # the estimate is the sampled n-grams' matched share: 1.0 for a copy (it was ~1/K·n before)
        assert r["whole_token_coverage_8"] == 1.0, (k, r["id"])
        assert r["whole_token_coverage_low"] <= 1.0 and r["whole_token_coverage_high"] == pytest.approx(1.0)
        assert r["whole_token_coverage_low"] > 0.5
        assert r["verdict"] == "seen"
    assert summary["contaminated"]["default"] >= 0.95 * len(rows)
