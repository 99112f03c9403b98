"""Build time: a clean build of the whole book, then a cached rebuild with no change.

Builds a copy of the repository in a temporary folder (your own _build is left
alone): `jupyter-book build` from clean, then again with nothing changed.
`--in-place` builds the repository itself instead (deleting its _build first),
which leaves the execution cache that `chapter_budget.py --from-cache` reads.
Targets: the cached rebuild within 30 s; the clean build within CI's budget.

    python bench/build_time.py [--in-place] [--clean-budget 3600] [--cached-budget 30]
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, report

IGNORE = shutil.ignore_patterns(".venv", "_build", ".git", "runs", ".ci-data", "__pycache__", "*.egg-info",
                                ".pytest_cache")


def build(book: Path) -> float:
    jb = Path(sys.executable).parent / "jupyter-book"
    start = time.perf_counter()
    run = subprocess.run([str(jb), "build", str(book), "--warningiserror", "--nitpick", "--keep-going"],
                         capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if run.returncode != 0:
        sys.exit(f"build_time: the build failed:\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clean-budget", type=float, default=3600.0, help="seconds (CI allows 60 min)")
    parser.add_argument("--cached-budget", type=float, default=30.0)
    parser.add_argument("--in-place", action="store_true", help="build this repository (deletes _build first)")
    args = parser.parse_args()
    n_chapters = sum("{code-cell}" in p.read_text(encoding="utf-8") for p in (ROOT / "book").rglob("*.md"))
    if args.in_place:
        shutil.rmtree(ROOT / "_build", ignore_errors=True)
        clean, cached = build(ROOT), build(ROOT)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            book = Path(tmp) / "book"
            shutil.copytree(ROOT, book, ignore=IGNORE)
            clean = build(book)
            cached = build(book)
    rows = [["clean build", n_chapters, f"{clean:.0f}", f"{args.clean_budget:.0f}",
             "ok" if clean <= args.clean_budget else "OVER"],
            ["cached rebuild, no change", n_chapters, f"{cached:.1f}", f"{args.cached_budget:.0f}",
             "ok" if cached <= args.cached_budget else "OVER"]]
    ok = clean <= args.clean_budget and cached <= args.cached_budget
    summary = (f"build time: clean {clean:.0f} s, cached no-change rebuild {cached:.1f} s, "
               f"{n_chapters} chapters; " + ("within budgets" if ok else "OVER budget"))
    return report("build_time", ["build", "chapters", "seconds", "budget (s)", "status"], rows, summary, ok=ok)


if __name__ == "__main__":
    sys.exit(main())
