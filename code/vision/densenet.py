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
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# (densenet)=
# # DenseNet
#
# A residual block adds its input to its output ({doc}`resnet`). DenseNet
# {cite:p}`huang2017densely` keeps the input instead: every layer of a *dense
# block* receives the feature maps of all layers before it, stacked along the
# channel axis, and appends its own. In this chapter we build DenseNet and its
# parameter-efficient variant DenseNet-BC from layers, check the size of the
# paper's DenseNet-BC (L=100, k=12) against a count from its architecture, and
# train DenseNets and ResNets of several widths on the same CIFAR-10 images and
# budget, to measure how many parameters each family needs for the same accuracy.

# %%
import time

T0 = time.perf_counter()  # the whole chapter is timed, plots included

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import plotly.graph_objects as go
import torch
from torch.nn import functional as F

from scratch import data, plots, recipes, utils
from scratch.augment import Augment
from scratch.config import ConfigError, describe, in_range, non_negative, positive
from scratch.models.densenet import (
    PAPER_CIFAR10_ERROR,
    PAPER_PARAMETERS_M,
    DenseNetSpec,
    densenet_bc,
)
from scratch.models.inspection import count_parameters
from scratch.models.resnet import PAPER_CIFAR_PARAMETERS, ResNetSpec
from scratch.results import Reference, results_table
from scratch.train import TrainConfig, fit, predict

# %% [markdown]
# The chapter's config (explained in the Experiment section), read first so that
# a mistyped option stops the script at once:


# %% tags=["hide-input"]
@dataclass
class DenseNetConfig(TrainConfig):
    """A DenseNet and a ResNet on CIFAR-10. The defaults are the `full` profile."""

    NAME = "densenet"  # outputs go to out_dir/densenet

    model: DenseNetSpec = field(
        default_factory=DenseNetSpec,
        metadata=describe("the DenseNet; the default is DenseNet-BC (L=100, k=12)"),
    )
    resnet: ResNetSpec = field(
        default_factory=lambda: ResNetSpec.depth(56),
        metadata=describe(
            "the ResNet it is compared with, trained alike; the default is "
            "ResNet-56, about as many parameters as DenseNet-BC-100"
        ),
    )
    resnet_scales: tuple[float, ...] = field(
        default=(0.5, 1.0, 2.0),
        metadata=positive(
            "width scales of the ResNet sweep (every stage's width times the "
            "scale; 1 is the spec above): the curve on which the parameters of an "
            "equally accurate ResNet are read"
        ),
    )
    train_size: int = field(
        default=50_000,
        metadata=positive("CIFAR-10 training images (seeded, class-stratified)"),
    )
    test_size: int = field(
        default=10_000,
        metadata=in_range(1, 10_000, "test images, scored once at the end"),
    )
    epochs: int = field(
        default=100,
        metadata=positive(
            "passes over the training set: one-cycle needs fewer than the paper's 300"
        ),
    )
    batch_size: int = field(
        default=128, metadata=positive("images per step (the paper's 64)")
    )
    lr: float = field(
        default=0.2, metadata=positive("peak of the one-cycle schedule (paper: 0.1)")
    )
    momentum: float = field(
        default=0.9, metadata=non_negative("Nesterov momentum, as in the paper")
    )
    weight_decay: float = field(
        default=1e-4,
        metadata=non_negative("L2 penalty on weights, the paper's 1e-4"),
    )
    crop: int = field(
        default=4,
        metadata=non_negative("random crops after padding by this many pixels"),
    )
    flip: bool = field(default=True, metadata=describe("random horizontal flips"))
    channels_last: bool = field(
        default=True, metadata=describe("NHWC memory layout: faster convolutions")
    )

    PROFILES = {
        "tiny": dict(
            model=dict(block_layers=(1, 1, 1), growth=4),  # tests
            resnet=dict(blocks=(1, 1, 1), widths=(8, 16, 32)),
            resnet_scales=(0.5, 1.0),
            train_size=1024,
            test_size=256,
            epochs=2,
            batch_size=64,
            precision="fp32",
            threads=1,
        ),
        # book build on a 2-core CPU: DenseNet-BC-16 (k = 12) against ResNet-8 at
        # widths 4-16, 8-32 and 16-64, the same 2 epochs of 10,000 images each
        # (4,000 images took 30 s for the whole chapter in a clean book build,
        # and left every network within a few points of the others)
        "small": dict(
            model=dict(block_layers=(2, 2, 2), growth=12),
            resnet=dict(blocks=(1, 1, 1), widths=(16, 32, 64)),
            train_size=10_000,
            resnet_scales=(0.25, 0.5, 1.0),
            test_size=2_000,
            epochs=2,
            lr=0.4,
            crop=0,
            precision="auto",
            threads=2,
        ),
        "full": dict(precision="auto"),  # DenseNet-BC-100 and ResNet-56 on a GPU
    }

    def validate(self):
        super().validate()
        if 1.0 not in self.resnet_scales:
            raise ConfigError(
                f"resnet_scales={self.resnet_scales} must include 1.0 (the spec as "
                "given)"
            )


cfg = DenseNetConfig.from_cli()
utils.seed_everything(cfg.seed)

# %% [markdown]
# ## Motivation
#
# The residual networks of {doc}`resnet` showed that a path through which
# information passes unchanged makes very deep networks trainable. But the sum
# $\mathbf{x} + \mathcal{F}(\mathbf{x})$ mixes the block's input with its new
# features: a later layer cannot tell them apart, and features a layer would like
# to keep must be carried along, through every addition, by the layers after it.
# Many layers of a trained ResNet can even be dropped with little loss
# {cite:p}`huang2016deep`, a sign that much of the network mostly passes its input
# on. DenseNet makes *reuse* explicit: do not add, concatenate; let every layer
# read everything computed before it, so that each layer only has to add a few
# new feature maps.
#
# ## Theory
#
# ### Dense connectivity
#
# In a dense block the $\ell$-th layer receives the feature maps of all earlier
# layers of the block, concatenated along the channels:
#
# $$
# \mathbf{x}_\ell = H_\ell([\mathbf{x}_0, \mathbf{x}_1, \dots, \mathbf{x}_{\ell-1}]),
# $$ (densenet-dense)
#
# where $\mathbf{x}_0$ is the block's input and $H_\ell$ is BN, ReLU and a 3×3
# convolution (pre-activation, as in {cite:t}`he2016identity`). Compare ResNet's
# $\mathbf{x}_\ell = H_\ell(\mathbf{x}_{\ell-1}) + \mathbf{x}_{\ell-1}$: a block
# of $n$ layers has $n$ connections there, and $n(n+1)/2$ here. The gradient of
# the loss reaches every layer directly from the block's output, as through
# ResNet's identity shortcuts, but without being summed with other features.
#
# ### Growth rate
#
# Each $H_\ell$ outputs $k$ feature maps, the **growth rate**, so a block with $c_0$
# input channels and $n$ layers outputs
#
# $$
# c_0 + n k \text{ channels}.
# $$ (densenet-growth)
#
# Layers can be very narrow: the paper uses $k = 12$. Each layer adds a little to
# the network's "collective knowledge" and reads all of it.
#
# ### Bottleneck and compression: DenseNet-BC
#
# The $\ell$-th layer of a block reads $c_0 + (\ell - 1)k$ channels, and a 3×3
# convolution on them costs $9 (c_0 + (\ell-1)k) k$ weights, growing along the
# block. **DenseNet-B** puts a 1×1 convolution to $4k$ channels first (a bottleneck,
# as in ResNet-50), so $H_\ell$ is BN-ReLU-conv1×1-BN-ReLU-conv3×3 and the 3×3
# convolution costs a fixed $9 \cdot 4k \cdot k$.
#
# Concatenation needs maps of the same size, so resolution is reduced only
# *between* blocks, by a **transition**: BN, ReLU, a 1×1 convolution and 2×2
# average pooling. **DenseNet-C** lets the transition's convolution keep only
# $\lfloor \theta m \rfloor$ of its $m$ input channels, $0 < \theta \le 1$ the
# **compression**; DenseNet-BC uses both, with $\theta = 0.5$. For CIFAR the
# network has a 3×3 stem of $2k$ channels, three dense blocks at 32×32, 16×16 and
# 8×8 pixels, and global average pooling with one linear layer; with $n$
# bottleneck layers per block (two convolutions each) its depth is $L = 6n + 4$.
#
# ## Implementation
#
# A dense layer computes its $k$ new maps and returns them appended to its input,
# so that a block is simply a sequence of layers:
#
# ```{literalinclude} ../../code/scratch/models/densenet.py
# :pyobject: DenseLayer
# ```
#
# ```{literalinclude} ../../code/scratch/models/densenet.py
# :pyobject: DenseBlock
# ```
#
# ```{literalinclude} ../../code/scratch/models/densenet.py
# :pyobject: Transition
# ```
#
# The network chains the stem, blocks and transitions:
#
# ```{literalinclude} ../../code/scratch/models/densenet.py
# :pyobject: DenseNet.__init__
# ```
#
# The paper's DenseNet-BC (L=100, k=12) has 16 bottleneck layers per block. The
# channel count follows {eq}`densenet-growth` block by block, and its size should
# match the paper's 0.8M:

# %%
bc100 = densenet_bc(100, 12)
x = torch.rand(2, 3, 32, 32)
h = bc100.stem(bc100.normalize(x))
print(f"{'stem':<14}{str(tuple(h.shape[1:])):>16}")
for i, stage in enumerate(bc100.stages):
    h = stage(h)
    kind = "dense block" if i % 2 == 0 else "transition"
    print(f"{kind:<14}{str(tuple(h.shape[1:])):>16}")
n_bc100 = count_parameters(bc100)
print(f"DenseNet-BC (L=100, k=12): {n_bc100:,} parameters")
assert round(n_bc100 / 1e6, 1) == PAPER_PARAMETERS_M[100, 12]

# %% [markdown]
# Each block adds $16 \times 12 = 192$ channels; each transition halves both the
# channels and the resolution. The test suite checks the count exactly against
# a sum over the architecture written out by hand (`tests/models/test_densenet.py`).
#
# ## Experiment
#
# We train the DenseNet of `cfg.model`, and the ResNet of `cfg.resnet` at the
# width scales of `cfg.resnet_scales` (its stage widths multiplied by the
# scale), on the same CIFAR-10 images, with the
# same batches, augmentation, optimiser and schedule, using the data pipeline of
# {doc}`resnet`: images as one tensor in [0, 1], batches cut by a `BatchSampler`
# (`recipes.tensor_loader`), and augmentation on whole batches by `Augment`.


# %%
tensor_loader, as_unit_tensor = recipes.tensor_loader, recipes.as_unit_tensor
train_images, train_labels = data.subsample(
    *data.cifar10("train"), cfg.train_size, seed=cfg.seed
)
test_images, test_labels = data.subsample(
    *data.cifar10("test"), cfg.test_size, seed=cfg.seed
)
mean, std = data.channel_stats(train_images)  # training images only
train_x = as_unit_tensor(train_images, cfg.channels_last)
train_y = torch.from_numpy(train_labels).long()
test_x = as_unit_tensor(test_images, cfg.channels_last)
test_y = torch.from_numpy(test_labels).long()
augment = Augment(crop=cfg.crop, flip=cfg.flip)
print(f"images: train {len(train_images):,}, test {len(test_images):,}")


def train(spec, name, checkpoint):
    """Train one network on the chapter's data and schedule; its test metrics."""
    utils.seed_everything(cfg.seed)  # same initial draws and batches for every net
    model = spec.build(mean=mean.tolist(), std=std.tolist())
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    loader = tensor_loader(train_x, train_y, cfg.batch_size, shuffle=True)
    optimizer = recipes.sgd(
        model, cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
    )
    scheduler = recipes.one_cycle(optimizer, cfg.lr, cfg.epochs * len(loader))
    t0 = time.perf_counter()
    fit(
        model,
        optimizer,
        loader,
        cfg,
        scheduler=scheduler,
        batch_transform=augment,
        checkpoint=checkpoint,
        verbose=checkpoint is not None,
    )
    seconds = time.perf_counter() - t0
    logits = predict(model, test_x)  # (N, 10)
    result = {
        "test_acc": (logits.argmax(1) == test_y).double().mean().item(),
        "test_loss": F.cross_entropy(logits, test_y).item(),
        "parameters": count_parameters(model),
        "train_seconds": seconds,
    }
    print(
        f"{name:<28}{result['parameters']:>10,} parameters   test accuracy "
        f"{result['test_acc']:6.2%}   {seconds:4.0f} s of training"
    )
    return result


def scaled(spec, s):
    """The ResNet spec with every stage's width scaled by s."""
    return dataclasses.replace(
        spec, widths=tuple(max(1, round(w * s)) for w in spec.widths)
    )


# Every network sees the same images, batches, augmentation and schedule; only the
# DenseNet is checkpointed (last.pt belongs to it).
densenet = train(cfg.model, f"DenseNet-BC k={cfg.model.growth}", "last.pt")
densenet["label"] = f"DenseNet-BC k={cfg.model.growth}"
runs = {"DenseNet": {1.0: densenet}, "ResNet": {}}
for s in sorted(cfg.resnet_scales):
    spec = scaled(cfg.resnet, s)
    label = f"ResNet widths {'-'.join(map(str, spec.widths))}"
    runs["ResNet"][s] = {"label": label, **train(spec, label, None)}
resnet = runs["ResNet"][1.0]

# %% [markdown]
# ### Accuracy against parameters
#
# The DenseNet against ResNets of several widths: how many parameters does a
# ResNet need to be as accurate as the DenseNet? We read it off the ResNet curve, linear in
# accuracy against the logarithm of the parameter count between its two nearest
# points (outside the measured range the answer would be an extrapolation, and
# the chapter says so rather than print one). Next to them, the paper's
# CIFAR-10 results (with augmentation) for DenseNet-BC and for the ResNets of
# {cite:t}`he2016deep`, after full training:


# %%
def parameters_at(accuracy, points):
    """Parameters at which the curve through ``points`` ((params, acc), sorted by
    params) reaches ``accuracy``, interpolated linearly in log(params); None when
    no segment of the curve spans that accuracy."""
    for (n0, a0), (n1, a1) in zip(points, points[1:]):
        if min(a0, a1) <= accuracy <= max(a0, a1) and a0 != a1:
            t = (accuracy - a0) / (a1 - a0)
            return float(np.exp(np.log(n0) + t * (np.log(n1) - np.log(n0))))
    return None


def curve(family):
    return sorted((r["parameters"], r["test_acc"]) for r in runs[family].values())


resnet_equal = parameters_at(densenet["test_acc"], curve("ResNet"))
largest = max(curve("ResNet"))  # (parameters, accuracy) of the widest ResNet
if resnet_equal is not None:
    print(
        f"a ResNet as accurate as the DenseNet ({densenet['test_acc']:.2%}) needs "
        f"about {resnet_equal:,.0f} parameters: "
        f"{resnet_equal / densenet['parameters']:.1f}x the DenseNet's "
        f"{densenet['parameters']:,}"
    )
elif densenet["test_acc"] > max(a for _, a in curve("ResNet")):
    print(
        f"the DenseNet ({densenet['test_acc']:.2%}, {densenet['parameters']:,} "
        f"parameters) beats every ResNet here, the widest with {largest[0]:,} "
        f"parameters ({largest[0] / densenet['parameters']:.1f}x) included: an "
        "equally accurate ResNet needs more than that"
    )
else:
    print(
        f"the DenseNet's {densenet['test_acc']:.2%} is below every ResNet here "
        f"(the narrowest: {min(curve('ResNet'))[0]:,} parameters): no "
        "equal-accuracy ResNet measured"
    )

PAPER_RESNET_ERROR = {56: 0.0697, 110: 0.0643}  # he2016deep, Table 6
fig = go.Figure()
for family, symbol in (("DenseNet", "circle"), ("ResNet", "square")):
    pts = sorted(runs[family].values(), key=lambda r: r["parameters"])
    fig.add_trace(
        go.Scatter(
            x=[r["parameters"] for r in pts],
            y=[r["test_acc"] for r in pts],
            text=[r["label"] for r in pts],
            name=f"{family} (this run)",
            mode="lines+markers",
            marker_symbol=symbol,
            marker_size=10,
        )
    )
if resnet_equal is not None:
    fig.add_trace(
        go.Scatter(
            x=[densenet["parameters"], resnet_equal],
            y=[densenet["test_acc"]] * 2,
            name="equal accuracy",
            mode="lines",
            line_dash="dot",
        )
    )
fig.add_trace(
    go.Scatter(
        x=[PAPER_PARAMETERS_M[key] * 1e6 for key in PAPER_CIFAR10_ERROR],
        y=[1 - e for e in PAPER_CIFAR10_ERROR.values()],
        text=[f"DenseNet-BC L={d}, k={k}" for d, k in PAPER_CIFAR10_ERROR],
        name="DenseNet-BC (paper)",
        mode="markers",
        marker_symbol="diamond",
    )
)
fig.add_trace(
    go.Scatter(
        x=[PAPER_CIFAR_PARAMETERS[d] * 1e6 for d in PAPER_RESNET_ERROR],
        y=[1 - e for e in PAPER_RESNET_ERROR.values()],
        text=[f"ResNet-{d}" for d in PAPER_RESNET_ERROR],
        name="ResNet (paper)",
        mode="markers",
        marker_symbol="square-open",
    )
)
fig.update_layout(
    title="CIFAR-10 test accuracy against parameters",
    xaxis_title="parameters (log scale)",
    yaxis_title="test accuracy",
    height=420,
)
fig.update_xaxes(type="log")
plots.show(fig, cfg.run_dir / "accuracy_vs_parameters.html")
print(
    f"training time: DenseNet {densenet['train_seconds']:.0f} s for "
    f"{densenet['parameters']:,} parameters, ResNet {resnet['train_seconds']:.0f} s "
    f"for {resnet['parameters']:,}"
)

# %% [markdown]
# In the paper, DenseNet-BC with 0.8M parameters reaches a lower error than the
# 1.7M-parameter ResNet-110. Our `small` run trains far smaller networks for two
# epochs on a subset, a much earlier point of training, and the lines printed
# above say whether the DenseNet's parameter advantage already shows there. The
# last line shows DenseNet's cost: concatenation and many narrow layers make it
# slower per parameter on hardware, and a naive implementation stores every
# intermediate concatenation, which grows quadratically with the block's length.
#
# ## Results

# %%
seconds = time.perf_counter() - T0
metrics = {
    "densenet_test_acc": densenet["test_acc"],
    "densenet_test_loss": densenet["test_loss"],
    "densenet_parameters": densenet["parameters"],
    "densenet_train_seconds": densenet["train_seconds"],
    "train_images": len(train_images),
    "test_images": len(test_images),
}
metrics.update(
    resnet_test_acc=resnet["test_acc"],
    resnet_parameters=resnet["parameters"],
    resnet_train_seconds=resnet["train_seconds"],
    # None (null in metrics.json) when the DenseNet's accuracy is outside the
    # ResNets' range: no extrapolated number is reported
    resnet_parameters_at_equal_accuracy=resnet_equal,
    sweep={
        family: {
            str(s): {k: r[k] for k in ("parameters", "test_acc", "train_seconds")}
            for s, r in runs[family].items()
        }
        for family in runs
    },
)
millions = lambda n: f"{n / 1e6:.3f} M"
rows = results_table(
    cfg,
    metrics,
    seconds=seconds,
    title="CIFAR-10 test accuracy of the DenseNet",
    columns={
        "densenet_test_acc": ("test accuracy", ".2%"),
        "config.epochs": ("epochs", "d"),
        "densenet_parameters": ("parameters", millions),
        "resnet_test_acc": ("ResNet, same width scale", ".2%"),
        "resnet_parameters": ("its parameters", millions),
    },
    references=[
        Reference(
            "DenseNet-BC (L=100, k=12)",
            {
                "densenet_test_acc": 1 - PAPER_CIFAR10_ERROR[100, 12],
                "config.epochs": 300,
                "densenet_parameters": PAPER_PARAMETERS_M[100, 12] * 1e6,
            },
            source="huang2017densely",
            setting="Table 2, C10+",
        )
    ],
    notes=[f"this run: {seconds:.0f} s in all"],
)
assert rows[0].values["densenet_test_acc"] == densenet["test_acc"]
utils.save_run(cfg.run_dir / "metrics.json", cfg, metrics, seconds)
print(f"metrics saved to {cfg.run_dir / 'metrics.json'}")

# %% [markdown]
# The `full` profile trains the paper's DenseNet-BC (L=100, k=12) and ResNet-56,
# with standard augmentation, on a GPU; the paper's 4.51% error took 300 epochs
# with step decay.
#
# ## Summary
#
# - A dense block concatenates: layer $\ell$ reads the maps of all earlier layers
#   {eq}`densenet-dense`, where a ResNet adds one shortcut.
# - Each layer adds $k$ maps, the growth rate; a block outputs $c_0 + nk$
#   channels {eq}`densenet-growth`.
# - DenseNet-BC bounds the cost of each layer with a 1×1 bottleneck to $4k$
#   channels and halves the channels in each transition ($\theta = 0.5$).
# - Our DenseNet-BC (L=100, k=12) has the paper's 0.8M parameters.
#
# ## Exercises
#
# :::{exercise}
# :label: densenet-ex-1
# Write the parameter count of a CIFAR DenseNet-BC as a function of $L$ and $k$,
# and check it against `densenet_bc` for (40, 12) and (100, 12). Which layers hold
# most of the parameters?
# :::
#
# :::{solution} densenet-ex-1
# :class: dropdown
# A bottleneck layer on $c$ channels has $2c + 4kc + 8k + 36k^2$ parameters (BN,
# 1×1 convolution, BN, 3×3 convolution); a transition on $c$ channels
# $2c + c\lfloor c/2 \rfloor$; add the stem $27 \cdot 2k$, the final BN and the
# linear layer. Summing over the blocks (the channel count grows by $k$ per layer
# and halves at each transition):
#
# ```python
# def n_params(depth, k, classes=10):
#     n, c = (depth - 4) // 6, 2 * k
#     total = 27 * c
#     for block in range(3):
#         for _ in range(n):
#             total += 2 * c + 4 * k * c + 8 * k + 36 * k * k
#             c += k
#         if block < 2:
#             total += 2 * c + c * (c // 2)
#             c //= 2
#     return total + 2 * c + c * classes + classes
#
# for depth in (40, 100):
#     print(n_params(depth, 12), count_parameters(densenet_bc(depth, 12)))
# ```
# The 1×1 bottleneck convolutions grow with the number of input channels and,
# together with the transitions, dominate the third block, which reads the most
# channels.
# :::
#
# :::{exercise}
# :label: densenet-ex-2
# Replace `torch.cat` in `DenseLayer.forward` by an addition (keep the channel
# count fixed at $k$ by making the stem output $k$ channels). What network have
# you built, and how does its parameter count and `small`-profile accuracy
# compare?
# :::
#
# :::{solution} densenet-ex-2
# :class: dropdown
# With $\mathbf{x} + H(\mathbf{x})$ every layer sees $k$ channels: it is a very
# narrow pre-activation ResNet with bottleneck blocks, whose parameter count no
# longer grows with the layer's position in the block. Expect it to be much
# smaller and less accurate at the same depth: the width a DenseNet layer reads
# comes from the concatenated maps.
# :::
#
# :::{exercise}
# :label: densenet-ex-3
# Measure the peak memory of a training step of DenseNet-BC (L=100, k=12) on a
# batch of 64 (`torch.cuda.max_memory_allocated` on a GPU). Then wrap each
# layer's bottleneck in `torch.utils.checkpoint.checkpoint` and measure again.
# :::
#
# :::{solution} densenet-ex-3
# :class: dropdown
# Each `torch.cat` allocates a new tensor holding all earlier maps, and autograd
# keeps them (and the BN outputs) for the backward pass, so memory grows with the
# square of the block length. Recomputing the concatenation, BN and ReLU in the
# backward pass, the memory-efficient implementation of
# {cite:t}`pleiss2017memory`, brings it back to linear at the cost of extra
# compute, which is what checkpointing the bottleneck does.
# :::
#
# ## References
#
# ```{bibliography}
# :filter: docname in docnames
# ```
