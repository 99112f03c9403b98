"""Progress bars that suit where the code runs.

- in Jupyter (with ipywidgets): a notebook bar;
- in a terminal: a terminal bar;
- in the book build, in CI, in a log file, or when ``SCRATCH_PROGRESS=0``: no bar
  at all, because a bar redrawn into a log is thousands of lines of noise. The
  training loop prints one summary line per epoch instead.

Chapter: "Running the chapters yourself" (book/appendix/running.md).
"""

from __future__ import annotations

import os
import sys


def enabled() -> bool:
    setting = os.environ.get("SCRATCH_PROGRESS", "").lower()
    if setting in ("0", "false", "off", "no"):
        return False
    if os.environ.get(
        "SCRATCH_BUILD"
    ):  # set by the book build (see _ext/scratch_book.py)
        return False
    if setting in ("1", "true", "on", "yes"):
        return True
    return _notebook_bar_available() or sys.stderr.isatty()


def _notebook_bar_available() -> bool:
    if "ipykernel" not in sys.modules:
        return False
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def bar(iterable=None, disable: bool = False, **kwargs):
    """A tqdm bar of the right kind, or a silent one when bars are off."""
    if disable or not enabled():
        from tqdm import tqdm

        return tqdm(iterable, disable=True, **kwargs)
    if _notebook_bar_available():
        from tqdm.notebook import tqdm
    else:
        from tqdm import tqdm
    return tqdm(iterable, dynamic_ncols=True, leave=False, **kwargs)
