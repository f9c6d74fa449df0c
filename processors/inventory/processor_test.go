package inventory

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/stream"
	"github.com/shopstream/shopstream/internal/stream/streamtest"
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

	seed := deltaRecord(t, avro.InventoryDelta{DeltaID: "seed", SKU: "S", Kind: avro.DeltaAdjustment, Quantity: 1, OccurredAt: clock})
	sale := deltaRecord(t, avro.InventoryDelta{DeltaID: "o:1:sale", SKU: "S", Kind: avro.DeltaSale, Quantity: -1,
		OrderID: "o", OccurredAt: clock, CorrelationID: "c"})
	sale.Offset = 1
	if _, err := streamtest.HandleOne(p, seed); err != nil {
		t.Fatal(err)
	}
	first, err := streamtest.HandleOne(p, sale)
	if err != nil {
		t.Fatal(err)
	}
	again, err := streamtest.HandleOne(p, sale)
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
		if _, err := streamtest.HandleOne(p, rec); !stream.IsPermanent(err) {
			t.Errorf("%s: err %v, want permanent", name, err)
		}
	}
}

type failingApplier struct{}

func (failingApplier) ApplyRuns(context.Context, []stock.Run, time.Time) ([][]stock.Outcome, error) {
	panic("a bad delta reached the store")
}

// A batch of several SKUs, with a bad record and a redelivery in it, is one
// apply: the good deltas land in order, one movement each, the bad one is
// rejected, and the redelivered delta re-emits its first movement.
func TestABatchIsOneApply(t *testing.T) {
	rdb := testenv.Redis(t)
	p := NewProcessor(stock.NewStore(rdb, stock.StoreConfig{Prefix: testenv.Namespace(t)}), "inventory.movements")
	at := time.UnixMilli(1700000000000).UTC()
	d := func(id, sku string, qty int64) *kgo.Record {
		kind := avro.DeltaSale
		if qty > 0 {
			kind = avro.DeltaAdjustment
		}
		return deltaRecord(t, avro.InventoryDelta{DeltaID: id, SKU: sku, Kind: kind, Quantity: qty, OccurredAt: at})
	}
	bad := &kgo.Record{Value: []byte("junk")}
	runs := [][]*kgo.Record{
		{d("seed-A", "A", 2), d("o1:1:sale", "A", -1), d("o1:1:sale", "A", -1), d("o2:1:sale", "A", -5)},
		{bad, d("o3:1:sale", "B", -1)},
	}
	res, err := p.HandleRuns(context.Background(), runs)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rejected) != 1 || res.Rejected[0].Record != bad {
		t.Fatalf("rejected %v, want the junk record", res.Rejected)
	}
	want := []struct {
		id, status string
		stock      int64
	}{{"seed-A", avro.MovementApplied, 2}, {"o1:1:sale", avro.MovementApplied, 1}, {"o1:1:sale", avro.MovementApplied, 1},
		{"o2:1:sale", avro.MovementRefused, 1}, {"o3:1:sale", avro.MovementRefused, 0}}
	if len(res.Outputs) != len(want) {
		t.Fatalf("%d movements, want %d", len(res.Outputs), len(want))
	}
	for i, w := range want {
		var m avro.InventoryMovement
		if err := avro.Default().Unmarshal(res.Outputs[i].Value, &m); err != nil {
			t.Fatal(err)
		}
		if m.MovementID != w.id || m.Status != w.status || m.StockAfter != w.stock {
			t.Errorf("movement %d: %s %s %d, want %+v", i, m.MovementID, m.Status, m.StockAfter, w)
		}
	}
	if !bytes.Equal(res.Outputs[1].Value, res.Outputs[2].Value) {
		t.Fatal("a delta repeated in a batch must re-emit its first movement")
	}
}

// The stage and a rebuild read the deltas in batches of one size: the
// setting when there is one, else the stage's own default, never the
// other stages' or no bound at all.
func TestBatchSize(t *testing.T) {
	for _, c := range []struct{ set, want int }{{0, DefaultMaxPollRecords}, {300, 300}} {
		cfg := Config{}
		cfg.Stream.MaxPollRecords = c.set
		if got := cfg.WithDefaults().Stream.MaxPollRecords; got != c.want {
			t.Errorf("MaxPollRecords %d: a batch of %d, want %d", c.set, got, c.want)
		}
	}
}
