package deliveries

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/stream"
	"github.com/shopstream/shopstream/internal/testenv"
	"github.com/shopstream/shopstream/schemas/avro"
	"github.com/shopstream/shopstream/schemas/envelope"
	"github.com/shopstream/shopstream/stock"
)

var (
	at     = time.UnixMilli(1_780_000_000_000).UTC()
	topics = Topics{Orders: "orders", Snapshots: "inventory.snapshots", Outcomes: "webhooks.outcomes"}
)

// noCatalog knows no item.
type noCatalog struct{}

func (noCatalog) SKUs(_ context.Context, items []stock.Item) ([]string, error) {
	return make([]string, len(items)), nil
}

// copyOf is a copy of delivery id at offset of partition 0 of webhooks.raw;
// order, when set, is the order event it carries.
func copyOf(t *testing.T, id, order string, offset int64) *kgo.Record {
	t.Helper()
	r := &avro.WebhookReceipt{DeliveryID: id, Provider: "standardwebhooks", ReceivedAt: at, Headers: map[string]string{}, Body: []byte("{}")}
	if order != "" {
		r.Event = &avro.OrderEvent{EventID: id, Provider: "standardwebhooks", Type: avro.OrderPaid, OrderID: order, Version: 1,
			OccurredAt: at, ReceivedAt: at, Lines: []avro.LineItem{{LineID: "1", SKU: "A", Quantity: 1}}}
	}
	rec, err := envelope.Record("webhooks.raw", r, "corr-"+id)
	if err != nil {
		t.Fatal(err)
	}
	rec.Offset = offset
	return rec
}

func orderIDs(t *testing.T, outs []*kgo.Record) []string {
	t.Helper()
	var ids []string
	for _, o := range forwarded(outs) {
		if o.Topic != "orders" {
			t.Fatalf("output to %s", o.Topic)
		}
		ids = append(ids, string(o.Key))
	}
	return ids
}

// forwarded are the outputs other than outcomes.
func forwarded(outs []*kgo.Record) []*kgo.Record {
	var fw []*kgo.Record
	for _, o := range outs {
		if o.Topic != topics.Outcomes {
			fw = append(fw, o)
		}
	}
	return fw
}

// outcomes are the outcomes among outs, as "<id> <outcome>".
func outcomes(t *testing.T, outs []*kgo.Record) []string {
	t.Helper()
	var got []string
	for _, o := range outs {
		if o.Topic != topics.Outcomes {
			continue
		}
		var w avro.WebhookOutcome
		if err := avro.Default().Unmarshal(o.Value, &w); err != nil {
			t.Fatal(err)
		}
		got = append(got, w.OutcomeID+" "+w.Outcome)
	}
	return got
}

func handle(t *testing.T, p *Processor, recs ...*kgo.Record) stream.Result {
	t.Helper()
	res, err := p.HandleRuns(context.Background(), [][]*kgo.Record{recs})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// On the real Redis: a delivery's copies are forwarded once, whichever
// batch they come in; the first copy is forwarded again, byte for byte,
// when it is handled again (an aborted transaction, a crash, a replay);
// the later copies never are.
func TestOnlyTheFirstCopyOfADeliveryIsForwarded(t *testing.T) {
	p := NewProcessor(NewRedisFirstSeen(testenv.Redis(t), testenv.Namespace(t), time.Hour), noCatalog{}, topics)
	first, retryInBatch, other := copyOf(t, "msg_1", "o-1", 10), copyOf(t, "msg_1", "o-1", 11), copyOf(t, "msg_2", "o-2", 12)
	receiptOnly := copyOf(t, "msg_3", "", 13)
	res := handle(t, p, first, retryInBatch, other, receiptOnly)
	if got := orderIDs(t, res.Outputs); len(got) != 2 || got[0] != "o-1" || got[1] != "o-2" {
		t.Fatalf("first batch forwarded %v, want [o-1 o-2]", got)
	}
	fw := forwarded(res.Outputs)
	if v, _ := envelope.Header(fw[0], envelope.HeaderCorrelationID); v != "corr-msg_1" {
		t.Fatalf("correlation id %q, want the receipt's", v)
	}
	if v, _ := envelope.Header(fw[0], envelope.HeaderEventType); v != "order.paid" {
		t.Fatalf("event type %q", v)
	}
	// Every copy is reported: the first under its delivery's id, a later
	// one under its position; a receipt-only kind under its delivery's id.
	if got, want := strings.Join(outcomes(t, res.Outputs), ", "),
		"standardwebhooks:msg_1 ACCEPTED, webhooks.raw/0/11 DUPLICATE, standardwebhooks:msg_2 ACCEPTED, standardwebhooks:msg_3 ACCEPTED"; got != want {
		t.Fatalf("outcomes %s, want %s", got, want)
	}

	// A later copy, in a later batch, is dropped.
	if res := handle(t, p, copyOf(t, "msg_1", "o-1", 40)); len(forwarded(res.Outputs)) != 0 {
		t.Fatalf("a later copy was forwarded: %v", orderIDs(t, res.Outputs))
	}
	// The whole first batch again, as after an abort or a replay from
	// earliest: the same outputs, the same bytes.
	again := handle(t, p, first, retryInBatch, other, receiptOnly)
	if len(again.Outputs) != len(res.Outputs) {
		t.Fatalf("the batch again forwarded %d, first time %d", len(again.Outputs), len(res.Outputs))
	}
	for i := range res.Outputs {
		if !bytes.Equal(res.Outputs[i].Value, again.Outputs[i].Value) {
			t.Fatalf("output %d differs when the batch is handled again", i)
		}
	}
	// The same delivery id from another provider is another delivery.
	otherProvider := copyOf(t, "msg_1", "o-9", 41)
	var r avro.WebhookReceipt
	if err := avro.Default().Unmarshal(otherProvider.Value, &r); err != nil {
		t.Fatal(err)
	}
	r.Provider, r.Event.Provider = "shopify", "shopify"
	otherProvider, _ = envelope.Record("webhooks.raw", &r, "")
	otherProvider.Offset = 41
	if res := handle(t, p, otherProvider); len(forwarded(res.Outputs)) != 1 {
		t.Fatalf("another provider's msg_1 forwarded %d", len(forwarded(res.Outputs)))
	}
}

type failingSeen struct{}

func (failingSeen) Record(context.Context, []Sighting) ([]bool, error) {
	return nil, errors.New("redis gone")
}

// Redis unavailable fails the batch as a transient error, to be retried
// whole: nothing is forwarded on a guess.
func TestAFirstSeenOutageFailsTheBatch(t *testing.T) {
	p := NewProcessor(failingSeen{}, noCatalog{}, topics)
	res, err := p.HandleRuns(context.Background(), [][]*kgo.Record{{copyOf(t, "msg_1", "o-1", 1)}})
	if err == nil || stream.IsPermanent(err) || len(res.Outputs) != 0 {
		t.Fatalf("got %d outputs, err %v; want a transient error and nothing", len(res.Outputs), err)
	}
}

type recordingSeen struct{ got []Sighting }

func (s *recordingSeen) Record(_ context.Context, sightings []Sighting) ([]bool, error) {
	s.got = append(s.got, sightings...)
	first := make([]bool, len(sightings))
	for i := range first {
		first[i] = true
	}
	return first, nil
}

// A record that is not a receipt, or lacks what identifies its delivery, is
// rejected and marks nothing as seen; the rest of its batch goes on.
func TestBadReceiptsAreRejectedAndRecordNothing(t *testing.T) {
	noID := copyOf(t, "", "o-1", 2)
	seen := &recordingSeen{}
	p := NewProcessor(seen, noCatalog{}, topics)
	tests := []struct {
		name string
		rec  *kgo.Record
	}{
		{"not avro", &kgo.Record{Topic: "webhooks.raw", Value: []byte("garbage"), Offset: 1}},
		{"no delivery id", noID},
		{"another contract", func() *kgo.Record {
			r, _ := envelope.Record("webhooks.raw", &avro.InventoryDelta{DeltaID: "d", SKU: "A", Kind: avro.DeltaSale, OccurredAt: at}, "")
			return r
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen.got = nil
			res := handle(t, p, tt.rec, copyOf(t, "msg_ok", "o-ok", 99))
			if len(res.Rejected) != 1 || res.Rejected[0].Record != tt.rec {
				t.Fatalf("%d rejected, want the bad record", len(res.Rejected))
			}
			if len(seen.got) != 1 || seen.got[0].Key != "standardwebhooks:msg_ok" {
				t.Fatalf("recorded %+v, want only the good one", seen.got)
			}
			if got := orderIDs(t, res.Outputs); len(got) != 1 || got[0] != "o-ok" {
				t.Fatalf("forwarded %v", got)
			}
		})
	}
}

// A receipt of a schema this binary does not know is an acknowledged
// webhook that a newer release wrote: the batch fails, to be retried once
// the stage is upgraded, and nothing is dead-lettered or recorded.
func TestAReceiptOfAnUnknownSchemaStallsTheBatch(t *testing.T) {
	good := copyOf(t, "msg_ok", "o-ok", 1)
	unknown := copyOf(t, "msg_new", "o-new", 2)
	unknown.Value = append([]byte{0xC3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8}, unknown.Value[10:]...)
	seen := &recordingSeen{}
	res, err := NewProcessor(seen, noCatalog{}, topics).HandleRuns(context.Background(), [][]*kgo.Record{{good, unknown}})
	if err == nil || stream.IsPermanent(err) || !errors.Is(err, avro.ErrUnknownSchema) {
		t.Fatalf("err %v, want a transient error wrapping ErrUnknownSchema", err)
	}
	if len(res.Outputs) != 0 || len(res.Rejected) != 0 || len(seen.got) != 0 {
		t.Fatalf("%d outputs, %d rejected, %d recorded; want nothing", len(res.Outputs), len(res.Rejected), len(seen.got))
	}
}

// A receipt that carries no order event decides nothing: no Redis key, and
// nothing forwarded but its outcome.
func TestAReceiptWithoutAnEventRecordsNothing(t *testing.T) {
	seen := &recordingSeen{}
	res := handle(t, NewProcessor(seen, noCatalog{}, topics), copyOf(t, "msg_customer", "", 1))
	if len(forwarded(res.Outputs)) != 0 || len(res.Rejected) != 0 || len(seen.got) != 0 ||
		strings.Join(outcomes(t, res.Outputs), "") != "standardwebhooks:msg_customer ACCEPTED" {
		t.Fatalf("%d outputs, %d rejected, %d recorded; want only the outcome", len(res.Outputs), len(res.Rejected), len(seen.got))
	}
}

// snapshotOf is a copy of an inventory webhook of source's item at offset.
func snapshotOf(t *testing.T, id, source, item string, available, offset int64) *kgo.Record {
	t.Helper()
	r := &avro.WebhookReceipt{DeliveryID: id, Provider: source, ReceivedAt: at, Headers: map[string]string{}, Body: []byte("{}"),
		Stock: &avro.StockSnapshot{SnapshotID: id, Source: source, ItemID: item, Available: available, ObservedAt: at, ReceivedAt: at}}
	rec, err := envelope.Record("webhooks.raw", r, "corr-"+id)
	if err != nil {
		t.Fatal(err)
	}
	rec.Offset = offset
	return rec
}

// On the real Redis: a stock snapshot is named by the SKU the catalog
// gives its item and forwarded once, keyed by that SKU; one whose item the
// catalog does not know is dead-lettered, saying how to mend it, and marks
// nothing as seen, so that its redrive after the item is loaded goes
// through.
func TestSnapshotsAreNamedBySKUAndForwardedOnce(t *testing.T) {
	rdb, ns := testenv.Redis(t), testenv.Namespace(t)
	ctx := context.Background()
	catalog := stock.NewCatalog(rdb, ns)
	if err := catalog.Put(ctx, []stock.Item{{Source: "shopify", ItemID: "271878346596884015", SKU: "SKU-A"}}); err != nil {
		t.Fatal(err)
	}
	p := NewProcessor(NewRedisFirstSeen(rdb, ns, time.Hour), catalog, topics)

	known, retry := snapshotOf(t, "wh-1", "shopify", "271878346596884015", 6, 1), snapshotOf(t, "wh-1", "shopify", "271878346596884015", 6, 2)
	unknown := snapshotOf(t, "wh-2", "webflow", "5bfedb42", 100, 3)
	res := handle(t, p, known, retry, unknown, copyOf(t, "msg_1", "o-1", 4))
	res.Outputs = forwarded(res.Outputs)
	if len(res.Outputs) != 2 || res.Outputs[0].Topic != topics.Snapshots || string(res.Outputs[0].Key) != "SKU-A" || res.Outputs[1].Topic != "orders" {
		t.Fatalf("outputs %+v", res.Outputs)
	}
	var s avro.StockSnapshot
	if err := avro.Default().Unmarshal(res.Outputs[0].Value, &s); err != nil || s.SKU != "SKU-A" || s.Available != 6 || s.SnapshotID != "wh-1" {
		t.Fatalf("snapshot %+v, %v", s, err)
	}
	if v, _ := envelope.Header(res.Outputs[0], envelope.HeaderEventType); v != envelope.StockSnapshot {
		t.Fatalf("event type %q", v)
	}
	if len(res.Rejected) != 1 || res.Rejected[0].Record != unknown || !stream.IsPermanent(res.Rejected[0].Err) ||
		!strings.Contains(res.Rejected[0].Err.Error(), "no SKU for webflow item 5bfedb42") {
		t.Fatalf("rejected %+v", res.Rejected)
	}

	// The merchant loads the item, and the DLQ's copy is redriven: a copy
	// at another position, forwarded as the first.
	if err := catalog.Put(ctx, []stock.Item{{Source: "webflow", ItemID: "5bfedb42", SKU: "SKU-B"}}); err != nil {
		t.Fatal(err)
	}
	redriven := snapshotOf(t, "wh-2", "webflow", "5bfedb42", 100, 0)
	redriven.Topic = "webhooks.raw.dlq"
	if res := handle(t, p, redriven); len(forwarded(res.Outputs)) != 1 || string(forwarded(res.Outputs)[0].Key) != "SKU-B" {
		t.Fatalf("the redriven snapshot forwarded %+v", res.Outputs)
	}
}

type failingCatalog struct{}

func (failingCatalog) SKUs(context.Context, []stock.Item) ([]string, error) {
	return nil, errors.New("redis gone")
}

// A catalog that does not answer fails the batch as transient: a snapshot
// is not dead-lettered because Redis was away.
func TestACatalogOutageFailsTheBatch(t *testing.T) {
	seen := &recordingSeen{}
	res, err := NewProcessor(seen, failingCatalog{}, topics).HandleRuns(context.Background(),
		[][]*kgo.Record{{snapshotOf(t, "wh-1", "shopify", "1", 6, 1)}})
	if err == nil || stream.IsPermanent(err) || len(res.Outputs) != 0 || len(res.Rejected) != 0 || len(seen.got) != 0 {
		t.Fatalf("%d outputs, %d rejected, %d recorded, err %v; want a transient error and nothing", len(res.Outputs), len(res.Rejected), len(seen.got), err)
	}
}
