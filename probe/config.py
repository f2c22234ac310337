"""Frozen configuration: the text spec that makes every count meaningful.

The :class:`TextSpec` is written into an index at creation and re-used verbatim at
query time. Anything that changes which hashes a text produces belongs here, and
its fingerprint is what compatibility checks compare.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from probe.errors import ConfigError
from probe.text.normalize import NORMALIZERS, UNICODE_VERSION

VIEWS = ("surface", "pattern")
HASH_ALGORITHM = "probe-ngram-v1"  # fnv1a-64 over code points/ids + fmix64; polynomial n-gram combine
DEFAULT_NS = (8, 13)
# Versions of the words tokenizer's (and pattern view's) segmentation rules, see probe.text.tokenizers:
# 1: every maximal run of word characters is a token; 2: as 1, but each letter of a script written without
# spaces (Han, Hiragana, Katakana, Thai, Lao, Khmer, Myanmar) with its combining marks is a token of its own;
# 3: as 2, and the pattern view masks a capitalized sentence-initial word that is not a common sentence
# starter as <name> (the surface view is the same as under 2).
TOKENIZER_RULES = (1, 2, 3)
LEGACY_TOKENIZER_RULES = 1  # what a stored spec without the field was built with


@dataclass(frozen=True)
class TextSpec:
    """Everything that decides which n-gram hashes a text produces.

    ``sample_mod`` K keeps an n-gram iff ``hash % K == 0`` (1 = exact); the same
    rule applies at query time, so long shared spans are still found.
    ``doc_sample_k`` bounds the per-n-gram document-id sample used for joint
    (same-document) coverage: exact for n-grams in at most k documents of a segment.
    ``tokenizer_rules`` versions how the ``words`` tokenizer and the pattern view segment text
    (:data:`TOKENIZER_RULES`). New specs get the newest rules; a stored spec written before the field
    existed loads as :data:`LEGACY_TOKENIZER_RULES`, and a legacy spec leaves the field out of
    :meth:`to_dict`, so an existing index keeps its fingerprint and scans exactly as it was built.
    """

    normalizer: str = "nfkc_casefold"
    tokenizer: str = "words"  # "words" | "chars" | "hf:/path/to/tokenizer.json"
    tokenizer_sha256: str | None = None  # filled for hf: tokenizers (content of tokenizer.json)
    views: tuple[str, ...] = ("surface",)
    ns: tuple[int, ...] = DEFAULT_NS
    seed: int = 0
    sample_mod: int = 1
    bucket_bits: int = 8
    doc_sample_k: int = 4
    hash_algorithm: str = HASH_ALGORITHM
    unicode_version: str = UNICODE_VERSION
    tokenizer_rules: int = TOKENIZER_RULES[-1]
    # Where an hf: tokenizer's file is actually read from: the copy stored inside the index
    # (probe.index.format.attach_tokenizer). Not part of the spec's identity, never serialized:
    # moving an index, or opening it from another directory, changes nothing the spec says.
    tokenizer_file: str | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.normalizer not in NORMALIZERS:
            raise ConfigError(f"unknown normalizer {self.normalizer!r}; choose one of {', '.join(NORMALIZERS)}")
        if not (self.tokenizer in ("words", "chars") or self.tokenizer.startswith("hf:")):
            raise ConfigError(f"unknown tokenizer {self.tokenizer!r}; use words, chars or hf:PATH/tokenizer.json")
        bad_views = [v for v in self.views if v not in VIEWS]
        if not self.views or bad_views:
            raise ConfigError(f"unknown view(s) {bad_views or '(none)'}; choose from {', '.join(VIEWS)}")
        if self.tokenizer_rules not in TOKENIZER_RULES:
            raise ConfigError(f"unknown tokenizer_rules {self.tokenizer_rules!r}; this probe knows "
                              f"{', '.join(map(str, TOKENIZER_RULES))} (written by a newer probe?)")
        if "pattern" in self.views and self.tokenizer != "words":
            raise ConfigError("the pattern view needs the words tokenizer")
        if not self.ns or any((not isinstance(n, int)) or n < 1 or n > 256 for n in self.ns):
            raise ConfigError(f"n values must be integers in 1..256, got {list(self.ns)}")
        if self.sample_mod < 1:
            raise ConfigError(f"--sample-mod must be >= 1, got {self.sample_mod}")
        if not 0 <= self.bucket_bits <= 16:
            raise ConfigError(f"bucket_bits must be in 0..16, got {self.bucket_bits}")
        if not 0 <= self.doc_sample_k <= 64:
            raise ConfigError(f"doc_sample_k must be in 0..64, got {self.doc_sample_k}")
        if not 0 <= self.seed < 2**64:
            raise ConfigError(f"seed must be in 0..2^64-1, got {self.seed}")
        # Canonical order so that "--n 13,8" and "--n 8,13" are the same spec.
        object.__setattr__(self, "ns", tuple(sorted(set(self.ns))))
        object.__setattr__(self, "views", tuple(v for v in VIEWS if v in self.views))

    @property
    def buckets(self) -> int:
        return 1 << self.bucket_bits

    def to_dict(self) -> dict[str, Any]:
        """The spec as stored in an index; a legacy ``tokenizer_rules`` is left out (see the class doc)."""
        d = self._all_fields()
        if d["tokenizer_rules"] == LEGACY_TOKENIZER_RULES:
            del d["tokenizer_rules"]
        return d

    def _all_fields(self) -> dict[str, Any]:
        d = asdict(self)
        del d["tokenizer_file"]
        d["views"] = list(self.views)
        d["ns"] = list(self.ns)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TextSpec:
        known = {f.name for f in fields(cls)} - {"tokenizer_file"}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"text spec has unknown fields {sorted(unknown)} (written by a newer probe?)")
        kwargs = dict(data)
        # written before the field existed: those indexes were built with the legacy rules
        kwargs.setdefault("tokenizer_rules", LEGACY_TOKENIZER_RULES)
        if "views" in kwargs:
            kwargs["views"] = tuple(kwargs["views"])
        if "ns" in kwargs:
            kwargs["ns"] = tuple(kwargs["ns"])
        return cls(**kwargs)

    def fingerprint(self) -> str:
        """Stable identity of the spec: sha256 of its canonical JSON (first 16 hex digits)."""
        canon = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canon.encode()).hexdigest()[:16]

    def diff(self, other: TextSpec) -> list[str]:
        """Human lines ``field: mine != theirs`` for every differing field."""
        a, b = self._all_fields(), other._all_fields()
        lines = [f"{k}: {a[k]!r} != {b[k]!r}" for k in a if a[k] != b[k]]
        if a["tokenizer_rules"] != b["tokenizer_rules"]:
            lines.append("(tokenizer_rules 1 is the segmentation of indexes built before CJK/Thai text was split "
                         "per character; an index keeps the rules it was built with: rebuild it into a new "
                         "directory to get the current ones)")
        return lines

    def tokenizer_path(self) -> Path | None:
        """The ``tokenizer.json`` an hf: tokenizer is read from (None for words/chars).

        The copy inside the index when one is attached (``tokenizer_file``), else the
        ``hf:PATH`` as given (a directory means ``PATH/tokenizer.json``), relative to the
        current directory: only a build reads that, to hash and store the file.
        """
        if not self.tokenizer.startswith("hf:"):
            return None
        if self.tokenizer_file is not None:
            return Path(self.tokenizer_file)
        path = Path(self.tokenizer[3:])
        return path / "tokenizer.json" if path.is_dir() else path

    def with_tokenizer_hash(self) -> TextSpec:
        """Fill ``tokenizer_sha256`` from the tokenizer file, so a changed file is a changed spec."""
        path = self.tokenizer_path()
        if path is None:
            return self
        try:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError as e:
            raise ConfigError(f"cannot read tokenizer file {path}: {e.strerror or e}") from e
        return replace(self, tokenizer_sha256=digest)

    def with_tokenizer_file(self, path: str | Path | None) -> TextSpec:
        """The same spec, reading its hf: tokenizer from ``path`` (the copy stored in an index)."""
        return replace(self, tokenizer_file=None if path is None else str(path))


@dataclass(frozen=True)
class BuildConfig:
    """How to build (not what): changing these never changes the index contents."""

    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    memory_bytes: int = 4 << 30  # budget for all workers together; buffers spill to disk past it
    skip_bad_records: bool = False
    text_field: str = "text"
    id_field: str | None = None
    source_field: str | None = None
    row_groups_per_part: int = 2
    batch_docs: int = 8192
    batch_bytes: int = 16 << 20
    max_record_bytes: int = 256 << 20  # a larger line/document is a bad record (error naming file:line)
    executor: str = "local"  # "local" (process pool) or "ray" (probe.index.ray_executor)
    ray_address: str | None = None  # None: start a local Ray; "auto" / "ray://host:port": join a cluster


def parse_size(text: str) -> int:
    """Parse ``"4G"``, ``"512M"``, ``"1.5GiB"`` or a plain byte count."""
    s = text.strip().upper().removesuffix("B").removesuffix("I")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    try:
        if s and s[-1] in mult:
            return int(float(s[:-1]) * mult[s[-1]])
        return int(s)
    except ValueError:
        raise ConfigError(f"cannot parse size {text!r}; use e.g. 512M, 4G") from None
