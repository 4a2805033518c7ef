# `make run`: bootstrap .venv, get Fashion-MNIST, run the default job.
# `make test`: bootstrap .venv, get Fashion-MNIST when apt-get can, lint (ruff, mypy), run the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA_DIR ?= /usr/share/datasets/fashion-mnist
DATA_FILES := train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz
CONFIG ?= configs/fashion_mnist.yaml
RUN_DIR ?= runs/fashion_mnist-$(shell date +%Y%m%d-%H%M%S)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test venv data clean

run: venv data
	$(BIN)/clactive run --config $(CONFIG) --data-dir $(DATA_DIR) --run-dir $(RUN_DIR)

test: venv
	@$(MAKE) --no-print-directory data || echo "Fashion-MNIST is not installed: its end-to-end test will be skipped"
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q --durations=12

venv: $(BIN)/.installed

# Plain pip on purpose: it takes torch/torchvision from this machine's local files.
$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --no-compile -e '.[test]'
	@# pip compiles every installed module's bytecode on one core; compileall -j 0 uses them all (the
	@# venv is ready ~50 s sooner on two). Like pip, it skips files it cannot compile (torch ships
	@# Python 3.12-only test helpers), so its status is ignored.
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib > /dev/null 2>&1 || true
	touch $@

data:
	@missing=0; for f in $(DATA_FILES); do [ -f "$(DATA_DIR)/$$f" ] || missing=1; done; \
	if [ $$missing = 0 ]; then exit 0; fi; \
	if [ "$(DATA_DIR)" = /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null 2>&1; then \
		$(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q dataset-fashion-mnist; \
	else \
		echo "Fashion-MNIST files are missing from $(DATA_DIR) (apt-get installs them only into /usr/share/datasets/fashion-mnist, and only where apt-get exists):"; \
		echo "  copy $(DATA_FILES) into one directory and run: make run DATA_DIR=that/directory"; \
		echo "  (or: $(BIN)/clactive run --data-dir that/directory)"; \
		exit 1; \
	fi

clean:
	rm -rf .cache runs .mypy_cache .ruff_cache
