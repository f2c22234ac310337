"""Untrusted data stays data (RELIABILITY §6.6 S1, S2, S6, S10, S11; §6.2 K7).

Other §6.6 rows are tested next to the code they exercise (see docs/guarantees.md):
S3 tests/test_kernels.py, S4 tests/test_report_render.py, S5 tests/reliability/test_corrupt_index.py,
S7 tests/test_report_render.py + tests/test_report_browser.py, S8/S9 tests/test_report_render.py.
"""

from __future__ import annotations

import ast
import json
import math
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from helpers import REPO, make_docs, run_probe, write_parquet
from probe.cli import main
from probe.config import BuildConfig, TextSpec
from probe.index import format as fmt
from probe.index.build import build_index

SPEC = TextSpec(ns=(3, 8))


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("security")
    shard = write_parquet(root / "a.parquet", make_docs(80, seed=41), row_group_size=40)
    idx = root / "idx"
    build_index([str(shard)], idx, SPEC, BuildConfig(workers=1))
    return idx


# --------------------------------------------------------------------------- S1 pickle in Parquet metadata
def _pickle_payload(sentinel: Path) -> bytes:
    """A protocol-0 pickle calling os.system('touch SENTINEL') — built by hand, never by pickling."""
    return f"cposix\nsystem\n(S'touch {sentinel}'\ntR.".encode()


def _evil_parquet(path: Path, sentinel: Path, column: str, texts: list[str]) -> Path:
    field = pa.field(column, pa.string(), metadata={
        b"ARROW:extension:name": b"arrow.py_extension_type",
        b"ARROW:extension:metadata": _pickle_payload(sentinel),
    })
    table = pa.Table.from_arrays([pa.array(texts, pa.string())], schema=pa.schema([field]))
    pq.write_table(table, path)
    return path


def test_pickle_extension_type_is_never_executed(tmp_path: Path, index: Path) -> None:
    sentinel = tmp_path / "pwned"
    # the payload works when unpickled (so the test can fail): check in a throwaway child
    check = ("import pickle, sys; pickle.loads(sys.stdin.buffer.read())")  # noqa: S301 - the point of the test
    subprocess.run([sys.executable, "-c", check], input=_pickle_payload(sentinel), check=True, timeout=60)
    assert sentinel.exists()
    sentinel.unlink()
    texts = make_docs(30, seed=43, min_words=20)
    shard = _evil_parquet(tmp_path / "evil.parquet", sentinel, "text", texts)
    dataset = _evil_parquet(tmp_path / "evil-dataset.parquet", sentinel, "text", texts[:10])
    res = run_probe("index", "build", str(shard), "--index", str(tmp_path / "idx"), "--n", "3,8", "--silent")
    assert res.returncode == 0, res.stderr
    res = run_probe("scan", str(dataset), "--index", str(tmp_path / "idx"), "--out", str(tmp_path / "out"),
                    "--silent")
    assert res.returncode == 0, res.stderr
    assert not sentinel.exists()
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["examples"] == 10 and summary["verdicts"]["seen"] == 10  # read as plain strings


def test_dependency_floor_excludes_cve_2023_47248() -> None:
    text = (REPO / "pyproject.toml").read_text()
    assert '"pyarrow>=14.0.1"' in text
    major, minor, patch = (int(x) for x in version("pyarrow").split(".")[:3])
    assert (major, minor, patch) >= (14, 0, 1)


# --------------------------------------------------------------------------- S2 static gate
FORBIDDEN_MODULES = {"pickle", "cPickle", "marshal", "shelve", "dill", "cloudpickle", "joblib", "yaml"}
FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__"}


def test_no_pickle_eval_exec_or_remote_code_in_probe() -> None:
    problems = []
    for path in sorted((REPO / "probe").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                problems += [f"{path}: import {a.name}" for a in node.names if a.name.split(".")[0] in FORBIDDEN_MODULES]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in FORBIDDEN_MODULES:
                problems.append(f"{path}: from {node.module} import")
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FORBIDDEN_CALLS:
                problems.append(f"{path}:{node.lineno}: {node.func.id}()")
            elif isinstance(node, ast.keyword) and node.arg == "trust_remote_code":
                problems.append(f"{path}:{node.value.lineno}: trust_remote_code")
    assert problems == []


def test_ruff_security_rules_are_enforced() -> None:
    config = (REPO / "pyproject.toml").read_text()
    for rule in ("S301", "S307", "S102", "S506", "S701"):
        assert f'"{rule}"' in config
    res = subprocess.run([str(Path(sys.executable).parent / "ruff"), "check", "--select",
                          "S301,S307,S102,S506,S701", str(REPO / "probe")], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr


# --------------------------------------------------------------------------- S6 archives
def test_archives_with_traversal_members_are_refused_unextracted(tmp_path: Path) -> None:
    import io
    import tarfile
    import zipfile

    inside = tmp_path / "work"
    inside.mkdir()
    member = b'{"text": "a member that would escape the corpus directory if it were extracted"}\n'
    with tarfile.open(inside / "evil.tar", "w") as tar:
        for name in ("../escaped-tar.jsonl", str(tmp_path / "abs-tar.jsonl")):
            info = tarfile.TarInfo(name)
            info.size = len(member)
            tar.addfile(info, io.BytesIO(member))
        link = tarfile.TarInfo("root-link")
        link.type = tarfile.SYMTYPE
        link.linkname = "/"
        tar.addfile(link)
    with zipfile.ZipFile(inside / "evil.zip", "w") as z:
        z.writestr("../escaped-zip.jsonl", member)
    (inside / "evil.tar.gz").write_bytes((inside / "evil.tar").read_bytes())
    for name in ("evil.tar", "evil.zip", "evil.tar.gz"):
        res = CliRunner().invoke(main, ["index", "build", str(inside / name), "--index", str(tmp_path / f"i-{name}"),
                                        "--silent"])
        assert res.exit_code == 3, res.output
        assert name in res.stderr
    # a directory walk ignores archives: nothing to index, nothing extracted
    res = CliRunner().invoke(main, ["index", "build", str(inside), "--index", str(tmp_path / "i-dir"), "--silent"])
    assert res.exit_code in (2, 3) and "Traceback" not in res.output, res.output
    assert not list(tmp_path.rglob("escaped*")) and not (tmp_path / "abs-tar.jsonl").exists()


# --------------------------------------------------------------------------- S10 strict JSON out
HOSTILE = ["lone \\ud800 surrogate", "\\u0000 nul and \\u001b[2J ansi", "NaN", "Infinity", "\\udfff\\ud800 pair"]


def _strict_json(path: Path):
    def no_constants(name: str):
        raise AssertionError(f"{path}: non-standard JSON constant {name}")

    text = path.read_bytes().decode("utf-8")  # strict: a lone surrogate cannot be encoded
    return json.loads(text, parse_constant=no_constants)


def test_reports_are_strict_json_with_hostile_strings(tmp_path: Path, index: Path) -> None:
    words = " ".join(make_docs(1, seed=41)[0].split()[:12])
    lines = []
    for i, h in enumerate(HOSTILE):
        lines.append(f'{{"id": "{h} {i}", "group": "{h}", "instruction": "{h} {words}", "output": "{h}"}}')
    lines.append('{"id": "empty", "group": "g", "instruction": "", "output": ""}')  # NaN-prone metrics
    dataset = tmp_path / "hostile.jsonl"
    dataset.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["check", str(dataset), "--index", str(index), "--out", str(out),
                                    "--group-by", "group", "--max-contaminated", "100%", "--format", "json",
                                    "--silent"])
    assert res.exit_code in (0, 1), res.output
    payload = json.loads(res.stdout, parse_constant=lambda c: pytest.fail(f"stdout has {c}"))
    assert payload["summary"]["examples"] == len(HOSTILE)
    assert payload["summary"]["skipped"] == 1  # the empty record: counted, never silently dropped
    summary = _strict_json(out / "summary.json")
    _strict_json(out / "gate.json")
    ids = pq.read_table(out / "examples.parquet", columns=["id"]).column("id").to_pylist()
    assert len(ids) == len(HOSTILE)
    assert any("\ufffd" in v for v in ids)
    for value in ids:
        value.encode("utf-8")  # every stored string is valid UTF-8 (surrogates replaced)
    for cov in summary["coverage"].values():
        assert cov["mean"] is None or math.isfinite(cov["mean"])


# --------------------------------------------------------------------------- S11 credentials
def test_credentials_in_uris_are_refused_and_never_echoed(tmp_path: Path) -> None:
    secret = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
    for uri in (f"s3://AKIAIOSFODNN7EXAMPLE:{secret}@bucket/shard.parquet",
                f"gs://user:{secret}@bucket/dir/*.jsonl"):
        res = run_probe("index", "build", uri, "--index", str(tmp_path / "idx"), "--format", "json",
                        env={"AWS_EC2_METADATA_DISABLED": "true"}, timeout=60)
        assert res.returncode == 2, res.stderr
        assert "credentials inside a URI" in res.stderr and "***@bucket" in res.stderr
        assert secret not in res.stderr + res.stdout
        written = [p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()]
        assert all(secret.encode() not in data for data in written)


# --------------------------------------------------------------------------- K7 readers never need a lock
def test_scan_and_check_run_while_a_writer_holds_the_lock(tmp_path: Path, index: Path) -> None:
    dataset = tmp_path / "d.jsonl"
    dataset.write_text(json.dumps({"text": make_docs(1, seed=41)[0]}) + "\n")
    with fmt.WriterLock(index):
        res = CliRunner().invoke(main, ["scan", str(dataset), "--index", str(index), "--out", str(tmp_path / "o"),
                                        "--silent"])
        assert res.exit_code == 0, res.output
        res = run_probe("check", str(dataset), "--index", str(index), "--out", str(tmp_path / "c"),
                        "--max-contaminated", "100%", "--silent")
        assert res.returncode == 0, res.stderr
