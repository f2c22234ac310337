"""Dataset inputs through the shared input layer: object storage, in-memory records, options, bad records.

Each test here pins a behaviour a new user tripped over (issue 13): datasets from ``s3://``
with the same errors as a local file, records in memory, a CSV ``delimiter``,
``skip_bad_records``, conversation order kept for multi-turn chats, one clear position in
a malformed-JSON message, and magic bytes checked for datasets as for corpus shards.
"""

from __future__ import annotations

import gzip
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from probe.errors import ConfigError, InputError
from probe.sources.corpus import ReaderOptions, ShardReadStats, discover_shards, read_shard
from probe.sources.datasets import (
    DatasetOptions,
    DatasetReadStats,
    Example,
    dataset_name,
    detect_schema,
    read_examples,
)

ALPACA = [
    {"instruction": "Name the harbor town.", "input": "", "output": "It is Port Ellen."},
    {"instruction": "Count the old bells.", "input": "in the tower", "output": "There are seven."},
]


def read_all(dataset: Any, **options: Any) -> tuple[list[Example], DatasetReadStats]:
    stats = DatasetReadStats()
    return [e for b in read_examples(dataset, DatasetOptions(**options), stats) for e in b], stats


def jsonl(records: list[Any]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


# --------------------------------------------------------------------------- records in memory


def test_a_list_of_dicts_reads_like_the_same_file(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(jsonl(ALPACA))
    assert detect_schema(ALPACA, DatasetOptions()) == detect_schema(path, DatasetOptions())
    from_memory, stats = read_all(ALPACA)
    from_file, _ = read_all(path)
    assert from_memory == from_file
    assert stats.schema is not None and stats.schema.name == "alpaca"
    assert dataset_name(ALPACA) == "<records>"


def test_an_arrow_table_reads_like_the_same_records() -> None:
    table = pa.Table.from_pylist(ALPACA)
    assert read_all(table)[0] == read_all(ALPACA)[0]
    assert dataset_name(table) == "<records>"


def test_a_pandas_dataframe_reads_like_the_same_records() -> None:
    pandas = pytest.importorskip("pandas")
    frame = pandas.DataFrame(ALPACA)
    assert read_all(frame)[0] == read_all(ALPACA)[0]
    assert dataset_name(frame) == "<records>"


def test_a_bad_in_memory_record_is_named_by_its_row() -> None:
    with pytest.raises(InputError) as info:
        read_all([*ALPACA, ["not", "a", "dict"]])
    assert str(info.value).startswith("<records>:row 3: expected a JSON object per record, found list")
    with pytest.raises(TypeError, match="a dataset is a path"):
        dataset_name(42)


# --------------------------------------------------------------------------- options


def test_csv_delimiter_option(tmp_path: Path) -> None:
    path = tmp_path / "semicolons.csv"
    path.write_text("instruction;output\nSay the word twice.;word word\n")
    with pytest.raises(InputError, match="delimiter may be wrong"):
        read_all(path)
    examples, _ = read_all(path, delimiter=";")
    assert examples[0].fields == {"instruction": "Say the word twice.", "response": "word word"}
    with pytest.raises(ConfigError, match="single character"):
        read_all(path, delimiter=";;")


def test_skip_bad_records_counts_them_with_reason_and_place(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(jsonl(ALPACA[:1]) + b'{"instruction": "x",\n' + b"[1, 2]\n" + b'{"instruction": "caf\xff"}\n'
                     + jsonl(ALPACA[1:]))
    with pytest.raises(InputError) as info:  # the default stays fail-fast
        read_all(path)
    assert info.value.location == "line 2"
    examples, stats = read_all(path, skip_bad_records=True)
    assert [e.row for e in examples] == [0, 4]  # rows keep their place in the file
    assert (stats.records, stats.examples, stats.skipped) == (5, 2, 3)
    assert stats.skipped_reasons == {"invalid JSON": 1, "not an object": 1, "invalid UTF-8": 1}
    assert stats.skipped_examples[0].startswith(f"{path}:line 2: invalid JSON")
    assert stats.skipped_examples[1].startswith(f"{path}:line 3: expected a JSON object")


def test_skip_bad_records_in_csv(tmp_path: Path) -> None:
    path = tmp_path / "ragged.csv"
    path.write_text("instruction,output\nfirst question here,first answer\nragged,row,extra\nlast one,ok then\n")
    examples, stats = read_all(path, skip_bad_records=True)
    assert [e.fields["instruction"] for e in examples] == ["first question here", "last one"]
    assert stats.skipped_reasons == {"wrong field count": 1}
    assert stats.skipped_examples == [f"{path}:line 3: record 2 has 3 fields, the header has 2"]


def test_skip_bad_records_still_fails_a_damaged_file(tmp_path: Path) -> None:
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(gzip.compress(jsonl(ALPACA * 50))[:-12])
    with pytest.raises(InputError, match="truncated"):
        read_all(path, skip_bad_records=True)


# --------------------------------------------------------------------------- what gets read


def test_multi_turn_chat_keeps_conversation_order() -> None:
    chat = {"messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "second question"},
        {"role": "assistant", "content": "second answer"},
    ]}
    (example,), _ = read_all([chat])  # the system prompt is left out of the judged text by default
    assert example.fields == {"instruction": "first question\nsecond question",
                              "response": "first answer\nsecond answer"}
    assert example.whole_text() == "first question\nfirst answer\nsecond question\nsecond answer"
    (example,), _ = read_all([chat], include_system_prompts=True)
    assert example.fields == {"instruction": "first question\nsecond question", "input": "Be brief.",
                              "response": "first answer\nsecond answer"}
    assert example.whole_text() == "Be brief.\nfirst question\nfirst answer\nsecond question\nsecond answer"


def test_whole_text_of_a_flat_record_is_its_fields_in_order() -> None:
    (example,), _ = read_all(ALPACA[1:])
    assert example.whole is None
    assert example.whole_text() == "Count the old bells.\nin the tower\nThere are seven."


def test_malformed_jsonl_line_names_one_position(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(jsonl(ALPACA[:1]) + b'{"instruction": "x",\n')
    with pytest.raises(InputError) as info:
        read_all(path)
    message = str(info.value)
    assert message == (f"{path}:line 2: invalid JSON: Expecting property name enclosed in double quotes "
                       "at the end of the line")
    assert "line 2 column" not in message and "(char" not in message


@pytest.mark.parametrize(("name", "data", "looks"), [
    ("gzip.jsonl", gzip.compress(jsonl(ALPACA)), "looks like gzip"),
    ("plain.jsonl.gz", jsonl(ALPACA), "not gzip-compressed"),
    ("gzip.csv", gzip.compress(b"instruction,output\na,b\n"), "looks like gzip"),
    ("text.parquet", b"instruction,output\n", "not a readable Parquet"),
])
def test_dataset_magic_bytes_must_match_the_name(tmp_path: Path, name: str, data: bytes, looks: str) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(InputError, match=looks):
        read_all(path)


# --------------------------------------------------------------------------- object storage (moto)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def s3_bucket() -> Iterator[str]:
    """A local S3 (moto's server on 127.0.0.1) with one bucket; pyarrow reaches it via AWS_ENDPOINT_URL."""
    server_module = pytest.importorskip("moto.server", reason="moto[server] is in the test extra")
    port = _free_port()
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    patch = pytest.MonkeyPatch()
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
                       "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_EC2_METADATA_DISABLED": "true"}.items():
        patch.setenv(key, value)
    try:
        import pyarrow.fs as pafs

        fs = pafs.S3FileSystem(endpoint_override=f"127.0.0.1:{port}", scheme="http", region="us-east-1",
                               access_key="testing", secret_key="testing", allow_bucket_creation=True)
        fs.create_dir("probe-test")
        yield "probe-test"
    finally:
        patch.undo()
        server.stop()


def _put(bucket: str, key: str, data: bytes) -> str:
    import pyarrow.fs as pafs

    fs, path = pafs.FileSystem.from_uri(f"s3://{bucket}/{key}")
    with fs.open_output_stream(path, compression=None) as out:  # bytes as given, never re-compressed
        out.write(data)
    return f"s3://{bucket}/{key}"


@pytest.mark.parametrize("name", ["alpaca.jsonl", "alpaca.jsonl.zst", "alpaca.parquet", "alpaca.csv"])
def test_dataset_from_s3_reads_like_the_local_file(s3_bucket: str, tmp_path: Path, name: str) -> None:
    local = tmp_path / name
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(ALPACA), local)
    elif name.endswith(".csv"):
        local.write_text("instruction,input,output\n" + "".join(
            f"{r['instruction']},{r['input']},{r['output']}\n" for r in ALPACA))
    elif name.endswith(".zst"):
        import zstandard

        local.write_bytes(zstandard.ZstdCompressor().compress(jsonl(ALPACA)))
    else:
        local.write_bytes(jsonl(ALPACA))
    uri = _put(s3_bucket, f"ds/{name}", local.read_bytes())
    assert detect_schema(uri, DatasetOptions()) == detect_schema(local, DatasetOptions())
    remote, stats = read_all(uri)
    assert remote == read_all(local)[0] and stats.records == 2


def test_bad_dataset_on_s3_names_the_uri_and_line(s3_bucket: str) -> None:
    uri = _put(s3_bucket, "ds/bad.jsonl", jsonl(ALPACA[:1]) + b'{"instruction": "x",\n')
    with pytest.raises(InputError) as info:
        read_all(uri)
    assert str(info.value).startswith(f"{uri}:line 2: invalid JSON")
    cut = _put(s3_bucket, "ds/cut.jsonl.zst", __import__("zstandard").ZstdCompressor().compress(jsonl(ALPACA))[:-3])
    with pytest.raises(InputError, match="compressed stream truncated") as info:
        read_all(cut)
    assert info.value.path == cut
    with pytest.raises(InputError, match="cannot open"):
        read_all(f"s3://{s3_bucket}/ds/missing.jsonl")


def test_corpus_shard_from_s3(s3_bucket: str) -> None:
    docs = [{"text": "one two three four", "id": "a"}, {"text": "five six seven", "id": "b"}]
    uri = _put(s3_bucket, "corpus/shard.jsonl", jsonl(docs))
    (ref,) = discover_shards([f"s3://{s3_bucket}/corpus/"])
    assert ref.uri == uri and ref.format == "jsonl"
    batches = list(read_shard(ref, ReaderOptions(), ShardReadStats()))
    assert [t for b in batches for t in b.texts] == [d["text"] for d in docs]
    assert [i for b in batches for i in b.ids] == ["a", "b"]
