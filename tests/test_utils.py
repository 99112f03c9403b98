"""Helpers shared by the chapters' Results sections."""
from scratch.utils import recorded_run_note


def test_recorded_run_note_says_how_to_record_or_where_it_ran():
    missing = recorded_run_note("unet", None, "code/vision/unet.py")
    assert "none recorded yet" in missing and "python code/vision/unet.py" in missing
    assert "runs/unet/metrics.json" in missing and "results/unet.json" in missing
    record = {"seconds": 1234.4, "machine": {"gpu": "NVIDIA H100", "processor": "x86_64"}}
    assert recorded_run_note("unet", record) == "recorded full run: 1234 s on NVIDIA H100"
    assert recorded_run_note("unet", {"seconds": 5, "machine": {"processor": "arm"}}).endswith("5 s on arm")
