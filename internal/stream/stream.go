// Package stream is shopstream's Kafka plumbing, written once for every stage:
// client options, the consume-handle-produce loop that commits its outputs
// and its input offsets in one Kafka transaction (Transform), the loop that
// commits offsets only after a batch's effect is durable (Batch), error
// classes, and the dead-letter record. What wraps a handler (dead-lettering,
// retry, metrics, logging) is in middleware/; what a record of a contract
// looks like is schemas/envelope's.
//
// Exactly-once effects are argued here and nowhere else: Kafka delivers at
// least once; a loop never moves past a record whose effect failed
// transiently, and every stage makes its own effect idempotent by an id that
// is stable across retries and replays.
package stream

import (
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ClientConfig is what every Kafka client of shopstream shares.
type ClientConfig struct {
	// Brokers to bootstrap from. Default 127.0.0.1:9092.
	Brokers []string
	// ClientID names the client in broker logs and quotas. Default "shopstream".
	ClientID string
	// Logger for the client's own warnings and errors. Default slog.Default().
	Logger *slog.Logger
	// Instance names this process among the running instances, stable
	// across its restarts (the transactional ids' SHOPSTREAM_INSTANCE).
	// When set, the consume loops join their group as a static member
	// (KIP-345) named InstanceID(group), and leave it when they stop; see
	// member.go. Default "": a dynamic member, as Kafka's own default.
	Instance string
}

func (c *ClientConfig) setDefaults() {
	if len(c.Brokers) == 0 {
		c.Brokers = []string{"127.0.0.1:9092"}
	}
	if c.ClientID == "" {
		c.ClientID = "shopstream"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// MetadataMinAge is the shortest time between two metadata requests of a
// client. franz-go retries a produce that failed with a retriable error only
// after a metadata refresh, and its default of 5s between refreshes made that
// retry wait up to 5s. With transactions (Kafka 4's transaction version 2), a
// stage's first produce of a transaction is answered
// CONCURRENT_TRANSACTIONS now and then while the broker still writes the
// previous transaction's markers: the stage then stood still for up to 5s
// with its transaction open, and every read_committed stage downstream of
// it with it. Running make bench's pipeline part alone before this, the
// last movement landed 5.2 to 7.9s after ingest took the last of 20,000
// webhooks in four runs of eight, and 0.7 to 0.8s after in the other
// four. 100ms is the Java client's retry.backoff.ms. The price: while a
// topic is missing or a partition has no leader, a client asks for
// metadata up to ten times a second instead of once in 5s (a broker that
// does not answer is still retried with franz-go's growing backoff).
const MetadataMinAge = 100 * time.Millisecond

// Options returns the kgo options of c.
func (c ClientConfig) Options() []kgo.Opt {
	c.setDefaults()
	return []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.ClientID(c.ClientID),
		kgo.WithLogger(slogLogger{c.Logger}),
		kgo.MetadataMinAge(MetadataMinAge),
	}
}

// Producer returns a client of c that produces with ProducerOptions(timeout).
func (c ClientConfig) Producer(timeout time.Duration) (*kgo.Client, error) {
	return kgo.NewClient(append(c.Options(), ProducerOptions(timeout)...)...)
}

// ProducerOptions are the options of a producer whose acknowledgement
// promises durability: acks from all in-sync replicas and the idempotent
// producer (franz-go's defaults, stated so a change to them cannot slip in),
// and a produce that gives up after timeout so a caller can answer in time.
//
// No linger. Every producer of shopstream either waits on each record
// (ingest answers a webhook only once its record is acknowledged, so a
// linger is added to every webhook's latency: franz-go's default of 10 ms,
// or the 1 ms this had, held ingest to a fifth of a ProduceSync handler's
// rate with one webhook in flight, 643/s against 3,087/s) or ends a
// transaction, which flushes whatever lingers. Batches still form under
// load: an idempotent producer keeps at most five produce requests in
// flight per broker, and records wait behind them. Batch size stays
// franz-go's default (1 MB per partition), larger than anything that
// accumulates behind five requests at this machine's rates.
func ProducerOptions(timeout time.Duration) []kgo.Opt {
	return []kgo.Opt{
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
		kgo.RecordDeliveryTimeout(timeout),
		kgo.ProduceRequestTimeout(timeout),
	}
}

// A fetch waits at the broker until FetchMinBytes are there to read, or
// FetchMaxWait has passed. A stage's poll is its transaction, and each
// transaction costs the broker the same whatever it carries (its offsets,
// its end, a marker on every partition it wrote): franz-go's default of one
// byte answered every fetch with the few records that had come in, and under
// a burst the stages ran many small transactions. With 64 KiB, in make
// bench's pipeline part three pairs in turn, the broker spent 75-82 µs of
// CPU a webhook against 83-119, shopstream run 125-140 against 149-175, and
// the pipeline took 4,584-4,930 webhooks/s against 3,929-4,757 (256 KiB
// was no better). Where traffic is light a record waits at most
// FetchMaxWait a stage: 50ms, against a 1s bar from acknowledgement to row
// over four stages and the sink; two pairs of bench/latency at 1,000/s
// moved within their noise (p99 745-1,005 ms against 1,018-1,108 ms).
// The price is paid when idle: every consumer asks the broker twenty times
// a second. shopstream run, idle for 30s, cost the broker 1.6-1.7s of CPU
// and itself 0.54-0.55s, against 0.6-0.8s and 0.04-0.05s before. A wait
// of 100ms cost 1.0-1.3s and 0.28-0.30s, and three pairs of the pipeline
// and two of bench/latency did not tell it from 50ms, which keeps a hop
// shorter when traffic is light.
const (
	FetchMinBytes = 64 << 10
	FetchMaxWait  = 50 * time.Millisecond
)

// ConsumerOptions are the options of every group consumer: read only
// committed transactional data, start a new group at the earliest offset,
// fetch in batches (FetchMinBytes), and never auto-commit: a loop commits
// after the effect.
func ConsumerOptions(group string, topics ...string) []kgo.Opt {
	return []kgo.Opt{
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topics...),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.RequireStableFetchOffsets(),
		kgo.FetchMinBytes(FetchMinBytes),
		kgo.FetchMaxWait(FetchMaxWait),
		kgo.DisableAutoCommit(),
	}
}

// loopOptions are what the clients of both loops (Transform and Batch)
// share: c's options, a group consumer's, the group's membership and a
// producer's whose writes give up after 30s.
func (c ClientConfig) loopOptions(group string, topics ...string) []kgo.Opt {
	opts := append(c.Options(), ConsumerOptions(group, topics...)...)
	opts = append(opts, c.membership(group)...)
	return append(opts, ProducerOptions(30*time.Second)...)
}

type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (s slogLogger) Log(level kgo.LogLevel, msg string, kv ...any) {
	switch level {
	case kgo.LogLevelError:
		s.l.Error("kafka: "+msg, kv...)
	case kgo.LogLevelWarn:
		s.l.Warn("kafka: "+msg, kv...)
	default:
		s.l.Info("kafka: "+msg, kv...)
	}
}
