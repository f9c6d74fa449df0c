-- What latency per provider needs of a movement, and the units reserved
-- once it applied (reservations). For latency: the provider, when ingest
-- received the webhook, and when the sink inserted the row. A row written
-- again (a redelivery, a replay) keeps its first insert: the version is
-- now 2^64-1 less the insert time in ms, and the highest version wins. Rows
-- from before this migration have the epoch in the new columns.
ALTER TABLE {{.DB}}.inventory_movements {{.OnCluster}}
    ADD COLUMN provider String DEFAULT '',
    ADD COLUMN received_at DateTime DEFAULT toDateTime(0),
    ADD COLUMN received_ms UInt16 DEFAULT 0,
    ADD COLUMN inserted_at DateTime DEFAULT toDateTime(0),
    ADD COLUMN inserted_ms UInt16 DEFAULT 0,
    ADD COLUMN reserved_after Int64 DEFAULT 0;
