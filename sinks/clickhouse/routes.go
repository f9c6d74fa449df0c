package clickhouse

import (
	"time"

	"github.com/shopstream/shopstream/topology"
)

// routes is which tables each topic the sink consumes lands in.
func routes(t topology.Names) map[string][]Table {
	return map[string][]Table{
		t.Movements: {movements{}},
	}
}

// millis is the millisecond part of t, for the separate millisecond column
// beside a DateTime (seconds) that ClickHouse 18.16 needs.
func millis(t time.Time) uint16 { return uint16(t.Nanosecond() / 1e6) }
