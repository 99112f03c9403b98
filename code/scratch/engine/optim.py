r"""Optimizers for the NumPy engine, with ``torch.optim``'s interface and update rules.

Each optimizer reproduces the single-tensor code path of its ``torch.optim`` namesake
(the tests compare 100 steps in float64), and keeps torch's structure where a reader
will meet it again:

- ``param_groups``: a list of dicts, each with its ``"params"`` and its own
  hyper-parameters (``"lr"``, ``"weight_decay"``...); a learning-rate scheduler
  (:mod:`scratch.engine.optim.lr_scheduler`) works by rewriting ``group["lr"]``;
- ``state``: the buffers of each parameter (momentum, moment estimates, step count),
  created at its first update, keyed here by the parameter's position across groups;
- ``state_dict()`` / ``load_state_dict()``: torch's layout, with NumPy arrays and
  Python numbers only, so a checkpoint needs no pickle.

Every ``step()`` *replaces* ``p.data`` with a new array instead of writing into it:
see :meth:`SGD.step`.

Not implemented: ``maximize``, ``foreach``/``fused``, closures, sparse gradients.

Chapter: "Optimizers" (book/foundations/optimizers.md).
"""

from __future__ import annotations

import math

import numpy as np

from .tensor import Tensor


class Optimizer:
    """Base class: holds the parameter groups and the per-parameter state.

    ``params`` is an iterable of tensors, or of dicts ``{"params": [...], **overrides}``
    (torch's parameter groups: e.g. no weight decay on biases) whose keys override the
    optimizer's ``defaults``. Subclasses define :meth:`step` and may check a group's
    hyper-parameters in :meth:`_validate`.
    """

    def __init__(self, params, defaults: dict | None = None):
        if isinstance(params, Tensor):  # iterating a Tensor would yield its rows
            raise TypeError(
                "params must be an iterable of tensors or of dicts, got one Tensor: "
                "wrap it in a list"
            )
        self.defaults = dict(defaults or {})
        self.param_groups: list[dict] = []
        # parameter index (position across all groups, in order) -> its buffers
        self.state: dict[int, dict] = {}
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    @property
    def params(self) -> list:
        """Every parameter, group after group."""
        return [p for group in self.param_groups for p in group["params"]]

    def add_param_group(self, group: dict) -> None:
        """Add a group of parameters; the keys it does not set take the defaults."""
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError("a parameter group must be a dict with a 'params' key")
        group = dict(group)
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(
                    f"optimizer can only optimize Tensors, got {type(p).__name__}"
                )
        # A parameter in two places would get two updates (and two states) per step.
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        ids = [id(p) for p in params]
        if len(set(ids)) < len(ids) or seen.intersection(ids):
            raise ValueError(
                "some parameters appear more than once (in one group or in several)"
            )
        # A typo ("weight_decy") would otherwise be silently ignored.
        unknown = set(group) - set(self.defaults) - {"params"}
        if unknown:
            raise ValueError(
                f"unknown option(s) {sorted(unknown)} for {type(self).__name__}; "
                f"known: {sorted(self.defaults)}"
            )
        group["params"] = params
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        self._validate(group)
        self.param_groups.append(group)

    def _validate(self, group: dict) -> None:
        """Raise ValueError on a meaningless hyper-parameter of ``group``."""

    def zero_grad(self) -> None:
        """Forget the gradients of the last step (they accumulate otherwise)."""
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        raise NotImplementedError

    def _with_grad(self):
        """``(group, p, state)`` for every parameter that has a gradient.

        A parameter without one was not used in this step's loss: like torch, leave it
        and its state (momentum included) untouched.
        """
        i = 0
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    yield group, p, self.state.setdefault(i, {})
                i += 1

    # ---- checkpoints ----------------------------------------------------------------
    def state_dict(self) -> dict:
        """``{"state": {index: {name: array or number}}, "param_groups": [...]}``, as
        torch.

        Parameters are named by their index across groups; arrays are copies, so later
        steps do not change a saved state.
        """
        groups, start = [], 0
        for group in self.param_groups:
            n = len(group["params"])
            groups.append(
                {
                    **{k: v for k, v in group.items() if k != "params"},
                    "params": list(range(start, start + n)),
                }
            )
            start += n
        state = {
            i: {
                k: np.array(v) if isinstance(v, np.ndarray) else v for k, v in s.items()
            }
            for i, s in self.state.items()
        }
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore hyper-parameters and buffers saved by :meth:`state_dict`.

        Also reads ``torch.optim``'s state dicts once their tensors are NumPy arrays
        (``step`` may be a 0-d array). Buffers are copied and cast to their parameter's
        dtype; a different number of groups or parameters, or a buffer of the wrong
        shape, raises ValueError.
        """
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(
                f"the state has {len(groups)} parameter groups, "
                f"this optimizer {len(self.param_groups)}"
            )
        where, start = {}, 0  # saved parameter index -> (our index, parameter)
        for saved, ours in zip(groups, self.param_groups):
            if len(saved["params"]) != len(ours["params"]):
                raise ValueError(
                    f"a saved group has {len(saved['params'])} parameters, "
                    f"ours {len(ours['params'])}"
                )
            for j, (i, p) in enumerate(zip(saved["params"], ours["params"])):
                where[int(i)] = (start + j, p)
            start += len(ours["params"])
        state = {}
        for i, buffers in state_dict["state"].items():
            index, p = where[int(i)]  # int(): JSON turns keys into strings
            state[index] = {}
            for name, value in buffers.items():
                if name == "step":
                    state[index][name] = int(value)
                    continue
                value = np.array(value, dtype=p.dtype)  # a copy
                if value.shape != p.shape:
                    raise ValueError(
                        f"state {name!r} of parameter {i} has shape {value.shape}, "
                        f"the parameter {p.shape}"
                    )
                state[index][name] = value
        for saved, ours in zip(groups, self.param_groups):
            # not re-validated: a scheduler may have set lr = 0 (cosine at T_max)
            ours.update({k: v for k, v in saved.items() if k != "params"})
        self.state = state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [
                f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params"
            ]
        return "\n".join(lines + [")"])


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _check_lr(group: dict) -> None:
    # torch accepts lr = 0; here it is almost always a config mistake (and a scheduler
    # may still take the lr to 0 later on).
    _check(group["lr"] > 0, f"lr must be > 0, got {group['lr']}")


def _check_weight_decay(group: dict) -> None:
    _check(
        group["weight_decay"] >= 0,
        f"weight_decay must be >= 0, got {group['weight_decay']}",
    )


class SGD(Optimizer):
    r"""Stochastic gradient descent with momentum, as ``torch.optim.SGD``.

    With gradient $g_t$, learning rate $\eta$, weight decay $\lambda$, momentum $\mu$,
    dampening $\tau$:

    $$ \begin{aligned} g_t &\leftarrow g_t + \lambda\,\theta_{t-1} \\ b_t &= \mu\,
    b_{t-1} + (1-\tau)\, g_t \qquad (b_1 = g_1) \\ g_t &\leftarrow \begin{cases} g_t +
    \mu\, b_t & \text{Nesterov} \\ b_t & \text{otherwise} \end{cases} \\ \theta_t &=
    \theta_{t-1} - \eta\, g_t \end{aligned} $$

    Why: momentum (Polyak, 1964) averages the gradients of about $1/(1-\mu)$ steps, so
    the components that flip sign across a narrow valley cancel while the consistent
    ones add up. Nesterov's variant (in the form of Sutskever et al., 2013) steps with
    the gradient plus the momentum it is about to apply: a look-ahead that damps
    overshooting. The weight decay is an L2 penalty
    $\frac{\lambda}{2}\lVert\theta\rVert^2$ added to the loss; for plain SGD this *is*
    decoupled decay, not so for adaptive methods (see :class:`AdamW`). As in torch, the
    first step sets $b_1 = g_1$, without dampening, and $\eta\,b$ is PyTorch's
    convention ($\mu b - \eta g$ in Sutskever's).

    Stricter than torch: ``lr`` must be > 0 and ``momentum`` in [0, 1) (at
    $\mu \geq 1$ the sum of past gradients never decays).
    """

    def __init__(
        self,
        params,
        lr: float,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ):
        super().__init__(
            params,
            dict(
                lr=lr,
                momentum=momentum,
                dampening=dampening,
                weight_decay=weight_decay,
                nesterov=nesterov,
            ),
        )

    def _validate(self, group: dict) -> None:
        _check_lr(group)
        _check(
            0 <= group["momentum"] < 1,
            f"momentum must be in [0, 1), got {group['momentum']}",
        )
        _check(
            0 <= group["dampening"] <= 1,
            f"dampening must be in [0, 1], got {group['dampening']}",
        )
        _check_weight_decay(group)
        _check(
            not group["nesterov"]
            or (group["momentum"] > 0 and group["dampening"] == 0),
            "Nesterov momentum needs momentum > 0 and dampening = 0",
        )

    def step(self) -> None:
        for group, p, state in self._with_grad():
            lr, mu, tau, wd = (
                group["lr"],
                group["momentum"],
                group["dampening"],
                group["weight_decay"],
            )
            g = p.grad
            if wd:
                g = g + wd * p.data
            if mu:
                b = state.get("momentum_buffer")
                b = state["momentum_buffer"] = (
                    g.copy() if b is None else mu * b + (1 - tau) * g
                )
                g = g + mu * b if group["nesterov"] else b
            # A new array rather than `p.data -= ...`: a graph built before this step
            # keeps the values it was computed with (PyTorch detects that case with
            # version counters instead), and memory shared with the caller's array is
            # never overwritten.
            p.data = (p.data - lr * g).astype(p.dtype, copy=False)


class Adagrad(Optimizer):
    r"""Adagrad (Duchi, Hazan & Singer, 2011), as ``torch.optim.Adagrad``.

    $$
    \begin{aligned}
    g_t &\leftarrow g_t + \lambda\,\theta_{t-1} \\
    \tilde\eta_t &= \frac{\eta}{1 + (t-1)\,\delta} \\
    s_t &= s_{t-1} + g_t^2 \qquad (s_0 = \text{initial\_accumulator\_value}) \\
    \theta_t &= \theta_{t-1} - \tilde\eta_t\, \frac{g_t}{\sqrt{s_t} + \epsilon}
    \end{aligned}
    $$

    ($\delta$ is ``lr_decay``; squares and roots are element-wise.)

    Why: each coordinate gets its own step size, inversely proportional to the root of
    the sum of its squared gradients, so rarely active features (sparse inputs) keep
    large steps while frequent ones slow down. The sum only grows, so every step size
    decays to zero: the flaw RMSprop fixes.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
    ):
        super().__init__(
            params,
            dict(
                lr=lr,
                lr_decay=lr_decay,
                weight_decay=weight_decay,
                initial_accumulator_value=initial_accumulator_value,
                eps=eps,
            ),
        )

    def _validate(self, group: dict) -> None:
        _check_lr(group)
        _check(
            group["lr_decay"] >= 0, f"lr_decay must be >= 0, got {group['lr_decay']}"
        )
        _check_weight_decay(group)
        _check(
            group["initial_accumulator_value"] >= 0,
            "initial_accumulator_value must be >= 0, got "
            f"{group['initial_accumulator_value']}",
        )
        _check(group["eps"] >= 0, f"eps must be >= 0, got {group['eps']}")

    def step(self) -> None:
        for group, p, state in self._with_grad():
            if not state:
                state["step"] = 0
                state["sum"] = np.full_like(p.data, group["initial_accumulator_value"])
            state["step"] += 1
            g = p.grad
            if group["weight_decay"]:
                g = g + group["weight_decay"] * p.data
            clr = group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])
            s = state["sum"] = state["sum"] + g * g
            # a new array, not an in-place update: see SGD.step
            p.data = (p.data - clr * (g / (np.sqrt(s) + group["eps"]))).astype(
                p.dtype, copy=False
            )


class RMSprop(Optimizer):
    r"""RMSprop (Hinton, 2012, lecture 6e of "Neural Networks for Machine Learning"),
    as ``torch.optim.RMSprop``.

    $$
    \begin{aligned}
    g_t &\leftarrow g_t + \lambda\,\theta_{t-1} \\
    v_t &= \alpha\, v_{t-1} + (1-\alpha)\, g_t^2 \\
    \bar g_t &= \alpha\, \bar g_{t-1} + (1-\alpha)\, g_t \qquad\text{(centered only)} \\
    d_t &= \sqrt{v_t - \bar g_t^2} + \epsilon \;\text{(centered)}, \quad
           \sqrt{v_t} + \epsilon \;\text{(otherwise)} \\
    b_t &= \mu\, b_{t-1} + g_t / d_t, \qquad \theta_t = \theta_{t-1} - \eta\, b_t
    \quad\text{(or } \theta_t = \theta_{t-1} - \eta\, g_t / d_t \text{ when } \mu = 0)
    \end{aligned}
    $$

    with $v_0 = \bar g_0 = b_0 = 0$.

    Why: Adagrad's *sum* of squared gradients becomes an exponential moving *average*
    over about $1/(1-\alpha)$ steps, so the step size adapts to the recent gradient
    scale instead of decaying forever. ``centered`` (Graves, 2013) divides by an
    estimate of the gradient's standard deviation rather than its root mean square. Note
    that torch adds $\epsilon$ outside the square root (TensorFlow/Keras inside), and
    that the momentum buffer accumulates the *normalised* step.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
    ):
        super().__init__(
            params,
            dict(
                lr=lr,
                alpha=alpha,
                eps=eps,
                weight_decay=weight_decay,
                momentum=momentum,
                centered=centered,
            ),
        )

    def _validate(self, group: dict) -> None:
        _check_lr(group)
        _check(
            0 <= group["alpha"] < 1, f"alpha must be in [0, 1), got {group['alpha']}"
        )
        _check(group["eps"] >= 0, f"eps must be >= 0, got {group['eps']}")
        _check_weight_decay(group)
        _check(
            0 <= group["momentum"] < 1,
            f"momentum must be in [0, 1), got {group['momentum']}",
        )

    def step(self) -> None:
        for group, p, state in self._with_grad():
            alpha, eps, mu = group["alpha"], group["eps"], group["momentum"]
            if not state:
                state["step"] = 0
                state["square_avg"] = np.zeros_like(p.data)
                if mu > 0:
                    state["momentum_buffer"] = np.zeros_like(p.data)
                if group["centered"]:
                    state["grad_avg"] = np.zeros_like(p.data)
            state["step"] += 1
            g = p.grad
            if group["weight_decay"]:
                g = g + group["weight_decay"] * p.data
            v = state["square_avg"] = alpha * state["square_avg"] + (1 - alpha) * g * g
            if group["centered"]:
                m = state["grad_avg"] = alpha * state["grad_avg"] + (1 - alpha) * g
                d = np.sqrt(v - m * m) + eps
            else:
                d = np.sqrt(v) + eps
            if mu > 0:
                b = state["momentum_buffer"] = mu * state["momentum_buffer"] + g / d
                update = group["lr"] * b
            else:
                update = group["lr"] * (g / d)
            # a new array, not an in-place update: see SGD.step
            p.data = (p.data - update).astype(p.dtype, copy=False)


class Adam(Optimizer):
    r"""Adam (Kingma & Ba, 2015), with the AMSGrad option (Reddi, Kale & Kumar, 2018),
    as ``torch.optim.Adam``.

    $$
    \begin{aligned}
    g_t &\leftarrow g_t + \lambda\,\theta_{t-1}
        \qquad\text{(L2 penalty; AdamW decays } \theta \text{)} \\
    m_t &= \beta_1 m_{t-1} + (1-\beta_1)\, g_t \\
    v_t &= \beta_2 v_{t-1} + (1-\beta_2)\, g_t^2 \\
    \hat v_t &= \max(\hat v_{t-1}, v_t) \text{ (AMSGrad)},
        \qquad \hat v_t = v_t \text{ (otherwise)} \\
    \theta_t &= \theta_{t-1} - \frac{\eta}{1-\beta_1^t}\,
                \frac{m_t}{\sqrt{\hat v_t / (1-\beta_2^t)} + \epsilon}
    \end{aligned}
    $$

    with $m_0 = v_0 = \hat v_0 = 0$.

    Why: $m$ is momentum and $v$ RMSprop's mean square, both exponential averages
    started at zero, hence biased towards zero in the first steps; dividing by
    $1-\beta^t$ removes that bias (without it the first steps would be tiny, or, for
    $v$ alone, huge). The step is then roughly $\eta$ per coordinate whatever the
    gradient's scale. AMSGrad keeps the largest $v$ seen, so the effective step size
    never grows back: Reddi et al.'s fix for a problem on which Adam does not converge.
    ($\epsilon$ is added after the bias correction, as in the paper and torch.)
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
    ):
        super().__init__(
            params,
            dict(
                lr=lr,
                betas=tuple(betas),
                eps=eps,
                weight_decay=weight_decay,
                amsgrad=amsgrad,
            ),
        )

    _decoupled = False  # AdamW: decay the weights instead of adding an L2 gradient

    def _validate(self, group: dict) -> None:
        _check_lr(group)
        betas = group["betas"]
        _check(len(betas) == 2, f"betas must be a pair (beta1, beta2), got {betas}")
        for i, beta in enumerate(betas):
            _check(0 <= beta < 1, f"betas[{i}] must be in [0, 1), got {beta}")
        _check(group["eps"] >= 0, f"eps must be >= 0, got {group['eps']}")
        _check_weight_decay(group)

    def step(self) -> None:
        for group, p, state in self._with_grad():
            lr, (beta1, beta2), eps, wd = (
                group["lr"],
                group["betas"],
                group["eps"],
                group["weight_decay"],
            )
            if not state:
                state["step"] = 0
                state["exp_avg"] = np.zeros_like(p.data)
                state["exp_avg_sq"] = np.zeros_like(p.data)
                if group["amsgrad"]:
                    state["max_exp_avg_sq"] = np.zeros_like(p.data)
            state["step"] += 1
            t, g, theta = state["step"], p.grad, p.data
            if wd and self._decoupled:
                theta = theta * (1 - lr * wd)
            elif wd:
                g = g + wd * theta
            m = state["exp_avg"] = beta1 * state["exp_avg"] + (1 - beta1) * g
            v = state["exp_avg_sq"] = beta2 * state["exp_avg_sq"] + (1 - beta2) * g * g
            if group["amsgrad"]:
                v = state["max_exp_avg_sq"] = np.maximum(state["max_exp_avg_sq"], v)
            denom = np.sqrt(v) / math.sqrt(1 - beta2**t) + eps
            # a new array, not an in-place update: see SGD.step
            p.data = (theta - lr / (1 - beta1**t) * (m / denom)).astype(
                p.dtype, copy=False
            )


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter, 2019), as
    ``torch.optim.AdamW``.

    The update of :class:`Adam`, except that the decay shrinks the weights directly
    rather than entering the gradient:

    $$
    \theta_{t-1} \leftarrow (1 - \eta\lambda)\,\theta_{t-1}, \qquad
    \theta_t = \theta_{t-1} - \frac{\eta}{1-\beta_1^t}\,
               \frac{m_t}{\sqrt{\hat v_t / (1-\beta_2^t)} + \epsilon}
    $$

    with $m_t, \hat v_t$ computed from the raw gradient $g_t$.

    Why: in Adam an L2 penalty's gradient $\lambda\theta$ is divided by $\sqrt{\hat v}$
    like any gradient, so the weights with large gradients are barely decayed and the
    regularisation differs from weight decay. Decoupling it restores "every weight
    shrinks by the same factor each step", which Loshchilov & Hutter show generalises
    better and makes the best $\lambda$ nearly independent of $\eta$. As torch, the
    factor is $\eta\lambda$ (the paper scales $\lambda$ by the schedule multiplier
    only), and the default $\lambda$ is ``1e-2``.
    """

    _decoupled = True

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
    ):
        super().__init__(
            params,
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
        )
