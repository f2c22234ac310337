"""The public API is pinned: adding or removing a name must be a deliberate edit here.

In the style of httpx's tests/test_exported_members.py: the names ``probe`` exports are
exactly the list below, every one of them resolves, ``__all__`` is sorted, and
``import probe`` stays cheap (the scan engine's heavy dependencies load on first use).
"""

from __future__ import annotations

import subprocess
import sys

import probe

# what issue 13 promised the API holds; the rest of __all__ is pinned by the tests below
REQUIRED = {"build_index", "open_index", "scan_dataset", "check_dataset", "TextSpec", "BuildConfig", "ScanConfig",
            "Thresholds", "DatasetOptions", "CheckLimits", "CheckResult", "ScanResult", "GateResult", "ProbeError",
            "ConfigError", "InputError", "ProbeIndexError", "ExitCode", "__version__"}


# the whole public API: a name added to or removed from probe.__all__ must be added or removed here too
PINNED = [
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


def test_all_is_the_pinned_list() -> None:
    assert probe.__all__ == PINNED


def _exposed() -> set[str]:
    """Every public name the module offers: loaded already, or loadable on first access."""
    import types

    names = {name for name, value in vars(probe).items()
             if not name.startswith("_") and not isinstance(value, types.ModuleType)}
    return names | set(probe._EXPORTS) | {"__version__"}


def test_all_is_exactly_what_is_exposed() -> None:
    """Adding or removing a public name without updating __all__ fails here (httpx's rule)."""
    assert set(probe.__all__) == _exposed()


def test_all_is_sorted_and_holds_the_promised_names() -> None:
    assert probe.__all__ == sorted(probe.__all__)
    assert REQUIRED <= set(probe.__all__)
    assert len(probe.__all__) == len(set(probe.__all__))


def test_type_checkers_see_the_same_names() -> None:
    """The TYPE_CHECKING imports (what IDEs and mypy resolve) name exactly the lazy table."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(probe))
    guarded = next(node for node in tree.body if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test))
    imported = {(alias.name, node.module) for node in guarded.body if isinstance(node, ast.ImportFrom)
                for alias in node.names}
    assert imported == set(probe._EXPORTS.items())


def test_every_public_name_resolves_from_its_module() -> None:
    for name in probe.__all__:
        value = getattr(probe, name)
        assert value is not None, name
        if name != "__version__":
            assert value.__module__ == probe._EXPORTS[name], (name, value.__module__)


def test_dir_lists_the_public_names_before_they_load() -> None:
    assert dir(probe) == probe.__all__


def test_unknown_attribute_is_an_attribute_error() -> None:
    try:
        probe.no_such_name  # noqa: B018 - the access is the test
    except AttributeError as e:
        assert "no_such_name" in str(e)
    else:
        raise AssertionError("probe.no_such_name resolved")


def test_exception_tree() -> None:
    """Every error a caller may catch derives from ProbeError; index errors from ProbeIndexError."""
    assert issubclass(probe.ProbeIndexError, probe.ProbeError)
    for name in ("IndexMissingError", "IndexFormatError", "IndexMismatchError", "IndexLockedError",
                 "IndexWriteError"):
        assert issubclass(getattr(probe, name), probe.ProbeIndexError), name
    assert not issubclass(probe.ProbeIndexError, IndexError)  # never confused with the builtin
    assert issubclass(probe.SpecMismatchError, probe.ConfigError)
    for name in probe.__all__:
        value = getattr(probe, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, probe.ProbeError), name


def test_import_is_cheap() -> None:
    """`import probe` (and reading its version and exception classes) loads no heavy dependency."""
    code = ("import sys, probe; probe.ProbeError; probe.ExitCode; print(probe.__version__); "
            "print(','.join(sorted(m for m in ('numpy', 'pyarrow', 'numba', 'duckdb', 'click', 'rich') "
            "if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    version, heavy = out.splitlines()
    assert version and heavy == ""


def test_version_is_the_installed_one() -> None:
    from importlib.metadata import version

    assert probe.__version__ == version("probe")


def test_no_public_name_is_also_a_submodule() -> None:
    """`probe.correlate` the function must not share its name with a module: importing a module
    `probe.correlate` would set the package attribute to the module and shadow the function."""
    import importlib.util

    clashes = [name for name in probe._EXPORTS if importlib.util.find_spec(f"probe.{name}") is not None]
    assert clashes == []
