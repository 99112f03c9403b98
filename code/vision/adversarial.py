# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     default_lexer: ipython3
#     notebook_metadata_filter: kernelspec,jupytext,-all
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# (adversarial)=
# # Adversarial examples
#
# In 2013 {cite:t}`szegedy2014intriguing` found that neural networks that
# classified images well, from MNIST digits to ImageNet photographs, could be
# made to misclassify almost any image by adding a change too small for a person
# to see. Such *adversarial examples* are not rare accidents: they can be computed
# with one gradient, they exist for every network trained in the usual way, and
# many of them fool other networks too. In this chapter we compute them for the
# residual network of {doc}`resnet`, look at the input gradients they are made
# from, measure how accuracy falls as the allowed change grows, and fine-tune the
# network on adversarial examples to see what robustness costs.

# %%
import time

T0 = time.perf_counter()  # the whole chapter is timed, plots included

import copy
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

import scratch
from scratch import data, plots, recipes, utils, vis
from scratch.attacks import (
    AdversarialBatches,
    accuracy_under_attack,
    fgsm,
    input_gradient,
    pgd,
)
from scratch.augment import Augment
from scratch.config import ConfigError, describe, non_negative, positive
from scratch.models.inspection import count_parameters
from scratch.models.spec import load_model
from scratch.results import results_table
from scratch.train import AUTOCAST, TrainConfig, fit, predict
from scratch.utils import pick_device

# %% [markdown]
# Everything in the chapter is driven by one config (explained in the
# Experiment section). It is read first, so that a mistyped option stops the
# script before any work is done:


# %% tags=["hide-input"]
@dataclass
class AdversarialConfig(TrainConfig):
    """Attacks on the ResNet chapter's network and adversarial fine-tuning. The
    defaults are the `full` profile (on a GPU)."""

    NAME = "adversarial"  # outputs go to out_dir/adversarial

    test_size: int = field(
        default=10_000,
        metadata=positive(
            "CIFAR-10 test images attacked (a fixed, class-stratified subset); "
            "PGD costs one forward and backward pass per step and image"
        ),
    )
    eps: float = field(
        default=8.0,
        metadata=positive(
            "the attack budget in grey levels out of 255 (L-inf): 8/255 is the "
            "standard budget for CIFAR-10"
        ),
    )
    eps_curve: tuple[float, ...] = field(
        default=(0, 1, 2, 3, 4, 6, 8, 10, 12, 16),
        metadata=non_negative(
            "budgets (grey levels) of the accuracy-versus-eps curves; must "
            "contain eps, whose numbers are the chapter's headline"
        ),
    )
    pgd_steps: int = field(
        default=7,
        metadata=positive(
            "PGD iterations: PGD-7, the attack Madry et al. trained against"
        ),
    )
    step_fraction: float = field(
        default=0.2,
        metadata=positive(
            "PGD step size as a fraction of eps: eps/5 can cross the whole ball "
            "in 5 steps and has 2 left to refine"
        ),
    )
    random_start: bool = field(
        default=False,
        metadata=describe(
            "start PGD at a random point of the ball (Madry et al.); off: the "
            "iterative FGSM of Kurakin et al., deterministic"
        ),
    )
    shown: int = field(
        default=6,
        metadata=positive(
            "images per row in the saliency and adversarial-example figures"
        ),
    )
    adv_train_size: int = field(
        default=50_000,
        metadata=positive("training images for the adversarial fine-tuning"),
    )
    adv_steps: int = field(
        default=1,
        metadata=positive(
            "attack steps per training batch: 1 = FGSM with a random start "
            "(Wong et al.), 2 = PGD-2; each costs a forward and backward pass"
        ),
    )
    epochs: int = field(
        default=10,
        metadata=positive(
            "epochs of adversarial fine-tuning (Wong et al. trained from scratch in 15)"
        ),
    )
    batch_size: int = field(
        default=128, metadata=positive("images per SGD step of the fine-tuning")
    )
    lr: float = field(
        default=0.05,
        metadata=positive(
            "peak of the fine-tuning's one-cycle schedule: lower than training "
            "from scratch, the network already knows the classes"
        ),
    )
    weight_decay: float = field(
        default=5e-4,
        metadata=non_negative("L2 penalty on the weights, as in the ResNet chapter"),
    )
    channels_last: bool = field(
        default=False,
        metadata=describe(
            "NHWC memory layout: about 2x faster convolutions with bf16 on recent CPUs"
        ),
    )
    resnet_dir: str = field(
        default="",
        metadata=describe(
            "where to find the ResNet chapter's network (resnet/model.pt of a run "
            "of "
            "the same profile) and to train it if it is missing: '' = out_dir, "
            "shared with the ResNet chapter; 'temp' = a throwaway folder"
        ),
    )

    PROFILES = {
        "tiny": dict(
            test_size=100,
            eps_curve=(0, 4, 8),
            shown=4,  # tests
            adv_train_size=256,
            epochs=1,
            batch_size=32,
            precision="auto",
            channels_last=True,
            threads=1,
            resnet_dir="temp",
        ),
        "small": dict(
            test_size=1_000,
            eps_curve=(0, 1, 2, 4, 8, 16),
            adv_train_size=10_000,
            epochs=1,  # book build, CPU
            precision="auto",
            channels_last=True,
            threads=2,
        ),
        "full": dict(precision="auto"),  # GPU
    }

    def validate(self):
        if self.eps not in self.eps_curve:
            raise ConfigError(
                f"eps={self.eps} must be one of eps_curve={self.eps_curve}"
            )
        if max(self.eps_curve) > 255:
            raise ConfigError(
                f"eps_curve={self.eps_curve}: budgets are grey levels, at most 255"
            )
        if self.shown > self.test_size:
            raise ConfigError(
                f"shown={self.shown} must not exceed test_size={self.test_size}"
            )


cfg = AdversarialConfig.from_cli()
utils.seed_everything(cfg.seed)
device = pick_device(cfg.device)
EPS = cfg.eps / 255  # the budget in the [0, 1] units of the images


# %% [markdown]
# ## Motivation
#
# Every network of this part was judged by one number: its accuracy on test
# images it had not seen. {doc}`resnet` trained residual networks to high
# accuracy on CIFAR-10, {doc}`unet` segmented pets pixel by pixel. A test set
# measures the *average* behaviour on *natural* images: photographs drawn from
# the same distribution as the training set. It says nothing about the worst
# case: how small a change to an image suffices to change the network's answer?
#
# For a person the answer is "large": nobody calls a ship a frog because a few
# pixel values moved by 3% of their range. For a network trained in the usual
# way the answer turns out to be "almost nothing". That matters wherever inputs
# may be chosen by an adversary (spam and malware filters, content moderation,
# a sticker on a traffic sign), and it says something uncomfortable about what
# the network has learned: high test accuracy does not mean that it sees
# images the way we do.
#
# We attack the network trained in {doc}`resnet`, called *the ResNet-chapter
# network* from here on. That chapter saves it to
# `resnet/model.pt` in the runs folder; if no run of the same profile is there,
# the function below trains it first by running the ResNet chapter's script.
# The network takes images with pixel values in [0, 1] and standardises them
# itself, so the attacks below work directly on valid images.


# %%
def resnet_chapter_network(cfg):
    """The ResNet of the ResNet chapter, trained with the same profile:
    loaded from its run folder, or trained there first when it is missing."""
    if cfg.resnet_dir == "temp":  # a throwaway run (the tests): no files left
        with tempfile.TemporaryDirectory() as tmp:
            return _load_or_train(cfg, Path(tmp))
    return _load_or_train(cfg, Path(cfg.resnet_dir or cfg.out_dir))


def _load_or_train(cfg, out_dir):
    folder = out_dir / "resnet"
    path, record = folder / "model.pt", folder / "metrics.json"
    profile = json.loads(record.read_text()).get("profile") if record.exists() else None
    seconds = 0.0
    # A model.pt of an older version of the book holds no spec: train anew.
    with_spec = path.exists() and "spec" in torch.load(
        path, weights_only=True, mmap=True
    )
    if not with_spec or profile != cfg.profile:
        script = Path(scratch.__file__).resolve().parents[1] / "vision" / "resnet.py"
        command = [
            sys.executable,
            str(script),
            f"--profile={cfg.profile}",
            "--degradation.run=false",
            "--resume=false",
            f"--out_dir={out_dir}",
        ]
        found = (
            "nothing"
            if not path.exists()
            else "a network saved without its spec"
            if not with_spec
            else f"a network of profile {profile!r}"
        )
        print(
            f"{folder} holds {found}; training the ResNet-chapter network "
            f"(profile {cfg.profile!r}) with\n  {' '.join(command)}",
            flush=True,
        )
        start = time.perf_counter()
        env = dict(os.environ)
        env.pop("SCRATCH_BUILD", None)  # a script run: figures go to files
        try:
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)
        except subprocess.CalledProcessError as err:
            raise RuntimeError(
                f"training the ResNet-chapter network failed (exit code "
                f"{err.returncode}); run the command above to see why"
            ) from None
        seconds = time.perf_counter() - start
        print(f"trained in {seconds:.0f} s")
    model, spec = load_model(path)  # eval mode, on the CPU
    return model, spec, seconds


model, resnet_spec, resnet_seconds = resnet_chapter_network(cfg)
model.to(device)
if cfg.channels_last:
    model.to(memory_format=torch.channels_last)
print("ResNet-chapter network:", resnet_spec)
print(
    f"parameters: {count_parameters(model):,}; first layer: "
    f"{type(model.normalize).__name__} (the model takes images in [0, 1])"
)

# %% [markdown]
# The attacks use a fixed, class-stratified subset of the CIFAR-10 test set,
# as tensors of pixel values in [0, 1]:

# %%
test_images, test_labels = data.subsample(
    *data.cifar10("test"), cfg.test_size, seed=cfg.seed
)
x_test = torch.from_numpy(test_images).float() / 255  # (N, 3, 32, 32)
y_test = torch.from_numpy(test_labels)  # (N,)
classes = data.cifar10_classes()
probs = predict(model, x_test).softmax(dim=1)  # (N, 10)
pred = probs.argmax(dim=1)
clean_acc = (pred == y_test).double().mean().item()
print(
    f"{len(x_test):,} test images; clean accuracy of the ResNet-chapter "
    f"network: {clean_acc:.1%}"
)

# %% [markdown]
# ## Theory
#
# ### The threat model
#
# An attack gets a correctly classified image $x$ with label $y$ and looks for
# an image $x'$ that the network $f$ misclassifies, among the images that
# differ from $x$ by at most $\epsilon$ in every pixel and are still valid
# images:
#
# $$
# x' \in S(x) = \{\, x' : \|x' - x\|_\infty \le \epsilon,\;
#   0 \le x' \le 1 \,\}, \qquad f(x') \ne y .
# $$ (adv-ball)
#
# The $L_\infty$ norm, the largest change of any one pixel, is the usual
# stand-in for "imperceptible": with $\epsilon = 8/255$ no channel of any
# pixel moves by more than 8 of its 256 levels. (Other norms are used too:
# $L_2$ for small changes spread over the image, $L_0$ for a few pixels
# changed a lot.) We assume the worst case for the defender, a *white-box*
# attacker who knows the network and its weights and can compute gradients.
#
# ### Input gradients and saliency
#
# Training computes the gradient of the loss with respect to the weights.
# The same backward pass gives the gradient with respect to the *input*,
# $\nabla_x \mathcal{L}(f(x), y)$: for every pixel and channel, how fast the
# loss changes when that value changes. {cite:t}`simonyan2014deep` used the
# gradient of a class score $s_k$ as a *saliency map*, the pixels the score is
# most sensitive to:
#
# $$
# M_{ij} = \max_{c} \left| \frac{\partial s_k(x)}{\partial x_{c,i,j}} \right| .
# $$ (adv-saliency)
#
# It is a local, first-order explanation: it says which pixels would change
# the score most *if nudged*, not which pixels the network "looked at". An
# attacker reads the same gradient the other way round: nudge every pixel in
# the direction that raises the loss.
#
# ### The linear explanation
#
# Why should a tiny nudge be enough? {cite:t}`goodfellow2015explaining`
# argued that the cause is not some exotic nonlinearity but the opposite:
# networks behave too *linearly* in their inputs. Take one linear unit with
# weights $w$ and change its input by $\eta$:
#
# $$
# w^\top (x + \eta) = w^\top x + w^\top \eta, \qquad
# \max_{\|\eta\|_\infty \le \epsilon} w^\top \eta = \epsilon \|w\|_1,
# \quad \text{reached at } \eta = \epsilon\, \mathrm{sign}(w) .
# $$ (adv-linear)
#
# If the $n$ weights have an average magnitude $m$, the activation moves by
# $\epsilon m n$: the change grows with the *dimension* while no single input
# moves by more than $\epsilon$. A CIFAR-10 image has $n = 3 \cdot 32 \cdot 32 = 3072$
# values; with $\epsilon = 8/255$ the worst-case change is $96\,m$, as if one
# pixel had moved by 96 times its whole range. Many small changes, each aligned
# with its weight, add up. A *random* perturbation of the same size does not
# add up: with independent random signs, $w^\top \eta$ has mean 0 and standard
# deviation
#
# $$
# \epsilon \|w\|_2 \approx \epsilon\, m \sqrt{n},
# $$ (adv-random)
#
# $\sqrt{3072} \approx 55$ times smaller than $\epsilon \|w\|_1 = \epsilon m n$
# when the weights have similar magnitudes. This is why a network can be
# accurate on noisy images and still fall to adversarial ones: the direction
# matters, not the size. ReLU networks are piecewise linear, and they are
# trained to be nearly linear where the data are (that is what makes them
# easy to optimise), so the argument carries over to them.
#
# ### The fast gradient sign method
#
# Replace the loss by its first-order Taylor expansion around $x$,
#
# $$
# \mathcal{L}(f(x + \eta), y) \approx \mathcal{L}(f(x), y) + \eta^\top g,
# \qquad g = \nabla_x \mathcal{L}(f(x), y),
# $$ (adv-taylor)
#
# and maximise it over the $L_\infty$ ball: by {eq}`adv-linear` with $w = g$
# the best $\eta$ is $\epsilon\,\mathrm{sign}(g)$, which raises the linearised
# loss by $\epsilon \|g\|_1$ ($\|\cdot\|_1$ is the *dual norm* of
# $\|\cdot\|_\infty$). Clipping the result to valid pixel values gives the
# fast gradient sign method (FGSM) of {cite:t}`goodfellow2015explaining`:
#
# $$
# x' = \mathrm{clip}_{[0,1]}\!\left(x + \epsilon\, \mathrm{sign}\big(\nabla_x \mathcal{L}(f(x), y)\big)\right).
# $$ (adv-fgsm)
#
# One forward and one backward pass per image: as cheap as a training step.
# If the network were linear, FGSM would be the optimal attack. It is not
# linear, so FGSM is a lower bound on what an attacker can do.
#
# ### Projected gradient descent
#
# The exact attack solves $\max_{x' \in S(x)} \mathcal{L}(f(x'), y)$, a
# constrained optimisation problem. {cite:t}`kurakin2017adversarial` repeated
# FGSM with a small step $\alpha$ and clipped to the ball after each step
# (the *basic iterative method*, or iterative FGSM); {cite:t}`madry2018towards`
# recognised it as projected gradient ascent in the $L_\infty$ geometry,
# added a random start and called it PGD:
#
# $$
# x^{(0)} = x \;\;\text{or}\;\; x + U(-\epsilon, \epsilon)^n, \qquad
# x^{(t+1)} = \Pi_{S(x)}\!\left(x^{(t)} + \alpha\, \mathrm{sign}\big(\nabla_x \mathcal{L}(f(x^{(t)}), y)\big)\right).
# $$ (adv-pgd)
#
# $S(x)$ is a box, the intersection of the $\epsilon$-box around $x$ and the
# $[0, 1]$ box of valid images, so the projection $\Pi_{S(x)}$ (the nearest
# point of $S(x)$) is a clamp of each value on its own:
#
# $$
# \Pi_{S(x)}(z)_i = \min\!\big(\min(1, x_i + \epsilon),\; \max(0,\, x_i - \epsilon,\, z_i)\big).
# $$ (adv-project)
#
# We take $\alpha = \epsilon/5$ and 7 steps (PGD-7): after five steps a value
# can have crossed from one side of the ball to the other, and two steps are
# left to refine. PGD with one step of size $\epsilon$ and no random start is
# FGSM. Madry et al. argued that PGD is, in practice, the strongest attack that
# uses only gradients (a "universal first-order adversary"): many random
# restarts of PGD end at loss values that are very close to each other.
#
# ### Adversarial training
#
# If the network's weakness is the worst case in the ball, train for the
# worst case. {cite:t}`madry2018towards` wrote robust training as a saddle
# point problem,
#
# $$
# \min_\theta\; \mathbb{E}_{(x, y)} \Big[ \max_{x' \in S(x)} \mathcal{L}(f_\theta(x'), y) \Big],
# $$ (adv-minmax)
#
# an inner attack and an outer training step. By Danskin's theorem the
# gradient of the inner maximum with respect to $\theta$ is the gradient of
# the loss at the maximiser: train on the adversarial examples of the current
# network. With PGD-7 inside, every training step costs 8 forward and backward
# passes instead of one. {cite:t}`wong2020fast` showed that a single FGSM step
# from a *random* starting point of the ball, of size $1.25\,\epsilon$ and
# projected back, works about as well as PGD for training, at 2 passes per
# step ("fast is better than free"). The details matter: without the random
# start, or with too large a step, FGSM training can suddenly lose all
# robustness against PGD within an epoch while it keeps resisting FGSM
# (*catastrophic overfitting*); Wong et al. avoid it with the random start,
# the step of $1.25\,\epsilon$ and short training runs. {cite:t}`goodfellow2015explaining` had trained on FGSM examples
# already; what changed is the attack inside the loop.
#
# Robustness has a price. Robust networks are less accurate on clean images,
# and {cite:t}`tsipras2019robustness` argue that this is not a failure of
# training but a real trade-off: a network that may not rely on features a
# tiny change can flip has fewer features to use. In exchange, their input
# gradients look much more like the objects in the images.
#
# ## Implementation
#
# The attacks live in `scratch.attacks`. The gradient with respect to the
# input, per example (the losses are summed, not averaged, so each image gets
# its own gradient, and only the input is differentiated, so the weights'
# `.grad` stay untouched):
#
# ```{literalinclude} ../../code/scratch/attacks.py
# :pyobject: input_gradient
# ```
#
# FGSM {eq}`adv-fgsm`, the projection {eq}`adv-project` and PGD {eq}`adv-pgd`:
#
# ```{literalinclude} ../../code/scratch/attacks.py
# :pyobject: fgsm
# ```
#
# ```{literalinclude} ../../code/scratch/attacks.py
# :pyobject: _project
# ```
#
# ```{literalinclude} ../../code/scratch/attacks.py
# :pyobject: pgd
# ```
#
# Accuracy under an attack crafts the adversarial batch (optionally under
# bfloat16 autocast, which doubles the speed on a CPU that has bfloat16
# instructions; only the sign of the gradient is used) and scores it in full precision:
#
# ```{literalinclude} ../../code/scratch/attacks.py
# :pyobject: accuracy_under_attack
# ```
#
# The library's tests check the properties that define these attacks: every
# output lies in the $\epsilon$-ball and in $[0, 1]$; on a linear model FGSM
# equals the analytic step $\epsilon\,\mathrm{sign}(w_{\text{other}} - w_y)$
# and raises the logit margin by exactly $\epsilon \|w\|_1$, as
# {eq}`adv-linear` says; PGD finds a higher loss than FGSM; $\epsilon = 0$
# changes nothing. Here we check two of them on the ResNet-chapter network:

# %%
x8, y8 = x_test[:8].to(device), y_test[:8].to(device)
one_step = pgd(model, x8, y8, EPS, steps=1, step_size=EPS)
print(
    "PGD with one step of size eps == FGSM:",
    torch.equal(one_step, fgsm(model, x8, y8, EPS)),
)
x_adv = pgd(model, x8, y8, EPS, steps=cfg.pgd_steps, step_size=cfg.step_fraction * EPS)
print(
    f"largest change of any value: {(x_adv - x8).abs().max() * 255:.4f} "
    f"grey levels (budget {cfg.eps:g}); range of the adversarial images: "
    f"[{x_adv.min():.3f}, {x_adv.max():.3f}]"
)

# %% [markdown]
# ## Experiment
#
# ### Configuration
#
# The `full` profile attacks all 10,000 test images and fine-tunes on all
# 50,000 training images for ten epochs on a GPU. The `small` profile, which
# the book is built with, attacks a subset of the test images and fine-tunes
# for one short epoch, so that the chapter's own work fits in about a minute
# on two CPU cores; the attacks run with `precision=auto` (bfloat16 autocast
# where the CPU has bfloat16 instructions, float32 where it would only emulate
# them, several times slower) and the channels-last memory layout, which halves
# their time on such a CPU. The
# chapter may take longer than the 90 seconds of the other chapters (up to
# three minutes) for one reason: when the ResNet-chapter network of the same
# profile is not in the runs folder yet, it is trained first, which costs
# the ResNet chapter's own run time. `tiny`, for the tests, checks that everything runs and learns more than chance.

# %%
print(AdversarialConfig.profile_table())  # the fields whose values differ
print(
    f"this run: profile {cfg.profile!r}, eps = {cfg.eps:g}/255, "
    f"PGD-{cfg.pgd_steps} with step eps * {cfg.step_fraction:g}"
)


# %% [markdown]
# ### Saliency of right and wrong answers
#
# The saliency map {eq}`adv-saliency` of the predicted class for some test
# images the network gets right and some it gets wrong (each map scaled to
# its own maximum; bright = the class score is sensitive to that pixel):


# %%
def saliency_panels(net, idx):
    """RGB panels: the images, then the saliency of each one's predicted
    class, (2 * len(idx), 32, 32, 3) in [0, 1]."""
    sal = vis.saliency(net, x_test[idx])  # (n, 32, 32)
    sal = sal / sal.flatten(1).amax(dim=1).clamp_min(1e-12)[:, None, None]
    heat = vis.overlay(x_test[idx], sal, alpha=1.0)  # pure heat map
    return np.concatenate([x_test[idx].permute(0, 2, 3, 1).numpy(), heat])


right = (pred == y_test).nonzero().flatten()[: cfg.shown]
wrong = (pred != y_test).nonzero().flatten()[: cfg.shown]
for idx, what in [(right, "correctly"), (wrong, "wrongly")]:
    if len(idx) == 0:
        print(f"no {what} classified images in the subset")
        continue
    titles = [
        f"{classes[y_test[i]]}→{classes[pred[i]]} {probs[i, pred[i]]:.0%}" for i in idx
    ]
    fig = plots.image_grid(
        saliency_panels(model, idx),
        ncols=len(idx),
        titles=titles + ["saliency"] * len(idx),
        cell=110,
        title=f"Test images {what} classified (true→"
        "predicted, confidence) and their saliency maps",
    )
    plots.show(fig, cfg.run_dir / f"saliency_{what}.html")

# %% [markdown]
# The maps of an ordinary network are speckled: the gradient is large on
# scattered pixels, often on the object's edges and textures but also on the
# background, and it changes sign from one pixel to the next. For a wrong
# answer, the map of the *predicted* class shows which pixels that wrong
# class score is most sensitive to. A speckled gradient is exactly what an
# attacker needs: thousands of small, independent handles on the score.
#
# ### Adversarial examples
#
# FGSM and PGD-7 at $\epsilon = 8/255$ on images the network classifies
# correctly. The rows: the clean images, the FGSM images, the PGD
# perturbation $x' - x$ amplified 16 times so that it becomes visible
# (grey = 0, a saturated colour = $\pm\epsilon$), and the PGD images:

# %%
idx = right[: cfg.shown]
xs, ys = x_test[idx].to(device), y_test[idx].to(device)
with torch.autocast(
    device.type,
    dtype=AUTOCAST[cfg.precision],
    enabled=AUTOCAST[cfg.precision] is not None,
):
    x_fgsm = fgsm(model, xs, ys, EPS)
    x_pgd = pgd(
        model,
        xs,
        ys,
        EPS,
        steps=cfg.pgd_steps,
        step_size=cfg.step_fraction * EPS,
        random_start=cfg.random_start,
    )
p_fgsm = predict(model, x_fgsm).softmax(dim=1)
p_pgd = predict(model, x_pgd).softmax(dim=1)


def caption(p, i):
    c = int(p[i].argmax())
    return f"{classes[c]} {p[i, c]:.0%}"


delta = (x_pgd - xs).cpu()  # (n, 3, 32, 32)
panels = torch.cat(
    [x_test[idx], x_fgsm.cpu(), delta / (2 * EPS) + 0.5, x_pgd.cpu()]
).clamp(0, 1)
n = len(idx)
titles = (
    [f"clean: {caption(probs[idx], i)}" for i in range(n)]
    + [f"FGSM: {caption(p_fgsm, i)}" for i in range(n)]
    + ["PGD perturbation ×16"] * n
    + [f"PGD: {caption(p_pgd, i)}" for i in range(n)]
)
fig = plots.image_grid(
    panels,
    titles=titles,
    ncols=n,
    cell=110,
    title=f"Clean images, FGSM and PGD-{cfg.pgd_steps} "
    f"at eps = {cfg.eps:g}/255 (predicted class and "
    "probability)",
)
plots.show(fig, cfg.run_dir / "examples.html")
corner = (delta.abs() >= EPS - 1e-6).double().mean()
print(
    f"PGD perturbation: max |delta| = {delta.abs().max() * 255:.2f} grey "
    f"levels, mean |delta| = {delta.abs().mean() * 255:.2f}, {corner:.0%} "
    f"of the values at +-eps; "
    f"flipped: FGSM {(p_fgsm.argmax(1) != ys.cpu()).sum()}/{n}, "
    f"PGD {(p_pgd.argmax(1) != ys.cpu()).sum()}/{n}"
)


# %% [markdown]
# The adversarial images look like the clean ones: every value moved by at
# most 8 of 256 levels. The perturbation itself looks like structured noise:
# the sign steps push values to the corners of the ball, $\pm\epsilon$ (the
# printed fraction), except where a pixel is already near 0 or 1 and is
# clipped, and nothing in it looks like the class the network now reports.
#
# ### How linear is the network?
#
# The linear explanation predicts the loss after an FGSM step from one
# gradient: by {eq}`adv-taylor` it rises by $\eta^\top g$, which is
# $\epsilon \|g\|_1$ where no value hits the $[0, 1]$ limits. Below, the mean
# loss over the test subset along the FGSM direction $\mathrm{sign}(g)$,
# computed at each $\epsilon$ of the curve, against that first-order
# prediction, and along random sign directions of the same size
# {eq}`adv-random`:


# %%
def random_signs(net, x, y, eps, generator=None):
    """The 'attack' of a random corner of the ball: +-eps in every value."""
    signs = torch.randint(0, 2, x.shape, generator=generator).to(x) * 2 - 1
    return (x + eps * signs).clamp(0, 1)


def mean_loss(net, x, y, batch_size=500):
    with torch.no_grad():
        return float(
            sum(
                F.cross_entropy(
                    net(x[i : i + batch_size].to(device)),
                    y[i : i + batch_size].to(device),
                    reduction="sum",
                )
                for i in range(0, len(x), batch_size)
            )
            / len(x)
        )


parts = [
    input_gradient(
        model, x_test[i : i + 500].to(device), y_test[i : i + 500].to(device)
    )
    for i in range(0, len(x_test), 500)
]  # in batches: memory
loss0 = torch.cat([p[0] for p in parts]).cpu()  # (N,)
grad = torch.cat([p[1] for p in parts]).cpu()  # (N, 3, 32, 32)
noise = torch.Generator().manual_seed(cfg.seed)
linear = {
    "actual (FGSM direction)": [],
    "first-order prediction": [],
    "random signs": [],
}
for e in cfg.eps_curve:
    x_e = (x_test + e / 255 * grad.sign()).clamp(0, 1)
    linear["actual (FGSM direction)"].append(mean_loss(model, x_e, y_test))
    predicted = loss0 + (grad * (x_e - x_test)).flatten(1).sum(1)
    linear["first-order prediction"].append(predicted.mean().item())
    x_r = random_signs(model, x_test, y_test, e / 255, noise)
    linear["random signs"].append(mean_loss(model, x_r, y_test))
fig = plots.lines(
    linear,
    x=list(cfg.eps_curve),
    xlabel="eps (grey levels out of 255)",
    ylabel="mean cross-entropy loss",
    title="Loss along the gradient sign, its linear prediction, and along random signs",
)
plots.show(fig, cfg.run_dir / "linearity.html")
k = cfg.eps_curve.index(cfg.eps)
along = linear["actual (FGSM direction)"]
print(
    f"at eps = {cfg.eps:g}/255: clean loss {along[0]:.3f}, FGSM direction "
    f"{along[k]:.3f} (first-order prediction "
    f"{linear['first-order prediction'][k]:.3f}), random signs "
    f"{linear['random signs'][k]:.3f}"
)
print(
    f"mean ||g||_1 / ||g||_2 over the images: "
    f"{(grad.flatten(1).norm(p=1, dim=1) / grad.flatten(1).norm(dim=1)).mean():.0f}"
    f" (sqrt(n) = {np.sqrt(grad[0].numel()):.0f} if all |g_i| were equal)"
)


# %% [markdown]
# Compare the curves. Random signs barely move the loss, as
# {eq}`adv-random` predicts: the ratio $\|g\|_1 / \|g\|_2$ printed last is the
# factor by which the aligned change beats the typical random one in the
# linear model. Along the gradient sign the loss rises steeply from the
# first grey level on. Where the actual curve stays close to the straight
# first-order prediction, the network is as linear as Goodfellow et al.
# claimed; where it bends away, the linear picture is only the start, and an
# attack that re-reads the gradient along the way can do better than one
# step. That attack is PGD.
#
# ### Accuracy as a function of eps
#
# FGSM, PGD-7 and random signs at every budget of `eps_curve`, on the test
# subset (at $\epsilon = 0$ all three are the clean accuracy):


# %%
def accuracy_curve(net):
    """Accuracy under FGSM, PGD and random signs at every eps of the curve."""
    curve = {"FGSM": [], f"PGD-{cfg.pgd_steps}": [], "random signs": []}
    noise = torch.Generator().manual_seed(cfg.seed)
    clean = accuracy_under_attack(net, x_test, y_test)
    for e in cfg.eps_curve:
        if e == 0:
            for values in curve.values():
                values.append(clean)
            continue
        eps = e / 255
        curve["FGSM"].append(
            accuracy_under_attack(
                net, x_test, y_test, fgsm, precision=cfg.precision, eps=eps
            )
        )
        curve[f"PGD-{cfg.pgd_steps}"].append(
            accuracy_under_attack(
                net,
                x_test,
                y_test,
                pgd,
                precision=cfg.precision,
                eps=eps,
                steps=cfg.pgd_steps,
                step_size=cfg.step_fraction * eps,
                random_start=cfg.random_start,
            )
        )
        curve["random signs"].append(
            accuracy_under_attack(
                net, x_test, y_test, random_signs, eps=eps, generator=noise
            )
        )
    return curve


t_attack = time.perf_counter()
curve = accuracy_curve(model)
t_attack = time.perf_counter() - t_attack
fig = plots.lines(
    {k: 100 * np.array(v) for k, v in curve.items()},
    x=list(cfg.eps_curve),
    xlabel="eps (grey levels out of 255)",
    ylabel="test accuracy (%)",
    title="Accuracy of the ResNet-chapter network under attack",
)
plots.show(fig, cfg.run_dir / "accuracy_vs_eps.html")
PGD = f"PGD-{cfg.pgd_steps}"
print(f"{'eps':>5}" + "".join(f"{name:>15}" for name in curve))
for i, e in enumerate(cfg.eps_curve):
    print(f"{e:>5g}" + "".join(f"{v[i]:>15.1%}" for v in curve.values()))
print(f"({t_attack:.0f} s for the curve on {len(x_test):,} images)")

# %% [markdown]
# Random noise costs little at these budgets: only at the largest ones does
# the accuracy under random signs begin to fall, and far more slowly than
# under attack. The same budget spent along the gradient is devastating. FGSM already removes much of the accuracy at a
# few grey levels, and PGD, which re-computes the gradient after every small
# step, removes at least as much at every budget: the gap between the two
# curves is the part of the network's vulnerability that one linear step does
# not find.
# (FGSM's curve need not fall monotonically at large $\epsilon$: one large
# step can overshoot the region where the loss is high. PGD's cannot rise by
# much, since a larger ball contains every point of a smaller one.)
#
# ### Adversarial training
#
# Finally a short demonstration of {eq}`adv-minmax`: a copy of the
# ResNet-chapter network is fine-tuned on adversarial examples of itself, made by FGSM with
# a random start {cite:p}`wong2020fast` (`adv_steps=1`; `adv_steps=2` gives
# PGD-2) on every training batch, with the usual random crops and flips. The
# attack is a `batch_transform` of `fit`: it runs on each batch after the
# batch is on the device, against the network as it is at that step, in
# training mode, as in Wong et al.

# %%
robust = copy.deepcopy(model)  # the ResNet-chapter network stays as it is
train_images, train_labels = data.subsample(
    *data.cifar10("train"), cfg.adv_train_size, seed=cfg.seed + 1
)
train_loader = DataLoader(
    TensorDataset(torch.from_numpy(train_images), torch.from_numpy(train_labels)),
    batch_size=cfg.batch_size,
    shuffle=True,
    drop_last=len(train_images) > cfg.batch_size,
)
augment = Augment(crop=4, flip=True)
attack = AdversarialBatches(
    robust,
    EPS,
    steps=cfg.adv_steps,
    random_start=True,
    step_size=1.25 * EPS if cfg.adv_steps == 1 else 2.5 * EPS / cfg.adv_steps,
    precision=cfg.precision,
)


def adversarial_batch(x, y):
    """uint8 batch -> [0, 1], random crops and flips, then the attack."""
    return attack(*augment(x.float() / 255, y))


optimizer = recipes.sgd(robust, lr=cfg.lr, weight_decay=cfg.weight_decay)
scheduler = recipes.one_cycle(optimizer, cfg.lr, cfg.epochs * len(train_loader))
t_train = time.perf_counter()
# checkpoint=None: a short fine-tune, and a checkpoint left by a run on another
# ResNet-chapter network must never be resumed.
history = fit(
    robust,
    optimizer,
    train_loader,
    cfg,
    scheduler=scheduler,
    batch_transform=adversarial_batch,
    checkpoint=None,
)
t_train = time.perf_counter() - t_train
robust.eval()
print(
    f"adversarial fine-tuning: {len(train_images):,} images, "
    f"{cfg.epochs} epoch(s), {t_train:.0f} s"
)

# %%
robust_curve = accuracy_curve(robust)
both = {
    f"{name}, ResNet-chapter network": 100 * np.array(v)
    for name, v in curve.items()
    if name != "random signs"
}
both.update(
    {
        f"{name}, adversarially fine-tuned": 100 * np.array(v)
        for name, v in robust_curve.items()
        if name != "random signs"
    }
)
fig = plots.lines(
    both,
    x=list(cfg.eps_curve),
    xlabel="eps (grey levels out of 255)",
    ylabel="test accuracy (%)",
    title="Before and after adversarial fine-tuning",
)
plots.show(fig, cfg.run_dir / "robust_vs_eps.html")
print(f"{'':<28}{'clean':>8}{'FGSM':>8}{PGD:>8}   (eps = {cfg.eps:g}/255)")
for name, c in [
    ("ResNet-chapter network", curve),
    ("adversarially fine-tuned", robust_curve),
]:
    print(f"{name:<28}{c['FGSM'][0]:>8.1%}{c['FGSM'][k]:>8.1%}{c[PGD][k]:>8.1%}")

# %% [markdown]
# Read the table from left to right. The fine-tuned network pays in clean
# accuracy and gains under attack; how much of each depends on the budget of
# the fine-tuning (the `small` profile gives it one epoch on a fifth of the
# training images, a GPU run of the `full` profile ten epochs on all 50,000).
# Robustness bought this way is real in the sense that it holds against PGD,
# an attack stronger than the one the network was trained against, and it
# is limited in the sense that it covers only the threat model of
# {eq}`adv-ball` at the trained budget: the curve still falls, just later.
#
# Robust training changes the input gradients too. The saliency maps of the
# same test images, for the ResNet-chapter network (middle row) and the
# fine-tuned one (bottom row):

# %%
idx = right[: cfg.shown]
panels = np.concatenate(
    [saliency_panels(model, idx), saliency_panels(robust, idx)[len(idx) :]]
)
fig = plots.image_grid(
    panels,
    ncols=len(idx),
    cell=110,
    titles=[classes[y_test[i]] for i in idx]
    + ["ResNet chapter"] * len(idx)
    + ["fine-tuned"] * len(idx),
    title="Saliency before and after adversarial fine-tuning",
)
plots.show(fig, cfg.run_dir / "saliency_robust.html")

# %% [markdown]
# With enough adversarial training, saliency maps become smoother and follow
# the object's outline {cite:p}`tsipras2019robustness`: a network that may
# not depend on imperceptible pixel patterns has gradients that point at
# perceptible ones. How much of that a single short epoch of fine-tuning
# achieves (the `small` profile), the figure shows; the `full` profile's ten
# epochs on all training images go further.
#
# ## Results

# %%
seconds = time.perf_counter() - T0
metrics = {
    "clean_acc": curve["FGSM"][0],
    "fgsm_acc": curve["FGSM"][k],
    "pgd_acc": curve[PGD][k],
    "random_acc": curve["random signs"][k],
    "curve": {name: dict(zip(map(str, cfg.eps_curve), v)) for name, v in curve.items()},
    "robust_clean_acc": robust_curve["FGSM"][0],
    "robust_fgsm_acc": robust_curve["FGSM"][k],
    "robust_pgd_acc": robust_curve[PGD][k],
    "robust_curve": {
        name: dict(zip(map(str, cfg.eps_curve), v)) for name, v in robust_curve.items()
    },
    "test_images": len(x_test),
    "adv_train_images": len(train_images),
    "resnet_spec": resnet_spec.to_dict(),
    "parameters": count_parameters(model),
    "seconds_resnet_training": round(resnet_seconds, 1),
    "seconds_attack_curve": round(t_attack, 1),
    "seconds_adversarial_training": round(t_train, 1),
}
share = (curve["FGSM"][0] - curve["FGSM"][k]) / max(
    curve["FGSM"][0] - curve[PGD][k], 1e-12
)
rows = results_table(
    cfg,
    metrics,
    seconds=seconds,
    device=device,
    title=f"test accuracy under attack (eps = {cfg.eps:g}/255)",
    columns={
        "clean_acc": ("clean", ".1%"),
        "fgsm_acc": ("FGSM", ".1%"),
        "pgd_acc": (PGD, ".1%"),
        "test_images": ("test images", ","),
    },
    notes=[
        f"FGSM's share of PGD's damage (accuracy lost to FGSM / lost to {PGD}), "
        f"this run: {share:.0%}",
        f"after adversarial fine-tuning (this run): clean "
        f"{robust_curve['FGSM'][0]:.1%}, FGSM {robust_curve['FGSM'][k]:.1%}, "
        f"{PGD} {robust_curve[PGD][k]:.1%}",
        f"this run: {seconds:.0f} s in all; training the ResNet-chapter "
        f"network {resnet_seconds:.0f} s (0 = loaded), the attack curve "
        f"{t_attack:.0f} s, the adversarial fine-tuning {t_train:.0f} s",
    ],
)
assert rows[0].values["pgd_acc"] == curve[PGD][k]

# %% [markdown]
# The `small` profile attacks the small ResNet that the ResNet chapter
# trains on a CPU within its time budget, on a subset of the test set; a
# `full` run attacks the network that chapter trains on a GPU, on the whole
# test set. The digits depend on the network, but two things should hold for
# any network trained in the usual way: under PGD at $\epsilon = 8/255$ little
# of the clean accuracy survives, and under random noise of the same size
# the accuracy stays close to the clean one.
#
# FGSM is where networks differ, and a line under the table measures how: the
# share of PGD's damage that one FGSM step already does. A network whose loss
# is nearly linear over the whole ball (in the linearity check above, the
# actual loss stays close to its first-order prediction) loses almost as
# much to FGSM as to PGD. A network whose loss bends within the ball makes
# the step of size $\epsilon$ overshoot the region where the loss is high,
# and FGSM leaves more images correct than PGD does. FGSM accuracy is
# therefore a poor measure of robustness; PGD is the number to report. For
# adversarial training, {cite:t}`wong2020fast` report about 45% accuracy
# under PGD at $\epsilon = 8/255$ for a network trained with FGSM and a
# random start from scratch on all of CIFAR-10, which our short fine-tuning
# does not attempt to match.
#
# The run's metrics, config, duration and machine go to `metrics.json` in the
# run folder; a `full` run's file is what gets recorded in
# `results/adversarial.json`.

# %%
utils.save_run(cfg.run_dir / "metrics.json", cfg, metrics, seconds)
print(f"metrics saved to {cfg.run_dir / 'metrics.json'}")

# %% [markdown]
# ## Summary
#
# - The gradient of the loss with respect to the input is one backward pass
#   away. As a saliency map {eq}`adv-saliency` it shows which pixels a class
#   score is sensitive to; as an attack it shows which way to push them.
# - A linear function of $n$ inputs moves by $\epsilon \|w\|_1$ when every
#   input moves by $\epsilon$ in the direction of its weight, about $\sqrt{n}$
#   times more than under random changes of the same size {eq}`adv-linear`
#   {eq}`adv-random`. High-dimensional inputs and nearly linear networks make
#   imperceptible adversarial changes possible.
# - FGSM {eq}`adv-fgsm` takes one step of $\epsilon$ along the sign of the
#   input gradient; PGD {eq}`adv-pgd` takes several smaller steps and projects
#   back onto the allowed set {eq}`adv-project` after each. At
#   $\epsilon = 8/255$ an ordinarily trained CIFAR-10 network keeps part of its
#   accuracy under FGSM and little under PGD.
# - Measure robustness with the strongest attack you have, and with a curve
#   over $\epsilon$, not one number.
# - Adversarial training {eq}`adv-minmax` trains on attacks against the
#   current network; FGSM with a random start makes it about as cheap as two
#   ordinary training steps. It buys accuracy under attack with clean
#   accuracy.
#
# ## Exercises
#
# :::{exercise}
# :label: adversarial-ex-1
# Show that FGSM is the optimal $L_\infty$ attack on a linear binary
# classifier with logistic loss, $\mathcal{L} = \log(1 + e^{-y\, w^\top x})$
# with $y \in \{-1, +1\}$ (ignore the clipping to $[0, 1]$). What does PGD
# return for such a model?
# :::
#
# :::{solution} adversarial-ex-1
# :class: dropdown
# The loss is a decreasing function of the margin $y\, w^\top x'$, so
# maximising it over the ball means minimising $y\, w^\top (x + \eta)$ over
# $\|\eta\|_\infty \le \epsilon$. By {eq}`adv-linear` the minimum is at
# $\eta = -\epsilon\, y\, \mathrm{sign}(w)$. The gradient of the loss is
# $\nabla_x \mathcal{L} = -y\, \sigma(-y\, w^\top x)\, w$, a positive
# multiple of $-y\, w$, so $\epsilon\, \mathrm{sign}(\nabla_x \mathcal{L})$ is
# exactly that optimum: FGSM is optimal. PGD computes the same sign at every
# step (the gradient's direction does not depend on $x$), moves each value by
# $\alpha$ towards the same corner and is clamped there after
# $\lceil \epsilon / \alpha \rceil$ steps: it returns the FGSM solution too.
# The library's test `test_fgsm_on_a_linear_model_is_the_analytic_sign_step`
# checks the softmax version of this.
# :::
#
# :::{exercise}
# :label: adversarial-ex-2
# Write a *targeted* PGD attack that makes the ResNet-chapter network answer a
# class $t$ of your choice, by *descending* on $\mathcal{L}(f(x'), t)$. For
# the test images that are not of class `cat`, what fraction can you turn
# into `cat` at $\epsilon = 8/255$, and at $4/255$?
# :::
#
# :::{solution} adversarial-ex-2
# :class: dropdown
# Descending on the loss of the target is ascending on its negative, so the
# library's `pgd` does it with a loss function that flips the sign and
# ignores the true labels:
#
# ```python
# target = classes.index("cat")
# keep = y_test != target
# xs, ts = x_test[keep], torch.full((int(keep.sum()),), target)
#
# def towards_target(logits, t, reduction="none"):
#     return -F.cross_entropy(logits, t, reduction=reduction)
#
# for e in (8, 4):
#     x_t = pgd(model, xs, ts, e / 255, steps=20, step_size=e / 255 / 8,
#               loss_fn=towards_target)
#     hit = (predict(model, x_t).argmax(1) == target).double().mean()
#     print(f"eps {e}/255: {hit:.1%} now classified as cat")
# ```
#
# A targeted attack is harder than an untargeted one (any wrong class will
# not do), so it needs more steps and reaches lower success rates at the same
# $\epsilon$; classes that the network already confuses with cats (dogs) are
# likely to be the easiest to turn.
# :::
#
# :::{exercise}
# :label: adversarial-ex-3
# *Transferability.* Craft PGD examples at $\epsilon = 8/255$ on the
# adversarially fine-tuned network `robust` and test them on the
# ResNet-chapter network `model`, and the other way round. Compare with the white-box
# accuracies of the table above. Which direction transfers better, and what
# does that mean for an attacker who does not know the weights of the
# network they attack?
# :::
#
# :::{solution} adversarial-ex-3
# :class: dropdown
# ```python
# def transfer(source, target):
#     x_adv = torch.cat([pgd(source, x_test[i:i + 500], y_test[i:i + 500],
#                            8 / 255, steps=7, step_size=1.6 / 255)
#                        for i in range(0, len(x_test), 500)])
#     return accuracy_under_attack(target, x_adv, y_test)
#
# print("robust -> model:", transfer(robust, model))
# print("model -> robust:", transfer(model, robust))
# ```
#
# Transferred attacks are weaker than white-box ones (the accuracy is higher
# than in the table), but often far from harmless: adversarial directions
# are shared between networks trained on the same data
# {cite:p}`szegedy2014intriguing,goodfellow2015explaining`. Examples made on
# the robust network tend to transfer better to the ordinary one than the
# other way round, because its gradients point at perceptible features that
# matter to both networks, while the ordinary network's speckled gradient is
# specific to it. An attacker without the weights can train a *substitute*
# network on similar data and attack that one: hiding the weights is not a
# defence.
# :::
#
# :::{exercise}
# :label: adversarial-ex-4
# *Random starts and restarts.* Run PGD with `random_start=True` from 5
# different random starts and count an image as robust only if it survives
# all of them. How much lower is the accuracy than with one deterministic
# start, for the ResNet-chapter network and for the fine-tuned one? Why do
# evaluations of defences insist on restarts and many steps
# {cite:p}`athalye2018obfuscated`?
# :::
#
# :::{solution} adversarial-ex-4
# :class: dropdown
# ```python
# def worst_of_restarts(net, restarts=5, eps=8 / 255):
#     survived = torch.ones(len(x_test), dtype=torch.bool)
#     for r in range(restarts):
#         g = torch.Generator().manual_seed(r)
#         x_adv = pgd(net, x_test, y_test, eps, steps=7, step_size=eps / 5,
#                     random_start=True, generator=g)
#         survived &= predict(net, x_adv).argmax(1) == y_test
#     return survived.double().mean().item()
#
# for name, net in [("ResNet chapter", model), ("fine-tuned", robust)]:
#     print(name, worst_of_restarts(net))
# ```
#
# For the ordinary network the difference is small: one start already finds
# an adversarial example for almost every image. For a defended network the
# loss surface inside the ball is less regular, a single start can end in a
# poor local maximum, and restarts lower the accuracy further. A defence
# that looks robust against a weak attack but not against a strong one was
# only *masking* its gradients: of the nine white-box defences of ICLR 2018
# that Athalye et al. examined, seven relied on such masked (obfuscated)
# gradients, and their stronger attacks circumvented six of them completely. A robustness number is an upper bound,
# as good as the strongest attack that produced it.
# :::
#
# :::{exercise}
# :label: adversarial-ex-5
# Derive the $L_2$ version of FGSM: maximise the linearised loss
# {eq}`adv-taylor` over $\|\eta\|_2 \le \epsilon$. Implement it, and find by
# bisection the smallest $\epsilon_2$ at which it flips each of a few test
# images. How do those $L_2$ sizes compare with the $L_2$ norm of an
# $L_\infty$ perturbation of $8/255$, $\tfrac{8}{255}\sqrt{3072} \approx 1.74$?
# :::
#
# :::{solution} adversarial-ex-5
# :class: dropdown
# By Cauchy-Schwarz, $\eta^\top g \le \|\eta\|_2 \|g\|_2$ with equality when
# $\eta$ points along $g$: $\eta = \epsilon\, g / \|g\|_2$ (the $L_2$ norm is
# its own dual). This is the *fast gradient method*:
#
# ```python
# def fgm_l2(net, x, y, eps):
#     _, g = input_gradient(net, x, y)
#     norm = g.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
#     return (x + eps * g / norm).clamp(0, 1)
#
# def smallest_flip(net, x, y, lo=0.0, hi=8.0, iters=12):
#     for _ in range(iters):               # bisection on eps_2
#         mid = (lo + hi) / 2
#         flipped = predict(net, fgm_l2(net, x, y, mid)).argmax(1) != y
#         lo, hi = (lo, mid) if flipped.item() else (mid, hi)
#     return hi
#
# for i in right[:5]:
#     print(classes[y_test[i]], smallest_flip(model, x_test[i:i + 1],
#                                             y_test[i:i + 1]))
# ```
#
# The $L_2$ sizes that flip an ordinary network are typically well below
# 1.74: an $L_\infty$ perturbation spends its budget on every value, while an
# $L_2$ one concentrates it where the gradient is large. Each norm defines a
# different threat model, and robustness in one does not imply robustness
# in the other.
# :::
#
# ## References
#
# ```{bibliography}
# :filter: docname in docnames
# ```
