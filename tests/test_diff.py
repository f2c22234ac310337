"""`probe diff` / `probe.diff_scans`: two versions of a dataset, exactly the changed rows reported.

An Alpaca-like dataset (instruction/input/output, no id column: content-hash ids) is scanned,
then some of its rows are replaced (one by a corpus passage, so it is contaminated) and one row
is inserted at the top; the diff must list exactly the replaced rows as removed, their
replacements as added, and nothing for the untouched rows (whose row numbers all shifted).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_cli_check import PASSAGES, _jsonl  # the same corpus passages and JSONL writer

from probe.cli import main
from probe.errors import ConfigError, InputError

ROWS = 40
REPLACED = (5, 17, 30)


def _alpaca(i: int) -> dict:
    return {"instruction": f"Write a short note number {i} about item{i} and topic{i * 7}.", "input": "",
            "output": f"This is note {i}: item{i} matters because topic{i * 7} explains it well enough."}


@pytest.fixture(scope="module")
def scans(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from probe.config import BuildConfig, TextSpec
    from probe.index.build import build_index
    from probe.scan import scan_dataset

    root = tmp_path_factory.mktemp("diff")
    corpus = _jsonl(root / "corpus.jsonl", [{"text": t} for t in PASSAGES])
    build_index([str(corpus)], root / "index", TextSpec(), BuildConfig(workers=1))
    old = [_alpaca(i) for i in range(ROWS)]
    new = list(old)
    new[REPLACED[0]] = {"instruction": "Continue the story about the lighthouse.", "input": "", "output": PASSAGES[0]}
    for i in REPLACED[1:]:
        new[i] = _alpaca(1000 + i)
    inserted = _alpaca(5000)
    new.insert(0, inserted)
    scan_dataset(_jsonl(root / "v1.jsonl", old), root / "index", root / "v1")
    scan_dataset(_jsonl(root / "v2.jsonl", new), root / "index", root / "v2")
    return {"root": root, "v1": root / "v1", "v2": root / "v2"}


def test_exactly_the_replaced_rows_are_reported(scans: dict[str, Path]) -> None:
    from probe import DiffResult, diff_scans

    result = diff_scans(scans["v1"], scans["v2"])
    assert isinstance(result, DiffResult)
    assert (result.old_examples, result.new_examples, result.matched) == (ROWS, ROWS + 1, ROWS - len(REPLACED))
    removed = sorted(c.old_row for c in result.changes if c.kinds == ("removed",))
    added = sorted(c.new_row for c in result.changes if c.kinds[0] == "added")
    assert removed == list(REPLACED)
    assert added == [0, *(i + 1 for i in REPLACED)]  # the inserted row, and the replacements (shifted by one)
    assert result.changed == len(REPLACED) * 2 + 1  # nothing else: untouched rows match themselves
    contaminated = [c for c in result.changes if c.new_contaminated]
    assert [(c.new_row, c.new_verdict) for c in contaminated] == [(REPLACED[0] + 1, "seen")]
    assert result.totals["added"] == 4 and result.totals["removed"] == 3
    assert result.groups[""].old_examples == ROWS and result.groups[""].changes["removed"] == 3


def test_an_existing_id_that_becomes_contaminated(tmp_path: Path, scans: dict[str, Path]) -> None:
    from probe import diff_scans
    from probe.scan import scan_dataset

    old = [{"id": f"e{i}", "category": "math" if i % 2 else "art", **_alpaca(i)} for i in range(6)]
    new = [dict(r) for r in old]
    new[3]["output"] = PASSAGES[1]
    scan_dataset(_jsonl(tmp_path / "a.jsonl", old), scans["root"] / "index", tmp_path / "a")
    scan_dataset(_jsonl(tmp_path / "b.jsonl", new), scans["root"] / "index", tmp_path / "b")
    result = diff_scans(tmp_path / "a", tmp_path / "b" / "summary.json")
    (change,) = result.changes
    assert change.id == "e3" and change.group == "math"
    assert change.kinds[:2] == ("newly_contaminated", "became_covered")
    assert (change.old_contaminated, change.new_contaminated) == (False, True)
    assert result.groups["math"].changes["newly_contaminated"] == 1 and not any(result.groups["art"].changes.values())
    back = diff_scans(tmp_path / "b", tmp_path / "a")
    assert back.changes[0].kinds[:2] == ("no_longer_contaminated", "became_uncovered")


def test_refusals(scans: dict[str, Path], tmp_path: Path) -> None:
    from probe import diff_scans

    with pytest.raises(InputError, match="no scan here"):
        diff_scans(tmp_path, scans["v2"])
    with pytest.raises(ConfigError, match="'nope' was not computed"):
        diff_scans(scans["v1"], scans["v2"], definition="nope")


def run(*args: object) -> object:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_cli(scans: dict[str, Path], tmp_path: Path) -> None:
    text = run("diff", scans["v1"], scans["v2"])
    assert text.exit_code == 0, text.output
    assert f"{ROWS} → {ROWS + 1} examples, {ROWS - 3} matched by id, 7 changed" in text.stdout
    assert "newly contaminated" in text.stdout and "row 6 → —" not in text.stdout
    as_json = run("diff", scans["v1"], scans["v2"], "--format", "json")
    assert as_json.exit_code == 0 and json.loads(as_json.stdout)["changed"] == 7
    limited = run("diff", scans["v1"], scans["v2"], "--limit", "2")
    assert "… 5 more" in limited.stdout
    assert run("diff", tmp_path, scans["v2"]).exit_code == 3
    assert run("diff", scans["v1"], scans["v2"], "--definition", "nope").exit_code == 2
    assert run("diff", "--help").exit_code == 0
