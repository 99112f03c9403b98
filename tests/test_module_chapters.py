"""Every library module names its chapter, and the chapter really is about it.

A reader goes from a page to the code (captions of shown code, tested in
``test_shown_code.py``) and from the code back to the page: the last line of each
module's docstring is ``Chapter: "<title>" (book/<part>/<chapter>.md).``, where
the title is the page's first heading. The page must show, import or name the
module, and the library table in ``book/appendix/running.md`` lists every module
with the same chapter.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "code" / "scratch"
LINE = re.compile(
    r'^Chapter: "(?P<title>[^"]+)" \(book/(?P<page>[a-z_]+/[a-z_]+)\.md\)\.$'
)
MODULES = sorted(LIBRARY.rglob("*.py"))


def dotted(path: Path) -> str:
    parts = path.relative_to(LIBRARY.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def chapter_line(path: Path) -> re.Match:
    doc = ast.get_docstring(ast.parse(path.read_text()))
    assert doc, f"{path}: no module docstring"
    last = doc.strip().splitlines()[-1]
    match = LINE.match(last)
    assert match, (
        f'{path}: docstring must end with Chapter: "<title>" (book/...md). not {last!r}'
    )
    return match


def mentions(text: str, module: str, path: Path) -> bool:
    """Whether a page's text or its script shows, imports or names ``module``."""
    rel = path.relative_to(LIBRARY.parent).as_posix()
    if module in text or rel in text:
        return True
    parent, _, leaf = module.rpartition(".")
    # ``from scratch.engine import draw`` (possibly in a parenthesised list)
    pattern = rf"from {re.escape(parent)} import \(?[^)\n]*\b{re.escape(leaf)}\b"
    return bool(parent) and re.search(pattern, text) is not None


@pytest.mark.parametrize("path", MODULES, ids=lambda p: dotted(p))
def test_module_names_its_chapter(path):
    match = chapter_line(path)
    page = ROOT / "book" / f"{match['page']}.md"
    assert page.exists(), f"{path}: names {page}, which does not exist"
    text = page.read_text()
    heading = re.search(r"^# (.+)$", text, re.M).group(1).strip()
    assert match["title"] == heading, (
        f"{path}: title {match['title']!r}, page says {heading!r}"
    )
    script = ROOT / "code" / f"{match['page']}.py"
    both = text + (script.read_text() if script.exists() else "")
    module = dotted(path)
    assert mentions(both, module, path), (
        f"{page} neither shows, imports nor names {module}"
    )


def test_library_table_lists_every_module_with_its_chapter():
    text = (ROOT / "book" / "appendix" / "running.md").read_text()
    rows = dict(re.findall(r"^\| `(scratch[\w.]*)` \| .* \| (.+) \|$", text, re.M))
    assert set(rows) == {dotted(p) for p in MODULES}
    for path in MODULES:
        page = chapter_line(path)["page"]
        cell = rows[dotted(path)]
        want = "this page" if page == "appendix/running" else f"{{doc}}`../{page}`"
        assert cell == want, (
            f"{dotted(path)}: the table says {cell}, the docstring {page}"
        )


def test_a_wrong_title_is_caught(tmp_path):
    """The check can fail: a docstring naming a page by another title does not match."""
    bad = tmp_path / "m.py"
    bad.write_text('"""X.\n\nChapter: "Wrong" (book/foundations/autograd.md).\n"""\n')
    match = chapter_line(bad)
    heading = re.search(
        r"^# (.+)$", (ROOT / "book/foundations/autograd.md").read_text(), re.M
    )
    assert match["title"] != heading.group(1)
