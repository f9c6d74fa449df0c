package clickhouse

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/stream"
	"github.com/shopstream/shopstream/internal/testenv"
	"github.com/shopstream/shopstream/schemas/avro"
	"github.com/shopstream/shopstream/schemas/envelope"
	"github.com/shopstream/shopstream/topology"
)

// One record of every kind the sink routes, written twice as a replay
// writes them, a second apart: every table holds each row once, with its
// first insert time, and the views count each once.
func TestEveryTableAndViewOnRealClickHouse(t *testing.T) {
	db := strings.TrimSuffix(testenv.Namespace(t), "_")
	conn := testenv.ClickHouse(t, db)
	ctx := context.Background()
	if _, err := Migrate(ctx, conn, SchemaConfig{DB: db}); err != nil {
		t.Fatal(err)
	}
	names := topology.NamesFor("")
	at := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	rec := func(topic string, v any) *kgo.Record {
		r, err := envelope.Record(topic, v, "corr")
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	paid := avro.OrderEvent{EventID: "evt_1", Provider: "stripe", Type: avro.OrderPaid, OrderID: "o-1", Version: at.UnixMilli(),
		OccurredAt: at, ReceivedAt: at.Add(100 * time.Millisecond), Currency: "EUR", CustomerHash: "c0ffee",
		Lines: []avro.LineItem{{LineID: "1", SKU: "A", Quantity: 2, UnitPriceMinor: 1999}, {LineID: "2", SKU: "B", Quantity: 1, UnitPriceMinor: 500}}}
	dead := stream.DeadLetter(&kgo.Record{Topic: names.Orders, Partition: 2, Offset: 7, Key: []byte("o-9"), Value: []byte("junk")},
		topology.DLQ(names.Orders), stream.Permanent(errors.New("not avro")), at)
	batch := []*kgo.Record{
		rec(names.Outcomes, &avro.WebhookOutcome{OutcomeID: "stripe:evt_1", Provider: "stripe", DeliveryID: "evt_1", EventType: "payment_intent.succeeded",
			Outcome: avro.OutcomeAccepted, Status: 200, Size: 512, ReceivedAt: at}),
		rec(names.Outcomes, &avro.WebhookOutcome{OutcomeID: "webhooks.raw/0/9", Provider: "stripe", DeliveryID: "evt_1",
			Outcome: avro.OutcomeDuplicate, Reason: "deliveries", Status: 200, ReceivedAt: at}),
		rec(names.Outcomes, &avro.WebhookOutcome{OutcomeID: "edge:x", Provider: "stripe", Outcome: avro.OutcomeRejected, Reason: "invalid_signature",
			Status: 401, ReceivedAt: at}),
		rec(names.Applied, &avro.OrderApplied{Event: paid, StatusAfter: avro.OrderPaid, Transition: avro.TransitionSale, AppliedAt: at.Add(time.Second)}),
		rec(names.Movements, &avro.InventoryMovement{MovementID: "o-1:1:sale", SKU: "A", Kind: avro.DeltaSale, Status: avro.MovementApplied,
			Quantity: -2, StockAfter: 8, OrderID: "o-1", OccurredAt: at, AppliedAt: at.Add(400 * time.Millisecond), Provider: "stripe",
			ReceivedAt: at.Add(100 * time.Millisecond)}),
		rec(names.Movements, &avro.InventoryMovement{MovementID: "adjust:seed-A", SKU: "A", Kind: avro.DeltaAdjustment, Status: avro.MovementApplied,
			Quantity: 10, StockAfter: 10, OccurredAt: at, AppliedAt: at}),
		rec(names.Drift, &avro.StockDrift{DriftID: "snap-1:A", SKU: "A", SnapshotID: "snap-1", Source: "shopify", TruthAvailable: 7, RedisStock: 8,
			Difference: -1, Action: avro.DriftNeedsReview, ObservedAt: at, ReconciledAt: at}),
		rec(names.Metrics, &avro.PipelineMetric{MetricID: "orders/i/2026-11-24T10:00:00Z", Minute: at, Stage: "orders", Instance: "i", Records: 42,
			LatencyP99Ms: 12.5, Partition: -1, Lag: -1}),
		dead,
	}
	sink := newSink(conn, db, routes(names))
	for range 2 {
		if rejected, err := sink.HandleBatch(ctx, batch); err != nil || len(rejected) != 0 {
			t.Fatalf("rejected %v, %v", rejected, err)
		}
		time.Sleep(1100 * time.Millisecond)
	}
	for _, q := range []struct{ query, want string }{
		{"SELECT provider, requests, accepted, duplicates, rejected, duplicate_rate FROM webhooks_per_provider", "stripe 3 1 1 1 0.5"},
		{"SELECT provider, reason, status, rejected FROM rejections_per_provider", "stripe invalid_signature 401 1"},
		{"SELECT order_id, status_after, transition, lines, units, amount_minor, customer_hash FROM order_events FINAL", "o-1 PAID SALE 2 3 4498 c0ffee"},
		{"SELECT count(), sum(quantity) FROM order_lines FINAL", "2 3"},
		{"SELECT sku, units_received, units_sold, units_returned, sell_through FROM sell_through_per_sku", "A 10 2 0 0.2"},
		{"SELECT sku, units_sold, orders FROM top_skus", "A 2 1"},
		{"SELECT provider, movements, applied_p50_ms FROM latency_per_provider", "stripe 1 300"},
		{"SELECT origin_topic, error_class, dead_letters FROM dead_letters_per_class", "orders permanent 1"},
		{"SELECT sku, reconciliations, total_difference, needs_review FROM drift_per_sku_minute", "A 1 -1 1"},
		{"SELECT stage, records, latency_p99_ms FROM pipeline_metrics FINAL", "orders 42 12.5"},
		// The replay's second insert, a second later, did not replace the
		// first: latency to a queryable row stays what it first was.
		{"SELECT uniqExact(inserted_at) FROM inventory_movements FINAL", "1"},
		{"SELECT count() FROM inventory_movements", "4"},
	} {
		if got := queryLine(t, conn, db, q.query); got != q.want {
			t.Errorf("%s:\n got %q\nwant %q", q.query, got, q.want)
		}
	}
}

// queryLine runs query on db's tables (its FROM names one) and returns its
// rows, each a line of space-separated values.
func queryLine(t *testing.T, conn driver.Conn, db, query string) string {
	t.Helper()
	rows, err := conn.Query(context.Background(), strings.Replace(query, "FROM ", "FROM "+db+".", 1))
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	got, err := Strings(rows)
	if err != nil {
		t.Fatal(err)
	}
	lines := make([]string, len(got))
	for i, row := range got {
		lines[i] = strings.Join(row, " ")
	}
	return strings.Join(lines, "\n")
}
