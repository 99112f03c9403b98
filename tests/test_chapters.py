"""Every chapter runs end to end as a script in the tiny profile, learns something
(its headline metric clears a floor that chance cannot reach), writes only finite
numbers, and rejects bad input."""
import json
import math
import os
import subprocess
import sys

import pytest

from conftest import ROOT, chapters

# The headline metric of each chapter's tiny run and the floor it must clear: "a/b"
# is metrics["a"]["b"]. A floor sits well above chance and well below what the tiny
# run measured with --seed=0 and --seed=1 (this machine's offline data: MNIST is
# the 8,000 / 2,000 stand-in of shared/data). A new chapter must add its line here.
FLOORS = {
    "foundations/activations": ("selu_test_accuracy", 0.35),     # MNIST: chance 0.10; tiny 0.71, 0.585
    "foundations/autograd": ("test_accuracy", 0.80),              # two moons: chance 0.50; tiny 0.905, 0.92
    "foundations/cnn": ("test_accuracy_mean", 0.22),              # MNIST: chance 0.10; tiny 0.564, 0.356
    "foundations/mlp": ("test_accuracy", 0.75),                   # digits: chance 0.10; tiny 0.90, 0.924
    "foundations/normalization": ("final_accuracy/BatchNorm @ 1", 0.30),  # MNIST: chance 0.10; tiny 0.525, 0.51
    "foundations/numpy_to_pytorch": ("engine_test_accuracy", 0.15),  # digits: chance 0.10; tiny 0.244, 0.218 (450 images)
    "foundations/optimizers": ("mnist/Adam/test_accuracy", 0.30),    # MNIST: chance 0.10; tiny 0.515, 0.465
    "foundations/regularization": ("none_test_acc", 0.16),        # MNIST: chance 0.10; tiny 0.252, 0.227 (2,000 images)
    "foundations/schedules": ("final_test_accuracy/cosine", 0.20),  # MNIST: chance 0.10; tiny 0.293, 0.473
    "vision/adversarial": ("clean_acc", 0.25),    # CIFAR-10: chance 0.10; tiny 0.42, 0.40 (100 images): resnet's tiny ResNet
    "vision/allcnn": ("test_acc", 0.18),         # CIFAR-10: chance 0.10; tiny 0.305, 0.320 (4 epochs of 2,048 images)
    "vision/alexnet": ("test_top1", 0.20),        # CIFAR-10: chance 0.10; tiny 0.301, 0.316 (3 epochs of 1,408 images)
    "vision/features": ("acc/CNN", 0.60),         # MNIST: chance 0.10; tiny 0.836, 0.852
    "vision/lenet": ("test_acc", 0.40),           # MNIST: chance 0.10; tiny 0.62, 0.618
    "vision/resnet": ("test_acc", 0.25),          # CIFAR-10: chance 0.10; tiny 0.391, 0.355 (5 epochs of 2,048 images)
    "vision/densenet": ("densenet_test_acc", 0.12),  # CIFAR-10: chance 0.10; tiny 0.164, 0.199 (a 0.04M-parameter DenseNet-BC)
    "vision/unet": ("test_dice", 0.35),           # all-foreground Dice ~0.25; tiny 0.507, 0.477, 0.557 (seeds 0-2)
    # Language models: nats per character below the uniform model's ln 27 = 3.30.
    "sequences/bigram": ("test_nats_below_uniform", 0.5),  # tiny 0.79, 0.85 (seeds 0, 1)
    "sequences/mlp_lm": ("val_nats_below_uniform", 0.5),   # tiny 0.86, 0.81
    # Tiny Shakespeare: nats per character below the uniform model's ln 65 = 4.17.
    "sequences/rnn": ("val_nats_below_uniform", 0.4),      # tiny 0.79, 0.87
    "sequences/lstm": ("lstm_val_nats_below_uniform", 0.3),  # tiny 1.47, 1.44 (1.5 s of training)
    "sequences/forecasting": ("lstm_mae_gain_over_persistence", 0.5),  # ppm of CO2 saved over persistence; tiny 1.99, 2.01
    "sequences/attention": ("attention_exact_match", 0.4),  # numbers to words, greedy exact match: tiny 0.753, 0.760 (no attention 0.09, 0.14)
    "sequences/gpt": ("val_nats_below_uniform", 0.9),  # chars: uniform ln 65 = 4.17, unigram 3.35 (0.83 below); tiny 1.22, 1.09
    "sequences/vit": ("test_acc", 0.14),          # CIFAR-10: chance 0.10; tiny 0.266, 0.207 (4 epochs of 2,048 images; its ResNet 0.359, 0.383)
    "sequences/transformer": ("transformer_exact_match", 0.3),  # numbers to words, greedy exact match (chance 0): tiny 0.55, 0.73 (attention GRU 0.75, 0.695)
    "sequences/text_classification": ("transformer_test_acc", 0.30),  # 5 speakers: majority 0.24; tiny 0.406, 0.354
    "sequences/tokenization": ("chars_per_token", 1.5),  # byte-level BPE of 512 tokens: 1 byte per token before merges; tiny 1.82, 1.82
}

SCRIPTS = [ROOT / "code" / p.relative_to(ROOT / "book").with_suffix(".py") for p in chapters()]
ids = [str(s.relative_to(ROOT / "code")) for s in SCRIPTS]
ids_no_suffix = [i.removesuffix(".py") for i in ids]


def run(script, *args, cwd):
    env = {**os.environ, "SCRATCH_PROFILE": "tiny", "SCRATCH_PROGRESS": "0", "MPLBACKEND": "Agg"}
    env.pop("SCRATCH_BUILD", None)
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


def lookup(metrics, path):
    """metrics["a"]["b"] for path "a/b"."""
    value = metrics
    for key in path.split("/"):
        if not isinstance(value, dict) or key not in value:
            raise KeyError(f"metrics has no {path!r} (no {key!r} in {sorted(value) if isinstance(value, dict) else value!r})")
        value = value[key]
    return value


def non_finite(value, path=""):
    """Paths of the NaN and infinite numbers anywhere in value (booleans, strings and None skipped)."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in non_finite(v, f"{path}/{k}" if path else str(k))]
    if isinstance(value, (list, tuple)):
        return [p for i, v in enumerate(value) for p in non_finite(v, f"{path}[{i}]")]
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isfinite(value):
        return [f"{path} = {value}"]
    return []


def check_metrics(name, metrics):
    """The checks on a tiny run's metrics, apart from running it (so they can be tested)."""
    assert name in FLOORS, f"{name}: no floor in FLOORS (tests/test_chapters.py); add its headline metric"
    assert metrics, f"{name}: metrics is empty"
    bad = non_finite(metrics)
    assert not bad, f"{name}: non-finite metrics: {', '.join(bad)}"
    key, floor = FLOORS[name]
    value = lookup(metrics, key)
    assert isinstance(value, (int, float)) and not isinstance(value, bool), f"{name}: {key} = {value!r} is not a number"
    assert value >= floor, f"{name}: {key} = {value:.4g} is below its floor {floor} (chance cannot clear the floor)"


def test_every_chapter_has_a_floor_and_every_floor_a_chapter():
    assert set(FLOORS) == set(ids_no_suffix), (
        f"chapters without a floor: {sorted(set(ids_no_suffix) - set(FLOORS))}; "
        f"floors without a chapter: {sorted(set(FLOORS) - set(ids_no_suffix))}")


def test_the_metric_checks_catch_nan_missing_floors_and_chance():
    check_metrics("vision/lenet", {"test_acc": 0.9, "curve": [0.5, {"x": 1}], "done": True, "note": None})
    with pytest.raises(AssertionError, match=r"vision/lenet: non-finite metrics: test_loss = nan, curve\[1\]/x = inf"):
        check_metrics("vision/lenet", {"test_acc": 0.9, "test_loss": float("nan"), "curve": [0.5, {"x": float("inf")}]})
    with pytest.raises(AssertionError, match=r"vision/lenet: test_acc = 0.1 is below its floor 0.4"):
        check_metrics("vision/lenet", {"test_acc": 0.1})
    with pytest.raises(AssertionError, match="vision/new: no floor in FLOORS"):
        check_metrics("vision/new", {"test_acc": 0.9})
    with pytest.raises(KeyError, match="metrics has no 'final_accuracy/BatchNorm @ 1'"):
        check_metrics("foundations/normalization", {"final_accuracy": {}})


@pytest.mark.parametrize("script", SCRIPTS, ids=ids)
def test_chapter_runs_in_tiny_profile(script, tmp_path):
    name = str(script.relative_to(ROOT / "code").with_suffix(""))
    assert name in FLOORS, f"{name}: no floor in FLOORS (tests/test_chapters.py); add its headline metric"
    # From another working directory: nothing may depend on where it is started.
    result = run(script, "--profile", "tiny", f"--out_dir={tmp_path}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "(profile=tiny)" in result.stdout  # the resolved config is printed first
    records = list(tmp_path.rglob("metrics.json"))
    assert len(records) == 1, "each run writes one metrics.json"
    record = json.loads(records[0].read_text())  # NaN and Infinity load as floats
    assert record["profile"] == "tiny" and record["machine"]["cpu_count"]
    check_metrics(name, record["metrics"])


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


def test_missing_data_ends_a_chapter_with_one_line_and_exit_2(tmp_path):
    """No traceback when a data set is missing and cannot be downloaded: the loader's
    message (what to fetch, where to put it) and exit code 2."""
    env = {**os.environ, "SCRATCH_PROFILE": "tiny", "SCRATCH_PROGRESS": "0",
           "SCRATCH_DATA": str(tmp_path / "empty"), "SCRATCH_DATA_MIRROR": "http://127.0.0.1:9/"}
    script = ROOT / "code" / "sequences" / "bigram.py"
    result = subprocess.run([sys.executable, str(script), f"--out_dir={tmp_path}"],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("bigram.py: error: names.txt") and "SCRATCH_DATA" in last
