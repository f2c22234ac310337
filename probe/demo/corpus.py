"""The embedded demo corpus: prose that ships inside every CPython installation.

The quickstart must run end to end on a fresh machine with no download and no
``../shared/data``. Every Python has its standard library on disk, and that
library carries a lot of real English: module/class/function docstrings, long
explanatory comment blocks, and the language reference that ``pydoc`` serves
(``pydoc_data/topics.py``). That is our "pretraining corpus".

Sources are read with :mod:`ast` and :mod:`tokenize` only: stdlib modules are
never imported or executed (importing ``antigravity`` opens a browser, ``this``
prints, and some modules are platform-specific and fail to import), and a file
that does not parse or decode is skipped rather than failing the build.

Why a 20-word floor rather than 40: at 40 words the stdlib yields only ~1.8k
docstrings and ~1.1 MB, too small to exercise sharding, row groups and the
index at a realistic scale. Twenty words still guarantees that every document
holds several 13-word windows (the default n-gram size), so no document is
dead weight in the index.
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import os
import platform
import re
import sys
import sysconfig
import tokenize
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from probe.durable import atomic_writer, remove_stale_temps, write_bytes_atomic
from probe.errors import ConfigError

__all__ = [
    "BUILDER_VERSION",
    "MANIFEST_NAME",
    "MIN_WORDS",
    "SCHEMA",
    "DemoDoc",
    "build_demo_corpus",
    "iter_demo_documents",
    "stdlib_files",
]

# Bump whenever extraction rules change, so an old MANIFEST.json stops matching
# and the shards are rebuilt instead of silently reused.
BUILDER_VERSION = 1
MANIFEST_NAME = "MANIFEST.json"
SHARD_PREFIX = "stdlib-"
MIN_WORDS = 20
ROW_GROUP_ROWS = 1024

SOURCE_DOCSTRING = "stdlib-docstring"
SOURCE_COMMENTS = "stdlib-comments"
SOURCE_REFERENCE = "stdlib-reference"

SCHEMA = pa.schema([("id", pa.string()), ("source", pa.string()), ("text", pa.string())])

# Directory names skipped anywhere in the tree. Tests are full of fixture
# strings and are not shipped by every distribution (Debian splits them out),
# idlelib/turtledemo are applications rather than library prose, encodings/ is
# a hundred generated charmap tables with near-identical boilerplate docstrings,
# and site-packages would make the corpus depend on what the user pip-installed.
_SKIP_DIRS = frozenset(
    {
        "test",
        "tests",
        "idle_test",
        "idlelib",
        "turtledemo",
        "encodings",
        "site-packages",
        "dist-packages",
        "__pycache__",
        "lib-dynload",
    }
)

_WORD = re.compile(r"\w+")
_CODING = re.compile(r"^[ \t\f]*#.*?coding[:=]")


@dataclass(frozen=True)
class DemoDoc:
    """One corpus document, in the order it is written to the shards."""

    id: str
    source: str
    text: str


def _word_count(text: str) -> int:
    # \w+ tokens: the same notion of "word" the n-gram tokenizer and the tests use.
    return len(_WORD.findall(text))


def _skip_dir(name: str) -> bool:
    # config-3.X-<triplet>/ holds the build's Makefile and python-config.py:
    # platform-specific, not library prose.
    return name in _SKIP_DIRS or name.startswith("config-") or name.startswith(".")


def _skip_file(name: str) -> bool:
    # _sysconfigdata_*.py is generated per platform; keeping it would make the
    # corpus differ between two machines with the same Python version.
    return not name.endswith(".py") or name.startswith("_sysconfigdata")


def stdlib_files(root: Path | None = None) -> list[Path]:
    """The ``.py`` files the corpus is made from, in a deterministic (sorted) order.

    Sorting both directory and file names at every level makes the document order,
    and hence the shards, identical from one run to the next.
    """
    root = Path(sysconfig.get_paths()["stdlib"]) if root is None else root
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not _skip_dir(d))
        out.extend(Path(dirpath) / f for f in sorted(filenames) if not _skip_file(f))
    return out


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def _parse(source: bytes, path: Path) -> ast.Module | None:
    """Parse without importing; ``None`` for files that do not parse or decode.

    Old stdlib files raise SyntaxWarning (invalid escapes) on newer Pythons; that
    noise is irrelevant here, so warnings are silenced for the parse only.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return ast.parse(source, filename=str(path))
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            # ValueError covers UnicodeDecodeError and source with NUL bytes.
            return None


_DefNode = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _docstrings(tree: ast.Module, module: str) -> Iterator[tuple[str, str]]:
    """(qualified name, docstring) for the module and every class/function, in source order.

    Definitions nested in ``if``/``try`` blocks (``os.py`` defines per-platform
    variants that way) are found too; their duplicate names are disambiguated by
    the caller.
    """
    doc = ast.get_docstring(tree)
    if doc:
        yield module, doc

    def visit(node: ast.AST, prefix: str) -> Iterator[tuple[str, str]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, _DefNode):
                name = f"{prefix}.{child.name}"
                child_doc = ast.get_docstring(child)
                if child_doc:
                    yield name, child_doc
                yield from visit(child, name)
            else:
                yield from visit(child, prefix)

    yield from visit(tree, module)


def _comment_blocks(source: bytes) -> Iterator[tuple[int, str]]:
    """(first line, text) of each run of consecutive full-line comments.

    One document per block (not one per module) so the n-gram index never sees a
    window that spans two unrelated blocks. Trailing comments after code and the
    shebang/coding lines are left out: they are not prose.
    """
    lines: list[str] = []
    first = last = -2
    try:
        for tok in tokenize.tokenize(io.BytesIO(source).readline):
            if tok.type != tokenize.COMMENT:
                continue
            line_no = tok.start[0]
            if tok.line.lstrip()[:1] != "#":
                continue  # trailing comment after code
            if line_no <= 2 and (tok.string.startswith("#!") or _CODING.match(tok.string)):
                continue
            if line_no != last + 1 and lines:
                yield first, "\n".join(lines)
                lines = []
            if not lines:
                first = line_no
            lines.append(tok.string.lstrip("#").strip())
            last = line_no
    except (tokenize.TokenError, SyntaxError, ValueError):
        return  # keep what ast accepted; comments are a bonus
    if lines:
        yield first, "\n".join(lines)


def _reference_topics(tree: ast.Module) -> Iterator[tuple[str, str]]:
    """The ``topics`` dict of ``pydoc_data/topics.py``: the language reference as plain text.

    It is a module-level dict literal, so :func:`ast.literal_eval` reads it without
    executing anything.
    """
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id == "topics"
        ):
            try:
                topics = ast.literal_eval(node.value)
            except (ValueError, TypeError, SyntaxError, RecursionError):
                return
            if isinstance(topics, dict):
                for key in sorted(topics):
                    value = topics[key]
                    if isinstance(key, str) and isinstance(value, str):
                        yield key, value
            return


def iter_demo_documents(files: list[Path] | None = None, root: Path | None = None) -> Iterator[DemoDoc]:
    """Every corpus document, in shard order; ids are unique.

    Per file: the docstrings (source order), then its comment blocks; for
    ``pydoc_data/topics.py`` also one document per reference topic.
    """
    root = Path(sysconfig.get_paths()["stdlib"]) if root is None else root
    files = stdlib_files(root) if files is None else files
    seen: Counter[str] = Counter()

    def unique(doc_id: str) -> str:
        # Conditional redefinitions (e.g. os.py) share a qualname: suffix #2, #3...
        seen[doc_id] += 1
        n = seen[doc_id]
        return doc_id if n == 1 else f"{doc_id}#{n}"

    for path in files:
        try:
            source = path.read_bytes()
        except OSError:
            continue
        tree = _parse(source, path)
        if tree is None:
            continue
        module = _module_name(root, path)
        for name, doc in _docstrings(tree, module):
            if _word_count(doc) >= MIN_WORDS:
                yield DemoDoc(unique(name), SOURCE_DOCSTRING, doc)
        for line_no, text in _comment_blocks(source):
            if _word_count(text) >= MIN_WORDS:
                yield DemoDoc(unique(f"{module}#L{line_no}"), SOURCE_COMMENTS, text)
        if module == "pydoc_data.topics":
            for key, text in _reference_topics(tree):
                if _word_count(text) >= MIN_WORDS:
                    yield DemoDoc(unique(f"{module}.{key}"), SOURCE_REFERENCE, text)


# --------------------------------------------------------------------------- writing


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fingerprint(root: Path, files: list[Path], max_docs: int | None, docs_per_shard: int) -> dict:
    """What the shards depend on; cheap to compute (stat only, no parsing).

    If any of it changes (Python upgraded, a stdlib file patched, different
    parameters, new extraction rules), the manifest no longer matches and the
    corpus is rebuilt.
    """
    h = hashlib.sha256()
    for path in files:
        try:
            st = path.stat()
        except OSError:
            continue
        h.update(f"{path.relative_to(root).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return {
        "builder_version": BUILDER_VERSION,
        "min_words": MIN_WORDS,
        "python_version": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "python_build": list(platform.python_build()),
        "stdlib": str(root),
        "file_count": len(files),
        "files_sha256": h.hexdigest(),
        "max_docs": max_docs,
        "docs_per_shard": docs_per_shard,
    }


def _existing(out_dir: Path, key: dict) -> list[Path] | None:
    """The shard paths if ``out_dir`` already holds a complete build for ``key``."""
    try:
        manifest = json.loads((out_dir / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("key") != key:
        return None
    paths: list[Path] = []
    for shard in manifest.get("shards", []):
        path = out_dir / shard["name"]
        try:
            if path.stat().st_size != shard["bytes"] or _sha256(path) != shard["sha256"]:
                return None
        except (OSError, KeyError, TypeError):
            return None
        paths.append(path)
    return paths


def _write_shard(path: Path, docs: list[DemoDoc]) -> None:
    table = pa.table(
        {
            "id": [d.id for d in docs],
            "source": [d.source for d in docs],
            "text": [d.text for d in docs],
        },
        schema=SCHEMA,
    )
    with atomic_writer(path) as fh:
        pq.write_table(table, fh, row_group_size=ROW_GROUP_ROWS, compression="zstd")


def build_demo_corpus(
    out_dir: Path, *, max_docs: int | None = None, docs_per_shard: int = 4000
) -> list[Path]:
    """Write the stdlib-prose corpus as ``out_dir/stdlib-00000.parquet``, ... and return the paths.

    Columns ``id`` (``module.qualname``, ``module#L<line>`` for comment blocks,
    ``pydoc_data.topics.<topic>`` for reference topics), ``source``
    (``stdlib-docstring`` / ``stdlib-comments`` / ``stdlib-reference``) and
    ``text``; zstd, row groups of 1024 rows, each file written atomically.

    Deterministic for a given Python installation, and idempotent: when
    ``MANIFEST.json`` matches this installation and these parameters and every
    shard still has its recorded size and SHA-256, nothing is rewritten. Only
    ``stdlib-*.parquet`` and ``MANIFEST.json`` in ``out_dir`` are ever touched.

    ``max_docs`` keeps the first N documents (for fast tests).
    """
    if max_docs is not None and max_docs < 1:
        raise ConfigError(f"max_docs must be >= 1 or None, got {max_docs}")
    if docs_per_shard < 1:
        raise ConfigError(f"docs_per_shard must be >= 1, got {docs_per_shard}")
    out_dir = Path(out_dir)
    root = Path(sysconfig.get_paths()["stdlib"])
    files = stdlib_files(root)
    key = _fingerprint(root, files, max_docs, docs_per_shard)
    existing = _existing(out_dir, key)
    if existing is not None:
        return existing

    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out_dir)  # a shard half-written by a killed earlier build
    # Drop the old manifest first: a crash mid-rebuild must not leave a manifest
    # that vouches for a mix of old and new shards.
    (out_dir / MANIFEST_NAME).unlink(missing_ok=True)

    paths: list[Path] = []
    shard_meta: list[dict] = []
    by_source: Counter[str] = Counter()
    doc_count = text_chars = text_bytes = 0
    batch: list[DemoDoc] = []

    def flush() -> None:
        path = out_dir / f"{SHARD_PREFIX}{len(paths):05d}.parquet"
        _write_shard(path, batch)
        paths.append(path)
        shard_meta.append(
            {"name": path.name, "rows": len(batch), "bytes": path.stat().st_size, "sha256": _sha256(path)}
        )
        batch.clear()

    for doc in iter_demo_documents(files, root):
        if max_docs is not None and doc_count >= max_docs:
            break
        batch.append(doc)
        doc_count += 1
        by_source[doc.source] += 1
        text_chars += len(doc.text)
        text_bytes += len(doc.text.encode("utf-8"))
        if len(batch) >= docs_per_shard:
            flush()
    if batch:
        flush()

    # Shards left over from an earlier, larger build are not part of this corpus.
    keep = {p.name for p in paths}
    for stale in out_dir.glob(f"{SHARD_PREFIX}[0-9]*.parquet"):
        if stale.name not in keep:
            stale.unlink(missing_ok=True)

    manifest = {
        "format": "probe-demo-corpus",
        "key": key,
        "python": sys.version,
        "doc_count": doc_count,
        "docs_by_source": dict(sorted(by_source.items())),
        "text_chars": text_chars,
        "text_bytes": text_bytes,
        "shards": shard_meta,
    }
    data = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")
    write_bytes_atomic(out_dir / MANIFEST_NAME, data)
    return paths
