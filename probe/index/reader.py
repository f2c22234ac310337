"""Read an index: pin one snapshot (no lock), look up hashes in bulk, resolve documents.

A reader reads ``snapshots/N.json`` once and from then on touches only files that
snapshot references; those are immutable, so concurrent builders never disturb it.
Every file is checked against its manifest size, and Parquet page checksums are
verified on read.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from probe import kernels
from probe.config import TextSpec
from probe.errors import IndexFormatError, IndexMismatchError, IndexMissingError
from probe.index import format as fmt
from probe.index.segment import (
    Aggregated,
    Repeated,
    manifest_files,
    open_parquet,
    read_manifest,
    read_ngram_row_groups,
    read_repeated_file,
)


@dataclass
class LookupResult:
    """Per query hash: total count, distinct documents, and a document sample.

    ``doc_keys`` (ragged via ``sample_offsets``) are ``segment_index << 32 | ordinal``;
    ``sample_complete[i]`` says the sample holds *every* document of query i (true
    when no segment has more than ``doc_sample_k`` documents for it), so same-document
    checks on it are exact rather than estimates.
    """

    counts: np.ndarray  # uint64
    docs: np.ndarray  # uint64
    sample_offsets: np.ndarray  # int64, len q+1
    doc_keys: np.ndarray  # uint64
    sample_complete: np.ndarray  # bool

    @property
    def found(self) -> np.ndarray:
        return self.counts > 0

    def sample(self, i: int) -> np.ndarray:
        return self.doc_keys[self.sample_offsets[i]:self.sample_offsets[i + 1]]


@dataclass
class _LoadedTable:
    """One n-gram file in memory: sorted hashes, its repeated rows, and (when loaded) ``doc0`` per row.

    A row absent from ``repeated`` has count 1, docs 1 and the doc sample ``[doc0]``.
    """

    hashes: np.ndarray
    repeated: Repeated
    doc0: np.ndarray | None = None

    @property
    def nbytes(self) -> int:
        return self.hashes.nbytes + self.repeated.nbytes + (0 if self.doc0 is None else self.doc0.nbytes)

    @classmethod
    def from_aggregated(cls, agg: Aggregated, with_doc0: bool) -> _LoadedTable:
        """From fully decoded rows (the streaming path)."""
        doc0 = np.ascontiguousarray(agg.samples[:, 0]) if with_doc0 and agg.samples.shape[1] else None
        return cls(agg.hashes, Repeated.from_aggregated(agg), doc0)


def _table_bytes(entry: dict[str, Any], with_doc0: bool) -> int:
    """Memory one loaded n-gram file takes (the budget rule of prefetch and lookup)."""
    return entry["rows"] * (12 if with_doc0 else 8) + entry["repeated_file"]["rows"] * 40


def _column(table: pa.Table, name: str) -> np.ndarray:
    col = table.column(name)
    return np.ascontiguousarray(col.combine_chunks().to_numpy() if col.num_chunks != 1 else col.chunk(0).to_numpy())


def _expand(q: int, inverse: np.ndarray, counts: np.ndarray, docs: np.ndarray, complete: np.ndarray,
            sample_parts: list, n_queries: int) -> LookupResult:
    """Map results of the unique sorted queries back to the caller's order."""
    if not sample_parts:
        return LookupResult(counts[inverse], docs[inverse], np.zeros(n_queries + 1, np.int64),
                            np.empty(0, np.uint64), complete[inverse])
    qidx = np.concatenate([p[0] for p in sample_parts])
    keys = np.concatenate([p[1] for p in sample_parts])
    order = np.lexsort((keys, qidx))
    qidx, keys = qidx[order], keys[order]
    per_u = np.bincount(qidx, minlength=q).astype(np.int64)
    u_off = np.zeros(q + 1, np.int64)
    np.cumsum(per_u, out=u_off[1:])
    per_q = per_u[inverse]
    q_off = np.zeros(n_queries + 1, np.int64)
    np.cumsum(per_q, out=q_off[1:])
    total = int(q_off[-1])
    src = np.repeat(u_off[:-1][inverse] - q_off[:-1], per_q) + np.arange(total)
    return LookupResult(counts[inverse], docs[inverse], q_off, keys[src], complete[inverse])


class IndexReader:
    """A pinned, read-only view of one snapshot of an index.

    ``memory_bytes`` bounds how much of the index it keeps loaded between lookups;
    files beyond it are streamed bucket range by bucket range on every lookup.

    Loading is the fixed cost of a scan (decoding every n-gram file once), so
    :meth:`prefetch` starts it on background threads: Parquet decoding and the
    compiled searches release the GIL, so they overlap the scan's own Python work
    (reading and tokenizing the dataset) on a second core.
    """

    def __init__(self, root: Path, spec: TextSpec, snapshot: fmt.Snapshot, memory_bytes: int = 4 << 30,
                 threads: int | None = None) -> None:
        self.root = root
        self.spec = spec
        self.snapshot = snapshot
        self.memory_bytes = memory_bytes
        self.threads = max(1, min(4, threads or os.cpu_count() or 1))
        self._tables: dict[str, _LoadedTable] = {}
        self._cached_bytes = 0
        # background loads by entry path: (future, bytes reserved for it). Only the calling
        # thread touches this dict and _tables; loader threads only read files and return arrays.
        self._loading: dict[str, tuple[Future, int]] = {}
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._docs_tables: dict[int, pa.Table] = {}  # docs.parquet per segment, read once

    def _pool(self, name: str) -> ThreadPoolExecutor:
        pool = self._pools.get(name)
        if pool is None:
            pool = self._pools[name] = ThreadPoolExecutor(self.threads, thread_name_prefix=f"probe-{name}")
        return pool

    def close(self) -> None:
        """Stop background loading (queued loads are cancelled); loaded tables stay usable."""
        for pool in self._pools.values():
            pool.shutdown(wait=False, cancel_futures=True)
        self._pools.clear()
        self._loading.clear()

    def prefetch(self, wanted: list[tuple[str, int, bool]]) -> None:
        """Start loading the n-gram files of each (view, n, with doc samples) in the background.

        Files are queued in the order given, within the memory budget (the same rule
        :meth:`lookup` applies); a later lookup waits only for the files it needs.
        Files over budget are left to the streaming path.
        """
        reserved = self._cached_bytes + self._reserved()
        for view, n, samples in wanted:
            want = samples and self.spec.doc_sample_k > 0
            for _si, entry in self.ngram_entries(view, n):
                key = entry["path"]
                if key in self._loading or key in self._tables:  # a lookup adds missing samples itself
                    continue
                need = _table_bytes(entry, want)
                if reserved + need > self.memory_bytes:
                    continue
                reserved += need
                self._loading[key] = (self._pool("load").submit(self._read_table, entry, want), need)

    def _reserved(self) -> int:
        """Bytes promised to background loads not yet taken over by a lookup."""
        return sum(need for _future, need in self._loading.values())

    def loading(self) -> bool:
        """Whether background loads started by :meth:`prefetch` are still running."""
        return any(not future.done() for future, _need in self._loading.values())

    @cached_property
    def manifests(self) -> list[dict[str, Any]]:
        return [read_manifest(self.root, s["manifest"], s.get("manifest_xxh3")) for s in self.snapshot.segments]

    def ngram_entries(self, view: str, n: int) -> list[tuple[int, dict[str, Any]]]:
        """(segment index, file entry) of every segment's file for (view, n)."""
        if view not in self.spec.views:
            raise IndexMismatchError(f"index {self.root} has no {view!r} view (views: {', '.join(self.spec.views)})")
        if n not in self.spec.ns:
            raise IndexMismatchError(f"index {self.root} has no n={n} (n values: {list(self.spec.ns)})")
        out = []
        for si, man in enumerate(self.manifests):
            for entry in man["files"]:
                if entry["view"] == view and entry["n"] == n:
                    out.append((si, entry))
        return out

    def _load_table(self, entry: dict[str, Any], want_samples: bool) -> _LoadedTable | None:
        """Load one n-gram file (cached) when it fits the memory budget, else None.

        ``doc0`` is loaded only when a lookup wants samples (the scan asks for them
        at one n only).
        """
        key = entry["path"]
        if key in self._loading:
            loaded = self._loading.pop(key)[0].result()  # re-raises a loader's IndexFormatError here
            self._tables[key] = loaded
            self._cached_bytes += loaded.nbytes
        loaded = self._tables.get(key)
        if loaded is None:
            if self._cached_bytes + self._reserved() + _table_bytes(entry, False) > self.memory_bytes:
                return None
            loaded = self._read_table(entry, False)
            self._tables[key] = loaded
            self._cached_bytes += loaded.nbytes
        if want_samples and loaded.doc0 is None and self.spec.doc_sample_k:
            if self._cached_bytes + self._reserved() + entry["rows"] * 4 > self.memory_bytes:
                return None
            loaded.doc0 = _column(self._read(entry, ["doc0"]), "doc0")
            self._cached_bytes += loaded.doc0.nbytes
        return loaded

    def _read_table(self, entry: dict[str, Any], with_doc0: bool) -> _LoadedTable:
        """Decode one n-gram file into arrays (runs on a loader thread; touches no reader state)."""
        with_doc0 = with_doc0 and self.spec.doc_sample_k > 0
        table = self._read(entry, ["hash", "doc0"] if with_doc0 else ["hash"])
        loaded = _LoadedTable(_column(table, "hash"), read_repeated_file(self.root, entry, self.spec.doc_sample_k),
                              _column(table, "doc0") if with_doc0 else None)
        del table
        return loaded

    def _read(self, entry: dict[str, Any], columns: list[str]) -> pa.Table:
        pf = open_parquet(self.root, entry)
        try:
            return pf.read(columns=columns)
        except (pa.ArrowException, OSError, KeyError) as e:
            raise IndexFormatError(f"index file {self.root / entry['path']} is corrupt: {e}") from e

    def lookup(self, view: str, n: int, hashes: np.ndarray, with_samples: bool = True) -> LookupResult:
        """Counts, doc frequencies and doc samples for every query hash, in query order.

        Queries are deduplicated and sorted once. Each segment file is loaded whole
        into memory the first time (and reused by later batches) when it fits the
        reader's memory budget, else streamed bucket range by bucket range (row
        groups); either way a sorted binary search (numpy) finds the rows.
        """
        hashes = np.asarray(hashes, dtype=np.uint64)
        uniq, inverse = np.unique(hashes, return_inverse=True)
        q = uniq.shape[0]
        counts = np.zeros(q, np.uint64)
        docs = np.zeros(q, np.uint64)
        complete = np.ones(q, bool)
        k = self.spec.doc_sample_k
        want = k > 0 and with_samples
        sample_parts: list[tuple[np.ndarray, np.ndarray]] = []  # (query idx, doc key)
        entries = self.ngram_entries(view, n)  # validates view and n even when there is nothing to look up
        if not q:
            entries = []
        # searches of loaded tables run on worker threads (the kernel releases the GIL) while
        # this thread waits for the next file or streams the ones over budget
        searches: list[tuple[int, _LoadedTable, Future]] = []
        for si, entry in entries:
            table = self._load_table(entry, want)
            if table is None:
                self._lookup_streaming(si, entry, uniq, counts, docs, complete, sample_parts, want)
            elif table.hashes.shape[0]:
                searches.append((si, table, self._pool("search").submit(kernels.find_sorted, table.hashes, uniq)))
        for si, table, future in searches:
            self._apply_hits(si, table, future.result(), 0, counts, docs, complete, sample_parts, want)
        if not want:
            complete[:] = counts == 0
        return _expand(uniq.shape[0], inverse, counts, docs, complete, sample_parts, hashes.shape[0])

    def _probe_table(self, si: int, table: _LoadedTable, qs: np.ndarray, qlo: int, counts: np.ndarray,
                     docs: np.ndarray, complete: np.ndarray, sample_parts: list, want: bool) -> None:
        if table.hashes.shape[0]:
            pos = kernels.find_sorted(table.hashes, qs)  # qs: sorted unique queries
            self._apply_hits(si, table, pos, qlo, counts, docs, complete, sample_parts, want)

    def _apply_hits(self, si: int, table: _LoadedTable, pos: np.ndarray, qlo: int, counts: np.ndarray,
                    docs: np.ndarray, complete: np.ndarray, sample_parts: list, want: bool) -> None:
        hit = pos >= 0
        if not hit.any():
            return
        rows = pos[hit]
        qi = np.nonzero(hit)[0] + qlo
        rep = table.repeated
        # hits are few (a scan finds ~1 in 500 queries): resolve them against the small repeated table
        hh = table.hashes[rows]
        at = np.searchsorted(rep.hashes, hh)
        inrep = at < rep.hashes.shape[0]
        inrep[inrep] = rep.hashes[at[inrep]] == hh[inrep]
        at = at[inrep]
        c = np.ones(rows.shape[0], np.uint64)
        d = np.ones(rows.shape[0], np.uint64)
        c[inrep] = rep.counts[at]
        d[inrep] = rep.docs[at]
        counts[qi] += c
        docs[qi] += d
        if not (want and table.doc0 is not None):
            return
        k = self.spec.doc_sample_k
        complete[qi] &= d <= k
        seg = np.uint64(si) << np.uint64(32)
        multi = inrep & (d > 1) if k > 1 else np.zeros(rows.shape[0], bool)
        single = ~multi
        sample_parts.append((qi[single], seg | table.doc0[rows[single]].astype(np.uint64)))
        if multi.any():
            at_multi = at[d[inrep] > 1]
            starts = rep.offsets[at_multi]
            lengths = rep.offsets[at_multi + 1] - starts
            total = int(lengths.sum())
            run_starts = np.cumsum(lengths) - lengths
            idx = np.repeat(starts - run_starts, lengths) + np.arange(total)
            sample_parts.append((np.repeat(qi[multi], lengths), seg | rep.values[idx].astype(np.uint64)))

    def _lookup_streaming(self, si: int, entry: dict[str, Any], uniq: np.ndarray, counts: np.ndarray,
                          docs: np.ndarray, complete: np.ndarray, sample_parts: list, want: bool) -> None:
        """Bounded-memory path: read row groups 16 at a time (a bucket range)."""
        k = self.spec.doc_sample_k
        bits = self.spec.bucket_bits
        qb = (uniq >> np.uint64(64 - bits)).astype(np.int64) if bits else np.zeros(uniq.shape[0], np.int64)
        groups = entry["row_groups"]
        for g0 in range(0, len(groups), 16):
            sel = list(range(g0, min(len(groups), g0 + 16)))
            lo_b, hi_b = groups[sel[0]][0], groups[sel[-1]][1]
            qlo, qhi = int(np.searchsorted(qb, lo_b, "left")), int(np.searchsorted(qb, hi_b, "right"))
            if qhi <= qlo:
                continue
            cols = ["hash", "count", "docs"] + (["doc_sample"] if want else [])
            part = read_ngram_row_groups(self.root, entry, k, sel, columns=cols)
            table = _LoadedTable.from_aggregated(part, want)
            self._probe_table(si, table, uniq[qlo:qhi], qlo, counts, docs, complete, sample_parts, want)

    def documents(self, doc_keys: np.ndarray) -> list[dict[str, Any]]:
        """Provenance of documents by key: shard uri, row, id, source, tokens."""
        out = []
        for key in np.asarray(doc_keys, dtype=np.uint64).tolist():
            si, ordinal = key >> 32, key & 0xFFFFFFFF
            t = self._docs_tables.get(si)
            if t is None:  # a scan resolves documents batch after batch: read each docs table once
                t = self._docs_tables[si] = open_parquet(self.root, self.manifests[si]["docs_file"]).read()
            if ordinal >= t.num_rows:
                raise IndexFormatError(f"{self.root}: document ordinal {ordinal} out of range in segment {si}")
            row = {name: t.column(name)[ordinal].as_py() for name in t.column_names}
            shard = self.snapshot.shards.get(row["shard"], {})
            row["uri"] = shard.get("uri")
            row["format"] = shard.get("format")
            row["doc_key"] = key
            out.append(row)
        return out

    # ------------------------------------------------------------------ stats
    def totals(self) -> dict[str, Any]:
        shards = self.snapshot.shards
        parts = [p for rec in shards.values() for p in rec.get("parts", {}).values()]
        return {
            "shards": len(shards),
            "shards_complete": sum(1 for r in shards.values() if len(r.get("parts", {})) == r.get("parts_total")),
            "parts": len(parts),
            "docs": sum(p["docs"] for p in parts),
            "tokens": sum(p["tokens"] for p in parts),
            "bytes_read": sum(p.get("bytes", 0) for p in parts),
            "records": sum(p.get("records", 0) for p in parts),
            "skipped_records": sum(p.get("skipped", 0) for p in parts),
            "segments": len(self.snapshot.segments),
        }

    def referenced_files(self) -> list[dict[str, Any]]:
        return [f for man in self.manifests for f in manifest_files(man)]


def open_index(path: str | Path, snapshot: int | None = None, spec: TextSpec | None = None) -> IndexReader:
    """Pin the latest (or the given) snapshot of the index at ``path``.

    With ``spec``, refuse an index whose text spec differs (IndexMismatchError).
    """
    root = fmt.local_index_root(path)
    index_spec = fmt.read_spec(root)
    if spec is not None and spec != index_spec:
        lines = "\n  ".join(index_spec.diff(spec))
        raise IndexMismatchError(f"index {root} has a different text spec (index != requested):\n  {lines}")
    snap = fmt.read_snapshot(root, snapshot) if snapshot is not None else fmt.latest_snapshot(root)
    if snap is None:
        raise IndexMissingError(f"index {root} has no committed snapshot yet (no shard finished indexing)")
    if snap.spec_fingerprint and snap.spec_fingerprint != index_spec.fingerprint():
        raise IndexFormatError(f"{root}: snapshot {snap.number} belongs to a different spec than probe-index.json")
    # the measures that read side tables register themselves on import (probe.measures loads only ngram)
    from probe.index.side_tables import load_builtin_side_tables

    load_builtin_side_tables()
    return IndexReader(root, index_spec, snap)
