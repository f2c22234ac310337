"""Tune glibc malloc for the build's allocation pattern (big, short-lived arrays).

By default glibc serves allocations above 128 KiB-32 MiB with fresh mmap()s and
returns them on free, so every batch pays first-touch page faults again: measured
here that doubles the aggregate stage (see bench/RESULTS.md). Raising the mmap and
trim thresholds keeps freed memory in the heap for reuse. Best effort: a no-op
where glibc's mallopt is unavailable.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3
_INT_MAX = (1 << 31) - 1

_done = False


def tune_allocator() -> bool:
    """Raise glibc's mmap/trim thresholds once per process; return whether it applied."""
    global _done
    if _done:
        return True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        # mallopt takes C ints: a value of 2**32 would wrap to 0 and make glibc trim
        # the heap on every free, the opposite of what is wanted here.
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.mallopt.restype = ctypes.c_int
        ok = bool(libc.mallopt(M_MMAP_THRESHOLD, 1 << 30))
        ok &= bool(libc.mallopt(M_TRIM_THRESHOLD, _INT_MAX))
        ok &= bool(libc.mallopt(M_TOP_PAD, 64 << 20))
    except (OSError, AttributeError):
        return False
    _done = ok
    return ok
