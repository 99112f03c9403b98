"""Tests of scratch.seq2seq: greedy and beam search (beam 1 is greedy, a wider beam
finds what greedy misses, the exact best sequence by enumeration, the length
penalty), sequence scores, exact match and the copy task, and the training step's
label-smoothed loss against an independent computation."""

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from scratch import seq2seq as S
from scratch.models.seq2seq import Seq2SeqSpec
from scratch.models.transformer import TransformerSpec

PAD, BOS, EOS = 0, 1, 2


class TableModel(nn.Module):
    """A decoder whose next-token distribution is a fixed function of the prefix
    (the source is ignored): ``table`` maps a tuple of emitted ids to {id: p};
    prefixes not listed end with probability 0.97."""

    def __init__(self, table, vocab=5):
        super().__init__()
        self.table, self.V = table, vocab
        self.dummy = nn.Parameter(torch.zeros(1))  # translate() reads the device

    def encode_source(self, src, src_len):
        return None

    def _dist(self, prefix):
        p = torch.full((self.V,), 0.01)
        p[EOS] = 0.97
        if prefix in self.table:
            p = torch.full((self.V,), 1e-6)
            for i, q in self.table[prefix].items():
                p[i] = q
        p[[PAD, BOS]] = 1e-9
        return (p / p.sum()).log()

    def decode_step(self, memory, prefix):
        rows = [self._dist(tuple(r[1:])) for r in prefix.tolist()]
        return torch.stack(rows)  # (B, V)

    def teacher_forced(self, src, src_len, tgt_in):
        steps = [self.decode_step(None, tgt_in[:, : t + 1]) for t in range(tgt_in.shape[1])]
        return torch.stack(steps, dim=1)  # (B, T, V) log-probabilities


A, B = 3, 4
# greedy takes A (0.6) and then can only end weakly; B (0.4) ends surely
TRAP = {(): {A: 0.6, B: 0.4}, (A,): {EOS: 0.34, A: 0.33, B: 0.33}, (B,): {EOS: 0.9, A: 0.05, B: 0.05}}


def _src(n=1):
    return torch.full((n, 3), 5), torch.full((n,), 3)


def test_greedy_falls_in_the_trap_and_beam_search_does_not():
    model = TableModel(TRAP)
    src, src_len = _src()
    g = S.greedy(model, src, src_len, max_len=4)
    assert g[0].tolist() == [A, EOS, 0, 0]
    ids, score = S.beam_search(model, src, src_len, max_len=4, beam_size=2)
    assert ids[0].tolist() == [B, EOS, 0, 0]
    lp_beam = S.sequence_log_prob(model, src, src_len, ids)
    lp_greedy = S.sequence_log_prob(model, src, src_len, g)
    assert lp_beam.item() > lp_greedy.item()
    assert score.item() == pytest.approx(lp_beam.item(), abs=1e-5)  # alpha = 0
    assert lp_beam.item() == pytest.approx(math.log(0.4 * 0.9), abs=1e-4)


def test_beam_of_one_is_greedy_on_a_random_transformer():
    torch.manual_seed(0)
    model = TransformerSpec(src_vocab=9, tgt_vocab=9, d_model=16, nhead=2, num_encoder_layers=1,
                            num_decoder_layers=1, dim_feedforward=16, dropout=0.0).build().eval()
    src = torch.randint(3, 9, (6, 5))
    src_len = torch.tensor([5, 4, 3, 5, 2, 1])
    g = S.greedy(model, src, src_len, max_len=7)
    b, score = S.beam_search(model, src, src_len, max_len=7, beam_size=1)
    assert torch.equal(g, b)
    torch.testing.assert_close(score, S.sequence_log_prob(model, src, src_len, g))


def test_beam_of_one_is_greedy_on_the_attention_gru():
    torch.manual_seed(1)
    model = Seq2SeqSpec(src_vocab=9, tgt_vocab=7, embed_dim=4, hidden_size=6).build().eval()
    src, src_len = torch.randint(3, 9, (4, 5)), torch.tensor([5, 2, 3, 1])
    g = S.greedy(model, src, src_len, max_len=6)
    assert torch.equal(g, S.beam_search(model, src, src_len, max_len=6, beam_size=1)[0])


@pytest.mark.parametrize("alpha", [0.0, 0.6])
def test_a_wide_beam_finds_the_exact_best_sequence(alpha):
    """Against enumeration of every output of up to 3 tokens of a random model."""
    torch.manual_seed(2)
    model = TransformerSpec(src_vocab=6, tgt_vocab=6, d_model=8, nhead=2, num_encoder_layers=1,
                            num_decoder_layers=1, dim_feedforward=8, dropout=0.0).build().eval()
    src, src_len = torch.randint(3, 6, (3, 4)), torch.tensor([4, 2, 3])
    T = 3
    words = [3, 4, 5]
    cands = [list(w) + [EOS] for n in range(T) for w in itertools.product(words, repeat=n)]
    cands += [list(w) for w in itertools.product(words, repeat=T)]  # cut at max_len
    ids = torch.tensor([c + [0] * (T - len(c)) for c in cands])  # (C, T)
    for i in range(3):
        lp = S.sequence_log_prob(model, src[i : i + 1].expand(len(ids), -1), src_len[i : i + 1].expand(len(ids)), ids)
        norm = torch.tensor([lp[j].item() / S.length_penalty(len(c), alpha) for j, c in enumerate(cands)])
        best = cands[int(norm.argmax())]
        out, score = S.beam_search(model, src[i : i + 1], src_len[i : i + 1], max_len=T, beam_size=20, alpha=alpha)
        assert out[0, : len(best)].tolist() == best
        assert score.item() == pytest.approx(norm.max().item(), abs=1e-5)


def test_length_penalty_values_and_effect():
    assert S.length_penalty(1, 0.0) == 1.0
    assert S.length_penalty(7, 1.0) == pytest.approx(2.0)
    assert S.length_penalty(3, 0.6) == pytest.approx((8 / 6) ** 0.6)
    # ending at once (p 0.5) or one more word that ends surely (0.5 * 0.97)
    model = TableModel({(): {EOS: 0.5, A: 0.5}})
    src, src_len = _src()
    short, s0 = S.beam_search(model, src, src_len, max_len=3, beam_size=3, alpha=0.0)
    long, s1 = S.beam_search(model, src, src_len, max_len=3, beam_size=3, alpha=1.0)
    assert short[0].tolist() == [EOS, 0, 0]  # no penalty: the shorter is likelier
    assert long[0].tolist() == [A, EOS, 0]  # alpha = 1 divides by 7/6: longer wins
    p_end = 0.97 / (0.97 + 0.01 + 0.01)  # the table model renormalises
    assert s1.item() == pytest.approx(math.log(0.5 * p_end) / (7 / 6), abs=1e-5)


def test_beam_search_rejects_bad_arguments():
    model = TableModel(TRAP)
    with pytest.raises(ValueError):
        S.beam_search(model, *_src(), max_len=3, beam_size=0)
    with pytest.raises(ValueError):
        S.beam_search(model, *_src(), max_len=3, alpha=-1)


def test_translate_batches_and_restores_training_mode():
    model = TableModel(TRAP).train()
    a = S.copy_task(7, max_len=4, n_symbols=2)
    g = S.translate(model, a, "greedy", batch_size=3)
    b = S.translate(model, a, "beam", beam_size=2, batch_size=2)
    assert g.shape == b.shape == a["tgt_out"].shape
    assert (g[:, :2] == [A, EOS]).all() and (b[:, :2] == [B, EOS]).all()
    assert model.training
    with pytest.raises(ValueError):
        S.translate(model, a, "sample")


# ---- scoring ----------------------------------------------------------------------
def test_exact_match_counts_up_to_the_first_eos():
    tgt = np.array([[5, 6, EOS, 0], [7, EOS, 0, 0]])
    pred = np.array([[5, 6, EOS, 9, 9], [7, 8, EOS, 0, 0]])  # junk after <eos> is ignored
    assert S.exact_match(pred, tgt).tolist() == [True, False]
    assert S.exact_match(np.array([[5, 6, 0, 0]]), tgt[:1]).tolist() == [False]  # no <eos>
    assert S.trim(pred)[0].tolist() == [5, 6, EOS, 0, 0]
    by = S.accuracy_by_length(np.array([1, 0, 1, 1]), np.array([2, 2, 3, 3]))
    assert by == {2: (0.5, 2), 3: (1.0, 2)}


def test_copy_task_targets_are_the_sources():
    a = S.copy_task(50, min_len=2, max_len=6, n_symbols=4, seed=1)
    assert a["src"].shape == (50, 6) and a["tgt_out"].shape == (50, 7)
    for s, n, ti, to in zip(a["src"], a["src_len"], a["tgt_in"], a["tgt_out"]):
        assert 2 <= n <= 6 and (s[n:] == 0).all() and (3 <= s[:n]).all() and (s[:n] < 7).all()
        assert to[:n].tolist() == s[:n].tolist() and to[n] == EOS
        assert ti[0] == BOS and ti[1 : n + 1].tolist() == s[:n].tolist()
    with pytest.raises(ValueError):
        S.copy_task(5, min_len=3, max_len=2)


# ---- the training step --------------------------------------------------------------
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_label_smoothed_loss_against_an_independent_computation(eps):
    torch.manual_seed(0)
    a = S.copy_task(8, max_len=5, n_symbols=4, seed=3)
    batch = S.tensor_dataset(a).tensors
    model = TransformerSpec(src_vocab=7, tgt_vocab=7, d_model=8, nhead=2, num_encoder_layers=1,
                            num_decoder_layers=1, dim_feedforward=8, dropout=0.0).build()
    out = S.seq2seq_step(eps)(model, batch)
    # by hand: target distribution (1 - eps) one-hot + eps / V on every class,
    # cross-entropy averaged over the real (non-pad) target tokens only
    logits = model.teacher_forced(*batch[:3]).detach().double()  # (B, T, V)
    logp = logits.log_softmax(-1)
    V = logp.shape[-1]
    total, count = 0.0, 0
    for b in range(logp.shape[0]):
        for t in range(logp.shape[1]):
            y = int(batch[3][b, t])
            if y == PAD:
                continue
            q = np.full(V, eps / V)
            q[y] += 1 - eps
            total -= float((torch.tensor(q) * logp[b, t]).sum())
            count += 1
    assert out["loss"].item() == pytest.approx(total / count, rel=1e-5)
    nll = -np.mean([float(logp[b, t, int(y)]) for b in range(logp.shape[0])
                    for t, y in enumerate(batch[3][b]) if int(y) != PAD])
    assert out["nll"].item() == pytest.approx(nll, rel=1e-5)
    if eps:
        assert out["loss"].item() != pytest.approx(out["nll"].item(), rel=1e-5)
    with pytest.raises(ValueError):
        S.seq2seq_step(1.0)


# ---- BLEU -----------------------------------------------------------------------------
def test_bleu_against_a_hand_computation():
    hyps = ["the cat sat on the mat".split(), "a b c d e".split()]
    refs = ["the cat is on the mat".split(), "a b c d e f g".split()]
    # clipped n-gram matches / hypothesis n-grams, summed over both sentences:
    # 1-grams (5 + 5) / (6 + 5), 2-grams (3 + 4) / (5 + 4) ("the cat", "on the",
    # "the mat"), 3-grams (1 + 3) / (4 + 3) ("on the mat"), 4-grams (0 + 2) / (3 + 2);
    # lengths c = 11 < r = 13, so the brevity penalty is exp(1 - 13 / 11)
    p = [10 / 11, 7 / 9, 4 / 7, 2 / 5]
    expected = 100 * math.exp(1 - 13 / 11) * math.prod(p) ** 0.25
    assert S.bleu(hyps, refs) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(100 * math.exp(-2 / 11) * (16 / 99) ** 0.25)


def test_bleu_clips_repeated_ngrams():
    # Papineni et al.'s example: 7 x "the" against a reference with 2 of them
    hyp, ref = ["the"] * 7, "the cat is on the mat".split()
    assert S.bleu([hyp], [ref], max_n=1) == pytest.approx(100 * 2 / 7)  # c > r: BP 1


def test_bleu_edge_cases():
    ref = "a b c d e f g h".split()
    assert S.bleu([ref, ref[:5]], [ref, ref[:5]]) == pytest.approx(100.0)
    # no 4-gram in common (though every word matches): 0 without smoothing
    assert S.bleu([["a", "b", "c", "x", "d", "e", "f"]], [ref]) == 0.0
    # a correct prefix half as long: every precision 1, brevity penalty exp(1 - 8/4)
    assert S.bleu([ref[:4]], [ref]) == pytest.approx(100 * math.exp(-1))
    # longer than the reference: no brevity penalty, only lower precisions
    long = "a b c d e".split()
    expected = 100 * (4 / 5 * 3 / 4 * 2 / 3 * 1 / 2) ** 0.25
    assert S.bleu([long], [long[:4]]) == pytest.approx(expected)
    assert S.bleu([[]], [ref]) == 0.0
    assert S.bleu([[3, 4, 5, 6]], [[3, 4, 5, 6]]) == pytest.approx(100.0)  # ids work
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        S.bleu([ref, ref], [ref])
