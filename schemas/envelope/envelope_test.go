package envelope

import (
	"testing"
	"time"

	"github.com/shopstream/shopstream/schemas/avro"
)

func TestRecordKeysAndEventTypes(t *testing.T) {
	at := time.UnixMilli(1795521600123).UTC()
	tests := []struct {
		name    string
		v       any
		key     string
		headers map[string]string
	}{
		{"receipt", &avro.WebhookReceipt{DeliveryID: "msg_1", Provider: "stripe", ReceivedAt: at}, "msg_1",
			map[string]string{HeaderEventType: "webhook.receipt", HeaderCorrelationID: "c-arg", HeaderProvider: "stripe", HeaderReceivedAt: "1795521600123"}},
		{"order event", &avro.OrderEvent{EventID: "e", OrderID: "o-1", Type: avro.OrderPaid, Provider: "shopify", ReceivedAt: at, CorrelationID: "c-own"}, "o-1",
			map[string]string{HeaderEventType: "order.paid", HeaderCorrelationID: "c-own", HeaderProvider: "shopify", HeaderReceivedAt: "1795521600123"}},
		{"delta", &avro.InventoryDelta{DeltaID: "d", SKU: "TEE", Kind: avro.DeltaAdjustment, Quantity: 1}, "TEE",
			map[string]string{HeaderEventType: "inventory.delta.adjustment", HeaderCorrelationID: "c-arg"}},
		{"movement", &avro.InventoryMovement{MovementID: "m", SKU: "CAP", Kind: avro.DeltaSale, Status: avro.MovementRefused, CorrelationID: "c-own"}, "CAP",
			map[string]string{HeaderEventType: "inventory.movement.refused", HeaderCorrelationID: "c-own"}},
		{"outcome", &avro.WebhookOutcome{OutcomeID: "x", Provider: "shopify", DeliveryID: "wh-1", Outcome: avro.OutcomeDuplicate, ReceivedAt: at}, "shopify:wh-1",
			map[string]string{HeaderEventType: "webhook.outcome.duplicate", HeaderProvider: "shopify", HeaderReceivedAt: "1795521600123"}},
		{"rejection", &avro.WebhookOutcome{OutcomeID: "r-1", Provider: "stripe", Outcome: avro.OutcomeRejected, ReceivedAt: at}, "r-1",
			map[string]string{HeaderEventType: "webhook.outcome.rejected"}},
		{"order applied", &avro.OrderApplied{Event: avro.OrderEvent{EventID: "e", OrderID: "o-2", Type: avro.OrderPaid, Provider: "stripe", ReceivedAt: at},
			StatusAfter: avro.OrderPaid, Transition: avro.TransitionSale}, "o-2",
			map[string]string{HeaderEventType: "order.applied.sale", HeaderProvider: "stripe", HeaderReceivedAt: "1795521600123"}},
		{"drift", &avro.StockDrift{DriftID: "d", SKU: "MUG", Action: avro.DriftHealed}, "MUG", map[string]string{HeaderEventType: "inventory.drift.healed"}},
		{"metric", &avro.PipelineMetric{MetricID: "m", Stage: "sink"}, "sink", map[string]string{HeaderEventType: "pipeline.metric"}},
		{"snapshot", &avro.StockSnapshot{SnapshotID: "s", Source: "webflow", SKU: "MUG", ItemID: "5bfe", ReceivedAt: at}, "MUG",
			map[string]string{HeaderEventType: "inventory.snapshot", HeaderCorrelationID: "c-arg", HeaderProvider: "webflow", HeaderReceivedAt: "1795521600123"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, err := Record("topic", tt.v, "c-arg")
			if err != nil {
				t.Fatal(err)
			}
			if rec.Topic != "topic" || string(rec.Key) != tt.key {
				t.Fatalf("topic %q key %q, want topic %q", rec.Topic, rec.Key, tt.key)
			}
			for k, want := range tt.headers {
				if got, _ := Header(rec, k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			if _, ok := Header(rec, HeaderProvider); !ok && tt.headers[HeaderProvider] != "" {
				t.Error("no provider header")
			}
		})
	}
}

// The fingerprint header is read from the encoded value, so the two cannot
// disagree.
func TestFingerprintHeaderMatchesTheValue(t *testing.T) {
	rec, err := Record("t", &avro.InventoryDelta{DeltaID: "d", SKU: "S", Kind: avro.DeltaSale, Quantity: -1}, "")
	if err != nil {
		t.Fatal(err)
	}
	fp, err := avro.Fingerprint(rec.Value)
	if err != nil {
		t.Fatal(err)
	}
	var want [16]byte
	const hex = "0123456789abcdef"
	for i := range want {
		want[i] = hex[fp>>(60-4*uint(i))&0xf]
	}
	if got, _ := Header(rec, HeaderSchemaFP); got != string(want[:]) {
		t.Fatalf("fingerprint header %q, value's %q", got, want)
	}
}

func TestRecordRefusesWhatIsNotAContract(t *testing.T) {
	if _, err := Record("t", &struct{}{}, ""); err == nil {
		t.Fatal("a non-contract value became a record")
	}
	if _, err := Record("t", &avro.StockSnapshot{SnapshotID: "s", ItemID: "5bfe"}, ""); err == nil {
		t.Fatal("a snapshot without its SKU became a record, to be compacted under the empty key")
	}
}
