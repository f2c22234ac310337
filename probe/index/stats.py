"""Index statistics (`probe index info`) and single-text lookups (`probe index lookup`).

Reading documents back from their shards (provenance) is :mod:`probe.index.provenance`.

Cheap numbers come from the snapshot and manifests; exact distinct counts and the
top-k most frequent n-grams across segments come from one merge of the segments'
sorted hashes, bucket range by bucket range (read-only, no lock).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from probe import kernels
from probe.index import format as fmt
from probe.index.provenance import (  # noqa: F401 - provenance lived here: keep the names importable
    DocumentMatch,
    document_match,
    match_document,
    ngram_text_in_document,
    prefetch_document_texts,
)
from probe.index.reader import IndexReader, open_index
from probe.index.segment import (
    ngram_file_bytes,
    read_ngram_row_groups,
    read_repeated_file,
    row_groups_for_buckets,
)
from probe.index.side_tables import side_table_info
from probe.text.tokenizers import Tokenizer


def _merged_counts(reader: IndexReader, entries: list[dict[str, Any]], top_k: int,
                   rows_per_chunk: int = 4_000_000) -> tuple[int, list[tuple[int, int, int]]]:
    """Exact distinct hashes across segments, and the ``top_k`` most frequent (hash, count, docs).

    One pass over the hashes, bucket range by bucket range. Each file is sorted and holds a
    hash once, so a range's slices from the segments are sorted runs: a stable sort merges
    them (timsort finds the runs), the distinct count is the number of value changes, and a
    hash's total count is the number of segments holding it plus what the repeated-rows files
    add (count - 1, docs - 1 per segment; documents never repeat across segments). Memory is
    one range of ~``rows_per_chunk`` rows whatever the index size. On the shared corpus index
    (40 M rows per n in 11 segments): 1.4-1.6 s per n for the distinct count against 4.5-5.3 s
    for DuckDB's ``count(DISTINCT hash)``, and `probe index info` with the top 10 in ~6 s and
    0.5 GiB instead of 24.5 s and 3.9 GiB with DuckDB (bench/index_info.py, bench/RESULTS.md).
    Ties in count are broken by the smaller hash, as ``ORDER BY count DESC, hash`` would.
    """
    if len(entries) <= 1 and top_k <= 0:
        return sum(e["rows"] for e in entries), []
    bits = reader.spec.bucket_bits
    buckets = 1 << bits
    rows = sum(e["rows"] for e in entries)
    step = max(1, min(buckets, buckets * rows_per_chunk // max(rows, 1)))
    distinct = 0
    best: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for lo in range(0, buckets, step):
        hi = min(buckets, lo + step) - 1
        first = np.uint64(lo << (64 - bits)) if bits else None
        end = np.uint64((hi + 1) << (64 - bits)) if bits and hi + 1 < buckets else None
        runs, extra = [], []
        for e in entries:
            groups = row_groups_for_buckets(e, lo, hi)
            if not groups:
                continue
            h = read_ngram_row_groups(reader.root, e, 0, groups, columns=["hash"]).hashes
            runs.append(h[_in_range(h, first, end)])
            if top_k > 0:
                rep = read_repeated_file(reader.root, e, 0, groups)
                keep = _in_range(rep.hashes, first, end)
                extra.append((rep.hashes[keep], rep.counts[keep] - 1, rep.docs[keep].astype(np.uint64) - 1))
        merged = np.concatenate(runs) if runs else np.empty(0, np.uint64)
        if len(runs) > 1:
            merged.sort(kind="stable")  # in place: the concatenation is already a copy
        if not merged.shape[0]:
            continue
        starts = np.flatnonzero(np.concatenate([[True], merged[1:] != merged[:-1]]))
        distinct += starts.shape[0]
        if top_k > 0:
            best.append(_top_of_range(merged, starts, extra, top_k))
    if not best:
        return distinct, []
    h, c, d = (np.concatenate(x) for x in zip(*best, strict=True))
    order = np.lexsort((h, -c.astype(np.int64)))[:top_k]
    return distinct, [(int(h[i]), int(c[i]), int(d[i])) for i in order]


def _in_range(h: np.ndarray, first: np.uint64 | None, end: np.uint64 | None) -> slice:
    """The rows of sorted ``h`` in [first, end): row groups may reach into the neighbouring ranges."""
    return slice(0 if first is None else int(np.searchsorted(h, first)),
                 h.shape[0] if end is None else int(np.searchsorted(h, end)))


def _top_of_range(merged: np.ndarray, starts: np.ndarray,
                  extra: list[tuple[np.ndarray, np.ndarray, np.ndarray]], k: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The k most frequent hashes of one range (ties: smaller hash first) as (hash, count, docs)."""
    uniq = merged[starts]
    segments = np.diff(np.append(starts, merged.shape[0])).astype(np.uint64)  # 1 per segment holding it
    counts, docs = segments.copy(), segments
    if extra:
        eh = np.concatenate([x[0] for x in extra])
        pos = np.searchsorted(uniq, eh)  # every repeated hash is in its table, so in ``uniq``
        np.add.at(counts, pos, np.concatenate([x[1] for x in extra]))
        np.add.at(docs, pos, np.concatenate([x[2] for x in extra]))
    # Most hashes occur once: when k of them occur more often, no single one can be in the top k.
    # (np.partition is no help here: on arrays of mostly equal values it took 0.66 s per 4 M rows.)
    pool = np.flatnonzero(counts > 1)
    if pool.shape[0] < k:  # the rest are ties at count 1: the smallest hashes (``uniq`` is sorted)
        pool = np.concatenate([pool, np.flatnonzero(counts == 1)[:k - pool.shape[0]]])
    sel = pool[np.argsort(-counts[pool].astype(np.int64), kind="stable")[:k]]  # stable: smaller hash first
    return uniq[sel], counts[sel], docs[sel]


def _top_ngrams(reader: IndexReader, view: str, n: int, rows: list[tuple[int, int, int]]) -> list[dict[str, Any]]:
    out = []
    for h, c, d in rows:
        key = _first_document(reader, view, n, h)
        text = ngram_text_in_document(reader, view, n, h, key) if key is not None else None
        out.append({"hash": str(h), "count": c, "docs": d, "text": text})
    return out


def _first_document(reader: IndexReader, view: str, n: int, ngram_hash: int) -> int | None:
    """Key of a document holding ``ngram_hash``: the row groups of its bucket only, segment by segment.

    A full lookup would load every segment's table to answer ten hashes (4.3 s on the shared index).
    An index built without doc samples (k = 0) stores no document per row: None.
    """
    if reader.spec.doc_sample_k == 0:
        return None
    bits = reader.spec.bucket_bits
    bucket = ngram_hash >> (64 - bits) if bits else 0
    target = np.uint64(ngram_hash)
    for si, entry in reader.ngram_entries(view, n):
        groups = row_groups_for_buckets(entry, bucket, bucket)
        if not groups:
            continue
        part = read_ngram_row_groups(reader.root, entry, 1, groups, columns=["hash", "doc_sample"])
        i = int(np.searchsorted(part.hashes, target))
        if i < part.hashes.shape[0] and part.hashes[i] == target:
            return (si << 32) | int(part.samples[i, 0])
    return None


def index_info(path: str | Path, snapshot: int | None = None, top_k: int = 10) -> dict[str, Any]:
    """Everything `probe index info` shows, as plain JSON-able data."""
    reader = open_index(path, snapshot=snapshot)
    snap = reader.snapshot
    totals = reader.totals()
    files = reader.referenced_files()
    bytes_on_disk = sum(f["bytes"] for f in files)
    skipped_reasons: dict[str, int] = {}
    shards = []
    for fp, rec in sorted(snap.shards.items(), key=lambda kv: kv[1]["uri"]):
        parts = rec.get("parts", {}).values()
        for p in parts:
            for reason, cnt in p.get("skipped_reasons", {}).items():
                skipped_reasons[reason] = skipped_reasons.get(reason, 0) + cnt
        shards.append({
            "uri": rec["uri"], "format": rec["format"], "bytes": rec["size"], "fingerprint": fp,
            "parts": f"{len(rec.get('parts', {}))}/{rec.get('parts_total')}",
            "docs": sum(p["docs"] for p in parts), "tokens": sum(p["tokens"] for p in parts),
            "skipped_records": sum(p.get("skipped", 0) for p in parts),
        })
    ngrams = []
    for view in reader.spec.views:
        for n in reader.spec.ns:
            entries = [e for _si, e in reader.ngram_entries(view, n)]
            distinct, top = _merged_counts(reader, entries, top_k)
            size = sum(ngram_file_bytes(e) for e in entries)
            ngrams.append({
                "view": view, "n": n,
                "ngrams": sum(e.get("count_sum", 0) for e in entries),
                "distinct": distinct,
                "rows": sum(e["rows"] for e in entries),
                "bytes": size,
                "bytes_per_distinct": round(size / distinct, 3) if distinct else None,
                "top": _top_ngrams(reader, view, n, top),
            })
    return {
        "index": str(path),
        "format_version": fmt.FORMAT_VERSION,
        "spec": reader.spec.to_dict(),
        "spec_fingerprint": reader.spec.fingerprint(),
        "snapshot": snap.number,
        "created": snap.created,
        "operation": snap.operation,
        "totals": {**totals, "skipped_reasons": skipped_reasons},
        "bytes_on_disk": bytes_on_disk,
        "bytes_per_token": round(bytes_on_disk / totals["tokens"], 3) if totals["tokens"] else None,
        "approximate": reader.spec.sample_mod > 1,
        "shards": shards,
        "ngrams": ngrams,
        "phases": snap.stats.get("phases", {}),
        "side_tables": side_table_info(reader),
    }


def lookup_text(path: str | Path, text: str, n: int | None = None, view: str = "surface") -> dict[str, Any]:
    """Each n-gram of ``text`` with its count and document frequency in the index."""
    reader = open_index(path)
    n = n or min(reader.spec.ns)
    tok = Tokenizer(reader.spec)
    tb = tok.tokenize([text], view, with_offsets=True)
    h, _de, pos = kernels.ngram_hashes(tb.token_hashes, tb.doc_token_ends, n, reader.spec.sample_mod)
    res = reader.lookup(view, n, h)
    rows = []
    for i in range(h.shape[0]):
        p = int(pos[i])
        rows.append({
            "position": p,
            "ngram": tb.texts[0][int(tb.token_starts[p]):int(tb.token_ends[p + n - 1])],
            "hash": str(int(h[i])),
            "count": int(res.counts[i]),
            "docs": int(res.docs[i]),
        })
    return {"index": str(path), "snapshot": reader.snapshot.number, "view": view, "n": n,
            "tokens": tb.num_tokens, "ngrams": rows,
            "found": sum(1 for r in rows if r["count"]), "approximate": reader.spec.sample_mod > 1}
