"""`probe scan` on the command line: exit codes, stdout discipline, default paths, a golden summary.

The fixed corpus and dataset live in tests/data/scan/; the index is built from them
here (indexes are not committed). Regenerate the golden summary only on purpose:

    PROBE_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_cli_scan.py -k golden
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result

from probe.cli import main
from probe.config import BuildConfig, TextSpec
from probe.errors import ExitCode
from probe.index.build import build_index

DATA = Path(__file__).resolve().parent / "data" / "scan"
GOLDEN = Path(__file__).resolve().parent / "golden" / "scan_summary.json"
CORPUS = DATA / "corpus.jsonl"
DATASET = DATA / "dataset.jsonl"


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The golden index: surface + pattern views, n = 8, 13, of tests/data/scan/corpus.jsonl."""
    path = tmp_path_factory.mktemp("cli-scan") / "idx"
    build_index([str(CORPUS)], path, TextSpec(views=("surface", "pattern")),
                BuildConfig(workers=1, id_field="id", source_field="source"))
    return path


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(main, ["scan", *(str(a) for a in args)], catch_exceptions=False)


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- exit codes
def test_ok(index: Path, tmp_path: Path) -> None:
    result = run(DATASET, "--index", index, "--out", tmp_path / "out")
    assert result.exit_code == ExitCode.OK, result.output
    assert (tmp_path / "out" / "examples.parquet").is_file() and (tmp_path / "out" / "summary.json").is_file()
    assert "wrote" in result.stdout and "seen" in result.stdout


@pytest.mark.parametrize("options", [
    ["--field", "foo=bar"],
    ["--field", "instruction"],
    ["--seen", "0.1", "--partial", "0.5"],
    ["--seen", "1.5"],
    ["--definitions", "default,gpt5"],
    ["--max-docs", "0"],
    ["--batch-size", "0"],
    ["--schema", "no-such-schema"],
    ["--target-field", "title"],
    ["--format", "yaml"],
])
def test_bad_options_exit_2(index: Path, tmp_path: Path, options: list[str]) -> None:
    result = run(DATASET, "--index", index, "--out", tmp_path / "out", *options)
    assert result.exit_code == ExitCode.USAGE, result.output
    assert not (tmp_path / "out" / "summary.json").exists()


def test_malformed_jsonl_exits_3_naming_file_and_line(index: Path, tmp_path: Path) -> None:
    bad = write_lines(tmp_path / "bad.jsonl", [
        json.dumps({"instruction": "Who counted the ships near the rocky northern cape?", "output": "A keeper."}),
        '{"instruction": "broken", "output": ',
    ])
    result = run(bad, "--index", index, "--out", tmp_path / "out")
    assert result.exit_code == ExitCode.INPUT, result.output
    assert f"{bad}:line 2" in result.stderr and "invalid JSON" in result.stderr
    assert result.stdout == ""


def test_unknown_schema_exits_3(index: Path, tmp_path: Path) -> None:
    odd = write_lines(tmp_path / "odd.jsonl", [json.dumps({"foo": 1, "bar": "some text here"})])
    result = run(odd, "--index", index, "--out", tmp_path / "out")
    assert result.exit_code == ExitCode.INPUT, result.output
    assert "unknown dataset schema" in result.stderr and "--field" in result.stderr


def test_missing_dataset_exits_3(index: Path, tmp_path: Path) -> None:
    result = run(tmp_path / "nope.jsonl", "--index", index, "--out", tmp_path / "out")
    assert result.exit_code == ExitCode.INPUT, result.output


def test_missing_index_exits_4(tmp_path: Path) -> None:
    result = run(DATASET, "--index", tmp_path / "no-index", "--out", tmp_path / "out")
    assert result.exit_code == ExitCode.INDEX, result.output
    assert "not a probe index" in result.stderr


def test_corrupt_header_exits_4(index: Path, tmp_path: Path) -> None:
    broken = tmp_path / "idx"
    shutil.copytree(index, broken)
    (broken / "probe-index.json").write_text("{not json")
    result = run(DATASET, "--index", broken, "--out", tmp_path / "out")
    assert result.exit_code == ExitCode.INDEX, result.output


def test_truncated_ngram_file_exits_4(index: Path, tmp_path: Path) -> None:
    broken = tmp_path / "idx"
    shutil.copytree(index, broken)
    victim = sorted(p for p in (broken / "segments").rglob("*.parquet")
                    if "docs" not in p.name and "doc_sample" not in p.parts)[0]
    victim.write_bytes(victim.read_bytes()[:-100])
    result = run(DATASET, "--index", broken, "--out", tmp_path / "out")
    assert result.exit_code == ExitCode.INDEX, result.output
    assert "truncated" in result.stderr or "corrupt" in result.stderr


def test_nothing_assessable_exits_5(index: Path, tmp_path: Path) -> None:
    short = write_lines(tmp_path / "short.jsonl", [json.dumps({"instruction": "Name a spice.", "output": "Pepper."})] * 3)
    result = run(short, "--index", index, "--out", tmp_path / "out")
    assert result.exit_code == ExitCode.NOTHING_ASSESSABLE, result.output
    assert "nothing assessable" in result.stderr
    assert not (tmp_path / "out" / "summary.json").exists()


def test_empty_file_exits_5(index: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    result = run(empty, "--index", index, "--out", tmp_path / "out")
    assert result.exit_code == ExitCode.NOTHING_ASSESSABLE, result.output


def test_only_textless_records_exit_5(index: Path, tmp_path: Path) -> None:
    blank = write_lines(tmp_path / "blank.jsonl", [json.dumps({"instruction": "", "output": " "})] * 2)
    result = run(blank, "--index", index, "--out", tmp_path / "out")
    assert result.exit_code == ExitCode.NOTHING_ASSESSABLE, result.output


# --------------------------------------------------------------------------- stdout and defaults
def test_format_json_prints_only_json(index: Path, tmp_path: Path) -> None:
    result = run(DATASET, "--index", index, "--out", tmp_path / "out", "--format", "json", "--silent")
    assert result.exit_code == ExitCode.OK, result.output
    data = json.loads(result.stdout)  # nothing but one JSON document on stdout
    assert data == json.loads((tmp_path / "out" / "summary.json").read_text())
    assert data["examples"] == 9 and data["skipped"] == 1


def test_default_out_is_reports_slash_dataset_name(index: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    dataset = tmp_path / "My Set.v2.jsonl"
    shutil.copy(DATASET, dataset)
    result = run(dataset, "--index", index, "--format", "json")
    assert result.exit_code == ExitCode.OK, result.output
    out = tmp_path / "reports" / "My_Set.v2"
    assert (out / "summary.json").is_file() and (out / "examples.parquet").is_file()
    assert [p.name for p in (tmp_path / "reports").iterdir()] == ["My_Set.v2"]


def test_several_datasets_one_process_same_results(index: Path, tmp_path: Path) -> None:
    """Scanning A and B together gives exactly the summaries of scanning each alone."""
    a = tmp_path / "a" / "test.jsonl"
    b = tmp_path / "b" / "test.jsonl"
    for path in (a, b):
        path.parent.mkdir()
    shutil.copy(DATASET, a)
    write_lines(b, DATASET.read_text(encoding="utf-8").splitlines()[:4])
    result = run(a, b, "--index", index, "--out", tmp_path / "reports", "--format", "json", "--silent")
    assert result.exit_code == ExitCode.OK, result.output
    together = json.loads(result.stdout)
    assert isinstance(together, list) and len(together) == 2
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == ["a_test", "b_test"]
    for path, summary in zip((a, b), together, strict=True):
        alone = run(path, "--index", index, "--out", tmp_path / "alone", "--format", "json", "--silent")
        assert alone.exit_code == ExitCode.OK, alone.output
        assert normalized(summary, path, index) == normalized(json.loads(alone.stdout), path, index)
        name = f"{path.parent.name}_test"
        assert json.loads((tmp_path / "reports" / name / "summary.json").read_text()) == summary
    assert together[0]["examples"] == 9 and together[1]["examples"] < 9


def test_several_datasets_error_names_the_bad_one_and_keeps_earlier_reports(index: Path, tmp_path: Path) -> None:
    bad = write_lines(tmp_path / "bad.jsonl", ['{"instruction": "x", "output": "y"}', "{not json"])
    result = run(DATASET, bad, "--index", index, "--out", tmp_path / "reports")
    assert result.exit_code == ExitCode.INPUT, result.output
    assert "bad.jsonl" in result.output and "line 2" in result.output
    assert (tmp_path / "reports" / "dataset" / "summary.json").is_file()
    assert not (tmp_path / "reports" / "bad").exists()


def test_closed_stdout_exits_141_without_a_traceback(index: Path, tmp_path: Path) -> None:
    """`probe scan ... --format json | head -c 1`: the reader goes away mid-output."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "probe", "scan", str(DATASET), "--index", str(index),
                             "--out", str(tmp_path / "out"), "--format", "json", "--silent"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # nobody reads stdout: the first write raises BrokenPipeError
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == ExitCode.BROKEN_PIPE, stderr
    assert "Traceback" not in stderr and "internal error" not in stderr
    assert (tmp_path / "out" / "summary.json").is_file()  # the work itself completed


def test_same_dataset_twice_is_a_usage_error(index: Path, tmp_path: Path) -> None:
    result = run(DATASET, DATASET, "--index", index, "--out", tmp_path / "reports")
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "twice" in result.output


def test_options_reach_the_summary(index: Path, tmp_path: Path) -> None:
    result = run(DATASET, "--index", index, "--out", tmp_path / "out", "--format", "json", "--max-docs", "3",
                 "--seen", "0.9", "--partial", "0.1", "--definitions", "gpt3,palm", "--target-field", "response",
                 "--verify")
    assert result.exit_code == ExitCode.OK, result.output
    config = json.loads(result.stdout)["config"]
    assert config["thresholds"]["max_docs"] == 3
    assert (config["thresholds"]["seen"], config["thresholds"]["partial"]) == (0.9, 0.1)
    assert config["definitions"] == ["default", "gpt3", "palm"]  # the verdict's own definition is always on
    assert (config["target_field"], config["verify"]) == ("response", True)


# --------------------------------------------------------------------------- golden summary
def normalized(summary: dict[str, Any], dataset: Path, index: Path) -> dict[str, Any]:
    """Drop what legitimately differs between machines and runs: times, paths, versions."""
    out = json.loads(json.dumps(summary))
    for key in ("created", "seconds"):
        out.pop(key)
    assert out["dataset"]["path"] == str(dataset) and out["index"]["path"] == str(index)
    out["dataset"]["path"] = "<dataset>"
    out["index"]["path"] = "<index>"
    out["dataset"]["skipped_examples"] = [s.replace(str(dataset), "<dataset>")
                                          for s in out["dataset"]["skipped_examples"]]
    out["tool"]["version"] = "<version>"
    # the Unicode version comes with the Python build and is part of the spec (and so of its fingerprint)
    spec = TextSpec.from_dict(out["index"]["spec"])
    assert out["index"]["spec_fingerprint"] == spec.fingerprint()
    out["index"]["spec"]["unicode_version"] = "<unicode>"
    out["index"]["spec_fingerprint"] = "<fingerprint>"
    return out


def test_golden_summary(index: Path, tmp_path: Path) -> None:
    result = run(DATASET, "--index", index, "--out", tmp_path / "out", "--format", "json")
    assert result.exit_code == ExitCode.OK, result.output
    got = normalized(json.loads((tmp_path / "out" / "summary.json").read_text()), DATASET, index)
    if os.environ.get("PROBE_UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(json.dumps(got, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    assert GOLDEN.is_file(), "no golden summary: run with PROBE_UPDATE_GOLDEN=1 once"
    want = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert got == want, "scan summary changed; if intended, regenerate with PROBE_UPDATE_GOLDEN=1 and review the diff"


# --------------------------------------------------------------------------- flagged ids, progress, report dirs
def test_text_output_lists_the_top_flagged_ids(index: Path, tmp_path: Path) -> None:
    result = run(DATASET, "--index", index, "--out", tmp_path / "out")
    assert result.exit_code == ExitCode.OK, result.output
    assert "top flagged examples (6 contaminated, default)" in result.stdout
    assert "q1" in result.stdout


def test_json_output_keeps_stdout_pure_and_lists_flagged_ids_on_stderr(index: Path, tmp_path: Path) -> None:
    result = run(DATASET, "--index", index, "--out", tmp_path / "out", "--format", "json")
    assert result.exit_code == ExitCode.OK, result.output
    assert json.loads(result.stdout)["contaminated"]["default"] == 6
    assert "top flagged examples" in result.stderr and "q1" in result.stderr
    silent = run(DATASET, "--index", index, "--out", tmp_path / "out", "--format", "json", "--silent")
    assert silent.stderr == ""


def test_progress_bar_on_a_terminal_and_not_with_silent(index: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Where stderr is a terminal the scan shows its progress in examples; --silent turns it off."""
    import probe.progress

    monkeypatch.setattr(probe.progress, "_shown", lambda enabled: True if enabled is None else enabled)
    shown = run(DATASET, "--index", index, "--out", tmp_path / "a", "--format", "json")
    assert shown.exit_code == ExitCode.OK, shown.output
    assert "scanning dataset.jsonl" in shown.stderr and "9 examples" in shown.stderr
    json.loads(shown.stdout)  # the bar never reaches stdout
    silent = run(DATASET, "--index", index, "--out", tmp_path / "b", "--format", "json", "--silent")
    assert "scanning" not in silent.stderr


def test_scan_progress_counts_examples() -> None:
    from io import StringIO

    from rich.console import Console

    from probe.progress import ScanProgress

    buf = StringIO()
    with ScanProgress("gsm8k.jsonl", enabled=True, console=Console(file=buf, width=120)) as progress:
        progress.advance(8192, 100_000)
        progress.advance(1, 10)
    assert progress.examples == 8193 and progress.lookups == 100_010
    assert "scanning gsm8k.jsonl" in buf.getvalue() and "8,193 examples" in buf.getvalue()
    off = ScanProgress("x", enabled=False)
    off.advance(5)
    off.stop()
    assert off.examples == 5


def _two_test_sets(tmp_path: Path) -> tuple[Path, Path]:
    a = tmp_path / "data" / "gsm8k" / "test.jsonl"
    b = tmp_path / "data" / "mmlu" / "test.jsonl"
    for path in (a, b):
        path.parent.mkdir(parents=True)
    shutil.copy(DATASET, a)
    write_lines(b, DATASET.read_text(encoding="utf-8").splitlines()[:4])
    return a, b


def test_default_report_dir_of_another_dataset_is_never_overwritten(index: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    a, b = _two_test_sets(tmp_path)
    assert run(a, "--index", index, "--silent").exit_code == ExitCode.OK
    before = (tmp_path / "reports" / "test" / "summary.json").read_bytes()
    clash = run(b, "--index", index, "--silent")
    assert clash.exit_code == ExitCode.USAGE, clash.output
    assert str(a) in clash.stderr and str(b) in clash.stderr
    assert "--out reports/mmlu_test" in clash.stderr
    assert (tmp_path / "reports" / "test" / "summary.json").read_bytes() == before
    again = run(a, "--index", index, "--silent")  # a rerun of the same dataset replaces its own scan
    assert again.exit_code == ExitCode.OK, again.output
    assert "replaced" not in again.stderr
    assert run(b, "--index", index, "--out", "reports/mmlu_test", "--silent").exit_code == ExitCode.OK


def test_explicit_out_replacing_another_dataset_says_so(index: Path, tmp_path: Path) -> None:
    a, b = _two_test_sets(tmp_path)
    assert run(a, "--index", index, "--out", tmp_path / "r", "--silent").exit_code == ExitCode.OK
    result = run(b, "--index", index, "--out", tmp_path / "r", "--silent")
    assert result.exit_code == ExitCode.OK, result.output
    assert f"note: replaced the scan of {a} in {tmp_path / 'r'}" in result.stderr


def test_a_moved_shard_keeps_provenance_and_says_why_there_is_no_snippet(tmp_path: Path) -> None:
    """Shard moved after the build: shard, row, id and source still reported; snippet and verification
    are null with the reason counted in summary.json and said once on stderr (never a silent null)."""
    shard = tmp_path / "corpus.jsonl"
    shutil.copy(CORPUS, shard)
    index = tmp_path / "idx"
    build_index([str(shard)], index, TextSpec(), BuildConfig(workers=1, id_field="id", source_field="source"))
    shard.rename(tmp_path / "elsewhere.jsonl")
    result = run(DATASET, "--index", index, "--out", tmp_path / "out", "--verify")
    assert result.exit_code == ExitCode.OK, result.output
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    reasons = summary["provenance"]["unavailable"]
    assert len(reasons) == 1 and "not found (moved or deleted" in next(iter(reasons))
    assert summary["provenance"]["looked_up"] == next(iter(reasons.values())) > 0
    assert "have no corpus snippet and were not verified" in result.stderr
    rows = [r for r in pq.read_table(tmp_path / "out" / "examples.parquet").to_pylist() if r["match_uri"]]
    assert rows and all(r["match_doc_id"] and r["match_source"] and r["match_row"] is not None for r in rows)
    assert all(r["match_snippet"] is None and r["match_verified"] is None for r in rows)


@pytest.mark.parametrize(("args", "needle"), [
    (["--measures", "nope"], "unknown measure"),
    (["--measure-option", "minhash=0.5"], "MEASURE.KEY=VALUE"),
])
def test_bad_measure_selection_is_a_usage_error(index: Path, tmp_path: Path, args: list[str], needle: str) -> None:
    result = run(DATASET, "--index", index, "--out", tmp_path / "out", *args)
    assert result.exit_code == ExitCode.USAGE, result.output
    assert needle in result.output


def test_measure_options_reach_the_config() -> None:
    from probe.cli import _measure_options

    assert _measure_options(("minhash.threshold=0.5", "minhash.chunk=text", "model.path=/m")) == {
        "minhash": {"threshold": 0.5, "chunk": "text"}, "model": {"path": "/m"}}
