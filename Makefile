# llmrec — every command a developer or operator needs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.bootstrap-stamp
KAFKA_JARS := deploy/kafka/lib/.resolved
DEPLOY_TOOLS := build/tools/.fetched
MODEL_ROOT := models/all-MiniLM-L6-v2
# Bound the BLAS/ORT thread pools to the machine (2 cores here) unless set.
export OMP_NUM_THREADS ?= 2
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: help demo test chaos lint typecheck unit integration bench-encoder bench-pipeline bench-ranker eval \
        kafka-up kafka-down kafka-status model deploy-check clean distclean

help: ## list the commands
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml deploy/constraints.txt scripts/bootstrap.sh
	PYTHON=$(PYTHON) VENV=$(VENV) STAMP=$(STAMP) ./scripts/bootstrap.sh

$(KAFKA_JARS): deploy/kafka/pom.xml
	@command -v mvn >/dev/null || { echo "Maven (mvn) is needed to fetch the Kafka jars" >&2; exit 1; }
	@command -v java >/dev/null || { echo "Java 17+ is needed to run Kafka" >&2; exit 1; }
	mvn -q -B -f deploy/kafka/pom.xml dependency:copy-dependencies
	@touch $@

# promtool and the Compose Specification schema, for the checks of deploy/ (tests/deploy).
$(DEPLOY_TOOLS): scripts/fetch_deploy_tools.sh $(STAMP)
	PYTHON=$(BIN)/python ./scripts/fetch_deploy_tools.sh
	@touch $@

model: $(STAMP) ## export the encoder to ONNX (skips valid artifacts)
	$(BIN)/llmrec export-model

demo: $(STAMP) $(KAFKA_JARS) model ## the main job: broker, worker, MovieLens replay, live recommendations
	$(BIN)/llmrec demo

test: $(STAMP) $(KAFKA_JARS) $(DEPLOY_TOOLS) model lint typecheck ## lint, types, unit, integration and end-to-end tests (real broker)
	$(BIN)/python -m pytest --ignore=tests/chaos

chaos: $(STAMP) $(KAFKA_JARS) model ## the chaos tier: malformed floods, kill -9 of workers and broker, damaged snapshots
	$(BIN)/python -m pytest tests/chaos -s

lint: $(STAMP) ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP) ## mypy (strict on llmrec/)
	$(BIN)/mypy

deploy-check: $(STAMP) $(DEPLOY_TOOLS) ## check deploy/: alerts (promtool), compose and k8s schemas, dashboard, Dockerfile (no broker)
	$(BIN)/python -m pytest tests/deploy -m "not kafka"

unit: $(STAMP) ## fast unit tests only (no broker)
	$(BIN)/python -m pytest tests/unit

integration: $(STAMP) $(KAFKA_JARS) $(DEPLOY_TOOLS) model ## broker and end-to-end tests, Prometheus scraping a live worker
	$(BIN)/python -m pytest tests/integration tests/e2e
	$(BIN)/python -m pytest tests/deploy -m kafka

bench-encoder: $(STAMP) model ## encoder throughput: PyTorch vs ORT fp32/opt/int8
	$(BIN)/llmrec bench encoder

bench-pipeline: $(STAMP) $(KAFKA_JARS) model ## pipeline throughput and latency through the real broker
	$(BIN)/llmrec bench pipeline

bench-ranker: $(STAMP) model ## learned ranker cost per candidate and per list vs the linear fusion
	$(BIN)/llmrec bench ranker

eval: $(STAMP) model ## offline evaluation on every built-in dataset (reports/)
	$(BIN)/llmrec eval --dataset all

kafka-up: $(STAMP) $(KAFKA_JARS) ## start the local broker (idempotent)
	$(BIN)/llmrec kafka up

kafka-down: $(STAMP) ## stop the local broker
	$(BIN)/llmrec kafka down

kafka-status: $(STAMP) ## is the local broker up?
	$(BIN)/llmrec kafka status

clean: ## remove caches and reports (keeps .venv, jars, models, broker data)
	rm -rf .pytest_cache .mypy_cache .ruff_cache reports bench-results

distclean: clean ## remove everything generated: .venv, jars, models, broker data
	-$(BIN)/llmrec kafka down
	rm -rf $(VENV) deploy/kafka/lib models var
