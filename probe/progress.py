"""The one progress helper: rich on stderr, counted in domain units, off when silent.

Library code calls ``start/advance/part_done/stop`` (a build) or ``advance`` (a scan)
on whatever object it is given (or nothing), so it never depends on rich or on a
terminal. Phase timings go into snapshot stats, not into prints.
"""

from __future__ import annotations

import sys
import time
from typing import Any


def _shown(enabled: bool | None) -> bool:
    """``None`` = decide by the terminal: a bar only where a person watches stderr (not in CI logs)."""
    return sys.stderr.isatty() if enabled is None else enabled


class BuildProgress:
    """Shard parts, documents, tokens and tokens/s of an index build, on stderr."""

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = _shown(enabled)
        self._progress: Any = None
        self._task: Any = None
        self.docs = 0
        self.tokens = 0
        self.chars = 0
        self._t0 = time.perf_counter()

    def start(self, total_parts: int, total_bytes: float) -> None:
        self._t0 = time.perf_counter()
        if not self.enabled:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("[bold]indexing[/] parts"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[docs]:,} docs · {task.fields[tokens]:,} tokens · {task.fields[rate]}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task("build", total=total_parts, docs=0, tokens=0, rate="")

    def advance(self, docs: int, tokens: int, chars: int = 0) -> None:
        self.docs += docs
        self.tokens += tokens
        self.chars += chars
        if self._progress is not None:
            secs = max(1e-9, time.perf_counter() - self._t0)
            self._progress.update(self._task, docs=self.docs, tokens=self.tokens,
                                  rate=f"{self.tokens / secs / 1e6:.2f} M tokens/s")

    def part_done(self) -> None:
        if self._progress is not None:
            self._progress.advance(self._task)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


class ScanProgress:
    """Examples scanned, n-gram lookups and examples/s of one dataset's scan, on stderr.

    The scan streams its dataset, so the total is not known up front: the bar pulses and
    counts. It starts on the first batch (the scan only calls :meth:`advance`); call
    :meth:`stop` when the scan returns or fails (it is also a context manager).
    """

    def __init__(self, label: str, enabled: bool | None = None, console: Any = None) -> None:
        self.label = label
        self.enabled = _shown(enabled)
        self._console = console
        self._progress: Any = None
        self._task: Any = None
        self.examples = 0
        self.lookups = 0
        self._t0 = time.perf_counter()

    def _start(self) -> None:
        from rich.console import Console
        from rich.markup import escape
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn(f"[bold]scanning[/] {escape(self.label)}"),
            BarColumn(),
            TextColumn("{task.fields[examples]:,} examples · {task.fields[lookups]:,} lookups · {task.fields[rate]}"),
            TimeElapsedColumn(),
            console=self._console or Console(stderr=True),
            transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task("scan", total=None, examples=0, lookups=0, rate="")

    def advance(self, examples: int, lookups: int = 0) -> None:
        self.examples += examples
        self.lookups += lookups
        if not self.enabled:
            return
        if self._progress is None:
            self._start()
        secs = max(1e-9, time.perf_counter() - self._t0)
        self._progress.update(self._task, examples=self.examples, lookups=self.lookups,
                              rate=f"{self.examples / secs:,.0f} examples/s")

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __enter__(self) -> ScanProgress:
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
