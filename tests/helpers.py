"""Shared test helpers: synthetic corpora, a plain-Python reference of the format, the EQ oracle.

Everything here is deliberately independent of probe's own fast paths: the reference
normalizer, tokenizers and hash functions are written from the format description
(docs/index-format.md) in plain Python, so a test comparing probe against them checks
the format, not the code against itself.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import re
import subprocess
import sys
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]

# --------------------------------------------------------------------------- reference format
M64 = (1 << 64) - 1
FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
POLY_P = 0x9E3779B97F4A7C15
N_SALT = 0x632BE59BD9B4E019


def fmix64(k: int) -> int:
    k &= M64
    k ^= k >> 33
    k = (k * 0xFF51AFD7ED558CCD) & M64
    k ^= k >> 33
    k = (k * 0xC4CEB9FE1A85EC53) & M64
    k ^= k >> 33
    return k


def ref_token_hash(token: str, seed: int = 0) -> int:
    """FNV-1a 64 over the token's code points from FNV_OFFSET ^ fmix64(seed), then fmix64."""
    h = FNV_OFFSET ^ fmix64(seed)
    for ch in token:
        h = ((h ^ ord(ch)) * FNV_PRIME) & M64
    return fmix64(h)


def ref_id_hash(token_id: int, seed: int = 0) -> int:
    """Hash of one integer token id: a single FNV-1a step with the id as the unit."""
    return fmix64(((FNV_OFFSET ^ fmix64(seed)) ^ token_id) * FNV_PRIME & M64)


def ref_ngram_hash(token_hashes: Sequence[int]) -> int:
    """fmix64(sum(t[i] * P**(n-1-i)) + n * N_SALT) mod 2**64."""
    n = len(token_hashes)
    h = 0
    for t in token_hashes:
        h = (h * POLY_P + t) & M64
    return fmix64((h + n * N_SALT) & M64)


def ref_ngram_hashes(token_hashes: Sequence[int], n: int) -> list[int]:
    return [ref_ngram_hash(token_hashes[i:i + n]) for i in range(len(token_hashes) - n + 1)]


_SURROGATE = re.compile("[\ud800-\udfff]")


def ref_normalize(text: str) -> str:
    """NFKC(casefold(NFKC(x))) after replacing lone surrogates with U+FFFD."""
    text = _SURROGATE.sub("\ufffd", text)
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


def is_word_char(ch: str) -> bool:
    return ch == "_" or unicodedata.category(ch)[0] in "LMN"


def is_split_letter(ch: str) -> bool:
    """A letter of a script written without spaces (tokenizer rules 2 give it a token of its own)."""
    from probe.text.tokenizers import SCRIPT_SPLIT_RANGES

    return unicodedata.category(ch)[0] == "L" and any(lo <= ord(ch) <= hi for lo, hi in SCRIPT_SPLIT_RANGES)


def ref_words(text: str, rules: int = 2) -> list[str]:
    """Maximal runs of word characters (categories L*, M*, N* and '_'); under rules 2 a split-script
    letter and the marks (M*) right after it are a token of their own."""
    out: list[str] = []
    cur: list[str] = []
    cluster = False  # cur is a split letter + its marks
    for ch in text:
        if cluster and unicodedata.category(ch)[0] == "M":
            cur.append(ch)
            continue
        if rules >= 2 and is_split_letter(ch):
            if cur:
                out.append("".join(cur))
            cur, cluster = [ch], True
        elif is_word_char(ch):
            if cluster:
                out.append("".join(cur))
                cur, cluster = [], False
            cur.append(ch)
        elif cur:
            out.append("".join(cur))
            cur, cluster = [], False
    if cur:
        out.append("".join(cur))
    return out


def ref_chars(text: str) -> list[str]:
    return [ch for ch in text if is_word_char(ch)]


def ref_doc_ngrams(text: str, n: int, seed: int = 0, tokenizer: str = "words") -> list[int]:
    tokens = (ref_words if tokenizer == "words" else ref_chars)(ref_normalize(text))
    return ref_ngram_hashes([ref_token_hash(t, seed) for t in tokens], n)


def oracle_tables(texts: Iterable[str], ns: Iterable[int], seed: int = 0, sample_mod: int = 1,
                  tokenizer: str = "words") -> dict[int, list[tuple[int, int, int]]]:
    """Plain-Python (hash, count, docs) rows per n, sorted by hash."""
    texts = list(texts)
    out = {}
    for n in ns:
        count: Counter[int] = Counter()
        docs: Counter[int] = Counter()
        for text in texts:
            hs = [h for h in ref_doc_ngrams(text, n, seed, tokenizer) if h % sample_mod == 0]
            count.update(hs)
            docs.update(set(hs))
        out[n] = sorted((h, count[h], docs[h]) for h in count)
    return out


# --------------------------------------------------------------------------- synthetic corpus
WORDS = """
the of and to in a is that for it as was with be by on not he this are or his from at which but have an
they you were her she there been one all we their has would when if so no more out up into do only time
can its other some what could them than first about then these two may like over new also any after most
such made world people year between many through under where back still great how well state city river
water light house night garden paper window morning market village school history music letter mountain
station bridge island summer winter evening forest harbor library kitchen teacher student doctor engine
number question answer reason system problem result example language country picture story friend family
quickly slowly quietly carefully often never always sometimes almost nearly perhaps certainly together
build write read carry follow remember explain imagine describe measure compare discover improve travel
green yellow bright heavy narrow ancient modern simple common strange gentle careful honest famous silent
""".split()
NAMES = ["Alice", "Bob", "Paris", "London", "Mozart", "Kyoto", "Amazon", "Einstein"]
UNICODE_WORDS = ["café", "naïve", "Straße", "Ελλάδα", "東京", "ǅemal", "ﬁnal", "Ｆｕｌｌ", "x²", "İstanbul"]
PASSAGES = [
    "It was the best of times, it was the worst of times, it was the age of wisdom, "
    "it was the age of foolishness, it was the epoch of belief.",
    "The quick brown fox jumps over the lazy dog while the farmer watches from the old wooden fence.",
    "Translate 'good morning' into French and explain why the word order changes in the question.",
    "In 1999 the committee published 42 recommendations; by 2004 only 7 of them had been adopted.",
    "To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer the slings.",
]


def make_docs(n_docs: int, seed: int = 0, min_words: int = 0, max_words: int = 60) -> list[str]:
    """Real-ish documents: words from a fixed list, some names, numbers, Unicode and shared passages.

    Some documents are shorter than 8 or 13 tokens, and the shared passages make
    n-grams occur in more documents than the default doc sample (k = 4).
    """
    rng = random.Random(seed)
    docs = []
    for _ in range(n_docs):
        words = []
        for _ in range(rng.randint(min_words, max_words)):
            r = rng.random()
            if r < 0.04:
                words.append(rng.choice(NAMES))
            elif r < 0.07:
                words.append(str(rng.randint(0, 3000)))
            elif r < 0.09:
                words.append(rng.choice(UNICODE_WORDS))
            else:
                words.append(rng.choice(WORDS))
            if rng.random() < 0.08:
                words[-1] += rng.choice([",", ".", ";", "!", "?", " -"])
        if rng.random() < 0.35:
            words.insert(rng.randint(0, len(words)), rng.choice(PASSAGES))
        text = " ".join(words)
        if not text.strip():
            text = rng.choice(WORDS)
        docs.append(text[0].upper() + text[1:] if rng.random() < 0.5 else text)
    return docs


def write_parquet(path: Path, texts: Sequence[str], row_group_size: int = 25, **columns: Sequence[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"text": list(texts), **{k: list(v) for k, v in columns.items()}}), path,
                   row_group_size=row_group_size, compression="zstd")
    return path


def write_jsonl(path: Path, texts: Sequence[str], key: str = "text") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(json.dumps({key: t, "meta": i}, ensure_ascii=False) + "\n" for i, t in enumerate(texts))
    raw = data.encode()
    if path.name.endswith(".gz"):
        raw = gzip.compress(raw, mtime=0)
    elif path.name.endswith(".zst"):
        import zstandard

        raw = zstandard.ZstdCompressor().compress(raw)
    path.write_bytes(raw)
    return path


@dataclass
class Corpus:
    """Shard files of a synthetic corpus and the documents each holds (in row order)."""

    root: Path
    shards: dict[Path, list[str]]

    @property
    def paths(self) -> list[str]:
        return [str(p) for p in self.shards]

    @property
    def texts(self) -> list[str]:
        return [t for texts in self.shards.values() for t in texts]


def write_corpus(root: Path, seed: int = 0, sizes: Sequence[tuple[str, int]] | None = None,
                 row_group_size: int = 25) -> Corpus:
    """Parquet and JSONL(.gz) shards of ``make_docs`` documents (a few hundred in all)."""
    sizes = sizes or [("a.parquet", 100), ("b.parquet", 60), ("c.jsonl", 50), ("d.jsonl.gz", 40)]
    shards: dict[Path, list[str]] = {}
    for i, (name, n) in enumerate(sizes):
        texts = make_docs(n, seed=seed * 1000 + i)
        path = root / name
        if name.endswith(".parquet"):
            write_parquet(path, texts, row_group_size=row_group_size)
        else:
            write_jsonl(path, texts)
        shards[path] = texts
    return Corpus(root, shards)


# --------------------------------------------------------------------------- subprocess
def probe_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PROBE_FAULT"}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra or {})
    return env


def run_probe(*args: str, env: dict[str, str] | None = None, timeout: float = 120,
              cwd: str | Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m probe ARGS`` in a subprocess (``env`` adds to the current environment)."""
    return subprocess.run([sys.executable, "-m", "probe", *args], env=probe_env(env), timeout=timeout,
                          cwd=cwd, capture_output=True, text=True, check=False)


def popen_probe(*args: str, env: dict[str, str] | None = None, **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "probe", *args], env=probe_env(env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


_WARM_CHILD = """
import sys
from probe import kernels
from probe.cli import main
from probe.config import TextSpec
from probe.index import build  # noqa: F401
from probe.index.segment import aggregate_doc_rows
from probe.text.tokenizers import Tokenizer

tb = Tokenizer(TextSpec()).tokenize(["warm up the kernels before the clock starts"])
h, e, _ = kernels.ngram_hashes(tb.token_hashes, tb.doc_token_ends, 3, 1)
aggregate_doc_rows(*kernels.dedupe_per_doc(h, e, 0), 4, 8)
print("ready", flush=True)
if sys.stdin.readline().strip() == "go":
    sys.argv = ["probe", *sys.argv[1:]]
    main()
"""


def warm_probe(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """A ``probe ARGS`` process that has paid its startup (imports, numba cache, char tables).

    It prints ``ready`` on stdout, then runs ``probe.cli.main`` with ARGS once ``go`` is
    written to its stdin (:func:`start_warm`): kill-timing tests then time the work, not
    the interpreter start.
    """
    return subprocess.Popen([sys.executable, "-c", _WARM_CHILD, *args], env=probe_env(env), text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_ready(proc: subprocess.Popen[str]) -> None:
    line = proc.stdout.readline()
    if line.strip() != "ready":
        raise RuntimeError(f"warm probe did not start: {line!r} {proc.stderr.read()}")


def start_warm(proc: subprocess.Popen[str]) -> None:
    proc.stdin.write("go\n")
    proc.stdin.flush()


# --------------------------------------------------------------------------- EQ oracle
@dataclass
class IndexTables:
    """The logical content of an index, independent of file names and segment order.

    ``tables[(view, n)]``: sorted (hash, count, docs) rows merged over all segments.
    ``samples[(view, n)]``: set of (hash, shard fingerprint, row) for every document
    in any segment's doc sample (resolved through docs.parquet).
    ``parts``: committed (shard fingerprint, part) pairs with their docs/tokens/skipped.
    """

    spec_fingerprint: str
    tables: dict[tuple[str, int], list[tuple[int, int, int]]]
    samples: dict[tuple[str, int], set[tuple[int, str, int]]]
    parts: set[tuple[str, int, int, int, int]]
    segment_samples: dict[tuple[str, int], list[dict[int, list[tuple[str, int]]]]]
    segment_docs: list[list[tuple[str, int]]]  # per segment (snapshot order): (shard, row) by ordinal

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IndexTables):
            return NotImplemented
        return (self.spec_fingerprint, self.tables, self.samples, self.parts) == (
            other.spec_fingerprint, other.tables, other.samples, other.parts)

    def global_bottom_k(self, k: int) -> dict[tuple[str, int], set[tuple[int, str, int]]]:
        """Doc samples as one segment holding all documents (in segment order) would keep: the k first."""
        out = {}
        for key, per_segment in self.segment_samples.items():
            merged: dict[int, list[tuple[str, int]]] = {}
            for seg in per_segment:
                for h, docs in seg.items():
                    merged.setdefault(h, []).extend(docs)
            out[key] = {(h, fp, row) for h, docs in merged.items() for fp, row in docs[:k]}
        return out


def index_tables(index_dir: str | Path) -> IndexTables:
    """Read every segment of the latest snapshot with plain pyarrow and merge it logically."""
    root = Path(index_dir)
    snaps = sorted(int(p.stem) for p in (root / "snapshots").glob("*.json") if p.stem.isdigit())
    snap = json.loads((root / "snapshots" / f"{snaps[-1]:08d}.json").read_text())
    header = json.loads((root / "probe-index.json").read_text())
    merged: dict[tuple[str, int], dict[int, list[int]]] = {}
    samples: dict[tuple[str, int], set[tuple[int, str, int]]] = {}
    seg_samples: dict[tuple[str, int], list[dict[int, list[tuple[str, int]]]]] = {}
    seg_docs: list[list[tuple[str, int]]] = []
    for seg in snap["segments"]:
        manifest = json.loads((root / seg["manifest"]).read_text())
        docs = pq.read_table(root / manifest["docs_file"]["path"]).to_pydict()
        assert docs["doc"] == list(range(len(docs["doc"])))
        doc_ref = {o: (fp, r) for o, fp, r in zip(docs["doc"], docs["shard"], docs["row"], strict=True)}
        seg_docs.append([doc_ref[o] for o in docs["doc"]])
        for entry in manifest["files"]:
            key = (entry["view"], entry["n"])
            table = pq.read_table(root / entry["path"]).to_pydict()
            rows = merged.setdefault(key, {})
            this_seg: dict[int, list[tuple[str, int]]] = {}
            # every row: count 1, docs 1, sample [doc0]; rows seen more than once are in the repeated file
            sample_col = [[o] for o in table["doc0"]] if "doc0" in table else [[] for _ in table["hash"]]
            count_col, docs_col = [1] * len(table["hash"]), [1] * len(table["hash"])
            rep = pq.read_table(root / entry["repeated_file"]["path"]).to_pydict()
            where = {h: i for i, h in enumerate(table["hash"])}
            for j, h in enumerate(rep["hash"]):
                i = where[h]
                assert rep["count"][j] > 1 and 1 <= rep["docs"][j] <= rep["count"][j]
                count_col[i], docs_col[i] = rep["count"][j], rep["docs"][j]
                if "doc_sample" in rep:
                    lst = rep["doc_sample"][j]
                    assert lst[0] == sample_col[i][0] and lst == sorted(set(lst))
                    sample_col[i] = lst
            for h, c, d, s in zip(table["hash"], count_col, docs_col, sample_col, strict=True):
                acc = rows.setdefault(h, [0, 0])
                acc[0] += c
                acc[1] += d
                this_seg[h] = [doc_ref[o] for o in s]
                samples.setdefault(key, set()).update((h, fp, r) for fp, r in this_seg[h])
            seg_samples.setdefault(key, []).append(this_seg)
    tables = {key: sorted((h, c, d) for h, (c, d) in rows.items()) for key, rows in merged.items()}
    parts = {
        (fp, int(p), rec["docs"], rec["tokens"], rec.get("skipped", 0))
        for fp, shard in snap["shards"].items() for p, rec in shard["parts"].items()
    }
    return IndexTables(header["spec_fingerprint"], tables, samples, parts, seg_samples, seg_docs)


def shard_fingerprint(path: str | Path) -> str:
    """The content fingerprint probe records for a shard: xxh3-128 of the file bytes."""
    import xxhash

    return "xxh3-128:" + xxhash.xxh3_128_hexdigest(Path(path).read_bytes())
