"""CliRunner tests for every `probe index` command and option, with exit codes (STYLE 4, 15)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from helpers import REPO, Corpus, index_tables, make_docs, run_probe, write_jsonl
from probe.cli import main
from probe.config import BuildConfig, TextSpec
from probe.index.build import build_index
from probe.index.reader import open_index

INDEX_COMMANDS = ["build", "add", "info", "verify", "compact", "gc", "lookup"]


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def ok_json(*args: str):
    res = invoke(*args)
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)  # stdout holds exactly one JSON document, nothing else


@pytest.fixture(scope="module")
def index(corpus: Corpus, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two snapshots (two shards added in two builds), surface + pattern views."""
    idx = tmp_path_factory.mktemp("cli") / "idx"
    res = CliRunner().invoke(main, ["index", "build", corpus.paths[2], "--index", str(idx), "--n", "3,8",
                                    "--views", "surface,pattern", "--workers", "1", "--silent"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(main, ["index", "build", corpus.paths[3], "--index", str(idx), "--n", "3,8",
                                    "--views", "surface,pattern", "--workers", "1", "--silent"])
    assert res.exit_code == 0, res.output
    return idx


# --------------------------------------------------------------------------- help and version
@pytest.mark.parametrize("command", [[], ["index"], *[["index", c] for c in INDEX_COMMANDS]])
def test_help_exits_0(command: list[str]) -> None:
    for flag in ("--help", "-h"):
        res = invoke(*command, flag)
        assert res.exit_code == 0 and "Usage:" in res.stdout


def test_every_index_command_is_tested() -> None:
    assert sorted(main.commands["index"].commands) == sorted(INDEX_COMMANDS)


def test_version() -> None:
    res = invoke("--version")
    assert res.exit_code == 0 and "0.1.0" in res.stdout


def test_python_dash_m_probe() -> None:
    res = run_probe("--help", cwd=REPO)
    assert res.returncode == 0 and "index" in res.stdout and res.stderr == ""
    res = run_probe("index", "nope")
    assert res.returncode == 2 and "No such command" in res.stderr


def test_subprocess_build_json_stdout_is_clean(corpus: Corpus, tmp_path: Path) -> None:
    """Real process, no TTY: stdout is exactly the JSON summary (progress/warnings only on stderr)."""
    res = run_probe("index", "build", corpus.paths[2], "--index", str(tmp_path / "idx"), "--workers", "1",
                    "--format", "json")
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["docs"] == 50 and summary["parts_committed"] == 1


# --------------------------------------------------------------------------- documentation
def _documented_text() -> str:
    """README plus every docs/*.md it links (the CLI reference may live in a linked page)."""
    readme = (REPO / "README.md").read_text()
    linked = set(re.findall(r"(docs/[\w.-]+\.md)", readme))
    return readme + "".join((REPO / p).read_text() for p in sorted(linked) if (REPO / p).exists())


def test_every_index_command_and_option_is_documented() -> None:
    text = _documented_text()
    missing = []
    for name, cmd in main.commands["index"].commands.items():
        if f"probe index {name}" not in text:
            missing.append(f"probe index {name}")
        for param in cmd.params:
            for opt in param.opts:
                if opt.startswith("--") and opt not in ("--help",) and opt not in text:
                    missing.append(f"probe index {name} {opt}")
    assert missing == [], f"undocumented in README.md (or the docs it links): {missing}"


# --------------------------------------------------------------------------- build options
def test_build_with_every_option(tmp_path: Path) -> None:
    shard = tmp_path / "shard.parquet"
    texts = make_docs(40, seed=31)
    pq.write_table(pa.table({"body": texts, "doc_id": [f"d{i}" for i in range(40)],
                             "src": ["web" if i % 2 else "books" for i in range(40)]}), shard, row_group_size=10)
    idx = tmp_path / "idx"
    summary = ok_json("index", "build", str(shard), "--index", str(idx), "--tokenizer", "chars", "--normalizer",
                      "nfkc", "--n", "5", "--views", "surface", "--seed", "3", "--sample-mod", "2", "--doc-sample-k",
                      "2", "--bucket-bits", "4", "--workers", "1", "--memory", "256M", "--text-column", "body",
                      "--id-column", "doc_id", "--source-column", "src", "--row-groups-per-part", "1",
                      "--skip-bad-records", "--silent", "--format", "json")
    assert summary["parts_committed"] == 4 and summary["docs"] == 40 and summary["skipped_records"] == 0
    assert set(summary) >= {"index", "snapshot", "shards", "parts_already_indexed", "duplicate_shards", "tokens",
                            "bytes", "seconds", "tokens_per_second", "phases"}
    spec = open_index(idx).spec
    assert spec == TextSpec(tokenizer="chars", normalizer="nfkc", ns=(5,), seed=3, sample_mod=2, doc_sample_k=2,
                            bucket_bits=4)
    reader = open_index(idx)
    docs = pq.read_table(idx / reader.manifests[0]["docs_file"]["path"]).to_pydict()
    assert docs["id"][0].startswith("d") and set(docs["source"]) <= {"web", "books"}
    assert len(reader.manifests[0]["files"][0]["row_groups"]) >= 1
    assert all(0 <= rg[0] <= rg[1] < 16 for m in reader.manifests for f in m["files"] for rg in f["row_groups"])


def test_build_aliases_and_jsonl_field_path(tmp_path: Path) -> None:
    path = tmp_path / "nested.jsonl"
    path.write_text("".join(json.dumps({"meta": {"body": t}, "key": str(i), "origin": "x"}) + "\n"
                            for i, t in enumerate(make_docs(10, seed=5))))
    idx = tmp_path / "idx"
    summary = ok_json("index", "build", str(path), "--index", str(idx), "--text-field", "meta.body", "--id-field",
                      "key", "--source-field", "origin", "--workers", "1", "--silent", "--format", "json")
    assert summary["docs"] == 10
    docs = pq.read_table(idx / open_index(idx).manifests[0]["docs_file"]["path"]).to_pydict()
    assert docs["id"] == [str(i) for i in range(10)] and set(docs["source"]) == {"x"}


def test_build_text_output_and_workers_default(corpus: Corpus, tmp_path: Path) -> None:
    res = invoke("index", "build", corpus.paths[3], "--index", str(tmp_path / "idx"), "--silent")
    assert res.exit_code == 0
    assert re.match(r"index .*: snapshot 1; committed 1 part\(s\), 0 already indexed; newly indexed 40 docs, "
                    r"[\d,]+ tokens in [\d.]+s; index total 40 docs", res.stdout)
    # a second run: nothing to do, same snapshot
    res = invoke("index", "build", corpus.paths[3], "--index", str(tmp_path / "idx"), "--silent")
    assert res.exit_code == 0 and "committed 0 part(s), 1 already indexed" in res.stdout


def test_resumed_build_reports_new_and_total_docs(corpus: Corpus, tmp_path: Path) -> None:
    """A build adding a shard says what it added and what the index now holds (not one number for both)."""
    idx = str(tmp_path / "idx")
    assert invoke("index", "build", corpus.paths[3], "--index", idx, "--silent").exit_code == 0
    res = invoke("index", "build", corpus.paths[2], corpus.paths[3], "--index", idx, "--silent")
    assert res.exit_code == 0, res.output
    assert "1 already indexed; newly indexed 50 docs" in res.stdout and "index total 90 docs" in res.stdout
    summary = ok_json("index", "build", corpus.paths[2], "--index", idx, "--silent", "--format", "json")
    assert (summary["docs"], summary["index_docs"]) == (0, 90) and summary["index_tokens"] > 0


def test_build_of_empty_shards_warns_and_exits_5(corpus: Corpus, tmp_path: Path) -> None:
    """An empty shard is named on stderr; an index that holds no document at all is not a success."""
    blank = tmp_path / "blank.jsonl"
    blank.write_text("\n\n")
    idx = str(tmp_path / "idx")
    res = invoke("index", "build", str(blank), "--index", idx, "--workers", "1", "--silent")
    assert res.exit_code == 5, res.output
    assert f"warning: {blank} yielded no documents" in res.stderr and "holds no documents" in res.stderr
    res = invoke("index", "build", str(blank), corpus.paths[3], "--index", idx, "--workers", "1", "--silent")
    assert res.exit_code == 0, res.output  # a real shard added: the empty one is only a warning now
    assert "index total 40 docs" in res.stdout


def test_build_refuses_other_id_or_source_columns_than_recorded(tmp_path: Path) -> None:
    """The columns an index read ids/sources from are recorded; a build asking for others is refused."""
    rows = [{"text": t, "key": str(i), "other": f"o{i}", "origin": "x"} for i, t in enumerate(make_docs(6, seed=3))]
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text("".join(json.dumps(r) + "\n" for r in rows[:3]))
    b.write_text("".join(json.dumps(r) + "\n" for r in rows[3:]))
    idx = tmp_path / "idx"
    base = ["--index", str(idx), "--workers", "1", "--silent"]
    assert invoke("index", "build", str(a), *base, "--id-field", "key", "--source-field", "origin").exit_code == 0
    res = invoke("index", "build", str(b), *base, "--id-field", "other")
    assert res.exit_code == 2, res.output
    assert "id column: index 'key' != requested 'other'" in res.stderr
    assert len(open_index(idx).manifests) == 1  # nothing was built
    # given none, the recorded columns are used: the new shard's documents carry ids and sources too
    assert invoke("index", "build", str(b), *base).exit_code == 0
    reader = open_index(idx)
    docs = [pq.read_table(idx / m["docs_file"]["path"]).to_pydict() for m in reader.manifests]
    assert sorted(i for d in docs for i in d["id"]) == [str(i) for i in range(6)]
    assert {s for d in docs for s in d["source"]} == {"x"}


@pytest.mark.parametrize("command", [["build", "SHARD", "--index"], ["info"], ["verify"], ["compact"], ["gc"],
                                     ["lookup"]])
def test_uri_index_directory_is_refused(command: list[str], corpus: Corpus, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """`--index s3://…` used to build a local folder ./s3:/…; every index command refuses a URI (exit 2)."""
    monkeypatch.chdir(tmp_path)
    args = [corpus.paths[3] if a == "SHARD" else a for a in command] + ["s3://bucket/idx"]
    if command == ["lookup"]:
        args.append("some text")
    res = invoke("index", *args, "--silent") if command[0] in ("build", "compact") else invoke("index", *args)
    assert res.exit_code == 2, res.output
    assert "is a s3: URI; an index must be a local directory" in res.stderr
    assert list(tmp_path.iterdir()) == []  # no ./s3:/bucket/idx


def test_build_reports_duplicates_and_skips_on_stderr(tmp_path: Path) -> None:
    a = write_jsonl(tmp_path / "a.jsonl", make_docs(5, seed=1))
    b = tmp_path / "b.jsonl"
    shutil.copy(a, b)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine words here"}\n{"text": 3}\n')
    res = invoke("index", "build", str(a), str(b), str(bad), "--index", str(tmp_path / "idx"), "--workers", "1",
                 "--silent", "--skip-bad-records")
    assert res.exit_code == 0
    assert f"duplicate shard skipped: {b} has the same content as {a}" in res.stderr
    assert "skipped 1 bad record(s)" in res.stderr
    assert "duplicate shard skipped" not in res.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--n", "a,b"], "expected comma-separated integers"),
    (["--n", ","], "at least one value"),
    (["--n", "0"], "n values must be integers in 1..256"),
    (["--workers", "0"], "--workers must be >= 1"),
    (["--memory", "lots"], "cannot parse size 'lots'"),
    (["--bucket-bits", "20"], "bucket_bits must be in 0..16"),
    (["--views", "surface,meaning"], "unknown view"),
    (["--views", "pattern", "--tokenizer", "chars"], "pattern view needs the words tokenizer"),
    (["--normalizer", "nfd"], "Invalid value for '--normalizer'"),
    (["--tokenizer", "bpe"], "unknown tokenizer 'bpe'"),
    (["--tokenizer", "hf:/nonexistent/tokenizer.json"], "cannot read tokenizer file"),
    (["--row-groups-per-part", "0"], "--row-groups-per-part must be >= 1"),
    (["--sample-mod", "0"], "--sample-mod must be >= 1"),
    (["--doc-sample-k", "100"], "doc_sample_k must be in 0..64"),
    (["--seed", "-1"], "seed must be in 0..2^64-1"),
    (["--format", "xml"], "Invalid value for '--format'"),
])
def test_build_usage_errors_exit_2(args: list[str], message: str, corpus: Corpus, tmp_path: Path) -> None:
    res = invoke("index", "build", corpus.paths[3], "--index", str(tmp_path / "idx"), "--silent", *args)
    assert res.exit_code == 2, res.output
    assert message in res.stderr
    assert not (tmp_path / "idx" / "snapshots").exists() or not any((tmp_path / "idx" / "snapshots").iterdir())


def test_build_missing_arguments_exit_2(tmp_path: Path) -> None:
    assert invoke("index", "build", "--index", str(tmp_path / "idx")).exit_code == 2  # no shards
    assert invoke("index", "build", str(tmp_path)).exit_code == 2  # no --index


# --------------------------------------------------------------------------- info
def test_info_json_and_text(index: Path) -> None:
    info = ok_json("index", "info", str(index), "--format", "json")
    assert info["snapshot"] == 2 and info["format_version"] == 3
    assert info["totals"]["docs"] == 90 and info["totals"]["shards"] == 2
    assert {(r["view"], r["n"]) for r in info["ngrams"]} == {("surface", 3), ("surface", 8), ("pattern", 3),
                                                            ("pattern", 8)}
    top = next(r for r in info["ngrams"] if (r["view"], r["n"]) == ("surface", 3))["top"]
    assert len(top) == 10 and top[0]["count"] >= top[-1]["count"]
    assert top[0]["text"] and isinstance(top[0]["hash"], str)  # uint64 as a string: exact in JSON
    assert sum(r["ngrams"] for r in info["ngrams"] if r["view"] == "surface") > 0
    res = invoke("index", "info", str(index))
    assert res.exit_code == 0 and "snapshot 2" in res.stdout and "most frequent" in res.stdout


def test_info_snapshot_and_top_options(index: Path) -> None:
    first = ok_json("index", "info", str(index), "--snapshot", "1", "--top", "3", "--format", "json")
    assert first["snapshot"] == 1 and first["totals"]["docs"] == 50
    assert all(len(r["top"]) == 3 for r in first["ngrams"])
    none = ok_json("index", "info", str(index), "--top", "0", "--format", "json")
    assert all(r["top"] == [] for r in none["ngrams"])
    res = invoke("index", "info", str(index), "--snapshot", "99")
    assert res.exit_code == 4 and "snapshot 99 does not exist" in res.stderr


# --------------------------------------------------------------------------- verify
def test_verify_text_json_and_deep(index: Path) -> None:
    res = invoke("index", "verify", str(index))
    assert res.exit_code == 0 and ": OK (" in res.stdout
    report = ok_json("index", "verify", str(index), "--deep", "--format", "json")
    assert report["ok"] and report["deep"] and report["problems"] == [] and report["snapshot"] == 2
    assert report["files_checked"] == 2 * (4 + 4 + 1)  # two segments: 4 n-gram files, their 4 doc-sample files, docs.parquet


# --------------------------------------------------------------------------- compact and gc
def test_compact_and_gc_options(index: Path, tmp_path: Path) -> None:
    idx = tmp_path / "idx"
    shutil.copytree(index, idx)
    before = index_tables(idx)
    res = invoke("index", "compact", str(idx), "--silent")
    assert res.exit_code == 0 and "compacted 2 segment(s) into 1; snapshot 3" in res.stdout
    assert index_tables(idx).tables == before.tables
    dry = ok_json("index", "gc", str(idx), "--older-than", "0", "--dry-run", "--format", "json")
    assert dry["dry_run"] and len([r for r in dry["removed"] if r.startswith("segments/")]) == 2
    res = invoke("index", "gc", str(idx), "--older-than", "30m")
    assert res.exit_code == 0 and "removed 0 unreferenced item(s)" in res.stdout
    # ... and says what it kept: the two compacted-away segments, too young to go
    young = ok_json("index", "gc", str(idx), "--older-than", "30m", "--dry-run", "--format", "json")
    assert len(young["kept_young"]) == 2 and young["kept_young_bytes"] > 0
    assert (f"kept 2 unreferenced segment(s) younger than 30m, {young['kept_young_bytes']:,} bytes"
            in res.stderr)
    res = invoke("index", "gc", str(idx), "--older-than", "0")
    assert res.exit_code == 0 and "removed" in res.stdout
    assert ok_json("index", "verify", str(idx), "--format", "json")["orphans"] == []
    assert ok_json("index", "compact", str(idx), "--format", "json")["segments_after"] == 1
    for bad in ("soon", "-1h", "1w"):
        res = invoke("index", "gc", str(idx), "--older-than", bad)
        assert res.exit_code == 2 and "cannot parse duration" in res.stderr


# --------------------------------------------------------------------------- lookup
def test_lookup_json_text_n_and_view(index: Path, corpus: Corpus) -> None:
    text = corpus.shards[Path(corpus.paths[2])][0]
    rows = ok_json("index", "lookup", str(index), text, "--format", "json")
    assert rows["n"] == 3 and rows["view"] == "surface" and rows["snapshot"] == 2
    assert rows["ngrams"] and all(r["count"] >= 1 and r["docs"] >= 1 for r in rows["ngrams"])
    assert rows["found"] == len(rows["ngrams"]) == max(0, rows["tokens"] - 2)
    eight = ok_json("index", "lookup", str(index), text, "--n", "8", "--view", "pattern", "--format", "json")
    assert eight["n"] == 8 and eight["view"] == "pattern" and eight["found"] == len(eight["ngrams"])
    res = invoke("index", "lookup", str(index), "zebra quokka axolotl narwhal", "--n", "3")
    assert res.exit_code == 0 and "0/2 surface 3-grams found" in res.stdout


def test_lookup_errors(index: Path, tmp_path: Path) -> None:
    res = invoke("index", "lookup", str(index), "a b c d", "--n", "5")
    assert res.exit_code == 4 and "no n=5" in res.stderr
    surface_only = tmp_path / "s"
    build_index([str(write_jsonl(tmp_path / "x.jsonl", ["one two three four"]))], surface_only,
                TextSpec(ns=(2,)), BuildConfig(workers=1))
    res = invoke("index", "lookup", str(surface_only), "one two", "--view", "pattern")
    assert res.exit_code == 4 and "no 'pattern' view" in res.stderr
    res = invoke("index", "lookup", str(surface_only), "one two", "--n", "x")
    assert res.exit_code == 2


def test_lookup_hostile_text_is_escaped(index: Path) -> None:
    res = invoke("index", "lookup", str(index), "evil \x1b[2J text\r::error::x here now", "--n", "3")
    assert res.exit_code == 0
    assert "\x1b" not in res.stdout and "\r" not in res.stdout
    assert not any(line.startswith("::") for line in res.stdout.splitlines())


def test_building_into_an_index_of_older_tokenizer_rules_keeps_its_rules(tmp_path: Path) -> None:
    """New shards go into an existing rules-1 index with its own rules (not refused for a newer default)."""
    from probe.config import BuildConfig, TextSpec
    from probe.index.build import build_index
    from probe.index.reader import open_index

    for name in ("a", "b"):
        (tmp_path / f"{name}.jsonl").write_text(json.dumps({"text": f"shard {name} says the quick brown fox"}) + "\n")
    idx = tmp_path / "idx"
    build_index([str(tmp_path / "a.jsonl")], idx, TextSpec(tokenizer_rules=1, ns=(3,)), BuildConfig(workers=1))
    result = CliRunner().invoke(main, ["index", "build", str(tmp_path / "b.jsonl"), "--index", str(idx), "--n", "3",
                                       "--workers", "1", "--silent"])
    assert result.exit_code == 0, result.output
    assert open_index(idx).spec.tokenizer_rules == 1 and len(open_index(idx).manifests) == 2
    asked = CliRunner().invoke(main, ["index", "build", str(tmp_path / "b.jsonl"), "--index", str(idx), "--n", "3",
                                      "--tokenizer-rules", "3", "--silent"])
    assert asked.exit_code == 2 and "tokenizer_rules" in asked.output  # an explicit other rule set: refused
