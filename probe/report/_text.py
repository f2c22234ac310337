"""Text helpers shared by the renderers: make data visible, never active.

Dataset and corpus text reaches HTML, Markdown, JUnit XML and the terminal. Before
any format-specific escaping, :func:`visible` replaces every character that could
change how the surrounding output is *interpreted or displayed* with a visible
``\\uXXXX`` escape: C0/C1 controls (ANSI/OSC sequences, ``\\r``), bidirectional
overrides and isolates (Trojan-Source style reordering), line/paragraph separators,
lone surrogates and the XML-illegal non-characters. Newlines and tabs are kept
(renderers decide what to do with them).
"""

from __future__ import annotations

_BIDI = frozenset(range(0x202A, 0x202F)) | frozenset(range(0x2066, 0x206A)) | {0x200E, 0x200F, 0x061C}


def _needs_escape(code: int) -> bool:
    return (
        (code < 32 and code not in (9, 10))
        or 0x7F <= code < 0xA0
        or code in _BIDI
        or code in (0x2028, 0x2029, 0xFEFF, 0xFFFE, 0xFFFF)
        or 0xD800 <= code <= 0xDFFF
    )


def visible(text: str | None) -> str:
    """``text`` with controls, bidi overrides and surrogates shown as ``\\uXXXX``."""
    if not text:
        return ""
    if not any(_needs_escape(ord(ch)) for ch in text):
        return text
    return "".join(f"\\u{ord(ch):04x}" if _needs_escape(ord(ch)) else ch for ch in text)


def pct(x: float | None) -> str:
    """A share as a percentage for people: ``0 %``, ``0.14 %``, ``20 %``, ``42.9 %``; ``n/a`` for None."""
    if x is None:
        return "n/a"
    v = 100 * float(x)
    if v == 0:
        return "0 %"
    if v < 1:
        return f"{v:.2f} %"
    return f"{v:.0f} %" if round(v, 1) == int(v) else f"{v:.1f} %"


def truncate(text: str, limit: int) -> str:
    """At most ``limit`` characters, with an ellipsis when cut."""
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def split_span(text: str, start: int | None, end: int | None, context: int | None = None) -> tuple[str, str, str]:
    """(before, span, after) of ``text`` at character offsets, clamped to the text.

    With ``context``, ``before`` and ``after`` are cut to that many characters
    (an ellipsis marks the cut). Offsets outside the text yield an empty span.
    """
    n = len(text)
    a = min(max(0, start or 0), n)
    b = min(max(a, end if end is not None else a), n)
    before, span, after = text[:a], text[a:b], text[b:]
    if context is not None:
        if len(before) > context:
            before = "…" + before[len(before) - context:]
        if len(after) > context:
            after = after[:context] + "…"
    return before, span, after


def split_snippet(snippet: str, context_chars: int = 160) -> tuple[str, str, str]:
    """Split a provenance snippet ``…left[[match]]right…`` into its three parts.

    The corpus text itself may contain ``[[`` or ``]]``; the markers are found by
    position first (the snippet has exactly ``context_chars`` on a side that starts
    or ends with ``…``), then by the first ``[[`` / last ``]]``. Without markers the
    whole snippet is returned as ``before``.
    """
    i = -1
    if snippet.startswith("…") and snippet[1 + context_chars: 3 + context_chars] == "[[":
        i = 1 + context_chars
    else:
        i = snippet.find("[[")
    j = -1
    if snippet.endswith("…"):
        cand = len(snippet) - 1 - context_chars - 2
        if cand > i >= 0 and snippet[cand: cand + 2] == "]]":
            j = cand
    if j < 0 and i >= 0:
        j = snippet.rfind("]]")
    if i < 0 or j < i + 2:
        return snippet, "", ""
    return snippet[:i], snippet[i + 2: j], snippet[j + 2:]
