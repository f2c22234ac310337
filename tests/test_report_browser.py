"""report.html in a real browser: headless Chromium loads it from disk.

Checks that the key sections render, that hostile dataset strings stay inert (a
payload that would set ``document.title = 'PWNED'`` or add a ``data-pwned``
attribute never runs, with or without the CSP), and saves a screenshot to
``reports/test-artifacts/report.png``. A positive control proves the method: the
same browser *does* run a plain inline script. Skips where Chromium is absent
(`.ci/run` installs the Debian ``chromium`` package when it can).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from probe.report.html import CSP
from probe.report.render import render_reports
from report_fixture import write_report_dir

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parents[1] / "reports" / "test-artifacts"


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if CHROMIUM is None:
        pytest.skip("chromium not installed (Debian package `chromium`)")
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
           "--disable-extensions", f"--user-data-dir={tmp_path / 'profile'}", *args]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail("chromium did not finish within 90 s")


def dump_dom(tmp_path: Path, page: Path) -> str:
    result = chromium(tmp_path, "--dump-dom", page.resolve().as_uri())
    assert result.returncode == 0 and "<html" in result.stdout, result.stderr[-2000:]
    return result.stdout


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = write_report_dir(tmp_path_factory.mktemp("browser") / "r")
    return render_reports(d)["html"]


def test_browser_renders_report_and_payloads_stay_inert(report: Path, tmp_path: Path) -> None:
    dom = dump_dom(tmp_path, report)
    assert "<title>probe report: script&gt;.jsonl</title>" in dom
    assert "PWNED</title>" not in dom and "data-pwned" not in dom.replace("data-pwned','1'", "")
    for section in ("headline", "coverage", "longest", "groups", "flagged", "novel", "config"):
        assert f'id="{section}"' in dom
    assert dom.count("<mark>") >= 3 and "<svg" in dom
    assert "&lt;script&gt;document.title='PWNED'&lt;/script&gt;" in dom  # shown as text
    assert "<script" not in dom


def test_payloads_stay_inert_without_csp(report: Path, tmp_path: Path) -> None:
    """Escaping alone protects: strip the CSP and the payloads still do nothing."""
    page = tmp_path / "no-csp.html"
    page.write_text(report.read_text(encoding="utf-8").replace(CSP, "default-src *"), encoding="utf-8")
    dom = dump_dom(tmp_path, page)
    assert "PWNED</title>" not in dom and "<script" not in dom
    assert 'data-pwned="1"' not in dom


def test_control_script_does_run(tmp_path: Path) -> None:
    """Positive control: this browser executes an inline script, so the checks above are meaningful."""
    page = tmp_path / "control.html"
    page.write_text("<!DOCTYPE html><html><head><title>clean</title></head><body>"
                    "<script>document.title='PWNED';document.body.setAttribute('data-pwned','1')</script>"
                    "</body></html>", encoding="utf-8")
    dom = dump_dom(tmp_path, page)
    assert "<title>PWNED</title>" in dom and 'data-pwned="1"' in dom


def test_screenshot_artifact(report: Path, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    result = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", "--hide-scrollbars",
                      report.resolve().as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
