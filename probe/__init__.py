"""probe: what did our model already see in pretraining?

The public Python API (documented in docs/api.md): build a hashed n-gram index of
corpus shards, scan datasets against it, and gate a dataset in CI::

    import probe

    probe.build_index(["shards/"], "indexes/web", probe.TextSpec())
    result = probe.scan_dataset("data/train.jsonl", "indexes/web", "reports/train")

``import probe`` stays cheap (no numpy, pyarrow, numba or duckdb): every name below
is imported from its module on first use (PEP 562), so a CLI ``--help`` or a
notebook that only wants the exception classes pays nothing for the scan engine.
"""

# every module-level helper is private: the public namespace is exactly __all__ (a test checks it)
import importlib as _importlib
import typing as _typing

if _typing.TYPE_CHECKING:  # the names as type checkers and IDEs see them; at run time they load lazily
    from probe.check import CheckLimits, CheckResult, check_dataset
    from probe.config import BuildConfig, TextSpec
    from probe.correlation import CorrelationResult, MeasureCorrelation, correlate
    from probe.definitions import Definition, register_definition
    from probe.diff import DiffResult, diff_scans
    from probe.errors import (
        ConfigError,
        ExitCode,
        IndexFormatError,
        IndexLockedError,
        IndexMismatchError,
        IndexMissingError,
        IndexWriteError,
        InputError,
        NothingAssessableError,
        ProbeError,
        ProbeIndexError,
        SpecMismatchError,
        ThresholdExceeded,
        WorkerDiedError,
    )
    from probe.gate import GateResult
    from probe.index.build import BuildResult, build_index
    from probe.index.reader import open_index
    from probe.measures import Measure, register_measure
    from probe.scan import ScanConfig, ScanResult, scan_dataset
    from probe.scan_output import ScanSummary
    from probe.scoring import Thresholds
    from probe.sources.dataset_model import DatasetOptions

# public name -> the module that defines it (the one place to add a name; __all__ follows)
_EXPORTS: dict[str, str] = {
    # functions
    "build_index": "probe.index.build",
    "open_index": "probe.index.reader",
    "scan_dataset": "probe.scan",
    "check_dataset": "probe.check",
    "correlate": "probe.correlation",
    "diff_scans": "probe.diff",
    # configuration
    "TextSpec": "probe.config",
    "BuildConfig": "probe.config",
    "ScanConfig": "probe.scan",
    "Thresholds": "probe.scoring",
    "DatasetOptions": "probe.sources.dataset_model",
    "CheckLimits": "probe.check",
    # results
    "BuildResult": "probe.index.build",
    "ScanResult": "probe.scan",
    "GateResult": "probe.gate",
    "CheckResult": "probe.check",
    "ScanSummary": "probe.scan_output",
    "CorrelationResult": "probe.correlation",
    "MeasureCorrelation": "probe.correlation",
    "DiffResult": "probe.diff",
    # extending a scan: contamination definitions and measures are registries
    "Definition": "probe.definitions",
    "register_definition": "probe.definitions",
    "Measure": "probe.measures",
    "register_measure": "probe.measures",
    # errors and exit codes
    "ExitCode": "probe.errors",
    "ProbeError": "probe.errors",
    "ConfigError": "probe.errors",
    "SpecMismatchError": "probe.errors",
    "InputError": "probe.errors",
    "ProbeIndexError": "probe.errors",
    "IndexMissingError": "probe.errors",
    "IndexFormatError": "probe.errors",
    "IndexMismatchError": "probe.errors",
    "IndexLockedError": "probe.errors",
    "IndexWriteError": "probe.errors",
    "NothingAssessableError": "probe.errors",
    "WorkerDiedError": "probe.errors",
    "ThresholdExceeded": "probe.errors",
}

__all__ = [
    "BuildConfig",
    "BuildResult",
    "CheckLimits",
    "CheckResult",
    "ConfigError",
    "CorrelationResult",
    "DatasetOptions",
    "Definition",
    "DiffResult",
    "ExitCode",
    "GateResult",
    "IndexFormatError",
    "IndexLockedError",
    "IndexMismatchError",
    "IndexMissingError",
    "IndexWriteError",
    "InputError",
    "Measure",
    "MeasureCorrelation",
    "NothingAssessableError",
    "ProbeError",
    "ProbeIndexError",
    "ScanConfig",
    "ScanResult",
    "ScanSummary",
    "SpecMismatchError",
    "TextSpec",
    "ThresholdExceeded",
    "Thresholds",
    "WorkerDiedError",
    "__version__",
    "build_index",
    "check_dataset",
    "correlate",
    "diff_scans",
    "open_index",
    "register_definition",
    "register_measure",
    "scan_dataset",
]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("probe")
    except PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"


__version__: str  # resolved on first access: reading package metadata costs ~50 ms of every CLI start


def __getattr__(name: str) -> _typing.Any:
    """Import a public name from its module on first access, then cache it here."""
    if name == "__version__":
        globals()[name] = value = _version()
        return value
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'probe' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public API, whether or not a name has been loaded yet (tab completion in a notebook)."""
    return sorted(__all__)
