"""The embedded demo: a corpus and a fine-tuning set that need no download.

``build_demo_corpus`` turns the prose of the installed Python standard library
(docstrings, long comment blocks, the pydoc language reference) into Parquet
shards; ``demo_dataset_path`` points at a small hand-written Alpaca-style set
that quotes some of that prose verbatim, edits or paraphrases some, and is
unrelated to it for the rest. Together they let the README quickstart run the
whole pipeline on any fresh machine, with a known answer per example (the
``category`` field).
"""

from __future__ import annotations

from pathlib import Path

from probe.demo.corpus import build_demo_corpus

__all__ = ["DEMO_CATEGORIES", "build_demo_corpus", "demo_dataset_path"]

# The intended class of each record in finetune.jsonl.
DEMO_CATEGORIES = ("quoted", "edited", "paraphrase", "novel", "template")


def demo_dataset_path() -> Path:
    """Path of the shipped ``finetune.jsonl``.

    A plain path next to this file (not importlib.resources' traversable) because
    every consumer wants a real filesystem path, and the package is installed as
    files (``demo/data/*`` is package data in pyproject.toml), never zipped.
    """
    return Path(__file__).resolve().parent / "data" / "finetune.jsonl"
