"""Build an index: shard parts → (parallel) segment files → one snapshot per part.

The coordinator (this process) discovers shards, fingerprints them, plans one task
per shard part that the latest snapshot does not already hold, and runs the tasks in
a process pool. Each task writes a complete, fsynced segment directory and returns
its manifest; the coordinator then commits a snapshot adding it. So:

- a crash at any point loses at most the in-flight parts (orphan segments, removed
  by ``probe index gc``), and re-running converges to the same tables;
- a part counts as done only after its reader reached a verified end of stream
  (the task returns only then);
- committing a part twice is a no-op (checked against the latest snapshot).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import multiprocessing as mp
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from probe import interrupt, kernels
from probe._alloc import tune_allocator
from probe.config import BuildConfig, TextSpec
from probe.errors import ConfigError, IndexWriteError, InputError, ProbeError, WorkerDiedError
from probe.index import format as fmt
from probe.index import side_tables as side
from probe.index.segment import (
    Aggregated,
    aggregate_doc_rows,
    bucket_bounds,
    merge_aggregated,
    write_manifest,
    write_ngram_file,
    write_table_file,
)
from probe.sources.corpus import (
    DocBatch,
    ReaderOptions,
    ShardPart,
    ShardReadStats,
    ShardRef,
    discover_shards,
    fingerprint_shard,
    read_shard,
    shard_parts,
)
from probe.text.tokenizers import Tokenizer

PHASES = ("read", "tokenize", "hash", "aggregate", "write")


@dataclass(frozen=True)
class Task:
    """One unit of work and of commit: a part of a shard."""

    index_root: str
    spec: dict[str, Any]
    shard: ShardRef
    fingerprint: str
    part: ShardPart
    reader: ReaderOptions
    memory_bytes: int  # this task's buffer budget; past it, sorted runs spill to disk
    side_tables: side.SideConfigs = ()  # measure side tables built from this part (probe.index.side_tables)
    ngram: bool = True  # False: the part is indexed already, build only its missing side tables
    expected_docs: int | None = None  # documents the committed part holds (side-only tasks re-read it)

    @property
    def key(self) -> tuple[str, int]:
        return (self.fingerprint, self.part.index)


@dataclass
class BuildResult:
    """What a build did (returned to the CLI, and summarized in snapshot stats)."""

    snapshot: int | None
    shards_total: int
    parts_planned: int
    parts_committed: int
    parts_skipped: int  # already in the index
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (uri, same-content uri already seen)
    failures: list[str] = field(default_factory=list)
    worker_died: bool = False
    docs: int = 0
    tokens: int = 0
    bytes_read: int = 0
    skipped_records: int = 0
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)
    empty_shards: list[str] = field(default_factory=list)  # shards whose parts built here held no document
    index_docs: int = 0  # the whole index after this build (``docs`` counts this build's parts only)
    index_tokens: int = 0
    side_parts_committed: int = 0  # (part, side table) pairs committed by this build
    side_tables: dict[str, dict[str, float]] = field(default_factory=dict)  # name -> parts, rows, bytes, seconds


# --------------------------------------------------------------------------- worker side
class _Buffers:
    """Per-(view, n) row buffers with spilling of aggregated, sorted runs."""

    def __init__(self, keys: list[tuple[str, int]], k: int, bucket_bits: int, spill_dir: Path, budget: int):
        self.keys = keys
        self.k = k
        self.bucket_bits = bucket_bits
        self.spill_dir = spill_dir
        self.budget = budget
        self.rows: dict[tuple[str, int], list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {key: [] for key in keys}
        self.runs: dict[tuple[str, int], list[Path]] = {key: [] for key in keys}
        self.nbytes = 0

    def add(self, key: tuple[str, int], h: np.ndarray, c: np.ndarray, d: np.ndarray) -> None:
        self.rows[key].append((h, c, d))
        self.nbytes += h.nbytes + c.nbytes + d.nbytes

    def over_budget(self) -> bool:
        # aggregation needs ~3x the raw rows (permutation, gathered copies, output)
        return self.nbytes * 4 > self.budget

    def aggregate(self, key: tuple[str, int]) -> Aggregated:
        parts = self.rows[key]
        self.rows[key] = []
        if not parts:
            return merge_aggregated([], self.k, self.bucket_bits)
        h = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
        c = np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
        d = np.concatenate([p[2] for p in parts]) if len(parts) > 1 else parts[0][2]
        return aggregate_doc_rows(h, c, d, self.k, self.bucket_bits)

    def spill(self) -> None:
        """Aggregate every buffer into a sorted run on disk and free the memory."""
        self.spill_dir.mkdir(parents=True, exist_ok=True)
        for key in self.keys:
            agg = self.aggregate(key)
            if not len(agg):
                continue
            run = self.spill_dir / f"run-{key[0]}-{key[1]}-{len(self.runs[key]):05d}"
            run.mkdir()
            for name in ("hashes", "counts", "docs", "samples"):
                np.save(run / f"{name}.npy", getattr(agg, name))
            self.runs[key].append(run)
        self.nbytes = 0

    def sorted_chunks(self, key: tuple[str, int], buckets_per_chunk: int = 16):
        """Yield the final aggregated table for ``key`` in ascending bucket-range chunks."""
        last = self.aggregate(key)
        if not self.runs[key]:
            yield last
            return
        runs = [last] + [
            Aggregated(*(np.load(r / f"{n}.npy", mmap_mode="r") for n in ("hashes", "counts", "docs", "samples")))
            for r in self.runs[key]
        ]
        bounds = [bucket_bounds(np.asarray(r.hashes), self.bucket_bits) for r in runs]
        nb = 1 << self.bucket_bits
        for b0 in range(0, nb, buckets_per_chunk):
            b1 = min(nb, b0 + buckets_per_chunk)
            pieces = []
            for r, bd in zip(runs, bounds, strict=False):
                lo, hi = int(bd[b0]), int(bd[b1])
                if hi > lo:
                    s = r.slice(lo, hi)
                    pieces.append(Aggregated(np.array(s.hashes), np.array(s.counts), np.array(s.docs),
                                             np.array(s.samples)))
            yield merge_aggregated(pieces, self.k, self.bucket_bits)


def _phase_timer(timings: dict[str, float]) -> Callable[[str], contextlib.AbstractContextManager[None]]:
    """``with timer("read"): ...`` adds the block's seconds to ``timings["read"]``."""

    @contextlib.contextmanager
    def timer(phase: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            timings[phase] += time.perf_counter() - t0

    return timer


class _TimedIter:
    """Wrap an iterator and add up the time spent producing its items (for phase timings)."""

    def __init__(self, it: Iterator[Any]) -> None:
        self._it = it
        self.seconds = 0.0

    def __iter__(self) -> _TimedIter:
        return self

    def __next__(self) -> Any:
        t0 = time.perf_counter()
        try:
            return next(self._it)
        finally:
            self.seconds += time.perf_counter() - t0


def run_task(task: Task, progress_queue: Any = None) -> dict[str, Any]:
    """Index one shard part into a new segment directory; return its commit record.

    Runs in a worker process. Raises InputError for bad input (the part is then not
    committed). Nothing it writes is visible until the coordinator commits.
    """
    root = Path(task.index_root)
    spec = fmt.attach_tokenizer(root, TextSpec.from_dict(task.spec))  # the index's own tokenizer copy
    if not task.ngram:
        return _run_side_task(task, root, spec, progress_queue)
    tokenizer = Tokenizer(spec)
    side_tables = side.PartSideTables(spec, task.side_tables)
    keys = [(v, n) for v in spec.views for n in spec.ns]
    seg_id, seg_dir = fmt.new_segment_dir(root)
    seg_rel = f"{fmt.SEGMENT_DIR}/{seg_id}"
    spill_dir = root / "tmp" / seg_id
    buffers = _Buffers(keys, spec.doc_sample_k, spec.bucket_bits, spill_dir, task.memory_bytes)
    stats = ShardReadStats()
    timings = dict.fromkeys(PHASES, 0.0)
    timer = _phase_timer(timings)
    doc_rows: list[np.ndarray] = []
    doc_ids: list[Any] = []
    doc_sources: list[Any] = []
    doc_tokens: list[np.ndarray] = []
    n_docs = 0
    n_tokens = 0
    try:
        _check_unchanged(task.shard)
        batches = read_shard(task.shard, task.reader, stats, task.part)
        while True:
            with timer("read"):
                batch: DocBatch | None = next(batches, None)
            if batch is None:
                break
            for view in spec.views:
                with timer("tokenize"):
                    tb = tokenizer.tokenize(batch.texts, view, with_offsets=bool(side_tables) and view == "surface")
                if side_tables and view == "surface":
                    side_tables.add(side.SideDocs(batch.texts, batch.rows, n_docs, tb))
                with timer("hash"):
                    if view == spec.views[0]:
                        counts = tb.doc_token_counts()
                        doc_tokens.append(counts.astype(np.uint32))
                        n_tokens += int(counts.sum())
                    for n in spec.ns:
                        h, de, _pos = kernels.ngram_hashes(tb.token_hashes, tb.doc_token_ends, n,
                                                           spec.sample_mod)
                        uh, uc, ud = kernels.dedupe_per_doc(h, de, n_docs)
                        buffers.add((view, n), uh, uc, ud)
            doc_rows.append(batch.rows)
            doc_ids.extend(batch.ids if batch.ids is not None else [None] * len(batch.texts))
            doc_sources.extend(batch.sources if batch.sources is not None else [None] * len(batch.texts))
            n_docs += len(batch.texts)
            if progress_queue is not None:
                progress_queue.put((len(batch.texts), int(doc_tokens[-1].sum()), sum(len(t) for t in batch.texts)))
            if buffers.over_budget():
                with timer("aggregate"):
                    buffers.spill()
        _check_unchanged(task.shard)  # the fingerprint was taken before reading: content must not move
        files = []
        ngram_stats: dict[str, dict[str, Any]] = {}
        for view, n in keys:
            agg_timer = _TimedIter(buffers.sorted_chunks((view, n)))
            with timer("write"):
                # streamed chunk by chunk: with spilled runs only one bucket range is merged in memory at a time
                wf = write_ngram_file(root, f"{seg_rel}/{fmt.ngram_file(view, n)}", agg_timer, spec.doc_sample_k,
                                      spec.bucket_bits)
            timings["write"] -= agg_timer.seconds  # the merge ran inside the write: it is aggregation
            timings["aggregate"] += agg_timer.seconds
            files.append({**wf.to_dict(), "view": view, "n": n})
            ngram_stats.setdefault(view, {})[str(n)] = {"rows": wf.rows, "count": wf.extra["count_sum"]}
        with timer("write"):
            rows = np.concatenate(doc_rows) if doc_rows else np.empty(0, np.int64)
            docs_table = pa.table({
                "doc": pa.array(np.arange(n_docs, dtype=np.uint32)),
                "shard": pa.array([task.fingerprint] * n_docs, pa.string()).dictionary_encode(),
                "row": pa.array(rows.astype(np.uint64)),
                "id": pa.array(doc_ids, pa.string()),
                "source": pa.array(doc_sources, pa.string()).dictionary_encode(),
                "tokens": pa.array(np.concatenate(doc_tokens) if doc_tokens else np.empty(0, np.uint32)),
            })
            docs_file = write_table_file(root, f"{seg_rel}/docs.parquet", docs_table)
            side_records = side_tables.write(root, task.fingerprint, task.part.index, n_docs)
            manifest = {
                "segment": seg_id,
                "spec_fingerprint": spec.fingerprint(),
                "files": files,
                "docs_file": docs_file.to_dict(),
                "parts": [{"shard": task.fingerprint, "part": task.part.index}],
                "docs": n_docs,
                "tokens": n_tokens,
            }
            manifest_rel, manifest_digest = write_manifest(root, seg_rel, manifest)
    except BaseException:
        shutil.rmtree(seg_dir, ignore_errors=True)
        side_tables.discard()
        raise
    finally:
        shutil.rmtree(spill_dir, ignore_errors=True)
    return {
        "segment": {"id": seg_id, "manifest": manifest_rel, "manifest_xxh3": manifest_digest, "docs": n_docs,
                    "tokens": n_tokens, "ngrams": ngram_stats},
        "part": {"segment": seg_id, "docs": n_docs, "tokens": n_tokens, "records": stats.records,
                 "bytes": stats.bytes_read, "skipped": stats.skipped, "skipped_reasons": dict(stats.skipped_reasons),
                 "skipped_examples": list(stats.skipped_examples), "blank_lines": stats.blank_lines},
        "timings": timings,
        "side_tables": side_records,
    }


def _run_side_task(task: Task, root: Path, spec: TextSpec, progress_queue: Any) -> dict[str, Any]:
    """Build only the side tables of an already indexed part: read it again, tokenize the surface view once.

    The documents must be the ones the part was indexed with (their ordinals are shared with
    ``docs.parquet``): a different document count (other text column, other bad-record policy)
    is refused, and nothing is committed.
    """
    tokenizer = Tokenizer(spec)
    side_tables = side.PartSideTables(spec, task.side_tables)
    stats = ShardReadStats()
    n_docs = 0
    t0 = time.perf_counter()
    try:
        _check_unchanged(task.shard)
        for batch in read_shard(task.shard, task.reader, stats, task.part):
            tb = tokenizer.tokenize(batch.texts, "surface", with_offsets=True)
            side_tables.add(side.SideDocs(batch.texts, batch.rows, n_docs, tb))
            n_docs += len(batch.texts)
            if progress_queue is not None:
                progress_queue.put((len(batch.texts), tb.num_tokens, sum(len(t) for t in batch.texts)))
        _check_unchanged(task.shard)
        if task.expected_docs is not None and n_docs != task.expected_docs:
            raise InputError(task.shard.uri, f"part {task.part.index} read back as {n_docs:,} documents but the "
                                             f"index holds {task.expected_docs:,} for it: read it with the text "
                                             "column and bad-record policy it was indexed with")
        records = side_tables.write(root, task.fingerprint, task.part.index, n_docs)
    except BaseException:
        side_tables.discard()
        raise
    return {"side_tables": records, "timings": {"side_tables": time.perf_counter() - t0},
            "part": {"docs": 0, "tokens": 0, "bytes": stats.bytes_read, "skipped": 0}}


def _check_unchanged(ref: ShardRef) -> None:
    """Refuse a shard whose size or mtime changed after it was fingerprinted."""
    if "://" in ref.uri:
        return
    try:
        st = os.stat(ref.uri)
    except OSError as e:
        raise InputError(ref.uri, f"shard became unreadable during the build: {e.strerror or e}") from e
    if st.st_size != ref.size or st.st_mtime_ns != ref.mtime_ns:
        raise InputError(ref.uri, "shard was modified while being indexed (size or mtime changed); "
                                  "nothing from it was committed: re-run when it is stable")


_PROGRESS_QUEUE: Any = None


def _init_worker(queue: Any, parent_pid: int | None = None) -> None:
    global _PROGRESS_QUEUE
    _PROGRESS_QUEUE = queue
    if parent_pid is not None:
        _exit_with_parent(parent_pid)
    setup_worker_process()
    # The imported modules' objects live as long as the worker: keep them out of the
    # cyclic collector's generations so its passes stay short during the build.
    gc.freeze()


def setup_worker_process() -> None:
    """Per-process setup of a build worker (local pool or Ray), before its first task."""
    tune_allocator()
    # One thread per worker process: the pool already uses every core, and extra
    # pyarrow/rayon threads only add contention (measured slower, bench/RESULTS.md).
    os.environ.setdefault("RAYON_NUM_THREADS", "1")
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)


def _exit_with_parent(parent_pid: int, interval: float = 0.5) -> None:
    """Exit this worker when the coordinator dies (e.g. ``kill -9``).

    Pool workers hold both ends of their task queue's pipe, so they never see EOF
    and would otherwise sleep forever (or keep writing orphan segments) after the
    coordinator is killed. A daemon thread notices the re-parenting and exits.
    """

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, name="probe-parent-watch", daemon=True).start()


def _run_task_in_worker(task: Task) -> dict[str, Any]:
    return run_task(task, _PROGRESS_QUEUE)


# --------------------------------------------------------------------------- coordinator
def _commit_part(root: Path, spec: TextSpec, task: Task, result: dict[str, Any]) -> int | None:
    """Commit one finished part (and its side tables); a no-op (None) if the part is already committed."""
    if not task.ngram:
        return _commit_side_part(root, task, result)
    while True:
        latest = fmt.latest_snapshot(root) or fmt.Snapshot(number=0, spec_fingerprint=spec.fingerprint())
        if task.key in latest.committed_parts():
            return None  # retried or duplicated task: the first commit wins
        snap = latest.next("build")
        side.record_parts(snap, task.fingerprint, task.part.index, task.side_tables, result.get("side_tables", {}))
        snap.segments.append(result["segment"])
        rec = snap.shards.get(task.fingerprint) or {
            "uri": task.shard.uri, "format": task.shard.format, "size": task.shard.size,
            "mtime_ns": task.shard.mtime_ns, "parts_total": task.part.total, "parts": {},
        }
        rec = {**rec, "parts": {**rec.get("parts", {}), str(task.part.index): result["part"]}}
        snap.shards[task.fingerprint] = rec
        phases = dict(snap.stats.get("phases", {}))
        for name, secs in result["timings"].items():
            phases[name] = round(phases.get(name, 0.0) + secs, 6)
        snap.stats = {**snap.stats, "phases": phases,
                      "columns": {"id": task.reader.id_field, "source": task.reader.source_field}}
        if fmt.commit_snapshot(root, snap):
            return snap.number
        # another writer took this number: rebuild the commit from the new latest


def _commit_side_part(root: Path, task: Task, result: dict[str, Any]) -> int | None:
    """Commit the side tables of an already indexed part; None when every one is committed already."""
    while True:
        latest = fmt.latest_snapshot(root)
        if latest is None or task.key not in latest.committed_parts():
            raise IndexWriteError(f"{root}: part {task.part.index} of {task.shard.uri} vanished from the index "
                                  "while its side tables were built")
        snap = latest.next("add")
        if not side.record_parts(snap, task.fingerprint, task.part.index, task.side_tables,
                                 result.get("side_tables", {})):
            return None
        if fmt.commit_snapshot(root, snap):
            return snap.number


def plan_tasks(
    root: Path, spec: TextSpec, shards: Sequence[ShardRef], config: BuildConfig, latest: fmt.Snapshot | None,
    fingerprint: Callable[[ShardRef], str] = fingerprint_shard, side_tables: side.SideConfigs = (),
) -> tuple[list[Task], int, list[tuple[str, str]]]:
    """Tasks for the parts not yet committed; also (#parts already done, duplicates).

    With ``side_tables``, new parts build them in the same pass, and committed parts that
    lack some of them get a side-only task (counted as done, not as planned n-gram work).
    """
    reader = ReaderOptions(text_field=config.text_field, id_field=config.id_field, source_field=config.source_field,
                           batch_docs=config.batch_docs, batch_bytes=config.batch_bytes,
                           max_record_bytes=config.max_record_bytes, skip_bad_records=config.skip_bad_records)
    done = latest.committed_parts() if latest else set()
    committed_uris = {rec["uri"]: fp for fp, rec in latest.shards.items()} if latest else {}
    seen: dict[str, str] = {}
    duplicates = []
    tasks = []
    skipped = 0
    per_task_memory = max(64 << 20, config.memory_bytes // max(1, config.workers))
    for ref in shards:
        fp = fingerprint(ref)
        if committed_uris.get(ref.uri, fp) != fp:
            raise InputError(ref.uri, f"shard changed since it was indexed (fingerprint {committed_uris[ref.uri]} "
                                      f"in the index, {fp} now); mixing both versions would double-count: "
                                      "build the new content into a new --index")
        if fp in seen:
            duplicates.append((ref.uri, seen[fp]))
            continue
        seen[fp] = ref.uri
        committed = latest.shards.get(fp) if latest else None
        if committed and committed.get("uri") != ref.uri:
            duplicates.append((ref.uri, committed.get("uri")))  # same content, indexed under another path
        parts = shard_parts(ref, config.row_groups_per_part)
        if committed and committed.get("parts_total") != len(parts):
            raise ProbeError(f"{ref.uri}: committed with {committed.get('parts_total')} parts, now {len(parts)}; "
                             "--row-groups-per-part changed? Use the original value.")
        for part in parts:
            if (fp, part.index) in done:
                skipped += 1
                missing = side.missing_for_part(latest, fp, part.index, side_tables)
                if missing:
                    expected = latest.shards[fp]["parts"][str(part.index)]["docs"] if latest else None
                    tasks.append(Task(str(root), spec.to_dict(), ref, fp, part, reader, per_task_memory,
                                      missing, ngram=False, expected_docs=expected))
                continue
            tasks.append(Task(str(root), spec.to_dict(), ref, fp, part, reader, per_task_memory, side_tables))
    # largest first: the pool finishes sooner (LPT scheduling)
    tasks.sort(key=lambda t: -(t.shard.size / max(1, t.part.total)))
    return tasks, skipped, duplicates


def build_index(
    inputs: Sequence[str],
    index_dir: str | Path,
    spec: TextSpec,
    config: BuildConfig | None = None,
    progress: Any = None,
    side_tables: Sequence[side.SideTableRequest] = (),
) -> BuildResult:
    """Add every shard part under ``inputs`` that the index does not hold yet.

    ``side_tables`` names measure side tables (e.g. ``SideTableRequest("minhash")``) to build
    for every part of ``inputs``: in the same pass for new parts, by reading committed parts
    again for the others (see :mod:`probe.index.side_tables`).
    """
    root = fmt.local_index_root(index_dir)
    config = config or BuildConfig()
    if config.executor not in ("local", "ray"):
        raise ConfigError(f"unknown executor {config.executor!r}; choose local or ray")
    started = time.perf_counter()
    spec = spec.with_tokenizer_hash()
    shards = discover_shards(inputs)
    fmt.create_or_check_spec(root, spec)
    with fmt.WriterLock(root):
        _clean_tmp(root)
        latest = fmt.latest_snapshot(root)
        config = _recorded_columns(root, latest, config)
        configs = side.resolve_requests(latest, side_tables, spec)
        tasks, skipped, duplicates = plan_tasks(root, spec, shards, config, latest, side_tables=configs)
        result = BuildResult(snapshot=latest.number if latest else None, shards_total=len(shards),
                             parts_planned=sum(t.ngram for t in tasks), parts_committed=0, parts_skipped=skipped,
                             duplicates=duplicates)
        phases = dict.fromkeys(PHASES, 0.0)
        docs_by_shard: dict[str, int] = {}
        if progress is not None:
            progress.start(total_parts=len(tasks), total_bytes=sum(t.shard.size / t.part.total for t in tasks))

        def on_result(task: Task, res: dict[str, Any]) -> None:
            number = _commit_part(root, spec, task, res)
            _count_side_tables(result, res.get("side_tables", {}), committed=number is not None)
            if not task.ngram:
                if number is not None:
                    result.snapshot = number
                if progress is not None:
                    progress.part_done()
                return
            if number is not None:
                result.snapshot = number
                result.parts_committed += 1
            else:
                result.parts_skipped += 1
            part = res["part"]
            docs_by_shard[task.shard.uri] = docs_by_shard.get(task.shard.uri, 0) + part["docs"]
            result.docs += part["docs"]
            result.tokens += part["tokens"]
            result.bytes_read += part["bytes"]
            result.skipped_records += part["skipped"]
            for name, secs in res["timings"].items():
                phases[name] += secs
            if progress is not None:
                progress.part_done()

        write_failures: list[IndexWriteError] = []

        def on_failure(task: Task, exc: BaseException) -> None:
            if isinstance(exc, BrokenProcessPool):
                result.worker_died = True
            elif isinstance(exc, ProbeError):
                result.failures.append(str(exc))
                if isinstance(exc, IndexWriteError):  # disk full / EIO writing the index, not a bad input
                    write_failures.append(exc)
            else:
                result.failures.append(f"{task.shard.uri} (part {task.part.index}): {type(exc).__name__}: {exc}")
            if progress is not None:
                progress.part_done()

        try:
            if config.executor == "ray":
                from probe.index.ray_executor import run_on_ray

                run_on_ray(tasks, config.workers, config.ray_address, run_task, setup_worker_process, on_result,
                           on_failure, progress)
            elif config.workers <= 1 or len(tasks) <= 1:
                _run_inline(tasks, on_result, on_failure, progress)
            else:
                _run_pool(tasks, config.workers, on_result, on_failure, progress)
        finally:
            if progress is not None:
                progress.stop()
        final = fmt.latest_snapshot(root)
    result.seconds = time.perf_counter() - started
    result.phases = phases
    result.empty_shards = sorted(uri for uri, docs in docs_by_shard.items() if docs == 0)
    if final is not None:
        parts = [p for rec in final.shards.values() for p in rec.get("parts", {}).values()]
        result.index_docs = sum(p["docs"] for p in parts)
        result.index_tokens = sum(p["tokens"] for p in parts)
    if result.worker_died:
        raise WorkerDiedError(
            f"a worker process died while indexing (killed, e.g. by the out-of-memory killer?); "
            f"{result.parts_committed} part(s) were committed and are kept. Re-run the same command to resume, "
            "with a smaller --memory or fewer --workers if memory is short.")
    if result.failures:
        shown = "\n  ".join(result.failures[:20])
        more = f"\n  ... and {len(result.failures) - 20} more" if len(result.failures) > 20 else ""
        failed = f"{len(result.failures)} shard part(s) failed and were not committed"
        if write_failures:  # the index could not be written: exit 4, not "bad input" (3)
            raise IndexWriteError(f"{index_dir}: {failed} ({result.parts_committed} committed; re-run to resume "
                                  f"once the index can be written):\n  {shown}{more}")
        # bad data: running the same build again would fail the same way
        raise InputError(str(index_dir), f"{failed} ({result.parts_committed} committed and kept; fix or remove "
                                         f"the shards named below, or skip bad records, then run the build "
                                         f"again):\n  {shown}{more}")
    return result


def add_side_tables(index_dir: str | Path, requests: Sequence[side.SideTableRequest],
                    config: BuildConfig | None = None, progress: Any = None) -> BuildResult:
    """Build side tables for every part an index already holds, reading its committed shards again.

    The shards must still be where the index recorded them, unchanged (their fingerprints are
    checked); read them with the text column the index was built with (``config.text_field``).
    """
    root = fmt.local_index_root(index_dir)
    spec = fmt.read_spec(root)
    latest = fmt.latest_snapshot(root)
    if latest is None:
        raise ConfigError(f"index {root} has no committed snapshot yet: build it first")
    if not requests:
        raise ConfigError("name at least one side table to add")
    uris = sorted(rec["uri"] for rec in latest.shards.values())
    return build_index(uris, root, spec, config, progress, side_tables=requests)


def _count_side_tables(result: BuildResult, records: dict[str, dict[str, Any]], committed: bool) -> None:
    if not committed:
        return
    for name, rec in records.items():
        agg = result.side_tables.setdefault(name, {"parts": 0, "rows": 0, "bytes": 0, "seconds": 0.0})
        agg["parts"] += 1
        agg["rows"] += sum(rec["rows"].values())
        agg["bytes"] += rec["bytes"]
        agg["seconds"] = round(agg["seconds"] + rec["seconds"], 6)
        result.side_parts_committed += 1


def _recorded_columns(root: Path, latest: fmt.Snapshot | None, config: BuildConfig) -> BuildConfig:
    """The id/source columns the index was built with: used when not given, refused when different.

    Every shard of an index is read with the same columns, so documents of one index never
    mix "has ids" with "has none" (or ids taken from two different columns).
    An index built before columns were recorded has none to compare: the given ones are used.
    """
    recorded = latest.stats.get("columns") if latest is not None else None
    if not isinstance(recorded, dict):
        return config
    given = {"id": config.id_field, "source": config.source_field}
    conflicts = [f"{name} column: index {recorded.get(name)!r} != requested {given[name]!r}"
                 for name in ("id", "source") if given[name] is not None and given[name] != recorded.get(name)]
    if conflicts:
        lines = "\n  ".join(conflicts)
        raise ConfigError(f"index {root} records its documents' columns differently:\n  {lines}\n"
                          "Every shard of an index is read with the same id and source columns: repeat the "
                          "recorded ones (or give none to use them), or build into a new index directory.")
    return dataclasses.replace(config, id_field=recorded.get("id"), source_field=recorded.get("source"))


def _run_inline(tasks, on_result, on_failure, progress) -> None:
    tune_allocator()
    queue = _InlineQueue(progress)
    for task in tasks:
        interrupt.check()  # a stop swallowed by a finalizer during the last part
        try:
            res = run_task(task, queue)
        except (ProbeError, OSError) as e:
            on_failure(task, e)
            continue
        on_result(task, res)


class _InlineQueue:
    def __init__(self, progress: Any) -> None:
        self.progress = progress

    def put(self, item: tuple[int, int, int]) -> None:
        if self.progress is not None:
            self.progress.advance(*item)


def _run_pool(tasks, workers, on_result, on_failure, progress) -> None:
    ctx = mp.get_context("spawn")  # fork after pyarrow/numba threads started is unsafe
    queue = ctx.Queue()
    pending: dict[Future, Task] = {}
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=ctx, initializer=_init_worker,
                             initargs=(queue, os.getpid())) as pool:
        try:
            for task in tasks:
                pending[pool.submit(_run_task_in_worker, task)] = task
            while pending:
                interrupt.check()  # a stop swallowed by a finalizer: workers are stopped below
                done, _ = wait(list(pending), timeout=0.2, return_when=FIRST_COMPLETED)
                _drain(queue, progress)
                for fut in done:
                    task = pending.pop(fut)
                    exc = fut.exception()
                    if exc is not None:
                        on_failure(task, exc)
                    else:
                        on_result(task, fut.result())
            _drain(queue, progress)
        except BaseException:
            # Stop the workers and let the executor fail the pending futures itself (BrokenProcessPool).
            # Cancelling them first races its manager thread, which then cannot set that exception
            # on a cancelled future and prints an InvalidStateError traceback (CPython 3.11).
            for proc in list(getattr(pool, "_processes", {}).values()):
                proc.terminate()
            raise


def _drain(queue: Any, progress: Any) -> None:
    while True:
        try:
            item = queue.get_nowait()
        except Exception:
            return
        if progress is not None:
            progress.advance(*item)


def _clean_tmp(root: Path) -> None:
    """Remove spill directories of earlier (crashed) builds; we hold the writer lock."""
    tmp = root / "tmp"
    if tmp.exists():
        shutil.rmtree(tmp, ignore_errors=True)
