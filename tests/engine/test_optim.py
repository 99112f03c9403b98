"""scratch.engine.optim: every optimizer against torch.optim, over 100 steps in float64."""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from scratch.engine import Tensor, nn, optim  # noqa: E402

SHAPES = [(3, 4), (4,), (2, 2, 2)]
STEPS = 100
RTOL = 1e-6  # the brief's tolerance; the trajectories agree to ~1e-13 in practice


def initial_params(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) for s in SHAPES]


def gradient(theta, i, t, rng_noise):
    """The same synthetic gradient for both libraries: a function of the current
    parameters (so any disagreement feeds back) plus a fixed per-step noise."""
    target = 0.5 * (i + 1)
    return 1.5 * (theta - target) + 0.3 * np.sin(3 * theta) + rng_noise[t][i]


def noise(seed=1):
    rng = np.random.default_rng(seed)
    # loud for the first 20 steps, then quiet: the second-moment estimates then shrink,
    # which is where AMSGrad's running maximum departs from Adam
    return [[(2.0 if t < 20 else 0.5) * rng.standard_normal(s) for s in SHAPES] for t in range(STEPS)]


def has_grad(i, t):
    # The last parameter is left out of the loss every third step: no gradient, so
    # both libraries must skip it and leave its state (momentum...) untouched.
    return not (i == len(SHAPES) - 1 and t % 3 == 1)


def groups_of(params, groups):
    """``params`` as a list, or as torch-style groups given [(indices, overrides)]."""
    if groups is None:
        return params
    return [{"params": [params[i] for i in idx], **over} for idx, over in groups]


def run_ours(cls, kwargs, groups=None, steps=STEPS, start=None, opt_state=None, t0=0):
    """``steps`` steps from step ``t0`` (same noise, same missing gradients as a run
    from 0), from ``start`` (else the initial parameters), after loading ``opt_state``."""
    params = [nn.Parameter(a.copy()) for a in (initial_params() if start is None else start)]
    opt = cls(groups_of(params, groups), **kwargs)
    if opt_state is not None:
        opt.load_state_dict(opt_state)
    eps = noise()
    for t in range(t0, t0 + steps):
        opt.zero_grad()
        for i, p in enumerate(params):
            if has_grad(i, t):
                p.grad = gradient(p.data, i, t, eps)
        opt.step()
    return [p.data for p in params], opt


def run_torch(cls, kwargs, groups=None, steps=STEPS):
    params = [torch.tensor(a, requires_grad=True) for a in initial_params()]
    opt = cls(groups_of(params, groups), **kwargs)
    eps = noise()
    for t in range(steps):
        opt.zero_grad()
        for i, p in enumerate(params):
            if has_grad(i, t):
                p.grad = torch.from_numpy(gradient(p.detach().numpy(), i, t, eps))
        opt.step()
    return [p.detach().numpy() for p in params], opt


CASES = [  # (name of the class in both libraries, keyword arguments)
    ("SGD", dict(lr=0.05)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.5)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.05, weight_decay=1e-2)),
    ("SGD", dict(lr=0.05, momentum=0.8, weight_decay=0.1, nesterov=True)),
    ("Adagrad", dict()),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01)),
    ("Adagrad", dict(lr=0.1, weight_decay=0.05, initial_accumulator_value=0.1, eps=1e-6)),
    ("RMSprop", dict()),
    ("RMSprop", dict(lr=1e-3, momentum=0.9)),
    ("RMSprop", dict(lr=1e-3, centered=True)),
    ("RMSprop", dict(lr=1e-3, alpha=0.9, eps=1e-6, weight_decay=0.1, momentum=0.5, centered=True)),
    ("Adam", dict(lr=1e-2)),
    ("Adam", dict(lr=1e-2, amsgrad=True)),
    ("Adam", dict(lr=1e-2, weight_decay=0.1)),
    ("Adam", dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1, amsgrad=True)),
    ("AdamW", dict(lr=1e-2)),
    ("AdamW", dict(lr=1e-2, weight_decay=0.1, amsgrad=True)),
    ("AdamW", dict(lr=1e-2, betas=(0.5, 0.9), eps=1e-4)),
]


def case_id(case):
    name, kwargs = case
    return name + "-" + ",".join(f"{k}={v}" for k, v in kwargs.items())


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_matches_torch_over_100_steps(case):
    name, kwargs = case
    ours, _ = run_ours(getattr(optim, name), kwargs)
    theirs, _ = run_torch(getattr(torch.optim, name), kwargs)
    for i, (a, b) in enumerate(zip(ours, theirs)):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=1e-12, err_msg=f"{case_id(case)}, param {i}")
        assert not np.allclose(a, initial_params()[i])  # it did move


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"])
def test_parameter_groups_match_torch(name):
    """Per-group options (here: no decay and a smaller lr on the second group)."""
    defaults = dict(lr=0.05, weight_decay=0.1) | (dict(momentum=0.9) if name in ("SGD", "RMSprop") else {})
    groups = [([0, 2], {}), ([1], dict(lr=0.01, weight_decay=0.0))]
    ours, opt = run_ours(getattr(optim, name), defaults, groups)
    theirs, _ = run_torch(getattr(torch.optim, name), defaults, groups)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=1e-12)
    assert [g["lr"] for g in opt.param_groups] == [0.05, 0.01]
    assert opt.param_groups[1]["weight_decay"] == 0.0 and opt.param_groups[0]["weight_decay"] == 0.1


def test_changing_the_lr_between_steps_matches_torch():
    """What a scheduler does: rewrite param_groups[0]["lr"] before each step."""
    params = [nn.Parameter(a.copy()) for a in initial_params()]
    tparams = [torch.tensor(a, requires_grad=True) for a in initial_params()]
    opt, topt = optim.Adam(params, lr=1e-2), torch.optim.Adam(tparams, lr=1e-2)
    eps = noise()
    for t in range(STEPS):
        for o in (opt, topt):
            o.param_groups[0]["lr"] = 1e-2 * (1 + np.cos(np.pi * t / STEPS)) / 2
        for i, (p, q) in enumerate(zip(params, tparams)):
            p.grad = gradient(p.data, i, t, eps)
            q.grad = torch.from_numpy(gradient(q.detach().numpy(), i, t, eps))
        opt.step()
        topt.step()
    for p, q in zip(params, tparams):
        np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=RTOL, atol=1e-12)


@pytest.mark.parametrize("name", ["SGD", "Adagrad", "RMSprop", "Adam", "AdamW"])
def test_step_replaces_data_and_keeps_dtype(name):
    """p.data is a new array after a step: the old one (which a graph or the caller may
    hold) is unchanged, and float32 stays float32."""
    kwargs = dict(lr=0.1, momentum=0.9) if name in ("SGD", "RMSprop") else dict(lr=0.1)
    x = np.ones((2, 3), dtype=np.float32)
    p = nn.Parameter(x)
    opt = getattr(optim, name)([p], **kwargs)
    for _ in range(2):
        old = p.data
        p.grad = np.full((2, 3), 0.5, dtype=np.float32)
        opt.step()
        assert p.data is not old and not np.shares_memory(p.data, old)
        assert p.dtype == np.float32
    np.testing.assert_array_equal(x, 1.0)  # the caller's array was never written
    assert (p.data < 1).all()


def test_zero_grad_sets_none_and_unused_parameters_are_untouched():
    a, b = nn.Parameter(np.ones(2)), nn.Parameter(np.ones(2))
    opt = optim.Adam([a, b], lr=0.1)
    a.grad, b.grad = np.ones(2), np.ones(2)
    opt.zero_grad()
    assert a.grad is None and b.grad is None
    a.grad = np.ones(2)
    opt.step()
    np.testing.assert_array_equal(b.data, 1.0)
    assert list(opt.state) == [0]  # state is created at a parameter's first update


@pytest.mark.parametrize("case", [c for c in CASES if c[1].get("momentum") or c[0] != "SGD"], ids=case_id)
def test_state_dict_resumes_exactly(case):
    """50 steps, save, a fresh optimizer loads the state and does the other 50: the
    same parameters, bit for bit, as 100 uninterrupted steps."""
    name, kwargs = case
    cls = getattr(optim, name)
    straight, _ = run_ours(cls, kwargs)
    half, opt = run_ours(cls, kwargs, steps=STEPS // 2)
    state = opt.state_dict()
    for buffers in state["state"].values():  # plain NumPy and numbers
        for key, value in buffers.items():
            assert isinstance(value, (np.ndarray, int)), (key, type(value))
    resumed, _ = run_ours(cls, kwargs, steps=STEPS // 2, start=half, opt_state=state, t0=STEPS // 2)
    for a, b in zip(resumed, straight):
        np.testing.assert_array_equal(a, b)


def test_state_dict_is_a_copy_and_survives_json_and_npz(tmp_path):
    _, opt = run_ours(optim.Adam, dict(lr=1e-2, amsgrad=True), steps=5)
    state = opt.state_dict()
    saved = state["state"][0]["exp_avg"].copy()
    opt.params[0].grad = np.ones(SHAPES[0])
    opt.step()
    np.testing.assert_array_equal(state["state"][0]["exp_avg"], saved)  # not aliased
    # no pickle: the groups go to JSON, the buffers to an .npz
    (tmp_path / "groups.json").write_text(json.dumps(state["param_groups"]))
    arrays = {f"{i}/{k}": v for i, b in state["state"].items() for k, v in b.items()}
    np.savez(tmp_path / "state.npz", **arrays)
    with np.load(tmp_path / "state.npz", allow_pickle=False) as f:
        back = {}
        for key in f.files:
            i, k = key.split("/")
            back.setdefault(i, {})[k] = f[key]
    groups = json.loads((tmp_path / "groups.json").read_text())
    fresh = optim.Adam([nn.Parameter(np.zeros(s)) for s in SHAPES], lr=1.0)
    fresh.load_state_dict({"state": back, "param_groups": groups})
    assert fresh.param_groups[0]["lr"] == 1e-2 and fresh.param_groups[0]["amsgrad"] is True
    assert fresh.state[1]["step"] == state["state"][1]["step"]
    np.testing.assert_array_equal(fresh.state[0]["max_exp_avg_sq"], state["state"][0]["max_exp_avg_sq"])


@pytest.mark.parametrize("name, kwargs", [("Adam", dict(lr=1e-2, amsgrad=True)),
                                          ("SGD", dict(lr=0.05, momentum=0.9)),
                                          ("RMSprop", dict(lr=1e-3, momentum=0.5, centered=True)),
                                          ("Adagrad", dict(lr=0.1, lr_decay=0.01))])
def test_loads_torch_state_dict(name, kwargs):
    """torch's state dict after 50 steps, tensors turned into arrays, continues on our
    side as it does on torch's: the same layout, buffer names and meaning."""
    half, topt = run_torch(getattr(torch.optim, name), kwargs, steps=STEPS // 2)
    tstate = topt.state_dict()
    state = {"state": {i: {k: v.numpy() for k, v in b.items()} for i, b in tstate["state"].items()},
             # torch's groups also hold options we lack (maximize, foreach...), all off
             "param_groups": [{k: v for k, v in g.items() if k in ("params", "lr", *kwargs)}
                              for g in tstate["param_groups"]]}
    ours, _ = run_ours(getattr(optim, name), kwargs, steps=STEPS // 2, start=half, opt_state=state,
                       t0=STEPS // 2)
    theirs, _ = run_torch(getattr(torch.optim, name), kwargs)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=1e-12)


def test_load_state_dict_rejects_a_mismatch():
    _, opt = run_ours(optim.Adam, dict(lr=1e-2), steps=3)
    state = opt.state_dict()
    with pytest.raises(ValueError, match="parameters"):
        optim.Adam([nn.Parameter(np.zeros(s)) for s in SHAPES[:2]], lr=1e-2).load_state_dict(state)
    with pytest.raises(ValueError, match="shape"):
        optim.Adam([nn.Parameter(np.zeros(s)) for s in [(4, 3), (4,), (2, 2, 2)]], lr=1e-2).load_state_dict(state)
    with pytest.raises(ValueError, match="groups"):
        ps = [nn.Parameter(np.zeros(s)) for s in SHAPES]
        optim.Adam([{"params": ps[:1]}, {"params": ps[1:]}], lr=1e-2).load_state_dict(state)


BAD = [
    ("SGD", dict(lr=0)), ("SGD", dict(lr=-1)), ("SGD", dict(lr=0.1, momentum=1.0)),
    ("SGD", dict(lr=0.1, momentum=-0.1)), ("SGD", dict(lr=0.1, dampening=1.5)),
    ("SGD", dict(lr=0.1, weight_decay=-1e-4)), ("SGD", dict(lr=0.1, nesterov=True)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True)),
    ("Adagrad", dict(lr=-0.1)), ("Adagrad", dict(lr_decay=-1)), ("Adagrad", dict(weight_decay=-1)),
    ("Adagrad", dict(initial_accumulator_value=-1)), ("Adagrad", dict(eps=-1)),
    ("RMSprop", dict(lr=0)), ("RMSprop", dict(alpha=1.0)), ("RMSprop", dict(alpha=-0.1)),
    ("RMSprop", dict(eps=-1)), ("RMSprop", dict(momentum=1.0)), ("RMSprop", dict(weight_decay=-1)),
    ("Adam", dict(lr=0)), ("Adam", dict(betas=(1.0, 0.999))), ("Adam", dict(betas=(0.9, -0.1))),
    ("Adam", dict(betas=(0.9,))), ("Adam", dict(eps=-1)), ("Adam", dict(weight_decay=-1)),
    ("AdamW", dict(weight_decay=-0.01)), ("AdamW", dict(betas=(0.9, 1.0))),
]


@pytest.mark.parametrize("name, kwargs", BAD, ids=[f"{n}-{k}" for n, k in BAD])
def test_rejects_bad_arguments(name, kwargs):
    with pytest.raises(ValueError):
        getattr(optim, name)([nn.Parameter(np.ones(2))], **kwargs)


def test_rejects_bad_parameter_lists():
    p = nn.Parameter(np.ones(2))
    with pytest.raises(ValueError, match="empty"):
        optim.Adam([])
    with pytest.raises(ValueError, match="more than once"):
        optim.SGD([p, p], lr=0.1)
    with pytest.raises(ValueError, match="more than once"):
        optim.SGD([{"params": [p]}, {"params": [p]}], lr=0.1)
    with pytest.raises(ValueError, match="unknown"):
        optim.Adam([{"params": [p], "weight_decy": 0.1}])
    with pytest.raises(ValueError, match="lr"):  # a group's own value is checked too
        optim.Adam([{"params": [p], "lr": -1.0}])
    with pytest.raises(TypeError):
        optim.SGD(p, lr=0.1)  # a tensor, not a list of tensors
    with pytest.raises(TypeError):
        optim.SGD([np.ones(2)], lr=0.1)


def test_defaults_and_reachability():
    p = nn.Parameter(np.ones(2))
    for name in ["Adagrad", "RMSprop", "Adam", "AdamW"]:  # torch's defaults
        ours, theirs = getattr(optim, name)([p]), getattr(torch.optim, name)([torch.ones(2, requires_grad=True)])
        for key, value in ours.defaults.items():
            assert theirs.defaults[key] == value, (name, key)
    assert optim.AdamW([p]).param_groups[0]["weight_decay"] == 1e-2
    from scratch.engine.optim import lr_scheduler
    assert lr_scheduler.StepLR is optim.lr_scheduler.StepLR
    assert "Parameter Group 0" in repr(optim.SGD([p], lr=0.1))


def test_trains_with_backward():
    """End to end, with gradients from backward(): Adam fits a line."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 1))
    y = 3 * x - 1
    model = nn.Linear(1, 1)
    opt = optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.0)
    for _ in range(200):
        opt.zero_grad()
        loss = ((model(Tensor(x)) - Tensor(y)) ** 2).mean()
        loss.backward()
        opt.step()
    assert loss.item() < 1e-3
