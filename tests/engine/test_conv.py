"""scratch.engine.conv: conv2d and pooling against torch.nn.functional (float64) and finite differences."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as TF  # noqa: E402

import scratch.engine.functional as F  # noqa: E402
from scratch.engine import Tensor, compare_with_torch, gradcheck, nn  # noqa: E402


def arrays(*shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) for s in shapes]


# (id, input (N, C, H, W), weight (O, C, kh, kw), stride, padding, bias?)
CONV = [
    ("3x3", (2, 3, 7, 6), (4, 3, 3, 3), 1, 0, True),
    ("stride2-pad1", (2, 3, 9, 8), (5, 3, 3, 3), 2, 1, True),
    ("pad2", (2, 2, 6, 7), (3, 2, 5, 5), 1, 2, True),
    ("non-square-kernel", (2, 3, 8, 9), (4, 3, 2, 5), 1, (1, 2), True),
    ("non-square-stride", (2, 2, 9, 7), (3, 2, 3, 1), (2, 1), 0, True),
    ("1x1", (2, 5, 6, 4), (3, 5, 1, 1), 1, 0, True),
    ("1x1-stride2", (2, 3, 7, 7), (2, 3, 1, 1), 2, 0, False),
    ("kernel-is-input", (3, 2, 5, 4), (6, 2, 5, 4), 1, 0, True),
    ("batch1-stride3-floors", (1, 3, 11, 10), (4, 3, 4, 3), 3, 1, True),  # windows do not tile the input
    ("no-bias-pad1", (2, 3, 6, 6), (4, 3, 3, 3), 1, 1, False),
]


@pytest.mark.parametrize("xs, ws, stride, padding, bias", [c[1:] for c in CONV], ids=[c[0] for c in CONV])
def test_conv2d_matches_torch(xs, ws, stride, padding, bias):
    """Output and the gradients of input, weight and bias, to float64 rounding (rtol 1e-6)."""
    x, w, b = arrays(xs, ws, ws[0])
    if bias:
        assert compare_with_torch(lambda x, w, b: F.conv2d(x, w, b, stride, padding), [x, w, b],
                                  lambda x, w, b: TF.conv2d(x, w, b, stride, padding))
    else:
        assert compare_with_torch(lambda x, w: F.conv2d(x, w, stride=stride, padding=padding), [x, w],
                                  lambda x, w: TF.conv2d(x, w, stride=stride, padding=padding))


@pytest.mark.parametrize("stride, padding", [(1, 0), (2, 1), ((1, 2), (2, 0))])
def test_conv2d_gradcheck(stride, padding):
    x, w, b = arrays((2, 2, 5, 4), (3, 2, 3, 2), 3, seed=1)
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride, padding), [Tensor(x), Tensor(w), Tensor(b)])


def test_conv2d_any_memory_layout():
    """A reversed, strided view as input (not C-contiguous) gives the same result."""
    x, w = arrays((2, 3, 8, 14), (4, 3, 3, 3), seed=2)
    view = x[:, ::-1, :, ::2]  # (2, 3, 8, 7), negative and doubled strides
    assert compare_with_torch(lambda w: F.conv2d(Tensor(view), w, padding=1), [w],
                              lambda w: TF.conv2d(torch.from_numpy(view.copy()), w, padding=1))


# (id, input, kernel_size, stride, padding)
POOL = [
    ("2x2", (2, 3, 8, 6), 2, None, 0),
    ("odd-size-floors", (2, 2, 7, 5), 2, None, 0),
    ("3x3-stride2-overlapping", (2, 2, 9, 8), 3, 2, 0),
    ("3x3-stride2-pad1", (1, 3, 7, 7), 3, 2, 1),
    ("non-square", (2, 2, 7, 9), (2, 3), (1, 2), (1, 0)),
    ("stride1", (1, 2, 5, 5), 2, 1, 0),
    ("kernel-is-input", (2, 3, 4, 5), (4, 5), None, 0),
]
POOL_IDS = [c[0] for c in POOL]


@pytest.mark.parametrize("name", ["max_pool2d", "avg_pool2d"])
@pytest.mark.parametrize("xs, kernel, stride, padding", [c[1:] for c in POOL], ids=POOL_IDS)
def test_pooling_matches_torch(name, xs, kernel, stride, padding):
    ours, theirs = getattr(F, name), getattr(TF, name)
    assert compare_with_torch(lambda x: ours(x, kernel, stride, padding), arrays(xs),
                              lambda x: theirs(x, kernel, stride, padding))


@pytest.mark.parametrize("xs, kernel, stride, padding", [c[1:] for c in POOL], ids=POOL_IDS)
def test_max_pool_ties_go_to_the_first_maximum(xs, kernel, stride, padding):
    """Inputs drawn from {0, 1, 2}: most windows hold ties, and PyTorch gives the gradient to the
    first maximum in row-major order; overlapping windows add their shares up."""
    x = np.random.default_rng(3).integers(0, 3, xs).astype(np.float64)
    assert compare_with_torch(lambda x: F.max_pool2d(x, kernel, stride, padding), [x],
                              lambda x: TF.max_pool2d(x, kernel, stride, padding))


def test_max_pool_tie_by_hand():
    x = Tensor(np.ones((1, 1, 2, 2)), requires_grad=True)
    F.max_pool2d(x, 2).sum().backward()
    np.testing.assert_array_equal(x.grad[0, 0], [[1, 0], [0, 0]])


@pytest.mark.parametrize("name", ["max_pool2d", "avg_pool2d"])
@pytest.mark.parametrize("kernel, stride, padding", [(2, None, 0), (3, 2, 1), ((2, 3), 1, 0)])
def test_pooling_gradcheck(name, kernel, stride, padding):
    (x,) = arrays((2, 2, 5, 6), seed=4)  # continuous values: no ties, max is differentiable
    assert gradcheck(lambda x: getattr(F, name)(x, kernel, stride, padding), [Tensor(x)])


def test_float32_stays_float32():
    x, w, b = (Tensor(a.astype(np.float32), requires_grad=True) for a in arrays((2, 3, 8, 8), (4, 3, 3, 3), 4))
    y = F.avg_pool2d(F.max_pool2d(F.conv2d(x, w, b, padding=1).relu(), 2), 2)
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == w.grad.dtype == b.grad.dtype == np.float32


def test_bad_arguments():
    x = Tensor(np.zeros((1, 3, 5, 5)))
    with pytest.raises(ValueError, match="agree on C"):
        F.conv2d(x, Tensor(np.zeros((2, 4, 3, 3))))
    with pytest.raises(ValueError, match="larger than the input"):
        F.conv2d(x, Tensor(np.zeros((2, 3, 6, 6))))
    with pytest.raises(ValueError, match="stride"):
        F.conv2d(x, Tensor(np.zeros((2, 3, 3, 3))), stride=0)
    with pytest.raises(ValueError, match="half the kernel"):
        F.max_pool2d(x, 2, padding=2)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        F.avg_pool2d(Tensor(np.zeros((3, 5, 5))), 2)


# ---- modules -------------------------------------------------------------------------------------
def test_conv2d_module_parameters_and_init_like_torch():
    np.random.seed(0)
    conv = nn.Conv2d(16, 32, 5, padding=2)
    assert [n for n, _ in conv.named_parameters()] == ["weight", "bias"]
    assert conv.weight.shape == (32, 16, 5, 5) and conv.bias.shape == (32,)
    assert sum(p.size for p in conv.parameters()) == 32 * 16 * 25 + 32
    bound = 1 / np.sqrt(16 * 5 * 5)  # kaiming_uniform_(a=sqrt(5)) is U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    for p in (conv.weight, conv.bias):
        assert np.abs(p.data).max() <= bound
    assert np.abs(conv.weight.data).max() > 0.99 * bound
    assert conv.weight.data.std() == pytest.approx(bound / np.sqrt(3), rel=0.05)
    theirs = torch.nn.Conv2d(16, 32, 5, padding=2)
    assert set(conv.state_dict()) == set(theirs.state_dict())
    assert repr(conv) == repr(theirs)

    small = nn.Conv2d(3, 2, (3, 1), stride=2, bias=False, dtype=np.float32)
    assert small.bias is None and len(small.parameters()) == 1
    assert small.weight.shape == (2, 3, 3, 1) and small.weight.dtype == np.float32
    assert repr(small) == repr(torch.nn.Conv2d(3, 2, (3, 1), stride=2, bias=False))


def test_pool_modules():
    x = Tensor(arrays((2, 3, 7, 7))[0])
    assert nn.MaxPool2d(2).stride == 2 and nn.AvgPool2d(3, 1).stride == 1
    np.testing.assert_array_equal(nn.MaxPool2d(3, 2, 1)(x).data, F.max_pool2d(x, 3, 2, 1).data)
    np.testing.assert_array_equal(nn.AvgPool2d(2)(x).data, F.avg_pool2d(x, 2).data)
    assert nn.MaxPool2d(2)(x).shape == (2, 3, 3, 3) and nn.MaxPool2d(2).parameters() == []
    assert "kernel_size=2, stride=2, padding=0" in repr(nn.MaxPool2d(2))


def test_small_cnn_step_matches_torch():
    """Conv-BatchNorm-ReLU-MaxPool-Conv-ReLU-AvgPool-Linear + cross-entropy: same loss, gradients and
    running statistics as torch.nn with the same weights (batch-last views flow between our layers)."""
    np.random.seed(5)
    ours = [nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Conv2d(4, 6, (3, 2), stride=(1, 2)),
            nn.Linear(6 * 2 * 2, 3)]
    theirs = [torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.BatchNorm2d(4),
              torch.nn.Conv2d(4, 6, (3, 2), stride=(1, 2)), torch.nn.Linear(6 * 2 * 2, 3)]
    for a, b in zip(ours, theirs):
        b.double().load_state_dict({k: torch.from_numpy(v) for k, v in a.state_dict().items()})
    x, y = np.random.randn(5, 2, 9, 9), np.random.randint(0, 3, 5)

    h = F.max_pool2d(ours[1](ours[0](Tensor(x))).relu(), 2)    # (5, 4, 4, 4)
    h = F.avg_pool2d(ours[2](h).relu(), (1, 1))                  # (5, 6, 2, 2)
    loss = F.cross_entropy(ours[3](h.reshape(5, -1)), y)
    loss.backward()
    t = TF.max_pool2d(theirs[1](theirs[0](torch.from_numpy(x))).relu(), 2)
    t = TF.avg_pool2d(theirs[2](t).relu(), (1, 1))
    tloss = TF.cross_entropy(theirs[3](t.reshape(5, -1)), torch.from_numpy(y))
    tloss.backward()

    assert loss.item() == pytest.approx(tloss.item(), rel=1e-12)
    for a, b in zip(ours, theirs):
        for (name, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
            np.testing.assert_allclose(p.grad, q.grad.numpy(), rtol=1e-9, atol=1e-13, err_msg=name)
    np.testing.assert_allclose(ours[1].running_var, theirs[1].running_var.numpy(), rtol=1e-12)
