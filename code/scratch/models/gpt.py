r"""GPT (Radford et al., 2018, 2019): a decoder-only Transformer language model.

Built from ``torch.nn`` layers (no ``nn.Transformer*``), with GPT-2's names so
that its checkpoints map onto it one to one (``wte``, ``wpe``, ``h.0.ln_1``,
``h.0.attn.c_attn``, ``h.0.mlp.c_fc``, ``ln_f``, ``lm_head``):

- :class:`CausalSelfAttention`: one ``c_attn`` projection to queries, keys and
  values of every head, the attention core with a causal mask, ``c_proj``. The
  core is written out (:func:`scratch.models.transformer.attention`) or runs
  through ``F.scaled_dot_product_attention`` (``fused``; the tests check that
  the two agree);
- :class:`MLP`: $\mathrm{GELU}(x W_{fc} + b_{fc}) W_{proj} + b_{proj}$, 4x wide;
- :class:`Block`: pre-norm, $x \leftarrow x + \mathrm{attn}(\mathrm{LN}(x))$,
  $x \leftarrow x + \mathrm{mlp}(\mathrm{LN}(x))$ (GPT-2's change from GPT-1's
  post-norm);
- :class:`GPT`: token and learned position embeddings, the blocks, a final layer
  norm and the output layer, tied to the token embedding; GPT-2's
  initialization, $\mathcal{N}(0, 0.02^2)$ and $0.02 / \sqrt{2 L}$ on the
  projections that write into the residual stream;
- :class:`KVCache` and :class:`NextLogits`: generation that keeps every layer's
  keys and values, so that each new token costs one position's work; a
  ``next_logits`` for :func:`scratch.text.sample`;
- :class:`GPTSpec` and :data:`GPT2_124M`, GPT-2 small, whose 124,439,808
  parameters the tests check.

Chapter: "GPT: a Transformer language model" (book/sequences/gpt.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..config import ConfigError, describe, field, in_range, positive
from .spec import ModelSpec
from .transformer import attention

# GPT-2 small (Radford et al., 2019, Table 2: 117M as printed; 124M as released):
# the configuration of the released checkpoint `gpt2`.
GPT2_124M = dict(
    vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768, bias=True
)
# Its parameters with the output layer tied to the token embedding, as released
# (Hugging Face's GPT2LMHeadModel counts the same), and without the tying.
GPT2_124M_PARAMETERS = 124_439_808
GPT2_124M_UNTIED_PARAMETERS = GPT2_124M_PARAMETERS + 50257 * 768
# nanoGPT's character-level Shakespeare run (config/train_shakespeare_char.py):
NANOGPT_SHAKESPEARE_CHAR = dict(
    block_size=256, n_layer=6, n_head=6, n_embd=384, dropout=0.2, bias=False
)
NANOGPT_SHAKESPEARE_CHAR_VAL_LOSS = 1.4697  # README: best val loss, ~3 min on an A100
NANOGPT_CPU_VAL_LOSS = 1.88  # README: 4 layers, 128 wide, block 64, 2,000 iters


# ---- attention --------------------------------------------------------------------
def causal_mask(queries: int, keys: int, device=None) -> torch.Tensor:
    """(queries, keys) bool, True = may not attend: the queries are the last
    ``queries`` of ``keys`` positions, so query ``t`` reads keys ``<= keys -
    queries + t`` (a square lower triangle without a cache)."""
    ones = torch.ones(queries, keys, dtype=torch.bool, device=device)
    return ones.triu(keys - queries + 1)


class CausalSelfAttention(nn.Module):
    r"""Masked multi-head self-attention, GPT-2's ``attn`` module.

    ``c_attn`` maps $d$ to $3d$ (queries, keys and values of all $h$ heads at
    once), each head attends with $d_k = d / h$, and ``c_proj`` mixes the
    concatenated heads. ``fused`` picks the attention core: True,
    ``F.scaled_dot_product_attention`` (one kernel, no (T, T) matrix kept for
    the backward pass where a flash kernel exists); False, the written-out
    softmax of eq. (1) of the Transformer chapter.
    """

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0, bias=True):
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"n_embd {n_embd} is not divisible by n_head {n_head}")
        self.n_head, self.dropout = n_head, dropout
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.resid_dropout = nn.Dropout(dropout)
        self.fused = True

    def forward(self, x: torch.Tensor, cache: list | None = None) -> torch.Tensor:
        """``x`` (B, T, d) -> (B, T, d). With ``cache``, a list ``[k, v]`` of the
        earlier positions' keys and values (B, h, S, d_k) or ``[None, None]``,
        the new ones are appended to it and the queries read all of them."""
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)  # 3 x (B, T, d)
        # (B, T, d) -> (B, h, T, d_k): each head a separate attention
        q, k, v = (
            t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
            for t in (q, k, v)
        )
        if cache is not None:
            if cache[0] is not None:
                k = torch.cat([cache[0], k], dim=2)  # (B, h, S + T, d_k)
                v = torch.cat([cache[1], v], dim=2)
            cache[0], cache[1] = k, v
        S = k.shape[2]
        p = self.dropout if self.training else 0.0
        if self.fused:
            if S == T:  # no earlier positions: the kernel builds the mask itself
                y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
            else:  # its boolean mask means the opposite: True = may attend
                mask = ~causal_mask(T, S, x.device)
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        else:
            y, _ = attention(q, k, v, causal_mask(T, S, x.device), p, self.training)
        y = y.transpose(1, 2).reshape(B, T, C)  # concatenate the heads: (B, T, d)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    """The position-wise network: d -> 4d, GELU (GPT-2's tanh form), 4d -> d."""

    def __init__(self, n_embd: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        self.c_fc = nn.Linear(n_embd, 4 * n_embd, bias=bias)
        self.gelu = nn.GELU(approximate="tanh")
        self.c_proj = nn.Linear(4 * n_embd, n_embd, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """A pre-norm Transformer block: the residual stream ``x`` is only ever added
    to, and each sublayer reads a normalised copy of it."""

    def __init__(self, n_embd: int, n_head: int, dropout=0.0, bias=True):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd, bias=bias)
        self.attn = CausalSelfAttention(n_embd, n_head, dropout, bias)
        self.ln_2 = nn.LayerNorm(n_embd, bias=bias)
        self.mlp = MLP(n_embd, dropout, bias)

    def forward(self, x, cache=None):
        x = x + self.attn(self.ln_1(x), cache)
        return x + self.mlp(self.ln_2(x))


# ---- the model --------------------------------------------------------------------
class KVCache:
    """Every layer's keys and values of the positions seen so far: one list
    ``[k, v]`` per layer, each (B, h, S, d_k)."""

    def __init__(self, n_layer: int):
        self.layers = [[None, None] for _ in range(n_layer)]

    def __len__(self) -> int:
        """Positions held (S)."""
        k = self.layers[0][0]
        return 0 if k is None else k.shape[2]


class GPT(nn.Module):
    r"""GPT-2's architecture: token ids (B, T) -> next-token logits (B, T, V).

    $h_0 = W_{te}[x] + W_{pe}[0..T-1]$, then ``n_layer`` pre-norm blocks, a final
    layer norm, and logits $\mathrm{LN}(h_L) W_{te}^\top$ when ``tie_weights``
    (the output layer *is* the token embedding: one $V \times d$ matrix, used
    twice). Position $t$'s logits depend on tokens $0..t$ only.
    """

    def __init__(
        self,
        vocab_size: int,
        block_size: int = 1024,
        n_layer: int = 12,
        n_head: int = 12,
        n_embd: int = 768,
        dropout: float = 0.0,
        bias: bool = True,
        tie_weights: bool = True,
    ):
        super().__init__()
        self.block_size, self.n_layer = block_size, n_layer
        self.wte = nn.Embedding(vocab_size, n_embd)  # token embedding
        self.wpe = nn.Embedding(block_size, n_embd)  # learned positions
        self.drop = nn.Dropout(dropout)
        self.h = nn.ModuleList(
            Block(n_embd, n_head, dropout, bias) for _ in range(n_layer)
        )
        self.ln_f = nn.LayerNorm(n_embd, bias=bias)
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        if tie_weights:
            self.lm_head.weight = self.wte.weight
        self.apply(self._init_weights)
        # GPT-2 (Section 2.3): "scale the weights of residual layers at
        # initialization by a factor of 1/sqrt(N)", N the residual layers (two
        # per block): each adds a term to the stream, whose variance would grow
        # with depth.
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * n_layer))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, 0.0, 0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def set_fused(self, fused: bool) -> GPT:
        """Use ``F.scaled_dot_product_attention`` (True) or the written-out core."""
        for block in self.h:
            block.attn.fused = fused
        return self

    def forward(self, idx: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """``idx`` (B, T) -> logits (B, T, V). With a ``cache`` the tokens continue
        the ones it holds (their positions start after them) and are added to it."""
        start = 0 if cache is None else len(cache)
        T = idx.shape[1]
        if start + T > self.block_size:
            raise ValueError(
                f"{start + T} positions, but the model has {self.block_size}: "
                "crop the input"
            )
        pos = torch.arange(start, start + T, device=idx.device)  # (T,)
        x = self.drop(self.wte(idx) + self.wpe(pos))  # (B, T, d)
        for i, block in enumerate(self.h):
            x = block(x, None if cache is None else cache.layers[i])
        return self.lm_head(self.ln_f(x))  # (B, T, V)


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of every position's prediction: logits (B, T, V),
    targets (B, T), in nats per token."""
    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())


class NextLogits:
    """``next_logits`` for :func:`scratch.text.sample`: the logits (B, V) of the
    token after ``ids`` (B, t), in eval mode, without gradients.

    With ``use_cache`` it keeps a :class:`KVCache`: when ``ids`` is the previous
    call's ids plus one token, only that token is run through the model (its
    query reads the cached keys and values); otherwise (a new prompt, or more
    than ``block_size`` tokens, where the window slides and every position
    changes) it starts over from the last ``block_size`` tokens. Without the
    cache every call runs the whole window, nanoGPT's ``generate``.
    """

    def __init__(self, model: GPT, use_cache: bool = True):
        self.model, self.use_cache = model, use_cache
        self.device = next(model.parameters()).device
        self.cache, self.seen = None, None
        self.positions = 0  # positions run through the model, all calls together

    @torch.no_grad()
    def __call__(self, ids) -> np.ndarray:
        ids = torch.as_tensor(np.asarray(ids), dtype=torch.long, device=self.device)
        was_training = self.model.training
        self.model.eval()
        window = ids[:, -self.model.block_size :]  # (B, <= block_size)
        grows = (
            self.use_cache
            and self.seen is not None
            and ids.shape[1] <= self.model.block_size
            and ids.shape[:1] == self.seen.shape[:1]
            and ids.shape[1] == self.seen.shape[1] + 1
            and torch.equal(ids[:, :-1], self.seen)
        )
        if grows:
            new = ids[:, -1:]  # (B, 1): the one token the cache lacks
        else:
            self.cache = KVCache(self.model.n_layer) if self.use_cache else None
            new = window
        logits = self.model(new, self.cache)[:, -1]  # (B, V)
        self.positions += new.numel()
        self.seen = ids if self.use_cache else None
        self.model.train(was_training)
        return logits.float().cpu().numpy()


# ---- the spec ---------------------------------------------------------------------
@dataclass
class GPTSpec(ModelSpec):
    """GPT's architecture. The defaults are GPT-2 small (:data:`GPT2_124M`); a
    chapter sets the vocabulary from its tokenizer."""

    vocab_size: int = field(
        default=50257,
        metadata=positive("tokens (GPT-2's 50,257; the chapter sets it from its data)"),
    )
    block_size: int = field(
        default=1024, metadata=positive("context length: positions the model has")
    )
    n_layer: int = field(
        default=12, metadata=positive("Transformer blocks (GPT-2 small: 12)")
    )
    n_head: int = field(default=12, metadata=positive("attention heads (12)"))
    n_embd: int = field(
        default=768, metadata=positive("width of the residual stream (768)")
    )
    dropout: float = field(
        default=0.0,
        metadata=in_range(
            0, 1, "on embeddings, attention outputs and MLP outputs", high_open=True
        ),
    )
    bias: bool = field(
        default=True,
        metadata=describe(
            "biases in the linear layers and layer norms (GPT-2: yes; nanoGPT's "
            "runs: no, a little faster and as good)"
        ),
    )
    tie_weights: bool = field(
        default=True,
        metadata=describe("the output layer is the token embedding (GPT-2: tied)"),
    )

    def validate(self):
        if self.n_embd % self.n_head:
            raise ConfigError(
                f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}"
            )

    def build(self, **stats) -> GPT:
        return GPT(
            self.vocab_size,
            block_size=self.block_size,
            n_layer=self.n_layer,
            n_head=self.n_head,
            n_embd=self.n_embd,
            dropout=self.dropout,
            bias=self.bias,
            tie_weights=self.tie_weights,
        )
