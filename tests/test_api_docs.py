"""docs/api.md's examples run as written: every ```python block, in order, in one namespace.

The example writes its own tiny corpus and dataset into a temporary directory. The blocks
that use pandas (an optional dependency, in the ``test`` extra) run where pandas is
installed; without it the rest still runs, and a second test says what was skipped.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

API_DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"
_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def _blocks() -> list[str]:
    return _BLOCK.findall(API_DOC.read_text(encoding="utf-8"))


def _needs_pandas(block: str) -> bool:
    return re.search(r"^import pandas|^from pandas", block, re.MULTILINE) is not None


def _run(blocks: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    from probe import definitions, measures

    # what the example registers must not leak into other tests' scans
    monkeypatch.setattr(definitions, "_REGISTRY", dict(definitions._REGISTRY))
    monkeypatch.setattr(measures, "_REGISTRY", dict(measures._REGISTRY))
    monkeypatch.chdir(tmp_path)  # nothing the example does may land in the checkout
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR: the example's mkdtemp lands in tmp_path
    namespace: dict[str, object] = {"__name__": "__api_doc__"}
    for number, block in enumerate(blocks, 1):
        try:
            exec(compile(block, f"docs/api.md block {number}", "exec"), namespace)  # noqa: S102 - our own doc
        except Exception as e:  # noqa: BLE001 - name the block that broke
            raise AssertionError(f"docs/api.md python block {number} failed: {e!r}\n{block}") from e
    return namespace


def test_the_doc_has_the_promised_example() -> None:
    text = "\n".join(_blocks())
    for call in ("probe.build_index(", "probe.scan_dataset(", "examples.parquet", "probe.check_dataset("):
        assert call in text, call
    assert any(_needs_pandas(block) for block in _blocks())


def test_api_doc_runs_without_pandas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    namespace = _run([b for b in _blocks() if not _needs_pandas(b)], tmp_path, monkeypatch)
    result = namespace["result"]
    assert result.passed is False and Path(result.reports["html"]).is_file()  # type: ignore[attr-defined]
    assert Path(namespace["work"]).is_relative_to(tmp_path)  # type: ignore[arg-type]


def test_api_doc_runs_in_full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if importlib.util.find_spec("pandas") is None:
        pytest.skip("pandas is not installed (pip install -e '.[test]'): the DataFrame block is not run")
    namespace = _run(_blocks(), tmp_path, monkeypatch)
    assert list(namespace["flagged"]["id"]) == ["ex1"]  # type: ignore[index]
