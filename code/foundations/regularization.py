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
# (regularization)=
# # Regularization and generalization
#
# Every network so far was judged by how well it fits its training data, and
# gradient descent is very good at that: given enough steps, a network with more
# parameters than training examples fits them perfectly. What we want is a
# network that is right on examples it has *not* seen. This chapter measures the
# difference between the two, explains where it comes from (bias and variance),
# and adds the four classic remedies to `scratch.engine`'s toolbox: L2 and L1
# penalties, dropout, and early stopping, plus the subtlety that makes weight
# decay and an L2 penalty two different things under Adam. It ends with a study
# that no regularizer can fix: how the error of a fitted curve shrinks with more
# data inside the range of the data, and does not shrink at all outside it.

# %% tags=["hide-input"]
import math
import time
from dataclasses import dataclass, field

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

import scratch.engine.functional as F
from scratch import data, plots, utils
from scratch.config import Config, ConfigError, non_negative, positive, unit_interval
from scratch.engine import Tensor, nn, optim
from scratch.engine.loop import Callback, EarlyStopping, evaluate, fit_arrays
from scratch.engine.models import make_mlp
from scratch.results import Reference, results_table


@dataclass
class RegularizationConfig(Config):
    NAME = "regularization"

    # ---- experiments 1 and 2: an MLP on a small subset of MNIST ----
    n_train: int = field(
        default=1000,
        metadata=positive(
            "training images: few enough that the MLP below memorises them within a few epochs"
        ),
    )
    n_val: int = field(
        default=1000,
        metadata=positive(
            "held-out training images for early stopping; the test set never chooses anything"
        ),
    )
    hidden: int = field(
        default=128,
        metadata=positive(
            "units in each of the two hidden layers: ~120k parameters, over 100 per training image"
        ),
    )
    epochs: int = field(
        default=40,
        metadata=positive(
            "passes over the training images: the unregularized run is at 100% training accuracy within the first third"
        ),
    )
    batch_size: int = field(
        default=50,
        metadata=positive("images per step: 20 steps per epoch of 1000 images"),
    )
    lr: float = field(
        default=0.05,
        metadata=positive(
            "SGD step size: of 0.02, 0.05, 0.1, 0.02 is worse on validation, the others tie: we keep the smaller"
        ),
    )
    momentum: float = field(
        default=0.9, metadata=unit_interval("SGD momentum: the usual 0.9")
    )
    l2: float = field(
        default=3e-3,
        metadata=non_negative(
            "L2 coefficient: of 1e-3, 3e-3, 1e-2, the best validation accuracy (1e-2 no longer fits every image)"
        ),
    )
    l1: float = field(
        default=3e-4,
        metadata=non_negative(
            "L1 coefficient: of 1e-5, 1e-4, 3e-4, the best validation accuracy"
        ),
    )
    dropout: float = field(
        default=0.3,
        metadata=unit_interval(
            "drop probability after each hidden layer: 0.3 beat the paper's 0.5 on validation for layers this narrow"
        ),
    )
    patience: int = field(
        default=10,
        metadata=positive(
            "epochs without a better validation accuracy before early stopping gives up"
        ),
    )
    adam_lr: float = field(
        default=1e-3,
        metadata=positive("Adam's step size (its usual default) for experiment 2"),
    )
    adam_epochs: int = field(
        default=30,
        metadata=positive(
            "epochs per Adam run: 600 steps, enough to fit the training set without decay"
        ),
    )
    decays: tuple[float, ...] = field(
        default=(1e-3, 1e-2, 1e-1, 1.0, 10.0),
        metadata=positive(
            "lambda values given to both Adam (as L2) and AdamW: four decades, because their useful ranges differ"
        ),
    )
    # ---- experiment 3: fitting sin(10 pi x^4) with more and more points ----
    curve_width: int = field(
        default=256,
        metadata=positive(
            "tanh units in the single hidden layer: 3 x 256 + 1 parameters, a count inside the range of n"
        ),
    )
    curve_seeds: int = field(
        default=5,
        metadata=positive(
            "independent fits per training-set size (new points and new initial weights): the spread"
        ),
    )
    curve_sizes: int = field(
        default=20,
        metadata=positive(
            "training-set sizes, log-spaced from curve_n_min to curve_n_max"
        ),
    )
    curve_n_min: int = field(default=10, metadata=positive("smallest training set"))
    curve_n_max: int = field(default=1000, metadata=positive("largest training set"))
    curve_steps: int = field(
        default=1500,
        metadata=positive(
            "full-batch Adam steps per fit: the training RMSE (printed below) is small by then for every n"
        ),
    )
    curve_lr: float = field(
        default=0.01,
        metadata=positive(
            "Adam's step size, decayed to 0 by a cosine: of 0.003, 0.01, 0.03, the lowest final training error"
        ),
    )
    slope_min: float = field(
        default=50.0,
        metadata=positive(
            "smallest initial steepness |a| of a hidden unit tanh(a (x - c)): the width of the smoothest step"
        ),
    )
    slope_max: float = field(
        default=500.0,
        metadata=positive(
            "largest initial steepness: steps as narrow as 1/500 resolve the target's shortest period, 0.05"
        ),
    )
    curve_extent: float = field(
        default=1.5,
        metadata=positive(
            "the error is also measured on [0, curve_extent]: half as far again as the data"
        ),
    )
    curve_grid: int = field(
        default=3001,
        metadata=positive(
            "points of the dense evaluation grid on [0, curve_extent]: about 30 per period at x = 1.5"
        ),
    )

    PROFILES = {
        "tiny": dict(
            threads=1,
            n_train=200,
            n_val=200,
            hidden=32,
            epochs=3,
            patience=2,
            adam_epochs=2,
            decays=(1e-2, 1.0),
            curve_seeds=2,
            curve_sizes=4,
            curve_n_max=100,
            curve_steps=30,
            curve_grid=601,
        ),  # tests: a few seconds
        "small": dict(threads=1),  # the book build: well under a minute of CPU
        "full": dict(
            hidden=256,
            epochs=100,
            patience=20,
            adam_epochs=60,
            decays=(1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0, 3.0, 10.0),
            curve_steps=10000,
        ),  # same data, longer training: still NumPy on a CPU
    }

    def validate(self):
        if self.batch_size > self.n_train:
            raise ConfigError(
                f"batch_size={self.batch_size} exceeds n_train={self.n_train}"
            )
        if self.curve_n_min >= self.curve_n_max:
            raise ConfigError(
                f"curve_n_min={self.curve_n_min} must be below curve_n_max={self.curve_n_max}"
            )
        if self.slope_min > self.slope_max:
            raise ConfigError(
                f"slope_min={self.slope_min} exceeds slope_max={self.slope_max}"
            )
        if self.curve_extent <= 1:
            raise ConfigError(
                f"curve_extent={self.curve_extent} must exceed 1, the end of the data"
            )
        if not self.decays:
            raise ConfigError("decays must list at least one lambda")


cfg = RegularizationConfig.from_cli()  # also caps NumPy's BLAS at cfg.threads
utils.seed_everything(cfg.seed)
run_started = time.perf_counter()

# %% [markdown]
# ## Motivation: a perfect fit is not the goal
#
# The network of {doc}`autograd` drove its training loss down step after step.
# Take that recipe to a harder problem with little data: an MLP with two hidden
# ReLU layers, trained with momentum SGD on a small subset of MNIST digits. We
# keep three disjoint sets of images: the training subset, a *validation* set cut
# from the remaining training images (it will decide when to stop and which
# strength to use), and the test set, which is only looked at.

# %%
images, labels = data.mnist("train")
test_images, test_labels = data.mnist("test")
if cfg.n_train + cfg.n_val > len(images):
    raise ConfigError(
        f"n_train + n_val = {cfg.n_train + cfg.n_val} exceeds the {len(images)} training images"
    )


def flat(x: np.ndarray) -> np.ndarray:
    """(N, 28, 28) uint8 -> (N, 784) float32 in [0, 1]."""
    return data.as_float(x).reshape(len(x), -1)


order = np.random.default_rng(cfg.seed).permutation(len(images))
val_rows, pool_rows = order[: cfg.n_val], order[cfg.n_val :]
x_train, y_train = data.subsample(
    images[pool_rows], labels[pool_rows], cfg.n_train, seed=cfg.seed
)
x_train, x_val, x_test = flat(x_train), flat(images[val_rows]), flat(test_images)
y_val, y_test = labels[val_rows], test_labels
print(f"train {x_train.shape}, validation {x_val.shape}, test {x_test.shape}")


# %% [markdown]
# The model, built by the engine's `make_mlp` ({doc}`autograd`), and a callback
# that records the accuracy on the training and test sets after every epoch, in
# evaluation mode. It is there for the plots only:
# nothing is ever chosen by the test accuracy.


# %%
def mnist_mlp(dropout: float = 0.0) -> nn.Sequential:
    """784 -> hidden -> hidden -> 10 with ReLUs, float32, and dropout after each hidden layer if dropout > 0."""
    return make_mlp(
        [28 * 28, cfg.hidden, cfg.hidden, 10], dropout=dropout, dtype=np.float32
    )


class Track(Callback):
    """After each epoch, add train_acc/train_loss and test_acc/test_loss to the history row."""

    def __init__(self, train: tuple, test: tuple):
        self.train, self.test = train, test

    def on_epoch_end(self, state):
        state.history.last.update(evaluate(state.model, *self.train, prefix="train_"))
        state.history.last.update(evaluate(state.model, *self.test, prefix="test_"))


utils.seed_everything(cfg.seed)
model = mnist_mlp()
n_weights = sum(p.size for p in model.parameters())
history = fit_arrays(
    model,
    optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum),
    x_train,
    y_train,
    epochs=cfg.epochs,
    batch_size=cfg.batch_size,
    val=(x_val, y_val),
    seed=cfg.seed,
    verbose=False,
    callbacks=[Track((x_train, y_train), (x_test, y_test))],
)
runs = {"none": (model, history)}  # every variant of experiment 1 goes here
print(f"{n_weights} parameters for {cfg.n_train} training images")
print(
    f"after {len(history)} epochs: train accuracy {history['train_acc'][-1]:.3f}, "
    f"test accuracy {history['test_acc'][-1]:.3f}"
)

# %%
fig = plots.training_curves(
    history, title="No regularization: losses (left) and accuracies (right)"
)
plots.show(fig, cfg.run_dir / "overfitting.html")


# %% [markdown]
# The training accuracy reaches 100% and the training loss keeps falling towards
# zero, but the test accuracy stops improving well before the end of training,
# several points below. The test (and validation) *loss* even turns around and
# grows: the network keeps becoming more confident, including on the test digits
# it gets wrong. The distance between the training and the test curves is the
# *generalization gap*, and everything that follows is about making it smaller
# without making the training fit much worse.
#
# ## Theory
#
# ### Risk, empirical risk, bias and variance
#
# Training minimizes the *empirical risk* on the $n$ training pairs drawn from
# the data distribution $p$, a proxy for the *risk* we care about:
#
# $$
# \hat R(\theta) = \frac1n \sum_{i=1}^n \ell\big(f_\theta(x_i), y_i\big),
# \qquad
# R(\theta) = \mathbb{E}_{(x, y) \sim p}\, \ell\big(f_\theta(x), y\big).
# $$ (regularization-risk)
#
# For a fixed $\theta$, $\hat R$ is an unbiased estimate of $R$. For the $\hat\theta$
# that minimized $\hat R$, it is not: $\hat\theta$ was chosen to make *these* $n$
# terms small, noise and all, and the gap $R(\hat\theta) - \hat R(\hat\theta)$ is
# what the plot above shows.
#
# For the squared loss there is an exact accounting. Let $y = f(x) + \varepsilon$
# with noise of variance $\sigma^2$, and let $\hat f_D$ be the function trained on
# a random training set $D$ (the randomness of the initialization counts as part
# of $D$). At a point $x$, averaged over training sets and noise,
#
# $$
# \mathbb{E}\big[(y - \hat f_D(x))^2\big]
# = \underbrace{\big(f(x) - \mathbb{E}_D \hat f_D(x)\big)^2}_{\text{bias}^2}
# + \underbrace{\mathbb{E}_D\big[(\hat f_D(x) - \mathbb{E}_D \hat f_D(x))^2\big]}_{\text{variance}}
# + \sigma^2 .
# $$ (regularization-bias-variance)
#
# The *bias* is the error of the average fit: what the model family and the
# training procedure cannot get right even with many training sets. The
# *variance* is how much the fit changes from one training set to another: a
# flexible model that follows every training point follows their noise too. The
# classical picture is a trade-off: more capacity lowers the bias and raises the
# variance, and a *regularizer* deliberately adds a little bias (it pulls the fit
# towards simpler functions) to remove more variance.
#
# Deep networks strain that picture. {cite:t}`zhang2017understanding` trained
# standard image classifiers on data whose labels had been replaced by random
# ones: the networks still reached 100% training accuracy, so their capacity is
# enough to memorise anything, yet on real labels the same networks generalize
# well. They also found explicit regularizers helpful but neither necessary nor
# sufficient for generalization. {cite:t}`belkin2019reconciling` found a *double
# descent*: as the capacity grows past the point where the model can interpolate
# its training set, the test error, after peaking there, falls again. What a
# network learns depends on the data and on the training algorithm, not only on
# its size. The regularizers below are still the tools of the trade, and each has
# a precise effect we can see.
#
# ### Penalties: L2 and L1
#
# Add a cost on the size of the weights $w$ (the weight matrices; the biases are
# usually left alone, since they do not scale the input) to the training loss:
#
# $$
# \tilde L(\theta) = \hat R(\theta) + \frac{\lambda_2}{2}\,\lVert w \rVert_2^2 + \lambda_1 \lVert w \rVert_1,
# \qquad
# \nabla_w \tilde L = \nabla_w \hat R + \lambda_2\, w + \lambda_1 \operatorname{sign}(w).
# $$ (regularization-penalized)
#
# With the L2 term alone, one step of gradient descent with step size $\eta$ is
#
# $$
# w \leftarrow (1 - \eta\lambda_2)\, w - \eta\, \nabla_w \hat R ,
# $$ (regularization-l2-step)
#
# so every step first shrinks all weights by the same factor: *weight decay*.
# {cite:t}`krogh1992simple` showed how it helps: it suppresses the components of
# the weights that the data does not need, and it reduces the effect of noise in
# the targets. A weight survives only if the data keeps pushing it away from
# zero. (In Bayesian terms, the penalty is a Gaussian prior on the weights and
# the minimum of $\tilde L$ is the most probable network given the data.)
#
# The L1 term pulls every weight towards zero with the *same* force
# $\lambda_1$, however small the weight already is:
#
# $$
# w \leftarrow w - \eta\, \nabla_w \hat R - \eta \lambda_1 \operatorname{sign}(w) .
# $$ (regularization-l1-step)
#
# L2's pull fades as $w$ shrinks; L1's does not, so the weights that the data
# does not defend are driven all the way to zero: L1 makes *sparse* networks
# (a Laplace prior, in the Bayesian reading). With plain gradient steps they end
# up hovering within a step's length of zero rather than exactly on it;
# exercise {ref}`regularization-ex-1` fixes that.
#
# ### Weight decay is not L2 under Adam
#
# For SGD, {eq}`regularization-l2-step` shows that an L2 penalty and weight decay
# are the same thing. For Adam they are not. Adam divides each coordinate of the
# gradient by a running root-mean-square $\sqrt{\hat v}$ of that coordinate's past
# gradients. With the L2 penalty in the gradient, the penalty is divided too:
#
# $$
# g_t = \nabla \hat R(\theta_{t-1}) + \lambda\, \theta_{t-1},
# \qquad
# \theta_t = \theta_{t-1} - \eta\, \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon},
# $$ (regularization-adam-l2)
#
# where $\hat m_t$ and $\hat v_t$ are the bias-corrected averages of $g_t$ and
# $g_t^2$. {cite:t}`loshchilov2019decoupled` proposed to *decouple* the decay
# from the gradient (AdamW):
#
# $$
# \theta_t = (1 - \eta\lambda)\, \theta_{t-1} - \eta\, \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon},
# \qquad \hat m_t, \hat v_t \text{ from } g_t = \nabla \hat R(\theta_{t-1}) \text{ only}.
# $$ (regularization-adamw)
#
# The difference is largest at the two extremes. A weight whose data gradient is
# large and noisy has a large $\sqrt{\hat v}$, so in {eq}`regularization-adam-l2`
# its penalty $\lambda\theta$ is divided by a large number and it is barely
# decayed. A weight whose data gradient is zero (an input pixel that is black in
# every training image) has only $g_t = \lambda\theta$, and Adam's update is
# invariant to the scale of the gradient: the weight is driven to zero by about
# $\eta$ per step, along the *same* path for every $\lambda > 0$. So L2 under Adam
# decays hardest where the data says nothing and least where it says most. AdamW
# shrinks every weight by the same factor $1 - \eta\lambda$, as weight decay under
# SGD does; Loshchilov and Hutter show that this generalizes better and makes the
# best $\lambda$ nearly independent of $\eta$. Note the scales: AdamW's decay per
# step is $\eta\lambda$, tiny for Adam's typical $\eta$, so its useful $\lambda$ are
# orders of magnitude larger than those of an L2 penalty.
#
# ### Dropout
#
# Dropout {cite:p}`srivastava2014dropout` zeroes each hidden activation at random
# during training, with probability $p$, independently for every example and
# every step. In the *inverted* form used today, the survivors are scaled up so
# that nothing changes on average:
#
# $$
# \tilde h_j = \frac{m_j}{1 - p}\, h_j, \quad m_j \sim \text{Bernoulli}(1 - p),
# \qquad \mathbb{E}[\tilde h_j] = h_j .
# $$ (regularization-dropout)
#
# At evaluation the layer is the identity. (The paper scaled the weights by
# $1 - p$ at test time instead; moving the factor into training leaves the
# evaluated network untouched.) Each step trains a different "thinned" network,
# one of $2^{H}$ that share their weights, and evaluating the full network
# approximates averaging this ensemble. A unit cannot rely on any particular
# other unit being present, which discourages the fragile co-adaptations that
# fit noise. For linear regression the effect can be computed exactly: with
# $R_{ij} \sim \text{Bernoulli}(q)$ masking the inputs ($q = 1 - p$ is the
# keep probability, without the inverted scaling),
#
# $$
# \mathbb{E}_R\, \big\lVert y - (R \odot X)\, w \big\rVert^2
# = \lVert y - qXw \rVert^2 + q(1-q)\, \lVert \Gamma w \rVert^2,
# \qquad \Gamma = \operatorname{diag}(X^\top X)^{1/2},
# $$ (regularization-dropout-ridge)
#
# an L2 penalty in which each weight is charged by the scale of its input
# {cite:p}`srivastava2014dropout`.
#
# ### Early stopping
#
# The test accuracy above stopped improving long before the end of training.
# Early stopping watches a
# validation metric after every epoch, stops when it has not improved for
# `patience` epochs, and returns the weights of the best epoch.
# {cite:t}`prechelt1998early` compared such stopping rules and found that the
# slower ones (more patience) buy small improvements in generalization for much
# more training time. Early stopping is also a penalty in disguise. For a
# quadratic loss with Hessian $H$ and minimum $\theta^*$, $\tau$ steps of gradient
# descent from $\theta = 0$ and the L2-penalised minimum give
#
# $$
# \theta_\tau = \big(I - (I - \eta H)^\tau\big)\, \theta^*,
# \qquad
# \theta_\lambda = (H + \lambda I)^{-1} H\, \theta^*,
# $$ (regularization-early-stopping)
#
# and, along each eigenvector of $H$, the two shrink $\theta^*$ by about the same
# factor when $\lambda \approx 1/(\eta\tau)$ {cite:p}`goodfellow2016deep`: the
# number of steps plays the role of an inverse penalty.
#
# ## Implementation
#
# ### Penalties as part of the loss
#
# `fit_arrays` calls `loss_fn(output, target)` for training and for evaluation. The
# penalty belongs to the training objective only, so the wrapper below adds it in
# training mode and reports the plain data loss in evaluation mode (which
# `evaluate` switches on).


# %%
def weight_penalty(model, l1: float = 0.0, l2: float = 0.0) -> Tensor:
    """l1 * sum|w| + l2 / 2 * sum w^2 over the weight matrices (biases are not penalised)."""
    terms = []
    for w in model.parameters():
        if w.ndim == 2:
            if l1:
                terms.append(l1 * w.abs().sum())
            if l2:
                terms.append(0.5 * l2 * (w * w).sum())
    return sum(terms[1:], terms[0])


def penalized(loss_fn, model, l1: float = 0.0, l2: float = 0.0):
    """loss_fn plus the weight penalty, in training mode only: evaluation reports the data loss."""
    if not (l1 or l2):
        return loss_fn

    def loss(output, target):
        value = loss_fn(output, target)
        return value + weight_penalty(model, l1, l2) if model.training else value

    return loss


def decay_groups(model, decay: float) -> list:
    """Parameter groups for an optimizer: weight decay on the weight matrices, none on the biases."""
    return [
        {
            "params": [p for p in model.parameters() if p.ndim == 2],
            "weight_decay": decay,
        },
        {"params": [p for p in model.parameters() if p.ndim != 2], "weight_decay": 0.0},
    ]


# %% [markdown]
# The optimizers of `scratch.engine` follow PyTorch: their `weight_decay` adds
# $\lambda\theta$ to the gradient, except AdamW's, which shrinks the weights. Here
# is `Adam.step`, with both branches:
#
# ```{literalinclude} ../../code/scratch/engine/optim.py
# :pyobject: Adam.step
# ```
#
# A check of the theory: a few steps on the same batches, once with our penalty
# in the loss and once with the optimizer's `weight_decay`. For SGD and for Adam
# the two must agree to rounding (both add $\lambda w$ to the gradient); AdamW
# must not.


# %%
def few_steps(make_optimizer, l2: float = 0.0, steps: int = 5) -> np.ndarray:
    """All parameters, flattened, after `steps` steps on the first batches of the training set."""
    utils.seed_everything(cfg.seed)
    net = mnist_mlp()
    opt, loss_fn = make_optimizer(net), penalized(F.cross_entropy, net, l2=l2)
    for i in range(steps):
        rows = slice(i * cfg.batch_size, (i + 1) * cfg.batch_size)
        loss = loss_fn(net(Tensor(x_train[rows])), y_train[rows])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return np.concatenate([p.data.ravel() for p in net.parameters()])


lam, sgd = cfg.l2, dict(lr=cfg.lr, momentum=cfg.momentum)
pairs = {
    "SGD + L2 penalty vs SGD(weight_decay)": (
        few_steps(lambda m: optim.SGD(m.parameters(), **sgd), l2=lam),
        few_steps(lambda m: optim.SGD(decay_groups(m, lam), **sgd)),
    ),
    "Adam + L2 penalty vs Adam(weight_decay)": (
        few_steps(lambda m: optim.Adam(m.parameters(), lr=cfg.adam_lr), l2=lam),
        few_steps(lambda m: optim.Adam(decay_groups(m, lam), lr=cfg.adam_lr)),
    ),
    "Adam + L2 penalty vs AdamW(weight_decay)": (
        few_steps(lambda m: optim.Adam(m.parameters(), lr=cfg.adam_lr), l2=lam),
        few_steps(lambda m: optim.AdamW(decay_groups(m, lam), lr=cfg.adam_lr)),
    ),
}
for name, (a, b) in pairs.items():
    print(f"{name:42} largest |difference| {np.abs(a - b).max():.1e}")
# The first two pairs are one update written two ways, in float32: they may differ by rounding only,
# a few units of float32's 6e-8 relative to the largest weight (measured 8e-8 for SGD, 1.0e-7 to
# 1.7e-7 for Adam). The third pair is two different updates: after these few steps they differ by
# 5e-2 (tiny) to 1e-1 (small) of the largest weight, 10^5 to 10^6 times the rounding. The thresholds, 1e-5
# and 1e-3 of the largest weight, lie far from both.
for name, (a, b) in pairs.items():
    gap = np.abs(a - b).max() / np.abs(a).max()
    if "AdamW" in name:
        assert gap > 1e-3, (
            f"{name}: decoupled decay should differ from an L2 penalty, differs by {gap:.1e}"
        )
    else:
        assert gap <= 1e-5, (
            f"{name}: the two forms should agree to float32 rounding, differ by {gap:.1e}"
        )

# %% [markdown]
# ### Dropout
#
# `nn.Dropout` calls `F.dropout` with the module's mode, so `model.eval()` (which
# `evaluate` calls) turns every dropout layer into the identity:
#
# ```{literalinclude} ../../code/scratch/engine/functional.py
# :pyobject: dropout
# ```
#
# ```{literalinclude} ../../code/scratch/engine/nn.py
# :pyobject: Dropout
# ```
#
# On a batch of ones, the training mode zeroes about a fraction $p$ and scales
# the rest, keeping the mean; the evaluation mode passes the input through:

# %%
layer = nn.Dropout(cfg.dropout)
ones = Tensor(np.ones((1000, cfg.hidden), dtype=np.float32))
out = layer(ones).numpy()
print(
    f"train mode: {np.mean(out == 0):.3f} of entries zeroed (p = {cfg.dropout}), "
    f"survivors = {out.max():.4f} = 1/(1-p), mean {out.mean():.4f}"
)
print(
    f"eval mode:  output is the input: {np.array_equal(layer.eval()(ones).numpy(), ones.numpy())}"
)
# Training mode: each of the n entries is dropped with probability p independently, so the fraction
# dropped is p within a few binomial standard deviations sqrt(p (1 - p) / n) (5 allowed; measured
# 0.4 to 0.6 of them), and every survivor is 1/(1-p) in float32 (a few ulps: rtol 1e-6). Evaluation
# mode is the identity: bit for bit.
n_entries, p_drop = out.size, cfg.dropout
assert abs(np.mean(out == 0) - p_drop) <= 5 * np.sqrt(
    p_drop * (1 - p_drop) / n_entries
), "dropout rate is off"
np.testing.assert_allclose(
    out[out != 0],
    1 / (1 - p_drop),
    rtol=1e-6,
    err_msg="survivors are not scaled by 1/(1-p)",
)
assert np.array_equal(layer.eval()(ones).numpy(), ones.numpy()), (
    "dropout in eval mode is not the identity"
)


# %% [markdown]
# ### Early stopping
#
# `EarlyStopping` (in `scratch.history`, shared with the PyTorch loop) only
# stops. Prechelt's rule also *returns the best network*, so a second small
# callback keeps a copy of the best weights and restores them at the end:
#
# ```{literalinclude} ../../code/scratch/history.py
# :pyobject: EarlyStopping
# ```


# %%
class RestoreBest(Callback):
    """Keep the weights of the epoch with the highest `monitor`, and load them back when training ends."""

    def __init__(self, monitor: str = "val_acc"):
        self.monitor, self.best, self.best_epoch, self.weights = (
            monitor,
            -math.inf,
            0,
            None,
        )

    def on_epoch_end(self, state):
        value = state.history.last[self.monitor]
        if value > self.best:  # strictly better, as EarlyStopping counts it
            self.best, self.best_epoch, self.weights = (
                value,
                state.epoch + 1,
                state.model.state_dict(),
            )

    def on_fit_end(self, state):
        state.model.load_state_dict(self.weights)


# %% [markdown]
# Validation accuracy, not validation loss, is what we monitor: the motivation's
# plot showed the loss turning up while the accuracy was still improving.
#
# ## Experiment 1: four regularizers on a small training set
#
# Every variant starts from the same initial weights and sees the same batches in
# the same order; only the regularizer differs. The unregularized run is the one
# from the motivation.


# %%
def train_variant(
    dropout: float = 0.0, l1: float = 0.0, l2: float = 0.0, early_stopping: bool = False
):
    """The MLP trained by momentum SGD with one regularizer; returns (model, history, best epoch or None)."""
    utils.seed_everything(
        cfg.seed
    )  # same initial weights, batches and dropout masks' generator
    net = mnist_mlp(dropout)
    callbacks = [Track((x_train, y_train), (x_test, y_test))]
    if early_stopping:
        callbacks += [
            EarlyStopping(monitor="val_acc", mode="max", patience=cfg.patience),
            RestoreBest("val_acc"),
        ]
    hist = fit_arrays(
        net,
        optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum),
        x_train,
        y_train,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        loss_fn=penalized(F.cross_entropy, net, l1, l2),
        val=(x_val, y_val),
        callbacks=callbacks,
        seed=cfg.seed,
        verbose=False,
    )
    return net, hist, (callbacks[-1].best_epoch if early_stopping else None)


variants = {
    "L2": dict(l2=cfg.l2),
    "L1": dict(l1=cfg.l1),
    "dropout": dict(dropout=cfg.dropout),
    "early stopping": dict(early_stopping=True),
}
best_epoch = {"none": None}
started = time.perf_counter()
for name, kwargs in variants.items():
    net, hist, best_epoch[name] = train_variant(**kwargs)
    runs[name] = (net, hist)
print(f"{len(variants)} trainings in {time.perf_counter() - started:.1f} s")


# %%
def weight_stats(net) -> tuple:
    """(L2 norm of all weight matrices, fraction of weights with |w| < 1e-3)."""
    w = np.concatenate(
        [p.data.ravel().astype(np.float64) for p in net.parameters() if p.ndim == 2]
    )
    return float(np.sqrt((w**2).sum())), float(np.mean(np.abs(w) < 1e-3))


results = {}
print(
    f"{'':15}{'epochs':>7}{'train acc':>11}{'test acc':>10}{'gap':>8}{'|w|':>8}{'|w|<1e-3':>10}"
)
for name, (net, hist) in runs.items():
    train_acc = evaluate(net, x_train, y_train)["val_acc"]
    test_acc = evaluate(net, x_test, y_test)["val_acc"]
    norm, small = weight_stats(net)
    results[name] = dict(
        train_acc=train_acc, test_acc=test_acc, weight_norm=norm, small_weights=small
    )
    epochs = f"{len(hist)}" + (f" ({best_epoch[name]})" if best_epoch[name] else "")
    print(
        f"{name:15}{epochs:>7}{train_acc:>11.3f}{test_acc:>10.3f}{train_acc - test_acc:>8.3f}"
        f"{norm:>8.1f}{small:>10.2f}"
    )
base = results["none"]["test_acc"]
print(
    f"\none standard error of a test accuracy near {base:.2f} on {len(x_test)} images: "
    f"{math.sqrt(base * (1 - base) / len(x_test)):.3f}"
)

# %% [markdown]
# (For early stopping, the number in parentheses is the epoch whose weights were
# restored.) Read the table with the last line in mind: with a test set of this
# size, differences of about one standard error are noise. Every regularizer
# leaves the training accuracy at or near 100%; none closes the gap. The weight
# statistics show what each one does to the network: L2 shrinks the weights, L1
# sends most of them to (nearly) zero, dropout leaves them larger than without it
# (each unit must do its job on a partial input), and early stopping keeps them
# where training had brought them at the best epoch.

# %%
fig = make_subplots(
    rows=1, cols=2, subplot_titles=["training accuracy", "test accuracy"]
)
for i, (name, (_, hist)) in enumerate(runs.items()):
    epochs = [row["epoch"] for row in hist.epochs]
    for col, key in ((1, "train_acc"), (2, "test_acc")):
        fig.add_trace(
            go.Scatter(
                x=epochs,
                y=hist[key],
                name=name,
                legendgroup=name,
                showlegend=col == 1,
                mode="lines",
                line=dict(color=plots.COLORS[i]),
            ),
            row=1,
            col=col,
        )
fig.update_xaxes(title_text="epoch")
fig.update_yaxes(title_text="accuracy", row=1, col=1)
fig.update_layout(
    title="Training and test accuracy per epoch, one curve per regularizer",
    height=420,
    hovermode="x unified",
)
plots.show(fig, cfg.run_dir / "regularizers.html")

# %% [markdown]
# The histograms of the first layer's weights (784 inputs times the hidden
# units) make the difference between the two penalties visible: L2 narrows the
# distribution, L1 piles most weights into a spike at zero.

# %%
sample = np.random.default_rng(cfg.seed).choice(
    28 * 28 * cfg.hidden, size=min(10_000, 28 * 28 * cfg.hidden), replace=False
)  # the same 10k weights of each run: a lighter page
fig = plots.histograms(
    {
        name: runs[name][0][0].weight.data.ravel()[sample]
        for name in ("none", "L2", "L1")
    },
    title="First-layer weights after training (a random sample of them)",
    xlabel="weight value",
    bins=120,
)
plots.show(fig, cfg.run_dir / "weight_histograms.html")


# %% [markdown]
# ## Experiment 2: Adam with an L2 penalty versus AdamW
#
# The same MLP, trained with Adam, for each $\lambda$ in the config, once with
# the penalty in the gradient (`optim.Adam(weight_decay=λ)`,
# {eq}`regularization-adam-l2`) and once decoupled (`optim.AdamW(weight_decay=λ)`,
# {eq}`regularization-adamw`), both on the weight matrices only. For SGD the two
# would be the same run.


# %%
def train_adam(decoupled: bool, decay: float):
    """The MLP trained by Adam (decay as an L2 gradient) or AdamW (decoupled decay)."""
    utils.seed_everything(cfg.seed)
    net = mnist_mlp()
    opt = (optim.AdamW if decoupled else optim.Adam)(
        decay_groups(net, decay), lr=cfg.adam_lr
    )
    fit_arrays(
        net,
        opt,
        x_train,
        y_train,
        epochs=cfg.adam_epochs,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        verbose=False,
    )
    return net


started = time.perf_counter()
adam_models = {("Adam", 0.0): train_adam(False, 0.0)}
for decay in cfg.decays:
    adam_models[("Adam + L2", decay)] = train_adam(False, decay)
    adam_models[("AdamW", decay)] = train_adam(True, decay)
adam_results = {}
for key, net in adam_models.items():
    adam_results[key] = dict(
        train_acc=evaluate(net, x_train, y_train)["val_acc"],
        val_acc=evaluate(net, x_val, y_val)["val_acc"],
        test_acc=evaluate(net, x_test, y_test)["val_acc"],
        weight_norm=weight_stats(net)[0],
    )
print(f"{len(adam_models)} trainings in {time.perf_counter() - started:.1f} s\n")
print(f"{'':12}{'lambda':>8}{'train acc':>11}{'val acc':>9}{'test acc':>10}{'|w|':>8}")
for (name, decay), r in adam_results.items():
    print(
        f"{name:12}{decay:>8g}{r['train_acc']:>11.3f}{r['val_acc']:>9.3f}{r['test_acc']:>10.3f}"
        f"{r['weight_norm']:>8.1f}"
    )
best_decay = {
    name: max(cfg.decays, key=lambda d: adam_results[(name, d)]["val_acc"])
    for name in ("Adam + L2", "AdamW")
}
for name, decay in best_decay.items():
    print(
        f"best λ for {name} by validation accuracy: {decay:g}, "
        f"test accuracy {adam_results[(name, decay)]['test_acc']:.3f}"
    )

# %%
fig = make_subplots(
    rows=1, cols=2, subplot_titles=["test accuracy", "norm of the weight matrices"]
)
for i, name in enumerate(("Adam + L2", "AdamW")):
    rows = [adam_results[(name, d)] for d in cfg.decays]
    for col, key in ((1, "test_acc"), (2, "weight_norm")):
        fig.add_trace(
            go.Scatter(
                x=list(cfg.decays),
                y=[r[key] for r in rows],
                name=name,
                legendgroup=name,
                showlegend=col == 1,
                mode="lines+markers",
                line=dict(color=plots.COLORS[i]),
            ),
            row=1,
            col=col,
        )
        fig.add_hline(
            y=adam_results[("Adam", 0.0)][key],
            line_dash="dot",
            line_color=plots.COLORS[7],
            row=1,
            col=col,
            annotation_text="no decay" if col == 1 else None,
        )
fig.update_xaxes(type="log", title_text="λ (weight_decay)", exponentformat="power")
fig.update_yaxes(title_text="accuracy", row=1, col=1)
fig.update_yaxes(title_text="‖w‖", type="log", row=1, col=2)
fig.update_layout(
    title="The same λ means very different things to Adam + L2 and to AdamW", height=420
)
plots.show(fig, cfg.run_dir / "adam_vs_adamw.html")

# %% [markdown]
# At equal $\lambda$, the L2 penalty under Adam is by far the stronger: it
# shrinks the weights over the range where AdamW barely touches them, and at the
# top of the range it prevents the network from fitting anything, while AdamW's
# decay (a factor $1 - \eta\lambda$ per step) only starts to matter there. To
# compare them at *matched strength*, compare each one's best $\lambda$ (chosen on
# the validation set, printed above), or points of equal weight norm in the
# right panel. On this small problem their test accuracies at those $\lambda$ are
# close, the difference is of the order of the test set's standard error, and in
# this run neither beats Adam without decay by more than that: the paper's gains
# were measured on larger image benchmarks, with longer training and
# learning-rate schedules.
#
# The mechanism of {eq}`regularization-adam-l2` is easy to see in the first
# layer. Each input pixel has one column of weights; MNIST's border pixels are
# black in every training image, so their weights get no data gradient at all.
# Below, the norm of each pixel's column of first-layer weights, for Adam without
# decay, and for Adam + L2 and AdamW at the smallest $\lambda$ of the sweep:

# %%
dead = (x_train == 0).all(
    axis=0
)  # (784,) pixels that are black in every training image
smallest = min(cfg.decays)
maps = {
    "Adam, no decay": adam_models[("Adam", 0.0)],
    f"Adam + L2, λ={smallest:g}": adam_models[("Adam + L2", smallest)],
    f"AdamW, λ={smallest:g}": adam_models[("AdamW", smallest)],
}
column_norms = {
    name: np.linalg.norm(net[0].weight.data, axis=0) for name, net in maps.items()
}  # (784,)
fig = plots.image_grid(
    np.stack([v.reshape(28, 28) for v in column_norms.values()]),
    titles=list(column_norms),
    ncols=3,
    cell=220,
    colorscale="Viridis",
    title="Norm of each input pixel's first-layer weights (each panel on its own scale)",
)
plots.show(fig, cfg.run_dir / "pixel_weights.html")
print(f"{dead.sum()} of 784 pixels are black in all {len(x_train)} training images")
for name, norms in column_norms.items():
    print(
        f"{name:24} mean weight norm: always-black pixels {norms[dead].mean():.4f}, "
        f"other pixels {norms[~dead].mean():.4f}"
    )


# %% [markdown]
# Without decay, the weights of the always-black pixels never move from their
# initial values. With the L2 penalty under Adam, even at the smallest $\lambda$,
# they are gone: the penalty gradient is all Adam sees for them, and Adam's
# normalization turns any $\lambda$ into steps of about $\eta$. AdamW at the same
# $\lambda$ has shrunk them by the factor $(1 - \eta\lambda)^t$, the same factor it
# applies to every other weight.
#
# ## Experiment 3: more data, and what it does not buy
#
# The regularizers trade bias for variance; more data lowers the variance
# without paying in bias. How far does that go? Fit the target
#
# $$
# f(x) = \sin(10\pi x^4), \qquad x \in [0, 1],
# $$ (regularization-target)
#
# whose oscillations speed up towards $x = 1$ (its local period there is $0.05$),
# from $n$ points drawn uniformly on $[0, 1]$, for $n$ from `curve_n_min` to
# `curve_n_max` on a log scale, several seeds each (a seed draws new points and
# new initial weights). The network is an MLP with **one hidden layer of
# `curve_width` tanh units**, $\hat f(x) = \sum_j v_j \tanh(a_j x + b_j) + b$,
# trained by full-batch Adam on the mean squared error. For every fit we measure
# the largest absolute error on a dense grid *inside* $[0, 1]$ (interpolation)
# and on $[0, 1.5]$ (which adds extrapolation beyond the data).
#
# Two choices need explaining.
#
# **The initialization.** With PyTorch's default initialization each unit
# $\tanh(a_j x + b_j)$ has $|a_j| \le 1$: a gentle slope across the whole interval.
# Building oscillations with a period of $0.05$ from such units takes weights
# that Adam needs far more steps to reach than this chapter can afford (we
# tried: after several times the budget below, fits from PyTorch's
# initialization still missed the fast oscillations entirely). Instead, unit
# $j$ starts as a smooth step $\tanh(a_j (x - c_j))$ centred at a uniform random
# point $c_j$ of $[0, 1]$, with a steepness $|a_j|$ drawn log-uniformly between
# `slope_min` and `slope_max` and a random sign. This is still the same network
# and every parameter is still trained; only the starting point is adapted to
# the scale of the problem, as one would rescale an input feature.
#
# **A purpose-built training loop.** There are `curve_sizes` × `curve_seeds`
# trainings of `curve_steps` full-batch steps each. Instead of training the seeds
# one after the other, we stack their weights on a leading axis, $W_1$ of shape
# (S, 1, H) and $W_2$ of shape (S, H, 1), and `np.matmul` runs the S networks in
# one call. The loss is the sum of the S networks' errors, so each network's
# weights get exactly their own gradient, and Adam acts on each coordinate
# separately, so one Adam on the stacked weights is exactly S independent Adams. The backward pass is written by hand
# and works in place in one (S, n, H) buffer: `scratch.engine` allocates a fresh
# array for every intermediate result, which is what keeps its graphs correct,
# but at these sizes the allocations cost more than the arithmetic. Both claims
# are checked below.


# %%
def target(x: np.ndarray) -> np.ndarray:
    return np.sin(10 * np.pi * x**4)


def init_curve_nets(seeds: int, width: int, rng, dtype=np.float32) -> dict:
    """Weights of `seeds` independent 1 -> width -> 1 tanh networks, stacked on a leading axis.

    Unit j starts as tanh(a_j (x - c_j)): a step at c_j ~ U(0, 1) with |a_j| log-uniform in
    [slope_min, slope_max]; the output layer is initialised as nn.Linear's (U(-1/sqrt(width), +))."""
    a = rng.choice([-1.0, 1.0], (seeds, 1, width)) * np.exp(
        rng.uniform(math.log(cfg.slope_min), math.log(cfg.slope_max), (seeds, 1, width))
    )
    c = rng.random((seeds, 1, width))
    bound = 1 / math.sqrt(width)
    weights = {
        "W1": a,
        "b1": -a * c,  # (S, 1, H) each
        "W2": rng.uniform(-bound, bound, (seeds, width, 1)),
        "b2": np.zeros((seeds, 1, 1)),
    }
    return {k: v.astype(dtype) for k, v in weights.items()}


def curve_predict(p: dict, x: np.ndarray) -> np.ndarray:
    """x (S, n, 1) or (n,) -> predictions of the S networks, (S, n, 1) or (S, n)."""
    flat_x = x.ndim == 1
    x = x[None, :, None] if flat_x else x
    h = np.tanh(x * p["W1"] + p["b1"])  # (S, n, H)
    out = h @ p["W2"] + p["b2"]  # (S, n, 1)
    return out[..., 0] if flat_x else out


def curve_loss_and_grads(p: dict, x: np.ndarray, y: np.ndarray) -> tuple:
    """Mean squared error of each of the S networks, (S,), and the gradients of their sum.

    x, y: (S, n, 1). One (S, n, H) buffer holds the hidden activations, then the backward signal."""
    n = x.shape[1]
    h = np.multiply(x, p["W1"])
    h += p["b1"]
    np.tanh(h, out=h)  # (S, n, H) hidden activations
    err = h @ p["W2"] + p["b2"] - y  # (S, n, 1)
    d_out = err * (2 / n)  # d(mean squared error)/d(output), network by network
    grads = {"W2": h.transpose(0, 2, 1) @ d_out, "b2": d_out.sum(axis=1, keepdims=True)}
    h *= h
    np.subtract(1, h, out=h)  # tanh' = 1 - tanh^2
    h *= d_out
    h *= p["W2"].transpose(0, 2, 1)  # (S, n, H): d loss / d pre-activation
    grads["W1"] = x.transpose(0, 2, 1) @ h
    grads["b1"] = h.sum(axis=1, keepdims=True)
    return (err**2).mean(axis=(1, 2)), grads


def train_curve_nets(
    p: dict, x, y, steps: int, lr: float, betas=(0.9, 0.999), eps=1e-8
) -> np.ndarray:
    """Full-batch Adam (optim.Adam's update) with a cosine decay of the step size, on all S networks at once.

    Replaces the arrays in p by the trained ones; returns the final training MSE of each network, (S,)."""
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(v) for k, v in p.items()}
    for t in range(1, steps + 1):
        loss, grads = curve_loss_and_grads(p, x, y)
        step_size = (
            lr * 0.5 * (1 + math.cos(math.pi * (t - 1) / steps))
        )  # CosineAnnealingLR's schedule
        for k, g in grads.items():
            m[k] = betas[0] * m[k] + (1 - betas[0]) * g
            v[k] = betas[1] * v[k] + (1 - betas[1]) * g * g
            denom = np.sqrt(v[k] / (1 - betas[1] ** t)) + eps
            p[k] = (p[k] - step_size / (1 - betas[0] ** t) * (m[k] / denom)).astype(
                p[k].dtype, copy=False
            )
    return loss


# %% [markdown]
# First the checks: the hand-written gradients against the engine's autograd (in
# float64, on a small problem), then one Adam step of ours against `optim.Adam`
# on the same stacked weights, then the speed of one training step for the
# largest training set, by hand and with the engine.


# %%
def engine_loss(params: dict, x, y) -> Tensor:
    """The same summed MSE, written with engine Tensors: autograd does the backward."""
    out = (Tensor(x) * params["W1"] + params["b1"]).tanh() @ params["W2"] + params["b2"]
    return ((out - y) ** 2).mean(axis=(1, 2)).sum()


rng = np.random.default_rng(cfg.seed)
x_small = rng.random((3, 7, 1))
p_small = init_curve_nets(3, 16, rng, dtype=np.float64)
_, ours = curve_loss_and_grads(
    {k: v.copy() for k, v in p_small.items()}, x_small, target(x_small)
)
params = {k: Tensor(v, requires_grad=True) for k, v in p_small.items()}
engine_loss(params, x_small, target(x_small)).backward()
print(
    f"hand-written vs autograd gradients: largest |difference| "
    f"{max(np.abs(ours[k] - params[k].grad).max() for k in ours):.1e}"
)
# float64, gradients of size ~0.1 to 1, the same sums in other orders: measured 1.7e-18.
# 1e-12 is far above float64 rounding, far below a wrong formula.
hand_vs_autograd = max(np.abs(ours[k] - params[k].grad).max() for k in ours)
assert hand_vs_autograd <= 1e-12, (
    f"hand-written gradients differ from autograd's by {hand_vs_autograd:.1e}"
)

p_ours = {k: v.copy() for k, v in p_small.items()}
train_curve_nets(p_ours, x_small, target(x_small), steps=1, lr=cfg.curve_lr)
adam = optim.Adam(
    list(params.values()), lr=cfg.curve_lr
)  # params still hold the autograd gradients
adam.step()
print(
    f"our Adam step vs optim.Adam:         largest |difference| "
    f"{max(np.abs(p_ours[k] - params[k].data).max() for k in p_ours):.1e}"
)
# One float64 Adam step on weights of size ~1: rounding, measured 5.6e-17. Tolerance 1e-12.
adam_vs_optim = max(np.abs(p_ours[k] - params[k].data).max() for k in p_ours)
assert adam_vs_optim <= 1e-12, (
    f"our Adam step differs from optim.Adam's by {adam_vs_optim:.1e}"
)

x_big = rng.random((cfg.curve_seeds, cfg.curve_n_max, 1)).astype(np.float32)
p_big = init_curve_nets(cfg.curve_seeds, cfg.curve_width, rng)
big = {k: Tensor(v, requires_grad=True) for k, v in p_big.items()}
timings = {}
for name, one_step in (
    ("by hand", lambda: curve_loss_and_grads(p_big, x_big, target(x_big))),
    ("engine", lambda: engine_loss(big, x_big, target(x_big)).backward()),
):
    one_step()  # warm up
    started = time.perf_counter()
    for _ in range(5):
        one_step()
    timings[name] = (time.perf_counter() - started) / 5
print(
    f"one step, {cfg.curve_seeds} networks x {cfg.curve_n_max} points: by hand {timings['by hand'] * 1e3:.1f} ms, "
    f"engine {timings['engine'] * 1e3:.1f} ms ({timings['engine'] / timings['by hand']:.1f}x)"
)

# %% [markdown]
# The study itself: for each training-set size, one vectorized training of all
# seeds, then the errors on the dense grid.

# %%
sizes = np.unique(
    np.round(
        np.logspace(
            math.log10(cfg.curve_n_min), math.log10(cfg.curve_n_max), cfg.curve_sizes
        )
    ).astype(int)
)
grid = np.linspace(0, cfg.curve_extent, cfg.curve_grid, dtype=np.float32)
inside = grid <= 1
plot_every = max(
    1, (cfg.curve_grid - 1) // 500
)  # the slider keeps every k-th grid point: a lighter page
n_params = 3 * cfg.curve_width + 1
err_inside = np.zeros((len(sizes), cfg.curve_seeds))  # max |error| on [0, 1]
err_all = np.zeros((len(sizes), cfg.curve_seeds))  # max |error| on [0, curve_extent]
train_rmse = np.zeros((len(sizes), cfg.curve_seeds))
where_worst = np.zeros(
    (len(sizes), cfg.curve_seeds)
)  # the x of the largest error on [0, 1]
bias2, variance = (
    np.zeros(len(sizes)),
    np.zeros(len(sizes)),
)  # eq. (regularization-bias-variance) on [0, 1]
fits, points = [], []  # for the slider
started = time.perf_counter()
for i, n in enumerate(sizes):
    rng = np.random.default_rng(
        [cfg.seed, n]
    )  # one stream per size: a size's result does not depend on the others
    x = rng.random((cfg.curve_seeds, n, 1)).astype(np.float32)
    p = init_curve_nets(cfg.curve_seeds, cfg.curve_width, rng)
    train_rmse[i] = np.sqrt(
        train_curve_nets(p, x, target(x), cfg.curve_steps, cfg.curve_lr)
    )
    pred = curve_predict(p, grid)  # (S, G)
    err = np.abs(pred - target(grid))
    err_inside[i], err_all[i] = err[:, inside].max(axis=1), err.max(axis=1)
    where_worst[i] = grid[inside][err[:, inside].argmax(axis=1)]
    mean_fit = pred[:, inside].mean(axis=0)
    bias2[i] = np.mean((mean_fit - target(grid[inside])) ** 2)
    variance[i] = np.mean(pred[:, inside].var(axis=0))
    fits.append(pred[:, ::plot_every])
    points.append((x[0, :, 0], target(x[0, :, 0])))
curve_seconds = time.perf_counter() - started
print(
    f"{len(sizes)} sizes x {cfg.curve_seeds} seeds = {len(sizes) * cfg.curve_seeds} fits in {curve_seconds:.1f} s; "
    f"{n_params} parameters per network\n"
)
print(
    f"{'n':>5}{'train RMSE':>12}{'max err on [0, 1]':>22}{f'max err on [0, {cfg.curve_extent:g}]':>24}"
    f"{'bias²':>9}{'variance':>10}"
)
print(
    f"{'':5}{'(worst seed)':>12}{'mean [min, max]':>22}{'mean [min, max]':>24}{'on [0, 1]':>19}"
)
for i, n in enumerate(sizes):
    print(
        f"{n:>5}{train_rmse[i].max():>12.3f}{err_inside[i].mean():>9.2f} [{err_inside[i].min():.2f}, "
        f"{err_inside[i].max():.2f}]{err_all[i].mean():>11.2f} [{err_all[i].min():.2f}, {err_all[i].max():.2f}]"
        f"{bias2[i]:>9.4f}{variance[i]:>10.4f}"
    )
print(
    f"\nwhere the largest error on [0, 1] sits, for n = {sizes[-1]}: x = "
    + ", ".join(f"{v:.3f}" for v in np.sort(where_worst[-1]))
)

# %% [markdown]
# Mean over the seeds, with the band from the best to the worst seed; the dotted
# line marks the training-set size equal to the number of parameters:

# %%
fig = go.Figure()
for i, (name, errs) in enumerate(
    (
        ("inside the data, [0, 1]", err_inside),
        (f"with extrapolation, [0, {cfg.curve_extent:g}]", err_all),
    )
):
    color = plots.COLORS[i]
    fig.add_trace(
        go.Scatter(
            x=np.r_[sizes, sizes[::-1]],
            y=np.r_[errs.max(1), errs.min(1)[::-1]],
            fill="toself",
            fillcolor=color,
            opacity=0.2,
            line=dict(width=0),
            hoverinfo="skip",
            showlegend=False,
            legendgroup=name,
        )
    )
    fig.add_trace(
        go.Scatter(
            x=sizes,
            y=errs.mean(1),
            name=name,
            legendgroup=name,
            mode="lines+markers",
            line=dict(color=color),
            customdata=np.c_[errs.min(1), errs.max(1)],
            hovertemplate="n=%{x}: mean %{y:.2f} (min %{customdata[0]:.2f}, "
            "max %{customdata[1]:.2f})<extra></extra>",
        )
    )
fig.add_vline(
    x=n_params,
    line_dash="dot",
    line_color=plots.COLORS[7],
    annotation_text="n = parameters",
    annotation_position="top left",
)
fig.update_xaxes(type="log", title_text="training points n")
fig.update_yaxes(type="log", title_text="max |f̂(x) − f(x)| on the grid")
fig.update_layout(
    title=f"Largest error of the fit vs training-set size ({cfg.curve_seeds} seeds: mean and min-max)",
    height=440,
    hovermode="x unified",
)
plots.show(fig, cfg.run_dir / "error_vs_n.html")

# %% [markdown]
# Drag the slider through the training-set sizes: the truth (grey), the fits of
# all seeds, and the training points of the first seed. The dotted line is the
# end of the data.

# %%
plot_grid = grid[::plot_every]
truth = go.Scatter(
    x=grid,
    y=target(grid),
    name="f(x) = sin(10πx⁴)",
    mode="lines",
    line=dict(color=plots.COLORS[7], width=1.5),
)


def frame_traces(i: int, first: bool = False) -> list:
    """The seeds' fits and the first seed's training points for size index i.

    Frames only carry what changes (the fits' y): plotly merges them into the traces."""
    lines = [
        go.Scatter(
            x=plot_grid,
            y=fits[i][s],
            name=f"fit, seed {s}",
            mode="lines",
            line=dict(width=1.5, color=plots.COLORS[s % 7]),
        )
        if first
        else go.Scatter(y=fits[i][s])
        for s in range(cfg.curve_seeds)
    ]
    return lines + [
        go.Scatter(
            x=points[i][0],
            y=points[i][1],
            name="training points (seed 0)",
            mode="markers",
            marker=dict(size=5, color="#1a1a1a"),
        )
    ]


last = len(sizes) - 1
fig = go.Figure(
    data=[truth, *frame_traces(last, first=True)],
    frames=[
        go.Frame(
            data=frame_traces(i),
            traces=list(range(1, cfg.curve_seeds + 2)),
            name=str(n),
        )
        for i, n in enumerate(sizes)
    ],
)
fig.add_vline(x=1, line_dash="dot", line_color=plots.COLORS[7])
fig.update_layout(
    title="Fits of sin(10πx⁴) from n points: slide n",
    height=520,
    xaxis_title="x",
    yaxis_title="f(x)",
    yaxis_range=[-3, 3],
    sliders=[
        dict(
            active=last,
            currentvalue=dict(prefix="n = "),
            pad=dict(t=50),
            steps=[
                dict(
                    label=str(n),
                    method="animate",
                    args=[
                        [str(n)],
                        dict(
                            mode="immediate",
                            frame=dict(duration=0, redraw=True),
                            transition=dict(duration=0),
                        ),
                    ],
                )
                for n in sizes
            ],
        )
    ],
)
plots.show(fig, cfg.run_dir / "fits_slider.html")

# %% [markdown]
# And the decomposition {eq}`regularization-bias-variance` on $[0, 1]$, over the
# seeds (no noise here, so $\sigma^2 = 0$):

# %%
fig = plots.lines(
    {"bias²": bias2, "variance": variance, "mean squared error": bias2 + variance},
    x=sizes,
    log_y=True,
    title="Bias² and variance of the fit on [0, 1], averaged over x",
    xlabel="training points n",
    ylabel="squared error",
)
fig.update_xaxes(type="log")
plots.show(fig, cfg.run_dir / "bias_variance.html")

# %% [markdown]
# What the run shows, honestly:
#
# - **The fits fit.** The training RMSE (second column) stays small for every
#   $n$: each network passes (nearly) through its training points, from the
#   smallest training set to the largest, so the errors in the other columns are
#   errors *between* and *beyond* the points.
# - **Interpolation improves with data.** With few points the fit does whatever
#   it likes between them: in the fast-oscillating part the points do not even
#   determine the oscillation, and the worst error is of the order of the
#   target's full swing. With more points the largest error on $[0, 1]$ falls,
#   slowly and not monotonically: it sits where the curve is steepest, near
#   $x = 1$, so it is set by the gaps between training points there. The run
#   prints where it sits for the largest training set: typically at $x = 1$
#   itself, beyond the last training point, a sliver of extrapolation inside
#   the interval, across a gap of about $1/n$ where the slope reaches $40\pi$.
#   The bias² and variance columns both fall with $n$.
# - **Extrapolation does not.** Beyond $x = 1$ the units are steps that have
#   already happened, so each fit flattens into a near-constant, while the
#   target keeps oscillating between $-1$ and $1$. The largest error on
#   $[0, 1.5]$ therefore cannot fall below $1$, the target's amplitude, whatever
#   $n$ is; it falls only while the error *inside* still dominates it, then
#   stays flat. No point in $[0, 1]$ says anything about $x > 1$. The only thing
#   that can help outside the data is prior knowledge built into the model (here,
#   that the target is a sine of a polynomial), not more samples of the same
#   range.
# - The dotted line at $n$ = number of parameters is where
#   {cite:t}`belkin2019reconciling` see the peak of double descent, for models
#   fitted to the minimum-norm interpolating solution; our fits are not that
#   (Adam from a random start, with a fixed budget of steps), and the band
#   around the line shows whether this run has any trace of it.
#
# ## Results
#
# This run, the recorded `full` run, and the paper. Our setting is deliberately
# far from the paper's: {cite:t}`srivastava2014dropout` train on all 60,000 MNIST
# images, where their Table 2 lists 1.60% test error for a standard network and
# 1.25% for a dropout network with three ReLU layers of 1024 units, so only the
# direction of the effect carries over. (To record the `full` run:
# `python code/foundations/regularization.py --profile full`, on a CPU since the
# engine is NumPy, then copy `runs/regularization/metrics.json` to
# `results/regularization.json`.)

# %%
PAPER = {
    "none": 1 - 0.0160,
    "dropout": 1 - 0.0125,
}  # Srivastava et al. (2014), Table 2, full MNIST
best_adam, best_adamw = (
    best_decay["Adam + L2"],
    best_decay["AdamW"],
)  # chosen on the validation set
metrics = {
    f"{k.replace(' ', '_')}_{m}": v for k, r in results.items() for m, v in r.items()
}
metrics.update(
    {
        "early_stopping_best_epoch": best_epoch["early stopping"],
        "adam_l2_best_decay": best_adam,
        "adam_l2_best_test_acc": adam_results[("Adam + L2", best_adam)]["test_acc"],
        "adamw_best_decay": best_adamw,
        "adamw_best_test_acc": adam_results[("AdamW", best_adamw)]["test_acc"],
        "adam_no_decay_test_acc": adam_results[("Adam", 0.0)]["test_acc"],
        "curve_sizes": sizes.tolist(),
        "curve_max_err_inside_mean": err_inside.mean(1).tolist(),
        "curve_max_err_all_mean": err_all.mean(1).tolist(),
        "curve_train_rmse_worst": train_rmse.max(1).tolist(),
        "curve_seconds": curve_seconds,
    }
)

rows = results_table(
    cfg,
    metrics,
    seconds=time.perf_counter() - run_started,
    title="MNIST test accuracy",
    columns={
        "config.n_train": ("train images", ","),
        **{f"{k.replace(' ', '_')}_test_acc": (k, ".3f") for k in results},
    },
    references=[
        Reference(
            "3 ReLU layers of 1024",
            {
                "config.n_train": 60_000,
                "none_test_acc": PAPER["none"],
                "dropout_test_acc": PAPER["dropout"],
            },
            source="srivastava2014dropout",
            setting="Table 2",
        )
    ],
    notes=[
        f"test accuracy at the λ chosen on validation: "
        f"Adam + L2 {metrics['adam_l2_best_test_acc']:.3f} (λ={best_adam:g}), "
        f"AdamW {metrics['adamw_best_test_acc']:.3f} (λ={best_adamw:g}), "
        f"no decay {metrics['adam_no_decay_test_acc']:.3f}",
        f"curve fits, n={sizes[0]} -> n={sizes[-1]}: mean max error inside "
        f"{err_inside[0].mean():.2f} -> {err_inside[-1].mean():.2f}, "
        f"with extrapolation {err_all[0].mean():.2f} -> {err_all[-1].mean():.2f}",
    ],
)
assert rows[0].values["none_test_acc"] == results["none"]["test_acc"]

# %%
utils.save_run(
    cfg.run_dir / "metrics.json", cfg, metrics, time.perf_counter() - run_started
)
print(f"metrics written to {cfg.run_dir / 'metrics.json'}")

# %% [markdown]
# ## Summary
#
# - A network with more parameters than training examples can fit them
#   perfectly; what matters is the error on new data, and the gap between the two
#   is what regularization targets. For the squared loss the expected error
#   splits into bias², variance and noise, eq. {eq}`regularization-bias-variance`.
# - An L2 penalty adds $\lambda w$ to the gradient: under SGD that is weight
#   decay, a uniform shrinking of the weights. An L1 penalty pulls with constant
#   force and makes most weights (nearly) zero.
# - Under Adam an L2 penalty is *not* weight decay: it is normalized away where
#   gradients are large and acts at full speed, whatever $\lambda$, where they are
#   zero. AdamW decouples the decay, eq. {eq}`regularization-adamw`; its useful
#   $\lambda$ are orders of magnitude larger.
# - Inverted dropout zeroes activations with probability $p$ during training and
#   scales the rest by $1/(1-p)$; evaluation uses the whole network unchanged.
# - Early stopping picks the epoch with the best validation score and restores
#   its weights; it acts like an L2 penalty with $\lambda \approx 1/(\eta\tau)$.
# - The strongest regularizer is more data, and it only helps where the data is:
#   a network fitted on $[0, 1]$ interpolates better and better as $n$ grows, and
#   extrapolates no better at all.
#
# ## Exercises
#
# :::{exercise}
# :label: regularization-ex-1
# With plain gradient steps, L1 leaves weights hovering near zero instead of on
# it. Write a callback that, after every optimizer step, applies the *proximal*
# step of the L1 penalty (soft thresholding) to every weight matrix,
# $w \leftarrow \operatorname{sign}(w)\max(|w| - \eta\lambda_1, 0)$, and train the
# MLP with it instead of the penalty in the loss. Which threshold matches the
# penalty of experiment 1, given that the optimizer uses momentum $\mu$? What
# fraction of the weights is exactly zero at the end, and how does the test
# accuracy compare?
# :::
#
# :::{solution} regularization-ex-1
# :class: dropdown
# The proximal step minimizes $\frac{1}{2\eta}\lVert w' - w \rVert^2 + \lambda_1 \lVert w' \rVert_1$
# exactly: weights within $\eta\lambda_1$ of zero land on zero, the others move
# towards it by $\eta\lambda_1$.
#
# With momentum, a constant gradient $\lambda_1 \operatorname{sign}(w)$ builds up
# to a step of $\eta\lambda_1/(1 - \mu)$, ten times $\eta\lambda_1$ for $\mu = 0.9$:
# that is the threshold comparable with experiment 1's penalty (with
# $\eta\lambda_1$ alone the shrinking is ten times weaker and few weights reach
# zero in this many steps).
#
# ```python
# class SoftThreshold(Callback):
#     def __init__(self, shrink):
#         self.shrink = shrink
#     def on_batch_end(self, state):
#         for w in state.model.parameters():
#             if w.ndim == 2:
#                 w.data = (np.sign(w.data) * np.maximum(np.abs(w.data) - self.shrink, 0)).astype(w.dtype)
#
# utils.seed_everything(cfg.seed)
# net = mnist_mlp()
# fit_arrays(net, optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum), x_train, y_train,
#     epochs=cfg.epochs, batch_size=cfg.batch_size, seed=cfg.seed, verbose=False,
#     callbacks=[SoftThreshold(cfg.lr * cfg.l1 / (1 - cfg.momentum))])
# w = np.concatenate([p.data.ravel() for p in net.parameters() if p.ndim == 2])
# print(np.mean(w == 0), np.mean(net[0].weight.data[:, dead] == 0), evaluate(net, x_test, y_test)["val_acc"])
# ```
# A large fraction of the weights ends exactly at zero, every weight of the
# always-black pixels among them, for a test accuracy close to the penalty's.
# Under momentum the soft threshold is a heuristic (the proximal step is exact
# for plain SGD), but it is what makes the zeros exact.
# :::
#
# :::{exercise}
# :label: regularization-ex-2
# Replicate the central experiment of {cite:t}`zhang2017understanding` at small
# scale: shuffle `y_train` (a random permutation of the labels) and train the
# unregularized MLP on it for several times more epochs. What training and test
# accuracy do you get? What does this say about explanations of generalization
# that only count parameters?
# :::
#
# :::{solution} regularization-ex-2
# :class: dropdown
# ```python
# rng = np.random.default_rng(0)
# y_random = rng.permutation(y_train)
# utils.seed_everything(cfg.seed)
# net = mnist_mlp()
# hist = fit_arrays(net, optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum), x_train, y_random,
#            epochs=5 * cfg.epochs, batch_size=cfg.batch_size, val=(x_test, y_test), seed=cfg.seed, verbose=False)
# print(evaluate(net, x_train, y_random)["val_acc"], hist["val_acc"][-1])
# ```
# The training accuracy climbs to (nearly) 100%, more slowly than with the true
# labels, and the test accuracy stays at chance, about 10%. The same network,
# with the same number of parameters and the same training, generalizes on real
# labels and memorises random ones: its size alone cannot explain the first. What
# differs is the data, which has structure that gradient descent picks up first.
# :::
#
# :::{exercise}
# :label: regularization-ex-3
# Show that for a coordinate whose data gradient is always zero, the trajectory
# of Adam with an L2 penalty, eq. {eq}`regularization-adam-l2`, does not depend
# on $\lambda > 0$ (take $\epsilon = 0$). How many steps does it take to bring a
# weight from $\theta_0$ to near zero? Compare with AdamW.
# :::
#
# :::{solution} regularization-ex-3
# :class: dropdown
# The gradient is $g_t = \lambda\theta_{t-1}$. Replace $\lambda$ by $c\lambda$:
# $m_t$ scales by $c$, $v_t$ by $c^2$, so $\hat m_t/\sqrt{\hat v_t}$ is unchanged,
# and by induction so is every $\theta_t$. At the first step
# $\hat m_1/\sqrt{\hat v_1} = \operatorname{sign}(\theta_0)$, so the weight moves by
# exactly $\eta$ towards zero; the following steps stay close to $\eta$ (a little
# less, since $\hat v$ remembers the larger gradients of the past), so it takes a
# little more than $|\theta_0|/\eta$ steps (for the first layer here, $|\theta_0| \le 1/\sqrt{784}$
# and $\eta = 10^{-3}$: a few dozen steps, after which it keeps decaying towards
# zero). AdamW multiplies it by $1 - \eta\lambda$ per step, so
# it needs about $\ln(|\theta_0|/\delta)/(\eta\lambda)$ steps to reach $\delta$:
# proportional to $1/\lambda$, as one would expect of a decay.
# :::
#
# :::{exercise}
# :label: regularization-ex-4
# Evaluation mode uses the full network as an approximation of the average over
# all thinned networks. Compare it with a Monte Carlo average: for the dropout
# model of experiment 1, average the softmax outputs of $K$ passes in training
# mode (fresh masks each time) for $K = 1, 10, 100$, and compare the test
# accuracies with the evaluation-mode accuracy.
# :::
#
# :::{solution} regularization-ex-4
# :class: dropdown
# ```python
# net = runs["dropout"][0]
# net.train()
# with no_grad():
#     for K in (1, 10, 100):
#         probs = sum(F.softmax(net(Tensor(x_test)), dim=-1).numpy() for _ in range(K)) / K
#         print(K, np.mean(probs.argmax(1) == y_test))
# net.eval()
# print("eval mode", evaluate(net, x_test, y_test)["val_acc"])
# ```
# One stochastic pass is clearly worse (one thinned network); the average over
# 10 to 100 passes comes within noise of the evaluation-mode accuracy, which
# costs a single pass. The weight-scaling rule is exact for a linear layer and
# a good approximation through the nonlinearities.
# :::
#
# :::{exercise}
# :label: regularization-ex-5
# In experiment 3, replace tanh by ReLU (a unit becomes a kink,
# $\max(0, a_j(x - c_j))$; change the two lines of the forward pass and the
# derivative in the backward pass). What happens to the error inside $[0, 1]$,
# and to the error on $[0, 1.5]$, as $n$ grows?
# :::
#
# :::{solution} regularization-ex-5
# :class: dropdown
# In `curve_loss_and_grads`, keep the pre-activation `z = x * W1 + b1`, set
# `h = np.maximum(z, 0)`, and replace the factor $1 - h^2$ by `(z > 0)`; in
# `curve_predict`, use `np.maximum(..., 0)`. A ReLU network of one input is a
# piecewise linear function: it joins the training points with straight
# segments, and beyond its last kink it continues in a straight line. With the
# same budget of steps it fits the fast oscillations much worse than the tanh
# network (its training error stays large for the larger training sets), so the
# error inside $[0, 1]$ falls with $n$ but stays higher. On $[0, 1.5]$ the error
# is now *unbounded* in the extent: the fit leaves the data along the slope of
# its last segment, and near $x = 1$ slopes are steep (the target's reaches
# $40\pi$), so for some seeds the error at $1.5$ reaches tens, with no trend in
# $n$. More data changes the slope it leaves with, not the fact that it
# extrapolates linearly.
# :::
#
# ## References
#
# ```{bibliography}
# :filter: docname in docnames
# ```
