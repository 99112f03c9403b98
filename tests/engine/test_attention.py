"""The engine's attention against PyTorch (float64) and finite differences.

``F.scaled_dot_product_attention`` with boolean and float masks, ``is_causal``,
``scale`` and fully masked rows; ``nn.MultiheadAttention`` with PyTorch's parameter
names and layout, loaded from ``torch.nn.MultiheadAttention.state_dict()``: outputs,
head-averaged and per-head weights, and the gradients of every parameter and input,
under key-padding and attention masks (PyTorch's "True = may not attend").
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import scratch.engine.functional as F  # noqa: E402
from scratch.engine import Tensor, compare_with_torch, gradcheck, nn  # noqa: E402

RNG = np.random.default_rng(0)
TF = torch.nn.functional


def _qkv(L=4, S=5, E=3, Ev=2, lead=(2, 3)):
    return [RNG.standard_normal(lead + shape) for shape in ((L, E), (S, E), (S, Ev))]


def _bool_mask(L=4, S=5):
    mask = RNG.random((L, S)) < 0.6
    mask[:, 0] = True  # every query may attend to something
    return mask


MASKS = {
    "none": lambda: {},
    "bool": lambda: {"attn_mask": _bool_mask()},
    "float": lambda: {"attn_mask": RNG.standard_normal((4, 5))},
    "causal": lambda: {"is_causal": True},
    "scale": lambda: {"scale": 0.3},
    "broadcast-bool": lambda: {"attn_mask": _bool_mask()[None, None].repeat(3, 1)},
}


@pytest.mark.parametrize("kind", MASKS)
def test_sdpa_matches_torch_and_finite_differences(kind):
    arrays = _qkv()
    kwargs = MASKS[kind]()
    theirs = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    compare_with_torch(
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, **kwargs),
        arrays,
        lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, **theirs),
    )
    gradcheck(
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, **kwargs),
        [Tensor(a, requires_grad=True) for a in arrays],
    )


def test_sdpa_fully_masked_query_gives_zero_like_torch():
    q, k, v = _qkv()
    mask = _bool_mask()
    mask[2] = False  # query 2 may attend to nothing
    ours = F.scaled_dot_product_attention(Tensor(q), Tensor(k), Tensor(v), attn_mask=mask)
    theirs = TF.scaled_dot_product_attention(*map(torch.tensor, (q, k, v)), attn_mask=torch.tensor(mask))
    assert np.all(ours.data[..., 2, :] == 0)
    np.testing.assert_allclose(ours.data, theirs.numpy(), atol=1e-12)
    # The same through a float mask of -inf, and the gradient stays finite.
    fmask = np.where(mask, 0.0, -np.inf)
    qt = Tensor(q, requires_grad=True)
    out = F.scaled_dot_product_attention(qt, Tensor(k), Tensor(v), attn_mask=fmask)
    out.sum().backward()
    assert np.all(out.data[..., 2, :] == 0) and np.isfinite(qt.grad).all()


def test_attention_weights_rows_sum_to_one_and_respect_the_mask():
    q, k, _ = _qkv()
    mask = _bool_mask()
    w = F.attention_weights(Tensor(q), Tensor(k), mask).data
    np.testing.assert_allclose(w.sum(-1), 1.0)
    assert np.all(w[..., ~mask] == 0)
    causal = F.attention_weights(Tensor(q[..., :4, :]), Tensor(k[..., :4, :]), is_causal=True).data
    assert np.all(np.triu(causal[0, 0], 1) == 0) and causal[0, 0, 0, 0] == 1


def test_sdpa_rejects_mask_and_causal_together_and_bad_masks():
    q, k, v = map(Tensor, _qkv())
    with pytest.raises(ValueError, match="either attn_mask or is_causal"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=_bool_mask(), is_causal=True)
    with pytest.raises(TypeError, match="boolean or floating"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=np.ones((4, 5), dtype=int))


def _pair(E=6, heads=2, **kwargs):
    torch.manual_seed(0)
    theirs = torch.nn.MultiheadAttention(E, heads, dtype=torch.float64, **kwargs)
    ours = nn.MultiheadAttention(E, heads, **kwargs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for (name, a), (_, b) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert a.shape == tuple(b.shape), name
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


def _kpm(N=3, S=5):
    mask = RNG.random((N, S)) < 0.4
    mask[:, 0] = False  # never a sequence of padding only
    return mask


MHA_CASES = {
    "self": dict(self_attn=True),
    "cross": dict(),
    "batch_first": dict(ctor=dict(batch_first=True)),
    "no_bias": dict(ctor=dict(bias=False)),
    "padding": dict(kpm=True),
    "padding+causal": dict(self_attn=True, kpm=True, causal=True),
    "float_mask": dict(float_mask=True),
    "per_head_mask": dict(per_head=True),
    "per_head_weights": dict(kpm=True, average=False),
    "unbatched": dict(unbatched=True),
}


@pytest.mark.parametrize("case", MHA_CASES)
def test_multihead_attention_matches_torch(case):
    c = MHA_CASES[case]
    ours, theirs = _pair(**c.get("ctor", {}))
    E, N, L, S, H = 6, 3, 4, 5, 2
    if c.get("self_attn"):
        S = L
    batch_first = c.get("ctor", {}).get("batch_first", False)
    shape = lambda T: (T, E) if c.get("unbatched") else ((N, T, E) if batch_first else (T, N, E))  # noqa: E731
    x = RNG.standard_normal(shape(L))
    mem = x if c.get("self_attn") else RNG.standard_normal(shape(S))
    kwargs = {"average_attn_weights": c.get("average", True)}
    if c.get("kpm"):
        kwargs["key_padding_mask"] = _kpm(N, S)
    if c.get("causal"):
        kwargs["attn_mask"] = np.triu(np.ones((L, S), dtype=bool), 1)
    if c.get("float_mask"):
        kwargs["attn_mask"] = RNG.standard_normal((L, S))
    if c.get("per_head"):
        mask = RNG.random((N * H, L, S)) < 0.3
        mask[..., 0] = False
        kwargs["attn_mask"] = mask
    t_kwargs = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}

    xq, xm = Tensor(x.copy(), requires_grad=True), Tensor(mem.copy(), requires_grad=True)
    tq = torch.tensor(x, requires_grad=True)
    tm = tq if c.get("self_attn") else torch.tensor(mem, requires_grad=True)
    xm = xq if c.get("self_attn") else xm
    out, w = ours(xq, xm, xm, **kwargs)
    t_out, t_w = theirs(tq, tm, tm, **t_kwargs)
    np.testing.assert_allclose(out.data, t_out.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(w.data, t_w.detach().numpy(), rtol=1e-10, atol=1e-12)

    g = RNG.standard_normal(out.shape)
    (out * Tensor(g)).sum().backward()
    (t_out * torch.tensor(g)).sum().backward()
    for (name, p), (_, tp) in zip(ours.named_parameters(), theirs.named_parameters()):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(xq.grad, tq.grad.numpy(), rtol=1e-9, atol=1e-12)
    if not c.get("self_attn"):
        np.testing.assert_allclose(xm.grad, tm.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_multihead_attention_gradcheck_with_padding():
    ours = nn.MultiheadAttention(4, 2, batch_first=True)
    x = Tensor(RNG.standard_normal((2, 3, 4)), requires_grad=True)
    kpm = np.array([[False, False, True], [False, False, False]])
    names = [name for name, _ in ours.named_parameters()]

    def fn(x, *ps):  # the checked tensors become the module's parameters
        for name, value in zip(names, ps):
            *path, attr = name.split(".")
            owner = ours.out_proj if path else ours
            setattr(owner, attr, value)
        return ours(x, x, x, key_padding_mask=kpm, need_weights=False)[0]

    params = [Tensor(p.data.copy(), requires_grad=True) for _, p in ours.named_parameters()]
    gradcheck(fn, [x] + params)


def test_multihead_attention_padding_keys_get_no_weight_and_padding_changes_nothing():
    ours = nn.MultiheadAttention(4, 2, batch_first=True)
    x = RNG.standard_normal((1, 5, 4))
    kpm = np.array([[False, False, False, True, True]])
    out, w = ours(Tensor(x), Tensor(x), Tensor(x), key_padding_mask=kpm)
    assert np.all(w.data[..., 3:] == 0)
    np.testing.assert_allclose(w.data.sum(-1), 1.0)
    # The real positions' outputs are those of the sequence without its padding.
    short, _ = ours(*(Tensor(x[:, :3]),) * 3)
    np.testing.assert_allclose(out.data[:, :3], short.data, rtol=1e-12)


def test_multihead_attention_init_and_errors():
    m = nn.MultiheadAttention(8, 4)
    assert np.all(m.in_proj_bias.data == 0) and np.all(m.out_proj.bias.data == 0)
    bound = np.sqrt(6 / (8 + 24))  # Glorot over the (3E, E) matrix, as PyTorch
    assert np.abs(m.in_proj_weight.data).max() <= bound
    assert np.abs(m.in_proj_weight.data).max() > 0.8 * bound
    with pytest.raises(ValueError, match="divisible"):
        nn.MultiheadAttention(6, 4)
    with pytest.raises(NotImplementedError):
        nn.MultiheadAttention(6, 2, kdim=3)
    x = Tensor(RNG.standard_normal((3, 2, 8)))
    with pytest.raises(ValueError, match="key_padding_mask must be"):
        m(x, x, x, key_padding_mask=np.zeros((3, 2), dtype=bool))
    with pytest.raises(ValueError, match="attn_mask must be"):
        m(x, x, x, attn_mask=np.zeros((2, 2), dtype=bool))
    assert m(x, x, x, need_weights=False)[1] is None
