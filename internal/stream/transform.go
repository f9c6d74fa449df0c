package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/conf"
)

// Middleware wraps a RunHandler; package middleware holds shopstream's.
// Dead-lettering is not middleware but the loop's own, so that no chain can
// leave it out and let a poison record stall its partition.
type Middleware func(RunHandler) RunHandler

// TransformConfig configures Transform.
type TransformConfig struct {
	Client ClientConfig
	// Group is the consumer group; required.
	Group string
	// Input is the topic consumed; required.
	Input string
	// DLQ is where permanently failing records go; required.
	DLQ string
	// TransactionalID must be unique among running instances and stable
	// across an instance's restarts, so that a restarted instance fences
	// the transaction a killed one left open instead of making read-committed
	// consumers wait for it to time out. Default Group + "-" + hostname.
	TransactionalID string
	// MaxPollRecords bounds one transaction. Default 2000
	// (DefaultMaxPollRecords).
	MaxPollRecords int
	// Backoff after an aborted transaction. Default 100ms doubling to 5s.
	Backoff Backoff
	// Middleware wraps the handler. Default none.
	Middleware Middleware
}

// DefaultMaxPollRecords is TransformConfig.MaxPollRecords when none is set.
// A batch costs one transaction and, for a RunHandler stage, a fixed number
// of Redis round trips whatever its size, so larger batches are cheaper per
// record until the transaction is held long. Measured with bench/stages on
// this project's 2-core machine (10,000 SKUs uniform): the orders stage gave
// 28k orders/s at 500 a batch and 46k at 2,000; the inventory stage 16-17k
// deltas/s at 500, 24-28k at 2,000 and 34k at 5,000, each transaction then
// open about 150 ms. 2,000 takes most of the orders stage's gain and keeps
// a batch's delay to tens of milliseconds. The inventory stage, whose Redis
// work is per SKU and gains more from larger batches, registers its own
// default (processors/inventory).
const DefaultMaxPollRecords = 2000

// RegisterFlags registers the batch size of stage, -<stage>-max-poll-records
// from SHOPSTREAM_<STAGE>_MAX_POLL_RECORDS, def when unset.
func (c *TransformConfig) RegisterFlags(fs *conf.FlagSet, stage string, def int) {
	fs.Int(&c.MaxPollRecords, stage+"-max-poll-records", def,
		"records in one transaction of the "+stage+" stage", "SHOPSTREAM_"+strings.ToUpper(stage)+"_MAX_POLL_RECORDS")
}

// Validate reports a setting that cannot work.
func (c *TransformConfig) Validate() error {
	if c.MaxPollRecords < 0 {
		return errors.New("stream: MaxPollRecords cannot be negative")
	}
	return nil
}

func (c *TransformConfig) setDefaults() error {
	if err := c.Validate(); err != nil {
		return err
	}
	c.Client.setDefaults()
	if c.Group == "" || c.Input == "" || c.DLQ == "" {
		return errors.New("stream: Group, Input and DLQ are required")
	}
	if c.TransactionalID == "" {
		host, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("stream: transactional id from hostname: %w", err)
		}
		c.TransactionalID = c.Group + "-" + host
	}
	if c.MaxPollRecords == 0 {
		c.MaxPollRecords = DefaultMaxPollRecords
	}
	c.Backoff.setDefaults()
	return nil
}

// options are the options of a Transform's session: a group consumer
// that produces transactionally.
func (c *TransformConfig) options() []kgo.Opt {
	return append(c.Client.loopOptions(c.Group, c.Input), kgo.TransactionalID(c.TransactionalID))
}

// Transform consumes cfg.Input in cfg.Group and hands each polled batch,
// as runs of one key each, to h (inside cfg.Middleware) in one call, then
// produces its outputs (and dead letters) in one Kafka
// transaction together with the batch's offsets (GroupTransactSession). A
// transient failure, or a rebalance, aborts the transaction; the session
// rewinds to the committed offsets and the batch is handled again after a
// backoff. A session that fails (its broker gone for longer than the
// client retries, a fenced transactional id) is closed and a new one is
// started after a backoff, so an outage stalls the stage rather than ending
// it. With cfg.Client.Instance set it is a static member of cfg.Group,
// and leaves the group when it stops (member.go). It returns nil when ctx
// is done, or an error for a configuration that cannot work.
func Transform(ctx context.Context, cfg TransformConfig, h RunHandler) error {
	if err := cfg.setDefaults(); err != nil {
		return err
	}
	if cfg.Middleware != nil {
		h = cfg.Middleware(h)
	}
	log := cfg.Client.Logger.With("group", cfg.Group, "topic", cfg.Input)
	opts := cfg.options()
	// Only the stop leaves the group: a failed session's successor rejoins
	// under the same instance id and takes its place over.
	var memberID string
	defer func() { cfg.Client.leave(cfg.Group, memberID, log) }()
	for attempt := 1; ; attempt++ {
		sess, err := kgo.NewGroupTransactSession(opts...)
		if err != nil {
			return fmt.Errorf("stream: %s: %w", cfg.Group, err)
		}
		// Fence the transaction a killed incarnation left open at once,
		// rather than at the first Begin: until it is aborted, the offsets
		// it would commit are unstable, the group's offset fetch
		// (RequireStableFetchOffsets) waits on them, nothing is polled and
		// nothing begins, and the broker aborts it only when it times out
		// (40s). A restarted static member is back in its group at once;
		// this makes it consume at once too.
		if _, _, err = sess.Client().ProducerID(ctx); err == nil {
			err = transformSession(ctx, cfg, h, sess, log)
		} else {
			err = fmt.Errorf("fence the previous transactional producer: %w", err)
		}
		memberID, _ = sess.Client().GroupMetadata()
		sess.CloseAllowingRebalance()
		if err == nil || ctx.Err() != nil {
			return nil
		}
		log.Error("transactional session failed; starting a new one", "attempt", attempt, "err", err)
		if !cfg.Backoff.Sleep(ctx, attempt) {
			return nil
		}
	}
}

// transformSession runs the loop on one session until ctx is done (nil) or
// the session fails.
func transformSession(ctx context.Context, cfg TransformConfig, h RunHandler, sess *kgo.GroupTransactSession, log *slog.Logger) error {
	failures := 0
	for {
		fetches := sess.PollRecords(ctx, cfg.MaxPollRecords)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return nil
		}
		fetches.EachError(func(topic string, p int32, err error) {
			log.Warn("fetch failed", "partition", p, "err", err)
		})
		if fetches.NumRecords() == 0 {
			continue
		}
		if err := sess.Begin(); err != nil {
			return fmt.Errorf("begin: %w", err)
		}
		promise := kgo.AbortingFirstErrPromise(sess.Client())
		res, handleErr := h.HandleRuns(ctx, runsOf(fetches))
		if handleErr == nil {
			for _, out := range res.Outputs {
				sess.Produce(ctx, out, promise.Promise())
			}
			for _, dead := range deadLetters(res.Rejected, func(string) string { return cfg.DLQ }, log) {
				sess.Produce(ctx, dead, promise.Promise())
			}
		}
		if IsPermanent(handleErr) {
			log.Error("a batch failed permanently as a whole; it is retried, and stalls its partitions until the handler rejects the record instead",
				"err", handleErr)
		}
		produceErr := promise.Err()
		// End must finish even when ctx is cancelled mid-batch, or the
		// transaction is left open until the broker times it out.
		endCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		committed, err := sess.End(endCtx, kgo.TransactionEndTry(handleErr == nil && produceErr == nil))
		cancel()
		if err != nil {
			return fmt.Errorf("end transaction: %w", err)
		}
		if committed {
			failures = 0
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
		failures++
		log.Warn("transaction aborted; retrying the batch", "attempt", failures,
			"handle_err", handleErr, "produce_err", produceErr)
		if !cfg.Backoff.Sleep(ctx, failures) {
			return nil
		}
	}
}
