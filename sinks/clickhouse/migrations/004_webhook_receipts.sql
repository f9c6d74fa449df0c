-- What became of every webhook request: the deliveries stage's accepted
-- first copies and dropped duplicates, and the edge's own refusals and
-- duplicates. No body, no secret, no personal data. Replaced by outcome_id,
-- which a replay writes again identically; the first insert stands.
CREATE TABLE IF NOT EXISTS {{.DB}}.webhook_receipts {{.OnCluster}} (
    outcome_id     String,
    provider       String,
    delivery_id    String,
    event_type     String,
    outcome        String,
    reason         String,
    status         UInt16,
    size           UInt64,
    received_at    DateTime,
    received_ms    UInt16,
    correlation_id String,
    inserted_at    DateTime,
    inserted_ms    UInt16,
    version        UInt64
) ENGINE = {{replacing "webhook_receipts" "version"}}
PARTITION BY toYYYYMM(received_at)
ORDER BY (provider, outcome_id);
