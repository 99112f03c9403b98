"""The book's plots: interactive plotly figures with one theme.

Every figure goes through :func:`show`, which does the right thing where the code runs:

- in the book build, it emits the figure's HTML without plotly.js: the book loads
  plotly.js once, from its own static files (no CDN, works offline);
- in Jupyter / Colab / VS Code, plotly's own renderer shows it;
- in a script, it writes a standalone HTML file (plotly.js saved once beside it)
  and prints where.

The ``"scratch"`` template uses transparent backgrounds, grid lines of mid-grey at
low alpha and a colour cycle that all read on white and on near-black; in dark mode
the book's CSS (``book/_static/custom.css``) recolours the dark text: titles, legends,
annotations, and the tick labels and axis titles of every subplot (plotly names them
per axis, ``x2tick``, ``g-y3title``, ...). So one figure serves both themes.

Chapter: "How this book is built" (book/appendix/build.md).
"""

from __future__ import annotations

import os
import re
import sys
import uuid
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

# Okabe-Ito colours: distinguishable with common colour-vision deficiencies.
COLORS = [
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#D55E00",
    "#CC79A7",
    "#56B4E9",
    "#F0E442",
    "#999999",
]
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"
GRID = "rgba(128,128,128,0.25)"  # mid-grey at low alpha reads on both backgrounds

pio.templates["scratch"] = go.layout.Template(
    layout=dict(
        font=dict(family=FONT, size=13, color="#333"),
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="rgba(0,0,0,0)",
        colorway=COLORS,
        margin=dict(l=60, r=20, t=50, b=50),
        xaxis=dict(gridcolor=GRID, zerolinecolor=GRID, linecolor=GRID, automargin=True),
        yaxis=dict(gridcolor=GRID, zerolinecolor=GRID, linecolor=GRID, automargin=True),
        legend=dict(bgcolor="rgba(0,0,0,0)"),
        hoverlabel=dict(font=dict(family=FONT)),
    )
)
pio.templates.default = "plotly+scratch"

# Buttons a reader needs (zoom, pan, reset, save), not the whole toolbar.
CONFIG = {
    "displaylogo": False,
    "responsive": True,
    "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d"],
}


def in_book_build() -> bool:
    return bool(os.environ.get("SCRATCH_BUILD"))


def _in_notebook() -> bool:
    return "ipykernel" in sys.modules


class _BookHTML:
    """Display object for the book: a div and the script that draws into it."""

    def __init__(self, fig: go.Figure):
        # auto_play=False: an animated figure opens on the frame its slider shows.
        self.html = fig.to_html(
            full_html=False,
            include_plotlyjs=False,
            config=CONFIG,
            auto_play=False,
            div_id=f"fig-{uuid.uuid4().hex[:12]}",
        )

    def _repr_html_(self):
        return self.html


def _wrap_title(fig: go.Figure, width_chars: int = 72, line_px: int = 22) -> None:
    """Break a title too long for the text column over several lines (plotly would cut
    it off), and make room for the extra lines above the plot."""
    text = fig.layout.title.text
    if not text or "<br>" in text or len(re.sub(r"<[^>]+>", "", text)) <= width_chars:
        return
    lines, current = [], ""
    for word in text.split(" "):
        if current and len(re.sub(r"<[^>]+>", "", f"{current} {word}")) > width_chars:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    lines.append(current)
    extra = line_px * (len(lines) - 1)
    fig.update_layout(
        title_text="<br>".join(lines), margin_t=(fig.layout.margin.t or 80) + extra
    )
    if (
        fig.layout.title.yanchor == "bottom"
    ):  # plotly anchors the first line: lift it over the others
        fig.update_layout(title_pad_b=(fig.layout.title.pad.b or 0) + extra)
    if fig.layout.height:
        fig.update_layout(height=fig.layout.height + extra)


def show(fig: go.Figure, path: str | os.PathLike | None = None) -> None:
    """Show ``fig`` in the book or a notebook; in a script, save it to ``path`` (.html).

    Returns None, so that ``show(fig)`` as a cell's last line does not display it twice.
    """
    _wrap_title(fig)
    if in_book_build():
        from IPython.display import display

        display(_BookHTML(fig))
    elif _in_notebook():
        fig.show(config=CONFIG)
    elif path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # "directory": plotly.min.js is written once beside the figures, not into each
        # one.
        fig.write_html(
            path, include_plotlyjs="directory", config=CONFIG, auto_play=False
        )
        print(f"figure saved: {path}")


def _to_numpy(x):
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


# ---- curves ----------------------------------------------------------------------
def smooth(values, window: int) -> np.ndarray:
    """Trailing moving average over ``window`` values (fewer at the start): a readable
    curve from noisy per-step values. A NaN or inf spoils only the windows that hold
    it."""
    if window < 1:
        raise ValueError(f"smooth: window must be >= 1, got {window}")
    v = np.asarray(values, dtype=np.float64)
    sums = np.convolve(v, np.ones(window))[
        : len(v)
    ]  # sums[i] = v[i - window + 1] + ... + v[i]
    return sums / np.minimum(np.arange(1, len(v) + 1), window)


def training_curves(history, title: str = "Training curves") -> go.Figure:
    """Loss (left) and every other per-epoch metric (right) of a run's history.

    ``history`` is a :class:`scratch.train.History` or a list of per-epoch dicts.
    """
    rows = history.epochs if hasattr(history, "epochs") else list(history)
    # Bookkeeping that fit() also logs per epoch (rates, norms, throughput) has its
    # own scale and would flatten the metrics; plot it from history.log if wanted.
    skip = ("epoch", "step", "seconds", "grad_norm", "examples_per_s", "tokens_per_s")
    keys = [
        k
        for k in rows[0]
        if k not in skip and not k.endswith("lr") and not k.endswith("grad_norm")
    ]
    losses = [k for k in keys if k.endswith("loss")]
    others = [k for k in keys if k not in losses]
    fig = make_subplots(
        rows=1,
        cols=2 if others else 1,
        subplot_titles=["loss"] + (["metrics"] if others else []),
    )
    x = [r["epoch"] for r in rows]
    for i, k in enumerate(losses + others):
        fig.add_trace(
            go.Scatter(
                x=x,
                y=[r.get(k) for r in rows],
                name=k,
                mode="lines+markers",
                line=dict(color=COLORS[i % len(COLORS)]),
            ),
            row=1,
            col=1 if k in losses else 2,
        )
    fig.update_xaxes(title_text="epoch")
    fig.update_layout(title=title, height=380, hovermode="x unified")
    return fig


def step_curves(
    history, window: int = 50, title: str = "Training", ylabel: str = "loss"
) -> go.Figure:
    """The training loss of every step (a trailing mean of ``window`` steps) and
    the validation loss at the end of each epoch, against the step.

    ``history`` is a :class:`scratch.history.History` whose epochs have
    ``val_loss``: the curves of a step-based run, where one point per epoch would
    hide how training went.
    """
    fig = go.Figure()
    steps = np.arange(1, len(history.steps) + 1)
    fig.add_trace(
        go.Scatter(
            x=steps,
            y=smooth(history.steps, window),
            name=f"train (mean of {window} steps)",
        )
    )
    per_epoch = len(history.steps) / max(len(history.epochs), 1)
    fig.add_trace(
        go.Scatter(
            x=per_epoch * np.arange(1, len(history.epochs) + 1),
            y=[row.get("val_loss") for row in history.epochs],
            name="validation",
            mode="lines+markers",
        )
    )
    fig.update_layout(title=title, xaxis_title="step", yaxis_title=ylabel, height=380)
    return fig


def lines(
    series: dict,
    x=None,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    log_y: bool = False,
) -> go.Figure:
    """Several named curves on one axis (``series`` maps name to values)."""
    fig = go.Figure()
    for name, ys in series.items():
        ys = _to_numpy(ys)
        fig.add_trace(
            go.Scatter(
                x=np.arange(len(ys)) if x is None else x, y=ys, name=name, mode="lines"
            )
        )
    fig.update_layout(
        title=title,
        xaxis_title=xlabel,
        yaxis_title=ylabel,
        height=380,
        hovermode="x unified",
    )
    if log_y:
        fig.update_yaxes(type="log")
    return fig


# ---- images ----------------------------------------------------------------------
def image_grid(
    images,
    titles=None,
    ncols: int = 8,
    title: str = "",
    cell: int = 90,
    colorscale: str = "gray_r",
    symmetric: bool = False,
    caption_px: int = 11,
) -> go.Figure:
    """A grid of images with a caption each; hover tells which image and pixel value.

    ``images``: (N, H, W) greyscale or (N, 3, H, W) / (N, H, W, 3) colour, any range
    (each image is shown with its own scale; ``symmetric`` centres a diverging scale
    on zero, for filters and gradients). Captions may hold several lines
    (``"<br>"``); rows are spaced so that they fit, in ``caption_px`` font.
    """
    imgs = _to_numpy(images).astype(np.float64)
    if imgs.ndim == 4 and imgs.shape[1] in (1, 3) and imgs.shape[-1] not in (1, 3):
        imgs = imgs.transpose(0, 2, 3, 1)  # NCHW -> NHWC
    if imgs.ndim == 4 and imgs.shape[-1] == 1:
        imgs = imgs[..., 0]
    n = len(imgs)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    # Room above each row for its captions, in pixels: make_subplots wants the gap
    # between rows as a fraction of the plotting area's height.
    if titles is not None:
        titles, caption_px = _fit_captions([str(t) for t in titles], ncols, caption_px)
    lines = (
        max((t.count("<br>") + 1 for t in titles), default=1)
        if titles is not None
        else 0
    )
    cap = int(lines * caption_px * 1.3) + 6
    area = nrows * cell + (nrows - 1) * cap
    fig = make_subplots(
        rows=nrows,
        cols=ncols,
        subplot_titles=titles,
        horizontal_spacing=0.01,
        vertical_spacing=cap / area if nrows > 1 else 0.0,
    )
    for i, img in enumerate(imgs):
        r, c = divmod(i, ncols)
        if img.ndim == 3:  # colour: rescale to 0..255 for go.Image
            lo, hi = img.min(), img.max()
            rgb = (img - lo) / (hi - lo + 1e-12) * 255
            fig.add_trace(
                go.Image(z=rgb, hovertemplate=f"image {i}<extra></extra>"),
                row=r + 1,
                col=c + 1,
            )
        else:
            bound = np.abs(img).max() if symmetric else None
            fig.add_trace(
                go.Heatmap(
                    z=img,
                    colorscale="RdBu_r" if symmetric else colorscale,  # positive red
                    zmid=0 if symmetric else None,
                    zmin=-bound if symmetric else None,
                    zmax=bound if symmetric else None,
                    showscale=False,
                    hovertemplate=f"image {i}<br>row %{{y}}, col %{{x}}: "
                    "%{z:.3g}<extra></extra>",
                ),
                row=r + 1,
                col=c + 1,
            )
    # One layout update for all cells (per-axis updates are slow for big grids):
    # hidden axes, images upright, every cell square.
    axes = {}
    for i in range(1, n + 1):
        k = "" if i == 1 else str(i)
        axes[f"xaxis{k}"] = dict(visible=False, constrain="domain")
        axes[f"yaxis{k}"] = dict(
            visible=False, autorange="reversed", scaleanchor=f"x{k}", constrain="domain"
        )
    fig.update_layout(**axes)
    fig.update_annotations(font_size=caption_px)
    top = (40 if title else 10) + cap
    # The title sits just above the first row's captions (its bottom anchored to the
    # top of the plots), so a title wrapped over more lines grows upwards.
    fig.update_layout(
        title=dict(
            text=title, yref="paper", y=1, yanchor="bottom", pad=dict(b=cap + 4)
        ),
        height=max(160, area + top + 10),
        margin=dict(l=10, r=10, t=top, b=10),
    )
    return fig


TEXT_WIDTH_PX = (
    720  # the book's text column: figures are responsive and get about this wide
)


def _fit_captions(
    titles: list[str], ncols: int, font_px: int, smallest: int = 8
) -> tuple[list[str], int]:
    """Captions that fit their grid cell: a smaller font first, then lines broken at
    spaces.

    Plotly neither shrinks nor wraps subplot titles, so long captions over narrow
    cells run into each other. Widths are estimated (0.6 em per character).
    """
    cell = TEXT_WIDTH_PX / max(ncols, 1)
    plain = [re.sub(r"<[^>]+>", "", line) for t in titles for line in t.split("<br>")]
    longest = max((len(line) for line in plain), default=1) or 1
    font = max(smallest, min(font_px, int(cell / (0.6 * longest))))
    capacity = max(4, int(cell / (0.6 * font)))

    def wrap(line: str) -> str:  # greedy, breaking after spaces and arrows
        out, current = [], ""
        for token in re.split(r"(?<=[ →])", line):
            if (
                current
                and len(re.sub(r"<[^>]+>", "", current + token).rstrip()) > capacity
            ):
                out.append(current.rstrip())
                current = token
            else:
                current += token
        return "<br>".join(out + [current.rstrip()])

    return ["<br>".join(wrap(line) for line in t.split("<br>")) for t in titles], font


def heatmap(
    z,
    x=None,
    y=None,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    text_fmt: str | None = None,
    colorscale: str = "Blues",
) -> go.Figure:
    """A labelled matrix, optionally with each value written in its cell."""
    z = _to_numpy(z)
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=x,
            y=y,
            colorscale=colorscale,
            text=np.vectorize(lambda v: format(v, text_fmt))(z) if text_fmt else None,
            texttemplate="%{text}" if text_fmt else None,
        )
    )
    fig.update_layout(title=title, xaxis_title=xlabel, yaxis_title=ylabel, height=460)
    fig.update_yaxes(autorange="reversed")
    return fig


def confusion_matrix(
    targets, predictions, labels=None, title: str = "Confusion matrix"
) -> go.Figure:
    """Counts of (true class, predicted class); the diagonal is what the model got
    right."""
    targets, predictions = _to_numpy(targets), _to_numpy(predictions)
    k = (
        int(max(targets.max(), predictions.max())) + 1
        if labels is None
        else len(labels)
    )
    cm = np.zeros((k, k), dtype=int)
    np.add.at(cm, (targets, predictions), 1)
    names = [str(n) for n in (labels if labels is not None else range(k))]
    fig = heatmap(
        cm,
        x=names,
        y=names,
        title=title,
        xlabel="predicted",
        ylabel="true",
        text_fmt="d",
    )
    fig.update_xaxes(type="category")
    fig.update_yaxes(type="category")
    return fig


# ---- distributions -----------------------------------------------------------------
def histograms(
    named: dict, title: str = "", bins: int = 60, xlabel: str = "value"
) -> go.Figure:
    """One histogram per named array (weights or activations of each layer), stacked."""
    n = len(named)
    fig = make_subplots(
        rows=n,
        cols=1,
        subplot_titles=list(named),
        vertical_spacing=0.5 / max(n, 1) if n > 1 else 0,
    )
    for i, (name, values) in enumerate(named.items()):
        v = _to_numpy(values).ravel()
        fig.add_trace(
            go.Histogram(
                x=v,
                nbinsx=bins,
                name=name,
                showlegend=False,
                marker_color=COLORS[i % len(COLORS)],
            ),
            row=i + 1,
            col=1,
        )
    fig.update_xaxes(title_text=xlabel, row=n, col=1)
    fig.update_layout(title=title, height=120 + 150 * n, bargap=0.02)
    return fig


# ---- animation -----------------------------------------------------------------------
def animation_controls(
    names, prefix: str = "step", frame_ms: int = 250, redraw: bool = True
) -> dict:
    """Layout for a figure whose frames are named ``names``: a slider (starting on the
    last frame) with play and pause buttons to its left, both under the plot.

    Use as ``fig.update_layout(**animation_controls(names))``. ``redraw=False`` is
    faster when the frames only move scatter traces.
    """
    names = [str(n) for n in names]
    go_to = lambda name: dict(
        args=[
            [name],
            dict(
                mode="immediate",
                frame=dict(duration=0, redraw=redraw),
                transition=dict(duration=0),
            ),
        ],
        label=name,
        method="animate",
    )
    return dict(
        sliders=[
            dict(
                active=len(names) - 1,
                currentvalue=dict(prefix=f"{prefix} "),
                x=0.16,
                len=0.84,
                y=0,
                yanchor="top",
                pad=dict(t=50, b=10),
                steps=[go_to(n) for n in names],
            )
        ],
        updatemenus=[
            dict(
                type="buttons",
                direction="left",
                x=0.14,
                y=0,
                xanchor="right",
                yanchor="top",
                pad=dict(t=60, r=10),
                showactive=False,
                buttons=[
                    dict(
                        label="▶",
                        method="animate",
                        args=[
                            None,
                            dict(
                                frame=dict(duration=frame_ms, redraw=redraw),
                                fromcurrent=False,
                                transition=dict(duration=0),
                            ),
                        ],
                    ),
                    dict(
                        label="❚❚",
                        method="animate",
                        args=[
                            [None],
                            dict(
                                mode="immediate", frame=dict(duration=0, redraw=False)
                            ),
                        ],
                    ),
                ],
            )
        ],
    )


# ---- 2-D classifiers ---------------------------------------------------------------
def decision_boundary(
    snapshots,
    xs,
    ys,
    points,
    labels,
    title: str = "Decision boundary",
    slider_label: str = "step",
) -> go.Figure:
    """How a 2-D classifier's boundary evolves, with a slider and a play button.

    ``snapshots``: list of ``(name, probs)`` with ``probs`` of shape (len(ys), len(xs)),
    the predicted probability of class 1 on the grid; ``points``: (N, 2); ``labels``:
    (N,).
    """
    points, labels = _to_numpy(points), _to_numpy(labels)
    symbols = ["circle", "diamond", "square", "x"]
    # Dark outlines keep the points visible on the region of their own colour.
    scatter = [
        go.Scatter(
            x=points[labels == c, 0],
            y=points[labels == c, 1],
            mode="markers",
            name=f"class {c}",
            marker=dict(
                color=COLORS[c],
                size=7,
                symbol=symbols[c % 4],
                line=dict(width=1, color="#1a1a1a"),
            ),
        )
        for c in np.unique(labels).astype(int)
    ]

    def contour(probs):
        # Probabilities that round to exactly 0 or 1 fall outside the outermost contour
        # band and would be left unfilled; keep them just inside.
        z = np.clip(_to_numpy(probs), 1e-4, 1 - 1e-4)
        return go.Contour(
            x=xs,
            y=ys,
            z=z,
            zmin=0,
            zmax=1,
            colorscale="RdBu_r",
            opacity=0.45,
            contours=dict(start=0, end=1, size=0.1),
            line=dict(width=0.5),
            colorbar=dict(title=dict(text="p(class 1)", side="right"), thickness=12),
            hovertemplate="x %{x:.2f}, y %{y:.2f}: p=%{z:.2f}<extra></extra>",
        )

    names = [str(name) for name, _ in snapshots]
    fig = go.Figure(
        data=[contour(snapshots[-1][1]), *scatter],
        frames=[
            go.Frame(data=[contour(p)], traces=[0], name=n)
            for n, (_, p) in zip(names, snapshots)
        ],
    )
    fig.update_layout(
        title=title,
        height=560,
        xaxis_title="x1",
        yaxis_title="x2",
        legend=dict(orientation="h", x=0, y=1.02, xanchor="left", yanchor="bottom"),
        **animation_controls(names, prefix=slider_label),
    )
    if len(snapshots) == 1:  # nothing to animate
        fig.layout.sliders, fig.layout.updatemenus = (), ()
        fig.frames = []
    fig.update_yaxes(scaleanchor="x", scaleratio=1)
    return fig
