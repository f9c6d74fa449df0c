package clickhouse

import (
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/schemas/avro"
)

// movements is inventory_movements (migrations 001 and 003): one row per
// movement the inventory stage emitted, replaced by (sku, movement_id).
type movements struct{}

func (movements) Name() string { return "inventory_movements" }

func (movements) Columns() []string {
	return []string{"movement_id", "sku", "kind", "status", "quantity", "stock_after", "reason", "order_id",
		"correlation_id", "occurred_at", "occurred_ms", "applied_at", "applied_ms", "kafka_partition", "kafka_offset",
		"provider", "received_at", "received_ms", "inserted_at", "inserted_ms", "reserved_after", "version"}
}

func (movements) Rows(rec *kgo.Record) ([][]any, error) {
	var m avro.InventoryMovement
	if err := avro.Default().Unmarshal(rec.Value, &m); err != nil {
		return nil, err
	}
	at, ms, version := inserted()
	received := epoch(m.ReceivedAt)
	return [][]any{{m.MovementID, m.SKU, m.Kind, m.Status, m.Quantity, m.StockAfter, m.Reason,
		m.OrderID, m.CorrelationID, m.OccurredAt, millis(m.OccurredAt), m.AppliedAt, millis(m.AppliedAt),
		rec.Partition, rec.Offset, m.Provider, received, millis(received), at, ms, m.ReservedAfter, version}}, nil
}
