"""Tests of scratch.attacks: the L-inf budget and the valid range hold, FGSM is the
analytic sign-gradient step on a linear model, PGD is at least as strong as FGSM,
eps = 0 changes nothing, and the attacks leave the model as they found it."""
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from scratch.attacks import AdversarialBatches, accuracy_under_attack, fgsm, input_gradient, pgd

EPS = 8 / 255


def linear_model(d=3 * 4 * 4, classes=2, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(d, classes))


def images(n=16, seed=1, lo=0.0, hi=1.0):
    g = torch.Generator().manual_seed(seed)
    return lo + (hi - lo) * torch.rand(n, 3, 4, 4, generator=g)


@pytest.fixture(scope="module")
def trained():
    """A small MLP trained to fit a nonlinear rule on random 3x4x4 'images'."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: threads only stall each other
    torch.manual_seed(0)
    x = images(512, seed=2)
    flat = x.flatten(1)
    y = ((flat[:, :24].sum(1) - flat[:, 24:].sum(1)) * (flat[:, 0] - 0.5) > 0).long()
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(),
                          nn.Linear(64, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(300):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    opt.zero_grad(set_to_none=True)
    torch.set_num_threads(threads)
    model.eval()
    return model, x[:128], y[:128]


@pytest.mark.parametrize("attack", [
    lambda m, x, y, e: fgsm(m, x, y, e),
    lambda m, x, y, e: pgd(m, x, y, e),
    lambda m, x, y, e: pgd(m, x, y, e, steps=3, step_size=e, random_start=True),
], ids=["fgsm", "pgd", "pgd-random-start"])
@pytest.mark.parametrize("eps", [EPS, 0.3])
def test_within_budget_and_valid_range(attack, eps):
    model = linear_model()
    x = images(32)
    y = torch.randint(0, 2, (32,))
    x_adv = attack(model, x, y, eps)
    assert x_adv.shape == x.shape and not x_adv.requires_grad
    assert (x_adv - x).abs().max() <= eps + 1e-6  # the L-inf ball
    assert x_adv.min() >= 0 and x_adv.max() <= 1  # a valid image


def test_fgsm_on_a_linear_model_is_the_analytic_sign_step():
    # Two classes, z = W x + b: grad_x CE = W^T (p - e_y) = p_other (w_other - w_y),
    # and p_other > 0, so the sign is sign(w_other - w_y), whatever the input.
    model = linear_model()
    w = model[1].weight.detach()                          # (2, 48)
    x = images(20, lo=0.1, hi=0.9)                        # inside: no clipping
    y = torch.arange(20) % 2
    direction = (w[1 - y] - w[y]).sign().view_as(x)       # (20, 3, 4, 4)
    expected = x + EPS * direction
    assert torch.allclose(fgsm(model, x, y, EPS), expected, atol=1e-7)


def test_fgsm_clips_to_the_valid_range():
    model = linear_model()
    x = torch.zeros(4, 3, 4, 4)                           # black images
    x[2:] = 1.0                                           # white images
    y = torch.tensor([0, 1, 0, 1])
    x_adv = fgsm(model, x, y, 0.5)
    w = model[1].weight.detach()
    direction = (w[1 - y] - w[y]).sign().view_as(x)
    assert torch.equal(x_adv, (x + 0.5 * direction).clamp(0, 1))
    assert set(x_adv.unique().tolist()) <= {0.0, 0.5, 1.0}


def test_the_linear_models_loss_rises_by_eps_times_the_l1_norm():
    # Goodfellow et al.'s argument: w.x moves by eps * |w|_1 under the sign step.
    model = linear_model()
    x, y = images(8, lo=0.1, hi=0.9), torch.zeros(8, dtype=torch.long)
    w = model[1].weight.detach()
    margin = lambda z: (z @ (w[1] - w[0]))                # logit(1) - logit(0)
    moved = margin(fgsm(model, x, y, EPS).flatten(1)) - margin(x.flatten(1))
    assert torch.allclose(moved, torch.full((8,), EPS * (w[1] - w[0]).abs().sum().item()), atol=1e-5)


def test_pgd_with_one_full_step_is_fgsm(trained):
    model, x, y = trained
    assert torch.equal(pgd(model, x, y, EPS, steps=1, step_size=EPS), fgsm(model, x, y, EPS))


def test_pgd_finds_a_higher_loss_than_fgsm(trained):
    model, x, y = trained
    eps = 0.1
    loss = lambda xa: F.cross_entropy(model(xa), y).item()
    clean, one, many = loss(x), loss(fgsm(model, x, y, eps)), loss(pgd(model, x, y, eps, steps=10))
    assert clean < one <= many
    acc = {name: accuracy_under_attack(model, x, y, a, eps=eps) for name, a in [("fgsm", fgsm), ("pgd", pgd)]}
    assert acc["pgd"] <= acc["fgsm"] < accuracy_under_attack(model, x, y)


def test_pgd_records_the_loss_at_the_start_and_after_every_step(trained):
    model, x, y = trained
    eps, steps = 0.1, 4
    losses = []
    x_adv = pgd(model, x, y, eps, steps=steps, losses=losses)
    assert len(losses) == steps + 1 and all(l.shape == (len(x),) for l in losses)
    per_example = lambda xa: F.cross_entropy(model(xa), y, reduction="none")
    two_steps = pgd(model, x, y, eps, steps=2)
    with torch.no_grad():
        assert torch.allclose(losses[0], per_example(x), atol=1e-6)  # the clean loss
        assert torch.allclose(losses[-1], per_example(x_adv), atol=1e-6)  # where it ended
        # Each entry is the loss of that step's iterate: replay the first steps.
        assert torch.allclose(losses[2], per_example(two_steps), atol=1e-6)
    means = torch.stack(losses).mean(1)
    assert means[-1] > means[0]  # the attack made progress
    assert torch.equal(x_adv, pgd(model, x, y, eps, steps=steps))  # recording changes nothing


def test_eps_zero_changes_nothing(trained):
    model, x, y = trained
    assert torch.equal(fgsm(model, x, y, 0.0), x)
    assert torch.equal(pgd(model, x, y, 0.0, random_start=True), x)
    clean = accuracy_under_attack(model, x, y)
    assert accuracy_under_attack(model, x, y, fgsm, eps=0.0) == clean
    assert accuracy_under_attack(model, x, y, pgd, eps=0.0, batch_size=7) == clean


def test_attacks_leave_the_model_alone(trained):
    model, x, y = trained
    before = [p.detach().clone() for p in model.parameters()]
    model.train()
    pgd(model, x, y, EPS)
    assert model.training
    accuracy_under_attack(model, x, y, fgsm, eps=EPS)
    assert model.training                                 # mode restored
    model.eval()
    assert all(p.grad is None for p in model.parameters())  # input gradients only
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters()))


def test_input_gradient_is_per_example(trained):
    model, x, y = trained
    losses, grad = input_gradient(model, x, y)
    _, alone = input_gradient(model, x[3:4], y[3:4])
    assert losses.shape == (len(x),) and grad.shape == x.shape
    assert torch.allclose(grad[3:4], alone, atol=1e-6)    # not divided by the batch size


def test_random_start_draws_a_uniform_point_of_the_ball():
    # steps=0 isolates the start: without random_start PGD returns x itself, with it
    # every pixel moves by U(-eps, eps) (x is inside [eps, 1 - eps]: no clipping).
    model = linear_model()
    x = images(64, lo=0.1, hi=0.9)
    y = torch.zeros(64, dtype=torch.long)
    assert torch.equal(pgd(model, x, y, EPS, steps=0), x)
    start = pgd(model, x, y, EPS, steps=0, random_start=True, generator=torch.Generator().manual_seed(5))
    u = ((start - x) / EPS).flatten()                     # should be U(-1, 1): 3072 draws
    assert (u != 0).float().mean() > 0.99, "random_start left the pixels where they were"
    assert u.abs().max() <= 1 + 1e-5                      # inside the ball
    assert u.min() < -0.95 and u.max() > 0.95             # and it fills the ball ...
    assert abs(u.mean().item()) < 0.05 and abs(u.std().item() - 3 ** -0.5) < 0.03  # ... uniformly


def test_random_start_is_repeatable_with_a_generator(trained):
    model, x, y = trained
    draw = lambda seed: pgd(model, x, y, EPS, steps=1, random_start=True,
                            generator=torch.Generator().manual_seed(seed))
    a, b, other = draw(5), draw(5), draw(6)
    assert torch.equal(a, b)
    assert not torch.equal(a, other)                      # the generator is used
    plain = pgd(model, x, y, EPS, steps=1)                # the same step from x itself
    assert not torch.equal(a, plain) and (a - x).abs().max() <= EPS + 1e-6


def test_adversarial_batches_attack_a_fraction_and_keep_the_labels(trained):
    model, x, y = trained
    transform = AdversarialBatches(model, EPS, fraction=0.5)
    xa, ya = transform(x, y)
    half = len(x) // 2
    assert torch.equal(ya, y) and torch.equal(xa[half:], x[half:])
    assert (xa[:half] - x[:half]).abs().max() <= EPS + 1e-6 and 0 <= xa.min() and xa.max() <= 1
    assert not torch.equal(xa[:half], x[:half])
