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
build: ## Build the static ephemeral-store binary into bin/ (version and commit stamped in).
	ldflags=$$(scripts/ldflags.sh) && CGO_ENABLED=0 $(GO) build -trimpath -ldflags="$$ldflags" -o $(BIN)/ephemeral-store ./store/cmd/ephemeral-store

.PHONY: tools
tools: ## Install the pinned tools (helm, kind, kubectl, ct) into bin/.
	scripts/install-tools.sh

.PHONY: image
image: ## Build the store image FROM scratch (needs Docker).
	scripts/store-image.sh

.PHONY: release
release: ## Release artifacts into dist/, then checked: binaries (linux/darwin x amd64/arm64), multi-arch image as an OCI archive, chart .tgz + index.yaml, SHA256SUMS.
	scripts/release.sh

.PHONY: docs
docs: ## Regenerate the generated docs: docs/cli/ (every command and flag), the README's serve flag table and the chart README values table.
	scripts/gen-docs.sh

##@ Test (minutes: this 2-core VM, warm build cache)

.PHONY: test
test: verify lint test-unit test-faults test-chart test-e2e ## Everything CI runs, in this order: about 21 min warm, 35 to 45 min cold (docs/testing.md).

.PHONY: verify
verify: ## gofmt, go mod tidy (root, store/client/, tests/, bench/, scripts/release/), the client's dependency list and the root's (no terratest, client-go, kind), the raft copy against its patches/, shellcheck, generated docs current, golangci-lint, govulncheck (offline DB): 2 to 3.5 min warm.
	scripts/verify.sh

# The fault tier (store/internal/faulttest) is test-faults' alone: it needs root, network
# namespaces and minutes, and test-unit stays a quick, unprivileged loop.
UNIT_PKGS = $(shell $(GO) list ./store/... | grep -v '/store/internal/faulttest')

.PHONY: test-unit
test-unit: ## Unit and in-process cluster tests (-race), the client module's, the patched raft's, the bench harness's, the release tool's; no root: about 2 min.
	$(GO) test -race -count=1 -timeout 20m $(UNIT_PKGS)
	cd store/client && $(GO) test -race -count=1 ./...
	cd store/third_party/raft && $(GO) test -race -count=1 -run 'TestInstallSnapshot|TestVerifyLeader|TestVouched|TestGetConfiguration|TestPipelineRefused|TestNetPipeline|TestAppendWithPrevLog|TestOwnSnapshot|TestCommitStops|TestSnapshotsInstalls' .
	cd bench && $(GO) test -count=1 ./...
	cd scripts/release && $(GO) test -count=1 ./...

.PHONY: netlab
netlab: ## Ensure ip and iptables for the network lab of the fault tests (apt-get only if missing).
	scripts/ensure-netlab.sh

RUNS ?= 3
.PHONY: test-faults
test-faults: netlab ## Multi-process fault tier (root): kill/pause/SIGTERM tests (2 min), then RUNS (3) partition schedules (25 s each).
	$(GO) test -race -count=1 -timeout 30m -skip '^TestPartitionSchedules$$' ./store/internal/faulttest/...
	FAULT_RUNS=$(RUNS) $(GO) test -count=1 -timeout 6h -v -run '^TestPartitionSchedules$$' ./store/internal/faulttest/

.PHONY: test-chart
test-chart: tools ## Chart template tests (no cluster): 1 to 2 min (8 min with a cold build cache).
	cd tests && $(GO) test -count=1 -short -timeout 10m ./...

.PHONY: test-e2e
E2E_RUN ?= E2E
E2E_PARALLEL ?= 3
test-e2e: tools ## End-to-end suites on kind (E2E_RUN selects): 6 to 8 min with the cluster up, 35 to 40 min cold.
	cd tests && $(GO) test -tags e2e -count=1 -timeout 75m -parallel $(E2E_PARALLEL) -run '$(E2E_RUN)' -v ./e2e/

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
	cd store/client && $(GO) vet ./...
	cd tests && $(GO) vet -tags e2e ./...
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
