"""Where in the corpus a flagged example's longest match lies: shard, row, id, source, snippet.

The scan calls :func:`match_provenance` once per batch, after the verdict, for the
examples the default definition flags or the verdict calls ``seen`` (at most the scan's
remaining provenance budget). The document is the one that holds the most of the
*longest span*: every n-gram of the span (whole example, surface view, smallest n) has a
document sample in the index, and the document found in most of them is named (ties:
the smallest document key). When one document holds every n-gram of the span the match
is ``single``; otherwise the span was *stitched* from n-grams of several documents
(``match_documents`` of them, a greedy cover of the span's samples, named in
``match_stitched_from`` in the order the span reaches them), and the named document
holds ``match_span_tokens`` of its tokens. The document is read back from its
shard to cut a snippet of the part it holds (and, with ``verify``, to compare exactly
that part's tokens: false means a hash collision, never a stitched span).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from probe.measures import ScanBatch, ScanContext
from probe.measures.ngram import SCAN_FIELDS, NgramEvidence

WHOLE = SCAN_FIELDS.index("whole")


class _Columns:
    """The match_* columns of one batch, filled example by example (None where not looked up)."""

    def __init__(self, size: int) -> None:
        self.uri: list[str | None] = [None] * size
        self.row: list[int | None] = [None] * size
        self.doc_id: list[str | None] = [None] * size
        self.source: list[str | None] = [None] * size
        self.snippet: list[str | None] = [None] * size
        self.verified: list[bool | None] = [None] * size
        self.kind: list[str | None] = [None] * size
        self.documents: list[int | None] = [None] * size
        self.span_tokens: list[int | None] = [None] * size
        self.stitched_from: list[list[str] | None] = [None] * size

    def arrays(self) -> dict[str, pa.Array]:
        return {
            "match_uri": pa.array(self.uri, pa.string()), "match_row": pa.array(self.row, pa.int64()),
            "match_doc_id": pa.array(self.doc_id, pa.string()), "match_source": pa.array(self.source, pa.string()),
            "match_snippet": pa.array(self.snippet, pa.string()),
            "match_verified": pa.array(self.verified, pa.bool_()),
            "match_kind": pa.array(self.kind, pa.string()), "match_documents": pa.array(self.documents, pa.int64()),
            "match_span_tokens": pa.array(self.span_tokens, pa.int64()),
            "match_stitched_from": pa.array(self.stitched_from, pa.list_(pa.string())),
        }


@dataclass(frozen=True)
class SpanSource:
    """Which corpus document holds the most of a matched span, and how much of it.

    ``first``/``last`` index the batch's n-grams: the run of the span's n-grams that
    ``doc_key`` holds (the longest such run); ``documents`` is how many documents a greedy
    cover of the span's n-grams needs (1: one document holds the whole span).
    """

    doc_key: int
    first: int
    last: int
    documents: int
    cover: tuple[int, ...] = ()  # the documents of the greedy cover, in the order the span reaches them

    @property
    def kind(self) -> str:
        return "single" if self.documents == 1 else "stitched"


def span_source(samples: list[np.ndarray]) -> SpanSource | None:
    """The document holding most of a span, from the document samples of the span's n-grams, in order."""
    holders = [set(x.tolist()) for x in samples]  # an n-gram's sample can be empty (nothing to name)
    if not any(holders):
        return None
    keys, counts = np.unique(np.concatenate([np.fromiter(h, np.uint64) for h in holders if h]),
                             return_counts=True)
    best = int(keys[int(np.argmax(counts))])
    run_start, best_run = -1, (0, -1)
    for k, h in enumerate(holders):  # the longest run of consecutive n-grams the best document holds
        if best in h:
            run_start = k if run_start < 0 else run_start
            if k - run_start > best_run[1] - best_run[0]:
                best_run = (run_start, k)
        else:
            run_start = -1
    uncovered, picks = {k for k, h in enumerate(holders) if h}, []
    while uncovered and len(picks) < 64:  # greedy cover: how many documents the span was stitched from
        gain: Counter[int] = Counter(d for k in uncovered for d in holders[k])
        pick = min(gain, key=lambda d: (-gain[d], d))
        uncovered = {k for k in uncovered if pick not in holders[k]}
        picks.append(pick)
    first_reached = {d: next(k for k, h in enumerate(holders) if d in h) for d in picks}
    return SpanSource(best, best_run[0], best_run[1], len(picks), tuple(sorted(picks, key=first_reached.get)))


def _document_name(doc: dict[str, object]) -> str:
    """A corpus document as a person can find it: its id, else shard file and row."""
    if doc.get("id"):
        return str(doc["id"])
    return f"{str(doc.get('uri') or '?').rsplit('/', 1)[-1]} row {doc.get('row')}"


@dataclass
class ProvenanceOutcome:
    """A batch's match_* columns, the documents looked up, and why some could not be read back."""

    columns: dict[str, pa.Array]
    used: int = 0
    unavailable: Counter[str] = field(default_factory=Counter)  # reason → examples


def match_provenance(ctx: ScanContext, batch: ScanBatch, evidence: NgramEvidence, flagged: np.ndarray,
                     limit: int) -> ProvenanceOutcome:
    """match_* columns for the first ``limit`` flagged examples of the batch.

    When a document's shard cannot be read back (moved, deleted, truncated), the columns
    still carry what the index knows (shard, row, id, source); the snippet and the
    verification are null and the reason is counted, never silently dropped.
    """
    e = batch.size
    cols = _Columns(e)
    res, ngrams = evidence.samples, evidence.sample_hashes
    if res is None or ngrams is None or limit <= 0:
        return ProvenanceOutcome(cols.arrays())
    from probe.index import provenance

    outcome = ProvenanceOutcome({})

    reader = ctx.reader
    tbs = batch.tokens["surface"]
    s = evidence.scores[("whole", "surface", evidence.nmin)]
    whole_doc0 = WHOLE * e
    ng_base = int(ngrams.doc_ends[whole_doc0 - 1]) if whole_doc0 else 0
    wanted = np.nonzero(flagged & (s.first_match >= 0))[0][:limit]
    n = evidence.nmin
    tok_base = int(tbs.doc_token_ends[whole_doc0 - 1]) if whole_doc0 else 0
    sources: dict[int, tuple[SpanSource, np.ndarray]] = {}
    for i in wanted:
        gi = ng_base + int(s.first_match[i])
        # the span's n-grams: from where it starts up to the last one that ends inside it
        last_start = tok_base + int(s.longest_last[i]) - n + 1
        end = gi + int(np.searchsorted(ngrams.positions[gi:int(ngrams.doc_ends[whole_doc0 + i])], last_start,
                                       side="right"))
        span = np.arange(gi, max(end, gi + 1))
        found_source = span_source([res.sample(int(k)) for k in span])
        if found_source is not None:
            sources[int(i)] = (found_source, span)
    # read the documents these examples will show two at a time (Parquet decoding releases the GIL)
    provenance.prefetch_document_texts(reader, [src.doc_key for src, _ in sources.values()])
    stitched = sorted({d for src, _ in sources.values() if src.kind == "stitched" for d in src.cover})
    names = {int(d["doc_key"]): _document_name(d) for d in (reader.documents(np.array(stitched, np.uint64))
                                                             if stitched else [])}
    for i, (src, span) in sources.items():
        if src.kind == "stitched":
            cols.stitched_from[i] = [names[d] for d in src.cover]
        k0, k1 = int(span[src.first]), int(span[src.last])
        a_tok, b_tok = int(ngrams.positions[k0]), int(ngrams.positions[k1]) + n - 1
        outcome.used += 1
        cols.kind[i], cols.documents[i], cols.span_tokens[i] = src.kind, src.documents, b_tok - a_tok + 1
        found = provenance.match_document(reader, src.doc_key, int(ngrams.hashes[k0]), n, b_tok - a_tok + 1)
        if found.collision:
            # the n-gram's hash is in the index but its text is not in the document
            cols.verified[i] = False if ctx.config.verify else None
            continue
        cols.uri[i], cols.row[i], cols.doc_id[i], cols.source[i] = found.uri, found.row, found.id, found.source
        if found.snippet_unavailable is not None:  # the index knows the document; its shard cannot be read
            outcome.unavailable[found.snippet_unavailable] += 1
            continue
        cols.snippet[i] = found.snippet
        if ctx.config.verify and found.match_tokens is not None:
            # exactly the part of the span this document holds (the rest of a stitched span is elsewhere)
            a, b = int(tbs.token_starts[a_tok]), int(tbs.token_ends[b_tok])
            query_tokens = ctx.tokenizer.token_texts(tbs.texts[whole_doc0 + i][a:b])
            cols.verified[i] = found.match_tokens == query_tokens
    outcome.columns = cols.arrays()
    return outcome
