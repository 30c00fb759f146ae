# Two commands do all set-up on a fresh machine: `make run` and `make test`.
# Both create .venv and install what is missing first (see `install`).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LLAMA_VERSION := 0.3.36
# llama.cpp is built portable (AVX2, no AVX-512 or AMX), not for the building machine's CPU: its
# AMX kernels crash (SIGSEGV in ggml_backend_amx_mul_mat) on VMs whose CPUs report AMX, and a
# wheel built for one node's CPU may not run on another's. The wheel is kept under its own name,
# outside pip's cache (which keys a built wheel by version only, not by these flags).
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF
LLAMA_WHEELS := $(HOME)/.cache/voice-ai/llama-cpp-python-$(LLAMA_VERSION)-portable
LLAMA_STAMP := $(VENV)/.llama-cpp-python-$(LLAMA_VERSION)-portable
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export RAY_USAGE_STATS_ENABLED := 0

.PHONY: install run test lint test-performance system-deps clean

install: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml $(LLAMA_STAMP)
	$(BIN)/pip install -e ".[dev]"
	@touch $(STAMP)

$(LLAMA_STAMP): | $(BIN)/python
	@# llama-cpp-python has no binary wheel: it compiles llama.cpp once (about 8 min on 2 cores);
	@# the wheel is kept in $(LLAMA_WHEELS)-<python>, so later installs take seconds. Progress
	@# lines are shown.
	@set -o pipefail; \
	  wheels=$(LLAMA_WHEELS)-$$($(BIN)/python -c 'import sys; print(sys.implementation.cache_tag)'); \
	  if ! ls $$wheels/llama_cpp_python-*.whl >/dev/null 2>&1; then \
	    echo ">>> building llama-cpp-python $(LLAMA_VERSION) (first install compiles llama.cpp: about 8 minutes on 2 cores)"; \
	    rm -rf $$wheels.part && mkdir -p $$wheels.part || exit 1; \
	    CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=2 \
	      $(BIN)/pip wheel -v --no-cache-dir --no-deps -w $$wheels.part "llama-cpp-python==$(LLAMA_VERSION)" 2>&1 \
	      | awk '/^[ \t]*\[ *[0-9]+\/[0-9]+\]/ { s = $$0; sub(/^[ \t]*\[ */, "", s); split(s, a, /[\/\]]/); \
	          n = a[1] + 0; t = a[2] + 0; if (n % 25 == 0 || n == t) { print "  llama.cpp compiled " n "/" t " files"; fflush() } next } \
	          /Successfully|ERROR|error:/ { print; fflush() }' || exit 1; \
	    rm -rf $$wheels && mv $$wheels.part $$wheels || exit 1; \
	  fi; \
	  $(BIN)/pip install -q --force-reinstall --no-deps $$wheels/llama_cpp_python-*.whl \
	    && $(BIN)/pip install -q $$wheels/llama_cpp_python-*.whl && touch $(LLAMA_STAMP)

# Debian packages the tests need: a real Prometheus (with promtool) and sqlite3 for the runbook's commands.
system-deps:
	@if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null || ! command -v sqlite3 >/dev/null; then \
	  echo ">>> installing Debian packages: prometheus sqlite3"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus sqlite3 >/dev/null; \
	fi
	@# the call page's browser test (tests/test_talk_chromium.py) skips, saying why, without it
	@if ! command -v chromium >/dev/null; then \
	  echo ">>> installing Debian packages: chromium chromium-driver"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
	    || echo ">>> chromium could not be installed: the browser test of /talk will be skipped"; \
	fi

run: install
	$(BIN)/voice-ai run --calls 3

test: install system-deps
	$(BIN)/python -m pytest -q --durations=25

lint: install
	$(BIN)/ruff check voice_ai actors deployments tests benchmarks
	$(BIN)/mypy --strict voice_ai actors

# The agent eval (docs/agent.md): caller scenarios spoken through the call pipeline with the
# embedded default, each turn scored; table + data/eval/agent_eval.json. EVAL_ARGS=--text types.
.PHONY: eval
eval: install
	$(BIN)/python -m voice_ai.agent.eval $(EVAL_ARGS)

# Benchmarks (docs/performance.md): ours next to the stock LiveKit agent, same simulators.
# Run them alone on the machine: they measure latency and CPU.
test-performance: install
	$(BIN)/python -m benchmarks.load --mode one

.PHONY: bench bench-capacity bench-profile bench-embedded
# every number of issues #12 and #13 in one run (~30 min on 2 cores; docs/performance.md):
# the load benchmark's must-show (1 call, zero profile, capacity sweep incl. 8 calls), then the
# embedded default (1 call, make run's 3 calls)
bench: install
	$(BIN)/python -m benchmarks.load --mode must-show
	$(BIN)/python -m benchmarks.turn_latency --must-show \
		--json benchmarks/results/$$(date -u +%Y%m%d-%H%M%S)-embedded.json

bench-capacity: install
	$(BIN)/python -m benchmarks.load --mode capacity

bench-profile: install
	$(BIN)/python -m benchmarks.load --mode profile

bench-embedded: install
	$(BIN)/python -m benchmarks.turn_latency --must-show

# The fault suite (issue #14, docs/resilience.md): every system actor killed under 4 live calls
# (ray.kill and SIGKILL), the store locked and its disk full. `make test` runs only its quick
# rows (the dispatcher, store writer, breaker registry and a call actor killed one way). The
# soak is in neither: calls back to back for SOAK_MINUTES (30), memory growth per call actor
# per 100 calls.
.PHONY: test-faults soak
SOAK_MINUTES ?= 30
test-faults: install system-deps
	FAULT_SUITE=full $(BIN)/python -m pytest -q -s tests/faults

soak: install
	$(BIN)/python -m tests.faults.soak --minutes $(SOAK_MINUTES)

# Ray's own autoscaler on one machine (docs/capacity.md, "The autoscaling test"): a burst of
# calls launches a worker node (the fake multi-node provider), a call runs there, the idle node
# is removed. Minutes on 2 cores, so `make test` skips it and runs only its policy's unit test.
.PHONY: test-autoscaling
test-autoscaling: install
	$(BIN)/python -m pytest -q tests/test_autoscaling.py tests/test_spare_rotation.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Cluster launch (docs/RUNBOOK.md): on-prem by default, CLUSTER=cluster.aws.yaml for AWS.
CLUSTER ?= cluster.yaml
.PHONY: cluster-up cluster-down runbook-check cluster-token

# The Ray cluster token (docs/security.md): made once, never committed (secrets/ is gitignored
# and rsync-excluded); `ray up` copies it to ~/.ray/auth_token on every node.
cluster-token: secrets/ray_auth_token

secrets/ray_auth_token:
	@umask 077 && mkdir -p secrets && $(PYTHON) -I -c "import secrets; print(secrets.token_hex(32), end='')" > $@.partial && mv $@.partial $@
	@echo "made $@ (mode 600): keep it out of git; ray up provisions it on every node"

cluster-up: install secrets/ray_auth_token
	$(BIN)/ray up -y $(CLUSTER)

cluster-down: install
	$(BIN)/ray down -y $(CLUSTER)

# Runs every command of docs/RUNBOOK.md that works on one machine, against a live local system.
runbook-check: install system-deps
	$(BIN)/python -m deployments.runbook_check
