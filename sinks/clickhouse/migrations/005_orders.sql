-- Every order event as the orders stage decided it, and its lines. A
-- replay writes the same decision again (the stage keeps the first one), so
-- the tables replace rows by event and line; the first insert stands.
CREATE TABLE IF NOT EXISTS {{.DB}}.order_events {{.OnCluster}} (
    event_id         String,
    order_id         String,
    provider         String,
    event_type       String,
    provider_version Int64,
    status_after     String,
    transition       String,
    stale            UInt8,
    currency         String,
    customer_hash    String,
    lines            UInt32,
    units            Int64,
    amount_minor     Int64,
    occurred_at      DateTime,
    occurred_ms      UInt16,
    received_at      DateTime,
    received_ms      UInt16,
    applied_at       DateTime,
    applied_ms       UInt16,
    correlation_id   String,
    inserted_at      DateTime,
    inserted_ms      UInt16,
    version          UInt64
) ENGINE = {{replacing "order_events" "version"}}
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (provider, order_id, event_id);

CREATE TABLE IF NOT EXISTS {{.DB}}.order_lines {{.OnCluster}} (
    event_id         String,
    order_id         String,
    provider         String,
    event_type       String,
    status_after     String,
    transition       String,
    line_id          String,
    sku              String,
    quantity         Int64,
    unit_price_minor Int64,
    currency         String,
    customer_hash    String,
    occurred_at      DateTime,
    occurred_ms      UInt16,
    inserted_at      DateTime,
    inserted_ms      UInt16,
    version          UInt64
) ENGINE = {{replacing "order_lines" "version"}}
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (provider, order_id, event_id, line_id);
