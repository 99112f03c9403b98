"""code/ passes ruff (ruff.toml: lint rules, imports sorted, lines of at most 88
columns in the library) and is formatted by it, as pre-commit keeps it."""
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

RUFF = Path(sys.executable).with_name("ruff")


@pytest.mark.parametrize("command", [["check", "code"], ["format", "--check", "code"]],
                         ids=["check", "format"])
def test_ruff(command):
    done = subprocess.run([str(RUFF), *command], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
