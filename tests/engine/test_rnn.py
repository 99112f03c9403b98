"""scratch.engine's RNN, LSTM and GRU (cells and layers) against torch.nn, float64.

Same parameter names and shapes; after ``load_state_dict(torch_module.state_dict())``
the same outputs, final states and gradients (of every parameter, the input and the
initial state); each fused cell's backward against finite differences.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from scratch.engine import Tensor, gradcheck, nn  # noqa: E402
from scratch.engine.rnn import gru_cell, lstm_cell, rnn_cell  # noqa: E402

RNG = np.random.default_rng(0)


def _torch(value):
    return torch.tensor(value, dtype=torch.float64, requires_grad=True)


def _loaded(ours, theirs):
    """Copy the torch module's state into ours, by name."""
    theirs = theirs.double()
    assert [n for n, _ in ours.named_parameters()] == [
        n for n, _ in theirs.named_parameters()
    ]
    for (n, a), (_, b) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert a.shape == tuple(b.shape), n
    ours.load_state_dict(theirs.state_dict())
    return theirs


def _close(a, b, what):
    np.testing.assert_allclose(a, b.detach().numpy(), rtol=1e-10, atol=1e-12, err_msg=what)


LAYERS = [
    ("RNN", {}),
    ("RNN", {"nonlinearity": "relu"}),
    ("LSTM", {}),
    ("GRU", {}),
    ("LSTM", {"num_layers": 2}),
    ("GRU", {"num_layers": 3, "bias": False}),
    ("RNN", {"num_layers": 2, "batch_first": True}),
    ("LSTM", {"batch_first": True, "bias": False}),
]


@pytest.mark.parametrize("kind,kwargs", LAYERS, ids=[f"{k}-{v}" for k, v in LAYERS])
@pytest.mark.parametrize("with_state", [False, True])
def test_layer_matches_torch(kind, kwargs, with_state):
    T, B, n_in, H = 7, 3, 4, 5
    torch.manual_seed(0)
    theirs = getattr(torch.nn, kind)(n_in, H, **kwargs)
    ours = getattr(nn, kind)(n_in, H, **kwargs)
    theirs = _loaded(ours, theirs)
    L = kwargs.get("num_layers", 1)
    shape = (B, T, n_in) if kwargs.get("batch_first") else (T, B, n_in)
    x = RNG.standard_normal(shape)
    xt, x_ours = _torch(x), Tensor(x, requires_grad=True)
    states = [RNG.standard_normal((L, B, H)) for _ in range(2 if kind == "LSTM" else 1)]
    if with_state:
        st = [_torch(s) for s in states]
        so = [Tensor(s, requires_grad=True) for s in states]
        hx_t = tuple(st) if kind == "LSTM" else st[0]
        hx_o = tuple(so) if kind == "LSTM" else so[0]
    else:
        hx_t = hx_o = None
    out_t, hid_t = theirs(xt, hx_t)
    out_o, hid_o = ours(x_ours, hx_o)
    assert out_o.shape == tuple(out_t.shape)
    _close(out_o.data, out_t, "output")
    hid_t = hid_t if kind == "LSTM" else (hid_t,)
    hid_o = hid_o if kind == "LSTM" else (hid_o,)
    for a, b in zip(hid_o, hid_t):
        assert a.shape == tuple(b.shape) == (L, B, H)
        _close(a.data, b, "final state")

    # A loss that reads the output and every final state, with random weights.
    weights = [RNG.standard_normal(out_o.shape)] + [RNG.standard_normal(h.shape) for h in hid_o]
    loss_t = sum((torch.from_numpy(w) * t).sum() for w, t in zip(weights, (out_t, *hid_t)))
    loss_o = sum((o * w).sum() for w, o in zip(weights, (out_o, *hid_o)))
    loss_t.backward()
    loss_o.backward()
    for (name, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        _close(p.grad, q.grad, f"grad of {name}")
    _close(x_ours.grad, xt.grad, "grad of the input")
    if with_state:
        for a, b in zip(so, st):
            _close(a.grad, b.grad, "grad of the initial state")


@pytest.mark.parametrize("kind", ["RNNCell", "LSTMCell", "GRUCell"])
@pytest.mark.parametrize("unbatched", [False, True])
def test_cell_matches_torch(kind, unbatched):
    B, n_in, H = 4, 3, 6
    torch.manual_seed(1)
    theirs = getattr(torch.nn, kind)(n_in, H)
    ours = getattr(nn, kind)(n_in, H)
    theirs = _loaded(ours, theirs)
    assert [p.shape for p in ours.parameters()] == [
        (ours.weight_ih.shape[0], n_in), (ours.weight_ih.shape[0], H),
        (ours.weight_ih.shape[0],), (ours.weight_ih.shape[0],)]
    assert ours.weight_ih.shape[0] == {"RNNCell": 1, "LSTMCell": 4, "GRUCell": 3}[kind] * H
    x = RNG.standard_normal((n_in,) if unbatched else (B, n_in))
    h = RNG.standard_normal((H,) if unbatched else (B, H))
    c = RNG.standard_normal(h.shape)
    xt, ht, ct = _torch(x), _torch(h), _torch(c)
    xo, ho, co = (Tensor(v, requires_grad=True) for v in (x, h, c))
    if kind == "LSTMCell":
        out_t, out_o = theirs(xt, (ht, ct)), ours(xo, (ho, co))
    else:
        out_t, out_o = (theirs(xt, ht),), (ours(xo, ho),)
    w = [RNG.standard_normal(o.shape) for o in out_o]
    for a, b in zip(out_o, out_t):
        _close(a.data, b, "output")
    sum((torch.from_numpy(wi) * t).sum() for wi, t in zip(w, out_t)).backward()
    sum((o * wi).sum() for wi, o in zip(w, out_o)).backward()
    for (name, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        _close(p.grad, q.grad, name)
    _close(xo.grad, xt.grad, "input")
    _close(ho.grad, ht.grad, "h")
    if kind == "LSTMCell":
        _close(co.grad, ct.grad, "c")


def test_cells_without_state_start_from_zeros():
    ours = nn.LSTMCell(3, 4)
    x = RNG.standard_normal((2, 3))
    h, c = ours(x)
    h0, c0 = ours(x, (np.zeros((2, 4)), np.zeros((2, 4))))
    np.testing.assert_array_equal(h.data, h0.data)
    np.testing.assert_array_equal(c.data, c0.data)


@pytest.mark.parametrize("bias", [True, False])
def test_fused_cells_gradcheck(bias):
    B, H = 3, 4
    h, c = RNG.standard_normal((B, H)), RNG.standard_normal((B, H))
    t = lambda shape: Tensor(RNG.standard_normal(shape) * 0.7)  # noqa: E731
    b = lambda g: t(g * H) if bias else None  # noqa: E731
    w1, b1, gi1 = t((H, H)), b(1), t((B, H))
    assert gradcheck(lambda gi, h, w, *bb: rnn_cell(gi, h, w, bb[0] if bb else None),
                     [gi1, Tensor(h), w1] + ([b1] if bias else []))
    assert gradcheck(lambda gi, h, w, *bb: rnn_cell(gi, h, w, bb[0] if bb else None, "relu"),
                     [gi1, Tensor(h), w1] + ([b1] if bias else []))
    w4, b4, gi4 = t((4 * H, H)), b(4), t((B, 4 * H))
    assert gradcheck(lambda gi, h, c, w, *bb: lstm_cell(gi, h, c, w, bb[0] if bb else None),
                     [gi4, Tensor(h), Tensor(c), w4] + ([b4] if bias else []))
    w3, b3, gi3 = t((3 * H, H)), b(3), t((B, 3 * H))
    assert gradcheck(lambda gi, h, w, *bb: gru_cell(gi, h, w, bb[0] if bb else None),
                     [gi3, Tensor(h), w3] + ([b3] if bias else []))


def test_layer_gradcheck_through_time():
    """The whole unrolled graph (two layers, 6 steps) against finite differences."""
    for kind in ("RNN", "LSTM", "GRU"):
        layer = getattr(nn, kind)(2, 3, num_layers=2)
        x = Tensor(RNG.standard_normal((6, 2, 2)))

        def f(x, *params):
            for p, value in zip(layer.parameters(), params):
                p.data = value.data
            return layer(x)[0]

        assert gradcheck(lambda x: layer(x)[0], [x])
        w = layer.weight_hh_l0
        assert gradcheck(lambda w_: _with(layer, "weight_hh_l0", w_, x), [Tensor(w.data.copy())])


def _with(layer, name, value, x):
    old = getattr(layer, name)
    setattr(layer, name, value)
    try:
        return layer(x)[0]
    finally:
        setattr(layer, name, old)


def test_parameter_counts():
    """GRU has 3 gate blocks, LSTM 4: a GRU has 3/4 of an LSTM's parameters."""
    n_in, H = 65, 256
    count = lambda m: sum(p.size for p in m.parameters())  # noqa: E731
    per_block = H * n_in + H * H + 2 * H
    assert count(nn.RNN(n_in, H)) == per_block == 82_688
    assert count(nn.LSTM(n_in, H)) == 4 * per_block
    assert count(nn.GRU(n_in, H)) == 3 * per_block
    for kind in ("RNN", "LSTM", "GRU"):
        assert count(getattr(nn, kind)(n_in, H, num_layers=2)) == sum(
            p.numel() for p in getattr(torch.nn, kind)(n_in, H, num_layers=2).parameters())


def test_dropout_between_layers_only_in_training():
    layer = nn.LSTM(3, 4, num_layers=2, dropout=0.5)
    x = RNG.standard_normal((5, 2, 3))
    layer.eval()
    a, b = layer(x)[0].data, layer(x)[0].data
    np.testing.assert_array_equal(a, b)
    layer.train()
    np.random.seed(0)
    assert not np.allclose(layer(x)[0].data, a)


@pytest.mark.parametrize("make,message", [
    (lambda: nn.LSTM(3, 0), "hidden_size must be >= 1"),
    (lambda: nn.GRU(3, 4, num_layers=0), "num_layers must be >= 1"),
    (lambda: nn.RNN(3, 4, nonlinearity="sigmoid"), "Unknown nonlinearity"),
    (lambda: nn.LSTM(3, 4, dropout=1.5), "dropout should be a number in range"),
    (lambda: nn.LSTM(3, 4, bidirectional=True), "bidirectional"),
])
def test_bad_arguments(make, message):
    with pytest.raises((ValueError, NotImplementedError, TypeError), match=message):
        make()


def test_bad_input_shapes():
    layer = nn.GRU(3, 4)
    with pytest.raises(ValueError, match="input_size"):
        layer(np.zeros((5, 2, 7)))
    with pytest.raises(ValueError, match="Expected hidden size"):
        layer(np.zeros((5, 2, 3)), np.zeros((2, 2, 4)))


def test_unbatched_layer_matches_batch_of_one():
    layer = nn.LSTM(3, 4, num_layers=2)
    x = RNG.standard_normal((6, 3))
    out, (h, c) = layer(x)
    out1, (h1, c1) = layer(x[:, None])
    assert out.shape == (6, 4) and h.shape == (2, 4)
    np.testing.assert_allclose(out.data, out1.data[:, 0])
    np.testing.assert_allclose(c.data, c1.data[:, 0])


def test_slice_gradients_accumulate_in_place_and_correctly():
    """x[t] for every t: the sparse slice gradients add up to the dense answer, also
    mixed with ordinary gradients of the same tensor."""
    x = Tensor(RNG.standard_normal((5, 3)), requires_grad=True)
    w = RNG.standard_normal((5, 3))
    y = sum((x[t] * w[t]).sum() for t in range(5)) + (x * 2).sum() + x[1:3].sum()
    y.backward()
    want = w + 2
    want[1:3] += 1
    np.testing.assert_allclose(x.grad, want)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf")])
def test_clip_grad_norm_matches_torch(norm_type):
    grads = [RNG.standard_normal((3, 4)) * 5, RNG.standard_normal(6)]
    ours = [nn.Parameter(np.zeros_like(g)) for g in grads]
    theirs = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for p, q, g in zip(ours, theirs, grads):
        p.grad, q.grad = g.copy(), torch.tensor(g)
    total = nn.utils.clip_grad_norm_(ours, 1.5, norm_type=norm_type)
    want = torch.nn.utils.clip_grad_norm_(theirs, 1.5, norm_type=norm_type)
    assert total == pytest.approx(float(want), rel=1e-12)
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.grad, q.grad.numpy(), rtol=1e-12)
    small = [nn.Parameter(np.zeros(2))]
    small[0].grad = np.array([0.1, 0.2])
    nn.clip_grad_norm_(small, 10.0)  # below the threshold: unchanged
    np.testing.assert_array_equal(small[0].grad, [0.1, 0.2])


@pytest.mark.parametrize("cell", ["RNN", "LSTM", "GRU"])
def test_char_lm_shapes_state_and_parameter_count(cell):
    from scratch.engine.models import CharLM

    V, E, H = 11, 4, 6
    m = CharLM(V, E, H, cell=cell)
    x = RNG.integers(0, V, (3, 5))
    logits, state = m(x)
    assert logits.shape == (3, 5, V)
    # Reading the sequence in two chunks with the state carried gives the same logits.
    a, s = m(x[:, :2])
    b, _ = m(x[:, 2:], s)
    np.testing.assert_allclose(np.concatenate([a.data, b.data], axis=1), logits.data)
    gates = {"RNN": 1, "LSTM": 4, "GRU": 3}[cell]
    assert sum(p.size for p in m.parameters()) == (
        V * E + gates * (H * E + H * H + 2 * H) + H * V + V
    )
    with pytest.raises(ValueError, match="cell must be"):
        CharLM(V, E, H, cell="Transformer")


def test_delayed_key_accuracy_learns_a_short_delay_and_not_an_unreachable_one():
    from scratch.engine.models import CharLM, delayed_key_accuracy
    from scratch.text import delayed_key

    rng = np.random.default_rng(0)
    train, test = delayed_key(400, 2, rng), delayed_key(200, 2, rng)
    np.random.seed(0)
    assert delayed_key_accuracy(CharLM(16, 8, 16, cell="GRU"), train, test, epochs=8) > 0.9
    # A key the model never sees (the first token is replaced by filler): chance.
    hidden = test.copy()
    hidden[:, 0] = 8
    np.random.seed(0)
    acc = delayed_key_accuracy(CharLM(16, 8, 16, cell="GRU"), train, hidden, epochs=8)
    assert acc < 0.3
