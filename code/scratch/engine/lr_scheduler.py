r"""Learning-rate schedules, with ``torch.optim.lr_scheduler``'s interface and values.

A scheduler rewrites ``group["lr"]`` of its optimizer's ``param_groups``. As in
torch, constructing it sets the learning rate of epoch 0, and each
:meth:`~LRScheduler.step` (called *after* ``optimizer.step()``) moves on by one
epoch, or by one batch for the per-batch schedules (:class:`CyclicLR`,
:class:`OneCycleLR`)::

    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=100)
    for epoch in range(100):
        train_one_epoch(model, opt)
        sched.step()

Every schedule here is a *closed form* $\eta_t = f(t, \eta_{\text{base}})$ of the
epoch counter ``last_epoch``; several of torch's are *chainable*, i.e. multiply the
current lr by a ratio each step. Both give the same sequence (to rounding, checked over
150 steps in the tests) as long as nothing else edits the lr; but torch's chainable
schedulers compose when several run on one optimizer at once, ours overwrite each
other (use :class:`SequentialLR` to run them one after the other).

Not implemented: ``step(epoch)``, ``last_epoch`` at construction (restore with
:meth:`~LRScheduler.load_state_dict` instead), momentum cycling.

Chapter: "Learning-rate schedules" (book/foundations/schedules.md).
"""

from __future__ import annotations

import math
import numbers
from bisect import bisect_right

from .optim import Optimizer


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _is_positive_int(x) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool) and x > 0


def _per_group(optimizer: Optimizer, name: str, value) -> list:
    """One value per parameter group: a list/tuple as given, a number repeated."""
    if isinstance(value, (list, tuple)):
        _check(
            len(value) == len(optimizer.param_groups),
            f"{name} has {len(value)} values for {len(optimizer.param_groups)} "
            "parameter groups",
        )
        return list(value)
    return [value] * len(optimizer.param_groups)


class LRScheduler:
    """Base class: subclasses define :meth:`get_lr`, the lrs at epoch ``last_epoch``.

    ``base_lrs`` are the groups' ``"initial_lr"``, which the first scheduler of an
    optimizer records (torch's ``setdefault``): a second scheduler (e.g. the cosine
    after a warm-up, in :class:`SequentialLR`) starts from the same base lr, not from
    wherever the first left it.
    """

    def __init__(self, optimizer: Optimizer):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = -1
        self.step()  # epoch 0: set the initial lr

    def get_lr(self) -> list[float]:
        """The learning rate of each group at epoch ``last_epoch`` (a pure function of
        it)."""
        raise NotImplementedError

    def step(self) -> None:
        """Move on by one epoch (or batch) and set the new learning rates."""
        self.last_epoch += 1
        self._set_lrs(self.get_lr())

    def _set_lrs(self, lrs: list[float]) -> None:
        for group, lr in zip(self.optimizer.param_groups, lrs, strict=True):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        """The learning rates this scheduler set last, one per parameter group."""
        return list(self._last_lr)

    # Torch's contract: a scheduler's state is everything but the optimizer (and the
    # functions, which cannot be saved without pickle).
    _not_saved = ("optimizer",)

    def state_dict(self) -> dict:
        """Every attribute except the optimizer: epoch counter, base lrs, settings."""
        return {
            k: (list(v) if isinstance(v, list) else v)
            for k, v in vars(self).items()
            if k not in self._not_saved
        }

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore a :meth:`state_dict` (the optimizer's lrs come from its own state
        dict)."""
        self.__dict__.update(state_dict)

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(last_epoch={self.last_epoch}, last_lr={self._last_lr})"


class LambdaLR(LRScheduler):
    r"""The base lr times a function of the epoch:

    $$\eta_t = \eta_{\text{base}}\; \lambda(t)$$

    ``lr_lambda`` is one function, or a list with one per parameter group. The
    functions are not part of :meth:`state_dict`.
    """

    _not_saved = ("optimizer", "lr_lambdas")

    def __init__(self, optimizer: Optimizer, lr_lambda):
        if isinstance(optimizer, Optimizer):
            self.lr_lambdas = _per_group(optimizer, "lr_lambda", lr_lambda)
            for fn in self.lr_lambdas:
                if not callable(fn):
                    raise TypeError(
                        f"lr_lambda must be callable, got {type(fn).__name__}"
                    )
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        return [
            base * fn(self.last_epoch)
            for fn, base in zip(self.lr_lambdas, self.base_lrs)
        ]


class StepLR(LRScheduler):
    r"""Decay by ``gamma`` every ``step_size`` epochs (the schedule of ResNet's paper):

    $$\eta_t = \eta_{\text{base}}\; \gamma^{\lfloor t / s \rfloor}$$
    """

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1):
        _check(
            _is_positive_int(step_size),
            f"step_size must be a positive integer, got {step_size!r}",
        )
        _check(gamma > 0, f"gamma must be > 0, got {gamma}")
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        return [
            base * self.gamma ** (self.last_epoch // self.step_size)
            for base in self.base_lrs
        ]


class LinearLR(LRScheduler):
    r"""Scale the base lr by a factor that moves linearly from ``start_factor`` to
    ``end_factor`` in ``total_iters`` epochs, then stays there:

    $$\eta_t = \eta_{\text{base}} \left(f_0 + (f_1 - f_0)\,\frac{\min(t, T)}{T}\right)$$

    Why: the usual learning-rate *warm-up* (Goyal et al., 2017): a large lr applied to
    a freshly initialised network (or to Adam's first, noisy moment estimates) can
    diverge; ramping it up over the first iterations avoids that. Follow it by the main
    schedule with :class:`SequentialLR`. As torch, both factors must lie in (0, 1]
    ([0, 1] for ``end_factor``), and ``start_factor`` defaults to 1/3.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        start_factor: float = 1.0 / 3,
        end_factor: float = 1.0,
        total_iters: int = 5,
    ):
        _check(
            0 < start_factor <= 1, f"start_factor must be in (0, 1], got {start_factor}"
        )
        _check(0 <= end_factor <= 1, f"end_factor must be in [0, 1], got {end_factor}")
        _check(
            _is_positive_int(total_iters),
            f"total_iters must be a positive integer, got {total_iters!r}",
        )
        self.start_factor, self.end_factor, self.total_iters = (
            start_factor,
            end_factor,
            total_iters,
        )
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        f0, f1, T = self.start_factor, self.end_factor, self.total_iters
        factor = f0 + (f1 - f0) * min(T, self.last_epoch) / T
        return [base * factor for base in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    r"""Half a cosine from the base lr down to ``eta_min`` in ``T_max`` epochs
    (SGDR, Loshchilov & Hutter, 2017, without its restarts):

    $$\eta_t = \eta_{\min} + \tfrac12\,(\eta_{\text{base}} - \eta_{\min})
               \left(1 + \cos\frac{\pi t}{T_{\max}}\right)$$

    Why: it keeps the lr high for long (fast progress), then lowers it smoothly, with
    no step to tune except its length. Past ``T_max`` the cosine goes on, back up
    (period $2T_{\max}$), as torch's; stop stepping or set ``T_max`` to the run's
    length. Torch computes the same values by a chained ratio; this is its closed form.
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0):
        _check(
            _is_positive_int(T_max), f"T_max must be a positive integer, got {T_max!r}"
        )
        _check(eta_min >= 0, f"eta_min must be >= 0, got {eta_min}")
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        cosine = (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
        return [self.eta_min + (base - self.eta_min) * cosine for base in self.base_lrs]


class CosineAnnealingWarmRestarts(LRScheduler):
    r"""Cosine annealing with warm restarts (SGDR, Loshchilov & Hutter, 2017):

    $$\eta_t = \eta_{\min} + \tfrac12\,(\eta_{\text{base}} - \eta_{\min})
               \left(1 + \cos\frac{\pi\, T_{\text{cur}}}{T_i}\right)$$

    where the $i$-th cycle lasts $T_i = T_0\, T_{\text{mult}}^{\,i}$ epochs and
    $T_{\text{cur}}$ counts the epochs since the last restart, back to 0 (lr back to the
    base lr) when it reaches $T_i$.

    Why: each restart jumps out to a new region of the loss surface while each cosine
    settles in one; the end of every cycle is a snapshot worth keeping (snapshot
    ensembles), and growing cycles ($T_{\text{mult}} > 1$) spend more time annealing
    as training goes on.
    """

    def __init__(
        self, optimizer: Optimizer, T_0: int, T_mult: int = 1, eta_min: float = 0.0
    ):
        _check(_is_positive_int(T_0), f"T_0 must be a positive integer, got {T_0!r}")
        _check(
            _is_positive_int(T_mult), f"T_mult must be an integer >= 1, got {T_mult!r}"
        )
        _check(eta_min >= 0, f"eta_min must be >= 0, got {eta_min}")
        self.T_0, self.T_mult, self.eta_min = T_0, T_mult, eta_min
        super().__init__(optimizer)

    def _cycle(self) -> tuple[int, int]:
        """(T_cur, T_i) at epoch ``last_epoch``, in integers (no log: no rounding
        trap)."""
        t, T_i = self.last_epoch, self.T_0
        if self.T_mult == 1:
            return t % T_i, T_i
        while t >= T_i:
            t, T_i = t - T_i, T_i * self.T_mult
        return t, T_i

    def get_lr(self) -> list[float]:
        self.T_cur, self.T_i = self._cycle()  # exposed for inspection, as in torch
        cosine = (1 + math.cos(math.pi * self.T_cur / self.T_i)) / 2
        return [self.eta_min + (base - self.eta_min) * cosine for base in self.base_lrs]


class CyclicLR(LRScheduler):
    r"""Cyclical learning rate (Smith, 2017): a triangle wave between ``base_lr`` and
    ``max_lr``, stepped once per *batch*.

    With $c = \lfloor 1 + t/(s_\uparrow + s_\downarrow) \rfloor$ the cycle and
    $x = 1 + t/(s_\uparrow + s_\downarrow) - c \in [0, 1)$ the position in it,

    $$
    h = \begin{cases} x / r & x \leq r \\ (x - 1)/(r - 1) & x > r \end{cases},\qquad
    r = \frac{s_\uparrow}{s_\uparrow + s_\downarrow},\qquad
    \eta_t = \eta_{\text{base}} + (\eta_{\max} - \eta_{\text{base}})\; h\; \sigma
    $$

    with $\sigma = 1$ (``triangular``), $\sigma = 2^{-(c-1)}$ (``triangular2``: the
    amplitude halves each cycle) or $\sigma = \gamma^t$ (``exp_range``).

    Why: rather than searching for one good lr, sweep a range of them; the high values
    cross saddle points and flat regions, the low ones descend, and the range is found
    with one "LR range test". ``base_lr`` and ``max_lr`` may be lists (one per group);
    the optimizer's lr is set to ``base_lr`` at construction.

    Unlike torch's (``cycle_momentum=True`` by default), this one cycles the learning
    rate only, never the momentum: it equals torch's with ``cycle_momentum=False``.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        base_lr,
        max_lr,
        step_size_up: int = 2000,
        step_size_down: int | None = None,
        mode: str = "triangular",
        gamma: float = 1.0,
    ):
        if isinstance(optimizer, Optimizer):
            base_lrs = _per_group(optimizer, "base_lr", base_lr)
            self.max_lrs = _per_group(optimizer, "max_lr", max_lr)
            for lo, hi in zip(base_lrs, self.max_lrs):
                _check(
                    lo >= 0 and hi >= 0,
                    f"base_lr and max_lr must be >= 0, got {lo} and {hi}",
                )
            for group, lr in zip(optimizer.param_groups, base_lrs):
                group["lr"] = (
                    lr  # torch: the cycle starts at base_lr, whatever lr was given
                )
        _check(
            _is_positive_int(step_size_up),
            f"step_size_up must be a positive integer, got {step_size_up!r}",
        )
        _check(
            step_size_down is None or _is_positive_int(step_size_down),
            "step_size_down must be a positive integer or None, got "
            f"{step_size_down!r}",
        )
        _check(
            mode in ("triangular", "triangular2", "exp_range"),
            f"mode must be 'triangular', 'triangular2' or 'exp_range', got {mode!r}",
        )
        _check(gamma > 0, f"gamma must be > 0, got {gamma}")
        up = float(step_size_up)
        down = float(step_size_down) if step_size_down is not None else up
        self.total_size = up + down
        self.step_ratio = up / self.total_size
        self.mode, self.gamma = mode, gamma
        super().__init__(optimizer)
        # The cycle's floor is base_lr, not the groups' "initial_lr" (which an earlier
        # scheduler may have recorded): set it and redo epoch 0 with it.
        self.base_lrs = base_lrs
        self._set_lrs(self.get_lr())

    def _scale(self, cycle: int) -> float:
        if self.mode == "triangular":
            return 1.0
        if self.mode == "triangular2":
            return 1 / (2.0 ** (cycle - 1))
        return self.gamma**self.last_epoch  # exp_range: scaled per iteration

    def get_lr(self) -> list[float]:
        cycle = math.floor(1 + self.last_epoch / self.total_size)
        x = 1.0 + self.last_epoch / self.total_size - cycle
        h = (
            x / self.step_ratio
            if x <= self.step_ratio
            else (x - 1) / (self.step_ratio - 1)
        )
        scale = self._scale(cycle)
        return [
            lo + (hi - lo) * h * scale for lo, hi in zip(self.base_lrs, self.max_lrs)
        ]


class OneCycleLR(LRScheduler):
    r"""The 1cycle policy (Smith & Topin, 2019, "Super-convergence"), stepped once per
    *batch* for ``total_steps`` batches.

    The lr rises from $\eta_{\max}/d$ to $\eta_{\max}$ during the first
    ``pct_start`` of the steps, then falls to $\eta_{\max}/(d\, d_f)$ ($d$ =
    ``div_factor``, $d_f$ = ``final_div_factor``). With ``three_phase``, it first falls
    back to $\eta_{\max}/d$ in as many steps as it rose, then to the minimum. Each phase
    goes from $a$ to $b$ over steps $(s_0, s_1]$ by

    $$
    \eta_t = b + \tfrac12 (a - b)\left(1 + \cos(\pi p)\right) \;\text{(cos)}, \qquad
    \eta_t = a + (b - a)\, p \;\text{(linear)}, \qquad p = \frac{t - s_0}{s_1 - s_0},
    $$

    with phase ends $s_1 = \text{pct\_start}\cdot T - 1$ and $T - 1$ (three phases:
    $\text{pct\_start}\cdot T - 1$, $2\,\text{pct\_start}\cdot T - 2$, $T - 1$), as
    torch.

    Why: a warm-up to a large lr acts as a regulariser and lets training cross the
    loss surface fast; the long anneal to a tiny lr then converges. Smith & Topin reach
    a given accuracy in several times fewer iterations. Like torch, stepping past
    ``total_steps`` raises ValueError. Unlike torch's (``cycle_momentum=True`` by
    default), this one schedules the lr only, never the momentum: it equals torch's
    with ``cycle_momentum=False``.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        max_lr,
        total_steps: int,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
    ):
        _check(
            _is_positive_int(total_steps),
            f"total_steps must be a positive integer, got {total_steps!r}",
        )
        _check(0 <= pct_start <= 1, f"pct_start must be in [0, 1], got {pct_start}")
        _check(
            anneal_strategy in ("cos", "linear"),
            f"anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}",
        )
        _check(
            div_factor > 0 and final_div_factor > 0,
            f"div_factor and final_div_factor must be > 0, got {div_factor} and "
            f"{final_div_factor}",
        )
        self.total_steps, self.anneal_strategy = total_steps, anneal_strategy
        T, up = total_steps, float(pct_start * total_steps)
        # (last step of the phase, start lr, end lr), lrs named as below
        self._phases = (
            [
                (up - 1, "initial", "max"),
                (2 * up - 2, "max", "initial"),
                (T - 1, "initial", "min"),
            ]
            if three_phase
            else [(up - 1, "initial", "max"), (T - 1, "max", "min")]
        )
        if isinstance(optimizer, Optimizer):
            self.max_lrs = _per_group(optimizer, "max_lr", max_lr)
            for hi in self.max_lrs:
                _check(hi > 0, f"max_lr must be > 0, got {hi}")
            for group, hi in zip(optimizer.param_groups, self.max_lrs):
                group["initial_lr"] = (
                    hi / div_factor
                )  # overwritten, not setdefault, as torch
            self.min_lrs = [hi / div_factor / final_div_factor for hi in self.max_lrs]
        super().__init__(optimizer)

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def get_lr(self) -> list[float]:
        t = self.last_epoch
        if t > self.total_steps:
            raise ValueError(
                f"OneCycleLR stepped {t} times, but total_steps is {self.total_steps}"
            )
        lrs = []
        for initial, hi, lo in zip(self.base_lrs, self.max_lrs, self.min_lrs):
            named = {"initial": initial, "max": hi, "min": lo}
            start = 0.0
            for i, (end, a, b) in enumerate(self._phases):
                if t <= end or i == len(self._phases) - 1:
                    lrs.append(
                        self._anneal(named[a], named[b], (t - start) / (end - start))
                    )
                    break
                start = end
        return lrs


class SequentialLR(LRScheduler):
    r"""Run ``schedulers`` one after the other, switching at the epochs ``milestones``.

    Scheduler $k$ runs from milestone $m_{k-1}$ (or 0) to $m_k$, with its own epoch
    counter restarted at 0:

    $$\eta_t = f_k\bigl(t - m_{k-1}\bigr), \qquad m_{k-1} \leq t < m_k$$

    The usual use is a warm-up then the main schedule::

        warmup = LinearLR(opt, start_factor=0.01, total_iters=5)
        cosine = CosineAnnealingLR(opt, T_max=95)
        sched = SequentialLR(opt, [warmup, cosine], milestones=[5])

    Construct the schedulers on the same optimizer first; this resets the lr to the
    value of epoch 0 of the first one.
    """

    _not_saved = ("optimizer", "_schedulers")

    def __init__(self, optimizer: Optimizer, schedulers: list, milestones: list[int]):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        schedulers, milestones = list(schedulers), list(milestones)
        _check(len(schedulers) >= 1, "SequentialLR needs at least one scheduler")
        for i, s in enumerate(schedulers):
            if not isinstance(s, LRScheduler):
                raise TypeError(
                    f"schedulers[{i}] is a {type(s).__name__}, not a scheduler"
                )
            _check(
                s.optimizer is optimizer,
                f"schedulers[{i}] belongs to another optimizer",
            )
        _check(
            len(milestones) == len(schedulers) - 1,
            f"{len(schedulers)} schedulers need {len(schedulers) - 1} milestones, got "
            f"{len(milestones)}",
        )
        _check(
            all(_is_positive_int(m) for m in milestones)
            and milestones == sorted(set(milestones)),
            f"milestones must be increasing positive integers, got {milestones}",
        )
        self.optimizer, self._schedulers, self._milestones = (
            optimizer,
            schedulers,
            milestones,
        )
        self.last_epoch = -1
        self.step()

    def step(self) -> None:
        self.last_epoch += 1
        k = bisect_right(self._milestones, self.last_epoch)
        scheduler = self._schedulers[k]
        # Its own counter restarts at each milestone; it steps onto the local epoch.
        scheduler.last_epoch = (
            self.last_epoch - (self._milestones[k - 1] if k else 0) - 1
        )
        scheduler.step()
        self._last_lr = scheduler.get_last_lr()

    def get_lr(self) -> list[float]:
        return self.get_last_lr()

    def state_dict(self) -> dict:
        state = super().state_dict()
        state["_schedulers"] = [s.state_dict() for s in self._schedulers]
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        for s, saved in zip(
            self._schedulers, state_dict.pop("_schedulers"), strict=True
        ):
            s.load_state_dict(saved)
        super().load_state_dict(state_dict)
