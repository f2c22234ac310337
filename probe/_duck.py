"""Private DuckDB helpers: one place that opens connections and wraps errors."""

from __future__ import annotations

import os
from typing import Any


def connect(threads: int | None = None) -> Any:
    """An in-memory DuckDB connection (never a catalog file: readers take no lock).

    The progress bar is off: DuckDB draws it on stdout for queries over ~2 s, which would
    corrupt the JSON a command prints there (stdout carries data only).
    """
    import duckdb

    con = duckdb.connect(":memory:")
    con.execute(f"SET threads = {int(threads or os.cpu_count() or 1)}")
    con.execute("SET enable_progress_bar = false")
    return con
