"""Where in the corpus a flagged example's longest match lies: shard, row, id, source, snippet.

The scan calls :func:`match_provenance` once per batch, after the verdict, for the
examples the default definition flags or the verdict calls ``seen`` (at most the scan's
remaining provenance budget). The document is found through the document samples of the
whole example's surface n-grams at the smallest n, and read back from its shard to cut
a snippet (and, with ``verify``, to compare the matched tokens exactly).
"""

from __future__ import annotations

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


def match_provenance(ctx: ScanContext, batch: ScanBatch, evidence: NgramEvidence, flagged: np.ndarray,
                     limit: int) -> tuple[dict[str, pa.Array], int]:
    """match_* columns for the first ``limit`` flagged examples of the batch, and how many were used."""
    e = batch.size
    cols = _Columns(e)
    res, ngrams = evidence.samples, evidence.sample_hashes
    used = 0
    if res is None or ngrams is None or limit <= 0:
        return cols.arrays(), used
    from probe.index.stats import document_match, prefetch_document_texts

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
        used += 1
        info = document_match(reader, int(sample[0]), int(ngrams.hashes[gi]), evidence.nmin, int(s.longest[i]))
        if info is None:
            continue
        if info.get("collision"):
            # the n-gram's hash is in the index but its text is not in the document
            cols.verified[i] = False if ctx.config.verify else None
            continue
        cols.uri[i], cols.row[i], cols.doc_id[i], cols.source[i], cols.snippet[i] = (
            info["uri"], info["row"], info["id"], info["source"], info["snippet"])
        if ctx.config.verify:
            lo_tok = int(tbs.doc_token_ends[whole_doc0 - 1])  # field base: longest_first is field-relative
            a = int(tbs.token_starts[lo_tok + int(s.longest_first[i])])
            b = int(tbs.token_ends[lo_tok + int(s.longest_last[i])])
            query_tokens = ctx.tokenizer.token_texts(tbs.texts[whole_doc0 + i][a:b])
            cols.verified[i] = info["match_tokens"] == query_tokens[: len(info["match_tokens"])]
    return cols.arrays(), used
