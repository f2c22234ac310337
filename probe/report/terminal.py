"""Terminal renderings with rich (fixed width when not a TTY; no color when piped).

Dataset and corpus text shown here is sanitized first: control characters are
escaped, so ANSI/OSC sequences or ``\\r`` in data cannot rewrite the terminal, a
line can never start with a CI workflow command (``::``), and rich markup in data
(``[bold]``, ``[/]``) is escaped so it prints literally instead of styling or raising.
"""

from __future__ import annotations

import contextlib
import os
import sys
import uuid
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from probe.scan_output import OUTCOMES, ScanSummary


def safe_text(text: str | None, limit: int = 120) -> str:
    """Escape control characters (repr-style) and defuse ``::`` workflow commands."""
    if text is None:
        return ""
    out = []
    for ch in text[:limit]:
        code = ord(ch)
        if ch in "\n\t":
            out.append(" ")
        elif code < 32 or code == 127 or 0x80 <= code < 0xA0 or code in (0x2028, 0x2029, 0x202E, 0x2066, 0x2067,
                                                                            0x2068, 0x2069, 0x202A, 0x202B,
                                                                            0x202C, 0x202D):
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    s = "".join(out)
    if len(text) > limit:
        s += "…"
    if s.lstrip().startswith("::"):
        s = "\u200b" + s  # a zero-width space: runners only parse commands at line start
    s = s.replace(" ::", " \u200b::")  # nor at the start of a line rich wraps at that space
    return escape(s)  # every caller prints through rich markup: "[/bold]" in data must stay text


def make_console(width: int | None = None, file: Any = None) -> Console:
    out = file or sys.stdout
    tty = hasattr(out, "isatty") and out.isatty()
    return Console(file=out, width=width or (None if tty else 100), no_color=not tty, highlight=False,
                   soft_wrap=False, emoji=False, markup=True)


def render_index_info(info: dict[str, Any], console: Console | None = None) -> None:
    console = console or make_console()
    spec = info["spec"]
    t = info["totals"]
    console.print(f"[bold]index[/] {info['index']}  snapshot {info['snapshot']} ({info['operation']}, "
                  f"{info['created']})  spec {info['spec_fingerprint']}")
    console.print(f"spec: tokenizer={spec['tokenizer']} normalizer={spec['normalizer']} views={','.join(spec['views'])} "
                  f"n={','.join(map(str, spec['ns']))} seed={spec['seed']} sample_mod={spec['sample_mod']} "
                  f"buckets={1 << spec['bucket_bits']} doc_sample_k={spec['doc_sample_k']} "
                  f"unicode={spec['unicode_version']}")
    if info["approximate"]:
        console.print(f"[yellow]sampled index (--sample-mod {spec['sample_mod']}): counts are estimates[/]")
    console.print(f"shards {t['shards']} ({t['shards_complete']} complete, {t['parts']} parts, {t['segments']} "
                  f"segments)  docs {t['docs']:,}  tokens {t['tokens']:,}  text {t['bytes_read'] / 1e6:,.1f} MB  "
                  f"on disk {info['bytes_on_disk'] / 1e6:,.1f} MB ({info['bytes_per_token']} B/token)")
    if t["skipped_records"]:
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(t["skipped_reasons"].items()))
        console.print(f"[yellow]skipped records: {t['skipped_records']:,} ({reasons})[/]")
    table = Table(title="n-grams", title_justify="left")
    for col in ("view", "n", "n-grams", "distinct", "MB", "B/distinct"):
        table.add_column(col, justify="right" if col not in ("view",) else "left")
    for row in info["ngrams"]:
        table.add_row(row["view"], str(row["n"]), f"{row['ngrams']:,}", f"{row['distinct']:,}",
                      f"{row['bytes'] / 1e6:,.1f}", str(row["bytes_per_distinct"]))
    console.print(table)
    for row in info["ngrams"]:
        if not row["top"]:
            continue
        top = Table(title=f"most frequent {row['view']} {row['n']}-grams", title_justify="left")
        top.add_column("count", justify="right")
        top.add_column("docs", justify="right")
        top.add_column("sample text")
        for item in row["top"]:
            top.add_row(f"{item['count']:,}", f"{item['docs']:,}", safe_text(item["text"], 80))
        console.print(top)
    shards = Table(title="shards", title_justify="left")
    for col in ("uri", "parts", "docs", "tokens", "skipped"):
        shards.add_column(col, justify="left" if col == "uri" else "right")
    for s in info["shards"]:
        shards.add_row(safe_text(s["uri"], 80), s["parts"], f"{s['docs']:,}", f"{s['tokens']:,}",
                       f"{s['skipped_records']:,}")
    console.print(shards)
    if info["phases"]:
        console.print("phase seconds (summed over workers): "
                      + "  ".join(f"{k} {v:.2f}" for k, v in info["phases"].items()))


def render_lookup(result: dict[str, Any], console: Console | None = None) -> None:
    console = console or make_console()
    console.print(f"{result['index']} snapshot {result['snapshot']}: {result['found']}/{len(result['ngrams'])} "
                  f"{result['view']} {result['n']}-grams found ({result['tokens']} tokens)")
    table = Table()
    for col in ("pos", "count", "docs", "n-gram"):
        table.add_column(col, justify="left" if col == "n-gram" else "right")
    for row in result["ngrams"]:
        style = "green" if row["count"] else "dim"
        table.add_row(str(row["position"]), f"{row['count']:,}", f"{row['docs']:,}", safe_text(row["ngram"], 100),
                      style=style)
    console.print(table)


def render_scan_summary(summary: ScanSummary, console: Console | None = None, definition: str = "default") -> None:
    """The scan's headline numbers: verdicts, contamination per definition, groups (counted by ``definition``)."""
    console = console or make_console()
    ds, ix = summary.dataset, summary.index
    console.print(f"[bold]scan[/] {safe_text(ds.path, 200)}  schema {ds.schema}  "
                  f"against {safe_text(ix.path, 200)} snapshot {ix.snapshot} (spec {ix.spec_fingerprint})")
    if ix.approximate:
        console.print(f"[yellow]sampled index (sample_mod {ix.sample_mod}): coverages are estimates[/]")
    console.print(f"examples {summary.examples:,}  assessable {summary.assessable:,}  "
                  f"unassessable {summary.unassessable:,}  skipped {summary.skipped:,}")
    from probe.outcomes import action

    kind = ds.kind
    if summary.outcomes:
        outcomes = Table(title=f"outcomes ({'eval set' if kind == 'eval' else 'fine-tuning data'})",
                         title_justify="left")
        for k in OUTCOMES:
            outcomes.add_column(action(kind, k)[0], justify="right")
        outcomes.add_row(*(f"{summary.outcomes.get(k, 0):,}" for k in OUTCOMES))
        console.print(outcomes)
    v = summary.verdicts
    table = Table(title="verdicts (coverage only)", title_justify="left")
    for col in ("seen", "partial", "novel", "unassessable"):
        table.add_column(col, justify="right")
    table.add_row(*(f"{v.get(k, 0):,}" for k in ("seen", "partial", "novel", "unassessable")))
    console.print(table)
    cont = Table(title="contaminated (per definition)", title_justify="left")
    cont.add_column("definition")
    cont.add_column("examples", justify="right")
    cont.add_column("share", justify="right")
    for d, count in summary.contaminated.items():
        cont.add_row(d, f"{count:,}", f"{summary.contaminated_share(d):.1%}")
    for d, why in summary.unavailable_definitions.items():
        cont.add_row(d, "unavailable", safe_text(why, 60))
    console.print(cont)
    from probe.report.model import measure_rows

    for r in measure_rows(summary):
        if r.available:
            shown = "  ".join(f"{k}={v}" for k, v in r.highlights[:4])
            console.print(f"measure {safe_text(r.name, 40)} ({'estimate' if r.estimate else 'exact'}): "
                          f"{safe_text(shown, 200)}")
        else:
            console.print(f"[yellow]measure {safe_text(r.name, 40)} unavailable:[/] {safe_text(r.reason, 200)}")
    if summary.groups:
        ranked = sorted(summary.groups.items(), key=lambda kv: -kv[1].mean_coverage)
        order = "by mean coverage"
        if any(rec.contaminated.get(definition, 0) for _, rec in ranked):  # the contaminated ones first
            ranked.sort(key=lambda kv: -kv[1].contaminated.get(definition, 0))
            order = "most contaminated first"
        groups = Table(title=f"groups ({order})", title_justify="left")
        for col in ("group", "examples", "mean coverage", "seen", "novel", f"contaminated ({definition})"):
            groups.add_column(col, justify="left" if col == "group" else "right")
        for g, rec in ranked[:25]:
            groups.add_row(safe_text(g, 40), f"{rec.examples:,}", f"{rec.mean_coverage:.1%}",
                           f"{rec.verdicts.get('seen', 0):,}", f"{rec.verdicts.get('novel', 0):,}",
                           f"{rec.contaminated.get(definition, 0):,}")
        if len(ranked) > 25:
            groups.add_row(f"… {len(ranked) - 25} more", "", "", "", "", "")
        console.print(groups)


# --------------------------------------------------------------------------- reports and the CI gate
def render_flagged(model: Any, console: Console | None = None, limit: int = 10) -> None:
    """The top flagged examples of a :class:`probe.report.model.ReportModel`, longest match first."""
    console = console or make_console()
    if not model.flagged:
        console.print(f"no example is contaminated ({safe_text(model.definition, 40)})")
        return
    table = Table(title=f"top flagged examples ({model.flagged_total:,} contaminated, {model.definition})",
                  title_justify="left")
    for col in ("id", "verdict", "coverage", "longest", "longest matched span"):
        table.add_column(col, justify="right" if col in ("coverage", "longest") else "left",
                         overflow="fold" if col == "longest matched span" else "ellipsis")
    for item in model.flagged[:limit]:
        own = [fm for fm in item.matches if fm.field != "whole"] or list(item.matches)
        span = f"{own[0].field}: {safe_text(own[0].match_text, 70)}" if own else ""
        table.add_row(safe_text(item.id, 30), item.verdict, f"{100 * (item.coverage or 0):.1f}%",
                      f"{item.longest_tokens:,}", span)
    if model.flagged_total > limit:
        table.add_row(f"… {model.flagged_total - limit:,} more", "", "", "", "")
    console.print(table)


def render_gate(gate: dict[str, Any], console: Console | None = None, id_limit: int = 20) -> None:
    """The CI gate's outcome: each check with limit and value, then the baseline diff."""
    console = console or make_console()
    verdict = "[green]PASSED[/]" if gate["passed"] else "[red bold]FAILED[/]"
    console.print(f"gate {verdict} (definition {safe_text(gate['definition'], 40)})")
    if gate["checks"]:
        table = Table(show_header=True)
        for col in ("check", "limit", "actual", "result"):
            table.add_column(col, justify="left" if col in ("check", "result") else "right")
        for c in gate["checks"]:
            table.add_row(c["name"], safe_text(c["limit"], 20), safe_text(c["actual"], 20),
                          "pass" if c["passed"] else "[red]FAIL[/]")
        console.print(table)
    else:
        console.print("no thresholds given: nothing to fail")
    for w in gate.get("warnings", []):
        console.print(f"[yellow]warning:[/] {safe_text(w, 300)}")
    if gate.get("baseline"):
        console.print(f"baseline {safe_text(gate['baseline'], 200)}")
        for key, label in (("new_contaminated", "newly contaminated"), ("newly_covered", "newly covered (seen)")):
            ids = gate.get(f"{key}_ids", [])
            count = int(gate.get(f"{key}_count", len(ids)))
            shown = ", ".join(safe_text(i, 40) for i in ids[:id_limit])
            more = f", … {count - min(id_limit, len(ids)):,} more" if count > min(id_limit, len(ids)) else ""
            console.print(f"  {label}: {count:,}" + (f": {shown}{more}" if count else ""))


@contextlib.contextmanager
def workflow_commands_stopped(stream: Any = None) -> Iterator[None]:
    """Under GitHub Actions, pause workflow-command parsing around data output.

    Prints ``::stop-commands::TOKEN`` before and ``::TOKEN::`` after (the documented
    way to echo untrusted text), so even a ``::`` line that slipped through
    :func:`safe_text` could not set outputs, masks or annotations. A no-op elsewhere.
    """
    out = stream or sys.stdout
    if os.environ.get("GITHUB_ACTIONS") != "true":
        yield
        return
    token = uuid.uuid4().hex
    out.write(f"::stop-commands::{token}\n")
    out.flush()
    try:
        yield
    finally:
        out.write(f"::{token}::\n")
        out.flush()
