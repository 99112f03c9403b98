"""The results table that ends a chapter: this run, the recorded full run, the papers.

Every chapter ends its experiment with one table of the same shape::

    results_table(cfg, metrics, seconds=seconds,
                  columns={"test_acc": ("test accuracy", ".2%"),
                           "config.epochs": ("epochs", "d")},
                  references=[Reference("ResNet-20", {"test_acc": 1 - 0.0875},
                                        source="he2016deep", setting="Table 6")])

Its rows, in this order:

- **this run**: the numbers this run measured (``metrics``, the dictionary the run
  saves to ``metrics.json``) under the config it printed, with its profile,
  device and duration;
- **the recorded full run**: the same keys read from ``results/<cfg.NAME>.json``,
  with its machine, date and commit, or, while none is recorded, a row of dashes
  and the exact commands that record one;
- **one row per** :class:`Reference`: a published number, with its
  ``references.bib`` key, shown as author and year.

A column's key is a path into the metrics (``"acc.CNN"`` is
``metrics["acc"]["CNN"]``), or into the config with a ``config.`` prefix
(``"config.epochs"``); the recorded run is read with the same paths, so both rows
show the same quantities. A value a row lacks shows as an en dash. In a notebook
or the book the table is HTML; in a script it is printed as aligned text.

Chapter: "How this book is built" (book/appendix/build.md).
"""

from __future__ import annotations

import dataclasses
import html
import os
import re
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple

from .utils import recorded_run

DASH = "\u2013"  # en dash: a value this row does not have
ROOT = Path(__file__).resolve().parents[2]  # the repository (code/scratch/results.py)
BIB = ROOT / "references.bib"


class Column(NamedTuple):
    """How one quantity is shown: its heading, its format, and an optional spread.

    ``format`` is a format spec (``".2%"``, ``","``, ``".3f"``) or a function of
    the value returning text. ``spread`` is the path of a second metric shown
    after the value as ``± spread`` in the same format (a standard deviation
    over seeds).
    """

    label: str
    format: str | Callable = ""
    spread: str | None = None


@dataclass(frozen=True)
class Reference:
    """A number published elsewhere, with the key of its source in ``references.bib``.

    ``values`` maps column keys to the published numbers (only those the source
    prints: a column it has no number for shows a dash); ``label`` names what it
    is ("ResNet-20"), ``setting`` where it is printed or how it was obtained
    ("Table 6").
    """

    label: str
    values: dict
    source: str
    setting: str = ""


@dataclass
class Row:
    """One row: its kind (``this run``, ``recorded``, ``reference``), its label,
    and its raw values by column key (None where it has none)."""

    kind: str
    label: str
    values: dict
    spreads: dict = field(default_factory=dict)
    source: str | None = None  # a references.bib key, for a reference row


def _lookup(metrics: dict | None, config: dict | None, key: str):
    """The value at ``key`` ("a.b" or "config.a"), or None if the record lacks it."""
    value = config if key.startswith("config.") else metrics
    for part in key.removeprefix("config.").split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _format(value, fmt) -> str:
    if value is None:
        return DASH
    if callable(fmt):
        return fmt(value)
    return format(value, fmt)


# ---- sources ---------------------------------------------------------------------


def _bib_entries(path: Path = BIB) -> dict[str, str]:
    """Every entry of ``references.bib``, by key: the entry's text."""
    text = path.read_text(encoding="utf-8")
    starts = list(re.finditer(r"^@\w+\s*\{\s*([^,\s]+)\s*,", text, flags=re.M))
    ends = [m.start() for m in starts[1:]] + [len(text)]
    return {m.group(1): text[m.end() : end] for m, end in zip(starts, ends)}


def _bib_field(entry: str, name: str) -> str:
    pattern = rf"^\s*{name}\s*=\s*[{{\"](.*?)[}}\"]\s*,?\s*$"
    match = re.search(pattern, entry, flags=re.M)
    return re.sub(r"[{}]", "", match.group(1)) if match else ""


def citation(key: str, path: Path = BIB) -> str:
    """``He et al. 2016`` for ``he2016deep``. A key not in ``references.bib`` is
    an error: a number without a source it can be checked against is not shown."""
    entries = _bib_entries(path)
    if key not in entries:
        raise KeyError(
            f"{key!r} is not a key of {path.name}: a reference needs a source"
        )
    authors = [a.strip() for a in _bib_field(entries[key], "author").split(" and ")]
    surnames = [
        a.split(",")[0].strip() if "," in a else a.split()[-1] for a in authors if a
    ]
    year = _bib_field(entries[key], "year")
    if len(surnames) == 2 and surnames[1] != "others":
        who = f"{surnames[0]} and {surnames[1]}"
    elif len(surnames) >= 2:
        who = f"{surnames[0]} et al."
    else:
        who = surnames[0] if surnames else key
    return f"{who} {year}"


# ---- where a run ran -------------------------------------------------------------


def _cpu(cores: int | None) -> str:
    return f"CPU, {cores} cores" if cores else "CPU"


def device_name(device=None) -> str:
    """A device as a reader names it: the GPU's model, or the CPU and its cores."""
    kind = getattr(device, "type", str(device or "cpu")).split(":")[0]
    if kind == "cuda":
        import torch

        return torch.cuda.get_device_name(device)
    if kind == "mps":
        return "Apple GPU (mps)"
    return _cpu(os.cpu_count())


def _run_device(cfg, device) -> str:
    """``device`` if given; else the device ``cfg.device`` picks; else the CPU."""
    if device is None and hasattr(cfg, "device"):
        from .utils import pick_device

        device = pick_device(cfg.device)
    return device_name(device)


def _full_profile_device(cfg) -> str | None:
    """The ``device`` the config's ``full`` profile asks for (None: no such field).
    Read from the profile, not by building that config: its device may not be here."""
    fields = {f.name: f for f in dataclasses.fields(cfg)}
    if "device" not in fields:
        return None
    return type(cfg).PROFILES.get("full", {}).get("device", fields["device"].default)


def _seconds(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    return f"{seconds:.0f} s" if seconds < 600 else f"{seconds / 60:.0f} min"


def script_path(name: str) -> str:
    """The chapter script ``code/<part>/<name>.py``, relative to the repository."""
    found = sorted((ROOT / "code").glob(f"*/{name}.py"))
    if len(found) != 1:
        return f"code/<part>/{name}.py"
    return str(found[0].relative_to(ROOT))


def record_commands(cfg) -> list[str]:
    """The commands that record this chapter's full run, from the repository root."""
    name = cfg.NAME
    return [
        f"python {script_path(name)} --profile=full --out_dir=runs",
        f"cp runs/{name}/metrics.json results/{name}.json",
    ]


def _recorded_label(record: dict) -> str:
    machine = record.get("machine") or {}
    parts = [machine.get("gpu") or _cpu(machine.get("cpu_count"))]
    if record.get("seconds") is not None:
        parts.append(_seconds(record["seconds"]))
    if record.get("date"):
        parts.append(str(record["date"])[:10])
    commit = record.get("commit") or "commit unknown"
    parts.append(commit + ("-dirty" if record.get("dirty") else ""))
    profile = record.get("profile", "full")
    what = (
        "recorded full run"
        if profile == "full"
        else f"recorded run, profile {profile}!"
    )
    return f"{what} ({', '.join(parts)})"


# ---- the table -------------------------------------------------------------------


@dataclass
class ResultsTable:
    """The rows and columns of a results table, as HTML or as aligned text."""

    title: str
    columns: dict[str, Column]
    rows: list[Row]
    notes: list[str]

    def cells(self, row: Row) -> list[str]:
        """The row's values as text, in column order."""
        out = []
        for key, col in self.columns.items():
            text = _format(row.values.get(key), col.format)
            spread = row.spreads.get(key)
            if spread is not None and row.values.get(key) is not None:
                text += f" \u00b1 {_format(spread, col.format)}"
            out.append(text)
        return out

    def text(self, width: int = 100) -> str:
        """Aligned plain text; the columns that do not fit in ``width`` continue
        in a second block below the first (the labels repeated)."""
        labels = [r.label for r in self.rows]
        label_w = max(len(s) for s in labels)
        heads = [c.label for c in self.columns.values()]
        body = [self.cells(r) for r in self.rows]
        col_w = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(heads)]
        blocks, block = [], []  # column indices, one list per block
        for i, w in enumerate(col_w):
            if block and label_w + sum(col_w[j] + 2 for j in block) + w + 2 > width:
                blocks.append(block)
                block = []
            block.append(i)
        blocks.append(block)
        lines = _wrap(self.title, width) if self.title else []
        for n, block in enumerate(blocks):
            if n:
                lines.append("")
            lines.append(
                " " * label_w + "".join(f"  {heads[i]:>{col_w[i]}}" for i in block)
            )
            for label, cells in zip(labels, body):
                lines.append(
                    f"{label:<{label_w}}"
                    + "".join(f"  {cells[i]:>{col_w[i]}}" for i in block)
                )
        if self.notes:
            lines.append("")
        for note in self.notes:
            lines += _wrap(note, width)
        return "\n".join(lines)

    def html(self) -> str:
        """A plain HTML table. Class ``dataframe`` gives it the book theme's own
        table style, which follows light and dark mode; no colour is set here."""
        e = html.escape
        num = ' style="text-align: right; font-variant-numeric: tabular-nums"'
        head = "".join(f"<th{num}>{e(c.label)}</th>" for c in self.columns.values())
        body = []
        for row in self.rows:
            tip = f' title="references.bib: {e(row.source)}"' if row.source else ""
            cells = "".join(f"<td{num}>{e(c)}</td>" for c in self.cells(row))
            body.append(
                f'<tr><th scope="row" style="text-align: left"{tip}>'
                f"{e(row.label)}</th>{cells}</tr>"
            )
        caption = f"<caption>{e(self.title)}</caption>" if self.title else ""
        notes = "".join(
            f"<p>{_code(e(n)).replace(chr(10), '<br>')}</p>" for n in self.notes
        )
        return (
            f'<div class="scratch-results"><table class="dataframe">{caption}'
            f"<thead><tr><th></th>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>{notes}</div>"
        )

    def _repr_html_(self) -> str:
        return self.html()

    def __repr__(self) -> str:
        return self.text()


def _wrap(note: str, width: int) -> list[str]:
    """A note's lines wrapped at ``width``; its own line breaks are kept, and an
    indented line (a command to copy) is never broken."""
    out = []
    for line in note.split("\n"):
        if line.startswith(" ") or len(line) <= width:
            out.append(line)
        else:
            out += textwrap.wrap(
                line,
                width,
                subsequent_indent="  ",
                break_long_words=False,
                break_on_hyphens=False,
            )
    return out


def _code(escaped: str) -> str:
    """`text` in a note as <code>text</code> (the note is already HTML-escaped)."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)


def build_table(
    cfg,
    this_run: dict,
    *,
    columns: dict,
    references=(),
    seconds=None,
    device=None,
    title: str = "",
    notes=(),
    results_dir=None,
) -> ResultsTable:
    """The table :func:`results_table` shows, without showing it."""
    columns = {
        k: c if isinstance(c, Column) else Column(*c) for k, c in columns.items()
    }

    def values(metrics, config):
        return (
            {k: _lookup(metrics, config, k) for k in columns},
            {
                k: _lookup(metrics, config, c.spread)
                for k, c in columns.items()
                if c.spread
            },
        )

    where = [cfg.profile, _run_device(cfg, device)]
    if seconds is not None:
        where.append(_seconds(seconds))
    rows = [
        Row(
            "this run",
            f"this run ({', '.join(where)})",
            *values(this_run, cfg.to_dict()),
        )
    ]

    notes = list(notes)
    record = recorded_run(cfg.NAME, results_dir)
    if record is not None:
        rows.append(
            Row(
                "recorded",
                _recorded_label(record),
                *values(record.get("metrics"), record.get("config")),
            )
        )
    else:
        rows.append(
            Row("recorded", "recorded full run (none yet)", dict.fromkeys(columns))
        )
        where = "a CPU" if _full_profile_device(cfg) in (None, "cpu") else "a GPU"
        commands = "\n".join(f"  `{c}`" for c in record_commands(cfg))
        notes.insert(
            0,
            f"No full run is recorded yet (results/{cfg.NAME}.json). "
            f"To record one, run on {where}:\n{commands}",
        )

    for ref in references:
        unknown = sorted(set(ref.values) - set(columns))
        if unknown:
            raise KeyError(f"reference {ref.label!r}: no column {unknown[0]!r}")
        label = citation(ref.source) + (f": {ref.label}" if ref.label else "")
        if ref.setting:
            label += f" ({ref.setting})"
        rows.append(
            Row(
                "reference",
                label,
                {k: ref.values.get(k) for k in columns},
                source=ref.source,
            )
        )
    return ResultsTable(title, columns, rows, notes)


def _in_notebook() -> bool:
    return "ipykernel" in sys.modules


def results_table(
    cfg,
    this_run: dict,
    *,
    columns: dict,
    references=(),
    seconds=None,
    device=None,
    title: str = "",
    notes=(),
    results_dir=None,
) -> list[Row]:
    """Show a chapter's results table (HTML in a notebook and the book, aligned
    text in a script) and return its rows, for the chapter's asserts.

    ``this_run`` holds what this run measured (the metrics it saves); ``columns``
    maps a path into those metrics (or ``config.<field>``) to a :class:`Column` or
    a tuple ``(label, format[, spread])``; ``references`` are :class:`Reference`
    rows; ``seconds`` is this run's duration, ``device`` where it ran (default:
    the device ``cfg.device`` picks, or the CPU); ``notes`` are lines shown under
    the table; ``results_dir`` is where recorded runs are read (default
    ``results/``).
    """
    table = build_table(
        cfg,
        this_run,
        columns=columns,
        references=references,
        seconds=seconds,
        device=device,
        title=title,
        notes=notes,
        results_dir=results_dir,
    )
    if _in_notebook():
        from IPython.display import display

        display(table)
    else:
        print(table.text())
    return table.rows
