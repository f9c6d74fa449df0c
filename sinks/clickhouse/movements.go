// Package clickhouse owns what lands in ClickHouse: the schema (numbered,
// embedded migrations/*.sql, rendered for one server or a cluster from one
// SchemaConfig) and the sinks that batch topics into its tables. To add a
// table: a new numbered migration, and a sink beside movements.go.
//
// The schema keeps to what ClickHouse 18.16 and today's releases both
// accept: native protocol, named INSERT columns, DateTime plus a separate
// millisecond column, no DateTime64, Map, LowCardinality or TTL, and
// ReplacingMergeTree with an explicit version for rows written twice.
package clickhouse

import (
	"context"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/stream"
	"github.com/shopstream/shopstream/schemas/avro"
)

// MovementsSink writes inventory movements to inventory_movements. It is a
// stream.BatchHandler: a batch is one INSERT, and the loop commits offsets
// only after it succeeded. Writing a batch twice is harmless: the table
// replaces rows by movement id.
type MovementsSink struct {
	conn  driver.Conn
	codec *avro.Registry
	table string
}

// NewMovementsSink returns a sink into db.inventory_movements.
func NewMovementsSink(conn driver.Conn, db string) *MovementsSink {
	return &MovementsSink{conn: conn, codec: avro.Default(), table: db + ".inventory_movements"}
}

const movementColumns = "movement_id, sku, kind, status, quantity, stock_after, reason, order_id, correlation_id, " +
	"occurred_at, occurred_ms, applied_at, applied_ms, kafka_partition, kafka_offset, version"

// HandleBatch implements stream.BatchHandler. Records that do not decode as
// movements are rejected; a failed insert is returned for the loop to retry.
func (s *MovementsSink) HandleBatch(ctx context.Context, recs []*kgo.Record) ([]stream.Rejection, error) {
	batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+s.table+" ("+movementColumns+")")
	if err != nil {
		return nil, fmt.Errorf("clickhouse: prepare insert: %w", err)
	}
	defer batch.Close()
	var rejected []stream.Rejection
	for _, rec := range recs {
		var m avro.InventoryMovement
		if err := s.codec.Unmarshal(rec.Value, &m); err != nil {
			rejected = append(rejected, stream.Rejection{Record: rec, Err: err})
			continue
		}
		if err := batch.Append(m.MovementID, m.SKU, m.Kind, m.Status, m.Quantity, m.StockAfter, m.Reason,
			m.OrderID, m.CorrelationID, m.OccurredAt, uint16(m.OccurredAt.Nanosecond()/1e6),
			m.AppliedAt, uint16(m.AppliedAt.Nanosecond()/1e6), rec.Partition, rec.Offset,
			uint64(m.AppliedAt.UnixMilli())); err != nil {
			return nil, fmt.Errorf("clickhouse: append movement %s: %w", m.MovementID, err)
		}
	}
	if batch.Rows() == 0 {
		return rejected, batch.Abort()
	}
	if err := batch.Send(); err != nil {
		return nil, fmt.Errorf("clickhouse: insert %d movements: %w", batch.Rows(), err)
	}
	return rejected, nil
}
