"""Every chapter page has its script twin, and the two say the same thing."""
import jupytext
import pytest

from conftest import ROOT, chapters


def test_there_are_chapters():
    assert len(chapters()) >= 2


@pytest.mark.parametrize("page", chapters(), ids=lambda p: str(p.relative_to(ROOT / "book")))
def test_chapter_has_a_script_twin_in_sync(page):
    rel = page.relative_to(ROOT / "book")
    script = ROOT / "code" / rel.with_suffix(".py")
    assert script.exists(), f"{rel} has no twin code/{rel.with_suffix('.py')}: run `make sync`"
    a, b = jupytext.read(page), jupytext.read(script)
    cells = lambda nb: [(c.cell_type, c.source.strip()) for c in nb.cells]
    assert cells(a) == cells(b), f"{rel} and its script differ: run `make sync`"


def test_every_script_has_a_page():
    for script in (ROOT / "code").rglob("*.py"):
        rel = script.relative_to(ROOT / "code")
        if rel.parts[0] == "scratch":
            continue
        assert (ROOT / "book" / rel.with_suffix(".md")).exists(), f"code/{rel} has no page in book/"


def test_every_chapter_is_in_the_table_of_contents():
    toc = (ROOT / "_toc.yml").read_text()
    for page in chapters():
        assert str(page.relative_to(ROOT).with_suffix("")) in toc, f"{page} is missing from _toc.yml"


def test_no_notebooks_with_outputs_are_tracked():
    import subprocess

    tracked = subprocess.run(["git", "ls-files", "*.ipynb"], cwd=ROOT, capture_output=True, text=True).stdout
    assert tracked.strip() == ""


def test_notebooks_for_colab_and_binder(tmp_path):
    """tools/make_notebooks.py (run by the deploy workflow) writes one notebook per
    chapter: a Colab-only install cell, then the chapter's own cells."""
    import runpy

    import nbformat

    written = runpy.run_path(str(ROOT / "tools" / "make_notebooks.py"))["main"](tmp_path)
    assert len(written) == len(chapters())
    nb = nbformat.read(tmp_path / "book" / "foundations" / "autograd.ipynb", as_version=4)
    nbformat.validate(nb)
    assert "google.colab" in nb.cells[0].source and "subdirectory=code" in nb.cells[0].source
    page = jupytext.read(ROOT / "book" / "foundations" / "autograd.md")
    assert [c.source for c in nb.cells[1:]] == [c.source for c in page.cells]
