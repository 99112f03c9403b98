r"""The Transformer (Vaswani et al., 2017) from ``torch.nn`` layers.

Built without ``nn.Transformer*`` and ``nn.MultiheadAttention``: multi-head
attention is four ``nn.Linear`` projections around the attention core

$$\mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\left(\frac{Q K^\top}{\sqrt{d_k}}
+ M\right) V,$$

where the mask $M$ is $-\infty$ at the pairs a query may not read (padding, the
future) and 0 elsewhere. The core is written out in :func:`attention` and, when
the weights are not needed, runs through ``F.scaled_dot_product_attention`` (the
tests check the two agree, masks included).

Masks are boolean and follow ``nn.Transformer``'s convention: **True means
"may not attend"** (:func:`causal_mask`, :func:`padding_mask`).

The pieces, with PyTorch's names where PyTorch has the same piece:
:class:`MultiHeadAttention`, :class:`PositionalEncoding` (sinusoidal),
:class:`EncoderLayer` / :class:`DecoderLayer` (``norm_first``: pre-norm or the
paper's post-norm), :class:`Encoder`, :class:`Decoder` and the encoder-decoder
:class:`Transformer`, built from a :class:`TransformerSpec`, and the paper's
learning-rate schedule, :func:`noam_lambda`. Later chapters (GPT, text
classification) reuse the pieces.

Chapter: "The Transformer" (book/sequences/transformer.md).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..config import ConfigError, choice, describe, field, in_range, positive
from .spec import ModelSpec

PAD = 0  # the padding id of scratch.text.Seq2SeqData, on both sides

# The paper's base model (Table 3, row "base"): d_model 512, 6 + 6 layers, 8 heads,
# d_ff 2048, dropout 0.1, on a shared source-target vocabulary of about 37,000 BPE
# tokens (Section 5.1) with the embeddings and the pre-softmax projection tied
# (Section 3.4). Table 3 gives its size as 65 (x 10^6) parameters.
PAPER_BASE = dict(
    d_model=512,
    nhead=8,
    num_encoder_layers=6,
    num_decoder_layers=6,
    dim_feedforward=2048,
    dropout=0.1,
)
PAPER_BASE_VOCAB = 37_000
PAPER_BASE_PARAMETERS = 65e6  # Table 3, "params x 10^6" of the base model


# ---- masks -------------------------------------------------------------------------
def causal_mask(size: int, device=None) -> torch.Tensor:
    """(size, size) bool, True above the diagonal: query t may not read keys > t."""
    return torch.ones(size, size, dtype=torch.bool, device=device).triu(1)


def padding_mask(tokens: torch.Tensor, pad_id: int = PAD) -> torch.Tensor:
    """(B, S) bool, True where ``tokens`` is padding: keys no query may read."""
    return tokens == pad_id


def lengths_mask(lengths: torch.Tensor, size: int) -> torch.Tensor:
    """(B, size) bool, True at positions >= the sequence's length (padding)."""
    return torch.arange(size, device=lengths.device)[None, :] >= lengths[:, None]


def merge_masks(
    attn_mask: torch.Tensor | None, key_padding_mask: torch.Tensor | None
) -> torch.Tensor | None:
    """One boolean mask broadcastable to the scores (B, heads, T, S): a pair is
    blocked if either mask blocks it. ``attn_mask`` is (T, S) or (B, T, S),
    ``key_padding_mask`` (B, S)."""
    mask = None
    if attn_mask is not None:
        if attn_mask.dtype != torch.bool:
            raise TypeError("attn_mask must be boolean (True = may not attend)")
        mask = attn_mask if attn_mask.dim() == 2 else attn_mask[:, None]
    if key_padding_mask is not None:
        if key_padding_mask.dtype != torch.bool:
            raise TypeError("key_padding_mask must be boolean (True = padding)")
        pad = key_padding_mask[:, None, None, :]  # (B, 1, 1, S)
        mask = pad if mask is None else mask | pad
    return mask


# ---- attention ---------------------------------------------------------------------
def attention(q, k, v, mask=None, dropout_p: float = 0.0, training: bool = False):
    r"""The written-out attention core: $\mathrm{softmax}(QK^\top/\sqrt{d_k} + M)V$.

    ``q`` (..., T, d_k), ``k`` (..., S, d_k), ``v`` (..., S, d_v); ``mask`` bool,
    broadcastable to (..., T, S), True = blocked. Returns the output (..., T, d_v)
    and the weights (..., T, S) (after dropout, as they were used). A query whose
    every key is blocked gets NaN, as in PyTorch: the callers never build one.
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., T, S)
    if mask is not None:
        scores = scores.masked_fill(mask, float("-inf"))  # e^-inf = 0 weight
    weights = scores.softmax(dim=-1)
    if dropout_p and training:
        weights = F.dropout(weights, dropout_p)
    return weights @ v, weights


class MultiHeadAttention(nn.Module):
    r"""$\mathrm{MultiHead}(Q, K, V) = \mathrm{Concat}(\mathrm{head}_1, \dots,
    \mathrm{head}_h) W^O$ with $\mathrm{head}_i = \mathrm{Attention}(Q W_i^Q,
    K W_i^K, V W_i^V)$ and $d_k = d_v = d_\text{model} / h$.

    The $h$ projections of each kind are one ``nn.Linear`` (``q_proj``,
    ``k_proj``, ``v_proj``: $d_\text{model} \to d_\text{model}$, then split into
    heads), followed by ``out_proj``; $4 (d_\text{model}^2 + d_\text{model})$
    parameters. Set ``keep_weights = True`` (or use :func:`keep_attention`) to
    store the weights of the last call in ``last_weights`` (B, h, T, S).
    """

    def __init__(
        self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True
    ):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(
                f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}"
            )
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout = dropout
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.k_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.v_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.keep_weights = False
        self.last_weights = None

    def _heads(self, x):  # (B, T, d_model) -> (B, h, T, d_k)
        B, T, _ = x.shape
        return x.view(B, T, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``query`` (B, T, d_model), ``key`` and ``value`` (B, S, d_model);
        ``key_padding_mask`` (B, S) and ``attn_mask`` (T, S) or (B, T, S), bool,
        True = may not attend. Returns (B, T, d_model)."""
        q = self._heads(self.q_proj(query))  # (B, h, T, d_k)
        k = self._heads(self.k_proj(key))  # (B, h, S, d_k)
        v = self._heads(self.v_proj(value))  # (B, h, S, d_k)
        mask = merge_masks(attn_mask, key_padding_mask)  # (B or 1, 1, T, S) or None
        p = self.dropout if self.training else 0.0
        if self.keep_weights:
            out, w = attention(q, k, v, mask, p, self.training)
            self.last_weights = w.detach()
        else:
            # The fused kernel computes the same (tested); its boolean mask means
            # the opposite: True = may attend.
            out = F.scaled_dot_product_attention(
                q, k, v, attn_mask=None if mask is None else ~mask, dropout_p=p
            )
        B, _, T, _ = out.shape
        out = out.transpose(1, 2).reshape(B, T, self.embed_dim)  # concatenate heads
        return self.out_proj(out)


@contextlib.contextmanager
def keep_attention(model: nn.Module):
    """Within the block every :class:`MultiHeadAttention` of ``model`` keeps its
    weights in ``last_weights`` (the written-out core is used)."""
    layers = [m for m in model.modules() if isinstance(m, MultiHeadAttention)]
    for m in layers:
        m.keep_weights = True
    try:
        yield layers
    finally:
        for m in layers:
            m.keep_weights = False


# ---- positions ---------------------------------------------------------------------
def sinusoids(max_len: int, d_model: int) -> torch.Tensor:
    r"""(max_len, d_model): $PE_{(pos, 2i)} = \sin(pos / 10000^{2i/d})$,
    $PE_{(pos, 2i+1)} = \cos(pos / 10000^{2i/d})$."""
    if d_model % 2:
        raise ValueError(f"sinusoidal positions need an even d_model, got {d_model}")
    pos = torch.arange(max_len, dtype=torch.float64)[:, None]  # (L, 1)
    inv = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    pe = torch.zeros(max_len, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(pos * inv)
    pe[:, 1::2] = torch.cos(pos * inv)
    return pe.float()


class PositionalEncoding(nn.Module):
    """Adds the sinusoids of :func:`sinusoids` to (B, T, d_model) inputs, then
    dropout (the paper's $P_{drop}$ on the sums). No parameters: ``pe`` is a
    buffer left out of the ``state_dict``."""

    def __init__(self, d_model: int, dropout: float = 0.0, max_len: int = 512):
        super().__init__()
        self.register_buffer("pe", sinusoids(max_len, d_model), persistent=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T = x.shape[1]
        if T > len(self.pe):
            raise ValueError(f"sequence of {T} positions, max_len is {len(self.pe)}")
        return self.dropout(x + self.pe[:T])


# ---- layers ------------------------------------------------------------------------
class EncoderLayer(nn.Module):
    r"""Self-attention, then a position-wise feed-forward network
    $\max(0, xW_1 + b_1)W_2 + b_2$, each wrapped in a residual connection with
    dropout and layer normalisation.

    Post-norm (the paper's, ``norm_first=False``): $x \leftarrow
    \mathrm{LN}(x + \mathrm{Sublayer}(x))$. Pre-norm (``norm_first=True``):
    $x \leftarrow x + \mathrm{Sublayer}(\mathrm{LN}(x))$, which leaves an
    identity path from input to output. Names as ``nn.TransformerEncoderLayer``.
    """

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        norm_first: bool = False,
    ):
        super().__init__()
        self.norm_first = norm_first
        self.self_attn = MultiHeadAttention(d_model, nhead, dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)  # inside the feed-forward network
        self.dropout1, self.dropout2 = nn.Dropout(dropout), nn.Dropout(dropout)

    def _sa(self, x, attn_mask, key_padding_mask):
        x = self.self_attn(x, x, x, key_padding_mask, attn_mask)
        return self.dropout1(x)

    def _ff(self, x):
        return self.dropout2(self.linear2(self.dropout(F.relu(self.linear1(x)))))

    def forward(self, x, src_mask=None, src_key_padding_mask=None):
        """``x`` (B, S, d_model) -> (B, S, d_model); ``src_mask`` (S, S) bool (a
        causal mask makes this a GPT block), ``src_key_padding_mask`` (B, S)."""
        if self.norm_first:
            x = x + self._sa(self.norm1(x), src_mask, src_key_padding_mask)
            return x + self._ff(self.norm2(x))
        x = self.norm1(x + self._sa(x, src_mask, src_key_padding_mask))
        return self.norm2(x + self._ff(x))


class DecoderLayer(nn.Module):
    """Masked self-attention over the target, attention over the encoder's output
    (``multihead_attn``: queries from the decoder, keys and values from the
    memory), then the feed-forward network; residuals, dropout and layer norms as
    in :class:`EncoderLayer`. Names as ``nn.TransformerDecoderLayer``."""

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        norm_first: bool = False,
    ):
        super().__init__()
        self.norm_first = norm_first
        self.self_attn = MultiHeadAttention(d_model, nhead, dropout)
        self.multihead_attn = MultiHeadAttention(d_model, nhead, dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

    def _sa(self, x, mask, pad):
        return self.dropout1(self.self_attn(x, x, x, pad, mask))

    def _mha(self, x, memory, pad):
        return self.dropout2(self.multihead_attn(x, memory, memory, pad))

    def _ff(self, x):
        return self.dropout3(self.linear2(self.dropout(F.relu(self.linear1(x)))))

    def forward(
        self,
        x,
        memory,
        tgt_mask=None,
        tgt_key_padding_mask=None,
        memory_key_padding_mask=None,
    ):
        """``x`` (B, T, d_model), ``memory`` (B, S, d_model) -> (B, T, d_model)."""
        if self.norm_first:
            x = x + self._sa(self.norm1(x), tgt_mask, tgt_key_padding_mask)
            x = x + self._mha(self.norm2(x), memory, memory_key_padding_mask)
            return x + self._ff(self.norm3(x))
        x = self.norm1(x + self._sa(x, tgt_mask, tgt_key_padding_mask))
        x = self.norm2(x + self._mha(x, memory, memory_key_padding_mask))
        return self.norm3(x + self._ff(x))


class Encoder(nn.Module):
    """``num_layers`` encoder layers; pre-norm stacks end with a final layer norm
    (``norm``), since their layers' outputs are not normalised."""

    def __init__(self, num_layers: int, norm_first: bool = False, **layer):
        super().__init__()
        self.layers = nn.ModuleList(
            EncoderLayer(norm_first=norm_first, **layer) for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(layer["d_model"]) if norm_first else None

    def forward(self, x, mask=None, src_key_padding_mask=None):
        for layer in self.layers:
            x = layer(x, mask, src_key_padding_mask)
        return x if self.norm is None else self.norm(x)


class Decoder(nn.Module):
    """``num_layers`` decoder layers (and a final norm when pre-norm)."""

    def __init__(self, num_layers: int, norm_first: bool = False, **layer):
        super().__init__()
        self.layers = nn.ModuleList(
            DecoderLayer(norm_first=norm_first, **layer) for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(layer["d_model"]) if norm_first else None

    def forward(
        self,
        x,
        memory,
        tgt_mask=None,
        tgt_key_padding_mask=None,
        memory_key_padding_mask=None,
    ):
        for layer in self.layers:
            x = layer(
                x, memory, tgt_mask, tgt_key_padding_mask, memory_key_padding_mask
            )
        return x if self.norm is None else self.norm(x)


# ---- the encoder-decoder -----------------------------------------------------------
class Transformer(nn.Module):
    r"""The encoder-decoder Transformer, token ids in, next-token logits out.

    Embeddings are multiplied by $\sqrt{d_\text{model}}$ (Section 3.4) before the
    positions are added. ``share_embeddings`` uses one table for both sides (then
    ``src_vocab`` must equal ``tgt_vocab``: a joint vocabulary); ``tie_output``
    makes the pre-softmax projection ``out`` use the target embedding's weights,
    as in the paper (it keeps its own bias).

    - :meth:`encode` (src, src_key_padding_mask) -> memory (B, S, d_model)
    - :meth:`decode` (tgt, memory, ...) -> logits (B, T, tgt_vocab), causal
    - :meth:`forward` (src, tgt_in) -> logits, padding masks from ``pad_id``

    and the interface of ``scratch.seq2seq`` (lengths instead of masks):
    :meth:`teacher_forced`, :meth:`encode_source`, :meth:`decode_step`.
    """

    def __init__(
        self,
        src_vocab: int,
        tgt_vocab: int,
        d_model: int = 512,
        nhead: int = 8,
        num_encoder_layers: int = 6,
        num_decoder_layers: int = 6,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        norm_first: bool = False,
        share_embeddings: bool = False,
        tie_output: bool = True,
        max_len: int = 512,
        pad_id: int = PAD,
    ):
        super().__init__()
        if share_embeddings and src_vocab != tgt_vocab:
            raise ValueError(
                f"share_embeddings needs one vocabulary, got {src_vocab} source and "
                f"{tgt_vocab} target tokens"
            )
        self.d_model, self.pad_id = d_model, pad_id
        self.src_embed = nn.Embedding(src_vocab, d_model, padding_idx=pad_id)
        self.tgt_embed = (
            self.src_embed
            if share_embeddings
            else nn.Embedding(tgt_vocab, d_model, padding_idx=pad_id)
        )
        self.pos = PositionalEncoding(d_model, dropout, max_len)
        layer = dict(
            d_model=d_model,
            nhead=nhead,
            dim_feedforward=dim_feedforward,
            dropout=dropout,
        )
        self.encoder = Encoder(num_encoder_layers, norm_first, **layer)
        self.decoder = Decoder(num_decoder_layers, norm_first, **layer)
        self.out = nn.Linear(d_model, tgt_vocab)
        self._reset_parameters()
        if tie_output:
            self.out.weight = self.tgt_embed.weight

    def _reset_parameters(self):
        # Glorot-uniform matrices (as the Annotated Transformer); embeddings
        # N(0, 1/d_model), so that sqrt(d_model) * embedding has unit variance and,
        # tied, the output logits start small; zero biases; LayerNorm (1, 0).
        for name, p in self.named_parameters():
            if "embed" in name:
                nn.init.normal_(p, 0.0, self.d_model**-0.5)
                with torch.no_grad():
                    p[self.pad_id] = 0
            elif p.dim() > 1:
                nn.init.xavier_uniform_(p)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def embed(self, table: nn.Embedding, tokens: torch.Tensor) -> torch.Tensor:
        return self.pos(table(tokens) * math.sqrt(self.d_model))  # (B, T, d_model)

    def encode(self, src, src_key_padding_mask=None):
        """``src`` (B, S) ids -> memory (B, S, d_model)."""
        return self.encoder(
            self.embed(self.src_embed, src), src_key_padding_mask=src_key_padding_mask
        )

    def decode(
        self,
        tgt,
        memory,
        tgt_mask=None,
        tgt_key_padding_mask=None,
        memory_key_padding_mask=None,
    ):
        """``tgt`` (B, T) ids (``<bos>`` first) -> logits (B, T, tgt_vocab); the
        causal mask is the default ``tgt_mask``."""
        if tgt_mask is None:
            tgt_mask = causal_mask(tgt.shape[1], device=tgt.device)
        h = self.decoder(
            self.embed(self.tgt_embed, tgt),
            memory,
            tgt_mask,
            tgt_key_padding_mask,
            memory_key_padding_mask,
        )
        return self.out(h)

    def forward(self, src, tgt, src_key_padding_mask=None, tgt_key_padding_mask=None):
        """Teacher-forced logits (B, T, tgt_vocab); masks default to ``== pad_id``."""
        if src_key_padding_mask is None:
            src_key_padding_mask = padding_mask(src, self.pad_id)
        if tgt_key_padding_mask is None:
            tgt_key_padding_mask = padding_mask(tgt, self.pad_id)
        memory = self.encode(src, src_key_padding_mask)
        return self.decode(
            tgt,
            memory,
            tgt_key_padding_mask=tgt_key_padding_mask,
            memory_key_padding_mask=src_key_padding_mask,
        )

    # ---- the interface of scratch.seq2seq ---------------------------------------
    def teacher_forced(self, src, src_len, tgt_in):
        """Logits (B, T, V) of ``tgt_in`` given ``src`` padded past ``src_len``."""
        pad = lengths_mask(src_len, src.shape[1])
        return self.forward(src, tgt_in, src_key_padding_mask=pad)

    def encode_source(self, src, src_len):
        """Memory for :meth:`decode_step`: (encoder output, its padding mask)."""
        pad = lengths_mask(src_len, src.shape[1])
        return self.encode(src, pad), pad

    def decode_step(self, memory, prefix):
        """Log-probabilities (B, V) of the token after ``prefix`` (B, t). The whole
        prefix is decoded again (no key-value cache: short outputs here)."""
        h, pad = memory
        logits = self.decode(prefix, h, memory_key_padding_mask=pad)
        return logits[:, -1].float().log_softmax(dim=-1)


# ---- the spec ----------------------------------------------------------------------
@dataclass
class TransformerSpec(ModelSpec):
    """The encoder-decoder's architecture. The defaults are the paper's base model
    on its shared 37,000-token vocabulary (Table 3); a chapter sets the vocabulary
    sizes from its data."""

    src_vocab: int = field(
        default=PAPER_BASE_VOCAB,
        metadata=positive("source tokens (the chapter sets it from its data)"),
    )
    tgt_vocab: int = field(
        default=PAPER_BASE_VOCAB,
        metadata=positive("target tokens (the chapter sets it from its data)"),
    )
    d_model: int = field(
        default=512, metadata=positive("width of every position's vector (paper 512)")
    )
    nhead: int = field(
        default=8, metadata=positive("attention heads; d_model / nhead each (8)")
    )
    num_encoder_layers: int = field(default=6, metadata=positive("paper: 6"))
    num_decoder_layers: int = field(default=6, metadata=positive("paper: 6"))
    dim_feedforward: int = field(
        default=2048, metadata=positive("hidden width of the feed-forward nets (2048)")
    )
    dropout: float = field(
        default=0.1,
        metadata=in_range(0, 1, "the paper's P_drop", high_open=True),
    )
    norm: str = field(
        default="post",
        metadata=choice(
            "post",
            "pre",
            help="post: LN(x + f(x)), the paper's; pre: x + f(LN(x)), which "
            "trains without warmup",
        ),
    )
    share_embeddings: bool = field(
        default=True,
        metadata=describe("one embedding table for both sides (a joint vocabulary)"),
    )
    tie_output: bool = field(
        default=True,
        metadata=describe("the output projection reuses the target embedding"),
    )
    max_len: int = field(
        default=512, metadata=positive("longest sequence the positions cover")
    )

    def validate(self):
        if self.d_model % self.nhead:
            raise ConfigError(
                f"d_model={self.d_model} is not divisible by nhead={self.nhead}"
            )
        if self.d_model % 2:
            raise ConfigError(f"d_model={self.d_model} must be even (sinusoids)")
        if self.share_embeddings and self.src_vocab != self.tgt_vocab:
            raise ConfigError(
                f"share_embeddings needs src_vocab == tgt_vocab, got "
                f"{self.src_vocab} and {self.tgt_vocab}"
            )

    def build(self, **stats) -> Transformer:
        return Transformer(
            self.src_vocab,
            self.tgt_vocab,
            d_model=self.d_model,
            nhead=self.nhead,
            num_encoder_layers=self.num_encoder_layers,
            num_decoder_layers=self.num_decoder_layers,
            dim_feedforward=self.dim_feedforward,
            dropout=self.dropout,
            norm_first=self.norm == "pre",
            share_embeddings=self.share_embeddings,
            tie_output=self.tie_output,
            max_len=self.max_len,
        )


def noam_lambda(d_model: int, warmup: int):
    r"""The paper's schedule (Eq. 3) as a ``LambdaLR`` factor of a base rate of 1:
    $\mathrm{lr}(s) = d_\text{model}^{-0.5} \min(s^{-0.5}, s \cdot
    \mathrm{warmup}^{-1.5})$ at optimizer step $s = 1, 2, \dots$: a linear rise
    for ``warmup`` steps, then a decay as $1/\sqrt{s}$. ``LambdaLR`` calls the
    factor with 0 for the first step, hence ``s = step + 1``."""
    if warmup < 1:
        raise ValueError(f"warmup must be >= 1 step, got {warmup}")

    def factor(step: int) -> float:
        s = step + 1  # LambdaLR's first optimizer step is its step 0
        return d_model**-0.5 * min(s**-0.5, s * warmup**-1.5)

    return factor
