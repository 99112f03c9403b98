r"""The GRU encoder-decoder with additive attention (Bahdanau et al., 2015), in
PyTorch: the baseline the Transformer chapter compares against.

It is the attention chapter's model (``scratch.engine.models.Seq2Seq``, NumPy
engine) in PyTorch, with the same parameter names and layouts, so either loads
the other's ``state_dict`` and computes the same logits (tested in
``tests/test_seq2seq_engine_vs_torch.py``). The encoder reads the source,
$h_j = \mathrm{GRU}(\mathrm{emb}(x_j), h_{j-1})$; the decoder starts from the
last real state, $s_0 = h_{|x|}$, and at each step reads the previous target word
and a context $c_t$,

$$s_t = \mathrm{GRUCell}([\mathrm{emb}(y_{t-1}); c_t], s_{t-1}), \qquad
\text{logits}_t = W_o [s_t; c_t] + b_o,$$

with $c_t = \sum_j a_{tj} h_j$, $a_t = \mathrm{softmax}_j(v^\top \tanh(W s_{t-1}
+ U h_j + b))$ over the real source positions, or, with ``attention=False``, the
fixed vector $c_t = h_{|x|}$ of Cho et al. (2014) and Sutskever et al. (2014).

Chapter: "The Transformer" (book/sequences/transformer.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..config import describe, field, positive
from .spec import ModelSpec

PAD = 0


class AdditiveAttention(nn.Module):
    r"""$e_j = v^\top \tanh(W s + U h_j + b)$, $a = \mathrm{softmax}_j(e)$,
    $c = \sum_j a_j h_j$: ``query`` $= W$ (no bias), ``key`` $= U, b$, ``v``."""

    def __init__(self, hidden_size: int):
        super().__init__()
        H = hidden_size
        self.query = nn.Linear(H, H, bias=False)  # W_a s_{t-1}
        self.key = nn.Linear(H, H, bias=True)  # U_a h_j (+ b)
        self.v = nn.Linear(H, 1, bias=False)  # v_a^T tanh(.)

    def forward(self, s, keys, values, mask):
        """``s`` (B, H); ``keys`` (B, S, H) = ``self.key(values)``, computed once
        per sequence; ``values`` (B, S, H); ``mask`` (B, S) bool, True = real.
        Returns the context (B, H) and the weights (B, S)."""
        scores = self.v(torch.tanh(self.query(s)[:, None] + keys))[..., 0]  # (B, S)
        scores = scores.masked_fill(~mask, float("-inf"))
        weights = scores.softmax(dim=-1)
        context = (weights[:, None] @ values)[:, 0]  # (B, 1, S) @ (B, S, H)
        return context, weights


class Seq2Seq(nn.Module):
    """``forward(src, src_len, tgt_in)``: ``src`` (B, S) int64 padded with 0,
    ``src_len`` (B,) the real lengths, ``tgt_in`` (B, T) (``<bos>`` + target) ->
    logits (B, T, V). The attention weights of the last call are kept in
    ``last_attention`` (B, T, S) (None without attention). Also the interface of
    ``scratch.seq2seq``: :meth:`teacher_forced`, :meth:`encode_source`,
    :meth:`decode_step`."""

    def __init__(
        self,
        src_vocab: int,
        tgt_vocab: int,
        embed_dim: int = 32,
        hidden_size: int = 64,
        attention: bool = True,
    ):
        super().__init__()
        E, H = embed_dim, hidden_size
        self.attention, self.hidden_size = attention, hidden_size
        self.src_embed = nn.Embedding(src_vocab, E, padding_idx=PAD)
        self.tgt_embed = nn.Embedding(tgt_vocab, E, padding_idx=PAD)
        self.encoder = nn.GRU(E, H, batch_first=True)  # unidirectional, 1 layer
        if attention:
            self.attn = AdditiveAttention(H)
        self.decoder = nn.GRUCell(E + H, H)
        self.out = nn.Linear(2 * H, tgt_vocab)  # on [s_t ; c_t]
        self.last_attention = None

    def encode_source(self, src, src_len):
        """Memory for the decoder: encoder outputs h (B, S, H), their keys
        ``attn.key(h)`` (computed once, not per step; None without attention),
        the last real state (B, H) and the mask of real positions (B, S)."""
        B, S = src.shape
        if src_len.shape != (B,) or src_len.min() < 1 or src_len.max() > S:
            raise ValueError(
                f"src_len must be ({B},) with values in 1..{S}, got "
                f"{tuple(src_len.shape)} with values {src_len.min()}..{src_len.max()}"
            )
        h, _ = self.encoder(self.src_embed(src))  # (B, S, H), over padding too
        h_last = h[torch.arange(B, device=src.device), src_len - 1]  # (B, H)
        mask = torch.arange(S, device=src.device)[None] < src_len[:, None]
        keys = self.attn.key(h) if self.attention else None
        return h, keys, h_last, mask

    def _run(self, memory, tgt_in):
        """Teacher-forced decoder over ``tgt_in`` (B, T): logits (B, T, V)."""
        h, keys, h_last, mask = memory
        emb = self.tgt_embed(tgt_in)  # (B, T, E)
        s, features, weights = h_last, [], []
        for t in range(emb.shape[1]):
            if self.attention:
                c, a = self.attn(s, keys, h, mask)  # (B, H), (B, S)
                weights.append(a)
            else:
                c = h_last  # the fixed vector, the same at every step
            s = self.decoder(torch.cat([emb[:, t], c], dim=1), s)  # (B, H)
            features.append(torch.cat([s, c], dim=1))  # (B, 2H)
        self.last_attention = (
            torch.stack(weights, dim=1).detach() if self.attention else None
        )  # (B, T, S)
        return self.out(torch.stack(features, dim=1))  # (B, T, V)

    def forward(self, src, src_len, tgt_in):
        return self._run(self.encode_source(src, src_len), tgt_in)

    def teacher_forced(self, src, src_len, tgt_in):
        return self.forward(src, src_len, tgt_in)

    def decode_step(self, memory, prefix):
        """Log-probabilities (B, V) of the token after ``prefix`` (B, t); the GRU
        reruns over the prefix (outputs here are short)."""
        return self._run(memory, prefix)[:, -1].float().log_softmax(dim=-1)


@dataclass
class Seq2SeqSpec(ModelSpec):
    """The attention GRU's architecture (the attention chapter's defaults)."""

    src_vocab: int = field(default=13, metadata=positive("source tokens (from data)"))
    tgt_vocab: int = field(default=35, metadata=positive("target tokens (from data)"))
    embed_dim: int = field(default=32, metadata=positive("embedding width"))
    hidden_size: int = field(default=64, metadata=positive("GRU state width"))
    attention: bool = field(
        default=True,
        metadata=describe("additive attention; false: the fixed-vector bottleneck"),
    )

    def build(self, **stats) -> Seq2Seq:
        return Seq2Seq(
            self.src_vocab,
            self.tgt_vocab,
            embed_dim=self.embed_dim,
            hidden_size=self.hidden_size,
            attention=self.attention,
        )
