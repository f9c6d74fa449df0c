package middleware

import (
	"context"
	"time"

	"github.com/go-kit/kit/metrics"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/stream"
)

// Metrics are what WithMetrics records, in go-kit's metric interfaces so
// that the backend (Prometheus, or an in-memory one in tests) is the
// caller's choice.
type Metrics struct {
	// Records counts handled records by "topic" and "outcome" (ok,
	// transient, permanent).
	Records metrics.Counter
	// Duration observes each handling's seconds by "topic".
	Duration metrics.Histogram
}

// WithMetrics counts every record by outcome and times its handling.
func WithMetrics(m Metrics) Middleware {
	return func(next stream.Handler) stream.Handler {
		return stream.HandlerFunc(func(ctx context.Context, rec *kgo.Record) ([]*kgo.Record, error) {
			start := time.Now()
			outs, err := next.Handle(ctx, rec)
			outcome := "ok"
			if err != nil {
				outcome = stream.Class(err)
			}
			m.Records.With("topic", rec.Topic, "outcome", outcome).Add(1)
			m.Duration.With("topic", rec.Topic).Observe(time.Since(start).Seconds())
			return outs, err
		})
	}
}
