"""The README's main job on the embedded default: corpus → index → scan → report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from probe.config import BuildConfig, TextSpec
from probe.demo.corpus import build_demo_corpus

DEMO_SPEC = TextSpec(views=("surface", "pattern"), ns=(8, 13))


def run_demo(root: str | Path = ".", workers: int | None = None, progress: Any = None,
             scan_progress: Any = None) -> dict[str, Any]:
    """Build the stdlib corpus and its index, scan the shipped dataset, render the reports.

    Re-running is cheap: the corpus is reused when unchanged and the build adds
    only shard parts the index does not hold. The demo only scans (no gate), so it calls
    :func:`probe.scan.scan_dataset`; ``progress`` follows the build, ``scan_progress`` the scan.
    """
    from probe.demo import demo_dataset_path
    from probe.index.build import build_index
    from probe.report.render import render_reports
    from probe.scan import scan_dataset

    root = Path(root)
    corpus_dir = root / "indexes" / "demo-corpus"
    index_dir = root / "indexes" / "demo"
    report_dir = root / "reports" / "demo"
    shards = build_demo_corpus(corpus_dir)
    discard_outdated_index(index_dir)
    config = BuildConfig(workers=workers) if workers else BuildConfig()
    build = build_index([str(p) for p in shards], index_dir, DEMO_SPEC, config, progress)
    scan = scan_dataset(demo_dataset_path(), index_dir, report_dir, progress=scan_progress)
    reports = render_reports(report_dir)
    return {"corpus": str(corpus_dir), "index": str(index_dir), "build": build, "report_dir": str(report_dir),
            "summary": scan.summary, "reports": {k: str(v) for k, v in reports.items()}}


def discard_outdated_index(index_dir: Path) -> bool:
    """Remove the demo's own index when an older probe wrote it in an older index format.

    The demo index is derived entirely from the demo corpus, so rebuilding it loses
    nothing, while a user's own index is never touched (a build into it is refused
    with a rebuild hint). Returns whether it was removed.
    """
    from probe.index import format as fmt

    try:
        version = json.loads((index_dir / fmt.SPEC_FILE).read_bytes()).get("format_version")
    except (OSError, ValueError, AttributeError):
        return False
    if isinstance(version, int) and version < fmt.FORMAT_VERSION:
        shutil.rmtree(index_dir)
        return True
    return False
