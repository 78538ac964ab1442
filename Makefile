# Every entry point of the project. `make help` lists them; logic lives in scripts/.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -o pipefail -ec
.DEFAULT_GOAL := help

GO        ?= go
BIN       := $(CURDIR)/bin
export PATH := $(BIN):$(PATH)
export GOFLAGS ?= -buildvcs=false

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m\n"} \
	  /^[a-zA-Z0-9_-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } \
	  /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Build

.PHONY: build
build: ## Build the static ephemeral-store binary into bin/.
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $(BIN)/ephemeral-store ./store/cmd/ephemeral-store

.PHONY: tools
tools: ## Install the pinned tools (helm, kind, kubectl, ct) into bin/.
	scripts/install-tools.sh

.PHONY: image
image: ## Build the store image FROM scratch (needs Docker).
	scripts/store-image.sh

.PHONY: docs
docs: ## Regenerate the generated docs: docs/cli/ (every command and flag) and the chart README values table.
	scripts/gen-docs.sh

##@ Test

.PHONY: test
test: lint test-unit test-chart test-e2e ## Lint, then every test tier (unit, faults, chart templates, kind end-to-end).

.PHONY: test-unit
test-unit: netlab ## Unit, in-process cluster and multi-process tests of the server.
	$(GO) test -race -count=1 -timeout 20m ./store/...
	cd store/third_party/raft && $(GO) test -race -count=1 -run 'TestInstallSnapshot|TestVerifyLeader' .
	cd bench && $(GO) test -count=1 ./...

.PHONY: netlab
netlab: ## Ensure ip and iptables for the network lab of the fault tests (apt-get only if missing).
	scripts/ensure-netlab.sh

RUNS ?= 50
.PHONY: test-faults
test-faults: netlab ## Partition/fault tier only: RUNS (50) seeded schedules, then one summary line (root).
	FAULT_RUNS=$(RUNS) $(GO) test -count=1 -timeout 6h -v -run '^TestPartitionSchedules$$' ./store/internal/faulttest/

.PHONY: test-chart
test-chart: tools ## Chart template tests (no cluster).
	$(GO) test -count=1 -short -timeout 10m ./tests/...

.PHONY: test-e2e
E2E_RUN ?= E2E
E2E_PARALLEL ?= 3
test-e2e: tools ## End-to-end suites on kind (E2E_RUN selects): the harness ensures Docker, images and the cluster.
	$(GO) test -tags e2e -count=1 -timeout 75m -parallel $(E2E_PARALLEL) -run '$(E2E_RUN)' -v ./tests/e2e/

.PHONY: fuzz
fuzz: ## Run each fuzz target for FUZZTIME (default 30s).
	scripts/fuzz.sh

.PHONY: bench-go
bench-go: ## Go benchmarks of the server (TLS GET/PUT, replicated cluster).
	$(GO) test -run '^$$' -bench . -benchmem ./store/...

BENCH_FLAGS ?=
.PHONY: bench
bench: ## Side-by-side ephemeral-store vs etcd vs Redis into bench/results/<date>/ (BENCH_FLAGS=-quick for a smoke test).
	BENCH_FLAGS='$(BENCH_FLAGS)' scripts/bench.sh

.PHONY: lint
lint: tools ## go vet, helm lint --strict on every values file, ct lint.
	$(GO) vet ./...
	$(GO) vet -tags e2e ./tests/...
	cd bench && $(GO) vet ./...
	scripts/lint-chart.sh

##@ Cluster

.PHONY: up
up: tools ## Bring the store up on a local kind cluster (builds everything offline).
	scripts/up.sh

.PHONY: down
down: ## Delete the kind cluster; images stay.
	scripts/down.sh

.PHONY: cluster
cluster: ## Create or reuse the kind cluster only (Docker, node image, store image loaded).
	scripts/ensure-docker.sh
	scripts/node-image.sh
	scripts/store-image.sh
	scripts/kind-cluster.sh

.PHONY: egress-status
egress-status: ## What the egress guard dropped (air-gapped mode).
	scripts/egress-guard.sh status
