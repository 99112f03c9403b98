"""Chapter budget: each chapter's time in the `small` profile, run as a learner runs it, against 90 s.

Default: every chapter script runs in a fresh process with an empty runs folder of its
own (`python code/<part>/<name>.py --profile=small --out_dir=<empty temporary folder>`),
as a learner runs it: imports, data loading, plots, and whatever the chapter needs
from another chapter included. The adversarial chapter, which attacks the ResNet
chapter's network, finds no ResNet run there and trains the network itself first
(checked: a run that did not train it is an error).

`--chapter NAME` (repeatable, e.g. `--chapter vision/adversarial`) times only the
chapters named and merges their rows into the saved table: their old rows are
replaced, the other rows are kept, and every row says how and at which commit it was
measured.

`--from-cache` reads the execution times that the last `make book` recorded in its
jupyter-cache instead (no re-execution): notebook execution inside one build, in the
order of the table of contents. There the adversarial chapter loads the network the
ResNet chapter has just trained, so the build's time for it is not what a learner
waits; that chapter is still timed alone, in a fresh process as above.

Exits non-zero when a chapter is over budget.

    python bench/chapter_budget.py [--chapter NAME ...] [--from-cache] [--budget 90]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import RESULTS, ROOT, cpu_info, report
from scratch.utils import git_commit, machine_info

HEADERS = ["chapter", "seconds (small)", "of budget", "status", "measured"]
FRESH = "alone, fresh process"
BUILD = "book build (cache)"
# Chapters that reuse another chapter's output when the book is built, and what they
# do instead when run alone; `marker` is a line of their output that proves it.
ALONE = {"vision/adversarial": dict(does="trains the ResNet-chapter network itself",
                                    marker="training the ResNet-chapter network")}
# Chapters allowed more than --budget, and why (the developers' guide allows up to 180 s
# with a reason): run alone, the adversarial chapter first trains the ResNet chapter's
# network (about 75 s of its time), which a book build does not repeat.
EXTRA = {
    "vision/adversarial": (180.0, "trains the ResNet-chapter network first"),
    "sequences/lstm": (
        180.0,
        "three cells at equal training time and four on the same delays",
    ),
    "sequences/vit": (
        180.0,
        "a ViT, the ViT with a convolutional stem and a ResNet at an equal number "
        "of steps, and the patch-size study",
    ),
}


def budget_of(name: str, default: float) -> float:
    return EXTRA[name][0] if name in EXTRA else default
# What the methods of tables saved before rows named their own method.
OLD_METHODS = {"notebook execution in the last book build": BUILD, "script run, fresh process": FRESH}


def chapters() -> list[str]:
    pages = sorted(p for p in (ROOT / "book").rglob("*.md") if "{code-cell}" in p.read_text(encoding="utf-8"))
    return [str(p.relative_to(ROOT / "book").with_suffix("")) for p in pages]


def time_script(name: str) -> float:
    """Seconds of ``code/<name>.py --profile=small`` in a fresh process and an empty runs folder."""
    env = {**os.environ, "SCRATCH_PROGRESS": "0", "MPLBACKEND": "Agg"}
    for key in ("SCRATCH_BUILD", "SCRATCH_RUNS", "SCRATCH_PROFILE"):
        env.pop(key, None)
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        run = subprocess.run([sys.executable, str(ROOT / "code" / f"{name}.py"), "--profile=small",
                              f"--out_dir={out}"], capture_output=True, text=True, env=env, cwd=out)
        seconds = time.perf_counter() - start
    if run.returncode != 0:
        sys.exit(f"chapter_budget: code/{name}.py failed: {run.stderr.strip().splitlines()[-1:]}")
    alone = ALONE.get(name)
    if alone and alone["marker"] not in run.stdout:
        sys.exit(f"chapter_budget: code/{name}.py did not print {alone['marker']!r}: it should have, since "
                 f"it {alone['does']} when run alone")
    print(f"  code/{name}.py: {seconds:.1f} s", file=sys.stderr)
    return seconds


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
    missing = [name for name in chapters() if name not in times]
    if missing:
        sys.exit(f"chapter_budget: no cached execution for {', '.join(missing)}: run `make book`")
    return times


def saved_rows() -> dict[str, list]:
    """The saved table's rows by chapter, each with its `measured` column. Rows from
    another machine are not comparable: a different CPU stops the merge."""
    path = RESULTS / "chapter_budget.json"
    if not path.exists():
        return {}
    record = json.loads(path.read_text())
    here = {"machine": {k: v for k, v in machine_info().items() if k != "platform"}, "cpu": cpu_info()}
    saved = {"machine": {k: v for k, v in record.get("machine", {}).items() if k != "platform"},
             "cpu": record.get("cpu")}
    if saved["cpu"] is None:
        print("chapter_budget: the saved table does not say which CPU it was measured on; merging "
              "anyway, compare the machines before trusting the mixed table", file=sys.stderr)
        saved["cpu"] = here["cpu"]
    if saved != here:
        sys.exit(f"chapter_budget: the saved table was measured on another machine ({saved}, here {here}); "
                 "re-time every chapter (no --chapter) instead of mixing the two")
    if record.get("headers") == HEADERS:
        return {row[0]: row for row in record["rows"]}
    how = f"{OLD_METHODS.get(record.get('method'), record.get('method'))} @{record.get('commit')}"
    return {row[0]: list(row[:4]) + [how] for row in record["rows"]}


def row(name: str, seconds: float, budget: float, how: str) -> list:
    budget = budget_of(name, budget)
    status = "ok" if seconds <= budget else "OVER"
    if name in EXTRA:
        status += f" ({budget:.0f} s allowed: {EXTRA[name][1]})"
    return [name, f"{seconds:.1f}", f"{100 * seconds / budget:.0f}%", status, how]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chapter", action="append", metavar="NAME", default=[],
                        help="time only this chapter (e.g. vision/adversarial; repeatable) and merge its row "
                             "into the saved table")
    parser.add_argument("--from-cache", action="store_true",
                        help="read the last build's execution times (chapters in ALONE are still timed alone)")
    parser.add_argument("--budget", type=float, default=90.0, help="seconds allowed per chapter (default 90)")
    args = parser.parse_args()
    known = chapters()
    unknown = [name for name in args.chapter if name not in known]
    if unknown:
        parser.error(f"unknown chapter {unknown[0]!r}; chapters: {', '.join(known)}")
    if args.chapter and args.from_cache:
        parser.error("--chapter times scripts; it does not combine with --from-cache")

    commit = git_commit()
    fresh = lambda name: f"{FRESH}, {ALONE[name]['does']}" if name in ALONE else FRESH
    rows = saved_rows() if args.chapter else {}
    if args.from_cache:
        for name, seconds in times_from_cache().items():
            if name not in ALONE:
                rows[name] = row(name, seconds, args.budget, f"{BUILD} @{commit}")
    for name in args.chapter or [name for name in known if not (args.from_cache and name not in ALONE)]:
        rows[name] = row(name, time_script(name), args.budget, f"{fresh(name)} @{commit}")

    rows = [rows[name] for name in sorted(rows)]
    times = {r[0]: float(r[1]) for r in rows}
    over = [name for name, t in times.items() if t > budget_of(name, args.budget)]
    methods: dict[str, list[str]] = {}
    for r in rows:
        methods.setdefault(r[4].rsplit(" @", 1)[0], []).append(r[0])
    how = "; ".join(f"{len(names)} {method}" + (f" ({', '.join(names)})" if len(names) < 4 else "")
                    for method, names in methods.items())
    summary = (f"chapter budget: {len(times)} chapters, slowest {max(times.values()):.1f} s, total "
               f"{sum(times.values()):.0f} s ({how}); "
               + (f"OVER the {args.budget:.0f} s budget: {', '.join(over)}" if over
                  else f"all within {args.budget:.0f} s"
                  + "".join(f", {n} within its {b:.0f} s" for n, (b, _) in EXTRA.items() if n in times)))
    return report("chapter_budget", HEADERS, rows, summary, ok=not over, method=how, budget_s=args.budget)


if __name__ == "__main__":
    sys.exit(main())
