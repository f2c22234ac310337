"""One outcome per example: coverage and contamination reconciled into what to *do* with it.

The ``verdict`` is a coverage label only (how much of the example the corpus covers); the
``contaminated_<definition>`` columns are published rules, each on its own. Read side by side
they can contradict each other: an MMLU item can be contaminated (a rare 20-token span is in
the corpus) and ``novel`` (that span is under 20 % of its tokens). The outcome is the one
answer, decided in this order:

1. ``unassessable``: the target field has fewer tokens than the smallest n. Never clean.
2. ``leaked``: contaminated under the outcome definition (``default`` unless configured),
   except when the flag rests only on instruction and response matched in *different*
   corpus documents (the joint check, ``joint_same_doc`` false and exact, and no single field
   flagged on its own): WIMBD's definition needs all of an example's fields in one document,
   so two halves seen apart are not a leaked pair. Those fall through to rule 3.
3. ``seen`` / ``partial`` from the verdict's coverage tiers, but only when at least one
   matched n-gram is *rare* (in ≤ ``max_docs`` documents, either view): matches made only
   of boilerplate (rare token coverage 0) do not raise an example above ``novel``.
4. ``novel``: everything else.

What to do with each depends on what the dataset is (``DATASET_KINDS``): fine-tuning data
(``train``) or an evaluation set (``eval``); :data:`ACTIONS` says it in words, and for an
eval set a ``novel`` item is *clean*, not something to teach.
"""

from __future__ import annotations

import re
from pathlib import PurePath

import numpy as np

from probe.errors import ConfigError
from probe.scan_output import DATASET_KINDS, OUTCOMES

KIND_CHOICES = ("auto", *DATASET_KINDS)

# words of a dataset's path that name an evaluation split or a benchmark (auto kind)
_EVAL_WORDS = frozenset({"test", "tests", "dev", "val", "valid", "validation", "eval", "evals", "evaluation",
                         "benchmark", "benchmarks", "bench", "heldout"})

ACTIONS: dict[str, dict[str, tuple[str, str]]] = {
    # kind → outcome → (label as the reports show it, what to do)
    "train": {
        "leaked": ("leaked", "already in the pretraining corpus: deduplicate it against the corpus (and drop it "
                             "if it is an eval item)"),
        "seen": ("seen", "the model saw this material: low priority to teach"),
        "partial": ("partial", "partly covered: keep; worth teaching where the uncovered part matters"),
        "novel": ("novel", "not in the corpus: teach explicitly"),
        "unassessable": ("unassessable", "too short to judge: review by hand"),
    },
    "eval": {
        "leaked": ("leaked", "drop or replace the item: a score on it measures memory"),
        "seen": ("seen", "largely in the corpus: report scores with and without these items"),
        "partial": ("partial", "partly in the corpus: keep, and note it"),
        "novel": ("clean", "not in the corpus: clean"),
        "unassessable": ("unassessable", "too short to judge: never counted as clean"),
    },
}


def guess_dataset_kind(name: str) -> str:
    """``eval`` when the file name or a folder names a split or a benchmark, else ``train``.

    A word of the file name counts (``test.jsonl``, ``ARC-Challenge-Dev.jsonl``, ``HumanEval.jsonl``); of
    the two folders above it only a whole name does (``benchmarks/mbpp/mbpp.jsonl``), so a folder such
    as ``test_runs/`` or a temporary directory does not make fine-tuning data an eval set.
    """
    path = PurePath(name)
    words = [w for w in re.split(r"[^a-z0-9]+", path.name.lower()) if w]
    folders = [path.parent.name.lower(), path.parent.parent.name.lower()]
    if any(w in _EVAL_WORDS or w.endswith("eval") for w in words) or any(f in _EVAL_WORDS for f in folders):
        return "eval"
    return "train"


def resolve_dataset_kind(requested: str, name: str) -> tuple[str, bool]:
    """The dataset kind and whether it was guessed from ``name`` (``requested`` = auto)."""
    if requested not in KIND_CHOICES:
        raise ConfigError(f"dataset kind must be one of {', '.join(KIND_CHOICES)}, not {requested!r}")
    if requested == "auto":
        return guess_dataset_kind(name), True
    return requested, False


def action(kind: str, outcome: str) -> tuple[str, str]:
    """(label, what to do) for an outcome of a dataset of this kind."""
    return ACTIONS.get(kind, ACTIONS["train"]).get(outcome, (outcome, ""))


def cross_document_only(flagged: np.ndarray, instruction_matched: np.ndarray, response_matched: np.ndarray,
                        joint_same_doc: np.ndarray, joint_exact: np.ndarray,
                        single_field_flagged: np.ndarray) -> np.ndarray:
    """Flagged only through instruction and response matched in different documents (rule 2's exception).

    An estimate (``joint_exact`` false: truncated document samples) never downgrades a flag.
    """
    return (flagged & instruction_matched & response_matched & ~joint_same_doc & joint_exact
            & ~single_field_flagged)


def outcomes(verdict: np.ndarray, rare_coverage: np.ndarray, leaked: np.ndarray) -> np.ndarray:
    """One outcome per example from the verdict, the best rare token coverage and the leaked flags."""
    tier = np.where(rare_coverage > 0, verdict, "novel")  # boilerplate-only matches stay novel
    out = np.where(leaked, "leaked", tier)
    return np.where(verdict == "unassessable", "unassessable", out).astype(object)


__all__ = ["ACTIONS", "DATASET_KINDS", "KIND_CHOICES", "OUTCOMES", "action", "cross_document_only",
           "guess_dataset_kind", "outcomes", "resolve_dataset_kind"]
