"""Near-duplicate measure: MinHash containment of each example field in corpus chunks.

Corpus side (a side table, :mod:`probe.index.side_tables`): every document is cut into
chunks of ``chunk_tokens`` tokens of the index's own surface view, consecutive chunks
overlapping by ``overlap_tokens`` (at least ``shingle - 1``, so no shingle is lost at a
boundary). A chunk's shingles are its word ``shingle``-grams, hashed exactly like the
n-gram index hashes its n-grams. Per chunk the side table stores

- ``chunks.parquet``: provenance (part-local document ordinal, shard row, token and
  character span, a snippet of the normalized text) and the MinHash signature
  (``num_perm`` uint32 values, sketched with rensa);
- ``shingles.parquet``: the chunk's distinct shingles, truncated to 32 bits, for the exact
  confirmation below;
- ``lsh.parquet``: one LSH key per band (``num_perm / band_rows`` bands), sorted.

Scan side: a field's shingles are sketched the same way and its band keys looked up;
chunks are ranked by the number of bands they share (with one row per band that is the
MinHash estimate of Jaccard), and the best ``candidates`` are confirmed *exactly*:
containment = |field ∩ chunk| / |field| over the hashed shingles. Querying loosely and
confirming exactly is what ../shared/SIMILARITY.md measured: a short instruction inside a
long chunk has a small Jaccard, so an LSH tuned for Jaccard (or a containment LSH at its
nominal threshold) misses a third of true containments; see docs/index-format.md for the
parameters measured. Jaccard per best chunk is the signature estimate.
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
    SideTable,
    SideTableBuilder,
    SideTableKind,
    SideTableMeasure,
    open_side_table,
    register_side_table,
    require_extra,
)
from probe.measures import MeasureAggregate, MeasureBatch, ScanBatch, ScanContext, register_measure
from probe.measures.ngram import SCAN_FIELDS

NAME = "minhash"
BUILD_DEFAULTS: dict[str, Any] = {
    "chunk_tokens": 256,  # tokens per chunk
    "overlap_tokens": 32,  # tokens shared by consecutive chunks (>= shingle - 1)
    "shingle": 3,  # word n-gram size of a shingle (3: paraphrases keep shingles; bench/side_tables.py)
    "num_perm": 64,  # MinHash permutations (signature length)
    "band_rows": 1,  # rows per LSH band: 1 = one key per permutation (loosest, best for containment)
    "seed": 1,  # rensa's permutation seed
    "snippet_chars": 160,  # characters of normalized chunk text kept for provenance
}
SCAN_DEFAULTS: dict[str, Any] = {
    "candidates": 8,  # chunks per field confirmed exactly (ranked by shared bands)
    "max_postings": 2000,  # an LSH key shared by more chunks is a stop key (boilerplate) and skipped
    "provenance_threshold": 0.5,  # provenance columns for a best chunk with containment >= this
}
_MASK32 = np.uint64(0xFFFFFFFF)
_EMPTY = np.uint32(0xFFFFFFFF)  # rensa's value for an empty set


def configure(options: Mapping[str, Any], spec: TextSpec) -> dict[str, Any]:
    """The full build config of the minhash side table (ConfigError on an unknown or bad option)."""
    unknown = sorted(set(options) - set(BUILD_DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown minhash option(s) {unknown}; choose from {', '.join(BUILD_DEFAULTS)}")
    config = {**BUILD_DEFAULTS, **options}
    for key, value in config.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"minhash option {key} must be a non-negative integer, got {value!r}")
    if config["shingle"] < 1 or config["num_perm"] < 1 or config["band_rows"] < 1:
        raise ConfigError("minhash options shingle, num_perm and band_rows must be >= 1")
    if config["num_perm"] % config["band_rows"]:
        raise ConfigError(f"minhash num_perm ({config['num_perm']}) must be a multiple of band_rows "
                          f"({config['band_rows']})")
    if not config["shingle"] <= config["chunk_tokens"]:
        raise ConfigError("minhash chunk_tokens must be >= shingle")
    if not config["shingle"] - 1 <= config["overlap_tokens"] < config["chunk_tokens"]:
        raise ConfigError(f"minhash overlap_tokens must be in [shingle - 1, chunk_tokens), got "
                          f"{config['overlap_tokens']} (a smaller overlap loses the shingles across chunk ends)")
    return config


# --------------------------------------------------------------------------- sketching (both sides)
def signatures(flat_hashes: np.ndarray, offsets: np.ndarray, num_perm: int, seed: int) -> np.ndarray:
    """MinHash signatures (rows × num_perm uint32) of the sets ``flat_hashes[offsets[i]:offsets[i+1]]``."""
    rensa = require_extra("rensa", NAME)
    if offsets.shape[0] <= 1:
        return np.empty((0, num_perm), np.uint32)
    matrix = rensa.RMinHash.digest_matrix_from_flat_token_hashes(
        np.ascontiguousarray(flat_hashes, np.uint64), np.ascontiguousarray(offsets, np.uint64), num_perm, seed)
    return np.asarray(matrix.to_rows(), dtype=np.uint32).reshape(-1, num_perm)


def band_keys(sig: np.ndarray, band_rows: int) -> np.ndarray:
    """One uint64 LSH key per band: ``band << 32 | value`` with one row per band, else a mixed hash."""
    rows, perms = sig.shape
    bands = perms // band_rows
    band_ids = np.arange(bands, dtype=np.uint64)
    if band_rows == 1:
        return (band_ids << np.uint64(32)) | sig.astype(np.uint64)
    grouped = sig.reshape(rows, bands, band_rows).astype(np.uint64)
    h = np.zeros((rows, bands), np.uint64)
    with np.errstate(over="ignore"):
        for r in range(band_rows):
            h = h * np.uint64(0x100000001B3) + grouped[:, :, r]
        h ^= h >> np.uint64(33)
        h *= np.uint64(0xFF51AFD7ED558CCD)
        h ^= h >> np.uint64(33)
    return (h >> np.uint64(8)) | (band_ids << np.uint64(56))


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(starts[i], starts[i] + counts[i])``."""
    total = int(counts.sum())
    if not total:
        return np.empty(0, np.int64)
    offsets = np.cumsum(counts) - counts
    return np.repeat(starts - offsets, counts) + np.arange(total)


def distinct_sets(flat: np.ndarray, set_ids: np.ndarray, n_sets: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct 32-bit shingles per set: (sorted values grouped by set, offsets)."""
    keys = (set_ids.astype(np.uint64) << np.uint64(32)) | (flat >> np.uint64(32))
    keys.sort()  # sort + neighbour compare: np.unique's hash path took 6x longer here (numpy 2.x)
    if keys.shape[0]:
        keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))]
    values = (keys & _MASK32).astype(np.uint32)
    counts = np.bincount((keys >> np.uint64(32)).astype(np.int64), minlength=n_sets)
    offsets = np.zeros(n_sets + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    return values, offsets


# --------------------------------------------------------------------------- corpus side
class MinHashBuilder(SideTableBuilder):
    """Chunks, signatures, distinct shingles and LSH keys of one shard part."""

    def __init__(self, spec: TextSpec, config: Mapping[str, Any]) -> None:
        super().__init__(spec, config)
        self.chunk_parts: list[dict[str, Any]] = []
        self.chunks = 0

    def add(self, docs: SideDocs) -> None:
        cfg = self.config
        tb = docs.tokens
        n, chunk, stride = cfg["shingle"], cfg["chunk_tokens"], cfg["chunk_tokens"] - cfg["overlap_tokens"]
        h, h_ends, _pos = kernels.ngram_hashes(tb.token_hashes, tb.doc_token_ends, n, 1)
        counts = tb.doc_token_counts().astype(np.int64)
        tok0 = tb.doc_token_ends.astype(np.int64) - counts
        h0 = np.asarray(h_ends, np.int64) - np.maximum(counts - n + 1, 0)
        per_doc = np.where(counts < n, 0, 1 + np.maximum(0, -(-(counts - chunk) // stride)))
        doc = np.repeat(np.arange(counts.shape[0]), per_doc)
        if not doc.shape[0]:
            return
        start = (_ranges(np.zeros_like(per_doc), per_doc)) * stride
        end = np.minimum(start + chunk, counts[doc])
        n_shingles = end - start - n + 1
        keep = n_shingles > 0
        doc, start, end, n_shingles = doc[keep], start[keep], end[keep], n_shingles[keep]
        flat_idx = _ranges(h0[doc] + start, n_shingles)
        flat = h[flat_idx]
        offsets = np.zeros(doc.shape[0] + 1, np.int64)
        np.cumsum(n_shingles, out=offsets[1:])
        sig = signatures(flat, offsets, cfg["num_perm"], cfg["seed"])
        values, value_offsets = distinct_sets(flat, np.repeat(np.arange(doc.shape[0]), n_shingles), doc.shape[0])
        first_tok = tok0[doc] + start
        last_tok = tok0[doc] + end - 1
        char_start = tb.token_starts[first_tok].astype(np.int64)
        char_end = tb.token_ends[last_tok].astype(np.int64)
        width = cfg["snippet_chars"]
        snippets = [tb.texts[d][s:min(e, s + width)] for d, s, e in zip(doc.tolist(), char_start.tolist(),
                                                                          char_end.tolist(), strict=True)]
        ids = np.arange(self.chunks, self.chunks + doc.shape[0], dtype=np.uint32)
        self.chunk_parts.append({
            "chunk": ids, "doc": (doc + docs.first_doc).astype(np.uint32), "row": docs.rows[doc].astype(np.uint64),
            "token_start": start.astype(np.uint32), "token_end": end.astype(np.uint32),
            "char_start": char_start.astype(np.uint32), "char_end": char_end.astype(np.uint32),
            "shingles": np.diff(value_offsets).astype(np.uint32), "snippet": snippets, "signature": sig,
            "values": values, "value_offsets": value_offsets,
            "lsh": band_keys(sig, cfg["band_rows"]),
        })
        self.chunks += doc.shape[0]

    def tables(self) -> dict[str, pa.Table]:
        parts = self.chunk_parts
        perms = self.config["num_perm"]

        def cat(key: str, dtype: Any) -> np.ndarray:
            return np.concatenate([p[key] for p in parts]) if parts else np.empty(0, dtype)

        sig = np.concatenate([p["signature"] for p in parts]) if parts else np.empty((0, perms), np.uint32)
        chunks = pa.table({
            "chunk": cat("chunk", np.uint32), "doc": cat("doc", np.uint32), "row": cat("row", np.uint64),
            "token_start": cat("token_start", np.uint32), "token_end": cat("token_end", np.uint32),
            "char_start": cat("char_start", np.uint32), "char_end": cat("char_end", np.uint32),
            "shingles": cat("shingles", np.uint32),
            "snippet": pa.array([s for p in parts for s in p["snippet"]], pa.string()),
            "signature": pa.FixedSizeListArray.from_arrays(pa.array(sig.reshape(-1)), perms),
        })
        values = cat("values", np.uint32)
        offsets = [0]
        for p in parts:
            offsets.extend((p["value_offsets"][1:] + offsets[-1]).tolist())
        shingles = pa.table({"chunk": cat("chunk", np.uint32),
                             "shingles": pa.ListArray.from_arrays(pa.array(np.asarray(offsets, np.int32)),
                                                                  pa.array(values))})
        keys = np.concatenate([p["lsh"].reshape(-1) for p in parts]) if parts else np.empty(0, np.uint64)
        bands = keys.shape[0] // max(1, self.chunks)
        chunk_of_key = np.repeat(cat("chunk", np.uint32), bands)
        order = np.argsort(keys, kind="stable")
        lsh = pa.table({"key": pa.array(keys[order]), "chunk": pa.array(chunk_of_key[order])})
        return {"chunks": chunks, "shingles": shingles, "lsh": lsh}


register_side_table(SideTableKind(NAME, ("chunks", "shingles", "lsh"), configure, MinHashBuilder,
                                  "MinHash signatures, shingles and LSH keys of corpus chunks"))


# --------------------------------------------------------------------------- scan side
@dataclass
class _LoadedMinHash:
    """The side table in memory: sorted LSH keys → global chunk ids, signatures, provenance."""

    table: SideTable
    keys: np.ndarray  # uint64, sorted
    key_chunks: np.ndarray  # global chunk ids (int32 while they fit)
    signatures: np.ndarray  # (chunks, num_perm) uint32
    part_of_chunk: np.ndarray  # int64 part index per global chunk
    part_offsets: np.ndarray  # int64, first global chunk id per part (+ total)
    rows: np.ndarray  # uint64 shard row per chunk
    snippets: pa.Array
    load_seconds: float
    _shingles: dict[int, tuple[np.ndarray, np.ndarray]]  # part index -> (values, offsets), loaded on demand

    @classmethod
    def load(cls, ctx: ScanContext) -> _LoadedMinHash:
        t0 = time.perf_counter()
        table = open_side_table(ctx.reader, NAME)
        perms = table.config["num_perm"]
        sigs, rows, snippets, keys, key_chunks = [], [], [], [], []
        offsets = [0]
        for _part, t in table.read("chunks", ["row", "snippet", "signature"]):
            rows.append(_np(t, "row"))
            snippets.append(t.column("snippet").combine_chunks())
            sigs.append(np.asarray(t.column("signature").combine_chunks().flatten()).reshape(t.num_rows, perms))
            offsets.append(offsets[-1] + t.num_rows)
        for i, (_part, t) in enumerate(table.read("lsh")):
            keys.append(_np(t, "key"))
            key_chunks.append(_np(t, "chunk").astype(np.int64) + offsets[i])
        all_keys = np.concatenate(keys) if keys else np.empty(0, np.uint64)
        # global chunk ids as int32 while they fit: the postings are the measure's largest array
        id_type = np.int32 if offsets[-1] < 2**31 else np.int64
        all_chunks = np.concatenate(key_chunks).astype(id_type) if key_chunks else np.empty(0, id_type)
        order = np.argsort(all_keys, kind="stable")
        part_offsets = np.asarray(offsets, np.int64)
        return cls(table, all_keys[order], all_chunks[order],
                   np.concatenate(sigs) if sigs else np.empty((0, perms), np.uint32),
                   np.repeat(np.arange(len(offsets) - 1), np.diff(part_offsets)), part_offsets,
                   np.concatenate(rows) if rows else np.empty(0, np.uint64),
                   pa.concat_arrays(snippets) if snippets else pa.array([], pa.string()),
                   time.perf_counter() - t0, {})

    @property
    def chunks(self) -> int:
        return int(self.part_offsets[-1])

    def shingles(self, global_chunk: int) -> np.ndarray:
        part = int(self.part_of_chunk[global_chunk])
        if part not in self._shingles:
            lists = self.table.read_part(self.table.parts[part], "shingles").column("shingles").combine_chunks()
            self._shingles[part] = (np.asarray(lists.values, np.uint32), np.asarray(lists.offsets, np.int64))
        values, offsets = self._shingles[part]
        local = global_chunk - int(self.part_offsets[part])
        return values[offsets[local]:offsets[local + 1]]


def _np(table: pa.Table, name: str) -> np.ndarray:
    col = table.column(name)
    return np.asarray(col.combine_chunks() if col.num_chunks != 1 else col.chunk(0))


@dataclass
class MinHashEvidence:
    """Per field: exact containment and estimated Jaccard of the best chunk (NaN: no shingles)."""

    containment: dict[str, np.ndarray]
    jaccard: dict[str, np.ndarray]
    candidates: int
    stop_keys: int
    seconds: float


class MinHashMeasure(SideTableMeasure):
    name = NAME
    title = "near-duplicate (MinHash containment)"
    cost = "one LSH lookup per band per field, exact containment on up to `candidates` chunks"
    default = False  # needs its side table and holds the LSH keys in memory: opt in with --measures minhash

    def __init__(self) -> None:
        self._loaded: _LoadedMinHash | None = None

    scan_defaults = SCAN_DEFAULTS

    def estimate(self, ctx: ScanContext) -> bool:
        return True  # candidates come from LSH: a true near-duplicate can be missed (never over-reported)

    def loaded(self, ctx: ScanContext) -> _LoadedMinHash:
        if self._loaded is None:
            self._loaded = _LoadedMinHash.load(ctx)
        return self._loaded

    def compute(self, batch: ScanBatch, ctx: ScanContext, earlier: dict[str, MeasureBatch]) -> MeasureBatch:
        t0 = time.perf_counter()
        opts = self.scan_options(ctx)
        index = self.loaded(ctx)
        cfg = index.table.config
        tb = batch.tokens["surface"]
        e = batch.size
        n_docs = e * len(SCAN_FIELDS)
        h, h_ends, _pos = kernels.ngram_hashes(tb.token_hashes, tb.doc_token_ends, cfg["shingle"], 1)
        offsets = np.zeros(n_docs + 1, np.int64)
        offsets[1:] = h_ends
        sizes = np.diff(offsets)
        has = sizes > 0
        q_ids = np.flatnonzero(has)
        q_off = np.zeros(q_ids.shape[0] + 1, np.int64)
        np.cumsum(sizes[q_ids], out=q_off[1:])
        sig = signatures(h, q_off, cfg["num_perm"], cfg["seed"]) if q_ids.shape[0] else \
            np.empty((0, cfg["num_perm"]), np.uint32)
        values, value_off = distinct_sets(h, np.repeat(np.arange(n_docs), sizes), n_docs)
        best_c = np.full(n_docs, np.nan)
        best_j = np.full(n_docs, np.nan)
        best_chunk = np.full(n_docs, -1, np.int64)
        best_c[has] = 0.0
        best_j[has] = 0.0
        candidates, stop_keys = self._candidates(index, band_keys(sig, cfg["band_rows"]), opts)
        for qi, chunk in zip(candidates[0].tolist(), candidates[1].tolist(), strict=True):
            d = int(q_ids[qi])
            mine = values[value_off[d]:value_off[d + 1]]
            theirs = index.shingles(chunk)
            containment = np.intersect1d(mine, theirs, assume_unique=True).shape[0] / mine.shape[0]
            jaccard = float(np.mean(sig[qi] == index.signatures[chunk]))
            if (containment, jaccard) > (best_c[d], best_j[d]):
                best_c[d], best_j[d], best_chunk[d] = containment, jaccard, chunk
        columns = self._columns(batch, index, best_c, best_j, best_chunk, opts["provenance_threshold"])
        seconds = time.perf_counter() - t0
        evidence = MinHashEvidence({f: best_c[i * e:(i + 1) * e] for i, f in enumerate(SCAN_FIELDS)},
                                   {f: best_j[i * e:(i + 1) * e] for i, f in enumerate(SCAN_FIELDS)},
                                   int(candidates[0].shape[0]), stop_keys, seconds)
        return MeasureBatch(columns, evidence)

    @staticmethod
    def _candidates(index: _LoadedMinHash, qkeys: np.ndarray, opts: dict[str, Any]
                    ) -> tuple[tuple[np.ndarray, np.ndarray], int]:
        """(query, chunk) pairs to confirm: per query the ``candidates`` chunks sharing the most bands."""
        empty = (np.empty(0, np.int64), np.empty(0, np.int64))
        if not qkeys.size or not index.keys.shape[0]:
            return empty, 0
        flat = qkeys.reshape(-1)
        query = np.repeat(np.arange(qkeys.shape[0]), qkeys.shape[1])
        lo = np.searchsorted(index.keys, flat, "left")
        hi = np.searchsorted(index.keys, flat, "right")
        postings = hi - lo
        stop = postings > opts["max_postings"]
        postings[stop] = 0
        if not postings.sum():
            return empty, int(stop.sum())
        chunk = index.key_chunks[_ranges(lo, postings)].astype(np.int64)
        pair = np.repeat(query, postings).astype(np.int64) * max(1, index.chunks) + chunk
        uniq, hits = np.unique(pair, return_counts=True)
        q_of, c_of = uniq // max(1, index.chunks), uniq % max(1, index.chunks)
        order = np.lexsort((-hits, q_of))
        q_sorted = q_of[order]
        first = np.searchsorted(q_sorted, q_sorted, "left")
        keep = order[(np.arange(order.shape[0]) - first) < opts["candidates"]]
        return (q_of[keep], c_of[keep]), int(stop.sum())

    @staticmethod
    def _columns(batch: ScanBatch, index: _LoadedMinHash, best_c: np.ndarray, best_j: np.ndarray,
                 best_chunk: np.ndarray, threshold: float) -> dict[str, pa.Array]:
        e = batch.size
        columns: dict[str, pa.Array] = {}
        uris = [p.uri for p in index.table.parts]
        for i, f in enumerate(SCAN_FIELDS):
            sl = slice(i * e, (i + 1) * e)
            c, j, chunk = best_c[sl], best_j[sl], best_chunk[sl]
            columns[f"minhash_{f}_containment"] = pa.array(c, mask=np.isnan(c))
            columns[f"minhash_{f}_jaccard"] = pa.array(j, mask=np.isnan(j))
            show = (chunk >= 0) & (np.nan_to_num(c) >= threshold)
            idx = np.where(show, chunk, 0)
            columns[f"minhash_{f}_shard"] = pa.array(
                [uris[int(index.part_of_chunk[k])] if s else None for k, s in zip(idx.tolist(), show.tolist(),
                                                                                  strict=True)], pa.string())
            columns[f"minhash_{f}_row"] = pa.array(index.rows[idx].astype(np.int64), mask=~show) \
                if index.chunks else pa.nulls(e, pa.int64())
            columns[f"minhash_{f}_snippet"] = pa.array(
                [index.snippets[k].as_py() if s else None for k, s in zip(idx.tolist(), show.tolist(), strict=True)],
                pa.string())
        return columns

    def aggregate(self, ctx: ScanContext) -> MinHashAggregate:
        return MinHashAggregate(self)


CONTAINMENT_EDGES = (0.0, 0.2, 0.4, 0.5, 0.6, 0.8, 0.9, 1.0)


class MinHashAggregate(MeasureAggregate):
    """Per field: how many examples had shingles, the containment distribution; and what it cost."""

    def __init__(self, measure: MinHashMeasure) -> None:
        self.measure = measure
        self.containment: dict[str, list[np.ndarray]] = {f: [] for f in SCAN_FIELDS}
        self.jaccard: dict[str, list[np.ndarray]] = {f: [] for f in SCAN_FIELDS}
        self.examples = 0
        self.candidates = 0
        self.stop_keys = 0
        self.seconds = 0.0

    def add(self, output: MeasureBatch, batch: ScanBatch) -> None:
        ev: MinHashEvidence = output.payload
        self.examples += batch.size
        self.candidates += ev.candidates
        self.stop_keys += ev.stop_keys
        self.seconds += ev.seconds
        for f in SCAN_FIELDS:  # float32 per example and field: 8 bytes per example in all
            self.containment[f].append(ev.containment[f].astype(np.float32))
            self.jaccard[f].append(ev.jaccard[f].astype(np.float32))

    def to_dict(self) -> dict[str, Any]:
        loaded = self.measure._loaded
        fields = {}
        for f in SCAN_FIELDS:
            c = np.concatenate(self.containment[f]) if self.containment[f] else np.empty(0, np.float32)
            j = np.concatenate(self.jaccard[f]) if self.jaccard[f] else np.empty(0, np.float32)
            c, j = c[~np.isnan(c)], j[~np.isnan(j)]
            hist, _ = np.histogram(c, bins=CONTAINMENT_EDGES)
            fields[f] = {
                "assessable": int(c.shape[0]),
                "mean_containment": round(float(c.mean()), 6) if c.shape[0] else None,
                "quantiles": {q: round(float(np.quantile(c, float(q))), 6) for q in ("0.5", "0.9", "0.99")}
                if c.shape[0] else None,
                "at_least_0.5": int((c >= 0.5).sum()), "at_least_0.8": int((c >= 0.8).sum()),
                "mean_jaccard_estimate": round(float(j.mean()), 6) if j.shape[0] else None,
                "containment_histogram": {"edges": list(CONTAINMENT_EDGES), "counts": hist.tolist()},
            }
        return {
            "fields": fields,
            "side_table": loaded.table.config if loaded else None,
            "corpus_chunks": loaded.chunks if loaded else 0,
            "candidates_confirmed": self.candidates,
            "stop_keys_skipped": self.stop_keys,
            "measured_cost": {"load_seconds": round(loaded.load_seconds, 3) if loaded else 0.0,
                     "compute_seconds": round(self.seconds, 3),
                     "examples_per_second": round(self.examples / self.seconds, 1) if self.seconds else None,
                     "lsh_keys_in_memory_bytes": int(loaded.keys.nbytes + loaded.key_chunks.nbytes
                                                     + loaded.signatures.nbytes) if loaded else 0},
        }


register_measure(MinHashMeasure, replace=True)
