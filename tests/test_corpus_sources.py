"""Corpus shard readers: formats, discovery, and every bad input of RELIABILITY.md §6.4 (I1-I14).

Fixtures are built in ``tmp_path`` at test time with pyarrow / gzip / zstandard, so the
suite runs offline and shows exactly which bytes each case is about.
"""

from __future__ import annotations

import gzip
import json
import os
import struct
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probe.errors import ConfigError, InputError
from probe.sources.corpus import (
    SHARD_FORMATS,
    DocBatch,
    ReaderOptions,
    ShardPart,
    ShardReadStats,
    ShardRef,
    discover_shards,
    fingerprint_shard,
    read_document,
    read_shard,
    shard_parts,
)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SHARDS_DIR = SHARED_DATA / "corpus" / "shards"

DOCS = [
    {"text": "the quick brown fox", "id": "d0", "source": "web"},
    {"text": "jumps over the lazy dog", "id": "d1", "source": "books"},
    {"text": "naïve café — ünïcödé 😀", "id": "d2", "source": "web"},
]


# --------------------------------------------------------------------------- helpers


def jsonl_bytes(records: list[dict], newline: bytes = b"\n") -> bytes:
    return b"".join(json.dumps(r).encode() + newline for r in records)


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def ref_for(path: Path, fmt: str | None = None) -> ShardRef:
    """A ShardRef built by hand (bypassing discovery's sniffing), as a caller with a manifest would."""
    if fmt is None:
        (ref,) = discover_shards([str(path)])
        return ref
    stat = path.stat()
    return ShardRef(uri=str(path), format=fmt, size=stat.st_size, mtime_ns=stat.st_mtime_ns)


def read_all(ref: ShardRef, options: ReaderOptions | None = None, part: ShardPart | None = None):
    stats = ShardReadStats()
    batches = list(read_shard(ref, options or ReaderOptions(), stats, part))
    texts = [t for b in batches for t in b.texts]
    rows = np.concatenate([b.rows for b in batches]).tolist() if batches else []
    return batches, texts, rows, stats


def many_lines(n: int) -> bytes:
    return b"".join(b'{"text": "document number %d with some words"}\n' % i for i in range(n))


def write_parquet(path: Path, table: pa.Table, **kwargs) -> Path:
    pq.write_table(table, path, **kwargs)
    return path


def docs_table() -> pa.Table:
    return pa.table(
        {
            "id": [d["id"] for d in DOCS],
            "source": [d["source"] for d in DOCS],
            "text": [d["text"] for d in DOCS],
        }
    )


def error_of(ref: ShardRef, options: ReaderOptions | None = None) -> InputError:
    with pytest.raises(InputError) as info:
        read_all(ref, options)
    return info.value


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "jsonl.gz", "jsonl.zst"])
def test_roundtrip_texts_rows_ids_sources(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"shard.{fmt}"
    if fmt == "parquet":
        write_parquet(path, docs_table())
    else:
        raw = jsonl_bytes(DOCS)
        if fmt == "jsonl.gz":
            raw = gzip.compress(raw)
        elif fmt == "jsonl.zst":
            raw = zstandard.ZstdCompressor().compress(raw)
        write(path, raw)
    ref = ref_for(path)
    assert ref.format == fmt
    assert ref.size == path.stat().st_size
    options = ReaderOptions(id_field="id", source_field="source")
    batches, texts, rows, stats = read_all(ref, options)
    assert texts == [d["text"] for d in DOCS]
    assert rows == [0, 1, 2]
    assert [i for b in batches for i in b.ids] == ["d0", "d1", "d2"]
    assert [s for b in batches for s in b.sources] == ["web", "books", "web"]
    assert all(b.rows.dtype == np.int64 for b in batches)
    assert stats.records == stats.docs == 3
    assert stats.bytes_read == sum(len(d["text"].encode()) for d in DOCS)
    assert stats.skipped == 0


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_id_and_source_columns_are_read_by_default_when_present(tmp_path: Path, fmt: str) -> None:
    """`index build` without --id-column/--source-column still records the shards' `id` and `source`."""
    if fmt == "parquet":
        ref = ref_for(write_parquet(tmp_path / "a.parquet", docs_table()))
    else:
        ref = ref_for(write(tmp_path / "a.jsonl", jsonl_bytes(DOCS)))
    batches, texts, _, _ = read_all(ref)
    assert len(texts) == 3
    assert [i for b in batches for i in b.ids] == ["d0", "d1", "d2"]
    assert [s for b in batches for s in b.sources] == ["web", "books", "web"]


def test_shards_without_id_and_source_columns_have_none(tmp_path: Path) -> None:
    docs = [{"text": d["text"]} for d in DOCS]
    batches, texts, _, _ = read_all(ref_for(write(tmp_path / "a.jsonl", jsonl_bytes(docs))))
    assert len(texts) == 3
    assert all(b.ids is None and b.sources is None for b in batches)
    table = pa.table({"text": [d["text"] for d in DOCS], "id": [[1], [2], [3]]})  # a list is no label
    batches, texts, _, _ = read_all(ref_for(write_parquet(tmp_path / "b.parquet", table)))
    assert len(texts) == 3 and all(b.ids is None for b in batches)


def test_jsonl_records_missing_the_default_id_get_empty_ids(tmp_path: Path) -> None:
    docs = [{"text": "alpha beta", "id": "x"}, {"text": "gamma delta"}]
    batches, _, _, _ = read_all(ref_for(write(tmp_path / "a.jsonl", jsonl_bytes(docs))))
    assert [i for b in batches for i in b.ids] == ["x", ""]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b'{"text": "never closed', "invalid JSON: Unterminated string starting at column 10"),  # last line
        (b'{"text": "a\tb"}\n', "invalid JSON: Invalid control character at column 12"),
        (b'{"text": "a",\n', "invalid JSON: Expecting property name enclosed in double quotes at the end of the line"),
    ],
)
def test_bad_json_record_message_has_one_clear_position(tmp_path: Path, line: bytes, expected: str) -> None:
    """Not "starting at at column 10", nor json's own "line 2 column 1" for the line's newline."""
    ref = ref_for(write(tmp_path / "a.jsonl", jsonl_bytes(DOCS[:1]) + line))
    err = error_of(ref)
    assert err.location == "line 2"
    assert err.reason == expected


def test_txt_is_one_document(tmp_path: Path) -> None:
    text = "line one\nline two\n\nünïcödé\n"
    path = write(tmp_path / "doc.txt", b"\xef\xbb\xbf" + text.encode())
    _, texts, rows, stats = read_all(ref_for(path))
    assert texts == [text]  # BOM stripped
    assert rows == [0]
    assert stats.records == stats.docs == 1
    assert read_document(ref_for(path), 0, ReaderOptions()) == text
    batches, _, _, _ = read_all(ref_for(path), ReaderOptions(id_field="id"))
    assert batches[0].ids == ["doc.txt"]  # a text file's id is its name


@pytest.mark.parametrize("content", [b"", b"  \n\t\n"])
def test_txt_empty_is_bad_record(tmp_path: Path, content: bytes) -> None:
    ref = ref_for(write(tmp_path / "empty.txt", content))
    assert "empty or whitespace-only" in str(error_of(ref))
    _, texts, _, stats = read_all(ref, ReaderOptions(skip_bad_records=True))
    assert texts == [] and stats.skipped == 1


def test_txt_invalid_utf8_reports_byte_offset(tmp_path: Path) -> None:
    ref = ref_for(write(tmp_path / "bad.txt", b"hello \xff world"))
    err = error_of(ref)
    assert err.location == "byte 6"
    assert "invalid UTF-8" in str(err) and "byte offset 6" in str(err)


def test_dotted_text_field(tmp_path: Path) -> None:
    records = [{"meta": {"body": "nested text"}, "text": "top"}, {"meta.body": "literal dotted key"}]
    ref = ref_for(write(tmp_path / "a.jsonl", jsonl_bytes(records)))
    _, texts, _, _ = read_all(ref, ReaderOptions(text_field="meta.body"))
    assert texts == ["nested text", "literal dotted key"]


def test_numeric_ids_are_kept_as_text(tmp_path: Path) -> None:
    raw = b'{"text": "a", "id": 12345678901234567890123}\n{"text": "b", "id": 1.5}\n{"text": "c"}\n'
    batches, _, _, _ = read_all(ref_for(write(tmp_path / "a.jsonl", raw)), ReaderOptions(id_field="id"))
    assert batches[0].ids == ["12345678901234567890123", "1.5", ""]


# --------------------------------------------------------------------------- batching


def test_batches_respect_batch_docs(tmp_path: Path) -> None:
    ref = ref_for(write(tmp_path / "a.jsonl", many_lines(25)))
    batches, texts, rows, _ = read_all(ref, ReaderOptions(batch_docs=10))
    assert [len(b.texts) for b in batches] == [10, 10, 5]
    assert rows == list(range(25))


def test_batches_respect_batch_bytes(tmp_path: Path) -> None:
    records = [{"text": "x" * 100} for _ in range(10)] + [{"text": "y" * 1000}]
    ref = ref_for(write(tmp_path / "a.jsonl", jsonl_bytes(records)))
    batches, texts, _, stats = read_all(ref, ReaderOptions(batch_bytes=250))
    for b in batches:
        size = sum(len(t.encode()) for t in b.texts)
        assert size <= 250 or len(b.texts) == 1  # a single oversized document still gets a batch
    assert len(texts) == 11 and stats.bytes_read == 10 * 100 + 1000


def test_parquet_batches_respect_limits(tmp_path: Path) -> None:
    table = pa.table({"text": [f"doc {i} " + "w" * (i % 7) for i in range(1000)]})
    ref = ref_for(write_parquet(tmp_path / "a.parquet", table, row_group_size=300))
    batches, texts, rows, _ = read_all(ref, ReaderOptions(batch_docs=128, batch_bytes=700))
    assert rows == list(range(1000)) and texts == table.column("text").to_pylist()
    for b in batches:
        assert len(b.texts) <= 128
        assert sum(len(t) for t in b.texts) <= 700


def test_reader_options_validation() -> None:
    with pytest.raises(ConfigError):
        ReaderOptions(batch_docs=0)
    with pytest.raises(ConfigError):
        ReaderOptions(max_decompressed_bytes=0)
    with pytest.raises(ConfigError):
        ReaderOptions(text_field="")


# --------------------------------------------------------------------------- discovery


def test_discover_directory_recursive_sorted_and_filtered(tmp_path: Path) -> None:
    (tmp_path / "b" / "deep").mkdir(parents=True)
    (tmp_path / "a").mkdir()
    write(tmp_path / "b" / "deep" / "z.jsonl", jsonl_bytes(DOCS))
    write(tmp_path / "a" / "y.ndjson", jsonl_bytes(DOCS))
    write(tmp_path / "a" / "x.jsonl.gz", gzip.compress(jsonl_bytes(DOCS)))
    write(tmp_path / "a" / "w.jsonl.zst", zstandard.ZstdCompressor().compress(jsonl_bytes(DOCS)))
    write(tmp_path / "a" / "v.txt", b"text")
    write_parquet(tmp_path / "a" / "u.parquet", docs_table())
    write(tmp_path / "a" / "README.md", b"ignored")
    write(tmp_path / "a" / "_SUCCESS", b"")
    refs = discover_shards([str(tmp_path)])
    assert [Path(r.uri).relative_to(tmp_path).as_posix() for r in refs] == [
        "a/u.parquet",
        "a/v.txt",
        "a/w.jsonl.zst",
        "a/x.jsonl.gz",
        "a/y.ndjson",
        "b/deep/z.jsonl",
    ]
    assert [r.format for r in refs] == ["parquet", "txt", "jsonl.zst", "jsonl.gz", "jsonl", "jsonl"]
    assert all(os.path.isabs(r.uri) and r.mtime_ns > 0 for r in refs)
    assert set(SHARD_FORMATS) == {r.format for r in refs}


def test_discover_globs(tmp_path: Path) -> None:
    (tmp_path / "x" / "y").mkdir(parents=True)
    for rel in ("a.jsonl", "b.jsonl", "x/c.jsonl", "x/y/d.jsonl", "x/y/e.txt"):
        write(tmp_path / rel, jsonl_bytes(DOCS))
    names = lambda refs: [Path(r.uri).name for r in refs]  # noqa: E731
    assert names(discover_shards([str(tmp_path / "*.jsonl")])) == ["a.jsonl", "b.jsonl"]
    assert names(discover_shards([str(tmp_path / "**" / "*.jsonl")])) == [
        "a.jsonl",
        "b.jsonl",
        "c.jsonl",
        "d.jsonl",
    ]
    assert names(discover_shards([str(tmp_path / "x" / "*")])) == [
        "c.jsonl",
        "d.jsonl",
        "e.txt",
    ]  # dirs expand
    assert names(discover_shards([str(tmp_path / "?.jsonl")])) == ["a.jsonl", "b.jsonl"]
    with pytest.raises(InputError, match="matched no shard files"):
        discover_shards([str(tmp_path / "*.parquet")])
    with pytest.raises(InputError, match="matched no shard files"):
        discover_shards([str(tmp_path / "nowhere" / "*.jsonl")])


def test_discover_deduplicates_and_sorts(tmp_path: Path) -> None:
    a = write(tmp_path / "a.jsonl", jsonl_bytes(DOCS))
    b = write(tmp_path / "b.jsonl", jsonl_bytes(DOCS))
    os.symlink(a, tmp_path / "link.jsonl")
    refs = discover_shards([str(b), str(a), str(tmp_path / "*.jsonl"), str(tmp_path / "." / "a.jsonl")])
    assert [Path(r.uri).name for r in refs] == ["a.jsonl", "b.jsonl"]


def test_discover_literal_name_with_glob_characters(tmp_path: Path) -> None:
    literal = write(tmp_path / "data[1].jsonl", jsonl_bytes(DOCS))
    write(tmp_path / "data1.jsonl", jsonl_bytes(DOCS))
    assert [r.uri for r in discover_shards([str(literal)])] == [str(literal)]


def test_discover_accepts_single_string(tmp_path: Path) -> None:
    a = write(tmp_path / "a.jsonl", jsonl_bytes(DOCS))
    assert [r.uri for r in discover_shards(str(a))] == [str(a)]  # type: ignore[arg-type]


def test_discover_symlink_loop_terminates(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    write(tmp_path / "d" / "a.jsonl", jsonl_bytes(DOCS))
    os.symlink(tmp_path / "d", tmp_path / "d" / "loop")
    assert len(discover_shards([str(tmp_path)])) == 1
    assert len(discover_shards([str(tmp_path / "**" / "*.jsonl")])) == 1


def test_discover_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        discover_shards([str(tmp_path / "missing.jsonl")])
    unknown = write(tmp_path / "data.json", b"{}")
    with pytest.raises(InputError, match="unknown shard file extension") as info:
        discover_shards([str(unknown)])
    assert info.value.path == str(unknown)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no shard files"):
        discover_shards([str(tmp_path / "empty")])
    with pytest.raises(ConfigError):
        discover_shards([])


def test_discover_unreadable_file(tmp_path: Path) -> None:
    path = write(tmp_path / "secret.jsonl", jsonl_bytes(DOCS))
    path.chmod(0)
    try:
        try:
            path.open("rb").close()
            pytest.skip("running with privileges that read a chmod 000 file (root)")
        except PermissionError:
            pass
        with pytest.raises(InputError, match="cannot read") as info:
            discover_shards([str(path)])
        assert info.value.path == str(path)
    finally:
        path.chmod(0o644)


def test_discover_dangling_symlink_is_an_error(tmp_path: Path) -> None:
    os.symlink(tmp_path / "gone.jsonl", tmp_path / "a.jsonl")
    with pytest.raises(InputError, match="cannot access"):
        discover_shards([str(tmp_path / "a.jsonl")])


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("gz.jsonl", gzip.compress(b'{"text": "x"}\n'), "looks like gzip"),
        ("zst.jsonl", zstandard.ZstdCompressor().compress(b'{"text": "x"}\n'), "looks like zstd"),
        ("plain.jsonl.zst", b'{"text": "x"}\n', "not zstd-compressed"),
        ("plain.jsonl.gz", b'{"text": "x"}\n', "not gzip-compressed"),
        ("gz.txt", gzip.compress(b"hello"), "looks like gzip"),
        ("gz.parquet", gzip.compress(b"hello"), "looks like gzip"),
    ],
)
def test_wrong_extension_is_sniffed(tmp_path: Path, name: str, data: bytes, message: str) -> None:
    path = write(tmp_path / name, data)
    with pytest.raises(InputError, match=message):
        discover_shards([str(path)])
    fmt = next(f for f in sorted(SHARD_FORMATS, key=len, reverse=True) if name.endswith("." + f))
    with pytest.raises(InputError, match=message):  # also when the ShardRef comes from a manifest
        read_all(ref_for(path, fmt))


def test_file_uri_goes_through_pyarrow_fs(tmp_path: Path) -> None:
    write(tmp_path / "a.jsonl", jsonl_bytes(DOCS))
    write_parquet(tmp_path / "b.parquet", docs_table())
    refs = discover_shards([f"file://{tmp_path}"])
    assert [r.uri for r in refs] == [f"file://{tmp_path}/a.jsonl", f"file://{tmp_path}/b.parquet"]
    assert [r.size for r in refs] == [
        (tmp_path / "a.jsonl").stat().st_size,
        (tmp_path / "b.parquet").stat().st_size,
    ]
    for ref in refs:
        assert read_all(ref)[1] == [d["text"] for d in DOCS]
        assert read_document(ref, 2, ReaderOptions()) == DOCS[2]["text"]
    assert [r.uri for r in discover_shards([f"file://{tmp_path}/*.parquet"])] == [
        f"file://{tmp_path}/b.parquet"
    ]
    with pytest.raises(InputError):
        discover_shards([f"file://{tmp_path}/missing.jsonl"])


# --------------------------------------------------------------------------- JSONL bad records (I1-I7)


@pytest.mark.parametrize("bad_line", [1, 3, 5])
def test_malformed_json_reports_line(tmp_path: Path, bad_line: int) -> None:
    lines = [b'{"text": "fine %d"}' % i for i in range(5)]
    lines[bad_line - 1] = b'{"text": "trailing comma",}'
    ref = ref_for(write(tmp_path / "a.jsonl", b"\n".join(lines) + b"\n"))
    err = error_of(ref)
    assert err.location == f"line {bad_line}"
    assert str(err).startswith(f"{ref.uri}:line {bad_line}: invalid JSON")
    assert "column" in str(err)
    _, texts, _, stats = read_all(ref, ReaderOptions(skip_bad_records=True))
    assert len(texts) == 4 and stats.skipped == 1 and stats.records == 5


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b'{"text": "bad \xff byte"}', "0xff"),
        (b'{"text": "overlong \xc0\x80"}', "0xc0"),
        (b'{"text": "truncated \xe2\x82', "0xe2"),
    ],
)
def test_invalid_utf8_reports_line_and_byte_offset(tmp_path: Path, line: bytes, reason: str) -> None:
    first = b'{"text": "ok"}\n'
    ref = ref_for(write(tmp_path / "a.jsonl", first + line))
    err = error_of(ref)
    assert err.location == "line 2"
    offset = len(first) + line.index(bytes([int(reason, 16)]))
    assert "invalid UTF-8" in str(err) and f"byte offset {offset}" in str(err)
    _, texts, _, stats = read_all(ref, ReaderOptions(skip_bad_records=True))
    assert texts == ["ok"] and stats.skipped_reasons == {"invalid UTF-8": 1}


def test_lone_surrogate_is_bad_record(tmp_path: Path) -> None:
    raw = b'{"text": "pair \\ud83d\\ude00 ok"}\n{"text": "lone \\ud800 here"}\n{"text": "\\udc00"}\n'
    ref = ref_for(write(tmp_path / "a.jsonl", raw))
    err = error_of(ref)
    assert err.location == "line 2" and "lone surrogate" in str(err)
    _, texts, _, stats = read_all(ref, ReaderOptions(skip_bad_records=True))
    assert texts == ["pair 😀 ok"]
    assert stats.skipped_reasons == {"lone surrogate": 2}
    for text in texts:
        text.encode("utf-8")  # never a UnicodeEncodeError downstream


def test_bom_crlf_blank_lines_and_missing_final_newline(tmp_path: Path) -> None:
    raw = b'\xef\xbb\xbf{"text": "first"}\r\n\r\n   \n{"text": "second"}\r\n\n{"text": "last"}'
    ref = ref_for(write(tmp_path / "a.jsonl", raw))
    _, texts, rows, stats = read_all(ref)
    assert texts == ["first", "second", "last"]
    assert rows == [0, 3, 5]  # physical line numbers
    assert stats.blank_lines == 3 and stats.records == 3


@pytest.mark.parametrize("content", [b"", b"\n\n  \n"])
def test_empty_jsonl_is_an_empty_shard(tmp_path: Path, content: bytes) -> None:
    _, texts, _, stats = read_all(ref_for(write(tmp_path / "a.jsonl", content)))
    assert texts == [] and stats.records == 0 and stats.blank_lines == content.count(b"\n")


def test_nul_escape_is_kept_as_text(tmp_path: Path) -> None:
    _, texts, _, _ = read_all(ref_for(write(tmp_path / "a.jsonl", b'{"text": "a\\u0000b"}\n')))
    assert texts == ["a\x00b"]


@pytest.mark.parametrize("token", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity_are_rejected(tmp_path: Path, token: bytes) -> None:
    ref = ref_for(write(tmp_path / "a.jsonl", b'{"text": "x", "score": ' + token + b"}\n"))
    err = error_of(ref)
    assert err.location == "line 1" and "not valid JSON" in str(err)


def test_huge_integer_does_not_fail_the_record(tmp_path: Path) -> None:
    raw = b'{"text": "x", "n": ' + b"9" * 5000 + b"}\n"
    assert read_all(ref_for(write(tmp_path / "a.jsonl", raw)))[1] == ["x"]


@pytest.mark.parametrize(
    "line", [b"[" * 100_000, b'{"text": "x", "deep": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"]
)
def test_deep_nesting_is_an_input_error(tmp_path: Path, line: bytes) -> None:
    ref = ref_for(write(tmp_path / "a.jsonl", line + b"\n"))
    err = error_of(ref)
    assert err.location == "line 1" and "invalid JSON" in str(err)


@pytest.mark.parametrize(
    ("record", "message", "reason"),
    [
        (b'{"a": 1, "b": "x"}', "field 'text' missing; available keys: a, b", "missing field"),
        (b'{"text": null}', "field 'text' is null", "null text"),
        (b'{"text": 42}', "field 'text' is a number, expected a string", "non-string text"),
        (b'{"text": ["a", "b"]}', "field 'text' is a list, expected a string", "non-string text"),
        (b'{"text": {"a": "b"}}', "field 'text' is an object, expected a string", "non-string text"),
        (b'{"text": true}', "field 'text' is a boolean, expected a string", "non-string text"),
        (b'{"text": ""}', "field 'text' is empty or whitespace-only", "empty text"),
        (b'{"text": " \\n\\t "}', "field 'text' is empty or whitespace-only", "empty text"),
        (b'["text"]', "record is a list, expected a JSON object", "not an object"),
        (b'"text"', "record is a string, expected a JSON object", "not an object"),
    ],
)
def test_text_field_problems(tmp_path: Path, record: bytes, message: str, reason: str) -> None:
    ref = ref_for(write(tmp_path / "a.jsonl", b'{"text": "good"}\n' + record + b"\n"))
    err = error_of(ref)
    assert err.location == "line 2" and err.reason == message
    _, texts, _, stats = read_all(ref, ReaderOptions(skip_bad_records=True))
    assert texts == ["good"] and stats.skipped_reasons == {reason: 1}


def test_missing_nested_field_lists_keys_at_that_level(tmp_path: Path) -> None:
    ref = ref_for(write(tmp_path / "a.jsonl", b'{"meta": {"title": "t", "lang": "en"}}\n'))
    err = error_of(ref, ReaderOptions(text_field="meta.body"))
    assert err.reason == "field 'meta.body' missing; available keys: title, lang"


def test_skip_bad_records_accounting(tmp_path: Path) -> None:
    lines = []
    for i in range(30):
        lines.append(b'{"text": "good %d"}' % i)
        lines.append(b"{broken")
    lines.append(b'{"other": 1}')
    lines.append(b"")
    ref = ref_for(write(tmp_path / "a.jsonl", b"\n".join(lines) + b"\n"))
    _, texts, rows, stats = read_all(ref, ReaderOptions(skip_bad_records=True))
    assert len(texts) == 30 and rows == list(range(0, 60, 2))
    assert stats.skipped == 31
    assert stats.skipped_reasons == {"invalid JSON": 30, "missing field": 1}
    assert stats.records == 61 and stats.blank_lines == 1 and stats.docs == 30
    assert len(stats.skipped_examples) == 20
    assert stats.skipped_examples[0].startswith(f"{ref.uri}:line 2: invalid JSON")
    assert stats.skipped_examples[1].startswith(f"{ref.uri}:line 4: ")


def test_huge_single_document_line(tmp_path: Path) -> None:
    big = "word " * 10_000_000  # 50 MB
    raw = json.dumps({"text": "small"}).encode() + b"\n" + json.dumps({"text": big}).encode() + b"\n"
    raw += b'{"text": "after"}\n'
    ref = ref_for(write(tmp_path / "big.jsonl", raw))
    _, texts, _, stats = read_all(ref)  # default limits: fine
    assert [len(t) for t in texts] == [5, len(big), 5]
    del texts
    limited = ReaderOptions(max_record_bytes=10 << 20)
    err = error_of(ref, limited)
    assert err.location == "line 2" and "exceeds max_record_bytes" in str(err)
    _, texts, rows, stats = read_all(ref, ReaderOptions(max_record_bytes=10 << 20, skip_bad_records=True))
    assert texts == ["small", "after"] and rows == [0, 2]
    assert stats.skipped_reasons == {"record too large": 1}


def test_record_limit_counts_content_not_line_terminator(tmp_path: Path) -> None:
    line = b'{"text": "' + b"a" * 30 + b'"}'
    ref = ref_for(write(tmp_path / "a.jsonl", line + b"\r\n" + line))
    assert len(read_all(ref, ReaderOptions(max_record_bytes=len(line)))[1]) == 2
    assert error_of(ref, ReaderOptions(max_record_bytes=len(line) - 1)).location == "line 1"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_lines_never_crash(tmp_path: Path, data: st.DataObject) -> None:
    """Insert, delete or flip one byte of valid JSONL: the result is docs or an InputError, nothing else."""
    raw = bytearray(jsonl_bytes(DOCS))
    pos = data.draw(st.integers(0, len(raw) - 1))
    action = data.draw(st.sampled_from(["insert", "delete", "flip"]))
    byte = data.draw(st.integers(0, 255))
    if action == "insert":
        raw.insert(pos, byte)
    elif action == "delete":
        del raw[pos]
    else:
        raw[pos] ^= byte or 1
    ref = ref_for(write(tmp_path / "m.jsonl", bytes(raw)), "jsonl")
    for skip in (False, True):
        try:
            _, texts, _, _ = read_all(ref, ReaderOptions(skip_bad_records=skip))
        except InputError:
            assert not skip
            continue
        for text in texts:
            assert text.strip()
            text.encode("utf-8")


# --------------------------------------------------------------------------- compressed streams (I11-I14, R1-R2)


@pytest.mark.parametrize("fraction", [0.10, 0.50, 0.99])
def test_gzip_truncated_raises_after_partial_batches(tmp_path: Path, fraction: float) -> None:
    full = gzip.compress(many_lines(20_000))
    ref = ref_for(write(tmp_path / "t.jsonl.gz", full[: int(len(full) * fraction)]), "jsonl.gz")
    stats = ShardReadStats()
    seen: list[DocBatch] = []
    with pytest.raises(InputError, match="compressed stream truncated") as info:
        for batch in read_shard(ref, ReaderOptions(batch_docs=1000, skip_bad_records=True), stats):
            seen.append(batch)
    assert info.value.path == ref.uri
    assert sum(len(b.texts) for b in seen) < 20_000  # the caller saw a partial shard and must not commit it


@pytest.mark.parametrize("cut", ["3", "half", "len-3"])
def test_zstd_truncated_always_raises(tmp_path: Path, cut: str) -> None:
    full = zstandard.ZstdCompressor().compress(many_lines(20_000))
    size = {"3": 3, "half": len(full) // 2, "len-3": len(full) - 3}[cut]
    ref = ref_for(write(tmp_path / "t.jsonl.zst", full[:size]), "jsonl.zst")
    with pytest.raises(InputError, match="compressed stream truncated"):
        read_all(ref, ReaderOptions(skip_bad_records=True))


@pytest.mark.parametrize(
    ("fmt", "data"),
    [
        ("jsonl.gz", b""),
        ("jsonl.gz", b"\x1f"),
        ("jsonl.zst", b""),
        ("jsonl.zst", b"\x28\xb5"),
        ("jsonl.zst", b"\x50\x2a"),
    ],
)
def test_magic_prefix_only_is_truncated(tmp_path: Path, fmt: str, data: bytes) -> None:
    ref = ref_for(write(tmp_path / f"e.{fmt}", data), fmt)
    with pytest.raises(InputError, match="compressed stream truncated"):
        read_all(ref)


def test_tiny_plain_file_named_zst_is_not_called_truncated(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not zstd-compressed"):
        read_all(ref_for(write(tmp_path / "e.jsonl.zst", b"{}"), "jsonl.zst"))


def test_gzip_multi_member(tmp_path: Path) -> None:
    raw = gzip.compress(many_lines(10)) + gzip.compress(b"") + gzip.compress(many_lines(5))
    _, texts, rows, _ = read_all(ref_for(write(tmp_path / "m.jsonl.gz", raw)))
    assert len(texts) == 15 and rows == list(range(15))


def test_gzip_trailing_garbage_and_corruption(tmp_path: Path) -> None:
    good = gzip.compress(many_lines(100))
    ref = ref_for(write(tmp_path / "g.jsonl.gz", good + b"garbage!"))
    with pytest.raises(InputError):
        read_all(ref)
    flipped = bytearray(good)
    flipped[len(flipped) // 2] ^= 0xFF
    ref = ref_for(write(tmp_path / "f.jsonl.gz", bytes(flipped)))
    with pytest.raises(InputError):
        read_all(ref, ReaderOptions(skip_bad_records=True))


def test_zstd_multi_frame_and_skippable_frames(tmp_path: Path) -> None:
    cctx = zstandard.ZstdCompressor()
    skippable = struct.pack("<II", 0x184D2A50, 6) + b"\x00" * 6
    raw = (
        skippable
        + cctx.compress(many_lines(10))
        + skippable
        + cctx.compress(b"")
        + cctx.compress(many_lines(7))
    )
    _, texts, rows, _ = read_all(ref_for(write(tmp_path / "m.jsonl.zst", raw)))
    assert len(texts) == 17 and rows == list(range(17))


def test_zstd_streamed_frame_without_content_size(tmp_path: Path) -> None:
    cobj = zstandard.ZstdCompressor().compressobj()
    raw = cobj.compress(many_lines(3000)) + cobj.flush()
    _, texts, _, _ = read_all(ref_for(write(tmp_path / "s.jsonl.zst", raw)))
    assert len(texts) == 3000


@pytest.mark.parametrize("garbage", [b"garbage after the frame", b"\n", b"\x00\x00\x00\x00\x00\x00\x00\x00"])
def test_zstd_trailing_garbage_is_an_error(tmp_path: Path, garbage: bytes) -> None:
    raw = zstandard.ZstdCompressor().compress(many_lines(10)) + garbage
    with pytest.raises(InputError, match="zstd"):
        read_all(ref_for(write(tmp_path / "g.jsonl.zst", raw)), ReaderOptions(skip_bad_records=True))


def test_zstd_oversized_window_is_refused(tmp_path: Path) -> None:
    params = zstandard.ZstdCompressionParameters.from_level(3, window_log=28)
    cobj = zstandard.ZstdCompressor(compression_params=params).compressobj()
    raw = cobj.compress(many_lines(10)) + cobj.flush()
    with pytest.raises(InputError, match="corrupt zstd data"):
        read_all(ref_for(write(tmp_path / "w.jsonl.zst", raw)))


@pytest.mark.parametrize("fmt", ["jsonl.gz", "jsonl.zst"])
def test_decompression_bomb_is_capped(tmp_path: Path, fmt: str) -> None:
    payload = b'{"text": "' + b"a" * (20 << 20) + b'"}\n'  # 20 MB decompressed, a few KB compressed
    raw = gzip.compress(payload) if fmt == "jsonl.gz" else zstandard.ZstdCompressor(level=3).compress(payload)
    ref = ref_for(write(tmp_path / f"bomb.{fmt}", raw))
    with pytest.raises(InputError, match="max_decompressed_bytes"):
        read_all(ref, ReaderOptions(max_decompressed_bytes=4 << 20, skip_bad_records=True))
    assert len(read_all(ref)[1]) == 1  # without the cap it is just a big document


def test_newline_free_bomb_is_bounded_by_record_limit(tmp_path: Path) -> None:
    raw = zstandard.ZstdCompressor(level=3).compress(b"a" * (30 << 20))
    ref = ref_for(write(tmp_path / "bomb.jsonl.zst", raw))
    err = error_of(ref, ReaderOptions(max_record_bytes=1 << 20))
    assert err.location == "line 1" and "exceeds max_record_bytes" in str(err)


# --------------------------------------------------------------------------- Parquet (I8-I9)


def test_parquet_rows_are_absolute_across_row_groups(tmp_path: Path) -> None:
    texts = [f"document {i}" for i in range(100)]
    ref = ref_for(write_parquet(tmp_path / "a.parquet", pa.table({"text": texts}), row_group_size=30))
    _, got, rows, stats = read_all(ref, ReaderOptions(batch_docs=7))
    assert got == texts and rows == list(range(100)) and stats.records == 100


def test_parquet_missing_column_lists_available(tmp_path: Path) -> None:
    ref = ref_for(write_parquet(tmp_path / "a.parquet", pa.table({"body": ["x"], "meta": ["y"]})))
    err = error_of(ref)
    assert "text column 'text' not found; available columns: body, meta" in str(err)
    assert "available columns: body, meta" in str(
        error_of(ref, ReaderOptions(text_field="body", id_field="id"))
    )


def test_parquet_non_string_text_column(tmp_path: Path) -> None:
    ref = ref_for(write_parquet(tmp_path / "a.parquet", pa.table({"text": [1, 2, 3]})))
    assert "has type int64; expected a string column" in str(error_of(ref))
    nested = pa.table({"text": [[{"a": "x"}]]})
    ref = ref_for(write_parquet(tmp_path / "b.parquet", nested))
    assert "expected a string column" in str(error_of(ref))


@pytest.mark.parametrize("kind", ["large_string", "dictionary"])
def test_parquet_string_variants(tmp_path: Path, kind: str) -> None:
    values = ["alpha beta", "gamma", "alpha beta", "delta"]
    array = (
        pa.array(values, pa.large_string())
        if kind == "large_string"
        else pa.array(values).dictionary_encode()
    )
    table = pa.table({"text": array, "id": pa.array([10, 11, 12, 13], pa.int64())})
    ref = ref_for(write_parquet(tmp_path / "a.parquet", table, store_schema=True))
    batches, texts, rows, _ = read_all(ref, ReaderOptions(id_field="id"))
    assert texts == values and rows == [0, 1, 2, 3]
    assert [i for b in batches for i in b.ids] == ["10", "11", "12", "13"]


def test_parquet_null_empty_whitespace_are_bad_rows(tmp_path: Path) -> None:
    table = pa.table({"text": ["ok", None, "", "  \n", "fine"]})
    ref = ref_for(write_parquet(tmp_path / "a.parquet", table))
    err = error_of(ref)
    assert err.location == "row 2" and "null" in str(err)
    _, texts, rows, stats = read_all(ref, ReaderOptions(skip_bad_records=True))
    assert texts == ["ok", "fine"] and rows == [0, 4]
    assert stats.skipped_reasons == {"null text": 1, "empty text": 2}
    assert stats.skipped_examples[1].startswith(f"{ref.uri}:row 3: ")


def test_parquet_invalid_utf8_is_bad_row(tmp_path: Path) -> None:
    data = b"okay\xff\xfebad!good"
    offsets = np.array([0, 4, 10, 14], dtype=np.int32)
    array = pa.Array.from_buffers(pa.string(), 3, [None, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data)])
    ref = ref_for(write_parquet(tmp_path / "a.parquet", pa.table({"text": array})))
    assert error_of(ref).location == "row 2"
    _, texts, _, stats = read_all(ref, ReaderOptions(skip_bad_records=True))
    assert texts == ["okay", "good"] and stats.skipped_reasons == {"invalid UTF-8": 1}


def test_parquet_truncated_footer(tmp_path: Path) -> None:
    good = write_parquet(tmp_path / "good.parquet", docs_table())
    ref = ref_for(write(tmp_path / "cut.parquet", good.read_bytes()[:-100]), "parquet")
    err = error_of(ref, ReaderOptions(skip_bad_records=True))
    assert err.path == ref.uri and "truncated" in str(err)
    with pytest.raises(InputError):
        shard_parts(ref)


def test_parquet_zero_bytes(tmp_path: Path) -> None:
    ref = ref_for(write(tmp_path / "empty.parquet", b""), "parquet")
    assert error_of(ref).path == ref.uri
    with pytest.raises(InputError):
        fingerprint_shard(ShardRef(uri=str(tmp_path / "gone.parquet"), format="parquet", size=0, mtime_ns=0))


def test_parquet_bit_flip_in_data_page_is_detected(tmp_path: Path) -> None:
    texts = [f"document {i} " + "lorem ipsum dolor sit amet " * 20 for i in range(2000)]
    good = write_parquet(
        tmp_path / "good.parquet", pa.table({"text": texts}), compression="none", write_page_checksum=True
    )
    raw = bytearray(good.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    ref = ref_for(write(tmp_path / "flipped.parquet", bytes(raw)), "parquet")
    err = error_of(ref, ReaderOptions(skip_bad_records=True))
    assert err.path == ref.uri


def test_parquet_decompressed_cap(tmp_path: Path) -> None:
    ref = ref_for(
        write_parquet(tmp_path / "a.parquet", pa.table({"text": ["x" * 100_000]}), compression="zstd")
    )
    with pytest.raises(InputError, match="max_decompressed_bytes"):
        read_all(ref, ReaderOptions(max_decompressed_bytes=10_000))


def test_parquet_zero_rows_and_zero_row_groups(tmp_path: Path) -> None:
    schema = pa.schema([("text", pa.string())])
    empty_rows = ref_for(write_parquet(tmp_path / "rows.parquet", schema.empty_table()))
    assert read_all(empty_rows)[1] == []
    path = tmp_path / "groups.parquet"
    pq.ParquetWriter(path, schema).close()
    ref = ref_for(path)
    assert pq.ParquetFile(path).metadata.num_row_groups == 0
    assert shard_parts(ref) == [ShardPart(index=0, total=1, row_groups=())]
    assert read_all(ref, part=shard_parts(ref)[0])[1] == []


# --------------------------------------------------------------------------- parts, read_document, fingerprint


def test_shard_parts_split_and_read(tmp_path: Path) -> None:
    texts = [f"row {i}" for i in range(50)]
    ref = ref_for(write_parquet(tmp_path / "a.parquet", pa.table({"text": texts}), row_group_size=10))
    parts = shard_parts(ref, row_groups_per_part=2)
    assert parts == [
        ShardPart(0, 3, (0, 1)),
        ShardPart(1, 3, (2, 3)),
        ShardPart(2, 3, (4,)),
    ]
    all_rows: list[int] = []
    for part in parts:
        _, got, rows, stats = read_all(ref, part=part)
        assert got == [texts[r] for r in rows] and stats.records == len(rows)
        all_rows += rows
    assert all_rows == list(range(50))
    assert read_all(ref, part=parts[1])[2] == list(range(20, 40))
    assert shard_parts(ref, row_groups_per_part=10) == [ShardPart(0, 1, (0, 1, 2, 3, 4))]
    with pytest.raises(InputError, match="out of range"):
        read_all(ref, part=ShardPart(0, 1, (7,)))
    with pytest.raises(ConfigError):
        shard_parts(ref, row_groups_per_part=0)


def test_shard_parts_non_parquet(tmp_path: Path) -> None:
    ref = ref_for(write(tmp_path / "a.jsonl", jsonl_bytes(DOCS)))
    (part,) = shard_parts(ref)
    assert part == ShardPart(index=0, total=1, row_groups=None)
    assert len(read_all(ref, part=part)[1]) == 3
    with pytest.raises(ConfigError):
        read_all(ref, part=ShardPart(0, 1, (0,)))


def test_read_document_parquet(tmp_path: Path) -> None:
    texts = [f"row {i}" for i in range(3000)]
    ref = ref_for(write_parquet(tmp_path / "a.parquet", pa.table({"text": texts}), row_group_size=1000))
    for row in (0, 999, 1000, 2500, 2999):
        assert read_document(ref, row, ReaderOptions()) == texts[row]
    with pytest.raises(InputError, match="out of range"):
        read_document(ref, 3000, ReaderOptions())


@pytest.mark.parametrize("fmt", ["jsonl", "jsonl.gz", "jsonl.zst"])
def test_read_document_jsonl(tmp_path: Path, fmt: str) -> None:
    raw = b'\xef\xbb\xbf{"text": "zero"}\n\n{"text": "two"}\r\n{bad\n{"text": "four"}'
    if fmt == "jsonl.gz":
        raw = gzip.compress(raw)
    elif fmt == "jsonl.zst":
        raw = zstandard.ZstdCompressor().compress(raw)
    ref = ref_for(write(tmp_path / f"a.{fmt}", raw))
    _, texts, rows, _ = read_all(ref, ReaderOptions(skip_bad_records=True))
    for text, row in zip(texts, rows, strict=True):
        assert read_document(ref, row, ReaderOptions()) == text
    assert rows == [0, 2, 4]
    with pytest.raises(InputError, match="blank"):
        read_document(ref, 1, ReaderOptions())
    with pytest.raises(InputError) as info:
        read_document(ref, 3, ReaderOptions())
    assert info.value.location == "line 4"
    with pytest.raises(InputError, match="out of range"):
        read_document(ref, 5, ReaderOptions())


def test_fingerprint_is_pinned_and_content_based(tmp_path: Path) -> None:
    a = write(tmp_path / "a.jsonl", b"hello world\n")
    b = write(tmp_path / "b.txt", b"hello world\n")
    assert fingerprint_shard(ref_for(a)) == "xxh3-128:eefac9d87100cd1336b2e733a5484425"
    assert fingerprint_shard(ref_for(a)) == fingerprint_shard(ref_for(b))
    write(a, b"hello world!\n")
    assert fingerprint_shard(ref_for(a)) != fingerprint_shard(ref_for(b))


def test_fingerprint_streams_large_files(tmp_path: Path) -> None:
    import xxhash

    data = os.urandom(1 << 20) * 20  # 20 MiB: several 8 MiB chunks
    path = write(tmp_path / "big.txt", data)
    assert fingerprint_shard(ref_for(path, "txt")) == "xxh3-128:" + xxhash.xxh3_128(data).hexdigest()


# --------------------------------------------------------------------------- real data


@pytest.mark.shared
@pytest.mark.skipif(not SHARDS_DIR.is_dir(), reason="shared corpus shards not present")
def test_shared_shard_part_row_count_matches_metadata() -> None:
    refs = discover_shards([str(SHARDS_DIR)])
    ref = min(refs, key=lambda r: r.size)
    part = shard_parts(ref, row_groups_per_part=1)[0]
    metadata = pq.ParquetFile(ref.uri).metadata
    expected = sum(metadata.row_group(g).num_rows for g in part.row_groups or ())
    stats = ShardReadStats()
    options = ReaderOptions(id_field="id", source_field="source", skip_bad_records=True)
    docs = 0
    for batch in read_shard(ref, options, stats, part):
        assert len(batch.texts) == len(batch.rows) == len(batch.ids) == len(batch.sources)
        docs += len(batch.texts)
    assert stats.records == expected
    assert docs + stats.skipped == expected
    assert fingerprint_shard(ref).startswith("xxh3-128:")
