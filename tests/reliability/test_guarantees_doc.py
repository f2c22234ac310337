"""docs/guarantees.md stays true: every cited test exists, every RELIABILITY.md §6 row is listed once."""

from __future__ import annotations

import re

import pytest

from helpers import REPO

DOC = REPO / "docs" / "guarantees.md"
MATRIX = REPO.parent / "shared" / "RELIABILITY.md"
ROW = re.compile(r"^\| ([A-Z]\d+) \| ([TPX]) \| (.*) \|$")


def _cited(text: str) -> list[tuple[str, str]]:
    out = []
    for line in text.splitlines():
        current = None
        for m in re.finditer(r"((?:tests/)?[\w/]+\.py)?::(test_\w+)", line):
            if m.group(1):
                current = m.group(1).removeprefix("tests/")
            assert current, f"'::{m.group(2)}' without a file in: {line}"
            out.append((current, m.group(2)))
    return out


def test_every_cited_test_exists() -> None:
    cited = _cited(DOC.read_text())
    assert len(cited) > 150
    missing = []
    for rel, name in cited:
        path = REPO / "tests" / rel
        if not path.is_file() or not re.search(rf"^\s*def {name}\(", path.read_text(), re.M):
            missing.append(f"{rel}::{name}")
    assert missing == []


def test_rows_are_unique_and_tested_rows_cite_tests() -> None:
    rows = [ROW.match(line) for line in DOC.read_text().splitlines()]
    rows = [m for m in rows if m]
    ids = [m.group(1) for m in rows]
    assert len(ids) == len(set(ids)) == 79
    for m in rows:
        if m.group(2) in "TP":
            assert "::test_" in m.group(3) or "test_" in m.group(3), m.group(0)
        else:
            assert len(m.group(3)) > 60, f"{m.group(1)}: an exclusion needs its reason"
    counts = re.search(r"(\d+) T, (\d+) P .*?, (\d+) X", DOC.read_text(), re.S)
    statuses = [m.group(2) for m in rows]
    assert counts and tuple(map(int, counts.groups())) == tuple(statuses.count(x) for x in "TPX")


def test_every_matrix_row_is_listed() -> None:
    if not MATRIX.is_file():
        pytest.skip(f"{MATRIX} not found")
    text = MATRIX.read_text()
    section = text[text.index("## 6. Test matrix"):text.index("## 7.")]
    matrix_ids = set(re.findall(r"^\| ([A-Z]\d+) \|", section, re.M))
    doc_ids = {m.group(1) for m in map(ROW.match, DOC.read_text().splitlines()) if m}
    assert matrix_ids == doc_ids
