-- One row per movement as the inventory processor emitted it. A movement is
-- emitted again, identical, when its delta is redelivered or replayed, so
-- the table replaces rows by (sku, movement_id); read it with FINAL or
-- through inventory_movements_final for exact counts.
CREATE TABLE IF NOT EXISTS {{.DB}}.inventory_movements {{.OnCluster}} (
    movement_id     String,
    sku             String,
    kind            String,
    status          String,
    quantity        Int64,
    stock_after     Int64,
    reason          String,
    order_id        String,
    correlation_id  String,
    occurred_at     DateTime,
    occurred_ms     UInt16,
    applied_at      DateTime,
    applied_ms      UInt16,
    kafka_partition Int32,
    kafka_offset    Int64,
    ingested_at     DateTime DEFAULT now(),
    version         UInt64
) ENGINE = {{replacing "inventory_movements" "version"}}
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (sku, movement_id);
