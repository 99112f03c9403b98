"""scratch.engine.models.make_mlp: the layers, and the same initial weights as the hand-built
MLPs the Part I chapters used to write out (each reproduced below, bit for bit)."""
import numpy as np
import pytest

from scratch.engine import Tensor, nn
from scratch.engine.models import make_mlp


def kinds(model) -> list:
    return [type(m).__name__ for m in model]


def assert_same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for name in sa:
        assert sa[name].dtype == sb[name].dtype, name
        np.testing.assert_array_equal(sa[name], sb[name], err_msg=name)


def test_layers_and_names():
    model = make_mlp([3, 5, 4, 2])
    assert kinds(model) == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]  # nothing after the logits
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias",
                                                        "4.weight", "4.bias"]
    assert [(m.in_features, m.out_features) for m in model if isinstance(m, nn.Linear)] == [(3, 5), (5, 4), (4, 2)]
    assert all(p.dtype == np.float64 for p in model.parameters())
    assert all(p.dtype == np.float32 for p in make_mlp([3, 2], dtype=np.float32).parameters())
    assert kinds(make_mlp([3, 2])) == ["Linear"]
    assert make_mlp([3, 5, 2])(Tensor(np.ones((7, 3)))).shape == (7, 2)


def test_activation_class_factory_or_none():
    assert kinds(make_mlp([3, 4, 2], nn.Tanh)) == ["Linear", "Tanh", "Linear"]
    model = make_mlp([3, 4, 4, 2], lambda: nn.LeakyReLU(0.2))
    assert kinds(model) == ["Linear", "LeakyReLU", "Linear", "LeakyReLU", "Linear"]
    assert model[1] is not model[3] and model[1].negative_slope == 0.2  # a fresh module per layer
    assert kinds(make_mlp([3, 4, 2], None)) == ["Linear", "Linear"]


def test_default_init_is_nn_linear_from_the_global_generator():
    """The autograd, optimizers, schedules and regularization chapters' MLPs: seeded globally, drawn
    by nn.Linear layer after layer. make_mlp draws the same numbers in the same order."""
    np.random.seed(3)
    ours = make_mlp([2, 16, 16, 2])
    np.random.seed(3)
    theirs = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2))
    assert_same_state(ours, theirs)
    after_ours = np.random.random()
    np.random.seed(3)
    nn.Sequential(nn.Linear(2, 16), nn.Linear(16, 16), nn.Linear(16, 2))
    assert np.random.random() == after_ours  # and leaves the global generator where they did


def test_dropout_after_each_hidden_activation():
    """The regularization chapter's MLP: Linear -> ReLU -> Dropout per hidden layer, none after the last."""
    np.random.seed(0)
    ours = make_mlp([784, 32, 32, 10], dropout=0.3, dtype=np.float32)
    assert kinds(ours) == ["Linear", "ReLU", "Dropout", "Linear", "ReLU", "Dropout", "Linear"]
    assert ours[2].p == 0.3 and ours[5].p == 0.3
    np.random.seed(0)
    layers, width = [], 28 * 28
    for _ in range(2):
        layers += [nn.Linear(width, 32, dtype=np.float32), nn.ReLU(), nn.Dropout(0.3)]
        width = 32
    assert_same_state(ours, nn.Sequential(*layers, nn.Linear(width, 10, dtype=np.float32)))
    assert "Dropout" not in kinds(make_mlp([784, 32, 32, 10], dropout=0.0))


def activations_chapter_mlp(widths, module, init_weight, seed, dtype):
    """The activations chapter's former copy: default Linear, then the weight redrawn from one
    generator, layer by layer, and the bias zeroed."""
    g = np.random.default_rng(seed)
    layers = []
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        linear = nn.Linear(n_in, n_out, dtype=dtype)
        init_weight(linear.weight, g)
        nn.init.zeros_(linear.bias)
        layers += [linear] if i == len(widths) - 2 else [linear, module()]
    return nn.Sequential(*layers)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_init_weight_and_seed_like_the_activations_chapter(dtype):
    lecun = lambda w, g: nn.init.lecun_normal_(w, generator=g)  # noqa: E731
    np.random.seed(1)
    ours = make_mlp([20, 8, 8, 3], nn.SELU, init_weight=lecun, seed=5, dtype=dtype)
    np.random.seed(1)
    assert_same_state(ours, activations_chapter_mlp([20, 8, 8, 3], nn.SELU, lecun, 5, dtype))
    assert all((m.bias.data == 0).all() for m in ours if isinstance(m, nn.Linear))
    # the seed fixes the weights, whatever the global generator's state
    np.random.seed(99)
    assert_same_state(ours, make_mlp([20, 8, 8, 3], nn.SELU, init_weight=lecun, seed=5, dtype=dtype))
    other = make_mlp([20, 8, 8, 3], nn.SELU, init_weight=lecun, seed=6, dtype=dtype)
    assert not np.array_equal(other[0].weight.data, ours[0].weight.data)


def normalization_chapter_mlp(norm_layer, n_layers, width, seed):
    """The normalization chapter's former copy: Linear (no bias before a norm) -> norm -> ReLU,
    He-initialized from one generator, the head Xavier, biases 0."""
    rng = np.random.default_rng(seed)
    blocks, fan_in = [], 784
    for _ in range(n_layers):
        linear = nn.Linear(fan_in, width, bias=norm_layer is None, dtype=np.float32)
        nn.init.kaiming_normal_(linear.weight, nonlinearity="relu", generator=rng)
        if linear.bias is not None:
            nn.init.zeros_(linear.bias)
        blocks += [linear] + ([norm_layer(width)] if norm_layer else []) + [nn.ReLU()]
        fan_in = width
    head = nn.Linear(fan_in, 10, dtype=np.float32)
    nn.init.xavier_normal_(head.weight, generator=rng)
    nn.init.zeros_(head.bias)
    return nn.Sequential(*blocks, head)


@pytest.mark.parametrize("norm_layer", [None, lambda w: nn.BatchNorm1d(w, dtype=np.float32),
                                        lambda w: nn.GroupNorm(4, w, dtype=np.float32)],
                         ids=["none", "BatchNorm1d", "GroupNorm"])
def test_norm_layer_and_init_last_like_the_normalization_chapter(norm_layer):
    he = lambda w, g: nn.init.kaiming_normal_(w, nonlinearity="relu", generator=g)  # noqa: E731
    xavier = lambda w, g: nn.init.xavier_normal_(w, generator=g)  # noqa: E731
    np.random.seed(2)
    ours = make_mlp([784, 16, 16, 16, 10], norm_layer=norm_layer, init_weight=he, init_last=xavier, seed=4,
                    dtype=np.float32)
    np.random.seed(2)
    theirs = normalization_chapter_mlp(norm_layer, 3, 16, 4)
    assert kinds(ours) == kinds(theirs)
    assert_same_state(ours, theirs)
    linears = [m for m in ours if isinstance(m, nn.Linear)]
    assert all((m.bias is None) == (norm_layer is not None) for m in linears[:-1])
    assert linears[-1].bias is not None  # the logits keep theirs


def test_seed_without_init_weight_draws_pytorchs_default_from_the_generator():
    a, b = make_mlp([50, 30, 4], seed=0), make_mlp([50, 30, 4], seed=0)
    assert_same_state(a, b)
    assert not np.array_equal(make_mlp([50, 30, 4], seed=1)[0].weight.data, a[0].weight.data)
    for layer in (a[0], a[2]):
        bound = 1 / np.sqrt(layer.in_features)
        for p in (layer.weight.data, layer.bias.data):
            assert np.abs(p).max() <= bound and np.abs(p).max() > 0.5 * bound  # U(-bound, bound)


def test_matches_a_torch_sequential_name_for_name():
    torch = pytest.importorskip("torch")
    model = make_mlp([6, 5, 3])
    twin = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3)).double()
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((4, 6))
    np.testing.assert_allclose(model(Tensor(x)).data, twin(torch.from_numpy(x)).detach().numpy(), rtol=1e-12)


@pytest.mark.parametrize("kwargs", [dict(widths=[3]), dict(widths=[3, 0, 2]), dict(widths=[3, 2], dropout=1.0),
                                    dict(widths=[3, 2], dropout=-0.1),
                                    dict(widths=[3, 2], init_last=lambda w, g: None)])
def test_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        make_mlp(**kwargs)
