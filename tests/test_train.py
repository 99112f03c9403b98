"""The training core: fit(), checkpoints and resume, accumulation, callbacks, DDP."""
import os
import re
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

    # Step-based, on randomly drawn batches (each process draws its own), with
    # accumulation, bf16 and evaluation every 4 steps.
    from scratch.train import sampled_loader
    cfg = C.create("tiny", out_dir=sys.argv[1] + "/steps", max_steps=10, batch_size=8, grad_accum=2,
                   eval_every=4, precision="bf16")
    model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    seen = []
    h = fit(model, opt, sampled_loader(data, batch_size=8, steps_per_epoch=6), cfg,
            val_loader=DataLoader(data, batch_size=32),
            batch_transform=lambda x, y: (seen.append(y.clone()) or x, y), verbose=False)
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    print(f"steps-rank {distributed.rank()}: steps {len(h.steps)} evals {[r['step'] for r in h.evals]} "
          f"first {seen[0].tolist()} checksum {flat.sum().item():.6f}")
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
    # Both processes print to one pipe: a line of one can run into the other's, so
    # the lines are found by their pattern rather than by splitting on newlines.
    ranks = sorted(re.findall(r"(?<!-)rank \d of \d: .*? checksum -?\d+\.\d{6}", run.stdout))
    assert len(ranks) == 2 and all(" of 2:" in l for l in ranks)
    assert all("steps 8 " in l for l in ranks)  # 128 / 2 processes / 16 per batch * 2 epochs
    assert ranks[0].split("checksum")[1] == ranks[1].split("checksum")[1]
    assert sum(l.startswith("epoch ") for l in run.stdout.splitlines()) == 2  # only rank 0 prints
    assert (tmp_path / "out" / "ddp" / "last.pt").exists()
    steps = sorted(re.findall(r"steps-rank \d: .*? checksum -?\d+\.\d{6}", run.stdout))
    assert len(steps) == 2 and all("steps 10 evals [4, 8, 10]" in l for l in steps)
    assert steps[0].split("checksum")[1] == steps[1].split("checksum")[1]  # gradients averaged
    assert steps[0].split("first")[1] != steps[1].split("first")[1]  # each process drew its own batch


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


# ---- step budgets, exact mid-epoch resume, general steps, several optimizers, EMA ----
KILL_SCRIPT = textwrap.dedent("""
    import os, sys, torch
    from dataclasses import dataclass
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset
    from scratch.train import Callback, EMA, TrainConfig, fit
    from scratch.utils import seed_everything

    @dataclass
    class C(TrainConfig):
        NAME = "kill"

    out, kill_at = sys.argv[1], int(sys.argv[2])
    cfg = C.create("tiny", out_dir=out, epochs=3, batch_size=16, checkpoint_every=1, device="cpu")
    seed_everything(0)
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (200,), generator=g)   # 13 batches an epoch, the last one short
    x = torch.randn(200, 2, generator=g) + (y[:, None] * 2 - 1)
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 2))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 0.05, total_steps=39)

    class Kill(Callback):  # a hard kill: no cleanup, no flush, like a power cut
        def on_batch_end(self, state):
            if state.step == kill_at:
                os._exit(17)

    noise = lambda x, y: (x + 0.1 * torch.randn_like(x), y)  # random, on the global RNG
    ema = EMA(decay=0.9)
    h = fit(model, opt, DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True), cfg,
            scheduler=sched, batch_transform=noise, callbacks=[ema, Kill()], verbose=False)
    torch.save({"model": model.state_dict(), "ema": ema.module.state_dict(), "steps": h.steps,
                "epochs": h.epochs}, os.path.join(out, "final.pt"))
""")


def _kill_script(tmp, out, kill_at):
    script = tmp / "kill.py"
    script.write_text(KILL_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(script), str(out), str(kill_at)],
                          capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("straight")
    run = _kill_script(tmp, tmp / "out", 0)
    assert run.returncode == 0, run.stderr[-2000:]
    return torch.load(tmp / "out" / "final.pt")


@pytest.mark.parametrize("kill_at", [5, 13, 20])  # mid-epoch 1, at an epoch's end, mid-epoch 2
def test_killed_mid_epoch_and_resumed_equals_uninterrupted(tmp_path, kill_at, uninterrupted):
    """Shuffled batches, dropout, random augmentation, Adam, one-cycle and an EMA: after a
    hard kill at step k, the resumed run ends with the same weights bit for bit."""
    killed = _kill_script(tmp_path, tmp_path / "killed", kill_at)
    assert killed.returncode == 17, killed.stderr[-2000:]
    assert not (tmp_path / "killed" / "final.pt").exists()
    resumed = _kill_script(tmp_path, tmp_path / "killed", 0)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a = uninterrupted
    b = torch.load(tmp_path / "killed" / "final.pt")
    assert a["steps"] == b["steps"] and len(a["steps"]) == 39
    for part in ("model", "ema"):
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), (part, k)
    assert [r["loss"] for r in a["epochs"]] == [r["loss"] for r in b["epochs"]]  # epoch means too


def test_step_budget_with_random_batches(tmp_path, capsys):
    """nanoGPT style: max_steps optimizer steps on randomly drawn batches, evaluation and
    checkpoints every N steps; an 'epoch' is a nominal interval."""
    from scratch.train import sampled_loader

    cfg, model, opt, _, val = setup(tmp_path, max_steps=25, eval_every=10, checkpoint_every=5,
                                    log_every=5, batch_size=16)
    train = sampled_loader(blobs(), batch_size=16, steps_per_epoch=8)
    saved = []

    class Spy(Callback):
        def on_batch_end(self, state):
            if state.step % 5 == 0:  # the checkpoint of step 5k is written after the callbacks
                saved.append(state.step)

    history = fit(model, opt, train, cfg, val_loader=val, callbacks=[Spy()])
    assert len(history.steps) == 25 and [r["step"] for r in history.log] == list(range(1, 26))
    assert [r["step"] for r in history.evals] == [10, 20, 25]  # and once at the end
    assert history.evals[-1]["val_acc"] > 0.9
    assert [r["epoch"] for r in history.epochs] == [1, 2, 3, 4]  # 8 + 8 + 8 + 1 steps
    assert load_checkpoint(tmp_path / "toy" / "last.pt")["step"] == 25
    out = capsys.readouterr().out
    assert sum(l.startswith("step ") for l in out.splitlines()) == 5 + 3  # logs and evaluations
    # More steps continue the run: the schedule (none) does not depend on the run's length.
    cfg2, model2, opt2, _, _ = setup(tmp_path, max_steps=30, batch_size=16)
    more = fit(model2, opt2, sampled_loader(blobs(), batch_size=16, steps_per_epoch=8), cfg2,
               verbose=False)
    assert len(more.steps) == 30 and more.steps[:25] == history.steps


def test_each_step_logs_losses_lr_grad_norm_and_throughput(tmp_path):
    cfg, model, opt, train, _ = setup(tmp_path, epochs=1, batch_size=32, clip_grad_norm=0.5)
    history = fit(model, opt, train, cfg, checkpoint=None, verbose=False)
    row = history.log[0]
    assert {"step", "epoch", "loss", "lr", "grad_norm", "examples_per_s"} <= set(row)
    assert row["lr"] == 0.1 and row["examples_per_s"] > 0
    # The logged norm is the norm before clipping, computed independently here:
    cfg, model, opt, train, _ = setup(tmp_path / "b", epochs=1, batch_size=32)
    x, y = next(iter(train))
    nn.functional.cross_entropy(model(x), y).backward()
    expected = torch.cat([p.grad.flatten() for p in model.parameters()]).norm().item()
    seed_everything(0)
    cfg, model, opt, train, _ = setup(tmp_path / "c", epochs=1, batch_size=32)
    first = fit(model, opt, train, cfg, checkpoint=None, verbose=False).log[0]
    assert first["grad_norm"] == pytest.approx(expected, rel=1e-5)
    epoch = history.epochs[0]
    assert {"loss", "lr", "grad_norm", "examples_per_s", "seconds"} <= set(epoch)


def test_clipping_bounds_the_update(tmp_path):
    weights = {}
    for clip in (0.0, 1e-3):
        cfg, model, _, train, _ = setup(tmp_path / str(clip), epochs=1, batch_size=256, clip_grad_norm=clip)
        before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
        fit(model, torch.optim.SGD(model.parameters(), lr=1.0), train, cfg, checkpoint=None, verbose=False)
        weights[clip] = (torch.cat([p.detach().flatten() for p in model.parameters()]) - before).norm()
    assert weights[1e-3] == pytest.approx(1e-3, rel=1e-4)  # one step of lr 1 with |g| clipped to 1e-3
    assert weights[0.0] > 10 * weights[1e-3]


def test_tokens_per_second_for_token_inputs(tmp_path):
    tokens = torch.randint(0, 10, (64, 9))
    data = TensorDataset(tokens[:, :-1], tokens[:, 1:])  # (B, T) inputs and targets
    model = nn.Sequential(nn.Embedding(10, 8), nn.Linear(8, 10))
    cfg = Cfg.create("tiny", out_dir=str(tmp_path), device="cpu", epochs=1, batch_size=16)
    step = lambda m, b: nn.functional.cross_entropy(m(b[0]).flatten(0, 1), b[1].flatten())
    history = fit(model, torch.optim.Adam(model.parameters()), DataLoader(data, batch_size=16), cfg,
                  step=step, checkpoint=None, verbose=False)
    row = history.log[0]
    assert row["tokens_per_s"] == pytest.approx(row["examples_per_s"] * 8)


def test_a_general_step_with_named_losses(tmp_path):
    """A step returning several named losses (as an ELBO's terms): all logged, "loss" minimised."""
    cfg, model, opt, train, val = setup(tmp_path, epochs=3, batch_size=32)

    def step(model, batch):
        x, y = batch
        out = model(x)
        ce = nn.functional.cross_entropy(out, y)
        l2 = 1e-3 * sum((p ** 2).sum() for p in model.parameters())
        return {"loss": ce + l2, "ce": ce, "l2": l2}

    history = fit(model, opt, train, cfg, step=step, val_loader=val, verbose=False)
    assert {"loss", "ce", "l2"} <= set(history.log[-1]) and {"ce", "l2"} <= set(history.last)
    row = history.log[-1]
    assert row["loss"] == pytest.approx(row["ce"] + row["l2"], rel=1e-5)
    assert history.last["val_ce"] < history.epochs[0]["ce"]  # evaluated with the same step
    with pytest.raises(TypeError, match="dict with a 'loss' tensor"):
        fit(model, opt, train, cfg, step=lambda m, b: {"ce": m(b[0]).sum()}, checkpoint=None)


def test_a_gan_trains_through_fit_with_two_optimizers(tmp_path):
    """A toy GAN: the generator learns a 1-D Gaussian N(3, 0.5^2) from noise. Two optimizers,
    two schedules, two named steps, one loop."""
    seed_everything(0)
    real = TensorDataset(3 + 0.5 * torch.randn(2048, 1))
    gan = nn.ModuleDict({"generator": nn.Linear(1, 1),
                         "discriminator": nn.Sequential(nn.Linear(1, 16), nn.ReLU(), nn.Linear(16, 1))})
    bce = nn.functional.binary_cross_entropy_with_logits

    def d_step(model, batch):
        (x,) = batch
        with torch.no_grad():  # the discriminator's turn: the generator's output is fixed
            fake = model.generator(torch.randn_like(x))
        real_logit, fake_logit = model.discriminator(x), model.discriminator(fake)
        return {"loss": bce(real_logit, torch.ones_like(real_logit)) + bce(fake_logit, torch.zeros_like(fake_logit)),
                "real": torch.sigmoid(real_logit).mean()}

    def g_step(model, batch):
        (x,) = batch
        logit = model.discriminator(model.generator(torch.randn_like(x)))
        return bce(logit, torch.ones_like(logit))  # non-saturating loss

    opts = {"discriminator": torch.optim.Adam(gan.discriminator.parameters(), lr=0.01, betas=(0.5, 0.999)),
            "generator": torch.optim.Adam(gan.generator.parameters(), lr=0.02, betas=(0.5, 0.999))}
    scheds = {"generator": torch.optim.lr_scheduler.StepLR(opts["generator"], step_size=150, gamma=0.5)}
    cfg = Cfg.create("tiny", out_dir=str(tmp_path), device="cpu", max_steps=400, batch_size=64)
    history = fit(gan, opts, DataLoader(real, batch_size=64, shuffle=True), cfg,
                  step={"discriminator": d_step, "generator": g_step}, scheduler=scheds, verbose=False)
    row = history.log[-1]
    assert {"discriminator_loss", "discriminator_real", "generator_loss",
            "discriminator_lr", "generator_lr", "generator_grad_norm"} <= set(row)
    assert row["discriminator_lr"] == 0.01 and row["generator_lr"] == 0.02 * 0.25  # own schedules
    with torch.no_grad():
        samples = gan.generator(torch.randn(4096, 1))
    assert abs(samples.mean().item() - 3) < 0.3  # it starts near 0
    assert 0.2 < samples.std().item() < 1.0
    state = load_checkpoint(tmp_path / "toy" / "last.pt")
    assert set(state["optimizer"]) == {"discriminator", "generator"}


def test_ema_averages_the_weights(tmp_path):
    """EMA(decay) equals the average computed by hand after every step; it is checkpointed."""
    from scratch.train import EMA

    cfg, model, opt, train, _ = setup(tmp_path, epochs=2, batch_size=32)
    trail = []

    class Record(Callback):
        def on_batch_end(self, state):
            trail.append([p.detach().clone() for p in state.model.parameters()])

    ema = EMA(decay=0.8)
    fit(model, opt, train, cfg, callbacks=[Record(), ema], verbose=False)
    expected = [w.clone() for w in trail[0]]  # the average starts at the first step's weights
    for weights in trail[1:]:
        expected = [0.8 * e + 0.2 * w for e, w in zip(expected, weights)]
    for e, p in zip(expected, ema.module.module.parameters()):
        torch.testing.assert_close(p, e, rtol=1e-6, atol=1e-7)
    assert not torch.allclose(expected[0], trail[-1][0])  # really an average, not the last weights
    state = load_checkpoint(tmp_path / "toy" / "last.pt")
    restored = EMA(decay=0.8)
    restored.module = torch.optim.swa_utils.AveragedModel(model)
    restored.load_state_dict(state["callbacks"][1])
    for a, b in zip(restored.module.parameters(), ema.module.parameters()):
        assert torch.equal(a, b)


def test_mixed_precision_and_accumulation_in_a_step_based_run(tmp_path):
    weights = []
    for accum, batch in ((1, 32), (4, 8)):
        cfg, model, _, _, _ = setup(tmp_path / str(accum), max_steps=3, batch_size=batch, grad_accum=accum)
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        fit(model, opt, DataLoader(blobs(96), batch_size=batch), cfg, checkpoint=None, verbose=False)
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    torch.testing.assert_close(weights[0], weights[1], rtol=1e-5, atol=1e-6)
    cfg, model, opt, train, val = setup(tmp_path / "bf16", max_steps=20, precision="bf16", grad_accum=2,
                                        eval_every=10)
    history = fit(model, opt, train, cfg, val_loader=val, checkpoint=None, verbose=False)
    assert len(history.steps) == 20 and history.evals[-1]["val_acc"] > 0.9


# ---- a checkpoint is resumed only by the config that made it ----
def test_resume_refuses_another_config(tmp_path):
    from scratch.config import ConfigError

    cfg, model, opt, train, _ = setup(tmp_path, epochs=1)
    fit(model, opt, train, cfg, verbose=False)
    before = (tmp_path / "toy" / "last.pt").read_bytes()
    cfg, model, opt, train, _ = setup(tmp_path, epochs=1, batch_size=32)
    with pytest.raises(ConfigError, match=r"batch_size 64 -> 32.*--resume=false.*--out_dir"):
        cfg.check_run_dir()  # what from_cli runs before a chapter writes anything
    with pytest.raises(ConfigError, match=r"batch_size 64 -> 32"):
        fit(model, opt, train, cfg, verbose=False)
    assert (tmp_path / "toy" / "last.pt").read_bytes() == before  # nothing overwritten
    # Fields that cannot change the result do not count:
    cfg, model, opt, train, _ = setup(tmp_path, epochs=1, threads=1, num_workers=0, log_every=3)
    cfg.check_run_dir()
    assert len(fit(model, opt, train, cfg, verbose=False)) == 1


def test_more_epochs_continue_only_where_the_schedule_allows(tmp_path):
    from scratch.config import ConfigError

    for name, make in (("step", lambda o, n: torch.optim.lr_scheduler.StepLR(o, 4)),
                       ("onecycle", lambda o, n: torch.optim.lr_scheduler.OneCycleLR(o, 0.1, total_steps=n))):
        cfg, model, opt, train, _ = setup(tmp_path / name, epochs=1)
        fit(model, opt, train, cfg, scheduler=make(opt, 4), verbose=False)
        cfg, model, opt, train, _ = setup(tmp_path / name, epochs=2)
        if name == "step":
            assert len(fit(model, opt, train, cfg, scheduler=make(opt, 8), verbose=False)) == 2
        else:
            with pytest.raises(ConfigError, match=r"epochs 1 -> 2 \(the schedule depends on the run's length\)"):
                cfg.check_run_dir()
        cfg, *_ = setup(tmp_path / name, epochs=1 if name == "onecycle" else 1)
        if name == "step":  # fewer epochs than were trained: never a resume
            with pytest.raises(ConfigError, match="epochs 2 -> 1"):
                cfg.check_run_dir()


def test_device_must_exist_on_this_machine():
    from scratch.config import ConfigError

    with pytest.raises(ConfigError, match=r"device='gpu': must be one of this machine's devices: auto, cpu"):
        Cfg.create("tiny", device="gpu")
    assert Cfg.create("tiny", device="cpu").device == "cpu"


def test_precision_auto_is_bf16_only_where_native(monkeypatch):
    """Emulated bf16 made a CI machine's AlexNet chapter run 25x slower than native
    bf16 and past the build's cell timeout; `auto` must pick fp32 there, and the
    config (and so metrics.json) must name what ran, never "auto"."""
    import scratch.train as train

    code = "from scratch.train import TrainConfig; print(TrainConfig.create('tiny', precision='auto').precision)"
    env = {**os.environ, "PYTHONPATH": os.path.join(os.path.dirname(__file__), "..", "code")}
    # oneDNN limited to AVX2 is a CPU without bf16 instructions, as far as autocast can tell.
    limited = subprocess.run([sys.executable, "-c", code], env={**env, "ONEDNN_MAX_CPU_ISA": "AVX2"},
                             capture_output=True, text=True, check=True)
    assert limited.stdout.strip() == "fp32"
    assert train.native_precision(torch.device("cpu")) == TrainConfig.create("tiny", precision="auto").precision
    monkeypatch.setattr(train, "native_bf16", lambda device: True)
    cfg = TrainConfig.create("tiny", precision="auto")
    assert cfg.precision == "bf16" and cfg.to_dict()["precision"] == "bf16"
    monkeypatch.setattr(train, "native_bf16", lambda device: False)
    assert TrainConfig.create("tiny", precision="auto").precision == "fp32"
    assert TrainConfig.create("tiny", precision="bf16").precision == "bf16"  # asked for: kept
