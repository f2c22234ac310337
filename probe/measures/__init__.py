"""Measures: the families of evidence a scan computes per example, as plug-in objects.

A *measure* declares what it needs from the index (n-gram tables to prefetch, side files
that must exist), computes per-example columns for one batch of examples, and
contributes aggregates to ``summary.json`` under ``measures.<name>``. The scan knows
nothing about any one measure: it asks each selected measure for its needs, calls
:meth:`Measure.compute` per batch, appends the columns to ``examples.parquet`` and
folds each batch into the measure's :class:`MeasureAggregate`. The exact n-gram
measure (:mod:`probe.measures.ngram`) is the first implementation; near-duplicate,
embedding, distributional and model-based measures are new modules that call
:func:`register_measure`, not edits to the scan.

A measure that cannot run on an index (a side table it needs is missing) is reported
as unavailable with the reason, never as zeros.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from probe.errors import ConfigError

if TYPE_CHECKING:
    import pyarrow as pa

    from probe.index.reader import IndexReader
    from probe.scan import ScanConfig
    from probe.sources.datasets import Example
    from probe.text.tokenizers import TokenBatch, Tokenizer


@dataclass(frozen=True)
class ScanContext:
    """What stays fixed for a whole scan: the pinned index, its tokenizer and the scan config."""

    reader: IndexReader
    tokenizer: Tokenizer
    config: ScanConfig

    @property
    def ns(self) -> list[int]:
        return sorted(self.reader.spec.ns)

    @property
    def views(self) -> list[str]:
        return ["surface"] + (["pattern"] if "pattern" in self.reader.spec.views else [])


@dataclass(frozen=True)
class ScanBatch:
    """One batch of examples, its field texts and its tokens per view.

    Every field of the batch is tokenized as one document list: field ``SCAN_FIELDS[f]``
    of example ``i`` is document ``f * size + i`` of ``tokens[view]``.
    """

    examples: list[Example]
    field_texts: dict[str, list[str]]
    tokens: dict[str, TokenBatch]

    @property
    def size(self) -> int:
        return len(self.examples)


@dataclass(frozen=True)
class Requirement:
    """What a measure needs from the index."""

    tables: tuple[tuple[str, int, bool], ...] = ()  # (view, n, with doc samples) to prefetch
    side_files: tuple[str, ...] = ()  # paths relative to the index root that must exist


@dataclass
class MeasureBatch:
    """A measure's output for one batch: columns for examples.parquet, plus a typed payload.

    ``payload`` is for the scan's later steps and for other measures (the n-gram measure's
    scores feed the definitions, the verdict and provenance); it is not written anywhere.
    """

    columns: dict[str, pa.Array] = field(default_factory=dict)
    payload: Any = None


class MeasureAggregate(ABC):
    """Summary aggregates of one measure, folded batch by batch (memory bounded by the batch)."""

    @abstractmethod
    def add(self, output: MeasureBatch, batch: ScanBatch) -> None: ...

    @abstractmethod
    def to_dict(self) -> dict[str, Any]: ...


class Measure(ABC):
    """One family of per-example evidence.

    Subclasses set ``name`` (a column prefix and the key under ``summary.measures``), a
    human ``title``, ``estimate`` (True when the values are estimates, e.g. sampled),
    ``cost`` (what one example costs, shown in reports) and ``default`` (computed when
    ``--measures`` is not given).
    """

    name: ClassVar[str]
    title: ClassVar[str]
    cost: ClassVar[str] = ""
    default: ClassVar[bool] = True
    required: ClassVar[bool] = False  # the scan cannot run without it (the verdict reads it)
    first_pass: ClassVar[bool] = False  # observe() every batch of the dataset before the first compute()

    def options(self, ctx: ScanContext) -> Mapping[str, Any]:
        """This measure's entry of ``ScanConfig.measure_options`` (empty when none was given)."""
        return ctx.config.measure_options.get(self.name, {})

    def observe(self, batch: ScanBatch, ctx: ScanContext) -> None:
        """First pass over the whole dataset (only when ``first_pass``): dataset-wide statistics.

        Called for every batch, in order, before any :meth:`compute`; the scan reads and
        tokenizes the dataset twice when a selected measure asks for this.
        """
        return None

    def needs(self, ctx: ScanContext) -> Requirement:
        return Requirement()

    def estimate(self, ctx: ScanContext) -> bool:
        """Whether this scan's values are estimates (e.g. from a sampled index)."""
        return False

    def unavailable(self, ctx: ScanContext) -> str | None:
        """Why this measure cannot run on ``ctx``'s index (None: it can)."""
        root = ctx.reader.root
        missing = [p for p in self.needs(ctx).side_files if not (root / p).exists()]
        if missing:
            return f"the index has no {', '.join(missing)} (build the {self.name} side tables first)"
        return None

    @abstractmethod
    def compute(self, batch: ScanBatch, ctx: ScanContext, earlier: dict[str, MeasureBatch]) -> MeasureBatch:
        """Columns (and payload) for ``batch``; ``earlier`` holds the outputs of measures computed before."""

    @abstractmethod
    def aggregate(self, ctx: ScanContext) -> MeasureAggregate: ...


_REGISTRY: dict[str, Callable[[], Measure]] = {}


def register_measure(factory: Callable[[], Measure], *, name: str | None = None, replace: bool = False) -> None:
    """Make a measure selectable by scans (``factory`` builds a fresh instance per scan)."""
    key = name or factory().name
    if key in _REGISTRY and not replace:
        raise ConfigError(f"a measure named {key!r} is already registered")
    _REGISTRY[key] = factory


def unregister_measure(name: str) -> None:
    _REGISTRY.pop(name, None)


def measure_names() -> tuple[str, ...]:
    _load_builtins()
    return tuple(_REGISTRY)


def create_measures(names: tuple[str, ...] | None) -> list[Measure]:
    """Fresh instances of the named measures (None: every default one), required ones first."""
    _load_builtins()
    if names is not None:
        unknown = [n for n in names if n not in _REGISTRY]
        if unknown:
            raise ConfigError(f"unknown measure(s) {unknown}; choose from {', '.join(_REGISTRY)}")
    made = [f() for f in _REGISTRY.values()]
    chosen = [m for m in made if m.required or (m.name in names if names is not None else m.default)]
    # required measures first, then in the order asked for (registration order for the defaults)
    position = {name: i for i, name in enumerate(names or ())}
    return sorted(chosen, key=lambda m: (not m.required, position.get(m.name, len(position))))


# built-in measures: name → module that registers it (imported on first use; a module's own heavy
# dependencies, e.g. torch for "model", load only when that measure runs)
BUILTIN_MEASURES = {"ngram": "probe.measures.ngram", "model": "probe.measures.model",
                    "minhash": "probe.measures.minhash", "distribution": "probe.measures.distribution"}


def _load_builtins() -> None:
    if "ngram" not in _REGISTRY:
        from probe.measures.ngram import NgramMeasure

        _REGISTRY.setdefault("ngram", NgramMeasure)
    for name, module in BUILTIN_MEASURES.items():
        if name not in _REGISTRY:
            import importlib

            importlib.import_module(module)
