"""The book's build extension on a two-page book: no stale outputs, warnings fatal.

jupyter-cache keys executed notebooks on their cells only; _ext/scratch_book.py
must re-execute a page when the library it imports changes, and only then.
"""
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from conftest import ROOT

JB = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin" / "jupyter-book"
PAGE = textwrap.dedent("""\
    ---
    jupytext:
      text_representation:
        extension: .md
        format_name: myst
    kernelspec:
      display_name: Python 3
      language: python
      name: python3
    ---
    # {title}

    ```{{code-cell}} ipython3
    {code}
    ```
    """)


@pytest.fixture
def mini_book(tmp_path):
    book = tmp_path / "book"
    (book / "_ext").mkdir(parents=True)
    shutil.copy(ROOT / "_ext" / "scratch_book.py", book / "_ext")
    pkg = tmp_path / "pkg" / "minilib"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("VALUE = 'first'\n")
    (book / "_config.yml").write_text(textwrap.dedent(f"""\
        title: mini
        only_build_toc_files: true
        execute:
          execute_notebooks: cache
        sphinx:
          local_extensions:
            scratch_book: _ext
          config:
            nb_execution_raise_on_error: true
            scratch_package_dir: {pkg}
            scratch_package_name: minilib
        """))
    (book / "_toc.yml").write_text("format: jb-book\nroot: uses\nchapters:\n  - file: plain\n")
    (book / "uses.md").write_text(PAGE.format(title="Uses", code="import minilib\nprint('value:', minilib.VALUE)"))
    (book / "plain.md").write_text(PAGE.format(title="Plain", code="import os\nprint('pid', os.getpid())"))
    env = {**os.environ, "PYTHONPATH": str(pkg.parent)}
    build = lambda: subprocess.run([str(JB), "build", str(book)], capture_output=True, text=True, env=env,
                                   timeout=300)
    return book, pkg, build


def html(book, page):
    return (book / "_build" / "html" / f"{page}.html").read_text()


def pid(book):
    return html(book, "plain").split("pid ")[1].split()[0]


def test_library_change_re_executes_only_the_pages_that_import_it(mini_book):
    book, pkg, build = mini_book
    first = build()
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "value: first" in html(book, "uses")
    plain_pid = pid(book)
    assert "plotly.min.js" in html(book, "uses")  # served from _static, once per page
    assert (book / "_build" / "html" / "_static" / "plotly.min.js").stat().st_size > 1_000_000

    again = build()  # nothing changed: both pages come from the cache
    assert again.returncode == 0 and "Executing notebook" not in again.stdout

    (pkg / "__init__.py").write_text("VALUE = 'second'\n")
    changed = build()
    assert changed.returncode == 0, changed.stdout[-3000:]
    assert "value: second" in html(book, "uses")  # the stale output is gone
    assert pid(book) == plain_pid  # the page that does not import the library was not re-run


def test_a_failing_cell_fails_the_build(mini_book):
    book, pkg, build = mini_book
    (book / "plain.md").write_text(PAGE.format(title="Plain", code="raise ValueError('boom')"))
    result = build()
    assert result.returncode != 0


def test_a_warning_fails_the_build(mini_book):
    book, pkg, build = mini_book
    (book / "plain.md").write_text("# Plain\n\nA broken reference: {doc}`no-such-page`.\n")
    result = build()
    assert result.returncode != 0
    assert "no-such-page" in result.stdout + result.stderr


def test_chapters_are_read_in_table_of_contents_order(tmp_path, monkeypatch):
    """Sphinx reads (and myst-nb executes) alphabetically unless the extension reorders."""
    import importlib.util
    from types import SimpleNamespace
    spec = importlib.util.spec_from_file_location("scratch_book", ROOT / "_ext" / "scratch_book.py")
    ext = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ext)
    (tmp_path / "_toc.yml").write_text(textwrap.dedent("""\
        format: jb-book
        root: book/intro
        parts:
          - chapters:
              - file: book/vision/index
                sections:
                  - file: book/vision/resnet.md
                  - file: book/vision/adversarial
        """))
    docs = ["book/vision/adversarial", "book/zz_orphan", "book/intro", "book/vision/resnet", "book/vision/index"]
    ext._toc_order(SimpleNamespace(srcdir=str(tmp_path)), None, docs)
    assert docs == ["book/intro", "book/vision/index", "book/vision/resnet", "book/vision/adversarial",
                    "book/zz_orphan"]
