package middleware

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/stream"
)

// RetryConfig configures Retry.
type RetryConfig struct {
	// Attempts is how many times a record is tried before its transient
	// error is returned. Default 3.
	Attempts int
	// Backoff between attempts. Default 20ms doubling to 200ms: short,
	// because the transaction of the whole batch waits.
	Backoff stream.Backoff
	// MaxElapsed bounds the time one record spends being retried. Default
	// 2s: the batch's transaction is open meanwhile, and the broker aborts
	// one that outlives its timeout (franz-go's default, 40s), which costs a
	// new session rather than a retried batch.
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

// Retry tries a record again, in place, when it fails transiently (a Redis
// failover, a lock held a moment too long), so that one blip does not abort
// a transaction of hundreds of records and make all of them be handled
// again. A permanent error is returned at once; so is the last transient
// one, and the loop then aborts the batch and retries it whole. Handlers
// are idempotent, so a retried call that had half succeeded is harmless.
func Retry(cfg RetryConfig) Middleware {
	cfg.setDefaults()
	return func(next stream.Handler) stream.Handler {
		return stream.HandlerFunc(func(ctx context.Context, rec *kgo.Record) ([]*kgo.Record, error) {
			start := time.Now()
			for attempt := 1; ; attempt++ {
				outs, err := next.Handle(ctx, rec)
				if err == nil || stream.IsPermanent(err) || attempt >= cfg.Attempts || time.Since(start) >= cfg.MaxElapsed {
					return outs, err
				}
				if !cfg.Backoff.Sleep(ctx, attempt) {
					return nil, err
				}
			}
		})
	}
}
