"""Discounts of `default`'s evidence: templates of the scanned dataset, low-information n-grams.

The planted-template test of issue 14: one corpus document holds a 27-word question stem; a
dataset of 520 items shares the stem, each with its own content. The stem's n-grams are rare in
the corpus (one document), so frequency alone calls every item contaminated (`gpt3` does); the
dataset itself says the stem is a template (it is in every item), so `default` must not. An item
copied whole into the corpus is the positive control.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from helpers import make_docs, write_parquet
from probe import kernels
from probe.config import BuildConfig, TextSpec
from probe.index.build import build_index
from probe.measures.templates import DatasetNgramFrequency, low_information
from probe.scan import ScanConfig, scan_dataset
from probe.scoring import Thresholds
from probe.text.tokenizers import Tokenizer

STEM = ("Read the following passage carefully and then answer the question that comes after it, choosing "
        "the one option that the author of the passage would most likely agree with:")
ITEMS = 520
SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "ta", "vo", "zi", "pe", "su", "ba", "do", "fu", "gi", "ho", "ja"]


def _content(rng: random.Random, words: int) -> str:
    return " ".join("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))) for _ in range(words))


@pytest.fixture(scope="module")
def stem_scan(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict], dict]:
    tmp = tmp_path_factory.mktemp("stem")
    rng = random.Random(3)
    items = [f"{STEM} {_content(rng, 40)}" for _ in range(ITEMS)]
    docs = make_docs(200, seed=5, min_words=20, max_words=60)
    docs.insert(50, f"Task description for annotators.\n\n{STEM}\n\nThanks for your help.")  # the stem, once
    docs.insert(120, f"A page that quotes one item:\n{items[7]}\nend of page")  # the positive control
    write_parquet(tmp / "corpus" / "shard.parquet", docs)
    index = tmp / "index"
    build_index([str(tmp / "corpus")], index, TextSpec(views=("surface", "pattern"), ns=(8, 13)),
                BuildConfig(workers=1))
    data = tmp / "items.jsonl"
    data.write_text("".join(json.dumps({"question": t}) + "\n" for t in items))
    res = scan_dataset(data, index, tmp / "scan")
    rows = pq.read_table(tmp / "scan" / "examples.parquet").to_pylist()
    return rows, res.summary.to_dict()


def test_a_stem_shared_by_the_dataset_is_not_contamination(stem_scan) -> None:
    rows, summary = stem_scan
    others = [r for r in rows if r["row"] != 7]
    assert len(others) == ITEMS - 1
    # frequency alone (one corpus document) calls every item contaminated ...
    assert all(r["contaminated_gpt3"] for r in others)
    # ... the dataset-side template rule does not
    flagged = sum(bool(r["contaminated_default"]) for r in others)
    assert flagged <= 0.02 * len(others), flagged
    # the match of every such item is the stem, all template
    assert all(r["whole_template_token_share"] == 1.0 for r in others)
    assert summary["contaminated"]["default"] == flagged + 1


def test_the_positive_control_is_still_flagged(stem_scan) -> None:
    rows, _ = stem_scan
    control = next(r for r in rows if r["row"] == 7)
    assert control["contaminated_default"] is True
    assert 0 < control["whole_template_token_share"] < 1


def test_the_stem_is_listed_as_a_template_with_its_counts(stem_scan) -> None:
    _, summary = stem_scan
    templates = summary["measures"]["ngram"]["templates"]
    assert templates["examples_with_template"] == ITEMS
    top = templates["top"]
    assert top and all(t["view"] == "surface" for t in top)
    # the whole stem, once: the run of its template n-grams, not each 8-gram
    assert top[0] == {"text": STEM.casefold().rstrip(":"), "view": "surface", "examples": ITEMS, "corpus_docs": 2}
    assert len(top) == 1


def test_template_thresholds_are_measure_options(tmp_path) -> None:
    # a threshold above the dataset's size turns the rule off: the stem is evidence again
    tmp = tmp_path
    rng = random.Random(9)
    items = [f"{STEM} {_content(rng, 10)}" for _ in range(30)]
    write_parquet(tmp / "corpus" / "shard.parquet", make_docs(40, seed=1) + [STEM])
    build_index([str(tmp / "corpus")], tmp / "index", TextSpec(ns=(8,)), BuildConfig(workers=1))
    data = tmp / "items.jsonl"
    data.write_text("".join(json.dumps({"question": t}) + "\n" for t in items))
    on = scan_dataset(data, tmp / "index").examples.column("contaminated_default").to_pylist()
    off = scan_dataset(data, tmp / "index", config=ScanConfig(
        measure_options={"ngram": {"template_examples": 1000}})).examples.column("contaminated_default")
    assert sum(on) == 0 and all(off.to_pylist())


# --------------------------------------------------------------------------- units
def test_the_sketch_counts_each_example_once_and_never_undercounts() -> None:
    freq = DatasetNgramFrequency()
    hashes = np.array([5, 5, 7, 5, 9], np.uint64)  # example 0: 5, 5, 7 ; example 1: 5, 9
    freq.observe(hashes, np.array([3, 5], np.int64))
    assert freq.examples == 2
    assert freq.counts(np.array([5, 7, 9, 11], np.uint64)).tolist() == [2, 1, 1, 0]
    is_template, _ = freq.templates(np.array([5, 7], np.uint64), Thresholds(template_examples=1,
                                                                              template_share=0.5))
    assert is_template.tolist() == [True, False]


@pytest.mark.parametrize(("text", "low"), [
    ("1 × 2 × 3 × 4 × 5 × 6 × 7 × 8 × 9", True),  # number runs (Alpaca 3401)
    ("D D D D D D D D D D", True),  # one repeated token (Alpaca 610)
    ("ha ha ha ha ha ha ha ha ho ho ho ho", True),  # two distinct tokens
    ("A. 1 B. 2 C. 3 D. 4", True),  # an option list
    ("the factorial of 24 is the product of all positive integers", False),
    ("In 1492 Columbus sailed the ocean blue with three ships", False),
])
def test_low_information_ngrams(text: str, low: bool) -> None:
    spec = TextSpec(ns=(8,))
    tb = Tokenizer(spec).tokenize([text])
    h, _de, pos = kernels.ngram_hashes(tb.token_hashes, tb.doc_token_ends, 8, 1)
    flags = low_information(tb.token_hashes, pos, 8, spec.seed, Thresholds())
    assert flags.shape[0] > 0
    assert bool(flags.all()) is low if low else not flags.any()


SHARED_DATA = Path(os.environ.get("PROBE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
ALPACA = SHARED_DATA / "instruct" / "alpaca_5000" / "alpaca_5000.jsonl"


@pytest.mark.shared
@pytest.mark.skipif(not ALPACA.is_file(), reason="../shared/data is absent")
def test_real_alpaca_number_runs_and_repeated_tokens_are_not_contamination(tmp_path) -> None:
    """Alpaca 3401 (1 × 2 × … × 24) and 610 (D D D D …) against a page of keyboard-layout style text."""
    with open(ALPACA, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    layout = ("Keyboard layout, number row and keys: " + " ".join(str(i) for i in range(1, 40))
              + " and the notes C D D D D D D D D D D E E C C C C C C C C C C D D D D D D D D D E E.")
    control = rows[0]  # copied whole into the corpus: must stay flagged
    control_text = "\n".join(v for v in (control["instruction"], control["input"], control["output"]) if v)
    write_parquet(tmp_path / "corpus" / "shard.parquet", make_docs(60, seed=2) + [layout, control_text])
    build_index([str(tmp_path / "corpus")], tmp_path / "index", TextSpec(ns=(8, 13)), BuildConfig(workers=1))
    out = scan_dataset([rows[3401], rows[610], control], tmp_path / "index").examples.to_pylist()
    # the corpus does hold their n-grams (frequency alone, gpt3 / llama3, says so) ...
    assert out[0]["contaminated_gpt3"] and out[1]["contaminated_llama3"]
    # ... but a run of numbers or of one or two repeated tokens is no evidence for `default`
    assert [r["contaminated_default"] for r in out] == [False, False, True]
