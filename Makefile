# The book and its tests. Two commands do everything on a fresh machine:
#   make book   build the website into _build/html
#   make test   every test: unit tests; every notebook re-executed by nbval against its stored
#               outputs in a fresh, non-editable install (as in Colab); the built book in a browser
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
NOTEBOOKS := $(sort $(wildcard hw2_solutions/*.ipynb chapters/*.ipynb))
# Notebooks render their maps as static PNGs when executed for storage or for nbval.
export BAYESGLM_STATIC_FIGURES := 1
export PYTHONHASHSEED := 0

.PHONY: install book test unit nbval notebooks bench clean browser-test colab-test performance teaser

$(VENV)/.installed: pyproject.toml constraints.txt
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || command -v google-chrome >/dev/null || \
	  { echo "Installing Chromium (kaleido needs a Chrome to export figures)"; \
	    $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y chromium >/dev/null || \
	    { echo "Could not install Chromium: install it with your package manager (Debian: apt-get install chromium)"; exit 1; }; }
	@command -v npm >/dev/null || \
	  { echo "Installing npm (the book's MathJax comes from the npm registry)"; \
	    $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y npm >/dev/null || \
	    { echo "Could not install npm: install it with your package manager (Debian: apt-get install npm)"; exit 1; }; }
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[test,book]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

install: $(VENV)/.installed

book: install
	scripts/fetch_mathjax.sh
	$(VENV)/bin/jupyter-book build --warningiserror --keep-going --path-output . .
	$(PY) -m bayesglm.grading student hw2_solutions -o _build/html/student
	@echo "The book is in _build/html/index.html"

unit: install
	$(PY) -m pytest -q tests --ignore=tests/site/test_browser.py

nbval: install
	$(PY) -m pytest -q --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg \
	  -p no:randomly $(NOTEBOOKS)

test: unit colab-test browser-test

# Re-execute every notebook in place and store its outputs (after the package changes what one shows).
notebooks: install
	for nb in $(NOTEBOOKS); do echo "executing $$nb"; \
	  $(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=1200 "$$nb" || exit 1; done

# The website as readers get it: every page of the built book in headless Chromium (Debian's),
# served on localhost; screenshots go to _build/screenshots/. Run after `make book`.
browser-test: book
	BOOK_REQUIRED=1 $(PY) -m pytest -q -p no:randomly tests/site/test_browser.py

# Every notebook as Colab runs it: nbval in a fresh environment (build/colab-venv) holding only
# the package, installed non-editably with `pip install .`, from copies outside the repository.
colab-test: install
	$(PY) tests/site/colab_like.py --venv build/colab-venv

# Render bench/results/*.json into chapters/performance.md and its figure (after `make bench`).
performance: install
	$(PY) scripts/render_performance.py

# Redraw the landing page's map (_static/teaser_2020_vote_share.png).
teaser: install
	$(PY) scripts/make_teaser.py

bench: install
	for b in bench/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf _build
