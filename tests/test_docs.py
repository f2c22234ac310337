"""The CLI reference (docs/cli.md) is generated from the click commands and must be current.

Regenerate with ``PROBE_UPDATE_GOLDEN=1 pytest tests/test_docs.py``. A second test checks
that the README names every command and links the reference, so no command or option
can exist undocumented.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from probe.cli import main

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "docs" / "cli.md"


def _commands(group: click.Group, prefix: str) -> list[tuple[str, click.Command]]:
    out: list[tuple[str, click.Command]] = []
    for name in sorted(group.commands):
        cmd = group.commands[name]
        path = f"{prefix} {name}"
        if isinstance(cmd, click.Group):
            out.extend(_commands(cmd, path))
        else:
            out.append((path, cmd))
    return out


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def render_reference() -> str:
    lines = ["# CLI reference", "",
             "Generated from the commands themselves (`PROBE_UPDATE_GOLDEN=1 pytest tests/test_docs.py`);",
             "a test fails when it is stale. Exit codes are in the README.", ""]
    for path, cmd in _commands(main, "probe"):
        ctx = click.Context(cmd, info_name=path)
        lines += [f"## `{path}`", "", f"```\n{path} {' '.join(cmd.collect_usage_pieces(ctx))}\n```", ""]
        lines += [cmd.help.strip() if cmd.help else "", ""]
        rows = []
        for param in cmd.params:
            if isinstance(param, click.Option):
                opts = ", ".join(f"`{o}`" for o in param.opts + param.secondary_opts)
                unset = param.default in (None, False, ()) or "Sentinel" in repr(param.default) or param.is_flag
                default = "required" if param.required else ("" if unset else f"`{param.default}`")
                rows.append(f"| {opts} | {default} | {_cell(param.help or '')} |")
        if rows:
            lines += ["| option | default | meaning |", "|---|---|---|", *rows, ""]
    return "\n".join(lines).rstrip() + "\n"


def test_cli_reference_is_current() -> None:
    text = render_reference()
    if os.environ.get("PROBE_UPDATE_GOLDEN"):
        REFERENCE.write_text(text, encoding="utf-8")
    assert REFERENCE.read_text(encoding="utf-8") == text, "docs/cli.md is stale: regenerate it (see module doc)"


def test_readme_names_every_command_and_links_the_reference() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "docs/cli.md" in readme
    missing = [path for path, _cmd in _commands(main, "probe") if f"`{path}" not in readme]
    assert missing == []
