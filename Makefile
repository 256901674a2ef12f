# `make demo` and `make test` bootstrap .venv from this repository's own files.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.derive-installed
# torch and torchvision are pinned here, as a pair that imports together (torchvision only works
# beside the torch release it was built for; both wheels lie on the development machines' disk).
# The package itself asks only for torch>=2.2, and torchvision>=0.17 in its `imagenet` extra, so
# users elsewhere keep their own builds.
TORCH_PIN ?= torch==2.14.1 torchvision==0.29.1

.PHONY: demo test test-slow lint lint-imports format regenerate bench clean

# Set-up prints one line a step; pip's own output goes to $(VENV)/pip.log and is shown only if a step fails.
PIP_LOG := $(VENV)/pip.log
QUIET   = > $(PIP_LOG) 2>&1 || { cat $(PIP_LOG); echo "set-up failed (log above, kept in $(PIP_LOG))"; exit 1; }

$(STAMP): pyproject.toml
	@test -x $(PY) || { echo "creating $(VENV)"; python3 -m venv $(VENV); }
	@$(PY) -m pip install -q --upgrade pip >/dev/null 2>&1 || true
	@$(PY) -c "import torch, torchvision" 2>/dev/null || { echo "installing $(TORCH_PIN) into $(VENV)"; \
		$(PY) -m pip install -q $(TORCH_PIN) $(QUIET); }
	@echo "installing derive (editable) with its dependencies into $(VENV)"
	@$(PY) -m pip install -q -e ".[dev,plot,imagenet]" $(QUIET)
	@touch $(STAMP)
	@echo "$(VENV) is ready"

demo: $(STAMP)
	$(PY) -m derive demo

# Tests run in parallel, one pytest-xdist worker per core, one torch thread per worker (more threads
# than cores make OpenMP threads wait on each other). `pytest tests/test_x.py` alone stays serial.
TEST_PARALLEL ?= -n auto --dist worksteal

# The linters run first (a few seconds), so CI's `make test` enforces the layers, ruff's checks
# and the formatting too.
test: $(STAMP) lint
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -m "not slow" $(TEST_PARALLEL)

# The long checks (tests marked @pytest.mark.slow, about 5 minutes): built-in recurrences checked at
# depth 1000, `derive simulate --quick` end to end, runs interrupted by signals in child processes,
# torchrun resumes, torch.compile of the deeper and ImageNet-sized networks, every row of
# docs/results/models.md. `make test` keeps a cheaper test of each of these code paths.
test-slow: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -m slow $(TEST_PARALLEL)

lint: $(STAMP) lint-imports
	$(PY) -m ruff check derive tests bench generated
	$(PY) -m ruff format --check derive tests bench generated

# The layers and the standalone generated modules (.importlinter; docs/architecture.md, "Layers").
lint-imports: $(STAMP)
	$(VENV)/bin/lint-imports

format: $(STAMP)
	$(PY) -m ruff format derive tests bench
	$(PY) -m ruff check --fix derive tests bench

regenerate: $(STAMP)
	$(PY) -m derive regenerate

bench: $(STAMP)
	for f in bench/bench_*.py; do $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
