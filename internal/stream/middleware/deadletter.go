package middleware

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/stream"
)

// DeadLetter sends a record whose handling failed permanently to dlq, with
// the reason and origin in its headers, as the handler's only output: the
// loop produces it in the same transaction that commits the record's
// offset, so a poison record is moved aside exactly once and the partition
// goes on. Transient errors pass through, to be retried.
func DeadLetter(dlq string) Middleware {
	return func(next stream.Handler) stream.Handler {
		return stream.HandlerFunc(func(ctx context.Context, rec *kgo.Record) ([]*kgo.Record, error) {
			outs, err := next.Handle(ctx, rec)
			if err != nil && stream.IsPermanent(err) {
				return []*kgo.Record{stream.DeadLetter(rec, dlq, err, time.Now())}, nil
			}
			return outs, err
		})
	}
}
