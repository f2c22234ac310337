"""Real data: GSM8K test scanned against an index of the GSM8K *train* set, correlated with scores.

The corpus is ``../shared/data/instruct/gsm8k_train/train.jsonl`` (question + answer per
document), so the coverage measured is how much of each test problem's wording the train set
shares. The scores are **SYNTHETIC** (no public per-example GSM8K eval log is staged here): one
column driven by coverage plus noise, one of coin flips. The test proves the whole path on real
text (content-hash ids, keyed here by ``row`` as an eval harness's document index would be) and
that the statistics tell signal from noise on it. Skipped where the shared data is absent
(``PROBE_SHARED_DATA`` may point at it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

pytest.importorskip("scipy")

pytestmark = pytest.mark.slow


def _shared_data() -> Path:
    path = Path(os.environ.get("PROBE_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
    if not (path / "benchmarks" / "gsm8k" / "test.jsonl").is_file():
        pytest.skip(f"shared data not found at {path}")
    return path


def test_gsm8k_test_against_its_train_set(tmp_path: Path) -> None:
    from probe import correlate
    from probe.config import BuildConfig, TextSpec
    from probe.index.build import build_index
    from probe.scan import scan_dataset

    shared = _shared_data()
    corpus = tmp_path / "gsm8k_train_docs.jsonl"
    with (shared / "instruct" / "gsm8k_train" / "train.jsonl").open(encoding="utf-8") as src, \
            corpus.open("w", encoding="utf-8") as out:
        for line in src:
            record = json.loads(line)
            out.write(json.dumps({"text": record["question"] + "\n" + record["answer"]}) + "\n")
    build_index([str(corpus)], tmp_path / "index", TextSpec(), BuildConfig(workers=1))
    scan = scan_dataset(shared / "benchmarks" / "gsm8k" / "test.jsonl", tmp_path / "index", tmp_path / "scan")
    assert scan.summary.dataset.id_field == "(content hash)" and scan.summary.examples == 1319

    coverage = np.array(pq.read_table(tmp_path / "scan" / "examples.parquet",
                                      columns=["coverage"]).column("coverage").to_pylist(), dtype=float)
    rng = np.random.default_rng(17)
    # SYNTHETIC scores: `tracks_coverage` is right more often the more of the problem the train set shares
    ranks = (np.argsort(np.argsort(coverage + 1e-9 * rng.random(coverage.size))) + 0.5) / coverage.size
    tracks = (rng.random(coverage.size) < 0.25 + 0.5 * ranks).astype(int)
    noise = (rng.random(coverage.size) < 0.5).astype(int)
    scores = tmp_path / "synthetic_scores.csv"
    scores.write_text("row,tracks_coverage,coin_flip\n" + "".join(
        f"{row},{t},{c}\n" for row, (t, c) in enumerate(zip(tracks, noise, strict=True))), encoding="utf-8")
    result = correlate(tmp_path / "scan", scores, measures=["coverage"], bootstrap=300, permutations=300)
    by_score = {c.score: c for c in result.correlations}
    assert result.n == 1319 and result.unscored_examples == 0
    assert np.unique(coverage).size > 50  # GSM8K test shares real wording with its train set
    signal, flips = by_score["tracks_coverage"], by_score["coin_flip"]
    assert signal.evidence and signal.spearman.low > 0
    assert flips.spearman.low < 0 < flips.spearman.high and not flips.evidence
    assert signal.quartiles[0].mean_score < signal.quartiles[-1].mean_score
