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
# (autograd)=
# # A tiny autograd engine
#
# Every network in this book learns by gradient descent, and gradient descent
# needs the derivative of the loss with respect to every parameter, at every
# step. This chapter builds the machine that computes them: *reverse-mode
# automatic differentiation*. We write it twice, first for single numbers (about a
# hundred lines, in the spirit of micrograd {cite:p}`karpathy2020micrograd`), then
# for NumPy arrays. The result is `scratch.engine`, a small library with PyTorch's
# names: it trains a multilayer perceptron below, and its gradients agree with
# PyTorch's to the last few digits of float64. Later chapters grow it.

# %% tags=["hide-input"]
import time
from dataclasses import dataclass, field

import numpy as np
import sympy
import torch
from sklearn.datasets import make_moons

import scratch.engine.functional as F
from scratch import plots, utils
from scratch.config import Config, ConfigError, positive, unit_interval
from scratch.engine import Tensor, Value, gradcheck, nn, no_grad, optim
from scratch.engine.draw import draw_graph
from scratch.engine.models import make_mlp
from scratch.results import results_table


@dataclass
class AutogradConfig(Config):
    NAME = "autograd"

    n_train: int = field(
        default=500,
        metadata=positive(
            "two-moons training points: enough to pin down the curved boundary"
        ),
    )
    n_test: int = field(
        default=1000,
        metadata=positive(
            "held-out points: 1000 pin accuracy down to about +-1 percentage point (95%)"
        ),
    )
    noise: float = field(
        default=0.2,
        metadata=positive(
            "std of the noise added to the moons: at 0.2 they overlap a little, so 100% is out of reach"
        ),
    )
    hidden: int = field(
        default=16,
        metadata=positive(
            "units in each of the two hidden layers: 16 bend the boundary enough for two moons"
        ),
    )
    steps: int = field(
        default=1500,
        metadata=positive(
            "SGD steps, about 100 epochs of 500 points: the test loss has stopped improving by then"
        ),
    )
    batch_size: int = field(
        default=32,
        metadata=positive(
            "points per step: small batches are cheap in NumPy, and their noise does no harm here"
        ),
    )
    lr: float = field(
        default=0.1,
        metadata=positive(
            "SGD step size: of 0.03, 0.1 and 0.3, the best test accuracy after these steps"
        ),
    )
    momentum: float = field(
        default=0.9,
        metadata=unit_interval(
            "SGD momentum: the usual 0.9 averages gradients over about 10 steps"
        ),
    )
    eval_every: int = field(
        default=25,
        metadata=positive(
            "steps between evaluations of the full train and test loss (the curve's resolution)"
        ),
    )
    snapshots: int = field(
        default=16, metadata=positive("frames of the decision-boundary animation")
    )
    grid: int = field(
        default=60,
        metadata=positive(
            "grid points per axis where the boundary is drawn: 60 x 60 looks smooth, costs little"
        ),
    )

    PROFILES = {
        "tiny": dict(
            n_train=200, n_test=200, steps=60, eval_every=20, snapshots=4, grid=20
        ),  # tests: seconds
        "small": dict(),  # the book build: well under a minute on a CPU
        "full": dict(
            n_train=5000,
            n_test=10000,
            hidden=64,
            steps=20000,
            eval_every=200,
            snapshots=40,
            grid=150,
        ),  # larger data and model, still NumPy on a CPU
    }

    def validate(self):
        if self.batch_size > self.n_train:
            raise ConfigError(
                f"batch_size={self.batch_size} exceeds n_train={self.n_train}"
            )


cfg = AutogradConfig.from_cli()
utils.seed_everything(cfg.seed)
torch.set_num_threads(
    1
)  # PyTorch only checks our tiny networks here: threads would cost more than they save
run_started = time.perf_counter()

# %% [markdown]
# ## Motivation: three ways to a gradient, and the one that scales
#
# A network with $P$ parameters $\theta$ and a scalar loss $L(\theta)$ needs the
# gradient $\nabla_\theta L$, all $P$ partial derivatives, at every training step.
# There are three obvious ways to get it.
#
# **By hand.** Derive $\partial L / \partial \theta_i$ on paper and code the
# formulas. It works for logistic regression. For a deep network, every change
# (another layer, another activation, a different loss) means deriving and
# debugging again, and a wrong gradient does not crash: training just goes worse,
# quietly.
#
# **Numerically.** Perturb one parameter at a time and use the central difference
#
# $$
# \frac{\partial L}{\partial \theta_i} \approx \frac{L(\theta + \epsilon e_i) - L(\theta - \epsilon e_i)}{2\epsilon},
# $$ (autograd-central-difference)
#
# where $e_i$ is the $i$-th unit vector. That is two forward passes *per
# parameter*: $2P$ passes for one gradient, about 50 million for a ResNet-50. And it is
# inexact. The Taylor remainder (truncation error, $O(\epsilon^2)$) shrinks with
# $\epsilon$, but the two values of $L$ agree in more and more leading digits, so
# the rounding error of their difference, divided by $2\epsilon$, grows like
# $1/\epsilon$. Here is the trade-off for $\tanh'(0.5)$ in float64:

# %%
x0 = 0.5
exact = 1 - np.tanh(x0) ** 2
eps = np.logspace(-15, -1, 57)
errors = {  # floored at 1e-17 so that an exact hit still shows on a log axis
    "forward difference": np.abs((np.tanh(x0 + eps) - np.tanh(x0)) / eps - exact),
    "central difference": np.abs(
        (np.tanh(x0 + eps) - np.tanh(x0 - eps)) / (2 * eps) - exact
    ),
}
fig = plots.lines(
    {k: np.maximum(v, 1e-17) for k, v in errors.items()},
    x=eps,
    log_y=True,
    title="Error of finite differences for tanh'(0.5)",
    xlabel="step size epsilon",
    ylabel="|error|",
)
fig.update_xaxes(type="log", exponentformat="power")
fig.update_yaxes(exponentformat="power")
plots.show(fig, cfg.run_dir / "finite_differences.html")
central = errors["central difference"]
print(
    f"best central difference: error {central.min():.1e}, at epsilon = {eps[central.argmin()]:.0e}"
)
print(f"float64's own resolution:        {np.finfo(np.float64).eps:.1e}")

# %% [markdown]
# Even at the best $\epsilon$ a good part of float64's digits is lost, and the
# best $\epsilon$ depends on the function. Finite differences are too slow to
# train with, but they need nothing except the forward pass, which makes them the
# perfect *test* of a faster method: we will use them exactly so.
#
# **Symbolically.** Let a computer algebra system differentiate the formula. The
# formula of a deep network, written out as one expression, repeats every shared
# subexpression, and its derivative repeats them again: *expression swell*
# {cite:p}`baydin2018automatic`. The logistic map $l_{n+1} = 4 l_n (1 - l_n)$, $l_1 = x$
# is a program with three operations per step; as a formula, and its derivative by
# `sympy.diff`:

# %%
x = sympy.Symbol("x")
l = x
print(f"{'n':>2} {'ops in the program':>19} {'ops in l_n':>11} {'ops in dl_n/dx':>15}")
for n in range(1, 7):
    l = 4 * l * (1 - l)
    print(
        f"{n:>2} {3 * n:>19} {sympy.count_ops(l):>11} {sympy.count_ops(sympy.diff(l, x)):>15}"
    )


# %% [markdown]
# **Reverse-mode automatic differentiation** keeps the best of both: like
# symbolic differentiation it is exact (up to the rounding of the forward pass
# itself), and like the program it works on values, never on growing formulas. It
# differentiates the *program*, one elementary operation at a time, and it
# delivers all $P$ partial derivatives in one backward pass that costs a small
# constant multiple of the forward pass, however large $P$ is.
#
# ## Theory
#
# ### A program is a graph
#
# Any computation built from elementary operations can be written as a sequence
# of intermediate variables $v_1, \dots, v_N$: the first are the inputs, each later
# one is an elementary function of earlier ones,
#
# $$
# v_i = \varphi_i\big(v_j\big)_{j \in \mathrm{pa}(i)},
# $$ (autograd-trace)
#
# where $\mathrm{pa}(i)$, the *parents* of $i$, are the variables it reads. The
# variables are the nodes of a directed acyclic graph, the *computational graph*,
# with an edge $j \to i$ for each $j \in \mathrm{pa}(i)$. Each $\varphi_i$ is simple
# ($+$, $\times$, $\tanh$, ...) and we know its partial derivatives
# $\partial \varphi_i / \partial v_j$ exactly. The chain rule combines them.
#
# ### Forward mode: derivatives flow with the values
#
# Fix an input direction and carry, next to each value $v_i$, its derivative
# $\dot v_i$ along that direction (its *tangent*):
#
# $$
# \dot v_i = \sum_{j \in \mathrm{pa}(i)} \frac{\partial \varphi_i}{\partial v_j}\, \dot v_j .
# $$ (autograd-forward)
#
# Seeding the inputs with $\dot x = u$ gives, at the outputs, $\dot y = J u$, the
# Jacobian-vector product. This is forward mode {cite:p}`wengert1964simple`: one
# pass per input direction, so the gradient of a loss of $P$ parameters takes $P$
# passes, as many as finite differences (though exact).
#
# ### Reverse mode: derivatives flow back from the output
#
# Turn it around. For one scalar output $L$, define the *adjoint* of every
# variable, $\bar v_j = \partial L / \partial v_j$. A variable $v_j$ influences $L$
# only through the variables that read it, its *children*, so the multivariate
# chain rule gives
#
# $$
# \bar v_j = \sum_{i \,:\, j \in \mathrm{pa}(i)} \bar v_i \, \frac{\partial \varphi_i}{\partial v_j},
# \qquad \bar L = 1 .
# $$ (autograd-reverse)
#
# Equation {eq}`autograd-reverse` can be evaluated in *reverse* topological order:
# by the time we reach $v_j$, all its children have their adjoints. One backward
# sweep over the graph then yields $\bar v_j$ for **every** variable, every
# parameter included. In matrix form, seeding the output with $\bar y = w$ gives
# at the inputs
#
# $$
# \bar x = J^{\top} w, \qquad \text{i.e. } \bar x^{\top} = w^{\top} J ,
# $$ (autograd-vjp)
#
# the *vector-Jacobian product*, where forward mode computed $J u$. For
# $f : \mathbb{R}^n \to \mathbb{R}^m$, the whole Jacobian takes $n$ forward passes
# or $m$ reverse passes. A training loss has $m = 1$ and $n = P$ in the millions:
# reverse mode wins by a factor of $P$. Its cost is a small constant times one
# evaluation of $L$, independent of $P$, the *cheap gradient principle*
# {cite:p}`griewank2008evaluating`. The price is memory: the backward sweep needs
# the values of the forward pass, so they are all kept until it is done.
#
# Reverse mode was first described by {cite:t}`linnainmaa1970representation`, to
# propagate rounding errors; {cite:t}`rumelhart1986learning` made it the way
# neural networks learn, under the name *back-propagation*. {cite:t}`baydin2018automatic`
# survey automatic differentiation for machine learning, and
# {cite:t}`griewank2008evaluating` is the reference book.
#
# ### Arrays: one vector-Jacobian product per operation
#
# Nothing changes when the nodes hold arrays, except that we never build
# Jacobians: for $Y = \varphi(X)$, the backward of the operation only has to map
# $\bar Y$ (the shape of $Y$) to $\bar X = J^{\top} \bar Y$ (the shape of $X$),
# and for every operation we need, this product has a short closed form. For an
# elementwise function, $\bar X = \bar Y \odot \varphi'(X)$. For a matrix product,
#
# $$
# Y = A B \quad\Longrightarrow\quad \bar A = \bar Y B^{\top}, \qquad \bar B = A^{\top} \bar Y ,
# $$ (autograd-matmul)
#
# which costs two matrix products, where the Jacobian of $Y$ with respect to $A$
# would have $(\text{size of } Y) \times (\text{size of } A)$ entries. Two more
# rules do most of the remaining work. A sum copies its gradient back to every
# summand, and broadcasting, which copies a value along an axis, sums the
# gradients of the copies:
#
# $$
# y = \sum_k x_k \;\Rightarrow\; \bar x_k = \bar y, \qquad\qquad
# y_k = x \text{ for } k = 1..K \;\Rightarrow\; \bar x = \sum_k \bar y_k .
# $$ (autograd-broadcast)
#
# Indexing is the same copy rule: $Y = X[\text{idx}]$ scatters $\bar Y$ back and
# *adds* where an index repeats.
#
# ## Implementation
#
# ### A scalar engine
#
# A `Value` holds a number, its gradient, its parents and a closure `_backward`
# that applies one term of {eq}`autograd-reverse`: it adds
# $\bar v_i \, \partial \varphi_i / \partial v_j$ to each parent's `grad`. A
# product, for example:
#
# ```{literalinclude} ../../code/scratch/engine/scalar.py
# :pyobject: Value.__mul__
# ```
#
# The `+=` is the sum in {eq}`autograd-reverse`: a value that is used twice
# receives two contributions. A unary function needs only its derivative, here
# $\tanh' = 1 - \tanh^2$, computed from the output that the forward pass kept:
#
# ```{literalinclude} ../../code/scratch/engine/scalar.py
# :pyobject: Value.tanh
# ```
#
# `backward` sorts the graph topologically and calls every `_backward`, outputs
# first:
#
# ```{literalinclude} ../../code/scratch/engine/scalar.py
# :pyobject: Value.backward
# ```
#
# :::{admonition} The whole `Value` class
# :class: dropdown
# ```{literalinclude} ../../code/scratch/engine/scalar.py
# :pyobject: Value
# ```
# :::
#
# A worked example: one neuron $y = \tanh(w_1 x_1 + w_2 x_2 + b)$ with a squared
# error against a target $t$. We label the intermediate values to see them in
# the graph.


# %%
def named(v, label):
    """Attach a label to an intermediate Value, for the drawing."""
    v.label = label
    return v


x1, x2 = Value(2.0, label="x1"), Value(-1.0, label="x2")  # the inputs
w1, w2, b = (
    Value(-0.5, label="w1"),
    Value(0.3, label="w2"),
    Value(0.8, label="b"),
)  # the parameters
t = Value(0.5, label="t")  # the target

w1x1 = named(w1 * x1, "w1x1")
w2x2 = named(w2 * x2, "w2x2")
z = named(named(w1x1 + w2x2, "sum") + b, "z")
y = named(z.tanh(), "y")
loss = named(named(y - t, "error") ** 2, "L")
loss.backward()
for v in (w1, w2, b, x1, x2):
    print(f"dL/d{v.label:<3} = {v.grad:+.6f}")

# %% [markdown]
# Every node now holds its value and its gradient. Hover over the nodes; the
# colour is the gradient, red for negative, blue for positive:

# %%
plots.show(
    draw_graph(loss, title="L = (tanh(w1 x1 + w2 x2 + b) - t)^2 after loss.backward()"),
    cfg.run_dir / "graph.html",
)

# %% [markdown]
# By hand, $\partial L / \partial w_1 = 2 (y - t)(1 - y^2)\, x_1$: the local
# derivatives along the path from $w_1$ to $L$, multiplied (those of the two
# additions are 1). The engine agrees:

# %%
by_hand = 2 * (y.data - t.data) * (1 - y.data**2) * x1.data
print(f"by hand {by_hand:+.15f}\nengine  {w1.grad:+.15f}")

# %% [markdown]
# ### From scalars to arrays
#
# The scalar engine is complete, but one Python object and one closure per number
# is slow. Here is one matrix product with its backward pass, a batch of 64 rows
# through a 16-by-16 weight matrix, as `Value`s and as one NumPy array each:

# %%
rng = np.random.default_rng(cfg.seed)
a_np, w_np = rng.standard_normal((64, 16)), rng.standard_normal((16, 16))

started = time.perf_counter()
a_v = [[Value(v) for v in row] for row in a_np]
w_v = [[Value(v) for v in row] for row in w_np]
products = [
    [sum((p * q for p, q in zip(row, col)), Value(0.0)) for col in zip(*w_v)]
    for row in a_v
]
sum((sum(row, Value(0.0)) for row in products), Value(0.0)).backward()
scalar_seconds = time.perf_counter() - started

started = time.perf_counter()
a_t, w_t = Tensor(a_np, requires_grad=True), Tensor(w_np, requires_grad=True)
(a_t @ w_t).sum().backward()
tensor_seconds = time.perf_counter() - started

same = np.allclose(w_t.grad, [[v.grad for v in row] for row in w_v])
print(
    f"Values: {scalar_seconds * 1e3:.1f} ms, Tensors: {tensor_seconds * 1e3:.2f} ms "
    f"({scalar_seconds / tensor_seconds:.0f}x faster), same gradient: {same}"
)
# Each gradient entry is a sum of 64 terms, added in another order by the two engines: float64
# rounding, ~1e-16 of the entries' size (measured 3e-16 of the largest); 1e-12 leaves a margin,
# and a wrong backward pass is off by O(1).
value_grads = np.array([[v.grad for v in row] for row in w_v])
assert np.abs(w_t.grad - value_grads).max() <= 1e-12 * np.abs(value_grads).max(), (
    "Values and Tensors disagree"
)

# %% [markdown]
# A `Tensor` is a `Value` whose data is an array. One function, `_make`, creates
# the result of every operation: it stores the parents and a function from the
# output's gradient to the parents' gradients, the vector-Jacobian product of the
# operation, and records nothing inside a `no_grad()` block (evaluation, optimizer
# steps):
#
# ```{literalinclude} ../../code/scratch/engine/tensor.py
# :pyobject: _make
# ```
#
# An operation is then a few lines. The product of two arrays returns
# $\bar Y \odot B$ and $\bar Y \odot A$, and the matrix product implements
# {eq}`autograd-matmul`, the vector and batched cases included:
#
# ```{literalinclude} ../../code/scratch/engine/tensor.py
# :pyobject: Tensor.__mul__
# ```
#
# ```{literalinclude} ../../code/scratch/engine/tensor.py
# :pyobject: Tensor.__matmul__
# ```
#
# Neither deals with broadcasting: when `a` of shape (3, 1, 4) multiplies `b` of
# shape (2, 4), `g * b` has the broadcast shape (3, 2, 4), and the engine reduces
# it to each parent's shape by the copy rule {eq}`autograd-broadcast`, in one place
# for all operations:
#
# ```{literalinclude} ../../code/scratch/engine/tensor.py
# :pyobject: unbroadcast
# ```

# %%
a = Tensor(rng.standard_normal((3, 1, 4)), requires_grad=True)
b = Tensor(rng.standard_normal((2, 4)), requires_grad=True)
(a * b).sum().backward()  # a * b has shape (3, 2, 4)
print(
    "a.grad",
    a.grad.shape,
    "equals b summed over its rows:",
    np.allclose(a.grad, np.broadcast_to(b.data.sum(axis=0), (3, 1, 4))),
)
print(
    "b.grad",
    b.grad.shape,
    "equals a summed over its copies:",
    np.allclose(b.grad, np.broadcast_to(a.data.sum(axis=(0, 1)), (2, 4))),
)
# The same two or three numbers summed, perhaps in another order: float64 rounding at most
# (measured: equal to the bit).
assert np.abs(a.grad - b.data.sum(axis=0)).max() <= 1e-12, (
    "the gradient of a broadcast input is not a sum"
)
assert np.abs(b.grad - a.data.sum(axis=(0, 1))).max() <= 1e-12, (
    "the gradient of a broadcast input is not a sum"
)

# %% [markdown]
# `backward` is the scalar version with three additions: it accepts a gradient
# for a non-scalar output (the $w$ of {eq}`autograd-vjp`), it collects the
# gradients of intermediate tensors in a dictionary and frees each one once
# passed on, and it *accumulates* into the `grad` of the leaves, as PyTorch does,
# so an optimizer must zero them before each step:
#
# ```{literalinclude} ../../code/scratch/engine/tensor.py
# :pyobject: Tensor.backward
# ```
#
# ### Losses, layers and an optimizer
#
# The rest of the engine is built from these operations, under PyTorch's names.
# Most of it needs no backward code of its own; a few functions that every
# training step calls (`linear`, `log_softmax`, `cross_entropy`) are single graph
# nodes with a hand-written backward instead, because one fused node is faster and
# more accurate than a chain of small ones, and the tests hold each of them to the
# same two oracles. The one place that needs care is numerical. A softmax exponentiates logits, and `exp(1000)` is infinite; since
# $\log \sum_j e^{x_j} = m + \log \sum_j e^{x_j - m}$ for any $m$, choosing
# $m = \max_j x_j$ makes every exponent non-positive (the *log-sum-exp trick*):
#
# ```{literalinclude} ../../code/scratch/engine/functional.py
# :pyobject: log_softmax
# ```
#
# `cross_entropy` picks, for each row, the log-probability of the target class
# from `log_softmax` and averages their negatives; its backward is the famous
# $\operatorname{softmax}(x) - \operatorname{onehot}(y)$, divided by the batch size.
#
# A `Module` finds its parameters among its attributes, recursively, so
# `Sequential` names them as PyTorch does (`"0.weight"`), and `Linear` is
# initialised as `torch.nn.Linear` is. The optimizer implements PyTorch's
# momentum SGD:
#
# ```{literalinclude} ../../code/scratch/engine/nn.py
# :pyobject: Linear
# ```
#
# ```{literalinclude} ../../code/scratch/engine/optim.py
# :pyobject: SGD.step
# ```
#
# ### Checking the gradients twice
#
# A wrong backward pass does not crash, so every operation is checked by two
# independent oracles, in the tests (`tests/engine`) and here on the whole model.
# The first is finite differences, eq. {eq}`autograd-central-difference`, in
# float64, for every element of every input: slow, but it needs only the forward
# pass, so it cannot share a bug with the backward pass it checks.
#
# ```{literalinclude} ../../code/scratch/engine/gradcheck.py
# :pyobject: gradcheck
# ```
#
# The network of the experiment below maps a point of the plane to two logits,
# through two hidden ReLU layers. The library's `make_mlp` builds it: a
# `Sequential` of `Linear` layers of the given widths, with an activation (ReLU
# by default) between them and none after the last. The later chapters of this
# part build their networks with it too, with other widths and activations, and
# with dropout, normalization layers or their own initialization:
#
# ```{literalinclude} ../../code/scratch/engine/models.py
# :pyobject: make_mlp
# :end-before: widths = [int(w) for w in widths]
# ```

# %%
model = make_mlp(
    [2, cfg.hidden, cfg.hidden, 2]
)  # 2 -> hidden -> hidden -> 2: one logit per class
n_params = sum(p.size for p in model.parameters())
print(model)
print(f"{n_params} parameters")


# %% [markdown]
# `gradcheck` perturbs its inputs, so we write the network's loss as a function
# of its weights, with the same operations the layers use:


# %%
def mlp_loss(x, y):
    """The loss of a ReLU MLP as a function of its weights (w0, b0, w1, b1, ...)."""

    def loss(*weights):
        h = Tensor(x)
        for i in range(0, len(weights), 2):
            h = F.linear(h, weights[i], weights[i + 1])
            h = h.relu() if i + 2 < len(weights) else h  # no ReLU after the last layer
        return F.cross_entropy(h, y)

    return loss


x_check, y_check = make_moons(cfg.batch_size, noise=cfg.noise, random_state=cfg.seed)
loss_fn = mlp_loss(x_check, y_check)

started = time.perf_counter()
loss_fn(*model.parameters()).backward()
backward_seconds = time.perf_counter() - started
started = time.perf_counter()
passed = gradcheck(loss_fn, model.parameters())  # raises AssertionError on any mismatch
numeric_seconds = time.perf_counter() - started
model.zero_grad()
print(
    f"gradcheck passed: {passed}; finite differences took {2 * n_params} forward passes "
    f"and {numeric_seconds:.2f} s, reverse mode one forward and one backward pass "
    f"and {backward_seconds * 1e3:.2f} ms ({numeric_seconds / backward_seconds:.0f}x faster)"
)


# %% [markdown]
# The second oracle is PyTorch. We copy our weights into `torch.nn.Linear`
# layers, in float64, and compare the loss and every gradient:


# %%
def torch_twin(model, state=None):
    """Our MLP as a torch.nn.Sequential, with `state` (default: the model's weights) copied in by name."""
    state = state or {name: p.data for name, p in model.named_parameters()}
    twin = torch.nn.Sequential(
        *[
            torch.nn.Linear(m.in_features, m.out_features, dtype=torch.float64)
            if isinstance(m, nn.Linear)
            else torch.nn.ReLU()
            for m in model
        ]
    )
    with torch.no_grad():
        for (
            name,
            p,
        ) in twin.named_parameters():  # the same names: "0.weight", "0.bias", ...
            p.copy_(torch.from_numpy(state[name]))
    return twin


ours = F.cross_entropy(model(Tensor(x_check)), y_check)
ours.backward()
twin = torch_twin(model)
theirs = torch.nn.functional.cross_entropy(
    twin(torch.from_numpy(x_check)), torch.from_numpy(y_check)
)
theirs.backward()

twin_params = dict(twin.named_parameters())
grad_diff = max(
    np.abs(p.grad - twin_params[name].grad.numpy()).max()
    for name, p in model.named_parameters()
)
print(f"loss: ours {ours.item():.15f}, PyTorch {theirs.item():.15f}")
print(
    f"largest |difference| between our and PyTorch's gradients, over all {n_params} parameters: {grad_diff:.1e}"
)
# float64 on both sides, the same operations summed in different orders: the loss agrees to ~1e-16
# relative (measured 1.6e-16) and the gradients, entries up to ~1, to ~1e-16 (measured 4e-17).
# 1e-12 allows 10^4 times that; a wrong backward pass misses by far more.
assert abs(ours.item() - theirs.item()) <= 1e-12 * abs(theirs.item()), (
    "loss differs from PyTorch's"
)
assert grad_diff <= 1e-12, f"gradients differ from PyTorch's by {grad_diff:.1e}"
model.zero_grad()

# %% [markdown]
# ## Experiment: a network trained by our engine
#
# Two interleaved half-moons, a classic problem that no straight line separates.
# The network above learns it with mini-batch SGD; every piece of the training
# loop (forward, loss, backward, step) is ours.

# %%
x_all, y_all = make_moons(
    cfg.n_train + cfg.n_test, noise=cfg.noise, random_state=cfg.seed
)
x_train, y_train = x_all[: cfg.n_train], y_all[: cfg.n_train]
x_test, y_test = x_all[cfg.n_train :], y_all[cfg.n_train :]
print(f"train {x_train.shape}, test {x_test.shape}, class balance {y_train.mean():.2f}")


# %% [markdown]
# A few helpers: the batches (one random order of the training set per epoch,
# fixed by the seed, so that PyTorch can replay them in the results), the
# evaluation, and the probabilities on a grid for the picture.


# %%
def batch_indices(n: int, batch_size: int, steps: int, seed: int) -> np.ndarray:
    """(steps, batch_size) row indices: a new random order of the n rows every epoch."""
    rng = np.random.default_rng(seed)
    per_epoch = n // batch_size  # the last, incomplete batch of an epoch is dropped
    epochs = -(-steps // per_epoch)
    order = np.concatenate(
        [rng.permutation(n)[: per_epoch * batch_size] for _ in range(epochs)]
    )
    return order.reshape(-1, batch_size)[:steps]


def evaluate(model, x, y) -> tuple:
    """(mean cross-entropy, accuracy) on a whole data set, without recording a graph."""
    with no_grad():
        logits = model(Tensor(x))
        return F.cross_entropy(logits, y).item(), float(
            (logits.data.argmax(axis=1) == y).mean()
        )


def probability_grid(model, xs, ys) -> np.ndarray:
    """p(class 1) at every point of the grid xs x ys, shape (len(ys), len(xs))."""
    points = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(
        -1, 2
    )  # row-major: y outer, x inner
    with no_grad():
        return (
            F.softmax(model(Tensor(points)), dim=-1)
            .data[:, 1]
            .reshape(len(ys), len(xs))
        )


xs = np.linspace(x_all[:, 0].min() - 0.5, x_all[:, 0].max() + 0.5, cfg.grid)
ys = np.linspace(x_all[:, 1].min() - 0.5, x_all[:, 1].max() + 0.5, cfg.grid)

# %% [markdown]
# The training loop, written out in full this once (the PyTorch chapters use
# `scratch.train.fit`):

# %%
initial_state = {
    name: p.data.copy() for name, p in model.named_parameters()
}  # for PyTorch's replay
batches = batch_indices(cfg.n_train, cfg.batch_size, cfg.steps, cfg.seed)
opt = optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum)
snapshot_steps = set(np.linspace(0, cfg.steps, cfg.snapshots).round().astype(int))
history, snapshots = {"step": [], "train": [], "test": []}, []

started = time.perf_counter()
for step in range(cfg.steps + 1):
    if step % cfg.eval_every == 0 or step == cfg.steps:
        history["step"].append(step)
        history["train"].append(evaluate(model, x_train, y_train)[0])
        history["test"].append(evaluate(model, x_test, y_test)[0])
    if step in snapshot_steps:
        snapshots.append((step, probability_grid(model, xs, ys)))
    if step == cfg.steps:
        break
    rows = batches[step]
    loss = F.cross_entropy(model(Tensor(x_train[rows])), y_train[rows])
    opt.zero_grad()
    loss.backward()
    opt.step()
train_seconds = time.perf_counter() - started
print(
    f"{cfg.steps} steps in {train_seconds:.1f} s ({train_seconds / cfg.steps * 1e3:.2f} ms per step)"
)

# %% [markdown]
# Press play, or drag the slider. The untrained network is unsure everywhere
# (every probability near 0.5); within the first frames it settles on a roughly
# straight boundary, and then bends it around the tips of the moons.

# %%
fig = plots.decision_boundary(
    snapshots,
    xs,
    ys,
    x_train,
    y_train,
    title="Decision boundary during training (training points)",
)
plots.show(fig, cfg.run_dir / "decision_boundary.html")

# %%
fig = plots.lines(
    {"train": history["train"], "test": history["test"]},
    x=history["step"],
    log_y=True,
    title="Cross-entropy on the full train and test sets",
    xlabel="step",
    ylabel="loss",
)
plots.show(fig, cfg.run_dir / "loss.html")

# %% [markdown]
# ## Results
#
# This run, the recorded `full` run, and a reference: the same network trained by
# PyTorch from the same initial weights on the same batches. No paper reports a
# number for this toy problem; the PyTorch replay is the stronger check anyway,
# since it should reproduce our run to float64 rounding, step after step. (To
# record the `full` run: `python code/foundations/autograd.py --profile full`, on a
# CPU since the engine is NumPy, then copy `runs/autograd/metrics.json` to
# `results/autograd.json`.)

# %%
twin = torch_twin(model, initial_state)
torch_opt = torch.optim.SGD(twin.parameters(), lr=cfg.lr, momentum=cfg.momentum)
for rows in batches:  # the same batches, in the same order
    torch_opt.zero_grad()
    torch.nn.functional.cross_entropy(
        twin(torch.from_numpy(x_train[rows])), torch.from_numpy(y_train[rows])
    ).backward()
    torch_opt.step()
twin_params = dict(twin.named_parameters())
weight_diff = max(
    np.abs(p.data - twin_params[name].detach().numpy()).max()
    for name, p in model.named_parameters()
)
print(
    f"largest |difference| between our weights and PyTorch's after {cfg.steps} steps: {weight_diff:.1e}"
)
# Step after step, rounding differences (~1e-16) add up but do not blow up on this smooth problem:
# measured 2.7e-15 after 1500 steps (small), 3.2e-14 after 20000 (full). 1e-9 is far above both
# and far below what one wrong step would leave behind.
assert weight_diff <= 1e-9, (
    f"training drifted from PyTorch's: weights differ by {weight_diff:.1e}"
)


# %%
def torch_accuracy(twin, x, y) -> float:
    with torch.no_grad():
        return float((twin(torch.from_numpy(x)).argmax(dim=1).numpy() == y).mean())


train_loss, train_acc = evaluate(model, x_train, y_train)
test_loss, test_acc = evaluate(model, x_test, y_test)
metrics = {
    "train_accuracy": train_acc,
    "test_accuracy": test_acc,
    "train_loss": train_loss,
    "test_loss": test_loss,
    "torch_train_accuracy": torch_accuracy(twin, x_train, y_train),
    "torch_test_accuracy": torch_accuracy(twin, x_test, y_test),
    "max_weight_difference_vs_torch": weight_diff,
    "max_gradient_difference_vs_torch": grad_diff,
    "gradcheck_passed": passed,
    "train_seconds": train_seconds,
}

rows = results_table(
    cfg,
    metrics,
    seconds=time.perf_counter() - run_started,
    title="accuracy; PyTorch: the same network from the same start on the same batches",
    columns={
        "train_accuracy": ("train acc", ".3f"),
        "test_accuracy": ("test acc", ".3f"),
        "torch_train_accuracy": ("PyTorch train", ".3f"),
        "torch_test_accuracy": ("PyTorch test", ".3f"),
        "max_weight_difference_vs_torch": ("max |dW|", ".1e"),
    },
)
assert rows[0].values["test_accuracy"] == test_acc

# %%
utils.save_run(
    cfg.run_dir / "metrics.json", cfg, metrics, time.perf_counter() - run_started
)
print(f"metrics written to {cfg.run_dir / 'metrics.json'}")

# %% [markdown]
# ## Summary
#
# - A program is a graph of elementary operations, each with known local
#   derivatives. The chain rule on that graph, eq. {eq}`autograd-reverse`,
#   evaluated from the output backwards, gives the gradient with respect to every
#   input in one pass: reverse-mode automatic differentiation, or backpropagation.
# - Forward mode computes Jacobian-vector products, one input direction per pass;
#   reverse mode computes vector-Jacobian products, one output per pass. A loss
#   has one output, so reverse mode wins by a factor of the number of parameters,
#   at the price of keeping the forward pass's values in memory.
# - On arrays, each operation supplies only its vector-Jacobian product, in
#   closed form ($\bar A = \bar Y B^{\top}$ for a product); broadcasting and
#   indexing are copies, so their backward sums. Gradients accumulate, so zero
#   them before each step.
# - Finite differences are too slow and too inexact to train with, but they are
#   the ideal independent test of a backward pass; together with PyTorch they
#   check every operation of `scratch.engine`.
#
# ## Exercises
#
# :::{exercise}
# :label: autograd-ex-1
# Add `sin` to the array engine: a function `sin(x)` that returns a `Tensor`
# through `scratch.engine.tensor._make`. Check it with `gradcheck` on a random
# (3, 4) input, then break its backward on purpose and watch `gradcheck` fail.
# :::
#
# :::{solution} autograd-ex-1
# :class: dropdown
# The derivative is $\cos$, so the vector-Jacobian product is $\bar Y \odot \cos X$:
#
# ```python
# import numpy as np
# from scratch.engine import Tensor, gradcheck
# from scratch.engine.tensor import _make
#
# def sin(x):
#     data = x.data
#     return _make(np.sin(data), (x,), lambda g: (g * np.cos(data),), "sin")
#
# x = Tensor(np.random.default_rng(0).standard_normal((3, 4)))
# print(gradcheck(sin, [x]))  # True
# ```
# With `-np.cos(data)` (a sign error) `gradcheck` raises an `AssertionError` that
# names the worst element, its analytic and its numerical derivative.
# :::
#
# :::{exercise}
# :label: autograd-ex-2
# Forward mode with *dual numbers*: write a class `Dual(val, dot)` with `+`, `*`
# and `tanh` following eq. {eq}`autograd-forward`, and compute
# $\partial L/\partial w_1$ for the neuron of the worked example. How many passes
# does forward mode need for all five derivatives (`w1`, `w2`, `b`, `x1`, `x2`), and
# how many does reverse mode need?
# :::
#
# :::{solution} autograd-ex-2
# :class: dropdown
# Each operation carries the derivative along: $(a, \dot a)(b, \dot b) = (ab, \dot a b + a \dot b)$.
#
# ```python
# import math
#
# class Dual:
#     def __init__(self, val, dot=0.0):
#         self.val, self.dot = val, dot
#     def _lift(self, o):
#         return o if isinstance(o, Dual) else Dual(o)
#     def __add__(self, o):
#         o = self._lift(o); return Dual(self.val + o.val, self.dot + o.dot)
#     def __mul__(self, o):
#         o = self._lift(o); return Dual(self.val * o.val, self.dot * o.val + self.val * o.dot)
#     def __sub__(self, o):
#         return self + self._lift(o) * -1
#     def tanh(self):
#         t = math.tanh(self.val); return Dual(t, (1 - t * t) * self.dot)
#
# x1, x2, w2, b, t = Dual(2.0), Dual(-1.0), Dual(0.3), Dual(0.8), Dual(0.5)
# w1 = Dual(-0.5, 1.0)  # seed: the direction dw1 = 1
# e = (w1 * x1 + w2 * x2 + b).tanh() - t
# print((e * e).dot)  # equals w1.grad from the reverse pass
# ```
# One forward pass gives the derivative along one direction, so all five need
# five passes (one per seed); reverse mode gets all five, and any number more,
# from one backward pass.
# :::
#
# :::{exercise}
# :label: autograd-ex-3
# In `Value.__add__`, replace `self.grad += out.grad` by `self.grad = out.grad`
# (and the same for `other`). Which of these gradients become wrong, and why:
# $d(x + x)/dx$, $d(x + y)/dx$, $d(x \cdot x)/dx$, and $\partial L / \partial w_1$
# in the worked example?
# :::
#
# :::{solution} autograd-ex-3
# :class: dropdown
# Only a value that receives gradient from *more than one* use through `+` goes
# wrong: eq. {eq}`autograd-reverse` is then a sum of several terms, and `=` keeps
# only the last. $d(x + x)/dx$ becomes 1 instead of 2. $d(x + y)/dx$ stays 1 (one
# use). $d(x \cdot x)/dx$ stays $2x$, because `__mul__` still adds (the same bug
# there would give $x$). In the worked example every value is used once, so all
# its gradients stay right, which is how such a bug survives a casual test; the
# tests in `tests/engine` reuse values on purpose.
# :::
#
# :::{exercise}
# :label: autograd-ex-4
# `log_softmax` subtracts $m = \max_j x_j$ but treats $m$ as a constant (a plain
# NumPy array, outside the graph). Show that this loses nothing: the gradient that
# would flow through $m$ is exactly zero.
# :::
#
# :::{solution} autograd-ex-4
# :class: dropdown
# With $s_i = x_i - m - \log \sum_j e^{x_j - m}$, the derivative with respect to
# $m$ is $-1 + \sum_j e^{x_j - m} / \sum_k e^{x_k - m} = -1 + 1 = 0$. The output
# does not depend on $m$ at all; $m$ only changes the rounding, which is the
# point.
# :::
#
# :::{exercise}
# :label: autograd-ex-5
# The backward pass needs values of the forward pass. For the MLP of this chapter
# and a batch of $B$ points, list the arrays that the graph keeps alive until
# `loss.backward()` runs, and estimate their number of floats. How does it grow
# with $B$ and with depth?
# :::
#
# :::{solution} autograd-ex-5
# :class: dropdown
# Every node keeps its output alive, because the nodes after it reference it as a
# parent. Per point, each hidden layer keeps two arrays of $H$ values (the output
# of `linear` and of the ReLU); add the input (2 values) and the output layer (2),
# and the loss node keeps one number for the batch and, inside its backward, the
# $2B$ log-probabilities. That is $B(4H + 4) + 1$ floats in the node outputs:
# linear in $B$, and growing by $2BH$ per hidden layer. To count them:
#
# ```python
# import numpy as np
# import scratch.engine.functional as F
# from scratch.engine import Tensor, nn
# from scratch.engine.tensor import _topological_order
#
# B, H = 32, 16
# model = nn.Sequential(nn.Linear(2, H), nn.ReLU(), nn.Linear(H, H), nn.ReLU(), nn.Linear(H, 2))
# loss = F.cross_entropy(model(Tensor(np.random.randn(B, 2))), np.random.randint(0, 2, B))
# params = {id(p) for p in model.parameters()}
# kept = [n for n in _topological_order(loss) if id(n) not in params]
# print(sum(n.size for n in kept), B * (4 * H + 4) + 1)
# ```
# The backward pass needs less than that: the input of each matrix product and
# the sign pattern of each ReLU. PyTorch keeps only what each backward needs, and
# *gradient checkpointing* keeps even less and recomputes the rest
# {cite:p}`griewank2008evaluating`. This activation memory, not the parameters,
# is what limits batch size and depth in large models.
# :::
#
# ## References
#
# ```{bibliography}
# :filter: docname in docnames
# ```
