"""The training loop of the NumPy-engine chapters: :func:`fit_arrays`.

It mirrors :func:`scratch.train.fit` (same :class:`~scratch.history.History`,
same callbacks, one summary line per epoch) for models built with
``scratch.engine``: mini-batches drawn from NumPy arrays, ``loss.backward()``,
``optimizer.step()``. Chapters that teach the loop itself write it out once, in
the chapter, and use this afterwards.

Chapter: "Neural networks from first principles" (book/foundations/mlp.md).
"""

from __future__ import annotations

import time
from typing import Callable, Optional

import numpy as np

from ..history import Callback, EarlyStopping, History, State, epoch_line  # noqa: F401
from . import functional as F
from . import nn
from .tensor import Tensor, no_grad


def accuracy(logits: Tensor, targets: np.ndarray) -> float:
    """Fraction of rows whose highest-scoring class is the target."""
    return float((logits.numpy().argmax(axis=1) == np.asarray(targets)).mean())


def evaluate(
    model,
    x: np.ndarray,
    y: np.ndarray,
    loss_fn: Callable = F.cross_entropy,
    metrics: Optional[dict] = None,
    batch_size: int = 1024,
    prefix: str = "val_",
) -> dict:
    """Mean loss and metrics over (x, y), in eval mode and without building a graph."""
    metrics = {"acc": accuracy} if metrics is None else metrics
    was_training = model.training
    model.eval()
    totals = {"loss": 0.0, **{k: 0.0 for k in metrics}}
    with no_grad():
        for i in range(0, len(x), batch_size):
            xb, yb = Tensor(x[i : i + batch_size]), y[i : i + batch_size]
            out = model(xb)
            totals["loss"] += loss_fn(out, yb).item() * len(yb)
            for name, fn in metrics.items():
                totals[name] += fn(out, yb) * len(yb)
    model.train(was_training)
    return {prefix + k: v / len(x) for k, v in totals.items()}


def fit_arrays(
    model,
    optimizer,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    loss_fn: Callable = F.cross_entropy,
    val: Optional[tuple] = None,
    metrics: Optional[dict] = None,
    scheduler=None,
    scheduler_interval: str = "step",
    callbacks: tuple = (),
    seed: int = 0,
    config=None,
    verbose: bool = True,
    clip_grad_norm: Optional[float] = None,
) -> History:
    """Train ``model`` on arrays ``x`` (inputs) and ``y`` (targets) with mini-batch
    steps.

    Each epoch visits every example once in a fresh random order (from ``seed``);
    ``val=(x_val, y_val)`` adds ``val_loss`` and ``val_<metric>`` to each epoch's row.
    ``scheduler`` steps after every optimizer step or, with
    ``scheduler_interval="epoch"``, after every epoch. ``clip_grad_norm`` caps the
    norm of all gradients together before each step (``nn.utils.clip_grad_norm_``);
    each epoch's row then has the mean ``grad_norm`` before clipping.
    """
    if batch_size <= 0 or epochs <= 0:
        raise ValueError(
            f"epochs and batch_size must be > 0, got {epochs} and {batch_size}"
        )
    rng = np.random.default_rng(seed)
    history = History()
    state = State(model, optimizer, config, history)
    for cb in callbacks:
        cb.on_fit_start(state)
    for epoch in range(epochs):
        state.epoch = epoch
        for cb in callbacks:
            cb.on_epoch_start(state)
        model.train()
        t0, total, count, norms = time.perf_counter(), 0.0, 0, []
        lr = optimizer.param_groups[0]["lr"]  # the rate this epoch starts with
        order = rng.permutation(len(x))
        for i in range(0, len(x), batch_size):
            idx = order[i : i + batch_size]
            loss = loss_fn(model(Tensor(x[idx])), y[idx])
            if not np.isfinite(loss.item()):
                err = FloatingPointError(
                    f"loss became {loss.item()} at epoch {epoch + 1}: lower the "
                    "learning rate"
                )
                err.history = history  # what was recorded up to the divergence
                raise err
            optimizer.zero_grad()
            loss.backward()
            if clip_grad_norm is not None:
                norms.append(nn.clip_grad_norm_(model.parameters(), clip_grad_norm))
            optimizer.step()
            if scheduler is not None and scheduler_interval == "step":
                scheduler.step()
            state.step += 1
            state.loss = loss.item()
            history.steps.append(state.loss)
            total, count = total + state.loss * len(idx), count + len(idx)
            for cb in callbacks:
                cb.on_batch_end(state)
            if state.stop:  # a callback may end training mid-epoch (e.g. a range test)
                break
        if scheduler is not None and scheduler_interval == "epoch":
            scheduler.step()
        row = {
            "epoch": epoch + 1,
            "loss": total / max(count, 1),
            "lr": lr,
            "seconds": time.perf_counter() - t0,
            **({"grad_norm": float(np.mean(norms))} if norms else {}),
        }
        if val is not None:
            row.update(evaluate(model, val[0], val[1], loss_fn, metrics))
        history.epochs.append(row)
        for cb in callbacks:
            cb.on_epoch_end(state)
        if verbose:
            print(epoch_line(row, epochs), flush=True)
        if state.stop:
            break
    for cb in callbacks:
        cb.on_fit_end(state)
    return history
