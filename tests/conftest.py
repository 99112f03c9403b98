"""Shared test settings: where the repository is, and quiet, fast runs."""
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("SCRATCH_PROGRESS", "0")
os.environ.setdefault("MPLBACKEND", "Agg")


def chapters():
    """Every chapter page (MyST notebook with code cells) of the book."""
    return sorted(p for p in (ROOT / "book").rglob("*.md") if "{code-cell}" in p.read_text(encoding="utf-8"))


@pytest.fixture
def root():
    return ROOT
