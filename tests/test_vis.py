"""Vision helpers: hooks leave no trace, saliency and Grad-CAM point at the evidence."""
import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from torch import nn

from scratch import vis


class Spot(nn.Module):
    """Class 1's score is the sum of the top-left 4x4 pixels of channel 0; class 0's is 0."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[1, 0] = 1.0

    def forward(self, x):
        a = torch.relu(self.conv(x))              # (B, 2, H, W)
        mask = torch.zeros_like(a[:1, :1])
        mask[..., :4, :4] = 1
        return (a * mask).sum(dim=(2, 3))         # (B, 2)


def test_capture_returns_outputs_and_removes_hooks():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 3))
    model.train()
    out = vis.capture(model, ["0", "2"], torch.rand(2, 3, 8, 8))
    assert out["0"].shape == (2, 4, 6, 6) and out["2"].shape == (2, 2, 4, 4)
    assert all(not m._forward_hooks for m in model.modules()) and model.training
    with pytest.raises(KeyError, match="no submodule"):
        vis.capture(model, "conv9", torch.rand(1, 3, 8, 8))


def test_saliency_is_the_input_gradient_magnitude():
    model = Spot()
    x = torch.rand(2, 3, 8, 8)
    sal = vis.saliency(model, x, target=[1, 1])
    expected = torch.zeros(8, 8)
    expected[:4, :4] = 1.0  # d score_1 / d x[0, i, j] = 1 inside the spot (inputs > 0)
    assert torch.allclose(sal, expected.expand(2, 8, 8))
    assert vis.saliency(model, x, target=[0, 0]).abs().sum() == 0


class Blobs(nn.Module):
    """Class c's score is the mean over the image of a 3x3 blur of input channel c
    (stride 2, so Grad-CAM's map is half the input size and must be upsampled)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, stride=2, padding=1, bias=False)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[0, 0] = self.conv.weight[1, 1] = 1.0
        self.head = nn.Sequential(nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward(self, x):
        return self.head(self.conv(x))            # (B, 2)


def blob_images(n=6, size=16, side=4, seed=0):
    """Faint noise, a bright square of class 1's evidence (channel 1) and, elsewhere,
    one of class 0's (channel 0): per image, the two squares' boxes (top, left)."""
    g = torch.Generator().manual_seed(seed)
    x = 0.02 * torch.rand(n, 2, size, size, generator=g)
    corners = torch.randint(0, size - side + 1, (n, 2, 2), generator=g)
    for i in range(n):
        while (corners[i, 0] - corners[i, 1]).abs().max() <= side + 1:   # keep the squares apart
            corners[i] = torch.randint(0, size - side + 1, (2, 2), generator=g)
        for c in range(2):
            top, left = corners[i, c].tolist()
            x[i, c, top:top + side, left:left + side] = 1.0
    return x, corners


def test_grad_cam_lights_up_where_the_class_evidence_is():
    model, (x, corners), side = Blobs(), blob_images(), 4
    for target in (0, 1):
        cam = vis.grad_cam(model, "conv", x, target=[target] * len(x))
        assert cam.shape == (len(x), 16, 16) and cam.min() >= 0 and cam.max() <= 1 + 1e-6
        for i in range(len(x)):
            near = torch.zeros(16, 16, dtype=torch.bool)              # the target's square, grown
            top, left = corners[i, target].tolist()                     # by the blur and upsampling
            near[max(top - 2, 0):top + side + 2, max(left - 2, 0):left + side + 2] = True
            peak = divmod(cam[i].argmax().item(), 16)
            share = (cam[i][near].sum() / cam[i].sum()).item()    # about 0.85-0.9; a flat map: < 0.25
            where = f"image {i}, class {target}: square at {(top, left)}"
            assert near[peak], f"{where}, but the Grad-CAM peak is at {peak}"
            assert share > 0.75, f"{where}, but only {share:.0%} of the map lies near it"
    assert model.conv.weight.grad is None and not model.conv._forward_hooks


def test_grad_cam_weights_each_map_by_its_mean_gradient():
    # Spot: d score_1 / d A is 1 on channel 1's top-left 4x4 and 0 elsewhere, so its
    # mean is 16/64 for channel 1 and 0 for channel 0; channel 1 is relu(x[:, 0]) and
    # the map is x[:, 0] everywhere (Grad-CAM pools the gradient away), scaled to peak 1.
    model = Spot()
    x = torch.rand(3, 3, 8, 8)
    cam = vis.grad_cam(model, "conv", x, target=[1, 1, 1])
    expected = x[:, 0] / x[:, 0].flatten(1).amax(1)[:, None, None]
    assert torch.allclose(cam, expected, atol=1e-6)
    assert model.conv.weight.grad is None and not model.conv._forward_hooks


def test_overlay_and_figures():
    images = np.zeros((2, 3, 4, 4), np.uint8)
    mask = np.zeros((2, 4, 4))
    mask[:, 0, 0] = 1
    out = vis.overlay(images, mask, alpha=0.5, color=(1, 0, 0))
    assert out.shape == (2, 4, 4, 3)
    assert np.allclose(out[0, 0, 0], [0.5, 0, 0]) and np.allclose(out[0, 1, 1], 0)
    assert vis.overlay(images, mask).shape == (2, 4, 4, 3)
    probs = torch.softmax(torch.randn(4, 3), 1)
    fig = vis.topk_grid(torch.rand(4, 3, 8, 8), probs, ["a", "b", "c"], k=2, targets=[0, 1, 2, 0])
    assert isinstance(fig, go.Figure) and len(fig.data) == 4
    top = probs.argmax(1)
    assert [("✓" in a.text) for a in fig.layout.annotations] == (top == torch.tensor([0, 1, 2, 0])).tolist()
    # one panel per kernel: RGB images for three input channels, else heat maps (channel 0)
    assert [(len(f.data), f.data[0].type) for f in (vis.filters(torch.randn(8, 3, 5, 5)),
                                                    vis.filters(torch.randn(8, 1, 5, 5)),
                                                    vis.filters(torch.randn(80, 2, 5, 5)))] == [
        (8, "image"), (8, "heatmap"), (64, "heatmap")]                  # at most max_filters=64
    maps = vis.feature_maps(torch.randn(6, 5, 5))
    assert len(maps.data) == 6 and [a.text for a in maps.layout.annotations] == [f"map {i}" for i in range(6)]
    assert len(vis.feature_maps(torch.randn(20, 5, 5)).data) == 16         # at most max_maps=16
    with pytest.raises(ValueError, match=r"expected a conv weight \(C_out, C_in, k, k\), got shape \(8, 5\)"):
        vis.filters(torch.randn(8, 5))
