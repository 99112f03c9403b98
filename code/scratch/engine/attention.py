r"""Multi-head attention for the NumPy engine, as ``torch.nn.MultiheadAttention``.

Same arguments, parameter names and layout as PyTorch, so
``load_state_dict(torch_module.state_dict())`` works and outputs, attention
weights and gradients match (float64, ``tests/engine/test_attention.py``):

- ``in_proj_weight`` (3E, E): the query, key and value projections stacked in
  that order, ``in_proj_bias`` (3E,); ``out_proj`` a :class:`~.nn.Linear` (E, E);
- inputs (L, N, E), or (N, L, E) with ``batch_first``, or (L, E) unbatched;
- ``forward(query, key, value, key_padding_mask=None, need_weights=True,
  attn_mask=None, average_attn_weights=True)`` returns ``(output, weights)``,
  the weights averaged over heads (N, L, S) or per head (N, heads, L, S).

Its masks are PyTorch's too, and the *opposite* of
``F.scaled_dot_product_attention``'s boolean masks: here True means "may NOT
attend" (``key_padding_mask`` (N, S) marks padding keys, ``attn_mask`` (L, S) or
(N·heads, L, S) forbidden pairs); a float mask is added to the scores in both.
A query allowed no key gets a zero output, as from the function (PyTorch's
module gives NaN there).

Each head $i$ attends in its own subspace of size $d = E / h$:

$$\mathrm{head}_i = \mathrm{Attention}(Q W_i^Q, K W_i^K, V W_i^V), \qquad
\mathrm{MultiHead}(Q, K, V) = [\mathrm{head}_1; \dots; \mathrm{head}_h] W^O,$$

which costs what one head of width E costs, since the h projections of size
E x d are one E x E matrix. Not implemented: ``add_bias_kv``, ``add_zero_attn``,
``kdim``/``vdim`` different from ``embed_dim``.

Chapter: "Attention" (book/sequences/attention.md).
"""

from __future__ import annotations

import numpy as np

from . import functional as F
from . import init
from .nn import Linear, Module, Parameter
from .tensor import Tensor


def _as_mask(mask) -> np.ndarray | None:
    if mask is None:
        return None
    mask = mask.data if isinstance(mask, Tensor) else np.asarray(mask)
    if mask.dtype != bool and not np.issubdtype(mask.dtype, np.floating):
        raise TypeError(f"only bool and floating masks are supported, got {mask.dtype}")
    return mask


def _forbid(mask: np.ndarray, dtype) -> np.ndarray:
    """A "True = may not attend" boolean mask as an additive float mask."""
    return np.where(mask, -np.inf, 0.0).astype(dtype) if mask.dtype == bool else mask


class MultiheadAttention(Module):
    """``num_heads`` scaled dot-product attentions side by side, in subspaces of
    ``embed_dim // num_heads``, their outputs concatenated and projected."""

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        add_bias_kv: bool = False,
        add_zero_attn: bool = False,
        kdim: int | None = None,
        vdim: int | None = None,
        batch_first: bool = False,
        dtype=np.float64,
    ):
        if embed_dim < 1 or num_heads < 1 or embed_dim % num_heads:
            raise ValueError(
                f"embed_dim must be divisible by num_heads, got {embed_dim} and "
                f"{num_heads}"
            )
        if not 0 <= dropout <= 1:
            raise ValueError(f"dropout must be in [0, 1], got {dropout}")
        if add_bias_kv or add_zero_attn or kdim not in (None, embed_dim):
            raise NotImplementedError("add_bias_kv, add_zero_attn, kdim != embed_dim")
        if vdim not in (None, embed_dim):
            raise NotImplementedError("vdim != embed_dim")
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout, self.batch_first = dropout, batch_first
        # Set in PyTorch's order, so state_dict() lists the same keys in the same order.
        self.in_proj_weight = Parameter(np.empty((3 * embed_dim, embed_dim), dtype))
        self.in_proj_bias = Parameter(np.empty(3 * embed_dim, dtype)) if bias else None
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, dtype=dtype)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        # PyTorch's: Glorot-uniform over the stacked (3E, E) matrix, zero biases; the
        # output projection keeps Linear's own initialization for its weight.
        init.xavier_uniform_(self.in_proj_weight)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)

    def _heads(self, x: Tensor) -> Tensor:
        """(N, L, E) -> (N, heads, L, head_dim)."""
        N, L, _ = x.shape
        return x.reshape(N, L, self.num_heads, self.head_dim).permute(0, 2, 1, 3)

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask=None,
        need_weights: bool = True,
        attn_mask=None,
        average_attn_weights: bool = True,
    ):
        query, key, value = (
            t if isinstance(t, Tensor) else Tensor(t) for t in (query, key, value)
        )
        if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != key.ndim:
            raise ValueError(
                "query, key and value must all be (L, N, E) (batch_first: (N, L, E))"
                f" or all (L, E); got {query.shape}, {key.shape}, {value.shape}"
            )
        unbatched = query.ndim == 2
        if unbatched:  # (L, E) -> (1, L, E)
            query, key, value = (t.unsqueeze(0) for t in (query, key, value))
        elif not self.batch_first:  # (L, N, E) -> (N, L, E)
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        N, L, E = query.shape
        S = key.shape[1]
        if E != self.embed_dim or key.shape[2] != E or value.shape[2] != E:
            raise ValueError(f"expected embed_dim {self.embed_dim}, got {query.shape}")
        if key.shape[:2] != value.shape[:2] or key.shape[0] != N:
            raise ValueError(f"key {key.shape} and value {value.shape} do not match")

        W, b = self.in_proj_weight, self.in_proj_bias
        q, k, v = (
            F.linear(
                x, W[i * E : (i + 1) * E], None if b is None else b[i * E : (i + 1) * E]
            )
            for i, x in enumerate((query, key, value))
        )
        q, k, v = self._heads(q), self._heads(k), self._heads(v)  # (N, h, L|S, d)

        # Both masks say True = forbidden; combined into one boolean "allowed" mask
        # (N, h, L, S) for F.attention_weights, or one additive float mask if either
        # is a float mask.
        masks = []
        attn_mask = _as_mask(attn_mask)
        if attn_mask is not None:
            if attn_mask.shape == (L, S):
                masks.append(attn_mask)
            elif attn_mask.shape == (N * self.num_heads, L, S):
                masks.append(attn_mask.reshape(N, self.num_heads, L, S))
            else:
                raise ValueError(
                    f"attn_mask must be ({L}, {S}) or ({N * self.num_heads}, {L}, "
                    f"{S}), got {attn_mask.shape}"
                )
        key_padding_mask = _as_mask(key_padding_mask)
        if key_padding_mask is not None:
            if unbatched and key_padding_mask.shape == (S,):
                key_padding_mask = key_padding_mask[None]
            if key_padding_mask.shape != (N, S):
                raise ValueError(
                    f"key_padding_mask must be ({N}, {S}), got {key_padding_mask.shape}"
                )
            masks.append(key_padding_mask[:, None, None, :])  # (N, 1, 1, S)
        allowed = None
        if masks and all(m.dtype == bool for m in masks):
            allowed = ~np.logical_or.reduce(np.broadcast_arrays(*masks))
        elif masks:
            allowed = sum(_forbid(m, q.dtype) for m in masks)

        weights = F.attention_weights(q, k, allowed)  # (N, h, L, S)
        dropped = F.dropout(weights, self.dropout, self.training)
        out = (dropped @ v).permute(0, 2, 1, 3).reshape(N, L, E)  # heads side by side
        out = self.out_proj(out)
        if unbatched:
            out = out.reshape(L, E)
        elif not self.batch_first:
            out = out.transpose(0, 1)  # back to (L, N, E)
        if not need_weights:
            return out, None
        w = weights.mean(axis=1) if average_attn_weights else weights
        return out, (w[0] if unbatched else w)

    def extra_repr(self):
        return (
            f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, "
            f"batch_first={self.batch_first}"
        )
