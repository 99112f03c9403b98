"""Looking inside vision networks: filters, feature maps, saliency, Grad-CAM.

Every function returns tensors or a plotly figure in the book's theme (built with
:mod:`scratch.plots`); show figures with ``plots.show(fig, path)``.

Chapter: "Learned versus engineered features" (book/vision/features.md).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import plots

__all__ = [
    "filters",
    "capture",
    "feature_maps",
    "saliency",
    "grad_cam",
    "overlay",
    "topk_grid",
]


def filters(weight, title: str = "", ncols: int = 8, max_filters: int = 64):
    """The kernels of a convolution, ``weight`` of shape ``(C_out, C_in, k, k)``.

    With three input channels each kernel is drawn as a colour image (each rescaled
    to its own range, so that what it responds to is visible); otherwise the
    kernel's slice for input channel 0 on a diverging scale (red positive, blue
    negative, white zero).
    """
    w = (
        weight.detach().float().cpu()
        if torch.is_tensor(weight)
        else torch.as_tensor(weight).float()
    )
    if w.ndim != 4:
        raise ValueError(
            f"expected a conv weight (C_out, C_in, k, k), got shape {tuple(w.shape)}"
        )
    w = w[:max_filters]
    if w.shape[1] == 3:
        return plots.image_grid(
            w, ncols=ncols, title=title or f"{len(w)} filters (RGB)", cell=70
        )
    return plots.image_grid(
        w[:, 0],
        ncols=ncols,
        symmetric=True,
        cell=70,
        title=title
        or f"{len(w)} filters" + (" (input channel 0)" if w.shape[1] > 1 else ""),
    )


def _module(model: nn.Module, layer):
    if isinstance(layer, nn.Module):
        return layer
    modules = dict(model.named_modules())
    if layer not in modules:
        raise KeyError(
            f"no submodule {layer!r}; the model has "
            f"{', '.join(n for n in modules if n)}"
        )
    return modules[layer]


@torch.no_grad()
def capture(model: nn.Module, layers, x: torch.Tensor) -> dict:
    """Outputs of the named submodules ``layers`` for input ``x`` (one forward pass,
    eval mode).

    Forward hooks record each output; the hooks are removed again, and the
    model's train/eval mode restored, whatever happens.
    """
    names = [layers] if isinstance(layers, str) else list(layers)
    out, handles = {}, []
    for name in names:

        def hook(_m, _i, output, name=name):
            out[name] = output.detach().float().cpu()

        handles.append(_module(model, name).register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        model(x.to(next(model.parameters()).device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return out


def feature_maps(maps, title: str = "Feature maps", max_maps: int = 16, ncols: int = 8):
    """The channels of one image's activation, ``maps`` of shape ``(C, H, W)``."""
    maps = (
        maps.detach().float().cpu()
        if torch.is_tensor(maps)
        else torch.as_tensor(maps).float()
    )
    maps = maps[:max_maps]
    return plots.image_grid(
        maps,
        titles=[f"map {i}" for i in range(len(maps))],
        ncols=ncols,
        title=title,
        colorscale="Viridis",
        cell=80,
    )


def _scores(model, x, target):
    logits = model(x)
    if target is None:
        target = logits.argmax(dim=1)
    target = torch.as_tensor(target, device=logits.device).view(-1)
    return logits.gather(1, target[:, None]).sum(), target


def saliency(model: nn.Module, x: torch.Tensor, target=None) -> torch.Tensor:
    """Gradient saliency (Simonyan et al., 2014): ``|d score_target / d x|``, max over
    channels.

    ``target`` defaults to each image's predicted class. Returns ``(B, H, W)`` on the
    CPU. Which pixels would change the class score most if nudged.
    """
    was_training = model.training
    model.eval()
    try:
        x = x.to(next(model.parameters()).device).detach().clone().requires_grad_(True)
        score, _ = _scores(model, x, target)
        (grad,) = torch.autograd.grad(score, x)
    finally:
        model.train(was_training)
    return grad.abs().amax(dim=1).cpu()


def grad_cam(model: nn.Module, layer, x: torch.Tensor, target=None) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al., 2017) at ``layer`` (a module or its name).

    The layer's activation maps ``A_k`` are weighted by the average gradient of the
    target score over each map, ``alpha_k = mean_ij d y / d A_k[i, j]``, summed and
    rectified: ``ReLU(sum_k alpha_k A_k)``. Upsampled (bilinear) to the input size and
    scaled to [0, 1] per image. Returns ``(B, H, W)`` on the CPU.
    """
    module = _module(model, layer)
    saved = {}

    def hook(_m, _i, output):
        saved["act"] = output
        output.register_hook(lambda g: saved.__setitem__("grad", g))

    handle = module.register_forward_hook(hook)
    was_training = model.training
    model.eval()
    try:
        x = x.to(next(model.parameters()).device)
        score, _ = _scores(model, x, target)
        score.backward()
    finally:
        handle.remove()
        model.train(was_training)
        model.zero_grad(set_to_none=True)  # the backward pass above is not training
    act, grad = saved["act"].detach().float(), saved["grad"].float()
    weights = grad.mean(dim=(2, 3), keepdim=True)  # (B, K, 1, 1)
    cam = F.relu((weights * act).sum(dim=1, keepdim=True))  # (B, 1, h, w)
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[
        :, 0
    ]
    peak = cam.flatten(1).amax(dim=1).clamp_min(1e-12)[:, None, None]
    return (cam / peak).cpu()


def _as_unit_rgb(images) -> np.ndarray:
    x = images.detach().cpu().numpy() if torch.is_tensor(images) else np.asarray(images)
    x = x.astype(np.float64) / 255.0 if x.dtype == np.uint8 else x.astype(np.float64)
    if x.ndim == 4 and x.shape[1] in (1, 3):
        x = x.transpose(0, 2, 3, 1)  # NCHW -> NHWC
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    return np.clip(x, 0, 1)


def overlay(
    images, maps, alpha: float = 0.5, color=None, cmap: str = "inferno"
) -> np.ndarray:
    """Blend per-pixel maps over images: ``(B, H, W, 3)`` RGB in [0, 1].

    ``images``: uint8 or [0, 1] float, ``(B, 3, H, W)`` or ``(B, H, W, 3)``.
    ``maps``: ``(B, H, W)`` in [0, 1] (heat maps, or 0/1 masks). With ``color``
    (an RGB triple in [0, 1]) the map paints that colour with opacity
    ``alpha * map`` (masks); otherwise it is coloured with ``cmap`` (heat maps).
    """
    from matplotlib import colormaps

    rgb = _as_unit_rgb(images)
    m = maps.detach().cpu().numpy() if torch.is_tensor(maps) else np.asarray(maps)
    m = np.clip(m.astype(np.float64), 0, 1)[..., None]  # (B, H, W, 1)
    paint = (
        np.asarray(color, np.float64)
        if color is not None
        else colormaps[cmap](m[..., 0])[..., :3]
    )
    a = alpha * m if color is not None else alpha
    return (1 - a) * rgb + a * paint


def topk_grid(
    images,
    probs,
    class_names,
    k: int = 3,
    targets=None,
    ncols: int = 6,
    title: str = "Top predictions",
    cell: int = 110,
):
    """Images captioned with their top-``k`` classes and probabilities.

    ``probs``: ``(B, K)`` class probabilities. With ``targets`` each caption starts
    with the true class and a tick or a cross for the top-1 guess.
    """
    p = torch.as_tensor(probs).detach().float().cpu()
    top_p, top_c = p.topk(min(k, p.shape[1]), dim=1)
    captions = []
    for i, (ps, cs) in enumerate(zip(top_p.tolist(), top_c.tolist())):
        lines = [f"{class_names[c]} {q:.0%}" for q, c in zip(ps, cs)]
        if targets is not None:
            t = int(targets[i])
            lines.insert(0, f"<b>{class_names[t]}</b> {'✓' if cs[0] == t else '✗'}")
        captions.append("<br>".join(lines))
    return plots.image_grid(
        _as_unit_rgb(images),
        titles=captions,
        ncols=ncols,
        title=title,
        cell=cell,
        caption_px=10,
    )
