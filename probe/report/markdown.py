"""report.md: the essentials for a pull-request comment or a GitHub step summary.

Always under 64 KB (GitHub truncates step summaries and comments beyond it): lists
are cut with "… and N more", and when the result is still too large the lists are
cut again, shorter. Data never becomes Markdown or HTML: every data string goes
through :func:`md_text`, which makes controls visible, escapes ``&``, ``<``, ``>``
as entities and all inline-significant ASCII punctuation with a backslash (pipes,
backticks, brackets, emphasis, ``$`` math), breaks ``@mentions``, ``#123``
references, ``://`` and
``www.`` autolinks with a zero-width space, and folds newlines into ``↵``. Data
never starts a line, so it cannot open a block (heading, list, fence, HTML block)
or, when the file is printed in a CI log, a workflow command.
"""

from __future__ import annotations

from typing import Any

from probe.report._text import pct as _pct
from probe.report._text import truncate, visible
from probe.report.model import OUTCOMES, SCAN_FIELDS, ExampleItem, ReportModel, measure_rows

MAX_BYTES = 64 * 1024
_BUDGET = 60 * 1024  # leave room for what CI wraps around it
_ESCAPE = set("\\`*_{}[]()!|~$")
_SPARK = " ▁▂▃▄▅▆▇█"
_LONGEST_LABELS = ("0", "1–7", "8–12", "13–19", "20–49", "50–99", "100–199", "200+")
_ZWSP = "&#8203;"


def md_text(text: Any, limit: int = 160) -> str:
    """Escape one data string for inline use (table cells, running text)."""
    s = truncate(visible("" if text is None else str(text)), limit)
    out = []
    for ch in s:
        if ch == "&":
            out.append("&amp;")
        elif ch == "<":
            out.append("&lt;")
        elif ch == ">":
            out.append("&gt;")
        elif ch in "@#":
            out.append(ch + _ZWSP)  # no @mention notifications, no #123 cross-references
        elif ch == "\n":
            out.append(" ↵ ")
        elif ch in "\t\r":
            out.append(" ")
        elif ch in _ESCAPE:
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out).replace("://", ":" + _ZWSP + "//").replace("www.", "www" + _ZWSP + ".")




def _spark(hist: list[int]) -> str:
    """One character per bin, square-root scaled so small bins stay visible."""
    top = max(hist) or 1
    return "".join(_SPARK[0] if not c else _SPARK[max(1, round(8 * (c / top) ** 0.5))] for c in hist)


def _table(header: list[str], align: list[str], rows: list[list[str]]) -> list[str]:
    sep = ["---:" if a == "r" else "---" for a in align]
    return ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |",
            *("| " + " | ".join(r) + " |" for r in rows)]


def _more(total: int, shown: int) -> list[str]:
    return [f"_… and {total - shown:,} more_", ""] if total > shown else [""]


def _headline(m: ReportModel) -> list[str]:
    s = m.summary
    gate = m.gate
    status = ""
    if gate is not None:
        status = " — ✅ gate passed" if gate.get("passed") else " — ❌ gate FAILED"
    lines = [f"## probe: {md_text(m.dataset_name, 120)}{status}", ""]
    line = (f"**{m.contaminated_count:,}** of {m.assessable:,} assessable examples ({_pct(m.contaminated_share)}) "
            f"contaminated ({md_text(m.definition)}) · outcomes: " + " · ".join(
                f"**{m.outcomes.get(k, 0):,}** {m.outcome_label(k)}" for k in ("leaked", "seen", "partial", "novel"))
            + f" ({'novel = teach explicitly' if m.kind == 'train' else 'an eval set: novel items are clean'})")
    if s.unassessable:
        line += f" · {s.unassessable:,} unassessable"
    if s.skipped:
        line += f" · {s.skipped:,} skipped"
    line += f" · mean coverage {_pct(m.mean_coverage())}"
    lines += [line, ""]
    if s.index.approximate:
        lines += ["> **Note** the index is sampled: coverages are estimates.", ""]
    return lines


def _gate(m: ReportModel, id_limit: int) -> list[str]:
    g = m.gate
    if not g:
        return []
    lines = ["### Gate", ""]
    checks = g.get("checks", [])
    if checks:
        lines += _table(["check", "limit", "actual", "result"], ["l", "r", "r", "l"],
                        [[md_text(c["name"]), md_text(c["limit"]), md_text(c["actual"]),
                          "pass" if c["passed"] else "**FAIL**"] for c in checks])
    else:
        lines.append("No thresholds were given.")
    lines.append("")
    lines += [f"- ❌ {md_text(r, 300)}" for r in g.get("reasons", [])]
    lines += [f"- ⚠️ {md_text(w, 300)}" for w in g.get("warnings", [])]
    if g.get("baseline"):
        lines += ["", f"Compared with baseline {md_text(g['baseline'], 200)}:", ""]
        for key, label in (("new_contaminated", "Newly contaminated"), ("newly_covered", "Newly covered (seen)")):
            ids = g.get(f"{key}_ids", [])
            count = int(g.get(f"{key}_count", len(ids)))
            shown = ids[:id_limit]
            listed = ", ".join(md_text(i, 60) for i in shown) or "none"
            more = f" … and {count - len(shown):,} more" if count > len(shown) else ""
            lines.append(f"- {label} ({count:,}): {listed}{more}")
    return [*lines, ""]


def _overview(m: ReportModel) -> list[str]:
    s = m.summary
    a = m.assessable
    v = s.verdicts
    o = m.outcomes
    lines = ["### Outcomes (what to do)", ""]
    lines += _table([m.outcome_label(k) for k in OUTCOMES], ["r"] * len(OUTCOMES),
                    [[f"{o.get(k, 0):,} ({_pct(o.get(k, 0) / s.examples if s.examples else 0)})" for k in OUTCOMES]])
    lines += [""] + [f"- **{m.outcome_label(k)}**: {m.outcome_action(k)}" for k in OUTCOMES if o.get(k, 0)]
    lines += ["", "### Verdicts (coverage only)", ""]
    lines += _table(["seen", "partial", "novel", "unassessable"], ["r"] * 4,
                    [[f"{v.get(k, 0):,} ({_pct(v.get(k, 0) / s.examples if s.examples else 0)})"
                      for k in ("seen", "partial", "novel", "unassessable")]])
    lines += ["", "### Contaminated per definition", ""]
    rows = [[md_text(d) + (" ◀" if d == m.definition else ""), f"{c:,}", _pct(c / a if a else 0)]
            for d, c in s.contaminated.items()]
    rows += [[md_text(d), "unavailable", md_text(why, 100)] for d, why in s.unavailable_definitions.items()]
    lines += _table(["definition", "examples", "share"], ["l", "r", "r"], rows)
    lines += ["", f"### Token coverage per field (n = {m.nmin})", ""]
    rows = []
    for f in SCAN_FIELDS:
        for view in ("surface", "pattern"):
            rec = s.coverage.get(f"{f}.{view}")
            if rec is not None:
                rows.append([f, view, f"{rec.examples:,}", _pct(rec.mean),
                             f"`{_spark([int(x) for x in rec.histogram])}`"])
    lines += _table(["field", "view", "examples", "mean", "histogram 0 → 100 %"], ["l", "l", "r", "r", "l"], rows)
    if not s.pattern_available:
        lines += ["", "_Pattern view unavailable for this index (unknown, not zero)._"]
    h = s.longest_match_histogram
    counts = [int(c) for c in h.counts]
    lines += ["", f"### Longest matched span ({m.target_field}, tokens)", ""]
    lines += _table(list(_LONGEST_LABELS[: len(counts)]), ["r"] * len(counts), [[f"{c:,}" for c in counts]])
    return [*lines, ""]


def _groups(m: ReportModel, limit: int) -> list[str]:
    groups, order = m.groups_ranked()
    if not groups or limit <= 0:
        return []
    name = md_text(m.summary.dataset.group_field or "group", 40)
    lines = [f"### Per {name} ({order})", ""]
    rows = []
    for g, rec in groups[:limit]:
        v = rec.verdicts
        rows.append([md_text(g, 60), f"{rec.examples:,}", _pct(rec.mean_coverage), f"{v.get('seen', 0):,}",
                     f"{v.get('partial', 0):,}", f"{v.get('novel', 0):,}",
                     f"{rec.contaminated.get(m.definition, 0):,}"])
    lines += _table([name, "examples", "mean coverage", "seen", "partial", "novel", "contaminated"],
                    ["l"] + ["r"] * 6, rows)
    return lines + _more(len(groups), min(limit, len(groups)))


def _span(item: ExampleItem) -> str:
    own = [fm for fm in item.matches if fm.field != "whole"] or list(item.matches)
    return " / ".join(f"{fm.field}: **{md_text(fm.match_text, 140)}**" for fm in own[:2])


def _flagged(m: ReportModel, limit: int) -> list[str]:
    lines = [f"### Flagged examples ({m.flagged_total:,} contaminated, longest match first)", ""]
    if not m.flagged:
        return [*lines, "None.", ""]
    rows = []
    for item in m.flagged[:limit]:
        p = item.provenance
        corpus = ""
        if p is not None and p.uri:
            corpus = md_text(str(p.uri).rsplit("/", 1)[-1], 60) + (f" row {p.row:,}" if p.row is not None else "")
        rows.append([md_text(item.id, 60), md_text(item.group or "", 40), item.verdict, _pct(item.coverage),
                     f"{item.longest_tokens:,}", _span(item), corpus])
    lines += _table(["id", "group", "verdict", "coverage", "longest", "longest matched span", "corpus"],
                    ["l", "l", "l", "r", "r", "l", "l"], rows)
    return lines + _more(m.flagged_total, min(limit, len(m.flagged)))


def _novel(m: ReportModel, limit: int) -> list[str]:
    """The to-do list (or, for an eval set, the clean items): groups with the most novel items first."""
    title = (f"### Clean: {m.novel_total:,} items not found in the corpus" if m.kind == "eval"
             else f"### To do, teach explicitly: {m.novel_total:,} novel examples")
    lines = [title, ""]
    if not m.novel:
        return [*lines, "None.", ""]
    s = m.summary
    groups = m.todo_groups()
    if groups and limit > 0:
        name = md_text(s.dataset.group_field or "group", 40)
        shown_groups = groups[: max(5, limit // 6)]
        lines += _table(["#", name, "novel", "share"], ["r", "l", "r", "r"],
                        [[str(k), md_text(g, 60), f"{count:,}", _pct(share)]
                         for k, (g, count, share) in enumerate(shown_groups, 1)])
        lines += _more(m.todo_groups_total, len(shown_groups))
    if limit <= 0:
        lines.append("See report.html or examples.parquet (`outcome = 'novel'`).")
    elif not s.dataset.has_id_column and m.novel_ranges:
        runs = [f"{a:,}" if a == b else f"{a:,}–{b:,}" for a, b in m.novel_ranges]
        cut = runs[: limit]
        more = ", …" if len(runs) > len(cut) or m.novel_ranges_truncated else ""
        lines.append("records (1-based): " + ", ".join(cut) + more)
    else:
        order = {g: k for k, (g, _c, _s) in enumerate(groups)}
        shown = sorted(m.novel, key=lambda i: (order.get(i.group or "", len(order)), i.row))[:limit]
        lines.append("ids: " + ", ".join(md_text(i.id, 60) for i in shown)
                     + (f" … and {m.novel_total - len(shown):,} more (examples.parquet, `outcome = 'novel'`)"
                        if m.novel_total > len(shown) else ""))
    return [*lines, ""]


def _config(m: ReportModel) -> list[str]:
    s = m.summary
    ix, ds, cfg = s.index, s.dataset, s.config
    spec = ix.spec
    th = cfg.thresholds
    ns = ",".join(str(n) for n in spec.get("ns", []))
    return [
        "---",
        "",
        f"Dataset {md_text(ds.path, 200)} (schema {md_text(ds.schema)}, {ds.records:,} "
        f"records) · index {md_text(ix.path, 200)} snapshot {md_text(ix.snapshot)} spec "
        f"{md_text(ix.spec_fingerprint)} ({md_text(spec.get('tokenizer'))}, n={ns}, "
        f"views={md_text(','.join(spec.get('views', [])))}) · target field {md_text(cfg.target_field)} · "
        f"thresholds " + ", ".join(f"{md_text(k)}={md_text(v)}" for k, v in th.items())
        + f" · {md_text(s.tool.get('name', 'probe'))} {md_text(s.tool.get('version'))}"
        f" · {md_text(s.created)}",
        "",
    ]


def _measures(m: ReportModel) -> list[str]:
    rows = measure_rows(m.summary)
    if not rows:
        return []
    lines = ["### Other measures", ""]
    body = []
    for r in rows:
        label = "estimate" if r.estimate else "exact"
        what = ("unavailable: " + md_text(r.reason, 200)) if not r.available else (
            "; ".join(f"{md_text(k, 60)} = {md_text(v, 40)}" for k, v in r.highlights) or "—")
        body.append([md_text(r.name, 40), md_text(r.title, 80), label if r.available else "—", md_text(r.cost, 80),
                     what])
    return lines + _table(["measure", "what", "values", "cost", "summary"], ["l"] * 5, body) + [""]


def render_markdown(model: ReportModel) -> str:
    """report.md as a string, always under 64 KB."""
    text = ""
    for flagged, groups, ids in ((20, 30, 60), (10, 15, 20), (5, 5, 0), (0, 0, 0)):
        lines = [*_headline(model), *_gate(model, max(ids, 10)), *_overview(model), *_groups(model, groups),
                 *_measures(model), *_flagged(model, flagged), *_novel(model, ids), *_config(model)]
        text = "\n".join(lines).rstrip("\n") + "\n"
        if len(text.encode("utf-8")) <= _BUDGET:
            return text
    return truncate(text, _BUDGET // 4)  # unreachable in practice: every list is already cut to zero
