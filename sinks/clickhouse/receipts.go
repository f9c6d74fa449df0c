package clickhouse

import (
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/schemas/avro"
)

// receipts is webhook_receipts (migration 004): one row per outcome of a
// webhook request, replaced by (provider, outcome_id).
type receipts struct{}

func (receipts) Name() string { return "webhook_receipts" }

func (receipts) Columns() []string {
	return []string{"outcome_id", "provider", "delivery_id", "event_type", "outcome", "reason", "status", "size",
		"received_at", "received_ms", "correlation_id", "inserted_at", "inserted_ms", "version"}
}

func (receipts) Rows(rec *kgo.Record) ([][]any, error) {
	var o avro.WebhookOutcome
	if err := avro.Default().Unmarshal(rec.Value, &o); err != nil {
		return nil, err
	}
	at, ms, version := inserted()
	return [][]any{{o.OutcomeID, o.Provider, o.DeliveryID, o.EventType, o.Outcome, o.Reason, uint16(o.Status), uint64(max(o.Size, 0)),
		epoch(o.ReceivedAt), millis(o.ReceivedAt), o.CorrelationID, at, ms, version}}, nil
}
