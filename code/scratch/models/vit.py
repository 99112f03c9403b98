r"""The Vision Transformer (Dosovitskiy et al., 2021), from ``torch.nn`` layers.

An image of $H \times W$ pixels is cut into $N = HW / P^2$ patches of
$P \times P$ pixels; each flattened patch is mapped linearly to $D$ dimensions,
a learned class token is put in front, learned position embeddings are added,

$$\mathbf{z}_0 = [\mathbf{x}_\text{class};\, \mathbf{x}_p^1 \mathbf{E};\, \dots;\,
\mathbf{x}_p^N \mathbf{E}] + \mathbf{E}_{pos}, \qquad
\mathbf{E} \in \mathbb{R}^{(P^2 C) \times D},\;
\mathbf{E}_{pos} \in \mathbb{R}^{(N + 1) \times D},$$

and $L$ pre-norm Transformer encoder layers follow (the encoder layer of the
Transformer chapter, :class:`scratch.models.transformer.EncoderLayer` with
``norm_first=True``, here with the paper's GELU in its MLP: :class:`ViTBlock`).
The class token's final state, layer-normalised, goes to a linear head.

- :class:`PatchEmbedding`: the patch projection as a ``Conv2d`` with kernel
  and stride $P$ (the same map as flattening patches and an ``nn.Linear``; the
  tests check it);
- :class:`ConvStem`: a hybrid's tokens instead (the paper's Section 3.1; Xiao
  et al., 2021): one strided 3x3 convolution with batch norm and ReLU, then the
  patch projection of a $P/2$ patch on its half-size map: the same tokens,
  with some locality put back;
- :class:`VisionTransformer` and :class:`ViTSpec` (``build(mean, std)`` as
  :class:`scratch.models.resnet.ResNetSpec`), with :data:`VIT_B16` (ViT-B/16,
  whose 86,567,656 parameters at 224 px with a 1000-class head the tests check);
- :func:`attention_maps` and :func:`attention_rollout` (Abnar and Zuidema,
  2020): what the class token attends to, in one layer or through all of them.

Chapter: "The Vision Transformer" (book/sequences/vit.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..config import (
    ConfigError,
    choice,
    describe,
    field,
    in_range,
    non_negative,
    positive,
)
from .layers import Normalize
from .spec import ModelSpec
from .transformer import EncoderLayer, keep_attention

# The paper's Table 1: ViT-Base has 12 layers of width 768, MLP 3072, 12 heads
# ("86M" parameters); "/16" is the patch size. Counted on ImageNet-1k at 224 px
# (1000 classes, 196 patches + the class token), as timm's vit_base_patch16_224.
VIT_B16 = dict(
    image_size=224,
    patch_size=16,
    dim=768,
    depth=12,
    heads=12,
    mlp_dim=3072,
    num_classes=1000,
)
PAPER_VIT_B_PARAMETERS = 86e6  # Table 1, "Params": 86M
TIMM_VIT_B16_PARAMETERS = 86_567_656  # timm vit_base_patch16_224, 1000 classes
# omihub777/ViT-CIFAR: 7 layers of width 384, 12 heads, MLP 384, patch 4 (8x8
# patches), 6.3M parameters, 90.92% on CIFAR-10 after 200 epochs with AutoAugment
# and label smoothing (its README).
OMIHUB_VIT_CIFAR = dict(
    image_size=32, patch_size=4, dim=384, depth=7, heads=12, mlp_dim=384
)
OMIHUB_VIT_CIFAR_ACC = 0.9092


class ViTBlock(EncoderLayer):
    r"""The Transformer chapter's pre-norm encoder layer with the paper's GELU:
    $\mathbf{z}' = \mathbf{z} + \mathrm{MSA}(\mathrm{LN}(\mathbf{z}))$,
    $\mathbf{z}'' = \mathbf{z}' + \mathrm{MLP}(\mathrm{LN}(\mathbf{z}'))$, the
    MLP $\mathrm{GELU}(x W_1 + b_1) W_2 + b_2$ (the paper's Eq. 2-3). Only the
    activation differs from :class:`EncoderLayer`: same parameters, same names."""

    def __init__(self, d_model, nhead, dim_feedforward, dropout=0.0):
        super().__init__(d_model, nhead, dim_feedforward, dropout, norm_first=True)

    def _ff(self, x):
        return self.dropout2(self.linear2(self.dropout(F.gelu(self.linear1(x)))))


class PatchEmbedding(nn.Module):
    """(B, C, H, W) images -> (B, N, D) patch vectors, N = (H / P)(W / P), in
    row-major order. A ``Conv2d`` with kernel = stride = P sees each patch once:
    exactly a linear map of the flattened patch (weights (D, C, P, P))."""

    def __init__(self, patch_size: int, in_channels: int, dim: int):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_channels, dim, patch_size, stride=patch_size)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, D, h, w) -> (B, N, D)


class ConvStem(nn.Module):
    """(B, C, H, W) images -> (B, N, D) tokens, N = (H / P)(W / P), as
    :class:`PatchEmbedding`, but through a convolution first: a 3x3 convolution
    of stride 2 to ``channels`` maps, batch norm and ReLU, then a ``Conv2d`` of
    kernel = stride = P / 2 on the (H / 2, W / 2) map. Each token still covers
    its P x P patch (and the row above and the column left of it); it is now a
    nonlinear function of it, made of local features shared across the image: a
    convolution's two assumptions, locality and translation equivariance."""

    def __init__(self, patch_size: int, in_channels: int, dim: int, channels: int):
        super().__init__()
        if patch_size % 2:
            raise ValueError(f"a stem needs an even patch size, not {patch_size}")
        self.patch_size = patch_size
        self.conv = nn.Conv2d(in_channels, channels, 3, stride=2, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(channels)
        self.proj = nn.Conv2d(channels, dim, patch_size // 2, stride=patch_size // 2)

    def forward(self, x):
        x = F.relu(self.bn(self.conv(x)))  # (B, channels, H / 2, W / 2)
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, N, D)


class VisionTransformer(nn.Module):
    r"""Images (B, C, H, W) -> class logits (B, num_classes).

    ``pool="cls"`` classifies from the class token (the paper's); ``"mean"``
    averages the patch tokens instead (no class token; the paper's Appendix D.3
    finds both work with tuned learning rates). ``mean``/``std`` put a
    :class:`Normalize` first, so that the model takes pixels in [0, 1].
    ``stem > 0`` makes a hybrid: :class:`ConvStem` with that many channels makes
    the tokens instead of :class:`PatchEmbedding`.
    """

    def __init__(
        self,
        image_size: int = 224,
        patch_size: int = 16,
        in_channels: int = 3,
        num_classes: int = 1000,
        dim: int = 768,
        depth: int = 12,
        heads: int = 12,
        mlp_dim: int = 3072,
        dropout: float = 0.0,
        pool: str = "cls",
        mean=None,
        std=None,
        stem: int = 0,
    ):
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"image_size {image_size} is not a multiple of the patch")
        self.grid = image_size // patch_size  # patches per side
        self.pool = pool
        self.normalize = None if mean is None else Normalize(mean, std)
        if stem:
            self.patch_embed = ConvStem(patch_size, in_channels, dim, stem)
        else:
            self.patch_embed = PatchEmbedding(patch_size, in_channels, dim)
        tokens = self.grid**2 + (pool == "cls")
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if pool == "cls" else None
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens, dim))  # learned, 1-D
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            ViTBlock(dim, heads, mlp_dim, dropout) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)  # pre-norm stacks end with one
        self.head = nn.Linear(dim, num_classes)
        self._reset_parameters()

    def _reset_parameters(self):
        # As timm and the paper's JAX code: truncated N(0, 0.02^2) for positions,
        # the class token and the linear layers, zero biases; LayerNorm (1, 0); the
        # patch projection like a linear layer of its fan-in (PyTorch's default).
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        if self.cls_token is not None:
            nn.init.trunc_normal_(self.cls_token, std=0.02)
        for m in self.blocks.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        # A zero head starts at uniform predictions (the paper's fine-tuning
        # does the same): no class is preferred by chance at step 0.
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> z_0 (B, T, D), T = N + 1 with the class token first."""
        if self.normalize is not None:
            x = self.normalize(x)
        z = self.patch_embed(x)  # (B, N, D)
        if self.cls_token is not None:
            z = torch.cat([self.cls_token.expand(len(z), -1, -1), z], dim=1)
        return self.dropout(z + self.pos_embed)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The final, normalised token states (B, T, D)."""
        z = self.tokens(x)
        for block in self.blocks:
            z = block(z)
        return self.norm(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.features(x)  # (B, T, D)
        y = z[:, 0] if self.pool == "cls" else z.mean(dim=1)  # (B, D)
        return self.head(y)


@torch.no_grad()
def attention_maps(model: VisionTransformer, x: torch.Tensor) -> torch.Tensor:
    """Every layer's attention weights for images ``x``: (L, B, heads, T, T)
    (rows are queries). Runs the written-out attention core in eval mode."""
    was_training = model.training
    model.eval()
    with keep_attention(model) as layers:
        model(x)
        maps = torch.stack([m.last_weights.float() for m in layers])
    model.train(was_training)
    return maps


def attention_rollout(maps: torch.Tensor, residual: float = 0.5) -> torch.Tensor:
    r"""Attention rollout (Abnar and Zuidema, 2020): (L, B, heads, T, T) -> (B, T, T).

    Each layer's heads are averaged, the residual connection is accounted for
    by mixing in the identity, $\hat{A}_l = (1 - r) \bar{A}_l + r I$ (rows
    renormalised), and the layers are composed,
    $\tilde{A} = \hat{A}_L \hat{A}_{L-1} \cdots \hat{A}_1$: row $i$ says how much
    of token $i$'s final state flows from each input token. Row 0 of a ViT with
    a class token is where its prediction comes from."""
    _, B, _, T, _ = maps.shape
    eye = torch.eye(T, dtype=maps.dtype, device=maps.device)
    rollout = eye.expand(B, T, T)
    for a in maps.mean(dim=2):  # (B, T, T) per layer, input side first
        a = (1 - residual) * a + residual * eye
        a = a / a.sum(dim=-1, keepdim=True)
        rollout = a @ rollout  # the later layer acts on what the earlier gave
    return rollout


def cls_attention_grid(weights: torch.Tensor, grid: int) -> torch.Tensor:
    """Row 0 of (B, T, T) class-token attention without the class token's own
    column, as (B, grid, grid) images, each scaled to a maximum of 1."""
    w = weights[:, 0, 1:].reshape(-1, grid, grid)
    return w / w.amax(dim=(1, 2), keepdim=True)


@dataclass
class ViTSpec(ModelSpec):
    """A ViT's architecture: ``ViTSpec(...).build(mean, std)``. The defaults are
    a small CIFAR-10 model (patch 4, 64 patches of 4x4 pixels)."""

    image_size: int = field(default=32, metadata=positive("input side in pixels"))
    patch_size: int = field(
        default=4,
        metadata=positive("patch side P: (image_size / P)^2 tokens; smaller is finer"),
    )
    dim: int = field(default=192, metadata=positive("token width D"))
    depth: int = field(default=6, metadata=positive("encoder layers L"))
    heads: int = field(
        default=3, metadata=positive("attention heads, D / heads wide each (64)")
    )
    mlp_dim: int = field(
        default=384, metadata=positive("hidden width of the MLPs (the paper: 4D)")
    )
    dropout: float = field(
        default=0.0,
        metadata=in_range(
            0, 1, "dropout on tokens, attention and MLPs", high_open=True
        ),
    )
    pool: str = field(
        default="cls",
        metadata=choice(
            "cls", "mean", help="class token (the paper) or mean of patches"
        ),
    )
    num_classes: int = field(default=10, metadata=positive("output classes"))
    normalize: bool = field(
        default=True,
        metadata=describe(
            "standardise images inside the model (it then takes [0, 1] pixels)"
        ),
    )
    stem: int = field(
        default=0,
        metadata=non_negative(
            "channels of a convolutional stem before the patches (a hybrid); "
            "0 = the paper's linear patch projection"
        ),
    )

    def validate(self):
        if self.image_size % self.patch_size:
            raise ConfigError(
                f"image_size={self.image_size} is not a multiple of "
                f"patch_size={self.patch_size}"
            )
        if self.stem and self.patch_size % 2:
            raise ConfigError(
                f"stem={self.stem} needs an even patch_size, not {self.patch_size}"
            )
        if self.dim % self.heads:
            raise ConfigError(f"dim={self.dim} is not divisible by heads={self.heads}")

    @property
    def tokens(self) -> int:
        """Sequence length: patches, plus the class token."""
        return (self.image_size // self.patch_size) ** 2 + (self.pool == "cls")

    def build(self, mean=None, std=None) -> VisionTransformer:
        if self.normalize:  # placeholders until the data's (or a state_dict's)
            mean = [0.5] * 3 if mean is None else [float(v) for v in mean]
            std = [0.25] * 3 if std is None else [float(v) for v in std]
        else:
            mean = std = None
        return VisionTransformer(
            self.image_size,
            self.patch_size,
            3,
            self.num_classes,
            self.dim,
            self.depth,
            self.heads,
            self.mlp_dim,
            self.dropout,
            self.pool,
            mean,
            std,
            self.stem,
        )
