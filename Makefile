# Strata. `make test` installs what the tests need (kcat, iproute2, MinIO) if missing, then
# runs every test. MinIO is built from the Go module proxy into a cache directory
# once (about six minutes) and reused after.

GO      ?= go
CACHE   ?= $(if $(XDG_CACHE_HOME),$(XDG_CACHE_HOME),$(HOME)/.cache)/strata
MINIO   ?= $(CACHE)/bin/minio
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all build test test-short deps kcat iproute2 kafkajs minio vet fuzz run dev bench-quick clean

all: build

# strata, the broker and its tools, and strata-bench, the benchmark that
# `strata bench` runs (kept out of the broker's binary: docs/benchmarks.md).
build:
	$(GO) build -o strata ./cmd/strata
	$(GO) build -o strata-bench ./cmd/strata-bench

run: build
	./strata serve

deps: kcat iproute2 kafkajs minio

kcat:
	@command -v kcat >/dev/null 2>&1 || { \
	  echo "installing kcat from Debian's packages"; \
	  $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat; }

# ip(8), for the cluster tests' network namespaces (internal/clustertest).
iproute2:
	@command -v ip >/dev/null 2>&1 || { \
	  echo "installing iproute2 from Debian's packages"; \
	  $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2; }

kafkajs:
	@test -d $(CACHE)/node/node_modules/kafkajs || { \
	  command -v npm >/dev/null 2>&1 || { echo "installing node and npm from Debian's packages"; \
	    $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm; }; \
	  echo "installing kafkajs 2.2.4 into $(CACHE)/node"; \
	  mkdir -p $(CACHE)/node && npm install --no-audit --no-fund --prefix $(CACHE)/node kafkajs@2.2.4; }

minio: $(MINIO)

$(MINIO):
	@echo "building MinIO into $(CACHE)/bin (about six minutes the first time)"
	@mkdir -p $(CACHE)/bin
	GOBIN=$(CACHE)/bin $(GO) install github.com/minio/minio@latest

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }

test: deps vet
	STRATATEST_MINIO=$(MINIO) STRATATEST_REQUIRE_MINIO=1 STRATATEST_REQUIRE_KCAT=1 STRATATEST_REQUIRE_NETNS=1 \
	  STRATATEST_NODE_PATH=$(CACHE)/node/node_modules STRATATEST_REQUIRE_KAFKAJS=1 $(GO) test -race -count=1 -timeout 25m ./...

test-short: vet
	$(GO) test -short ./...

fuzz:
	$(GO) test -run=^$$ -fuzz=FuzzValidateBatches -fuzztime=30s ./localstore
	$(GO) test -run=^$$ -fuzz=FuzzRequestFrame -fuzztime=30s ./broker

# MinIO on 127.0.0.1:9000 with a bucket, and strata serve tiering to it (Ctrl-C stops both).
dev: build minio
	STRATATEST_MINIO=$(MINIO) $(GO) run ./deploy/dev --strata ./strata --dir .dev

# The small benchmark run (under three minutes on two cores); see docs/benchmarks.md.
bench-quick: build
	./strata bench --quick

clean:
	rm -f strata strata-bench
