# The course's commands. Every target installs what it needs first (idempotent: the venv is
# rebuilt only when pyproject.toml or constraints.txt change).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: setup demo test lab bench grade clean help

help:
	@echo "make demo   - run every lesson (lecture mode) into build/ (HTML + executed notebooks), grade a demo HW2 class"
	@echo "make test   - unit tests + every lesson in FAST mode + notebook hygiene"
	@echo "make lab    - JupyterLab at the repository root (lessons/, hw2/)"
	@echo "make bench  - benchmarks (speed and quality ratios, outside baselines installed) into build/bench/ [BENCH_ARGS=--quick]"
	@echo "make grade DOWNLOAD=lms.zip [COURSE_DIR=dir] - TAs: grade HW2 (see grading/README.md)"
	@echo "make setup  - only create .venv and install the pinned project"

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[lab,dev]"
	@touch $(STAMP)

setup: $(STAMP)
	@command -v bwrap >/dev/null || echo "note: HW2 autograding runs student code in a bubblewrap sandbox: sudo apt-get install bubblewrap (see grading/README.md)"

demo: $(STAMP)
	$(PY) tools/run_lessons.py --mode lecture --out build/lessons
	$(PY) -m grading demo --out build/hw2-demo

grade: $(STAMP)
	@test -n "$(DOWNLOAD)" || { echo "usage: make grade DOWNLOAD=lms.zip [COURSE_DIR=~/hw2-grading]"; exit 2; }
	@command -v bwrap >/dev/null || { echo "HW2 grading needs bubblewrap to sandbox student code: sudo apt-get install bubblewrap (or see grading/README.md for --no-sandbox)"; exit 2; }
	$(PY) -m grading all --download "$(DOWNLOAD)" --course-dir "$(or $(COURSE_DIR),build/hw2-grading)"

# two test processes on two cores: one math thread each (torch oversubscribed is many times slower)
test: $(STAMP)
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 COURSE_THREADS=1 $(PY) -m pytest -n 2 --durations=25 -p no:cacheprovider $(PYTEST_ARGS)

lab: $(STAMP)
	$(VENV)/bin/jupyter lab

# the outside baselines (pytsmod, torchsynth: the `bench` extra) only for `make bench`; `make test`
# installs [lab,dev] as before. Re-installed whenever the project's pins change ($(STAMP) is newer).
$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[lab,dev,bench]"
	@touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(PY) benchmarks/run_all.py $(BENCH_ARGS)

clean:
	rm -rf build .pytest_cache
