"""Recipe helpers: decay only on weights, Nesterov SGD, schedules, smoothed loss."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from scratch.recipes import cross_entropy, one_cycle, param_groups, sgd, step_lr


def net():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))


def test_weight_decay_only_on_weights():
    model = net()
    decay, no_decay = param_groups(model, 5e-4)
    assert decay["weight_decay"] == 5e-4 and no_decay["weight_decay"] == 0
    assert {id(p) for p in decay["params"]} == {id(model[0].weight), id(model[3].weight)}
    assert len(no_decay["params"]) == 4  # conv bias, BN scale and shift, linear bias
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_sgd_does_not_shrink_biases_with_zero_gradient():
    model = net()
    opt = sgd(model, lr=0.1, weight_decay=0.5)
    assert opt.defaults["nesterov"] and opt.defaults["momentum"] == 0.9
    before = [p.detach().clone() for p in model.parameters()]
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    for (name, p), b in zip(model.named_parameters(), before):
        if p.ndim > 1:
            # decayed: d = wd * p, Nesterov's first step uses d + momentum * d
            assert torch.allclose(p, b * (1 - 0.1 * 0.5 * 1.9))
        else:
            assert torch.equal(p, b)  # untouched


def test_one_cycle_rises_to_max_then_anneals():
    opt = torch.optim.SGD(net().parameters(), lr=1.0)
    sched = one_cycle(opt, max_lr=0.4, total_steps=100, pct_start=0.25)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.4 / 25)
    assert max(lrs) == pytest.approx(0.4, rel=1e-3) and lrs.index(max(lrs)) in (24, 25)
    assert lrs[-1] < 1e-3


def test_step_lr_divides_at_milestones():
    opt = torch.optim.SGD(net().parameters(), lr=1.0)
    sched = step_lr(opt, [2, 4])
    lrs = []
    for _ in range(6):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])


def test_label_smoothing_matches_the_smoothed_target_formula():
    torch.manual_seed(0)
    logits, y = torch.randn(5, 4), torch.tensor([0, 1, 2, 3, 0])
    s = 0.1
    target = F.one_hot(y, 4) * (1 - s) + s / 4
    expected = -(target * logits.log_softmax(1)).sum(1).mean()
    assert cross_entropy(s)(logits, y).item() == pytest.approx(expected.item(), rel=1e-6)
    assert cross_entropy()(logits, target).item() == pytest.approx(expected.item(), rel=1e-6)  # soft targets
    assert cross_entropy(0.0)(logits, y).item() == pytest.approx(F.cross_entropy(logits, y).item())
    with pytest.raises(ValueError):
        cross_entropy(1.0)
    assert math.isfinite(cross_entropy(0.2)(logits * 100, y).item())


@pytest.mark.parametrize("steps", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("pct", [0.1, 0.25, 0.5, 0.9])
def test_one_cycle_survives_very_short_runs(steps, pct):
    opt = torch.optim.SGD(net().parameters(), lr=1.0)
    sched = one_cycle(opt, max_lr=0.1, total_steps=steps, pct_start=pct)
    for _ in range(steps):
        opt.step()
        sched.step()
    assert 0 < opt.param_groups[0]["lr"] <= 0.1
