"""The one training loop of the PyTorch chapters: :func:`fit`.

Every PyTorch chapter trains through ``fit``; a chapter changes *what* is trained
(model, data, loss, optimizer, schedule) and hooks in extra behaviour with
callbacks, never by copying the loop. How training runs (device, mixed
precision, gradient accumulation, gradient clipping, checkpoints, several GPUs
under ``torchrun``) comes from the chapter's :class:`TrainConfig`, so a new
capability lands here and every chapter gets it without being edited.

Checkpoints are written atomically at the end of every epoch and hold the model,
optimizer, scheduler, history and random-number states, so a run killed at any
point resumes where its last complete epoch ended, on the same batches it would
have seen.
"""
from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn

from . import distributed, progress
from .config import Config, choice, describe, non_negative, positive
from .history import Callback, EarlyStopping, History, State, epoch_line  # noqa: F401  (shared by both loops)
from .utils import atomic_path, pick_device


@dataclass
class TrainConfig(Config):
    """Fields every trained chapter shares; a chapter's config subclasses this."""

    epochs: int = field(default=1, metadata=positive("passes over the training set"))
    batch_size: int = field(default=64, metadata=positive("examples per optimizer step (per GPU)"))
    device: str = field(default="auto", metadata=describe("auto = cuda, then mps, then cpu"))
    precision: str = field(default="fp32", metadata=choice(
        "fp32", "bf16", "fp16", help="autocast dtype: bf16/fp16 roughly halve GPU time and memory"))
    grad_accum: int = field(default=1, metadata=positive(
        "micro-batches summed per optimizer step: a large batch on a small GPU"))
    clip_grad_norm: float = field(default=0.0, metadata=non_negative(
        "clip the gradient's global norm to this (0 = off)"))
    resume: bool = field(default=True, metadata=describe("continue from run_dir's checkpoint if one exists"))
    num_workers: int = field(default=0, metadata=non_negative("DataLoader worker processes"))


def accuracy(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """Fraction of examples whose highest-scoring class is the target."""
    return (logits.argmax(dim=1) == targets).double().mean().item()  # exact: no float32 rounding


AUTOCAST = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@torch.no_grad()
def evaluate(model: nn.Module, loader, loss_fn: Callable = nn.functional.cross_entropy,
             metrics: Optional[dict] = None, device=None, prefix: str = "val_",
             precision: str = "fp32") -> dict:
    """Mean loss and metrics over ``loader`` (weighted by batch size).

    ``precision`` as in :class:`TrainConfig`: ``fit`` evaluates in the precision it
    trains in (bf16 is also faster on CPUs that support it).
    """
    metrics = {"acc": accuracy} if metrics is None else metrics
    device = device or next(model.parameters()).device
    dtype = AUTOCAST[precision]
    was_training = model.training
    model.eval()
    totals, count = {"loss": 0.0, **{k: 0.0 for k in metrics}}, 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            out = model(x)
        out = out.float()  # losses and metrics in full precision
        n = len(y)
        totals["loss"] += loss_fn(out, y).item() * n
        for name, fn in metrics.items():
            totals[name] += fn(out, y) * n
        count += n
    model.train(was_training)
    sums = torch.tensor([totals[k] for k in totals] + [count], dtype=torch.float64)
    sums = distributed.all_reduce_sum(sums)  # every rank saw a shard of the data
    return {prefix + k: (sums[i] / sums[-1]).item() for i, k in enumerate(totals)}


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Model outputs for a tensor of inputs, in eval mode, batch by batch."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = torch.cat([model(x[i:i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)])
    model.train(was_training)
    return out


# ---- checkpoints ---------------------------------------------------------------
def save_checkpoint(path, **state) -> None:
    """``torch.save`` to a temporary file, then an atomic rename over ``path``."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path, map_location="cpu") -> dict:
    """Load a checkpoint without unpickling arbitrary objects (``weights_only=True``)."""
    return torch.load(path, map_location=map_location, weights_only=True)


def _rng_state() -> dict:
    np_state = np.random.get_state()
    return {"torch": torch.get_rng_state(), "numpy": torch.from_numpy(np_state[1].astype(np.int64)),
            "numpy_pos": int(np_state[2]), "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), state["numpy_pos"], 0, 0.0))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---- the loop ------------------------------------------------------------------
def fit(model: nn.Module, optimizer: torch.optim.Optimizer, train_loader, config: TrainConfig, *,
        loss_fn: Callable = nn.functional.cross_entropy, val_loader=None,
        metrics: Optional[dict] = None, scheduler=None, scheduler_interval: str = "step",
        callbacks: tuple = (), checkpoint: str | os.PathLike | None = "last.pt",
        batch_transform: Optional[Callable] = None, verbose: bool = True) -> History:
    """Train ``model`` for ``config.epochs`` epochs and return its :class:`History`.

    ``scheduler`` steps after every optimizer step (``scheduler_interval="step"``)
    or every epoch (``"epoch"``). ``checkpoint`` is a file name inside
    ``config.run_dir`` (None: no checkpoints). The model is moved to the config's
    device; ``batch_transform(x, y) -> (x, y)`` (e.g. ``scratch.augment.Augment``)
    transforms each training batch once it is on that device. Under ``torchrun``
    the model is wrapped in DistributedDataParallel and each
    process trains on its shard of the data.
    """
    device = distributed.device() if distributed.is_enabled() else pick_device(config.device)
    model.to(device)
    _move_optimizer_state(optimizer, device)
    history = History()
    ckpt_path = config.run_dir / checkpoint if checkpoint else None
    start_epoch = 0
    if ckpt_path and config.resume and ckpt_path.exists():
        state = load_checkpoint(ckpt_path, map_location=device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler"):
            scheduler.load_state_dict(state["scheduler"])
        history = History(**state["history"])
        start_epoch = state["epoch"]
        _set_rng_state(state["rng"])
        if verbose and distributed.is_main():
            print(f"resumed from {ckpt_path} after epoch {start_epoch}")

    train_model = distributed.wrap(model)
    train_loader = distributed.shard(train_loader)
    val_loader = distributed.shard(val_loader, shuffle=False) if val_loader is not None else None
    autocast_dtype = AUTOCAST[config.precision]
    # fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs none.
    scaler = torch.amp.GradScaler(device.type, enabled=config.precision == "fp16")
    state = State(model, optimizer, config, history, epoch=start_epoch, step=len(history.steps))
    for cb in callbacks:
        cb.on_fit_start(state)

    for epoch in range(start_epoch, config.epochs):
        state.epoch = epoch
        if hasattr(train_loader.sampler, "set_epoch"):
            train_loader.sampler.set_epoch(epoch)  # a new shuffle per epoch under DDP
        for cb in callbacks:
            cb.on_epoch_start(state)
        train_model.train()
        t0, total, count = time.perf_counter(), 0.0, 0
        lr = optimizer.param_groups[0]["lr"]  # the rate this epoch starts with
        optimizer.zero_grad(set_to_none=True)
        bar = progress.bar(train_loader, desc=f"epoch {epoch + 1}/{config.epochs}",
                           disable=not distributed.is_main())
        for i, (x, y) in enumerate(bar):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if batch_transform is not None:
                x, y = batch_transform(x, y)
            last_micro = (i + 1) % config.grad_accum == 0 or i + 1 == len(train_loader)
            with distributed.no_sync_unless(train_model, last_micro), \
                    torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                loss = loss_fn(train_model(x), y)
                # Average over the micro-batches so the step matches one large batch.
                scaler.scale(loss / config.grad_accum).backward()
            if not torch.isfinite(loss):
                err = FloatingPointError(f"loss became {loss.item()} at epoch {epoch + 1}, batch {i + 1}: "
                                         "lower the learning rate or use fp32")
                err.history = history  # what was recorded up to the divergence
                raise err
            total, count = total + loss.item() * len(y), count + len(y)
            if last_micro:
                if config.clip_grad_norm:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad_norm)
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                if scheduler is not None and scheduler_interval == "step":
                    scheduler.step()
                state.step += 1
                state.loss = loss.item()
                history.steps.append(state.loss)
                bar.set_postfix(loss=f"{state.loss:.4f}", refresh=False)
                for cb in callbacks:
                    cb.on_batch_end(state)
                if state.stop:  # a callback may end training mid-epoch
                    break
        bar.close()
        if scheduler is not None and scheduler_interval == "epoch":
            scheduler.step()
        row = {"epoch": epoch + 1, "loss": total / max(count, 1),
               "lr": lr, "seconds": time.perf_counter() - t0}
        if val_loader is not None:
            row.update(evaluate(model, val_loader, loss_fn, metrics, device, precision=config.precision))
        history.epochs.append(row)
        for cb in callbacks:
            cb.on_epoch_end(state)
        if ckpt_path and distributed.is_main():
            save_checkpoint(ckpt_path, model=model.state_dict(), optimizer=optimizer.state_dict(),
                            scheduler=scheduler.state_dict() if scheduler is not None else None,
                            history=history.to_dict(), epoch=epoch + 1, rng=_rng_state())
        if verbose and distributed.is_main():
            print(epoch_line(row, config.epochs), flush=True)
        if state.stop:
            break
    for cb in callbacks:
        cb.on_fit_end(state)
    return history


def _move_optimizer_state(optimizer, device):
    for st in optimizer.state.values():
        for k, v in st.items():
            if torch.is_tensor(v) and k != "step":
                st[k] = v.to(device)
