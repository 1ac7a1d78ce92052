# The only entry point: `make run` starts the service with demonstration data, `make test`
# sets everything up and runs every test. Both work on a fresh machine.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DELETE_ON_ERROR:
MAKEFLAGS += --warn-undefined-variables --no-builtin-rules

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PROTO_OUT := protos/checkpoint/v1
PROTOS := $(wildcard $(PROTO_OUT)/*.proto)
RUN_DIR ?= .run

.PHONY: help setup generate check-generated lint test test-services check run bench fuzz clean

help: ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/'

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(BIN)/.installed ## Create .venv and install the project with its dev tools.

generate: setup ## Regenerate the Python code and descriptor set from protos/.
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m grpc_tools.protoc \
	  -Iprotos -I"$$($(BIN)/python -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')" \
	  --python_out=protos --mypy_out=protos --grpc_python_out=protos --mypy_grpc_out=protos \
	  --descriptor_set_out=$(PROTO_OUT)/checkpoint.binpb --include_imports --include_source_info \
	  $(PROTOS)

check-generated: generate ## Fail when the committed generated code differs from protos/ (new files too).
	@changed=$$(git status --porcelain --untracked-files=all -- $(PROTO_OUT)); \
	if [ -n "$$changed" ]; then \
	  git diff -- $(PROTO_OUT); echo "$$changed" >&2; \
	  echo "generated code is stale or untracked: run make generate and commit" >&2; exit 1; \
	fi

lint: setup ## ruff, mypy, buf lint, buf format, buf breaking against main.
	$(BIN)/ruff check --no-cache .
	$(BIN)/ruff format --check --no-cache .
	$(BIN)/mypy
	$(BIN)/buf lint
	$(BIN)/buf format --diff --exit-code
	@if git rev-parse --verify --quiet main >/dev/null && git cat-file -e main:buf.yaml 2>/dev/null; then \
	  $(BIN)/buf breaking --against '.git#branch=main'; \
	else echo "buf breaking: no main branch with protos to compare against yet"; fi

test: setup test-services ## Set everything up and run every test, with a coverage report and floor.
	rm -f .coverage .coverage.*
	$(BIN)/coverage run -m pytest $(PYTEST_ARGS)
	$(BIN)/coverage combine --quiet
	$(BIN)/coverage report

test-services: ## Install the PostgreSQL, Redis, Prometheus and Chromium binaries the tests start, when missing.
	bash scripts/ensure_test_services.sh

PYTEST_ARGS ?=

check: check-generated lint test ## Everything CI checks.

run: setup ## Start gRPC (127.0.0.1:50051) and REST (127.0.0.1:8080) with demonstration data.
	$(BIN)/python scripts/run_demo.py --dir $(RUN_DIR)

bench: setup ## Load the real processes with wrk and h2load, beside grpc-gateway (Go); prints and saves the table.
	bash scripts/ensure_bench_tools.sh
	bash scripts/ensure_gateway.sh >/dev/null
	$(BIN)/python -m bench $(BENCH_ARGS)

BENCH_ARGS ?=

fuzz: setup ## Run every atheris fuzz target for FUZZ_SECONDS each (seeds: tests/fuzz/corpus).
	@for target in codec path query transcoder app http2; do \
	  echo "fuzz: $$target for $(FUZZ_SECONDS) s"; \
	  $(BIN)/python -m tests.fuzz.run $$target -max_total_time=$(FUZZ_SECONDS) \
	    -dict=tests/fuzz/json.dict -print_final_stats=1 $(FUZZ_ARGS); \
	done

FUZZ_SECONDS ?= 60
FUZZ_ARGS ?=

clean: ## Remove the virtualenv, caches and demo data.
	rm -rf $(VENV) $(RUN_DIR) .fuzz .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.*
