"""Drawing a computational graph as an interactive plotly figure.

Works for both engines: it reads only ``_parents`` and ``_op`` of each node,
and ``data``, ``grad`` and (for :class:`~scratch.engine.Value`) ``label``.

Chapter: "A tiny autograd engine" (book/foundations/autograd.md).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import plotly.graph_objects as go

from scratch.plots import COLORS

from .tensor import _topological_order  # reads only `_parents`: works for Values too

# Node labels are scatter text, which the book's dark-mode CSS does not recolour (yet):
# a mid grey reads on white and on near-black.
TEXT = "#707070"
_OP_NAMES = {
    "*": "×",
    "-": "−",
    "/": "÷",
    "neg": "−x",
    "sigmoid": "σ",
}  # short names fit the circle


def _fmt(x) -> str:
    if x is None:
        return "–"
    x = np.asarray(x)
    return f"{x.item():.4g}" if x.size == 1 else f"shape {x.shape}"


def _layout(order, root):
    """Columns by depth (inputs left, the output right), rows ordered to limit
    crossings."""
    users = defaultdict(list)  # node id -> the nodes computed from it
    for node in order:
        for p in node._parents:
            users[id(p)].append(node)
    # Column of a computed node: one right of its deepest parent. Leaves sit just left
    # of their first user, so a constant that enters late does not start far left.
    col = {}
    for node in order:
        if node._parents:
            col[id(node)] = 1 + max(col.get(id(p), 0) for p in node._parents)
    for node in order:
        if not node._parents:
            col[id(node)] = min((col[id(u)] for u in users[id(node)]), default=1) - 1
    # Rows, from the output leftwards: a node goes near the nodes that use it
    # (the barycentre heuristic for layered graphs), then each column is spread evenly.
    row = {id(root): 0.0}
    for c in sorted(set(col.values()), reverse=True):
        column = [n for n in order if col[id(n)] == c]
        for n in column:
            if n is root:
                continue
            targets = []
            for u in users[id(n)]:
                k = [id(p) for p in u._parents].index(id(n))
                spread = len(u._parents) - 1
                targets.append(row.get(id(u), 0.0) + (k - spread / 2) * 0.5)
            row[id(n)] = float(np.mean(targets)) if targets else 0.0
        ranked = sorted(column, key=lambda n: row[id(n)])
        for i, n in enumerate(ranked):
            row[id(n)] = i - (len(ranked) - 1) / 2
    return col, row


def draw_graph(root, title: str = "Computational graph") -> go.Figure:
    """The graph that computed ``root``: value nodes (coloured by gradient) and op
    nodes.

    Each value node shows its label, value and gradient (after ``backward()``);
    each op sits between its inputs and its result. Hover for details.
    """
    order = _topological_order(root)
    col, row = _layout(order, root)
    pos = {
        id(n): (2.0 * col[id(n)], row[id(n)]) for n in order
    }  # value nodes on even x
    ops = [n for n in order if n._parents]
    op_pos = {
        id(n): (pos[id(n)][0] - 1.0, pos[id(n)][1]) for n in ops
    }  # op node just left of its result

    def arrow(start, end, standoff):
        return dict(
            x=end[0],
            y=end[1],
            ax=start[0],
            ay=start[1],
            xref="x",
            yref="y",
            axref="x",
            ayref="y",
            showarrow=True,
            arrowhead=2,
            arrowsize=1,
            arrowwidth=1.2,
            arrowcolor=COLORS[7],
            standoff=standoff,
            startstandoff=standoff,
            text="",
        )

    annotations = []
    for n in ops:
        for p in n._parents:
            annotations.append(arrow(pos[id(p)], op_pos[id(n)], 15))
        annotations.append(arrow(op_pos[id(n)], pos[id(n)], 15))

    grads = [
        np.asarray(n.grad).item()
        if n.grad is not None and np.size(n.grad) == 1
        else np.nan
        for n in order
    ]
    bound = max((abs(g) for g in grads if np.isfinite(g)), default=1.0) or 1.0
    names = [getattr(n, "label", "") or "" for n in order]
    values = go.Scatter(
        x=[pos[id(n)][0] for n in order],
        y=[pos[id(n)][1] for n in order],
        mode="markers+text",
        text=[
            f"<b>{name}</b>  {_fmt(n.data)}<br>grad {_fmt(n.grad)}"
            for name, n in zip(names, order)
        ],
        textposition="bottom center",
        textfont=dict(size=11, color=TEXT),
        cliponaxis=False,
        showlegend=False,
        marker=dict(
            size=24,
            symbol="square",
            color=grads,
            colorscale="RdBu",
            cmin=-bound,
            cmax=bound,
            line=dict(width=1, color=COLORS[7]),
            colorbar=dict(title="grad", thickness=10, len=0.8),
        ),
        customdata=[
            [name or "(unnamed)", _fmt(n.data), _fmt(n.grad), n._op or "input"]
            for name, n in zip(names, order)
        ],
        hovertemplate="%{customdata[0]} = %{customdata[1]}<br>"
        "∂L/∂%{customdata[0]} = %{customdata[2]}"
        "<br>made by: %{customdata[3]}<extra></extra>",
    )
    op_nodes = go.Scatter(
        x=[op_pos[id(n)][0] for n in ops],
        y=[op_pos[id(n)][1] for n in ops],
        mode="markers+text",
        text=[_OP_NAMES.get(n._op, n._op) for n in ops],
        textposition="middle center",
        showlegend=False,
        textfont=dict(size=10, color=TEXT),
        marker=dict(
            size=30, color="rgba(128,128,128,0.15)", line=dict(width=1, color=COLORS[7])
        ),
        hoverinfo="skip",
    )

    fig = go.Figure([op_nodes, values])
    height = max(320, 110 * (max(abs(r) for r in row.values()) * 2 + 2))
    fig.update_layout(
        title=title,
        annotations=annotations,
        height=height,
        margin=dict(l=20, r=20, t=50, b=40),
    )
    fig.update_xaxes(
        visible=False,
        range=[
            min(p[0] for p in pos.values()) - 0.8,
            max(p[0] for p in pos.values()) + 0.8,
        ],
    )
    fig.update_yaxes(
        visible=False,
        range=[
            min(p[1] for p in pos.values()) - 0.9,
            max(p[1] for p in pos.values()) + 0.6,
        ],
    )
    return fig
