package clickhouse

import (
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/stream"
	"github.com/shopstream/shopstream/schemas/avro"
	"github.com/shopstream/shopstream/schemas/envelope"
)

// drift is inventory_drift (migration 006): one row per SKU per
// reconciliation, replaced by (sku, drift_id).
type drift struct{}

func (drift) Name() string { return "inventory_drift" }

func (drift) Columns() []string {
	return []string{"drift_id", "sku", "snapshot_id", "source", "truth_available", "redis_stock", "reserved", "in_flight",
		"difference", "action", "observed_at", "observed_ms", "reconciled_at", "reconciled_ms", "inserted_at", "inserted_ms", "version"}
}

func (drift) Rows(rec *kgo.Record) ([][]any, error) {
	var d avro.StockDrift
	if err := avro.Default().Unmarshal(rec.Value, &d); err != nil {
		return nil, err
	}
	at, ms, version := inserted()
	return [][]any{{d.DriftID, d.SKU, d.SnapshotID, d.Source, d.TruthAvailable, d.RedisStock, d.Reserved, d.InFlight,
		d.Difference, d.Action, epoch(d.ObservedAt), millis(d.ObservedAt), epoch(d.ReconciledAt), millis(d.ReconciledAt), at, ms, version}}, nil
}

// pipelineMetrics is pipeline_metrics (migration 006): a stage's minute on
// one instance, or a partition's lag, replaced by (stage, metric_id).
type pipelineMetrics struct{}

func (pipelineMetrics) Name() string { return "pipeline_metrics" }

func (pipelineMetrics) Columns() []string {
	return []string{"metric_id", "minute", "stage", "instance", "records", "errors_transient", "errors_permanent", "dead_lettered",
		"latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "consumer_group", "topic", "partition", "lag", "inserted_at", "inserted_ms", "version"}
}

func (pipelineMetrics) Rows(rec *kgo.Record) ([][]any, error) {
	var m avro.PipelineMetric
	if err := avro.Default().Unmarshal(rec.Value, &m); err != nil {
		return nil, err
	}
	at, ms, version := inserted()
	return [][]any{{m.MetricID, epoch(m.Minute), m.Stage, m.Instance, m.Records, m.ErrorsTransient, m.ErrorsPermanent, m.DeadLettered,
		m.LatencyP50Ms, m.LatencyP95Ms, m.LatencyP99Ms, m.Group, m.Topic, m.Partition, m.Lag, at, ms, version}}, nil
}

// deadLetters is dead_letters (migration 006): one row per dead letter of
// any stage, from its dlq.* headers and its key, never its value, which
// may be a webhook's raw body. Replaced by its origin's position, which a
// replay of the stage dead-letters again. It never refuses a record: a
// dead letter's own dead letter would have nowhere to go.
type deadLetters struct{}

func (deadLetters) Name() string { return "dead_letters" }

func (deadLetters) Columns() []string {
	return []string{"origin_topic", "origin_partition", "origin_offset", "dlq_topic", "error_class", "reason", "event_type",
		"record_key", "failed_at", "failed_ms", "inserted_at", "inserted_ms", "version"}
}

func (deadLetters) Rows(rec *kgo.Record) ([][]any, error) {
	h := func(k string) string { v, _ := envelope.Header(rec, k); return v }
	origin := h(stream.HeaderOriginTopic)
	partition, perr := strconv.ParseInt(h(stream.HeaderOriginPartition), 10, 32)
	offset, oerr := strconv.ParseInt(h(stream.HeaderOriginOffset), 10, 64)
	if origin == "" || perr != nil || oerr != nil {
		// Not written by the loops (a hand-made record): named by its own
		// position instead.
		origin, partition, offset = rec.Topic, int64(rec.Partition), rec.Offset
	}
	failed, err := time.Parse(time.RFC3339Nano, h(stream.HeaderFailedAt))
	if err != nil {
		failed = rec.Timestamp
	}
	failed = epoch(failed.UTC())
	at, ms, version := inserted()
	return [][]any{{origin, int32(partition), offset, rec.Topic, h(stream.HeaderErrorClass), h(stream.HeaderErrorReason),
		h(envelope.HeaderEventType), string(rec.Key), failed, millis(failed), at, ms, version}}, nil
}
