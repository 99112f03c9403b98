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


def unit_interval(help: str = "") -> dict:
    """Field metadata: the value must lie in [0, 1)."""
    return _rule(lambda v: 0 <= v < 1, "must be in [0, 1)", help)


def choice(*options, help: str = "") -> dict:
    """Field metadata: the value must be one of ``options``."""
    return _rule(lambda v: v in options, "must be one of " + ", ".join(map(str, options)), help)


def describe(help: str) -> dict:
    """Field metadata with only a help text."""
    return {"help": help}


def _is_union(kind) -> bool:
    """``Optional[X]`` and ``X | None`` (PEP 604) are both unions."""
    return typing.get_origin(kind) in (typing.Union, types.UnionType)


def _optional_inner(kind):
    """``X`` for ``X | None``; a union of two real types is not supported in a config."""
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
            raise ConfigError(f"--{name}: empty item in {text!r}; write items separated by commas")
        if not args or args[-1] is Ellipsis:  # tuple[int, ...]: any length, one type
            item = args[0] if args else str
            return tuple(_parse(p, item, name) for p in parts)
        if len(parts) != len(args):  # tuple[int, float]: one item per declared type
            raise ConfigError(f"--{name}: expected {len(args)} comma-separated values "
                              f"({', '.join(map(_kind_name, args))}), got {text!r}")
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
    raise TypeError(f"config field {name!r} has a type the command line cannot parse: {kind}")


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
            not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
        raise ConfigError(f"{name}: expected {kind.__name__}, got {value!r}")
    if kind is float and not math.isfinite(value):
        raise ConfigError(f"{name}: expected a finite number, got {value!r}")
    return value


@dataclass
class Config:
    """Base class of every chapter's config (see the module docstring)."""

    profile: str = field(default=DEFAULT_PROFILE,
                         metadata=choice(*PROFILES, help="tiny: tests, small: CPU, full: GPU"))

    seed: int = field(default=0, metadata={
        "help": "seeds Python, NumPy and PyTorch: runs repeat exactly",
        # NumPy's legacy seeding takes 32-bit unsigned seeds only.
        "check": lambda v: 0 <= v < 2**32, "rule": "must be in [0, 2**32 - 1]"})
    out_dir: str = field(default_factory=lambda: os.environ.get("SCRATCH_RUNS", "runs"), metadata=describe(
        "runs go to OUT_DIR/<chapter>/: checkpoints, metrics JSON, figures (default $SCRATCH_RUNS or ./runs)"))

    threads: int = field(default=0, metadata=non_negative(
        "CPU threads for NumPy's BLAS and PyTorch (0 = their default, one per core); small "
        "matrices gain nothing from threads, and on a busy CPU threads stall each other"))

    NAME: ClassVar[str] = "run"  # the chapter's name: its outputs go to out_dir/NAME
    PROFILES: ClassVar[dict] = {}

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.NAME

    def __post_init__(self):
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = _check_type(getattr(self, f.name), hints[f.name], f.name)
            object.__setattr__(self, f.name, value)
            check = f.metadata.get("check")
            # The rules below (positive, ...) hold for each item of a tuple; a chapter's
            # own check sees the whole value.
            each = isinstance(value, tuple) and f.metadata.get("elementwise")
            items = value if each else (value,)
            if check is not None and value is not None and (
                    (each and not value) or not all(check(v) for v in items)):
                rule = f.metadata["rule"]
                rule = rule() if callable(rule) else rule  # a rule may depend on the machine
                if each:
                    rule = f"each item {rule}" if value else f"needs one or more values (each {rule})"
                raise ConfigError(f"{f.name}={_show(value)}: {rule}")
        self.validate()

    def validate(self) -> None:
        """Cross-field checks; raise ConfigError. Chapters may override."""

    def check_run_dir(self) -> None:
        """Raise ConfigError if ``run_dir`` holds a run this config must not touch.

        Nothing to check for a run that is not resumable; :class:`scratch.train.TrainConfig`
        compares the config stored in its checkpoints with this one.
        """

    # ---- construction -------------------------------------------------------
    @classmethod
    def create(cls, profile: str | None = None, **overrides):
        """The config of ``profile`` (default: $SCRATCH_PROFILE or small) with overrides."""
        if profile is None:  # not given: the environment, then the default
            profile = os.environ.get("SCRATCH_PROFILE") or DEFAULT_PROFILE
        if profile not in PROFILES:  # also --profile= (empty): never a silent default
            raise ConfigError(f"unknown profile {profile!r}: choose one of {', '.join(PROFILES)}")
        names = {f.name for f in dataclasses.fields(cls)}
        values = {**cls.PROFILES.get(profile, {}), **overrides}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"unknown config key {unknown[0]!r}; known keys: {', '.join(sorted(names))}")
        return cls(profile=profile, **values)

    @classmethod
    def parse_args(cls, argv: list[str]):
        """Parse ``--profile P`` / ``--key=value`` / ``--key value`` arguments."""
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        profile, overrides = None, {}
        args = list(argv)
        while args:
            arg = args.pop(0)
            if arg in ("-h", "--help"):
                raise _HelpRequested
            if not arg.startswith("--"):
                raise ConfigError(f"unexpected argument {arg!r}: use --key=value (see --help)")
            key, eq, text = arg[2:].partition("=")
            key = key.replace("-", "_")
            if not eq:
                if not args:
                    raise ConfigError(f"--{key}: missing value")
                text = args.pop(0)
            if key == "profile":
                profile = text
            elif key not in names:
                raise ConfigError(f"unknown config key {key!r}; known keys: {', '.join(sorted(names))}")
            else:
                overrides[key] = _parse(text, hints[key], key)
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
            prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "chapter"
            print(f"{prog}: error: {err}", file=sys.stderr)
            raise SystemExit(2)
        print(cfg.summary())
        if cfg.threads:
            set_threads(cfg.threads)
        return cfg

    # ---- presentation -------------------------------------------------------
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def summary(self) -> str:
        """The resolved config, one line per field, printed at the start of a run."""
        width = max(len(f.name) for f in dataclasses.fields(self))
        lines = [f"{type(self).__name__} (profile={self.profile})"]
        for f in dataclasses.fields(self):
            if f.name != "profile":
                lines.append(f"  {f.name:<{width}} = {json.dumps(getattr(self, f.name))}")
        return "\n".join(lines)

    @classmethod
    def help(cls) -> str:
        """The text of ``--help``: every field with its type, defaults per profile and why."""
        hints = typing.get_type_hints(cls)
        lines = [f"usage: python {os.path.basename(sys.argv[0] or 'chapter.py')} "
                 "[--profile tiny|small|full] [--key=value ...]",
                 f"  (the profile may also come from SCRATCH_PROFILE; default {DEFAULT_PROFILE})", "",
                 "fields:"]
        for f in dataclasses.fields(cls):
            if f.name == "profile":
                continue
            kind = getattr(hints[f.name], "__name__", str(hints[f.name]))
            default = f.default_factory() if f.default is dataclasses.MISSING else f.default
            per = ", ".join(f"{p}={json.dumps(cls.PROFILES.get(p, {}).get(f.name, default))}"
                            for p in PROFILES)
            text = f.metadata.get("help", "")
            rule = f.metadata.get("rule", "")
            rule = rule() if callable(rule) else rule
            lines.append(f"  --{f.name} ({kind}): {text}" + (f" [{rule}]" if rule else ""))
            lines.append(f"      {per}")
        return "\n".join(lines)


def _show(value) -> str:
    """A value as the user would type it: ``3,4`` for a tuple, ``''`` for nothing."""
    if isinstance(value, tuple):
        return ",".join(map(str, value)) if value else "''"
    return repr(value)


def set_threads(n: int) -> None:
    """Use ``n`` CPU threads in NumPy's BLAS (process-wide) and in PyTorch, if imported."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)


class _HelpRequested(Exception):
    pass


def _in_notebook() -> bool:
    """True inside a Jupyter kernel (the book build, JupyterLab, Colab)."""
    return "ipykernel" in sys.modules and "IPython" in sys.modules
