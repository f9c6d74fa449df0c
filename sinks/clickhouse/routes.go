package clickhouse

import (
	"math"
	"time"

	"github.com/shopstream/shopstream/topology"
)

// routes is which tables each topic the sink consumes lands in.
func routes(t topology.Names) map[string][]Table {
	r := map[string][]Table{
		t.Movements: {movements{}},
		t.Outcomes:  {receipts{}},
		t.Applied:   {orderEvents{}, orderLines{}},
		t.Drift:     {drift{}},
		t.Metrics:   {pipelineMetrics{}},
	}
	// Every stage's dead letters, read by their headers alone.
	for _, topic := range []string{t.WebhooksRaw, t.Orders, t.Deltas, t.Movements, t.Snapshots, t.Outcomes, t.Applied, t.Drift, t.Metrics} {
		r[topology.DLQ(topic)] = []Table{deadLetters{}}
	}
	return r
}

// millis is the millisecond part of t, for the separate millisecond column
// beside a DateTime (seconds) that ClickHouse 18.16 needs.
func millis(t time.Time) uint16 { return uint16(t.Nanosecond() / 1e6) }

// inserted is when a row is inserted (as its INSERT is built) and the
// version that makes the first insert of a row the one that stays: every
// table replaces rows by id keeping the highest version, and a row written
// again by a redelivery or a replay is the same row with a later insert
// time, which must not replace the first one's, or a replay would move
// every latency measured to it.
func inserted() (at time.Time, ms uint16, version uint64) {
	now := time.Now().UTC().Truncate(time.Millisecond)
	return now, millis(now), math.MaxUint64 - uint64(now.UnixMilli())
}

// epoch keeps a time ClickHouse's DateTime can hold: the zero time of a
// field written before it existed, or left unset, is the Unix epoch.
func epoch(t time.Time) time.Time {
	if t.Before(time.Unix(0, 0)) {
		return time.Unix(0, 0).UTC()
	}
	return t
}
