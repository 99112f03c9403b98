"""scratch.engine.nn.init: bounds and spreads against theory and against torch.nn.init's formulas.

Random draws differ between the libraries, so the tests compare distributions:
a uniform's range and standard deviation ($b/\\sqrt3$), a normal's standard
deviation, each estimated from about 10^5 draws (relative standard error ~0.2%).
"""
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from scratch.engine import Tensor, nn  # noqa: E402

init = nn.init
SHAPES = [(400, 250), (64, 32, 3, 3)]  # a linear layer's weight, a convolution's (out, in, kh, kw)


def fans(shape):
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def fill(fn, shape, seed=0, **kwargs):
    return fn(Tensor(np.empty(shape)), generator=np.random.default_rng(seed), **kwargs).data


def torch_fill(fn, shape, **kwargs):
    torch.manual_seed(0)
    return fn(torch.empty(shape, dtype=torch.float64), **kwargs).numpy()


@pytest.mark.parametrize("nonlinearity, param", [
    ("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None), ("relu", None),
    ("leaky_relu", None), ("leaky_relu", 0.2), ("leaky_relu", math.sqrt(5)), ("selu", None)])
def test_calculate_gain_matches_torch(nonlinearity, param):
    assert init.calculate_gain(nonlinearity, param) == pytest.approx(
        torch.nn.init.calculate_gain(nonlinearity, param), rel=1e-15)


def test_calculate_gain_rejects_unknown():
    with pytest.raises(ValueError):
        init.calculate_gain("softsign")


@pytest.mark.parametrize("shape", SHAPES + [(5, 3)])
def test_fans_match_torch(shape):
    assert init._calculate_fan_in_and_fan_out(Tensor(np.empty(shape))) == \
        torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape)) == fans(shape)
    with pytest.raises(ValueError):
        init._calculate_fan_in_and_fan_out(Tensor(np.empty(5)))


UNIFORM = {  # name: (ours, torch's, kwargs, bound from the formula)
    "xavier_uniform": (init.xavier_uniform_, torch.nn.init.xavier_uniform_, {},
                       lambda fi, fo: math.sqrt(6 / (fi + fo))),
    "xavier_uniform-gain": (init.xavier_uniform_, torch.nn.init.xavier_uniform_, {"gain": 5 / 3},
                            lambda fi, fo: 5 / 3 * math.sqrt(6 / (fi + fo))),
    "kaiming_uniform": (init.kaiming_uniform_, torch.nn.init.kaiming_uniform_, {"nonlinearity": "relu"},
                        lambda fi, fo: math.sqrt(6 / fi)),
    "kaiming_uniform-a-sqrt5": (init.kaiming_uniform_, torch.nn.init.kaiming_uniform_, {"a": math.sqrt(5)},
                                lambda fi, fo: 1 / math.sqrt(fi)),  # torch.nn.Linear's default
    "kaiming_uniform-fan_out": (init.kaiming_uniform_, torch.nn.init.kaiming_uniform_,
                                {"mode": "fan_out", "nonlinearity": "relu"}, lambda fi, fo: math.sqrt(6 / fo)),
    "lecun_uniform": (init.lecun_uniform_, lambda t: torch.nn.init.kaiming_uniform_(t, nonlinearity="linear"), {},
                      lambda fi, fo: math.sqrt(3 / fi)),
    "uniform": (init.uniform_, torch.nn.init.uniform_, {"a": -0.3, "b": 0.5}, None),
}
NORMAL = {  # name: (ours, torch's, kwargs, std from the formula)
    "xavier_normal": (init.xavier_normal_, torch.nn.init.xavier_normal_, {"gain": 2.0},
                      lambda fi, fo: 2.0 * math.sqrt(2 / (fi + fo))),
    "kaiming_normal": (init.kaiming_normal_, torch.nn.init.kaiming_normal_, {"nonlinearity": "relu"},
                       lambda fi, fo: math.sqrt(2 / fi)),
    "kaiming_normal-leaky-fan_out": (init.kaiming_normal_, torch.nn.init.kaiming_normal_,
                                     {"a": 0.1, "mode": "fan_out"},
                                     lambda fi, fo: math.sqrt(2 / (1 + 0.01)) / math.sqrt(fo)),
    "lecun_normal": (init.lecun_normal_, lambda t: torch.nn.init.kaiming_normal_(t, nonlinearity="linear"), {},
                     lambda fi, fo: 1 / math.sqrt(fi)),
    "normal": (init.normal_, torch.nn.init.normal_, {"mean": 0.0, "std": 0.02}, lambda fi, fo: 0.02),
}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", UNIFORM)
def test_uniform_schemes(name, shape):
    ours, theirs, kwargs, formula = UNIFORM[name]
    w, t = fill(ours, shape, **kwargs), torch_fill(theirs, shape, **kwargs)
    if formula is None:
        lo, hi = kwargs["a"], kwargs["b"]
    else:
        hi = formula(*fans(shape))
        lo = -hi
    for x in (w, t):  # both libraries: inside the bounds, reaching them, with the uniform's spread
        assert lo <= x.min() < lo + 0.01 * (hi - lo) and hi - 0.01 * (hi - lo) < x.max() <= hi
        assert x.std() == pytest.approx((hi - lo) / math.sqrt(12), rel=0.02)
        assert x.mean() == pytest.approx((lo + hi) / 2, abs=0.01 * (hi - lo))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", NORMAL)
def test_normal_schemes(name, shape):
    ours, theirs, kwargs, formula = NORMAL[name]
    w, t = fill(ours, shape, **kwargs), torch_fill(theirs, shape, **kwargs)
    std = formula(*fans(shape))
    for x in (w, t):
        assert x.std() == pytest.approx(std, rel=0.02)
        assert abs(x.mean()) < 0.02 * std
        assert np.abs(x).max() > 3 * std  # a normal's tails, not a uniform's hard edge


def test_trunc_normal():
    w = fill(init.trunc_normal_, (400, 250), mean=0.5, std=2.0, a=-1.0, b=3.0)
    t = torch_fill(torch.nn.init.trunc_normal_, (400, 250), mean=0.5, std=2.0, a=-1.0, b=3.0)
    # theory: N(mu, sigma^2) restricted to [-1, 3], i.e. to [alpha, beta] = [-0.75, 1.25] standard deviations
    mu, sigma, alpha, beta = 0.5, 2.0, -0.75, 1.25
    pdf = lambda z: math.exp(-z * z / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    cdf = lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2)))  # noqa: E731
    mass = cdf(beta) - cdf(alpha)
    mean = mu + sigma * (pdf(alpha) - pdf(beta)) / mass
    std = sigma * math.sqrt(1 + (alpha * pdf(alpha) - beta * pdf(beta)) / mass
                            - ((pdf(alpha) - pdf(beta)) / mass) ** 2)
    for x in (w, t):
        assert -1.0 <= x.min() < -0.99 and 2.99 < x.max() <= 3.0
        assert x.mean() == pytest.approx(mean, abs=0.01)
        assert x.std() == pytest.approx(std, rel=0.02)


def test_fills_in_place_keep_dtype_and_return_the_tensor():
    p = nn.Parameter(np.empty((30, 20), dtype=np.float32))
    array = p.data
    assert init.kaiming_normal_(p) is p
    assert p.data is array and p.dtype == np.float32  # the same array, overwritten
    assert init.zeros_(p) is p and not p.data.any()
    init.ones_(p)
    assert (p.data == 1).all()
    init.constant_(p, 0.25)
    assert (p.data == 0.25).all()
    raw = np.empty((4, 3))
    assert init.xavier_uniform_(raw) is raw  # a bare array works too


def test_generators_make_draws_repeat():
    a = fill(init.xavier_uniform_, (20, 10), seed=3)
    np.testing.assert_array_equal(a, fill(init.xavier_uniform_, (20, 10), seed=3))
    assert not np.array_equal(a, fill(init.xavier_uniform_, (20, 10), seed=4))
    np.random.seed(1)  # the default: NumPy's global generator, which seed_everything seeds
    b = init.normal_(Tensor(np.empty(5))).data
    np.random.seed(1)
    np.testing.assert_array_equal(b, init.normal_(Tensor(np.empty(5))).data)


def test_bad_mode():
    with pytest.raises(ValueError, match="mode"):
        init.kaiming_uniform_(Tensor(np.empty((3, 2))), mode="fan_avg")
