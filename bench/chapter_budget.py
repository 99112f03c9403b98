"""Chapter budget: each chapter's execution time in the `small` profile against 90 s.

Default: time every chapter script in a fresh process (`python code/<part>/<name>.py
--profile small`), as a learner would run it. `--from-cache` instead reads the
execution times that the last `make book` recorded in its jupyter-cache (no
re-execution). Exits non-zero when a chapter is over budget.

    python bench/chapter_budget.py [--from-cache] [--budget 90]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, report


def chapters() -> list[Path]:
    return sorted(p for p in (ROOT / "book").rglob("*.md") if "{code-cell}" in p.read_text(encoding="utf-8"))


def time_scripts() -> dict[str, float]:
    times = {}
    env = {**os.environ, "SCRATCH_PROGRESS": "0", "MPLBACKEND": "Agg"}
    env.pop("SCRATCH_BUILD", None)
    for page in chapters():
        rel = page.relative_to(ROOT / "book").with_suffix(".py")
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            run = subprocess.run([sys.executable, str(ROOT / "code" / rel), "--profile=small", f"--out_dir={out}"],
                                 capture_output=True, text=True, env=env)
            seconds = time.perf_counter() - start
        if run.returncode != 0:
            sys.exit(f"chapter_budget: code/{rel} failed: {run.stderr.strip().splitlines()[-1:]}")
        times[str(rel.with_suffix(""))] = seconds
        print(f"  {rel}: {seconds:.1f} s", file=sys.stderr)
    return times


def times_from_cache() -> dict[str, float]:
    from jupyter_cache import get_cache

    cache_dir = ROOT / "_build" / ".jupyter_cache"
    if not cache_dir.exists():
        sys.exit("chapter_budget: no execution cache: run `make book` first, or drop --from-cache")
    cache = get_cache(str(cache_dir))
    times = {}
    for record in cache.list_cache_records():
        path = Path(record.uri)
        if path.is_relative_to(ROOT / "book") and path.exists():
            times[str(path.relative_to(ROOT / "book").with_suffix(""))] = record.data.get("execution_seconds")
    missing = [str(p.relative_to(ROOT / "book").with_suffix("")) for p in chapters()
               if str(p.relative_to(ROOT / "book").with_suffix("")) not in times]
    if missing:
        sys.exit(f"chapter_budget: no cached execution for {', '.join(missing)}: run `make book`")
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from-cache", action="store_true", help="read the last build's execution times")
    parser.add_argument("--budget", type=float, default=90.0, help="seconds allowed per chapter (default 90)")
    args = parser.parse_args()
    times = times_from_cache() if args.from_cache else time_scripts()
    how = "notebook execution in the last book build" if args.from_cache else "script run, fresh process"
    rows = [[name, f"{t:.1f}", f"{100 * t / args.budget:.0f}%", "ok" if t <= args.budget else "OVER"]
            for name, t in sorted(times.items())]
    over = [name for name, t in times.items() if t > args.budget]
    total = sum(times.values())
    summary = (f"chapter budget: {len(times)} chapters, slowest {max(times.values()):.1f} s, total {total:.0f} s "
               f"({how}); " + (f"OVER the {args.budget:.0f} s budget: {', '.join(over)}" if over
                               else f"all within {args.budget:.0f} s"))
    return report("chapter_budget", ["chapter", "seconds (small)", "of budget", "status"], rows, summary,
                  ok=not over, method=how, budget_s=args.budget)


if __name__ == "__main__":
    sys.exit(main())
