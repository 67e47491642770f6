# Switchboard: the two commands a newcomer needs are `make run` (or
# `go run ./cmd/switchboard`) and `make test`.

GO       ?= go

.PHONY: run build test deps vet unit fuzz bench cluster

## run: serve on :8080 with the embedded backends, data in ./data
run:
	$(GO) run ./cmd/switchboard

## cluster: the distributed stack on this machine (Redis, Kafka, Cassandra,
## two workers, two gateways); see docs/deploy.md. Ctrl-C stops it.
cluster:
	bash scripts/cluster.sh

## build: the binary, as bin/switchboard
build:
	$(GO) build -o bin/switchboard ./cmd/switchboard

## test: everything CI runs: setup, vet, unit/e2e/interop tests, fuzzing
test: deps vet unit fuzz

## deps: install the tools the tests need (Python websockets, Node ws, the
## versitygw S3 server for backends/s3; Redis, Kafka and Cassandra for
## internal/testengines)
deps:
	GO="$(GO)" bash scripts/test-deps.sh

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l . | tee /dev/stderr)" || (echo "gofmt would change the files above"; exit 1)

unit:
	$(GO) test -race -count=1 -timeout 30m ./...

## fuzz: each fuzz target for a fixed number of executions (go test -fuzz
## takes one target at a time). Counts, not durations: with a duration, Go
## 1.26's fuzz coordinator can report a spurious "context deadline exceeded"
## at the deadline (golang/go#75804, fixed in Go 1.27). FUZZSCALE multiplies
## every count.
FUZZSCALE ?= 1
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$'     -fuzztime $$((300000*$(FUZZSCALE)))x ./protocol
	$(GO) test -run '^$$' -fuzz '^FuzzHandshake$$'  -fuzztime $$((100000*$(FUZZSCALE)))x ./gateway
	$(GO) test -run '^$$' -fuzz '^FuzzFrames$$'     -fuzztime $$((100000*$(FUZZSCALE)))x ./gateway
	$(GO) test -run '^$$' -fuzz '^FuzzVerify$$'     -fuzztime $$((100000*$(FUZZSCALE)))x ./auth
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeMeta$$' -fuzztime $$((60000*$(FUZZSCALE)))x  ./backends/disk
	$(GO) test -run '^$$' -fuzz '^FuzzHandle$$'     -fuzztime $$((50000*$(FUZZSCALE)))x ./client
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeEvent$$' -fuzztime $$((100000*$(FUZZSCALE)))x ./presence
	$(GO) test -run '^$$' -fuzz '^FuzzForward$$'    -fuzztime $$((30000*$(FUZZSCALE)))x  ./chat
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeCommand$$' -fuzztime $$((100000*$(FUZZSCALE)))x ./cluster

## bench: the micro-benchmarks quoted in docs/benchmarks.md
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./protocol ./gateway ./auth ./backends/...
