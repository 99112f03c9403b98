"""Helpers shared by the chapters' Results sections."""
import json

from scratch.utils import recorded_run


def test_recorded_run_reads_the_committed_record_or_says_there_is_none(tmp_path):
    assert recorded_run("unet", tmp_path) is None
    record = {"seconds": 5, "metrics": {"test_dice": 0.9}}
    (tmp_path / "unet.json").write_text(json.dumps(record))
    assert recorded_run("unet", tmp_path)["metrics"] == {"test_dice": 0.9}
    assert recorded_run("no_such_chapter") is None  # the repository's results/ folder
