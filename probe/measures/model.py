"""The model-based measure: perplexity and Min-K% Prob of each example's fields under a local causal LM.

Min-K% Prob (Shi et al. 2023, "Detecting Pretraining Data from Large Language Models") is
the mean log-probability of the k % least likely tokens of a text: a text the model saw in
training has few very unlikely tokens, so its Min-K% is closer to 0. Perplexity is
``exp`` of the mean negative log-probability of all its tokens.

Both read a *proxy* model: they are evidence about what **that model** saw in its own
training data, not about the corpus indexed by probe (unless the model was trained on it).
The summary says so next to the numbers.

The model comes only from a local path, a directory with a config and weights
(``save_pretrained``) or one ``.gguf`` file (de-quantised by transformers' GGUF support);
remote code is never run and nothing is downloaded from the Hugging Face hub. transformers
and torch are the optional extra ``probe[model]``; they are imported only when the measure
is selected, so ``import probe`` stays cheap.

Each selected field (default instruction, response, whole) is scored on its own, starting
from one document-start token: ``<|endoftext|>`` when the vocabulary has it (GPT-2 and the
SmolLM family), else the tokenizer's BOS. SmolLM2's GGUF names ``<|im_start|>`` (id 1) as
its BOS, a chat-turn marker; starting raw text with it inflates perplexity about
ninefold (9.1 vs 85.4 on a plain sentence), so ``<|endoftext|>`` (id 0) is preferred.
"""

from __future__ import annotations

import contextlib
import io
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from probe import interrupt
from probe.errors import ConfigError, InputError
from probe.measures import Measure, MeasureAggregate, MeasureBatch, ScanBatch, ScanContext, register_measure

MODEL_FIELDS = ("instruction", "input", "response", "whole")
DEFAULT_FIELDS = ("instruction", "response", "whole")  # input is usually empty; whole holds it in context
DOCUMENT_START = "<|endoftext|>"
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
DTYPES = ("float32", "bfloat16", "float16")
INTERPRETATION = (
    "Perplexity and Min-K% Prob under a proxy model: evidence about what that model saw in its own "
    "training data, not about the indexed corpus (unless the model was trained on it). Lower perplexity "
    "and a Min-K% closer to 0 mean the text is more familiar to that model.")
EXTRA_HINT = "install probe[model] (transformers, gguf, accelerate, torch)"


@dataclass(frozen=True)
class ModelOptions:
    """How to load and run the model; read from ``ScanConfig.measure_options["model"]``."""

    path: str  # a local directory with config + weights, or a .gguf file; never a hub id
    device: str = "cpu"  # "cpu", "cuda", "cuda:N" or "auto" (cuda when torch sees one)
    dtype: str = "float32"  # bfloat16 is faster unmasked on CPU but slower with padding masks (SIMILARITY.md)
    k: float = 0.2  # Min-K%: the fraction of least likely tokens averaged (Shi et al.: 20 %)
    max_tokens: int = 512  # per field text, the start token included; longer texts are truncated (counted)
    batch_size: int = 16  # texts per forward pass at most
    batch_tokens: int = 2048  # padded tokens per forward pass at most (the logits are batch × length × vocab)
    fields: tuple[str, ...] = DEFAULT_FIELDS
    start_token: str | int | None = "auto"  # "auto": <|endoftext|> if in the vocabulary, else BOS; None: none

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> ModelOptions:
        """Validated options; unknown keys and bad values are a ConfigError naming the option."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(f"unknown option(s) of the model measure: {', '.join(unknown)}; "
                              f"choose from {', '.join(sorted(known))}")
        if not options.get("path"):
            raise ConfigError("the model measure needs a local model path (model option 'path': a directory "
                              "with config and weights, or a .gguf file)")
        values = dict(options)
        if isinstance(values.get("fields"), str):
            values["fields"] = tuple(f.strip() for f in values["fields"].split(",") if f.strip())
        values["fields"] = tuple(values.get("fields", DEFAULT_FIELDS))
        values["path"] = str(values["path"])
        opts = cls(**values)
        opts._validate()
        return opts

    def _validate(self) -> None:
        bad_fields = [f for f in self.fields if f not in MODEL_FIELDS]
        if bad_fields or not self.fields:
            raise ConfigError(f"model option 'fields' must name some of {', '.join(MODEL_FIELDS)}, "
                              f"got {list(self.fields)}")
        if not (isinstance(self.k, (int, float)) and 0 < self.k <= 1):
            raise ConfigError(f"model option 'k' must be a fraction in (0, 1], got {self.k!r}")
        for name in ("max_tokens", "batch_size", "batch_tokens"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 2:
                raise ConfigError(f"model option {name!r} must be an integer >= 2, got {value!r}")
        if self.dtype not in DTYPES:
            raise ConfigError(f"model option 'dtype' must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if not (self.device in ("cpu", "cuda", "auto") or self.device.startswith("cuda:")):
            raise ConfigError(f"model option 'device' must be cpu, cuda, cuda:N or auto, got {self.device!r}")


@dataclass
class LoadedModel:
    """A causal LM ready to score texts, and what the summary records about it."""

    model: Any
    tokenizer: Any
    device: Any  # torch.device
    path: Path
    source: str  # "directory" or "gguf"
    architecture: str
    parameters: int
    fingerprint: str  # xxh3-128 of the model files' names and bytes
    start_token_id: int | None
    max_positions: int | None
    load_seconds: float

    def describe(self) -> dict[str, Any]:
        return {"path": str(self.path), "source": self.source, "architecture": self.architecture,
                "parameters": self.parameters, "fingerprint": self.fingerprint,
                "start_token_id": self.start_token_id, "device": str(self.device),
                "load_seconds": round(self.load_seconds, 3)}


@dataclass
class TextScores:
    """Per text: scored tokens, perplexity and Min-K% (NaN where a text has no scored token)."""

    tokens: np.ndarray  # int64, tokens whose log-probability was scored
    perplexity: np.ndarray  # float64
    min_k: np.ndarray  # float64, mean log-probability of the k % least likely tokens (<= 0)
    truncated: np.ndarray  # bool, text longer than max_tokens


def _import_backend() -> tuple[Any, Any]:
    try:
        import torch
        import transformers
    except ImportError as e:
        raise ConfigError(f"the model measure needs transformers and torch ({e.name} is missing): "
                          f"{EXTRA_HINT}") from e
    return torch, transformers


def resolve_device(torch: Any, device: str) -> Any:
    """The torch device for ``device``; asking for CUDA where torch sees none is a ConfigError."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"the model measure was asked to run on {device!r}, but torch {torch.__version__} "
                          "sees no CUDA device; run on cpu or install a CUDA build of torch")
    return torch.device(device)


def _model_files(path: Path) -> list[Path]:
    return [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())


def _fingerprint(files: Sequence[Path]) -> str:
    import xxhash

    digest = xxhash.xxh3_128()
    for f in files:
        digest.update(f.name.encode() + b"\0")
        with f.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def _check_local_model(path: Path) -> str:
    """"directory" or "gguf" for a local model path; anything else is refused before transformers sees it."""
    if not path.exists():
        raise ConfigError(f"model path {str(path)!r} does not exist; the model measure loads only a local "
                          "directory (config + weights) or a .gguf file, never a Hugging Face hub id")
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise InputError(str(path), "not a model: expected a .gguf file or a directory with config.json "
                                        "and weights")
        return "gguf"
    if not (path / "config.json").is_file():
        raise InputError(str(path), "not a model directory: it has no config.json (save the model with "
                                    "save_pretrained, or pass a .gguf file)")
    return "directory"


def _check_no_remote_code(path: Path, transformers: Any) -> None:
    """Refuse a config whose model type only its repository's own Python code defines."""
    import json

    config_file = path / "config.json"
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise InputError(str(config_file), f"unreadable model config: {e}") from e
    if not isinstance(config, dict):
        raise InputError(str(config_file), "model config is not a JSON object")
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    model_type = config.get("model_type")
    if model_type not in CONFIG_MAPPING_NAMES:
        why = ("it needs the model repository's own code (auto_map), and probe never enables "
               "trust_remote_code" if "auto_map" in config else "transformers "
               f"{transformers.__version__} does not know this architecture")
        raise InputError(str(config_file), f"model_type {model_type!r} cannot be loaded: {why}")


def _start_token_id(tokenizer: Any, wanted: str | int | None) -> int | None:
    if wanted is None or wanted == "none":
        return None
    if isinstance(wanted, int) and not isinstance(wanted, bool):
        if not 0 <= wanted < len(tokenizer):
            raise ConfigError(f"model option 'start_token' id {wanted} is outside the vocabulary "
                              f"(size {len(tokenizer)})")
        return wanted
    vocab = tokenizer.get_vocab()
    if wanted == "auto":
        if DOCUMENT_START in vocab:
            return int(vocab[DOCUMENT_START])
        return None if tokenizer.bos_token_id is None else int(tokenizer.bos_token_id)
    if wanted not in vocab:
        raise ConfigError(f"model option 'start_token' {wanted!r} is not a token of this model's vocabulary")
    return int(vocab[wanted])


def load_model(options: ModelOptions) -> LoadedModel:
    """Load the causal LM at ``options.path`` (local only, no remote code) onto ``options.device``.

    A path that does not exist is a ConfigError (it may be a hub id, which is refused); a
    path that exists but is not a loadable causal LM is an InputError naming the file.
    """
    path = Path(options.path).expanduser()
    source = _check_local_model(path)
    torch, transformers = _import_backend()
    if source == "gguf":
        try:
            import gguf  # noqa: F401  (transformers needs it for .gguf files)
        except ImportError as e:
            raise ConfigError(f"loading {path} needs the gguf package: {EXTRA_HINT}") from e
    device = resolve_device(torch, options.device)
    started = time.perf_counter()
    if source == "directory":
        _check_no_remote_code(path, transformers)
        where, extra = str(path), {}
    else:
        where, extra = str(path.parent), {"gguf_file": path.name}
    common = {"local_files_only": True, "trust_remote_code": False, **extra}
    try:
        # stderr carries probe's own progress only: the GGUF loader draws a tqdm bar no setting turns off
        # (transformers' logging keeps its own handle on the real stderr, so its warnings still show)
        with contextlib.redirect_stderr(io.StringIO()):
            tokenizer = transformers.AutoTokenizer.from_pretrained(where, **common)
            model, loading = transformers.AutoModelForCausalLM.from_pretrained(
                where, dtype=getattr(torch, options.dtype), output_loading_info=True, **common)
    except Exception as e:  # transformers raises ValueError, OSError, KeyError, … for a bad model
        raise InputError(str(path), f"cannot be loaded as a causal language model: {type(e).__name__}: "
                                    f"{str(e).splitlines()[0] if str(e) else ''}") from e
    missing = sorted(loading.get("missing_keys") or ())
    if missing:  # transformers fills them with random values: scores of a half-random model mean nothing
        raise InputError(str(path), f"the weights lack {len(missing)} of this architecture's tensors "
                                    f"(e.g. {', '.join(missing[:3])}); not a complete causal language model")
    model.to(device)
    model.eval()
    config = model.config
    max_positions = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    return LoadedModel(model=model, tokenizer=tokenizer, device=device, path=path.resolve(), source=source,
                       architecture=str(getattr(config, "model_type", "unknown")),
                       parameters=int(sum(p.numel() for p in model.parameters())),
                       fingerprint=_fingerprint(_model_files(path)),
                       start_token_id=_start_token_id(tokenizer, options.start_token),
                       max_positions=int(max_positions) if max_positions else None,
                       load_seconds=time.perf_counter() - started)


def _padded_batches(lengths: np.ndarray, batch_size: int, batch_tokens: int) -> list[np.ndarray]:
    """Text indices grouped longest first, each group within ``batch_size`` rows and ``batch_tokens`` cells."""
    order = np.argsort(-lengths, kind="stable")
    groups: list[np.ndarray] = []
    start = 0
    while start < len(order):
        longest = max(int(lengths[order[start]]), 1)
        rows = max(1, min(batch_size, batch_tokens // longest))
        groups.append(order[start:start + rows])
        start += rows
    return groups


def score_texts(loaded: LoadedModel, texts: Sequence[str], options: ModelOptions) -> TextScores:
    """Perplexity and Min-K% of each text, in padded batches of similar length (order preserved)."""
    torch, _ = _import_backend()
    limit = options.max_tokens if loaded.max_positions is None else min(options.max_tokens, loaded.max_positions)
    start = [] if loaded.start_token_id is None else [loaded.start_token_id]
    encoded = loaded.tokenizer(list(texts), add_special_tokens=False)["input_ids"] if texts else []
    sequences = [(start + ids)[:limit] if ids else [] for ids in encoded]
    truncated = np.array([len(start) + len(ids) > limit for ids in encoded], bool)
    lengths = np.array([len(s) for s in sequences], np.int64)
    n = len(sequences)
    scored = np.maximum(lengths - 1, 0)
    perplexity = np.full(n, np.nan)
    min_k = np.full(n, np.nan)
    todo = np.flatnonzero(scored > 0)
    for group in _padded_batches(lengths[todo], options.batch_size, options.batch_tokens):
        interrupt.check()  # a scan batch can hold minutes of forward passes: stop between them
        rows = todo[group]
        width = int(lengths[rows].max())
        ids = torch.zeros((len(rows), width), dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, i in enumerate(rows):
            ids[r, :lengths[i]] = torch.tensor(sequences[i])
            mask[r, :lengths[i]] = 1
        with torch.inference_mode():
            logits = loaded.model(input_ids=ids.to(loaded.device),
                                  attention_mask=mask.to(loaded.device)).logits[:, :-1].float()
            targets = ids[:, 1:].to(loaded.device)
            logprobs = (logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
                        - torch.logsumexp(logits, dim=-1)).cpu().numpy().astype(np.float64)
        del logits
        for r, i in enumerate(rows):
            lp = logprobs[r, :scored[i]]
            perplexity[i] = math.exp(-float(lp.mean()))
            k_count = max(1, int(len(lp) * options.k))  # as Shi et al.'s reference code, at least one token
            min_k[i] = float(np.sort(lp)[:k_count].mean())
    return TextScores(scored, perplexity, min_k, truncated)


_LOADED: dict[tuple[Any, ...], LoadedModel] = {}  # one model, reused by the scans of several datasets


def _cached_model(options: ModelOptions) -> LoadedModel:
    key = (str(Path(options.path).expanduser().resolve()), options.device, options.dtype, options.start_token)
    if key not in _LOADED:
        _LOADED.clear()
        _LOADED[key] = load_model(options)
    return _LOADED[key]


@dataclass
class ModelScores:
    """The model measure's payload for one batch: per field, the scores of its texts."""

    fields: dict[str, TextScores]
    seconds: float


class ModelMeasure(Measure):
    """Perplexity and Min-K% Prob per field under a local causal LM (opt-in: it costs ~1 s per example on CPU)."""

    name = "model"
    title = "perplexity and Min-K% Prob under a proxy language model"
    cost = "one forward pass of the model per field (~200 tokens/s on 2 CPU cores for a 135M model)"
    default = False

    def __init__(self) -> None:
        self._options: ModelOptions | None = None
        self._loaded: LoadedModel | None = None

    def model_options(self, ctx: ScanContext) -> ModelOptions:
        if self._options is None:
            self._options = ModelOptions.from_mapping(self.options(ctx))
        return self._options

    def loaded(self, ctx: ScanContext) -> LoadedModel:
        if self._loaded is None:
            self._loaded = _cached_model(self.model_options(ctx))
        return self._loaded

    def unavailable(self, ctx: ScanContext) -> str | None:
        # the scan asks this before it reads or writes anything: a bad model path or a missing extra
        # stops the scan there (the user asked for this measure), it is not an "unavailable" measure
        self.loaded(ctx)
        return None

    def compute(self, batch: ScanBatch, ctx: ScanContext, earlier: dict[str, MeasureBatch]) -> MeasureBatch:
        options = self.model_options(ctx)
        loaded = self.loaded(ctx)
        started = time.perf_counter()
        unique: dict[str, int] = {}  # a field equal to another (whole == instruction) is scored once
        for f in options.fields:
            for text in batch.field_texts[f]:
                unique.setdefault(text, len(unique))
        scores = score_texts(loaded, list(unique), options)
        columns: dict[str, pa.Array] = {}
        per_field: dict[str, TextScores] = {}
        for f in options.fields:
            at = np.array([unique[t] for t in batch.field_texts[f]], np.int64)
            s = TextScores(scores.tokens[at], scores.perplexity[at], scores.min_k[at], scores.truncated[at])
            per_field[f] = s
            absent = s.tokens == 0
            columns[f"model_tokens_{f}"] = pa.array(s.tokens)
            columns[f"model_perplexity_{f}"] = pa.array(s.perplexity, mask=absent)
            columns[f"model_min_k_{f}"] = pa.array(s.min_k, mask=absent)
        return MeasureBatch(columns, ModelScores(per_field, time.perf_counter() - started))

    def aggregate(self, ctx: ScanContext) -> MeasureAggregate:
        return ModelAggregate(self.model_options(ctx), self.loaded(ctx))


def _distribution(values: np.ndarray) -> dict[str, Any]:
    if len(values) == 0:
        return {"mean": None, "quantiles": None}
    qs = np.quantile(values, QUANTILES)
    quantiles = {f"p{round(q * 100)}": float(v) for q, v in zip(QUANTILES, qs, strict=True)}
    return {"mean": float(values.mean()), "quantiles": quantiles}


@dataclass
class _FieldTotals:
    examples: int = 0
    scored: int = 0
    tokens: int = 0
    truncated: int = 0
    perplexity: list[np.ndarray] = field(default_factory=list)
    min_k: list[np.ndarray] = field(default_factory=list)


class ModelAggregate(MeasureAggregate):
    """Per field: the perplexity and Min-K% distributions; overall: the model, its settings and the cost.

    Quantiles are exact, so the per-example values are kept (16 bytes per example and field):
    at ~1 s per example on CPU, a scan of a million examples (days) would hold 48 MB of them.
    """

    def __init__(self, options: ModelOptions, loaded: LoadedModel) -> None:
        self.options = options
        self.loaded = loaded
        self.fields = {f: _FieldTotals() for f in options.fields}
        self.seconds = 0.0

    def add(self, output: MeasureBatch, batch: ScanBatch) -> None:
        payload: ModelScores = output.payload
        self.seconds += payload.seconds
        for f, s in payload.fields.items():
            totals = self.fields[f]
            ok = s.tokens > 0
            totals.examples += len(s.tokens)
            totals.scored += int(ok.sum())
            totals.tokens += int(s.tokens.sum())
            totals.truncated += int(s.truncated.sum())
            totals.perplexity.append(s.perplexity[ok])
            totals.min_k.append(s.min_k[ok])

    def to_dict(self) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        for f, t in self.fields.items():
            ppl = np.concatenate(t.perplexity) if t.perplexity else np.zeros(0)
            mink = np.concatenate(t.min_k) if t.min_k else np.zeros(0)
            fields[f] = {"examples": t.examples, "scored": t.scored, "tokens": t.tokens, "truncated": t.truncated,
                         "perplexity": _distribution(ppl), "min_k": _distribution(mink)}
        tokens = sum(t.tokens for t in self.fields.values())
        examples = max((t.examples for t in self.fields.values()), default=0)
        o = self.options
        return {
            "proxy_model": True,
            "interpretation": INTERPRETATION,
            "model": self.loaded.describe(),
            "settings": {"k": o.k, "max_tokens": o.max_tokens, "dtype": o.dtype, "fields": list(o.fields),
                         "batch_size": o.batch_size, "batch_tokens": o.batch_tokens},
            "fields": fields,
            "cost": {"seconds": round(self.seconds, 3), "tokens": tokens,
                     "tokens_per_s": round(tokens / self.seconds, 1) if self.seconds > 0 else None,
                     "examples_per_s": round(examples / self.seconds, 2) if self.seconds > 0 else None},
        }


register_measure(ModelMeasure, replace=True)  # replace: importing the module twice (a reload) is not a clash
