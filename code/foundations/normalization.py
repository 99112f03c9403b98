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
# (normalization)=
# # Initialization and normalization
#
# A deep network multiplies its input by one weight matrix after another, and its
# gradient by the same matrices, transposed, on the way back. If each layer
# scales the signal by a little more than 1, it explodes with depth; by a little
# less, it vanishes. This chapter derives the one scale at which neither happens,
# which gives the Xavier and He initializations, and then removes the problem at
# its root: *normalization layers* (batch, layer and group norm) rescale the
# activations during training, whatever the weights do. We implement all three in
# `scratch.engine`, backward pass included, check them against PyTorch, and
# measure what they change: the statistics of a deep network at initialization,
# how batch norm behaves in training and in evaluation, how its accuracy depends on
# the batch size, and how fast and at which learning rates a deep network trains
# with and without it.

# %% tags=["hide-input"]
import time
from dataclasses import dataclass, field

import numpy as np
import plotly.graph_objects as go
import torch
import torch.nn.functional as TF
from plotly.subplots import make_subplots

import scratch.engine.functional as F
from scratch import data, plots, utils
from scratch.config import Config, ConfigError, describe, positive, unit_interval
from scratch.engine import Tensor, gradcheck, nn, no_grad, optim
from scratch.engine.loop import Callback, evaluate, fit_arrays
from scratch.engine.models import make_mlp
from scratch.results import Reference, results_table


@dataclass
class NormalizationConfig(Config):
    NAME = "normalization"

    # Experiment 1: a deep stack at initialization (forward and backward passes only, float64).
    depth: int = field(
        default=24,
        metadata=positive(
            "layers of the stack: past 20, a per-layer factor of 2 becomes a factor of a million"
        ),
    )
    width: int = field(
        default=256,
        metadata=positive(
            "units per layer, the fan-in and fan-out n of the variance equations"
        ),
    )
    probe_batch: int = field(
        default=512,
        metadata=positive(
            "random inputs pushed through: 512 x 256 values per layer give smooth histograms"
        ),
    )
    # Experiment 2: batch norm's dependence on the batch (a small MLP on MNIST, float32).
    bs_train: int = field(
        default=2000,
        metadata=positive(
            "MNIST training images: at batch size 2, 1000 steps per epoch, still cheap"
        ),
    )
    batch_sizes: tuple[int, ...] = field(
        default=(2, 8, 32),
        metadata=describe(
            "the batch sizes compared: 2 is where batch statistics break down, 32 a common default"
        ),
    )
    bs_epochs: int = field(
        default=2,
        metadata=positive(
            "passes over the images: enough for about 90% test accuracy with a working normalization"
        ),
    )
    bs_layers: int = field(
        default=3, metadata=positive("hidden layers of the small MLP")
    )
    bs_hidden: int = field(
        default=64, metadata=positive("units per hidden layer of the small MLP")
    )
    groups: int = field(
        default=8,
        metadata=positive(
            "GroupNorm groups: 8 groups of 8 units (Wu & He use 32 groups of larger layers)"
        ),
    )
    bs_lr: float = field(
        default=0.05,
        metadata=positive(
            "SGD step size at the largest batch size, scaled down linearly with the batch, as Wu & He do"
        ),
    )
    seeds: int = field(
        default=2,
        metadata=positive(
            "repetitions of each batch-size run (different initializations and batch orders)"
        ),
    )
    # Experiment 3: training speed of a deep MLP with and without normalization (float32).
    n_train: int = field(
        default=4000,
        metadata=positive(
            "MNIST training images: 3 epochs reach about 90% test accuracy in a few seconds"
        ),
    )
    n_test: int = field(
        default=1000,
        metadata=positive(
            "held-out images: +-2 percentage points at 90% (95% interval), enough to time a target"
        ),
    )
    deep_layers: int = field(
        default=8,
        metadata=positive(
            "hidden layers: deep enough that an unnormalized network is sensitive to the step size"
        ),
    )
    deep_hidden: int = field(default=128, metadata=positive("units per hidden layer"))
    epochs: int = field(default=3, metadata=positive("passes over the training images"))
    batch_size: int = field(
        default=64,
        metadata=positive(
            "images per step: large enough for reliable batch statistics"
        ),
    )
    lrs: tuple[float, ...] = field(
        default=(0.01, 0.03, 0.1, 0.3, 1.0),
        metadata=describe(
            "SGD step sizes, half a decade apart: from safe for every network to too large for most"
        ),
    )
    momentum: float = field(
        default=0.9,
        metadata=unit_interval(
            "SGD momentum: the usual 0.9, for every run of the chapter"
        ),
    )
    target_acc: float = field(
        default=0.9,
        metadata=unit_interval(
            "test accuracy whose first crossing times a run: every network here gets there at a good step size"
        ),
    )
    eval_every: int = field(
        default=10,
        metadata=positive(
            "steps between test evaluations: the resolution of the time to target"
        ),
    )

    PROFILES = {
        "tiny": dict(
            threads=1,
            depth=6,
            width=32,
            probe_batch=64,
            bs_train=200,
            bs_epochs=1,
            bs_hidden=16,
            groups=4,
            seeds=1,
            n_train=300,
            n_test=200,
            deep_layers=3,
            deep_hidden=32,
            epochs=1,
            lrs=(0.03, 1.0),
            target_acc=0.5,
            eval_every=2,
        ),  # tests: seconds
        "small": dict(threads=1),  # the book build: about 30 s of CPU
        "full": dict(
            depth=50,
            width=512,
            probe_batch=1000,
            bs_train=10000,
            bs_epochs=5,
            batch_sizes=(2, 4, 8, 16, 32),
            bs_hidden=128,
            seeds=5,
            n_train=20000,
            n_test=5000,
            deep_layers=16,
            deep_hidden=256,
            epochs=10,
            lrs=(0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0),
            target_acc=0.95,
            eval_every=25,
        ),  # NumPy on a CPU: minutes; larger with the real MNIST
    }

    def validate(self):
        if not self.batch_sizes or not self.lrs or min(self.lrs) <= 0:
            raise ConfigError(
                "batch_sizes and lrs need at least one value each, and learning rates must be > 0"
            )
        if min(self.batch_sizes) < 2:
            raise ConfigError(
                "batch_sizes: batch norm cannot train on a batch of 1 (see Experiment 2)"
            )
        if self.bs_hidden % self.groups:
            raise ConfigError(
                f"groups={self.groups} must divide bs_hidden={self.bs_hidden}"
            )
        if max(self.batch_sizes) > self.bs_train or self.batch_size > self.n_train:
            raise ConfigError(
                "every batch size must be at most the number of training images"
            )


cfg = NormalizationConfig.from_cli()
utils.seed_everything(cfg.seed)
torch.set_num_threads(
    1
)  # PyTorch only checks small arrays here: threads would cost more than they save
run_started = time.perf_counter()

# %% [markdown]
# ## Motivation: a signal that dies, or blows up, with depth
#
# The chapter on {doc}`activations` sent a batch through deep stacks of layers and
# watched the gradients of some networks vanish and of others explode, layer by
# layer. Two things set the scale that a layer applies to its signal: its
# activation function, and its *weights*. We met the second in
# {doc}`autograd`, where `nn.Linear` drew its weights from
# $U(-1/\sqrt{n}, 1/\sqrt{n})$ for $n$ inputs, PyTorch's default, without asking
# why. Here is why the $1/\sqrt{n}$ matters, and what the right constant in front
# of it is. Then we go one step further: instead of choosing the scale once, at
# initialization, and hoping that training keeps it, a normalization layer resets
# it at every step.
#
# ## Theory: how variance flows through a deep network
#
# ### The forward pass
#
# Take layer $l$ of a fully connected network, with pre-activations
# $z^{l} = W^{l} h^{l-1}$ (biases start at zero, so we leave them out), activations
# $h^{l} = f(z^{l})$ and $n_{l-1}$ inputs. At initialization the weights are
# independent, with mean zero and variance $\sigma_l^2$, and independent of the
# input. Each $z^l_i = \sum_{j} W^l_{ij} h^{l-1}_j$ is a sum of $n_{l-1}$
# uncorrelated terms of mean zero, so
#
# $$
# \operatorname{Var}(z^{l}_i) = n_{l-1}\, \sigma_l^2\, \mathbb{E}\big[(h^{l-1}_j)^2\big] .
# $$ (normalization-forward-variance)
#
# The *second moment* of the input appears, not its variance: a ReLU's output has
# a positive mean, and that mean is passed on too. For a function that is nearly
# linear around zero, such as $\tanh$ for small inputs,
# $\mathbb{E}[h^2] \approx \operatorname{Var}(z)$; for a ReLU and a pre-activation
# symmetric around zero, exactly half of the second moment survives:
#
# $$
# h = \max(0, z) \quad\Longrightarrow\quad \mathbb{E}[h^2] = \tfrac12 \operatorname{Var}(z) .
# $$ (normalization-relu-moment)
#
# So each layer multiplies the variance by a factor, $n_{l-1} \sigma_l^2$ in the
# linear regime and $\tfrac12 n_{l-1} \sigma_l^2$ after a ReLU, and after $L$
# layers the factors multiply:
#
# $$
# \operatorname{Var}(z^{L}) = \operatorname{Var}(z^{1}) \prod_{l=2}^{L} c\, n_{l-1} \sigma_l^2,
# \qquad c = 1 \text{ (linear regime)}, \quad c = \tfrac12 \text{ (ReLU)} .
# $$ (normalization-depth-product)
#
# A product of $L$ equal factors is exponential in depth: a factor of $2$ per layer
# is $2^{23} \approx 8 \cdot 10^{6}$ after 24 layers, a factor of $\tfrac12$ its
# inverse. The only safe factor is 1.
#
# ### The backward pass
#
# The gradient flows through the same matrices, transposed. With
# $\delta^l = \partial L / \partial z^l$, the chain rule gives
# $\delta^{l-1} = f'(z^{l-1}) \odot (W^{l})^{\top} \delta^{l}$: every component is
# a sum over the $n_l$ *outputs* of layer $l$, and the same argument gives
#
# $$
# \operatorname{Var}(\delta^{l-1}_j) = n_{l}\, \sigma_l^2\, \mathbb{E}\big[f'(z^{l-1}_j)^2\big]\, \operatorname{Var}(\delta^{l}_i) .
# $$ (normalization-backward-variance)
#
# The fan-out replaces the fan-in, and $\mathbb{E}[f'^2]$, which is 1 for a linear
# unit and $\tfrac12$ for a ReLU (its derivative is 1 on half of the inputs),
# replaces $c$. The gradient of a weight, $\partial L / \partial W^l = \delta^l (h^{l-1})^\top$,
# needs both passes at a sane scale.
#
# ### Three initializations
#
# Setting each factor to 1 fixes the weights' variance.
# {cite:t}`lecun1998efficient` asked for unit variance in the forward pass of
# linear or $\tanh$-like units, $n_{\text{in}} \sigma^2 = 1$:
#
# $$
# \sigma^2_{\text{LeCun}} = \frac{1}{n_{\text{in}}} .
# $$ (normalization-lecun)
#
# {cite:t}`glorot2010understanding` wanted the backward pass too, which asks for
# $n_{\text{out}} \sigma^2 = 1$; unless the two fans are equal, both cannot hold,
# and they took the compromise
#
# $$
# \sigma^2_{\text{Xavier}} = \frac{2}{n_{\text{in}} + n_{\text{out}}},
# \qquad \text{as a uniform } U(-b, b): \; b = \sqrt{3}\,\sigma = \sqrt{\frac{6}{n_{\text{in}} + n_{\text{out}}}} ,
# $$ (normalization-xavier)
#
# since $U(-b, b)$ has variance $b^2/3$. Both assume the linear regime. A ReLU
# halves the second moment at every layer, eq. {eq}`normalization-relu-moment`, and
# {cite:t}`he2015delving` doubled the variance to compensate:
#
# $$
# \sigma^2_{\text{He}} = \frac{2}{n_{\text{in}}} .
# $$ (normalization-he)
#
# He et al. also noticed that the compromise is unnecessary: with the forward
# condition met, the backward factors of {eq}`normalization-backward-variance` are
# $n_l / n_{l-1}$, and their product over all layers telescopes to
# $n_L / n_1$, the ratio of the last and first widths, which does not grow with
# depth. Either condition alone keeps a deep network trainable; what must not
# happen is a factor other than 1 *at every layer*. PyTorch's default for
# `nn.Linear`, $U(-1/\sqrt{n}, 1/\sqrt{n})$, has variance $1/(3n)$; followed by a ReLU
# that is a factor $c\, n \sigma^2 = \tfrac16$ per layer, harmless in the shallow
# network of {doc}`autograd`, crippling in a deep one.
#
# In the library, every scheme is $\sigma = \text{gain}/\sqrt{\text{fan}}$, with a
# gain for the nonlinearity that follows ($\sqrt 2$ for a ReLU):
#
# ```{literalinclude} ../../code/scratch/engine/init.py
# :pyobject: calculate_gain
# ```
#
# ```{literalinclude} ../../code/scratch/engine/init.py
# :pyobject: _calculate_fan_in_and_fan_out
# ```
#
# ```{literalinclude} ../../code/scratch/engine/init.py
# :pyobject: xavier_normal_
# ```
#
# ```{literalinclude} ../../code/scratch/engine/init.py
# :pyobject: kaiming_normal_
# ```
#
# LeCun's scheme is Kaiming's with the linear gain, 1:
#
# ```{literalinclude} ../../code/scratch/engine/init.py
# :pyobject: lecun_normal_
# ```
#
# The fan of a convolution's weight, of shape (out, in, $k_1$, $k_2$), counts the
# kernel too: each output sums $\text{in} \cdot k_1 k_2$ products.
#
# ## Experiment 1: a deep network at initialization
#
# We push a batch of standard normal inputs through a stack of square layers
# (fan-in equals fan-out, so Xavier and LeCun coincide) and backpropagate a
# random gradient of unit variance from the top, recording every layer's
# activations $h^l$ and their gradients $\partial L / \partial h^l$ (with
# `retain_grad`, since intermediate gradients are otherwise freed). Five
# initializations: two arbitrary scales, $\mathcal N(0, 0.01^2)$ and
# $\mathcal N(0, 1)$, and the derived ones, each with the nonlinearity it was
# derived for, plus Xavier with a ReLU, the wrong pairing.

# %%
SCHEMES = {  # name: (nonlinearity, initialization of a weight, its variance sigma^2 for fan n)
    "N(0, 0.01²), tanh": (
        "tanh",
        lambda w: nn.init.normal_(w, 0.0, 0.01),
        lambda n: 0.01**2,
    ),
    "N(0, 1), tanh": ("tanh", lambda w: nn.init.normal_(w, 0.0, 1.0), lambda n: 1.0),
    "Xavier, tanh": ("tanh", nn.init.xavier_normal_, lambda n: 2 / (n + n)),
    "Xavier, ReLU": ("relu", nn.init.xavier_normal_, lambda n: 2 / (n + n)),
    "He, ReLU": (
        "relu",
        lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"),
        lambda n: 2 / n,
    ),
}


def signal_through_depth(nonlinearity, init, depth, width, x, seed):
    """Activations h^l and gradients dL/dh^l of every layer, for L = <v, h^depth> with random v."""
    utils.seed_everything(seed)  # the same weights' randomness for every scheme
    h, hs = Tensor(x, requires_grad=True), []  # the graph starts at the input
    for _ in range(depth):
        layer = nn.Linear(width, width, bias=False)
        init(layer.weight)
        layer.weight.requires_grad = (
            False  # we want the gradients of the activations only
        )
        h = layer(h)
        h = h.tanh() if nonlinearity == "tanh" else h.relu()
        hs.append(h.retain_grad())
    h.backward(
        np.random.default_rng(seed).standard_normal(h.shape)
    )  # dL/dh^depth = v, unit variance
    return [a.data for a in hs], [a.grad for a in hs]


x_probe = np.random.default_rng(cfg.seed).standard_normal(
    (cfg.probe_batch, cfg.width)
)  # (B, n)
signals = {
    name: signal_through_depth(act, init, cfg.depth, cfg.width, x_probe, cfg.seed)
    for name, (act, init, _) in SCHEMES.items()
}
layers = np.arange(1, cfg.depth + 1)

# %% [markdown]
# The mean and the standard deviation of the activations, and the standard
# deviation of their gradients, layer by layer (log scales: hover for the values;
# click a legend entry to hide a scheme):

# %%
fig = make_subplots(
    rows=1,
    cols=3,
    horizontal_spacing=0.08,
    subplot_titles=[
        "mean of the activations",
        "std of the activations",
        "std of the gradients dL/dh",
    ],
)
for i, (name, (acts, grads)) in enumerate(signals.items()):
    color = plots.COLORS[i % len(plots.COLORS)]
    for col, values in enumerate(
        [[a.mean() for a in acts], [a.std() for a in acts], [g.std() for g in grads]]
    ):
        fig.add_trace(
            go.Scatter(
                x=layers,
                y=values,
                name=name,
                legendgroup=name,
                showlegend=col == 0,
                mode="lines+markers",
                marker=dict(size=4),
                line=dict(color=color),
            ),
            row=1,
            col=col + 1,
        )
fig.update_yaxes(type="log", exponentformat="power", row=1, col=2)
fig.update_yaxes(type="log", exponentformat="power", row=1, col=3)
fig.update_xaxes(title_text="layer")
fig.update_layout(
    title=f"A {cfg.depth}-layer stack of width {cfg.width} at initialization",
    height=430,
    legend=dict(orientation="h", y=-0.25),
)
plots.show(fig, cfg.run_dir / "statistics_through_depth.html")


# %% [markdown]
# The two arbitrary scales fail in opposite ways. With $\mathcal N(0, 0.01^2)$ the
# activations shrink by a constant factor per layer until they are far below
# anything a float32 network could learn from, and the gradients reaching the
# first layers shrink just as fast. With $\mathcal N(0, 1)$ every $\tanh$ is
# saturated: the activations stay at a healthy-looking standard deviation near 1,
# but they are all close to $\pm 1$, where $\tanh' \approx 0$, and the gradient
# *grows* toward the input, because each layer multiplies it by
# $n \sigma^2 \mathbb{E}[f'^2]$, where $n \sigma^2$ is large. He with a ReLU keeps both
# curves flat; its activations have a positive mean,
# $\mathbb{E}[\max(0, z)] = \sigma_z / \sqrt{2\pi} \approx 0.4\, \sigma_z$, which is why eq.
# {eq}`normalization-forward-variance` needs the second moment. Xavier with a ReLU loses a factor $\tfrac12$ of the second moment
# per layer, as eq. {eq}`normalization-depth-product` predicts with $c = \tfrac12$.
# Xavier with a $\tanh$ sits in between: the linear-regime theory is exact only
# for small inputs, and $\tanh' < 1$ elsewhere makes the signal shrink slowly
# ({ref}`normalization-ex-2` tries a larger gain). The theory predicts the factor
# per layer of the activations' second moment, $c\, n \sigma^2$, and of the
# gradients' variance, $n \sigma^2 \mathbb{E}[f'^2]$; here is the prediction of the
# linear or ReLU analysis next to the geometric mean of the measured factors:


# %%
def factor_per_layer(moments):
    """Geometric mean of the ratios between consecutive layers."""
    return (moments[-1] / moments[0]) ** (1 / (len(moments) - 1))


print(f"{'':20}{'activations: E[h²] per layer':>30}{'gradients: Var per layer':>28}")
print(f"{'':20}{'predicted':>15}{'measured':>15}{'predicted':>14}{'measured':>14}")
init_factors = {}
for name, (act, _, sigma2) in SCHEMES.items():
    acts, grads = signals[name]
    c = 0.5 if act == "relu" else 1.0  # eq. (relu-moment); tanh in its linear regime
    predicted = (
        c * cfg.width * sigma2(cfg.width)
    )  # forward and backward agree for square layers
    fwd = factor_per_layer([np.mean(a**2) for a in acts])
    bwd = 1 / factor_per_layer([np.var(g) for g in grads])  # from the top down
    init_factors[name] = {"forward": fwd, "backward": bwd}
    print(f"{name:20}{predicted:>15.4g}{fwd:>15.4g}{predicted:>14.4g}{bwd:>14.4g}")

# %% [markdown]
# Where the assumptions hold, the measured factors match: the tiny weights keep
# every $\tanh$ in its linear regime, and a ReLU's $c = \tfrac12$ is exact. The
# saturated network is the one the linear theory cannot describe: its forward
# factor is 1 because $\tanh$ caps the signal, not because the scale is right,
# and its backward factor falls far short of the prediction, though it stays
# above 1, because $\tanh'^2$ is small almost everywhere.
# Histograms at three depths show what the summary statistics hide; pick a scheme
# in the menu:

# %%
shown_layers = sorted({1, (cfg.depth + 1) // 2, cfg.depth})
names = list(signals)
fig = plots.histograms(
    {f"layer {l}": signals[names[0]][0][l - 1] for l in shown_layers},
    title=f"Activations of {names[0]}",
    xlabel="activation h",
    bins=80,
)
for name in names[1:]:  # the other schemes' traces, hidden until picked in the menu
    for row, l in enumerate(shown_layers, start=1):
        fig.add_trace(
            go.Histogram(
                x=signals[name][0][l - 1].ravel(),
                nbinsx=80,
                visible=False,
                showlegend=False,
                marker_color=plots.COLORS[(row - 1) % len(plots.COLORS)],
            ),
            row=row,
            col=1,
        )
per_scheme = len(shown_layers)
autorange = {
    f"xaxis{'' if r == 1 else r}.autorange": True for r in range(1, per_scheme + 1)
}
fig.update_layout(
    updatemenus=[
        dict(
            type="dropdown",
            x=1,
            xanchor="right",
            y=1.12,
            yanchor="bottom",
            active=0,
            buttons=[
                dict(
                    label=name,
                    method="update",
                    args=[
                        {
                            "visible": [
                                j // per_scheme == i
                                for j in range(len(names) * per_scheme)
                            ]
                        },
                        {"title": f"Activations of {name}", **autorange},
                    ],
                )
                for i, name in enumerate(names)
            ],
        )
    ]
)
fig.update_yaxes(title_text="count")
plots.show(fig, cfg.run_dir / "activation_histograms.html")


# %% [markdown]
# Look at the $\mathcal N(0, 1)$ histograms: two spikes at $\pm 1$, a network of
# binary switches whose gradients are almost all zero. With He and a ReLU every
# layer looks like the first: a spike at zero (the half of the units that are
# off) and the same spread of positive values.
#
# ## Normalization: fixing the scale during training
#
# A good initialization sets the scale at step 0; nothing keeps it there once the
# weights start to move. {cite:t}`ioffe2015batch` proposed to normalize the
# activations explicitly, inside the network, at every step.
#
# ### Batch normalization
#
# For one feature (a unit of a fully connected layer, or a channel of a
# convolution), take the $m$ values it has in the current mini-batch (times the
# spatial positions, for a convolution), standardize them with their own mean and
# variance, then let the network rescale them with two learned parameters, $\gamma$
# and $\beta$:
#
# $$
# \mu = \frac1m \sum_{i=1}^m x_i, \qquad
# \sigma^2 = \frac1m \sum_{i=1}^m (x_i - \mu)^2, \qquad
# \hat x_i = \frac{x_i - \mu}{\sqrt{\sigma^2 + \epsilon}}, \qquad
# y_i = \gamma \hat x_i + \beta .
# $$ (normalization-bn-forward)
#
# The small $\epsilon$ (PyTorch's $10^{-5}$) guards against a zero variance. With
# $\gamma = \sqrt{\sigma^2 + \epsilon}$ and $\beta = \mu$ the layer is the
# identity, so it removes nothing the network could need; what it changes is that
# the scale and the offset of the signal are now two parameters per feature
# instead of a product of every weight below. A bias in the layer before is
# redundant (it is subtracted with $\mu$), so layers followed by batch norm
# usually have none.
#
# At test time there may be one example, not a batch, and a prediction should not
# depend on which other examples happen to share its batch. So batch norm keeps
# *running* estimates of each feature's mean and variance, exponential moving
# averages updated at every training step with a momentum $\alpha$ (PyTorch's
# 0.1), and uses them in evaluation:
#
# $$
# \hat\mu \leftarrow (1 - \alpha)\, \hat\mu + \alpha\, \mu, \qquad
# \hat\sigma^2 \leftarrow (1 - \alpha)\, \hat\sigma^2 + \alpha\, \frac{m}{m-1} \sigma^2, \qquad
# \hat x_{\text{eval}} = \frac{x - \hat\mu}{\sqrt{\hat\sigma^2 + \epsilon}} ,
# $$ (normalization-running)
#
# the variance with Bessel's correction, as PyTorch does. Training and evaluation
# therefore compute different functions; Experiment 2 shows where that bites.
#
# ### The backward pass
#
# Autograd could differentiate eq. {eq}`normalization-bn-forward` op by op, but the
# derivative has a compact closed form, and it explains what the layer does to
# gradients. Write $s = \sqrt{\sigma^2 + \epsilon}$. Since
# $\partial \mu / \partial x_i = 1/m$ and
# $\partial \sigma^2 / \partial x_i = \tfrac2m (x_i - \mu)$ (the term through $\mu$
# vanishes because the deviations sum to zero), $\partial s / \partial x_i = \hat x_i / m$,
# and the quotient rule gives
#
# $$
# \frac{\partial \hat x_j}{\partial x_i} = \frac1s \left( \delta_{ij} - \frac1m - \frac{\hat x_i\, \hat x_j}{m} \right) .
# $$ (normalization-bn-jacobian)
#
# With $\bar{\hat x}_j = \gamma\, \bar y_j$ the gradient arriving at $\hat x$,
# $\bar x_i = \sum_j \bar{\hat x}_j\, \partial \hat x_j / \partial x_i$, which is
#
# $$
# \bar x = \frac1s \Big( \bar{\hat x} - \operatorname{mean}\big(\bar{\hat x}\big) - \hat x \operatorname{mean}\big(\bar{\hat x} \odot \hat x\big) \Big),
# \qquad \bar\gamma = \sum_i \bar y_i\, \hat x_i, \qquad \bar\beta = \sum_i \bar y_i ,
# $$ (normalization-bn-backward)
#
# the means taken over the same $m$ values as the statistics. The bracket is the
# incoming gradient with its mean and its component along $\hat x$ projected out:
# adding a constant to all $x_i$, or scaling them, leaves $\hat x$ unchanged, so
# the gradient can have no component in those two directions. In evaluation,
# $\hat\mu$ and $\hat\sigma^2$ are constants and only $\bar x = \bar{\hat x} / s$
# remains.
#
# ### Layer and group normalization
#
# Nothing in eqs. {eq}`normalization-bn-forward` and {eq}`normalization-bn-backward`
# requires the $m$ values to come from different examples. *Layer normalization*
# {cite:p}`ba2016layer` standardizes each example over its own features (all
# channels and positions), and *group normalization* {cite:p}`wu2018group` over
# each group of $C/G$ consecutive channels (and the positions). Neither looks at
# the other examples, so both compute the same function in training and in
# evaluation, with no running statistics, and neither cares about the batch size.
# For an image batch of shape $(N, C, H, W)$ the statistics are taken over
#
# | layer | axes of one $\mu, \sigma$ | values $m$ | $\gamma, \beta$ |
# |---|---|---|---|
# | batch norm | $N, H, W$ (one channel) | $N H W$ | per channel |
# | layer norm | $C, H, W$ (one example) | $C H W$ | per element |
# | group norm | $C/G$ channels, $H, W$ (one example) | $(C/G)\, H W$ | per channel |
#
# With $G = 1$ group norm is layer norm (but with per-channel $\gamma, \beta$), and
# with $G = C$ each channel of each example is standardized on its own.
#
# ### Why it helps
#
# {cite:t}`ioffe2015batch` argued that normalization reduces *internal covariate
# shift*, the change in the distribution of a layer's inputs as the layers below
# it learn. {cite:t}`santurkar2018how` tested this directly: injecting random
# shifts of the distribution after each batch norm layer barely hurt, and batch
# norm did not reduce their measure of the shift. What it does do, they found, is
# make the loss and its gradient change more slowly along the training
# trajectory (a smoother landscape), so that larger steps stay safe. A simpler
# property points the same way: the output of batch norm does not change when the
# weights $W$ of the layer before it are multiplied by any $a > 0$, so the
# gradient shrinks as $1/a$ ({ref}`normalization-ex-3`); a step that
# grows the weights makes the following steps smaller.
#
# ## Implementation
#
# All three layers standardize over some axes and apply $\gamma, \beta$; they
# share the code for both. The forward pass keeps $\hat x$ and $1/s$, all that
# eq. {eq}`normalization-bn-backward` needs:
#
# ```{literalinclude} ../../code/scratch/engine/normalization.py
# :pyobject: _standardize
# ```
#
# ```{literalinclude} ../../code/scratch/engine/normalization.py
# :pyobject: _standardize_backward
# ```
#
# `batch_norm` picks the axes (every axis but the channels, axis 1), updates the
# running statistics in training, eq. {eq}`normalization-running`, and uses them,
# as constants, in evaluation. It refuses to train on one value per channel,
# where $\sigma^2 = 0$ and $\hat x$ is meaningless:
#
# ```{literalinclude} ../../code/scratch/engine/normalization.py
# :pyobject: batch_norm
# ```
#
# Layer and group norm are the same core over other axes:
#
# ```{literalinclude} ../../code/scratch/engine/normalization.py
# :pyobject: layer_norm
# ```
#
# ```{literalinclude} ../../code/scratch/engine/normalization.py
# :pyobject: group_norm
# ```
#
# :::{admonition} The affine step and the batch norm module
# :class: dropdown
# `_affine` applies $\gamma$ and $\beta$ as one graph node, whose backward pass
# sends $\gamma \bar y$ to the normalization's backward and sums $\bar\gamma$,
# $\bar\beta$ over the shared axes:
#
# ```{literalinclude} ../../code/scratch/engine/normalization.py
# :pyobject: _affine
# ```
#
# `nn.BatchNorm1d` and `nn.BatchNorm2d` hold $\gamma$, $\beta$ and the running
# statistics, as buffers, and choose between the two modes with `model.train()`
# and `model.eval()`. Like every layer, they live in `nn.py`, above the
# functions they call, as in PyTorch:
#
# ```{literalinclude} ../../code/scratch/engine/nn.py
# :pyobject: _BatchNorm.forward
# ```
# :::
#
# ### Checking the backward pass
#
# First, against autograd itself: batch norm written as plain engine operations,
# a throwaway version, so that the engine derives the backward pass by the chain
# rule. The two must agree, and the fused one should be faster, since the naive
# graph keeps a temporary the size of $x$ for every operation:


# %%
def naive_batch_norm(x, weight, bias, eps=1e-5):
    """Batch norm in training mode for (N, C) inputs, from engine ops: autograd does the backward."""
    mean = x.mean(axis=0, keepdims=True)  # (1, C)
    centered = x - mean  # (N, C)
    var = (centered * centered).mean(
        axis=0, keepdims=True
    )  # (1, C), biased, as in training
    return weight * centered / (var + eps).sqrt() + bias


def fused_batch_norm(x, weight, bias):
    return F.batch_norm(
        x, None, None, weight, bias, training=True
    )  # None: no running statistics


rng = np.random.default_rng(cfg.seed)
x_np = rng.standard_normal((256, 512)) * 3 + 1  # (N, C): not standardized, on purpose
w_np, b_np, upstream = (
    rng.standard_normal(512),
    rng.standard_normal(512),
    rng.standard_normal((256, 512)),
)
grads, seconds = {}, {}
for name, fn in {
    "naive (autograd)": naive_batch_norm,
    "fused (eq. bn-backward)": fused_batch_norm,
}.items():
    started = time.perf_counter()
    for _ in range(10):
        x_t = Tensor(x_np, requires_grad=True)
        fn(
            x_t, Tensor(w_np, requires_grad=True), Tensor(b_np, requires_grad=True)
        ).backward(upstream)
    seconds[name], grads[name] = (time.perf_counter() - started) / 10, x_t.grad
    print(f"{name:24} forward + backward: {seconds[name] * 1e3:6.2f} ms")
naive_vs_fused = np.abs(
    grads["naive (autograd)"] - grads["fused (eq. bn-backward)"]
).max()
print(f"largest |difference| between the two input gradients: {naive_vs_fused:.1e}")
# Two float64 computations of one gradient (entries up to ~1): rounding, measured 1e-15. 1e-10
# leaves a wide margin; a wrong backward formula misses by O(1).
assert naive_vs_fused <= 1e-10, (
    f"fused batch norm backward != autograd's: {naive_vs_fused:.1e}"
)
g = grads["fused (eq. bn-backward)"]
xhat = (x_np - x_np.mean(0)) / np.sqrt(x_np.var(0) + 1e-5)
print(
    f"largest over the channels of |sum of the gradient|: {np.abs(g.sum(0)).max():.1e}, "
    f"of |its dot product with x-hat|: {np.abs((g * xhat).sum(0)).max():.1e}"
)
# Per channel the sum is 0 up to the rounding of 256 terms of size ~1 (measured 2e-14), and the
# dot product is exactly (1/s) sum(gamma * upstream * xhat) eps / (sigma^2 + eps) (from the formula:
# sum xhat^2 = m sigma^2 / (sigma^2 + eps)), up to 2.5e-5 here, which it must match to rounding
# (measured 2.8e-14). 1e-10 for both.
var_np = x_np.var(0)
predicted_dot = (
    (w_np * upstream * xhat).sum(0) / np.sqrt(var_np + 1e-5) * 1e-5 / (var_np + 1e-5)
)
assert np.abs(g.sum(0)).max() <= 1e-10, (
    "the batch norm input gradient does not sum to zero"
)
assert np.abs((g * xhat).sum(0) - predicted_dot).max() <= 1e-10, (
    "the gradient's component along x-hat is wrong"
)

# %% [markdown]
# The last line checks the projection of eq. {eq}`normalization-bn-backward`: per
# channel, the input gradient sums to zero (to rounding) and is orthogonal to
# $\hat x$ up to a term of order $\epsilon$ (with $\epsilon > 0$,
# $\sum_i \hat x_i^2 = m \sigma^2 / (\sigma^2 + \epsilon)$ falls just short of $m$).
#
# Then against the two oracles of {doc}`autograd`: PyTorch, in float64, for the
# output and the input gradient of every layer in both modes (and for the running
# statistics that training mode updates), and finite differences, with
# `gradcheck`, for the gradients of the input, $\gamma$ and $\beta$:

# %%
x_np = rng.standard_normal((8, 6, 5, 5)) * 3 + 1  # (N, C, H, W)
up_np = rng.standard_normal(x_np.shape)  # the gradient arriving from above
gamma, beta = rng.standard_normal(6), rng.standard_normal(6)  # per channel
ln_gamma, ln_beta = (
    rng.standard_normal((6, 5, 5)),
    rng.standard_normal((6, 5, 5)),
)  # per element
running = [np.zeros(6), np.ones(6)]  # ours, updated in place
t_running = [
    torch.zeros(6, dtype=torch.float64),
    torch.ones(6, dtype=torch.float64),
]  # PyTorch's
T = torch.from_numpy

CASES = {  # name: (ours, PyTorch's), each a function of the input
    "batch_norm, training": (
        lambda x: F.batch_norm(x, *running, gamma, beta, training=True),
        lambda x: TF.batch_norm(x, *t_running, T(gamma), T(beta), training=True),
    ),
    "batch_norm, evaluation": (
        lambda x: F.batch_norm(x, *running, gamma, beta, training=False),
        lambda x: TF.batch_norm(x, *t_running, T(gamma), T(beta), training=False),
    ),
    "layer_norm over (C, H, W)": (
        lambda x: F.layer_norm(x, (6, 5, 5), ln_gamma, ln_beta),
        lambda x: TF.layer_norm(x, (6, 5, 5), T(ln_gamma), T(ln_beta)),
    ),
    "group_norm, 3 groups": (
        lambda x: F.group_norm(x, 3, gamma, beta),
        lambda x: TF.group_norm(x, 3, T(gamma), T(beta)),
    ),
}

torch_diffs = {}
print(f"{'max |ours - PyTorch|':28}{'output':>10}{'input gradient':>16}")
for name, (ours, theirs) in CASES.items():
    x, tx = Tensor(x_np, requires_grad=True), torch.tensor(x_np, requires_grad=True)
    y, ty = ours(x), theirs(tx)
    y.backward(up_np)
    ty.backward(T(up_np))
    torch_diffs[name] = (
        np.abs(y.data - ty.detach().numpy()).max(),
        np.abs(x.grad - tx.grad.numpy()).max(),
    )
    print(f"{name:28}{torch_diffs[name][0]:>10.1e}{torch_diffs[name][1]:>16.1e}")
stats_diff = max(np.abs(a - b.numpy()).max() for a, b in zip(running, t_running))
print(f"{'running statistics':28}{stats_diff:>10.1e}")
# float64 on both sides, outputs and gradients of size ~1 to ~10: rounding, measured <= 2.2e-15
# (outputs), 8.9e-16 (gradients), 6.7e-16 (running statistics). 1e-10 is far above rounding and
# far below any wrong formula or mode.
for name, (output_diff, gradient_diff) in torch_diffs.items():
    assert output_diff <= 1e-10 and gradient_diff <= 1e-10, (
        f"{name}: differs from PyTorch by {output_diff:.1e} (output), {gradient_diff:.1e} (input gradient)"
    )
assert stats_diff <= 1e-10, (
    f"running statistics differ from PyTorch's by {stats_diff:.1e}"
)

x_small = Tensor(
    rng.standard_normal((4, 3, 2, 2)) * 2 + 1
)  # gradcheck: 2 forward passes per element
g3, b3 = Tensor(rng.standard_normal(3)), Tensor(rng.standard_normal(3))
checks = {
    "batch_norm, training": lambda x, g, b: F.batch_norm(
        x, None, None, g, b, training=True
    ),
    "batch_norm, evaluation": lambda x, g, b: F.batch_norm(
        x, np.full(3, 0.5), np.full(3, 2.0), g, b
    ),
    "layer_norm over (C, H, W)": lambda x, g, b: F.layer_norm(
        x,
        (3, 2, 2),
        g.reshape(3, 1, 1) * np.ones((3, 2, 2)),
        b.reshape(3, 1, 1) * np.ones((3, 2, 2)),
    ),
    "group_norm, 3 groups": lambda x, g, b: F.group_norm(x, 3, g, b),
}
gradcheck_passed = all(
    gradcheck(fn, [x_small, g3, b3]) for fn in checks.values()
)  # raises on a mismatch
print(
    f"gradcheck (input, gamma, beta) of all four: {'passed' if gradcheck_passed else 'FAILED'}"
)


# %% [markdown]
# The differences are float64 rounding.
#
# ## Experiment 2: batch norm in training and in evaluation
#
# The other experiments train small MLPs on a subsample of MNIST, flattened and
# standardized with the training set's mean and standard deviation. One function,
# around the engine's `make_mlp` ({doc}`autograd`), builds them all: `n_layers`
# blocks of `Linear`, an optional normalization layer
# and a ReLU, He-initialized (so that without normalization they start well too),
# then a linear layer to the ten classes.


# %%
def load_mnist(n_train: int, n_test: int, seed: int):
    """Flattened MNIST subsets as float32, standardized with the training subset's statistics."""
    (x, y), (x_test, y_test) = data.mnist("train"), data.mnist("test")
    x, y = data.subsample(x, y, n_train, seed)
    x_test, y_test = data.subsample(x_test, y_test, n_test, seed)
    x, x_test = (
        data.as_float(x).reshape(len(x), -1),
        data.as_float(x_test).reshape(len(x_test), -1),
    )
    mean, std = x.mean(), x.std()
    return (x - mean) / std, y, (x_test - mean) / std, y_test


NORM_LAYERS = {
    "none": None,
    "BatchNorm": lambda width: nn.BatchNorm1d(width, dtype=np.float32),
    "LayerNorm": lambda width: nn.LayerNorm(width, dtype=np.float32),
    "GroupNorm": lambda width: nn.GroupNorm(cfg.groups, width, dtype=np.float32),
}


def norm_mlp(norm: str, n_layers: int, width: int, seed: int) -> nn.Sequential:
    """784 -> [Linear -> norm -> ReLU] x n_layers -> 10, float32: the engine's make_mlp, He-initialized
    (the head Xavier), from a generator seeded by `seed`. A Linear before a norm has no bias: beta is it."""
    return make_mlp(
        [784] + [width] * n_layers + [10],
        nn.ReLU,
        norm_layer=NORM_LAYERS[norm],
        init_weight=lambda w, g: nn.init.kaiming_normal_(
            w, nonlinearity="relu", generator=g
        ),
        init_last=lambda w, g: nn.init.xavier_normal_(w, generator=g),
        seed=seed,
        dtype=np.float32,
    )


def whole_batches(x, y, batch_size: int):
    """Drop the last few examples if they would form a batch of 1, on which batch norm cannot train."""
    n = len(x) - 1 if len(x) % batch_size == 1 else len(x)
    return x[:n], y[:n]


x_train, y_train, x_test, y_test = load_mnist(
    max(cfg.n_train, cfg.bs_train), cfg.n_test, cfg.seed
)
print(f"train {x_train.shape}, test {x_test.shape}")
print(norm_mlp("BatchNorm", cfg.bs_layers, cfg.bs_hidden, cfg.seed))

# %% [markdown]
# ### Batches of one, and of two
#
# In training mode a batch of one gives every feature $\sigma^2 = 0$ and $\hat x = 0$:
# the layer would erase its input. PyTorch refuses with an error, and so do we; in
# evaluation mode, with running statistics, one example is fine:

# %%
bn = nn.BatchNorm1d(4)
one = Tensor(rng.standard_normal((1, 4)))
try:
    bn(one)
except ValueError as err:
    print(f"training mode, batch of 1: ValueError: {err}")
print(f"evaluation mode, batch of 1: {bn.eval()(one)}")

# %% [markdown]
# A batch of two is allowed, and nearly as bad. Each feature has two values,
# $\mu$ is their midpoint, and the standardized values are $\pm 1$ (up to
# $\epsilon$), whatever the input: the layer tells the next one only *which* of
# the two examples is larger, feature by feature ({ref}`normalization-ex-5`).

# %%
bn.train()
two = Tensor(rng.standard_normal((2, 4)) * 10)
print("input:\n", two.data.round(3))
print("batch norm output (gamma = 1, beta = 0):\n", bn(two).data.round(6))


# %% [markdown]
# ### Batch size: batch norm against layer and group norm
#
# We train the small MLP with each normalization at each batch size, the learning
# rate scaled in proportion to the batch size as in {cite:t}`wu2018group`'s
# experiments, for the same number of epochs, and measure the test accuracy. For
# batch norm we measure it twice: in evaluation mode, with the running
# statistics (how it is meant to be used), and in training mode, each test batch,
# of the training batch size, normalized with its own statistics (the function the
# network was trained as). A callback records the first batch norm layer's
# running mean during the run at the largest batch size, for the next figure.


# %%
class RunningMeanTrace(Callback):
    """The running mean of the first channels of a BatchNorm layer, after every step."""

    def __init__(self, layer, channels: int = 3):
        self.layer, self.channels, self.trace = layer, channels, []

    def on_fit_start(self, state):
        self.trace.append(self.layer.running_mean[: self.channels].copy())

    def on_batch_end(self, state):
        self.trace.append(self.layer.running_mean[: self.channels].copy())


def accuracy_with_batch_statistics(model, x, y, batch_size: int) -> float:
    """Test accuracy in training mode: each test batch normalized with its own statistics."""
    saved = (
        model.state_dict()
    )  # training mode updates the running statistics: keep them
    model.train()
    n = len(x) // batch_size * batch_size
    with no_grad():
        predictions = np.concatenate(
            [
                model(Tensor(x[i : i + batch_size])).data.argmax(axis=1)
                for i in range(0, n, batch_size)
            ]
        )
    model.load_state_dict(saved)
    return float((predictions == y[:n]).mean())


x_bs, y_bs = x_train[: cfg.bs_train], y_train[: cfg.bs_train]
norms = ("BatchNorm", "GroupNorm", "LayerNorm")
columns = (
    "BatchNorm, running statistics",
    "BatchNorm, test-batch statistics",
    "GroupNorm",
    "LayerNorm",
)
bs_acc = {(c, b): [] for c in columns for b in cfg.batch_sizes}
started = time.perf_counter()
for batch_size in cfg.batch_sizes:
    lr = cfg.bs_lr * batch_size / max(cfg.batch_sizes)
    xb, yb = whole_batches(x_bs, y_bs, batch_size)
    for norm in norms:
        for seed in range(cfg.seed, cfg.seed + cfg.seeds):
            model = norm_mlp(norm, cfg.bs_layers, cfg.bs_hidden, seed)
            callbacks = ()
            if (
                norm == "BatchNorm"
                and batch_size == max(cfg.batch_sizes)
                and seed == cfg.seed
            ):
                traced_model, traced = (
                    model,
                    RunningMeanTrace(model[1]),
                )  # model[1]: the first BatchNorm
                callbacks = (traced,)
            fit_arrays(
                model,
                optim.SGD(model.parameters(), lr=lr, momentum=cfg.momentum),
                xb,
                yb,
                epochs=cfg.bs_epochs,
                batch_size=batch_size,
                callbacks=callbacks,
                seed=seed,
                verbose=False,
            )
            acc = evaluate(model, x_test, y_test)[
                "val_acc"
            ]  # evaluate() switches to eval mode
            if norm == "BatchNorm":
                bs_acc[columns[0], batch_size].append(acc)
                bs_acc[columns[1], batch_size].append(
                    accuracy_with_batch_statistics(model, x_test, y_test, batch_size)
                )
            else:
                bs_acc[norm, batch_size].append(acc)
bs_seconds = time.perf_counter() - started

print(
    f"test accuracy, mean over {cfg.seeds} seed(s), after {cfg.bs_epochs} epoch(s) "
    f"({bs_seconds:.1f} s for all runs)"
)
print(f"{'batch size':>34}" + "".join(f"{b:>8}" for b in cfg.batch_sizes))
for c in columns:
    print(
        f"{c:>34}" + "".join(f"{np.mean(bs_acc[c, b]):>8.3f}" for b in cfg.batch_sizes)
    )

# %%
fig = go.Figure()
for c in columns:
    fig.add_trace(
        go.Bar(
            x=[str(b) for b in cfg.batch_sizes],
            y=[np.mean(bs_acc[c, b]) for b in cfg.batch_sizes],
            error_y=dict(
                type="data",
                array=[np.std(bs_acc[c, b]) for b in cfg.batch_sizes],
                visible=cfg.seeds > 1,
            ),
            name=c,
            hovertemplate="%{y:.3f}",
        )
    )
fig.update_layout(
    barmode="group",
    title="Test accuracy against the training batch size"
    + (f" (mean and std over {cfg.seeds} seeds)" if cfg.seeds > 1 else ""),
    xaxis_title="batch size",
    yaxis_title="test accuracy",
    height=420,
    legend=dict(orientation="h", y=-0.2),
)
fig.update_yaxes(range=[0, 1])
plots.show(fig, cfg.run_dir / "batch_size.html")

# %% [markdown]
# Layer and group norm do not look at the batch, and their accuracy barely moves
# with its size. Batch norm's collapses at the smallest batch: trained on pairs,
# the network only ever saw the $\pm 1$ patterns above, and the running averages
# describe a distribution that its training-mode function never met. Normalizing
# the test batches with their own statistics does not rescue it either; the
# network itself learned little from such coarse signals. At the largest batch,
# batch norm is competitive again. This is the gap that group norm was designed
# to close: object detection and segmentation train on a few large
# images per device, where batch norm's statistics are this noisy.
#
# The running mean is an exponential moving average of the batch means. Since
# $\hat\mu_t = (1 - \alpha) \hat\mu_{t-1} + \alpha \mu_t$, the batch means can be
# read back from the trace, $\mu_t = (\hat\mu_t - (1 - \alpha)\hat\mu_{t-1}) / \alpha$;
# the dashed lines are each channel's mean over the whole training set, computed
# with the final weights:

# %%
running_means = np.array(traced.trace)  # (steps + 1, channels)
alpha = traced_model[1].momentum
batch_means = (running_means[1:] - (1 - alpha) * running_means[:-1]) / alpha
with no_grad():
    full_means = traced_model[0](Tensor(x_bs)).data.mean(axis=0)[
        : running_means.shape[1]
    ]
steps = np.arange(len(running_means))
fig = go.Figure()
for c in range(running_means.shape[1]):
    color = plots.COLORS[c]
    fig.add_trace(
        go.Scatter(
            x=steps[1:],
            y=batch_means[:, c],
            mode="markers",
            marker=dict(size=3, color=color),
            opacity=0.5,
            name=f"channel {c}: batch mean",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=steps,
            y=running_means[:, c],
            mode="lines",
            line=dict(color=color),
            name=f"channel {c}: running mean",
        )
    )
    fig.add_hline(y=full_means[c], line=dict(color=color, dash="dash", width=1))
fig.update_layout(
    title=f"Running mean of the first BatchNorm layer (batch size {max(cfg.batch_sizes)})",
    xaxis_title="step",
    yaxis_title="mean of the pre-activation",
    height=420,
)
plots.show(fig, cfg.run_dir / "running_mean.html")


# %% [markdown]
# ### A prediction that depends on the neighbours
#
# In training mode, one example's output depends on the rest of its batch. We
# put the same test images into random batches of the size the network was
# trained with, several times, and count the images whose predicted class changes
# with their companions; in evaluation mode none can:


# %%
def unstable_predictions(model, x, batch_size: int, repeats: int, seed: int) -> float:
    """Fraction of the images whose predicted class changes with the batch they are put in (training mode)."""
    saved = model.state_dict()
    model.train()
    rng = np.random.default_rng(seed)
    n = len(x) // batch_size * batch_size
    predictions = np.empty((repeats, n), dtype=np.int64)
    with no_grad():
        for r in range(repeats):
            order = rng.permutation(n)
            for i in range(0, n, batch_size):
                rows = order[i : i + batch_size]
                predictions[r, rows] = model(Tensor(x[rows])).data.argmax(axis=1)
    model.load_state_dict(saved)
    return float((predictions != predictions[0]).any(axis=0).mean())


n_probe, repeats, b_train = min(320, len(x_test)), 10, max(cfg.batch_sizes)
unstable = unstable_predictions(
    traced_model, x_test[:n_probe], b_train, repeats, cfg.seed
)
print(
    f"BatchNorm model trained at batch size {b_train}; {n_probe} test images, each in "
    f"{repeats} random batches of {b_train}:"
)
print(
    f"  training mode:   {unstable:.1%} of the images change their predicted class with their companions"
)
print("  evaluation mode: 0%, by construction (the running statistics are fixed)")


# %% [markdown]
# Forgetting `model.eval()` before testing is one of the most common bugs in deep
# learning code: the accuracy still looks plausible, it merely depends on the
# batch, and the running statistics are silently updated with test data (which is
# why both helpers above save and restore the state).
#
# ## Experiment 3: normalization and training speed
#
# The claim of {cite:t}`ioffe2015batch` was speed: the same accuracy in far fewer
# steps, mostly because much larger learning rates become usable. We train a
# deeper MLP, without normalization, with batch norm and with layer norm, at each
# learning rate of a sweep, all from He initialization (so the plain network
# starts well: the comparison isolates what normalization adds during training),
# and record the training loss at every step and the test accuracy every few
# steps, with a callback. A run whose loss overflows is stopped by `fit_arrays` and
# recorded as diverged.


# %%
class Probe(Callback):
    """Every step: the training loss; every `every` steps and at the end: the test accuracy."""

    def __init__(self, x, y, every: int):
        self.x, self.y, self.every = x, y, every
        self.losses, self.steps, self.acc = [], [], []

    def _evaluate(self, state):
        self.steps.append(state.step)
        self.acc.append(evaluate(state.model, self.x, self.y)["val_acc"])

    def on_fit_start(self, state):
        self._evaluate(state)

    def on_batch_end(self, state):
        self.losses.append(state.loss)
        if state.step % self.every == 0:
            self._evaluate(state)

    def on_fit_end(self, state):
        if self.steps[-1] != state.step:
            self._evaluate(state)


methods = ("none", "BatchNorm", "LayerNorm")
xd, yd = whole_batches(x_train[: cfg.n_train], y_train[: cfg.n_train], cfg.batch_size)
runs = {}
started = time.perf_counter()
for norm in methods:
    for lr in cfg.lrs:
        model = norm_mlp(norm, cfg.deep_layers, cfg.deep_hidden, cfg.seed)
        probe = Probe(x_test, y_test, cfg.eval_every)
        try:
            with np.errstate(
                over="ignore", invalid="ignore"
            ):  # a diverging run overflows: expected
                fit_arrays(
                    model,
                    optim.SGD(model.parameters(), lr=lr, momentum=cfg.momentum),
                    xd,
                    yd,
                    epochs=cfg.epochs,
                    batch_size=cfg.batch_size,
                    callbacks=(probe,),
                    seed=cfg.seed,
                    verbose=False,
                )
            diverged = False
        except FloatingPointError:
            diverged = True
        reached = next(
            (s for s, a in zip(probe.steps, probe.acc) if a >= cfg.target_acc), None
        )
        runs[norm, lr] = dict(
            losses=probe.losses,
            diverged=diverged,
            reached=reached,
            final_acc=None if diverged else probe.acc[-1],
        )
deep_seconds = time.perf_counter() - started
total_steps = cfg.epochs * -(-len(xd) // cfg.batch_size)


def run_summary(run) -> str:
    if run["diverged"]:
        return f"diverged at {len(run['losses']) + 1}"
    return (
        f"{run['reached']:>4} ({run['final_acc']:.3f})"
        if run["reached"] is not None
        else f"  -- ({run['final_acc']:.3f})"
    )


print(
    f"{cfg.deep_layers} hidden layers of {cfg.deep_hidden}, {total_steps} steps per run "
    f"({deep_seconds:.1f} s for all runs)"
)
print(
    f"steps to {cfg.target_acc:.0%} test accuracy (final test accuracy); -- : never reached"
)
print(f"{'learning rate':>14}" + "".join(f"{m:>20}" for m in methods))
for lr in cfg.lrs:
    print(f"{lr:>14g}" + "".join(f"{run_summary(runs[m, lr]):>20}" for m in methods))

# %% [markdown]
# The training loss of the three networks on one plot, for each learning rate
# (drag the slider; the curves are smoothed over `eval_every` steps, and end where
# a run diverged):

# %%
fig = go.Figure()
for lr in cfg.lrs:
    for i, norm in enumerate(methods):
        run = runs[norm, lr]
        fig.add_trace(
            go.Scatter(
                x=np.arange(1, len(run["losses"]) + 1),
                y=plots.smooth(run["losses"], cfg.eval_every),
                mode="lines",
                visible=lr == cfg.lrs[len(cfg.lrs) // 2],
                line=dict(color=plots.COLORS[i]),
                name=norm + (" (diverged)" if run["diverged"] else ""),
            )
        )
n = len(methods)
fig.update_layout(
    title=f"Training loss, MLP with {cfg.deep_layers} hidden layers",
    xaxis_title="step",
    yaxis_title="training loss (moving average)",
    height=460,
    sliders=[
        dict(
            active=len(cfg.lrs) // 2,
            currentvalue=dict(prefix="learning rate "),
            pad=dict(t=50),
            steps=[
                dict(
                    label=f"{lr:g}",
                    method="update",
                    args=[{"visible": [j // n == k for j in range(len(cfg.lrs) * n)]}],
                )
                for k, lr in enumerate(cfg.lrs)
            ],
        )
    ],
)
lowest = min(
    min(plots.smooth(run["losses"], cfg.eval_every))
    for run in runs.values()
    if run["losses"]
)
# Up to 10x the loss of a uniform guess, ln(10): a diverging run leaves through the top.
fig.update_yaxes(
    type="log",
    tickvals=[0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20],
    range=[np.log10(0.7 * lowest), np.log10(10 * np.log(10))],
)
plots.show(fig, cfg.run_dir / "loss_curves.html")

# %%
fig = go.Figure()
for i, norm in enumerate(methods):
    reached = [runs[norm, lr]["reached"] for lr in cfg.lrs]
    fig.add_trace(
        go.Scatter(
            x=list(cfg.lrs),
            y=[np.nan if r is None else r for r in reached],
            mode="lines+markers",
            name=norm,
            line=dict(color=plots.COLORS[i]),
        )
    )
fig.update_xaxes(type="log", title_text="learning rate", tickvals=list(cfg.lrs))
fig.update_yaxes(rangemode="tozero")
fig.update_layout(
    title=f"Steps to {cfg.target_acc:.0%} test accuracy (missing: diverged or never reached)",
    yaxis_title="steps",
    height=400,
)
plots.show(fig, cfg.run_dir / "steps_to_target.html")


# %% [markdown]
# Without normalization the network reaches the target only at the smaller
# learning rates; from some rate on its loss overflows and `fit_arrays` stops the run
# (the table says at which step). Batch norm reaches the target over a wider range
# of rates, including some at which the plain network diverges, which is what
# lets it take larger, faster steps. Layer norm lies between the two here: it
# fixes the scale of each example's activations, but not of each feature across
# the batch. And a run can fail without diverging: at the largest rates the
# normalized networks keep their numbers finite, yet may learn little, as their
# final accuracies in the table show. The results below compare the fastest run
# of each network.
#
# ## Results
#
# This run, the recorded `full` run, and the papers'. The papers trained far
# larger networks on ImageNet, so only the direction and the rough size of the
# effects compare: {cite:t}`ioffe2015batch` reached their baseline's accuracy in
# 14 times fewer steps with batch norm (with a learning rate 5 times larger and a
# few other changes), and {cite:t}`wu2018group` report a ResNet-50 whose error at
# 2 images per device is 10.6 points lower with group norm than with batch norm.
# (To record the `full` run: `python code/foundations/normalization.py --profile full`,
# on a CPU since the engine is NumPy, then copy `runs/normalization/metrics.json`
# to `results/normalization.json`.)


# %%
def best_steps(norm):
    """Fewest steps to the target over the learning rates, and at which rate (None if never)."""
    reached = [
        (runs[norm, lr]["reached"], lr)
        for lr in cfg.lrs
        if runs[norm, lr]["reached"] is not None
    ]
    return min(reached) if reached else (None, None)


b_small = min(cfg.batch_sizes)
gap = 100 * (
    np.mean(bs_acc["GroupNorm", b_small])
    - np.mean(bs_acc["BatchNorm, running statistics", b_small])
)
best = {m: best_steps(m) for m in methods}
speedup = (
    best["none"][0] / best["BatchNorm"][0]
    if best["none"][0] and best["BatchNorm"][0]
    else None
)
usable = {m: sum(runs[m, lr]["reached"] is not None for lr in cfg.lrs) for m in methods}

metrics = {
    "init_factor_forward": {k: v["forward"] for k, v in init_factors.items()},
    "init_factor_backward": {k: v["backward"] for k, v in init_factors.items()},
    "max_diff_vs_torch": {
        k: {"output": float(a), "input_grad": float(b)}
        for k, (a, b) in torch_diffs.items()
    },
    "max_diff_running_stats_vs_torch": float(stats_diff),
    "max_diff_naive_vs_fused": float(naive_vs_fused),
    "gradcheck_passed": gradcheck_passed,
    "batch_size_accuracy": {
        f"{c} @ {b}": float(np.mean(v)) for (c, b), v in bs_acc.items()
    },
    "gn_minus_bn_points_at_smallest_batch": float(gap),
    "unstable_predictions_train_mode": unstable,
    "steps_to_target": {
        f"{m} @ {lr:g}": runs[m, lr]["reached"] for m in methods for lr in cfg.lrs
    },
    "final_accuracy": {
        f"{m} @ {lr:g}": runs[m, lr]["final_acc"] for m in methods for lr in cfg.lrs
    },
    "best_steps_to_target": {m: best[m][0] for m in methods},
    "speedup_batchnorm_vs_none": speedup,
}

metrics["learning_rates_reaching_target"] = usable
rows = results_table(
    cfg,
    metrics,
    seconds=time.perf_counter() - run_started,
    title="GN - BN: test accuracy gap at the smallest batch (points); none / BN: "
    "ratio of the fewest steps to the target; lrs: learning rates that reach it",
    columns={
        "config.batch_sizes": ("smallest batch", lambda sizes: f"{min(sizes)}"),
        "gn_minus_bn_points_at_smallest_batch": ("GN - BN", ".1f"),
        "speedup_batchnorm_vs_none": ("none / BN", ".3g"),
        "learning_rates_reaching_target.none": ("lrs: none", "d"),
        "learning_rates_reaching_target.BatchNorm": ("lrs: BN", "d"),
    },
    references=[
        Reference(
            "ResNet-50, ImageNet",
            {"config.batch_sizes": (2,), "gn_minus_bn_points_at_smallest_batch": 10.6},
            source="wu2018group",
        ),
        Reference(
            "ImageNet", {"speedup_batchnorm_vs_none": 14}, source="ioffe2015batch"
        ),
    ],
    notes=[
        "fastest runs: "
        + ", ".join(
            f"{m}: {best[m][0]} steps at lr {best[m][1]:g}"
            if best[m][0] is not None
            else f"{m}: target never reached"
            for m in methods
        )
    ],
)
assert rows[0].values["speedup_batchnorm_vs_none"] == speedup

# %%
utils.save_run(
    cfg.run_dir / "metrics.json", cfg, metrics, time.perf_counter() - run_started
)
print(f"metrics written to {cfg.run_dir / 'metrics.json'}")

# %% [markdown]
# ## Summary
#
# - Each layer multiplies the variance of the signal by $c\, n_{\text{in}} \sigma^2$
#   on the way forward and of the gradient by $n_{\text{out}} \sigma^2 \mathbb{E}[f'^2]$ on the
#   way back, eqs. {eq}`normalization-forward-variance` and
#   {eq}`normalization-backward-variance`; over many layers these factors compound
#   exponentially, so they must be 1.
# - That fixes the initialization: $\sigma^2 = 1/n_{\text{in}}$ (LeCun) or
#   $2/(n_{\text{in}} + n_{\text{out}})$ (Xavier) for $\tanh$-like units,
#   $2/n_{\text{in}}$ (He) for ReLUs. Write it as a gain over $\sqrt{\text{fan}}$.
# - Batch, layer and group norm standardize over different sets of values and
#   rescale with learned $\gamma, \beta$. Their backward pass projects the mean
#   and the $\hat x$ direction out of the gradient, eq. {eq}`normalization-bn-backward`.
# - Batch norm computes one function in training (batch statistics) and another
#   in evaluation (running averages): call `model.eval()`, and expect it to fail
#   at batches of one or two. Layer and group norm do not depend on the batch.
# - Normalized networks tolerate a much wider range of learning rates; the
#   reason is less "internal covariate shift" than a smoother loss and the scale
#   invariance of the weights below a normalization.
#
# ## Exercises
#
# :::{exercise}
# :label: normalization-ex-1
# A leaky ReLU, $f(z) = \max(z, a z)$ with $0 \le a < 1$, lets a fraction $a$ of
# negative inputs through. Redo eq. {eq}`normalization-relu-moment` for it, derive
# the variance that keeps the forward signal at a constant scale, and check it
# against `nn.init.calculate_gain("leaky_relu", a)`.
# :::
#
# :::{solution} normalization-ex-1
# :class: dropdown
# For a symmetric $z$, half of the inputs are positive and keep their square, the
# other half are multiplied by $a$: $\mathbb{E}[f(z)^2] = \tfrac12 (1 + a^2)\operatorname{Var}(z)$.
# A factor of 1 per layer needs $\tfrac12 (1 + a^2)\, n_{\text{in}} \sigma^2 = 1$, so
# $\sigma = \sqrt{2 / (1 + a^2)} / \sqrt{n_{\text{in}}}$: the gain is
# $\sqrt{2/(1 + a^2)}$, $\sqrt 2$ for $a = 0$ (He) and 1 for $a = 1$ (a linear
# unit, LeCun).
#
# ```python
# import math
# import numpy as np
# from scratch.engine import nn
#
# a = 0.2
# print(nn.init.calculate_gain("leaky_relu", a), math.sqrt(2 / (1 + a * a)))
# z = np.random.default_rng(0).standard_normal(1_000_000)
# print(np.mean(np.maximum(z, a * z) ** 2), (1 + a * a) / 2)
# ```
# :::
#
# :::{exercise}
# :label: normalization-ex-2
# In Experiment 1, Xavier with $\tanh$ loses signal slowly with depth. Why, if
# $n \sigma^2 = 1$? PyTorch's `calculate_gain("tanh")` is $5/3$: rerun
# `signal_through_depth` with `lambda w: nn.init.xavier_normal_(w, gain=5 / 3)` and
# compare the standard deviations of the activations and of the gradients.
# :::
#
# :::{solution} normalization-ex-2
# :class: dropdown
# The factor per layer is $n \sigma^2\, \mathbb{E}[\tanh(z)^2] / \operatorname{Var}(z)$, and
# $\tanh(z)^2 < z^2$ for every $z \neq 0$, so it is below 1 unless the signal is
# tiny, where it then stays. A gain $g > 1$ multiplies the factor by $g^2$, and the
# signal settles where $g^2\, \mathbb{E}[\tanh(z)^2] = \operatorname{Var}(z)$, a fixed point
# of order 1 that is not saturated:
#
# ```python
# acts, grads = signal_through_depth("tanh", lambda w: nn.init.xavier_normal_(w, gain=5 / 3),
#                                    cfg.depth, cfg.width, x_probe, cfg.seed)
# print([round(float(a.std()), 3) for a in acts[::4]])  # settles at a constant, well below 1
# print([f"{g.std():.2g}" for g in grads[::4]])          # grows slowly toward the input (layer 1 first)
# ```
# The forward signal now settles at a fixed point of order 1, neither vanishing
# nor saturated. The gradient, instead of shrinking, grows slowly toward the
# input: at that fixed point its factor per layer, $g^2\, \mathbb{E}[\tanh'(z)^2]$, is
# a little above 1. For $\tanh$ no gain makes both factors exactly 1; 5/3 is an
# empirical compromise that keeps both within a modest factor over tens of layers.
# :::
#
# :::{exercise}
# :label: normalization-ex-3
# Let $y = \mathrm{BN}(x W^\top)$ in training mode, with a scalar loss $L(y)$. Show
# that $y$ does not change when $W$ is replaced by $a W$ for any $a > 0$, and
# deduce that $\nabla_{aW} L = \tfrac1a \nabla_W L$ and $\langle \nabla_W L, W \rangle = 0$.
# Check both with the engine. What happens to $\|W\|$ during SGD, and to the
# effective step size?
# :::
#
# :::{solution} normalization-ex-3
# :class: dropdown
# Scaling $W$ scales every pre-activation, their mean and their standard
# deviation by $a$, so $\hat x$ (up to $\epsilon$) and $y$ are unchanged:
# $L(aW) = L(W)$. Differentiating with respect to $W$ gives
# $a \nabla L(aW) = \nabla L(W)$. Differentiating with respect to $a$ at $a = 1$
# gives $\langle \nabla L(W), W \rangle = 0$.
#
# ```python
# import numpy as np
# import scratch.engine.functional as F
# from scratch.engine import Tensor
#
# rng = np.random.default_rng(0)
# x, w0, v = rng.standard_normal((32, 10)), rng.standard_normal((5, 10)), rng.standard_normal((32, 5))
# grads = {}
# for a in (1.0, 10.0):
#     w = Tensor(a * w0, requires_grad=True)
#     (F.batch_norm(x @ w.T, None, None, training=True) * v).sum().backward()
#     grads[a] = w.grad
# scale = np.abs(grads[1.0]).max()
# print(np.abs(grads[10.0] * 10 - grads[1.0]).max() / scale)  # tiny (only eps breaks the invariance): the gradient scales as 1/a
# print(np.sum(grads[1.0] * w0) / (np.linalg.norm(grads[1.0]) * np.linalg.norm(w0)))  # cosine ~0: orthogonal
# ```
# Because the gradient is orthogonal to $W$, an SGD step
# $W \leftarrow W - \eta \nabla$ can only *grow* $\|W\|$ (Pythagoras), and since
# only the direction of $W$ matters and the gradient scales as $1/\|W\|$, the
# angle a step turns $W$ by is about $\eta \|\nabla\| / \|W\| \propto \eta / \|W\|^2$:
# too large a learning rate grows the norm until the effective step is small.
# (Weight decay pulls the other way; the two settle at an equilibrium.)
# :::
#
# :::{exercise}
# :label: normalization-ex-4
# In evaluation mode batch norm is an affine map per feature, so it can be folded
# into the `Linear` layer before it. Give the folded weight and bias, build the
# folded layer for the first block of `traced_model`, and check that it gives the
# same outputs as `Linear` followed by `BatchNorm1d` in evaluation mode.
# :::
#
# :::{solution} normalization-ex-4
# :class: dropdown
# With $s = \sqrt{\hat\sigma^2 + \epsilon}$ per feature,
# $\gamma (W x + b - \hat\mu) / s + \beta = W' x + b'$ with
# $W' = \operatorname{diag}(\gamma / s)\, W$ and $b' = \gamma (b - \hat\mu)/s + \beta$
# ($b = 0$ when the layer has no bias).
#
# ```python
# linear, bn = traced_model[0], traced_model[1]
# s = np.sqrt(bn.running_var + bn.eps)
# folded = nn.Linear(linear.in_features, linear.out_features, dtype=np.float32)
# folded.weight.data[...] = linear.weight.data * (bn.weight.data / s)[:, None]
# folded.bias.data[...] = bn.bias.data - bn.weight.data * bn.running_mean / s
# traced_model.eval()
# with no_grad():
#     x = Tensor(x_test[:100])
#     print(np.abs(folded(x).data - bn(linear(x)).data).max())  # float32 rounding
# ```
# Deployed networks do this: batch norm then costs nothing at inference. Layer
# and group norm cannot be folded, since their statistics depend on the input.
# :::
#
# :::{exercise}
# :label: normalization-ex-5
# Show that batch norm in training mode on a batch of two values $x_1 \neq x_2$
# outputs $\hat x = \pm 1$ (for $\epsilon \to 0$), whatever $x_1, x_2$. What does
# its backward pass, eq. {eq}`normalization-bn-backward`, send back?
# :::
#
# :::{solution} normalization-ex-5
# :class: dropdown
# $\mu = (x_1 + x_2)/2$, so $x_{1,2} - \mu = \pm d$ with $d = (x_1 - x_2)/2$, and
# $\sigma^2 = d^2$: $\hat x_{1,2} = \pm d / \sqrt{d^2 + \epsilon} \to \pm \operatorname{sign}(d)$.
# The output is constant wherever $x_1 \neq x_2$, so its derivative is zero
# (for $\epsilon \to 0$). In eq. {eq}`normalization-bn-backward`, any
# $\bar{\hat x} = (u_1, u_2)$ minus its mean is $\tfrac{u_1 - u_2}{2}(1, -1)$, which
# points along $\hat x = \pm(1, -1)$; removing that component too leaves exactly
# zero. Only $\epsilon$ lets a little gradient through: the layers below a batch
# norm that sees pairs barely learn.
# :::
#
# ## References
#
# ```{bibliography}
# :filter: docname in docnames
# ```
