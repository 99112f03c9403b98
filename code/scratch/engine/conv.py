r"""Convolution and pooling for the NumPy engine: the functions (``F.conv2d``, ...).

Their layers, :class:`~scratch.engine.nn.Conv2d`, ``MaxPool2d`` and ``AvgPool2d``,
are in :mod:`scratch.engine.nn`, one layer up: this module imports no ``Module``.

Each op is one fused node of the graph (one :func:`~scratch.engine.tensor._make`
call) with a hand-written backward, and none loops in Python over pixels or
batch items: the only loops run over the $k_h k_w$ offsets of a kernel.

**Convolution as one matrix product (im2col).** With stride $s$ and the input
zero-padded, PyTorch's ``conv2d`` (a cross-correlation) is

$$Y_{n,o,i,j} = b_o + \sum_{c,p,q} W_{o,c,p,q}\, X_{n,c,\,s i+p,\,s j+q}.$$

Copy the inputs into a matrix ``cols`` of shape $(C k_h k_w,\; OH \cdot OW \cdot N)$
("image to columns"): row $(c, p, q)$ holds channel $c$ shifted by the kernel
offset $(p, q)$, read at every output position, so each *column* is one
receptive field. With the weight flattened to $W_2$, shape $(O,\; C k_h k_w)$,
the whole layer is a single GEMM, the operation BLAS does fastest:

$$Y_2 = W_2\, \mathrm{cols} + b \qquad (O,\; OH\,OW\,N).$$

Its backward is the backward of a matrix product,

$$\bar W_2 = \bar Y_2\, \mathrm{cols}^\top, \qquad \bar b =
\textstyle\sum_{\text{columns}} \bar Y_2, \qquad \overline{\mathrm{cols}} = W_2^\top
\bar Y_2,$$

followed by "columns to image" (col2im): each entry of $\overline{\mathrm{cols}}$
goes back to the pixel it was copied from, and a pixel that sat in several
receptive fields sums their gradients (the backward of a copy is a sum).
Both copies loop over the $k_h k_w$ offsets, each moving $C \cdot OH \cdot OW \cdot N$
numbers at once. The price of im2col is memory: ``cols`` is $k_h k_w$ times
the size of the input (divided by $s_h s_w$), and it is kept for the backward pass.
So $\overline{\mathrm{cols}}$, as large, is never built whole: for each offset
$(p, q)$ its $C$ rows $W_{2,pq}^\top \bar Y_2$ are one smaller GEMM, added to the
input's gradient at once, while they are still in cache. (Fresh large arrays
are slow in NumPy: the operating system zeroes every new page on first touch.)

**Memory layout: the batch axis last.** Inside these ops an image batch is
(C, H, W, N). Shifting it by a kernel offset then moves runs of $W \cdot N$
contiguous numbers, where PyTorch's (N, C, H, W) would give runs of one row of
$W$: NumPy's inner loops get long and the copies run at memory speed. The
results are handed back as (N, C, H, W) *views* of batch-last memory, so in a
chain conv -> ReLU -> pool -> conv nothing is ever transposed: the next op's
``x.transpose(1, 2, 3, 0)`` is free. (The shapes are PyTorch's everywhere;
only the strides differ, and NumPy handles any strides.)

Chapter: "Convolutional networks from scratch" (book/foundations/cnn.md).
"""

from __future__ import annotations

import numpy as np

from .tensor import Tensor, _make


def _recycle_large_blocks() -> None:
    """Make the C allocator keep freed blocks of up to 31 MB for reuse (called once, at
    import).

    By default glibc's ``malloc`` maps a large block straight from the operating
    system and unmaps it on ``free`` (or trims the heap it came from). The next
    large array then page-faults on every 4 KB page, each zeroed by the kernel
    in a few microseconds; with im2col matrices of tens of MB, a small CNN's
    training step spent more time there than in its largest GEMM. glibc
    adapts, though (see ``man mallopt``): freeing a mapped block raises the size
    from which it maps to that block's size (32 MB at most) and its heap-trim
    threshold to twice that. Allocating and freeing one 31 MB block, whose pages
    are never touched, does it now. (Elsewhere, this is a harmless no-op.)
    """
    np.empty(31 * 2**20, dtype=np.uint8)


_recycle_large_blocks()


# ---- geometry ------------------------------------------------------------------------
def _pair(value, name: str = "value") -> tuple:
    """``3`` -> ``(3, 3)``; ``(3, 2)`` stays (height, width): PyTorch accepts either."""
    pair = (value, value) if np.ndim(value) == 0 else tuple(value)
    if len(pair) != 2 or any(int(v) != v for v in pair):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return int(pair[0]), int(pair[1])


def _geometry(x: Tensor, kernel, stride, padding, op: str):
    r"""Check a 4-d input; resolve kernel, stride and padding into pairs; compute the
    output size

    $$OH = \left\lfloor \frac{H + 2 p_h - k_h}{s_h} \right\rfloor + 1$$

    (and $OW$ alike), rounded down as in PyTorch: a last window that would stick
    out of the (padded) input is dropped, and so are the rows it would have read.
    """
    if x.ndim != 4:
        raise ValueError(f"{op} expects an input of shape (N, C, H, W), got {x.shape}")
    kernel, stride, padding = (
        _pair(kernel, "kernel_size"),
        _pair(stride, "stride"),
        _pair(padding, "padding"),
    )
    if min(kernel) < 1 or min(stride) < 1 or min(padding) < 0:
        raise ValueError(
            f"{op}: kernel_size and stride must be >= 1 and padding >= 0, "
            f"got {kernel}, {stride}, {padding}"
        )
    out = tuple(
        (x.shape[2 + a] + 2 * padding[a] - kernel[a]) // stride[a] + 1 for a in (0, 1)
    )
    if min(out) < 1:
        raise ValueError(
            f"{op}: kernel {kernel} is larger than the input {x.shape[2:]} padded by "
            f"{padding}"
        )
    return kernel, stride, padding, out


def _batch_last(x: np.ndarray, padding: tuple, value: float = 0.0) -> np.ndarray:
    """(N, C, H, W) -> (C, H + 2 p_h, W + 2 p_w, N), padded with ``value``: the layout
    every op
    of this module works in (see the module's docstring). A view, free when ``x`` is
    batch-last
    in memory already, unless there is padding to add."""
    xt = x.transpose(1, 2, 3, 0)  # (C, H, W, N), a view
    (ph, pw), (c, h, w, n) = padding, xt.shape
    if ph == 0 and pw == 0:
        return xt
    out = np.full((c, h + 2 * ph, w + 2 * pw, n), value, dtype=x.dtype)
    out[:, ph : ph + h, pw : pw + w] = xt
    return out


def _offsets(kernel: tuple, stride: tuple, out: tuple):
    r"""Each kernel offset $(p, q)$, as its index $p k_w + q$ and the (rows, columns)
    slices of
    the padded input it reads across all windows: rows $p, p + s_h, \ldots$
    ($OH$ of them)."""
    for p in range(kernel[0]):
        for q in range(kernel[1]):
            yield (
                p * kernel[1] + q,
                (
                    slice(p, p + stride[0] * (out[0] - 1) + 1, stride[0]),
                    slice(q, q + stride[1] * (out[1] - 1) + 1, stride[1]),
                ),
            )


def _unpad(gxt: np.ndarray, padding: tuple, shape: tuple) -> np.ndarray:
    """The gradient of the padded, batch-last input -> that of the (N, C, H, W) input
    (a view)."""
    (ph, pw), (h, w) = padding, shape[2:]
    return gxt[:, ph : ph + h, pw : pw + w].transpose(3, 0, 1, 2)


# ---- convolution ---------------------------------------------------------------------
def conv2d(
    x: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0
) -> Tensor:
    """2-d convolution (a cross-correlation), as ``torch.nn.functional.conv2d``.

    ``x`` (N, C, H, W), ``weight`` (O, C, kh, kw), ``bias`` (O,) or None;
    ``stride`` and ``padding`` (with zeros) an int or a (height, width) pair.
    Returns (N, O, OH, OW). Forward: one im2col copy and one GEMM; backward:
    one GEMM for the weight, and one per kernel offset for the input (col2im;
    see the module's docstring).
    """
    if weight.ndim != 4 or x.ndim != 4 or x.shape[1] != weight.shape[1]:
        raise ValueError(
            f"conv2d: input (N, C, H, W) {x.shape} and weight (O, C, kh, kw) "
            f"{weight.shape} "
            f"must agree on C"
        )
    kernel, stride, padding, (oh, ow) = _geometry(
        x, weight.shape[2:], stride, padding, "conv2d"
    )
    n, c = x.shape[:2]
    o, kk = weight.shape[0], kernel[0] * kernel[1]

    # im2col. Row (c, p, q) of `cols` is input channel c shifted by the kernel offset
    # (p, q), read at every output position: one strided copy per offset fills C rows at
    # once.
    xt = _batch_last(x.data, padding)  # (C, Hp, Wp, N)
    cols = np.empty((c, kk, oh, ow, n), dtype=xt.dtype)
    for k, (rows, columns) in _offsets(kernel, stride, (oh, ow)):
        cols[:, k] = xt[:, rows, columns]  # (C, OH, OW, N)
    cols = cols.reshape(c * kk, oh * ow * n)  # (C*kh*kw, OH*OW*N)
    w2 = weight.data.reshape(o, c * kk)  # (O, C*kh*kw)
    y2 = w2 @ cols  # (O, OH*OW*N): the GEMM
    if bias is not None:
        y2 += bias.data[:, None]
    y = y2.reshape(o, oh, ow, n).transpose(3, 0, 1, 2)  # (N, O, OH, OW), a view

    def backward(g):  # g: (N, O, OH, OW)
        # Free when g is batch-last in memory (it is when it comes from our pooling or a
        # ReLU).
        g2 = g.transpose(1, 2, 3, 0).reshape(o, oh * ow * n)  # (O, OH*OW*N)
        # W2bar = Y2bar cols^T, computed as (cols Y2bar^T)^T: the same numbers, a faster
        # BLAS call here.
        gw = (cols @ g2.T).T.reshape(weight.shape) if weight.requires_grad else None
        gb = g2.sum(axis=1) if bias is not None and bias.requires_grad else None
        gx = None
        if (
            x.requires_grad
        ):  # (not for a network's first layer: it would be thrown away)
            # col2im, one kernel offset at a time: the C rows of the gradient of `cols`
            # that belong to offset (p, q), W_pq^T Y2bar (a GEMM), go straight back to
            # the pixels they were copied from. The whole gradient of `cols` (kh*kw
            # times the input) is never held.
            w_offsets = np.ascontiguousarray(
                w2.reshape(o, c, kk).transpose(2, 1, 0)
            )  # (kh*kw, C, O)
            gxt = np.zeros(xt.shape, dtype=g2.dtype)  # (C, Hp, Wp, N)
            rows_k = np.empty((c, oh * ow * n), dtype=g2.dtype)  # (C, OH*OW*N)
            for k, (rows, columns) in _offsets(kernel, stride, (oh, ow)):
                np.matmul(w_offsets[k], g2, out=rows_k)
                gxt[:, rows, columns] += rows_k.reshape(
                    c, oh, ow, n
                )  # a pixel in several windows: a sum
            gx = _unpad(gxt, padding, x.shape)
        return (gx, gw) if bias is None else (gx, gw, gb)

    parents = (x, weight) if bias is None else (x, weight, bias)
    return _make(y, parents, backward, "conv2d")


# ---- pooling -------------------------------------------------------------------------
def _pool_geometry(x, kernel_size, stride, padding, op):
    """:func:`_geometry` with PyTorch's pooling defaults (stride = kernel) and padding
    rule."""
    kernel, stride, padding, out = _geometry(
        x, kernel_size, kernel_size if stride is None else stride, padding, op
    )
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:  # PyTorch's rule too
        raise ValueError(
            f"{op}: padding {padding} must be at most half the kernel size {kernel}"
        )
    return kernel, stride, padding, out


def max_pool2d(x: Tensor, kernel_size, stride=None, padding=0) -> Tensor:
    r"""The largest value of each window, as ``torch.nn.functional.max_pool2d``.

    ``stride`` defaults to ``kernel_size`` (windows side by side); ``padding``
    adds borders of $-\infty$, which never win. The gradient goes to the
    input that won each window and to no other,
    $\bar X_{\arg\max} \mathrel{+}= \bar Y$; on a tie the first maximum in
    row-major window order wins, as in PyTorch. Overlapping windows
    (stride < kernel) may send several gradients to one pixel: they add up.
    A window holding a NaN outputs NaN, as in PyTorch, and passes no gradient back.
    """
    kernel, stride, padding, out = _pool_geometry(
        x, kernel_size, stride, padding, "max_pool2d"
    )
    overlap = stride[0] < kernel[0] or stride[1] < kernel[1]
    xt = _batch_last(x.data, padding, value=-np.inf)  # (C, Hp, Wp, N)
    # The maximum over the windows, one kernel offset at a time (np.maximum lets a NaN
    # win, as PyTorch does). Where it came from is found again in backward.
    offsets = list(_offsets(kernel, stride, out))
    yt = xt[:, offsets[0][1][0], offsets[0][1][1]].copy()  # (C, OH, OW, N)
    for _, (rows, columns) in offsets[1:]:
        np.maximum(yt, xt[:, rows, columns], out=yt)

    def backward(g):  # g: (N, C, OH, OW)
        # Visit the offsets in row-major window order: the first input equal to its
        # window's maximum takes the whole gradient, and later ties get nothing
        # (`pending` is zeroed).
        pending = g.transpose(1, 2, 3, 0).copy()  # (C, OH, OW, N)
        gxt = np.zeros(xt.shape, dtype=g.dtype)  # (C, Hp, Wp, N)
        wins = np.empty(yt.shape, dtype=bool)  # (C, OH, OW, N)
        for k, (rows, columns) in offsets:
            np.equal(xt[:, rows, columns], yt, out=wins)
            if overlap:  # a pixel in several windows collects several shares
                gxt[:, rows, columns] += pending * wins
            else:  # each pixel is in one window at most: write, no read
                np.multiply(pending, wins, out=gxt[:, rows, columns])
            if k < len(offsets) - 1:
                pending *= np.logical_not(wins, out=wins)
        return (_unpad(gxt, padding, x.shape),)

    return _make(yt.transpose(3, 0, 1, 2), (x,), backward, "max_pool2d")


def avg_pool2d(x: Tensor, kernel_size, stride=None, padding=0) -> Tensor:
    r"""The mean of each window, as ``torch.nn.functional.avg_pool2d``.

    $Y_{i,j} = \frac{1}{k_h k_w} \sum_{p,q} X_{s_h i + p,\; s_w j + q}$, so each input
    of a window gets $\bar Y / (k_h k_w)$ from it. Zero padding counts in the mean
    (PyTorch's default ``count_include_pad=True``).
    """
    kernel, stride, padding, out = _pool_geometry(
        x, kernel_size, stride, padding, "avg_pool2d"
    )
    xt = _batch_last(x.data, padding)  # (C, Hp, Wp, N)
    scale = 1 / (kernel[0] * kernel[1])
    yt = np.zeros((x.shape[1], *out, x.shape[0]), dtype=x.dtype)  # (C, OH, OW, N)
    for _, (rows, columns) in _offsets(kernel, stride, out):
        yt += xt[:, rows, columns]
    yt *= scale

    def backward(g):
        share = g.transpose(1, 2, 3, 0) * scale  # (C, OH, OW, N)
        gxt = np.zeros(xt.shape, dtype=share.dtype)
        for _, (rows, columns) in _offsets(kernel, stride, out):
            gxt[:, rows, columns] += share
        return (_unpad(gxt, padding, x.shape),)

    return _make(yt.transpose(3, 0, 1, 2), (x,), backward, "avg_pool2d")
