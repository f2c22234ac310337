"""Tokenizers: turn a batch of texts into token hashes (and optional offsets).

Three tokenizers, chosen by the text spec:

- ``words`` (default, no download): maximal runs of *word characters*, i.e. code
  points of Unicode categories L* (letters), M* (marks, so Indic and Arabic words
  stay whole), N* (numbers), plus ``_``. Everything else (spaces, punctuation,
  symbols) separates tokens and is dropped. Applied to the normalized text.
  Under ``tokenizer_rules`` 2 (the default for new indexes) a letter of a script
  written without spaces (:data:`SCRIPT_SPLIT_RANGES`: Han, Hiragana, Katakana,
  Thai, Lao, Khmer, Myanmar) is a token of its own together with the combining
  marks after it (a character cluster), as BERT's basic tokenizer and UAX #29 do for
  ideographs; otherwise a Chinese sentence would be one or two tokens. Rules 1 (an
  index built before) keep the plain runs.
- ``chars``: every word character is a token; spaces, punctuation and symbols are
  dropped (the GPT-4 report's 50-character definition works on this). It already
  splits CJK per character; the tokenizer rules do not change it.
- ``hf:PATH``: a local ``tokenizer.json`` loaded with ``tokenizers.Tokenizer.from_file``
  (data only: never a hub download, never remote code). Token ids are hashed.

The pattern view (``words`` only) re-tokenizes the NFKC (case-preserving) text and
masks slots, splitting script letters by the same rules; see
:func:`probe.kernels.tokenize_pattern`.

A batch is tokenized in one compiled pass over the concatenated code points; ASCII
batches use one byte per character.
"""

from __future__ import annotations

import hashlib
import os
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from probe import kernels
from probe.config import TextSpec
from probe.errors import ConfigError
from probe.text.normalize import get_normalizer, normalize_nfkc

MASK_TOKENS = ("<num>", "<q>", "<name>", "<id>")
_QUOTES = "'\"`\u2018\u2019\u201a\u201b\u201c\u201d\u201e\u201f\u00ab\u00bb\u2039\u203a"
_SENTENCE_END = ".!?\u3002\uff01\uff1f"
_NEWLINES = "\n\r\x0b\x0c\x85\u2028\u2029"
# Blocks of the scripts written without spaces between words. Their letters (L*) are split per
# character cluster under tokenizer rules 2; their digits (N*) and marks (M*) are not: numbers stay
# runs, and a mark attaches to the letter before it. Block ranges, not the Unicode Script property
# (which Python does not expose), so the rule is the same on every Unicode version.
SCRIPT_SPLIT_RANGES: tuple[tuple[int, int], ...] = (
    (0x0E00, 0x0E7F),  # Thai
    (0x0E80, 0x0EFF),  # Lao
    (0x1000, 0x109F),  # Myanmar
    (0x1780, 0x17FF),  # Khmer
    (0x19E0, 0x19FF),  # Khmer symbols
    (0x3005, 0x3007),  # 々 〆 〇 (ideographic iteration mark, closing mark, number zero)
    (0x3021, 0x3029),  # Hangzhou numerals
    (0x3031, 0x3035),  # kana repeat marks
    (0x3038, 0x303C),  # Han/kana marks
    (0x3040, 0x309F),  # Hiragana
    (0x30A0, 0x30FF),  # Katakana
    (0x31F0, 0x31FF),  # Katakana phonetic extensions
    (0x3400, 0x4DBF),  # CJK Unified Ideographs Extension A
    (0x4E00, 0x9FFF),  # CJK Unified Ideographs
    (0xA9E0, 0xA9FF),  # Myanmar Extended-B
    (0xAA60, 0xAA7F),  # Myanmar Extended-A
    (0xF900, 0xFAFF),  # CJK Compatibility Ideographs
    (0xFF66, 0xFF9F),  # halfwidth Katakana (NFKC widens them; kept under the `none` normalizer)
    (0x1AFF0, 0x1B16F),  # Kana Extended-B, Kana Supplement, Kana Extended-A, Small Kana Extension
    (0x20000, 0x323AF),  # CJK Unified Ideographs Extensions B..I, Compatibility Supplement
)


@dataclass(frozen=True, slots=True)
class TokenBatch:
    """Tokens of a batch of documents.

    ``doc_token_ends[d]`` is the end index (exclusive) of document d's tokens in
    ``token_hashes``. Offsets, when requested, are code-point offsets into each
    document's *tokenized* text (see :attr:`texts`), relative to the document start.
    """

    token_hashes: np.ndarray
    doc_token_ends: np.ndarray
    token_starts: np.ndarray | None = None
    token_ends: np.ndarray | None = None
    texts: Sequence[str] | None = None  # the normalized texts the offsets refer to

    @property
    def num_tokens(self) -> int:
        return int(self.token_hashes.shape[0])

    def doc_token_counts(self) -> np.ndarray:
        return np.diff(self.doc_token_ends, prepend=0)


_LUT_VERSION = 2  # 2: uint16 flags with CLS_SCRIPT and CLS_MARK


def _cached_lut(name: str, build: Callable[[], np.ndarray]) -> np.ndarray:
    """Load a code-point table from the user cache, or build and store it.

    Building walks all 1.1 M code points in Python (~0.4 s); every worker process
    needs the tables, so they are cached per Unicode version. The cache is an
    optimization only: any problem with it falls back to building.
    """
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "probe"
    # the key covers everything the tables are built from, so editing a class list invalidates them
    key = hashlib.sha256(
        f"{_LUT_VERSION}|{_QUOTES}|{_SENTENCE_END}|{_NEWLINES}|{SCRIPT_SPLIT_RANGES}".encode()
    ).hexdigest()[:12]
    path = base / f"{name}-unicode{unicodedata.unidata_version}-{key}.npy"
    try:
        arr = np.load(path, allow_pickle=False)
        if arr.shape == (0x110000,):
            return arr
    except (OSError, ValueError):
        pass
    arr = build()
    try:
        base.mkdir(parents=True, exist_ok=True)
        tmp = base / f".{path.name}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            np.save(f, arr, allow_pickle=False)
        os.replace(tmp, path)
    except OSError:
        pass
    return arr


@lru_cache(maxsize=1)
def char_classes() -> np.ndarray:
    """uint16 class flags per code point (0..0x10FFFF); built once per process."""
    return _cached_lut("charclasses", _build_char_classes)


def _build_char_classes() -> np.ndarray:
    lut = np.zeros(0x110000, dtype=np.uint16)
    category = unicodedata.category
    cats = [category(chr(i)) for i in range(0x110000)]
    word = np.fromiter((c[0] in "LMN" for c in cats), dtype=bool, count=0x110000)
    letter = np.fromiter((c[0] == "L" for c in cats), dtype=bool, count=0x110000)
    mark = np.fromiter((c[0] == "M" for c in cats), dtype=bool, count=0x110000)
    in_split_script = np.zeros(0x110000, dtype=bool)
    for lo, hi in SCRIPT_SPLIT_RANGES:
        in_split_script[lo : hi + 1] = True
    lut[letter & in_split_script] |= kernels.CLS_SCRIPT
    lut[mark] |= kernels.CLS_MARK
    upper = np.fromiter((c in ("Lu", "Lt") for c in cats), dtype=bool, count=0x110000)
    digit = np.fromiter((c[0] == "N" for c in cats), dtype=bool, count=0x110000)
    space = np.fromiter((c == "Zs" for c in cats), dtype=bool, count=0x110000)
    lut[word] |= kernels.CLS_WORD
    lut[upper] |= kernels.CLS_UPPER
    lut[digit] |= kernels.CLS_DIGIT
    lut[space] |= kernels.CLS_SPACE
    lut[ord("_")] |= kernels.CLS_WORD
    lut[ord("\t")] |= kernels.CLS_SPACE
    for ch in _QUOTES:
        lut[ord(ch)] |= kernels.CLS_QUOTE
    for ch in _SENTENCE_END:
        lut[ord(ch)] |= kernels.CLS_SENTENCE_END
    for ch in _NEWLINES:
        lut[ord(ch)] |= kernels.CLS_NEWLINE
    return lut


@lru_cache(maxsize=2)
def word_classes(tokenizer_rules: int) -> np.ndarray:
    """The words tokenizer's uint8 table (kernels.WORDS_*) under the given tokenizer rules.

    Derived from :func:`char_classes` with whole-array operations (milliseconds). Under rules 1
    split letters are ordinary run letters, so the table is the plain-runs tokenizer.
    """
    classes = char_classes()
    word = (classes & kernels.CLS_WORD) != 0
    split = (classes & kernels.CLS_SCRIPT) != 0 if tokenizer_rules >= 2 else np.zeros_like(word)
    lut = np.zeros(0x110000, dtype=np.uint8)
    lut[word & ~split] |= kernels.WORDS_RUN
    lut[split] |= kernels.WORDS_SPLIT
    lut[(classes & kernels.CLS_MARK) != 0] |= kernels.WORDS_MARK
    return lut


@lru_cache(maxsize=1)
def simple_lower() -> np.ndarray:
    """Per-code-point lowercase mapping (1:1 only; multi-char lowercasings keep the code point)."""
    return _cached_lut("simplelower", _build_simple_lower)


def _build_simple_lower() -> np.ndarray:
    out = np.arange(0x110000, dtype=np.uint32)
    for i in range(0x110000):
        low = chr(i).lower()
        if len(low) == 1 and ord(low) != i:
            out[i] = ord(low)
    return out


def encode_codepoints(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate texts as a code-point array (uint8 when all ASCII) + document end offsets."""
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    doc_ends = np.cumsum(lengths)
    n_cps = int(doc_ends[-1]) if len(texts) else 0
    buf = np.frombuffer(b"".join([t.encode("utf-8") for t in texts]), dtype=np.uint8)
    if buf.shape[0] == n_cps:  # all ASCII: bytes are code points
        return buf, doc_ends
    return kernels.utf8_to_codepoints(buf, n_cps), doc_ends


# Rules 3: common words that start English sentences (pronouns, determiners, conjunctions, question
# words, prepositions, auxiliaries, frequent adverbs and instruction verbs). A capitalized word at a
# sentence start that is not one of these is masked as a name by the pattern view. Part of the text
# spec (tokenizer_rules 3): changing the list changes pattern hashes, so it needs new rules.
SENTENCE_STARTERS = frozenset("""
a about above according actually after again against all almost also although always among an and
another any anyone anything are around as at back based be because been before being below besides
between both but by calculate can choose classify compare compute consider could create describe
despite determine did do does doing don during each either even every everyone everything evaluate
explain find first five for four from generate give given good great had has have having he her here
hers him his how however i identify if imagine in include instead is it its just last lastly let like
list make many may maybe me meanwhile might more moreover most much must my name neither never next no
none nor not nothing now of often on once one only or other others our out over perhaps please provide
rather read rewrite second select several she should show similarly simplify since six so solve some
someone something sometimes soon still such suggest suppose take tell ten than thank thanks that the
their them then there therefore these they third this those though three through thus to today too
translate true two under unless until up upon use usually very was we well were what whatever when
where whether which while who whom whose why will with within without would write yes yet you your
""".split())


@lru_cache(maxsize=8)
def sentence_starter_hashes(seed: int) -> np.ndarray:
    """Sorted token hashes of :data:`SENTENCE_STARTERS` (what the pattern kernel compares under rules 3)."""
    return np.unique(np.array(
        [kernels.hash_codepoints(np.frombuffer(w.encode("utf-32-le"), np.uint32), seed) for w in SENTENCE_STARTERS],
        dtype=np.uint64))


def pattern_initial_words(spec: TextSpec) -> np.ndarray:
    """The pattern kernel's ``initial_words`` for the spec's tokenizer rules (empty before rules 3)."""
    return sentence_starter_hashes(spec.seed) if spec.tokenizer_rules >= 3 else np.zeros(0, np.uint64)


def mask_hashes(seed: int) -> np.ndarray:
    """Token hashes of the pattern view's mask tokens (no word char can produce them)."""
    return np.array(
        [kernels.hash_codepoints(np.frombuffer(t.encode("utf-32-le"), np.uint32), seed) for t in MASK_TOKENS],
        dtype=np.uint64,
    )


def _relative_offsets(starts: np.ndarray, ends: np.ndarray, doc_token_ends: np.ndarray, doc_ends: np.ndarray):
    doc_starts = np.concatenate(([0], doc_ends[:-1])) if doc_ends.shape[0] else doc_ends
    counts = np.diff(doc_token_ends, prepend=0)
    base = np.repeat(doc_starts, counts)
    return starts - base, ends - base


def script_split_flag(spec: TextSpec) -> np.uint16:
    """The kernels' ``script_split`` argument for the spec's tokenizer rules."""
    return kernels.CLS_SCRIPT if spec.tokenizer_rules >= 2 else kernels.NO_SCRIPT_SPLIT


class Tokenizer:
    """Tokenizes batches of raw texts under one text spec (normalizer + tokenizer)."""

    def __init__(self, spec: TextSpec) -> None:
        self.spec = spec
        self._script_split = script_split_flag(spec)
        self._word_lut: np.ndarray | None = None  # built on first use (hf: tokenizers never need it)
        self._normalize = get_normalizer(spec.normalizer)
        self._hf = None
        if spec.tokenizer.startswith("hf:"):
            self._hf = load_hf_tokenizer(str(spec.tokenizer_path()))
            if spec.tokenizer_sha256 is not None:
                actual = spec.with_tokenizer_hash().tokenizer_sha256
                if actual != spec.tokenizer_sha256:
                    # the file changed since the index was built: its token ids (and so every
                    # hash) may differ, which would silently turn matches into misses
                    raise ConfigError(
                        f"tokenizer file {spec.tokenizer_path()} (for {spec.tokenizer!r}) changed: sha256 "
                        f"{actual} != {spec.tokenizer_sha256} recorded in the text spec"
                    )

    def normalize(self, texts: Sequence[str]) -> list[str]:
        norm = self._normalize
        return [norm(t) for t in texts]

    def normalize_one(self, text: str) -> str:
        return self._normalize(text)

    def token_texts(self, text: str) -> list[str]:
        """The surface tokens of one text as strings (for exact verification of matches)."""
        tb = self.tokenize([text], "surface", with_offsets=True)
        norm = tb.texts[0]
        return [norm[a:b] for a, b in zip(tb.token_starts.tolist(), tb.token_ends.tolist(), strict=True)]

    def tokenize(self, texts: Sequence[str], view: str = "surface", with_offsets: bool = False) -> TokenBatch:
        """Token hashes of every text; offsets (if asked) index the normalized texts."""
        seed = self.spec.seed
        if view == "pattern":
            norm = [normalize_nfkc(t) for t in texts]
            cps, doc_ends = encode_codepoints(norm)
            # an ASCII batch holds no split letter: the plain-runs path is the same result, faster
            split = kernels.NO_SCRIPT_SPLIT if cps.dtype == np.uint8 else self._script_split
            h, dte, s, e = kernels.tokenize_pattern(
                cps, doc_ends, char_classes(), simple_lower(), mask_hashes(seed), seed, with_offsets, split,
                pattern_initial_words(self.spec),
            )
        elif view != "surface":
            raise ConfigError(f"unknown view {view!r}")
        elif self._hf is not None:
            return self._tokenize_hf(texts, with_offsets)
        else:
            norm = self.normalize(texts)
            cps, doc_ends = encode_codepoints(norm)
            words = self.spec.tokenizer == "words"
            if self._word_lut is None:  # chars: every word character is a token, whatever the rules
                self._word_lut = word_classes(self.spec.tokenizer_rules if words else 1)
            kernel = kernels.tokenize_words if words else kernels.tokenize_chars
            h, dte, s, e = kernel(cps, doc_ends, self._word_lut, seed, with_offsets)
        if not with_offsets:
            return TokenBatch(h, dte)
        s, e = _relative_offsets(s, e, dte, doc_ends)
        return TokenBatch(h, dte, s, e, norm)

    def _tokenize_hf(self, texts: Sequence[str], with_offsets: bool) -> TokenBatch:
        norm = self.normalize(texts)
        encodings = self._hf.encode_batch(norm, add_special_tokens=False)
        counts = np.fromiter((len(enc.ids) for enc in encodings), dtype=np.int64, count=len(encodings))
        ids = np.fromiter((i for enc in encodings for i in enc.ids), dtype=np.int64, count=int(counts.sum()))
        hashes = kernels.hash_token_ids(ids, self.spec.seed)
        dte = np.cumsum(counts)
        if not with_offsets:
            return TokenBatch(hashes, dte)
        offs = np.array([o for enc in encodings for o in enc.offsets], dtype=np.int64).reshape(-1, 2)
        return TokenBatch(hashes, dte, offs[:, 0].copy(), offs[:, 1].copy(), norm)


def load_hf_tokenizer(path: str):
    """Load a local ``tokenizer.json`` (or a directory holding one) as data only.

    Never resolves hub names and never runs repository code: a directory that
    carries Python files or an ``auto_map`` is still read only through its JSON.
    """
    p = Path(path)
    if p.is_dir():
        p = p / "tokenizer.json"
    if not p.is_file():
        raise ConfigError(
            f"tokenizer file {p} not found: pass hf:PATH to a local tokenizer.json (hub downloads are disabled)"
        )
    try:
        from tokenizers import Tokenizer as HFTokenizer
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise ConfigError("the hf: tokenizer needs the 'tokenizers' package") from e
    try:
        return HFTokenizer.from_file(str(p))
    except Exception as e:  # tokenizers raises plain Exception on bad JSON
        raise ConfigError(f"cannot load tokenizer {p}: {e}") from e
