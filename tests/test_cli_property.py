"""Every chapter's command line rejects bad input with one line and exit code 2.

Hypothesis generates bad values for every field of every chapter's config (wrong
types, empty values, non-finite numbers, values outside the field's rule, unknown
keys and profiles) and drives the chapter's own parser (its config class, loaded
from the script without running the chapter) through ``from_cli``.
"""
import dataclasses
import math
import re
import typing

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT, chapters
from scratch import config as config_module

SCRIPTS = [ROOT / "code" / p.relative_to(ROOT / "book").with_suffix(".py") for p in chapters()]
CLI_LINE = re.compile(r"^cfg = (\w+)\.from_cli\(\)", re.M)


def chapter_config(script):
    """The chapter's config class: the script's code up to its ``from_cli()`` line (imports
    and the config's definition), run without the chapter itself."""
    source = script.read_text()
    match = CLI_LINE.search(source)
    assert match, f"{script.name} does not read its config with `cfg = X.from_cli()`"
    namespace = {"__name__": f"chapter_{script.stem}", "__file__": str(script)}
    exec(compile(source[:match.start()], str(script), "exec"), namespace)
    return namespace[match.group(1)]


CONFIGS = {s.stem: chapter_config(s) for s in SCRIPTS}
words = st.text(st.characters(codec="ascii", categories=("L", "N")), min_size=1, max_size=8)
not_a_number = st.sampled_from(["abc", "1x", "--", "one", "0x1g", "1e", "[]", "true?"])


def _base(kind):
    if typing.get_origin(kind) in (typing.Union, __import__("types").UnionType):
        return next(a for a in typing.get_args(kind) if a is not type(None))
    return kind


def bad_values(cls):
    """(field, text) pairs that must each be rejected by ``cls``'s parser."""
    hints = typing.get_type_hints(cls)
    options = []
    for f in dataclasses.fields(cls):
        if f.name == "profile":
            continue
        kind, rule = _base(hints[f.name]), f.metadata.get("rule", "")
        rule = rule() if callable(rule) else rule
        origin = typing.get_origin(kind)
        name = st.just(f.name)
        if origin in (tuple, list):
            item = _base(typing.get_args(kind)[0])
            if item in (int, float):
                options.append(st.tuples(name, not_a_number.map(lambda t: f"1,{t}")))
                options.append(st.tuples(name, st.just("1,,2")))
            if f.metadata.get("elementwise"):
                options.append(st.tuples(name, st.just("")))  # an empty tuple is never meant
        elif kind is bool:
            options.append(st.tuples(name, st.sampled_from(["", "maybe", "2", "yes please"])))
        elif kind in (int, float):
            options.append(st.tuples(name, not_a_number | st.just("")))
            if kind is int:
                options.append(st.tuples(name, st.floats(0.1, 9.9).map(lambda v: f"{v:.2f}")))
            else:
                options.append(st.tuples(name, st.sampled_from(["inf", "-inf", "nan", "1e999"])))
            if rule == "must be > 0":
                options.append(st.tuples(name, st.integers(-10**6, 0).map(str)))
            elif rule == "must be >= 0":
                options.append(st.tuples(name, st.integers(-10**6, -1).map(str)))
            elif rule.startswith("must be in [0, 1)"):
                options.append(st.tuples(name, st.sampled_from(["1", "1.5", "-0.1", "7"])))
            elif f.name == "seed":
                options.append(st.tuples(name, st.sampled_from(["-1", "4294967296", "5000000000"])))
        if rule.startswith("must be one of") and kind is str:
            options.append(st.tuples(name, words.filter(lambda w, r=rule: w not in r)))
    options.append(st.tuples(words.map(lambda w: f"no_such_{w}"), st.just("1")))  # unknown key
    options.append(st.tuples(st.just("profile"), st.sampled_from(["", "huge", "Small", "tiny2"])))
    return st.one_of(options)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_bad_value_gives_one_line_and_exit_2(name, capsys, tmp_path, monkeypatch):
    cls = CONFIGS[name]
    monkeypatch.setenv("SCRATCH_RUNS", str(tmp_path))
    monkeypatch.delenv("SCRATCH_PROFILE", raising=False)

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(bad_values(cls), st.sampled_from(["tiny", "small", "full"]), st.booleans())
    def check(pair, profile, separate):
        key, text = pair
        arg = [f"--{key}", text] if separate and text else [f"--{key}={text}"]
        argv = (["--profile", profile] if key != "profile" else []) + arg
        with pytest.raises(SystemExit) as exit:
            cls.from_cli(argv)
        err = capsys.readouterr().err
        assert exit.value.code == 2, (argv, err)
        assert err.strip() and err.strip().count("\n") == 0, (argv, err)
        assert "Traceback" not in err and "error:" in err, (argv, err)

    check()


def test_the_generator_finds_real_mistakes():
    """The property is not vacuous: a parser that accepted inf (as it once did) fails it."""
    @dataclasses.dataclass
    class C(config_module.Config):
        lr: float = dataclasses.field(default=0.1, metadata=config_module.positive("step"))

    with pytest.raises(SystemExit):
        C.from_cli(["--lr=inf"])
    original = config_module.math.isfinite
    try:
        config_module.math.isfinite = lambda v: True  # break the rule once
        assert C.parse_args(["--lr=inf"]).lr == math.inf
    finally:
        config_module.math.isfinite = original
