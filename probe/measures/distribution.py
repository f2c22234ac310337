"""Distributional token similarity: hashed unigram and bigram distributions, corpus against dataset.

Corpus side (a side table, counted in the same build pass as the n-gram segments): per
shard part, the counts of the index's surface tokens in ``buckets`` hash buckets (10,000 as in
the hashed n-gram baseline of Xie et al. 2023, "Data Selection for Language Models via
Importance Resampling", that Yauney et al. 2023 compare against), and of in-document token
bigrams in another ``buckets`` buckets. One small ``counts.parquet`` per part.

Scan side:

- per example and field, ``distribution_<field>_mean_log_freq``: the mean natural log of the
  corpus frequency of the field's tokens (add-``alpha`` smoothed, so an unseen bucket is finite):
  low means rare words for this corpus;
- per dataset (the target field), the KL divergence KL(dataset ‖ corpus) of the unigram and the
  bigram distributions (the plug-in value), its bootstrap bias and a bias-correcting (basic)
  bootstrap interval over examples. The bootstrap is the Poisson bootstrap (each example weighted
  Poisson(1) in each replicate), which streams: memory is replicates × buckets, whatever the
  dataset size.

Bucketed counts are estimates by construction (hash collisions merge tokens), so the measure
says so.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from probe import kernels
from probe.config import TextSpec
from probe.errors import ConfigError
from probe.index.side_tables import (
    SideDocs,
    SideTableBuilder,
    SideTableKind,
    SideTableMeasure,
    open_side_table,
    register_side_table,
    require_extra,
)
from probe.measures import MeasureAggregate, MeasureBatch, ScanBatch, ScanContext, register_measure
from probe.measures.ngram import SCAN_FIELDS

NAME = "distribution"
BUILD_DEFAULTS: dict[str, Any] = {"buckets": 10_000}
SCAN_DEFAULTS: dict[str, Any] = {
    "alpha": 1.0,  # add-alpha smoothing of the corpus counts
    "replicates": 200,  # bootstrap replicates of the KL divergence
    "confidence": 0.95,
    "seed": 0,  # bootstrap seed (the interval is reproducible)
}


def configure(options: Mapping[str, Any], spec: TextSpec) -> dict[str, Any]:
    unknown = sorted(set(options) - set(BUILD_DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown distribution option(s) {unknown}; choose from {', '.join(BUILD_DEFAULTS)}")
    config = {**BUILD_DEFAULTS, **options}
    if not isinstance(config["buckets"], int) or not 2 <= config["buckets"] <= 1 << 24:
        raise ConfigError(f"distribution buckets must be an integer in [2, 2**24], got {config['buckets']!r}")
    return config


def unigram_buckets(token_hashes: np.ndarray, buckets: int) -> np.ndarray:
    return (token_hashes % np.uint64(buckets)).astype(np.int64)


def bigram_buckets(token_hashes: np.ndarray, doc_token_ends: np.ndarray, buckets: int) -> tuple[np.ndarray,
                                                                                                   np.ndarray]:
    """Buckets of the in-document bigrams (hashed like the index's 2-grams) and their per-document ends."""
    h, ends, _pos = kernels.ngram_hashes(token_hashes, doc_token_ends, 2, 1)
    return (h % np.uint64(buckets)).astype(np.int64), np.asarray(ends, np.int64)


class DistributionBuilder(SideTableBuilder):
    """Unigram and bigram bucket counts of one shard part."""

    def __init__(self, spec: TextSpec, config: Mapping[str, Any]) -> None:
        super().__init__(spec, config)
        self.unigram = np.zeros(config["buckets"], np.int64)
        self.bigram = np.zeros(config["buckets"], np.int64)

    def add(self, docs: SideDocs) -> None:
        b = self.config["buckets"]
        tb = docs.tokens
        self.unigram += np.bincount(unigram_buckets(tb.token_hashes, b), minlength=b)
        self.bigram += np.bincount(bigram_buckets(tb.token_hashes, tb.doc_token_ends, b)[0], minlength=b)

    def tables(self) -> dict[str, pa.Table]:
        return {"counts": pa.table({"bucket": pa.array(np.arange(self.unigram.shape[0], dtype=np.uint32)),
                                    "unigram": pa.array(self.unigram.astype(np.uint64)),
                                    "bigram": pa.array(self.bigram.astype(np.uint64))})}


register_side_table(SideTableKind(NAME, ("counts",), configure, DistributionBuilder,
                                  "hashed unigram and bigram counts of the corpus"))


@dataclass
class _CorpusDistribution:
    unigram: np.ndarray  # int64 counts per bucket
    bigram: np.ndarray
    load_seconds: float

    def log_freq(self, counts: np.ndarray, alpha: float) -> np.ndarray:
        """Natural log of the add-alpha smoothed relative frequency of every bucket."""
        return np.log((counts + alpha) / (counts.sum() + alpha * counts.shape[0]))


@dataclass
class DistributionEvidence:
    """One batch: per field the mean log frequency; the target field's bucket counts per example."""

    mean_log_freq: dict[str, np.ndarray]
    unigram: tuple[np.ndarray, np.ndarray]  # (example, bucket) per token of the target field
    bigram: tuple[np.ndarray, np.ndarray]
    seconds: float


def _per_doc(values: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(document of every value, count per document) for values grouped by ``ends``."""
    counts = np.diff(ends, prepend=0)
    return np.repeat(np.arange(ends.shape[0]), counts), counts


class DistributionMeasure(SideTableMeasure):
    name = NAME
    title = "token distribution (hashed unigrams and bigrams)"
    cost = "one bucket lookup per token; a Poisson bootstrap of replicates × buckets per dataset"
    default = False  # needs its side table: opt in with --measures distribution

    def __init__(self) -> None:
        self._corpus: _CorpusDistribution | None = None

    scan_defaults = SCAN_DEFAULTS

    def scan_options(self, ctx: ScanContext) -> dict[str, Any]:
        opts = super().scan_options(ctx)
        if not (isinstance(opts["replicates"], int) and opts["replicates"] >= 2):
            raise ConfigError("distribution replicates must be an integer >= 2")
        if not 0 < float(opts["confidence"]) < 1 or float(opts["alpha"]) <= 0:
            raise ConfigError("distribution confidence must be in (0, 1) and alpha > 0")
        return opts

    def estimate(self, ctx: ScanContext) -> bool:
        return True  # hashed buckets merge tokens

    def corpus(self, ctx: ScanContext) -> _CorpusDistribution:
        if self._corpus is None:
            t0 = time.perf_counter()
            table = open_side_table(ctx.reader, NAME)
            b = table.config["buckets"]
            uni, bi = np.zeros(b, np.int64), np.zeros(b, np.int64)
            for _part, t in table.read("counts"):
                if t.num_rows != b:
                    raise ConfigError(f"distribution side table part of {_part.uri} has {t.num_rows} buckets, "
                                      f"the config says {b}")
                uni += np.asarray(t.column("unigram").combine_chunks(), np.int64)
                bi += np.asarray(t.column("bigram").combine_chunks(), np.int64)
            self._corpus = _CorpusDistribution(uni, bi, time.perf_counter() - t0)
        return self._corpus

    def compute(self, batch: ScanBatch, ctx: ScanContext, earlier: dict[str, MeasureBatch]) -> MeasureBatch:
        t0 = time.perf_counter()
        opts = self.scan_options(ctx)
        corpus = self.corpus(ctx)
        b = corpus.unigram.shape[0]
        log_uni = corpus.log_freq(corpus.unigram, float(opts["alpha"]))
        tb = batch.tokens["surface"]
        e = batch.size
        buckets = unigram_buckets(tb.token_hashes, b)
        doc_of, counts = _per_doc(buckets, np.asarray(tb.doc_token_ends, np.int64))
        sums = np.bincount(doc_of, weights=log_uni[buckets], minlength=counts.shape[0])
        mean = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
        columns: dict[str, pa.Array] = {}
        means: dict[str, np.ndarray] = {}
        for i, f in enumerate(SCAN_FIELDS):
            m = mean[i * e:(i + 1) * e]
            means[f] = m
            columns[f"distribution_{f}_mean_log_freq"] = pa.array(m, mask=np.isnan(m))
        target = SCAN_FIELDS.index(ctx.config.target_field)
        lo, hi = target * e, (target + 1) * e
        sel = (doc_of >= lo) & (doc_of < hi)
        bi_buckets, bi_ends = bigram_buckets(tb.token_hashes, tb.doc_token_ends, b)
        bi_doc, _ = _per_doc(bi_buckets, bi_ends)
        bsel = (bi_doc >= lo) & (bi_doc < hi)
        evidence = DistributionEvidence(means, (doc_of[sel] - lo, buckets[sel]), (bi_doc[bsel] - lo, bi_buckets[bsel]),
                                        time.perf_counter() - t0)
        return MeasureBatch(columns, evidence)

    def aggregate(self, ctx: ScanContext) -> DistributionAggregate:
        return DistributionAggregate(self, ctx)


class _Bootstrap:
    """Total and Poisson-bootstrap replicate counts per bucket of one distribution."""

    def __init__(self, buckets: int, replicates: int) -> None:
        self.total = np.zeros(buckets, np.float64)
        self.replicates = np.zeros((replicates, buckets), np.float64)

    def add(self, example: np.ndarray, bucket: np.ndarray, weights: np.ndarray) -> None:
        sparse = require_extra("scipy.sparse", NAME)
        b = self.total.shape[0]
        self.total += np.bincount(bucket, minlength=b)
        if not bucket.shape[0]:
            return
        per_example = sparse.csr_matrix((np.ones(bucket.shape[0]), (example, bucket)),
                                        shape=(weights.shape[1], b))
        self.replicates += np.asarray((sparse.csr_matrix(weights) @ per_example).todense())

    def kl(self, corpus: np.ndarray, alpha: float, confidence: float) -> dict[str, Any]:
        entropy = require_extra("scipy.stats", NAME).entropy
        q = corpus + alpha  # smoothed corpus: never zero, so the divergence is finite
        if not self.total.sum():
            return {"value": None, "interval": None}
        value = float(entropy(self.total, q))
        reps = np.array([entropy(r, q) for r in self.replicates if r.sum() > 0])
        if not reps.shape[0]:
            return {"value": round(value, 6), "bias": None, "interval": None, "tokens": int(self.total.sum())}
        tail = (1 - confidence) / 2
        # The plug-in KL of a sample is biased upward (a sparse sample looks peaked), and a resample
        # more so: the percentile interval then lies above the estimate (measured: it excluded it).
        # The basic bootstrap interval [2v - q_hi, 2v - q_lo] corrects for that shift.
        lo, hi = 2 * value - float(np.quantile(reps, 1 - tail)), 2 * value - float(np.quantile(reps, tail))
        return {"value": round(value, 6), "bias": round(float(reps.mean()) - value, 6),
                "interval": [round(max(0.0, lo), 6), round(max(0.0, hi), 6)], "tokens": int(self.total.sum())}


class DistributionAggregate(MeasureAggregate):
    """KL(dataset ‖ corpus) with a bootstrap interval, and the rarity distribution per field."""

    def __init__(self, measure: DistributionMeasure, ctx: ScanContext) -> None:
        self.measure = measure
        self.ctx = ctx
        self.opts = measure.scan_options(ctx)
        self.rng = np.random.default_rng(int(self.opts["seed"]))
        self.unigram: _Bootstrap | None = None
        self.bigram: _Bootstrap | None = None
        self.means: dict[str, list[np.ndarray]] = {f: [] for f in SCAN_FIELDS}
        self.examples = 0
        self.seconds = 0.0

    def add(self, output: MeasureBatch, batch: ScanBatch) -> None:
        ev: DistributionEvidence = output.payload
        t0 = time.perf_counter()
        corpus = self.measure.corpus(self.ctx)
        b, r = corpus.unigram.shape[0], int(self.opts["replicates"])
        if self.unigram is None:
            self.unigram, self.bigram = _Bootstrap(b, r), _Bootstrap(b, r)
        weights = self.rng.poisson(1.0, size=(r, batch.size)).astype(np.float64)
        self.unigram.add(*ev.unigram, weights)
        self.bigram.add(*ev.bigram, weights)
        for f in SCAN_FIELDS:
            self.means[f].append(ev.mean_log_freq[f].astype(np.float32))
        self.examples += batch.size
        self.seconds += ev.seconds + time.perf_counter() - t0

    def to_dict(self) -> dict[str, Any]:
        corpus = self.measure._corpus
        alpha, confidence = float(self.opts["alpha"]), float(self.opts["confidence"])
        fields = {}
        for f in SCAN_FIELDS:
            m = np.concatenate(self.means[f]) if self.means[f] else np.empty(0, np.float32)
            m = m[~np.isnan(m)]
            fields[f] = {"assessable": int(m.shape[0]),
                         "mean_log_freq": {q: round(float(np.quantile(m, float(q))), 6)
                                           for q in ("0.1", "0.5", "0.9")} if m.shape[0] else None}
        kl = {}
        if corpus is not None and self.unigram is not None and self.bigram is not None:
            kl = {"unigram": self.unigram.kl(corpus.unigram, alpha, confidence),
                  "bigram": self.bigram.kl(corpus.bigram, alpha, confidence)}
        return {
            "target_field": self.ctx.config.target_field,
            "kl_divergence": kl,  # KL(dataset || corpus), nats
            "bootstrap": {"method": "poisson", "replicates": int(self.opts["replicates"]), "confidence": confidence,
                          "seed": int(self.opts["seed"])},
            "smoothing_alpha": alpha,
            "buckets": int(corpus.unigram.shape[0]) if corpus is not None else None,
            "corpus_tokens": int(corpus.unigram.sum()) if corpus is not None else None,
            "fields": fields,
            "measured_cost": {"load_seconds": round(corpus.load_seconds, 3) if corpus is not None else 0.0,
                     "compute_seconds": round(self.seconds, 3),
                     "examples_per_second": round(self.examples / self.seconds, 1) if self.seconds else None},
        }


register_measure(DistributionMeasure, replace=True)
