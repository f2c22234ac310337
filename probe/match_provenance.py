"""Where in the corpus a flagged example's longest match lies: shard, row, id, source, snippet.

The scan calls :func:`match_provenance` once per batch, after the verdict, for the
examples the default definition flags or the verdict calls ``seen`` (at most the scan's
remaining provenance budget). The document is found through the document samples of the
whole example's surface n-grams at the smallest n, and read back from its shard to cut
a snippet (and, with ``verify``, to compare the matched tokens exactly).
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

    def arrays(self) -> dict[str, pa.Array]:
        return {
            "match_uri": pa.array(self.uri, pa.string()), "match_row": pa.array(self.row, pa.int64()),
            "match_doc_id": pa.array(self.doc_id, pa.string()), "match_source": pa.array(self.source, pa.string()),
            "match_snippet": pa.array(self.snippet, pa.string()),
            "match_verified": pa.array(self.verified, pa.bool_()),
        }


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
    from probe.index import stats
    from probe.index.provenance import prefetch_document_texts

    outcome = ProvenanceOutcome({})

    reader = ctx.reader
    tbs = batch.tokens["surface"]
    s = evidence.scores[("whole", "surface", evidence.nmin)]
    whole_doc0 = WHOLE * e
    ng_base = int(ngrams.doc_ends[whole_doc0 - 1]) if whole_doc0 else 0
    wanted = np.nonzero(flagged & (s.first_match >= 0))[0][:limit]
    # read the documents these examples will show two at a time (Parquet decoding releases the GIL)
    firsts = [res.sample(ng_base + int(s.first_match[i]))[:1] for i in wanted]
    prefetch_document_texts(reader, [int(f[0]) for f in firsts if f.shape[0]])
    for i in wanted:
        gi = ng_base + int(s.first_match[i])
        sample = res.sample(gi)
        if not sample.shape[0]:
            continue
        outcome.used += 1
        found = stats.match_document(reader, int(sample[0]), int(ngrams.hashes[gi]), evidence.nmin,
                                     int(s.longest[i]))
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
            lo_tok = int(tbs.doc_token_ends[whole_doc0 - 1])  # field base: longest_first is field-relative
            a = int(tbs.token_starts[lo_tok + int(s.longest_first[i])])
            b = int(tbs.token_ends[lo_tok + int(s.longest_last[i])])
            query_tokens = ctx.tokenizer.token_texts(tbs.texts[whole_doc0 + i][a:b])
            cols.verified[i] = found.match_tokens == query_tokens[: len(found.match_tokens)]
    outcome.columns = cols.arrays()
    return outcome
