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


def test_grad_cam_lights_up_where_the_class_evidence_is():
    model = Spot()
    cam = vis.grad_cam(model, "conv", torch.rand(3, 3, 8, 8), target=[1, 1, 1])
    assert cam.shape == (3, 8, 8) and cam.min() >= 0 and cam.max() <= 1 + 1e-6
    assert model.conv.weight.grad is None and not model.conv._forward_hooks
    # The gradient is uniform over the map (GAP of gradients), the activation sits
    # in channel 1: the map follows channel 0 of the input everywhere.
    assert (cam > 0).float().mean() > 0.9


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
    assert isinstance(vis.filters(torch.randn(8, 3, 5, 5)), go.Figure)
    assert isinstance(vis.filters(torch.randn(8, 1, 5, 5)), go.Figure)
    assert isinstance(vis.feature_maps(torch.randn(6, 5, 5)), go.Figure)
    with pytest.raises(ValueError):
        vis.filters(torch.randn(8, 5))
