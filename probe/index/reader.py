"""Read an index: pin one snapshot (no lock), look up hashes in bulk, resolve documents.

A reader reads ``snapshots/N.json`` once and from then on touches only files that
snapshot references; those are immutable, so concurrent builders never disturb it.
Every file is checked against its manifest size, and Parquet page checksums are
verified on read.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from probe.config import TextSpec
from probe.errors import IndexFormatError, IndexMismatchError, IndexMissingError
from probe.index import format as fmt
from probe.index.segment import (
    EMPTY32,
    open_parquet,
    read_manifest,
    read_ngram_row_groups,
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


class IndexReader:
    """A pinned, read-only view of one snapshot of an index."""

    def __init__(self, root: Path, spec: TextSpec, snapshot: fmt.Snapshot) -> None:
        self.root = root
        self.spec = spec
        self.snapshot = snapshot

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

    def lookup(self, view: str, n: int, hashes: np.ndarray, with_samples: bool = True) -> LookupResult:
        """Counts, doc frequencies and doc samples for every query hash, in query order.

        Queries are deduplicated and sorted once; each segment file is read bucket
        range by bucket range (row groups), binary-searched with numpy, and only the
        matched rows' counts and samples are materialized.
        """
        hashes = np.asarray(hashes, dtype=np.uint64)
        uniq, inverse = np.unique(hashes, return_inverse=True)
        q = uniq.shape[0]
        counts = np.zeros(q, np.uint64)
        docs = np.zeros(q, np.uint64)
        complete = np.ones(q, bool)
        k = self.spec.doc_sample_k
        sample_parts: list[tuple[np.ndarray, np.ndarray]] = []  # (query idx, doc key)
        bits = self.spec.bucket_bits
        shift = np.uint64(64 - bits) if bits else None
        qb = (uniq >> shift).astype(np.int64) if shift is not None else np.zeros(q, np.int64)
        for si, entry in self.ngram_entries(view, n):
            if q == 0:
                break
            groups = entry["row_groups"]
            # read row groups in batches of ~16 so memory stays bounded by a bucket range
            for g0 in range(0, len(groups), 16):
                sel = list(range(g0, min(len(groups), g0 + 16)))
                lo_b, hi_b = groups[sel[0]][0], groups[sel[-1]][1]
                qlo, qhi = np.searchsorted(qb, lo_b, "left"), np.searchsorted(qb, hi_b, "right")
                if qhi <= qlo:
                    continue
                part = read_ngram_row_groups(self.root, entry, k, sel, columns=["hash"])
                table_h = part.hashes
                qs = uniq[qlo:qhi]
                pos = np.searchsorted(table_h, qs)
                pos_c = np.minimum(pos, max(0, table_h.shape[0] - 1))
                hit = (pos < table_h.shape[0]) & (table_h[pos_c] == qs) if table_h.shape[0] else np.zeros(len(qs), bool)
                if not hit.any():
                    continue
                cols = ["count", "docs"] + (["doc_sample"] if (k > 0 and with_samples) else [])
                full = read_ngram_row_groups(self.root, entry, k, sel, columns=["hash", *cols])
                rows = pos[hit]
                qi = np.nonzero(hit)[0] + qlo
                counts[qi] += full.counts[rows]
                d = full.docs[rows]
                docs[qi] += d
                if k > 0 and with_samples:
                    complete[qi] &= d <= k
                    s = full.samples[rows]
                    valid = s != EMPTY32
                    rr, cc = np.nonzero(valid)
                    keys = (np.uint64(si) << np.uint64(32)) | s[rr, cc].astype(np.uint64)
                    sample_parts.append((qi[rr], keys))
        if k == 0 or not with_samples:
            complete[:] = counts == 0
        if sample_parts:
            qidx = np.concatenate([p[0] for p in sample_parts])
            keys = np.concatenate([p[1] for p in sample_parts])
        else:
            qidx = np.empty(0, np.int64)
            keys = np.empty(0, np.uint64)
        # expand from unique queries back to the caller's order
        order = np.lexsort((keys, qidx))
        qidx, keys = qidx[order], keys[order]
        per_u = np.bincount(qidx, minlength=q).astype(np.int64)
        u_off = np.zeros(q + 1, np.int64)
        np.cumsum(per_u, out=u_off[1:])
        per_q = per_u[inverse]
        q_off = np.zeros(hashes.shape[0] + 1, np.int64)
        np.cumsum(per_q, out=q_off[1:])
        if keys.shape[0]:
            src = np.repeat(u_off[:-1][inverse], per_q) + (np.arange(q_off[-1]) - np.repeat(q_off[:-1], per_q))
            out_keys = keys[src]
        else:
            out_keys = keys
        return LookupResult(counts[inverse], docs[inverse], q_off, out_keys, complete[inverse])

    def documents(self, doc_keys: np.ndarray) -> list[dict[str, Any]]:
        """Provenance of documents by key: shard uri, row, id, source, tokens."""
        out = []
        tables: dict[int, pa.Table] = {}
        for key in np.asarray(doc_keys, dtype=np.uint64).tolist():
            si, ordinal = key >> 32, key & 0xFFFFFFFF
            if si not in tables:
                tables[si] = open_parquet(self.root, self.manifests[si]["docs_file"]).read()
            t = tables[si]
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
        files = []
        for man in self.manifests:
            files.extend(man["files"])
            files.append(man["docs_file"])
        return files


def open_index(path: str | Path, snapshot: int | None = None, spec: TextSpec | None = None) -> IndexReader:
    """Pin the latest (or the given) snapshot of the index at ``path``.

    With ``spec``, refuse an index whose text spec differs (IndexMismatchError).
    """
    root = Path(path)
    index_spec = fmt.read_spec(root)
    if spec is not None and spec != index_spec:
        lines = "\n  ".join(index_spec.diff(spec))
        raise IndexMismatchError(f"index {root} has a different text spec (index != requested):\n  {lines}")
    snap = fmt.read_snapshot(root, snapshot) if snapshot is not None else fmt.latest_snapshot(root)
    if snap is None:
        raise IndexMissingError(f"index {root} has no committed snapshot yet (no shard finished indexing)")
    if snap.spec_fingerprint and snap.spec_fingerprint != index_spec.fingerprint():
        raise IndexFormatError(f"{root}: snapshot {snap.number} belongs to a different spec than probe-index.json")
    return IndexReader(root, index_spec, snap)
