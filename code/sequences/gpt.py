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
# (gpt)=
# # GPT: a Transformer language model
#
# The recurrent models of {doc}`rnn` and {doc}`lstm` read Shakespeare one character
# at a time and squeeze everything they have read into one state vector. The
# Transformer ({doc}`transformer`) reads a whole sequence at once, every position
# attending to every other. GPT {cite:p}`radford2018improving,radford2019language`
# keeps only its decoder: a stack of *masked* self-attention blocks trained to
# predict the next token at every position of a text. That is the whole model
# behind GPT-2 and its successors. In this chapter we write it from layers, with
# GPT-2's choices one by one (pre-norm blocks, GELU, tied embeddings, an
# initialization scaled by depth), check its size against GPT-2 small to the
# parameter, train it on tiny Shakespeare with AdamW, warmup and cosine decay,
# once on characters and once on the byte-pair tokens of {doc}`tokenization`,
# and generate text with temperature, top-k, top-p and a key-value cache.

# %%
import time

T0 = time.perf_counter()  # the whole chapter is timed

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from scratch import data, plots, recipes, utils
from scratch.config import (
    ConfigError,
    Spec,
    choice,
    describe,
    in_range,
    non_negative,
    positive,
)
from scratch.history import Callback
from scratch.models.gpt import (
    GPT2_124M,
    GPT2_124M_PARAMETERS,
    NANOGPT_CPU_VAL_LOSS,
    NANOGPT_SHAKESPEARE_CHAR,
    NANOGPT_SHAKESPEARE_CHAR_VAL_LOSS,
    GPTSpec,
    NextLogits,
    lm_loss,
)
from scratch.models.inspection import count_parameters
from scratch.models.spec import load_model, save_model
from scratch.results import Reference, results_table
from scratch.text import BPETokenizer, Vocab, chunks, sample
from scratch.train import TrainConfig, evaluate, fit, sampled_loader

# %% [markdown]
# Everything in the chapter is driven by one config (explained in the Experiment
# section), read first so that a mistyped option stops the script at once:


# %% tags=["hide-input"]
@dataclass
class BPEStudy(Spec):
    """The same GPT trained on byte-pair tokens instead of characters."""

    run: bool = field(
        default=True,
        metadata=describe("train the BPE model too; false: characters only"),
    )
    vocab_size: int = field(
        default=512,
        metadata=in_range(
            257,
            100_000,
            "tokens of the BPE tokenizer, learnt on the training text (256 bytes + "
            "merges): small, so that the output layer stays small next to the "
            "blocks of the small models",
        ),
    )


@dataclass
class GPTConfig(TrainConfig):
    """GPT on tiny Shakespeare. The defaults are the `full` profile: nanoGPT's
    character-level Shakespeare run on a GPU."""

    NAME = "gpt"  # outputs go to out_dir/gpt

    model: GPTSpec = field(
        default_factory=lambda: GPTSpec(vocab_size=65, **NANOGPT_SHAKESPEARE_CHAR),
        metadata=describe(
            "the network: nanoGPT's shakespeare-char model (6 layers, 6 heads, 384 "
            "wide, block 256, dropout 0.2, no biases); vocab_size is set from the "
            "tokenizer"
        ),
    )
    bpe: BPEStudy = field(default_factory=BPEStudy, metadata=describe("the BPE run"))
    max_steps: int = field(
        default=5000,
        metadata=positive("optimizer steps of each model (nanoGPT: 5,000)"),
    )
    batch_size: int = field(
        default=64, metadata=positive("blocks per step (nanoGPT: 64 of 256 tokens)")
    )
    lr: float = field(
        default=1e-3,
        metadata=positive("peak AdamW rate (nanoGPT: 1e-3 for this small model)"),
    )
    min_lr: float = field(
        default=1e-4,
        metadata=non_negative("the cosine decays to this (nanoGPT: lr / 10)"),
    )
    warmup_steps: int = field(
        default=100,
        metadata=non_negative(
            "steps of linear warmup: Adam's second moments are unreliable at first"
        ),
    )
    weight_decay: float = field(
        default=0.1,
        metadata=non_negative("decoupled weight decay on matrices only (nanoGPT: 0.1)"),
    )
    beta2: float = field(
        default=0.99,
        metadata=in_range(
            0,
            1,
            "Adam's second-moment decay: nanoGPT's 0.99 for small batches of tokens",
            high_open=True,
        ),
    )
    clip_grad_norm: float = field(
        default=1.0,
        metadata=non_negative("clip the gradient's global norm (nanoGPT: 1.0)"),
    )
    eval_every: int = field(
        default=250, metadata=non_negative("validation loss every N steps (nanoGPT)")
    )
    eval_blocks: int = field(
        default=0,
        metadata=non_negative(
            "validation blocks scored during training (0 = all); the final score "
            "always uses the whole held-out text"
        ),
    )
    precision: str = field(
        default="auto",
        metadata=choice(
            "fp32",
            "bf16",
            "fp16",
            "auto",
            help="autocast dtype; auto = bf16 where the device computes in it "
            "natively (GPUs since Ampere), else fp32",
        ),
    )
    target_loss: float = field(
        default=NANOGPT_SHAKESPEARE_CHAR_VAL_LOSS,
        metadata=positive(
            "record the time at which the character model's validation loss first "
            "reaches this (nanoGPT's best, 1.4697)"
        ),
    )
    temperature: float = field(
        default=0.8, metadata=positive("sampling temperature of the shown samples")
    )
    top_k: int = field(default=40, metadata=positive("top-k of the shown top-k sample"))
    top_p: float = field(
        default=0.9,
        metadata=in_range(0, 1, "nucleus mass of the top-p sample", low_open=True),
    )
    sample_chars: int = field(
        default=500, metadata=positive("characters per shown sample")
    )

    PROFILES = {
        "tiny": dict(  # tests: seconds
            model=dict(n_layer=1, n_head=2, n_embd=32, block_size=32, dropout=0.0),
            bpe=dict(vocab_size=300),
            max_steps=100,
            batch_size=16,
            lr=1e-2,
            min_lr=1e-3,
            warmup_steps=10,
            eval_every=50,
            eval_blocks=32,
            precision="fp32",
            sample_chars=60,
            threads=1,
        ),
        # The book build on a 2-core CPU: nanoGPT's CPU recipe (4 layers, block 64)
        # cut to 2 layers and 500 steps of 32 blocks, the least that reliably gets
        # the character model under 2.0 nats; with the BPE model the whole chapter
        # took 71 s in a clean book build. One thread: on a busy CPU two threads
        # stall each other (measured 7x slower here).
        "small": dict(
            model=dict(n_layer=2, n_head=4, n_embd=128, block_size=64, dropout=0.0),
            max_steps=500,
            batch_size=32,
            lr=5e-3,
            min_lr=5e-4,
            warmup_steps=50,
            eval_every=100,
            eval_blocks=100,
            precision="fp32",  # bf16 is slower at this size here (bench/gpt_speed.py)
            sample_chars=300,
            threads=1,
        ),
        "full": dict(),  # nanoGPT's shakespeare-char run on a GPU
    }

    def validate(self):
        if self.min_lr > self.lr:
            raise ConfigError(f"min_lr={self.min_lr} is above lr={self.lr}")
        if self.warmup_steps >= self.max_steps:
            raise ConfigError(
                f"warmup_steps={self.warmup_steps} leaves no step of max_steps="
                f"{self.max_steps} to decay"
            )


cfg = GPTConfig.from_cli()
utils.seed_everything(cfg.seed)

# %% [markdown]
# ## Motivation
#
# A recurrent network carries the past in a fixed-size state, updated one step at a
# time: the gradient that teaches it to use a character fifty steps back has to
# pass through fifty updates ({doc}`lstm`), and training cannot be spread over the
# positions of a sequence, since step $t$ waits for step $t - 1$. Attention
# ({doc}`attention`) lets every position read every earlier one directly, through
# one weighted sum, and computes all positions at once. The Transformer used it in
# an encoder and a decoder for translation. {cite:t}`radford2018improving` noticed
# that the decoder alone, with its mask that hides the future, is a language model
# of the kind this part has trained since {doc}`bigram`: the product of
# next-token probabilities,
#
# $$
# p(x_1, \dots, x_T) = \prod_{t=1}^{T} p(x_t \mid x_1, \dots, x_{t-1}),
# $$ (gpt-lm)
#
# with every factor computed in one pass over the text. Pre-trained on a large
# corpus and fine-tuned, it improved the state of the art on 9 of the 12 tasks it
# was tested on; GPT-2 {cite:p}`radford2019language`, the same model more than ten
# times larger (with pre-norm blocks) on
# 40 GB of web text, wrote coherent paragraphs and solved some tasks with no
# fine-tuning at all.
#
# ## Theory
#
# ### The model
#
# Token ids $x_1 \dots x_T$ become vectors of width $d$: a learned token embedding
# $W_{te} \in \mathbb{R}^{V \times d}$ plus a learned position embedding $W_{pe}
# \in \mathbb{R}^{T_{max} \times d}$, $h_0 = W_{te}[x] + W_{pe}[1..T]$. Then $L$
# blocks, each two residual updates of the *residual stream* $h$,
#
# $$
# h \leftarrow h + \mathrm{Attn}(\mathrm{LN}_1(h)), \qquad
# h \leftarrow h + \mathrm{MLP}(\mathrm{LN}_2(h)),
# $$ (gpt-block)
#
# and the next-token logits $\mathrm{LN}_f(h_L)\, W_{te}^\top$. GPT-1 normalised
# *after* each residual addition, as the Transformer did; GPT-2 moved the layer norm
# to the input of each sublayer and added $\mathrm{LN}_f$ at the end (*pre-norm*),
# which leaves an unobstructed identity path from the embeddings to the output and
# trains deep stacks without the delicate warmup post-norm needs
# {cite:p}`xiong2020layer`.
#
# **Causal self-attention.** With $Q = XW_Q$, $K = XW_K$, $V = XW_V$ split into $H$
# heads of width $d_k = d / H$, each head computes
#
# $$
# \mathrm{softmax}\!\left(\frac{QK^\top}{\sqrt{d_k}} + M\right)V, \qquad
# M_{ts} = \begin{cases} 0 & s \le t \\ -\infty & s > t \end{cases}
# $$ (gpt-attention)
#
# so position $t$ reads positions $1..t$ only: the prediction of $x_{t+1}$ cannot
# see it. One pass over a block of $T$ tokens yields $T$ predictions, each trained
# with its own cross-entropy. The heads are concatenated and mixed by a projection
# $W_O$.
#
# **The MLP** widens each position to $4d$, applies the GELU
# {cite:p}`hendrycks2016gaussian`, $\mathrm{GELU}(x) = x\,\Phi(x)$ (GPT-2 uses its
# $\tanh$ approximation), and projects back: a smooth ReLU that lets small negative
# inputs through.
#
# **Tied embeddings.** The output layer reuses $W_{te}$: the logit of token $v$ is
# the dot product of the final state with $v$'s embedding
# {cite:p}`press2017using`. This saves $Vd$ parameters (a third of GPT-2 small)
# and works as well or better, since a token's input and output meanings are
# similar.
#
# **Size.** A block has $4d^2$ attention weights, $8d^2$ MLP weights and $13d$
# biases and norm parameters; with $V$ tokens and $T_{max}$ positions,
#
# $$
# N = 12 L d^2 + 13 L d + (V + T_{max}) d + 2d,
# $$ (gpt-params)
#
# with $L = 12$, $d = 768$, $V = 50{,}257$, $T_{max} = 1024$ for GPT-2 small.
#
# ### Initialization scaled by depth
#
# Every weight matrix starts as $\mathcal{N}(0, 0.02^2)$, except the two
# projections per block that write into the residual stream (attention's $W_O$,
# the MLP's second layer, both called `c_proj` in GPT-2's code). Each adds a term
# to $h$, so after $L$ blocks $h$ is a sum of $2L$ roughly independent terms and
# its variance grows with depth. GPT-2 scales their initial weights by
# $1/\sqrt{N}$, with $N = 2L$ residual layers:
#
# $$
# W_{\mathrm{proj}} \sim \mathcal{N}\!\left(0, \left(\frac{0.02}{\sqrt{2L}}\right)^2\right),
# $$ (gpt-init)
#
# which keeps the variance of the stream at initialization independent of $L$.
#
# ### Optimization
#
# GPT-1's recipe {cite:p}`radford2018improving`: Adam with decoupled weight decay
# (AdamW, {cite:t}`loshchilov2019decoupled`) on the matrices only (embeddings and
# linear weights; biases and layer-norm gains are not decayed), a linear warmup
# followed by a cosine decay of the learning rate; and, as in nanoGPT
# {cite:p}`karpathy2022nanogpt`, the gradient's global norm clipped to 1
# (nanoGPT's author also wrote the makemore lectures
# {cite:p}`karpathy2022makemore` whose names data set {doc}`bigram` used). For
# step $s$ with $W$ warmup steps out of $S$,
#
# $$
# \eta_s = \begin{cases}
# \eta_{\max}\, \frac{s+1}{W} & s < W \\
# \eta_{\min} + \tfrac{1}{2}(\eta_{\max} - \eta_{\min})
# \left(1 + \cos \pi \frac{s - W}{S - W}\right) & s \ge W.
# \end{cases}
# $$ (gpt-schedule)
#
# ### Sampling and the key-value cache
#
# A trained model generates by drawing $x_{t+1}$ from its prediction and feeding it
# back (`scratch.text.sample`, the sampler of every model since {doc}`bigram`). The
# distribution is reshaped first: a temperature $\tau$ divides the logits; top-$k$
# keeps the $k$ most likely tokens; top-$p$ (*nucleus sampling*,
# {cite:t}`holtzman2020curious`) keeps the smallest set of most likely tokens whose
# probabilities sum to at least $p$, a cut that adapts to how sure the model is.
#
# Generating token $t + 1$ needs the attention of position $t$ over the keys and
# values of positions $1..t$, and those of positions $< t$ have not changed since
# they were computed: causality makes them final. A **key-value cache** keeps them,
# per layer, so each new token runs one position through the network instead of
# all $t$; the cost of a token drops from $O(t)$ positions to one (its attention
# still reads $t$ keys). The cache is exact: the same logits, up to rounding.
#
# ## Implementation
#
# The model lives in `scratch.models.gpt`, with GPT-2's names for its parts (so
# that the tensors of a released GPT-2 checkpoint map onto it by name; GPT-2
# stores its linear weights transposed). Attention, with both cores and the
# cache:
#
# ```{literalinclude} ../../code/scratch/models/gpt.py
# :pyobject: CausalSelfAttention
# ```
#
# The written-out core is the Transformer chapter's
# `scratch.models.transformer.attention`, eq. {eq}`gpt-attention` in three lines.
# A block, eq. {eq}`gpt-block`, and the model with its initialization,
# eq. {eq}`gpt-init`:
#
# ```{literalinclude} ../../code/scratch/models/gpt.py
# :pyobject: Block
# ```
#
# ```{literalinclude} ../../code/scratch/models/gpt.py
# :pyobject: GPT
# ```
#
# ### GPT-2 small, to the parameter
#
# GPT-2's smallest released model (reported as 117M in the paper, 124M as
# released) built on PyTorch's `meta` device, which records shapes without
# allocating memory, against eq. {eq}`gpt-params`:

# %%
with torch.device("meta"):
    gpt2 = GPTSpec(**GPT2_124M).build()
    gpt2_untied = GPTSpec(**GPT2_124M, tie_weights=False).build()
L, d, V, T_max = (
    GPT2_124M[k] for k in ("n_layer", "n_embd", "vocab_size", "block_size")
)
formula = 12 * L * d * d + 13 * L * d + (V + T_max) * d + 2 * d
print(
    f"GPT-2 small: {count_parameters(gpt2):,} parameters tied "
    f"(formula {formula:,}), {count_parameters(gpt2_untied):,} untied"
)
assert count_parameters(gpt2) == formula == GPT2_124M_PARAMETERS
del gpt2, gpt2_untied

# %% [markdown]
# 124,439,808, the count of the released checkpoint. Untied, the output layer
# would add another $V d$ = 38.6 million.
#
# ## Experiment
#
# The three profiles differ in these fields (`full` is nanoGPT's
# `train_shakespeare_char` configuration, for a GPU):

# %%
print(GPTConfig.profile_table())

# %% [markdown]
# ### Data
#
# Tiny Shakespeare, as in {doc}`rnn`: the first 90% of the text for training, the
# last 10% held out, and the loss in nats per character. A training batch is
# `batch_size` blocks of `block_size` tokens drawn at random positions (nanoGPT's
# `get_batch`, through `scratch.train.sampled_loader`); the held-out text is cut
# into consecutive blocks, every character of it scored once.


# %%
class Windows(Dataset):
    """Every block of ``block`` tokens of a stream and the same block shifted by
    one: item i is (ids[i : i + block], ids[i + 1 : i + block + 1])."""

    def __init__(self, ids, block: int):
        self.ids, self.block = torch.as_tensor(ids, dtype=torch.long), block

    def __len__(self):
        return len(self.ids) - self.block

    def __getitem__(self, i):
        return self.ids[i : i + self.block], self.ids[i + 1 : i + self.block + 1]


text = data.tiny_shakespeare()
split = int(0.9 * len(text))
train_text, val_text = text[:split], text[split:]
vocab = Vocab.from_text(text)
print(
    f"{len(train_text):,} training and {len(val_text):,} held-out characters; {vocab}"
)

# %% [markdown]
# ### The two attention cores
#
# The model computes attention either written out or through PyTorch's fused
# `F.scaled_dot_product_attention` (which picks a flash or memory-efficient kernel
# where one exists). On an untrained model of this run's size, the logits of both
# paths, and the time of a forward and backward pass of each:

# %%
spec = dataclasses.replace(cfg.model, vocab_size=len(vocab))
device = utils.pick_device(cfg.device)
utils.seed_everything(cfg.seed)
probe = spec.build().to(device)
x_probe = torch.randint(0, len(vocab), (cfg.batch_size, spec.block_size), device=device)
with torch.no_grad():
    attn_diff = (
        (probe.set_fused(True)(x_probe) - probe.set_fused(False)(x_probe)).abs().max()
    )


def pass_seconds(model, x, fused: bool, repeats: int = 5) -> float:
    """Median time of a forward and backward pass of ``model`` on ``x``."""
    model.set_fused(fused)
    times = []
    for _ in range(repeats + 1):  # the first is a warm-up
        t0 = time.perf_counter()
        lm_loss(model(x), x).backward()
        if x.is_cuda:
            torch.cuda.synchronize()  # GPU kernels run asynchronously
        times.append(time.perf_counter() - t0)
    return float(np.median(times[1:]))


attn_seconds = {
    "written out": pass_seconds(probe, x_probe, False),
    "SDPA": pass_seconds(probe, x_probe, True),
}
print(f"largest logit difference, written out vs SDPA: {attn_diff:.1e}")
for name, s in attn_seconds.items():
    print(
        f"{name:>12}: {s * 1e3:.1f} ms per forward+backward pass, "
        f"{x_probe.numel() / s:,.0f} tokens/s"
    )
assert attn_diff < 1e-4
del probe

# %% [markdown]
# The same logits to float32 rounding. At a block of a few dozen tokens attention
# is a small part of the work (the matrix products of the projections and the MLP
# dominate), so the two paths run at about the same speed on a CPU; the fused
# kernel pays off at long blocks, and on GPUs, where it never writes the $T \times
# T$ weights to memory. `bench/gpt_speed.py` measures both at several lengths.
#
# ### Training, step by step
#
# One function trains a model on a token stream and scores it: the optimizer of
# eq. {eq}`gpt-schedule` (`recipes.param_groups` splits the matrices from the
# rest), a `LambdaLR` for the schedule, and `scratch.train.fit`, which runs
# `max_steps` steps with clipping and evaluates every `eval_every` steps. A
# callback notes the wall-clock time at which the validation loss first reaches
# `target_loss`.


# %%
def lr_factor(step: int) -> float:
    """Eq. (gpt-schedule) as a fraction of the peak rate, for ``LambdaLR``."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / (cfg.max_steps - cfg.warmup_steps))
    floor = cfg.min_lr / cfg.lr
    return floor + 0.5 * (1 - floor) * (1 + math.cos(math.pi * progress))


class TimeToLoss(Callback):
    """Seconds from the first step until a validation loss <= ``target``."""

    def __init__(self, target: float):
        self.target, self.step, self.seconds = target, None, None

    def on_fit_start(self, state):
        self.t0 = time.perf_counter()

    def check(self, state):
        evals = state.history.evals
        if self.step is None and evals and evals[-1]["val_loss"] <= self.target:
            self.step, self.seconds = evals[-1]["step"], time.perf_counter() - self.t0

    on_batch_end = on_fit_end = check  # fit evaluates after a step's callbacks


def score(model, ids, block: int) -> tuple[float, int]:
    """Mean NLL (nats per token) over consecutive blocks of ``ids``, and the
    number of tokens scored."""
    x, y = chunks(ids, block)
    loader = DataLoader(TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), 64)
    result = evaluate(model, loader, lm_loss, metrics={}, precision=cfg.precision)
    return result["val_loss"], y.size


def train(name: str, train_ids, val_ids, vocab_size: int, block_size: int):
    """Train ``cfg.model`` with ``vocab_size`` tokens and blocks of ``block_size``;
    return the model, its history, the target callback and its training seconds."""
    model_spec = dataclasses.replace(
        cfg.model, vocab_size=vocab_size, block_size=block_size
    )
    run = dataclasses.replace(cfg, model=model_spec, out_dir=str(cfg.run_dir / name))
    utils.seed_everything(cfg.seed)
    model = model_spec.build()
    optimizer = torch.optim.AdamW(
        recipes.param_groups(model, cfg.weight_decay),
        lr=cfg.lr,
        betas=(0.9, cfg.beta2),
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    block = model_spec.block_size
    train_loader = sampled_loader(
        Windows(train_ids, block), cfg.batch_size, steps_per_epoch=cfg.eval_every
    )
    x_val, y_val = chunks(val_ids, block, limit=cfg.eval_blocks or None)
    val_loader = DataLoader(
        TensorDataset(torch.from_numpy(x_val), torch.from_numpy(y_val)), 64
    )
    timer = TimeToLoss(cfg.target_loss)
    t0 = time.perf_counter()
    history = fit(
        model,
        optimizer,
        train_loader,
        run,
        loss_fn=lm_loss,
        metrics={},
        val_loader=val_loader,
        scheduler=scheduler,
        callbacks=(timer,),
    )
    seconds = time.perf_counter() - t0
    return model.eval(), history, timer, seconds


# %% [markdown]
# ### Characters
#
# The character model: 65 tokens, one per character of the corpus.

# %%
char_train, char_val = vocab.encode(train_text), vocab.encode(val_text)
char_model, char_history, char_timer, char_seconds = train(
    "chars", char_train, char_val, len(vocab), spec.block_size
)
char_loss, _ = score(char_model, char_val, spec.block_size)
tokens_per_s = float(np.median([row["tokens_per_s"] for row in char_history.log]))
print(
    f"{count_parameters(char_model):,} parameters; {cfg.max_steps} steps in "
    f"{char_seconds:.0f} s ({tokens_per_s:,.0f} training tokens/s); held-out loss "
    f"{char_loss:.3f} nats per character"
)
if char_timer.seconds is not None:
    print(
        f"validation loss <= {cfg.target_loss} at step {char_timer.step}, "
        f"after {char_timer.seconds:.0f} s"
    )
else:
    print(f"validation loss never reached {cfg.target_loss} in {cfg.max_steps} steps")

# %% [markdown]
# ### Byte-pair tokens
#
# The same network on the tokens of a byte-level BPE tokenizer
# (`scratch.text.BPETokenizer`, {doc}`tokenization`) learnt on the training text
# only. Its blocks are as many tokens as span `block_size` characters on average,
# so that both models read the same amount of text per step, for the same number
# of steps; the BPE model runs fewer positions for it. Losses per token are not
# comparable across tokenizers; per character they are: the total held-out NLL
# divided by the characters the scored tokens spell.

# %%
if cfg.bpe.run:
    t0 = time.perf_counter()
    tokenizer = BPETokenizer().train(train_text, cfg.bpe.vocab_size)
    bpe_train = np.array(tokenizer.encode(train_text), dtype=np.int64)
    bpe_val = np.array(tokenizer.encode(val_text), dtype=np.int64)
    chars_per_token = len(train_text) / len(bpe_train)
    bpe_block = max(2, round(spec.block_size / chars_per_token))
    print(
        f"{tokenizer} learnt and applied in {time.perf_counter() - t0:.1f} s: "
        f"{chars_per_token:.2f} characters per token; blocks of {bpe_block} tokens"
    )
    bpe_model, bpe_history, _, bpe_seconds = train(
        "bpe", bpe_train, bpe_val, tokenizer.vocab_size, bpe_block
    )
    nats_per_token, n_tokens = score(bpe_model, bpe_val, bpe_block)
    _, y_scored = chunks(bpe_val, bpe_block)
    scored_chars = len(tokenizer.decode(y_scored.ravel()))
    bpe_loss = nats_per_token * n_tokens / scored_chars
    print(
        f"BPE model: {count_parameters(bpe_model):,} parameters, {bpe_seconds:.0f} s; "
        f"held-out loss {nats_per_token:.3f} nats per token = {bpe_loss:.3f} nats "
        f"per character (characters: {char_loss:.3f})"
    )

# %%
window = max(1, cfg.max_steps // 50)
curves = {
    "characters, train": plots.smooth(char_history.steps, window),
}
evals = {"characters, held out": char_history.evals}
if cfg.bpe.run:
    curves["BPE, train (per token)"] = plots.smooth(bpe_history.steps, window)
    evals["BPE, held out (per token)"] = bpe_history.evals
fig = plots.lines(
    curves,
    x=np.arange(1, cfg.max_steps + 1),
    xlabel="step",
    ylabel="NLL (nats per token)",
    title=f"Training loss (mean of {window} steps) and held-out loss",
)
for name, rows in evals.items():
    fig.add_scatter(
        x=[r["step"] for r in rows],
        y=[r["val_loss"] for r in rows],
        name=name,
        mode="lines+markers",
    )
plots.show(fig, cfg.run_dir / "loss.html")

# %% [markdown]
# The BPE model's loss per *token* is higher: each token carries more than one
# character. Per character the comparison is the results table's. Two things pull
# in opposite directions: a BPE token spells common pieces of words in one
# prediction, and the model attends over fewer positions for the same text; but
# its embedding and output layers hold a row per token, and rarer tokens are seen
# less often.
#
# ### Generation: temperature, top-k, top-p
#
# Samples of the character model from a newline, through `scratch.text.sample`
# with a `NextLogits` that keeps the key-value cache:

# %%
prompt = vocab.encode("\n")[None]  # (1, 1)
settings = {
    f"temperature {cfg.temperature}": dict(temperature=cfg.temperature),
    f"top-k {cfg.top_k}": dict(top_k=cfg.top_k),
    f"top-p {cfg.top_p}": dict(top_p=cfg.top_p),
}
for name, kw in settings.items():
    (ids,) = sample(
        NextLogits(char_model), prompt, cfg.sample_chars, rng=cfg.seed, **kw
    )
    print(f"--- {name} ---\n{vocab.decode(ids)}\n")

# %% [markdown]
# The text has the shape of a play, speakers' names in capitals before a colon
# and short lines, with real words among invented ones; how many of each depends
# on how far the loss came down. Lower temperatures and tighter cuts give safer,
# more repetitive text; the full distribution (temperature 1, no cut) invents more
# words.
#
# ### The key-value cache
#
# A generation of `block_size - 1` tokens from one, with and without the cache,
# timed. The tokens drawn must be the same: the cache changes the cost, not the
# model.

# %%
n_new = spec.block_size - 1  # the longest generation before the window slides


def generation(use_cache: bool):
    fn = NextLogits(char_model, use_cache)
    t0 = time.perf_counter()
    (ids,) = sample(fn, prompt, n_new, temperature=1.0, rng=cfg.seed)
    return ids, n_new / (time.perf_counter() - t0), fn.positions


gen = {cache: generation(cache) for cache in (False, True, False, True)}  # warm
kv_speedup = gen[True][1] / gen[False][1]
for cache, (ids, rate, positions) in gen.items():
    print(
        f"{'with' if cache else 'without'} cache: {rate:,.0f} tokens/s, "
        f"{positions:,} positions run through the model"
    )
same_tokens = bool(np.array_equal(gen[True][0], gen[False][0]))
print(f"speed-up {kv_speedup:.1f}x; same tokens: {same_tokens}")
assert same_tokens

# %% [markdown]
# Without the cache, token $t$ runs all $t$ positions again: $\sum_t t \approx
# T^2/2$ positions for $T$ tokens, against $T$ with it. The speed-up grows with
# the block length (and is smaller than the ratio of positions: each call also
# pays a fixed Python and dispatch overhead, large for a small model). Past
# `block_size` tokens the window slides, every position's place changes, and the
# learned position embeddings invalidate the cache: `NextLogits` then recomputes
# the window at every step. (Models with relative positions, like rotary
# embeddings, can keep a sliding cache.)
#
# ### Saving the model
#
# The character model and its spec, reloaded through `load_model`, must give the
# same logits:

# %%
char_model.cpu()  # compared on the CPU: a GPU rounds differently
save_model(cfg.run_dir / "model.pt", char_model, spec)
restored, _ = load_model(cfg.run_dir / "model.pt")
x_check = torch.from_numpy(chunks(char_val, spec.block_size, limit=4)[0])
with torch.no_grad():
    same = torch.equal(restored(x_check), char_model(x_check))
print(f"saved {cfg.run_dir / 'model.pt'}; identical logits after reloading: {same}")
assert same

# %% [markdown]
# ## Results

# %%
seconds = time.perf_counter() - T0
uniform = math.log(len(vocab))
metrics = {
    "val_nats_per_char": char_loss,
    "val_nats_below_uniform": uniform - char_loss,
    "parameters": count_parameters(char_model),
    "train_seconds": char_seconds,
    "train_tokens_per_s": tokens_per_s,
    "steps_to_target": char_timer.step,
    "seconds_to_target": char_timer.seconds,
    "attention_max_diff": float(attn_diff),
    "attention_seconds": attn_seconds,
    "kv_cache_tokens_per_s": gen[True][1],
    "no_cache_tokens_per_s": gen[False][1],
    "kv_cache_speedup": kv_speedup,
}
if cfg.bpe.run:
    metrics.update(
        bpe_val_nats_per_char=bpe_loss,
        bpe_val_nats_per_token=nats_per_token,
        bpe_train_seconds=bpe_seconds,
        bpe_chars_per_token=len(val_text) / len(bpe_val),
    )
rows = results_table(
    cfg,
    metrics,
    seconds=seconds,
    title="Tiny Shakespeare, held-out loss in nats per character",
    columns={
        "val_nats_per_char": ("characters", ".3f"),
        "bpe_val_nats_per_char": (f"BPE {cfg.bpe.vocab_size}", ".3f"),
        "config.max_steps": ("steps", ","),
        "parameters": ("parameters", lambda n: f"{n / 1e6:.2f} M"),
        "seconds_to_target": (f"s to {cfg.target_loss}", ".0f"),
        "kv_cache_speedup": ("KV-cache speed-up", ".1f"),
    },
    references=[
        Reference(
            "nanoGPT, GPU run",
            {
                "val_nats_per_char": NANOGPT_SHAKESPEARE_CHAR_VAL_LOSS,
                "config.max_steps": 5000,
            },
            source="karpathy2022nanogpt",
            setting="6 layers, 384 wide, block 256; 3 min, one A100",
        ),
        Reference(
            "nanoGPT, CPU run",
            {"val_nats_per_char": NANOGPT_CPU_VAL_LOSS, "config.max_steps": 2000},
            source="karpathy2022nanogpt",
            setting="4 layers, 128 wide, block 64",
        ),
    ],
    notes=[
        f"this run: {seconds:.0f} s in all, {char_seconds:.0f} s training the "
        "character model"
        + (f", {bpe_seconds:.0f} s the BPE model" if cfg.bpe.run else ""),
        f"uniform over the {len(vocab)} characters: {uniform:.3f} nats per character",
    ],
)
assert rows[0].values["val_nats_per_char"] == char_loss

# %% [markdown]
# nanoGPT's numbers are validation losses per character on the same split (its
# `prepare.py` also holds out the last 10%), estimated on random blocks rather
# than on every block. The `small` run is far from them by design: a model of a
# few hundred thousand parameters and a few hundred steps on one CPU thread, where
# nanoGPT's CPU recipe trains 2,000 steps and its GPU run 5,000 steps of a model
# fifty times larger. The `full` profile is that GPU run, and its record says how
# long one GPU took to reach 1.47.

# %%
utils.save_run(cfg.run_dir / "metrics.json", cfg, metrics, seconds)
print(f"metrics saved to {cfg.run_dir / 'metrics.json'}")

# %% [markdown]
# ## Summary
#
# - GPT is the Transformer's decoder alone: token and position embeddings, $L$
#   blocks of causal self-attention and an MLP, a final layer norm, and an output
#   layer tied to the token embedding. Trained on next-token prediction, eq.
#   {eq}`gpt-lm`, it learns from every position of a block at once.
# - GPT-2's choices: pre-norm blocks {eq}`gpt-block`, GELU, tied embeddings, and
#   residual projections initialized with standard deviation $0.02/\sqrt{2L}$,
#   eq. {eq}`gpt-init`. GPT-2 small has exactly 124,439,808 parameters, eq.
#   {eq}`gpt-params`.
# - The recipe: AdamW with weight decay on matrices only, linear warmup and cosine
#   decay, gradients clipped to norm 1.
# - Written-out attention and `F.scaled_dot_product_attention` compute the same;
#   the fused kernel matters at long blocks and on GPUs.
# - Compare tokenizers per character, not per token.
# - Generation reshapes the next-token distribution (temperature, top-k, top-p) and
#   caches every layer's keys and values, so that each new token costs one
#   position instead of all of them.
#
# ## Exercises
#
# :::{exercise}
# :label: gpt-ex-1
# Remove the depth scaling of eq. {eq}`gpt-init` (initialize `c_proj` like every
# other matrix) and measure the standard deviation of the residual stream after
# each block of an untrained 24-layer model on random tokens, with and without
# the scaling. How does it grow with depth in each case?
# :::
#
# :::{solution} gpt-ex-1
# :class: dropdown
# ```python
# from scratch.models.gpt import GPT
# torch.manual_seed(0)
# for scaled in (True, False):
#     model = GPT(65, 64, n_layer=24, n_head=4, n_embd=256).eval()
#     if not scaled:
#         for n, p in model.named_parameters():
#             if n.endswith("c_proj.weight"):
#                 torch.nn.init.normal_(p, 0.0, 0.02)
#     x = torch.randint(0, 65, (8, 64))
#     h = model.wte(x) + model.wpe(torch.arange(64))
#     stds = []
#     with torch.no_grad():
#         for block in model.h:
#             h = block(h)
#             stds.append(round(h.std().item(), 4))
#     print(scaled, stds[0], stds[11], stds[23])
# ```
# Each block adds two terms of roughly equal variance to the stream, so without
# the scaling the stream's variance grows about linearly with depth, its standard
# deviation as $\sqrt{L}$: from block 12 to block 24 it grows by about
# $\sqrt{2}$. With the scaling every added term is $\sqrt{2L}$ times smaller in
# standard deviation, so the $2L$ terms together add about the variance of *one*
# unscaled term: after all 24 blocks the scaled stream is about as large as the
# unscaled one after its first block, whatever the depth. (The terms are not
# independent of the stream, so the law is approximate; the printed numbers show
# it.)
# :::
#
# :::{exercise}
# :label: gpt-ex-2
# Untie the output layer (`--model.tie_weights=false`) and train the `small`
# profile again. How many parameters does the character model gain, and what
# happens to its held-out loss? Why is the answer different for GPT-2 small?
# :::
#
# :::{solution} gpt-ex-2
# :class: dropdown
# The output layer gains $V d$ weights: $65 \times 128 = 8{,}320$ for the small
# character model, a few percent, and the held-out loss barely moves (the run
# decides which way: with 65 tokens, each seen hundreds of thousands of times,
# both layers are well trained). For GPT-2 small, $V d = 38.6$ M is 31% of the
# model: untying it costs memory and, for the many rare tokens, gives their output
# rows far fewer updates than the shared rows get from both sides, which is the
# case {cite:t}`press2017using` found tying to help.
# :::
#
# :::{exercise}
# :label: gpt-ex-3
# Count the multiply-adds of generating $T$ tokens with and without the cache for a
# model of $L$ layers and width $d$ (ignore the embeddings and the output layer).
# For the `small` model and $T = $ `block_size`, what speed-up does the count
# predict, and why does the measured one fall short?
# :::
#
# :::{solution} gpt-ex-3
# :class: dropdown
# One position costs about $12 L d^2$ multiply-adds in the matrices plus $2 L t d$
# in attention over $t$ keys. Without the cache token $t$ runs $t$ positions, each
# attending over up to $t$ keys: about $\sum_t (12 L d^2 t + L t^2 d) \approx 6 L
# d^2 T^2 + L d T^3/3$. With it, $\sum_t (12 L d^2 + 2 L t d) \approx 12 L d^2 T +
# L d T^2$. For $T = 64$ and $d = 128$ the matrix terms dominate and the ratio is
# about $T / 2 = 32$. The measured speed-up is far smaller because a tiny model's
# step is dominated by fixed costs that the cache does not remove: Python, the
# dispatch of a few dozen small kernels per layer, `sample`'s NumPy work per token.
# For GPT-2-sized models and long contexts the measured gain approaches the count.
# :::
#
# :::{exercise}
# :label: gpt-ex-4
# Sample 20 continuations of 200 characters from the same prompt with
# (a) temperature 1, (b) temperature 0.5, (c) top-p 0.9, and measure for each the
# fraction of distinct words and the fraction of words that occur in the training
# text. Which setting repeats itself, and which invents words?
# :::
#
# :::{solution} gpt-ex-4
# :class: dropdown
# ```python
# train_words = set(train_text.split())
# for kw in (dict(), dict(temperature=0.5), dict(top_p=0.9)):
#     rows = sample(NextLogits(char_model), np.repeat(prompt, 20, 0), 200, rng=0, **kw)
#     words = [w for r in rows for w in vocab.decode(r).split()]
#     print(kw, len(set(words)) / len(words),
#           sum(w in train_words for w in words) / len(words))
# ```
# Temperature 1 samples the model's full distribution, including its long tail of
# unlikely characters: the most distinct words and the most non-words. Temperature
# 0.5 concentrates on the likely continuations: more real words, fewer distinct
# ones, and repeated phrases. Top-p removes the tail where the model is sure and
# keeps many choices where it is not, so it should land between the two on both
# counts, which is the balance {cite:t}`holtzman2020curious` proposed it for; how
# close to either depends on the model and on $p$.
# :::
#
# ## References
#
# ```{bibliography}
# :filter: docname in docnames
# ```
