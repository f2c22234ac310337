"""Every benchmark and instruction dataset in ../shared/data scans with detection alone.

The index is built here from ONE shard of the shared corpus (corpus-00004.parquet,
a few seconds) with the shared index's text spec, because indexes/ is not
committed; set PROBE_SCAN_SHARED_INDEX=1 to scan against the full
indexes/shared instead. Each dataset is cut to its first lines to keep this fast.
"""

from __future__ import annotations

import json
import os
from itertools import islice
from pathlib import Path

import pytest
from click.testing import CliRunner

from probe.cli import main
from probe.config import BuildConfig, TextSpec
from probe.errors import ExitCode
from probe.index.build import build_index
from probe.index.format import read_spec

pytestmark = pytest.mark.shared

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SHARD = SHARED_DATA / "corpus" / "shards" / "corpus-00004.parquet"
SHARED_INDEX = REPO / "indexes" / "shared"
LINES = 300

# file (relative to ../shared/data) -> the schema detection must find
EXPECTED_SCHEMA = {
    "benchmarks/arc/ARC-Challenge-Dev.jsonl": "question_answer",
    "benchmarks/arc/ARC-Challenge-Test.jsonl": "question_answer",
    "benchmarks/arc/ARC-Easy-Dev.jsonl": "question_answer",
    "benchmarks/arc/ARC-Easy-Test.jsonl": "question_answer",
    "benchmarks/bbh/bbh.jsonl": "input_target",
    "benchmarks/boolq/val.jsonl": "question_answer",
    "benchmarks/chat_evals/advbench_harmful_behaviors.jsonl": "input_target",
    "benchmarks/chat_evals/mtbench_question.jsonl": "turns",
    "benchmarks/chat_evals/vicuna80_question.jsonl": "turns",
    "benchmarks/cola/in_domain_dev.jsonl": "text",
    "benchmarks/cola/out_of_domain_dev.jsonl": "text",
    "benchmarks/commonsenseqa/dev_rand_split.jsonl": "question_answer",
    "benchmarks/gsm8k/test.jsonl": "question_answer",
    "benchmarks/humaneval/HumanEval.jsonl": "prompt_completion",
    "benchmarks/math_word_problems/aqua_test.jsonl": "question_answer",
    "benchmarks/math_word_problems/multiarith.jsonl": "question_answer",
    "benchmarks/math_word_problems/strategyqa.jsonl": "input_target",
    "benchmarks/math_word_problems/svamp.jsonl": "question_answer",
    "benchmarks/mbpp/mbpp.jsonl": "text",
    "benchmarks/mmlu/dev.jsonl": "question_answer",
    "benchmarks/mmlu/test.jsonl": "question_answer",
    "benchmarks/superglue_other/AX-b_diagnostic.jsonl": "sentence_pair",
    "benchmarks/superglue_other/AX-g_diagnostic.jsonl": "sentence_pair",
    "benchmarks/superglue_other/CB_val.jsonl": "sentence_pair",
    "benchmarks/superglue_other/COPA_val.jsonl": "question_answer",
    "benchmarks/superglue_other/MultiRC_val.jsonl": "multirc",
    "benchmarks/superglue_other/RTE_val.jsonl": "sentence_pair",
    "benchmarks/superglue_other/WSC_val.jsonl": "text",
    "benchmarks/superglue_other/WiC_val.jsonl": "sentence_pair",
    "benchmarks/truthfulqa/TruthfulQA.jsonl": "question_answer",
    "instruct/alpaca_5000/alpaca_5000.jsonl": "alpaca",
    "instruct/code_alpaca/code_alpaca_2k.jsonl": "alpaca",
    "instruct/code_alpaca/new_codealpaca.jsonl": "alpaca",
    "instruct/flan_templates/flan_patterns.jsonl": "flan_template",
    "instruct/gsm8k_train/train.jsonl": "question_answer",
    "instruct/lima/lima.jsonl": "alpaca",
    "instruct/niv2_task_definitions/niv2_meta.jsonl": "niv2",
    "instruct/self_instruct/seed_tasks.jsonl": "self_instruct",
    "instruct/self_instruct/user_oriented_instructions.jsonl": "self_instruct",
}


def _shared_files() -> list[str]:
    if not SHARED_DATA.is_dir():
        return []
    found = [*SHARED_DATA.glob("benchmarks/**/*.jsonl"), *SHARED_DATA.glob("instruct/**/*.jsonl")]
    return sorted(str(p.relative_to(SHARED_DATA)) for p in found)


@pytest.fixture(scope="session")
def shared_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.environ.get("PROBE_SCAN_SHARED_INDEX") == "1":
        if not (SHARED_INDEX / "probe-index.json").is_file():
            pytest.skip(f"{SHARED_INDEX} is absent")
        return SHARED_INDEX
    if not SHARD.is_file():
        pytest.skip(f"{SHARD} is absent")
    path = tmp_path_factory.mktemp("shared-index") / "idx"
    build_index([str(SHARD)], path, TextSpec(), BuildConfig(workers=1, id_field="id", source_field="source"))
    return path


def test_one_shard_index_has_the_shared_index_spec(shared_index: Path) -> None:
    if not (SHARED_INDEX / "probe-index.json").is_file():
        pytest.skip(f"{SHARED_INDEX} is absent")
    assert read_spec(shared_index) == read_spec(SHARED_INDEX)


def test_expected_table_is_complete() -> None:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent")
    assert sorted(EXPECTED_SCHEMA) == _shared_files()


@pytest.mark.parametrize("relpath", _shared_files() or ["<absent>"])
def test_shared_dataset_scans_with_detection_alone(shared_index: Path, tmp_path: Path, relpath: str) -> None:
    assert relpath in EXPECTED_SCHEMA, f"new shared file {relpath}: add it to EXPECTED_SCHEMA"
    head = tmp_path / Path(relpath).name
    with (SHARED_DATA / relpath).open("rb") as src:
        head.write_bytes(b"".join(islice(src, LINES)))
    lines = sum(1 for line in head.read_bytes().splitlines() if line.strip())
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["scan", str(head), "--index", str(shared_index), "--out", str(out),
                                       "--format", "json", "--silent"], catch_exceptions=False)
    assert result.exit_code == ExitCode.OK, result.output
    summary = json.loads(result.stdout)
    assert summary["dataset"]["schema"] == EXPECTED_SCHEMA[relpath]
    assert set(summary["dataset"]["mapping"]) & {"instruction", "response"}
    assert summary["examples"] == summary["dataset"]["records"] == lines
    assert summary["skipped"] == 0
    assert summary["assessable"] > 0
    assert sum(summary["verdicts"].values()) == lines
    assert (out / "examples.parquet").is_file()


BENCHMARKS = ("benchmarks/mmlu/test.jsonl", "benchmarks/gsm8k/test.jsonl", "benchmarks/truthfulqa/TruthfulQA.jsonl",
              "benchmarks/arc/ARC-Challenge-Test.jsonl")


@pytest.mark.parametrize("relpath", BENCHMARKS)
def test_no_benchmark_item_is_both_contaminated_and_on_the_to_do_list(shared_index: Path, tmp_path: Path,
                                                                      relpath: str) -> None:
    """One outcome per example: a contaminated item is never "novel" (teach explicitly / clean)."""
    import pyarrow.parquet as pq

    from probe.report.html import render_html
    from probe.report.model import load_report

    source = SHARED_DATA / relpath
    if not source.is_file():
        pytest.skip(f"{source} is absent")
    head = tmp_path / relpath  # the same folders (benchmarks/…): the dataset kind is guessed from them
    head.parent.mkdir(parents=True)
    with source.open("rb") as src:
        head.write_bytes(b"".join(islice(src, 2000)))
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["scan", str(head), "--index", str(shared_index), "--out", str(out),
                                       "--silent"], catch_exceptions=False)
    assert result.exit_code == ExitCode.OK, result.output
    rows = pq.read_table(out / "examples.parquet", columns=["id", "outcome", "contaminated_default",
                                                            "cross_document_only"]).to_pylist()
    for r in rows:
        if r["contaminated_default"]:
            assert r["outcome"] != "novel", r["id"]
            assert r["outcome"] == "leaked" or r["cross_document_only"], r["id"]
    model = load_report(out)
    contaminated = {r["id"] for r in rows if r["contaminated_default"]}
    assert not contaminated & {i.id for i in model.novel}
    assert model.kind == "eval"  # a benchmark's path says so: its novel items are clean, not to be taught
    novel_section = render_html(model).split('<section id="novel">', 1)[1].split("</section>", 1)[0]
    assert "Clean:" in novel_section and "teach explicitly" not in novel_section.lower()
