"""Report renderers: golden report.md / junit.xml, HTML and Markdown safety, terminal, gate boundaries.

The inputs are hand-written scan outputs (tests/report_fixture.py) full of hostile strings.
Golden files live in tests/golden/; regenerate them only on purpose with
``PROBE_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_report_render.py``.
"""

from __future__ import annotations

import html.parser
import json
import os
import xml.etree.ElementTree as ET
from dataclasses import replace
from fractions import Fraction
from io import StringIO
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from probe.check import CheckLimits, parse_max_contaminated, parse_min_coverage
from probe.errors import ConfigError, InputError
from probe.gate import evaluate_gate
from probe.report._text import split_snippet, visible
from probe.report.html import CSP, render_html
from probe.report.junit import render_junit
from probe.report.markdown import MAX_BYTES, md_text, render_markdown
from probe.report.model import load_report
from probe.report.render import render_reports, safe_target, write_atomic
from probe.report.terminal import render_flagged, render_gate, render_scan_summary, workflow_commands_stopped
from probe.scan_output import CoverageStats, ScanSummary
from report_fixture import (
    ATTR_BREAKOUT,
    JS_URL,
    PWN_ATTR,
    PWN_TITLE,
    RTL,
    SCRIPT,
    write_examples,
    write_large_report_dir,
    write_report_dir,
)

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("PROBE_UPDATE_GOLDEN") == "1"


def check_golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(exist_ok=True)
        path.write_text(actual, encoding="utf-8")
    assert path.exists(), f"golden file {path} missing: run with PROBE_UPDATE_GOLDEN=1"
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, f"{name} differs from its golden file (PROBE_UPDATE_GOLDEN=1 to accept)"


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_report_dir(tmp_path_factory.mktemp("report") / "fixed")


@pytest.fixture(scope="module")
def large_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_large_report_dir(tmp_path_factory.mktemp("report") / "large")


@pytest.fixture(scope="module")
def rendered(report_dir: Path) -> dict[str, str]:
    paths = render_reports(report_dir)
    return {k: p.read_text(encoding="utf-8") for k, p in paths.items()}


def _junit(model, per_example: bool = False) -> str:
    from io import BytesIO

    buf = BytesIO()
    render_junit(model, buf, per_example=per_example)
    return buf.getvalue().decode("utf-8")


# ------------------------------------------------------------------ golden files
def test_markdown_golden(rendered: dict[str, str]) -> None:
    check_golden("report.md", rendered["markdown"])


def test_junit_golden(rendered: dict[str, str]) -> None:
    check_golden("junit.xml", rendered["junit"])


def test_junit_per_example_golden(report_dir: Path) -> None:
    check_golden("junit_per_example.xml", _junit(load_report(report_dir), per_example=True))


def test_terminal_golden(report_dir: Path) -> None:
    model = load_report(report_dir)
    buf = StringIO()
    console = Console(width=100, file=buf, no_color=True, highlight=False, emoji=False, soft_wrap=False,
                      force_terminal=False, color_system=None)
    render_flagged(model, console)
    gate = evaluate_gate(model.summary, CheckLimits(max_contaminated=1, min_coverage=0.5))
    render_gate(gate.to_dict(), console)
    text = buf.getvalue()
    assert all(len(line) <= 100 for line in text.splitlines())
    check_golden("terminal.txt", text)


# ------------------------------------------------------------------ JUnit
def test_junit_counts_and_failures(rendered: dict[str, str], report_dir: Path) -> None:
    root = ET.fromstring(rendered["junit"].encode())
    suite = root.find("testsuite")
    cases = suite.findall("testcase")
    assert int(suite.get("tests")) == len(cases) == int(root.get("tests"))
    failed = [c for c in cases if c.find("failure") is not None]
    assert int(suite.get("failures")) == len(failed) == 2
    assert {c.get("name") for c in failed} == {"subject=algebra", "subject=<b>bold</b>"}
    algebra = next(c for c in failed if c.get("name") == "subject=algebra").find("failure")
    assert "ex-001" in algebra.text and "ex-007" in algebra.text
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props["index.snapshot"] == "3" and props["definition"] == "default"


def test_junit_per_example_parses(report_dir: Path) -> None:
    root = ET.fromstring(_junit(load_report(report_dir), per_example=True).encode())
    suite = root.find("testsuite")
    cases = suite.findall("testcase")
    assert len(cases) == int(suite.get("tests")) == 8
    assert int(suite.get("failures")) == sum(c.find("failure") is not None for c in cases) == 3
    assert int(suite.get("skipped")) == sum(c.find("skipped") is not None for c in cases) == 1
    names = [c.get("name") for c in cases]
    assert "\u200b::warning::ex-008" in names  # a CI log echoing test names cannot run a workflow command
    # control characters never reach XML (they would make it unparseable)
    assert all("\x1b" not in (c.find("failure").text or "") for c in cases if c.find("failure") is not None)


def test_junit_gate_testcases(report_dir: Path) -> None:
    model = load_report(report_dir)
    model.gate = evaluate_gate(model.summary, CheckLimits(max_contaminated=0)).to_dict()
    root = ET.fromstring(_junit(model).encode())
    gate_cases = [c for c in root.iter("testcase") if c.get("classname") == "probe.gate"]
    assert [c.get("name") for c in gate_cases] == ["max_contaminated"]
    assert gate_cases[0].find("failure") is not None


# ------------------------------------------------------------------ HTML safety
class _Audit(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str, str]] = []
        self.text: list[str] = []
        self.marks: list[str] = []
        self._in_mark = 0

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += [(tag, k, v or "") for k, v in attrs]
        if tag == "mark":
            self._in_mark += 1
            self.marks.append("")

    def handle_endtag(self, tag):
        if tag == "mark":
            self._in_mark -= 1

    def handle_data(self, data):
        self.text.append(data)
        if self._in_mark:
            self.marks[-1] += data


def _audit(doc: str) -> _Audit:
    parser = _Audit()
    parser.feed(doc)
    parser.close()
    return parser


def test_html_is_inert(rendered: dict[str, str]) -> None:
    doc = rendered["html"]
    audit = _audit(doc)
    assert "script" not in audit.tags
    assert "iframe" not in audit.tags and "object" not in audit.tags and "embed" not in audit.tags
    assert "img" not in audit.tags  # probe emits no <img>; one would come from data
    assert not [a for a in audit.attrs if a[1].startswith("on")], "event-handler attribute in the report"
    for tag, name, value in audit.attrs:
        if name in ("href", "src", "action", "formaction", "xlink:href"):
            assert value.startswith("#"), f"{tag} {name}={value!r}: only in-page links are allowed"
        if name == "xmlns":
            continue
        assert "javascript:" not in value.lower()
        assert "http://" not in value and "https://" not in value, f"external URL in {tag} {name}={value!r}"
    assert "url(" not in doc and "@import" not in doc
    csp = [v for t, k, v in audit.attrs if t == "meta" and k == "content" and "default-src" in v]
    assert csp == [CSP]
    assert any(t == "meta" and k == "http-equiv" and v == "Content-Security-Policy" for t, k, v in audit.attrs)


def test_html_shows_hostile_text_literally(rendered: dict[str, str]) -> None:
    audit = _audit(rendered["html"])
    text = "".join(audit.text)
    for payload in (SCRIPT, ATTR_BREAKOUT, JS_URL, PWN_TITLE, PWN_ATTR, "{{7*7}}", "::error::pwned"):
        assert payload in text, f"{payload!r} should be visible as text"
    assert "49" not in text.split("{{7*7}}")[0][-5:]  # never evaluated as a template
    assert RTL not in rendered["html"] and "\\u202e" in text  # bidi override shown, not applied
    assert "\x1b" not in rendered["html"] and "\\u001b[2J" in text


def test_html_highlights_span_from_offsets(report_dir: Path, rendered: dict[str, str]) -> None:
    import pyarrow.parquet as pq

    rows = pq.read_table(report_dir / "examples.parquet").to_pylist()
    audit = _audit(rendered["html"])
    for rec in rows:
        for f in ("instruction", "response"):
            start, end = rec[f"{f}_longest_match_start"], rec[f"{f}_longest_match_end"]
            if start is None:
                continue
            expected = visible(rec[f"{f}_text"][start:end])
            assert expected in audit.marks, f"{rec['id']!r} {f}: span not highlighted exactly"
    # the provenance snippet's [[...]] becomes a <mark>, with data brackets elsewhere left alone
    assert f"{PWN_TITLE}{PWN_ATTR} and the quoted passage" in audit.marks
    assert "[[" not in "".join(audit.marks)


def test_html_key_sections(rendered: dict[str, str]) -> None:
    doc = rendered["html"]
    for section in ("headline", "verdicts", "coverage", "longest", "groups", "flagged", "matched", "novel",
                    "config"):
        assert f'id="{section}"' in doc
    assert doc.count('<article class="ex">') == 3  # the three contaminated examples
    assert "<svg" in doc and "0123456789abcdef" in doc  # charts inline; spec fingerprint shown


def test_html_without_text_columns(tmp_path: Path) -> None:
    """The contract's columns alone: spans are shown from FIELD_longest_match_text."""
    d = write_report_dir(tmp_path / "r", with_text=False)
    audit = _audit(render_html(load_report(d)))
    assert f"{SCRIPT} and it was copied from the corpus" in audit.marks
    assert "script" not in audit.tags


def test_split_snippet_markers() -> None:
    ctx = "x" * 160
    assert split_snippet(f"…{ctx}[[m]]{ctx}…") == (f"…{ctx}", "m", f"{ctx}…")
    assert split_snippet(f"…{ctx}[[a [[b]] c]]{ctx}…") == (f"…{ctx}", "a [[b]] c", f"{ctx}…")
    assert split_snippet("no markers") == ("no markers", "", "")
    assert split_snippet("[[all]]") == ("", "all", "")


# ------------------------------------------------------------------ Markdown safety
def test_markdown_has_no_html_links_or_commands(rendered: dict[str, str]) -> None:
    from markdown_it import MarkdownIt

    md = rendered["markdown"]
    tokens = MarkdownIt("commonmark").enable("table").enable("strikethrough").parse(md)

    def walk(ts):
        for t in ts:
            yield t
            yield from walk(t.children or [])

    kinds = {t.type for t in walk(tokens)}
    assert not kinds & {"html_inline", "html_block", "link_open", "image", "fence", "code_block"}, kinds
    for line in md.splitlines():
        assert not line.lstrip().startswith("::"), line
    assert "@octocat" not in md and "@&#8203;octocat" in md  # no mention notification
    assert "<" not in md.replace("&lt;", "")  # not a single raw angle bracket
    assert RTL not in md and "\x1b" not in md


def test_markdown_table_cells_stay_in_columns(rendered: dict[str, str]) -> None:
    """Pipes in data never add a cell: every row of a table has as many unescaped pipes as its header."""
    import re

    tables: list[list[int]] = [[]]
    for line in rendered["markdown"].splitlines():
        if line.startswith("|"):
            tables[-1].append(len(re.findall(r"(?<!\\)\|", line)))
        elif tables[-1]:
            tables.append([])
    assert len(tables) >= 6
    for widths in tables:
        assert len(set(widths)) <= 1, widths


def test_md_text_escapes() -> None:
    assert md_text("a|b") == "a\\|b"
    assert md_text("`x`") == "\\`x\\`"
    assert md_text("<img src=x>") == "&lt;img src=x&gt;"
    assert md_text("[x](javascript:alert(1))") == "\\[x\\]\\(javascript:alert\\(1\\)\\)"
    assert md_text("see https://evil.example") == "see https:&#8203;//evil.example"
    assert md_text("line1\nline2") == "line1 ↵ line2"


def test_markdown_bounded_for_10000_examples(large_dir: Path) -> None:
    model = load_report(large_dir)
    md = render_markdown(model)
    assert len(md.encode("utf-8")) < MAX_BYTES
    assert "… and" in md  # lists were cut, and say so
    assert len(model.flagged) == 50 and model.flagged_total > 1000
    assert len(model.novel) == 200 and model.novel_total > 200


# ------------------------------------------------------------------ model validation
def test_refuses_unknown_schema_version(tmp_path: Path) -> None:
    d = write_report_dir(tmp_path / "r")
    summary = json.loads((d / "summary.json").read_text())
    summary["schema_version"] = 2
    (d / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(InputError, match="schema_version 2"):
        load_report(d)


def test_refuses_missing_files_and_columns(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    with pytest.raises(InputError, match="not a report directory"):
        load_report(tmp_path / "absent")
    d = write_report_dir(tmp_path / "r")
    (d / "summary.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        load_report(d)
    d = write_report_dir(tmp_path / "r2")
    table = pq.read_table(d / "examples.parquet").drop_columns(["verdict"])
    pq.write_table(table, d / "examples.parquet")
    with pytest.raises(InputError, match="verdict"):
        load_report(d)
    d = write_report_dir(tmp_path / "r3")
    (d / "examples.parquet").write_bytes(b"PAR1 garbage")
    with pytest.raises(InputError, match="examples.parquet"):
        load_report(d)


def test_definition_checks(report_dir: Path) -> None:
    with pytest.raises(ConfigError, match="unavailable.*chars"):
        load_report(report_dir, definition="gpt4")
    with pytest.raises(ConfigError, match="not computed"):
        load_report(report_dir, definition="nope")
    model = load_report(report_dir, definition="gpt2")
    assert model.flagged_total == 1 and model.flagged[0].id == "ex-001"


def test_flagged_ordered_by_longest_match(report_dir: Path) -> None:
    model = load_report(report_dir)
    assert [i.longest_tokens for i in model.flagged] == sorted((i.longest_tokens for i in model.flagged),
                                                               reverse=True)
    assert [i.id for i in model.novel] == ["ex-004 | pipe `tick`", "ex-005 @octocat #123",
                                              "::warning::ex-008"]
    assert [i.id for i in model.matched] == ["ex-003"]


# ------------------------------------------------------------------ writing: atomic, inside the directory
def test_render_writes_only_report_files(tmp_path: Path) -> None:
    d = write_report_dir(tmp_path / "out" / "r")
    before = {p for p in tmp_path.rglob("*")}
    paths = render_reports(d)
    after = {p for p in tmp_path.rglob("*")}
    assert after - before == set(paths.values())
    assert {p.name for p in paths.values()} == {"report.html", "report.md", "junit.xml"}
    assert all(p.resolve().is_relative_to(d.resolve()) for p in paths.values())


def test_render_replaces_a_planted_symlink(tmp_path: Path) -> None:
    d = write_report_dir(tmp_path / "r")
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (d / "report.html").symlink_to(victim)
    render_reports(d)
    assert victim.read_text() == "keep me"
    assert not (d / "report.html").is_symlink()


def test_failed_write_leaves_old_report_and_no_temp(tmp_path: Path) -> None:
    d = write_report_dir(tmp_path / "r")
    (d / "report.md").write_text("old complete report")

    def boom(f):
        f.write(b"half a rep")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        write_atomic(d, "report.md", boom)
    assert (d / "report.md").read_text() == "old complete report"
    assert sorted(p.name for p in d.iterdir()) == ["examples.parquet", "report.md", "summary.json"]


HOSTILE_NAMES = ["../x", "/etc/x", "..\\x", "a\0b", "a\nb", "x" * 300, "..", ".", "", "sub/x", "ｘ/.."]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_safe_target_rejects_hostile_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError):
        safe_target(tmp_path, name)


@given(st.text(max_size=40))
def test_safe_target_never_leaves_the_directory(name: str) -> None:
    root = Path("/tmp/probe-safe-target-root")
    try:
        target = safe_target(root, name)
    except ConfigError:
        return
    assert target.parent == root.resolve()


# ------------------------------------------------------------------ terminal and CI logs
def test_terminal_neutralizes_data(report_dir: Path) -> None:
    model = load_report(report_dir)
    buf = StringIO()
    console = Console(width=100, file=buf, no_color=True, color_system=None)
    render_scan_summary(model.summary, console)
    render_flagged(model, console)
    out = buf.getvalue()
    assert "\x1b" not in out and "\r" not in out and RTL not in out
    assert not [line for line in out.splitlines() if line.lstrip().startswith("::")]
    assert "[/bold] markup" in out  # rich markup in data prints literally (and does not raise)


def test_terminal_wrapped_lines_never_start_a_workflow_command(report_dir: Path) -> None:
    model = load_report(report_dir)
    summary = replace(model.summary, dataset=replace(model.summary.dataset,
                                                     path="x " * 46 + "::error::wrapped onto its own line"))
    buf = StringIO()
    render_scan_summary(summary, Console(width=100, file=buf, no_color=True, color_system=None))
    lines = buf.getvalue().splitlines()
    assert any("::error::wrapped" in line for line in lines)
    assert not [line for line in lines if line.lstrip().startswith("::")]


def test_workflow_commands_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    buf = StringIO()
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    with workflow_commands_stopped(buf):
        buf.write("data\n")
    assert buf.getvalue() == "data\n"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    buf = StringIO()
    with workflow_commands_stopped(buf):
        buf.write("::error::from data\n")
    first, data, last = buf.getvalue().splitlines()
    token = first.removeprefix("::stop-commands::")
    assert len(token) == 32 and last == f"::{token}::" and data == "::error::from data"


# ------------------------------------------------------------------ gate boundaries
def _summary(contaminated: int, assessable: int, mean: float = 0.5) -> ScanSummary:
    """The fixture's scan summary with the numbers a gate reads replaced."""
    from report_fixture import _rows, fixed_examples
    from report_fixture import _summary as fixture_summary

    examples = fixed_examples()
    base = ScanSummary.from_dict(fixture_summary(examples, _rows(examples, True), "data.jsonl"))
    coverage = dict(base.coverage, **{"whole.surface": CoverageStats(assessable, mean, [0] * 20)})
    return replace(base, contaminated={"default": contaminated}, assessable=assessable, coverage=coverage)


@pytest.mark.parametrize(("count", "limit", "passed"), [
    (0, "0", True), (1, "0", False), (5, "5", True), (6, "5", False),
    (3, "1%", True), (4, "1%", False), (0, "0%", True), (1, "0%", False), (300, "100%", True),
    (1, "0.5%", True), (2, "0.5%", False),
])
def test_max_contaminated_boundary(count: int, limit: str, passed: bool) -> None:
    """Exactly at the limit passes; one more fails (percent of 300 assessable, exact arithmetic)."""
    result = evaluate_gate(_summary(count, 300), CheckLimits.parse(max_contaminated=limit))
    assert result.passed is passed
    assert bool(result.reasons) is not passed


@pytest.mark.parametrize(("mean", "limit", "passed"), [
    (0.5, "0.5", True), (0.499999, "0.5", False), (0.5, "50%", True), (0.2, "0", True), (0.0, "0.01", False),
])
def test_min_coverage_boundary(mean: float, limit: str, passed: bool) -> None:
    assert evaluate_gate(_summary(0, 10, mean), CheckLimits.parse(min_coverage=limit)).passed is passed


@pytest.mark.parametrize("bad", ["abc", "-1", "1.5", "101%", "-1%", "", "1e3"])
def test_max_contaminated_rejects(bad: str) -> None:
    with pytest.raises(ConfigError):
        parse_max_contaminated(bad)


def test_threshold_parsing() -> None:
    assert parse_max_contaminated("5") == 5
    assert parse_max_contaminated(" 1.5% ") == Fraction(3, 2)
    assert parse_min_coverage("25%") == 0.25
    for bad in ("1.5", "-0.1", "x", "200%"):
        with pytest.raises(ConfigError):
            parse_min_coverage(bad)
    with pytest.raises(ConfigError, match="needs a baseline"):
        evaluate_gate(_summary(0, 1), CheckLimits(max_new_contaminated=0))


def test_baseline_diff_by_id(tmp_path: Path) -> None:
    from report_fixture import fixed_examples

    base = fixed_examples()
    base_dir = write_examples(tmp_path / "base", [dict(e, flags=()) if e["id"] == "ex-007" else e for e in base])
    now_dir = write_examples(tmp_path / "now", [*base, dict(base[0], id="ex-new")])
    summary = ScanSummary.from_dict(json.loads((now_dir / "summary.json").read_text()))
    paths = {"baseline_summary_path": base_dir / "summary.json", "examples_path": now_dir / "examples.parquet"}
    result = evaluate_gate(summary, CheckLimits(max_new_contaminated=0), **paths)
    # ex-007 is a regression of an existing id; ex-new is a new row, reported apart (issue 17)
    assert result.new_contaminated_ids == ["ex-007"] and result.newly_covered_ids == []
    assert result.new_rows_ids == result.new_rows_contaminated_ids == ["ex-new"]
    assert not result.passed and "newly contaminated" in result.reasons[0]
    assert evaluate_gate(summary, CheckLimits(max_new_contaminated=1), **paths).passed  # exactly at the limit
    assert not evaluate_gate(summary, CheckLimits(max_new_contaminated=1, count_new_rows=True), **paths).passed
    assert evaluate_gate(summary, CheckLimits(max_new_contaminated=2, count_new_rows=True), **paths).passed


# --------------------------------------------------------------------------- outcomes, titles, order, charts
def test_histogram_bars_are_proportional_to_their_counts() -> None:
    import re

    from probe.report.html import _bars_svg

    svg = _bars_svg([1318, 1, 0, 40], ["a", "b", "c", "d"], "#000", height=110)
    heights = [float(h) for h in re.findall(r'<rect [^>]*height="([0-9.]+)"', svg)]
    plot = 110 - 14 - 18
    assert heights[0] == pytest.approx(plot) and heights[3] == pytest.approx(plot * 40 / 1318, abs=0.1)
    assert heights[1] == 1.5  # 1 example stays visible but is not drawn as tall as 1,318
    assert ">1,318</text>" in svg


def test_a_generic_file_name_is_titled_with_its_folder(tmp_path: Path) -> None:
    from report_fixture import fixed_examples

    gsm = load_report(write_examples(tmp_path / "a", fixed_examples(), dataset_path="data/gsm8k/test.jsonl"))
    mmlu = load_report(write_examples(tmp_path / "b", fixed_examples(), dataset_path="data/mmlu/test.jsonl"))
    assert (gsm.dataset_name, mmlu.dataset_name) == ("gsm8k/test.jsonl", "mmlu/test.jsonl")
    assert "<title>probe report: mmlu/test.jsonl</title>" in render_html(mmlu)
    assert load_report(write_examples(tmp_path / "c", fixed_examples(),
                                      dataset_path="x/alpaca_5000.jsonl")).dataset_name == "alpaca_5000.jsonl"


def test_groups_are_ordered_by_contaminated_count_when_any_is_contaminated(report_dir: Path) -> None:
    model = load_report(report_dir)
    groups, order = model.groups_ranked()
    counts = [rec.contaminated.get("default", 0) for _, rec in groups]
    assert order == "most contaminated first" and counts == sorted(counts, reverse=True) and counts[0] > 0
    assert "Per subject (most contaminated first)" in render_html(model)


def test_the_to_do_list_never_holds_a_contaminated_example_and_says_clean_for_an_eval_set(tmp_path: Path) -> None:
    from report_fixture import fixed_examples

    examples = fixed_examples()
    # a contaminated example whose verdict is novel (a rare span in a long item): leaked, not to be taught
    examples[3] = dict(examples[3], flags=("default",))
    model = load_report(write_examples(tmp_path / "t", examples))
    assert examples[3]["id"] not in {i.id for i in model.novel}
    html = render_html(model)
    assert "To do, teach explicitly" in html
    summary = json.loads((tmp_path / "t" / "summary.json").read_text())
    summary["dataset"]["kind"] = "eval"
    (tmp_path / "t" / "summary.json").write_text(json.dumps(summary))
    evals = load_report(tmp_path / "t")
    html, md = render_html(evals), render_markdown(evals)
    assert "Clean:" in html and "teach" not in html.lower().split("id=\"novel\"", 1)[1].split("</section>")[0]
    assert "Clean:" in md and "teach explicitly" not in md


def test_the_to_do_list_is_bounded_and_points_at_the_full_list(large_dir: Path) -> None:
    model = load_report(large_dir)
    html = render_html(model)
    section = html.split('<section id="novel">', 1)[1].split("</section>", 1)[0]
    # 20 ranked groups (rank, count, share) and at most 50 examples (tokens), of 3,750 novel ones
    assert len(model.todo_groups()) == 20 and section.count('<td class="n">') <= 3 * 20 + 50 < model.novel_total
    assert "… and " in section and "outcome = 'novel'" in section


def test_verification_says_stitched_not_collision() -> None:
    from probe.report.model import Provenance

    stitched = Provenance("u", 1, "d", "s", "[[x]]", True, kind="stitched", documents=2, span_tokens=20,
                          stitched_from=("d3", "d4"))
    assert stitched.verification() == "verified; stitched from 2 documents: d3, d4 (this one holds 20 tokens)"
    assert Provenance("u", 1, "d", "s", None, None, kind="single", documents=1).stitched() == ""
    assert Provenance("u", 1, "d", "s", None, False, kind="single", documents=1).verification() == \
        "NOT verified (hash collision)"
