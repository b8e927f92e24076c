# Tiercel. Quick start: `make run` and `make test`.
GO          ?= go
BIN         := bin/tiercel
# Test servers (versitygw, MinIO, fake-gcs-server, Azurite) are installed here
# once and reused; see scripts/install-test-tools.sh.
TIERCEL_TOOLS ?= $(HOME)/.cache/tiercel-tools
export TIERCEL_TOOLS
# Tests talk only to servers on this machine: the AWS SDK must never probe
# the EC2 metadata address for credentials or a region.
export AWS_EC2_METADATA_DISABLED = true
FUZZTIME    ?= 50000x
TEST_TIMEOUT ?= 25m

.PHONY: all build run test unit race fuzz tools bench bench-objstore lint clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/tiercel

# A single-node broker on localhost:9092, data under ./data, the filesystem
# object store as the embedded default.
run: build
	./$(BIN) serve --data-dir ./data --kafka-addr localhost:9092

# Everything: installs the test servers, runs every test, the concurrent
# packages again under the race detector, then each fuzz target briefly
# over its committed corpus.
test: tools unit race fuzz

tools:
	bash scripts/install-test-tools.sh

unit:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

# The packages whose goroutines share state, with -race (-short: the
# seeded simulations run fewer seeds; the unit run has the full count).
RACE_PKGS := ./broker/... ./gossip ./tiering ./internal/metalog ./internal/replica ./internal/lease
race:
	$(GO) test -race -short -count=1 -timeout $(TEST_TIMEOUT) $(RACE_PKGS)

fuzz:
	bash scripts/fuzz.sh $(FUZZTIME)

bench: build tools
	bash scripts/bench.sh

# The S3 backend against versitygw and MinIO, the bare SDK and local disk.
bench-objstore: build tools
	bash scripts/bench-objstore.sh

lint:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "not gofmt-formatted:"; echo "$$out"; exit 1; fi

clean:
	rm -rf bin
