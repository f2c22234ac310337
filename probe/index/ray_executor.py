"""Run build tasks on a Ray cluster when one machine is not enough.

The build's unit of work (one shard part → one uncommitted segment directory) is
the same as with the local process pool; only where it runs changes. Workers write
their segment files straight into the index directory and return the commit
record; this process, which holds the index's writer lock, commits each part as it
finishes, exactly as a local build does. So everything the local build promises
(atomic commits, resume after a crash, one writer) holds unchanged, with one
requirement: **the index directory and local shard paths must be visible at the
same absolute path on every Ray node** (a shared filesystem such as NFS, or shards
on object storage: ``s3://…``, ``gs://…``).

Ray is an optional dependency (``pip install 'probe[ray]'``): imported only here.
This module never imports :mod:`probe.index.build`: the build hands it the task body
and the per-process setup (no import cycle).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from probe.errors import ConfigError, IndexFormatError
from probe.index.segment import manifest_files, read_manifest

_worker_ready = False

RunTask = Callable[[Any, Any], dict[str, Any]]  # (task, progress queue or None) -> commit record


def _run_task_on_ray(run_task: RunTask, setup_worker: Callable[[], None], task: Any) -> dict[str, Any]:
    """Ray task body: per-process setup once (as the local pool's initializer), then the task."""
    global _worker_ready
    if not _worker_ready:
        setup_worker()
        _worker_ready = True
    return run_task(task, None)


def check_segment_visible(root: Path, res: dict[str, Any]) -> None:
    """Refuse to commit a segment this process cannot see (the index is not on a shared filesystem).

    A worker on another node writes into *its* view of the index directory; committing a
    snapshot that points at files missing here would break the index for every reader.
    """
    seg = res["segment"]
    try:
        manifest = read_manifest(root, seg["manifest"], seg.get("manifest_xxh3"))
        for entry in manifest_files(manifest):
            if (root / entry["path"]).stat().st_size != entry["bytes"]:
                raise IndexFormatError(f"{root / entry['path']}: size differs from the worker's manifest")
    except (IndexFormatError, OSError) as e:
        raise ConfigError(
            f"a Ray worker wrote segment {seg['id']} that is not visible (complete) from this machine: {e}. "
            f"With --executor ray the index directory ({root}) must be on a filesystem every node mounts at "
            "the same path; nothing from that part was committed") from e


def run_on_ray(tasks: Sequence[Any], workers: int, address: str | None, run_task: RunTask,
               setup_worker: Callable[[], None], on_result: Callable[[Any, dict[str, Any]], None],
               on_failure: Callable[[Any, BaseException], None], progress: Any = None) -> None:
    """Submit every task to Ray (one CPU each) and hand results to the callbacks as they finish.

    ``run_task(task, None)`` is the task body and ``setup_worker()`` runs once per Ray
    worker process before its first task (both module-level functions: Ray ships them by reference).

    ``address`` None starts a local Ray instance with ``workers`` CPUs (stopped again at the
    end); ``"auto"`` or ``"ray://host:port"`` joins an existing cluster, whose size then
    decides the parallelism. Task errors reach ``on_failure`` as their original exception
    (an InputError names its file and row as usual); a worker or node that dies is reported
    like a dead local worker.
    """
    try:
        import ray
        import ray.exceptions
    except ImportError as e:
        raise ConfigError("--executor ray needs Ray installed: pip install 'probe[ray]'") from e
    started_here = not ray.is_initialized()
    if started_here:
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        if address is None:
            kwargs["num_cpus"] = workers
        try:
            ray.init(address=address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise ConfigError(f"cannot start or reach Ray (address {address or 'local'}): {e}") from e
    remote = ray.remote(num_cpus=1, max_retries=0)(_run_task_on_ray)
    pending: dict[Any, Any] = {}
    try:
        for task in tasks:
            # workers may start elsewhere: every path they open must be absolute
            absolute = dataclasses.replace(task, index_root=str(Path(task.index_root).resolve()))
            pending[remote.remote(run_task, setup_worker, absolute)] = task
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
            for ref in ready:
                task = pending.pop(ref)
                try:
                    res = ray.get(ref)
                except ray.exceptions.RayTaskError as e:
                    on_failure(task, getattr(e, "cause", None) or e)
                    continue
                except ray.exceptions.RayError as e:  # worker/node died, object lost, ...
                    on_failure(task, BrokenProcessPool(f"Ray: {type(e).__name__}: {e}"))
                    continue
                check_segment_visible(Path(task.index_root), res)
                if progress is not None:
                    part = res["part"]
                    progress.advance(part["docs"], part["tokens"], part["bytes"])
                on_result(task, res)
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    finally:
        if started_here:
            ray.shutdown()
