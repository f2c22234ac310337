"""`probe correlate` / `probe.correlate`: known correlations are recovered, bad score files are refused.

A tiny index is built from one long passage of unique words; each example copies a random
share of it (between none and all of its tokens), so the scan's ``coverage`` takes many
distinct values. Scores are then generated from coverage *plus noise* with a known
population rank correlation (synthetic, and labelled so), or from noise alone.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from probe.cli import main
from probe.errors import ConfigError, InputError

pytest.importorskip("scipy")
from scipy import stats  # noqa: E402

PASSAGE = [f"w{i}" for i in range(3000)]
EXAMPLES = 300
BOOTSTRAP = 400


def _dataset_records(seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    records = []
    for i in range(EXAMPLES):
        length = rng.randint(30, 90)
        copied = rng.randint(0, length)
        start = rng.randint(0, len(PASSAGE) - copied)
        words = PASSAGE[start:start + copied] + [f"fresh{i}x{j}" for j in range(length - copied)]
        records.append({"id": f"q{i}", "instruction": " ".join(words), "output": f"answer{i}"})
    return records


@pytest.fixture(scope="module")
def scan_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from probe.config import BuildConfig, TextSpec
    from probe.index.build import build_index
    from probe.scan import scan_dataset

    root = tmp_path_factory.mktemp("correlate")
    corpus = root / "corpus.jsonl"
    corpus.write_text(json.dumps({"text": " ".join(PASSAGE)}) + "\n", encoding="utf-8")
    build_index([str(corpus)], root / "index", TextSpec(), BuildConfig(workers=1))
    dataset = root / "bench.jsonl"
    dataset.write_text("".join(json.dumps(r) + "\n" for r in _dataset_records()), encoding="utf-8")
    scan_dataset(dataset, root / "index", root / "scan")
    return root / "scan"


def _coverage(scan_dir: Path) -> tuple[list[str], np.ndarray]:
    table = pq.read_table(scan_dir / "examples.parquet", columns=["id", "coverage"])
    return table.column("id").to_pylist(), np.array(table.column("coverage").to_pylist(), dtype=float)


def _synthetic_scores(coverage: np.ndarray, r: float, seed: int) -> np.ndarray:
    """SYNTHETIC scores: normal scores of coverage's ranks times r, plus independent noise.

    (normal score of x, y) is bivariate normal with correlation r, so the population Spearman
    correlation of (x, y) is (6/π)·asin(r/2) (Pearson's identity for the normal distribution).
    """
    rng = np.random.default_rng(seed)
    latent = stats.norm.ppf(stats.rankdata(coverage) / (coverage.size + 1))
    latent = (latent - latent.mean()) / latent.std()
    return r * latent + math.sqrt(1 - r * r) * rng.standard_normal(coverage.size)


def _population_spearman(r: float) -> float:
    return 6 / math.pi * math.asin(r / 2)


def test_known_correlation_is_recovered(scan_dir: Path) -> None:
    from probe import correlate

    ids, coverage = _coverage(scan_dir)
    assert np.unique(coverage).size > 100  # the fixture gives coverage many distinct values
    r = 0.52
    truth = _population_spearman(r)  # ≈ 0.50
    scores = [{"id": i, "score": float(s)} for i, s in zip(ids, _synthetic_scores(coverage, r, 1), strict=True)]
    result = correlate(scan_dir, scores, measures=["coverage"], bootstrap=BOOTSTRAP, permutations=500)
    (c,) = result.correlations
    assert (c.measure, c.score, c.n, c.missing) == ("coverage", "score", EXAMPLES, 0)
    assert c.spearman.low < truth < c.spearman.high
    assert c.spearman.low > 0.3 and c.evidence and c.permutation_p <= 1 / 501 + 1e-12
    assert c.sentence.startswith("evidence that coverage predicts score here: higher coverage, higher score: ρ = ")
    assert c.kendall.low < c.kendall.value < c.kendall.high and c.kendall.low > 0
    assert c.pearson is not None and c.pearson.low > 0  # coverage takes many values: Pearson applies
    assert len(c.quartiles) == 4 and c.quartiles[0].mean_score < c.quartiles[-1].mean_score
    assert sum(q.count for q in c.quartiles) == EXAMPLES


def test_pure_noise_ci_contains_zero(scan_dir: Path) -> None:
    from probe import correlate

    ids, _ = _coverage(scan_dir)
    rng = np.random.default_rng(7)
    scores = [{"id": i, "correct": int(rng.random() < 0.5)} for i in ids]  # SYNTHETIC: coin flips
    result = correlate(scan_dir, scores, measures=["coverage"], bootstrap=BOOTSTRAP, permutations=500)
    (c,) = result.correlations
    assert c.spearman.low < 0 < c.spearman.high
    assert not c.evidence and c.permutation_p > 0.05
    assert c.sentence.startswith("no evidence that coverage predicts correct here: ρ = ")
    assert f"n = {EXAMPLES:,} examples" in c.sentence


def test_several_model_columns_default_measures_and_agreement(scan_dir: Path, tmp_path: Path) -> None:
    from probe import CorrelationResult, correlate

    ids, coverage = _coverage(scan_dir)
    path = tmp_path / "scores.csv"
    noisy = _synthetic_scores(coverage, 0.6, 3)
    path.write_text("row,small,large\n" + "".join(f"{k},{int(noisy[k] > 0)},{noisy[k]:.6f}\n"
                                                  for k in range(len(ids))), encoding="utf-8")
    result = correlate(scan_dir, path, bootstrap=50, permutations=50)
    assert isinstance(result, CorrelationResult) and result.mode == "example"
    assert result.score_columns == ["small", "large"]
    assert result.measures[0] == "coverage" and "whole_token_coverage_8" in result.measures
    assert {(c.measure, c.score) for c in result.correlations} == {
        (m, s) for m in result.measures for s in ("small", "large")}
    agreement = result.agreement
    assert agreement["coverage"]["coverage"] == 1.0
    assert agreement["coverage"]["whole_token_coverage_8"] == agreement["whole_token_coverage_8"]["coverage"] > 0.9
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))  # JSON-safe: no NaN anywhere
    assert data["schema_version"] == 1 and data["n"] == EXAMPLES
    assert CorrelationResult.from_dict(data) == result
    with pytest.raises(ConfigError, match="schema_version 2"):
        CorrelationResult.from_dict({**data, "schema_version": 2})


def test_unmatched_duplicate_and_non_numeric_scores_are_errors(scan_dir: Path, tmp_path: Path) -> None:
    from probe import correlate

    ids, _ = _coverage(scan_dir)
    with pytest.raises(InputError, match=r"2 of 3 score rows match no example .*'nope'.*'gone'"):
        correlate(scan_dir, [{"id": ids[0], "correct": 1}, {"id": "nope", "correct": 0},
                             {"id": "gone", "correct": 1}], bootstrap=10)
    with pytest.raises(InputError, match=r"1 id value\(s\) occur more than once .*2×"):
        correlate(scan_dir, [{"id": ids[0], "correct": 1}, {"id": ids[0], "correct": 0}], bootstrap=10)
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps({"id": i, "correct": v}) + "\n"
                            for i, v in zip(ids[:4], [1, "yes", None, "0"], strict=True)), encoding="utf-8")
    with pytest.raises(InputError) as info:
        correlate(scan_dir, path, bootstrap=10)
    message = str(info.value)
    assert str(path) in message and "1 non-numeric score(s) (line 2: 'yes')" in message
    assert "1 missing score(s) (line 3)" in message
    with pytest.raises(InputError, match="no key column"):
        correlate(scan_dir, [{"name": "x", "correct": 1}], bootstrap=10)
    with pytest.raises(ConfigError, match="bootstrap"):
        correlate(scan_dir, [{"id": ids[0], "correct": 1}], bootstrap=3)


def test_partial_scores_are_counted_not_hidden(scan_dir: Path) -> None:
    from probe import correlate

    ids, _ = _coverage(scan_dir)
    result = correlate(scan_dir, pa.table({"id": ids[:100], "correct": [i % 2 for i in range(100)]}),
                       measures=["coverage"], bootstrap=20, permutations=20)
    assert result.n == 100 and result.unscored_examples == EXAMPLES - 100
    assert result.warnings == [f"{EXAMPLES - 100:,} of the scan's {EXAMPLES:,} examples have no score and are "
                               "not in the correlation"]


def test_a_rare_flag_says_its_interval_is_unreliable(scan_dir: Path, tmp_path: Path) -> None:
    from probe import correlate

    ids, coverage = _coverage(scan_dir)
    table = pq.read_table(scan_dir / "examples.parquet")
    rare = np.zeros(EXAMPLES, dtype=bool)
    rare[np.argsort(coverage)[-3:]] = True  # the scan's copy flags only its three most covered examples
    column = table.schema.get_field_index("contaminated_default")
    (tmp_path / "rare").mkdir()
    pq.write_table(table.set_column(column, "contaminated_default", pa.array(rare)),
                   tmp_path / "rare" / "examples.parquet")
    (tmp_path / "rare" / "summary.json").write_bytes((scan_dir / "summary.json").read_bytes())
    scores = [{"id": i, "correct": int(c > 0.5)} for i, c in zip(ids, coverage, strict=True)]  # SYNTHETIC
    result = correlate(tmp_path / "rare", scores, measures=["contaminated_default"], bootstrap=50, permutations=50)
    (c,) = result.correlations
    assert f"Only 3 of the {EXAMPLES} examples have contaminated_default = 1: too few for the interval" in c.sentence
    assert [(q.low, q.high, q.count) for q in c.quartiles] == [(0.0, 0.0, EXAMPLES - 3), (1.0, 1.0, 3)]
    assert c.quartiles[1].mean_score == 1.0  # the three most covered examples are all "correct"
    common = correlate(scan_dir, scores, measures=["coverage"], bootstrap=20, permutations=20).correlations[0]
    assert "too few for the interval" not in common.sentence


def test_a_constant_measure_says_so(scan_dir: Path) -> None:
    from probe import correlate

    ids, _ = _coverage(scan_dir)
    result = correlate(scan_dir, [{"id": i, "correct": 1} for i in ids], measures=["coverage"],
                       bootstrap=20, permutations=20)
    (c,) = result.correlations
    assert c.spearman.value is None and c.permutation_p is None and not c.evidence
    assert c.sentence == f"coverage is constant here (correct = 1 everywhere): it cannot predict correct (n = {EXAMPLES} examples)."


def _per_dataset_scans(scan_dir: Path, tmp_path: Path) -> list[Path]:
    """Five 'datasets': subsets of the fixture scan with rising coverage (examples.parquet filtered)."""
    table = pq.read_table(scan_dir / "examples.parquet")
    order = np.argsort(np.array(table.column("coverage").to_pylist()))
    dirs = []
    for k in range(5):
        out = tmp_path / f"bench{k}"
        out.mkdir()
        pq.write_table(table.take(order[k * 60:(k + 1) * 60]), out / "examples.parquet")
        (out / "summary.json").write_text((scan_dir / "summary.json").read_text(encoding="utf-8"), encoding="utf-8")
        dirs.append(out)
    return dirs


def test_per_dataset_mode(scan_dir: Path, tmp_path: Path) -> None:
    from probe import correlate

    dirs = _per_dataset_scans(scan_dir, tmp_path)
    # SYNTHETIC: accuracy rises with the subsets' coverage; "shuffled" does not
    table = [{"dataset": d.name, "accuracy": 0.2 + 0.1 * k, "shuffled": [0.3, 0.1, 0.5, 0.2, 0.4][k]}
             for k, d in enumerate(dirs)]
    result = correlate(dirs, table, bootstrap=50, permutations=200)
    assert result.mode == "dataset" and result.n == 5
    assert {"mean_coverage", "share_seen", "share_contaminated_default"} <= set(result.measures)
    by_pair = {(c.measure, c.score): c for c in result.correlations}
    rising = by_pair["mean_coverage", "accuracy"]
    assert rising.spearman.value == pytest.approx(1.0)
    assert rising.sentence.startswith("evidence that mean_coverage predicts accuracy here")
    assert by_pair["mean_coverage", "shuffled"].sentence.endswith(
        "n = 5 datasets — too few to tell any but a very strong correlation from chance.")
    assert "datasets" in result.warnings[-1]
    assert [p.name for p in result.datasets] == [d.name for d in dirs]
    with pytest.raises(InputError, match="no dataset row"):
        correlate(dirs, table[:4], bootstrap=20)
    with pytest.raises(InputError, match="match none of the scans"):
        correlate(dirs[:4], table, bootstrap=20)
    with pytest.raises(ConfigError, match="join one scan"):
        correlate(dirs, [{"id": "q1", "correct": 1}], bootstrap=20)


# ------------------------------------------------------------------ the command
def run(*args: object) -> object:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_cli_writes_json_md_and_html(scan_dir: Path, tmp_path: Path) -> None:
    ids, coverage = _coverage(scan_dir)
    scores = tmp_path / "scores.jsonl"
    scores.write_text("".join(json.dumps({"id": i, "correct": int(c > 0.5)}) + "\n"
                              for i, c in zip(ids, coverage, strict=True)), encoding="utf-8")
    out = tmp_path / "out"
    result = run("correlate", scan_dir, "--scores", scores, "--out", out, "--measure", "coverage",
                 "--bootstrap", "100", "--permutations", "100")
    assert result.exit_code == 0, result.output
    assert "evidence that coverage predicts correct here" in result.stdout
    data = json.loads((out / "correlation.json").read_text(encoding="utf-8"))
    assert data["mode"] == "example" and data["correlations"][0]["measure"] == "coverage"
    html = (out / "correlation.html").read_text(encoding="utf-8")
    assert "<svg" in html and "<script" not in html and "http" not in html.split("</style>", 1)[1]
    assert "Content-Security-Policy" in html and "default-src 'none'" in html  # like report.html
    assert "Spearman" in (out / "correlation.md").read_text(encoding="utf-8")
    as_json = run("correlate", scan_dir, "--scores", scores, "--out", tmp_path / "o2", "--measure", "coverage",
                  "--bootstrap", "20", "--permutations", "20", "--format", "json")
    assert as_json.exit_code == 0 and json.loads(as_json.stdout)["n"] == EXAMPLES


def test_cli_exit_codes(scan_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "nope", "correct": 1}) + "\n", encoding="utf-8")
    assert run("correlate", scan_dir, "--scores", bad, "--out", tmp_path / "o").exit_code == 3
    assert run("correlate", scan_dir, "--scores", tmp_path / "missing.jsonl").exit_code == 3
    assert run("correlate", scan_dir, "--scores", bad, "--bootstrap", "2").exit_code == 2
    assert run("correlate", "--help").exit_code == 0


def test_html_escapes_names(scan_dir: Path) -> None:
    from probe import correlate
    from probe.correlation import render_correlation_html, render_correlation_markdown

    ids, _ = _coverage(scan_dir)
    evil = "<script>alert(1)</script>"
    result = correlate(scan_dir, [{"id": i, evil: k % 2} for k, i in enumerate(ids)], measures=["coverage"],
                       bootstrap=20, permutations=20)
    assert evil not in render_correlation_html(result) and "&lt;script&gt;" in render_correlation_html(result)
    assert "<script>" not in render_correlation_markdown(result)
