# cip — see README.md. `make test` is what CI runs.
GO       ?= go
GOBIN    ?= $(shell $(GO) env GOPATH)/bin
BIN      := bin
PKG      := github.com/cipdev/cip
# Fuzz targets run briefly in `make test`; long runs are `make fuzz FUZZTIME=10m`.
# The short run counts executions rather than seconds: go1.26's fuzz
# coordinator can fail a duration-bound run with "context deadline
# exceeded" and no crasher when the machine is loaded (golang/go#75804,
# fixed in go1.27). 3000 executions take 1-10 s per target here.
FUZZTIME ?= 3000x

# Tools nobody here wrote, for the end-to-end tests of referrers (cosign
# signs and verifies, oras attaches and discovers): built from the Go
# module proxy into bin/tools (gitignored), once: cosign takes minutes.
# CIP_TOOLS_DIR points the build and the tests elsewhere (a shared cache).
COSIGN_VERSION := v3.1.3
ORAS_VERSION   := v1.3.6
# (An empty CIP_TOOLS_DIR counts as unset, as the tests read it.)
ifeq ($(strip $(CIP_TOOLS_DIR)),)
CIP_TOOLS_DIR  := $(CURDIR)/bin/tools
endif
export CIP_TOOLS_DIR

.PHONY: all build install test unit e2e lint fuzz fuzz-short bench bench-compare bench-wan demo dist release clean ensure-docker-registry tools

all: build

build:
	$(GO) build -trimpath -o $(BIN)/cip ./cmd/cip
	@if [ -d cmd/kubectl-cip ]; then $(GO) build -trimpath -o $(BIN)/kubectl-cip ./cmd/kubectl-cip; fi

# cip, kubectl-cip and kubectl_complete-cip (kubectl's completion of
# `kubectl cip`) into GOBIN.
install:
	GOBIN=$(GOBIN) $(GO) install -trimpath ./cmd/cip ./cmd/kubectl-cip
	install -m 0755 packaging/kubectl_complete-cip $(GOBIN)/kubectl_complete-cip
	@echo "installed cip, kubectl-cip and kubectl_complete-cip into $(GOBIN)"

# The end-to-end tests need the real docker-registry server (Debian package,
# distribution 2.8). Install it when missing; fail loudly when that fails.
ensure-docker-registry:
	@command -v docker-registry >/dev/null 2>&1 || [ -x /usr/bin/docker-registry ] || { \
	  echo "docker-registry missing: installing the Debian package" >&2; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq docker-registry >/dev/null; } \
	  && { command -v docker-registry >/dev/null 2>&1 || [ -x /usr/bin/docker-registry ]; } \
	  || { echo "FATAL: the end-to-end tests need the Debian package docker-registry (apt-get install docker-registry)" >&2; exit 1; }

# Build each tool the end-to-end tests need when the cache lacks it or
# holds another version than the pinned one (`go version -m` reads the
# module version a binary was built from).
tools:
	@mkdir -p "$(CIP_TOOLS_DIR)"
	@$(GO) version -m "$(CIP_TOOLS_DIR)/cosign" 2>/dev/null | grep -Eq '^[[:space:]]+mod[[:space:]]+github.com/sigstore/cosign/v3[[:space:]]+$(COSIGN_VERSION)[[:space:]]' || { \
	  echo "building cosign $(COSIGN_VERSION) into $(CIP_TOOLS_DIR) (takes minutes)" >&2; \
	  GOBIN="$(CIP_TOOLS_DIR)" $(GO) install github.com/sigstore/cosign/v3/cmd/cosign@$(COSIGN_VERSION); }
	@$(GO) version -m "$(CIP_TOOLS_DIR)/oras" 2>/dev/null | grep -Eq '^[[:space:]]+mod[[:space:]]+oras.land/oras[[:space:]]+$(ORAS_VERSION)[[:space:]]' || { \
	  echo "building oras $(ORAS_VERSION) into $(CIP_TOOLS_DIR)" >&2; \
	  GOBIN="$(CIP_TOOLS_DIR)" $(GO) install oras.land/oras/cmd/oras@$(ORAS_VERSION); }

test: ensure-docker-registry tools
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 15m ./...
	$(MAKE) fuzz-short

# Unit tests only (no docker-registry needed).
unit:
	$(GO) test -race $$($(GO) list ./... | grep -v /e2e)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# Each fuzz target for FUZZTIME (go test -fuzz takes one target at a time).
fuzz-short:
	@for t in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$(git ls-files '*_test.go') | sed 's/func //' | sort -u); do \
	  pkg=$$(grep -l "^func $$t(" $$(git ls-files '*_test.go') | head -1 | xargs dirname); \
	  echo "fuzz $$t in ./$$pkg for $(FUZZTIME)"; \
	  $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) ./$$pkg || exit 1; \
	done

fuzz:
	$(MAKE) fuzz-short FUZZTIME=$(FUZZTIME)

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

bench-compare: ensure-docker-registry
	@if [ -x bench/run.sh ]; then bench/run.sh; else echo "bench/run.sh not built yet"; exit 1; fi

# The WAN benchmark of issue 17 (about 70 minutes with today's cip): a
# k8s-shaped tree on 23 simulated hosts with latency, quotas and tokens.
# WAN=large|small|all, CIP_BASE_REF=<commit> to run a baseline build too;
# reports in bench/out/wan-*.md. Never part of `make test`.
WAN ?= all
bench-wan:
	bench/wan.sh $(WAN)

# The main job on an embedded default: two in-process registries, seeded
# from a fixed seed, then validate, sync, snapshots, plan, promote, verify,
# a second promote with nothing to do, a query; each step explained.
# README.md shows its output (checked by cmd/cip-demo's tests). Keep its
# files with: make demo DEMO_FLAGS="--keep /tmp/cip-demo"
demo:
	@$(GO) run ./cmd/cip-demo $(DEMO_FLAGS)

# The release archives, SHA256SUMS and plugins.yaml (scripts/dist.sh).
dist:
	scripts/dist.sh

# A release in one step: make release VERSION=v0.2.0 (TAG=no skips the git
# tag): archives, SHA256SUMS, plugins.yaml committed, the commit tagged.
release:
	VERSION=$(VERSION) TAG=$(or $(TAG),yes) scripts/release.sh

clean:
	rm -rf $(BIN) dist
