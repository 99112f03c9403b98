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
# (mlp)=
# # Neural networks from first principles
#
# A straight line cannot separate the two classes of XOR, and for a long time that
# simple fact stood between neural networks and everything they do today. This
# chapter builds the multilayer perceptron, the network that gets past it: neurons,
# layers, activations, a softmax output trained with cross-entropy. We derive its
# gradients by hand, as matrix equations, write them in a few lines of NumPy, and
# check them against finite differences and against the engine of {doc}`autograd`.
# Then we train it twice: on XOR, with our hand-written backward pass, and on
# handwritten digits, with the engine's `nn` and its one training loop, and we look
# at what it learned from several sides: its weights, its gradients, its mistakes
# and the shape of its loss around the solution it found.

# %%
import time
from dataclasses import dataclass, field

import numpy as np
import plotly.graph_objects as go
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import scratch.engine.functional as F
from scratch import plots, utils
from scratch.config import Config, ConfigError, positive, unit_interval
from scratch.engine import Tensor, gradcheck, nn, no_grad, optim
from scratch.engine.loop import Callback, evaluate, fit_arrays
from scratch.engine.tensor import _make
from scratch.results import results_table


# %% tags=["hide-input"]
@dataclass
class MLPConfig(Config):
    """The chapter's knobs: XOR with a hand-written network, then digits with the engine."""

    NAME = "mlp"  # outputs go to out_dir/mlp

    # ---- XOR ---------------------------------------------------------------------------
    xor_per_corner: int = field(
        default=50,
        metadata=positive(
            "points in each of XOR's four corner clouds: enough to draw the boundary, cheap to train on"
        ),
    )
    xor_noise: float = field(
        default=0.25,
        metadata=positive(
            "std of each cloud around its corner (+-1, +-1): the clouds stay apart, so 100% is reachable"
        ),
    )
    xor_hidden: int = field(
        default=4,
        metadata=positive(
            "tanh units of the hand-written network: 2 suffice in principle, 4 train far more reliably (the study)"
        ),
    )
    xor_lr: float = field(
        default=0.5,
        metadata=positive(
            "full-batch gradient-descent step: of 0.1, 0.5 and 1, 0.5 converges within the steps without jumps"
        ),
    )
    xor_steps: int = field(
        default=1000,
        metadata=positive(
            "full-batch steps: a run that succeeds has its loss near zero well before 1000"
        ),
    )
    xor_study_widths: tuple[int, ...] = field(
        default=(2, 3, 4, 8),
        metadata=positive(
            "hidden widths of the seed study: from the minimum (2) to comfortably wide"
        ),
    )
    xor_study_seeds: int = field(
        default=20,
        metadata=positive(
            "initializations per width in the study: 20 tell 'always' from 'three times in four'"
        ),
    )
    snapshots: int = field(
        default=20,
        metadata=positive(
            "frames of the XOR animations (decision boundary, network weights)"
        ),
    )
    grid: int = field(
        default=60,
        metadata=positive(
            "grid points per axis where decision boundaries are drawn: 60 x 60 looks smooth"
        ),
    )
    gradcheck_batch: int = field(
        default=16,
        metadata=positive(
            "points in the batch of the gradient checks: the check costs 2 forward passes per weight"
        ),
    )

    # ---- digits ------------------------------------------------------------------------
    test_fraction: float = field(
        default=0.25,
        metadata=unit_interval(
            "share of the 1797 digits held out: a quarter, about 450 images, pins accuracy to about +-1.5 points"
        ),
    )
    hidden: int = field(
        default=64,
        metadata=positive(
            "hidden ReLU units: as many as input pixels; wider barely helps on 8x8 digits"
        ),
    )
    epochs: int = field(
        default=30,
        metadata=positive(
            "passes over the training digits: the test accuracy has levelled off by then"
        ),
    )
    batch_size: int = field(
        default=32,
        metadata=positive(
            "digits per SGD step: about 40 steps an epoch, each cheap in NumPy"
        ),
    )
    lr: float = field(
        default=0.05,
        metadata=positive(
            "SGD step size: 0.05 and 0.1 both reach about 97% with momentum; 0.05 is the calmer"
        ),
    )
    momentum: float = field(
        default=0.9,
        metadata=unit_interval(
            "SGD momentum: the usual 0.9, an average over about 10 steps"
        ),
    )
    landscape_points: int = field(
        default=25,
        metadata=positive(
            "grid points per axis of the loss-landscape slice: 25 x 25 forward passes"
        ),
    )
    landscape_span: float = field(
        default=1.0,
        metadata=positive(
            "half-width of the slice, in units of the filter-normalized directions (1 = each neuron's own norm)"
        ),
    )

    PROFILES = {
        "tiny": dict(
            threads=1,
            xor_per_corner=10,
            xor_steps=150,
            xor_study_widths=(2, 4),
            xor_study_seeds=2,
            snapshots=4,
            grid=15,
            gradcheck_batch=4,
            epochs=2,
            landscape_points=5,
        ),  # tests: seconds
        "small": dict(threads=1),  # the book build: a NumPy engine on a laptop CPU
        "full": dict(
            xor_study_seeds=200,
            xor_steps=3000,
            hidden=256,
            epochs=100,
            snapshots=40,
            grid=120,
            landscape_points=61,
        ),  # still NumPy on a CPU, minutes
    }

    def validate(self):
        if self.landscape_points < 2 or self.grid < 2 or self.snapshots < 2:
            raise ConfigError(
                "landscape_points, grid and snapshots must each be at least 2"
            )


cfg = MLPConfig.from_cli()
utils.seed_everything(cfg.seed)
run_started = time.perf_counter()


# %% [markdown]
# ## Motivation: what a straight line cannot do
#
# {doc}`autograd` gave us the gradient of anything we can compute. The question
# left open is *what* to compute: which function of the input, with which
# parameters, should gradient descent tune?
#
# The simplest answer is a linear one. Rosenblatt's perceptron
# {cite:p}`rosenblatt1958perceptron` computes a weighted sum of its inputs and
# thresholds it, $\hat y = [w^\top x + b > 0]$; logistic and softmax regression
# replace the threshold by a probability. Whatever the output, the decision
# boundary $w^\top x + b = 0$ is a straight line (a hyperplane in more
# dimensions). {cite:t}`minsky1969perceptrons` analysed what such units can and
# cannot compute, and the smallest thing they cannot is XOR: label a point of the
# plane 1 when exactly one of its coordinates is positive. No line does it. With
# the corners $(\pm 1, \pm 1)$, a line would need $w^\top x + b > 0$ at $(1, -1)$
# and at $(-1, 1)$, whose sum gives $b > 0$, and $< 0$ at $(1, 1)$ and at
# $(-1, -1)$, whose sum gives $b < 0$.
#
# Let us watch it fail. Four clouds of points around the corners, labelled by XOR,
# and a linear classifier (one `nn.Linear` giving two logits, so softmax
# regression) trained with the engine's training loop:


# %%
def xor_data(per_corner: int, noise: float, seed: int) -> tuple:
    """Gaussian clouds around the corners (+-1, +-1); label 1 where the signs differ (XOR)."""
    rng = np.random.default_rng(seed)
    corners = np.repeat(
        np.array([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]]),
        per_corner,
        axis=0,
    )
    x = corners + noise * rng.standard_normal(corners.shape)  # (4 * per_corner, 2)
    y = (corners[:, 0] * corners[:, 1] < 0).astype(np.int64)  # (4 * per_corner,)
    return x, y


x_xor, y_xor = xor_data(cfg.xor_per_corner, cfg.xor_noise, cfg.seed)
xs = np.linspace(-2.2, 2.2, cfg.grid)  # the grid where boundaries are drawn
ys = np.linspace(-2.2, 2.2, cfg.grid)
grid_points = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(
    -1, 2
)  # (grid^2, 2), y outer, x inner

linear = nn.Linear(2, 2)
linear_history = fit_arrays(
    linear,
    optim.SGD(linear.parameters(), lr=0.1, momentum=0.9),
    x_xor,
    y_xor,
    epochs=50,
    batch_size=32,
    val=(x_xor, y_xor),
    seed=cfg.seed,
    verbose=False,
)
with no_grad():
    linear_grid = (
        F.softmax(linear(Tensor(grid_points)), dim=-1)
        .data[:, 1]
        .reshape(cfg.grid, cfg.grid)
        .astype(np.float32)
    )
print(
    f"linear model on XOR: accuracy {linear_history['val_acc'][-1]:.3f}, "
    f"loss {linear_history['val_loss'][-1]:.4f} (log 2 = {np.log(2):.4f}: a coin flip)"
)

# %%
fig = plots.decision_boundary(
    [("trained", linear_grid)],
    xs,
    ys,
    x_xor,
    y_xor,
    title="A linear classifier on XOR: the best line is no better than a guess",
)
plots.show(fig, cfg.run_dir / "xor_linear.html")


# %% [markdown]
# The loss the run above prints stays at about $\log 2$, the loss of predicting
# 0.5 everywhere, and the picture shows why: the trained "boundary" is a faint
# tilt of probabilities close to 0.5 across the whole plane. Any line gets at
# most three of the four clouds right, and cross-entropy prefers "unsure
# everywhere" to "confidently wrong on a whole cloud", so the best a linear model
# can do is to say almost nothing; its accuracy is whatever that faint tilt
# happens to give, nowhere near 1. The fix is to let the model *bend* its boundary, by composing
# linear maps with something that is not linear.
#
# ## Theory
#
# ### Neurons, layers, activations
#
# A *neuron* computes a weighted sum of its inputs plus a bias and passes it
# through a fixed nonlinear function $\varphi$, its *activation*:
#
# $$
# a = \varphi\big(w^\top x + b\big), \qquad x, w \in \mathbb{R}^{n},\ b \in \mathbb{R}.
# $$ (mlp-neuron)
#
# A *layer* is $m$ neurons reading the same input; stacking their weights as the
# rows of $W \in \mathbb{R}^{m \times n}$ (PyTorch's layout, `weight` of shape
# (out_features, in_features)) gives $a = \varphi(W x + b)$. A *multilayer
# perceptron* (MLP) chains layers, each reading the previous one's output. For a
# batch of $B$ inputs as the rows of $X \in \mathbb{R}^{B \times D}$, the two-layer
# network of this chapter, with $H$ hidden units and $K$ classes, computes
#
# $$
# Z_1 = X W_1^\top + \mathbf{1} b_1^\top, \qquad A_1 = \varphi(Z_1), \qquad
# Z_2 = A_1 W_2^\top + \mathbf{1} b_2^\top, \qquad P = \operatorname{softmax}(Z_2),
# $$ (mlp-forward)
#
# with $W_1 \in \mathbb{R}^{H \times D}$, $W_2 \in \mathbb{R}^{K \times H}$,
# $\mathbf{1}$ a column of $B$ ones (the bias is added to every row) and the
# softmax taken row by row. The activation is what makes depth worth having:
# without it, $Z_2 = X (W_2 W_1)^\top + \text{const}$ is again linear, a single
# layer in disguise. The classic choices are the logistic sigmoid
# $\sigma(z) = 1/(1 + e^{-z})$, $\tanh(z)$ (a sigmoid stretched to $(-1, 1)$,
# $\tanh' = 1 - \tanh^2$), and the rectified linear unit
# $\operatorname{relu}(z) = \max(z, 0)$ (derivative 0 or 1), the default of modern
# networks.
#
# How much can one hidden layer do? Everything continuous, in principle.
# {cite:t}`cybenko1989approximation` proved for continuous sigmoidal $\varphi$, and
# {cite:t}`hornik1991approximation` for any continuous, bounded and nonconstant $\varphi$,
# that for every continuous $f$ on a compact set $\mathcal{K} \subset \mathbb{R}^D$
# and every $\varepsilon > 0$ there is a width $H$ and weights with
#
# $$
# \sup_{x \in \mathcal{K}} \Big| f(x) - \sum_{j=1}^{H} \alpha_j\, \varphi\big(w_j^\top x + b_j\big) \Big| < \varepsilon .
# $$ (mlp-universal)
#
# This *universal approximation* theorem says that the weights exist, not that
# gradient descent finds them, nor how large $H$ must be (for some functions it must grow
# exponentially with $D$). Both questions come back in this chapter: the seed
# study below shows gradient descent missing weights that exist.
#
# ### Softmax, cross-entropy and the log-sum-exp trick
#
# For classification the network's last layer outputs $K$ *logits* $z$ per input,
# turned into probabilities by the softmax,
#
# $$
# p_k = \frac{e^{z_k}}{\sum_{j=1}^{K} e^{z_j}} ,
# $$ (mlp-softmax)
#
# and trained by maximum likelihood: minimize the mean negative log-probability
# of the true classes $y_n$, the *cross-entropy*,
#
# $$
# L = -\frac{1}{B} \sum_{n=1}^{B} \log p_{n, y_n}
#   = \frac{1}{B} \sum_{n=1}^{B} \Big( \log \sum_{j} e^{z_{nj}} - z_{n, y_n} \Big).
# $$ (mlp-cross-entropy)
#
# Computed as written, both formulas break in floating point. `exp` overflows to
# infinity above about 709 in float64 (88 in float32), and $\infty / \infty$ is
# NaN; far below the largest logit, a probability underflows to exactly 0, and
# its log is $-\infty$. Both are repaired by one identity, true for any constant
# $m$:
#
# $$
# \log \sum_j e^{z_j} = m + \log \sum_j e^{z_j - m}, \qquad m = \max_j z_j .
# $$ (mlp-logsumexp)
#
# With $m$ the largest logit every exponent is at most 0, so nothing overflows,
# and the largest term is exactly $e^0 = 1$, so the sum is at least 1 and its log
# is finite. The naive and the stable versions, on logits of a confident network:


# %%
def softmax_naive(z):
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def log_softmax_stable(z):
    """z - logsumexp(z), with the shift of eq. (mlp-logsumexp)."""
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


logits = np.array(
    [
        [2.0, 1.0, 0.1],  # a modest row: both versions agree
        [1000.0, 1001.0, 1002.0],  # large logits: exp overflows
        [-800.0, 0.0, 5.0],
    ]
)  # p_0 underflows: its log is -inf
with np.errstate(
    over="ignore", invalid="ignore", divide="ignore"
):  # we print the damage instead
    naive = softmax_naive(logits)
    naive_log = np.log(naive)
stable_log = log_softmax_stable(logits)
for row, p_naive, logp_naive, logp_stable in zip(logits, naive, naive_log, stable_log):
    print(
        f"logits {row}\n  naive softmax      {p_naive}\n  naive log-softmax  {logp_naive}\n"
        f"  stable log-softmax {logp_stable}\n  stable softmax     {np.exp(logp_stable)}"
    )
naive_fails = bool(~np.isfinite(naive_log).all())


# %% [markdown]
# The engine's `F.log_softmax` and `F.cross_entropy` use the stable form
# ({doc}`autograd` shows them). The last piece we need is the gradient of
# {eq}`mlp-cross-entropy` with respect to the logits. For one example,
# $\ell = \log \sum_j e^{z_j} - z_y$, and $\partial\, \log\sum_j e^{z_j} / \partial z_k = p_k$, so
#
# $$
# \frac{\partial \ell}{\partial z_k} = p_k - [k = y], \qquad
# \bar Z_2 := \frac{\partial L}{\partial Z_2} = \frac{1}{B}\,(P - Y),
# $$ (mlp-softmax-grad)
#
# where $Y$ holds the one-hot rows of the labels. Predicted minus observed: the
# exponentials and logarithms cancel, which is why libraries fuse softmax and
# cross-entropy into one operation.
#
# ### Backpropagation, by hand
#
# Write $\bar V = \partial L / \partial V$ for the gradient of the loss with
# respect to any array $V$ of {eq}`mlp-forward`; it has $V$'s shape. We start
# from $\bar Z_2$ of {eq}`mlp-softmax-grad` and walk the forward pass backwards,
# one line per equation, using only the chain rule of {doc}`autograd`.
#
# *Second layer.* Entry $(n, k)$ of $Z_2$ is $\sum_h A_1[n, h]\, W_2[k, h] + b_2[k]$.
# So $W_2[k, h]$ influences $Z_2[n, k]$ for every $n$, with derivative
# $A_1[n, h]$, and the chain rule sums over $n$:
# $\bar W_2[k, h] = \sum_n \bar Z_2[n, k]\, A_1[n, h]$. The bias appears in every
# row with derivative 1. In matrix form:
#
# $$
# \bar W_2 = \bar Z_2^\top A_1 \quad (K \times H), \qquad \bar b_2 = \bar Z_2^\top \mathbf{1} \quad (K).
# $$ (mlp-grad-w2)
#
# *Into the hidden layer.* $A_1[n, h]$ influences all $K$ logits of row $n$, with
# derivatives $W_2[k, h]$:
#
# $$
# \bar A_1 = \bar Z_2\, W_2 \quad (B \times H).
# $$ (mlp-grad-a1)
#
# *Through the activation,* which acts elementwise, so its Jacobian is diagonal
# and the product with it is elementwise:
#
# $$
# \bar Z_1 = \bar A_1 \odot \varphi'(Z_1) \quad (B \times H), \qquad
# \varphi'(Z_1) = 1 - A_1^{\odot 2} \text{ for } \tanh, \quad [Z_1 > 0] \text{ for ReLU}.
# $$ (mlp-grad-z1)
#
# *First layer,* the same as the second with $X$ in place of $A_1$:
#
# $$
# \bar W_1 = \bar Z_1^\top X \quad (H \times D), \qquad \bar b_1 = \bar Z_1^\top \mathbf{1} \quad (H),
# $$ (mlp-grad-w1)
#
# and, should a layer below need it (or to ask which pixels the loss is sensitive to),
#
# $$
# \bar X = \bar Z_1\, W_1 \quad (B \times D).
# $$ (mlp-grad-x)
#
# Equations {eq}`mlp-grad-w2` to {eq}`mlp-grad-x` are *backpropagation*
# {cite:p}`rumelhart1986learning` for this network: three matrix products per
# layer (one forward, two backward), so a backward pass costs about twice a
# forward one. Every line has the same pattern, which is what a library
# automates: the gradient of a layer's input is the gradient of its output times
# its weights, and the gradient of its weights is the gradient of its output
# times its input.
#
# ## Implementation
#
# ### The network in NumPy
#
# The equations translate line by line. The forward pass keeps what the backward
# pass needs ($X$, $A_1$, $P$); nothing else is stored, and there is no graph:
# the order of the backward computations is fixed by hand. One liberty, for the
# seed study below: every weight array may carry a leading axis of *stacked*
# networks, $S$ independent networks trained at once by the same NumPy calls.
# That is why the code writes `.mT` (the transpose of the last two axes; `.T`
# for a single matrix), sums over axis `-2` (the batch axis) and gives each
# bias a batch axis with `[..., None, :]`. Read it first with $S$ absent.


# %%
class TwoLayerMLP:
    """D -> H (tanh) -> K logits, with the forward pass (mlp-forward) and the backward
    pass (mlp-softmax-grad to mlp-grad-x) written by hand. Weights in PyTorch's layout.

    With stacked=S, every weight gets a leading axis of S independent networks."""

    def __init__(
        self,
        d_in: int,
        hidden: int,
        n_classes: int,
        seed: int,
        stacked: int | None = None,
    ):
        rng = np.random.default_rng(seed)
        s = () if stacked is None else (stacked,)
        # U(-1/sqrt(fan_in), 1/sqrt(fan_in)), as nn.Linear: the pre-activations start at unit scale
        bound1, bound2 = 1 / np.sqrt(d_in), 1 / np.sqrt(hidden)
        self.params = {
            "W1": rng.uniform(-bound1, bound1, s + (hidden, d_in)),  # ([S,] H, D)
            "b1": rng.uniform(-bound1, bound1, s + (hidden,)),  # ([S,] H)
            "W2": rng.uniform(-bound2, bound2, s + (n_classes, hidden)),  # ([S,] K, H)
            "b2": rng.uniform(-bound2, bound2, s + (n_classes,)),
        }  # ([S,] K)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities P ([S,] B, K) for inputs X (B, D); keeps X, A1, P for backward."""
        p = self.params
        a1 = np.tanh(x @ p["W1"].mT + p["b1"][..., None, :])  # ([S,] B, H)
        z2 = a1 @ p["W2"].mT + p["b2"][..., None, :]  # ([S,] B, K)
        shifted = z2 - z2.max(
            axis=-1, keepdims=True
        )  # the log-sum-exp shift (mlp-logsumexp)
        self.log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        probs = np.exp(self.log_probs)
        self.cache = (x, a1, probs)
        return probs

    def loss(self, x: np.ndarray, y: np.ndarray):
        """Mean cross-entropy (mlp-cross-entropy), from the stable log-probabilities:
        a float, or one per stacked network."""
        self.forward(x)
        return -self.log_probs[..., np.arange(len(y)), y].mean(axis=-1)

    def backward(self, y: np.ndarray) -> dict:
        """dL/d(each parameter) and dL/dX, for the batch of the last forward pass."""
        x, a1, probs = self.cache
        p, batch = self.params, len(y)
        dz2 = probs.copy()
        dz2[..., np.arange(batch), y] -= 1  # P - Y
        dz2 /= batch  # ([S,] B, K)  (mlp-softmax-grad)
        grads = {
            "W2": dz2.mT @ a1,
            "b2": dz2.sum(axis=-2),
        }  # ([S,] K, H), ([S,] K)  (mlp-grad-w2)
        da1 = dz2 @ p["W2"]  # ([S,] B, H)  (mlp-grad-a1)
        dz1 = da1 * (1 - a1**2)  # ([S,] B, H)  (mlp-grad-z1), tanh
        grads.update(
            W1=dz1.mT @ x, b1=dz1.sum(axis=-2)
        )  # ([S,] H, D), ([S,] H)  (mlp-grad-w1)
        grads["X"] = dz1 @ p["W1"]  # ([S,] B, D)  (mlp-grad-x)
        return grads


# %% [markdown]
# ### Checking the hand-derived gradients twice
#
# A wrong gradient does not crash; training just goes worse, quietly. So we check
# ours with the two oracles of {doc}`autograd`. The first is finite differences,
# through the engine's `gradcheck`. To use it, we turn our network into an engine
# operation: one node whose forward is our `loss` and whose backward returns our
# hand-derived gradients, through the same `_make` every operation of the engine
# is built with. `gradcheck` then compares that backward pass, element by
# element, with central differences of our forward pass, for all four weight
# arrays *and* the input.


# %%
def by_hand(x, w1, b1, w2, b2, y):
    """Our NumPy network as one engine op: forward = TwoLayerMLP.loss, backward = TwoLayerMLP.backward."""
    net = TwoLayerMLP.__new__(
        TwoLayerMLP
    )  # no random init: the weights come from the arguments
    net.params = {"W1": w1.data, "b1": b1.data, "W2": w2.data, "b2": b2.data}
    loss = net.loss(x.data, y)  # a 0-d array: one network
    grads = net.backward(y)
    return _make(
        np.array(loss),
        (x, w1, b1, w2, b2),
        lambda g: tuple(g * grads[k] for k in ("X", "W1", "b1", "W2", "b2")),
        "two_layer_mlp",
    )


check_net = TwoLayerMLP(2, cfg.xor_hidden, 2, seed=cfg.seed)
rows = np.random.default_rng(cfg.seed).choice(
    len(x_xor), cfg.gradcheck_batch, replace=False
)
x_check, y_check = x_xor[rows], y_xor[rows]
inputs = [Tensor(x_check)] + [
    Tensor(check_net.params[k]) for k in ("W1", "b1", "W2", "b2")
]
n_checked = sum(t.size for t in inputs)
passed = gradcheck(
    lambda *ts: by_hand(*ts, y_check), inputs
)  # raises AssertionError on a mismatch
print(
    f"gradcheck of the hand-derived backward pass: {passed} ({n_checked} numbers checked)"
)

# %% [markdown]
# The second oracle is the engine's automatic differentiation: the same network,
# written with engine operations, differentiated by the engine, must give the same
# numbers to rounding error.

# %%
ours = check_net.params
x_t = Tensor(x_check, requires_grad=True)
engine_params = {k: Tensor(v, requires_grad=True) for k, v in ours.items()}
engine_loss = F.cross_entropy(
    F.linear(
        F.linear(x_t, engine_params["W1"], engine_params["b1"]).tanh(),
        engine_params["W2"],
        engine_params["b2"],
    ),
    y_check,
)
engine_loss.backward()
hand_loss, hand_grads = check_net.loss(x_check, y_check), check_net.backward(y_check)
engine_grads = {**{k: t.grad for k, t in engine_params.items()}, "X": x_t.grad}
print(f"loss: by hand {hand_loss:.15f}, engine {engine_loss.item():.15f}")
autograd_diff = max(np.abs(hand_grads[k] - engine_grads[k]).max() for k in engine_grads)
for k in ("W1", "b1", "W2", "b2", "X"):
    print(
        f"  dL/d{k:<2} {str(hand_grads[k].shape):>8}: max |by hand - engine| = "
        f"{np.abs(hand_grads[k] - engine_grads[k]).max():.1e}"
    )
# float64 both ways, the same formulas: at most rounding, ~1e-16 relative (measured: equal to the
# last bit, loss and gradients, whose entries are up to ~1). 1e-12 leaves a wide margin for another
# BLAS; a wrong formula misses by O(1).
assert abs(hand_loss - engine_loss.item()) <= 1e-12 * abs(hand_loss), (
    "hand-written loss != engine's"
)
assert autograd_diff <= 1e-12, (
    f"hand-derived gradients differ from the engine's by {autograd_diff:.1e}"
)


# %% [markdown]
# The engine agrees to the last digits of float64, and that is no accident: its
# fused `F.linear` has a hand-written backward, and it is
# {eq}`mlp-grad-w1` and {eq}`mlp-grad-x`, with $\bar W = \bar Y^\top X$,
# $\bar b = \bar Y^\top \mathbf 1$, $\bar X = \bar Y W$:
#
# ```{literalinclude} ../../code/scratch/engine/functional.py
# :pyobject: linear
# ```
#
# ## Experiment
#
# ### XOR, trained by hand
#
# The training loop, written out this once because here the loop *is* the lesson:
# forward, backward by our equations, and a plain gradient-descent step
# $\theta \leftarrow \theta - \eta\, \bar\theta$ on the whole data set. Every
# other training in the book goes through `fit_arrays`.


# %%
def train_by_hand(
    net: TwoLayerMLP, x, y, lr: float, steps: int, snapshot_at=()
) -> tuple:
    """Full-batch gradient descent with the hand-written gradients (of one network or of stacked ones).
    Returns the loss of every step and (step, weights) copies at the steps in snapshot_at."""
    losses, snapshots = [], []
    for step in range(steps + 1):
        if step in snapshot_at:
            snapshots.append((step, {k: v.copy() for k, v in net.params.items()}))
        if step == steps:
            break
        losses.append(net.loss(x, y))
        grads = net.backward(y)
        for name, value in net.params.items():
            value -= lr * grads[name]  # in place: the dict keeps the same arrays
    return np.array(losses), snapshots


xor_net = TwoLayerMLP(2, cfg.xor_hidden, 2, seed=cfg.seed)
snapshot_at = set(np.linspace(0, cfg.xor_steps, cfg.snapshots).round().astype(int))
started = time.perf_counter()
xor_losses, xor_snapshots = train_by_hand(
    xor_net, x_xor, y_xor, cfg.xor_lr, cfg.xor_steps, snapshot_at
)
xor_accuracy = float((xor_net.forward(x_xor).argmax(axis=1) == y_xor).mean())
print(
    f"{cfg.xor_steps} steps in {time.perf_counter() - started:.2f} s: "
    f"loss {xor_losses[0]:.4f} -> {float(xor_net.loss(x_xor, y_xor)):.4f}, accuracy {xor_accuracy:.3f}"
)


# %% [markdown]
# Press play or drag the slider. The untrained network's boundary is a straight
# line, with probabilities close to one half on both sides; within the first
# frames it bends into a band that runs diagonally through the two clouds of
# class 1 and leaves the other two outside, and the rest of training only
# sharpens it.


# %%
def probabilities_on_grid(weights: dict) -> np.ndarray:
    """p(class 1) of a TwoLayerMLP with these weights, on the (grid, grid) plot grid."""
    net = TwoLayerMLP.__new__(TwoLayerMLP)
    net.params = weights
    probs = net.forward(grid_points)[:, 1].reshape(len(ys), len(xs))
    return probs.astype(
        np.float32
    )  # float32 is plenty for a picture, and halves the page's weight


fig = plots.decision_boundary(
    [(step, probabilities_on_grid(w)) for step, w in xor_snapshots],
    xs,
    ys,
    x_xor,
    y_xor,
    title="XOR: the decision boundary of the hand-trained MLP",
)
plots.show(fig, cfg.run_dir / "xor_boundary.html")


# %% [markdown]
# Here is the network itself: inputs on the left, the hidden tanh units, the two
# logits on the right. Each edge is a weight, blue for positive and red for
# negative, thicker and darker for larger magnitudes; hover over an edge's middle
# for its value, over a neuron for its bias. The slider replays training: the weights
# grow from small random values to a few large ones. Look at how the hidden units
# split the work. Typically one of them ends with large negative weights on both
# inputs, so that it switches off near the corner $(1, 1)$, another with large
# positive ones, switching off near $(-1, -1)$, and the output adds them up:
# class 1 where neither of the two corners is near.


# %%
def draw_network(snapshots, title: str, labels=None) -> go.Figure:
    """Layers as columns of nodes, weights as edges coloured by sign and magnitude.

    snapshots: list of (name, [W1, W2, ...], [b1, b2, ...]) with W of shape (out, in);
    one slider position per snapshot (the colour scale is shared, so growth shows)."""
    sizes = [snapshots[0][1][0].shape[1]] + [w.shape[0] for w in snapshots[0][1]]
    pos = [
        [(layer, (size - 1) / 2 - i) for i in range(size)]
        for layer, size in enumerate(sizes)
    ]
    biggest = max(np.abs(w).max() for _, ws, _ in snapshots for w in ws)
    labels = labels or [[f"x{i + 1}" for i in range(sizes[0])]] + [
        [f"h{i + 1}" for i in range(n)] for n in sizes[1:-1]
    ] + [[f"logit {i}" for i in range(sizes[-1])]]

    def traces(weights, biases):
        edges, mid_x, mid_y, mid_text = [], [], [], []
        for layer, w in enumerate(weights):
            for i in range(w.shape[0]):
                for j in range(w.shape[1]):
                    (x0, y0), (x1, y1) = pos[layer][j], pos[layer + 1][i]
                    edges.append(
                        go.Scatter(
                            x=[x0, x1],
                            y=[y0, y1],
                            mode="lines",
                            hoverinfo="skip",
                            showlegend=False,
                            line=dict(
                                width=0.5 + 7 * abs(w[i, j]) / biggest,
                                color=sample_colorscale(
                                    "RdBu", [(w[i, j] / biggest + 1) / 2]
                                )[0],
                            ),
                        )
                    )
                    mid_x.append((x0 + x1) / 2)
                    mid_y.append((y0 + y1) / 2)
                    mid_text.append(
                        f"{labels[layer][j]} -> {labels[layer + 1][i]}: w = {w[i, j]:+.3f}"
                    )
        mids = go.Scatter(
            x=mid_x,
            y=mid_y,
            mode="markers",
            marker=dict(size=8, opacity=0),
            text=mid_text,
            hovertemplate="%{text}<extra></extra>",
            showlegend=False,
        )
        node_text = [f"{labels[0][i]} (input)" for i in range(sizes[0])] + [
            f"{labels[layer + 1][i]}: bias {b[i]:+.3f}"
            for layer, b in enumerate(biases)
            for i in range(len(b))
        ]
        nodes = go.Scatter(
            x=[p[0] for col in pos for p in col],
            y=[p[1] for col in pos for p in col],
            mode="markers+text",
            text=[n for col in labels for n in col],
            textposition="top center",
            hovertext=node_text,
            hovertemplate="%{hovertext}<extra></extra>",
            showlegend=False,
            marker=dict(size=22, color="#999999", line=dict(width=1, color="#1a1a1a")),
        )
        return edges + [mids, nodes]

    scale = go.Scatter(
        x=[None],
        y=[None],
        mode="markers",
        showlegend=False,
        hoverinfo="skip",
        marker=dict(
            colorscale="RdBu",
            cmin=-biggest,
            cmax=biggest,
            color=[0],
            showscale=True,
            colorbar=dict(title=dict(text="weight", side="right"), thickness=12),
        ),
    )
    names = [str(name) for name, _, _ in snapshots]
    first = traces(*snapshots[-1][1:])
    fig = go.Figure(
        data=first + [scale],
        frames=[
            go.Frame(data=traces(ws, bs), traces=list(range(len(first))), name=n)
            for n, (_, ws, bs) in zip(names, snapshots)
        ],
    )
    if len(snapshots) > 1:
        fig.update_layout(**plots.animation_controls(names, frame_ms=300))
    fig.update_xaxes(visible=False, range=[-0.3, len(sizes) - 0.7])
    fig.update_yaxes(visible=False, range=[-(max(sizes) + 1) / 2, (max(sizes) + 1) / 2])
    fig.update_layout(title=title, height=480)
    return fig


fig = draw_network(
    [(step, [w["W1"], w["W2"]], [w["b1"], w["b2"]]) for step, w in xor_snapshots],
    title="The XOR network: weights during training (blue positive, red negative)",
)
plots.show(fig, cfg.run_dir / "xor_network.html")

# %% [markdown]
# How many hidden units does XOR need? Two, by construction: one unit can detect
# "both coordinates positive", another "both negative", and the output says
# "neither". Whether gradient descent *finds* such weights is another matter. We
# train the same network from many random initializations, for a few widths, and
# count the runs that classify every training point correctly. The networks of
# one width are trained together, stacked (one `TwoLayerMLP` with `stacked=S`),
# by the same `train_by_hand`: a loop over seeds would spend its time in Python,
# not in arithmetic.

# %%
solved = {}
started = time.perf_counter()
for width in cfg.xor_study_widths:
    nets = TwoLayerMLP(2, width, 2, seed=1000 + width, stacked=cfg.xor_study_seeds)
    train_by_hand(nets, x_xor, y_xor, cfg.xor_lr, cfg.xor_steps)
    solved[width] = float(
        (nets.forward(x_xor).argmax(axis=-1) == y_xor).all(axis=-1).mean()
    )
print(
    f"{len(cfg.xor_study_widths) * cfg.xor_study_seeds} trainings in {time.perf_counter() - started:.1f} s"
)
for width, share in solved.items():
    print(
        f"hidden width {width}: {share:.0%} of {cfg.xor_study_seeds} initializations solve XOR"
    )

# %% [markdown]
# With the smallest width, a good share of the initializations ends in a local
# minimum that leaves two of the four clouds undecided, at probability one half
# (the run above prints the shares); each extra hidden unit makes a solution more
# likely, since there are more ways to be right and fewer ways to be stuck.
# A network larger than the problem strictly needs is easier to *train*: a theme
# that returns throughout the book.
#
# ### Handwritten digits, trained by the engine
#
# XOR has two inputs. Scikit-learn's copy of the UCI handwritten digits has 64:
# 1797 images of 8-by-8 pixels with 17 grey levels, ten classes. We scale the
# pixels to $[0, 1]$ and hold out a stratified test set.

# %%
digits = load_digits()
x_all = (digits.data / 16.0).astype(
    np.float64
)  # (1797, 64), grey levels 0..16 -> [0, 1]
x_train, x_test, y_train, y_test = train_test_split(
    x_all,
    digits.target,
    test_size=cfg.test_fraction,
    random_state=cfg.seed,
    stratify=digits.target,
)
print(
    f"train {x_train.shape}, test {x_test.shape}, classes {np.bincount(y_train).tolist()}"
)
fig = plots.image_grid(
    x_train[:20].reshape(-1, 8, 8),
    titles=y_train[:20].tolist(),
    ncols=10,
    title="Training digits and their labels",
)
plots.show(fig, cfg.run_dir / "digits.html")


# %% [markdown]
# The network is {eq}`mlp-forward` once more, now assembled from the engine's
# layers (ReLU instead of tanh, the modern default), and trained by the engine's
# `fit_arrays`: the loop of the XOR section with mini-batches, an optimizer, evaluation
# after each epoch and hooks for callbacks.
#
# ```{literalinclude} ../../code/scratch/engine/loop.py
# :pyobject: fit_arrays
# ```
#
# A callback sees the model after every step, so recording the size of each
# layer's gradient, $\lVert \bar W_\ell \rVert$ (the Frobenius norm, all entries
# squared and summed), takes a few lines. `fit_arrays` calls `on_batch_end` after the
# optimizer's step, when the gradients of that step are still in place:


# %%
class GradientNorms(Callback):
    """The Frobenius norm of every weight matrix's gradient, after every step."""

    def __init__(self):
        self.norms = {}  # parameter name -> list of norms, one per step

    def on_batch_end(self, state):
        for name, p in state.model.named_parameters():
            if name.endswith("weight"):
                self.norms.setdefault(name, []).append(float(np.linalg.norm(p.grad)))


model = nn.Sequential(nn.Linear(64, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, 10))
print(model, f"\n{sum(p.size for p in model.parameters())} parameters")
grad_norms = GradientNorms()
started = time.perf_counter()
history = fit_arrays(
    model,
    optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum),
    x_train,
    y_train,
    epochs=cfg.epochs,
    batch_size=cfg.batch_size,
    val=(x_test, y_test),
    callbacks=(grad_norms,),
    seed=cfg.seed,
)
digits_seconds = time.perf_counter() - started

# %%
plots.show(
    plots.training_curves(history, title="Digits: loss and test accuracy per epoch"),
    cfg.run_dir / "training_curves.html",
)

# %% [markdown]
# The gradient norms, per step (thin) and averaged over a window of steps
# (thick). They grow over the first few dozen steps, while the network leaves
# its nearly uniform initial predictions, then decline as the training loss
# falls. Throughout, they jump from
# step to step: each mini-batch's gradient is a noisy estimate of the full one.
# The two layers stay within a small factor of each other, as they should in a
# network this shallow; in deep networks that balance can break, with vanishing
# or exploding gradients, a problem later chapters take up.

# %%
layer_names = {"0.weight": "layer 1: W1 (hidden)", "2.weight": "layer 2: W2 (output)"}
steps = np.arange(1, len(history.steps) + 1)
window = max(1, min(25, len(steps) // 10))  # steps per running mean
fig = go.Figure()
for i, (name, norms) in enumerate(grad_norms.norms.items()):
    color = plots.COLORS[i]
    fig.add_trace(
        go.Scatter(
            x=steps,
            y=norms,
            mode="lines",
            name=f"{layer_names.get(name, name)}, per step",
            line=dict(color=color, width=1),
            opacity=0.35,
        )
    )
    smooth = np.convolve(norms, np.ones(window) / window, mode="valid")
    fig.add_trace(
        go.Scatter(
            x=steps[window - 1 :],
            y=smooth,
            mode="lines",
            line=dict(color=color, width=3),
            name=f"{layer_names.get(name, name)}, mean of {window} steps",
        )
    )
fig.update_yaxes(type="log")
fig.update_layout(
    title="Gradient norm of each layer's weights during training",
    xaxis_title="SGD step",
    yaxis_title="||dL/dW|| (Frobenius)",
    height=460,
    hovermode="x unified",
    legend=dict(orientation="h", x=0, y=-0.2, yanchor="top"),
)
plots.show(fig, cfg.run_dir / "gradient_norms.html")

# %% [markdown]
# Which digits does it confuse? The confusion matrix counts, for each true class
# (row), the predicted classes (columns); below it, test digits it got wrong.

# %%
with no_grad():
    test_pred = model(Tensor(x_test)).data.argmax(axis=1)
plots.show(
    plots.confusion_matrix(
        y_test, test_pred, title="Digits: confusion matrix on the test set"
    ),
    cfg.run_dir / "confusion_matrix.html",
)
wrong = np.flatnonzero(test_pred != y_test)
print(f"{len(wrong)} of {len(y_test)} test digits misclassified")
if len(wrong):
    shown = wrong[:16]
    fig = plots.image_grid(
        x_test[shown].reshape(-1, 8, 8),
        titles=[f"{y_test[i]} → {test_pred[i]}" for i in shown],
        ncols=8,
        title="Misclassified test digits (true → predicted)",
    )
    plots.show(fig, cfg.run_dir / "misclassified.html")


# %% [markdown]
# Many of the mistakes are digits a person would hesitate over too, at eight by
# eight pixels.
#
# ### The loss landscape around the solution
#
# The network has thousands of weights and its loss is a function of all of
# them; we can look at it only through low-dimensional slices. Following
# {cite:t}`li2018visualizing`, we pick two random directions $\delta$ and $\eta$
# in weight space and plot
#
# $$
# f(\alpha, \beta) = L\big(\theta^\star + \alpha\, \delta + \beta\, \eta\big)
# $$ (mlp-landscape)
#
# around the trained weights $\theta^\star$. Random directions alone mislead: a
# network with ReLUs computes the same function when one layer's weights are
# multiplied by $c$ and the next one's divided by $c$, so the same step looks
# large next to small weights and small next to large ones. Li et al.'s *filter
# normalization* rescales the direction of every neuron $i$ (a row of a weight
# matrix) to the norm of that neuron's weights:
#
# $$
# \delta_i \leftarrow \frac{\delta_i}{\lVert \delta_i \rVert}\, \lVert \theta^\star_i \rVert .
# $$ (mlp-filter-norm)
#
# Then $\alpha = 1$ moves every neuron by its own size. We leave the biases
# fixed (zero direction).


# %%
def filter_normalized_direction(model, rng) -> list:
    """One random direction per parameter: weights row-normalized as eq. (mlp-filter-norm), biases zero."""
    direction = []
    for name, p in model.named_parameters():
        if p.ndim == 1:
            direction.append(np.zeros_like(p.data))
            continue
        d = rng.standard_normal(p.shape)  # (out, in): one row per neuron
        d *= np.linalg.norm(p.data, axis=1, keepdims=True) / np.linalg.norm(
            d, axis=1, keepdims=True
        )
        direction.append(d)
    return direction


def loss_surface(model, x, y, d1, d2, alphas, betas) -> np.ndarray:
    """f(alpha, beta) of eq. (mlp-landscape) on the grid, shape (len(betas), len(alphas))."""
    params = model.parameters()
    center = [p.data.copy() for p in params]
    surface = np.empty((len(betas), len(alphas)))
    for i, b in enumerate(betas):
        for j, a in enumerate(alphas):
            for p, c, u, v in zip(params, center, d1, d2):
                p.data = c + a * u + b * v
            surface[i, j] = evaluate(model, x, y)["val_loss"]
    for p, c in zip(params, center):  # put the trained weights back
        p.data = c
    return surface


rng = np.random.default_rng(cfg.seed)
d1, d2 = (
    filter_normalized_direction(model, rng),
    filter_normalized_direction(model, rng),
)
alphas = np.linspace(-cfg.landscape_span, cfg.landscape_span, cfg.landscape_points)
started = time.perf_counter()
surface = loss_surface(model, x_train, y_train, d1, d2, alphas, alphas)
print(
    f"{surface.size} evaluations of the training loss in {time.perf_counter() - started:.1f} s; "
    f"at the trained weights {evaluate(model, x_train, y_train)['val_loss']:.4f}, "
    f"largest on the slice {surface.max():.2f}"
)

# %%
log_surface = np.log10(surface)  # the loss spans decades: colour and height show log10
fig = make_subplots(
    rows=1,
    cols=2,
    specs=[[{"type": "xy"}, {"type": "scene"}]],
    subplot_titles=[
        "contours of log10 loss (× = trained weights)",
        "surface of log10 loss: drag to rotate",
    ],
)
fig.add_trace(
    go.Contour(
        x=alphas,
        y=alphas,
        z=log_surface,
        colorscale="Viridis",
        ncontours=25,
        colorbar=dict(
            title=dict(text="log10 loss", side="right"), thickness=12, x=0.45
        ),
        hovertemplate="alpha %{x:.2f}, beta %{y:.2f}<br>log10 loss %{z:.2f}<extra></extra>",
    ),
    row=1,
    col=1,
)
fig.add_trace(
    go.Scatter(
        x=[0],
        y=[0],
        mode="markers",
        name="trained weights",
        showlegend=False,
        marker=dict(symbol="x", size=12, color="#D55E00"),
    ),
    row=1,
    col=1,
)
fig.add_trace(
    go.Surface(
        x=alphas,
        y=alphas,
        z=log_surface,
        colorscale="Viridis",
        showscale=False,
        hovertemplate="alpha %{x:.2f}, beta %{y:.2f}<br>log10 loss %{z:.2f}<extra></extra>",
    ),
    row=1,
    col=2,
)
fig.update_xaxes(title_text="alpha (direction 1)", row=1, col=1)
fig.update_yaxes(title_text="beta (direction 2)", scaleanchor="x", row=1, col=1)
fig.update_layout(
    title="Training loss on a 2-D slice around the trained weights (filter-normalized directions)",
    height=540,
    margin=dict(t=90),
    scene=dict(xaxis_title="alpha", yaxis_title="beta", zaxis_title="log10 loss"),
)
plots.show(fig, cfg.run_dir / "loss_landscape.html")

# %% [markdown]
# The trained weights sit at the bottom of a single smooth basin: on this slice
# the loss rises by orders of magnitude in every direction as the neurons move
# by a sizeable fraction of their own norms, and the contours are closed curves
# around the minimum, with no ridge or second valley. Li et al. found such smooth, nearly convex slices for shallow networks
# and for networks with skip connections, and chaotic ones for very deep networks
# without them.
#
# ## Results
#
# This run, the recorded `full` run, and a reference. No paper reports a number
# for this split of the digits, so the reference is scikit-learn's own
# `MLPClassifier` with the same hidden width (Adam, its default), trained on the
# same split; and as a floor, the engine's linear model (softmax regression),
# trained by the same `fit_arrays`. (To record the `full` run, on a CPU since the engine
# is NumPy: `python code/foundations/mlp.py --profile full`, then copy
# `runs/mlp/metrics.json` to `results/mlp.json`.)

# %%
import warnings

from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier

softmax_regression = nn.Linear(64, 10)
linear_digits = fit_arrays(
    softmax_regression,
    optim.SGD(softmax_regression.parameters(), lr=cfg.lr, momentum=cfg.momentum),
    x_train,
    y_train,
    epochs=cfg.epochs,
    batch_size=cfg.batch_size,
    val=(x_test, y_test),
    seed=cfg.seed,
    verbose=False,
)
with (
    warnings.catch_warnings()
):  # in the tiny profile it stops before converging, on purpose
    warnings.simplefilter("ignore", ConvergenceWarning)
    reference = MLPClassifier(
        hidden_layer_sizes=(cfg.hidden,),
        max_iter=cfg.epochs * 10,
        random_state=cfg.seed,
    ).fit(x_train, y_train)

metrics = {
    "xor_linear_accuracy": linear_history["val_acc"][-1],
    "xor_mlp_accuracy": xor_accuracy,
    "xor_solved_share": {str(w): s for w, s in solved.items()},
    "naive_softmax_fails": naive_fails,
    "gradcheck_passed": passed,
    "max_gradient_difference_vs_engine": float(autograd_diff),
    "test_accuracy": history["val_acc"][-1],
    "test_loss": history["val_loss"][-1],
    "linear_test_accuracy": linear_digits["val_acc"][-1],
    "sklearn_mlp_test_accuracy": float(reference.score(x_test, y_test)),
    "landscape_min_loss": float(surface.min()),
    "landscape_max_loss": float(surface.max()),
    "train_seconds": digits_seconds,
}
rows = results_table(
    cfg,
    metrics,
    seconds=time.perf_counter() - run_started,
    title="digits, test accuracy",
    columns={
        "test_accuracy": ("MLP", ".3f"),
        "linear_test_accuracy": ("linear", ".3f"),
        "sklearn_mlp_test_accuracy": ("scikit-learn MLPClassifier", ".3f"),
    },
)
assert rows[0].values["test_accuracy"] == history["val_acc"][-1]

# %% [markdown]
# Compare the columns. Unlike on XOR, the linear model is strong on digits, and
# the hidden layer adds little: in 64 dimensions the ten classes are already
# nearly separable by hyperplanes. Our MLP and scikit-learn's land close to each
# other, as two correct implementations of the same model, with different
# optimizers, should.

# %%
utils.save_run(
    cfg.run_dir / "metrics.json", cfg, metrics, time.perf_counter() - run_started
)
print(f"metrics written to {cfg.run_dir / 'metrics.json'}")

# %% [markdown]
# ## Summary
#
# - A neuron is a weighted sum and a nonlinearity, {eq}`mlp-neuron`; a layer is many
#   neurons as one matrix product; an MLP is a chain of layers. Without the
#   nonlinearity the chain collapses to one linear map, which cannot even compute
#   XOR.
# - One hidden layer can approximate any continuous function
#   {eq}`mlp-universal`, but the theorem promises existence, not that training
#   finds the weights: small networks get stuck where slightly wider ones do not.
# - Softmax and cross-entropy must be computed through the log-sum-exp shift
#   {eq}`mlp-logsumexp`; their combined gradient is simply $(P - Y)/B$,
#   {eq}`mlp-softmax-grad`.
# - Backpropagation through a linear layer is two matrix products:
#   $\bar W = \bar Z^\top X$ and $\bar X = \bar Z W$, with an elementwise
#   $\varphi'$ between layers, {eq}`mlp-grad-w2` to {eq}`mlp-grad-x`. Hand-derived
#   gradients are checked against finite differences and autograd, never trusted.
# - Looking inside a trained network (weights, gradient norms per layer, the
#   confusion matrix, a filter-normalized slice of the loss) tells more than its
#   accuracy alone.
#
# ## Exercises
#
# :::{exercise}
# :label: mlp-ex-1
# Change `TwoLayerMLP` to use ReLU instead of tanh: which lines of `forward` and
# `backward` change? Run `gradcheck` on it as in the chapter. Why might
# finite differences disagree with the analytic gradient at a few rare points,
# and why does that practically never happen with random inputs?
# :::
#
# :::{solution} mlp-ex-1
# :class: dropdown
# Two lines change: `a1 = np.maximum(x @ p["W1"].mT + p["b1"][..., None, :], 0)` in `forward`,
# and `dz1 = da1 * (a1 > 0)` in `backward` ($\varphi'(z) = [z > 0]$, which can be
# read off the output since $a_1 > 0 \iff z_1 > 0$). ReLU has a kink at 0: if a
# pre-activation lies within $\epsilon$ of 0, the central difference straddles the
# kink and measures an average of the slopes 0 and 1, while the analytic gradient
# takes one side. With continuous random inputs and weights the chance that one
# of the $B \cdot H$ pre-activations lands within $\epsilon = 10^{-6}$ of 0 is of
# order $B H \epsilon$, negligible; with inputs on a lattice (pixels that are
# exactly 0, zero-initialized biases) it can happen, and the remedy is a smaller
# $\epsilon$ or a check away from the kink.
# :::
#
# :::{exercise}
# :label: mlp-ex-2
# Initialize `TwoLayerMLP` with all weights and biases zero and train it on XOR.
# What happens, and why? Would a constant nonzero initialization (every weight
# 0.1) be better?
# :::
#
# :::{solution} mlp-ex-2
# :class: dropdown
# ```python
# net = TwoLayerMLP(2, 4, 2, seed=0)
# net.params = {k: np.zeros_like(v) for k, v in net.params.items()}
# losses, _ = train_by_hand(net, x_xor, y_xor, lr=0.5, steps=1000)
# print(losses[-1], net.params["W1"])   # log 2, and W1 stays exactly 0
# ```
# With zero weights, $A_1 = \tanh(0) = 0$, so $\bar W_2 = \bar Z_2^\top A_1 = 0$, and
# $\bar A_1 = \bar Z_2 W_2 = 0$, so every gradient except $\bar b_2$ is zero: the
# network never moves away from predicting the class frequencies. A constant
# 0.1 breaks the zeros but not the *symmetry*: all hidden units compute the same
# function and receive the same gradient, so they stay identical forever, and
# the network behaves as if it had one hidden unit, which cannot solve XOR.
# Random initialization is what makes the hidden units different.
# :::
#
# :::{exercise}
# :label: mlp-ex-3
# Prove {eq}`mlp-softmax-grad`: compute $\partial p_j / \partial z_k$ for the
# softmax, then $\partial \ell / \partial z_k$ for $\ell = -\log p_y$. Show also
# that adding the same constant to every logit changes neither $p$ nor the
# gradient.
# :::
#
# :::{solution} mlp-ex-3
# :class: dropdown
# From $p_j = e^{z_j} / S$ with $S = \sum_i e^{z_i}$:
# $\partial p_j / \partial z_k = p_j([j = k] - p_k)$, i.e. the Jacobian
# $\operatorname{diag}(p) - p p^\top$. Then
# $\partial \ell / \partial z_k = -\frac{1}{p_y} \partial p_y / \partial z_k = -([y = k] - p_k) = p_k - [k = y]$.
# Adding $c$ to every logit multiplies numerator and denominator of $p_j$ by
# $e^c$, so $p$ is unchanged, and so is $p - y$. Consequently the gradient with
# respect to the logits always sums to zero over the classes: the network cannot
# learn anything from the common level of its logits, which is why the output
# bias $b_2$ has one redundant degree of freedom.
# :::
#
# :::{exercise}
# :label: mlp-ex-4
# Universal approximation in practice: fit $f(x) = \sin(3x)$ on $[-2, 2]$ with
# a one-hidden-layer tanh network of width $H \in \{1, 2, 4, 16\}$, using the
# engine (`nn.Sequential`, `F.mse_loss` as `loss_fn`, and `fit_arrays` with
# `metrics={}`). How does the best reachable error depend on $H$?
# :::
#
# :::{solution} mlp-ex-4
# :class: dropdown
# ```python
# x = np.linspace(-2, 2, 400)[:, None]
# y = np.sin(3 * x)
# for H in (1, 2, 4, 16):
#     net = nn.Sequential(nn.Linear(1, H), nn.Tanh(), nn.Linear(H, 1))
#     h = fit_arrays(net, optim.Adam(net.parameters(), lr=0.01), x, y, epochs=300, batch_size=50,
#             loss_fn=F.mse_loss, val=(x, y), metrics={}, verbose=False)
#     print(H, h["val_loss"][-1])
# ```
# $\sin(3x)$ turns four times on $[-2, 2]$ and each tanh unit contributes one
# smooth step, up or down. Widths 1 and 2 can follow only part of the curve
# (mean squared errors of a few tenths, against a variance of one half for the
# function itself), width 4 brings the error down by more than an order of
# magnitude, and 16 by about one more. More units, more steps to add up: exactly
# the construction behind {eq}`mlp-universal`.
# :::
#
# :::{exercise}
# :label: mlp-ex-5
# Draw the 1-D version of the landscape: the training loss along the straight
# line $\theta(t) = (1 - t)\,\theta_0 + t\,\theta^\star$ from the initial to the
# trained weights of the digits network, for $t \in [-0.5, 1.5]$. Is the loss
# monotone between $t = 0$ and $t = 1$?
# :::
#
# :::{solution} mlp-ex-5
# :class: dropdown
# Save the initial state before training (`start = model.state_dict()`), and
# after training:
# ```python
# end = model.state_dict()
# ts = np.linspace(-0.5, 1.5, 41)
# curve = []
# for t in ts:
#     model.load_state_dict({k: (1 - t) * start[k] + t * end[k] for k in end})
#     curve.append(evaluate(model, x_train, y_train)["val_loss"])
# model.load_state_dict(end)
# plots.show(plots.lines({"train loss": curve}, x=ts, log_y=True, xlabel="t", ylabel="loss"))
# ```
# For this network the training loss falls monotonically from $t = 0$ to
# $t = 1$: the straight path from initialization to solution crosses no barrier.
# Beyond $t = 1$ it keeps falling a little, since extending the line mostly
# scales the weights up, which makes correct predictions more confident; on the
# training set that lowers the loss (the test loss is another matter).
# {cite:t}`li2018visualizing` use such interpolations too; their 2-D slices add
# what a line cannot show, the shape of the basin in other directions.
# :::
#
# ## References
#
# ```{bibliography}
# :filter: docname in docnames
# ```
