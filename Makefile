# smartlayer — the two commands that matter are `make run` and `make test`.
GO        ?= go
BIN       := bin
PKGS      := ./...
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X github.com/smartlayer/smartlayer/internal/version.Version=$(VERSION)
IMAGE     ?= smartlayer:$(VERSION)
FUZZTIME  ?= 5s
TESTFLAGS ?= -count=1 -timeout 20m

.PHONY: all build image run test unit fuzz vet vet-eval bench demo eval clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/...

## image: the container image (needs a Docker engine); IMAGE=registry/smartlayer:tag to name it.
image:
	docker build --build-arg VERSION=$(VERSION) -t $(IMAGE) .

## run: authz on the memory store with embedded defaults (no Redis, no ClickHouse needed).
run: build
	$(BIN)/authz serve $(ARGS)

## test: installs and starts Redis and ClickHouse (Debian packages), runs vet, all tests and short fuzzing.
test:
	scripts/testenv.sh $(MAKE) --no-print-directory vet unit fuzz

vet: vet-eval
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { gofmt -l .; echo 'gofmt: files above need formatting'; exit 1; }
	$(GO) vet $(PKGS)

# eval/ is its own module (Coraza stays out of the product's go.mod): make test only vets it
# and runs its fast unit tests; the full measurement is `make eval`.
vet-eval:
	cd eval && $(GO) vet ./... && $(GO) test -count=1 ./...

unit:
	$(GO) test $(TESTFLAGS) $(PKGS)

# Each fuzz target runs for FUZZTIME; `go test -fuzz` takes one target per run.
fuzz:
	@scripts/fuzz.sh $(FUZZTIME)

## bench: ghz over loopback gRPC (no-op baseline, memory/Redis stores, 8 KiB body) and the key Go
## benchmarks, one table, written to bench/RESULTS.md.
bench:
	scripts/bench.sh

## demo: Redis + ClickHouse, authz, 30 s of users and attackers with a progress line, then today's report.
demo:
	scripts/demo.sh

## eval: replays CRS's regression tests and the benign corpus through smartlayer's payload stage and
## Coraza + CRS (PL1) side by side; writes eval/RESULTS.md and eval/out/ (misses, benign FPs).
eval:
	cd eval && $(GO) run ./cmd/crseval

clean:
	rm -rf $(BIN)
