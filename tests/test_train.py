"""The training core: fit(), checkpoints and resume, accumulation, callbacks, DDP."""
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from scratch import progress
from scratch.train import (Callback, EarlyStopping, TrainConfig, evaluate, fit, load_checkpoint,
                           predict, save_checkpoint)
from scratch.utils import seed_everything


@dataclass
class Cfg(TrainConfig):
    NAME = "toy"


def blobs(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, 2, generator=g) * 0.5 + (y[:, None] * 2 - 1) * 1.5
    return TensorDataset(x, y)


def setup(tmp_path, seed=0, **overrides):
    seed_everything(seed)
    cfg = Cfg.create("tiny", out_dir=str(tmp_path), device="cpu", **overrides)
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    train = DataLoader(blobs(), batch_size=cfg.batch_size, shuffle=True)
    val = DataLoader(blobs(128, seed=1), batch_size=64)
    return cfg, model, opt, train, val


def test_fit_learns_and_records_history(tmp_path, capsys):
    cfg, model, opt, train, val = setup(tmp_path, epochs=3, batch_size=32)
    history = fit(model, opt, train, cfg, val_loader=val)
    assert len(history) == 3 and len(history.steps) == 3 * 8  # 256 / 32 steps per epoch
    assert history["val_acc"][-1] > 0.95
    assert history["loss"][-1] < history["loss"][0]
    assert evaluate(model, val)["val_acc"] == pytest.approx(history["val_acc"][-1])
    assert predict(model, torch.zeros(5, 2)).shape == (5, 2)
    lines = [l for l in capsys.readouterr().out.splitlines() if l.startswith("epoch ")]
    assert len(lines) == 3 and "val_acc" in lines[-1]  # one summary line per epoch, no bar spam


def test_same_seed_same_run(tmp_path):
    runs = []
    for i in range(2):
        cfg, model, opt, train, val = setup(tmp_path / str(i), epochs=2, batch_size=16)
        runs.append(fit(model, opt, train, cfg, val_loader=val, verbose=False).steps)
    assert runs[0] == runs[1]


def test_resume_continues_exactly(tmp_path):
    """Two epochs, stop, resume to four == four epochs straight (same batches, same weights)."""
    sched = lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)
    cfg, model, opt, train, val = setup(tmp_path / "straight", epochs=4, batch_size=32)
    straight = fit(model, opt, train, cfg, val_loader=val, scheduler=sched(opt), verbose=False)
    w_straight = [p.detach().clone() for p in model.parameters()]

    cfg, model, opt, train, val = setup(tmp_path / "resumed", epochs=2, batch_size=32)
    fit(model, opt, train, cfg, val_loader=val, scheduler=sched(opt), verbose=False)
    # A new process would rebuild everything from scratch, with other random states:
    cfg, model, opt, train, val = setup(tmp_path / "resumed", seed=123, epochs=4, batch_size=32)
    resumed = fit(model, opt, train, cfg, val_loader=val, scheduler=sched(opt), verbose=False)
    assert resumed.steps == straight.steps
    assert resumed["lr"] == straight["lr"]
    for a, b in zip(w_straight, model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_resume_false_starts_over(tmp_path):
    cfg, model, opt, train, _ = setup(tmp_path, epochs=1)
    fit(model, opt, train, cfg, verbose=False)
    cfg, model, opt, train, _ = setup(tmp_path, epochs=1, resume=False)
    assert len(fit(model, opt, train, cfg, verbose=False)) == 1


def test_gradient_accumulation_matches_one_large_batch(tmp_path):
    data = blobs(32)
    weights = []
    for accum, batch in ((1, 32), (4, 8)):
        cfg, model, _, _, _ = setup(tmp_path / str(accum), epochs=1, batch_size=batch, grad_accum=accum)
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        fit(model, opt, DataLoader(data, batch_size=batch), cfg, checkpoint=None, verbose=False)
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    torch.testing.assert_close(weights[0], weights[1], rtol=1e-5, atol=1e-6)


def test_callbacks_and_early_stopping(tmp_path):
    seen = []

    class Spy(Callback):
        def on_epoch_end(self, state):
            seen.append((state.epoch, state.step))

    cfg, model, opt, train, val = setup(tmp_path, epochs=50, batch_size=64)
    stopper = EarlyStopping(monitor="val_acc", mode="max", patience=2)
    history = fit(model, opt, train, cfg, val_loader=val, callbacks=[Spy(), stopper], verbose=False)
    assert len(history) < 50 and len(seen) == len(history)
    assert seen[0] == (0, 4)  # 256 / 64 optimizer steps after the first epoch


def test_non_finite_loss_is_reported(tmp_path):
    cfg, model, _, train, _ = setup(tmp_path, epochs=1)
    opt = torch.optim.SGD(model.parameters(), lr=1e30)
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        fit(model, opt, train, cfg, loss_fn=lambda out, y: (out ** 8).sum() * 1e30, verbose=False)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    save_checkpoint(path, weights=torch.ones(3))

    def crash(obj, f, *a, **k):
        with open(f, "wb") as fh:
            fh.write(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, weights=torch.zeros(3))
    assert torch.equal(load_checkpoint(path)["weights"], torch.ones(3))  # old file intact
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary left behind


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_checkpoints_load_without_unpickling_code(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"x": Evil()}, path)
    with pytest.raises(Exception, match="[Ww]eights only"):
        load_checkpoint(path)


def test_progress_bars_are_off_in_the_build_and_in_logs(monkeypatch):
    monkeypatch.setenv("SCRATCH_BUILD", "1")
    assert not progress.enabled()
    monkeypatch.delenv("SCRATCH_BUILD")
    monkeypatch.setenv("SCRATCH_PROGRESS", "0")
    assert not progress.enabled()
    monkeypatch.setenv("SCRATCH_PROGRESS", "1")
    assert progress.enabled()


DDP_SCRIPT = textwrap.dedent("""
    import sys, torch
    from dataclasses import dataclass
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset
    from scratch import distributed
    from scratch.train import TrainConfig, fit
    from scratch.utils import seed_everything

    @dataclass
    class C(TrainConfig):
        NAME = "ddp"

    cfg = C.create("tiny", out_dir=sys.argv[1], epochs=2, batch_size=16)
    seed_everything(0)
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (128,), generator=g)
    x = torch.randn(128, 2, generator=g) + (y[:, None] * 4 - 2)
    model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    data = TensorDataset(x, y)
    h = fit(model, opt, DataLoader(data, batch_size=16, shuffle=True), cfg,
            val_loader=DataLoader(data, batch_size=32))
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    print(f"rank {distributed.rank()} of {distributed.world_size()}: steps {len(h.steps)} "
          f"acc {h['val_acc'][-1]:.3f} checksum {flat.sum().item():.6f}")
""")


def test_data_parallel_under_torchrun(tmp_path):
    """Two CPU processes (gloo): each sees half the data, both end with the same weights."""
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          str(script), str(tmp_path / "out")], capture_output=True, text=True, env=env,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    ranks = sorted(l for l in run.stdout.splitlines() if l.startswith("rank "))
    assert len(ranks) == 2 and all(" of 2:" in l for l in ranks)
    assert all("steps 8 " in l for l in ranks)  # 128 / 2 processes / 16 per batch * 2 epochs
    assert ranks[0].split("checksum")[1] == ranks[1].split("checksum")[1]
    assert sum(l.startswith("epoch ") for l in run.stdout.splitlines()) == 2  # only rank 0 prints
    assert (tmp_path / "out" / "ddp" / "last.pt").exists()


def test_batch_transform_runs_on_each_training_batch_only(tmp_path):
    cfg, model, opt, train, val = setup(tmp_path, epochs=2, batch_size=32)
    seen = []

    def transform(x, y):
        seen.append(len(y))
        return x * 0, y  # erases the inputs: training can no longer learn anything

    history = fit(model, opt, train, cfg, val_loader=val, checkpoint=None, batch_transform=transform)
    assert sum(seen) == 2 * 256  # every training example, every epoch; not validation
    assert history.last["val_acc"] < 0.8  # blobs are ~100% separable when inputs are kept


def test_evaluate_in_bf16_is_close_to_fp32(tmp_path):
    cfg, model, opt, train, val = setup(tmp_path, epochs=2, precision="bf16")
    fit(model, opt, train, cfg, val_loader=val, checkpoint=None, verbose=False)
    full = evaluate(model, val, precision="fp32")
    half = evaluate(model, val, precision="bf16")
    assert half["val_acc"] == pytest.approx(full["val_acc"], abs=0.02)
    assert half["val_loss"] == pytest.approx(full["val_loss"], rel=0.05, abs=0.01)
    assert half["val_loss"] != full["val_loss"]  # bf16 really was used
