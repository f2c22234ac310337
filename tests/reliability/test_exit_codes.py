"""Every documented exit code from a real ``python -m probe`` process (RELIABILITY §6.9 E1).

One subprocess per code (0, 1, 2, 3, 4, 5; 130 in test_faults.py, 70 in test_crash.py), all
started at once. Each error is one human line on stderr, never a traceback, and with
``--format json`` stdout stays empty or valid JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import make_docs, popen_probe, write_parquet
from probe.config import BuildConfig, TextSpec
from probe.errors import ExitCode
from probe.index.build import build_index


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("exit")
    docs = make_docs(60, seed=71, min_words=25)
    shard = write_parquet(root / "corpus.parquet", docs)
    index = root / "idx"
    build_index([str(shard)], index, TextSpec(ns=(3, 8)), BuildConfig(workers=1))
    files = {"index": index, "root": root}
    files["quotes"] = root / "quotes.jsonl"
    files["quotes"].write_text("".join(json.dumps({"text": d}) + "\n" for d in docs[:5]))
    files["novel"] = root / "novel.jsonl"
    files["novel"].write_text(json.dumps({"text": "zebra quantum marmalade harbour " * 5}) + "\n")
    files["bad"] = root / "bad.jsonl"
    files["bad"].write_text('{"text": "fine line here"}\n{"text": "broken,}\n')
    files["short"] = root / "short.jsonl"
    files["short"].write_text('{"text": "too short"}\n{"text": ""}\n')
    return files


def cases(w: dict[str, Path]) -> dict[str, tuple[int, list[str]]]:
    out = str(w["root"] / "out")
    idx = str(w["index"])
    return {
        "ok": (ExitCode.OK, ["check", str(w["novel"]), "--index", idx, "--out", out + "0"]),
        "threshold": (ExitCode.THRESHOLD, ["check", str(w["quotes"]), "--index", idx, "--out", out + "1"]),
        "usage": (ExitCode.USAGE, ["check", str(w["quotes"]), "--index", idx, "--definition", "nope"]),
        "usage-click": (ExitCode.USAGE, ["scan", str(w["quotes"]), "--index", idx, "--seen", "lots"]),
        "input": (ExitCode.INPUT, ["scan", str(w["bad"]), "--index", idx, "--out", out + "3"]),
        "index": (ExitCode.INDEX, ["scan", str(w["novel"]), "--index", str(w["root"] / "missing"),
                                   "--out", out + "4"]),
        "nothing": (ExitCode.NOTHING_ASSESSABLE, ["check", str(w["short"]), "--index", idx, "--out", out + "5"]),
    }


def test_each_exit_code_with_one_line_on_stderr(world: dict[str, Path]) -> None:
    procs = {}
    for name, (code, args) in cases(world).items():
        procs[name] = (code, popen_probe(*args, "--format", "json", "--silent"))
    seen = set()
    for name, (code, proc) in procs.items():
        stdout, stderr = proc.communicate(timeout=180)
        assert proc.returncode == code, (name, stderr)
        seen.add(code)
        assert "Traceback" not in stderr, (name, stderr)
        if stdout.strip():
            json.loads(stdout)  # --format json: stdout is data only
        if code in (ExitCode.OK, ExitCode.THRESHOLD):
            continue
        lines = [line for line in stderr.splitlines() if line.strip()]
        if name == "usage-click":  # click's own usage errors: "Usage: ..." + "Error: ..."
            assert lines[-1].startswith("Error:"), stderr
            continue
        assert len(lines) == 1 and lines[0].startswith("probe: error: "), (name, stderr)
    assert seen == {0, 1, 2, 3, 4, 5}


def test_input_error_names_file_and_line(world: dict[str, Path]) -> None:
    proc = popen_probe("scan", str(world["bad"]), "--index", str(world["index"]), "--out",
                       str(world["root"] / "o"), "--silent")
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 3 and f"{world['bad']}:line 2" in err, err


@pytest.mark.parametrize("workers", [1, 2])
def test_bad_record_in_a_pool_worker_is_exit_3_not_a_dead_worker(world: dict[str, Path], tmp_path: Path,
                                                                 workers: int) -> None:
    """An InputError raised in a worker process crosses the process boundary intact (file:line, exit 3)."""
    corpus = tmp_path / "corpus"
    write_parquet(corpus / "good.parquet", make_docs(60, seed=72), row_group_size=20)
    (corpus / "bad.jsonl").write_text('{"text": "fine words here"}\n{"text": broken\n')
    proc = popen_probe("index", "build", str(corpus), "--index", str(tmp_path / "idx"), "--workers", str(workers),
                       "--row-groups-per-part", "1", "--n", "3", "--silent")
    _out, err = proc.communicate(timeout=180)
    assert proc.returncode == ExitCode.INPUT, err
    assert f"{corpus / 'bad.jsonl'}:line 2: invalid JSON" in err
    assert "worker process died" not in err and "Traceback" not in err
    assert "(3 committed and kept; fix or remove the shards named below" in err
    assert "re-run to resume" not in err  # a data error: the same run would fail the same way


def test_every_probe_error_survives_pickling() -> None:
    """Build workers send exceptions back pickled: each error class must round-trip with its message."""
    import pickle

    from probe import errors

    samples = {errors.InputError: errors.InputError("/data/x.jsonl", "invalid JSON", "line 7")}
    for cls in vars(errors).values():
        if isinstance(cls, type) and issubclass(cls, errors.ProbeError) and cls not in samples:
            samples[cls] = cls(f"{cls.__name__} message")
    for cls, exc in samples.items():
        back = pickle.loads(pickle.dumps(exc))  # noqa: S301 - our own exception objects
        assert type(back) is cls and str(back) == str(exc)
        assert errors.exit_code_for(back) == errors.exit_code_for(exc)
    back = pickle.loads(pickle.dumps(samples[errors.InputError]))  # noqa: S301
    assert (back.path, back.reason, back.location) == ("/data/x.jsonl", "invalid JSON", "line 7")
