"""Write report.html, report.md and junit.xml into a report directory, atomically.

Each file is written to a temp name in the same directory, fsynced, then renamed
over the final name, so a CI step never reads half a report. File names are
fixed constants (never derived from data), and every target is checked to resolve
inside the report directory (a symlink planted at a report name is replaced, not
followed).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from probe.durable import atomic_writer, remove_stale_temps
from probe.errors import ConfigError
from probe.report.model import GATE_NAME, ReportModel, load_report, run_key


def safe_target(report_dir: Path, name: str) -> Path:
    """``report_dir / name`` for a plain file name; ConfigError if it would leave the directory."""
    if not name or name in (".", "..") or any(c in name for c in "/\\\0\n\r") or len(name) > 200:
        raise ConfigError(f"invalid report file name {name!r}")
    root = Path(report_dir).resolve()
    target = root / name
    if target.parent != root:
        raise ConfigError(f"report file {name!r} would be written outside {root}")
    return target


def write_atomic(report_dir: Path, name: str, write: Callable[[IO[bytes]], None]) -> Path:
    """Write via ``write(stream)`` to a temp file, fsync, and rename it to ``name`` (:mod:`probe.durable`)."""
    target = safe_target(report_dir, name)
    with atomic_writer(target) as f:
        write(f)
    return target


def write_gate(report_dir: str | Path, gate: dict[str, Any], summary: dict[str, Any]) -> Path:
    """gate.json: the outcome of `probe check`, tied to the scan run it judged."""
    import json

    data = {**gate, "run": run_key(summary)}
    payload = (json.dumps(data, indent=2, allow_nan=False, ensure_ascii=False) + "\n").encode("utf-8")
    return write_atomic(Path(report_dir), GATE_NAME, lambda f: f.write(payload))


def render_reports(report_dir: str | Path, junit_per_example: bool = False, definition: str = "default",
                   model: ReportModel | None = None) -> dict[str, Path]:
    """Render report.html, report.md and junit.xml from the directory's scan output."""
    from probe.report.html import render_html
    from probe.report.junit import render_junit
    from probe.report.markdown import render_markdown

    report_dir = Path(report_dir)
    model = model or load_report(report_dir, definition=definition)
    remove_stale_temps(report_dir)
    html_bytes = render_html(model).encode("utf-8")
    md_bytes = render_markdown(model).encode("utf-8")
    return {
        "html": write_atomic(report_dir, "report.html", lambda f: f.write(html_bytes)),
        "markdown": write_atomic(report_dir, "report.md", lambda f: f.write(md_bytes)),
        "junit": write_atomic(report_dir, "junit.xml", lambda f: render_junit(model, f, junit_per_example)),
    }
