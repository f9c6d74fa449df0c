package stream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/topology"
)

// BatchHandler writes a batch of records to a sink. A nil error means the
// batch's effect is durable, except for the rejected records, which failed
// permanently and go to their topic's DLQ. An error means nothing can be
// relied on and the whole batch is written again: the write must be
// idempotent (a replacing table keyed by a stable id, for example).
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
	// DLQ names the dead-letter topic of an input topic. Default topology.DLQ.
	DLQ func(topic string) string
	// MaxRecords bounds one batch. Default 5000 (DefaultBatchMaxRecords).
	MaxRecords int
	// Backoff between attempts at a failing batch. Default 100ms doubling to 5s.
	Backoff Backoff
}

// DefaultBatchMaxRecords is BatchConfig.MaxRecords when none is set.
const DefaultBatchMaxRecords = 5000

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
	c.Backoff.setDefaults()
	return nil
}

// Batch consumes cfg.Inputs in cfg.Group and hands each polled batch to h,
// committing the batch's offsets only after h succeeded and its rejections
// are in the DLQ. A failing batch is retried, with backoff, until it
// succeeds or ctx is done; it is never skipped. Rebalances wait while a batch
// is in hand, so a batch is not written by two members at once in the
// ordinary case. It returns nil when ctx is done.
func Batch(ctx context.Context, cfg BatchConfig, h BatchHandler) error {
	if err := cfg.setDefaults(); err != nil {
		return err
	}
	log := cfg.Client.Logger.With("group", cfg.Group)
	opts := append(cfg.Client.Options(), ConsumerOptions(cfg.Group, cfg.Inputs...)...)
	opts = append(opts, ProducerOptions(30*time.Second)...)
	opts = append(opts, kgo.BlockRebalanceOnPoll())
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("stream: %s: %w", cfg.Group, err)
	}
	// Close after a poll with BlockRebalanceOnPoll would wait forever for
	// the rebalance that leaving the group starts.
	defer cl.CloseAllowingRebalance()

	for {
		fetches := cl.PollRecords(ctx, cfg.MaxRecords)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return nil
		}
		fetches.EachError(func(topic string, p int32, err error) {
			log.Warn("fetch failed", "topic", topic, "partition", p, "err", err)
		})
		recs := fetches.Records()
		if len(recs) == 0 {
			cl.AllowRebalance()
			continue
		}
		for attempt := 1; ; attempt++ {
			err := handleOnce(ctx, cl, cfg, h, recs)
			if err == nil {
				break
			}
			log.Warn("batch failed; retrying", "records", len(recs), "attempt", attempt, "err", err)
			if !cfg.Backoff.Sleep(ctx, attempt) {
				return nil
			}
		}
		// A failed commit (the group moved on without us) is not retried:
		// whoever owns the partitions now writes the batch again, which the
		// handler's idempotence absorbs.
		if err := cl.CommitRecords(ctx, recs...); err != nil && ctx.Err() == nil {
			log.Warn("commit failed; the batch will be redelivered", "records", len(recs), "err", err)
		}
		cl.AllowRebalance()
	}
}

func handleOnce(ctx context.Context, cl *kgo.Client, cfg BatchConfig, h BatchHandler, recs []*kgo.Record) error {
	rejected, err := h.HandleBatch(ctx, recs)
	if err != nil {
		return err
	}
	if len(rejected) == 0 {
		return nil
	}
	dead := deadLetters(rejected, cfg.DLQ, cfg.Client.Logger)
	if err := cl.ProduceSync(ctx, dead...).FirstErr(); err != nil {
		return fmt.Errorf("dead-letter %d records: %w", len(dead), err)
	}
	return nil
}
