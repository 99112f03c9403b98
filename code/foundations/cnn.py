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
# (cnn)=
# # Convolutional networks from scratch
#
# The networks so far read an image as a flat list of numbers. This chapter gives
# them eyes that slide: the *convolution*, one small set of weights applied at
# every position of the image. We derive its forward and backward pass, write
# both as plain Python loops and check them against PyTorch, then replace the
# loops by one matrix product (*im2col*), the form in which the library
# `scratch.engine` computes them, orders of magnitude faster. With it, a small
# convolutional network trained by our NumPy engine reads handwritten digits
# better than a fully connected network trained on the same data, with a
# fraction of its parameters, and is less thrown by digits that move. Finally the same network,
# from the same initial weights and on the same batches, is trained by PyTorch,
# to compare the two engines' answers and speed.

# %%
import time

run_started = time.perf_counter()  # the whole chapter is timed

from dataclasses import dataclass, field

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch.utils.data import DataLoader, TensorDataset

import scratch.engine.functional as F
import scratch.train
from scratch import data, plots, utils
from scratch.config import ConfigError, choice, non_negative, positive
from scratch.engine import Tensor, nn, no_grad, optim
from scratch.engine.loop import evaluate, fit_arrays
from scratch.results import Reference, results_table


# %% tags=["hide-input"]
@dataclass
class CNNConfig(scratch.train.TrainConfig):
    """A small CNN trained by the NumPy engine, then by PyTorch. Defaults: the `small` profile."""

    NAME = "cnn"  # outputs go to out_dir/cnn

    # ---- data --------------------------------------------------------------------------
    train_size: int = field(
        default=8_000,
        metadata=positive(
            "MNIST training images drawn (seeded, class-stratified); the validation images come out of them"
        ),
    )
    val_size: int = field(
        default=1_000,
        metadata=positive(
            "of those, held out for the per-epoch curves: 1000 resolve about +-1 point of accuracy"
        ),
    )
    test_size: int = field(
        default=10_000,
        metadata=positive(
            "test images, scored once at the end (MNIST has 10,000; the offline stand-in fewer)"
        ),
    )
    # ---- the network -------------------------------------------------------------------
    channels1: int = field(
        default=8,
        metadata=positive(
            "maps of the first convolution: 8 edge and stroke detectors are enough for digits"
        ),
    )
    channels2: int = field(
        default=16,
        metadata=positive(
            "maps of the second: combinations of strokes; with 8 -> 16 the network is about 6k parameters"
        ),
    )
    kernel: int = field(
        default=5,
        metadata=positive(
            "kernel size of both convolutions, LeNet's 5x5: two of them and two poolings see 16x16 pixels"
        ),
    )
    # ---- training (epochs and batch_size are TrainConfig's fields) ------------------------
    epochs: int = field(
        default=4,
        metadata=positive(
            "passes over the training images: with the one-cycle schedule, 4 reach about 98.5% on 7,000"
        ),
    )
    batch_size: int = field(
        default=64,
        metadata=positive(
            "images per step: large enough for NumPy's GEMMs to run at speed, small enough for many steps"
        ),
    )
    lr: float = field(
        default=0.005,
        metadata=positive(
            "peak learning rate of Adam's one-cycle schedule: of 0.002, 0.003 and 0.005, the fastest to 98%"
        ),
    )
    seeds: int = field(
        default=2,
        metadata=positive(
            "engine trainings with seeds seed, seed+1, ...: two show how much the result depends on the draw"
        ),
    )
    # ---- the comparisons ---------------------------------------------------------------
    mlp_hidden: int = field(
        default=100,
        metadata=positive(
            "hidden units of the fully connected baseline: over 10x the CNN's parameters"
        ),
    )
    max_shift: int = field(
        default=4,
        metadata=non_negative(
            "test digits are shifted right by 0..max_shift pixels: MNIST digits have about 4 pixels of margin"
        ),
    )
    example_shift: int = field(
        default=2,
        metadata=positive(
            "the shift of the example digit: 2 pixels, a small move that a reader does not even notice"
        ),
    )
    naive_batch: int = field(
        default=8,
        metadata=positive(
            "images for timing the loop convolution against the vectorized one (the loops are slow)"
        ),
    )
    repeats: int = field(
        default=5,
        metadata=positive(
            "repetitions of each fast timing; the best one counts (other processes only ever add time)"
        ),
    )
    bench_steps: int = field(
        default=30,
        metadata=positive(
            "training steps timed per engine for the speed ratio: the median of 30 ignores a few slow ones"
        ),
    )
    device: str = field(
        default="cpu",
        metadata=choice(
            "cpu",
            "auto",
            "cuda",
            help="PyTorch's device: cpu, to compare with the NumPy engine on equal terms",
        ),
    )

    PROFILES = {
        "tiny": dict(
            threads=1,
            train_size=600,
            val_size=100,
            test_size=500,
            epochs=1,
            seeds=1,  # tests: seconds
            mlp_hidden=32,
            max_shift=2,
            naive_batch=1,
            repeats=2,
            bench_steps=5,
        ),
        "small": dict(threads=1),  # the book build: well under a minute on 2 CPU cores
        "full": dict(
            train_size=60_000, val_size=5_000, epochs=10, naive_batch=32
        ),  # all of MNIST,
        # still NumPy on a CPU: about ten minutes per training
    }

    def validate(self):
        if self.example_shift > self.max_shift:
            raise ConfigError(
                f"example_shift={self.example_shift} exceeds max_shift={self.max_shift}"
            )
        if self.val_size >= self.train_size:
            raise ConfigError(
                f"val_size={self.val_size} must be smaller than train_size={self.train_size}"
            )
        side = ((28 - self.kernel + 1) // 2 - self.kernel + 1) // 2
        if side < 1:
            raise ConfigError(
                f"kernel={self.kernel} leaves nothing of a 28x28 image after two conv-pool stages"
            )


cfg = CNNConfig.from_cli()
utils.seed_everything(cfg.seed)
# cfg.threads (NumPy's BLAS and PyTorch alike) was applied by from_cli above.

# %% [markdown]
# ## Motivation: what flattening throws away
#
# The multilayer perceptron of {doc}`mlp`, trained by the engine of
# {doc}`autograd`, starts by flattening the image: 28×28 pixels become a vector of
# 784 numbers, and every unit of the first layer has its own weight for each of
# them. That costs three things.
#
# - **Locality.** Which pixels are neighbours is forgotten. Permute the 784 pixels
#   of every image the same way and the network learns exactly as well, so
#   whatever it knows about strokes and edges it has to learn from data.
# - **Parameters.** A layer that maps an image to $M$ outputs has one weight per
#   (pixel, output) pair. Its size grows with the image and with the output.
# - **Translation.** A digit moved by two pixels is, for the first layer, a
#   different vector, touching different weights. What the network learned about
#   a "3" in the middle it has not learned about a "3" further right.
#
# Let us measure the third. We load MNIST, hold out a validation set, and train
# an MLP with one hidden layer through the engine's training loop
# (`scratch.engine.loop.fit_arrays`). The pixels are standardised with the training
# set's mean and standard deviation.

# %%
images, labels = data.subsample(*data.mnist("train"), cfg.train_size, seed=cfg.seed)
test_images, test_labels = data.subsample(
    *data.mnist("test"), cfg.test_size, seed=cfg.seed
)
order = np.random.default_rng(cfg.seed).permutation(len(images))
val_rows, train_rows = order[: cfg.val_size], order[cfg.val_size :]

pixels = data.as_float(images[train_rows])
mean, std = float(pixels.mean()), float(pixels.std())


def prepare(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> standardised float32 (N, 1, 28, 28): one input channel."""
    return ((data.as_float(images) - mean) / std)[:, None]


x_train, y_train = prepare(images[train_rows]), labels[train_rows]
x_val, y_val = prepare(images[val_rows]), labels[val_rows]
x_test, y_test = prepare(test_images), test_labels
print(
    f"train {x_train.shape}, validation {x_val.shape}, test {x_test.shape}, {x_train.dtype}"
)


# %% [markdown]
# Every network of this chapter is trained the same way: Adam with a one-cycle
# learning-rate schedule {cite:p}`smith2019superconvergence`, one call of `fit_arrays`.


# %%
def train(model, seed: int):
    """Adam + one-cycle schedule through the engine's one training loop; returns (history, seconds)."""
    opt = optim.Adam(model.parameters(), lr=cfg.lr)
    steps = cfg.epochs * -(
        -len(x_train) // cfg.batch_size
    )  # one scheduler step per batch
    sched = optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps)
    started = time.perf_counter()
    history = fit_arrays(
        model,
        opt,
        x_train,
        y_train,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        val=(x_val, y_val),
        scheduler=sched,
        seed=seed,
    )
    return history, time.perf_counter() - started


mlp = nn.Sequential(
    nn.Flatten(),
    nn.Linear(28 * 28, cfg.mlp_hidden, dtype=np.float32),
    nn.ReLU(),
    nn.Linear(cfg.mlp_hidden, 10, dtype=np.float32),
)
mlp_history, mlp_seconds = train(mlp, cfg.seed)
print(
    f"MLP: {sum(p.size for p in mlp.parameters()):,} parameters, trained in {mlp_seconds:.1f} s"
)


# %% [markdown]
# Now the same test digits, moved right by a few pixels (the background, zero
# before standardisation, fills in from the left):


# %%
def shift(images: np.ndarray, pixels: int) -> np.ndarray:
    """Move every image `pixels` to the right; the empty columns get the background value."""
    if pixels == 0:
        return images
    out = np.full_like(images, (0 - mean) / std)  # the background, standardised
    out[..., pixels:] = images[..., :-pixels]
    return out


shifts = list(range(cfg.max_shift + 1))
mlp_shifted = [
    evaluate(mlp, shift(x_test, s), y_test, prefix="")["acc"] for s in shifts
]
for s, acc in zip(shifts, mlp_shifted):
    print(f"test digits shifted {s} px right: MLP accuracy {acc:.3f}")


# %% [markdown]
# The accuracy drops with every pixel, although nothing that matters for reading
# the digit has changed. One of the digits it gets wrong once moved (the first
# test digit that the MLP reads correctly in place and misreads when moved by
# `example_shift` pixels):


# %%
def predict(model, x: np.ndarray) -> np.ndarray:
    """Class probabilities of a batch, in eval mode, without a graph."""
    model.eval()
    with no_grad():
        probs = F.softmax(model(Tensor(x)), dim=-1).numpy()
    model.train()
    return probs


moved = shift(x_test, cfg.example_shift)
p_here, p_moved = predict(mlp, x_test), predict(mlp, moved)
confused = np.flatnonzero((p_here.argmax(1) == y_test) & (p_moved.argmax(1) != y_test))
example = (
    int(confused[0]) if len(confused) else 0
)  # (a fallback, should the MLP be shift-proof)
pair = np.stack([x_test[example, 0], moved[example, 0]])
titles = [
    f"in place: MLP says {p_here[example].argmax()} ({p_here[example].max():.0%})",
    f"{cfg.example_shift} px right: MLP says {p_moved[example].argmax()} ({p_moved[example].max():.0%})",
]
print(
    f"test digit {example}, a {y_test[example]}; "
    f"{len(confused)} of {len(y_test)} test digits are lost this way"
)
plots.show(
    plots.image_grid(
        pair,
        titles=titles,
        ncols=2,
        cell=220,
        title="The same digit, moved: the MLP's reading",
    ),
    cfg.run_dir / "shifted_digit.html",
)

# %% [markdown]
# A convolutional network builds the missing knowledge into its architecture
# instead: local receptive fields, weights shared across positions and pooling,
# the ideas of the Neocognitron {cite:p}`fukushima1980neocognitron` that
# {cite:t}`lecun1989backpropagation` trained end to end with backpropagation.
#
# ## Theory
#
# ### Convolution, as deep learning defines it
#
# A convolutional layer maps an input with $C$ channels (*feature maps*) to an
# output with $O$ channels. For each pair (output channel $o$, input channel $c$)
# it has a small kernel $W_{o,c}$ of $k_h \times k_w$ weights, and each output
# channel has a bias $b_o$. For a batch of $N$ images, stride $s$ and no padding,
#
# $$
# Y_{n,o,i,j} \;=\; b_o + \sum_{c=0}^{C-1} \sum_{p=0}^{k_h-1} \sum_{q=0}^{k_w-1}
# W_{o,c,p,q}\; X_{n,c,\; s i + p,\; s j + q} .
# $$ (cnn-conv)
#
# Each output value is a weighted sum over a $k_h \times k_w$ window of every
# input channel, its *local receptive field*, and the **same** weights are used
# at every position $(i, j)$: *weight sharing*. The operation in
# {eq}`cnn-conv` is a cross-correlation. A convolution in the mathematical sense
# flips the kernel, $\sum_{p} W_p X_{i - p}$; deep-learning libraries compute the
# unflipped form and call it convolution, which is harmless since the kernel is
# learned: a network trained with one would learn the flipped kernel of the other.
# The flip comes back in the backward pass.
#
# Weight sharing makes the layer *equivariant to translation*: shift the input by
# $\delta$ (a multiple of the stride) and the output shifts by $\delta/s$, with the
# same values, except where the window meets the border. The first layer of the
# MLP has no such property; here is a check on the shifted digit above, with the
# engine's `conv2d` and a random kernel:

# %%
kernel_check = Tensor(
    np.random.default_rng(cfg.seed).standard_normal((1, 1, 5, 5)).astype(np.float32)
)
y_here = F.conv2d(Tensor(x_test[example : example + 1]), kernel_check).numpy()[
    0, 0
]  # (24, 24)
y_moved = F.conv2d(Tensor(moved[example : example + 1]), kernel_check).numpy()[0, 0]
d = cfg.example_shift
print(
    f"conv(shifted digit) == shifted conv(digit), away from the left border: "
    f"{np.allclose(y_moved[:, d:], y_here[:, : y_here.shape[1] - d], atol=1e-5)}"
)
# The same float32 products at shifted positions: identical up to the GEMM's blocking (measured:
# equal to the bit, outputs up to ~14); 1e-5 of the largest output is float32's rounding with a
# wide margin, and a shift-dependent bug would be O(1).
shift_gap = np.abs(y_moved[:, d:] - y_here[:, : y_here.shape[1] - d]).max()
assert shift_gap <= 1e-5 * np.abs(y_here).max(), (
    f"conv2d is not shift-equivariant: {shift_gap:.1e}"
)

# %% [markdown]
# ### Padding, stride and the size of the output
#
# A window of $k$ pixels fits $H - k + 1$ times into $H$ pixels. Two options
# change that. *Padding* adds $P$ pixels (zeros) on each side, so that border
# pixels are visited as often as the rest and the size can be kept; *stride* $s$
# moves the window $s$ pixels at a time, which subsamples the output. The output
# height is
#
# $$
# H_{\text{out}} = \left\lfloor \frac{H + 2P - k}{s} \right\rfloor + 1 ,
# $$ (cnn-size)
#
# and the width alike; the floor drops a last window that would stick out.
# "Same" padding $P = (k - 1)/2$ with $s = 1$ keeps the size, $s = 2$ halves it.
# {cite:t}`dumoulin2016guide` work through every case, with pictures. The
# formula, against the engine's `conv2d` for a few settings:

# %%
probe = Tensor(np.zeros((1, 1, 28, 28), dtype=np.float32))
print(f"{'k':>3}{'P':>3}{'s':>3}  {'formula':>8}  {'conv2d':>7}")
for k, pad, s in [(5, 0, 1), (3, 1, 1), (3, 1, 2), (5, 2, 2), (4, 0, 3)]:
    formula = (28 + 2 * pad - k) // s + 1
    got = F.conv2d(
        probe, Tensor(np.zeros((1, 1, k, k), np.float32)), stride=s, padding=pad
    ).shape[2]
    print(f"{k:>3}{pad:>3}{s:>3}  {formula:>8}  {got:>7}")

# %% [markdown]
# The parameters of the layer are $O (C k_h k_w + 1)$, whatever the size of the
# image. A fully connected layer that produced the same $O \cdot H_{\text{out}} W_{\text{out}}$
# outputs from the same $C H W$ inputs would need
#
# $$
# \underbrace{O\,(C k_h k_w + 1)}_{\text{convolution}}
# \qquad\text{against}\qquad
# \underbrace{O\, H_{\text{out}} W_{\text{out}}\,(C H W + 1)}_{\text{fully connected}} .
# $$ (cnn-params)

# %%
k, maps = cfg.kernel, cfg.channels1  # the first layer of the network below
conv_label = f"conv {k}x{k}, 1 -> {maps} maps"
print(f"{'image':>9}  {conv_label:>22}  {'dense layer, same outputs':>26}")
for side in (28, 64, 224):
    out = side - k + 1  # eq. (cnn-size), P = 0, s = 1
    print(
        f"{side:>4}x{side:<4}  {maps * (1 * k * k + 1):>22,}  {maps * out * out * (side * side + 1):>26,}"
    )


# %% [markdown]
# ### Pooling
#
# A pooling layer summarises each window of a map by one number, channel by
# channel, usually with non-overlapping 2×2 windows (stride 2), which halves each
# side. *Max pooling* keeps the largest value,
#
# $$
# Y_{n,c,i,j} = \max_{0 \le p, q < k} X_{n,c,\; s i + p,\; s j + q} ,
# $$ (cnn-maxpool)
#
# and *average pooling* the mean. Pooling has no parameters. It makes the exact
# position of a feature within the window irrelevant (a small *invariance*,
# where convolution gave equivariance), and it shrinks the maps, so the next
# convolution covers more of the image for the same cost. The Neocognitron's
# "C-cells" and LeNet's subsampling layers {cite:p}`lecun1998gradient` played
# this role; max pooling is the modern default.
#
# ### Receptive fields
#
# A unit of the first layer sees $k$ pixels per side. A unit of a later layer
# sees a window of the layer below, each of whose units sees a window of the
# layer below that, and so on. Let $r_l$ be the receptive field (in input pixels
# per side) of a unit of layer $l$ and $j_l$ the distance, in input pixels,
# between two neighbouring units of that layer (its *jump*). A layer of kernel
# $k_l$ and stride $s_l$ gives
#
# $$
# r_l = r_{l-1} + (k_l - 1)\, j_{l-1}, \qquad j_l = j_{l-1}\, s_l, \qquad r_0 = j_0 = 1 .
# $$ (cnn-receptive)
#
# Each stride multiplies the jump, so the layers after a pooling grow the
# receptive field twice as fast. Small kernels stacked deep see far.
#
# ### The backward pass of a convolution
#
# Let $L$ be the loss and write $\bar Z = \partial L / \partial Z$ for any array
# $Z$, as in {doc}`autograd`. Eq. {eq}`cnn-conv` is linear in $W$, in $b$ and in
# $X$, and each weight and each input pixel takes part in many output values: by
# the multivariate chain rule their gradients are sums over those outputs.
#
# **Bias.** $b_o$ is added to every output value of channel $o$:
#
# $$
# \bar b_o = \sum_{n,i,j} \bar Y_{n,o,i,j} .
# $$ (cnn-grad-b)
#
# **Weights.** $W_{o,c,p,q}$ multiplies the input pixel $X_{n,c,si+p,sj+q}$ in output
# $Y_{n,o,i,j}$, for every $n, i, j$:
#
# $$
# \bar W_{o,c,p,q} = \sum_{n} \sum_{i,j} \bar Y_{n,o,i,j}\; X_{n,c,\; s i + p,\; s j + q} .
# $$ (cnn-grad-w)
#
# Read with $(p, q)$ as the position and $(i, j)$ as the summation index, this is
# {eq}`cnn-conv` again: the gradient of the kernel is the **cross-correlation of
# the input with the output gradient**, $\bar Y$ playing the kernel (for $s > 1$, a
# kernel whose entries are $s$ apart). Summed over the batch, it is a
# convolution layer that takes the $N$ images as its input channels.
#
# **Input.** For $s = 1$, pixel $X_{n,c,h,w}$ is multiplied by $W_{o,c,p,q}$ in the
# output at $(i, j) = (h - p, w - q)$, wherever that is a valid output position:
#
# $$
# \bar X_{n,c,h,w} = \sum_{o} \sum_{p,q} \bar Y_{n,o,\; h - p,\; w - q}\; W_{o,c,p,q}
# \;=\; \sum_{o} \sum_{p,q} \tilde{\bar Y}_{n,o,\; h + p,\; w + q}\; W_{o,c,\; k_h - 1 - p,\; k_w - 1 - q} ,
# $$ (cnn-grad-x)
#
# where $\bar Y$ is taken as zero outside the output and $\tilde{\bar Y}$ is $\bar Y$
# zero-padded by $k - 1$ on each side. The left form has the index *difference*
# of a true convolution; the right form writes it as a cross-correlation, the
# operation of {eq}`cnn-conv`, with the **kernel flipped** in both axes and the
# roles of $o$ and $c$ swapped. The padding makes it a *full* convolution: every
# position where the kernel overlaps $\bar Y$ at all, so the result has the input's
# size $H = H_{\text{out}} + k - 1$. With stride $s$, the same holds after spreading
# $\bar Y$ out with $s - 1$ zeros between neighbours (the gaps are the positions
# that no window started at). This operation, run forwards, is what libraries call
# a *transposed convolution* (`ConvTranspose2d`): the backward pass of a
# convolution with respect to its input {cite:p}`dumoulin2016guide`.
#
# ### The backward pass of max pooling
#
# Max pooling passes on one value of each window, so a small change of any other
# input in the window changes nothing: their gradient is zero. The winner's
# output *is* the input, so its gradient is passed through unchanged:
#
# $$
# \bar X_{n,c,h,w} = \sum_{(i,j)\,:\; m_{n,c,i,j} = (h,w)} \bar Y_{n,c,i,j} ,
# \qquad
# m_{n,c,i,j} = \mathop{\mathrm{argmax}}_{(si+p,\; sj+q),\; 0 \le p,q < k} X_{n,c,\; si+p,\; sj+q} ,
# $$ (cnn-maxpool-grad)
#
# where $m_{n,c,i,j}$ is the position of the winner of window $(i, j)$: the
# gradient is *routed to the argmax* of each window (a sum only when windows
# overlap and one pixel wins several). The backward pass needs to know which
# input won, so the forward pass keeps either the indices or, as the engine does,
# the input and the output, and finds the winners again.
#
# ## Implementation
#
# ### Loops first
#
# Equations {eq}`cnn-conv` to {eq}`cnn-maxpool-grad`, transcribed into loops,
# with no care for speed: each loop visits one output value and does exactly what
# its equation says. The backward loops apply the chain rule output by output:
# each $\bar Y_{n,o,i,j}$ sends $\bar Y_{n,o,i,j} W_{o}$ to its window of the
# input gradient and $\bar Y_{n,o,i,j}$ times its window of the input to the
# weight gradient. Summed over all outputs, that is {eq}`cnn-grad-w` and
# {eq}`cnn-grad-x`.


# %%
def conv2d_loops(x, w, b, stride=1, padding=0):
    """Eq. (cnn-conv) by loops. x (N, C, H, W), w (O, C, k, k), b (O,) -> (N, O, OH, OW)."""
    x = np.pad(
        x, ((0, 0), (0, 0), (padding, padding), (padding, padding))
    )  # zeros around
    n_img, _, h, wid = x.shape
    n_out, _, k, _ = w.shape
    oh, ow = (h - k) // stride + 1, (wid - k) // stride + 1  # eq. (cnn-size)
    y = np.zeros((n_img, n_out, oh, ow), dtype=x.dtype)
    for n in range(n_img):
        for o in range(n_out):
            for i in range(oh):
                for j in range(ow):
                    window = x[
                        n, :, i * stride : i * stride + k, j * stride : j * stride + k
                    ]  # (C, k, k)
                    y[n, o, i, j] = (
                        np.sum(window * w[o]) + b[o]
                    )  # the same w[o] everywhere
    return y


def conv2d_loops_backward(gy, x, w, stride=1, padding=0):
    """The gradients (gx, gw, gb) of conv2d_loops, given gy = dL/dY of shape (N, O, OH, OW)."""
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    k = w.shape[2]
    gx, gw = np.zeros_like(x), np.zeros_like(w)
    n_img, n_out, oh, ow = gy.shape
    for n in range(n_img):
        for o in range(n_out):
            for i in range(oh):
                for j in range(ow):
                    rows, cols = (
                        slice(i * stride, i * stride + k),
                        slice(j * stride, j * stride + k),
                    )
                    gx[n, :, rows, cols] += (
                        gy[n, o, i, j] * w[o]
                    )  # eq. (cnn-grad-x), one term
                    gw[o] += (
                        gy[n, o, i, j] * x[n, :, rows, cols]
                    )  # eq. (cnn-grad-w), one term
    gb = gy.sum(axis=(0, 2, 3))  # eq. (cnn-grad-b)
    h, wid = x.shape[2] - 2 * padding, x.shape[3] - 2 * padding
    return (
        gx[:, :, padding : padding + h, padding : padding + wid],
        gw,
        gb,
    )  # drop the padding's gradient


def max_pool2d_loops(x, k):
    """Eq. (cnn-maxpool) with k x k windows side by side; also returns each window's argmax."""
    n_img, n_ch, h, wid = x.shape
    y = np.zeros((n_img, n_ch, h // k, wid // k), dtype=x.dtype)
    winner = np.zeros(
        y.shape, dtype=int
    )  # flat index (p * k + q) of the maximum in its window
    for n, c, i, j in np.ndindex(*y.shape):
        window = x[n, c, i * k : (i + 1) * k, j * k : (j + 1) * k]
        winner[n, c, i, j] = window.argmax()  # the first maximum on a tie, as PyTorch
        y[n, c, i, j] = window.flat[winner[n, c, i, j]]
    return y, winner


def max_pool2d_loops_backward(gy, winner, x_shape, k):
    """Eq. (cnn-maxpool-grad): each window's gradient goes to its winner, nothing to the rest."""
    gx = np.zeros(x_shape, dtype=gy.dtype)
    for n, c, i, j in np.ndindex(*gy.shape):
        p, q = divmod(winner[n, c, i, j], k)
        gx[n, c, i * k + p, j * k + q] += gy[n, c, i, j]
    return gx


# %% [markdown]
# The oracle is PyTorch, in float64, on a small random input with stride 2 and
# padding 1, so that every index of the formulas is exercised. Its autograd
# computes the gradients for a random output gradient `gy`:

# %%
rng = np.random.default_rng(cfg.seed)
xs, ws, bs = (
    rng.standard_normal((2, 3, 9, 9)),
    rng.standard_normal((4, 3, 3, 3)),
    rng.standard_normal(4),
)
tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (xs, ws, bs))
ty = torch.nn.functional.conv2d(tx, tw, tb, stride=2, padding=1)
gy = rng.standard_normal(ty.shape)
ty.backward(torch.from_numpy(gy))

ys = conv2d_loops(xs, ws, bs, stride=2, padding=1)
gxs, gws, gbs = conv2d_loops_backward(gy, xs, ws, stride=2, padding=1)
for name, ours, theirs in [
    ("Y", ys, ty),
    ("dL/dX", gxs, tx.grad),
    ("dL/dW", gws, tw.grad),
    ("dL/db", gbs, tb.grad),
]:
    print(
        f"conv2d {name:<6} {str(ours.shape):<15} max |loops - torch| = {np.abs(ours - theirs.detach().numpy()).max():.1e}"
    )
    # float64, sums of up to a few hundred products of size ~1: the loops and PyTorch round
    # differently, by ~1e-15 (measured <= 5.3e-15); 1e-10 is far above that, far below an index bug.
    assert np.abs(ours - theirs.detach().numpy()).max() <= 1e-10, (
        f"conv2d loops: {name} differs from PyTorch's"
    )

tx = torch.tensor(xs[:, :, :8, :8], requires_grad=True)  # 8 x 8: whole 2 x 2 windows
tp = torch.nn.functional.max_pool2d(tx, 2)
gp = rng.standard_normal(tp.shape)
tp.backward(torch.from_numpy(gp))
pooled, winner = max_pool2d_loops(xs[:, :, :8, :8], 2)
print(
    f"max_pool2d Y      max |loops - torch| = {np.abs(pooled - tp.detach().numpy()).max():.1e}"
)
print(
    f"max_pool2d dL/dX  max |loops - torch| = "
    f"{np.abs(max_pool2d_loops_backward(gp, winner, tx.shape, 2) - tx.grad.numpy()).max():.1e}"
)
# Max pooling does no arithmetic: it picks one input per window and routes each window's gradient
# to that pixel alone (windows side by side), so the two must agree exactly (measured 0).
assert np.array_equal(pooled, tp.detach().numpy()), (
    "max_pool2d loops: the maxima differ from PyTorch's"
)
assert np.array_equal(
    max_pool2d_loops_backward(gp, winner, tx.shape, 2), tx.grad.numpy()
), "max_pool2d loops: the gradient differs from PyTorch's"

# %% [markdown]
# The closed forms can be checked with the forward loop itself, for stride 1. By
# {eq}`cnn-grad-x`, the input gradient is the forward convolution of the
# $(k-1)$-padded output gradient with the flipped kernel, input and output
# channels swapped; by {eq}`cnn-grad-w`, the weight gradient is the forward
# convolution of the input, its batch axis taken as channels, with the output
# gradient as the kernel:

# %%
y1 = conv2d_loops(xs, ws, bs)  # stride 1: (2, 4, 7, 7)
gy1 = rng.standard_normal(y1.shape)
gx1, gw1, _ = conv2d_loops_backward(gy1, xs, ws)
k = ws.shape[2]
flipped = np.flip(ws, axis=(2, 3)).transpose(
    1, 0, 2, 3
)  # (C, O, k, k): flipped, channels swapped
gx_full = conv2d_loops(
    gy1, flipped, np.zeros(flipped.shape[0]), padding=k - 1
)  # a full convolution
gw_corr = conv2d_loops(
    xs.transpose(1, 0, 2, 3),
    gy1.transpose(1, 0, 2, 3),  # (C, N, H, W) * (O, N, OH, OW)
    np.zeros(gy1.shape[1]),
).transpose(1, 0, 2, 3)  # -> (C, O, k, k) -> (O, C, k, k)
print(
    f"dL/dX = full convolution of dL/dY with the flipped kernel: {np.allclose(gx_full, gx1)}"
)
print(
    f"dL/dW = correlation of X with dL/dY:                       {np.allclose(gw_corr, gw1)}"
)
# The same float64 products summed in another order (measured 3.6e-15 and 1.2e-14); 1e-10 as above.
assert np.abs(gx_full - gx1).max() <= 1e-10, (
    "dL/dX is not the full convolution with the flipped kernel"
)
assert np.abs(gw_corr - gw1).max() <= 1e-10, (
    "dL/dW is not the correlation of X with dL/dY"
)


# %% [markdown]
# ### Vectorized: windows as a view, and im2col
#
# The loops spend nearly all their time in the Python interpreter, a few
# microseconds for each of the $N \cdot O \cdot H_{\text{out}} W_{\text{out}}$
# windows. All the arithmetic can be moved into NumPy by noticing that the
# windows are just another way of reading the input's memory. A NumPy array is a
# block of memory plus *strides*, the bytes to skip per step along each axis. The
# window starting at $(i, j)$ and its element $(p, q)$ sit at row $i + p$, column
# $j + q$: adding two axes $(p, q)$ with the *same* strides as $(i, j)$ turns
# (N, C, H, W) into (N, C, $H_{\text{out}}$, $W_{\text{out}}$, k, k) without
# copying a byte. NumPy's `sliding_window_view` does exactly that, and
# {eq}`cnn-conv` becomes one `einsum`:


# %%
def conv2d_windows(x, w, b):
    """Eq. (cnn-conv), stride 1, on a strided view of all windows at once."""
    windows = np.lib.stride_tricks.sliding_window_view(
        x, w.shape[2:], axis=(2, 3)
    )  # (N, C, OH, OW, k, k)
    return (
        np.einsum("ncijpq,ocpq->noij", windows, w, optimize=True)
        + b[None, :, None, None]
    )


windows = np.lib.stride_tricks.sliding_window_view(xs, (3, 3), axis=(2, 3))
print(f"input {xs.shape}, strides {xs.strides} (bytes)")
print(
    f"windows {windows.shape}, strides {windows.strides}: a view of the same memory, "
    f"{np.shares_memory(windows, xs)}"
)
print(f"einsum on the windows == loops: {np.allclose(conv2d_windows(xs, ws, bs), y1)}")
# float64 again, products summed in einsum's order (measured 3.6e-15); 1e-10.
assert np.abs(conv2d_windows(xs, ws, bs) - y1).max() <= 1e-10, (
    "the einsum convolution differs from the loops"
)


# %% [markdown]
# The library goes one step further, as fast convolution codes have done since
# {cite:t}`chellapilla2006high`: it *copies* the windows into one matrix, so that
# the whole layer is a single matrix product (GEMM), the operation on which BLAS
# libraries come closest to the processor's peak. This is **im2col** ("image to
# columns"). Each column of the matrix `cols` holds one receptive field, $C k_h k_w$
# numbers, and there is one column per output position and image. The weights,
# reshaped to $O \times C k_h k_w$, multiply it:
#
# $$
# \underbrace{Y_2}_{O \times (H_{\text{out}} W_{\text{out}} N)} = \underbrace{W_2}_{O \times C k_h k_w}\;
# \underbrace{\mathrm{cols}}_{C k_h k_w \times (H_{\text{out}} W_{\text{out}} N)} + \, b .
# $$ (cnn-im2col)
#
# The backward pass is that of a matrix product ({doc}`autograd`):
# $\bar W_2 = \bar Y_2\, \mathrm{cols}^{\top}$, which is {eq}`cnn-grad-w`, and
# $\overline{\mathrm{cols}} = W_2^{\top} \bar Y_2$, whose entries are then added back
# to the pixels they were copied from (*col2im*), which is {eq}`cnn-grad-x`: a
# pixel that sits in several windows collects the gradients of all of them. Here
# is `scratch.engine.conv2d`; its module docstring explains the details, among
# them why the batch axis is kept last inside these functions:
#
# ```{literalinclude} ../../code/scratch/engine/conv.py
# :pyobject: conv2d
# ```
#
# The im2col copy does not loop over pixels either: for each of the $k_h k_w$
# kernel offsets $(p, q)$, the rows $p, p + s, p + 2s, \ldots$ and the matching
# columns of the padded input are one strided slice, which fills the $C$ rows of
# `cols` for that offset across all windows and images at once. The helper that
# yields these slices:
#
# ```{literalinclude} ../../code/scratch/engine/conv.py
# :pyobject: _offsets
# ```
#
# `max_pool2d` uses the same offsets: the maximum over a window is the running
# maximum of $k_h k_w$ shifted slices, and the backward pass routes the gradient
# to the first slice that equals the maximum, as in {eq}`cnn-maxpool-grad`.
#
# :::{admonition} `max_pool2d` in the library
# :class: dropdown
# ```{literalinclude} ../../code/scratch/engine/conv.py
# :pyobject: max_pool2d
# ```
# :::
#
# How much faster? One forward and one backward pass (gradients for the input,
# the weights and the bias) of a first-layer convolution on a few MNIST digits,
# by loops and by the library, and the forward pass of the window view as well.
# The library's tests (`tests/engine/test_conv.py`) hold it to PyTorch and to
# finite differences; here we check it against the loops once more:


# %%
def best_time(fn, repeats: int) -> float:
    """The fastest of `repeats` runs, in seconds: other processes can only add time."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


xb = x_test[: cfg.naive_batch].astype(np.float64)  # (B, 1, 28, 28)
wb = rng.standard_normal((cfg.channels1, 1, cfg.kernel, cfg.kernel)) / cfg.kernel
bb = np.zeros(cfg.channels1)
gyb = rng.standard_normal((len(xb), cfg.channels1, 29 - cfg.kernel, 29 - cfg.kernel))


def library_pass():
    """Forward and backward through scratch.engine's conv2d; returns the output and the gradients."""
    x_t, w_t, b_t = (Tensor(a, requires_grad=True) for a in (xb, wb, bb))
    y_t = F.conv2d(x_t, w_t, b_t)
    y_t.backward(gyb)
    return y_t.numpy(), x_t.grad, w_t.grad, b_t.grad


by_library, by_loops = (
    library_pass(),
    (conv2d_loops(xb, wb, bb), *conv2d_loops_backward(gyb, xb, wb)),
)
same = all(np.allclose(a, b) for a, b in zip(by_library, by_loops))
library_vs_loops = [
    np.abs(a - b).max() / np.abs(b).max() for a, b in zip(by_library, by_loops)
]
# Output and gradients in float64 by im2col + GEMM and by the loops: rounding, relative to the largest
# entry of each (measured 1.2e-15 to 1.9e-15); 1e-10 is far above it, far below an indexing bug.
assert max(library_vs_loops) <= 1e-10, (
    f"the library's conv2d differs from the loops: {max(library_vs_loops):.1e}"
)
timings = {  # (forward, forward + backward) seconds
    "loops": (
        best_time(lambda: conv2d_loops(xb, wb, bb), 1),
        best_time(
            lambda: (conv2d_loops(xb, wb, bb), conv2d_loops_backward(gyb, xb, wb)), 1
        ),
    ),
    "window view + einsum": (
        best_time(lambda: conv2d_windows(xb, wb, bb), cfg.repeats),
        float("nan"),
    ),
    "library (im2col)": (
        best_time(lambda: F.conv2d(Tensor(xb), Tensor(wb), Tensor(bb)), cfg.repeats),
        best_time(library_pass, cfg.repeats),
    ),
}
print(
    f"{len(xb)} images, {cfg.channels1} kernels of {cfg.kernel}x{cfg.kernel}; library == loops: {same}"
)
print(f"{'':22}{'forward':>11}{'speed-up':>10}{'fwd + bwd':>12}{'speed-up':>10}")
for name, (fwd, both) in timings.items():
    backward = (
        ("-", "")
        if np.isnan(both)
        else (f"{both * 1e3:.2f} ms", f"{timings['loops'][1] / both:.0f}x")
    )
    print(
        f"{name:22}{fwd * 1e3:>8.2f} ms{timings['loops'][0] / fwd:>9.0f}x{backward[0]:>12}{backward[1]:>10}"
    )
speedup_conv = timings["loops"][1] / timings["library (im2col)"][1]


# %% [markdown]
# (The loops ran once, the fast versions `repeats` times with the best kept; on a
# shared machine all these times are upper bounds.) The price of im2col is
# memory: `cols` holds each input pixel once per window that contains it, up to
# $k_h k_w$ copies, and it is kept for the backward pass.
#
# ## Experiment: a CNN trained by the NumPy engine
#
# The network has two convolution stages and a linear classifier: each stage is a
# $k \times k$ convolution without padding, a ReLU and a 2×2 max pooling. Our `nn`
# has PyTorch's names and signatures, so one function builds the network with
# either library, which we will use for the comparison with PyTorch at the end:


# %%
def make_cnn(lib, dtype, cfg: CNNConfig):
    """conv-ReLU-pool, conv-ReLU-pool, linear; `lib` is scratch.engine.nn or torch.nn."""
    side = (
        (28 - cfg.kernel + 1) // 2 - cfg.kernel + 1
    ) // 2  # eq. (cnn-size), four times
    return lib.Sequential(
        lib.Conv2d(1, cfg.channels1, cfg.kernel, dtype=dtype),
        lib.ReLU(),
        lib.MaxPool2d(2),
        lib.Conv2d(cfg.channels1, cfg.channels2, cfg.kernel, dtype=dtype),
        lib.ReLU(),
        lib.MaxPool2d(2),
        lib.Flatten(),
        lib.Linear(cfg.channels2 * side * side, 10, dtype=dtype),
    )


model = make_cnn(nn, np.float32, cfg)
print(model)


# %% [markdown]
# Each layer's output shape, parameters and receptive field, from
# {eq}`cnn-size`, {eq}`cnn-params` and {eq}`cnn-receptive`:


# %%
def first(v) -> int:
    """An int or the first of a (height, width) pair."""
    return int(np.atleast_1d(v)[0])


h, field_size, jump, fields = Tensor(np.zeros((1, 1, 28, 28), np.float32)), 1, 1, []
print(
    f"{'layer':<12}{'output':>18}{'parameters':>12}{'receptive field':>17}{'jump':>6}"
)
with no_grad():
    for layer in model:
        h = layer(h)
        if isinstance(layer, (nn.Conv2d, nn.MaxPool2d)):  # eq. (cnn-receptive)
            field_size += (first(layer.kernel_size) - 1) * jump
            jump *= first(layer.stride)
        size = sum(p.size for p in layer.parameters())
        fields.append(field_size)
        print(
            f"{type(layer).__name__:<12}{str(h.shape):>18}{size:>12,}{field_size:>14}x{field_size:<2}{jump:>6}"
        )
n_params = sum(p.size for p in model.parameters())
print(
    f"total: {n_params:,} parameters, against the MLP's {sum(p.size for p in mlp.parameters()):,}"
)

# %% [markdown]
# The receptive field can also be *seen*. Replace every weight by one, the
# ReLUs by the identity and the max by the sum, and ask the engine for the
# gradient of one unit of the last convolution with respect to the image: it is
# nonzero exactly on the unit's receptive field, and its values count the paths
# from each pixel to the unit.

# %%
image = Tensor(np.zeros((1, 1, 28, 28)), requires_grad=True)
ones1, ones2 = (Tensor(np.ones(layer.weight.shape)) for layer in (model[0], model[3]))
skeleton = F.conv2d(
    4 * F.avg_pool2d(F.conv2d(image, ones1), 2), ones2
)  # conv -> sum pool -> conv, linear
centre = skeleton.shape[2] // 2
skeleton[0, 0, centre, centre].backward()
support = np.flatnonzero(image.grad[0, 0].any(axis=0))
print(
    f"the unit at ({centre}, {centre}) of the second convolution sees "
    f"{len(support)} columns of pixels; eq. (cnn-receptive) says {fields[3]}"
)
assert len(support) == fields[3], (
    "the receptive field seen by autograd is not eq. (cnn-receptive)'s"
)  # counts: exact
fig = plots.heatmap(
    image.grad[0, 0],
    title="Receptive field of one unit of the second convolution "
    "(paths from each pixel)",
    xlabel="pixel column",
    ylabel="pixel row",
)
fig.update_xaxes(constrain="domain")
fig.update_yaxes(scaleanchor="x", constrain="domain")
plots.show(fig, cfg.run_dir / "receptive_field.html")

# %% [markdown]
# The centre of the field is reached by many more paths than its border: the
# *effective* receptive field, where a unit's gradient really comes from, is
# smaller than the nominal one and concentrated at its centre
# {cite:p}`luo2016understanding`.
#
# ### Training
#
# The network is trained with `fit_arrays`, exactly as the MLP was, for `seeds`
# different initialisations and batch orders (`seed`, `seed + 1`, ...). The
# initial weights of each run are kept, for PyTorch below.

# %%
runs = []  # one dict per seed
for seed in range(cfg.seed, cfg.seed + cfg.seeds):
    utils.seed_everything(seed)  # the initial weights
    model = make_cnn(nn, np.float32, cfg)
    initial_state = {
        name: p.data.copy() for name, p in model.named_parameters()
    }  # for PyTorch, below
    print(f"seed {seed}:")
    history, seconds = train(model, seed)
    runs.append(
        dict(
            seed=seed,
            model=model,
            initial_state=initial_state,
            history=history,
            seconds=seconds,
            **evaluate(model, x_test, y_test, prefix="test_"),
        )
    )

model = runs[0]["model"]  # the first seed's network is the one we look into
test_accs = [run["test_acc"] for run in runs]
train_seconds = min(run["seconds"] for run in runs)
for run in runs:
    print(
        f"seed {run['seed']}: test accuracy {run['test_acc']:.4f}, training {run['seconds']:.1f} s"
    )
print(
    f"test accuracy over {len(runs)} seeds: mean {np.mean(test_accs):.4f}, range "
    f"{min(test_accs):.4f} to {max(test_accs):.4f}; fastest training {train_seconds:.1f} s "
    f"(a shared machine: an upper bound)"
)

# %%
fig = go.Figure()
for run in runs:
    epochs = [row["epoch"] for row in run["history"].epochs]
    fig.add_trace(
        go.Scatter(
            x=epochs,
            y=run["history"]["val_acc"],
            mode="lines+markers",
            name=f"CNN, seed {run['seed']}",
        )
    )
fig.add_trace(
    go.Scatter(
        x=[row["epoch"] for row in mlp_history.epochs],
        y=mlp_history["val_acc"],
        mode="lines+markers",
        name="MLP",
        line=dict(dash="dash"),
    )
)
fig.update_layout(
    title="Validation accuracy after each epoch",
    xaxis_title="epoch",
    yaxis_title="validation accuracy",
    height=380,
    hovermode="x unified",
)
fig.update_xaxes(dtick=1)
plots.show(fig, cfg.run_dir / "validation_accuracy.html")

# %% [markdown]
# ### What the first layer learned
#
# The kernels of the first convolution, each a `kernel` × `kernel` template that
# the layer slides over the image; red is positive, blue negative. Look for
# oriented bands: a band of positive weights next to a band of negative ones
# responds where the image changes from dark to light in one direction, an edge
# detector; a single band, a stroke of that orientation. Kernels this small,
# trained this briefly, stay noisy, and how clean they look varies from run to
# run; the feature maps below show what each of them responds to.

# %%
filters = model[0].weight.data[:, 0]  # (channels1, k, k)
plots.show(
    plots.image_grid(
        filters,
        titles=[f"kernel {i}" for i in range(len(filters))],
        ncols=8,
        symmetric=True,
        cell=110,
        title="First-layer kernels after training",
    ),
    cfg.run_dir / "filters.html",
)

# %% [markdown]
# The feature maps of one test digit: the outputs of the first convolution (after
# its ReLU), one per kernel, then those of the second, on a coarser grid.

# %%
digit = Tensor(x_test[:1])  # (1, 1, 28, 28)
maps = {}
with no_grad():
    h = digit
    for i, layer in enumerate(model):
        h = layer(h)
        maps[i] = h.numpy()[0]
relu1, relu2 = maps[1], maps[4]  # (channels, side, side)
plots.show(
    plots.image_grid(
        relu1,
        ncols=8,
        cell=95,
        titles=[f"map {i}" for i in range(len(relu1))],
        title=f"First convolution + ReLU on the first test digit (a {y_test[0]}): "
        f"{relu1.shape[1]}x{relu1.shape[2]} maps",
    ),
    cfg.run_dir / "feature_maps_1.html",
)
plots.show(
    plots.image_grid(
        relu2,
        ncols=8,
        cell=95,
        titles=[f"map {i}" for i in range(len(relu2))],
        title=f"Second convolution + ReLU: {relu2.shape[1]}x{relu2.shape[2]} maps",
    ),
    cfg.run_dir / "feature_maps_2.html",
)

# %% [markdown]
# ### Shifted digits
#
# Back to the motivation: the test digits shifted right, now read by the CNN as
# well. The convolutions see a shifted stroke with the same weights, and each
# pooling absorbs part of a shift, so the CNN's accuracy falls more slowly than
# the MLP's.

# %%
cnn_shifted = [
    evaluate(model, shift(x_test, s), y_test, prefix="")["acc"] for s in shifts
]
fig = plots.lines(
    {"CNN": cnn_shifted, "MLP": mlp_shifted},
    x=shifts,
    title="Test accuracy on digits shifted to the right",
    xlabel="shift (pixels)",
    ylabel="test accuracy",
)
fig.update_traces(mode="lines+markers")
fig.update_xaxes(dtick=1)
plots.show(fig, cfg.run_dir / "shift_robustness.html")
for s, cnn_acc, mlp_acc in zip(shifts, cnn_shifted, mlp_shifted):
    print(f"shifted {s} px: CNN {cnn_acc:.3f}, MLP {mlp_acc:.3f}")
p_cnn = predict(model, np.stack([x_test[example], moved[example]]))
print(
    f"the digit of the motivation (a {y_test[example]}): the CNN says {p_cnn[0].argmax()} in place "
    f"and {p_cnn[1].argmax()} at {cfg.example_shift} px"
)


# %% [markdown]
# The CNN is not immune either: with 2×2 pooling, an exact invariance holds only
# for shifts that are multiples of the total stride, and the classifier on top is
# fully connected. Training on shifted copies (*data augmentation*) teaches the
# rest, as the LeNet chapter ({doc}`../vision/lenet`) does.
#
# ## The same network in PyTorch
#
# Our engine claims to do what PyTorch does. The strongest test is to train the
# same network both ways: `make_cnn` with `torch.nn`, the first seed's initial
# weights copied in by name (our `Sequential` names its parameters as PyTorch's
# does), the same optimizer and schedule, and the same batches in the same order.
# For the order, a sampler replays the permutations that the engine's `fit_arrays` drew
# (`np.random.default_rng(seed).permutation`, once per epoch). PyTorch trains
# through the book's PyTorch loop, `scratch.train.fit`, configured by the
# chapter's config (which subclasses its `TrainConfig`), on the same number of
# CPU threads.


# %%
class ReplayOrder(torch.utils.data.Sampler):
    """The batches of scratch.engine.loop.fit_arrays(..., seed=seed): one permutation per epoch, in order."""

    def __init__(self, n: int, batch_size: int, seed: int):
        self.n, self.batch_size, self.rng = n, batch_size, np.random.default_rng(seed)

    def __iter__(self):  # called once per epoch
        order = self.rng.permutation(self.n)
        return iter(
            [
                order[i : i + self.batch_size].tolist()
                for i in range(0, self.n, self.batch_size)
            ]
        )

    def __len__(self):
        return -(-self.n // self.batch_size)


first_run = runs[0]
twin = make_cnn(torch.nn, torch.float32, cfg)
twin.load_state_dict(
    {
        name: torch.from_numpy(value)
        for name, value in first_run["initial_state"].items()
    }
)
train_set = TensorDataset(torch.from_numpy(x_train), torch.from_numpy(y_train))
# batch_size=None: the sampler yields whole batches, which TensorDataset indexes in one go
train_loader = DataLoader(
    train_set,
    sampler=ReplayOrder(len(x_train), cfg.batch_size, first_run["seed"]),
    batch_size=None,
)
val_loader = DataLoader(
    TensorDataset(torch.from_numpy(x_val), torch.from_numpy(y_val)), batch_size=1024
)
test_loader = DataLoader(
    TensorDataset(torch.from_numpy(x_test), torch.from_numpy(y_test)), batch_size=1024
)

torch_opt = torch.optim.Adam(twin.parameters(), lr=cfg.lr)
torch_sched = torch.optim.lr_scheduler.OneCycleLR(  # ours never cycles the momentum: neither does this one
    torch_opt,
    max_lr=cfg.lr,
    total_steps=cfg.epochs * len(train_loader),
    cycle_momentum=False,
)
started = time.perf_counter()
torch_history = scratch.train.fit(
    twin,
    torch_opt,
    train_loader,
    cfg,
    val_loader=val_loader,
    scheduler=torch_sched,
    checkpoint=None,
)
torch_seconds = time.perf_counter() - started
torch_test = scratch.train.evaluate(twin, test_loader, prefix="test_")

# %% [markdown]
# The per-step training losses of the two runs, on top of each other, and the
# difference between them:

# %%
engine_steps, torch_steps = (
    np.array(first_run["history"].steps),
    np.array(torch_history.steps),
)
step_axis = np.arange(1, len(engine_steps) + 1)
fig = make_subplots(
    rows=2,
    cols=1,
    shared_xaxes=True,
    vertical_spacing=0.08,
    subplot_titles=["cross-entropy of the batch", "|engine - PyTorch|"],
)
fig.add_trace(
    go.Scatter(x=step_axis, y=engine_steps, name="scratch.engine (NumPy)"), row=1, col=1
)
fig.add_trace(go.Scatter(x=step_axis, y=torch_steps, name="PyTorch"), row=1, col=1)
# floored at 1e-9: a step where both agree exactly would vanish from a log axis
fig.add_trace(
    go.Scatter(
        x=step_axis,
        y=np.maximum(np.abs(engine_steps - torch_steps), 1e-9),
        name="difference",
        line=dict(color=plots.COLORS[2]),
    ),
    row=2,
    col=1,
)
fig.update_yaxes(type="log", exponentformat="power")
fig.update_xaxes(title_text="step", row=2, col=1)
fig.update_layout(
    title="Training loss of each step: the same network, start and batches",
    height=560,
    hovermode="x unified",
)
plots.show(fig, cfg.run_dir / "engine_vs_torch.html")
first_steps = min(10, len(engine_steps))
print(
    f"largest |loss difference| over the first {first_steps} steps: "
    f"{np.abs(engine_steps[:first_steps] - torch_steps[:first_steps]).max():.1e}; "
    f"over all {len(engine_steps)}: {np.abs(engine_steps - torch_steps).max():.1e}"
)
# float32 in both engines: a loss of ~2 agrees to a few float32 ulps (1.2e-7 relative) while the
# two runs are still close, measured 2.4e-7 over the first 10 steps; 1e-4 leaves a margin for the
# amplification of those first steps, far below what a wrong layer or update would leave.
# Later, training amplifies the rounding (measured 1.9e-2 over all 440 steps of the small profile):
# no tolerance there, the test accuracies below are compared instead.
first_gap = np.abs(engine_steps[:first_steps] - torch_steps[:first_steps]).max()
assert first_gap <= 1e-4, (
    f"the first {first_steps} losses differ from PyTorch's by {first_gap:.1e}"
)

# %% [markdown]
# The two engines add their float32 numbers in different orders, so their
# losses differ in the last digits from the first step on, and training
# amplifies such differences, as the lower panel shows. Where the difference
# jumps by orders of magnitude at once, most likely a discrete decision came out
# differently in the two engines: which input of a pooling window is the largest,
# or the sign of a ReLU input that was nearly zero. The printout above says how
# far apart the two runs ended up; here are the weights and the test accuracies,
# and the wall time of each training run (evaluations included; on a machine shared
# with other processes, wall times are upper bounds):

# %%
twin_params = dict(twin.named_parameters())
weight_diff = max(
    float(np.abs(p.data - twin_params[name].detach().cpu().numpy()).max())
    for name, p in model.named_parameters()
)
print(f"largest |weight difference| after training: {weight_diff:.1e}")
print(f"{'':24}{'test accuracy':>14}{'fit wall time':>15}")
print(
    f"{'scratch.engine (NumPy)':24}{first_run['test_acc']:>14.4f}{first_run['seconds']:>13.1f} s"
)
print(f"{'PyTorch':24}{torch_test['test_acc']:>14.4f}{torch_seconds:>13.1f} s")
# After the runs drifted apart they are like two trainings with different seeds: the accuracies of
# two independent runs on n test images differ by about sqrt(2 acc (1 - acc) / n) from the test
# sample alone (0.4 points in the small profile); 5 of those is the tolerance (measured 0.24 of
# them in the small profile; 0 in the tiny one, whose 8 steps never drift apart).
acc_sd = np.sqrt(
    2 * torch_test["test_acc"] * (1 - torch_test["test_acc"]) / len(y_test)
)
assert abs(first_run["test_acc"] - torch_test["test_acc"]) <= 5 * acc_sd + 1e-12, (
    f"test accuracy {first_run['test_acc']:.4f} (engine) vs {torch_test['test_acc']:.4f} (PyTorch)"
)

# %% [markdown]
# Wall times of whole runs taken at different moments are a poor measure of
# speed when other processes share the machine. For the speed ratio we time single
# training steps (forward, backward, Adam update) on one batch instead, engine and
# PyTorch *alternating*, so that both see the same load, and take the median of
# each. The two step functions below are a benchmark, not a second training loop:
# they run on throwaway copies of the network.

# %%
bench_x, bench_y = x_train[: cfg.batch_size], y_train[: cfg.batch_size]
bench_xt, bench_yt = torch.from_numpy(bench_x), torch.from_numpy(bench_y)
ours, theirs = make_cnn(nn, np.float32, cfg), make_cnn(torch.nn, torch.float32, cfg)
ours_opt, theirs_opt = (
    optim.Adam(ours.parameters(), lr=cfg.lr),
    torch.optim.Adam(theirs.parameters(), lr=cfg.lr),
)


def engine_step():
    loss = F.cross_entropy(ours(Tensor(bench_x)), bench_y)
    ours_opt.zero_grad()
    loss.backward()
    ours_opt.step()


def torch_step():
    loss = torch.nn.functional.cross_entropy(theirs(bench_xt), bench_yt)
    theirs_opt.zero_grad()
    loss.backward()
    theirs_opt.step()


warmup = 3  # first calls allocate buffers and pick kernels: not timed
step_times = {"engine": [], "torch": []}
for i in range(warmup + cfg.bench_steps):
    for name, step in (("engine", engine_step), ("torch", torch_step)):
        started = time.perf_counter()
        step()
        if i >= warmup:
            step_times[name].append(time.perf_counter() - started)
engine_step_ms, torch_step_ms = (
    1e3 * float(np.median(step_times[k])) for k in ("engine", "torch")
)
print(
    f"median step on a batch of {cfg.batch_size}, {torch.get_num_threads()} CPU thread(s), {cfg.bench_steps} steps each: "
    f"engine {engine_step_ms:.2f} ms, PyTorch {torch_step_ms:.2f} ms"
)
print(f"step time engine / PyTorch: {engine_step_ms / torch_step_ms:.2f}")

# %% [markdown]
# On the CPUs we tried, this ratio stays within a small factor of one, nothing
# like the orders of magnitude between the loops and the library. PyTorch is C++
# with tuned kernels, but this network is tiny: a step costs milliseconds, much of
# it a fixed cost per operation (Python and NumPy's dispatch in our engine,
# PyTorch's dispatcher and autograd bookkeeping in the other), and where the
# arithmetic counts, both hand it to optimised native code (in ours, BLAS's matrix
# product). The difference opens on a GPU, where PyTorch runs the same network
# orders of magnitude faster and a NumPy engine cannot follow. Our engine's point
# is not speed: every line of it can be read.
#
# ## Results
#
# This run, the recorded `full` run, and the papers. The paper numbers are for
# the full MNIST training set of 60,000 images (this run's profile may use fewer)
# and networks of a similar design {cite:p}`lecun1998gradient`: a fully
# connected network with one hidden layer of 300 units; LeNet-1, a smaller CNN of
# the same design as ours (4 and 12 maps of 5×5 kernels, on digits shrunk to 16×16
# pixels); and LeNet-5. (To record the
# `full` run: `python code/foundations/cnn.py --profile full`, on a CPU since the
# engine is NumPy, then copy `runs/cnn/metrics.json` to `results/cnn.json`.)

# %%
PAPER_TEST_ERROR = {  # LeCun et al. (1998), MNIST test error without distortions
    "MLP, 300 hidden units": 0.047,
    "LeNet-1": 0.017,
    "LeNet-5": 0.0095,
}
metrics = {
    "test_accuracy_mean": float(np.mean(test_accs)),
    "test_accuracy_min": float(min(test_accs)),
    "test_accuracy_per_seed": [float(a) for a in test_accs],
    "torch_test_accuracy": float(torch_test["test_acc"]),
    "mlp_test_accuracy": float(mlp_shifted[0]),
    "cnn_accuracy_by_shift": [float(a) for a in cnn_shifted],
    "mlp_accuracy_by_shift": [float(a) for a in mlp_shifted],
    "parameters": int(n_params),
    "train_seconds_best": float(train_seconds),
    "torch_train_seconds": float(torch_seconds),
    "max_weight_difference_vs_torch": weight_diff,
    "engine_step_ms": engine_step_ms,
    "torch_step_ms": torch_step_ms,
    "step_ratio_engine_over_torch": engine_step_ms / torch_step_ms,
    "conv_speedup_library_over_loops": float(speedup_conv),
}
rows = results_table(
    cfg,
    metrics,
    seconds=time.perf_counter() - run_started,
    title=f"MNIST test accuracy: the CNN's mean and worst over seeds, the PyTorch twin "
    f"of seed {first_run['seed']}'s network, the MLP",
    columns={
        "config.train_size": ("train images", ","),
        "test_accuracy_mean": ("CNN mean", ".4f"),
        "test_accuracy_min": ("CNN worst", ".4f"),
        "torch_test_accuracy": ("PyTorch twin", ".4f"),
        "mlp_test_accuracy": ("MLP", ".4f"),
    },
    references=[
        Reference(
            name,
            {"config.train_size": 60_000, column: 1 - PAPER_TEST_ERROR[name]},
            source="lecun1998gradient",
        )
        for name, column in (
            ("MLP, 300 hidden units", "mlp_test_accuracy"),
            ("LeNet-1", "test_accuracy_mean"),
            ("LeNet-5", "test_accuracy_mean"),
        )
    ],
    notes=[
        "this run, per seed: "
        + ", ".join(f"seed {run['seed']} {run['test_acc']:.4f}" for run in runs)
    ],
)
assert rows[0].values["test_accuracy_mean"] == float(np.mean(test_accs))

# %%
utils.save_run(
    cfg.run_dir / "metrics.json", cfg, metrics, time.perf_counter() - run_started
)
print(
    f"metrics written to {cfg.run_dir / 'metrics.json'}; "
    f"the whole chapter took {time.perf_counter() - run_started:.1f} s"
)

# %% [markdown]
# ## Summary
#
# - A convolution, eq. {eq}`cnn-conv`, is a small kernel shared by all positions:
#   its parameters do not grow with the image, it sees local windows, and it is
#   equivariant to translation. Deep-learning libraries compute a
#   cross-correlation and call it convolution. Eq. {eq}`cnn-size` gives the
#   output size, eq. {eq}`cnn-receptive` how far a deep unit sees.
# - Its backward pass is two more convolutions: the weight gradient correlates
#   the input with the output gradient, {eq}`cnn-grad-w`; the input gradient is a
#   *full* convolution of the output gradient with the flipped kernel,
#   {eq}`cnn-grad-x`, a transposed convolution. Max pooling routes each window's
#   gradient to its maximum, {eq}`cnn-maxpool-grad`.
# - Loops over windows are correct and hopelessly slow in Python. A strided view
#   reads all windows without copying; im2col copies them into one matrix so that
#   the layer, forward and backward, is a few large matrix products.
# - A CNN of a few thousand parameters, trained by our NumPy engine, beats an MLP
#   with more than ten times as many on the same digits, and holds up better when
#   the digits move. PyTorch, trained from the same start on the same batches,
#   reaches nearly the same accuracy, faster.
#
# ## Exercises
#
# :::{exercise}
# :label: cnn-ex-1
# Two stacked 3×3 convolutions (stride 1) against one 5×5 convolution, and three
# 3×3 against one 7×7, all with $C$ channels in and out: compare their receptive
# fields with {eq}`cnn-receptive` and their weights with {eq}`cnn-params` (ignore
# biases). Why did VGG-style networks use only 3×3 kernels?
# :::
#
# :::{solution} cnn-ex-1
# :class: dropdown
# Two 3×3 layers: $r = 1 + 2 + 2 = 5$, the field of one 5×5; three: $r = 7$. The
# weights are $2 \cdot 9 C^2 = 18 C^2$ against $25 C^2$, and $27 C^2$ against
# $49 C^2$: the same field for fewer parameters (and FLOPs), with a nonlinearity
# between the layers, so the stack can compute more functions than one linear
# filter of the large size. (The effective receptive field is more peaked at the
# centre, though, as the heatmap above shows.)
# :::
#
# :::{exercise}
# :label: cnn-ex-2
# Eq. {eq}`cnn-grad-x` was checked above for stride 1 only. For stride 2, verify
# with `conv2d_loops` that $\bar X$ is the full convolution of the *dilated*
# output gradient (with one zero between neighbouring entries) with the flipped
# kernel. Mind the last row and column of $X$ when $H - k$ is odd.
# :::
#
# :::{solution} cnn-ex-2
# :class: dropdown
# ```python
# import numpy as np
# rng = np.random.default_rng(0)
# x, w, b = rng.standard_normal((2, 3, 9, 9)), rng.standard_normal((4, 3, 3, 3)), np.zeros(4)
# gy = rng.standard_normal(conv2d_loops(x, w, b, stride=2).shape)   # (2, 4, 4, 4)
# gx, _, _ = conv2d_loops_backward(gy, x, w, stride=2)
#
# s, k = 2, w.shape[2]
# dilated = np.zeros((*gy.shape[:2], s * (gy.shape[2] - 1) + 1, s * (gy.shape[3] - 1) + 1))
# dilated[:, :, ::s, ::s] = gy                                      # (2, 4, 7, 7)
# flipped = np.flip(w, axis=(2, 3)).transpose(1, 0, 2, 3)
# full = conv2d_loops(dilated, flipped, np.zeros(3), padding=k - 1) # (2, 3, 9, 9)
# print(np.allclose(full, gx))
# ```
# Here $9 - 3 = 6$ is even, so the windows reach the last row and the sizes agree.
# With $H = 10$ the last row is in no window: its gradient is zero, and the full
# convolution yields one row too few, so pad the result with a zero row (or the
# dilated gradient with one more zero row at the bottom).
# :::
#
# :::{exercise}
# :label: cnn-ex-3
# Write average pooling (2×2 windows, stride 2) by loops, forward and backward,
# and check both against `torch.nn.functional.avg_pool2d`. What does the backward
# pass do that max pooling's does not?
# :::
#
# :::{solution} cnn-ex-3
# :class: dropdown
# Each input of a window contributes $1/k^2$ of the window's output, so it gets
# $\bar Y / k^2$: the gradient is spread evenly, where max pooling sends all of it
# to one input.
# ```python
# import numpy as np, torch
#
# def avg_pool2d_loops(x, k):
#     n, c, h, w = x.shape
#     y = np.zeros((n, c, h // k, w // k))
#     for idx in np.ndindex(*y.shape):
#         _, _, i, j = idx
#         y[idx] = x[idx[0], idx[1], i * k:(i + 1) * k, j * k:(j + 1) * k].mean()
#     return y
#
# def avg_pool2d_loops_backward(gy, x_shape, k):
#     gx = np.zeros(x_shape)
#     for idx in np.ndindex(*gy.shape):
#         n, c, i, j = idx
#         gx[n, c, i * k:(i + 1) * k, j * k:(j + 1) * k] += gy[idx] / k ** 2
#     return gx
#
# x = np.random.default_rng(0).standard_normal((2, 3, 8, 8))
# tx = torch.tensor(x, requires_grad=True)
# ty = torch.nn.functional.avg_pool2d(tx, 2)
# gy = np.random.default_rng(1).standard_normal(ty.shape)
# ty.backward(torch.from_numpy(gy))
# print(np.allclose(avg_pool2d_loops(x, 2), ty.detach().numpy()),
#       np.allclose(avg_pool2d_loops_backward(gy, x.shape, 2), tx.grad.numpy()))
# ```
# :::
#
# :::{exercise}
# :label: cnn-ex-4
# A convolution is linear in its input, so it is a matrix: $\operatorname{vec}(Y) = M \operatorname{vec}(X)$.
# Build $M$ for one channel, a 3×3 kernel and a 5×5 input by applying
# `conv2d_loops` to each of the 25 unit images. Check that $M^{\top} \operatorname{vec}(\bar Y)$
# equals the input gradient of `conv2d_loops_backward`. What structure does $M$
# have, and why is nobody building it for real images?
# :::
#
# :::{solution} cnn-ex-4
# :class: dropdown
# ```python
# import numpy as np
# rng = np.random.default_rng(0)
# w, b = rng.standard_normal((1, 1, 3, 3)), np.zeros(1)
# units = np.eye(25).reshape(25, 1, 1, 5, 5)
# M = np.stack([conv2d_loops(u, w, b).ravel() for u in units], axis=1)   # (9, 25): column = response to a pixel
# gy = rng.standard_normal((1, 1, 3, 3))
# gx, _, _ = conv2d_loops_backward(gy, np.zeros((1, 1, 5, 5)), w)
# print(M.shape, np.allclose(M.T @ gy.ravel(), gx.ravel()))
# ```
# Each row of $M$ holds the 9 kernel weights, shifted to the row's window; the rest
# is zeros. It is a *doubly block-Toeplitz* matrix: Toeplitz blocks (one kernel row
# sliding along an image row) arranged in a Toeplitz pattern. Its transpose is the
# backward pass, hence the name *transposed convolution*. For a 224×224 image
# with 64 channels in and out, $M$ would have about $(64 \cdot 224^2)^2 \approx 10^{13}$
# entries, almost all zero, for $64 \cdot 64 \cdot 9$ distinct values.
# :::
#
# :::{exercise}
# :label: cnn-ex-5
# How large is the im2col matrix `cols` of each convolution of this chapter's
# network, for one batch, compared with the layer's input? Then make the network
# wider (`--channels1=32 --channels2=64`) and time an epoch: which part of the step
# grows fastest?
# :::
#
# :::{solution} cnn-ex-5
# :class: dropdown
# `cols` has $C k^2$ rows and $H_{\text{out}} W_{\text{out}} N$ columns. For the
# first layer, $1 \cdot 25 \times 24 \cdot 24 \cdot N$: 25 × 576 = 14,400 numbers
# per image against 784 input pixels, about 18 times the input. For the second,
# $C_1 \cdot 25 \times 8 \cdot 8 \cdot N$, $25 \cdot 64 / 144 \approx 11$ times its
# $C_1 \times 12 \times 12$ input. With 32 and 64 channels the first layer's GEMM
# grows 4 times, the second's $4 \cdot 4 = 16$ times ($C_1 \cdot C_2$): the second
# convolution, forward and backward, dominates the step; run
# `python code/foundations/cnn.py --channels1=32 --channels2=64` and compare the
# printed step times.
# :::
#
# ## References
#
# ```{bibliography}
# :filter: docname in docnames
# ```
