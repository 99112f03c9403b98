"""The config system: profiles, overrides, types, and one-line errors."""
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Optional

import pytest

from scratch.config import Config, ConfigError, choice, describe, positive, unit_interval
from scratch.train import TrainConfig


@dataclass
class DemoConfig(TrainConfig):
    NAME = "demo"
    lr: float = field(default=0.1, metadata=positive("step size"))
    dropout: float = field(default=0.0, metadata=unit_interval("drop probability"))
    widths: tuple[int, ...] = (16, 16)
    act: str = field(default="relu", metadata=choice("relu", "tanh"))
    limit: Optional[int] = None

    PROFILES = {"tiny": dict(epochs=1, widths=(4,)), "full": dict(epochs=30, lr=0.05)}


def test_profiles_and_overrides(monkeypatch):
    monkeypatch.delenv("SCRATCH_PROFILE", raising=False)
    assert DemoConfig.create().profile == "small"
    full = DemoConfig.parse_args(["--profile", "full", "--lr=0.3"])
    assert (full.profile, full.epochs, full.lr) == ("full", 30, 0.3)  # override beats profile
    tiny = DemoConfig.parse_args(["--profile=tiny", "--widths=8,4", "--resume=false", "--limit", "none"])
    assert tiny.widths == (8, 4) and tiny.resume is False and tiny.limit is None and tiny.epochs == 1
    assert DemoConfig.parse_args(["--batch-size=32"]).batch_size == 32  # dashes work too
    monkeypatch.setenv("SCRATCH_PROFILE", "tiny")
    assert DemoConfig.create().profile == "tiny"
    assert DemoConfig.parse_args(["--profile=full"]).profile == "full"  # the flag beats the variable


def test_ints_are_accepted_for_floats_but_not_the_reverse():
    assert DemoConfig.create(lr=1).lr == 1.0 and isinstance(DemoConfig.create(lr=1).lr, float)
    with pytest.raises(ConfigError, match="epochs: expected int"):
        DemoConfig.create(epochs=2.5)
    with pytest.raises(ConfigError, match="expected int"):
        DemoConfig.create(epochs=True)


@pytest.mark.parametrize("argv, message", [
    (["--foo=1"], "unknown config key 'foo'"),
    (["--lr=abc"], "--lr: expected float, got 'abc'"),
    (["--batch_size=-3"], "batch_size=-3: must be > 0"),
    (["--epochs=0"], "epochs=0: must be > 0"),
    (["--dropout=1.5"], "dropout=1.5: must be in [0, 1)"),
    (["--act=gelu"], "must be one of relu, tanh"),
    (["--profile=huge"], "unknown profile 'huge'"),
    (["--resume=maybe"], "expected true or false"),
    (["positional"], "unexpected argument"),
    (["--lr"], "--lr: missing value"),
])
def test_mistakes_raise_one_line(argv, message):
    with pytest.raises(ConfigError) as err:
        DemoConfig.parse_args(argv)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_from_cli_exits_2_with_one_line(capsys):
    with pytest.raises(SystemExit) as stop:
        DemoConfig.from_cli(["--batch_size=-1"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "batch_size=-1: must be > 0" in err


def test_from_cli_prints_the_resolved_config(capsys):
    cfg = DemoConfig.from_cli(["--profile=tiny", "--lr=0.5"])
    out = capsys.readouterr().out
    assert "DemoConfig (profile=tiny)" in out and "lr" in out and "0.5" in out
    assert cfg.run_dir.name == "demo"


def test_help_lists_every_field_with_profiles(capsys):
    with pytest.raises(SystemExit) as stop:
        DemoConfig.from_cli(["--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    for name in ("--lr", "--epochs", "--batch_size", "--widths", "--act", "--precision"):
        assert name in text
    assert "tiny=1, small=1, full=30" in text  # epochs per profile


def test_rules_on_tuples_hold_for_each_item():
    @dataclass
    class Sizes(Config):
        sizes: tuple[int, ...] = field(default=(2, 8), metadata=positive("batch sizes"))

    assert Sizes.parse_args(["--sizes=4,16"]).sizes == (4, 16)
    with pytest.raises(ConfigError, match=r"sizes=4,-1: each item must be > 0"):
        Sizes.parse_args(["--sizes=4,-1"])


def test_validate_hook_for_cross_field_rules():
    @dataclass
    class Pair(Config):
        lo: int = 0
        hi: int = 1

        def validate(self):
            if self.lo >= self.hi:
                raise ConfigError(f"lo={self.lo} must be below hi={self.hi}")

    assert Pair.create(lo=1, hi=2).hi == 2
    with pytest.raises(ConfigError, match="must be below"):
        Pair.create(lo=3, hi=2)


def test_in_a_script_errors_have_no_traceback(tmp_path):
    script = tmp_path / "chapter.py"
    script.write_text((
        "from dataclasses import dataclass\nfrom scratch.train import TrainConfig\n"
        "@dataclass\nclass C(TrainConfig):\n    pass\nC.from_cli()\n"))
    run = subprocess.run([sys.executable, str(script), "--epochs=-2"], capture_output=True, text=True)
    assert run.returncode == 2
    assert run.stderr.strip() == "chapter.py: error: epochs=-2: must be > 0"


# ---- bad input found in review: one line each, never a traceback or a silent default ----
@dataclass
class Typed(Config):
    limit: int | None = field(default=None, metadata=describe("PEP 604 optional"))
    old_style: Optional[float] = field(default=None, metadata=describe("typing.Optional"))
    pair: tuple[int, float] = field(default=(1, 0.5), metadata=describe("a mixed tuple"))
    widths: tuple[int, ...] = field(default=(8, 16), metadata=positive("one or more widths"))
    lr: float = field(default=0.1, metadata=positive("step size"))


def test_optional_fields_parse_their_inner_type():
    assert Typed.parse_args(["--limit=5"]).limit == 5  # was the string '5'
    assert Typed.parse_args(["--limit=none"]).limit is None
    assert Typed.parse_args(["--old_style=0.5"]).old_style == 0.5
    with pytest.raises(ConfigError, match=r"--limit: expected int, got 'five'"):
        Typed.parse_args(["--limit=five"])


def test_mixed_tuples_parse_each_position():
    assert Typed.parse_args(["--pair=3,0.25"]).pair == (3, 0.25)
    with pytest.raises(ConfigError, match=r"--pair: expected 2 comma-separated values \(int, float\)"):
        Typed.parse_args(["--pair=3"])
    with pytest.raises(ConfigError, match=r"--pair: expected int, got '0.5'"):
        Typed.parse_args(["--pair=0.5,3"])


@pytest.mark.parametrize("argv, message", [
    (["--widths="], "widths='': needs one or more values (each must be > 0)"),
    (["--widths=8,,16"], "--widths: empty item in '8,,16'"),
    (["--lr=inf"], "--lr: expected a finite number, got 'inf'"),
    (["--lr=nan"], "--lr: expected a finite number, got 'nan'"),
    (["--profile="], "unknown profile ''"),
    (["--seed=-1"], "seed=-1: must be in [0, 2**32 - 1]"),
    (["--seed=5000000000"], "seed=5000000000: must be in [0, 2**32 - 1]"),
])
def test_values_that_used_to_slip_through(argv, message, monkeypatch):
    monkeypatch.delenv("SCRATCH_PROFILE", raising=False)
    with pytest.raises(ConfigError) as err:
        Typed.parse_args(argv)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_non_finite_values_from_code_are_rejected_too():
    with pytest.raises(ConfigError, match="lr: expected a finite number"):
        Typed.create("tiny", lr=float("inf"))
