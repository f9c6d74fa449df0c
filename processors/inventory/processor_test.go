package inventory

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/stream"
	"github.com/shopstream/shopstream/internal/testenv"
	"github.com/shopstream/shopstream/schemas/avro"
	"github.com/shopstream/shopstream/stock"
)

func deltaRecord(t *testing.T, d avro.InventoryDelta) *kgo.Record {
	v, err := avro.Default().Marshal(&d)
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: "inventory.deltas", Key: []byte(d.SKU), Value: v}
}

func TestRedeliveryReemitsIdenticalMovement(t *testing.T) {
	rdb := testenv.Redis(t)
	p := NewProcessor(stock.NewStore(rdb, stock.StoreConfig{Prefix: testenv.Namespace(t)}), "inventory.movements")
	clock := time.UnixMilli(1700000000000)
	p.now = func() time.Time { clock = clock.Add(time.Second); return clock }
	ctx := context.Background()

	seed := deltaRecord(t, avro.InventoryDelta{DeltaID: "seed", SKU: "S", Kind: avro.DeltaAdjustment, Quantity: 1, OccurredAt: clock})
	sale := deltaRecord(t, avro.InventoryDelta{DeltaID: "o:1:sale", SKU: "S", Kind: avro.DeltaSale, Quantity: -1,
		OrderID: "o", OccurredAt: clock, CorrelationID: "c"})
	if _, err := p.Handle(ctx, seed); err != nil {
		t.Fatal(err)
	}
	first, err := p.Handle(ctx, sale)
	if err != nil {
		t.Fatal(err)
	}
	again, err := p.Handle(ctx, sale)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 1 || len(again) != 1 || !bytes.Equal(first[0].Value, again[0].Value) {
		t.Fatal("a redelivered delta must re-emit the identical movement")
	}
	var m avro.InventoryMovement
	if err := avro.Default().Unmarshal(first[0].Value, &m); err != nil {
		t.Fatal(err)
	}
	if m.Status != avro.MovementApplied || m.StockAfter != 0 || m.MovementID != "o:1:sale" || string(first[0].Key) != "S" {
		t.Fatalf("movement %+v", m)
	}
}

func TestBadDeltasArePermanent(t *testing.T) {
	p := NewProcessor(failingApplier{}, "m")
	for name, rec := range map[string]*kgo.Record{
		"not avro":      {Value: []byte(`{"sku":"S"}`)},
		"no id":         deltaRecord(t, avro.InventoryDelta{SKU: "S", Kind: avro.DeltaSale, Quantity: -1}),
		"brace in sku":  deltaRecord(t, avro.InventoryDelta{DeltaID: "d", SKU: "a{b}", Kind: avro.DeltaSale, Quantity: -1}),
		"zero quantity": deltaRecord(t, avro.InventoryDelta{DeltaID: "d", SKU: "S", Kind: avro.DeltaSale}),
		"unknown kind":  deltaRecord(t, avro.InventoryDelta{DeltaID: "d", SKU: "S", Kind: avro.DeltaUnknown, Quantity: 1}),
	} {
		if _, err := p.Handle(context.Background(), rec); !stream.IsPermanent(err) {
			t.Errorf("%s: err %v, want permanent", name, err)
		}
	}
}

type failingApplier struct{}

func (failingApplier) ApplyRuns(context.Context, []stock.Run, time.Time) ([][]stock.Outcome, error) {
	panic("a bad delta reached the store")
}
