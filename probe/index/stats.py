"""Index statistics (`probe index info`) and single-text lookups (`probe index lookup`).

Cheap numbers come from the snapshot and manifests; exact distinct counts across
several segments and the top-k most frequent n-grams are computed with DuckDB over
the referenced Parquet files (read-only, no catalog, no lock).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from probe import kernels
from probe.errors import IndexFormatError
from probe.index import format as fmt
from probe.index.reader import IndexReader, open_index
from probe.index.segment import ngram_file_bytes, open_parquet
from probe.sources.corpus import ReaderOptions, ShardRef, read_document
from probe.text.tokenizers import Tokenizer


def _duck_files(reader: IndexReader, entries: list[dict[str, Any]]) -> list[str]:
    # DuckDB neither checks sizes against the manifest nor verifies page checksums: check
    # each file's path, size and footer first, so damage is an IndexFormatError naming it.
    for e in entries:
        open_parquet(reader.root, e)
    return [str(reader.root / e["path"]) for e in entries]


def _duck_query(reader: IndexReader, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    import duckdb

    from probe._duck import connect

    try:
        return connect().execute(sql, params).fetchall()
    except duckdb.Error as e:
        raise IndexFormatError(f"index {reader.root}: cannot read n-gram files: {e}") from e


def _distinct(reader: IndexReader, entries: list[dict[str, Any]]) -> int:
    if len(entries) <= 1:
        return sum(e["rows"] for e in entries)
    return int(_duck_query(reader, "SELECT count(DISTINCT hash) FROM read_parquet(?)",
                           [_duck_files(reader, entries)])[0][0])


def _top_ngrams(reader: IndexReader, view: str, n: int, entries: list[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    if k <= 0 or not entries:
        return []
    # every row of an n-gram table counts (1, 1); its repeated-rows file adds the rest
    rows = _duck_query(
        reader,
        "SELECT hash, sum(c)::UBIGINT AS c, sum(d)::UBIGINT AS d FROM ("
        " SELECT hash, 1 AS c, 1 AS d FROM read_parquet(?)"
        " UNION ALL SELECT hash, count - 1 AS c, docs - 1 AS d FROM read_parquet(?)"
        ") GROUP BY hash ORDER BY c DESC, hash LIMIT ?",
        [_duck_files(reader, entries), _duck_files(reader, [e["repeated_file"] for e in entries]), k],
    )
    if not rows:
        return []
    hashes = np.array([r[0] for r in rows], dtype=np.uint64)
    found = reader.lookup(view, n, hashes)
    out = []
    for i, (h, c, d) in enumerate(rows):
        sample = found.sample(i)
        text = ngram_text_in_document(reader, view, n, int(h), int(sample[0])) if sample.shape[0] else None
        out.append({"hash": str(h), "count": int(c), "docs": int(d), "text": text})
    return out


@lru_cache(maxsize=256)
def _read_doc(uri: str, fmt_name: str, row: int) -> str:
    return read_document(ShardRef(uri=uri, format=fmt_name, size=0, mtime_ns=0), row, ReaderOptions())


def prefetch_document_texts(reader: IndexReader, doc_keys: list[int]) -> None:
    """Read several documents' texts on threads into ``_read_doc``'s cache (best effort)."""
    from concurrent.futures import ThreadPoolExecutor

    if len(doc_keys) < 2:
        return  # nothing to overlap
    try:
        docs = reader.documents(np.unique(np.array(doc_keys, np.uint64)))
    except Exception:  # noqa: BLE001 - provenance is best effort; document_match reports per document
        return
    refs = sorted({(d["uri"], d["format"], int(d["row"])) for d in docs if d.get("uri")})
    with ThreadPoolExecutor(max(1, min(reader.threads, len(refs)))) as pool:
        for future in [pool.submit(_read_doc, *ref) for ref in refs]:
            try:
                future.result()
            except Exception:  # noqa: BLE001, S112 - the same read fails again in document_match, which handles it
                continue


def document_match(reader: IndexReader, doc_key: int, ngram_hash: int, n: int, span_tokens: int,
                   view: str = "surface", context_chars: int = 160) -> dict[str, Any] | None:
    """Locate an n-gram in a corpus document read back from its shard.

    Returns the document's provenance (uri, row, id, source), the matched span's
    text with ``context_chars`` around it (``snippet``), and the span's normalized
    tokens (``match_tokens``) for exact verification. None when the shard cannot be
    read (moved or deleted); ``{"collision": True, ...}`` when the n-gram is not in the
    document (a 64-bit hash collision).
    """
    try:
        doc = reader.documents(np.array([doc_key], np.uint64))[0]
        text = _read_doc(doc["uri"], doc["format"], int(doc["row"]))
    except Exception:  # noqa: BLE001 - provenance is best effort: the shard may have moved
        return None
    tok = Tokenizer(reader.spec)
    tb = tok.tokenize([text], view, with_offsets=True)
    h, _de, pos = kernels.ngram_hashes(tb.token_hashes, tb.doc_token_ends, n, 1)
    hit = np.nonzero(h == np.uint64(ngram_hash))[0]
    if not hit.shape[0]:
        # the index says this document holds the n-gram, its text says no: a hash collision
        return {"uri": doc["uri"], "row": int(doc["row"]), "id": doc.get("id"), "source": doc.get("source"),
                "collision": True}
    first = int(pos[hit[0]])
    last = min(tb.num_tokens - 1, first + max(span_tokens, n) - 1)
    norm = tb.texts[0]
    a, b = int(tb.token_starts[first]), int(tb.token_ends[last])
    starts, ends = tb.token_starts[first:last + 1].tolist(), tb.token_ends[first:last + 1].tolist()
    same_length = len(norm) == len(text)
    shown = text if same_length else norm  # offsets index the normalized text
    lo, hi = max(0, a - context_chars), min(len(shown), b + context_chars)
    snippet = ("…" if lo else "") + shown[lo:a] + "[[" + shown[a:b] + "]]" + shown[b:hi] + ("…" if hi < len(shown) else "")
    return {"uri": doc["uri"], "row": int(doc["row"]), "id": doc.get("id"), "source": doc.get("source"),
            "snippet": snippet, "text": shown[a:b],
            "match_tokens": [norm[x:y] for x, y in zip(starts, ends, strict=True)]}


def ngram_text_in_document(reader: IndexReader, view: str, n: int, ngram_hash: int, doc_key: int) -> str | None:
    """The text of one of a document's n-grams (for `index info`'s top-k table)."""
    found = document_match(reader, doc_key, ngram_hash, n, n, view=view, context_chars=0)
    return found["text"] if found and not found.get("collision") else None


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
            distinct = _distinct(reader, entries)
            size = sum(ngram_file_bytes(e) for e in entries)
            ngrams.append({
                "view": view, "n": n,
                "ngrams": sum(e.get("count_sum", 0) for e in entries),
                "distinct": distinct,
                "rows": sum(e["rows"] for e in entries),
                "bytes": size,
                "bytes_per_distinct": round(size / distinct, 3) if distinct else None,
                "top": _top_ngrams(reader, view, n, entries, top_k),
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
