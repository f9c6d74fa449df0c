// Package clickhouse owns what lands in ClickHouse: the schema (numbered,
// embedded migrations/*.sql, rendered for one server or a cluster from one
// SchemaConfig) and the sink stage, which routes each consumed topic to its
// table. To add a table: a numbered migration, a file beside movements.go
// with its Table, and its topic in routes.go.
//
// The schema keeps to what ClickHouse 18.16 and today's releases both
// accept: native protocol, named INSERT columns, DateTime plus a separate
// millisecond column, no DateTime64, Map, LowCardinality or TTL, and
// ReplacingMergeTree with an explicit version for rows written twice.
package clickhouse

import (
	"context"
	"fmt"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/stream"
)

// Table is one ClickHouse table the sink writes: its name, the columns an
// INSERT names, and how a record becomes a row of them.
type Table interface {
	Name() string
	Columns() []string
	// Row returns rec's values in Columns order, or an error when rec can
	// never be a row (it goes to the DLQ).
	Row(rec *kgo.Record) ([]any, error)
}

// sink writes batches of records to the tables their topics route to. It
// is a stream.BatchHandler: each table's rows of a batch are one INSERT, and
// the loop commits offsets only after every INSERT succeeded. Writing a
// batch twice is harmless: every table replaces rows by their id.
type sink struct {
	conn   driver.Conn
	db     string
	routes map[string]Table
}

// newSink returns a sink into db that writes each topic of routes to its table.
func newSink(conn driver.Conn, db string, routes map[string]Table) *sink {
	return &sink{conn: conn, db: db, routes: routes}
}

// HandleBatch implements stream.BatchHandler. Records that cannot become
// rows are rejected; a failed insert is returned for the loop to retry.
func (s *sink) HandleBatch(ctx context.Context, recs []*kgo.Record) ([]stream.Rejection, error) {
	var rejected []stream.Rejection
	byTable := map[Table][]*kgo.Record{}
	var order []Table
	for _, rec := range recs {
		t, ok := s.routes[rec.Topic]
		if !ok {
			rejected = append(rejected, stream.Rejection{Record: rec, Err: fmt.Errorf("clickhouse: no table for topic %q", rec.Topic)})
			continue
		}
		if _, seen := byTable[t]; !seen {
			order = append(order, t)
		}
		byTable[t] = append(byTable[t], rec)
	}
	for _, t := range order {
		r, err := s.insert(ctx, t, byTable[t])
		if err != nil {
			return nil, err
		}
		rejected = append(rejected, r...)
	}
	return rejected, nil
}

func (s *sink) insert(ctx context.Context, t Table, recs []*kgo.Record) ([]stream.Rejection, error) {
	batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+s.db+"."+t.Name()+" ("+strings.Join(t.Columns(), ", ")+")")
	if err != nil {
		return nil, fmt.Errorf("clickhouse: prepare insert into %s: %w", t.Name(), err)
	}
	defer batch.Close()
	var rejected []stream.Rejection
	for _, rec := range recs {
		row, err := t.Row(rec)
		if err != nil {
			rejected = append(rejected, stream.Rejection{Record: rec, Err: err})
			continue
		}
		if err := batch.Append(row...); err != nil {
			return nil, fmt.Errorf("clickhouse: append to %s (partition %d offset %d): %w", t.Name(), rec.Partition, rec.Offset, err)
		}
	}
	if batch.Rows() == 0 {
		return rejected, batch.Abort()
	}
	if err := batch.Send(); err != nil {
		return nil, fmt.Errorf("clickhouse: insert %d rows into %s: %w", batch.Rows(), t.Name(), err)
	}
	return rejected, nil
}
