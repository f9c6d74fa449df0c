package clickhouse

import (
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/schemas/avro"
)

// orderEvents is order_events (migration 005): one row per order event as
// the orders stage decided it, replaced by (provider, order_id, event_id).
// orderLines is order_lines: a row per line of it.
type (
	orderEvents struct{}
	orderLines  struct{}
)

func decodeApplied(rec *kgo.Record) (avro.OrderApplied, error) {
	var a avro.OrderApplied
	err := avro.Default().Unmarshal(rec.Value, &a)
	return a, err
}

func (orderEvents) Name() string { return "order_events" }

func (orderEvents) Columns() []string {
	return []string{"event_id", "order_id", "provider", "event_type", "provider_version", "status_after", "transition", "stale",
		"currency", "customer_hash", "lines", "units", "amount_minor", "occurred_at", "occurred_ms", "received_at", "received_ms",
		"applied_at", "applied_ms", "correlation_id", "inserted_at", "inserted_ms", "version"}
}

func (orderEvents) Rows(rec *kgo.Record) ([][]any, error) {
	a, err := decodeApplied(rec)
	if err != nil {
		return nil, err
	}
	e := &a.Event
	var units, amount int64
	for _, l := range e.Lines {
		units += l.Quantity
		amount += l.Quantity * l.UnitPriceMinor
	}
	var stale uint8
	if a.Stale {
		stale = 1
	}
	at, ms, version := inserted()
	received := epoch(e.ReceivedAt)
	return [][]any{{e.EventID, e.OrderID, e.Provider, e.Type, e.Version, a.StatusAfter, a.Transition, stale,
		e.Currency, e.CustomerHash, uint32(len(e.Lines)), units, amount, epoch(e.OccurredAt), millis(e.OccurredAt),
		received, millis(received), a.AppliedAt, millis(a.AppliedAt), e.CorrelationID, at, ms, version}}, nil
}

func (orderLines) Name() string { return "order_lines" }

func (orderLines) Columns() []string {
	return []string{"event_id", "order_id", "provider", "event_type", "status_after", "transition", "line_id", "sku",
		"quantity", "unit_price_minor", "currency", "customer_hash", "occurred_at", "occurred_ms", "inserted_at", "inserted_ms", "version"}
}

func (orderLines) Rows(rec *kgo.Record) ([][]any, error) {
	a, err := decodeApplied(rec)
	if err != nil {
		return nil, err
	}
	e := &a.Event
	at, ms, version := inserted()
	rows := make([][]any, len(e.Lines))
	for i, l := range e.Lines {
		rows[i] = []any{e.EventID, e.OrderID, e.Provider, e.Type, a.StatusAfter, a.Transition, l.LineID, l.SKU,
			l.Quantity, l.UnitPriceMinor, e.Currency, e.CustomerHash, epoch(e.OccurredAt), millis(e.OccurredAt), at, ms, version}
	}
	return rows, nil
}
