-- One row per SKU per reconciliation (the reconciler's drift), every dead
-- letter of every stage (from the DLQ topics' headers: never the body),
-- and each stage's work by the minute. Each is replaced by its id; the first
-- insert stands.
CREATE TABLE IF NOT EXISTS {{.DB}}.inventory_drift {{.OnCluster}} (
    drift_id        String,
    sku             String,
    snapshot_id     String,
    source          String,
    truth_available Int64,
    redis_stock     Int64,
    reserved        Int64,
    in_flight       Int64,
    difference      Int64,
    action          String,
    observed_at     DateTime,
    observed_ms     UInt16,
    reconciled_at   DateTime,
    reconciled_ms   UInt16,
    inserted_at     DateTime,
    inserted_ms     UInt16,
    version         UInt64
) ENGINE = {{replacing "inventory_drift" "version"}}
PARTITION BY toYYYYMM(reconciled_at)
ORDER BY (sku, drift_id);

CREATE TABLE IF NOT EXISTS {{.DB}}.dead_letters {{.OnCluster}} (
    origin_topic     String,
    origin_partition Int32,
    origin_offset    Int64,
    dlq_topic        String,
    error_class      String,
    reason           String,
    event_type       String,
    record_key       String,
    failed_at        DateTime,
    failed_ms        UInt16,
    inserted_at      DateTime,
    inserted_ms      UInt16,
    version          UInt64
) ENGINE = {{replacing "dead_letters" "version"}}
PARTITION BY toYYYYMM(failed_at)
ORDER BY (origin_topic, origin_partition, origin_offset);

CREATE TABLE IF NOT EXISTS {{.DB}}.pipeline_metrics {{.OnCluster}} (
    metric_id        String,
    minute           DateTime,
    stage            String,
    instance         String,
    records          Int64,
    errors_transient Int64,
    errors_permanent Int64,
    dead_lettered    Int64,
    latency_p50_ms   Float64,
    latency_p95_ms   Float64,
    latency_p99_ms   Float64,
    consumer_group   String,
    topic            String,
    partition        Int32,
    lag              Int64,
    inserted_at      DateTime,
    inserted_ms      UInt16,
    version          UInt64
) ENGINE = {{replacing "pipeline_metrics" "version"}}
PARTITION BY toYYYYMM(minute)
ORDER BY (stage, metric_id);
