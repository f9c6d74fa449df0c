package stream

import (
	"cmp"
	"context"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
)

// RunHandler handles a polled batch in one call, as runs: each run is the
// records of one partition and key, in offset order. Keys are the unit of
// ordering everywhere in shopstream (order id, SKU), so a handler may treat
// the runs in any order or all at once (one pipelined Redis round trip for
// the batch) as long as it keeps each run's order.
//
// A nil error means the outputs are produced, the rejected records go to
// the DLQ, and the batch's offsets commit, all in one transaction. An error
// aborts the batch, which is handled again: HandleRuns may see the same
// records again (after a retry, a rebalance, a crash or a replay), so its
// effects must be idempotent and its outputs the same each time.
type RunHandler interface {
	HandleRuns(ctx context.Context, runs [][]*kgo.Record) (Result, error)
}

// Result is what a batch produced.
type Result struct {
	Outputs []*kgo.Record
	// Rejected are records that can never be handled: the loop
	// dead-letters them with their reasons.
	Rejected []Rejection
}

// RunHandlerFunc adapts a function to RunHandler.
type RunHandlerFunc func(ctx context.Context, runs [][]*kgo.Record) (Result, error)

// HandleRuns calls f.
func (f RunHandlerFunc) HandleRuns(ctx context.Context, runs [][]*kgo.Record) (Result, error) {
	return f(ctx, runs)
}

// Decode decodes the records of runs with decode, in the order they were
// written to each partition: a key's records stay in order, and so do the
// records of one partition that are keyed by one thing (an order) and
// change another (a SKU). A record it cannot decode, or that fails
// decode's checks, is rejected with its error for the loop to dead-letter;
// the others come back decoded, with the record each came from.
func Decode[T any](runs [][]*kgo.Record, decode func(*kgo.Record) (T, error)) ([]Decoded[T], []Rejection) {
	var recs []*kgo.Record
	for _, run := range runs {
		recs = append(recs, run...)
	}
	slices.SortStableFunc(recs, func(a, b *kgo.Record) int {
		return cmp.Or(strings.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition), cmp.Compare(a.Offset, b.Offset))
	})
	var (
		out      []Decoded[T]
		rejected []Rejection
	)
	for _, rec := range recs {
		v, err := decode(rec)
		if err != nil {
			rejected = append(rejected, Rejection{Record: rec, Err: err})
			continue
		}
		out = append(out, Decoded[T]{Record: rec, Value: v})
	}
	return out, rejected
}

// Decoded is a record and what it decoded to.
type Decoded[T any] struct {
	Record *kgo.Record
	Value  T
}
