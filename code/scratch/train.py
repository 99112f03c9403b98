"""The one training loop of the PyTorch chapters: :func:`fit`.

Every PyTorch chapter trains through ``fit``; a chapter changes *what* is trained
(model, data, loss, optimizer, schedule) and hooks in extra behaviour with
callbacks, never by copying the loop. How training runs (device, mixed
precision, gradient accumulation, gradient clipping, step budgets, checkpoints,
several GPUs under ``torchrun``) comes from the chapter's :class:`TrainConfig`,
so a new capability lands here and every chapter gets it without being edited.

What is trained is open too:

- the default step is supervised, ``loss_fn(model(x), y)``; a chapter may pass
  ``step(model, batch) -> loss`` or a dict of named losses with a ``"loss"``
  entry (the ELBO's reconstruction and KL terms, a diffusion loss, a
  contrastive loss); every named loss is logged;
- ``optimizer`` may be a dict of named optimizers with ``step`` a dict of step
  functions of the same names (a GAN's discriminator, then its generator): each
  optimizer step runs them in order, each with its own gradients, clipping and
  ``scheduler`` (a dict of the same names);
- a run is epoch-based (``epochs`` passes over a DataLoader) or step-based
  (``max_steps`` optimizer steps, with evaluation and checkpoints every N steps;
  with :func:`sampled_loader` the data are drawn at random, nanoGPT style).

Checkpoints are written atomically at the end of every epoch (and every
``checkpoint_every`` steps) and hold the model, optimizers, schedulers, loss
scaler, callbacks' state (an :class:`EMA` of the weights), history, random-number
states, the position in the epoch and the resolved config. A run killed at any
point resumes from its last checkpoint on exactly the batches it would have
seen; a run folder whose checkpoint was made by another config is never resumed.

Chapter: "From NumPy to PyTorch" (book/foundations/numpy_to_pytorch.md).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
from dataclasses import dataclass, field
from typing import Callable, ClassVar, Optional

import numpy as np
import torch
from torch import nn

from . import distributed, progress
from .config import (
    Config,
    ConfigError,
    choice,
    describe,
    flatten,
    non_negative,
    positive,
)
from .history import (
    Callback,
    EarlyStopping,  # noqa: F401  (shared by both loops)
    History,
    State,
    epoch_line,  # noqa: F401  (shared by both loops)
    step_line,
)
from .models.spec import ModelSpec, spec_record
from .utils import atomic_path, pick_device


def _device_names() -> list[str]:
    """The devices this machine has, as ``--device`` accepts them."""
    names = ["auto", "cpu"]
    if torch.cuda.is_available():
        names += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        names.append("mps")
    return names


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes in bfloat16 natively.

    Where it does not, autocast still works but emulates bf16: on a CPU without
    AVX512-BF16 or AMX a convolution step is several times slower than in fp32
    (measured 7x on this book's machine with oneDNN limited to AVX2).
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        cpu = torch.cpu
        has_instructions = (
            getattr(cpu, "_is_avx512_bf16_supported", lambda: False)()
            or getattr(cpu, "_is_amx_tile_supported", lambda: False)()
        )
        # oneDNN may be limited below the CPU's own ISA (ONEDNN_MAX_CPU_ISA).
        return has_instructions and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return False


def native_precision(device: torch.device) -> str:
    """What ``--precision=auto`` means on ``device``: bf16 if native, else fp32."""
    return "bf16" if native_bf16(device) else "fp32"


@dataclass
class TrainConfig(Config):
    """Fields every trained chapter shares; a chapter's config subclasses this."""

    epochs: int = field(
        default=1,
        metadata=positive("passes over the training set (ignored when max_steps > 0)"),
    )
    max_steps: int = field(
        default=0,
        metadata=non_negative(
            "optimizer steps in all; 0 = the epochs decide. A step budget suits models "
            "trained on randomly drawn batches (language models, diffusion)"
        ),
    )
    batch_size: int = field(
        default=64, metadata=positive("examples per optimizer step (per GPU)")
    )
    device: str = field(
        default="auto",
        metadata={
            "help": "auto = cuda, then mps, then cpu",
            "check": lambda v: v in _device_names(),
            "rule": lambda: (
                "must be one of this machine's devices: " + ", ".join(_device_names())
            ),
        },
    )
    precision: str = field(
        default="fp32",
        metadata=choice(
            "fp32",
            "bf16",
            "fp16",
            "auto",
            help="autocast dtype: bf16/fp16 roughly halve GPU time "
            "and memory; auto = bf16 where the device computes in it natively (GPUs "
            "since Ampere, "
            "CPUs with AVX512-BF16 or AMX), else fp32",
        ),
    )
    grad_accum: int = field(
        default=1,
        metadata=positive(
            "micro-batches summed per optimizer step: a large batch on a small GPU"
        ),
    )
    clip_grad_norm: float = field(
        default=0.0,
        metadata=non_negative("clip the gradient's global norm to this (0 = off)"),
    )
    eval_every: int = field(
        default=0,
        metadata=non_negative(
            "evaluate every N optimizer steps (0 = at the end of every epoch)"
        ),
    )
    checkpoint_every: int = field(
        default=0,
        metadata=non_negative(
            "also write the checkpoint every N optimizer steps (0 = at the end of "
            "every epoch only)"
        ),
    )
    log_every: int = field(
        default=0,
        metadata=non_negative(
            "print a line every N optimizer steps (0 = one line per epoch)"
        ),
    )
    resume: bool = field(
        default=True,
        metadata=describe(
            "continue from run_dir's checkpoint if it was made by this same config"
        ),
    )
    num_workers: int = field(
        default=0, metadata=non_negative("DataLoader worker processes")
    )

    # Fields that cannot change what a run computes: a checkpoint may be resumed
    # with other values of these (another device, more workers, another folder).
    RESULT_NEUTRAL: ClassVar[tuple] = (
        "profile",
        "resume",
        "out_dir",
        "device",
        "num_workers",
        "threads",
        "log_every",
        "checkpoint_every",
        "eval_every",
    )

    def __post_init__(self):
        super().__post_init__()
        if self.precision == "auto":
            # Resolved here, so that the summary, the checkpoint and metrics.json
            # name the precision that actually ran.
            object.__setattr__(
                self, "precision", native_precision(pick_device(self.device))
            )

    def check_run_dir(self) -> None:
        """Refuse to resume, or overwrite, a run folder made by another config."""
        if not self.resume or not self.run_dir.is_dir():
            return
        for path in sorted(self.run_dir.glob("*.pt")):
            try:
                state = torch.load(
                    path, map_location="cpu", weights_only=True, mmap=True
                )
            except Exception:  # not a checkpoint of fit's (or unreadable): fit decides
                continue
            if isinstance(state, dict) and "config" in state:
                check_resumable(state, self, path)


def config_changes(
    stored: dict, cfg: TrainConfig, extendable: bool = False
) -> list[str]:
    """The fields in which ``cfg`` differs from a checkpoint's config, as ``name old ->
    new``.

    Result-neutral fields are ignored. A longer budget (more ``epochs`` or
    ``max_steps``) continues a run only when its learning-rate schedules do not
    depend on the run's length (``extendable``); one-cycle or cosine schedules do.
    """
    # Tuples as lists, as stored; nested specs as dotted keys (model.widths).
    now = flatten(json.loads(json.dumps(cfg.to_dict())))
    stored = flatten(json.loads(json.dumps(stored)))
    step_based = now.get("max_steps", 0) > 0 and stored.get("max_steps", 0) > 0
    changes = []
    for name in sorted(set(now) | set(stored)):
        if name in cfg.RESULT_NEUTRAL or (name == "epochs" and step_based):
            continue
        old, new = stored.get(name, "(absent)"), now.get(name, "(absent)")
        if old == new:
            continue
        longer = (
            name in ("epochs", "max_steps")
            and isinstance(old, int)
            and isinstance(new, int)
            and (name == "epochs" or old > 0)
            and new > old
        )
        if longer and extendable:
            continue
        why = " (the schedule depends on the run's length)" if longer else ""
        changes.append(f"{name} {json.dumps(old)} -> {json.dumps(new)}{why}")
    return changes


def check_resumable(state: dict, cfg: TrainConfig, path) -> None:
    """Raise ConfigError (one line) if the checkpoint ``state`` must not be resumed
    under ``cfg``."""
    changes = config_changes(state["config"], cfg, state.get("extendable", False))
    if changes:
        raise ConfigError(
            f"{path} holds a run made with another config ({'; '.join(changes)}): "
            f"add --resume=false to start over in {cfg.run_dir}, or --out_dir=DIR for "
            "a separate run"
        )


def accuracy(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """Fraction of examples whose highest-scoring class is the target."""
    return (
        (logits.argmax(dim=1) == targets).double().mean().item()
    )  # exact: no float32 rounding


AUTOCAST = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def _to_device(batch, device):
    """Move a batch (a tensor, or tuples, lists and dicts of them) to ``device``."""
    if torch.is_tensor(batch):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (tuple, list)):
        return type(batch)(_to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    return batch


def _first_tensor(batch):
    if torch.is_tensor(batch):
        return batch
    items = (
        batch.values()
        if isinstance(batch, dict)
        else batch
        if isinstance(batch, (tuple, list))
        else ()
    )
    for item in items:
        found = _first_tensor(item)
        if found is not None:
            return found
    return None


def _batch_size(batch) -> tuple[int, int]:
    """(examples, tokens) in a batch: tokens count when the inputs are token ids (B,
    T)."""
    x = _first_tensor(batch)
    if x is None or x.ndim == 0:
        return 1, 0
    tokens = x.numel() if x.ndim >= 2 and not torch.is_floating_point(x) else 0
    return len(x), tokens


def _named_losses(out, where: str) -> dict:
    """A step's result as a dict of named losses; ``"loss"`` is the one to minimise."""
    if torch.is_tensor(out):
        return {"loss": out}
    if isinstance(out, dict) and torch.is_tensor(out.get("loss")):
        return out
    raise TypeError(
        f"{where} must return a loss tensor or a dict with a 'loss' tensor, "
        f"got {type(out).__name__}"
        + (f" with keys {sorted(out)}" if isinstance(out, dict) else "")
    )


def supervised_step(loss_fn: Callable = nn.functional.cross_entropy) -> Callable:
    """The default step: ``loss_fn(model(x), y)`` on a batch ``(x, y)``."""

    def step(model, batch):
        x, y = batch
        return loss_fn(model(x), y)

    return step


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader,
    loss_fn: Callable = nn.functional.cross_entropy,
    metrics: Optional[dict] = None,
    device=None,
    prefix: str = "val_",
    precision: str = "fp32",
    step: Optional[Callable] = None,
) -> dict:
    """Mean loss and metrics over ``loader`` (weighted by batch size).

    With the default supervised step, ``metrics`` (default: accuracy) are
    ``fn(outputs, targets)``; with a ``step(model, batch)`` of a chapter's own,
    every named loss it returns is averaged instead. ``precision`` as in
    :class:`TrainConfig`: ``fit`` evaluates in the precision it trains in (bf16
    is also faster on CPUs that support it).
    """
    metrics = (
        ({"acc": accuracy} if metrics is None else metrics) if step is None else {}
    )
    device = device or next(model.parameters()).device
    dtype = AUTOCAST[precision]
    was_training = model.training
    model.eval()
    totals, count = {}, 0
    for batch in loader:
        batch = _to_device(batch, device)
        n = _batch_size(batch)[0]
        autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)
        if step is None:
            x, y = batch
            with autocast:
                out = model(x)
            out = out.float()  # losses and metrics in full precision
            values = {
                "loss": loss_fn(out, y),
                **{k: fn(out, y) for k, fn in metrics.items()},
            }
        else:
            with autocast:
                values = _named_losses(step(model, batch), "step")
        for name, value in values.items():
            value = value.item() if torch.is_tensor(value) else value
            totals[name] = totals.get(name, 0.0) + value * n
        count += n
    model.train(was_training)
    names = list(totals)
    sums = torch.tensor([totals[k] for k in names] + [count], dtype=torch.float64)
    sums = distributed.all_reduce_sum(sums)  # every rank saw a shard of the data
    return {prefix + k: (sums[i] / sums[-1]).item() for i, k in enumerate(names)}


def sampled_loader(
    dataset, batch_size: int, steps_per_epoch: Optional[int] = None, **kwargs
):
    """A DataLoader that draws every batch at random, with replacement (nanoGPT's
    ``get_batch``).

    For step-based training (``max_steps``) on data too large, or too overlapping
    (every window of a text), for epochs to mean much. ``steps_per_epoch`` sets how
    often the end-of-epoch work (a log line, a checkpoint) happens; default: one
    pass's worth of examples.
    """
    from torch.utils.data import DataLoader, RandomSampler

    steps = steps_per_epoch or max(1, len(dataset) // batch_size)
    sampler = RandomSampler(dataset, replacement=True, num_samples=steps * batch_size)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, **kwargs)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Model outputs for a tensor of inputs, in eval mode, batch by batch."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = torch.cat(
        [
            model(x[i : i + batch_size].to(device)).cpu()
            for i in range(0, len(x), batch_size)
        ]
    )
    model.train(was_training)
    return out


# ---- checkpoints ---------------------------------------------------------------
def save_checkpoint(path, **state) -> None:
    """``torch.save`` to a temporary file, then an atomic rename over ``path``."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path, map_location="cpu") -> dict:
    """Load a checkpoint without unpickling arbitrary objects
    (``weights_only=True``)."""
    return torch.load(path, map_location=map_location, weights_only=True)


def _spec_of(config) -> dict:
    """``{"spec": ...}`` when the config nests a model spec, so that
    :func:`scratch.models.spec.load_model` rebuilds the model from the checkpoint."""
    spec = getattr(config, "model", None)
    return {"spec": spec_record(spec)} if isinstance(spec, ModelSpec) else {}


def _rng_state(loader=None) -> dict:
    """Every random-number state a run draws from (and the loader's own generator, if
    any)."""
    np_state = np.random.get_state()
    generator = getattr(loader, "generator", None)
    return {
        "torch": torch.get_rng_state(),
        "numpy": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]),
        "python": random.getstate(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "loader": generator.get_state() if generator is not None else None,
    }


def _set_rng_state(state: dict, loader=None) -> None:
    torch.set_rng_state(state["torch"])
    generator = getattr(loader, "generator", None)
    if generator is not None and state.get("loader") is not None:
        generator.set_state(state["loader"])
    np.random.set_state(
        (
            "MT19937",
            state["numpy"].numpy().astype(np.uint32),
            state["numpy_pos"],
            0,
            0.0,
        )
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---- the loop ------------------------------------------------------------------
# Schedules whose learning rate at step t does not depend on the run's length: a
# run that used only these (or none) may be continued with more epochs or steps.
_LENGTH_FREE = (
    "StepLR",
    "MultiStepLR",
    "ExponentialLR",
    "ConstantLR",
    "LinearLR",
    "MultiplicativeLR",
    "CyclicLR",
    "ReduceLROnPlateau",
)


def _extendable(scheduler) -> bool:
    name = type(scheduler).__name__
    if name in ("SequentialLR", "ChainedScheduler"):
        return all(_extendable(s) for s in scheduler._schedulers)
    return name in _LENGTH_FREE


def fit(
    model: nn.Module,
    optimizer,
    train_loader,
    config: TrainConfig,
    *,
    loss_fn: Callable = nn.functional.cross_entropy,
    step=None,
    val_loader=None,
    metrics: Optional[dict] = None,
    scheduler=None,
    scheduler_interval: str = "step",
    callbacks: tuple = (),
    checkpoint: str | os.PathLike | None = "last.pt",
    batch_transform: Optional[Callable] = None,
    verbose: bool = True,
) -> History:
    """Train ``model`` and return its :class:`History`.

    - ``optimizer``: one optimizer, or a dict of named optimizers (then ``step`` is
      a dict of step functions with the same names, run in that order).
    - ``step(model, batch)``: returns the loss, or a dict of named losses whose
      ``"loss"`` is minimised (all are logged). Default: ``loss_fn(model(x), y)``.
    - ``scheduler``: steps after every optimizer step (``scheduler_interval="step"``)
      or every epoch (``"epoch"``); a dict when there are several optimizers.
    - ``config``: epochs or ``max_steps``, batch handling, precision, clipping,
      evaluation, checkpoint and log intervals (:class:`TrainConfig`).
    - ``checkpoint``: a file name inside ``config.run_dir`` (None: no checkpoints);
      an existing one is resumed only if it was made by the same config.
    - ``batch_transform(x, y) -> (x, y)`` (e.g. ``scratch.augment.Augment``)
      transforms each training batch once it is on the device.

    Under ``torchrun`` the model is wrapped in DistributedDataParallel and each
    process trains on its shard of the data.
    """
    return _Trainer(
        model,
        optimizer,
        train_loader,
        config,
        loss_fn=loss_fn,
        step=step,
        val_loader=val_loader,
        metrics=metrics,
        scheduler=scheduler,
        scheduler_interval=scheduler_interval,
        callbacks=callbacks,
        checkpoint=checkpoint,
        batch_transform=batch_transform,
        verbose=verbose,
    ).run()


class _Trainer:
    """The parts of :func:`fit`, read top-down: set up, resume, then per optimizer
    step :meth:`train_step`, and at epoch ends :meth:`end_epoch`."""

    def __init__(
        self,
        model,
        optimizer,
        train_loader,
        config,
        *,
        loss_fn,
        step,
        val_loader,
        metrics,
        scheduler,
        scheduler_interval,
        callbacks,
        checkpoint,
        batch_transform,
        verbose,
    ):
        if scheduler_interval not in ("step", "epoch"):
            raise ValueError(
                "scheduler_interval must be 'step' or 'epoch', got "
                f"{scheduler_interval!r}"
            )
        self.several = isinstance(optimizer, dict)
        self.optimizers = dict(optimizer) if self.several else {"": optimizer}
        self.steps = _named(
            step if step is not None else supervised_step(loss_fn),
            self.optimizers,
            "step",
            required=True,
        )
        self.schedulers = _named(
            scheduler, self.optimizers, "scheduler", required=False
        )
        self.model, self.config, self.metrics, self.loss_fn = (
            model,
            config,
            metrics,
            loss_fn,
        )
        self.custom_step = step is not None
        self.scheduler_interval, self.callbacks = scheduler_interval, tuple(callbacks)
        self.batch_transform = batch_transform
        self.device = (
            distributed.device()
            if distributed.is_enabled()
            else pick_device(config.device)
        )
        self.verbose = (
            verbose and distributed.is_main()
        )  # after device(): it joins the process group
        model.to(self.device)
        for opt in self.optimizers.values():
            _move_optimizer_state(opt, self.device)
        # Several models in a ModuleDict (a GAN) are wrapped one by one, so that a
        # step can call each of them through DDP.
        if isinstance(model, nn.ModuleDict) and distributed.is_enabled():
            self.train_model = nn.ModuleDict(
                {k: distributed.wrap(m) for k, m in model.items()}
            )
        else:
            self.train_model = distributed.wrap(model)
        self.train_loader = distributed.shard(train_loader)
        self.val_loader = (
            distributed.shard(val_loader, shuffle=False)
            if val_loader is not None
            else None
        )
        self.autocast_dtype = AUTOCAST[config.precision]
        if config.precision == "bf16" and self.verbose and not native_bf16(self.device):
            print(
                f"note: {self.device.type} has no native bf16: autocast emulates it, "
                "several "
                "times slower than fp32 (--precision=auto picks fp32 here)"
            )
        # fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs
        # none.
        self.scaler = torch.amp.GradScaler(
            self.device.type, enabled=config.precision == "fp16"
        )
        self.ckpt_path = config.run_dir / checkpoint if checkpoint else None
        self.max_steps = getattr(config, "max_steps", 0)
        self.steps_per_epoch = -(
            -len(self.train_loader) // config.grad_accum
        )  # optimizer steps
        self.total_steps = self.max_steps or config.epochs * self.steps_per_epoch
        self.history = History()
        self.state = State(model, optimizer, config, self.history)
        self.batch_in_epoch = 0  # micro-batches of the current epoch already trained on
        # Sums over the current epoch: named losses, examples, seconds.
        self.epoch_totals = {}
        self.epoch_rng = None  # RNG state before the current epoch's loader was started

    # ---- the run -----------------------------------------------------------------
    def run(self) -> History:
        resumed = (
            self.ckpt_path is not None
            and self.config.resume
            and self.ckpt_path.exists()
        )
        checkpoint = self.resume() if resumed else None
        for cb in self.callbacks:
            cb.on_fit_start(self.state)
        if checkpoint is not None:
            for cb, cb_state in zip(self.callbacks, checkpoint.get("callbacks", [])):
                if cb_state is not None and hasattr(cb, "load_state_dict"):
                    cb.load_state_dict(cb_state)
        while not self.finished():
            self.run_epoch(checkpoint)
            checkpoint = None  # only the first epoch after a resume starts mid-way
            if self.state.stop:
                break
        if (
            self.config.eval_every
            and self.val_loader is not None
            and self.state.step % self.config.eval_every
        ):
            # Step-based runs end with an evaluation at their last step.
            self.evaluate_now()
        for cb in self.callbacks:
            cb.on_fit_end(self.state)
        return self.history

    def finished(self) -> bool:
        return (
            self.state.step >= self.total_steps
            if self.max_steps
            else self.state.epoch >= self.config.epochs
        )

    def run_epoch(self, checkpoint: Optional[dict]) -> None:
        """One pass over the training loader (or what is left of it after a resume)."""
        state, config = self.state, self.config
        sampler = getattr(self.train_loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(state.epoch)  # a new shuffle per epoch under DDP
        if checkpoint is not None and self.batch_in_epoch:
            batches = self.resume_batches(
                checkpoint
            )  # the rest of an interrupted epoch
        else:
            for cb in self.callbacks:
                cb.on_epoch_start(state)
            self.batch_in_epoch, self.epoch_totals = 0, {}
            self.epoch_rng = _rng_state(self.train_loader)
            batches = iter(self.train_loader)
        self.epoch_lr = self.epoch_totals.get(
            "lr", self._lr()
        )  # the rate this epoch starts with
        self.epoch_totals["lr"] = self.epoch_lr
        bar = progress.bar(
            total=len(self.train_loader),
            initial=self.batch_in_epoch,
            desc=f"epoch {state.epoch + 1}/{config.epochs}"
            if not self.max_steps
            else f"step {state.step}/{self.total_steps}",
            disable=not distributed.is_main(),
        )
        while True:
            micro = list(itertools.islice(batches, config.grad_accum))
            if not micro:
                break
            self.train_step(micro)
            bar.update(len(micro))
            bar.set_postfix(loss=f"{state.loss:.4f}", refresh=False)
            if state.stop or (self.max_steps and state.step >= self.total_steps):
                break
            if config.checkpoint_every and state.step % config.checkpoint_every == 0:
                self.save()
        bar.close()
        epoch_done = self.batch_in_epoch >= len(self.train_loader)
        if epoch_done or state.stop or self.finished():
            self.end_epoch(complete=epoch_done)

    # ---- one optimizer step --------------------------------------------------------
    def train_step(self, micro: list) -> None:
        """One optimizer step per optimizer, on the micro-batches of one
        accumulation."""
        state, config = self.state, self.config
        t0 = time.perf_counter()
        micro = [self._prepare(b) for b in micro]
        examples, tokens = map(sum, zip(*(_batch_size(b) for b in micro)))
        row = {"step": state.step + 1, "epoch": state.epoch + 1}
        self.train_model.train()
        for name, opt in self.optimizers.items():
            if self.several:  # each optimizer sees only its own loss's gradients
                self.model.zero_grad(set_to_none=True)
            opt.zero_grad(set_to_none=True)
            sums = {}
            for j, batch in enumerate(micro):
                last = j + 1 == len(micro)
                with (
                    distributed.no_sync_unless(self.train_model, last),
                    torch.autocast(
                        self.device.type,
                        dtype=self.autocast_dtype,
                        enabled=self.autocast_dtype is not None,
                    ),
                ):
                    losses = _named_losses(
                        self.steps[name](self.train_model, batch),
                        f"step {name!r}" if name else "step",
                    )
                    # Average over the micro-batches so the step matches one large
                    # batch.
                    self.scaler.scale(losses["loss"] / len(micro)).backward()
                if not torch.isfinite(losses["loss"]):
                    err = FloatingPointError(
                        f"{_prefixed(name, 'loss')} became {losses['loss'].item()} at "
                        "epoch "
                        f"{state.epoch + 1}, step {state.step + 1}: lower the "
                        "learning rate or use fp32"
                    )
                    err.history = self.history  # what was recorded up to the divergence
                    raise err
                for key, value in losses.items():
                    sums[key] = sums.get(key, 0.0) + float(value.detach()) / len(micro)
            params = [p for group in opt.param_groups for p in group["params"]]
            self.scaler.unscale_(opt)  # true gradients for the norm and the clipping
            grads = [p.grad for p in params if p.grad is not None]
            norm = nn.utils.get_total_norm(grads) if grads else torch.zeros(())
            if config.clip_grad_norm:
                nn.utils.clip_grads_with_norm_(params, config.clip_grad_norm, norm)
            self.scaler.step(opt)
            if name in self.schedulers and self.scheduler_interval == "step":
                self.schedulers[name].step()
            row.update({_prefixed(name, k): v for k, v in sums.items()})
            row[_prefixed(name, "grad_norm")] = float(norm)
            row[_prefixed(name, "lr")] = opt.param_groups[0]["lr"]
        self.scaler.update()
        for opt in self.optimizers.values():
            opt.zero_grad(
                set_to_none=True
            )  # free the gradients' memory until the next step
        seconds = time.perf_counter() - t0
        row["examples_per_s"] = examples / seconds
        if tokens:
            row["tokens_per_s"] = tokens / seconds
        self.batch_in_epoch += len(micro)
        state.step += 1
        first = next(iter(self.optimizers))
        state.loss = row[_prefixed(first, "loss")]
        state.losses = row
        self.history.steps.append(state.loss)
        self.history.log.append(row)
        totals = self.epoch_totals
        for key, value in row.items():
            if (
                key not in ("step", "epoch", "examples_per_s", "tokens_per_s")
                and "lr" not in key
            ):
                totals[key] = totals.get(key, 0.0) + value * examples
        for key, value in (
            ("examples", examples),
            ("tokens", tokens),
            ("seconds", seconds),
        ):
            totals[key] = totals.get(key, 0) + value
        if self.verbose and config.log_every and state.step % config.log_every == 0:
            print(step_line(row, self.total_steps), flush=True)
        for cb in self.callbacks:
            cb.on_batch_end(state)
        if (
            config.eval_every
            and self.val_loader is not None
            and state.step % config.eval_every == 0
        ):
            self.evaluate_now()

    def _prepare(self, batch):
        batch = _to_device(batch, self.device)
        if self.batch_transform is not None:
            batch = self.batch_transform(*batch)
        return batch

    # ---- evaluation, epoch ends, checkpoints -----------------------------------------
    def evaluate(self) -> dict:
        """Validation metrics. The random states are put back afterwards: a step that
        draws noise (a diffusion loss) must not make training depend on how often
        it is evaluated."""
        rng = _rng_state(self.train_loader)
        try:
            return self._evaluate()
        finally:
            _set_rng_state(rng, self.train_loader)

    def _evaluate(self) -> dict:
        if self.custom_step:
            if self.several:
                return {
                    k: v
                    for name, fn in self.steps.items()
                    for k, v in evaluate(
                        self.model,
                        self.val_loader,
                        device=self.device,
                        precision=self.config.precision,
                        step=fn,
                        prefix=f"val_{name}_",
                    ).items()
                }
            return evaluate(
                self.model,
                self.val_loader,
                device=self.device,
                precision=self.config.precision,
                step=self.steps[""],
            )
        return evaluate(
            self.model,
            self.val_loader,
            self.loss_fn,
            self.metrics,
            self.device,
            precision=self.config.precision,
        )

    def evaluate_now(self) -> None:
        """Step-based evaluation (``eval_every``): a row in ``history.evals``."""
        row = {
            "step": self.state.step,
            "epoch": self.state.epoch + 1,
            **self.evaluate(),
        }
        self.history.evals.append(row)
        if self.verbose:
            print(step_line(row, self.total_steps), flush=True)

    def end_epoch(self, complete: bool) -> None:
        state, totals = self.state, self.epoch_totals
        if self.scheduler_interval == "epoch" and complete:
            for sched in self.schedulers.values():
                sched.step()
        n = max(totals.get("examples", 0), 1)
        row = {"epoch": state.epoch + 1, "step": state.step}
        row.update(
            {
                k: v / n
                for k, v in totals.items()
                if k not in ("examples", "tokens", "seconds", "lr")
            }
        )
        row["lr"] = self.epoch_lr
        seconds = totals.get("seconds", 0.0)
        row["examples_per_s"] = totals.get("examples", 0) / max(seconds, 1e-9)
        if totals.get("tokens"):
            row["tokens_per_s"] = totals["tokens"] / max(seconds, 1e-9)
        row["seconds"] = seconds
        if self.val_loader is not None and not self.config.eval_every:
            row.update(self.evaluate())
        if self.history.epochs and self.history.epochs[-1]["epoch"] == row["epoch"]:
            self.history.epochs[-1] = (
                row  # an epoch cut short by a step budget, now continued
            )
        else:
            self.history.epochs.append(row)
        for cb in self.callbacks:
            cb.on_epoch_end(state)
        if complete:
            state.epoch += 1
            self.batch_in_epoch, self.epoch_totals = 0, {}
        self.save()
        if self.verbose:
            print(
                epoch_line(row, self.config.epochs if not self.max_steps else None),
                flush=True,
            )

    def save(self) -> None:
        """Everything needed to continue exactly from here, written atomically."""
        if self.ckpt_path is None or not distributed.is_main():
            return
        save_checkpoint(
            self.ckpt_path,
            model=self.model.state_dict(),
            optimizer={k: o.state_dict() for k, o in self.optimizers.items()},
            scheduler={k: s.state_dict() for k, s in self.schedulers.items()},
            scaler=self.scaler.state_dict(),
            history=self.history.to_dict(),
            callbacks=[
                cb.state_dict() if hasattr(cb, "state_dict") else None
                for cb in self.callbacks
            ],
            epoch=self.state.epoch,
            step=self.state.step,
            batch=self.batch_in_epoch,
            epoch_totals=dict(self.epoch_totals),
            epoch_rng=self.epoch_rng,
            rng=_rng_state(self.train_loader),
            config=self.config.to_dict(),
            **_spec_of(self.config),
            extendable=all(_extendable(s) for s in self.schedulers.values()),
        )

    def resume(self) -> dict:
        """Load the checkpoint, if the config that made it is this one."""
        state = load_checkpoint(self.ckpt_path, map_location=self.device)
        if "config" not in state:
            raise ConfigError(
                f"{self.ckpt_path} was written by an older version of the book's code "
                "and does not say which config made it: add --resume=false to start "
                "over"
            )
        check_resumable(state, self.config, self.ckpt_path)
        self.model.load_state_dict(state["model"])
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizer"][name])
        for name, sched in self.schedulers.items():
            sched.load_state_dict(state["scheduler"][name])
        self.scaler.load_state_dict(state["scaler"])
        self.history.__init__(**state["history"])
        self.state.epoch, self.state.step = state["epoch"], state["step"]
        self.batch_in_epoch, self.epoch_totals = (
            state["batch"],
            dict(state["epoch_totals"]),
        )
        self.epoch_rng = state["epoch_rng"]
        if not self.batch_in_epoch:
            _set_rng_state(state["rng"], self.train_loader)
        if self.verbose:
            where = (
                f"at step {self.state.step}, batch {self.batch_in_epoch} of epoch "
                f"{self.state.epoch + 1}"
                if self.batch_in_epoch
                else f"after epoch {self.state.epoch}"
            )
            print(f"resumed from {self.ckpt_path} {where}")
        return state

    def resume_batches(self, checkpoint: dict):
        """The rest of an interrupted epoch: the loader replayed from the epoch's start
        (same shuffle), its first ``batch_in_epoch`` batches skipped without loading
        them."""
        _set_rng_state(self.epoch_rng, self.train_loader)
        batches = _skip(self.train_loader, self.batch_in_epoch)
        first = next(
            batches, None
        )  # starting the loader draws its shuffle from the RNG
        _set_rng_state(checkpoint["rng"], self.train_loader)  # then on as the run was
        return batches if first is None else itertools.chain([first], batches)

    def _lr(self) -> float:
        return next(iter(self.optimizers.values())).param_groups[0]["lr"]


def _prefixed(name: str, key: str) -> str:
    return f"{name}_{key}" if name else key


def _named(value, optimizers: dict, what: str, required: bool) -> dict:
    """``value`` as a dict keyed like ``optimizers`` ({"": value} for a single
    optimizer)."""
    if value is None:
        return {}
    if list(optimizers) == [""]:
        if isinstance(value, dict):
            raise TypeError(f"{what} is a dict, but there is a single optimizer")
        return {"": value}
    if not isinstance(value, dict):
        if what == "step":
            raise TypeError(
                "with several optimizers, step must be a dict of step functions "
                f"with the same names ({', '.join(optimizers)})"
            )
        raise TypeError(
            f"with several optimizers, {what} must be a dict keyed by their names"
        )
    unknown = set(value) - set(optimizers)
    missing = set(optimizers) - set(value)
    if unknown or (required and missing):
        raise TypeError(
            f"{what} names {sorted(value)} do not match the optimizers "
            f"{list(optimizers)}"
        )
    return dict(value)


class _SkipBatches:
    """A batch sampler without its first ``k`` batches (their indices are drawn, not
    loaded)."""

    def __init__(self, batch_sampler, k: int):
        self.batch_sampler, self.k = batch_sampler, k

    def __iter__(self):
        return itertools.islice(iter(self.batch_sampler), self.k, None)

    def __len__(self):
        return max(len(self.batch_sampler) - self.k, 0)


def _skip(loader, k: int):
    """An iterator over ``loader`` that starts at batch ``k``."""
    from torch.utils.data import DataLoader

    if (
        not isinstance(loader, DataLoader) or loader.batch_sampler is None
    ):  # e.g. an IterableDataset
        return itertools.islice(iter(loader), k, None)
    extra = (
        dict(
            prefetch_factor=loader.prefetch_factor,
            persistent_workers=loader.persistent_workers,
        )
        if loader.num_workers
        else {}
    )
    return iter(
        DataLoader(
            loader.dataset,
            batch_sampler=_SkipBatches(loader.batch_sampler, k),
            num_workers=loader.num_workers,
            collate_fn=loader.collate_fn,
            pin_memory=loader.pin_memory,
            timeout=loader.timeout,
            worker_init_fn=loader.worker_init_fn,
            generator=loader.generator,
            **extra,
        )
    )


def _move_optimizer_state(optimizer, device):
    for st in optimizer.state.values():
        for k, v in st.items():
            if torch.is_tensor(v) and k != "step":
                st[k] = v.to(device)


class EMA(Callback):
    r"""An exponential moving average of the weights, updated after every optimizer
    step.

    ``ema.module`` is the averaged copy of the model: evaluate or sample with it
    (diffusion models, BYOL's target network). Its state goes into the checkpoint. Built
    on PyTorch's :class:`torch.optim.swa_utils.AveragedModel`: $\theta_{\text{ema}}
    \leftarrow d\,\theta_{\text{ema}} + (1 - d)\,\theta$, starting from the weights at
    the first step; buffers (BatchNorm statistics) are averaged too.
    """

    def __init__(self, decay: float = 0.999, every: int = 1):
        if not 0 <= decay < 1 or every < 1:
            raise ValueError(
                f"EMA needs 0 <= decay < 1 and every >= 1, got decay={decay}, "
                f"every={every}"
            )
        self.decay, self.every, self.module = decay, every, None

    def on_fit_start(self, state):
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        if self.module is None:
            self.module = AveragedModel(
                state.model,
                multi_avg_fn=get_ema_multi_avg_fn(self.decay),
                use_buffers=True,
            )

    def on_batch_end(self, state):
        if state.step % self.every == 0:
            self.module.update_parameters(state.model)

    def state_dict(self) -> dict:
        return self.module.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state)
