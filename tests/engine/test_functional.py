"""scratch.engine.functional against torch.nn.functional (float64) and finite differences."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as TF  # noqa: E402

import scratch.engine.functional as F  # noqa: E402
from scratch.engine import Tensor, compare_with_torch, gradcheck  # noqa: E402

RNG = np.random.default_rng(0)
X = RNG.standard_normal((5, 4))          # a batch of 5 rows, 4 features / classes
TARGETS = np.array([0, 3, 3, 1, 2])      # class indices, with a repeat
BINARY = RNG.integers(0, 2, (5, 4)).astype(np.float64)


@pytest.mark.parametrize("dim", [-1, 0])
def test_softmax_and_log_softmax(dim):
    assert compare_with_torch(lambda x: F.softmax(x, dim=dim), [X], lambda x: TF.softmax(x, dim=dim))
    assert compare_with_torch(lambda x: F.log_softmax(x, dim=dim), [X], lambda x: TF.log_softmax(x, dim=dim))


def test_log_softmax_is_stable():
    big = np.array([[1000.0, 0.0, -1000.0], [1e4, 1e4, 1e4]])
    ours = F.log_softmax(Tensor(big)).data
    assert np.all(np.isfinite(ours))
    np.testing.assert_allclose(ours, TF.log_softmax(torch.tensor(big), dim=-1).numpy(), rtol=1e-12)
    p = F.softmax(Tensor(big)).data
    np.testing.assert_allclose(p.sum(axis=-1), 1.0)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy(reduction):
    target = torch.from_numpy(TARGETS)
    assert compare_with_torch(lambda x: F.cross_entropy(x, TARGETS, reduction=reduction), [X],
                              lambda x: TF.cross_entropy(x, target, reduction=reduction))
    assert gradcheck(lambda x: F.cross_entropy(x, TARGETS, reduction=reduction), [Tensor(X)])


def test_cross_entropy_with_extreme_logits_is_finite():
    logits = Tensor(np.array([[500.0, -500.0], [-500.0, 500.0]]), requires_grad=True)
    loss = F.cross_entropy(logits, np.array([1, 1]))  # one sample badly wrong: loss 1000 / 2
    loss.backward()
    assert loss.item() == pytest.approx(500.0)
    assert np.all(np.isfinite(logits.grad))
    assert F.cross_entropy(Tensor(X), Tensor(TARGETS)).item() == pytest.approx(
        TF.cross_entropy(torch.from_numpy(X), torch.from_numpy(TARGETS)).item(), rel=1e-12)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_binary_cross_entropy_with_logits(reduction):
    y = torch.from_numpy(BINARY)
    assert compare_with_torch(lambda x: F.binary_cross_entropy_with_logits(x, BINARY, reduction=reduction), [X],
                              lambda x: TF.binary_cross_entropy_with_logits(x, y, reduction=reduction))
    # soft targets are a differentiable input as well
    soft = RNG.random((5, 4))
    assert compare_with_torch(lambda x, t: F.binary_cross_entropy_with_logits(x, t), [X, soft],
                              lambda x, t: TF.binary_cross_entropy_with_logits(x, t))
    assert gradcheck(lambda x: F.binary_cross_entropy_with_logits(x, BINARY), [Tensor(X)])


def test_binary_cross_entropy_with_extreme_logits_is_finite():
    x = np.array([-800.0, -30.0, 30.0, 800.0])
    y = np.array([1.0, 0.0, 1.0, 0.0])
    ours = F.binary_cross_entropy_with_logits(Tensor(x), y, reduction="none").data
    tiny = np.log1p(np.exp(-30.0))  # the exact loss of the two confident, correct predictions
    np.testing.assert_allclose(ours, [800.0, tiny, tiny, 800.0], rtol=1e-14)
    theirs = TF.binary_cross_entropy_with_logits(torch.from_numpy(x), torch.from_numpy(y), reduction="none")
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-12, atol=1e-14)  # torch loses digits at -30


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss(reduction):
    target = RNG.standard_normal((5, 4))
    assert compare_with_torch(lambda x, t: F.mse_loss(x, t, reduction=reduction), [X, target],
                              lambda x, t: TF.mse_loss(x, t, reduction=reduction))
    assert gradcheck(lambda x: F.mse_loss(x, target), [Tensor(X)])


@pytest.mark.parametrize("input_shape", [(5, 4), (2, 5, 4), (4,)])
def test_linear(input_shape):
    x, w, b = RNG.standard_normal(input_shape), RNG.standard_normal((3, 4)), RNG.standard_normal(3)
    assert compare_with_torch(F.linear, [x, w, b], TF.linear)
    assert compare_with_torch(lambda x, w: F.linear(x, w), [x, w], lambda x, w: TF.linear(x, w))
    assert gradcheck(F.linear, [Tensor(x), Tensor(w), Tensor(b)])


@pytest.mark.parametrize("name", ["relu", "tanh", "sigmoid"])
def test_activations(name):
    assert compare_with_torch(getattr(F, name), [X], getattr(torch, name))


def test_every_loss_against_gradcheck_in_float32_inputs():
    # gradcheck works in float64 whatever the inputs' dtype
    x = Tensor(X.astype(np.float32))
    assert gradcheck(lambda x: F.cross_entropy(x, TARGETS), [x])


def test_bad_reduction():
    with pytest.raises(ValueError, match="reduction"):
        F.mse_loss(Tensor(X), X, reduction="average")


# ---- activations: forward, gradient, kinks, float32 -------------------------------------------
def check(fn, inputs, torch_fn=None):
    """Both oracles: PyTorch (forward and gradients, float64) and finite differences."""
    assert compare_with_torch(fn, inputs, torch_fn)
    assert gradcheck(fn, [Tensor(a) for a in inputs])


ACTIVATIONS = {  # name: (ours, torch's)
    "relu": (F.relu, TF.relu),
    "leaky_relu": (F.leaky_relu, TF.leaky_relu),
    "leaky_relu-0.2": (lambda x: F.leaky_relu(x, negative_slope=0.2), lambda x: TF.leaky_relu(x, 0.2)),
    "elu": (F.elu, TF.elu),
    "elu-0.5": (lambda x: F.elu(x, alpha=0.5), lambda x: TF.elu(x, alpha=0.5)),
    "selu": (F.selu, TF.selu),
    "gelu": (F.gelu, TF.gelu),
    "gelu-tanh": (lambda x: F.gelu(x, approximate="tanh"), lambda x: TF.gelu(x, approximate="tanh")),
    "silu": (F.silu, TF.silu),
    "sigmoid": (F.sigmoid, torch.sigmoid),
    "tanh": (F.tanh, torch.tanh),
    "softmax-0": (lambda x: F.softmax(x, dim=0), lambda x: TF.softmax(x, dim=0)),
    "softmax-1": (lambda x: F.softmax(x, dim=1), lambda x: TF.softmax(x, dim=1)),
    "log_softmax-0": (lambda x: F.log_softmax(x, dim=0), lambda x: TF.log_softmax(x, dim=0)),
    "log_softmax--1": (lambda x: F.log_softmax(x, dim=-1), lambda x: TF.log_softmax(x, dim=-1)),
}


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_against_both_oracles(name):
    ours, theirs = ACTIVATIONS[name]
    check(ours, [3 * RNG.standard_normal((2, 3, 4))], theirs)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_at_kinks_and_extremes(name):
    ours, theirs = ACTIVATIONS[name]
    x = np.array([[-50.0, -1.0, 0.0, 0.0, 1e-12, 1.0, 50.0]])  # exactly 0: the one-sided derivative torch picks
    assert compare_with_torch(ours, [x], theirs, atol=1e-12)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_keeps_float32(name):
    x = Tensor(RNG.standard_normal((3, 4)).astype(np.float32), requires_grad=True)
    y = ACTIVATIONS[name][0](x)
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32


def test_gelu_rejects_unknown_approximation():
    with pytest.raises(ValueError, match="approximate"):
        F.gelu(Tensor(X), approximate="erf")


# ---- cross-entropy: every option against torch --------------------------------------------
N_CLASSES = 4
CLASS_WEIGHT = np.array([0.5, 2.0, 1.0, 1.5])
TARGETS_WITH_IGNORED = np.array([0, -100, 3, 1, -100])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore", [False, True])
def test_cross_entropy_options(reduction, label_smoothing, weighted, ignore):
    target = TARGETS_WITH_IGNORED if ignore else TARGETS
    w = CLASS_WEIGHT if weighted else None
    kw = dict(reduction=reduction, label_smoothing=label_smoothing)
    tw = None if w is None else torch.from_numpy(w)
    check(lambda x: F.cross_entropy(x, target, weight=w, **kw), [X],
          lambda x: TF.cross_entropy(x, torch.from_numpy(target), weight=tw, **kw))


def test_cross_entropy_with_full_smoothing():
    # label_smoothing=1: the target is uniform, whatever the class (weights and ignored rows still apply)
    check(lambda x: F.cross_entropy(x, TARGETS_WITH_IGNORED, weight=CLASS_WEIGHT, label_smoothing=1.0), [X],
          lambda x: TF.cross_entropy(x, torch.from_numpy(TARGETS_WITH_IGNORED), weight=torch.from_numpy(CLASS_WEIGHT),
                                     label_smoothing=1.0))


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_cross_entropy_per_position_and_unbatched(reduction, label_smoothing):
    kw = dict(reduction=reduction, label_smoothing=label_smoothing)
    logits = RNG.standard_normal((2, N_CLASSES, 3, 2))  # (N, C, d1, d2): a prediction per position
    target = RNG.integers(0, N_CLASSES, (2, 3, 2))
    check(lambda x: F.cross_entropy(x, target, **kw), [logits],
          lambda x: TF.cross_entropy(x, torch.from_numpy(target), **kw))
    check(lambda x: F.cross_entropy(x, np.array(2), **kw), [X[0]],  # (C,) and a 0-d target
          lambda x: TF.cross_entropy(x, torch.tensor(2), **kw))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.3])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_with_probability_targets(reduction, label_smoothing, weighted):
    probs = RNG.dirichlet(np.ones(N_CLASSES), size=5)
    w = CLASS_WEIGHT if weighted else None
    tw = None if w is None else torch.from_numpy(w)
    kw = dict(reduction=reduction, label_smoothing=label_smoothing)
    check(lambda x: F.cross_entropy(x, probs, weight=w, **kw), [X],
          lambda x: TF.cross_entropy(x, torch.from_numpy(probs), weight=tw, **kw))
    # soft targets as a differentiable input (distillation): their gradient too
    assert compare_with_torch(lambda x, t: F.cross_entropy(x, t, weight=w, **kw), [X, probs],
                              lambda x, t: TF.cross_entropy(x, t, weight=tw, **kw))


def test_cross_entropy_checks_targets():
    with pytest.raises(IndexError, match="out of range"):
        F.cross_entropy(Tensor(X), np.array([0, 1, 2, 3, 4]))
    with pytest.raises(IndexError, match="out of range"):
        F.cross_entropy(Tensor(X), np.array([0, 1, 2, 3, -1]))  # NumPy would wrap -1 silently
    with pytest.raises(ValueError, match="shape"):
        F.cross_entropy(Tensor(X), np.array([0.0, 1.0, 2.0, 3.0, 1.0]))  # floats must be probabilities
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(Tensor(X), TARGETS, reduction="avg")
    with pytest.raises(ValueError, match="target shape"):
        F.cross_entropy(Tensor(X), TARGETS[:4])
    with pytest.raises(ValueError, match="label_smoothing"):
        F.cross_entropy(Tensor(X), TARGETS, label_smoothing=1.5)


def test_cross_entropy_all_ignored_is_nan_like_torch():
    target = np.full(5, -100)
    ours = F.cross_entropy(Tensor(X), target).item()
    assert np.isnan(ours) and np.isnan(TF.cross_entropy(torch.from_numpy(X), torch.from_numpy(target)).item())


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_cross_entropy_keeps_float32(label_smoothing):
    x = Tensor(X.astype(np.float32), requires_grad=True)
    loss = F.cross_entropy(x, TARGETS, weight=CLASS_WEIGHT, label_smoothing=label_smoothing)
    assert loss.dtype == np.float32
    loss.backward()
    assert x.grad.dtype == np.float32
    theirs = TF.cross_entropy(torch.from_numpy(X.astype(np.float32)), torch.from_numpy(TARGETS),
                              weight=torch.from_numpy(CLASS_WEIGHT.astype(np.float32)),
                              label_smoothing=label_smoothing)
    assert loss.item() == pytest.approx(theirs.item(), rel=1e-6)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
def test_nll_loss(reduction, weighted):
    w = CLASS_WEIGHT if weighted else None
    tw = None if w is None else torch.from_numpy(w)
    for target in (TARGETS, TARGETS_WITH_IGNORED):
        check(lambda x: F.nll_loss(F.log_softmax(x, dim=1), target, weight=w, reduction=reduction), [X],
              lambda x: TF.nll_loss(TF.log_softmax(x, dim=1), torch.from_numpy(target), weight=tw,
                                    reduction=reduction))
    # cross_entropy is nll_loss of log_softmax, in one node
    np.testing.assert_allclose(F.cross_entropy(Tensor(X), TARGETS, weight=w, reduction=reduction).data,
                               F.nll_loss(F.log_softmax(Tensor(X)), TARGETS, weight=w, reduction=reduction).data,
                               rtol=1e-14)


# ---- binary cross-entropy: weights -------------------------------------------------------------
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_binary_cross_entropy_with_weights(reduction):
    w, q = RNG.random((5, 4)) + 0.5, np.array([0.5, 1.0, 2.0, 3.0])
    y, tw, tq = torch.from_numpy(BINARY), torch.from_numpy(w), torch.from_numpy(q)
    kw = dict(reduction=reduction)
    check(lambda x: F.binary_cross_entropy_with_logits(x, BINARY, weight=w, pos_weight=q, **kw), [X],
          lambda x: TF.binary_cross_entropy_with_logits(x, y, weight=tw, pos_weight=tq, **kw))
    check(lambda x: F.binary_cross_entropy_with_logits(x, BINARY, pos_weight=q, **kw), [X],
          lambda x: TF.binary_cross_entropy_with_logits(x, y, pos_weight=tq, **kw))
    soft = RNG.random((5, 4))  # soft targets with pos_weight: their gradient too
    assert compare_with_torch(lambda x, t: F.binary_cross_entropy_with_logits(x, t, pos_weight=q, **kw), [X, soft],
                              lambda x, t: TF.binary_cross_entropy_with_logits(x, t, pos_weight=tq, **kw))


def test_binary_cross_entropy_gradient_at_extreme_logits():
    x = np.array([-800.0, -30.0, 30.0, 800.0])
    y = np.array([1.0, 0.0, 1.0, 0.0])
    t = Tensor(x, requires_grad=True)
    F.binary_cross_entropy_with_logits(t, y, reduction="sum").backward()
    # sigma(x) - y, to full relative precision even where it is tiny (no 1 - (1 - tiny))
    np.testing.assert_allclose(t.grad, [-1.0, np.exp(-30.0) / (1 + np.exp(-30.0)),
                                        -np.exp(-30.0) / (1 + np.exp(-30.0)), 1.0], rtol=1e-14)


# ---- linear, dropout, embedding --------------------------------------------------------------
def test_linear_keeps_float32_and_skips_the_input_gradient():
    x = Tensor(RNG.standard_normal((6, 4)).astype(np.float32))  # data: needs no gradient
    w = Tensor(RNG.standard_normal((3, 4)).astype(np.float32), requires_grad=True)
    b = Tensor(np.zeros(3, dtype=np.float32), requires_grad=True)
    y = F.linear(x, w, b)
    assert y.dtype == np.float32
    y.sum().backward()
    assert w.grad.dtype == b.grad.dtype == np.float32 and x.grad is None


def test_dropout():
    x = Tensor(np.ones((200, 500)), requires_grad=True)
    y = F.dropout(x, p=0.3, generator=np.random.default_rng(0))
    zeros = (y.data == 0).mean()
    assert zeros == pytest.approx(0.3, abs=0.01)  # 100 000 draws: the standard error is 0.0015
    np.testing.assert_allclose(y.data[y.data != 0], 1 / 0.7)  # inverted: survivors scaled by 1/(1-p)
    assert y.data.mean() == pytest.approx(1.0, abs=0.02)  # so the expectation is unchanged
    y.backward(np.full(y.shape, 2.0))
    np.testing.assert_allclose(x.grad, 2 * y.data)  # the same mask, and the same scale, backwards
    assert F.dropout(x, p=0.3, training=False) is x and F.dropout(x, p=0.0) is x
    np.testing.assert_array_equal(F.dropout(x, p=1.0).data, 0)
    a = F.dropout(x, 0.5, generator=np.random.default_rng(7)).data
    np.testing.assert_array_equal(a, F.dropout(x, 0.5, generator=np.random.default_rng(7)).data)
    np.random.seed(3)
    b = F.dropout(x, 0.5).data
    np.random.seed(3)
    np.testing.assert_array_equal(b, F.dropout(x, 0.5).data)  # the global generator, seeded
    x32 = Tensor(np.ones(10, dtype=np.float32), requires_grad=True)
    assert F.dropout(x32, 0.5).dtype == np.float32
    with pytest.raises(ValueError):
        F.dropout(x, p=1.5)


@pytest.mark.parametrize("padding_idx", [None, 2, -1])
def test_embedding(padding_idx):
    weight = RNG.standard_normal((6, 3))
    index = np.array([[0, 2, 2, 5], [5, 1, 2, 0]])  # repeats: their gradients add up
    assert compare_with_torch(lambda w: F.embedding(index, w, padding_idx=padding_idx), [weight],
                              lambda w: TF.embedding(torch.from_numpy(index), w, padding_idx=padding_idx))
    if padding_idx is None:  # (the padding row's gradient is 0 on purpose, not the true derivative)
        assert gradcheck(lambda w: F.embedding(index, w), [Tensor(weight)])
    with pytest.raises(IndexError):
        F.embedding(np.array([6]), Tensor(weight))
    with pytest.raises(IndexError):
        F.embedding(np.array([-1]), Tensor(weight))
    with pytest.raises(TypeError):
        F.embedding(np.array([0.0]), Tensor(weight))
