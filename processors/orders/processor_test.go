package orders

import (
	"bytes"
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/stream"
	"github.com/shopstream/shopstream/internal/testenv"
	"github.com/shopstream/shopstream/schemas/avro"
)

func record(t *testing.T, e *avro.OrderEvent) *kgo.Record {
	v, err := avro.Default().Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: "orders", Key: []byte(e.OrderID), Value: v}
}

// The state is saved before the Kafka commit: an event delivered again after
// a crash in between must yield the same delta records, byte for byte.
func TestRedeliveredEventReemitsSameDeltas(t *testing.T) {
	p := NewProcessor(NewRedisStates(testenv.Redis(t), testenv.Namespace(t)), "inventory.deltas")
	ctx := context.Background()
	paid := record(t, ev("e2", avro.OrderPaid, 2))
	first, err := p.Handle(ctx, paid)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 2 || string(first[0].Key) != "A" || string(first[1].Key) != "B" {
		t.Fatalf("first delivery: %d records", len(first))
	}
	again, err := p.Handle(ctx, paid)
	if err != nil {
		t.Fatal(err)
	}
	for i := range first {
		if !bytes.Equal(first[i].Value, again[i].Value) {
			t.Fatalf("delta %d differs on redelivery", i)
		}
	}
	stale, err := p.Handle(ctx, record(t, ev("e1", avro.OrderCreated, 1)))
	if err != nil || len(stale) != 0 {
		t.Fatalf("a stale event emitted %d records, err %v", len(stale), err)
	}
}

func TestBadEventsArePermanent(t *testing.T) {
	p := NewProcessor(NewRedisStates(nil, ""), "d")
	bad := ev("e", avro.OrderPaid, 1)
	bad.Lines[0].Quantity = -1
	for name, rec := range map[string]*kgo.Record{
		"not avro":          {Value: []byte("garbage")},
		"negative quantity": record(t, bad),
	} {
		if _, err := p.Handle(context.Background(), rec); !stream.IsPermanent(err) {
			t.Errorf("%s: err %v, want permanent", name, err)
		}
	}
}
