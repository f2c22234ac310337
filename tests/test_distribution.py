"""The distributional measure: hashed unigram/bigram counts, KL(dataset ‖ corpus) with a bootstrap, rarity."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from helpers import write_parquet
from probe.config import BuildConfig, TextSpec
from probe.errors import ConfigError
from probe.index.build import build_index
from probe.index.side_tables import SideDocs, SideTableRequest
from probe.measures.distribution import DistributionBuilder, configure
from probe.scan import ScanConfig, scan_dataset
from probe.text.tokenizers import Tokenizer

scipy_stats = pytest.importorskip("scipy.stats")

SPEC = TextSpec(ns=(8,))
COMMON = [f"c{i}" for i in range(50)]
RARE = [f"r{i}" for i in range(2000)]


def test_counts_sum_to_tokens_and_in_document_bigrams() -> None:
    texts = ["a b c d", "e", "f g"]
    tb = Tokenizer(SPEC).tokenize(texts, "surface", with_offsets=True)
    builder = DistributionBuilder(SPEC, configure({"buckets": 97}, SPEC))
    builder.add(SideDocs(texts, np.arange(3), 0, tb))
    counts = builder.tables()["counts"].to_pydict()
    assert len(counts["bucket"]) == 97
    assert sum(counts["unigram"]) == 7 and sum(counts["bigram"]) == 3 + 0 + 1  # bigrams never cross documents


def test_bad_bucket_counts_are_refused() -> None:
    for bad in (1, 0, "x", 1 << 25):
        with pytest.raises(ConfigError, match="buckets"):
            configure({"buckets": bad}, SPEC)
    with pytest.raises(ConfigError, match="unknown distribution option"):
        configure({"bins": 3}, SPEC)


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dist")
    rng = random.Random(3)
    # Zipf-ish corpus: common words dominate, rare words appear once in a while
    docs = [" ".join(rng.choice(COMMON) if rng.random() < 0.9 else rng.choice(RARE) for _ in range(200))
            for _ in range(100)]
    shard = write_parquet(root / "c.parquet", docs, row_group_size=50)
    idx = root / "idx"
    build_index([str(shard)], idx, SPEC, BuildConfig(workers=1), side_tables=[SideTableRequest("distribution")])
    return idx


def _dataset(words: list[str], n: int, seed: int) -> list[dict[str, str]]:
    rng = random.Random(seed)
    return [{"instruction": " ".join(rng.choice(words) for _ in range(12)), "output": rng.choice(words)}
            for _ in range(n)]


def test_common_words_score_higher_than_rare_words(index: Path) -> None:
    data = [{"instruction": " ".join(COMMON[:10]), "output": "c1"},
            {"instruction": " ".join(RARE[:10]), "output": "r1"}]
    rows = scan_dataset(data, index, config=ScanConfig(measures=("distribution",))).examples.to_pylist()
    common, rare = rows
    assert common["distribution_instruction_mean_log_freq"] > rare["distribution_instruction_mean_log_freq"] + 3
    assert common["distribution_input_mean_log_freq"] is None  # no tokens: null, not a number


def test_kl_matches_scipy_on_the_same_counts_and_orders_datasets(index: Path) -> None:
    alike = _dataset(COMMON, 60, seed=1)
    unlike = _dataset(RARE, 60, seed=2)
    near = scan_dataset(alike, index, config=ScanConfig(measures=("distribution",))).summary.to_dict()
    far = scan_dataset(unlike, index, config=ScanConfig(measures=("distribution",))).summary.to_dict()
    kl_near = near["measures"]["distribution"]["kl_divergence"]["unigram"]
    kl_far = far["measures"]["distribution"]["kl_divergence"]["unigram"]
    assert kl_far["value"] > kl_near["value"] + 1
    # a small sample's plug-in KL is biased upward: the bootstrap sees it, the interval is corrected for it
    lo, hi = kl_near["interval"]
    assert kl_near["bias"] > 0 and lo < hi
    assert lo <= kl_near["value"] - kl_near["bias"] <= hi
    # recompute the point estimate independently: dataset counts from the tokenizer, corpus from the side table
    from probe.index.reader import open_index
    from probe.index.side_tables import open_side_table

    table = open_side_table(open_index(index), "distribution")
    corpus = sum(np.asarray(t.column("unigram"), np.float64) for _p, t in table.read("counts"))
    texts = [f"{r['instruction']}\n\n{r['output']}" for r in alike]
    tb = Tokenizer(SPEC).tokenize(texts, "surface")
    mine = np.bincount((tb.token_hashes % np.uint64(10_000)).astype(np.int64), minlength=10_000)
    assert kl_near["tokens"] == int(mine.sum())
    assert kl_near["value"] == pytest.approx(scipy_stats.entropy(mine, corpus + 1.0), abs=1e-5)


def test_bootstrap_is_reproducible_and_seeded(index: Path) -> None:
    data = _dataset(COMMON + RARE[:50], 40, seed=5)

    def interval(seed: int) -> list[float]:
        config = ScanConfig(measures=("distribution",), measure_options={"distribution": {"seed": seed}})
        return scan_dataset(data, index, config=config).summary.to_dict()["measures"]["distribution"][
            "kl_divergence"]["bigram"]["interval"]

    assert interval(0) == interval(0)
    assert interval(0) != interval(1)


def test_bad_scan_options_are_refused(index: Path) -> None:
    for options in ({"replicates": 1}, {"confidence": 1.5}, {"alpha": 0}, {"buckets": 3}):
        with pytest.raises(ConfigError):
            scan_dataset(_dataset(COMMON, 3, 0), index,
                         config=ScanConfig(measures=("distribution",), measure_options={"distribution": options}))
