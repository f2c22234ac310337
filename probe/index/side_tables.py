"""Measure side tables: a measure's corpus-side data, built per shard part beside the n-gram segments.

A measure that needs more from the corpus than the n-gram tables (MinHash signatures and
LSH keys, token distributions, later embeddings) registers a :class:`SideTableKind`: how to
validate its build options (:attr:`SideTableKind.configure`) and a builder that sees every
document of one shard part once (:class:`SideTableBuilder`) and returns Parquet tables.

Everything the n-gram segments promise holds for side tables because they go through the
same plan/commit machinery (:mod:`probe.index.build`):

- the unit of work and of commit is a shard part; each (part, side table) is one fresh,
  immutable directory ``sidetables/<name>/<uuid>/`` holding its Parquet files and a
  ``manifest.json`` (sizes and xxh3-128 of every file), written and fsynced before the
  snapshot that references it is published;
- a snapshot records, per side table, its build config (recorded once, refused when a later
  build asks for another one) and per (shard fingerprint, part) the directory it lives in, so
  a committed part is never rebuilt and a crashed build resumes with the parts still missing;
- a killed build leaves only unreferenced directories, which ``probe index gc`` removes.

Side tables are built in the same pass as the n-gram segments of a new part, or added later
for parts already indexed (``add_side_tables``: the committed shards are read again). A
measure reads them through :func:`open_side_table` from the scan's pinned reader; compaction
does not touch them (they are keyed by shard part, not by segment).
"""

from __future__ import annotations

import shutil
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pyarrow as pa
import xxhash

from probe.config import TextSpec
from probe.errors import ConfigError, IndexFormatError
from probe.index import format as fmt
from probe.index.segment import open_parquet, read_manifest, write_manifest, write_table_file
from probe.measures import Measure, Requirement

if TYPE_CHECKING:
    from probe.index.reader import IndexReader
    from probe.measures import ScanContext
    from probe.text.tokenizers import TokenBatch

SIDE_DIR = "sidetables"


# --------------------------------------------------------------------------- what a measure registers
@dataclass(frozen=True)
class SideDocs:
    """One batch of a shard part's documents as a side-table builder sees them.

    ``tokens`` is the index's surface view of ``texts`` with code-point offsets into
    ``tokens.texts`` (the normalized texts); ``first_doc`` is the part-local ordinal of
    ``texts[0]`` (the same ordinal the part's ``docs.parquet`` uses).
    """

    texts: list[str]
    rows: np.ndarray  # int64 shard rows (Parquet row, JSONL line)
    first_doc: int
    tokens: TokenBatch


class SideTableBuilder(ABC):
    """Accumulates one shard part for one side table; runs inside a build worker."""

    def __init__(self, spec: TextSpec, config: Mapping[str, Any]) -> None:
        self.spec = spec
        self.config = config

    @abstractmethod
    def add(self, docs: SideDocs) -> None:
        """Take one batch of documents (called in document order)."""

    @abstractmethod
    def tables(self) -> dict[str, pa.Table]:
        """The part's tables by file stem (``{"chunks": table}`` → ``chunks.parquet``)."""


@dataclass(frozen=True)
class SideTableKind:
    """A registered side table: its name, its build options and its builder."""

    name: str
    files: tuple[str, ...]  # file stems every part has
    # (options given by the user, the index's spec) -> the full, validated config with defaults
    configure: Callable[[Mapping[str, Any], TextSpec], dict[str, Any]]
    builder: Callable[[TextSpec, Mapping[str, Any]], SideTableBuilder]
    title: str = ""


@dataclass(frozen=True)
class SideTableRequest:
    """Build (or add) the side table ``name`` with ``options`` (validated by its kind)."""

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)


_KINDS: dict[str, SideTableKind] = {}


def register_side_table(kind: SideTableKind, replace: bool = False) -> None:
    if kind.name in _KINDS and not replace and _KINDS[kind.name] != kind:
        raise ConfigError(f"a side table named {kind.name!r} is already registered")
    _KINDS[kind.name] = kind


def side_table_names() -> tuple[str, ...]:
    load_builtin_side_tables()
    return tuple(sorted(_KINDS))


def side_table_kind(name: str) -> SideTableKind:
    load_builtin_side_tables()
    if name not in _KINDS:
        raise ConfigError(f"no side table named {name!r}; choose from {', '.join(sorted(_KINDS)) or 'none'}")
    return _KINDS[name]


def load_builtin_side_tables() -> None:
    """Import the measures that bring side tables (they register their kind and their measure)."""
    import probe.measures.distribution  # noqa: F401
    import probe.measures.minhash  # noqa: F401


def require_extra(module: str, measure: str, extra: str = "near") -> Any:
    """Import an optional dependency of a measure, or say which extra installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ConfigError(f"the {measure} measure needs {module.split('.')[0]}: pip install 'probe[{extra}]'") from e


def config_fingerprint(config: Mapping[str, Any]) -> str:
    return xxhash.xxh3_128_hexdigest(fmt.canonical_json(dict(config)))


# --------------------------------------------------------------------------- planning and committing
SideConfigs = tuple[tuple[str, dict[str, Any]], ...]  # (name, full config) per requested side table


def resolve_requests(latest: fmt.Snapshot | None, requests: Sequence[SideTableRequest],
                     spec: TextSpec) -> SideConfigs:
    """Each request's full config; ConfigError when the index recorded another config for that table.

    Every part of one side table is built with one config (a scan reads them as one table),
    so options are given once, at the first build, and may be omitted afterwards.
    """
    out: list[tuple[str, dict[str, Any]]] = []
    for req in requests:
        kind = side_table_kind(req.name)
        recorded = latest.side_tables.get(req.name) if latest is not None else None
        if recorded is not None and not req.options:
            out.append((req.name, dict(recorded["config"])))
            continue
        config = kind.configure(req.options, spec)
        if recorded is not None and recorded["config"] != config:
            diff = ", ".join(f"{k}: index {recorded['config'].get(k)!r} != requested {config.get(k)!r}"
                             for k in sorted(set(config) | set(recorded["config"]))
                             if config.get(k) != recorded["config"].get(k))
            raise ConfigError(f"side table {req.name!r} of this index was built with other options ({diff}); "
                              "repeat the recorded options (or give none), or build into a new index")
        out.append((req.name, config))
    return tuple(out)


def missing_for_part(snapshot: fmt.Snapshot | None, fingerprint: str, part: int,
                     configs: SideConfigs) -> SideConfigs:
    """The requested side tables that ``snapshot`` does not hold for (fingerprint, part)."""
    if snapshot is None:
        return configs
    return tuple((name, cfg) for name, cfg in configs
                 if str(part) not in snapshot.side_tables.get(name, {}).get("parts", {}).get(fingerprint, {}))


def record_parts(snap: fmt.Snapshot, fingerprint: str, part: int, configs: SideConfigs,
                 records: Mapping[str, dict[str, Any]]) -> int:
    """Add the side-table records of one built part to ``snap`` (not yet committed); how many were new."""
    added = 0
    for name, config in configs:
        rec = records.get(name)
        if rec is None:
            continue
        table = snap.side_tables.get(name) or {"config": config, "config_fingerprint": config_fingerprint(config),
                                               "parts": {}}
        parts = dict(table["parts"].get(fingerprint, {}))
        if str(part) in parts:
            continue  # the first commit wins
        parts[str(part)] = rec
        snap.side_tables[name] = {**table, "parts": {**table["parts"], fingerprint: parts}}
        added += 1
    return added


class PartSideTables:
    """The builders of one shard part (worker side): fed batch by batch, then written."""

    def __init__(self, spec: TextSpec, configs: SideConfigs) -> None:
        self.configs = configs
        self.builders = {name: side_table_kind(name).builder(spec, cfg) for name, cfg in configs}
        self.seconds = dict.fromkeys(self.builders, 0.0)
        self.dirs: list[Path] = []

    def __bool__(self) -> bool:
        return bool(self.builders)

    def add(self, docs: SideDocs) -> None:
        for name, builder in self.builders.items():
            t0 = time.perf_counter()
            builder.add(docs)
            self.seconds[name] += time.perf_counter() - t0

    def write(self, root: Path, fingerprint: str, part: int, docs: int) -> dict[str, dict[str, Any]]:
        """Write every table of every builder into its own fresh directory; the records to commit."""
        out: dict[str, dict[str, Any]] = {}
        for name, builder in self.builders.items():
            t0 = time.perf_counter()
            dir_rel = f"{SIDE_DIR}/{name}/{uuid.uuid4().hex}"
            (root / dir_rel).mkdir(parents=True)
            self.dirs.append(root / dir_rel)
            files = {stem: write_table_file(root, f"{dir_rel}/{stem}.parquet", table).to_dict()
                     for stem, table in builder.tables().items()}
            config = dict(self.configs)[name]
            manifest = {"side_table": name, "config_fingerprint": config_fingerprint(config),
                        "shard": fingerprint, "part": part, "docs": docs, "files": files}
            manifest_rel, digest = write_manifest(root, dir_rel, manifest)
            seconds = self.seconds[name] + time.perf_counter() - t0
            out[name] = {"dir": dir_rel, "manifest": manifest_rel, "manifest_xxh3": digest, "docs": docs,
                         "rows": {stem: f["rows"] for stem, f in files.items()},
                         "bytes": sum(f["bytes"] for f in files.values()), "seconds": round(seconds, 6)}
        return out

    def discard(self) -> None:
        """Remove what this part wrote (a failed task commits nothing)."""
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)


# --------------------------------------------------------------------------- reading
@dataclass(frozen=True)
class SidePart:
    """One committed part of a side table, with its manifest."""

    fingerprint: str
    part: int
    uri: str  # the shard's uri as recorded
    record: dict[str, Any]
    manifest: dict[str, Any]

    def file_entry(self, stem: str, root: Path) -> dict[str, Any]:
        entry = self.manifest["files"].get(stem)
        if not isinstance(entry, dict):
            raise IndexFormatError(f"{root / self.record['manifest']}: side table manifest has no {stem!r} file")
        return entry


@dataclass
class SideTable:
    """One side table of a pinned snapshot: its config and its committed parts (shard order)."""

    root: Path
    name: str
    config: dict[str, Any]
    parts: list[SidePart]

    def read(self, stem: str, columns: list[str] | None = None) -> Iterator[tuple[SidePart, pa.Table]]:
        """Each part's ``stem`` table, in part order."""
        for part in self.parts:
            yield part, self.read_part(part, stem, columns)

    def read_part(self, part: SidePart, stem: str, columns: list[str] | None = None) -> pa.Table:
        """One part's ``stem`` table (size checked, page checksums verified; a damaged file names itself)."""
        entry = part.file_entry(stem, self.root)
        try:
            return open_parquet(self.root, entry).read(columns=columns)
        except (pa.ArrowException, OSError) as e:
            raise IndexFormatError(f"side table file {self.root / entry['path']} is unreadable: {e}") from e

    def manifest_paths(self) -> tuple[str, ...]:
        return tuple(p.record["manifest"] for p in self.parts)


def side_table_unavailable(reader: IndexReader, name: str) -> str | None:
    """Why a scan cannot use side table ``name`` of ``reader``'s snapshot (None: it can)."""
    snap = reader.snapshot
    table = snap.side_tables.get(name)
    if table is None:
        return (f"index {reader.root} has no {name} side table (add it with `probe index add {reader.root} "
                f"--measures {name}`)")
    have = {(fp, int(p)) for fp, parts in table["parts"].items() for p in parts}
    missing = sorted(snap.committed_parts() - have)
    if missing:
        uris = sorted({snap.shards[fp]["uri"] for fp, _p in missing})
        return (f"the {name} side table covers {len(have)} of {len(have) + len(missing)} shard parts (missing: "
                f"{', '.join(uris[:3])}{' …' if len(uris) > 3 else ''}); complete it with `probe index add "
                f"{reader.root} --measures {name}`")
    for parts in table["parts"].values():
        for rec in parts.values():
            path = reader.root / rec["manifest"]
            if not path.is_file():
                return f"side table file {path} is missing (referenced by snapshot {snap.number})"
    return None


def open_side_table(reader: IndexReader, name: str) -> SideTable:
    """The side table ``name`` of the reader's pinned snapshot; IndexFormatError when it cannot be read."""
    snap = reader.snapshot
    table = snap.side_tables.get(name)
    if table is None:
        raise IndexFormatError(f"index {reader.root} (snapshot {snap.number}) has no {name} side table")
    parts = []
    for fp, recs in table["parts"].items():
        uri = snap.shards.get(fp, {}).get("uri", fp)
        for p, rec in recs.items():
            manifest = read_manifest_file(reader.root, rec)
            parts.append(SidePart(fp, int(p), uri, rec, manifest))
    parts.sort(key=lambda sp: (sp.uri, sp.part))
    return SideTable(reader.root, name, dict(table["config"]), parts)


def read_manifest_file(root: Path, rec: dict[str, Any]) -> dict[str, Any]:
    """A side part's manifest, checked against the digest the snapshot recorded."""
    try:
        return read_manifest(root, rec["manifest"], rec.get("manifest_xxh3"), "side table", _side_manifest_ok)
    except (KeyError, TypeError) as e:
        raise IndexFormatError(f"{root}: malformed side table record {rec!r}") from e


def _side_manifest_ok(manifest: Any) -> bool:
    return (isinstance(manifest, dict) and isinstance(manifest.get("files"), dict)
            and all(isinstance(f, dict) and isinstance(f.get("path"), str) and isinstance(f.get("bytes"), int)
                    and isinstance(f.get("rows"), int) for f in manifest["files"].values()))


class SideTableMeasure(Measure):
    """A measure that reads one side table (``side_table``, default: its own name).

    It is unavailable, with the reason, when the pinned snapshot lacks the side table or
    the table does not cover every committed part; ``needs()`` lists the part manifests.
    ``scan_options`` validates ``--measure-option`` values against ``scan_defaults``.
    """

    side_table: ClassVar[str | None] = None
    scan_defaults: ClassVar[dict[str, Any]] = {}
    default = False  # a side table must be built first: opt in with --measures

    @property
    def side_table_name(self) -> str:
        return self.side_table or self.name

    def needs(self, ctx: ScanContext) -> Requirement:
        table = ctx.reader.snapshot.side_tables.get(self.side_table_name)
        if table is None:
            return Requirement(side_files=(f"{SIDE_DIR}/{self.side_table_name}",))
        return Requirement(side_files=tuple(rec["manifest"] for parts in table["parts"].values()
                                            for rec in parts.values()))

    def unavailable(self, ctx: ScanContext) -> str | None:
        return side_table_unavailable(ctx.reader, self.side_table_name)

    def scan_options(self, ctx: ScanContext) -> dict[str, Any]:
        given = dict(self.options(ctx))
        unknown = sorted(set(given) - set(self.scan_defaults))
        if unknown:
            raise ConfigError(f"unknown {self.name} scan option(s) {unknown}; choose from "
                              f"{', '.join(self.scan_defaults)}")
        return {**self.scan_defaults, **given}


# --------------------------------------------------------------------------- maintenance
def referenced_dirs(snap: fmt.Snapshot | None) -> set[str]:
    """Every side-table part directory ``snap`` references (relative to the index root)."""
    if snap is None:
        return set()
    return {rec["dir"] for t in snap.side_tables.values() for parts in t["parts"].values() for rec in parts.values()}


def existing_dirs(root: Path) -> list[Path]:
    base = root / SIDE_DIR
    if not base.is_dir():
        return []
    return sorted(d for table in base.iterdir() if table.is_dir() for d in table.iterdir() if d.is_dir())


def verify_side_tables(root: Path, snap: fmt.Snapshot, deep: bool) -> tuple[list[str], int, list[str]]:
    """(problems, files checked, unreferenced directories) of the snapshot's side tables."""
    problems: list[str] = []
    checked = 0
    for name, table in sorted(snap.side_tables.items()):
        for fp, recs in table["parts"].items():
            for p, rec in recs.items():
                try:
                    manifest = read_manifest_file(root, rec)
                except IndexFormatError as e:
                    problems.append(str(e))
                    continue
                if manifest.get("shard") != fp or str(manifest.get("part")) != str(p) \
                        or manifest.get("side_table") != name:
                    problems.append(f"{root / rec['manifest']}: side table manifest belongs to another part")
                for entry in manifest["files"].values():
                    checked += 1
                    try:
                        pf = open_parquet(root, entry)
                        if deep:
                            if fmt.file_digest(root / entry["path"]) != entry["xxh3_128"]:
                                raise IndexFormatError(f"side table file {root / entry['path']}: content hash "
                                                       "mismatch")
                            if pf.read().num_rows != entry["rows"]:
                                raise IndexFormatError(f"side table file {root / entry['path']}: row count "
                                                       f"differs from the manifest's {entry['rows']}")
                    except IndexFormatError as e:
                        problems.append(str(e))
                    except (pa.ArrowException, OSError) as e:
                        problems.append(f"side table file {root / entry['path']}: {e}")
    referenced = referenced_dirs(snap)
    orphans = [str(d.relative_to(root)) for d in existing_dirs(root) if str(d.relative_to(root)) not in referenced]
    return problems, checked, orphans


def side_table_info(reader: IndexReader) -> list[dict[str, Any]]:
    """Per side table: config, parts covered, rows per file, bytes and build seconds (for `index info`)."""
    snap = reader.snapshot
    total_parts = len(snap.committed_parts())
    out = []
    for name, table in sorted(snap.side_tables.items()):
        recs = [rec for parts in table["parts"].values() for rec in parts.values()]
        rows: dict[str, int] = {}
        for rec in recs:
            for stem, n in rec.get("rows", {}).items():
                rows[stem] = rows.get(stem, 0) + int(n)
        size = sum(int(rec.get("bytes", 0)) for rec in recs)
        tokens = sum(p["tokens"] for fp, parts in table["parts"].items()
                     for p_idx, p in snap.shards.get(fp, {}).get("parts", {}).items() if p_idx in parts)
        out.append({"name": name, "config": table["config"], "parts": len(recs), "parts_total": total_parts,
                    "complete": len(recs) == total_parts, "rows": rows, "bytes": size,
                    "bytes_per_token": round(size / tokens, 3) if tokens else None,
                    "build_seconds": round(sum(float(rec.get("seconds", 0.0)) for rec in recs), 3)})
    return out


__all__ = [
    "SIDE_DIR", "PartSideTables", "SideDocs", "SidePart", "SideTable", "SideTableBuilder", "SideTableKind",
    "SideTableMeasure", "SideTableRequest", "config_fingerprint", "existing_dirs", "load_builtin_side_tables",
    "missing_for_part",
    "open_side_table", "read_manifest_file", "record_parts", "referenced_dirs", "register_side_table", "require_extra",
    "resolve_requests", "side_table_info", "side_table_kind", "side_table_names", "side_table_unavailable",
    "verify_side_tables",
]
