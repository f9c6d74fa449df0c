#!/usr/bin/env bash
# make bench: every figure beside its baseline, measured in the same run so
# that the ratio survives a noisy machine. Needs the stack (make up) and
# bin/shopstream (make build). Traffic goes to loopback only; every loop is
# bounded by -n and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${BENCH_WEBHOOKS:-20000}
C=${BENCH_CONCURRENCY:-64}
redis_port=${SHOPSTREAM_REDIS_PORT:-6379}
ch_port=${SHOPSTREAM_CLICKHOUSE_PORT:-9000}

echo "# machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "# $(go version)"

echo; echo "## Go benchmarks (each beside its baseline)"
SHOPSTREAM_REQUIRE_STACK=1 go test -run '^$' -bench . -benchmem -count 1 \
  ./ingest/ ./ingest/providers ./schemas/avro ./stock | grep -E '^Benchmark'

echo; echo "## redis-benchmark: the server's own floor for the writes an apply makes (appendfsync always)"
redis-benchmark -h 127.0.0.1 -p "$redis_port" -q -n 20000 -c 1 -t set,incr | tr "\r" "\n" | grep "per second" | sed "s/^ */1 client:   /"
redis-benchmark -h 127.0.0.1 -p "$redis_port" -q -n 50000 -c 32 -t set,incr | tr "\r" "\n" | grep "per second" | sed "s/^ */32 clients: /"

echo; echo "## the inventory stage alone, from a filled deltas topic, exactly once (bench/stages); its Redis floor in the same run"
redis-benchmark -h 127.0.0.1 -p "$redis_port" -q -n 50000 -c 32 EVAL "return redis.call('INCR', KEYS[1])" 1 "bench:{eval}" | tr "\r" "\n" | grep "per second" | sed "s/^ */redis-benchmark EVAL of one INCR, 32 clients: /"
redis-benchmark -h 127.0.0.1 -p "$redis_port" -q -n 50000 -c 32 -t incr | tr "\r" "\n" | grep "per second" | sed "s/^ */redis-benchmark INCR, 32 clients: /"
go build -o bin/stages ./bench/stages
for dist in uniform zipf hot; do
  bin/stages -stage inventory -dist "$dist" -n "${BENCH_DELTAS:-100000}" 2>/dev/null
done

export SHOPSTREAM_WEBHOOK_SECRET="whsec_$(head -c 24 /dev/urandom | base64)"
echo; echo "## ingest over loopback: bare handler (baseline), then shopstream ingest with Kafka acks=all"
bin/shopstream loadgen -bare -n "$N" -c "$C"

export SHOPSTREAM_REPLICATION=${SHOPSTREAM_REPLICATION:-1}
ns="bench_$(date +%s)_"
export SHOPSTREAM_PREFIX=$ns SHOPSTREAM_CLICKHOUSE_DB="${ns%_}" SHOPSTREAM_LISTEN=127.0.0.1:18080
export SHOPSTREAM_LOG_LEVEL=warn SHOPSTREAM_INSTANCE=bench
bin/shopstream topics apply >/dev/null
bin/shopstream migrate >/dev/null
bin/shopstream run 2>"/tmp/${ns}run.log" &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -sf http://127.0.0.1:18080/healthz >/dev/null && break; sleep 0.2; done
start=$(date +%s.%N)
bin/shopstream loadgen -url http://127.0.0.1:18080/webhooks/standardwebhooks -n "$N" -c "$C"

echo; echo "## whole pipeline: from the first webhook until all $N sale movements are in ClickHouse"
for _ in $(seq 1 1200); do
  got=$(clickhouse-client --port "$ch_port" -q "SELECT count() FROM ${ns%_}.inventory_movements_final" 2>/dev/null || echo 0)
  [[ $got -ge $N ]] && break
  sleep 0.5
done
end=$(date +%s.%N)
awk -v n="$got" -v s="$start" -v e="$end" 'BEGIN { printf "pipeline: %d movements in %.1fs: %.0f webhooks/s through ingest, orders, inventory and the sink\n", n, e-s, n/(e-s) }'
kill $pid; wait $pid 2>/dev/null || true
