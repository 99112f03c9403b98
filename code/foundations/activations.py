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
# (activations)=
# # Activation functions
#
# The networks so far put a ReLU or a tanh between their linear layers, and we
# never asked why those two. This chapter asks. The activation function is the
# only nonlinear part of a multilayer perceptron, and its derivative is a factor
# in every path that a gradient takes back through the network: stack thirty
# layers and whatever the derivative does, it does thirty times. We meet the
# classic functions (sigmoid and tanh), the rectifiers (ReLU, leaky ReLU, ELU), the
# self-normalizing SELU and the smooth GELU and SiLU of today's transformers; we
# plot each with its derivative, and then measure, with the engine of
# {doc}`autograd`, what they do to a deep network: how gradients flow through it
# at initialization, how well it trains, how many of its units saturate, and how
# ReLU units die.

# %% tags=["hide-input"]
import time
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from scipy.special import log_ndtr, ndtr

import scratch.engine.functional as F
from scratch import data, plots, utils
from scratch.config import Config, ConfigError, positive, unit_interval
from scratch.engine import Tensor, nn, no_grad, optim
from scratch.engine.loop import Callback, fit_arrays
from scratch.engine.models import make_mlp
from scratch.results import Reference, results_table


@dataclass
class ActivationsConfig(Config):
    NAME = "activations"

    # ---- data
    n_train: int = field(
        default=8000,
        metadata=positive(
            "MNIST training images (a seeded, class-stratified subset; all of the offline stand-in's 8000): "
            "enough for 90%+ in a few epochs, so the differences are the activations'"
        ),
    )
    n_test: int = field(
        default=2000,
        metadata=positive(
            "test images scored after every epoch: 2000 pin an accuracy down to about +-1 point (95%)"
        ),
    )
    # ---- experiment 1: gradient flow at initialization
    flow_depth: int = field(
        default=30,
        metadata=positive(
            "hidden layers of the untrained probe network: at 30, a factor of 1/4 per layer (sigmoid's best) "
            "is 1e-18, while a well-matched activation keeps its gradients within a small factor"
        ),
    )
    flow_width: int = field(
        default=128,
        metadata=positive(
            "units per hidden layer of the probe: wide enough for the variance arguments (sums of many terms) "
            "to hold, cheap in float64"
        ),
    )
    flow_batch: int = field(
        default=256,
        metadata=positive(
            "training images in the probe's batch: the loss is their mean cross-entropy"
        ),
    )
    flow_inits: int = field(
        default=3,
        metadata=positive(
            "random initializations per activation; gradient norms are averaged geometrically (on a log scale)"
        ),
    )
    # ---- experiment 2: training comparison
    train_depth: int = field(
        default=8,
        metadata=positive(
            "linear layers of the trained MLP (so train_depth - 1 activations): deep enough that sigmoid "
            "stalls, shallow enough to train every activation several times on a CPU"
        ),
    )
    train_width: int = field(
        default=64,
        metadata=positive(
            "units per hidden layer of the trained MLP: 64 reach 90%+ on MNIST and keep a run under a second"
        ),
    )
    epochs: int = field(
        default=6,
        metadata=positive(
            "passes over the training images: the well-matched activations are past 90% by then"
        ),
    )
    batch_size: int = field(
        default=64,
        metadata=positive("images per SGD step: 125 steps per epoch on 8000 images"),
    )
    lr: float = field(
        default=0.02,
        metadata=positive(
            "SGD step size, the same for every activation (not tuned for any): about the largest at which "
            "no activation diverged in our trials"
        ),
    )
    momentum: float = field(
        default=0.9, metadata=unit_interval("SGD momentum: the usual 0.9")
    )
    n_seeds: int = field(
        default=3,
        metadata=positive(
            "trainings per activation (initializations and batch orders); the spread over seeds is the noise"
        ),
    )
    # ---- experiment 3: saturation and sparsity
    blocked: float = field(
        default=0.02,
        metadata=unit_interval(
            "a unit is 'blocked' when phi'(z) < blocked * (phi's largest slope): 0.02 makes it |tanh| > 0.99 for tanh"
        ),
    )
    n_probe: int = field(
        default=1000,
        metadata=positive(
            "images on which saturation is measured and on which a unit must be silent to count as dead"
        ),
    )
    # ---- experiment 4: dying ReLU
    leaky_slope: float = field(
        default=0.01,
        metadata=unit_interval(
            "negative slope of the leaky ReLU: Maas et al.'s and PyTorch's default"
        ),
    )
    dying_lrs: tuple[float, ...] = field(
        default=(0.01, 0.05, 0.1, 0.2),
        metadata=positive(
            "SGD learning rates of the ladder: from safe to far too large for this ReLU network"
        ),
    )
    dying_depth: int = field(
        default=5,
        metadata=positive(
            "linear layers of the dying-ReLU network: a smaller copy of the trained MLP"
        ),
    )
    dying_epochs: int = field(
        default=3,
        metadata=positive(
            "epochs of each ladder run: units die in the first hundred steps or not at all"
        ),
    )
    probe_every: int = field(
        default=25, metadata=positive("steps between two counts of the dead units")
    )
    shock_fraction: float = field(
        default=0.5,
        metadata=unit_interval(
            "share of the first layer's units knocked out by the simulated bad update"
        ),
    )
    shock_margin: float = field(
        default=0.5,
        metadata=positive(
            "how far below zero the knocked-out units' largest pre-activation is pushed"
        ),
    )
    shock_lr: float = field(
        default=0.1,
        metadata=positive(
            "plain-SGD step size after the knock-out: a safe one; the point is what happens next"
        ),
    )
    shock_epochs: int = field(
        default=4,
        metadata=positive(
            "epochs of the knock-out runs; the knock-out comes after the first"
        ),
    )
    shock_slopes: tuple[float, ...] = field(
        default=(0.01, 0.1),
        metadata=positive(
            "negative slopes of the leaky ReLUs compared with ReLU after the knock-out"
        ),
    )

    PROFILES = {
        "tiny": dict(
            threads=1,
            n_train=600,
            n_test=200,
            flow_depth=6,
            flow_width=32,
            flow_batch=64,
            flow_inits=1,
            train_width=32,
            epochs=1,
            n_seeds=1,
            n_probe=200,
            dying_lrs=(0.05, 0.2),
            dying_epochs=1,
            probe_every=5,
            shock_epochs=2,
        ),  # tests: seconds
        "small": dict(threads=1),  # the book build: about half a minute of CPU
        "full": dict(
            n_train=60000,
            n_test=10000,
            flow_depth=50,
            flow_width=256,
            flow_inits=10,
            train_width=128,
            epochs=20,
            n_seeds=5,
            dying_epochs=5,
            probe_every=100,
            shock_epochs=10,
        ),  # all of MNIST; NumPy on a CPU, an hour or so
    }

    def validate(self):
        for name in ("batch_size", "n_probe"):
            if getattr(self, name) > self.n_train:
                raise ConfigError(
                    f"{name}={getattr(self, name)} exceeds n_train={self.n_train}"
                )
        if min(self.train_depth, self.dying_depth) < 2:
            raise ConfigError(
                "train_depth and dying_depth need at least 2 linear layers (one activation)"
            )
        if self.shock_epochs < 2:
            raise ConfigError(
                f"shock_epochs={self.shock_epochs}: the knock-out comes after epoch 1, "
                "so at least 2 are needed"
            )
        if self.blocked == 0:
            raise ConfigError("blocked must be > 0: a threshold of 0 counts nothing")


cfg = ActivationsConfig.from_cli()
utils.seed_everything(cfg.seed)
run_started = time.perf_counter()


# %% [markdown]
# ## Motivation: the one nonlinear part
#
# Without activations a network collapses: a product of linear maps is one linear
# map, so a hundred layers compute no more than one. The multilayer perceptron of
# {doc}`mlp` needs *some* nonlinearity $\varphi$ between its layers, and the
# universal approximation theorems say that almost any will do, given enough
# units. So why does the choice matter?
#
# Because of depth. The gradient that reaches the first layer of a deep network is
# a product with one factor per layer, and one part of each factor is $\varphi'$.
# If $\varphi'$ is typically below 1 the product vanishes; if the layers amplify,
# it explodes; if $\varphi'$ is exactly zero for a unit on every input, that unit
# never learns again. For two decades the standard activations were the sigmoid
# and tanh, and deep networks with them were famously hard to train
# {cite:p}`bengio1994learning,glorot2010understanding`. The rectifier
# {cite:p}`nair2010rectified,glorot2011deep` was one of the changes that made
# depth work, and it has its own failure mode. Each later activation removes one
# problem of the one before; this chapter measures which.
#
# ## Theory
#
# ### The derivative is a factor in every backward path
#
# Write a plain MLP as $z_l = W_l h_{l-1} + b_l$, $h_l = \varphi(z_l)$ for
# $l = 1, \dots, L$, with $h_0 = x$ and a loss $\mathcal L$ of the last layer. By
# the chain rule of {doc}`autograd`, the gradient with respect to the
# pre-activations obeys
#
# $$
# \delta_l = \frac{\partial \mathcal L}{\partial z_l}
# = \varphi'(z_l) \odot \big(W_{l+1}^{\top} \delta_{l+1}\big),
# \qquad
# \frac{\partial \mathcal L}{\partial W_l} = \delta_l\, h_{l-1}^{\top},
# $$ (activations-backprop)
#
# so $\delta_1$ is $\delta_L$ multiplied by $L - 1$ weight matrices and $L - 1$
# diagonal matrices $\mathrm{diag}(\varphi'(z_l))$. Taking norms,
#
# $$
# \|\delta_1\| \;\le\; \|\delta_L\| \prod_{l=1}^{L-1} \|W_{l+1}\|\,\max_i |\varphi'(z_{l,i})| .
# $$ (activations-vanishing)
#
# The weights' part of this product is the business of initialization, which picks
# the scale of $W_l$ so that each factor is about 1. The activation's part is a
# number of at most $\sup_z |\varphi'(z)|$ per layer, and *typically* the mean of
# $\varphi'^2$ over the layer's units, which is what an initialization has to
# compensate. When it cannot, because $\varphi'$ is small everywhere or zero for a
# unit on every input, the gradient of the early layers vanishes
# {cite:p}`bengio1994learning`.
#
# ### Sigmoid and tanh: saturation
#
# The logistic sigmoid and the hyperbolic tangent,
#
# $$
# \sigma(z) = \frac{1}{1 + e^{-z}}, \quad \sigma'(z) = \sigma(z)\,\big(1 - \sigma(z)\big) \le \tfrac14;
# \qquad
# \tanh(z) = 2\sigma(2z) - 1, \quad \tanh'(z) = 1 - \tanh^2(z) \le 1,
# $$ (activations-sigmoid-tanh)
#
# are smooth, bounded and were long the default, the sigmoid for its reading as a
# firing rate. Both *saturate*: for $|z|$ of a few units the output is pinned
# near its bound and the derivative is nearly 0, so a unit that is driven hard
# passes back almost no gradient. The sigmoid has two more handicaps. Its largest
# slope is $1/4$, so by {eq}`activations-vanishing` each layer shrinks the
# gradient by a factor of 4 at least, unless the weights make up for it; and its outputs are all
# positive, with mean near $1/2$, which biases the next layer's inputs and makes
# all the gradients of one unit's incoming weights share a sign.
# {cite:t}`lecun1998efficient` recommended tanh for both reasons, and
# {cite:t}`glorot2010understanding` watched the top sigmoid layer of a deep
# network saturate at 0 early in training.
#
# ### ReLU: no saturation on one side, and the dying unit
#
# The rectified linear unit {cite:p}`nair2010rectified,glorot2011deep`
#
# $$
# \operatorname{relu}(z) = \max(z, 0), \qquad \operatorname{relu}'(z) = [z > 0]
# $$ (activations-relu)
#
# has derivative exactly 1 wherever it is active: a gradient passes through an
# active unit undiminished, however deep the network, and the matching
# initialization ({cite:t}`he2015delving`, weight variance $2/n_{\text{in}}$, since
# the ReLU keeps half of a symmetric input's second moment) keeps signals at one
# scale. Its other side is exactly 0: about half the units are off on any given
# input, a *sparse* representation {cite:p}`glorot2011deep`, cheap to compute.
#
# The flat side has a price. If a unit's pre-activation is negative on *every*
# training input, its derivative is 0 everywhere, by {eq}`activations-backprop`
# its incoming weights and bias get zero gradient, and nothing in gradient
# descent will ever change them: the unit is *dead*. A single large update that
# pushes a unit's bias far down is enough, so large learning rates kill ReLUs.
#
# ### Leaky ReLU, ELU and SELU: a negative side that learns
#
# The leaky ReLU {cite:p}`maas2013rectifier` keeps a small slope $a$ (0.01 in the
# paper) on the negative side, and the exponential linear unit
# {cite:p}`clevert2016fast` a smooth curve that saturates at $-\alpha$:
#
# $$
# \operatorname{leaky}_a(z) = \begin{cases} z & z > 0 \\ a z & z \le 0 \end{cases},
# \qquad
# \operatorname{elu}_\alpha(z) = \begin{cases} z & z > 0 \\ \alpha\,(e^z - 1) & z \le 0 \end{cases}.
# $$ (activations-leaky-elu)
#
# Neither can die: their derivative is positive everywhere. The ELU's negative
# outputs also pull the mean activation towards zero, which
# {cite:t}`clevert2016fast` argue speeds up learning, as centering does.
#
# {cite:t}`klambauer2017self` asked for more: an activation that *normalizes* the
# signal by itself. Take a layer with weights normalized so that
# $\sum_i w_i = \omega = 0$ and $\sum_i w_i^2 = \tau = 1$ (what LeCun
# initialization, variance $1/n_{\text{in}}$, gives on average), and inputs of mean
# $\mu$ and variance $\nu$. By the central limit theorem the pre-activation is
# about $z \sim \mathcal N(\mu\omega, \nu\tau)$, and the scaled ELU
# $\operatorname{selu}(z) = \lambda\, \operatorname{elu}_\alpha(z)$ maps the
# moments of one layer to those of the next:
#
# $$
# (\mu, \nu) \;\mapsto\; \big(\tilde\mu, \tilde\nu\big) =
# \Big(\mathbb E[\operatorname{selu}(z)],\; \operatorname{Var}[\operatorname{selu}(z)]\Big),
# \qquad z \sim \mathcal N(\mu\omega, \nu\tau).
# $$ (activations-selu-map)
#
# The two constants $\lambda \approx 1.0507$ and $\alpha \approx 1.6733$ are the
# unique values for which $(0, 1)$ is a fixed point of this map; the paper shows
# that it is also *attracting* (the Jacobian at the fixed point has spectral norm
# below 1), so a deep stack of SELU layers drives every layer's activations
# towards mean 0 and variance 1 without any normalization layer. We check both
# claims numerically below.
#
# ### GELU and SiLU: smooth rectifiers
#
# The Gaussian error linear unit {cite:p}`hendrycks2016gaussian` weighs its input by
# the probability that a standard normal variable is below it, and the sigmoid-weighted
# linear unit (SiLU) does the same with the logistic function instead of the normal
# CDF $\Phi$:
#
# $$
# \operatorname{gelu}(z) = z\,\Phi(z) \approx \tfrac12 z\Big(1 + \tanh\big(\sqrt{2/\pi}\,(z + 0.044715 z^3)\big)\Big),
# \qquad
# \operatorname{silu}(z) = z\,\sigma(z).
# $$ (activations-gelu-silu)
#
# The tanh form is the approximation the GELU paper proposed (and GPT-2 used) when
# $\mathrm{erf}$ was slow. SiLU was proposed in the GELU paper and for
# reinforcement learning {cite:p}`elfwing2018sigmoid`, and rediscovered by an
# automated search over activation functions as *swish*
# {cite:p}`ramachandran2017searching`. Both behave like ReLU for large $|z|$, but are
# smooth, slightly non-monotonic (a small dip below zero for negative $z$) and
# have slope $1/2$ at the origin, not 1. GELU is the activation of BERT and the GPT
# models; SiLU that of many vision networks and, in gated form, of recent language
# models.
#
# ### Matching the initialization
#
# Each activation comes with the weight scale that keeps the variance of
# {eq}`activations-backprop`'s factors at 1: {cite:t}`glorot2010understanding`'s
# $2/(n_{\text{in}} + n_{\text{out}})$ for tanh and sigmoid (derived for the
# linear regime of tanh), {cite:t}`he2015delving`'s $2/n_{\text{in}}$ for ReLU and
# its relatives, and LeCun's $1/n_{\text{in}}$ {cite:p}`lecun1998efficient` for
# SELU, which its fixed point assumes. We use these pairings throughout, as the libraries recommend; the
# experiments will show where a pairing is only approximately right.
#
# ## Implementation
#
# Every activation is one fused node of the engine (one `_make` call with a
# hand-written derivative). ReLU, sigmoid and tanh are `Tensor` methods; the
# sigmoid is computed as $\tfrac12(1 + \tanh(z/2))$, which cannot overflow for large
# negative $z$ where $e^{-z}$ would:
#
# ```{literalinclude} ../../code/scratch/engine/tensor.py
# :pyobject: Tensor.relu
# ```
#
# ```{literalinclude} ../../code/scratch/engine/tensor.py
# :pyobject: Tensor.sigmoid
# ```
#
# The others live in `scratch.engine.functional`, the leaky ReLU with its
# derivative written out:
#
# ```{literalinclude} ../../code/scratch/engine/functional.py
# :pyobject: leaky_relu
# ```
#
# ELU and SELU share one function; `expm1` computes $e^z - 1$ without the
# cancellation that $e^z - 1$ suffers near $z = 0$:
#
# ```{literalinclude} ../../code/scratch/engine/functional.py
# :pyobject: _elu
# ```
#
# ```{literalinclude} ../../code/scratch/engine/functional.py
# :pyobject: selu
# ```
#
# GELU in both forms of {eq}`activations-gelu-silu`, and SiLU, whose derivative
# $\sigma(z)\,(1 + z(1 - \sigma(z)))$ reuses the forward pass's $\sigma(z)$:
#
# ```{literalinclude} ../../code/scratch/engine/functional.py
# :pyobject: gelu
# ```
#
# ```{literalinclude} ../../code/scratch/engine/functional.py
# :pyobject: silu
# ```
#
# For the experiments, a table of the eight activations, each with its `nn`
# module and the initialization that goes with it (from `nn.init`), and one
# function that builds an MLP for any of them. Every network built with the same
# `seed` starts from the *same* standard normal draws, scaled by its own
# initialization, so the comparisons are paired.


# %%
class Activation(NamedTuple):
    label: str  # the name in plots and tables
    module: Callable  # () -> nn.Module
    init: str  # the weight initialization that goes with it


ACTIVATIONS = {
    "sigmoid": Activation("sigmoid", nn.Sigmoid, "xavier"),
    "tanh": Activation("tanh", nn.Tanh, "xavier"),
    "relu": Activation("ReLU", nn.ReLU, "he"),
    "leaky_relu": Activation(
        f"leaky ReLU ({cfg.leaky_slope})", lambda: nn.LeakyReLU(cfg.leaky_slope), "he"
    ),
    "elu": Activation("ELU", nn.ELU, "he"),
    "selu": Activation("SELU", nn.SELU, "lecun"),
    "gelu": Activation("GELU", nn.GELU, "he"),
    "silu": Activation("SiLU", nn.SiLU, "he"),
}
INITS = {  # weight (out, in) -> filled in place, from the generator g
    "xavier": lambda w, g: nn.init.xavier_normal_(w, generator=g),  # var 2 / (in + out)
    "he": lambda w, g: nn.init.kaiming_normal_(
        w, nonlinearity="relu", generator=g
    ),  # var 2 / in
    "lecun": lambda w, g: nn.init.lecun_normal_(w, generator=g),  # var 1 / in
}
COLOR = dict(
    zip(ACTIVATIONS, plots.COLORS)
)  # one colour per activation in every figure
DASH = {
    name: "dash" if name == "leaky_relu" else "solid" for name in ACTIVATIONS
}  # it often lies on ReLU


def activation_mlp(
    name: str, widths: list, seed: int, dtype=np.float32
) -> nn.Sequential:
    """The engine's make_mlp, widths[0] -> widths[1] -> ..., with activation `name` between the layers,
    initialised for it: biases 0, weights by ACTIVATIONS[name].init from a generator seeded by `seed`."""
    act = ACTIVATIONS[name]
    return make_mlp(
        widths, act.module, init_weight=INITS[act.init], seed=seed, dtype=dtype
    )


def derivative(module, z: np.ndarray) -> np.ndarray:
    """phi'(z), elementwise, from the engine's backward: the gradient of sum(phi(z)) with respect to z."""
    z = Tensor(z, requires_grad=True)
    module(z).sum().backward()
    return z.grad


print(activation_mlp("selu", [784, 64, 64, 10], seed=0))

# %% [markdown]
# ### Each activation and its derivative
#
# The derivatives below are not written by hand: they are the engine's backward
# passes, through `derivative` above. Pick one activation from the menu, or click
# the legend to hide and show curves.

# %%
z_grid = np.linspace(-5, 5, 401)  # odd count: z = 0 is the middle point
curves = {
    name: (act.module()(Tensor(z_grid)).data, derivative(act.module(), z_grid))
    for name, act in ACTIVATIONS.items()
}

fig = make_subplots(
    rows=1, cols=2, subplot_titles=["activation phi(z)", "derivative phi'(z)"]
)
for name, (values, slopes) in curves.items():
    style = dict(
        name=ACTIVATIONS[name].label,
        legendgroup=name,
        line=dict(color=COLOR[name], dash=DASH[name]),
    )
    # float32 halves the page's size and is exact enough to draw
    fig.add_trace(
        go.Scatter(x=z_grid.astype(np.float32), y=values.astype(np.float32), **style),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=z_grid.astype(np.float32),
            y=slopes.astype(np.float32),
            showlegend=False,
            **style,
        ),
        row=1,
        col=2,
    )
n = len(curves)
buttons = [dict(label="all", method="update", args=[{"visible": [True] * 2 * n}])]
buttons += [
    dict(
        label=ACTIVATIONS[name].label,
        method="update",
        args=[{"visible": [j // 2 == i for j in range(2 * n)]}],
    )
    for i, name in enumerate(curves)
]
fig.update_layout(
    title="Eight activation functions and their derivatives",
    height=430,
    hovermode="x unified",
    updatemenus=[dict(buttons=buttons, x=1.02, y=0, xanchor="left", yanchor="bottom")],
)
fig.update_xaxes(title_text="pre-activation z")
fig.update_yaxes(range=[-2, 3], row=1, col=1)
fig.update_yaxes(range=[-0.2, 1.9], row=1, col=2)
plots.show(fig, cfg.run_dir / "activations.html")

print(f"{'':22}{'largest slope':>14}{'slope at 0':>12}{'phi(-5)':>10}")
for name, (values, slopes) in curves.items():
    print(
        f"{ACTIVATIONS[name].label:22}{slopes.max():>14.4f}{slopes[len(z_grid) // 2]:>12.4f}"
        f"{values[0]:>10.4f}"
    )

# %% [markdown]
# The table confirms {eq}`activations-sigmoid-tanh`: the sigmoid's slope never
# exceeds $1/4$. SELU's largest slope, $\lambda\alpha$, sits just left of the
# origin (at $z = 0$ the engine, like PyTorch, takes the left branch); GELU and
# SiLU exceed 1 a little on the positive side, where they overshoot before
# settling on slope 1.
#
# How good is GELU's tanh approximation, and the cheaper $z\,\sigma(1.702 z)$ that
# the GELU paper also suggests?

# %%
z_wide = np.linspace(-8, 8, 16001)
gelu_exact = nn.GELU()(Tensor(z_wide)).data
gelu_tanh = nn.GELU(approximate="tanh")(Tensor(z_wide)).data
gelu_sigmoid = (Tensor(z_wide) * Tensor(1.702 * z_wide).sigmoid()).data
print(
    f"max |gelu - tanh approximation|         = {np.abs(gelu_exact - gelu_tanh).max():.1e}"
)
print(
    f"max |gelu - z sigmoid(1.702 z)|         = {np.abs(gelu_exact - gelu_sigmoid).max():.1e}"
)
print(
    f"max |gelu' - tanh approximation's slope| = "
    f"{np.abs(derivative(nn.GELU(), z_wide) - derivative(nn.GELU(approximate='tanh'), z_wide)).max():.1e}"
)


# %% [markdown]
# The tanh form is the close one; the sigmoid form is visibly cruder. Both exist
# because $\mathrm{erf}$ used to be slow on accelerators; with a fast $\mathrm{erf}$
# the exact form costs little more.
#
# ### SELU's fixed point, numerically
#
# For $z \sim \mathcal N(m, s^2)$ every term of the map {eq}`activations-selu-map`
# has a closed form through the normal CDF $\Phi$ and density $\phi$:
# $\mathbb E[z;\, z > 0] = m\Phi(m/s) + s\phi(m/s)$,
# $\mathbb E[z^2;\, z > 0] = (m^2 + s^2)\Phi(m/s) + ms\phi(m/s)$ and
# $\mathbb E[e^{kz};\, z \le 0] = e^{km + k^2 s^2/2}\,\Phi(-(m + k s^2)/s)$.
# Assembled (a throwaway function, for this section only):


# %%
def selu_moments(mu, nu, omega=0.0, tau=1.0):
    """(mean, variance) of selu(z) for z ~ N(mu * omega, nu * tau): the map (activations-selu-map)."""
    lam, alpha = F.SELU_SCALE, F.SELU_ALPHA
    m, s = mu * omega, np.sqrt(nu * tau)
    p_pos = ndtr(m / s)  # P(z > 0)
    pdf = np.exp(-0.5 * (m / s) ** 2) / np.sqrt(2 * np.pi)
    z1 = m * p_pos + s * pdf  # E[z; z > 0]
    z2 = (m**2 + s**2) * p_pos + m * s * pdf  # E[z^2; z > 0]
    e1 = np.exp(
        m + s**2 / 2 + log_ndtr(-(m + s**2) / s)
    )  # E[e^z; z <= 0], in logs: no overflow
    e2 = np.exp(2 * m + 2 * s**2 + log_ndtr(-(m + 2 * s**2) / s))  # E[e^2z; z <= 0]
    mean = lam * (z1 + alpha * (e1 - (1 - p_pos)))
    second = lam**2 * (z2 + alpha**2 * (e2 - 2 * e1 + (1 - p_pos)))
    return mean, second - mean**2


# The formula against a million samples through the engine's selu
sample = np.random.default_rng(cfg.seed).normal(0.3, 1.2, 1_000_000)
out = F.selu(Tensor(sample)).data
print(
    f"z ~ N(0.3, 1.2^2): formula mean {selu_moments(1, 1.44, 0.3)[0]:.4f}, var {selu_moments(1, 1.44, 0.3)[1]:.4f}; "
    f"samples mean {out.mean():.4f}, var {out.var():.4f}"
)
# A million samples pin the mean down to its standard error sqrt(var / n), ~1e-3, and the variance
# to sqrt(var((out - mean)^2) / n): the formula must fall within 5 of them (measured 1.1 and 0.9).
formula_mean, formula_var = selu_moments(1, 1.44, 0.3)
mean_se, var_se = (
    np.sqrt(out.var() / out.size),
    np.sqrt(((out - out.mean()) ** 2).var() / out.size),
)
assert abs(out.mean() - formula_mean) <= 5 * mean_se, (
    "the SELU mean formula disagrees with the samples"
)
assert abs(out.var() - formula_var) <= 5 * var_se, (
    "the SELU variance formula disagrees with the samples"
)

mu_fixed, nu_fixed = selu_moments(0.0, 1.0)
print(
    f"g(0, 1) = ({mu_fixed:.2e}, {nu_fixed:.15f}): a fixed point to float64's precision"
)
# SELU's constants are given to 16 digits, so (0, 1) is fixed to ~1e-16 (measured 1.7e-16 for the
# mean, 3.3e-16 for the variance); 1e-12 allows for the rounding of the closed forms.
assert abs(mu_fixed) <= 1e-12 and abs(nu_fixed - 1) <= 1e-12, (
    f"(0, 1) is not fixed: {mu_fixed}, {nu_fixed}"
)

h = 1e-5  # central differences for the Jacobian of g at the fixed point
g = lambda mu, nu: np.array(selu_moments(mu, nu))
jacobian = np.stack(
    [(g(h, 1) - g(-h, 1)) / (2 * h), (g(0, 1 + h) - g(0, 1 - h)) / (2 * h)], axis=1
)
selu_norm = np.linalg.norm(jacobian, 2)
print(
    "Jacobian of g at (0, 1):\n",
    np.array2string(jacobian, precision=6, suppress_small=True),
)
print(f"spectral norm {selu_norm:.4f} (< 1: the fixed point attracts)")

# %% [markdown]
# The first column is zero because with $\omega = 0$ the next layer's inputs do not
# depend on this layer's mean. The Jacobian and its norm are the ones
# {cite:t}`klambauer2017self` report for this case. Iterating the variance map
# from a small and a large start shows the attraction (a *cobweb* plot: up to the
# curve, across to the diagonal, and again):

# %%
nu_axis = np.linspace(0.05, 3.0, 300)
fig = go.Figure(
    [
        go.Scatter(
            x=nu_axis,
            y=selu_moments(0.0, nu_axis)[1],
            name="SELU: variance out",
            line=dict(color=COLOR["selu"]),
        ),
        go.Scatter(
            x=nu_axis,
            y=selu_moments(0.0, nu_axis)[0],
            name="SELU: mean out",
            line=dict(color=COLOR["selu"], dash="dot"),
        ),
        go.Scatter(
            x=nu_axis,
            y=nu_axis,
            name="no change (diagonal)",
            line=dict(color="grey", width=1),
        ),
    ]
)
for start in (0.1, 2.9):  # cobweb: up to the curve, across to the diagonal, repeat
    xs, ys, nu = [start], [0.0], start
    for _ in range(8):
        nxt = selu_moments(0.0, nu)[1]
        xs += [nu, nxt]
        ys += [nxt, nxt]
        nu = nxt
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=ys,
            mode="lines+markers",
            marker=dict(size=4),
            name=f"iterations from variance {start}",
            line=dict(width=1),
        )
    )
fig.update_layout(
    title="SELU's layer-to-layer map (weights with omega = 0, tau = 1)",
    xaxis_title="variance of the layer's input, nu",
    yaxis_title="moment of the layer's output",
    height=450,
)
plots.show(fig, cfg.run_dir / "selu_map.html")

# %% [markdown]
# The SELU curve crosses the diagonal at $\nu = 1$ with slope below 1, so the
# iterations converge to it from both sides, and the mean goes to 0 there. A ReLU
# layer with He initialization is different in kind: it preserves the second
# moment of its pre-activations *whatever* it is (ReLU is positively homogeneous,
# $\operatorname{relu}(cz) = c \operatorname{relu}(z)$ for $c > 0$), so every scale is a
# fixed point and none attracts: nothing pulls a drifted signal back.
#
# ## Experiment
#
# The data: MNIST digits, flattened to 784 pixels and standardized with the
# training set's mean and standard deviation. (Where the book is built offline,
# MNIST is a stand-in with fewer images than the real one; the run prints the sizes.)

# %%
x_all, y_all = data.mnist("train")
x_train, y_train = data.subsample(x_all, y_all, cfg.n_train, seed=cfg.seed)
x_all, y_all = data.mnist("test")
x_test, y_test = data.subsample(x_all, y_all, cfg.n_test, seed=cfg.seed)
x_train = data.as_float(x_train).reshape(len(x_train), -1)  # (N, 784) float32 in [0, 1]
x_test = data.as_float(x_test).reshape(len(x_test), -1)
pixel_mean, pixel_std = x_train.mean(), x_train.std()
x_train, x_test = (x_train - pixel_mean) / pixel_std, (x_test - pixel_mean) / pixel_std
print(f"train {x_train.shape}, test {x_test.shape}, {len(np.unique(y_train))} classes")


def hidden_preactivations(model, x: np.ndarray) -> list:
    """The input z of every activation of `model` on the batch x: one (N, width) array per hidden layer."""
    pre, h = [], Tensor(x)
    with no_grad():
        for layer in model:
            if not isinstance(layer, nn.Linear):
                pre.append(h.data)
            h = layer(h)
    return pre


# %% [markdown]
# ### 1. Gradient flow at initialization
#
# A deep, untrained network for each activation, with its matching initialization:
# 784 inputs, the configured number of hidden layers, 10 logits, in float64. One
# forward pass on a batch of training images, one backward pass of the
# cross-entropy, and then, for every layer, the norm of the weight gradient
# $\|\partial \mathcal L / \partial W_l\|$ of {eq}`activations-backprop` and the
# spread (standard deviation) of the layer's activations.

# %%
x_flow, y_flow = x_train[: cfg.flow_batch].astype(np.float64), y_train[: cfg.flow_batch]
flow_widths = [x_train.shape[1]] + [cfg.flow_width] * cfg.flow_depth + [10]


def probe(name: str, seed: int):
    """(weight-gradient norm per linear layer, (mean, std) of each activation's output) at initialization."""
    model = activation_mlp(name, flow_widths, seed, dtype=np.float64)
    h, outputs = Tensor(x_flow), []
    for layer in model:
        h = layer(h)
        if not isinstance(layer, nn.Linear):
            outputs.append(h.data)
    F.cross_entropy(h, y_flow).backward()
    grads = [
        np.linalg.norm(layer.weight.grad)
        for layer in model
        if isinstance(layer, nn.Linear)
    ]
    return np.array(grads), np.array([(o.mean(), o.std()) for o in outputs])


flow = {}
for name in ACTIVATIONS:
    runs = [probe(name, cfg.seed * 1000 + k) for k in range(cfg.flow_inits)]
    grads = np.exp(
        np.mean([np.log(np.maximum(r[0], 1e-300)) for r in runs], axis=0)
    )  # geometric mean
    flow[name] = dict(grad=grads, stats=np.mean([r[1] for r in runs], axis=0))

print(
    f"{'':22}{'|dL/dW| layer 1':>16}{'last hidden':>13}{'ratio':>10}{'std layer 1':>13}{'std last':>10}"
)
for name, f in flow.items():
    print(
        f"{ACTIVATIONS[name].label:22}{f['grad'][0]:>16.2e}{f['grad'][-2]:>13.2e}"
        f"{f['grad'][0] / f['grad'][-2]:>10.1e}{f['stats'][0, 1]:>13.3f}{f['stats'][-1, 1]:>10.3f}"
    )

# %% [markdown]
# The picture, per layer (log scale; switch to the activations' spread with the
# menu):

# %%
layers = np.arange(1, cfg.flow_depth + 2)
fig = go.Figure()
for name, f in flow.items():
    fig.add_trace(
        go.Scatter(
            x=layers,
            y=f["grad"],
            name=ACTIVATIONS[name].label,
            mode="lines+markers",
            marker=dict(size=4),
            line=dict(color=COLOR[name], dash=DASH[name]),
            legendgroup=name,
        )
    )
for name, f in flow.items():
    fig.add_trace(
        go.Scatter(
            x=layers[:-1],
            y=f["stats"][:, 1],
            name=ACTIVATIONS[name].label,
            visible=False,
            mode="lines+markers",
            marker=dict(size=4),
            line=dict(color=COLOR[name], dash=DASH[name]),
            legendgroup=name,
        )
    )
n = len(flow)
views = [
    ("weight-gradient norm", "||dL/dW_l||", [True] * n + [False] * n),
    (
        "std of the activations",
        "std of phi(z_l) over batch and units",
        [False] * n + [True] * n,
    ),
]
fig.update_layout(
    title=f"Gradient flow at initialization: {cfg.flow_depth} hidden layers of {cfg.flow_width} units",
    xaxis_title="layer l (1 = next to the input)",
    yaxis_title=views[0][1],
    height=480,
    hovermode="x unified",
    updatemenus=[
        dict(
            x=1.02,
            y=0,
            xanchor="left",
            yanchor="bottom",
            buttons=[
                dict(
                    label=label,
                    method="update",
                    args=[{"visible": visible}, {"yaxis.title.text": axis}],
                )
                for label, axis, visible in views
            ],
        )
    ],
)
fig.update_yaxes(type="log", exponentformat="power")
plots.show(fig, cfg.run_dir / "gradient_flow.html")

# %% [markdown]
# Three regimes show up. The **sigmoid's** gradient falls by orders of
# magnitude from the output back to the input: its slope of at most $1/4$, times
# weights that Xavier's initialization sized for slope 1, is
# {eq}`activations-vanishing` in action, and the first layers of such a network
# receive essentially no signal. **tanh** keeps its gradients within a small
# factor, but its activations shrink layer after layer: Xavier's variance is right
# only in tanh's linear regime, and each layer squeezes a little. **ReLU** and the
# **leaky ReLU** with He's initialization, and **SELU** with LeCun's, keep both
# gradients and activations at one scale through all the layers. The other three
# rectifiers drift, because He's factor 2 is exact for ReLU only: the activations
# of **ELU** grow with depth, and those of **GELU** and **SiLU**, whose slope at
# the origin is $1/2$, shrink towards zero, and their gradients with them
# (exercise {ref}`activations-ex-2` looks for a better factor, and finds why there
# is none). Finally, **SELU**'s activations stay near mean 0 and standard
# deviation 1 in every layer, as its fixed point promises:

# %%
selu_stats = flow["selu"]["stats"]
print(
    f"SELU network, over its {cfg.flow_depth} hidden layers: mean in [{selu_stats[:, 0].min():+.3f}, "
    f"{selu_stats[:, 0].max():+.3f}], std in [{selu_stats[:, 1].min():.3f}, {selu_stats[:, 1].max():.3f}]"
)
relu_stats = flow["relu"]["stats"]
print(
    f"ReLU network, for comparison:           mean in [{relu_stats[:, 0].min():+.3f}, "
    f"{relu_stats[:, 0].max():+.3f}], std in [{relu_stats[:, 1].min():.3f}, {relu_stats[:, 1].max():.3f}]"
)

# %% [markdown]
# ### 2. Training a deep MLP with each activation
#
# Does the gradient flow at initialization predict training? The same MLP for
# every activation, `train_depth` linear layers deep, trained by the engine's
# `fit_arrays` with SGD and momentum at one learning rate, several seeds each.
# Everything but the activation (and its matching initialization) is shared:
# data, batch order and the initial random draws of each seed.

# %%
train_widths = [x_train.shape[1]] + [cfg.train_width] * (cfg.train_depth - 1) + [10]
trained = {name: [] for name in ACTIVATIONS}
for name in ACTIVATIONS:
    for s in range(cfg.n_seeds):
        model = activation_mlp(name, train_widths, seed=cfg.seed + s)
        started = time.perf_counter()
        history = fit_arrays(
            model,
            optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum),
            x_train,
            y_train,
            epochs=cfg.epochs,
            batch_size=cfg.batch_size,
            val=(x_test, y_test),
            seed=cfg.seed + s,
            verbose=False,
        )
        trained[name].append(
            dict(model=model, history=history, seconds=time.perf_counter() - started)
        )
    acc = [run["history"]["val_acc"][-1] for run in trained[name]]
    print(
        f"{ACTIVATIONS[name].label:22} test accuracy {np.mean(acc):.3f} +- {np.std(acc):.3f} "
        f"(over {cfg.n_seeds} seeds), final training loss "
        f"{np.mean([run['history']['loss'][-1] for run in trained[name]]):.3f}"
    )

# %% [markdown]
# The training loss of every step (averaged over seeds, then smoothed over a
# tenth of an epoch) and the test accuracy after every epoch:

# %%
steps_per_epoch = -(-cfg.n_train // cfg.batch_size)
window = max(1, steps_per_epoch // 10)
fig = make_subplots(
    rows=1, cols=2, subplot_titles=["training loss (smoothed)", "test accuracy"]
)
for name, runs in trained.items():
    steps = np.mean([run["history"].steps for run in runs], axis=0)
    smooth = np.convolve(steps, np.ones(window) / window, mode="valid")
    accuracy = np.mean([run["history"]["val_acc"] for run in runs], axis=0)
    style = dict(
        name=ACTIVATIONS[name].label,
        legendgroup=name,
        line=dict(color=COLOR[name], dash=DASH[name]),
    )
    fig.add_trace(
        go.Scatter(
            x=np.arange(window, len(steps) + 1), y=smooth.astype(np.float32), **style
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=np.arange(1, cfg.epochs + 1),
            y=accuracy,
            mode="lines+markers",
            showlegend=False,
            **style,
        ),
        row=1,
        col=2,
    )
fig.update_xaxes(title_text="step", row=1, col=1)
fig.update_xaxes(title_text="epoch", row=1, col=2)
fig.update_yaxes(title_text="cross-entropy", type="log", row=1, col=1)
fig.update_yaxes(title_text="accuracy", row=1, col=2)
fig.update_layout(
    title=f"An MLP of {cfg.train_depth} linear layers, one activation at a time "
    f"(mean of {cfg.n_seeds} seeds)",
    height=450,
)
plots.show(fig, cfg.run_dir / "training.html")

# %% [markdown]
# Experiment 1 predicted the outlier. The sigmoid network barely moves off the
# loss of a uniform guess, $\ln 10 \approx 2.30$, in the whole budget: its first
# layers get almost no gradient. All the others train, to test accuracies that
# differ by about as much as the spread over seeds (the run prints both), so at
# this depth the choice among them hardly matters; the final training losses
# separate them a little more. Even GELU and SiLU, whose signal shrank over 30
# layers, train well with 8: the shrinking compounds with depth, and here there
# is not enough of it to hurt. The functions also differ in cost: an exponential
# (ELU, SELU) or an $\mathrm{erf}$ (exact GELU) costs more than ReLU's
# comparison. The engine's seconds per epoch show how much, only roughly, since
# other jobs may share this machine's cores:

# %%
for name, runs in trained.items():
    per_epoch = np.median([run["seconds"] for run in runs]) / cfg.epochs
    print(f"{ACTIVATIONS[name].label:22} {per_epoch:.2f} s per epoch")

# %% [markdown]
# ### 3. Saturation and sparsity
#
# Inside the networks: for each hidden layer, the share of units that are
# *blocked* on a test image, that is whose derivative is below `blocked` times the
# activation's largest slope, so that they pass back almost none of the gradient
# that reaches them. With the default threshold a tanh unit is blocked when
# $|\tanh(z)| > 0.99$, a ReLU unit whenever it outputs an exact 0, and a leaky
# ReLU unit on its negative side (its slope there is small, just not zero).
# Measured at initialization and after training (first seed):

# %%
x_probe = x_test[: cfg.n_probe]


def unit_census(model, name: str) -> dict:
    """Per hidden layer: share of blocked units (|phi'| < blocked * max phi') and of exact zeros, on x_probe."""
    module, largest = ACTIVATIONS[name].module(), curves[name][1].max()
    blocked, zeros = [], []
    for z in hidden_preactivations(model, x_probe):
        blocked.append(
            float((np.abs(derivative(module, z)) < cfg.blocked * largest).mean())
        )
        with no_grad():
            zeros.append(float((module(Tensor(z)).data == 0).mean()))
    return dict(blocked=np.array(blocked), zeros=np.array(zeros))


census = {
    name: dict(
        init=unit_census(activation_mlp(name, train_widths, seed=cfg.seed), name),
        trained=unit_census(trained[name][0]["model"], name),
    )
    for name in ACTIVATIONS
}

print(
    f"{'':22}{'blocked, init':>15}{'blocked, trained':>18}{'exact zeros, init':>19}{'trained':>9}"
)
for name, c in census.items():
    print(
        f"{ACTIVATIONS[name].label:22}{c['init']['blocked'].mean():>15.3f}{c['trained']['blocked'].mean():>18.3f}"
        f"{c['init']['zeros'].mean():>19.3f}{c['trained']['zeros'].mean():>9.3f}"
    )

# %%
names = list(ACTIVATIONS)
z_init = np.array([census[n]["init"]["blocked"] for n in names])
z_trained = np.array([census[n]["trained"]["blocked"] for n in names])
hidden = [f"layer {l}" for l in range(1, cfg.train_depth)]
fig = go.Figure(
    go.Heatmap(
        z=z_trained,
        x=hidden,
        y=[ACTIVATIONS[n].label for n in names],
        zmin=0,
        zmax=1,
        colorscale="Blues",
        texttemplate="%{z:.2f}",
        colorbar=dict(title=dict(text="share blocked", side="right")),
        hovertemplate="%{y}, %{x}: %{z:.3f} of the units blocked<extra></extra>",
    )
)
fig.update_layout(
    title=f"Share of hidden units with |phi'(z)| < {cfg.blocked} x max phi', on {cfg.n_probe} test images",
    xaxis_title="hidden layer",
    yaxis_title="activation",
    height=480,
    margin=dict(t=100),
    updatemenus=[
        dict(
            x=0,
            y=1.02,
            xanchor="left",
            yanchor="bottom",
            active=0,
            buttons=[
                dict(
                    label="after training", method="restyle", args=[{"z": [z_trained]}]
                ),
                dict(
                    label="at initialization", method="restyle", args=[{"z": [z_init]}]
                ),
            ],
        )
    ],
)
fig.update_yaxes(autorange="reversed")
plots.show(fig, cfg.run_dir / "saturation.html")


# %% [markdown]
# At initialization ReLU and the leaky ReLU block about half of their units in
# every layer: that is ReLU's sparsity {cite:p}`glorot2011deep`, and for the leaky
# ReLU the same negative half, where its slope is small. The smooth functions
# block few units at first, since their derivatives are small only far out on the
# negative side (ELU, SELU) or around the dip (GELU, SiLU). Training pushes units
# into these regions in every network but one: the share of blocked units grows,
# and in float32 even GELU produces exact zeros, where $\Phi(z)$ rounds to 0. The
# exception is the sigmoid: in this run none of its units saturate, because it
# never trained. Its trouble was not saturation but the slope of $1/4$,
# multiplied over the layers ({cite:t}`glorot2010understanding` saw the top sigmoid
# layer saturate in networks that did train, with a different setup). A blocked
# unit is not useless (a ReLU's zeros are how it computes), but a layer that is
# blocked for most inputs learns from few of them.
#
# ### 4. Dying ReLUs
#
# **A learning-rate ladder.** The same ReLU network (a smaller copy of the one
# above) trained at increasing learning rates, with a callback that counts, every
# few steps, the hidden units that are *dead*: whose pre-activation is $\le 0$ on
# every one of the probe images, so that by {eq}`activations-backprop` they get no
# gradient from any of them.


# %%
class DeadUnits(Callback):
    """Every `every` steps, per hidden layer, the share of units with z <= 0 on every probe image."""

    def __init__(self, x_probe: np.ndarray, every: int):
        self.x, self.every, self.steps, self.dead = x_probe, every, [], []

    def count(self, state):
        self.steps.append(state.step)
        self.dead.append(
            [
                float((z <= 0).all(axis=0).mean())
                for z in hidden_preactivations(state.model, self.x)
            ]
        )

    def on_fit_start(self, state):
        self.count(state)

    def on_batch_end(self, state):
        if state.step % self.every == 0:
            self.count(state)


dying_widths = [x_train.shape[1]] + [cfg.train_width] * (cfg.dying_depth - 1) + [10]
ladder = {}
for lr in cfg.dying_lrs:
    model = activation_mlp("relu", dying_widths, seed=cfg.seed)
    counter = DeadUnits(x_train[: cfg.n_probe], cfg.probe_every)
    try:
        history = fit_arrays(
            model,
            optim.SGD(model.parameters(), lr=lr, momentum=cfg.momentum),
            x_train,
            y_train,
            epochs=cfg.dying_epochs,
            batch_size=cfg.batch_size,
            val=(x_test, y_test),
            callbacks=(counter,),
            seed=cfg.seed,
            verbose=False,
        )
        accuracy = history["val_acc"][-1]
    except FloatingPointError:  # fit_arrays stops when the loss is no longer finite
        accuracy = float("nan")
    ladder[lr] = dict(
        steps=counter.steps, dead=np.array(counter.dead), accuracy=accuracy
    )
    print(
        f"lr {lr:<5}: dead units at the end, per hidden layer {np.round(ladder[lr]['dead'][-1], 2)}, "
        f"test accuracy {accuracy:.3f}" + ("  (diverged)" if np.isnan(accuracy) else "")
    )

# %%
fig = go.Figure(
    [
        go.Scatter(
            x=r["steps"], y=r["dead"].mean(axis=1), name=f"lr {lr}", mode="lines"
        )
        for lr, r in ladder.items()
    ]
)
fig.update_layout(
    title="Dead ReLU units during training, by learning rate (SGD with momentum)",
    xaxis_title="step",
    yaxis_title="share of hidden units dead on every probe image",
    height=420,
    hovermode="x unified",
)
fig.update_yaxes(range=[0, 1.05])
plots.show(fig, cfg.run_dir / "dying_ladder.html")


# %% [markdown]
# At small learning rates a few units die and the network trains. At the largest,
# large fractions of the units die within the first epoch, whole layers near the
# output can go dark, and then the network outputs the same logits for every
# image: the run above prints the accuracy of that constant guess. It is a quiet failure, with no overflow and no NaN, and the loss settles
# near $\ln 10$ as if training had merely stalled.
#
# **A controlled knock-out.** To see that death is permanent, we cause it. After
# the first epoch a callback plays the part of one bad update: it lowers the bias
# of a random half of the first layer's units until each is negative on *every*
# training image. Then training continues, with plain SGD (no momentum, so that a
# step contains nothing but the current gradient). We do the same to leaky ReLU
# networks, whose knocked-out units still have a small slope, and follow the
# share of the knocked-out units that are still negative on every training image.


# %%
class KnockOut(Callback):
    """After step `at`, push a random `fraction` of the first layer's units below 0 on every image of x.

    Then, every `every` steps, record the share of them that are still below 0 on every image.
    """

    def __init__(
        self,
        x: np.ndarray,
        at: int,
        fraction: float,
        margin: float,
        every: int,
        seed: int,
    ):
        self.x, self.at, self.fraction, self.margin, self.every = (
            x,
            at,
            fraction,
            margin,
            every,
        )
        self.rng, self.steps, self.still_off = np.random.default_rng(seed), [], []

    def first_layer(self, state) -> np.ndarray:
        with no_grad():
            return state.model[0](
                Tensor(self.x)
            ).data  # (N, width): the first layer's pre-activations

    def on_batch_end(self, state):
        if state.step == self.at:
            z, first = self.first_layer(state), state.model[0]
            self.units = self.rng.choice(
                z.shape[1], round(self.fraction * z.shape[1]), replace=False
            )
            first.bias.data[self.units] -= z[:, self.units].max(axis=0) + self.margin
            self.weights = first.weight.data[
                self.units
            ].copy()  # to see whether they ever move again
        if state.step >= self.at and (state.step - self.at) % self.every == 0:
            self.steps.append(state.step)
            self.still_off.append(
                float((self.first_layer(state)[:, self.units] <= 0).all(axis=0).mean())
            )

    def on_fit_end(self, state):
        self.weight_change = float(
            np.abs(state.model[0].weight.data[self.units] - self.weights).max()
        )


shock_runs = {"ReLU": ("relu", None)} | {
    f"leaky ReLU ({a})": ("leaky_relu", a) for a in cfg.shock_slopes
}
shock = {}
for label, (name, slope) in shock_runs.items():
    model = activation_mlp(name, dying_widths, seed=cfg.seed)
    if (
        slope is not None
    ):  # the same network with this negative slope in every activation
        for layer in model:
            if isinstance(layer, nn.LeakyReLU):
                layer.negative_slope = slope
    knock = KnockOut(
        x_train,
        at=steps_per_epoch,
        fraction=cfg.shock_fraction,
        margin=cfg.shock_margin,
        every=cfg.probe_every,
        seed=cfg.seed,
    )
    history = fit_arrays(
        model,
        optim.SGD(model.parameters(), lr=cfg.shock_lr),
        x_train,
        y_train,
        epochs=cfg.shock_epochs,
        batch_size=cfg.batch_size,
        val=(x_test, y_test),
        callbacks=(knock,),
        seed=cfg.seed,
        verbose=False,
    )
    shock[label] = dict(
        steps=knock.steps,
        still_off=knock.still_off,
        weight_change=knock.weight_change,
        accuracy=history["val_acc"][-1],
    )
    print(
        f"{label:20}: still off at the end {knock.still_off[-1]:.3f}, largest change of their weights "
        f"since the knock-out {knock.weight_change:.2e}, test accuracy {history['val_acc'][-1]:.3f}"
    )

# %%
fig = go.Figure(
    [
        go.Scatter(
            x=r["steps"],
            y=r["still_off"],
            name=label,
            mode="lines+markers",
            marker=dict(size=4),
            line=dict(
                width=4 if label == "ReLU" else 2,
                dash="solid" if label == "ReLU" else "dash",
            ),
        )
        for label, r in shock.items()
    ]
)  # ReLU thick, so that a leaky curve on top does not hide it
fig.update_layout(
    title="After knocking out first-layer units: how many stay off?",
    xaxis_title="step (the knock-out is the first point)",
    yaxis_title="share of knocked-out units off on every image",
    height=420,
    hovermode="x unified",
)
fig.update_yaxes(range=[0, 1.05])
plots.show(fig, cfg.run_dir / "knock_out.html")

# %% [markdown]
# The ReLU units stay dead: the run above prints that their weights did not change
# by a single bit after the knock-out, because their gradient is exactly zero and
# their inputs, the pixels, never change. (A dead unit in a *deeper* layer can
# come back, if the layers below it change its inputs.) The leaky units, with the
# same knock-out, still get a gradient, scaled by their slope: with the small
# slope of {cite:t}`maas2013rectifier` it is tiny, and the run shows how many
# recover within this budget; with a larger slope more do, sooner. The
# network as a whole shrugs off losing half of its first layer, which is why dead
# units so often go unnoticed.
#
# ## Results
#
# This run, the recorded `full` run, and the papers. No paper reports our exact
# setup (an MLP of a few layers on an MNIST subset, one learning rate for all), so
# the comparison with the literature is qualitative: deep sigmoid networks train
# poorly {cite:p}`glorot2010understanding`; rectifiers train deep networks
# without pre-training {cite:p}`glorot2011deep`; ELU and SELU reach their results
# faster than ReLU in the papers' (larger) experiments
# {cite:p}`clevert2016fast,klambauer2017self`; and SELU's fixed point and the
# Jacobian there, computed above, agree with the values {cite:t}`klambauer2017self`
# report. (To
# record the `full` run: `python code/foundations/activations.py --profile full`,
# then copy `runs/activations/metrics.json` to `results/activations.json`.)

# %%
metrics = {
    "selu_fixed_point_residual": float(max(abs(mu_fixed), abs(nu_fixed - 1))),
    "selu_jacobian_norm": float(selu_norm),
}
for name in ACTIVATIONS:
    acc = [run["history"]["val_acc"][-1] for run in trained[name]]
    metrics[f"{name}_test_accuracy"] = float(np.mean(acc))
    metrics[f"{name}_test_accuracy_std"] = float(np.std(acc))
    metrics[f"{name}_gradient_ratio_first_to_last"] = float(
        flow[name]["grad"][0] / flow[name]["grad"][-2]
    )
    metrics[f"{name}_blocked_trained"] = float(
        census[name]["trained"]["blocked"].mean()
    )
largest_lr = max(cfg.dying_lrs)
metrics["relu_dead_share_at_largest_lr"] = float(ladder[largest_lr]["dead"][-1].mean())
metrics["relu_accuracy_at_largest_lr"] = float(ladder[largest_lr]["accuracy"])
metrics["relu_knocked_out_weight_change"] = shock["ReLU"]["weight_change"]

rows = results_table(
    cfg,
    metrics,
    seconds=time.perf_counter() - run_started,
    title="MNIST test accuracy (± std over seeds); SELU's Jacobian norm at (0, 1)",
    columns={
        **{
            f"{name}_test_accuracy": (a.label, ".3f", f"{name}_test_accuracy_std")
            for name, a in ACTIVATIONS.items()
        },
        "selu_jacobian_norm": ("SELU Jacobian norm", ".4f"),
    },
    references=[
        Reference(
            "SELU's fixed point",
            {"selu_jacobian_norm": 0.7877},
            source="klambauer2017self",
        )
    ],
)
assert rows[0].values["selu_jacobian_norm"] == selu_norm
# The paper gives 4 decimals, so agreement means |ours - 0.7877| <= 5e-5; central differences with
# h = 1e-5 are accurate to ~1e-10 here (ours is 0.78767: 2.7e-5 from the paper's rounded value).
assert abs(selu_norm - 0.7877) <= 5e-5, (
    f"SELU's Jacobian norm {selu_norm:.6f} is not the paper's 0.7877"
)

# %%
utils.save_run(
    cfg.run_dir / "metrics.json", cfg, metrics, time.perf_counter() - run_started
)
print(f"metrics written to {cfg.run_dir / 'metrics.json'}")

# %% [markdown]
# ## Summary
#
# - The activation's derivative is a factor of every backward path,
#   eq. {eq}`activations-backprop`; over many layers its typical size decides
#   whether gradients vanish, together with the initialization that must match it.
# - Sigmoid and tanh saturate. The sigmoid's slope is at most $1/4$ and its outputs
#   are not centred: a deep sigmoid MLP barely trains. tanh is the better of the two.
# - ReLU passes gradients undiminished where it is active and is sparse, but a unit
#   that is off on every input gets exactly zero gradient and is dead for good;
#   large learning rates kill many. Leaky ReLU and ELU keep a negative slope and
#   cannot die.
# - SELU, with LeCun initialization, has an attracting fixed point at mean 0 and
#   variance 1: deep SELU networks normalize themselves.
# - GELU and SiLU are smooth ReLUs with slope $1/2$ at the origin; He's
#   initialization is only approximately right for them (and for ELU).
#
# ## Exercises
#
# :::{exercise}
# :label: activations-ex-1
# Show that $\sigma'(z) = \sigma(z)(1 - \sigma(z)) \le 1/4$ and that
# $\tanh(z) = 2\sigma(2z) - 1$. What is then the largest slope of $\tanh$, and
# why does a tanh network train so much better than a sigmoid one, although one
# function is a shifted and rescaled copy of the other?
# :::
#
# :::{solution} activations-ex-1
# :class: dropdown
# $\sigma' = e^{-z}/(1 + e^{-z})^2 = \sigma(1 - \sigma)$, and $p(1 - p) \le 1/4$
# with equality at $p = 1/2$, that is $z = 0$. Next,
# $2\sigma(2z) - 1 = (2 - 1 - e^{-2z})/(1 + e^{-2z}) = (e^{z} - e^{-z})/(e^{z} + e^{-z}) = \tanh z$,
# so $\tanh'(z) = 4\sigma'(2z) \le 1$, again at $z = 0$. A network could absorb the
# scale and the shift into its weights and biases, so the *functions* two such
# networks represent are the same; what differs is how gradient descent sees them
# from a standard initialization. The sigmoid shrinks the backward signal by a
# factor of 4 per layer at best, and its outputs have mean near $1/2$, so every
# next layer receives a large common offset: the gradients of a unit's incoming
# weights, $\delta_j h_i$ with $h_i > 0$, all share the sign of $\delta_j$, and
# the weights can only move together, in zig-zags {cite:p}`lecun1998efficient`.
# :::
#
# :::{exercise}
# :label: activations-ex-2
# He's initialization multiplies the weights' variance by the gain $g^2 = 2$ so
# that $\mathbb E[\varphi(z)^2] g^2 = 1$ for $z \sim \mathcal N(0, 1)$, which is
# exact for ReLU. Compute the gain that satisfies this for ELU, GELU and SiLU, then
# repeat experiment 1 with those gains (`nn.init.normal_` with standard deviation
# $g/\sqrt{n_{\text{in}}}$). Do the activations of the deep network keep their scale now?
# :::
#
# :::{solution} activations-ex-2
# :class: dropdown
# A layer $z' = W\varphi(z)$ with weight variance $g^2/n$ has
# $\mathrm{Var}(z') = g^2\, \mathbb E[\varphi(z)^2]$, so the gain is
# $g = \mathbb E[\varphi(z)^2]^{-1/2}$; the expectation is a one-dimensional
# integral, or a large sample:
#
# ```python
# import numpy as np
# from scratch.engine import Tensor, nn
#
# z = np.random.default_rng(0).standard_normal(4_000_000)
# for name, act in [("ReLU", nn.ReLU()), ("ELU", nn.ELU()), ("GELU", nn.GELU()), ("SiLU", nn.SiLU())]:
#     print(name, 1 / np.sqrt((act(Tensor(z)).data ** 2).mean()))
# ```
#
# This gives $\sqrt 2 \approx 1.41$ for ReLU, about 1.25 for ELU (so He's gain
# was too large, and the activations grew), about 1.53 for GELU and 1.68 for
# SiLU (too small, and they shrank). Put the gains in `INITS` as new entries,
# `lambda w, g: nn.init.normal_(w, 0, gain / np.sqrt(w.shape[1]), generator=g)`,
# and rerun `probe`. ELU now keeps its scale. GELU and SiLU do not: their
# activations now *grow* with depth, GELU's severalfold over 30 layers and SiLU's
# far more. Unit
# variance is a fixed point of their layer map, but an unstable one. For large
# inputs they behave like ReLU, whose variance the gain of 1.5 to 1.7 (more than
# $\sqrt 2$) multiplies up; for small inputs like $z/2$, which divides it down. A
# signal slightly above the fixed point runs away upwards, one slightly below
# runs down, and no gain fixes both sides. ReLU escapes this by being
# homogeneous (every scale is a fixed point); the networks that use GELU and SiLU
# rely on normalization layers instead.
# :::
#
# :::{exercise}
# :label: activations-ex-3
# Run the learning-rate ladder of experiment 4 with the leaky ReLU instead of
# ReLU (change `"relu"` to `"leaky_relu"` in its `activation_mlp` call). What happens at the
# largest learning rate, and what does it tell you about the ReLU run at that rate?
# :::
#
# :::{solution} activations-ex-3
# :class: dropdown
# In our runs the leaky network does not lose its units at the largest rate; it
# *diverges*: the loss overflows, and `fit_arrays` stops with a `FloatingPointError`
# (the ladder's `try` records the accuracy as NaN). The learning rate was simply
# too large for this network. The ReLU network did not diverge because its
# units died first: a dead unit passes on neither signal nor gradient, so the
# network went quiet, not unstable. Dying was ReLU's way of failing, and the
# fix is the learning rate (or a warm-up, or normalization), not only the
# activation.
# :::
#
# :::{exercise}
# :label: activations-ex-4
# SELU's fixed point assumes LeCun's initialization ($\tau = 1$). With He's
# ($\tau = 2$) or a too small one ($\tau = 1/2$), where does the variance
# iteration of `selu_moments(0, nu, 0, tau)` go?
# :::
#
# :::{solution} activations-ex-4
# :class: dropdown
# ```python
# for tau in (0.5, 1.0, 2.0):
#     nu = 1.0
#     for _ in range(200):
#         mean, nu = selu_moments(0.0, nu, 0.0, tau)
#     print(tau, nu, mean)
# ```
# With $\tau = 1$ it stays at $(0, 1)$. With $\tau = 2$ there is still an
# attracting fixed point, but at a variance of about 18 with a mean far from 0;
# with $\tau = 1/2$ the variance decays towards 0. Self-normalization is a
# property of the activation *and* the weight scale together; it is also why SELU
# networks use "alpha dropout" rather than ordinary dropout, which would change
# $\tau$ {cite:p}`klambauer2017self`.
# :::
#
# :::{exercise}
# :label: activations-ex-5
# In the knock-out experiment the dead ReLU units sit in the *first* layer. Would
# the same knock-out in the *last* hidden layer also be permanent? Argue from
# {eq}`activations-backprop`, then try it (change `state.model[0]` in `KnockOut` to
# the last linear layer before the logits, with the activations of the layer below
# as `x`).
# :::
#
# :::{solution} activations-ex-5
# :class: dropdown
# Not necessarily. A unit's own weights get zero gradient as long as its
# pre-activation $z = w^{\top} h + b$ is negative on every input, in any layer. But
# in a deeper layer the input $h$ is the output of the layers below, and those keep
# learning (their gradients flow through the *other*, living units of the layer
# above). When $h$ changes, $w^{\top} h + b$ can turn positive for some images, and
# the unit is alive again. In the first layer $h$ is the data, which never
# changes, so death there is permanent; that is why the experiment knocks out
# first-layer units. In a deep layer the knock-out needs a margin large enough
# to survive the drift of $h$, and for how long it holds is an empirical matter.
# :::
#
# ## References
#
# ```{bibliography}
# :filter: docname in docnames
# ```
