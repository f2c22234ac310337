"""The CI gate of `probe check`: thresholds over a scan's summary, and a baseline diff.

Threshold semantics (every limit is *inclusive*: a value exactly at the limit passes):

- ``max_contaminated`` ``"N"`` (a count, N >= 0): fails when the number of examples
  contaminated under ``definition`` is **greater than** N. ``"0"`` fails on any.
- ``max_contaminated`` ``"P%"`` (0 <= P <= 100): fails when contaminated / assessable
  examples, in percent, is **greater than** P (exact rational arithmetic, so
  ``1%`` of 300 allows exactly 3).
- ``min_coverage`` ``F`` (0 <= F <= 1, or ``"P%"``): fails when the mean token
  coverage of the target field (``summary.coverage["<target>.surface"].mean``:
  share of tokens inside a matched n-gram at the smallest n, averaged over all
  examples) is **less than** F.
- ``max_new_contaminated`` ``K`` (with a baseline): fails when more than K example
  ids are contaminated now but were not in the baseline run (ids absent from the
  baseline count as new).

The baseline is the report directory of an earlier scan (given as the path of its
``summary.json``); examples are matched by ``id``. "Newly covered" ids are those
whose verdict is ``seen`` now and was not in the baseline (informational).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from probe.errors import ConfigError, InputError

__all__ = ["GateCheck", "GateResult", "evaluate_gate", "parse_max_contaminated", "parse_min_coverage"]

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
    new_contaminated_count: int = 0
    new_contaminated_ids: list[str] = field(default_factory=list)  # first DIFF_ID_LIMIT, dataset order
    newly_covered_count: int = 0
    newly_covered_ids: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateResult:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["checks"] = [GateCheck(**c) for c in known.get("checks", [])]
        return cls(**known)


def parse_max_contaminated(text: str) -> tuple[str, Fraction]:
    """``"5"`` → ("count", 5); ``"1.5%"`` → ("percent", 3/2). ConfigError otherwise."""
    raw = text.strip()
    try:
        if raw.endswith("%"):
            value = Fraction(raw[:-1].strip())
            if not 0 <= value <= 100:
                raise ValueError
            return "percent", value
        if not raw.isdigit():
            raise ValueError
        return "count", Fraction(int(raw))
    except (ValueError, ZeroDivisionError):
        raise ConfigError(f"--max-contaminated expects a count (e.g. 0, 5) or a percentage (e.g. 1%), "
                          f"got {text!r}") from None


def parse_min_coverage(text: str | float) -> Fraction:
    """``"0.25"`` or ``"25%"`` → 1/4; must lie in [0, 1]."""
    raw = str(text).strip()
    try:
        value = Fraction(raw[:-1].strip()) / 100 if raw.endswith("%") else Fraction(raw)
    except (ValueError, ZeroDivisionError):
        value = Fraction(-1)
    if not 0 <= value <= 1:
        raise ConfigError(f"--min-coverage expects a fraction in [0, 1] (e.g. 0.2) or a percentage "
                          f"(e.g. 20%), got {text!r}")
    return value


def _fmt(value: Fraction) -> str:
    return str(int(value)) if value.denominator == 1 else f"{float(value):g}"


def evaluate_gate(summary: dict[str, Any], definition: str = "default", max_contaminated: str | None = None,
                  min_coverage: str | float | None = None, baseline_summary_path: str | Path | None = None,
                  max_new_contaminated: int | None = None, examples_path: str | Path | None = None,
                  baseline_examples_path: str | Path | None = None) -> GateResult:
    """Apply the thresholds to a scan's summary (and its examples, for the baseline diff)."""
    from probe.report.model import check_definition

    check_definition(summary, definition)
    if max_new_contaminated is not None and baseline_summary_path is None:
        raise ConfigError("--max-new-contaminated needs --baseline reports/NAME/summary.json")
    if max_new_contaminated is not None and max_new_contaminated < 0:
        raise ConfigError("--max-new-contaminated must be >= 0")
    result = GateResult(passed=True, definition=definition)
    count = int(summary["contaminated"][definition])
    assessable = int(summary["assessable"])
    if max_contaminated is not None:
        kind, limit = parse_max_contaminated(max_contaminated)
        if kind == "count":
            ok = count <= limit
            result.checks.append(GateCheck("max_contaminated", _fmt(limit), str(count), ok))
            if not ok:
                result.reasons.append(f"{count:,} contaminated example(s) ({definition}) > --max-contaminated "
                                      f"{_fmt(limit)}")
        else:
            ok = Fraction(count * 100) <= limit * assessable
            share = 100 * count / assessable if assessable else 0.0
            result.checks.append(GateCheck("max_contaminated", f"{_fmt(limit)}%", f"{share:.4g}%", ok))
            if not ok:
                result.reasons.append(f"{share:.4g}% of assessable examples contaminated ({count:,}/{assessable:,},"
                                      f" {definition}) > --max-contaminated {_fmt(limit)}%")
    if min_coverage is not None:
        limit = parse_min_coverage(min_coverage)
        target = summary["config"].get("target_field", "whole")
        rec = summary["coverage"].get(f"{target}.surface")
        mean = float(rec["mean"]) if rec else 0.0
        ok = Fraction(str(mean)) >= limit
        result.checks.append(GateCheck("min_coverage", f"{float(limit):g}", f"{mean:g}", ok))
        if not ok:
            result.reasons.append(f"mean {target} coverage {mean:.4g} < --min-coverage {float(limit):g}")
    if baseline_summary_path is not None:
        _baseline_diff(result, summary, definition, Path(baseline_summary_path), examples_path,
                       baseline_examples_path)
        if max_new_contaminated is not None:
            ok = result.new_contaminated_count <= max_new_contaminated
            result.checks.append(GateCheck("max_new_contaminated", str(max_new_contaminated),
                                           str(result.new_contaminated_count), ok))
            if not ok:
                result.reasons.append(f"{result.new_contaminated_count:,} newly contaminated example(s) "
                                      f"> --max-new-contaminated {max_new_contaminated}")
    result.passed = not result.reasons
    return result


def check_baseline(baseline_summary_path: str | Path) -> dict[str, Any]:
    """Validate a baseline before scanning (ConfigError: it is an option's value)."""
    from probe.report.model import EXAMPLES_NAME, read_summary

    path = Path(baseline_summary_path)
    if path.is_dir():
        path = path / "summary.json"
    try:
        summary = read_summary(path)
    except InputError as e:
        raise ConfigError(f"--baseline {e}") from e
    if not (path.parent / EXAMPLES_NAME).is_file():
        raise ConfigError(f"--baseline {path}: no {EXAMPLES_NAME} next to it (the baseline diff compares ids)")
    return summary


def _baseline_diff(result: GateResult, summary: dict[str, Any], definition: str, baseline_path: Path,
                   examples_path: str | Path | None, baseline_examples_path: str | Path | None) -> None:
    from probe.report.model import EXAMPLES_NAME

    if baseline_path.is_dir():
        baseline_path = baseline_path / "summary.json"
    base_summary = check_baseline(baseline_path)
    result.baseline = str(baseline_path)
    if examples_path is None:
        raise ConfigError("the baseline diff needs this scan's examples.parquet (scan with --out)")
    base_examples = Path(baseline_examples_path) if baseline_examples_path else baseline_path.parent / EXAMPLES_NAME
    if base_summary["index"].get("spec_fingerprint") != summary["index"].get("spec_fingerprint"):
        result.warnings.append("baseline was scanned with a different index spec "
                               f"({base_summary['index'].get('spec_fingerprint')} vs "
                               f"{summary['index'].get('spec_fingerprint')}): the diff mixes two measurements")
    if base_summary["config"].get("thresholds") != summary["config"].get("thresholds"):
        result.warnings.append("baseline used different thresholds: the diff mixes two measurements")
    if definition not in base_summary["contaminated"]:
        raise ConfigError(f"--baseline {baseline_path}: definition {definition!r} was not computed there")
    col = f"contaminated_{definition}"
    now_flagged = _ids_where(Path(examples_path), col, None)
    base_flagged = set(_ids_where(base_examples, col, None))
    new = [i for i in now_flagged if i not in base_flagged]
    now_seen = _ids_where(Path(examples_path), "verdict", "seen")
    base_seen = set(_ids_where(base_examples, "verdict", "seen"))
    covered = [i for i in now_seen if i not in base_seen]
    result.new_contaminated_count, result.new_contaminated_ids = len(new), new[:DIFF_ID_LIMIT]
    result.newly_covered_count, result.newly_covered_ids = len(covered), covered[:DIFF_ID_LIMIT]


def _ids_where(path: Path, column: str, equals: str | None) -> list[str]:
    """Ids (dataset order, unique) of rows where ``column`` is true (or equals ``equals``)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    expr = pc.field(column) == equals if equals is not None else pc.field(column) == True  # noqa: E712
    try:
        table = pq.read_table(path, columns=["id"], filters=expr)
    except FileNotFoundError:
        raise InputError(str(path), "no such file") from None
    except Exception as e:  # noqa: BLE001 - missing column or corrupt file
        raise InputError(str(path), f"cannot read ids where {column}: {e}") from e
    return list(dict.fromkeys(str(x) for x in table.column("id").to_pylist()))
