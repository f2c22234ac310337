"""Golden hash values: the hash functions ARE index format v1 (``probe-ngram-v1``).

If one of these tests fails, an existing index would silently stop matching its
corpus: that is a format change (new ``hash_algorithm`` name, new format version),
never a test to update casually. The values were computed once with the code and
cross-checked against the plain-Python reference in tests/helpers.py.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from helpers import REPO, probe_env, ref_id_hash, ref_ngram_hashes, ref_normalize, ref_token_hash, ref_words
from probe import kernels
from probe.config import HASH_ALGORITHM, LEGACY_TOKENIZER_RULES, TextSpec
from probe.errors import ConfigError
from probe.text.tokenizers import MASK_TOKENS, Tokenizer, mask_hashes


def cps(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), np.uint32)


def hexes(values: np.ndarray) -> list[str]:
    return [f"0x{int(v):016x}" for v in values]


def test_constants_and_algorithm_name() -> None:
    assert HASH_ALGORITHM == "probe-ngram-v1"
    assert int(kernels.FNV_OFFSET) == 0xCBF29CE484222325
    assert int(kernels.FNV_PRIME) == 0x100000001B3
    assert int(kernels.POLY_P) == 0x9E3779B97F4A7C15
    assert int(kernels.N_SALT) == 0x632BE59BD9B4E019
    assert int(kernels.fmix64(np.uint64(1))) == 0xB456BCFC34C2CB2C  # MurmurHash3 fmix64(1)


GOLDEN_CODEPOINTS = [
    ("", 0, 0xEFD01F60BA992926),
    ("a", 0, 0x82A2A958A9BECE5B),
    ("hello", 0, 0xE9C562C0FDB23244),
    ("hello", 1, 0x8518BBFAC2E67151),
    ("hello", 2**64 - 1, 0x30F0F76786D7D512),
    ("café", 0, 0xF3DE7389B0605D9F),
    ("東京", 0, 0x9FEB640B64D8F28A),
    ("<num>", 0, 0xD799B87D0BB599FC),
]


@pytest.mark.parametrize(("token", "seed", "expected"), GOLDEN_CODEPOINTS)
def test_hash_codepoints_golden(token: str, seed: int, expected: int) -> None:
    assert int(kernels.hash_codepoints(cps(token), np.uint64(seed))) == expected
    assert ref_token_hash(token, seed) == expected


GOLDEN_IDS = {
    0: ["0xb9034ad37056f5fb", "0x0d7cea42b5057e4c", "0x5aec852590056221", "0x1bbd5c813c69a8d7",
        "0xbd2433983081ca42", "0x6a217c6bbca33764"],
    7: ["0x679592c2b1414db7", "0x2de4f488e13589c1", "0xceb9654fa184697e", "0x80b9653c93b7bf21",
        "0xca88fafbefdc6eac", "0xe0baae8969ad0db9"],
}
IDS = [0, 1, 2, 255, 50256, 2**31]


@pytest.mark.parametrize("seed", sorted(GOLDEN_IDS))
def test_hash_token_ids_golden(seed: int) -> None:
    got = kernels.hash_token_ids(np.array(IDS, np.int64), seed)
    assert hexes(got) == GOLDEN_IDS[seed]
    assert [f"0x{ref_id_hash(i, seed):016x}" for i in IDS] == GOLDEN_IDS[seed]


def test_mask_token_hashes_golden() -> None:
    assert MASK_TOKENS == ("<num>", "<q>", "<name>", "<id>")
    assert mask_hashes(0).tolist() == [15535651236798110204, 3271009369482954622, 3726302071822790640,
                                       17689602642852776711]
    assert mask_hashes(42).tolist() == [4413883824324978821, 9898742558113709987, 7026920296168455526,
                                        4452799596820307395]


SENTENCE = "The quick brown fox jumps over the lazy dog, then naps under Ωmega's 東京 tree #42 café_au_lait."
GOLDEN_WORD_TOKENS = {
    0: ["0xcb3ff435b889fb31", "0x7ef60d41dddb4aaa", "0xf230a0e58e68211b", "0x92fdce52a1b10570",
        "0x82057e5d6ecafbb8", "0xb804090757a9253a", "0xcb3ff435b889fb31", "0x3ba3ceac530b282f",
        "0xf3805bf28273c516", "0xb3cdeb14179863d4", "0xc7a77d4fb84be7dd", "0xd50c9f3c5910eb8d",
        "0x6c918d07883c6358", "0xcc38350dbfbd2cea", "0x9feb640b64d8f28a", "0x2f652ab87846e737",
        "0x810b196a56ee3cec", "0x2ae63db34beebdec"],
    42: ["0xccc0731f16327946", "0xe8988444ed9e1785", "0x8c6dc08bea3a4654", "0xce289ea8c2618c6c",
         "0x638da3c17256909b", "0x34215e0d52146f0c", "0xccc0731f16327946", "0x4f21fa5f83ba0a88",
         "0xd0deee92b7409418", "0x2fd76288572191f5", "0x2740dea82f3f781e", "0xbac1d4960770742d",
         "0xbfd45f0578105af4", "0x16529a176cd55af2", "0x82fef71dfab1c9d0", "0x5860d2e68405cb3c",
         "0x58f7d9148903905e", "0x3390d9e515b64049"],
}
GOLDEN_NGRAMS = {
    (0, 1): ["0x6fb6ce6c469024df", "0x13627ae3837fc64b", "0x1ededfbc0cdae4f9", "0x48984855cc7b4818",
             "0x0de7c0ae9197b441", "0xf1fc21749572dab6", "0x6fb6ce6c469024df", "0xfa14689f7b3a9b30",
             "0x1711a9c36068fd59", "0xe174702e4b8df61b", "0xb57903cad5f8b08c", "0xe72235b288b8ce65",
             "0x2552f3218d2aa50f", "0xa5b2a8e88b992841", "0xcba250c9816368d4", "0x530cbd6b6e9abb79",
             "0xc8624fb6de5d3fad", "0xe587b7304cf7910f"],
    (0, 2): ["0xfbce2129912150fe", "0xe54de8fedc9698d7", "0xd03c098b028657ff", "0x630c7ff15effaa07",
             "0x6bc975d015d2a590", "0x30b7afe3376d3b25", "0x96907ac5ce4e7346", "0xc66a4ee135ca505c",
             "0xb6b76d827c2c3dac", "0x79d9bc954d6d7d72", "0x831cbd703a4d2fcf", "0xd713ccf64df34d2a",
             "0xa1ea14faa08221eb", "0x2482fd2c57fcf05b", "0xa9cd879442717d24", "0x1a3d39d7063ae7a0",
             "0xc8b5daf93108b7da"],
    (0, 8): ["0x69b5caef7c867aff", "0xbc548bb1c5a3400a", "0x65c5aaab17ddd752", "0x19201598e5a98e8c",
             "0xf7eff342e279311d", "0x1a2f5acc1b378faa", "0xf04cbb0d1c3b6689", "0x7149f6c1bac2a6ab",
             "0x344023392e8ea37a", "0xa5e086f0c1494b54", "0xcedb811f85ff2dc5"],
    (0, 13): ["0xbf2c0a916005c664", "0xe40e5b34128ff940", "0x36856a7c27f73ebb", "0x4f88cee67d972f42",
              "0xbb2d0320d0f7d4c6", "0x1259840c15c4b56c"],
    (42, 1): ["0x0774259af898b1fa", "0x0fd990c28378df51", "0x40f83e1a57a9dafa", "0xf10338627d69e78f",
              "0xb03a62682cbc0465", "0x361dd09c28745f33", "0x0774259af898b1fa", "0xdeaa0a3739a369cd",
              "0xc197f8276bb73b8b", "0x959e5a0b524c5d30", "0xce6a19196010f8f6", "0xd094611fb1449bb4",
              "0xae23b4010fed378d", "0xffd50721ad16d2ac", "0x4d758b72a509b398", "0x281a31a4e7287e07",
              "0x7df055c2a60c537e", "0x018795ab7214b918"],
    (42, 2): ["0xfa9672459f71445e", "0xd4d903aaa4de499b", "0xebfe144adce04f76", "0x0009f25e5fbb4142",
              "0x28d449c649402905", "0x67cf39650fa9b21a", "0x6fbaf411de8bd0e9", "0x94f3872c05dd54e3",
              "0xcd7219ece9a70e10", "0x770bb6f43a93cde9", "0x68194aaffd1a5d68", "0x0475a465d187b890",
              "0x9b5c2982e8bbfa9a", "0x83e43ca6b34f9c44", "0x3109ec1fbcaabd2d", "0x34e506bba5fc6e75",
              "0x7bec01a3a078f778"],
    (42, 8): ["0xffc88e2350c3a0ad", "0xa07156f67e84f9f0", "0xe2d04d76f0f24c62", "0xdfa92ed0cd841f51",
              "0xaab45895562341d7", "0x627ab41ef6a2a103", "0xddbee7738fd918d2", "0xb6020ab6193d4e04",
              "0xa02dd5c515a249ae", "0x20cedf429838a429", "0xcf462a388849bbe7"],
    (42, 13): ["0x4f9452d709b53caa", "0x845c10e8a672eccb", "0xfec1cfaa0367fcf9", "0x7fdb40dc22049fb0",
               "0xf5bd2883f102310e", "0xc3cb0d095b296dd7"],
}


# The text spec of an index built before tokenizer_rules existed, as its probe-index.json stores it.
LEGACY_SPEC_DICT = {"bucket_bits": 8, "doc_sample_k": 4, "hash_algorithm": "probe-ngram-v1",
                    "normalizer": "nfkc_casefold", "ns": [8, 13], "sample_mod": 1, "seed": 0, "tokenizer": "words",
                    "tokenizer_sha256": None, "unicode_version": "14.0.0", "views": ["surface"]}


def legacy_spec(seed: int) -> TextSpec:
    return TextSpec.from_dict({**LEGACY_SPEC_DICT, "seed": seed})


@pytest.mark.parametrize("seed", sorted(GOLDEN_WORD_TOKENS))
def test_words_tokenizer_token_hashes_golden(seed: int) -> None:
    """The rules-1 vectors: what every index built before tokenizer_rules existed holds."""
    assert legacy_spec(seed) == TextSpec(seed=seed, tokenizer_rules=1, unicode_version="14.0.0")
    tb = Tokenizer(legacy_spec(seed)).tokenize([SENTENCE])
    assert hexes(tb.token_hashes) == GOLDEN_WORD_TOKENS[seed]
    # 'Ωmega's' -> 'ωmega', 's'; '#42' -> '42'; 'café_au_lait' is one token; so is '東京'
    assert tb.doc_token_ends.tolist() == [18]


def test_legacy_spec_dict_loads_as_rules_1_and_keeps_its_fingerprint() -> None:
    spec = TextSpec.from_dict(LEGACY_SPEC_DICT)
    assert spec.tokenizer_rules == LEGACY_TOKENIZER_RULES == 1
    assert spec.to_dict() == LEGACY_SPEC_DICT  # written back without the field
    assert spec.fingerprint() == "0acdf9e5058fccc4"  # the fingerprint such an index was committed with
    assert TextSpec.from_dict(spec.to_dict()) == spec


def test_new_specs_default_to_the_newest_rules_and_store_them() -> None:
    spec = TextSpec(unicode_version="14.0.0")
    assert spec.tokenizer_rules == 3  # 3: the pattern view also masks sentence-initial names
    assert spec.to_dict() == {**LEGACY_SPEC_DICT, "tokenizer_rules": 3}
    assert spec.fingerprint() != TextSpec.from_dict(LEGACY_SPEC_DICT).fingerprint()
    assert TextSpec.from_dict(spec.to_dict()) == spec
    assert any(line.startswith("tokenizer_rules: 3 != 1") for line in spec.diff(TextSpec.from_dict(LEGACY_SPEC_DICT)))
    with pytest.raises(ConfigError, match="unknown tokenizer_rules 4"):
        TextSpec(tokenizer_rules=4)


# Tokenizer rules 2: Han, kana and Thai letters one token per character cluster (with a variation selector
# on 葛), digits and Latin words still runs.
CJK_SENTENCE = "東京タワーは2023年に完成した。我们使用Python编程，ภาษาไทย ๑๒๓ 葛\U000E0100城"
CJK_TOKENS = ["東", "京", "タ", "ワ", "ー", "は", "2023", "年", "に", "完", "成", "し", "た", "我", "们", "使", "用",
              "python", "编", "程", "ภ", "า", "ษ", "า", "ไ", "ท", "ย", "๑๒๓", "葛\U000E0100", "城"]
GOLDEN_RULES2_TOKENS = {
    0: ["0xba0814a17bc1f048", "0x03f9dcb7d723c4a7", "0x5c6bfe81f37ba3d6", "0x51e55596d9398210",
        "0xe6048df178c32909", "0xf91a31b3645403bf", "0x7aea25eaf3dd5b37", "0x6e462707bb463422",
        "0xd2f881d9b5511b10", "0x1e62fec4fc9a6934", "0xbaed75f525bb74a6", "0xab7e374d40ca0d78",
        "0x766b10e6f962bfa0", "0xbc81110998fdd4ce", "0x7b58100f3dd1779c", "0x489086b7dc2639ca",
        "0x49294ae9b8e1b952", "0xd0c744ebce8251f2", "0xb83b6d8760189bbe", "0x5d237c0f5a6116df",
        "0x383fa7d2f92a7d28", "0xee799435eaab7d75", "0xb51be8084d9d89e9", "0xee799435eaab7d75",
        "0xe256aad3127404d5", "0xa1a1b631778ac2b3", "0xd06d3567b47ae521", "0xfa68b5a3919fafd1",
        "0xb31e53689228138b", "0x1f1297ddaa7d9aa3"],
    42: ["0x83bc0047d669f4be", "0x81de9737d38ce59d", "0x84ea18af56a13af4", "0xa8bcd154240f00f9",
         "0x223c73d80c2f3c2d", "0x1882432856d8d677", "0xe3d7d58554dfb4fa", "0x9aaba0bdeea14225",
         "0x257792f9bc202544", "0x4186409db569daf7", "0xb116358c87f2e867", "0xac1f6941213b0e57",
         "0xa38aab7da69100a3", "0xf8d4ea02ba703d2f", "0xfab555d1e0293e2f", "0x01f9775c5219410e",
         "0xe0a133f96ed380d2", "0xe6cea0edfdc88ac2", "0xe99ba83fffc8cf44", "0xeb3f1b2d740d14d5",
         "0xb0e6b215ad362b05", "0xd027757c2dd54cd3", "0x3ea35e4994f756de", "0xd027757c2dd54cd3",
         "0x5320ce6c0e142808", "0x1ac38ca1a1617e46", "0xe98a0aaa0c2c3c41", "0x4395be3a47cba3de",
         "0xba6c72a7722576a2", "0xd67a70fb67d94861"],
}
GOLDEN_RULES2_NGRAMS_8 = [
    "0xf29c5abf65774825", "0x0d337ab59c293e70", "0x74aa3fbedc2fa780", "0x6de8d50e482dd799", "0xd2076ff101bce32f",
    "0x8671eb0f39d7ff83", "0xcc75aba4d1d17bf0", "0x3f4721fb58ce5504", "0xbd3ed036630292c6", "0x11ae626017b6e649",
    "0xb0356bf054610747", "0xbe8cee1f00fec6f1", "0x0bec49691f1ae96a", "0xd69095cd1a2336a2", "0xc09007c86049fecb",
    "0x4fb533f394a4b3f6", "0xc6e2b80efab25b4b", "0x5d43541cf78b04a2", "0xa8100b28e3c1b96f", "0xad71f579537d2df0",
    "0x827f6267452c5b98", "0x7a05b8e091071b2a", "0xd34fb351979b9ea6"]


@pytest.mark.parametrize("seed", sorted(GOLDEN_RULES2_TOKENS))
def test_rules_2_token_hashes_golden(seed: int) -> None:
    tb = Tokenizer(TextSpec(seed=seed)).tokenize([CJK_SENTENCE], with_offsets=True)
    assert hexes(tb.token_hashes) == GOLDEN_RULES2_TOKENS[seed]
    assert [tb.texts[0][a:b] for a, b in zip(tb.token_starts.tolist(), tb.token_ends.tolist(), strict=True)] \
        == CJK_TOKENS
    assert ref_words(ref_normalize(CJK_SENTENCE)) == CJK_TOKENS
    assert [f"0x{ref_token_hash(t, seed):016x}" for t in CJK_TOKENS] == GOLDEN_RULES2_TOKENS[seed]
    # rules 1 on the same text: the old runs, which an old index keeps
    assert Tokenizer(legacy_spec(seed)).token_texts(CJK_SENTENCE)[:3] == ["東京タワーは2023年に完成した", "我们使用python编程",
                                                                          "ภาษาไทย"]
    # ASCII text tokenizes the same under both rules
    assert Tokenizer(TextSpec(seed=seed)).tokenize([SENTENCE.replace("東京 ", "")]).token_hashes.tolist() == \
        Tokenizer(legacy_spec(seed)).tokenize([SENTENCE.replace("東京 ", "")]).token_hashes.tolist()


def test_rules_2_ngram_hashes_golden() -> None:
    tb = Tokenizer(TextSpec()).tokenize([CJK_SENTENCE])
    h, _, _ = kernels.ngram_hashes(tb.token_hashes, tb.doc_token_ends, 8, 1)
    assert hexes(h) == GOLDEN_RULES2_NGRAMS_8
    assert [f"0x{v:016x}" for v in ref_ngram_hashes([int(t) for t in tb.token_hashes], 8)] == GOLDEN_RULES2_NGRAMS_8


@pytest.mark.parametrize(("seed", "n"), sorted(GOLDEN_NGRAMS))
def test_ngram_hashes_golden(seed: int, n: int) -> None:
    tokens = np.array([int(x, 16) for x in GOLDEN_WORD_TOKENS[seed]], np.uint64)
    h, ends, pos = kernels.ngram_hashes(tokens, np.array([tokens.shape[0]], np.int64), n, 1)
    assert hexes(h) == GOLDEN_NGRAMS[(seed, n)]
    assert ends.tolist() == [len(tokens) - n + 1]
    assert pos.tolist() == list(range(len(tokens) - n + 1))
    ref = ref_ngram_hashes([int(t) for t in tokens], n)
    assert [f"0x{v:016x}" for v in ref] == GOLDEN_NGRAMS[(seed, n)]


def test_sample_mod_keeps_exactly_multiples() -> None:
    tokens = np.array([int(x, 16) for x in GOLDEN_WORD_TOKENS[0]], np.uint64)
    ends = np.array([tokens.shape[0]], np.int64)
    full, _, full_pos = kernels.ngram_hashes(tokens, ends, 2, 1)
    for k in (2, 3, 5):
        kept, kept_ends, pos = kernels.ngram_hashes(tokens, ends, 2, k)
        expected = [int(v) for v in full if int(v) % k == 0]
        assert [int(v) for v in kept] == expected
        assert kept_ends.tolist() == [len(expected)]
        assert pos.tolist() == [int(p) for v, p in zip(full, full_pos, strict=True) if int(v) % k == 0]


_CHILD = """
import json, numpy as np
from probe import kernels
from probe.config import TextSpec
from probe.text.tokenizers import Tokenizer
tb = Tokenizer(TextSpec(seed={seed}, tokenizer_rules=1)).tokenize([{text!r}])
h, _, _ = kernels.ngram_hashes(tb.token_hashes, tb.doc_token_ends, 2, 1)
print(json.dumps([str(int(x)) for x in h]))
"""


def test_hashes_stable_across_processes_and_pythonhashseed() -> None:
    """Python's salted hash() must play no part: two interpreters with different PYTHONHASHSEED agree."""
    outs = []
    for hashseed in ("0", "12345"):
        code = _CHILD.format(seed=0, text=SENTENCE)
        res = subprocess.run([sys.executable, "-c", code], env=probe_env({"PYTHONHASHSEED": hashseed}),
                             capture_output=True, text=True, timeout=120, cwd=REPO, check=True)
        outs.append(json.loads(res.stdout))
    assert outs[0] == outs[1]
    assert [f"0x{int(v):016x}" for v in outs[0]] == GOLDEN_NGRAMS[(0, 2)]
