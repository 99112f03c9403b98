# The two commands of the README:
#   make book   set everything up, then build the HTML book (every chapter executed)
#   make test   set everything up, then run the whole test suite
.PHONY: setup book test clean sync

VENV := .venv/bin

setup:
	@bash tools/setup.sh

book: setup
	$(VENV)/jupyter-book build . --warningiserror --nitpick --keep-going
	@echo "book: open _build/html/index.html"

test: setup
	$(VENV)/python -m pytest

sync:  # re-pair every chapter after editing either twin
	$(VENV)/jupytext --sync $$(grep -l "{code-cell}" book/*/*.md)

clean:
	rm -rf _build
