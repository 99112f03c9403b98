#!/usr/bin/env bash
# Create or update the project's environment: .venv with requirements.txt (the
# `scratch` package editable), and Debian's chromium for the browser tests.
# Idempotent and quick when nothing changed (a stamp records what was installed).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
stamp=.venv/.requirements.sha256
want=$(cat requirements.txt code/pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing requirements.txt into .venv (first time: a few minutes, several GB for torch)"
  start=$(date +%s)
  .venv/bin/python -m pip install --quiet --upgrade pip
  if [ -n "${TORCH_INDEX_URL:-}" ]; then  # e.g. CI without GPUs: PyTorch's CPU-only wheels
    .venv/bin/python -m pip install --quiet --index-url "$TORCH_INDEX_URL" \
      "$(grep -E '^torch==' requirements.txt | cut -d' ' -f1)" "$(grep -E '^torchvision==' requirements.txt | cut -d' ' -f1)"
  fi
  .venv/bin/python -m pip install --quiet -r requirements.txt
  echo "$want" > "$stamp"
  echo "setup: installed in $(( $(date +%s) - start )) s; .venv is $(du -sh .venv | cut -f1)"
fi

# Headless Chromium for tests/test_built_html.py (Debian's package; playwright
# drives it through its executable path, so no browser is downloaded).
if ! command -v chromium >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "setup: installing Debian's chromium for the browser tests"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null
  else
    echo "setup: no chromium and no apt-get: the built-HTML browser test will be skipped" >&2
  fi
fi
