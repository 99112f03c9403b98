"""The byte-level BPE tokenizer (scratch.bpe, re-exported by scratch.text), checked
against merges computed by hand and against a naive trainer written here from the
definition: count every pair of every chunk, merge the most frequent one, repeat."""

import json

import numpy as np
import pytest
import regex
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scratch.bpe import ENDOFTEXT, GPT2_PATTERN, merge
from scratch.text import BPETokenizer

# GPT-2's pattern, typed here from openai/gpt-2 src/encoder.py (not imported from
# the library): the tokenizer must pre-tokenize exactly as GPT-2 does.
GPT2 = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def naive_merge(ids, pair, new):
    """Slices instead of the library's element tests."""
    out, i = [], 0
    while i < len(ids):
        if ids[i : i + 2] == list(pair):
            out.append(new)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def naive_train(text, n_merges, specials=()):
    """Every chunk of the text kept separately (no frequency table, no incremental
    counts): count all pairs, take the most frequent (ties: the smallest pair),
    merge it everywhere. Returns merges, their counts and the final chunks."""
    pieces = regex.split("|".join(map(regex.escape, specials)), text) if specials else [text]
    chunks = [list(c.encode()) for p in pieces for c in regex.findall(GPT2, p)]
    merges, counts = [], []
    for k in range(n_merges):
        count = {}
        for c in chunks:
            for pair in zip(c, c[1:]):
                count[pair] = count.get(pair, 0) + 1
        if not count:
            break
        best = min(count, key=lambda p: (-count[p], p))
        merges.append(best)
        counts.append(count[best])
        chunks = [naive_merge(c, best, 256 + k) for c in chunks]
    return merges, counts, chunks


def synthetic_text(n_words=3000, seed=0):
    """Words of a small alphabet (many repeated pairs, many ties), punctuation,
    digits, newlines, contractions and some non-ASCII."""
    rng = np.random.default_rng(seed)
    syllables = ["th", "e", "an", "d", "to", "be", "or", "no", "t", "é", "ß", "日本", "'s"]
    words = []
    for _ in range(n_words):
        w = "".join(rng.choice(syllables, rng.integers(1, 4)))
        words.append(w if rng.random() > 0.1 else w.upper())
        words.append(rng.choice([" ", " ", " ", ", ", ".\n", "  ", " 42 ", "\n\n"]))
    return "".join(words)


MULTILINGUAL = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
    "All:\nSpeak, speak. We'll go, it's 1605!\n"
    "Ça va? Naïve café — 東京で会いましょう。 Привет, мир! 🙂🙃 👍🏽 e\u0301 ﬁ\t\r\n"
) * 20


@pytest.fixture(scope="module")
def tok():
    return BPETokenizer().train(MULTILINGUAL, 400, special_tokens=[ENDOFTEXT, "<|pad|>"])


def test_the_pattern_is_gpt2s():
    assert GPT2_PATTERN == GPT2
    assert regex.findall(GPT2_PATTERN, "Hello world's  end 123!!\n\n") == [
        "Hello", " world", "'s", " ", " end", " 123", "!!", "\n\n"]


def test_merge_reads_left_to_right():
    assert merge([1, 1, 1], (1, 1), 9) == [9, 1]
    assert merge([1, 1, 1, 1], (1, 1), 9) == [9, 9]
    assert merge([1, 2, 3, 1, 2], (1, 2), 7) == [7, 3, 7]
    assert merge([], (1, 2), 7) == [] and merge([1], (1, 2), 7) == [1]


def test_first_merges_by_hand():
    # "aaabdaaabac" is one chunk. Pairs: aa 4 (two in each "aaa"), ab 2, bd, da,
    # ba, ac 1. Merge aa -> 256: [256 a b d 256 a b a c]; now (256, a) and (a, b)
    # both occur twice, the tie goes to the smaller pair (97, 98) -> 257:
    # [256 257 d 256 257 a c]; then (256, 257) twice -> 258.
    t = BPETokenizer().train("aaabdaaabac", 259)
    assert t.merges == [(97, 97), (97, 98), (256, 257)]
    assert t.merge_counts == [4, 2, 2]
    assert t.encode("aaabdaaabac") == [258, ord("d"), 258, ord("a"), ord("c")]
    assert t.vocab[258] == b"aaab" and t.vocab_size == 259


def test_merges_stay_inside_chunks_and_training_stops_without_pairs():
    # Chunks "ab" and " ab": (a, b) twice, then (" ", ab) once; (b, " ") is never
    # counted, it spans two chunks. After two merges no pair is left.
    t = BPETokenizer().train("ab ab", 300)
    assert t.merges == [(97, 98), (32, 256)] and t.merge_counts == [2, 1]
    assert t.vocab_size == 258 and t.encode("ab ab") == [256, 257]


def test_incremental_trainer_equals_the_naive_one():
    text = synthetic_text()
    fast = BPETokenizer().train(text, 256 + 150)
    merges, counts, chunks = naive_train(text, 150)
    assert len(merges) == 150
    assert fast.merges == merges and fast.merge_counts == counts
    # Encoding the training text gives exactly the segmentation training ended with.
    assert fast.encode(text) == [t for c in chunks for t in c]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet="ab c\nd'é", max_size=60), st.integers(0, 25))
def test_incremental_trainer_equals_the_naive_one_on_any_text(text, n):
    merges, counts, chunks = naive_train(text, n)
    fast = BPETokenizer().train(text, 256 + n)
    assert fast.merges == merges and fast.merge_counts == counts
    assert fast.encode(text) == [t for c in chunks for t in c]


def test_special_tokens_bound_training():
    text = "low lower" + ENDOFTEXT + "newest" + ENDOFTEXT + "low"
    t = BPETokenizer().train(text, 300, special_tokens=[ENDOFTEXT])
    merges, counts, _ = naive_train(text, 300, specials=[ENDOFTEXT])
    assert t.merges == merges and t.merge_counts == counts
    assert all(b"<" not in t.vocab[256 + i] for i in range(len(t.merges)))
    assert t.special_tokens == {ENDOFTEXT: 256 + len(merges)}


def test_truncated_is_a_shorter_training_run():
    text = synthetic_text(800, seed=1)
    long = BPETokenizer().train(text, 500, special_tokens=[ENDOFTEXT])
    short = BPETokenizer().train(text, 300, special_tokens=[ENDOFTEXT])
    assert long.truncated(300) == short
    assert long.truncated(300).merge_counts == short.merge_counts
    assert short.special_tokens == {ENDOFTEXT: 299}
    with pytest.raises(ValueError, match="vocab_size must be in"):
        long.truncated(long.vocab_size + 1)


EXTRA = ["🙂", "👍🏽", "e\u0301", "\u0000", "\x7f", "\u200d", "\r\n", "  ", ENDOFTEXT,
         "<|pad|>", "<|endoftext", "|>", "東京", "\ufffd", "\U0010ffff"]
TEXTS = st.lists(st.one_of(st.text(), st.sampled_from(EXTRA)), max_size=8).map("".join)


@settings(max_examples=300, deadline=None)
@given(TEXTS)
def test_every_string_round_trips(tok, text):
    for t in (tok, BPETokenizer()):
        ids = t.encode(text)
        assert t.decode(ids) == text
        assert all(0 <= i < t.vocab_size - len(t.special_tokens) for i in ids)
        assert t.decode(t.encode(text, allowed_special="all")) == text


def test_special_tokens_only_when_allowed(tok):
    eot, pad = tok.special_tokens[ENDOFTEXT], tok.special_tokens["<|pad|>"]
    assert (eot, pad) == (tok.vocab_size - 2, tok.vocab_size - 1)
    text = "a" + ENDOFTEXT + "b<|pad|>"
    assert tok.encode(text, allowed_special="all") == [97, eot, 98, pad]
    assert tok.encode(text, allowed_special={ENDOFTEXT}) == (
        [97, eot] + tok.encode("b<|pad|>"))
    plain = tok.encode(text)  # not allowed: ordinary text, never the special ids
    assert eot not in plain and pad not in plain and len(plain) > 4
    assert tok.decode([eot]) == ENDOFTEXT
    with pytest.raises(ValueError, match="'<|unk|>' is not a special token"):
        tok.encode(text, allowed_special={"<|unk|>"})
    with pytest.raises(ValueError, match="'all' or a collection"):
        tok.encode(text, allowed_special=ENDOFTEXT)


def test_the_longest_special_token_wins():
    t = BPETokenizer(special_tokens=["<s>", "<s><s>"])
    assert t.encode("<s><s><s>", allowed_special="all") == [257, 256]


def test_save_and_load_are_json_and_identical(tok, tmp_path):
    path = tmp_path / "sub" / "tok.json"
    tok.save(path)
    record = json.loads(path.read_text())
    assert record["format"] == "scratch.bpe" and record["pattern"] == GPT2
    assert list(tmp_path.rglob("*.tmp")) == []  # the atomic write left nothing
    back = BPETokenizer.load(path)
    assert back == tok and back.vocab == tok.vocab
    assert back.special_tokens == tok.special_tokens
    assert back.encode(MULTILINGUAL, allowed_special="all") == tok.encode(
        MULTILINGUAL, allowed_special="all")


@pytest.mark.parametrize("content, message", [
    ("{not json", "cannot load a tokenizer"),
    (json.dumps({"format": "pickle"}), "not a scratch.bpe version 1 file"),
    (json.dumps({"format": "scratch.bpe", "version": 1, "pattern": GPT2,
                 "merges": [[97, 300]], "special_tokens": []}), "merge 0 = \\(97, 300\\)"),
    (json.dumps({"format": "scratch.bpe", "version": 1, "pattern": GPT2,
                 "merges": [[97, 98], [97, 98]], "special_tokens": []}), "merge 1"),
    (json.dumps({"format": "scratch.bpe", "version": 1, "pattern": GPT2, "merges": []}),
     "special_tokens"),
])
def test_load_rejects_damaged_files(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        BPETokenizer.load(path)


def test_decoding_a_cut_character_replaces_it():
    t = BPETokenizer()
    ids = t.encode("€")  # three bytes
    assert ids == [0xE2, 0x82, 0xAC] and t.decode(ids[:2]) == "\ufffd"
    assert t.decode_bytes(ids[:2]) == b"\xe2\x82"
    assert t.decode(np.array(ids)) == "€"  # NumPy ids are ids


def test_bad_input_is_a_clear_value_error(tok):
    with pytest.raises(ValueError, match="vocab_size=257 is below 256 bytes \\+ 2"):
        BPETokenizer().train("abc", 257, special_tokens=["<a>", "<b>"])
    with pytest.raises(ValueError, match="vocab_size must be an int"):
        BPETokenizer().train("abc", 300.0)
    with pytest.raises(ValueError, match="text must be a str, got bytes"):
        BPETokenizer().train(b"abc", 300)
    with pytest.raises(ValueError, match="text must be a str, got list"):
        tok.encode(["a"])
    with pytest.raises(ValueError, match="lone surrogate '\\\\ud800' at index 1"):
        tok.encode("a\ud800")
    for bad in (-1, tok.vocab_size):
        with pytest.raises(ValueError, match=f"unknown token id {bad}"):
            tok.decode([97, bad])
    for bad in (1.0, "a", True):
        with pytest.raises(ValueError, match="token ids must be ints"):
            tok.decode([bad])
    with pytest.raises(ValueError, match="distinct"):
        BPETokenizer(special_tokens=["<a>", "<a>"])
    with pytest.raises(ValueError, match="non-empty str"):
        BPETokenizer().train("abc", 300, special_tokens=[""])
