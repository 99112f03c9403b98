"""Ready-made networks for the NumPy engine, built from :mod:`scratch.engine.nn` layers.

:func:`make_mlp` is the multilayer perceptron of the Part I chapters. Introduced in
the chapter "A tiny autograd engine" (book/foundations/autograd.md); the chapters
on optimizers, schedules, regularization, activations and normalization build their
networks with it too. :class:`CharLM` is the recurrent chapters' character model;
:class:`Seq2Seq` (with :class:`AdditiveAttention`, :func:`fit_seq2seq` and
:func:`exact_match`) the GRU encoder-decoder of the attention chapter
(book/sequences/attention.md).

Chapter: "A tiny autograd engine" (book/foundations/autograd.md).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

from . import functional as F
from . import init, nn, optim, rnn
from .loop import fit_arrays
from .tensor import cat, no_grad, stack, where


def make_mlp(
    widths: Sequence[int],
    activation: Callable[[], nn.Module] | None = nn.ReLU,
    *,
    norm_layer: Callable[[int], nn.Module] | None = None,
    dropout: float = 0.0,
    init_weight: Callable | None = None,
    init_last: Callable | None = None,
    seed: int | None = None,
    dtype=np.float64,
) -> nn.Sequential:
    r"""A multilayer perceptron, ``Linear`` layers ``widths[0] -> widths[1] -> ... ->
    widths[-1]``.

    Every hidden layer is, in ``torchvision.ops.MLP``'s order,
    ``Linear -> norm_layer(width) -> activation() -> Dropout(dropout)``; the norm
    is left out when ``norm_layer`` is None, the dropout when ``dropout`` is 0. The
    last ``Linear`` gives the outputs (the logits) alone. So ``make_mlp([784, 64, 10])``
    is ``Sequential(Linear(784, 64), ReLU(), Linear(64, 10))``, with PyTorch's
    parameter names (``"0.weight"``, ...).

    - ``activation``: a module class or any function of no arguments that returns
      a module (``lambda: nn.LeakyReLU(0.1)``); None for a linear network.
    - ``norm_layer``: a function of the width that returns a module
      (``nn.BatchNorm1d``, ``lambda w: nn.GroupNorm(4, w)``). A ``Linear`` followed
      by one has no bias: the norm subtracts the mean, and its $\beta$ is the shift.
    - ``dtype``: of every ``Linear``'s parameters (the norm layers get their own).

    **Initialization.** Every ``Linear`` is first initialised as ``nn.Linear`` does,
    PyTorch's default, from NumPy's global generator (seed it with
    ``scratch.utils.seed_everything`` for repeatable weights). With ``init_weight``,
    each weight is then redrawn by ``init_weight(weight, generator)`` (the last
    layer's by ``init_last``, if given) and each bias set to 0, for instance
    ``lambda w, g: nn.init.kaiming_normal_(w, nonlinearity="relu", generator=g)``.
    The draws come from ``generator = np.random.default_rng(seed)``, layer after
    layer, so ``seed`` fixes the initial weights whatever the global generator did.
    With a ``seed`` and no ``init_weight``, PyTorch's default scheme is redrawn
    from that generator instead.
    """
    widths = [int(w) for w in widths]
    if len(widths) < 2 or min(widths) < 1:
        raise ValueError(f"make_mlp needs two or more widths, all >= 1, got {widths}")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout probability must be in [0, 1), got {dropout}")
    if init_last is not None and init_weight is None:
        raise ValueError(
            "init_last without init_weight: give init_weight for the hidden layers too"
        )
    layers, linears = [], []
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        last = i == len(widths) - 2
        linear = nn.Linear(n_in, n_out, bias=last or norm_layer is None, dtype=dtype)
        linears.append(linear)
        layers.append(linear)
        if last:
            break
        if norm_layer is not None:
            layers.append(norm_layer(n_out))
        if activation is not None:
            layers.append(activation())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))

    if init_weight is not None or seed is not None:
        generator = np.random.default_rng(seed)
        for i, linear in enumerate(linears):
            if init_weight is None:  # nn.Linear's own scheme, from the generator
                init.kaiming_uniform_(
                    linear.weight, a=math.sqrt(5), generator=generator
                )
                if linear.bias is not None:
                    bound = 1 / math.sqrt(linear.in_features)
                    init.uniform_(linear.bias, -bound, bound, generator=generator)
                continue
            is_last = i == len(linears) - 1
            (init_last if is_last and init_last is not None else init_weight)(
                linear.weight, generator
            )
            if linear.bias is not None:
                init.zeros_(linear.bias)
    return nn.Sequential(*layers)


class CharLM(nn.Module):
    """A recurrent character-level language model: embedding, ``num_layers`` of
    ``nn.RNN``, ``nn.LSTM`` or ``nn.GRU``, and a linear read-out to next-token logits.

    ``forward(x, state=None)`` takes token ids (B, T) and returns logits (B, T, V)
    and the final state, so generation and evaluation can carry the state from one
    chunk of text to the next. The recurrent-network chapters compare the three
    cells with everything else equal.
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int,
        hidden_size: int,
        cell: str = "RNN",
        num_layers: int = 1,
        dtype=np.float64,
    ):
        if cell not in ("RNN", "LSTM", "GRU"):
            raise ValueError(f"cell must be RNN, LSTM or GRU, got {cell!r}")
        self.cell = cell
        self.embedding = nn.Embedding(vocab_size, embedding_dim, dtype=dtype)
        self.rnn = getattr(rnn, cell)(
            embedding_dim, hidden_size, num_layers, batch_first=True, dtype=dtype
        )
        self.head = nn.Linear(hidden_size, vocab_size, dtype=dtype)

    def forward(self, x, state=None):
        h, state = self.rnn(self.embedding(x), state)  # (B, T, H)
        return self.head(h), state  # (B, T, V)

    @staticmethod
    def loss(out, y):
        """Mean cross-entropy of every position: ``out`` is ``forward``'s (logits,
        state), ``y`` the next tokens (B, T). The ``loss_fn`` of ``fit_arrays``."""
        logits = out[0]
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))

    @staticmethod
    def last_loss(out, y):
        """Cross-entropy of the last position only, ``y`` (B,): for tasks whose
        answer comes at the end of the sequence."""
        return F.cross_entropy(out[0][:, -1], y)


def delayed_key_accuracy(
    model: CharLM, train_seq, test_seq, *, epochs: int, seed: int = 0
) -> float:
    """Train ``model`` on the final token of ``train_seq`` (sequences of
    :func:`scratch.text.delayed_key`) and return its accuracy on ``test_seq``'s.

    The recipe of every recurrent chapter's key task, so that the RNN, the GRU
    and the LSTM get the same budget: Adam at 0.01, batches of 64, gradients
    clipped to norm 1, the loss on the last step only.
    """
    fit_arrays(
        model,
        optim.Adam(model.parameters(), lr=0.01),
        train_seq[:, :-1],
        train_seq[:, -1],
        epochs=epochs,
        batch_size=64,
        loss_fn=CharLM.last_loss,
        clip_grad_norm=1.0,
        seed=seed,
        verbose=False,
    )
    model.eval()
    with no_grad():
        logits, _ = model(test_seq[:, :-1])
    return float((logits.data[:, -1].argmax(axis=1) == test_seq[:, -1]).mean())


# ---- the encoder-decoder of the attention chapter ------------------------------------
PAD, BOS, EOS = 0, 1, 2  # the ids of scratch.text.Seq2SeqData, on both sides


class AdditiveAttention(nn.Module):
    r"""Bahdanau et al.'s (2015) attention: how much decoder state $s$ reads each
    encoder output $h_j$,

    $$e_j = v^\top \tanh(W s + U h_j + b), \qquad a = \mathrm{softmax}_j(e),
    \qquad c = \sum_j a_j h_j,$$

    with ``query`` $= W$ (no bias), ``key`` $= U, b$ and ``v`` as linear layers
    (PyTorch's names and layouts: ``query.weight`` (H, H), ``key.weight`` (H, H),
    ``key.bias`` (H,), ``v.weight`` (1, H)).
    """

    def __init__(self, hidden_size: int, dtype=np.float64):
        H = hidden_size
        self.query = nn.Linear(H, H, bias=False, dtype=dtype)  # W_a s_{t-1}
        self.key = nn.Linear(H, H, bias=True, dtype=dtype)  # U_a h_j + b
        self.v = nn.Linear(H, 1, bias=False, dtype=dtype)  # v_a^T tanh(.)

    def forward(self, s, keys, values, mask):
        """``s`` (B, H) the decoder's previous state; ``keys`` (B, S, H) =
        ``self.key(values)``, computed once per sequence by the caller; ``values``
        (B, S, H) the encoder outputs; ``mask`` (B, S) boolean, True where a source
        position is real. Returns the context (B, H) and the weights (B, S), which
        are exactly 0 where ``mask`` is False."""
        scores = self.v((self.query(s).unsqueeze(1) + keys).tanh())[..., 0]  # (B, S)
        scores = where(mask, scores, -np.inf)  # padding: e^-inf = 0 after softmax
        weights = F.softmax(scores, dim=-1)  # (B, S), each row sums to 1
        context = (weights.unsqueeze(1) @ values)[:, 0]  # (B, 1, S) @ (B, S, H)
        return context, weights


class Seq2Seq(nn.Module):
    r"""A GRU encoder-decoder, with additive attention or without (the fixed-vector
    model of Cho et al. 2014 and Sutskever et al. 2014).

    The encoder reads the source, $h_j = \mathrm{GRU}(\mathrm{emb}(x_j), h_{j-1})$;
    the decoder starts from its last real state, $s_0 = h_{|x|}$, and at each step
    reads the previous target word and a context $c_t$:

    $$s_t = \mathrm{GRUCell}([\mathrm{emb}(y_{t-1}); c_t], s_{t-1}), \qquad
    \text{logits}_t = W_o [s_t; c_t] + b_o.$$

    With ``attention`` $c_t$ is :class:`AdditiveAttention` of $s_{t-1}$ over all
    encoder outputs (padding masked out); without, $c_t = h_{|x|}$ at every step:
    the whole source must pass through one vector of ``hidden_size`` numbers.

    ``forward(src, src_len, tgt_in)``: ``src`` (B, S) int ids padded with 0,
    ``src_len`` (B,) the real lengths, ``tgt_in`` (B, T) the decoder's inputs
    (``<bos>`` + target, teacher forcing) -> logits (B, T, V). The attention
    weights of the last call are kept in ``last_attention`` (B, T, S), a NumPy
    array (None without attention). :meth:`greedy` decodes without a target.
    Parameter names and layouts are those of the PyTorch twin
    ``scratch.models.seq2seq.Seq2Seq``, so either loads the other's state_dict.
    """

    def __init__(
        self,
        src_vocab: int,
        tgt_vocab: int,
        embed_dim: int = 32,
        hidden_size: int = 64,
        attention: bool = True,
        dtype=np.float64,
    ):
        E, H = embed_dim, hidden_size
        self.attention, self.hidden_size = attention, hidden_size
        self.src_embed = nn.Embedding(src_vocab, E, padding_idx=PAD, dtype=dtype)
        self.tgt_embed = nn.Embedding(tgt_vocab, E, padding_idx=PAD, dtype=dtype)
        self.encoder = rnn.GRU(E, H, batch_first=True, dtype=dtype)
        if attention:
            self.attn = AdditiveAttention(H, dtype=dtype)
        self.decoder = rnn.GRUCell(E + H, H, dtype=dtype)
        self.out = nn.Linear(2 * H, tgt_vocab, dtype=dtype)  # on [s_t ; c_t]
        self.last_attention = None

    def encode(self, src, src_len):
        """Encoder outputs (B, S, H), the state at each sequence's last real step
        (B, H), and the mask of real positions (B, S)."""
        src, src_len = np.asarray(_ids(src)), np.asarray(_ids(src_len))
        B, S = src.shape
        if src_len.shape != (B,) or src_len.min() < 1 or src_len.max() > S:
            raise ValueError(
                f"src_len must be (B,) = ({B},) with values in 1..{S}, got "
                f"{src_len.shape} with values {src_len.min()}..{src_len.max()}"
            )
        h, _ = self.encoder(self.src_embed(src))  # (B, S, H)
        # The GRU also ran over the padding; what follows the last real step is
        # ignored, so padding changes nothing.
        h_last = h[np.arange(B), src_len - 1]  # (B, H)
        mask = np.arange(S)[None, :] < src_len[:, None]  # (B, S), True = real
        return h, h_last, mask

    def _memory(self, h, h_last, mask):
        # key(h_j) does not depend on the decoder step t: computed once per sequence,
        # so each step costs one (H, H) product for the query plus O(S H) for the
        # scores. That is what makes Bahdanau's attention affordable.
        keys = self.attn.key(h) if self.attention else None  # (B, S, H)
        return h, keys, h_last, mask

    def _step(self, e, s, memory):
        """One decoder step from the previous word's embedding ``e`` (B, E) and state
        ``s`` (B, H): (new state, [s_t; c_t] (B, 2H), attention weights or None)."""
        h, keys, h_last, mask = memory
        if self.attention:
            c, a = self.attn(s, keys, h, mask)  # (B, H), (B, S)
        else:
            c, a = h_last, None  # the fixed vector, the same at every step
        s = self.decoder(cat([e, c], dim=1), s)  # (B, H)
        return s, cat([s, c], dim=1), a

    def decode(self, h, h_last, mask, tgt_in):
        """Logits (B, T, V) of the teacher-forced decoder on encoder outputs ``h``."""
        memory = self._memory(h, h_last, mask)
        emb = self.tgt_embed(np.asarray(_ids(tgt_in)))  # (B, T, E), all steps at once
        s, features, weights = h_last, [], []
        for t in range(emb.shape[1]):
            s, f, a = self._step(emb[:, t], s, memory)
            features.append(f)
            weights.append(a)
        self.last_attention = (
            np.stack([a.data for a in weights], axis=1) if self.attention else None
        )  # (B, T, S)
        return self.out(stack(features, axis=1))  # (B, T, 2H) -> (B, T, V)

    def forward(self, src, src_len, tgt_in):
        return self.decode(*self.encode(src, src_len), tgt_in)

    @no_grad()
    def greedy(self, src, src_len, max_len: int) -> np.ndarray:
        """Decode by feeding back the likeliest word: ids (B, max_len) int64, each row
        ending with ``<eos>`` and then padding (0), or cut at ``max_len``. Sets
        ``last_attention`` (B, steps, S) as :meth:`forward` does."""
        h, h_last, mask = self.encode(src, src_len)
        memory = self._memory(h, h_last, mask)
        B = h.shape[0]
        y = np.full(B, BOS, dtype=np.int64)
        out = np.full((B, max_len), PAD, dtype=np.int64)
        done = np.zeros(B, dtype=bool)
        s, weights = h_last, []
        for t in range(max_len):
            s, f, a = self._step(self.tgt_embed(y), s, memory)
            weights.append(a)
            y = self.out(f).data.argmax(axis=1)
            out[:, t] = np.where(done, PAD, y)
            done |= y == EOS
            if done.all():
                break
        self.last_attention = (
            np.stack([a.data for a in weights], axis=1) if self.attention else None
        )
        return out

    @staticmethod
    def loss(logits, tgt_out):
        """Mean cross-entropy over the real target positions (padding ignored)."""
        V = logits.shape[-1]
        return F.cross_entropy(
            logits.reshape(-1, V),
            np.asarray(_ids(tgt_out)).reshape(-1),
            ignore_index=PAD,
        )


def _ids(x):
    return x.data if hasattr(x, "data") and not isinstance(x, np.ndarray) else x


class _TeacherForced(nn.Module):
    """``fit_arrays`` hands a model one array: this unpacks [src_len | src | tgt_in]
    and cuts each batch's padding to its own longest sequence."""

    def __init__(self, model: Seq2Seq, src_width: int):
        self.model, self.src_width = model, src_width

    def forward(self, x):
        x = np.asarray(_ids(x))
        src_len, src = x[:, 0], x[:, 1 : 1 + self.src_width]
        tgt_in = x[:, 1 + self.src_width :]
        T = int((tgt_in != PAD).sum(axis=1).max())
        return self.model(src[:, : src_len.max()], src_len, tgt_in[:, :T])


def _packed(arrays: dict) -> tuple[np.ndarray, np.ndarray]:
    x = np.concatenate(
        [arrays["src_len"][:, None], arrays["src"], arrays["tgt_in"]], axis=1
    )
    return x, arrays["tgt_out"]


def fit_seq2seq(
    model: Seq2Seq,
    arrays: dict,
    *,
    epochs: int,
    batch_size: int = 64,
    lr: float = 0.003,
    clip_grad_norm: float = 1.0,
    seed: int = 0,
    callbacks: tuple = (),
    verbose: bool = False,
):
    """Train ``model`` with teacher forcing on ``arrays`` (``Seq2SeqData.arrays``):
    Adam, gradients clipped to ``clip_grad_norm``, the loss of :meth:`Seq2Seq.loss`,
    through :func:`~scratch.engine.loop.fit_arrays`. Returns its History."""
    x, y = _packed(arrays)
    return fit_arrays(
        _TeacherForced(model, arrays["src"].shape[1]),
        optim.Adam(model.parameters(), lr=lr),
        x,
        y,
        epochs=epochs,
        batch_size=batch_size,
        loss_fn=lambda logits, y: Seq2Seq.loss(logits, y[:, : logits.shape[1]]),
        clip_grad_norm=clip_grad_norm,
        seed=seed,
        callbacks=callbacks,
        verbose=verbose,
    )


def exact_match(
    model: Seq2Seq, arrays: dict, batch_size: int = 500
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy-decode every source of ``arrays``; returns (whether each output equals
    its target exactly, up to and including ``<eos>``, (N,) bool; the ids (N, T))."""
    was_training = model.training
    model.eval()
    tgt = arrays["tgt_out"]
    N, T = tgt.shape
    ids = np.zeros((N, T), dtype=np.int64)
    for i in range(0, N, batch_size):
        part = slice(i, i + batch_size)
        src_len = arrays["src_len"][part]
        ids[part] = model.greedy(arrays["src"][part, : src_len.max()], src_len, T)
    model.train(was_training)
    # Outputs are padded with 0 after <eos>, as targets are: equal rows = exact match.
    return (ids == tgt).all(axis=1), ids
