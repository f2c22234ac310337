"""Shared helpers for the benchmarks in bench/: machine facts, timing, process-tree RSS, RESULTS.md sections.

Nothing here imports probe, so a benchmark can measure probe's import cost if it wants to.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_MD = REPO_ROOT / "bench" / "RESULTS.md"
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


# --------------------------------------------------------------------------- machine facts
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / (1 << 20), 1)
    except OSError:
        pass
    return None


def _version(module: str) -> str:
    try:
        mod = __import__(module)
    except ImportError:
        return "not installed"
    return str(getattr(mod, "__version__", "?"))


def _read_first(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def machine_info() -> dict[str, Any]:
    """Facts that make a number reproducible (or explain why it is not)."""
    return {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "affinity_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": _cpu_model(),
        "ram_gib": _mem_total_gib(),
        "kernel": platform.release(),
        "thp": _read_first("/sys/kernel/mm/transparent_hugepage/enabled"),
        "python": platform.python_version(),
        "numpy": _version("numpy"),
        "pyarrow": _version("pyarrow"),
        "numba": _version("numba"),
        "git_commit": _git_commit(),
    }


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=False)
        dirty = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--", "probe"],
                               capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + (" (probe/ modified)" if dirty.stdout.strip() else "")


# --------------------------------------------------------------------------- machine load
CLK_TCK = os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU-seconds all CPUs spent busy since boot (everything but idle and iowait), from /proc/stat."""
    try:
        v = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return 0.0
    return (sum(v[:8]) - v[3] - v[4]) / CLK_TCK  # user nice system idle iowait irq softirq steal


def own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def wait_for_quiet(max_wait: float = 120.0, threshold: float = 0.15, window: float = 2.0) -> tuple[float, float]:
    """Wait until the machine (other processes: this one is idle meanwhile) uses < ``threshold`` cores.

    Returns (seconds waited, busy cores in the last window). Other sessions may share this VM; a
    benchmark started while they run measures them too.
    """
    t0 = time.perf_counter()
    while True:
        b0 = machine_busy_seconds()
        time.sleep(window)
        busy = (machine_busy_seconds() - b0) / window
        waited = time.perf_counter() - t0
        if busy < threshold or waited >= max_wait:
            return waited, busy


class ForeignLoad:
    """CPU used by other processes during a block: machine busy time minus ours (self + given extra)."""

    def __enter__(self) -> ForeignLoad:
        self._t0 = time.perf_counter()
        self._b0 = machine_busy_seconds()
        self._o0 = own_cpu_seconds()
        self.wall = self.machine = self.own = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._t0
        self.machine = machine_busy_seconds() - self._b0
        self.own = own_cpu_seconds() - self._o0

    def cores(self, extra_own: float = 0.0) -> float:
        """Average cores used by others (``extra_own``: CPU of our children not in os.times yet)."""
        return max(0.0, self.machine - self.own - extra_own) / self.wall if self.wall else 0.0


# --------------------------------------------------------------------------- timing
@dataclass
class Stopwatch:
    """Accumulate wall time over several timed blocks: ``with sw: ...``."""

    seconds: float = 0.0
    _t0: float = 0.0

    def __enter__(self) -> Stopwatch:
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds += time.perf_counter() - self._t0


# --------------------------------------------------------------------------- process tree RSS
def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (via /proc/PID/task/*/children; needs CONFIG_PROC_CHILDREN)."""
    kids: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                kids.extend(int(x) for x in Path(f"/proc/{pid}/task/{task}/children").read_text().split())
    except OSError:
        pass
    return kids


def process_tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(_children(p))
    return out


def rss_bytes(pid: int) -> int:
    """Resident set size of one process (0 if it is gone)."""
    try:
        fields_ = Path(f"/proc/{pid}/statm").read_text().split()
    except OSError:
        return 0
    return int(fields_[1]) * PAGE_SIZE


@dataclass
class TreeSample:
    peak_tree_bytes: int = 0  # max over samples of the summed RSS of the whole tree
    peak_single_bytes: int = 0  # max over samples of any one process's RSS
    peak_processes: int = 0
    samples: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class TreeRssPoller:
    """Poll the RSS of a process and all its descendants every ``interval`` seconds (in a thread).

    ``on_sample`` (optional) is called after each sample, e.g. to look at spill files.
    """

    def __init__(self, pid: int, interval: float = 0.05, on_sample: Any = None) -> None:
        self.pid = pid
        self.interval = interval
        self.on_sample = on_sample
        self.result = TreeSample()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeRssPoller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        r = self.result
        while not self._stop.is_set():
            pids = process_tree(self.pid)
            sizes = [rss_bytes(p) for p in pids]
            total = sum(sizes)
            r.samples += 1
            r.peak_tree_bytes = max(r.peak_tree_bytes, total)
            r.peak_single_bytes = max(r.peak_single_bytes, max(sizes, default=0))
            r.peak_processes = max(r.peak_processes, sum(1 for s in sizes if s))
            if self.on_sample is not None:
                self.on_sample(r)
            self._stop.wait(self.interval)


@dataclass
class ChildRun:
    returncode: int
    wall_seconds: float
    user_seconds: float  # whole tree (the child plus the descendants it reaped)
    sys_seconds: float
    maxrss_single_bytes: int  # wait4 ru_maxrss: the largest single process of the tree
    minor_faults: int
    major_faults: int
    stdout: str
    stderr: str
    tree: TreeSample


def run_measured(cmd: Sequence[str], *, cwd: Path | None = None, env: dict[str, str] | None = None,
                 interval: float = 0.05, on_sample: Any = None) -> ChildRun:
    """Run ``cmd``, polling its process tree's RSS, and collect wait4() resource usage of that tree."""
    with tempfile.TemporaryFile("w+") as out_f, tempfile.TemporaryFile("w+") as err_f:
        t0 = time.perf_counter()
        proc = subprocess.Popen(list(cmd), cwd=cwd, env=env, stdout=out_f, stderr=err_f)
        with TreeRssPoller(proc.pid, interval, on_sample) as poller:
            _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out_f.seek(0)
        err_f.seek(0)
        stdout, stderr = out_f.read(), err_f.read()
    return ChildRun(proc.returncode, wall, ru.ru_utime, ru.ru_stime, ru.ru_maxrss * 1024, ru.ru_minflt,
                    ru.ru_majflt, stdout, stderr, poller.result)


# --------------------------------------------------------------------------- formatting
def fmt_rate(x: float | None) -> str:
    """12.3M / 456k style."""
    if x is None:
        return "—"
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.2f}{suffix}"
    return f"{x:.0f}"


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "—"
    for div, suffix in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if abs(n) >= div:
            return f"{n / div:.2f} {suffix}"
    return f"{n:.0f} B"


def md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def command_line() -> str:
    """The command that is running, relative to the repo root where possible."""
    exe = sys.executable
    with contextlib.suppress(ValueError):
        exe = os.path.relpath(exe, REPO_ROOT)
    script = sys.argv[0]
    with contextlib.suppress(ValueError):
        script = os.path.relpath(os.path.abspath(script), REPO_ROOT)
    return " ".join([exe, script, *sys.argv[1:]])


# --------------------------------------------------------------------------- RESULTS.md sections
_HEADING_RE = re.compile(r"^## ", re.MULTILINE)


def replace_section(text: str, heading: str, body: str) -> str:
    """Replace the ``## heading`` section (up to the next ``## ``) or append it; keep the rest intact."""
    title = f"## {heading}"
    section = f"{title}\n\n{body.strip()}\n"
    lines = text.splitlines(keepends=True)
    start = next((i for i, ln in enumerate(lines) if ln.rstrip() == title), None)
    if start is None:
        if not text.strip():
            return "# Benchmark results\n\n" + section
        return text.rstrip("\n") + "\n\n" + section
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    tail = "".join(lines[end:])
    return "".join(lines[:start]) + section + ("\n" + tail if tail else "")


def write_section(heading: str, body: str, path: Path = RESULTS_MD) -> None:
    old = path.read_text() if path.exists() else ""
    new = replace_section(old, heading, body)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(new)
    os.replace(tmp, path)
