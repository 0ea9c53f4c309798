# berth's build. `make demo` and `make test` work on a fresh clone with Go
# installed; nothing here downloads anything but Go modules (and, for
# `make bench`, the cue command from the Go module proxy).

GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/berth-gpu/berth.Version=$(VERSION)
BERTH   := bin/berth

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

## build: bin/berth, with its version from git describe
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BERTH) ./cmd/berth

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

## lint: go vet, and gofmt must have nothing to change
lint:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

## bench: the loader benchmarks, then berth validate against cue vet on a
## generated repository of 10,000 workloads in 200 teams (see
## fixtures/gen/compare.sh for what is compared, and how)
BENCH_COUNT ?= 5
bench: build
	mkdir -p $(CACHE)
	$(GO) test -run '^$$' -bench LoadCold -benchtime 1x -count $(BENCH_COUNT) -benchmem ./cue/ | tee $(CACHE)/bench.txt
	$(GO) test -run '^$$' -bench RevalidateOneFile -benchtime 20x -count $(BENCH_COUNT) -benchmem ./cue/ | tee -a $(CACHE)/bench.txt
	bash fixtures/gen/compare.sh -n $(BENCH_COUNT)

## demo: berth serve on this machine with a simulated 8-GPU box: a
## throwaway Git repository from fixtures/repos/demo, every kind of
## workload running, a commit that admits one job and queues another;
## stops by itself (fixtures/demo/demo.sh says what it shows)
demo: build
	BERTH=$(BERTH) bash fixtures/demo/demo.sh

## fuzz: fuzz the loader, the webhook parser, the snapshot decoder and the
## CODEOWNERS parser (FUZZTIME=5m each by default)
FUZZTIME ?= 5m
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzLoad -fuzztime $(FUZZTIME) ./cue/
	$(GO) test -run '^$$' -fuzz FuzzWebhook -fuzztime $(FUZZTIME) -fuzzminimizetime 10s ./sources/webhook/
	$(GO) test -run '^$$' -fuzz FuzzSnapshot -fuzztime $(FUZZTIME) -fuzzminimizetime 10s ./cue/
	$(GO) test -run '^$$' -fuzz FuzzCodeOwners -fuzztime $(FUZZTIME) -fuzzminimizetime 10s ./policy/

## golden: rewrite the golden files from what the code prints now
golden:
	$(GO) test ./cue/ -run TestBrokenRepositories -update
	$(GO) test ./cmd/berth/ -run TestScripts -update
	$(GO) test ./status/ ./status/gh/ ./reconcile/schedule/sim/ -update
	$(GO) test ./reconcile/kube/ -run TestRender -update

## clean: remove what the build and benchmarks wrote
clean:
	rm -rf bin $(CACHE)/bench $(CACHE)/bench.txt
