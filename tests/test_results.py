"""The results table that ends every chapter: this run, the recorded run, the papers."""
import json
import os
import re
import sys
import types
from dataclasses import dataclass

import pytest

from conftest import ROOT
from scratch.config import Config
from scratch.results import Column, Reference, build_table, citation, results_table

DASH = "\u2013"
CORES = os.cpu_count()


@dataclass
class LeNetLike(Config):
    """A chapter's config without a device (a NumPy chapter, run on the CPU)."""

    epochs: int = 3
    NAME = "lenet"  # a real chapter, so that the script's path can be found


@dataclass
class GPUChapter(Config):
    device: str = "cpu"
    NAME = "no_such_chapter"
    PROFILES = {"full": dict(device="cuda")}


METRICS = {"test_acc": 0.9123, "train_images": 6000,
           "acc": {"CNN": 0.5, "SVM": 0.25}, "acc_std": {"CNN": 0.01}}
COLUMNS = {"test_acc": ("test accuracy", ".2%"), "config.epochs": ("epochs", "d"),
           "train_images": ("train images", ","),
           "acc.CNN": Column("CNN", ".3f", "acc_std.CNN"), "acc.SVM": ("SVM", ".3f")}
PAPER = Reference("LeNet-5", {"test_acc": 1 - 0.0095, "train_images": 60_000},
                  source="lecun1998gradient", setting="Fig. 9")
RECORD = {"metrics": {"test_acc": 0.99, "acc": {"CNN": 0.98},
                      "acc_std": {"CNN": 0.002}},
          "config": {"epochs": 20}, "profile": "full", "seconds": 1234.5,
          "machine": {"gpu": "NVIDIA H100", "cpu_count": 32}, "commit": "abc1234",
          "dirty": True, "date": "2025-03-01 10:00:00 +0000"}


def table(tmp_path, cfg=None, metrics=METRICS, **kwargs):
    kwargs = {"columns": COLUMNS, "references": [PAPER], "seconds": 12.3,
              "device": "cpu", "results_dir": tmp_path, **kwargs}
    return build_table(cfg or LeNetLike(profile="tiny"), metrics, **kwargs)


def test_rows_hold_this_run_the_recorded_run_and_each_reference(tmp_path):
    rows = table(tmp_path).rows
    assert [r.kind for r in rows] == ["this run", "recorded", "reference"]
    this, recorded, paper = rows
    assert this.label == f"this run (tiny, CPU, {CORES} cores, 12 s)"
    # Paths into the metrics ("acc.CNN") and into the config ("config.epochs").
    assert this.values == {"test_acc": 0.9123, "config.epochs": 3,
                           "train_images": 6000, "acc.CNN": 0.5, "acc.SVM": 0.25}
    assert this.spreads == {"acc.CNN": 0.01}
    assert recorded.label == "recorded full run (none yet)"
    assert set(recorded.values.values()) == {None}
    assert paper.label == "LeCun et al. 1998: LeNet-5 (Fig. 9)"
    assert paper.source == "lecun1998gradient"
    assert paper.values == {"test_acc": 1 - 0.0095, "config.epochs": None,
                            "train_images": 60_000, "acc.CNN": None, "acc.SVM": None}


def test_missing_values_show_as_an_en_dash(tmp_path):
    t = table(tmp_path, metrics={"test_acc": 0.5})  # no train_images, no acc
    assert t.cells(t.rows[0]) == ["50.00%", "3", DASH, DASH, DASH]
    assert t.cells(t.rows[2]) == ["99.05%", DASH, "60,000", DASH, DASH]
    assert f">{DASH}</td>" in t.html()
    recorded = t.text().splitlines()[2]
    assert recorded.startswith("recorded full run (none yet)")
    assert recorded.split()[-5:] == [DASH] * 5


def test_without_a_record_the_table_says_how_to_record_one(tmp_path):
    t = table(tmp_path)
    note = t.notes[0]
    assert "No full run is recorded yet (results/lenet.json)" in note
    assert "run on a CPU" in note  # a config without a device: the NumPy engine
    assert "`python code/vision/lenet.py --profile=full --out_dir=runs`" in note
    assert "`cp runs/lenet/metrics.json results/lenet.json`" in note
    # A full profile that asks for a GPU says so; an unknown script is named so.
    gpu = table(tmp_path, cfg=GPUChapter(), references=[],
                columns={"test_acc": ("acc", ".2f")})
    assert "run on a GPU" in gpu.notes[0]
    assert "python code/<part>/no_such_chapter.py" in gpu.notes[0]
    # The command is never broken across lines, however narrow the text.
    command = "  `python code/vision/lenet.py --profile=full --out_dir=runs`"
    assert command in t.text(width=40).splitlines()


def test_a_recorded_run_is_read_from_the_results_directory(tmp_path):
    (tmp_path / "lenet.json").write_text(json.dumps(RECORD))
    t = table(tmp_path)
    recorded = t.rows[1]
    assert recorded.label == (
        "recorded full run (NVIDIA H100, 21 min, 2025-03-01, abc1234-dirty)")
    assert recorded.values == {"test_acc": 0.99, "config.epochs": 20,
                               "train_images": None, "acc.CNN": 0.98, "acc.SVM": None}
    assert t.cells(recorded) == ["99.00%", "20", DASH, "0.980 \u00b1 0.002", DASH]
    assert not any("No full run" in n for n in t.notes)
    # A CPU record names its cores; a record of another profile says so.
    other = {**RECORD, "profile": "small", "machine": {"cpu_count": 2},
             "dirty": False, "seconds": 80}
    (tmp_path / "lenet.json").write_text(json.dumps(other))
    assert table(tmp_path).rows[1].label == (
        "recorded run, profile small! (CPU, 2 cores, 80 s, 2025-03-01, abc1234)")


def test_the_text_is_aligned_and_wraps_columns_that_do_not_fit(tmp_path):
    t = table(tmp_path, notes=["a note"], title="MNIST")
    lines = t.text().splitlines()
    assert lines[0] == "MNIST"
    block = lines[1:5]  # header, this run, recorded, paper
    assert len({len(line) for line in block}) == 1  # right-aligned to one edge
    header = block[0]
    for row in block[1:]:  # each value ends where its heading ends
        for heading in ("test accuracy", "epochs", "train images"):
            end = header.index(heading) + len(heading)
            assert row[end - 1] != " " and (end == len(row) or row[end] == " ")
    assert lines[-1] == "a note"
    assert "0.500 \u00b1 0.010" in t.text()
    narrow = t.text(width=70).splitlines()
    assert max(len(line) for line in narrow) <= 70 and len(narrow) > len(lines)
    assert sum(line.lstrip().startswith("test accuracy") for line in narrow) == 1
    assert sum("SVM" in line for line in narrow) == 1  # in the second block only


def test_the_html_is_a_themed_table_without_colours(tmp_path):
    t = table(tmp_path, title="a <b> title", notes=["see `x < y`"])
    page = t.html()
    assert page == t._repr_html_()
    assert '<table class="dataframe">' in page  # the theme styles it, light and dark
    assert not re.search(r"color|background|#[0-9a-fA-F]{3}", page)
    assert "<caption>a &lt;b&gt; title</caption>" in page
    assert page.count("<tr>") == 4 and page.count('<th scope="row"') == 3
    num = 'style="text-align: right; font-variant-numeric: tabular-nums"'
    assert f"<th {num}>test accuracy</th>" in page
    assert f"<td {num}>91.23%</td>" in page
    assert 'title="references.bib: lecun1998gradient"' in page
    assert "<p>see <code>x &lt; y</code></p>" in page
    command = "python code/vision/lenet.py --profile=full --out_dir=runs"
    assert f"<code>{command}</code>" in page


def test_a_reference_needs_a_real_source_and_real_columns(tmp_path):
    assert citation("he2016deep") == "He et al. 2016"
    assert citation("kingma2015adam") == "Kingma and Ba 2015"
    unknown = Reference("x", {"test_acc": 0.5}, source="nobody2099")
    with pytest.raises(KeyError, match="'nobody2099' is not a key of references.bib"):
        table(tmp_path, references=[unknown])
    with pytest.raises(KeyError, match="reference 'x': no column 'top5'"):
        table(tmp_path, references=[Reference("x", {"top5": 0.5}, "he2016deep")])


def test_results_table_prints_in_a_script_and_shows_html_in_a_notebook(
        tmp_path, capsys, monkeypatch):
    kwargs = dict(columns=COLUMNS, references=[PAPER], seconds=1, device="cpu",
                  results_dir=tmp_path)
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    rows = results_table(LeNetLike(), METRICS, **kwargs)
    out = capsys.readouterr().out
    assert out.splitlines()[1].startswith("this run (small, CPU")
    assert "LeCun et al. 1998: LeNet-5 (Fig. 9)" in out and "<table" not in out
    assert [r.kind for r in rows] == ["this run", "recorded", "reference"]

    shown = []
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    import IPython.display

    monkeypatch.setattr(IPython.display, "display", shown.append)
    rows = results_table(LeNetLike(), METRICS, **kwargs)
    assert capsys.readouterr().out == ""
    assert len(shown) == 1 and '<table class="dataframe">' in shown[0]._repr_html_()
    assert rows[0].values["test_acc"] == METRICS["test_acc"]


def test_every_chapter_ends_with_the_results_table():
    scripts = [s for s in sorted((ROOT / "code").glob("*/*.py"))
               if s.parent.name != "scratch"]
    with_results = [s for s in scripts if "# ## Results" in s.read_text("utf-8")]
    assert len(with_results) >= 15
    for script in with_results:
        text = script.read_text(encoding="utf-8")
        section = text[text.index("# ## Results"):]
        assert "results_table(" in section, f"{script.name}: no results_table call"
        assert "recorded_run" not in text, f"{script.name}: reads the record by hand"


def test_a_gpu_run_is_labelled_with_the_gpus_name(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: "NVIDIA H200")
    t = table(tmp_path, cfg=LeNetLike(profile="full"), device=torch.device("cuda", 0),
              seconds=754)
    assert t.rows[0].label == "this run (full, NVIDIA H200, 13 min)"
