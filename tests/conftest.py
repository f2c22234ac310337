"""Shared fixtures: synthetic corpora, ../shared/data, a subprocess runner, hypothesis profiles."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import Corpus, run_probe, write_corpus  # noqa: E402

settings.register_profile("ci", max_examples=50, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("nightly", max_examples=2000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=10, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    """A few hundred synthetic documents in 2 Parquet (4 + 3 row groups) and 2 JSONL(.gz) shards.

    Session-scoped and shared: never modify these files (copy them first).
    """
    return write_corpus(tmp_path_factory.mktemp("corpus"), seed=0)


@pytest.fixture
def small_corpus(tmp_path: Path) -> Corpus:
    """A fresh, modifiable small corpus in this test's tmp_path."""
    return write_corpus(tmp_path / "corpus", seed=1,
                        sizes=[("a.parquet", 40), ("b.jsonl", 20)], row_group_size=20)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` next to the project checkout, or skip when it is absent."""
    path = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not path.is_dir():
        pytest.skip(f"shared data not found at {path}")
    return path


@pytest.fixture
def probe_cli():
    """``run_probe`` as a fixture (``python -m probe ...`` in a subprocess)."""
    return run_probe
