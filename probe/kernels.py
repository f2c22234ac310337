"""Compiled (numba) kernels for the hot path: tokenize, hash, dedupe, aggregate.

Why numba: the per-token and per-n-gram work must not run as Python loops, and the
numpy-only formulations need whole-array temporaries that cost more than the work
(first-touch page faults, several passes). A compiled loop does each stage in one
pass: ~20 ns per word to tokenize and hash, ~5 ns per n-gram to roll the
polynomial, ~10 ns per n-gram to dedupe within a document. See bench/RESULTS.md.

The hash functions here ARE the index format (``probe-ngram-v1``): changing any
constant changes every hash. Golden values are pinned in tests/test_hashing.py.

- token hash: FNV-1a 64 over the token's code points (or over a token id as one
  unit), starting from ``FNV_OFFSET ^ fmix64(seed)``, finished with ``fmix64``.
- n-gram hash: ``fmix64(sum(t[i] * P**(n-1-i)) + n * N_SALT)`` mod 2**64, computed
  as a rolling polynomial.
- bucket: the top ``bucket_bits`` bits of the n-gram hash.

All arithmetic is on uint64 and wraps mod 2**64.
"""

from __future__ import annotations

import numpy as np
from numba import njit

FNV_OFFSET = np.uint64(0xCBF29CE484222325)
FNV_PRIME = np.uint64(0x100000001B3)
POLY_P = np.uint64(0x9E3779B97F4A7C15)
N_SALT = np.uint64(0x632BE59BD9B4E019)
EMPTY32 = np.uint32(0xFFFFFFFF)

# Character classes of the words tokenizer LUT (uint16 flags per code point).
CLS_WORD = np.uint16(1)
CLS_UPPER = np.uint16(2)
CLS_DIGIT = np.uint16(4)
CLS_QUOTE = np.uint16(8)
CLS_SENTENCE_END = np.uint16(16)
CLS_NEWLINE = np.uint16(32)
CLS_SPACE = np.uint16(64)
# A letter of a script written without spaces (Han, kana, Thai, ...): with ``script_split`` =
# CLS_SCRIPT (tokenizer rules 2) it is a token of its own, with the CLS_MARK characters after it.
CLS_SCRIPT = np.uint16(128)
CLS_MARK = np.uint16(256)
NO_SCRIPT_SPLIT = np.uint16(0)  # tokenizer rules 1: CJK letters join word runs like any letter

# The words tokenizer's own uint8 table, one per tokenizer rules (tokenizers.word_classes): the rules
# live in the table, so a plain letter takes exactly the branch it took before split letters existed.
WORDS_RUN = np.uint8(1)  # joins a run of word characters (== CLS_WORD, so tokenize_chars reads it too)
WORDS_SPLIT = np.uint8(2)  # a token of its own, with the WORDS_MARK characters after it
WORDS_MARK = np.uint8(4)  # a combining mark (category M)


@njit(cache=True, inline="always")
def fmix64(k):
    """MurmurHash3's 64-bit finalizer: a bijection with full avalanche."""
    k = np.uint64(k)
    k ^= k >> np.uint64(33)
    k *= np.uint64(0xFF51AFD7ED558CCD)
    k ^= k >> np.uint64(33)
    k *= np.uint64(0xC4CEB9FE1A85EC53)
    k ^= k >> np.uint64(33)
    return k


@njit(cache=True)
def token_hash_start(seed):
    return FNV_OFFSET ^ fmix64(np.uint64(seed))


@njit(cache=True)
def hash_codepoints(cps, seed):
    """Token hash of a whole code-point array (used for mask tokens and tests)."""
    h = token_hash_start(seed)
    for i in range(cps.shape[0]):
        h = (h ^ np.uint64(cps[i])) * FNV_PRIME
    return fmix64(h)


@njit(cache=True)
def hash_token_ids(ids, seed):
    """Token hashes of integer token ids (hf tokenizers) and of single chars."""
    out = np.empty(ids.shape[0], dtype=np.uint64)
    start = token_hash_start(seed)
    for i in range(ids.shape[0]):
        out[i] = fmix64((start ^ np.uint64(ids[i])) * FNV_PRIME)
    return out


@njit(cache=True)
def utf8_to_codepoints(buf, n_cps):
    """Decode (valid) UTF-8 bytes into code points; Python's UTF-32 encoder is ~30x slower."""
    out = np.empty(n_cps, dtype=np.uint32)
    i = 0
    k = 0
    m = buf.shape[0]
    while i < m:
        c = np.uint32(buf[i])
        if c < 0x80:
            out[k] = c
            i += 1
        elif c < 0xE0:
            out[k] = ((c & 0x1F) << 6) | (np.uint32(buf[i + 1]) & 0x3F)
            i += 2
        elif c < 0xF0:
            out[k] = ((c & 0x0F) << 12) | ((np.uint32(buf[i + 1]) & 0x3F) << 6) | (np.uint32(buf[i + 2]) & 0x3F)
            i += 3
        else:
            out[k] = (
                ((c & 0x07) << 18)
                | ((np.uint32(buf[i + 1]) & 0x3F) << 12)
                | ((np.uint32(buf[i + 2]) & 0x3F) << 6)
                | (np.uint32(buf[i + 3]) & 0x3F)
            )
            i += 4
        k += 1
    return out


@njit(cache=True)
def _token_capacity(cps, doc_ends, lut, split_flag):
    """An upper bound on the tokens of a batch, for the output buffers.

    Runs of word characters are separated by at least one other character, so a document of
    m code points has at most ceil(m/2) <= m//2 + 1 runs: n//2 + (number of documents) for the
    batch (n//2 + 1 overflowed on short documents). Each split letter adds at most one token.
    A tight bound matters: a buffer past glibc's mmap threshold (32 MiB) is mapped fresh, page
    faults included, on every call (+40 % time on 8 MB batches).
    """
    n = cps.shape[0]
    cap = n // 2 + doc_ends.shape[0] + 1
    if split_flag and cps.itemsize > 1:  # an ASCII (uint8) batch holds no split letter
        for i in range(n):
            c = cps[i]
            if c >= 0x0E00 and (lut[c] & split_flag):  # no split script lies below Thai
                cap += 1
    return cap


@njit(cache=True)
def tokenize_words(cps, doc_ends, word_lut, seed, want_offsets):
    """Split each document into maximal runs of word characters and hash them.

    ``cps``: code points of the concatenated documents (uint8 for ASCII batches,
    uint32 otherwise); ``doc_ends[d]``: end offset of document d in ``cps``.
    ``word_lut``: :func:`probe.text.tokenizers.word_classes` of the tokenizer rules. A
    WORDS_SPLIT letter, with the WORDS_MARK characters right after it, is a token of its
    own (ending any run before it). Returns (token_hashes, doc_token_ends,
    token_starts, token_ends); the offsets are empty unless ``want_offsets``.
    """
    cap = _token_capacity(cps, doc_ends, word_lut, WORDS_SPLIT)
    hashes = np.empty(cap, dtype=np.uint64)
    starts = np.empty(cap if want_offsets else 0, dtype=np.int64)
    ends = np.empty(cap if want_offsets else 0, dtype=np.int64)
    doc_tok_ends = np.empty(doc_ends.shape[0], dtype=np.int64)
    h0 = token_hash_start(seed)
    t = 0
    pos = 0
    for d in range(doc_ends.shape[0]):
        end = doc_ends[d]
        in_tok = False
        h = h0
        tstart = 0
        while pos < end:
            c = cps[pos]
            cl = word_lut[c]
            if cl & WORDS_RUN:
                if not in_tok:
                    in_tok = True
                    h = h0
                    tstart = pos
                h = (h ^ np.uint64(c)) * FNV_PRIME
            elif cl & WORDS_SPLIT:
                if in_tok:
                    hashes[t] = fmix64(h)
                    if want_offsets:
                        starts[t] = tstart
                        ends[t] = pos
                    t += 1
                    in_tok = False
                tstart = pos
                h = (h0 ^ np.uint64(c)) * FNV_PRIME
                pos += 1
                while pos < end and (word_lut[cps[pos]] & WORDS_MARK):
                    h = (h ^ np.uint64(cps[pos])) * FNV_PRIME
                    pos += 1
                hashes[t] = fmix64(h)
                if want_offsets:
                    starts[t] = tstart
                    ends[t] = pos
                t += 1
                continue
            elif in_tok:
                hashes[t] = fmix64(h)
                if want_offsets:
                    starts[t] = tstart
                    ends[t] = pos
                t += 1
                in_tok = False
            pos += 1
        if in_tok:
            hashes[t] = fmix64(h)
            if want_offsets:
                starts[t] = tstart
                ends[t] = pos
            t += 1
        doc_tok_ends[d] = t
    if want_offsets:
        return hashes[:t].copy(), doc_tok_ends, starts[:t].copy(), ends[:t].copy()
    return hashes[:t].copy(), doc_tok_ends, starts, ends


@njit(cache=True)
def tokenize_chars(cps, doc_ends, lut, seed, want_offsets):
    """Every word character is a token; spaces, punctuation and symbols are dropped.

    This is the GPT-4 report's character-level contamination view ("remove all
    spaces and symbols" before taking 50-character substrings).
    """
    n = cps.shape[0]
    hashes = np.empty(n, dtype=np.uint64)
    starts = np.empty(n if want_offsets else 0, dtype=np.int64)
    doc_tok_ends = np.empty(doc_ends.shape[0], dtype=np.int64)
    h0 = token_hash_start(seed)
    t = 0
    pos = 0
    for d in range(doc_ends.shape[0]):
        end = doc_ends[d]
        while pos < end:
            c = cps[pos]
            if lut[c] & CLS_WORD:
                hashes[t] = fmix64((h0 ^ np.uint64(c)) * FNV_PRIME)
                if want_offsets:
                    starts[t] = pos
                t += 1
            pos += 1
        doc_tok_ends[d] = t
    if want_offsets:
        s = starts[:t].copy()
        return hashes[:t].copy(), doc_tok_ends, s, s + 1
    return hashes[:t].copy(), doc_tok_ends, starts, starts


@njit(cache=True)
def _token_kind(cps, lut, s, e, sentence_start):
    """0 plain word, 1 number, 2 name-like, 3 code identifier."""
    digits = 0
    uppers = 0
    lower_then_upper = False
    underscore = False
    prev_lower = False
    separators = 0
    for i in range(s, e):
        c = cps[i]
        cl = lut[c]
        if c == 46 or c == 44:  # "." / "," inside a number (3.14, 1,000): only number tokens hold them
            separators += 1
            prev_lower = False
        elif cl & CLS_DIGIT:
            digits += 1
            prev_lower = False
        elif cl & CLS_UPPER:
            uppers += 1
            if prev_lower:
                lower_then_upper = True
            prev_lower = False
        else:
            if c == 95:  # "_"
                underscore = True
            prev_lower = True
    length = e - s - separators
    if digits == length:
        return 1
    if underscore or lower_then_upper or (digits > 0 and length > 1):
        return 3
    if uppers > 0 and (lut[cps[s]] & CLS_UPPER) and not sentence_start:
        return 2
    return 0


@njit(cache=True, inline="always")
def _run_end(cps, lut, pos, end, script_split):
    """End of the run of word characters from ``pos`` (a split letter ends it)."""
    while pos < end:
        cl = lut[cps[pos]]
        if not (cl & CLS_WORD) or (cl & script_split):
            break
        pos += 1
    return pos


@njit(cache=True)
def tokenize_pattern(cps, doc_ends, lut, lower, mask_hashes, seed, want_offsets, script_split, initial_words):
    """The pattern view: words with slots masked, so instances of a template match.

    Runs on case-preserving (NFKC) text. Numbers (with inner ``.``/``,``) become
    ``<num>``, a quoted span (``'..'``, ``".."``, curly quotes; at most 200 chars on
    one line) becomes ``<q>``, a capitalized word not at a sentence start becomes
    ``<name>``, an identifier-looking word (``snake_case``, ``camelCase``,
    letters+digits) becomes ``<id>``; other words are lowercased per code point.
    ``mask_hashes`` = token hashes of [<num>, <q>, <name>, <id>]. ``script_split``:
    CLS_SCRIPT (rules 2) makes a CLS_SCRIPT letter, with the CLS_MARK characters after it, a
    plain word of its own that bounds quotes like a non-word character does (Chinese and
    Japanese put no space there); NO_SCRIPT_SPLIT (rules 1) gives the plain runs.
    ``initial_words`` (rules 3; empty before): sorted token hashes of the common words that start
    sentences; a capitalized sentence-initial word whose lowercase hash is not among them is a
    name too ("Priya people don't" and "French people don't" → ``<name> people don t``).
    """
    cap = _token_capacity(cps, doc_ends, lut, script_split)
    hashes = np.empty(cap, dtype=np.uint64)
    starts = np.empty(cap if want_offsets else 0, dtype=np.int64)
    ends = np.empty(cap if want_offsets else 0, dtype=np.int64)
    doc_tok_ends = np.empty(doc_ends.shape[0], dtype=np.int64)
    h0 = token_hash_start(seed)
    t = 0
    pos = 0
    for d in range(doc_ends.shape[0]):
        end = doc_ends[d]
        doc_start = pos
        sentence_start = True
        while pos < end:
            c = cps[pos]
            cl = lut[c]
            if cl & CLS_QUOTE:
                # An opening quote: preceded by start/non-word, followed by a non-space.
                prev_cl = lut[cps[pos - 1]] if pos > doc_start else np.uint16(0)
                prev_ok = pos == doc_start or not (prev_cl & CLS_WORD) or (prev_cl & script_split)
                if prev_ok and pos + 1 < end and not (lut[cps[pos + 1]] & (CLS_SPACE | CLS_NEWLINE)):
                    close = -1
                    j = pos + 1
                    limit = min(end, pos + 201)
                    while j < limit:
                        cj = lut[cps[j]]
                        if cj & CLS_NEWLINE:
                            break
                        if (cj & CLS_QUOTE) and not (lut[cps[j - 1]] & CLS_SPACE):
                            if j + 1 >= end or not (lut[cps[j + 1]] & CLS_WORD) or (lut[cps[j + 1]] & script_split):
                                close = j
                                break
                        j += 1
                    if close > pos + 1:
                        hashes[t] = mask_hashes[1]
                        if want_offsets:
                            starts[t] = pos
                            ends[t] = close + 1
                        t += 1
                        pos = close + 1
                        sentence_start = False
                        continue
                pos += 1
                continue
            if cl & CLS_WORD:
                s = pos
                if cl & script_split:
                    pos += 1
                    while pos < end and (lut[cps[pos]] & CLS_MARK):
                        pos += 1
                else:
                    pos = _run_end(cps, lut, pos, end, script_split)
                # Numbers keep inner separators: 3.14, 1,000.
                if lut[cps[s]] & CLS_DIGIT:
                    while (
                        pos + 1 < end
                        and (cps[pos] == 46 or cps[pos] == 44)
                        and (lut[cps[pos + 1]] & CLS_DIGIT)
                    ):
                        pos = _run_end(cps, lut, pos + 1, end, script_split)
                kind = _token_kind(cps, lut, s, pos, sentence_start)
                if kind == 1 or (kind == 0 and (lut[cps[s]] & CLS_DIGIT)):
                    hashes[t] = mask_hashes[0]
                elif kind == 2:
                    hashes[t] = mask_hashes[2]
                elif kind == 3:
                    hashes[t] = mask_hashes[3]
                else:
                    h = h0
                    for i in range(s, pos):
                        h = (h ^ np.uint64(lower[cps[i]])) * FNV_PRIME
                    h = fmix64(h)
                    if sentence_start and initial_words.shape[0] and (lut[cps[s]] & CLS_UPPER):
                        k = np.searchsorted(initial_words, h)
                        if k >= initial_words.shape[0] or initial_words[k] != h:
                            h = mask_hashes[2]  # a capitalized sentence start that is no common word
                    hashes[t] = h
                if want_offsets:
                    starts[t] = s
                    ends[t] = pos
                t += 1
                sentence_start = False
                continue
            if cl & (CLS_SENTENCE_END | CLS_NEWLINE):
                sentence_start = True
            pos += 1
        doc_tok_ends[d] = t
    if want_offsets:
        return hashes[:t].copy(), doc_tok_ends, starts[:t].copy(), ends[:t].copy()
    return hashes[:t].copy(), doc_tok_ends, starts, ends


@njit(cache=True)
def ngram_hashes(token_hashes, doc_tok_ends, n, sample_mod):
    """All n-gram hashes of every document (never crossing documents), in order.

    Returns (hashes, doc_ngram_ends, positions) where ``positions[i]`` is the index of
    the n-gram's first token. With ``sample_mod`` K > 1 only hashes with
    ``hash % K == 0`` are kept.
    """
    total = 0
    prev = 0
    for d in range(doc_tok_ends.shape[0]):
        m = doc_tok_ends[d] - prev
        if m >= n:
            total += m - n + 1
        prev = doc_tok_ends[d]
    out = np.empty(total, dtype=np.uint64)
    positions = np.empty(total, dtype=np.int64)
    doc_ends = np.empty(doc_tok_ends.shape[0], dtype=np.int64)
    pn1 = np.uint64(1)
    for _ in range(n - 1):
        pn1 *= POLY_P
    salt = np.uint64(n) * N_SALT
    mod = np.uint64(sample_mod)
    k = 0
    start = 0
    for d in range(doc_tok_ends.shape[0]):
        end = doc_tok_ends[d]
        if end - start >= n:
            h = np.uint64(0)
            for i in range(start, start + n):
                h = h * POLY_P + token_hashes[i]
            j = start
            while True:
                v = fmix64(h + salt)
                if mod == 1 or v % mod == 0:
                    out[k] = v
                    positions[k] = j
                    k += 1
                if j + n >= end:
                    break
                h = (h - token_hashes[j] * pn1) * POLY_P + token_hashes[j + n]
                j += 1
        doc_ends[d] = k
        start = end
    return out[:k].copy(), doc_ends, positions[:k].copy()


@njit(cache=True)
def dedupe_per_doc(hashes, doc_ends, doc_base):
    """Collapse repeats of an n-gram within a document.

    Returns rows (hash, count_in_doc uint32, doc uint32) unique per (doc, hash), so a
    later aggregation gets ``docs`` (distinct documents) as a plain row count.
    Uses one reusable open-addressing table sized for the largest document.
    """
    m = hashes.shape[0]
    out_h = np.empty(m, dtype=np.uint64)
    out_c = np.empty(m, dtype=np.uint32)
    out_d = np.empty(m, dtype=np.uint32)
    biggest = 0
    prev = 0
    for d in range(doc_ends.shape[0]):
        if doc_ends[d] - prev > biggest:
            biggest = doc_ends[d] - prev
        prev = doc_ends[d]
    size = 16
    while size < 2 * biggest:
        size *= 2
    mask = np.uint64(size - 1)
    slot_row = np.empty(size, dtype=np.int64)  # output row held by a slot
    stamp = np.zeros(size, dtype=np.int64)  # doc generation that last used a slot
    k = 0
    start = 0
    for d in range(doc_ends.shape[0]):
        end = doc_ends[d]
        gen = d + 1
        doc = np.uint32(doc_base + d)
        for i in range(start, end):
            h = hashes[i]
            s = (h ^ (h >> np.uint64(29))) & mask
            while True:
                if stamp[s] != gen:
                    stamp[s] = gen
                    slot_row[s] = k
                    out_h[k] = h
                    out_c[k] = 1
                    out_d[k] = doc
                    k += 1
                    break
                r = slot_row[s]
                if out_h[r] == h:
                    out_c[r] += 1
                    break
                s = (s + np.uint64(1)) & mask
        start = end
    return out_h[:k].copy(), out_c[:k].copy(), out_d[:k].copy()


@njit(cache=True)
def bucket_partition(hashes, bucket_shift, buckets):
    """Counting-sort row order by bucket (top bits): returns (order, bucket_offsets)."""
    m = hashes.shape[0]
    counts = np.zeros(buckets + 1, dtype=np.int64)
    for i in range(m):
        counts[np.int64(hashes[i] >> bucket_shift) + 1] += 1
    for b in range(buckets):
        counts[b + 1] += counts[b]
    offsets = counts.copy()
    order = np.empty(m, dtype=np.int64)
    fill = counts[:buckets].copy()
    for i in range(m):
        b = np.int64(hashes[i] >> bucket_shift)
        order[fill[b]] = i
        fill[b] += 1
    return order, offsets


@njit(cache=True)
def reduce_sorted(hashes, counts, docs, samples, k):
    """Aggregate rows already sorted by hash: sum counts and docs, merge doc samples.

    ``samples`` is (rows, k) uint32 padded with 0xFFFFFFFF; the merged sample keeps
    the k smallest document ordinals (coordinated bottom-k: the same documents win
    for every n-gram, which is what makes same-document checks possible).
    """
    m = hashes.shape[0]
    out_h = np.empty(m, dtype=np.uint64)
    out_c = np.empty(m, dtype=np.uint64)
    out_d = np.empty(m, dtype=np.uint32)
    out_s = np.full((m, k), EMPTY32, dtype=np.uint32)
    u = -1
    for i in range(m):
        h = hashes[i]
        if u < 0 or out_h[u] != h:
            u += 1
            out_h[u] = h
            out_c[u] = 0
            out_d[u] = 0
        out_c[u] += counts[i]
        out_d[u] += docs[i]
        if k == 0:
            continue
        # Rows' samples are ascending and a (hash, doc) pair occurs in one row only
        # (documents are deduped before aggregation and ordinals never repeat).
        for j in range(samples.shape[1]):
            v = samples[i, j]
            if v == EMPTY32 or v >= out_s[u, k - 1]:
                break
            p = k - 1
            while p > 0 and out_s[u, p - 1] > v:
                out_s[u, p] = out_s[u, p - 1]
                p -= 1
            out_s[u, p] = v
    u += 1
    return out_h[:u].copy(), out_c[:u].copy(), out_d[:u].copy(), out_s[:u].copy()


@njit(cache=True)
def reduce_doc_rows(hashes, counts, docs, perm, k):
    """Aggregate per-document rows visited in ``perm`` (hash-sorted) order.

    Each input row is one (document, n-gram) pair: ``docs`` of the result is the
    run length, ``counts`` the summed in-document counts, and the sample keeps the
    k smallest document ordinals. Reading through ``perm`` avoids materializing
    permuted copies of every column.
    """
    m = perm.shape[0]
    hs = np.empty(m, dtype=np.uint64)
    u = 0
    for i in range(m):
        hs[i] = hashes[perm[i]]
        if i == 0 or hs[i] != hs[i - 1]:
            u += 1
    out_h = np.empty(u, dtype=np.uint64)
    out_c = np.empty(u, dtype=np.uint64)
    out_d = np.empty(u, dtype=np.uint32)
    out_s = np.empty((u, k), dtype=np.uint32)
    j = -1
    for i in range(m):
        p = perm[i]
        if i == 0 or hs[i] != hs[i - 1]:
            j += 1
            out_h[j] = hs[i]
            out_c[j] = 0
            out_d[j] = 0
            for q in range(k):
                out_s[j, q] = EMPTY32
        out_c[j] += np.uint64(counts[p])
        out_d[j] += np.uint32(1)
        if k > 0:
            v = docs[p]
            if v < out_s[j, k - 1]:
                q = k - 1
                while q > 0 and out_s[j, q - 1] > v:
                    out_s[j, q] = out_s[j, q - 1]
                    q -= 1
                out_s[j, q] = v
    return out_h, out_c, out_d, out_s


@njit(cache=True)
def bucket_scatter(hashes, counts, docs, bucket_shift, buckets):
    """Physically regroup rows by bucket (stable counting sort) and return bucket offsets.

    Afterwards every bucket is a contiguous, cache-sized slice, so sorting and
    reducing it touch only nearby memory.
    """
    m = hashes.shape[0]
    offsets = np.zeros(buckets + 1, dtype=np.int64)
    for i in range(m):
        offsets[np.int64(hashes[i] >> bucket_shift) + 1] += 1
    for b in range(buckets):
        offsets[b + 1] += offsets[b]
    fill = offsets[:buckets].copy()
    h2 = np.empty_like(hashes)
    c2 = np.empty_like(counts)
    d2 = np.empty_like(docs)
    for i in range(m):
        b = np.int64(hashes[i] >> bucket_shift)
        j = fill[b]
        h2[j] = hashes[i]
        c2[j] = counts[i]
        d2[j] = docs[i]
        fill[b] = j + 1
    return h2, c2, d2, offsets


@njit(cache=True)
def field_spans(matched, positions, doc_ends, doc_tok_ends, n, min_span_tokens):
    """Per document: longest matched span and the tokens it and all matches cover.

    A *span* is a run of matched n-grams at consecutive token positions; it covers
    run_length + n - 1 tokens. Returns, per document, the longest span in tokens
    with its first/last token index (global, -1 when none), and per token two flags:
    covered by any matched n-gram, and covered by a span of at least
    ``min_span_tokens`` tokens (the Llama-2 contamination definition).
    """
    nd = doc_ends.shape[0]
    n_tokens = doc_tok_ends[nd - 1] if nd > 0 else 0
    best = np.zeros(nd, dtype=np.int64)
    best_first = np.full(nd, -1, dtype=np.int64)
    best_last = np.full(nd, -1, dtype=np.int64)
    covered = np.zeros(n_tokens, dtype=np.uint8)
    span_covered = np.zeros(n_tokens, dtype=np.uint8)
    start = 0
    for d in range(nd):
        end = doc_ends[d]
        run_first = -1
        prev_pos = -2
        i = start
        while i <= end:
            is_match = i < end and matched[i]
            contiguous = is_match and positions[i] == prev_pos + 1
            if run_first >= 0 and (not is_match or not contiguous):
                # close the run [run_first, prev_pos]
                span = prev_pos - run_first + n
                if span > best[d]:
                    best[d] = span
                    best_first[d] = run_first
                    best_last[d] = prev_pos + n - 1
                if span >= min_span_tokens:
                    for t in range(run_first, prev_pos + n):
                        span_covered[t] = 1
                run_first = -1
            if is_match:
                p = positions[i]
                if run_first < 0:
                    run_first = p
                for t in range(p, p + n):
                    covered[t] = 1
                prev_pos = p
            i += 1
        start = end
    return best, best_first, best_last, covered, span_covered


@njit(cache=True)
def samples_to_ragged(samples):
    """(rows, k) padded sample matrix → (int32 offsets, uint32 values) of a list column."""
    m = samples.shape[0]
    k = samples.shape[1]
    offsets = np.empty(m + 1, dtype=np.int32)
    values = np.empty(m * k, dtype=np.uint32)
    t = 0
    offsets[0] = 0
    for i in range(m):
        for j in range(k):
            v = samples[i, j]
            if v == EMPTY32:
                break
            values[t] = v
            t += 1
        offsets[i + 1] = t
    return offsets, values[:t]


@njit(cache=True, nogil=True)
def find_sorted(table, queries):
    """Row of each query in ``table`` (both sorted ascending, uint64), -1 when absent.

    An exponential (galloping) search from the previous answer: sorted queries walk
    the table once, O(Q log(N/Q)), touching nearby memory, where ``np.searchsorted``
    restarts a full binary search (cache misses at every level) for each query.
    Measured 2.5x faster than ``np.searchsorted`` for 1M queries into 3.7M rows.
    """
    n = table.shape[0]
    out = np.full(queries.shape[0], -1, dtype=np.int64)
    j = 0
    for i in range(queries.shape[0]):
        x = queries[i]
        step = 1
        hi = j
        while hi < n and table[hi] < x:
            j = hi + 1
            hi = j + step
            step <<= 1
        if hi > n:
            hi = n
        lo = j
        while lo < hi:
            mid = (lo + hi) >> 1
            if table[mid] < x:
                lo = mid + 1
            else:
                hi = mid
        j = lo
        if j < n and table[j] == x:
            out[i] = j
    return out


@njit(cache=True)
def low_information_ngrams(token_hashes, token_low, positions, n, min_low, max_distinct):
    """Per n-gram: True when it carries little information (not evidence of a leak).

    An n-gram is low-information when at least ``min_low`` of its tokens are flagged in
    ``token_low`` (numbers, single Latin letters: "1 2 3 4 5 6 7 8", "a 1 b 2 c 3 d 4"),
    or when it has at most ``max_distinct`` distinct tokens ("d d d d", "ha ha ha").
    ``positions[i]`` is the index (into ``token_hashes``) of n-gram i's first token, as
    :func:`ngram_hashes` returns it.
    """
    out = np.zeros(positions.shape[0], dtype=np.bool_)
    seen = np.empty(n, dtype=np.uint64)
    for i in range(positions.shape[0]):
        p = positions[i]
        low = 0
        distinct = 0
        for t in range(p, p + n):
            if token_low[t]:
                low += 1
            h = token_hashes[t]
            new = True
            for j in range(distinct):
                if seen[j] == h:
                    new = False
                    break
            if new:
                seen[distinct] = h
                distinct += 1
        out[i] = low >= min_low or distinct <= max_distinct
    return out


@njit(cache=True, nogil=True)
def count_into(table: np.ndarray, rows: np.ndarray) -> None:
    """``table[d, rows[d, i]] += 1`` for every sketch row d and item i (np.add.at is ~50x slower)."""
    for d in range(rows.shape[0]):
        for i in range(rows.shape[1]):
            table[d, rows[d, i]] += 1
