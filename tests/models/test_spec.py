"""Model specs: each builds its model, round-trips through a file with the weights,
and fit's checkpoints hold the spec so that one call reloads the trained model."""
from dataclasses import dataclass, field

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from scratch.config import ConfigError, describe
from scratch.models.alexnet import AlexNetSpec
from scratch.models.inspection import count_parameters
from scratch.models.lenet import LeNet5, LeNetSpec
from scratch.models.resnet import ResNetSpec
from scratch.models.small_cnn import SmallCNNSpec
from scratch.models.spec import load_model, save_model
from scratch.models.unet import UNetSpec
from scratch.train import TrainConfig, fit

SPECS = [
    (LeNetSpec(modern=True), torch.rand(2, 1, 32, 32)),
    (AlexNetSpec(layout="cifar", num_classes=10), torch.rand(2, 3, 32, 32)),
    (ResNetSpec(blocks=(1, 1), widths=(4, 8), preact=True), torch.rand(2, 3, 32, 32)),
    (UNetSpec(width=4, depth=2), torch.rand(2, 3, 16, 16)),
    (SmallCNNSpec(channels=(4, 8)), torch.rand(2, 1, 14, 14)),
]


@pytest.mark.parametrize("spec, x", SPECS, ids=lambda v: type(v).__name__)
def test_save_and_load_rebuild_the_same_model(spec, x, tmp_path):
    torch.manual_seed(0)
    model = spec.build().eval()
    with torch.no_grad():  # change the buffers too: they must travel with the weights
        for b in model.buffers():
            if b.is_floating_point():
                b.mul_(1.5).add_(0.1)
    save_model(tmp_path / "m.pt", model, spec)
    restored, stored = load_model(tmp_path / "m.pt")
    assert stored == spec and type(stored) is type(spec)
    assert count_parameters(restored) == count_parameters(model)
    with torch.no_grad():
        assert torch.equal(restored(x), model(x))


def test_lenet_spec_is_the_paper_network_by_default():
    assert count_parameters(LeNetSpec().build()) == count_parameters(LeNet5())
    assert type(LeNetSpec(modern=True).build().act).__name__ == "ReLU"


def test_a_file_cannot_name_a_class_outside_scratch_models(tmp_path):
    torch.save({"spec": {"class": "os.system", "fields": {}}, "model": {}}, tmp_path / "x.pt")
    with pytest.raises(ConfigError, match="not one of scratch.models"):
        load_model(tmp_path / "x.pt")
    torch.save({"model": {}}, tmp_path / "y.pt")
    with pytest.raises(ConfigError, match="holds no model spec"):
        load_model(tmp_path / "y.pt")


@dataclass
class TinyConfig(TrainConfig):
    NAME = "tiny_spec"
    model: LeNetSpec = field(default_factory=LeNetSpec, metadata=describe("the net"))


def test_fit_checkpoint_holds_the_spec_and_reloads(tmp_path):
    cfg = TinyConfig.create("tiny", out_dir=str(tmp_path), epochs=1, batch_size=8,
                            **{"model.modern": True})
    torch.manual_seed(0)
    model = cfg.model.build()
    data = TensorDataset(torch.rand(16, 1, 32, 32), torch.randint(0, 10, (16,)))
    fit(model, torch.optim.SGD(model.parameters(), lr=0.01), DataLoader(data, batch_size=8),
        cfg, verbose=False)
    restored, spec = load_model(cfg.run_dir / "last.pt")
    assert spec == LeNetSpec(modern=True)
    x = torch.rand(3, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(restored(x), model.eval()(x))
