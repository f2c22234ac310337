"""scripts/setup.sh installs what its caller needs: the demo the base package, the tests the test extras."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import REPO


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    """A copy of the scripts with a fake ``.venv/bin/python`` that logs its pip commands instead of running them."""
    shutil.copytree(REPO / "scripts", tmp_path / "scripts")
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    fake = tmp_path / ".venv" / "bin" / "python"
    fake.parent.mkdir(parents=True)
    fake.write_text(f'#!/bin/sh\necho "$*" >> {tmp_path / "pip.log"}\n')
    fake.chmod(0o755)
    return tmp_path


def installs(sandbox: Path, *args: str, env: dict[str, str] | None = None) -> list[str]:
    log = sandbox / "pip.log"
    log.unlink(missing_ok=True)
    subprocess.run(["bash", str(sandbox / "scripts" / "setup.sh"), *args], check=True, timeout=60,
                   env={"PATH": "/usr/bin:/bin", **(env or {})})
    return [line.removeprefix("-m pip install --quiet ") for line in log.read_text().splitlines()
            if "-e" in line] if log.exists() else []


def test_setup_installs_base_for_the_demo_and_test_extras_for_the_tests(sandbox: Path) -> None:
    assert installs(sandbox, "base") == ["-e ."]
    assert installs(sandbox, "base") == []  # idempotent
    assert installs(sandbox) == ["-e .[test]"]  # the default: what scripts/test.sh and the README use
    assert installs(sandbox, "test") == []
    assert installs(sandbox, "base") == []  # the test install holds the base package too
    assert installs(sandbox, env={"PROBE_EXTRAS": "test,ray"}) == ["-e .[test,ray]"]


def test_demo_script_asks_for_the_base_package_and_test_script_for_the_extras() -> None:
    assert "bash scripts/setup.sh base" in (REPO / "scripts" / "demo.sh").read_text()
    assert "bash scripts/setup.sh test" in (REPO / "scripts" / "test.sh").read_text()


def test_setup_refuses_a_malformed_extras_argument(sandbox: Path) -> None:
    res = subprocess.run(["bash", str(sandbox / "scripts" / "setup.sh"), "test; rm -rf /"], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 2 and "expected 'base' or comma-separated extras" in res.stderr
