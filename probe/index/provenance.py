"""Provenance: read an indexed document back from its corpus shard and locate an n-gram in it.

The index's docs table knows every document's shard, row, id and source; the text
itself stays in the shard. So a match's snippet and its exact verification need the
shard to still be where it was indexed, unchanged. When it is not (moved, deleted,
unreadable), :func:`match_document` still returns what the docs table knows and says
*why* the snippet and the verification are unavailable, so a caller never skips
provenance silently.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from typing import Any

import numpy as np

from probe import kernels
from probe.errors import InputError
from probe.index.reader import IndexReader
from probe.sources.corpus import ReaderOptions, ShardRef, read_document
from probe.text.tokenizers import Tokenizer


@dataclass(frozen=True)
class DocumentMatch:
    """A corpus document that holds a matched n-gram, as far as it can be known.

    ``shard`` … ``source`` come from the index (always present when the index records
    them). ``snippet`` (the span in ``[[…]]`` with context), ``text`` (the span) and
    ``match_tokens`` (its normalized tokens, for exact verification) come from the
    shard: when it cannot be read they are None and ``snippet_unavailable`` says why.
    ``collision`` is True when the document's text does not hold the n-gram at all
    (a 64-bit hash collision): then there is no snippet either, and nothing to verify.
    """

    doc_key: int
    shard: str | None  # the shard's content fingerprint (a key of the snapshot's shards)
    uri: str | None
    format: str | None
    row: int | None
    id: str | None
    source: str | None
    snippet: str | None = None
    text: str | None = None
    match_tokens: list[str] | None = None
    collision: bool = False
    snippet_unavailable: str | None = None

    @property
    def verifiable(self) -> bool:
        """True when the span's tokens were read, so the match can be verified exactly."""
        return self.match_tokens is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
    except Exception:  # noqa: BLE001 - only a warm-up: match_document reads (and reports) each document itself
        return
    refs = sorted({(d["uri"], d["format"], int(d["row"])) for d in docs if d.get("uri")})
    with ThreadPoolExecutor(max(1, min(reader.threads, len(refs)))) as pool:
        for future in [pool.submit(_read_doc, *ref) for ref in refs]:
            try:
                future.result()
            except Exception:  # noqa: BLE001, S112 - the same read fails again in match_document, which reports it
                continue


def _unreadable_reason(uri: str, row: int, error: BaseException) -> str:
    if isinstance(error, FileNotFoundError) or ("://" not in uri and not os.path.exists(uri)):
        return f"shard {uri} not found (moved or deleted since it was indexed)"
    detail = error.reason if isinstance(error, InputError) else (getattr(error, "strerror", None) or str(error))
    return f"cannot read row {row} of shard {uri}: {detail}"


def match_document(reader: IndexReader, doc_key: int, ngram_hash: int, n: int, span_tokens: int,
                   view: str = "surface", context_chars: int = 160) -> DocumentMatch:
    """Locate an n-gram in a corpus document read back from its shard.

    Always returns the index's record of the document; the snippet and the tokens for
    verification only when the shard could be read (else ``snippet_unavailable``).
    An unreadable docs table is an index error (IndexFormatError), never a silent skip.
    """
    doc = reader.documents(np.array([doc_key], np.uint64))[0]
    known = DocumentMatch(doc_key=int(doc_key), shard=doc.get("shard"), uri=doc.get("uri"), format=doc.get("format"),
                          row=int(doc["row"]), id=doc.get("id"), source=doc.get("source"))
    if known.uri is None or known.format is None:
        return replace(known, snippet_unavailable=f"the index records no shard for document {doc_key}")
    try:
        text = _read_doc(known.uri, known.format, known.row)
    except Exception as e:  # noqa: BLE001 - whatever the shard's failure, the caller gets the reason
        return replace(known, snippet_unavailable=_unreadable_reason(known.uri, known.row, e))
    tok = Tokenizer(reader.spec)
    tb = tok.tokenize([text], view, with_offsets=True)
    h, _de, pos = kernels.ngram_hashes(tb.token_hashes, tb.doc_token_ends, n, 1)
    hit = np.nonzero(h == np.uint64(ngram_hash))[0]
    if not hit.shape[0]:
        # the index says this document holds the n-gram, its text says no: a hash collision
        return replace(known, collision=True)
    first = int(pos[hit[0]])
    last = min(tb.num_tokens - 1, first + max(span_tokens, n) - 1)
    norm = tb.texts[0]
    a, b = int(tb.token_starts[first]), int(tb.token_ends[last])
    starts, ends = tb.token_starts[first:last + 1].tolist(), tb.token_ends[first:last + 1].tolist()
    same_length = len(norm) == len(text)
    shown = text if same_length else norm  # offsets index the normalized text
    lo, hi = max(0, a - context_chars), min(len(shown), b + context_chars)
    snippet = ("…" if lo else "") + shown[lo:a] + "[[" + shown[a:b] + "]]" + shown[b:hi] + ("…" if hi < len(shown) else "")
    return replace(known, snippet=snippet, text=shown[a:b],
                    match_tokens=[norm[x:y] for x, y in zip(starts, ends, strict=True)])


def document_match(reader: IndexReader, doc_key: int, ngram_hash: int, n: int, span_tokens: int,
                   view: str = "surface", context_chars: int = 160) -> dict[str, Any] | None:
    """:func:`match_document` as the dict the scan has read so far (kept for compatibility).

    None when the shard cannot be read (use :func:`match_document` for the reason);
    ``collision`` True when the n-gram is not in the document. Otherwise every field of
    :class:`DocumentMatch` (``uri``, ``row``, ``id``, ``source``, ``snippet``, ``text``,
    ``match_tokens`` as before, plus ``shard``, ``format``, ``doc_key``).
    """
    found = match_document(reader, doc_key, ngram_hash, n, span_tokens, view=view, context_chars=context_chars)
    return None if found.snippet_unavailable is not None else found.to_dict()


def ngram_text_in_document(reader: IndexReader, view: str, n: int, ngram_hash: int, doc_key: int) -> str | None:
    """The text of one of a document's n-grams (for `index info`'s top-k table); None when unreadable."""
    return match_document(reader, doc_key, ngram_hash, n, n, view=view, context_chars=0).text


__all__ = ["DocumentMatch", "document_match", "match_document", "ngram_text_in_document", "prefetch_document_texts"]
