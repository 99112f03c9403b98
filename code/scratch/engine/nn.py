"""Layers for the NumPy engine, named and shaped as in ``torch.nn``.

A :class:`Module` finds its parameters by looking at its own attributes:
every :class:`Parameter`, and every sub-module (recursively). So
``named_parameters()`` gives PyTorch's names (``"0.weight"`` in a
:class:`Sequential`), and a state can be copied between the two libraries
name by name: ``model.load_state_dict(torch_model.state_dict())`` works.

Besides parameters, a module may hold *buffers*: arrays that are part of its
state but not trained by gradient descent, such as batch norm's running
statistics. ``register_buffer(name, array)`` sets the attribute and records its
name; ``state_dict()`` then holds parameters and buffers, and ``save`` /
``load`` write and read it as an ``.npz`` file.

Initialization schemes live in :mod:`scratch.engine.init`, here ``nn.init``.

**Layers of the library, as in PyTorch.** The functions are at the bottom:
:mod:`~scratch.engine.functional` (``F``, with the convolutions of ``conv.py``
and the normalizations of ``normalization.py``) works on tensors and imports
no ``Module``. This module is on top: each layer holds its parameters and
calls its function in ``F``. So ``nn`` imports ``functional``, never the
reverse, and the two never wait on each other at import time.

Chapter: "A tiny autograd engine" (book/foundations/autograd.md).
"""

from __future__ import annotations

import math
from collections import OrderedDict, namedtuple

import numpy as np

from . import functional as F
from . import init
from .conv import _pair
from .tensor import Tensor

functional = F  # torch.nn.functional's place


class Parameter(Tensor):
    """A tensor that is a model's parameter: it requires grad, and modules collect
    it."""

    def __init__(self, data, requires_grad: bool = True, dtype=None):
        super().__init__(data, requires_grad=requires_grad, dtype=dtype)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


_IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


def _as_array(value) -> np.ndarray:
    """A state value as a NumPy array: ours, a torch tensor, or anything array-like."""
    if isinstance(value, Tensor):
        return value.data
    if hasattr(value, "detach"):  # a torch.Tensor, without importing torch
        return value.detach().cpu().numpy()
    return np.asarray(value)


class Module:
    """Base class: subclasses set parameters and sub-modules as attributes and define
    ``forward``.

    Parameters, sub-modules and buffers are found among the attributes, in the
    order they were set; subclasses need not call ``super().__init__()``.
    """

    training = True  # a class default, so subclasses need not call super().__init__()

    def forward(self, *args, **kwargs):
        raise NotImplementedError

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ---- the tree of modules ---------------------------------------------------------
    def named_children(self):
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value

    def children(self) -> list:
        return [m for _, m in self.named_children()]

    def _walk(self, prefix: str = ""):
        """(dotted name, module) for this module and every descendant, parents first
        (pre-order)."""
        yield prefix, self
        for name, child in self.named_children():
            yield from child._walk(prefix + "." + name if prefix else name)

    def named_modules(self, prefix: str = ""):
        """(name, module) pairs, this module first (name ``""``); a module reached
        twice is listed once."""
        seen = set()
        for name, module in self._walk(prefix):
            if id(module) not in seen:
                seen.add(id(module))
                yield name, module

    def modules(self) -> list:
        return [m for _, m in self.named_modules()]

    def apply(self, fn) -> "Module":
        """Call ``fn(module)`` on every sub-module, then on this one (e.g. a custom
        initialization)."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ---- parameters -----------------------------------------------------------------
    def _own(self, kind):
        for name, value in vars(self).items():
            if isinstance(value, kind):
                yield name, value

    def named_parameters(self, prefix: str = "", recurse: bool = True):
        """(name, parameter) pairs: each module's own parameters, parents before
        children.

        Names are dotted paths (``"0.weight"``). A parameter shared by two modules
        (tied weights) is listed once, under its first name, as in PyTorch.
        """
        seen = set()
        for module_name, module in (
            self.named_modules(prefix) if recurse else [(prefix, self)]
        ):
            for name, p in module._own(Parameter):
                if id(p) not in seen:
                    seen.add(id(p))
                    yield (module_name + "." + name if module_name else name), p

    def parameters(self, recurse: bool = True) -> list:
        return [p for _, p in self.named_parameters(recurse=recurse)]

    def zero_grad(self) -> None:
        """Forget accumulated gradients (``None``, as PyTorch's default
        ``set_to_none=True``)."""
        for p in self.parameters():
            p.grad = None

    # ---- buffers: state that is not trained -----------------------------------------
    def register_buffer(self, name: str, tensor, persistent: bool = True) -> None:
        """Hold ``tensor`` (a NumPy array, or None) as ``self.<name>``, part of the
        module's state.

        A buffer is saved and loaded with the parameters but gets no gradient and
        no optimizer step (batch norm's ``running_mean``, say). Read it as
        ``self.<name>``; update it in place or assign a new array to the same
        name: both stay registered. ``persistent=False`` keeps it out of
        :meth:`state_dict` (a cache that can be recomputed). A :class:`Tensor`
        is stored as its array.
        """
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(
                f"buffer name must be a non-empty string without '.', got {name!r}"
            )
        if name in vars(self) and name not in self._buffer_names():
            raise KeyError(f"attribute {name!r} already exists and is not a buffer")
        if isinstance(tensor, Tensor):
            tensor = tensor.data
        elif tensor is not None:
            tensor = np.asarray(tensor)
        # The names, in a dict created on first use (subclasses need not call
        # super().__init__()).
        self.__dict__.setdefault("_buffer_persistence", {})[name] = (
            persistent  # name -> persistent
        )
        setattr(self, name, tensor)

    def _buffer_names(self) -> dict:
        return self.__dict__.get("_buffer_persistence", {})

    def named_buffers(self, prefix: str = "", recurse: bool = True):
        """(name, array) pairs of every buffer that is not None, parents before
        children."""
        for module_name, module in (
            self.named_modules(prefix) if recurse else [(prefix, self)]
        ):
            for name in module._buffer_names():
                value = getattr(module, name)
                if value is not None:
                    yield (module_name + "." + name if module_name else name), value

    def buffers(self, recurse: bool = True) -> list:
        return [b for _, b in self.named_buffers(recurse=recurse)]

    # ---- state: save, load -----------------------------------------------------------
    def _state_entries(self):
        """(key, module, attribute) of every state_dict entry, in PyTorch's order: each
        module's
        parameters, then its persistent buffers, parents before children."""
        for module_name, module in self._walk():
            dot = module_name + "." if module_name else ""
            for name, _ in module._own(Parameter):
                yield dot + name, module, name
            for name, persistent in module._buffer_names().items():
                if persistent and getattr(module, name) is not None:
                    yield dot + name, module, name

    def state_dict(self) -> OrderedDict:
        """Ordered name -> NumPy array, for every parameter and persistent buffer.

        The arrays are copies (PyTorch's share memory): a state taken before
        training stays as it was, whatever the training does to the model.
        """
        return OrderedDict(
            (key, np.array(_as_array(getattr(module, name))))
            for key, module, name in self._state_entries()
        )

    def load_state_dict(self, state_dict, strict: bool = True):
        """Copy ``state_dict``'s arrays into the parameters and buffers of the same
        names.

        Values may be NumPy arrays, our tensors or torch tensors; each is cast to
        the dtype of what it replaces. With ``strict`` (the default) the keys must
        match exactly; a shape mismatch is always an error. Nothing is changed
        unless every check passes. Returns ``(missing_keys, unexpected_keys)``.
        """
        entries = {key: (module, name) for key, module, name in self._state_entries()}
        missing = [key for key in entries if key not in state_dict]
        unexpected = [key for key in state_dict if key not in entries]
        errors = []
        if strict and missing:
            errors.append(f"missing key(s): {', '.join(missing)}")
        if strict and unexpected:
            errors.append(f"unexpected key(s): {', '.join(unexpected)}")
        values = {}
        for key, (module, name) in entries.items():
            if key not in state_dict:
                continue
            old, new = _as_array(getattr(module, name)), _as_array(state_dict[key])
            if new.shape != old.shape:
                errors.append(
                    f"size mismatch for {key}: the state has shape {new.shape}, "
                    f"the model {old.shape}"
                )
            values[key] = new.astype(old.dtype)  # a copy, in the model's dtype
        if errors:
            raise RuntimeError(
                f"Error(s) in loading state_dict for {type(self).__name__}:\n  "
                + "\n  ".join(errors)
            )
        for key, value in values.items():
            module, name = entries[key]
            current = getattr(module, name)
            if isinstance(current, Tensor):
                current.data = (
                    value  # a new array: graphs built before keep their values
                )
            else:
                setattr(module, name, value)
        return _IncompatibleKeys(missing, unexpected)

    def save(self, path) -> None:
        """Write :meth:`state_dict` to ``path`` (exactly that name) as an ``.npz``
        archive.

        Atomically: the file is written beside ``path`` and renamed over it, so a
        crash never leaves a half-written checkpoint.
        """
        from scratch.utils import atomic_path

        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(
                f, **self.state_dict()
            )  # a file object: np.savez(name) would append ".npz"

    def load(self, path, strict: bool = True):
        """Read an archive written by :meth:`save` into this model (see
        :meth:`load_state_dict`).

        ``allow_pickle=False``: an ``.npz`` holds arrays only, and a pickle could run
        code.
        """
        with np.load(path, allow_pickle=False) as archive:
            state = OrderedDict((key, archive[key]) for key in archive.files)
        return self.load_state_dict(state, strict=strict)

    # ---- modes, printing -------------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        """Training mode (dropout, batch norm statistics: layers that differ read
        ``self.training``)."""
        self.training = mode
        for child in self.children():
            child.train(mode)
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def __repr__(self):
        inner = "".join(
            f"\n  ({n}): " + repr(m).replace("\n", "\n  ")
            for n, m in self.named_children()
        )
        end = chr(10) if inner else ""
        return f"{type(self).__name__}({self.extra_repr()}{inner}{end})"

    def extra_repr(self) -> str:
        return ""


# ---- layers --------------------------------------------------------------------------
class Linear(Module):
    r"""$y = x W^\top + b$, ``weight`` (out_features, in_features), ``bias``
    (out_features,).

    Initialised as ``torch.nn.Linear``: $U(-1/\sqrt{\text{in}}, 1/\sqrt{\text{in}})$,
    so the output's scale does not grow with the number of inputs. Draws from
    NumPy's global generator: ``seed_everything`` makes it repeat.
    """

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, dtype=np.float64
    ):
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(np.empty((out_features, in_features), dtype=dtype))
        self.bias = Parameter(np.empty(out_features, dtype=dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # kaiming_uniform_ with a = sqrt(5) has gain sqrt(1/3): the bound sqrt(3) * gain
        # / sqrt(in) is 1/sqrt(in). PyTorch's choice, kept for compatibility rather than
        # derived from a theory.
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features) if self.in_features > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )


class Embedding(Module):
    r"""A table of ``num_embeddings`` vectors of size ``embedding_dim``; integer inputs
    pick rows.

    Initialised $\mathcal N(0, 1)$, as PyTorch; the ``padding_idx`` row starts at
    zero and gets no gradient.
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        dtype=np.float64,
    ):
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(
                    f"padding_idx {padding_idx} out of range for {num_embeddings} "
                    "embeddings"
                )
            padding_idx %= num_embeddings
        self.padding_idx = padding_idx
        self.weight = Parameter(np.empty((num_embeddings, embedding_dim), dtype=dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight.data[self.padding_idx] = 0

    def forward(self, input) -> Tensor:
        return F.embedding(input, self.weight, self.padding_idx)

    def extra_repr(self):
        pad = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"


class Flatten(Module):
    """(N, C, H, W) -> (N, C*H*W): axes ``start_dim..end_dim`` merged (the batch axis
    kept by default)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Dropout(Module):
    """Zero each entry with probability ``p`` in training, scaling the rest by 1/(1-p);
    identity in eval."""

    def __init__(self, p: float = 0.5):
        if not 0 <= p <= 1:
            raise ValueError(f"dropout probability must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"


class Identity(Module):
    def forward(self, x):
        return x


# ---- activations: modules around the functions of `functional` -----------------------
class ReLU(Module):
    def forward(self, x):
        return x.relu()


class LeakyReLU(Module):
    def __init__(self, negative_slope: float = 0.01):
        self.negative_slope = negative_slope

    def forward(self, x):
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class ELU(Module):
    def __init__(self, alpha: float = 1.0):
        self.alpha = alpha

    def forward(self, x):
        return F.elu(x, self.alpha)

    def extra_repr(self):
        return f"alpha={self.alpha}"


class SELU(Module):
    def forward(self, x):
        return F.selu(x)


class GELU(Module):
    def __init__(self, approximate: str = "none"):
        self.approximate = approximate

    def forward(self, x):
        return F.gelu(x, approximate=self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class SiLU(Module):
    def forward(self, x):
        return F.silu(x)


class Tanh(Module):
    def forward(self, x):
        return x.tanh()


class Sigmoid(Module):
    def forward(self, x):
        return x.sigmoid()


class Softmax(Module):
    def __init__(self, dim: int = -1):
        self.dim = dim

    def forward(self, x):
        return F.softmax(x, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Module):
    def __init__(self, dim: int = -1):
        self.dim = dim

    def forward(self, x):
        return F.log_softmax(x, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


# ---- containers ----------------------------------------------------------------------
class Sequential(Module):
    """Modules applied in order. They are stored as attributes ``"0"``, ``"1"``, ...
    so parameter names match PyTorch's (``"0.weight"``)."""

    def __init__(self, *modules: Module):
        for i, module in enumerate(modules):
            setattr(self, str(i), module)

    def __getitem__(self, i: int) -> Module:
        return self.children()[i]

    def __len__(self):
        return len(self.children())

    def __iter__(self):
        return iter(self.children())

    def forward(self, x):
        for module in self:
            x = module(x)
        return x


class ModuleList(Module):
    """A list of modules whose parameters the parent finds (a plain Python list would
    hide them).

    Stored as attributes ``"0"``, ``"1"``, ... like :class:`Sequential`, so the names
    match PyTorch's.
    """

    def __init__(self, modules=()):
        for module in modules:
            self.append(module)

    def append(self, module: Module) -> "ModuleList":
        setattr(self, str(len(self)), module)
        return self

    def __getitem__(self, i: int) -> Module:
        return self.children()[i]

    def __len__(self):
        return len(self.children())

    def __iter__(self):
        return iter(self.children())


# ---- convolution and pooling: layers around the functions of conv.py -----------------
class Conv2d(Module):
    r"""A learned 2-d convolution, ``weight`` (out, in, kh, kw) and ``bias`` (out,), as
    ``torch.nn.Conv2d``.

    Initialised as PyTorch does: ``kaiming_uniform_(a=sqrt(5))``, whose bound
    $\text{gain} \sqrt{3 / \text{fan\_in}}$ with $\text{gain} = \sqrt{2 / (1 + a^2)} =
    \sqrt{1/3}$ is just $1/\sqrt{\text{fan\_in}}$, $\text{fan\_in} = \text{in} \cdot k_h
    k_w$ (the same rule as :class:`Linear`); the bias draws from the same
    $U(-1/\sqrt{\text{fan\_in}}, 1/\sqrt{\text{fan\_in}})$.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        bias: bool = True,
        dtype=np.float64,
    ):
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride, self.padding = _pair(stride, "stride"), _pair(padding, "padding")
        self.weight = Parameter(
            np.empty((out_channels, in_channels, *self.kernel_size), dtype=dtype)
        )
        self.bias = Parameter(np.empty(out_channels, dtype=dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(
            self.weight, a=math.sqrt(5)
        )  # U(-1/sqrt(fan_in), 1/sqrt(fan_in)), see above
        if self.bias is not None:
            bound = 1 / math.sqrt(
                self.in_channels * self.kernel_size[0] * self.kernel_size[1]
            )
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding)

    def extra_repr(self) -> str:
        s = (
            f"{self.in_channels}, {self.out_channels}, "
            f"kernel_size={self.kernel_size}, stride={self.stride}"
        )
        s += f", padding={self.padding}" if self.padding != (0, 0) else ""
        return s + (", bias=False" if self.bias is None else "")


class MaxPool2d(Module):
    """:func:`~scratch.engine.functional.max_pool2d` as a layer (no parameters);
    ``stride`` defaults to ``kernel_size``."""

    def __init__(self, kernel_size, stride=None, padding=0):
        self.kernel_size, self.padding = kernel_size, padding
        self.stride = kernel_size if stride is None else stride

    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding)

    def extra_repr(self) -> str:
        k, s, p = self.kernel_size, self.stride, self.padding
        return f"kernel_size={k}, stride={s}, padding={p}"


class AvgPool2d(MaxPool2d):
    """:func:`~scratch.engine.functional.avg_pool2d` as a layer (no parameters);
    ``stride`` defaults to ``kernel_size``."""

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding)


# ---- normalization: layers around the functions of normalization.py ------------------
class _BatchNorm(Module):
    r"""Shared by :class:`BatchNorm1d` and :class:`BatchNorm2d` (they differ in the
    input's rank only).

    ``weight`` $\gamma$ starts at 1 and ``bias`` $\beta$ at 0, so a new layer only
    standardizes. The running statistics are buffers (saved in ``state_dict``,
    never trained): ``running_mean`` (starts at 0), ``running_var`` (at 1) and
    ``num_batches_tracked``, which counts training batches and, with
    ``momentum=None``, makes the running statistics plain averages over all
    batches seen (momentum $1/t$ at batch $t$), as in PyTorch.
    """

    _ranks: tuple = ()

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        dtype=np.float64,
    ):
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.weight = Parameter(np.ones(num_features, dtype=dtype)) if affine else None
        self.bias = Parameter(np.zeros(num_features, dtype=dtype)) if affine else None
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(num_features, dtype=dtype))
            self.register_buffer("running_var", np.ones(num_features, dtype=dtype))
            self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            (
                self.running_mean[...],
                self.running_var[...],
                self.num_batches_tracked[...],
            ) = 0, 1, 0

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim not in self._ranks:
            raise ValueError(
                f"{type(self).__name__} expects a "
                f"{' or '.join(map(str, self._ranks))}-d input, "
                f"got shape {x.shape}"
            )
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked += 1
            if self.momentum is None:  # a cumulative average: batch t gets weight 1/t
                momentum = 1.0 / float(self.num_batches_tracked)
        # Batch statistics in training, and also in evaluation when there are no running
        # ones.
        use_batch_stats = self.training or self.running_mean is None
        return F.batch_norm(
            x,
            self.running_mean
            if not self.training or self.track_running_stats
            else None,
            self.running_var if not self.training or self.track_running_stats else None,
            self.weight,
            self.bias,
            use_batch_stats,
            momentum,
            self.eps,
        )

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, "
            f"track_running_stats={self.track_running_stats}"
        )


class BatchNorm1d(_BatchNorm):
    """Batch norm of (N, C) features or (N, C, L) sequences: statistics per channel
    C."""

    _ranks = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch norm of (N, C, H, W) images: statistics per channel over the batch and the
    positions."""

    _ranks = (4,)


class LayerNorm(Module):
    r""":func:`~scratch.engine.functional.layer_norm` over the last axes, of shape
    ``normalized_shape``, with an elementwise
    $\gamma$ (starts at 1) and $\beta$ (at 0) of that shape, as
    ``torch.nn.LayerNorm``."""

    def __init__(
        self,
        normalized_shape,
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        dtype=np.float64,
    ):
        self.normalized_shape = (
            (normalized_shape,)
            if np.ndim(normalized_shape) == 0
            else tuple(normalized_shape)
        )
        self.eps, self.elementwise_affine = eps, elementwise_affine
        self.weight = (
            Parameter(np.ones(self.normalized_shape, dtype=dtype))
            if elementwise_affine
            else None
        )
        self.bias = (
            Parameter(np.zeros(self.normalized_shape, dtype=dtype))
            if elementwise_affine
            else None
        )

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        affine = self.elementwise_affine
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={affine}"


class GroupNorm(Module):
    r""":func:`~scratch.engine.functional.group_norm` with ``num_groups`` groups of the
    ``num_channels`` channels and a
    per-channel $\gamma$ (starts at 1) and $\beta$ (at 0), as ``torch.nn.GroupNorm``."""

    def __init__(
        self,
        num_groups: int,
        num_channels: int,
        eps: float = 1e-5,
        affine: bool = True,
        dtype=np.float64,
    ):
        if num_channels % num_groups:
            raise ValueError(
                f"num_channels ({num_channels}) must be divisible by num_groups "
                f"({num_groups})"
            )
        self.num_groups, self.num_channels, self.eps, self.affine = (
            num_groups,
            num_channels,
            eps,
            affine,
        )
        self.weight = Parameter(np.ones(num_channels, dtype=dtype)) if affine else None
        self.bias = Parameter(np.zeros(num_channels, dtype=dtype)) if affine else None

    def forward(self, x: Tensor) -> Tensor:
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        groups, channels = self.num_groups, self.num_channels
        return f"{groups}, {channels}, eps={self.eps}, affine={self.affine}"


# ---- torch.nn.utils ------------------------------------------------------------------
def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0) -> float:
    r"""Scale every gradient by $\min(1, \text{max\_norm} / \lVert g \rVert)$, where
    $\lVert g \rVert$ is the norm of all the gradients together; returns that norm.

    The direction of the step is kept, only its length is capped: the remedy of
    Pascanu, Mikolov & Bengio (2013) for the exploding gradients of recurrent
    networks. As ``torch.nn.utils.clip_grad_norm_`` (the same 1e-6 in the
    denominator).
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return 0.0
    if norm_type == math.inf:
        total = max(float(np.abs(g).max()) for g in grads)
    else:
        total = float(
            sum(float((np.abs(g) ** norm_type).sum()) for g in grads) ** (1 / norm_type)
        )
    scale = max_norm / (total + 1e-6)
    if scale < 1:
        for g in grads:
            g *= scale  # in place: p.grad is ours (Tensor.backward copies it)
    return total


class utils:  # noqa: N801  (torch.nn.utils's place: nn.utils.clip_grad_norm_)
    clip_grad_norm_ = staticmethod(clip_grad_norm_)
