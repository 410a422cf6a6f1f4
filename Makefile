# The book and its tests. Two commands do everything on a fresh machine:
#   make book   build the website into _build/html
#   make test   unit tests, then every notebook re-executed and compared with its stored outputs
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
NOTEBOOKS := $(sort $(wildcard hw2_solutions/*.ipynb chapters/*.ipynb))
# Notebooks render their maps as static PNGs when executed for storage or for nbval.
export BAYESGLM_STATIC_FIGURES := 1
export PYTHONHASHSEED := 0

.PHONY: install book test unit nbval notebooks bench clean

$(VENV)/.installed: pyproject.toml constraints.txt
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || command -v google-chrome >/dev/null || \
	  { echo "Installing Chromium (kaleido needs a Chrome to export figures)"; \
	    $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y chromium >/dev/null || \
	    { echo "Could not install Chromium: install it with your package manager (Debian: apt-get install chromium)"; exit 1; }; }
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[test,book]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

install: $(VENV)/.installed

book: install
	$(VENV)/bin/jupyter-book build --warningiserror --keep-going --path-output . .
	@echo "The book is in _build/html/index.html"

unit: install
	$(PY) -m pytest -q tests

nbval: install
	$(PY) -m pytest -q --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg \
	  -p no:randomly $(NOTEBOOKS)

test: unit nbval

# Re-execute every notebook in place and store its outputs (after the package changes what one shows).
notebooks: install
	for nb in $(NOTEBOOKS); do echo "executing $$nb"; \
	  $(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=1200 "$$nb" || exit 1; done

bench: install
	for b in bench/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf _build
