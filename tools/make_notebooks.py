"""Write every chapter as a Jupyter notebook, for the Colab and Binder buttons.

The deploy workflow runs this on main and pushes the result to the `notebooks`
branch, to which the book's launch buttons point (Colab opens only `.ipynb`).
Each notebook gets a first cell that installs the `scratch` package when it
runs on Colab (Binder installs it from binder/). Outputs are not included: the
reader runs the chapter.

Usage: python tools/make_notebooks.py [OUT_DIR]   (default: next to each page)
"""
import sys
from pathlib import Path

import jupytext
import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]


def setup_cell(repo_url: str) -> nbformat.NotebookNode:
    source = (
        "# Colab only: install this book's library (`scratch`). Elsewhere, `make setup` did.\n"
        "import sys\n"
        "if 'google.colab' in sys.modules:\n"
        f"    %pip install -q 'scratch @ git+{repo_url}@main#subdirectory=code'\n"
    )
    return nbformat.v4.new_code_cell(source, metadata={"tags": ["colab-setup"]})


def main(out_dir: Path | None = None) -> list[Path]:
    repo_url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    written = []
    for page in sorted((ROOT / "book").rglob("*.md")):
        if "{code-cell}" not in page.read_text(encoding="utf-8"):
            continue
        nb = jupytext.read(page)
        nb.cells.insert(0, setup_cell(repo_url))
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        target = (out_dir or ROOT) / page.relative_to(ROOT).with_suffix(".ipynb")
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, target)
        written.append(target)
        print(f"wrote {target}")
    return written


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else None)
