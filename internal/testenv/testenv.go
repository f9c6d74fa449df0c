// Package testenv finds the real Kafka, Redis and ClickHouse that integration
// tests run against (`make up` starts them), and gives each test its own
// namespace on them: a topic and group prefix, a Redis key prefix and a
// ClickHouse database.
//
// Addresses come from SHOPSTREAM_KAFKA_BROKERS, SHOPSTREAM_REDIS_ADDR and
// SHOPSTREAM_CLICKHOUSE_ADDR, with the local stack's loopback defaults. When
// a service does not answer, the test fails under CI=true or
// SHOPSTREAM_REQUIRE_STACK=1 (make test sets it) and is skipped otherwise,
// so a bare `go test ./...` on a laptop still runs the unit tests.
package testenv

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/topology"
)

// Brokers returns the Kafka seed brokers.
func Brokers() []string {
	return strings.Split(env("SHOPSTREAM_KAFKA_BROKERS", "127.0.0.1:9092"), ",")
}

// RedisAddr returns the Redis address.
func RedisAddr() string { return env("SHOPSTREAM_REDIS_ADDR", "127.0.0.1:6379") }

// ClickHouseAddr returns the ClickHouse native-protocol address.
func ClickHouseAddr() string { return env("SHOPSTREAM_CLICKHOUSE_ADDR", "127.0.0.1:9000") }

func env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// Required reports whether a missing service fails the test rather than
// skipping it.
func Required() bool {
	return os.Getenv("CI") == "true" || os.Getenv("SHOPSTREAM_REQUIRE_STACK") == "1"
}

func unavailable(t testing.TB, service string, err error) {
	t.Helper()
	msg := fmt.Sprintf("%s is not reachable (%v); start the stack with `make up`", service, err)
	if Required() {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

var seq atomic.Int64

// Namespace returns a name unique to this test run, usable as a topic
// prefix, Redis key prefix and (with Database) a ClickHouse database. The
// topics and Redis keys under it are deleted with the test: left behind,
// every run of the suite left the developer's broker thousands of topics
// more (at 4,400 it spent half a core on them) and their Redis hundreds of
// thousands of keys, and the benchmarks that share both slowed by half.
func Namespace(t testing.TB) string {
	ns := fmt.Sprintf("t%d%d_", time.Now().UnixNano()%1e9, seq.Add(1))
	t.Cleanup(func() {
		cl, err := kgo.NewClient(kgo.SeedBrokers(Brokers()...))
		if err != nil {
			return
		}
		defer cl.Close()
		adm := kadm.NewClient(cl)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		topics, err := adm.ListTopics(ctx)
		if err != nil {
			return
		}
		var mine []string
		for _, name := range topics.Names() {
			if strings.HasPrefix(name, ns) {
				mine = append(mine, name)
			}
		}
		if len(mine) > 0 {
			_, _ = adm.DeleteTopics(ctx, mine...)
		}
	})
	t.Cleanup(func() {
		rdb := redis.NewClient(&redis.Options{Addr: RedisAddr()})
		defer rdb.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		UnlinkPrefix(ctx, rdb, ns)
	})
	return ns
}

// UnlinkPrefix deletes every key under prefix, a scan page at a time: what
// a test or a benchmark leaves in the Redis it shares.
func UnlinkPrefix(ctx context.Context, rdb *redis.Client, prefix string) {
	iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		if keys = append(keys, iter.Val()); len(keys) == 1000 {
			rdb.Unlink(ctx, keys...)
			keys = keys[:0]
		}
	}
	if len(keys) > 0 {
		rdb.Unlink(ctx, keys...)
	}
}

// Kafka returns an admin client on the real broker, closed with the test.
func Kafka(t testing.TB) *kadm.Client {
	t.Helper()
	return KafkaAt(t, Brokers())
}

// KafkaAt returns an admin client on the brokers, closed with the test.
func KafkaAt(t testing.TB, brokers []string) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.Ping(ctx); err != nil {
		cl.Close()
		unavailable(t, "Kafka at "+strings.Join(brokers, ","), err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// Redis returns a client on the real Redis, closed with the test.
func Redis(t testing.TB) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: RedisAddr()})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		unavailable(t, "Redis at "+RedisAddr(), err)
	}
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// ClickHouse returns a connection to the real ClickHouse with a fresh
// database of its own, dropped with the test.
func ClickHouse(t testing.TB, database string) driver.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin, err := clickhouse.Open(&clickhouse.Options{Addr: []string{ClickHouseAddr()}, DialTimeout: 3 * time.Second})
	if err == nil {
		err = admin.Ping(ctx)
	}
	if err != nil {
		unavailable(t, "ClickHouse at "+ClickHouseAddr(), err)
	}
	if err := admin.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+database); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+database)
		admin.Close()
	})
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{ClickHouseAddr()},
		Auth: clickhouse.Auth{Database: database}, DialTimeout: 3 * time.Second, ReadTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// Eventually polls cond until it returns nil or timeout passes, then fails
// with cond's last error. It waits for asynchronous pipelines to settle; it
// asserts nothing about speed.
func Eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not settled after %v: %v", timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Topics creates shopstream's topics under prefix on the real broker, with
// the local broker's replication of 1, and returns their names.
func Topics(t testing.TB, prefix string) topology.Names {
	t.Helper()
	adm := Kafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topics := topology.Topics(topology.Options{Prefix: prefix, Partitions: 3, ReplicationFactor: 1})
	plan, err := topology.Plan(ctx, adm, topics)
	if err == nil {
		err = topology.Apply(ctx, adm, plan)
	}
	if err != nil {
		t.Fatal(err)
	}
	return topology.NamesFor(prefix)
}

// ReadTopic returns the committed records of topic, from the start, once
// want have arrived or after a few quiet seconds; it then waits a moment
// more so that a record beyond want, a duplicate, would be seen too.
func ReadTopic(t testing.TB, topic string, want int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(Brokers()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for ctx.Err() == nil && len(out) < want {
		out = append(out, cl.PollFetches(ctx).Records()...)
	}
	extra, cancelExtra := context.WithTimeout(context.Background(), time.Second)
	defer cancelExtra()
	return append(out, cl.PollFetches(extra).Records()...)
}
