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
# (resnet)=
# # Residual networks
#
# In 2015 a network of 152 layers won the ImageNet classification challenge, eight
# times deeper than the VGG networks of the year before and nineteen times deeper
# than AlexNet ({doc}`alexnet`). The change that made this possible is small: every
# two or three layers, add the block's input to its output,
#
# $$
# \mathbf{y} = \mathcal{F}(\mathbf{x}) + \mathbf{x},
# $$
#
# so that the layers learn a *residual* $\mathcal{F}$, a correction to the identity
# {cite:p}`he2016deep`. In this chapter we measure the problem this solves (deeper
# plain networks train *worse*), build ResNet-18/34/50 and the CIFAR ResNets of the
# paper from layers and check their sizes against the paper, discuss where batch
# normalisation belongs in a block, and train a ResNet on CIFAR-10.

# %%
import time

T0 = time.perf_counter()  # the whole chapter is timed, plots included

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import torch
import torchvision
from torch.nn import functional as F

from scratch import data, plots, recipes, utils, vis
from scratch.augment import Augment
from scratch.config import (
    ConfigError,
    FieldError,
    Spec,
    choice,
    describe,
    in_range,
    non_negative,
    positive,
)
from scratch.history import Callback
from scratch.models.inspection import count_parameters, multiply_adds
from scratch.models.resnet import (
    CIFAR_RESNET18,
    PAPER_CIFAR_PARAMETERS,
    PAPER_GFLOPS,
    TORCHVISION_PARAMETERS,
    BasicBlock,
    ResNetSpec,
    cifar_depth_kwargs,
    cifar_resnet,
    resnet18,
    resnet34,
    resnet50,
    weighted_layers,
)
from scratch.models.spec import load_model, save_model
from scratch.results import Reference, results_table
from scratch.train import TrainConfig, fit, predict

# %% [markdown]
# Everything in the chapter is driven by one config (explained in the Experiment
# section), read first so that a mistyped option stops the script at once:


# %% tags=["hide-input"]
def network_name(name):
    """'plain-20' / 'resnet-56' -> (residual, depth), or a ConfigError."""
    kind, _, depth = name.partition("-")
    if (
        kind not in ("plain", "resnet")
        or not depth.isdigit()
        or int(depth) < 8
        or (int(depth) - 2) % 6
    ):
        raise FieldError(
            f"nets: {name!r} is not plain-D or resnet-D with "
            "D = 6n + 2 >= 8 (8, 14, 20, 32, 56, ...)"
        )
    return kind == "resnet", int(depth)


@dataclass
class DegradationStudy(Spec):
    """Plain and residual networks of several depths, trained alike."""

    run: bool = field(
        default=True,
        metadata=describe("run the study; false: just train and save the classifier"),
    )
    nets: tuple[str, ...] = field(
        default=("plain-20", "plain-56", "resnet-20", "resnet-56"),
        metadata=describe("networks of the study: plain-D or resnet-D, D = 6n + 2"),
    )
    width: int = field(
        default=16,
        metadata=positive(
            "channels of their first stage (the paper's 16; doubled per stage)"
        ),
    )
    size: int = field(default=50_000, metadata=positive("training images of the study"))
    epochs: int = field(
        default=20,
        metadata=positive("epochs of the study: the gap shows from the start"),
    )
    resolution: int = field(
        default=32,
        metadata=choice(
            8,
            16,
            32,
            help="image size in the study: 16 = 2x2 average-pooled CIFAR, 4x cheaper",
        ),
    )
    lr: float = field(
        default=0.1,
        metadata=positive(
            "peak one-cycle rate of the study: the paper's 0.1 at batch 128"
        ),
    )

    def validate(self):
        if self.run and not self.nets:
            raise ConfigError(
                "nets is empty: name at least one network or "
                "set --degradation.run=false"
            )
        for name in self.nets:
            network_name(name)


@dataclass
class ResNetConfig(TrainConfig):
    """ResNets on CIFAR-10. The defaults are the `full` profile (on a GPU)."""

    NAME = "resnet"  # outputs go to out_dir/resnet

    model: ResNetSpec = field(
        default_factory=lambda: ResNetSpec(**CIFAR_RESNET18),
        metadata=describe("the classifier; the default is the CIFAR ResNet-18"),
    )
    degradation: DegradationStudy = field(
        default_factory=DegradationStudy, metadata=describe("the study")
    )
    train_size: int = field(
        default=50_000,
        metadata=positive(
            "CIFAR-10 training images used (seeded, class-stratified); all 50,000 "
            "in full"
        ),
    )
    test_size: int = field(
        default=10_000,
        metadata=in_range(
            1,
            10_000,
            "test images (CIFAR-10 has 10,000); scored after every epoch "
            "(no model selection is done with them: the schedule is fixed in "
            "advance)",
        ),
    )
    epochs: int = field(
        default=60,
        metadata=positive(
            "passes over the training set: one-cycle runs need far fewer than "
            "the paper's 164 with step decay"
        ),
    )
    batch_size: int = field(
        default=512,
        metadata=positive(
            "images per step: keeps a GPU busy; the rate below scales with it"
        ),
    )
    lr: float = field(
        default=0.4,
        metadata=positive(
            "peak of the one-cycle schedule: the paper's 0.1 at batch 128, "
            "scaled linearly to batch 512"
        ),
    )
    warmup: float = field(
        default=0.25,
        metadata=in_range(
            0,
            1,
            "fraction of the steps spent raising the learning rate",
            low_open=True,
            high_open=True,
        ),
    )
    momentum: float = field(
        default=0.9,
        metadata=non_negative(
            "Nesterov momentum, as in the paper (which used plain momentum)"
        ),
    )
    weight_decay: float = field(
        default=5e-4,
        metadata=non_negative(
            "L2 penalty on weights only, not on biases and BN parameters"
        ),
    )
    label_smoothing: float = field(
        default=0.1,
        metadata=in_range(
            0,
            1,
            "target 1 - s for the true class, s / 10 spread over all",
            high_open=True,
        ),
    )
    crop: int = field(
        default=4,
        metadata=non_negative(
            "random crops after padding by this many pixels (reflect); the "
            "paper's augmentation, with zero padding"
        ),
    )
    flip: bool = field(
        default=True, metadata=describe("random horizontal flips, as in the paper")
    )
    cutout: int = field(
        default=8,
        metadata=non_negative("blank a random square of this size per image (0 = off)"),
    )
    channels_last: bool = field(
        default=True,
        metadata=describe(
            "NHWC memory layout: faster convolutions with bf16 on GPUs and CPUs"
        ),
    )
    eval_every_epoch: bool = field(
        default=True,
        metadata=describe(
            "score the test set after every epoch (needed for target_acc); "
            "false: only once at the end, which saves time on a CPU"
        ),
    )
    target_acc: float = field(
        default=0.94,
        metadata=in_range(
            0,
            1,
            "record the time at which test accuracy first reaches this",
            low_open=True,
        ),
    )
    gradcam_images: int = field(
        default=12, metadata=non_negative("test images shown with their Grad-CAM maps")
    )

    PROFILES = {
        "tiny": dict(
            model=dict(blocks=(1, 1, 1), widths=(8, 16, 32)),  # tests
            train_size=2048,
            test_size=256,
            epochs=5,
            batch_size=64,
            lr=0.2,
            precision="fp32",
            degradation=dict(
                nets=("plain-8", "resnet-14"), width=4, size=256, epochs=1, resolution=8
            ),
            gradcam_images=4,
            threads=1,
        ),
        # book build on a 2-core CPU: ResNet-8 for 2 epochs, flips only
        "small": dict(
            model=dict(blocks=(1, 1, 1), widths=(16, 32, 64)),
            epochs=2,
            batch_size=128,
            lr=0.4,
            crop=0,
            cutout=0,
            precision="auto",
            eval_every_epoch=False,
            degradation=dict(width=8, size=4_000, epochs=3, resolution=16),
            threads=2,
            train_size=36_000,  # 50,000 took 99-101 s here, over the 90 s budget
        ),
        "full": dict(precision="auto"),  # CIFAR ResNet-18 on a GPU
    }


cfg = ResNetConfig.from_cli()
utils.seed_everything(cfg.seed)

# %% [markdown]
# ## Motivation
#
# AlexNet had eight weighted layers; the networks that followed it on ImageNet went
# deeper and got better, and a natural conclusion was that depth is what to add
# next. Batch normalisation {cite:p}`ioffe2015batch` and careful initialisation
# {cite:p}`he2015delving` had solved the first obstacle, signals that vanish or
# explode on their way through many layers: a 50-layer network with batch norm
# starts training at once. And yet, {cite:t}`he2016deep` observed, its *training*
# error ends up higher than that of a 20-layer network built the same way (the
# paper's Fig. 1, on CIFAR-10). This is the **degradation problem**, and it is
# strange:
#
# - It is not overfitting: the deeper network is worse on the training set.
# - It is not a lack of capacity: the deeper network can represent everything the
#   shallower one can. Copy the 20 layers and make the extra 36 compute the
#   identity: same function, same training error.
# - So the deeper network has a solution at least as good as the shallower one,
#   and SGD does not find it. Layers of convolution, BN and ReLU apparently find it
#   hard to learn the identity mapping, or anything close to it.
#
# We reproduce the effect below (Experiment), with plain networks of the paper's
# two depths next to a residual one. The fix the paper proposes is to make the
# identity the default: let a block compute $\mathcal{F}(\mathbf{x}) + \mathbf{x}$,
# so that to behave like the identity its layers only have to output zero, which
# weight decay already pushes them towards.
#
# ## Theory
#
# ### Residual learning
#
# Let $\mathcal{H}(\mathbf{x})$ be the mapping a few stacked layers should learn.
# Instead of learning it directly, a residual block learns
# $\mathcal{F}(\mathbf{x}) = \mathcal{H}(\mathbf{x}) - \mathbf{x}$ and adds its input
# back through a *shortcut connection*:
#
# $$
# \mathbf{y} = \mathcal{F}(\mathbf{x}, \{W_i\}) + \mathbf{x}.
# $$ (resnet-residual)
#
# In the *basic block* $\mathcal{F}$ is two 3×3 convolutions, each followed by batch
# normalisation, with a ReLU between them; a second ReLU follows the addition
# (the paper's Fig. 2). The shortcut costs no parameters and almost no computation
# (one addition per activation). If the identity is nearly optimal, the block only
# has to push $\mathcal{F}$ towards zero; and if it is not, the block learns a
# perturbation of it, which the paper argues is easier to find than a whole new
# mapping. Highway networks {cite:p}`srivastava2015training` had added gated
# shortcuts a few months earlier; the ResNet shortcut is the ungated special case,
# always open.
#
# When a block halves the resolution and doubles the channels, $\mathbf{x}$ and
# $\mathcal{F}(\mathbf{x})$ no longer have the same shape. The paper tries three
# options:
#
# - **A**: still the identity: take every second pixel and append zero channels
#   (no parameters; its CIFAR networks use this);
# - **B**: a projection $W_s$, a 1×1 convolution with stride 2 (and BN), only where
#   the shapes change; identity elsewhere (its ImageNet networks);
# - **C**: projections in every block.
#
# $$
# \mathbf{y} = \mathcal{F}(\mathbf{x}, \{W_i\}) + W_s \mathbf{x}.
# $$ (resnet-projection)
#
# B is slightly better than A on ImageNet and C marginally better than B, at a
# large cost in parameters: the paper concludes that projections are not essential
# to the degradation problem and uses B.
#
# For the deeper ImageNet networks the paper replaces the basic block with a
# **bottleneck**: a 1×1 convolution reduces the channels by 4, a 3×3 convolution
# works at the reduced width and a 1×1 convolution expands them again. A 3×3
# convolution from $C_{in}$ to $C_{out}$ channels on an $H \times W$ output has
#
# $$
# k^2 C_{in} C_{out} \text{ weights} \quad\text{and}\quad
# k^2 C_{in} C_{out}\, H W \text{ multiply-adds},
# $$ (resnet-cost)
#
# so on 256 channels a bottleneck (1×1 256→64, 3×3 64→64, 1×1 64→256: about 70k
# weights) is three layers deep for about an eighth of the weights and
# multiply-adds of a *single* 3×3 convolution from 256 to 256 channels (590k
# weights). That is how ResNet-50 has 50 layers for about the multiply-adds of
# ResNet-34.
#
# ### Why shortcuts help: the signal through the identity
#
# Stack residual blocks without anything after the addition,
# $\mathbf{x}_{l+1} = \mathbf{x}_l + \mathcal{F}(\mathbf{x}_l)$. Then for any deeper
# block $L$,
#
# $$
# \mathbf{x}_L = \mathbf{x}_l + \sum_{i=l}^{L-1} \mathcal{F}(\mathbf{x}_i),
# $$ (resnet-unrolled)
#
# and by the chain rule the gradient of the loss $E$ at block $l$ is
#
# $$
# \frac{\partial E}{\partial \mathbf{x}_l} =
# \frac{\partial E}{\partial \mathbf{x}_L}
# \left(I + \frac{\partial}{\partial \mathbf{x}_l} \sum_{i=l}^{L-1} \mathcal{F}(\mathbf{x}_i)\right)
# $$ (resnet-gradient)
#
# {cite:p}`he2016identity`. The first term carries the gradient of the top block to
# every block below *unchanged*, whatever the weights; in a plain network the
# gradient is a product of $L - l$ layer Jacobians, which can shrink or grow
# exponentially with depth. With batch norm it is not the forward signal that
# degenerates: BN rescales every layer's output. But the gradients of a deep plain
# network with BN explode from the top to the bottom at initialisation, and they
# become increasingly uncorrelated between nearby inputs, "shattered"
# {cite:p}`balduzzi2017shattered`; shortcuts keep them well-behaved. We measure the
# first effect in the Implementation section.
#
# ### Where batch normalisation goes
#
# The original block puts BN after each convolution and before its ReLU, as
# {cite:t}`ioffe2015batch` proposed, and a ReLU after the addition:
#
# $$
# \mathbf{x}_{l+1} = \mathrm{ReLU}\big(\mathbf{x}_l +
# \mathrm{BN}(W_2\, \mathrm{ReLU}(\mathrm{BN}(W_1 \mathbf{x}_l)))\big).
# $$ (resnet-post)
#
# The ReLU after the addition breaks {eq}`resnet-unrolled`: the shortcut path is not
# an identity anymore but passes through a ReLU in every block. {cite:t}`he2016identity`
# tried moving BN and the ReLU around and found it best to move both *in front of*
# the convolutions, *pre-activation*:
#
# $$
# \mathbf{x}_{l+1} = \mathbf{x}_l +
# W_2\, \mathrm{ReLU}(\mathrm{BN}(W_1\, \mathrm{ReLU}(\mathrm{BN}(\mathbf{x}_l)))).
# $$ (resnet-pre)
#
# Now {eq}`resnet-unrolled` holds exactly, the path from the top to the bottom is a
# clean identity, and every block's convolutions see normalised inputs. The network
# needs one extra BN-ReLU after the last block, since nothing normalises the last
# sum. The gain is small at ordinary depths and large at extreme ones: on CIFAR-10
# the paper's 1001-layer network improves from 7.61% to 4.92% test error. Two
# details: the shortcut of a pre-activation block that changes shape projects the
# *normalised* input (the identity carries the raw sum), and a projection there
# needs no BN of its own. `preact=True` in our blocks builds this version.
#
# ### Global average pooling
#
# How do the last feature maps become class scores? AlexNet and VGG flatten them
# and apply large fully connected layers. *Network in Network*
# {cite:p}`lin2013network` instead averages each of the last $C$ maps over its
# $h \times w$ positions,
#
# $$
# z_c = \frac{1}{hw} \sum_{u=1}^{h}\sum_{v=1}^{w} a_c[u, v],
# $$ (resnet-gap)
#
# and the *All Convolutional Net* {cite:p}`springenberg2015striving` showed that a
# network of only convolutions (strided ones instead of pooling) with global
# average pooling at the end is as accurate as one with max-pooling and fully
# connected layers. ResNets follow this design: after global average pooling one
# linear layer maps the $C$ averages to the classes. It costs $C \cdot K + K$
# parameters for $K$ classes, instead of $C h w \cdot K + K$ for a linear layer on
# the flattened maps, and, having no fixed input size, the network runs on images
# of any size. Averaging over positions also acts as a regulariser: the
# classifier cannot rely on where in the image a feature appeared.
#
# ## Implementation
#
# The library's version lives in `scratch.models.resnet`. Shortcut option A
# subsamples and pads with zeros:
#
# ```{literalinclude} ../../code/scratch/models/resnet.py
# :pyobject: PadShortcut
# ```
#
# A basic block implements both {eq}`resnet-post` and {eq}`resnet-pre`, and drops
# the shortcut when `residual=False`, which gives the blocks of the paper's "plain"
# networks:
#
# ```{literalinclude} ../../code/scratch/models/resnet.py
# :pyobject: BasicBlock
# ```
#
# The bottleneck block is the same idea with three convolutions:
#
# ```{literalinclude} ../../code/scratch/models/resnet.py
# :pyobject: Bottleneck
# ```
#
# A ResNet is a stem, stages of blocks (each stage after the first halves the
# resolution in its first block), global average pooling and a linear layer. The
# optional `Normalize` first layer standardises the images inside the model, so it
# takes pixels in [0, 1]:
#
# ```{literalinclude} ../../code/scratch/models/resnet.py
# :pyobject: ResNet
# ```
#
# The CIFAR networks use a 3×3 stem at full resolution and no max-pool; the paper's
# ResNet-(6n+2) has $n$ blocks in each of three stages of 16, 32 and 64 channels:
#
# ```{literalinclude} ../../code/scratch/models/resnet.py
# :pyobject: cifar_resnet
# ```
#
# ### Checking the ImageNet networks against the paper
#
# Table 1 of the paper gives the architectures of ResNet-18, 34 and 50 and their
# cost in multiply-adds ("FLOPs") for a 224×224 image. We count our parameters,
# compare them with torchvision's implementations (built without weights, only to
# be counted) and count the multiply-adds of convolutions and linear layers with
# forward hooks (`multiply_adds` of `scratch.models.inspection`), per {eq}`resnet-cost`. Counting needs shapes, not
# values, so the networks are built on PyTorch's `meta` device, whose tensors have
# a shape and no data: no memory is filled and no arithmetic is done.

# %%
builders = {"resnet18": resnet18, "resnet34": resnet34, "resnet50": resnet50}
print(
    f"{'model':<10}{'layers':>7}{'ours':>13}{'torchvision':>13}{'GMACs':>8}{'paper':>7}"
)
for name, build in builders.items():
    with torch.device("meta"):
        ours = build()
        theirs = getattr(torchvision.models, name)(weights=None)
    n_ours, n_theirs = count_parameters(ours), count_parameters(theirs)
    assert n_ours == n_theirs == TORCHVISION_PARAMETERS[name], name
    gmacs = sum(multiply_adds(ours, (1, 3, 224, 224)).values()) / 1e9
    print(
        f"{name:<10}{weighted_layers(ours):>7}{n_ours:>13,}{n_theirs:>13,}"
        f"{gmacs:>8.2f}{PAPER_GFLOPS[name]:>7.1f}"
    )
with torch.device("meta"):
    v15 = (
        sum(multiply_adds(resnet50(stride_in_1x1=False), (1, 3, 224, 224)).values())
        / 1e9
    )
print(
    f"resnet50 with the stride in the 3x3 convolution (torchvision's "
    f"'v1.5'): {v15:.2f} GMACs"
)
del ours, theirs

# %% [markdown]
# The parameter counts agree exactly with torchvision's, and the layer counts
# (convolutions and linear layers on the main path) are the names. The multiply-adds
# agree with the paper's, which are given to one decimal, cut off rather than
# rounded: its "FLOPs" are multiply-adds of the convolutions and the linear layer.
# ResNet-50 depends on where the stride sits in the first bottleneck of a stage:
# the paper strides the first 1×1 convolution, which skips three quarters of the
# positions before any 3×3 work is done; torchvision (following a later Facebook
# implementation) strides the 3×3 convolution, a little more accurate and a little
# more expensive. The parameters are the same.
#
# ### The CIFAR networks of Section 4.2
#
# For CIFAR-10 the paper uses three stages of $n$ basic blocks at 32×32, 16×16 and
# 8×8 with 16, 32 and 64 channels, a 3×3 stem and option A shortcuts: $6n + 2$
# weighted layers. Table 6 lists their sizes; the CIFAR variant of ResNet-18 that
# we train in the `full` profile (ImageNet's stages and widths, but a 3×3 stem and
# no max-pool, so that 32×32 images are not shrunk to 8×8 at once) is not in the
# paper:

# %%
print(f"{'model':<16}{'layers':>7}{'parameters':>12}{'paper':>8}{'MMACs':>8}")
for depth, paper_millions in PAPER_CIFAR_PARAMETERS.items():
    net = cifar_resnet(**cifar_depth_kwargs(depth))
    n = count_parameters(net)
    assert weighted_layers(net) == depth
    assert round(n / 1e6, 2 if n < 1e6 else 1) == paper_millions, depth
    print(
        f"{'ResNet-' + str(depth):<16}{depth:>7}{n:>12,}"
        f"{paper_millions:>7}M{sum(multiply_adds(net, (1, 3, 32, 32)).values()) / 1e6:>8.1f}"
    )
net = cifar_resnet(**CIFAR_RESNET18)
print(
    f"{'ResNet-18 CIFAR':<16}{weighted_layers(net):>7}"
    f"{count_parameters(net):>12,}{'-':>8}"
    f"{sum(multiply_adds(net, (1, 3, 32, 32)).values()) / 1e6:>8.1f}"
)

# %% [markdown]
# ### Global average pooling versus flattening
#
# What the last layer would cost if it were a linear layer on the flattened maps
# {eq}`resnet-gap`, for ResNet-18 on ImageNet (512 maps of 7×7, 1000 classes) and
# for the small CIFAR ResNet of this chapter's `small` profile (64 maps of 8×8, 10
# classes):

# %%
for label, c, hw, k in [
    ("ResNet-18, ImageNet", 512, 7, 1000),
    ("ResNet-8, CIFAR-10", 64, 8, 10),
]:
    gap, flat = c * k + k, c * hw * hw * k + k
    print(
        f"{label:<20} GAP + linear {gap:>9,}   flatten + linear "
        f"{flat:>11,}  ({flat / gap:.0f}x)"
    )
small_net = cifar_resnet(blocks=(1, 1, 1), widths=(16, 32, 64)).eval()
with torch.no_grad():
    for size in (32, 48, 96):
        out = small_net(torch.rand(1, 3, size, size))
        print(f"a {size}x{size} image -> scores of shape {tuple(out.shape)}")


# %% [markdown]
# Flattening would multiply the size of the ImageNet network's last layer by 49,
# to 25 million parameters: more than the rest of ResNet-18 together. With global
# average pooling the same network also classifies images of any size: only the
# size of the averaged maps changes.
#
# ### Gradients at initialisation
#
# Before training anything, a look at {eq}`resnet-gradient`: the norm of the
# gradient of the loss with respect to each block's output, for one batch of random
# images through freshly initialised 56-layer networks: plain, residual
# (post-activation, {eq}`resnet-post`) and pre-activation ({eq}`resnet-pre`).


# %%
def block_gradient_norms(model, x, y):
    """|dE/d(output of block l)| for every block l (input side first)."""
    norms, handles = [], []

    def hook(module, inputs, output):
        output.register_hook(lambda g: norms.append(g.norm().item()))

    for m in model.modules():
        if isinstance(m, BasicBlock):
            handles.append(m.register_forward_hook(hook))
    F.cross_entropy(model(x), y).backward()
    for h in handles:
        h.remove()
    return norms[::-1]  # the backward pass visits the blocks top to bottom


probe_x = torch.rand(32, 3, 32, 32)  # (B, 3, 32, 32) in [0, 1]
probe_y = torch.randint(0, 10, (32,))
gradient_norms = {}
for label, kwargs in [
    ("plain-56", dict(residual=False)),
    ("resnet-56", {}),
    ("resnet-56, pre-activation", dict(preact=True)),
]:
    torch.manual_seed(cfg.seed)
    net = cifar_resnet(
        **cifar_depth_kwargs(56), **kwargs, mean=[0.5] * 3, std=[0.25] * 3
    )
    gradient_norms[label] = block_gradient_norms(net, probe_x, probe_y)
    g = gradient_norms[label]
    print(
        f"{label:<26} gradient norm at block 1 / block {len(g)}: {g[0] / g[-1]:>8.1f}"
    )
fig = plots.lines(
    gradient_norms,
    x=list(range(1, 28)),
    log_y=True,
    xlabel="block (1 = next to the input)",
    ylabel="gradient norm (log scale)",
    title="Gradient reaching each block at initialisation",
)
plots.show(fig, cfg.run_dir / "gradients_at_init.html")

# %% [markdown]
# In the plain network the gradient grows by orders of magnitude on its way from
# the top block to the bottom one: with batch norm, deep plain networks suffer from
# *exploding*, not vanishing, gradients at initialisation, and the lowest layers
# take the largest, least informative steps. In the residual networks it changes
# far less over the 27 blocks; part of what change there is comes from the stages
# themselves (an early block's output has four and sixteen times more activations
# than a later one's, which enters the norm). The pre-activation network, whose
# shortcuts form an exact identity path, and the original one differ far less
# from each other than either differs from the plain network.
#
# ## Experiment
#
# ### Configuration
#
# The defaults of the config are the `full` profile: the CIFAR variant of
# ResNet-18, trained with the modern recipe of this part of the book (SGD with
# Nesterov momentum, weight decay on weights only, label smoothing
# {cite:p}`szegedy2016rethinking`, a one-cycle schedule
# {cite:p}`smith2019superconvergence`, random crops, flips and cutout
# {cite:p}`devries2017improved`), and the degradation study at the paper's scale.
# The `small` profile, which the book is built with, must run on a two-core CPU in
# about a minute and a half, so it trains a ResNet-8 (one basic block per stage,
# 16/32/64 channels, 78k parameters) for two epochs with `precision=auto`:
# bfloat16 (about twice as fast as float32) on a CPU with bfloat16 instructions,
# float32 on an older CPU, which would only emulate bfloat16, several times slower. With only two passes over the data augmentation slows learning
# more than it prevents overfitting, so `small` keeps only the flips. The study
# uses narrow networks on images average-pooled to 16×16. The fields that differ:

# %%
print(ResNetConfig.profile_table())  # the fields whose values differ
print(f"this run: profile {cfg.profile!r}")


# %% [markdown]
# ### Data
#
# CIFAR-10 {cite:p}`krizhevsky2009learning`: 32×32 colour images of ten classes.
# The images stay in [0, 1] (the model normalises them with statistics computed
# here from the training images). Augmentation runs on whole batches on the
# training device (`Augment`), and batches are cut from one tensor by a
# `BatchSampler` (`recipes.tensor_loader`), much faster than collating images one
# by one.


# %%
tensor_loader, as_unit_tensor = recipes.tensor_loader, recipes.as_unit_tensor
train_images, train_labels = data.subsample(
    *data.cifar10("train"), cfg.train_size, seed=cfg.seed
)
test_images, test_labels = data.subsample(
    *data.cifar10("test"), cfg.test_size, seed=cfg.seed
)
classes = data.cifar10_classes()
mean, std = data.channel_stats(train_images)  # training images only
train_loader = tensor_loader(
    as_unit_tensor(train_images, cfg.channels_last),
    torch.from_numpy(train_labels).long(),
    cfg.batch_size,
    shuffle=True,
)
test_x = as_unit_tensor(test_images, cfg.channels_last)
test_y = torch.from_numpy(test_labels).long()
test_loader = tensor_loader(test_x, test_y, 1000, shuffle=False)
print(f"images: train {len(train_images):,}, test {len(test_images):,}")
print("channel mean", np.round(mean, 4), "std", np.round(std, 4))
augment = Augment(crop=cfg.crop, flip=cfg.flip, cutout=cfg.cutout)
shown, _ = augment(
    torch.from_numpy(train_images[:16]).float() / 255,
    torch.from_numpy(train_labels[:16]),
)
fig = plots.image_grid(
    shown,
    titles=[classes[i] for i in train_labels[:16]],
    ncols=8,
    cell=80,
    title=f"Training images as the network sees them: {augment}",
)
plots.show(fig, cfg.run_dir / "batch.html")


# %% [markdown]
# ### The degradation problem, measured
#
# The study trains the networks of `degradation.nets` with the same recipe (SGD
# with Nesterov momentum, a one-cycle schedule, weight decay; no augmentation and
# no label smoothing, because we care about how well each network *fits* the
# training set) on the same images in the same order. The loss function records
# the accuracy of every training batch as it goes, so the curves below cost no
# extra passes.


# %%
class RecordingLoss:
    """Cross-entropy that also records each batch's accuracy (training only)."""

    def __init__(self):
        self.accuracy = []

    def __call__(self, logits, y):
        self.accuracy.append((logits.argmax(1) == y).float().mean().item())
        return F.cross_entropy(logits, y)


def degradation_study(cfg):
    """Train each network of cfg.degradation.nets; per-step loss and accuracy."""
    images, labels = data.subsample(
        *data.cifar10("train"), cfg.degradation.size, seed=cfg.seed
    )
    x = torch.from_numpy(images).float().div_(255)
    if cfg.degradation.resolution < 32:  # average-pool to the study's size
        x = F.avg_pool2d(x, 32 // cfg.degradation.resolution)
    if cfg.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    stats = x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3))
    study_cfg = dataclasses.replace(cfg, epochs=cfg.degradation.epochs, batch_size=128)
    w = cfg.degradation.width
    runs = {}
    for name in cfg.degradation.nets:
        residual, depth = network_name(name)
        utils.seed_everything(cfg.seed)  # same initial draws, same batches
        spec = ResNetSpec.depth(depth, widths=(w, 2 * w, 4 * w), residual=residual)
        model = spec.build(mean=stats[0].tolist(), std=stats[1].tolist())
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        loader = tensor_loader(x, torch.from_numpy(labels).long(), 128, True)
        opt = recipes.sgd(model, cfg.degradation.lr, weight_decay=5e-4)
        sched = recipes.one_cycle(
            opt, cfg.degradation.lr, cfg.degradation.epochs * len(loader)
        )
        loss_fn = RecordingLoss()
        t0 = time.perf_counter()
        history = fit(
            model,
            opt,
            loader,
            study_cfg,
            loss_fn=loss_fn,
            scheduler=sched,
            checkpoint=None,
            verbose=False,
        )
        runs[name] = dict(
            loss=history.steps,
            acc=loss_fn.accuracy,
            seconds=time.perf_counter() - t0,
            parameters=count_parameters(model),
        )
    return runs


if cfg.degradation.run:
    study = degradation_study(cfg)
    steps_per_epoch = (
        len(study[cfg.degradation.nets[0]]["loss"]) // cfg.degradation.epochs
    )
    window = max(1, steps_per_epoch // 3)
    epochs_axis = [
        (i + 1) / steps_per_epoch
        for i in range(len(study[cfg.degradation.nets[0]]["loss"]))
    ]
    print(
        f"{'network':<12}{'parameters':>11}{'final train loss':>18}"
        f"{'final train acc':>17}{'seconds':>9}"
    )
    for name, run in study.items():
        last = slice(-steps_per_epoch, None)  # the last epoch's batches
        print(
            f"{name:<12}{run['parameters']:>11,}"
            f"{np.mean(run['loss'][last]):>18.3f}"
            f"{np.mean(run['acc'][last]):>17.1%}{run['seconds']:>9.1f}"
        )
    final = {n: np.mean(r["loss"][-steps_per_epoch:]) for n, r in study.items()}
    nets = {network_name(n): n for n in study}  # (residual, depth) -> name
    for residual in (False, True):  # deeper vs shallower
        depths = sorted(d for r, d in nets if r == residual)
        if len(depths) > 1:
            deep, shallow = nets[residual, depths[-1]], nets[residual, depths[0]]
            verdict = "worse" if final[deep] > final[shallow] else "better"
            print(f"{deep} fits the training set {verdict} than {shallow}")
    for (residual, depth), name in nets.items():  # shortcuts vs none
        if residual and (False, depth) in nets:
            plain = nets[False, depth]
            verdict = "better" if final[name] < final[plain] else "worse"
            print(f"{name} fits the training set {verdict} than {plain}")
    res = cfg.degradation.resolution
    fig = plots.lines(
        {n: plots.smooth(r["loss"], window) for n, r in study.items()},
        x=epochs_axis,
        xlabel="epoch",
        ylabel="training loss",
        title=f"Training loss, {cfg.degradation.size:,} CIFAR-10 "
        f"images at {res}×{res} (moving average)",
    )
    plots.show(fig, cfg.run_dir / "degradation_loss.html")
    fig = plots.lines(
        {n: plots.smooth(r["acc"], window) for n, r in study.items()},
        x=epochs_axis,
        xlabel="epoch",
        ylabel="training accuracy",
        title="Training accuracy of the same runs (moving average)",
    )
    plots.show(fig, cfg.run_dir / "degradation_accuracy.html")
else:
    study = None
    print("degradation study skipped (--degradation.run=false)")


# %% [markdown]
# Read the table, the verdicts below it and the curves with the paper's Fig. 1 and
# Fig. 6 in mind. The plain networks are the same network at two depths: the deeper
# one has more capacity, and it nevertheless fits the training images *worse*:
# after the first epoch or so its training loss stays above the shallower
# network's and its accuracy below. The residual networks have the same layers
# plus shortcuts (and the same number of parameters as their plain twins: option A
# shortcuts have none). At the larger depth the shortcut is the difference between
# a network that learns and one that hardly leaves the chance level of 10% in a run
# this short; its first steps can be bumpier, but it soon overtakes both plain
# networks. Whether the deeper residual network also beats the shallower residual
# one depends on the length of the run: deeper networks need more steps, and in a
# few epochs the 20-layer one may still be ahead. In the paper's full runs (64,000
# steps) the 56-layer plain network keeps a higher training error than the 20-layer
# one to the end, while the 56-layer residual network ends below the 20-layer one.
#
# In the `small` profile the study is short and on reduced images (a few epochs on
# a few thousand images); the `full` profile runs it on all 50,000 images at
# 32×32, where the curves of the paper's Fig. 1 and Fig. 6 can be compared.
#
# ### Training a ResNet on CIFAR-10
#
# The classifier is trained with `fit`; a callback notes when the test accuracy
# first reaches `target_acc` (94% by default), the usual yardstick for fast CIFAR-10
# training. The schedule is fixed in advance and nothing is selected on the test
# set, so scoring it after every epoch only draws the curve.


# %%
class TimeToAccuracy(Callback):
    """Records the epoch and the wall time at which val_acc first reaches a target."""

    def __init__(self, target):
        self.target, self.epoch, self.seconds = target, None, None

    def on_fit_start(self, state):
        self.t0 = time.perf_counter()

    def on_epoch_end(self, state):
        acc = state.history.last.get("val_acc", 0.0)
        if self.epoch is None and acc >= self.target:
            self.epoch = state.epoch + 1
            self.seconds = time.perf_counter() - self.t0


utils.seed_everything(cfg.seed)
model = cfg.model.build(mean=mean.tolist(), std=std.tolist())
print(
    f"classifier: {weighted_layers(model)} weighted layers, "
    f"{count_parameters(model):,} parameters"
)
if cfg.channels_last:
    model = model.to(memory_format=torch.channels_last)
optimizer = recipes.sgd(
    model, cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
)
scheduler = recipes.one_cycle(
    optimizer, cfg.lr, cfg.epochs * len(train_loader), pct_start=cfg.warmup
)
timer = TimeToAccuracy(cfg.target_acc)
t_train = time.perf_counter()
history = fit(
    model,
    optimizer,
    train_loader,
    cfg,
    loss_fn=recipes.cross_entropy(cfg.label_smoothing),
    val_loader=test_loader if cfg.eval_every_epoch else None,
    scheduler=scheduler,
    batch_transform=augment,
    callbacks=(timer,),
)
train_seconds = time.perf_counter() - t_train
logits = predict(model, test_x)  # (N, 10), float32, eval mode
pred = logits.argmax(dim=1)  # (N,)
test = {
    "test_acc": (pred == test_y).double().mean().item(),
    "test_loss": F.cross_entropy(logits, test_y).item(),
}
print(
    f"test accuracy {test['test_acc']:.2%} after {cfg.epochs} epochs "
    f"({train_seconds:.0f} s of training)"
)
if timer.epoch is not None:
    print(
        f"reached {cfg.target_acc:.0%} test accuracy after epoch "
        f"{timer.epoch}, {timer.seconds:.0f} s"
    )
else:
    print(f"did not reach {cfg.target_acc:.0%} test accuracy")

# %%
steps_per_epoch_main = len(history.steps) // max(len(history.epochs), 1)
fig = plots.lines(
    {"training loss": plots.smooth(history.steps, max(1, steps_per_epoch_main // 10))},
    x=[(i + 1) / steps_per_epoch_main for i in range(len(history.steps))],
    xlabel="epoch",
    ylabel="loss (with label smoothing)",
    title="Training loss of every step (moving average)",
)
plots.show(fig, cfg.run_dir / "steps.html")
if cfg.eval_every_epoch:
    fig = plots.training_curves(
        history, title="ResNet on CIFAR-10, per epoch (val = the test set)"
    )
    plots.show(fig, cfg.run_dir / "curves.html")

# %% [markdown]
# The training loss includes label smoothing, which keeps it from approaching
# zero (for ten classes and $s = 0.1$ its minimum is about 0.5); the test loss is
# the plain cross-entropy. The loss drops fastest at the start and again at the
# end of the one-cycle schedule, when the learning rate anneals towards zero.
#
# ### Errors

# %%
fig = plots.confusion_matrix(
    test_y, pred, labels=classes, title="Confusion matrix on the test set"
)
plots.show(fig, cfg.run_dir / "confusion.html")
per_class = [(pred[test_y == c] == c).float().mean().item() for c in range(10)]
order = np.argsort(per_class)
print(
    "hardest classes: "
    + ", ".join(f"{classes[c]} {per_class[c]:.0%}" for c in order[:3])
)
print(
    "easiest classes: "
    + ", ".join(f"{classes[c]} {per_class[c]:.0%}" for c in order[::-1][:3])
)

# %% [markdown]
# The usual pattern on CIFAR-10: vehicles are easier than animals, and most errors
# fall between similar classes (cat and dog, automobile and truck, deer and horse),
# as the off-diagonal cells show.
#
# ### Where the network looks: Grad-CAM
#
# Grad-CAM {cite:p}`selvaraju2017grad` weights the feature maps $A_k$ of a layer by
# how much the score $y_c$ of a class changes with them, averaged over positions,
# $\alpha_k = \frac{1}{hw}\sum_{u,v} \partial y_c / \partial A_k[u, v]$, and shows
# $\mathrm{ReLU}(\sum_k \alpha_k A_k)$, upsampled to the image. We use the output
# of the last stage, whose maps the global average pooling turns into the class
# scores, and the predicted class:

# %%
if cfg.gradcam_images:
    last_stage = f"stages.{len(cfg.model.widths) - 1}"
    picks = torch.arange(cfg.gradcam_images)
    cam = vis.grad_cam(model, last_stage, test_x[picks])  # (B, 32, 32)
    images = test_images[picks.numpy()]  # uint8 (B, 3, 32, 32)
    shown = np.concatenate(
        [images.transpose(0, 2, 3, 1) / 255, vis.overlay(images, cam, alpha=0.5)]
    )
    titles = [f"{classes[test_y[i]]}→{classes[pred[i]]}" for i in picks] + [
        "Grad-CAM"
    ] * len(picks)
    fig = plots.image_grid(
        shown,
        titles=titles,
        ncols=len(picks),
        cell=90,
        title="Test images (true→predicted) and the "
        "Grad-CAM map of the predicted class",
    )
    plots.show(fig, cfg.run_dir / "gradcam.html")

# %% [markdown]
# The last stage works at 8×8 (ResNet-8) or 4×4 (ResNet-18) pixels, so the maps
# are coarse. Where the network is right, the map usually covers the object rather
# than the background; a network trained for two epochs is less consistent than a
# fully trained one.
#
# ### Saving the model
#
# The trained network is saved as its `state_dict` together with its spec,
# `cfg.model` (a `ResNetSpec`, plain values only), by `save_model`; `load_model`
# rebuilds the network from the spec and loads the weights, in one call, and
# the chapter on adversarial examples ({doc}`adversarial`) loads it that way. A
# fresh network loaded from the file must predict exactly as the trained one:

# %%
model.cpu()
save_model(cfg.run_dir / "model.pt", model, cfg.model)
restored, _ = load_model(cfg.run_dir / "model.pt")  # weights_only=True
check = test_x[:1000]  # a thousand test images are check enough
# Both on the CPU: a GPU's convolutions round differently from the CPU's.
same = torch.equal(predict(restored, check).argmax(1), predict(model, check).argmax(1))
print(
    f"saved {cfg.run_dir / 'model.pt'}; identical predictions after reloading: {same}"
)
assert same

# %% [markdown]
# ## Results

# %%
seconds = time.perf_counter() - T0
PAPER_ERRORS = {
    "ResNet-20": 0.0875,
    "ResNet-56": 0.0697,
    "ResNet-110": 0.0643,
}  # CIFAR-10 test error, paper's Table 6
metrics = {
    "test_acc": test["test_acc"],
    "test_loss": test["test_loss"],
    "parameters": count_parameters(model),
    "train_images": len(train_images),
    "test_images": len(test_images),
    "train_seconds": train_seconds,
    "epoch_to_target": timer.epoch,
    "seconds_to_target": timer.seconds,
}
millions = lambda n: f"{n / 1e6:.2f} M"
rows = results_table(
    cfg,
    metrics,
    seconds=seconds,
    title="CIFAR-10 test accuracy",
    columns={
        "test_acc": ("test accuracy", ".2%"),
        "config.epochs": ("epochs", "d"),
        "parameters": ("parameters", millions),
        "seconds_to_target": (f"s to {cfg.target_acc:.0%}", ".0f"),
    },
    references=[
        Reference(
            name,
            {
                "test_acc": 1 - error,
                "config.epochs": 164,
                "parameters": PAPER_CIFAR_PARAMETERS[int(name.split("-")[1])] * 1e6,
            },
            source="he2016deep",
            setting="Table 6",
        )
        for name, error in PAPER_ERRORS.items()
    ],
    notes=[
        f"this run: {seconds:.0f} s in all, {train_seconds:.0f} s of them "
        "training the classifier"
    ],
)
assert rows[0].values["test_acc"] == test["test_acc"]

# %% [markdown]
# The `small` run is a check that everything works and a measure of what two CPU
# epochs buy, not a replication: ResNet-8 is far smaller than the paper's networks
# and sees each image twice instead of 164 times. The `full` profile trains the
# CIFAR ResNet-18 (11 million parameters, more than the paper's CIFAR networks) with
# the modern recipe, and its record says how long a GPU took to reach 94%.
#
# The run's metrics, config, duration and machine go to `metrics.json` in the run
# folder; a `full` run's file is what gets recorded in `results/resnet.json`.

# %%
if study is not None:
    last = -steps_per_epoch
    metrics["degradation"] = {
        name: {
            "train_loss": float(np.mean(run["loss"][last:])),
            "train_acc": float(np.mean(run["acc"][last:])),
            "seconds": run["seconds"],
        }
        for name, run in study.items()
    }
utils.save_run(cfg.run_dir / "metrics.json", cfg, metrics, seconds)
print(f"metrics saved to {cfg.run_dir / 'metrics.json'}")

# %% [markdown]
# ## Summary
#
# - Deeper plain networks can train *worse* than shallower ones even with batch
#   norm: the degradation problem. It is an optimisation problem, not overfitting.
# - A residual block computes $\mathcal{F}(\mathbf{x}) + \mathbf{x}$
#   {eq}`resnet-residual`: the identity is the default, and the gradient reaches
#   every block through the shortcuts {eq}`resnet-gradient`.
# - Shortcuts are identities wherever the shapes agree; where a stage halves the
#   resolution they pad with zeros (option A) or project with a 1×1 convolution
#   (option B, {eq}`resnet-projection`). Bottleneck blocks make 50+ layers cheap.
# - Pre-activation blocks {eq}`resnet-pre` put BN and ReLU before the convolutions
#   and keep the shortcut path a pure identity, which matters most for very deep
#   networks.
# - Global average pooling {eq}`resnet-gap` replaces big fully connected layers:
#   fewer parameters, any input size.
# - Our ResNet-18/34/50 have exactly torchvision's 11.7M/21.8M/25.6M parameters
#   and the paper's 1.8/3.6/3.8 GFLOPs (multiply-adds).
#
# ## Exercises
#
# :::{exercise}
# :label: resnet-ex-1
# Derive the parameter count of the paper's CIFAR ResNet-(6n+2) with option A
# shortcuts as a function of $n$ (convolution weights, BN scales and shifts, the
# final linear layer), and check it against `cifar_resnet` for $n = 3, 5, 7, 9$.
# Which part grows with $n$, and which stage holds most of the parameters?
# :::
#
# :::{solution} resnet-ex-1
# :class: dropdown
# Stem: $27 \cdot 16$ weights and $2 \cdot 16$ BN parameters. A basic block of
# width $c$ (same width in and out) has $2 \cdot 9c^2$ weights and $4c$ BN
# parameters; the first block of stages 2 and 3 has $9 \cdot \tfrac{c}{2} \cdot c
# + 9c^2$ weights instead. The linear layer has $64 \cdot 10 + 10$. In all,
#
# $$
# N(n) = 432 + 32 + n\,(18 \cdot 16^2 + 4\cdot 16) + (n-1)(18 \cdot 32^2 + 4 \cdot 32)
#  + (n-1)(18\cdot 64^2 + 4 \cdot 64) + (13.5 \cdot 32^2 + 4\cdot 32)
#  + (13.5 \cdot 64^2 + 4 \cdot 64) + 650 .
# $$
#
# ```python
# def n_params(n):
#     stage = lambda c: 18 * c * c + 4 * c        # one block of width c
#     first = lambda c: 13.5 * c * c + 4 * c      # the stage's first block
#     return int(464 + n * stage(16) + (n - 1) * (stage(32) + stage(64))
#                + first(32) + first(64) + 650)
#
# for n in (3, 5, 7, 9):
#     net = cifar_resnet(blocks=(n, n, n))
#     print(6 * n + 2, n_params(n), count_parameters(net))
# ```
# The count grows linearly in $n$, by about $18\,(16^2 + 32^2 + 64^2) \approx 97{,}000$
# per unit of $n$, three quarters of it in the third stage: its 64-channel
# convolutions have 16 times the weights of the first stage's (but the same
# multiply-adds, since they run on 16 times fewer positions).
# :::
#
# :::{exercise}
# :label: resnet-ex-2
# Repeat the degradation study with pre-activation networks
# (`cifar_resnet(..., preact=True)`) and with the plain networks initialised with
# $\gamma = 0$ in the last BN of each block (`zero_init_residual=True` only acts on
# residual networks; write the plain version yourself). Does a plain network that
# starts close to "every block is the identity" still degrade?
# :::
#
# :::{solution} resnet-ex-2
# :class: dropdown
# Expect pre-activation networks of this depth to train about like the original
# residual ones: the difference the paper reports grows with depth and is large
# only at hundreds of layers. For the plain
# network, set the BN after each block's second convolution to zero,
# `nn.init.zeros_(block.bn2.weight)`: then each block outputs ReLU(0) = 0 and the
# network's output is constant, not the identity. Without a shortcut there is no
# way to start at the identity with these layers: a ReLU after a BN cannot pass
# negative values, which is one way to see why plain networks find the identity
# hard to learn. In practice such a network trains even worse, since the gradient
# of every lower block is zero until the blocks above become non-zero. The residual
# version with `zero_init_residual=True` starts exactly at the identity (each block
# is ReLU(x), and x is already non-negative after the first block) and is a common
# trick to train large ResNets faster {cite:p}`goyal2017accurate`.
# :::
#
# :::{exercise}
# :label: resnet-ex-3
# Replace global average pooling in the small ResNet by flattening the 64×8×8 maps
# into a linear layer. How many parameters does the network gain? Train both
# versions with the `small` profile's settings and compare the test accuracy, and
# the accuracy on test images shifted by 4 pixels with `torch.roll`.
# :::
#
# :::{solution} resnet-ex-3
# :class: dropdown
# ```python
# class FlattenHead(nn.Module):
#     def __init__(self, c=64, hw=8, k=10):
#         super().__init__()
#         self.fc = nn.Linear(c * hw * hw, k)
#
#     def forward(self, x):
#         return self.fc(x.flatten(1))
#
# net = cifar_resnet(blocks=(1, 1, 1), widths=(16, 32, 64), mean=mean, std=std)
# net.pool, net.fc = nn.Identity(), FlattenHead()
# print(count_parameters(net))  # 40,970 - 650 = 40,320 more
# ```
# The linear layer grows from 650 to 40,970 parameters, half the size of the whole
# ResNet-8. It can weigh a feature differently at each of the 64 positions, so it
# fits the training set a little faster but is more sensitive to where objects
# are: on shifted test images its accuracy typically drops more than that of the
# pooled network, whose scores are a sum over positions.
# :::
#
# :::{exercise}
# :label: resnet-ex-4
# Count the multiply-adds of one training step of ResNet-18 (CIFAR variant) on a
# batch of 512 (a backward pass costs about twice the forward one). From the
# `full` run's time per epoch, estimate the fraction of the GPU's peak bf16
# throughput that training achieved. Why is it far below 100%?
# :::
#
# :::{solution} resnet-ex-4
# :class: dropdown
# `sum(multiply_adds(cifar_resnet(**CIFAR_RESNET18), (1, 3, 32, 32)).values())` gives about 0.56
# GMACs per image forward, so about $3 \times 0.56 = 1.7$ GMACs, or 3.3 GFLOPs, per
# image per training step, and $50{,}000 \times 3.3 \approx 1.7 \times 10^{14}$
# floating-point operations per epoch. Divide by the epoch time to get the achieved
# FLOP/s and compare with the GPU's dense bf16 peak (about $10^{15}$ for an H100).
# The result is typically a few tens of percent: BN, ReLU, additions and the
# augmentation are memory-bound (they move data without much arithmetic), the
# small 4×4 and 8×8 maps of the last stages do not fill the GPU, and the data
# pipeline and per-step overheads (optimizer, Python) add up.
# :::
#
# ## References
#
# ```{bibliography}
# :filter: docname in docnames
# ```
