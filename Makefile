# `make demo` and `make test` install what is missing first; a second `make install` does nothing.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.seglab-installed
PYTEST_ARGS ?=

.PHONY: install demo test test-extended test-fast test-compile lint bench clean zoo

install: $(STAMP)

# mmcv 2.1.0 has no wheel for this torch: it is built from source with its compiled ops, which
# needs torch and the build tools present and no build isolation. pip keeps the built wheel in
# its cache, so only the first install on a machine pays the build (about 30 minutes on 2 cores).
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install torch==2.13.0 'setuptools>=77.0.3,<82' ninja psutil wheel
	$(PY) -c "import mmcv.ops" 2>/dev/null || \
	  MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS=2 $(PY) -m pip install --no-build-isolation mmcv==2.1.0
	# compat mode: Hydra finds seglab's plugins in the hydra_plugins namespace on sys.path
	$(PY) -m pip install -e '.[dev,zoo,search,data,track,deploy]' --config-settings editable_mode=compat
	$(PY) -c "import mmcv.ops, mmseg, hydra, seglab"
	touch $@

# The small model on the embedded synthetic data: a few minutes on a CPU.
demo: install
	$(PY) -m seglab experiment=demo

# Two passes: what trains nothing (compose, convert, the 681 configs at parity, the zoo
# regenerated) on two pytest workers, one per core; then what trains or starts processes, one
# test at a time (two trainings side by side on 2 cores each take more than twice as long).
# Exit code 5 is pytest's "no test selected", e.g. when PYTEST_ARGS picks tests of one pass.
test: install
	$(PY) -m pytest -n 2 -m "not train and not processes" $(PYTEST_ARGS) || [ $$? -eq 5 ]
	$(PY) -m pytest -m "(train or processes) and not compile and not extended" $(PYTEST_ARGS) \
	  || [ $$? -eq 5 ]

# the trainings make test leaves out to stay within 35 minutes on 2 cores (the demo to its
# target, the four slowest zoo families, five of seglab deploy's six): .ci/run runs it too
test-extended: install
	$(PY) -m pytest -m "extended" $(PYTEST_ARGS) || [ $$? -eq 5 ]

# the one test that trains with compile=true: inductor builds its C++ kernels first, over ten
# minutes on 2 cores, which `make test` cannot afford within its 40 minutes
test-compile: install
	$(PY) -m pytest -m compile $(PYTEST_ARGS)

# compose, convert, parity of the named configs, checks, bad input, resolvers, data: no Runner,
# no other process (markers in pyproject.toml); two pytest workers, one per core
test-fast: install
	$(PY) -m pytest -n 2 -m "not train and not processes and not slow" $(PYTEST_ARGS)

lint: install
	$(PY) -m ruff check seglab tests bench hydra_plugins
	$(PY) -m ruff format --check seglab tests bench hydra_plugins

# throughput.py: the demo on a CPU (fp32 trains, the bf16 modes are refused rows), UPerNet-R50
# 512x512 in all four modes on a GPU (README, "Speed on a GPU"); deploy.py: images/s of PyTorch
# and ONNX Runtime on the same images, the demo and SegFormer-B0 (README, "Deploying a model")
bench: install
	$(PY) bench/overhead.py
	$(PY) bench/sweep.py
	$(PY) bench/data_check.py
	$(PY) bench/throughput.py
	$(PY) bench/deploy.py

clean:
	rm -rf $(VENV) outputs .pytest_cache

# Regenerate the zoo (conf/model, conf/dataset, conf/schedule options named as upstream's
# _base_ files, conf/_delete_, experiments/<family>/) from the installed mmsegmentation.
zoo: install
	$(PY) -m seglab.zoo.generate
