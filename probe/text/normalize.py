"""Text normalization: the first half of the text spec, shared by index and query.

Why NFKC(casefold(NFKC(x))) and not NFKC(casefold(x)): the shorter form is not
idempotent for 637 code points (e.g. U+037A GREEK YPOGEGRAMMENI), so normalizing
an already-normalized query could change its n-grams. The outer NFKC re-composes
what casefolding decomposed; the inner one folds compatibility forms first.

Punctuation and whitespace are *not* touched here: tokenizers decide what a token
is (the ``words`` tokenizer treats every non-word character as a separator, the
``chars`` tokenizer drops them). Keeping this function pure string → string makes
the property "normalize is idempotent" easy to state and test.

Lone surrogates (possible in Python strings decoded with ``surrogatepass`` or from
JSON escapes) are replaced by U+FFFD so that later UTF encodings cannot fail.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

NORMALIZERS = ("nfkc_casefold", "nfkc", "none")
UNICODE_VERSION: str = unicodedata.unidata_version


_SURROGATE = re.compile("[\ud800-\udfff]")


def _replace_surrogates(text: str) -> str:
    # (an encode/decode round trip with "replace" would give "?", not U+FFFD as documented)
    return _SURROGATE.sub("\ufffd", text) if _has_surrogate(text) else text


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def normalize_nfkc_casefold(text: str) -> str:
    """NFKC(casefold(NFKC(text))); ASCII takes a fast path (casefold == lower there)."""
    if text.isascii():
        return text.lower()
    text = _replace_surrogates(text)
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


def normalize_nfkc(text: str) -> str:
    """NFKC only: keeps case (used by tokenizers that are case-sensitive, e.g. BPE)."""
    if text.isascii():
        return text
    return unicodedata.normalize("NFKC", _replace_surrogates(text))


def normalize_none(text: str) -> str:
    """Identity, except lone surrogates are replaced so encoding cannot fail."""
    return text if text.isascii() else _replace_surrogates(text)


def get_normalizer(name: str) -> Callable[[str], str]:
    """Return the normalizer function registered under ``name``."""
    try:
        return {
            "nfkc_casefold": normalize_nfkc_casefold,
            "nfkc": normalize_nfkc,
            "none": normalize_none,
        }[name]
    except KeyError:
        from probe.errors import ConfigError

        raise ConfigError(f"unknown normalizer {name!r}; choose one of {', '.join(NORMALIZERS)}") from None
