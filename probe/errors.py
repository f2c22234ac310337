"""The exception tree and the exit-code contract.

Errors are grouped by what the caller should do about them, and each maps to one
stable exit code (documented in the README). Only :func:`exit_code_for` turns an
exception into an exit code, so the CLI has exactly one place that decides.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes: a contract with CI scripts, never renumbered."""

    OK = 0
    THRESHOLD = 1  # a gate (probe check) failed
    USAGE = 2  # bad options or configuration
    INPUT = 3  # an input file (corpus shard or dataset) is unreadable or invalid
    INDEX = 4  # index missing, corrupt, incompatible or locked
    NOTHING_ASSESSABLE = 5  # nothing could be checked: never report that as success
    INTERNAL = 70  # a bug in probe (EX_SOFTWARE); never 1, which CI reads as "gate failed"
    INTERRUPTED = 130  # SIGINT/SIGTERM; the build is resumable
    BROKEN_PIPE = 141  # stdout closed by its reader (`probe ... | head`); 128 + SIGPIPE, as shells report it


class ProbeError(Exception):
    """Base class of every error probe raises on purpose."""

    exit_code: ExitCode = ExitCode.USAGE


class ConfigError(ProbeError):
    """Options or configuration are wrong: fix the command line or the config file."""

    exit_code = ExitCode.USAGE


class SpecMismatchError(ConfigError):
    """A build was asked to add shards with a text spec that differs from the index's."""


class InputError(ProbeError):
    """An input file is unreadable or invalid. The message names the file and location.

    ``path`` is the file, ``location`` a human string such as ``"line 12"`` or
    ``"row 3041"`` (1-based), or ``None`` when the whole file is at fault.
    """

    exit_code = ExitCode.INPUT

    def __init__(self, path: str, message: str, location: str | None = None) -> None:
        self.path = str(path)
        self.location = location
        self.reason = message
        where = f"{self.path}:{location}" if location else self.path
        super().__init__(f"{where}: {message}")

    def __reduce__(self) -> tuple[type, tuple[str, str, str | None]]:
        # raised in build worker processes: must survive pickling back to the coordinator
        # (the default would call InputError(message) and break the whole pool)
        return (type(self), (self.path, self.reason, self.location))


class ProbeIndexError(ProbeError):
    """Base for index problems: missing, corrupt, incompatible or locked."""

    exit_code = ExitCode.INDEX


class IndexMissingError(ProbeIndexError):
    """No index (or no committed snapshot) at the given path."""


class IndexFormatError(ProbeIndexError):
    """An index file is corrupt, truncated, tampered with, or from a newer probe."""


class IndexMismatchError(ProbeIndexError):
    """A query's text spec differs from the index's spec."""


class IndexLockedError(ProbeIndexError):
    """Another writer holds the index lock."""


class IndexWriteError(ProbeIndexError):
    """An index file could not be written (disk full, file too large, I/O error); nothing partial is visible."""


class NothingAssessableError(ProbeError):
    """Nothing in the input could be assessed (all skipped, too short or empty)."""

    exit_code = ExitCode.NOTHING_ASSESSABLE


class WorkerDiedError(ProbeError):
    """A worker process died (killed, out of memory); committed work is kept, re-run resumes."""

    exit_code = ExitCode.INTERNAL


class ThresholdExceeded(ProbeError):
    """A CI gate failed; the reports were still written."""

    exit_code = ExitCode.THRESHOLD


def exit_code_for(exc: BaseException) -> ExitCode:
    """Map any exception to the documented exit code (the only such mapping)."""
    if isinstance(exc, ProbeError):
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    return ExitCode.INTERNAL
