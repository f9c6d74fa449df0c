package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/stream"
	chsink "github.com/shopstream/shopstream/sinks/clickhouse"
	"github.com/shopstream/shopstream/topology"
)

// config is every subcommand's configuration: a flag for each setting, whose
// default comes from the environment variable named in its usage, else a
// loopback default that matches `make up`.
type config struct {
	brokers      string
	redisAddr    string
	chAddr       string
	chDB         string
	chCluster    string
	prefix       string
	listen       string
	secrets      string
	partitions   int
	replication  int
	instance     string
	tolerance    time.Duration
	maxBodyBytes int64
	logLevel     string

	log *slog.Logger
}

func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return def
}

func envInt(key string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(key)); err == nil {
		return v
	}
	return def
}

func envDuration(key string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(key)); err == nil {
		return v
	}
	return def
}

func (c *config) register(fs *flag.FlagSet) {
	host, _ := os.Hostname()
	fs.StringVar(&c.brokers, "brokers", envOr("SHOPSTREAM_KAFKA_BROKERS", "127.0.0.1:9092"), "Kafka seed brokers, comma-separated (SHOPSTREAM_KAFKA_BROKERS)")
	fs.StringVar(&c.redisAddr, "redis", envOr("SHOPSTREAM_REDIS_ADDR", "127.0.0.1:6379"), "Redis address (SHOPSTREAM_REDIS_ADDR)")
	fs.StringVar(&c.chAddr, "clickhouse", envOr("SHOPSTREAM_CLICKHOUSE_ADDR", "127.0.0.1:9000"), "ClickHouse native-protocol address (SHOPSTREAM_CLICKHOUSE_ADDR)")
	fs.StringVar(&c.chDB, "clickhouse-db", envOr("SHOPSTREAM_CLICKHOUSE_DB", "shopstream"), "ClickHouse database (SHOPSTREAM_CLICKHOUSE_DB)")
	fs.StringVar(&c.chCluster, "clickhouse-cluster", envOr("SHOPSTREAM_CLICKHOUSE_CLUSTER", ""), "ClickHouse cluster for ON CLUSTER and replicated tables; empty for one server (SHOPSTREAM_CLICKHOUSE_CLUSTER)")
	fs.StringVar(&c.prefix, "prefix", envOr("SHOPSTREAM_PREFIX", ""), "namespace for topics, consumer groups and Redis keys (SHOPSTREAM_PREFIX)")
	fs.StringVar(&c.listen, "listen", envOr("SHOPSTREAM_LISTEN", "127.0.0.1:8080"), "ingest HTTP address (SHOPSTREAM_LISTEN)")
	fs.StringVar(&c.secrets, "webhook-secret", envOr("SHOPSTREAM_WEBHOOK_SECRET", ""), "Standard Webhooks secrets whsec_..., comma-separated during a rotation (SHOPSTREAM_WEBHOOK_SECRET)")
	fs.IntVar(&c.partitions, "partitions", envInt("SHOPSTREAM_PARTITIONS", 6), "partitions of each data topic (SHOPSTREAM_PARTITIONS)")
	fs.IntVar(&c.replication, "replication", envInt("SHOPSTREAM_REPLICATION", 1), "replication factor of each topic; 3 in production (SHOPSTREAM_REPLICATION)")
	fs.StringVar(&c.instance, "instance", envOr("SHOPSTREAM_INSTANCE", host), "this instance's stable name, unique among running instances; names its Kafka transactional ids (SHOPSTREAM_INSTANCE)")
	fs.DurationVar(&c.tolerance, "signature-tolerance", envDuration("SHOPSTREAM_SIGNATURE_TOLERANCE", 5*time.Minute), "accepted age of a signed webhook timestamp (SHOPSTREAM_SIGNATURE_TOLERANCE)")
	fs.Int64Var(&c.maxBodyBytes, "max-body-bytes", int64(envInt("SHOPSTREAM_MAX_BODY_BYTES", 1<<20)), "largest webhook body accepted (SHOPSTREAM_MAX_BODY_BYTES)")
	fs.StringVar(&c.logLevel, "log-level", envOr("SHOPSTREAM_LOG_LEVEL", "info"), "debug, info, warn or error (SHOPSTREAM_LOG_LEVEL)")
}

func (c *config) setup() error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return fmt.Errorf("log level %q: %w", c.logLevel, err)
	}
	c.log = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(c.log)
	if c.partitions < 1 || c.replication < 1 {
		return fmt.Errorf("partitions and replication must be at least 1")
	}
	return nil
}

func (c *config) topics() topology.Names { return topology.NamesFor(c.prefix) }

func (c *config) group(stage string) string { return c.prefix + "shopstream-" + stage }

func (c *config) client() stream.ClientConfig {
	return stream.ClientConfig{Brokers: strings.Split(c.brokers, ","), ClientID: "shopstream-" + c.instance, Logger: c.log}
}

func (c *config) producer(timeout time.Duration) (*kgo.Client, error) {
	return kgo.NewClient(append(c.client().Options(), stream.ProducerOptions(timeout)...)...)
}

func (c *config) admin() (*kadm.Client, func(), error) {
	cl, err := kgo.NewClient(c.client().Options()...)
	if err != nil {
		return nil, nil, err
	}
	return kadm.NewClient(cl), cl.Close, nil
}

func (c *config) redis() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: c.redisAddr})
}

func (c *config) clickhouse(ctx context.Context) (driver.Conn, error) {
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:        []string{c.chAddr},
		DialTimeout: 5 * time.Second,
		ReadTimeout: 60 * time.Second,
	})
	if err != nil {
		return nil, err
	}
	if err := conn.Ping(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("clickhouse at %s: %w", c.chAddr, err)
	}
	return conn, nil
}

func (c *config) schema() chsink.SchemaConfig {
	return chsink.SchemaConfig{DB: c.chDB, Cluster: c.chCluster}
}

func (c *config) topologyOptions() topology.Options {
	return topology.Options{Prefix: c.prefix, Partitions: int32(c.partitions), ReplicationFactor: int16(c.replication)}
}
