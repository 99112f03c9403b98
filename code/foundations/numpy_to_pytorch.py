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
# (numpy-to-pytorch)=
# # From NumPy to PyTorch
#
# Part I built everything on our own NumPy engine; from Part II on, the book uses
# PyTorch. This short page is the bridge. We train the *same* network twice, once
# with `scratch.engine` and once with PyTorch, from the same initial weights, on
# the same batches in the same order, with plain SGD in float64, and check that
# the two agree: the gradients of the first step to the last digits of float64,
# and the loss curves to within rounding all the way through training. A table
# then maps every name of the engine to its PyTorch twin.

# %%
import time
from dataclasses import dataclass, field

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, Sampler, TensorDataset

import scratch.engine.functional as F
import scratch.engine.loop
import scratch.train
from scratch import plots, utils
from scratch.config import describe, positive, unit_interval
from scratch.engine import Tensor, nn, optim
from scratch.results import results_table


# %% tags=["hide-input"]
@dataclass
class BridgeConfig(scratch.train.TrainConfig):
    """One MLP on digits, trained by the engine and by PyTorch, step for step."""

    NAME = "numpy_to_pytorch"  # outputs go to out_dir/numpy_to_pytorch

    test_fraction: float = field(
        default=0.25,
        metadata=unit_interval(
            "share of the 1797 digits held out, as in the MLP chapter"
        ),
    )
    hidden: int = field(
        default=64,
        metadata=positive(
            "hidden ReLU units: the MLP chapter's network, so its results carry over"
        ),
    )
    epochs: int = field(
        default=20,
        metadata=positive(
            "passes over the training digits: plain SGD is near 96% by then, and the curves have had time to drift"
        ),
    )
    batch_size: int = field(
        default=32, metadata=positive("digits per SGD step, as in the MLP chapter")
    )
    lr: float = field(
        default=0.1,
        metadata=positive(
            "plain SGD step (no momentum: one update rule): of 0.05, 0.1, 0.2, 0.05 is slow and 0.2 oscillates"
        ),
    )
    device: str = field(
        default="cpu",
        metadata=describe(
            "PyTorch's device: cpu, because the point is a float64 comparison with NumPy, not speed"
        ),
    )

    PROFILES = {
        "tiny": dict(threads=1, hidden=16, epochs=1),  # tests: seconds
        "small": dict(threads=1),  # the book build on a CPU
        "full": dict(
            hidden=256, epochs=50
        ),  # longer: does rounding ever make the runs drift apart?
    }


cfg = BridgeConfig.from_cli()
utils.seed_everything(cfg.seed)
run_started = time.perf_counter()

# %% [markdown]
# ## Motivation
#
# The engine of {doc}`autograd` and the network of {doc}`mlp` are complete: they
# train a real classifier, and every gradient is checked. What they lack is what
# a framework adds around the same idea: kernels in C++ and CUDA, GPUs, float16
# and bfloat16 arithmetic, data loaders, distributed training, a large library of
# layers. PyTorch {cite:p}`paszke2019pytorch` offers all of it with the interface
# we have been using, because we copied it: `Tensor`, `backward()`, `nn.Linear`,
# `optim.SGD`. If the two libraries are really the same algorithm, then trained
# from the same start on the same data they must produce the same numbers. That
# is a test of our engine, and a reason to trust the switch.
#
# ## Theory: the same computation, up to rounding
#
# Both libraries implement reverse-mode automatic differentiation
# {cite:p}`baydin2018automatic`: every operation records its inputs, and
# `backward()` applies the operations' vector-Jacobian products in reverse order.
# Both implement the same update, plain stochastic gradient descent on the loss
# $L_{\mathcal B_t}$ of the mini-batch $\mathcal B_t$:
#
# $$
# \theta_{t+1} = \theta_t - \eta\, \nabla L_{\mathcal B_t}(\theta_t) .
# $$ (numpy_to_pytorch-sgd)
#
# In exact arithmetic the two runs would be identical. In floating point they are
# not quite: a matrix product or a sum over a batch adds the same numbers in an
# order that depends on the library (BLAS blocking, vectorized reductions), and
# floating-point addition is not associative, so results differ in the last bit
# or two, about $10^{-16}$ relative in float64. After that, the difference
# $\delta_t$ between the two runs' weights is carried forward by the update. To
# first order, with $H_t$ the Hessian of the batch loss and $\varepsilon_t$ the
# new rounding of step $t$,
#
# $$
# \delta_{t+1} \approx \big(I - \eta H_t\big)\, \delta_t + \varepsilon_t .
# $$ (numpy_to_pytorch-drift)
#
# Where the loss curves upwards in every direction and $\eta$ is small enough
# ($0 < \eta \lambda < 2$ for every eigenvalue $\lambda$ of $H_t$), the factor
# shrinks $\delta_t$ and the runs stay together; along directions of negative
# curvature, or when the step is too large for the curvature, it grows. Deep
# networks trained for long do drift apart this way (two PyTorch runs on two
# different GPUs do too); a small network trained for a few epochs should not.
#
# ## Implementation: the same network twice
#
# The digits of {doc}`mlp`, and the same split:

# %%
digits = load_digits()
x_all = (digits.data / 16.0).astype(np.float64)  # (1797, 64) in [0, 1]
x_train, x_test, y_train, y_test = train_test_split(
    x_all,
    digits.target,
    test_size=cfg.test_fraction,
    random_state=cfg.seed,
    stratify=digits.target,
)
print(f"train {x_train.shape}, test {x_test.shape}")

# %% [markdown]
# The engine's network, and PyTorch's, built layer by layer with the same names,
# and PyTorch's loaded with a copy of the engine's initial weights. The engine's
# `state_dict()` holds NumPy arrays under PyTorch's keys (`"0.weight"`, ...), so
# one line does it:

# %%
ours = nn.Sequential(nn.Linear(64, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, 10))
theirs = torch.nn.Sequential(
    torch.nn.Linear(64, cfg.hidden, dtype=torch.float64),
    torch.nn.ReLU(),
    torch.nn.Linear(cfg.hidden, 10, dtype=torch.float64),
)
initial_state = ours.state_dict()  # name -> NumPy array (a copy)
theirs.load_state_dict(
    {name: torch.from_numpy(array) for name, array in initial_state.items()}
)
print(ours)
print(theirs)


# %% [markdown]
# The engine's `fit_arrays` draws one permutation of the training set per epoch from
# `np.random.default_rng(seed)` and cuts it into batches; a PyTorch `DataLoader`
# accepts any *batch sampler*, so we give it one that draws the same
# permutations:


# %%
class SameBatches(Sampler):
    """The batches of scratch.engine.loop.fit_arrays(seed=...): per epoch, one permutation
    from a generator seeded once, cut into consecutive batches (the last may be short)."""

    def __init__(self, n: int, batch_size: int, seed: int):
        self.n, self.batch_size = n, batch_size
        self.rng = np.random.default_rng(
            seed
        )  # one generator for the whole run, as fit_arrays's

    def __iter__(self):  # called once per epoch
        order = self.rng.permutation(self.n)
        for i in range(0, self.n, self.batch_size):
            yield order[i : i + self.batch_size].tolist()

    def __len__(self):
        return -(-self.n // self.batch_size)


train_set = TensorDataset(torch.from_numpy(x_train), torch.from_numpy(y_train))
test_loader = DataLoader(
    TensorDataset(torch.from_numpy(x_test), torch.from_numpy(y_test)), batch_size=1024
)
first_batch = np.random.default_rng(cfg.seed).permutation(len(x_train))[
    : cfg.batch_size
]

# %% [markdown]
# ### Step 1: the same gradients
#
# One forward and one backward pass on the first batch, in each library:

# %%
loss_ours = F.cross_entropy(ours(Tensor(x_train[first_batch])), y_train[first_batch])
loss_ours.backward()
loss_theirs = torch.nn.functional.cross_entropy(
    theirs(torch.from_numpy(x_train[first_batch])),
    torch.from_numpy(y_train[first_batch]),
)
loss_theirs.backward()

print(
    f"loss at step 1: engine {loss_ours.item():.17f}\n               PyTorch {loss_theirs.item():.17f}"
)
their_params = dict(theirs.named_parameters())
step1_diff = {}
for name, p in ours.named_parameters():
    step1_diff[name] = float(np.abs(p.grad - their_params[name].grad.numpy()).max())
    print(
        f"  {name:<9} {str(p.shape):>9}: max |engine - PyTorch| of the gradient = {step1_diff[name]:.1e}"
        f"  (largest entry {np.abs(p.grad).max():.2e})"
    )
max_step1_diff = max(step1_diff.values())
# float64 in both libraries, the same sums in different orders: the loss agrees to ~1e-16 relative
# (measured 1.9e-16 to 3.8e-16), the gradients, entries up to ~0.1, to ~1e-17 (measured 2.8e-17).
# 1e-12 is 10^4 times float64's rounding and far below any real mistake.
assert abs(loss_ours.item() - loss_theirs.item()) <= 1e-12 * abs(loss_theirs.item()), (
    "step-1 losses differ"
)
assert max_step1_diff <= 1e-12, (
    f"step-1 gradients differ from PyTorch's by {max_step1_diff:.1e}"
)
ours.zero_grad()
theirs.zero_grad()

# %% [markdown]
# The differences printed above are at the level of float64's rounding: the two
# libraries compute the same gradient, summed in a different order.
#
# ### Training: two loops, one curve
#
# Each library trains with its own training loop: the engine's
# `scratch.engine.loop.fit_arrays` on arrays, and PyTorch's `scratch.train.fit`, the
# loop of every later chapter, which takes a `DataLoader` and this page's config
# (a `TrainConfig`: device, precision, gradient accumulation and clipping, all
# left at their neutral defaults here). Both record the loss of every step.

# %%
history_ours = scratch.engine.loop.fit_arrays(
    ours,
    optim.SGD(ours.parameters(), lr=cfg.lr),
    x_train,
    y_train,
    epochs=cfg.epochs,
    batch_size=cfg.batch_size,
    val=(x_test, y_test),
    seed=cfg.seed,
)
train_loader = DataLoader(
    train_set, batch_sampler=SameBatches(len(x_train), cfg.batch_size, cfg.seed)
)
history_theirs = scratch.train.fit(
    theirs,
    torch.optim.SGD(theirs.parameters(), lr=cfg.lr),
    train_loader,
    cfg,
    val_loader=test_loader,
    checkpoint=None,
)

# %%
steps = np.arange(1, len(history_ours.steps) + 1)
loss_gap = np.abs(np.array(history_ours.steps) - np.array(history_theirs.steps))
fig = make_subplots(
    rows=2,
    cols=1,
    shared_xaxes=True,
    row_heights=[0.6, 0.4],
    vertical_spacing=0.08,
    subplot_titles=["training loss of every step", "|engine - PyTorch|"],
)
fig.add_trace(
    go.Scatter(
        x=steps,
        y=history_ours.steps,
        name="scratch.engine",
        mode="lines",
        line=dict(width=4),
    ),
    row=1,
    col=1,
)
fig.add_trace(
    go.Scatter(
        x=steps,
        y=history_theirs.steps,
        name="PyTorch",
        mode="lines",
        line=dict(width=1.5, dash="dot"),
    ),
    row=1,
    col=1,
)
fig.add_trace(
    go.Scatter(
        x=steps,
        y=np.maximum(loss_gap, 1e-18),
        name="difference",
        mode="markers",
        marker=dict(color=plots.COLORS[3], size=3),
    ),
    row=2,
    col=1,
)
fig.update_yaxes(type="log", title_text="loss", row=1, col=1)
fig.update_yaxes(
    type="log", title_text="|difference|", exponentformat="power", row=2, col=1
)
fig.update_xaxes(title_text="SGD step", row=2, col=1)
fig.update_layout(
    title="The same MLP trained by our engine and by PyTorch (float64, same start, same batches)",
    height=580,
    hovermode="x unified",
    margin=dict(t=90),
)
plots.show(fig, cfg.run_dir / "loss_curves.html")

# %% [markdown]
# The two curves lie on top of each other; the lower panel shows the gap, step by
# step (floored at $10^{-18}$ where the two losses are bit-for-bit equal).
#
# ## Results
#
# This run, the recorded `full` run, and the reference. There is no paper
# number to compare with here: the reference *is* PyTorch, and the measure is how
# far our engine strays from it.

# %%
weight_diff = max(
    float(np.abs(p.data - dict(theirs.named_parameters())[name].detach().numpy()).max())
    for name, p in ours.named_parameters()
)
metrics = {
    "max_gradient_difference_step1": max_step1_diff,
    "max_weight_difference_end": weight_diff,
    "max_loss_difference": float(loss_gap.max()),
    "engine_test_accuracy": history_ours["val_acc"][-1],
    "torch_test_accuracy": history_theirs["val_acc"][-1],
    "engine_seconds_per_epoch": float(np.mean(history_ours["seconds"])),
    "torch_seconds_per_epoch": float(np.mean(history_theirs["seconds"])),
    "steps": int(len(steps)),
}

rows = results_table(
    cfg,
    metrics,
    seconds=time.perf_counter() - run_started,
    title="test accuracy of the engine and of PyTorch; the largest differences between "
    "their weights at the end and their losses at any step",
    columns={
        "engine_test_accuracy": ("engine", ".4f"),
        "torch_test_accuracy": ("PyTorch", ".4f"),
        "max_weight_difference_end": ("max |dW|", ".1e"),
        "max_loss_difference": ("max |d loss|", ".1e"),
        "steps": ("steps", ","),
    },
)
assert rows[0].values["max_weight_difference_end"] == weight_diff
# Rounding differences of ~1e-16 per step accumulate slowly in float64 SGD: measured 8.3e-16 for
# the weights and 8.9e-16 for the losses (small), 2.0e-15 and 1.2e-15 (full, 50 epochs). 1e-9
# stays orders of magnitude above them, and far below a wrong update's trace.
assert weight_diff <= 1e-9, f"the weights drifted from PyTorch's: {weight_diff:.1e}"
assert loss_gap.max() <= 1e-9, (
    f"the losses drifted from PyTorch's: {loss_gap.max():.1e}"
)
print(
    f"seconds per epoch (a shared, busy CPU: compare, don't quote): "
    f"engine {metrics['engine_seconds_per_epoch']:.3f}, PyTorch {metrics['torch_seconds_per_epoch']:.3f}"
)

# %% [markdown]
# Same accuracy, and the same weights to many digits after the whole run. The
# times per epoch matter little here: with a few thousand parameters on a CPU,
# a step's time goes into per-step overhead (Python, and PyTorch's `DataLoader`
# assembling each batch example by example), not into arithmetic. PyTorch's
# advantages, GPUs, fused kernels and lower precision, show on large models. (To record the
# `full` run: `python code/foundations/numpy_to_pytorch.py --profile full`, then
# copy `runs/numpy_to_pytorch/metrics.json` to `results/numpy_to_pytorch.json`.)

# %%
utils.save_run(
    cfg.run_dir / "metrics.json", cfg, metrics, time.perf_counter() - run_started
)
print(f"metrics written to {cfg.run_dir / 'metrics.json'}")

# %% [markdown]
# ### The dictionary
#
# What you wrote with the engine, and what you write from now on:
#
# | | `scratch.engine` | PyTorch |
# |---|---|---|
# | array that records operations | `Tensor(data, requires_grad=True)`: wraps a NumPy array, float64 by default | `torch.tensor(data, requires_grad=True)`: float32 by default |
# | gradient of a scalar | `loss.backward()`, then `p.grad` (a NumPy array) | `loss.backward()`, then `p.grad` (a tensor) |
# | no graph (evaluation, updates) | `with no_grad():` | `with torch.no_grad():` |
# | back to NumPy | `t.numpy()` or `t.data`; `t.item()` | `t.detach().cpu().numpy()`; `t.item()` |
# | size | `t.shape`, `t.numel()`; `t.size` is NumPy's element count | `t.shape`, `t.numel()`; `t.size()` is the *shape* |
# | reductions | `t.sum(dim=1, keepdim=True)` (or NumPy's `axis`, `keepdims`) | `t.sum(dim=1, keepdim=True)` |
# | layers and models | `nn.Module`, `nn.Linear`, `nn.ReLU`, `nn.Sequential`, ... | `torch.nn.Module`, `torch.nn.Linear`, ... |
# | parameters, state | `model.parameters()`, `named_parameters()`, `state_dict()` (NumPy copies) | the same (tensors sharing the model's memory) |
# | functions | `import scratch.engine.functional as F`: `F.linear`, `F.relu`, `F.cross_entropy` | `import torch.nn.functional as F`: the same names |
# | initialization | `nn.init.kaiming_uniform_(w)` | `torch.nn.init.kaiming_uniform_(w)` |
# | optimizers | `optim.SGD(model.parameters(), lr=0.1)`, `zero_grad()`, `step()` | `torch.optim.SGD(...)`, the same methods |
# | schedules | `optim.lr_scheduler.StepLR(opt, ...)` | `torch.optim.lr_scheduler.StepLR(opt, ...)` |
# | modes | `model.train()`, `model.eval()` | the same |
# | gradient check | `gradcheck(fn, inputs)` | `torch.autograd.gradcheck(fn, inputs)` |
# | training loop | `scratch.engine.loop.fit_arrays(model, opt, x, y, epochs=..., batch_size=...)` | `scratch.train.fit(model, opt, loader, config)` |
# | saving | `model.save("m.npz")`, `model.load(...)` | `torch.save(model.state_dict(), "m.pt")` |
# | devices | the CPU only | `model.to("cuda")`, `x.to(device)` |
#
# ## Summary
#
# - Our engine and PyTorch are the same algorithm: from the same weights and
#   batches they compute the same gradients, up to the order of floating-point
#   sums, and train to the same weights.
# - What differs is rounding, about $10^{-16}$ relative per operation in float64,
#   carried forward by the training dynamics {eq}`numpy_to_pytorch-drift`; over a
#   short run of a small network it stays at the level of rounding.
# - The names carry over one to one; watch two traps: PyTorch's default dtype is
#   float32, and `t.size()` is a shape there.
# - From Part II on, models are `torch.nn` modules and every chapter trains with
#   `scratch.train.fit`, the same loop with devices, mixed precision and
#   checkpoints.
#
# ## Exercises
#
# :::{exercise}
# :label: numpy_to_pytorch-ex-1
# Repeat the comparison in float32: build the engine's layers with
# `dtype=np.float32` and PyTorch's with its default dtype, and feed both float32
# inputs. How large is the gradient difference at step 1, and how does the loss
# difference evolve?
# :::
#
# :::{solution} numpy_to_pytorch-ex-1
# :class: dropdown
# ```python
# ours = nn.Sequential(nn.Linear(64, cfg.hidden, dtype=np.float32), nn.ReLU(),
#                      nn.Linear(cfg.hidden, 10, dtype=np.float32))
# theirs = torch.nn.Sequential(torch.nn.Linear(64, cfg.hidden), torch.nn.ReLU(), torch.nn.Linear(cfg.hidden, 10))
# theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
# x32 = x_train.astype(np.float32)
# # ... then the same two fits, on x32 and TensorDataset(torch.from_numpy(x32), ...)
# ```
# The step-1 gradient differences grow to about $10^{-8}$, float32's rounding
# of gradients of order $10^{-1}$ (machine epsilon is about $1.2 \cdot 10^{-7}$),
# and the loss differences to a few times $10^{-7}$. On this small network and
# short run they stay there, without growing, and the test accuracies are equal:
# {eq}`numpy_to_pytorch-drift` contracts. For training, float32's precision is
# ample, which is why it (and bfloat16, with mixed precision) is the default on
# GPUs.
# :::
#
# :::{exercise}
# :label: numpy_to_pytorch-ex-2
# Why is the difference at step 1 not exactly zero? Show with NumPy alone that
# summing the same 1000 random float64 numbers in two orders gives two results,
# and estimate how large the difference can be.
# :::
#
# :::{solution} numpy_to_pytorch-ex-2
# :class: dropdown
# ```python
# import math
# v = np.random.default_rng(0).standard_normal(1000)
# a, b = np.sum(v), np.sum(v[::-1])   # NumPy sums pairwise, in blocks: the order matters
# c = sum(v.tolist())                  # left to right
# print(a, np.spacing(a))             # the sum, and the gap between it and the next float64
# print(a - b, a - c, a - math.fsum(v))  # a few of those gaps; math.fsum is exactly rounded
# ```
# Each addition rounds to the nearest float64, with a relative error of at most
# $2^{-53} \approx 1.1 \cdot 10^{-16}$, and which roundings happen depends on the
# order. A left-to-right sum of $n$ terms has an error bounded by about
# $n \cdot 2^{-53} \sum_i |v_i|$, a pairwise sum by about
# $\log_2 n \cdot 2^{-53} \sum_i |v_i|$; in practice the roundings partly cancel,
# and the three results differ by a few units in the last place of the sum. The
# weight gradient $\bar W = \bar Z^\top X$ is a sum over the batch, computed by
# two different matrix-product routines (NumPy's BLAS and PyTorch's, with their
# own blocking), hence the differences of step 1.
# :::
#
# :::{exercise}
# :label: numpy_to_pytorch-ex-3
# Replace plain SGD with Adam on both sides (`optim.Adam` and `torch.optim.Adam`,
# same learning rate). Do the runs still agree? Then run the page with
# `--precision=bf16`, which makes PyTorch's `fit` compute under
# `torch.autocast(dtype=torch.bfloat16)`. Nothing changes. Why?
# :::
#
# :::{solution} numpy_to_pytorch-ex-3
# :class: dropdown
# With Adam the runs agree as closely as with SGD, differences of order
# $10^{-16}$ in float64: the engine's optimizers reproduce `torch.optim`'s update
# rules, which its tests check over 100 steps. As for bfloat16: autocast lowers
# the precision only of float32 operations; tensors that are already float64
# keep their dtype, so our float64 comparison runs unchanged (the loss curves
# match as before). With float32 layers (exercise 1), the same flag does switch
# PyTorch's matrix products to bfloat16, 8 bits of mantissa, a relative rounding
# of about $4 \cdot 10^{-3}$: the loss difference jumps to the order of
# $10^{-3}$ from the first steps, while both runs still train to the same
# accuracy. They then compute different things, and both are correct for what
# they compute.
# :::
#
# ## References
#
# ```{bibliography}
# :filter: docname in docnames
# ```
