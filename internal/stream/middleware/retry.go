package middleware

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/stream"
)

// RetryConfig configures Retry.
type RetryConfig struct {
	// Attempts is how many times a batch is tried before its transient
	// error is returned. Default 3.
	Attempts int
	// Backoff between attempts. Default 20ms doubling to 200ms: short,
	// because the batch's transaction is open meanwhile.
	Backoff stream.Backoff
	// MaxElapsed bounds the time spent retrying. Default 2s: the broker
	// aborts a transaction that outlives its timeout (franz-go's default,
	// 40s), which costs a new session rather than a retried batch.
	MaxElapsed time.Duration
}

func (c *RetryConfig) setDefaults() {
	if c.Attempts == 0 {
		c.Attempts = 3
	}
	if c.Backoff.Min == 0 {
		c.Backoff.Min = 20 * time.Millisecond
	}
	if c.Backoff.Max == 0 {
		c.Backoff.Max = 200 * time.Millisecond
	}
	if c.MaxElapsed == 0 {
		c.MaxElapsed = 2 * time.Second
	}
}

// Retry handles a batch again, in place, when it fails transiently (a Redis
// failover, a connection reset), so that one blip does not abort
// the transaction and make the loop poll, begin and handle it all again.
// The last transient error is returned, and the loop then aborts the batch
// and retries it whole. Handlers are idempotent, so a retried call that had
// half succeeded is harmless.
func Retry(cfg RetryConfig) Middleware {
	cfg.setDefaults()
	return func(next stream.RunHandler) stream.RunHandler {
		return stream.RunHandlerFunc(func(ctx context.Context, runs [][]*kgo.Record) (stream.Result, error) {
			start := time.Now()
			for attempt := 1; ; attempt++ {
				res, err := next.HandleRuns(ctx, runs)
				if err == nil || stream.IsPermanent(err) || attempt >= cfg.Attempts || time.Since(start) >= cfg.MaxElapsed {
					return res, err
				}
				if !cfg.Backoff.Sleep(ctx, attempt) {
					return res, err
				}
			}
		})
	}
}
