"""The attention chapter's GRU encoder-decoder (``scratch.engine.models.Seq2Seq``):
its gradients against finite differences, its attention weights (a distribution
over the real source positions only), padding that changes nothing, the
fixed-vector model that sees the encoder only through its last state, and greedy
decoding that agrees with the teacher-forced forward pass.
"""

import numpy as np
import pytest

from scratch.engine import Tensor, gradcheck
from scratch.engine.models import (
    EOS,
    AdditiveAttention,
    Seq2Seq,
    exact_match,
    fit_seq2seq,
)
from scratch.text import numbers_task

RNG = np.random.default_rng(0)


def _batch(n=6, max_digits=5, seed=1):
    data = numbers_task(60, 5, 5, min_digits=1, max_digits=max_digits, seed=seed)
    a = data.arrays("train")
    order = np.argsort(a["src_len"])[::-1]  # longest first, then shorter: padding
    pick = np.concatenate([order[:2], order[-(n - 2) :]])
    return data, {k: v[pick] for k, v in a.items()}


def _model(data, attention, E=4, H=3, seed=0):
    np.random.seed(seed)  # the engine's layers draw from NumPy's global generator
    return Seq2Seq(len(data.src_vocab), len(data.tgt_vocab), E, H, attention=attention)


@pytest.mark.parametrize("attention", [True, False])
def test_seq2seq_gradcheck(attention):
    data, b = _batch(n=3, max_digits=3)
    b = {k: v[:, :4] if k != "src_len" else v for k, v in b.items()}
    model = _model(data, attention, E=3, H=2)
    named = list(model.named_parameters())

    def fn(*ps):  # the checked tensors become the model's parameters
        for (name, _), value in zip(named, ps):
            *path, attr = name.split(".")
            owner = model
            for part in path:
                owner = getattr(owner, part)
            if name.endswith("embed.weight"):
                # The padding row is a constant 0 with no gradient, as in PyTorch:
                # hold it at 0 so that the finite differences see that too.
                value = value * (np.arange(len(value.data)) != 0)[:, None]
            setattr(owner, attr, value)
        return model(b["src"], b["src_len"], b["tgt_in"])

    params = [Tensor(p.data.copy(), requires_grad=True) for _, p in named]
    assert gradcheck(fn, params)


def test_attention_weights_are_a_distribution_over_the_real_positions():
    data, b = _batch()
    model = _model(data, attention=True)
    model(b["src"], b["src_len"], b["tgt_in"])
    a = model.last_attention  # (B, T, S)
    B, T, S = a.shape
    assert (B, T, S) == (len(b["src"]), b["tgt_in"].shape[1], b["src"].shape[1])
    np.testing.assert_allclose(a.sum(axis=-1), 1.0, rtol=1e-12)
    padded = np.arange(S)[None, None, :] >= b["src_len"][:, None, None]
    assert padded.any()
    assert np.all(a[np.broadcast_to(padded, a.shape)] == 0.0)  # exactly 0
    assert np.all(a[~np.broadcast_to(padded, a.shape)] > 0.0)


def test_additive_attention_scores_by_hand():
    H, S = 3, 4
    att = AdditiveAttention(H)
    s, h = RNG.standard_normal((1, H)), RNG.standard_normal((1, S, H))
    mask = np.array([[True, True, True, False]])
    c, a = att(Tensor(s), att.key(Tensor(h)), Tensor(h), mask)
    W, U, bias = att.query.weight.data, att.key.weight.data, att.key.bias.data
    e = np.tanh(s @ W.T + h[0] @ U.T + bias) @ att.v.weight.data[0]  # (S,)
    p = np.exp(e[:3] - e[:3].max())
    p /= p.sum()
    np.testing.assert_allclose(a.data[0], np.append(p, 0.0), rtol=1e-12)
    np.testing.assert_allclose(c.data[0], p @ h[0, :3], rtol=1e-12)


@pytest.mark.parametrize("attention", [True, False])
def test_padding_changes_no_logit(attention):
    data, b = _batch()
    model = _model(data, attention)
    batch_logits = model(b["src"], b["src_len"], b["tgt_in"]).data
    for i in range(len(b["src"])):
        n = b["src_len"][i]
        T = int((b["tgt_in"][i] != 0).sum())
        alone = model(
            b["src"][i : i + 1, :n], b["src_len"][i : i + 1], b["tgt_in"][i : i + 1, :T]
        )
        np.testing.assert_allclose(
            batch_logits[i, :T], alone.data[0], rtol=1e-10, atol=1e-12
        )


@pytest.mark.parametrize("attention", [True, False])
def test_without_attention_only_the_last_encoder_state_matters(attention):
    """The gradient of every logit with respect to the encoder outputs: without
    attention it is zero everywhere but at each sequence's last real step (the
    fixed vector); with attention every real step gets some."""
    data, b = _batch()
    model = _model(data, attention)
    h, _, mask = model.encode(b["src"], b["src_len"])
    h = Tensor(h.data, requires_grad=True)
    h_last = h[np.arange(len(h.data)), b["src_len"] - 1]
    logits = model.decode(h, h_last, mask, b["tgt_in"])
    logits.backward(RNG.standard_normal(logits.shape))
    touched = np.abs(h.grad).sum(axis=-1) > 0  # (B, S)
    last = np.zeros_like(touched)
    last[np.arange(len(last)), b["src_len"] - 1] = True
    if attention:
        assert np.array_equal(touched, mask)  # every real position, no padding
    else:
        assert np.array_equal(touched, last)


@pytest.mark.parametrize("attention", [True, False])
def test_greedy_decoding_is_the_teacher_forced_forward_fed_its_own_output(attention):
    data, b = _batch(n=8, max_digits=6)
    model = _model(data, attention, E=8, H=6)
    ids = model.greedy(b["src"], b["src_len"], max_len=9)
    greedy_attention = model.last_attention
    tgt_in = np.concatenate([np.ones((len(ids), 1), np.int64), ids[:, :-1]], axis=1)
    logits = model(b["src"], b["src_len"], tgt_in).data
    for i, row in enumerate(ids):
        ends = np.flatnonzero(row == EOS)
        n = ends[0] + 1 if len(ends) else len(row)
        assert np.array_equal(logits[i, :n].argmax(axis=-1), row[:n])
        assert np.all(row[n:] == 0)
        if attention:
            np.testing.assert_allclose(
                greedy_attention[i, :n],
                model.last_attention[i, :n],
                rtol=1e-10,
                atol=1e-14,
            )


def test_exact_match_counts_whole_sequences():
    data, b = _batch(n=8, max_digits=6)
    model = _model(data, attention=True)
    ok, ids = exact_match(model, b)
    assert ok.shape == (8,) and ids.shape == b["tgt_out"].shape
    assert np.array_equal(ok, (ids == b["tgt_out"]).all(axis=1))
    perfect = dict(b)
    model.greedy = lambda src, src_len, T: b["tgt_out"][: len(src)]  # an oracle
    assert exact_match(model, perfect)[0].all()


def test_training_lowers_the_loss():
    data = numbers_task(200, 5, 5, min_digits=1, max_digits=3, seed=0)
    model = _model(data, attention=True, E=8, H=16)
    hist = fit_seq2seq(model, data.arrays("train"), epochs=4, batch_size=20, lr=0.01)
    assert hist.epochs[-1]["loss"] < 0.7 * hist.epochs[0]["loss"]


def test_bad_lengths_are_rejected():
    data, b = _batch()
    model = _model(data, attention=True)
    with pytest.raises(ValueError, match="src_len"):
        model(b["src"], b["src_len"] + 10, b["tgt_in"])
