-- Views analysts query; each reads the deduplicated movements.
CREATE VIEW IF NOT EXISTS {{.DB}}.inventory_movements_final {{.OnCluster}} AS
SELECT * FROM {{.DB}}.inventory_movements FINAL;

CREATE VIEW IF NOT EXISTS {{.DB}}.sales_per_sku_minute {{.OnCluster}} AS
SELECT
    sku,
    toStartOfMinute(occurred_at) AS minute,
    -sum(quantity) AS units_sold,
    uniqExact(order_id) AS orders
FROM {{.DB}}.inventory_movements FINAL
WHERE kind = 'SALE' AND status = 'APPLIED'
GROUP BY sku, minute;

CREATE VIEW IF NOT EXISTS {{.DB}}.refused_per_sku_minute {{.OnCluster}} AS
SELECT
    sku,
    toStartOfMinute(occurred_at) AS minute,
    reason,
    count() AS refused,
    -sum(quantity) AS units_refused
FROM {{.DB}}.inventory_movements FINAL
WHERE status = 'REFUSED'
GROUP BY sku, minute, reason;
