"""The NumPy engine's training loop: learns, records, calls back, stops early."""
import numpy as np
import pytest

from scratch.engine import nn, optim
from scratch.engine.loop import Callback, EarlyStopping, evaluate, fit_arrays


def blobs(n, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(0, 0.5, (n, 2)) + (y[:, None] * 2 - 1) * 1.5
    return x, y


def model(seed=0):
    np.random.seed(seed)
    return nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))


def test_fit_learns_and_records(capsys):
    (x, y), val = blobs(256, 0), blobs(128, 1)
    net = model()
    opt = optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    sched = optim.lr_scheduler.StepLR(opt, step_size=8, gamma=0.5)
    h = fit_arrays(net, opt, x, y, epochs=3, batch_size=32, val=val, scheduler=sched)
    assert len(h) == 3 and len(h.steps) == 24
    assert h["val_acc"][-1] > 0.95 and h["loss"][-1] < h["loss"][0]
    assert h["lr"] == [0.1, 0.05, 0.025]  # each epoch's starting rate; the scheduler steps per batch
    assert evaluate(net, *val)["val_acc"] == pytest.approx(h["val_acc"][-1])
    assert sum(l.startswith("epoch ") for l in capsys.readouterr().out.splitlines()) == 3


def test_same_seed_same_run():
    x, y = blobs(64, 0)
    runs = []
    for _ in range(2):
        net = model()
        runs.append(fit_arrays(net, optim.SGD(net.parameters(), lr=0.1), x, y, epochs=2, batch_size=16,
                        verbose=False, seed=3).steps)
    assert runs[0] == runs[1]


def test_callbacks_and_early_stopping():
    (x, y), val = blobs(128, 0), blobs(64, 1)
    seen = []

    class Spy(Callback):
        def on_batch_end(self, state):
            seen.append(state.step)

    net = model()
    h = fit_arrays(net, optim.SGD(net.parameters(), lr=0.1), x, y, epochs=100, batch_size=64, val=val,
            callbacks=[Spy(), EarlyStopping("val_acc", mode="max", patience=2)], verbose=False)
    assert len(h) < 100 and seen == list(range(1, 2 * len(h) + 1))


def test_diverging_run_is_reported():
    x, y = blobs(64, 0)
    net = model()
    with np.errstate(all="ignore"), pytest.raises(FloatingPointError, match="lower the learning rate") as err:
        fit_arrays(net, optim.SGD(net.parameters(), lr=1e6), x, y * 0 + 1, epochs=50, batch_size=16, verbose=False,
            loss_fn=lambda out, t: ((out - 1e3) ** 2).mean() * 1e30)
    assert err.value.history.steps  # the steps before the divergence are kept


def test_a_callback_can_stop_mid_epoch():
    x, y = blobs(256, 0)

    class StopAt(Callback):
        def on_batch_end(self, state):
            state.stop = state.step == 3

    net = model()
    h = fit_arrays(net, optim.SGD(net.parameters(), lr=0.1), x, y, epochs=5, batch_size=16, verbose=False,
            callbacks=[StopAt()])
    assert len(h.steps) == 3 and len(h) == 1
