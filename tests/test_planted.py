"""Planted contamination, small: 100 real benchmark items inserted into a copy of a shared shard.

Runs ``bench/planted.py`` with 4 items per (benchmark, edit kind) — 5 benchmarks × 5 kinds = 100
inserted items, 20 per kind — and 60 negatives per benchmark (300), builds a surface+pattern index,
scans the five benchmark subsets with ``scan_dataset`` and checks the default definition's targets:
recall ≥ 0.99 on verbatim items, ≥ 0.9 on the edited kinds together (format, swap, embedded,
split), ≤ 1 % false positives among items not inserted. The full-size run (250 inserted,
600 negatives) is ``python bench/planted.py``; its table is in bench/RESULTS.md and
docs/detection-quality.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO / "bench"))

import planted  # noqa: E402

pytestmark = [
    pytest.mark.shared,
    pytest.mark.timeout(300),
    pytest.mark.skipif(not (SHARED_DATA / planted.BASE_SHARD).is_file(), reason="../shared/data is absent"),
]


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> planted.PlantedResult:
    cfg = planted.PlantedConfig(data=SHARED_DATA, per_cell=4, negatives=60, related=10, seed=20240917)
    res = planted.run(tmp_path_factory.mktemp("planted") / "run", cfg, log=None)
    print("\n" + res.markdown)  # visible with -s: the per-kind table
    return res


def test_sizes_and_ground_truth(result: planted.PlantedResult) -> None:
    m = result.metrics
    assert m["counts"]["all inserted"] == 100
    assert all(m["counts"][k] == 20 for k in planted.KINDS)
    assert m["counts"]["negative"] == 300
    assert m["unavailable"] == ["gpt4"]  # no chars n=50 index here
    # every dataset row was joined back to its ground truth, once
    assert sum(m["counts"][k] for k in ("all inserted", "negative", "related")) == sum(
        s["inserted"] + s["negatives"] + s["related"] for s in m["selection"].values())
    # the edits did edit: swap changes a real share of words, format changes some
    assert m["changed_word_share"]["swap"] > 0.05
    assert m["changed_word_share"]["format"] > 0.0


def test_default_verdict_targets(result: planted.PlantedResult) -> None:
    m = result.metrics
    per_kind = {k: m["recall"][k]["default"] for k in planted.KINDS}
    detail = f"per kind {per_kind}; misses {m['misses_default']}; FPs {m['false_positives_default']}"
    assert m["recall"]["verbatim"]["default"] >= planted.TARGET_VERBATIM, detail
    assert m["recall"]["edited"]["default"] >= planted.TARGET_EDITED, detail
    assert m["fp_rate"]["default"] <= planted.TARGET_FP, detail
    assert m["targets"]["met"]


def test_edit_kinds_behave_as_explained(result: planted.PlantedResult) -> None:
    """The mechanisms docs/detection-quality.md describes, on this run."""
    r = result.metrics["recall"]
    # casefolding and punctuation-blind words: format edits are (almost) invisible to the surface view
    assert r["format"]["default"] >= 0.9
    # embedding in a longer document does not matter: coverage is measured on the item's side
    assert r["embedded"]["default"] == 1.0
    # number/name swaps break surface n-grams far more than they break the pattern view
    assert r["swap"]["gpt2"] < r["swap"]["default"]
    assert r["swap"]["seen"] >= r["swap"]["default"] - 0.05
