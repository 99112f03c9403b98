"""scratch.engine.normalization: batch, layer and group norm against torch (float64) and finite differences."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as TF  # noqa: E402

import scratch.engine.functional as F  # noqa: E402
from scratch.engine import Tensor, compare_with_torch, gradcheck, nn  # noqa: E402


def arrays(*shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [2 * rng.standard_normal(s) + 1 for s in shapes]  # mean 1, std 2: normalization has work to do


SHAPES = [(8, 3), (4, 3, 5), (4, 3, 5, 6), (2, 3, 1, 1)]  # (N, C), (N, C, L), (N, C, H, W), m = 2


# ---- batch_norm ----------------------------------------------------------------------------------
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_batch_norm_training_matches_torch(shape, affine):
    """Batch statistics: output and every gradient; the running statistics after the update too."""
    c = shape[1]
    x, w, b, rm, rv = arrays(shape, c, c, c, c)
    rv = np.abs(rv)
    ours_rm, ours_rv, their_rm, their_rv = rm.copy(), rv.copy(), torch.tensor(rm), torch.tensor(rv)
    if affine:
        assert compare_with_torch(lambda x, w, b: F.batch_norm(x, ours_rm, ours_rv, w, b, True, 0.3),
                                  [x, w, b], lambda x, w, b: TF.batch_norm(x, their_rm, their_rv, w, b, True, 0.3))
    else:
        assert compare_with_torch(lambda x: F.batch_norm(x, ours_rm, ours_rv, training=True, momentum=0.3),
                                  [x], lambda x: TF.batch_norm(x, their_rm, their_rv, training=True, momentum=0.3))
    np.testing.assert_allclose(ours_rm, their_rm.numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours_rv, their_rv.numpy(), rtol=1e-12)  # unbiased variance, as torch


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_batch_norm_eval_matches_torch(shape):
    """Running statistics: constants, so the input's gradient is just gamma / sqrt(var + eps) times g."""
    c = shape[1]
    x, w, b, rm, rv = arrays(shape, c, c, c, c, seed=1)
    rv = np.abs(rv)
    assert compare_with_torch(lambda x, w, b: F.batch_norm(x, rm, rv, w, b, training=False),
                              [x, w, b], lambda x, w, b: TF.batch_norm(x, torch.tensor(rm), torch.tensor(rv),
                                                                       w, b, training=False))


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_gradcheck(training):
    x, w, b, rm, rv = arrays((3, 2, 2, 3), 2, 2, 2, 2, seed=2)
    rv = np.abs(rv)
    # in training, each call updates copies that nothing reads: the output uses batch statistics
    assert gradcheck(lambda x, w, b: F.batch_norm(x, rm.copy(), rv.copy(), w, b, training),
                     [Tensor(x), Tensor(w), Tensor(b)])


def test_batch_norm_needs_more_than_one_value_per_channel():
    with pytest.raises(ValueError, match="more than 1 value"):
        F.batch_norm(Tensor(np.ones((1, 3))), None, None, training=True)
    with pytest.raises(ValueError, match="running_mean"):
        F.batch_norm(Tensor(np.ones((4, 3))), None, None, training=False)


# ---- layer_norm and group_norm --------------------------------------------------------------------
@pytest.mark.parametrize("shape, normalized_shape", [((4, 5), 5), ((2, 3, 6), (6,)), ((2, 3, 4, 5), (4, 5)),
                                                     ((2, 3, 4, 5), (3, 4, 5))])
def test_layer_norm_matches_torch(shape, normalized_shape):
    ns = (normalized_shape,) if isinstance(normalized_shape, int) else normalized_shape
    x, w, b = arrays(shape, ns, ns, seed=3)
    assert compare_with_torch(lambda x, w, b: F.layer_norm(x, normalized_shape, w, b, eps=1e-3), [x, w, b],
                              lambda x, w, b: TF.layer_norm(x, ns, w, b, eps=1e-3))
    assert compare_with_torch(lambda x: F.layer_norm(x, normalized_shape), [x], lambda x: TF.layer_norm(x, ns))


@pytest.mark.parametrize("shape, groups", [((3, 6, 4, 5), 1), ((3, 6, 4, 5), 2), ((3, 6, 4, 5), 6),
                                           ((2, 4, 7), 2), ((5, 4), 2)])
def test_group_norm_matches_torch(shape, groups):
    c = shape[1]
    x, w, b = arrays(shape, c, c, seed=4)
    assert compare_with_torch(lambda x, w, b: F.group_norm(x, groups, w, b), [x, w, b],
                              lambda x, w, b: TF.group_norm(x, groups, w, b))
    assert compare_with_torch(lambda x: F.group_norm(x, groups), [x], lambda x: TF.group_norm(x, groups))


def test_layer_and_group_norm_gradcheck():
    x, w, b = arrays((2, 4, 3, 2), (3, 2), (3, 2), seed=5)
    assert gradcheck(lambda x, w, b: F.layer_norm(x, (3, 2), w, b), [Tensor(x), Tensor(w), Tensor(b)])
    w, b = arrays(4, 4, seed=6)
    assert gradcheck(lambda x, w, b: F.group_norm(x, 2, w, b), [Tensor(x), Tensor(w), Tensor(b)])


def test_layer_and_group_norm_bad_shapes():
    x = Tensor(np.ones((2, 6, 3)))
    with pytest.raises(ValueError, match="normalized_shape"):
        F.layer_norm(x, (6,))
    with pytest.raises(ValueError, match="divide"):
        F.group_norm(x, 4)


# ---- modules --------------------------------------------------------------------------------------
def twin_batch_norm(cls, tcls, num_features, **kwargs):
    return cls(num_features, **kwargs), tcls(num_features, dtype=torch.float64, **kwargs)


@pytest.mark.parametrize("cls, tcls, shape", [(nn.BatchNorm1d, torch.nn.BatchNorm1d, (8, 3)),
                                              (nn.BatchNorm1d, torch.nn.BatchNorm1d, (4, 3, 5)),
                                              (nn.BatchNorm2d, torch.nn.BatchNorm2d, (4, 3, 5, 6))])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_batch_norm_module_over_several_steps(cls, tcls, shape, momentum):
    """Five training steps (running statistics updated like torch's, momentum=None being the
    cumulative average), then evaluation: outputs and gradients equal torch's."""
    ours, theirs = twin_batch_norm(cls, tcls, shape[1], momentum=momentum)
    for step in range(5):
        (x,) = arrays(shape, seed=10 + step)
        x = x * (step + 1)  # statistics that change from batch to batch
        y, ty = ours(Tensor(x)), theirs(torch.from_numpy(x))
        np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    state = ours.state_dict()
    assert list(state) == list(theirs.state_dict())
    for name, value in theirs.state_dict().items():
        np.testing.assert_allclose(state[name], value.numpy(), rtol=1e-12, err_msg=name)
    assert int(ours.num_batches_tracked) == 5

    ours.eval(), theirs.eval()
    (x,) = arrays(shape, seed=20)
    before = ours.running_mean.copy()
    assert compare_with_torch(lambda x: ours(x), [x], lambda x: theirs(x))
    np.testing.assert_array_equal(ours.running_mean, before)  # evaluation does not update them
    assert int(ours.num_batches_tracked) == 5


def test_batch_norm_train_and_eval_differ():
    bn = nn.BatchNorm2d(3)
    (x,) = arrays((4, 3, 2, 2), seed=7)
    train = bn(Tensor(x)).data
    np.testing.assert_allclose(train.mean(axis=(0, 2, 3)), 0, atol=1e-12)  # batch statistics
    np.testing.assert_allclose(train.var(axis=(0, 2, 3)), 1, rtol=1e-4)   # (eps keeps it just below 1)
    bn.eval()
    assert not bn.training
    running = (x - bn.running_mean[:, None, None]) / np.sqrt(bn.running_var[:, None, None] + bn.eps)
    np.testing.assert_allclose(bn(Tensor(x)).data, running, rtol=1e-12)


def test_batch_norm_module_parameters_buffers_and_state_like_torch():
    bn = nn.BatchNorm2d(5)
    assert [n for n, _ in bn.named_parameters()] == ["weight", "bias"]
    np.testing.assert_array_equal(bn.weight.data, np.ones(5))
    np.testing.assert_array_equal(bn.bias.data, np.zeros(5))
    theirs = torch.nn.BatchNorm2d(5)
    assert list(bn.state_dict()) == list(theirs.state_dict())  # weight, bias, running_*, num_batches_tracked
    assert [n for n, _ in bn.named_buffers()] == ["running_mean", "running_var", "num_batches_tracked"]
    assert repr(bn) == "BatchNorm2d(5, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)"
    theirs.train()(torch.randn(4, 5, 3, 3))  # move torch's running statistics, then load them
    bn.load_state_dict(theirs.state_dict())
    np.testing.assert_allclose(bn.running_var, theirs.running_var.numpy().astype(np.float64))
    assert int(bn.num_batches_tracked) == 1

    plain = nn.BatchNorm1d(4, affine=False, track_running_stats=False)
    assert plain.parameters() == [] and plain.running_mean is None and list(plain.state_dict()) == []
    (x,) = arrays((6, 4), seed=8)
    plain.eval()  # no running statistics: batch statistics even in evaluation, as torch
    tplain = torch.nn.BatchNorm1d(4, affine=False, track_running_stats=False, dtype=torch.float64).eval()
    assert compare_with_torch(lambda x: plain(x), [x], lambda x: tplain(x))
    with pytest.raises(ValueError, match="2 or 3-d"):
        nn.BatchNorm1d(4)(Tensor(np.ones((2, 4, 3, 3))))


def test_layer_norm_and_group_norm_modules_like_torch():
    ln, tln = nn.LayerNorm((4, 5), eps=1e-6), torch.nn.LayerNorm((4, 5), eps=1e-6, dtype=torch.float64)
    gn, tgn = nn.GroupNorm(2, 6), torch.nn.GroupNorm(2, 6, dtype=torch.float64)
    for ours, theirs in ((ln, tln), (gn, tgn)):
        with torch.no_grad():  # non-trivial affine parameters, the same in both
            for p in theirs.parameters():
                p.copy_(torch.randn_like(p))
        ours.load_state_dict(theirs.state_dict())
        assert [(n, p.shape) for n, p in ours.named_parameters()] == \
               [(n, tuple(p.shape)) for n, p in theirs.named_parameters()]
        assert repr(theirs).startswith(repr(ours)[:-1])  # (recent torch adds ", bias=True")
    (x,) = arrays((3, 6, 4, 5), seed=9)
    assert compare_with_torch(lambda x: ln(x), [x], lambda x: tln(x))
    assert compare_with_torch(lambda x: gn(x), [x], lambda x: tgn(x))
    assert nn.LayerNorm(5, elementwise_affine=False).parameters() == []
    assert nn.GroupNorm(2, 6, affine=False).parameters() == []
    np.testing.assert_array_equal(nn.LayerNorm(3).weight.data, np.ones(3))
    with pytest.raises(ValueError, match="divisible"):
        nn.GroupNorm(4, 6)


def test_float32_stays_float32():
    (x,) = arrays((4, 6, 3, 3), seed=11)
    x = Tensor(x.astype(np.float32), requires_grad=True)
    layers = [nn.BatchNorm2d(6, dtype=np.float32), nn.GroupNorm(3, 6, dtype=np.float32),
              nn.LayerNorm((3, 3), dtype=np.float32)]
    for layer in layers:
        y = layer(x)
        assert y.dtype == np.float32
        y.sum().backward()
        assert all(p.grad.dtype == np.float32 for p in layer.parameters())
    assert x.grad.dtype == np.float32 and layers[0].running_var.dtype == np.float32
    layers[0].eval()
    assert layers[0](x).dtype == np.float32
