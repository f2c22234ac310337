"""Two scans of one dataset, compared example by example: ``probe diff OLD_SCAN NEW_SCAN``.

A dataset changes between versions (rows replaced, items rewritten) and so does the corpus
an index is built from; what a team wants to see is *which examples* moved: which became
covered or uncovered, which became contaminated, which rows are new or gone, per group.
Examples are matched by id (a dataset without an id column has content-hash ids, see
:func:`probe.sources.datasets.content_id`, so a replaced row shows as one row removed and one
added, and every untouched row matches itself). Only the two scans' ``summary.json`` and
``examples.parquet`` are read: neither the index nor the dataset is needed.

Exactly the changed rows are reported: an id present in both scans is listed when its
verdict, its contamination under the definition, or its coverage changed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from probe.errors import ConfigError, InputError

if TYPE_CHECKING:
    from probe.scan_output import ScanSummary

__all__ = ["CHANGE_KINDS", "DiffResult", "GroupDiff", "RowChange", "diff_scans", "open_scan"]

# every kind of change a row can have, in the order the reports list them
CHANGE_KINDS = ("added", "removed", "newly_contaminated", "no_longer_contaminated", "became_covered",
                "became_uncovered", "coverage_changed")
NO_GROUP = ""  # the group key of examples without a group value


def open_scan(path: str | Path) -> tuple[ScanSummary, Path]:
    """A scan's summary and the path of its ``examples.parquet``, from its directory or ``summary.json``.

    InputError names the path when either file is missing or unreadable.
    """
    from probe.report.model import EXAMPLES_NAME, SUMMARY_NAME, read_summary

    summary_path = Path(path)
    if summary_path.is_dir():
        summary_path = summary_path / SUMMARY_NAME
    if not summary_path.is_file():
        raise InputError(str(summary_path), f"no scan here (no {SUMMARY_NAME}); give a report directory "
                                            "written by a scan, e.g. reports/test")
    summary = read_summary(summary_path)
    examples = summary_path.parent / EXAMPLES_NAME
    if not examples.is_file():
        raise InputError(str(examples), f"missing: the scan's per-example table must sit next to {SUMMARY_NAME}")
    return summary, examples


@dataclass(frozen=True)
class RowChange:
    """One example whose result differs between the scans (``None`` on the side it is absent from)."""

    id: str
    group: str | None
    kinds: tuple[str, ...]  # subset of CHANGE_KINDS
    old_row: int | None
    new_row: int | None
    old_verdict: str | None
    new_verdict: str | None
    old_coverage: float | None
    new_coverage: float | None
    old_contaminated: bool | None
    new_contaminated: bool | None


@dataclass
class GroupDiff:
    """Per group (``""`` = no group): how many rows changed in each way, and the examples of both scans."""

    old_examples: int = 0
    new_examples: int = 0
    changes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CHANGE_KINDS, 0))


@dataclass
class DiffResult:
    """What :func:`diff_scans` found. ``changes`` holds every changed row, in new-scan order then removed rows."""

    old: str
    new: str
    definition: str
    old_examples: int
    new_examples: int
    matched: int  # ids in both scans
    changed: int  # rows listed in ``changes``
    totals: dict[str, int]  # CHANGE_KINDS -> rows
    groups: dict[str, GroupDiff]
    changes: list[RowChange]
    warnings: list[str] = field(default_factory=list)
    schema_version: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Row:
    row: int
    group: str | None
    verdict: str | None
    coverage: float | None
    contaminated: bool | None


def _read_rows(path: Path, definition: str) -> dict[str, _Row]:
    """id -> the row's result. InputError when an id repeats (a diff by id would be ambiguous)."""
    import pyarrow.parquet as pq

    column = f"contaminated_{definition}"
    try:
        names = pq.read_schema(path).names
        if column not in names:
            raise ConfigError(f"{path}: definition {definition!r} was not computed in this scan "
                              f"(no {column} column); scan both versions with it")
        table = pq.read_table(path, columns=["id", "row", "group", "verdict", "coverage", column])
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - pyarrow raises several types for a bad file
        raise InputError(str(path), f"cannot read the scan's examples: {e}") from e
    rows: dict[str, _Row] = {}
    repeated: Counter[str] = Counter()
    for ident, row, group, verdict, coverage, flag in zip(*(table.column(i).to_pylist() for i in range(6)),
                                                        strict=True):
        key = str(ident)
        if key in rows:
            repeated[key] += 1
            continue
        rows[key] = _Row(int(row), group, verdict, coverage, flag)
    if repeated:
        shown = ", ".join(f"{i!r} ({n + 1}×)" for i, n in repeated.most_common(5))
        raise InputError(str(path), f"{len(repeated):,} example id(s) occur more than once ({shown}): rows "
                                    "cannot be matched by id; give the dataset a unique id column (--id-field)")
    return rows


def _kinds(old: _Row, new: _Row, tolerance: float) -> tuple[str, ...]:
    kinds = []
    if new.contaminated and not old.contaminated:
        kinds.append("newly_contaminated")
    if old.contaminated and not new.contaminated:
        kinds.append("no_longer_contaminated")
    if new.verdict == "seen" and old.verdict != "seen":
        kinds.append("became_covered")
    if old.verdict == "seen" and new.verdict != "seen":
        kinds.append("became_uncovered")
    if old.verdict != new.verdict and not kinds:
        kinds.append("coverage_changed")  # e.g. partial -> novel: the verdict moved within "not seen"
    elif (old.coverage is None) != (new.coverage is None) or (
            old.coverage is not None and new.coverage is not None and abs(new.coverage - old.coverage) > tolerance):
        kinds.append("coverage_changed")
    return tuple(dict.fromkeys(kinds))


def diff_scans(old_scan: str | Path, new_scan: str | Path, *, definition: str = "default",
               coverage_tolerance: float = 1e-9) -> DiffResult:
    """Compare two scans (report directories or their ``summary.json``) example by example, by id.

    A row whose id is in one scan only is ``added`` or ``removed``; a row in both is listed when it
    became (or stopped being) contaminated under ``definition``, became covered (verdict ``seen``)
    or uncovered, or its coverage moved by more than ``coverage_tolerance``. Scans made with
    different index specs or thresholds are compared anyway, with a warning.
    """
    if not 0 <= coverage_tolerance < 1:
        raise ConfigError(f"coverage_tolerance must lie in [0, 1), got {coverage_tolerance!r}")
    old_summary, old_examples = open_scan(old_scan)
    new_summary, new_examples = open_scan(new_scan)
    warnings = []
    if old_summary.index.spec_fingerprint != new_summary.index.spec_fingerprint:
        warnings.append(f"the scans used different index specs ({old_summary.index.spec_fingerprint} vs "
                        f"{new_summary.index.spec_fingerprint}): the diff mixes two measurements")
    if old_summary.config.thresholds != new_summary.config.thresholds:
        warnings.append("the scans used different thresholds: verdict changes may come from the thresholds")
    old_rows = _read_rows(old_examples, definition)
    new_rows = _read_rows(new_examples, definition)
    groups: dict[str, GroupDiff] = {}
    changes: list[RowChange] = []

    def group_of(key: str | None) -> GroupDiff:
        return groups.setdefault(key or NO_GROUP, GroupDiff())

    for row in old_rows.values():
        group_of(row.group).old_examples += 1
    for row in new_rows.values():
        group_of(row.group).new_examples += 1
    for ident, new in new_rows.items():
        old = old_rows.get(ident)
        kinds = ("added",) if old is None else _kinds(old, new, coverage_tolerance)
        if kinds:
            changes.append(_change(ident, old, new, kinds))
    changes += [_change(ident, old, None, ("removed",)) for ident, old in old_rows.items() if ident not in new_rows]
    totals = dict.fromkeys(CHANGE_KINDS, 0)
    for change in changes:
        for kind in change.kinds:
            totals[kind] += 1
            group_of(change.group).changes[kind] += 1
    return DiffResult(old=str(old_scan), new=str(new_scan), definition=definition,
                      old_examples=len(old_rows), new_examples=len(new_rows),
                      matched=sum(1 for i in new_rows if i in old_rows), changed=len(changes), totals=totals,
                      groups=dict(sorted(groups.items())), changes=changes, warnings=warnings)


def _change(ident: str, old: _Row | None, new: _Row | None, kinds: tuple[str, ...]) -> RowChange:
    group = new.group if new is not None else old.group if old is not None else None
    return RowChange(id=ident, group=group, kinds=kinds,
                     old_row=old.row if old else None, new_row=new.row if new else None,
                     old_verdict=old.verdict if old else None, new_verdict=new.verdict if new else None,
                     old_coverage=old.coverage if old else None, new_coverage=new.coverage if new else None,
                     old_contaminated=old.contaminated if old else None,
                     new_contaminated=new.contaminated if new else None)
