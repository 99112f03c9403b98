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
# (lenet)=
# # LeNet-5: convolutional networks
#
# LeNet-5 {cite:p}`lecun1998gradient` was part of a system that read several
# million bank cheques a day in the late 1990s. With 60,000 trainable parameters
# it made fewer than one error in a hundred on MNIST, and its recipe (convolutions
# that share weights, pooling, a few fully connected layers on top) is still the
# skeleton of the networks that classify images today. In this chapter we build it layer by layer as the paper
# describes it, check every parameter count against the paper, train it with the
# book's training loop and look inside it.

# %%
import time

T0 = time.perf_counter()  # the whole chapter is timed, plots included

from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch
from matplotlib import font_manager
from PIL import Image, ImageDraw, ImageFont
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, default_collate

from scratch import data, plots, utils
from scratch.config import ConfigError, describe, in_range, non_negative, positive
from scratch.models.inspection import parameter_counts
from scratch.models.lenet import (
    PAPER_PARAMETERS,
    LeNet5,
    LeNetSpec,
    pad_and_normalize,
    pixel_stats,
    random_shift,
)
from scratch.models.spec import load_model
from scratch.results import Reference, results_table
from scratch.train import TrainConfig, evaluate, fit, predict

# %% [markdown]
# Everything in the chapter is driven by one config (explained in the
# Experiment section). It is read first, so that a mistyped option stops the
# script before any work is done:


# %% tags=["hide-input"]
@dataclass
class LeNetConfig(TrainConfig):
    """LeNet-5 on MNIST. The defaults are the `full` profile (on a GPU): the
    paper's setting, all 60,000 training images, no hold-out, no distortions."""

    NAME = "lenet"  # outputs go to out_dir/lenet

    train_size: int = field(
        default=60_000,
        metadata=positive(
            "images drawn (seeded, class-stratified) from MNIST's training "
            "split; the paper used all 60,000"
        ),
    )
    val_size: int = field(
        default=0,
        metadata=non_negative(
            "of those, held out for the validation curves and never trained "
            "on (0 = no validation: the full profile trains on all of them, "
            "as the paper did)"
        ),
    )
    test_size: int = field(
        default=10_000,
        metadata=positive("test images, scored once at the end (MNIST has 10,000)"),
    )
    epochs: int = field(
        default=20, metadata=positive("passes over the training images: the paper's 20")
    )
    batch_size: int = field(
        default=128,
        metadata=positive(
            "images per SGD step: keeps a CPU busy, still many steps an epoch"
        ),
    )
    lr: float = field(
        default=0.1,
        metadata=positive(
            "peak of the one-cycle schedule; standardised inputs and LeCun "
            "initialisation tolerate 0.1"
        ),
    )
    warmup: float = field(
        default=0.2,
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
            "Nesterov momentum: 0.9 averages gradients over about 10 steps"
        ),
    )
    weight_decay: float = field(
        default=5e-4,
        metadata=non_negative(
            "L2 penalty: a mild regulariser, enough for 60k parameters"
        ),
    )
    max_shift: int = field(
        default=0,
        metadata=non_negative(
            "random shifts of up to this many pixels per axis; 0 = none, as "
            "in the paper's 0.95% run without distortions (the full profile)"
        ),
    )
    model: LeNetSpec = field(
        default_factory=LeNetSpec,
        metadata=describe(
            "the network: --model.modern=true for ReLU, max-pooling and a full C3"
        ),
    )
    threads: int = field(
        default=0,
        metadata=non_negative(
            "CPU threads for PyTorch (0 = its default, one per core); a network "
            "this small gains little from more, and on a busy 2-core machine "
            "two threads can stall each other for seconds"
        ),
    )

    PROFILES = {
        "tiny": dict(
            train_size=600,
            val_size=100,
            test_size=500,  # tests
            epochs=1,
            max_shift=2,
            threads=1,
        ),
        "small": dict(
            train_size=8_000,
            val_size=1_000,  # book build, CPU
            epochs=12,
            max_shift=2,
            threads=1,
        ),
        "full": dict(),  # the paper's setting, GPU
    }

    def validate(self):
        if self.val_size >= self.train_size:
            raise ConfigError(
                f"val_size={self.val_size} must be smaller "
                f"than train_size={self.train_size}"
            )


cfg = LeNetConfig.from_cli()
utils.seed_everything(cfg.seed)

# %% [markdown]
# ## Motivation
#
# The networks of Part I ({doc}`../foundations/index`) are fully connected: an image
# enters as a flat vector of pixels and every unit of the first layer has its own
# weight for every pixel. For images this has three costs.
#
# 1. **The 2-D structure is thrown away.** Flattening forgets which pixels are
#    neighbours. Shuffle the 784 pixels of every MNIST image with one fixed
#    permutation and a fully connected network learns exactly as well as before;
#    everything it knows about "nearby" it has to learn from data.
# 2. **Parameters grow with the image.** A first layer of 300 units on a 28×28
#    image already has 235,500 parameters; on a 224×224 greyscale photograph it
#    would have 15 million.
# 3. **No translation invariance.** A digit moved by two pixels is, to a fully
#    connected network, a different input vector, and a "7" seen in the middle of
#    the training images is not recognised in a corner unless the network saw 7s
#    there too.
#
# The third point is easy to measure. Below we shift each of a few hundred training
# digits two pixels to the right and count how many *other* digits lie closer to the
# original, in the Euclidean distance on pixels that a fully connected layer works
# with, than its own shifted copy.

# %%
train_images, train_labels = data.mnist("train")  # (N, 28, 28) uint8
pool = train_images.reshape(len(train_images), -1).astype(np.float32) / 255
n = 300
digits = pool[:n]  # (n, 784)
shifted = np.roll(train_images[:n], 2, axis=2)  # 2 pixels right
shifted = shifted.reshape(n, -1).astype(np.float32) / 255  # (n, 784)

# Squared distances |a - b|^2 = |a|^2 + |b|^2 - 2 a.b, all pairs at once.
sq = (pool**2).sum(1)  # (N,)
to_pool = sq[:n, None] + sq[None, :] - 2 * digits @ pool.T  # (n, N)
to_shifted = ((digits - shifted) ** 2).sum(1)  # (n,)
closer = to_pool < to_shifted[:, None]  # (n, N)
closer[np.arange(n), np.arange(n)] = False  # not itself
same = train_labels[:n, None] == train_labels[None, :]  # (n, N)
frac_same = ((closer & same).sum(1) / (same.sum(1) - 1)).mean()
frac_other = ((closer & ~same).sum(1) / (~same).sum(1)).mean()
print(f"digits of the same class closer than the shifted copy: {frac_same:.0%}")
print(f"digits of other classes closer than the shifted copy:  {frac_other:.0%}")


# %% [markdown]
# In pixel space a small shift moves a digit a long way: past many digits of its
# own class and, typically, past a good number of digits of other classes. LeNet builds three ideas into the architecture so that it does not
# have to learn this from data {cite:p}`lecun1989backpropagation,lecun1998gradient`:
#
# - **Local receptive fields.** A unit looks at a small patch (5×5 pixels), because
#   the features that make up a digit (edges, end points, corners) are local.
# - **Weight sharing.** All units of one *feature map* use the same weights at every
#   position: the map detects one feature wherever it occurs. This is a
#   convolution. It cuts the parameters by orders of magnitude and makes the
#   layer's output move with its input (*equivariance*).
# - **Subsampling.** Halving the resolution of the maps after each convolution makes
#   the exact position of a feature matter less, and with it small shifts and
#   distortions of the input.
#
# The ideas come from neuroscience. {cite:t}`hubel1962receptive` found *simple
# cells* in the cat's visual cortex that respond to an oriented edge at one place,
# and *complex cells* that respond to the same edge over a range of positions. The
# Neocognitron {cite:p}`fukushima1980neocognitron` stacked alternating layers of
# such "S-cells" and "C-cells", each sharing its weights across positions, and
# learned them without labels. {cite:t}`lecun1989backpropagation` trained the
# same kind of architecture end to end with backpropagation on handwritten zip
# codes; LeNet-5 is the refined version of 1998.
#
# ## Theory
#
# ### Convolution
#
# A convolutional layer maps $C_{in}$ input maps $x_i$ to $C_{out}$ output maps $y_j$.
# Output map $j$ has a $k\times k$ kernel $w_{ji}$ for each input map and one bias $b_j$:
#
# $$
# y_j[u, v] = b_j + \sum_{i=1}^{C_{in}} \sum_{p=0}^{k-1} \sum_{q=0}^{k-1} w_{ji}[p, q]\; x_i[u + p,\, v + q].
# $$ (lenet-conv)
#
# Strictly this is a cross-correlation (a convolution would flip the kernel), which
# is what every deep-learning library computes under the name; since the kernel is
# learned, the flip makes no difference. The same $w_{ji}$ is used at every position
# $(u, v)$: that is weight sharing. Each output unit depends on a $k\times k$ patch of
# every input map: that is its local receptive field.
#
# With padding $P$ on each side and stride $s$, an input of height $H_{in}$ gives an
# output of height
#
# $$
# H_{out} = \left\lfloor \frac{H_{in} + 2P - k}{s} \right\rfloor + 1,
# $$ (lenet-size)
#
# and the same for the width. LeNet-5 uses $P = 0$, $s = 1$ and $k = 5$ in its
# convolutions, so each one shrinks a map by 4 pixels: $32 \to 28$ in C1,
# $14 \to 10$ in C3 and $5 \to 1$ in C5. The MNIST digits are 28×28; the paper pads
# them to 32×32 so that distinctive features near the border, such as the end of a
# stroke, can still appear at the centre of the receptive fields of the
# highest-level feature detectors.
#
# A convolutional layer with full connections has
#
# $$
# \underbrace{C_{out}\,(C_{in}\,k^2 + 1)}_{\text{parameters}}
# \qquad\text{but}\qquad
# \underbrace{C_{out}\,(C_{in}\,k^2 + 1)\,H_{out} W_{out}}_{\text{connections}},
# $$ (lenet-params)
#
# one connection per weight *use*. For C1, $6\,(1\cdot 25 + 1) = 156$ parameters serve
# $156 \cdot 28 \cdot 28 = 122{,}304$ connections. A fully connected layer with the
# same inputs and outputs would need all 122,304 as separate weights.
#
# ### Subsampling
#
# The paper's layers S2 and S4 add up each non-overlapping 2×2 block of a map,
# multiply by a trainable coefficient $w_c$ and add a trainable bias $b_c$, one pair
# per map (we average instead of add, which only rescales $w_c$ by 4):
#
# $$
# y_c[u, v] = w_c \cdot \frac{1}{4} \sum_{p=0}^{1} \sum_{q=0}^{1} x_c[2u + p,\, 2v + q] + b_c .
# $$ (lenet-subsampling)
#
# Each S layer has $2 C$ parameters: 12 for S2's 6 maps and 32 for S4's 16 maps.
# With a small coefficient a unit is nearly linear and the layer merely blurs its
# input; with a large one the unit saturates and acts as a noisy OR or a noisy AND
# of its four inputs, depending on the bias. Later networks replaced the whole
# layer by max-pooling, which has no parameters.
#
# ### The partial connections of C3
#
# C3 has 16 maps on top of S2's 6. The paper does not connect every C3 map to every
# S2 map: Table I of the paper connects the first six C3 maps to three neighbouring
# S2 maps each, the next six to four neighbouring maps, three to four
# non-neighbouring maps and the last one to all six, 60 connections out of 96. It
# gives two reasons: the network stays smaller and faster (in 1998 that mattered),
# and, more importantly, the connection table **breaks the symmetry** between the
# maps: maps that see different inputs are pushed to learn different,
# complementary features. With the counts of {eq}`lenet-params` that gives
# $60 \cdot 25 + 16 = 1{,}516$ parameters instead of $16\,(6\cdot 25 + 1) = 2{,}416$.
#
# There are two ways to build such a layer from standard parts. Ten convolutions,
# one per distinct set of input maps, whose outputs are concatenated, run the
# sparse computation literally. A *masked* convolution runs one ordinary
# convolution whose kernel is zero where the table has no connection. We use the
# second one and store only the 60 connected 5×5 kernels as parameters, so that the
# parameter count is the paper's.
#
# ### The scaled tanh
#
# Every unit up to F6 passes its weighted sum $a$ through
#
# $$
# f(a) = A \tanh(S a), \qquad A = 1.7159,\; S = \tfrac{2}{3}.
# $$ (lenet-tanh)
#
# The constants are chosen so that $f(\pm 1) = \pm 1$. Targets of $\pm 1$ then lie
# where the second derivative of $f$ is largest (near $a = \pm 1$), not on its flat
# asymptotes, where gradients vanish; the gain near the origin is
# $f'(0) = AS \approx 1.14$, so a unit with inputs of variance 1 and weights scaled
# by $1/\sqrt{\text{fan-in}}$ passes on a variance close to 1 {cite:p}`lecun1998efficient`.
# We initialise the paper version of the network that way, $w \sim \mathcal{N}(0, 1/F_{in})$
# for a unit with $F_{in}$ inputs; the 1998 paper draws its weights uniformly from
# $[-2.4/F_{in},\, 2.4/F_{in}]$, a smaller scale meant for its own training method.
#
# ### The architecture
#
# {numref}`lenet-architecture` puts the layers together; the output shapes follow
# from {eq}`lenet-size` and the parameter counts from {eq}`lenet-params` and
# {eq}`lenet-subsampling`.
#
# ```{list-table} LeNet-5 for a 32×32 input, with the paper's parameter counts
# :header-rows: 1
# :name: lenet-architecture
#
# * - layer
#   - operation
#   - output
#   - parameters
# * - C1
#   - 6 maps, 5×5 convolution
#   - 6×28×28
#   - 6 · (25 + 1) = 156
# * - S2
#   - 2×2 subsampling
#   - 6×14×14
#   - 6 · 2 = 12
# * - C3
#   - 16 maps, 5×5 convolution, Table I
#   - 16×10×10
#   - 60 · 25 + 16 = 1,516
# * - S4
#   - 2×2 subsampling
#   - 16×5×5
#   - 16 · 2 = 32
# * - C5
#   - 120 maps, 5×5 convolution
#   - 120×1×1
#   - 120 · (16 · 25 + 1) = 48,120
# * - F6
#   - fully connected
#   - 84
#   - 84 · (120 + 1) = 10,164
# * - output
#   - 10 Euclidean RBF units (fixed)
#   - 10
#   - (840 fixed)
# ```
#
# C5 is a convolution whose 5×5 kernel exactly covers S4's 5×5 maps, so each of its
# units is connected to everything below; the paper still calls it a convolution
# because on a larger input it would slide. The six trainable layers add up to
# exactly 60,000 parameters.
#
# ### The output layer
#
# The paper's output units are Euclidean radial basis functions. Unit $c$ computes
# the squared distance between F6's 84 outputs and a fixed code $\mathbf{w}_c \in \{-1, +1\}^{84}$,
# a stylised 7×12 bitmap of the character:
#
# $$
# y_c = \sum_{j=1}^{84} (x_j - w_{cj})^2 .
# $$ (lenet-rbf)
#
# The smallest $y_c$ wins. This made sense for a system that also read letters and
# had to reject non-characters. We follow nearly every modern re-implementation
# and use a trainable linear layer (84 · 10 + 10 = 850 parameters) whose outputs
# $z_c$ are class scores (logits), trained with the cross-entropy
#
# $$
# \mathcal{L}(\mathbf{z}, y) = -\log \frac{e^{z_y}}{\sum_{c} e^{z_c}} .
# $$ (lenet-loss)
#
# ## Implementation
#
# First a throwaway version of {eq}`lenet-conv`, with explicit loops, to check our
# reading of it against PyTorch's `conv2d`:


# %%
def conv2d_naive(x, weight, bias):
    """Eq. (lenet-conv) by loops. x: (C_in, H, W), weight: (C_out, C_in,
    k, k), bias: (C_out,) -> (C_out, H - k + 1, W - k + 1)."""
    c_out, _, k, _ = weight.shape
    h_out, w_out = x.shape[1] - k + 1, x.shape[2] - k + 1
    y = torch.empty(c_out, h_out, w_out)
    for u in range(h_out):
        for v in range(w_out):
            patch = x[:, u : u + k, v : v + k]  # (C_in, k, k): receptive field
            y[:, u, v] = (weight * patch).sum(dim=(1, 2, 3)) + bias  # shared
    return y


conv = nn.Conv2d(1, 6, kernel_size=5)
x = torch.randn(1, 32, 32)
with torch.no_grad():
    agree = torch.allclose(conv2d_naive(x, conv.weight, conv.bias), conv(x), atol=1e-5)
print("naive == torch:", agree)

# %% [markdown]
# The library's version lives in `scratch.models.lenet`. The scaled tanh
# {eq}`lenet-tanh` and the trainable subsampling {eq}`lenet-subsampling` are small
# modules:
#
# ```{literalinclude} ../../code/scratch/models/lenet.py
# :pyobject: ScaledTanh
# ```
#
# ```{literalinclude} ../../code/scratch/models/lenet.py
# :pyobject: Subsampling
# ```
#
# C3's connection table is a masked convolution that stores only the connected
# kernels:
#
# ```{literalinclude} ../../code/scratch/models/lenet.py
# :pyobject: PartialConv2d
# ```
#
# and the network is the table above, read from top to bottom. `features` returns
# every layer's output, which we use to look inside the trained network later:
#
# ```{literalinclude} ../../code/scratch/models/lenet.py
# :pyobject: LeNet5
# ```
#
# The connection table the model uses, printed from the model (rows: S2 maps,
# columns: C3 maps), is Table I of the paper:

# %%
paper_net = LeNet5()
table = paper_net.c3.table  # (6, 16) bool
print("      C3 map " + " ".join(f"{j:>2}" for j in range(16)))
for i, row in enumerate(table):
    print(f"S2 map {i}:    " + " ".join(" X" if c else " ." for c in row))
print(f"connections: {int(table.sum())} of {table.numel()}")


# %% [markdown]
# Counting the parameters of each layer of the model and comparing them with the
# paper:


# %%
def parameter_table(model):
    """Each layer's trainable parameters next to the paper's count."""
    counts = parameter_counts(model)
    extra = [name for name in counts if name not in PAPER_PARAMETERS]
    print(f"{'layer':<8}{'ours':>8}{'paper':>8}")
    for name in [*PAPER_PARAMETERS, *extra]:
        ours, paper = counts.get(name, 0), PAPER_PARAMETERS.get(name)
        shown = "-" if paper is None else f"{paper:,}"
        verdict = "" if paper is None else "ok" if ours == paper else "differs"
        print(f"{name:<8}{ours:>8,}{shown:>8}  {verdict}")
    total, paper_total = sum(counts.values()), sum(PAPER_PARAMETERS.values())
    print(
        f"{'total':<8}{total:>8,}{paper_total:>8,}  (the paper's total "
        "leaves out its fixed output layer)"
    )


parameter_table(paper_net)
out = paper_net(torch.zeros(4, 1, 32, 32))
print("output shape for a batch of 4 images:", tuple(out.shape))

# %% [markdown]
# ## Experiment
#
# ### Configuration
#
# The config at the top of the chapter holds every knob of the experiment. Its
# defaults are the `full` profile, the paper's setting on a GPU: all 60,000
# training images, none held out for validation, no random shifts
# (`max_shift=0`), 20 epochs and the whole test set, the conditions of the
# paper's 0.95% test error for LeNet-5 trained without distortions. The other
# two profiles shrink it, hold out some of their images for validation curves
# and shift the training digits by up to two pixels, which helps a network that
# sees few images. The `small` profile, which the book is built with, trains on
# at most 8,000 MNIST images, so that the whole chapter runs well within the 90
# seconds a chapter may take on a two-core CPU; `tiny`, for the tests, checks that everything runs and learns more than chance. The fields that differ:

# %%
print(LeNetConfig.profile_table())  # the fields whose values differ
print(f"this run: profile {cfg.profile!r}")


# %% [markdown]
# ### Data
#
# LeNet-5 sees a 32×32 image: the 28×28 MNIST digit with two pixels of background on
# every side. The pixels are standardised with the mean and standard deviation of
# the *training* images, computed here rather than copied from elsewhere, which
# gives inputs of mean 0 and variance 1 as the paper recommends. In training, each
# batch is shifted by a random number of pixels (up to `max_shift`), a cheap way to
# show the network more positions of every digit. That is a distortion of the
# training data, so the `full` profile, which is compared with the paper's
# result without distortions, turns it off (`max_shift=0`); with `val_size=0`
# it has no validation set either, and the training curves show the training
# metrics only.


# %%
def shifted_batch(batch, max_shift):
    """collate_fn: stack (image, label) pairs, then shift each image."""
    x, y = default_collate(batch)  # (B, 1, 32, 32), (B,)
    return random_shift(x, max_shift), y


def mnist_loaders(cfg):
    """Train, validation and test DataLoaders of MNIST as LeNet-5 sees it,
    and the (mean, std) that standardised them."""
    images, labels = data.subsample(
        *data.mnist("train"), cfg.train_size, seed=cfg.seed
    )  # (N, 28, 28) uint8
    order = np.random.default_rng(cfg.seed).permutation(len(images))
    val_idx, train_idx = order[: cfg.val_size], order[cfg.val_size :]
    mean, std = pixel_stats(images[train_idx])  # from training images only
    test_images, test_labels = data.subsample(
        *data.mnist("test"), cfg.test_size, seed=cfg.seed
    )

    def loader(x, y, training=False):
        dataset = TensorDataset(
            pad_and_normalize(x, mean, std), torch.as_tensor(y)
        )  # (N, 1, 32, 32), (N,)
        if not training:
            return DataLoader(dataset, batch_size=1000)
        return DataLoader(
            dataset,
            batch_size=cfg.batch_size,
            shuffle=True,
            num_workers=cfg.num_workers,
            collate_fn=partial(shifted_batch, max_shift=cfg.max_shift),
        )

    return (
        loader(images[train_idx], labels[train_idx], training=True),
        loader(images[val_idx], labels[val_idx]) if cfg.val_size else None,
        loader(test_images, test_labels),
        (mean, std),
    )


train_loader, val_loader, test_loader, (mean, std) = mnist_loaders(cfg)
sizes = {
    name: 0 if dl is None else len(dl.dataset)
    for name, dl in [
        ("train", train_loader),
        ("validation", val_loader),
        ("test", test_loader),
    ]
}
print("images: " + ", ".join(f"{k} {v:,}" for k, v in sizes.items()))
print(f"training pixels: mean {mean:.4f}, std {std:.4f}")
batch_x, batch_y = next(iter(train_loader))  # (B, 1, 32, 32), (B,)
shifts = (
    f"randomly shifted by up to {cfg.max_shift} pixels"
    if cfg.max_shift
    else "not shifted"
)
fig = plots.image_grid(
    batch_x[:16, 0],
    titles=batch_y[:16].tolist(),
    ncols=8,
    cell=80,
    title=f"A training batch: padded, standardised, {shifts}",
)
plots.show(fig, cfg.run_dir / "batch.html")

# %% [markdown]
# ### Training
#
# Stochastic gradient descent with Nesterov momentum, a one-cycle learning-rate
# schedule {cite:p}`smith2019superconvergence` (a short warm-up, then a cosine
# decay to almost zero) and weight decay. The paper trained with a second-order
# variant of SGD (stochastic diagonal Levenberg-Marquardt) and a hand-made step
# schedule; the one-cycle schedule is a simpler modern stand-in that needs little
# tuning. `fit` writes a checkpoint to `cfg.run_dir / "last.pt"` after every epoch.

# %%
model = cfg.model.build()
optimizer = torch.optim.SGD(
    model.parameters(),
    lr=cfg.lr,
    nesterov=True,
    momentum=cfg.momentum,
    weight_decay=cfg.weight_decay,
)
steps = cfg.epochs * len(train_loader)
if cfg.warmup * steps == 1:  # PyTorch would divide by warm-up steps - 1 = 0:
    steps += 1  # a very short run gets one step more of schedule
scheduler = torch.optim.lr_scheduler.OneCycleLR(
    optimizer,
    max_lr=cfg.lr,
    pct_start=cfg.warmup,
    cycle_momentum=False,
    total_steps=steps,
)
history = fit(
    model, optimizer, train_loader, cfg, val_loader=val_loader, scheduler=scheduler
)
test = evaluate(model, test_loader, prefix="test_")
print(f"test loss {test['test_loss']:.4f}, test accuracy {test['test_acc']:.2%}")

# %%
fig = plots.training_curves(history, title="LeNet-5 on MNIST")
plots.show(fig, cfg.run_dir / "curves.html")

# %% [markdown]
# ### Inside the network
#
# C1's six 5×5 kernels, the first thing the network learned (the colour scale is
# centred on zero, one hue for positive weights and one for negative; hover for
# values):

# %%
model.cpu().eval()
c1_kernels = model.c1.weight.detach()[:, 0]  # (6, 5, 5)
fig = plots.image_grid(
    c1_kernels,
    symmetric=True,
    cell=110,
    titles=[f"C1 kernel {i}" for i in range(6)],
    title="Learned C1 kernels",
)
plots.show(fig, cfg.run_dir / "c1_kernels.html")

# %% [markdown]
# Each kernel weighs a 5×5 window of light and dark pixels; what it detects is
# easier to see on a digit, where its map takes large values wherever the window
# matches the kernel, for instance along strokes or edges of one orientation, like
# the responses of Hubel and Wiesel's simple cells. The feature maps of one test digit after C1
# (28×28, one per kernel; unit $(u, v)$ looks at the 5×5 input patch centred on
# pixel $(u, v)$ of the unpadded digit, which is why we show the digit without its
# padding) and after C3 (10×10):

# %%
test_x, test_y = test_loader.dataset.tensors  # (N, 1, 32, 32), (N,)
with torch.no_grad():
    maps = model.features(test_x[:1])  # layer name -> (1, ...)
digit = test_x[0, 0, 2:30, 2:30]  # (28, 28): unpadded, aligned with C1
fig = plots.image_grid(
    torch.cat([digit[None], maps["C1"][0]]),
    symmetric=True,
    cell=110,
    titles=["input"] + [f"C1 map {i}" for i in range(6)],
    title=f"A test digit ({int(test_y[0])}) and its six C1 feature maps",
)
plots.show(fig, cfg.run_dir / "c1_maps.html")
fig = plots.image_grid(
    maps["C3"][0],
    symmetric=True,
    ncols=8,
    cell=90,
    titles=[f"C3 map {j}" for j in range(16)],
    title="Its sixteen C3 feature maps",
)
plots.show(fig, cfg.run_dir / "c3_maps.html")

# %% [markdown]
# ### Errors

# %%
pred = predict(model, test_x).argmax(dim=1)  # (N,)
fig = plots.confusion_matrix(test_y, pred, title="Confusion matrix on the test set")
plots.show(fig, cfg.run_dir / "confusion.html")
wrong = (pred != test_y).nonzero().flatten()
print(f"{len(wrong)} of {len(test_y)} test digits misclassified")
if len(wrong):
    shown = wrong[:24]
    fig = plots.image_grid(
        test_x[shown, 0],
        ncols=12,
        cell=70,
        titles=[f"{int(test_y[i])}→{int(pred[i])}" for i in shown],
        title="Misclassified test digits (true→predicted)",
    )
    plots.show(fig, cfg.run_dir / "errors.html")

# %% [markdown]
# Look at the misclassified digits: many of them would make a person hesitate too.
#
# ### Checkpoint and new digits
#
# `fit` saved the weights after the last epoch. A fresh network that loads them
# (with `weights_only=True`, which refuses to unpickle arbitrary objects) must
# make exactly the same predictions:

# %%
# fit's checkpoint holds the model's spec (cfg.model) beside its weights.
restored, _ = load_model(cfg.run_dir / "last.pt")  # weights_only=True
acc = {
    name: evaluate(net, test_loader, prefix="test_")["test_acc"]
    for name, net in [("trained", model), ("restored", restored)]
}
same = torch.equal(predict(restored, test_x).argmax(dim=1), pred)
print(
    f"test accuracy: trained {acc['trained']:.2%}, restored "
    f"{acc['restored']:.2%}; identical predictions: {same}"
)
assert same and acc["trained"] == acc["restored"]


# %% [markdown]
# Now digits that are not from MNIST: the ten digits typeset in three fonts that
# ship with matplotlib. MNIST's digits were scaled to fit a 20×20 box (keeping their
# aspect ratio) and centred in the 28×28 image by their centre of mass; we prepare
# the typeset digits the same way, then pad and standardise them like the training
# images.


# %%
def render_digit(char, font_path, size=96):
    """White-on-black rendering of one character: uint8 (H, W)."""
    font = ImageFont.truetype(font_path, size)
    canvas = Image.new("L", (2 * size, 2 * size), 0)
    ImageDraw.Draw(canvas).text((size // 2, size // 4), char, fill=255, font=font)
    return np.asarray(canvas)


def mnist_style(ink):
    """MNIST's preprocessing: crop to the ink, scale it to fit a 20x20 box,
    put its centre of mass at the centre of a 28x28 image."""
    rows, cols = np.nonzero(ink)
    ink = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    scale = 20 / max(ink.shape)
    h = max(1, round(ink.shape[0] * scale))
    w = max(1, round(ink.shape[1] * scale))
    small = Image.fromarray(ink).resize((w, h), Image.LANCZOS)
    small = np.asarray(small, dtype=np.float64)  # (h, w)
    cy, cx = (np.indices(small.shape) * small).sum(axis=(1, 2)) / small.sum()
    top = np.clip(round(13.5 - cy), 0, 28 - h)
    left = np.clip(round(13.5 - cx), 0, 28 - w)
    out = np.zeros((28, 28))
    out[top : top + h, left : left + w] = small
    return np.clip(out, 0, 255).astype(np.uint8)


styles = {
    "sans bold": ("DejaVu Sans", dict(weight="bold")),
    "sans oblique": ("DejaVu Sans", dict(style="oblique")),
    "serif": ("DejaVu Serif", {}),
}
fonts = {
    name: font_manager.findfont(font_manager.FontProperties(family=family, **style))
    for name, (family, style) in styles.items()
}
new_digits = np.stack(
    [
        mnist_style(render_digit(str(d), path))
        for path in fonts.values()
        for d in range(10)
    ]
)
new_labels = torch.arange(10).repeat(len(fonts))  # (30,)
new_x = pad_and_normalize(new_digits, mean, std)  # training statistics
probs = predict(restored, new_x).softmax(dim=1)  # (30, 10)
top_p, top_c = probs.topk(3, dim=1)  # (30, 3) each
captions = [
    " · ".join(f"{c} {p:.0%}" for p, c in zip(ps, cs))
    for ps, cs in zip(top_p.tolist(), top_c.tolist())
]
fig = plots.image_grid(
    new_digits,
    titles=captions,
    ncols=5,
    cell=110,
    title="Typeset digits (rows of five: "
    + ", ".join(fonts)
    + ") and the model's top 3",
)
plots.show(fig, cfg.run_dir / "new_digits.html")
hits = (top_c[:, 0] == new_labels).view(len(fonts), 10).sum(dim=1)
for font, n_right in zip(fonts, hits.tolist()):
    print(f"{font:<13} top-1 correct: {n_right}/10")

# %% [markdown]
# Typeset digits are not handwriting: their strokes have constant width, the "1"
# may carry a serif foot and a flag, the "4" is closed, the "7" has no bar. Where
# the model fails, or is unsure, it is usually on such a glyph: a small example of
# *distribution shift*, the gap between the data a model was trained on and the
# data it meets.
#
# ## Results

# %%
seconds = time.perf_counter() - T0
# LeNet-5 trained on all 60,000 training images without distortions, scored
# on the 10,000 test images: Fig. 9 of the paper.
PAPER_TEST_ERROR = 0.0095
PAPER_SETTING = {
    "train_images": 60_000,
    "config.max_shift": 0,
    "config.epochs": 20,
    "test_images": 10_000,
}
metrics = {
    "test_acc": test["test_acc"],
    "test_loss": test["test_loss"],
    "val_acc": history.last.get("val_acc"),
    "train_images": sizes["train"],
    "test_images": sizes["test"],
    "parameters": sum(parameter_counts(model).values()),
}
columns = {
    "test_acc": ("test error", lambda acc: f"{1 - acc:.2%}"),
    "train_images": ("train images", ","),
    "config.max_shift": ("shifts", lambda px: f"±{px} px" if px else "none"),
    "config.epochs": ("epochs", "d"),
    "test_images": ("test images", ","),
}
rows = results_table(
    cfg,
    metrics,
    seconds=seconds,
    columns=columns,
    title="MNIST test error",
    references=[
        Reference(
            "LeNet-5",
            {"test_acc": 1 - PAPER_TEST_ERROR, **PAPER_SETTING},
            source="lecun1998gradient",
            setting="Fig. 9",
        )
    ],
    notes=[f"the MNIST training split found here has {len(train_images):,} images"],
)
differ = [columns[k][0] for k in PAPER_SETTING if rows[0].values[k] != PAPER_SETTING[k]]
print(
    "this run has the paper's setting"
    if not differ
    else "this run differs from the paper's setting in: " + ", ".join(differ)
)

# %% [markdown]
# Read this run's number as a check that everything works, not as a replication:
# the `small` profile trains on a few thousand images, shifted at random, for a
# few epochs, and where the machine's copy of MNIST is smaller than the official
# one (a line under the table says how many training images it found), its test images
# are a subset of the official test set too. The comparison with the paper is
# the `full` profile's job, and it uses the paper's setting for the 0.95%: all
# 60,000 training images with none held out for validation, no shifts or other
# distortions of the training images, the paper's 20 epochs, the whole test set.
# What still differs from the paper is how the network is trained and read
# out: SGD with Nesterov momentum, a one-cycle schedule and weight decay
# instead of stochastic diagonal Levenberg-Marquardt with a hand-made schedule,
# LeCun initialisation instead of the paper's uniform one, and a linear output
# layer with the cross-entropy instead of the RBF units and their loss.
#
# The run's metrics, config, duration and machine go to `metrics.json` in the run
# folder; a `full` run's file is what gets recorded in `results/lenet.json`.

# %%
utils.save_run(cfg.run_dir / "metrics.json", cfg, metrics, seconds)
print(f"metrics saved to {cfg.run_dir / 'metrics.json'}")

# %% [markdown]
# ## Summary
#
# - A convolution {eq}`lenet-conv` applies one small kernel at every position:
#   local receptive fields and weight sharing give a layer few parameters
#   {eq}`lenet-params`, many connections, and outputs that move with the input.
# - Subsampling (or pooling) halves the resolution after each convolution, so the
#   layers above care less about exact positions; the sizes follow {eq}`lenet-size`.
# - LeNet-5 alternates convolutions and subsampling (C1, S2, C3, S4), then reads out
#   with C5, F6 and an output layer: 60,000 trainable parameters in the paper, the
#   bulk of them in C5.
# - Its period details (scaled tanh {eq}`lenet-tanh`, trainable subsampling, C3's
#   connection table that breaks the symmetry between maps, RBF outputs) were later
#   replaced by ReLU, max-pooling, full connections and a softmax, without changing
#   the recipe.
# - A model saved with its `state_dict` and loaded with `weights_only=True` into a
#   fresh network predicts exactly as before; on data unlike its training set
#   (typeset digits) it can still fail.
#
# ## Exercises
#
# :::{exercise}
# :label: lenet-ex-1
# The paper lists the *connections* of each layer as well as its parameters:
# 122,304 for C1, 5,880 for S2, 151,600 for C3, 2,000 for S4, 48,120 for C5 and
# 10,164 for F6. Derive these numbers from {eq}`lenet-params` and the output
# sizes, then compute them from a `LeNet5()` and one forward pass.
# :::
#
# :::{solution} lenet-ex-1
# :class: dropdown
# Every unit of a convolutional map uses all of that map's weights and its bias,
# so a convolution has (parameters) × (positions per map) connections: C1
# $156 \cdot 28 \cdot 28 = 122{,}304$, C3 $1{,}516 \cdot 10 \cdot 10 = 151{,}600$
# (C3's maps have different fan-ins, but each weight is still used at all 100
# positions), C5 $48{,}120 \cdot 1$. A subsampling unit has 4 inputs and a bias:
# S2 $5 \cdot 6 \cdot 14 \cdot 14 = 5{,}880$, S4
# $5 \cdot 16 \cdot 5 \cdot 5 = 2{,}000$. F6 is fully connected: its connections
# are its 10,164 parameters.
#
# ```python
# model = LeNet5()
# maps = model.features(torch.zeros(1, 1, 32, 32))
# for name in ["c1", "s2", "c3", "s4", "c5", "f6"]:
#     out = maps[name.upper()][0]        # one image's output of the layer
#     if name.startswith("s"):           # 4 inputs and a bias per unit
#         print(name, 5 * out.numel())
#     else:                              # every weight, at every position
#         positions = out[0].numel() if out.dim() == 3 else 1
#         params = sum(p.numel() for p in getattr(model, name).parameters())
#         print(name, params * positions)
# ```
# :::
#
# :::{exercise}
# :label: lenet-ex-2
# The receptive field of a unit is the patch of the input that can influence it.
# How large is it for a unit of C1, S2, C3, S4 and C5? What does the answer for
# C5 say about calling that layer a convolution?
# :::
#
# :::{solution} lenet-ex-2
# :class: dropdown
# Going up one layer with kernel $k$ adds $(k - 1)\,j$ to the receptive field,
# where $j$ is the distance in input pixels between neighbouring units of the
# layer below (its *jump*, multiplied by each layer's stride). C1: 5×5 (jump 1).
# S2: $5 + 1 \cdot 1 = 6$ (jump 2). C3: $6 + 4 \cdot 2 = 14$ (jump 2). S4:
# $14 + 1 \cdot 2 = 16$ (jump 4). C5: $16 + 4 \cdot 4 = 32$: every C5 unit sees
# the whole 32×32 input, so on this input C5 is a fully connected layer. It is a
# convolution in that on a larger input (a line of text, as in the paper's later
# sections) the same weights would slide and give a map of outputs.
# :::
#
# :::{exercise}
# :label: lenet-ex-3
# Train the modern variant, `python code/vision/lenet.py --model.modern=true` (ReLU,
# max-pooling, full C3), and print its parameter table with `parameter_table`.
# Which layers lose or gain parameters, and why? Compare its test accuracy and
# training time with the paper version over three seeds (`--seed=1`, ...).
# :::
#
# :::{solution} lenet-ex-3
# :class: dropdown
# S2 and S4 disappear from the table: max-pooling has nothing to learn. C3 grows
# from 1,516 to $16\,(6 \cdot 25 + 1) = 2{,}416$ parameters, because every C3 map
# now sees all six S2 maps. The total changes by less than 2%: C5 and F6 hold
# most of the parameters.
#
# Do not expect the modern version to win by much, or at all, with the paper
# version's learning rate: both are close to what a network this small can do on
# MNIST, and their difference is of the order of the spread between seeds, so
# compare means over seeds (and try `--lr=0.05` for the ReLU network). The modern
# version is usually cheaper per epoch on a CPU: ReLU and max-pooling cost less
# than the tanh, the subsampling arithmetic and the masked convolution. And a
# connection table is not needed to make the maps differ: random initialisation
# already does, and a fully connected C3 learns complementary features by itself.
# :::
#
# :::{exercise}
# :label: lenet-ex-4
# How translation-invariant is the trained network? Shift the test digits by
# $0, 1, \dots, 6$ pixels to the right (`torch.roll` on the padded images,
# filling the uncovered columns with the background value) and plot the test
# accuracy against the shift. Repeat with a model trained with `--max_shift=0`.
# Where does the invariance come from: the architecture, the data, or both?
# :::
#
# :::{solution} lenet-ex-4
# :class: dropdown
# ```python
# background = test_x.min()  # the standardised value of a 0 pixel
# acc = []
# for s in range(7):
#     moved = torch.roll(test_x, s, dims=3)
#     moved[..., :s] = background
#     hits = predict(model, moved).argmax(1) == test_y
#     acc.append(hits.float().mean().item())
# fig = plots.lines({"test accuracy": acc}, x=list(range(7)),
#                   xlabel="shift (pixels)", ylabel="accuracy",
#                   title="Accuracy on shifted test digits")
# plots.show(fig)
# ```
# Accuracy stays high for a shift of a pixel or two and then falls:
# convolutions are equivariant and each subsampling stage absorbs a little of a
# shift, but C5 and F6 see the whole image at fixed positions, so the network is
# only *approximately* invariant. Training with random shifts
# (`max_shift > 0`) widens the range it tolerates: the invariance comes from the
# architecture and the data together.
# :::
#
# :::{exercise}
# :label: lenet-ex-5
# Replace the linear output layer by the paper's RBF layer {eq}`lenet-rbf`:
# fixed codes $\mathbf{w}_c \in \{-1, +1\}^{84}$ (drawn at random, or designed as
# 7×12 bitmaps) and outputs $y_c = \lVert \mathbf{x} - \mathbf{w}_c \rVert^2$.
# Train it with a loss that makes $y_c$ small for the right class. Why would the
# loss $\mathcal{L} = y_{\text{target}}$ alone fail if the codes were trainable,
# and what does it lack even with fixed codes?
# :::
#
# :::{solution} lenet-ex-5
# :class: dropdown
# ```python
# class RBFOutput(nn.Module):
#     def __init__(self, codes):                # (10, 84) of +-1
#         super().__init__()
#         self.register_buffer("codes", codes)  # fixed: not a parameter
#
#     def forward(self, x):                     # (B, 84) -> (B, 10)
#         y = ((x[:, None, :] - self.codes) ** 2).sum(-1)  # eq. (lenet-rbf)
#         return -y  # a small distance is a high score: -y_c are the logits
#
#
# rbf_net = LeNet5()
# rbf_net.output = RBFOutput(torch.randint(0, 2, (10, 84)).float() * 2 - 1)
# optimizer = torch.optim.SGD(rbf_net.parameters(), lr=0.01, momentum=0.9)
# history = fit(rbf_net, optimizer, train_loader, cfg, val_loader=val_loader,
#               checkpoint=None)  # cross-entropy on -y_c
# ```
# With trainable codes, $\mathcal{L} = y_{\text{target}}$ has a trivial minimum:
# all codes equal and F6 always outputs that one point, zero loss and no
# classification at all. With fixed codes it works, as a regression of F6's
# output onto the code of the right class, but there is no competition between
# the classes: nothing pushes the wrong classes' distances up. The paper adds a
# term $\log(e^{-j} + \sum_c e^{-y_c})$ for that; the cross-entropy on $-y_c$
# above, $y_{\text{target}} + \log \sum_c e^{-y_c}$, is the same criterion
# without the paper's constant $j$.
# :::
#
# ## References
#
# ```{bibliography}
# :filter: docname in docnames
# ```
