"""Tests of scratch.models.unet: the paper's U-Net (sizes, parameter count), the
same-padding U-Net of the chapter, the losses and metrics, and the digits task."""
import numpy as np
import pytest
import torch
from torch.nn import functional as F

from scratch.models.inspection import count_parameters
from scratch.models.layers import center_crop
from scratch.models.unet import (LOSSES, PAPER_PARAMETERS, PAPER_WIDTHS, UNet, UNet2015, bce_dice_loss,
                                 bce_loss, dice_loss, dice_score, iou_loss, iou_score,
                                 paste_digits, scores, soft_dice, soft_iou, unet_parameters)


def conv(c_in, c_out, k=3, bias=True):
    return c_out * (c_in * k * k + (1 if bias else 0))


# ---- the paper's network ---------------------------------------------------------------
def test_paper_parameter_count_layer_by_layer():
    """31,030,658 for 1 input channel and 2 classes, written out level by level from Fig. 1."""
    w = (64, 128, 256, 512, 1024)
    encoder = [conv(1, 64) + conv(64, 64), conv(64, 128) + conv(128, 128), conv(128, 256) + conv(256, 256),
               conv(256, 512) + conv(512, 512)]
    bottom = conv(512, 1024) + conv(1024, 1024)
    up = [conv(1024, 512, k=2), conv(512, 256, k=2), conv(256, 128, k=2), conv(128, 64, k=2)]
    decoder = [conv(1024, 512) + conv(512, 512), conv(512, 256) + conv(256, 256), conv(256, 128) + conv(128, 128),
               conv(128, 64) + conv(64, 64)]
    head = conv(64, 2, k=1)
    total = sum(encoder) + bottom + sum(up) + sum(decoder) + head
    assert total == 31_030_658 == PAPER_PARAMETERS
    assert PAPER_WIDTHS == w
    with torch.device("meta"):  # counting needs no real weights
        model = UNet2015()
    assert count_parameters(model) == total
    assert [count_parameters(m) for m in model.down] == encoder
    assert count_parameters(model.bottom) == bottom
    assert [count_parameters(m) for m in model.up] == up
    assert [count_parameters(m) for m in model.dec] == decoder
    assert unet_parameters(1, 2, 64, 4, valid=True) == total
    assert abs(total / 1e6 - 31.03) < 0.01


def test_paper_tile_572_gives_388():
    with torch.device("meta"):
        model = UNet2015()
        out = model(torch.empty(2, 1, 572, 572))
    assert tuple(out.shape) == (2, 2, 388, 388)
    assert UNet2015.output_size(572) == 388


def test_valid_input_sizes():
    valid = []
    for h in range(1, 700):
        try:
            out = UNet2015.output_size(h)
        except ValueError:
            continue
        assert out == h - 184  # eq. (unet-size) for depth 4
        valid.append(h)
    assert valid == list(range(188, 700, 16))
    with pytest.raises(ValueError):
        UNet2015.output_size(570)  # a pooling would see an odd size


def test_paper_network_runs_and_crops():
    """A real forward pass (narrow widths to keep it fast) at the smallest valid size."""
    torch.manual_seed(0)
    model = UNet2015(in_channels=1, num_classes=2, widths=(4, 8, 16, 32, 64))
    assert model(torch.randn(1, 1, 188, 188)).shape == (1, 2, 4, 4)
    assert model(torch.randn(1, 1, 204, 204)).shape == (1, 2, 20, 20)


def test_center_crop():
    x = torch.arange(36.0).view(1, 1, 6, 6)
    assert torch.equal(center_crop(x, 2, 2)[0, 0], torch.tensor([[14.0, 15.0], [20.0, 21.0]]))
    assert center_crop(torch.zeros(1, 3, 9, 7), 5, 3).shape == (1, 3, 5, 3)


# ---- the same-padding U-Net -------------------------------------------------------------
def test_small_profile_count_by_hand():
    """width 16, depth 3, BatchNorm, transposed convolutions, 3 -> 1 channels (the small profile)."""
    def bn_conv(c_in, c_out):  # no bias before BatchNorm; BatchNorm adds a scale and a shift
        return conv(c_in, c_out, bias=False) + 2 * c_out
    enc = bn_conv(3, 16) + bn_conv(16, 16) + bn_conv(16, 32) + bn_conv(32, 32) + bn_conv(32, 64) + bn_conv(64, 64)
    bottom = bn_conv(64, 128) + bn_conv(128, 128)
    ups = conv(128, 64, k=2) + conv(64, 32, k=2) + conv(32, 16, k=2)
    dec = (bn_conv(128, 64) + bn_conv(64, 64) + bn_conv(64, 32) + bn_conv(32, 32)
           + bn_conv(32, 16) + bn_conv(16, 16))
    total = enc + bottom + ups + dec + conv(16, 1, k=1)
    assert total == 482_737
    assert count_parameters(UNet(width=16, depth=3)) == total


@pytest.mark.parametrize("kwargs, expected", [
    # the configurations the chapter trains: tiny, small and full profiles
    (dict(width=8, depth=2), 29_625),
    (dict(width=8, depth=2, up="bilinear"), 27_705),
    (dict(width=8, depth=2, skips=False), 26_745),
    (dict(width=16, depth=3), 482_737),
    (dict(width=16, depth=3, up="bilinear"), 450_481),
    (dict(width=16, depth=3, skips=False), 434_353),
    (dict(width=64, depth=4), 31_037_633),
    (dict(width=64, depth=4, up="bilinear"), 28_948_673),
    (dict(width=64, depth=4, skips=False), 27_904_193),
    # the paper's widths with padding: as many parameters as the paper's; BatchNorm adds c per conv
    (dict(in_channels=1, num_classes=2, width=64, depth=4, batch_norm=False), 31_030_658),
    (dict(in_channels=1, num_classes=2, width=64, depth=4), 31_030_658 + 5_888),
])
def test_unet_parameter_counts(kwargs, expected):
    with torch.device("meta"):
        model = UNet(**kwargs)
    assert count_parameters(model) == expected == unet_parameters(**kwargs)


@pytest.mark.parametrize("up", ["transpose", "bilinear"])
@pytest.mark.parametrize("skips", [True, False])
def test_unet_output_has_input_size(up, skips):
    model = UNet(width=4, depth=3, up=up, skips=skips)
    assert model(torch.rand(2, 3, 32, 48)).shape == (2, 1, 32, 48)
    assert UNet(in_channels=1, num_classes=3, width=4, depth=2)(torch.rand(1, 1, 16, 16)).shape == (1, 3, 16, 16)


def test_unet_rejects_bad_sizes_and_modes():
    with pytest.raises(ValueError, match="divisible by 8"):
        UNet(width=4, depth=3)(torch.rand(1, 3, 30, 32))
    with pytest.raises(ValueError, match="transpose"):
        UNet(up="nearest")


def test_unet_normalizes_inside():
    model = UNet(width=4, depth=1, mean=[0.1, 0.2, 0.3], std=[0.5, 0.5, 0.5])
    x = torch.full((1, 3, 2, 2), 0.6)
    assert torch.allclose(model.normalize(x)[0, :, 0, 0], torch.tensor([1.0, 0.8, 0.6]))
    assert count_parameters(model) == unet_parameters(width=4, depth=1)  # buffers are no parameters


def test_unet_trains_channels_last_bf16():
    """A few steps on one batch lower the loss, in the chapter's CPU setting."""
    torch.manual_seed(0)
    model = UNet(width=4, depth=2).to(memory_format=torch.channels_last)
    x = torch.rand(8, 3, 16, 16).contiguous(memory_format=torch.channels_last)
    y = (x.mean(1, keepdim=True) > 0.5).float()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(8):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = bce_dice_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


# ---- losses and metrics ----------------------------------------------------------------------
def test_dice_and_iou_on_known_masks():
    target = torch.zeros(1, 1, 4, 4)
    target[..., :2, :] = 1                       # 8 pixels
    pred_logits = torch.full((1, 1, 4, 4), -10.0)
    pred_logits[..., 1:3, :] = 10.0              # 8 pixels, 4 of them right
    dice, iou = scores(pred_logits, target)
    assert dice.item() == pytest.approx(2 * 4 / 16)
    assert iou.item() == pytest.approx(4 / 12)
    assert dice_score(pred_logits, target) == pytest.approx(0.5)
    assert iou_score(pred_logits, target) == pytest.approx(1 / 3)


def test_empty_masks_and_disjoint_masks():
    empty = torch.zeros(2, 1, 3, 3)
    dice, iou = scores(torch.full((2, 1, 3, 3), -1.0), empty)
    assert dice.tolist() == [1.0, 1.0] and iou.tolist() == [1.0, 1.0]
    dice, iou = scores(torch.full((1, 1, 3, 3), 1.0), empty[:1])
    assert dice.item() == 0.0 and iou.item() == 0.0
    assert soft_dice(empty, empty).tolist() == [1.0, 1.0]  # eps keeps it defined


def test_dice_iou_relation_and_soft_equals_hard_on_binary():
    g = torch.Generator().manual_seed(0)
    target = (torch.rand(16, 1, 8, 8, generator=g) < 0.3).float()
    logits = torch.randn(16, 1, 8, 8, generator=g) + 2 * target
    dice, iou = scores(logits, target)
    assert torch.allclose(dice, 2 * iou / (1 + iou), atol=1e-6)
    hard = (logits > 0).float()
    assert torch.allclose(soft_dice(hard, target, eps=0), dice, atol=1e-6)
    assert torch.allclose(soft_iou(hard, target, eps=0), iou, atol=1e-6)


def test_losses():
    g = torch.Generator().manual_seed(1)
    target = (torch.rand(4, 1, 8, 8, generator=g) < 0.5).float()
    perfect = (2 * target - 1) * 30              # confident and right
    assert dice_loss(perfect, target).item() == pytest.approx(0, abs=1e-5)
    assert iou_loss(perfect, target).item() == pytest.approx(0, abs=1e-5)
    logits = torch.randn(4, 1, 8, 8, generator=g, requires_grad=True)
    assert bce_loss(logits, target).item() == pytest.approx(
        F.binary_cross_entropy(torch.sigmoid(logits), target).item(), rel=1e-5)
    assert bce_dice_loss(logits, target).item() == pytest.approx(
        bce_loss(logits, target).item() + dice_loss(logits, target).item(), rel=1e-6)
    assert set(LOSSES) == {"bce", "dice", "bce+dice", "iou"}
    for loss in LOSSES.values():
        value = loss(logits, target)
        (grad,) = torch.autograd.grad(value, logits)
        assert value.ndim == 0 and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_losses_accept_bf16_logits():
    target = torch.ones(2, 1, 4, 4)
    logits = torch.zeros(2, 1, 4, 4, dtype=torch.bfloat16)
    for loss in LOSSES.values():
        assert loss(logits, target).dtype == torch.float32


# ---- the digits task -------------------------------------------------------------------------
def test_paste_digits_shapes_seed_and_masks():
    rng = np.random.default_rng(0)
    backgrounds = rng.integers(0, 256, (64, 3, 32, 32), dtype=np.uint8)
    digits = np.zeros((10, 28, 28), np.uint8)
    digits[:, 6:22, 12:16] = 255                 # a vertical bar "1"
    images, masks = paste_digits(backgrounds, digits, seed=3)
    assert images.shape == (64, 3, 32, 32) and images.dtype == np.uint8
    assert masks.shape == (64, 32, 32) and masks.dtype == np.uint8
    assert set(np.unique(masks)) <= {0, 1}
    assert (masks.reshape(64, -1).sum(1) > 0).all()   # every image has a digit
    again = paste_digits(backgrounds, digits, seed=3)
    assert np.array_equal(images, again[0]) and np.array_equal(masks, again[1])
    other = paste_digits(backgrounds, digits, seed=4)
    assert not np.array_equal(masks, other[1])
    # Outside the masks (and their anti-aliased rims) the background is untouched.
    far = F.max_pool2d(torch.from_numpy(masks).float()[:, None], 5, 1, 2)[:, 0].numpy() == 0
    changed = (images != backgrounds).any(1)
    assert not (changed & far).any()


def test_paste_digits_contrast():
    """Digits are dark on bright backgrounds and bright on dark ones."""
    digits = np.zeros((1, 28, 28), np.uint8)
    digits[0, 4:24, 4:24] = 255
    for level, dark in [(230, True), (20, False)]:
        backgrounds = np.full((16, 3, 32, 32), level, np.uint8)
        images, masks = paste_digits(backgrounds, digits, seed=0, max_digits=1)
        ink = images.transpose(0, 2, 3, 1)[masks.astype(bool)]   # (pixels, 3)
        assert (ink.mean() < 128) if dark else (ink.mean() > 128)
