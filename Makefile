# Kuka grasping with TF-Agents: train, watch, render, and run it on Kubernetes.
# `make` (or `make help`) lists the targets.

# Local training
PYTHON ?= python3.11
VENV ?= .venv
LOGDIR ?=
RUN ?=
# Empty: trainer/config.py's default (it holds every default; make passes only what you set).
AGENT ?=
ENV_ID ?=
STEPS ?=
NUM_ENVS ?=
SEED ?=
COLLECTORS ?=
ARGS ?=
TB_PORT ?= 6006
EVAL_EPISODES ?=
# Rendering
EPISODES ?=
WIDTH ?=
HEIGHT ?=
FPS ?=
POLICY ?=

# Cluster
PROJECT ?=
# The cluster's region (Autopilot clusters are regional), or a Standard cluster's zone
# (ZONE is the older name for it). The registry and a new bucket go to its region.
ZONE ?=
LOCATION ?= $(or $(ZONE),us-central1)
# The Artifact Registry repository (in the cluster's region) that images go to.
REPOSITORY ?= kuka
CLUSTER ?= kuka
NAMESPACE ?= rl
BUCKET ?=
IMAGE ?=
TAG ?= $(shell ./build.sh --print-tag)
KIND ?= job
AUTH ?= workload-identity
GPU ?=
# Cluster scheduling, all optional: the GPU type, Spot VMs, a Kueue LocalQueue, a
# PriorityClass, and a run's deadline in seconds (empty: one day).
ACCELERATOR ?=
SPOT ?=
QUEUE ?=
PRIORITY_CLASS ?=
DEADLINE ?=
SEEDS ?= 4
# The distributed run's layout: jobset (one JobSet; needs the JobSet controller, which
# Kubeflow Trainer installs) or jobs (a Deployment and two Jobs; any cluster).
LAYOUT ?= jobset
# make tune: Katib trials in all and at a time (empty: 12 and 3, deploy/overlay.py).
MAX_TRIALS ?=
PARALLEL_TRIALS ?=
TARGET ?= local
# make test: pytest worker processes. Three on 2 cores: a worker waiting on a server, a
# timer or the network leaves a core to the others. Quiet machine, 2026-11-30, one run
# each on the same 541 tests (31f8f1a): pytest 11:28 in three, 12:21 in two. `make test`
# in three, after further cuts (4e52184): 10:39.
TEST_WORKERS ?= 3
DRY_RUN ?=

SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
PY := $(VENV)/bin/python
# The cluster tools (deploy/) need only the standard library, and no .venv.
PY3 ?= python3
export PATH := $(abspath $(VENV))/bin:$(PATH)
# Empty (also when a parent make exported it empty): the project's Artifact Registry
# repository in the cluster's region (Container Registry takes no pushes since 2025).
REGION := $(shell echo '$(LOCATION)' | sed -E 's/^([a-z]+-[a-z]+[0-9]+)-[a-z]$$/\1/')
IMAGE := $(or $(IMAGE),$(if $(PROJECT),$(REGION)-docker.pkg.dev/$(PROJECT)/$(REPOSITORY)/kuka-trainer))
# Cluster runs need a run id up front: it names the Job and the bucket folder. It is
# made at its first use and kept, one per RUN_ID_KIND (tune's is cut to fit Katib), so
# make help and local targets start no Python for it.
RUN_ID_KIND :=
RUN_ID = $(or $(RUN),$(if $(RUN_ID_$(RUN_ID_KIND)),,$(eval RUN_ID_$(RUN_ID_KIND) := $(shell $(PY3) -m deploy.values run-id '$(AGENT)' '$(ENV_ID)' '$(RUN_ID_KIND)')))$(RUN_ID_$(RUN_ID_KIND)))
# DRY_RUN=1 prints the commands instead of running them (local training too): it writes
# nothing, .venv included, and contacts nothing.
run := $(if $(DRY_RUN),@echo,)
LOCAL_VENV := $(if $(DRY_RUN),,$(VENV)/.runtime)
need = $(if $($(1)),,$(error $(1) is not set: make $@ $(1)=...))
# Stops, in one line, when run id $(2) cannot name a $(1) run (deploy/kinds.py: the names
# the controllers derive from it must fit Kubernetes' 63 characters, Katib's 40), before
# anything is built or contacted: make expands a recipe whole before its first line runs.
fits = $(eval fits_error := $(shell $(PY3) -m deploy.values check-run '$(2)' '$(1)'))$(if $(fits_error),$(error $(fits_error)))
# --FLAG from VARIABLE only when it is set: locally through the environment (any
# value, quotes included, reaches the trainer intact), on the cluster quoted.
flag = $(if $($(1)),--$(2)="$${$(1)}")
kflag = $(if $($(1)),--$(2)='$($(1))')
DISTRIBUTED_KINDS = jobsets.jobset.x-k8s.io,deployments.apps,services,networkpolicies.networking.k8s.io,jobs.batch,configmaps
# kubectl on the resource types the cluster serves only (the JobSet CRD is optional), and a
# check that a run's object is not already there: apply would leave it or refuse the change.
SERVED = $(PY3) -m deploy.cluster --prog='make $@' served --namespace='$(NAMESPACE)' $(if $(DRY_RUN),--dry-run)
ABSENT = $(PY3) -m deploy.cluster --prog='make $@' absent --namespace='$(NAMESPACE)' $(if $(DRY_RUN),--dry-run)
APPLY_WOULD = kubectl apply would leave it as it is or refuse the change
POD_COLUMNS = custom-columns=POD:.metadata.name,PHASE:.status.phase,RESTARTS:.status.containerStatuses[0].restartCount,EXIT:.status.containerStatuses[0].state.terminated.exitCode,REASON:.status.containerStatuses[0].state.terminated.reason,LAST-REASON:.status.containerStatuses[0].lastState.terminated.reason
OVERLAY = $(PY3) -m deploy.overlay --namespace='$(NAMESPACE)' --image='$(IMAGE)' --tag='$(TAG)' \
	--bucket='$(BUCKET)' --auth='$(AUTH)' $(if $(GPU),--gpu) $(if $(DRY_RUN),--dry-run) \
	$(if $(SPOT),--spot) $(call kflag,ACCELERATOR,accelerator) $(call kflag,QUEUE,queue) \
	$(call kflag,PRIORITY_CLASS,priority-class) $(call kflag,DEADLINE,deadline)
# A fact of flavour $(1) from deploy/kinds.py, the one table of them (FIELD $(2)).
kind_fact = $(eval kind_out := $(shell $(PY3) -m deploy.values kind '$(1)' $(2) 2>&1))$(if $(filter values:,$(firstword $(kind_out))),$(error $(wordlist 3,99,$(kind_out))),$(kind_out))
JOB_RESOURCE = $(call kind_fact,$(KIND),api_resource)
POD_LABEL = $(call kind_fact,$(KIND),pod_label)
JOB_PREFIX = $(call kind_fact,$(KIND),prefix)
TUNE_RESOURCE = $(call kind_fact,tune,api_resource)
export NAMESPACE IMAGE TAG BUCKET PROJECT AUTH GPU DRY_RUN LOCATION
# Local targets read these from the environment ("$${RUN}"), so that any value, quotes
# included, reaches the trainer intact and gets its one-line answer.
export LOGDIR RUN AGENT ENV_ID STEPS NUM_ENVS SEED EVAL_EPISODES COLLECTORS POLICY EPISODES WIDTH HEIGHT FPS

.PHONY: help
help: ## List the targets and the variables they read
	@echo "Usage: make <target> [VARIABLE=value ...]"
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-20s %s\n", $$1, $$2} /^##@ / {printf "\n%s\n", substr($$0, 5)}' $(MAKEFILE_LIST)
	@echo
	@echo "Variables (empty: trainer/config.py's default): LOGDIR=$(LOGDIR) RUN=$(RUN) AGENT=$(AGENT) ENV_ID=$(ENV_ID) STEPS=$(STEPS) NUM_ENVS=$(NUM_ENVS) SEED=$(SEED)"

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

# checkov pins packages that clash with the runtime's, so it gets a venv of its own.
CHECKOV_VENV ?= .venv-checkov
$(CHECKOV_VENV)/bin/checkov:
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet checkov==3.3.30

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
train: $(LOCAL_VENV) ## Train locally (AGENT, ENV_ID, STEPS, NUM_ENVS, SEED, LOGDIR, RUN; ARGS for more flags)
	$(run) $(PY) -m trainer.task $(call flag,LOGDIR,logdir) $(call flag,AGENT,agent) $(call flag,ENV_ID,env_id) \
		$(call flag,STEPS,total_steps) $(call flag,NUM_ENVS,num_envs) $(call flag,SEED,seed) $(call flag,RUN,run) $(ARGS)

.PHONY: eval
eval: $(LOCAL_VENV) ## Evaluate RUN's newest checkpoint again into eval-<step>.json (EVAL_EPISODES)
	$(call need,RUN)
	$(run) $(PY) -m trainer.task eval $(call flag,LOGDIR,logdir) --run="$${RUN}" $(call flag,EVAL_EPISODES,eval_episodes)

.PHONY: train-distributed
train-distributed: $(LOCAL_VENV) ## Train with Reverb, COLLECTORS collector processes and a learner on 127.0.0.1 (as train)
	$(run) $(PY) -m trainer.task distributed $(call flag,LOGDIR,logdir) $(call flag,COLLECTORS,collectors) \
		$(call flag,AGENT,agent) $(call flag,ENV_ID,env_id) $(call flag,STEPS,total_steps) $(call flag,NUM_ENVS,num_envs) \
		$(call flag,SEED,seed) $(call flag,RUN,run) $(ARGS)

.PHONY: render
render: ## Film the latest run's policy, or RUN's (EPISODES, WIDTH, HEIGHT, FPS; POLICY=random; TARGET=cluster)
ifeq ($(TARGET),cluster)
	$(call need,RUN)$(call need,BUCKET)$(call need,IMAGE)$(call fits,render,$(RUN))
	$(OVERLAY) --kind=render --name='render-$(RUN)' --run='$(RUN)' -- $(call kflag,SEED,seed) \
		$(call kflag,EPISODES,episodes) $(call kflag,WIDTH,width) $(call kflag,HEIGHT,height) $(call kflag,FPS,fps) $(ARGS)
	@$(MAKE) --no-print-directory push
	@# The previous render's Job has finished (its video is in the bucket); Jobs are immutable.
	$(run) kubectl -n '$(NAMESPACE)' delete job 'kuka-render-$(RUN)' --ignore-not-found
	$(run) kubectl apply -k 'k8s/overlays/local/render-$(RUN)'
else
	$(if $(DRY_RUN),,@$(MAKE) --no-print-directory $(VENV)/.runtime)
	$(run) $(PY) -m trainer.task render $(call flag,LOGDIR,logdir) $(if $(RUN),--run="$${RUN}") $(if $(POLICY),--policy="$${POLICY}") \
		$(call flag,SEED,seed) $(call flag,EPISODES,episodes) $(call flag,WIDTH,width) $(call flag,HEIGHT,height) \
		$(call flag,FPS,fps) $(ARGS)
endif

.PHONY: plot
plot: $(LOCAL_VENV) ## Write LOGDIR/RUN/learning_curve.png (the latest run without RUN)
	$(run) $(PY) -m trainer.task plot $(call flag,LOGDIR,logdir) $(if $(RUN),--run="$${RUN}")

.PHONY: notebook
notebook: $(VENV)/.dev ## Open the demo notebook (demo/demo.ipynb) in JupyterLab
	$(VENV)/bin/jupyter lab demo/demo.ipynb

.PHONY: tensorboard
tensorboard: ## Serve TensorBoard for LOGDIR on 127.0.0.1:TB_PORT (TARGET=cluster: port-forward the cluster's)
	@echo "TensorBoard: http://127.0.0.1:$(TB_PORT)/ (Ctrl-C stops it)"
ifeq ($(TARGET),cluster)
	$(run) kubectl -n '$(NAMESPACE)' port-forward service/tensorboard '$(TB_PORT):6006'
else
	@$(MAKE) --no-print-directory $(VENV)/.runtime
	@# TF_CPP_MIN_LOG_LEVEL=3: no CUDA/cuDNN/TensorRT probing notes on a CPU machine;
	@# --load_fast=true: the fast loader without its "experimental" banner.
	TF_CPP_MIN_LOG_LEVEL=3 $(VENV)/bin/tensorboard --logdir="$${LOGDIR:-$$($(PY) -m deploy.values default logdir)}" --host=127.0.0.1 \
		--port='$(TB_PORT)' --load_fast=true
endif

.PHONY: bench
bench: $(VENV)/.runtime ## Training and distributed throughput against the raw env bound, render speed (minutes)
	$(PY) -m bench.throughput $(call kflag,NUM_ENVS,num_envs)
	$(PY) -m bench.distributed
	$(PY) -m bench.render

.PHONY: bench-learning
bench-learning: $(VENV)/.runtime ## Train 3 seeds x 2M steps and write docs/results.md (about 1.5 hours)
	$(PY) -m bench.learning --seeds 3 --steps 2000000

.PHONY: bench-default
bench-default: $(VENV)/.runtime ## make train's defaults on 20 seeds x 600k steps: README's table, docs/default-20seeds-2026-12.md (about 2 hours; resumable)
	$(PY) -m bench.ablation --steps 600000 --seeds 20 --variants default --logdir runs/ablation-2026-12 --out docs/default-20seeds-2026-12.md

.PHONY: bench-ablation
bench-ablation: $(VENV)/.runtime ## Every variant of bench/variants.py, 3 seeds x 1M steps: docs/ablation.md (hours; resumable)
	$(PY) -m bench.ablation --steps 1000000 --seeds 3

##@ Google Cloud Storage

.PHONY: bucket
bucket: $(LOCAL_VENV) ## Check gs://BUCKET (create it in LOCATION's region if missing); runs go to LOGDIR=gs://BUCKET/runs
	$(call need,BUCKET)
	$(run) $(PY) -m deploy.bucket 'gs://$(BUCKET)' --create --location='$(REGION)' $(if $(PROJECT),--project='$(PROJECT)')

##@ Kubernetes / Kubeflow (DRY_RUN=1 prints the commands)

.PHONY: auth
auth: ## Log in to Google Cloud for gcloud and for the libraries (PROJECT)
	$(call need,PROJECT)
	$(run) gcloud auth login
	$(run) gcloud auth application-default login
	$(run) gcloud config set project '$(PROJECT)'

.PHONY: setup
setup: ## APIs, cluster credentials, namespace, bucket access, image registry, Cloud Build account (PROJECT, LOCATION, CLUSTER, BUCKET, AUTH)
	$(call need,PROJECT)$(call need,BUCKET)
	$(PY3) -m deploy.gke_setup --project='$(PROJECT)' --location='$(LOCATION)' --cluster='$(CLUSTER)' \
		--bucket='$(BUCKET)' --namespace='$(NAMESPACE)' --auth='$(AUTH)' --repository='$(REPOSITORY)' \
		$(if $(DRY_RUN),--dry-run)

.PHONY: build
build: ## Build the trainer image IMAGE:TAG, or with GPU=1 the GPU image IMAGE:TAG-gpu (Docker, or CLOUD_BUILD=1)
	$(call need,IMAGE)$(if $(CLOUD_BUILD),$(call need,BUCKET))
	./build.sh $(if $(CLOUD_BUILD),--cloud-build) $(if $(DRY_RUN),--dry-run)

.PHONY: push
push: ## Build and push IMAGE:TAG, and with GPU=1 IMAGE:TAG-gpu too (TensorBoard and collectors run the first)
	$(call need,IMAGE)$(if $(CLOUD_BUILD),$(call need,BUCKET))
	GPU= ./build.sh --push $(if $(CLOUD_BUILD),--cloud-build) $(if $(DRY_RUN),--dry-run)
	$(if $(GPU),GPU=1 ./build.sh --push $(if $(CLOUD_BUILD),--cloud-build) $(if $(DRY_RUN),--dry-run))

.PHONY: manifests
manifests: ## Write the git-ignored overlay k8s/overlays/local/RUN (KIND=job|tfjob|trainjob, STEPS, SEED ...)
	$(call need,BUCKET)$(call need,IMAGE)
	$(OVERLAY) --kind='$(KIND)' --name='$(RUN_ID)' --run='$(RUN_ID)' -- $(call kflag,STEPS,total_steps) \
		$(call kflag,NUM_ENVS,num_envs) $(call kflag,SEED,seed) $(call kflag,AGENT,agent) $(call kflag,ENV_ID,env_id) $(ARGS)

SUBMIT_HINT = $(APPLY_WOULD): make delete RUN=$(RUN_ID)$(if $(filter-out job,$(KIND)), KIND=$(KIND)), then make submit RUN=$(RUN_ID) again to go on from its last checkpoint in gs://$(BUCKET)/runs/$(RUN_ID), or choose another RUN
.PHONY: submit
submit: ## Build and push the image, write the overlay, start training RUN on the cluster (stops first if RUN is there)
	$(call need,BUCKET)$(call need,IMAGE)$(call fits,$(KIND),$(RUN_ID))
	@$(ABSENT) '$(JOB_RESOURCE)/$(JOB_PREFIX)-$(RUN_ID)' --hint='$(SUBMIT_HINT)'
	@$(MAKE) --no-print-directory manifests RUN='$(RUN_ID)'
	@$(MAKE) --no-print-directory push
	$(run) kubectl apply -k 'k8s/overlays/local/$(RUN_ID)'
	@echo "Run $(RUN_ID): make status / make logs RUN=$(RUN_ID); logs in gs://$(BUCKET)/runs/$(RUN_ID)"

STUDY_HINT = $(APPLY_WOULD): make delete RUN=$(RUN_ID)-sN for each seed N, then make study RUN=$(RUN_ID) again to go on from the last checkpoints in the bucket, or choose another RUN
.PHONY: study
study: ## The tutorial's study: SEEDS runs of one experiment, RUN-s1 ... under one TensorBoard
	$(call need,BUCKET)$(call need,IMAGE)$(call fits,$(KIND),$(RUN_ID)-s$(SEEDS))
	@$(ABSENT) $(foreach s,$(shell seq 1 '$(SEEDS)'),'$(JOB_RESOURCE)/$(JOB_PREFIX)-$(RUN_ID)-s$(s)') --hint='$(STUDY_HINT)'
	@$(MAKE) --no-print-directory push
	for seed in $$(seq 1 '$(SEEDS)'); do \
		$(MAKE) --no-print-directory manifests RUN='$(RUN_ID)-s'$$seed SEED=$$seed \
		&& $(if $(DRY_RUN),echo ,)kubectl apply -k 'k8s/overlays/local/$(RUN_ID)-s'$$seed; \
	done

TUNE_HINT = Katib lets only its trial counts change (kubectl -n $(NAMESPACE) edit $(TUNE_RESOURCE) kuka-tune-$(RUN_ID)): make delete-tune RUN=$(RUN_ID) first (the trials stay in the bucket), or choose another RUN
# Katib's Experiment is kuka-tune-RUN, at most 40 characters: the default run id is cut to
# fit. Katib's pod webhook adds the metrics collector only in namespaces with the label set.
tune: RUN_ID_KIND := tune
.PHONY: tune
tune: ## Search PPO's settings with Katib: MAX_TRIALS trials of `make submit`'s Job, PARALLEL_TRIALS at a time (RUN names the Experiment)
	$(call need,BUCKET)$(call need,IMAGE)$(call fits,tune,$(RUN_ID))
	@$(ABSENT) '$(TUNE_RESOURCE)/kuka-tune-$(RUN_ID)' --hint='$(TUNE_HINT)'
	$(OVERLAY) --kind=tune --name='tune-$(RUN_ID)' --run='$(RUN_ID)' $(call kflag,MAX_TRIALS,max-trials) \
		$(call kflag,PARALLEL_TRIALS,parallel-trials) -- $(call kflag,STEPS,total_steps) $(call kflag,ENV_ID,env_id) \
		$(call kflag,AGENT,agent) $(ARGS)
	@$(MAKE) --no-print-directory push
	@$(PY3) -m deploy.cluster label --namespace='$(NAMESPACE)' $(if $(DRY_RUN),--dry-run) \
		katib.kubeflow.org/metrics-collector-injection=enabled
	$(run) kubectl apply -k 'k8s/overlays/local/tune-$(RUN_ID)'
	@echo "Experiment kuka-tune-$(RUN_ID): make status-tune RUN=$(RUN_ID); every trial in gs://$(BUCKET)/runs/kuka-tune-$(RUN_ID)-*"

.PHONY: status-tune
status-tune: ## RUN's Katib Experiment, its best trial so far, and its trials
	$(call need,RUN)
	$(run) kubectl -n '$(NAMESPACE)' get '$(TUNE_RESOURCE)' 'kuka-tune-$(RUN)' -o wide
	$(run) kubectl -n '$(NAMESPACE)' get trials.kubeflow.org -l 'katib.kubeflow.org/experiment=kuka-tune-$(RUN)'

.PHONY: delete-tune
delete-tune: ## Delete RUN's Katib Experiment and its trials (their runs stay in the bucket)
	$(call need,RUN)
	$(run) kubectl -n '$(NAMESPACE)' delete '$(TUNE_RESOURCE)' 'kuka-tune-$(RUN)' --ignore-not-found

DISTRIBUTED_HINT = a namespace holds one distributed run: make delete-distributed once it is done, then make submit-distributed again (the same RUN goes on from its last checkpoint in the bucket)
.PHONY: submit-distributed
submit-distributed: ## Build and push the image, start Reverb, COLLECTORS collectors and a learner for RUN (LAYOUT=jobset|jobs)
	$(call need,BUCKET)$(call need,IMAGE)
	$(if $(filter jobset jobs,$(LAYOUT)),,$(error LAYOUT must be jobset or jobs, not '$(LAYOUT)'))
	$(call fits,$(if $(filter jobs,$(LAYOUT)),distributed,jobset),$(RUN_ID))
	@$(ABSENT) --selector=app.kubernetes.io/component=distributed --hint='$(DISTRIBUTED_HINT)' \
		$(if $(filter jobset,$(LAYOUT)),--require=jobsets.jobset.x-k8s.io) jobsets.jobset.x-k8s.io,deployments.apps,jobs.batch
	$(OVERLAY) --kind='$(if $(filter jobs,$(LAYOUT)),distributed,jobset)' --name='distributed-$(RUN_ID)' \
		--run='$(RUN_ID)' $(call kflag,COLLECTORS,collectors) \
		-- $(call kflag,STEPS,total_steps) $(call kflag,SEED,seed) $(call kflag,ENV_ID,env_id) \
		$(call kflag,AGENT,agent) $(ARGS)
	@$(MAKE) --no-print-directory push
	$(run) kubectl apply -k 'k8s/overlays/local/distributed-$(RUN_ID)'
	@echo "Run $(RUN_ID): make status-distributed; make delete-distributed when it is done"

.PHONY: status-distributed
status-distributed: ## The distributed run's Reverb server, collectors and learner in NAMESPACE (either LAYOUT)
	@$(SERVED) get jobsets.jobset.x-k8s.io,deployments,jobs -l app.kubernetes.io/component=distributed
	$(run) kubectl -n '$(NAMESPACE)' get pods -l 'app.kubernetes.io/name in (kuka-reverb,kuka-collect,kuka-learn)' -o '$(POD_COLUMNS)'

.PHONY: delete-distributed
delete-distributed: ## Delete the distributed run's Reverb, collectors and learner (either LAYOUT), not the shared objects (logs stay in the bucket)
	@$(SERVED) delete '$(DISTRIBUTED_KINDS)' -l app.kubernetes.io/component=distributed --ignore-not-found

.PHONY: status
status: ## Training jobs (KIND) in NAMESPACE, and their pods with the exit code and reason (OOMKilled ...) of each
	$(run) kubectl -n '$(NAMESPACE)' get '$(JOB_RESOURCE)' -l app.kubernetes.io/part-of=kuka-grasp
	$(run) kubectl -n '$(NAMESPACE)' get pods -l app.kubernetes.io/part-of=kuka-grasp -o '$(POD_COLUMNS)'

.PHONY: logs
logs: ## Follow the logs of RUN's training pod (KIND as submitted)
	$(call need,RUN)
	$(run) kubectl -n '$(NAMESPACE)' logs -f --tail=100 -l '$(POD_LABEL)=$(JOB_PREFIX)-$(RUN)'

.PHONY: delete
delete: ## Delete RUN's training job (KIND as submitted; its logs stay in the bucket)
	$(call need,RUN)
	$(run) kubectl -n '$(NAMESPACE)' delete '$(JOB_RESOURCE)' '$(JOB_PREFIX)-$(RUN)' --ignore-not-found

##@ Checks

.PHONY: lint
lint: $(VENV)/.dev ## Run every pre-commit hook on every file
	$(VENV)/bin/pre-commit run --all-files --show-diff-on-failure

.PHONY: test
test: $(VENV)/.dev $(CHECKOV_VENV)/bin/checkov lint ## Lint, then run the whole test suite (slow tests included) in TEST_WORKERS processes
	$(PY) -m pytest -n '$(TEST_WORKERS)' --dist loadfile

.PHONY: test-fast
test-fast: $(VENV)/.dev ## Tests without the slow marker
	$(PY) -m pytest -m 'not slow'

.PHONY: clean
clean: ## Remove caches (keeps .venv and runs)
	rm -rf .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -not -path './$(VENV)/*' -exec rm -rf {} +
