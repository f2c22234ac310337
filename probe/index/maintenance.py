"""Index maintenance: verify, compact, gc.

- ``verify`` checks every file the latest snapshot references (exists, size; with
  ``deep`` also content hash and every Parquet page checksum and sortedness) and
  lists unreferenced files. It never changes anything.
- ``compact`` merges all segments into one, bucket range by bucket range (bounded
  memory), and commits a snapshot that swaps them. Old files stay until ``gc``.
  Measure side tables are keyed by shard part, not by segment: compaction keeps them as
  they are (it does not merge them).
- ``gc`` removes segment directories and spill files that the latest snapshot does
  not reference and that are older than a grace period (so a live writer's
  uncommitted segment is never removed), plus snapshots that referenced them.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from probe.errors import ConfigError, IndexFormatError
from probe.index import format as fmt
from probe.index import side_tables as side
from probe.index.reader import open_index
from probe.index.reports import CompactReport, GcReport, VerifyReport
from probe.index.segment import (
    Aggregated,
    merge_aggregated,
    open_parquet,
    read_ngram_row_groups,
    read_repeated_file,
    row_groups_for_buckets,
    write_manifest,
    write_ngram_file,
    write_table_file,
)


def parse_duration(text: str) -> float:
    """``"0"``, ``"90s"``, ``"30m"``, ``"1h"``, ``"2d"`` → seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not m:
        raise ConfigError(f"cannot parse duration {text!r}; use e.g. 0, 90s, 30m, 1h, 2d")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def _referenced_segment_ids(snapshot: fmt.Snapshot) -> set[str]:
    return {s["id"] for s in snapshot.segments}


def verify_index(path: str | Path, deep: bool = False) -> VerifyReport:
    """Check the latest snapshot's files; return a report (``ok`` false on any problem)."""
    root = fmt.local_index_root(path)
    problems: list[str] = []
    files_checked = 0
    try:
        reader = open_index(root)
        manifests = reader.manifests
    except IndexFormatError as e:
        return VerifyReport(index=str(root), snapshot=None, ok=False, problems=[str(e)], orphans=[],
                            files_checked=0)
    for num in fmt.list_snapshot_numbers(root):
        try:
            fmt.read_snapshot(root, num)
        except IndexFormatError as e:
            problems.append(str(e))
    k = reader.spec.doc_sample_k
    for man in manifests:
        checks: list[tuple[dict[str, Any], str]] = []  # (file entry, kind) in manifest order
        for entry in man["files"]:
            checks.append((entry, "ngram"))
            checks.append((entry["repeated_file"], "repeated"))  # deep: checked with its n-gram file
        checks.append((man["docs_file"], "docs"))
        for entry, kind in checks:
            files_checked += 1
            try:
                pf = open_parquet(root, entry)
                if deep:
                    if fmt.file_digest(root / entry["path"]) != entry["xxh3_128"]:
                        raise IndexFormatError(f"index file {root / entry['path']}: content hash mismatch")
                    if pf.metadata.num_rows != entry["rows"]:
                        raise IndexFormatError(f"index file {root / entry['path']}: {pf.metadata.num_rows} rows, "
                                               f"manifest says {entry['rows']}")
                    if kind == "ngram":
                        # sortedness first: matching the repeated rows to the table's rows relies on it
                        h = read_ngram_row_groups(root, entry, k, columns=["hash"]).hashes
                        if h.shape[0] > 1 and not bool(np.all(h[1:] > h[:-1])):
                            raise IndexFormatError(f"index file {root / entry['path']}: hashes not strictly sorted")
                        del h
                        rh = read_repeated_file(root, entry, k).hashes
                        if rh.shape[0] > 1 and not bool(np.all(rh[1:] > rh[:-1])):
                            raise IndexFormatError(f"index file {root / entry['repeated_file']['path']}: hashes "
                                                   "not strictly sorted")
                        del rh
                        agg = read_ngram_row_groups(root, entry, k)
                        if int(agg.counts.sum()) != entry["count_sum"]:
                            raise IndexFormatError(f"index file {root / entry['path']}: counts sum to "
                                                   f"{int(agg.counts.sum())}, manifest says {entry['count_sum']} "
                                                   "(repeated rows missing or altered)")
                        _check_samples(root, entry, agg, k)
                        del agg
                    elif kind == "docs":
                        pf.read()
            except IndexFormatError as e:
                problems.append(str(e))
            except (pa.ArrowException, OSError) as e:
                problems.append(f"index file {root / entry['path']}: {e}")
    side_problems, side_checked, side_orphans = side.verify_side_tables(root, reader.snapshot, deep)
    problems += side_problems
    files_checked += side_checked
    referenced = _referenced_segment_ids(reader.snapshot)
    orphans = []
    seg_root = root / fmt.SEGMENT_DIR
    if seg_root.is_dir():
        orphans = sorted(str(p.relative_to(root)) for p in seg_root.iterdir() if p.name not in referenced)
    orphans += side_orphans
    return VerifyReport(index=str(root), snapshot=reader.snapshot.number, ok=not problems, problems=problems,
                        orphans=orphans, files_checked=files_checked, deep=deep)


def _check_samples(root: Path, entry: dict[str, Any], agg: Aggregated, k: int) -> None:
    """Every row's sample: min(docs, k) distinct ordinals, ascending, doc0 first."""
    if k == 0 or not len(agg):
        return
    s = agg.samples
    valid = s != np.uint32(0xFFFFFFFF)
    lengths = valid.sum(axis=1)
    expected = np.minimum(agg.docs.astype(np.int64), k)
    ascending = bool(np.all((s[:, 1:] > s[:, :-1]) | ~valid[:, 1:]))
    prefix = bool(np.all(valid[:, :-1] | ~valid[:, 1:]))  # no gap before a valid ordinal
    if not (np.array_equal(lengths, expected) and ascending and prefix):
        raise IndexFormatError(f"index file {root / entry['path']}: doc samples inconsistent with docs "
                               "(expected min(docs, k) ascending ordinals per row)")


def compact_index(path: str | Path, buckets_per_chunk: int = 8) -> CompactReport:
    """Merge every segment of the latest snapshot into a single new segment."""
    root = fmt.local_index_root(path)
    fmt.read_spec(root)  # a missing/foreign directory is IndexMissingError, not a stray LOCK file
    with fmt.WriterLock(root):
        reader = open_index(root)
        snap = reader.snapshot
        manifests = reader.manifests
        before = len(manifests)
        if before <= 1:
            return CompactReport(index=str(root), snapshot=snap.number, segments_before=before,
                                 segments_after=before)
        spec = reader.spec
        k = spec.doc_sample_k
        seg_id, _seg_dir = fmt.new_segment_dir(root)
        seg_rel = f"{fmt.SEGMENT_DIR}/{seg_id}"
        # document ordinals: concatenate docs tables; segment i's ordinals shift by its offset
        doc_tables = [open_parquet(root, m["docs_file"]).read() for m in manifests]
        offsets = np.cumsum([0] + [t.num_rows for t in doc_tables])
        files = []
        for view in spec.views:
            for n in spec.ns:
                entries = [(i, e) for i, m in enumerate(manifests) for e in m["files"]
                           if e["view"] == view and e["n"] == n]
                chunks = _merged_chunks(root, entries, offsets, k, spec.bucket_bits, buckets_per_chunk)
                wf = write_ngram_file(root, f"{seg_rel}/{fmt.ngram_file(view, n)}", chunks, k, spec.bucket_bits)
                files.append({**wf.to_dict(), "view": view, "n": n})
        docs = pa.concat_tables([t.cast(doc_tables[0].schema) for t in doc_tables]).combine_chunks()
        docs = docs.set_column(0, "doc", pa.array(np.arange(docs.num_rows, dtype=np.uint32)))
        docs_file = write_table_file(root, f"{seg_rel}/docs.parquet", docs)
        parts = [p for m in manifests for p in m["parts"]]
        manifest = {"segment": seg_id, "spec_fingerprint": spec.fingerprint(), "files": files,
                    "docs_file": docs_file.to_dict(), "parts": parts, "docs": int(offsets[-1]),
                    "tokens": sum(m["tokens"] for m in manifests), "compacted_from": [m["segment"] for m in manifests]}
        manifest_rel, digest = write_manifest(root, seg_rel, manifest)
        ngram_stats: dict[str, dict[str, Any]] = {}
        for f in files:
            ngram_stats.setdefault(f["view"], {})[str(f["n"])] = {"rows": f["rows"], "count": f["count_sum"]}
        new = snap.next("compact")
        new.segments = [{"id": seg_id, "manifest": manifest_rel, "manifest_xxh3": digest, "docs": int(offsets[-1]),
                         "tokens": manifest["tokens"], "ngrams": ngram_stats}]
        for rec in new.shards.values():
            for p in rec["parts"].values():
                p["segment"] = seg_id
        if not fmt.commit_snapshot(root, new):
            raise IndexFormatError(f"{root}: another writer committed during compaction; re-run compact")
        return CompactReport(index=str(root), snapshot=new.number, segments_before=before, segments_after=1,
                             rows={f"{f['view']}/{f['n']}": f["rows"] for f in files})


def _merged_chunks(root: Path, entries: list[tuple[int, dict[str, Any]]], offsets: np.ndarray, k: int,
                   bucket_bits: int, buckets_per_chunk: int):
    nb = 1 << bucket_bits
    for b0 in range(0, nb, buckets_per_chunk):
        b1 = min(nb, b0 + buckets_per_chunk) - 1
        pieces: list[Aggregated] = []
        for seg_index, entry in entries:
            groups = row_groups_for_buckets(entry, b0, b1)
            if not groups:
                continue
            agg = read_ngram_row_groups(root, entry, k, groups)
            if bucket_bits:
                shift = np.uint64(64 - bucket_bits)
                b = (agg.hashes >> shift).astype(np.int64)
                keep = (b >= b0) & (b <= b1)
                agg = Aggregated(agg.hashes[keep], agg.counts[keep], agg.docs[keep], agg.samples[keep])
            s = agg.samples.copy()
            valid = s != np.uint32(0xFFFFFFFF)
            s[valid] += np.uint32(offsets[seg_index])
            pieces.append(Aggregated(agg.hashes, agg.counts, agg.docs, s))
        yield merge_aggregated(pieces, k, bucket_bits)


def gc_index(path: str | Path, older_than_seconds: float = 3600.0, dry_run: bool = False) -> GcReport:
    """Remove unreferenced segments/temp files older than the grace period.

    Younger unreferenced segments are kept (a live writer's uncommitted segment looks
    just like a crashed one's) and listed in ``kept_young`` with their size in
    ``kept_young_bytes``, so a report of "removed 0" never hides them.
    """
    root = fmt.local_index_root(path)
    fmt.read_spec(root)  # a missing/foreign directory is IndexMissingError, not a stray LOCK file
    with fmt.WriterLock(root):
        snap = fmt.latest_snapshot(root)
        referenced = _referenced_segment_ids(snap) if snap else set()
        cutoff = time.time() - older_than_seconds
        removed: list[str] = []
        total = 0
        seg_root = root / fmt.SEGMENT_DIR
        gone: set[str] = set()
        kept_young: list[str] = []
        kept_bytes = 0
        side_referenced = side.referenced_dirs(snap)
        candidates = [p for p in sorted(seg_root.iterdir()) if p.name not in referenced] if seg_root.is_dir() else []
        candidates += [p for p in side.existing_dirs(root) if str(p.relative_to(root)) not in side_referenced]
        for p in candidates:
            size = sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
            if p.stat().st_mtime > cutoff:
                kept_young.append(str(p.relative_to(root)))
                kept_bytes += size
                continue
            total += size
            removed.append(str(p.relative_to(root)))
            gone.add(p.name if p.parent == seg_root else str(p.relative_to(root)))
            if not dry_run:
                shutil.rmtree(p)
        # older snapshots that referenced removed segments can no longer be read
        for num in fmt.list_snapshot_numbers(root):
            if snap is not None and num == snap.number:
                continue
            sp = root / fmt.SNAPSHOT_DIR / fmt.snapshot_name(num)
            try:
                old = fmt.read_snapshot(root, num)
            except IndexFormatError:
                continue
            if (_referenced_segment_ids(old) | side.referenced_dirs(old)) & gone:
                removed.append(str(sp.relative_to(root)))
                total += sp.stat().st_size
                if not dry_run:
                    sp.unlink()
        for tmp in list((root / fmt.SNAPSHOT_DIR).glob(f"{fmt.TMP_PREFIX}*")) + list(root.glob(f"{fmt.TMP_PREFIX}*")):
            if tmp.stat().st_mtime <= cutoff:
                removed.append(str(tmp.relative_to(root)))
                total += tmp.stat().st_size
                if not dry_run:
                    tmp.unlink()
        if not dry_run and removed:
            fmt.fsync_dir(seg_root)
    return GcReport(index=str(root), removed=removed, bytes=total, dry_run=dry_run, kept_young=kept_young,
                    kept_young_bytes=kept_bytes, older_than_seconds=older_than_seconds)


__all__ = ["compact_index", "gc_index", "parse_duration", "verify_index", "pq"]
