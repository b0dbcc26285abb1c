# Tower's front door. `make run` starts a cluster on this machine, `make
# test` runs every check CI runs. See README.md.

SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c

GO ?= go
BIN := bin
TOWER := $(BIN)/tower
ENVTEST_ASSETS := $(BIN)/k8s

# Arguments for `tower up` in `make run`, e.g. make run RUN_ARGS='--data-dir /tmp/tower'.
RUN_ARGS ?=

# Version stamped into the binary. The Kubernetes version is the release
# whose k8s.io/api module go.mod pins (v0.37.2 -> v1.37.2); kubectl and
# client-go report it through the component-base and client-go variables.
VERSION ?= v0.1.0
COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null)
TREE_STATE ?= $(shell git diff --quiet HEAD -- 2>/dev/null && echo clean || echo dirty)
BUILD_DATE ?= $(shell git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ 2>/dev/null || echo 1970-01-01T00:00:00Z)
KUBE_VERSION ?= $(shell $(GO) list -m -f '{{.Version}}' k8s.io/api | sed 's/^v0\./v1./')
KUBE_MINOR = $(word 2,$(subst ., ,$(KUBE_VERSION)))
KUBE_VERSION_PACKAGES := k8s.io/component-base/version k8s.io/client-go/pkg/version
LDFLAGS = -X tower.dev/tower/cmd/tower/internal/version.tower=$(VERSION) \
	-X tower.dev/tower/cmd/tower/internal/version.commit=$(COMMIT) \
	$(foreach p,$(KUBE_VERSION_PACKAGES),\
		-X $(p).gitVersion=$(KUBE_VERSION) -X $(p).gitMajor=1 -X $(p).gitMinor=$(KUBE_MINOR) \
		-X $(p).gitCommit=$(COMMIT) -X $(p).gitTreeState=$(TREE_STATE) -X $(p).buildDate=$(BUILD_DATE))

# Debian packages Tower needs at run time, installed by `make deps` only
# when missing: the node agent's runtime (containerd, runc), pod network
# (CNI plugins), service proxy (nftables), and busybox for the shell image.
SYSTEM_PACKAGES ?= containerd runc containernetworking-plugins nftables busybox-static
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

# SA1019 (use of deprecated identifiers) is off: an API server must keep
# serving deprecated types and fields (core/v1 Endpoints, orphanDependents).
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 -checks 'inherit,-SA1019'

# controller-gen writes the deepcopy functions of apis/ (make generate) and
# the CRD, RBAC and webhook manifests under config/ (make manifests), as in a
# kubebuilder project.
CONTROLLER_GEN ?= $(GO) run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0

.PHONY: all build envtest-assets images deps run test lint bench bench-short bench-node clean generate manifests

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(TOWER) ./cmd/tower

# kube-apiserver, etcd and kubectl for envtest: links to tower, which acts
# as the program it is invoked as. Use KUBEBUILDER_ASSETS=$(CURDIR)/bin/k8s.
envtest-assets: build
	mkdir -p $(ENVTEST_ASSETS)
	for name in kube-apiserver etcd kubectl; do ln -sfn ../tower $(ENVTEST_ASSETS)/$$name; done

generate:
	$(CONTROLLER_GEN) object paths="./apis/..."

manifests:
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd webhook paths="./apis/..." paths="./controllers/addresspool/..." paths="./internal/webhook/..." output:crd:artifacts:config=config/crd/bases

# The test images (echo, crashloop, busybox) as OCI archives that
# `tower images import` and `tower up --images-dir` load without a registry.
images:
	$(GO) run ./test/images/build $(BIN)/images

deps:
	@command -v $(GO) >/dev/null || { echo "Go 1.26 is required (https://go.dev/dl/)" >&2; exit 1; }
	@missing=""; \
	for pkg in $(SYSTEM_PACKAGES); do dpkg -s "$$pkg" >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
		echo "Installing:$$missing"; \
		$(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends $$missing; \
	fi

run: deps build images
	$(TOWER) up --images-dir $(BIN)/images $(RUN_ARGS)

# Unit and integration tests (test/integration runs in the same go test).
test: lint envtest-assets
	KUBEBUILDER_ASSETS=$(CURDIR)/$(ENVTEST_ASSETS) $(GO) test -count=1 -timeout 30m ./...

lint:
	@unformatted="$$(gofmt -l $$(git ls-files --cached --others --exclude-standard '*.go'))"; \
	if [ -n "$$unformatted" ]; then echo "gofmt needed on:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

# Load against tower and, when ~/.cache/tower-reference has it, against
# kube-apiserver in the same run, with ratios (see test/bench).
bench:
	$(GO) run ./test/bench

bench-short:
	$(GO) run ./test/bench -short

# One real node (root, containerd): pod start latency, pods held, agent RSS.
bench-node:
	$(GO) run ./test/bench -suite=node

clean:
	rm -rf $(BIN)
