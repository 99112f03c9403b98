"""Tests of scratch.models.small_cnn: parameter counts, shapes, input scaling and a
short training run."""
import torch
from torch import nn

from scratch.models.inspection import count_parameters
from scratch.models.small_cnn import TABLE_PARAMETERS, SmallCNN


def test_parameter_counts():
    model = SmallCNN()
    assert TABLE_PARAMETERS == {"conv1": 16 * (5 * 5 + 1), "conv2": 32 * (16 * 3 * 3 + 1),
                          "fc": 10 * (32 * 3 * 3 + 1)}
    for name, expected in TABLE_PARAMETERS.items():
        assert count_parameters(getattr(model, name)) == expected, name
    assert count_parameters(model) == 7_946 == sum(TABLE_PARAMETERS.values())
    # The normalisation statistics are buffers, not trainable parameters.
    assert {n for n, _ in model.named_buffers()} == {"norm.mean", "norm.std"}


def test_output_and_feature_shapes():
    model = SmallCNN()
    x = torch.rand(3, 1, 14, 14)
    assert model(x).shape == (3, 10)
    shapes = {k: tuple(v.shape) for k, v in model.features(x).items()}
    assert shapes == {"conv1": (3, 16, 14, 14), "pool1": (3, 16, 7, 7), "conv2": (3, 32, 7, 7),
                      "pool2": (3, 32, 3, 3), "fc": (3, 10)}
    assert torch.allclose(model.features(x)["fc"], model(x))


def test_other_widths_and_sizes():
    model = SmallCNN(channels=(8, 12), size=28, num_classes=3)
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 3)
    assert count_parameters(model) == 8 * 26 + 12 * (8 * 9 + 1) + 3 * (12 * 7 * 7 + 1)


def test_normalisation_inside_the_model():
    torch.manual_seed(0)
    x = torch.rand(4, 1, 14, 14)
    plain, scaled = SmallCNN(), SmallCNN(mean=0.5, std=2.0)
    scaled.load_state_dict({**plain.state_dict(), "norm.mean": scaled.norm.mean,
                            "norm.std": scaled.norm.std})
    assert torch.allclose(scaled(x), plain((x - 0.5) / 2.0), atol=1e-6)
    assert torch.equal(SmallCNN(0.5, 2.0).state_dict()["norm.std"].flatten(), torch.tensor([2.0]))


def test_learns_a_toy_problem():
    # Bright top half versus bright bottom half: a few steps must separate them.
    torch.manual_seed(0)
    x = torch.zeros(64, 1, 14, 14)
    y = torch.arange(64) % 2
    x[y == 0, :, :7] = 1
    x[y == 1, :, 7:] = 1
    x += 0.1 * torch.rand_like(x)
    model = SmallCNN(mean=0.5, std=0.5)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(30):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    assert (model(x).argmax(1) == y).all()
