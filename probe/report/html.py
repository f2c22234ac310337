"""report.html: one self-contained file (inline CSS and SVG, no JavaScript, no network).

Safety: every string that comes from the dataset, the corpus or the file system goes
through :func:`_e` (visible control/bidi escapes, then ``html.escape(quote=True)``);
nothing from data becomes a tag, an attribute name, a URL or a style. Matched spans
are highlighted by splitting the *raw* text at its offsets and escaping each piece
separately, so a ``<mark>`` can never land inside an entity or a tag. A strict CSP
``<meta>`` forbids scripts, remote resources and everything but inline style and
data: images, so even a missed escape could not run code or phone home.
"""

from __future__ import annotations

import html
from typing import Any

from probe.report._text import pct as _pct
from probe.report._text import split_snippet, split_span, truncate, visible
from probe.report.model import OUTCOMES, SCAN_FIELDS, ExampleItem, FieldMatch, ReportModel, measure_rows

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
COLORS = {"leaked": "#7b241c", "seen": "#c0392b", "partial": "#e08e0b", "novel": "#2e86de", "unassessable": "#a0a7ad"}
_LONGEST_LABELS = ("0", "1–7", "8–12", "13–19", "20–49", "50–99", "100–199", "200+")
_TEXT_CONTEXT = 240  # characters shown around a highlighted span
_MATCH_LIMIT = 1200  # characters of one matched span shown
_GROUPS_SHOWN = 100
_TODO_SHOWN = 50  # examples the to-do list names; the full list is examples.parquet

_CSS = """
:root{--fg:#1d232a;--muted:#5c6670;--line:#dde2e6;--bg:#fff;--soft:#f5f7f9;--bad:#c0392b;--ok:#1e8449}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:var(--fg);
background:var(--bg);margin:0 auto;max-width:1180px;padding:20px 24px 60px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:30px 0 8px;padding-bottom:4px;border-bottom:1px solid var(--line)}
h3{font-size:14px;margin:14px 0 6px}
.sub,.muted{color:var(--muted)}.small{font-size:12px}
nav{margin:10px 0 0;font-size:13px}nav a{margin-right:12px;color:#1f5fa8;text-decoration:none}
.lead{font-size:15px;margin:14px 0;padding:10px 14px;background:var(--soft);border-left:4px solid #2e86de}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0}
.card{flex:1 1 150px;border:1px solid var(--line);border-radius:6px;padding:10px 12px;background:#fff}
.card .v{font-size:24px;font-weight:600;font-variant-numeric:tabular-nums}.card .k{color:var(--muted);font-size:12px}
.card.bad .v{color:var(--bad)}.card.good .v{color:var(--ok)}
table{border-collapse:collapse;margin:6px 0 10px;font-variant-numeric:tabular-nums}
th,td{border-bottom:1px solid var(--line);padding:4px 10px 4px 0;text-align:left;vertical-align:top}
th{font-weight:600;color:var(--muted);font-size:12px}td.n,th.n{text-align:right;padding-left:10px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(270px,1fr));gap:14px}
.chart{border:1px solid var(--line);border-radius:6px;padding:8px 10px}
.chart .t{font-weight:600;font-size:13px}
svg text{font:10px system-ui,sans-serif;fill:#5c6670}
.ex{border:1px solid var(--line);border-radius:6px;padding:10px 12px;margin:10px 0;background:#fff}
.ex header{display:flex;flex-wrap:wrap;gap:6px 14px;align-items:baseline}
.id{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-weight:600;word-break:break-all}
.badge{display:inline-block;border-radius:10px;padding:0 8px;font-size:12px;color:#fff}
.defs{font-size:12px;color:var(--muted)}
pre.text{white-space:pre-wrap;word-break:break-word;font:12.5px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;
background:var(--soft);border:1px solid var(--line);border-radius:4px;padding:6px 8px;margin:4px 0 8px;max-height:260px;overflow:auto}
mark{background:#ffd54f;color:inherit;padding:0 1px;border-radius:2px}
.lbl{font-size:12px;color:var(--muted);margin-top:6px}
.ids{font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;line-height:1.9}
.ids span{display:inline-block;background:var(--soft);border:1px solid var(--line);border-radius:3px;padding:0 5px;margin:0 4px 0 0}
.pass{color:var(--ok);font-weight:700}.fail{color:var(--bad);font-weight:700}
.gate{border:2px solid var(--line);border-radius:6px;padding:8px 14px}.gate.failed{border-color:var(--bad)}.gate.passed{border-color:var(--ok)}
.bar{display:flex;height:12px;width:260px;border-radius:2px;overflow:hidden;background:var(--soft)}
.bar span{display:block;height:100%}
.legend span{display:inline-block;margin-right:12px;font-size:12px}
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px;vertical-align:-1px}
.warn{background:#fff4e0;border-left:4px solid #e08e0b;padding:6px 10px}
.excerpt{font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;white-space:pre-wrap;word-break:break-word}
"""


def _e(text: Any) -> str:
    """Escape anything for HTML text or a quoted attribute value."""
    return html.escape(visible("" if text is None else str(text)), quote=True)


def _num(value: Any) -> str:
    return f"{int(value):,}"




def _highlight(text: str, start: int | None, end: int | None, context: int = _TEXT_CONTEXT) -> str:
    before, span, after = split_span(text, start, end, context)
    return f"{_e(before)}<mark>{_e(truncate(span, _MATCH_LIMIT))}</mark>{_e(after)}"


def _snippet(snippet: str) -> str:
    before, span, after = split_snippet(snippet)
    if not span:
        return _e(snippet)
    return f"{_e(before)}<mark>{_e(truncate(span, _MATCH_LIMIT))}</mark>{_e(after)}"


# ---------------------------------------------------------------------- charts (inline SVG)
def _bars_svg(counts: list[int], labels: list[str], color: str, width: int = 300, height: int = 110,
              label_every: int = 1, value_labels: bool = False, unit: str = "examples",
              ticks: list[str] | None = None) -> str:
    """A bar chart on one honest linear scale: bar heights are proportional to counts.

    An earlier version clipped a first bar that dwarfed the rest, which drew 1 example as tall
    as 1,318 once the rest were rescaled. Now nothing is clipped: the tallest bar is labelled
    with its count, every other non-zero bar is at least visible (1.5 px) and its count is in
    its tooltip.
    """
    n = len(counts)
    if not n:
        return ""
    ticks = ticks or labels
    top, bottom, left = 14, 18, 4
    plot_h = height - top - bottom
    scale_max = max(counts) or 1
    tallest = counts.index(scale_max) if any(counts) else -1
    bw = (width - left) / n
    parts = [f'<svg viewBox="0 0 {width} {height}" style="width:100%;max-width:{width}px;height:auto" '
             f'role="img" xmlns="http://www.w3.org/2000/svg">',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{width}" y2="{top + plot_h}" stroke="#c9d0d6"/>']
    for i, c in enumerate(counts):
        h = plot_h * c / scale_max
        if c and h < 1.5:
            h = 1.5
        x = left + i * bw
        y = top + plot_h - h
        parts.append(f'<rect x="{x + 1:.1f}" y="{y:.1f}" width="{max(bw - 2, 1):.1f}" height="{h:.1f}" '
                     f'fill="{color}"><title>{_e(labels[i])}: {c:,} {unit}</title></rect>')
        if (value_labels and c) or i == tallest:
            parts.append(f'<text x="{x + bw / 2:.1f}" y="{max(y - 3, 10):.1f}" text-anchor="middle">{c:,}</text>')
        if i % label_every == 0 or i == n - 1:
            last = i == n - 1 and label_every > 1  # keep the final tick inside the chart
            tx, anchor = (width - 1, "end") if last else (x + bw / 2, "middle")
            parts.append(f'<text x="{tx:.1f}" y="{height - 5}" text-anchor="{anchor}">{_e(ticks[i])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _stack(parts: list[tuple[str, int]], width: int = 260) -> str:
    total = sum(c for _, c in parts) or 1
    spans = "".join(f'<span style="width:{100 * c / total:.3f}%;background:{COLORS[k]}" title="{k}: {c:,}"></span>'
                    for k, c in parts if c)
    return f'<div class="bar" style="width:{width}px">{spans}</div>'


def _legend(counts: dict[str, Any] | None = None, keys: tuple[str, ...] = ("seen", "partial", "novel", "unassessable"),
            names: dict[str, str] | None = None) -> str:
    def label(k: str) -> str:
        name = (names or {}).get(k, k)
        return f"{name} {int(counts.get(k, 0)):,}" if counts is not None else name

    return '<div class="legend">' + "".join(
        f'<span><i style="background:{COLORS[k]}"></i>{label(k)}</span>' for k in keys) + "</div>"


# ---------------------------------------------------------------------- sections
def _header(m: ReportModel) -> str:
    s, ds, ix = m.summary, m.summary.dataset, m.summary.index
    tool = s.tool
    return (f'<header><h1>probe report: <span class="id">{_e(m.dataset_name)}</span></h1>'
            f'<div class="sub">{_e(ds.path)} (schema {_e(ds.schema)}) scanned against '
            f'{_e(ix.path)} snapshot {_e(ix.snapshot)}, spec {_e(ix.spec_fingerprint)}'
            f' · {_e(s.created)} · {_e(tool.get("name", "probe"))} {_e(tool.get("version"))}</div>'
            '<nav><a href="#headline">summary</a>' + ('<a href="#gate">gate</a>' if m.gate else "")
            + '<a href="#coverage">coverage</a><a href="#longest">longest matches</a>'
            + ('<a href="#groups">groups</a>' if s.groups else "")
            + '<a href="#flagged">flagged</a><a href="#matched">other matches</a>'
            f'<a href="#novel">{"clean items" if m.kind == "eval" else "teach explicitly"}</a>'
            '<a href="#config">configuration</a></nav></header>')


def _headline(m: ReportModel) -> str:
    s, v = m.summary, m.summary.verdicts
    o = m.outcomes
    a = m.assessable
    cont = m.contaminated_count
    mean = m.mean_coverage()

    def share(k: str) -> str:
        return _pct(o.get(k, 0) / a) if a else "n/a"

    cards = [
        ("", _num(s.examples), f'examples · {_num(a)} assessable'),
        ("bad" if cont else "good", _num(cont), f'contaminated ({_e(m.definition)}) · {_pct(m.contaminated_share)}'),
        *(("", _num(o.get(k, 0)), f'{_e(m.outcome_label(k))} · {share(k)}') for k in ("leaked", "seen", "partial")),
        ("", _num(o.get("novel", 0)), f'{_e(m.outcome_label("novel"))}: {_e(m.outcome_action("novel"))} · '
                                      f'{share("novel")}'),
        ("", _pct(mean), f'mean token coverage ({_e(m.target_field)}, surface)'),
    ]
    body = "".join(f'<div class="card {c}"><div class="v">{val}</div><div class="k">{k}</div></div>'
                   for c, val, k in cards)
    th = s.config.thresholds
    lead = (f'<b>{_num(cont)}</b> of {_num(a)} assessable examples ({_pct(m.contaminated_share)}) are '
            f'contaminated under the <b>{_e(m.definition)}</b> definition. '
            f'<b>{_num(v.get("seen", 0))}</b> are <i>seen</i> (≥ {_pct(th.get("seen"))} of tokens covered by the '
            f'corpus), {_num(v.get("partial", 0))} <i>partial</i> (≥ {_pct(th.get("partial"))}) and '
            f'{_num(v.get("novel", 0))} <i>novel</i> by coverage alone. ' + _outcome_lead(m))
    if s.unassessable:
        lead += (f' {_num(s.unassessable)} example(s) are too short to assess (fewer than {m.nmin} tokens) '
                 'and are never counted as clean.')
    if s.skipped:
        lead += f' {_num(s.skipped)} record(s) had no text and were skipped.'
    warn = ""
    if s.index.approximate:
        warn = ('<p class="warn">The index is sampled (sample_mod '
                f'{_e(s.index.sample_mod)}): coverages are estimates.</p>')
    verdict_bar = _stack([(k, int(v.get(k, 0))) for k in ("seen", "partial", "novel", "unassessable")], 520)
    cont_rows = "".join(
        f'<tr><td>{_e(d)}{" ◀" if d == m.definition else ""}</td><td class="n">{_num(c)}</td>'
        f'<td class="n">{_pct(c / a if a else 0)}</td></tr>' for d, c in s.contaminated.items())
    unavailable = "".join(f'<p class="muted small">{_e(d)}: unavailable ({_e(why)})</p>'
                          for d, why in s.unavailable_definitions.items())
    outcome_bar = _stack([(k, int(o.get(k, 0))) for k in OUTCOMES], 520)
    names = {k: m.outcome_label(k) for k in OUTCOMES}
    return (f'<section id="headline"><div class="cards">{body}</div><p class="lead">{lead}</p>{warn}'
            f'<h3 id="outcomes">Outcomes</h3>{outcome_bar}{_legend(o, OUTCOMES, names)}'
            f'<h3 id="verdicts">Verdicts (coverage only)</h3>{verdict_bar}{_legend(v)}'
            f'<h3>Contaminated examples per definition</h3><table><tr><th>definition</th><th class="n">examples'
            f'</th><th class="n">share of assessable</th></tr>{cont_rows}</table>{unavailable}</section>')


def _outcome_lead(m: ReportModel) -> str:
    """One sentence per outcome present: how many, and what to do with them."""
    o = m.outcomes
    kind = "an evaluation set" if m.kind == "eval" else "fine-tuning data"
    guessed = " (guessed from its path)" if m.summary.dataset.kind_guessed else ""
    parts = [f'<b>{_num(o.get(k, 0))}</b> <i>{_e(m.outcome_label(k))}</i>: {_e(m.outcome_action(k))}'
             for k in OUTCOMES if o.get(k, 0)]
    return (f'Read as {kind}{guessed}, one outcome per example ({_e(m.summary.config.outcome_definition)} '
            f'definition): ' + "; ".join(parts) + ".")


def _gate(m: ReportModel) -> str:
    g = m.gate
    if not g:
        return ""
    ok = bool(g.get("passed"))
    rows = "".join(f'<tr><td>{_e(c["name"])}</td><td class="n">{_e(c["limit"])}</td><td class="n">{_e(c["actual"])}'
                   f'</td><td class="{"pass" if c["passed"] else "fail"}">{"pass" if c["passed"] else "FAIL"}</td></tr>'
                   for c in g.get("checks", []))
    out = [f'<section id="gate"><h2>CI gate</h2><div class="gate {"passed" if ok else "failed"}">'
           f'<p class="{"pass" if ok else "fail"}">{"PASSED" if ok else "FAILED"}</p>']
    if rows:
        out.append(f'<table><tr><th>check</th><th class="n">limit</th><th class="n">actual</th><th>result</th></tr>'
                   f'{rows}</table>')
    else:
        out.append('<p class="muted">No thresholds were given.</p>')
    out += [f'<p class="fail">{_e(r)}</p>' for r in g.get("reasons", [])]
    out += [f'<p class="warn">{_e(w)}</p>' for w in g.get("warnings", [])]
    if g.get("baseline"):
        out.append(f'<h3>Compared with baseline {_e(g["baseline"])}</h3>')
        for key, label in (("new_contaminated", "Newly contaminated"), ("newly_covered", "Newly covered (seen)")):
            ids = g.get(f"{key}_ids", [])
            count = int(g.get(f"{key}_count", len(ids)))
            out.append(f'<div class="lbl">{label}: {_num(count)}</div>' + _id_list(ids[:300], count))
    out.append("</div></section>")
    return "".join(out)


def _id_list(ids: list[str], total: int) -> str:
    if not ids:
        return '<div class="ids muted">none</div>'
    more = f' <span class="muted">… and {total - len(ids):,} more</span>' if total > len(ids) else ""
    return '<div class="ids">' + "".join(f"<span>{_e(truncate(str(i), 80))}</span>" for i in ids) + more + "</div>"


def _coverage(m: ReportModel) -> str:
    cov = m.summary.coverage
    ticks = [f"{5 * i}%" for i in range(19)] + ["100%"]
    charts = []
    for f in SCAN_FIELDS:
        for view in ("surface", "pattern"):
            rec = cov.get(f"{f}.{view}")
            if rec is None:
                continue
            hist = [int(x) for x in rec.histogram]
            covered = sum(hist[1:])
            svg = _bars_svg(hist, [f"{5 * i}–{5 * i + 5} % covered" for i in range(20)],
                            "#2e86de" if view == "surface" else "#8e44ad", label_every=4, ticks=ticks)
            charts.append(f'<div class="chart"><div class="t">{f} · {view}</div>{svg}'
                          f'<div class="small muted">{_num(rec.examples)} examples · mean {_pct(rec.mean)} · '
                          f'{_num(covered)} with ≥ 5 % of tokens covered</div></div>')
    note = "" if m.summary.pattern_available else (
        '<p class="muted small">Pattern view unavailable: the index was built without <code>--views '
        'surface,pattern</code> (pattern coverage is unknown, not zero).</p>')
    return (f'<section id="coverage"><h2>Token coverage per field</h2><p class="muted small">Share of each field\'s '
            f'tokens inside an n-gram found in the corpus (n = {m.nmin}); histogram over examples where the field '
            f'is present, bins of 5 %.</p><div class="grid">{"".join(charts)}</div>{note}</section>')


def _longest(m: ReportModel) -> str:
    h = m.summary.longest_match_histogram
    counts = [int(c) for c in h.counts]
    labels = list(_LONGEST_LABELS[: len(counts)])
    svg = _bars_svg(counts, labels, "#c0392b", width=520, height=130, value_labels=True)
    return (f'<section id="longest"><h2>Longest matched span ({_e(m.target_field)})</h2><p class="muted small">'
            f'Consecutive matched tokens of each example\'s longest run of matched {m.nmin}-grams; 0 = nothing '
            f'matched.</p>{svg}</section>')


def _groups(m: ReportModel) -> str:
    groups, order = m.groups_ranked()
    if not groups:
        return ""
    field_name = m.summary.dataset.group_field or "group"
    rows = []
    for g, rec in groups[:_GROUPS_SHOWN]:
        v = rec.verdicts
        bar = _stack([(k, int(v.get(k, 0))) for k in ("seen", "partial", "novel", "unassessable")], 220)
        cont = int(rec.contaminated.get(m.definition, 0))
        rows.append(f'<tr><td class="id">{_e(truncate(g, 80))}</td><td class="n">{_num(rec.examples)}</td>'
                    f'<td class="n">{_pct(rec.mean_coverage)}</td><td>{bar}</td>'
                    f'<td class="n">{_num(v.get("seen", 0))}</td><td class="n">{_num(v.get("partial", 0))}</td>'
                    f'<td class="n">{_num(v.get("novel", 0))}</td>'
                    f'<td class="n{" fail" if cont else ""}">{_num(cont)}</td></tr>')
    more = (f'<p class="muted">… and {len(groups) - _GROUPS_SHOWN:,} more groups (summary.json has all)</p>'
            if len(groups) > _GROUPS_SHOWN else "")
    return (f'<section id="groups"><h2>Per {_e(field_name)} ({_e(order)})</h2>{_legend()}<table><tr>'
            f'<th>{_e(field_name)}</th><th class="n">examples</th><th class="n">mean coverage</th><th>verdicts</th>'
            f'<th class="n">seen</th><th class="n">partial</th><th class="n">novel</th>'
            f'<th class="n">contaminated ({_e(m.definition)})</th></tr>{"".join(rows)}</table>{more}</section>')


def _field_matches(item: ExampleItem) -> list[FieldMatch]:
    """Per-field matches; the ``whole`` one only when no single field holds a match (it spans fields)."""
    own = [fm for fm in item.matches if fm.field != "whole"]
    return own or [fm for fm in item.matches if fm.field == "whole"]


def _example(item: ExampleItem, m: ReportModel) -> str:
    badge = item.outcome or item.verdict
    color = COLORS.get(badge, "#777")
    head = (f'<header><span class="id">{_e(truncate(item.id, 120))}</span>'
            f'<span class="badge" style="background:{color}">{_e(m.outcome_label(badge))}</span>'
            + (f'<span>group <b>{_e(truncate(item.group, 80))}</b></span>' if item.group is not None else "")
            + f'<span>row {item.row:,}</span><span>coverage {_pct(item.coverage)}</span>'
            f'<span>longest span <b>{item.longest_tokens:,}</b> tokens</span>'
            + (f'<span class="defs">flagged by: {_e(", ".join(item.definitions))}</span>' if item.definitions else "")
            + "</header>")
    body = []
    for fm in _field_matches(item):
        where = f"chars {fm.start:,}–{fm.end:,}" if fm.start is not None and fm.end is not None else ""
        label = (f'<div class="lbl"><b>{_e(fm.field)}</b> · longest match {fm.longest_tokens:,} tokens'
                 + (f' of {fm.tokens:,}' if fm.tokens is not None else "")
                 + (f' · field coverage {_pct(fm.coverage)}' if fm.coverage is not None else "")
                 + (f" · {where}" if where else "") + "</div>")
        if fm.field_text is not None:
            text = _highlight(fm.field_text, fm.start, fm.end)
        else:
            text = f"<mark>{_e(truncate(fm.match_text, _MATCH_LIMIT))}</mark>"
        body.append(f'{label}<pre class="text">{text}</pre>')
    for f, text in item.texts.items():
        if not any(fm.field == f for fm in item.matches):
            body.append(f'<div class="lbl"><b>{_e(f)}</b> (no match)</div>'
                        f'<pre class="text">{_e(truncate(text, 2 * _TEXT_CONTEXT))}</pre>')
    p = item.provenance
    if p is not None:
        where = " · ".join(x for x in (
            _e(p.uri) if p.uri else "", f"row {p.row:,}" if p.row is not None else "",
            f"doc {_e(p.doc_id)}" if p.doc_id else "", f"source {_e(p.source)}" if p.source else "",
            _stitched(p), _e(p.verification())) if x)
        body.append(f'<div class="lbl">corpus: {where}</div>')
        if p.snippet:
            body.append(f'<pre class="text">{_snippet(p.snippet)}</pre>')
    if item.joint_same_doc:
        body.append('<div class="lbl">instruction and response matches occur in the same corpus document</div>')
    return f'<article class="ex">{head}{"".join(body)}</article>'


def _stitched(p: Any) -> str:
    """Without --verify, still say when the span came from several documents."""
    return _e(p.stitched()) if p.verified is None else ""


def _flagged(m: ReportModel) -> str:
    if not m.flagged:
        return (f'<section id="flagged"><h2>Flagged examples</h2><p>No example is contaminated under the '
                f'<b>{_e(m.definition)}</b> definition.</p></section>')
    more = (f'<p class="muted">… and {m.flagged_total - len(m.flagged):,} more (examples.parquet, '
            f'<code>contaminated_{_e(m.definition)}</code>)</p>' if m.flagged_total > len(m.flagged) else "")
    return (f'<section id="flagged"><h2>Flagged examples: {_num(m.flagged_total)} contaminated '
            f'({_e(m.definition)}), longest match first</h2><p class="muted small">The highlighted text is the '
            f'longest span found in the corpus; below it, the corpus document it came from with the same span '
            f'highlighted.</p>{"".join(_example(i, m) for i in m.flagged)}{more}</section>')


def _matched(m: ReportModel) -> str:
    if not m.matched:
        return ('<section id="matched"><h2>Other matched examples</h2><p class="muted">None: every seen or partial '
                'example is flagged.</p></section>')
    rows = []
    for item in m.matched:
        fms = _field_matches(item)
        excerpt = "<br>".join(f'<span class="muted">{_e(fm.field)}:</span> <mark>{_e(truncate(fm.match_text, 200))}'
                              f'</mark>' for fm in fms)
        rows.append(f'<tr><td class="id">{_e(truncate(item.id, 60))}</td><td>{_e(item.verdict)}</td>'
                    f'<td class="n">{_pct(item.coverage)}</td><td class="n">{item.longest_tokens:,}</td>'
                    f'<td class="excerpt">{excerpt}</td></tr>')
    more = (f'<p class="muted">… and {m.matched_total - len(m.matched):,} more</p>'
            if m.matched_total > len(m.matched) else "")
    return (f'<section id="matched"><h2>Other matched examples: {_num(m.matched_total)} seen or partial, not '
            f'flagged</h2><p class="muted small">Covered by the corpus but below the contamination definition: '
            f'often common phrases, quotations or boilerplate. Highest coverage first.</p><table><tr><th>id</th>'
            f'<th>verdict</th><th class="n">coverage</th><th class="n">longest</th><th>longest matched span</th>'
            f'</tr>{"".join(rows)}</table>{more}</section>')


def _ranges_text(m: ReportModel) -> str:
    runs = ", ".join(f"{a:,}" if a == b else f"{a:,}–{b:,}" for a, b in m.novel_ranges)
    return runs + (", …" if m.novel_ranges_truncated else "")


def _novel(m: ReportModel) -> str:
    """The to-do list: groups with the most novel items first, a bounded number of items, the rest in a file."""
    s = m.summary
    if m.kind == "eval":
        head = (f'<section id="novel"><h2>Clean: {_num(m.novel_total)} items not found in the corpus</h2>'
                f'<p class="muted small">No rare match in the corpus (and not contaminated): nothing to drop.</p>')
    else:
        head = (f'<section id="novel"><h2>To do, teach explicitly: {_num(m.novel_total)} novel examples</h2>'
                f'<p class="muted small">Less than {_pct(s.config.thresholds.get("partial"))} of their tokens '
                f'are covered by the corpus (or only by boilerplate n-grams) and none is contaminated: the model '
                f'has not seen this material in pretraining. Groups with the most novel examples first.</p>')
    if not m.novel:
        return head + "<p>None.</p></section>"
    body = ""
    groups = m.todo_groups()
    name = _e(s.dataset.group_field or "group")
    if groups:
        rows = "".join(f'<tr><td class="n">{rank}</td><td class="id">{_e(truncate(g, 80))}</td>'
                       f'<td class="n">{_num(count)}</td><td class="n">{_pct(share)}</td></tr>'
                       for rank, (g, count, share) in enumerate(groups, 1))
        more = (f'<p class="muted">… and {m.todo_groups_total - len(groups):,} more (summary.json, '
                f'<code>groups</code>)</p>' if m.todo_groups_total > len(groups) else "")
        body += (f'<h3>By {name}</h3><table><tr><th class="n">#</th><th>{name}</th><th class="n">novel</th>'
                 f'<th class="n">share of the {name}</th></tr>{rows}</table>{more}')
    order = {g: k for k, (g, _c, _s) in enumerate(groups)}
    shown = sorted(m.novel, key=lambda i: (order.get(i.group or "", len(order)), i.row))[:_TODO_SHOWN]
    if any(i.texts for i in shown):
        rows = "".join(
            f'<tr><td class="id">{_e(truncate(i.id, 60))}</td><td>{_e(truncate(i.group, 40)) if i.group else ""}</td>'
            f'<td class="n">{_num(i.tokens or 0)}</td><td class="excerpt">'
            f'{_e(truncate(" / ".join(t for t in i.texts.values()), 300))}</td></tr>' for i in shown)
        body += (f'<h3>First {len(shown):,} examples</h3><table><tr><th>id</th><th>group</th><th class="n">tokens'
                 f'</th><th>text</th></tr>{rows}</table>')
    elif not s.dataset.has_id_column and m.novel_ranges:
        # ids are record numbers: runs say it in a line ("1–134, 137–243, ...") where chips would fill a page
        body += (f'<h3>Records (1-based line/row numbers in the dataset)</h3>'
                 f'<p class="ids">{_e(_ranges_text(m))}</p>')
    else:
        by_group: dict[str, list[ExampleItem]] = {}
        for i in shown:
            by_group.setdefault(i.group or "", []).append(i)
        body += f"<h3>First {len(shown):,} examples</h3>"
        for g, items in by_group.items():
            if g:
                body += f'<div class="lbl">{_e(truncate(g, 80))}</div>'
            body += '<div class="ids">' + "".join(
                f'<span title="row {i.row:,}, {i.tokens or 0:,} tokens">{_e(truncate(i.id, 60))}</span>'
                for i in items) + "</div>"
    more = (f'<p class="muted small">The full list is the rows of <code>examples.parquet</code> with '
            f'<code>outcome = \'novel\'</code>, e.g. in Python: <code>pyarrow.parquet.read_table('
            f'\'{_e(m.report_dir / "examples.parquet")}\', filters=[(\'outcome\', \'=\', \'novel\')])</code>.</p>'
            if m.novel_total > len(shown) else "")
    return head + body + more + "</section>"


def _config(m: ReportModel) -> str:
    s = m.summary
    ds, ix, cfg = s.dataset, s.index, s.config

    def kv(rows: list[tuple[str, Any]]) -> str:
        return "<table>" + "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in rows) + "</table>"

    mapping = "<br>".join(f"{_e(k)} ← {_e(v)}" for k, v in (ds.mapping or {}).items())
    skipped = "<br>".join(f"{_e(k)}: {_num(v)}" for k, v in (ds.skipped_reasons or {}).items())
    skipped_ex = "<br>".join(_e(truncate(str(x), 200)) for x in (ds.skipped_examples or [])[:10])
    spec = ix.spec
    spec_s = " · ".join(f"{_e(k)}={_e(v if not isinstance(v, list) else ','.join(map(str, v)))}"
                        for k, v in spec.items() if v is not None)
    thresholds = " · ".join(f"{_e(k)}={_e(v)}" for k, v in cfg.thresholds.items())
    return ("<section id=\"config\"><h2>Configuration</h2><h3>Dataset</h3>" + kv([
        ("path", _e(ds.path)), ("schema", _e(ds.schema)), ("fields", mapping or "—"),
        ("id field", _e(ds.id_field or "— (record number)")), ("group field", _e(ds.group_field or "—")),
        ("records", _num(ds.records)), ("skipped", f"{_num(ds.skipped)}"
                                                             + (f"<br>{skipped}" if skipped else "")),
        ("skipped (first)", skipped_ex or "—"),
    ]) + "<h3>Index</h3>" + kv([
        ("path", _e(ix.path)), ("snapshot", _e(ix.snapshot)),
        ("spec fingerprint", _e(ix.spec_fingerprint)), ("spec", spec_s),
        ("approximate", "yes (sampled)" if ix.approximate else "no (exact)"),
    ]) + "<h3>Scan</h3>" + kv([
        ("definitions", _e(", ".join(cfg.definitions))), ("report definition", _e(m.definition)),
        ("target field", _e(cfg.target_field)), ("verify", _e(cfg.verify)),
        ("thresholds", thresholds), ("lookups", _num(s.lookups)),
        ("seconds", _e(s.seconds)), ("created", _e(s.created)),
        ("tool", _e(f'{s.tool.get("name", "probe")} {s.tool.get("version", "")}')),
    ]) + "</section>")


def _measures(m: ReportModel) -> str:
    rows = measure_rows(m.summary)
    if not rows:
        return ""
    body = "".join(
        f'<tr><td class="id">{_e(r.name)}</td><td>{_e(r.title)}</td>'
        f'<td>{"estimate" if r.estimate else "exact" if r.available else "—"}</td><td>{_e(r.cost)}</td><td>'
        + (f'<span class="warn">unavailable: {_e(r.reason)}</span>' if not r.available else
           "<br>".join(f"{_e(k)} = {_e(v)}" for k, v in r.highlights) or "—")
        + "</td></tr>" for r in rows)
    return ('<section id="measures"><h2>Other measures</h2><p class="muted small">Evidence beyond exact n-grams '
            '(per-example columns in <code>examples.parquet</code>, aggregates under <code>measures</code> in '
            '<code>summary.json</code>); an unavailable measure is never counted as 0.</p><table><tr><th>measure'
            '</th><th>what</th><th>values</th><th>cost</th><th>summary</th></tr>' + body + "</table></section>")


def render_html(model: ReportModel) -> str:
    """The whole report as one HTML document (a string)."""
    m = model
    sections = [_header(m), _headline(m), _gate(m), _coverage(m), _longest(m), _groups(m), _measures(m),
                _flagged(m), _matched(m), _novel(m), _config(m)]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="referrer" content="no-referrer">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>probe report: {_e(m.dataset_name)}</title><style>{_CSS}</style></head><body>"
            + "".join(sections)
            + '<footer class="muted small"><p>Generated by probe from summary.json and examples.parquet. '
              'No scripts, no network: this file is self-contained.</p></footer></body></html>\n')
