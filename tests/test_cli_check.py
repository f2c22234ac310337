"""`probe check` and `probe report` through click's CliRunner: every documented exit code.

A tiny index is built once per module from three corpus passages; the datasets are
crafted to be clean, contaminated (one example quotes a passage), too short to
assess, or unreadable.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from probe.cli import _report_name, main

PASSAGES = [
    "The lighthouse keeper counted the gulls every morning and wrote their numbers in a blue ledger that "
    "nobody else was ever allowed to read, not even the inspector who came twice a year by boat.",
    "Copper kettles hung above the stove in the old mill kitchen, and the miller's daughter polished them "
    "each Sunday while humming songs her grandmother had brought across the mountains long ago.",
    "A narrow gauge railway once climbed the valley to the quarry, carrying slate down to the harbour in "
    "small wagons pulled by a green engine the villagers affectionately called the kettle on wheels.",
]
CLEAN = [
    {"id": "c1", "instruction": "Describe how to plant tomatoes in a small balcony garden.",
     "input": "", "output": "Choose a deep pot, use fresh compost, water at the base and give the plants sun."},
    {"id": "c2", "instruction": "Summarize the rules of chess castling for a beginner player.",
     "input": "", "output": "The king moves two squares toward a rook, which then jumps to the other side."},
]
DIRTY = {"id": "d1", "instruction": "Continue the story about the lighthouse.", "input": "",
         "output": PASSAGES[0]}


def _jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from probe.config import BuildConfig, TextSpec
    from probe.index.build import build_index

    root = tmp_path_factory.mktemp("check")
    corpus = _jsonl(root / "corpus.jsonl", [{"text": t} for t in PASSAGES])
    index = root / "index"
    build_index([str(corpus)], index, TextSpec(), BuildConfig(workers=1))
    return {
        "root": root,
        "index": index,
        "clean": _jsonl(root / "clean.jsonl", CLEAN),
        "dirty": _jsonl(root / "dirty.jsonl", [*CLEAN, DIRTY]),
        "short": _jsonl(root / "short.jsonl", [{"instruction": "Hi.", "input": "", "output": "Yes."}] * 3),
        "invalid": (root / "invalid.jsonl"),
    }


def run(*args: object) -> object:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def check(env: dict[str, Path], dataset: str, out: Path, *extra: object) -> object:
    return run("check", env[dataset], "--index", env["index"], "--out", out, *extra)


# ------------------------------------------------------------------ exit codes
def test_exit_0_clean(env: dict[str, Path], tmp_path: Path) -> None:
    result = check(env, "clean", tmp_path / "r", "--max-contaminated", "0")
    assert result.exit_code == 0, result.output
    assert "gate PASSED" in result.stdout
    assert {p.name for p in (tmp_path / "r").iterdir()} == {
        "examples.parquet", "summary.json", "gate.json", "report.html", "report.md", "junit.xml"}
    assert "✅ gate passed" in (tmp_path / "r" / "report.md").read_text()


def test_exit_1_contaminated_reports_still_written(env: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "r"
    result = check(env, "dirty", out, "--max-contaminated", "0")
    assert result.exit_code == 1, result.output
    assert "gate failed" in result.stderr and "1 contaminated example(s)" in result.stderr
    assert "gate failed" not in result.stdout  # the reason is a diagnostic: stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["contaminated"]["default"] == 1
    suite = ET.parse(out / "junit.xml").getroot()
    assert int(suite.get("failures")) >= 1
    assert "❌ gate FAILED" in (out / "report.md").read_text()
    assert 'id="gate"' in (out / "report.html").read_text()


def test_exit_at_threshold_passes(env: dict[str, Path], tmp_path: Path) -> None:
    """One contaminated example of three: a limit of 1 (or 34 %) passes, 33 % fails."""
    assert check(env, "dirty", tmp_path / "a", "--max-contaminated", "1").exit_code == 0
    assert check(env, "dirty", tmp_path / "b", "--max-contaminated", "34%").exit_code == 0
    assert check(env, "dirty", tmp_path / "c", "--max-contaminated", "33%").exit_code == 1


@pytest.mark.parametrize("extra", [
    ["--max-contaminated", "abc"],
    ["--max-contaminated", "-1"],
    ["--min-coverage", "1.5"],
    ["--max-new-contaminated", "1"],
    ["--definition", "nope"],
    ["--definition", "gpt4"],  # unavailable for a words index
    ["--baseline", "does/not/exist/summary.json"],
    ["--no-such-option"],
])
def test_exit_2_usage(env: dict[str, Path], tmp_path: Path, extra: list[str]) -> None:
    result = check(env, "clean", tmp_path / "r", *extra)
    assert result.exit_code == 2, result.output


def test_exit_3_invalid_dataset(env: dict[str, Path], tmp_path: Path) -> None:
    env["invalid"].write_text('{"instruction": "fine", "output": "fine too"}\n{not json at all\n')
    result = check(env, "invalid", tmp_path / "r")
    assert result.exit_code == 3, result.output
    assert "invalid.jsonl" in result.stderr
    result = run("check", tmp_path / "missing.jsonl", "--index", env["index"], "--out", tmp_path / "r2")
    assert result.exit_code == 3, result.output


def test_exit_4_index(env: dict[str, Path], tmp_path: Path) -> None:
    result = run("check", env["clean"], "--index", tmp_path / "no-index", "--out", tmp_path / "r")
    assert result.exit_code == 4, result.output
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "probe-index.json").write_text("{garbage")
    result = run("check", env["clean"], "--index", broken, "--out", tmp_path / "r")
    assert result.exit_code == 4, result.output


def test_exit_5_nothing_assessable(env: dict[str, Path], tmp_path: Path) -> None:
    result = check(env, "short", tmp_path / "r")
    assert result.exit_code == 5, result.output
    assert "nothing assessable" in result.stderr


# ------------------------------------------------------------------ which limits apply
def test_no_limit_given_fails_on_any_contaminated_example(env: dict[str, Path], tmp_path: Path) -> None:
    result = check(env, "dirty", tmp_path / "r", "--format", "json")
    assert result.exit_code == 1, result.output
    assert [c["name"] for c in json.loads(result.stdout)["gate"]["checks"]] == ["max_contaminated"]


def test_min_coverage_alone_gates_on_coverage_alone(env: dict[str, Path], tmp_path: Path) -> None:
    """A coverage floor given alone must not also bring in the default --max-contaminated 0."""
    passed = check(env, "dirty", tmp_path / "a", "--min-coverage", "0", "--format", "json")
    assert passed.exit_code == 0, passed.output  # one example is contaminated, but only coverage is gated
    assert [c["name"] for c in json.loads(passed.stdout)["gate"]["checks"]] == ["min_coverage"]
    failed = check(env, "dirty", tmp_path / "b", "--min-coverage", "99%")
    assert failed.exit_code == 1 and "coverage" in failed.stderr
    both = check(env, "dirty", tmp_path / "c", "--min-coverage", "0", "--max-contaminated", "0")
    assert both.exit_code == 1, both.output


def test_max_new_contaminated_alone_gates_on_the_diff_alone(env: dict[str, Path], tmp_path: Path) -> None:
    assert check(env, "dirty", tmp_path / "main", "--max-contaminated", "1").exit_code == 0
    result = check(env, "dirty", tmp_path / "pr", "--baseline", tmp_path / "main" / "summary.json",
                   "--max-new-contaminated", "0")
    assert result.exit_code == 0, result.output  # d1 was already contaminated in the baseline


def test_limit_errors_name_the_flag(env: dict[str, Path], tmp_path: Path) -> None:
    result = check(env, "clean", tmp_path / "r", "--max-contaminated", "lots")
    assert result.exit_code == 2 and "--max-contaminated" in result.stderr and "'lots'" in result.stderr
    assert not (tmp_path / "r").exists()  # refused before any work


# ------------------------------------------------------------------ the library call
def test_check_dataset_returns_the_result_and_writes_the_reports(env: dict[str, Path], tmp_path: Path) -> None:
    from probe import CheckLimits, check_dataset

    result = check_dataset(env["dirty"], env["index"], tmp_path / "r", limits=CheckLimits(max_contaminated=0))
    assert result.passed is False and result.gate.reasons == ["1 contaminated example(s) (default) > the limit of 0"]
    assert result.scan.summary.contaminated["default"] == 1
    assert [item.id for item in result.report.flagged] == ["d1"]
    assert set(result.reports) == {"html", "markdown", "junit"} and all(p.is_file() for p in result.reports.values())
    assert (result.out_dir / "gate.json").is_file()
    loose = check_dataset(env["dirty"], env["index"], limits=CheckLimits(max_contaminated=Fraction(34)))
    assert loose.passed and (loose.out_dir / "report.md").is_file()  # no out_dir: a kept temporary directory


@pytest.mark.parametrize(("kwargs", "word"), [
    ({"max_contaminated": -1}, "max_contaminated"),
    ({"max_contaminated": 0.5}, "max_contaminated"),
    ({"max_contaminated": True}, "max_contaminated"),
    ({"max_contaminated": Fraction(101)}, "max_contaminated"),
    ({"min_coverage": 1.5}, "min_coverage"),
    ({"max_new_contaminated": -1}, "max_new_contaminated"),
])
def test_check_limits_validate_without_speaking_in_flags(kwargs: dict, word: str) -> None:
    from probe import CheckLimits, ConfigError

    with pytest.raises(ConfigError, match=word) as info:
        CheckLimits(**kwargs)
    assert "--" not in str(info.value)


def test_check_limits_parse() -> None:
    from probe import CheckLimits, ConfigError

    assert CheckLimits.parse() == CheckLimits(max_contaminated=0)
    assert CheckLimits.parse("1.5%") == CheckLimits(max_contaminated=Fraction(3, 2))
    assert CheckLimits.parse(min_coverage="20%") == CheckLimits(min_coverage=0.2)
    assert CheckLimits.parse("3", "0.5", 2) == CheckLimits(3, 0.5, 2)
    assert CheckLimits.parse("3", "0.5", 2, True) == CheckLimits(3, 0.5, 2, count_new_rows=True)
    with pytest.raises(ConfigError, match="max_contaminated: expected a count") as info:
        CheckLimits.parse("1e3")
    assert "--" not in str(info.value)


def test_check_dataset_refuses_before_scanning(env: dict[str, Path], tmp_path: Path) -> None:
    from probe import CheckLimits, ConfigError, check_dataset

    for kwargs in ({"definition": "nope"}, {"limits": CheckLimits(max_new_contaminated=0)}):
        with pytest.raises(ConfigError) as info:
            check_dataset(env["dirty"], env["index"], tmp_path / "r", **{"limits": CheckLimits(), **kwargs})
        assert "--" not in str(info.value)
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------------ baseline diff
def test_baseline_reports_new_rows_apart_and_counts_them_only_when_asked(env: dict[str, Path],
                                                                         tmp_path: Path) -> None:
    assert check(env, "clean", tmp_path / "main").exit_code == 0
    baseline = tmp_path / "main" / "summary.json"
    # d1 is a new row (its id is not in the baseline): reported, but not a regression of an existing id
    result = check(env, "dirty", tmp_path / "pr", "--max-contaminated", "100%", "--baseline", baseline,
                   "--max-new-contaminated", "0", "--format", "json")
    assert result.exit_code == 0, result.output
    gate = json.loads(result.stdout)["gate"]
    assert (gate["new_contaminated_count"], gate["new_contaminated_ids"], gate["newly_covered_ids"]) == (0, [], [])
    assert (gate["new_rows_count"], gate["new_rows_ids"]) == (1, ["d1"])
    assert (gate["new_rows_contaminated_count"], gate["new_rows_contaminated_ids"]) == (1, ["d1"])
    assert gate["new_rows_counted"] is False
    # --count-new-rows: the contaminated new row counts against the limit
    counted = check(env, "dirty", tmp_path / "pr2", "--max-contaminated", "100%", "--baseline", baseline,
                    "--max-new-contaminated", "0", "--count-new-rows")
    assert counted.exit_code == 1, counted.output
    assert "1 newly contaminated example(s) (0 existing, 1 new rows) > the limit of 0" in counted.stderr
    assert "new rows (ids not in the baseline): 1: d1" in counted.stdout
    assert "new rows contaminated (counted against --max-new-contaminated): 1: d1" in counted.stdout
    assert "newly contaminated: 0" in counted.stdout
    same = check(env, "dirty", tmp_path / "main", "--baseline", baseline)
    assert same.exit_code == 2 and "overwrite" in same.stderr  # the scan would replace its own baseline


def test_baseline_regression_of_an_existing_id_fails(env: dict[str, Path], tmp_path: Path) -> None:
    """An id the baseline has as clean, contaminated now (its text changed): a regression, always counted."""
    main_data = _jsonl(tmp_path / "main.jsonl", [*CLEAN, {**DIRTY, "output": CLEAN[0]["output"]}])
    assert run("check", main_data, "--index", env["index"], "--out", tmp_path / "main").exit_code == 0
    result = check(env, "dirty", tmp_path / "pr", "--max-contaminated", "100%", "--baseline",
                   tmp_path / "main" / "summary.json", "--max-new-contaminated", "0", "--format", "json")
    assert result.exit_code == 1, result.output
    gate = json.loads(result.stdout)["gate"]
    assert (gate["new_contaminated_count"], gate["new_contaminated_ids"]) == (1, ["d1"])
    assert gate["newly_covered_ids"] == ["d1"] and gate["new_rows_count"] == 0
    assert "1 existing example(s) newly contaminated > the limit of 0" in result.stderr
    text = check(env, "dirty", tmp_path / "pr2", "--max-contaminated", "100%", "--baseline",
                 tmp_path / "main" / "summary.json", "--max-new-contaminated", "1")
    assert text.exit_code == 0, text.output
    assert "newly contaminated: 1: d1" in text.stdout
    assert "d1" in (tmp_path / "pr2" / "report.md").read_text()


def test_count_new_rows_needs_the_limit(env: dict[str, Path], tmp_path: Path) -> None:
    from probe import CheckLimits, ConfigError

    result = check(env, "dirty", tmp_path / "pr", "--count-new-rows")
    assert result.exit_code == 2 and "--max-new-contaminated" in result.stderr
    assert not (tmp_path / "pr").exists()
    with pytest.raises(ConfigError, match="count_new_rows") as info:
        CheckLimits(count_new_rows=True)
    assert "--" not in str(info.value)
    assert CheckLimits.parse(max_new_contaminated=0, count_new_rows=True).count_new_rows is True


def test_inserting_a_row_at_the_top_of_an_id_less_dataset_is_one_new_row(env: dict[str, Path],
                                                                        tmp_path: Path) -> None:
    """Issue 17: without an id column, one clean row inserted at the top shifted every row-number id, and
    `--max-new-contaminated 0` failed on an example that was contaminated on main too."""
    rows = [{k: v for k, v in r.items() if k != "id"} for r in (*CLEAN, DIRTY)]
    main_data = _jsonl(tmp_path / "main.jsonl", rows)
    pr_data = _jsonl(tmp_path / "pr.jsonl", [{"instruction": "Name three colours of the rainbow.", "input": "",
                                              "output": "Red, green and violet are three of them."}, *rows])
    assert run("check", main_data, "--index", env["index"], "--out", tmp_path / "main",
               "--max-contaminated", "1").exit_code == 0
    result = run("check", pr_data, "--index", env["index"], "--out", tmp_path / "pr", "--baseline",
                 tmp_path / "main" / "summary.json", "--max-new-contaminated", "0", "--count-new-rows",
                 "--format", "json")
    assert result.exit_code == 0, result.output
    gate = json.loads(result.stdout)["gate"]
    assert (gate["new_contaminated_count"], gate["new_rows_count"], gate["new_rows_contaminated_count"]) == (0, 1, 0)


# ------------------------------------------------------------------ probe report
def test_report_rerenders_from_files(env: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "r"
    assert check(env, "dirty", out, "--max-contaminated", "0").exit_code == 1
    for name in ("report.html", "report.md", "junit.xml"):
        (out / name).unlink()
    result = run("report", out, "--junit-per-example")
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == [str(out / n) for n in ("report.html", "report.md", "junit.xml")]
    cases = ET.parse(out / "junit.xml").getroot().iter("testcase")
    assert sorted(c.get("name") for c in cases if c.get("classname") != "probe.gate") == ["c1", "c2", "d1"]
    assert "❌ gate FAILED" in (out / "report.md").read_text()  # gate.json belongs to this scan


def test_stale_gate_is_not_shown(env: dict[str, Path], tmp_path: Path) -> None:
    """gate.json judged an earlier scan: after a new `probe scan` into the same directory it is ignored."""
    out = tmp_path / "r"
    assert check(env, "dirty", out, "--max-contaminated", "0").exit_code == 1
    assert run("scan", env["clean"], "--index", env["index"], "--out", out).exit_code == 0
    assert run("report", out).exit_code == 0
    assert "gate" not in (out / "report.md").read_text().lower()


def test_report_exit_codes(env: dict[str, Path], tmp_path: Path) -> None:
    assert run("report", tmp_path / "nothing").exit_code == 3
    out = tmp_path / "r"
    assert check(env, "clean", out).exit_code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert run("report", out, "--definition", "gpt4").exit_code == 2
    summary["schema_version"] = 99
    (out / "summary.json").write_text(json.dumps(summary))
    result = run("report", out)
    assert result.exit_code == 3 and "schema_version 99" in result.stderr


@pytest.mark.parametrize("command", [["check"], ["report"]])
def test_help(command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.exit_code == 0 and "Usage" in result.stdout


@given(st.text(min_size=1, max_size=60))
def test_default_report_name_is_one_safe_component(name: str) -> None:
    """Default --out is reports/<sanitized dataset name>: never a path separator, never '..'."""
    safe = _report_name(Path(name.replace("/", "_").replace("\0", "_")))
    assert safe and "/" not in safe and "\\" not in safe and safe not in (".", "..")
    assert (Path("reports") / safe).parent == Path("reports")


# ------------------------------------------------------------------ the shared corpus
@pytest.mark.shared
def test_gsm8k_check_agrees_with_summary(shared_data: Path, tmp_path: Path) -> None:
    index = Path(__file__).resolve().parents[1] / "indexes" / "shared"
    if not (index / "probe-index.json").is_file():
        pytest.skip(f"no shared-corpus index at {index}")
    out = tmp_path / "gsm8k"
    result = run("check", shared_data / "benchmarks" / "gsm8k" / "test.jsonl", "--index", index, "--out", out,
                 "--max-contaminated", "0")
    summary = json.loads((out / "summary.json").read_text())
    expected = 0 if summary["contaminated"]["default"] == 0 else 1
    assert result.exit_code == expected, result.output
    assert json.loads((out / "gate.json").read_text())["passed"] is (expected == 0)


def test_outcomes_follow_the_gate_s_definition(env: dict[str, Path], tmp_path: Path) -> None:
    """`probe check --definition lmeval`: an example is leaked when lmeval flags it, as the gate counts it."""
    check(env, "dirty", tmp_path / "r", "--definition", "lmeval", "--max-contaminated", "100%")
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["config"]["outcome_definition"] == "lmeval"
    assert summary["outcomes"]["leaked"] <= summary["contaminated"]["lmeval"]
    check(env, "dirty", tmp_path / "d", "--max-contaminated", "100%")
    assert json.loads((tmp_path / "d" / "summary.json").read_text())["config"]["outcome_definition"] == "default"
