// Package inventory is the inventory stage: it consumes inventory deltas,
// applies each to the SKU's stock at most once through package stock, and
// emits one movement per delta saying what was applied or refused. A
// redelivered delta changes nothing and re-emits the movement it produced
// the first time, identical, so a retry or a replay is invisible downstream
// once movements are deduplicated by id.
package inventory

import (
	"context"
	"strconv"
	"strings"
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

// Processor is the stream.RunHandler of the inventory stage.
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

// HandleRuns applies a polled batch of delta records and returns one
// movement record per delta, in the order of the deltas. The whole batch is
// one stock.ApplyRuns: two Redis round trips however many SKUs it holds. A
// record that is not a valid delta is rejected, for the loop to
// dead-letter; a Redis failure fails the batch, which is applied again and
// deduplicated by delta id.
func (p *Processor) HandleRuns(ctx context.Context, runs [][]*kgo.Record) (stream.Result, error) {
	deltas, rejected := stream.Decode(runs, p.decode)
	res := stream.Result{Rejected: rejected}
	apply := make([]stock.Run, len(deltas))
	for i, dd := range deltas {
		d := dd.Value
		// One run per delta: ApplyRuns joins the runs of a SKU in this
		// order, the order of each partition (stream.Decode), so a record
		// keyed other than by its SKU still applies in its partition's order.
		sellable, reserved := effect(&d)
		apply[i] = stock.Run{SKU: d.SKU, Deltas: []stock.Delta{{ID: d.DeltaID, SKU: d.SKU, Quantity: sellable, Reserved: reserved, Reverses: d.Reverses,
			Position: strconv.Itoa(int(dd.Record.Partition)) + ":" + strconv.FormatInt(dd.Record.Offset, 10)}}}
	}
	if len(apply) == 0 {
		return res, nil
	}
	outcomes, err := p.store.ApplyRuns(ctx, apply, p.now())
	if err != nil {
		return stream.Result{}, err
	}
	for i, dd := range deltas {
		d, out := dd.Value, outcomes[i][0]
		if out.Passed {
			// Decided before the horizon: its movement was emitted then
			// and is in ClickHouse; what it was is no longer known here.
			continue
		}
		m := avro.InventoryMovement{
			MovementID: d.DeltaID, SKU: d.SKU, Kind: d.Kind, Status: out.Status, Quantity: d.Quantity,
			StockAfter: out.StockAfter, ReservedAfter: out.ReservedAfter, Reason: out.Reason, OrderID: d.OrderID, OccurredAt: d.OccurredAt,
			AppliedAt: out.AppliedAt, CorrelationID: d.CorrelationID, Provider: d.Provider, ReceivedAt: d.ReceivedAt,
		}
		r, err := envelope.Record(p.movements, &m, "")
		if err != nil {
			// The delta is applied; its movement cannot be written. It goes
			// to the DLQ with the reason, rather than stall the partition.
			res.Rejected = append(res.Rejected, stream.Rejection{Record: dd.Record, Err: err})
			continue
		}
		res.Outputs = append(res.Outputs, r)
	}
	return res, nil
}

// effect is what a delta does to the SKU's stock that can be sold and to
// the units reserved: a sale reserves what it sells; a commit ships it, so
// it leaves the reserve and the shop, and what can be sold stays; a release
// gives back what a sale reserved; a restock and an adjustment change what
// is on hand. A restock that reverses a sale was written before commits
// existed, when it was what a release is now, and is one.
func effect(d *avro.InventoryDelta) (sellable, reserved int64) {
	switch d.Kind {
	case avro.DeltaSale:
		return d.Quantity, -d.Quantity
	case avro.DeltaCommit:
		return 0, d.Quantity
	case avro.DeltaRelease:
		return d.Quantity, -d.Quantity
	case avro.DeltaRestock:
		if strings.HasSuffix(d.Reverses, ":sale") {
			return d.Quantity, -d.Quantity
		}
	}
	return d.Quantity, 0
}

// decode reads and checks one delta record.
func (p *Processor) decode(rec *kgo.Record) (avro.InventoryDelta, error) {
	var d avro.InventoryDelta
	if err := p.codec.Unmarshal(rec.Value, &d); err != nil {
		return d, err
	}
	return d, validate(&d)
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
	case avro.DeltaAdjustment:
	case avro.DeltaSale, avro.DeltaCommit:
		if d.Quantity > 0 {
			return stream.Permanentf("inventory: %s delta %q takes stock, but its quantity is %d", d.Kind, d.DeltaID, d.Quantity)
		}
	case avro.DeltaRelease, avro.DeltaRestock:
		if d.Quantity < 0 {
			return stream.Permanentf("inventory: %s delta %q gives stock back, but its quantity is %d", d.Kind, d.DeltaID, d.Quantity)
		}
	default:
		return stream.Permanentf("inventory: delta %q has kind %q", d.DeltaID, d.Kind)
	}
	return nil
}
