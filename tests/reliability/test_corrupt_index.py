"""Corrupted or tampered index files (RELIABILITY §6.3 X1–X5, §6.6 S5): detected, never silently used."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import xxhash
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import make_docs, write_parquet
from probe.cli import main
from probe.config import BuildConfig, TextSpec
from probe.errors import IndexFormatError, IndexMissingError
from probe.index import format as fmt
from probe.index.build import build_index
from probe.index.maintenance import verify_index
from probe.index.reader import open_index
from probe.index.stats import index_info

SPEC = TextSpec(ns=(3, 8))


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pristine")
    shards = [str(write_parquet(root / "a.parquet", make_docs(150, seed=21), row_group_size=50)),
              str(write_parquet(root / "b.parquet", make_docs(50, seed=22), row_group_size=50))]
    idx = root / "idx"
    build_index(shards, idx, SPEC, BuildConfig(workers=1, row_groups_per_part=4))
    return idx


@pytest.fixture
def idx(pristine: Path, tmp_path: Path) -> Path:
    out = tmp_path / "idx"
    shutil.copytree(pristine, out)
    return out


def ngram_entry(index: Path, n: int = 3) -> dict:
    reader = open_index(index)
    return reader.ngram_entries("surface", n)[0][1]


def all_hashes(index: Path, entry: dict) -> np.ndarray:
    return pq.read_table(index / entry["path"], columns=["hash"]).column("hash").to_numpy()


def full_lookup(index: Path, n: int, hashes: np.ndarray):
    return open_index(index).lookup("surface", n, hashes)


def cli(*args: str):
    return CliRunner().invoke(main, list(args))


def rewrite_snapshot(index: Path, mutate) -> Path:
    """Apply ``mutate`` to the latest snapshot's JSON and re-sign it (a consistent, hand-crafted entry)."""
    number = fmt.list_snapshot_numbers(index)[-1]
    path = index / "snapshots" / fmt.snapshot_name(number)
    data = json.loads(path.read_text())
    mutate(data)
    body = {k: v for k, v in data.items() if k != "checksum"}
    data["checksum"] = xxhash.xxh3_128_hexdigest(fmt.canonical_json(body))
    path.write_text(json.dumps(data))
    return path


def rewrite_manifest(index: Path, mutate) -> None:
    """Apply ``mutate`` to the first segment's manifest and update its digest in a re-signed snapshot."""
    snap = fmt.latest_snapshot(index)
    rel = snap.segments[0]["manifest"]
    data = json.loads((index / rel).read_text())
    mutate(data)
    raw = json.dumps(data).encode()
    (index / rel).write_bytes(raw)

    def fix(snapshot):
        snapshot["segments"][0]["manifest_xxh3"] = xxhash.xxh3_128_hexdigest(raw)

    rewrite_snapshot(index, fix)


# --------------------------------------------------------------------------- X1 truncation
@pytest.mark.parametrize("cut", [1, 8, 100, "all"])
def test_truncated_ngram_file_is_an_error(idx: Path, cut) -> None:
    entry = ngram_entry(idx)
    hashes = all_hashes(idx, entry)
    path = idx / entry["path"]
    data = path.read_bytes()
    path.write_bytes(b"" if cut == "all" else data[:-cut])
    with pytest.raises(IndexFormatError, match="truncated"):
        full_lookup(idx, 3, hashes)
    res = cli("index", "lookup", str(idx), "the quick brown fox jumps", "--n", "3")
    assert res.exit_code == 4 and entry["path"] in res.stderr
    res = cli("index", "verify", str(idx), "--format", "json")
    assert res.exit_code == 4
    report = json.loads(res.stdout)
    assert not report["ok"] and any(entry["path"] in p and "truncated" in p for p in report["problems"])


def test_truncated_docs_file_is_an_error(idx: Path) -> None:
    entry = open_index(idx).manifests[0]["docs_file"]
    path = idx / entry["path"]
    path.write_bytes(path.read_bytes()[:-10])
    assert cli("index", "verify", str(idx)).exit_code == 4
    with pytest.raises(IndexFormatError, match="truncated"):
        open_index(idx).documents(np.array([0], np.uint64))


# --------------------------------------------------------------------------- X2 bit flips
def test_bit_flips_in_ngram_pages_are_detected(pristine: Path, tmp_path: Path) -> None:
    """30 seeded single-byte flips inside column chunks: page CRCs turn each into an error."""
    rng = random.Random(7)
    entry = ngram_entry(pristine)
    hashes = all_hashes(pristine, entry)
    meta = pq.ParquetFile(pristine / entry["path"]).metadata
    chunks = []
    for g in range(meta.num_row_groups):
        for c in range(meta.num_columns):
            col = meta.row_group(g).column(c)
            start = col.dictionary_page_offset if col.has_dictionary_page else col.data_page_offset
            if col.total_compressed_size > 200:
                chunks.append((start, col.total_compressed_size))
    assert chunks
    original = (pristine / entry["path"]).read_bytes()
    detected = 0
    for trial in range(30):
        idx = tmp_path / f"t{trial}"
        shutil.copytree(pristine, idx)
        start, size = rng.choice(chunks)
        offset = rng.randrange(start + 64, start + size)  # past the page header: page data
        data = bytearray(original)
        data[offset] ^= 1 << rng.randrange(8)
        (idx / entry["path"]).write_bytes(bytes(data))
        try:
            full_lookup(idx, 3, hashes)
        except IndexFormatError as e:
            assert entry["path"] in str(e)
            detected += 1
        # and verify --deep always sees it (content hash)
        assert not verify_index(idx, deep=True)["ok"]
        shutil.rmtree(idx)
    assert detected == 30


def test_bit_flip_cli_exit_4(idx: Path) -> None:
    entry = ngram_entry(idx)
    meta = pq.ParquetFile(idx / entry["path"]).metadata
    col = meta.row_group(0).column(0)  # hash column (DELTA_BINARY_PACKED, no dictionary)
    data = bytearray((idx / entry["path"]).read_bytes())
    data[col.data_page_offset + col.total_compressed_size // 2] ^= 0x01
    (idx / entry["path"]).write_bytes(bytes(data))
    res = cli("index", "lookup", str(idx), "It was the best of times, it was the worst of times", "--n", "3")
    assert res.exit_code == 4 and "corrupt" in res.stderr and entry["path"] in res.stderr
    assert cli("index", "verify", str(idx), "--deep").exit_code == 4
    assert cli("index", "info", str(idx)).exit_code == 4


# --------------------------------------------------------------------------- X3 missing / extra files
def test_missing_referenced_file(idx: Path) -> None:
    entry = ngram_entry(idx, 8)
    (idx / entry["path"]).unlink()
    with pytest.raises(IndexFormatError, match="missing"):
        full_lookup(idx, 8, np.array([1, 2, 3], np.uint64))
    res = cli("index", "verify", str(idx), "--format", "json")
    assert res.exit_code == 4 and any("missing" in p for p in json.loads(res.stdout)["problems"])


def test_missing_manifest_and_snapshot_dir(idx: Path) -> None:
    snap = fmt.latest_snapshot(idx)
    (idx / snap.segments[0]["manifest"]).unlink()
    with pytest.raises(IndexFormatError, match="manifest referenced by the snapshot is missing"):
        open_index(idx).manifests  # noqa: B018
    assert cli("index", "verify", str(idx)).exit_code == 4
    shutil.rmtree(idx / "snapshots")
    with pytest.raises(IndexMissingError):
        open_index(idx)


def test_unreferenced_files_are_ignored_and_reported(idx: Path) -> None:
    before = full_lookup(idx, 3, all_hashes(idx, ngram_entry(idx)))
    extra = idx / "segments" / "0123456789abcdef"
    (extra / "view=surface").mkdir(parents=True)
    shutil.copy(idx / ngram_entry(idx)["path"], extra / "view=surface" / "n=3.parquet")
    (idx / "segments" / "stray.txt").write_text("x")
    after = full_lookup(idx, 3, all_hashes(idx, ngram_entry(idx)))
    assert after.counts.tolist() == before.counts.tolist()
    report = verify_index(idx)
    assert report["ok"] and sorted(report["orphans"]) == ["segments/0123456789abcdef", "segments/stray.txt"]


# --------------------------------------------------------------------------- X4 malformed snapshots
def latest_path(index: Path) -> Path:
    return index / "snapshots" / fmt.snapshot_name(fmt.list_snapshot_numbers(index)[-1])


def test_truncated_snapshot_is_an_error_never_skipped(idx: Path) -> None:
    path = latest_path(idx)
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(IndexFormatError, match=f"{path.name}.*truncated"):
        open_index(idx)
    res = cli("index", "info", str(idx))
    assert res.exit_code == 4 and path.name in res.stderr
    # an older snapshot is still readable when asked for explicitly
    assert open_index(idx, snapshot=1).snapshot.number == 1


def test_snapshot_checksum_mismatch(idx: Path) -> None:
    path = latest_path(idx)
    data = json.loads(path.read_text())
    data["stats"]["phases"]["read"] = 123.0  # edited without re-signing
    path.write_text(json.dumps(data))
    with pytest.raises(IndexFormatError, match="checksum mismatch"):
        open_index(idx)
    assert cli("index", "lookup", str(idx), "a b c").exit_code == 4


def test_snapshot_from_newer_probe(idx: Path) -> None:
    def newer(d):
        d["format_version"] = fmt.FORMAT_VERSION + 1
        d["new_required_feature"] = {"x": 1}

    rewrite_snapshot(idx, newer)
    with pytest.raises(IndexFormatError, match="newer probe"):
        open_index(idx)
    res = cli("index", "info", str(idx))
    assert res.exit_code == 4 and "newer probe" in res.stderr


def test_index_from_older_probe_is_refused_with_rebuild_hint(idx: Path) -> None:
    """Format 1 stored doc samples as a list column; its files are not read as format 2."""
    header = json.loads((idx / fmt.SPEC_FILE).read_text())
    (idx / fmt.SPEC_FILE).write_text(json.dumps({**header, "format_version": 1}))
    res = cli("index", "info", str(idx))
    assert res.exit_code == 4 and "older probe" in res.stderr and "rebuild" in res.stderr


def test_index_header_from_newer_probe_or_garbage(idx: Path) -> None:
    header = json.loads((idx / fmt.SPEC_FILE).read_text())
    (idx / fmt.SPEC_FILE).write_text(json.dumps({**header, "format_version": 7}))
    res = cli("index", "verify", str(idx))
    assert res.exit_code == 4 and "newer probe" in res.stdout  # verify reports problems as data
    (idx / fmt.SPEC_FILE).write_text("{")
    assert cli("index", "info", str(idx)).exit_code == 4
    (idx / fmt.SPEC_FILE).write_text(json.dumps({**header, "spec": {**header["spec"], "ns": "eight"}}))
    res = cli("index", "info", str(idx))
    assert res.exit_code == 4 and "invalid text spec" in res.stderr


@pytest.mark.parametrize("mutation", ["segments-not-list", "shard-not-object", "no-shards", "number-mismatch"])
def test_wrong_types_in_a_signed_snapshot(idx: Path, mutation: str) -> None:
    def mutate(d):
        if mutation == "segments-not-list":
            d["segments"] = "segments/x/manifest.json"
        elif mutation == "shard-not-object":
            d["shards"] = {"xxh3-128:0": "done"}
        elif mutation == "no-shards":
            del d["shards"]
        else:
            d["snapshot"] = 99

    rewrite_snapshot(idx, mutate)
    with pytest.raises(IndexFormatError):
        open_index(idx)
    assert cli("index", "info", str(idx)).exit_code == 4


@settings(max_examples=max(10, settings().max_examples // 2))
@given(data=st.data())
def test_mutated_snapshot_bytes_never_crash(pristine: Path, data: st.DataObject) -> None:
    """Any byte-level damage to the latest snapshot is an IndexFormatError (or harmless), never a crash."""
    raw = latest_path(pristine).read_bytes()
    pos = data.draw(st.integers(0, len(raw) - 1))
    op = data.draw(st.sampled_from(["flip", "delete", "insert", "truncate"]))
    if op == "flip":
        mutated = raw[:pos] + bytes([raw[pos] ^ data.draw(st.integers(1, 255))]) + raw[pos + 1:]
    elif op == "delete":
        mutated = raw[:pos] + raw[pos + 1:]
    elif op == "insert":
        mutated = raw[:pos] + data.draw(st.binary(min_size=1, max_size=3)) + raw[pos:]
    else:
        mutated = raw[:pos]
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        idx = Path(d) / "idx"
        shutil.copytree(pristine, idx)
        latest_path(idx).write_bytes(mutated)
        try:
            reader = open_index(idx)
            reader.manifests  # noqa: B018
        except IndexFormatError:
            return
        # only whitespace-like edits may survive the checksum
        assert json.loads(mutated) == json.loads(raw)


# --------------------------------------------------------------------------- S5 paths
@pytest.mark.parametrize("bad", ["../outside/manifest.json", "/etc/passwd", "segments/../../x.json",
                                 "file:///etc/passwd", "simplecache::s3://b/k", ""])
def test_snapshot_manifest_paths_must_stay_inside(idx: Path, bad: str) -> None:
    def mutate(d):
        d["segments"][0]["manifest"] = bad

    rewrite_snapshot(idx, mutate)
    with pytest.raises(IndexFormatError, match="not a relative path inside the index"):
        open_index(idx).manifests  # noqa: B018
    assert cli("index", "verify", str(idx)).exit_code == 4


@pytest.mark.parametrize("bad", ["../../../etc/passwd", "/etc/passwd", "segments/x/../../../../etc/hosts"])
def test_manifest_file_paths_must_stay_inside(idx: Path, bad: str) -> None:
    def mutate(m):
        m["files"][0]["path"] = bad
        m["docs_file"]["path"] = bad

    rewrite_manifest(idx, mutate)
    reader = open_index(idx)
    with pytest.raises(IndexFormatError, match="not a relative path inside the index"):
        reader.lookup(reader.manifests[0]["files"][0]["view"], reader.manifests[0]["files"][0]["n"],
                      np.array([1], np.uint64))
    res = cli("index", "verify", str(idx), "--deep", "--format", "json")
    assert res.exit_code == 4
    assert any("not a relative path" in p for p in json.loads(res.stdout)["problems"])


def test_tampered_manifest_is_detected_by_digest(idx: Path) -> None:
    rel = fmt.latest_snapshot(idx).segments[0]["manifest"]
    data = json.loads((idx / rel).read_text())
    data["files"][0]["rows"] += 1
    (idx / rel).write_text(json.dumps(data))
    with pytest.raises(IndexFormatError, match="manifest content hash mismatch"):
        open_index(idx).manifests  # noqa: B018


# --------------------------------------------------------------------------- X5 replaced files
def same_size_replacement(path: Path) -> bytes:
    """Another valid Parquet file of exactly the same size with different content (one doc0 changed).

    Written without the Arrow schema blob (smaller footer), then padded with key-value metadata
    (one footer byte per pad character) up to the original size.
    """
    import io

    import pyarrow as pa

    target = path.stat().st_size
    table = pq.read_table(path)
    doc0 = table.column("doc0").to_pylist()
    doc0[0] = doc0[1] if doc0[1] != doc0[0] else doc0[0] + 1
    table = table.set_column(1, "doc0", pa.array(doc0, pa.uint32()))
    pad = 0
    for _ in range(10):
        sink = io.BytesIO()
        writer = pq.ParquetWriter(sink, table.schema, compression="zstd", compression_level=1,
                                  write_page_checksum=True, write_statistics=["hash"],
                                  use_dictionary=["doc0"], column_encoding={"hash": "DELTA_BINARY_PACKED"},
                                  store_schema=False)
        writer.write_table(table)
        writer.add_key_value_metadata({"pad": "x" * pad})
        writer.close()
        data = sink.getvalue()
        if len(data) == target:
            return data
        pad += target - len(data)
        if pad < 0:
            break
    pytest.skip("cannot build a same-size replacement")


def test_verify_deep_detects_same_size_replacement(idx: Path) -> None:
    entry = ngram_entry(idx)
    path = idx / entry["path"]
    path.write_bytes(same_size_replacement(path))
    assert verify_index(idx)["ok"]  # size, footer and page checksums are all fine...
    report = verify_index(idx, deep=True)
    assert not report["ok"] and any("content hash mismatch" in p for p in report["problems"])  # ...not the hash
    res = cli("index", "verify", str(idx), "--deep")
    assert res.exit_code == 4 and "content hash mismatch" in res.stdout


def test_plain_verify_detects_replacement_of_other_size(idx: Path) -> None:
    entry = ngram_entry(idx)
    path = idx / entry["path"]
    pq.write_table(pq.read_table(path).slice(0, 10), path)
    report = verify_index(idx)
    assert not report["ok"] and any("truncated or replaced" in p for p in report["problems"])


def test_unsorted_hashes_are_detected_by_deep_verify(idx: Path) -> None:
    import io

    entry = ngram_entry(idx)
    table = pq.read_table(idx / entry["path"])
    table = table.take(np.arange(table.num_rows)[::-1].copy())
    sink = io.BytesIO()
    pq.write_table(table, sink, write_page_checksum=True)
    data = sink.getvalue()
    (idx / entry["path"]).write_bytes(data)

    def fix(m):
        for f in m["files"]:
            if f["path"] == entry["path"]:
                f["bytes"] = len(data)
                f["xxh3_128"] = xxhash.xxh3_128_hexdigest(data)
                f["row_groups"] = [[0, 255, table.num_rows]]

    rewrite_manifest(idx, fix)
    report = verify_index(idx, deep=True)
    assert not report["ok"] and any("not strictly sorted" in p for p in report["problems"])


def test_info_on_damaged_index_exits_4_not_70(idx: Path) -> None:
    entry = ngram_entry(idx)
    (idx / entry["path"]).write_bytes(b"PAR1garbagePAR1")
    with pytest.raises(IndexFormatError):
        index_info(idx)
    res = cli("index", "info", str(idx))
    assert res.exit_code == 4 and "internal error" not in res.stderr


@pytest.mark.parametrize("mutation", ["no-files", "file-not-object", "bytes-string", "row-groups-bad", "no-docs-file"])
def test_malformed_but_signed_manifest_is_a_format_error(idx: Path, mutation: str) -> None:
    def mutate(m):
        if mutation == "no-files":
            del m["files"]
        elif mutation == "file-not-object":
            m["files"][0] = "view=surface/n=3.parquet"
        elif mutation == "bytes-string":
            m["files"][0]["bytes"] = "38074"
        elif mutation == "row-groups-bad":
            m["files"][0]["row_groups"] = [[0, 255]]
        else:
            del m["docs_file"]

    rewrite_manifest(idx, mutate)
    with pytest.raises(IndexFormatError, match="malformed segment manifest"):
        open_index(idx).manifests  # noqa: B018
    for cmd in (["index", "info", str(idx)], ["index", "verify", str(idx)], ["index", "lookup", str(idx), "a b c"]):
        res = cli(*cmd)
        assert res.exit_code == 4 and "internal error" not in res.stderr, (cmd, res.output)
