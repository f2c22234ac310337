"""Scan a dataset against an index: per-example, per-field coverage and contamination.

Flow per batch of examples: texts of each field (instruction, input, response, and
``whole`` = all three joined) → the index's own tokenizer and views → every selected
*measure* (:mod:`probe.measures`; the exact n-gram measure first) computes its
per-example columns → the contamination definitions (:mod:`probe.definitions`) and
the verdict read the n-gram evidence → provenance for flagged examples → rows
appended to ``examples.parquet``. A summary with counts per verdict, per definition
and per group, and each measure's aggregates, is accumulated on the way and written
as ``summary.json``. Memory is bounded by the batch.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from probe import interrupt
from probe._alloc import tune_allocator
from probe.definitions import Evidence, Judgement, definition_names, judge, llama2_n
from probe.durable import publish_file, remove_stale_temps, temp_path, write_json_atomic
from probe.errors import ConfigError, NothingAssessableError
from probe.index.reader import IndexReader, open_index
from probe.match_provenance import ProvenanceOutcome, match_provenance
from probe.measures import Measure, MeasureAggregate, MeasureBatch, ScanBatch, ScanContext, create_measures
from probe.measures.ngram import SCAN_FIELDS, NgramEvidence
from probe.outcomes import KIND_CHOICES, OUTCOMES, cross_document_only, outcomes, resolve_dataset_kind
from probe.scan_output import (
    VERDICTS,
    CoverageStats,
    DatasetInfo,
    GroupStats,
    IndexInfo,
    LongestHistogram,
    MeasureInfo,
    ProvenanceStats,
    ScanSettings,
    ScanSummary,
)
from probe.scoring import Thresholds, llama2_class, verdicts
from probe.sources.datasets import (
    FIELDS,
    DatasetOptions,
    DatasetReadStats,
    dataset_name,
    detect_schema,
    read_examples,
)
from probe.text.tokenizers import Tokenizer

NGRAM_TOP_LEVEL = ("coverage", "longest_match_histogram", "lookups")  # summary keys older than measures
LOOKAHEAD_BATCHES = 4
FIRST_PASS_KEEP_BYTES = 256 << 20  # prepared batches kept from a first pass instead of reading the dataset again  # batches tokenized ahead while the index is still loading


@dataclass(frozen=True)
class ScanConfig:
    """What a scan computes; every field is recorded in summary.json."""

    thresholds: Thresholds = field(default_factory=Thresholds)
    definitions: tuple[str, ...] | None = None  # None: every registered definition
    target_field: str = "whole"  # field the contamination definitions and verdicts judge
    provenance_limit: int = 200  # flagged examples whose corpus source is read back
    verify: bool = False  # re-check hash matches against the corpus text
    measures: tuple[str, ...] | None = None  # None: every default measure (the n-gram measure always runs)
    # per-measure options, e.g. {"minhash": {"threshold": 0.5}}; each measure reads and validates its own
    measure_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    dataset: DatasetOptions = field(default_factory=DatasetOptions)
    # the definition whose flag makes an example's outcome "leaked" (probe.outcomes); judged even when
    # not among ``definitions``
    outcome_definition: str = "default"
    # "train" (fine-tuning data), "eval" (a benchmark: novel items are clean, not to be taught), or
    # "auto": eval when a word of the dataset's path names a split or a benchmark (test, dev, val, ...)
    dataset_kind: str = "auto"

    def __post_init__(self) -> None:
        known = definition_names()
        if self.definitions is None:
            object.__setattr__(self, "definitions", known)
        bad = [d for d in self.definitions if d not in known]
        if bad:
            raise ConfigError(f"unknown definition(s) {bad}; choose from {', '.join(known)}")
        if self.outcome_definition not in known:
            raise ConfigError(f"unknown outcome definition {self.outcome_definition!r}; choose from "
                              f"{', '.join(known)}")
        if self.dataset_kind not in KIND_CHOICES:
            raise ConfigError(f"dataset kind must be one of {', '.join(KIND_CHOICES)}, not {self.dataset_kind!r}")
        if self.target_field not in SCAN_FIELDS:
            raise ConfigError(f"target field must be one of {', '.join(SCAN_FIELDS)}, not {self.target_field!r}")
        if self.dataset.batch_size < 1:
            raise ConfigError("batch size must be >= 1")
        if self.provenance_limit < 0:
            raise ConfigError("provenance limit must be >= 0")


@dataclass
class ScanResult:
    """What a scan produced: the summary, where it was written (None: nowhere) and the examples.

    ``examples`` is the per-example table of docs/scan-output.md as a pyarrow Table
    (``.to_pandas()`` where pandas is installed): held in memory when nothing was
    written, read back from ``examples.parquet`` otherwise.
    """

    summary: ScanSummary
    out_dir: Path | None
    _examples: pa.Table | None = field(default=None, repr=False)

    @property
    def examples(self) -> pa.Table:
        if self._examples is None:
            if self.out_dir is None:  # cannot happen: an in-memory scan keeps its table
                raise ConfigError("this scan kept no per-example table")
            self._examples = pq.read_table(self.out_dir / "examples.parquet")
        return self._examples


def scan_dataset(dataset: str | Path | Any, index_dir: str | Path | None = None,
                 out_dir: str | Path | None = None, config: ScanConfig | None = None, progress: Any = None,
                 reader: IndexReader | None = None) -> ScanResult:
    """Scan ``dataset`` against the pinned latest snapshot of ``index_dir``.

    ``dataset`` is a file path, or in-memory records (a list of dicts, a pyarrow Table,
    a pandas DataFrame). With ``out_dir`` the scan writes ``examples.parquet`` and
    ``summary.json`` there atomically; without it nothing is written and the examples
    stay in ``ScanResult.examples``. Pass the ``reader`` of an earlier scan
    (``open_index(index_dir)``) to scan several datasets against one pinned snapshot: the
    index tables it loaded stay loaded, so each further dataset costs only its own
    lookups. ``progress`` is any object with ``advance(examples, lookups)``.
    """
    config = config or ScanConfig()
    started = time.perf_counter()
    tune_allocator()
    if reader is None and index_dir is None:
        raise ConfigError("scan_dataset needs an index directory or an open reader")
    own_reader = reader is None
    if reader is None:
        reader = open_index(index_dir)
    try:
        return _Scan(dataset, reader, config, progress).run(Path(out_dir) if out_dir is not None else None,
                                                            started)
    finally:
        if own_reader:
            reader.close()


@dataclass
class _BatchOutcome:
    """One scanned batch: its examples.parquet rows and what the summary counts of it."""

    table: pa.Table
    verdict: np.ndarray
    outcome: np.ndarray
    flags: dict[str, np.ndarray]
    target_coverage: np.ndarray  # whole-example surface coverage at the smallest n (group means)
    unavailable: dict[str, str]
    lookups: int
    provenance: ProvenanceOutcome
    outputs: dict[str, MeasureBatch]
    batch: ScanBatch


class _SummaryAccumulator:
    """Verdict and contamination counts, overall and per group, accumulated batch by batch."""

    def __init__(self) -> None:
        self.examples = 0
        self.verdicts: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()
        self.contaminated: Counter[str] = Counter()
        self.groups: dict[str, dict[str, Any]] = {}

    def add(self, groups: list[str | None], outcome: _BatchOutcome) -> None:
        verdict = outcome.verdict
        self.examples += verdict.shape[0]
        self.verdicts.update(verdict.tolist())
        self.outcomes.update(outcome.outcome.tolist())
        for d, arr in outcome.flags.items():
            self.contaminated[d] += int(arr.sum())
        present = np.array([g is not None for g in groups], bool)
        if not present.any():
            return
        # per group in bulk (np.bincount over group codes), not per example in Python
        names, codes = np.unique(np.array(groups, dtype=object)[present].astype(str), return_inverse=True)
        k = names.shape[0]
        sizes = np.bincount(codes, minlength=k)
        coverage = np.bincount(codes, weights=outcome.target_coverage[present], minlength=k)
        flags = {d: np.bincount(codes, weights=arr[present], minlength=k) for d, arr in outcome.flags.items()}
        labels = {key: _counts_by_group(codes, k, values[present])
                  for key, values in (("verdicts", verdict), ("outcomes", outcome.outcome))}
        for j, g in enumerate(names.tolist()):
            rec = self.groups.setdefault(g, {"examples": 0, "verdicts": Counter(), "outcomes": Counter(),
                                             "contaminated": Counter(), "coverage_sum": 0.0})
            rec["examples"] += int(sizes[j])
            for key, (values, table) in labels.items():
                rec[key].update({v: int(c) for v, c in zip(values, table[j].tolist(), strict=True) if c})
            for d, counts in flags.items():
                rec["contaminated"][d] += int(counts[j])
            rec["coverage_sum"] += float(coverage[j])


def _counts_by_group(codes: np.ndarray, groups: int, labels: np.ndarray) -> tuple[list[str], np.ndarray]:
    """(label values, groups × values table of counts) of one label column."""
    values, label_codes = np.unique(labels.astype(str), return_inverse=True)
    table = np.bincount(codes * values.shape[0] + label_codes, minlength=groups * values.shape[0])
    return values.tolist(), table.reshape(groups, values.shape[0])


class _ExamplesSink:
    """Where examples.parquet rows go: a temp file published at the end, or memory."""

    def __init__(self, out_dir: Path | None) -> None:
        self.out_dir = out_dir
        self.created_dir = out_dir is not None and not out_dir.exists()
        self.tables: list[pa.Table] = []
        self.writer: pq.ParquetWriter | None = None
        self.tmp: Path | None = None
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            remove_stale_temps(out_dir)  # temp files of an earlier, killed scan
            self.tmp = temp_path(out_dir / "examples.parquet")

    def write(self, table: pa.Table) -> None:
        if self.tmp is None:
            self.tables.append(table)
            return
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.tmp, table.schema, compression="zstd")
        self.writer.write_table(table)

    def discard(self, remove_dir: bool) -> None:
        """Remove everything this scan wrote (with ``remove_dir``, its directory too when the scan created it)."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if self.tmp is not None and self.tmp.exists():
            self.tmp.unlink()
        if remove_dir and self.out_dir is not None and self.created_dir and self.out_dir.exists() \
                and not any(self.out_dir.iterdir()):
            self.out_dir.rmdir()

    def publish(self, summary: dict[str, Any]) -> pa.Table | None:
        """examples.parquet, then summary.json (readers that see a summary find its examples)."""
        if self.tmp is None:
            return pa.concat_tables(self.tables) if self.tables else None
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        out_dir = self.tmp.parent
        publish_file(self.tmp, out_dir / "examples.parquet")
        write_json_atomic(out_dir / "summary.json", summary)
        return None


class _Scan:
    """One dataset against one pinned index, in small typed steps."""

    def __init__(self, dataset: Any, reader: IndexReader, config: ScanConfig, progress: Any) -> None:
        self.dataset = dataset
        self.config = config
        self.progress = progress
        self.ctx = ScanContext(reader, Tokenizer(reader.spec), config)
        self.measures, self.unavailable_measures = _available_measures(create_measures(config.measures),
                                                                       self.ctx)
        self.stats = DatasetReadStats()
        self.acc = _SummaryAccumulator()
        self.aggregates: dict[str, MeasureAggregate] = {m.name: m.aggregate(self.ctx) for m in self.measures}
        self.unavailable: dict[str, str] = {}
        self.lookups = 0
        self.provenance_left = config.provenance_limit
        self.provenance_looked_up = 0
        self.provenance_unavailable: Counter[str] = Counter()  # reason → examples whose document was unreadable

    def run(self, out_dir: Path | None, started: float) -> ScanResult:
        reader = self.ctx.reader
        schema = detect_schema(self.dataset, self.config.dataset)
        # the index tables load on background threads while the dataset is read and tokenized
        reader.prefetch([t for m in self.measures for t in m.needs(self.ctx).tables])
        kept = self.first_pass([m for m in self.measures if m.first_pass])
        sink = _ExamplesSink(out_dir)
        try:
            batches = kept if kept is not None else _prepared_batches(
                read_examples(self.dataset, self.config.dataset, self.stats), reader, self.ctx.tokenizer,
                self.ctx.views)
            for batch in batches:
                interrupt.check()  # a stop swallowed by a finalizer during the last batch
                outcome = self.scan_batch(batch)
                self.fold(outcome)
                sink.write(outcome.table)
                if self.progress is not None:
                    self.progress.advance(batch.size, outcome.lookups)
            summary = _build_summary(self, schema, time.perf_counter() - started)
            if self.acc.examples == 0 or summary.assessable == 0:
                raise NothingAssessableError(
                    f"{dataset_name(self.dataset)}: nothing assessable ({_count(self.acc.examples, 'example')} "
                    f"read, {self.stats.skipped} skipped; every example is shorter than n={min(self.ctx.ns)} "
                    "tokens or empty)")
            table = sink.publish(summary.to_dict())
        except NothingAssessableError:
            sink.discard(remove_dir=True)  # leave no empty report directory behind
            raise
        except BaseException:
            sink.discard(remove_dir=False)
            raise
        return ScanResult(summary, out_dir, table)

    def first_pass(self, observers: list[Measure]) -> list[ScanBatch] | None:
        """Let ``observers`` see the whole dataset before scoring (e.g. n-grams shared by many examples).

        The prepared batches are kept for the scoring pass while they fit in FIRST_PASS_KEEP_BYTES,
        so a dataset of benchmark size is read and tokenized once; a larger one is read again
        (memory stays bounded). Returns the kept batches, or None when the dataset must be re-read.
        """
        if not observers:
            return None
        stats = DatasetReadStats()
        kept: list[ScanBatch] | None = []
        size = 0
        for batch in _prepared_batches(read_examples(self.dataset, self.config.dataset, stats),
                                       self.ctx.reader, self.ctx.tokenizer, self.ctx.views):
            interrupt.check()
            for m in observers:
                m.observe(batch, self.ctx)
            if kept is not None:
                size += _batch_bytes(batch)
                if size <= FIRST_PASS_KEEP_BYTES:
                    kept.append(batch)
                else:
                    kept = None  # too large to hold: the scoring pass reads the dataset again
        if kept is not None:
            self.stats = stats  # the scoring pass reads nothing: the first pass's accounting is the scan's
        return kept

    def scan_batch(self, batch: ScanBatch) -> _BatchOutcome:
        outputs: dict[str, MeasureBatch] = {}
        for measure in self.measures:
            outputs[measure.name] = measure.compute(batch, self.ctx, outputs)
        evidence: NgramEvidence = outputs["ngram"].payload
        config = self.config
        target = config.target_field
        surface = evidence.target(target, "surface") or {}  # the n-gram measure scores every field
        pattern = evidence.target(target, "pattern")
        s_min = surface[evidence.nmin]
        assessable = s_min.ngrams > 0
        coverage = s_min.token_coverage.copy()
        if pattern is not None:
            coverage = np.maximum(coverage, pattern[evidence.nmin].token_coverage)
        verdict = verdicts(coverage, assessable, config.thresholds)
        judgement = judge(config.definitions, Evidence(surface, pattern, evidence.windows50, config.thresholds),
                          self.ctx.reader.spec, assessable)
        outcome, cross_doc = _outcomes(evidence, outputs["ngram"].columns, verdict, assessable, judgement,
                                       self.ctx, config)
        columns = _core_columns(batch, verdict, coverage, assessable, judgement, config)
        columns["outcome"] = pa.array(outcome.tolist(), pa.string())
        columns["cross_document_only"] = pa.array(cross_doc)
        columns.update(_llama2_column(surface, config.thresholds, batch.size))
        for output in outputs.values():
            columns.update(output.columns)
        flagged = judgement.flags.get("default", np.zeros(batch.size, bool)) | (verdict == "seen")
        provenance = match_provenance(self.ctx, batch, evidence, flagged, self.provenance_left)
        columns.update(provenance.columns)
        return _BatchOutcome(pa.table(columns), verdict, outcome, judgement.flags,
                             evidence.scores[("whole", "surface", evidence.nmin)].token_coverage,
                             judgement.unavailable, evidence.lookups, provenance, outputs, batch)

    def fold(self, outcome: _BatchOutcome) -> None:
        self.provenance_left -= outcome.provenance.used
        self.provenance_looked_up += outcome.provenance.used
        self.provenance_unavailable.update(outcome.provenance.unavailable)
        self.lookups += outcome.lookups
        self.unavailable.update(outcome.unavailable)
        self.acc.add([ex.group for ex in outcome.batch.examples], outcome)
        for name, output in outcome.outputs.items():
            self.aggregates[name].add(output, outcome.batch)


def _available_measures(measures: list[Measure], ctx: ScanContext) -> tuple[list[Measure], dict[str, str]]:
    """Split the selected measures into those this index supports and the others, with reasons."""
    keep: list[Measure] = []
    unavailable: dict[str, str] = {}
    for m in measures:
        why = m.unavailable(ctx)
        if why is None:
            keep.append(m)
        elif m.required:
            raise ConfigError(f"measure {m.name!r} cannot run on this index: {why}")
        else:
            unavailable[m.name] = why
    return keep, unavailable


def _outcomes(evidence: NgramEvidence, ngram_columns: Mapping[str, pa.Array], verdict: np.ndarray,
              assessable: np.ndarray, judgement: Judgement, ctx: ScanContext,
              config: ScanConfig) -> tuple[np.ndarray, np.ndarray]:
    """Each example's outcome (probe.outcomes) and whether its flag rests only on a cross-document pair."""
    name, th, spec = config.outcome_definition, config.thresholds, ctx.reader.spec
    target = config.target_field
    if name in judgement.flags:
        flagged = judgement.flags[name]
    else:  # not among the requested definitions: judged for the outcome alone
        flagged = judge([name], Evidence(evidence.target(target, "surface") or {}, evidence.target(target, "pattern"),
                                         evidence.windows50, th), spec, assessable).flags.get(name)
        flagged = np.zeros(verdict.shape[0], bool) if flagged is None else flagged
    # one field alone is contaminated: no pair needed (a single target field is always one field)
    single = np.full(verdict.shape[0], target != "whole")
    for f in (x for x in SCAN_FIELDS if x not in ("whole", target)):
        surface = evidence.target(f, "surface") or {}
        try:
            field_flags = judge([name], Evidence(surface, evidence.target(f, "pattern"), None, th), spec,
                                surface[evidence.nmin].ngrams > 0).flags.get(name)
        except ConfigError:  # a definition that reads more than per-field metrics: never downgraded
            field_flags = np.ones(verdict.shape[0], bool)
        if field_flags is not None:
            single |= field_flags
    matched = {f: evidence.scores[(f, "surface", evidence.nmin)].matched > 0 for f in ("instruction", "response")}
    cross = cross_document_only(flagged, matched["instruction"], matched["response"],
                                np.asarray(ngram_columns["joint_same_doc"], bool),
                                np.asarray(ngram_columns["joint_exact"], bool), single)
    rare = evidence.scores[(target, "surface", evidence.nmin)].token_coverage_rare
    pattern = evidence.scores.get((target, "pattern", evidence.nmin))
    if pattern is not None:
        rare = np.maximum(rare, pattern.token_coverage_rare)
    return outcomes(verdict, rare, flagged & ~cross), cross


def _core_columns(batch: ScanBatch, verdict: np.ndarray, coverage: np.ndarray, assessable: np.ndarray,
                  judgement: Judgement, config: ScanConfig) -> dict[str, pa.Array]:
    """id, row, group, verdict, coverage, assessable and one contaminated_<definition> per definition."""
    e = batch.size
    cols: dict[str, pa.Array] = {
        "id": pa.array([ex.id for ex in batch.examples], pa.string()),
        "row": pa.array([ex.row for ex in batch.examples], pa.int64()),
        "group": pa.array([ex.group for ex in batch.examples], pa.string()),
        "verdict": pa.array(verdict.tolist(), pa.string()),
        "coverage": pa.array(coverage),
        "assessable": pa.array(assessable),
    }
    for d in config.definitions:
        # a definition judges only examples with at least one n-gram of its own n (else: null, never "clean")
        cols[f"contaminated_{d}"] = (pa.array(judgement.flags[d], mask=judgement.masks[d])
                                     if d in judgement.flags else pa.nulls(e, pa.bool_()))
    return cols


def _llama2_column(surface: dict[int, Any], thresholds: Thresholds, e: int) -> dict[str, pa.Array]:
    """Llama-2's four-way class at its own n; null when the index has no n for it."""
    n = llama2_n(sorted(surface), None, thresholds)
    if n is None:
        return {"llama2_class": pa.nulls(e, pa.string())}
    s = surface[n]
    return {"llama2_class": pa.array(llama2_class(s.span_coverage, s.ngrams > 0, thresholds).tolist())}


def _prepare_batch(examples: list[Any], tokenizer: Tokenizer, views: list[str]) -> ScanBatch:
    field_texts = {f: [ex.fields.get(f, "") for ex in examples] for f in FIELDS}
    field_texts["whole"] = [ex.whole_text() for ex in examples]  # conversation order kept
    # tokenize every field of the batch as one document list per view
    all_texts = [t for f in SCAN_FIELDS for t in field_texts[f]]
    tokens = {view: tokenizer.tokenize(all_texts, view, with_offsets=(view == "surface")) for view in views}
    return ScanBatch(examples, field_texts, tokens)


def _prepared_batches(batches: Iterable[list[Any]], reader: IndexReader, tokenizer: Tokenizer,
                      views: list[str]) -> Iterator[ScanBatch]:
    """Yield prepared batches in order; while the index still loads, read and tokenize ahead.

    The index loads on background threads; rather than block on the first lookup, the
    scan keeps the core busy with the next batches' reading and tokenizing (at most
    LOOKAHEAD_BATCHES held, so memory stays bounded by a few batches).
    """
    ahead: deque[ScanBatch] = deque()
    source = iter(batches)
    done = False
    while True:
        while not done and (not ahead or (len(ahead) < LOOKAHEAD_BATCHES and reader.loading())):
            examples = next(source, None)
            if examples is None:
                done = True
            else:
                ahead.append(_prepare_batch(examples, tokenizer, views))
        if not ahead:
            return
        yield ahead.popleft()


def _batch_bytes(batch: ScanBatch) -> int:
    """Approximate memory of a prepared batch: its token arrays and its texts."""
    arrays = sum(a.nbytes for tb in batch.tokens.values()
                 for a in (tb.token_hashes, tb.doc_token_ends, tb.token_starts, tb.token_ends) if a is not None)
    return arrays + 2 * sum(len(t) for texts in batch.field_texts.values() for t in texts)


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def _build_summary(scan: _Scan, schema: Any, seconds: float) -> ScanSummary:
    acc, config, stats = scan.acc, scan.config, scan.stats
    reader = scan.ctx.reader
    unavailable = scan.unavailable
    definitions = [d for d in config.definitions if d not in unavailable]
    groups = {
        g: GroupStats(examples=rec["examples"],
                      assessable=rec["examples"] - rec["verdicts"].get("unassessable", 0),
                      verdicts={v: rec["verdicts"].get(v, 0) for v in VERDICTS},
                      outcomes={o: rec["outcomes"].get(o, 0) for o in OUTCOMES},
                      contaminated={d: rec["contaminated"].get(d, 0) for d in definitions},
                      mean_coverage=round(rec["coverage_sum"] / rec["examples"], 6) if rec["examples"] else 0.0)
        for g, rec in sorted(acc.groups.items())}
    ngram = scan.aggregates["ngram"].to_dict()
    measures = {m.name: MeasureInfo(True, m.title, m.cost, m.estimate(scan.ctx), None,
                                    # the n-gram measure's first aggregates stay at the top level
                                    {k: v for k, v in ngram.items() if k not in NGRAM_TOP_LEVEL}
                                    if m.name == "ngram" else scan.aggregates[m.name].to_dict())
                for m in scan.measures}
    measures.update({name: MeasureInfo(False, reason=why) for name, why in scan.unavailable_measures.items()})
    spec = reader.spec
    name = dataset_name(scan.dataset)
    kind, kind_guessed = resolve_dataset_kind(config.dataset_kind, name)
    return ScanSummary(
        tool={"name": "probe", "version": _version()},
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        dataset=DatasetInfo(path=name, schema=schema.name, mapping=schema.mapping,
                            id_field=schema.id_field, group_field=schema.group_field, records=stats.records,
                            skipped=stats.skipped, skipped_reasons=dict(stats.skipped_reasons),
                            skipped_examples=list(stats.skipped_examples), kind=kind, kind_guessed=kind_guessed),
        index=IndexInfo(path=str(reader.root), snapshot=reader.snapshot.number,
                        spec_fingerprint=spec.fingerprint(), spec=spec.to_dict(), approximate=spec.sample_mod > 1),
        config=ScanSettings(thresholds=config.thresholds.to_dict(), definitions=list(config.definitions),
                            target_field=config.target_field, verify=config.verify,
                            measures=[m.name for m in scan.measures],
                            outcome_definition=config.outcome_definition),
        examples=acc.examples,
        assessable=acc.examples - acc.verdicts.get("unassessable", 0),
        unassessable=acc.verdicts.get("unassessable", 0),
        skipped=stats.skipped,
        verdicts={v: acc.verdicts.get(v, 0) for v in VERDICTS},
        outcomes={o: acc.outcomes.get(o, 0) for o in OUTCOMES},
        contaminated={d: acc.contaminated.get(d, 0) for d in definitions},
        unavailable_definitions={d: why for d, why in unavailable.items() if d in config.definitions},
        pattern_available="pattern" in spec.views,
        coverage={k: CoverageStats(**v) for k, v in ngram["coverage"].items()},
        longest_match_histogram=LongestHistogram(**ngram["longest_match_histogram"]),
        measures=measures,
        groups=groups,
        lookups=ngram["lookups"],
        seconds=round(seconds, 3),
        provenance=ProvenanceStats(config.provenance_limit, scan.provenance_looked_up,
                                   dict(scan.provenance_unavailable)),
    )


def _version() -> str:
    import probe

    return probe.__version__
