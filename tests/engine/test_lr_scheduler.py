"""scratch.engine.optim.lr_scheduler: every schedule against torch.optim.lr_scheduler."""
import math
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from scratch.engine import nn, optim  # noqa: E402
from scratch.engine.optim import lr_scheduler  # noqa: E402

STEPS = 150
LRS = (0.1, 0.03)  # two parameter groups, to check each gets its own schedule


def our_optimizer(lrs=LRS):
    return optim.SGD([{"params": [nn.Parameter(np.zeros(1))], "lr": lr} for lr in lrs], lr=lrs[0], momentum=0.9)


def torch_optimizer(lrs=LRS):
    return torch.optim.SGD([{"params": [torch.zeros(1, requires_grad=True)], "lr": lr} for lr in lrs],
                           lr=lrs[0], momentum=0.9)


def lr_sequence(opt, sched, steps=STEPS):
    """The lr of each group at epochs 0..steps-1, read from the optimizer and checked
    against get_last_lr()."""
    out = []
    for _ in range(steps):
        lrs = [g["lr"] for g in opt.param_groups]
        assert list(sched.get_last_lr()) == lrs
        out.append(lrs)
        opt.step()  # torch wants optimizer.step() before scheduler.step()
        sched.step()
    return np.array(out, dtype=float)  # (steps, groups)


def our_and_torch(make, steps=STEPS):
    """``make(module, optimizer)`` builds the same scheduler with either library."""
    opt, topt = our_optimizer(), torch_optimizer()
    ours = lr_sequence(opt, make(lr_scheduler, opt), steps)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's reminders about call order
        theirs = lr_sequence(topt, make(torch.optim.lr_scheduler, topt), steps)
    return ours, theirs


CASES = {
    "StepLR": lambda m, o: m.StepLR(o, step_size=7, gamma=0.5),
    "StepLR-default-gamma": lambda m, o: m.StepLR(o, 30),
    "CosineAnnealingLR": lambda m, o: m.CosineAnnealingLR(o, T_max=STEPS),
    # past T_max the cosine goes back up: torch's recursion has a special case there
    "CosineAnnealingLR-past-T_max": lambda m, o: m.CosineAnnealingLR(o, T_max=40, eta_min=1e-3),
    "CosineAnnealingLR-through-0": lambda m, o: m.CosineAnnealingLR(o, T_max=25),
    "WarmRestarts": lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=10),
    "WarmRestarts-T_mult": lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=5, T_mult=2, eta_min=1e-3),
    "WarmRestarts-T_mult3": lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=3),
    "CyclicLR-triangular": lambda m, o: m.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=10,
                                                   **_no_momentum(m)),
    "CyclicLR-triangular2": lambda m, o: m.CyclicLR(o, base_lr=[0.01, 0.001], max_lr=[0.1, 0.05], step_size_up=7,
                                                    step_size_down=13, mode="triangular2",
                                                    **_no_momentum(m)),
    "CyclicLR-exp_range": lambda m, o: m.CyclicLR(o, base_lr=0.001, max_lr=0.1, step_size_up=15, mode="exp_range",
                                                  gamma=0.99, **_no_momentum(m)),
    "OneCycleLR": lambda m, o: m.OneCycleLR(o, max_lr=0.1, total_steps=STEPS, **_no_momentum(m)),
    "OneCycleLR-linear": lambda m, o: m.OneCycleLR(o, max_lr=[0.1, 0.2], total_steps=STEPS, pct_start=0.25,
                                                   anneal_strategy="linear", div_factor=10.0,
                                                   final_div_factor=100.0, **_no_momentum(m)),
    "OneCycleLR-three_phase": lambda m, o: m.OneCycleLR(o, max_lr=0.1, total_steps=STEPS, three_phase=True,
                                                        **_no_momentum(m)),
    "LinearLR-warmup": lambda m, o: m.LinearLR(o, start_factor=0.1, total_iters=10),
    "LinearLR-decay": lambda m, o: m.LinearLR(o, start_factor=1.0, end_factor=0.05, total_iters=120),
    "LinearLR-defaults": lambda m, o: m.LinearLR(o),
    "LambdaLR": lambda m, o: m.LambdaLR(o, lambda e: 0.97 ** e),
    "LambdaLR-per-group": lambda m, o: m.LambdaLR(o, [lambda e: 1 / (1 + e), lambda e: math.sqrt(e + 1)]),
    "SequentialLR-warmup-cosine": lambda m, o: m.SequentialLR(
        o, [m.LinearLR(o, start_factor=0.01, total_iters=10), m.CosineAnnealingLR(o, T_max=STEPS - 10)],
        milestones=[10]),
    "SequentialLR-three": lambda m, o: m.SequentialLR(
        o, [m.LinearLR(o, start_factor=0.2, total_iters=5), m.StepLR(o, step_size=10, gamma=0.7),
            m.CosineAnnealingWarmRestarts(o, T_0=20, T_mult=2)], milestones=[5, 40]),
    "SequentialLR-lambda-linear": lambda m, o: m.SequentialLR(
        o, [m.LambdaLR(o, lambda e: 0.9 ** e), m.LinearLR(o, start_factor=0.5, end_factor=0.1, total_iters=50)],
        milestones=[30]),
}


def _no_momentum(module):
    """torch cycles the momentum by default; ours never does: compare with it off."""
    return {} if module is lr_scheduler else {"cycle_momentum": False}


@pytest.mark.parametrize("name", CASES)
def test_matches_torch(name):
    ours, theirs = our_and_torch(CASES[name])
    assert ours.shape == (STEPS, len(LRS))
    # torch's chained ratios drift from the closed form by rounding only (< 1e-13)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=0)
    assert len(np.unique(ours[:, 0])) > 2  # the schedule does change the lr


def test_the_lr_reaches_the_optimizer():
    """The optimizer's step uses the scheduled lr: SGD with a StepLR moves exactly
    lr * grad each step."""
    p = nn.Parameter(np.zeros(1))
    opt = optim.SGD([p], lr=1.0)
    sched = lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    for _ in range(6):
        p.grad = np.ones(1)
        opt.step()
        sched.step()
    np.testing.assert_allclose(p.data, -(1 + 1 + 0.5 + 0.5 + 0.25 + 0.25))


def test_adam_with_one_cycle_matches_torch():
    """End to end: Adam driven by OneCycleLR, against torch's (momentum not cycled)."""
    rng = np.random.default_rng(0)
    start, grads = rng.standard_normal(5), rng.standard_normal((100, 5))
    p, q = nn.Parameter(start.copy()), torch.tensor(start, requires_grad=True)
    opt, topt = optim.Adam([p]), torch.optim.Adam([q])
    sched = lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=100)
    tsched = torch.optim.lr_scheduler.OneCycleLR(topt, max_lr=0.05, total_steps=100, cycle_momentum=False)
    for g in grads:
        p.grad, q.grad = g + p.data, torch.from_numpy(g) + q.detach()
        opt.step()
        topt.step()
        sched.step()
        tsched.step()
    np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-6)


def test_warmup_then_cosine_values():
    """The closed forms, spelled out: the formula of the docstrings."""
    opt = our_optimizer(lrs=(1.0,))
    sched = lr_scheduler.SequentialLR(opt, [lr_scheduler.LinearLR(opt, 0.1, total_iters=4),
                                            lr_scheduler.CosineAnnealingLR(opt, T_max=10)], milestones=[4])
    got = lr_sequence(opt, sched, 15)[:, 0]
    warm = [0.1 + 0.9 * t / 4 for t in range(4)]
    cos = [(1 + math.cos(math.pi * t / 10)) / 2 for t in range(11)]
    np.testing.assert_allclose(got, warm + cos, rtol=1e-12, atol=1e-15)


def test_cyclic_and_one_cycle_override_the_optimizer_lr():
    opt = our_optimizer()
    lr_scheduler.CyclicLR(opt, base_lr=0.002, max_lr=0.01, step_size_up=4)
    assert [g["lr"] for g in opt.param_groups] == [0.002, 0.002]
    opt = our_optimizer()
    lr_scheduler.OneCycleLR(opt, max_lr=0.5, total_steps=10, div_factor=5.0)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.1, 0.1])


def test_one_cycle_rejects_steps_past_the_end():
    opt = our_optimizer()
    sched = lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=10)
    for _ in range(10):  # torch allows epoch == total_steps, then raises
        sched.step()
    with pytest.raises(ValueError, match="total_steps"):
        sched.step()


def test_state_dict_resumes_the_schedule():
    opt = our_optimizer()
    warm = lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=5)
    sched = lr_scheduler.SequentialLR(opt, [warm, lr_scheduler.CosineAnnealingLR(opt, T_max=50)], [5])
    for _ in range(20):
        sched.step()
    saved, opt_saved = sched.state_dict(), opt.state_dict()
    expected = lr_sequence(opt, sched, 10)
    opt2 = our_optimizer(lrs=(9.0, 9.0))
    sched2 = lr_scheduler.SequentialLR(opt2, [lr_scheduler.LinearLR(opt2, start_factor=0.1, total_iters=5),
                                              lr_scheduler.CosineAnnealingLR(opt2, T_max=50)], [5])
    opt2.load_state_dict(opt_saved)
    sched2.load_state_dict(saved)
    np.testing.assert_allclose(lr_sequence(opt2, sched2, 10), expected, rtol=1e-15)
    assert "optimizer" not in saved and "lr_lambdas" not in lr_scheduler.LambdaLR(opt2, lambda e: 1.0).state_dict()


BAD = {
    "StepLR-step_size": lambda o: lr_scheduler.StepLR(o, step_size=0),
    "StepLR-float-step": lambda o: lr_scheduler.StepLR(o, step_size=2.5),
    "StepLR-gamma": lambda o: lr_scheduler.StepLR(o, step_size=3, gamma=0.0),
    "Cosine-T_max": lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=0),
    "Cosine-eta_min": lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=10, eta_min=-1e-3),
    "WarmRestarts-T_0": lambda o: lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=0),
    "WarmRestarts-T_mult": lambda o: lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=5, T_mult=0),
    "WarmRestarts-float-T_mult": lambda o: lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=5, T_mult=1.5),
    "Cyclic-mode": lambda o: lr_scheduler.CyclicLR(o, 0.01, 0.1, mode="sawtooth"),
    "Cyclic-step": lambda o: lr_scheduler.CyclicLR(o, 0.01, 0.1, step_size_up=0),
    "Cyclic-step-down": lambda o: lr_scheduler.CyclicLR(o, 0.01, 0.1, step_size_down=-2),
    "Cyclic-negative-lr": lambda o: lr_scheduler.CyclicLR(o, -0.01, 0.1),
    "Cyclic-list-length": lambda o: lr_scheduler.CyclicLR(o, [0.01], 0.1),
    "Cyclic-gamma": lambda o: lr_scheduler.CyclicLR(o, 0.01, 0.1, mode="exp_range", gamma=0.0),
    "OneCycle-total": lambda o: lr_scheduler.OneCycleLR(o, 0.1, total_steps=0),
    "OneCycle-pct": lambda o: lr_scheduler.OneCycleLR(o, 0.1, total_steps=100, pct_start=1.5),
    "OneCycle-anneal": lambda o: lr_scheduler.OneCycleLR(o, 0.1, total_steps=100, anneal_strategy="exp"),
    "OneCycle-div": lambda o: lr_scheduler.OneCycleLR(o, 0.1, total_steps=100, div_factor=0.0),
    "OneCycle-max_lr": lambda o: lr_scheduler.OneCycleLR(o, 0.0, total_steps=100),
    "Linear-start": lambda o: lr_scheduler.LinearLR(o, start_factor=0.0),
    "Linear-end": lambda o: lr_scheduler.LinearLR(o, start_factor=0.5, end_factor=1.5),
    "Linear-iters": lambda o: lr_scheduler.LinearLR(o, start_factor=0.5, total_iters=0),
    "Lambda-count": lambda o: lr_scheduler.LambdaLR(o, [lambda e: 1.0]),
    "Sequential-milestones-count": lambda o: lr_scheduler.SequentialLR(
        o, [lr_scheduler.StepLR(o, 5), lr_scheduler.StepLR(o, 5)], milestones=[]),
    "Sequential-milestones-order": lambda o: lr_scheduler.SequentialLR(
        o, [lr_scheduler.StepLR(o, 5)] * 3, milestones=[10, 5]),
    "Sequential-empty": lambda o: lr_scheduler.SequentialLR(o, [], milestones=[]),
    "Sequential-other-optimizer": lambda o: lr_scheduler.SequentialLR(
        o, [lr_scheduler.StepLR(o, 5), lr_scheduler.StepLR(our_optimizer(), 5)], milestones=[3]),
}


@pytest.mark.parametrize("name", BAD)
def test_rejects_bad_arguments(name):
    with pytest.raises(ValueError):
        BAD[name](our_optimizer())


def test_rejects_what_is_not_an_optimizer():
    with pytest.raises(TypeError):
        lr_scheduler.StepLR(torch_optimizer(), step_size=3)
    with pytest.raises(TypeError):
        lr_scheduler.LambdaLR(our_optimizer(), 0.5)
