package avro

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	hamba "github.com/hamba/avro/v2"
	"github.com/hamba/avro/v2/pkg/crc64"
)

var crc64New = crc64.New

func ms(n int64) time.Time { return time.UnixMilli(n).UTC() }

func TestRoundTrip(t *testing.T) {
	reg := Default()
	tests := []struct {
		name string
		in   any
		out  any
	}{
		{"order", &OrderEvent{EventID: "msg_1", Provider: "standardwebhooks", Type: OrderPaid, OrderID: "o-1",
			Version: 1700000000123, OccurredAt: ms(1700000000123), ReceivedAt: ms(1700000000999), Currency: "EUR",
			Lines: []LineItem{{LineID: "1", SKU: "SKU-A", Quantity: 2, UnitPriceMinor: 1999}}, CorrelationID: "c"}, &OrderEvent{}},
		{"delta", &InventoryDelta{DeltaID: "o-1:1:sale", SKU: "SKU-A", Kind: DeltaSale, Quantity: -2,
			OrderID: "o-1", EventID: "msg_1", OccurredAt: ms(5)}, &InventoryDelta{}},
		{"movement", &InventoryMovement{MovementID: "o-1:1:sale", SKU: "SKU-A", Kind: DeltaSale, Status: MovementRefused,
			Quantity: -2, StockAfter: 1, Reason: "insufficient_stock", OccurredAt: ms(5), AppliedAt: ms(6)}, &InventoryMovement{}},
		{"receipt", &WebhookReceipt{DeliveryID: "msg_1", Provider: "p", ReceivedAt: ms(7),
			Headers: map[string]string{"content-type": "application/json"}, Body: []byte(`{}`)}, &WebhookReceipt{}},
		{"receipt with its event", &WebhookReceipt{DeliveryID: "msg_2", Provider: "p", ReceivedAt: ms(8),
			Headers: map[string]string{}, Body: []byte(`{}`), Event: &OrderEvent{EventID: "msg_2", Provider: "p", Type: OrderPaid,
				OrderID: "o-2", Version: 8, OccurredAt: ms(8), ReceivedAt: ms(8), Lines: []LineItem{{LineID: "1", SKU: "S", Quantity: 1}}}},
			&WebhookReceipt{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := reg.Marshal(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if b[0] != 0xC3 || b[1] != 0x01 {
				t.Fatalf("header %x, want c301", b[:2])
			}
			s, _ := reg.SchemaOf(tt.in)
			if fp, err := Fingerprint(b); err != nil || fp != s.Fingerprint {
				t.Fatalf("fingerprint %x %v, want %x", fp, err, s.Fingerprint)
			}
			if err := reg.Unmarshal(b, tt.out); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(tt.in, tt.out) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", tt.out, tt.in)
			}
		})
	}
}

// Fingerprints computed by Apache Avro's Java reference implementation
// (SchemaNormalization.parsingFingerprint64, avro 1.12.0) from these very
// files: a reader using any Avro library must resolve what shopstream writes.
// When a schema changes, its new fingerprint is checked the same way.
func TestFingerprintsMatchTheReferenceImplementation(t *testing.T) {
	for _, tt := range []struct {
		v  any
		fp uint64
	}{
		{OrderEvent{}, 0x1e76943895a34d97},
		{InventoryDelta{}, 0x12bd8943165490eb},
		{InventoryMovement{}, 0x320a29cbc58f32fd},
		{WebhookReceipt{}, 0xd8bb06b4588c5ba3},
		{WebhookOutcome{}, 0x2e89389d62d68c20},
		{OrderApplied{}, 0x14b7e6f55960a50a},
		{StockDrift{}, 0x9c094275b2a42f7d},
		{PipelineMetric{}, 0xfc416afc93e594fe},
		{StockSnapshot{}, 0xe08eec1ce7fcfbff},
	} {
		v, fp := tt.v, tt.fp
		s, err := Default().SchemaOf(v)
		if err != nil {
			t.Fatal(err)
		}
		if s.Fingerprint != fp {
			pcf, _ := CanonicalForm(s.Avro)
			t.Errorf("%s: fingerprint %016x, Java's %016x; canonical form %s", s.Name, s.Fingerprint, fp, pcf)
		}
	}
	// The specification's own example of a primitive: "int".
	h := crc64New()
	h.Write([]byte(`"int"`))
	if got := h.Sum64(); got != 0x7275d51a3f395c8f {
		t.Fatalf(`CRC-64-AVRO("int") = %016x`, got)
	}
	// Single-object encoding stores the fingerprint little-endian.
	b, _ := Default().Marshal(&OrderEvent{Type: OrderPaid})
	if fmt.Sprintf("%x", b[:headerLen]) != "c301974da3953894761e" {
		t.Fatalf("header %x", b[:headerLen])
	}
}

func TestCanonicalFormRefusesWhatItCannotReduce(t *testing.T) {
	s := hamba.MustParse(`{"type":"record","name":"R","fields":[{"name":"id","type":{"type":"fixed","name":"U","size":12,"logicalType":"duration"}}]}`)
	if _, err := CanonicalForm(s); err == nil {
		t.Fatal("a fixed with a logical type was fingerprinted")
	}
}

func TestUnmarshalRejects(t *testing.T) {
	reg := Default()
	good, _ := reg.Marshal(&InventoryDelta{DeltaID: "d", SKU: "s", Kind: DeltaSale, OccurredAt: ms(1)})
	unknown := append([]byte{0xC3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8}, good[headerLen:]...)
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrNotSingleObject},
		{"json", []byte(`{"delta_id":"d"}`), ErrNotSingleObject},
		{"short", good[:5], ErrNotSingleObject},
		{"unknown fingerprint", unknown, ErrUnknownSchema},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := reg.Unmarshal(tt.data, &InventoryDelta{}); !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
		})
	}
	for name, data := range map[string][]byte{"truncated": good[:len(good)-3], "trailing": append(good[:len(good):len(good)], 0)} {
		if err := reg.Unmarshal(data, &InventoryDelta{}); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%s: err %v, want ErrMalformed", name, err)
		}
		// Readers are pooled: the failure must not stay with the reader
		// and fail the good record decoded after it.
		var d InventoryDelta
		if err := reg.Unmarshal(good, &d); err != nil || d.DeltaID != "d" {
			t.Fatalf("after a %s body: %+v, %v", name, d, err)
		}
	}
}

// orderEventV0 is order_event.avsc as first written, before currency and
// correlation_id: the contract is that it and today's schema read each other.
const orderEventV0 = `{"type":"record","name":"OrderEvent","namespace":"io.shopstream","fields":[
 {"name":"event_id","type":"string"},{"name":"provider","type":"string"},
 {"name":"type","type":{"type":"enum","name":"OrderEventType","symbols":["UNKNOWN","CREATED","PAID"],"default":"UNKNOWN"}},
 {"name":"order_id","type":"string"},{"name":"version","type":"long"},
 {"name":"occurred_at","type":{"type":"long","logicalType":"timestamp-millis"}},
 {"name":"received_at","type":{"type":"long","logicalType":"timestamp-millis"}},
 {"name":"lines","type":{"type":"array","items":{"type":"record","name":"LineItem","fields":[
  {"name":"line_id","type":"string"},{"name":"sku","type":"string"},{"name":"quantity","type":"long"}]}}}]}`

func TestNewReaderReadsOldData(t *testing.T) {
	reg, err := NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	old, err := reg.AddWriterSchema(orderEventV0)
	if err != nil {
		t.Fatal(err)
	}
	body, err := hamba.Marshal(old.Avro, map[string]any{
		"event_id": "e", "provider": "p", "type": "PAID", "order_id": "o", "version": int64(3),
		"occurred_at": ms(3), "received_at": ms(4),
		"lines": []any{map[string]any{"line_id": "1", "sku": "S", "quantity": int64(2)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	data := append([]byte{0xC3, 0x01}, le(old.Fingerprint)...)
	var got OrderEvent
	if err := reg.Unmarshal(append(data, body...), &got); err != nil {
		t.Fatal(err)
	}
	if got.Type != OrderPaid || got.Currency != "" || got.Lines[0].UnitPriceMinor != 0 || got.Lines[0].Quantity != 2 {
		t.Fatalf("old data read as %+v", got)
	}
}

func TestOldReaderReadsNewData(t *testing.T) {
	oldSchema := hamba.MustParse(orderEventV0)
	newData, err := Default().Marshal(&OrderEvent{EventID: "e", Type: OrderPaid, OrderID: "o", Version: 9,
		OccurredAt: ms(1), ReceivedAt: ms(2), Currency: "EUR", CorrelationID: "c",
		Lines: []LineItem{{LineID: "1", SKU: "S", Quantity: 4, UnitPriceMinor: 100}}})
	if err != nil {
		t.Fatal(err)
	}
	writer, _ := Default().SchemaOf(OrderEvent{})
	resolved, err := hamba.NewSchemaCompatibility().Resolve(oldSchema, writer.Avro)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := decodeExact(resolved, newData[headerLen:], &got, "old OrderEvent"); err != nil {
		t.Fatal(err)
	}
	if got["order_id"] != "o" || got["version"] != int64(9) {
		t.Fatalf("new data read by the old schema as %v", got)
	}
}

// webhookReceiptV0 is webhook_receipt.avsc before the edge carried its
// mapped event (history/webhook_receipt.v1.avsc): receipts already in
// webhooks.raw were written with it, and readers that still have it read
// what the edge writes today.
const webhookReceiptV0 = `{"type":"record","name":"WebhookReceipt","namespace":"io.shopstream","fields":[
 {"name":"delivery_id","type":"string"},{"name":"provider","type":"string"},
 {"name":"received_at","type":{"type":"long","logicalType":"timestamp-millis"}},
 {"name":"headers","type":{"type":"map","values":"string"}},{"name":"body","type":"bytes"}]}`

func TestReceiptsOfBothVersionsReadEachOther(t *testing.T) {
	// The default registry knows the old receipt without being told: a
	// release reads what the one before it left in webhooks.raw. Its
	// fingerprint is the one Java's SchemaNormalization gave that file.
	old, err := hamba.Parse(webhookReceiptV0)
	if err != nil {
		t.Fatal(err)
	}
	const oldFP = 0x592bed5c5c073680
	body, err := hamba.Marshal(old, map[string]any{"delivery_id": "d", "provider": "p", "received_at": ms(3),
		"headers": map[string]any{"a": "b"}, "body": []byte("{}")})
	if err != nil {
		t.Fatal(err)
	}
	var got WebhookReceipt
	if err := Default().Unmarshal(append(append([]byte{0xC3, 0x01}, le(oldFP)...), body...), &got); err != nil {
		t.Fatal(err)
	}
	if got.DeliveryID != "d" || got.Event != nil {
		t.Fatalf("old receipt read as %+v", got)
	}

	newData, err := Default().Marshal(&WebhookReceipt{DeliveryID: "d2", Provider: "p", ReceivedAt: ms(4), Headers: map[string]string{},
		Body: []byte("{}"), Event: &OrderEvent{EventID: "d2", Type: OrderPaid, OrderID: "o", OccurredAt: ms(4), ReceivedAt: ms(4)}})
	if err != nil {
		t.Fatal(err)
	}
	writer, _ := Default().SchemaOf(WebhookReceipt{})
	resolved, err := hamba.NewSchemaCompatibility().Resolve(hamba.MustParse(webhookReceiptV0), writer.Avro)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := decodeExact(resolved, newData[headerLen:], &m, "old WebhookReceipt"); err != nil {
		t.Fatal(err)
	}
	if m["delivery_id"] != "d2" {
		t.Fatalf("new receipt read by the old schema as %v", m)
	}
}

func le(v uint64) []byte {
	b := make([]byte, 8)
	for i := range b {
		b[i] = byte(v >> (8 * i))
	}
	return b
}

func FuzzUnmarshal(f *testing.F) {
	reg := Default()
	seed, _ := reg.Marshal(&OrderEvent{EventID: "e", Type: OrderPaid, OrderID: "o",
		Lines: []LineItem{{LineID: "1", SKU: "S", Quantity: 1}}})
	f.Add(seed)
	f.Add([]byte{0xC3, 0x01})
	// The body the fuzzer first found (testdata/fuzz): an array count that
	// asked for terabytes. Behind today's fingerprint it reaches the decoder.
	f.Add(append(append([]byte{}, seed[:headerLen]...), []byte("e\x020\x00\x04\x02000d\x00\xa3\xa3\xa3\xa3\xa30")...))
	f.Fuzz(func(t *testing.T, data []byte) {
		var ev OrderEvent
		if reg.Unmarshal(data, &ev) != nil {
			return
		}
		if _, err := reg.Marshal(&ev); err != nil {
			t.Fatalf("decoded %+v does not encode: %v", ev, err)
		}
	})
}

// Every earlier version kept in history/ is known to today's registry
// without being told, with the fingerprint Java's SchemaNormalization gave
// its file, and what it wrote reads as today's type with the newer fields
// at their defaults: a release reads what the one before it left in the
// topics.
func TestHistoryStaysReadable(t *testing.T) {
	for _, tt := range []struct {
		file string
		fp   uint64
		data map[string]any
		into any
		ok   func(any) bool
	}{
		{"history/webhook_receipt.v2.avsc", 0x309bf2436fcf538c, map[string]any{"delivery_id": "d", "provider": "p",
			"received_at": ms(3), "headers": map[string]any{}, "body": []byte("{}"),
			"event": map[string]any{"io.shopstream.OrderEvent": map[string]any{"event_id": "d", "provider": "p", "type": "PAID",
				"order_id": "o", "version": int64(3), "occurred_at": ms(3), "received_at": ms(3), "currency": "EUR",
				"lines": []any{}, "correlation_id": "c"}}},
			&WebhookReceipt{}, func(v any) bool {
				r := v.(*WebhookReceipt)
				return r.Event != nil && r.Event.OrderID == "o" && r.Event.CustomerHash == "" && r.Stock == nil
			}},
		{"history/order_event.v1.avsc", 0x9e08c72a9396c851, map[string]any{"event_id": "e", "provider": "p", "type": "CANCELLED",
			"order_id": "o", "version": int64(3), "occurred_at": ms(3), "received_at": ms(3), "currency": "",
			"lines": []any{}, "correlation_id": ""},
			&OrderEvent{}, func(v any) bool {
				e := v.(*OrderEvent)
				return e.Type == OrderCancelled && e.CustomerHash == ""
			}},
		{"history/inventory_delta.v1.avsc", 0x56485c551c7f6afa, map[string]any{"delta_id": "o:1:sale", "sku": "S", "kind": "SALE",
			"quantity": int64(-1), "order_id": "o", "event_id": "e", "occurred_at": ms(3), "correlation_id": "", "reverses": ""},
			&InventoryDelta{}, func(v any) bool {
				d := v.(*InventoryDelta)
				return d.DeltaID == "o:1:sale" && d.Provider == "" && d.ReceivedAt.UnixMilli() == 0
			}},
		{"history/inventory_movement.v1.avsc", 0x24f81a0e76ce4e95, map[string]any{"movement_id": "m", "sku": "S", "kind": "RESTOCK",
			"status": "APPLIED", "quantity": int64(1), "stock_after": int64(5), "reason": "", "order_id": "o", "occurred_at": ms(3),
			"applied_at": ms(4), "correlation_id": ""},
			&InventoryMovement{}, func(v any) bool {
				m := v.(*InventoryMovement)
				return m.Kind == DeltaRestock && m.StockAfter == 5 && m.Provider == "" && m.ReceivedAt.UnixMilli() == 0
			}},
	} {
		t.Run(tt.file, func(t *testing.T) {
			text, err := files.ReadFile(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			s, err := hamba.Parse(string(text))
			if err != nil {
				t.Fatal(err)
			}
			if known := Default().byFP[tt.fp]; known == nil {
				t.Fatalf("the registry does not know Java's fingerprint %016x of %s", tt.fp, tt.file)
			}
			body, err := hamba.Marshal(s, tt.data)
			if err != nil {
				t.Fatal(err)
			}
			if err := Default().Unmarshal(append(append([]byte{0xC3, 0x01}, le(tt.fp)...), body...), tt.into); err != nil {
				t.Fatal(err)
			}
			if !tt.ok(tt.into) {
				t.Fatalf("read as %+v", tt.into)
			}
		})
	}
}
