// Package inventory is the inventory stage: it consumes inventory deltas,
// applies each to the SKU's stock at most once through package stock, and
// emits one movement per delta saying what was applied or refused. A
// redelivered delta changes nothing and re-emits the movement it produced
// the first time, identical, so a retry or a replay is invisible downstream
// once movements are deduplicated by id.
package inventory

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/stream"
	"github.com/shopstream/shopstream/schemas/avro"
	"github.com/shopstream/shopstream/schemas/envelope"
	"github.com/shopstream/shopstream/stock"
)

// Applier is what the processor needs of a stock.Store.
type Applier interface {
	ApplyRuns(ctx context.Context, runs []stock.Run, now time.Time) ([][]stock.Outcome, error)
}

// Processor is the stream.Handler of the inventory stage.
type Processor struct {
	store     Applier
	codec     *avro.Registry
	movements string
	now       func() time.Time
}

// NewProcessor returns a Processor that applies deltas with store and
// produces movements to the movements topic.
func NewProcessor(store Applier, movements string) *Processor {
	return &Processor{store: store, codec: avro.Default(), movements: movements, now: time.Now}
}

// Handle applies one delta record and returns its movement record.
func (p *Processor) Handle(ctx context.Context, rec *kgo.Record) ([]*kgo.Record, error) {
	var d avro.InventoryDelta
	if err := p.codec.Unmarshal(rec.Value, &d); err != nil {
		return nil, stream.Permanent(err)
	}
	if err := validate(&d); err != nil {
		return nil, err
	}
	outs, err := p.store.ApplyRuns(ctx, []stock.Run{{SKU: d.SKU,
		Deltas: []stock.Delta{{ID: d.DeltaID, SKU: d.SKU, Quantity: d.Quantity, Reverses: d.Reverses}}}}, p.now())
	if err != nil {
		return nil, err
	}
	out := outs[0][0]
	m := avro.InventoryMovement{
		MovementID: d.DeltaID, SKU: d.SKU, Kind: d.Kind, Status: out.Status, Quantity: d.Quantity,
		StockAfter: out.StockAfter, Reason: out.Reason, OrderID: d.OrderID, OccurredAt: d.OccurredAt,
		AppliedAt: out.AppliedAt, CorrelationID: d.CorrelationID,
	}
	r, err := envelope.Record(p.movements, &m, "")
	if err != nil {
		return nil, stream.Permanent(err)
	}
	return []*kgo.Record{r}, nil
}

func validate(d *avro.InventoryDelta) error {
	if err := stock.ValidSKU(d.SKU); err != nil {
		return stream.Permanentf("inventory: delta %q: %w", d.DeltaID, err)
	}
	if d.DeltaID == "" {
		return stream.Permanentf("inventory: delta for %s has no id", d.SKU)
	}
	if d.Quantity == 0 {
		return stream.Permanentf("inventory: delta %q changes nothing", d.DeltaID)
	}
	switch d.Kind {
	case avro.DeltaSale, avro.DeltaRestock, avro.DeltaAdjustment:
	default:
		return stream.Permanentf("inventory: delta %q has kind %q", d.DeltaID, d.Kind)
	}
	return nil
}
