// Package envelope turns a contract value (schemas/avro) into the Kafka
// record that carries it: its topic, its key, its single-object encoded
// value, and the headers that routing and tracing read without decoding the
// body. Every stage that writes a contract writes it through Record, so the
// key of each contract and the spelling of each event type are decided here
// once.
//
// Event types are lower case, "<contract>.<what happened>": order.paid,
// inventory.delta.sale, inventory.movement.refused, inventory.snapshot,
// webhook.receipt.
package envelope

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/schemas/avro"
)

// Headers every shopstream record carries.
const (
	HeaderEventType     = "event.type"
	HeaderSchemaFP      = "schema.fingerprint"
	HeaderCorrelationID = "correlation.id"
	HeaderProvider      = "provider"
	HeaderReceivedAt    = "received.at"
)

// WebhookReceipt is the event type of a receipt; the others are made from
// their contract's own enum (orderEventType and its siblings), so a new
// enum symbol has its event type at once.
const WebhookReceipt = "webhook.receipt"

// StockSnapshot is the event type of a stock snapshot.
const StockSnapshot = "inventory.snapshot"

// orderEventType is the event type of an order event of avro type t
// (avro.OrderPaid gives "order.paid").
func orderEventType(t string) string { return "order." + strings.ToLower(t) }

// deltaEventType is the event type of a delta of avro kind k
// (avro.DeltaSale gives "inventory.delta.sale").
func deltaEventType(k string) string { return "inventory.delta." + strings.ToLower(k) }

// movementEventType is the event type of a movement of avro status s
// (avro.MovementApplied gives "inventory.movement.applied").
func movementEventType(s string) string { return "inventory.movement." + strings.ToLower(s) }

// Record returns the record that carries v on topic. v is a pointer to one
// of the contract types of schemas/avro; its key is what orders it (the
// order id for order events and decisions, the SKU for deltas, movements,
// snapshots and drift, the delivery id for receipts and outcomes, the stage
// for pipeline metrics). correlationID is used when v carries none of its own.
// An error means v cannot be encoded, which retrying will not change.
func Record(topic string, v any, correlationID string) (*kgo.Record, error) {
	var (
		key, eventType, provider string
		receivedAt               int64
	)
	switch c := v.(type) {
	case *avro.WebhookReceipt:
		key, eventType, provider, receivedAt = c.DeliveryID, WebhookReceipt, c.Provider, c.ReceivedAt.UnixMilli()
	case *avro.OrderEvent:
		key, eventType, provider, receivedAt = c.OrderID, orderEventType(c.Type), c.Provider, c.ReceivedAt.UnixMilli()
		correlationID = or(c.CorrelationID, correlationID)
	case *avro.InventoryDelta:
		key, eventType = c.SKU, deltaEventType(c.Kind)
		correlationID = or(c.CorrelationID, correlationID)
	case *avro.InventoryMovement:
		key, eventType = c.SKU, movementEventType(c.Status)
		correlationID = or(c.CorrelationID, correlationID)
	case *avro.WebhookOutcome:
		key = c.OutcomeID
		if c.DeliveryID != "" {
			key = c.Provider + ":" + c.DeliveryID
		}
		eventType, provider, receivedAt = "webhook.outcome."+strings.ToLower(c.Outcome), c.Provider, c.ReceivedAt.UnixMilli()
		correlationID = or(c.CorrelationID, correlationID)
	case *avro.OrderApplied:
		key, eventType, provider, receivedAt = c.Event.OrderID, "order.applied."+strings.ToLower(c.Transition), c.Event.Provider, c.Event.ReceivedAt.UnixMilli()
		correlationID = or(c.Event.CorrelationID, correlationID)
	case *avro.StockDrift:
		key, eventType = c.SKU, "inventory.drift."+strings.ToLower(c.Action)
	case *avro.PipelineMetric:
		key, eventType = c.Stage, "pipeline.metric"
	case *avro.StockSnapshot:
		// A snapshot without its SKU would be compacted under the empty
		// key, replacing every other such snapshot.
		if c.SKU == "" {
			return nil, fmt.Errorf("envelope: the stock snapshot %s names no SKU", c.SnapshotID)
		}
		key, eventType, provider, receivedAt = c.SKU, StockSnapshot, c.Source, c.ReceivedAt.UnixMilli()
		correlationID = or(c.CorrelationID, correlationID)
	default:
		return nil, fmt.Errorf("envelope: %T is not a shopstream contract", v)
	}
	value, err := avro.Default().Marshal(v)
	if err != nil {
		return nil, err
	}
	fp, err := avro.Fingerprint(value)
	if err != nil {
		return nil, err
	}
	var fpBytes [8]byte
	binary.BigEndian.PutUint64(fpBytes[:], fp)
	headers := make([]kgo.RecordHeader, 3, 5)
	headers[0] = kgo.RecordHeader{Key: HeaderEventType, Value: []byte(eventType)}
	headers[1] = kgo.RecordHeader{Key: HeaderSchemaFP, Value: hex.AppendEncode(nil, fpBytes[:])}
	headers[2] = kgo.RecordHeader{Key: HeaderCorrelationID, Value: []byte(correlationID)}
	if provider != "" {
		headers = append(headers,
			kgo.RecordHeader{Key: HeaderProvider, Value: []byte(provider)},
			kgo.RecordHeader{Key: HeaderReceivedAt, Value: []byte(strconv.FormatInt(receivedAt, 10))})
	}
	return &kgo.Record{Topic: topic, Key: []byte(key), Value: value, Headers: headers}, nil
}

// Header returns the value of rec's last header named key, and whether it
// has one.
func Header(rec *kgo.Record, key string) (string, bool) {
	for i := len(rec.Headers) - 1; i >= 0; i-- {
		if rec.Headers[i].Key == key {
			return string(rec.Headers[i].Value), true
		}
	}
	return "", false
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
