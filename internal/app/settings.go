package app

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	kitprometheus "github.com/go-kit/kit/metrics/prometheus"

	"github.com/shopstream/shopstream/ingest"
	"github.com/shopstream/shopstream/internal/conf"
	"github.com/shopstream/shopstream/internal/stream"
	"github.com/shopstream/shopstream/internal/stream/middleware"
	"github.com/shopstream/shopstream/topology"
)

// settings are what every command shares: where Kafka and Redis are, the
// namespace, this instance's name, and logging. A stage's own settings are
// its package's Config.
type settings struct {
	brokers   []string
	redisAddr string
	prefix    string
	instance  string
	logLevel  string
	// pipelineMetricsEvery is the period of the pipeline metrics report.
	pipelineMetricsEvery time.Duration

	log      *slog.Logger
	registry *prometheus.Registry
	metrics  middleware.Metrics
	// ingestMetrics are the webhook receiver's, on the same registry.
	ingestMetrics ingest.Metrics
}

func (s *settings) registerFlags(fs *conf.FlagSet) {
	host, _ := os.Hostname()
	fs.Strings(&s.brokers, "brokers", []string{"127.0.0.1:9092"}, "Kafka seed brokers, comma-separated", "SHOPSTREAM_KAFKA_BROKERS")
	fs.String(&s.redisAddr, "redis", "127.0.0.1:6379", "Redis address", "SHOPSTREAM_REDIS_ADDR")
	fs.String(&s.prefix, "prefix", "", "namespace for topics, consumer groups and Redis keys", "SHOPSTREAM_PREFIX")
	fs.String(&s.instance, "instance", host, "this instance's stable name, unique among running instances; names its Kafka transactional ids and its static group memberships",
		"SHOPSTREAM_INSTANCE")
	fs.String(&s.logLevel, "log-level", "info", "debug, info, warn or error", "SHOPSTREAM_LOG_LEVEL")
	fs.Duration(&s.pipelineMetricsEvery, "pipeline-metrics-every", time.Minute,
		"period of the stages' records, errors, latency and lag reported to pipeline.metrics for ClickHouse; 0: none", "SHOPSTREAM_PIPELINE_METRICS_EVERY")
}

// setup checks the shared settings and builds the logger and metrics.
func (s *settings) setup(stderr io.Writer) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(s.logLevel)); err != nil {
		return fmt.Errorf("log level %q: %w", s.logLevel, err)
	}
	s.log = slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	// Libraries that log through the standard logger (net/http's server
	// among them) then log as JSON, filtered by level, like the rest.
	slog.SetDefault(s.log)
	s.registry = prometheus.NewRegistry()
	records := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "shopstream", Name: "records_total",
		Help: "Records handled by the transactional stages, by topic and outcome (ok, rejected, transient); a retried batch counts again."}, []string{"topic", "outcome"})
	seconds := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "shopstream", Name: "batch_handle_seconds",
		Help: "Time to handle one polled batch, by topic.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}, []string{"topic"})
	s.registry.MustRegister(records, seconds)
	s.metrics = middleware.Metrics{Records: kitprometheus.NewCounter(records), Duration: kitprometheus.NewHistogram(seconds)}
	s.ingestMetrics = ingest.NewMetrics(s.registry)
	return nil
}

func (s *settings) kafka() stream.ClientConfig {
	return stream.ClientConfig{Brokers: s.brokers, ClientID: "shopstream-" + s.instance, Logger: s.log, Instance: s.instance}
}

func (s *settings) redis() *redis.Client { return redis.NewClient(&redis.Options{Addr: s.redisAddr}) }

func (s *settings) topics() topology.Names { return topology.NamesFor(s.prefix) }

func (s *settings) group(stage string) string { return topology.Group(s.prefix, stage) }

// transform fills the loop of a transactional stage: its group, input and
// DLQ, a transactional id that a restarted instance reuses to fence its own
// unfinished transaction, and the middleware every such stage runs under.
func (s *settings) transform(c *stream.TransformConfig, stage, input string) error {
	if s.instance == "" {
		return errors.New("no instance name, which the transactional ids need: set SHOPSTREAM_INSTANCE")
	}
	c.Client = s.kafka()
	c.Group = s.group(stage)
	c.Input = input
	c.DLQ = topology.DLQ(input)
	c.TransactionalID = c.Group + "-" + s.instance
	c.Middleware = middleware.Stack(s.log, s.metrics, middleware.RetryConfig{})
	return nil
}
