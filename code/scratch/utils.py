"""Small shared helpers: seeding, devices, atomic file writes, run records.

Chapter: "Running the chapters yourself" (book/appendix/running.md).
"""

from __future__ import annotations

import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and (if imported) PyTorch, so a run repeats exactly on one
    machine.

    PyTorch is seeded only when the caller already imported it: importing it here
    would cost the NumPy-only chapters two seconds. Seed after your imports.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch = sys.modules.get("torch")
    if torch is None:
        return
    torch.manual_seed(seed)  # also seeds every CUDA device
    if torch.cuda.is_available():
        # CPU kernels are deterministic already; on a GPU ask for deterministic kernels
        # where PyTorch has them (warn, not fail, where it has none). Not on the CPU:
        # the call costs a second of imports, most of a tiny run.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def pick_device(name: str = "auto"):
    """``auto`` means the fastest device present: cuda, then mps, then cpu."""
    import torch

    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside ``path``; on success rename it over ``path``.

    The rename is atomic on POSIX, so a crash mid-write never leaves a half-written
    file where a reader (or a resumed run) would trust it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def machine_info() -> dict:
    """What ran this: enough to compare numbers across machines honestly."""
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
            info["gpu_count"] = torch.cuda.device_count()
    except ImportError:
        pass
    return info


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def git_commit() -> str | None:
    """The commit the code ran at (None outside a git checkout)."""
    out = _git("rev-parse", "--short", "HEAD")
    return out.strip() or None if out is not None else None


def git_dirty() -> bool | None:
    """True if tracked files differ from that commit: the code that ran is not the
    commit's."""
    out = _git("status", "--porcelain", "--untracked-files=no")
    return bool(out.strip()) if out is not None else None


def save_run(path, cfg, metrics: dict, seconds: float, **extra) -> dict:
    """Write a run's final metrics with its config, profile, time and machine as JSON.

    ``config`` is the config that produced the metrics: a chapter whose checkpoint was
    made by another config stops before training (see ``TrainConfig.check_run_dir``).
    ``commit`` and ``dirty`` say which code ran: a dirty tree ran uncommitted changes.
    """
    record = {
        "metrics": metrics,
        "profile": cfg.profile,
        "config": cfg.to_dict(),
        "seconds": round(seconds, 2),
        "machine": machine_info(),
        "commit": git_commit(),
        "dirty": git_dirty(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        **extra,
    }
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")
    return record


def results_dir() -> Path:
    """The repository's ``results/`` folder, where recorded ``full`` runs are
    committed."""
    return Path(__file__).resolve().parents[2] / "results"


def recorded_run(name: str, directory=None) -> dict | None:
    """The committed ``full``-profile record ``<directory>/<name>.json`` (default
    ``results/``), or None if none exists; :func:`scratch.results.results_table`
    shows it."""
    path = Path(directory if directory is not None else results_dir()) / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None
