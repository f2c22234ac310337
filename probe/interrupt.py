"""Stop requests (SIGINT/SIGTERM) recorded where the library's long loops can see them.

The CLI's signal handler raises ``KeyboardInterrupt`` to unwind a command, but Python runs
that handler between bytecodes of whatever the main thread is doing, and when that is a
finalizer (for example pyarrow's ``ParquetWriter.__del__`` run by the garbage collector)
the exception is printed as "Exception ignored" and lost: a build would run on to the end
and exit 0 as if never signalled. So the handler also records the signal here, and loops
call :func:`check` at their safe points (between committed parts, between scan batches),
which re-raises a stop that was received but swallowed. Library callers that install no
handler never record anything, and :func:`check` costs a list test.
"""

from __future__ import annotations

_received: list[int] = []


def record(signum: int) -> None:
    """Note that ``signum`` asked the current command to stop."""
    _received.append(signum)


def reset() -> None:
    """Forget earlier stop requests (a new command starts)."""
    _received.clear()


def requested() -> bool:
    """Whether a stop was requested since the last :func:`reset`."""
    return bool(_received)


def check() -> None:
    """Raise ``KeyboardInterrupt`` if a stop was requested (a safe point of a long loop)."""
    if _received:
        raise KeyboardInterrupt(f"signal {_received[-1]}")
