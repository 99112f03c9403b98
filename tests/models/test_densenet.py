"""Tests of scratch.models.densenet: the paper's DenseNet-BC (L=100, k=12) parameter
count from its architecture formula, feature-map shapes, concatenation (not addition),
compression, and the spec."""

import pytest
import torch
from torch import nn

from scratch.config import ConfigError
from scratch.models.densenet import (
    PAPER_PARAMETERS_M,
    DenseBlock,
    DenseLayer,
    DenseNet,
    DenseNetSpec,
    Transition,
    bc_layers,
    densenet_bc,
)
from scratch.models.inspection import count_parameters
from scratch.models.spec import load_model, save_model


def formula_parameters(depth, k, classes=10, theta=0.5, bn_size=4):
    """DenseNet-BC for CIFAR counted from the paper's description (Section 3 and 4.2),
    without building anything: stem 3x3 conv to 2k channels; per bottleneck layer on c
    input channels BN(c), conv1x1 c->4k, BN(4k), conv3x3 4k->k; per transition on c
    channels BN(c), conv1x1 c->floor(theta c); final BN and linear layer."""
    n = (depth - 4) // 6
    c = 2 * k
    total = 3 * 9 * c
    for block in range(3):
        for _ in range(n):
            total += 2 * c + c * bn_size * k + 2 * bn_size * k + 9 * bn_size * k * k
            c += k
        if block < 2:
            total += 2 * c + c * int(theta * c)
            c = int(theta * c)
    return total + 2 * c + c * classes + classes


def test_densenet_bc_100_12_matches_the_formula_and_the_paper():
    model = densenet_bc(100, 12)
    expected = formula_parameters(100, 12)
    assert count_parameters(model) == expected == 769_162
    # The paper's Table 2 rounds to 0.8M.
    assert round(expected / 1e6, 1) == PAPER_PARAMETERS_M[(100, 12)] == 0.8


@pytest.mark.parametrize("depth,k", [(40, 12), (52, 24), (250, 24)])
def test_other_depths_match_the_formula(depth, k):
    assert count_parameters(densenet_bc(depth, k)) == formula_parameters(depth, k)


def test_250_24_is_the_papers_15_3m():
    assert round(formula_parameters(250, 24) / 1e6, 1) == PAPER_PARAMETERS_M[(250, 24)]


def test_dense_block_output_channels_are_input_plus_n_layers_times_k():
    block = DenseBlock(5, 24, 12)
    x = torch.randn(2, 24, 8, 8)
    y = block(x)
    assert y.shape == (2, 24 + 5 * 12, 8, 8) and block.c_out == 84
    # The block's input is passed through untouched, as the first channels.
    assert torch.equal(y[:, :24], x)


def test_layer_concatenates_rather_than_adds():
    layer = DenseLayer(16, 12).eval()
    x = torch.randn(3, 16, 6, 6)
    y = layer(x)
    assert y.shape == (3, 28, 6, 6)
    assert torch.equal(y[:, :16], x)
    # The new channels depend on the input only through the layer's body.
    assert torch.allclose(y[:, 16:], layer.body(x))


def dense_channels_ok(block, c_in, n, k):
    x = torch.randn(1, c_in, 4, 4)
    y = block(x)
    return y.shape[1] == c_in + n * k and torch.equal(y[:, :c_in], x)


def test_check_fails_if_concatenation_is_replaced_by_addition(monkeypatch):
    """A one-layer block with growth = input channels, so that x + new is defined:
    the check that passes with torch.cat fails with addition."""
    block = DenseBlock(1, 12, 12)
    assert dense_channels_ok(block, 12, 1, 12)

    def add(self, x):
        return x + self.body(x)  # a residual layer instead of a dense one

    monkeypatch.setattr(DenseLayer, "forward", add)
    assert not dense_channels_ok(block, 12, 1, 12)


def test_feature_map_shapes_per_block():
    model = densenet_bc(40, 12)  # 6 layers per block
    assert bc_layers(40) == 6
    x = torch.rand(2, 3, 32, 32)
    shapes = []
    h = model.stem(model.normalize(x))
    assert h.shape == (2, 24, 32, 32)
    for stage in model.stages:
        h = stage(h)
        shapes.append(tuple(h.shape[1:]))
    # block 1: 24 + 72 = 96 -> transition 48 at 16x16 -> block 2: 120 -> 60 at 8x8
    # -> block 3: 132.
    assert shapes == [
        (96, 32, 32),
        (48, 16, 16),
        (120, 16, 16),
        (60, 8, 8),
        (132, 8, 8),
    ]
    assert model(x).shape == (2, 10) and model.features_dim == 132


def test_transition_compresses_and_halves():
    t = Transition(120, 0.5)
    assert t(torch.randn(1, 120, 8, 8)).shape == (1, 60, 4, 4)
    assert Transition(120, 1.0).c_out == 120


def test_no_bottleneck_and_no_compression_is_the_plain_densenet():
    model = DenseNet((12, 12, 12), growth=12, bn_size=0, compression=1.0)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert sum(m.kernel_size == (3, 3) for m in convs) == 1 + 36
    # DenseNet (L=40, k=12) of the paper's Table 2: 1.0M parameters.
    assert round(count_parameters(model) / 1e6, 1) == 1.0


def test_bad_depth_is_rejected():
    with pytest.raises(ValueError, match="6n \\+ 4"):
        densenet_bc(101)


def test_spec_builds_the_paper_model_and_round_trips(tmp_path):
    spec = DenseNetSpec()
    model = spec.build(mean=[0.4, 0.5, 0.6], std=[0.2, 0.2, 0.2])
    assert count_parameters(model) == formula_parameters(100, 12)
    small = DenseNetSpec(block_layers=(2, 2, 2), growth=6)
    net = small.build().eval()
    save_model(tmp_path / "m.pt", net, small)
    restored, spec_back = load_model(tmp_path / "m.pt")
    x = torch.rand(2, 3, 32, 32)
    assert spec_back == small
    assert torch.equal(restored.eval()(x), net(x))


def test_spec_rejects_empty_blocks():
    with pytest.raises(ConfigError):
        DenseNetSpec(block_layers=()).validate()
