"""Tests of scratch.models.alexnet: the paper's layout, parameter counts, shapes, LRN,
multiply-adds, checkpoints and the augmentation helpers."""
import pytest
import torch
import torchvision
from torch import nn

from scratch.models.alexnet import PAPER_PARAMETERS, AlexNet, LocalResponseNorm, pca_lighting, rgb_pca
from scratch.models.inspection import multiply_adds, parameter_counts
from scratch.models.layers import center_crop
from scratch.train import load_checkpoint, predict, save_checkpoint


def total(model):
    return sum(p.numel() for p in model.parameters())


# ---- parameter counts ---------------------------------------------------------------------
def test_two_tower_counts_are_the_papers_derived_layer_by_layer():
    # Written out here independently of the library's table: C_out * (C_in / g * k * k + 1).
    expected = {"conv1": 96 * (3 * 11 * 11 + 1), "conv2": 256 * (48 * 5 * 5 + 1),
                "conv3": 384 * (256 * 3 * 3 + 1), "conv4": 384 * (192 * 3 * 3 + 1),
                "conv5": 256 * (192 * 3 * 3 + 1), "fc6": 4096 * (256 * 6 * 6 + 1),
                "fc7": 4096 * 4097, "fc8": 1000 * 4097}
    assert expected == {"conv1": 34_944, "conv2": 307_456, "conv3": 885_120, "conv4": 663_936,
                        "conv5": 442_624, "fc6": 37_752_832, "fc7": 16_781_312, "fc8": 4_097_000}
    assert PAPER_PARAMETERS == expected
    model = AlexNet(1000, "imagenet", two_towers=True)
    assert parameter_counts(model) == expected
    assert total(model) == 60_965_224  # the paper's "60 million"


def test_single_tower_count():
    model = AlexNet(1000, "imagenet", two_towers=False)
    counts = parameter_counts(model)
    assert counts["conv2"] == 256 * (96 * 25 + 1) == 614_656
    assert counts["conv4"] == 384 * (384 * 9 + 1) == 1_327_488
    assert counts["conv5"] == 256 * (384 * 9 + 1) == 884_992
    assert total(model) == 62_378_344
    assert total(model) - total(AlexNet(1000, "imagenet")) == 307_200 + 663_552 + 442_368


def test_torchvision_alexnet_has_other_widths():
    # Only to compare: torchvision's one-tower variant (64-192-384-256-256 kernels).
    tv = torchvision.models.alexnet(weights=None)
    assert total(tv) == 61_100_840
    assert total(tv) not in (60_965_224, 62_378_344)


def test_cifar_layout_counts():
    model = AlexNet(10, "cifar")
    assert parameter_counts(model) == {
        "conv1": 32 * (3 * 25 + 1), "conv2": 64 * (16 * 25 + 1), "conv3": 96 * (64 * 9 + 1),
        "conv4": 96 * (48 * 9 + 1), "conv5": 64 * (48 * 9 + 1), "fc6": 512 * (64 * 16 + 1),
        "fc7": 512 * 513, "fc8": 10 * 513}
    assert total(model) == 945_354
    # one tower: conv2, conv4, conv5 see all the maps below (64 * 16 * 25 + 96 * 48 * 9 + 64 * 48 * 9 more)
    assert total(AlexNet(10, "cifar", two_towers=False)) == 945_354 + 25_600 + 41_472 + 27_648 == 1_040_074
    # Switching LRN, pooling, dropout or the activation changes no parameter.
    for kw in [dict(lrn=False), dict(overlap=False), dict(dropout=0.0), dict(act="tanh")]:
        assert total(AlexNet(10, "cifar", **kw)) == 945_354, kw


def test_normalize_buffers_are_not_parameters():
    model = AlexNet(10, "cifar", mean=(0.1, 0.2, 0.3), std=(0.5, 0.5, 0.5))
    assert "norm.mean" in model.state_dict() and "norm" not in parameter_counts(model)


# ---- shapes ------------------------------------------------------------------------------
IMAGENET_SHAPES = {"conv1": (96, 55, 55), "pool1": (96, 27, 27), "conv2": (256, 27, 27),
                   "pool2": (256, 13, 13), "conv3": (384, 13, 13), "conv4": (384, 13, 13),
                   "conv5": (256, 13, 13), "pool5": (256, 6, 6), "fc6": (4096,), "fc7": (4096,),
                   "fc8": (1000,)}


@pytest.mark.parametrize("overlap", [True, False])
def test_imagenet_layer_shapes(overlap):
    model = AlexNet(1000, "imagenet", overlap=overlap).eval()
    with torch.no_grad():
        maps = model.features(torch.rand(2, 3, 227, 227))
    assert {k: tuple(v.shape[1:]) for k, v in maps.items()} == IMAGENET_SHAPES
    assert maps["fc8"].shape[0] == 2


def test_224_does_not_give_55_and_is_refused():
    assert (224 - 11) // 4 + 1 == 54 and (227 - 11) // 4 + 1 == 55
    with pytest.raises(ValueError, match="227"):
        AlexNet(1000, "imagenet")(torch.zeros(1, 3, 224, 224))


@pytest.mark.parametrize("overlap", [True, False])
def test_cifar_layer_shapes(overlap):
    model = AlexNet(10, "cifar", overlap=overlap).eval()
    with torch.no_grad():
        maps = model.features(torch.rand(3, 3, 32, 32))
    assert {k: tuple(v.shape[1:]) for k, v in maps.items()} == {
        "conv1": (32, 32, 32), "pool1": (32, 16, 16), "conv2": (64, 16, 16), "pool2": (64, 8, 8),
        "conv3": (96, 8, 8), "conv4": (96, 8, 8), "conv5": (64, 8, 8), "pool5": (64, 4, 4),
        "fc6": (512,), "fc7": (512,), "fc8": (10,)}


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError):
        AlexNet(10, "mnist")
    with pytest.raises(ValueError):
        AlexNet(10, "cifar", act="sigmoid")
    with pytest.raises(ValueError):
        AlexNet(10, "cifar", init="xavier")


# ---- local response normalisation -------------------------------------------------------------
@pytest.mark.parametrize("channels", [1, 3, 7, 16])
def test_lrn_matches_torch_with_alpha_times_n(channels):
    torch.manual_seed(0)
    a = torch.randn(2, channels, 4, 5) * 30  # large activities: the sum matters
    ours = LocalResponseNorm()(a)
    theirs = nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)(a)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    if channels > 1:
        # torch divides alpha by n: passing the paper's alpha unchanged is a different layer
        assert not torch.allclose(ours, nn.LocalResponseNorm(5, 1e-4, 0.75, 2.0)(a))


def test_lrn_is_the_papers_formula_by_loops():
    torch.manual_seed(1)
    a = torch.randn(1, 8, 2, 2) * 50
    n, alpha, beta, k = 5, 1e-4, 0.75, 2.0
    expected = torch.empty_like(a)
    for i in range(8):
        lo, hi = max(0, i - n // 2), min(7, i + n // 2)
        s = (a[:, lo:hi + 1] ** 2).sum(dim=1)
        expected[:, i] = a[:, i] / (k + alpha * s) ** beta
    torch.testing.assert_close(LocalResponseNorm()(a), expected)


def test_lrn_keeps_its_effect_under_bf16_autocast():
    a = torch.full((1, 5, 1, 1), 10.0)  # alpha * sum = 0.05: lost if 2 + 0.05 were bf16
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = LocalResponseNorm()(a.bfloat16())
    exact = 10.0 / (2 + 1e-4 * 300) ** 0.75  # centre channel: 3 neighbours + itself in range
    assert out.dtype == torch.bfloat16
    assert out[0, 2].float().item() == pytest.approx(exact, rel=1e-2)


def test_lrn_gradients_match_torch():
    torch.manual_seed(2)
    a = (torch.randn(2, 6, 3, 3, dtype=torch.float64) * 20).requires_grad_()
    b = a.detach().clone().requires_grad_()
    LocalResponseNorm()(a).square().sum().backward()
    nn.LocalResponseNorm(5, 5e-4, 0.75, 2.0)(b).square().sum().backward()
    torch.testing.assert_close(a.grad, b.grad)


# ---- multiply-adds ------------------------------------------------------------------------------
def test_multiply_adds_of_the_papers_layout():
    macs = multiply_adds(AlexNet(1000, "imagenet"))
    assert macs == {"conv1": 96 * 55 * 55 * 363, "conv2": 256 * 27 * 27 * 48 * 25,
                    "conv3": 384 * 13 * 13 * 256 * 9, "conv4": 384 * 13 * 13 * 192 * 9,
                    "conv5": 256 * 13 * 13 * 192 * 9, "fc6": 9216 * 4096, "fc7": 4096 * 4096,
                    "fc8": 4096 * 1000}
    assert sum(macs.values()) == 724_406_816
    one = multiply_adds(AlexNet(1000, "imagenet", two_towers=False))
    assert one["conv2"] == 2 * macs["conv2"] and one["conv3"] == macs["conv3"]


def test_multiply_adds_of_the_cifar_layout():
    assert sum(multiply_adds(AlexNet(10, "cifar")).values()) == 17_765_376


# ---- initialisation, training and checkpoints ---------------------------------------------
def test_paper_initialisation():
    torch.manual_seed(0)
    model = AlexNet(10, "cifar", init="paper")
    for name in ["conv2", "conv4", "conv5", "fc6", "fc7"]:
        assert torch.all(getattr(model, name).bias == 1), name
    for name in ["conv1", "conv3", "fc8"]:
        assert torch.all(getattr(model, name).bias == 0), name
    assert model.fc6.weight.std().item() == pytest.approx(0.01, rel=0.05)


def test_he_initialisation_and_small_output_layer():
    torch.manual_seed(0)
    model = AlexNet(10, "cifar")
    fan_in = model.conv3.weight[0].numel()
    assert model.conv3.weight.std().item() == pytest.approx((2 / fan_in) ** 0.5, rel=0.05)
    assert model.fc8.weight.std().item() == pytest.approx(0.01, rel=0.1)
    with torch.no_grad():  # small logits: first predictions near uniform (loss near log 10)
        logits = model.eval()(torch.rand(64, 3, 32, 32))
    assert logits.std().item() < 1.0
    loss = nn.functional.cross_entropy(logits, torch.randint(0, 10, (64,)))
    assert abs(loss.item() - torch.log(torch.tensor(10.0)).item()) < 0.5


@pytest.mark.parametrize("act", ["relu", "tanh"])
def test_a_few_sgd_steps_reduce_the_loss(act):
    torch.manual_seed(0)
    model = AlexNet(10, "cifar", dropout=0.0, act=act)
    y = torch.arange(32) % 10
    x = (torch.rand(10, 3, 32, 32)[y] + 0.1 * torch.rand(32, 3, 32, 32)).clamp(0, 1)
    lr = {"relu": 0.01, "tanh": 0.02}[act]  # each near its fastest rate here
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    losses = []
    for _ in range(15):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]


def test_dropout_only_in_training_mode():
    torch.manual_seed(0)
    model = AlexNet(10, "cifar")
    x = torch.rand(4, 3, 32, 32)
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    assert not torch.equal(model(x), model(x))


def test_checkpoint_round_trip_gives_identical_predictions(tmp_path):
    torch.manual_seed(0)
    model = AlexNet(10, "cifar", mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3))
    x = torch.rand(8, 3, 32, 32)
    save_checkpoint(tmp_path / "alexnet.pt", model=model.state_dict())
    restored = AlexNet(10, "cifar")  # other initial weights and statistics
    assert not torch.equal(predict(restored, x), predict(model, x))
    restored.load_state_dict(load_checkpoint(tmp_path / "alexnet.pt")["model"])  # weights_only
    assert torch.equal(predict(restored, x), predict(model, x))


# ---- augmentation helpers --------------------------------------------------------------------
def test_center_crop_is_the_middle_window():
    x = torch.arange(4 * 10 * 10, dtype=torch.float32).view(4, 1, 10, 10).repeat(1, 3, 1, 1)
    assert torch.equal(center_crop(x, 6), x[..., 2:8, 2:8])


def test_pca_lighting_shifts_each_image_by_one_colour():
    torch.manual_seed(0)
    images = torch.rand(16, 3, 8, 8) * 0.5 + 0.25
    eigenvalues, eigenvectors = rgb_pca(images)
    assert torch.allclose(eigenvectors.T @ eigenvectors, torch.eye(3), atol=1e-5)
    out = pca_lighting(images, eigenvalues, eigenvectors, sigma=0.1)
    shift = out - images  # no clamping in this range: one RGB offset per image
    assert torch.allclose(shift, shift[:, :, :1, :1].expand_as(shift), atol=1e-6)
    assert not torch.allclose(shift[0], shift[1])
    assert torch.equal(pca_lighting(images, eigenvalues, eigenvectors, sigma=0.0), images)
