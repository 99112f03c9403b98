"""The library code the book shows (``literalinclude`` with ``:pyobject:``) exists and
reads as written: a docstring with LaTeX must be a raw string, or the page shows
``$\\log \\mathrm{softmax}$`` with every backslash doubled."""
import ast
import re

import pytest

from conftest import ROOT

INCLUDE = re.compile(r"```\{literalinclude\}\s+(\S+)\n((?::[^\n]*\n)*)")


def shown_objects():
    """(page, file, dotted name) of every object a chapter shows."""
    found = []
    for page in sorted((ROOT / "book").rglob("*.md")):
        for m in INCLUDE.finditer(page.read_text(encoding="utf-8")):
            options = dict(re.findall(r":(\S+):[ \t]*(.*)", m.group(2)))
            if "pyobject" in options:
                found.append((page, (page.parent / m.group(1)).resolve(), options["pyobject"]))
    return found


def find(tree, dotted):
    node = tree
    for name in dotted.split("."):
        node = next((n for n in ast.iter_child_nodes(node)
                     if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n.name == name),
                    None)
        if node is None:
            return None
    return node


def docstrings(tree):
    """The string-literal nodes that are docstrings, anywhere in the tree."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                yield first.value


SHOWN = shown_objects()


def test_the_book_shows_library_objects():
    assert len(SHOWN) > 50, f"found only {len(SHOWN)} shown objects: is the pattern still right?"


@pytest.mark.parametrize("page,path,name", SHOWN,
                         ids=[f"{p.relative_to(ROOT / 'book')}:{n}" for p, _, n in SHOWN])
def test_shown_object_exists_and_has_no_doubled_backslashes(page, path, name):
    assert path.is_file(), f"{page.name} includes {path}, which does not exist"
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    node = find(tree, name)
    assert node is not None, f"{page.name} shows {name}, which {path.name} does not define"
    lines = source.splitlines()
    for doc in docstrings(node):
        text = "\n".join(lines[doc.lineno - 1:doc.end_lineno])[doc.col_offset:]
        prefix = re.match(r"[A-Za-z]*", text).group(0)
        assert "\\\\" not in text or "r" in prefix.lower(), (
            f"{path.name}:{doc.lineno}, shown in {page.name}: a docstring with doubled backslashes; "
            "make it a raw string (r\"\"\"...\"\"\") and write single ones")


def _book_extension():
    import importlib
    import sys

    sys.path.insert(0, str(ROOT / "_ext"))
    try:
        return importlib.import_module("scratch_book")
    finally:
        sys.path.pop(0)


@pytest.mark.parametrize("page,path,name", SHOWN,
                         ids=[f"{p.relative_to(ROOT / 'book')}:{n}" for p, _, n in SHOWN])
def test_caption_names_the_file_and_the_lines_shown(page, path, name):
    """The build captions every shown object with its file and lines and links them;
    the lines are those of the object (first decorator to last line), found here
    independently with ast."""
    ext = _book_extension()
    text, link = ext.source_caption(path, name, ROOT, "https://example.org/r", "main")
    node = find(ast.parse(path.read_text(encoding="utf-8")), name)
    first = min([node.lineno] + [d.lineno for d in node.decorator_list])
    rel = path.relative_to(ROOT).as_posix()
    assert text == f"{rel.removeprefix('code/')}, lines {first}\u2013{node.end_lineno}"
    assert link == f"https://example.org/r/blob/main/{rel}#L{first}-L{node.end_lineno}"


def test_shown_lines_fit_the_column():
    """The library code the book prints is at most 88 columns wide (ruff.toml)."""
    wide = []
    for page, path, name in SHOWN:
        lines = path.read_text(encoding="utf-8").splitlines()
        node = find(ast.parse("\n".join(lines)), name)
        first = min([node.lineno] + [d.lineno for d in node.decorator_list])
        wide += [f"{path.name}:{i}" for i in range(first, node.end_lineno + 1)
                 if len(lines[i - 1]) > 88]
    assert not wide, f"{len(wide)} shown lines over 88 columns: {', '.join(sorted(set(wide))[:20])}"
