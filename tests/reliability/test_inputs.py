"""Bad corpus shards through the real CLI with a process pool (RELIABILITY §6.4, promise 9).

tests/test_corpus_sources.py checks each reader in-process. Here every bad input goes
through ``python -m probe index build --workers 2`` next to good shards — the default
production path, where errors cross a process boundary — and must give: exit 3, a
message naming the file (and line/row where there is one), no traceback, no "worker died";
the good shards committed; nothing from the bad one. With ``--skip-bad-records`` a bad
*record* is skipped and counted (exit 0) while a damaged *container* still fails.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import make_docs, probe_env, write_parquet
from probe.index import format as fmt

pytestmark = pytest.mark.crash

GOOD = [json.dumps({"text": t}) for t in make_docs(30, seed=81, min_words=10)]


def _lines(*bad: str, at: int = 5) -> bytes:
    lines = list(GOOD[:at]) + list(bad) + list(GOOD[at:12])
    return ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")


def _parquet(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


PLAIN = _lines()
GZ = gzip.compress(PLAIN, mtime=0)
ZST = zstandard.ZstdCompressor().compress(PLAIN)
PARQ = _parquet(pa.table({"text": make_docs(20, seed=82)}))


@dataclass(frozen=True)
class Bad:
    name: str  # file name (the extension decides the reader)
    data: bytes
    where: str  # must appear in the message after the file name ("" = whole-file error)
    record_level: bool  # --skip-bad-records skips it (else the shard still fails)
    at_discovery: bool = False  # refused before any work (sniffing): nothing is committed


BAD = [
    Bad("trailing-comma.jsonl", _lines('{"text": "a b c",}'), ":line 6", True),
    Bad("unquoted-key.jsonl", _lines('{text: "a b c"}'), ":line 6", True),
    Bad("truncated-object.jsonl", _lines('{"text": "a b'), ":line 6", True),
    Bad("first-line.jsonl", _lines("{oops", at=0), ":line 1", True),
    Bad("last-line.jsonl", PLAIN + b'{"text": "no end', ":line 13", True),
    Bad("invalid-utf8.jsonl", _lines('{"text": "caf\udcff"}'), ":line 6", True),
    Bad("overlong-utf8.jsonl", PLAIN[:-1] + b'\n{"text": "\xc0\xaf"}\n', ":line 13", True),
    Bad("truncated-multibyte.jsonl", PLAIN + b'{"text": "\xe6\x97', ":line 13", True),
    Bad("lone-surrogate.jsonl", _lines('{"text": "x \\ud800 y"}'), ":line 6", True),
    Bad("nan.jsonl", _lines('{"text": "a", "score": NaN}'), ":line 6", True),
    Bad("deep-nesting.jsonl", _lines('{"text": "a", "x": ' + "[" * 100000 + "]" * 100000 + "}"), ":line 6", True),
    Bad("missing-text.jsonl", _lines('{"body": "a b c"}'), ":line 6", True),
    Bad("text-is-number.jsonl", _lines('{"text": 42}'), ":line 6", True),
    Bad("text-is-null.jsonl", _lines('{"text": null}'), ":line 6", True),
    Bad("text-is-list.jsonl", _lines('{"text": ["a", "b"]}'), ":line 6", True),
    Bad("not-an-object.jsonl", _lines('["text", "a"]'), ":line 6", True),
    Bad("huge-line.jsonl", _lines('{"text": "' + "word " * 300000 + '"}'), ":line 6", True),
    Bad("truncated.jsonl.gz", GZ[: len(GZ) // 2], "", False),
    Bad("truncated.jsonl.zst", ZST[: len(ZST) - 3], "", False),
    Bad("garbage-after-frame.jsonl.zst", ZST + b"garbage!", "", False),
    Bad("garbage-after-member.jsonl.gz", GZ + b"garbage!", "", False),
    Bad("gzip-named.jsonl", GZ, "", False, at_discovery=True),
    Bad("plain-named.jsonl.zst", PLAIN, "", False, at_discovery=True),
    Bad("truncated-footer.parquet", PARQ[:-10], "", False, at_discovery=True),
    Bad("zero-bytes.parquet", b"", "", False, at_discovery=True),
    Bad("wrong-column.parquet", _parquet(pa.table({"body": ["a b c d"] * 5})), "", False),
    Bad("int-column.parquet", _parquet(pa.table({"text": [1, 2, 3]})), "", False),
    Bad("null-rows.parquet", _parquet(pa.table({"text": ["a b c d e", None, "f g h i j"]})), ":row 2", True),
    Bad("invalid-utf8.txt", b"fine text then \xff\xfe bad bytes", ":byte 15", True),
]


def _build(corpus: Path, bad: list[Path], index: Path, *extra: str) -> subprocess.Popen[str]:
    args = [sys.executable, "-m", "probe", "index", "build", str(corpus / "good"), *map(str, bad), "--index",
            str(index), "--workers", "2", "--row-groups-per-part", "1", "--n", "3", "--max-record-bytes", "1M",
            "--silent", *extra]
    return subprocess.Popen(args, env=probe_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@dataclass
class Run:
    code: int
    stderr: str
    index: Path


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, bool], Run]:
    """Bad shards built together next to the good ones (a failing shard must not hide another's error).

    Groups of at most 13 bad shards (the error lists 20 failures), with and without
    --skip-bad-records; shards refused at discovery are built one by one. 4 builds at a time.
    """
    root = tmp_path_factory.mktemp("inputs")
    write_parquet(root / "good" / "a.parquet", make_docs(60, seed=83), row_group_size=20)  # 3 parts
    (root / "good" / "b.jsonl").write_bytes(PLAIN)  # 1 part
    paths = {}
    for case in BAD:
        paths[case.name] = root / "bad" / case.name
        paths[case.name].parent.mkdir(exist_ok=True)
        paths[case.name].write_bytes(case.data)
    later = [c for c in BAD if not c.at_discovery]
    groups = [(later[i:i + 13], False) for i in range(0, len(later), 13)]
    groups += [([c for c in later if c.record_level], True), ([c for c in later if not c.record_level], True)]
    groups += [([c], skip) for c in BAD if c.at_discovery for skip in (False, True)]
    jobs = []
    for i, (cases, skip) in enumerate(groups):
        index = root / "idx" / f"g{i}"
        jobs.append(([(c.name, skip) for c in cases], [paths[c.name] for c in cases], index,
                     ["--skip-bad-records"] if skip else []))
    out: dict[tuple[str, bool], Run] = {}
    running: list = []
    while jobs or running:
        while jobs and len(running) < 4:
            keys, bad, index, extra = jobs.pop(0)
            running.append((keys, index, _build(root, bad, index, *extra)))
        keys, index, proc = running.pop(0)
        _o, err = proc.communicate(timeout=300)
        for key in keys:
            out[key] = Run(proc.returncode, err, index)
    return out


def _committed(index: Path) -> set[str]:
    snap = fmt.latest_snapshot(index) if (index / fmt.SPEC_FILE).exists() else None
    return {rec["uri"] for rec in snap.shards.values()} if snap else set()


def _line_for(err: str, name: str) -> str:
    lines = [line.strip() for line in err.splitlines() if f"/{name}" in line]
    assert len(lines) == 1, (name, err)
    return lines[0]


@pytest.mark.parametrize("case", BAD, ids=lambda c: c.name)
def test_bad_shard_fails_alone_naming_file_and_place(case: Bad, runs) -> None:
    run = runs[(case.name, False)]
    assert run.code == 3, run.stderr
    assert "Traceback" not in run.stderr and "worker process died" not in run.stderr, run.stderr
    line = _line_for(run.stderr, case.name)
    assert f"/{case.name}{case.where}" in line, line
    committed = {Path(u).name for u in _committed(run.index)}
    assert case.name not in committed
    if case.at_discovery:
        assert committed == set()  # refused before any work
    else:
        assert {"a.parquet", "b.jsonl"} <= committed  # good shards still commit
        assert all(n in ("a.parquet", "b.jsonl") for n in committed)  # and no bad one


@pytest.mark.parametrize("case", BAD, ids=lambda c: c.name)
def test_skip_bad_records_counts_records_but_not_damaged_files(case: Bad, runs) -> None:
    run = runs[(case.name, True)]
    assert "Traceback" not in run.stderr and "worker process died" not in run.stderr, run.stderr
    if not case.record_level:
        assert run.code == 3, run.stderr
        _line_for(run.stderr, case.name)
        return
    assert run.code == 0, run.stderr
    snap = fmt.latest_snapshot(run.index)
    rec = next(r for r in snap.shards.values() if r["uri"].endswith("/" + case.name))
    assert sum(p.get("skipped", 0) for p in rec["parts"].values()) >= 1
    assert "skipped" in run.stderr  # the build says so on stderr


def test_cases_count() -> None:
    print(f"{len(BAD)} bad corpus inputs x (fail, --skip-bad-records) through a 2-worker build")
    assert len(BAD) >= 25


# --------------------------------------------------------------------------- datasets through `probe check`
def _jsonl(*records: str) -> bytes:
    good = [json.dumps({"instruction": f"Question {i} about the harbor and the old library?",
                        "output": "An answer with several words in it."}) for i in range(3)]
    return ("\n".join(good + list(records)) + "\n").encode("utf-8", "surrogatepass")


CSV_HEAD = b"instruction,output\n"
# (file name, bytes, exit code, text that must be in the one-line error (after the file name))
BAD_DATASETS = [
    ("malformed.jsonl", _jsonl('{"instruction": "x", "output": }'), 3, ":line 4: invalid JSON"),
    ("trailing-comma.jsonl", _jsonl('{"instruction": "x", "output": "y",}'), 3, ":line 4"),
    ("invalid-utf8.jsonl", _jsonl() + b'{"instruction": "caf\xff"}\n', 3, ":line 4"),
    ("deep.jsonl", _jsonl('{"instruction": "x", "z": ' + "[" * 100000 + "]" * 100000 + "}"), 3, ":line 4"),
    ("not-object.jsonl", _jsonl('["instruction", "output"]'), 3, ":line 4"),
    ("truncated.jsonl.gz", gzip.compress(_jsonl(), mtime=0)[:-12], 3, "truncated"),
    ("truncated.jsonl.zst", zstandard.ZstdCompressor().compress(_jsonl())[:-3], 3, "truncated"),
    ("unknown-schema.jsonl", b'{"foo": 1, "bar": "some text here"}\n', 3, "unknown dataset schema"),
    ("bad-json-doc.json", b'[\n  {"instruction": "a", "output": "b"},\n  {"instruction": }\n]\n', 3, ":line 3"),
    ("huge-field.csv", CSV_HEAD + b'"' + b"x" * (17 << 20) + b'",y\n', 3, "record 1"),  # > 16 Mi chars
    ("unterminated-quote.csv", CSV_HEAD + b'"never closed,y\nmore,rows\n', 3, ""),
    ("cp1252.csv", CSV_HEAD + b"caf\xe9 au lait with words,answer\n", 3, "--encoding"),
    ("field-count.csv", CSV_HEAD + b"a,b,c,d\n", 3, ""),
    ("truncated.parquet", _parquet(pa.table({"instruction": ["a b c"], "output": ["d e f"]}))[:-9], 3, ""),
    ("empty.jsonl", b"", 5, "no records"),
    ("blank-lines.jsonl", b"\n\n\n", 5, "no records"),
    ("all-short.jsonl", b'{"instruction": "hi", "output": "yo"}\n', 5, "nothing assessable"),
    ("all-textless.jsonl", b'{"instruction": "", "output": null}\n{"instruction": "  "}\n', 5, ""),
    ("no-rows.parquet", _parquet(pa.table({"instruction": pa.array([], pa.string()),
                                           "output": pa.array([], pa.string())})), 5, ""),
    ("archive.zip", b"PK\x03\x04" + b"\x00" * 40, 3, ""),
]


@pytest.fixture(scope="module")
def scan_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from probe.config import BuildConfig, TextSpec
    from probe.index.build import build_index

    root = tmp_path_factory.mktemp("ds-index")
    shard = write_parquet(root / "c.parquet", make_docs(40, seed=84))
    build_index([str(shard)], root / "idx", TextSpec(ns=(3, 8)), BuildConfig(workers=1))
    return root / "idx"


@pytest.mark.parametrize(("name", "data", "code", "where"), BAD_DATASETS, ids=[b[0] for b in BAD_DATASETS])
def test_bad_dataset_exit_code_and_one_line_naming_it(scan_index: Path, tmp_path: Path, name: str, data: bytes,
                                                      code: int, where: str) -> None:
    from click.testing import CliRunner

    from probe.cli import main

    path = tmp_path / name
    path.write_bytes(data)
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["check", str(path), "--index", str(scan_index), "--out", str(out), "--silent"])
    assert res.exit_code == code, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("probe: error: "), res.stderr
    assert str(path) in lines[0] and where in lines[0], lines[0]
    # nothing was published: no report at a final name, no temp file
    assert not out.exists() or not [p.name for p in out.iterdir()], list(out.iterdir())


def test_records_of_another_layout_are_skipped_and_counted(scan_index: Path, tmp_path: Path) -> None:
    """Alpaca records and one chat record in one file: whatever layout detection picks, the records
    that do not fit it are skipped, counted and listed with file:line — never dropped silently (P2).
    (Detection reads the union of keys and picks `messages` here, so 3 of 4 records are skipped with
    exit 0: an open finding in docs/guarantees.md.)"""
    from click.testing import CliRunner

    from probe.cli import main

    path = tmp_path / "mixed.jsonl"
    path.write_bytes(_jsonl('{"messages": [{"role": "user", "content": "hi there, a few words"}]}'))
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["scan", str(path), "--index", str(scan_index), "--out", str(out), "--silent",
                                    "--format", "json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    ds = summary["dataset"]
    assert summary["examples"] + summary["skipped"] == ds["records"] == 4
    assert summary["skipped"] >= 1 and ds["skipped_reasons"] == {"no text fields": summary["skipped"]}
    assert len(ds["skipped_examples"]) == summary["skipped"]
    assert all(e.startswith(f"{path}:line ") for e in ds["skipped_examples"])


def test_nan_in_a_dataset_field_reads_as_a_missing_value(scan_index: Path, tmp_path: Path) -> None:
    """Datasets (unlike corpus shards) accept NaN, as pandas writes missing values: the field is absent."""
    from click.testing import CliRunner

    from probe.cli import main

    path = tmp_path / "nan.jsonl"
    path.write_bytes(_jsonl('{"instruction": NaN, "output": "an answer with several words"}'))
    res = CliRunner().invoke(main, ["scan", str(path), "--index", str(scan_index), "--out", str(tmp_path / "o"),
                                    "--silent", "--format", "json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["examples"] == 4
    rows = pq.read_table(tmp_path / "o" / "examples.parquet", columns=["instruction_text"]).to_pylist()
    assert rows[3]["instruction_text"] is None


_VALID = {
    "jsonl": _jsonl(),
    "json": json.dumps([{"instruction": "Question about the harbor and the old library?",
                         "output": "An answer with several words in it."}] * 3).encode(),
    "csv": CSV_HEAD + b'"Question about the harbor and the old library?","An answer, with words"\n' * 3,
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_datasets_never_crash_the_scan(scan_index: Path, tmp_path: Path, data: st.DataObject) -> None:
    """Insert, delete or flip bytes of a valid dataset: scan exits 0, 1, 3 or 5 — never 70 or a traceback."""
    from click.testing import CliRunner

    from probe.cli import main

    kind = data.draw(st.sampled_from(sorted(_VALID)))
    raw = bytearray(_VALID[kind])
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(raw)))
        op = data.draw(st.sampled_from(["insert", "delete", "flip"]))
        if op == "insert":
            raw[pos:pos] = data.draw(st.binary(min_size=1, max_size=4) | st.sampled_from(
                [b'"', b",", b"\n", b"{", b"]", b"\\u", b"\\ud800", b"\xff", b"\x00", b"\r"]))
        elif op == "delete" and raw:
            del raw[pos:pos + data.draw(st.integers(1, 8))]
        elif raw:
            raw[min(pos, len(raw) - 1)] ^= 1 << data.draw(st.integers(0, 7))
    path = tmp_path / f"mutated-{data.draw(st.integers(0, 10**9))}.{kind}"
    path.write_bytes(bytes(raw))
    res = CliRunner().invoke(main, ["scan", str(path), "--index", str(scan_index), "--out",
                                    str(tmp_path / f"out-{path.stem}"), "--silent"])
    assert res.exit_code in (0, 1, 3, 5), (kind, bytes(raw), res.output)
    assert "Traceback" not in res.output
