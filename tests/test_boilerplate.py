"""Boilerplate: a shared template is not contamination, but the pattern view still sees it.

A synthetic corpus holds one question template ("Which of the following is the best way to travel
from <City> to <City> with <N> dollars and <M> bags in <Month>?") filled in 40 documents with different
slot values, among unrelated filler documents. A dataset of *new* instances shares only the
template with the corpus:

- the default definition must not flag them: every matched surface n-gram is template text found
  in more than ``max_docs`` documents, so no rare n-gram matches;
- the pattern view (numbers and mid-sentence names masked) covers them entirely, so the verdict,
  which reads max(surface, pattern) coverage, is ``seen`` although surface coverage alone is below
  the ``seen`` threshold.

A verbatim copy of one corpus instance is the positive control: its slot-bearing n-grams occur in
one document, so the default definition flags it.
"""

from __future__ import annotations

import json
import random

import pyarrow.parquet as pq
import pytest

from helpers import make_docs, write_parquet
from probe.config import BuildConfig, TextSpec
from probe.index.build import build_index
from probe.scan import scan_dataset
from probe.scoring import Thresholds

CITIES = ["Paris", "Lisbon", "Vienna", "Prague", "Dublin", "Warsaw", "Athens", "Madrid", "Berlin", "Rome",
          "Zurich", "Oslo", "Helsinki", "Tallinn", "Vilnius", "Sofia", "Bucharest", "Budapest", "Krakow",
          "Porto", "Seville", "Munich", "Hamburg", "Milan", "Naples", "Geneva", "Lyon", "Marseille"]
NEW_CITIES = ["Quito", "Hanoi", "Nairobi", "Lima", "Dakar", "Manila", "Osaka", "Perth", "Accra", "Bogota",
              "Tunis", "Denver", "Tbilisi", "Yerevan", "Kigali", "Montevideo"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
TEMPLATE = "Which of the following is the best way to travel from {a} to {b} with {n} dollars and {m} bags in {month}?"
TEMPLATE_DOCS = 40


def _instance(rng: random.Random, cities: list[str]) -> str:
    a, b = rng.sample(cities, 2)
    return TEMPLATE.format(a=a, b=b, n=rng.randint(20, 990), m=rng.randint(1, 9), month=rng.choice(MONTHS))


@pytest.fixture(scope="module")
def template_scan(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict], dict, str]:
    tmp = tmp_path_factory.mktemp("boilerplate")
    rng = random.Random(7)
    filler = make_docs(300, seed=11, min_words=20, max_words=80)
    docs = list(filler)
    instances = []
    for i in range(TEMPLATE_DOCS):
        inst = _instance(rng, CITIES)
        instances.append(inst)
        # each template instance sits inside its own document, between filler text
        docs.insert(rng.randint(0, len(docs)), f"{filler[i]}\n\n{inst}\n\n{filler[-1 - i]}")
    write_parquet(tmp / "corpus" / "shard.parquet", docs)
    index = tmp / "index"
    build_index([str(tmp / "corpus")], index, TextSpec(views=("surface", "pattern"), ns=(8, 13)),
                BuildConfig(workers=1))
    # the dataset: 20 new instances (unseen cities and numbers), then one verbatim corpus instance
    records = [{"question": _instance(rng, NEW_CITIES)} for _ in range(20)]
    control = instances[3]
    records.append({"question": control})
    data = tmp / "template.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    res = scan_dataset(data, index, tmp / "scan")
    rows = pq.read_table(tmp / "scan" / "examples.parquet").to_pylist()
    return rows, res.summary.to_dict(), control


def test_template_instances_are_not_contaminated_by_default(template_scan) -> None:
    rows, summary, _ = template_scan
    new = rows[:-1]
    assert all(r["assessable"] for r in new)
    assert [r["id"] for r in new if r["contaminated_default"]] == []
    # the surface view does match the template's words, but only n-grams in > max_docs documents
    assert all(r["whole_matched_8"] > 0 for r in new)
    assert all(r["whole_max_docs"] > Thresholds().max_docs for r in new)
    # a low-cardinality slot ("2 bags", 9 values over 40 documents) can make a few 8-grams rare, but
    # never enough of them for the default rule's coverage or span
    th = Thresholds()
    assert all(r["whole_rare_token_coverage_8"] < th.default_coverage for r in new)
    assert all(r["whole_longest_rare_match_tokens"] < th.default_span for r in new)
    assert summary["contaminated"]["default"] == 1  # the control only


def test_pattern_view_reports_template_instances_as_seen(template_scan) -> None:
    rows, summary, _ = template_scan
    seen = Thresholds().seen
    assert summary["pattern_available"] is True
    for r in rows[:-1]:
        assert r["whole_pattern_token_coverage_8"] >= seen, r["id"]
        # the surface view alone would not say "seen": every slot value differs from the corpus
        assert r["whole_token_coverage_8"] < seen, r["id"]
        assert r["verdict"] == "seen", r["id"]
        assert r["coverage"] == pytest.approx(max(r["whole_token_coverage_8"], r["whole_pattern_token_coverage_8"]))


def test_verbatim_instance_is_contaminated(template_scan) -> None:
    rows, _, control = template_scan
    r = rows[-1]
    assert r["whole_token_coverage_8"] == 1.0
    assert r["contaminated_default"] is True
    assert r["verdict"] == "seen"
    assert r["match_snippet"] is not None and "[[" in r["match_snippet"]
    assert r["whole_longest_match_text"] and r["whole_longest_match_text"] in control
