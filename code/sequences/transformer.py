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
# (transformer)=
# # The Transformer
#
# The attention GRU of {doc}`attention` reads its source one token at a time:
# step $j$ of the encoder waits for step $j - 1$, and so does every step of the
# decoder. Attention removed the fixed-vector bottleneck but kept the recurrence.
# {cite:t}`vaswani2017attention` removed the recurrence too: their *Transformer*
# is built from attention and position-wise layers only, so every position of a
# sequence is computed at once, and any position reads any other in one step. In
# this chapter we build it from `torch.nn` layers (no `nn.Transformer`, no
# `nn.MultiheadAttention`: the tests compare ours with them), train it on the copy
# task of the Annotated Transformer {cite:p}`rush2018annotated` and on the
# numbers-to-words translation of {doc}`attention`, compare it with the attention
# GRU on the same data, decode greedily and with beam search, and look at what
# every head of every layer attends to.

# %% tags=["hide-input"]
import time

T0 = time.perf_counter()  # the whole chapter is timed, plots included

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import torch
from plotly.subplots import make_subplots
from torch.utils.data import DataLoader

from scratch import data, plots, utils
from scratch import seq2seq as S
from scratch.config import (
    ConfigError,
    Spec,
    choice,
    describe,
    in_range,
    non_negative,
    positive,
)
from scratch.models.inspection import count_parameters
from scratch.models.seq2seq import Seq2SeqSpec
from scratch.models.spec import load_model, save_model
from scratch.models.transformer import (
    PAPER_BASE_PARAMETERS,
    PAPER_BASE_VOCAB,
    TransformerSpec,
    causal_mask,
    keep_attention,
    noam_lambda,
    sinusoids,
)
from scratch.results import Reference, results_table
from scratch.text import BPETokenizer, numbers_task, numbers_task_problem
from scratch.train import TrainConfig, fit


@dataclass
class CopyStudy(Spec):
    """The copy task, trained four times: post- or pre-norm, with or without
    warmup."""

    size: int = field(
        default=3200, metadata=positive("training sequences (drawn at random)")
    )
    test_size: int = field(default=500, metadata=positive("held-out sequences"))
    n_symbols: int = field(
        default=10, metadata=positive("distinct symbols (the Annotated Transformer's)")
    )
    max_len: int = field(
        default=8, metadata=positive("longest sequence to copy (the Annotated: 10)")
    )
    epochs: int = field(default=2, metadata=positive("epochs of each of the 4 runs"))
    d_model: int = field(default=32, metadata=positive("width of its Transformer"))
    layers: int = field(
        default=2,
        metadata=positive(
            "encoder and decoder layers each: post-norm's trouble grows with depth"
        ),
    )
    warmup: int = field(
        default=40, metadata=positive("Noam warmup steps of the runs with warmup")
    )
    lr_factor: float = field(
        default=0.3,
        metadata=positive(
            "multiplies the Noam schedule: peak 0.0085 at d_model 32, warmup 40; at "
            "1.0 post-norm without warmup learned nothing in 100 steps (we tried)"
        ),
    )

    def validate(self):
        if self.d_model % 2:
            raise ConfigError(
                f"d_model={self.d_model} must be even (2 or 4 heads, sinusoids)"
            )


@dataclass
class TransformerConfig(TrainConfig):
    """The Transformer on the numbers task; defaults are the `full` profile."""

    NAME = "transformer"  # outputs go to out_dir/transformer

    model: TransformerSpec = field(
        default_factory=lambda: TransformerSpec(share_embeddings=False, max_len=64),
        metadata=describe(
            "the translator: the paper's base sizes; digits and words have separate "
            "vocabularies here, so only the output is tied to the target embedding"
        ),
    )
    gru: Seq2SeqSpec = field(
        default_factory=Seq2SeqSpec,
        metadata=describe("the attention GRU of the attention chapter, in PyTorch"),
    )
    copy: CopyStudy = field(default_factory=CopyStudy, metadata=describe("the study"))
    min_digits: int = field(default=1, metadata=in_range(1, 12, "shortest numbers"))
    max_digits: int = field(
        default=12, metadata=in_range(1, 12, "longest numbers: 12 is the task's limit")
    )
    n_train: int = field(default=100_000, metadata=positive("training pairs"))
    n_val: int = field(default=500, metadata=positive("validation pairs (unused)"))
    n_test: int = field(default=5000, metadata=positive("held-out test pairs"))
    epochs: int = field(default=20, metadata=positive("epochs of both translators"))
    batch_size: int = field(default=128, metadata=positive("pairs per Adam step"))
    lr_factor: float = field(
        default=1.0,
        metadata=positive("multiplies the Noam schedule (the paper's factor is 1)"),
    )
    warmup: int = field(
        default=4000, metadata=positive("Noam warmup steps (the paper's 4000)")
    )
    label_smoothing: float = field(
        default=0.1,
        metadata=in_range(0, 1, "the paper's epsilon_ls = 0.1", high_open=True),
    )
    gru_lr: float = field(
        default=0.01, metadata=positive("the GRU's Adam rate (the attention chapter's)")
    )
    gru_clip: float = field(
        default=1.0,
        metadata=non_negative("the GRU's gradient clipping (the attention chapter's)"),
    )
    beam_size: int = field(default=4, metadata=positive("beams (the paper's 4)"))
    alpha: float = field(
        default=0.6, metadata=non_negative("length penalty exponent (the paper's 0.6)")
    )
    beam_examples: int = field(
        default=5000,
        metadata=positive("test sources decoded by beam search (slower than greedy)"),
    )
    task: str = field(
        default="numbers",
        metadata=choice(
            "numbers",
            "multi30k",
            help="multi30k: also train the translator on Multi30k de-en (download)",
        ),
    )
    bpe_vocab: int = field(
        default=8000,
        metadata=positive("multi30k: shared byte-level BPE vocabulary, both sides"),
    )
    mt_epochs: int = field(
        default=30, metadata=positive("multi30k: epochs over its 29,000 pairs")
    )

    PROFILES = {
        "tiny": dict(  # the tests: seconds
            model=dict(
                d_model=16,
                nhead=2,
                num_encoder_layers=1,
                num_decoder_layers=1,
                dim_feedforward=32,
                dropout=0.0,
            ),
            gru=dict(embed_dim=8, hidden_size=16),
            copy=dict(size=256, test_size=50, epochs=1, d_model=16, layers=1),
            max_digits=4,
            n_train=800,
            n_val=20,
            n_test=200,
            epochs=6,
            batch_size=32,
            warmup=50,
            beam_examples=50,
            precision="fp32",
            threads=1,
        ),
        # The book build on a 2-core CPU (shared: one thread is faster than two
        # under load): a 61k-parameter Transformer, numbers of up to 6 digits.
        "small": dict(
            model=dict(
                d_model=32,
                nhead=4,
                num_encoder_layers=2,
                num_decoder_layers=2,
                dim_feedforward=128,
                dropout=0.0,
            ),
            max_digits=6,
            n_train=4000,
            n_test=2000,
            epochs=8,  # 7 gave 71% once: the last epochs still move a lot
            batch_size=64,
            warmup=200,
            beam_examples=300,
            precision="fp32",
            threads=1,
        ),
        # The paper's base model on one GPU, on the whole task (12 digits)
        # and on Multi30k (downloaded).
        "full": dict(
            precision="auto",
            gru=dict(embed_dim=64, hidden_size=256),
            task="multi30k",
        ),
    }

    def validate(self):
        sizes = (self.n_train, self.n_val, self.n_test)
        problem = numbers_task_problem(*sizes, self.min_digits, self.max_digits)
        if problem:
            raise ConfigError(problem)


cfg = TransformerConfig.from_cli()
utils.seed_everything(cfg.seed)

# %% [markdown]
# ## Motivation: recurrence is the bottleneck now
#
# With attention ({doc}`attention`) the decoder of a translation model reads all
# encoder states at every step, so the sentence no longer has to fit in one
# vector. Two limits of the recurrent networks of {doc}`rnn` and {doc}`lstm`
# remain:
#
# - **Sequential computation.** $h_j$ needs $h_{j-1}$: a sentence of $n$ tokens is
#   $n$ steps one after the other, in training too, and a GPU that could compute
#   thousands of positions at once computes one.
# - **Long paths.** Information from token 1 reaches token $n$ through $n - 1$
#   state updates, which is where gradients vanish and detail is lost
#   {cite:p}`bengio1994learning`.
#
# Self-attention removes both: each position of a layer is a weighted average over
# *all* positions of the layer below, computed for every position at once with
# matrix products, and the path between any two tokens is one step. What it loses
# is order (an average does not know where its terms came from), which the
# Transformer puts back with positional encodings.
#
# ## Theory
#
# ### Scaled dot-product attention
#
# Queries $Q \in \mathbb{R}^{T \times d_k}$, keys $K \in \mathbb{R}^{S \times d_k}$
# and values $V \in \mathbb{R}^{S \times d_v}$ give
#
# $$
# \mathrm{Attention}(Q, K, V) =
# \mathrm{softmax}\!\left(\frac{Q K^\top}{\sqrt{d_k}} + M\right) V,
# $$ (tr-attention)
#
# where row $t$ of the softmax weighs the $S$ values for query $t$, and the mask
# $M$ is $-\infty$ where query $t$ may not read key $s$ and 0 elsewhere. Two
# masks are used: **padding** (keys that are `<pad>` in a batch of sentences of
# different lengths) and **causal** ($s > t$ in the decoder, which must not read
# the words it is about to predict). The scale $1/\sqrt{d_k}$ keeps the scores'
# variance at 1 when the entries of $q$ and $k$ have unit variance, so the
# softmax does not saturate as $d_k$ grows ({doc}`attention` measured this).
#
# ### Multi-head attention
#
# One softmax gives one weighting. $h$ heads look in $h$ ways, each in its own
# $d_k = d_\text{model} / h$ dimensional projection:
#
# $$
# \mathrm{MultiHead}(Q, K, V) = \mathrm{Concat}(\mathrm{head}_1, \dots,
# \mathrm{head}_h) W^O, \qquad
# \mathrm{head}_i = \mathrm{Attention}(Q W_i^Q, K W_i^K, V W_i^V),
# $$ (tr-multihead)
#
# with $4 (d_\text{model}^2 + d_\text{model})$ parameters in all (four
# $d_\text{model} \times d_\text{model}$ matrices and their biases), the cost of
# one head of full width. In **self-attention** $Q$, $K$ and $V$ are all the
# previous layer's output; in the decoder's **cross-attention** the queries come
# from the decoder and the keys and values from the encoder's output, the role
# additive attention had in the GRU.
#
# ### Positions
#
# Attention is permutation-equivariant: shuffle the inputs and the outputs shuffle
# the same way. The Transformer adds to each token's embedding (scaled by
# $\sqrt{d_\text{model}}$) a vector that depends only on its position,
#
# $$
# PE_{(pos, 2i)} = \sin\!\left(pos / 10000^{2i/d_\text{model}}\right), \qquad
# PE_{(pos, 2i+1)} = \cos\!\left(pos / 10000^{2i/d_\text{model}}\right),
# $$ (tr-positions)
#
# sinusoids of wavelengths from $2\pi$ to $10000 \cdot 2\pi$. Each (sin, cos) pair
# turns by a fixed angle per position, so $PE_{pos + k}$ is a rotation of
# $PE_{pos}$, the same for every $pos$: a relative offset is a linear function the
# layers can learn.
#
# ### The layers, and where the normalisation goes
#
# An encoder layer is self-attention followed by a position-wise feed-forward
# network $\mathrm{FFN}(x) = \max(0, x W_1 + b_1) W_2 + b_2$ (width
# $d_\text{ff}$); a decoder layer has masked self-attention, cross-attention, then
# the FFN. Each sublayer $f$ sits in a residual connection ({doc}`../vision/resnet`)
# with layer normalisation {cite:p}`ba2016layer`. The paper normalises *after* the
# addition (post-norm); most later models normalise the sublayer's *input*
# (pre-norm) {cite:p}`xiong2020layer`:
#
# $$
# \text{post-norm: } x \leftarrow \mathrm{LN}\big(x + f(x)\big), \qquad
# \text{pre-norm: } x \leftarrow x + f\big(\mathrm{LN}(x)\big).
# $$ (tr-norm)
#
# In pre-norm the sum $x_0 + \sum_l f_l(\cdot)$ runs untouched from the
# embeddings to the output (a final LN follows the last layer), the identity path
# of {doc}`../vision/resnet`. In post-norm every layer's output passes through an
# LN, and {cite:t}`xiong2020layer` show that the gradients of the last layers'
# parameters are then large at initialisation, which is why post-norm needs a
# small learning rate at first, the warmup below, and pre-norm can do without.
#
# ### Training: label smoothing and the Noam schedule
#
# The decoder is trained by teacher forcing: it reads `<bos>` and the target
# shifted right and predicts every next token at once (the causal mask makes
# this the same as predicting one at a time). Instead of the one-hot target, the
# paper uses **label smoothing** {cite:p}`szegedy2016rethinking` with
# $\epsilon = 0.1$: the target distribution over the $V$ tokens is
#
# $$
# q(k) = (1 - \epsilon)\, [k = y] + \epsilon / V, \qquad
# \mathcal{L} = -\sum_k q(k) \log p(k),
# $$ (tr-smoothing)
#
# which "hurts perplexity, as the model learns to be more unsure, but improves
# accuracy and BLEU" (Section 5.4). The learning rate of Adam ($\beta_2 = 0.98$,
# $\epsilon = 10^{-9}$) rises linearly for $w$ warmup steps and then decays as the
# inverse square root of the step $s$:
#
# $$
# \mathrm{lr}(s) = d_\text{model}^{-0.5} \min\!\left(s^{-0.5},\ s\, w^{-1.5}\right),
# $$ (tr-noam)
#
# peaking at $s = w$ at $(d_\text{model}\, w)^{-0.5}$. It is known as the Noam
# schedule, after the paper's second author.
#
# ### Decoding: greedy and beam search
#
# At test time the decoder feeds back its own output. **Greedy** decoding takes
# the likeliest token at each step; it can commit early to a word whose
# continuations are all unlikely. **Beam search** keeps the $k$ best prefixes,
# extends each by every token, and keeps the $k$ best of the $k V$ extensions; a
# finished hypothesis $Y$ is ranked by
#
# $$
# \frac{\log p(Y \mid X)}{\mathrm{lp}(Y)}, \qquad
# \mathrm{lp}(Y) = \left(\frac{5 + |Y|}{6}\right)^{\alpha},
# $$ (tr-beam)
#
# the length penalty of {cite:t}`wu2016google`: log-probabilities only fall as a
# sequence grows, so without it ($\alpha = 0$) beam search prefers short outputs.
# The paper used $k = 4$ and $\alpha = 0.6$.
#
# ### Size
#
# With $N$ layers on each side, $V$ shared tokens and tied embeddings
# {cite:p}`press2017using`, the parameters are
#
# $$
# N \big(4 d^2 + 2 d\, d_\text{ff} + d_\text{ff} + 9 d\big)
# + N \big(8 d^2 + 2 d\, d_\text{ff} + d_\text{ff} + 15 d\big)
# + V d + V,
# $$ (tr-count)
#
# the encoder layers (one attention, the FFN, two LNs), the decoder layers (two
# attentions, three LNs), one embedding table and the output bias. For the base
# model ($d = 512$, $d_\text{ff} = 2048$, $N = 6$) the layers hold 44.1 million
# parameters and the vocabulary $V \cdot 513$ more.
#
# ## Implementation
#
# `scratch.models.transformer` builds everything from `nn.Linear`, `nn.LayerNorm`,
# `nn.Embedding` and `nn.Dropout`. Masks are boolean with PyTorch's convention,
# **True = may not attend**; the attention core of eq. {eq}`tr-attention` is
# written out:
#
# ```{literalinclude} ../../code/scratch/models/transformer.py
# :pyobject: attention
# ```
#
# and multi-head attention {eq}`tr-multihead` is four projections around it
# (when the weights are not needed it calls PyTorch's fused
# `F.scaled_dot_product_attention`, which computes the same: the tests check it,
# masks included, and check the whole module against `nn.MultiheadAttention`
# after copying the weights):
#
# ```{literalinclude} ../../code/scratch/models/transformer.py
# :pyobject: MultiHeadAttention.forward
# ```
#
# The encoder layer, with both placements of the normalisation {eq}`tr-norm`
# (the tests check it and the decoder layer against `nn.TransformerEncoderLayer`
# and `nn.TransformerDecoderLayer`):
#
# ```{literalinclude} ../../code/scratch/models/transformer.py
# :pyobject: EncoderLayer.forward
# ```
#
# The decoder's causal mask, and the Transformer's decoder pass: embeddings
# scaled by $\sqrt{d_\text{model}}$ plus positions, the layers, the (tied) output
# projection:
#
# ```{literalinclude} ../../code/scratch/models/transformer.py
# :pyobject: causal_mask
# ```
#
# ```{literalinclude} ../../code/scratch/models/transformer.py
# :pyobject: Transformer.decode
# ```
#
# Here is the causal mask of 6 positions and the sinusoids {eq}`tr-positions` of
# the first 50 positions, on 32 dimensions:

# %%
fig = make_subplots(
    rows=1,
    cols=2,
    column_widths=[0.3, 0.7],
    subplot_titles=("causal mask (1 = blocked)", "sinusoidal positions"),
)
fig.add_heatmap(z=causal_mask(6).int().numpy(), colorscale="Blues", showscale=False)
fig.add_heatmap(z=sinusoids(50, 32).T.numpy(), colorscale="RdBu", row=1, col=2)
fig.update_yaxes(autorange="reversed")
fig.update_xaxes(title_text="key position", row=1, col=1)
fig.update_yaxes(title_text="query position", row=1, col=1)
fig.update_xaxes(title_text="position", row=1, col=2)
fig.update_yaxes(title_text="dimension", row=1, col=2)
fig.update_layout(height=330, title="The decoder's mask and the positional encoding")
plots.show(fig, cfg.run_dir / "masks.html")

# %% [markdown]
# The low dimensions oscillate fast (they tell neighbouring positions apart), the
# high ones slowly (they change little over 50 positions).
#
# ### The paper's base model, counted
#
# The spec's defaults are the base model of the paper's Table 3 on its shared
# vocabulary of about 37,000 tokens, with the embeddings and the output tied. We
# build it on PyTorch's `meta` device (shapes without memory) and count:

# %%
with torch.device("meta"):  # no memory, no initialisation cost
    base = TransformerSpec().build()
base_parameters = count_parameters(base)
layers_only = base_parameters - PAPER_BASE_VOCAB * (base.d_model + 1)
print(
    f"base Transformer: {base_parameters:,} parameters "
    f"({base_parameters / 1e6:.1f} M; the paper's Table 3: "
    f"{PAPER_BASE_PARAMETERS / 1e6:.0f} M), {layers_only:,} of them in the layers"
)

# %% [markdown]
# Our count follows eq. {eq}`tr-count` exactly (a test checks both). It falls a
# little short of the paper's figure: the paper gives the vocabulary only as
# "about 37000 tokens", and every extra thousand tokens adds about half a million
# parameters, so the gap is the size of a vocabulary a few thousand tokens
# larger. The tests pin our exact number and how far it is from 65 M.
#
# ### Training and decoding
#
# One `fit` step for any encoder-decoder of `scratch.seq2seq`: the teacher-forced
# cross-entropy with label smoothing {eq}`tr-smoothing` over the real target
# tokens (`<pad>` is ignored), and the plain cross-entropy next to it for the
# record:
#
# ```{literalinclude} ../../code/scratch/seq2seq.py
# :pyobject: seq2seq_step
# ```
#
# The schedule {eq}`tr-noam` as a factor for `torch.optim.lr_scheduler.LambdaLR`:
#
# ```{literalinclude} ../../code/scratch/models/transformer.py
# :pyobject: noam_lambda
# ```
#
# Greedy and beam search {eq}`tr-beam` work with any model that can encode a
# source and give the log-probabilities of the next token after a prefix; both
# the Transformer and the attention GRU (`scratch.models.seq2seq`, the PyTorch
# twin of {doc}`attention`'s model) can. Beam search, with the stopping rule that
# makes it exact for a wide enough beam (tested against enumerating every output):
#
# ```{literalinclude} ../../code/scratch/seq2seq.py
# :pyobject: beam_search
# ```
#
# ## Experiment
#
# The config (the collapsed cell at the top; `--help` lists every field) in its
# three profiles:

# %%
print(TransformerConfig.profile_table())


# %% [markdown]
# ### The copy task, and post-norm versus pre-norm
#
# The first test of {cite:t}`rush2018annotated`: the output is the input, random
# sequences of symbols. It checks the plumbing (masks, positions, decoding) since
# a model can only copy if cross-attention learns to read the source position by
# position. We train it four times, post- and pre-norm {eq}`tr-norm`, each with the
# Noam warmup and with a constant rate equal to the schedule's peak, same seed,
# same batches:


# %%
def adam(model, lr):
    """The paper's Adam: beta_2 = 0.98 and eps = 1e-9 (Section 5.3)."""
    return torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.98), eps=1e-9)


def noam(optimizer, d_model, warmup, factor=1.0, constant=False):
    """LambdaLR with the Noam factor; constant=True: its peak from step 1."""
    f = noam_lambda(d_model, warmup)
    peak = f(warmup - 1)
    rule = (lambda s: peak) if constant else f
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: factor * rule(s))


def loader(arrays, batch_size):
    return DataLoader(S.tensor_dataset(arrays), batch_size=batch_size, shuffle=True)


cc = cfg.copy
V_copy = cc.n_symbols + 3  # with <pad>, <bos>, <eos>
copy_train = S.copy_task(cc.size, 1, cc.max_len, cc.n_symbols, seed=cfg.seed)
copy_test = S.copy_task(cc.test_size, 1, cc.max_len, cc.n_symbols, seed=cfg.seed + 1)
copy_cfg = dataclasses.replace(cfg, epochs=cc.epochs, batch_size=64)
copy_runs, copy_models = {}, {}
for norm in ("post", "pre"):
    for warm in (True, False):
        name = f"{norm}-norm, " + ("warmup" if warm else "no warmup")
        utils.seed_everything(cfg.seed)  # same initial weights, same batches
        copy_model = TransformerSpec(
            src_vocab=V_copy,
            tgt_vocab=V_copy,
            d_model=cc.d_model,
            nhead=4 if cc.d_model % 4 == 0 else 2,
            num_encoder_layers=cc.layers,
            num_decoder_layers=cc.layers,
            dim_feedforward=4 * cc.d_model,
            dropout=0.0,
            norm=norm,
            max_len=cc.max_len + 2,
        ).build()
        opt = adam(copy_model, 1.0)
        started = time.perf_counter()
        history = fit(
            copy_model,
            opt,
            loader(copy_train, 64),
            copy_cfg,
            step=S.seq2seq_step(0.0),
            scheduler=noam(opt, cc.d_model, cc.warmup, cc.lr_factor, not warm),
            checkpoint=None,
            verbose=False,
        )
        pred = S.translate(copy_model, copy_test)
        copy_models[name] = copy_model
        copy_runs[name] = dict(
            loss=history.steps,
            exact_match=float(S.exact_match(pred, copy_test["tgt_out"]).mean()),
            seconds=time.perf_counter() - started,
        )
        print(
            f"{name:>22}: final loss {np.mean(history.steps[-20:]):.3f}, exact "
            f"match on {cc.test_size} new sequences "
            f"{copy_runs[name]['exact_match']:.1%} "
            f"({copy_runs[name]['seconds']:.1f} s)"
        )
window = max(1, len(history.steps) // 30)
fig = make_subplots(
    rows=1, cols=2, shared_yaxes=True, subplot_titles=("post-norm", "pre-norm")
)
for name, run in copy_runs.items():
    fig.add_scatter(
        y=plots.smooth(run["loss"], window),
        name=name,
        mode="lines",
        line=dict(dash="solid" if "no" not in name else "dot"),
        row=1,
        col=1 if name.startswith("post") else 2,
    )
fig.update_xaxes(title_text="Adam step")
fig.update_yaxes(title_text="cross-entropy (nats)", type="log", row=1, col=1)
fig.update_yaxes(type="log", row=1, col=2)
fig.update_layout(height=380, title="Copy task: training loss, with and without warmup")
plots.show(fig, cfg.run_dir / "norms.html")
copy_exact_match = copy_runs["post-norm, warmup"]["exact_match"]

# %% [markdown]
# The run with the paper's recipe (post-norm with warmup) is the copy-task result
# of the results table. Compare the solid curves (warmup) with the dotted ones
# (the full rate from the first step) in each panel, and the panels with each
# other; the printed losses and exact matches above are this run's. A loss that
# stays near $\ln 10 \approx 2.3$ is a model that has learned nothing beyond the
# frequency of the symbols. {cite:t}`xiong2020layer` predict the pattern to look
# for: post-norm needs the warmup and pre-norm much less so, a difference that
# grows with depth; at the small budget of this run, which of the four learns to
# copy at all is also a matter of speed.
#
# ### Numbers to words
#
# The task of {doc}`attention`: a number in digits to the same number in English
# words, every source length equally likely, every test number unseen in
# training. The `small` profile keeps to numbers of up to `cfg.max_digits` digits
# to fit the book's CPU budget (`full` uses the task's 12).

# %%
task = numbers_task(
    cfg.n_train, cfg.n_val, cfg.n_test, cfg.min_digits, cfg.max_digits, seed=cfg.seed
)
train, test = task.arrays("train"), task.arrays("test")
V_src, V_tgt = len(task.src_vocab), len(task.tgt_vocab)
print(
    f"{len(train['src'])} training and {len(test['src'])} test pairs, e.g. "
    f"{''.join(task['test'][0][0])} -> {' '.join(task['test'][0][1])}; "
    f"{V_src} source and {V_tgt} target tokens"
)

# %% [markdown]
# Both models see the same pairs in the same order for the same number of
# epochs, each with its own recipe: the Transformer with the paper's (Adam with
# $\beta_2 = 0.98$, the Noam schedule, label smoothing), the attention GRU with
# the attention chapter's (Adam at a constant rate, gradients clipped).

# %%
spec = dataclasses.replace(cfg.model, src_vocab=V_src, tgt_vocab=V_tgt)
utils.seed_everything(cfg.seed)
model = spec.build()
opt = adam(model, cfg.lr_factor)
started = time.perf_counter()
history = fit(
    model,
    opt,
    loader(train, cfg.batch_size),
    cfg,
    step=S.seq2seq_step(cfg.label_smoothing),
    scheduler=noam(opt, spec.d_model, cfg.warmup, cfg.lr_factor),
    checkpoint=None,
)
seconds = {"Transformer": time.perf_counter() - started}
lrs = [row["lr"] for row in history.log]

gru_spec = dataclasses.replace(cfg.gru, src_vocab=V_src, tgt_vocab=V_tgt)
utils.seed_everything(cfg.seed)
gru = gru_spec.build()
started = time.perf_counter()
gru_history = fit(
    gru,
    torch.optim.Adam(gru.parameters(), lr=cfg.gru_lr),
    loader(train, cfg.batch_size),
    dataclasses.replace(cfg, clip_grad_norm=cfg.gru_clip),
    step=S.seq2seq_step(0.0),
    checkpoint=None,
)
seconds["attention GRU"] = time.perf_counter() - started

models = {"Transformer": model, "attention GRU": gru}
params = {name: count_parameters(m) for name, m in models.items()}
correct, decode_seconds = {}, {}
for name, m in models.items():
    started = time.perf_counter()
    pred = S.translate(m, test, "greedy")
    decode_seconds[name] = time.perf_counter() - started
    correct[name] = S.exact_match(pred, test["tgt_out"])
    print(
        f"{name:>14}: {params[name]:,} parameters, {seconds[name]:.1f} s of "
        f"training, greedy exact match {correct[name].mean():.1%} "
        f"({decode_seconds[name]:.1f} s to decode {len(pred)} sources)"
    )

# %%
nll = {
    "Transformer": [row["nll"] for row in history.log],
    "attention GRU": [row["nll"] for row in gru_history.log],
}
fig = make_subplots(
    rows=1, cols=2, subplot_titles=("training loss", "Transformer learning rate")
)
for name, values in nll.items():
    fig.add_scatter(y=plots.smooth(values, 10), name=name, mode="lines", row=1, col=1)
fig.add_scatter(y=lrs, name="Noam schedule", mode="lines", row=1, col=2)
fig.update_xaxes(title_text="Adam step")
fig.update_yaxes(title_text="cross-entropy without smoothing (nats)", type="log")
fig.update_yaxes(type="linear", title_text="learning rate", row=1, col=2)
fig.update_layout(height=380, title="Numbers to words: training")
plots.show(fig, cfg.run_dir / "training.html")

# %% [markdown]
# The loss shown is the plain cross-entropy; the Transformer minimises the
# smoothed one, which stays higher. The right panel is eq. {eq}`tr-noam` as the
# optimizer saw it.
#
# ### Accuracy by source length

# %%
by_length = {
    name: S.accuracy_by_length(c, test["src_len"]) for name, c in correct.items()
}
lengths = sorted(by_length["Transformer"])
fig = plots.lines(
    {name: [by[n][0] for n in lengths] for name, by in by_length.items()},
    x=lengths,
    title="Greedy exact match on the test set by number of digits",
    xlabel="source length (digits)",
    ylabel="exact match",
)
plots.show(fig, cfg.run_dir / "by_length.html")
common = [n for n in lengths if by_length["Transformer"][n][1] >= 20]
hardest = min(common or lengths, key=lambda n: by_length["Transformer"][n][0])
print(
    f"Transformer's weakest length: {hardest} digits, "
    f"{by_length['Transformer'][hardest][0]:.1%} of "
    f"{by_length['Transformer'][hardest][1]} test numbers"
)


# %% [markdown]
# ### Beam search against greedy
#
# We decode with beams of `cfg.beam_size` and length penalty $\alpha$ =
# `cfg.alpha` (the paper's settings) and greedily, score both outputs with the
# model's own probabilities, eq. {eq}`tr-beam`, and count where they differ and
# which scores higher. Twice: the translator, on the first `cfg.beam_examples`
# test numbers, and the copy model of the paper's recipe, which is far from
# perfect, on its test sequences:


# %%
def compare_decoders(model, arrays, n):
    """Greedy and beam search on the first n sources of arrays: exact match,
    seconds, and how often beam search's output differs and scores higher."""
    sub = {k: v[:n] for k, v in arrays.items()}
    ids, secs = {}, {}
    for method in ("greedy", "beam"):
        started = time.perf_counter()
        ids[method] = S.translate(
            model, sub, method, beam_size=cfg.beam_size, alpha=cfg.alpha
        )
        secs[method] = time.perf_counter() - started
    model.eval()
    score = {}
    for method, out in ids.items():
        logp = S.sequence_log_prob(
            model,
            torch.as_tensor(sub["src"]),
            torch.as_tensor(sub["src_len"]),
            torch.as_tensor(out),
        )
        n_tokens = (S.trim(out) != 0).sum(axis=1)  # with <eos>, as beam search
        lp = torch.tensor([S.length_penalty(int(k), cfg.alpha) for k in n_tokens])
        score[method] = (logp / lp).numpy()  # (n,)
    gap = score["beam"] - score["greedy"]
    return {
        "examples": len(sub["src"]),
        "greedy_exact_match": float(
            S.exact_match(ids["greedy"], sub["tgt_out"]).mean()
        ),
        "beam_exact_match": float(S.exact_match(ids["beam"], sub["tgt_out"]).mean()),
        "outputs_differ": int(
            (S.trim(ids["beam"]) != S.trim(ids["greedy"])).any(1).sum()
        ),
        "beam_scores_higher": int((gap > 1e-5).sum()),
        "beam_scores_lower": int((gap < -1e-5).sum()),
        "greedy_seconds": secs["greedy"],
        "beam_seconds": secs["beam"],
    }


beam_cmp = {
    "numbers": compare_decoders(model, test, cfg.beam_examples),
    "copy": compare_decoders(copy_models["post-norm, warmup"], copy_test, cc.test_size),
}
for task_name, c in beam_cmp.items():
    print(
        f"{task_name}, {c['examples']} test sources: exact match greedy "
        f"{c['greedy_exact_match']:.1%} ({c['greedy_seconds']:.1f} s), beam "
        f"{c['beam_exact_match']:.1%} ({c['beam_seconds']:.1f} s); outputs differ "
        f"on {c['outputs_differ']}, beam search scores higher on "
        f"{c['beam_scores_higher']} and lower on {c['beam_scores_lower']}"
    )

# %% [markdown]
# Where the outputs differ, beam search nearly always finds the one the model
# itself scores higher; a lower score is possible (beam search is a heuristic
# too, and the length penalty ranks hypotheses of different lengths), and a
# higher score is a better output only as far as the model is right, which the
# exact matches show. A model that is sure of every word, as a well-trained
# translator of this deterministic task is, leaves beam search little to find;
# an uncertain one leaves more. Real translation, with several plausible
# continuations at many steps, is where beam search with a length penalty
# became the standard {cite:p}`wu2016google`.
#
# ### What the heads attend to
#
# Every attention layer stores its weights (B, heads, T, S) when asked to
# (`keep_attention`); here are all of them for the longest test number, with the
# model's own greedy translation as the decoder's input:

# %%
i = int(np.argmax(test["src_len"]))
n_src = int(test["src_len"][i])
out_ids = S.trim(S.translate(model, {k: v[i : i + 1] for k, v in test.items()}))[0]
n_out = int((out_ids != 0).sum())
src_words = [task.src_vocab.itos[int(t)] for t in test["src"][i, :n_src]]
out_words = [task.tgt_vocab.itos[int(t)] for t in out_ids[:n_out]]
in_words = ["<bos>"] + out_words[:-1]
with keep_attention(model):
    model.teacher_forced(
        torch.as_tensor(test["src"][i : i + 1, :n_src]),
        torch.as_tensor(test["src_len"][i : i + 1]),
        torch.as_tensor([[1] + out_ids[: n_out - 1].tolist()]),
    )
    kinds = {
        "encoder self-attention": (
            [lay.self_attn.last_weights[0] for lay in model.encoder.layers],
            src_words,
            src_words,
        ),
        "decoder self-attention": (
            [lay.self_attn.last_weights[0] for lay in model.decoder.layers],
            in_words,
            in_words,
        ),
        "cross-attention": (
            [lay.multihead_attn.last_weights[0] for lay in model.decoder.layers],
            in_words,
            src_words,
        ),
    }
print(f"source {''.join(src_words)} -> {' '.join(out_words)}")
for kind, (weights, rows, cols) in kinds.items():
    L, H = len(weights), weights[0].shape[0]
    fig = make_subplots(
        rows=L,
        cols=H,
        subplot_titles=[
            f"layer {lay + 1}, head {h + 1}" for lay in range(L) for h in range(H)
        ],
        horizontal_spacing=0.03,
        vertical_spacing=0.12,
    )
    # Token labels made unique (repeated digits or words would merge on a category
    # axis) by their position.
    xs = [f"{w} {j}" for j, w in enumerate(cols)]
    ys = [f"{w} {j}" for j, w in enumerate(rows)]
    for lay, w in enumerate(weights):
        for h in range(H):
            fig.add_heatmap(
                z=w[h].numpy(),
                x=xs,
                y=ys,
                zmin=0,
                zmax=1,
                colorscale="Blues",
                showscale=lay == 0 and h == 0,
                row=lay + 1,
                col=h + 1,
            )
    fig.update_yaxes(autorange="reversed", showticklabels=False)
    fig.update_yaxes(showticklabels=True, col=1)
    fig.update_xaxes(showticklabels=False)
    fig.update_layout(
        height=260 * L + 80, title=f"{kind}: keys across, queries down (hover: tokens)"
    )
    plots.show(fig, cfg.run_dir / f"{kind.replace(' ', '_')}.html")

# %% [markdown]
# Read the cross-attention maps row by row: a row is the decoder's input word
# and shows which digits it reads to predict the next word. Things to look for:
# a head whose weight moves along the digits as the words spell them out (the
# alignment additive attention learned in {doc}`attention`), heads that look at
# the digits deciding a scale word ("thousand", "million"), and, in the decoder's
# self-attention, the lower triangle the causal mask enforces. How the heads
# divide the work is this run's: another seed divides it differently, and a head
# can be nearly idle.
#
# ### Saving the model
#
# The trained translator and its spec go to `model.pt` (`save_model`), and
# `load_model` rebuilds it in one call; the reloaded model must translate the
# same:

# %%
save_model(cfg.run_dir / "model.pt", model, spec)
restored, _ = load_model(cfg.run_dir / "model.pt")
check = {k: v[:200] for k, v in test.items()}
same = np.array_equal(S.translate(restored, check), S.translate(model, check))
print(f"saved {cfg.run_dir / 'model.pt'}; identical translations reloaded: {same}")
assert same

# %% [markdown]
# ## A real translation pair: Multi30k
#
# With `--task=multi30k` (and a download: `scratch.data.multi30k`) the chapter
# also trains the same translator, at the profile's size, on Multi30k de-en
# {cite:p}`elliott2016multi30k`: 29,000 German captions of Flickr images with
# their English translations, tested on the 1,000 pairs of its 2016 test set.
# German and English share one byte-level BPE vocabulary (`scratch.text.
# BPETokenizer`, learned on both sides of the training pairs), so, as in the paper,
# the source embedding, the target embedding and the output layer are one matrix.
# We score the translations with corpus BLEU (`scratch.seq2seq.bleu`) on
# lowercased words and punctuation. The `full` profile runs this section; the
# book's `small` build skips it (it downloads nothing). The results below put the
# run next to a published number on the same test set: the supervised baseline
# of {cite:t}`lample2018unsupervised`, a 3-layer attention LSTM with word
# vocabularies decoded greedily, 38.38 BLEU de-en (their Table 2; their BLEU
# script and tokenization are not ours, so only a gap of several points says
# something).

# %%
mt_metrics = {}
if cfg.task == "multi30k":
    import re

    pairs = {
        split: data.multi30k(split, "de", "en") for split in ("train", "valid", "test")
    }
    bpe = BPETokenizer().train(
        "\n".join(pairs["train"][0] + pairs["train"][1]), cfg.bpe_vocab
    )
    OFFSET = 3  # BPE id i is model id i + 3: <pad> 0, <bos> 1, <eos> 2 come first

    def mt_arrays(src_sentences, tgt_sentences):
        """The padded arrays of ``Seq2SeqData.arrays`` for BPE-encoded pairs."""
        s_ids = [[i + OFFSET for i in bpe.encode(t)] for t in src_sentences]
        t_ids = [[i + OFFSET for i in bpe.encode(t)] for t in tgt_sentences]
        N, S_, T = len(s_ids), max(map(len, s_ids)), max(map(len, t_ids)) + 1
        src = np.zeros((N, S_), dtype=np.int64)
        tgt_in = np.zeros((N, T), dtype=np.int64)
        tgt_out = np.zeros((N, T), dtype=np.int64)
        for i, (s_, t) in enumerate(zip(s_ids, t_ids, strict=True)):
            src[i, : len(s_)] = s_
            tgt_in[i, : len(t) + 1] = [S.BOS] + t
            tgt_out[i, : len(t) + 1] = t + [S.EOS]
        src_len = np.array([len(s_) for s_ in s_ids], dtype=np.int64)
        return {"src": src, "src_len": src_len, "tgt_in": tgt_in, "tgt_out": tgt_out}

    def words(text):
        """BLEU's tokens: lowercased words and punctuation marks."""
        return re.findall(r"\w+|[^\w\s]", text.lower())

    def detokenize(ids):
        """The text of decoded ids (N, T): up to <eos>, without the offset."""
        return [
            bpe.decode([int(i) - OFFSET for i in row if i > S.EOS])
            for row in S.trim(ids)
        ]

    mt = {split: mt_arrays(*pairs[split]) for split in pairs}
    V_mt = bpe.vocab_size + OFFSET
    longest = max(a[k].shape[1] for a in mt.values() for k in ("src", "tgt_out"))
    mt_spec = dataclasses.replace(
        cfg.model,
        src_vocab=V_mt,
        tgt_vocab=V_mt,
        share_embeddings=True,
        max_len=max(cfg.model.max_len, longest + 8),  # room for beams past the target
    )
    utils.seed_everything(cfg.seed)
    mt_model = mt_spec.build()
    mt_opt = adam(mt_model, cfg.lr_factor)
    started = time.perf_counter()
    mt_history = fit(
        mt_model,
        mt_opt,
        loader(mt["train"], cfg.batch_size),
        dataclasses.replace(cfg, epochs=cfg.mt_epochs),
        step=S.seq2seq_step(cfg.label_smoothing),
        scheduler=noam(mt_opt, mt_spec.d_model, cfg.warmup, cfg.lr_factor),
        checkpoint=None,
    )
    mt_seconds = time.perf_counter() - started
    references = [words(t) for t in pairs["test"][1]]
    decode_len = mt["test"]["tgt_out"].shape[1] + 8  # may run past the reference
    mt_metrics = {
        "mt_train_pairs": len(pairs["train"][0]),
        "mt_test_pairs": len(references),
        "mt_vocab": V_mt,
        "mt_parameters": count_parameters(mt_model),
        "mt_train_seconds": mt_seconds,
        "mt_final_nll": float(np.mean([r["nll"] for r in mt_history.log[-20:]])),
    }
    for method in ("greedy", "beam"):
        ids = S.translate(
            mt_model,
            mt["test"],
            method,
            beam_size=cfg.beam_size,
            alpha=cfg.alpha,
            max_len=decode_len,
        )
        hyps = detokenize(ids)
        mt_metrics[f"mt_bleu_{method}"] = S.bleu([words(h) for h in hyps], references)
    for de, en, hyp in list(zip(*pairs["test"], hyps))[:3]:
        print(f"{de}\n  reference: {en}\n  beam:      {hyp}")
    print(
        f"Multi30k de-en test BLEU: greedy {mt_metrics['mt_bleu_greedy']:.1f}, "
        f"beam {mt_metrics['mt_bleu_beam']:.1f} ({len(references)} pairs, "
        f"{mt_metrics['mt_parameters']:,} parameters, {mt_seconds:.0f} s of training)"
    )

# %% [markdown]
# ## Results

# %%
seconds_all = time.perf_counter() - T0
metrics = {
    "transformer_exact_match": float(correct["Transformer"].mean()),
    "gru_exact_match": float(correct["attention GRU"].mean()),
    "transformer_beam_exact_match": beam_cmp["numbers"]["beam_exact_match"],
    "beam_vs_greedy": beam_cmp,
    "copy_exact_match": copy_exact_match,
    "copy_runs": {
        name: {
            "final_loss": float(np.mean(r["loss"][-20:])),
            "exact_match": r["exact_match"],
            "seconds": r["seconds"],
        }
        for name, r in copy_runs.items()
    },
    "exact_match_by_length": {
        name: {str(n): acc for n, (acc, _) in by.items()}
        for name, by in by_length.items()
    },
    "train_seconds": seconds,
    "decode_seconds": decode_seconds,
    "parameters": params,
    "base_parameters": base_parameters,
    "test_pairs": len(test["src"]),
    **mt_metrics,  # empty unless --task=multi30k
}
rows = results_table(
    cfg,
    metrics,
    seconds=seconds_all,
    title="Numbers to words: exact match on unseen numbers",
    columns={
        "copy_exact_match": ("copy task", ".1%"),
        "transformer_exact_match": ("Transformer, greedy", ".1%"),
        "transformer_beam_exact_match": ("Transformer, beam*", ".1%"),
        "gru_exact_match": ("attention GRU, greedy", ".1%"),
        "train_seconds.Transformer": ("Transformer training (s)", ".0f"),
        "train_seconds.attention GRU": ("GRU training (s)", ".0f"),
        "base_parameters": ("base model parameters", lambda n: f"{n / 1e6:.1f} M"),
        "config.label_smoothing": ("label smoothing", ".1f"),
        "config.warmup": ("warmup steps", "d"),
        "config.beam_size": ("beams", "d"),
        "config.alpha": ("alpha", ".1f"),
    },
    references=[
        Reference(
            "Transformer base (paper)",
            {
                "base_parameters": PAPER_BASE_PARAMETERS,
                "config.label_smoothing": 0.1,
                "config.warmup": 4000,
                "config.beam_size": 4,
                "config.alpha": 0.6,
            },
            source="vaswani2017attention",
            setting="Table 3; Sections 5.3, 5.4, 6.1",
        )
    ],
    notes=[
        f"* beam search on the first {cfg.beam_examples} test numbers only",
        f"max {cfg.max_digits} digits, {cfg.n_train} training pairs, "
        f"{cfg.epochs} epochs each; this run: {seconds_all:.0f} s in all",
        "the paper's translation task is not this one: its row gives its sizes and "
        "recipe, not an accuracy to compare",
    ],
)
assert rows[0].values["transformer_exact_match"] == metrics["transformer_exact_match"]
mt_rows = results_table(
    cfg,
    metrics,
    seconds=seconds_all,
    title="Multi30k de-en: BLEU on the 1,000 pairs of the 2016 test set",
    columns={
        "mt_bleu_greedy": ("BLEU, greedy", ".2f"),
        "mt_bleu_beam": ("BLEU, beam", ".2f"),
        "mt_parameters": ("parameters", lambda n: f"{n / 1e6:.1f} M"),
        "mt_train_seconds": ("training (s)", ".0f"),
    },
    references=[
        Reference(
            "attention LSTM (3 layers, words)",
            {"mt_bleu_greedy": 38.38},
            source="lample2018unsupervised",
            setting="Table 2, supervised",
        )
    ],
    notes=[
        "this run: "
        + (
            f"{cfg.mt_epochs} epochs on the {mt_metrics['mt_train_pairs']:,} "
            "training pairs"
            if mt_metrics
            else "the numbers task only (--task=multi30k adds Multi30k; the full "
            "profile does)"
        ),
        "BLEU on lowercased words and punctuation; the reference's tokenization "
        "is not the same, so differences of a BLEU point or two mean little",
    ],
)
if mt_metrics:
    assert mt_rows[0].values["mt_bleu_greedy"] == mt_metrics["mt_bleu_greedy"]
utils.save_run(cfg.run_dir / "metrics.json", cfg, metrics, seconds_all)
print(f"metrics saved to {cfg.run_dir / 'metrics.json'}")

# %% [markdown]
# The table compares the two architectures on one toy task at one budget: which
# one wins, and by how much, depends on that budget and on the length of the
# numbers (see the curve by length). Compare the training times too: on a CPU
# thread, with sources of a few tokens, the recurrence costs the GRU little. The
# Transformer's advantage, every position of a layer in one matrix product,
# grows with the length of the sequences and with the parallelism of the
# hardware, which is what made the paper's 12-hour training of the base model on
# 8 GPUs possible.
#
# ## Summary
#
# - Scaled dot-product attention {eq}`tr-attention` with boolean masks (padding,
#   causal) and $h$ heads {eq}`tr-multihead` replaces recurrence: every position
#   is computed at once, and any two positions are one step apart.
# - Attention ignores order: sinusoidal positions {eq}`tr-positions` are added to
#   the embeddings.
# - Each sublayer is wrapped in a residual connection and a layer norm, after the
#   addition (post-norm, the paper's) or before the sublayer (pre-norm)
#   {eq}`tr-norm`; post-norm depends more on the warmup of the Noam schedule
#   {eq}`tr-noam`.
# - Label smoothing {eq}`tr-smoothing` trains towards a softened target; beam
#   search with a length penalty {eq}`tr-beam` finds likelier outputs than greedy
#   decoding, which matters when several continuations are plausible.
# - The base model has 63.1 M parameters by our count with a 37,000-token
#   vocabulary (44.1 M in the layers), against the paper's rounded 65 M.
#
# ## Exercises
#
# :::{exercise}
# :label: transformer-ex-1
# Remove the positional encoding (replace `model.pos` by dropout only) and train
# on the copy task. What does the model output, and why can it still get some
# sequences right?
# :::
#
# :::{solution} transformer-ex-1
# :class: dropdown
# ```python
# from torch import nn
# copy_model.pos = nn.Identity()   # before training
# ```
# Without positions the encoder's output is a function of the *multiset* of
# source symbols (self-attention is permutation-equivariant) and the decoder's
# causal self-attention only knows how many tokens it has written through what
# it has written. The model can still output the right symbols in some order,
# and sequences of one repeated symbol or of length 1 come out right; the rest
# is mostly wrong. (The causal mask itself leaks a little position information:
# the first decoder position can only attend to itself.)
# :::
#
# :::{exercise}
# :label: transformer-ex-2
# Show that scaling the scores by $1/\sqrt{d_k}$ matters: with $q, k$ drawn
# $\mathcal{N}(0, I)$ in $d_k = 4, 64, 1024$ dimensions, measure the entropy of
# $\mathrm{softmax}(q K^\top)$ over 20 keys with and without the scale.
# :::
#
# :::{solution} transformer-ex-2
# :class: dropdown
# ```python
# for d in (4, 64, 1024):
#     q, K = torch.randn(1000, 1, d), torch.randn(1000, 20, d)
#     s = (q @ K.transpose(1, 2))[:, 0]                      # (1000, 20)
#     for name, z in (("raw", s), ("scaled", s / d**0.5)):
#         p = z.softmax(-1)
#         H = -(p * p.clamp_min(1e-12).log()).sum(-1).mean()
#         print(d, name, float(H))
# ```
# The raw scores have variance $d_k$, so their softmax approaches a one-hot
# vector as $d_k$ grows (entropy towards 0, gradients towards 0); the scaled
# scores have unit variance and the entropy stays the same for every $d_k$,
# below the uniform $\ln 20 \approx 3.0$.
# :::
#
# :::{exercise}
# :label: transformer-ex-3
# Train the numbers task with `--model.norm=pre` and with `--label_smoothing=0`,
# and compare exact match and the training curves with this chapter's run. Then
# raise `--max_digits` to 9 and repeat: which model's accuracy falls faster with
# length, the Transformer's or the GRU's?
# :::
#
# :::{solution} transformer-ex-3
# :class: dropdown
# Run `python code/sequences/transformer.py --model.norm=pre` (and the other
# settings) and read `exact_match_by_length` in each run's `metrics.json`. On
# short budgets, expect pre-norm to be less sensitive to the learning rate but
# not necessarily more accurate at the end, and label smoothing to raise the
# plain cross-entropy while leaving exact match about the same. With longer
# numbers both models need more steps; the GRU's errors concentrate at the
# longest inputs, as in {doc}`attention`, while the Transformer's depend more on
# whether it has seen enough examples of each scale word.
# :::
#
# :::{exercise}
# :label: transformer-ex-4
# Rerun the copy study at the full Noam rate, `--copy.lr_factor=1`, and with
# deeper networks, `--copy.layers=4`. Which of the four runs stop learning, and
# does the answer change with depth as {cite:t}`xiong2020layer` predict?
# :::
#
# :::{solution} transformer-ex-4
# :class: dropdown
# The peak rate rises from 0.0085 to 0.028. Expect post-norm without warmup to
# suffer first: its loss stays near $\ln 10$ (we saw this at two layers while
# choosing the default), while pre-norm, whose residual path bypasses every layer
# norm, still learns, and warmup rescues post-norm at least in part. With more
# layers the gradients of post-norm's top layers at initialisation grow (Xiong et
# al.'s analysis), so the rate it tolerates without warmup falls further.
# :::
#
# ## References
#
# ```{bibliography}
# :filter: docname in docnames
# ```
