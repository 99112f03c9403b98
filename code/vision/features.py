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
# (features)=
# # Learned versus engineered features
#
# LeNet-5 ({doc}`lenet`) learned everything from pixels to class scores, its
# first-layer filters included. For the twenty years that followed its
# publication that was not how most of computer vision worked. The standard
# recipe was to *design* features by hand (filter banks, edge histograms,
# keypoint descriptors) and to hand them to a general-purpose classifier, most
# often a support vector machine. Only in 2012, when a convolutional network
# won the ImageNet competition by a wide margin {cite:p}`krizhevsky2012imagenet`
# (the next chapter, {doc}`alexnet`), did learned features take over.
#
# This chapter puts the two recipes side by side on equal terms: the same digits,
# the same training images, the same test images. On MNIST downsampled to 14×14
# we train a support vector machine on raw pixels, a support vector machine on
# the responses of a bank of Gabor filters (the engineered features of early
# vision, modelled on the visual cortex), and a small convolutional network,
# and we compare their accuracy, their errors, their cost, how they scale with
# the number of training images, and what the network's first layer learned
# next to the Gabor bank that was designed.

# %%
import time

T0 = time.perf_counter()  # the whole chapter is timed, plots included

import dataclasses
import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from skimage.filters import gabor_kernel as skimage_gabor_kernel
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from scratch import data, plots, utils, vis
from scratch.config import ConfigError, describe, in_range, non_negative, positive
from scratch.models.inspection import count_parameters
from scratch.models.small_cnn import TABLE_PARAMETERS, SmallCNN, SmallCNNSpec
from scratch.results import Reference, results_table
from scratch.train import TrainConfig, fit, predict

# %% [markdown]
# Everything in the chapter is driven by one config (explained in the
# Experiment section). It is read first, so that a mistyped option stops the
# script before any work is done:


# %% tags=["hide-input"]
@dataclass
class FeaturesConfig(TrainConfig):
    """SVMs on pixels and on Gabor features versus a small CNN, on 14x14 MNIST.
    The defaults are the `full` profile (a GPU for the CNN; the SVMs run on
    the CPU whatever the device)."""

    NAME = "features"  # outputs go to out_dir/features

    # ---- data -------------------------------------------------------------------------
    train_size: int = field(
        default=60_000,
        metadata=positive(
            "MNIST training images drawn (seeded, class-stratified); full uses "
            "all 60,000, small at most 8,000 so that the book builds on a CPU"
        ),
    )
    test_size: int = field(
        default=10_000,
        metadata=positive(
            "test images, scored once per method at the end (MNIST has 10,000; "
            "an offline stand-in may have fewer, and all of them are used)"
        ),
    )
    svm_train_size: int = field(
        default=60_000,
        metadata=positive(
            "the SVMs train on at most this many of the training images: a "
            "kernel SVM's training time grows roughly with the square of their "
            "number (measured in the chapter), so lower it on a slow machine"
        ),
    )
    curve_sizes: tuple[int, ...] = field(
        default=(1_000, 4_000, 15_000),
        metadata=positive(
            "smaller training sets for the learning curves, each drawn from the "
            "training images; train_size is the last point; () = no curves"
        ),
    )
    # ---- the Gabor filter bank --------------------------------------------------------
    orientations: int = field(
        default=8,
        metadata=positive(
            "orientations of the bank, evenly spaced over 180 degrees: 8 means "
            "every 22.5 degrees, about the orientation bandwidth of one filter"
        ),
    )
    frequencies: tuple[float, ...] = field(
        default=(0.2, 0.35),
        metadata=in_range(
            0,
            0.5,
            "spatial frequencies of the bank in cycles per pixel: strokes "
            "of 14x14 digits are 1 to 3 pixels wide, so periods of 3 to 5 "
            "pixels; 0.5 is the Nyquist limit",
            low_open=True,
        ),
    )
    bandwidth: float = field(
        default=1.0,
        metadata=positive(
            "frequency bandwidth of each filter in octaves; 1 octave is typical "
            "of simple cells in the visual cortex and sets the envelope's width"
        ),
    )
    pool: int = field(
        default=2,
        metadata=positive(
            "side of the square cells over which filter energies are averaged: "
            "2 turns each 14x14 energy map into 7x7 numbers"
        ),
    )
    # ---- the SVMs ---------------------------------------------------------------------
    rbf_c: float = field(
        default=10.0,
        metadata=positive(
            "C of the RBF-kernel SVMs (the price of a margin violation): on a "
            "held-out part of the training set, accuracy rose up to C = 10 and "
            "stayed flat beyond, for pixels and for Gabor features"
        ),
    )
    linear_c: float = field(
        default=0.01,
        metadata=positive(
            "C of the linear SVMs: best of 0.003 to 1 for the Gabor features on "
            "a held-out part of the training set (pixels prefer 0.1, by about a "
            "point); small C also lets the solver converge faster"
        ),
    )
    # ---- the CNN (epochs, batch_size, device, precision: TrainConfig's fields) ---------
    model: SmallCNNSpec = field(
        default_factory=SmallCNNSpec,
        metadata=describe("the CNN: two conv-ReLU-pool stages and a linear read-out"),
    )
    epochs: int = field(
        default=15,
        metadata=positive(
            "passes over the training images; smaller training sets in the "
            "learning curves get as many optimizer steps as the largest one"
        ),
    )
    batch_size: int = field(
        default=64,
        metadata=positive("images per SGD step: small enough for many steps per epoch"),
    )
    lr: float = field(
        default=0.1,
        metadata=positive(
            "peak of the one-cycle schedule; with standardised inputs SGD tolerates 0.1"
        ),
    )
    momentum: float = field(
        default=0.9,
        metadata=non_negative(
            "Nesterov momentum: averages gradients over about 10 steps"
        ),
    )
    weight_decay: float = field(
        default=2e-3,
        metadata=non_negative(
            "L2 penalty: a network that fits 8,000 digits perfectly needs a "
            "little regularisation; chosen on a held-out part of the training set"
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

    PROFILES = {
        "tiny": dict(
            train_size=600,
            test_size=500,
            svm_train_size=600,
            curve_sizes=(200,),
            epochs=2,
            threads=1,
        ),  # tests
        "small": dict(
            train_size=8_000, svm_train_size=8_000, curve_sizes=(500, 2_000), threads=2
        ),  # CPU
        "full": dict(),  # GPU
    }

    def validate(self):
        if any(n >= self.train_size for n in self.curve_sizes):
            raise ConfigError(
                f"curve_sizes={self.curve_sizes} must all be "
                f"smaller than train_size={self.train_size}"
            )
        if self.pool > 14:
            raise ConfigError(
                f"pool={self.pool} must be at most 14, the "
                "side of the downsampled images"
            )


cfg = FeaturesConfig.from_cli()
utils.seed_everything(cfg.seed)

# %% [markdown]
# ## Motivation
#
# A classifier is only as good as the numbers it is given. Fed the pixels of an
# MNIST digit, a linear classifier misclassifies many test digits, as we will
# see, because two images of the same digit can differ in many pixels: strokes
# are thicker or thinner, shifted, slanted. Before 2012 the cure was **feature
# engineering**: transform the image into numbers that change little when the
# digit is drawn differently and a lot when it is a different digit, using what
# is known about images and about vision.
#
# - **Filter banks.** Neurons in the primary visual cortex (the *simple cells*
#   of {cite:t}`hubel1962receptive`) respond to edges and bars of one orientation
#   and scale at one place. Their receptive fields are well described by Gabor
#   functions {cite:p}`daugman1985uncertainty`, and banks of Gabor filters
#   became a standard front end for texture {cite:p}`jain1991unsupervised`,
#   faces, fingerprints and characters.
# - **Histograms of gradients.** SIFT {cite:p}`lowe2004distinctive` and HOG
#   {cite:p}`dalal2005histograms` pool the orientations of local image
#   gradients over small cells into histograms: a coarse, slightly
#   shift-tolerant summary of the local edge structure.
# - **A strong generic classifier on top**, above all the support vector
#   machine {cite:p}`cortes1995support`, with a kernel
#   {cite:p}`boser1992training` that makes it nonlinear.
#
# On MNIST this recipe was competitive with convolutional networks for a long
# time: the 1998 comparison that introduced LeNet-5 lists a polynomial-kernel SVM
# on raw pixels with about the same error as LeNet-5 {cite:p}`lecun1998gradient`,
# and SVMs trained with invariances built in were among the best MNIST
# classifiers of the early 2000s {cite:p}`decoste2002training`. What learned
# features changed is that nobody has to find the right transformation for each
# new problem: the network finds it from labelled data, for digits as for
# photographs, where hand design had reached its limits. This chapter measures
# what each recipe buys on the same data, at a scale where all of it runs in
# about a minute on a CPU.
#
# ## Theory
#
# ### Engineered features: a Gabor filter bank
#
# A Gabor function {cite:p}`gabor1946theory,daugman1985uncertainty` is a plane
# wave under a Gaussian envelope. Rotated by $\theta$, with spatial frequency $f$
# (cycles per pixel), phase $\psi$ and envelope width $\sigma$:
#
# $$
# g_{f,\theta}(x, y) = \frac{1}{2\pi\sigma^2}
#   \exp\!\left(-\frac{x'^2 + y'^2}{2\sigma^2}\right)
#   \exp\!\big(i\,(2\pi f x' + \psi)\big),
# \qquad
# \begin{aligned} x' &= \phantom{-}x\cos\theta + y\sin\theta,\\
#                 y' &= -x\sin\theta + y\cos\theta. \end{aligned}
# $$ (features-gabor)
#
# The wave runs along the direction $\theta$ and its crests lie across it. The
# real part (*even*, symmetric about the centre line) responds most to a bar of
# width about $1/(2f)$ lying along the crests, perpendicular to $\theta$; the
# imaginary part (*odd*, antisymmetric) responds most to an edge with that
# orientation. The envelope is tied to the frequency by the filter's bandwidth
# $b$ in octaves: the filter's response to a grating of frequency $f'$ stays
# above half its peak for $f'$ in an interval around $f$ whose ends differ by a
# factor $2^b$ exactly when
#
# $$
# \sigma = \frac{1}{\pi f}\sqrt{\frac{\ln 2}{2}}\;\frac{2^b + 1}{2^b - 1},
# $$ (features-bandwidth)
#
# so a filter for a lower frequency is wider and every filter spans the same
# number of periods. Gabor functions are special: they reach the lower bound of
# the uncertainty relation between position and frequency, the best possible
# joint localisation in both, which is one of the reasons
# {cite:t}`daugman1985uncertainty` gave for their fit to cortical receptive
# fields.
#
# A **filter bank** covers orientations $\theta_k = k\pi/K$, $k = 0, \dots, K-1$
# (no need for $\theta + \pi$: it gives the complex conjugate filter, with the
# same energy below), and a few
# frequencies $f_1, \dots, f_M$. Each filter is convolved with the image $I$. The
# response at a pixel depends on the phase of the pattern under the filter: the
# even part sees a bar, the odd part an edge, and both change sign as the pattern
# moves by half a period. Their combination, the modulus of the complex response,
#
# $$
# E_{f,\theta}(u, v) = \big|(I \star g_{f,\theta})(u, v)\big|
#  = \sqrt{(I \star \operatorname{Re} g)^2 + (I \star \operatorname{Im} g)^2},
# $$ (features-energy)
#
# is the local *energy* at that orientation and scale: large wherever there is
# structure of that orientation and frequency, whatever its exact phase and
# position within a period. This is the standard model of the cortex's *complex
# cells*. The last step is **pooling**: averaging each energy map $E$ over
# $p\times p$ cells. It shrinks the feature vector and, like the subsampling of
# {doc}`lenet`, makes it tolerant to shifts smaller than a cell. With $K$
# orientations, $M$ frequencies and $H \times W$ images, the feature vector
# has $K M \,(H/p)(W/p)$ entries; for our bank, $8 \cdot 2 \cdot 7 \cdot 7 = 784$.
#
# ### The support vector machine
#
# For two classes $y_i \in \{-1, +1\}$ and feature vectors $\mathbf{x}_i$, a linear
# SVM {cite:p}`cortes1995support` looks for the score
# $s(\mathbf{x}) = \mathbf{w}^\top \mathbf{x} + b$ whose sign is the class. If the data
# are separable, the hyperplane $s = 0$ with the largest *margin*, the distance
# $1/\lVert\mathbf{w}\rVert$ from the hyperplane to the nearest points of either
# class when those points have $|s| = 1$, is the one that minimises
# $\lVert\mathbf{w}\rVert^2$. Real data are not separable, so each point may violate
# the margin at a price $C$ per unit of violation:
#
# $$
# \min_{\mathbf{w}, b}\;\; \frac{1}{2}\lVert\mathbf{w}\rVert^2
#   + C \sum_{i=1}^{n} \max\big(0,\; 1 - y_i\, s(\mathbf{x}_i)\big).
# $$ (features-svm-primal)
#
# The second term is the **hinge loss**: zero for a point on the right side
# with a margin of at least 1, growing linearly otherwise. It is a convex upper
# bound on the 0-1 error, like the logistic loss $\log_2(1 + e^{-y s})$, which is,
# up to the base of the logarithm, what a network's cross-entropy applies to
# two classes (plotted below);
# unlike it, it is exactly zero for points well inside their side, which
# therefore have no say in the solution. The first term is the L2 penalty
# (weight decay) of {doc}`../foundations/regularization`, with $C$ playing the
# role of one over its strength.
#
# **Kernels.** The solution of {eq}`features-svm-primal` is a weighted sum of
# training points, $\mathbf{w} = \sum_i \alpha_i y_i \mathbf{x}_i$, with weights
# $0 \le \alpha_i \le C$ that solve the *dual* problem
#
# $$
# \max_{\boldsymbol\alpha}\; \sum_{i} \alpha_i - \frac{1}{2} \sum_{i,j}
#   \alpha_i \alpha_j\, y_i y_j\, k(\mathbf{x}_i, \mathbf{x}_j)
# \quad\text{s.t.}\quad 0 \le \alpha_i \le C,\;\; \sum_i \alpha_i y_i = 0,
# $$ (features-svm-dual)
#
# with $k(\mathbf{x}, \mathbf{x}') = \mathbf{x}^\top\mathbf{x}'$. The data enter only
# through the inner products $k$. Replacing them with a *kernel*, the inner product
# $\phi(\mathbf{x})^\top\phi(\mathbf{x}')$ of some feature map $\phi$ that is never
# computed {cite:p}`boser1992training`, gives a nonlinear classifier
#
# $$
# s(\mathbf{x}) = \sum_{i:\,\alpha_i > 0} \alpha_i\, y_i\, k(\mathbf{x}_i, \mathbf{x}) + b,
# \qquad
# k(\mathbf{x}, \mathbf{x}') = \exp\!\big(-\gamma\, \lVert\mathbf{x} - \mathbf{x}'\rVert^2\big).
# $$ (features-svm-decision)
#
# The Gaussian (RBF) kernel on the right corresponds to an infinite-dimensional
# $\phi$; the classifier is a weighted vote of the training points near
# $\mathbf{x}$, on a length scale $1/\sqrt{\gamma}$. We use scikit-learn's default
# $\gamma = 1/(d \operatorname{Var}(\mathbf{x}))$, with the variance taken over all
# entries of the training features, which makes $\gamma\lVert\mathbf{x} -
# \mathbf{x}'\rVert^2$ of order 1 for two typical points of $d$ dimensions. The points
# with $\alpha_i > 0$ are the **support vectors**: the ones on or inside the
# margin. Everything else could be deleted without changing the classifier.
#
# Two consequences matter for this chapter. First, a kernel SVM is
# *nonparametric*: it stores its support vectors, and their number grows with
# the training set. Second, its cost grows faster than the data: the dual has
# one variable per training point and couples all pairs through the $n\times n$
# kernel matrix. Solvers such as LIBSVM {cite:p}`chang2011libsvm` (behind
# scikit-learn's `SVC`) never store that matrix but optimise two $\alpha$'s at a
# time and cache kernel rows; their running time grows between about $n^2$ and
# $n^3$ in practice, and prediction costs one kernel evaluation per support
# vector. A *linear* SVM needs no kernel matrix and is solved in time roughly
# linear in $n$ {cite:p}`fan2008liblinear`. Ten classes are handled by training
# $\binom{10}{2} = 45$ one-against-one SVMs and letting them vote (`SVC`), or
# ten one-against-the-rest SVMs (`LinearSVC`).
#
# ### Learned features
#
# The Gabor pipeline is, step for step, the first stage of a convolutional
# network with fixed weights: a bank of filters (a convolution), a pointwise
# nonlinearity (the modulus instead of a ReLU), pooling, and a classifier on top.
# A CNN makes two changes. Its filters are **learned**, by gradient descent on
# the classification loss, together with the classifier; and it **stacks** such
# stages, so that the second stage combines the first stage's oriented strokes
# into corners, loops and endings, features nobody wrote down. The network we
# use is small on purpose, with as many first-layer filters (16) as our bank:
#
# ```{list-table} SmallCNN for a 14×14 input
# :header-rows: 1
# :name: features-cnn
#
# * - layer
#   - operation
#   - output
#   - parameters
# * - conv1
#   - 16 maps, 5×5 convolution, padding 2, ReLU
#   - 16×14×14
#   - 16 · (25 + 1) = 416
# * - pool1
#   - 2×2 max-pooling
#   - 16×7×7
#   - 0
# * - conv2
#   - 32 maps, 3×3 convolution, padding 1, ReLU
#   - 32×7×7
#   - 32 · (16 · 9 + 1) = 4,640
# * - pool2
#   - 2×2 max-pooling
#   - 32×3×3
#   - 0
# * - fc
#   - linear read-out
#   - 10
#   - 10 · (288 + 1) = 2,890
# ```
#
# In networks trained on natural images, the first layer comes out looking much
# like a Gabor bank, oriented edge and bar detectors at several scales
# {cite:p}`krizhevsky2012imagenet`, as do the filters that make natural images
# sparse {cite:p}`olshausen1996emergence`. Whether that happens on 14×14 digits
# with 5×5 kernels is one of the things we measure below.
#
# Before the code, the two losses side by side, as functions of the margin
# $z = y\,s(\mathbf{x})$:

# %%
z = np.linspace(-2, 3, 501)
fig = plots.lines(
    {
        "0-1 error": (z <= 0).astype(float),
        "hinge max(0, 1 - z) (SVM)": np.maximum(0, 1 - z),
        "logistic log2(1 + e^-z) (cross-entropy)": np.log2(1 + np.exp(-z)),
    },
    x=z,
    xlabel="margin z = y s(x)",
    ylabel="loss",
    title="Hinge and logistic loss: convex upper bounds on the 0-1 error",
)
plots.show(fig, cfg.run_dir / "losses.html")


# %% [markdown]
# (The logistic loss is drawn in base 2 so that it, too, equals 1 at $z = 0$.)
#
# ## Implementation
#
# ### The Gabor bank
#
# Equation {eq}`features-gabor` with $\psi = 0$, on a square grid of
# $(2r+1)\times(2r+1)$ pixels, and the envelope width {eq}`features-bandwidth`:


# %%
def gabor(frequency, theta, sigma, radius, phase=0.0):
    """Eq. (features-gabor): complex (2 radius + 1, 2 radius + 1) kernel.
    Rows are y (downwards), columns x."""
    y, x = np.mgrid[-radius : radius + 1, -radius : radius + 1].astype(np.float64)
    xr = x * np.cos(theta) + y * np.sin(theta)  # along the wave
    yr = -x * np.sin(theta) + y * np.cos(theta)  # along the wave fronts
    envelope = np.exp(-(xr**2 + yr**2) / (2 * sigma**2))
    return (
        envelope
        / (2 * np.pi * sigma**2)
        * np.exp(1j * (2 * np.pi * frequency * xr + phase))
    )


def sigma_for(frequency, bandwidth):
    """Eq. (features-bandwidth): envelope width of a filter of `bandwidth`
    octaves at `frequency` cycles per pixel."""
    return (
        math.sqrt(math.log(2) / 2)
        / (math.pi * frequency)
        * (2**bandwidth + 1)
        / (2**bandwidth - 1)
    )


# %% [markdown]
# scikit-image implements the same filter (`skimage.filters.gabor_kernel`, which
# sizes its grid at three envelope widths). Our reading of the equation should
# reproduce it exactly:

# %%
for f, theta in [(0.2, 0.0), (0.35, np.pi / 8), (0.1, 5 * np.pi / 8)]:
    reference = skimage_gabor_kernel(f, theta=theta, bandwidth=1.0)
    ours = gabor(f, theta, sigma_for(f, 1.0), radius=len(reference) // 2)
    err = np.abs(ours - reference).max() / np.abs(reference).max()
    print(
        f"f={f:<5} theta={np.degrees(theta):5.1f} deg: kernel "
        f"{reference.shape}, largest relative difference {err:.1e}"
    )
    assert ours.shape == reference.shape and err < 1e-10


# %% [markdown]
# The bank: every combination of the configured frequencies and orientations,
# all on one grid wide enough for the widest envelope (three $\sigma$ on each
# side), so that the whole bank is one convolution:


# %%
def gabor_bank(frequencies, orientations, bandwidth):
    """(K M, S, S) complex kernels and a name for each."""
    radius = math.ceil(3 * max(sigma_for(f, bandwidth) for f in frequencies))
    kernels, names = [], []
    for f in frequencies:
        for k in range(orientations):
            theta = math.pi * k / orientations
            kernels.append(gabor(f, theta, sigma_for(f, bandwidth), radius))
            names.append(f"f {f:g}, {math.degrees(theta):g}°")
    return np.stack(kernels), names


bank, bank_names = gabor_bank(cfg.frequencies, cfg.orientations, cfg.bandwidth)
print(
    f"{len(bank)} complex filters of {bank.shape[1]}x{bank.shape[2]} "
    f"pixels; envelope widths sigma = "
    + ", ".join(f"{sigma_for(f, cfg.bandwidth):.2f}" for f in cfg.frequencies)
    + " pixels"
)


# %% [markdown]
# The features {eq}`features-energy` of a batch of images are one call to
# `conv2d` with the real and imaginary parts as $2KM$ output channels, a square
# root and an average pooling, on whatever device is fastest. `conv2d` computes a
# cross-correlation, which is a convolution with the kernel flipped; for a Gabor
# filter with $\psi = 0$ the flip conjugates the kernel, which changes the sign
# of the odd part and leaves the energy as it is. The images are zero-padded
# at the borders, which matches MNIST's black background.


# %%
def gabor_features(images, bank, pool, device="cpu", chunk=4096):
    """(N, H, W) float images in [0, 1] -> (N, K M (H // pool) (W // pool))
    float32: eq. (features-energy), averaged over pool x pool cells."""
    weight = torch.tensor(
        np.concatenate([bank.real, bank.imag]), dtype=torch.float32, device=device
    )[:, None]
    n_filters = len(bank)
    out = []
    for start in range(0, len(images), chunk):  # bounded memory
        x = torch.as_tensor(images[start : start + chunk], device=device)
        r = F.conv2d(x[:, None], weight, padding=weight.shape[-1] // 2)
        energy = torch.sqrt(r[:, :n_filters] ** 2 + r[:, n_filters:] ** 2)
        out.append(F.avg_pool2d(energy, pool).flatten(1).cpu())
    return torch.cat(out).numpy()


# %% [markdown]
# ### The SVMs
#
# scikit-learn's `SVC` (LIBSVM) for the RBF kernel and `LinearSVC` (LIBLINEAR)
# for the linear one. Pixels already share one scale, $[0, 1]$, and go in as
# they are; the Gabor energies have very different scales from filter to filter
# (the bank's two frequencies respond with different strengths), so each
# feature is standardised with the mean and standard deviation of the training
# features first, part of the fitted pipeline.


# %%
def train_svm(x, y, kernel, c, standardize):
    """A fitted SVM pipeline and its training time in seconds."""
    if kernel == "rbf":
        svm = SVC(kernel="rbf", C=c, gamma="scale", cache_size=1000)
    else:
        svm = LinearSVC(C=c, max_iter=5000)
    model = make_pipeline(*([StandardScaler()] if standardize else []), svm)
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(x, y)
    seconds = time.perf_counter() - t0
    if any(issubclass(w.category, ConvergenceWarning) for w in caught):
        print(f"  note: the {kernel} SVM stopped at its iteration limit")
    return model, seconds


def stored_numbers(model):
    """How many numbers the fitted pipeline keeps to make predictions."""
    svm = model[-1]
    if isinstance(svm, SVC):  # support vectors and their 9 dual coefficients
        n = svm.support_vectors_.size + svm.dual_coef_.size
    else:  # one weight vector per class
        n = svm.coef_.size
    n += svm.intercept_.size
    if len(model) > 1:  # the scaler's means and standard deviations
        n += model[0].mean_.size + model[0].scale_.size
    return n


# %% [markdown]
# ### The network
#
# The network of {numref}`features-cnn`, from `scratch.models.small_cnn`. It
# takes pixels in $[0, 1]$ and standardises them inside, with statistics passed in
# when it is built:
#
# ```{literalinclude} ../../code/scratch/models/small_cnn.py
# :pyobject: SmallCNN
# ```

# %%
probe = SmallCNN()
counts = {name: count_parameters(getattr(probe, name)) for name in TABLE_PARAMETERS}
for name, n in counts.items():
    print(f"{name:<6}{n:>7,} parameters (table: {TABLE_PARAMETERS[name]:,})")
print(
    f"total {count_parameters(probe):,}; output shape for 4 images: "
    f"{tuple(probe(torch.zeros(4, 1, 14, 14)).shape)}"
)
assert counts == TABLE_PARAMETERS


# %% [markdown]
# It is trained with the book's training loop, SGD with Nesterov momentum and a
# one-cycle schedule as in {doc}`lenet`, without data augmentation: every method
# in this chapter sees exactly the same training images and nothing else. The
# `epochs` argument lets the learning curves give smaller training sets more
# passes (see below).


# %%
def train_cnn(x, y, epochs, verbose=False):
    """A SmallCNN trained on (N, 14, 14) images in [0, 1]; returns the model,
    its conv1 weights before training, the history and the seconds taken."""
    torch.manual_seed(cfg.seed)  # same initial weights for every run
    model = cfg.model.build(mean=float(x.mean()), std=float(x.std()))
    initial = model.conv1.weight.detach().clone()
    loader = DataLoader(
        TensorDataset(torch.as_tensor(x)[:, None], torch.as_tensor(y)),
        batch_size=cfg.batch_size,
        shuffle=True,
    )
    run_cfg = dataclasses.replace(cfg, epochs=epochs)
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=cfg.lr,
        nesterov=True,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
    )
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=cfg.lr,
        pct_start=cfg.warmup,
        cycle_momentum=False,
        total_steps=epochs * len(loader),
    )
    t0 = time.perf_counter()
    # No checkpoint: training takes seconds, and a resumed run would report
    # the time of its last epochs only.
    history = fit(
        model,
        optimizer,
        loader,
        run_cfg,
        scheduler=scheduler,
        checkpoint=None,
        verbose=verbose,
    )
    return model, initial, history, time.perf_counter() - t0


# %% [markdown]
# ## Experiment
#
# ### Configuration
#
# The config at the top of the chapter holds every knob. Its defaults are the
# `full` profile: all 60,000 MNIST training images for every method, the CNN on
# a GPU, the SVMs on the CPU (scikit-learn's SVMs have no GPU version, and how
# their cost grows with the data is measured below). The `small` profile, which
# the book is built with, uses at most 8,000 training images so that the whole
# chapter, learning curves included, runs in well under the 90 seconds a
# chapter may take on a two-core CPU; `tiny` only checks that
# everything runs. The hyperparameters ($C$ of each SVM, the CNN's weight decay
# and epochs) were chosen once, on a part of the training set held out for the
# purpose, never on the test images. The fields that differ between profiles:

# %%
print(FeaturesConfig.profile_table())  # the fields whose values differ
print(f"this run: profile {cfg.profile!r}")


# %% [markdown]
# ### Data: MNIST at 14×14
#
# Each 28×28 digit becomes a 14×14 one by averaging every non-overlapping 2×2
# block of pixels, the same operation as LeNet's subsampling ({doc}`lenet`)
# with fixed weights. Averaging (rather than keeping every second pixel) is a
# low-pass filter before the subsampling, so thin strokes are not lost between
# the kept pixels and no aliasing is introduced. The digits stay perfectly
# legible, the input shrinks fourfold, and every method gets cheaper: the SVM's
# kernel evaluations by 4, the CNN's convolutions by about 4. The
# test split is used whole, however large the machine's copy of MNIST is.


# %%
def downsample(images):
    """(N, 28, 28) uint8 -> (N, 14, 14) float32 in [0, 1]: 2x2 block means."""
    blocks = images.reshape(len(images), 14, 2, 14, 2).astype(np.float32)
    return blocks.mean(axis=(2, 4)) / 255


all_train = data.mnist("train")
train28, train_y = data.subsample(*all_train, cfg.train_size, seed=cfg.seed)
test28, test_y = data.subsample(*data.mnist("test"), cfg.test_size, seed=cfg.seed)
train_x, test_x = downsample(train28), downsample(test28)  # (N, 14, 14)
print(
    f"training images: {len(train_x):,} (of {len(all_train[0]):,} in the "
    f"copy found); test images: {len(test_x):,}; each {train_x.shape[1:]}"
)
# Show the 14x14 digits enlarged by pixel repetition, under the originals.
shown = np.concatenate(
    [train28[:8] / 255, train_x[:8].repeat(2, axis=1).repeat(2, axis=2)]
)
fig = plots.image_grid(
    shown,
    ncols=8,
    cell=80,
    titles=[f"28×28: {d}" for d in train_y[:8]] + [f"14×14: {d}" for d in train_y[:8]],
    title="The same training digits at 28×28 and downsampled to 14×14",
)
plots.show(fig, cfg.run_dir / "digits.html")

# %% [markdown]
# ### The filter bank and what it sees
#
# The real (even) and imaginary (odd) parts of the bank's filters, red positive
# and blue negative, one figure per frequency, each cropped to three envelope
# widths (the lower frequency has the wider envelope {eq}`features-bandwidth`).
# At the higher frequency the wave is sampled by only about three pixels per
# period, so the diagonal filters look jagged: a 14×14 digit has no finer
# detail to offer.

# %%
per_frequency = len(bank) // len(cfg.frequencies)
for m, f in enumerate(cfg.frequencies):
    members = slice(m * per_frequency, (m + 1) * per_frequency)
    radius, r = bank.shape[-1] // 2, math.ceil(3 * sigma_for(f, cfg.bandwidth))
    crop = bank[members, radius - r : radius + r + 1, radius - r : radius + r + 1]
    names = bank_names[members]
    fig = plots.image_grid(
        np.concatenate([crop.real, crop.imag]),
        symmetric=True,
        ncols=cfg.orientations,
        cell=80,
        titles=[f"Re, {n}" for n in names] + [f"Im, {n}" for n in names],
        title=f"Gabor filters at f = {f:g} cycles/pixel ({2 * r + 1}×"
        f"{2 * r + 1} pixels): even parts (top), odd parts (bottom)",
    )
    plots.show(fig, cfg.run_dir / f"gabor_bank_{m}.html")

# %% [markdown]
# The energy maps {eq}`features-energy` of one test digit, before pooling: each
# filter lights up where the strokes run across its wave, that is, along
# strokes perpendicular to the direction $\theta$ in its caption.

# %%
shown = np.flatnonzero(test_y == 4)[:1]  # a digit with strokes at 3 angles
digit = test_x[shown]  # (1, 14, 14)
energy = gabor_features(digit, bank, pool=1)[0].reshape(len(bank), 14, 14)
rows = [
    (digit, energy[m * per_frequency : (m + 1) * per_frequency])
    for m in range(len(cfg.frequencies))
]  # the digit starts each row
fig = plots.image_grid(
    np.concatenate([a for row in rows for a in row]),
    ncols=per_frequency + 1,
    cell=80,
    titles=[
        t
        for m in range(len(cfg.frequencies))
        for t in ["input"] + bank_names[m * per_frequency : (m + 1) * per_frequency]
    ],
    title=f"A test digit ({test_y[shown][0]}) and its "
    "Gabor energy maps, one row per frequency",
)
plots.show(fig, cfg.run_dir / "gabor_maps.html")

# %% [markdown]
# The feature vectors of all images, pooled over 2×2 cells. The timing
# includes moving the images to the device.

# %%
device = utils.pick_device(cfg.device)
t0 = time.perf_counter()
train_gabor = gabor_features(train_x, bank, cfg.pool, device=device)
gabor_train_seconds = time.perf_counter() - t0
t0 = time.perf_counter()
test_gabor = gabor_features(test_x, bank, cfg.pool, device=device)
gabor_test_seconds = time.perf_counter() - t0
print(
    f"Gabor features: {train_gabor.shape[1]} per image (pixels: "
    f"{train_x[0].size}); {gabor_train_seconds:.2f} s for the "
    f"{len(train_x):,} training images on {device.type}"
)

# %% [markdown]
# ### Training the SVMs
#
# Four SVMs: linear and RBF kernels, on pixels and on Gabor features. The SVMs
# train on the first `svm_train_size` images of the training set (all of them
# unless the config caps it).

# %%
svm_idx = data.subsample(
    np.arange(len(train_x)), train_y, cfg.svm_train_size, seed=cfg.seed
)[0]
inputs = {
    "pixels": (
        train_x.reshape(len(train_x), -1),
        test_x.reshape(len(test_x), -1),
        False,
    ),
    "Gabor": (train_gabor, test_gabor, True),
}
results, predictions, svms = {}, {}, {}
for kernel, c in [("linear", cfg.linear_c), ("rbf", cfg.rbf_c)]:
    for feats, (xtr, xte, standardize) in inputs.items():
        name = f"{'RBF' if kernel == 'rbf' else 'linear'} SVM, {feats}"
        model, fit_seconds = train_svm(
            xtr[svm_idx], train_y[svm_idx], kernel, c, standardize
        )
        t0 = time.perf_counter()
        predictions[name] = model.predict(xte)
        test_seconds = time.perf_counter() - t0
        extra = feats == "Gabor"  # the features' own time counts too
        results[name] = {
            "acc": float((predictions[name] == test_y).mean()),
            "features": xtr.shape[1],
            "stored": stored_numbers(model),
            "train_s": fit_seconds
            + extra * gabor_train_seconds * len(svm_idx) / len(train_x),
            "test_s": test_seconds + extra * gabor_test_seconds,
            "train_images": len(svm_idx),
        }
        svms[name] = model
        sv = (
            f", {model[-1].n_support_.sum():,} support vectors"
            if kernel == "rbf"
            else ""
        )
        print(
            f"{name:<19} test accuracy {results[name]['acc']:.2%}, "
            f"fit {fit_seconds:.1f} s{sv}"
        )

# %% [markdown]
# ### Training the CNN

# %%
cnn, cnn_initial, history, cnn_seconds = train_cnn(
    train_x, train_y, cfg.epochs, verbose=True
)
test_t = torch.as_tensor(test_x)[:, None]
t0 = time.perf_counter()
predictions["CNN"] = predict(cnn, test_t).argmax(dim=1).numpy()
results["CNN"] = {
    "acc": float((predictions["CNN"] == test_y).mean()),
    "features": train_x[0].size,
    "stored": count_parameters(cnn),
    "train_s": cnn_seconds,
    "test_s": time.perf_counter() - t0,
    "train_images": len(train_x),
}
print(
    f"CNN test accuracy {results['CNN']['acc']:.2%}, trained in "
    f"{cnn_seconds:.1f} s on {device.type}"
)

# %%
fig = plots.training_curves(history, title="SmallCNN on 14×14 MNIST: training loss")
plots.show(fig, cfg.run_dir / "curves.html")

# %% [markdown]
# ### Comparison
#
# "Numbers stored" is what each model keeps to classify a new digit: for an RBF
# SVM its support vectors and their dual coefficients (a nonparametric model
# keeps part of its training set), for a linear SVM one weight vector per class,
# for the CNN its parameters. Training time includes computing the Gabor
# features; the SVMs ran on the CPU, the CNN on the device named above.

# %%
print(
    f"{'method':<19}{'test acc':>9}{'errors':>8}{'input dims':>11}"
    f"{'numbers stored':>16}{'train s':>9}{'test s':>8}"
)
for name, r in results.items():
    errors = int(round((1 - r["acc"]) * len(test_y)))
    print(
        f"{name:<19}{r['acc']:>9.2%}{errors:>8}{r['features']:>11,}"
        f"{r['stored']:>16,}{r['train_s']:>9.1f}{r['test_s']:>8.2f}"
    )
print(
    f"({len(test_y):,} test digits; a difference of one error is {1 / len(test_y):.2%})"
)

# %% [markdown]
# How to read it. The linear SVM on pixels is the baseline that feature
# engineering set out to beat: a hyperplane in pixel space. Two ways lead up
# from it. A kernel makes the classifier nonlinear on the same pixels; the Gabor
# features make the *input* better, and a linear classifier on them closes most
# of the gap to the kernel SVM on them: much of the nonlinearity the task needs
# is already in the energy {eq}`features-energy` and the pooling. Compare the
# CNN with the RBF SVMs in the "numbers stored" column: the network keeps a
# compact description of digits learned from the data, the SVMs keep a sizeable
# part of the data itself. (The linear SVM on Gabor features is not cheap to
# train here despite its simple model: its solver needs many passes over the
# 784 dense features to converge.)
#
# With test sets of a few thousand digits, differences of a few tenths of a
# percent are within the noise of which digits happen to be in the test set:
# the binomial standard error of an accuracy $a$ on $m$ test digits is
# $\sqrt{a(1-a)/m}$:

# %%
for name in ["RBF SVM, pixels", "RBF SVM, Gabor", "CNN"]:
    a = results[name]["acc"]
    print(
        f"{name:<16} {a:.2%} ± {math.sqrt(a * (1 - a) / len(test_y)):.2%} "
        "(one standard error)"
    )

# %% [markdown]
# ### Confusion matrices
#
# For the three main contestants. The rows are the true digits, the columns
# the predicted ones; off the diagonal are the errors.

# %%
main = ["RBF SVM, pixels", "RBF SVM, Gabor", "CNN"]
for name in main:
    fig = plots.confusion_matrix(
        test_y,
        predictions[name],
        labels=list(range(10)),
        title=f"{name}: {results[name]['acc']:.2%} test accuracy",
    )
    plots.show(fig, cfg.run_dir / f"confusion_{main.index(name)}.html")
    cm = np.zeros((10, 10), int)
    np.add.at(cm, (test_y, predictions[name]), 1)
    np.fill_diagonal(cm, 0)
    t, p = np.unravel_index(cm.argmax(), cm.shape)
    print(f"{name:<16} most frequent confusion: {t} taken for {p} ({cm[t, p]} times)")

# %% [markdown]
# ### The errors
#
# The first misclassified test digits of each method (true → predicted), and
# how the three sets of errors overlap:

# %%
wrong = {name: predictions[name] != test_y for name in main}
for name in main:
    idx = np.flatnonzero(wrong[name])[:16]
    if len(idx):
        fig = plots.image_grid(
            test_x[idx],
            ncols=8,
            cell=70,
            titles=[f"{test_y[i]}→{predictions[name][i]}" for i in idx],
            title=f"{name}: {wrong[name].sum()} misclassified test digits "
            "(the first 16)",
        )
        plots.show(fig, cfg.run_dir / f"errors_{main.index(name)}.html")
all_three = wrong[main[0]] & wrong[main[1]] & wrong[main[2]]
print(f"{'misclassified by':<44}{'digits':>7}")
print(f"{'all three':<44}{all_three.sum():>7}")
for name in main:
    others = [wrong[o] for o in main if o != name]
    only = wrong[name] & ~others[0] & ~others[1]
    print(f"{name + ' only':<44}{only.sum():>7}")
print(
    f"{'the CNN but not the Gabor SVM':<44}"
    f"{(wrong['CNN'] & ~wrong['RBF SVM, Gabor']).sum():>7}"
)
print(
    f"{'the Gabor SVM but not the CNN':<44}"
    f"{(wrong['RBF SVM, Gabor'] & ~wrong['CNN']).sum():>7}"
)
idx = np.flatnonzero(all_three)[:16]
if len(idx):
    fig = plots.image_grid(
        test_x[idx],
        ncols=8,
        cell=70,
        titles=[
            f"{test_y[i]}: " + "/".join(str(predictions[n][i]) for n in main)
            for i in idx
        ],
        title="Misclassified by all three (true: pixel SVM / Gabor SVM / "
        "CNN predictions)",
    )
    plots.show(fig, cfg.run_dir / "errors_all.html")

# %% [markdown]
# The digits that all three methods miss tend to be the genuinely ambiguous or
# badly written ones; the errors only one method makes are the interesting
# ones, because they show what its features miss. An RBF SVM on pixels compares
# a digit with stored digits pixel by pixel, so a digit drawn thicker, thinner
# or slightly off-centre from its look-alikes in the training set is at risk;
# the pooled Gabor energies and the CNN's pooling both forgive small shifts.
#
# ### Learned filters next to engineered ones
#
# The CNN's 16 first-layer kernels after training (they act on standardised
# pixels; red positive, blue negative):

# %%
cnn.cpu().eval()
learned = cnn.conv1.weight.detach()  # (16, 1, 5, 5)
fig = vis.filters(learned, title="CNN conv1: the 16 learned 5×5 kernels")
plots.show(fig, cfg.run_dir / "cnn_filters.html")
maps = vis.capture(cnn, "conv1", torch.as_tensor(digit)[:, None])["conv1"]
fig = vis.feature_maps(
    torch.relu(maps[0]),
    title=f"The same test digit ({test_y[shown][0]}) through conv1 and its ReLU",
)
plots.show(fig, cfg.run_dir / "cnn_maps.html")


# %% [markdown]
# Several look like pieces of the Gabor bank: a positive and a negative band
# side by side (an oriented edge detector, like an odd Gabor part) or a band
# between two of the opposite sign (a bar detector, like an even part). Others
# look less structured. How Gabor-like are they, really? We measure it: for each
# kernel, the best cosine similarity with any member of a dense family of real
# 5×5 Gabor kernels (every combination of 10 frequencies, 16 orientations, 8
# phases and 5 envelope widths), compared with the same score for the kernels
# before training and for random Gaussian kernels. With 6,400 templates in 25
# dimensions even random kernels find a partner that fits somewhat, which is
# why the baselines matter.


# %%
def gabor_family(radius=2):
    """Unit-norm real Gabor kernels (n, (2 radius + 1)^2) and their params."""
    kernels, params = [], []
    for f in np.linspace(0.05, 0.5, 10):
        for theta in np.arange(16) * np.pi / 16:
            for phase in np.arange(8) * np.pi / 4:
                for sigma in (0.6, 0.9, 1.3, 2.0, 3.0):
                    kernels.append(gabor(f, theta, sigma, radius, phase).real)
                    params.append((f, theta, phase, sigma))
    k = np.stack(kernels).reshape(len(kernels), -1)
    return k / np.linalg.norm(k, axis=1, keepdims=True), params


def gabor_fit(weights, family):
    """Best cosine similarity of each (k, k) kernel with the family, and
    the index of the best-matching template."""
    w = weights.reshape(len(weights), -1).astype(np.float64)
    cos = (w / np.linalg.norm(w, axis=1, keepdims=True)) @ family.T
    return cos.max(axis=1), cos.argmax(axis=1)


family, family_params = gabor_family()
scores, best = gabor_fit(learned[:, 0].numpy(), family)
baselines = {
    "learned (after training)": scores,
    "initial (before training)": gabor_fit(cnn_initial[:, 0].numpy(), family)[0],
    "random Gaussian kernels": gabor_fit(
        np.random.default_rng(cfg.seed).standard_normal((1000, 5, 5)), family
    )[0],
}
print(f"{'5x5 kernels':<28}{'mean best cosine':>17}{'median':>8}")
for name, s in baselines.items():
    print(f"{name:<28}{s.mean():>17.3f}{np.median(s):>8.3f}")
fig = plots.image_grid(
    np.concatenate([learned[:, 0].numpy(), family[best].reshape(-1, 5, 5)]),
    symmetric=True,
    ncols=8,
    cell=80,
    titles=[f"conv1 {i}" for i in range(16)]
    + [f"best Gabor, cos {s:.2f}" for s in scores],
    title="Learned kernels (top two rows) and their best-matching Gabor "
    "kernels (bottom two rows)",
)
plots.show(fig, cfg.run_dir / "gabor_fit.html")

# %% [markdown]
# A cosine of 1 would be a perfect Gabor kernel; compare the learned row of the
# table with the two baselines to see how much training moved the kernels
# towards Gabor shapes. On 5×5 kernels and 14×14 digits the resemblance is
# partial at best: the kernels are too small to hold more than about one period,
# the digits are not natural images, and nothing in the loss asks for Gabor
# filters. What the network needs from its first layer is whatever makes its
# second layer and read-out work, and some kernels are simply blob or ramp
# detectors. The clean Gabor-like banks of {cite:t}`krizhevsky2012imagenet` came
# from large kernels trained on millions of natural images.
#
# ### Learning curves
#
# How does each method improve with more data? Each method is trained again on
# smaller, nested, class-stratified subsets of the training images. The SVMs
# keep their hyperparameters. The CNN gets as many optimizer steps on a small
# set as on the full one (more epochs), so that it is not handicapped by
# stopping early; its cost is therefore about the same at every size.

# %%
sizes = sorted({*cfg.curve_sizes, len(svm_idx), len(train_x)})
steps_full = cfg.epochs * math.ceil(len(train_x) / cfg.batch_size)
curve_names = ["linear SVM, Gabor", "RBF SVM, pixels", "RBF SVM, Gabor", "CNN"]
curves = {}
for name in curve_names:
    curves[name] = c = {"n": [], "acc": [], "train_s": []}
    largest = results[name]["train_images"]  # the run above: the last point
    for n in sorted(m for m in cfg.curve_sizes if m < largest):
        idx = data.subsample(np.arange(len(train_x)), train_y, n, seed=cfg.seed)[0]
        if name == "CNN":
            epochs = max(cfg.epochs, round(steps_full / math.ceil(n / cfg.batch_size)))
            model, _, _, seconds = train_cnn(train_x[idx], train_y[idx], epochs)
            pred = predict(model, test_t).argmax(dim=1).numpy()
        else:
            kernel = "rbf" if name.startswith("RBF") else "linear"
            feats = name.split(", ")[1]
            xtr, xte, standardize = inputs[feats]
            model, seconds = train_svm(
                xtr[idx],
                train_y[idx],
                kernel,
                cfg.rbf_c if kernel == "rbf" else cfg.linear_c,
                standardize,
            )
            if feats == "Gabor":  # as in the table: features included
                seconds += gabor_train_seconds * n / len(train_x)
            pred = model.predict(xte)
        c["n"].append(n)
        c["acc"].append(float((pred == test_y).mean()))
        c["train_s"].append(seconds)
    c["n"].append(largest)
    c["acc"].append(results[name]["acc"])
    c["train_s"].append(results[name]["train_s"])
print(f"{'training images':<20}" + "".join(f"{n:>10,}" for n in sizes))
for name, c in curves.items():
    accs = dict(zip(c["n"], c["acc"]))
    print(
        f"{name:<20}"
        + "".join(f"{accs[n]:>10.2%}" if n in accs else f"{'-':>10}" for n in sizes)
    )

# %%
if len(sizes) > 1:
    fig = plots.lines(
        {name: [1 - a for a in c["acc"]] for name, c in curves.items()},
        x=sizes,
        xlabel="training images",
        ylabel="test error",
        title="Learning curves: test error against training-set size (log-log)",
        log_y=True,
    )
    for trace, c in zip(fig.data, curves.values()):
        trace.x, trace.mode = c["n"], "lines+markers"
    fig.update_xaxes(type="log")
    plots.show(fig, cfg.run_dir / "learning_curves.html")


# %% [markdown]
# On log-log axes a learning curve that is a straight line is a power law,
# error $\propto n^{-\beta}$; the steeper the line, the more the method gains
# from each doubling of the data. The slopes between the two largest sizes:


# %%
def exponent(ns, ys):
    """Slope of log(y) against log(n) between the last two points."""
    if len(ns) < 2 or min(ys[-2:]) <= 0:
        return float("nan")
    return math.log(ys[-1] / ys[-2]) / math.log(ns[-1] / ns[-2])


for name, c in curves.items():
    if len(c["n"]) > 1:
        beta = -exponent(c["n"], [1 - a for a in c["acc"]])
        print(
            f"{name:<20} beta = {beta:.2f} (test error "
            f"{1 - c['acc'][-2]:.2%} at {c['n'][-2]:,} images, "
            f"{1 - c['acc'][-1]:.2%} at {c['n'][-1]:,})"
        )

# %% [markdown]
# The Gabor features are a strong prior: they encode, before any data are
# seen, that digits are made of oriented strokes and that small shifts do not
# matter, so the Gabor SVMs do well already with a few hundred images. The CNN
# has to discover its features from the labels, which costs data at the small
# end of the curve: compare its first point with theirs. A larger $\beta$ means
# a method is still gaining fast, a smaller one that it is approaching what its
# features (or its size) allow. Whether and where the CNN's curve crosses the
# Gabor SVM's is a question for the `full` profile, which extends the curves to
# 60,000 images.
#
# The training times tell the other half of the story. The same slope for the
# training time (time $\propto n^a$):

# %%
for name, c in curves.items():
    times = ", ".join(f"{t:.2f} s" for t in c["train_s"])
    print(
        f"{name:<20} training times {times}; exponent a = "
        f"{exponent(c['n'], c['train_s']):.2f}"
    )
if len(sizes) > 1:
    fig = plots.lines(
        {name: c["train_s"] for name, c in curves.items()},
        x=sizes,
        xlabel="training images",
        ylabel="training time (s)",
        log_y=True,
        title="Training time against training-set size (log-log)",
    )
    for trace, c in zip(fig.data, curves.values()):
        trace.x, trace.mode = c["n"], "lines+markers"
    fig.update_xaxes(type="log")
    plots.show(fig, cfg.run_dir / "training_times.html")

# %% [markdown]
# The RBF SVMs' exponent is above 1: their training time grows faster than
# the data, as the dual {eq}`features-svm-dual` predicts (on small sets, fixed
# costs flatten the curve). The linear SVM grows roughly in proportion to the
# data. The CNN's cost is set by its number of optimizer steps, which we held
# fixed, not by the number of images. Extrapolating the SVMs' measured
# exponents from this run's largest training set to all of MNIST (a rough
# guide, to check against the `full` run: the exponent itself tends to grow
# with $n$ as the kernel cache covers less of the problem):

# %%
for name, c in curves.items():
    a = exponent(c["n"], c["train_s"])
    if name != "CNN" and c["n"][-1] < 60_000 and not math.isnan(a):
        guess = c["train_s"][-1] * (60_000 / c["n"][-1]) ** a
        print(f"{name:<20} about {guess:,.0f} s on 60,000 images")
n_imagenet = 1_281_167  # ImageNet's training images
print(
    f"a kernel matrix for ImageNet: {n_imagenet**2:.1e} entries, "
    f"{n_imagenet**2 * 4 / 1e12:.1f} TB in float32"
)

# %% [markdown]
# On the 1.2 million images of ImageNet an exact kernel SVM is out of the
# question. That is one of the reasons the vision systems of the late 2000s
# used *linear* SVMs on very large engineered feature vectors, and one of the
# reasons networks trained by SGD, whose cost per step does not depend on the
# size of the data set, took over once data sets grew.
#
# ## Results

# %%
seconds = time.perf_counter() - T0
# LeNet et al. 1998, Fig. 9 (28x28 MNIST, 60,000 training images, no
# distortions): a degree-4 polynomial SVM on pixels 1.1%, LeNet-5 0.95% error.
PAPER = {"RBF SVM, pixels": 1 - 0.011, "CNN": 1 - 0.0095}
metrics = {
    "acc": {n: r["acc"] for n, r in results.items()},
    "train_seconds": {n: r["train_s"] for n, r in results.items()},
    "stored_numbers": {n: r["stored"] for n, r in results.items()},
    "learning_curves": {
        n: {"n": c["n"], "acc": c["acc"], "train_s": c["train_s"]}
        for n, c in curves.items()
    },
    "gabor_fit_cosine": {n: float(s.mean()) for n, s in baselines.items()},
    "train_images": len(train_x),
    "test_images": len(test_x),
    "svm_train_images": len(svm_idx),
    "cnn_parameters": count_parameters(cnn),
}
rows = results_table(
    cfg,
    metrics,
    seconds=seconds,
    title="MNIST test accuracy",
    columns={
        **{f"acc.{n}": (n, ".2%") for n in main},
        "train_images": ("train images", ","),
    },
    references=[
        Reference(
            "polynomial SVM",
            {"acc.RBF SVM, pixels": PAPER["RBF SVM, pixels"], "train_images": 60_000},
            source="lecun1998gradient",
            setting="Fig. 9",
        ),
        Reference(
            "LeNet-5",
            {"acc.CNN": PAPER["CNN"], "train_images": 60_000},
            source="lecun1998gradient",
            setting="Fig. 9",
        ),
    ],
    notes=[
        f"this run: {len(train_x):,} training and {len(test_x):,} test images "
        f"(the MNIST copy found has {len(all_train[0]):,} training images)"
    ],
)
assert rows[0].values["acc.CNN"] == results["CNN"]["acc"]

# %% [markdown]
# The paper's numbers are context, not a target: {cite:t}`lecun1998gradient`
# worked on full-resolution 28×28 digits, with a polynomial rather than an RBF
# kernel and with LeNet-5 rather than our 8k-parameter network, and had no Gabor
# SVM. What they show, as this chapter does, is that on MNIST a well-chosen
# kernel SVM and a small CNN land close to each other. The decisive differences
# lie elsewhere: the CNN is a few thousand numbers and a fixed
# training cost per step, the kernel SVM a growing part of the training set and
# a cost that grows faster than the data; and the Gabor bank had to be designed,
# with knowledge of vision and of the images' scale (our frequencies are chosen
# for strokes one to three pixels wide), whereas the CNN's filters came from
# the labels.
#
# The run's metrics, config, duration and machine go to `metrics.json` in the
# run folder; a `full` run's file is what gets recorded in
# `results/features.json`.

# %%
utils.save_run(cfg.run_dir / "metrics.json", cfg, metrics, seconds)
print(f"metrics saved to {cfg.run_dir / 'metrics.json'}")

# %% [markdown]
# ## Summary
#
# - Before 2012, vision systems were hand-designed features plus a trained
#   classifier. A Gabor filter bank {eq}`features-gabor` with energy
#   {eq}`features-energy` and pooling is the classic example, modelled on simple
#   and complex cells of the visual cortex.
# - A support vector machine minimises the hinge loss plus an L2 penalty
#   {eq}`features-svm-primal`; through its dual {eq}`features-svm-dual`, a kernel
#   makes it nonlinear {eq}`features-svm-decision`. It is nonparametric: it keeps
#   its support vectors, and its training cost grows faster than the data.
# - Good features matter more than a clever classifier: on Gabor features even
#   a linear SVM is far better than on pixels.
# - The Gabor pipeline is a one-stage CNN with fixed filters. A CNN learns its
#   filters, stacks stages, and trains features and classifier together. With a
#   few thousand 14×14 digits a well-designed bank plus an RBF SVM is hard to
#   beat; the CNN comes close with a few thousand parameters instead of
#   thousands of stored digits, and without anybody designing its filters. Its
#   first-layer kernels move towards Gabor shapes during training, but only
#   part of the way.
# - What learned features removed is the design step: the same recipe works for
#   every data set with enough labels, at a cost per step that does not grow
#   with the data set.
#
# ## Exercises
#
# :::{exercise}
# :label: features-ex-1
# The SVMs' $C$ and $\gamma$ were fixed. Tune them for the RBF SVM on Gabor
# features by 3-fold cross-validation on the training images over
# $C \in \{1, 10, 100\}$ and $\gamma \in \{0.3, 1, 3\} \times \gamma_{\text{scale}}$.
# How much do the test accuracy and the number of support vectors change?
# :::
#
# :::{solution} features-ex-1
# :class: dropdown
# ```python
# from sklearn.model_selection import GridSearchCV
# scale = 1 / train_gabor.shape[1]  # gamma='scale' after standardising
# search = GridSearchCV(
#     make_pipeline(StandardScaler(), SVC(kernel="rbf")),
#     {"svc__C": [1, 10, 100], "svc__gamma": [0.3 * scale, scale, 3 * scale]},
#     cv=3, n_jobs=-1)
# search.fit(train_gabor, train_y)
# best = search.best_estimator_
# print(search.best_params_, (best.predict(test_gabor) == test_y).mean(),
#       best[-1].n_support_.sum())
# ```
# After standardisation every feature has variance 1, so
# $\gamma_{\text{scale}} = 1/d$. Expect changes of a few tenths of a percent at
# most, the same order as the test set's standard error: the RBF SVM is not
# very sensitive near good values. Larger $C$ penalises margin violations more,
# so fewer points end up inside the margin and the number of support vectors
# falls; larger $\gamma$ makes the kernel more local, which needs more support
# vectors and eventually overfits. The rule is that the test set is looked at
# once, after the search.
# :::
#
# :::{exercise}
# :label: features-ex-2
# Replace the CNN's first layer by a fixed Gabor bank: 16 real 5×5 kernels
# (for instance the even and odd parts of 8 orientations at $f = 0.25$,
# $\sigma = 1.2$), frozen, and train the rest of the network as before. Does
# the network lose accuracy? What does that say about the value of learning the
# first layer on this task?
# :::
#
# :::{solution} features-ex-2
# :class: dropdown
# ```python
# kernels = [gabor(0.25, np.pi * k / 8, 1.2, radius=2) for k in range(8)]
# fixed = np.stack([k.real for k in kernels] + [k.imag for k in kernels])
# model = SmallCNN(mean=float(train_x.mean()), std=float(train_x.std()))
# with torch.no_grad():
#     model.conv1.weight.copy_(torch.tensor(fixed, dtype=torch.float32)[:, None]
#                              / np.abs(fixed).max())
#     model.conv1.bias.zero_()
# model.conv1.requires_grad_(False)  # frozen: no gradient, no update
# # ... then the optimizer, scheduler and fit() of train_cnn, with
# # torch.optim.SGD([p for p in model.parameters() if p.requires_grad], ...)
# ```
# Usually the frozen-Gabor network ends up close to the learned one: with a
# trainable second layer on top, a reasonable fixed first layer is enough for
# digits, consistent with the partial Gabor resemblance measured above. The
# first layer is where learning matters least; what matters is that the later
# stages, which no one knows how to design by hand, are learned. The kernels
# are scaled so that their responses are on the scale the initial weights of
# conv2 expect; without that, the learning rate may need adjusting.
# :::
#
# :::{exercise}
# :label: features-ex-3
# Shift all test digits one pixel to the right (on 14×14, two pixels of the
# original) and measure the accuracy of the three main methods again. Which
# method is hurt most, and which part of its pipeline explains the difference?
# :::
#
# :::{solution} features-ex-3
# :class: dropdown
# ```python
# moved = np.roll(test_x, 1, axis=2)
# moved[:, :, 0] = 0                               # uncovered column: background
# flat = moved.reshape(len(moved), -1)
# acc = {
#     "RBF SVM, pixels": (svms["RBF SVM, pixels"].predict(flat) == test_y).mean(),
#     "RBF SVM, Gabor": (svms["RBF SVM, Gabor"].predict(
#         gabor_features(moved, bank, cfg.pool)) == test_y).mean(),
#     "CNN": (predict(cnn, torch.as_tensor(moved)[:, None]).argmax(1).numpy()
#             == test_y).mean()}
# print(acc)
# ```
# Expect the pixel SVM to lose the most: the RBF kernel compares pixel by
# pixel, and a shift moves a digit far from its look-alikes in pixel space (the
# measurement in {doc}`lenet`'s motivation). The Gabor energies are computed at
# every position and then averaged over 2×2 cells, so after a one-pixel shift
# each cell still holds half of the energy it held before; the CNN's convolutions are
# equivariant and its two max-poolings absorb part of the shift. Neither is
# fully invariant, and training with shifted copies (augmentation) would help all
# three, the SVMs at the price of more support vectors {cite:p}`decoste2002training`.
# :::
#
# :::{exercise}
# :label: features-ex-4
# Check {eq}`features-svm-decision` numerically. Train an RBF `SVC` on the
# pixels of the digits 3 and 8 only, then compute its score for a few test
# digits from `support_vectors_`, `dual_coef_` (which holds $\alpha_i y_i$),
# `intercept_` and the kernel, and compare with `decision_function`. What
# fraction of the training digits are support vectors?
# :::
#
# :::{solution} features-ex-4
# :class: dropdown
# ```python
# keep = np.isin(train_y, [3, 8])
# x38 = train_x[keep].reshape(keep.sum(), -1).astype(np.float64)
# svm = SVC(kernel="rbf", C=10, gamma="scale").fit(x38, train_y[keep])
# gamma = svm._gamma                      # the value 'scale' resolved to
# x = test_x[np.isin(test_y, [3, 8])][:5].reshape(5, -1).astype(np.float64)
# sq = ((x[:, None, :] - svm.support_vectors_[None]) ** 2).sum(-1)
# ours = np.exp(-gamma * sq) @ svm.dual_coef_[0] + svm.intercept_[0]
# print(np.allclose(ours, svm.decision_function(x)))    # True
# print(f"{len(svm.support_) / keep.sum():.0%} of the training digits")
# ```
# The sum runs over the support vectors only: every other training digit has
# $\alpha_i = 0$. A larger fraction of support vectors means a slower
# classifier; for a pair as similar as 3 and 8 it is noticeably larger than for
# an easy pair such as 0 and 1. (scikit-learn's sign convention makes a
# positive score mean the second class, 8.)
# :::
#
# :::{exercise}
# :label: features-ex-5
# Why can't a kernel SVM simply compute its full kernel matrix for all 60,000
# MNIST training images? Work out the memory in float32 and float64, and the
# number of kernel evaluations. How does a linear SVM avoid the problem, and
# what is the analogous cost for the CNN?
# :::
#
# :::{solution} features-ex-5
# :class: dropdown
# $60{,}000^2 = 3.6 \times 10^9$ entries: 14.4 GB in float32, 28.8 GB in
# float64 (half with symmetry), and as many kernel evaluations of $d$
# multiply-adds each, about $7 \times 10^{11}$ for $d = 196$ pixels. SMO-type
# solvers keep only a cache of recently used rows (`cache_size`) and
# recompute the rest, and the number of rows they need grows with $n$ and with
# the number of support vectors: that is the superlinear time measured above.
# A linear SVM works with $\mathbf{w}$ directly, in the primal or with a dual
# coordinate method that updates $\mathbf{w}$ as it goes
# {cite:p}`fan2008liblinear`: $O(nd)$ per pass. The CNN's cost is (steps) ×
# (batch size) × (cost per image), linear in the number of images seen and
# independent of the training-set size for a fixed number of steps; its
# memory is the parameters, the optimizer state and one batch's activations.
# :::
#
# ## References
#
# ```{bibliography}
# :filter: docname in docnames
# ```
