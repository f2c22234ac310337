"""Dataset adapters: schema detection, file formats, template stripping, input accounting."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probe.errors import ConfigError, InputError, NothingAssessableError
from probe.sources.dataset_model import CONTENT_HASH_ID_FIELD
from probe.sources.datasets import (
    DEFAULT_TEMPLATE_MARKERS,
    FIELDS,
    SCHEMAS,
    DatasetOptions,
    DatasetReadStats,
    Example,
    content_id,
    detect_schema,
    read_examples,
    strip_template_markers,
)

# the content-hash id of {"text": "same words"} (instruction "same words", no group): pinned on purpose
PINNED_SAME_WORDS_ID = "9a9810351e13ca79"

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# --------------------------------------------------------------------------- helpers


def write(tmp_path: Path, fmt: str, records: list[dict[str, Any]], name: str = "data") -> Path:
    """Write records in one of the supported layouts; returns the file path."""
    lines = "".join(json.dumps(r) + "\n" for r in records).encode()
    if fmt == "jsonl":
        path = tmp_path / f"{name}.jsonl"
        path.write_bytes(lines)
    elif fmt == "jsonl.gz":
        path = tmp_path / f"{name}.jsonl.gz"
        path.write_bytes(gzip.compress(lines))
    elif fmt == "jsonl.zst":
        import zstandard

        path = tmp_path / f"{name}.jsonl.zst"
        path.write_bytes(zstandard.ZstdCompressor().compress(lines))
    elif fmt == "json":
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(records, indent=2))
    elif fmt == "json_object":
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"version": 1, "data": records}))
    elif fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = tmp_path / f"{name}.parquet"
        pq.write_table(pa.Table.from_pylist(records), path)
    elif fmt == "csv":
        path = tmp_path / f"{name}.csv"
        header = list(dict.fromkeys(k for r in records for k in r))
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=header)
            writer.writeheader()
            writer.writerows(records)
    else:  # pragma: no cover
        raise ValueError(fmt)
    return path


def read_all(path: Path, **options: Any) -> tuple[list[Example], DatasetReadStats]:
    stats = DatasetReadStats()
    examples = [e for batch in read_examples(path, DatasetOptions(**options), stats) for e in batch]
    return examples, stats


FLAT_FORMATS = ["jsonl", "jsonl.gz", "jsonl.zst", "json", "json_object", "parquet", "csv"]
NESTED_FORMATS = [f for f in FLAT_FORMATS if f != "csv"]

# --------------------------------------------------------------------------- one fixture per schema

FLAT_CASES = {
    "alpaca": (
        [
            {"instruction": "Add the two numbers.", "input": "2 and 3", "output": "The sum is 5."},
            {"instruction": "Say hello politely.", "input": "", "output": "Hello, nice to meet you."},
        ],
        {"instruction": "instruction", "input": "input", "response": "output"},
        {"instruction": "Add the two numbers.", "input": "2 and 3", "response": "The sum is 5."},
    ),
    "prompt_completion": (
        [{"prompt": "Once upon a time", "completion": "there was a fox."}] * 2,
        {"instruction": "prompt", "response": "completion"},
        {"instruction": "Once upon a time", "response": "there was a fox."},
    ),
    "question_answer": (
        [
            {"question": "2 + 2 = ?", "choice0": "3", "choice1": "4", "choice2": "5", "answer": "1"},
            {"question": "3 + 3 = ?", "choice0": "6", "choice1": "7", "choice2": "8", "answer": "0"},
        ],
        {"instruction": "question + choice0..choice2", "response": "answer (key -> choice text)"},
        {"instruction": "2 + 2 = ?\nA. 3\nB. 4\nC. 5", "response": "B. 4"},
    ),
    "sentence_pair": (
        [{"premise": "A cat sat on the mat.", "hypothesis": "A cat sat.", "label": "entailment"}] * 2,
        {"instruction": "premise", "input": "hypothesis", "response": "label"},
        {"instruction": "A cat sat on the mat.", "input": "A cat sat.", "response": "entailment"},
    ),
    "input_target": (
        [{"input": "not ( True ) is", "target": "False"}] * 2,
        {"instruction": "input", "response": "target"},
        {"instruction": "not ( True ) is", "response": "False"},
    ),
    "text": (
        [{"text": "The quick brown fox jumps over the lazy dog."}] * 2,
        {"instruction": "text"},
        {"instruction": "The quick brown fox jumps over the lazy dog."},
    ),
}

NESTED_CASES = {
    "messages": (
        [
            {
                "messages": [
                    {"role": "system", "content": "You are terse."},
                    {"role": "user", "content": "What is the capital of France?"},
                    {"role": "assistant", "content": "Paris."},
                    {"role": "user", "content": "And of Italy?"},
                    {"role": "assistant", "content": "Rome."},
                ]
            }
        ]
        * 2,
        {
            "instruction": "messages[role=user].content",
            "response": "messages[role=assistant].content",
            "system": "messages[role=system].content (not judged)",
        },
        {
            "instruction": "What is the capital of France?\nAnd of Italy?",
            "response": "Paris.\nRome.",
        },
    ),
    "sharegpt": (
        [
            {
                "conversations": [
                    {"from": "system", "value": "Be kind."},
                    {"from": "human", "value": "Hi there"},
                    {"from": "gpt", "value": "Hello! How can I help?"},
                ]
            }
        ]
        * 2,
        {
            "instruction": "conversations[from=human].value",
            "response": "conversations[from=gpt].value",
            "system": "conversations[from=system].value (not judged)",
        },
        {"instruction": "Hi there", "response": "Hello! How can I help?"},
    ),
    "self_instruct": (
        [
            {
                "id": "seed_task_0",
                "instruction": "Give the antonym.",
                "instances": [{"input": "hot", "output": "cold"}, {"input": "up", "output": "down"}],
            },
            {
                "id": "seed_task_1",
                "instruction": "Name a colour.",
                "instances": [{"input": "", "output": "red"}],
            },
        ],
        {"instruction": "instruction", "input": "instances[*].input", "response": "instances[*].output"},
        {"instruction": "Give the antonym.", "input": "hot\nup", "response": "cold\ndown"},
    ),
    "question_answer": (  # ARC / CommonsenseQA: nested stem + labelled choices + answerKey
        [
            {
                "id": "q1",
                "question": {
                    "stem": "Which is a planet?",
                    "choices": [{"label": "A", "text": "Moon"}, {"label": "B", "text": "Mars"}],
                },
                "answerKey": "B",
            },
            {
                "id": "q2",
                "question": {
                    "stem": "Which is a star?",
                    "choices": [{"label": "A", "text": "Sun"}, {"label": "B", "text": "Venus"}],
                },
                "answerKey": "A",
            },
        ],
        {"instruction": "question.stem + question.choices", "response": "answerKey (key -> choice text)"},
        {"instruction": "Which is a planet?\nA. Moon\nB. Mars", "response": "B. Mars"},
    ),
}


@pytest.mark.parametrize("fmt", FLAT_FORMATS)
@pytest.mark.parametrize("schema", sorted(FLAT_CASES))
def test_flat_schema_in_every_format(tmp_path: Path, schema: str, fmt: str) -> None:
    records, mapping, first_fields = FLAT_CASES[schema]
    path = write(tmp_path, fmt, records)
    detected = detect_schema(path, DatasetOptions())
    assert (detected.name, detected.mapping) == (schema, mapping)
    examples, stats = read_all(path)
    assert stats.schema == detected
    assert (stats.records, stats.examples, stats.skipped) == (len(records), len(records), 0)
    assert examples[0].fields == first_fields
    assert [e.row for e in examples] == list(range(len(records)))
    # without an id column the id is a hash of the example's content (stable when rows move); `row` stays
    assert stats.schema.id_field == CONTENT_HASH_ID_FIELD
    assert [e.id.partition("-")[0] for e in examples] == [content_id(e) for e in examples]
    assert len({e.id for e in examples}) == len(examples)  # identical records are numbered, ids stay unique


@pytest.mark.parametrize("fmt", NESTED_FORMATS)
@pytest.mark.parametrize("schema", sorted(NESTED_CASES))
def test_nested_schema_in_every_format(tmp_path: Path, schema: str, fmt: str) -> None:
    records, mapping, first_fields = NESTED_CASES[schema]
    path = write(tmp_path, fmt, records)
    examples, stats = read_all(path)
    assert stats.schema is not None
    assert (stats.schema.name, stats.schema.mapping) == (schema, mapping)
    assert examples[0].fields == first_fields
    assert stats.examples == len(records)


def test_system_prompts_are_left_out_by_default_and_read_as_input_on_request(tmp_path: Path) -> None:
    records = [{"messages": [{"role": "system", "content": "You are a helpful assistant."},
                             {"role": "user", "content": "Name a prime."}, {"role": "assistant", "content": "7"}]},
               {"instruction": "x", "system": "Be brief.", "output": "y"}]
    chat = write(tmp_path, "jsonl", records[:1])
    (plain,), _ = read_all(chat)
    assert plain.fields == {"instruction": "Name a prime.", "response": "7"}
    assert plain.whole_text() == "Name a prime.\n7"
    (kept,), stats = read_all(chat, include_system_prompts=True)
    assert kept.fields["input"] == "You are a helpful assistant."
    assert kept.whole_text() == "You are a helpful assistant.\nName a prime.\n7"
    assert stats.schema is not None and stats.schema.mapping["input"] == "messages[role=system].content"
    column_file = write(tmp_path, "jsonl", records[1:], name="column")
    (column,), _ = read_all(column_file)
    assert column.fields == {"instruction": "x", "response": "y"}
    (column_kept,), _ = read_all(column_file, include_system_prompts=True)
    assert column_kept.fields == {"instruction": "x", "input": "Be brief.", "response": "y"}


def test_empty_optional_field_is_dropped_not_skipped(tmp_path: Path) -> None:
    records, *_ = FLAT_CASES["alpaca"]
    examples, stats = read_all(write(tmp_path, "jsonl", records))
    assert examples[1].fields == {
        "instruction": "Say hello politely.",
        "response": "Hello, nice to meet you.",
    }
    assert stats.skipped == 0


def test_schemas_constant_lists_every_detectable_schema() -> None:
    assert {
        "alpaca",
        "sharegpt",
        "messages",
        "prompt_completion",
        "question_answer",
        "text",
        "fields",
    } <= set(SCHEMAS)
    assert FIELDS == ("instruction", "input", "response")


# --------------------------------------------------------------------------- chat details


def test_content_as_list_of_parts_and_tool_turns(tmp_path: Path) -> None:
    record = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Describe this picture."},
                    {"type": "image_url", "image_url": {"url": "http://x/y.png"}},
                    {"type": "text", "text": "Be brief."},
                ],
            },
            {"role": "assistant", "content": None, "tool_calls": [{"id": "1", "function": {"name": "f"}}]},
            {"role": "tool", "content": "tool output that is not dialogue"},
            {"role": "assistant", "content": [{"type": "text", "text": "A red barn."}]},
            {"role": 7, "content": "non-string role"},
            {"role": "narrator", "content": "unknown role"},
        ]
    }
    path = tmp_path / "chat.jsonl"
    path.write_text(json.dumps(record) + "\n")
    examples, stats = read_all(path)
    assert examples[0].fields == {
        "instruction": "Describe this picture.\nBe brief.",
        "response": "A red barn.",
    }
    assert stats.ignored == {
        "non-text content part": 1,
        "tool call": 1,
        "tool turn": 1,
        "non-string role": 1,
        "unknown role": 1,
    }


def test_alpaca_history_turns_precede_the_current_turn(tmp_path: Path) -> None:
    record = {"instruction": "Q2", "input": "", "output": "A2", "history": [["Q1", "A1"]]}
    path = write(tmp_path, "jsonl", [record])
    examples, stats = read_all(path)
    assert stats.schema is not None and stats.schema.mapping["instruction"] == "history[*][0] + instruction"
    assert examples[0].fields == {"instruction": "Q1\nQ2", "response": "A1\nA2"}


# --------------------------------------------------------------------------- explicit options


def test_field_map_overrides_detection_with_dotted_paths_and_repeats(tmp_path: Path) -> None:
    records = [{"Q": "What colour is the sky?", "meta": {"Context": "Look up."}, "A": "Blue", "prompt": "x"}]
    path = write(tmp_path, "jsonl", records)
    options = DatasetOptions(
        field_map=(("instruction", "meta.context"), ("instruction", "q"), ("response", "A")),
    )
    detected = detect_schema(path, options)
    assert detected.name == "fields"
    assert detected.mapping == {"instruction": "meta.context + q", "response": "A"}
    examples, _ = read_all(path, field_map=options.field_map)
    assert examples[0].fields == {"instruction": "Look up.\nWhat colour is the sky?", "response": "Blue"}


def test_field_map_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "jsonl", [{"q": "x", "a": "y"}])
    with pytest.raises(ConfigError, match=r"'nope' is not a column.*\[a, q\]"):
        detect_schema(path, DatasetOptions(field_map=(("instruction", "nope"),)))
    with pytest.raises(ConfigError, match="FIELD=COLUMN"):
        detect_schema(path, DatasetOptions(field_map=(("question", "q"),)))
    with pytest.raises(ConfigError, match="do not combine"):
        detect_schema(path, DatasetOptions(field_map=(("instruction", "q"),), schema="alpaca"))
    with pytest.raises(ConfigError, match="unknown schema"):
        detect_schema(path, DatasetOptions(schema="dolly"))
    with pytest.raises(ConfigError, match="unknown format"):
        detect_schema(path, DatasetOptions(file_format="xml"))


def test_forced_schema_resolves_ambiguity_and_mismatch_is_an_input_error(tmp_path: Path) -> None:
    path = write(tmp_path, "jsonl", [{"question": "q?", "answer": "a", "premise": "p", "hypothesis": "h"}])
    with pytest.raises(InputError, match=r"ambiguous.*question_answer.*sentence_pair.*--schema"):
        detect_schema(path, DatasetOptions())
    assert detect_schema(path, DatasetOptions(schema="sentence_pair")).mapping == {
        "instruction": "premise",
        "input": "hypothesis",
    }
    with pytest.raises(InputError, match="does not fit --schema sharegpt"):
        detect_schema(path, DatasetOptions(schema="sharegpt"))


def test_unknown_schema_lists_keys_and_candidates(tmp_path: Path) -> None:
    path = write(tmp_path, "jsonl", [{"foo": 1, "Bar": "x"}])
    with pytest.raises(InputError) as info:
        detect_schema(path, DatasetOptions())
    message = str(info.value)
    assert message.startswith(str(path))
    assert "[Bar, foo]" in message
    for schema in ("alpaca", "sharegpt", "messages", "question_answer", "text"):
        assert schema in message
    assert "--field instruction=COL --field response=COL" in message and "--schema" in message


def test_csv_with_wrong_delimiter_hints_at_it(tmp_path: Path) -> None:
    path = tmp_path / "semi.csv"
    path.write_text("instruction;output\nsay hi;hi\n")
    with pytest.raises(InputError, match="delimiter may be wrong"):
        detect_schema(path, DatasetOptions())


def test_ids_and_groups_detected_and_overridden(tmp_path: Path) -> None:
    records = [
        {"idx": i, "Category": ["math", "art"][i % 2], "meta": {"uid": f"u{i}"}, "text": f"t{i}"}
        for i in range(6)
    ]
    path = write(tmp_path, "jsonl", records)
    examples, stats = read_all(path)
    assert stats.schema is not None
    assert (stats.schema.id_field, stats.schema.group_field) == ("idx", "Category")
    assert [(e.id, e.group) for e in examples[:2]] == [("0", "math"), ("1", "art")]
    examples, stats = read_all(path, id_field="meta.UID", group_by="TEXT")
    assert stats.schema is not None and stats.schema.id_field == "meta.UID"
    assert [(e.id, e.group) for e in examples[:2]] == [("u0", "t0"), ("u1", "t1")]
    with pytest.raises(ConfigError, match="--group-by"):
        detect_schema(path, DatasetOptions(group_by="missing"))


def test_group_needs_few_values_and_id_needs_unique_values(tmp_path: Path) -> None:
    records = [{"id": "same", "task": f"task{i:03d}", "text": "x y z"} for i in range(10)]
    detected = detect_schema(write(tmp_path, "jsonl", records), DatasetOptions())
    assert (detected.id_field, detected.group_field) == (CONTENT_HASH_ID_FIELD, None)


def test_content_hash_ids_survive_an_inserted_row(tmp_path: Path) -> None:
    """Issue 17 item 5: inserting one row at the top must not shift every other example's id."""
    records = [{"instruction": f"Say {i}", "output": f"{i}"} for i in range(5)]
    before, _ = read_all(write(tmp_path, "jsonl", records, name="a"))
    after, stats = read_all(write(tmp_path, "jsonl", [{"instruction": "new", "output": "row"}, *records], name="b"))
    assert stats.schema is not None and stats.schema.id_field == CONTENT_HASH_ID_FIELD
    assert [e.id for e in after[1:]] == [e.id for e in before]
    assert [e.row for e in after[1:]] == [e.row + 1 for e in before]  # `row` is still the position
    assert all(len(e.id) == 16 and int(e.id, 16) >= 0 for e in before)


def test_content_hash_ids_pinned_and_duplicates_numbered(tmp_path: Path) -> None:
    records = [{"text": "same words"}, {"text": "other"}, {"text": "same words"}, {"text": "same words"}]
    examples, _ = read_all(write(tmp_path, "jsonl", records))
    base = examples[0].id
    assert [e.id for e in examples] == [base, examples[1].id, f"{base}-2", f"{base}-3"]
    # pinned: a change to the hashed form changes every stored baseline's ids, so it must fail loudly
    assert base == content_id(Example(id="", row=0, group=None, fields=examples[0].fields))
    assert base == PINNED_SAME_WORDS_ID


def test_an_id_column_is_used_as_is_not_hashed(tmp_path: Path) -> None:
    examples, stats = read_all(write(tmp_path, "jsonl", [{"id": "a1", "text": "x"}, {"id": "b2", "text": "y"}]))
    assert stats.schema is not None and stats.schema.id_field == "id"
    assert [e.id for e in examples] == ["a1", "b2"]


# --------------------------------------------------------------------------- template stripping


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "<|im_start|>system\nBe nice<|im_end|>\n<|im_start|>user\nHello there<|im_end|>",
            "Be nice\n\nHello there",
        ),
        ("<s>[INST] <<SYS>>\nsys\n<</SYS>>\n\nWhat is 2+2? [/INST] Four</s>", "sys\n\nWhat is 2+2?\nFour"),
        (
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nHello<|eot_id|>",
            "Hi\n\nHello",
        ),
        (
            "Below is an instruction that describes a task, paired with an input that provides further context. "
            "Write a response that appropriately completes the request.\n\n### Instruction:\nSort these\n\n"
            "### Input:\nb a\n\n### Response:\na b",
            "Sort these\n\nb a\n\na b",
        ),
        (
            "Below is an instruction that describes a task. Write a response that appropriately completes the "
            "request.\n\n### Instruction:\nSay hi\n\n### Response:\nhi",
            "Say hi\n\nhi",
        ),
        ("USER: How are you?\nASSISTANT: Fine.", "How are you?\n\nFine."),
        ("<start_of_turn>user\nPing<end_of_turn>\n<start_of_turn>model\nPong<end_of_turn>", "Ping\n\nPong"),
        ("<|user|>\nHey</s>\n<|assistant|>\nYo", "Hey\n\nYo"),
    ],
)
def test_template_markers_are_stripped(text: str, expected: str) -> None:
    assert strip_template_markers(text, DEFAULT_TEMPLATE_MARKERS) == expected


def test_stripping_never_merges_words_and_leaves_plain_text_alone() -> None:
    assert strip_template_markers("alpha<|im_end|>beta", DEFAULT_TEMPLATE_MARKERS) == "alpha\nbeta"
    assert strip_template_markers("alpha[/INST]beta", DEFAULT_TEMPLATE_MARKERS).split() == ["alpha", "beta"]
    plain = "  keep\n\n\n   this   exactly  "
    assert strip_template_markers(plain, DEFAULT_TEMPLATE_MARKERS) is plain
    # "user:" in lower case mid-sentence is ordinary prose, not a Vicuna role marker.
    assert strip_template_markers("the user: said", DEFAULT_TEMPLATE_MARKERS) == "the user: said"


def test_template_stripping_in_read_is_configurable(tmp_path: Path) -> None:
    records = [{"prompt": "<|im_start|>user\nTell a joke<|im_end|>", "completion": "No. [[END]]"}]
    path = write(tmp_path, "jsonl", records)
    examples, _ = read_all(path)
    assert examples[0].fields == {"instruction": "Tell a joke", "response": "No. [[END]]"}
    examples, _ = read_all(path, strip_templates=False)
    assert examples[0].fields["instruction"] == records[0]["prompt"]
    examples, _ = read_all(path, template_markers=(r"\[\[END\]\]",))
    assert examples[0].fields == {"instruction": records[0]["prompt"], "response": "No."}
    with pytest.raises(ConfigError, match="invalid template marker"):
        read_examples(path, DatasetOptions(template_markers=("(unclosed",)))


# --------------------------------------------------------------------------- bad input


def test_malformed_json_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok"}\n\n{"text": "ok"}\n{"text": "broken",}\n')
    with pytest.raises(InputError) as info:
        read_all(path)
    assert info.value.location == "line 4"
    assert str(info.value).startswith(f"{path}:line 4: invalid JSON")


def test_non_object_record_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "list.jsonl"
    path.write_text('{"text": "ok"}\n["not", "an", "object"]\n')
    with pytest.raises(InputError, match="expected a JSON object per record, found list") as info:
        read_all(path)
    assert info.value.location == "line 2"


def test_json_document_parse_error_names_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('[\n  {"text": "a"},\n  {"text": }\n]\n')
    with pytest.raises(InputError) as info:
        read_all(path)
    assert info.value.location == "line 3"


def test_jsonl_saved_as_json_is_read_as_lines(tmp_path: Path) -> None:
    path = tmp_path / "lines.json"
    path.write_text('{"text": "a b"}\n{"text": "c d"}\n')
    examples, _ = read_all(path)
    assert [e.fields["instruction"] for e in examples] == ["a b", "c d"]


@pytest.mark.parametrize("suffix", ["gz", "zst"])
@pytest.mark.parametrize("cut", [0.5, -3])
def test_truncated_compressed_input_is_an_error(tmp_path: Path, suffix: str, cut: float) -> None:
    records = [{"text": f"document number {i} " * 20} for i in range(2000)]
    path = write(tmp_path, f"jsonl.{suffix}", records)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * cut)] if cut > 0 else data[: int(cut)])
    with pytest.raises(InputError, match="compressed stream truncated"):
        read_all(path)


def test_overlong_line_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "jsonl", [{"text": "x" * 1000}])
    with pytest.raises(InputError, match="longer than 100 bytes") as info:
        read_all(path, max_line_bytes=100)
    assert info.value.location == "line 1"


def test_csv_huge_field_names_record_and_line_and_restores_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    path.write_text('instruction,output\n"multi\nline",ok\nshort,' + "y" * 200_000 + "\n")
    before = csv.field_size_limit()
    examples, _ = read_all(path)  # the default limit (16 MiB) is explicit and large enough
    assert len(examples) == 2 and examples[0].fields["instruction"] == "multi\nline"
    with pytest.raises(InputError, match=r"record 2 \(lines 4-4\).*field larger than field limit") as info:
        read_all(path, csv_field_size_limit=131_072)
    assert info.value.location == "line 4"
    assert csv.field_size_limit() == before


def test_csv_excel_bom_stripped_and_tsv_read(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffInstruction,Output\r\nSay hi,hi\r\n".encode())
    examples, stats = read_all(path)
    assert stats.schema is not None and stats.schema.mapping == {
        "instruction": "Instruction",
        "response": "Output",
    }
    assert examples[0].fields == {"instruction": "Say hi", "response": "hi"}
    tsv = tmp_path / "data.tsv"
    tsv.write_text("prompt\tcompletion\na, b\tc, d\n")
    examples, _ = read_all(tsv)
    assert examples[0].fields == {"instruction": "a, b", "response": "c, d"}


def test_csv_not_utf8_says_so(tmp_path: Path) -> None:
    path = tmp_path / "cp1252.csv"
    path.write_bytes("text\ncaf\xe9 au lait\n".encode("cp1252"))
    with pytest.raises(InputError, match="UTF-8.*--encoding"):
        read_all(path)


def test_csv_field_count_mismatch_and_bad_quoting(tmp_path: Path) -> None:
    path = tmp_path / "ragged.csv"
    path.write_text("text,label\na,1\nb,2,extra\n")
    with pytest.raises(InputError, match="record 2 has 3 fields, the header has 2") as info:
        read_all(path)
    assert info.value.location == "line 3"
    path.write_text('text,label\n"unterminated,1\n')
    with pytest.raises(InputError, match="malformed CSV in record 1"):
        read_all(path)


def test_records_without_text_are_skipped_and_counted(tmp_path: Path) -> None:
    records = [
        {"instruction": "Do it", "input": "", "output": "Done"},
        {"instruction": "", "input": "  ", "output": None},
        {"something": "else"},
    ]
    path = write(tmp_path, "jsonl", records)
    examples, stats = read_all(path)
    assert [e.row for e in examples] == [0]
    assert (stats.records, stats.examples, stats.skipped) == (3, 1, 2)
    assert stats.skipped_reasons == {"no text fields": 2}
    assert stats.skipped_examples[1] == f"{path}:line 3: no text fields (keys: something)"


def test_batches_are_bounded(tmp_path: Path) -> None:
    path = write(tmp_path, "jsonl", [{"text": f"t {i}"} for i in range(5)])
    sizes = [len(b) for b in read_examples(path, DatasetOptions(batch_size=2))]
    assert sizes == [2, 2, 1]


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n")
    examples, stats = read_all(path)
    assert examples == [] and stats.schema is None and stats.ignored == {"blank line": 1}
    with pytest.raises(NothingAssessableError):
        detect_schema(path, DatasetOptions())


def test_unknown_extension_asks_for_format(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_text('{"text": "a"}\n')
    with pytest.raises(InputError, match="--format"):
        detect_schema(path, DatasetOptions())
    assert detect_schema(path, DatasetOptions(file_format="jsonl")).name == "text"


def test_values_are_rendered_as_text(tmp_path: Path) -> None:
    records = [
        {"Question": "How many?", "Answer": 51.0, "ID": "a"},
        {"Question": "Odd \ud800 char", "Answer": 0.5, "ID": "b"},
    ]
    path = tmp_path / "floats.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    examples, _ = read_all(path)
    assert [e.fields["response"] for e in examples] == ["51", "0.5"]
    assert examples[1].fields["instruction"] == "Odd \ufffd char"
    assert [e.id for e in examples] == ["a", "b"]


def test_answer_index_resolves_against_numbered_choices(tmp_path: Path) -> None:
    copa = {
        "premise": "The man turned on the faucet.",
        "choice1": "Toilet filled.",
        "choice2": "Water flowed.",
    }
    path = write(tmp_path, "jsonl", [{**copa, "question": "effect", "label": 1, "idx": 0}])
    examples, stats = read_all(path)
    assert stats.schema is not None and stats.schema.name == "question_answer"
    assert examples[0].fields == {
        "instruction": "effect\nA. Toilet filled.\nB. Water flowed.",
        "input": "The man turned on the faucet.",
        "response": "B. Water flowed.",
    }


def test_parquet_struct_columns_and_projection(tmp_path: Path) -> None:
    records = [
        {"id": f"x{i}", "question": {"stem": f"Q{i}?"}, "answer": "yes", "blob": "z" * 100} for i in range(3)
    ]
    path = write(tmp_path, "parquet", records)
    examples, stats = read_all(path, batch_size=2)
    assert [e.id for e in examples] == ["x0", "x1", "x2"]
    assert examples[2].fields == {"instruction": "Q2?", "response": "yes"}


# --------------------------------------------------------------------------- every real shared file

# file -> (schema, canonical fields in the mapping, group column)
I_ = {"instruction"}
IR = {"instruction", "response"}
IXR = {"instruction", "input", "response"}
EXPECTED: dict[str, tuple[str, set[str], str | None]] = {
    "benchmarks/arc/ARC-Challenge-Dev.jsonl": ("question_answer", IR, None),
    "benchmarks/arc/ARC-Challenge-Test.jsonl": ("question_answer", IR, None),
    "benchmarks/arc/ARC-Easy-Dev.jsonl": ("question_answer", IR, None),
    "benchmarks/arc/ARC-Easy-Test.jsonl": ("question_answer", IR, None),
    "benchmarks/bbh/bbh.jsonl": ("input_target", IR, "task"),
    "benchmarks/boolq/val.jsonl": ("question_answer", IXR, None),
    "benchmarks/chat_evals/advbench_harmful_behaviors.jsonl": ("input_target", IR, None),
    "benchmarks/chat_evals/mtbench_question.jsonl": ("turns", IR, "category"),
    "benchmarks/chat_evals/vicuna80_question.jsonl": ("turns", I_, "category"),
    "benchmarks/cola/in_domain_dev.jsonl": ("text", IR, None),
    "benchmarks/cola/out_of_domain_dev.jsonl": ("text", IR, None),
    "benchmarks/commonsenseqa/dev_rand_split.jsonl": ("question_answer", IR, None),
    "benchmarks/gsm8k/test.jsonl": ("question_answer", IR, None),
    "benchmarks/humaneval/HumanEval.jsonl": ("prompt_completion", IR, None),
    "benchmarks/math_word_problems/aqua_test.jsonl": ("question_answer", IR, None),
    "benchmarks/math_word_problems/multiarith.jsonl": ("question_answer", IR, None),
    "benchmarks/math_word_problems/strategyqa.jsonl": ("input_target", IR, None),
    "benchmarks/math_word_problems/svamp.jsonl": ("question_answer", IR, "Type"),
    "benchmarks/mbpp/mbpp.jsonl": ("text", IR, None),
    "benchmarks/mmlu/dev.jsonl": ("question_answer", IR, "subject"),
    "benchmarks/mmlu/test.jsonl": ("question_answer", IR, "subject"),
    "benchmarks/superglue_other/AX-b_diagnostic.jsonl": ("sentence_pair", IXR, None),
    "benchmarks/superglue_other/AX-g_diagnostic.jsonl": ("sentence_pair", IXR, None),
    "benchmarks/superglue_other/CB_val.jsonl": ("sentence_pair", IXR, None),
    "benchmarks/superglue_other/COPA_val.jsonl": ("question_answer", IXR, None),
    "benchmarks/superglue_other/MultiRC_val.jsonl": ("multirc", IXR, None),
    "benchmarks/superglue_other/RTE_val.jsonl": ("sentence_pair", IXR, None),
    "benchmarks/superglue_other/WSC_val.jsonl": ("text", IR, None),
    "benchmarks/superglue_other/WiC_val.jsonl": ("sentence_pair", IXR, None),
    "benchmarks/truthfulqa/TruthfulQA.jsonl": ("question_answer", IR, "Category"),
    "instruct/alpaca_5000/alpaca_5000.jsonl": ("alpaca", IXR, None),
    "instruct/code_alpaca/code_alpaca_2k.jsonl": ("alpaca", IXR, None),
    "instruct/code_alpaca/new_codealpaca.jsonl": ("alpaca", IXR, None),
    "instruct/flan_templates/flan_patterns.jsonl": ("flan_template", IR, "task"),
    "instruct/gsm8k_train/train.jsonl": ("question_answer", IR, None),
    "instruct/lima/lima.jsonl": ("alpaca", IXR, None),
    "instruct/niv2_task_definitions/niv2_meta.jsonl": ("niv2", IXR, None),
    "instruct/self_instruct/seed_tasks.jsonl": ("self_instruct", IXR, None),
    "instruct/self_instruct/user_oriented_instructions.jsonl": ("self_instruct", IXR, None),
}

# A few mappings pinned word for word: the nested and multi-column cases the issue names.
EXPECTED_MAPPINGS = {
    "benchmarks/commonsenseqa/dev_rand_split.jsonl": {
        "instruction": "question.stem + question.choices",
        "response": "answerKey (key -> choice text)",
    },
    "benchmarks/mmlu/test.jsonl": {
        "instruction": "question + choice0..choice3",
        "response": "answer (key -> choice text)",
    },
    "benchmarks/truthfulqa/TruthfulQA.jsonl": {"instruction": "Question", "response": "Best Answer"},
    "benchmarks/math_word_problems/svamp.jsonl": {"instruction": "Body + Question", "response": "Answer"},
    "instruct/self_instruct/seed_tasks.jsonl": {
        "instruction": "instruction",
        "input": "instances[*].input",
        "response": "instances[*].output",
    },
}


def _shared_files() -> list[str]:
    if not SHARED_DATA.is_dir():
        return []
    found = [*SHARED_DATA.glob("benchmarks/**/*.jsonl"), *SHARED_DATA.glob("instruct/**/*.jsonl")]
    return sorted(str(p.relative_to(SHARED_DATA)) for p in found)


@pytest.mark.shared
@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data is absent")
@pytest.mark.parametrize("relpath", _shared_files() or ["<absent>"])
def test_every_shared_dataset_loads_with_detection_alone(relpath: str) -> None:
    assert relpath in EXPECTED, f"new shared file {relpath}: add it to EXPECTED"
    path = SHARED_DATA / relpath
    schema, fields, group = EXPECTED[relpath]
    detected = detect_schema(path, DatasetOptions())
    assert (detected.name, set(detected.mapping), detected.group_field) == (schema, fields, group)
    if relpath in EXPECTED_MAPPINGS:
        assert detected.mapping == EXPECTED_MAPPINGS[relpath]
    stats = DatasetReadStats()
    count = 0
    for batch in read_examples(path, DatasetOptions(), stats):
        for example in batch:
            assert example.fields.get("instruction") or example.fields.get("response"), example
            assert set(example.fields) <= fields
            count += 1
    with path.open("rb") as fh:
        lines = sum(1 for line in fh if line.strip())
    assert count == lines == stats.records == stats.examples
    assert stats.skipped == 0 and stats.schema == detected


@pytest.mark.shared
@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data is absent")
def test_expected_table_has_no_stale_entries() -> None:
    assert sorted(EXPECTED) == _shared_files()


# --------------------------------------------------------------------------- properties

_FRAGMENTS = [
    "<|im_start|>",
    "<|im_end|>",
    "user",
    "assistant",
    "[INST]",
    "[/INST]",
    "<s>",
    "</s>",
    "### Instruction:",
    "### Response:",
    "USER:",
    "ASSISTANT:",
    "<|eot_id|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<end_of_turn>",
    "hello",
    "world",
    " ",
    "\n",
    "\t",
]


@given(st.lists(st.sampled_from(_FRAGMENTS), max_size=30))
@settings(max_examples=300, deadline=None)
def test_stripping_is_idempotent_and_leaves_no_marker(fragments: list[str]) -> None:
    from probe.sources.datasets import _compile_markers

    text = "".join(fragments)
    once = strip_template_markers(text, DEFAULT_TEMPLATE_MARKERS)
    assert strip_template_markers(once, DEFAULT_TEMPLATE_MARKERS) == once
    pattern = _compile_markers(DEFAULT_TEMPLATE_MARKERS)
    assert pattern is not None and pattern.search(once) is None
    # Words survive, and removing a marker never glues two words together.
    for word in ("hello", "world"):
        assert once.count(word) == text.count(word)
    for glued in ("helloworld", "worldhello", "hellohello", "worldworld"):
        assert once.count(glued) <= text.count(glued)


@given(st.text(max_size=200))
@settings(max_examples=300, deadline=None)
def test_text_without_markers_is_returned_unchanged(text: str) -> None:
    from probe.sources.datasets import _compile_markers

    pattern = _compile_markers(DEFAULT_TEMPLATE_MARKERS)
    assert pattern is not None
    if pattern.search(text) is None:
        assert strip_template_markers(text, DEFAULT_TEMPLATE_MARKERS) is text


def test_choice_labels_and_answer_resolution(tmp_path: Path) -> None:
    records = [
        {"question": "Pick B", "options": ["A)5(√3 + 1)", "B)6"], "correct": "B"},
        {"question": "Decimals", "options": ["0.5", "1.5"], "correct": 1},
        {"question": "Free text", "options": ["x", "y"], "correct": "neither"},
    ]
    examples, _ = read_all(write(tmp_path, "jsonl", records))
    assert examples[0].fields == {"instruction": "Pick B\nA)5(√3 + 1)\nB)6", "response": "B)6"}
    assert examples[1].fields == {"instruction": "Decimals\nA. 0.5\nB. 1.5", "response": "B. 1.5"}
    assert examples[2].fields["response"] == "neither"


def test_multi_frame_zstd_and_multi_member_gzip_are_read_whole(tmp_path: Path) -> None:
    import zstandard

    part1 = b'{"text": "first frame"}\n'
    part2 = b'{"text": "second frame"}\n'
    zst = tmp_path / "frames.jsonl.zst"
    zst.write_bytes(zstandard.ZstdCompressor().compress(part1) + zstandard.ZstdCompressor().compress(part2))
    gz = tmp_path / "members.jsonl.gz"
    gz.write_bytes(gzip.compress(part1) + gzip.compress(part2))
    for path in (zst, gz):
        examples, _ = read_all(path)
        assert [e.fields["instruction"] for e in examples] == ["first frame", "second frame"]


@pytest.mark.parametrize("marker", DEFAULT_TEMPLATE_MARKERS)
def test_every_default_marker_needs_a_prefilter_literal(marker: str) -> None:
    """The fast path skips texts without any DEFAULT_MARKER_LITERALS: each marker must contain one."""
    from probe.sources.datasets import DEFAULT_MARKER_LITERALS

    assert any(literal in marker.replace("\\", "") for literal in DEFAULT_MARKER_LITERALS), marker


@given(st.lists(st.sampled_from(_FRAGMENTS), max_size=30), st.text(max_size=40))
@settings(max_examples=300, deadline=None)
def test_prefilter_never_skips_a_text_with_a_marker(fragments: list[str], noise: str) -> None:
    from probe.sources.datasets import DEFAULT_MARKER_LITERALS, _compile_markers

    text = noise.join(fragments)
    if _compile_markers(DEFAULT_TEMPLATE_MARKERS).search(text) is not None:
        assert any(literal in text for literal in DEFAULT_MARKER_LITERALS)
