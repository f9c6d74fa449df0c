package middleware

import (
	"context"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/stream"
)

// Logging logs a record that failed transiently with where it came from,
// at warn, and a record handled well at debug. A permanent failure is left
// to the loop, which logs it where it dead-letters it. It logs coordinates
// and the error, never the record's value, which may hold what a customer
// typed.
func Logging(log *slog.Logger) Middleware {
	return func(next stream.Handler) stream.Handler {
		return stream.HandlerFunc(func(ctx context.Context, rec *kgo.Record) ([]*kgo.Record, error) {
			outs, err := next.Handle(ctx, rec)
			attrs := []any{"topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset}
			switch {
			case err == nil:
				log.Debug("record handled", append(attrs, "outputs", len(outs))...)
			case !stream.IsPermanent(err):
				log.Warn("record failed; the batch will be retried", append(attrs, "class", stream.ClassTransient, "err", err)...)
			}
			return outs, err
		})
	}
}
