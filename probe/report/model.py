"""The report model: what every renderer shows, loaded from a scan's report directory.

A report directory holds ``summary.json`` and ``examples.parquet`` (the contract in
docs/scan-output.md) and, after ``probe check``, ``gate.json``. :func:`load_report`
validates them and selects the few examples a person needs to see, reading the
Parquet file twice with column projection: one pass over five narrow columns to
rank, then only the selected rows' display columns. The model stays bounded
whatever the number of examples: at most ``top_flagged`` flagged examples,
``top_matched`` other matched ones and ``novel_limit`` novel ones are loaded.

Renderers (terminal, Markdown, HTML, JUnit) read only this model.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from probe.errors import ConfigError, InputError
from probe.scan_output import (
    OUTCOMES,
    SCAN_FIELDS,
    SCHEMA_VERSION,
    TEXT_FIELDS,
    VERDICTS,
    GroupStats,
    ScanSummary,
)

__all__ = ["SCAN_FIELDS", "SCHEMA_VERSION", "TEXT_FIELDS", "VERDICTS", "ExampleItem", "FieldMatch", "MeasureRow",
           "Provenance", "ReportModel", "check_definition", "load_report", "measure_rows", "read_summary", "run_key"]

SUMMARY_NAME = "summary.json"
EXAMPLES_NAME = "examples.parquet"
GATE_NAME = "gate.json"
TOP_FLAGGED = 50
TOP_MATCHED = 20
NOVEL_LIMIT = 200
TODO_GROUPS = 20  # groups the to-do list ranks (most novel items first); summary.json has them all
# file names that do not tell two datasets apart ("test.jsonl" of gsm8k and of mmlu): titled with their folder
GENERIC_STEMS = frozenset({"test", "train", "dev", "val", "valid", "validation", "eval", "data", "dataset",
                           "examples", "all", "default", "main", "input", "sample"})
NOVEL_RANGES = 300
_BATCH_ROWS = 65_536


@dataclass(frozen=True)
class FieldMatch:
    """The longest matched span of one field of one example."""

    field: str
    tokens: int | None  # tokens of the field
    coverage: float | None  # token coverage at the smallest n (surface)
    longest_tokens: int
    match_text: str
    start: int | None  # character offsets of the span into the field's text
    end: int | None
    field_text: str | None = None  # the field's text, when the scan stored it (optional column FIELD_text)


@dataclass(frozen=True)
class Provenance:
    """Where in the corpus an example's longest match was found."""

    uri: str | None
    row: int | None
    doc_id: str | None
    source: str | None
    snippet: str | None  # the corpus text around the match, the match between [[ and ]]
    verified: bool | None
    kind: str | None = None  # "single": one document holds the whole span; "stitched": several do
    documents: int | None = None  # documents the span was stitched from (1: single)
    span_tokens: int | None = None  # tokens of the span this document holds
    stitched_from: tuple[str, ...] = ()  # a stitched span's documents, in the order the span reaches them

    def verification(self) -> str:
        """What --verify found, in words ("" without --verify)."""
        if self.verified is None:
            return ""
        if not self.verified:
            return "NOT verified (hash collision)"
        if self.kind == "stitched":
            return f"verified; {self.stitched()}"
        return "verified"

    def stitched(self) -> str:
        """A stitched span in words: its documents and how much of it this one holds ("" when single)."""
        if self.kind != "stitched":
            return ""
        names = f": {', '.join(self.stitched_from[:6])}{', …' if len(self.stitched_from) > 6 else ''}" \
            if self.stitched_from else ""
        return (f"stitched from {self.documents or len(self.stitched_from) or 2} documents{names} "
                f"(this one holds {self.span_tokens} tokens)")


@dataclass(frozen=True)
class ExampleItem:
    """One example as the reports list it."""

    id: str
    row: int
    group: str | None
    verdict: str
    coverage: float | None  # the verdict's score (best of surface/pattern, target field)
    tokens: int | None  # tokens of the target field
    longest_tokens: int  # longest matched span of the target field
    contaminated: bool  # under the report's definition
    definitions: tuple[str, ...] = ()  # every computed definition that flags it
    matches: tuple[FieldMatch, ...] = ()
    provenance: Provenance | None = None
    joint_same_doc: bool | None = None
    texts: dict[str, str] = field(default_factory=dict)  # optional FIELD_text columns
    outcome: str | None = None  # None in scans older than outcomes


@dataclass
class ReportModel:
    """Everything the renderers need, bounded in size."""

    report_dir: Path
    summary: ScanSummary
    definition: str
    target_field: str
    nmin: int
    flagged: list[ExampleItem]
    flagged_total: int
    matched: list[ExampleItem]  # seen/partial but not flagged: near misses worth a look
    matched_total: int
    novel: list[ExampleItem]
    novel_total: int
    gate: dict[str, Any] | None = None
    # novel examples as runs of 1-based record numbers (first NOVEL_RANGES runs; complete when not truncated)
    novel_ranges: list[tuple[int, int]] = field(default_factory=list)
    novel_ranges_truncated: bool = False

    # ------------------------------------------------------------------ derived numbers
    @property
    def dataset_name(self) -> str:
        """The dataset's file name, with its folder when the name is generic (``mmlu/test.jsonl``)."""
        path = Path(self.summary.dataset.path or "dataset")
        name = path.name or "dataset"
        stem = name.split(".", 1)[0].lower()
        generic = stem in GENERIC_STEMS or stem.split("-", 1)[0].split("_", 1)[0] in GENERIC_STEMS
        return f"{path.parent.name}/{name}" if generic and path.parent.name not in ("", ".") else name

    @property
    def kind(self) -> str:
        """``train`` or ``eval`` (summary.json's dataset.kind): what the outcomes ask to do."""
        return self.summary.dataset.kind

    def outcome_label(self, outcome: str) -> str:
        """How the reports name an outcome for this kind of dataset (``novel`` is ``clean`` in an eval set)."""
        from probe.outcomes import action

        return action(self.kind, outcome)[0]

    def outcome_action(self, outcome: str) -> str:
        from probe.outcomes import action

        return action(self.kind, outcome)[1]

    @property
    def outcomes(self) -> dict[str, int]:
        """Outcome counts; a summary older than outcomes falls back to its verdicts (no ``leaked``)."""
        if self.summary.outcomes:
            return {o: self.summary.outcomes.get(o, 0) for o in OUTCOMES}
        return {o: self.summary.verdicts.get(o, 0) for o in OUTCOMES}

    def groups_ranked(self) -> tuple[list[tuple[str, GroupStats]], str]:
        """Groups most contaminated first when any group is contaminated, else by mean coverage; and the order's name."""
        groups = list(self.summary.groups.items())
        if any(rec.contaminated.get(self.definition, 0) for _, rec in groups):
            return sorted(groups, key=lambda kv: (-kv[1].contaminated.get(self.definition, 0),
                                                  -kv[1].mean_coverage, kv[0])), "most contaminated first"
        return self.groups_by_coverage(), "by mean coverage"

    def todo_groups(self) -> list[tuple[str, int, float]]:
        """The to-do list's groups: (group, novel items, share of the group), most novel items first, bounded."""
        rows = []
        for g, rec in self.summary.groups.items():
            novel = rec.outcomes.get("novel", 0) if rec.outcomes else rec.verdicts.get("novel", 0)
            if novel:
                rows.append((g, novel, novel / max(1, rec.examples)))
        rows.sort(key=lambda r: (-r[1], -r[2], r[0]))
        return rows[:TODO_GROUPS]

    @property
    def todo_groups_total(self) -> int:
        return sum(1 for rec in self.summary.groups.values()
                   if (rec.outcomes.get("novel", 0) if rec.outcomes else rec.verdicts.get("novel", 0)))

    @property
    def contaminated_count(self) -> int:
        return self.summary.contaminated.get(self.definition, 0)

    @property
    def assessable(self) -> int:
        return self.summary.assessable

    @property
    def contaminated_share(self) -> float:
        return self.contaminated_count / self.assessable if self.assessable else 0.0

    def mean_coverage(self, view: str = "surface") -> float | None:
        rec = self.summary.coverage.get(f"{self.target_field}.{view}")
        return None if rec is None else rec.mean

    def groups_by_coverage(self) -> list[tuple[str, GroupStats]]:
        """Groups, highest mean coverage first (ties: most contaminated, then name)."""
        return sorted(self.summary.groups.items(), key=lambda kv: (-kv[1].mean_coverage,
                                                                   -kv[1].contaminated.get(self.definition, 0),
                                                                   kv[0]))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["report_dir"] = str(self.report_dir)
        out["summary"] = self.summary.to_dict()
        return out


@dataclass(frozen=True)
class MeasureRow:
    """One measure beyond exact n-grams as the reports list it: what it is, its cost, a few aggregates."""

    name: str
    title: str
    available: bool
    estimate: bool
    cost: str
    reason: str | None  # why it is unavailable
    highlights: tuple[tuple[str, str], ...]  # (aggregate path, value) scalars, the first few


def measure_rows(summary: ScanSummary, limit: int = 8) -> list[MeasureRow]:
    """The scan's measures other than the exact n-gram one (its numbers have sections of their own)."""
    rows = []
    for name, info in summary.measures.items():
        if name == "ngram":
            continue
        rows.append(MeasureRow(name, info.title or name, info.available, info.estimate, info.cost, info.reason,
                               tuple(_scalars(info.aggregates, "", limit))))
    return rows


def _scalars(data: Any, prefix: str, limit: int, depth: int = 0) -> list[tuple[str, str]]:
    """Scalar leaves of a nested aggregate as ("a.b", "1.23") pairs, breadth first, at most ``limit``."""
    out: list[tuple[str, str]] = []
    nested: list[tuple[str, Any]] = []
    for key, value in (data.items() if isinstance(data, dict) else ()):
        path = f"{prefix}{key}"
        if isinstance(value, bool) or value is None or isinstance(value, str):
            out.append((path, str(value)))
        elif isinstance(value, (int, float)):
            out.append((path, f"{value:,}" if isinstance(value, int) else f"{value:.4g}"))
        elif isinstance(value, dict) and depth < 2:
            nested.append((path, value))
    for path, value in nested:
        out += _scalars(value, f"{path}.", limit, depth + 1)
    return out[:limit]


# ---------------------------------------------------------------------- loading
def read_summary(path: str | Path) -> ScanSummary:
    """Read and validate a summary.json (schema_version 1); InputError otherwise."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(str(path), "no such file: run `probe scan DATASET --index DIR --out DIR` first") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(str(path), f"unreadable: {e}") from e
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(str(path), f"not valid JSON ({e.msg})", f"line {e.lineno}") from e
    return ScanSummary.from_dict(data, str(path))


def check_definition(summary: ScanSummary, definition: str) -> None:
    """ConfigError unless the scan computed ``definition``."""
    if definition in summary.contaminated:
        return
    why = summary.unavailable_definitions.get(definition)
    if why:
        raise ConfigError(f"definition {definition!r} is unavailable for this index: {why}")
    available = ", ".join(summary.contaminated) or "none"
    raise ConfigError(f"definition {definition!r} was not computed by this scan; available: {available}")


def run_key(summary: ScanSummary) -> list[Any]:
    """Identifies one scan run (gate.json is only shown with the scan it judged)."""
    return [summary.created, summary.seconds, summary.examples, summary.lookups]


def load_report(report_dir: str | Path, definition: str = "default", top_flagged: int = TOP_FLAGGED,
                top_matched: int = TOP_MATCHED, novel_limit: int = NOVEL_LIMIT) -> ReportModel:
    """Load and validate a report directory into a bounded :class:`ReportModel`."""
    report_dir = Path(report_dir)
    if not report_dir.is_dir():
        raise InputError(str(report_dir), "not a report directory (expected summary.json and examples.parquet)")
    summary = read_summary(report_dir / SUMMARY_NAME)
    check_definition(summary, definition)
    target = summary.target_field
    nmin = summary.nmin
    pf, names = _open_examples(report_dir / EXAMPLES_NAME)
    needed = ["id", "row", "verdict", "coverage", f"contaminated_{definition}", f"{target}_longest_match_tokens"]
    missing = [c for c in needed if c not in names]
    if missing:
        raise InputError(str(report_dir / EXAMPLES_NAME), f"missing column(s) {', '.join(missing)}")
    path = report_dir / EXAMPLES_NAME
    ranked = _rank(pf, path, definition, target, top_flagged, top_matched, novel_limit)
    detail = _detail_columns(names, target, nmin)
    flagged = _fetch(path, names, ranked["flagged"], detail, definition, target, nmin)
    matched = _fetch(path, names, ranked["matched"], detail, definition, target, nmin)
    light = [c for c in ("id", "row", "group", "verdict", "outcome", "coverage", f"contaminated_{definition}",
                         f"{target}_tokens", f"{target}_longest_match_tokens",
                         *(f"{f}_tokens" for f in TEXT_FIELDS), *(f"{f}_text" for f in TEXT_FIELDS))
             if c in names]
    novel = _fetch(path, names, ranked["novel"], light, definition, target, nmin)
    return ReportModel(report_dir=report_dir, summary=summary, definition=definition, target_field=target,
                       nmin=nmin, flagged=flagged, flagged_total=ranked["flagged_total"], matched=matched,
                       matched_total=ranked["matched_total"], novel=novel, novel_total=ranked["novel_total"],
                       gate=_read_gate(report_dir, summary), novel_ranges=ranked["novel_ranges"],
                       novel_ranges_truncated=ranked["novel_ranges_truncated"])


def _open_examples(path: Path) -> tuple[Any, set[str]]:
    import pyarrow.parquet as pq

    if not path.is_file():
        raise InputError(str(path), "no such file: the scan did not finish (re-run `probe scan`)")
    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # noqa: BLE001 - pyarrow raises several types for corrupt files
        raise InputError(str(path), f"not a readable Parquet file: {e}") from e
    return pf, set(pf.schema_arrow.names)


def _rank(pf: Any, path: Path, definition: str, target: str, top_flagged: int, top_matched: int,
          novel_limit: int) -> dict[str, Any]:
    """One pass over five narrow columns: top flagged, top other matched, first novel rows."""
    import numpy as np
    import pyarrow.compute as pc

    cols = ["row", "verdict", "coverage", f"contaminated_{definition}", f"{target}_longest_match_tokens"]
    # the to-do list is the "novel" outcome (never a contaminated example); older scans: novel and not flagged
    has_outcome = "outcome" in pf.schema_arrow.names
    if has_outcome:
        cols.append("outcome")
    best_flagged = np.zeros((0, 3))  # columns: -longest, -coverage, row
    best_matched = np.zeros((0, 3))  # columns: -coverage, -longest, row
    novel_rows: list[int] = []
    ranges: list[list[int]] = []
    truncated = False
    totals = {"flagged_total": 0, "matched_total": 0, "novel_total": 0}
    try:
        batches = pf.iter_batches(columns=cols, batch_size=_BATCH_ROWS)
        for batch in batches:
            rows = batch.column(0).to_numpy(zero_copy_only=False).astype(np.float64)
            verdict = batch.column(1)
            coverage = pc.fill_null(batch.column(2), 0.0).to_numpy(zero_copy_only=False)
            flag = pc.fill_null(batch.column(3), False).to_numpy(zero_copy_only=False).astype(bool)
            longest = pc.fill_null(batch.column(4), 0).to_numpy(zero_copy_only=False).astype(np.float64)
            seenish = pc.is_in(verdict, value_set=_pa_strings(("seen", "partial"))).to_numpy(
                zero_copy_only=False).astype(bool)
            novel_of = batch.column(5) if has_outcome else verdict
            is_novel = pc.equal(novel_of, "novel").fill_null(False).to_numpy(zero_copy_only=False).astype(bool)
            is_novel &= ~flag
            other = seenish & ~flag
            totals["flagged_total"] += int(flag.sum())
            totals["matched_total"] += int(other.sum())
            totals["novel_total"] += int(is_novel.sum())
            if flag.any():
                cand = np.stack([-longest[flag], -coverage[flag], rows[flag]], 1)
                best_flagged = _top(np.concatenate([best_flagged, cand]), top_flagged)
            if other.any():
                cand = np.stack([-coverage[other], -longest[other], rows[other]], 1)
                best_matched = _top(np.concatenate([best_matched, cand]), top_matched)
            if len(novel_rows) < novel_limit and is_novel.any():
                novel_rows.extend(rows[is_novel][: novel_limit - len(novel_rows)].astype(np.int64).tolist())
            if is_novel.any() and not truncated:
                truncated = _add_ranges(ranges, rows[is_novel].astype(np.int64) + 1)
    except Exception as e:  # noqa: BLE001 - pyarrow/numpy errors on a corrupt or foreign file
        raise InputError(str(path), f"unreadable examples: {e}") from e
    return {"flagged": best_flagged[:, 2].astype(np.int64).tolist(),
            "matched": best_matched[:, 2].astype(np.int64).tolist(),
            "novel": novel_rows, "novel_ranges": [(a, b) for a, b in ranges], "novel_ranges_truncated": truncated,
            **totals}


def _add_ranges(ranges: list[list[int]], records: Any) -> bool:
    """Merge ascending record numbers into runs; True once NOVEL_RANGES runs are full."""
    import numpy as np

    if not records.shape[0]:
        return False
    breaks = np.nonzero(np.diff(records) != 1)[0]
    starts = np.concatenate(([records[0]], records[breaks + 1]))
    ends = np.concatenate((records[breaks], [records[-1]]))
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        if ranges and ranges[-1][1] + 1 == a:
            ranges[-1][1] = b
        elif len(ranges) >= NOVEL_RANGES:
            return True
        else:
            ranges.append([a, b])
    return False


def _top(arr: Any, k: int) -> Any:
    import numpy as np

    order = np.lexsort((arr[:, 2], arr[:, 1], arr[:, 0]))
    return arr[order[:k]]


def _pa_strings(values: tuple[str, ...]) -> Any:
    import pyarrow as pa

    return pa.array(values, pa.string())


def _detail_columns(names: set[str], target: str, nmin: int) -> list[str]:
    cols = ["id", "row", "group", "verdict", "outcome", "coverage", "joint_same_doc", "match_uri", "match_row",
            "match_doc_id", "match_source", "match_snippet", "match_verified", "match_kind", "match_documents",
            "match_span_tokens", "match_stitched_from"]
    cols += sorted(c for c in names if c.startswith("contaminated_"))
    for f in SCAN_FIELDS:
        cols += [f"{f}_tokens", f"{f}_token_coverage_{nmin}", f"{f}_longest_match_tokens",
                 f"{f}_longest_match_text", f"{f}_longest_match_start", f"{f}_longest_match_end", f"{f}_text"]
    return [c for c in dict.fromkeys(cols) if c in names]


def _fetch(path: Path, names: set[str], rows: list[int], columns: list[str], definition: str, target: str,
           nmin: int) -> list[ExampleItem]:
    """Read only ``rows`` (by the ``row`` column) and only ``columns``; keep ``rows``' order."""
    if not rows:
        return []
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path, columns=columns, filters=pc.field("row").isin(pa.array(rows, pa.int64())))
    except Exception as e:  # noqa: BLE001
        raise InputError(str(path), f"unreadable examples: {e}") from e
    by_row = {r["row"]: r for r in table.to_pylist()}
    return [_item(by_row[r], definition, target, nmin) for r in rows if r in by_row]


def _item(rec: dict[str, Any], definition: str, target: str, nmin: int) -> ExampleItem:
    defs = tuple(k.removeprefix("contaminated_") for k, v in rec.items() if k.startswith("contaminated_") and v)
    matches = []
    for f in SCAN_FIELDS:
        longest = rec.get(f"{f}_longest_match_tokens")
        text = rec.get(f"{f}_longest_match_text")
        if not longest or text is None:
            continue
        matches.append(FieldMatch(field=f, tokens=rec.get(f"{f}_tokens"),
                                  coverage=rec.get(f"{f}_token_coverage_{nmin}"), longest_tokens=int(longest),
                                  match_text=str(text), start=rec.get(f"{f}_longest_match_start"),
                                  end=rec.get(f"{f}_longest_match_end"), field_text=rec.get(f"{f}_text")))
    prov = None
    if rec.get("match_snippet") is not None or rec.get("match_uri") is not None:
        prov = Provenance(uri=rec.get("match_uri"), row=rec.get("match_row"), doc_id=rec.get("match_doc_id"),
                          source=rec.get("match_source"), snippet=rec.get("match_snippet"),
                          verified=rec.get("match_verified"), kind=rec.get("match_kind"),
                          documents=rec.get("match_documents"), span_tokens=rec.get("match_span_tokens"),
                          stitched_from=tuple(rec.get("match_stitched_from") or ()))
    texts = {f: str(rec[f"{f}_text"]) for f in TEXT_FIELDS if rec.get(f"{f}_text")}
    return ExampleItem(
        id=str(rec.get("id")), row=int(rec["row"]), group=rec.get("group"), verdict=str(rec.get("verdict")),
        coverage=rec.get("coverage"), tokens=rec.get(f"{target}_tokens"),
        longest_tokens=int(rec.get(f"{target}_longest_match_tokens") or 0),
        contaminated=bool(rec.get(f"contaminated_{definition}")), definitions=defs, matches=tuple(matches),
        provenance=prov, joint_same_doc=rec.get("joint_same_doc"), texts=texts, outcome=rec.get("outcome"))


def _read_gate(report_dir: Path, summary: ScanSummary) -> dict[str, Any] | None:
    """gate.json written by `probe check` for *this* scan run, else None."""
    path = report_dir / GATE_NAME
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict) or data.get("run") != run_key(summary):
        return None  # left over from an earlier scan into the same directory
    return data
