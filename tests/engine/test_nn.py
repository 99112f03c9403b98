"""scratch.engine.nn and optim: layers, parameters and SGD steps identical to PyTorch's."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import scratch.engine.functional as F  # noqa: E402
from scratch.engine import Tensor, gradcheck, nn, no_grad, optim  # noqa: E402


def mlp(sizes=(2, 16, 16, 3)):
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers += [nn.Linear(n_in, n_out)] + ([nn.ReLU()] if i < len(sizes) - 2 else [])
    return nn.Sequential(*layers)


def torch_twin(model):
    """The same architecture in torch.nn, with our weights copied in name by name."""
    layers = [torch.nn.Linear(m.in_features, m.out_features, dtype=torch.float64) if isinstance(m, nn.Linear)
              else torch.nn.ReLU() for m in model]
    twin = torch.nn.Sequential(*layers)
    ours = dict(model.named_parameters())
    assert set(ours) == {name for name, _ in twin.named_parameters()}  # the same names
    with torch.no_grad():
        for name, p in twin.named_parameters():
            p.copy_(torch.from_numpy(ours[name].data))
    return twin


def test_parameters_names_and_count():
    np.random.seed(0)
    model = mlp((2, 16, 16, 3))
    names = [n for n, _ in model.named_parameters()]
    assert names == ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]
    assert sum(p.size for p in model.parameters()) == (2 * 16 + 16) + (16 * 16 + 16) + (16 * 3 + 3)
    assert model[0].weight.shape == (16, 2) and model[0].bias.shape == (16,)
    assert all(p.requires_grad and p.dtype == np.float64 for p in model.parameters())
    assert len(model) == 5 and isinstance(model[1], nn.ReLU)


def test_linear_init_bounds_like_torch():
    np.random.seed(0)
    layer = nn.Linear(100, 50)
    bound = 1 / np.sqrt(100)
    assert np.abs(layer.weight.data).max() <= bound and np.abs(layer.weight.data).max() > 0.9 * bound
    assert layer.weight.data.std() == pytest.approx(bound / np.sqrt(3), rel=0.05)  # uniform's std
    assert nn.Linear(3, 2, bias=False).parameters()[0].shape == (2, 3)
    assert len(nn.Linear(3, 2, bias=False).parameters()) == 1
    assert nn.Linear(3, 2, dtype=np.float32).weight.dtype == np.float32


def test_mlp_step_matches_torch():
    """Linear-ReLU-Linear + cross-entropy: same loss, same gradients as torch, to float64 rounding."""
    np.random.seed(1)
    model = mlp((2, 16, 3))
    twin = torch_twin(model)
    x = np.random.randn(32, 2)
    y = np.random.randint(0, 3, 32)

    loss = F.cross_entropy(model(Tensor(x)), y)
    loss.backward()
    tloss = torch.nn.functional.cross_entropy(twin(torch.from_numpy(x)), torch.from_numpy(y))
    tloss.backward()

    assert loss.item() == pytest.approx(tloss.item(), rel=1e-12)
    theirs = dict(twin.named_parameters())
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad, theirs[name].grad.numpy(), rtol=1e-9, atol=1e-14, err_msg=name)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_training_matches_torch(momentum):
    """Ten SGD steps on the same batches: the weights stay equal to torch's."""
    np.random.seed(2)
    model = mlp((2, 8, 8, 2))
    twin = torch_twin(model)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=momentum)
    topt = torch.optim.SGD(twin.parameters(), lr=0.1, momentum=momentum)
    rng = np.random.default_rng(0)
    for _ in range(10):
        x, y = rng.standard_normal((16, 2)), rng.integers(0, 2, 16)
        opt.zero_grad()
        F.cross_entropy(model(Tensor(x)), y).backward()
        opt.step()
        topt.zero_grad()
        torch.nn.functional.cross_entropy(twin(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        topt.step()
    theirs = dict(twin.named_parameters())
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.data, theirs[name].detach().numpy(), rtol=1e-10, atol=1e-12, err_msg=name)


def test_mlp_passes_gradcheck():
    np.random.seed(3)
    model = mlp((3, 4, 2))
    x, y = np.random.randn(5, 3), np.array([0, 1, 1, 0, 1])

    def loss(w1, b1, w2, b2):  # the model's loss as a function of its parameters
        h = F.linear(Tensor(x), w1, b1).relu()
        return F.cross_entropy(F.linear(h, w2, b2), y)
    assert gradcheck(loss, model.parameters())


def test_zero_grad_and_accumulation():
    model = mlp((2, 3, 2))
    x = Tensor(np.ones((4, 2)))
    model(x).sum().backward()
    first = model[0].weight.grad.copy()
    model(x).sum().backward()
    np.testing.assert_allclose(model[0].weight.grad, 2 * first)
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    opt = optim.SGD(model.parameters(), lr=0.1)
    model(x).sum().backward()
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_step_skips_unused_parameters_and_keeps_old_graphs_valid():
    a, b = nn.Parameter(np.ones(2)), nn.Parameter(np.ones(2))
    opt = optim.SGD([a, b], lr=0.5)
    y = (a * a).sum()
    y.backward()
    opt.step()
    np.testing.assert_array_equal(a.data, [0.0, 0.0])  # 1 - 0.5 * 2
    np.testing.assert_array_equal(b.data, [1.0, 1.0])  # no gradient: untouched
    a.grad = None
    y.backward()  # the graph still holds the values it was computed with
    np.testing.assert_array_equal(a.grad, [2.0, 2.0])


def test_train_eval_propagate():
    model = mlp((2, 3, 2))
    assert model.training and model[0].training
    assert model.eval() is model
    assert not model.training and not model[0].training and not model[1].training
    model.train()
    assert model[2].training


def test_no_grad_inference():
    model = mlp((2, 3, 2))
    with no_grad():
        out = model(Tensor(np.ones((4, 2))))
    assert not out.requires_grad and out.shape == (4, 2)


def test_modules_and_repr():
    model = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1), nn.Sigmoid())
    out = model(Tensor(np.zeros((1, 2))))
    assert out.shape == (1, 1) and 0 < out.item() < 1
    assert "Linear(in_features=2, out_features=3, bias=True)" in repr(model)


def test_sgd_rejects_bad_arguments():
    p = nn.Parameter(np.ones(2))
    with pytest.raises(ValueError):
        optim.SGD([p], lr=0)
    with pytest.raises(ValueError):
        optim.SGD([p], lr=0.1, momentum=1.0)
    with pytest.raises(ValueError):
        optim.SGD([], lr=0.1)


# ---- more layers ---------------------------------------------------------------------------------
ACTIVATION_MODULES = [
    (nn.ReLU(), torch.nn.ReLU()), (nn.LeakyReLU(0.2), torch.nn.LeakyReLU(0.2)), (nn.ELU(0.7), torch.nn.ELU(0.7)),
    (nn.SELU(), torch.nn.SELU()), (nn.GELU(), torch.nn.GELU()), (nn.GELU("tanh"), torch.nn.GELU("tanh")),
    (nn.SiLU(), torch.nn.SiLU()), (nn.Sigmoid(), torch.nn.Sigmoid()), (nn.Tanh(), torch.nn.Tanh()),
    (nn.Softmax(dim=0), torch.nn.Softmax(dim=0)), (nn.LogSoftmax(dim=1), torch.nn.LogSoftmax(dim=1)),
    (nn.Identity(), torch.nn.Identity()), (nn.Flatten(), torch.nn.Flatten()),
    (nn.Flatten(0, 1), torch.nn.Flatten(0, 1)),
]


@pytest.mark.parametrize("ours, theirs", ACTIVATION_MODULES, ids=[repr(m) for m, _ in ACTIVATION_MODULES])
def test_parameter_free_modules_match_torch(ours, theirs):
    x = np.random.default_rng(0).standard_normal((3, 4, 2))
    np.testing.assert_allclose(ours(Tensor(x)).data, theirs(torch.from_numpy(x)).numpy(), rtol=1e-12, atol=1e-15)
    assert ours.parameters() == []


def test_dropout_eval_mode_is_the_identity():
    """Evaluation: the output *is* the input, bit for bit, alone and inside a model."""
    x = Tensor(np.random.default_rng(0).standard_normal((64, 16)), requires_grad=True)
    layer = nn.Dropout(0.5).eval()
    np.testing.assert_array_equal(layer(x).data, x.data)
    model = nn.Sequential(nn.Linear(16, 16), nn.Dropout(0.5)).eval()
    with no_grad():
        np.testing.assert_array_equal(model(x).data, model[0](x).data)  # the dropout adds nothing
    layer(x).sum().backward()
    np.testing.assert_array_equal(x.grad, np.ones_like(x.data))  # and passes the gradient unchanged


@pytest.mark.parametrize("p", [0.1, 0.25, 0.5, 0.8])
def test_dropout_train_mode_zeroes_p_and_scales_the_rest(p):
    """Training: a fraction p of the entries (within 5 binomial standard deviations) is zeroed,
    every other one is the input times 1/(1-p), and the gradient goes through the same mask."""
    np.random.seed(0)  # the mask is drawn from NumPy's global generator
    x_np = np.random.default_rng(1).uniform(0.5, 2.0, (200, 500))  # no zeros of its own
    x = Tensor(x_np, requires_grad=True)
    layer = nn.Dropout(p).train()
    out = layer(x)
    dropped = out.data == 0
    n = dropped.size
    assert abs(dropped.mean() - p) < 5 * np.sqrt(p * (1 - p) / n), f"{dropped.mean():.4f} zeroed, expected {p}"
    np.testing.assert_allclose(out.data[~dropped], x_np[~dropped] / (1 - p), rtol=1e-15, atol=0)
    out.sum().backward()
    np.testing.assert_array_equal(x.grad == 0, dropped)  # the same mask
    np.testing.assert_allclose(x.grad[~dropped], 1 / (1 - p), rtol=1e-15, atol=0)
    assert not np.array_equal(layer(x).data == 0, dropped)  # a fresh mask at every call


def test_dropout_module_follows_train_and_eval():
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    x = Tensor(np.ones((8, 4)))
    model.eval()
    assert not model[1].training
    model.train()
    assert model[1].training and (model(x).data == 0).any()
    assert "p=0.5" in repr(model)
    with pytest.raises(ValueError):
        nn.Dropout(-0.1)


def test_embedding_module():
    np.random.seed(0)
    emb = nn.Embedding(10, 3, padding_idx=-1)
    assert emb.weight.shape == (10, 3) and emb.padding_idx == 9
    np.testing.assert_array_equal(emb.weight.data[9], 0)  # the padding row starts at 0
    big = nn.Embedding(1000, 100)
    assert big.weight.data.std() == pytest.approx(1.0, abs=0.01)  # N(0, 1), as torch
    out = emb(np.array([[1, 9], [1, 2]]))
    assert out.shape == (2, 2, 3)
    out.sum().backward()
    np.testing.assert_array_equal(emb.weight.grad[1], 2)  # used twice
    np.testing.assert_array_equal(emb.weight.grad[9], 0)  # padding: no gradient
    assert nn.Embedding(5, 2, dtype=np.float32)(np.array([0])).dtype == np.float32
    with pytest.raises(ValueError):
        nn.Embedding(5, 2, padding_idx=5)


def test_linear_init_is_torch_kaiming_uniform_a_sqrt5():
    # torch: kaiming_uniform_(weight, a=sqrt(5)) -> bound 1/sqrt(fan_in); bias U(+-1/sqrt(fan_in))
    np.random.seed(0)
    ours = nn.Linear(300, 200)
    theirs = torch.nn.Linear(300, 200)
    bound = 1 / np.sqrt(300)
    for a, b in [(ours.weight.data, theirs.weight.detach().numpy()), (ours.bias.data, theirs.bias.detach().numpy())]:
        assert np.abs(a).max() <= bound and np.abs(b).max() <= bound
        assert a.std() == pytest.approx(b.std(), rel=0.1 if a.ndim == 1 else 0.02)


# ---- module tree --------------------------------------------------------------------------------
class Block(nn.Module):
    """A module with a buffer, a non-persistent buffer, a nested module and a tied parameter."""

    def __init__(self):
        self.proj = nn.Linear(3, 3)
        self.scale = nn.Parameter(np.ones(3))
        self.register_buffer("running_mean", np.zeros(3))
        self.register_buffer("cache", np.ones(2), persistent=False)
        self.register_buffer("unused", None)
        self.inner = nn.Sequential(nn.Linear(3, 2))

    def forward(self, x):
        return self.inner(self.proj(x) * self.scale - self.running_mean)


def test_names_order_like_torch():
    model = Block()
    # own parameters first, then the children's, in the order they were set (torch's order)
    assert [n for n, _ in model.named_parameters()] == [
        "scale", "proj.weight", "proj.bias", "inner.0.weight", "inner.0.bias"]
    assert [n for n, _ in model.named_buffers()] == ["running_mean", "cache"]
    assert list(model.state_dict()) == ["scale", "running_mean", "proj.weight", "proj.bias",
                                        "inner.0.weight", "inner.0.bias"]
    assert [n for n, _ in model.named_modules()] == ["", "proj", "inner", "inner.0"]
    assert [n for n, _ in model.named_parameters(prefix="block")][0] == "block.scale"
    assert [n for n, _ in model.named_parameters(recurse=False)] == ["scale"]
    assert len(model.modules()) == 4 and len(model.buffers()) == 2


def test_tied_parameters_are_listed_once():
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3))
    model[1].weight = model[0].weight
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias", "1.bias"]
    assert list(model.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias"]  # as torch: both names
    model.load_state_dict(model.state_dict())


def test_apply_and_module_list():
    layers = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2)]).append(nn.Tanh())
    assert len(layers) == 3 and isinstance(layers[2], nn.Tanh)
    assert [n for n, _ in layers.named_parameters()] == ["0.weight", "0.bias", "1.weight", "1.bias"]
    seen = []
    layers.apply(lambda m: seen.append(type(m).__name__))
    assert seen == ["Linear", "Linear", "Tanh", "ModuleList"]  # children first, as torch


# ---- buffers and state ----------------------------------------------------------------------------
def test_register_buffer():
    model = Block()
    assert isinstance(model.running_mean, np.ndarray)
    model.running_mean += 1  # in place
    np.testing.assert_array_equal(model.state_dict()["running_mean"], 1)
    model.running_mean = np.full(3, 5.0)  # or a new array: still the buffer
    np.testing.assert_array_equal(model.state_dict()["running_mean"], 5)
    model.register_buffer("from_tensor", Tensor(np.ones(2)))
    assert isinstance(model.from_tensor, np.ndarray)
    with pytest.raises(KeyError):
        model.register_buffer("a.b", np.ones(1))
    with pytest.raises(KeyError):
        model.register_buffer("scale", np.ones(1))  # already a parameter
    assert model.eval().running_mean is model.running_mean  # modes do not touch buffers


def test_state_dict_is_a_copy():
    model = Block()
    state = model.state_dict()
    assert all(isinstance(v, np.ndarray) for v in state.values())
    model.running_mean += 1
    model.proj.weight.data[0, 0] = 123.0
    assert state["running_mean"][0] == 0 and state["proj.weight"][0, 0] != 123.0


def test_load_state_dict_round_trip():
    a, b = Block(), Block()
    a.running_mean[:] = [1.0, 2.0, 3.0]
    result = b.load_state_dict(a.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        np.testing.assert_array_equal(x, y, err_msg=name)
    x = Tensor(np.ones((2, 3)))
    np.testing.assert_array_equal(a(x).data, b(x).data)
    np.testing.assert_array_equal(b.cache, 1)  # non-persistent: not in the state, untouched


def test_load_state_dict_errors_are_clear_and_change_nothing():
    model = Block()
    before = model.state_dict()
    state = model.state_dict()
    del state["proj.bias"]
    state["extra"] = np.ones(1)
    state["proj.weight"] = np.ones((2, 3))
    with pytest.raises(RuntimeError) as error:
        model.load_state_dict(state)
    message = str(error.value)
    assert "Block" in message and "missing key(s): proj.bias" in message and "unexpected key(s): extra" in message
    assert "size mismatch for proj.weight" in message and "(2, 3)" in message and "(3, 3)" in message
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])  # all or nothing
    state["proj.weight"] = np.zeros((3, 3))
    missing, unexpected = model.load_state_dict(state, strict=False)  # keys may differ, shapes may not
    assert missing == ["proj.bias"] and unexpected == ["extra"]
    np.testing.assert_array_equal(model.proj.weight.data, 0)


def test_load_state_dict_casts_and_accepts_torch_tensors():
    model = mlp((2, 5, 3))
    twin = torch.nn.Sequential(torch.nn.Linear(2, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))  # float32
    model.load_state_dict(twin.state_dict())
    assert model[0].weight.dtype == np.float64  # cast to the model's dtype
    x = np.random.default_rng(0).standard_normal((4, 2)).astype(np.float32)
    np.testing.assert_allclose(model(Tensor(x.astype(np.float64))).data,
                               twin(torch.from_numpy(x)).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_save_and_load(tmp_path):
    a, b = Block(), Block()
    a.running_mean[:] = 7.0
    path = tmp_path / "sub" / "model.ckpt"  # any name: written exactly there, folders created
    a.save(path)
    assert path.exists() and sorted(p.name for p in path.parent.iterdir()) == ["model.ckpt"]  # no temp file left
    b.load(path)
    for name, value in a.state_dict().items():
        np.testing.assert_array_equal(b.state_dict()[name], value, err_msg=name)
    with pytest.raises(RuntimeError, match="missing"):
        mlp((2, 3, 2)).load(path)


def test_save_is_atomic(tmp_path, monkeypatch):
    model = Block()
    path = tmp_path / "model.npz"
    model.save(path)
    good = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError):
        model.save(path)
    assert path.read_bytes() == good and len(list(tmp_path.iterdir())) == 1  # the old file, intact


def test_float32_model_state_round_trip(tmp_path):
    model = nn.Sequential(nn.Linear(3, 2, dtype=np.float32))
    model.save(tmp_path / "m.npz")
    assert np.load(tmp_path / "m.npz")["0.weight"].dtype == np.float32
    other = nn.Sequential(nn.Linear(3, 2, dtype=np.float32))
    other.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(other[0].weight.data, model[0].weight.data)


LAYERS_OF_OTHER_FUNCTIONS = {  # layer: a way to build it, and its function in F
    "Conv2d": (lambda: nn.Conv2d(2, 3, 3), "conv2d"), "MaxPool2d": (lambda: nn.MaxPool2d(2), "max_pool2d"),
    "AvgPool2d": (lambda: nn.AvgPool2d(2), "avg_pool2d"), "BatchNorm1d": (lambda: nn.BatchNorm1d(2), "batch_norm"),
    "BatchNorm2d": (lambda: nn.BatchNorm2d(2), "batch_norm"), "LayerNorm": (lambda: nn.LayerNorm(2), "layer_norm"),
    "GroupNorm": (lambda: nn.GroupNorm(1, 2), "group_norm"),
}


@pytest.mark.parametrize("name", LAYERS_OF_OTHER_FUNCTIONS)
def test_conv_and_norm_layers_are_in_nn(name):
    """The layers around conv.py's and normalization.py's functions are nn's own classes
    (not re-exported lazily from the files of the functions, which import no Module)."""
    make, function = LAYERS_OF_OTHER_FUNCTIONS[name]
    cls = getattr(nn, name)  # an AttributeError fails the test: every one must exist
    assert issubclass(cls, nn.Module) and cls.__module__ == nn.__name__
    assert isinstance(make(), cls) and callable(getattr(F, function))
    assert name in dir(nn)


def test_nn_names():
    with pytest.raises(AttributeError):
        nn.NoSuchLayer  # noqa: B018
    assert nn.functional is F and nn.init.kaiming_uniform_ is not None


def test_float32_training_step_stays_float32():
    model = nn.Sequential(nn.Linear(6, 8, dtype=np.float32), nn.GELU(), nn.Dropout(0.1),
                          nn.Linear(8, 3, dtype=np.float32), nn.LogSoftmax(dim=1))
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = np.random.default_rng(0).standard_normal((5, 6)).astype(np.float32)
    for _ in range(2):
        opt.zero_grad()
        loss = F.nll_loss(model(x), np.array([0, 1, 2, 1, 0]))  # a NumPy batch goes straight in
        assert loss.dtype == np.float32
        loss.backward()
        opt.step()
    assert all(p.dtype == np.float32 and p.grad.dtype == np.float32 for p in model.parameters())
