"""Batched augmentation: every image gets its own transform, nothing else changes."""
import pytest
import torch

from scratch.augment import (Augment, MixUp, brightness_contrast, color_jitter, cutout, random_crop,
                             random_flip)


def numbered(b=64, c=3, h=8, w=8):
    """Images whose pixels are all different, so a crop's offset can be read off."""
    return torch.arange(b * c * h * w, dtype=torch.float32).view(b, c, h, w)


def test_random_crop_is_a_shifted_window_of_the_reflect_padded_image():
    torch.manual_seed(0)
    x = numbered()
    out = random_crop(x, padding=2)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="reflect")
    offsets = set()
    for i in range(len(x)):
        hits = [(t, l) for t in range(5) for l in range(5)
                if torch.equal(padded[i, :, t:t + 8, l:l + 8], out[i])]
        assert len(hits) == 1
        offsets.add(hits[0])
    assert len(offsets) > 10  # independent offsets per image, not one per batch


def test_random_crop_to_a_smaller_size_and_errors():
    x = numbered(4, 3, 10, 10)
    assert random_crop(x, padding=0, size=6).shape == (4, 3, 6, 6)
    with pytest.raises(ValueError, match="larger"):
        random_crop(x, padding=0, size=12)


def test_unpadded_random_crops_are_windows_of_each_image():
    """AlexNet's 227 windows of 256 images: padding=0 and a smaller output size."""
    torch.manual_seed(0)
    x = torch.arange(4 * 10 * 10, dtype=torch.float32).view(4, 1, 10, 10).repeat(1, 3, 1, 1)
    crops = random_crop(x, padding=0, size=7)
    assert crops.shape == (4, 3, 7, 7)
    for i in range(4):
        top, left = divmod(int(crops[i, 0, 0, 0].item()) - i * 100, 10)
        assert torch.equal(crops[i], x[i, :, top:top + 7, left:left + 7])


def test_random_flip_mirrors_about_half_of_the_images():
    torch.manual_seed(0)
    x = numbered(400)
    out = random_flip(x)
    flipped = torch.tensor([torch.equal(o, i.flip(2)) for o, i in zip(out, x)])
    kept = torch.tensor([torch.equal(o, i) for o, i in zip(out, x)])
    assert (flipped ^ kept).all()
    assert 150 < flipped.sum() < 250


def test_cutout_blanks_one_square_per_image_with_the_fill_value():
    torch.manual_seed(0)
    x = torch.rand(32, 3, 16, 16) + 1  # no pixel equals the fill 0
    out = cutout(x, size=4, fill=0.0)
    blank = (out == 0).all(dim=1)  # (B, H, W)
    for m in blank:
        rows, cols = m.any(1).nonzero().flatten(), m.any(0).nonzero().flatten()
        assert m.sum() == len(rows) * len(cols)  # a rectangle ...
        assert len(rows) <= 4 and len(cols) <= 4  # ... at most 4x4 (clipped at borders)
    assert (blank.sum((1, 2)) == 16).float().mean() > 0.5  # mostly whole squares
    assert torch.equal(out[~blank[:, None].expand_as(out)], x[~blank[:, None].expand_as(x)])


def test_mixup_mixes_images_and_targets_with_the_same_weight():
    torch.manual_seed(0)
    x, y = torch.rand(8, 3, 4, 4), torch.arange(8) % 4
    mx, my = MixUp(alpha=1.0, num_classes=4)(x, y)
    assert my.shape == (8, 4) and torch.allclose(my.sum(1), torch.ones(8))
    lam = my[0, y[0]].item() if y[0] != y[-1] else None
    if lam is not None:  # torchvision pairs image i with image i - 1 (rolled batch)
        assert torch.allclose(mx[0], lam * x[0] + (1 - lam) * x[-1], atol=1e-6)


def test_augment_is_reproducible_and_keeps_shape_dtype_device():
    x, y = torch.rand(16, 3, 32, 32), torch.arange(16) % 10
    aug = Augment(crop=4, flip=True, cutout=8)
    torch.manual_seed(1)
    a, ya = aug(x, y)
    torch.manual_seed(1)
    b, _ = aug(x, y)
    assert torch.equal(a, b) and torch.equal(ya, y)
    assert a.shape == x.shape and a.dtype == x.dtype
    assert not torch.equal(a, x)
    _, soft = Augment(mixup=0.2)(x, y)
    assert soft.shape == (16, 10)


def test_brightness_contrast_matches_torchvision_per_image():
    from torchvision.transforms.v2 import functional as TF

    torch.manual_seed(0)
    x = torch.rand(6, 3, 8, 8)
    b = torch.tensor([0.8, 1.0, 1.2, 0.9, 1.15, 1.05])
    c = torch.tensor([1.2, 0.8, 1.0, 1.1, 0.85, 1.0])
    out = brightness_contrast(x, b, c)
    for i in range(len(x)):
        expected = TF.adjust_contrast(TF.adjust_brightness(x[i], b[i].item()), c[i].item())
        assert torch.allclose(out[i], expected, atol=1e-6)
    assert out.min() >= 0 and out.max() <= 1  # clipped: still valid images


def test_color_jitter_draws_one_factor_per_image_within_its_range():
    torch.manual_seed(0)
    x = torch.full((400, 3, 4, 4), 0.5)  # grey images: brightness scales, contrast is a no-op
    out = color_jitter(x, brightness=0.2, contrast=0.2)
    factor = out[:, 0, 0, 0] / 0.5  # each image's brightness factor
    assert torch.allclose(out, factor.view(-1, 1, 1, 1) * 0.5)  # one factor per image
    assert factor.min() >= 0.8 - 1e-6 and factor.max() <= 1.2 + 1e-6
    assert factor.min() < 0.85 and factor.max() > 1.15  # spread over the range
    assert torch.equal(color_jitter(x, 0.0, 0.0), x)  # both off: unchanged


def test_augment_applies_color_jitter_only_when_asked():
    torch.manual_seed(0)
    x, y = torch.rand(8, 3, 8, 8) * 0.5 + 0.25, torch.arange(8)
    assert torch.equal(Augment(crop=0, flip=False)(x, y)[0], x)
    jittered, _ = Augment(crop=0, flip=False, brightness=0.2, contrast=0.2)(x, y)
    assert not torch.equal(jittered, x) and jittered.shape == x.shape
    assert "brightness=0.2, contrast=0.2" in repr(Augment(brightness=0.2, contrast=0.2))
