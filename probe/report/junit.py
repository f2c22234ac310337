"""junit.xml for CI test reporters: one testcase per group, or per example.

Layout (the subset every common reporter reads: GitHub/GitLab test reports,
Jenkins, dorny/test-reporter, mikepenz/action-junit-report)::

    <testsuites name="probe" tests failures errors skipped>
      <testsuite name="probe: DATASET" tests failures errors skipped time timestamp>
        <properties> index, snapshot, spec fingerprint, definition, thresholds </properties>
        <testcase classname="probe.DATASET" name="GROUP_FIELD=GROUP">
          <failure type="contaminated" message="3 of 40 examples contaminated (default)">ids…</failure>
        </testcase>
        <testcase classname="probe.gate" name="max_contaminated"> (after `probe check`)

A testcase fails when it holds a contaminated example (under the report's
definition), is ``<skipped>`` when nothing in it is assessable, and passes
otherwise. Without a group column there is one testcase for the whole dataset.
With ``per_example`` the file is streamed example by example (bounded memory).
Every data string is made visible (no XML-illegal characters) before
ElementTree escapes it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import IO, Any

from probe.report._text import truncate, visible
from probe.report.model import EXAMPLES_NAME, ReportModel

_IDS_PER_GROUP = 50
_BATCH_ROWS = 65_536


def _v(text: Any, limit: int = 500) -> str:
    """Visible, bounded, and no line starting with ``::`` (reporters echo names and messages to CI logs)."""
    s = truncate(visible("" if text is None else str(text)), limit)
    return "\n".join("\u200b" + line if line.lstrip().startswith("::") else line for line in s.split("\n"))


def _suite_attrs(m: ReportModel, tests: int, failures: int, skipped: int) -> dict[str, str]:
    s = m.summary
    return {"name": _v(f"probe: {m.dataset_name}", 200), "tests": str(tests), "failures": str(failures),
            "errors": "0", "skipped": str(skipped), "time": f"{float(s.seconds or 0):.3f}",
            "timestamp": _v(s.created or "", 40), "hostname": "probe"}


def _properties(m: ReportModel) -> ET.Element:
    s = m.summary
    props = ET.Element("properties")
    items = [("dataset.path", s.dataset.path), ("dataset.schema", s.dataset.schema),
             ("index.path", s.index.path), ("index.snapshot", s.index.snapshot),
             ("index.spec_fingerprint", s.index.spec_fingerprint),
             ("index.approximate", s.index.approximate), ("definition", m.definition),
             ("target_field", s.config.target_field), ("examples", s.examples),
             ("assessable", s.assessable), ("contaminated", m.contaminated_count),
             ("tool.version", s.tool.get("version"))]
    items += [(f"threshold.{k}", v) for k, v in s.config.thresholds.items()]
    for name, value in items:
        ET.SubElement(props, "property", {"name": name, "value": _v(value, 300)})
    return props


def _gate_cases(m: ReportModel) -> list[ET.Element]:
    cases = []
    for check in (m.gate or {}).get("checks", []):
        case = ET.Element("testcase", {"classname": "probe.gate", "name": _v(check["name"], 100), "time": "0"})
        if not check["passed"]:
            ET.SubElement(case, "failure", {"type": "threshold", "message": _v(
                f"{check['name']}: {check['actual']} exceeds the limit {check['limit']}", 300)})
        cases.append(case)
    return cases


def _group_stats(m: ReportModel) -> dict[str | None, dict[str, Any]]:
    """Per group (None = no group column): contaminated ids (first few) with their longest span."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    target = m.target_field
    pf = pq.ParquetFile(m.report_dir / EXAMPLES_NAME)
    names = set(pf.schema_arrow.names)
    cols = ["id", "row", f"contaminated_{m.definition}", f"{target}_longest_match_tokens"]
    grouped = bool(m.summary.groups) and "group" in names
    if grouped:
        cols.append("group")
    out: dict[str | None, dict[str, Any]] = {}
    for batch in pf.iter_batches(columns=cols, batch_size=_BATCH_ROWS):
        flag = pc.fill_null(batch.column(2), False)
        hits = batch.filter(flag)
        if not hits.num_rows:
            continue
        for rec in hits.to_pylist():
            key = rec.get("group") if grouped else None
            g = out.setdefault(key, {"ids": [], "count": 0})
            g["count"] += 1
            if len(g["ids"]) < _IDS_PER_GROUP:
                g["ids"].append((rec["id"], rec["row"], rec[cols[3]] or 0))
    return out


def _failure_text(ids: list[tuple[Any, int, int]], count: int) -> str:
    lines = [f"{_v(i, 120)} (row {row:,}): longest matched span {longest:,} tokens" for i, row, longest in ids]
    if count > len(ids):
        lines.append(f"… and {count - len(ids):,} more (see report.html)")
    return "\n".join(lines)


def _group_cases(m: ReportModel) -> tuple[list[ET.Element], int, int]:
    stats = _group_stats(m)
    classname = _v(f"probe.{m.dataset_name}", 200)
    cases, failures, skipped = [], 0, 0
    groups = m.summary.groups
    field = m.summary.dataset.group_field or "group"
    items: list[tuple[str | None, int, int]]  # (group, examples, assessable)
    if groups:
        items = [(g, rec.examples, rec.assessable) for g, rec in sorted(groups.items())]
        rest = m.summary.examples - sum(r.examples for r in groups.values())
        if rest > 0 or None in stats:  # examples whose group value is null
            items.append((None, max(rest, 1), max(rest, 1)))
    else:
        items = [(None, m.summary.examples, m.assessable)]
    for g, examples, assessable in items:
        name = f"{field}={g}" if g is not None else (f"{field} missing" if groups else "all examples")
        case = ET.Element("testcase", {"classname": classname, "name": _v(name, 200), "time": "0"})
        hit = stats.get(g, {"ids": [], "count": 0})
        if hit["count"]:
            failures += 1
            failure = ET.SubElement(case, "failure", {
                "type": "contaminated",
                "message": f"{hit['count']:,} of {examples:,} examples contaminated ({m.definition})"})
            failure.text = _failure_text(hit["ids"], hit["count"])
        elif not assessable:
            skipped += 1
            ET.SubElement(case, "skipped", {"message": "no assessable example (all shorter than n tokens)"})
        cases.append(case)
    return cases, failures, skipped


def render_junit(model: ReportModel, out: IO[bytes], per_example: bool = False) -> None:
    """Write junit.xml to the binary stream ``out``."""
    m = model
    gate_cases = _gate_cases(m)
    gate_failures = sum(1 for c in gate_cases if c.find("failure") is not None)
    if per_example:
        tests = int(m.summary.examples) + len(gate_cases)
        failures = m.flagged_total + gate_failures
        skipped = int(m.summary.unassessable)
        cases: list[ET.Element] = []
    else:
        cases, failures, skipped = _group_cases(m)
        cases += gate_cases
        tests = len(cases)
        failures += gate_failures
    suites = ET.Element("testsuites", {"name": "probe", "tests": str(tests), "failures": str(failures),
                                       "errors": "0", "skipped": str(skipped)})
    suite = ET.SubElement(suites, "testsuite", _suite_attrs(m, tests, failures, skipped))
    suite.append(_properties(m))
    out.write(b'<?xml version="1.0" encoding="utf-8"?>\n')
    if not per_example:
        suite.extend(cases)
        ET.indent(suites, space="  ")
        out.write(ET.tostring(suites, encoding="utf-8", xml_declaration=False))
        out.write(b"\n")
        return
    # streamed: open tags by hand, one serialized <testcase> per example
    ET.indent(suites, space="  ")
    head = ET.tostring(suites, encoding="unicode")
    cut = head.index("</testsuite>")
    out.write(head[:cut].rstrip().encode("utf-8") + b"\n")
    for case in (*_example_cases(m), *gate_cases):
        ET.indent(case, space="  ", level=2)
        out.write(b"    " + ET.tostring(case, encoding="utf-8").strip() + b"\n")
    out.write(b"  </testsuite>\n</testsuites>\n")


def _example_cases(m: ReportModel):
    import pyarrow.parquet as pq

    target = m.target_field
    pf = pq.ParquetFile(m.report_dir / EXAMPLES_NAME)
    names = set(pf.schema_arrow.names)
    wanted = ["id", "row", "group", "verdict", "coverage", f"contaminated_{m.definition}",
              f"{target}_longest_match_tokens", f"{target}_longest_match_text", "match_uri", "match_row"]
    cols = [c for c in wanted if c in names]
    base = f"probe.{m.dataset_name}"
    for batch in pf.iter_batches(columns=cols, batch_size=_BATCH_ROWS):
        for rec in batch.to_pylist():
            group = rec.get("group")
            classname = _v(f"{base}.{group}" if group is not None else base, 200)
            case = ET.Element("testcase", {"classname": classname, "name": _v(rec["id"], 200), "time": "0"})
            if rec.get(f"contaminated_{m.definition}"):
                cov = rec.get("coverage")
                longest = rec.get(f"{target}_longest_match_tokens") or 0
                failure = ET.SubElement(case, "failure", {
                    "type": "contaminated",
                    "message": f"contaminated ({m.definition}): longest matched span {longest:,} tokens, "
                               f"coverage {100 * (cov or 0):.1f} %"})
                body = [f"longest matched span: {_v(rec.get(f'{target}_longest_match_text'), 1000)}"]
                if rec.get("match_uri"):
                    body.append(f"corpus: {_v(rec['match_uri'], 300)} row {rec.get('match_row')}")
                failure.text = "\n".join(body)
            elif rec.get("verdict") == "unassessable":
                ET.SubElement(case, "skipped", {"message": "too short to assess"})
            yield case
