"""Compiled kernels and tokenizers against plain-Python oracles (RELIABILITY H3, STYLE 15)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpers import ref_chars, ref_id_hash, ref_ngram_hashes, ref_normalize, ref_token_hash, ref_words
from probe import kernels
from probe.config import TextSpec
from probe.errors import ConfigError
from probe.index.segment import EMPTY32, Aggregated, aggregate_doc_rows, merge_aggregated
from probe.text.tokenizers import Tokenizer, encode_codepoints, load_hf_tokenizer

# Hash values that exercise the top bits (buckets) and the sign bit.
POOL = [0, 1, 2, 3, 2**63 - 1, 2**63, 2**64 - 1, 0x00FF_0000_0000_0000, 0x8000_0000_0000_0001, 0xDEADBEEF,
        0x1234_5678_9ABC_DEF0, 0xFFFF_0000_0000_0000]
HASH = st.one_of(st.sampled_from(POOL), st.integers(0, 2**64 - 1))
DOCS_OF_HASHES = st.lists(st.lists(st.sampled_from(POOL[:8]) | HASH, max_size=30), max_size=12)


def flatten(docs: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    flat = np.array([h for d in docs for h in d], dtype=np.uint64)
    ends = np.cumsum([len(d) for d in docs]).astype(np.int64) if docs else np.empty(0, np.int64)
    return flat, ends


# --------------------------------------------------------------------------- n-grams
@given(docs=st.lists(st.lists(st.integers(0, 2**64 - 1), max_size=25), max_size=10), n=st.integers(1, 14))
def test_ngram_count_per_document_and_no_crossing(docs: list[list[int]], n: int) -> None:
    tokens, tok_ends = flatten(docs)
    h, ends, pos = kernels.ngram_hashes(tokens, tok_ends, n, 1)
    per_doc = np.diff(ends, prepend=0).tolist() if len(docs) else []
    assert per_doc == [max(0, len(d) - n + 1) for d in docs]
    expected = [v for d in docs for v in ref_ngram_hashes(d, n)]
    assert [int(x) for x in h] == expected  # exact values: nothing crosses a document boundary
    offsets = np.concatenate([[0], tok_ends[:-1]]).tolist() if docs else []
    starts = [off + i for off, d in zip(offsets, docs, strict=True) for i in range(len(d) - n + 1)]
    assert pos.tolist() == starts  # index of the n-gram's first token in the batch


@given(docs=DOCS_OF_HASHES)
def test_dedupe_per_doc_equals_counter(docs: list[list[int]]) -> None:
    flat, ends = flatten(docs)
    base = 7
    h, c, d = kernels.dedupe_per_doc(flat, ends, base)
    got = Counter()
    for hh, cc, dd in zip(h.tolist(), c.tolist(), d.tolist(), strict=True):
        assert (dd, hh) not in got  # unique per (doc, hash)
        got[(dd, hh)] = cc
    expected = Counter()
    for i, doc in enumerate(docs):
        for hh, cc in Counter(doc).items():
            expected[(base + i, hh)] = cc
    assert got == expected
    assert h.dtype == np.uint64 and c.dtype == np.uint32 and d.dtype == np.uint32


def oracle_aggregate(rows: list[tuple[int, int, int]], k: int) -> dict[int, tuple[int, int, list[int]]]:
    acc: dict[int, list] = {}
    for h, c, d in rows:
        a = acc.setdefault(h, [0, 0, []])
        a[0] += c
        a[1] += 1
        a[2].append(d)
    return {h: (c, n, sorted(ds)[:k]) for h, (c, n, ds) in acc.items()}


def as_dict(agg: Aggregated) -> dict[int, tuple[int, int, list[int]]]:
    out = {}
    for h, c, d, s in zip(agg.hashes.tolist(), agg.counts.tolist(), agg.docs.tolist(), agg.samples.tolist(),
                          strict=True):
        out[h] = (c, d, [v for v in s if v != int(EMPTY32)])
    return out


def doc_rows(docs: list[list[int]], base: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    flat, ends = flatten(docs)
    return kernels.dedupe_per_doc(flat, ends, base)


@pytest.mark.parametrize("bucket_bits", [0, 1, 8])
@pytest.mark.parametrize("k", [0, 1, 4])
@given(docs=DOCS_OF_HASHES)
def test_aggregate_doc_rows_equals_dict_oracle(docs: list[list[int]], k: int, bucket_bits: int) -> None:
    h, c, d = doc_rows(docs)
    agg = aggregate_doc_rows(h, c, d, k, bucket_bits)
    assert np.all(agg.hashes[1:] > agg.hashes[:-1])  # sorted, unique
    assert agg.samples.shape == (len(agg), k)
    rows = list(zip(h.tolist(), c.tolist(), d.tolist(), strict=True))
    assert as_dict(agg) == oracle_aggregate(rows, k)


@pytest.mark.parametrize("bucket_bits", [0, 8])
@given(docs=DOCS_OF_HASHES, cuts=st.lists(st.integers(0, 12), max_size=4), k=st.integers(0, 5))
def test_merge_aggregated_equals_single_aggregation(docs: list[list[int]], cuts: list[int], k: int,
                                                    bucket_bits: int) -> None:
    """Spilled runs (contiguous document ranges) merge to exactly the one-shot aggregation."""
    bounds = sorted({0, len(docs), *[min(c, len(docs)) for c in cuts]})
    parts = []
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        h, c, d = doc_rows(docs[lo:hi], base=lo)
        parts.append(aggregate_doc_rows(h, c, d, k, bucket_bits))
    merged = merge_aggregated(parts, k, bucket_bits)
    h, c, d = doc_rows(docs)
    whole = aggregate_doc_rows(h, c, d, k, bucket_bits)
    assert as_dict(merged) == as_dict(whole)
    assert as_dict(whole) == oracle_aggregate(list(zip(h.tolist(), c.tolist(), d.tolist(), strict=True)), k)


# --------------------------------------------------------------------------- tokenizers
WORDISH = st.text(st.one_of(
    st.sampled_from("abcXYZ _-.,'\"!?\n\t0123456789"),
    st.sampled_from(["é", "ß", "Σ", "東", "\u0301", "ǅ", "ﬁ", "²", "\u00a0", "\u200b", "\u2028", "İ", "١"]),
    st.sampled_from(["京", "タ", "ー", "の", "ภ", "\u0e48", "\u0e33", "๑", "ກ", "ក", "က", "\U000e0100", "〇", "ｶ"]),
    st.characters(),
), max_size=40)


@given(st.lists(st.integers(0, 2**64 - 1), max_size=300), st.lists(st.integers(0, 2**64 - 1), max_size=300),
       st.integers(0, 300))
def test_find_sorted_equals_searchsorted(table: list[int], queries: list[int], shared: int) -> None:
    """Galloping search answers exactly what a binary search does, hits and misses, at the edges too."""
    t = np.unique(np.array(table, dtype=np.uint64))
    q = np.unique(np.concatenate([np.array(queries, dtype=np.uint64), t[: shared % (len(t) + 1)],
                                  np.array([0, 2**64 - 1], dtype=np.uint64)]))
    got = kernels.find_sorted(t, q)
    pos = np.searchsorted(t, q)
    present = (pos < len(t)) & (t[np.minimum(pos, max(len(t) - 1, 0))] == q) if len(t) else np.zeros(len(q), bool)
    assert np.array_equal(got >= 0, present)
    assert np.array_equal(got[present], pos[present])


@pytest.mark.parametrize("rules", [1, 2])
@given(texts=st.lists(WORDISH, max_size=6))
def test_words_tokenizer_matches_reference(texts: list[str], rules: int) -> None:
    tb = Tokenizer(TextSpec(tokenizer_rules=rules)).tokenize(texts, with_offsets=True)
    expected_tokens = [ref_words(ref_normalize(t), rules) for t in texts]
    assert tb.doc_token_counts().tolist() == [len(t) for t in expected_tokens]
    assert tb.token_hashes.tolist() == [ref_token_hash(tok) for toks in expected_tokens for tok in toks]
    # offsets index the normalized text of each document
    i = 0
    for d, toks in enumerate(expected_tokens):
        assert tb.texts[d] == ref_normalize(texts[d])
        for tok in toks:
            assert tb.texts[d][tb.token_starts[i]:tb.token_ends[i]] == tok
            i += 1


@given(texts=st.lists(WORDISH, max_size=6))
def test_chars_tokenizer_matches_reference(texts: list[str]) -> None:
    tb = Tokenizer(TextSpec(tokenizer="chars")).tokenize(texts, with_offsets=True)
    expected = [ref_chars(ref_normalize(t)) for t in texts]
    assert tb.doc_token_counts().tolist() == [len(t) for t in expected]
    assert tb.token_hashes.tolist() == [ref_token_hash(ch) for chars in expected for ch in chars]
    i = 0
    for d, chars in enumerate(expected):
        for ch in chars:
            assert tb.texts[d][tb.token_starts[i]:tb.token_ends[i]] == ch
            i += 1


def test_many_one_character_documents() -> None:
    """Regression: a batch of 1-char documents overflowed the token buffer (heap corruption)."""
    tok = Tokenizer(TextSpec(views=("surface", "pattern")))
    for n_docs in (3, 10, 1000, 20000):
        assert tok.tokenize(["a"] * n_docs).doc_token_ends.tolist() == list(range(1, n_docs + 1))
        assert tok.tokenize(["A"] * n_docs, "pattern").num_tokens == n_docs
        assert tok.tokenize(["é"] * n_docs, "pattern").num_tokens == n_docs
        assert tok.tokenize(["東"] * n_docs).num_tokens == n_docs
        assert tok.tokenize(["東"] * n_docs, "pattern").num_tokens == n_docs


@pytest.mark.parametrize("view", ["surface", "pattern"])
def test_split_letters_fill_the_token_buffer(view: str) -> None:
    """Regression guard: split letters give one token per code point, more than the plain-run bound n//2."""
    tok = Tokenizer(TextSpec(views=("surface", "pattern")))
    texts = ["東京大学" * 5000, "", "ภาษาไทย" * 3, "日本"]
    tb = tok.tokenize(texts, view, with_offsets=True)
    assert tb.doc_token_counts().tolist() == [20000, 0, 21, 2]


def test_encode_codepoints_ascii_and_unicode() -> None:
    cps, ends = encode_codepoints(["ab", "", "c"])
    assert cps.dtype == np.uint8 and cps.tolist() == [97, 98, 99] and ends.tolist() == [2, 2, 3]
    cps, ends = encode_codepoints(["a€", "𝄞"])
    assert cps.dtype == np.uint32 and cps.tolist() == [97, 0x20AC, 0x1D11E] and ends.tolist() == [2, 3]
    cps, ends = encode_codepoints([])
    assert cps.shape == (0,) and ends.shape == (0,)


def test_empty_and_separator_only_documents_have_no_tokens() -> None:
    tb = Tokenizer(TextSpec()).tokenize(["", "  ...  ", "word", "!?"])
    assert tb.doc_token_ends.tolist() == [0, 0, 1, 1]


# --------------------------------------------------------------------------- pattern view
def pattern_hashes(*texts: str, rules: int = TextSpec.tokenizer_rules) -> list[list[int]]:
    tb = Tokenizer(TextSpec(views=("surface", "pattern"), tokenizer_rules=rules)).tokenize(list(texts), "pattern")
    ends = [0, *tb.doc_token_ends.tolist()]
    return [tb.token_hashes[a:b].tolist() for a, b in zip(ends, ends[1:], strict=False)]


def surface_hashes(*texts: str) -> list[list[int]]:
    tb = Tokenizer(TextSpec()).tokenize(list(texts))
    ends = [0, *tb.doc_token_ends.tolist()]
    return [tb.token_hashes[a:b].tolist() for a, b in zip(ends, ends[1:], strict=False)]


@pytest.mark.parametrize(("a", "b"), [
    ("Translate 'cat' into French.", "Translate 'house' into French."),
    ('Translate "the red car" into French.', "Translate \u2018a big house\u2019 into French."),
    ("in 1999 and 2004", "in 12 and 7"),
    ("pi is 3.14 or 1,000.5", "pi is 2 or 7"),
    ("I met Alice yesterday.", "I met Bob yesterday."),
    ("call my_func now", "call other_fn now"),
    ("use getValue here", "use fooBar here"),
    ("model gpt4 wins", "model x2 wins"),
])
def test_pattern_view_masks_slots(a: str, b: str) -> None:
    pa_, pb = pattern_hashes(a, b)
    assert pa_ == pb
    assert surface_hashes(a, b)[0] != surface_hashes(a, b)[1]


@pytest.mark.parametrize(("a", "b"), [
    ("我有3个苹果和12个梨", "我有7个苹果和5个梨"),
    ("他笑着说“你好”然后走了", "他笑着说“再见吧”然后走了"),
    ("東京タワーは2023年に完成", "東京タワーは1958年に完成"),
])
def test_pattern_view_masks_slots_in_cjk_text(a: str, b: str) -> None:
    """Split letters are plain words; numbers and quotes right next to them are still slots."""
    pa_, pb = pattern_hashes(a, b)
    assert pa_ == pb and len(pa_) >= 8
    assert surface_hashes(a, b)[0] != surface_hashes(a, b)[1]


def test_pattern_view_lowercases_plain_words() -> None:
    assert pattern_hashes("The cat sat")[0] == pattern_hashes("the cat sat")[0]
    assert pattern_hashes("the cat sat")[0] == [ref_token_hash(w) for w in ("the", "cat", "sat")]


def test_pattern_view_keeps_sentence_initial_words_and_plain_words() -> None:
    # rules 2: a capitalized word at a sentence start is not a name: it is lowercased, not masked
    a, b = pattern_hashes("Alice met me.", "Bob met me.", rules=2)
    assert a != b
    a, b = pattern_hashes("He said. Alice met me.", "He said. Bob met me.", rules=2)
    assert a != b
    # rules 3: unless it is a common sentence starter, it is a name (tests/test_pattern_names.py)
    a, b = pattern_hashes("He said. Alice met me.", "He said. Bob met me.", rules=3)
    assert a == b
    a, b = pattern_hashes("the red car", "the blue car")
    assert a != b


def test_pattern_view_mask_tokens_and_offsets() -> None:
    text = "Translate 'cat' into French by 2024."
    tok = Tokenizer(TextSpec(views=("surface", "pattern")))
    tb = tok.tokenize([text], "pattern", with_offsets=True)
    spans = [tb.texts[0][s:e] for s, e in zip(tb.token_starts.tolist(), tb.token_ends.tolist(), strict=True)]
    assert spans == ["Translate", "'cat'", "into", "French", "by", "2024"]
    from probe.text.tokenizers import mask_hashes

    masks = mask_hashes(0).tolist()
    assert tb.token_hashes.tolist() == [ref_token_hash("translate"), masks[1], ref_token_hash("into"), masks[2],
                                        ref_token_hash("by"), masks[0]]


@given(texts=st.lists(WORDISH, max_size=5))
def test_pattern_view_offsets_map_to_nfkc_text(texts: list[str]) -> None:
    tb = Tokenizer(TextSpec(views=("surface", "pattern"))).tokenize(texts, "pattern", with_offsets=True)
    assert tb.doc_token_ends.shape[0] == len(texts)
    counts = tb.doc_token_counts().tolist()
    i = 0
    for d, c in enumerate(counts):
        for _ in range(c):
            s, e = int(tb.token_starts[i]), int(tb.token_ends[i])
            assert 0 <= s < e <= len(tb.texts[d])
            i += 1


def test_pattern_view_requires_words_tokenizer() -> None:
    with pytest.raises(ConfigError, match="pattern view needs the words tokenizer"):
        TextSpec(tokenizer="chars", views=("surface", "pattern"))


# --------------------------------------------------------------------------- hf: tokenizer.json
SENTENCES = [
    "the cat sat on the mat", "the dog sat on the log", "a quick brown fox jumps over the lazy dog",
    "contamination detection with hashed n grams", "the cat and the dog are friends",
]


def make_hf_dir(root: Path) -> Path:
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import models, pre_tokenizers, trainers

    tok = HFTokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(SENTENCES, trainers.BpeTrainer(vocab_size=120, special_tokens=["[UNK]"]))
    root.mkdir(parents=True, exist_ok=True)
    tok.save(str(root / "tokenizer.json"))
    sentinel = root / "EXECUTED"
    (root / "tokenization_evil.py").write_text(
        f"import pathlib\npathlib.Path({str(sentinel)!r}).write_text('pwned')\n"
        "class EvilTokenizer:\n    pass\n")
    auto_map = {"AutoTokenizer": ["tokenization_evil.EvilTokenizer", None]}
    (root / "tokenizer_config.json").write_text(json.dumps({"auto_map": auto_map, "tokenizer_class": "Evil"}))
    (root / "config.json").write_text(json.dumps({"auto_map": auto_map}))
    (root / "__init__.py").write_text(f"import pathlib\npathlib.Path({str(sentinel)!r}).write_text('pwned')\n")
    return root


def test_hf_tokenizer_hashes_ids_and_never_runs_code(tmp_path: Path) -> None:
    from tokenizers import Tokenizer as HFTokenizer

    d = make_hf_dir(tmp_path / "tok")
    spec = TextSpec(tokenizer=f"hf:{d}").with_tokenizer_hash()
    assert spec.tokenizer_sha256 is not None and len(spec.tokenizer_sha256) == 64
    tok = Tokenizer(spec)
    texts = ["The cat sat on the mat.", "A lazy DOG", ""]
    tb = tok.tokenize(texts, with_offsets=True)
    ref = HFTokenizer.from_file(str(d / "tokenizer.json"))
    ids = [ref.encode(ref_normalize(t), add_special_tokens=False).ids for t in texts]
    assert tb.doc_token_counts().tolist() == [len(x) for x in ids]
    assert tb.token_hashes.tolist() == [ref_id_hash(i) for x in ids for i in x]
    assert tb.token_hashes.tolist() == kernels.hash_token_ids(np.array([i for x in ids for i in x]), 0).tolist()
    assert not (d / "EXECUTED").exists()
    # a path to the file itself works the same way
    assert load_hf_tokenizer(str(d / "tokenizer.json")).get_vocab_size() == ref.get_vocab_size()
    assert not (d / "EXECUTED").exists()


def test_hf_tokenizer_missing_file_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="hub downloads are disabled"):
        Tokenizer(TextSpec(tokenizer="hf:gpt2"))
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(ConfigError, match="cannot load tokenizer"):
        Tokenizer(TextSpec(tokenizer=f"hf:{tmp_path}"))
    with pytest.raises(ConfigError, match="cannot read tokenizer file"):
        TextSpec(tokenizer=f"hf:{tmp_path / 'nope.json'}").with_tokenizer_hash()


def test_hf_tokenizer_file_changed_after_indexing_is_refused(tmp_path: Path) -> None:
    d = make_hf_dir(tmp_path / "tok")
    spec = TextSpec(tokenizer=f"hf:{d}").with_tokenizer_hash()
    data = json.loads((d / "tokenizer.json").read_text())
    data["model"]["vocab"]["zzzz"] = max(data["model"]["vocab"].values()) + 1
    (d / "tokenizer.json").write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="changed: sha256"):
        Tokenizer(spec)


def test_split_letters_lie_at_or_above_thai() -> None:
    """kernels._token_capacity skips code points below U+0E00 when it counts split letters."""
    from probe.text.tokenizers import char_classes, word_classes

    assert not (char_classes()[:0x0E00] & kernels.CLS_SCRIPT).any()
    assert not (word_classes(2)[:0x0E00] & kernels.WORDS_SPLIT).any()
    assert not (word_classes(1) & kernels.WORDS_SPLIT).any()
