# The course's commands. Every target installs what it needs first (idempotent: the venv is
# rebuilt only when pyproject.toml or constraints.txt change).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: setup demo test lab bench clean help

help:
	@echo "make demo   - run every lesson (lecture mode) into build/ (HTML + executed notebooks)"
	@echo "make test   - unit tests + every lesson in FAST mode + notebook hygiene"
	@echo "make lab    - JupyterLab on lessons/"
	@echo "make bench  - benchmarks (speed and quality ratios) into build/bench/"
	@echo "make setup  - only create .venv and install the pinned project"

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[lab,dev]"
	@touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(PY) tools/run_lessons.py --mode lecture --out build/lessons

test: $(STAMP)
	$(PY) -m pytest -n 2 --durations=15 -p no:cacheprovider $(PYTEST_ARGS)

lab: $(STAMP)
	$(VENV)/bin/jupyter lab lessons/

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf build .pytest_cache
