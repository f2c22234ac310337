"""Does coverage predict performance? ``probe correlate``: a scan's measures against eval results.

The decision probe supports ("teach this explicitly or not") rests on a premise the research
calls unreliable: similarity to pretraining data tracks accuracy on some benchmarks and not on
others (Yauney, Reif & Mimno, EMNLP 2023). So a team checks it on its own results first:

- **per example**: one scan, and a score file (JSONL, CSV/TSV, Parquet, or in-memory records)
  with ``id`` or ``row`` and one or more numeric score columns (``correct`` 0/1, ``score``,
  one column per checkpoint...), joined to the scan's ``examples.parquet``;
- **per dataset**: several scans, and a table with a ``dataset`` column (the scan directory's
  name, or its dataset file's name or stem) and one score per dataset, correlated with each
  dataset-level aggregate (mean coverage, share seen, share contaminated, the mean of every
  per-example measure column).

For every (measure, score) pair: Spearman and Kendall rank correlations (Pearson where the
measure takes more than two values) with percentile bootstrap confidence intervals
(resampling examples, or datasets), a two-sided permutation p-value for Spearman's ρ, the
mean score per measure quartile (the paper's Figure 6 view), and one plain sentence that
says whether there is evidence. Plus the agreement matrix: Spearman's ρ between every pair
of measures. The statistics are scipy.stats' (``rankdata``, ``kendalltau``, ``pearsonr``,
``spearmanr``); the resampling is numpy.

Nothing is dropped silently: a score id the scan does not have, a repeated id, a missing or
non-numeric score is an :class:`~probe.errors.InputError` with counts and examples; scan
examples without a score and examples where a measure is null (a field the example lacks)
are counted in the result.
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from probe.errors import ConfigError, InputError

if TYPE_CHECKING:
    import numpy as np

    from probe.scan_output import ScanSummary

__all__ = ["CorrelationResult", "DatasetPoint", "Estimate", "MeasureCorrelation", "QuartileBin", "correlate",
           "render_correlation_html", "render_correlation_markdown", "write_correlation"]

SCHEMA_VERSION = 1
EXAMPLE_KEYS = ("id", "row")  # a per-example score file is keyed by one of these (id first)
DATASET_KEY = "dataset"  # a per-dataset score table's key column
ERROR_EXAMPLES = 5  # offending values quoted per problem in an error message
RARE_MINORITY = 10  # a two-valued measure whose rarer value occurs fewer times gets a warning in its sentence
SIGNIFICANCE = 0.05  # the permutation p-value a sentence calls evidence (with a CI that excludes 0)
RESAMPLE_CELLS = 8_000_000  # bootstrap/permutation matrix cells per chunk (bounds memory for large n)
FIELD_PREFIXES = ("instruction_", "input_", "response_", "whole_")
# examples.parquet columns that are not measures (identity, text, offsets, provenance)
NOT_MEASURES = {"id", "row", "group", "verdict", "assessable", "llama2_class", "joint_same_doc", "joint_exact",
                "match_uri", "match_row", "match_doc_id", "match_source", "match_snippet", "match_verified"}


@dataclass(frozen=True)
class Estimate:
    """A statistic and its bootstrap confidence interval (``None`` where undefined: a constant variable)."""

    value: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True)
class QuartileBin:
    """Examples (or datasets) whose measure falls in one quartile; equal quartile points are merged, so
    tied values stay in one bin (a 0/1 flag has two bins: its 0s and its 1s)."""

    low: float  # smallest measure value in the bin
    high: float  # largest
    count: int
    mean_score: float


@dataclass(frozen=True)
class MeasureCorrelation:
    """One measure against one score column."""

    measure: str
    score: str
    n: int  # pairs correlated
    missing: int  # joined examples (or datasets) left out because the measure is null there
    spearman: Estimate
    kendall: Estimate
    pearson: Estimate | None  # None where the measure takes at most two values (a rank view suffices)
    permutation_p: float | None  # two-sided, for Spearman's rho; None where undefined
    quartiles: list[QuartileBin]
    evidence: bool  # the CI of rho excludes 0 and permutation_p <= SIGNIFICANCE
    sentence: str
    bootstrap_degenerate: int = 0  # resamples in which a variable was constant (left out of the CI)


@dataclass(frozen=True)
class DatasetPoint:
    """Per-dataset mode: one scan's aggregates and its scores."""

    name: str
    scan: str
    aggregates: dict[str, float | None]
    scores: dict[str, float]


@dataclass
class CorrelationResult:
    """What :func:`correlate` found; ``to_dict`` is ``correlation.json``."""

    mode: str  # "example" or "dataset"
    scans: list[str]
    scores_source: str
    score_columns: list[str]
    measures: list[str]
    n: int  # examples joined (per example) or datasets (per dataset)
    correlations: list[MeasureCorrelation]
    agreement: dict[str, dict[str, float | None]]  # measure -> measure -> Spearman's rho
    unscored_examples: int = 0  # scan examples the score file has no row for (per example)
    datasets: list[DatasetPoint] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)  # bootstrap, permutations, confidence, seed
    warnings: list[str] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CorrelationResult:
        """A ``correlation.json`` read back; ConfigError for a schema version this probe does not know."""
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ConfigError(f"correlation.json schema_version {version!r}: this probe reads {SCHEMA_VERSION}")

        def estimate(e: dict[str, Any] | None) -> Estimate | None:
            return None if e is None else Estimate(**e)

        correlations = [
            MeasureCorrelation(**{**c, "spearman": estimate(c["spearman"]), "kendall": estimate(c["kendall"]),
                                  "pearson": estimate(c.get("pearson")),
                                  "quartiles": [QuartileBin(**q) for q in c["quartiles"]]})
            for c in data["correlations"]]
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**{**known, "correlations": correlations,
                      "datasets": [DatasetPoint(**d) for d in data.get("datasets", [])]})

    def sentences(self) -> list[str]:
        return [c.sentence for c in self.correlations]


# --------------------------------------------------------------------------- reading the scores
@dataclass
class _Table:
    """A score table as read: column -> values, and each record's human location ("line 4")."""

    name: str
    columns: dict[str, list[Any]]
    locations: list[str]


def _read_scores(scores: Any) -> _Table:
    if isinstance(scores, (str, Path)):
        return _read_score_file(Path(scores))
    import pyarrow as pa

    if isinstance(scores, (list, tuple)):
        records = list(scores)
        if not all(isinstance(r, dict) for r in records):
            raise InputError("<scores>", "in-memory scores must be a list of dicts (one per example or dataset)")
    elif isinstance(scores, pa.Table):
        records = scores.to_pylist()
    elif type(scores).__name__ == "DataFrame":  # pandas, without importing it
        records = pa.Table.from_pandas(scores, preserve_index=False).to_pylist()
    else:
        raise ConfigError(f"scores must be a path, a list of dicts, a pyarrow.Table or a pandas.DataFrame, "
                          f"got {type(scores).__name__}")
    return _table("<scores>", records, [f"row {i + 1}" for i in range(len(records))])


def _table(name: str, records: list[dict[str, Any]], locations: list[str]) -> _Table:
    keys = list(dict.fromkeys(k for r in records for k in r))
    if not records:
        raise InputError(name, "the score table holds no records")
    return _Table(name, {k: [r.get(k) for r in records] for k in keys}, locations)


def _read_score_file(path: Path) -> _Table:
    name = str(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            records = pq.read_table(path).to_pylist()
            return _table(name, records, [f"row {i + 1}" for i in range(len(records))])
        with path.open(encoding="utf-8", newline="") as f:
            if suffix in (".csv", ".tsv"):
                reader = csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ",")
                records, locations = [], []
                for record in reader:
                    if None in record:
                        raise InputError(name, "more fields than the header has", f"line {reader.line_num}")
                    records.append({k: (v if v != "" else None) for k, v in record.items()})
                    locations.append(f"line {reader.line_num}")
                return _table(name, records, locations)
            if suffix not in (".jsonl", ".ndjson", ".json"):
                raise InputError(name, "unknown score file format: use .jsonl, .csv, .tsv or .parquet")
            records, locations = [], []
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError as e:
                    raise InputError(name, f"invalid JSON ({e.msg}); one JSON object per line", f"line {number}") \
                        from None
                if not isinstance(record, dict):
                    raise InputError(name, f"expected a JSON object, got {type(record).__name__}", f"line {number}")
                records.append(record)
                locations.append(f"line {number}")
            return _table(name, records, locations)
    except FileNotFoundError:
        raise InputError(name, "no such file") from None
    except UnicodeDecodeError as e:
        raise InputError(name, f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    except InputError:
        raise
    except Exception as e:  # noqa: BLE001 - pyarrow/csv raise several types for a bad file
        raise InputError(name, f"cannot read the score file: {e}") from e


def _number(value: Any) -> float | None:
    """A score as a float; None for a missing value; raises ValueError for anything non-numeric."""
    if value is None:
        return None
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        out = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "false"):
            return float(text == "true")
        out = float(text)
    else:
        raise ValueError(value)
    if not math.isfinite(out):
        raise ValueError(value)
    return out


def _score_values(table: _Table, columns: Sequence[str]) -> dict[str, list[float]]:
    """Each score column as floats; InputError listing every missing or non-numeric value (counts, examples)."""
    out: dict[str, list[float]] = {}
    problems = []
    for column in columns:
        values, bad, missing = [], [], []
        for location, raw in zip(table.locations, table.columns[column], strict=True):
            try:
                number = _number(raw)
            except (ValueError, OverflowError):
                bad.append(f"{location}: {raw!r}")
                continue
            if number is None:
                missing.append(location)
            else:
                values.append(number)
        if bad:
            problems.append(f"column {column!r}: {len(bad):,} non-numeric score(s) ({'; '.join(bad[:ERROR_EXAMPLES])})")
        if missing:
            problems.append(f"column {column!r}: {len(missing):,} missing score(s) "
                            f"({', '.join(missing[:ERROR_EXAMPLES])})")
        out[column] = values
    if problems:
        raise InputError(table.name, "; ".join(problems) + ". Every row needs a number (correct 0/1 or a score) "
                                                           "in every score column; pick the columns with score_columns")
    return out


def _pick_score_columns(table: _Table, key: str, score_columns: Sequence[str] | None) -> list[str]:
    if score_columns:
        unknown = [c for c in score_columns if c not in table.columns]
        if unknown:
            raise ConfigError(f"{table.name}: no score column {', '.join(map(repr, unknown))}; "
                              f"columns: {', '.join(table.columns)}")
        if key in score_columns:
            raise ConfigError(f"{key!r} is the key column, not a score")
        return list(score_columns)
    columns = [c for c in table.columns if c not in (*EXAMPLE_KEYS, DATASET_KEY)]
    if not columns:
        raise InputError(table.name, f"no score column: besides {key!r}, give `correct` (0/1), `score`, or one "
                                     "numeric column per model")
    return columns


def _check_duplicates(table: _Table, keys: list[str], key: str) -> None:
    counts = Counter(keys)
    repeated = [(k, n) for k, n in counts.items() if n > 1]
    if repeated:
        shown = ", ".join(f"{k!r} ({n}×)" for k, n in repeated[:ERROR_EXAMPLES])
        raise InputError(table.name, f"{len(repeated):,} {key} value(s) occur more than once ({shown}): "
                                     "one row per example (or dataset), several models as several columns")


# --------------------------------------------------------------------------- measures
def _default_measures(columns: dict[str, Any], summary: ScanSummary) -> list[str]:
    """The per-example measures worth correlating: the verdict's score, the target field's n-gram
    metrics at each n, its longest match, the default definition's flag, and every numeric column
    another measure added (columns outside the n-gram measure's FIELD_ families)."""
    import pyarrow as pa

    target = summary.target_field
    ns = sorted(summary.index.spec.get("ns", ()) if isinstance(summary.index.spec, dict) else ())
    wanted = ["coverage"]
    for n in ns:
        wanted += [f"{target}_token_coverage_{n}", f"{target}_rare_token_coverage_{n}",
                   f"{target}_pattern_token_coverage_{n}"]
    if ns:
        wanted.append(f"{target}_ngram_coverage_{ns[0]}")
    wanted += [f"{target}_longest_match_tokens", "contaminated_default"]
    numeric = {name for name, typ in columns.items()
               if pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_boolean(typ)}
    others = [name for name in columns if name in numeric and name not in NOT_MEASURES
              and not name.startswith(FIELD_PREFIXES) and not name.startswith("contaminated_")
              and name != "coverage"]
    return [m for m in wanted if m in numeric] + others


def _measure_columns(examples: Path, summary: ScanSummary, measures: Sequence[str] | None) -> list[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(examples)
    types = {name: schema.field(name).type for name in schema.names}
    if not measures:
        return _default_measures(types, summary)
    unknown = [m for m in measures if m not in types]
    if unknown:
        raise ConfigError(f"{examples}: no measure column {', '.join(map(repr, unknown))} (see docs/scan-output.md "
                          "for the columns)")
    not_numeric = [m for m in measures if not (pa.types.is_integer(types[m]) or pa.types.is_floating(types[m])
                                               or pa.types.is_boolean(types[m]))]
    if not_numeric:
        raise ConfigError(f"measure column(s) {', '.join(map(repr, not_numeric))} are not numeric")
    return list(measures)


def _as_floats(values: list[Any]) -> np.ndarray:
    import numpy as np

    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


# --------------------------------------------------------------------------- statistics
def _require_scipy() -> Any:
    try:
        from scipy import stats
    except ImportError:
        raise ConfigError("correlate needs scipy: pip install 'probe[stats]'") from None
    return stats


def _rowwise_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson's r of each row of ``a`` with the same row of ``b`` (NaN where a row is constant)."""
    import numpy as np

    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    denominator = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (a * b).sum(axis=1) / np.where(denominator > 0, denominator, 1), np.nan)


def _chunks(total: int, n: int) -> list[tuple[int, int]]:
    step = max(1, RESAMPLE_CELLS // max(n, 1))
    return [(i, min(total, i + step)) for i in range(0, total, step)]


def _interval(samples: np.ndarray, confidence: float) -> tuple[float | None, float | None, int]:
    import numpy as np

    finite = samples[np.isfinite(samples)]
    degenerate = int(samples.size - finite.size)
    if finite.size < 2:
        return None, None, degenerate
    alpha = (1 - confidence) / 2
    low, high = np.quantile(finite, [alpha, 1 - alpha])
    return float(low), float(high), degenerate


def _finite(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _associate(x: np.ndarray, y: np.ndarray, *, with_pearson: bool, bootstrap: int, permutations: int,
               confidence: float, rng: np.random.Generator) -> tuple[Estimate, Estimate, Estimate | None,
                                                                      float | None, int]:
    """Spearman, Kendall (and Pearson) with percentile bootstrap CIs; the permutation p-value of rho."""
    import numpy as np

    stats = _require_scipy()
    n = x.size
    rho = _finite(stats.spearmanr(x, y).statistic)
    tau = _finite(stats.kendalltau(x, y).statistic)
    r = _finite(stats.pearsonr(x, y).statistic) if with_pearson else None
    rho_samples, tau_samples, r_samples = [], [], []
    for start, stop in _chunks(bootstrap, n):
        picks = rng.integers(0, n, size=(stop - start, n))
        xs, ys = x[picks], y[picks]
        rho_samples.append(_rowwise_pearson(stats.rankdata(xs, axis=1), stats.rankdata(ys, axis=1)))
        if with_pearson:
            r_samples.append(_rowwise_pearson(xs, ys))
        for row_x, row_y in zip(xs, ys, strict=True):
            if np.ptp(row_x) > 0 and np.ptp(row_y) > 0:
                tau_samples.append(stats.kendalltau(row_x, row_y).statistic)
            else:
                tau_samples.append(np.nan)
    rho_low, rho_high, degenerate = _interval(np.concatenate(rho_samples), confidence)
    tau_low, tau_high, _ = _interval(np.asarray(tau_samples, dtype=np.float64), confidence)
    pearson = None
    if with_pearson:
        r_low, r_high, _ = _interval(np.concatenate(r_samples), confidence)
        pearson = Estimate(r, r_low, r_high)
    p_value = None
    if rho is not None and permutations > 0:
        rank_x, rank_y = stats.rankdata(x), stats.rankdata(y)
        extreme = 0
        for start, stop in _chunks(permutations, n):
            shuffled = rng.permuted(np.broadcast_to(rank_y, (stop - start, n)), axis=1)
            permuted = _rowwise_pearson(np.broadcast_to(rank_x, shuffled.shape), shuffled)
            extreme += int(np.sum(np.abs(permuted) >= abs(rho) - 1e-12))
        p_value = (1 + extreme) / (1 + permutations)
    return (Estimate(rho, rho_low, rho_high), Estimate(tau, tau_low, tau_high), pearson, p_value, degenerate)


def _quartiles(x: np.ndarray, y: np.ndarray) -> list[QuartileBin]:
    import numpy as np

    # bins (…, q25], (q25, q50], (q50, q75], (q75, …) with equal quartile points merged: ties stay in one bin,
    # so a measure that is 0 for most examples gets a bin of exactly its zeros (and a flag: 0s and 1s)
    inner = np.unique(np.quantile(x, [0.25, 0.5, 0.75]))
    bins = np.searchsorted(inner, x, side="left")
    out = []
    for b in range(int(bins.max()) + 1 if bins.size else 0):
        mask = bins == b
        if mask.any():
            out.append(QuartileBin(float(x[mask].min()), float(x[mask].max()), int(mask.sum()),
                                   float(y[mask].mean())))
    return out


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}".replace("-", "−")


def _sentence(measure: str, score: str, n: int, unit: str, rho: Estimate, p_value: float | None,
              evidence: bool, constant: str | None) -> str:
    if constant is not None:
        return f"{measure} is constant here ({constant}): it cannot predict {score} (n = {n:,} {unit})."
    stat = f"ρ = {_fmt(rho.value)} [{_fmt(rho.low)}, {_fmt(rho.high)}]"
    p_text = f", permutation p = {p_value:.3g}" if p_value is not None else ""
    tail = f"{stat}{p_text}, n = {n:,} {unit}"
    if evidence and rho.value is not None:
        direction = "higher" if rho.value > 0 else "lower"
        return f"evidence that {measure} predicts {score} here: {direction} {measure}, higher {score}: {tail}."
    few = " — too few to tell any but a very strong correlation from chance" if n < 10 else ""
    return f"no evidence that {measure} predicts {score} here: {tail}{few}."


def _correlate_pair(measure: str, score: str, x_all: np.ndarray, y_all: np.ndarray, unit: str, *,
                    bootstrap: int, permutations: int, confidence: float, rng: np.random.Generator,
                    ) -> MeasureCorrelation:
    import numpy as np

    keep = np.isfinite(x_all)
    x, y = x_all[keep], y_all[keep]
    n, missing = int(x.size), int((~keep).sum())
    constant = None
    if n < 3:
        constant = f"only {n} value(s) to correlate"
    elif np.ptp(x) == 0:
        constant = f"{measure} = {x[0]:g} everywhere"
    elif np.ptp(y) == 0:
        constant = f"{score} = {y[0]:g} everywhere"
    if constant is not None:
        none = Estimate(None, None, None)
        return MeasureCorrelation(measure, score, n, missing, none, none, None, None,
                                  _quartiles(x, y) if n else [], False,
                                  _sentence(measure, score, n, unit, none, None, False, constant))
    with_pearson = np.unique(x).size > 2
    rho, tau, pearson, p_value, degenerate = _associate(
        x, y, with_pearson=with_pearson, bootstrap=bootstrap, permutations=permutations, confidence=confidence,
        rng=rng)
    excludes_zero = rho.low is not None and rho.high is not None and (rho.low > 0 or rho.high < 0)
    evidence = bool(excludes_zero and p_value is not None and p_value <= SIGNIFICANCE)
    sentence = _sentence(measure, score, n, unit, rho, p_value, evidence, None)
    values, counts = np.unique(x, return_counts=True)
    if values.size == 2 and counts.min() < RARE_MINORITY:
        # a flag set on a handful of examples: resamples hold 0, 1, 2... of them, so the interval is unreliable
        sentence += (f" Only {int(counts.min()):,} of the {n:,} {unit} have {measure} = {values[counts.argmin()]:g}:"
                     " too few for the interval to mean much; the permutation p-value is the better guide.")
    return MeasureCorrelation(measure, score, n, missing, rho, tau, pearson, p_value, _quartiles(x, y), evidence,
                              sentence, degenerate)


def _agreement(values: dict[str, np.ndarray]) -> dict[str, dict[str, float | None]]:
    """Spearman's rho between every pair of measures, over the rows where both are present."""
    import numpy as np

    stats = _require_scipy()
    out: dict[str, dict[str, float | None]] = {m: {} for m in values}
    names = list(values)
    for i, a in enumerate(names):
        for b in names[i:]:
            keep = np.isfinite(values[a]) & np.isfinite(values[b])
            xa, xb = values[a][keep], values[b][keep]
            rho = None
            if xa.size >= 3 and np.ptp(xa) > 0 and np.ptp(xb) > 0:
                rho = 1.0 if a == b else _finite(stats.spearmanr(xa, xb).statistic)
            out[a][b] = out[b][a] = rho
    return out


# --------------------------------------------------------------------------- the two modes
def _validate(bootstrap: int, permutations: int, confidence: float) -> None:
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, int) or bootstrap < 10:
        raise ConfigError(f"bootstrap must be an int >= 10 (resamples for the confidence intervals), got {bootstrap!r}")
    if isinstance(permutations, bool) or not isinstance(permutations, int) or permutations < 0:
        raise ConfigError(f"permutations must be an int >= 0 (0 = no p-value), got {permutations!r}")
    if not 0.5 <= confidence < 1:
        raise ConfigError(f"confidence must lie in [0.5, 1), e.g. 0.95, got {confidence!r}")


def correlate(scans: str | Path | Sequence[str | Path], scores: Any, *, score_columns: Sequence[str] | None = None,
              measures: Sequence[str] | None = None, bootstrap: int = 1000, permutations: int = 1000,
              confidence: float = 0.95, seed: int = 0) -> CorrelationResult:
    """Correlate scan measures with eval scores: per example (one scan, scores keyed by ``id`` or ``row``)
    or per dataset (several scans, scores keyed by ``dataset``).

    ``scans``: report directories (or their ``summary.json``). ``scores``: a JSONL/CSV/TSV/Parquet
    path, a list of dicts, a ``pyarrow.Table`` or a pandas DataFrame. ``score_columns``: the
    numeric columns to correlate [default: every column but the key]. ``measures``: per-example
    columns of ``examples.parquet`` [default: coverage, the target field's n-gram metrics, its
    longest match, ``contaminated_default`` and other measures' numeric columns]; per dataset,
    their means plus the scan's shares (seen, novel, contaminated per definition) and mean
    coverage. ``seed`` makes the bootstrap and permutations reproducible.
    """
    import numpy as np

    from probe.diff import open_scan

    _validate(bootstrap, permutations, confidence)
    _require_scipy()
    scan_list = [scans] if isinstance(scans, (str, Path)) else list(scans)
    if not scan_list:
        raise ConfigError("correlate needs at least one scan directory")
    table = _read_scores(scores)
    opened = [(str(s), *open_scan(s)) for s in scan_list]
    rng = np.random.default_rng(seed)
    settings = {"bootstrap": bootstrap, "permutations": permutations, "confidence": confidence, "seed": seed}
    source = str(scores) if isinstance(scores, (str, Path)) else table.name
    has_example_key = any(k in table.columns for k in EXAMPLE_KEYS)
    if has_example_key:
        if len(opened) != 1:
            raise ConfigError(f"per-example scores ({source} has an id/row column) join one scan, got "
                              f"{len(opened)}; for per-dataset scores give a {DATASET_KEY!r} column instead")
        return _per_example(opened[0], table, source, score_columns, measures, rng, settings)
    if DATASET_KEY not in table.columns:
        raise InputError(table.name, f"no key column: give `id` or `row` (per-example scores) or "
                                     f"`{DATASET_KEY}` (one score per scanned dataset); columns: "
                                     f"{', '.join(table.columns)}")
    return _per_dataset(opened, table, source, score_columns, measures, rng, settings)


def _per_example(opened: tuple[str, ScanSummary, Path], table: _Table, source: str,
                 score_columns: Sequence[str] | None, measures: Sequence[str] | None, rng: np.random.Generator,
                 settings: dict[str, Any]) -> CorrelationResult:
    import numpy as np
    import pyarrow.parquet as pq

    scan, summary, examples = opened
    key = next(k for k in EXAMPLE_KEYS if k in table.columns)
    columns = _pick_score_columns(table, key, score_columns)
    keys = _example_keys(table, key)
    _check_duplicates(table, keys, key)
    values = _score_values(table, columns)
    measure_names = _measure_columns(examples, summary, measures)
    scan_table = pq.read_table(examples, columns=list(dict.fromkeys([key, *measure_names])))
    scan_keys = [str(v) for v in scan_table.column(key).to_pylist()]
    position = {k: i for i, k in enumerate(scan_keys)}
    unmatched = [(loc, k) for loc, k in zip(table.locations, keys, strict=True) if k not in position]
    if unmatched:
        shown = "; ".join(f"{loc}: {k!r}" for loc, k in unmatched[:ERROR_EXAMPLES])
        hint = ""
        if key == "id" and summary.dataset.id_field == "(content hash)":
            hint = (" (this scan's ids are content hashes: its dataset has no id column; key the scores by `row`, "
                    "the 0-based record index, or re-scan with --id-field)")
        raise InputError(table.name, f"{len(unmatched):,} of {len(keys):,} score rows match no example of "
                                     f"{scan} by {key} ({shown}){hint}")
    picks = np.array([position[k] for k in keys], dtype=np.int64)
    unit = "examples"
    measure_values = {m: _as_floats(scan_table.column(m).to_pylist())[picks] for m in measure_names}
    correlations = [
        _correlate_pair(m, c, measure_values[m], np.asarray(values[c]), unit, bootstrap=settings["bootstrap"],
                        permutations=settings["permutations"], confidence=settings["confidence"], rng=rng)
        for c in columns for m in measure_names]
    unscored = len(scan_keys) - len(keys)
    warnings = [f"{unscored:,} of the scan's {len(scan_keys):,} examples have no score and are not in the "
                "correlation"] if unscored else []
    return CorrelationResult(mode="example", scans=[scan], scores_source=source, score_columns=columns,
                             measures=measure_names, n=len(keys), correlations=correlations,
                             agreement=_agreement(measure_values), unscored_examples=unscored, config=settings,
                             warnings=warnings)


def _example_keys(table: _Table, key: str) -> list[str]:
    raw = table.columns[key]
    if key == "id":
        missing = [loc for loc, v in zip(table.locations, raw, strict=True) if v is None or v == ""]
        if missing:
            raise InputError(table.name, f"{len(missing):,} row(s) without an id ({', '.join(missing[:ERROR_EXAMPLES])})")
        return [str(v) for v in raw]
    out, bad = [], []
    for loc, v in zip(table.locations, raw, strict=True):
        try:
            number = int(str(v).strip()) if not isinstance(v, bool) else None
        except ValueError:
            number = None
        if number is None or number < 0:
            bad.append(f"{loc}: {v!r}")
        else:
            out.append(str(number))
    if bad:
        raise InputError(table.name, f"{len(bad):,} row value(s) are not 0-based record numbers "
                                     f"({'; '.join(bad[:ERROR_EXAMPLES])})")
    return out


def _dataset_aggregates(summary: ScanSummary, examples: Path, measure_names: list[str]) -> dict[str, float | None]:
    """A scan's dataset-level aggregates: shares of the assessable examples (seen, novel, contaminated per
    definition) and the mean of each per-example measure (``mean_coverage`` is the verdict score's mean)."""
    import numpy as np
    import pyarrow.parquet as pq

    names = pq.read_schema(examples).names
    flags = [n for n in names if n.startswith("contaminated_")]
    present = [m for m in measure_names if m in names]
    table = pq.read_table(examples, columns=list(dict.fromkeys(["verdict", "assessable", *flags, *present])))
    assessable = sum(1 for a in table.column("assessable").to_pylist() if a)
    verdicts = Counter(table.column("verdict").to_pylist())
    out: dict[str, float | None] = {
        "share_seen": verdicts.get("seen", 0) / assessable if assessable else None,
        "share_novel": verdicts.get("novel", 0) / assessable if assessable else None,
    }
    for flag in flags:
        if flag.removeprefix("contaminated_") in summary.contaminated:  # unavailable definitions are all null
            count = sum(1 for v in table.column(flag).to_pylist() if v)
            out[f"share_{flag}"] = count / assessable if assessable else None
    for m in present:
        values = _as_floats(table.column(m).to_pylist())
        finite = values[np.isfinite(values)]
        out[f"mean_{m}"] = float(finite.mean()) if finite.size else None
    return out


def _dataset_names(scan: str, summary: ScanSummary) -> set[str]:
    """What a score table's ``dataset`` value may call a scan: its directory, its dataset file, its stem."""
    directory = Path(scan)
    if directory.name == "summary.json":
        directory = directory.parent
    dataset = summary.dataset.path
    name = dataset.rstrip("/").rsplit("/", 1)[-1]
    return {directory.name, str(scan), dataset, name, name.split(".", 1)[0]}


def _per_dataset(opened: list[tuple[str, ScanSummary, Path]], table: _Table, source: str,
                 score_columns: Sequence[str] | None, measures: Sequence[str] | None, rng: np.random.Generator,
                 settings: dict[str, Any]) -> CorrelationResult:
    import numpy as np

    columns = _pick_score_columns(table, DATASET_KEY, score_columns)
    keys = [str(v) for v in table.columns[DATASET_KEY]]
    _check_duplicates(table, keys, DATASET_KEY)
    values = _score_values(table, columns)
    row_of = {k: i for i, k in enumerate(keys)}
    points, used = [], set()
    for scan, summary, examples in opened:
        names = _dataset_names(scan, summary)
        hits = [k for k in keys if k in names]
        if len(hits) != 1:
            what = "no" if not hits else f"{len(hits)} ({', '.join(map(repr, hits))})"
            raise InputError(table.name, f"{what} {DATASET_KEY} row(s) name the scan {scan}; name it by its "
                                         f"directory or dataset file ({', '.join(sorted(map(repr, names)))})")
        used.add(hits[0])
        measure_names = _measure_columns(examples, summary, measures)
        points.append(DatasetPoint(hits[0], scan, _dataset_aggregates(summary, examples, measure_names),
                                   {c: values[c][row_of[hits[0]]] for c in columns}))
    unused = [(loc, k) for loc, k in zip(table.locations, keys, strict=True) if k not in used]
    if unused:
        shown = "; ".join(f"{loc}: {k!r}" for loc, k in unused[:ERROR_EXAMPLES])
        raise InputError(table.name, f"{len(unused):,} {DATASET_KEY} row(s) match none of the scans given ({shown})")
    aggregate_names = list(dict.fromkeys(a for p in points for a in p.aggregates))
    warnings = []
    partial = [a for a in aggregate_names if any(a not in p.aggregates for p in points)]
    if partial:
        warnings.append(f"not every scan has {', '.join(partial)}: those are correlated over the scans that do")
    if len(points) < 10:
        warnings.append(f"only {len(points)} datasets: a rank correlation over so few points is weak evidence "
                        "either way (the intervals say how weak)")
    aggregate_values = {a: _as_floats([p.aggregates.get(a) for p in points]) for a in aggregate_names}
    correlations = [
        _correlate_pair(a, c, aggregate_values[a], np.array([p.scores[c] for p in points]), "datasets",
                        bootstrap=settings["bootstrap"], permutations=settings["permutations"],
                        confidence=settings["confidence"], rng=rng)
        for c in columns for a in aggregate_names]
    return CorrelationResult(mode="dataset", scans=[o[0] for o in opened], scores_source=source,
                             score_columns=columns, measures=aggregate_names, n=len(points),
                             correlations=correlations, agreement=_agreement(aggregate_values), datasets=points,
                             config=settings, warnings=warnings)


# --------------------------------------------------------------------------- writing
def write_correlation(result: CorrelationResult, out_dir: str | Path) -> dict[str, Path]:
    """Write ``correlation.json``, ``correlation.md`` and ``correlation.html`` into ``out_dir``, atomically."""
    from probe.durable import write_bytes_atomic, write_json_atomic

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return {
        "json": write_json_atomic(out / "correlation.json", result.to_dict()),
        "markdown": write_bytes_atomic(out / "correlation.md", render_correlation_markdown(result).encode("utf-8")),
        "html": write_bytes_atomic(out / "correlation.html", render_correlation_html(result).encode("utf-8")),
    }


def _estimate_text(e: Estimate | None) -> str:
    if e is None or e.value is None:
        return "—"
    return f"{_fmt(e.value)} [{_fmt(e.low)}, {_fmt(e.high)}]"


def _p_text(p: float | None) -> str:
    return "—" if p is None else f"{p:.3g}"


def render_correlation_markdown(result: CorrelationResult) -> str:
    """``correlation.md``: the sentences, one table per score column, the agreement matrix."""
    from probe.report.markdown import md_text

    unit = "examples" if result.mode == "example" else "datasets"
    lines = ["# Does coverage predict performance?", "",
             f"{md_text(', '.join(result.scans), 300)} against {md_text(result.scores_source, 200)}: "
             f"{result.n:,} {unit}, {result.config.get('bootstrap')} bootstrap resamples, "
             f"{result.config.get('permutations')} permutations, {result.config.get('confidence', 0.95):.0%} "
             "intervals.", ""]
    lines += [f"- ⚠️ {md_text(w, 300)}" for w in result.warnings]
    for score in result.score_columns:
        rows = [c for c in result.correlations if c.score == score]
        lines += ["", f"## {md_text(score, 80)}", ""]
        lines += [f"- {md_text(c.sentence, 400)}" for c in rows]
        lines += ["", "| measure | n | Spearman ρ | Kendall τ | Pearson r | p (perm.) | mean score by quartile |",
                  "|---|---:|---|---|---|---:|---|"]
        for c in rows:
            quartiles = " · ".join(f"{q.mean_score:.3g} (n={q.count:,})" for q in c.quartiles)
            lines.append(f"| {md_text(c.measure, 60)} | {c.n:,} | {_estimate_text(c.spearman)} | "
                         f"{_estimate_text(c.kendall)} | {_estimate_text(c.pearson)} | {_p_text(c.permutation_p)} | "
                         f"{quartiles} |")
    names = list(result.agreement)
    if len(names) > 1:
        lines += ["", "## Agreement between measures (Spearman ρ)", "",
                  "| | " + " | ".join(md_text(n, 30) for n in names) + " |", "|---" * (len(names) + 1) + "|"]
        for a in names:
            lines.append(f"| {md_text(a, 40)} | " + " | ".join(_fmt(result.agreement[a][b]) for b in names) + " |")
    return "\n".join(lines) + "\n"


_PLOT_W, _PLOT_H, _PAD = 260, 150, 30


def _scale(value: float, low: float, high: float, size: float) -> float:
    return 0.0 if high <= low else (value - low) / (high - low) * size


def _bins_svg(c: MeasureCorrelation) -> str:
    """Mean score per measure quartile as bars (per example)."""
    from probe.report.html import _e

    if not c.quartiles:
        return ""
    top = max(max(q.mean_score for q in c.quartiles), 0.0) or 1.0
    low = min(0.0, min(q.mean_score for q in c.quartiles))
    width = (_PLOT_W - _PAD) / len(c.quartiles)
    bars = []
    for i, q in enumerate(c.quartiles):
        h = _scale(q.mean_score, low, top, _PLOT_H - 2 * _PAD)
        x = _PAD + i * width
        bars.append(f'<rect x="{x + 3:.1f}" y="{_PLOT_H - _PAD - h:.1f}" width="{width - 6:.1f}" height="{h:.1f}" '
                    f'fill="#2e86de"><title>{_e(c.measure)} {q.low:.3g}–{q.high:.3g}: mean {_e(c.score)} '
                    f'{q.mean_score:.3g} over {q.count:,}</title></rect>'
                    f'<text x="{x + width / 2:.1f}" y="{_PLOT_H - _PAD + 12}" text-anchor="middle">'
                    f'{q.low:.2g}–{q.high:.2g}</text>'
                    f'<text x="{x + width / 2:.1f}" y="{_PLOT_H - _PAD - h - 3:.1f}" text-anchor="middle">'
                    f'{q.mean_score:.2g}</text>')
    return (f'<svg width="{_PLOT_W}" height="{_PLOT_H}" role="img" aria-label="mean score by quartile">'
            f'<line x1="{_PAD}" y1="{_PLOT_H - _PAD}" x2="{_PLOT_W}" y2="{_PLOT_H - _PAD}" stroke="#dde2e6"/>'
            + "".join(bars) + "</svg>")


def _scatter_svg(c: MeasureCorrelation, points: list[DatasetPoint]) -> str:
    """One dot per dataset (per dataset), measure across, score up."""
    from probe.report.html import _e

    pairs = [(p.aggregates.get(c.measure), p.scores.get(c.score), p.name) for p in points]
    pairs = [(x, y, name) for x, y, name in pairs if x is not None and y is not None]
    if not pairs:
        return ""
    xs, ys = [x for x, _, _ in pairs], [y for _, y, _ in pairs]
    inner_w, inner_h = _PLOT_W - 2 * _PAD, _PLOT_H - 2 * _PAD
    dots = "".join(
        f'<circle cx="{_PAD + _scale(x, min(xs), max(xs), inner_w):.1f}" '
        f'cy="{_PLOT_H - _PAD - _scale(y, min(ys), max(ys), inner_h):.1f}" r="4" fill="#2e86de">'
        f'<title>{_e(name)}: {_e(c.measure)} {x:.3g}, {_e(c.score)} {y:.3g}</title></circle>'
        for x, y, name in pairs)
    axes = (f'<line x1="{_PAD}" y1="{_PLOT_H - _PAD}" x2="{_PLOT_W - _PAD}" y2="{_PLOT_H - _PAD}" stroke="#dde2e6"/>'
            f'<line x1="{_PAD}" y1="{_PAD}" x2="{_PAD}" y2="{_PLOT_H - _PAD}" stroke="#dde2e6"/>'
            f'<text x="{_PAD}" y="{_PLOT_H - _PAD + 12}">{min(xs):.3g}</text>'
            f'<text x="{_PLOT_W - _PAD}" y="{_PLOT_H - _PAD + 12}" text-anchor="end">{max(xs):.3g}</text>'
            f'<text x="2" y="{_PLOT_H - _PAD}">{min(ys):.3g}</text><text x="2" y="{_PAD}">{max(ys):.3g}</text>')
    return f'<svg width="{_PLOT_W}" height="{_PLOT_H}" role="img" aria-label="scatter">{axes}{dots}</svg>'


def render_correlation_html(result: CorrelationResult) -> str:
    """``correlation.html``: one self-contained page (inline CSS and SVG, no JavaScript), data escaped."""
    from probe.report.html import _CSS, CSP, _e

    unit = "examples" if result.mode == "example" else "datasets"
    body = [f"<h1>Does coverage predict performance?</h1><div class=\"sub\">{_e(', '.join(result.scans))} "
            f"against {_e(result.scores_source)}: {result.n:,} {unit}; {result.config.get('bootstrap')} bootstrap "
            f"resamples, {result.config.get('permutations')} permutations, "
            f"{result.config.get('confidence', 0.95):.0%} intervals</div>"]
    body += [f'<p class="warn">{_e(w)}</p>' for w in result.warnings]
    for score in result.score_columns:
        rows = [c for c in result.correlations if c.score == score]
        body.append(f"<h2>{_e(score)}</h2><div class=\"lead\">"
                    + "<br>".join(_e(c.sentence) for c in rows) + "</div>")
        table = "".join(
            f'<tr><td class="id">{_e(c.measure)}</td><td class="n">{c.n:,}</td><td>{_e(_estimate_text(c.spearman))}'
            f'</td><td>{_e(_estimate_text(c.kendall))}</td><td>{_e(_estimate_text(c.pearson))}</td>'
            f'<td class="n">{_e(_p_text(c.permutation_p))}</td></tr>' for c in rows)
        body.append('<table><tr><th>measure</th><th class="n">n</th><th>Spearman ρ</th><th>Kendall τ</th>'
                    f'<th>Pearson r</th><th class="n">p (perm.)</th></tr>{table}</table>')
        charts = []
        for c in rows:
            svg = _scatter_svg(c, result.datasets) if result.mode == "dataset" else _bins_svg(c)
            if svg:
                what = "by dataset" if result.mode == "dataset" else "mean score by measure quartile"
                charts.append(f'<div class="chart"><div class="t">{_e(c.measure)}</div>'
                              f'<div class="small muted">{what}</div>{svg}</div>')
        body.append('<div class="grid">' + "".join(charts) + "</div>")
    names = list(result.agreement)
    if len(names) > 1:
        head = "".join(f"<th>{_e(n)}</th>" for n in names)
        cells = "".join(
            f'<tr><th>{_e(a)}</th>' + "".join(f'<td class="n">{_e(_fmt(result.agreement[a][b]))}</td>' for b in names)
            + "</tr>" for a in names)
        body.append(f"<h2>Agreement between measures (Spearman ρ)</h2><table><tr><th></th>{head}</tr>{cells}</table>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="referrer" content="no-referrer">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>probe correlate</title><style>{_CSS}</style></head><body>" + "".join(body)
            + '<footer class="muted small"><p>Generated by probe correlate from the scans and the score file. '
              "No scripts, no network: this file is self-contained.</p></footer></body></html>\n")
