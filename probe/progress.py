"""The one progress helper: rich on stderr, counted in domain units, off when silent.

Library code calls ``start/advance/part_done/stop`` on whatever object it is given
(or nothing), so it never depends on rich or on a terminal. Phase timings go into
snapshot stats, not into prints.
"""

from __future__ import annotations

import sys
import time
from typing import Any


class BuildProgress:
    """Shard parts, documents, tokens and tokens/s of an index build, on stderr."""

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
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
