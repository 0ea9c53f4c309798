# berth's build. `make demo` and `make test` work on a fresh clone with Go
# installed; nothing here downloads anything but Go modules (and, for
# `make bench`, the cue command from the Go module proxy).

GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/berth-gpu/berth.Version=$(VERSION)
BERTH   := bin/berth
NVML    := bin/berth-nvml

# Where tools and benchmark repositories go (git-ignored).
CACHE   := .cache

# The test environment (a Kubernetes API server with KWOK, a Git server)
# lives in fixtures/testenv. Its makefile adds what `make test` needs to
# TEST_DEPS; until it does, `make test` needs nothing first.
TEST_DEPS ?=
-include fixtures/testenv/testenv.mk

.DEFAULT_GOAL := build

.PHONY: all build test race lint bench demo fuzz golden clean

all: build

## build: bin/berth, with its version from git describe, and beside it
## bin/berth-nvml, the helper that reads the GPUs with NVML (cgo) for the
## local backend; berth itself does not link NVML (cmd/berth-nvml says why)
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BERTH) ./cmd/berth
	CGO_ENABLED=1 $(GO) build -o $(NVML) ./cmd/berth-nvml

## test: every test; never rewrites the tree (make golden does)
test: $(TEST_DEPS)
	$(GO) test ./...

## race: the engine, the local backend, sources and status/gh under the
## race detector (the packages where goroutines meet: watchers, shims,
## informers, webhooks, parallel posting); -short keeps the long property
## tests to their short form (make test runs them whole)
RACE_PKGS := ./reconcile/ ./reconcile/local/ ./sources/... ./status/gh/...
race: $(TEST_DEPS)
	$(GO) test -race -short $(RACE_PKGS)

## lint: go vet, gofmt must have nothing to change, and staticcheck
## (pinned; built once from the Go module proxy into .cache; its settings
## are staticcheck.conf)
STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(CACHE)/staticcheck-$(STATICCHECK_VERSION)/staticcheck
lint: $(STATICCHECK)
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(STATICCHECK) ./...

$(STATICCHECK):
	GOBIN=$(abspath $(dir $(STATICCHECK))) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

## bench: the loader benchmarks, then berth validate end to end against
## cue vet, cold, and warm after one changed file, on generated
## repositories of BENCH_SIZES workloads in 200 teams (see
## fixtures/gen/compare.sh for what is compared, and how); then berth
## validate and berth plan after one changed file at 50,000 workloads,
## with BENCH_BASE=REV the build of REV in turn (fixtures/gen/warm.sh)
BENCH_COUNT ?= 5
BENCH_SIZES ?= 10000 50000
BENCH_BASE  ?=
bench: build
	mkdir -p $(CACHE)
	BERTH_BIN=$(abspath $(BERTH)) $(GO) test -run '^$$' -bench LoadCold -benchtime 1x -count $(BENCH_COUNT) -benchmem ./cue/ | tee $(CACHE)/bench.txt
	BERTH_BIN=$(abspath $(BERTH)) $(GO) test -run '^$$' -bench 'RevalidateOneFile|LoadDiskCacheOneFile' -benchtime 20x -count $(BENCH_COUNT) -benchmem ./cue/ | tee -a $(CACHE)/bench.txt
	for n in $(BENCH_SIZES); do bash fixtures/gen/compare.sh -n $(BENCH_COUNT) -workloads $$n | tee -a $(CACHE)/bench.txt; done
	bash fixtures/gen/warm.sh -n $(BENCH_COUNT) -workloads 50000 $(if $(BENCH_BASE),-base $(BENCH_BASE)) | tee -a $(CACHE)/bench.txt

## demo: berth serve on this machine with a simulated 8-GPU box: a
## throwaway Git repository from fixtures/repos/demo, every kind of
## workload running, a commit that admits one job and queues another;
## stops by itself (fixtures/demo/demo.sh says what it shows)
demo: build
	BERTH=$(BERTH) bash fixtures/demo/demo.sh

## fuzz: run every fuzz target in the repository (the loader, the webhook
## parser, the snapshot decoder, the CODEOWNERS parser, ...) for FUZZTIME
## each (30s by default): FUZZ_TARGETS lists them as package:name, found by
## their func FuzzXxx lines (FUZZ_TARGETS=./cue/:FuzzLoad runs one). A crash
## stops it and leaves the input in the package's testdata/fuzz: fix the
## bug and commit the input, a regression test from then on. New
## interesting inputs are minimized with one try only: minimizing each
## one for the default minute left the fuzzer running no new input for
## minutes at a time.
FUZZTIME ?= 30s
FUZZMINIMIZETIME ?= 1x
FUZZ_TARGETS ?= $(shell git grep -e '^func Fuzz[A-Za-z0-9_]*.f [*]testing[.]F' -- '*_test.go' | \
	sed -E 's|^(([^:]*/)?)[^/:]*_test[.]go:func (Fuzz[A-Za-z0-9_]*).*|./\1:\3|')
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz: $$name in $$pkg for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) \
			-fuzzminimizetime $(FUZZMINIMIZETIME) $$pkg; \
	done

## golden: rewrite the golden files from what the code prints now
golden:
	$(GO) test ./cue/ -run TestBrokenRepositories -update
	$(GO) test ./cmd/berth/ -run TestScripts -update
	$(GO) test ./status/ ./status/gh/ ./reconcile/schedule/sim/ -update
	$(GO) test ./reconcile/kube/ -run TestRender -update

## clean: remove what the build and benchmarks wrote
clean:
	rm -rf bin $(CACHE)/bench $(CACHE)/bench.txt
