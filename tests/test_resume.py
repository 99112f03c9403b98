"""A run never reports results under a config that did not produce them: end to end
through a chapter script (LeNet-5, tiny profile), as a user would type it."""
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT

LENET = ROOT / "code" / "vision" / "lenet.py"


def lenet(out, *args):
    env = {**os.environ, "SCRATCH_PROFILE": "tiny", "SCRATCH_PROGRESS": "0", "MPLBACKEND": "Agg"}
    env.pop("SCRATCH_BUILD", None)
    return subprocess.run([sys.executable, str(LENET), f"--out_dir={out}", *args], capture_output=True,
                          text=True, env=env, cwd=out, timeout=300)


def snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("lenet")
    run = lenet(out)
    assert run.returncode == 0, run.stderr[-3000:]
    return out


@pytest.mark.parametrize("args, expected", [
    (["--epochs=1", "--lr=0.05"], "lr 0.1 -> 0.05"),                  # the reproduction
    (["--model.modern=true"], "model.modern false -> true"),                      # another architecture
    (["--epochs=3"], "epochs 1 -> 3 (the schedule depends on the run's length)"),  # one-cycle
    (["--train_size=500"], "train_size 600 -> 500"),
])
def test_another_config_stops_before_touching_the_run(first_run, tmp_path, args, expected):
    before = snapshot(first_run / "lenet")
    run = lenet(first_run, *args)
    assert run.returncode == 2, run.stdout[-2000:] + run.stderr[-2000:]
    err = run.stderr.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    assert expected in err and "--resume=false" in err and "--out_dir" in err
    assert snapshot(first_run / "lenet") == before  # nothing in the run folder was overwritten


def test_same_config_resumes_and_neutral_fields_do_not_count(first_run):
    run = lenet(first_run, "--threads=2", "--num_workers=0")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "resumed from" in run.stdout and "after epoch 1" in run.stdout
    record = json.loads((first_run / "lenet" / "metrics.json").read_text())
    assert record["config"]["lr"] == 0.1 and record["config"]["epochs"] == 1


def test_resume_false_starts_over_and_records_the_config_that_trained(first_run):
    run = lenet(first_run, "--lr=0.05", "--resume=false")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "resumed from" not in run.stdout
    record = json.loads((first_run / "lenet" / "metrics.json").read_text())
    assert record["config"]["lr"] == 0.05 and record["config"]["resume"] is False
    assert record["commit"] and isinstance(record["dirty"], bool)
    # The new checkpoint now holds lr 0.05: the default config is refused in turn.
    again = lenet(first_run)
    assert again.returncode == 2 and "lr 0.05 -> 0.1" in again.stderr


def test_another_out_dir_is_a_separate_run(first_run, tmp_path):
    run = lenet(tmp_path, "--lr=0.05")
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads((tmp_path / "lenet" / "metrics.json").read_text())["config"]["lr"] == 0.05
