package orders

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/stream"
	"github.com/shopstream/shopstream/internal/stream/streamtest"
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

var topics = Topics{Deltas: "inventory.deltas", Applied: "orders.applied"}

// split parts a batch's outputs into its decisions and its deltas.
func split(t *testing.T, outs []*kgo.Record) (applied []avro.OrderApplied, deltas []*kgo.Record) {
	t.Helper()
	for _, r := range outs {
		switch r.Topic {
		case topics.Applied:
			var a avro.OrderApplied
			if err := avro.Default().Unmarshal(r.Value, &a); err != nil {
				t.Fatal(err)
			}
			applied = append(applied, a)
		case topics.Deltas:
			deltas = append(deltas, r)
		default:
			t.Fatalf("output to %s", r.Topic)
		}
	}
	return applied, deltas
}

// The state is saved before the Kafka commit: an event delivered again after
// a crash in between must yield the same delta records, byte for byte.
func TestRedeliveredEventReemitsSameDeltas(t *testing.T) {
	p := NewProcessor(NewRedisStates(testenv.Redis(t), testenv.Namespace(t), 0), topics)
	paid := record(t, ev("e2", avro.OrderPaid, 2))
	out, err := streamtest.HandleOne(p, paid)
	if err != nil {
		t.Fatal(err)
	}
	_, first := split(t, out)
	if len(first) != 2 || string(first[0].Key) != "A" || string(first[1].Key) != "B" {
		t.Fatalf("first delivery: %d records", len(first))
	}
	out, err = streamtest.HandleOne(p, paid)
	if err != nil {
		t.Fatal(err)
	}
	_, again := split(t, out)
	for i := range first {
		if !bytes.Equal(first[i].Value, again[i].Value) {
			t.Fatalf("delta %d differs on redelivery", i)
		}
	}
	out, err = streamtest.HandleOne(p, record(t, ev("e1", avro.OrderCreated, 1)))
	applied, stale := split(t, out)
	if err != nil || len(stale) != 0 || len(applied) != 1 || !applied[0].Stale || applied[0].StatusAfter != avro.OrderPaid ||
		applied[0].Transition != avro.TransitionNone {
		t.Fatalf("a stale event emitted %d deltas and %+v, err %v", len(stale), applied, err)
	}
}

func TestBadEventsArePermanent(t *testing.T) {
	p := NewProcessor(NewRedisStates(nil, "", 0), topics)
	bad := ev("e", avro.OrderPaid, 1)
	bad.Lines[0].Quantity = -1
	for name, rec := range map[string]*kgo.Record{
		"not avro":          {Value: []byte("garbage")},
		"negative quantity": record(t, bad),
	} {
		if _, err := streamtest.HandleOne(p, rec); !stream.IsPermanent(err) {
			t.Errorf("%s: err %v, want permanent", name, err)
		}
	}
}

// One batch holds two orders, one paid and then cancelled, the other with a
// stale event and a bad record between its events. States are read and
// written once for the batch; then the whole batch comes again, as after a
// crash between the state write and the Kafka commit, and must emit the
// same deltas, byte for byte.
func TestABatchAndItsRedeliveryEmitTheSameDeltas(t *testing.T) {
	p := NewProcessor(NewRedisStates(testenv.Redis(t), testenv.Namespace(t), 0), topics)
	other := func(id, typ string, v int64) *avro.OrderEvent {
		e := ev(id, typ, v)
		e.OrderID = "o2"
		return e
	}
	bad := &kgo.Record{Key: []byte("o2"), Value: []byte("junk")}
	runs := [][]*kgo.Record{
		{record(t, ev("e1", avro.OrderPaid, 1)), record(t, ev("e2", avro.OrderCancelled, 2))},
		{record(t, other("f2", avro.OrderPaid, 2)), bad, record(t, other("f1", avro.OrderCreated, 1))},
	}
	first, err := p.HandleRuns(context.Background(), runs)
	if err != nil {
		t.Fatal(err)
	}
	applied, deltas := split(t, first.Outputs)
	var decided []string
	for _, a := range applied {
		decided = append(decided, fmt.Sprintf("%s:%s:%s:%v", a.Event.EventID, a.StatusAfter, a.Transition, a.Stale))
	}
	// A replay meets each order in its final state; what it reports of each
	// event must still be what the event first met (checked below, byte for
	// byte).
	if got, want := strings.Join(decided, " "), "e1:PAID:SALE:false e2:CANCELLED:RELEASE:false f2:PAID:SALE:false f1:PAID:NONE:true"; got != want {
		t.Fatalf("decisions %s, want %s", got, want)
	}
	var ids []string
	for _, r := range deltas {
		var d avro.InventoryDelta
		if err := avro.Default().Unmarshal(r.Value, &d); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, d.DeltaID)
	}
	want := "o:1:sale o:2:sale o:1:restock o:2:restock o2:1:sale o2:2:sale"
	if got := strings.Join(ids, " "); got != want {
		t.Fatalf("deltas %s, want %s", got, want)
	}
	if len(first.Rejected) != 1 || first.Rejected[0].Record != bad {
		t.Fatalf("rejected %v", first.Rejected)
	}
	again, err := p.HandleRuns(context.Background(), runs)
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Outputs) != len(first.Outputs) {
		t.Fatalf("redelivery emitted %d records, the first delivery %d", len(again.Outputs), len(first.Outputs))
	}
	for i := range first.Outputs {
		if !bytes.Equal(first.Outputs[i].Value, again.Outputs[i].Value) {
			t.Fatalf("record %d (%s) differs on redelivery", i, first.Outputs[i].Topic)
		}
	}
}

// An order's state lives its TTL after its last event, not forever.
func TestStatesExpireAfterTheirTTL(t *testing.T) {
	rdb, ns := testenv.Redis(t), testenv.Namespace(t)
	states := NewRedisStates(rdb, ns, time.Hour)
	if err := states.SaveMany(context.Background(), map[string]State{"o-ttl": {Status: avro.OrderPaid}}); err != nil {
		t.Fatal(err)
	}
	if ttl := rdb.TTL(context.Background(), states.key("o-ttl")).Val(); ttl <= 59*time.Minute || ttl > time.Hour {
		t.Fatalf("ttl %v, want an hour", ttl)
	}
}
