"""Every chapter runs end to end as a script in the tiny profile, and rejects bad input."""
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, chapters

SCRIPTS = [ROOT / "code" / p.relative_to(ROOT / "book").with_suffix(".py") for p in chapters()]
ids = [str(s.relative_to(ROOT / "code")) for s in SCRIPTS]


def run(script, *args, cwd):
    env = {**os.environ, "SCRATCH_PROFILE": "tiny", "SCRATCH_PROGRESS": "0", "MPLBACKEND": "Agg"}
    env.pop("SCRATCH_BUILD", None)
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


@pytest.mark.parametrize("script", SCRIPTS, ids=ids)
def test_chapter_runs_in_tiny_profile(script, tmp_path):
    # From another working directory: nothing may depend on where it is started.
    result = run(script, "--profile", "tiny", f"--out_dir={tmp_path}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "(profile=tiny)" in result.stdout  # the resolved config is printed first
    records = list(tmp_path.rglob("metrics.json"))
    assert len(records) == 1, "each run writes one metrics.json"
    record = json.loads(records[0].read_text())
    assert record["profile"] == "tiny" and record["metrics"] and record["machine"]["cpu_count"]


@pytest.mark.parametrize("script", SCRIPTS, ids=ids)
@pytest.mark.parametrize("args, message", [
    (["--no_such_field=1"], "unknown config key 'no_such_field'"),
    (["--profile=enormous"], "unknown profile 'enormous'"),
    (["--seed=abc"], "--seed: expected int, got 'abc'"),
])
def test_chapter_rejects_bad_config_with_one_line(script, args, message, tmp_path):
    result = run(script, *args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=ids)
def test_chapter_help(script, tmp_path):
    result = run(script, "--help", cwd=tmp_path)
    assert result.returncode == 0 and "--seed" in result.stdout and "usage:" in result.stdout
