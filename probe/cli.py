"""The command line: the only module that imports click.

Each command parses options, builds a config, calls one library function, renders
the result, and exits with the code :func:`probe.errors.exit_code_for` gives.
stdout carries data (tables, JSON); progress, warnings and errors go to stderr.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from probe import interrupt
from probe.errors import ConfigError, ExitCode, ProbeError, exit_code_for


def _fail(exc: BaseException) -> None:
    code = exit_code_for(exc)
    if code == ExitCode.INTERRUPTED:
        click.echo("interrupted; re-run the same command to resume", err=True)
    elif code == ExitCode.INTERNAL and not isinstance(exc, ProbeError):
        traceback.print_exception(exc, file=sys.stderr)
        click.echo("probe: internal error (a bug): please report it with the traceback above", err=True)
    else:
        click.echo(f"probe: error: {exc}", err=True)
    sys.exit(int(code))


def _terminate(signum: int, frame: Any) -> None:
    """SIGINT/SIGTERM → a clean stop: unwind (locks released, uncommitted parts dropped), exit 130.

    The signal is also recorded (:mod:`probe.interrupt`): raised inside a finalizer, the
    ``KeyboardInterrupt`` is swallowed, and the loops' safe points raise it again.
    """
    interrupt.record(signum)
    raise KeyboardInterrupt(f"signal {signum}")


def _quiet_swallowed_interrupt(previous: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """An unraisable-exception hook that drops the stop raised inside a finalizer.

    Python prints such an exception as "Exception ignored in ..." with a traceback; the stop
    itself is not lost (the handler recorded it and the next safe point raises it again), so
    the user should see the one "interrupted" line, not a traceback from pyarrow's ``__del__``.
    """

    def hook(unraisable: Any) -> None:
        if not (isinstance(unraisable.exc_value, KeyboardInterrupt) and interrupt.requested()):
            previous(unraisable)

    return hook


def _caused_by_interrupt(exc: BaseException) -> bool:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, KeyboardInterrupt):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Map exceptions to the documented exit codes (one place for every command).

    SIGTERM is handled like SIGINT while a command runs, so ``kill``/a CI cancel gets
    exit 130 and a clean unwind instead of an abrupt death by signal.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        previous = {}
        previous_hook = None
        if threading.current_thread() is threading.main_thread():
            interrupt.reset()
            previous = {sig: signal.signal(sig, _terminate) for sig in (signal.SIGINT, signal.SIGTERM)}
            previous_hook = sys.unraisablehook
            sys.unraisablehook = _quiet_swallowed_interrupt(previous_hook)
        try:
            out = func(*args, **kwargs)
            # a signal swallowed after the last safe point (inside a finalizer): the command
            # may have finished, but the caller asked it to stop and must not read "success"
            interrupt.check()
            return out
        except click.exceptions.Exit:
            raise
        except click.ClickException:
            raise
        except BrokenPipeError:
            # whoever read stdout went away (`probe ... | head`): stop quietly, as other CLI tools do
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(ExitCode.BROKEN_PIPE)
        except (ProbeError, KeyboardInterrupt, Exception) as exc:  # noqa: BLE001 - others: a bug, exit 70
            # An interrupt landing inside a C callback (numba, pyarrow) can surface wrapped (a SystemError
            # caused by KeyboardInterrupt) or as the error of whatever it broke: still an interruption.
            _fail(KeyboardInterrupt() if interrupt.requested() or _caused_by_interrupt(exc) else exc)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if previous_hook is not None:
                sys.unraisablehook = previous_hook

    return wrapper


# --------------------------------------------------------------------------- shared options
def index_option(required: bool = True) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option("--index", "index_dir", type=click.Path(file_okay=False, path_type=Path),
                        required=required, help="Index directory (e.g. indexes/NAME).")


def index_argument(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.argument("index_dir", type=click.Path(file_okay=False, path_type=Path))(func)


silent_option = click.option("--silent", is_flag=True, help="No progress output on stderr.")
format_option = click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text",
                             show_default=True, help="Output format on stdout.")


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, allow_nan=False, default=str))


def _existing_tokenizer_rules(index_dir: Path) -> int | None:
    """The tokenizer rules of the index at ``index_dir`` (None when there is none yet, or it is unreadable)."""
    from probe.index import format as fmt

    if not (index_dir / fmt.SPEC_FILE).is_file():
        return None
    try:
        return fmt.read_spec(index_dir).tokenizer_rules
    except Exception:  # noqa: BLE001 - the build itself reports an unreadable index, with its own exit code
        return None


def _ints(text: str, name: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.replace(" ", "").split(",") if x)
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {text!r}", param_hint=name) from None
    if not values:
        raise click.BadParameter("at least one value", param_hint=name)
    return values


# --------------------------------------------------------------------------- root
@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="probe")
def main() -> None:
    """probe: what did our model already see in pretraining?

    Build hashed n-gram indexes of corpus shards (`probe index build`), then scan
    fine-tuning or benchmark datasets against them (`probe scan`, `probe check`).
    """


@main.group()
def index() -> None:
    """Build, inspect, verify and maintain n-gram indexes."""


def side_table_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option("--measure-option", "measure_option", multiple=True, metavar="MEASURE.KEY=VALUE",
                        help="A build option of one measure's side table (repeatable), e.g. "
                             "minhash.chunk_tokens=128; VALUE is read as JSON when it parses.")(func)
    return click.option("--measures", default=None,
                        help="Comma-separated measures whose side tables to build (minhash, distribution).")(func)


@index.command("build")
@click.argument("shards", nargs=-1, required=True)
@index_option()
@click.option("--tokenizer", default="words", show_default=True,
              help="words | chars | hf:PATH/tokenizer.json (a local file; never downloaded).")
@click.option("--normalizer", type=click.Choice(["nfkc_casefold", "nfkc", "none"]), default="nfkc_casefold",
              show_default=True, help="Text normalization before tokenizing.")
@click.option("--n", "ns", default="8,13", show_default=True, help="Comma-separated n-gram sizes.")
@click.option("--views", default="surface", show_default=True,
              help="surface, or surface,pattern to also index the slot-masked pattern view.")
@click.option("--seed", type=int, default=0, show_default=True, help="Hash seed (part of the spec).")
@click.option("--sample-mod", type=int, default=1, show_default=True,
              help="Keep n-grams with hash %% K == 0 (1 = exact; K > 1 = estimates, smaller index).")
@click.option("--doc-sample-k", type=int, default=4, show_default=True,
              help="Document ids kept per n-gram for same-document (joint) checks.")
@click.option("--bucket-bits", type=int, default=8, show_default=True, help="log2 of the number of hash buckets.")
@click.option("--workers", type=int, default=None, help="Worker processes [default: all cores].")
@click.option("--memory", default="4G", show_default=True,
              help="Memory budget for all workers; buffers spill sorted runs to disk beyond it.")
@click.option("--text-column", "--text-field", "text_field", default="text", show_default=True,
              help="Parquet column / JSONL key (dotted path allowed) holding the text.")
@click.option("--id-column", "--id-field", "id_field", default=None,
              help="Document id column/key [default: `id` when the shard has it].")
@click.option("--source-column", "--source-field", "source_field", default=None,
              help="Source label column/key [default: `source` when the shard has it].")
@click.option("--row-groups-per-part", type=int, default=2, show_default=True,
              help="Parquet row groups per task (the unit of parallelism and of resume).")
@click.option("--skip-bad-records", is_flag=True,
              help="Skip (and count) bad records instead of failing the shard (a damaged file still fails).")
@click.option("--max-record-bytes", default="256M", show_default=True,
              help="A line or document larger than this is a bad record.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Where parts are indexed: this machine's cores, or a Ray cluster (pip install 'probe[ray]'; "
                   "the index and local shards must be on a filesystem every node sees at the same path).")
@click.option("--ray-address", default=None,
              help="With --executor ray: 'auto' or ray://HOST:PORT of a running cluster [default: start a "
                   "local Ray with --workers CPUs].")
@side_table_options
@click.option("--tokenizer-rules", type=int, default=None,
              help="Text segmentation rules (1: runs of letters; 2: + CJK/Thai per character; 3: + sentence-initial "
                   "names masked in the pattern view) [default: an existing index's own, else the newest].")
@silent_option
@format_option
@handle_errors
def index_build(shards: tuple[str, ...], index_dir: Path, tokenizer: str, normalizer: str, ns: str, views: str,
                seed: int, sample_mod: int, doc_sample_k: int, bucket_bits: int, workers: int | None, memory: str,
                text_field: str, id_field: str | None, source_field: str | None, row_groups_per_part: int,
                skip_bad_records: bool, max_record_bytes: str, executor: str, ray_address: str | None,
                measures: str | None, measure_option: tuple[str, ...], tokenizer_rules: int | None, silent: bool,
                output_format: str) -> None:
    """Index corpus SHARDS (files, globs, directories) into --index; resumable.

    Only shard parts not yet in the index are processed, so re-running after a
    crash or with new shards adds just what is missing. --measures also builds
    those measures' side tables (in the same pass for new parts; already indexed
    parts of SHARDS are read again).
    """
    from probe.config import BuildConfig, TextSpec, parse_size
    from probe.index.build import build_index
    from probe.progress import BuildProgress

    if tokenizer_rules is None:  # an existing index keeps the rules it was built with; a new one gets the newest
        tokenizer_rules = _existing_tokenizer_rules(index_dir)
    spec = TextSpec(normalizer=normalizer, tokenizer=tokenizer, views=tuple(v.strip() for v in views.split(",")),
                    ns=_ints(ns, "--n"), seed=seed, sample_mod=sample_mod, doc_sample_k=doc_sample_k,
                    bucket_bits=bucket_bits,
                    **({"tokenizer_rules": tokenizer_rules} if tokenizer_rules is not None else {}))
    if workers is not None and workers < 1:
        raise ConfigError("--workers must be >= 1")
    if row_groups_per_part < 1:
        raise ConfigError("--row-groups-per-part must be >= 1")
    config = BuildConfig(workers=workers or os.cpu_count() or 1, memory_bytes=parse_size(memory),
                         skip_bad_records=skip_bad_records, text_field=text_field, id_field=id_field,
                         source_field=source_field, row_groups_per_part=row_groups_per_part,
                         max_record_bytes=parse_size(max_record_bytes), executor=executor,
                         ray_address=ray_address)
    if ray_address is not None and executor != "ray":
        raise ConfigError("--ray-address needs --executor ray")
    progress = BuildProgress(enabled=False if silent else None)
    result = build_index(shards, index_dir, spec, config, progress,
                         side_tables=_side_table_requests(measures, measure_option))
    summary = {
        "index": str(index_dir), "snapshot": result.snapshot, "shards": result.shards_total,
        "parts_committed": result.parts_committed, "parts_already_indexed": result.parts_skipped,
        "duplicate_shards": [{"uri": u, "same_content_as": o} for u, o in result.duplicates],
        "docs": result.docs, "tokens": result.tokens, "bytes": result.bytes_read,
        "index_docs": result.index_docs, "index_tokens": result.index_tokens, "empty_shards": result.empty_shards,
        "skipped_records": result.skipped_records, "seconds": round(result.seconds, 3),
        "tokens_per_second": round(result.tokens / result.seconds) if result.seconds else None,
        "phases": {k: round(v, 3) for k, v in result.phases.items()},
        "side_tables": result.side_tables,
    }
    if output_format == "json":
        _emit_json(summary)
    else:
        click.echo(f"index {index_dir}: snapshot {result.snapshot}; committed {result.parts_committed} part(s), "
                   f"{result.parts_skipped} already indexed; newly indexed {result.docs:,} docs, "
                   f"{result.tokens:,} tokens in {result.seconds:.1f}s; index total {result.index_docs:,} docs, "
                   f"{result.index_tokens:,} tokens")
        _echo_side_tables_built(result.side_tables)
    for uri, other in result.duplicates:
        click.echo(f"  duplicate shard skipped: {uri} has the same content as {other}", err=True)
    if result.skipped_records:
        click.echo(f"  skipped {result.skipped_records:,} bad record(s): see `probe index info {index_dir}`", err=True)
    for uri in result.empty_shards:
        click.echo(f"  warning: {uri} yielded no documents (empty, or every record blank or skipped)", err=True)
    if result.index_docs == 0:
        from probe.errors import NothingAssessableError

        raise NothingAssessableError(f"index {index_dir} holds no documents: nothing was indexed from "
                                     f"{result.shards_total} shard(s), so every scan against it would find "
                                     "nothing; check the shards and their text column")


def _side_table_requests(measures: str | None, measure_option: tuple[str, ...]) -> list[Any]:
    from probe.index.side_tables import SideTableRequest

    names = [m.strip() for m in (measures or "").split(",") if m.strip()]
    options = _measure_options(measure_option)
    stray = sorted(set(options) - set(names))
    if stray:
        raise ConfigError(f"--measure-option given for {', '.join(stray)}, which --measures does not name")
    return [SideTableRequest(name, options.get(name, {})) for name in names]


def _echo_side_tables_built(built: dict[str, dict[str, Any]]) -> None:
    for name, rec in sorted(built.items()):
        click.echo(f"  side table {name}: {rec['parts']} part(s), {rec['rows']:,} rows, {rec['bytes']:,} bytes "
                   f"in {rec['seconds']:.1f}s")


@index.command("add")
@index_argument
@side_table_options
@click.option("--workers", type=int, default=None, help="Worker processes [default: all cores].")
@click.option("--text-column", "--text-field", "text_field", default="text", show_default=True,
              help="Column/key the index was built from (the documents must read back the same).")
@click.option("--row-groups-per-part", type=int, default=2, show_default=True,
              help="The value the index was built with.")
@click.option("--skip-bad-records", is_flag=True, help="Read the shards as the build did with this flag.")
@silent_option
@format_option
@handle_errors
def index_add(index_dir: Path, measures: str | None, measure_option: tuple[str, ...], workers: int | None,
              text_field: str, row_groups_per_part: int, skip_bad_records: bool, silent: bool,
              output_format: str) -> None:
    """Add measure side tables (--measures) to an existing index, re-reading its committed shards; resumable."""
    from probe.config import BuildConfig
    from probe.index.build import add_side_tables
    from probe.progress import BuildProgress

    if not measures:
        raise ConfigError("probe index add needs --measures (e.g. --measures minhash,distribution)")
    if workers is not None and workers < 1:
        raise ConfigError("--workers must be >= 1")
    config = BuildConfig(workers=workers or os.cpu_count() or 1, text_field=text_field,
                         row_groups_per_part=row_groups_per_part, skip_bad_records=skip_bad_records)
    result = add_side_tables(index_dir, _side_table_requests(measures, measure_option), config,
                             BuildProgress(enabled=False if silent else None))
    if output_format == "json":
        _emit_json({"index": str(index_dir), "snapshot": result.snapshot,
                    "side_parts_committed": result.side_parts_committed, "side_tables": result.side_tables,
                    "seconds": round(result.seconds, 3)})
    else:
        click.echo(f"index {index_dir}: snapshot {result.snapshot}; committed {result.side_parts_committed} side "
                   f"table part(s) in {result.seconds:.1f}s")
        _echo_side_tables_built(result.side_tables)


@index.command("info")
@index_argument
@click.option("--snapshot", type=int, default=None, help="Inspect this snapshot instead of the latest.")
@click.option("--top", "top_k", type=int, default=10, show_default=True,
              help="Show the K most frequent n-grams (0 = skip).")
@format_option
@handle_errors
def index_info(index_dir: Path, snapshot: int | None, top_k: int, output_format: str) -> None:
    """Spec, snapshot, shards, docs, tokens, n-gram counts, size and timings of an index."""
    from probe.index.stats import index_info as compute_info
    from probe.report.terminal import render_index_info

    info = compute_info(index_dir, snapshot=snapshot, top_k=top_k)
    if output_format == "json":
        _emit_json(info)
    else:
        render_index_info(info)
        for t in info["side_tables"]:
            click.echo(f"side table {t['name']}: {t['parts']}/{t['parts_total']} parts, "
                       + ", ".join(f"{stem} {rows:,} rows" for stem, rows in sorted(t["rows"].items()))
                       + f", {t['bytes']:,} bytes ({t['bytes_per_token']} per token), built in "
                         f"{t['build_seconds']:.1f}s" + ("" if t["complete"] else " (incomplete: `probe index add`)"))


@index.command("verify")
@index_argument
@click.option("--deep", is_flag=True, help="Also re-hash every file and read every page (checksums).")
@format_option
@handle_errors
def index_verify(index_dir: Path, deep: bool, output_format: str) -> None:
    """Check that every referenced file exists with the right size (and content, with --deep)."""
    from probe.index.maintenance import verify_index

    report = verify_index(index_dir, deep=deep)
    if output_format == "json":
        _emit_json(report.to_dict())
    else:
        status = "OK" if report.ok else "FAILED"
        click.echo(f"{index_dir}: snapshot {report.snapshot}: {status} "
                   f"({report.files_checked} files checked{', deep' if deep else ''})")
        for problem in report.problems:
            click.echo(f"  problem: {problem}")
        for orphan in report.orphans:
            click.echo(f"  unreferenced (remove with `probe index gc`): {orphan}")
    if not report.ok:
        sys.exit(int(ExitCode.INDEX))


@index.command("compact")
@index_argument
@silent_option
@format_option
@handle_errors
def index_compact(index_dir: Path, silent: bool, output_format: str) -> None:
    """Merge all segments into one (bucket by bucket) and commit it as a new snapshot."""
    from probe.index.maintenance import compact_index

    report = compact_index(index_dir)
    if output_format == "json":
        _emit_json(report.to_dict())
    else:
        click.echo(f"{index_dir}: compacted {report.segments_before} segment(s) into "
                   f"{report.segments_after}; snapshot {report.snapshot}")


@index.command("gc")
@index_argument
@click.option("--older-than", default="1h", show_default=True,
              help="Only remove unreferenced files older than this (e.g. 0, 30m, 1h, 2d): protects live writers.")
@click.option("--dry-run", is_flag=True, help="List what would be removed.")
@format_option
@handle_errors
def index_gc(index_dir: Path, older_than: str, dry_run: bool, output_format: str) -> None:
    """Remove segment files no snapshot references (left by crashes or compaction)."""
    from probe.index.maintenance import gc_index, parse_duration

    report = gc_index(index_dir, older_than_seconds=parse_duration(older_than), dry_run=dry_run)
    if output_format == "json":
        _emit_json(report.to_dict())
    else:
        verb = "would remove" if dry_run else "removed"
        click.echo(f"{index_dir}: {verb} {len(report.removed)} unreferenced item(s), {report.bytes:,} bytes")
        for item in report.removed:
            click.echo(f"  {item}")
        if report.kept_young:
            click.echo(f"  kept {len(report.kept_young)} unreferenced segment(s) younger than {older_than}, "
                       f"{report.kept_young_bytes:,} bytes (left by interrupted builds, or being written); "
                       "--older-than 0 removes them when no build is running", err=True)


@index.command("lookup")
@index_argument
@click.argument("text")
@click.option("--n", "n", type=int, default=None, help="n-gram size [default: the index's smallest].")
@click.option("--view", default="surface", show_default=True, help="surface or pattern.")
@format_option
@handle_errors
def index_lookup(index_dir: Path, text: str, n: int | None, view: str, output_format: str) -> None:
    """Show each n-gram of TEXT with its count and document frequency (for debugging)."""
    from probe.index.stats import lookup_text
    from probe.report.terminal import render_lookup

    rows = lookup_text(index_dir, text, n=n, view=view)
    if output_format == "json":
        _emit_json(rows)
    else:
        render_lookup(rows)


def dataset_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by `scan` and `check`: how to read the dataset and what to score."""
    options = [
        click.option("--schema", default=None, help="Force a dataset schema instead of auto-detection."),
        click.option("--field", "field_map", multiple=True, metavar="FIELD=COL",
                     help="Map a column (dotted path allowed) to instruction/input/response; repeatable."),
        click.option("--id-field", default=None, help="Column holding the example id."),
        click.option("--group-by", default=None, help="Column to group results by (task, category, subject)."),
        click.option("--keep-templates", is_flag=True, help="Do not strip chat-template/role markers."),
        click.option("--include-system-prompts", is_flag=True,
                     help="Judge system prompts too, as the input field (left out by default: the same prompt "
                          "on every row dilutes coverage)."),
        click.option("--dataset-kind", type=click.Choice(["auto", "eval", "train"]), default="auto",
                     show_default=True,
                     help="eval: a benchmark (novel items are clean); train: fine-tuning data (novel items are "
                          "to be taught); auto: eval when the path names a split or benchmark (test, dev, val)."),
        click.option("--delimiter", default=None, metavar="CHAR",
                     help="CSV/TSV field separator, e.g. ';' [default: ',' for .csv, tab for .tsv]."),
        click.option("--skip-bad-records", is_flag=True,
                     help="Skip (and count) malformed records instead of stopping at the first one."),
        click.option("--definitions", default=None,
                     help="Comma-separated contamination definitions [default: all the index supports]."),
        click.option("--target-field", type=click.Choice(["whole", "instruction", "input", "response"]),
                     default="whole", show_default=True, help="Field the definitions and verdicts judge."),
        click.option("--max-docs", type=int, default=10, show_default=True,
                     help="Frequency-aware metrics ignore n-grams found in more documents."),
        click.option("--seen", "seen_threshold", type=float, default=0.6, show_default=True,
                     help="Coverage at or above which an example is 'seen'."),
        click.option("--partial", "partial_threshold", type=float, default=0.2, show_default=True,
                     help="Coverage at or above which an example is 'partial' (below: 'novel')."),
        click.option("--batch-size", type=int, default=8192, show_default=True, help="Examples per batch."),
        click.option("--provenance-limit", type=int, default=200, show_default=True,
                     help="Flagged examples whose corpus document is read back for a snippet."),
        click.option("--verify", is_flag=True,
                     help="Re-check flagged matches against the corpus text (rules out hash collisions)."),
        click.option("--measures", default=None,
                     help="Comma-separated measures to compute besides the exact n-gram measure (which always "
                          "runs) [default: every default measure the index supports]."),
        click.option("--measure-option", "measure_option", multiple=True, metavar="MEASURE.KEY=VALUE",
                     help="An option of one measure (repeatable); VALUE is read as JSON when it parses, "
                          "else as text."),
        click.option("--model", "model_path", default=None, metavar="PATH",
                     help="Local causal LM (a directory with config + weights, or a .gguf file) for the "
                          "'model' measure (perplexity, Min-K% Prob); selects that measure. Needs probe[model]."),
        click.option("--device", default=None, metavar="DEVICE",
                     help="Device of the --model measure: cpu, cuda, cuda:N or auto [default: cpu]."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _scan_config(schema: str | None, field_map: tuple[str, ...], id_field: str | None, group_by: str | None,
                 keep_templates: bool, definitions: str | None, target_field: str, max_docs: int,
                 seen_threshold: float, partial_threshold: float, batch_size: int, provenance_limit: int,
                 verify: bool, delimiter: str | None = None, skip_bad_records: bool = False,
                 measures: str | None = None, measure_option: tuple[str, ...] = (),
                 include_system_prompts: bool = False, dataset_kind: str = "auto",
                 model_path: str | None = None, device: str | None = None) -> Any:
    from probe.scan import ScanConfig
    from probe.scoring import Thresholds
    from probe.sources.datasets import DatasetOptions

    pairs = []
    for item in field_map:
        name, sep, col = item.partition("=")
        if not sep or not col or name not in ("instruction", "input", "response"):
            raise ConfigError(f"--field expects instruction=COL, input=COL or response=COL, got {item!r}")
        pairs.append((name, col))
    if not 0 <= partial_threshold <= seen_threshold <= 1:
        raise ConfigError("thresholds must satisfy 0 <= --partial <= --seen <= 1")
    if max_docs < 1:
        raise ConfigError("--max-docs must be >= 1")
    if delimiter in ("\\t", "tab"):  # `--delimiter '\t'` as typed in a shell means a tab
        delimiter = "\t"
    defs = tuple(d.strip() for d in definitions.split(",") if d.strip()) if definitions else None
    if defs is not None and "default" not in defs:
        defs = ("default", *defs)  # the verdict's own definition is always computed
    chosen = tuple(m.strip() for m in measures.split(",") if m.strip()) if measures is not None else None
    options = _measure_options(measure_option)
    if model_path is not None or device is not None or (chosen is not None and "model" in chosen):
        chosen = _with_model_measure(chosen, options, model_path, device)
    return ScanConfig(
        thresholds=Thresholds(max_docs=max_docs, seen=seen_threshold, partial=partial_threshold),
        definitions=defs, target_field=target_field,
        provenance_limit=provenance_limit, verify=verify, measures=chosen,
        measure_options=options, dataset_kind=dataset_kind,
        dataset=DatasetOptions(schema=schema, field_map=tuple(pairs), id_field=id_field, group_by=group_by,
                               strip_templates=not keep_templates, batch_size=batch_size,
                               delimiter=delimiter, skip_bad_records=skip_bad_records,
                               include_system_prompts=include_system_prompts),
    )


def _with_model_measure(chosen: tuple[str, ...] | None, options: dict[str, dict[str, Any]],
                        model_path: str | None, device: str | None) -> tuple[str, ...]:
    """--model/--device → the model measure's options; --model also selects it (beside the defaults)."""
    from probe.measures import create_measures
    from probe.measures import model as _registers_the_model_measure  # noqa: F401

    if device is not None and model_path is None and "path" not in options.get("model", {}):
        raise ConfigError("--device applies to the model measure: give --model PATH too")
    for key, value in (("path", model_path), ("device", device)):
        if value is not None:
            options.setdefault("model", {})[key] = value
    if chosen is None:
        chosen = tuple(m.name for m in create_measures(None))
    return chosen if "model" in chosen else (*chosen, "model")


def _measure_options(items: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """``minhash.threshold=0.5`` → {"minhash": {"threshold": 0.5}} (JSON values where they parse)."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        name, dot, option = key.partition(".")
        if not sep or not dot or not name or not option:
            raise ConfigError(f"--measure-option expects MEASURE.KEY=VALUE, got {item!r}")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        out.setdefault(name, {})[option] = value
    return out


def _config_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    names = ("schema", "field_map", "id_field", "group_by", "keep_templates", "definitions", "target_field",
             "max_docs", "seen_threshold", "partial_threshold", "batch_size", "provenance_limit", "verify",
             "delimiter", "skip_bad_records", "measures", "measure_option", "include_system_prompts",
             "dataset_kind", "model_path", "device")
    return {k: kwargs.pop(k) for k in names}


@main.command("scan")
@click.argument("datasets", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@index_option()
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Report directory (examples.parquet, summary.json) [default: reports/<dataset name>]; "
                   "with several datasets, the parent of one directory per dataset [default: reports].")
@dataset_options
@silent_option
@format_option
@handle_errors
def scan(datasets: tuple[Path, ...], index_dir: Path, out_dir: Path | None, silent: bool, output_format: str,
         **kwargs: Any) -> None:
    """Scan DATASETS against --index: per-example coverage, contamination and verdicts.

    Several datasets are scanned against one pinned snapshot in one process: the
    index is loaded once, so each further dataset costs only its own lookups. They
    run in the order given; on an error the reports already written are kept.
    With --format json, one dataset prints its summary, several print a list.
    """
    from probe.index.reader import open_index
    from probe.report.model import load_report
    from probe.report.terminal import make_console, render_flagged, render_scan_summary
    from probe.scan import scan_dataset

    config = _scan_config(**_config_kwargs(kwargs))
    if len(datasets) == 1:
        out_dirs = [out_dir or _default_report_dir(datasets[0], Path("reports") / _report_name(datasets[0]))]
    else:
        out_dirs = [(out_dir or Path("reports")) / name for name in _report_names(datasets)]
        out_dirs = [_default_report_dir(d, target) for d, target in zip(datasets, out_dirs, strict=True)]
    replaced = _replaced_dataset(datasets[0], out_dir) if out_dir is not None and len(datasets) == 1 else None
    reader = open_index(index_dir)
    summaries = []
    try:
        for dataset, target in zip(datasets, out_dirs, strict=True):
            with _scan_progress(dataset, silent) as progress:
                result = scan_dataset(dataset, index_dir, target, config, progress=progress, reader=reader)
            summaries.append(result.summary.to_dict())
            if replaced is not None:
                click.echo(f"note: replaced the scan of {replaced} in {target}", err=True)
            flagged = load_report(target)
            if output_format != "json":
                render_scan_summary(result.summary)
                render_flagged(flagged)
                click.echo(f"wrote {target / 'examples.parquet'} and {target / 'summary.json'}")
            elif not silent:  # stdout is the JSON document: the people-facing list goes to stderr
                render_flagged(flagged, make_console(file=sys.stderr))
            _warn_unreadable_documents(result.summary)
    finally:
        reader.close()  # stop background index loading at once on an error or interrupt
    if output_format == "json":
        _emit_json(summaries[0] if len(summaries) == 1 else summaries)


def _warn_unreadable_documents(summary: Any) -> None:
    """Say on stderr (once per reason) when flagged examples' corpus documents could not be read back."""
    for reason, count in summary.provenance.unavailable.items():
        click.echo(f"warning: {count:,} flagged example(s) have no corpus snippet and were not verified: "
                   f"{reason} (shard, row, id and source are still reported)", err=True)


def _scan_progress(dataset: Path, silent: bool) -> Any:
    """The scan's progress bar on stderr: off with --silent, and where stderr is not a terminal."""
    from probe.progress import ScanProgress

    return ScanProgress(dataset.name, enabled=False if silent else None)


def _previous_dataset(report_dir: Path) -> str | None:
    """The dataset whose scan ``report_dir`` holds (its summary.json says), or None."""
    try:
        data = json.loads((report_dir / "summary.json").read_text(encoding="utf-8"))
        return str(data["dataset"]["path"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # no scan there (or not one we can read): nothing of another dataset to lose


def _same_dataset(recorded: str, dataset: Path) -> bool:
    if "://" in recorded:
        return recorded == str(dataset)
    return Path(recorded).resolve() == dataset.resolve()


def _default_report_dir(dataset: Path, report_dir: Path) -> Path:
    """A default report directory, unless it holds another dataset's scan (then a ConfigError).

    ``probe scan a/gsm8k/test.jsonl`` and ``probe scan b/mmlu/test.jsonl`` both default to
    reports/test/: the second must not silently replace the first. Re-scanning the same
    dataset into its own directory is what a rerun does, and stays allowed.
    """
    previous = _previous_dataset(report_dir)
    if previous is None or _same_dataset(previous, dataset):
        return report_dir
    suggestion = report_dir.parent / _report_names((Path(previous), dataset))[1]
    raise ConfigError(f"{report_dir} holds the scan of {previous}, not of {dataset}: scanning would overwrite "
                      f"it. Choose another report directory, e.g. --out {suggestion}, or remove {report_dir}")


def _replaced_dataset(dataset: Path, report_dir: Path) -> str | None:
    """The other dataset whose scan an explicit --out replaces (the user named the directory, so it
    may; the caller says so once the scan is written, never silently), or None."""
    previous = _previous_dataset(report_dir)
    return previous if previous is not None and not _same_dataset(previous, dataset) else None


def _report_names(datasets: tuple[Path, ...]) -> list[str]:
    """One distinct report directory name per dataset: names that would collide take
    their parent directories' names (``gsm8k/test.jsonl`` and ``mmlu/test.jsonl``
    become ``gsm8k_test`` and ``mmlu_test``; ``alpaca_5000.jsonl`` stays ``alpaca_5000``)."""
    resolved = [d.resolve() for d in datasets]
    if len(set(resolved)) != len(resolved):
        raise ConfigError("the same dataset is given twice")

    def name(path: Path, depth: int) -> str:
        parents = [p.name for p in path.parents if p.name][:depth][::-1]
        return "_".join([*(_report_name(Path(p)) for p in parents), _report_name(path)])

    depths = [0] * len(resolved)
    while True:
        names = [name(p, d) for p, d in zip(resolved, depths, strict=True)]
        clashing = [i for i, nm in enumerate(names) if names.count(nm) > 1]
        if not clashing:
            return names
        if any(depths[i] >= len(resolved[i].parts) for i in clashing):  # only sanitizing made them equal
            return [f"{nm}_{i + 1}" if i in clashing else nm for i, nm in enumerate(names)]
        for i in clashing:
            depths[i] += 1


def _report_name(dataset: Path) -> str:
    name = dataset.name
    for suffix in (".gz", ".zst", ".jsonl", ".json", ".parquet", ".csv", ".tsv", ".ndjson"):
        name = name.removesuffix(suffix)
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name).strip(".") or "scan"


junit_per_example_option = click.option(
    "--junit-per-example", is_flag=True, help="junit.xml: one testcase per example instead of one per group.")


@main.command("report")
@click.argument("report_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--definition", default="default", show_default=True,
              help="Contamination definition the reports flag and junit.xml fails on.")
@junit_per_example_option
@handle_errors
def report(report_dir: Path, definition: str, junit_per_example: bool) -> None:
    """Render report.html, report.md and junit.xml into REPORT_DIR from its scan output.

    Reads only REPORT_DIR/summary.json and examples.parquet (plus gate.json left by
    `probe check`); needs neither the index nor the dataset. Prints the paths written.
    """
    from probe.report.render import render_reports

    for path in render_reports(report_dir, junit_per_example=junit_per_example, definition=definition).values():
        click.echo(str(path))


@main.command("check")
@click.argument("dataset", type=click.Path(dir_okay=False, path_type=Path))
@index_option()
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Report directory [default: reports/<dataset name>].")
@click.option("--definition", default="default", show_default=True,
              help="Contamination definition the gate counts.")
@click.option("--max-contaminated", default=None,
              help="Fail when MORE examples are contaminated: a count (0 = fail on any) or a percentage of "
                   "assessable examples (e.g. 1%). Exactly at the limit passes. [default: 0, unless "
                   "--min-coverage or --max-new-contaminated is given: then only the limits given apply]")
@click.option("--min-coverage", default=None,
              help="Fail when the mean token coverage of the target field is BELOW this fraction (0.2) or "
                   "percentage (20%). Exactly at the limit passes.")
@click.option("--baseline", type=click.Path(path_type=Path), default=None,
              help="summary.json of an earlier scan (e.g. reports/main/summary.json): list existing ids newly "
                   "contaminated or newly covered, and new rows (ids absent from the baseline) apart.")
@click.option("--max-new-contaminated", type=click.IntRange(min=0), default=None,
              help="With --baseline: fail when more than K existing example ids (ids the baseline has) are "
                   "newly contaminated.")
@click.option("--count-new-rows", is_flag=True,
              help="With --max-new-contaminated: count contaminated new rows (ids absent from the baseline) "
                   "against the limit too.")
@junit_per_example_option
@dataset_options
@silent_option
@format_option
@handle_errors
def check(dataset: Path, index_dir: Path, out_dir: Path | None, definition: str, max_contaminated: str | None,
          min_coverage: str | None, baseline: Path | None, max_new_contaminated: int | None,
          count_new_rows: bool, junit_per_example: bool, silent: bool, output_format: str, **kwargs: Any) -> None:
    """Scan DATASET against --index, write the reports, and gate: exit 1 when a threshold fails.

    With no threshold option, any contaminated example fails (--max-contaminated 0).
    Exit codes: 0 ok, 1 a threshold failed (reports still written), 2 usage/config,
    3 unreadable or invalid dataset, 4 index error, 5 nothing assessable.
    """
    from probe.check import CheckLimits, check_dataset, parse_max_contaminated, parse_min_coverage
    from probe.errors import ThresholdExceeded
    from probe.report.terminal import (
        render_flagged,
        render_gate,
        render_scan_summary,
        workflow_commands_stopped,
    )

    # option errors first, before any work
    if count_new_rows and max_new_contaminated is None:
        raise click.UsageError("--count-new-rows counts new rows against --max-new-contaminated: give it too")
    limits = CheckLimits.gate_by_default(
        _parsed(parse_max_contaminated, max_contaminated, "--max-contaminated"),
        _parsed(parse_min_coverage, min_coverage, "--min-coverage"), max_new_contaminated, count_new_rows)
    config = _scan_config(**_config_kwargs(kwargs))
    from probe.definitions import definition_names

    if definition in definition_names():  # the outcomes say "leaked" under the definition the gate counts
        config = dataclasses.replace(config, outcome_definition=definition)
    replaced = None
    if out_dir is None:
        out_dir = _default_report_dir(dataset, Path("reports") / _report_name(dataset))
    else:
        replaced = _replaced_dataset(dataset, out_dir)
    with _scan_progress(dataset, silent) as progress:
        result = check_dataset(dataset, index_dir, out_dir, config=config, limits=limits, definition=definition,
                               baseline=baseline, junit_per_example=junit_per_example, progress=progress)
    if replaced is not None:
        click.echo(f"note: replaced the scan of {replaced} in {out_dir}", err=True)
    gate = result.gate
    if output_format == "json":
        _emit_json({"passed": result.passed, "gate": gate.to_dict(),
                    "reports": {k: str(v) for k, v in result.reports.items()}, "summary": result.scan.summary.to_dict()})
    else:
        with workflow_commands_stopped():
            render_scan_summary(result.scan.summary, definition=definition)
            render_flagged(result.report)
            render_gate(gate.to_dict())
            _render_new_rows(gate)
        click.echo("wrote " + ", ".join(str(p) for p in result.reports.values()))
    _warn_unreadable_documents(result.scan.summary)
    if not result.passed:
        raise ThresholdExceeded("gate failed: " + "; ".join(gate.reasons))


def _render_new_rows(gate: Any, id_limit: int = 20) -> None:
    """The baseline diff's new rows (ids absent from the baseline), apart from the regressions."""
    from probe.report.terminal import make_console, safe_text

    if not gate.baseline:
        return
    console = make_console()
    counted = "counted against --max-new-contaminated" if gate.new_rows_counted else "not counted"
    for label, count, ids in (("new rows (ids not in the baseline)", gate.new_rows_count, gate.new_rows_ids),
                              (f"new rows contaminated ({counted})", gate.new_rows_contaminated_count,
                               gate.new_rows_contaminated_ids)):
        shown = ", ".join(safe_text(i, 40) for i in ids[:id_limit])
        more = f", … {count - min(id_limit, len(ids)):,} more" if count > min(id_limit, len(ids)) else ""
        console.print(f"  {label}: {count:,}" + (f": {shown}{more}" if count else ""))


def _parsed(parse: Callable[[str], Any], text: str | None, flag: str) -> Any:
    """A limit option's value parsed by the library; a bad one is a usage error naming the flag."""
    if text is None:
        return None
    try:
        return parse(text)
    except ConfigError as e:
        raise click.BadParameter(str(e), param_hint=flag) from None


def _warned_and_emitted(result: Any, output_format: str) -> bool:
    """A result's warnings on stderr; with --format json, the result itself on stdout (True: nothing more)."""
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    if output_format == "json":
        _emit_json(result.to_dict())
        return True
    return False


@main.command("correlate")
@click.argument("scans", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--scores", "scores_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Eval results (JSONL, CSV/TSV, Parquet): `id` or `row` per example (one scan), or `dataset` "
                   "per scan (several), plus numeric score columns (`correct` 0/1, `score`, one per model...).")
@click.option("--score-column", "score_columns", multiple=True,
              help="Score column to correlate (repeatable) [default: every column but the key].")
@click.option("--measure", "measures", multiple=True,
              help="examples.parquet column to correlate (repeatable) [default: coverage, the target field's "
                   "n-gram metrics and longest match, contaminated_default, other measures' columns].")
@click.option("--bootstrap", type=int, default=1000, show_default=True,
              help="Bootstrap resamples for the confidence intervals.")
@click.option("--permutations", type=int, default=1000, show_default=True,
              help="Permutations for Spearman's p-value (0 = none).")
@click.option("--confidence", type=float, default=0.95, show_default=True, help="Confidence level of the intervals.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the resampling (reproducible runs).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where correlation.json/.md/.html go [default: the scan directory; with several scans, the "
                   "first one's parent].")
@format_option
@handle_errors
def correlate_command(scans: tuple[Path, ...], scores_path: Path, score_columns: tuple[str, ...],
                      measures: tuple[str, ...], bootstrap: int, permutations: int, confidence: float, seed: int,
                      out_dir: Path | None, output_format: str) -> None:
    """Does coverage predict performance? Correlate SCANS' measures with eval scores.

    One scan and per-example scores: each measure column against each score column. Several
    scans and one score per dataset: each dataset-level aggregate (mean coverage, share seen,
    share contaminated, means of the measures). Spearman and Kendall (and Pearson) with
    bootstrap intervals, a permutation p-value, the score by measure quartile, and one
    sentence per measure saying whether there is evidence. Exit 0 whatever the finding;
    3 for a score file that does not join (unmatched or repeated ids, non-numeric scores).
    """
    from probe.correlation import correlate, write_correlation
    from probe.report.terminal import make_console, safe_text

    result = correlate(scans, scores_path, score_columns=score_columns or None, measures=measures or None,
                       bootstrap=bootstrap, permutations=permutations, confidence=confidence, seed=seed)
    first = scans[0].parent if scans[0].name == "summary.json" else scans[0]
    target = out_dir or (first if len(scans) == 1 else first.parent)
    written = write_correlation(result, target)
    if _warned_and_emitted(result, output_format):
        return
    console = make_console()
    unit = "examples" if result.mode == "example" else "datasets"
    console.print(f"correlate ({result.mode}): {result.n:,} {unit}, {len(result.measures)} measure(s), "
                  f"{len(result.score_columns)} score column(s)")
    for sentence in result.sentences():
        console.print("  " + safe_text(sentence, 400))
    click.echo("wrote " + ", ".join(str(p) for p in written.values()))


@main.command("diff")
@click.argument("old_scan", type=click.Path(path_type=Path))
@click.argument("new_scan", type=click.Path(path_type=Path))
@click.option("--definition", default="default", show_default=True,
              help="Contamination definition whose flags are compared.")
@click.option("--limit", "row_limit", type=click.IntRange(min=0), default=50, show_default=True,
              help="Changed rows listed in the text output (--format json lists all).")
@format_option
@handle_errors
def diff_command(old_scan: Path, new_scan: Path, definition: str, row_limit: int, output_format: str) -> None:
    """Compare two scans of a dataset (report directories) example by example, matched by id.

    Per group: rows added and removed, newly contaminated, no longer contaminated, became
    covered (verdict seen) or uncovered, coverage changed; then exactly the changed rows.
    Reads only the two scans' summary.json and examples.parquet. Exit 0 whatever changed.
    """
    from probe.diff import CHANGE_KINDS, diff_scans
    from probe.report.terminal import make_console, safe_text

    result = diff_scans(old_scan, new_scan, definition=definition)
    if _warned_and_emitted(result, output_format):
        return
    console = make_console()
    totals = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in result.totals.items())
    console.print(f"{result.old_examples:,} → {result.new_examples:,} examples, {result.matched:,} matched by id, "
                  f"{result.changed:,} changed: {totals}")
    for group, g in result.groups.items():
        if any(g.changes.values()):
            counts = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in g.changes.items() if v)
            console.print(f"  group {safe_text(group or '(none)', 60)}: {counts}")
    for change in result.changes[:row_limit]:
        kinds = ", ".join(k.replace("_", " ") for k in change.kinds if k in CHANGE_KINDS)
        rows = f"row {change.old_row if change.old_row is not None else '—'} → " \
               f"{change.new_row if change.new_row is not None else '—'}"
        verdicts = f"{change.old_verdict or '—'} → {change.new_verdict or '—'}"
        console.print(f"  {safe_text(change.id, 40)} ({rows}): {kinds}; verdict {verdicts}")
    if len(result.changes) > row_limit:
        console.print(f"  … {len(result.changes) - row_limit:,} more (--format json lists all)")


@main.command("demo")
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True,
              help="Where indexes/ and reports/ are created.")
@click.option("--workers", type=int, default=None, help="Worker processes [default: all cores].")
@silent_option
@handle_errors
def demo(root: Path, workers: int | None, silent: bool) -> None:
    """Run the whole pipeline on the embedded default (no download, no ../shared).

    The corpus is the installed Python standard library's docstrings; the dataset
    is a shipped fine-tuning set that quotes some of it.
    """
    from probe.demo import demo_dataset_path
    from probe.demo.pipeline import run_demo
    from probe.index.stats import index_info
    from probe.progress import BuildProgress
    from probe.report.terminal import render_index_info, render_scan_summary

    with _scan_progress(demo_dataset_path(), silent) as scan_progress:
        result = run_demo(root, workers=workers, progress=BuildProgress(enabled=False if silent else None),
                          scan_progress=scan_progress)
    render_index_info(index_info(result["index"], top_k=3))
    render_scan_summary(result["summary"])
    click.echo(f"corpus shards: {result['corpus']}\nindex: {result['index']}\nreports: {result['report_dir']}")
    for name, path in result["reports"].items():
        click.echo(f"  {name}: {path}")


if __name__ == "__main__":  # pragma: no cover
    main()
