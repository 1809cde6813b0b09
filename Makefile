# The two commands a new user needs: `make demo` and `make test`. Both set up .venv themselves.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test test-heavy figures bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,plot]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m unfold.demo

test: $(STAMP)
	$(PY) -m pytest -n 2 -q

# more hypothesis examples per property (minutes, not for every commit)
test-heavy: $(STAMP)
	HYPOTHESIS_PROFILE=heavy $(PY) -m pytest

figures: $(STAMP)
	$(PY) -m viz.gallery figures

bench: $(STAMP)
	OPENBLAS_NUM_THREADS=1 $(PY) -m bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
