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
# (allcnn)=
# # All-CNN: the all-convolutional network
#
# LeNet and AlexNet ({doc}`alexnet`) alternate convolutions with max-pooling and
# end in large fully connected layers. {cite:t}`springenberg2015striving` asked
# which of these parts are needed, and answered with a network made of nothing
# but convolutions: a convolution of stride 2 where a pooling layer was, a
# $1 \times 1$ convolution to one map per class and a global average where the
# fully connected layers were. In this chapter we build its CIFAR-10 network,
# All-CNN-C, in the form most often trained today (batch normalisation after
# every convolution, which we call All-CNN-T), count its parameters exactly,
# train it with a classic step-schedule recipe, and then repeat the attacks of
# {doc}`adversarial` on it: its input gradients, a five-step iterative FGSM
# whose loss we follow step by step, and one-step FGSM on the whole test set.

# %%
import time

T0 = time.perf_counter()  # the whole chapter is timed, plots included

from dataclasses import dataclass, field

import numpy as np
import torch
from torch.nn import functional as F

from scratch import data, plots, recipes, utils, vis
from scratch.attacks import accuracy_under_attack, fgsm, input_gradient, pgd
from scratch.augment import Augment
from scratch.config import (
    ConfigError,
    Spec,
    describe,
    in_range,
    non_negative,
    positive,
)
from scratch.models.allcnn import (
    PAPER_PARAMETERS_M,
    AllCNNSpec,
    allcnn_parameter_count,
    layer_list,
)
from scratch.models.inspection import count_parameters, multiply_adds
from scratch.models.spec import load_model, save_model
from scratch.results import Reference, results_table
from scratch.train import AUTOCAST, TrainConfig, fit, predict

# %% [markdown]
# Everything in the chapter is driven by one config (explained in the Experiment
# section), read first so that a mistyped option stops the script at once:


# %% tags=["hide-input"]
@dataclass
class AttackStudy(Spec):
    """The attacks on the trained network: FGSM and iterative FGSM in the L-inf ball."""

    eps: float = field(
        default=8.0,
        metadata=positive(
            "total budget in grey levels out of 255: 8/255, the standard for CIFAR-10"
        ),
    )
    steps: int = field(
        default=5,
        metadata=positive(
            "iterative FGSM steps; each step is eps / steps, so the steps together "
            "can reach every corner of the ball and no further"
        ),
    )
    size: int = field(
        default=10_000,
        metadata=positive(
            "test images attacked (all 10,000 in full; at most test_size): one "
            "FGSM costs a forward and a backward pass per image"
        ),
    )
    shown: int = field(
        default=6,
        metadata=positive("images per row of the gradient and example figures"),
    )

    def validate(self):
        if self.eps > 255:
            raise ConfigError(f"eps={self.eps}: a budget in grey levels is at most 255")


@dataclass
class AllCNNConfig(TrainConfig):
    """All-CNN-T on CIFAR-10 and the attacks on it. The defaults are the `full`
    profile (on a GPU)."""

    NAME = "allcnn"  # outputs go to out_dir/allcnn

    model: AllCNNSpec = field(
        default_factory=AllCNNSpec,
        metadata=describe("the classifier; the default is c1 = 96, c2 = 192"),
    )
    attack: AttackStudy = field(
        default_factory=AttackStudy, metadata=describe("the attack study")
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
            "test images, the recipe's validation set: scored after every epoch, "
            "never used to choose anything (the schedule is fixed in advance)",
        ),
    )
    epochs: int = field(
        default=100, metadata=positive("passes over the training set: the recipe's 100")
    )
    batch_size: int = field(
        default=128, metadata=positive("images per SGD step: the recipe's 128")
    )
    lr: float = field(
        default=0.1,
        metadata=positive("initial learning rate: batch norm makes 0.1 trainable"),
    )
    milestones: tuple[float, ...] = field(
        default=(0.4, 0.8),
        metadata=in_range(
            0,
            1,
            "fractions of the run after which the rate is divided by 10: epochs "
            "40 and 80 of 100, as in the recipe (0.1, 0.01, 0.001)",
            low_open=True,
            high_open=True,
        ),
    )
    momentum: float = field(
        default=0.9, metadata=non_negative("Nesterov momentum, as in the recipe")
    )
    weight_decay: float = field(
        default=1e-3,
        metadata=non_negative(
            "L2 penalty on the weights only (not on BN scales and shifts): the "
            "recipe's 1e-3, twice the usual 5e-4 for a network this small"
        ),
    )
    crop: int = field(
        default=4,
        metadata=non_negative(
            "random 32x32 crops after padding by this many pixels (reflect)"
        ),
    )
    flip: bool = field(default=True, metadata=describe("random horizontal flips"))
    brightness: float = field(
        default=0.2,
        metadata=in_range(
            0, 1, "colour jitter: brightness factor uniform in [1 - b, 1 + b]"
        ),
    )
    contrast: float = field(
        default=0.2,
        metadata=in_range(
            0, 1, "colour jitter: contrast factor uniform in [1 - c, 1 + c]"
        ),
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
            "score the test set after every epoch (the curves); false: only once "
            "at the end, which saves time on a CPU"
        ),
    )

    PROFILES = {
        "tiny": dict(
            model=dict(c1=8, c2=16, dropout=0.0, input_dropout=0.0),  # tests
            train_size=2048,
            test_size=256,
            epochs=4,
            batch_size=64,
            precision="fp32",
            attack=dict(size=256, shown=4),
            threads=1,
        ),
        # book build on a 2-core CPU: a narrow network, 12,000 images, 4 epochs
        # (5,000 images x 2 epochs took 17 s for the whole chapter in a clean
        # book build and reached only 38% clean accuracy)
        "small": dict(
            model=dict(c1=32, c2=64, dropout=0.1, input_dropout=0.0),
            train_size=12_000,
            test_size=1_000,  # all of them attacked: one denominator in the table
            epochs=4,
            precision="auto",
            eval_every_epoch=False,
            attack=dict(size=1_000),
            threads=2,
        ),
        "full": dict(precision="auto"),  # c1 = 96, c2 = 192 on a GPU
    }

    def validate(self):
        if list(self.milestones) != sorted(self.milestones):
            raise ConfigError(f"milestones={self.milestones} must be increasing")
        if self.attack.size > self.test_size:
            raise ConfigError(
                f"attack.size={self.attack.size} must not exceed "
                f"test_size={self.test_size}"
            )
        if self.attack.shown > self.attack.size:
            raise ConfigError(
                f"attack.shown={self.attack.shown} must not exceed "
                f"attack.size={self.attack.size}"
            )


cfg = AllCNNConfig.from_cli()
utils.seed_everything(cfg.seed)
EPS = cfg.attack.eps / 255  # the budget in the [0, 1] units of the images

# %% [markdown]
# ## Motivation
#
# The networks of {doc}`alexnet` have two kinds of layers besides convolutions.
# *Max-pooling* halves the resolution with a fixed rule (keep the largest value
# of each window), and the *fully connected* layers at the end turn the last
# feature maps into class scores. The second kind holds most of the parameters
# (AlexNet's three fully connected layers hold most of its weights
# {cite:p}`krizhevsky2012imagenet`), and it ties the network to one input size.
# Both kinds were simply inherited from earlier networks. Are they needed?
#
# {cite:t}`springenberg2015striving` replaced each max-pooling layer by a
# convolution with stride 2, which lets the network *learn* how to summarise a
# window, and the fully connected layers by the head of *Network in Network*
# {cite:p}`lin2013network`: a $1 \times 1$ convolution to one map per class,
# averaged over the positions. The result, All-CNN-C, matched or beat the
# pooling networks of its time on CIFAR-10 with 1.3 million parameters. Its
# two ideas became standard: the ResNets of {doc}`resnet` halve their
# resolution with strided convolutions and end in a global average.
#
# It is also a good second subject for the attacks of {doc}`adversarial`: a
# network of a different design, trained with a different recipe, lets us see
# which of that chapter's findings belong to the ResNet and which to ordinary
# training.
#
# ## Theory
#
# ### Pooling is a convolution with a fixed kernel
#
# Write a feature map as $f$ (width $W$, height $H$, $N$ channels). A pooling
# layer with window $k$ and stride $r$ computes, for every channel $u$ and
# output position $(i, j)$, a $p$-norm of the window,
#
# $$
# s_{i,j,u}(f) = \Big(\sum_{h=0}^{k-1} \sum_{w=0}^{k-1}
#   \big|f_{r i + h,\; r j + w,\; u}\big|^p\Big)^{1/p},
# $$ (allcnn-pool)
#
# with $p \to \infty$ for max-pooling and $p = 1$ for (sum) average pooling. A
# convolution with the same window and stride, followed by a nonlinearity
# $\sigma$, computes
#
# $$
# c_{i,j,o}(f) = \sigma\Big(\sum_{h=0}^{k-1} \sum_{w=0}^{k-1} \sum_{u=1}^{N}
#   \theta_{h,w,u,o}\, f_{r i + h,\; r j + w,\; u}\Big) .
# $$ (allcnn-conv)
#
# Both reduce each window to one value. Pooling does it per channel, with a
# fixed rule; the convolution mixes the channels and *learns* its weights
# $\theta$. Springenberg et al. observe that pooling therefore amounts to a
# convolution with a fixed kernel (one that is not even linear for max-pooling),
# and that one can drop the pooling layer and give the preceding convolution a
# stride of 2 instead, or replace the pooling layer by a strided convolution
# of its own (what All-CNN-C does). The price is parameters and computation:
# a $3 \times 3$ convolution from $c$ to $c$ channels costs $9c^2$ weights
# where pooling costs none.
#
# ### Global average pooling of class maps
#
# The last convolutions of All-CNN-C produce 10 maps, one per class, and the
# score of class $k$ is the average of its map $a_k$ over the $h \times w$
# positions, as in {doc}`resnet`'s global average pooling, but without a
# linear layer after it:
#
# $$
# z_k = \frac{1}{hw} \sum_{u=1}^{h} \sum_{v=1}^{w} a_k[u, v] .
# $$ (allcnn-gap)
#
# Each map is a *class evidence map*: where in the image the network sees
# class $k$. There are no fully connected layers left: the network has the
# same parameters for an input of any size.
#
# ### Sizes and counts
#
# A convolution with kernel $k$, padding $p$ and stride $s$ turns a side of $n$
# pixels into
#
# $$
# n' = \left\lfloor \frac{n + 2p - k}{s} \right\rfloor + 1
# $$ (allcnn-size)
#
# pixels: padded $3 \times 3$ convolutions keep 32 at stride 1 and halve it at
# stride 2 (32, 16, 8), and the head's unpadded ("valid") $3 \times 3$ turns 8
# into 6. With $C_\text{in}$ and $C_\text{out}$ channels it has
# $k^2 C_\text{in} C_\text{out}$ weights; a batch norm after it adds a scale
# and a shift per channel, $2 C_\text{out}$, and makes the convolution's own
# bias redundant (the norm subtracts the mean, bias included). For widths
# $c_1$, $c_2$ and $K$ classes the nine convolutions of the network have
#
# $$
# N = \underbrace{27 c_1 + 2 \cdot 9 c_1^2 + 9 c_1 c_2 + 3 \cdot 9 c_2^2
#   + c_2^2 + c_2 K}_{\text{weights}}
#   + \underbrace{2\,(3 c_1 + 5 c_2 + K)}_{\text{batch norm}}
# $$ (allcnn-count)
#
# parameters. Check the Implementation section for the numbers.
#
# ### The training recipe
#
# The network is trained with SGD with Nesterov momentum
# {cite:p}`sutskever2013importance`, weight decay on the weights only (the
# convolution kernels; not the batch-norm scales and shifts, as in
# {doc}`resnet`), and a *step schedule*: the learning rate starts at
# $\eta_0 = 0.1$ and is divided by 10 at fixed points of the run,
#
# $$
# \eta_t = \eta_0 \cdot 0.1^{\,|\{m \in M : t \ge m\}|},
# $$ (allcnn-steps)
#
# with milestones $M$ at 40% and 80% of the steps (epochs 40 and 80 of 100).
# The images are augmented with random crops (padding by 4 pixels, reflected),
# horizontal flips and *colour jitter*: each image's brightness and contrast
# are scaled by factors $b$ and $c$ drawn uniformly from $[0.8, 1.2]$,
#
# $$
# x' = \mathrm{clip}_{[0,1]}(b\, x), \qquad
# x'' = \mathrm{clip}_{[0,1]}\big(m + c\,(x' - m)\big),
# $$ (allcnn-jitter)
#
# where $m$ is the mean grey level of $x'$. The network standardises its input
# with the per-channel mean and standard deviation of the training images,
# computed here, not copied.
#
# ### The attacks
#
# The attacks are those of {doc}`adversarial`, in the $L_\infty$ ball of radius
# $\epsilon = 8/255$ around each image, kept to valid pixel values: one-step
# FGSM {cite:p}`goodfellow2015explaining` and the iterative FGSM of
# {cite:t}`kurakin2017adversarial`, $T$ signed steps of $\alpha = \epsilon / T$
# from the clean image, each projected back onto the allowed set
# $S(x) = \{x' : \|x' - x\|_\infty \le \epsilon,\ 0 \le x' \le 1\}$:
#
# $$
# x^{(0)} = x, \qquad
# x^{(t+1)} = \Pi_{S(x)}\Big(x^{(t)} + \tfrac{\epsilon}{T}\,
#   \mathrm{sign}\big(\nabla_x \mathcal{L}(f(x^{(t)}), y)\big)\Big) .
# $$ (allcnn-ifgsm)
#
# With $T = 5$ the total budget is $\epsilon$: all five steps in the same
# direction reach a corner of the ball, and any step that turns back is spent.
# Following the loss $\mathcal{L}(f(x^{(t)}), y)$ over $t$ shows how much each
# re-computed gradient adds to the first one.
#
# ## Implementation
#
# The network lives in `scratch.models.allcnn`. Its layers are one list, read
# by both the model and an independent parameter count:
#
# ```{literalinclude} ../../code/scratch/models/allcnn.py
# :pyobject: layer_list
# ```
#
# Each convolution is followed by batch normalisation and a ReLU, except the
# last, whose outputs are the class maps and must be free to be negative:
#
# ```{literalinclude} ../../code/scratch/models/allcnn.py
# :pyobject: conv_bn
# ```
#
# ```{literalinclude} ../../code/scratch/models/allcnn.py
# :pyobject: AllCNN
# ```
#
# The first layer, `Normalize`, standardises the images inside the model, so
# the network takes pixels in [0, 1] and the attacks can work on valid images
# directly. Dropout follows the paper: 20% of the input pixels and 50% of the
# activations after each strided convolution (the `small` and `tiny` profiles
# lower it: in a run of a few epochs dropout slows learning more than it
# prevents overfitting).
#
# ### Counting the parameters
#
# {eq}`allcnn-count` by hand, against PyTorch's count of the built network, for
# the full widths $c_1 = 96$, $c_2 = 192$ and for this run's:

# %%
full_net = AllCNNSpec().build()
counts = {
    "All-CNN-T (conv, BN, ReLU)": (
        count_parameters(full_net),
        allcnn_parameter_count(),
    ),
    "same, with convolution biases": (
        count_parameters(AllCNNSpec(conv_bias=True).build()),
        allcnn_parameter_count(conv_bias=True),
    ),
    "All-CNN-C as published (biases, no BN)": (
        None,
        allcnn_parameter_count(batch_norm=False, conv_bias=True),
    ),
    f"this run's widths ({cfg.model.c1}, {cfg.model.c2})": (
        count_parameters(cfg.model.build()),
        allcnn_parameter_count(cfg.model.c1, cfg.model.c2),
    ),
}
print(f"{'network':<42}{'PyTorch':>12}{'by hand':>12}")
for name, (built, by_hand) in counts.items():
    assert built is None or built == by_hand, name
    shown = "-" if built is None else f"{built:,}"
    print(f"{name:<42}{shown:>12}{by_hand:>12,}")
print(f"the paper: {PAPER_PARAMETERS_M} M")

# %% [markdown]
# Our network has 1,368,480 convolution weights and 2,516 batch-norm
# parameters. Keeping a bias in every convolution, as many implementations do
# (it does nothing before a batch norm), adds 1,258 more; the published
# All-CNN-C, with biases and without batch norm, sits between the two. All
# three are "about 1.37 million"; the paper prints "1.3 M". A course version of
# this network that circulates as `allcnn_t` has 1.67 million instead: its head
# has two padded $3 \times 3$ convolutions at $8 \times 8$ instead of a valid
# $3 \times 3$ and a $1 \times 1$, which costs $8 \cdot 192^2 = 294{,}912$ more
# weights (the library's tests pin that count too).
#
# Where the parameters and the computation sit, layer by layer, for one
# $32 \times 32$ image (multiply-adds counted by `multiply_adds` of
# `scratch.models.inspection`, as in {doc}`resnet`):

# %%
macs = multiply_adds(full_net, (1, 3, 32, 32))  # {conv name: multiply-adds}
side = 32
print(
    f"{'layer':<8}{'kernel':>8}{'stride':>8}{'output':>14}{'weights':>10}{'MMACs':>8}"
)
for i, ((c_in, c_out, k, s, p), name) in enumerate(zip(layer_list(), macs)):
    side = (side + 2 * p - k) // s + 1  # {eq}`allcnn-size`
    print(
        f"conv{i + 1:<4}{f'{k}x{k}':>8}{s:>8}{f'{c_out}x{side}x{side}':>14}"
        f"{k * k * c_in * c_out:>10,}{macs[name] / 1e6:>8.1f}"
    )
print(f"total: {sum(macs.values()) / 1e6:.0f} million multiply-adds per image")

# %% [markdown]
# The stride-1 convolutions of the second block and the head's first
# convolution hold most of the weights; the first block, at full resolution,
# does much of the arithmetic with few weights. The strided convolutions that
# replace the pooling layers cost as many weights as any other $3 \times 3$
# convolution of their width, but a quarter of its arithmetic.
#
# ### The recipe in the library
#
# Weight decay on the weights only, split by tensor shape (kernels have more
# than one dimension, BN scales and shifts have one):
#
# ```{literalinclude} ../../code/scratch/recipes.py
# :pyobject: param_groups
# ```
#
# The step schedule {eq}`allcnn-steps` is PyTorch's `MultiStepLR`, stepped after
# every batch with milestones counted in steps:
#
# ```{literalinclude} ../../code/scratch/recipes.py
# :pyobject: step_lr
# ```
#
# Colour jitter {eq}`allcnn-jitter` draws one brightness and one contrast
# factor *per image* of a batch (torchvision's `ColorJitter` draws one per
# call) and is part of the batched `Augment` of `scratch.augment`:
#
# ```{literalinclude} ../../code/scratch/augment.py
# :pyobject: brightness_contrast
# ```
#
# ```{literalinclude} ../../code/scratch/augment.py
# :pyobject: color_jitter
# ```
#
# The attacks are `fgsm` and `pgd` of `scratch.attacks`, shown in
# {doc}`adversarial`; `pgd` without a random start is the iterative FGSM
# {eq}`allcnn-ifgsm`, and given a list as `losses` it records every example's
# loss at the start and after each step.
#
# ## Experiment
#
# ### Configuration
#
# The defaults of the config are the `full` profile: All-CNN-T with
# $c_1 = 96$, $c_2 = 192$, the recipe above for 100 epochs on all 50,000
# training images, and the attacks on all 10,000 test images, which serve as
# the recipe's validation set (nothing is selected on them: the schedule is
# fixed in advance). Optional mixed precision is `precision`: `auto` uses
# bfloat16 where the device computes in it natively. The `small` profile, which
# the book is built with, must train *and* attack within about a minute and a
# half on two CPU cores, so it narrows the network (the widths below: a third
# of the channels, a ninth of the multiply-adds), trains for a few epochs
# on a subset of the training images with less dropout, keeps the milestones at the same
# fractions of the (short) run, and attacks a subset of the test set. It is a
# check that the recipe and the attacks work, not a replication. The fields
# that differ:

# %%
print(AllCNNConfig.profile_table())  # the fields whose values differ
print(
    f"this run: profile {cfg.profile!r}; attacks at eps = {cfg.attack.eps:g}/255, "
    f"iterative FGSM with {cfg.attack.steps} steps of eps/{cfg.attack.steps}"
)

# %% [markdown]
# ### Data
#
# CIFAR-10 {cite:p}`krizhevsky2009learning`, as tensors of pixel values in
# [0, 1]; the mean and standard deviation of each channel are computed from the
# training images this run uses, and the model standardises with them. The
# augmentation runs on whole batches (`Augment`), after each batch is on the
# training device:

# %%
train_images, train_labels = data.subsample(
    *data.cifar10("train"), cfg.train_size, seed=cfg.seed
)
test_images, test_labels = data.subsample(
    *data.cifar10("test"), cfg.test_size, seed=cfg.seed
)
classes = data.cifar10_classes()
mean, std = data.channel_stats(train_images)  # training images only
train_loader = recipes.tensor_loader(
    recipes.as_unit_tensor(train_images, cfg.channels_last),
    torch.from_numpy(train_labels).long(),
    cfg.batch_size,
    shuffle=True,
)
test_x = recipes.as_unit_tensor(test_images)  # (N, 3, 32, 32) in [0, 1]
test_y = torch.from_numpy(test_labels).long()  # (N,)
test_loader = recipes.tensor_loader(test_x, test_y, 1000, shuffle=False)
print(f"images: train {len(train_images):,}, test {len(test_images):,}")
print("channel mean", np.round(mean, 4), "std", np.round(std, 4))
augment = Augment(
    crop=cfg.crop, flip=cfg.flip, brightness=cfg.brightness, contrast=cfg.contrast
)
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
# ### Training
#
# One `fit`, with the step schedule stepped after every batch:

# %%
utils.seed_everything(cfg.seed)
model = cfg.model.build(mean=mean.tolist(), std=std.tolist())
print(
    f"All-CNN-T ({cfg.model.c1}, {cfg.model.c2}): {count_parameters(model):,} parameters"
)
if cfg.channels_last:
    model = model.to(memory_format=torch.channels_last)
optimizer = recipes.sgd(
    model, cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
)
total_steps = cfg.epochs * len(train_loader)
milestones = [round(m * total_steps) for m in cfg.milestones]  # in steps
scheduler = recipes.step_lr(optimizer, milestones, gamma=0.1)
print(
    f"{total_steps} steps; the rate drops to a tenth after steps {milestones} "
    f"(epochs {', '.join(f'{m / len(train_loader):.3g}' for m in milestones)})"
)
t_train = time.perf_counter()
history = fit(
    model,
    optimizer,
    train_loader,
    cfg,
    val_loader=test_loader if cfg.eval_every_epoch else None,
    scheduler=scheduler,
    batch_transform=augment,
)
train_seconds = time.perf_counter() - t_train
device = next(model.parameters()).device  # where fit trained it
model.eval()
logits = predict(model, test_x)  # (N, 10), float32, on the CPU
pred = logits.argmax(dim=1)  # (N,)
test_acc = (pred == test_y).double().mean().item()
print(
    f"test accuracy {test_acc:.2%} after {cfg.epochs} epochs "
    f"({train_seconds:.0f} s of training)"
)

# %%
per_epoch = max(1, len(history.steps) // max(len(history.epochs), 1))
fig = plots.lines(
    {"training loss": plots.smooth(history.steps, max(1, per_epoch // 10))},
    x=[(i + 1) / per_epoch for i in range(len(history.steps))],
    xlabel="epoch",
    ylabel="cross-entropy",
    title="Training loss of every step (moving average); the rate drops at "
    + ", ".join(f"{m / len(train_loader):.3g}" for m in milestones),
)
plots.show(fig, cfg.run_dir / "steps.html")
if cfg.eval_every_epoch:
    fig = plots.training_curves(
        history, title="All-CNN-T on CIFAR-10, per epoch (val = the test set)"
    )
    plots.show(fig, cfg.run_dir / "curves.html")

# %% [markdown]
# A step schedule shows in the loss: a plateau at the high rate, then a sudden
# drop at each milestone, when the smaller steps let SGD settle into the
# valley it has been bouncing across.
#
# ### Saving the model
#
# The network is saved with its spec, so that `load_model` rebuilds it in one
# call; the reloaded network must predict exactly as the trained one:

# %%
model.cpu()
save_model(cfg.run_dir / "model.pt", model, cfg.model)
restored, _ = load_model(cfg.run_dir / "model.pt")  # weights_only=True
check = test_x[:500]
# Both on the CPU: a GPU's convolutions round differently from the CPU's.
same = torch.equal(predict(restored, check).argmax(1), predict(model, check).argmax(1))
print(
    f"saved {cfg.run_dir / 'model.pt'}; identical predictions after reloading: {same}"
)
assert same
model.to(device)  # the attacks run where the training ran

# %% [markdown]
# ### Input gradients of right and wrong answers
#
# The gradient of the loss with respect to the input, $\nabla_x \mathcal{L}$,
# for test images the network classifies correctly and for some it gets wrong.
# Each gradient is shown as an image (grey = 0, each image scaled to its own
# largest value), and below it its magnitude (the largest of the three
# channels, as a heat map):

# %%
attack_x, attack_y = test_x[: cfg.attack.size], test_y[: cfg.attack.size]
right = (pred[: cfg.attack.size] == attack_y).nonzero().flatten()
wrong = (pred[: cfg.attack.size] != attack_y).nonzero().flatten()
probs = logits.softmax(dim=1)


def gradient_panels(idx):
    """Images, their loss gradients (signed, grey = 0) and the gradients'
    magnitudes: (3 * len(idx), 32, 32, 3) in [0, 1], and the gradients."""
    _, grad = input_gradient(model, attack_x[idx].to(device), attack_y[idx].to(device))
    grad = grad.float().cpu()  # (n, 3, 32, 32)
    peak = grad.abs().flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1, 1)
    signed = (grad / (2 * peak) + 0.5).permute(0, 2, 3, 1).numpy()
    magnitude = (grad.abs() / peak).amax(dim=1)  # (n, 32, 32)
    heat = vis.overlay(attack_x[idx], magnitude, alpha=1.0)  # a pure heat map
    images = attack_x[idx].permute(0, 2, 3, 1).numpy()
    return np.concatenate([images, signed, heat]), grad


gradient_norms = {}
for idx, what in [(right, "correctly"), (wrong, "wrongly")]:
    if len(idx) == 0:
        print(f"no {what} classified images among the attacked ones")
        continue
    norms = [  # in batches: memory
        input_gradient(model, attack_x[b].to(device), attack_y[b].to(device))[1]
        .flatten(1)
        .norm(p=1, dim=1)
        .cpu()
        for b in idx.split(500)
    ]
    gradient_norms[what] = torch.cat(norms).mean().item()
    shown_idx = idx[: cfg.attack.shown]
    panels, _ = gradient_panels(shown_idx)
    n = len(shown_idx)
    titles = [
        f"{classes[attack_y[i]]}→{classes[pred[i]]} {probs[i, pred[i]]:.0%}"
        for i in shown_idx
    ]
    fig = plots.image_grid(
        panels,
        ncols=n,
        titles=titles + ["∇x loss"] * n + ["|∇x loss|"] * n,
        cell=110,
        title=f"Test images {what} classified (true→predicted, confidence), "
        "the gradient of their loss and its magnitude",
    )
    plots.show(fig, cfg.run_dir / f"gradients_{what}.html")
for what, norm in gradient_norms.items():
    print(f"mean ||grad_x loss||_1 of the {what} classified images: {norm:.3g}")

# %% [markdown]
# The gradients look like structured noise: large on edges and textures of the
# object and of the background alike, changing sign from pixel to pixel.
# Compare the printed mean $L_1$ norms: the gradients of wrongly classified
# images are typically larger, because their loss is high and the softmax far
# from saturated, so the loss is steep. For a confidently right image the
# gradient is small, and one might think such an image safe. The next sections
# show that the gradient's *direction* is what matters.
#
# ### Iterative FGSM, step by step
#
# The iterative FGSM {eq}`allcnn-ifgsm` on the attacked test images, recording
# every image's loss at the start and after each step (under the run's
# precision; the accuracies are scored in float32):

# %%
step_losses = []  # accuracy_under_attack passes it to every batch's pgd call
t_attack = time.perf_counter()
clean_acc = accuracy_under_attack(model, attack_x, attack_y)
ifgsm_acc = accuracy_under_attack(
    model,
    attack_x,
    attack_y,
    pgd,
    precision=cfg.precision,
    eps=EPS,
    steps=cfg.attack.steps,
    step_size=EPS / cfg.attack.steps,
    losses=step_losses,
)
ifgsm_seconds = time.perf_counter() - t_attack
# steps + 1 tensors per batch, batch after batch -> (steps + 1, N)
k = cfg.attack.steps + 1
loss_curve = torch.stack(
    [
        torch.cat(step_losses[t::k]).float().cpu()
        for t in range(k)  # entry t of every batch
    ]
)
assert loss_curve.shape == (k, len(attack_x))
was_right = pred[: cfg.attack.size] == attack_y
curves = {"all attacked images": loss_curve.mean(1).numpy()}
if was_right.any() and (~was_right).any():
    curves["correctly classified at first"] = loss_curve[:, was_right].mean(1).numpy()
    curves["wrongly classified at first"] = loss_curve[:, ~was_right].mean(1).numpy()
fig = plots.lines(
    curves,
    x=list(range(k)),
    xlabel="attack step (0 = clean image)",
    ylabel="mean cross-entropy loss",
    title=f"Loss during a {cfg.attack.steps}-step iterative FGSM, "
    f"eps = {cfg.attack.eps:g}/255 in all",
)
plots.show(fig, cfg.run_dir / "attack_loss.html")
print(
    "mean loss after each step: "
    + ", ".join(f"{v:.3f}" for v in curves["all attacked images"])
)
print(f"({ifgsm_seconds:.0f} s for the iterative FGSM on {len(attack_x):,} images)")

# %% [markdown]
# The loss climbs with every step. To first order a step of
# {eq}`allcnn-ifgsm` raises the loss by $\alpha \|\nabla_x \mathcal{L}\|_1$,
# so a curve that bends upwards means that the gradient grows as the image
# moves away from the clean one, and a straight one that the network is
# nearly linear inside the ball. The images the network first got right start
# with a low loss; the ones it got wrong start high and climb further: the
# attack maximises the loss and does not stop at the decision boundary.
#
# ### One-step FGSM on the whole set
#
# FGSM with the whole budget in one step, $x' = \mathrm{clip}(x + \epsilon\,
# \mathrm{sign}\,\nabla_x \mathcal{L})$, on every attacked image; in the `full`
# profile that is the whole test set:

# %%
t_fgsm = time.perf_counter()
fgsm_acc = accuracy_under_attack(
    model, attack_x, attack_y, fgsm, precision=cfg.precision, eps=EPS
)
fgsm_seconds = time.perf_counter() - t_fgsm
print(f"{'attack':<28}{'accuracy':>9}   ({len(attack_x):,} test images)")
for name, acc in [
    ("none (clean)", clean_acc),
    (f"FGSM, eps = {cfg.attack.eps:g}/255", fgsm_acc),
    (f"iterative FGSM, {cfg.attack.steps} steps", ifgsm_acc),
]:
    print(f"{name:<28}{acc:>9.1%}")
print(f"({fgsm_seconds:.0f} s for FGSM)")

# %% [markdown]
# A few of the attacked images, clean and after each attack, with the
# predicted class and its probability:

# %%
idx = right[: cfg.attack.shown]
xs, ys = attack_x[idx].to(device), attack_y[idx].to(device)
with torch.autocast(
    device.type,
    dtype=AUTOCAST[cfg.precision],
    enabled=AUTOCAST[cfg.precision] is not None,
):
    x_fgsm = fgsm(model, xs, ys, EPS)
    x_ifgsm = pgd(
        model, xs, ys, EPS, steps=cfg.attack.steps, step_size=EPS / cfg.attack.steps
    )
xs, x_fgsm, x_ifgsm = xs.cpu(), x_fgsm.cpu(), x_ifgsm.cpu()


def caption(x, prefix):
    p = predict(model, x).softmax(dim=1)
    c = p.argmax(dim=1)
    return [f"{prefix}{classes[c[i]]} {p[i, c[i]]:.0%}" for i in range(len(x))]


n = len(idx)
fig = plots.image_grid(
    torch.cat([xs, x_fgsm, (x_ifgsm - xs) / (2 * EPS) + 0.5, x_ifgsm]).clamp(0, 1),
    ncols=n,
    cell=110,
    titles=caption(xs, "clean: ")
    + caption(x_fgsm, "FGSM: ")
    + ["perturbation ×16"] * n
    + caption(x_ifgsm, "iterative: "),
    title=f"Clean images, FGSM, the iterative FGSM's perturbation "
    f"(grey = 0) and its images, eps = {cfg.attack.eps:g}/255",
)
plots.show(fig, cfg.run_dir / "examples.html")

# %% [markdown]
# As for the ResNet of {doc}`adversarial`, a change of at most 8 grey levels
# per value, invisible in the images, is enough to flip most answers, and the
# iterative attack, which re-reads the gradient after every fifth of the
# budget, typically leaves fewer images correct than one step of the whole
# budget (compare the printed accuracies). The
# size of the gap between FGSM and the iterative attack says how far the loss
# is from linear inside the ball: for a network whose loss were linear in the
# input, the two would coincide.
#
# ## Results

# %%
seconds = time.perf_counter() - T0
metrics = {
    "test_acc": test_acc,
    "test_loss": F.cross_entropy(logits, test_y).item(),
    "clean_acc": clean_acc,
    "fgsm_acc": fgsm_acc,
    "ifgsm_acc": ifgsm_acc,
    "attack_loss": [float(v) for v in curves["all attacked images"]],
    "gradient_l1": gradient_norms,
    "parameters": count_parameters(model),
    "train_images": len(train_images),
    "test_images": len(test_images),
    "attack_images": len(attack_x),
    "train_seconds": train_seconds,
    "attack_seconds": ifgsm_seconds + fgsm_seconds,
}
PAPER_ERRORS = {  # CIFAR-10 test error of All-CNN-C, the paper's Table 3
    "All-CNN-C, no augmentation": 0.0908,
    "All-CNN-C, with augmentation": 0.0725,
}
millions = lambda n: f"{n / 1e6:.2f} M"
rows = results_table(
    cfg,
    metrics,
    seconds=seconds,
    title=f"CIFAR-10 test accuracy, clean and under attack (eps = {cfg.attack.eps:g}/255)",
    columns={
        "test_acc": ("clean", ".1%"),
        "fgsm_acc": ("FGSM", ".1%"),
        "ifgsm_acc": (f"iterative FGSM-{cfg.attack.steps}", ".1%"),
        "config.epochs": ("epochs", "d"),
        "parameters": ("parameters", millions),
    },
    references=[
        Reference(
            name,
            {"test_acc": 1 - error, "parameters": PAPER_PARAMETERS_M * 1e6},
            source="springenberg2015striving",
            setting="Table 3",
        )
        for name, error in PAPER_ERRORS.items()
    ],
    notes=[
        f"this run: {seconds:.0f} s in all, {train_seconds:.0f} s of them training, "
        f"{ifgsm_seconds + fgsm_seconds:.0f} s attacking {len(attack_x):,} images",
        "the paper trained All-CNN-C without batch norm, for 350 epochs, on "
        "whitened images; it reports no attacks",
    ],
)
assert rows[0].values["test_acc"] == test_acc

# %% [markdown]
# The `small` run checks that everything works and shows what a few CPU epochs
# of a narrow All-CNN-T buy; it is not a replication. The `full` profile trains
# the 1.37-million-parameter network with the recipe above for 100 epochs on a
# GPU, and its record, once there is one, fills the second row. The paper's
# numbers come from a different recipe (no batch norm, 350 epochs, whitened
# inputs), so they say what the architecture can reach, not what our recipe
# must.
#
# The run's metrics, config, duration and machine go to `metrics.json` in the run
# folder; a `full` run's file is what gets recorded in `results/allcnn.json`.

# %%
utils.save_run(cfg.run_dir / "metrics.json", cfg, metrics, seconds)
print(f"metrics saved to {cfg.run_dir / 'metrics.json'}")

# %% [markdown]
# ## Summary
#
# - Max-pooling is a convolution with a fixed kernel {eq}`allcnn-pool`; a
#   learned convolution of stride 2 {eq}`allcnn-conv` can take its place.
# - A $1 \times 1$ convolution to one map per class and a global average
#   {eq}`allcnn-gap` replace the fully connected layers: no linear layer, any
#   input size.
# - All-CNN-T is All-CNN-C with batch norm after every convolution:
#   1,370,996 parameters for $c_1 = 96$, $c_2 = 192$ {eq}`allcnn-count`,
#   1,258 more with the redundant convolution biases.
# - The recipe: SGD with Nesterov momentum, weight decay on the weights only,
#   a step schedule {eq}`allcnn-steps`, crops, flips and per-image colour jitter
#   {eq}`allcnn-jitter`, normalisation with statistics computed from the
#   training images.
# - Under attack it behaves like the ResNet of {doc}`adversarial`: the loss
#   climbs with every step of an iterative FGSM {eq}`allcnn-ifgsm`, and one
#   step of FGSM at $8/255$ already removes much of the clean accuracy.
#
# ## Exercises
#
# :::{exercise}
# :label: allcnn-ex-1
# Replace each strided convolution by a max-pooling layer ($3 \times 3$ window,
# stride 2), which is the paper's "ConvPool" idea in reverse. How many
# parameters does the network lose? Train both with the `small` profile's
# settings and compare accuracy and time.
# :::
#
# :::{solution} allcnn-ex-1
# :class: dropdown
# The two strided convolutions have $9 c_1^2 + 2 c_1$ and $9 c_2^2 + 2 c_2$
# parameters: for the full widths $83{,}136 + 332{,}160 = 415{,}296$, almost a
# third of the network.
#
# ```python
# from torch import nn
#
# net = cfg.model.build(mean=mean.tolist(), std=std.tolist())
# net.block1[2] = nn.MaxPool2d(3, stride=2, padding=1)
# net.block2[2] = nn.MaxPool2d(3, stride=2, padding=1)
# print(count_parameters(net))
# ```
# The shapes are unchanged (a padded $3 \times 3$ window of stride 2 halves
# 32 to 16 and 16 to 8). In a short run the pooling network usually trains
# about as well; Springenberg et al. found the strided version as good or
# better after full training, with more parameters.
# :::
#
# :::{exercise}
# :label: allcnn-ex-2
# Feed the trained network $48 \times 48$ images (upsample the test images
# with `F.interpolate`). Why does it run at all, and what is the shape of the
# class maps before the average? How does the accuracy change?
# :::
#
# :::{solution} allcnn-ex-2
# :class: dropdown
# Every layer is a convolution and the head is an average over positions
# {eq}`allcnn-gap`, so no layer depends on the input size. By
# {eq}`allcnn-size`, 48 becomes 24, 12 and, after the valid $3 \times 3$, 10:
#
# ```python
# big = F.interpolate(test_x[:1000], size=48, mode="bilinear", align_corners=False)
# print(model.forward_features(big[:1]).shape)  # (1, 10, 10, 10)
# acc = (predict(model, big).argmax(1) == test_y[:1000]).double().mean()
# print(f"{acc:.1%}")
# ```
# The accuracy drops: objects are 1.5 times larger than any the network was
# trained on, and its filters are not scale invariant.
# :::
#
# :::{exercise}
# :label: allcnn-ex-3
# Run the iterative FGSM with 1, 2, 5, 10 and 20 steps, always with the total
# budget $8/255$ split into equal steps ($\alpha = \epsilon / T$). Plot the
# accuracy against $T$. Then try $T = 10$ with $\alpha = 2\epsilon / T$ (steps
# that can overshoot and are projected back). Which is stronger, and why?
# :::
#
# :::{solution} allcnn-ex-3
# :class: dropdown
# ```python
# for steps in (1, 2, 5, 10, 20):
#     acc = accuracy_under_attack(model, attack_x, attack_y, pgd, eps=EPS,
#                                 steps=steps, step_size=EPS / steps)
#     print(steps, f"{acc:.1%}")
# acc = accuracy_under_attack(model, attack_x, attack_y, pgd, eps=EPS,
#                             steps=10, step_size=2 * EPS / 10)
# print("10 steps of 2 eps / 10:", f"{acc:.1%}")
# ```
# With $\alpha = \epsilon / T$ a value can only reach the edge of the ball if
# every step pushes it the same way, so more, smaller steps follow the
# curvature of the loss better but may leave budget unspent; the accuracy
# falls with $T$ and levels off. Larger steps with projection (the PGD of
# {cite:t}`madry2018towards`) spend the whole budget *and* re-read the
# gradient, and are usually the strongest of these attacks.
# :::
#
# ## References
#
# ```{bibliography}
# :filter: docname in docnames
# ```
