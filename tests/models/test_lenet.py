"""Tests of scratch.models.lenet: the paper's architecture, counts and connection table,
training, checkpoints and the data helpers."""
import numpy as np
import pytest
import torch
from torch import nn

from scratch.models.lenet import (PAPER_PARAMETERS, LeNet5, PartialConv2d, ScaledTanh, Subsampling, c3_table,
                                  pad_and_normalize, pixel_stats, random_shift)
from scratch.models.inspection import parameter_counts
from scratch.train import load_checkpoint, predict, save_checkpoint


@pytest.fixture
def model():
    torch.manual_seed(0)
    return LeNet5()


def paper_table_i():
    """Table I written from the paper's description, independently of the library's text:
    C3 maps 0-5 see 3 neighbouring S2 maps, 6-11 see 4 neighbouring ones, 12-14 see 4
    non-neighbouring ones and 15 sees all 6."""
    table = torch.zeros(6, 16, dtype=torch.bool)
    for j in range(6):
        table[[(j + d) % 6 for d in range(3)], j] = True
        table[[(j + d) % 6 for d in range(4)], 6 + j] = True
    for j, inputs in enumerate([(0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5)]):
        table[list(inputs), 12 + j] = True
    table[:, 15] = True
    return table


# ---- architecture ---------------------------------------------------------------------
def test_parameter_counts_match_the_paper(model):
    counts = parameter_counts(model)
    assert PAPER_PARAMETERS == {"c1": 156, "s2": 12, "c3": 1_516, "s4": 32, "c5": 48_120, "f6": 10_164}
    for name, paper in PAPER_PARAMETERS.items():
        assert counts[name] == paper, name
    assert sum(PAPER_PARAMETERS.values()) == 60_000  # the paper's total
    assert counts["output"] == 84 * 10 + 10
    assert sum(p.numel() for p in model.parameters()) == 60_000 + 850


def test_modern_variant_counts():
    counts = parameter_counts(LeNet5(modern=True))
    assert "s2" not in counts and "s4" not in counts  # max-pooling has no parameters
    assert counts["c3"] == 16 * (6 * 25 + 1)           # full connections
    assert counts["c1"] == 156 and counts["c5"] == 48_120 and counts["f6"] == 10_164


@pytest.mark.parametrize("modern", [False, True])
def test_output_and_feature_shapes(modern):
    model = LeNet5(modern=modern)
    x = torch.randn(3, 1, 32, 32)
    assert model(x).shape == (3, 10)
    shapes = {k: tuple(v.shape) for k, v in model.features(x).items()}
    assert shapes == {"C1": (3, 6, 28, 28), "S2": (3, 6, 14, 14), "C3": (3, 16, 10, 10),
                      "S4": (3, 16, 5, 5), "C5": (3, 120), "F6": (3, 84)}


def test_28x28_input_is_rejected_with_a_hint(model):
    with pytest.raises(ValueError, match="pad"):
        model(torch.randn(2, 1, 28, 28))


def test_c3_table_is_table_i_with_60_connections(model):
    table = c3_table()
    assert table.shape == (6, 16)
    assert int(table.sum()) == 60
    assert torch.equal(table, paper_table_i())
    assert torch.equal(model.c3.table, table)
    assert model.c3.weight.shape == (60, 5, 5)
    # The dense kernel is zero exactly where the table has no connection.
    nonzero = model.c3.full_weight().detach().abs().sum(dim=(2, 3)) != 0  # (out, in)
    assert torch.equal(nonzero.t(), table)


def test_partial_conv_equals_masked_dense_conv_and_its_gradients():
    torch.manual_seed(1)
    layer = PartialConv2d(c3_table(), kernel_size=5)
    x = torch.randn(2, 6, 14, 14, requires_grad=True)
    dense = layer.full_weight().detach().clone().requires_grad_(True)
    expected = nn.functional.conv2d(x, dense * c3_table().t()[:, :, None, None].float(), layer.bias)
    got = layer(x)
    torch.testing.assert_close(got, expected)
    got.square().sum().backward()
    # Each stored kernel gets the gradient of its own position in the dense kernel.
    ref = torch.autograd.grad(nn.functional.conv2d(x, dense, layer.bias).square().sum(), dense)[0]
    out_idx, in_idx = layer.index // 6, layer.index % 6
    torch.testing.assert_close(layer.weight.grad, ref[out_idx, in_idx])


def test_scaled_tanh_maps_plus_minus_one_to_itself():
    f = ScaledTanh()
    torch.testing.assert_close(f(torch.tensor([-1.0, 0.0, 1.0])), torch.tensor([-1.0, 0.0, 1.0]),
                               atol=1e-4, rtol=0)


def test_subsampling_is_average_pool_times_coefficient_plus_bias():
    layer = Subsampling(2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([2.0, -1.0]))
        layer.bias.copy_(torch.tensor([0.5, 0.0]))
    x = torch.arange(32.0).view(1, 2, 4, 4)
    y = layer(x)
    assert y.shape == (1, 2, 2, 2)
    assert y[0, 0, 0, 0].item() == pytest.approx(2.0 * (0 + 1 + 4 + 5) / 4 + 0.5)
    assert y[0, 1, 1, 1].item() == pytest.approx(-1.0 * (26 + 27 + 30 + 31) / 4)


# ---- training and checkpoints -----------------------------------------------------------
@pytest.mark.parametrize("modern", [False, True])
def test_a_few_sgd_steps_reduce_the_loss(modern):
    torch.manual_seed(0)
    model = LeNet5(modern=modern)
    y = torch.arange(32) % 10
    x = torch.randn(10, 1, 32, 32)[y] + 0.5 * torch.randn(32, 1, 32, 32)  # a noisy template per class
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(10):
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_checkpoint_round_trip_gives_identical_predictions(model, tmp_path):
    x = torch.randn(8, 1, 32, 32)
    path = tmp_path / "lenet.pt"
    save_checkpoint(path, model=model.state_dict())
    restored = LeNet5()  # a fresh, differently initialised network
    assert not torch.equal(predict(restored, x), predict(model, x))
    restored.load_state_dict(load_checkpoint(path)["model"])  # weights_only=True
    assert torch.equal(predict(restored, x), predict(model, x))


# ---- data helpers -------------------------------------------------------------------------
def test_pad_and_normalize_pads_with_background():
    images = np.zeros((2, 28, 28), dtype=np.uint8)
    images[:, 10:18, 10:18] = 255
    mean, std = pixel_stats(images)
    x = pad_and_normalize(images, mean, std)
    assert x.shape == (2, 1, 32, 32) and x.dtype == torch.float32
    background = (0 - mean) / std
    assert torch.allclose(x[:, :, :2], torch.tensor(background))   # the padding
    assert torch.allclose(x[:, :, 5, 5], torch.tensor(background))  # the digit's own background
    digits = x[:, :, 2:30, 2:30]  # the images the statistics came from: standardised
    assert digits.mean().item() == pytest.approx(0, abs=1e-5)
    assert digits.std(unbiased=False).item() == pytest.approx(1, abs=1e-5)


def test_random_shift_moves_whole_images_within_range():
    torch.manual_seed(0)
    x = torch.zeros(64, 1, 12, 12)
    x[:, :, 5, 6] = 1.0  # one bright pixel per image, on a background of 0
    shifted = random_shift(x, 2)
    assert shifted.shape == x.shape
    assert torch.equal(shifted.sum(dim=(1, 2, 3)), x.sum(dim=(1, 2, 3)))  # nothing lost, nothing added
    where = shifted[:, 0].flatten(1).argmax(1)  # (64,) flat index of the bright pixel
    rows, cols = where // 12, where % 12
    assert (rows - 5).abs().max() <= 2 and (cols - 6).abs().max() <= 2
    assert len(set(zip(rows.tolist(), cols.tolist()))) > 5  # images get different shifts
    assert torch.equal(random_shift(x, 0), x)
