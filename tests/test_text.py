"""scratch.text: vocabularies, context windows, splits, block sampling, sampling."""

import numpy as np
import pytest
import scratch.text as text

from scratch.text import (
    BlockSampler,
    chunks,
    Vocab,
    context_windows,
    delayed_key,
    ngram_nll,
    sample,
    top_k_probabilities,
    train_val_test,
)

WORDS = ["emma", "olivia", "ava"]


def test_vocab_round_trip_and_boundary_first():
    vocab = Vocab.from_text(WORDS, boundary=".")
    assert vocab.itos[0] == "." and vocab.itos[1:] == sorted(set("".join(WORDS)))
    assert vocab.decode(vocab.encode("olivia")) == "olivia"
    assert vocab.encode("ava").dtype == np.int64
    with pytest.raises(ValueError, match="'z' is not in the vocabulary"):
        vocab.encode("zoe")
    with pytest.raises(ValueError, match="boundary token"):
        Vocab.from_text(["a.b"], boundary=".")
    with pytest.raises(ValueError, match="distinct"):
        Vocab(["a", "a"])


def test_context_windows_pad_with_the_boundary():
    vocab = Vocab.from_text(WORDS, boundary=".")
    X, Y = context_windows(["emma"], vocab, context=3)
    assert X.shape == (5, 3) and Y.shape == (5,)  # len("emma") + 1 pairs
    rows = ["".join(vocab.decode(x)) + ">" + vocab.itos[y] for x, y in zip(X, Y)]
    assert rows == ["...>e", "..e>m", ".em>m", "emm>a", "mma>."]
    X1, Y1 = context_windows(WORDS, vocab, context=1)
    assert len(Y1) == sum(len(w) + 1 for w in WORDS)
    with pytest.raises(ValueError, match="context must be >= 1"):
        context_windows(WORDS, vocab, 0)


def test_splits_are_disjoint_and_seeded():
    items = [f"w{i}" for i in range(100)]
    a, b, c = train_val_test(items, seed=1)
    assert (len(a), len(b), len(c)) == (80, 10, 10)
    assert set(a) | set(b) | set(c) == set(items) and not set(a) & set(b)
    assert train_val_test(items, seed=1) == (a, b, c)
    assert train_val_test(items, seed=2)[0] != a


def test_block_sampler_shifts_by_one_and_resumes():
    ids = np.arange(1000)
    s = BlockSampler(ids, block_size=8, batch_size=4, seed=0)
    x, y = s.batch()
    assert x.shape == y.shape == (4, 8)
    np.testing.assert_array_equal(y, x + 1)  # ids are their positions here
    state = s.state_dict()
    after = s.batch()
    s2 = BlockSampler(ids, 8, 4, seed=123)
    s2.load_state_dict(state)
    np.testing.assert_array_equal(s2.batch()[0], after[0])
    with pytest.raises(ValueError, match="block_size"):
        BlockSampler(ids, 1000, 4)


def test_top_k_and_temperature():
    logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05]]))
    np.testing.assert_allclose(top_k_probabilities(logits), [[0.5, 0.3, 0.15, 0.05]])
    p = top_k_probabilities(logits, top_k=2)
    np.testing.assert_allclose(p, [[0.625, 0.375, 0, 0]])
    cold = top_k_probabilities(logits, temperature=0.05)
    assert cold[0, 0] > 0.99
    hot = top_k_probabilities(logits, temperature=100)
    assert hot.max() - hot.min() < 0.02
    with pytest.raises(ValueError, match="temperature"):
        top_k_probabilities(logits, temperature=0)



def test_top_p_keeps_the_smallest_nucleus_reaching_p():
    logits = np.log(np.array([[0.05, 0.5, 0.15, 0.3], [0.25, 0.25, 0.25, 0.25]]))
    # 0.5 < 0.7 so 0.3 is needed too; their sum 0.8 reaches 0.7: two tokens.
    p = top_k_probabilities(logits, top_p=0.7)
    np.testing.assert_allclose(p[0], [0, 0.625, 0, 0.375])
    # Just below their sum still two; just above it, three.
    np.testing.assert_allclose(top_k_probabilities(logits, top_p=0.79)[0], p[0])
    assert (top_k_probabilities(logits, top_p=0.81)[0] > 0).sum() == 3
    # A uniform row needs three of four tokens for 0.7 (ties in index order).
    np.testing.assert_allclose(p[1], [1 / 3, 1 / 3, 1 / 3, 0])
    # top_p=1 changes nothing; a tiny p keeps only the argmax.
    np.testing.assert_allclose(
        top_k_probabilities(logits, top_p=1.0), top_k_probabilities(logits)
    )
    np.testing.assert_allclose(top_k_probabilities(logits, top_p=1e-6)[0], [0, 1, 0, 0])
    # After top-k: the nucleus of the renormalised top 3.
    both = top_k_probabilities(logits[:1], top_k=3, top_p=0.6)
    np.testing.assert_allclose(both[0], [0, 0.625, 0, 0.375])
    with pytest.raises(ValueError, match="top_p"):
        top_k_probabilities(logits, top_p=0)
    fn = lambda ids: np.tile(logits[0], (len(ids), 1))  # noqa: E731
    rows = sample(fn, np.zeros((300, 1)), 4, top_p=0.7, rng=0)
    drawn = np.concatenate(rows)
    assert set(drawn.tolist()) == {1, 3}
    assert abs((drawn == 1).mean() - 0.625) < 0.05

def test_sample_draws_from_the_model_distribution():
    """A fixed next-token distribution: the empirical frequencies match it."""
    probs = np.array([0.1, 0.6, 0.3])
    fn = lambda ids: np.log(np.tile(probs, (len(ids), 1)))  # noqa: E731
    rows = sample(fn, np.zeros((2000, 1)), max_new_tokens=5, rng=0)
    drawn = np.concatenate(rows)
    freq = np.bincount(drawn, minlength=3) / len(drawn)
    np.testing.assert_allclose(freq, probs, atol=0.02)
    again = sample(fn, np.zeros((2000, 1)), max_new_tokens=5, rng=0)
    assert all((a == b).all() for a, b in zip(rows, again))  # seeded
    top1 = sample(fn, np.zeros((50, 1)), 5, top_k=1, rng=1)
    assert all((r == 1).all() for r in top1)


def test_sample_stops_at_the_stop_token_and_sees_its_context():
    """A model that emits token (last + 1) and stops at 3."""
    def fn(ids):
        logits = np.full((len(ids), 5), -1e9)
        logits[np.arange(len(ids)), np.minimum(ids[:, -1] + 1, 4)] = 0
        return logits

    rows = sample(fn, np.array([[0], [2]]), max_new_tokens=10, stop=3)
    assert [r.tolist() for r in rows] == [[1, 2, 3], [3]]


def test_ngram_nll_with_one_token_is_the_smoothed_bigram():
    """Against an independent computation: the add-alpha table of bigram counts."""
    words = ["emma", "olivia", "ava", "isabella", "sophia", "mia"]
    vocab = Vocab.from_text(words, boundary=".")
    held_out = ["amelia", "ella"]
    X, Y = context_windows(words, vocab, 1)
    table = np.zeros((len(vocab), len(vocab)))
    np.add.at(table, (X[:, 0], Y), 1)
    P = (table + 0.5) / (table + 0.5).sum(axis=1, keepdims=True)
    Xh, Yh = context_windows(held_out, vocab, 1)
    want = -np.log(P[Xh[:, 0], Yh]).mean()
    nll, unseen, n_contexts = ngram_nll(words, held_out, vocab, 1, 0.5)
    assert nll == pytest.approx(want, rel=1e-12)
    assert n_contexts == len(set(X[:, 0]))
    assert unseen == pytest.approx(np.mean([x not in set(X[:, 0]) for x in Xh[:, 0]]))
    longer, unseen3, _ = ngram_nll(words, held_out, vocab, 3, 0.5)
    assert unseen3 > unseen  # longer contexts are seen less often
    with pytest.raises(ValueError, match="alpha must be > 0"):
        ngram_nll(words, held_out, vocab, 1, 0)


def test_delayed_key_repeats_the_key_after_fillers():
    seqs = delayed_key(500, 6, np.random.default_rng(0))
    assert seqs.shape == (500, 8) and seqs.dtype == np.int64
    np.testing.assert_array_equal(seqs[:, 0], seqs[:, -1])
    assert seqs[:, 0].max() < 8 and (seqs[:, 1:-1] >= 8).all() and seqs.max() < 16
    assert len(set(seqs[:, 0])) == 8  # every key occurs
    with pytest.raises(ValueError, match="delay >= 0"):
        delayed_key(5, -1, np.random.default_rng(0))


def test_chunks_are_consecutive_and_shifted():
    x, y = chunks(np.arange(23), 5)
    assert x.shape == y.shape == (4, 5)
    np.testing.assert_array_equal(x.ravel(), np.arange(20))
    np.testing.assert_array_equal(y, x + 1)
    assert chunks(np.arange(23), 5, limit=2)[0].shape == (2, 5)
    with pytest.raises(ValueError, match="block must be in"):
        chunks(np.arange(5), 5)


# --- the numbers-to-words translation task


def _words_to_number(words):
    """An independent reading of the words: a running total per scale."""
    units = {w: i for i, w in enumerate(text._ONES)}
    units |= {w: 10 * i for i, w in enumerate(text._TENS) if i >= 2}
    scales = {"thousand": 10**3, "million": 10**6, "billion": 10**9}
    total, group = 0, 0
    for w in words:
        if w in units:
            group += units[w]
        elif w == "hundred":
            group *= 100
        else:
            total += group * scales[w]
            group = 0
    return total + group


def test_number_words_known_values_and_round_trip():
    assert text.number_words(0) == ["zero"]
    assert text.number_words(1205) == "one thousand two hundred five".split()
    assert text.number_words(110) == "one hundred ten".split()
    assert text.number_words(10**9 + 5) == "one billion five".split()
    assert text.number_words(70_000_019) == "seventy million nineteen".split()
    rng = np.random.default_rng(0)
    for n in list(rng.integers(0, 10**12, 2000)) + [10**12 - 1, 10**6, 1000, 999]:
        words = text.number_words(int(n))
        assert set(words) <= set(text.NUMBER_WORDS)
        assert _words_to_number(words) == n, (n, words)
    with pytest.raises(ValueError, match="10\\*\\*12"):
        text.number_words(10**12)


def test_numbers_task_splits_are_disjoint_and_arrays_teacher_force():
    data = text.numbers_task(600, 100, 100, min_digits=3, max_digits=9, seed=1)
    numbers = {s: {"".join(x) for x, _ in data[s]} for s in ("train", "val", "test")}
    assert [len(numbers[s]) for s in ("train", "val", "test")] == [600, 100, 100]
    assert not numbers["train"] & numbers["test"] and not numbers["val"] & numbers["test"]
    lengths = {len(x) for x, _ in data["train"]}
    assert lengths == set(range(3, 10))
    a = data.arrays("test")
    assert a["src"].shape[1] == a["src_len"].max() <= 9
    assert (a["tgt_in"][:, 0] == 1).all()  # <bos>
    for i, (src, tgt) in enumerate(data["test"]):
        assert data.src_vocab.decode(a["src"][i, : a["src_len"][i]]) == "".join(src)
        assert (a["src"][i, a["src_len"][i] :] == 0).all()
        assert data.decode(a["tgt_out"][i]) == tgt == text.number_words(int("".join(src)))
        n = len(tgt)
        assert a["tgt_out"][i, n] == 2 and (a["tgt_in"][i, 1 : n + 1] == a["tgt_out"][i, :n]).all()
    with pytest.raises(ValueError, match="min_digits"):
        text.numbers_task(10, 1, 1, min_digits=0)


def test_numbers_task_sizes_are_checked_in_one_place():
    from scratch.text import numbers_task, numbers_task_problem

    assert numbers_task_problem(10, 2, 2, 1, 3) is None
    # 1..2 digits: 100 numbers, at most half of them drawn.
    assert "only 50 distinct" in numbers_task_problem(40, 10, 1, 1, 2)
    assert "min_digits" in numbers_task_problem(1, 1, 1, 4, 3)
    assert "at least 1" in numbers_task_problem(0, 1, 1, 1, 3)
    with pytest.raises(ValueError, match="only 50 distinct"):
        numbers_task(40, 10, 1, 1, 2)
