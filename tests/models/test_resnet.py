"""Tests of scratch.models.resnet: the paper's and torchvision's parameter counts, the
paper's FLOPs, shapes, shortcut options, plain and pre-activation variants, saving and
reloading through cifar_resnet(**kwargs)."""
import math

import pytest
import torch

from scratch.models.spec import load_model, save_model
import torchvision
from torch import nn

from scratch.models.inspection import count_parameters, multiply_adds
from scratch.models.layers import Normalize
from scratch.models.resnet import (CIFAR_RESNET18, TORCHVISION_PARAMETERS, PAPER_CIFAR_PARAMETERS, PAPER_GFLOPS,
                                   BasicBlock, Bottleneck, PadShortcut, cifar_depth_kwargs, cifar_resnet,
                                   ResNetSpec, make_shortcut, resnet18, resnet34, resnet50,
                                   weighted_layers)
from scratch.train import save_checkpoint

IMAGENET = {"resnet18": resnet18, "resnet34": resnet34, "resnet50": resnet50}


# ---- ImageNet networks (the paper's Table 1) ------------------------------------------
@pytest.mark.parametrize("name", list(IMAGENET))
def test_imagenet_parameter_counts_match_torchvision(name):
    ours = count_parameters(IMAGENET[name]())
    theirs = count_parameters(getattr(torchvision.models, name)(weights=None))
    expected = {"resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032}[name]
    assert TORCHVISION_PARAMETERS[name] == expected
    assert ours == theirs == expected


@pytest.mark.parametrize("name", list(IMAGENET))
def test_imagenet_multiply_adds_match_the_paper(name):
    model = IMAGENET[name]()
    gmacs = _total_macs(model, (1, 3, 224, 224)) / 1e9
    # The paper's Table 1 gives one decimal, cut off (3.66 -> 3.6, 3.86 -> 3.8).
    assert math.floor(gmacs * 10) / 10 == PAPER_GFLOPS[name] == {"resnet18": 1.8, "resnet34": 3.6,
                                                                 "resnet50": 3.8}[name]
    assert weighted_layers(model) == int(name[len("resnet"):])  # the depth in the name


def test_resnet50_stride_placement_changes_cost_not_size():
    paper, v15 = resnet50(), resnet50(stride_in_1x1=False)
    assert count_parameters(paper) == count_parameters(v15)
    assert round(_total_macs(v15, (1, 3, 224, 224)) / 1e9, 1) == 4.1  # torchvision's "v1.5"


def test_imagenet_output_shape_and_any_input_size():
    model = resnet18(num_classes=7).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 3, 224, 224)).shape == (2, 7)
        assert model(torch.rand(1, 3, 160, 160)).shape == (1, 7)  # global average pooling
        assert model.forward_features(torch.rand(1, 3, 224, 224)).shape == (1, 512, 7, 7)
    assert resnet50().fc.in_features == 2048


# ---- CIFAR networks (the paper's Section 4.2 and Table 6) --------------------------------
@pytest.mark.parametrize("depth", [20, 32, 44, 56, 110])
def test_cifar_resnet_parameter_counts_match_table_6(depth):
    model = cifar_resnet(**cifar_depth_kwargs(depth))
    n = count_parameters(model)
    exact = {20: 269_722, 32: 464_154, 44: 658_586, 56: 853_018, 110: 1_727_962}[depth]
    assert n == exact
    assert round(n / 1e6, 2 if n < 1e6 else 1) == PAPER_CIFAR_PARAMETERS[depth]
    assert PAPER_CIFAR_PARAMETERS == {20: 0.27, 32: 0.46, 44: 0.66, 56: 0.85, 110: 1.7}
    assert weighted_layers(model) == depth


def test_cifar_resnet18_variant():
    model = cifar_resnet(**CIFAR_RESNET18)
    assert count_parameters(model) == 11_173_962
    assert isinstance(model.stem[0], nn.Conv2d) and model.stem[0].kernel_size == (3, 3)
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    with torch.no_grad():
        assert model.eval()(torch.rand(2, 3, 32, 32)).shape == (2, 10)
        assert model.forward_features(torch.rand(1, 3, 32, 32)).shape == (1, 512, 4, 4)


def test_small_resnet8_and_stage_shapes():
    model = cifar_resnet(blocks=(1, 1, 1), widths=(16, 32, 64), shortcut="B").eval()
    assert count_parameters(model) == 78_042  # the small profile's classifier
    assert count_parameters(cifar_resnet(blocks=(1, 1, 1), widths=(16, 32, 64))) == 75_290  # option A
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        h = model.stem(model.normalize(x))
        shapes = []
        for stage in model.stages:
            h = stage(h)
            shapes.append(tuple(h.shape))
    assert shapes == [(3, 16, 32, 32), (3, 32, 16, 16), (3, 64, 8, 8)]


def test_plain_networks_have_the_same_parameters_with_option_a():
    for depth in (20, 56):
        res = cifar_resnet(**cifar_depth_kwargs(depth))
        plain = cifar_resnet(**cifar_depth_kwargs(depth), residual=False)
        assert count_parameters(res) == count_parameters(plain)
        assert all(b.shortcut is None for b in plain.modules() if isinstance(b, BasicBlock))


def test_mismatched_blocks_and_widths_are_rejected():
    with pytest.raises(ValueError, match="one entry per stage"):
        cifar_resnet(blocks=(1, 1), widths=(16, 32, 64))
    with pytest.raises(ValueError, match="6n \\+ 2"):
        cifar_depth_kwargs(21)


# ---- blocks and shortcuts ------------------------------------------------------------------
def test_option_a_shortcut_subsamples_and_pads_with_zeros():
    x = torch.randn(2, 16, 8, 8)
    y = PadShortcut(16, 32, 2)(x)
    assert y.shape == (2, 32, 4, 4)
    assert torch.equal(y[:, :16], x[:, :, ::2, ::2])
    assert torch.count_nonzero(y[:, 16:]) == 0
    assert count_parameters(PadShortcut(16, 32, 2)) == 0


def test_shortcut_options():
    assert isinstance(make_shortcut(16, 16, 1, "A"), nn.Identity)
    assert isinstance(make_shortcut(16, 16, 1, "B"), nn.Identity)
    assert isinstance(make_shortcut(16, 32, 2, "A"), PadShortcut)
    projection = make_shortcut(16, 32, 2, "B")
    assert count_parameters(projection) == 16 * 32 + 2 * 32  # 1x1 conv + BN
    assert count_parameters(make_shortcut(16, 16, 1, "C")) == 16 * 16 + 2 * 16
    with pytest.raises(ValueError):
        make_shortcut(16, 32, 2, "D")


def test_residual_block_with_zero_branch_is_relu_of_identity():
    block = BasicBlock(8, 8).eval()
    nn.init.zeros_(block.last_bn.weight)  # the branch outputs BN's shift: zero
    x = torch.randn(2, 8, 6, 6)
    with torch.no_grad():
        assert torch.equal(block(x), torch.relu(x))


def test_preact_block_is_exactly_identity_plus_branch():
    block = BasicBlock(8, 8, preact=True).eval()
    x = torch.randn(2, 8, 6, 6)
    with torch.no_grad():
        branch = block.conv2(torch.relu(block.bn2(block.conv1(torch.relu(block.bn1(x))))))
        assert torch.allclose(block(x), x + branch)
    assert block.last_bn is None


@pytest.mark.parametrize("preact", [False, True])
def test_bottleneck_shapes_and_counts(preact):
    block = Bottleneck(256, 64, stride=2, preact=preact)
    assert block(torch.randn(1, 256, 8, 8)).shape == (1, 256, 4, 4)
    convs = 256 * 64 + 9 * 64 * 64 + 64 * 256 + 256 * 256  # three convs + projection
    assert sum(p.numel() for m in block.modules() if isinstance(m, nn.Conv2d) for p in m.parameters()) == convs


def test_preact_network_has_final_bn_and_trains_a_step():
    torch.manual_seed(0)
    model = cifar_resnet(**cifar_depth_kwargs(20), preact=True)
    assert isinstance(model.final[0], nn.BatchNorm2d)
    x, y = torch.rand(16, 3, 32, 32), torch.randint(0, 10, (16,))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(8):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_zero_init_residual_zeroes_last_bn_only_in_residual_nets():
    model = cifar_resnet(zero_init_residual=True)
    gammas = [b.last_bn.weight for b in model.modules() if isinstance(b, BasicBlock)]
    assert all(torch.count_nonzero(g) == 0 for g in gammas)
    plain = cifar_resnet(residual=False, zero_init_residual=True)
    assert all(torch.all(b.bn2.weight == 1) for b in plain.modules() if isinstance(b, BasicBlock))


# ---- normalisation inside the model, saving and reloading --------------------------------
def test_normalize_first_and_save_reload_roundtrip(tmp_path):
    spec = ResNetSpec(blocks=(1, 1, 1), widths=(8, 16, 32), shortcut="B")
    torch.manual_seed(0)
    model = spec.build(mean=[0.49, 0.48, 0.45], std=[0.25, 0.24, 0.26]).eval()
    assert isinstance(model.normalize, Normalize)
    x = torch.rand(4, 3, 32, 32)  # images in [0, 1]
    path = tmp_path / "model.pt"
    save_model(path, model, spec)
    restored, stored = load_model(path)  # weights_only=True
    assert stored == spec
    assert torch.allclose(restored.normalize.mean.flatten(), torch.tensor([0.49, 0.48, 0.45]))
    with torch.no_grad():
        assert torch.equal(restored(x), model(x))
    assert not restored.training


def test_spec_builds_what_cifar_resnet_builds():
    for depth in (20, 56):
        torch.manual_seed(0)
        a = ResNetSpec.depth(depth, normalize=False).build()
        torch.manual_seed(0)
        b = cifar_resnet(**cifar_depth_kwargs(depth))
        assert count_parameters(a) == count_parameters(b)
        assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_multiply_adds_of_a_single_conv():
    conv = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False))
    assert _total_macs(conv, (2, 3, 10, 10)) == 8 * 3 * 9 * 10 * 10  # per image


def test_counting_on_the_meta_device_needs_no_data():
    with torch.device("meta"):
        model = resnet50()
    assert count_parameters(model) == TORCHVISION_PARAMETERS["resnet50"]
    assert _total_macs(model, (1, 3, 224, 224)) == _total_macs(resnet50(), (1, 3, 224, 224))


def _total_macs(model, input_size):
    return sum(multiply_adds(model, input_size).values())
