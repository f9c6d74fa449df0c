package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/shopstream/shopstream/internal/conf"
	"github.com/shopstream/shopstream/internal/stream"
	"github.com/shopstream/shopstream/topology"
)

// DefaultAddr is ServerConfig.Addr when none is set.
const DefaultAddr = "127.0.0.1:9000"

// ServerConfig is where ClickHouse is and how the schema is deployed; the
// sink, migrate and the demo share it.
type ServerConfig struct {
	// Addr is the native-protocol address (never HTTP: 18.16 and current
	// releases agree on it). Default 127.0.0.1:9000 (DefaultAddr).
	Addr string
	// Schema is the database and the deployment shape.
	Schema SchemaConfig
}

// RegisterFlags registers -clickhouse, -clickhouse-db and -clickhouse-cluster.
func (c *ServerConfig) RegisterFlags(fs *conf.FlagSet) {
	fs.String(&c.Addr, "clickhouse", DefaultAddr, "ClickHouse native-protocol address", "SHOPSTREAM_CLICKHOUSE_ADDR")
	fs.String(&c.Schema.DB, "clickhouse-db", DefaultDB, "ClickHouse database", "SHOPSTREAM_CLICKHOUSE_DB")
	fs.String(&c.Schema.Cluster, "clickhouse-cluster", "", "ClickHouse cluster for ON CLUSTER and replicated tables; empty for one server",
		"SHOPSTREAM_CLICKHOUSE_CLUSTER")
}

func (c *ServerConfig) setDefaults() {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	c.Schema.setDefaults()
}

// Open connects once and checks that the server answers.
func (c ServerConfig) Open(ctx context.Context) (driver.Conn, error) {
	c.setDefaults()
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:        []string{c.Addr},
		DialTimeout: 5 * time.Second,
		ReadTimeout: 60 * time.Second,
		// The sink writes a batch's tables at once, on a connection each,
		// and two batches at once (stream.DefaultBatchInFlight): the
		// default 10 would make an INSERT wait for another's connection.
		MaxOpenConns: 32,
		MaxIdleConns: 16,
	})
	if err != nil {
		return nil, fmt.Errorf("clickhouse at %s: %w", c.Addr, err)
	}
	if err := conn.Ping(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("clickhouse at %s: %w", c.Addr, err)
	}
	return conn, nil
}

// Connect opens a connection, trying again with backoff until it succeeds
// or ctx is done (then it returns ctx's error). A sink whose ClickHouse is
// late or restarting waits for it: its topics hold what it has not written,
// and the stages beside it in the same process go on.
func (c ServerConfig) Connect(ctx context.Context, b stream.Backoff, log *slog.Logger) (driver.Conn, error) {
	for attempt := 1; ; attempt++ {
		conn, err := c.Open(ctx)
		if err == nil {
			return conn, nil
		}
		log.Warn("clickhouse not reachable; retrying", "addr", c.Addr, "attempt", attempt, "err", err)
		if !b.Sleep(ctx, attempt) {
			return nil, ctx.Err()
		}
	}
}

// Config is the sink stage's configuration.
type Config struct {
	Server ServerConfig
	// Stream is the batch loop: its client and group. Its inputs are the
	// topics routes.go names. Required.
	Stream stream.BatchConfig
	// Topics names the topics routed to tables. Required.
	Topics topology.Names
	// Logger. Default slog.Default().
	Logger *slog.Logger
}

// DefaultMaxRecords is the sink's batch: what bounds it under a backlog is
// ClickHouse's time per INSERT (about 60 of a 5,000-record batch's 80 ms
// here), so fewer, larger INSERTs go faster. bench/sink, 1,000,000
// movements on the 2-core development machine (2026-12-01): 5,000 gave
// 97-122k rows/s, once below ClickHouse's own Kafka engine (110k); 20,000
// gave 219k (2.6 times the engine, 0.66 of a raw batch INSERT); 50,000 no
// more (139k). At 1,000 webhooks/s a batch never fills, and the linger
// decides.
const DefaultMaxRecords = 20000

// DefaultLinger is how long the sink lets a batch's oldest record wait for
// more to join it, unless the batch fills first (-sink-linger). Why 100ms,
// from bench/latency at 1,000 webhooks/s on the 2-core development
// machine (2026-12-01, p50 / p99 from acknowledgement to row, then INSERTs
// a second): no linger 109-338 / 507-824 ms and 15-48 INSERTs/s, since
// every poll's handful of records was an INSERT and a part to merge; 50ms
// 96-146 / 321-447 ms, 13-15/s; 100ms 112-128 / 219-286 ms, 9/s; 200ms
// 161-286 / 295-559 ms, 4.5/s; 500ms and 1s add about the linger again.
// Under a backlog batches fill to MaxRecords and the linger plays no part.
const DefaultLinger = 100 * time.Millisecond

// RegisterFlags registers the stage's own settings.
func (c *Config) RegisterFlags(fs *conf.FlagSet) {
	c.Server.RegisterFlags(fs)
	fs.Int(&c.Stream.MaxRecords, "sink-max-records", DefaultMaxRecords, "records in one INSERT batch of the sink",
		"SHOPSTREAM_SINK_MAX_RECORDS")
	fs.Duration(&c.Stream.Linger, "sink-linger", DefaultLinger,
		"longest wait of a batch's oldest record before the sink inserts a batch that is not full; 0 inserts what each poll brings",
		"SHOPSTREAM_SINK_LINGER")
}

// Validate reports what is missing or cannot work.
func (c *Config) Validate() error {
	if c.Topics == (topology.Names{}) {
		return errors.New("clickhouse: Topics are required")
	}
	if c.Stream.MaxRecords < 0 {
		return errors.New("clickhouse: the batch size cannot be negative")
	}
	if c.Stream.Linger < 0 || c.Stream.Linger > stream.MaxBatchLinger {
		return fmt.Errorf("clickhouse: a linger of %v: want 0 to %v", c.Stream.Linger, stream.MaxBatchLinger)
	}
	return nil
}

// Run connects (with backoff) and runs the sink until ctx is done.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Server.setDefaults()
	conn, err := cfg.Server.Connect(ctx, cfg.Stream.Backoff, cfg.Logger)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer conn.Close()
	cfg.Stream.Inputs = Inputs(cfg.Topics)
	cfg.Stream.DLQ = func(topic string) string {
		if strings.HasSuffix(topic, topology.DLQ("")) {
			return ""
		}
		return topology.DLQ(topic)
	}
	return stream.Batch(ctx, cfg.Stream, newSink(conn, cfg.Server.Schema.DB, routes(cfg.Topics)))
}

// Inputs are the topics the sink consumes, sorted: those routes.go routes
// to a table.
func Inputs(t topology.Names) []string {
	var in []string
	for topic := range routes(t) {
		in = append(in, topic)
	}
	slices.Sort(in)
	return in
}
