r"""LeNet-5 (LeCun, Bottou, Bengio & Haffner, 1998) from ``torch.nn`` layers.

The network of the paper's Fig. 2, layer by layer (``B`` is the batch size)::

    input  (B, 1, 32, 32)   an MNIST digit (28x28) padded by 2 pixels
    C1     (B, 6, 28, 28)   6 maps, 5x5 convolution               156 params
    S2     (B, 6, 14, 14)   2x2 trainable subsampling              12 params
    C3     (B, 16, 10, 10)  16 maps, 5x5 convolution, Table I   1,516 params
    S4     (B, 16, 5, 5)    2x2 trainable subsampling              32 params
    C5     (B, 120)         120 maps, 5x5 convolution (1x1)    48,120 params
    F6     (B, 84)          fully connected                    10,164 params
    output (B, 10)          fully connected (paper: RBF units)    850 params

Every layer up to F6 is followed by the paper's scaled tanh,
:math:`f(a) = 1.7159 \tanh(\tfrac{2}{3} a)`. The paper's output layer is made
of Euclidean radial-basis-function units with fixed, hand-designed
parameters; we use a trainable ``Linear(84, 10)`` and cross-entropy instead,
as nearly every re-implementation does.

``LeNet5(modern=True)`` swaps in three later habits: ReLU instead of the
scaled tanh, max-pooling instead of trainable subsampling, and a fully
connected C3.

Chapter: "LeNet-5: convolutional networks" (book/vision/lenet.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..config import describe, field, positive
from .spec import ModelSpec

# The paper's trainable parameters per layer (Section II.B): 60,000 in all.
PAPER_PARAMETERS = {
    "c1": 156,
    "s2": 12,
    "c3": 1_516,
    "s4": 32,
    "c5": 48_120,
    "f6": 10_164,
}

# Table I of the paper: which S2 maps (rows, 0-5) each C3 map (columns, 0-15)
# takes as input. Maps 0-5 see 3 neighbouring S2 maps, maps 6-11 see 4
# neighbouring ones, maps 12-14 see 4 non-neighbouring ones and map 15 sees
# all 6: 60 connections.
C3_TABLE_TEXT = """
X...XXX..XXXX.XX
XX...XXX..XXXX.X
XXX...XXX..X.XXX
.XXX..XXXX..X.XX
..XXX..XXXX.XX.X
...XXX..XXXX.XXX
"""


def c3_table() -> torch.Tensor:
    """Table I as a bool tensor (6, 16): ``table[i, j]`` is True when C3 map
    ``j`` takes S2 map ``i`` as input."""
    rows = C3_TABLE_TEXT.split()
    return torch.tensor([[c == "X" for c in row] for row in rows])


class ScaledTanh(nn.Module):
    r"""The paper's squashing function :math:`f(a) = A \tanh(S a)`,
    :math:`A = 1.7159`, :math:`S = 2/3`.

    The constants make :math:`f(\pm 1) = \pm 1`, so targets of :math:`\pm 1`
    sit where the curvature of :math:`f` is largest, not on its flat
    asymptotes, and give a gain near 1 around zero (:math:`f'(0) = AS`).
    """

    def __init__(self, amplitude: float = 1.7159, slope: float = 2 / 3):
        super().__init__()
        self.amplitude, self.slope = amplitude, slope

    def forward(self, x):
        return self.amplitude * torch.tanh(self.slope * x)

    def extra_repr(self):
        return f"amplitude={self.amplitude}, slope={self.slope:.4g}"


class Subsampling(nn.Module):
    r"""The paper's S2/S4 layers: 2x2 average pooling, then a trainable
    coefficient and a trainable bias per feature map (2 parameters a map).

    .. math:: y_c[u, v] = w_c \cdot \tfrac14 \sum_{p, q \in \{0, 1\}}
              x_c[2u + p, 2v + q] + b_c

    The paper adds the four inputs; averaging only rescales :math:`w_c` by 4.
    Shapes: (B, C, H, W) -> (B, C, H/2, W/2).
    """

    def __init__(self, channels: int, kernel_size: int = 2):
        super().__init__()
        self.kernel_size = kernel_size
        self.weight = nn.Parameter(torch.ones(channels))  # (C,) coefficients
        self.bias = nn.Parameter(torch.zeros(channels))  # (C,) biases

    def forward(self, x):
        x = F.avg_pool2d(x, self.kernel_size)  # (B, C, H/2, W/2)
        return x * self.weight[:, None, None] + self.bias[:, None, None]

    def extra_repr(self):
        return f"channels={len(self.weight)}, kernel_size={self.kernel_size}"


class PartialConv2d(nn.Module):
    r"""A convolution in which output map :math:`j` sees only the input maps
    that ``table[:, j]`` marks (LeNet-5's C3, with the paper's Table I).

    .. math:: y_j = b_j + \sum_{i \,:\, \mathrm{table}[i, j]} w_{ji} \star x_i

    Only the connected kernels are parameters: ``weight`` holds one k x k
    kernel per connection, shape (connections, k, k), so the layer has
    exactly ``connections * k * k + out_channels`` parameters. The forward
    pass scatters them into an ordinary (out, in, k, k) kernel that is zero
    where the table has no connection and runs one dense ``conv2d``. The
    scatter is a product with a fixed 0/1 matrix, which unlike ``index_copy``
    is deterministic on GPUs too.
    """

    def __init__(self, table: torch.Tensor, kernel_size: int):
        super().__init__()
        table = torch.as_tensor(table, dtype=torch.bool)  # (in, out)
        self.in_channels, self.out_channels = table.shape
        self.kernel_size = k = kernel_size
        self.register_buffer("table", table.clone(), persistent=False)
        # Where each connection sits in the flattened (out, in) kernel grid.
        index = table.t().reshape(-1).nonzero().flatten()  # (connections,)
        self.register_buffer("index", index, persistent=False)
        # placement[s, c] = 1 if connection c goes to kernel slot s.
        placement = torch.zeros(table.numel(), len(index))  # (out*in, conn)
        placement[index, torch.arange(len(index))] = 1.0
        self.register_buffer("placement", placement, persistent=False)
        self.weight = nn.Parameter(torch.empty(len(index), k, k))  # (n, k, k)
        self.bias = nn.Parameter(torch.zeros(self.out_channels))  # (out,)
        self.reset_parameters()

    def fan_in(self) -> torch.Tensor:
        """Inputs of one unit of each connection's output map, (connections,):
        k * k times the number of input maps that map sees."""
        maps_seen = self.table.sum(0)  # (out,)
        return maps_seen[self.index // self.in_channels] * self.kernel_size**2

    def reset_parameters(self):
        """PyTorch's Conv2d default, U(+-1/sqrt(fan_in)), per map's fan-in."""
        bound = self.fan_in().float().rsqrt()  # (connections,)
        map_fan_in = self.table.sum(0) * self.kernel_size**2  # (out,)
        with torch.no_grad():
            self.weight.uniform_(-1, 1).mul_(bound[:, None, None])
            self.bias.uniform_(-1, 1).mul_(map_fan_in.float().rsqrt())

    def full_weight(self) -> torch.Tensor:
        """The equivalent dense kernel (out, in, k, k), zero off the table."""
        c_out, c_in, k = self.out_channels, self.in_channels, self.kernel_size
        dense = self.placement @ self.weight.flatten(1)  # (out*in, k*k)
        return dense.view(c_out, c_in, k, k)

    def forward(self, x):  # (B, in, H, W) -> (B, out, H - k + 1, W - k + 1)
        return F.conv2d(x, self.full_weight(), self.bias)

    def extra_repr(self):
        return (
            f"{self.in_channels}, {self.out_channels}, "
            f"kernel_size={self.kernel_size}, "
            f"connections={len(self.index)}"
        )


class LeNet5(nn.Module):
    r"""LeNet-5: images (B, 1, 32, 32) -> class scores (B, 10).

    ``modern=False`` (default) is the 1998 network: scaled tanh, trainable
    subsampling, Table I's partial C3, and weights initialised as in LeCun's
    *Efficient BackProp*, :math:`w \sim \mathcal N(0, 1/F_{in})` for a unit
    with :math:`F_{in}` inputs, which keeps the variance of every weighted sum
    near 1 when its inputs have variance 1.

    ``modern=True``: ReLU, 2x2 max-pooling (no parameters), a full C3 (2,416
    parameters) and He initialisation, :math:`\mathcal N(0, 2/F_{in})`: the
    same rule, corrected for ReLU zeroing half of its inputs.
    """

    def __init__(self, num_classes: int = 10, modern: bool = False):
        super().__init__()
        self.modern = modern
        self.c1 = nn.Conv2d(1, 6, kernel_size=5)
        self.s2 = nn.MaxPool2d(2) if modern else Subsampling(6)
        self.c3 = (
            nn.Conv2d(6, 16, kernel_size=5)
            if modern
            else PartialConv2d(c3_table(), kernel_size=5)
        )
        self.s4 = nn.MaxPool2d(2) if modern else Subsampling(16)
        self.c5 = nn.Conv2d(16, 120, kernel_size=5)  # 5x5 on 5x5: dense
        self.f6 = nn.Linear(120, 84)
        self.output = nn.Linear(84, num_classes)  # paper: fixed RBF units
        self.act = nn.ReLU() if modern else ScaledTanh()
        self.apply(partial(_init, gain=math.sqrt(2) if modern else 1.0))

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every layer's output after its activation, by the paper's names."""
        if x.shape[-2:] != (32, 32):
            raise ValueError(
                f"LeNet5 expects 32x32 images, got {tuple(x.shape[-2:])}: "
                "pad 28x28 MNIST digits by 2 pixels (see pad_and_normalize)"
            )
        out = {}
        out["C1"] = x = self.act(self.c1(x))  # (B, 6, 28, 28)
        out["S2"] = x = self.act(self.s2(x))  # (B, 6, 14, 14)
        out["C3"] = x = self.act(self.c3(x))  # (B, 16, 10, 10)
        out["S4"] = x = self.act(self.s4(x))  # (B, 16, 5, 5)
        out["C5"] = x = self.act(self.c5(x)).flatten(1)  # (B, 120)
        out["F6"] = self.act(self.f6(x))  # (B, 84)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.features(x)["F6"])  # (B, 10) logits


def _init(module: nn.Module, gain: float = 1.0) -> None:
    """Weights ~ N(0, gain^2 / fan_in), biases 0: gain 1 is LeCun's rule
    (Efficient BackProp, 1998), gain sqrt(2) He's rule for ReLU (2015)."""
    with torch.no_grad():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            fan_in = module.weight[0].numel()
            module.weight.normal_(0.0, gain / math.sqrt(fan_in))
            module.bias.zero_()
        elif isinstance(module, PartialConv2d):
            std = gain * module.fan_in().float().rsqrt()  # (connections,)
            module.weight.normal_().mul_(std[:, None, None])
            module.bias.zero_()


# ---- MNIST as LeNet-5's input -----------------------------------------------
def pixel_stats(images: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of uint8 images, in [0, 1] units."""
    x = np.asarray(images, dtype=np.float64) / 255.0
    return float(x.mean()), float(x.std())


def pad_and_normalize(
    images: np.ndarray, mean: float, std: float, pad: int = 2
) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float32 (N, 1, 32, 32): pad, then standardise.

    Padding comes first, so the border gets the background's value
    (-mean/std), not 0. The paper also normalises its inputs to roughly mean 0
    and variance 1 (Section II.A).
    """
    x = torch.as_tensor(np.asarray(images), dtype=torch.float32) / 255.0
    x = F.pad(x, (pad, pad, pad, pad))  # (N, 28, 28) -> (N, 32, 32)
    return ((x - mean) / std).unsqueeze(1)  # (N, 1, 32, 32)


def random_shift(
    x: torch.Tensor, max_shift: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Translate each image of a batch (B, C, H, W) by its own random whole
    number of pixels in [-max_shift, max_shift] along each axis. Pixels
    shifted in copy the nearest border pixel: for a digit, background."""
    if max_shift <= 0:
        return x
    b, _, h, w = x.shape
    s = max_shift
    padded = F.pad(x, (s, s, s, s), mode="replicate")  # (B, C, H+2s, W+2s)
    dy, dx = torch.randint(0, 2 * s + 1, (2, b, 1), generator=generator)
    rows = (torch.arange(h) + dy)[:, :, None]  # (B, H, 1)
    cols = (torch.arange(w) + dx)[:, None, :]  # (B, 1, W)
    batch = torch.arange(b)[:, None, None]  # (B, 1, 1)
    crops = padded.permute(0, 2, 3, 1)[batch, rows, cols]  # (B, H, W, C)
    return crops.permute(0, 3, 1, 2)  # (B, C, H, W)


@dataclass
class LeNetSpec(ModelSpec):
    """LeNet-5's choices: the 1998 network, or its modern variant."""

    modern: bool = field(
        default=False,
        metadata=describe(
            "ReLU, max-pooling, a full C3 and He initialisation instead of the "
            "paper's scaled tanh, trainable subsampling and partial C3"
        ),
    )
    num_classes: int = field(default=10, metadata=positive("output classes"))

    def build(self) -> LeNet5:
        return LeNet5(self.num_classes, modern=self.modern)
