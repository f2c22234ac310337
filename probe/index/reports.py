"""What `probe index verify|compact|gc` return: typed reports, one dataclass each.

Each report is a frozen dataclass (attribute access, ``to_dict()`` for JSON, the contract
``--format json`` prints) and also a read-only mapping of its fields, so code written against
the earlier dict reports (``report["ok"]``) keeps working.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any


class _FieldMapping(Mapping[str, Any]):
    """Read-only mapping view of a dataclass's fields."""

    def __getitem__(self, key: str) -> Any:
        if key not in self._names():
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def _names(self) -> tuple[str, ...]:
        return tuple(f.name for f in fields(self))  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]


@dataclass(frozen=True)
class VerifyReport(_FieldMapping):
    """``verify_index``: every referenced file checked (and, deep, re-hashed); ``ok`` false on any problem."""

    index: str
    snapshot: int | None  # None: no readable snapshot
    ok: bool
    problems: list[str] = field(default_factory=list)  # one line each, naming the file
    orphans: list[str] = field(default_factory=list)  # unreferenced entries (``probe index gc`` removes them)
    files_checked: int = 0
    deep: bool = False


@dataclass(frozen=True)
class CompactReport(_FieldMapping):
    """``compact_index``: segments before and after, the new snapshot, rows per (view, n)."""

    index: str
    snapshot: int
    segments_before: int
    segments_after: int
    rows: dict[str, int] = field(default_factory=dict)  # "view/n" → rows of the merged table


@dataclass(frozen=True)
class GcReport(_FieldMapping):
    """``gc_index``: what was (or, dry run, would be) removed, and the young unreferenced files kept."""

    index: str
    removed: list[str]
    bytes: int
    dry_run: bool
    kept_young: list[str] = field(default_factory=list)  # unreferenced but younger than older_than_seconds
    kept_young_bytes: int = 0
    older_than_seconds: float = 3600.0


__all__ = ["CompactReport", "GcReport", "VerifyReport"]
