r"""Recurrent layers for the NumPy engine: RNN, LSTM and GRU, as in ``torch.nn``.

Same names, arguments, parameter names and layout as PyTorch, so
``load_state_dict(torch_module.state_dict())`` works and outputs and gradients
match (checked in float64 in ``tests/engine/test_rnn.py``):

- cells (one time step): :class:`RNNCell`, :class:`LSTMCell`, :class:`GRUCell`,
  with ``weight_ih`` (G·H, in), ``weight_hh`` (G·H, H), ``bias_ih``, ``bias_hh``
  (G·H,), G = 1, 4, 3 gate blocks in PyTorch's order: LSTM (i, f, g, o), GRU
  (r, z, n);
- layers (a whole sequence, ``num_layers`` stacked): :class:`RNN`, :class:`LSTM`,
  :class:`GRU`, with ``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}``,
  ``bias_hh_l{k}``; input (T, B, in), or (B, T, in) with ``batch_first``, or
  (T, in) unbatched; ``forward(input, hx=None)`` returns ``(output, h_n)``, or
  ``(output, (h_n, c_n))`` for the LSTM.

How the sequence is computed. A layer first projects the *whole* input sequence
at once, $X W_{ih}^\top + b_{ih}$, one large matrix product; then it steps through
time, each step one fused node of the graph (``F.lstm_cell`` and friends below)
that adds the recurrent term $h_{t-1} W_{hh}^\top + b_{hh}$ and applies the gates.
Backpropagation through time is then nothing special: the engine's autograd walks
the unrolled graph backwards, step by step. Each cell's backward is written by
hand for speed (the gates' elementwise products would otherwise be a dozen nodes
a step) and is checked against finite differences and PyTorch like every op.

Not implemented: ``bidirectional``, ``proj_size``, packed sequences.

Chapter: "Sequences" (book/sequences/index.md).
"""

from __future__ import annotations

import math

import numpy as np

from . import functional as F
from . import init
from .nn import Module, Parameter
from .tensor import Tensor, _make, stack

# ---- one time step: fused cells ------------------------------------------------------
# Each takes the input's projection `gi` = x W_ih^T + b_ih, (B, G*H), computed
# outside so that a layer can make it for all time steps in one product.


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * a))  # = 1 / (1 + e^-a), without overflow


def _recurrent(h: Tensor, w_hh: Tensor, b_hh: Tensor | None) -> np.ndarray:
    out = h.data @ w_hh.data.T  # (B, H) @ (H, G*H) -> (B, G*H)
    if b_hh is not None:
        out += b_hh.data
    return out


def _recurrent_grads(da, h, w_hh, b_hh):
    """Gradients of h W_hh^T + b_hh given da = dL/d(that), (B, G*H)."""
    gh = da @ w_hh.data if h.requires_grad else None  # (B, H)
    gw = da.T @ h.data if w_hh.requires_grad else None  # (G*H, H)
    gb = da.sum(axis=0) if b_hh is not None and b_hh.requires_grad else None
    return gh, gw, gb


def _parents(*tensors):
    return tuple(t for t in tensors if t is not None)


def rnn_cell(
    gi: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor | None, nonlinearity="tanh"
) -> Tensor:
    r"""$h' = \tanh(g_i + h W_{hh}^\top + b_{hh})$ (or ReLU), with $g_i = x
    W_{ih}^\top + b_{ih}$.

    Backward: $\bar a = \bar h' \odot (1 - h'^2)$ (ReLU: $\bar h' \odot
    [h' > 0]$), then $\bar g_i = \bar a$, $\bar h = \bar a W_{hh}$, $\bar W_{hh} =
    \bar a^\top h$, $\bar b_{hh} = \sum_{\text{rows}} \bar a$.
    """
    a = gi.data + _recurrent(h, w_hh, b_hh)  # (B, H)
    out = np.tanh(a) if nonlinearity == "tanh" else np.maximum(a, 0)

    def backward(g):
        da = g * (1 - out * out) if nonlinearity == "tanh" else g * (out > 0)
        return (da, *_recurrent_grads(da, h, w_hh, b_hh))

    return _make(out, _parents(gi, h, w_hh, b_hh), backward, "rnn_cell")


def lstm_cell(
    gi: Tensor, h: Tensor, c: Tensor, w_hh: Tensor, b_hh: Tensor | None
) -> Tensor:
    r"""One LSTM step; returns $h'$ and $c'$ stacked, shape (2, B, H).

    With $a = g_i + h W_{hh}^\top + b_{hh}$ split into four blocks (PyTorch's order):
    $i = \sigma(a_i)$, $f = \sigma(a_f)$, $g = \tanh(a_g)$, $o = \sigma(a_o)$;
    $c' = f \odot c + i \odot g$ and $h' = o \odot \tanh(c')$.

    Backward, from $\bar h'$ and $\bar c'$: the cell state gets
    $\bar c'_{\text{all}} = \bar c' + \bar h' \odot o \odot (1 - \tanh^2 c')$, then
    $\bar o = \bar h' \odot \tanh c'$, $\bar i = \bar c'_{\text{all}} \odot g$,
    $\bar f = \bar c'_{\text{all}} \odot c$, $\bar g = \bar c'_{\text{all}} \odot i$,
    $\bar c = \bar c'_{\text{all}} \odot f$ (the path along which the gradient
    survives many steps when $f \approx 1$), each gate through its activation's
    derivative into $\bar a$.
    """
    a = gi.data + _recurrent(h, w_hh, b_hh)  # (B, 4H)
    ai, af, ag, ao = np.split(a, 4, axis=1)
    i, f, g_, o = _sigmoid(ai), _sigmoid(af), np.tanh(ag), _sigmoid(ao)
    c_next = f * c.data + i * g_  # (B, H)
    tc = np.tanh(c_next)
    out = np.stack([o * tc, c_next])  # (2, B, H)

    def backward(grad):
        gh, gc = grad[0], grad[1]
        gc = gc + gh * o * (1 - tc * tc)
        da = np.concatenate(
            [
                gc * g_ * i * (1 - i),
                gc * c.data * f * (1 - f),
                gc * i * (1 - g_ * g_),
                gh * tc * o * (1 - o),
            ],
            axis=1,
        )  # (B, 4H)
        g_h, g_w, g_b = _recurrent_grads(da, h, w_hh, b_hh)
        g_c = gc * f if c.requires_grad else None
        return (da, g_h, g_c, g_w, g_b)[: 3 + 1 + (b_hh is not None)]

    return _make(out, _parents(gi, h, c, w_hh, b_hh), backward, "lstm_cell")


def gru_cell(gi: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor | None) -> Tensor:
    r"""One GRU step, PyTorch's variant (the reset gate applies after $W_{hn}$).

    With $g_i$ and $g_h = h W_{hh}^\top + b_{hh}$ split into (r, z, n) blocks:
    $r = \sigma(g_{ir} + g_{hr})$, $z = \sigma(g_{iz} + g_{hz})$,
    $n = \tanh(g_{in} + r \odot g_{hn})$, $h' = (1 - z) \odot n + z \odot h$.

    Backward: $\bar z = \bar h' \odot (h - n)$, $\bar n = \bar h' \odot (1 - z)$,
    $\bar a_n = \bar n \odot (1 - n^2)$, $\bar r = \bar a_n \odot g_{hn}$; the input
    side gets $(\bar a_r, \bar a_z, \bar a_n)$, the recurrent side
    $(\bar a_r, \bar a_z, \bar a_n \odot r)$, and $h$ also $\bar h' \odot z$ directly.
    """
    gh_all = _recurrent(h, w_hh, b_hh)  # (B, 3H)
    ir, iz, in_ = np.split(gi.data, 3, axis=1)
    hr, hz, hn = np.split(gh_all, 3, axis=1)
    r, z = _sigmoid(ir + hr), _sigmoid(iz + hz)
    n = np.tanh(in_ + r * hn)
    out = (1 - z) * n + z * h.data  # (B, H)

    def backward(g):
        an = g * (1 - z) * (1 - n * n)
        ar = an * hn * r * (1 - r)
        az = g * (h.data - n) * z * (1 - z)
        d_in = np.concatenate([ar, az, an], axis=1)  # (B, 3H)
        d_rec = np.concatenate([ar, az, an * r], axis=1)
        g_h, g_w, g_b = _recurrent_grads(d_rec, h, w_hh, b_hh)
        if g_h is not None:
            g_h = g_h + g * z
        return (d_in, g_h, g_w, g_b)[: 3 + (b_hh is not None)]

    return _make(out, _parents(gi, h, w_hh, b_hh), backward, "gru_cell")


# ---- modules -------------------------------------------------------------------------
_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _zeros(shape, like: Tensor) -> Tensor:
    return Tensor(np.zeros(shape, dtype=like.dtype))


def _check_int(name: str, value, low: int = 1) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise TypeError(f"{name} should be of type int, got: {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")


def _checked(module, input, ndims) -> Tensor:
    """``input`` as a Tensor, after checking its rank and feature size (PyTorch's
    messages)."""
    x = input if isinstance(input, Tensor) else Tensor(input)
    if x.ndim not in ndims:
        raise ValueError(
            f"{type(module).__name__}: expected input of {ndims[0]} or {ndims[1]} "
            f"dimensions, got {x.ndim}"
        )
    if x.shape[-1] != module.input_size:
        raise ValueError(
            f"input.size(-1) must be equal to input_size. Expected "
            f"{module.input_size}, got {x.shape[-1]}"
        )
    return x


def _uniform_init(module) -> None:
    """Every parameter from U(-1/sqrt(H), 1/sqrt(H)), as PyTorch initializes them."""
    bound = 1 / math.sqrt(module.hidden_size)
    for p in module.parameters():
        init.uniform_(p, -bound, bound)


class _CellBase(Module):
    """Parameters of one cell: ``weight_ih`` (G·H, in), ``weight_hh`` (G·H, H) and
    the biases, all drawn from $U(-1/\\sqrt H, 1/\\sqrt H)$ as in PyTorch."""

    mode = "RNN_TANH"

    def __init__(self, input_size, hidden_size, bias=True, dtype=np.float64):
        _check_int("input_size", input_size, 0)
        _check_int("hidden_size", hidden_size)
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        gates = _GATES[self.mode] * hidden_size
        self.weight_ih = Parameter(np.empty((gates, input_size), dtype=dtype))
        self.weight_hh = Parameter(np.empty((gates, hidden_size), dtype=dtype))
        self.bias_ih = Parameter(np.empty(gates, dtype=dtype)) if bias else None
        self.bias_hh = Parameter(np.empty(gates, dtype=dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _uniform_init(self)

    def _batched(self, input, hx):
        """(input as (B, in), hx as (B, H) or None, whether the input had no batch)."""
        input = _checked(self, input, (1, 2))
        unbatched = input.ndim == 1
        if unbatched:
            input = input.unsqueeze(0)
            hx = _map(hx, lambda t: t.unsqueeze(0))
        return input, hx, unbatched

    def extra_repr(self):
        return f"{self.input_size}, {self.hidden_size}" + (
            "" if self.bias else ", bias=False"
        )


def _map(hx, fn):
    if hx is None:
        return None
    if isinstance(hx, tuple):
        return tuple(fn(t if isinstance(t, Tensor) else Tensor(t)) for t in hx)
    return fn(hx if isinstance(hx, Tensor) else Tensor(hx))


class RNNCell(_CellBase):
    r"""$h' = \tanh(x W_{ih}^\top + b_{ih} + h W_{hh}^\top + b_{hh})$, or ReLU."""

    def __init__(
        self, input_size, hidden_size, bias=True, nonlinearity="tanh", dtype=np.float64
    ):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias, dtype)

    def forward(self, input, hx=None) -> Tensor:
        x, h, unbatched = self._batched(input, hx)
        h = _zeros((x.shape[0], self.hidden_size), x) if h is None else h
        gi = F.linear(x, self.weight_ih, self.bias_ih)
        out = rnn_cell(gi, h, self.weight_hh, self.bias_hh, self.nonlinearity)
        return out[0] if unbatched else out


class LSTMCell(_CellBase):
    """One LSTM step: ``forward(input, (h, c))`` returns ``(h', c')``."""

    mode = "LSTM"

    def forward(self, input, hx=None):
        x, hx, unbatched = self._batched(input, hx)
        if hx is None:
            h = c = _zeros((x.shape[0], self.hidden_size), x)
        else:
            h, c = hx
        gi = F.linear(x, self.weight_ih, self.bias_ih)
        hc = lstm_cell(gi, h, c, self.weight_hh, self.bias_hh)
        h, c = hc[0], hc[1]
        return (h[0], c[0]) if unbatched else (h, c)


class GRUCell(_CellBase):
    """One GRU step: ``forward(input, h)`` returns ``h'``."""

    mode = "GRU"

    def forward(self, input, hx=None) -> Tensor:
        x, h, unbatched = self._batched(input, hx)
        h = _zeros((x.shape[0], self.hidden_size), x) if h is None else h
        gi = F.linear(x, self.weight_ih, self.bias_ih)
        out = gru_cell(gi, h, self.weight_hh, self.bias_hh)
        return out[0] if unbatched else out


class RNNBase(Module):
    """A stack of ``num_layers`` recurrent layers run over a whole sequence.

    Layer ``k`` has ``weight_ih_l{k}`` (G·H, in or H), ``weight_hh_l{k}`` (G·H, H),
    ``bias_ih_l{k}`` and ``bias_hh_l{k}``, registered in PyTorch's order; with
    ``dropout`` > 0, dropout is applied to every layer's output but the last, in
    training mode, as in PyTorch.
    """

    mode = "RNN_TANH"

    def __init__(
        self,
        input_size,
        hidden_size,
        num_layers=1,
        bias=True,
        batch_first=False,
        dropout=0.0,
        bidirectional=False,
        dtype=np.float64,
    ):
        _check_int("input_size", input_size, 0)
        _check_int("hidden_size", hidden_size)
        _check_int("num_layers", num_layers)
        if not 0 <= dropout <= 1 or isinstance(dropout, bool):
            raise ValueError(
                "dropout should be a number in range [0, 1] representing the "
                "probability of an element being zeroed"
            )
        if bidirectional:
            raise NotImplementedError("bidirectional recurrent layers")
        self.input_size, self.hidden_size = input_size, hidden_size
        self.num_layers, self.bias, self.batch_first = num_layers, bias, batch_first
        self.dropout, self.bidirectional = float(dropout), False
        gates = _GATES[self.mode] * hidden_size
        for k in range(num_layers):
            n_in = input_size if k == 0 else hidden_size
            setattr(self, f"weight_ih_l{k}", Parameter(np.empty((gates, n_in), dtype)))
            setattr(
                self,
                f"weight_hh_l{k}",
                Parameter(np.empty((gates, hidden_size), dtype)),
            )
            if bias:
                setattr(self, f"bias_ih_l{k}", Parameter(np.empty(gates, dtype)))
                setattr(self, f"bias_hh_l{k}", Parameter(np.empty(gates, dtype)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _uniform_init(self)

    def _layer(self, k: int):
        """Layer k's (weight_ih, weight_hh, bias_ih, bias_hh); biases None without."""
        get = lambda name: getattr(self, f"{name}_l{k}", None)  # noqa: E731
        return get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh")

    def _step(self, gi: Tensor, state, w_hh, b_hh):
        """One time step of one layer: (output h, new state)."""
        if self.mode == "LSTM":
            hc = lstm_cell(gi, state[0], state[1], w_hh, b_hh)
            h = hc[0]
            return h, (h, hc[1])
        if self.mode == "GRU":
            h = gru_cell(gi, state, w_hh, b_hh)
        else:
            h = rnn_cell(gi, state, w_hh, b_hh, self.mode[4:].lower())
        return h, h

    def forward(self, input, hx=None):
        x = _checked(self, input, (2, 3))
        unbatched = x.ndim == 2
        if unbatched:  # (T, in) -> (T, 1, in); hx (L, H) -> (L, 1, H)
            x = x.unsqueeze(1)
            hx = _map(hx, lambda t: t.unsqueeze(1))
        elif self.batch_first:  # (B, T, in) -> (T, B, in)
            x = x.transpose(0, 1)
        steps, batch = x.shape[0], x.shape[1]
        shape = (self.num_layers, batch, self.hidden_size)
        if hx is None:
            zeros = _zeros(shape, x)
            hx = (zeros, zeros) if self.mode == "LSTM" else zeros
        for t in hx if isinstance(hx, tuple) else (hx,):
            if t.shape != shape:
                raise ValueError(f"Expected hidden size {shape}, got {tuple(t.shape)}")

        last_h, last_c = [], []
        for k in range(self.num_layers):
            w_ih, w_hh, b_ih, b_hh = self._layer(k)
            gi = F.linear(x, w_ih, b_ih)  # (T, B, G*H): every step's input term at once
            state = (hx[0][k], hx[1][k]) if self.mode == "LSTM" else hx[k]
            outputs = []
            for t in range(steps):
                h, state = self._step(gi[t], state, w_hh, b_hh)
                outputs.append(h)
            x = stack(outputs, axis=0)  # (T, B, H)
            if self.mode == "LSTM":
                last_h.append(state[0]), last_c.append(state[1])
            else:
                last_h.append(state)
            if self.dropout and self.training and k < self.num_layers - 1:
                x = F.dropout(x, self.dropout, training=True)

        h_n = stack(last_h, axis=0)  # (L, B, H)
        hidden = (h_n, stack(last_c, axis=0)) if self.mode == "LSTM" else h_n
        if unbatched:
            return x[:, 0], _map(hidden, lambda t: t[:, 0])
        return (x.transpose(0, 1) if self.batch_first else x), hidden

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        return s


class RNN(RNNBase):
    r"""Elman RNN: $h_t = \tanh(x_t W_{ih}^\top + b_{ih} + h_{t-1} W_{hh}^\top +
    b_{hh})$, or ReLU with ``nonlinearity="relu"``."""

    def __init__(self, *args, nonlinearity="tanh", **kwargs):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'")
        self.nonlinearity = nonlinearity
        self.mode = "RNN_" + nonlinearity.upper()
        super().__init__(*args, **kwargs)

    def extra_repr(self):
        s = super().extra_repr()
        return s + (", nonlinearity='relu'" if self.nonlinearity == "relu" else "")


class LSTM(RNNBase):
    """Long short-term memory (Hochreiter & Schmidhuber, 1997), PyTorch's variant
    (forget gate, no peepholes): returns ``(output, (h_n, c_n))``."""

    mode = "LSTM"


class GRU(RNNBase):
    """Gated recurrent unit (Cho et al., 2014), PyTorch's variant."""

    mode = "GRU"
