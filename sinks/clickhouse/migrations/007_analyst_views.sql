-- The views analysts read. Each reads its tables FINAL, deduplicated by id,
-- so a replay, which writes the same rows again, changes no number here.
-- Sold are the units paid orders reserved; returned, those a cancellation
-- released before they shipped or a refund restocked after.
CREATE VIEW IF NOT EXISTS {{.DB}}.sell_through_per_sku {{.OnCluster}} AS
SELECT
    sku,
    sumIf(quantity, kind = 'ADJUSTMENT' AND quantity > 0) AS units_received,
    -sumIf(quantity, kind = 'SALE') AS units_sold,
    sumIf(quantity, kind IN ('RELEASE', 'RESTOCK')) AS units_returned,
    units_sold - units_returned AS net_units_sold,
    if(units_received = 0, 0, round(net_units_sold / units_received, 4)) AS sell_through
FROM {{.DB}}.inventory_movements FINAL
WHERE status = 'APPLIED'
GROUP BY sku;

CREATE VIEW IF NOT EXISTS {{.DB}}.top_skus {{.OnCluster}} AS
SELECT
    sku,
    -sum(quantity) AS units_sold,
    uniqExact(order_id) AS orders
FROM {{.DB}}.inventory_movements FINAL
WHERE kind = 'SALE' AND status = 'APPLIED'
GROUP BY sku
ORDER BY units_sold DESC, sku;

-- Sales that would have oversold: refused, not applied.
CREATE VIEW IF NOT EXISTS {{.DB}}.refused_orders {{.OnCluster}} AS
SELECT
    order_id,
    provider,
    sku,
    -quantity AS units,
    stock_after AS stock_then,
    reason,
    occurred_at
FROM {{.DB}}.inventory_movements FINAL
WHERE kind = 'SALE' AND status = 'REFUSED';

CREATE VIEW IF NOT EXISTS {{.DB}}.webhooks_per_provider {{.OnCluster}} AS
SELECT
    provider,
    count() AS requests,
    countIf(outcome = 'ACCEPTED') AS accepted,
    countIf(outcome = 'DUPLICATE') AS duplicates,
    countIf(outcome = 'REJECTED') AS rejected,
    if(accepted + duplicates = 0, 0, round(duplicates / (accepted + duplicates), 4)) AS duplicate_rate
FROM {{.DB}}.webhook_receipts FINAL
GROUP BY provider;

CREATE VIEW IF NOT EXISTS {{.DB}}.rejections_per_provider {{.OnCluster}} AS
SELECT
    provider,
    reason,
    status,
    count() AS rejected
FROM {{.DB}}.webhook_receipts FINAL
WHERE outcome = 'REJECTED'
GROUP BY provider, reason, status;

CREATE VIEW IF NOT EXISTS {{.DB}}.dead_letters_per_class {{.OnCluster}} AS
SELECT
    origin_topic,
    error_class,
    count() AS dead_letters,
    max(failed_at) AS last_failed_at
FROM {{.DB}}.dead_letters FINAL
GROUP BY origin_topic, error_class;

CREATE VIEW IF NOT EXISTS {{.DB}}.drift_per_sku_minute {{.OnCluster}} AS
SELECT
    sku,
    toStartOfMinute(reconciled_at) AS minute,
    count() AS reconciliations,
    sum(difference) AS total_difference,
    max(abs(difference)) AS largest_difference,
    countIf(action = 'HEALED') AS healed,
    countIf(action = 'NEEDS_REVIEW') AS needs_review
FROM {{.DB}}.inventory_drift FINAL
GROUP BY sku, minute;

-- From the webhook's acknowledgement (received at ingest) to its movement
-- applied in Redis, and to its row inserted here, in ms, per provider. An
-- operator's adjustment has no webhook and is left out.
CREATE VIEW IF NOT EXISTS {{.DB}}.latency_per_provider {{.OnCluster}} AS
SELECT
    provider,
    count() AS movements,
    quantileExact(0.5)(to_applied) AS applied_p50_ms,
    quantileExact(0.95)(to_applied) AS applied_p95_ms,
    quantileExact(0.99)(to_applied) AS applied_p99_ms,
    quantileExact(0.5)(to_queryable) AS queryable_p50_ms,
    quantileExact(0.95)(to_queryable) AS queryable_p95_ms,
    quantileExact(0.99)(to_queryable) AS queryable_p99_ms
FROM
(
    SELECT
        provider,
        (toInt64(toUInt32(applied_at)) * 1000 + applied_ms) - (toInt64(toUInt32(received_at)) * 1000 + received_ms) AS to_applied,
        (toInt64(toUInt32(inserted_at)) * 1000 + inserted_ms) - (toInt64(toUInt32(received_at)) * 1000 + received_ms) AS to_queryable
    FROM {{.DB}}.inventory_movements FINAL
    WHERE provider != '' AND toUInt32(received_at) > 0
)
GROUP BY provider;
