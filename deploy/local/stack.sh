#!/usr/bin/env bash
# The local stack without Docker: a real Kafka broker (KRaft, jars from Maven
# Central), Debian's redis-server and clickhouse-server, all on loopback, with
# data, logs and pids under one folder ($SHOPSTREAM_STACK_DIR, default .stack).
#
#   stack.sh up [service...]    install what is missing, start what is not running, wait until each answers
#   stack.sh down [service...]  stop what up started, by pid
#   stack.sh status             one line per service
# Services are kafka, redis and clickhouse; all three when none is named.
#
# Ports: SHOPSTREAM_KAFKA_PORT (9092), SHOPSTREAM_KAFKA_CONTROLLER_PORT (9093),
# SHOPSTREAM_REDIS_PORT (6379), SHOPSTREAM_CLICKHOUSE_PORT (9000).
# SHOPSTREAM_KAFKA_LIBS names a folder of Kafka jars to use instead of
# resolving them into the stack folder (a test's second broker reuses them).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
stack=${SHOPSTREAM_STACK_DIR:-$repo/.stack}
kafka_port=${SHOPSTREAM_KAFKA_PORT:-9092}
controller_port=${SHOPSTREAM_KAFKA_CONTROLLER_PORT:-9093}
redis_port=${SHOPSTREAM_REDIS_PORT:-6379}
ch_port=${SHOPSTREAM_CLICKHOUSE_PORT:-9000}
kafka_heap=${SHOPSTREAM_KAFKA_HEAP:-1g}
wait_seconds=${SHOPSTREAM_STACK_WAIT:-90}
kafka_libs=${SHOPSTREAM_KAFKA_LIBS:-$stack/kafka/libs}

log() { printf 'stack: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

alive() { # pidfile
  # A killed process whose parent has not reaped it yet still answers
  # kill -0; its state in /proc says it is gone.
  local pid
  [[ -s $1 ]] || return 1
  pid=$(cat "$1")
  kill -0 "$pid" 2>/dev/null && [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]]
}

install_packages() {
  local missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v redis-cli >/dev/null || missing+=(redis-tools)
  command -v clickhouse-server >/dev/null || missing+=(clickhouse-server)
  command -v clickhouse-client >/dev/null || missing+=(clickhouse-client)
  command -v kcat >/dev/null || missing+=(kcat)
  command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null || missing+=(maven)
  ((${#missing[@]} == 0)) && return 0
  [[ $(id -u) == 0 ]] || die "missing ${missing[*]}; run as root or install them: apt-get install ${missing[*]}"
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >"$stack/logs/apt.log" 2>&1 || die "apt-get update failed, see $stack/logs/apt.log"
  # The packages try to start their system services; policy-rc.d may refuse,
  # which is fine: this script starts its own instances.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$stack/logs/apt.log" 2>&1 ||
    die "apt-get install ${missing[*]} failed, see $stack/logs/apt.log"
}

kafka_jars() {
  local libs=$kafka_libs stamp
  stamp=$(sha256sum "$here/pom.xml" | cut -c1-16)
  if [[ -f $libs/.complete && $(cat "$libs/.complete") == "$stamp" ]]; then return 0; fi
  log "resolving Kafka jars from Maven Central"
  rm -rf "$libs" && mkdir -p "$libs"
  mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$libs" -DincludeScope=runtime >"$stack/logs/maven.log" 2>&1 ||
    die "maven could not resolve the Kafka jars, see $stack/logs/maven.log"
  echo "$stamp" >"$libs/.complete"
}

java_args=(-Xms256m "-Xmx$kafka_heap" -XX:+UseG1GC -Djava.awt.headless=true
  "-Dlog4j2.configurationFile=$here/log4j2.properties" -cp "$kafka_libs/*")

start_kafka() {
  local pidf=$stack/pids/kafka.pid conf=$stack/conf/server.properties data=$stack/data/kafka
  alive "$pidf" && { log "kafka already running (pid $(cat "$pidf"))"; return 0; }
  kafka_jars
  mkdir -p "$data"
  sed -e "s|@KAFKA_PORT@|$kafka_port|g" -e "s|@CONTROLLER_PORT@|$controller_port|g" \
    -e "s|@DATA_DIR@|$data|g" "$here/server.properties.in" >"$conf"
  if [[ ! -f $data/meta.properties ]]; then
    local id
    id=$(java "${java_args[@]}" kafka.tools.StorageTool random-uuid | tail -n 1)
    java "${java_args[@]}" kafka.tools.StorageTool format -t "$id" -c "$conf" >>"$stack/logs/kafka.log" 2>&1 ||
      die "formatting the Kafka log dir failed, see $stack/logs/kafka.log"
  fi
  log "starting kafka on 127.0.0.1:$kafka_port"
  nohup java "${java_args[@]}" kafka.Kafka "$conf" >>"$stack/logs/kafka.log" 2>&1 </dev/null &
  echo $! >"$pidf"
}

start_redis() {
  local pidf=$stack/pids/redis.pid
  alive "$pidf" && { log "redis already running (pid $(cat "$pidf"))"; return 0; }
  mkdir -p "$stack/data/redis"
  log "starting redis on 127.0.0.1:$redis_port"
  # appendfsync always: an applied delta whose Kafka offset is committed must
  # survive a Redis crash, or a replay would be needed to restore it.
  redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$stack/data/redis" \
    --daemonize yes --pidfile "$pidf" --logfile "$stack/logs/redis.log" \
    --appendonly yes --appendfsync always --save '' --protected-mode yes
}

start_clickhouse() {
  local pidf=$stack/pids/clickhouse.pid data=$stack/data/clickhouse
  alive "$pidf" && { log "clickhouse already running (pid $(cat "$pidf"))"; return 0; }
  mkdir -p "$data"/{tmp,user_files,format_schemas}
  cp "$here/clickhouse-users.xml" "$stack/conf/clickhouse-users.xml"
  sed -e "s|@CLICKHOUSE_PORT@|$ch_port|g" -e "s|@DATA_DIR@|$data|g" -e "s|@LOG_DIR@|$stack/logs|g" \
    -e "s|@CONF_DIR@|$stack/conf|g" "$here/clickhouse-config.xml.in" >"$stack/conf/clickhouse.xml"
  log "starting clickhouse on 127.0.0.1:$ch_port"
  (cd "$data" && clickhouse-server --config-file="$stack/conf/clickhouse.xml" --pid-file="$pidf" --daemon) ||
    die "clickhouse-server did not start, see $stack/logs/clickhouse.err.log"
}

answers() { # service
  case $1 in
  kafka) kcat -L -b "127.0.0.1:$kafka_port" -m 2 >/dev/null 2>&1 ;;
  redis) [[ $(redis-cli -h 127.0.0.1 -p "$redis_port" ping 2>/dev/null) == PONG ]] ;;
  clickhouse) [[ $(clickhouse-client --host 127.0.0.1 --port "$ch_port" -q 'SELECT 1' 2>/dev/null) == 1 ]] ;;
  esac
}

wait_for() { # service logfile
  local deadline=$((SECONDS + wait_seconds))
  until answers "$1"; do
    if ((SECONDS > deadline)); then
      log "$1 did not answer within ${wait_seconds}s; last lines of $2:"
      tail -n 30 "$2" >&2 || true
      exit 1
    fi
    if ! alive "$stack/pids/$1.pid" && ((SECONDS > deadline - wait_seconds + 5)); then
      log "$1 exited; last lines of $2:"
      tail -n 30 "$2" >&2 || true
      exit 1
    fi
    sleep 0.5
  done
  log "$1 answers"
}

logfile() {
  case $1 in
  kafka) echo "$stack/logs/kafka.log" ;;
  redis) echo "$stack/logs/redis.log" ;;
  clickhouse) echo "$stack/logs/clickhouse.err.log" ;;
  esac
}

services() { # names given, checked, or all
  local s
  (($# == 0)) && set -- redis clickhouse kafka
  for s in "$@"; do
    case $s in kafka | redis | clickhouse) echo "$s" ;; *) die "unknown service $s" ;; esac
  done
}

# slow_files says when the stack's folder is on ext4 without a journal:
# there the kernel skips every inode deleted in the last minutes before it
# gives a new file one (recently_deleted in fs/ext4/ialloc.c), so creating
# a file slows to about a millisecond after many deletions, and ClickHouse
# creates about fifty files a part. It is what made this project's latency
# benchmark ten times slower in some hours (README, Performance).
slow_files() {
  local src
  src=$(findmnt -n -o SOURCE,FSTYPE --target "$stack" 2>/dev/null) || return 0
  [[ $src == *" ext4" ]] || return 0
  src=${src% *}
  [[ $(cat "/sys/fs/ext4/${src##*/}/journal_task" 2>/dev/null) == "<none>" ]] || return 0
  log "note: $stack is on ext4 without a journal, where creating files slows after deletions;" \
    "ClickHouse's inserts slow with it. SHOPSTREAM_STACK_DIR=/dev/shm/shopstream keeps the stack in memory."
}

up() {
  local s
  mkdir -p "$stack"/{pids,logs,conf,data}
  slow_files
  install_packages
  for s in $(services "$@"); do "start_$s"; done
  for s in $(services "$@"); do wait_for "$s" "$(logfile "$s")"; done
}

stop() { # service
  local pidf=$stack/pids/$1.pid pid
  alive "$pidf" || { rm -f "$pidf"; return 0; }
  pid=$(cat "$pidf")
  log "stopping $1 (pid $pid)"
  kill "$pid"
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -0 "$pid" 2>/dev/null && { log "$1 still running after 30s, killing"; kill -9 "$pid"; }
  rm -f "$pidf"
}

down() {
  local s
  for s in $(services "$@"); do stop "$s"; done
}

status() {
  local s
  for s in kafka redis clickhouse; do
    if alive "$stack/pids/$s.pid"; then
      if answers "$s"; then echo "$s: up (pid $(cat "$stack/pids/$s.pid"))"; else echo "$s: starting"; fi
    else echo "$s: down"; fi
  done
}

cmd=${1:-}
shift || true
case $cmd in
up) up "$@" ;;
down) down "$@" ;;
status) status ;;
*) die "usage: stack.sh up|down [kafka|redis|clickhouse...] | status" ;;
esac
