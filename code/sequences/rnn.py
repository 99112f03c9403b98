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
# (rnn)=
# # Recurrent networks and backpropagation through time
#
# The model of {doc}`mlp_lm` reads a fixed window. Its last experiment made the
# window's edge visible: a symbol seven steps back was recalled perfectly by a
# window of seven and at exactly chance by a window of six. A *recurrent* network
# has no window. It reads a sequence one token at a time and carries a hidden state
# from each step to the next, computed by the same weights at every step, so any
# earlier token can in principle change the current prediction, and the model has
# the same number of parameters for sequences of any length. This chapter builds
# the vanilla (Elman) RNN with the NumPy engine, derives its gradient through time
# by hand and checks it against the engine's autograd, trains it as a character
# model of Shakespeare, and then measures why "in principle" is doing a lot of work:
# gradients through many steps vanish or explode, and a task with a long delay
# defeats it.

# %% tags=["hide-input"]
import time
from dataclasses import dataclass, field

import numpy as np
import plotly.graph_objects as go

import scratch.engine.functional as F
from scratch import data, plots, utils
from scratch.config import Config, ConfigError, positive
from scratch.engine import nn, no_grad, optim
from scratch.engine.loop import fit_arrays
from scratch.engine.models import CharLM, delayed_key_accuracy
from scratch.results import results_table
from scratch.text import Vocab, chunks, delayed_key, sample


@dataclass
class RNNConfig(Config):
    NAME = "rnn"

    train_chars: int = field(
        default=600_000,
        metadata=positive(
            "characters of tiny Shakespeare to train on (its first 90% is the "
            "training text; validation is the last 10%, always whole)"
        ),
    )
    block: int = field(
        default=64,
        metadata=positive(
            "characters per training chunk: backpropagation is truncated to this "
            "many steps"
        ),
    )
    hidden: int = field(
        default=128, metadata=positive("units of the RNN's hidden state")
    )
    embedding_dim: int = field(
        default=32, metadata=positive("size of each character's input vector")
    )
    epochs: int = field(default=4, metadata=positive("passes over the chunks"))
    batch_size: int = field(default=32, metadata=positive("chunks per Adam step"))
    lr: float = field(default=0.003, metadata=positive("Adam's step size"))
    clip: float = field(
        default=1.0,
        metadata=positive(
            "the norm that all gradients together are clipped to before each step"
        ),
    )
    clip_lr: float = field(
        default=2.0,
        metadata=positive(
            "plain SGD step size of the clipping experiment: large enough that "
            "an unclipped run explodes"
        ),
    )
    clip_steps: int = field(
        default=150, metadata=positive("steps of each run of the clipping experiment")
    )
    radii: tuple[float, ...] = field(
        default=(0.5, 0.9, 1.0, 1.1, 2.0),
        metadata=positive(
            "spectral radii of the recurrent weights in the gradient-flow study"
        ),
    )
    flow_steps: int = field(
        default=60, metadata=positive("steps back through which gradients are followed")
    )
    delays: tuple[int, ...] = field(
        default=(2, 5, 10, 20, 40),
        metadata=positive("delays of the long-range key task"),
    )
    task_sequences: int = field(
        default=3000, metadata=positive("training sequences of the key task")
    )
    task_epochs: int = field(
        default=12, metadata=positive("epochs of each key-task model")
    )
    n_samples: int = field(default=400, metadata=positive("characters of sample text"))

    PROFILES = {
        "tiny": dict(
            threads=1,
            train_chars=20_000,
            block=32,
            hidden=32,
            epochs=1,
            flow_steps=20,
            radii=(0.5, 2.0),
            delays=(2, 20),
            task_sequences=400,
            task_epochs=8,
            n_samples=100,
            clip_steps=20,
        ),
        "small": dict(threads=1),  # the book build: about a minute on 2 CPU cores
        "full": dict(
            train_chars=1_003_854, hidden=256, epochs=20, task_sequences=20_000
        ),  # all of the training text; the engine on a CPU, about two hours
    }

    def validate(self):
        if self.block < 2:
            raise ConfigError(
                f"block={self.block}: a chunk needs at least 2 characters"
            )


cfg = RNNConfig.from_cli()
utils.seed_everything(cfg.seed)
run_started = time.perf_counter()


# %% [markdown]
# ## Motivation: a state instead of a window
#
# Every model so far computed $p(x_t \mid \text{context})$ from a context of fixed
# size. A recurrent network replaces the context by a *state* $h_t$ that summarizes
# everything read so far and is updated by one rule,
#
# $$
# h_t = \tanh\big(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh}\big), \qquad
# z_t = W_{o} h_t + b_o, \qquad p(x_{t+1} \mid x_{\le t}) = \operatorname{softmax}(z_t),
# $$ (rnn-model)
#
# with $h_0 = 0$ (PyTorch's names for the weights; {cite:t}`elman1990finding`'s
# network). The same $W_{ih}, W_{hh}$ act at every step. Nothing limits how far
# back the state remembers, except what training can teach it.
#
# ## Theory
#
# ### Backpropagation through time
#
# Unroll eq. {eq}`rnn-model` over $T$ steps and it is a deep feed-forward network
# with $T$ layers that share their weights; the loss is the sum of the per-step
# cross-entropies, $\mathcal L = \sum_t \ell_t(z_t)$. Backpropagation through this
# graph is *backpropagation through time* (BPTT). Write $\bar h_t = \partial
# \mathcal L / \partial h_t$ for the *total* gradient at step $t$, through every
# later step. It gets a term from the read-out at $t$ and one from the next step:
#
# $$
# \bar h_t = W_o^\top \bar z_t + W_{hh}^\top \big(\bar h_{t+1} \odot (1 - h_{t+1}^2)\big),
# \qquad \bar h_T = W_o^\top \bar z_T,
# $$ (rnn-bptt)
#
# where $\bar z_t = \operatorname{softmax}(z_t) - e_{y_t}$ (divided by the number of
# terms, for a mean). With $\bar a_t = \bar h_t \odot (1 - h_t^2)$, the gradient of
# the pre-activation, the weights collect a term from every step:
# $\bar W_{hh} = \sum_t \bar a_t h_{t-1}^\top$, $\bar W_{ih} = \sum_t \bar a_t
# x_t^\top$, $\bar b_{ih} = \bar b_{hh} = \sum_t \bar a_t$. The implementation
# below writes exactly this, and the engine's autograd, which knows nothing about
# time, must agree with it.
#
# ### Vanishing and exploding gradients
#
# Unfold eq. {eq}`rnn-bptt`: the gradient that the loss at step $T$ sends to the
# state $k$ steps earlier is a product of $k$ Jacobians,
#
# $$
# \frac{\partial \ell_T}{\partial h_{T-k}} = \Big(\prod_{j=T-k+1}^{T}
# W_{hh}^\top \operatorname{diag}(1 - h_j^2)\Big) \frac{\partial \ell_T}{\partial h_T}.
# $$ (rnn-product)
#
# Each factor has norm at most $\lVert W_{hh} \rVert$ (the tanh's derivative is at
# most 1). If the largest singular value of $W_{hh}$ is below 1, the product shrinks
# geometrically: gradients *vanish*, and what happened $k$ steps ago has almost no
# influence on learning. If it is above 1 the product can grow geometrically:
# gradients *explode*. {cite:t}`bengio1994learning` proved that a recurrent network
# that stores information robustly (against small perturbations) must be in the
# vanishing regime; {cite:t}`pascanu2013difficulty` analysed both regimes and
# proposed the standard remedy for explosions: *clip* the gradient's norm to a
# threshold before each step, keeping its direction.
#
# ### Truncated BPTT
#
# A sequence of a million characters is not unrolled whole: training cuts it into
# chunks of `block` characters and backpropagates within each chunk only. So no
# gradient crosses more than `block` steps, whatever the model could represent.
# At evaluation time the state can still be carried from one chunk to the next,
# which lets the model *use* context longer than the chunks it was trained on.
#
# ## Implementation
#
# ### BPTT by hand, against the engine
#
# The forward pass of eq. {eq}`rnn-model` and the backward pass of
# eq. {eq}`rnn-bptt`, in NumPy, for a batch of sequences and a loss that weights
# each step (`step_weights`; the mean over all steps by default, or only the last
# step for the gradient-flow study).


# %%
def rnn_forward(p, x, h0):
    """h_1..h_T for inputs x (T, B, in): eq. (rnn-model). p holds PyTorch's names."""
    hs = [h0]
    for x_t in x:
        a = x_t @ p["weight_ih_l0"].T + p["bias_ih_l0"] + hs[-1] @ p["weight_hh_l0"].T
        hs.append(np.tanh(a + p["bias_hh_l0"]))
    return np.stack(hs)  # (T + 1, B, H), hs[0] = h0


def rnn_bptt(p, x, y, h0, step_weights=None):
    """Loss and gradients of sum_t w_t * mean_b CE(z_t, y_t), by eq. (rnn-bptt).

    Returns (loss, grads by parameter name, the total gradient dL/dh_t for every
    t = 1..T as an array (T, B, H))."""
    T, B = y.shape
    w = np.full(T, 1 / T) if step_weights is None else np.asarray(step_weights)
    hs = rnn_forward(p, x, h0)
    z = hs[1:] @ p["out.weight"].T + p["out.bias"]  # (T, B, V)
    z = z - z.max(axis=-1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    picked = np.take_along_axis(log_p, y[..., None], axis=-1)[..., 0]  # (T, B)
    loss = float(-(w[:, None] * picked).sum() / B)
    gz = np.exp(log_p)
    np.put_along_axis(
        gz, y[..., None], np.take_along_axis(gz, y[..., None], -1) - 1, -1
    )
    gz *= w[:, None, None] / B  # d loss / d z_t
    g = {k: np.zeros_like(v) for k, v in p.items()}
    g["out.weight"] = np.einsum("tbv,tbh->vh", gz, hs[1:])
    g["out.bias"] = gz.sum(axis=(0, 1))
    dh_total = np.zeros_like(hs[1:])
    carry = np.zeros_like(h0)  # W_hh^T (dh_{t+1} * (1 - h_{t+1}^2)), from the future
    for t in reversed(range(T)):
        dh = gz[t] @ p["out.weight"] + carry  # eq. (rnn-bptt)
        dh_total[t] = dh
        da = dh * (1 - hs[t + 1] ** 2)
        g["weight_ih_l0"] += da.T @ x[t]
        g["weight_hh_l0"] += da.T @ hs[t]
        g["bias_ih_l0"] += da.sum(axis=0)
        g["bias_hh_l0"] += da.sum(axis=0)
        carry = da @ p["weight_hh_l0"]
    return loss, g, dh_total


# The engine's nn.RNN and nn.Linear, with the same weights, and its autograd.
T, B, n_in, H, V_check = 12, 4, 5, 8, 7
rng = np.random.default_rng(cfg.seed)
rnn_layer, readout = nn.RNN(n_in, H), nn.Linear(H, V_check)
params = {k: v.data for k, v in rnn_layer.named_parameters()}
params.update({f"out.{k}": v.data for k, v in readout.named_parameters()})
x_check = rng.standard_normal((T, B, n_in))
y_check = rng.integers(0, V_check, (T, B))
loss_hand, grads_hand, _ = rnn_bptt(params, x_check, y_check, np.zeros((B, H)))
out, _ = rnn_layer(x_check)  # (T, B, H)
loss_engine = F.cross_entropy(readout(out).reshape(-1, V_check), y_check.reshape(-1))
loss_engine.backward()
engine_grads = {k: v.grad for k, v in rnn_layer.named_parameters()}
engine_grads.update({f"out.{k}": v.grad for k, v in readout.named_parameters()})
bptt_error = max(float(np.abs(grads_hand[k] - engine_grads[k]).max()) for k in params)
print(f"loss: by hand {loss_hand:.12f}, engine {loss_engine.item():.12f}")
print(f"largest gradient difference over {len(params)} tensors: {bptt_error:.1e}")
assert abs(loss_hand - loss_engine.item()) < 1e-12 and bptt_error < 1e-12

# %% [markdown]
# The two agree to rounding: the engine's autograd, walking the unrolled graph,
# *is* BPTT. (`scratch.engine.nn.RNN` itself is checked against `torch.nn.RNN`,
# weights, outputs and gradients, in `tests/engine/test_rnn.py`.) From here on we
# let autograd do it.
#
# ### Gradients through time, measured
#
# Eq. {eq}`rnn-product` in numbers: an untrained RNN whose recurrent matrix is a
# random orthogonal matrix times a radius $\rho$ (so all its singular values are
# $\rho$), a loss on the last step only, and the norm of the total gradient
# $\partial \ell_T / \partial h_{T-k}$ from `rnn_bptt` for each $k$ steps back.

# %%
H_flow, B_flow = 64, 16
flow = {}
for radius in cfg.radii:
    rng = np.random.default_rng(cfg.seed)
    q, _ = np.linalg.qr(rng.standard_normal((H_flow, H_flow)))
    p = {
        "weight_ih_l0": rng.standard_normal((H_flow, 8)) * 0.1,
        "weight_hh_l0": radius * q,
        "bias_ih_l0": np.zeros(H_flow),
        "bias_hh_l0": np.zeros(H_flow),
        "out.weight": rng.standard_normal((10, H_flow)) / np.sqrt(H_flow),
        "out.bias": np.zeros(10),
    }
    steps = cfg.flow_steps
    x = rng.standard_normal((steps, B_flow, 8))
    y = rng.integers(0, 10, (steps, B_flow))
    only_last = np.eye(steps)[-1]
    _, _, dh = rnn_bptt(p, x, y, np.zeros((B_flow, H_flow)), step_weights=only_last)
    norms = np.linalg.norm(dh, axis=-1).mean(axis=1)[::-1]  # k = 0, 1, ... steps back
    flow[radius] = norms / norms[0]

fig = go.Figure()
for radius, norms in flow.items():
    fig.add_trace(go.Scatter(x=np.arange(len(norms)), y=norms, name=f"ρ = {radius}"))
fig.update_yaxes(
    type="log", title="‖∂ℓ_T/∂h_(T−k)‖, relative to k = 0", exponentformat="power"
)
fig.update_xaxes(title="k, steps back in time")
fig.update_layout(
    title="Gradient norm through time: vanishing below ρ = 1, growing above", height=420
)
plots.show(fig, cfg.run_dir / "gradient_flow.html")
for radius, norms in flow.items():
    print(f"rho={radius}: gradient {cfg.flow_steps - 1} steps back = {norms[-1]:.2e} x")

# %% [markdown]
# Below $\rho = 1$ the curves are close to straight lines on the log scale, a
# factor of about $\rho$ per step: at $\rho = 0.5$ the gradient from 20 steps back
# is about a millionth of the recent one ($0.5^{20} \approx 10^{-6}$). At $\rho = 1$
# and a little above, the tanh's derivative $1 - h^2$, below 1 wherever the state is
# not 0, still tips the product into decay (the run prints the factors). Only a
# clearly expanding matrix, $\rho = 2$ here, makes the gradient grow, and it grows
# until the states saturate, where $1 - h^2$ falls towards 0 and stops it. The
# region in which gradients neither vanish nor explode is narrow, and training
# moves the weights through it.
#
# ### A character model of Shakespeare
#
# Now the RNN as a language model, on the tiny-Shakespeare corpus
# {cite:p}`karpathy2015unreasonable`: characters in, next-character logits out,
# `scratch.engine.models.CharLM` (an embedding, `nn.RNN`, a linear read-out).
# Training cuts the text into chunks of `block` characters (truncated BPTT) and
# uses the engine's `fit_arrays` with gradient clipping.

# %%
text = data.tiny_shakespeare()
vocab = Vocab.from_text(text)
V = len(vocab)
ids = vocab.encode(text)
split = int(0.9 * len(ids))
train_ids, val_ids = ids[: min(split, cfg.train_chars)], ids[split:]


x_tr, y_tr = chunks(train_ids, cfg.block)
x_va, y_va = chunks(val_ids, cfg.block)
print(
    f"{len(text):,} characters, {V} distinct; training on {len(train_ids):,} "
    f"({len(x_tr)} chunks of {cfg.block}), validating on {len(val_ids):,}"
)
utils.seed_everything(cfg.seed)
model = CharLM(V, cfg.embedding_dim, cfg.hidden, cell="RNN")
opt = optim.Adam(model.parameters(), lr=cfg.lr)
history = fit_arrays(
    model,
    opt,
    x_tr,
    y_tr,
    epochs=cfg.epochs,
    batch_size=cfg.batch_size,
    loss_fn=CharLM.loss,
    val=(x_va, y_va),
    metrics={},
    seed=cfg.seed,
    config=cfg,
    clip_grad_norm=cfg.clip,
)
val_reset = history.epochs[-1]["val_loss"]


def carried_loss(model, stream, block):
    """Validation NLL with the state carried from each chunk to the next."""
    state, total, n = None, 0.0, 0
    with no_grad():
        for i in range(0, len(stream) - 1 - block, block):
            x = stream[i : i + block][None]
            y = stream[i + 1 : i + block + 1]
            logits, state = model(x, state)
            total += F.cross_entropy(logits.reshape(-1, V), y).item() * block
            n += block
    return total / n


model.eval()
val_carried = carried_loss(model, val_ids, cfg.block)
print(
    f"validation NLL: state reset every {cfg.block} characters {val_reset:.4f}, "
    f"state carried across chunks {val_carried:.4f}"
)

# %%
fig = plots.step_curves(
    history,
    50,
    "The character RNN on tiny Shakespeare",
    ylabel="NLL (nats per character)",
)
plots.show(fig, cfg.run_dir / "training.html")


# %%
def rnn_logits(model):
    """next_logits for scratch.text.sample: the whole prefix is re-read each step
    (simple, and cheap for a few hundred characters)."""

    def next_logits(prefix):
        logits, _ = model(prefix)
        return logits.data[:, -1]

    return next_logits


prompt = vocab.encode("ROMEO:")[None]
new = sample(rnn_logits(model), prompt, cfg.n_samples, temperature=0.8, rng=cfg.seed)[0]
print(vocab.decode(prompt[0]) + vocab.decode(new))


# %% [markdown]
# Words, line breaks and speaker names in capitals, from a model that sees one
# character at a time: the state has learnt to track where in a word and a line
# it is. Carrying the state across chunk boundaries lowers the validation loss a
# little more: the model uses context beyond the `block` characters it was
# trained on.
#
# ### Clipping, measured
#
# The Shakespeare model above trained with Adam and clipping and never came near an
# explosion (the mean gradient norm before clipping, printed per epoch, stayed
# below the threshold). To see what clipping is for, train the same model with
# plain SGD at a step size that is too large, `clip_lr`, once without clipping and
# once with the norm clipped to `clip`, from the same initialization and on the
# same batches.

# %%
clip_runs = {}
x_clip, y_clip = (
    x_tr[: cfg.clip_steps * cfg.batch_size],
    y_tr[: cfg.clip_steps * cfg.batch_size],
)
for name, clip in (("no clipping", None), (f"clipped to {cfg.clip:g}", cfg.clip)):
    utils.seed_everything(cfg.seed)
    m = CharLM(V, cfg.embedding_dim, cfg.hidden, cell="RNN")
    h = fit_arrays(
        m,
        optim.SGD(m.parameters(), lr=cfg.clip_lr),
        x_clip,
        y_clip,
        epochs=1,
        batch_size=cfg.batch_size,
        loss_fn=CharLM.loss,
        clip_grad_norm=clip,
        seed=cfg.seed,
        verbose=False,
    )
    clip_runs[name] = h.steps
    print(
        f"{name}: loss of the last 20 steps {np.mean(h.steps[-20:]):.3f}, "
        f"highest {max(h.steps):.2f}"
    )
fig = go.Figure()
for name, losses in clip_runs.items():
    fig.add_trace(go.Scatter(y=losses, name=name))
fig.update_layout(
    title=f"Plain SGD at step size {cfg.clip_lr:g}: without clipping the loss explodes",
    xaxis_title="step",
    yaxis_title="train NLL (nats per character)",
    height=380,
)
plots.show(fig, cfg.run_dir / "clipping.html")
clip_final = {name: float(np.mean(v[-20:])) for name, v in clip_runs.items()}

# %% [markdown]
# Without clipping, a few steps with a huge gradient throw the weights far from
# where they were and the loss jumps above where it started; with the norm capped,
# the same step size trains. Clipping changes only the length of those rare
# steps, not their direction, and leaves the ordinary ones alone.
#
# ## Experiment: a dependency many steps back
#
# The key task of {doc}`mlp_lm`, now read whole by the RNN: a key (one of 8
# symbols), `delay` filler symbols, and the key again; the loss is on the last
# prediction only, so all the learning signal has to travel `delay` + 1 steps back
# through eq. {eq}`rnn-product`. One model per delay, with the same size and
# training budget.


# %%
def key_accuracy(cell, delay, hidden=32):
    rng = np.random.default_rng(cfg.seed)
    train_seq = delayed_key(cfg.task_sequences, delay, rng)
    test_seq = delayed_key(1000, delay, rng)
    utils.seed_everything(cfg.seed)
    model = CharLM(16, 8, hidden, cell=cell)
    return delayed_key_accuracy(
        model, train_seq, test_seq, epochs=cfg.task_epochs, seed=cfg.seed
    )


key = {}
for delay in cfg.delays:
    key[delay] = key_accuracy("RNN", delay)
    print(f"delay {delay:>3}: RNN accuracy on the key {key[delay]:.1%}")

fig = go.Figure(
    go.Scatter(
        x=[str(d) for d in key],
        y=[100 * a for a in key.values()],
        mode="lines+markers",
        name="RNN",
    )
)
fig.add_hline(y=100 / 8, line_dash="dash", annotation_text="chance, 1/8")
fig.update_layout(
    title="Recalling a key after a delay: the RNN fails as the delay grows",
    xaxis_title="delay (filler symbols)",
    yaxis_title="test accuracy (%)",
    yaxis_range=[0, 105],
    height=380,
)
plots.show(fig, cfg.run_dir / "key_task.html")

# %% [markdown]
# With a short delay the RNN learns the task; as the delay grows the gradient that
# should teach it to keep the key passes through more and more factors of
# eq. {eq}`rnn-product` and the accuracy falls back to chance, with the same
# budget that solved the short delays. The state *could* hold the key (32 units for
# one of 8 symbols); what fails is learning to keep it. The next chapter changes
# the update rule so that the state, and its gradient, can pass through many steps
# unchanged: the LSTM and the GRU.
#
# ## Results
#
# This run and the recorded `full` run. No paper reports a one-layer tanh RNN on
# this corpus with our budget, so there is no reference row: the character models
# of {cite:t}`karpathy2015unreasonable` are multi-layer LSTMs trained for hours on a
# GPU, the subject of the next chapter.

# %%
metrics = {
    "val_nll": val_reset,
    "val_nll_carried_state": val_carried,
    "train_nll": history.epochs[-1]["loss"],
    "val_nats_below_uniform": float(np.log(V)) - val_reset,
    "bptt_max_error": bptt_error,
    "gradient_ratio_back": {str(r): float(n[-1]) for r, n in flow.items()},
    "key_accuracy": {str(d): a for d, a in key.items()},
    "parameters": sum(p.size for p in model.parameters()),
    "clipping_final_loss": clip_final,
}
rows = results_table(
    cfg,
    metrics,
    seconds=time.perf_counter() - run_started,
    title="Tiny Shakespeare, validation NLL in nats per character; key-task accuracy",
    columns={
        "val_nll": ("validation NLL", ".4f"),
        "val_nll_carried_state": ("… state carried", ".4f"),
        f"key_accuracy.{cfg.delays[0]}": (f"key, delay {cfg.delays[0]}", ".1%"),
        f"key_accuracy.{cfg.delays[-1]}": (f"key, delay {cfg.delays[-1]}", ".1%"),
    },
)
# The claims of the text, checked on this run:
assert bptt_error < 1e-12
assert flow[min(cfg.radii)][-1] < 1e-3  # vanishing below radius 1
assert val_carried < val_reset  # the carried state uses context beyond the chunk
no_clip, clipped = clip_final.values()
if cfg.profile != "tiny":
    assert clipped < no_clip - 1.0  # "without clipping the loss explodes"
assert key[cfg.delays[0]] > 0.9 and key[cfg.delays[-1]] < 0.5

# %%
utils.save_run(
    cfg.run_dir / "metrics.json", cfg, metrics, time.perf_counter() - run_started
)
print(f"metrics written to {cfg.run_dir / 'metrics.json'}")

# %% [markdown]
# ## Summary
#
# - A recurrent network carries a state through time with one shared update,
#   eq. {eq}`rnn-model`: no window, the same parameters for any length.
# - Backpropagation through time is backpropagation through the unrolled graph,
#   eq. {eq}`rnn-bptt`; derived by hand, it agrees with the engine's autograd to
#   rounding.
# - The gradient $k$ steps back is a product of $k$ Jacobians, eq. {eq}`rnn-product`:
#   it vanishes geometrically when the recurrent weights contract and can explode
#   when they expand. Clipping tames the explosions (measured above: the same
#   too-large SGD step trains with it and explodes without); nothing here cures
#   vanishing.
# - Training is truncated to chunks; carrying the state across chunks at evaluation
#   uses longer context than training saw.
# - On a task with one long dependency, the RNN learns short delays and fails at
#   long ones.
#
# In practice: `torch.nn.RNN` (the same parameters as `scratch.engine.nn.RNN`),
# `torch.nn.utils.clip_grad_norm_`, and detaching the state between chunks
# (`h = h.detach()`) for truncated BPTT with a carried state.
#
# ## Exercises
#
# :::{exercise}
# :label: rnn-ex-1
# In eq. {eq}`rnn-product`, take a linear RNN ($\tanh$ replaced by the identity)
# with $W_{hh} = \rho Q$ for an orthogonal $Q$. What is
# $\lVert \partial \ell_T / \partial h_{T-k} \rVert$ exactly?
# :::
#
# :::{solution} rnn-ex-1
# :class: dropdown
# Every factor is $\rho Q^\top$, and an orthogonal matrix keeps norms, so the norm
# is $\rho^k \lVert \partial \ell_T / \partial h_T \rVert$: a straight line of slope
# $\log \rho$ on the log plot. The tanh RNN of the experiment starts on that line
# (its states are small, $1 - h^2 \approx 1$) and falls below it once states grow.
# :::
#
# :::{exercise}
# :label: rnn-ex-2
# Why are the two biases $b_{ih}$ and $b_{hh}$ redundant, and why does PyTorch (and
# this engine) keep both?
# :::
#
# :::{solution} rnn-ex-2
# :class: dropdown
# They are always added together, so only their sum matters, and their gradients
# are equal (`rnn_bptt` adds the same `da.sum(axis=0)` to both). cuDNN's recurrent
# kernels define the two, and PyTorch keeps its parameter layout compatible with
# them; the engine keeps PyTorch's layout so that `load_state_dict` works.
# :::
#
# ## References
#
# ```{bibliography}
# :filter: docname in docnames
# ```
