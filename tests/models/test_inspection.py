"""scratch.models.inspection: parameter and multiply-add counts, checked against
counts written out by hand (independent of the hooks that make them)."""
import torch
from torch import nn

from scratch.models.inspection import count_parameters, multiply_adds, parameter_counts


def net():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                         nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=2, bias=False), nn.ReLU()),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))


def test_parameter_counts_per_top_level_layer_and_in_all():
    model = net()
    assert parameter_counts(model) == {"0": 8 * 3 * 9 + 8, "2": 8 * 4 * 9, "5": 8 * 10 + 10}
    assert count_parameters(model) == sum(parameter_counts(model).values())
    model[5].weight.requires_grad_(False)
    assert count_parameters(model) == 8 * 3 * 9 + 8 + 8 * 4 * 9 + 10
    assert count_parameters(model, trainable_only=False) == 8 * 3 * 9 + 8 + 8 * 4 * 9 + 90


def test_multiply_adds_name_nested_layers_count_groups_and_one_image():
    model = net()
    macs = multiply_adds(model, (2, 3, 16, 16))    # a batch of 2: still counted per image
    assert macs == {"0": 8 * 16 * 16 * 3 * 9,       # per output value: C_in * k * k
                    "2.0": 8 * 16 * 16 * 4 * 9,     # groups=2: C_in / 2 per output value
                    "5": 10 * 8}
    assert multiply_adds(model, 16) == multiply_adds(model, (1, 3, 16, 16))
    assert model.training                           # left as it was found


def test_multiply_adds_on_the_meta_device_needs_no_data():
    with torch.device("meta"):
        model = net()
    assert multiply_adds(model, (1, 3, 16, 16)) == multiply_adds(net(), (1, 3, 16, 16))
