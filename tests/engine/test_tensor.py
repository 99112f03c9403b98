"""scratch.engine.Tensor: every op against PyTorch (float64) and against finite differences."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from scratch.engine import Tensor, compare_with_torch, gradcheck, is_grad_enabled, no_grad  # noqa: E402
from scratch.engine import cat, concatenate, stack, where  # noqa: E402
from scratch.engine.tensor import _make, unbroadcast  # noqa: E402


def arrays(*shapes, positive=False, seed=0):
    rng = np.random.default_rng(seed)
    out = [rng.standard_normal(s) for s in shapes]
    # log, a**b with a tensor b, and division need inputs away from 0 (and > 0 for log)
    return [np.abs(a) + 0.5 for a in out] if positive else out


def check(fn, inputs, torch_fn=None):
    """Both oracles: PyTorch (forward and gradients, float64) and finite differences."""
    assert compare_with_torch(fn, inputs, torch_fn)
    assert gradcheck(fn, [Tensor(a) for a in inputs])


# (id, function of the inputs (same syntax in both libraries), input shapes, positive inputs?)
BINARY = [
    ("add-same", lambda a, b: a + b, [(3, 4), (3, 4)]),
    ("add-broadcast", lambda a, b: a + b, [(3, 1, 4), (2, 4)]),
    ("add-0d", lambda a, b: a + b, [(3, 4), ()]),
    ("sub-broadcast", lambda a, b: a - b, [(2, 4), (3, 1, 4)]),
    ("mul-broadcast", lambda a, b: a * b, [(3, 1, 4), (2, 1)]),
    ("mul-row", lambda a, b: a * b, [(4,), (3, 4)]),
    ("div-broadcast", lambda a, b: a / b, [(2, 3, 1), (1, 4)], True),
    ("pow-tensor-exponent", lambda a, b: a ** b, [(3, 4), (4,)], True),
    ("add-python-scalar", lambda a: 2.5 + a - 1.0, [(3, 4)]),
    ("mul-python-scalar", lambda a: 3.0 * a * 0.5, [(3, 4)]),
    ("rsub-rdiv", lambda a: 1.0 - 2.0 / a, [(3, 4)], True),
    ("pow-constant", lambda a: a ** 3, [(3, 4)]),
    ("pow-fractional", lambda a: a ** 0.5, [(3, 4)], True),
    ("rpow", lambda a: 2.0 ** a, [(3, 4)]),
    ("neg", lambda a: -a, [(3, 4)]),
]
MATMUL = [  # every case np.matmul defines: vectors, matrices, batches, broadcast batches
    [(3, 4), (4, 5)], [(4,), (4, 5)], [(3, 4), (4,)], [(4,), (4,)],
    [(2, 3, 4), (4, 5)], [(2, 3, 4), (2, 4, 5)], [(2, 1, 3, 4), (5, 4, 2)], [(4,), (2, 4, 3)],
]
UNARY = [
    ("exp", lambda a: a.exp(), False), ("log", lambda a: a.log(), True), ("log1p", lambda a: a.log1p(), True),
    ("tanh", lambda a: a.tanh(), False), ("relu", lambda a: a.relu(), False),
    ("sigmoid", lambda a: a.sigmoid(), False), ("abs", lambda a: a.abs(), False),
]
REDUCTIONS = [(None, False), (0, False), (1, True), (-1, False), ((0, 2), False), ((0, 2), True)]


@pytest.mark.parametrize("case", BINARY, ids=[c[0] for c in BINARY])
def test_arithmetic(case):
    _, fn, shapes, *positive = case
    check(fn, arrays(*shapes, positive=bool(positive)))


@pytest.mark.parametrize("shapes", MATMUL, ids=[f"{a}@{b}" for a, b in MATMUL])
def test_matmul(shapes):
    check(lambda a, b: a @ b, arrays(*shapes))


@pytest.mark.parametrize("name, fn, positive", UNARY, ids=[u[0] for u in UNARY])
@pytest.mark.parametrize("shape", [(5,), (3, 1, 4)])
def test_elementwise(name, fn, positive, shape):
    check(fn, arrays(shape, positive=positive))


@pytest.mark.parametrize("axis, keepdims", REDUCTIONS)
@pytest.mark.parametrize("op", ["sum", "mean"])
def test_reductions(op, axis, keepdims):
    fn = lambda a: getattr(a, op)(axis=axis, keepdims=keepdims)  # noqa: E731
    check(fn, arrays((2, 3, 4)))


@pytest.mark.parametrize("name, ours, theirs", [
    ("reshape", lambda a: a.reshape(4, 6), None),
    ("reshape-tuple", lambda a: a.reshape((6, -1)), None),
    ("transpose", lambda a: a.transpose(0, 2), None),
    ("permute", lambda a: a.permute(2, 0, 1), None),
    ("T", lambda a: a.T, lambda a: a.permute(2, 1, 0)),  # torch deprecates .T beyond 2-D
], ids=lambda v: v if isinstance(v, str) else "")
def test_shape_ops(name, ours, theirs):
    check(ours, arrays((2, 3, 4)), theirs)


@pytest.mark.parametrize("index", [
    (slice(1, None), slice(None, None, 2)),           # slices
    np.array([0, 2, 0, 0]),                           # integer array with repeats
    (np.array([0, 1, 1]), np.array([3, 0, 3])),       # pairs (the cross-entropy pattern)
    np.array([[True, False, True, True]] * 3),        # boolean mask
    (Ellipsis, 1),                                    # an integer
], ids=["slices", "int-array", "int-pairs", "mask", "ellipsis-int"])
def test_getitem(index):
    def torch_fn(a):
        to_torch = lambda i: torch.from_numpy(i) if isinstance(i, np.ndarray) else i  # noqa: E731
        return a[tuple(map(to_torch, index)) if isinstance(index, tuple) else to_torch(index)]
    check(lambda a: a[index], arrays((3, 4)), torch_fn)


def test_getitem_repeated_index_adds_gradients():
    x = Tensor(np.arange(3.0), requires_grad=True)
    x[np.array([0, 0, 0, 2])].sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 0.0, 1.0])


def test_composite_expression():
    def fn(x, w, b):
        h = (x @ w + b).tanh()  # (5, 3)
        return (h * h.sigmoid()).mean(axis=0) - h.T.sum(axis=1) / 3
    check(fn, arrays((5, 4), (4, 3), (3,)))


# ---- the backward pass itself -------------------------------------------------------------
def test_gradients_accumulate_until_zeroed():
    x = Tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    y = (x * x).sum()
    y.backward()
    np.testing.assert_allclose(x.grad, 2 * x.data)
    y.backward()  # the graph is kept: a second pass adds the same again
    np.testing.assert_allclose(x.grad, 4 * x.data)
    (3 * x).sum().backward()  # another graph through the same leaf adds too
    np.testing.assert_allclose(x.grad, 4 * x.data + 3)
    x.grad = None
    y.backward()
    np.testing.assert_allclose(x.grad, 2 * x.data)


def test_shared_subexpression_gets_the_sum_of_its_uses():
    # x feeds y twice and z once: the multivariate chain rule sums all three paths
    x = Tensor(np.array(1.5), requires_grad=True)
    y = x * x
    z = y * x + y  # x^3 + x^2
    z.backward()
    assert x.grad == pytest.approx(3 * 1.5 ** 2 + 2 * 1.5)


def test_backward_with_explicit_gradient():
    a, = arrays((3, 4))
    g = np.random.default_rng(1).standard_normal((3, 4))
    x, tx = Tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    (x.tanh() * 2).backward(g)
    (tx.tanh() * 2).backward(torch.from_numpy(g))
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-12)
    x.grad = None
    (x.tanh() * 2).backward(Tensor(g))  # a Tensor gradient works too
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-12)


def test_backward_errors():
    x = Tensor(np.ones((2, 2)), requires_grad=True)
    with pytest.raises(RuntimeError, match="one number"):
        (x * 2).backward()
    with pytest.raises(ValueError, match="shape"):
        (x * 2).backward(np.ones(3))
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor(np.ones(2)).sum().backward()
    with pytest.raises(TypeError):
        Tensor(np.arange(3), requires_grad=True)


def test_only_leaves_keep_grad_unless_retained():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = x * 3
    k = (x * 5).retain_grad()
    (h.sum() + k.sum()).backward()
    assert h.grad is None and x.is_leaf and not h.is_leaf
    np.testing.assert_array_equal(k.grad, [1.0, 1.0])
    np.testing.assert_array_equal(x.grad, [8.0, 8.0])


def test_constants_get_no_gradient_and_detach_stops_it():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    c = Tensor(np.array([3.0, 4.0]))
    (x * c + x.detach() * x).sum().backward()
    assert c.grad is None
    np.testing.assert_array_equal(x.grad, c.data + x.data)  # only the undetached x counts


def test_no_grad():
    x = Tensor(np.ones(3), requires_grad=True)
    with no_grad():
        assert not is_grad_enabled()
        y = x * 2 + 1
        with no_grad():
            pass
        assert not is_grad_enabled()  # an inner block restores the outer state, not True
    assert is_grad_enabled()
    assert not y.requires_grad and y.is_leaf and y._parents == ()
    with pytest.raises(ZeroDivisionError):
        with no_grad():
            1 / 0
    assert is_grad_enabled()  # restored after an exception too
    assert (x * 2).requires_grad


def test_deep_graph_does_not_hit_the_recursion_limit():
    x = Tensor(np.array(1.0), requires_grad=True)
    y = x
    for _ in range(5000):
        y = y + x
    y.backward()
    assert x.grad == 5001


def test_numpy_array_on_the_left():
    x = Tensor(np.ones(3), requires_grad=True)
    y = np.arange(3.0) * x + np.float64(2.0)
    assert isinstance(y, Tensor)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, np.arange(3.0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept(dtype):
    x = Tensor(np.ones((2, 3), dtype=dtype), requires_grad=True)
    w = Tensor(np.ones((3, 4), dtype=dtype), requires_grad=True)
    y = ((x @ w) * 2.0 + 1).sigmoid().log().mean()
    assert y.dtype == dtype
    y.backward()
    assert x.grad.dtype == dtype and w.grad.dtype == dtype


def test_float32_matches_float64_to_single_precision():
    a, b = arrays((4, 5), (5, 3))
    def loss(x, w):
        return ((x @ w).tanh() ** 2).mean()
    grads = {}
    for dtype in (np.float32, np.float64):
        x, w = Tensor(a.astype(dtype), requires_grad=True), Tensor(b.astype(dtype), requires_grad=True)
        loss(x, w).backward()
        grads[dtype] = w.grad
    np.testing.assert_allclose(grads[np.float32], grads[np.float64], rtol=1e-5, atol=1e-6)


def test_properties():
    x = Tensor(np.arange(6.0).reshape(2, 3))
    assert x.shape == (2, 3) and x.dtype == np.float64 and x.ndim == 2 and x.size == 6 and len(x) == 2
    assert x.numpy() is x.data
    assert Tensor(np.array([[2.5]])).item() == 2.5
    assert Tensor(1.0).dtype == np.float64


def test_unbroadcast():
    g = np.ones((3, 2, 4))
    assert unbroadcast(g, (2, 4)).tolist() == np.full((2, 4), 3.0).tolist()
    assert unbroadcast(g, (3, 1, 4)).shape == (3, 1, 4) and unbroadcast(g, (3, 1, 4))[0, 0, 0] == 2
    assert unbroadcast(g, ()).item() == 24
    assert unbroadcast(g, (1, 1)).item() == 24


# ---- the oracle must fail a wrong gradient ------------------------------------------------------
def cube_with_wrong_gradient(x):
    data = x.data
    return _make(data ** 3, (x,), lambda g: (g * 2 * data ** 2,), "bad_cube")  # should be 3 x^2


def add_without_unbroadcast_sum(a, b):
    # wrong: takes one copy's gradient instead of the sum over the broadcast axis
    return _make(a.data + b.data, (a, b), lambda g: (g, g[:1]), "bad_add")


def test_gradcheck_passes_a_correct_op():
    assert gradcheck(lambda x: x ** 3, arrays_t((3, 4)))


def test_gradcheck_catches_a_wrong_gradient():
    with pytest.raises(AssertionError, match=r"input 0 at index \(\d+, \d+\)"):
        gradcheck(cube_with_wrong_gradient, arrays_t((3, 4)))
    with pytest.raises(AssertionError, match="input 1"):
        gradcheck(add_without_unbroadcast_sum, arrays_t((3, 4), (1, 4)))


def test_gradcheck_catches_a_wrong_permutation():
    # the backward of a permutation must apply the inverse one, (2, 0, 1) here; applying
    # the same one again has the right shape on a cube, and the wrong values
    def bad_permute(x):
        return _make(x.data.transpose(1, 2, 0), (x,), lambda g: (g.transpose(1, 2, 0),), "bad_permute")
    with pytest.raises(AssertionError):
        gradcheck(bad_permute, arrays_t((3, 3, 3)))


def test_a_gradient_of_the_wrong_shape_names_the_op():
    def bad_reshape(x):
        return _make(x.data.reshape(-1), (x,), lambda g: (g,), "bad_reshape")
    with pytest.raises(RuntimeError, match="bad_reshape"):
        bad_reshape(Tensor(np.ones((2, 3)), requires_grad=True)).sum().backward()


def test_gradcheck_catches_nan():
    def nan_grad(x):
        return _make(x.data * 2, (x,), lambda g: (g * np.nan,), "nan")
    with pytest.raises(AssertionError):
        gradcheck(nan_grad, arrays_t((2,)))


def test_gradcheck_reports_the_worst_element():
    def wrong_at_one_element(x):
        def backward(g):
            grad = g.copy()
            grad[1, 2] += 5.0
            return (grad,)
        return _make(x.data.copy(), (x,), backward, "wrong_at_1_2")
    with pytest.raises(AssertionError, match=r"index \(1, 2\)"):
        gradcheck(wrong_at_one_element, arrays_t((3, 4)))


def test_compare_with_torch_catches_a_wrong_gradient():
    with pytest.raises(AssertionError):
        compare_with_torch(cube_with_wrong_gradient, arrays((3, 4)), lambda x: x ** 3)


def arrays_t(*shapes):
    return [Tensor(a) for a in arrays(*shapes)]


# ---- the rest of the tensor API ------------------------------------------------------------------


EXTREMA = [(None, False), (None, True), (0, False), (-1, True), ((0, 2), False), (1, False)]


@pytest.mark.parametrize("axis, keepdims", EXTREMA)
@pytest.mark.parametrize("op", ["max", "min"])
def test_max_min(op, axis, keepdims):
    dims = tuple(range(3)) if axis is None else axis
    theirs = lambda a: getattr(torch, "a" + op)(a, dim=dims, keepdim=keepdims)  # noqa: E731
    check(lambda a: getattr(a, op)(axis=axis, keepdims=keepdims), arrays((2, 3, 4)), theirs)


@pytest.mark.parametrize("op", ["max", "min"])
def test_max_min_ties_share_the_gradient(op):
    x = np.array([[1.0, 3.0, 3.0, -2.0], [5.0, 5.0, 5.0, 0.0], [-2.0, 1.0, -2.0, 7.0]])
    x = x if op == "max" else -x
    amax = getattr(torch, "a" + op)
    assert compare_with_torch(lambda a: getattr(a, op)(axis=1), [x], lambda a: amax(a, dim=1))
    assert compare_with_torch(lambda a: getattr(a, op)(), [x], lambda a: getattr(a, op)())  # full: even split
    t = Tensor(x, requires_grad=True)
    getattr(t, op)(axis=1).sum().backward()
    np.testing.assert_allclose(t.grad[1], [1 / 3, 1 / 3, 1 / 3, 0])
    np.testing.assert_allclose(t.grad[0], [0, 0.5, 0.5, 0])


@pytest.mark.parametrize("op", ["sum", "mean", "max", "min"])
def test_reductions_accept_torch_argument_names(op):
    x = Tensor(arrays((2, 3, 4))[0])
    np.testing.assert_array_equal(getattr(x, op)(dim=1, keepdim=True).data,
                                  getattr(x, op)(axis=1, keepdims=True).data)
    assert getattr(x, op)(dim=(0, -1)).shape == (3,)


def test_reductions_over_size_one_axes():
    for op in ["sum", "mean", "max", "min"]:
        check(lambda a: getattr(a, op)(axis=1), arrays((3, 1, 2)),
              (lambda a: getattr(torch, "a" + op)(a, dim=1)) if op in ("max", "min") else None)


@pytest.mark.parametrize("name, fn, positive", [
    ("sqrt", lambda a: a.sqrt(), True),
    ("clip-both", lambda a: a.clip(-0.5, 0.7), False),
    ("clip-min", lambda a: a.clip(min=-0.2), False),
    ("clip-max", lambda a: a.clip(max=0.3), False),
    ("clamp", lambda a: a.clamp(-1.0, 1.0), False),
], ids=lambda v: v if isinstance(v, str) else "")
def test_more_elementwise(name, fn, positive):
    check(fn, arrays((3, 1, 4), positive=positive))


def test_clip_at_its_boundaries_matches_torch():
    # PyTorch 2.x passes the gradient strictly inside (min, max): 0 at the boundaries themselves
    x = np.array([-2.0, -1.0, -0.5, 0.0, 1.0, 1.5])
    assert compare_with_torch(lambda a: a.clip(-1.0, 1.0), [x], lambda a: a.clamp(-1.0, 1.0))
    assert compare_with_torch(lambda a: a.clip(min=0.0), [x], lambda a: a.clamp(min=0.0))
    assert compare_with_torch(lambda a: a.clip(max=1.0), [x], lambda a: a.clamp(max=1.0))
    with pytest.raises(ValueError):
        Tensor(x).clip()


def test_kinks_match_torch():
    x = np.array([-1.5, 0.0, 0.0, 2.0])  # relu and abs at exactly 0: gradient 0, as PyTorch
    for fn in (lambda a: a.relu(), lambda a: a.abs(), lambda a: a ** 2, lambda a: a ** 0):
        assert compare_with_torch(fn, [x])


@pytest.mark.parametrize("name, ours, theirs", [
    ("flatten", lambda a: a.flatten(), None),
    ("flatten-1", lambda a: a.flatten(1), lambda a: a.flatten(1)),
    ("flatten-0-1", lambda a: a.flatten(0, 1), None),
    ("unsqueeze", lambda a: a.unsqueeze(1), None),
    ("unsqueeze-neg", lambda a: a.unsqueeze(-1), None),
    ("transpose-neg", lambda a: a.transpose(-1, 0), None),
    ("permute-list", lambda a: a.permute([1, 2, 0]), lambda a: a.permute(1, 2, 0)),
], ids=lambda v: v if isinstance(v, str) else "")
def test_more_shape_ops(name, ours, theirs):
    check(ours, arrays((2, 3, 4)), theirs)


@pytest.mark.parametrize("index", [
    -1,                                                # a negative integer
    (slice(None), -2),                                 # ... in a tuple
    (slice(None, None, -1), slice(-3, None)),          # negative step and start
    np.array([-1, 0, -1, 2]),                          # negative and repeated integer array
    (np.array([[0], [2]]), np.array([[1, -1, 1]])),    # broadcast integer arrays, with repeats
    (None, slice(1, 2)),                               # a new axis and a size-1 slice
], ids=["neg-int", "neg-in-tuple", "neg-slices", "neg-int-array", "broadcast-arrays", "newaxis"])
def test_getitem_negative_and_repeated(index):
    def torch_fn(a):
        to_torch = lambda i: torch.from_numpy(i) if isinstance(i, np.ndarray) else i  # noqa: E731
        if isinstance(index, tuple) and any(isinstance(i, slice) and i.step == -1 for i in index):
            return a.flip(0)[:, -3:]  # torch has no negative steps
        return a[tuple(map(to_torch, index)) if isinstance(index, tuple) else to_torch(index)]
    check(lambda a: a[index], arrays((3, 4)), torch_fn)


def test_getitem_with_a_tensor_index_and_a_list():
    x = Tensor(np.arange(4.0), requires_grad=True)
    (x[Tensor(np.array([1, 1]))].sum() + x[[3, 3, 3]].sum()).backward()
    np.testing.assert_array_equal(x.grad, [0, 2, 0, 3])


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concatenate(axis):
    shapes = [(2, 3, 4), (2, 3, 4), (2, 3, 4)]
    shapes = [tuple(n + k if i == axis % 3 else n for i, n in enumerate(s)) for k, s in enumerate(shapes)]
    check(lambda *ts: concatenate(ts, axis=axis), arrays(*shapes), lambda *ts: torch.cat(ts, dim=axis))
    check(lambda *ts: cat(ts, dim=axis), arrays(*shapes), lambda *ts: torch.cat(ts, dim=axis))


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_stack(axis):
    check(lambda *ts: stack(ts, axis=axis), arrays((2, 3), (2, 3), (2, 3)),
          lambda *ts: torch.stack(ts, dim=axis))


def test_concatenate_and_stack_with_constants():
    x = Tensor(np.ones((2, 2), dtype=np.float32), requires_grad=True)
    y = concatenate([x, np.zeros((1, 2))], axis=0)  # float32 and float64 arrays promote, as in torch.cat
    assert y.shape == (3, 2) and y.dtype == np.float64
    assert concatenate([x, np.zeros((1, 2), dtype=np.int64)]).dtype == np.float32  # integers do not
    z = stack([x, x * 2], axis=0)
    z.sum().backward()
    np.testing.assert_array_equal(x.grad, np.full((2, 2), 3.0))
    assert x.grad.dtype == np.float32


@pytest.mark.parametrize("shapes", [
    [(3, 4), (3, 4), (3, 4)],
    [(3, 1), (1, 4), (4,)],       # all three broadcast
    [(4,), (2, 3, 4), (3, 1)],
], ids=["same", "broadcast", "broadcast-3d"])
def test_where(shapes):
    cond_shape, a_shape, b_shape = shapes
    cond = np.random.default_rng(5).random(cond_shape) > 0.5
    check(lambda a, b: where(cond, a, b), arrays(a_shape, b_shape),
          lambda a, b: torch.where(torch.from_numpy(cond), a, b))


def test_where_with_scalars_and_tensor_conditions():
    x = Tensor(np.array([-1.0, 2.0, -3.0], dtype=np.float32), requires_grad=True)
    y = where(x > 0, x, 0.0)  # relu, written with where
    assert y.dtype == np.float32
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [0, 1, 0])
    assert where(x.data > 0, 1.0, x).data.tolist() == [-1.0, 1.0, -3.0]
    assert (x < 0).dtype == bool and not (x < 0).requires_grad
    assert (x >= 2).data.tolist() == [False, True, False] and (x <= -1).data.sum() == 2


# ---- float32 stays float32 -------------------------------------------------------------------
FLOAT32_OPS = {
    "add-scalar": lambda a: a + 1, "mul-half": lambda a: a * 0.5, "rdiv": lambda a: 1.0 / (a.abs() + 1),
    "np-float64-scalar": lambda a: a * np.float64(0.5) + np.array(2.0),
    "int-array": lambda a: a * np.arange(4), "pow": lambda a: a ** 2, "rpow": lambda a: 2.0 ** a,
    "exp-log": lambda a: (a.exp() + 1).log(), "sqrt": lambda a: (a * a + 1).sqrt(),
    "tanh-sigmoid": lambda a: a.tanh() + a.sigmoid(), "relu-abs": lambda a: a.relu() + a.abs(),
    "clip": lambda a: a.clip(-0.5, 0.5), "log1p": lambda a: a.abs().log1p(),
    "sum-mean": lambda a: a.sum(axis=0) + a.mean(axis=0), "max-min": lambda a: a.max(axis=1) + a.min(),
    "shape": lambda a: a.reshape(4, 3).T.permute(1, 0).transpose().flatten().unsqueeze(0),
    "getitem": lambda a: a[np.array([0, 0, 2])], "matmul": lambda a: a @ a.T,
    "cat-stack-where": lambda a: concatenate([a, a], 0)[:3] + stack([a, a]).sum(0).mean() + where(a > 0, a, 0.5),
    "neg-sub": lambda a: 2.0 - (-a),
}


@pytest.mark.parametrize("name", FLOAT32_OPS)
def test_float32_is_kept_through_every_op(name):
    x = Tensor(arrays((3, 4))[0].astype(np.float32), requires_grad=True)
    y = FLOAT32_OPS[name](x)
    assert y.dtype == np.float32, f"{name} gave {y.dtype}"
    y.sum().backward()
    assert x.grad.dtype == np.float32


def test_no_grad_as_a_decorator():
    @no_grad()
    def double(t):
        return t * 2
    x = Tensor(np.ones(2), requires_grad=True)
    assert not double(x).requires_grad and is_grad_enabled()


def test_repr_and_numel():
    assert "float32" in repr(Tensor(np.ones(2, dtype=np.float32)))
    assert "requires_grad=True" in repr(Tensor(np.ones(2), requires_grad=True))
    assert Tensor(np.ones((2, 3))).numel() == 6


def test_reduction_axis_errors():
    with pytest.raises(np.exceptions.AxisError):
        Tensor(np.ones((2, 3))).sum(axis=2)
