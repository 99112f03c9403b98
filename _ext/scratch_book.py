"""Sphinx extension with what this book's build needs beyond Jupyter Book's defaults.

1. Chapters execute in the ``small`` profile, with progress bars off and their
   runs written under ``_build/runs`` (environment variables inherited by the
   Jupyter kernels that myst-nb starts).
2. No stale outputs: jupyter-cache hashes only a notebook's cells, so a change to
   the ``scratch`` package would leave every cached chapter showing results of the
   old code. We hash the package; when the hash changes, the chapters that import
   ``scratch`` are marked outdated and their cache records are dropped, so they
   run again.
3. plotly.js is served once, from the book's own ``_static`` folder (no CDN, works
   offline); figures are emitted without it by ``scratch.plots.show``.
4. Colab and Binder buttons open the chapter as an ``.ipynb`` from the
   ``notebooks`` branch, which the deploy workflow generates with jupytext (Colab
   cannot open a MyST ``.md``).
5. Any warning fails the build, also when ``-W`` is not given.
6. Chapters are read, and so executed, in the order of the table of contents
   (Sphinx's default is alphabetical), so a chapter that reuses an earlier
   chapter's trained model (adversarial examples attack the ResNet chapter's
   network) finds it in this build's runs folder.
7. A ``{bench-table} NAME`` directive shows ``bench/results/NAME.json`` (written
   by the scripts in ``bench/``) as a table, with its summary and machine.
8. Every ``literalinclude`` with ``:pyobject:`` gets a caption naming the file and
   the object's lines, linked to them in the repository, computed at build time
   (the lines move as the code changes), so a reader goes from page to code in one
   hop.
9. Bibliography labels are unique across the whole book (style ``alpha_unique``):
   every chapter has its own bibliography, and pybtex's ``alpha`` style tells
   same-looking labels apart only within one list, so two chapters citing
   different papers of one author and year got the same label ("Kar22"), which
   sphinxcontrib-bibtex rejects. The letters are assigned once, over all of
   ``references.bib``.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import ast

from docutils import nodes
from sphinx.directives.code import LiteralInclude
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "code" / "scratch"
NOTEBOOKS_BRANCH = "notebooks"


def package_hash(package: Path = PACKAGE) -> str:
    """Hash of every source file of the ``scratch`` package (paths and contents)."""
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _set_environment(app: Sphinx, config) -> None:
    os.environ["SCRATCH_BUILD"] = "1"
    os.environ["SCRATCH_PROFILE"] = "small"  # the cache key ignores the environment: one profile only
    os.environ["SCRATCH_PROGRESS"] = "0"
    # A fresh runs folder per build: a chapter that is re-executed must train again,
    # not resume from the checkpoint an older version of the code left behind.
    runs = Path(app.outdir).parent / "runs"
    shutil.rmtree(runs, ignore_errors=True)
    os.environ["SCRATCH_RUNS"] = str(runs)
    os.environ.setdefault("MPLBACKEND", "Agg")


def _serve_plotly(app: Sphinx) -> None:
    import plotly

    static = Path(app.doctreedir).parent / "scratch_static"
    static.mkdir(parents=True, exist_ok=True)
    source = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    target = static / "plotly.min.js"
    if not target.exists() or target.stat().st_size != source.stat().st_size:
        shutil.copyfile(source, target)
    app.config.html_static_path.append(str(static))
    app.add_js_file("plotly.min.js")


def _outdated_by_package(app: Sphinx, env, added, changed, removed) -> list[str]:
    """Re-execute chapters that import ``scratch`` when the package changed."""
    current = package_hash(Path(app.config.scratch_package_dir))
    name = re.escape(app.config.scratch_package_name)
    uses_package = re.compile(rf"^\s*(from\s+{name}[\s.]|import\s+{name}\b)", re.M)
    cache_dir = Path(env.mystnb_config.execution_cache_path)
    stamp = cache_dir / "scratch-package-hash.json"
    previous = json.loads(stamp.read_text())["hash"] if stamp.exists() else None
    if previous == current:
        return []
    users = [doc for doc in env.found_docs
             if Path(env.doc2path(doc)).suffix == ".md"
             and uses_package.search(Path(env.doc2path(doc)).read_text(encoding="utf-8"))]
    if cache_dir.exists():
        from jupyter_cache import get_cache

        cache = get_cache(str(cache_dir))
        paths = {str(Path(env.doc2path(doc)).resolve()) for doc in users}
        for record in cache.list_cache_records():
            if str(Path(record.uri).resolve()) in paths:
                cache.remove_cache(record.pk)
    cache_dir.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps({"hash": current}))
    if previous is not None:
        logger.info(f"scratch package changed ({previous} -> {current}): re-executing {len(users)} chapters")
    return [doc for doc in users if doc not in added and doc not in changed]


def _dedupe_scripts(app: Sphinx, pagename, templatename, context, doctree) -> None:
    """Drop repeated <script> entries (sphinx-thebe registers its inline config once per
    read phase; twice declares a `const` twice, a JavaScript error on every page)."""
    seen, unique = set(), []
    for script in context.get("script_files", []):
        key = (str(getattr(script, "filename", script) or ""),  # None and "" both mean inline
               tuple(sorted((getattr(script, "attributes", None) or {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def _launch_from_notebooks_branch(app: Sphinx, pagename, templatename, context, doctree) -> None:
    for button in context.get("header_buttons", []):
        for item in button.get("buttons", []) if isinstance(button, dict) else []:
            if item.get("text") not in ("Colab", "Binder"):
                continue
            url = item["url"]
            url = re.sub(r"/main(?=[/?])", f"/{NOTEBOOKS_BRANCH}", url, count=1)
            item["url"] = re.sub(r"\.md$", ".ipynb", url)


def _fail_on_warnings(app: Sphinx, exception) -> None:
    count = getattr(app, "_warncount", 0)
    # With -W (and --keep-going) Sphinx fails the build itself; this covers a plain build.
    if exception is None and count and not app.warningiserror and not app.keep_going:
        raise RuntimeError(f"the build emitted {count} warning(s); this book treats warnings as errors")


class BenchTable(SphinxDirective):
    """Render a benchmark's saved results: its table, summary line, machine and date."""

    required_arguments = 1

    def run(self):
        path = ROOT / "bench" / "results" / f"{self.arguments[0]}.json"
        self.env.note_dependency(str(path))
        if not path.exists():  # not an error: the page says plainly that nothing was measured yet
            return [nodes.paragraph(text=f"No measurement yet: run bench/{self.arguments[0]}.py "
                                         f"(it writes bench/results/{self.arguments[0]}.json).")]
        record = json.loads(path.read_text())
        m = record["machine"]
        row = lambda cells: "| " + " | ".join(str(c) for c in cells) + " |"
        lines = [row(record["headers"]), row(["---"] * len(record["headers"]))] + [row(r) for r in record["rows"]]
        lines += ["", f"**{record['summary']}**", "",
                  f"Measured {record['date']} on {m.get('processor')} with {m.get('cpu_count')} CPUs "
                  f"({m.get('platform')}; Python {m.get('python')}, PyTorch {m.get('torch', 'n/a')}), "
                  f"commit `{record.get('commit')}`."]
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source=str(path)), self.content_offset, container)
        return container.children


def object_lines(path: Path, dotted: str) -> tuple[int, int] | None:
    """First line (its first decorator's, if any) and last line of ``dotted``
    (``Class.method``) in the Python file ``path``, 1-based; None if absent."""
    node = ast.parse(path.read_text(encoding="utf-8"))
    for name in dotted.split("."):
        node = next((n for n in ast.iter_child_nodes(node)
                     if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef,
                                       ast.ClassDef)) and n.name == name), None)
        if node is None:
            return None
    return min([node.lineno] + [d.lineno for d in node.decorator_list]), node.end_lineno


def source_caption(path: Path, dotted: str, root: Path, url: str, branch: str):
    """``(text, link)`` of the caption of a shown object: ``scratch/engine/loop.py,
    lines 44-105`` and its address in the repository (None if it has none)."""
    lines = object_lines(path, dotted)
    if lines is None:
        return None
    rel = path.resolve().relative_to(root.resolve()).as_posix()
    shown = rel.removeprefix("code/")
    text = f"{shown}, lines {lines[0]}\u2013{lines[1]}"
    link = f"{url.rstrip('/')}/blob/{branch}/{rel}#L{lines[0]}-L{lines[1]}" if url else None
    return text, link


class CaptionedLiteralInclude(LiteralInclude):
    """``literalinclude`` that captions a ``:pyobject:`` with its file and lines."""

    def run(self):
        if "pyobject" in self.options and "caption" not in self.options:
            _, filename = self.env.relfn2path(self.arguments[0])
            options = self.env.config.html_theme_options or {}
            found = source_caption(Path(filename), self.options["pyobject"],
                                   Path(self.env.srcdir),
                                   options.get("repository_url", ""),
                                   options.get("repository_branch", "main"))
            if found:
                text, link = found
                # MyST parses the caption as Markdown, reStructuredText as rST.
                markdown = type(self.state).__module__.startswith("myst_parser")
                self.options["caption"] = (
                    text if not link else f"[{text}]({link})" if markdown
                    else f"`{text} <{link}>`__")
        return super().run()


def _toc_order(app: Sphinx, env, docnames: list) -> None:
    """Reorder ``docnames`` (in place) as they appear in ``_toc.yml``; others go last."""
    toc = Path(app.srcdir) / "_toc.yml"
    if not toc.exists():
        return
    files = re.findall(r"^\s*-?\s*(?:file|root):\s*(\S+)", toc.read_text(encoding="utf-8"), re.M)
    rank = {re.sub(r"\.(md|ipynb|rst)$", "", f): i for i, f in enumerate(files)}
    docnames.sort(key=lambda d: (rank.get(d, len(rank)), d))


def _unique_alpha_style():
    """pybtex's alpha style with labels made unique over the whole .bib file."""
    from pybtex.database import parse_file
    from pybtex.plugin import register_plugin
    from pybtex.style.formatting.alpha import Style as AlphaStyle
    from pybtex.style.labels.alpha import LabelStyle as AlphaLabels

    suffixes: dict[str, str] = {}

    def assign(bib: Path) -> None:
        # Group every entry by its plain alpha label; where several entries share
        # one, each gets a letter in the order of its key (stable as the file grows
        # unless a same-label key sorts in before it).
        groups: dict[str, list[str]] = {}
        for key, entry in parse_file(str(bib)).entries.items():
            groups.setdefault(AlphaLabels().format_label(entry), []).append(key)
        for keys in groups.values():
            if len(keys) > 1:
                for i, key in enumerate(sorted(keys)):
                    suffixes[key] = "abcdefghijklmnopqrstuvwxyz"[i]

    class UniqueAlphaLabels(AlphaLabels):
        def format_labels(self, sorted_entries):
            for entry in sorted_entries:
                yield self.format_label(entry) + suffixes.get(entry.key, "")

    class UniqueAlphaStyle(AlphaStyle):
        default_label_style = UniqueAlphaLabels

    register_plugin("pybtex.style.labels", "alpha_unique", UniqueAlphaLabels)
    register_plugin("pybtex.style.formatting", "alpha_unique", UniqueAlphaStyle)
    return assign


_assign_bib_labels = _unique_alpha_style()


def _bib_labels(app: Sphinx, config) -> None:
    try:
        bibfiles = config.bibtex_bibfiles
    except AttributeError:  # a book without sphinxcontrib-bibtex: nothing to label
        return
    for name in bibfiles:
        _assign_bib_labels(Path(app.srcdir) / name)


def setup(app: Sphinx) -> dict:
    app.add_config_value("scratch_package_dir", str(PACKAGE), "env")
    app.add_config_value("scratch_package_name", "scratch", "env")
    app.connect("config-inited", _set_environment)
    app.connect("config-inited", _bib_labels)
    app.connect("builder-inited", _serve_plotly)
    app.connect("env-get-outdated", _outdated_by_package)
    app.connect("env-before-read-docs", _toc_order)
    app.connect("html-page-context", _launch_from_notebooks_branch, priority=600)
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    app.connect("build-finished", _fail_on_warnings)
    app.add_directive("bench-table", BenchTable)
    app.add_directive("literalinclude", CaptionedLiteralInclude, override=True)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1.0"}
