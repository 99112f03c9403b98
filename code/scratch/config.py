"""One typed config per chapter, with three profiles and strict overrides.

A chapter declares its knobs once, as a dataclass whose fields carry a comment
saying *why* each default was chosen, plus one dictionary of overrides for each
profile::

    @dataclass
    class LeNetConfig(Config):
        epochs: int = field(default=10, metadata=positive("passes over the data"))
        lr: float = field(default=0.1, metadata=positive("SGD step size"))

        PROFILES = {
            "tiny": dict(epochs=1),    # tests: seconds
            "small": dict(),           # book build on a CPU: at most 90 s
            "full": dict(epochs=30),   # paper scale on a GPU
        }

    cfg = LeNetConfig.from_cli()   # in a script or in the book

The profile comes from ``--profile`` or the environment variable
``SCRATCH_PROFILE`` (default ``small``); any field can be overridden with
``--name=value``. Mistakes (an unknown key, a value of the wrong type, an
impossible value) raise :class:`ConfigError`; :meth:`Config.from_cli` turns that
into one line on stderr and exit code 2, never a traceback.

Chapter: "Running the chapters yourself" (book/appendix/running.md).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import types
import typing
from dataclasses import dataclass, field  # noqa: F401  (re-exported for chapters)
from pathlib import Path
from typing import Any, ClassVar

PROFILES = ("tiny", "small", "full")
DEFAULT_PROFILE = "small"


class ConfigError(ValueError):
    """A config mistake a user can fix: the message is one line."""


def _rule(check, rule: str, help: str) -> dict:
    """Field metadata for a per-value rule; on a tuple it holds for every item, and
    the tuple may not be empty (an empty list of widths or rates is never meant)."""
    return {"help": help, "check": check, "rule": rule, "elementwise": True}


def positive(help: str = "") -> dict:
    """Field metadata: the value must be > 0."""
    return _rule(lambda v: v > 0, "must be > 0", help)


def non_negative(help: str = "") -> dict:
    """Field metadata: the value must be >= 0."""
    return _rule(lambda v: v >= 0, "must be >= 0", help)


def in_range(
    lo, hi, help: str = "", *, low_open: bool = False, high_open: bool = False
) -> dict:
    """Field metadata: the value must lie between ``lo`` and ``hi``, each end
    included unless ``low_open`` / ``high_open`` (the rule reads ``(0, 1]``)."""

    def check(v):
        return (lo < v if low_open else lo <= v) and (v < hi if high_open else v <= hi)

    rule = f"must be in {'(' if low_open else '['}{lo}, {hi}{')' if high_open else ']'}"
    return _rule(check, rule, help)


def unit_interval(help: str = "") -> dict:
    """Field metadata: the value must lie in [0, 1)."""
    return in_range(0, 1, help, high_open=True)


def choice(*options, help: str = "") -> dict:
    """Field metadata: the value must be one of ``options``."""
    return _rule(
        lambda v: v in options, "must be one of " + ", ".join(map(str, options)), help
    )


def describe(help: str) -> dict:
    """Field metadata with only a help text."""
    return {"help": help}


def _is_union(kind) -> bool:
    """``Optional[X]`` and ``X | None`` (PEP 604) are both unions."""
    return typing.get_origin(kind) in (typing.Union, types.UnionType)


def _optional_inner(kind):
    """``X`` for ``X | None``; a union of two real types is not supported in a
    config."""
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    if len(args) != 1:
        raise TypeError(f"config fields may be X or X | None, not {kind}")
    return args[0]


def _kind_name(kind) -> str:
    return getattr(kind, "__name__", str(kind).replace("typing.", ""))


def _parse(text: str, kind: Any, name: str):
    """Convert command-line text to the field's declared type, or raise ConfigError."""
    if _is_union(kind):  # X | None
        if text.strip().lower() in ("none", "null"):
            return None
        return _parse(text, _optional_inner(kind), name)
    origin = typing.get_origin(kind)
    if origin in (tuple, list):
        args = typing.get_args(kind)
        parts = [p.strip() for p in text.strip().strip("()[]").split(",")]
        parts = [] if parts == [""] else parts
        if "" in parts:
            raise ConfigError(
                f"--{name}: empty item in {text!r}; write items separated by commas"
            )
        if not args or args[-1] is Ellipsis:  # tuple[int, ...]: any length, one type
            item = args[0] if args else str
            return tuple(_parse(p, item, name) for p in parts)
        if len(parts) != len(args):  # tuple[int, float]: one item per declared type
            raise ConfigError(
                f"--{name}: expected {len(args)} comma-separated values "
                f"({', '.join(map(_kind_name, args))}), got {text!r}"
            )
        return tuple(_parse(p, a, name) for p, a in zip(parts, args))
    text = text.strip()
    if kind is bool:
        lowered = text.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"--{name}: expected true or false, got {text!r}")
    if kind is int:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"--{name}: expected int, got {text!r}") from None
    if kind is float:
        try:
            value = float(text)
        except ValueError:
            raise ConfigError(f"--{name}: expected float, got {text!r}") from None
        if not math.isfinite(value):  # inf and nan parse as floats, and poison a run
            raise ConfigError(f"--{name}: expected a finite number, got {text!r}")
        return value
    if kind is str:
        return text
    raise TypeError(
        f"config field {name!r} has a type the command line cannot parse: {kind}"
    )


def _check_type(value, kind, name):
    """Reject a value of the wrong type (ints are fine where floats are expected)."""
    if _is_union(kind):
        if value is None:
            return value
        kind = _optional_inner(kind)
    origin = typing.get_origin(kind)
    if origin in (tuple, list):
        if not isinstance(value, (tuple, list)):
            raise ConfigError(f"{name}: expected a sequence, got {value!r}")
        args = typing.get_args(kind)
        if not args:
            return tuple(value)
        if args[-1] is Ellipsis:
            return tuple(_check_type(v, args[0], name) for v in value)
        if len(value) != len(args):
            raise ConfigError(f"{name}: expected {len(args)} values, got {value!r}")
        return tuple(_check_type(v, a, name) for v, a in zip(value, args))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind in (int, float, str, bool) and (
        not isinstance(value, kind) or (kind is int and isinstance(value, bool))
    ):
        raise ConfigError(f"{name}: expected {kind.__name__}, got {value!r}")
    if kind is float and not math.isfinite(value):
        raise ConfigError(f"{name}: expected a finite number, got {value!r}")
    return value


class FieldError(ConfigError):
    """A ConfigError about one field: the message starts with the field's name, so a
    config that nests the spec can prefix its own (``model.widths=...``)."""


def _is_spec(kind) -> bool:
    return isinstance(kind, type) and issubclass(kind, Spec)


def _check_fields(obj) -> None:
    """Apply every field's type and rule; nested specs may come as dicts."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        kind = hints[f.name]
        value = getattr(obj, f.name)
        if _is_spec(kind):
            value = _nested(f.name, kind, value)
        else:
            value = _check_type(value, kind, f.name)
        object.__setattr__(obj, f.name, value)
        check = f.metadata.get("check")
        # The rules (positive, in_range, ...) hold for each item of a tuple; a
        # chapter's own check sees the whole value.
        each = isinstance(value, tuple) and f.metadata.get("elementwise")
        items = value if each else (value,)
        if (
            check is not None
            and value is not None
            and ((each and not value) or not all(check(v) for v in items))
        ):
            rule = f.metadata["rule"]
            rule = rule() if callable(rule) else rule  # may depend on the machine
            if each:
                rule = (
                    f"each item {rule}"
                    if value
                    else f"needs one or more values (each {rule})"
                )
            raise FieldError(f"{f.name}={_show(value)}: {rule}")


def _nested(name: str, kind, value):
    """``value`` as a ``kind`` spec: an instance, or a dict of its fields (from a
    profile, the command line or a checkpoint); errors name ``name.field``."""
    if isinstance(value, kind):
        return value
    if not isinstance(value, dict):
        raise FieldError(
            f"{name}: expected {kind.__name__} or a dict of its fields, got {value!r}"
        )
    return _within(name, lambda: kind.from_dict(value))


def _within(name: str, build):
    """``build()``, with its errors named as those of the nested spec ``name``:
    ``model.widths=0: ...`` for a field, ``model: ...`` for a cross-field rule."""
    try:
        return build()
    except FieldError as err:
        raise FieldError(f"{name}.{err}") from None
    except ConfigError as err:
        raise FieldError(f"{name}: {err}") from None


def _split(flat: dict) -> dict:
    """``{"model.widths": w, "lr": r}`` -> ``{"model": {"widths": w}, "lr": r}``;
    nested dicts merge with dotted keys (a later key wins)."""
    out: dict = {}
    for key, value in flat.items():
        head, dot, rest = key.partition(".")
        if dot:
            value = {rest: value}
        if isinstance(value, dict) and isinstance(out.get(head), dict):
            out[head] = _split({**_flatten(out[head]), **_flatten(value)})
        elif isinstance(value, dict):
            out[head] = _split(value)
        else:
            out[head] = value
    return out


def _flatten(values: dict, prefix: str = "") -> dict:
    """The inverse of :func:`_split`: nested dicts as dotted keys."""
    out = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def flatten(values: dict) -> dict:
    """A config's ``to_dict()`` with nested specs as dotted keys (``model.widths``)."""
    return _flatten(values)


def _default(f: dataclasses.Field):
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


@dataclass
class Spec:
    """A typed group of settings: a model's architecture, or the knobs of a study.

    Its fields take the same types and rules as a chapter's config. A model's spec
    sits beside the model (as nanoGPT's ``GPTConfig`` beside ``GPT``) and builds
    it; a chapter's config nests specs as fields, and the command line sets their
    fields with dotted keys::

        @dataclass
        class ResNetConfig(TrainConfig):
            model: ResNetSpec = field(default_factory=ResNetSpec, metadata=describe(
                "the classifier"))

        python resnet.py --model.widths=32,64,128
    """

    def __post_init__(self):
        _check_fields(self)
        self.validate()

    def validate(self) -> None:
        """Cross-field checks; raise ConfigError. Subclasses may override."""

    def to_dict(self) -> dict:
        """Plain values only (tuples, nested dicts): JSON and ``weights_only``
        checkpoints hold it, and ``from_dict`` rebuilds the spec from it."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict, base: "Spec | None" = None):
        """The spec with ``values`` (nested dicts or dotted keys) over ``base`` (by
        default the class's defaults); an unknown key is a one-line ConfigError."""
        values = _split(values)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise FieldError(
                f"{unknown[0]}: unknown config key; known keys: "
                f"{', '.join(sorted(fields))}"
            )
        hints = typing.get_type_hints(cls)
        merged = {}
        for name, f in fields.items():
            if not f.init:
                continue
            start = getattr(base, name) if base is not None else None
            if name not in values:
                if base is not None:
                    merged[name] = start
                continue
            value = values[name]
            if _is_spec(hints[name]) and isinstance(value, dict):
                inner = start if start is not None else _default(f)
                value = _within(name, lambda: hints[name].from_dict(value, inner))
            merged[name] = value
        return cls(**merged)

    @classmethod
    def field_kind(cls, key: str):
        """The declared type of a dotted key (``model.widths``), or a ConfigError."""
        hints = typing.get_type_hints(cls)
        head, dot, rest = key.partition(".")
        names = sorted(f.name for f in dataclasses.fields(cls) if f.name in hints)
        if head not in names:
            raise FieldError(
                f"{head}: unknown config key; known keys: {', '.join(names)}"
            )
        kind = hints[head]
        if dot:
            if not _is_spec(kind):
                raise FieldError(
                    f"{head}: is a {_kind_name(kind)}, not a group of "
                    f"settings with keys like {head}.{rest}"
                )
            try:
                return kind.field_kind(rest)
            except FieldError as err:
                raise FieldError(f"{head}.{err}") from None
        if _is_spec(kind):
            first = dataclasses.fields(kind)[0].name
            raise FieldError(
                f"{head}: is a group of settings; set its keys one by one, "
                f"e.g. --{head}.{first}=..."
            )
        return kind

    @classmethod
    def field_lines(cls, prefix: str = "", defaults=None):
        """(dotted key, field, type) of every leaf field, nested specs included;
        ``defaults`` is the instance whose nested specs give the defaults."""
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            kind = hints[f.name]
            if _is_spec(kind):
                inner = (
                    getattr(defaults, f.name) if defaults is not None else _default(f)
                )
                yield from kind.field_lines(f"{prefix}{f.name}.", inner)
            else:
                yield prefix + f.name, f, kind


def _lookup(values: dict, key: str):
    """``values["model"]["widths"]`` for ``model.widths``, or KeyError."""
    for part in key.split("."):
        if not isinstance(values, dict) or part not in values:
            raise KeyError(key)
        values = values[part]
    return values


def _data_errors_in_one_line() -> None:
    """In a script, a data set that is missing or damaged (``scratch.data``'s
    errors, whose message says what to download and where to put it) ends the run
    with that one line and exit code 2, like a config error, not a traceback."""
    previous = sys.excepthook
    if getattr(previous, "_scratch_data", False):
        return

    def hook(kind, value, tb):
        from .data import DatasetDamagedError, DatasetNotFoundError

        if isinstance(value, (DatasetNotFoundError, DatasetDamagedError)):
            prog = (
                os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "chapter"
            )
            sys.stdout.flush()
            print(f"{prog}: error: {value}", file=sys.stderr, flush=True)
            os._exit(2)  # an excepthook cannot choose the exit code otherwise
        previous(kind, value, tb)

    hook._scratch_data = True
    sys.excepthook = hook


@dataclass
class Config(Spec):
    """Base class of every chapter's config (see the module docstring)."""

    profile: str = field(
        default=DEFAULT_PROFILE,
        metadata=choice(*PROFILES, help="tiny: tests, small: CPU, full: GPU"),
    )

    # NumPy's legacy seeding takes 32-bit unsigned seeds only.
    seed: int = field(
        default=0,
        metadata=in_range(
            0, 2**32 - 1, "seeds Python, NumPy and PyTorch: runs repeat exactly"
        ),
    )
    out_dir: str = field(
        default_factory=lambda: os.environ.get("SCRATCH_RUNS", "runs"),
        metadata=describe(
            "runs go to OUT_DIR/<chapter>/: checkpoints, metrics JSON, figures "
            "(default $SCRATCH_RUNS or ./runs)"
        ),
    )

    threads: int = field(
        default=0,
        metadata=non_negative(
            "CPU threads for NumPy's BLAS and PyTorch (0 = their default, one per "
            "core); small "
            "matrices gain nothing from threads, and on a busy CPU threads stall each "
            "other"
        ),
    )

    NAME: ClassVar[str] = "run"  # the chapter's name: its outputs go to out_dir/NAME
    # Overrides per profile; a nested spec's fields as a dict (model=dict(widths=...))
    # or as dotted keys ("model.widths": ...), merged over the spec's defaults.
    PROFILES: ClassVar[dict] = {}

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.NAME

    def check_run_dir(self) -> None:
        """Raise ConfigError if ``run_dir`` holds a run this config must not touch.

        Nothing to check for a run that is not resumable;
        :class:`scratch.train.TrainConfig` compares the config stored in its checkpoints
        with this one.
        """

    # ---- construction -------------------------------------------------------
    @classmethod
    def create(cls, profile: str | None = None, **overrides):
        """The config of ``profile`` (default: $SCRATCH_PROFILE or small) with
        overrides (nested dicts or dotted keys, given as ``**{"model.widths": w}``)."""
        if profile is None:  # not given: the environment, then the default
            profile = os.environ.get("SCRATCH_PROFILE") or DEFAULT_PROFILE
        if profile not in PROFILES:  # also --profile= (empty): never a silent default
            raise ConfigError(
                f"unknown profile {profile!r}: choose one of {', '.join(PROFILES)}"
            )
        values = {
            **_flatten(_split(cls.PROFILES.get(profile, {}))),
            **_flatten(_split(overrides)),
        }
        try:
            return cls.from_dict({**values, "profile": profile})
        except FieldError as err:
            if "unknown config key" in str(err):
                key = str(err).split(":", 1)[0]
                known = str(err).split("known keys: ", 1)[1]
                raise ConfigError(
                    f"unknown config key {key!r}; known keys: {known}"
                ) from None
            raise

    @classmethod
    def parse_args(cls, argv: list[str]):
        """Parse ``--profile P`` / ``--key=value`` / ``--key value`` arguments;
        nested keys are dotted (``--model.widths=32,64``)."""
        profile, overrides = None, {}
        args = list(argv)
        while args:
            arg = args.pop(0)
            if arg in ("-h", "--help"):
                raise _HelpRequested
            if not arg.startswith("--"):
                raise ConfigError(
                    f"unexpected argument {arg!r}: use --key=value (see --help)"
                )
            key, eq, text = arg[2:].partition("=")
            key = key.replace("-", "_")
            if not eq:
                if not args:
                    raise ConfigError(f"--{key}: missing value")
                text = args.pop(0)
            if key == "profile":
                profile = text
                continue
            try:
                kind = cls.field_kind(key)
            except FieldError as err:
                name, _, why = str(err).partition(": ")
                if why.startswith("unknown config key"):
                    raise ConfigError(
                        f"unknown config key {name!r}; {why.split('; ', 1)[1]}"
                    ) from None
                raise ConfigError(f"--{err}") from None
            overrides[key] = _parse(text, kind, key)
        return cls.create(profile, **overrides)

    @classmethod
    def from_cli(cls, argv: list[str] | None = None):
        """The config for this run: from the command line in a script, from the
        environment in a notebook. Errors print one line and exit with code 2."""
        if argv is None:
            # In a Jupyter kernel sys.argv holds the kernel's own arguments.
            argv = [] if _in_notebook() else sys.argv[1:]
        try:
            cfg = cls.parse_args(argv)
            # A run folder left by another config must not be resumed or overwritten
            # silently; checked before the chapter writes anything there.
            cfg.check_run_dir()
        except _HelpRequested:
            print(cls.help())
            raise SystemExit(0)
        except ConfigError as err:
            prog = (
                os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "chapter"
            )
            print(f"{prog}: error: {err}", file=sys.stderr)
            raise SystemExit(2)
        print(cfg.summary())
        if cfg.threads:
            set_threads(cfg.threads)
        if not _in_notebook():
            _data_errors_in_one_line()
        return cfg

    # ---- presentation -------------------------------------------------------
    def summary(self) -> str:
        """The resolved config, one line per field (nested ones dotted), printed at
        the start of a run."""
        flat = {k: v for k, v in _flatten(self.to_dict()).items() if k != "profile"}
        width = max(map(len, flat))
        lines = [f"{type(self).__name__} (profile={self.profile})"]
        lines += [f"  {k:<{width}} = {json.dumps(v)}" for k, v in flat.items()]
        return "\n".join(lines)

    @classmethod
    def profile_table(cls, keys=None, width: int = 88) -> str:
        """The fields (dotted keys) whose values differ between the profiles, one
        row each, with a column per profile: the table a chapter shows in its
        Experiment section. ``keys`` picks and orders the rows instead. A row too
        wide for ``width`` columns is written as one line per profile."""
        values = {p: _flatten(cls.create(p).to_dict()) for p in PROFILES}
        if keys is None:
            keys = [
                k
                for k in values[PROFILES[0]]
                if k not in ("profile", "out_dir")
                and len({json.dumps(values[p][k]) for p in PROFILES}) > 1
            ]
        text = {k: [_show(values[p][k]).strip("'") for p in PROFILES] for k in keys}
        key_w = max([len("field"), *map(len, keys)]) + 2
        fits = {k: v for k, v in text.items() if max(map(len, v)) <= 18}
        col = (
            max([len(p) for p in PROFILES] + [len(t) for v in fits.values() for t in v])
            + 2
        )
        lines = [f"{'field':<{key_w}}" + "".join(f"{p:>{col}}" for p in PROFILES)]
        for k, v in text.items():
            if k in fits and key_w + col * len(PROFILES) <= width:
                lines.append(f"{k:<{key_w}}" + "".join(f"{t:>{col}}" for t in v))
            else:
                lines += [f"{k} ({p}): {t}" for p, t in zip(PROFILES, v)]
        return "\n".join(lines)

    @classmethod
    def help(cls) -> str:
        """The text of ``--help``: every field (nested ones dotted) with its type,
        defaults per profile and why."""
        lines = [
            f"usage: python {os.path.basename(sys.argv[0] or 'chapter.py')} "
            "[--profile tiny|small|full] [--key=value ...]",
            "  (the profile may also come from SCRATCH_PROFILE; default "
            f"{DEFAULT_PROFILE})",
            "",
            "fields:",
        ]
        profiles = {p: _split(cls.PROFILES.get(p, {})) for p in PROFILES}
        for key, f, kind in cls.field_lines():
            if key == "profile":
                continue
            default = _default_of(cls, key)
            per = []
            for p in PROFILES:
                try:
                    value = _lookup(profiles[p], key)
                except KeyError:
                    value = default
                per.append(f"{p}={json.dumps(_plain(value))}")
            text = f.metadata.get("help", "")
            rule = f.metadata.get("rule", "")
            rule = rule() if callable(rule) else rule
            lines.append(
                f"  --{key} ({_kind_name(kind)}): {text}"
                + (f" [{rule}]" if rule else "")
            )
            lines.append(f"      {', '.join(per)}")
        return "\n".join(lines)


def _default_of(cls, key: str):
    """The class default of a dotted key, through the nested specs' defaults."""
    head, dot, rest = key.partition(".")
    f = next(f for f in dataclasses.fields(cls) if f.name == head)
    value = _default(f)
    for part in rest.split(".") if dot else ():
        value = getattr(value, part)
    return value


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def _show(value) -> str:
    """A value as the user would type it: ``3,4`` for a tuple, ``''`` for nothing."""
    if isinstance(value, tuple):
        return ",".join(map(str, value)) if value else "''"
    return repr(value)


def set_threads(n: int) -> None:
    """Use ``n`` CPU threads in NumPy's BLAS (process-wide) and in PyTorch, if
    imported."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)


class _HelpRequested(Exception):
    pass


def _in_notebook() -> bool:
    """True inside a Jupyter kernel (the book build, JupyterLab, Colab)."""
    return "ipykernel" in sys.modules and "IPython" in sys.modules
