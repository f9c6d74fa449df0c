// Package streamtest helps test a stream.RunHandler one record at a time,
// the way a per-record handler is tested.
package streamtest

import (
	"context"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/stream"
)

// HandleOne hands rec to h as a batch of one, as the loop would, and returns
// its outputs. A rejected record comes back as its error, marked Permanent;
// an error of the batch comes back as it is, so a test can tell the two
// apart (the loop retries the second).
func HandleOne(h stream.RunHandler, rec *kgo.Record) ([]*kgo.Record, error) {
	res, err := h.HandleRuns(context.Background(), [][]*kgo.Record{{rec}})
	if err != nil {
		return nil, err
	}
	if len(res.Rejected) > 0 {
		return nil, stream.Permanent(res.Rejected[0].Err)
	}
	return res.Outputs, nil
}
