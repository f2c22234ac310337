"""Segments: aggregate n-gram rows into sorted tables and write/read them as Parquet.

A segment is the immutable output of one build task (a shard part) or of a
compaction. For every (view, n) it holds one Parquet file whose rows are sorted by
hash, so the file is both bucketed (row groups are contiguous bucket ranges, listed
in the manifest) and binary-searchable as a whole, plus a small file with the count,
docs and doc sample of the rows seen more than once (every other row is implied).

Aggregation is two-level to stay cache-friendly: a counting sort by bucket (top
bits), then an in-cache argsort per bucket, then one compiled reduce pass.
Spilled runs (sorted) are merged bucket-range by bucket-range, so memory is bounded
by one range however large the input.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

from probe import kernels
from probe.durable import fsync_dir
from probe.errors import IndexFormatError
from probe.index.format import fault_point, safe_relative, write_file_durable

ROWS_PER_ROW_GROUP = 1 << 17
EMPTY32 = np.uint32(0xFFFFFFFF)


@dataclass
class Aggregated:
    """Sorted unique n-gram rows: hash, total count, distinct docs, bottom-k doc ordinals."""

    hashes: np.ndarray  # uint64, strictly increasing
    counts: np.ndarray  # uint64
    docs: np.ndarray  # uint32
    samples: np.ndarray  # (rows, k) uint32, ascending, padded with 0xFFFFFFFF

    def __len__(self) -> int:
        return int(self.hashes.shape[0])

    @property
    def nbytes(self) -> int:
        return self.hashes.nbytes + self.counts.nbytes + self.docs.nbytes + self.samples.nbytes

    def slice(self, lo: int, hi: int) -> Aggregated:
        return Aggregated(self.hashes[lo:hi], self.counts[lo:hi], self.docs[lo:hi], self.samples[lo:hi])


def _hash_order(hashes: np.ndarray, bucket_bits: int) -> np.ndarray:
    """Permutation that sorts ``hashes``: counting sort by bucket, then argsort per bucket.

    Per-bucket argsorts run on cache-resident slices (~3x faster than one big argsort).
    """
    bits = max(bucket_bits, 1)
    order, offsets = kernels.bucket_partition(hashes, np.uint64(64 - bits), 1 << bits)
    perm = np.empty_like(order)
    for b in range(1 << bits):
        lo, hi = offsets[b], offsets[b + 1]
        if hi - lo > 1:
            idx = order[lo:hi]
            perm[lo:hi] = idx[np.argsort(hashes[idx])]
        elif hi > lo:
            perm[lo] = order[lo]
    return perm


def _empty(k: int) -> Aggregated:
    return Aggregated(np.empty(0, np.uint64), np.empty(0, np.uint64), np.empty(0, np.uint32),
                      np.empty((0, k), np.uint32))


def aggregate_rows(
    hashes: np.ndarray, counts: np.ndarray, docs: np.ndarray, samples: np.ndarray, k: int, bucket_bits: int
) -> Aggregated:
    """Sort aggregated rows by hash and merge equal hashes (sum counts/docs, bottom-k samples)."""
    if hashes.shape[0] == 0:
        return _empty(k)
    perm = _hash_order(hashes, bucket_bits)
    h, c, d, s = kernels.reduce_sorted(hashes[perm], counts[perm], docs[perm], samples[perm], k)
    return Aggregated(h, c, d, s)


def aggregate_doc_rows(hashes: np.ndarray, counts: np.ndarray, doc_ords: np.ndarray, k: int,
                       bucket_bits: int) -> Aggregated:
    """Aggregate per-document-deduped rows (each row = one document, one n-gram).

    Rows are first scattered into contiguous buckets, so each bucket's argsort and
    the reduce pass read cache-resident memory instead of gathering at random.
    """
    if hashes.shape[0] == 0:
        return _empty(k)
    bits = max(bucket_bits, 1)
    h, c, d, offsets = kernels.bucket_scatter(hashes, counts, doc_ords, np.uint64(64 - bits), 1 << bits)
    perm = np.empty(h.shape[0], dtype=np.int64)
    for b in range(1 << bits):
        lo, hi = int(offsets[b]), int(offsets[b + 1])
        if hi > lo:
            perm[lo:hi] = np.argsort(h[lo:hi]) + lo
    return Aggregated(*kernels.reduce_doc_rows(h, c, d, perm, k))


def merge_aggregated(parts: list[Aggregated], k: int, bucket_bits: int) -> Aggregated:
    """Merge several aggregated tables (e.g. spilled runs, or segments being compacted)."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return _empty(k)
    if len(parts) == 1:
        return parts[0]
    width = max(p.samples.shape[1] for p in parts)
    samples = np.full((sum(len(p) for p in parts), width), EMPTY32, np.uint32)
    row = 0
    for p in parts:
        samples[row:row + len(p), : p.samples.shape[1]] = p.samples
        row += len(p)
    return aggregate_rows(
        np.concatenate([p.hashes for p in parts]),
        np.concatenate([p.counts for p in parts]),
        np.concatenate([p.docs for p in parts]),
        samples, k, bucket_bits,
    )


def bucket_bounds(hashes: np.ndarray, bucket_bits: int) -> np.ndarray:
    """Row offsets of each bucket in a sorted hash array (len = buckets + 1)."""
    buckets = 1 << bucket_bits
    if bucket_bits == 0:
        return np.array([0, hashes.shape[0]], dtype=np.int64)
    edges = (np.arange(buckets + 1, dtype=np.uint64) << np.uint64(64 - bucket_bits)) if buckets > 1 else None
    bounds = np.searchsorted(hashes, edges[:-1]).astype(np.int64)
    return np.concatenate([bounds, [hashes.shape[0]]])


# --------------------------------------------------------------------------- Parquet I/O
def _samples_to_list(samples: np.ndarray) -> pa.Array:
    """A (rows, k) sample matrix padded with EMPTY32 as a list column (the padding dropped)."""
    offsets, values = kernels.samples_to_ragged(np.ascontiguousarray(samples))
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, type=pa.uint32()))


def ngram_schema(k: int) -> pa.Schema:
    """The n-gram table: every distinct n-gram of the segment, sorted by hash (+ ``doc0`` when k > 0)."""
    fields = [pa.field("hash", pa.uint64(), nullable=False)]
    if k > 0:
        fields.append(pa.field("doc0", pa.uint32(), nullable=False))
    return pa.schema(fields)


def repeated_schema(k: int) -> pa.Schema:
    """The repeated-rows file: n-grams with count > 1, with their count, docs and (k > 1) doc sample."""
    fields = [pa.field("hash", pa.uint64(), nullable=False), pa.field("count", pa.uint64(), nullable=False),
              pa.field("docs", pa.uint32(), nullable=False)]
    if k > 1:
        fields.append(pa.field("doc_sample", pa.list_(pa.uint32()), nullable=False))
    return pa.schema(fields)


def repeated_file_rel(rel: str) -> str:
    """Where the repeated-rows file of the n-gram file ``rel`` lives: ``<segment>/repeated/view=V/n=N.parquet``.

    A directory of its own, so a glob over ``<segment>/view=*/n=*.parquet`` sees only n-gram tables.
    """
    p = PurePosixPath(rel)
    return str(p.parent.parent / "repeated" / p.parent.name / p.name)


def _to_table(agg: Aggregated, k: int) -> pa.Table:
    cols = [pa.array(agg.hashes, pa.uint64())]
    if k > 0:
        cols.append(pa.array(np.ascontiguousarray(agg.samples[:, 0]), pa.uint32()))
    return pa.Table.from_arrays(cols, schema=ngram_schema(k))


def _repeated_table(agg: Aggregated, k: int) -> pa.Table:
    """Rows seen more than once (every row in several documents among them): count, docs, full sample."""
    rep = np.flatnonzero(agg.counts > 1)
    cols = [pa.array(agg.hashes[rep], pa.uint64()), pa.array(agg.counts[rep], pa.uint64()),
            pa.array(agg.docs[rep], pa.uint32())]
    if k > 1:
        cols.append(_samples_to_list(agg.samples[rep]))
    return pa.Table.from_arrays(cols, schema=repeated_schema(k))


def _writer_options(columns: tuple[str, ...]) -> dict[str, Any]:
    """DELTA_BINARY_PACKED for every integer column; zstd-1 for all but ``hash``.

    Sorted hashes delta-encode to ~5 bytes of random bits that zstd cannot shrink
    (measured: same file size, 10 % less write time without it); counts, docs and
    ordinals are small integers that zstd does shrink. Measured against dictionary
    encoding of count/docs: same size (+2 %), ~40 % less write time (bench/RESULTS.md).
    """
    leaf = {name: ("doc_sample.list.element" if name == "doc_sample" else name) for name in columns}
    return {
        "compression": {leaf[c]: ("none" if c == "hash" else "zstd") for c in columns},
        "compression_level": {leaf[c]: 1 for c in columns if c != "hash"},
        "use_dictionary": False,
        "column_encoding": {leaf[c]: "DELTA_BINARY_PACKED" for c in columns},
        "write_page_checksum": True,
        "write_statistics": ["hash"],
    }


@dataclass
class WrittenFile:
    path: str  # relative to the index root
    rows: int
    bytes: int
    xxh3_128: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "rows": self.rows, "bytes": self.bytes, "xxh3_128": self.xxh3_128, **self.extra}


def write_ngram_file(root: Path, rel: str, chunks: Iterator[Aggregated], k: int, bucket_bits: int) -> WrittenFile:
    """Write sorted aggregated chunks (ascending, disjoint) as one Parquet file (+ its repeated-rows file).

    Row groups are cut at bucket boundaries once they reach ROWS_PER_ROW_GROUP rows;
    the manifest records each row group's bucket range. The n-gram table holds every
    row's hash and smallest document ordinal (``doc0``) only: in a real corpus ~96 %
    of n-grams occur once, so their count and docs (1, 1) and doc sample (``[doc0]``)
    are implied. The few rows seen more than once carry count, docs and (k > 1) their
    whole bottom-k sample in a separate sorted file (:func:`repeated_file_rel`), one
    row group per table row group with the same bucket range. A reader decodes ~8
    bytes per n-gram instead of ~20. Both files are serialized in memory, hashed,
    written and fsynced (their directory is not visible to readers yet).
    """
    sink = pa.BufferOutputStream()  # grows in Arrow memory: no BytesIO copy on getvalue()
    schema = ngram_schema(k)
    writer = pq.ParquetWriter(sink, schema, **_writer_options(tuple(schema.names)))
    rep_schema = repeated_schema(k)
    rep_sink = pa.BufferOutputStream()
    rep_writer = pq.ParquetWriter(rep_sink, rep_schema, **_writer_options(tuple(rep_schema.names)))
    row_groups: list[list[int]] = []
    rep_groups: list[list[int]] = []
    pending: list[Aggregated] = []
    pending_rows = 0
    rows = 0
    count_sum = 0
    shift = np.uint64(64 - bucket_bits) if bucket_bits else None

    def flush() -> None:
        nonlocal pending, pending_rows
        if not pending_rows:
            return
        agg = pending[0] if len(pending) == 1 else Aggregated(
            np.concatenate([p.hashes for p in pending]), np.concatenate([p.counts for p in pending]),
            np.concatenate([p.docs for p in pending]), np.concatenate([p.samples for p in pending]))
        writer.write_table(_to_table(agg, k), row_group_size=len(agg))
        first = int(agg.hashes[0] >> shift) if shift is not None else 0
        last = int(agg.hashes[-1] >> shift) if shift is not None else 0
        row_groups.append([first, last, len(agg)])
        rep = _repeated_table(agg, k)
        if rep.num_rows:
            rep_writer.write_table(rep, row_group_size=rep.num_rows)
            rep_groups.append([first, last, rep.num_rows])
        pending, pending_rows = [], 0

    for chunk in chunks:
        if not len(chunk):
            continue
        rows += len(chunk)
        count_sum += int(chunk.counts.sum())
        bounds = bucket_bounds(chunk.hashes, bucket_bits).tolist()
        # cut row groups only at bucket boundaries, so a row group never straddles a bucket;
        # slices of the chunk are written as they are (no per-bucket copies)
        start = 0
        for b in range(1, len(bounds)):
            lo, hi = bounds[b - 1], bounds[b]
            if hi == lo:
                continue
            if pending_rows + (lo - start) > 0 and pending_rows + (hi - start) > ROWS_PER_ROW_GROUP:
                if lo > start:
                    pending.append(chunk.slice(start, lo))
                    pending_rows += lo - start
                    start = lo
                flush()
        if len(chunk) > start:
            pending.append(chunk.slice(start, len(chunk)))
            pending_rows += len(chunk) - start
    flush()
    fault_point("mid_parquet_write")
    writer.close()
    rep_writer.close()
    rep_rel = repeated_file_rel(rel)
    rep_data = memoryview(rep_sink.getvalue())
    rep_path = root / rep_rel
    rep_path.parent.mkdir(parents=True, exist_ok=True)
    write_file_durable(rep_path, rep_data)
    extra: dict[str, Any] = {
        "count_sum": count_sum, "row_groups": row_groups,
        "repeated_file": {"path": rep_rel, "rows": sum(g[2] for g in rep_groups), "bytes": len(rep_data),
                          "xxh3_128": xxhash.xxh3_128_hexdigest(rep_data), "row_groups": rep_groups},
    }
    data = memoryview(sink.getvalue())
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file_durable(path, data)
    fault_point("after_data_write")
    return WrittenFile(rel, rows, len(data), xxhash.xxh3_128_hexdigest(data), extra)


def write_table_file(root: Path, rel: str, table: pa.Table) -> WrittenFile:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", compression_level=1, write_page_checksum=True)
    data = sink.getvalue()
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file_durable(path, data)
    return WrittenFile(rel, table.num_rows, len(data), xxhash.xxh3_128_hexdigest(data))


def write_manifest(root: Path, seg_dir_rel: str, manifest: dict[str, Any]) -> tuple[str, str]:
    """Write the segment manifest last, fsync the segment's directories, return (rel, digest)."""
    data = json.dumps(manifest, indent=1, sort_keys=True).encode()
    rel = f"{seg_dir_rel}/manifest.json"
    write_file_durable(root / rel, data)
    seg = root / seg_dir_rel
    for d in sorted({p.parent for p in seg.rglob("*")} | {seg}, key=lambda p: len(p.parts), reverse=True):
        fsync_dir(d)
    fsync_dir(seg.parent)
    fault_point("after_data_fsync")
    return rel, xxhash.xxh3_128_hexdigest(data)


def ngram_file_bytes(entry: dict[str, Any]) -> int:
    """Bytes on disk of one n-gram file entry, its repeated-rows file included."""
    return entry["bytes"] + entry["repeated_file"]["bytes"]


def manifest_files(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Every data file a segment manifest references: n-gram files, their repeated-rows files, the docs table."""
    out: list[dict[str, Any]] = []
    for entry in manifest["files"]:
        out.append(entry)
        out.append(entry["repeated_file"])
    out.append(manifest["docs_file"])
    return out


def read_manifest(root: Path, rel: str, digest: str | None = None, kind: str = "segment",
                  check: Callable[[Any], bool] | None = None) -> dict[str, Any]:
    """A manifest the snapshot references, checked against its digest and its shape (``check``).

    ``kind`` names it in errors ("segment", "side table"); ``check`` defaults to the segment shape.
    """
    path = safe_relative(root, rel)
    try:
        data = path.read_bytes()
    except FileNotFoundError as e:
        raise IndexFormatError(f"{path}: {kind} manifest referenced by the snapshot is missing") from e
    if digest is not None and xxhash.xxh3_128_hexdigest(data) != digest:
        raise IndexFormatError(f"{path}: {kind} manifest content hash mismatch (corrupt or replaced)")
    try:
        manifest = json.loads(data)
    except ValueError as e:
        raise IndexFormatError(f"{path}: malformed {kind} manifest: {e}") from e
    if not (check or _manifest_ok)(manifest):
        raise IndexFormatError(f"{path}: malformed {kind} manifest (missing fields or wrong types)")
    return manifest


def _is_file_entry(entry: Any) -> bool:
    return (isinstance(entry, dict) and isinstance(entry.get("path"), str)
            and all(isinstance(entry.get(k), int) for k in ("rows", "bytes"))
            and isinstance(entry.get("xxh3_128"), str))


def _manifest_ok(m: Any) -> bool:
    """Shape check, so a damaged (but consistently signed) manifest is an IndexFormatError, not a crash."""
    if not (isinstance(m, dict) and isinstance(m.get("files"), list) and _is_file_entry(m.get("docs_file"))
            and isinstance(m.get("parts"), list) and isinstance(m.get("docs"), int)):
        return False
    for f in m["files"]:
        if not (_is_file_entry(f) and isinstance(f.get("view"), str) and isinstance(f.get("n"), int)
                and isinstance(f.get("count_sum"), int) and isinstance(f.get("row_groups"), list)
                and all(isinstance(g, list) and len(g) == 3 and all(isinstance(x, int) for x in g)
                        for g in f["row_groups"])):
            return False
        rep = f.get("repeated_file")
        if not (_is_file_entry(rep) and isinstance(rep.get("row_groups"), list)
                and all(isinstance(g, list) and len(g) == 3 and all(isinstance(x, int) for x in g)
                        for g in rep["row_groups"])):
            return False
    return True


def open_parquet(root: Path, entry: dict[str, Any]) -> pq.ParquetFile:
    """Open a referenced index file, checking its size and verifying page checksums on read."""
    path = safe_relative(root, entry["path"])
    try:
        size = path.stat().st_size
    except FileNotFoundError as e:
        raise IndexFormatError(f"index file {path} is missing (referenced by the snapshot)") from e
    if size != entry["bytes"]:
        raise IndexFormatError(f"index file {path} is truncated or replaced: {size} bytes, manifest says {entry['bytes']}")
    try:
        return pq.ParquetFile(path, page_checksum_verification=True)
    except (pa.ArrowException, OSError) as e:
        raise IndexFormatError(f"index file {path} is corrupt: {e}") from e


@dataclass
class Repeated:
    """The rows of an n-gram file seen more than once (from its repeated-rows file), sorted by hash.

    Row i's doc sample is ``values[offsets[i]:offsets[i + 1]]`` (k > 1; empty otherwise).
    """

    hashes: np.ndarray  # uint64, strictly increasing
    counts: np.ndarray  # uint64, > 1
    docs: np.ndarray  # uint32, 1..count
    offsets: np.ndarray  # int64, len + 1
    values: np.ndarray  # uint32

    @property
    def nbytes(self) -> int:
        return self.hashes.nbytes + self.counts.nbytes + self.docs.nbytes + self.offsets.nbytes + self.values.nbytes

    @classmethod
    def from_aggregated(cls, agg: Aggregated) -> Repeated:
        """The repeated rows of in-memory aggregated rows (their samples as ragged lists)."""
        rep = np.flatnonzero(agg.counts > 1)
        sub = agg.samples[rep] if agg.samples.shape[1] > 1 else np.empty((rep.shape[0], 0), np.uint32)
        valid = sub != EMPTY32
        offsets = np.zeros(rep.shape[0] + 1, np.int64)
        np.cumsum(valid.sum(axis=1), out=offsets[1:])
        return cls(agg.hashes[rep], agg.counts[rep], agg.docs[rep].astype(np.uint32), offsets, sub[valid])


def _overlapping_groups(groups: list[list[int]], ranges: list[list[int]]) -> list[int]:
    """Indices of ``groups`` ([first bucket, last bucket, rows]) overlapping any of ``ranges``."""
    return [i for i, (first, last, _r) in enumerate(groups) if any(last >= lo and first <= hi for lo, hi, _ in ranges)]


def read_repeated_file(root: Path, entry: dict[str, Any], k: int, row_groups: list[int] | None = None) -> Repeated:
    """(Some row groups of) the repeated-rows file of an n-gram file, checked for consistency.

    ``row_groups`` are row groups of the *n-gram file*; the repeated-rows file's row
    groups covering the same buckets are read.
    """
    rep = entry["repeated_file"]
    groups = None
    if row_groups is not None:
        groups = _overlapping_groups(rep["row_groups"], [entry["row_groups"][g] for g in row_groups])
    pf = open_parquet(root, rep)
    where = root / rep["path"]
    try:
        table = pf.read_row_groups(groups) if groups is not None else pf.read()
        hashes = _flat(table, "hash", np.uint64)
        counts = _flat(table, "count", np.uint64)
        docs = _flat(table, "docs", np.uint32)
        if k > 1:
            col = table.column("doc_sample")
            col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
            offsets = np.asarray(col.offsets, dtype=np.int64)
            values = (np.asarray(col.values, dtype=np.uint32)[offsets[0]:offsets[-1]] if len(col)
                      else np.empty(0, np.uint32))
            offsets = offsets - offsets[0]
        else:
            offsets, values = np.zeros(hashes.shape[0] + 1, np.int64), np.empty(0, np.uint32)
    except (pa.ArrowException, OSError, KeyError) as e:
        raise IndexFormatError(f"index file {where} is corrupt: {e}") from e
    if hashes.shape[0] and not (bool(np.all(counts > 1)) and bool(np.all((docs >= 1) & (docs <= counts)))):
        raise IndexFormatError(f"index file {where}: repeated rows need count > 1 and 1 <= docs <= count")
    if k > 1 and not np.array_equal(np.diff(offsets), np.minimum(docs.astype(np.int64), k)):
        raise IndexFormatError(f"index file {where}: doc samples must hold min(docs, {k}) ordinals per row")
    return Repeated(hashes, counts, docs, offsets, values)


def _flat(table: pa.Table, name: str, dtype: type) -> np.ndarray:
    col = table.column(name)
    arr = col.combine_chunks().to_numpy() if col.num_chunks != 1 else col.chunk(0).to_numpy()
    return np.ascontiguousarray(arr, dtype)


def locate_repeated(root: Path, entry: dict[str, Any], hashes: np.ndarray, rep: Repeated) -> np.ndarray:
    """Row of each repeated hash in the table's sorted ``hashes``; an IndexFormatError when one is missing."""
    n = hashes.shape[0]
    pos = np.searchsorted(hashes, rep.hashes)
    ok = pos < n
    ok[ok] = hashes[pos[ok]] == rep.hashes[ok]
    if not ok.all():
        raise IndexFormatError(f"index file {root / entry['repeated_file']['path']}: {int((~ok).sum())} repeated "
                               f"rows are not in {root / entry['path']} (the two files do not match)")
    return pos


def read_ngram_row_groups(root: Path, entry: dict[str, Any], k: int, row_groups: list[int] | None = None,
                          columns: list[str] | None = None) -> Aggregated:
    """Read (some row groups of) an n-gram file back into full arrays.

    ``columns`` names logical columns: ``hash``, ``count``, ``docs`` and ``doc_sample``
    (the (rows, k) sample matrix). Counts, docs and samples are rebuilt from the
    implied values of single rows (1, 1, ``[doc0]``) and the repeated-rows file.
    """
    cols = columns or (["hash", "count", "docs"] + (["doc_sample"] if k > 0 else []))
    want_samples = k > 0 and "doc_sample" in cols
    need_rep = "count" in cols or "docs" in cols or (want_samples and k > 1)
    phys = ["hash"] + (["doc0"] if want_samples else [])
    pf = open_parquet(root, entry)
    try:
        table = pf.read_row_groups(row_groups, columns=phys) if row_groups is not None else pf.read(columns=phys)
        h = _flat(table, "hash", np.uint64)
        doc0 = _flat(table, "doc0", np.uint32) if want_samples else None
    except (pa.ArrowException, OSError, KeyError) as e:
        raise IndexFormatError(f"index file {root / entry['path']} is corrupt: {e}") from e
    n = h.shape[0]
    c = np.ones(n, np.uint64) if "count" in cols else np.zeros(n, np.uint64)
    d = np.ones(n, np.uint32) if "docs" in cols else np.zeros(n, np.uint32)
    s = np.full((n, k), EMPTY32, np.uint32) if want_samples else np.empty((n, 0), np.uint32)
    if doc0 is not None:
        s[:, 0] = doc0
    if need_rep:
        rep = read_repeated_file(root, entry, k, row_groups)
        pos = locate_repeated(root, entry, h, rep)
        c[pos] = rep.counts
        d[pos] = rep.docs
        if want_samples and k > 1 and pos.shape[0]:
            lengths = np.diff(rep.offsets)
            if doc0 is not None and not np.array_equal(rep.values[rep.offsets[:-1]], doc0[pos]):
                raise IndexFormatError(f"index file {root / entry['repeated_file']['path']}: doc samples do not "
                                       f"start with the rows' doc0 in {root / entry['path']}")
            rows = np.repeat(pos, lengths)
            within = np.arange(int(lengths.sum())) - np.repeat(rep.offsets[:-1], lengths)
            s[rows, within] = rep.values
    return Aggregated(h, c, d, s)


def row_groups_for_buckets(entry: dict[str, Any], lo_bucket: int, hi_bucket: int) -> list[int]:
    """Row groups of a file that overlap buckets [lo_bucket, hi_bucket]."""
    return [i for i, (first, last, _rows) in enumerate(entry["row_groups"]) if last >= lo_bucket and first <= hi_bucket]
