"""The side-table measures on real data: one shard of ../shared/data's corpus and a real benchmark.

Built here from corpus-00004.parquet (a few seconds; indexes/ is not committed). Skipped cleanly
when ../shared/data is absent. Planted queries are passages of that shard's documents with one
word in seven replaced (no 8-gram survives); the negatives are GSM8K questions.
"""

from __future__ import annotations

import json
import random
from itertools import islice
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from probe.config import BuildConfig, TextSpec
from probe.index.build import build_index
from probe.index.maintenance import verify_index
from probe.index.side_tables import SideTableRequest
from probe.scan import ScanConfig, scan_dataset

pytest.importorskip("rensa")
pytest.importorskip("scipy")
pytestmark = pytest.mark.shared

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SHARD = SHARED_DATA / "corpus" / "shards" / "corpus-00004.parquet"
GSM8K = SHARED_DATA / "benchmarks" / "gsm8k" / "test.jsonl"


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not SHARD.is_file() or not GSM8K.is_file():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    idx = tmp_path_factory.mktemp("shared_side") / "idx"
    build_index([str(SHARD)], idx, TextSpec(), BuildConfig(workers=2),
                side_tables=[SideTableRequest("minhash"), SideTableRequest("distribution")])
    return idx


def _planted(n: int, every: int | None = 7) -> tuple[list[dict], list[int]]:
    texts = pq.read_table(SHARD, columns=["text"]).column("text").to_pylist()
    rng = random.Random(11)
    rows = rng.sample([i for i, t in enumerate(texts) if len(t.split()) >= 80], n)
    out = []
    for row in rows:
        words = texts[row].split()
        start = rng.randrange(0, len(words) - 40)
        passage = [f"zq{i}" if every and i % every == 3 else w for i, w in enumerate(words[start:start + 40])]
        out.append({"instruction": " ".join(passage), "output": ""})
    return out, rows


def test_planted_paraphrases_are_near_duplicates_and_gsm8k_is_not(index: Path) -> None:
    assert verify_index(index, deep=True)["ok"]
    planted, rows = _planted(40)
    with open(GSM8K, encoding="utf-8") as f:
        negatives = [json.loads(line) for line in islice(f, 200)]
    result = scan_dataset(planted + negatives, index, config=ScanConfig(measures=("minhash", "distribution")))
    table = result.examples
    containment = table.column("minhash_whole_containment").to_pylist()
    coverage = table.column("coverage").to_pylist()
    best_rows = table.column("minhash_whole_row").to_pylist()
    n = len(planted)
    assert sum(c == 0.0 for c in coverage[:n]) >= 0.8 * n  # the n-gram measure misses them
    assert sum(r == s for r, s in zip(best_rows[:n], rows, strict=True)) >= 0.8 * n  # minhash finds the source
    assert sum(c >= 0.3 for c in containment[:n]) >= 0.8 * n
    assert sum(c >= 0.3 for c in containment[n:]) <= 0.02 * len(negatives)
    dist = result.summary.to_dict()["measures"]["distribution"]
    assert dist["kl_divergence"]["unigram"]["value"] > 0 and dist["corpus_tokens"] > 1_000_000


def test_kl_of_corpus_passages_is_below_kl_of_a_benchmark(index: Path) -> None:
    passages, _rows = _planted(100, every=None)  # verbatim corpus passages: a sample of the corpus itself
    with open(GSM8K, encoding="utf-8") as f:
        negatives = [json.loads(line) for line in islice(f, 100)]

    def kl(data: list[dict]) -> float:
        summary = scan_dataset(data, index, config=ScanConfig(measures=("distribution",))).summary.to_dict()
        return summary["measures"]["distribution"]["kl_divergence"]["unigram"]["value"]

    assert kl(passages) < kl(negatives)
