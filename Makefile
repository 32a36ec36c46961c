# prebake's build, test and demo entry points. `make help` lists them.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --match 'v*' --dirty 2>/dev/null || echo v0.1.0-dev)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS := -buildid= -s -w \
	-X github.com/prebake/prebake/internal/version.Version=$(VERSION) \
	-X github.com/prebake/prebake/internal/version.Commit=$(COMMIT)
TOOLS := $(CURDIR)/.cache/tools
export PATH := $(TOOLS)/bin:$(PATH)
export GOFLAGS := -buildvcs=false

.PHONY: help build build-kms bench-ci test test-short demo bench lint verify docs tools conformance clean e2e-boot e2e-join e2e-cluster real fuzz agent agent-lock image

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 16

build: ## build bin/prebake and bin/prebake-serve (the registry server `prebake serve` and `prebake gc` run)
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/prebake ./cmd/prebake
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/prebake-serve ./cmd/prebake-serve

build-kms: ## build bin/prebake with the cloud KMS providers (awskms://, gcpkms://, azurekms://, hashivault:// keys); see docs/benchmarks.md for the cost
	$(GO) build -tags kms -trimpath -ldflags '$(LDFLAGS)' -o bin/prebake ./cmd/prebake
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/prebake-serve ./cmd/prebake-serve

image: build ## prebake's multi-arch (linux/amd64, linux/arm64) container image, built by prebake into _out/image/oci and checked (PUSH=REPO to push, SIGN_KEY=KEY to sign; docs/ci.md)
	VERSION='$(VERSION)' LDFLAGS='$(LDFLAGS)' PUSH='$(PUSH)' SIGN_KEY='$(SIGN_KEY)' hack/image.sh

agent: ## build the prebake-agent release binaries into _out/agent (reproducible; checked against the catalog locks)
	$(GO) run ./hack/agentbuild -o _out/agent

agent-lock: ## after changing the agent: rebuild it and rewrite the catalog locks' prebake-agent entries
	$(GO) run ./hack/agentbuild -o _out/agent -lock

tools: ## install the real clients the tests talk to (apt + go build into .cache/tools)
	hack/tools.sh

# The real kubeadm and containerd the fast checks feed rendered and catalog
# configuration to (source builds, cached by version: hack/real/build.sh).
# kubeadm deploys its own minor and the one before: the catalog's oldest
# minor (1.34) is validated by a kubeadm of that minor (render --init).
REAL_ENV = PREBAKE_KUBEADM=$$(hack/real/build.sh kubeadm)/kubeadm PREBAKE_CONTAINERD=$$(hack/real/build.sh containerd)/containerd \
	PREBAKE_KUBEADM_1_34=$$(K8S_VERSION=1.34.4 hack/real/build.sh kubeadm)/kubeadm

# Packages with concurrency (parallel fetches and layer builds, the registry
# and its server, signing) run under the race detector in `make test`.
# RACE_SKIP runs without it: the kill -9 tests time their kills against
# progress (a race-instrumented client acknowledges no push in its windows:
# 0 of 24 rounds, against 65 without -race), and the layout one re-executes
# the test binary, which -race makes several times slower to start.
RACE_PKGS := ./builder/... ./registry/... ./signing/...
RACE_SKIP := TestKill9DuringPushes|TestKill9DuringLayoutWrites
FUZZTIME ?= 60s

test: tools build ## everything: unit (race detector on the concurrent packages), seed corpora, integration with real clients (and the real kubeadm/containerd), conformance, the Packer plugin e2e
	$(REAL_ENV) PREBAKE_BIN=$(CURDIR)/bin/prebake $(GO) test -count=1 -timeout 30m $$($(GO) list ./... | grep -v -E '/prebake/(builder|registry|signing)(/|$$)')
	PREBAKE_BIN=$(CURDIR)/bin/prebake $(GO) test -race -count=1 -timeout 30m -skip '^($(RACE_SKIP))$$' $(RACE_PKGS)
	PREBAKE_BIN=$(CURDIR)/bin/prebake $(GO) test -count=1 -timeout 30m -run '^($(RACE_SKIP))$$' ./registry ./registry/server
	$(MAKE) --no-print-directory conformance
	$(MAKE) --no-print-directory test-packer
	$(MAKE) --no-print-directory e2e-packer

fuzz: ## run every Fuzz target of the module for FUZZTIME each (default 60s; hack/fuzz.sh)
	FUZZTIME=$(FUZZTIME) hack/fuzz.sh

test-short: ## unit tests only, no external clients
	$(GO) test -short ./...

demo: build ## run the main job on embedded defaults, offline
	hack/demo.sh

bench: tools build ## benchmarks against real peers; results in docs/benchmarks.md
	hack/bench.sh

bench-ci: tools build ## only the CI-path row (start-up, re-push, pull, verify, zstd build, render vs their peers); docs/benchmarks.md and docs/benchmarks-ci.json
	hack/bench-ci.sh

conformance: tools build ## OCI distribution-spec conformance against prebake serve
	hack/conformance.sh

real: ## build the real Kubernetes, etcd, containerd, runc, CNI and crictl binaries from source into .cache/real
	hack/real/build.sh

e2e-cluster: build ## two machines: a control-plane image runs kubeadm init from rendered user-data, a worker image joins; both Ready, a Pod Running, 0 bytes and 0 image pulls at boot (slow; docs/cluster.md)
	BENCH_APPEND=1 hack/cluster/e2e.sh

e2e-join: build ## a node from the catalog image joins a real control plane: Node Ready, Pod Running, 0 bytes at boot, vs a download-at-boot baseline (slow; docs/boot.md)
	BENCH_APPEND=1 hack/e2e-join.sh

e2e-boot: build ## boot the agent path, the cloud-init path and a download-at-boot baseline under qemu (slow; docs/boot.md)
	BENCH_APPEND=1 hack/e2e-boot.sh

lint: ## gofmt, go vet, staticcheck on both modules (the root and packer/)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(PACKER_GO) vet -tags e2e ./...
	hack/tools.sh staticcheck && staticcheck ./... && (cd packer && GOFLAGS='$(GOFLAGS) -mod=mod' staticcheck -tags e2e ./...)

verify: lint ## lint plus generated files (CLI reference, packer HCL2 specs) up to date
	$(GO) run ./hack/gendocs -check docs/cli
	packer/hack/tools.sh packer-sdc
	$(PACKER_GO) generate ./... && git diff --exit-code -- '*.hcl2spec.go'

docs: ## regenerate the CLI reference in docs/cli
	$(GO) run ./hack/gendocs docs/cli

clean:
	rm -rf bin _out

# The Packer plugin is its own Go module (packer/), so that the Packer SDK and
# its go-cty replace stay out of the CLI's dependency graph. -mod=mod lets its
# go.sum pick up modules the root adds (it requires the root through replace).
PACKER_GO := cd packer && GOFLAGS='$(GOFLAGS) -mod=mod' $(GO)
.PHONY: plugin plugin-kms test-packer e2e-packer

plugin: ## build bin/packer-plugin-prebake (Packer plugin, module packer/)
	$(PACKER_GO) build -trimpath -ldflags '-buildid= -s -w' -o $(CURDIR)/bin/packer-plugin-prebake .

plugin-kms: ## build bin/packer-plugin-prebake with the cloud KMS providers (sign_key/public_key = awskms://, gcpkms://, azurekms://, hashivault://)
	$(PACKER_GO) build -tags kms -trimpath -ldflags '-buildid= -s -w' -o $(CURDIR)/bin/packer-plugin-prebake .

test-packer: ## the Packer plugin's unit and in-process tests
	$(PACKER_GO) vet ./...
	$(PACKER_GO) test -count=1 -timeout 15m ./...

e2e-packer: build plugin ## real packer v1.11.2 runs the plugin against prebake serve and a local sshd
	packer/hack/tools.sh
	$(PACKER_GO) generate ./... && git diff --exit-code -- '*.hcl2spec.go'
	cd packer && GOFLAGS='$(GOFLAGS) -mod=mod' PREBAKE_BIN=$(CURDIR)/bin/prebake PACKER_PLUGIN_BIN=$(CURDIR)/bin/packer-plugin-prebake \
		$(GO) test -tags e2e -count=1 -timeout 30m -run TestE2E -v ./e2e/
