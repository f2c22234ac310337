"""Chinese, Japanese and Thai text under tokenizer rules 2 (issue 14 item 4).

The data are the Chinese, Japanese and (first 100) Thai rows of MGSM (tests/data/mgsm_cjk/SOURCE.md):
a real benchmark whose items are one to four sentences each. Under the plain word-run rules most of
them are a handful of tokens; split per character cluster every item is assessable at n = 8.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probe import kernels
from probe.config import DEFAULT_NS, BuildConfig, TextSpec
from probe.index.build import build_index
from probe.index.reader import open_index
from probe.scan import scan_dataset
from probe.text.tokenizers import Tokenizer

DATA = Path(__file__).parent / "data" / "mgsm_cjk"
N_MIN = min(DEFAULT_NS)
PLANTED = 20  # items of each language copied into the test corpus


def items(lang: str) -> list[dict[str, str]]:
    with open(DATA / f"mgsm_{lang}.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def whole(item: dict[str, str]) -> str:
    return f"{item['question']}\n{item['answer']}"


def token_counts(texts: list[str], rules: int) -> np.ndarray:
    return Tokenizer(TextSpec(tokenizer_rules=rules)).tokenize(texts).doc_token_counts()


@pytest.mark.parametrize("lang", ["zh", "ja", "th"])
def test_nearly_every_item_is_assessable_under_rules_2(lang: str) -> None:
    texts = [whole(it) for it in items(lang)]
    assert len(texts) >= 100
    new = token_counts(texts, 2)
    assert (new >= N_MIN).mean() >= 0.99
    # the legacy runs: a Chinese clause is one token, so items are a few tokens each
    old = token_counts(texts, 1)
    assert np.median(new) > 3 * np.median(old)


@pytest.mark.parametrize("lang", ["zh", "ja"])
def test_pattern_view_is_as_assessable_as_the_surface(lang: str) -> None:
    texts = [whole(it) for it in items(lang)]
    tok = Tokenizer(TextSpec(views=("surface", "pattern")))
    pattern = tok.tokenize(texts, "pattern").doc_token_counts()
    assert (pattern >= N_MIN).mean() >= 0.99


# --------------------------------------------------------------------------- a Chinese sentence, indexed alone
HAN = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)
CHINESE = st.text(st.one_of(HAN, HAN, HAN, st.sampled_from("，。！？、：；“”（）0123456789 ")), min_size=1, max_size=60)
LOOKUP_NS = (1, 2, 5, 8, 13)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sentence=CHINESE)
def test_a_chinese_sentence_indexed_alone_is_fully_found(sentence: str, tmp_path_factory) -> None:
    root = tmp_path_factory.mktemp("zh")
    shard = root / "one.parquet"
    pq.write_table(pa.table({"text": [sentence]}), shard)
    spec = TextSpec(ns=LOOKUP_NS)
    build_index([str(shard)], root / "idx", spec, BuildConfig(workers=1))
    tb = Tokenizer(spec).tokenize([sentence])
    reader = open_index(root / "idx")
    try:
        for n in LOOKUP_NS:
            h, ngram_ends, positions = kernels.ngram_hashes(tb.token_hashes, tb.doc_token_ends, n, 1)
            if h.shape[0] == 0:  # shorter than n: nothing to look up
                assert tb.num_tokens < n
                continue
            found = reader.lookup("surface", n, h, with_samples=False).found
            assert found.all()
            _, _, _, covered, _ = kernels.field_spans(found, positions, ngram_ends, tb.doc_token_ends, n, n)
            assert covered.mean() == 1.0  # token coverage
    finally:
        reader.close()


# --------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def cjk_indexes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One corpus with the first PLANTED zh and ja items, indexed under rules 2 and rules 1."""
    root = tmp_path_factory.mktemp("cjk")
    docs = [f"练习题：{whole(it)}" for it in items("zh")[:PLANTED]] + [f"問題：{whole(it)}" for it in items("ja")[:PLANTED]]
    docs.append("An unrelated English document about rivers, bridges and the long winter evenings.")
    shard = root / "corpus.parquet"
    pq.write_table(pa.table({"text": docs}), shard)
    out = {"root": root}
    for name, rules in (("new", 2), ("old", 1)):
        build_index([str(shard)], root / name, TextSpec(tokenizer_rules=rules), BuildConfig(workers=1))
        out[name] = root / name
    return out


@pytest.mark.parametrize("lang", ["zh", "ja"])
def test_scan_of_a_cjk_benchmark(cjk_indexes: dict[str, Path], lang: str) -> None:
    out = cjk_indexes["root"] / f"scan-{lang}"
    summary = scan_dataset(DATA / f"mgsm_{lang}.jsonl", cjk_indexes["new"], out).summary
    rows = pq.read_table(out / "examples.parquet").to_pylist()
    assert summary.examples == len(items(lang))
    assert summary.assessable >= 0.99 * summary.examples
    assert all(r["contaminated_default"] for r in rows[:PLANTED])
    assert all(r["whole_token_coverage_8"] == 1.0 for r in rows[:PLANTED])
    assert sum(bool(r["contaminated_default"]) for r in rows[PLANTED:]) <= 0.02 * (len(rows) - PLANTED)


def test_an_index_built_with_the_old_rules_scans_with_them(cjk_indexes: dict[str, Path]) -> None:
    """Nothing changes silently: the old spec's index tokenizes the dataset with the old runs."""
    reader = open_index(cjk_indexes["old"])
    try:
        assert reader.spec.tokenizer_rules == 1
        assert "tokenizer_rules" not in json.loads((cjk_indexes["old"] / "probe-index.json").read_text())["spec"]
    finally:
        reader.close()
    out = cjk_indexes["root"] / "scan-old"
    summary = scan_dataset(DATA / "mgsm_zh.jsonl", cjk_indexes["old"], out).summary
    rows = pq.read_table(out / "examples.parquet").to_pylist()
    texts = [whole(it) for it in items("zh")]
    old_counts = token_counts(texts, 1)
    assert [r["whole_tokens"] for r in rows] == old_counts.tolist()
    assert summary.unassessable == int((old_counts < N_MIN).sum())
