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
# (unet)=
# # U-Net and segmentation
#
# A classifier answers *what* is in an image; a segmentation network answers, for
# every pixel, *which object it belongs to*. U-Net {cite:p}`ronneberger2015unet`
# was designed in 2015 for microscope images, where a few dozen annotated images
# were all there was, and won that year's ISBI cell-tracking challenge in its two
# hardest categories by a large margin. Its shape (an encoder that shrinks the image to abstract features, a
# decoder that grows them back to full resolution, and skip connections that hand
# the decoder the fine detail the encoder had to give up) has become the default
# architecture for dense prediction, from medical imaging to the denoisers inside
# diffusion models. In this chapter we build the paper's network and a modern
# variant layer by layer, check their sizes and parameter counts, derive the
# losses and metrics of segmentation (cross-entropy, Dice, IoU), and train a U-Net
# to cut handwritten digits out of photographs.

# %%
import time

T0 = time.perf_counter()  # the whole chapter is timed, plots included

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from scratch import data, plots, recipes, utils, vis
from scratch.augment import random_flip
from scratch.config import ConfigError, choice, describe, non_negative, positive
from scratch.models.inspection import count_parameters
from scratch.models.unet import (
    LOSSES,
    PAPER_PARAMETERS,
    UNet,
    UNet2015,
    UNetSpec,
    dice_score,
    iou_score,
    paste_digits,
    scores,
    soft_dice,
    soft_iou,
    unet_parameters,
)
from scratch.results import Reference, results_table
from scratch.train import TrainConfig, evaluate, fit, predict

# The experiments a run can add to its main model: each changes one thing.
VARIANTS = {
    "transpose": "up",
    "bilinear": "up",
    "noskip": "skips",
    **{name: "loss" for name in LOSSES},
}


# %% [markdown]
# Everything in the chapter is driven by one config (explained in the Experiment
# section). It is read first, so that a mistyped option stops the script before
# any work is done:


# %% tags=["hide-input"]
@dataclass
class UNetConfig(TrainConfig):
    """U-Net segmentation. The defaults are the `full` profile (on a GPU)."""

    NAME = "unet"  # outputs go to out_dir/unet

    dataset: str = field(
        default="pets",
        metadata=choice(
            "digits",
            "pets",
            help="digits: MNIST digits pasted onto CIFAR-10 "
            "photos (made here, offline, in a second); pets: Oxford-IIIT Pet "
            "foreground masks (downloaded, 7,349 photos)",
        ),
    )
    image_size: int = field(
        default=256,
        metadata=positive(
            "side of the square images; must be divisible by 2**depth. 256 "
            "shows the pets' fur and ears; CIFAR-10's photos are 32"
        ),
    )
    train_size: int = field(
        default=3_680,
        metadata=positive(
            "images for training and validation: pets' whole trainval split "
            "(3,680); for digits, how many composites to make"
        ),
    )
    val_size: int = field(
        default=368,
        metadata=non_negative(
            "of those, held out for the validation curves (0 = none)"
        ),
    )
    test_size: int = field(
        default=3_669,
        metadata=positive(
            "test images, scored once at the end (pets' test split: 3,669)"
        ),
    )
    max_digits: int = field(
        default=2,
        metadata=positive(
            "digits: up to this many digits per image (the first always, each "
            "further one with probability 1/2); overlaps make the task harder"
        ),
    )
    model: UNetSpec = field(
        default_factory=UNetSpec,
        metadata=describe(
            "the main model: width and depth of the U, BatchNorm, upsampling"
        ),
    )
    loss: str = field(
        default="bce+dice",
        metadata=choice(
            *LOSSES,
            help="the main model's loss: BCE + Dice is a common, robust "
            "choice (per-pixel gradients and an overlap term)",
        ),
    )
    compare: tuple[str, ...] = field(
        default=("bilinear", "noskip", "bce", "dice"),
        metadata=choice(
            *VARIANTS,
            help="more models, each differing from the main one in one "
            "thing: its upsampling (transpose, bilinear), no skip connections "
            "(noskip), or its loss (bce, dice, bce+dice, iou)",
        ),
    )
    epochs: int = field(
        default=40,
        metadata=positive(
            "passes over the training images; U-Nets on a few thousand images "
            "keep improving for tens of epochs"
        ),
    )
    batch_size: int = field(
        default=32,
        metadata=positive("images per step: 32 pets at 256x256 fit any modern GPU"),
    )
    lr: float = field(
        default=1e-3,
        metadata=positive("peak learning rate of AdamW under a one-cycle schedule"),
    )
    weight_decay: float = field(
        default=1e-4,
        metadata=non_negative("AdamW's decoupled weight decay, on conv weights only"),
    )
    flip: bool = field(
        default=True,
        metadata=describe(
            "random horizontal flips, of the image and its mask together"
        ),
    )
    channels_last: bool = field(
        default=True,
        metadata=describe(
            "NHWC memory layout: faster convolutions with bf16 on CPUs and on "
            "GPUs' tensor cores"
        ),
    )

    PROFILES = {
        "tiny": dict(
            dataset="digits",
            image_size=32,
            train_size=1_024,  # tests
            val_size=64,
            test_size=128,
            epochs=2,
            model=dict(width=16, depth=2),
            batch_size=64,
            lr=1e-2,
            compare=("bilinear",),
            flip=False,
            precision="auto",
            threads=1,
        ),
        "small": dict(
            dataset="digits",
            image_size=32,
            train_size=4_500,  # CPU: 6,000 took 102 s here, over the 90 s budget
            val_size=500,
            test_size=1_000,
            model=dict(width=16, depth=3),
            epochs=4,
            batch_size=64,
            lr=3e-3,
            compare=("bilinear", "noskip"),
            flip=False,
            precision="auto",
            threads=2,
        ),
        "full": dict(precision="auto"),  # paper scale, GPU
    }

    def validate(self):
        if self.image_size % 2**self.model.depth:
            raise ConfigError(
                f"image_size={self.image_size} must be divisible "
                f"by 2**model.depth = {2**self.model.depth}"
            )
        if self.val_size >= self.train_size:
            raise ConfigError(
                f"val_size={self.val_size} must be smaller "
                f"than train_size={self.train_size}"
            )


cfg = UNetConfig.from_cli()
utils.seed_everything(cfg.seed)

# %% [markdown]
# ## Motivation
#
# The residual network of {doc}`resnet` ends in global average pooling: whatever
# its last feature maps say about *where* things are is averaged away, because a
# class label does not depend on it. Every stride-2 layer before that already
# halved the resolution, so that the deep layers, whose units see large parts of
# the image, are cheap. For segmentation we need both things at once: a label for
# every pixel, at full resolution, and a decision for that pixel that depends on
# a wide context. Whether a brown pixel belongs to a dog or to the sofa it lies on
# cannot be decided from the pixel and its neighbours; it takes the shape of the
# dog.
#
# The first networks for the task slid a classifier over the image, one patch per
# pixel: slow, because neighbouring patches share almost all their computation,
# and caught in a trade-off between context (large patches, more pooling) and
# precise localisation (small patches, little pooling). *Fully convolutional
# networks* {cite:p}`long2015fully` removed the redundancy: a classification
# network without its fully connected layers is a stack of convolutions, which
# produces a coarse map of class scores for an image of any size in one pass; a
# learned upsampling brings the map back to the input's size, and scores from
# earlier, finer layers are added to recover some detail. U-Net
# {cite:p}`ronneberger2015unet` makes the second half as deep as the first: the
# decoder *mirrors* the encoder level by level, and at each level it receives the
# encoder's full-resolution features. The trade-off disappears: context comes up
# from the bottom of the "U", localisation comes across from its left side.
#
# ## Theory
#
# ### Segmentation as per-pixel classification
#
# A network for binary segmentation maps an image $x$ to a logit $z_i$ for every
# pixel $i$; $p_i = \sigma(z_i)$ is its probability of being foreground and the
# predicted mask is $\hat y_i = [p_i > 0.5]$. With $K$ classes there are $K$
# logits per pixel and a softmax over them; the paper used $K = 2$ (cell and
# background), which is the same model as one logit $z = z_1 - z_0$ with a
# sigmoid.
#
# ### The architecture
#
# The paper's network (its Fig. 1) has two paths:
#
# - The **contracting path** (encoder) repeats, at each of five levels, two
#   unpadded 3×3 convolutions with ReLU, then (except at the bottom) a 2×2
#   max-pooling of stride 2. The number of channels doubles at each level, from 64
#   to 1024, while the map's side halves.
# - The **expanding path** (decoder) goes back up: a 2×2 *up-convolution* (a
#   transposed convolution of stride 2, below) doubles the side and halves the
#   channels; the encoder's map of the same level is **cropped** to the decoder's
#   size and **concatenated** with it; two 3×3 convolutions with ReLU follow. A
#   final 1×1 convolution maps the 64 channels to the class scores of each pixel.
#
# Because the convolutions are unpadded ("valid"), each one shrinks the map by 2
# pixels, and every output pixel has its full context inside the input: nothing
# is made up at the borders. For an input of side $H$, level $\ell = 0, \dots, 3$
# of the encoder turns $h_\ell$ into $h_{\ell+1} = (h_\ell - 4)/2$, the bottom
# turns $h_4$ into $h_4 - 4$, and each decoder level turns $h$ into $2h - 4$.
# Counting the pixels lost at each level in units of input pixels (level $\ell$
# works at scale $2^\ell$) gives, for a network of depth $d$ whose poolings all
# see even sizes,
#
# $$
# H_{\text{out}} = H - 4 \cdot 2^d - 2 \sum_{\ell=0}^{d-1} 4 \cdot 2^\ell
#               = H - 12 \cdot 2^d + 8,
# $$ (unet-size)
#
# which is $H - 184$ for $d = 4$: the paper's 572×572 tile gives a 388×388 map.
# The output describes the central part of the input, and the 92-pixel margin
# around it is context. To segment a large image, the paper tiles it with
# overlapping input tiles (*overlap-tile strategy*) and fills the missing context
# at the image's borders by mirroring the image.
#
# The modern U-Net that most code uses, and that we train, pads its convolutions
# ("same" convolutions), so that sizes only change at the poolings and
# upsamplings, the output has the input's size and no cropping is needed; and it
# puts BatchNorm {cite:p}`ioffe2015batch` after each convolution. Its input side
# must be divisible by $2^d$.
#
# ### Skip connections
#
# Four poolings divide the resolution by 16. The bottom of the U knows that there
# is a dog somewhere in a 16×16 block, but not along which pixel its outline
# runs; no upsampling can recover a detail that is no longer in the features. The
# skip connections hand it back: at each level the decoder's input is the
# concatenation of the upsampled coarse features ("what") with the encoder's
# features at that resolution ("where"), and its two convolutions learn to combine
# them. Unlike the residual connections of {doc}`resnet`, which *add* a layer's
# input to its output to ease optimisation, U-Net's skips *concatenate* features
# across the whole depth of the network to carry information.
#
# ### Learned and fixed upsampling
#
# A transposed convolution with kernel $w$ of size $k$ and stride $s$ lets every
# input pixel *paint* a $k \times k$ copy of the kernel, scaled by its value, into
# the output, at a position that moves by $s$ per input pixel (in one dimension
# and for one channel; channels add up as in a convolution):
#
# $$
# y[t] = \sum_{i,\, p \,:\; s i + p = t} w[p]\; x[i], \qquad 0 \le p < k .
# $$ (unet-transposed)
#
# It is the gradient of a stride-$s$ convolution with respect to its input
# {cite:p}`dumoulin2016guide`, and its weights are learned. With the paper's
# $k = s = 2$, the copies tile the output without overlap: each output pixel
# receives exactly one term, but which of the 2×2 kernel weights it gets depends
# on its position modulo 2. When $k$ is not a multiple of $s$ (say $k = 3$,
# $s = 2$) the copies overlap unevenly: some output pixels receive two or four
# terms, their neighbours one. Both patterns repeat with period $s$ and show up as
# *checkerboard artifacts* in the output, which the network must learn to cancel
# {cite:p}`odena2016deconvolution`. The alternative is to upsample with a fixed
# interpolation first and convolve afterwards (*resize-convolution*). Bilinear
# interpolation by a factor 2 makes each output pixel a weighted mean of its 2×2
# nearest input pixels, with weights $\tfrac{9}{16}, \tfrac{3}{16}, \tfrac{3}{16},
# \tfrac{1}{16}$ (closest first): smooth, and the same for every output pixel up
# to a reflection. Our `"bilinear"` U-Net follows it with a 1×1 convolution that
# halves the channels, as the transposed convolution does; the 3×3 convolutions
# that follow do the spatial mixing.
#
# ### Losses
#
# The paper trains with the cross-entropy of every pixel. For one logit per pixel
# and masks $y_i \in \{0, 1\}$ over the $N$ pixels of an image, that is the binary
# cross-entropy (BCE)
#
# $$
# \mathcal{L}_{\text{BCE}} = -\frac{1}{N} \sum_{i=1}^{N}
#   \bigl[ y_i \log p_i + (1 - y_i) \log (1 - p_i) \bigr], \qquad p_i = \sigma(z_i).
# $$ (unet-bce)
#
# Each pixel counts the same. When the foreground is small (a cell among
# background, a digit on a photograph), most of the loss and most of its gradient
# come from background pixels, and a network that predicts "background"
# everywhere already has a low loss and a high pixel accuracy. The paper counters
# this with a weight map: pixels of rare classes weigh more, and background pixels
# in the narrow gaps between touching cells weigh most,
#
# $$
# w(i) = w_c(i) + w_0 \exp\!\Bigl(-\frac{(d_1(i) + d_2(i))^2}{2 \sigma^2}\Bigr),
# $$ (unet-weights)
#
# where $w_c$ balances the class frequencies, $d_1$ and $d_2$ are the distances to
# the nearest and second-nearest cell, and $w_0 = 10$, $\sigma \approx 5$ pixels.
#
# Overlap measures are the other answer. The **Dice coefficient**
# {cite:p}`dice1945measures` of a predicted mask $\hat Y$ and a true mask $Y$
# (as sets of pixels) and the **intersection over union** (IoU), or Jaccard index
# {cite:p}`jaccard1912distribution`, are
#
# $$
# D = \frac{2\, |\hat Y \cap Y|}{|\hat Y| + |Y|}, \qquad
# J = \frac{|\hat Y \cap Y|}{|\hat Y \cup Y|} = \frac{|\hat Y \cap Y|}{|\hat Y| + |Y| - |\hat Y \cap Y|}.
# $$ (unet-dice-iou)
#
# Both are 1 for a perfect mask and 0 without overlap, and both ignore the true
# negatives, the background pixels predicted as background, however many there
# are: predicting "background" everywhere scores 0, not 99%. They measure the same
# thing on different scales,
#
# $$
# D = \frac{2J}{1 + J}, \qquad J = \frac{D}{2 - D},
# $$ (unet-dice-from-iou)
#
# (write $a = |\hat Y \cap Y|$ and $b = |\hat Y| + |Y|$: $D = 2a/b$ and
# $J = a/(b - a)$), so $D \ge J$, with equality only at 0 and 1. Averaged over
# images, though, the two can rank two models differently, because the map between
# them is not linear.
#
# A mask made by thresholding has no useful gradient. *Soft* versions replace
# the sets by the probabilities: $|\hat Y \cap Y| \to \sum_i p_i y_i$ and
# $|\hat Y| \to \sum_i p_i$. V-Net {cite:p}`milletari2016vnet` trained with
# $1 - D_{\text{soft}}$; with a smoothing constant $\epsilon$ (we use 1 pixel)
# that keeps the ratio defined for empty masks,
#
# $$
# \mathcal{L}_{\text{Dice}} = 1 - \frac{2 \sum_i p_i y_i + \epsilon}{\sum_i p_i + \sum_i y_i + \epsilon},
# \qquad
# \mathcal{L}_{\text{IoU}} = 1 - \frac{\sum_i p_i y_i + \epsilon}{\sum_i p_i + \sum_i y_i - \sum_i p_i y_i + \epsilon},
# $$ (unet-soft)
#
# computed per image and averaged over the batch. (V-Net squares the terms of the
# denominator, $\sum p_i^2 + \sum y_i^2$; for binary masks $y_i^2 = y_i$, and both
# forms are common.) The denominator scales with the size of the object, so a
# small object counts as much as a large one and the background cannot dominate.
# The price is a noisier, less local gradient: the derivative of
# $\mathcal{L}_{\text{Dice}}$ with respect to one $p_i$ depends on the sums over
# the whole image. A common compromise, and our default, is the sum
# $\mathcal{L}_{\text{BCE}} + \mathcal{L}_{\text{Dice}}$.
#
# ## Implementation
#
# ### The paper's network
#
# Each level's two convolutions are one block; `padding=0` gives the paper's
# valid convolutions, `padding=1` the modern same ones:
#
# ```{literalinclude} ../../code/scratch/models/unet.py
# :pyobject: conv_block
# ```
#
# The skip connections crop the encoder's map to the decoder's size:
#
# ```{literalinclude} ../../code/scratch/models/layers.py
# :pyobject: center_crop
# ```
#
# and the network reads Fig. 1 of the paper from left to right; `output_size`
# is {eq}`unet-size`, step by step, with the check that every pooling sees an
# even size:
#
# ```{literalinclude} ../../code/scratch/models/unet.py
# :pyobject: UNet2015
# ```
#
# The paper's 572×572 tile, followed through the network. A network of 31 million
# parameters on a 572×572 image is slow on a CPU, so we run it on PyTorch's
# `meta` device, which computes every shape and no value:

# %%
with torch.device("meta"):  # shapes only: no memory, no arithmetic
    paper_net = UNet2015()  # 1 input channel, 2 classes
levels = (
    [(f"encoder {i + 1}", b) for i, b in enumerate(paper_net.down)]
    + [("bottom", paper_net.bottom)]
    + [
        item
        for i, (up, b) in enumerate(zip(paper_net.up, paper_net.dec))
        for item in [(f"up-conv {i + 1}", up), (f"decoder {i + 1}", b)]
    ]
    + [("head", paper_net.head)]
)
shapes = {}
hooks = [
    module.register_forward_hook(
        lambda m, i, o, name=name: shapes.__setitem__(name, tuple(o.shape))
    )
    for name, module in levels
]
out = paper_net(torch.empty(1, 1, 572, 572, device="meta"))
for h in hooks:
    h.remove()
print(f"{'layer':<12}{'output (C, H, W)':>20}")
print(f"{'input':<12}{str((1, 572, 572)):>20}")
for name, _ in levels:
    print(f"{name:<12}{str(shapes[name][1:]):>20}")
assert tuple(out.shape) == (1, 2, 388, 388)
assert UNet2015.output_size(572) == 388 == 572 - 12 * 2**4 + 8  # (unet-size)

# %% [markdown]
# Not every tile size works: a pooling must never see an odd size. The valid
# sizes near the paper's, and what they give:

# %%
valid = {}
for size in range(540, 621):
    try:
        valid[size] = UNet2015.output_size(size)
    except ValueError:
        pass
print("input -> output: " + ", ".join(f"{i} -> {o}" for i, o in valid.items()))

# %% [markdown]
# Its parameters, level by level, from the model and from the formula of
# {doc}`../foundations/cnn`: a $k \times k$ convolution from $c$ to $c'$ channels
# has $c'(c k^2 + 1)$ parameters, the 2×2 up-convolution $c'(4c + 1)$:

# %%
widths = paper_net.widths
formula = {}
c = 1
for i, w in enumerate(widths[:-1]):
    formula[f"encoder {i + 1}"] = w * (9 * c + 1) + w * (9 * w + 1)
    c = w
formula["bottom"] = widths[4] * (9 * widths[3] + 1) + widths[4] * (9 * widths[4] + 1)
for i, (big, small) in enumerate(zip(widths[:0:-1], widths[-2::-1])):
    formula[f"up-conv {i + 1}"] = small * (4 * big + 1)
    formula[f"decoder {i + 1}"] = small * (9 * 2 * small + 1) + small * (9 * small + 1)
formula["head"] = 2 * (widths[0] + 1)
print(f"{'layer':<12}{'model':>12}{'formula':>12}")
for name, module in levels:  # meta tensors know their sizes: count them
    ours = count_parameters(module)
    print(f"{name:<12}{ours:>12,}{formula[name]:>12,}")
    assert ours == formula[name], name
total = count_parameters(paper_net)
print(f"{'total':<12}{total:>12,}{sum(formula.values()):>12,}")
assert total == sum(formula.values()) == PAPER_PARAMETERS
print(f"share of the bottom level: {formula['bottom'] / total:.0%}")

# %% [markdown]
# About 31 million parameters, almost half of them in the two convolutions of the
# bottom level, which works on the smallest maps: parameters sit where the channels are,
# computation where the pixels are.
#
# ### The modern U-Net
#
# The network we train swaps in padded convolutions and optional BatchNorm, and
# lets us choose the upsampling. `Upsample` is either the paper's up-convolution
# or bilinear interpolation followed by a 1×1 convolution:
#
# ```{literalinclude} ../../code/scratch/models/unet.py
# :pyobject: Upsample
# ```
#
# ```{literalinclude} ../../code/scratch/models/unet.py
# :pyobject: UNet
# ```
#
# `unet_parameters` counts the parameters from the formulas alone, without
# building a model; the tests check it against the models for many settings. For
# `width=64, depth=4` the modern network has a few thousand parameters more than
# the paper's (BatchNorm's scale and shift, minus the biases it makes redundant):

# %%
for kwargs in [
    dict(in_channels=1, num_classes=2, width=64, depth=4, batch_norm=False),
    dict(in_channels=1, num_classes=2, width=64, depth=4),
    dict(width=cfg.model.width, depth=cfg.model.depth, up="transpose"),
    dict(width=cfg.model.width, depth=cfg.model.depth, up="bilinear"),
    dict(width=cfg.model.width, depth=cfg.model.depth, skips=False),
]:
    net = UNet(**kwargs)
    n = count_parameters(net)
    assert n == unet_parameters(**kwargs)
    print(f"{n:>12,}  " + ", ".join(f"{k}={v}" for k, v in kwargs.items()))
x = torch.rand(2, 3, cfg.image_size, cfg.image_size)
print("output of the last one for a batch of 2:", tuple(net(x).shape))

# %% [markdown]
# The same-padding network with the paper's widths has exactly as many parameters
# as the paper's (padding adds none); the three configurations below it are the
# ones this run trains.
#
# ### Checkerboards
#
# Where the copies of {eq}`unet-transposed` overlap is easiest to see with a kernel
# of ones on a constant input: each output pixel then counts the copies that cover
# it. Bilinear upsampling of a constant stays constant; a 2×2 transposed
# convolution with random weights (as at initialisation) paints the same 2×2
# pattern into every block:

# %%
ones = torch.ones(1, 1, 6, 6)
counts = {
    f"k={k}, s=2: overlap count": F.conv_transpose2d(
        ones, torch.ones(1, 1, k, k), stride=2
    )[0, 0]
    for k in (2, 3, 4)
}
torch.manual_seed(cfg.seed)
random_up = nn.ConvTranspose2d(1, 1, 2, stride=2, bias=False)
bilinear = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
with torch.no_grad():
    maps = {
        **counts,
        "k=2, s=2, random kernel": random_up(ones)[0, 0],
        "bilinear": bilinear(ones)[0, 0],
    }
for name, m in maps.items():
    values = sorted({round(float(v), 3) for v in m.ravel()})
    print(f"{name:<26} size {tuple(m.shape)}, values {values}")
fig = plots.image_grid(
    np.stack([m[:12, :12].numpy() for m in maps.values()]),
    ncols=5,
    cell=170,
    titles=list(maps),
    colorscale="Viridis",
    title="Upsampling a constant 6×6 input by 2 (top-left 12×12 pixels of each output)",
)
plots.show(fig, cfg.run_dir / "checkerboard.html")

# %% [markdown]
# With $k = 3$ the interior alternates between 1, 2 and 4 copies: a checkerboard
# that the network has to undo with its next layers. With $k = 4$ (a multiple of
# the stride) the interior is even, and only the borders differ. With $k = 2$ the
# coverage is even too, but a random kernel still repeats the same 2×2 pattern,
# which training must smooth out. Bilinear interpolation cannot produce either.
#
# ### Losses and metrics
#
# The losses {eq}`unet-bce` and {eq}`unet-soft` work on logits and float masks of
# shape (B, 1, H, W), per image:
#
# ```{literalinclude} ../../code/scratch/models/unet.py
# :pyobject: soft_dice
# ```
#
# ```{literalinclude} ../../code/scratch/models/unet.py
# :pyobject: dice_loss
# ```
#
# and the metrics threshold the logits at 0 (a probability of 0.5):
#
# ```{literalinclude} ../../code/scratch/models/unet.py
# :pyobject: scores
# ```
#
# Two checks on random masks: the hard scores obey {eq}`unet-dice-from-iou`,
# and the soft versions agree with them when the probabilities are exactly 0
# or 1 (up to $\epsilon$):

# %%
g = torch.Generator().manual_seed(cfg.seed)
target = (torch.rand(8, 1, 16, 16, generator=g) < 0.3).float()
logits = torch.randn(8, 1, 16, 16, generator=g) + 2 * target  # partly right
dice, iou = scores(logits, target)
assert torch.allclose(dice, 2 * iou / (1 + iou), atol=1e-6)
hard = (logits > 0).float()
print("hard Dice:", np.round(dice.numpy(), 3))
print(
    "soft Dice of the hard mask:", np.round(soft_dice(hard, target, eps=0).numpy(), 3)
)
print("hard IoU: ", np.round(iou.numpy(), 3))
print("soft IoU of the hard mask: ", np.round(soft_iou(hard, target, eps=0).numpy(), 3))

# %% [markdown]
# ## Experiment
#
# ### Configuration
#
# The config at the top of the chapter holds every knob of the experiment. Its
# defaults are the `full` profile: the Oxford-IIIT Pet photographs
# {cite:p}`parkhi2012cats` at 256×256 and a U-Net of the paper's widths, on a GPU.
# The `small` profile, which the book is built with, has to train several U-Nets
# in about a minute on a two-core CPU: it makes its own task from data the book
# already has (MNIST digits pasted onto CIFAR-10 photographs, 32×32), and trains
# narrower, shallower networks for a few epochs with the channels-last memory
# layout and `precision=auto`: bfloat16 where the CPU has bfloat16 instructions
# (it made these U-Nets' convolutions about twice as fast as float32 on the CPU
# the book is built on), float32 where bfloat16 would only be emulated. The fields that differ:

# %%
print(UNetConfig.profile_table())  # the fields whose values differ
print(f"this run: profile {cfg.profile!r}")


# %% [markdown]
# ### Data
#
# The `digits` task: each image is a CIFAR-10 photograph with one or two MNIST
# digits pasted on it, each scaled to between half and nine tenths of the image's
# side, rotated by up to 25°, placed at random and painted in a random colour
# (dark on bright photographs, bright on dark ones). The mask is the digit's ink.
# A colour cannot separate the classes (digits come in every colour, and so do
# photographs): the network has to learn what strokes look like. The training
# composites are made from MNIST's and CIFAR-10's training images, the test
# composites from their test images, so test digits and backgrounds are new to
# the network. All images are made at once by one `grid_sample` per digit:
#
# ```{literalinclude} ../../code/scratch/models/unet.py
# :pyobject: paste_digits
# ```
#
# The `pets` task is the foreground of the Oxford-IIIT Pet photographs: 37 breeds
# of cats and dogs, each photograph with a mask of the animal.


# %%
def digit_composites(split, n, seed):
    """n composites from the split's CIFAR-10 photos and MNIST digits."""
    backgrounds, _ = data.cifar10(split)  # (50000, 3, 32, 32)
    digits, _ = data.mnist(split)  # (N, 28, 28)
    pick = np.random.default_rng(seed).choice(len(backgrounds), n, replace=False)
    backgrounds = backgrounds[np.sort(pick)]
    if cfg.image_size != backgrounds.shape[-1]:  # larger composites: resize
        backgrounds = (
            F.interpolate(
                torch.from_numpy(backgrounds).float(),
                size=cfg.image_size,
                mode="bilinear",
                antialias=True,
            )
            .round()
            .clamp(0, 255)
        )
        backgrounds = backgrounds.to(torch.uint8).numpy()
    return paste_digits(backgrounds, digits, seed=seed, max_digits=cfg.max_digits)


def load_images(cfg):
    """uint8 (train, val, test) pairs of images (N, 3, S, S), masks (N, S, S)."""
    if cfg.dataset == "digits":
        images, masks = digit_composites("train", cfg.train_size, cfg.seed)
        test = digit_composites("test", cfg.test_size, cfg.seed + 1)
    else:
        images, masks = data.oxford_pets("train", cfg.image_size)
        test_images, test_masks = data.oxford_pets("test", cfg.image_size)
        keep = np.random.default_rng(cfg.seed).permutation(len(images))
        images, masks = (images[keep[: cfg.train_size]], masks[keep[: cfg.train_size]])
        test = test_images[: cfg.test_size], test_masks[: cfg.test_size]
    order = np.random.default_rng(cfg.seed).permutation(len(images))
    val, train = order[: cfg.val_size], order[cfg.val_size :]
    return (images[train], masks[train]), (images[val], masks[val]), test


t = time.perf_counter()
train_set, val_set, test_set = load_images(cfg)
print(
    f"made in {time.perf_counter() - t:.1f} s: "
    + ", ".join(
        f"{name} {len(s[0]):,}"
        for name, s in [
            ("train", train_set),
            ("validation", val_set),
            ("test", test_set),
        ]
    )
    + " images of "
    + "×".join(map(str, train_set[0].shape[1:]))
)
foreground = train_set[1].mean()
print(f"foreground pixels: {foreground:.1%} of the training masks")
print(
    f"predicting 'background' everywhere: pixel accuracy {1 - foreground:.1%}, Dice 0"
)

# %% [markdown]
# The imbalance is what {eq}`unet-bce` alone would have to fight: a network that
# has learned nothing already gets most pixels right. A few training images, their
# masks drawn over them:

# %%
show_n = 8
images, masks = train_set[0][:show_n], train_set[1][:show_n]
fig = plots.image_grid(
    np.concatenate(
        [
            images,
            vis.overlay(images, masks, alpha=0.7, color=(0.0, 0.9, 1.0)).transpose(
                0, 3, 1, 2
            ),
        ]
    ),
    ncols=show_n,
    cell=110,
    titles=[f"image {i}" for i in range(show_n)]
    + [f"mask: {m.mean():.0%} of pixels" for m in masks],
    title="Training images (top) and their masks (cyan, bottom)",
)
plots.show(fig, cfg.run_dir / "examples.html")

# %% [markdown]
# The model standardises its input itself, with the per-channel statistics of the
# training images (so it takes images in [0, 1]). Training batches are flipped
# left-right at random, image and mask together (when `flip` is on), and switched
# to the channels-last layout on the way in:

# %%
mean, std = data.channel_stats(train_set[0])
print("training images: channel means", np.round(mean, 3), "stds", np.round(std, 3))


def loader(images, masks, training=False):
    dataset = TensorDataset(
        torch.from_numpy(images).float() / 255,  # [0, 1]
        torch.from_numpy(masks).float()[:, None],
    )  # (N,1,H,W)
    if training:
        return DataLoader(
            dataset,
            batch_size=cfg.batch_size,
            shuffle=True,
            num_workers=cfg.num_workers,
            drop_last=True,
        )
    return DataLoader(dataset, batch_size=256)


def augment(x, y):
    """fit's batch_transform, on the batch's device: joint flips, NHWC."""
    if cfg.flip:  # the mask rides along as a fourth channel: one flip for both
        both = random_flip(torch.cat([x, y], dim=1))
        x, y = both[:, :-1], both[:, -1:]
    if cfg.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y


train_loader = loader(*train_set, training=True)
val_loader = loader(*val_set) if cfg.val_size else None
test_loader = loader(*test_set)
METRICS = {"dice": dice_score, "iou": iou_score}


# %% [markdown]
# ### Training
#
# AdamW {cite:p}`loshchilov2019decoupled` with a one-cycle schedule
# {cite:p}`smith2019superconvergence`, weight decay on the convolution weights
# only. The paper trained with SGD, momentum 0.99 and one large tile per step;
# BatchNorm and Adam let us use batches of small images and a high learning rate
# instead. Every model of the comparison starts from the same seed, so that the
# models differ only in what the variant changes.


# %%
def train(name, up=cfg.model.up, skips=True, loss=cfg.loss):
    """Train one U-Net; return it, its history and its test scores."""
    utils.seed_everything(cfg.seed)
    spec = dataclasses.replace(cfg.model, up=up, skips=skips)  # one change
    model = spec.build(mean=mean, std=std)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(
        recipes.param_groups(model, cfg.weight_decay), lr=cfg.lr
    )
    # OneCycleLR divides by zero for fewer than 8 steps (tiny runs): pad it.
    scheduler = recipes.one_cycle(
        optimizer, cfg.lr, max(cfg.epochs * len(train_loader), 8)
    )
    print(
        f"--- {name}: up={up}, skips={skips}, loss={loss}, "
        f"{count_parameters(model):,} parameters"
    )
    history = fit(
        model,
        optimizer,
        train_loader,
        cfg,
        loss_fn=LOSSES[loss],
        val_loader=val_loader,
        metrics=METRICS,
        scheduler=scheduler,
        batch_transform=augment,
        checkpoint=f"{name}.pt",
    )
    test = evaluate(
        model, test_loader, loss_fn=LOSSES[loss], metrics=METRICS, prefix="test_"
    )
    seconds = sum(row["seconds"] for row in history.epochs)
    result = {
        "up": up,
        "skips": skips,
        "loss": loss,
        "parameters": count_parameters(model),
        "train_seconds": seconds,
        "images_per_second": len(train_loader)
        * cfg.batch_size
        * len(history.epochs)
        / seconds,
        "test_dice": test["test_dice"],
        "test_iou": test["test_iou"],
    }
    print(f"test Dice {result['test_dice']:.3f}, IoU {result['test_iou']:.3f}")
    return model, history, result


model, history, main_result = train("main")

# %%
fig = plots.training_curves(
    history, title=f"U-Net ({cfg.model.up}, {cfg.loss}) on {cfg.dataset}"
)
plots.show(fig, cfg.run_dir / "curves.html")


# %% [markdown]
# ### Predictions
#
# Predicted masks on test images the network has never seen, next to the true
# ones, and where they disagree: green pixels are found digit (true positives),
# orange ones are false alarms (false positives), blue ones are missed
# (false negatives):


# %%
def error_overlay(images, pred, truth):
    """Images with true positives green, false positives orange and false
    negatives blue: (B, H, W, 3) in [0, 1]."""
    out = vis.overlay(images, pred & truth, alpha=0.75, color=(0.0, 0.62, 0.45))
    out = vis.overlay(out, pred & ~truth, alpha=0.9, color=(0.9, 0.62, 0.0))
    return vis.overlay(out, ~pred & truth, alpha=0.9, color=(0.0, 0.45, 0.7))


test_x, test_y = test_loader.dataset.tensors  # (N,3,H,W), (N,1,H,W)
logits = predict(model, test_x)  # (N, 1, H, W)
test_dice, test_iou = scores(logits, test_y)  # (N,) each
pred = (logits[:, 0] > 0).numpy()
truth = test_y[:, 0].numpy() > 0.5
test_images = test_set[0]
shown = np.arange(show_n)
fig = plots.image_grid(
    np.concatenate(
        [
            test_images[shown],
            vis.overlay(
                test_images[shown], truth[shown], alpha=0.7, color=(0.0, 0.9, 1.0)
            ).transpose(0, 3, 1, 2),
            vis.overlay(
                test_images[shown],
                torch.sigmoid(logits[shown, 0]),
                alpha=0.7,
                color=(1.0, 0.2, 0.8),
            ).transpose(0, 3, 1, 2),
            error_overlay(test_images[shown], pred[shown], truth[shown]).transpose(
                0, 3, 1, 2
            ),
        ]
    ),
    ncols=show_n,
    cell=110,
    titles=[f"test image {i}" for i in shown]
    + ["truth"] * show_n
    + ["predicted probability"] * show_n
    + [f"Dice {test_dice[i]:.2f}" for i in shown],
    title="Test images, true masks (cyan), predicted probabilities (magenta), "
    "errors (green hit, orange false alarm, blue miss)",
)
plots.show(fig, cfg.run_dir / "predictions.html")

# %% [markdown]
# Averages hide the failures. The Dice of each test image, and the images the
# model did worst on:

# %%
fig = plots.histograms(
    {"Dice per test image": test_dice, "IoU per test image": test_iou},
    bins=40,
    xlabel="score",
    title="Per-image scores on the test set",
)
plots.show(fig, cfg.run_dir / "scores.html")
print(
    f"per-image Dice: mean {test_dice.mean():.3f}, median "
    f"{test_dice.median():.3f}; below 0.5 for "
    f"{(test_dice < 0.5).float().mean():.1%} of the test images"
)
worst = test_dice.argsort()[:show_n].numpy()
fig = plots.image_grid(
    np.concatenate(
        [
            test_images[worst],
            error_overlay(test_images[worst], pred[worst], truth[worst]).transpose(
                0, 3, 1, 2
            ),
        ]
    ),
    ncols=show_n,
    cell=110,
    titles=[f"test image {i}" for i in worst]
    + [f"Dice {test_dice[i]:.2f}" for i in worst],
    title="The worst test images (top) and their errors (bottom)",
)
plots.show(fig, cfg.run_dir / "worst.html")

# %% [markdown]
# Most errors sit on the outline of the digits, one pixel wide: at 32×32 a
# stroke is only two or three pixels thick, and the mask, made by thresholding a
# resampled digit, is itself uncertain there. The worst images tend to be those
# where the digit's colour is close to the photograph's, or where two digits
# overlap.
#
# ### What the variants change
#
# Each further model differs from the main one in one thing (`compare` in the
# config): bilinear upsampling instead of the learned up-convolution, no skip
# connections, or another loss.

# %%
results = {f"main ({cfg.model.up}, {cfg.loss})": main_result}
curves = {
    f"main ({cfg.model.up}, {cfg.loss})": [r.get("val_dice") for r in history.epochs]
}
for variant in cfg.compare:
    kind = VARIANTS[variant]
    settings = {
        "up": dict(up=variant),
        "skips": dict(skips=False),
        "loss": dict(loss=variant),
    }[kind]
    _, h, r = train(variant, **settings)
    results[variant] = r
    curves[variant] = [row.get("val_dice") for row in h.epochs]

print(
    f"{'model':<28}{'up':>10}{'skips':>7}{'loss':>10}{'params':>10}"
    f"{'img/s':>8}{'test Dice':>11}{'test IoU':>10}"
)
for name, r in results.items():
    print(
        f"{name:<28}{r['up']:>10}{str(r['skips']):>7}{r['loss']:>10}"
        f"{r['parameters']:>10,}{r['images_per_second']:>8.0f}"
        f"{r['test_dice']:>11.3f}{r['test_iou']:>10.3f}"
    )
if val_loader is not None:
    fig = plots.lines(
        curves,
        x=list(range(1, cfg.epochs + 1)),
        xlabel="epoch",
        ylabel="validation Dice",
        title="Validation Dice of each model, epoch by epoch",
    )
    plots.show(fig, cfg.run_dir / "variants.html")

# %% [markdown]
# How to read the table. The bilinear model has fewer parameters (a 1×1
# convolution instead of a 2×2 one at each level) and no kernel that can paint a
# checkerboard, at the price of a fixed upsampling; on this task the two usually
# end up close, so look at the difference together with the spread you would get
# from another seed (exercise 3). Without skip connections the decoder only sees
# what came up through the bottleneck, at $1/2^d$ of the resolution (4×4 pixels
# in the `small` profile), and the outlines of thin
# strokes have to be reinvented from it: this is the comparison that shows what the
# skips are for. The loss variants (in the `full` profile) change what is
# optimised; the table reports the same metrics for all of them, so they compare,
# but their losses do not.
#
# ## Results

# %%
seconds = time.perf_counter() - T0
# Table 2 of the paper, IoU on the ISBI 2015 cell-tracking data sets: other data,
# other images, printed for scale only.
PAPER_IOU = {"PhC-U373": 0.9203, "DIC-HeLa": 0.7756}
metrics = {
    "test_dice": main_result["test_dice"],
    "test_iou": main_result["test_iou"],
    "val_dice": history.last.get("val_dice"),
    "parameters": main_result["parameters"],
    "train_images": len(train_set[0]),
    "test_images": len(test_set[0]),
    "variants": results,
}
rows = results_table(
    cfg,
    metrics,
    seconds=seconds,
    title="segmentation, test set",
    columns={
        "config.dataset": ("data", ""),
        "test_dice": ("test Dice", ".3f"),
        "test_iou": ("test IoU", ".3f"),
        "config.epochs": ("epochs", "d"),
        "parameters": ("params", ","),
    },
    # The paper prints no parameter count: PAPER_PARAMETERS is its network's,
    # counted above from its layer widths.
    references=[
        Reference(
            name,
            {
                "config.dataset": "cells",
                "test_iou": value,
                "parameters": PAPER_PARAMETERS,
            },
            source="ronneberger2015unet",
            setting="Table 2",
        )
        for name, value in PAPER_IOU.items()
    ],
)
assert rows[0].values["test_dice"] == main_result["test_dice"]

# %% [markdown]
# The paper's numbers are for other images (phase-contrast and DIC microscopy of
# cells, a few dozen training images) and only say what a U-Net reached on the
# task it was made for; the `full` profile's Oxford-IIIT Pet run is this
# chapter's real-world test. The `small` run is a check that everything works on a
# task small enough for a CPU, not a benchmark.
#
# The run's metrics, config, duration and machine go to `metrics.json` in the run
# folder; a `full` run's file is what gets recorded in `results/unet.json`.

# %%
utils.save_run(cfg.run_dir / "metrics.json", cfg, metrics, seconds)
print(f"metrics saved to {cfg.run_dir / 'metrics.json'}")

# %% [markdown]
# ## Summary
#
# - Segmentation is classification of every pixel. A U-Net gets context from an
#   encoder that pools the image down and precise outlines from a decoder that
#   upsamples it back, with **skip connections** that concatenate the encoder's
#   features at each resolution into the decoder.
# - The paper's network uses valid convolutions: a 572×572 tile gives a 388×388
#   output {eq}`unet-size`, large images are segmented tile by tile with mirrored
#   borders, and it has 31,030,658 parameters. The modern version pads its
#   convolutions (output size = input size) and adds BatchNorm.
# - Upsampling is learned (transposed convolution {eq}`unet-transposed`, which can
#   leave checkerboard patterns) or fixed (bilinear interpolation, then a
#   convolution).
# - Pixel-wise cross-entropy {eq}`unet-bce` is dominated by the background when the
#   foreground is small. Dice and IoU {eq}`unet-dice-iou` ignore true negatives;
#   they are monotone functions of each other {eq}`unet-dice-from-iou`, and their
#   soft versions {eq}`unet-soft` are losses. BCE + Dice combines local
#   gradients with an overlap term.
# - Look at per-image scores and the worst images, not only at the mean.
#
# ## Exercises
#
# :::{exercise}
# :label: unet-ex-1
# Which input sizes can the paper's `UNet2015` take? Show that they are exactly
# $H = 188 + 16m$ for $m = 0, 1, 2, \dots$, and that the output is then
# $H - 184 = 4 + 16m$. What is the fraction of the input's pixels that the output
# covers for the paper's tile, and why does that argue for large tiles?
# :::
#
# :::{solution} unet-ex-1
# :class: dropdown
# Work up from the bottom. Call $h_4$ the side of the map that enters the bottom
# level. Each encoder level halves $h_\ell - 4$, so going backwards
# $h_\ell = 2 h_{\ell+1} + 4$: $h_3 = 2h_4 + 4$, $h_2 = 4h_4 + 12$,
# $h_1 = 8h_4 + 28$ and $H = h_0 = 16 h_4 + 60$. Every pooling then sees an even
# size ($h_\ell - 4 = 2h_{\ell+1}$) whatever the integer $h_4$. The decoder turns
# the bottom's $h_4 - 4$ into $2(\cdot) - 4$ four times, which gives
# $16(h_4 - 4) - 60 = 16 h_4 - 124$: positive only for $h_4 \ge 8$. With
# $h_4 = 8 + m$: $H = 188 + 16m$ and an output of $4 + 16m = H - 184$, as
# {eq}`unet-size` says. The paper's 572 is $m = 24$. Checked with
# `UNet2015.output_size`:
#
# ```python
# def is_valid(h):
#     try:
#         UNet2015.output_size(h)
#         return True
#     except ValueError:
#         return False
#
# assert [h for h in range(1, 700) if is_valid(h)] == list(range(188, 700, 16))
# ```
#
# For 572 → 388 the output covers $388^2 / 572^2 \approx 46\%$ of the input's
# pixels: more than half of the computation goes into context that is then
# cropped away. The margin is a constant 92 pixels per side, so larger tiles waste
# a smaller fraction; memory is what limits them, which is why the paper favoured
# large tiles over large batches (a batch of one tile).
# :::
#
# :::{exercise}
# :label: unet-ex-2
# Segment an image larger than one tile with the overlap-tile strategy: pad a
# (1, 1, 900, 900) image by mirroring, cut it into 572×572 tiles whose 388×388
# outputs cover the image, run an (untrained)
# `UNet2015(widths=(8, 16, 32, 64, 128))` on each tile and assemble the output.
# Compare with one pass of the network over the whole padded image. Why must the
# step between tiles be a multiple of 16 for the two to agree exactly?
# :::
#
# :::{solution} unet-ex-2
# :class: dropdown
# ```python
# net = UNet2015(widths=(8, 16, 32, 64, 128)).eval()
# image = torch.rand(1, 1, 900, 900)
# tile, out_tile, margin = 572, 388, 92
# step = 384                                     # <= 388, a multiple of 16
# n = -(-(900 - out_tile) // step) + 1           # tiles per side: 3
# side = (n - 1) * step + out_tile               # 1156 output pixels per side
# padded = F.pad(image, (margin, margin + side - 900) * 2, mode="reflect")
# out = torch.zeros(1, 2, side, side)
# with torch.no_grad():
#     for i in range(n):
#         for j in range(n):
#             r, c = i * step, j * step          # the tile's corner
#             out[..., r:r + out_tile, c:c + out_tile] = net(
#                 padded[..., r:r + tile, c:c + tile])
#     whole = net(padded)                        # 1156 + 184 = 1340: valid
# print(torch.equal(out, whole) or torch.allclose(out, whole, atol=1e-5))
# segmentation = out[..., :900, :900]
# ```
# With valid convolutions every output pixel depends only on input pixels inside
# its own tile, so nothing near a tile's border is made up, but the four 2×2
# poolings group pixels in pairs, fours, ..., sixteens counted from the tile's
# corner. A tile that starts 388 pixels further on (not a multiple of 16) groups
# its pixels differently from the one pass over the whole image: both outputs are
# valid segmentations, but not the same numbers. With a step of 384 the tiles'
# pooling grids line up with the whole image's and the results agree exactly; the
# tiles' outputs then overlap by 4 pixels. With padded convolutions tiles never
# agree exactly near their borders, where zeros leak in, and overlapping outputs
# are blended instead.
# :::
#
# :::{exercise}
# :label: unet-ex-3
# Is the difference between the `transpose` and `bilinear` models in this run's
# table larger than the noise? Train both with three seeds each
# (`--seed=1 --compare=bilinear`, ...), report mean and standard deviation of the
# test Dice, and compare the training speed. Then look for checkerboards: run
# each trained model on a test image and plot the predicted *logits* (not the
# thresholded mask), and the mean logit over the test set at even and at odd
# pixel positions.
# :::
#
# :::{solution} unet-ex-3
# :class: dropdown
# ```python
# import json, subprocess, sys
# for seed in (1, 2, 3):
#     subprocess.run([sys.executable, "code/vision/unet.py", "--profile=small",
#                     f"--seed={seed}", "--compare=bilinear",
#                     f"--out_dir=runs/seed{seed}"], check=True)
# runs = [json.load(open(f"runs/seed{s}/unet/metrics.json")) for s in (1, 2, 3)]
# for name in runs[0]["metrics"]["variants"]:
#     d = np.array([r["metrics"]["variants"][name]["test_dice"] for r in runs])
#     print(name, d.mean(), d.std(ddof=1))
# z = predict(model, test_x)[:, 0]               # (N, H, W) logits
# parity = {f"({i}, {j})": z[:, i::2, j::2].mean().item()
#           for i in (0, 1) for j in (0, 1)}
# print(parity)
# ```
# On the digits task, the difference between the two upsamplings is usually of
# the order of the seed-to-seed spread: both work. Nor do the parity means show
# a checkerboard: for both models they agree closely, because the 3×3
# convolutions after each upsampling, and training, smooth a 2×2 pattern away.
# Checkerboards are easier to provoke with a 3×3 transposed kernel of stride 2
# (uneven overlap), with several transposed convolutions in a row and nothing in
# between, or in generative models, which must paint every pixel of an image
# from a small code {cite:p}`odena2016deconvolution`. The bilinear model is a
# little faster here: a 1×1 convolution costs less than a 2×2 transposed one.
# :::
#
# :::{exercise}
# :label: unet-ex-4
# Give the network no context: train the small profile with `--depth=1` and then
# `--depth=2` (the receptive field shrinks with the depth), and compare the test
# Dice with the default depth 3. At which depth does the receptive field cover a
# whole digit? Compute the receptive field of the modern U-Net of depth $d$.
# :::
#
# :::{solution} unet-ex-4
# :class: dropdown
# The receptive field is easiest to measure: the input pixels on which one output
# pixel's gradient is not zero. Random weights can switch ReLUs off and hide
# paths, so make all weights positive first:
#
# ```python
# for d in (1, 2, 3):
#     net = UNet(width=4, depth=d, batch_norm=False).eval()
#     with torch.no_grad():
#         for p in net.parameters():
#             p.copy_(p.abs() + 0.01)            # every ReLU passes
#     sizes = set()
#     for offset in range(2 ** d):               # position on the pooling grid
#         x = torch.rand(1, 3, 256, 256, requires_grad=True)
#         net(x)[0, 0, 128 + offset, 128 + offset].backward()
#         rows = (x.grad.abs().sum((0, 1)) > 0).nonzero()[:, 0]
#         sizes.add(int(rows.max() - rows.min() + 1))
#     print(d, sorted(sizes))
# ```
# With transposed convolutions this gives 18 pixels for depth 1, 44 for depth 2
# and 88 to 100 for depth 3, depending on where the pixel sits on the pooling grid
# (bilinear upsampling adds a few pixels). By hand: each 3×3 convolution at level
# $\ell$ (scale $2^\ell$) adds $2 \cdot 2^\ell$ pixels and each pooling into
# level $\ell + 1$ adds $2^\ell$, about $13 \cdot 2^d - 8$ in all. The digits
# here are 16 to 29 pixels tall, so depth 1 cannot see a whole digit and decides
# from a patch of strokes and colour; expect a clear drop in Dice at depth 1 and
# a small one at depth 2, which sees the digit but little around it. The receptive
# field is not the whole story: units near its edge contribute little (the
# *effective* receptive field is much smaller {cite:p}`luo2016understanding`).
# :::
#
# :::{exercise}
# :label: unet-ex-5
# Implement the paper's weight map {eq}`unet-weights` for the digits task, with
# the digits of an image as the "cells": $w_c$ balancing the foreground and the
# background, $d_1$, $d_2$ the distances to the nearest and second-nearest digit
# (`scipy.ndimage.distance_transform_edt` of each digit's mask), $w_0 = 10$,
# $\sigma = 2$ pixels (our images are 32×32). Where are the weights large? Train
# with the weighted BCE, `F.binary_cross_entropy_with_logits(z, y, weight=w)`.
# :::
#
# :::{solution} unet-ex-5
# :class: dropdown
# `paste_digits` combines the digits into one mask; to know which pixel belongs
# to which digit, label the mask's connected components (touching digits merge,
# which is exactly where the paper's term matters, but it is a good start):
#
# ```python
# from scipy import ndimage
#
# def weight_map(mask, w0=10.0, sigma=2.0):
#     """mask: (H, W) of 0/1 -> (H, W) float weights, eq. (unet-weights)."""
#     fg = mask.mean()
#     w = np.where(mask > 0, 0.5 / max(fg, 1e-3), 0.5 / max(1 - fg, 1e-3))
#     labels, n = ndimage.label(mask)
#     if n >= 2:
#         d = np.stack([ndimage.distance_transform_edt(labels != k)
#                       for k in range(1, n + 1)])  # distance to each digit
#         d.sort(axis=0)
#         gap = w0 * np.exp(-(d[0] + d[1]) ** 2 / (2 * sigma ** 2))
#         w = w + gap * (mask == 0)                  # background pixels only
#     return w.astype(np.float32)
#
# weights = torch.from_numpy(np.stack([weight_map(m) for m in train_set[1]]))
# ```
# The class term makes a foreground pixel weigh several times a background
# pixel (the inverse of their frequencies); the gap term adds up to $w_0$ on
# background pixels that lie in a narrow gap between two digits, where
# $d_1 + d_2$ is small, which teaches the network to keep touching objects
# apart. To train with it, put the weights in the dataset as a second channel of
# the target (`y = torch.stack([mask, weight], 1)`) and write a loss that splits
# them: `F.binary_cross_entropy_with_logits(z, y[:, :1], weight=y[:, 1:])`.
# :::
#
# :::{exercise}
# :label: unet-ex-6
# Compare the losses: train the small profile with `--compare=bce,dice,iou`
# (the main model uses BCE + Dice), and compare test Dice and IoU. Then, for the
# BCE model, look at the fraction of pixels predicted as foreground against the
# true fraction, and at the Dice you get with thresholds other than 0.5. What
# does that say about why BCE alone falls behind here?
# :::
#
# :::{solution} unet-ex-6
# :class: dropdown
# ```python
# bce_model, _, _ = train("bce-only", loss="bce")
# z = predict(bce_model, test_x)                 # (N, 1, H, W) logits
# print("predicted foreground", (z > 0).float().mean().item(),
#       "true", test_y.mean().item())
# for threshold in (0.2, 0.3, 0.4, 0.5):
#     logit = np.log(threshold / (1 - threshold))
#     print(threshold, scores(z - logit, test_y)[0].mean().item())
# ```
# In a run of ours (seed 0, the small profile) BCE + Dice came out ahead, Dice
# alone close behind, and BCE alone and the IoU loss further back; with one seed
# and four epochs treat the ranking as a hint, not a result (exercise 3 shows how
# to measure the spread). In that run the BCE model predicted slightly less
# foreground than there is, and a threshold a little below 0.5 recovered only a
# small part of its gap: the difference lies mostly in what the models learned,
# not in where the probabilities are cut. BCE treats every pixel alike, so an image
# with a small, thin digit (few foreground pixels) contributes little to it; the
# Dice loss is computed per image and averaged, so every image's digit counts the
# same, which is also exactly how the test metric counts. The overlap losses
# have their own weakness: the gradient for one pixel depends on sums over the
# whole image and is noisy early in training, when the masks are poor. Adding BCE
# gives every pixel a clean local gradient from the first step, which is why the
# sum is a popular default.
# :::
#
# ## References
#
# ```{bibliography}
# :filter: docname in docnames
# ```
