"""Normalization: idempotent for every string (RELIABILITY H1), surrogates never crash, versions recorded."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from helpers import ref_normalize
from probe.config import TextSpec
from probe.errors import ConfigError
from probe.text.normalize import (
    NORMALIZERS,
    UNICODE_VERSION,
    get_normalizer,
    normalize_nfkc,
    normalize_nfkc_casefold,
    normalize_none,
)

HOSTILE = st.characters(categories=["Cs", "Cc", "Cf", "Mn", "Zs"])
# st.text() never yields surrogates; mix them in explicitly (RELIABILITY §3).
TEXTS = st.one_of(
    st.text(),
    st.text(HOSTILE),
    st.text(st.one_of(st.characters(), HOSTILE, st.sampled_from("\u037a\u0345\u1e9e\ufb01\u2126ǅİ\u00dfΣς"))),
)


@pytest.mark.parametrize("name", NORMALIZERS)
@given(text=TEXTS)
@example(text="\u037a")  # GREEK YPOGEGRAMMENI: NFKC(casefold(x)) alone is not idempotent here
@example(text="\ud800")
@example(text="a\udfffb\ud83d")
def test_normalize_idempotent(name: str, text: str) -> None:
    norm = get_normalizer(name)
    once = norm(text)
    assert norm(once) == once
    once.encode("utf-8")  # never a lone surrogate left: encoding cannot fail later


@given(text=TEXTS)
def test_nfkc_casefold_matches_reference(text: str) -> None:
    assert normalize_nfkc_casefold(text) == ref_normalize(text)


def test_exhaustive_single_code_points_idempotent() -> None:
    """Every code point (0..0x10FFFF, surrogates included): the naive form fails on 637 of them."""
    bad = []
    naive_bad = 0
    for cp in range(0x110000):
        ch = chr(cp)
        once = normalize_nfkc_casefold(ch)
        if normalize_nfkc_casefold(once) != once:
            bad.append(cp)
        if 0xD800 <= cp <= 0xDFFF:
            continue
        naive = unicodedata.normalize("NFKC", ch.casefold())
        naive_bad += unicodedata.normalize("NFKC", naive.casefold()) != naive
    assert bad == []
    assert naive_bad > 0  # the reason for the inner NFKC (637 on Unicode 14)


def test_surrogates_become_replacement_character() -> None:
    for norm in (normalize_nfkc_casefold, normalize_nfkc, normalize_none):
        assert norm("a\ud800b") == "a\ufffdb"
        assert norm("\udfff") == "\ufffd"


def test_ascii_fast_path_equals_full_path() -> None:
    text = "Hello, World! "
    assert normalize_nfkc_casefold(text) == ref_normalize(text) == "hello, world! "
    assert normalize_nfkc("ABC") == "ABC"
    assert normalize_none("ABC") == "ABC"


@pytest.mark.parametrize(("raw", "expected"), [
    ("Straße", "strasse"),
    ("ﬁnal", "final"),
    ("Ｆｕｌｌ", "full"),
    ("x²", "x2"),
    ("ǅemal", "džemal"),
    ("ΣΊΣΥΦΟΣ", "σίσυφοσ"),
    ("e\u0301", "\u00e9"),  # composed
])
def test_nfkc_casefold_examples(raw: str, expected: str) -> None:
    assert normalize_nfkc_casefold(raw) == expected


def test_nfkc_keeps_case_and_none_is_identity() -> None:
    assert normalize_nfkc("Ｆｕｌｌ Straße") == "Full Straße"
    assert normalize_none("Ｆｕｌｌ") == "Ｆｕｌｌ"


def test_unknown_normalizer_is_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown normalizer 'nfd'"):
        get_normalizer("nfd")
    with pytest.raises(ConfigError, match="unknown normalizer"):
        TextSpec(normalizer="nfd")


def test_unicode_version_recorded_in_spec() -> None:
    assert UNICODE_VERSION == unicodedata.unidata_version
    assert TextSpec().to_dict()["unicode_version"] == unicodedata.unidata_version
    # a different Unicode database is a different spec (an index built elsewhere is refused)
    other = TextSpec(unicode_version="15.1.0")
    assert other.diff(TextSpec()) == [f"unicode_version: '15.1.0' != {UNICODE_VERSION!r}"]
    assert other.fingerprint() != TextSpec().fingerprint()
