"""The CI check as one library call: scan a dataset, gate it, and write its reports.

``probe check`` is :func:`check_dataset` plus rendering and an exit code; a Python
caller (a notebook, a training pipeline's pre-flight step) gets the same workflow and
a typed :class:`CheckResult` instead of a process exit status.

The limits are *parsed* values (:class:`CheckLimits`); turning the command line's
strings (``"1%"``, ``"0.5"``) into them is :meth:`CheckLimits.parse`, so the gate
itself never sees a string or speaks in command-line flags.
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from probe.errors import ConfigError

if TYPE_CHECKING:
    from probe.gate import GateResult
    from probe.index.reader import IndexReader
    from probe.report.model import ReportModel
    from probe.scan import ScanConfig, ScanResult

__all__ = ["CheckLimits", "CheckResult", "check_dataset", "parse_max_contaminated", "parse_min_coverage"]


def parse_max_contaminated(text: str) -> int | Fraction:
    """``"5"`` → 5 (a count); ``"1.5%"`` → ``Fraction(3, 2)`` (a percentage). ConfigError otherwise."""
    raw = text.strip()
    try:
        if raw.endswith("%"):
            value = Fraction(raw[:-1].strip())
            if not 0 <= value <= 100:
                raise ValueError
            return value
        if not raw.isdigit():
            raise ValueError
        return int(raw)
    except (ValueError, ZeroDivisionError):
        raise ConfigError(f"expected a count (e.g. 0, 5) or a percentage (e.g. 1%), got {text!r}") from None


def parse_min_coverage(text: str) -> float:
    """``"0.25"`` or ``"25%"`` → 0.25; must lie in [0, 1]. ConfigError otherwise."""
    raw = text.strip()
    try:
        value = Fraction(raw[:-1].strip()) / 100 if raw.endswith("%") else Fraction(raw)
    except (ValueError, ZeroDivisionError):
        value = Fraction(-1)
    if not 0 <= value <= 1:
        raise ConfigError(f"expected a fraction in [0, 1] (e.g. 0.2) or a percentage (e.g. 20%), got {text!r}")
    return float(value)


@dataclass(frozen=True)
class CheckLimits:
    """The gate's limits, parsed and validated; ``None`` means "not checked".

    Every limit is inclusive: a value exactly at the limit passes.
    """

    # more contaminated examples than this fail: an int is a count (0 = fail on any), a Fraction a
    # percentage of the assessable examples in [0, 100] (Fraction(1) = 1 %, Fraction(1, 2) = 0.5 %)
    max_contaminated: int | Fraction | None = None
    # a mean token coverage of the target field below this fraction in [0, 1] fails
    min_coverage: float | None = None
    # more existing example ids (ids the baseline has) newly contaminated since the baseline scan than this
    # fail (needs a baseline)
    max_new_contaminated: int | None = None
    # max_new_contaminated also counts contaminated new rows (ids absent from the baseline); off by default,
    # since adding a row is reported apart from an existing row turning contaminated
    count_new_rows: bool = False

    def __post_init__(self) -> None:
        limit = self.max_contaminated
        if isinstance(limit, Fraction):
            if not 0 <= limit <= 100:
                raise ConfigError(f"max_contaminated as a percentage must lie in [0, 100], got {limit}%")
        elif limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
            raise ConfigError(f"max_contaminated must be a count (an int >= 0) or a percentage (a Fraction in "
                              f"[0, 100], e.g. Fraction('1.5') for 1.5 %), got {limit!r}")
        coverage = self.min_coverage
        if coverage is not None:
            if isinstance(coverage, bool) or not isinstance(coverage, int | float | Fraction) \
                    or not 0 <= coverage <= 1:
                raise ConfigError(f"min_coverage must be a fraction in [0, 1] (e.g. 0.2), got {coverage!r}")
            object.__setattr__(self, "min_coverage", float(coverage))
        new = self.max_new_contaminated
        if new is not None and (not isinstance(new, int) or isinstance(new, bool) or new < 0):
            raise ConfigError(f"max_new_contaminated must be an int >= 0, got {new!r}")
        if not isinstance(self.count_new_rows, bool):
            raise ConfigError(f"count_new_rows must be True or False, got {self.count_new_rows!r}")
        if self.count_new_rows and new is None:
            raise ConfigError("count_new_rows counts new rows against max_new_contaminated: give that limit too")

    @classmethod
    def gate_by_default(cls, max_contaminated: int | Fraction | None = None, min_coverage: float | None = None,
                        max_new_contaminated: int | None = None, count_new_rows: bool = False) -> CheckLimits:
        """The limits as ``probe check`` reads them: with no limit given at all, fail on any contaminated
        example (``max_contaminated=0``), so a bare check is a strict gate; once any limit is given, only
        the limits given apply (a coverage floor alone gates on coverage alone)."""
        if max_contaminated is None and min_coverage is None and max_new_contaminated is None:
            max_contaminated = 0
        return cls(max_contaminated, min_coverage, max_new_contaminated, count_new_rows)

    @classmethod
    def parse(cls, max_contaminated: str | None = None, min_coverage: str | None = None,
              max_new_contaminated: int | None = None, count_new_rows: bool = False) -> CheckLimits:
        """Limits from their text forms (``"0"``, ``"1%"``; ``"0.2"``, ``"20%"``), with
        :meth:`gate_by_default`'s rule. ConfigError names the limit and the value."""
        try:
            count = parse_max_contaminated(max_contaminated) if max_contaminated is not None else None
        except ConfigError as e:
            raise ConfigError(f"max_contaminated: {e}") from None
        try:
            coverage = parse_min_coverage(min_coverage) if min_coverage is not None else None
        except ConfigError as e:
            raise ConfigError(f"min_coverage: {e}") from None
        return cls.gate_by_default(count, coverage, max_new_contaminated, count_new_rows)


@dataclass
class CheckResult:
    """What :func:`check_dataset` did: the scan, the gate's verdict, and the reports it wrote."""

    scan: ScanResult
    gate: GateResult
    report: ReportModel  # the bounded report model (flagged examples first), as the reports show it
    reports: dict[str, Path]  # "html", "markdown", "junit" → the file written
    out_dir: Path  # the report directory: examples.parquet, summary.json, gate.json and the reports

    @property
    def passed(self) -> bool:
        return self.gate.passed


def check_dataset(dataset: str | Path, index_dir: str | Path, out_dir: str | Path | None = None, *,
                  config: ScanConfig | None = None, limits: CheckLimits, definition: str = "default",
                  baseline: str | Path | None = None, junit_per_example: bool = False, progress: Any = None,
                  reader: IndexReader | None = None) -> CheckResult:
    """Scan ``dataset`` against ``index_dir``, gate it with ``limits``, write the reports into ``out_dir``.

    The reports (and ``gate.json``) are written whether or not the gate passes: a failed
    check is a result (``CheckResult.passed`` is False), not an exception, so the caller
    decides what failing means. ``baseline`` is the ``summary.json`` (or report directory)
    of an earlier scan: regressions (existing ids newly contaminated), newly covered ids
    and new rows (ids absent from the baseline) are listed apart, and
    ``limits.max_new_contaminated`` counts regressions (plus contaminated new rows with
    ``limits.count_new_rows``). ``out_dir=None`` writes into a new
    temporary directory, kept so that the result's paths stay valid (``CheckResult.out_dir``).
    Everything the caller asked for is validated before the scan starts.
    """
    from probe.definitions import definition_names
    from probe.gate import check_baseline, evaluate_gate, require_baseline
    from probe.report.model import load_report
    from probe.report.render import render_reports, write_gate
    from probe.scan import ScanConfig, scan_dataset

    if definition not in definition_names():  # registered definitions too, not only the built-ins
        raise ConfigError(f"unknown definition {definition!r}; choose from {', '.join(definition_names())}")
    require_baseline(limits, baseline)
    if baseline is not None:
        check_baseline(baseline)
        base_dir = Path(baseline) if Path(baseline).is_dir() else Path(baseline).parent
        if out_dir is not None and base_dir.resolve() == Path(out_dir).resolve():
            raise ConfigError(f"the baseline {baseline} is in the report directory {out_dir} this scan writes: "
                              "this scan would overwrite it; keep the baseline in another directory (e.g. reports/main)")
    out_path = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="probe-check-"))
    config = config or ScanConfig()
    if definition not in config.definitions:  # the gate's definition must be computed
        config = dataclasses.replace(config, definitions=(*config.definitions, definition))
    scan = scan_dataset(dataset, index_dir, out_path, config, progress=progress, reader=reader)
    gate = evaluate_gate(scan.summary, limits, definition, baseline_summary_path=baseline,
                         examples_path=out_path / "examples.parquet")
    write_gate(out_path, gate.to_dict(), scan.summary)
    model = load_report(out_path, definition=definition)
    reports = render_reports(out_path, junit_per_example=junit_per_example, definition=definition, model=model)
    return CheckResult(scan=scan, gate=gate, report=model, reports=reports, out_dir=out_path)
