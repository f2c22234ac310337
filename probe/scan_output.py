"""The scan's output contract: ``summary.json`` as typed dataclasses (docs/scan-output.md).

The scan builds a :class:`ScanSummary` and writes :meth:`ScanSummary.to_dict`; every
reader (reports, the CI gate, the CLI) loads it with :meth:`ScanSummary.from_dict`, which
validates what it reads and names the key that is wrong. The constants every side shares
(schema version, fields, verdicts) are defined here once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from probe.errors import InputError

SCHEMA_VERSION = 1
TEXT_FIELDS = ("instruction", "input", "response")
SCAN_FIELDS = (*TEXT_FIELDS, "whole")
VERDICTS = ("seen", "partial", "novel", "unassessable")
OUTCOMES = ("leaked", "seen", "partial", "novel", "unassessable")  # probe.outcomes: one action per example
DATASET_KINDS = ("train", "eval")  # fine-tuning data, or an evaluation set (a benchmark)


def _need(data: Any, key: str, kind: type | tuple[type, ...], where: str, source: str) -> Any:
    if not isinstance(data, dict) or key not in data:
        raise InputError(source, f"missing key {where}{key}; not a probe scan summary")
    value = data[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
        raise InputError(source, f"{where}{key} is {type(value).__name__}, expected "
                                 f"{' or '.join(k.__name__ for k in _as_tuple(kind))}")
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


_NUMBER = (int, float)


@dataclass(frozen=True)
class DatasetInfo:
    path: str
    schema: str
    mapping: dict[str, str]
    id_field: str | None
    group_field: str | None
    records: int
    skipped: int
    skipped_reasons: dict[str, int] = field(default_factory=dict)
    skipped_examples: list[str] = field(default_factory=list)
    kind: str = "train"  # "train" (fine-tuning data) or "eval" (a benchmark): what the outcomes ask you to do
    kind_guessed: bool = False  # guessed from the path (ScanConfig.dataset_kind "auto")

    @property
    def has_id_column(self) -> bool:
        """Whether example ids come from a column of the dataset (else: content hashes or record numbers)."""
        from probe.sources.dataset_model import CONTENT_HASH_ID_FIELD

        return self.id_field not in (None, CONTENT_HASH_ID_FIELD)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str) -> DatasetInfo:
        w = "dataset."
        kind = str(d.get("kind", "train"))
        if kind not in DATASET_KINDS:
            raise InputError(source, f"dataset.kind is {kind!r}, expected train or eval")
        return cls(path=str(_need(d, "path", str, w, source)), schema=str(d.get("schema", "")),
                   mapping=dict(d.get("mapping") or {}), id_field=d.get("id_field"),
                   group_field=d.get("group_field"), records=int(d.get("records", 0)),
                   skipped=int(d.get("skipped", 0)), skipped_reasons=dict(d.get("skipped_reasons") or {}),
                   skipped_examples=list(d.get("skipped_examples") or []), kind=kind,
                   kind_guessed=bool(d.get("kind_guessed", False)))


@dataclass(frozen=True)
class IndexInfo:
    path: str
    snapshot: int
    spec_fingerprint: str
    spec: dict[str, Any]
    approximate: bool

    @property
    def ns(self) -> list[int]:
        return [int(n) for n in self.spec.get("ns") or []]

    @property
    def sample_mod(self) -> int:
        return int(self.spec.get("sample_mod", 1))

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str) -> IndexInfo:
        w = "index."
        return cls(path=str(_need(d, "path", str, w, source)), snapshot=int(_need(d, "snapshot", int, w, source)),
                   spec_fingerprint=str(d.get("spec_fingerprint", "")), spec=dict(_need(d, "spec", dict, w, source)),
                   approximate=bool(d.get("approximate", False)))


@dataclass(frozen=True)
class ScanSettings:
    """The ``config`` section: what the scan was asked to compute."""

    thresholds: dict[str, Any]
    definitions: list[str]
    target_field: str
    verify: bool
    measures: list[str] = field(default_factory=lambda: ["ngram"])
    outcome_definition: str = "default"  # the definition whose flag makes an outcome "leaked"

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str) -> ScanSettings:
        w = "config."
        target = str(d.get("target_field", "whole")) if isinstance(d, dict) else "whole"
        if target not in SCAN_FIELDS:
            raise InputError(source, f"unknown target_field {target!r}")
        return cls(thresholds=dict(_need(d, "thresholds", dict, w, source)),
                   definitions=list(d.get("definitions") or []), target_field=target,
                   verify=bool(d.get("verify", False)), measures=list(d.get("measures") or ["ngram"]),
                   outcome_definition=str(d.get("outcome_definition", "default")))


@dataclass(frozen=True)
class CoverageStats:
    """Token coverage of one field and view over the examples that have the field."""

    examples: int
    mean: float
    histogram: list[int]  # 20 equal-width bins over [0, 1]

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str, source: str) -> CoverageStats:
        return cls(examples=int(_need(d, "examples", int, where, source)),
                   mean=float(_need(d, "mean", _NUMBER, where, source)),
                   histogram=[int(x) for x in _need(d, "histogram", list, where, source)])


@dataclass(frozen=True)
class LongestHistogram:
    edges: list[int]
    counts: list[int]


@dataclass(frozen=True)
class GroupStats:
    examples: int
    assessable: int
    verdicts: dict[str, int]
    contaminated: dict[str, int]
    mean_coverage: float
    outcomes: dict[str, int] = field(default_factory=dict)  # empty in summaries older than outcomes

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str, source: str) -> GroupStats:
        return cls(examples=int(_need(d, "examples", int, where, source)),
                   assessable=int(d.get("assessable", d.get("examples", 0))),
                   verdicts={k: int(v) for k, v in (d.get("verdicts") or {}).items()},
                   contaminated={k: int(v) for k, v in (d.get("contaminated") or {}).items()},
                   mean_coverage=float(d.get("mean_coverage", 0.0)),
                   outcomes={k: int(v) for k, v in (d.get("outcomes") or {}).items()})


@dataclass(frozen=True)
class MeasureInfo:
    """One measure's entry under ``measures``: its label, or why it was unavailable, and its aggregates."""

    available: bool
    title: str = ""
    cost: str = ""
    estimate: bool = False
    reason: str | None = None  # why it is unavailable
    aggregates: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        if not self.available:
            return {"available": False, "reason": self.reason}
        return {"title": self.title, "cost": self.cost, "estimate": self.estimate, "available": True,
                **self.aggregates}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MeasureInfo:
        base = {"available", "title", "cost", "estimate", "reason"}
        return cls(available=bool(d.get("available", True)), title=str(d.get("title", "")),
                   cost=str(d.get("cost", "")), estimate=bool(d.get("estimate", False)), reason=d.get("reason"),
                   aggregates={k: v for k, v in d.items() if k not in base})


@dataclass(frozen=True)
class ProvenanceStats:
    """How many flagged examples' corpus documents were looked up, and why some could not be read back."""

    limit: int = 0
    looked_up: int = 0
    unavailable: dict[str, int] = field(default_factory=dict)  # reason (e.g. a moved shard) → examples

    @property
    def unavailable_count(self) -> int:
        return sum(self.unavailable.values())


@dataclass(frozen=True)
class ScanSummary:
    """``summary.json``: a scan's counts, configuration and provenance (docs/scan-output.md)."""

    tool: dict[str, str]
    created: str
    dataset: DatasetInfo
    index: IndexInfo
    config: ScanSettings
    examples: int
    assessable: int
    unassessable: int
    skipped: int
    verdicts: dict[str, int]
    contaminated: dict[str, int]  # definition → examples flagged (computed definitions only)
    unavailable_definitions: dict[str, str]  # definition → why the index cannot support it
    pattern_available: bool
    coverage: dict[str, CoverageStats]  # "<field>.<view>" → stats
    longest_match_histogram: LongestHistogram
    measures: dict[str, MeasureInfo]
    groups: dict[str, GroupStats]
    lookups: int
    seconds: float
    provenance: ProvenanceStats = field(default_factory=ProvenanceStats)
    # outcome → examples (probe.outcomes); empty in summaries older than outcomes
    outcomes: dict[str, int] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    @property
    def target_field(self) -> str:
        return self.config.target_field

    @property
    def nmin(self) -> int:
        return min(self.index.ns or [0])

    def contaminated_share(self, definition: str) -> float:
        return self.contaminated.get(definition, 0) / self.assessable if self.assessable else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["measures"] = {k: m.to_dict() for k, m in self.measures.items()}
        order = ("schema_version", "tool", "created", "dataset", "index", "config", "examples", "assessable",
                 "unassessable", "skipped", "verdicts", "outcomes", "contaminated", "unavailable_definitions",
                 "pattern_available", "coverage", "longest_match_histogram", "measures", "groups", "provenance",
                 "lookups", "seconds")
        return {k: out[k] for k in order}

    @classmethod
    def from_dict(cls, data: Any, source: str = "summary.json") -> ScanSummary:
        """Validate and load a summary; InputError naming ``source`` and the key otherwise."""
        if not isinstance(data, dict):
            raise InputError(source, "expected a JSON object")
        version = data.get("schema_version")
        if version != SCHEMA_VERSION or isinstance(version, bool):
            raise InputError(source, f"unsupported schema_version {version!r}; this probe reads "
                                     f"schema_version {SCHEMA_VERSION} (re-run `probe scan` with this probe)")
        for key in ("dataset", "index", "config", "examples", "assessable", "unassessable", "skipped",
                    "verdicts", "contaminated", "coverage", "longest_match_histogram", "groups"):
            if key not in data:
                raise InputError(source, f"missing key {key}; not a probe scan summary")
        hist = _need(data, "longest_match_histogram", dict, "", source)
        coverage = _need(data, "coverage", dict, "", source)
        groups = _need(data, "groups", dict, "", source)
        return cls(
            tool=dict(data.get("tool") or {}), created=str(data.get("created", "")),
            dataset=DatasetInfo.from_dict(_need(data, "dataset", dict, "", source), source),
            index=IndexInfo.from_dict(_need(data, "index", dict, "", source), source),
            config=ScanSettings.from_dict(_need(data, "config", dict, "", source), source),
            examples=int(_need(data, "examples", int, "", source)),
            assessable=int(_need(data, "assessable", int, "", source)),
            unassessable=int(_need(data, "unassessable", int, "", source)),
            skipped=int(_need(data, "skipped", int, "", source)),
            verdicts={k: int(v) for k, v in _need(data, "verdicts", dict, "", source).items()},
            outcomes={k: int(v) for k, v in (data.get("outcomes") or {}).items()},
            contaminated={k: int(v) for k, v in _need(data, "contaminated", dict, "", source).items()},
            unavailable_definitions=dict(data.get("unavailable_definitions") or {}),
            pattern_available=bool(data.get("pattern_available", False)),
            coverage={k: CoverageStats.from_dict(v, f"coverage.{k}.", source) for k, v in coverage.items()},
            longest_match_histogram=LongestHistogram([int(x) for x in _need(hist, "edges", list, "", source)],
                                                     [int(x) for x in _need(hist, "counts", list, "", source)]),
            measures={k: MeasureInfo.from_dict(v) for k, v in (data.get("measures") or {}).items()},
            groups={k: GroupStats.from_dict(v, f"groups.{k}.", source) for k, v in groups.items()},
            lookups=int(data.get("lookups", 0)), seconds=float(data.get("seconds", 0.0)),
            provenance=ProvenanceStats(**(data.get("provenance") or {})),
        )
