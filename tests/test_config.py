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
    (["--seed=-1"], "seed=-1: must be in [0, 4294967295]"),
    (["--seed=5000000000"], "seed=5000000000: must be in [0, 4294967295]"),
])
def test_values_that_used_to_slip_through(argv, message, monkeypatch):
    monkeypatch.delenv("SCRATCH_PROFILE", raising=False)
    with pytest.raises(ConfigError) as err:
        Typed.parse_args(argv)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_non_finite_values_from_code_are_rejected_too():
    with pytest.raises(ConfigError, match="lr: expected a finite number"):
        Typed.create("tiny", lr=float("inf"))


# ---- nested specs: a model's settings inside a chapter's config -------------------
from scratch.config import FieldError, Spec, flatten, in_range  # noqa: E402


@dataclass
class NetSpec(Spec):
    widths: tuple[int, ...] = field(default=(16, 32), metadata=positive("channels"))
    depth: int = field(default=2, metadata=positive("stages"))
    drop: float = field(default=0.1, metadata=in_range(0, 1, "dropout", high_open=True))

    def validate(self):
        if len(self.widths) != self.depth:
            raise ConfigError(f"widths={self.widths} needs depth={self.depth} entries")


@dataclass
class NestedConfig(TrainConfig):
    NAME = "nested"
    model: NetSpec = field(default_factory=lambda: NetSpec(widths=(8, 8, 8), depth=3))
    lr: float = field(default=0.1, metadata=positive("step size"))

    PROFILES = {"tiny": dict(model=dict(widths=(4, 4, 4)), epochs=1),
                "full": {"model.drop": 0.3}}


def test_nested_spec_merges_default_profile_and_command_line():
    small = NestedConfig.create("small")
    assert small.model == NetSpec(widths=(8, 8, 8), depth=3, drop=0.1)  # the config's default
    tiny = NestedConfig.create("tiny")
    assert tiny.model.widths == (4, 4, 4) and tiny.model.depth == 3  # profile over default
    assert NestedConfig.create("full").model.drop == 0.3  # dotted keys in a profile too
    cli = NestedConfig.parse_args(["--profile=tiny", "--model.widths=5,6", "--model.depth", "2"])
    assert cli.model == NetSpec(widths=(5, 6), depth=2, drop=0.1) and cli.epochs == 1
    assert flatten(cli.to_dict())["model.widths"] == (5, 6)
    assert "  model.widths" in cli.summary()


@pytest.mark.parametrize("argv, message", [
    (["--model.wdiths=4"], "unknown config key 'model.wdiths'; known keys: depth, drop, widths"),
    (["--model=4"], "--model: is a group of settings; set its keys one by one"),
    (["--lr.x=1"], "--lr: is a float, not a group of settings"),
    (["--model.widths=4,0,4"], "model.widths=4,0,4: each item must be > 0"),
    (["--model.drop=1"], r"model.drop=1.0: must be in \[0, 1\)"),
    (["--model.depth=x"], "--model.depth: expected int, got 'x'"),
    (["--model.depth=2"], r"model: widths=\(8, 8, 8\) needs depth=2 entries"),  # validate()
])
def test_nested_mistakes_name_the_dotted_key(argv, message):
    with pytest.raises(ConfigError, match=message):
        NestedConfig.parse_args(argv)


def test_nested_help_lists_dotted_keys_with_profile_defaults():
    text = NestedConfig.help()
    assert "--model.widths (tuple): channels [must be > 0]" in text
    assert 'tiny=[4, 4, 4], small=[8, 8, 8], full=[8, 8, 8]' in text
    assert "--model.drop (float): dropout [must be in [0, 1)]" in text
    assert "tiny=0.1, small=0.1, full=0.3" in text


def test_spec_from_dict_round_trips_and_rejects_unknown_keys():
    spec = NetSpec(widths=(1, 2, 3), depth=3)
    assert NetSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(FieldError, match="size: unknown config key"):
        NetSpec.from_dict({"size": 3})
    # a dict where a spec belongs (a checkpoint's config) is rebuilt and checked
    cfg = NestedConfig(model={"widths": [2, 2], "depth": 2})
    assert cfg.model == NetSpec(widths=(2, 2), depth=2)
    with pytest.raises(ConfigError, match="model.depth=0: must be > 0"):
        NestedConfig(model={"depth": 0})


def test_in_range_ends():
    closed, half = in_range(1, 3), in_range(1, 3, low_open=True)
    assert closed["rule"] == "must be in [1, 3]" and half["rule"] == "must be in (1, 3]"
    assert closed["check"](1) and not half["check"](1) and half["check"](3)
    assert not in_range(0, 1, high_open=True)["check"](1)


def test_resume_names_a_changed_nested_field(tmp_path):
    from scratch.train import check_resumable
    old = NestedConfig.create("tiny", out_dir=str(tmp_path))
    new = NestedConfig.create("tiny", out_dir=str(tmp_path), **{"model.widths": (4, 4, 5)})
    with pytest.raises(ConfigError, match=r"model.widths \[4, 4, 4\] -> \[4, 4, 5\]"):
        check_resumable({"config": old.to_dict()}, new, tmp_path / "last.pt")
    check_resumable({"config": old.to_dict()}, old, tmp_path / "last.pt")  # same: fine
