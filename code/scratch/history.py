"""What a training run records, and the callback protocol: shared by both training
loops.

:func:`scratch.train.fit` (PyTorch) and :func:`scratch.engine.loop.fit_arrays` (the
NumPy engine) fill the same :class:`History` and call the same :class:`Callback` hooks,
so plots, early stopping and any callback work with either. No PyTorch import here.

Chapter: "Regularization and generalization" (book/foundations/regularization.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


class History:
    """Metrics of a run.

    - ``epochs``: one row per epoch (mean named losses, learning rate, gradient
      norm, throughput, validation metrics, seconds);
    - ``steps``: the training loss of every optimizer step (a list of floats);
    - ``log``: every optimizer step's row (each named loss, learning rate,
      gradient norm, examples/s and tokens/s), filled by the PyTorch loop;
    - ``evals``: step-based evaluations (``eval_every``), one row each.
    """

    def __init__(self, epochs=None, steps=None, log=None, evals=None):
        self.epochs: list[dict] = list(epochs or [])
        self.steps: list[float] = list(steps or [])
        self.log: list[dict] = list(log or [])
        self.evals: list[dict] = list(evals or [])

    def __getitem__(self, key: str) -> list:
        return [row[key] for row in self.epochs if key in row]

    def __len__(self):
        return len(self.epochs)

    @property
    def last(self) -> dict:
        return self.epochs[-1] if self.epochs else {}

    def to_dict(self) -> dict:
        return {
            "epochs": self.epochs,
            "steps": self.steps,
            "log": self.log,
            "evals": self.evals,
        }


_UNITS = {"examples_per_s": "ex/s", "tokens_per_s": "tok/s"}


def _fields(row: dict, skip: tuple) -> list[str]:
    out = []
    for k, v in row.items():
        if k in skip:
            continue
        out.append(f"{v:.0f} {_UNITS[k]}" if k in _UNITS else f"{k} {v:.4g}")
    return out


def epoch_line(row: dict, epochs: int | None) -> str:
    """The one line a training loop prints per epoch: ``epoch 3/10  loss 0.12  ...
    (1.0 s)``.

    ``epochs`` is None in a step-based run, which counts steps instead."""
    head = f"epoch {row['epoch']}/{epochs}" if epochs else f"epoch {row['epoch']}"
    if not epochs and "step" in row:
        head += f" (step {row['step']})"
    return "  ".join(
        [head]
        + _fields(row, ("epoch", "step", "seconds"))
        + [f"({row['seconds']:.1f} s)"]
    )


def step_line(row: dict, total: int) -> str:
    """The line printed every ``log_every`` steps (or after a step-based evaluation)."""
    return "  ".join([f"step {row['step']}/{total}"] + _fields(row, ("step", "epoch")))


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
    losses: dict = field(
        default_factory=dict
    )  # the last step's row: every named loss, lr, ...
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
        self.monitor, self.patience, self.sign = (
            monitor,
            patience,
            (1 if mode == "min" else -1),
        )
        self.best, self.bad = math.inf, 0

    def on_fit_start(self, state):  # one instance can serve several runs
        self.best, self.bad = math.inf, 0

    def state_dict(
        self,
    ) -> dict:  # saved in checkpoints: a resumed run keeps its patience
        return {"best": self.best, "bad": self.bad}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.bad = state["best"], state["bad"]

    def on_epoch_end(self, state):
        value = self.sign * state.history.last[self.monitor]
        if value < self.best:
            self.best, self.bad = value, 0
        else:
            self.bad += 1
            state.stop = self.bad >= self.patience
