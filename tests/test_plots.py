"""The plotting module: one theme, figures that show where the code runs."""
import numpy as np
import plotly.io as pio
import pytest

from scratch import plots
from scratch.train import History


def test_one_theme_is_the_default():
    assert "scratch" in pio.templates and pio.templates.default == "plotly+scratch"
    layout = pio.templates["scratch"].layout
    assert layout.paper_bgcolor == "rgba(0,0,0,0)"  # transparent: the page's light or dark shows through


def test_show_in_the_book_emits_no_plotly_js(monkeypatch):
    monkeypatch.setenv("SCRATCH_BUILD", "1")
    fig = plots.lines({"a": [1, 2, 3]})
    html = plots._BookHTML(fig)._repr_html_()
    assert "Plotly.newPlot" in html and len(html) < 50_000  # the 3 MB library is not inlined
    assert "cdn.plot.ly" not in html


def test_show_in_a_script_saves_html_with_shared_plotly_js(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("SCRATCH_BUILD", raising=False)
    for name in ("a", "b"):
        plots.show(plots.lines({"x": [1, 2]}), tmp_path / f"{name}.html")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.html", "b.html", "plotly.min.js"]
    assert (tmp_path / "a.html").stat().st_size < 50_000
    assert "figure saved" in capsys.readouterr().out


def test_training_curves_split_losses_and_metrics():
    h = History(epochs=[{"epoch": 1, "loss": 1.0, "val_loss": 1.1, "val_acc": 0.5, "lr": 0.1, "seconds": 1},
                        {"epoch": 2, "loss": 0.5, "val_loss": 0.7, "val_acc": 0.8, "lr": 0.1, "seconds": 1}])
    fig = plots.training_curves(h)
    names = {t.name: t for t in fig.data}
    assert set(names) == {"loss", "val_loss", "val_acc"}
    assert names["val_acc"].xaxis == "x2" and names["loss"].xaxis == "x"
    assert list(names["val_acc"].y) == [0.5, 0.8]


def test_image_grid_handles_grey_and_colour():
    grey = plots.image_grid(np.random.rand(10, 8, 8), titles=list("abcdefghij"), ncols=4)
    assert len(grey.data) == 10 and grey.data[0].type == "heatmap"
    colour = plots.image_grid(np.random.rand(3, 3, 8, 8))  # NCHW
    assert colour.data[0].type == "image" and np.asarray(colour.data[0].z).shape == (8, 8, 3)


def test_confusion_matrix_counts():
    fig = plots.confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0])
    cm = np.asarray(fig.data[0].z)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]


def test_decision_boundary_has_one_frame_per_snapshot():
    xs, ys = np.linspace(-1, 1, 5), np.linspace(-1, 1, 4)
    snaps = [(step, np.full((4, 5), step / 10)) for step in (0, 5, 10)]
    fig = plots.decision_boundary(snaps, xs, ys, np.random.rand(6, 2), np.array([0, 1] * 3))
    assert len(fig.frames) == 3 and len(fig.layout.sliders[0].steps) == 3
    assert fig.data[0].type == "contour" and np.asarray(fig.data[0].z).shape == (4, 5)


def test_histograms_one_panel_each():
    fig = plots.histograms({"layer 1": np.random.randn(100), "layer 2": np.random.randn(50)})
    assert [t.type for t in fig.data] == ["histogram", "histogram"]
    with pytest.raises(ValueError, match="'rows' argument to make_subplots must be an int greater than 0"):
        plots.histograms({})  # nothing to draw: plotly refuses a figure of zero rows


def test_image_grid_captions_fit_narrow_cells():
    """Long captions over many columns get a smaller font, then break at spaces and arrows."""
    fig = plots.image_grid(np.zeros((12, 4, 4)), titles=["automobile→ship"] * 6 + ["mask: 12% of pixels"] * 6,
                           ncols=12)
    texts = [a.text for a in fig.layout.annotations]
    assert texts[0] == "automobile→<br>ship" and texts[6] == "mask: 12% of<br>pixels"
    assert fig.layout.annotations[0].font.size < 11
    short = plots.image_grid(np.zeros((4, 4, 4)), titles=["a", "b", "c", "d"], ncols=4)
    assert [a.text for a in short.layout.annotations] == ["a", "b", "c", "d"]
    assert short.layout.annotations[0].font.size == 11


def test_long_titles_are_wrapped_with_room_above_the_plot():
    fig = plots.image_grid(np.zeros((2, 4, 4)), title="Clean images, FGSM and PGD-7 at eps = 8/255 "
                           "(predicted class and probability) for six test images")
    height, top = fig.layout.height, fig.layout.margin.t
    plots._wrap_title(fig)
    assert fig.layout.title.text.count("<br>") == 1
    assert fig.layout.height == height + 22 and fig.layout.margin.t == top + 22
    short = plots.lines({"a": [1, 2]}, title="Short")
    plots._wrap_title(short)
    assert short.layout.title.text == "Short"


def test_smooth_is_a_trailing_mean_and_keeps_non_finite_values_local():
    import numpy as np

    from scratch.plots import smooth
    v = [1.0, 3.0, 5.0, 7.0, 9.0]
    assert np.allclose(smooth(v, 2), [1, 2, 4, 6, 8])
    assert np.allclose(smooth(v, 10), np.cumsum(v) / np.arange(1, 6))
    assert np.array_equal(smooth(v, 1), v)
    out = smooth([1.0, float("nan"), 1.0, 1.0, 1.0], 2)
    assert np.isnan(out[1:3]).all() and np.array_equal(out[[0, 3, 4]], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="window must be >= 1"):
        smooth(v, 0)


def test_step_curves_put_validation_at_the_end_of_each_epoch():
    from scratch.history import History

    history = History(epochs=[{"epoch": 1, "val_loss": 2.0}, {"epoch": 2, "val_loss": 1.5}],
                      steps=[3.0, 2.5, 2.0, 1.8])
    fig = plots.step_curves(history, window=2)
    train, val = fig.data
    assert list(train.y) == [3.0, 2.75, 2.25, 1.9]  # trailing means of 2 steps
    assert list(val.x) == [2.0, 4.0] and list(val.y) == [2.0, 1.5]
