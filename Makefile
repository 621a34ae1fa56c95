# Sigil: signed-image container runtime and registry.
# `make help` lists the targets. BUILDING notes: Documentation/testing.md.

GO        ?= go
TAGS      ?= seccomp
BIN       := bin/sigil
GOFLAGS_T := -tags $(TAGS)
# Debian packages the tests and the demo use.
APT_PKGS  := build-essential libc6-dev busybox-static skopeo podman runc umoci libseccomp-dev containernetworking-plugins hyperfine slapd ldap-utils
GOBIN     ?= $(shell $(GO) env GOPATH)/bin
GOPATH_BIN := $(shell $(GO) env GOPATH)/bin
COSIGN_VERSION := v2.6.5
CRANE_VERSION  := v0.22.1
STATICCHECK := $(GOBIN)/staticcheck

.PHONY: help build test unit-test e2e-test lint bench demo deps clean

help: ## show this help
	@awk 'BEGIN{FS=":.*## "} /^[a-zA-Z_-]+:.*## /{printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

SHIM := cmd/sigil/shim/shim.bin
RUNNER := cmd/sigil/runner/runner.bin
# The pause program: PID 1 of CRI pods that share a PID namespace. A small
# C program, static, as it is the only file of its container's root
# filesystem; -Os -s keeps what every such pod maps small.
PAUSE := cmd/sigil/pause/pause.bin
# No symbol table or DWARF, as distributions ship binaries: every sigil
# process starts 2 ms sooner (fewer pages to fault in); panics keep their
# stack traces. `make build LDFLAGS=` keeps them for a debugger.
LDFLAGS ?= -ldflags="-s -w"

build: ## build ./bin/sigil (with the runtime shim, the runner and the pause program embedded, see cmd/sigil/shim, runner and pause)
	$(GO) build $(GOFLAGS_T) $(LDFLAGS) -o $(SHIM) ./cmd/sigil/shim
	sha256sum $(SHIM) | cut -c1-64 > cmd/sigil/shim/shim.sha256
	$(GO) build $(GOFLAGS_T) $(LDFLAGS) -o $(RUNNER) ./cmd/sigil/runner
	sha256sum $(RUNNER) | cut -c1-64 > cmd/sigil/runner/runner.sha256
	printf '#define SIGIL_SHIM_NAME "sigil-shim-%s"\n#define SIGIL_RUNNER_NAME "sigil-runner-%s"\n' \
		"$$(cut -c1-16 cmd/sigil/shim/shim.sha256)" "$$(cut -c1-16 cmd/sigil/runner/runner.sha256)" > cmd/sigil/shim_name.h
	$(CC) -static -Os -s -Wall -Wextra -Werror -o $(PAUSE) cmd/sigil/pause/pause.c
	$(GO) build -tags "$(TAGS) sigil_shim sigil_pause" $(LDFLAGS) -o $(BIN) ./cmd/sigil

deps: ## install what the tests need (apt-get, go install) when missing
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@# The signing tests run the real cosign CLI; they look for it on PATH,
	@# then in $$(go env GOPATH)/bin, where it is installed here.
	@command -v cosign >/dev/null 2>&1 || test -x $(GOPATH_BIN)/cosign || { \
		echo "installing cosign $(COSIGN_VERSION)"; \
		GOBIN=$(GOPATH_BIN) $(GO) install github.com/sigstore/cosign/v2/cmd/cosign@$(COSIGN_VERSION); }
	@# The registry tests push and pull with crane too.
	@command -v crane >/dev/null 2>&1 || test -x $(GOPATH_BIN)/crane || { \
		echo "installing crane $(CRANE_VERSION)"; \
		GOBIN=$(GOPATH_BIN) $(GO) install github.com/google/go-containerregistry/cmd/crane@$(CRANE_VERSION); }

test: deps build ## run every test (as root: real namespaces, cgroups, registries on loopback)
	SIGIL_BINARY=$(CURDIR)/$(BIN) $(GO) test $(GOFLAGS_T) -count=1 -timeout 20m ./...

unit-test: ## run the tests that need neither root nor network
	$(GO) test $(GOFLAGS_T) -short ./...

lint: ## gofmt, go vet and staticcheck
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet $(GOFLAGS_T) ./...
	@test -x $(STATICCHECK) || $(GO) install honnef.co/go/tools/cmd/staticcheck@latest
	$(STATICCHECK) -tags $(TAGS) ./...

bench: deps build ## Go benchmarks plus side-by-side runs against runc, podman, skopeo and cosign
	$(GO) test $(GOFLAGS_T) -run '^$$' -bench . -benchmem ./runtime/... ./signing/...
	tests/scripts/bench.sh
	tests/scripts/bench-signing.sh

demo: deps build ## end to end on embedded defaults: sign, verify, fetch, run; then sigil registry serve with logins, enforcement, referrers, audit
	tests/scripts/demo.sh
	tests/scripts/registry-demo.sh

clean: ## remove build output
	rm -rf bin $(SHIM) $(RUNNER) $(PAUSE) cmd/sigil/shim/shim.sha256 cmd/sigil/runner/runner.sha256 cmd/sigil/shim_name.h
