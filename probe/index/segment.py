"""Segments: aggregate n-gram rows into sorted tables and write/read them as Parquet.

A segment is the immutable output of one build task (a shard part) or of a
compaction. For every (view, n) it holds one Parquet file whose rows are sorted by
hash, so the file is both bucketed (row groups are contiguous bucket ranges, listed
in the manifest) and binary-searchable as a whole.

Aggregation is two-level to stay cache-friendly: a counting sort by bucket (top
bits), then an in-cache argsort per bucket, then one compiled reduce pass.
Spilled runs (sorted) are merged bucket-range by bucket-range, so memory is bounded
by one range however large the input.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

from probe import kernels
from probe.errors import IndexFormatError
from probe.index.format import fault_point, fsync_dir, safe_relative, write_file_durable

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
    offsets, values = kernels.samples_to_ragged(np.ascontiguousarray(samples))
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, type=pa.uint32()))


NGRAM_SCHEMA_FIELDS = [
    pa.field("hash", pa.uint64(), nullable=False),
    pa.field("count", pa.uint64(), nullable=False),
    pa.field("docs", pa.uint32(), nullable=False),
]
SAMPLE_SCHEMA = pa.schema([
    pa.field("hash", pa.uint64(), nullable=False),
    pa.field("doc_sample", pa.list_(pa.uint32()), nullable=False),
])


def ngram_schema(k: int) -> pa.Schema:
    fields = list(NGRAM_SCHEMA_FIELDS)
    if k > 0:
        fields.append(pa.field("doc0", pa.uint32(), nullable=False))
    return pa.schema(fields)


def sample_file_rel(rel: str) -> str:
    """Where the doc-sample file of the n-gram file ``rel`` lives: ``<segment>/doc_sample/view=V/n=N.parquet``.

    A directory of its own, so a glob over ``<segment>/view=*/n=*.parquet`` sees only n-gram tables.
    """
    p = PurePosixPath(rel)
    return str(p.parent.parent / "doc_sample" / p.parent.name / p.name)


def _to_table(agg: Aggregated, k: int) -> pa.Table:
    cols = [pa.array(agg.hashes, pa.uint64()), pa.array(agg.counts, pa.uint64()), pa.array(agg.docs, pa.uint32())]
    if k > 0:
        cols.append(pa.array(np.ascontiguousarray(agg.samples[:, 0]), pa.uint32()))
    return pa.Table.from_arrays(cols, schema=ngram_schema(k))


def _sample_table(agg: Aggregated) -> pa.Table:
    """Rows in more than one document: the full bottom-k sample (doc0 first)."""
    multi = np.flatnonzero(agg.docs > 1)
    return pa.Table.from_arrays([pa.array(agg.hashes[multi], pa.uint64()), _samples_to_list(agg.samples[multi])],
                                schema=SAMPLE_SCHEMA)


def _writer_options(columns: tuple[str, ...] = ("hash", "count", "docs", "doc0")) -> dict[str, Any]:
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
    """Write sorted aggregated chunks (ascending, disjoint) as one Parquet file (+ its doc-sample file).

    Row groups are cut at bucket boundaries once they reach ROWS_PER_ROW_GROUP rows;
    the manifest records each row group's bucket range. Every row carries its
    smallest document ordinal (``doc0``); with ``k`` > 1 the rows found in more than
    one document (a few percent) also get their whole bottom-k sample in a separate
    sorted file (:func:`sample_file_rel`), so the big table stays flat columns that
    write and decode ~40 % faster than a list column on every row. Both files are
    serialized in memory, hashed, written and fsynced (their directory is not
    visible to readers yet).
    """
    sink = pa.BufferOutputStream()  # grows in Arrow memory: no BytesIO copy on getvalue()
    schema = ngram_schema(k)
    writer = pq.ParquetWriter(sink, schema, **_writer_options(tuple(schema.names)))
    with_side = k > 1
    side_sink = pa.BufferOutputStream() if with_side else None
    side_writer = pq.ParquetWriter(side_sink, SAMPLE_SCHEMA, **_writer_options(("hash", "doc_sample"))) \
        if with_side else None
    row_groups: list[list[int]] = []
    side_groups: list[list[int]] = []
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
        if side_writer is not None:
            side = _sample_table(agg)
            if side.num_rows:
                side_writer.write_table(side, row_group_size=side.num_rows)
                side_groups.append([first, last, side.num_rows])
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
    extra: dict[str, Any] = {"count_sum": count_sum, "row_groups": row_groups}
    if side_writer is not None:
        side_writer.close()
        side_rel = sample_file_rel(rel)
        side_data = memoryview(side_sink.getvalue())
        side_path = root / side_rel
        side_path.parent.mkdir(parents=True, exist_ok=True)
        write_file_durable(side_path, side_data)
        extra["doc_sample_file"] = {"path": side_rel, "rows": sum(g[2] for g in side_groups),
                                    "bytes": len(side_data), "xxh3_128": xxhash.xxh3_128_hexdigest(side_data),
                                    "row_groups": side_groups}
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
    """Bytes on disk of one n-gram file entry, its doc-sample file included."""
    return entry["bytes"] + (entry.get("doc_sample_file") or {}).get("bytes", 0)


def manifest_files(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Every data file a segment manifest references: n-gram files, their doc-sample files, the docs table."""
    out: list[dict[str, Any]] = []
    for entry in manifest["files"]:
        out.append(entry)
        if entry.get("doc_sample_file") is not None:
            out.append(entry["doc_sample_file"])
    out.append(manifest["docs_file"])
    return out


def read_manifest(root: Path, rel: str, digest: str | None = None) -> dict[str, Any]:
    path = safe_relative(root, rel)
    try:
        data = path.read_bytes()
    except FileNotFoundError as e:
        raise IndexFormatError(f"{path}: segment manifest referenced by the snapshot is missing") from e
    if digest is not None and xxhash.xxh3_128_hexdigest(data) != digest:
        raise IndexFormatError(f"{path}: segment manifest content hash mismatch (corrupt or replaced)")
    try:
        manifest = json.loads(data)
    except ValueError as e:
        raise IndexFormatError(f"{path}: malformed segment manifest: {e}") from e
    if not _manifest_ok(manifest):
        raise IndexFormatError(f"{path}: malformed segment manifest (missing fields or wrong types)")
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
                and isinstance(f.get("row_groups"), list)
                and all(isinstance(g, list) and len(g) == 3 and all(isinstance(x, int) for x in g)
                        for g in f["row_groups"])):
            return False
        side = f.get("doc_sample_file")
        if side is not None and not (_is_file_entry(side) and isinstance(side.get("row_groups"), list)):
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


def read_ngram_row_groups(root: Path, entry: dict[str, Any], k: int, row_groups: list[int] | None = None,
                          columns: list[str] | None = None) -> Aggregated:
    """Read (some row groups of) an n-gram file back into arrays.

    ``columns`` names logical columns: ``hash``, ``count``, ``docs`` and ``doc_sample``
    (the (rows, k) sample matrix, rebuilt from ``doc0`` and the doc-sample file).
    """
    cols = columns or (["hash", "count", "docs"] + (["doc_sample"] if k > 0 else []))
    want_samples = k > 0 and "doc_sample" in cols
    phys = [c for c in cols if c != "doc_sample"]
    if want_samples:
        phys = list(dict.fromkeys([*phys, "hash", "docs", "doc0"]))
    pf = open_parquet(root, entry)
    try:
        table = pf.read_row_groups(row_groups, columns=phys) if row_groups is not None else pf.read(columns=phys)
    except (pa.ArrowException, OSError) as e:
        raise IndexFormatError(f"index file {root / entry['path']} is corrupt: {e}") from e
    n = table.num_rows
    h = table.column("hash").to_numpy() if "hash" in phys else np.empty(0, np.uint64)
    c = table.column("count").to_numpy() if "count" in phys else np.zeros(n, np.uint64)
    d = table.column("docs").to_numpy() if "docs" in phys else np.zeros(n, np.uint32)
    h = np.ascontiguousarray(h, np.uint64)
    d = np.ascontiguousarray(d, np.uint32)
    if want_samples:
        s = np.full((n, k), EMPTY32, np.uint32)
        s[:, 0] = table.column("doc0").to_numpy()
        if k > 1:
            groups = None
            if row_groups is not None:
                ranges = [entry["row_groups"][g] for g in row_groups]
                side = entry.get("doc_sample_file") or {}
                groups = [i for i, (first, last, _r) in enumerate(side.get("row_groups", []))
                          if any(last >= lo and first <= hi for lo, hi, _ in ranges)]
            sh, offsets, values = read_sample_file(root, entry, groups)
            pos = np.searchsorted(h, sh)
            found = (pos < n) & (h[np.minimum(pos, max(n - 1, 0))] == sh) if n else np.zeros(sh.shape[0], bool)
            multi = int(np.count_nonzero(d > 1))
            if int(found.sum()) != multi or not bool(np.all(d[pos[found]] > 1)):
                raise IndexFormatError(f"index file {root / entry['doc_sample_file']['path']}: doc samples do not "
                                       f"match {root / entry['path']} ({int(found.sum())} sampled rows, {multi} rows "
                                       "in more than one document)")
            lengths = np.diff(offsets)[found]
            if lengths.shape[0] and (lengths.max() > k or lengths.min() < 2):
                raise IndexFormatError(f"index file {root / entry['doc_sample_file']['path']}: sample lengths "
                                       f"outside 2..{k}")
            starts = offsets[:-1][found]
            rows = np.repeat(pos[found], lengths)
            within = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
            s[rows, within] = values[np.repeat(starts, lengths) + within]
    else:
        s = np.empty((n, 0), np.uint32)
    return Aggregated(h, np.ascontiguousarray(c, np.uint64), d, s)


def read_sample_file(root: Path, entry: dict[str, Any], row_groups: list[int] | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The doc-sample file of an n-gram file: (sorted hashes, int64 offsets, uint32 ordinals)."""
    side = entry.get("doc_sample_file")
    if side is None:
        raise IndexFormatError(f"index file {root / entry['path']}: its doc-sample file is not in the manifest")
    pf = open_parquet(root, side)
    try:
        table = pf.read_row_groups(row_groups) if row_groups is not None else pf.read()
        col = table.column("doc_sample")
        col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
        hashes = np.ascontiguousarray(table.column("hash").to_numpy(), np.uint64)
    except (pa.ArrowException, OSError, KeyError) as e:
        raise IndexFormatError(f"index file {root / side['path']} is corrupt: {e}") from e
    offsets = np.asarray(col.offsets, dtype=np.int64)
    values = np.asarray(col.values, dtype=np.uint32)[offsets[0]:offsets[-1]] if len(col) else np.empty(0, np.uint32)
    return hashes, offsets - offsets[0], values


def row_groups_for_buckets(entry: dict[str, Any], lo_bucket: int, hi_bucket: int) -> list[int]:
    """Row groups of a file that overlap buckets [lo_bucket, hi_bucket]."""
    return [i for i, (first, last, _rows) in enumerate(entry["row_groups"]) if last >= lo_bucket and first <= hi_bucket]
