"""Tests of scratch.models.allcnn: the parameter count against an independent count
from the layer list and against the published All-CNN-C, shapes, the all-convolutional
structure, the spec's rules and a save/load round trip."""

import pytest
import torch
from torch import nn

from scratch.config import ConfigError
from scratch.models.allcnn import (
    PAPER_PARAMETERS_M,
    AllCNN,
    AllCNNSpec,
    allcnn_parameter_count,
    layer_list,
)
from scratch.models.inspection import count_parameters
from scratch.models.spec import load_model, save_model


def test_parameter_count_matches_the_layer_list_and_the_seed():
    model = AllCNNSpec().build()
    n = count_parameters(model)
    # By hand: the weights of the 9 convolutions, then 2 batch-norm parameters
    # per channel.
    weights = (
        27 * 96
        + 9 * 96 * 96 * 2
        + 9 * 96 * 192
        + 9 * 192 * 192 * 3
        + 192 * 192
        + 192 * 10
    )
    assert weights == 1_368_480
    assert (
        n
        == allcnn_parameter_count()
        == weights + 2 * (3 * 96 + 5 * 192 + 10)
        == 1_370_996
    )
    assert round(n / 1e6, 2) == 1.37  # the seed's "about 1.37M"


def test_published_all_cnn_c_count():
    # The paper's network: a bias per convolution, no batch norm.
    plain = nn.Sequential(*[nn.Conv2d(i, o, k, s, p) for i, o, k, s, p in layer_list()])
    assert (
        count_parameters(plain) == allcnn_parameter_count(batch_norm=False, conv_bias=True) == 1_369_738
    )
    assert (
        int(count_parameters(plain) / 1e5) / 10 == PAPER_PARAMETERS_M
    )  # "1.3 M", cut off


def test_count_with_convolution_biases_too():
    model = AllCNNSpec(conv_bias=True).build()
    assert count_parameters(model) == allcnn_parameter_count(conv_bias=True)
    assert count_parameters(model) == 1_370_996 + (3 * 96 + 5 * 192 + 10) == 1_372_254


def test_the_course_allcnn_t_with_a_padded_3x3_head_has_1_67m():
    # The widely copied course version: conv (bias) -> ReLU -> BN, and a head of
    # two padded 3x3 convolutions at 8x8 plus a 1x1, then an 8x8 average pool.
    def convbn(ci, co, k, s=1, p=0):
        return nn.Sequential(nn.Conv2d(ci, co, k, s, p), nn.ReLU(), nn.BatchNorm2d(co))

    c1, c2 = 96, 192
    course = nn.Sequential(
        convbn(3, c1, 3, 1, 1), convbn(c1, c1, 3, 1, 1), convbn(c1, c1, 3, 2, 1),
        convbn(c1, c2, 3, 1, 1), convbn(c2, c2, 3, 1, 1), convbn(c2, c2, 3, 2, 1),
        convbn(c2, c2, 3, 1, 1), convbn(c2, c2, 3, 1, 1), convbn(c2, 10, 1, 1),
    )
    n = count_parameters(course)
    assert n == 1_667_166
    # The one difference from ours with biases: the second head layer is 3x3, not 1x1.
    assert n - allcnn_parameter_count(conv_bias=True) == 9 * c2 * c2 - c2 * c2 == 294_912


@pytest.mark.parametrize("c1,c2", [(96, 192), (16, 32), (8, 24)])
def test_count_follows_the_widths(c1, c2):
    assert count_parameters(AllCNN(c1, c2)) == allcnn_parameter_count(c1, c2)


def test_shapes_and_only_convolutions():
    model = AllCNNSpec(c1=16, c2=32).build().eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert model.forward_features(x).shape == (2, 10, 6, 6)
        assert model(x).shape == (2, 10)
        assert model(torch.rand(1, 3, 48, 48)).shape == (
            1,
            10,
        )  # global average pooling
    kinds = {type(m) for m in model.modules()}
    assert nn.Linear not in kinds and nn.MaxPool2d not in kinds
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.stride[0] for c in convs] == [1, 1, 2, 1, 1, 2, 1, 1, 1]
    assert all(c.bias is None for c in convs)


def test_last_layer_has_no_relu_so_logits_can_be_negative():
    torch.manual_seed(0)
    model = AllCNNSpec(c1=8, c2=16).build().eval()
    with torch.no_grad():
        assert (model(torch.rand(16, 3, 32, 32)) < 0).any()


def test_dropout_sits_between_blocks_and_only_acts_in_training():
    model = AllCNNSpec(c1=8, c2=16).build()
    assert model.drop1.p == model.drop2.p == 0.5  # the paper's
    assert model.input_dropout.p == 0.2
    names = [name for name, _ in model.named_children()]
    assert names.index("block1") < names.index("drop1") < names.index("block2")
    assert names.index("block2") < names.index("drop2") < names.index("head")
    x = torch.rand(4, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
        model.train()
        assert not torch.equal(model(x), model(x))


def test_spec_rules():
    with pytest.raises(ConfigError):
        AllCNNSpec(c1=0)
    with pytest.raises(ConfigError):
        AllCNNSpec(dropout=1.0)


def test_save_and_load_round_trip(tmp_path):
    spec = AllCNNSpec(c1=8, c2=16)
    model = spec.build(mean=[0.49, 0.48, 0.45], std=[0.25, 0.24, 0.26]).eval()
    save_model(tmp_path / "m.pt", model, spec)
    again, spec2 = load_model(tmp_path / "m.pt")
    assert spec2 == spec
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), again(x))
