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
# (schedules)=
# # Learning-rate schedules
#
# The chapter on {doc}`optimizers` tuned one number, the learning rate, and then
# held it fixed from the first step to the last. But the first and the last steps
# want different things: at the start the weights are far from any minimum and a
# large step covers ground fast; at the end the gradient is mostly noise from the
# mini-batch, and a large step keeps the weights bouncing around the minimum
# instead of settling into it. A *learning-rate schedule* lets the step size
# change during training. This chapter shows why no constant learning rate can be
# both fast and precise, collects the schedules in use today (step decay, cosine
# annealing, warm restarts, cyclical rates, one-cycle, warm-up), builds the
# learning-rate *range test* that picks the peak learning rate in one short run,
# and compares the schedules on MNIST with the same small budget of epochs.

# %%
import math
import time
from dataclasses import dataclass, field

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from scratch import data, plots, utils
from scratch.config import Config, ConfigError, positive, unit_interval
from scratch.engine import Tensor, nn, optim
from scratch.engine.loop import Callback, fit_arrays
from scratch.engine.models import make_mlp
from scratch.results import Reference, results_table

# %% [markdown]
# The chapter's settings: the config class (shown on a click, with the reason for
# each default), then the values this page was built with:


# %% tags=["hide-input"]
@dataclass
class SchedulesConfig(Config):
    NAME = "schedules"

    n_train: int = field(
        default=6000,
        metadata=positive(
            "MNIST training images (a seeded, class-stratified subset): enough for an MLP to learn the digits "
            "well, few enough for a run of a few epochs in under a second of CPU"
        ),
    )
    n_test: int = field(
        default=2000,
        metadata=positive(
            "test images scored after every epoch: 2000 pin an accuracy down to about +-1 point (95%)"
        ),
    )
    hidden: int = field(
        default=128,
        metadata=positive(
            "units in each of the two hidden layers: enough to fit the training subset, small enough to be fast"
        ),
    )
    batch_size: int = field(
        default=128,
        metadata=positive(
            "images per SGD step: dozens of steps per epoch, so a per-step schedule is smooth"
        ),
    )
    epochs: int = field(
        default=6,
        metadata=positive(
            "the budget, the same for every schedule: short, so that a constant lr has no time to settle "
            "(the regime of Smith & Topin's super-convergence)"
        ),
    )
    momentum: float = field(
        default=0.9,
        metadata=unit_interval(
            "SGD momentum, as in Smith & Topin's experiments: averages gradients over about 10 steps"
        ),
    )
    seeds: int = field(
        default=3,
        metadata=positive(
            "runs per schedule and peak lr; all schedules share each seed's initial weights and batch order, "
            "so their differences are the schedule's, and the spread over seeds is the noise"
        ),
    )
    range_start_lr: float = field(
        default=1e-4,
        metadata=positive(
            "first lr of the range test: too small to move the loss at all"
        ),
    )
    range_end_lr: float = field(
        default=10.0,
        metadata=positive(
            "last lr of the range test: far past the point where SGD with momentum diverges on this MLP"
        ),
    )
    range_steps: int = field(
        default=200,
        metadata=positive(
            "steps of the range test if it does not diverge first: enough points per decade of lr for a "
            "readable curve"
        ),
    )
    range_smoothing: float = field(
        default=0.9,
        metadata=unit_interval(
            "beta of the loss's moving average in the range test: averages about 10 steps, so that one noisy "
            "batch neither sets the minimum nor triggers the stop"
        ),
    )
    range_diverge: float = field(
        default=4.0,
        metadata=positive(
            "the range test stops once the smoothed loss exceeds this multiple of its minimum: the loss is "
            "exploding, larger lrs teach nothing more"
        ),
    )
    lr_divisor: float = field(
        default=3.0,
        metadata=positive(
            "peak lr = (lr at the smoothed loss's minimum) / this; at the minimum the loss is about to turn up, "
            "which a whole run cannot sustain; the usual rules of thumb use margins of 3 to 10"
        ),
    )
    lr_multipliers: tuple[float, ...] = field(
        default=(0.5, 1.0, 2.0, 4.0),
        metadata=positive(
            "peak lrs of the sweep, as multiples of the picked one (1 is always included): from half the "
            "picked lr to where the schedules break down"
        ),
    )
    step_gamma: float = field(
        default=0.1,
        metadata=unit_interval(
            "step decay's factor: the classic division by 10, twice (after a third and two thirds of the steps)"
        ),
    )
    toy_chains: int = field(
        default=2000,
        metadata=positive(
            "independent SGD runs on the 1-D toy problem, averaged to estimate the expected loss"
        ),
    )
    toy_steps: int = field(
        default=400,
        metadata=positive(
            "steps of the toy runs: long enough for the large constant lr to reach its noise floor"
        ),
    )

    PROFILES = {
        "tiny": dict(
            threads=1,
            n_train=500,
            n_test=300,
            hidden=32,
            epochs=2,
            seeds=1,
            range_steps=30,
            lr_multipliers=(0.5, 1.0),
            toy_chains=200,
            toy_steps=100,
        ),  # tests: seconds
        "small": dict(threads=1),  # the book build: under a minute of CPU
        "full": dict(
            n_train=60000,
            n_test=10000,
            hidden=256,
            epochs=10,
            seeds=5,
            range_steps=400,
            lr_multipliers=(0.125, 0.25, 0.5, 1.0, 2.0, 4.0),
        ),  # all of MNIST, CPU hours
    }

    def validate(self):
        if self.range_end_lr <= self.range_start_lr:
            raise ConfigError(
                f"range_end_lr={self.range_end_lr} must exceed range_start_lr={self.range_start_lr}"
            )
        if self.range_steps < 2:
            raise ConfigError(
                f"range_steps={self.range_steps}: the range test needs at least 2 steps"
            )


cfg = SchedulesConfig.from_cli()
utils.seed_everything(cfg.seed)
run_started = time.perf_counter()


# %% [markdown]
# ## Motivation: fast or precise, pick one
#
# Stochastic gradient descent follows a *noisy* gradient: each step uses a
# mini-batch, whose gradient scatters around the true one. Far from a minimum the
# true gradient dominates and a larger learning rate means faster progress. Near a
# minimum the true gradient vanishes and only the scatter is left, so every step
# kicks the weights away again, by an amount proportional to the learning rate.
# A constant learning rate therefore settles at a *noise floor*: the larger it is,
# the sooner it gets there and the higher the floor.
#
# The smallest example shows it all. Take the one-dimensional loss
# $f(\theta) = \tfrac12 h\,\theta^2$ and a gradient with Gaussian noise of standard
# deviation $\sigma$, as a mini-batch would give. We run thousands of independent
# SGD runs at once, as one NumPy array (this is a formula, not a network, so
# `fit_arrays` has nothing to do here), with a large and a small constant learning rate,
# and with a large one that decays along a cosine:


# %%
def noisy_quadratic_sgd(
    lrs, h=1.0, sigma=1.0, theta0=10.0, chains=1000, seed=0
) -> np.ndarray:
    """Mean loss E[f(theta_t)] over `chains` SGD runs on f = h theta^2 / 2, one lr per step.

    Each step follows the gradient h * theta plus N(0, sigma^2) noise; all runs advance together.
    """
    rng = np.random.default_rng(seed)
    theta = np.full(chains, theta0)  # (chains,)
    losses = [np.mean(0.5 * h * theta**2)]
    for lr in lrs:
        theta = theta - lr * (h * theta + sigma * rng.standard_normal(chains))
        losses.append(np.mean(0.5 * h * theta**2))
    return np.array(losses)  # (len(lrs) + 1,)


def lr_curve(make_scheduler, steps: int, lr: float = 1.0) -> np.ndarray:
    """The lr of each of `steps` steps under a library scheduler, read off a throwaway optimizer."""
    opt = optim.SGD([Tensor(np.zeros(1), requires_grad=True)], lr=lr)
    scheduler = make_scheduler(opt) if make_scheduler else None
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        if scheduler is not None:
            scheduler.step()
    return np.array(lrs)


LARGE, SMALL = 0.5, 0.01  # step sizes relative to the curvature: lr * h
toy_lrs = {
    f"constant lr = {LARGE}": np.full(cfg.toy_steps, LARGE),
    f"constant lr = {SMALL}": np.full(cfg.toy_steps, SMALL),
    f"cosine from {LARGE} to 0": lr_curve(
        lambda opt: optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.toy_steps),
        cfg.toy_steps,
        LARGE,
    ),
}
toy = {
    name: noisy_quadratic_sgd(lrs, chains=cfg.toy_chains, seed=cfg.seed)
    for name, lrs in toy_lrs.items()
}


def noise_floor(lr, h=1.0, sigma=1.0):
    """The limit of E[f] for a constant lr, from eq. (schedules-noise-floor)."""
    return lr * sigma**2 / (2 * (2 - lr * h))


fig = plots.lines(
    toy,
    log_y=True,
    title="SGD on a noisy quadratic: mean loss over the runs",
    xlabel="step",
    ylabel="E[f(theta)] (log scale)",
)
for i, lr in enumerate(
    (LARGE, SMALL)
):  # as traces: plotly misplaces line annotations on log axes
    fig.add_trace(
        go.Scatter(
            x=[0, cfg.toy_steps],
            y=[noise_floor(lr)] * 2,
            mode="lines",
            name=f"noise floor of lr = {lr}, eq. (schedules-noise-floor)",
            line=dict(dash="dot", color=plots.COLORS[i]),
        )
    )
fig.update_layout(legend=dict(orientation="h", y=-0.25))
plots.show(fig, cfg.run_dir / "noise_floor.html")
for name, losses in toy.items():
    print(
        f"{name:<24} mean loss over the last 10% of steps: {losses[-len(losses) // 10 :].mean():.2e}"
    )
for lr in (LARGE, SMALL):
    print(f"predicted noise floor of lr = {lr}: {noise_floor(lr):.2e}")

# %% [markdown]
# The large constant learning rate drops fast and then stalls on its floor (the
# printed values match the prediction of the next section); the small one would
# reach a much lower floor, but is still on its way down when the run ends. The
# cosine schedule starts as fast as the large rate and, as its learning rate
# shrinks, sinks far below the large rate's floor and, as printed above, below
# where the small rate has got to by the end. It combines the speed of the first
# with much of the precision of the second. The same
# trade-off governs a network: the {doc}`optimizers` chapter's learning rate was
# a compromise between the two ends of the run. This chapter removes the
# compromise.
#
# ## Theory
#
# ### The noise floor
#
# On the toy problem the analysis is exact. With $\xi_t \sim \mathcal N(0, 1)$,
# one SGD step is
#
# $$
# \theta_{t+1} = \theta_t - \eta_t \left(h\,\theta_t + \sigma\,\xi_t\right)
# = (1 - \eta_t h)\,\theta_t - \eta_t \sigma\,\xi_t .
# $$ (schedules-toy)
#
# Square it and take the expectation (the noise is independent of $\theta_t$):
# $\mathbb E[\theta_{t+1}^2] = (1 - \eta h)^2\, \mathbb E[\theta_t^2] + \eta^2 \sigma^2$
# for a constant $\eta$. This linear recursion has the solution
#
# $$
# \mathbb E[\theta_t^2] = (1 - \eta h)^{2t} \left(\theta_0^2 - v_\infty\right) + v_\infty,
# \qquad v_\infty = \frac{\eta\,\sigma^2}{h\,(2 - \eta h)} ,
# $$ (schedules-noise-floor)
#
# so the expected loss $\mathbb E[f] = \tfrac12 h\, \mathbb E[\theta_t^2]$ tends to
# $\eta \sigma^2 / (2(2 - \eta h)) \approx \eta\sigma^2/4$: **the floor is
# proportional to the learning rate**, while the distance to it shrinks like
# $(1 - \eta h)^{2t}$, in about $1/(\eta h)$ steps: **the time to reach it is
# inversely proportional to the learning rate**. For a general smooth, strongly
# convex loss, SGD with a constant step converges in expectation to a
# neighbourhood of the minimum whose size is proportional to the step, with the
# same trade-off {cite:p}`bottou2018optimization`. Only a learning rate that
# *decreases* reaches the minimum itself. {cite:t}`robbins1951stochastic` gave the
# classic conditions,
#
# $$
# \sum_{t=0}^{\infty} \eta_t = \infty, \qquad \sum_{t=0}^{\infty} \eta_t^2 < \infty ,
# $$ (schedules-robbins-monro)
#
# the first so that the steps can travel any distance, the second so that the
# injected noise, whose variance adds up as $\sum \eta_t^2 \sigma^2$, stays finite;
# $\eta_t \propto 1/t$ satisfies both. Deep-learning runs have a fixed budget of
# $T$ steps instead of an infinite horizon, and the schedules below are functions
# on $[0, T]$ that start large and end near zero.
#
# ### A catalogue of schedules
#
# Write $t$ for the step, $T$ for the total number of steps and $\eta_{\max}$ for
# the peak learning rate.
#
# **Step decay** divides the learning rate by a constant every $s$ steps
# (ResNet's recipe: by 10, twice {cite:p}`he2016deep`):
#
# $$
# \eta_t = \eta_{\max}\, \gamma^{\lfloor t / s \rfloor}.
# $$ (schedules-step)
#
# It works, but it has two knobs per drop (when and how much), and the drops are
# shocks: the loss falls sharply at each one, as the noise floor of
# {eq}`schedules-noise-floor` drops with $\eta$.
#
# **Cosine annealing** {cite:p}`loshchilov2017sgdr` glides from $\eta_{\max}$ to
# $\eta_{\min}$ (usually 0) along half a cosine,
#
# $$
# \eta_t = \eta_{\min} + \tfrac12 \left(\eta_{\max} - \eta_{\min}\right)\left(1 + \cos\frac{\pi t}{T}\right),
# $$ (schedules-cosine)
#
# which stays near the peak for a long time, then decays smoothly to zero: no drop
# to place, only the run's length. With **warm restarts** (SGDR), the cosine is
# restarted from the peak: the $i$-th cycle lasts $T_i = T_0\,T_{\text{mult}}^{\,i}$
# steps, and $t$ in {eq}`schedules-cosine` becomes $T_{\text{cur}}$, the steps since
# the last restart,
#
# $$
# \eta_t = \eta_{\min} + \tfrac12 \left(\eta_{\max} - \eta_{\min}\right)\left(1 + \cos\frac{\pi\,T_{\text{cur}}}{T_i}\right).
# $$ (schedules-sgdr)
#
# Each cycle ends at a good, low-lr model; each restart jumps away from it to look
# for another, and the models at the ends of the cycles make a free ensemble.
#
# **Cyclical learning rates** {cite:p}`smith2017cyclical` go up *and* down,
# in a triangle between a lower bound $\eta_{\text{base}}$ and $\eta_{\max}$ with
# half-period $s$:
#
# $$
# c = \left\lfloor 1 + \frac{t}{2s} \right\rfloor, \qquad
# x = \left| \frac{t}{s} - 2c + 1 \right|, \qquad
# \eta_t = \eta_{\text{base}} + \left(\eta_{\max} - \eta_{\text{base}}\right) \max(0,\, 1 - x).
# $$ (schedules-triangular)
#
# The rising half is the surprise: a short-term loss for a long-term gain, since
# the larger steps get across flat regions and saddle points faster. The
# `triangular2` variant halves the amplitude at every cycle.
#
# **One-cycle** {cite:p}`smith2019superconvergence` is a single such cycle over the
# whole run, which ends far below where it started (Smith and Topin "annihilate"
# the learning rate in the last iterations). In PyTorch's form, which the library
# follows, it goes up from
# $\eta_{\max}/d$ to $\eta_{\max}$ during a fraction $p$ of the run, then down to
# $\eta_{\max}/(d\,d_f)$, both halves along a cosine
# $\operatorname{anneal}(a, b, u) = b + \tfrac12 (a - b)(1 + \cos \pi u)$:
#
# $$
# \eta_t = \begin{cases}
# \operatorname{anneal}\!\left(\eta_{\max}/d,\ \eta_{\max},\ \frac{t}{pT}\right), & t \le pT, \\[4pt]
# \operatorname{anneal}\!\left(\eta_{\max},\ \eta_{\max}/(d\,d_f),\ \frac{t - pT}{(1 - p)\,T}\right), & t > pT,
# \end{cases}
# $$ (schedules-onecycle)
#
# with PyTorch's defaults $p = 0.3$, $d = 25$, $d_f = 10^4$. Smith and Topin
# found that with this policy a residual network on CIFAR-10 trains to a better
# accuracy in a fraction of the usual iterations, and called it
# *super-convergence*. Their explanation: the large learning rates in the middle
# of the run act as a regulariser (their noise keeps the weights out of sharp
# minima), so the peak can and should be much larger than a constant learning
# rate could survive, while the warm-up protects the fragile start and the long
# annealing reaches the minimum.
#
# **Warm-up** {cite:p}`goyal2017accurate` grows the learning rate linearly over
# the first $W$ steps, from a fraction $f_0$ of the peak, before the main schedule,
# here a cosine:
#
# $$
# \eta_t = \begin{cases}
# \eta_{\max}\left(f_0 + (1 - f_0)\,\frac{t}{W}\right), & t < W, \\[4pt]
# \tfrac12\,\eta_{\max}\left(1 + \cos\frac{\pi (t - W)}{T - W}\right), & t \ge W .
# \end{cases}
# $$ (schedules-warmup)
#
# Goyal et al. needed it to train ResNet-50 on ImageNet with batches of 8192
# images: they scaled the learning rate with the batch size (the *linear scaling
# rule*), and that learning rate, applied to freshly initialised weights whose
# gradients are large and change fast, diverged without the ramp. Warm-up then
# cosine is the default schedule of most transformers today.
#
# Every one of these schedules is in `scratch.engine.optim.lr_scheduler`, with
# PyTorch's names and values. Here they are over the same $T$ steps, each scaled
# to a peak of 1 (hover to read the values; the last panel is the range test's
# sweep of the next section, on a log scale):

# %%
T = 1000  # steps of the illustration; each schedule's lr is shown relative to its peak
lr_scheduler = optim.lr_scheduler
catalogue = {
    "constant": None,
    "step decay: StepLR(step_size=T/3, gamma=0.1)": lambda opt: lr_scheduler.StepLR(
        opt, step_size=math.ceil(T / 3), gamma=0.1
    ),
    "cosine: CosineAnnealingLR(T_max=T)": lambda opt: lr_scheduler.CosineAnnealingLR(
        opt, T_max=T
    ),
    "SGDR: CosineAnnealingWarmRestarts(T_0=T/7, T_mult=2)": lambda opt: (
        lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=T // 7, T_mult=2)
    ),
    "cyclical: CyclicLR(0.1, 1, step_size_up=T/8)": lambda opt: lr_scheduler.CyclicLR(
        opt, base_lr=0.1, max_lr=1.0, step_size_up=T // 8
    ),
    "one-cycle: OneCycleLR(max_lr=1, total_steps=T)": lambda opt: (
        lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=T)
    ),
    "warm-up + cosine: SequentialLR(LinearLR, CosineAnnealingLR)": lambda opt: (
        lr_scheduler.SequentialLR(
            opt,
            [
                lr_scheduler.LinearLR(opt, start_factor=0.01, total_iters=T // 10),
                lr_scheduler.CosineAnnealingLR(opt, T_max=T - T // 10),
            ],
            milestones=[T // 10],
        )
    ),
    "range test: exponential, 1e-4 to 10": lambda opt: lr_scheduler.LambdaLR(
        opt, lambda t: 1e-4 * (10 / 1e-4) ** (t / (T - 1))
    ),
}
curves = {name: lr_curve(make, T) for name, make in catalogue.items()}
curves["cyclical: CyclicLR(0.1, 1, step_size_up=T/8)"] = (
    curves["cyclical: CyclicLR(0.1, 1, step_size_up=T/8)"],
    lr_curve(
        lambda opt: lr_scheduler.CyclicLR(
            opt, base_lr=0.1, max_lr=1.0, step_size_up=T // 8, mode="triangular2"
        ),
        T,
    ),
)

titles = [
    name.split(":")[0]
    + (" (dotted: triangular2)" if name.startswith("cyclical") else "")
    for name in curves
]
palette = [
    c for c in plots.COLORS if c != "#F0E442"
]  # the theme's yellow is too pale for a thin line alone
fig = make_subplots(
    rows=4,
    cols=2,
    subplot_titles=titles,
    shared_xaxes=True,
    vertical_spacing=0.07,
    horizontal_spacing=0.08,
)
for i, (name, lrs) in enumerate(curves.items()):
    row, col = i // 2 + 1, i % 2 + 1
    variants = lrs if isinstance(lrs, tuple) else (lrs,)
    for j, values in enumerate(variants):
        label = name.split(": ")[-1] + (" (triangular2)" if j else "")
        fig.add_trace(
            go.Scatter(
                x=np.arange(T),
                y=values,
                mode="lines",
                name=label,
                line=dict(
                    color=palette[(i + j) % len(palette)], dash="dot" if j else None
                ),
                hovertemplate="step %{x}: lr %{y:.3g}<extra>" + label + "</extra>",
            ),
            row=row,
            col=col,
        )
    if name.startswith("range"):
        fig.update_yaxes(type="log", exponentformat="power", row=row, col=col)
    else:
        fig.update_yaxes(range=[0, 1.1], row=row, col=col)
    if col == 1:
        fig.update_yaxes(title_text="lr / peak", row=row, col=col)
fig.update_xaxes(title_text="step", row=4)
fig.update_layout(
    title="Every schedule of the library, over the same steps",
    height=900,
    showlegend=False,
)
plots.show(fig, cfg.run_dir / "schedules.html")


# %% [markdown]
# ### The learning-rate range test
#
# Every schedule above needs a peak $\eta_{\max}$, and it matters more than the
# shape. {cite:t}`smith2017cyclical` proposed to *measure* it in one short run
# that raises the learning rate step by step and watches what training does. He
# raised it linearly over a few epochs and watched the accuracy; the version in
# common use today, popularised by the fastai library {cite:p}`howard2020fastai`,
# multiplies it by a constant factor after every step, so that after $K$ steps it
# has swept exponentially, through many decades, from $\eta_{\text{lo}}$ to
# $\eta_{\text{hi}}$,
#
# $$
# \eta_k = \eta_{\text{lo}} \left(\frac{\eta_{\text{hi}}}{\eta_{\text{lo}}}\right)^{k / (K - 1)},
# \qquad k = 0, \dots, K - 1,
# $$ (schedules-range-test)
#
# while recording the training loss. At first nothing happens (the steps are too
# small), then the loss falls, faster and faster, until the learning rate is too
# large: the loss turns up and explodes. The loss of one batch is noisy, so we
# follow its exponential moving average, bias-corrected as in Adam (see
# {doc}`optimizers`),
#
# $$
# m_k = \beta\, m_{k-1} + (1 - \beta)\, L_k, \quad m_{-1} = 0, \qquad
# \hat m_k = \frac{m_k}{1 - \beta^{k+1}},
# $$ (schedules-smoothing)
#
# and stop once $\hat m_k$ exceeds a few times its minimum so far. The minimum of
# the curve is the largest learning rate that still made progress *during a sweep*,
# with the weights changing under it; a whole run at that rate does not survive,
# so the peak is taken somewhat lower. The usual rules of thumb take the learning
# rate where the loss falls fastest, or the minimum divided by a small factor
# (between 3 and 10); we do the latter. The test costs a few hundred steps, much less than
# one training run of a sweep over learning rates.
#
# ## Implementation
#
# ### Schedulers
#
# A scheduler rewrites `group["lr"]` of its optimizer's parameter groups, once per
# `step()`. The library's base class keeps PyTorch's contract (constructing a
# scheduler sets the learning rate of step 0; `step()` is called after
# `optimizer.step()`), and each schedule is a closed form of the step counter
# `last_epoch` (it counts epochs or steps, whichever the caller steps it by):
#
# :::{admonition} The base class `LRScheduler`
# :class: dropdown
# ```{literalinclude} ../../code/scratch/engine/lr_scheduler.py
# :pyobject: LRScheduler
# ```
# :::
#
# The cosine is eq. {eq}`schedules-cosine` in two lines:
#
# ```{literalinclude} ../../code/scratch/engine/lr_scheduler.py
# :pyobject: CosineAnnealingLR.get_lr
# ```
#
# Warm restarts only need to know where in its cycle a step falls, eq.
# {eq}`schedules-sgdr`. In integers, so that no rounding of a logarithm puts a
# restart one step late:
#
# ```{literalinclude} ../../code/scratch/engine/lr_scheduler.py
# :pyobject: CosineAnnealingWarmRestarts._cycle
# ```
#
# One-cycle walks through its phases, eq. {eq}`schedules-onecycle` (with
# PyTorch's phase ends, one step earlier than the formula's):
#
# ```{literalinclude} ../../code/scratch/engine/lr_scheduler.py
# :pyobject: OneCycleLR.get_lr
# ```
#
# Like PyTorch's with `cycle_momentum=False`, the library's `OneCycleLR` and
# `CyclicLR` schedule the learning rate only; Smith and Topin also cycle the
# momentum, the other way round (exercise {ref}`schedules-ex-4`). Warm-up is a
# `LinearLR` followed by the main schedule; `SequentialLR` hands over at the
# milestones, restarting each scheduler's own counter:
#
# ```{literalinclude} ../../code/scratch/engine/lr_scheduler.py
# :pyobject: SequentialLR.step
# ```
#
# The training loop `scratch.engine.loop.fit_arrays` takes a `scheduler` and steps it
# after every optimizer step (`scheduler_interval="step"`, the default, what
# one-cycle and cyclical rates need) or after every epoch
# (`scheduler_interval="epoch"`). Every schedule below is stepped per step, with
# $T$ = epochs $\times$ steps per epoch.
#
# ### The range test as a callback
#
# The range test is not a scheduler: it has to *watch* the loss and stop the run.
# `fit_arrays` calls a callback's `on_batch_end` after every step, with a `state` holding
# the optimizer, the step's loss and a `stop` flag, which is all the test needs.
# Two details come from `fit_arrays` itself. It checks `stop` only at the end of an epoch,
# so the callback also sets the learning rate to 0 when it stops: the rest of the
# epoch then leaves the weights alone. And `fit_arrays` raises `FloatingPointError` as soon as
# a loss is not finite, which a sweep into huge learning rates can reach between
# two checks: for the range test that is divergence too, so `range_test` catches it.


# %%
class LRRangeTest(Callback):
    """The learning-rate range test (Smith, 2017) as a callback of `fit_arrays`.

    Sets the lr of step k to eq. (schedules-range-test), records (lr, loss) and the smoothed loss of
    eq. (schedules-smoothing), and stops once the smoothed loss exceeds `diverge` times its minimum.
    """

    def __init__(
        self,
        start_lr: float,
        end_lr: float,
        steps: int,
        smoothing: float = 0.9,
        diverge: float = 4.0,
    ):
        self.schedule = start_lr * (end_lr / start_lr) ** (
            np.arange(steps) / (steps - 1)
        )  # (steps,)
        self.smoothing, self.diverge = smoothing, diverge
        self.lrs, self.losses, self.smoothed = [], [], []
        self._average, self.done = 0.0, False

    @staticmethod
    def _set_lr(state, lr: float) -> None:
        for group in state.optimizer.param_groups:
            group["lr"] = lr

    def on_fit_start(self, state):
        self._set_lr(state, self.schedule[0])

    def on_batch_end(self, state):
        if self.done:
            return
        k = len(
            self.lrs
        )  # this step used lr schedule[k]; its loss was computed before its update
        self._average = (
            self.smoothing * self._average + (1 - self.smoothing) * state.loss
        )
        self.lrs.append(self.schedule[k])
        self.losses.append(state.loss)
        self.smoothed.append(self._average / (1 - self.smoothing ** (k + 1)))
        if self.smoothed[-1] > self.diverge * min(self.smoothed) or k + 1 == len(
            self.schedule
        ):
            self.done = state.stop = (
                True  # fit_arrays stops at the end of this epoch...
            )
            self._set_lr(
                state, 0.0
            )  # ...and until then, an lr of 0 leaves the weights as they are
        else:
            self._set_lr(state, self.schedule[k + 1])

    def suggestion(self, divisor: float) -> tuple[float, float]:
        """(lr at the minimum of the smoothed loss, that lr / divisor: the peak lr to train with)."""
        best = self.lrs[int(np.argmin(self.smoothed))]
        return best, best / divisor

    def steepest(self) -> float:
        """The lr where the smoothed loss falls fastest per decade of lr (before its minimum)."""
        end = int(np.argmin(self.smoothed)) + 1
        if end < 2:
            return self.lrs[0]
        slope = np.gradient(
            np.array(self.smoothed[:end]), np.log10(self.lrs[:end])
        )  # loss per decade
        return self.lrs[int(np.argmin(slope))]


# %% [markdown]
# ## Experiment
#
# ### Data and model
#
# A class-stratified subset of MNIST, flattened and standardised with the mean
# and standard deviation of the training pixels, and a multilayer perceptron with
# two hidden ReLU layers. The weights are float32: faster than float64 in NumPy,
# and SGD's own noise is far larger than float32's rounding.

# %%
x_train, y_train = data.subsample(*data.mnist("train"), cfg.n_train, seed=cfg.seed)
x_test, y_test = data.subsample(*data.mnist("test"), cfg.n_test, seed=cfg.seed)
x_train = data.as_float(x_train).reshape(len(x_train), -1)  # (N, 784) float32 in [0, 1]
x_test = data.as_float(x_test).reshape(len(x_test), -1)
mean, std = x_train.mean(), x_train.std()  # two numbers, from the training images only
x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
steps_per_epoch = math.ceil(
    len(x_train) / cfg.batch_size
)  # fit's last batch of an epoch may be smaller
total_steps = cfg.epochs * steps_per_epoch
print(
    f"train {x_train.shape}, test {x_test.shape}; {steps_per_epoch} steps per epoch, "
    f"{total_steps} in a run of {cfg.epochs} epochs"
)


def seeded_mlp(seed: int) -> nn.Sequential:
    """A fresh MLP (the engine's make_mlp), its initial weights fixed by `seed`: nn.Linear draws
    from NumPy's global generator, which seed_everything seeds."""
    utils.seed_everything(seed)
    return make_mlp([x_train.shape[1], cfg.hidden, cfg.hidden, 10], dtype=np.float32)


print(seeded_mlp(cfg.seed))


# %% [markdown]
# ### The range test
#
# One short run of `fit_arrays` with the callback, from the same kind of fresh network
# as the real runs, with the same momentum. Overflow warnings of the diverging
# end are silenced: they are the expected outcome, not a problem.


# %%
def range_test(seed: int) -> LRRangeTest:
    """Run the LR range test on the training set with a fresh MLP and SGD with momentum."""
    model = seeded_mlp(seed)
    opt = optim.SGD(model.parameters(), lr=cfg.range_start_lr, momentum=cfg.momentum)
    test = LRRangeTest(
        cfg.range_start_lr,
        cfg.range_end_lr,
        cfg.range_steps,
        cfg.range_smoothing,
        cfg.range_diverge,
    )
    epochs = math.ceil(
        cfg.range_steps / steps_per_epoch
    )  # enough epochs for every step of the sweep
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            fit_arrays(
                model,
                opt,
                x_train,
                y_train,
                epochs=epochs,
                batch_size=cfg.batch_size,
                callbacks=[test],
                seed=seed,
                verbose=False,
            )
    except (
        FloatingPointError
    ):  # the loss overflowed before the callback saw it rise: diverged
        test.done = True
    return test


started = time.perf_counter()
finder = range_test(cfg.seed)
range_seconds = time.perf_counter() - started
best_lr, peak_lr = finder.suggestion(cfg.lr_divisor)
steepest_lr = finder.steepest()
print(
    f"range test: {len(finder.lrs)} steps in {range_seconds:.1f} s, stopped at lr {finder.lrs[-1]:.3g}"
)
print(
    f"smoothed loss lowest at lr {best_lr:.3g}; peak lr to train with: {best_lr:.3g} / "
    f"{cfg.lr_divisor:g} = {peak_lr:.3g}"
)
print(
    f"the other rule of thumb, steepest fall of the smoothed loss: lr {steepest_lr:.3g}"
)


# %%
def vertical_line(
    fig, x: float, y_range: tuple, name: str, color: str, dash: str
) -> None:
    """A vertical line as a named trace: in the legend, and placed right on log axes too."""
    fig.add_trace(
        go.Scatter(
            x=[x, x],
            y=list(y_range),
            mode="lines",
            name=name,
            line=dict(color=color, dash=dash, width=1.5),
            hoverinfo="name+x",
        )
    )


top = 1.2 * max(
    finder.smoothed[0], max(finder.losses[:5])
)  # the loss before training, with headroom
fig = go.Figure()
fig.add_trace(
    go.Scatter(
        x=finder.lrs,
        y=finder.losses,
        mode="markers",
        name="loss of the step",
        marker=dict(size=4, opacity=0.5),
    )
)
fig.add_trace(
    go.Scatter(
        x=finder.lrs,
        y=finder.smoothed,
        mode="lines",
        name="smoothed, eq. (schedules-smoothing)",
    )
)
vertical_line(
    fig,
    steepest_lr,
    (0, top),
    f"steepest fall: {steepest_lr:.3g}",
    plots.COLORS[2],
    "dot",
)
vertical_line(fig, best_lr, (0, top), f"minimum: {best_lr:.3g}", "gray", "dot")
vertical_line(
    fig,
    peak_lr,
    (0, top),
    f"picked, minimum / {cfg.lr_divisor:g}: {peak_lr:.3g}",
    plots.COLORS[3],
    "dash",
)
fig.update_xaxes(
    type="log", exponentformat="power", title_text="learning rate (log scale)"
)
fig.update_yaxes(title_text="training loss (cross-entropy)", range=[0, top])
fig.update_layout(
    title="Learning-rate range test: SGD with momentum on the MLP",
    height=440,
    legend=dict(orientation="h", y=-0.25),
)
plots.show(fig, cfg.run_dir / "range_test.html")


# %% [markdown]
# Read the curve from the left: a flat stretch where the steps are too small to
# matter, a fall, a minimum, then the rise that stopped the test. The two rules of
# thumb give two candidates, the steepest fall and the minimum divided by
# `lr_divisor` (the dashed line, which we use); the run above prints both. Neither
# is exact, and they need not agree: the curve measures a sweep, not a training
# run. That is why the experiment below also trains at multiples of the picked
# peak, to see how much the choice matters.
#
# ### Four schedules, one budget
#
# Now the comparison of {cite:t}`smith2019superconvergence`, in small: the same
# MLP, the same epochs, the same peak learning rate from the range test; only the
# shape of the schedule differs. *Constant* stays at the peak; *step decay*
# divides it by 10 after a third and two thirds of the steps; *cosine* anneals it
# to zero; *one-cycle* warms up to it and anneals to far below. All four are
# stepped after every optimizer step. To see how much each shape depends on the
# picked peak, each also runs at a few multiples of it, and every
# configuration runs with several seeds (the same initial weights and batch order
# for every schedule within a seed).
#
# A callback records the learning rate each step actually used. The scheduler has
# already stepped when `on_batch_end` runs, so the callback records the rate of
# step 0 when the fit starts, then after each step the rate of the next one:


# %%
class LRRecorder(Callback):
    """lrs[k] is the learning rate of step k (of group 0)."""

    def on_fit_start(self, state):
        self.lrs = [state.optimizer.param_groups[0]["lr"]]

    def on_batch_end(self, state):
        self.lrs.append(state.optimizer.param_groups[0]["lr"])


SCHEDULES = {  # name -> the scheduler for an optimizer whose lr is the peak (None: constant)
    "constant": lambda opt, peak: None,
    "step decay": lambda opt, peak: optim.lr_scheduler.StepLR(
        opt, step_size=math.ceil(total_steps / 3), gamma=cfg.step_gamma
    ),
    "cosine": lambda opt, peak: optim.lr_scheduler.CosineAnnealingLR(
        opt, T_max=total_steps
    ),
    "one-cycle": lambda opt, peak: optim.lr_scheduler.OneCycleLR(
        opt, max_lr=peak, total_steps=total_steps
    ),
}


def train(schedule: str, peak: float, seed: int):
    """One run of fit_arrays(). Returns (History, lr of every step), or (None, lrs) if the loss overflowed."""
    model = seeded_mlp(seed)
    opt = optim.SGD(model.parameters(), lr=peak, momentum=cfg.momentum)
    recorder = LRRecorder()
    try:
        with np.errstate(
            over="ignore", invalid="ignore"
        ):  # a diverging run overflows: fit reports it
            history = fit_arrays(
                model,
                opt,
                x_train,
                y_train,
                epochs=cfg.epochs,
                batch_size=cfg.batch_size,
                val=(x_test, y_test),
                scheduler=SCHEDULES[schedule](opt, peak),
                callbacks=[recorder],
                seed=seed,
                verbose=False,
            )
    except FloatingPointError:
        return None, recorder.lrs[:-1]
    return history, recorder.lrs[:-1]  # the last entry is the lr after the final step


def final(histories, key: str) -> np.ndarray:
    """The last epoch's `key` of each run, NaN for a run that diverged."""
    return np.array([h[key][-1] if h is not None else np.nan for h in histories])


multipliers = sorted(set(cfg.lr_multipliers) | {1.0})
runs, used_lrs = (
    {},
    {},
)  # (schedule, multiplier) -> [History or None per seed]; schedule -> lrs at x1
started = time.perf_counter()
for m in multipliers:
    for name in SCHEDULES:
        results = [train(name, m * peak_lr, cfg.seed + s) for s in range(cfg.seeds)]
        runs[name, m] = [history for history, _ in results]
        if m == 1.0:
            used_lrs[name] = results[0][1]
        acc = final(runs[name, m], "val_acc")
        print(
            f"peak {m:>5g} x {peak_lr:.3g}  {name:<11} final test accuracy "
            f"{np.nanmean(acc) if not np.isnan(acc).all() else np.nan:.4f}  "
            f"({np.isnan(acc).sum()} of {cfg.seeds} diverged)"
        )
train_seconds = time.perf_counter() - started
print(f"{len(runs) * cfg.seeds} runs in {train_seconds:.1f} s")


# %% [markdown]
# The learning rate of every step, and the test loss and accuracy after every
# epoch, at the picked peak (mean over the seeds; the bars are one standard
# deviation):


# %%
def epoch_stats(histories, key: str) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation over the runs that did not diverge, per epoch."""
    values = np.array([h[key] for h in histories if h is not None])  # (runs, epochs)
    if len(values) == 0:
        return np.full(cfg.epochs, np.nan), np.full(cfg.epochs, np.nan)
    return values.mean(axis=0), values.std(axis=0)


epochs = np.arange(1, cfg.epochs + 1)
fig = make_subplots(
    rows=3,
    cols=1,
    shared_xaxes=True,
    vertical_spacing=0.06,
    subplot_titles=["learning rate of every step", "test loss", "test accuracy"],
)
for i, name in enumerate(SCHEDULES):
    color = plots.COLORS[i]
    fig.add_trace(
        go.Scatter(
            x=np.arange(len(used_lrs[name])) / steps_per_epoch,
            y=used_lrs[name],
            mode="lines",
            name=name,
            legendgroup=name,
            line=dict(color=color),
            hovertemplate="epoch %{x:.2f}: lr %{y:.3g}",
        ),
        row=1,
        col=1,
    )
    for row, key in ((2, "val_loss"), (3, "val_acc")):
        mean_, std_ = epoch_stats(runs[name, 1.0], key)
        fig.add_trace(
            go.Scatter(
                x=epochs,
                y=mean_,
                error_y=dict(array=std_, thickness=1),
                mode="lines+markers",
                name=name,
                legendgroup=name,
                showlegend=False,
                line=dict(color=color),
            ),
            row=row,
            col=1,
        )
fig.update_xaxes(title_text="epoch", row=3, col=1)
fig.update_yaxes(title_text="lr", row=1, col=1)
fig.update_yaxes(title_text="cross-entropy", row=2, col=1)
fig.update_yaxes(title_text="accuracy", row=3, col=1)
fig.update_layout(
    title=f"Four schedules, same peak lr ({peak_lr:.3g}) and {cfg.epochs} epochs",
    height=820,
    hovermode="x unified",
)
plots.show(fig, cfg.run_dir / "comparison.html")

# %%
print(
    f"after {cfg.epochs} epochs at the picked peak lr {peak_lr:.3g} ({cfg.seeds} seeds: mean +- std)"
)
print(f"{'schedule':<12}{'test accuracy':>20}{'test loss':>20}{'diverged':>10}")
table = {}
for name in SCHEDULES:
    acc, loss = final(runs[name, 1.0], "val_acc"), final(runs[name, 1.0], "val_loss")
    table[name] = dict(
        accuracy=float(np.nanmean(acc)),
        accuracy_std=float(np.nanstd(acc)),
        loss=float(np.nanmean(loss)),
        loss_std=float(np.nanstd(loss)),
        diverged=int(np.isnan(acc).sum()),
    )
    row = table[name]
    print(
        f"{name:<12}{row['accuracy']:>12.4f} +- {row['accuracy_std']:.4f}"
        f"{row['loss']:>12.4f} +- {row['loss_std']:.4f}{row['diverged']:>7} of {cfg.seeds}"
    )
print(
    f"highest final test loss: {max(table, key=lambda n: table[n]['loss'])}; best accuracy: "
    f"{max(table, key=lambda n: table[n]['accuracy'])}"
    + (
        f"; widest spread of accuracy over seeds: {max(table, key=lambda n: table[n]['accuracy_std'])}"
        if cfg.seeds > 1
        else ""
    )
)

# %% [markdown]
# The learning-rate panel shows the four shapes, all with the same peak. The
# constant learning rate ends where the noise floor of
# {eq}`schedules-noise-floor` leaves it, while the three schedules that end at a
# small learning rate settle; the toy problem predicts the constant rate to end
# with the highest test loss and the widest spread over seeds, and the last line
# under the table says whether this run agrees. One-cycle starts slowest (its
# first epoch is spent warming up, at small learning rates) and catches up once
# its learning rate is large.
#
# ### How large a peak can each schedule take?
#
# The sweep over peak learning rates: final test *error* (one minus the
# accuracy, on a log scale so that both a collapse and a tenth of a point show)
# against the peak, mean and standard deviation over seeds; a missing point means
# every seed diverged:

# %%
fig = go.Figure()
for i, name in enumerate(SCHEDULES):
    errors = [
        1 - final(runs[name, m], "val_acc") for m in multipliers
    ]  # test error of each seed
    means = [np.nanmean(e) if not np.isnan(e).all() else None for e in errors]
    stds = [np.nanstd(e) if not np.isnan(e).all() else None for e in errors]
    fig.add_trace(
        go.Scatter(
            x=[m * peak_lr for m in multipliers],
            y=means,
            error_y=dict(array=stds, thickness=1),
            mode="lines+markers",
            name=name,
            line=dict(color=plots.COLORS[i]),
        )
    )
all_errors = [
    e
    for name in SCHEDULES
    for m in multipliers
    for e in 1 - final(runs[name, m], "val_acc")
    if np.isfinite(e)
]
span = (0.8 * min(all_errors, default=0.01), 1.0)  # from below the best error to 100%
vertical_line(fig, peak_lr, span, "picked peak", "gray", "dash")
vertical_line(fig, best_lr, span, "range test's minimum", "gray", "dot")
fig.update_xaxes(type="log", title_text="peak learning rate (log scale)")
fig.update_yaxes(
    type="log",
    range=[np.log10(span[0]), 0],  # a log axis's range is given in log10 units
    title_text=f"test error after {cfg.epochs} epochs (log scale)",
)
fig.update_layout(
    title="Final test error against the peak learning rate (lower is better)",
    height=440,
    hovermode="closest",
)
plots.show(fig, cfg.run_dir / "peak_sweep.html")

sweep = {
    f"{name} x{m:g}": float(np.nanmean(final(runs[name, m], "val_acc")))
    if not np.isnan(final(runs[name, m], "val_acc")).all()
    else None
    for name in SCHEDULES
    for m in multipliers
}
best_of = {}  # schedule -> its best mean accuracy over the sweep
for name in SCHEDULES:
    scores = {
        m: sweep[f"{name} x{m:g}"]
        for m in multipliers
        if sweep[f"{name} x{m:g}"] is not None
    }
    if not scores:
        print(f"{name:<11} diverged at every peak")
        continue
    best_m = max(scores, key=scores.get)
    best_of[name] = scores[best_m]
    print(
        f"{name:<11} best at {best_m:g} x the picked peak ({best_m * peak_lr:.3g}): "
        f"test accuracy {scores[best_m]:.4f}; at the largest peak ({multipliers[-1]:g} x): "
        + (
            f"{scores[multipliers[-1]]:.4f}"
            if multipliers[-1] in scores
            else "diverged"
        )
    )
print(
    f"the largest peak of the sweep, {multipliers[-1] * peak_lr:.3g}, is "
    f"{'above' if multipliers[-1] * peak_lr > best_lr else 'below'} the range test's minimum, {best_lr:.3g}"
)
annealing = [
    best_of[name] for name in SCHEDULES if name != "constant" and name in best_of
]
if annealing and "constant" in best_of:
    print(
        f"at their best peaks, the three annealing schedules lie within "
        f"{100 * (max(annealing) - min(annealing)):.2f} points of each other; the best of them minus "
        f"the best constant lr: {100 * (max(annealing) - best_of['constant']):+.2f} points"
    )

# %% [markdown]
# This is the heart of super-convergence. A constant learning rate has to stay
# small enough to be precise at the end, so its best peak is low; the schedules
# that anneal can start higher and still finish precisely, and the larger peak
# buys faster progress in the early epochs. One-cycle, which also eases into its
# peak, is the one to watch on the right of the plot, where the peak is larger
# than the range test advised: compare how far each curve rises there. Beyond the
# range test's minimum (the run prints whether the sweep's largest peak lies
# there), no schedule is expected to train well: the minimum is a real ceiling,
# the divisor is the safety margin below it. The last printed line puts the
# differences in proportion: how close the three annealing schedules come to each
# other at their own best peaks, and how much the best of them gains over the
# best constant learning rate.
#
# ## Results
#
# This run, the recorded `full` run (all of MNIST, more seeds and peaks; run
# `python code/foundations/schedules.py --profile full` and copy
# `runs/schedules/metrics.json` to `results/schedules.json`), and the paper. The
# paper's numbers are for a 56-layer residual network on CIFAR-10, a different
# problem, so compare the pattern rather than the values: Smith and Topin's
# piecewise-constant (step) schedule peaked after about 80,000 iterations, their
# one-cycle run beat it after 10,000.

# %%
PAPER = {
    "step decay": 0.912,
    "one-cycle": 0.924,
}  # Smith & Topin (2019), Fig. 1a: ResNet-56, CIFAR-10
metrics = {
    "range_test_min_lr": best_lr,
    "peak_lr": peak_lr,
    "range_test_steps": len(finder.lrs),
    "final_test_accuracy": {name: row["accuracy"] for name, row in table.items()},
    "final_test_accuracy_std": {
        name: row["accuracy_std"] for name, row in table.items()
    },
    "final_test_loss": {name: row["loss"] for name, row in table.items()},
    "peak_sweep_test_accuracy": sweep,
    "toy_final_loss": {
        name: float(losses[-len(losses) // 10 :].mean()) for name, losses in toy.items()
    },
    "train_seconds": train_seconds,
}
rows = results_table(
    cfg,
    metrics,
    seconds=time.perf_counter() - run_started,
    title="test accuracy (± std over seeds), every schedule at the same peak lr",
    columns={
        "config.epochs": ("epochs", "d"),
        **{
            f"final_test_accuracy.{name}": (
                name,
                ".3f",
                f"final_test_accuracy_std.{name}",
            )
            for name in SCHEDULES
        },
    },
    references=[
        Reference(
            "ResNet-56, CIFAR-10",
            {f"final_test_accuracy.{name}": acc for name, acc in PAPER.items()},
            source="smith2019superconvergence",
            setting="Fig. 1a",
        )
    ],
)
assert rows[0].values["final_test_accuracy.cosine"] == table["cosine"]["accuracy"]

# %%
utils.save_run(
    cfg.run_dir / "metrics.json", cfg, metrics, time.perf_counter() - run_started
)
print(f"metrics written to {cfg.run_dir / 'metrics.json'}")

# %% [markdown]
# ## Summary
#
# - With a constant learning rate, SGD settles at a noise floor proportional to
#   the rate, eq. {eq}`schedules-noise-floor`, and takes a time inversely
#   proportional to it to get there. A schedule that starts large and ends small
#   gets both the speed and the precision.
# - Step decay, cosine annealing (with or without warm restarts), cyclical rates,
#   one-cycle and warm-up are all closed-form functions of the step; the library
#   implements them with PyTorch's interface, and `fit_arrays` steps them after every
#   optimizer step.
# - The peak matters more than the shape. The range test, eq.
#   {eq}`schedules-range-test`, finds it in one short run: sweep the learning rate
#   exponentially, watch the smoothed loss, take a learning rate a few times below
#   its minimum.
# - With a fixed small budget, schedules that anneal beat a constant rate at the
#   same peak and tolerate larger peaks, the essence of super-convergence; the
#   experiment above measures by how much on this problem.
#
# ## Exercises
#
# :::{exercise}
# :label: schedules-ex-1
# Use eq. {eq}`schedules-noise-floor` to find the constant learning rate that
# minimises the toy problem's expected loss after exactly $t = 100$ steps
# ($\theta_0 = 10$, $h = \sigma = 1$). What expected loss does that same rate give
# after 25 steps, and after 1600? Compare, for each budget, with the best constant
# rate for that budget and with a cosine from 0.5 to 0 over the budget (run
# `noisy_quadratic_sgd`).
# :::
#
# :::{solution} schedules-ex-1
# :class: dropdown
# Evaluate $\tfrac12 h\,\mathbb E[\theta_t^2]$ of {eq}`schedules-noise-floor` on a
# grid of rates:
#
# ```python
# import numpy as np
#
# def expected_loss(lr, t, theta0=10.0, h=1.0, sigma=1.0):
#     v_inf = lr * sigma**2 / (h * (2 - lr * h))
#     return 0.5 * h * ((1 - lr * h) ** (2 * t) * (theta0**2 - v_inf) + v_inf)
#
# grid = np.logspace(-3, 0, 4000)
# tuned = grid[np.argmin(expected_loss(grid, 100))]  # the best constant for 100 steps
# for t in (25, 100, 400, 1600):
#     best = grid[np.argmin(expected_loss(grid, t))]
#     cosine = 0.25 * (1 + np.cos(np.pi * np.arange(t) / t))  # from 0.5 to 0 in t steps
#     print(f"t={t:5}: tuned for 100 {expected_loss(tuned, t):.1e}, best for t {expected_loss(best, t):.1e} "
#           f"(lr {best:.3f}), cosine {noisy_quadratic_sgd(cosine, chains=20000)[-1]:.1e}")
# ```
# At $t = 100$ the best constant rate (about 0.05) and the cosine end about
# equally low. But the best constant rate depends on the budget: setting the
# derivative of $\tfrac12\theta_0^2 e^{-2\eta t} + \eta\sigma^2/4$ to zero gives
# $\eta^\star \approx \ln(4t\theta_0^2/\sigma^2)/(2t)$. The rate tuned for 100 steps
# has not finished its descent after 25 (a loss about a hundred times the best
# for that budget), and after 1600 it sits on its noise floor, about ten times
# above the best. The cosine, never tuned, stays within about a factor of two of
# the best constant rate at every budget. A schedule adapts to the length of the
# run by construction; a constant rate has to be tuned again for every length.
# :::
#
# :::{exercise}
# :label: schedules-ex-2
# Run the range test with `optim.Adam` instead of SGD with momentum (change
# `range_test`), and plot both curves on one figure. Where does Adam's curve have
# its minimum, relative to SGD's, and why?
# :::
#
# :::{solution} schedules-ex-2
# :class: dropdown
# Give `range_test` the optimizer as an argument:
#
# ```python
# def range_test_with(make_optimizer, seed=cfg.seed):
#     model = seeded_mlp(seed)
#     opt = make_optimizer(model.parameters())
#     test = LRRangeTest(1e-6, 1.0, cfg.range_steps, cfg.range_smoothing, cfg.range_diverge)
#     try:
#         with np.errstate(over="ignore", invalid="ignore"):
#             fit_arrays(model, opt, x_train, y_train, epochs=math.ceil(cfg.range_steps / steps_per_epoch),
#                 batch_size=cfg.batch_size, callbacks=[test], seed=seed, verbose=False)
#     except FloatingPointError:
#         pass
#     return test
#
# adam = range_test_with(lambda p: optim.Adam(p, lr=1e-6))
# print(adam.suggestion(cfg.lr_divisor))
# ```
# Adam's minimum sits more than an order of magnitude lower. Adam divides each
# step by the running root-mean-square of the gradient, so its step per parameter
# is about $\eta$ whatever the gradient's scale, while SGD's is $\eta$ times the
# gradient (which is small for most weights). The range test measures the
# learning rate *in the optimizer's units*: run it again whenever the optimizer,
# the model or the batch size changes.
# :::
#
# :::{exercise}
# :label: schedules-ex-3
# Add warm-up followed by cosine annealing, eq. {eq}`schedules-warmup`, as a fifth
# entry of `SCHEDULES`, with a warm-up of one epoch, and rerun the comparison.
# Then try it with the warm-up but at twice the picked peak. What does the warm-up
# change here?
# :::
#
# :::{solution} schedules-ex-3
# :class: dropdown
# ```python
# SCHEDULES["warm-up + cosine"] = lambda opt, peak: optim.lr_scheduler.SequentialLR(
#     opt, [optim.lr_scheduler.LinearLR(opt, start_factor=0.01, total_iters=steps_per_epoch),
#           optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps - steps_per_epoch)],
#     milestones=[steps_per_epoch])
# for m in (1.0, 2.0):
#     histories = [train("warm-up + cosine", m * peak_lr, cfg.seed + s)[0] for s in range(cfg.seeds)]
#     print(m, final(histories, "val_acc"))
# ```
# At the picked peak and at twice it, the warm-up changes little: with
# standardised inputs and PyTorch's initialisation, this MLP's first steps are not
# the fragile part of the run. At the largest peak of the sweep, past the range
# test's minimum, the runs go either way (a `nan` is a run that diverged): a
# warm-up postpones the large steps, it does not make a too-large peak stable.
# Warm-up pays off where the start *is* the unstable part: very large batches
# trained with a learning rate scaled up by Goyal et al.'s linear scaling rule,
# Adam's first steps (its second-moment estimate rests on a handful of batches),
# and transformers.
# :::
#
# :::{exercise}
# :label: schedules-ex-4
# Smith and Topin cycle the momentum *against* the learning rate: from 0.95 down
# to 0.85 while the learning rate rises, and back up while it falls. Write a
# `Callback` that does this alongside `OneCycleLR` (it may read the current
# learning rate and set `group["momentum"]`), and compare with the chapter's
# one-cycle runs.
# :::
#
# :::{solution} schedules-ex-4
# :class: dropdown
# The momentum can follow the learning rate linearly: high momentum at low
# learning rate, low momentum at the peak.
#
# ```python
# class CycleMomentum(Callback):
#     def __init__(self, peak, low=0.85, high=0.95):
#         self.peak, self.low, self.high = peak, low, high
#
#     def _set(self, state):
#         for group in state.optimizer.param_groups:
#             frac = group["lr"] / self.peak  # 1/25 at the start, 1 at the peak, ~0 at the end
#             group["momentum"] = self.high - (self.high - self.low) * frac
#
#     on_fit_start = on_batch_end = _set
#
# def train_cycled(seed, peak=peak_lr):
#     model = seeded_mlp(seed)
#     opt = optim.SGD(model.parameters(), lr=peak, momentum=0.95)
#     return fit_arrays(model, opt, x_train, y_train, epochs=cfg.epochs, batch_size=cfg.batch_size,
#                val=(x_test, y_test), scheduler=SCHEDULES["one-cycle"](opt, peak),
#                callbacks=[CycleMomentum(peak)], seed=seed, verbose=False)
#
# print([train_cycled(cfg.seed + s)["val_acc"][-1] for s in range(cfg.seeds)])
# ```
# The effective step of SGD with momentum is about $\eta / (1 - \mu)$: lowering
# $\mu$ while $\eta$ peaks keeps the effective step from growing as much, and
# raising it at the end speeds up the annealing. On this problem the effect is
# within the seed-to-seed spread; Smith and Topin report it as a small but
# consistent gain on their networks.
# :::
#
# :::{exercise}
# :label: schedules-ex-5
# Call `fit_arrays` with `scheduler=CosineAnnealingLR(opt, T_max=total_steps)` but
# `scheduler_interval="epoch"`. What learning rate does the last epoch use? And
# what happens with `OneCycleLR(opt, max_lr=peak_lr, total_steps=total_steps)`
# stepped per epoch?
# :::
#
# :::{solution} schedules-ex-5
# :class: dropdown
# Stepped once per epoch, the scheduler advances `cfg.epochs` steps out of
# `total_steps`, so the cosine barely leaves its peak: at the last epoch its
# factor is $\tfrac12(1 + \cos(\pi\,(E - 1)/T))$, practically 1, and the run is a
# constant learning rate in disguise. One-cycle is worse: it barely leaves its
# starting value $\eta_{\max}/25$, the warm-up never finishes, and the run is a
# constant *small* learning rate. The remedy is to give a scheduler its length
# in the unit it is stepped in: `T_max=cfg.epochs` for a per-epoch schedule,
# `total_steps` for a per-step one.
#
# ```python
# model = seeded_mlp(cfg.seed)
# opt = optim.SGD(model.parameters(), lr=peak_lr, momentum=cfg.momentum)
# sched = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
# history = fit_arrays(model, opt, x_train, y_train, epochs=cfg.epochs, batch_size=cfg.batch_size,
#               scheduler=sched, scheduler_interval="epoch", verbose=False)
# print(history["lr"])  # all close to peak_lr
# ```
# :::
#
# ## References
#
# ```{bibliography}
# :filter: docname in docnames
# ```
