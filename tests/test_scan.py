"""The scan as a library: a tiny index built here, small JSONL datasets, the output contract.

The corpus plants known passages in known documents, so every expectation below
(which examples are flagged, which document the provenance names, where in the
original field the longest match sits) follows from the fixture, not from a run.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from probe.config import BuildConfig, TextSpec
from probe.definitions import DEFINITIONS
from probe.errors import IndexMissingError, NothingAssessableError
from probe.index.build import build_index
from probe.measures.ngram import char_map as _char_map
from probe.scan import SCAN_FIELDS, ScanConfig, scan_dataset
from probe.scoring import Thresholds
from probe.sources.datasets import DatasetOptions
from probe.text.normalize import normalize_nfkc_casefold

REPO = Path(__file__).resolve().parents[1]

A = "Zebras migrate across the Serengeti plains every autumn while patient lions wait near the river crossing"
A2 = "The herd returns in spring when the long rains turn the dry grass green again across the wide valley"
B = "A young baker in the valley sold warm bread to every traveller who crossed the old stone bridge at dawn"
U = ("Die Straße führt über den Fluß nach München, wo naïve Künstler im Café 東京 und Kyōto besuchen "
     "und lange Gespräche führen")
COMMON = "This boilerplate sentence appears in a great many documents of the corpus without any exception at all"
FILLER = ("river stone lamp garden paper window morning market village school history music letter "
          "station bridge island summer winter evening forest harbor kitchen").split()
COMMON_DOCS = range(3, 15)  # 12 documents: more than max_docs (10) and than doc_sample_k (4)

U_INSTRUCTION = "Übersetze (Straße, café, naïve): «" + U + "» bitte."
EXAMPLES: list[dict[str, Any]] = [
    {"id": "quote", "instruction": f'Please repeat after me: "{A}" and nothing else', "output": "Sure thing."},
    {"id": "joint", "instruction": A, "output": A2},
    {"id": "apart", "instruction": A, "output": B},
    {"id": "common", "instruction": COMMON, "output": COMMON},
    {"id": "unicode", "instruction": U_INSTRUCTION, "output": "Gern geschehen."},
    {"id": "nfd", "instruction": unicodedata.normalize("NFD", U_INSTRUCTION), "output": "Gern."},
    {"id": "short", "instruction": "Hi there", "output": "Hello"},
    {"id": "novel", "instruction": "Describe a purple submarine that sings opera to lonely whales at midnight",
     "input": "", "output": "It hums softly."},
]
ROW = {ex["id"]: i for i, ex in enumerate(EXAMPLES)}


def corpus_texts() -> list[str]:
    docs = [
        f"Field notes. {A}. Later that season. {A2}. End of notes.",
        f"Bakery story: {B}.",
        f"Einleitung. {U}. Ende.",
    ]
    docs += [f"Notice {i}: {COMMON}." for i in COMMON_DOCS]
    return docs + [" ".join(FILLER[(i * 7 + j * 3) % len(FILLER)] for j in range(5 + 2 * i)) for i in range(10)]


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Corpus shard, three indexes of it (words+pattern, words, chars n=50) and the dataset."""
    root = tmp_path_factory.mktemp("scan")
    texts = corpus_texts()
    shard = root / "corpus.parquet"
    pq.write_table(pa.table({"text": texts, "id": [f"d{i}" for i in range(len(texts))],
                             "source": ["notes", "bakery", "german"] + ["web"] * (len(texts) - 3)}), shard)
    config = BuildConfig(workers=1, id_field="id", source_field="source")
    specs = {"wp": TextSpec(views=("surface", "pattern")), "w": TextSpec(), "c": TextSpec(tokenizer="chars", ns=(50,))}
    out = {"root": root, "shard": shard, "dataset": write_jsonl(root / "data.jsonl", EXAMPLES)}
    for name, spec in specs.items():
        build_index([str(shard)], root / name, spec, config)
        out[name] = root / name
    return out


def scan(world: dict[str, Path], index: str = "wp", out: str | None = None, data: Path | None = None,
         **config: Any) -> tuple[dict[str, Any], list[dict[str, Any]], pa.Table]:
    out_dir = world["root"] / (out or f"out-{index}-{len(list(world['root'].iterdir()))}")
    result = scan_dataset(data or world["dataset"], world[index], out_dir, ScanConfig(**config))
    table = pq.read_table(out_dir / "examples.parquet")
    assert json.loads((out_dir / "summary.json").read_text()) == result.summary.to_dict()
    return result.summary.to_dict(), table.to_pylist(), table


@pytest.fixture(scope="module")
def default_scan(world: dict[str, Path]) -> tuple[dict[str, Any], list[dict[str, Any]], pa.Table]:
    return scan(world, "wp", out="default")


# --------------------------------------------------------------------------- flags and spans
def test_a_verbatim_quote_is_contaminated_under_the_main_definitions(default_scan) -> None:
    summary, rows, _ = default_scan
    row = rows[ROW["quote"]]
    assert row["id"] == "quote" and row["row"] == ROW["quote"]
    for d in ("default", "gpt3", "lmeval"):
        assert row[f"contaminated_{d}"] is True, d
    field = EXAMPLES[ROW["quote"]]["instruction"]
    a, b = row["instruction_longest_match_start"], row["instruction_longest_match_end"]
    assert row["instruction_longest_match_text"] == field[a:b] == A
    assert row["instruction_longest_match_tokens"] == len(A.split())
    assert row["whole_longest_match_text"] == A and row["whole_longest_match_start"] == field.index(A)
    assert row["response_longest_match_text"] is None and row["response_longest_match_tokens"] == 0
    novel = rows[ROW["novel"]]
    assert novel["verdict"] == "novel" and not any(novel[f"contaminated_{d}"] for d in ("default", "gpt3", "lmeval"))
    assert summary["contaminated"]["default"] == sum(bool(r["contaminated_default"]) for r in rows)


def test_provenance_names_the_shard_row_and_a_snippet_of_the_passage(world, default_scan) -> None:
    _, rows, _ = default_scan
    row = rows[ROW["quote"]]
    assert Path(row["match_uri"]).resolve() == world["shard"].resolve()
    assert (row["match_row"], row["match_doc_id"], row["match_source"]) == (0, "d0", "notes")
    assert f"[[{A}]]" in row["match_snippet"]
    uni = rows[ROW["unicode"]]
    assert (uni["match_row"], uni["match_doc_id"], uni["match_source"]) == (2, "d2", "german")
    # the German document normalizes to a different length, so the snippet shows the normalized text
    assert f"[[{normalize_nfkc_casefold(U)}]]" in uni["match_snippet"]
    assert rows[ROW["novel"]]["match_uri"] is None and rows[ROW["short"]]["match_row"] is None
    assert all(r["match_verified"] is None for r in rows)  # only with --verify


def test_verify_confirms_the_matches(world) -> None:
    _, rows, _ = scan(world, verify=True)
    flagged = [r for r in rows if r["contaminated_default"] or r["verdict"] == "seen"]
    assert {r["id"] for r in flagged} >= {"quote", "joint", "apart", "unicode", "nfd", "common"}
    for r in flagged:
        assert r["match_uri"] is not None and r["match_verified"] is True, r["id"]
    assert all(r["match_verified"] is None for r in rows if r not in flagged)


def test_verify_reports_a_collision_as_false(world, monkeypatch: pytest.MonkeyPatch) -> None:
    from probe.index import provenance

    real = provenance.match_document

    def colliding(*args: Any, **kwargs: Any) -> Any:
        found = real(*args, **kwargs)
        if found.match_tokens is not None:  # the corpus document holds other tokens than the query's span
            found = replace(found, match_tokens=["collision", *found.match_tokens[1:]])
        return found

    monkeypatch.setattr(provenance, "match_document", colliding)
    _, rows, _ = scan(world, verify=True)
    assert rows[ROW["quote"]]["match_uri"] is not None and rows[ROW["quote"]]["match_verified"] is False


def test_provenance_limit(world) -> None:
    _, rows, _ = scan(world, provenance_limit=1)
    assert [r["id"] for r in rows if r["match_uri"] is not None] == ["quote"]


@pytest.mark.parametrize("example", ["unicode", "nfd"])
def test_non_ascii_offsets_point_into_the_original_text(default_scan, example: str) -> None:
    _, rows, _ = default_scan
    row = rows[ROW[example]]
    field = EXAMPLES[ROW[example]]["instruction"]
    passage = unicodedata.normalize("NFD", U) if example == "nfd" else U
    assert passage in field and len(normalize_nfkc_casefold(field)) != len(field)
    a, b = row["instruction_longest_match_start"], row["instruction_longest_match_end"]
    assert (a, b) == (field.index(passage), field.index(passage) + len(passage))
    assert row["instruction_longest_match_text"] == passage
    assert row["whole_longest_match_text"] == passage  # whole = instruction + "\n" + response
    assert row["contaminated_default"] is True


def test_too_short_is_unassessable_never_clean(default_scan) -> None:
    summary, rows, _ = default_scan
    row = rows[ROW["short"]]
    assert row["verdict"] == "unassessable" and row["assessable"] is False
    assert row["whole_assessable"] is False and row["whole_tokens"] == 3
    assert row["llama2_class"] == "unassessable"
    assert not any(row[f"contaminated_{d}"] for d in DEFINITIONS if row[f"contaminated_{d}"] is not None)
    assert summary["unassessable"] == summary["verdicts"]["unassessable"] == 1
    assert summary["assessable"] == len(EXAMPLES) - 1
    assert all(r["llama2_class"] != "unassessable" for r in rows if r["id"] != "short")


def test_frequent_ngrams_match_but_are_not_rare(default_scan) -> None:
    _, rows, _ = default_scan
    row = rows[ROW["common"]]
    assert row["verdict"] == "seen" and row["coverage"] == 1.0
    assert row["whole_max_docs"] == len(COMMON_DOCS)
    assert (row["contaminated_lmeval"], row["contaminated_gpt3"], row["contaminated_default"]) == (True, False, False)
    assert row["whole_rare_token_coverage_8"] == 0.0 and row["whole_longest_rare_match_tokens"] == 0


def test_joint_coverage(default_scan) -> None:
    _, rows, _ = default_scan
    joint = {r["id"]: (r["joint_same_doc"], r["joint_exact"]) for r in rows}
    assert joint["joint"] == (True, True)  # A and A2 are in the same document
    assert joint["apart"] == (False, True)  # A and B are not
    assert joint["quote"] == (False, True)  # the response matches nothing
    assert joint["common"] == (True, False)  # 12 documents > doc_sample_k: decided from samples, an estimate


def test_absent_fields_are_null_not_zero(default_scan) -> None:
    _, rows, _ = default_scan
    for r in rows:
        assert r["input_tokens"] is None and r["input_token_coverage_8"] is None and r["input_assessable"] is None
        assert r["instruction_tokens"] > 0 and r["whole_tokens"] >= r["instruction_tokens"]
    assert rows[ROW["quote"]]["group"] is None


# --------------------------------------------------------------------------- views and definitions
def test_pattern_view_unavailable_is_not_zero(world, default_scan) -> None:
    summary, rows, table = scan(world, "w")
    assert summary["pattern_available"] is False
    assert not [c for c in table.column_names if "pattern" in c]
    assert not [k for k in summary["coverage"] if k.endswith(".pattern")]
    with_view, _, wtable = default_scan
    assert with_view["pattern_available"] is True
    assert {f"{f}.pattern" for f in SCAN_FIELDS} <= set(with_view["coverage"])
    # (the quote example is inside "..." quotes, a <q> slot in the pattern view; the plain one matches)
    assert wtable.column("instruction_pattern_token_coverage_8")[ROW["joint"]].as_py() == 1.0


def test_gpt4_needs_a_chars_index(world, default_scan) -> None:
    summary, rows, _ = default_scan
    assert "gpt4" not in summary["contaminated"]
    assert "chars" in summary["unavailable_definitions"]["gpt4"]
    assert all(r["contaminated_gpt4"] is None for r in rows)
    summary, rows, _ = scan(world, "c")
    assert "gpt4" in summary["contaminated"] and "gpt4" not in summary["unavailable_definitions"]
    assert set(summary["unavailable_definitions"]) == {"gpt2", "gpt3", "palm", "llama2", "llama3", "lmeval"}
    flags = {r["id"]: r["contaminated_gpt4"] for r in rows}
    assert flags["quote"] and flags["joint"] and flags["unicode"] and not flags["novel"]
    assert flags["short"] is None  # shorter than 50 characters: unassessable (null), never "clean"
    # GPT-4 samples three windows, but coverage uses every 50-gram
    joint = rows[ROW["joint"]]
    assert joint["instruction_token_coverage_50"] == 1.0 and joint["verdict"] == "seen"
    assert summary["contaminated"]["gpt4"] == sum(bool(f) for f in flags.values())


def test_requested_definitions_only(world) -> None:
    summary, rows, table = scan(world, definitions=("default", "gpt3"))
    assert set(summary["contaminated"]) == {"default", "gpt3"}
    assert summary["config"]["definitions"] == ["default", "gpt3"]
    assert sorted(c for c in table.column_names if c.startswith("contaminated_")) == [
        "contaminated_default", "contaminated_gpt3"]


def test_target_field(world) -> None:
    summary, rows, _ = scan(world, target_field="response")
    assert summary["config"]["target_field"] == "response"
    by_id = {r["id"]: r for r in rows}
    assert by_id["quote"]["verdict"] == "unassessable"  # "Sure thing." has 2 tokens
    assert by_id["joint"]["verdict"] == "seen" and by_id["joint"]["contaminated_default"]


# --------------------------------------------------------------------------- determinism and contract
def _summary_sans_time(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if k not in ("created", "seconds")}


def test_scanning_twice_gives_identical_outputs(world) -> None:
    s1, _, _ = scan(world, out="twice-1")
    s2, _, _ = scan(world, out="twice-2")
    root = world["root"]
    assert (root / "twice-1" / "examples.parquet").read_bytes() == (root / "twice-2" / "examples.parquet").read_bytes()
    assert _summary_sans_time(s1) == _summary_sans_time(s2)
    assert not [p.name for p in (root / "twice-1").iterdir() if p.name.startswith(".")]  # no temp files left


def test_batch_boundaries_do_not_change_results(world, default_scan) -> None:
    summary, _, table = scan(world, dataset=DatasetOptions(batch_size=3))
    ref_summary, _, ref_table = default_scan
    assert table.equals(ref_table)
    assert _summary_sans_time(summary) == _summary_sans_time(ref_summary)


_TYPES = {"string": pa.string(), "int64": pa.int64(), "bool": pa.bool_(), "double": pa.float64(),
          "uint64": pa.uint64(), "list<string>": pa.list_(pa.string())}


def documented_columns(ns: tuple[int, ...], pattern: bool) -> dict[str, pa.DataType]:
    """Column name -> type from the examples.parquet table in docs/scan-output.md, expanded."""
    doc = (REPO / "docs" / "scan-output.md").read_text(encoding="utf-8")
    section = doc.split("## `examples.parquet`", 1)[1]
    out: dict[str, pa.DataType] = {}
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        names_cell, type_cell = [c.strip() for c in line.strip("|").split("|")[:2]]
        names = re.findall(r"`([^`]+)`", names_cell)
        types = [t.strip() for t in type_cell.split(",")]
        types = types if len(types) == len(names) else types * len(names)
        for name, typ in zip(names, types, strict=True):
            if "pattern" in name and not pattern:
                continue
            for expanded in _expand(name, ns):
                out[expanded] = _TYPES[typ]
    return out


def _expand(name: str, ns: tuple[int, ...]) -> list[str]:
    names = [name]
    if "<definition>" in name:
        names = [name.replace("<definition>", d) for d in DEFINITIONS]
    if name.startswith("FIELD_"):
        names = [f + n[len("FIELD"):] for n in names for f in SCAN_FIELDS]
    if name.endswith("_N"):
        names = [n[:-1] + str(k) for n in names for k in ns]
    return names


@pytest.mark.parametrize(("index", "ns", "pattern"), [("wp", (8, 13), True), ("w", (8, 13), False),
                                                       ("c", (50,), False)])
def test_examples_columns_match_the_documented_contract(world, index: str, ns: tuple[int, ...],
                                                        pattern: bool) -> None:
    _, rows, table = scan(world, index)
    want = documented_columns(ns, pattern)
    assert len(want) > 40
    schema = table.schema
    missing = sorted(set(want) - set(schema.names))
    assert not missing, missing
    for name, typ in want.items():
        assert schema.field(name).type == typ, (name, schema.field(name).type, typ)
    assert len(rows) == len(EXAMPLES) and [r["row"] for r in rows] == list(range(len(EXAMPLES)))
    assert {r["verdict"] for r in rows} <= {"seen", "partial", "novel", "unassessable"}
    if index == "c":  # no n <= 10: the Llama-2 class is unavailable (null), like contaminated_llama2
        assert all(r["llama2_class"] is None and r["contaminated_llama2"] is None for r in rows)


def test_summary_keys_match_the_documented_contract(default_scan) -> None:
    summary, rows, _ = default_scan
    doc = (REPO / "docs" / "scan-output.md").read_text(encoding="utf-8")
    section = doc.split("## `summary.json`", 1)[1].split("## `examples.parquet`", 1)[0]
    keys = re.findall(r"^\| `([a-z_]+)` \|", section, re.M)
    assert len(keys) > 15 and set(keys) <= set(summary), set(keys) - set(summary)
    assert summary["schema_version"] == 1
    thresholds = re.search(r"`thresholds` \(every number a verdict depends on: ([^)]*)\)", section).group(1)
    assert set(summary["config"]["thresholds"]) == set(re.findall(r"`([a-z_0-9]+)`", thresholds))
    assert summary["config"]["thresholds"] == Thresholds().to_dict()
    assert summary["examples"] == len(EXAMPLES) == sum(summary["verdicts"].values())
    assert summary["dataset"]["schema"] == "alpaca" and summary["dataset"]["records"] == len(EXAMPLES)
    assert summary["index"]["approximate"] is False and summary["index"]["spec"]["views"] == ["surface", "pattern"]
    assert set(summary["contaminated"]) == set(DEFINITIONS) - {"gpt4"}
    cov = summary["coverage"]
    assert cov["instruction.surface"]["examples"] == len(EXAMPLES) and cov["input.surface"]["examples"] == 0
    assert all(len(c["histogram"]) == 20 and sum(c["histogram"]) == c["examples"] for c in cov.values())
    hist = summary["longest_match_histogram"]
    assert hist["edges"] == [0, 1, 8, 13, 20, 50, 100, 200] and sum(hist["counts"]) == len(EXAMPLES)
    assert summary["lookups"] > 0 and summary["groups"] == {}


# --------------------------------------------------------------------------- errors
def test_nothing_assessable(world, tmp_path: Path) -> None:
    short = write_jsonl(tmp_path / "short.jsonl", [{"instruction": "Hi", "output": "yo"}] * 3)
    with pytest.raises(NothingAssessableError, match="nothing assessable"):
        scan_dataset(short, world["wp"], tmp_path / "out", ScanConfig())
    assert not (tmp_path / "out" / "examples.parquet").exists()
    assert not list((tmp_path / "out").glob(".*tmp*"))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(NothingAssessableError):
        scan_dataset(empty, world["wp"], tmp_path / "out2", ScanConfig())


def test_missing_index(world, tmp_path: Path) -> None:
    with pytest.raises(IndexMissingError):
        scan_dataset(world["dataset"], tmp_path / "nope", tmp_path / "out", ScanConfig())
    (tmp_path / "empty").mkdir()
    with pytest.raises(IndexMissingError):
        scan_dataset(world["dataset"], tmp_path / "empty", tmp_path / "out", ScanConfig())


def test_scan_uses_the_index_spec(world) -> None:
    summary, _, _ = scan(world, "c")
    assert summary["index"]["spec"]["tokenizer"] == "chars" and summary["index"]["spec"]["ns"] == [50]


# --------------------------------------------------------------------------- offsets, property-based
_TRICKY = "aZ ß é\u0301 ﬁ İ ǅ Ｆ x² ⑴ 東京 ΣΑ 한 \u1100\u1161 ﬀ ŉ ,.«»'\n"


@given(st.text(alphabet=_TRICKY, max_size=40))
def test_char_map_spans_cover_their_normalized_text(text: str) -> None:
    norm = normalize_nfkc_casefold(text)
    maps = _char_map(text, norm, normalize_nfkc_casefold)
    if maps is None:
        assert len(norm) == len(text)
        return
    starts, ends = maps
    assert starts.shape == ends.shape == (len(norm) + 1,)
    assert np.all(np.diff(starts) >= 0) and np.all(np.diff(ends) >= 0) and np.all(starts <= ends)
    assert (starts[0], ends[-1]) == (0, len(text))
    for a in range(len(norm) + 1):
        for b in range(a, len(norm) + 1):
            original = text[starts[a]:ends[b]]
            assert norm[a:b] in normalize_nfkc_casefold(original), (a, b, original)
