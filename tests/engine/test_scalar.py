"""scratch.engine.Value, the scalar engine, against PyTorch (float64)."""
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from scratch.engine import Value  # noqa: E402
from scratch.engine.draw import draw_graph  # noqa: E402

# Every op, written once; it runs on Values and on 0-d torch tensors alike.
UNARY = {
    "neg": lambda x: -x, "exp": lambda x: x.exp(), "log": lambda x: x.log(),
    "tanh": lambda x: x.tanh(), "relu": lambda x: x.relu(), "sigmoid": lambda x: x.sigmoid(),
    "square": lambda x: x ** 2, "cube": lambda x: x ** 3, "sqrt": lambda x: x ** 0.5,
    "rsub": lambda x: 2.0 - x, "rdiv": lambda x: 3.0 / x, "radd": lambda x: 1.5 + x, "rmul": lambda x: 2.5 * x,
}
BINARY = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
          "div": lambda a, b: a / b}


def both(*xs):
    """The same numbers as Values and as float64 torch scalars that require grad."""
    return [Value(x) for x in xs], [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in xs]


@pytest.mark.parametrize("name", UNARY)
@pytest.mark.parametrize("x", [0.7, 1.9, -1.3])
def test_unary_op(name, x):
    if name in ("log", "sqrt") and x < 0:
        x = -x  # inside the op's domain
    (v,), (t,) = both(x)
    y, ty = UNARY[name](v), UNARY[name](t)
    y.backward()
    ty.backward()
    assert y.data == pytest.approx(ty.item(), rel=1e-12)
    assert v.grad == pytest.approx(t.grad.item(), rel=1e-12)


@pytest.mark.parametrize("name", BINARY)
def test_binary_op(name):
    (a, b), (ta, tb) = both(1.7, -0.6)
    y, ty = BINARY[name](a, b), BINARY[name](ta, tb)
    y.backward()
    ty.backward()
    assert y.data == pytest.approx(ty.item(), rel=1e-12)
    assert a.grad == pytest.approx(ta.grad.item(), rel=1e-12)
    assert b.grad == pytest.approx(tb.grad.item(), rel=1e-12)


def random_expression(xs, rng, n_ops=40):
    """A random DAG over the inputs: each step applies a random op to earlier nodes,
    so nodes are reused (the case where gradients must add up)."""
    nodes = list(xs)
    for _ in range(n_ops):
        if rng.random() < 0.5:
            a, b = (nodes[i] for i in rng.integers(len(nodes), size=2))
            op = ["add", "sub", "mul"][rng.integers(3)]
            nodes.append(BINARY[op](a, b))
        else:
            a = nodes[rng.integers(len(nodes))]
            op = ["tanh", "sigmoid", "relu", "neg", "rmul"][rng.integers(5)]
            nodes.append(UNARY[op](a))
        # keep magnitudes tame so the comparison measures the engine, not overflow
        nodes[-1] = nodes[-1].tanh() * 2.0
    total = nodes[-1]
    for n in nodes[len(xs):]:
        total = total + n * 0.1
    return total / 3.0 + (total ** 2 + 1.0).log()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_expression_matches_torch(seed):
    xs = np.random.default_rng(seed + 100).standard_normal(4)
    vs, ts = both(*xs)
    y = random_expression(vs, np.random.default_rng(seed))
    ty = random_expression(ts, np.random.default_rng(seed))
    y.backward()
    ty.backward()
    assert y.data == pytest.approx(ty.item(), rel=1e-9)
    for v, t in zip(vs, ts):
        assert v.grad == pytest.approx(t.grad.item(), rel=1e-6, abs=1e-12)


def test_micrograd_example():
    # the expression of micrograd's own test, with division and powers
    (a, b), (ta, tb) = both(-4.0, 2.0)

    def expr(a, b):
        c = a + b
        d = a * b + b ** 3
        c = c + c + 1
        c = c + 1 + c + (-a)
        d = d + d * 2 + (b + a).relu()
        d = d + 3 * d + (b - a).relu()
        e = c - d
        f = e ** 2
        g = f / 2.0
        g = g + 10.0 / f
        return g
    g, tg = expr(a, b), expr(ta, tb)
    g.backward()
    tg.backward()
    assert g.data == pytest.approx(tg.item(), rel=1e-12)
    assert a.grad == pytest.approx(ta.grad.item(), rel=1e-12)
    assert b.grad == pytest.approx(tb.grad.item(), rel=1e-12)


def test_a_value_used_twice_gets_both_gradients():
    x = Value(3.0)
    y = x * x  # dy/dx = 2x, from two uses of x
    y.backward()
    assert x.grad == 6.0


def test_gradients_accumulate_across_backward_calls():
    x = Value(2.0)
    (x * 3).backward()
    (x * 4).backward()
    assert x.grad == 7.0


def test_a_second_backward_on_the_same_graph_doubles_the_leaf_gradients():
    x = Value(0.7)
    y = ((x * x).tanh() * 3.0 + x).sigmoid()  # intermediate values between x and y
    y.backward()
    first = x.grad
    y.backward()
    assert x.grad == pytest.approx(2 * first, rel=1e-14)


def test_sigmoid_does_not_overflow():
    assert Value(-1000.0).sigmoid().data == 0.0
    assert Value(1000.0).sigmoid().data == 1.0
    assert math.isclose(Value(0.3).sigmoid().data, 1 / (1 + math.exp(-0.3)), rel_tol=1e-14)


def test_draw_graph():
    x, w, b = Value(2.0, label="x"), Value(-0.5, label="w"), Value(0.8, label="b")
    y = (w * x + b).tanh()
    y.backward()
    fig = draw_graph(y)
    ops, values = fig.data
    assert len(values.x) == 6  # x, w, b, w*x, w*x+b, tanh
    assert len(ops.x) == 3
    assert len(fig.layout.annotations) == (2 + 2 + 1) + 3  # an arrow per input of each op, one per result
    assert any("<b>w</b>" in t for t in values.text)
