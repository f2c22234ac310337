"""The measure and definition registries: a toy measure and a toy definition plug in without touching scan.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from probe.config import BuildConfig, TextSpec
from probe.definitions import Definition, definition_names, register_definition, unregister_definition
from probe.errors import ConfigError
from probe.index.build import build_index
from probe.measures import (
    Measure,
    MeasureAggregate,
    MeasureBatch,
    Requirement,
    ScanBatch,
    ScanContext,
    create_measures,
    register_measure,
    unregister_measure,
)
from probe.scan import ScanConfig, scan_dataset
from probe.scan_output import ScanSummary
from probe.sources.datasets import DatasetOptions

CORPUS = ["the quick brown fox jumps over the lazy dog while the farmer sleeps under the old oak tree",
          "a completely different document about sailing boats on a windy lake in the early morning"]
DATASET = [
    {"instruction": "the quick brown fox jumps over the lazy dog while the farmer sleeps", "output": "ok"},
    {"instruction": "nothing of this sentence is anywhere in the tiny corpus we indexed here", "output": "no"},
    {"instruction": "short", "output": "x"},
]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("measures")
    shard = root / "corpus.parquet"
    pq.write_table(pa.table({"text": CORPUS}), shard)
    index = root / "idx"
    build_index([str(shard)], index, TextSpec(ns=(8, 13)), BuildConfig(workers=1))
    dataset = root / "data.jsonl"
    dataset.write_text("".join(json.dumps(r) + "\n" for r in DATASET), encoding="utf-8")
    return {"index": index, "dataset": dataset}


class CharCount(Measure):
    """Toy measure: characters of the whole example; aggregates their total and maximum."""

    name = "toy_chars"
    title = "characters per example"
    cost = "free"
    default = False

    def compute(self, batch: ScanBatch, ctx: ScanContext, earlier: dict[str, MeasureBatch]) -> MeasureBatch:
        assert "ngram" in earlier  # the required n-gram measure runs first
        lengths = np.array([len(t) for t in batch.field_texts["whole"]], np.int64)
        return MeasureBatch({"toy_chars_whole": pa.array(lengths)}, lengths)

    def aggregate(self, ctx: ScanContext) -> MeasureAggregate:
        return _Sum()


class _Sum(MeasureAggregate):
    def __init__(self) -> None:
        self.total = 0
        self.max = 0

    def add(self, output: MeasureBatch, batch: ScanBatch) -> None:
        self.total += int(output.payload.sum())
        self.max = max(self.max, int(output.payload.max()))

    def to_dict(self) -> dict[str, Any]:
        return {"total_chars": self.total, "max_chars": self.max}


class NeedsSideTable(CharCount):
    name = "toy_side"
    title = "needs a side table the index lacks"

    def needs(self, ctx: ScanContext) -> Requirement:
        return Requirement(side_files=("measures/toy_side/table.parquet",))


@pytest.fixture
def toy_measures() -> Iterator[None]:
    register_measure(CharCount)
    register_measure(NeedsSideTable)
    yield
    unregister_measure("toy_chars")
    unregister_measure("toy_side")


def test_a_registered_measure_adds_its_column_and_aggregate(world: dict[str, Path], tmp_path: Path,
                                                            toy_measures: None) -> None:
    out = tmp_path / "out"
    result = scan_dataset(world["dataset"], world["index"], out, ScanConfig(measures=("toy_chars",)))
    table = pq.read_table(out / "examples.parquet")
    whole = [r["instruction"] + "\n" + r["output"] for r in DATASET]
    assert table.column("toy_chars_whole").to_pylist() == [len(t) for t in whole]
    summary = json.loads((out / "summary.json").read_text())
    assert summary == result.summary.to_dict()
    assert ScanSummary.from_dict(summary) == result.summary  # the typed summary round-trips
    assert summary["measures"]["toy_chars"] == {"title": "characters per example", "cost": "free",
                                                "estimate": False, "available": True,
                                                "total_chars": sum(map(len, whole)),
                                                "max_chars": max(map(len, whole))}
    assert summary["config"]["measures"] == ["ngram", "toy_chars"]


def test_a_measure_off_by_default_is_not_computed(world: dict[str, Path], toy_measures: None) -> None:
    result = scan_dataset(world["dataset"], world["index"])
    assert "toy_chars_whole" not in result.examples.column_names
    assert set(result.summary.measures) == {"ngram"}


def test_a_measure_whose_side_table_is_missing_is_unavailable_with_the_reason(
        world: dict[str, Path], toy_measures: None) -> None:
    result = scan_dataset(world["dataset"], world["index"], config=ScanConfig(measures=("toy_side",)))
    entry = result.summary.to_dict()["measures"]["toy_side"]
    assert entry["available"] is False and "measures/toy_side/table.parquet" in entry["reason"]
    assert "toy_chars_whole" not in result.examples.column_names  # no column of zeros


def test_unknown_measure_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown measure"):
        create_measures(("nope",))


def test_the_ngram_measure_always_runs_first(toy_measures: None) -> None:
    assert [m.name for m in create_measures(("toy_chars",))] == ["ngram", "toy_chars"]
    assert [m.name for m in create_measures(())] == ["ngram"]


@pytest.fixture
def toy_definition() -> Iterator[None]:
    # flags an example when at least 3 of its 8-grams are in the corpus (whatever their frequency)
    register_definition(Definition("toy3", "a test", "≥ 3 matched 8-grams", "needs n=8 in the index",
                                   lambda ns, spec, th: 8 if 8 in ns else None,
                                   lambda ev, n: ev.surface[n].matched >= 3))
    yield
    unregister_definition("toy3")


def test_a_registered_definition_is_computed_and_counted(world: dict[str, Path], tmp_path: Path,
                                                         toy_definition: None) -> None:
    assert "toy3" in definition_names()
    result = scan_dataset(world["dataset"], world["index"], tmp_path / "out")
    # row 0 shares 6 8-grams with the corpus; row 1 none; row 2 has no 8-gram at all (null, not clean)
    assert result.examples.column("contaminated_toy3").to_pylist() == [True, False, None]
    assert result.summary.contaminated["toy3"] == 1
    assert "toy3" in result.summary.config.definitions


def test_a_definition_the_index_cannot_support_is_unavailable_not_zero(world: dict[str, Path]) -> None:
    register_definition(Definition("toy50", "a test", "any 50-gram", "needs n=50 in the index",
                                   lambda ns, spec, th: 50 if 50 in ns else None,
                                   lambda ev, n: ev.surface[n].matched >= 1))
    try:
        result = scan_dataset(world["dataset"], world["index"])
    finally:
        unregister_definition("toy50")
    assert "toy50" not in result.summary.contaminated
    assert result.summary.unavailable_definitions["toy50"] == "needs n=50 in the index"
    assert result.examples.column("contaminated_toy50").null_count == len(DATASET)


def test_duplicate_registration_is_refused() -> None:
    with pytest.raises(ConfigError, match="already registered"):
        register_definition(Definition("gpt3", "x", "x", "x", lambda ns, s, t: 13, lambda ev, n: ev))


def test_scan_without_out_dir_writes_nothing_and_keeps_the_examples(world: dict[str, Path], tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = scan_dataset(world["dataset"], world["index"])
    assert result.out_dir is None
    assert list(tmp_path.iterdir()) == []
    assert result.examples.num_rows == len(DATASET)
    assert result.examples.column("verdict").to_pylist()[1] == "novel"


class FirstPass(CharCount):
    """Toy first-pass measure: each example's share of the dataset's characters (needs the whole dataset)."""

    name = "toy_share"
    title = "share of the dataset's characters"
    first_pass = True

    def __init__(self) -> None:
        self.total = 0

    def observe(self, batch: ScanBatch, ctx: ScanContext) -> None:
        self.total += sum(len(t) for t in batch.field_texts["whole"])

    def compute(self, batch: ScanBatch, ctx: ScanContext, earlier: dict[str, MeasureBatch]) -> MeasureBatch:
        scale = float(self.options(ctx).get("scale", 1.0))
        shares = np.array([scale * len(t) / self.total for t in batch.field_texts["whole"]])
        return MeasureBatch({"toy_share_whole": pa.array(shares)}, np.array([len(t) for t in batch.field_texts["whole"]]))


def test_a_first_pass_measure_sees_the_whole_dataset_before_scoring(world: dict[str, Path]) -> None:
    register_measure(FirstPass)
    try:
        config = ScanConfig(measures=("toy_share",), measure_options={"toy_share": {"scale": 100}},
                            dataset=DatasetOptions(batch_size=1))  # one example per batch: totals need pass 1
        result = scan_dataset(world["dataset"], world["index"], config=config)
    finally:
        unregister_measure("toy_share")
    shares = result.examples.column("toy_share_whole").to_pylist()
    assert sum(shares) == pytest.approx(100.0)


def test_every_report_lists_the_other_measures_and_why_one_is_unavailable(world: dict[str, Path], tmp_path: Path,
                                                                          toy_measures: None) -> None:
    from io import StringIO

    from rich.console import Console

    from probe.report.model import load_report
    from probe.report.render import render_reports
    from probe.report.terminal import render_scan_summary

    out = tmp_path / "out"
    result = scan_dataset(world["dataset"], world["index"], out, ScanConfig(measures=("toy_chars", "toy_side")))
    paths = render_reports(out)
    md, html = paths["markdown"].read_text(), paths["html"].read_text()
    total = f"{sum(len(r['instruction']) + 1 + len(r['output']) for r in DATASET):,}"
    for text, name, total_key, missing in (
            (html, "toy_chars", "total_chars", "measures/toy_side/table.parquet"),
            (md, "toy\\_chars", "total\\_chars", "measures/toy\\_side/table.parquet")):  # Markdown escapes _
        assert "Other measures" in text and name in text and f"{total_key} = {total}" in text
        assert f"unavailable: the index has no {missing}" in text
    buf = StringIO()
    render_scan_summary(result.summary, Console(file=buf, width=200, no_color=True))
    assert f"measure toy_chars (exact): total_chars={total}" in buf.getvalue()
    assert "measure toy_side unavailable" in buf.getvalue()
    assert load_report(out).summary.measures["toy_chars"].aggregates["max_chars"] > 0


def test_a_first_pass_keeps_small_datasets_in_memory_and_rereads_large_ones(world: dict[str, Path],
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Same results either way; a dataset that does not fit FIRST_PASS_KEEP_BYTES is read twice."""
    import probe.scan as scan_module
    from probe.sources import datasets

    reads = []
    real = datasets.read_examples

    def counting(*args: Any, **kwargs: Any) -> Any:
        reads.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(scan_module, "read_examples", counting)
    small = scan_dataset(world["dataset"], world["index"])
    assert len(reads) == 1  # the n-gram measure's first pass (templates) kept the batches
    monkeypatch.setattr(scan_module, "FIRST_PASS_KEEP_BYTES", 0)
    reads.clear()
    large = scan_dataset(world["dataset"], world["index"])
    assert len(reads) == 2
    assert small.examples.drop(["id"]).equals(large.examples.drop(["id"]))
    assert small.summary.examples == large.summary.examples == len(DATASET)
    assert small.summary.dataset.records == large.summary.dataset.records == len(DATASET)


def test_check_gates_on_a_registered_definition(world: dict[str, Path], tmp_path: Path,
                                               toy_definition: None) -> None:
    from probe.check import CheckLimits, check_dataset

    result = check_dataset(world["dataset"], world["index"], tmp_path / "r", limits=CheckLimits(max_contaminated=0),
                           definition="toy3")
    assert result.passed is False and result.gate.reasons == ["1 contaminated example(s) (toy3) > the limit of 0"]
