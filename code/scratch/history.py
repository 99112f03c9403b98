"""What a training run records, and the callback protocol: shared by both training loops.

:func:`scratch.train.fit` (PyTorch) and :func:`scratch.engine.train.fit` (the NumPy
engine) fill the same :class:`History` and call the same :class:`Callback` hooks,
so plots, early stopping and any callback work with either. No PyTorch import here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


class History:
    """Metrics of a run: one row per epoch, and the training loss of every step."""

    def __init__(self, epochs=None, steps=None):
        self.epochs: list[dict] = list(epochs or [])
        self.steps: list[float] = list(steps or [])

    def __getitem__(self, key: str) -> list:
        return [row[key] for row in self.epochs if key in row]

    def __len__(self):
        return len(self.epochs)

    @property
    def last(self) -> dict:
        return self.epochs[-1] if self.epochs else {}

    def to_dict(self) -> dict:
        return {"epochs": self.epochs, "steps": self.steps}


def epoch_line(row: dict, epochs: int) -> str:
    """The one line a training loop prints per epoch: ``epoch 3/10  loss 0.12  ...  (1.0 s)``."""
    return "  ".join([f"epoch {row['epoch']}/{epochs}"] +
                     [f"{k} {v:.4g}" for k, v in row.items() if k not in ("epoch", "seconds")] +
                     [f"({row['seconds']:.1f} s)"])


@dataclass
class State:
    """What callbacks see and may change (``stop = True`` ends training)."""

    model: Any
    optimizer: Any
    config: Any
    history: History
    epoch: int = 0
    step: int = 0
    loss: float = math.nan
    stop: bool = False


class Callback:
    """Override the hooks you need; every hook gets the :class:`State`."""

    def on_fit_start(self, state: State): ...
    def on_epoch_start(self, state: State): ...
    def on_batch_end(self, state: State): ...
    def on_epoch_end(self, state: State): ...
    def on_fit_end(self, state: State): ...


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved for ``patience`` epochs."""

    def __init__(self, monitor="val_loss", patience=3, mode="min"):
        self.monitor, self.patience, self.sign = monitor, patience, (1 if mode == "min" else -1)
        self.best, self.bad = math.inf, 0

    def on_fit_start(self, state):  # one instance can serve several runs
        self.best, self.bad = math.inf, 0

    def on_epoch_end(self, state):
        value = self.sign * state.history.last[self.monitor]
        if value < self.best:
            self.best, self.bad = value, 0
        else:
            self.bad += 1
            state.stop = self.bad >= self.patience
