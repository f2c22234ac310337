"""Planted contamination: insert real benchmark items into a copy of a corpus shard, index, scan, score.

What it does (one run, fixed seed):

1. Reads GSM8K test, MMLU test, ARC-Challenge test, TruthfulQA and BoolQ val from
   ``../shared/data/benchmarks`` (raw JSONL records, original field layout).
2. Ground truth hygiene, with a plain-Python matcher that does not use probe
   (casefolded ``\\w+`` words, tuples of 13 words):

   - *natural* items, whose text already shares a 13-word run with the base shard, are never
     used (they are contaminated before we plant anything);
   - items of one benchmark that share a 13-word run, as words or with numbers and capitalized
     words masked (MMLU/BoolQ passages used by several questions, MMLU's moral-scenarios template,
     TruthfulQA's "On a visit to X and Y" variants) form a *family*; at most one item per family is
     inserted, and family-mates of inserted items are not negatives (their passage *was*
     inserted). A sample of them is scanned and reported as ``related`` (not scored).

3. Inserts items, ``per_cell`` per (benchmark, edit kind), into a copy of the base shard
   (``corpus-00004.parquet``: fortunes and dictionaries, 9 MB of text) at random rows:

   - ``verbatim``: question + answer text as in the file, one document;
   - ``format``: casing changed (lower/upper/title/random words), whitespace changed (runs of
     spaces, tabs, newlines), punctuation at word ends replaced, doubled or dropped, and half of the
     apostrophes and hyphens inside words dropped (``don't`` → ``dont``: this changes words);
   - ``swap``: every number (digit run) and every proper name (capitalized word whose lowercase
     form is rare in the base shard) replaced, consistently within the item; items need >= 2
     swappable occurrences;
   - ``embedded``: prefix + item + suffix, the context taken from the base shard's documents
     (300-1,500 characters on each side);
   - ``split``: question in one document, answer in another, each embedded as above.

4. Builds one index (``TextSpec(views=("surface", "pattern"), ns=(8, 13))``), writes each
   benchmark's subset (inserted + negatives + related, shuffled) as JSONL in the original layout,
   scans each with ``probe.scan.scan_dataset`` and joins ``row`` back to the ground truth.
5. Reports recall per edit kind and per definition (every ``contaminated_*`` column, plus the
   ``seen`` coverage verdict), false-positive rate on negatives, and precision overall.

    .venv/bin/python bench/planted.py --out bench/out/planted            # ~1 minute
    .venv/bin/python bench/planted.py --out /tmp/p --per-cell 4 --negatives 60 --no-results
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data"
BASE_SHARD = "corpus/shards/corpus-00004.parquet"
KINDS = ("verbatim", "format", "swap", "embedded", "split")
EDITED = ("format", "swap", "embedded", "split")
RUN_N = 13  # word-run length of the independent ground-truth matcher
HEADING = "Planted contamination"

TARGET_VERBATIM = 0.99
TARGET_EDITED = 0.90
TARGET_FP = 0.01


# --------------------------------------------------------------------------- benchmarks
def _letter(i: int) -> str:
    return "ABCDEFGHIJ"[i]


def _mmlu(rec: dict[str, Any]) -> tuple[str, str]:
    choices = [rec[f"choice{i}"] for i in range(4)]
    q = rec["question"] + "\n" + "\n".join(f"{_letter(i)}. {c}" for i, c in enumerate(choices))
    k = int(rec["answer"])
    return q, f"Answer: {_letter(k)}. {choices[k]}"


def _arc(rec: dict[str, Any]) -> tuple[str, str]:
    q = rec["question"]
    choices = {c["label"]: c["text"] for c in q["choices"]}
    text = q["stem"] + "\n" + "\n".join(f"{label}. {t}" for label, t in choices.items())
    key = rec["answerKey"]
    return text, f"Answer: {key}. {choices.get(key, '')}".rstrip(". ")


BENCHMARKS: dict[str, tuple[str, Callable[[dict[str, Any]], tuple[str, str]]]] = {
    "gsm8k": ("benchmarks/gsm8k/test.jsonl", lambda r: (r["question"], r["answer"])),
    "mmlu": ("benchmarks/mmlu/test.jsonl", _mmlu),
    "arc_challenge": ("benchmarks/arc/ARC-Challenge-Test.jsonl", _arc),
    "truthfulqa": ("benchmarks/truthfulqa/TruthfulQA.jsonl", lambda r: (r["Question"], r["Best Answer"])),
    "boolq": ("benchmarks/boolq/val.jsonl",
              lambda r: (r["question"] + "?\n" + r["passage"], str(r["label"]).lower())),
}


@dataclass
class Item:
    bench: str
    index: int  # record index in the benchmark file
    record: dict[str, Any]
    question: str
    answer: str
    kind: str = "negative"  # one of KINDS, "negative" or "related"
    changed_share: float = 0.0  # share of the item's words an edit changed (swap/format)

    @property
    def text(self) -> str:
        return self.question + "\n" + self.answer


@dataclass(frozen=True)
class PlantedConfig:
    data: Path = DEFAULT_DATA
    base_shard: str = BASE_SHARD
    benchmarks: tuple[str, ...] = tuple(BENCHMARKS)
    per_cell: int = 10  # inserted items per (benchmark, kind)
    negatives: int = 120  # negatives per benchmark
    related: int = 20  # family-mates of inserted items per benchmark (reported, not scored)
    seed: int = 20240917
    workers: int = 2
    tokenizer_rules: int | None = None  # None: the newest (what a new index gets)
    sample_mod: int = 1  # > 1: a sampled index (recall of the estimates, issue 14 item 5)
    views: tuple[str, ...] = ("surface", "pattern")


@dataclass
class PlantedResult:
    metrics: dict[str, Any]
    markdown: str
    out_dir: Path
    seconds: dict[str, float] = field(default_factory=dict)


# --------------------------------------------------------------------------- ground-truth matcher
_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.casefold())


def masked_words(text: str) -> list[str]:
    """Numbers and capitalized words masked: instances of one template look alike."""
    return ["<num>" if w[0].isdigit() else "<cap>" if w[0].isupper() else w.casefold()
            for w in _WORD.findall(text)]


def runs(text: str, n: int = RUN_N, masked: bool = False) -> set[int]:
    w = masked_words(text) if masked else words(text)
    return {hash((masked, *w[i:i + n])) for i in range(len(w) - n + 1)}


def _families(items: list[Item]) -> list[int]:
    """Union-find over items that share a RUN_N-word run, as words or masked words: family id per item."""
    parent = list(range(len(items)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    owner: dict[int, int] = {}
    for i, it in enumerate(items):
        for h in runs(it.text) | runs(it.text, masked=True):
            j = owner.setdefault(h, i)
            if j != i:
                a, b = find(i), find(j)
                if a != b:
                    parent[a] = b
    return [find(i) for i in range(len(items))]


# --------------------------------------------------------------------------- edits
_NUM = re.compile(r"\d+")
_CAP = re.compile(r"\b[A-Z][a-z]+\b")
_PUNCT_END = re.compile(r"[.,;:!?](?=\s|$)")
_SPACE = re.compile(r"[ \t]+|\n")
NAMES = ("Priya", "Mateo", "Oksana", "Kwame", "Ingrid", "Tariq", "Yuki", "Lucia", "Dmitri", "Amara",
         "Henrik", "Soraya", "Bogdan", "Ines", "Rafael", "Zanele", "Tomasz", "Leilani", "Oslo", "Quito",
         "Tbilisi", "Dakar", "Hanoi", "Lima", "Perth", "Riga", "Accra", "Bergen", "Cusco", "Fez")


def edit_format(text: str, rng: random.Random) -> str:
    """Casing, whitespace and punctuation changed; the words themselves are kept."""
    mode = rng.choice(("lower", "upper", "title", "random"))
    if mode == "lower":
        text = text.lower()
    elif mode == "upper":
        text = text.upper()
    elif mode == "title":
        text = text.title()
    else:
        text = re.sub(r"\w+", lambda m: m.group(0).upper() if rng.random() < 0.3 else m.group(0).lower(), text)
    text = _SPACE.sub(lambda m: rng.choice((" ", "  ", "\n", " \t ", "\n\n")), text)

    def punct(m: re.Match[str]) -> str:
        r = rng.random()
        if r < 0.35:
            return ""
        if r < 0.75:
            return rng.choice([c for c in ".,;:!?" if c != m.group(0)])
        return m.group(0) * 2

    text = _PUNCT_END.sub(punct, text)
    # inner apostrophes and hyphens dropped half the time: don't -> dont, well-known -> wellknown
    text = re.sub(r"(?<=\w)['\u2019-](?=\w)", lambda m: "" if rng.random() < 0.5 else m.group(0), text)
    return text.replace("\u2019", "'").replace("\u201c", '"').replace("\u201d", '"')


class Swapper:
    """Numbers and proper names replaced consistently within one item."""

    def __init__(self, lower_share: dict[str, float]) -> None:
        # a capitalized word is a name when the base shard (almost) never writes it in lower case
        self.lower_share = lower_share

    def names(self, text: str) -> set[str]:
        return {w for w in _CAP.findall(text) if self.lower_share.get(w.lower(), 0.0) < 0.2 and len(w) > 1}

    def swappable(self, text: str) -> int:
        names = self.names(text)
        return len(_NUM.findall(text)) + sum(1 for w in _CAP.findall(text) if w in names)

    def apply(self, texts: list[str], rng: random.Random) -> list[str]:
        joined = "\n".join(texts)
        names = sorted(self.names(joined))
        pool = [n for n in NAMES if n not in names]
        rng.shuffle(pool)
        name_map = {w: pool[i % len(pool)] for i, w in enumerate(names)}
        num_map: dict[str, str] = {}

        def num(m: re.Match[str]) -> str:
            s = m.group(0)
            if s not in num_map:
                d = len(s)
                new = s
                while new == s:
                    new = str(rng.randint(10 ** (d - 1) if d > 1 else 0, 10 ** d - 1))
                num_map[s] = new
            return num_map[s]

        out = []
        for t in texts:
            t = _NUM.sub(num, t)
            t = _CAP.sub(lambda m: name_map.get(m.group(0), m.group(0)), t)
            out.append(t)
        return out


class Context:
    """Unrelated text from the base shard: short documents concatenated, long ones windowed."""

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts

    def take(self, rng: random.Random, lo: int = 300, hi: int = 1500) -> str:
        want = rng.randint(lo, hi)
        i = rng.randrange(len(self.texts))
        parts: list[str] = []
        size = 0
        while size < want:
            t = self.texts[i % len(self.texts)]
            if len(t) > want:
                a = rng.randrange(0, len(t) - want + 1)
                t = t[a:a + want]
            parts.append(t)
            size += len(t)
            i += 1
        text = "\n\n".join(parts)[:want]
        # cut at word boundaries so the context never glues onto the item's first/last word
        return text.rsplit(None, 1)[0] if " " in text else text


def _changed_share(before: str, after: str) -> float:
    a, b = words(before), words(after)
    if not a:
        return 0.0
    same = sum(1 for x, y in zip(a, b, strict=False) if x == y) if len(a) == len(b) else 0
    if len(a) != len(b):  # token count changed: count word types lost
        ca, cb = Counter(a), Counter(b)
        same = sum(min(ca[w], cb[w]) for w in ca)
    return 1 - same / len(a)


def make_documents(item: Item, rng: random.Random, swapper: Swapper, ctx: Context) -> list[str]:
    """The corpus document(s) that plant ``item`` with its edit kind."""
    q, a = item.question, item.answer
    if item.kind == "verbatim":
        return [f"{q}\n{a}"]
    if item.kind == "format":
        doc = edit_format(f"{q}\n{a}", rng)
        item.changed_share = _changed_share(item.text, doc)
        return [doc]
    if item.kind == "swap":
        q2, a2 = swapper.apply([q, a], rng)
        item.changed_share = _changed_share(item.text, f"{q2}\n{a2}")
        return [f"{q2}\n{a2}"]
    if item.kind == "embedded":
        return [f"{ctx.take(rng)}\n\n{q}\n{a}\n\n{ctx.take(rng)}"]
    if item.kind == "split":
        return [f"{ctx.take(rng)}\n\n{q}\n\n{ctx.take(rng)}", f"{ctx.take(rng)}\n\n{a}\n\n{ctx.take(rng)}"]
    raise ValueError(item.kind)


# --------------------------------------------------------------------------- selection
def load_benchmark(data: Path, name: str) -> list[Item]:
    rel, fmt = BENCHMARKS[name]
    items = []
    with open(data / rel, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if line.strip():
                rec = json.loads(line)
                q, a = fmt(rec)
                items.append(Item(name, i, rec, q, a))
    return items


def select(items: list[Item], base_runs: set[int], swapper: Swapper, cfg: PlantedConfig,
           rng: random.Random) -> tuple[list[Item], dict[str, int]]:
    """Inserted items (kind set), negatives and related items of one benchmark."""
    fam = _families(items)
    natural = {i for i, it in enumerate(items) if runs(it.text) & base_runs}
    order = [i for i in range(len(items)) if i not in natural]
    rng.shuffle(order)
    used_fams: set[int] = set()
    chosen: list[Item] = []
    need = dict.fromkeys(KINDS, cfg.per_cell)
    for kind in ("swap", *[k for k in KINDS if k != "swap"]):  # swap first: it needs swappable items
        for i in order:
            if need[kind] == 0:
                break
            it = items[i]
            if fam[i] in used_fams or it.kind != "negative":
                continue
            if kind == "swap" and swapper.swappable(it.text) < 2:
                continue
            it.kind = kind
            used_fams.add(fam[i])
            chosen.append(it)
            need[kind] -= 1
        if need[kind]:
            raise RuntimeError(f"{items[0].bench}: not enough eligible items for {kind}")
    negatives = [items[i] for i in order if items[i].kind == "negative" and fam[i] not in used_fams]
    related = [items[i] for i in order if items[i].kind == "negative" and fam[i] in used_fams]
    negatives = negatives[:cfg.negatives]
    related = related[:cfg.related]
    for it in related:
        it.kind = "related"
    if len(negatives) < cfg.negatives:
        raise RuntimeError(f"{items[0].bench}: only {len(negatives)} negatives available")
    stats = {"records": len(items), "natural": len(natural),
             "families_shared": sum(1 for c in Counter(fam).values() if c > 1),
             "inserted": len(chosen), "negatives": len(negatives), "related": len(related)}
    return chosen + negatives + related, stats


# --------------------------------------------------------------------------- run
def run(out_dir: str | Path, cfg: PlantedConfig | None = None, log: Callable[[str], None] | None = print
        ) -> PlantedResult:
    from probe.config import BuildConfig, TextSpec
    from probe.index.build import build_index
    from probe.scan import scan_dataset

    cfg = cfg or PlantedConfig()
    log = log or (lambda _s: None)
    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    (out / "corpus").mkdir(parents=True)
    (out / "datasets").mkdir()
    rng = random.Random(cfg.seed)
    seconds: dict[str, float] = {}

    t0 = time.perf_counter()
    base = pq.read_table(cfg.data / cfg.base_shard, columns=["id", "source", "text"])
    base_texts = base.column("text").to_pylist()
    base_runs: set[int] = set()
    low: Counter[str] = Counter()
    allw: Counter[str] = Counter()
    for t in base_texts:
        base_runs |= runs(t)
        for w in _WORD.findall(t):
            lw = w.lower()
            allw[lw] += 1
            if w == lw:
                low[lw] += 1
    swapper = Swapper({w: low[w] / c for w, c in allw.items()})
    ctx = Context(base_texts)

    selected: dict[str, list[Item]] = {}
    selection_stats: dict[str, dict[str, int]] = {}
    for name in cfg.benchmarks:
        selected[name], selection_stats[name] = select(load_benchmark(cfg.data, name), base_runs, swapper, cfg, rng)
    seconds["select"] = time.perf_counter() - t0

    # planted documents, inserted at random rows of a copy of the base shard
    t0 = time.perf_counter()
    planted: list[dict[str, str]] = []
    for name, items in selected.items():
        for it in items:
            if it.kind in KINDS:
                for j, doc in enumerate(make_documents(it, rng, swapper, ctx)):
                    planted.append({"id": f"planted/{name}/{it.index}/{it.kind}/{j}", "source": "planted",
                                    "text": doc})
    rows = base.to_pylist()
    for p in planted:
        rows.insert(rng.randint(0, len(rows)), p)
    shard = out / "corpus" / (Path(cfg.base_shard).stem + "-planted.parquet")
    pq.write_table(pa.Table.from_pylist(rows, schema=base.schema), shard, row_group_size=8192,
                   compression="zstd")
    seconds["write_corpus"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    spec = TextSpec(views=cfg.views, ns=(8, 13), sample_mod=cfg.sample_mod)
    if cfg.tokenizer_rules is not None:
        spec = replace(spec, tokenizer_rules=cfg.tokenizer_rules)
    build = build_index([str(shard)], out / "index", spec, BuildConfig(workers=cfg.workers))
    seconds["build"] = time.perf_counter() - t0
    log(f"built index: {build.docs} docs, {build.tokens} tokens, {seconds['build']:.1f}s "
        f"({len(planted)} planted documents)")

    # datasets in the original layout; ground truth by row
    t0 = time.perf_counter()
    truth: dict[str, list[Item]] = {}
    scans: dict[str, list[dict[str, Any]]] = {}
    for name, items in selected.items():
        items = list(items)
        rng.shuffle(items)
        truth[name] = items
        path = out / "datasets" / f"{name}.jsonl"
        with open(path, "w", encoding="utf-8") as f:
            for it in items:
                f.write(json.dumps(it.record, ensure_ascii=False) + "\n")
        with open(out / "datasets" / f"{name}.truth.jsonl", "w", encoding="utf-8") as f:
            for row, it in enumerate(items):
                f.write(json.dumps({"row": row, "index": it.index, "kind": it.kind,
                                    "changed_share": round(it.changed_share, 4)}) + "\n")
        res = scan_dataset(path, out / "index", out / "scans" / name)
        table = pq.read_table(res.out_dir / "examples.parquet")
        cols = [c for c in table.column_names
                if c.startswith("contaminated_") or c in ("row", "verdict", "coverage", "match_source")]
        scans[name] = table.select(cols).to_pylist()
    seconds["scan"] = time.perf_counter() - t0

    metrics = score(truth, scans)
    metrics["selection"] = selection_stats
    metrics["config"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()}
    metrics["build"] = {"docs": build.docs, "tokens": build.tokens, "planted_documents": len(planted)}
    metrics["seconds"] = {k: round(v, 2) for k, v in seconds.items()}
    md = markdown(metrics)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (out / "table.md").write_text(md + "\n")
    return PlantedResult(metrics, md, out, seconds)


# --------------------------------------------------------------------------- scoring
def score(truth: dict[str, list[Item]], scans: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Recall per kind × definition, FP rate on negatives, precision overall."""
    defs: list[str] = []
    judged: Counter[str] = Counter()  # rows where the definition is not null
    flagged: dict[str, list[tuple[Item, dict[str, bool], dict[str, Any]]]] = defaultdict(list)
    for name, items in truth.items():
        rows = scans[name]
        assert len(rows) == len(items), (name, len(rows), len(items))
        for row in rows:
            it = items[row["row"]]
            flags = {}
            for col, v in row.items():
                if col.startswith("contaminated_"):
                    d = col.removeprefix("contaminated_")
                    if d not in defs:
                        defs.append(d)
                    # null: the definition is unavailable on this index, or the item has no n-gram of
                    # its n (too short): never flagged, so it counts as a miss / not a false positive
                    judged[d] += v is not None
                    flags[d] = bool(v)
            flags["seen"] = row["verdict"] == "seen"
            flagged[it.kind].append((it, flags, row))
    unavailable = {d for d in defs if judged[d] == 0}
    defs = [d for d in defs if d not in unavailable] + ["seen"]

    def rate(kind_rows: list, d: str) -> float | None:
        return round(sum(f[d] for _, f, _ in kind_rows) / len(kind_rows), 4) if kind_rows else None

    groups = {k: flagged[k] for k in KINDS}
    groups["edited"] = [r for k in EDITED for r in flagged[k]]
    groups["all inserted"] = [r for k in KINDS for r in flagged[k]]
    recall = {g: {d: rate(rs, d) for d in defs} for g, rs in groups.items()}
    fp = {d: rate(flagged["negative"], d) for d in defs}
    related = {d: rate(flagged["related"], d) for d in defs}
    precision = {}
    for d in defs:
        tp = sum(f[d] for _, f, _ in groups["all inserted"])
        fpn = sum(f[d] for _, f, _ in flagged["negative"])
        precision[d] = round(tp / (tp + fpn), 4) if tp + fpn else None
    per_bench: dict[str, dict[str, Any]] = {}
    for name in truth:
        per_bench[name] = {
            k: rate([r for r in flagged[k] if r[0].bench == name], "default") for k in (*KINDS, "negative")}
    misses = [{"bench": it.bench, "index": it.index, "kind": it.kind, "coverage": round(row["coverage"], 3),
               "verdict": row["verdict"]}
              for k in KINDS for it, f, row in flagged[k] if not f["default"]]
    false_pos = [{"bench": it.bench, "index": it.index, "coverage": round(row["coverage"], 3),
                  "match_source": row.get("match_source"),
                  "definitions": [d for d in defs if f[d]]}
                 for it, f, row in flagged["negative"] if f["default"]]
    changed = {k: round(sum(it.changed_share for it, _, _ in flagged[k]) / max(1, len(flagged[k])), 3)
               for k in ("format", "swap")}
    counts = {k: len(v) for k, v in groups.items()} | {"negative": len(flagged["negative"]),
                                                        "related": len(flagged["related"])}
    targets = {
        "verbatim_recall": recall["verbatim"]["default"],
        "edited_recall": recall["edited"]["default"],
        "fp_rate": fp["default"],
        "met": bool(recall["verbatim"]["default"] >= TARGET_VERBATIM and recall["edited"]["default"] >= TARGET_EDITED
                    and fp["default"] <= TARGET_FP),
    }
    return {"definitions": defs, "unavailable": sorted(unavailable), "counts": counts, "recall": recall,
            "fp_rate": fp, "related_flag_rate": related, "precision": precision, "per_benchmark_default": per_bench,
            "changed_word_share": changed, "misses_default": misses, "false_positives_default": false_pos,
            "targets": targets}


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}"


def markdown(m: dict[str, Any]) -> str:
    defs = m["definitions"]
    header = "| items | n | " + " | ".join(f"`{d}`" for d in defs) + " |"
    lines = [header, "|---|---:|" + "---:|" * len(defs)]
    label = {"edited": "**edited (4 kinds)**", "all inserted": "**all inserted**"}
    for g in (*KINDS, "edited", "all inserted"):
        lines.append(f"| recall: {label.get(g, g)} | {m['counts'][g]} | "
                     + " | ".join(_pct(m["recall"][g][d]) for d in defs) + " |")
    lines.append(f"| **false positives** (negatives) | {m['counts']['negative']} | "
                 + " | ".join(_pct(m["fp_rate"][d]) for d in defs) + " |")
    lines.append("| precision (all inserted vs negatives) | | "
                 + " | ".join(_pct(m["precision"][d]) for d in defs) + " |")
    lines.append(f"| flagged: related (not scored) | {m['counts']['related']} | "
                 + " | ".join(_pct(m["related_flag_rate"][d]) for d in defs) + " |")
    out = ["Percentages. Recall = flagged / inserted of that kind; false positives = flagged / negatives. An item "
           "with no n-gram of a definition's n (null in `examples.parquet`, e.g. < 13 words for `gpt3`) counts "
           "as not flagged. `seen` is the coverage verdict (max of surface and pattern token coverage ≥ 0.6).", "",
           "\n".join(lines)]
    bh = "| benchmark | " + " | ".join(KINDS) + " | FP |"
    brows = [bh, "|---|" + "---:|" * (len(KINDS) + 1)]
    for b, r in m["per_benchmark_default"].items():
        brows.append(f"| {b} | " + " | ".join(_pct(r[k]) for k in (*KINDS, "negative")) + " |")
    out += ["", "`default` per benchmark (recall per kind, FP %):", "", "\n".join(brows)]
    t = m["targets"]
    out += ["", f"Targets (default): verbatim recall {_pct(t['verbatim_recall'])} % (≥ 99), edited recall "
            f"{_pct(t['edited_recall'])} % (≥ 90), FP {_pct(t['fp_rate'])} % (≤ 1): "
            f"**{'met' if t['met'] else 'NOT met'}**."]
    if m.get("unavailable"):
        out.append(f"Unavailable on this index: {', '.join(m['unavailable'])}.")
    cw = m.get("changed_word_share", {})
    if cw:
        out.append(f"Share of words changed by the edit (mean): format {_pct(cw.get('format'))} %, "
                   f"swap {_pct(cw.get('swap'))} %.")
    return "\n".join(out)


def results_section(m: dict[str, Any], md: str, command: str, date: str) -> str:
    c = m["config"]
    sel = m["selection"]
    nat = ", ".join(f"{b} {s['natural']}" for b, s in sel.items())
    return "\n".join([
        f"`{command}` — {date}; " + ", ".join(f"{k} {v:.1f} s" for k, v in m["seconds"].items()) + ".",
        "",
        f"Base: `{Path(c['base_shard']).name}` ({m['build']['docs']} docs after planting, "
        f"{m['build']['planted_documents']} planted documents); index `TextSpec(views=(surface, pattern), "
        f"ns=(8, 13))`; {c['per_cell']} items per (benchmark, kind) from {', '.join(c['benchmarks'])}; "
        f"{c['negatives']} negatives per benchmark; seed {c['seed']}. Items already sharing a 13-word run "
        f"with the base shard are excluded ({nat}); family-mates of inserted items (same passage/template) "
        "are reported as `related`, not scored. Details and why each definition behaves as it does: "
        "docs/detection-quality.md.",
        "",
        md,
    ])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(REPO_ROOT / "bench" / "out" / "planted"))
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--per-cell", type=int, default=PlantedConfig.per_cell)
    ap.add_argument("--negatives", type=int, default=PlantedConfig.negatives)
    ap.add_argument("--related", type=int, default=PlantedConfig.related)
    ap.add_argument("--seed", type=int, default=PlantedConfig.seed)
    ap.add_argument("--workers", type=int, default=PlantedConfig.workers)
    ap.add_argument("--tokenizer-rules", type=int, default=None, help="default: the newest")
    ap.add_argument("--sample-mod", type=int, default=1)
    ap.add_argument("--views", default="surface,pattern")
    ap.add_argument("--no-results", action="store_true", help="do not write bench/RESULTS.md")
    args = ap.parse_args(argv)
    data = Path(args.data)
    if not (data / BASE_SHARD).exists():
        print(f"shared data not found under {data}", file=sys.stderr)
        return 2
    cfg = PlantedConfig(data=data, per_cell=args.per_cell, negatives=args.negatives, related=args.related,
                        seed=args.seed, workers=args.workers, tokenizer_rules=args.tokenizer_rules,
                        sample_mod=args.sample_mod, views=tuple(args.views.split(",")))
    res = run(args.out, cfg)
    print(res.markdown)
    m = res.metrics
    if m["misses_default"]:
        print("\nmissed by default:", json.dumps(m["misses_default"], indent=None))
    if m["false_positives_default"]:
        print("\nfalse positives of default:", json.dumps(m["false_positives_default"], indent=None))
    if not args.no_results:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from common import command_line, machine_info, write_section

        write_section(HEADING, results_section(m, res.markdown, command_line(), machine_info()["date"]))
    return 0 if m["targets"]["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
