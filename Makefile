# The two commands a new user needs: `make demo` and `make test`. Both set up .venv themselves.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# One BLAS thread: the graphs' GEMMs are small to medium, and OpenBLAS's spinning threads cost far
# more than they give when the cores are shared (pytest -n 2, or any other load): the demo ran 4×
# slower with them on this project's 2-core machine. Override with OPENBLAS_NUM_THREADS=N make …
export OPENBLAS_NUM_THREADS ?= 1
export OMP_NUM_THREADS ?= 1

.PHONY: demo test test-heavy test-oracles figures bench bench-scale bench-viz clean

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

# the optional outside oracles (PyTorch's nn.LSTM / nn.GRU against the cells), installed here
test-oracles: $(STAMP)
	$(PY) -m pip install --quiet torch
	$(PY) -m pytest -q tests/test_models_torch.py

figures: $(STAMP)
	$(PY) -m viz.gallery figures

# one thread, pinned to one core when taskset exists; writes bench/results.json and the tables of
# bench/README.md (optional peers: pip install torch jax jaxlib autograd)
bench: $(STAMP)
	if command -v taskset >/dev/null; then \
	  OPENBLAS_NUM_THREADS=1 UNFOLD_BENCH_PINNED="core 0 (taskset)" taskset -c 0 $(PY) -m bench --markdown; \
	else \
	  OPENBLAS_NUM_THREADS=1 $(PY) -m bench --markdown; \
	fi

# build costs at τ = 100 000: seconds, µs and bytes per node, peak RSS per stage (bench/scale.py)
bench-scale: $(STAMP)
	OPENBLAS_NUM_THREADS=1 $(PY) -m bench.scale

# how long drawings take: the op view of an LSTM at τ = 1 000 with backward= (limit 10 s), book views
bench-viz: $(STAMP)
	OPENBLAS_NUM_THREADS=1 $(PY) -m viz.bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
