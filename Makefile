# shopstream: the two commands are `make demo` and `make test`.
SHELL := /bin/bash
GO ?= go

export SHOPSTREAM_KAFKA_PORT ?= 9092
export SHOPSTREAM_REDIS_PORT ?= 6379
export SHOPSTREAM_CLICKHOUSE_PORT ?= 9000
export SHOPSTREAM_KAFKA_BROKERS ?= 127.0.0.1:$(SHOPSTREAM_KAFKA_PORT)
export SHOPSTREAM_REDIS_ADDR ?= 127.0.0.1:$(SHOPSTREAM_REDIS_PORT)
export SHOPSTREAM_CLICKHOUSE_ADDR ?= 127.0.0.1:$(SHOPSTREAM_CLICKHOUSE_PORT)
# One local broker: topics replicate once (the code's default, 3, is for a cluster).
export SHOPSTREAM_REPLICATION ?= 1

# A count of runs, not a duration: Go 1.26's fuzzing coordinator can fail a
# target with a bare "context deadline exceeded" as a duration runs out on a
# loaded machine, with no input to blame (go.dev/issue/75804, fixed in Go
# 1.27); a count has no deadline to race. 100000x is about 10s a target here.
FUZZTIME ?= 100000x

.PHONY: up down status build demo test unit race fuzz bench clean

## up: install what is missing and start Kafka, Redis and ClickHouse on loopback
up:
	./deploy/local/stack.sh up

## down: stop what up started
down:
	./deploy/local/stack.sh down

status:
	./deploy/local/stack.sh status

build:
	$(GO) build -o bin/shopstream ./cmd/shopstream

## demo: the pipeline end to end on a burst of signed webhooks
demo: up build
	./bin/shopstream demo

## test: unit and integration tests against the real stack (started here)
test: up
	SHOPSTREAM_REQUIRE_STACK=1 $(GO) test -count=1 -timeout 30m ./...
	$(MAKE) race
	$(MAKE) fuzz FUZZTIME=50000x

## race: the tests again under the race detector, but e2e's, whose pipeline
## is a separate binary the detector does not watch. checkptr is off:
## goccy/go-json's pointer arithmetic trips it in ingest/providers, while
## the race detector itself finds nothing there.
race: up
	SHOPSTREAM_REQUIRE_STACK=1 $(GO) test -race -gcflags=all=-d=checkptr=0 -count=1 -timeout 30m $$($(GO) list ./... | grep -v /e2e$$)

## unit: the tests that need no stack (integration tests skip)
unit:
	SHOPSTREAM_REQUIRE_STACK=0 CI= $(GO) test -count=1 ./...

## fuzz: every fuzz target over untrusted input, FUZZTIME each
fuzz:
	$(GO) test ./schemas/avro -run '^$$' -fuzz FuzzUnmarshal -fuzztime $(FUZZTIME)
	$(GO) test ./ingest/providers -run '^$$' -fuzz FuzzStandardWebhooks -fuzztime $(FUZZTIME)
	$(GO) test ./ingest/providers -run '^$$' -fuzz FuzzShopify -fuzztime $(FUZZTIME)
	$(GO) test ./ingest/providers -run '^$$' -fuzz FuzzStripe -fuzztime $(FUZZTIME)
	$(GO) test ./ingest/providers -run '^$$' -fuzz FuzzWebflow -fuzztime $(FUZZTIME)
	$(GO) test ./ingest -run '^$$' -fuzz FuzzResponseJSON -fuzztime $(FUZZTIME)

## bench: Go benchmarks, redis-benchmark, and the load generator against a bare handler and the pipeline
bench: up build
	./bench/run.sh

clean: down
	rm -rf .stack bin
