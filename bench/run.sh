#!/usr/bin/env bash
# make bench: every figure beside its baseline, measured in the same run so
# that the ratio survives a noisy machine. Needs the stack (make up) and
# bin/shopstream (make build). Traffic goes to loopback only; every loop is
# bounded by -n and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${BENCH_WEBHOOKS:-20000}
# Each ingest run lasts seconds, not one: shorter ones moved by half between runs.
NI=${BENCH_INGEST_WEBHOOKS:-40000}
C=${BENCH_CONCURRENCY:-64}
redis_port=${SHOPSTREAM_REDIS_PORT:-6379}
# One local broker: topics replicate once.
export SHOPSTREAM_REPLICATION=${SHOPSTREAM_REPLICATION:-1}
ch_port=${SHOPSTREAM_CLICKHOUSE_PORT:-9000}
# What a run makes goes when its part is done, and when the run ends
# however it ends: left behind, hundreds of idle partitions slowed the
# broker for every later run, and Redis keys grew the AOF until a rewrite
# cut a later run short. pids are the servers this run started; made, the
# namespaces it made. drop deletes a namespace's Redis keys, its topics
# (with the broker's own tool from the local stack) and its ClickHouse
# database, if it has one. The trap takes itself off first; in a test of
# it, a server killed moments after its start still ran it a second time,
# which then found nothing to delete and said so.
pids=() made=()
drop() {
  redis-cli -p "$redis_port" --scan --pattern "$1*" | xargs -r -n 1000 redis-cli -p "$redis_port" unlink >/dev/null
  java -cp "${SHOPSTREAM_KAFKA_LIBS:-${SHOPSTREAM_STACK_DIR:-$PWD/.stack}/kafka/libs}/*" org.apache.kafka.tools.TopicCommand \
    --bootstrap-server "127.0.0.1:${SHOPSTREAM_KAFKA_PORT:-9092}" --delete --topic "$1.*" >"/tmp/${1}drop.log" 2>&1 ||
    echo "bench: the topics $1* were not deleted (/tmp/${1}drop.log)" >&2
  clickhouse-client --port "$ch_port" -q "DROP DATABASE IF EXISTS ${1%_}" ||
    echo "bench: the ClickHouse database ${1%_} was not dropped" >&2
  local left=()
  for m in "${made[@]}"; do [[ $m == "$1" ]] || left+=("$m"); done
  made=("${left[@]}")
}
stop() {
  kill "$@" 2>/dev/null || true
  wait "$@" 2>/dev/null || true
}
# unpin gives back the cores a part pinned the broker to (the overload part).
unpin() { :; }
# median prints the median of the numbers on its input.
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# fs_create prints what creating one empty file costs in a folder, in µs.
# The development machine's disk is ext4 without a journal, where creating
# a file skips every inode deleted in the last minutes, and ClickHouse
# creates a folder of files for every part it inserts or merges: the
# pipeline's figures move with this cost, so each is printed beside it. The
# probe deletes its own 200 files, few against a dropped database's
# thousands.
fs_create() {
  local d t0 t1
  d=$(mktemp -d "$1/.bench-fs.XXXXXX") || { echo n/a; return 0; }
  t0=$(date +%s%N)
  for i in $(seq 1 200); do : >"$d/$i"; done
  t1=$(date +%s%N)
  rm -rf "$d"
  echo $(((t1 - t0) / 200000))
}
fs_line() {
  local data=${SHOPSTREAM_STACK_DIR:-$PWD/.stack}/data/clickhouse
  if [[ -d $data ]]; then
    echo "filesystem: creating a file takes $(fs_create "$data") µs where ClickHouse keeps its parts ($(df --output=fstype "$data" | tail -1)), $(fs_create /dev/shm) µs on tmpfs"
  else
    echo "filesystem: $data is not there (a stack not from make up); not measured"
  fi
}
trap 'trap - EXIT; unpin; stop "${pids[@]}"; for m in "${made[@]}"; do drop "$m"; done' EXIT

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
# Three runs of each case, and their median: one run of the uniform
# case moved from 38,447 to 59,025 deltas/s between runs of this script
# within an hour, alone from 45,290 to 86,350.
for dist in uniform zipf hot; do
  figures=""
  for run in 1 2 3; do
    if line=$(bin/stages -stage inventory -dist "$dist" -n "${BENCH_DELTAS:-100000}" 2>"/tmp/stages_$dist.log"); then
      echo "run $run: $line"
      figures+=" $(sed -n 's/^inventory [a-z]*: \([0-9]*\) deltas\/s.*/\1/p' <<<"$line")"
    else
      cat "/tmp/stages_$dist.log"
    fi
  done
  if [[ -n ${figures// /} ]]; then
    echo "inventory $dist: $(median <<<"$figures") deltas/s (median of the runs:$figures)"
  fi
done

# Every provider's secret, so that ingest, naive and the load generator's
# -mix speak all four.
export SHOPSTREAM_WEBHOOK_SECRET="whsec_$(head -c 24 /dev/urandom | base64)"
export SHOPSTREAM_SHOPIFY_SECRET="$(head -c 24 /dev/urandom | base64)" SHOPSTREAM_WEBFLOW_SECRET="$(head -c 24 /dev/urandom | base64)"
export SHOPSTREAM_STRIPE_SECRET="whsec_$(head -c 24 /dev/urandom | base64)"
echo; echo "## ingest over loopback: bare handler (baseline), then shopstream ingest alone beside the naive one-write handler (bench/naive), in turn"
bin/shopstream loadgen -bare -n "$N" -c "$C"
go build -o bin/naive ./bench/naive
ns_ingest="bench_ingest_$(date +%s)_"
made+=("$ns_ingest")
SHOPSTREAM_PREFIX=$ns_ingest bin/shopstream topics apply >/dev/null
SHOPSTREAM_PREFIX=$ns_ingest SHOPSTREAM_LISTEN=127.0.0.1:18081 SHOPSTREAM_LOG_LEVEL=warn SHOPSTREAM_INSTANCE=bench-ingest \
  bin/shopstream ingest 2>"/tmp/${ns_ingest}ingest.log" &
ingest_pid=$!
bin/naive -listen 127.0.0.1:18082 -topic "${ns_ingest}webhooks.raw" 2>"/tmp/${ns_ingest}naive.log" &
naive_pid=$!
pids+=("$ingest_pid" "$naive_pid")
for _ in $(seq 1 100); do curl -sf http://127.0.0.1:18081/healthz >/dev/null && curl -s -o /dev/null http://127.0.0.1:18082/ && break; sleep 0.2; done
accepted() { sed -n 's/.* \([0-9]*\) accepted\/s.*/\1/p'; }
# sent reads the rate the client sent at from its summary line; sent_p99,
# from its line of refusals, their p99 from the send.
sent() { sed -n 's/.*: \([0-9]*\)\/s, [0-9]* accepted\/s.*/\1/p'; }
sent_p99() { sed -n 's/.* p99 \([^ ]*\) from the send.*/\1/p'; }
# answered reads how many webhooks a run sent from its summary line.
answered() { sed -n 's/.*: \([0-9]*\) webhooks, .*/\1/p' | head -1; }
# refusals reads how many of them were answered 503, from its line of
# refusals.
refusals() { sed -n 's/.*: \([0-9]*\) answered 503.*/\1/p'; }
# cpu_ticks sums the CPU time (user and system, in clock ticks) the
# processes have used so far.
ticks=$(getconf CLK_TCK)
cpu_ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$t"; }
# A warm-up of each, then naive and ingest in turn, pair by pair: the median
# of the pairs' ratios holds when this machine's speed drifts between runs.
bin/shopstream loadgen -url http://127.0.0.1:18082/webhooks/standardwebhooks -n "$NI" -c 32 >/dev/null
bin/shopstream loadgen -url http://127.0.0.1:18081/webhooks/standardwebhooks -n "$NI" -c 32 >/dev/null
peak=0
# Standard Webhooks alone, then all four providers in turn (-mix), each
# provider's webhooks verified by its own scheme in ingest and in naive.
for mix in "" "-mix"; do
 for c in 32 128; do
  ratios="" as="" bs=""
  for pair in $(seq 1 "${BENCH_PAIRS:-5}"); do
    naive_line=$(bin/shopstream loadgen $mix -url http://127.0.0.1:18082/webhooks/standardwebhooks -n "$NI" -c "$c")
    ingest_line=$(bin/shopstream loadgen $mix -url http://127.0.0.1:18081/webhooks/standardwebhooks -n "$NI" -c "$c")
    echo "$naive_line"; echo "$ingest_line"
    a=$(accepted <<<"$ingest_line"); b=$(accepted <<<"$naive_line")
    (( a > peak )) && peak=$a
    as="$as $a" bs="$bs $b" ratios="$ratios $(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", a/b }')"
  done
  awk -v a="$(median <<<"$as")" -v b="$(median <<<"$bs")" -v r="$(median <<<"$ratios")" -v c="$c" -v all="$ratios" -v m="${mix:+mix of four providers, }" \
    'BEGIN { printf "ingest %sc%d: %d accepted/s, naive %d/s, ratio %.2f (medians of the pairs; ratios:%s)\n", m, c, a, b, r, all }'
 done
done
# Open loop at a fixed 5,000/s for 5 s, latency from each webhook's intended
# send time; the bare handler in the same run is this client's own floor.
p99() { sed -n 's/.* p99 \([^ ]*\) .*/\1/p' | head -1; }
rate=${BENCH_RATE:-5000}
for target in bare naive ingest; do
  case $target in
    bare) line=$(bin/shopstream loadgen -bare -rate "$rate" -n $((rate * 5)) -c 512) ;;
    naive) line=$(bin/shopstream loadgen -url http://127.0.0.1:18082/webhooks/standardwebhooks -rate "$rate" -n $((rate * 5)) -c 512) ;;
    ingest) line=$(bin/shopstream loadgen -url http://127.0.0.1:18081/webhooks/standardwebhooks -rate "$rate" -n $((rate * 5)) -c 512) ;;
  esac
  echo "$line"
  echo "$target open loop at ${rate}/s: p99 $(p99 <<<"$line"), $(accepted <<<"$line") accepted/s"
done
# Overload: twice the peak just measured, open loop for 5 s. What ingest
# cannot take must be told 503 with Retry-After at once, while the rest is
# still accepted; its peak RSS (VmHWM) says memory stayed bounded.
over=$((2 * peak))
line=$(bin/shopstream loadgen -url http://127.0.0.1:18081/webhooks/standardwebhooks -rate "$over" -n $((over * 5)) -c 4096)
echo "$line"
refused=$(grep 'answered 503' <<<"$line" || true)
rss=$(awk '/VmHWM/ {print int($2/1024)}' "/proc/$ingest_pid/status")
awk -v g="$(accepted <<<"$line")" -v p="$peak" -v o="$over" -v sent="$(sent <<<"$line")" -v r="$rss" \
  -v p99i="$(sed -n 's/.* p99 \([^ ]*\) max .* from the intended.*/\1/p' <<<"$refused")" \
  -v p99s="$(sent_p99 <<<"$refused")" \
  -v n="$(refusals <<<"$refused")" \
  -v bare="$(sed -n 's/.*, \([0-9]*\) without Retry-After.*/\1/p' <<<"$refused")" \
  'BEGIN { printf "ingest overload at %d/s (2x peak %d/s; the client sent %d/s): goodput %d accepted/s (%.0f%% of peak), %d answered 503 (p99 %s from the send, %s from the intended time; %d without Retry-After), ingest peak RSS %d MB\n", o, p, sent, g, 100*g/p, n, p99s, p99i, bare, r }'
# The same, with the client kept off the cores of what it measures: the
# load generator on core 0, ingest and the broker on core 1, as with a
# client on another machine. Sharing both cores, the client takes more of
# them the more it sends, and an overload figure then says as much about
# the client as about ingest. The peak is remeasured under the same split.
kafka_pid=$(cat "${SHOPSTREAM_STACK_DIR:-$PWD/.stack}/pids/kafka.pid" 2>/dev/null || true)
if (( $(nproc) < 2 )) || ! command -v taskset >/dev/null || [[ -z $kafka_pid ]] || ! kill -0 "$kafka_pid" 2>/dev/null; then
  echo "bench: overload with the client on its own core skipped (needs two cores, taskset and the local stack's broker)" >&2
else
  kafka_cpus=$(taskset -c -p "$kafka_pid" | awk '{print $NF}')
  unpin() {
    taskset -a -c -p "$kafka_cpus" "$kafka_pid" >/dev/null ||
      echo "bench: the broker (pid $kafka_pid) may still be pinned to core 1; give it back: taskset -a -c -p $kafka_cpus $kafka_pid" >&2
  }
  if ! { taskset -a -c -p 1 "$kafka_pid" >/dev/null && taskset -a -c -p 1 "$ingest_pid" >/dev/null; }; then
    unpin
    echo "bench: could not pin the broker and ingest to core 1; overload with the client on its own core skipped" >&2
  else
    # What core 1 spends on an acceptance (ingest and the broker, CPU
    # time from /proc) is taken from the run that gave the peak.
    pinned_peak=0 peak_used=0
    for _ in 1 2 3; do
      t0=$(cpu_ticks "$ingest_pid" "$kafka_pid")
      a=$(taskset -c 0 bin/shopstream loadgen -url http://127.0.0.1:18081/webhooks/standardwebhooks -n "$NI" -c 128 | accepted)
      t1=$(cpu_ticks "$ingest_pid" "$kafka_pid")
      if (( ${a:-0} > pinned_peak )); then
        pinned_peak=$a peak_used=$((t1 - t0))
      fi
    done
    if (( pinned_peak == 0 )); then
      unpin
      echo "bench: no peak with the client on its own core; its overload skipped" >&2
    else
      over=$((2 * pinned_peak))
      t0=$(cpu_ticks "$ingest_pid" "$kafka_pid")
      line=$(taskset -c 0 bin/shopstream loadgen -url http://127.0.0.1:18081/webhooks/standardwebhooks -rate "$over" -n $((over * 5)) -c 4096)
      t1=$(cpu_ticks "$ingest_pid" "$kafka_pid")
      echo "$line"
      refused=$(grep 'answered 503' <<<"$line" || true)
      awk -v g="$(accepted <<<"$line")" -v p="$pinned_peak" -v o="$over" \
        -v sent="$(sent <<<"$line")" -v p99s="$(sent_p99 <<<"$refused")" \
        'BEGIN { printf "ingest overload, client on core 0, ingest and broker on core 1, at %d/s (2x that split'"'"'s peak %d/s; the client sent %d/s): goodput %d accepted/s (%.0f%% of peak), 503 p99 %s from the send\n", o, p, sent, g, 100*g/p, p99s }'
      # The floor of a refusal: a server that does nothing but refuse
      # (bench/naive -refuse) on core 1, at the same rate from the same
      # client. A refusal of ingest's costs what core 1 spent beyond its
      # acceptances, a refusal apiece; were it down to the floor's, core 1
      # could keep at most (its CPU - sent x floor) / (acceptance - floor)
      # a second. The refusal's figure is an upper bound: an acceptance
      # is costed at the peak, where batches are largest, and the CPU
      # counted includes the client's preparation, when both are idle.
      taskset -c 1 bin/naive -refuse -listen 127.0.0.1:18083 2>"/tmp/${ns_ingest}refuse.log" &
      refuse_pid=$!
      pids+=("$refuse_pid")
      for _ in $(seq 1 50); do curl -s -o /dev/null http://127.0.0.1:18083/ && break; sleep 0.1; done
      if ! kill -0 "$refuse_pid" 2>/dev/null; then
        unpin
        echo "bench: bench/naive -refuse did not start (/tmp/${ns_ingest}refuse.log); the overload floor is not measured" >&2
      else
        f0=$(cpu_ticks "$refuse_pid")
        floor_line=$(taskset -c 0 bin/shopstream loadgen -url http://127.0.0.1:18083/webhooks/standardwebhooks -rate "$over" -n $((over * 5)) -c 4096)
        f1=$(cpu_ticks "$refuse_pid")
        stop "$refuse_pid"
        unpin
        echo "$floor_line"
        awk -v ticks="$ticks" -v peak_used="$peak_used" -v ni="$NI" -v p="$pinned_peak" \
          -v used=$((t1 - t0)) -v all="$(answered <<<"$line")" -v g="$(accepted <<<"$line")" -v sent="$(sent <<<"$line")" \
          -v n="$(refusals <<<"$refused")" \
          -v fused=$((f1 - f0)) -v fn="$(refusals <<<"$floor_line")" \
          -v fp99="$(sent_p99 <<<"$(grep 'answered 503' <<<"$floor_line" || true)")" \
          'BEGIN {
             if (n == 0 || fn == 0 || sent == 0) { print "ingest overload floor: no refusals to measure"; exit }
             a_us = peak_used * 1e6 / ticks / ni; secs = all / sent
             cpu = used * 1e6 / ticks; r = (cpu - g * secs * a_us) / n; f = fused * 1e6 / ticks / fn
             keep = a_us > f ? (cpu / secs - sent * f) / (a_us - f) : 0; if (keep < 0) keep = 0
             printf "ingest overload floor, core 1: an acceptance cost %.1f µs of CPU (ingest and broker), a refusal %.1f µs; a server that only refuses (bench/naive -refuse) paid %.1f µs a refusal at the same rate (503 p99 %s from the send), which leaves room for at most %d accepted/s (%.0f%% of the peak)\n", a_us, r, f, fp99, keep, 100 * keep / p }'
      fi
    fi
  fi
fi
stop "$ingest_pid" "$naive_pid"
drop "$ns_ingest"

echo; echo "## the deliveries and orders stages alone, each from a filled input topic (bench/stages)"
bin/stages -stage deliveries -n "${BENCH_DELTAS:-100000}" 2>/tmp/stages_deliveries.log || cat /tmp/stages_deliveries.log
bin/stages -stage orders -dist uniform -n "${BENCH_DELTAS:-100000}" 2>/tmp/stages_orders.log || cat /tmp/stages_orders.log

echo; echo "## shopstream run: every stage in one process, loaded by the same client; then the whole pipeline"
ns="bench_$(date +%s)_"
made+=("$ns")
export SHOPSTREAM_PREFIX=$ns SHOPSTREAM_CLICKHOUSE_DB="${ns%_}" SHOPSTREAM_LISTEN=127.0.0.1:18080
export SHOPSTREAM_LOG_LEVEL=warn SHOPSTREAM_INSTANCE=bench
bin/shopstream topics apply >/dev/null
bin/shopstream migrate >/dev/null
bin/shopstream run 2>"/tmp/${ns}run.log" &
pid=$!
pids+=("$pid")
for _ in $(seq 1 100); do curl -sf http://127.0.0.1:18080/healthz >/dev/null && break; sleep 0.2; done
fs_line
start=$(date +%s.%N)
bin/shopstream loadgen -url http://127.0.0.1:18080/webhooks/standardwebhooks -n "$N" -c "$C"

for _ in $(seq 1 1200); do
  got=$(clickhouse-client --port "$ch_port" -q "SELECT count() FROM ${ns%_}.inventory_movements_final" 2>/dev/null || echo 0)
  [[ $got -ge $N ]] && break
  sleep 0.5
done
end=$(date +%s.%N)
awk -v n="$got" -v s="$start" -v e="$end" 'BEGIN { printf "pipeline: %.0f webhooks/s, from the first webhook until all %d movements were in ClickHouse (%.1fs)\n", n/(e-s), n, e-s }'
# Acknowledgement to a queryable row, at a fixed rate, on the same pipeline
# now idle (bench/latency).
go build -o bin/latency ./bench/latency
lat_rate=${BENCH_LATENCY_RATE:-1000}
fs_line
bin/latency -url http://127.0.0.1:18080/webhooks/standardwebhooks -rate "$lat_rate" -n $((lat_rate * 10)) 2>"/tmp/${ns}latency.log" || cat "/tmp/${ns}latency.log"
stop "$pid"
drop "$ns"

echo; echo "## the ClickHouse sink alone, beside a raw insert of the same rows from Go and ClickHouse's own Kafka engine on an equivalent topic (bench/sink)"
go build -o bin/sink ./bench/sink
bin/sink -n "${BENCH_SINK_ROWS:-1000000}" 2>/tmp/bench_sink.log || cat /tmp/bench_sink.log
