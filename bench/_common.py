"""Shared by the benchmark scripts: the machine, tables, and where results go."""
from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

from scratch.utils import atomic_write_text, git_commit, machine_info

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def cpu_info() -> dict:
    """The CPU's model and the vector extensions that decide bf16 speed: without AVX-512
    BF16 or AMX, PyTorch emulates bf16 matrix products on a CPU, several times slower
    than fp32. Two machines with the same `machine_info()` can differ here."""
    model, flags = None, set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model is None:
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    wanted = ["avx2", "avx512f", "avx512_bf16", "amx_bf16"]
    return {"model": model, "flags": [f for f in wanted if f in flags]}


def table(headers: list[str], rows: list[list]) -> str:
    """A Markdown table (what the appendix page shows, and readable in a terminal)."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"
    return "\n".join([line(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
                     + [line(r) for r in cells[1:]])


def save(name: str, headers: list[str], rows: list[list], summary: str, **extra) -> Path:
    """Write results/<name>.json: the table, its one-line summary, the machine and the commit."""
    path = RESULTS / f"{name}.json"
    record = {"name": name, "headers": headers, "rows": rows, "summary": summary,
              "machine": machine_info(), "cpu": cpu_info(), "commit": git_commit(),
              "date": time.strftime("%Y-%m-%d %H:%M:%S %z"), **extra}
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")
    return path


def report(name: str, headers, rows, summary: str, ok: bool, **extra) -> int:
    print(table(headers, rows))
    print()
    print(summary)
    path = save(name, headers, rows, summary, ok=ok, **extra)
    print(f"(saved {path.relative_to(ROOT)})", file=sys.stderr)
    return 0 if ok else 1


def median(xs):
    return statistics.median(xs)
