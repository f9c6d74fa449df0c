package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/go-kit/kit/metrics"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/topology"
)

// BatchHandler writes a batch of records to a sink. A nil error means the
// batch's effect is durable, except for the rejected records, which failed
// permanently and go to their topic's DLQ. An error means nothing can be
// relied on and the whole batch is written again: the write must be
// idempotent (a replacing table keyed by a stable id, for example).
// HandleBatch is called for up to BatchConfig.InFlight batches at once,
// each holding records that follow the previous batch's, so it must be
// safe for concurrent use.
type BatchHandler interface {
	HandleBatch(ctx context.Context, recs []*kgo.Record) (rejected []Rejection, err error)
}

// Rejection is a record that cannot be written, and why.
type Rejection struct {
	Record *kgo.Record
	Err    error
}

// BatchConfig configures Batch.
type BatchConfig struct {
	Client ClientConfig
	// Group is the consumer group; required.
	Group string
	// Inputs are the topics consumed; required.
	Inputs []string
	// DLQ names the dead-letter topic of an input topic, or "" for an
	// input that is a DLQ itself (its rejections are logged and passed
	// over). Default topology.DLQ.
	DLQ func(topic string) string
	// MaxRecords bounds one batch: a batch this size is written at once.
	// Default 5000 (DefaultBatchMaxRecords).
	MaxRecords int
	// Linger is how long a batch's oldest record (counted from the poll
	// that brought it) waits for more records to join it before the batch
	// is written anyway. It trades latency for fewer, larger writes. Zero
	// writes whatever one poll returns, however few. At most MaxBatchLinger.
	// Default 0.
	Linger time.Duration
	// InFlight is how many full batches are written at once: after a
	// batch of MaxRecords the loop gathers and writes the next while that
	// one is still being written, and commits batches in the order it
	// polled them. A batch the linger closed is written alone. 1 writes
	// one batch at a time. Default 2 (DefaultBatchInFlight).
	InFlight int
	// Backoff between attempts at a failing batch. Default 100ms doubling to 5s.
	Backoff Backoff
	// Metrics, when set, count and time every attempt at a batch as the
	// transactional stages' middleware does. Default: none.
	Metrics BatchMetrics
}

// BatchMetrics are what Batch records: the shape of middleware.Metrics, so
// that the sink's figures go in the same families as the transactional
// stages' and a caller converts one into the other. A batch of several
// topics is timed once under each: a topic's latency is that of the
// batches that carried it.
type BatchMetrics struct {
	// Records counts records by "topic" and "outcome": ok, rejected, or
	// the class of the error that failed the attempt. A batch written
	// again is counted again.
	Records metrics.Counter
	// Duration observes each attempt's write, in seconds, by "topic".
	Duration metrics.Histogram
}

// DefaultBatchMaxRecords is BatchConfig.MaxRecords when none is set.
const DefaultBatchMaxRecords = 5000

// DefaultBatchInFlight is BatchConfig.InFlight when none is set. Under a
// backlog one batch at a time left the sink idle while ClickHouse took an
// INSERT and ClickHouse idle while the sink decoded the next batch, each
// about half of a batch's time (bench/sink, 20,000-row batches, 2 cores);
// with two in flight one's decoding overlaps the other's INSERT. More
// than two gains nothing on a sink whose two steps both wait on one host,
// and holds a batch more in memory.
const DefaultBatchInFlight = 2

// MaxBatchLinger bounds BatchConfig.Linger. A batch in hand holds up the
// group's rebalances (BlockRebalanceOnPoll), and the group drops a member
// that takes longer than its rebalance timeout (kgo's default: 60s) to
// rejoin; a linger of seconds leaves that time to the write and its retries.
const MaxBatchLinger = 10 * time.Second

func (c *BatchConfig) setDefaults() error {
	c.Client.setDefaults()
	if c.Group == "" || len(c.Inputs) == 0 {
		return errors.New("stream: Group and Inputs are required")
	}
	if c.DLQ == nil {
		c.DLQ = topology.DLQ
	}
	if c.MaxRecords == 0 {
		c.MaxRecords = DefaultBatchMaxRecords
	}
	if c.InFlight == 0 {
		c.InFlight = DefaultBatchInFlight
	}
	if c.InFlight < 0 {
		return fmt.Errorf("stream: %s: InFlight %d: want at least 1", c.Group, c.InFlight)
	}
	if c.MaxRecords < 0 || c.Linger < 0 || c.Linger > MaxBatchLinger {
		return fmt.Errorf("stream: %s: MaxRecords %d and Linger %v: want a positive size and a linger from 0 to %v",
			c.Group, c.MaxRecords, c.Linger, MaxBatchLinger)
	}
	if (c.Metrics.Records == nil) != (c.Metrics.Duration == nil) {
		return fmt.Errorf("stream: %s: Metrics needs both Records and Duration, or neither", c.Group)
	}
	c.Backoff.setDefaults()
	return nil
}

// options are the options of a Batch's client.
func (c *BatchConfig) options() []kgo.Opt {
	opts := c.Client.loopOptions(c.Group, c.Inputs...)
	// A batch is thousands of records, and the client fetches the next
	// while the handler writes this one: at the default 1 MiB a partition,
	// filling a 20,000-record batch took several fetch round trips, and the
	// sink went at 150k rows/s where 16 MiB gave it 180-200k (bench/sink,
	// 1,000,000 movements, 2026-12-01). 64 MiB bounds what is buffered.
	return append(opts, kgo.BlockRebalanceOnPoll(), kgo.FetchMaxPartitionBytes(16<<20), kgo.FetchMaxBytes(64<<20))
}

// Batch consumes cfg.Inputs in cfg.Group and hands batches to h: a batch
// is what the polls have brought when it reaches cfg.MaxRecords or when its
// oldest record has waited cfg.Linger, whichever comes first. Up to
// cfg.InFlight batches are written at once. It commits a batch's offsets
// only after h succeeded, its rejections are in the DLQ, and every batch
// polled before it is committed. A failing batch is retried, with backoff,
// until it succeeds or ctx is done; it is never skipped. Rebalances wait
// from a poll until the oldest batch in hand is committed; one may then
// move a partition whose later batch is still being written, which is
// written and committed all the same: its records are written again by
// the partition's new owner, which the handler's idempotence absorbs, and
// a commit only ever names records written with all before them. With
// cfg.Client.Instance set it is a static member of cfg.Group, and leaves
// the group when it stops (member.go). It returns nil when ctx is done.
func Batch(ctx context.Context, cfg BatchConfig, h BatchHandler) error {
	if err := cfg.setDefaults(); err != nil {
		return err
	}
	if cfg.Metrics.Records != nil {
		h = measured{h, cfg.Metrics}
	}
	log := cfg.Client.Logger.With("group", cfg.Group)
	cl, err := kgo.NewClient(cfg.options()...)
	if err != nil {
		return fmt.Errorf("stream: %s: %w", cfg.Group, err)
	}
	defer func() {
		memberID, _ := cl.GroupMetadata()
		// Close after a poll with BlockRebalanceOnPoll would wait forever
		// for the rebalance that leaving the group starts.
		cl.CloseAllowingRebalance()
		cfg.Client.leave(cfg.Group, memberID, log)
	}()
	batchLoop{cl: cl, cfg: cfg, h: h, log: log}.run(ctx)
	return nil
}

// batchClient is what the loop needs of a *kgo.Client, so that its order
// of writes and commits can be tested without a broker.
type batchClient interface {
	poller
	CommitRecords(ctx context.Context, rs ...*kgo.Record) error
	AllowRebalance()
	ProduceSync(ctx context.Context, rs ...*kgo.Record) kgo.ProduceResults
}

type batchLoop struct {
	cl  batchClient
	cfg BatchConfig
	h   BatchHandler
	log *slog.Logger
}

// flight is a batch being written. done is closed when it is written, or
// when ctx ended first (written is then false).
type flight struct {
	recs    []*kgo.Record
	done    chan struct{}
	written bool
}

// run is Batch's loop, until ctx is done. It returns after every batch it
// started has stopped; what was not committed by then is polled again by
// whoever consumes the partitions next.
func (l batchLoop) run(ctx context.Context) {
	var queue []*flight // oldest first
	defer func() {
		for _, f := range queue {
			<-f.done
		}
	}()
	for {
		var wake <-chan struct{}
		if len(queue) > 0 {
			wake = queue[0].done
		}
		recs, stop := gather(ctx, l.cl, l.cfg.MaxRecords, l.cfg.Linger, wake, l.log)
		if stop {
			return
		}
		// Only a full batch, the mark of a backlog, lets the next one be
		// gathered while it is written. One that the linger closed is
		// written alone: at 1,000 webhooks/s two batches inserted at once
		// made a row queryable later, not sooner.
		wait := 0
		if len(recs) > 0 {
			queue = append(queue, l.write(ctx, recs))
			switch {
			case len(recs) < l.cfg.MaxRecords:
				wait = len(queue)
			case len(queue) >= l.cfg.InFlight:
				wait = 1
			}
		}
		var ok bool
		if queue, ok = l.commit(ctx, queue, wait); !ok {
			return
		}
		if len(recs) == 0 {
			l.cl.AllowRebalance()
		}
	}
}

// commit commits the written batches at the head of queue, oldest first,
// and returns the rest. It waits for the oldest wait batches to be written,
// and for no other, so that the next batch can be gathered while they are.
// ok is false when ctx ended before a batch it waited for was written.
func (l batchLoop) commit(ctx context.Context, queue []*flight, wait int) (rest []*flight, ok bool) {
	for ; len(queue) > 0; wait-- {
		f := queue[0]
		if wait <= 0 {
			select {
			case <-f.done:
			default:
				return queue, true
			}
		}
		<-f.done
		if !f.written {
			return queue, false
		}
		queue = queue[1:]
		// A failed commit (the group moved on without us) is not retried:
		// whoever owns the partitions now writes the batch again, which
		// the handler's idempotence absorbs.
		if err := l.cl.CommitRecords(ctx, f.recs...); err != nil && ctx.Err() == nil {
			l.log.Warn("commit failed; the batch will be redelivered", "records", len(f.recs), "err", err)
		}
		l.cl.AllowRebalance()
	}
	return queue, true
}

// write starts writing recs, retrying with backoff until they are written
// or ctx is done.
func (l batchLoop) write(ctx context.Context, recs []*kgo.Record) *flight {
	f := &flight{recs: recs, done: make(chan struct{})}
	go func() {
		defer close(f.done)
		for attempt := 1; ; attempt++ {
			err := l.handleOnce(ctx, recs)
			if err == nil {
				f.written = true
				return
			}
			l.log.Warn("batch failed; retrying", "records", len(recs), "attempt", attempt, "err", err)
			if !l.cfg.Backoff.Sleep(ctx, attempt) {
				return
			}
		}
	}()
	return f
}

// poller is what gather needs of a *kgo.Client, so that its timing can be
// tested without a broker.
type poller interface {
	PollRecords(ctx context.Context, maxPollRecords int) kgo.Fetches
}

// gather polls until it holds max records or its first record has waited
// linger, and returns what it holds; nothing when a poll brought only
// errors, so that the caller can let a rebalance in, or when wake closed
// before any record came, so that the caller can commit the batch that
// woke it. Polls after the first record wait no longer than that record's
// deadline. stop reports that ctx is done or the client closed; what it
// holds then is left uncommitted, for whoever consumes the partitions next.
func gather(ctx context.Context, p poller, max int, linger time.Duration, wake <-chan struct{}, log *slog.Logger) (recs []*kgo.Record, stop bool) {
	var deadline time.Time
	for {
		var pollCtx context.Context
		var cancel context.CancelFunc
		if len(recs) > 0 {
			pollCtx, cancel = context.WithDeadline(ctx, deadline)
		} else {
			pollCtx, cancel = cancelOn(ctx, wake)
		}
		fetches := p.PollRecords(pollCtx, max-len(recs))
		cancel()
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return recs, true
		}
		fetches.EachError(func(topic string, p int32, err error) {
			// A poll cut short by the linger or by wake returns a fetch of
			// no topic that says so; nothing failed.
			if topic == "" && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)) {
				return
			}
			log.Warn("fetch failed", "topic", topic, "partition", p, "err", err)
		})
		got := fetches.Records()
		if len(recs) == 0 {
			if len(got) == 0 {
				return nil, false
			}
			deadline = time.Now().Add(linger)
		}
		recs = append(recs, got...)
		if len(recs) >= max || !time.Now().Before(deadline) {
			return recs, false
		}
	}
}

// cancelOn returns a context of ctx that is also cancelled when wake
// closes; a nil wake never closes.
func cancelOn(ctx context.Context, wake <-chan struct{}) (context.Context, context.CancelFunc) {
	c, cancel := context.WithCancel(ctx)
	if wake != nil {
		go func() {
			select {
			case <-wake:
				cancel()
			case <-c.Done():
			}
		}()
	}
	return c, cancel
}

func (l batchLoop) handleOnce(ctx context.Context, recs []*kgo.Record) error {
	rejected, err := l.h.HandleBatch(ctx, recs)
	if err != nil {
		return err
	}
	if len(rejected) == 0 {
		return nil
	}
	dead := deadLetters(rejected, l.cfg.DLQ, l.cfg.Client.Logger)
	if len(dead) == 0 {
		return nil
	}
	if err := l.cl.ProduceSync(ctx, dead...).FirstErr(); err != nil {
		return fmt.Errorf("dead-letter %d records: %w", len(dead), err)
	}
	return nil
}

// measured records each attempt of h in m.
type measured struct {
	h BatchHandler
	m BatchMetrics
}

func (w measured) HandleBatch(ctx context.Context, recs []*kgo.Record) ([]Rejection, error) {
	start := time.Now()
	rejected, err := w.h.HandleBatch(ctx, recs)
	seconds := time.Since(start).Seconds()
	handled, refused := map[string]int{}, map[string]int{}
	for _, r := range recs {
		handled[r.Topic]++
	}
	for _, r := range rejected {
		refused[r.Record.Topic]++
	}
	for topic, n := range handled {
		w.m.Duration.With("topic", topic).Observe(seconds)
		if err != nil {
			w.m.Records.With("topic", topic, "outcome", Class(err)).Add(float64(n))
			continue
		}
		w.m.Records.With("topic", topic, "outcome", "ok").Add(float64(n - refused[topic]))
		if refused[topic] > 0 {
			w.m.Records.With("topic", topic, "outcome", "rejected").Add(float64(refused[topic]))
		}
	}
	return rejected, err
}
