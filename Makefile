# Kuka grasping with TF-Agents: train, watch, render, and run it on Kubernetes.
# `make` (or `make help`) lists the targets.

# Local training
PYTHON ?= python3.11
VENV ?= .venv
LOGDIR ?= runs
RUN ?=
AGENT ?= ppo
ENV_ID ?= KukaGrasp-v0
STEPS ?= 300000
NUM_ENVS ?= 2
SEED ?= 0
ARGS ?=
TB_PORT ?= 6006
# Rendering
EPISODES ?= 3
WIDTH ?= 320
HEIGHT ?= 240
FPS ?= 30
POLICY ?=

# Cluster
PROJECT ?=
ZONE ?= us-central1-a
CLUSTER ?= kuka
NAMESPACE ?= rl
BUCKET ?=
IMAGE ?=
TAG ?=

SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
PY := $(VENV)/bin/python
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: help
help: ## List the targets and the variables they read
	@echo "Usage: make <target> [VARIABLE=value ...]"
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-16s %s\n", $$1, $$2} /^##@ / {printf "\n%s\n", substr($$0, 5)}' $(MAKEFILE_LIST)
	@echo
	@echo "Variables: LOGDIR=$(LOGDIR) RUN=$(RUN) AGENT=$(AGENT) ENV_ID=$(ENV_ID) STEPS=$(STEPS) NUM_ENVS=$(NUM_ENVS) SEED=$(SEED)"

##@ Set-up

$(VENV)/.runtime: requirements.txt constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null \
		|| { echo "error: PYTHON=$(PYTHON) must be Python 3.11 (set PYTHON=/path/to/python3.11)" >&2; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -c constraints.txt
	@touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt -c constraints.txt
	@touch $@

.PHONY: venv
venv: $(VENV)/.dev ## Create .venv with the runtime and the dev tools

.PHONY: constraints
constraints: ## Re-pin constraints.txt: pip freeze of requirements.txt in a scratch venv
	d="$$(mktemp -d)"; trap 'rm -rf "$$d"' EXIT; $(PYTHON) -m venv "$$d" \
		&& "$$d/bin/pip" install --quiet -r requirements.txt \
		&& { head -n 2 constraints.txt; "$$d/bin/pip" freeze; } > constraints.txt.new \
		&& mv constraints.txt.new constraints.txt

##@ Local training

.PHONY: train
train: $(VENV)/.runtime ## Train locally (AGENT, ENV_ID, STEPS, NUM_ENVS, SEED, LOGDIR, RUN; ARGS for more flags)
	$(PY) -m trainer.task --logdir='$(LOGDIR)' --agent='$(AGENT)' --env_id='$(ENV_ID)' \
		--total_steps='$(STEPS)' --num_envs='$(NUM_ENVS)' --seed='$(SEED)' $(if $(RUN),--run='$(RUN)') $(ARGS)

.PHONY: render
render: $(VENV)/.runtime ## Film the latest run's policy, or RUN's (EPISODES, WIDTH, HEIGHT, FPS; POLICY=random needs no run)
	$(PY) -m trainer.task render --logdir='$(LOGDIR)' $(if $(RUN),--run='$(RUN)') $(if $(POLICY),--policy='$(POLICY)') \
		--seed='$(SEED)' --episodes='$(EPISODES)' --width='$(WIDTH)' --height='$(HEIGHT)' --fps='$(FPS)' $(ARGS)

.PHONY: tensorboard
tensorboard: $(VENV)/.runtime ## Serve TensorBoard for LOGDIR on 127.0.0.1:TB_PORT
	@echo "TensorBoard: http://127.0.0.1:$(TB_PORT)/ (Ctrl-C stops it)"
	$(VENV)/bin/tensorboard --logdir='$(LOGDIR)' --host=127.0.0.1 --port='$(TB_PORT)'

.PHONY: bench
bench: $(VENV)/.runtime ## Training throughput against the raw env bound, and render speed (a few minutes)
	$(PY) bench/throughput.py --num_envs='$(NUM_ENVS)'
	$(PY) bench/render.py

##@ Google Cloud Storage

.PHONY: bucket
bucket: $(VENV)/.runtime ## Check gs://BUCKET (create it if missing); runs go to LOGDIR=gs://BUCKET/runs
	@test -n "$(BUCKET)" || { echo "error: set BUCKET, e.g. make bucket BUCKET=my-kuka-runs" >&2; exit 2; }
	$(PY) -m trainer.storage check 'gs://$(BUCKET)' --create

##@ Checks

.PHONY: lint
lint: $(VENV)/.dev ## Run every pre-commit hook on every file
	$(VENV)/bin/pre-commit run --all-files --show-diff-on-failure

.PHONY: test
test: $(VENV)/.dev lint ## Lint, then run the whole test suite (slow tests included)
	$(PY) -m pytest

.PHONY: test-fast
test-fast: $(VENV)/.dev ## Tests without the slow marker
	$(PY) -m pytest -m 'not slow'

.PHONY: clean
clean: ## Remove caches (keeps .venv and runs)
	rm -rf .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -not -path './$(VENV)/*' -exec rm -rf {} +
