"""The CI gate of `probe check`: thresholds over a scan's summary, and a baseline diff.

Threshold semantics (the limits are a parsed :class:`probe.check.CheckLimits`; every
limit is *inclusive*: a value exactly at the limit passes):

- ``max_contaminated`` a count ``N`` (int >= 0): fails when the number of examples
  contaminated under ``definition`` is **greater than** N. ``0`` fails on any.
- ``max_contaminated`` a percentage ``Fraction(P)`` (0 <= P <= 100): fails when
  contaminated / assessable examples, in percent, is **greater than** P (exact rational
  arithmetic, so 1 % of 300 allows exactly 3).
- ``min_coverage`` ``F`` (0 <= F <= 1): fails when the mean token coverage of the
  target field (``summary.coverage["<target>.surface"].mean``: share of tokens inside a
  matched n-gram at the smallest n, averaged over all examples) is **less than** F.
- ``max_new_contaminated`` ``K`` (with a baseline): fails when more than K *existing*
  example ids (ids the baseline run has) are contaminated now but were not in the
  baseline run: regressions. Ids absent from the baseline are *new rows*, reported
  apart (how many, how many of them contaminated) and counted against K only with
  ``count_new_rows``: a pull request that adds a row is not the same event as one
  that makes an existing row contaminated (a changed corpus, a rewritten item).

The baseline is the report directory of an earlier scan (given as the path of its
``summary.json``); examples are matched by ``id`` (a dataset without an id column
has content-hash ids, so inserting a row does not renumber the rest). "Newly
covered" ids are existing ids whose verdict is ``seen`` now and was not in the
baseline (informational).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from probe.errors import ConfigError, InputError

if TYPE_CHECKING:
    from probe.check import CheckLimits
    from probe.scan_output import ScanSummary

__all__ = ["GateCheck", "GateResult", "check_baseline", "evaluate_gate", "require_baseline"]

DIFF_ID_LIMIT = 1000  # ids kept per list in the result (counts are always exact)


@dataclass(frozen=True)
class GateCheck:
    """One threshold: its limit, the measured value, and the outcome."""

    name: str  # "max_contaminated", "min_coverage", "max_new_contaminated"
    limit: str
    actual: str
    passed: bool


@dataclass
class GateResult:
    passed: bool
    definition: str
    checks: list[GateCheck] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)  # one line per failed check
    warnings: list[str] = field(default_factory=list)
    baseline: str | None = None
    # regressions: ids the baseline has, contaminated now and not there (first DIFF_ID_LIMIT, dataset order)
    new_contaminated_count: int = 0
    new_contaminated_ids: list[str] = field(default_factory=list)
    newly_covered_count: int = 0  # ids the baseline has, verdict seen now and not there
    newly_covered_ids: list[str] = field(default_factory=list)
    new_rows_count: int = 0  # ids absent from the baseline
    new_rows_ids: list[str] = field(default_factory=list)
    new_rows_contaminated_count: int = 0  # of those, contaminated now
    new_rows_contaminated_ids: list[str] = field(default_factory=list)
    new_rows_counted: bool = False  # whether max_new_contaminated counted the contaminated new rows too

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateResult:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["checks"] = [GateCheck(**c) for c in known.get("checks", [])]
        return cls(**known)


def _fmt(value: Fraction) -> str:
    return str(int(value)) if value.denominator == 1 else f"{float(value):g}"


def require_baseline(limits: CheckLimits, baseline_summary_path: str | Path | None) -> None:
    """ConfigError when a limit on newly contaminated examples has no baseline to count them against."""
    if limits.max_new_contaminated is not None and baseline_summary_path is None:
        raise ConfigError("a limit on newly contaminated examples (max_new_contaminated) needs a baseline: "
                          "the summary.json of an earlier scan, e.g. reports/main/summary.json")


def evaluate_gate(summary: ScanSummary, limits: CheckLimits, definition: str = "default", *,
                  baseline_summary_path: str | Path | None = None, examples_path: str | Path | None = None,
                  baseline_examples_path: str | Path | None = None) -> GateResult:
    """Apply ``limits`` to a scan's summary (and its examples, for the baseline diff)."""
    from probe.report.model import check_definition

    check_definition(summary, definition)
    require_baseline(limits, baseline_summary_path)
    result = GateResult(passed=True, definition=definition)
    count = summary.contaminated[definition]
    assessable = summary.assessable
    limit = limits.max_contaminated
    if isinstance(limit, Fraction):  # a percentage of the assessable examples
        ok = Fraction(count * 100) <= limit * assessable
        share = 100 * count / assessable if assessable else 0.0
        result.checks.append(GateCheck("max_contaminated", f"{_fmt(limit)}%", f"{share:.4g}%", ok))
        if not ok:
            result.reasons.append(f"{share:.4g}% of assessable examples contaminated ({count:,}/{assessable:,},"
                                  f" {definition}) > the limit of {_fmt(limit)}%")
    elif limit is not None:  # a count
        ok = count <= limit
        result.checks.append(GateCheck("max_contaminated", str(limit), str(count), ok))
        if not ok:
            result.reasons.append(f"{count:,} contaminated example(s) ({definition}) > the limit of {limit:,}")
    if limits.min_coverage is not None:
        target = summary.target_field
        rec = summary.coverage.get(f"{target}.surface")
        mean = rec.mean if rec else 0.0
        ok = mean >= limits.min_coverage
        result.checks.append(GateCheck("min_coverage", f"{limits.min_coverage:g}", f"{mean:g}", ok))
        if not ok:
            result.reasons.append(f"mean {target} coverage {mean:.4g} < the minimum of {limits.min_coverage:g}")
    if baseline_summary_path is not None:
        _baseline_diff(result, summary, definition, Path(baseline_summary_path), examples_path,
                       baseline_examples_path)
        if limits.max_new_contaminated is not None:
            counted = result.new_contaminated_count
            what = "existing example(s) newly contaminated"
            if limits.count_new_rows:
                counted += result.new_rows_contaminated_count
                what = (f"newly contaminated example(s) ({result.new_contaminated_count:,} existing, "
                        f"{result.new_rows_contaminated_count:,} new rows)")
            result.new_rows_counted = limits.count_new_rows
            ok = counted <= limits.max_new_contaminated
            result.checks.append(GateCheck("max_new_contaminated", str(limits.max_new_contaminated),
                                           str(counted), ok))
            if not ok:
                result.reasons.append(f"{counted:,} {what} > the limit of {limits.max_new_contaminated:,}")
    result.passed = not result.reasons
    return result


def check_baseline(baseline_summary_path: str | Path) -> ScanSummary:
    """Read and validate a baseline summary before scanning.

    ConfigError, not InputError: the baseline is part of what the caller asked for, so a
    wrong one is fixed in the request (exit 2), not in a dataset.
    """
    from probe.report.model import EXAMPLES_NAME, read_summary

    path = Path(baseline_summary_path)
    if path.is_dir():
        path = path / "summary.json"
    try:
        summary = read_summary(path)
    except InputError as e:
        raise ConfigError(f"baseline {e}") from e
    if not (path.parent / EXAMPLES_NAME).is_file():
        raise ConfigError(f"baseline {path}: no {EXAMPLES_NAME} next to it (the baseline diff compares ids)")
    return summary


def _baseline_diff(result: GateResult, summary: ScanSummary, definition: str, baseline_path: Path,
                   examples_path: str | Path | None, baseline_examples_path: str | Path | None) -> None:
    from probe.report.model import EXAMPLES_NAME

    if baseline_path.is_dir():
        baseline_path = baseline_path / "summary.json"
    base_summary = check_baseline(baseline_path)
    result.baseline = str(baseline_path)
    if examples_path is None:
        raise ConfigError("the baseline diff needs this scan's examples.parquet (scan into a report directory)")
    base_examples = Path(baseline_examples_path) if baseline_examples_path else baseline_path.parent / EXAMPLES_NAME
    if base_summary.index.spec_fingerprint != summary.index.spec_fingerprint:
        result.warnings.append("baseline was scanned with a different index spec "
                               f"({base_summary.index.spec_fingerprint} vs "
                               f"{summary.index.spec_fingerprint}): the diff mixes two measurements")
    if base_summary.config.thresholds != summary.config.thresholds:
        result.warnings.append("baseline used different thresholds: the diff mixes two measurements")
    if definition not in base_summary.contaminated:
        raise ConfigError(f"baseline {baseline_path}: definition {definition!r} was not computed there")
    col = f"contaminated_{definition}"
    base_ids = set(_ids_where(base_examples, None, None))
    new_rows = [i for i in _ids_where(Path(examples_path), None, None) if i not in base_ids]
    now_flagged = _ids_where(Path(examples_path), col, None)
    base_flagged = set(_ids_where(base_examples, col, None))
    regressed = [i for i in now_flagged if i in base_ids and i not in base_flagged]
    new_flagged = [i for i in now_flagged if i not in base_ids]
    now_seen = _ids_where(Path(examples_path), "verdict", "seen")
    base_seen = set(_ids_where(base_examples, "verdict", "seen"))
    covered = [i for i in now_seen if i in base_ids and i not in base_seen]
    result.new_contaminated_count, result.new_contaminated_ids = len(regressed), regressed[:DIFF_ID_LIMIT]
    result.newly_covered_count, result.newly_covered_ids = len(covered), covered[:DIFF_ID_LIMIT]
    result.new_rows_count, result.new_rows_ids = len(new_rows), new_rows[:DIFF_ID_LIMIT]
    result.new_rows_contaminated_count = len(new_flagged)
    result.new_rows_contaminated_ids = new_flagged[:DIFF_ID_LIMIT]


def _ids_where(path: Path, column: str | None, equals: str | None) -> list[str]:
    """Ids (dataset order, unique) of rows where ``column`` is true (or equals ``equals``); every id
    when ``column`` is None."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if column is None:
        expr = None
    else:
        expr = pc.field(column) == equals if equals is not None else pc.field(column) == True  # noqa: E712
    try:
        table = pq.read_table(path, columns=["id"], filters=expr)
    except FileNotFoundError:
        raise InputError(str(path), "no such file") from None
    except Exception as e:  # noqa: BLE001 - missing column or corrupt file
        raise InputError(str(path), f"cannot read ids where {column}: {e}") from e
    return list(dict.fromkeys(str(x) for x in table.column("id").to_pylist()))
