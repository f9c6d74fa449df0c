// Package clickhouse owns what lands in ClickHouse: the schema (numbered,
// embedded migrations/*.sql, rendered for one server or a cluster from one
// SchemaConfig) and the sink stage, which routes each consumed topic to its
// tables, a record becoming any number of rows of each. To add a table: a
// numbered migration, a file beside movements.go with its Table, and the
// Table under its topic in routes.go.
//
// The schema keeps to what ClickHouse 18.16 and today's releases both
// accept: native protocol, named INSERT columns, DateTime plus a separate
// millisecond column, no DateTime64, Map, LowCardinality or TTL, and
// ReplacingMergeTree with an explicit version for rows written twice.
package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/stream"
)

// Table is one ClickHouse table the sink writes: its name, the columns an
// INSERT names, and how a record becomes rows of them.
type Table interface {
	Name() string
	Columns() []string
	// Rows returns rec's rows, each in Columns order: none when rec has
	// nothing for this table, several when it holds a list (an order's
	// lines). An error means rec can never be rows here; it goes to the DLQ.
	Rows(rec *kgo.Record) ([][]any, error)
}

// sink writes batches of records to the tables their topics route to. It
// is a stream.BatchHandler: each table's rows of a batch are one INSERT, and
// the loop commits offsets only after every INSERT succeeded. Writing a
// batch twice is harmless: every table replaces rows by their id.
type sink struct {
	conn   driver.Conn
	db     string
	routes map[string][]Table
}

// newSink returns a sink into db that writes each topic of routes to its tables.
func newSink(conn driver.Conn, db string, routes map[string][]Table) *sink {
	return &sink{conn: conn, db: db, routes: routes}
}

// pending is a record and its rows for one table.
type pending struct {
	rec  *kgo.Record
	rows [][]any
}

// HandleBatch implements stream.BatchHandler. A record that cannot become
// rows, or whose rows ClickHouse refuses for what they hold, is rejected;
// any other failure is returned for the loop to retry the whole batch.
//
// A record may be rejected by one table and written to another: its DLQ
// entry is what to fix and replay, and a replay writes again only what the
// tables replace.
func (s *sink) HandleBatch(ctx context.Context, recs []*kgo.Record) ([]stream.Rejection, error) {
	var rj rejections
	type tableRows struct {
		t     Table
		items []pending
	}
	var tables []tableRows
	index := map[string]int{}
	for _, rec := range recs {
		ts, ok := s.routes[rec.Topic]
		if !ok {
			rj.add(rec, fmt.Errorf("clickhouse: no table for topic %q", rec.Topic))
			continue
		}
		for _, t := range ts {
			rows, err := t.Rows(rec)
			if err != nil {
				rj.add(rec, fmt.Errorf("clickhouse: %s: %w", t.Name(), err))
				continue
			}
			if len(rows) == 0 {
				continue
			}
			i, seen := index[t.Name()]
			if !seen {
				i = len(tables)
				index[t.Name()] = i
				tables = append(tables, tableRows{t: t})
			}
			tables[i].items = append(tables[i].items, pending{rec, rows})
		}
	}
	// The tables' INSERTs go at once, each on a connection of its own: a
	// batch holds rows of several tables (a movement, a receipt, an order
	// event and its lines), and one after another their round trips added
	// up, at 1,000 webhooks/s, to more than the linger between batches.
	// A record two tables reject is rejected once, with the reason of the
	// table written first in the batch.
	tableRejections := make([]rejections, len(tables))
	errs := make([]error, len(tables))
	var wg sync.WaitGroup
	for i, tr := range tables {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.insert(ctx, tr.t, tr.items, &tableRejections[i])
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, r := range tableRejections {
		for _, x := range r.list {
			rj.add(x.Record, errors.Unwrap(x.Err))
		}
	}
	return rj.list, nil
}

// rejections keeps one rejection per record, the first reason found: a
// record no table can decode would otherwise go to the DLQ once per table.
type rejections struct {
	list []stream.Rejection
	seen map[*kgo.Record]bool
}

func (r *rejections) add(rec *kgo.Record, err error) {
	if r.seen[rec] {
		return
	}
	if r.seen == nil {
		r.seen = map[*kgo.Record]bool{}
	}
	r.seen[rec] = true
	r.list = append(r.list, stream.Rejection{Record: rec, Err: stream.Permanent(err)})
}

// insert writes items into t. A record whose row the client cannot encode
// is rejected and the INSERT made again without it. When ClickHouse refuses
// the INSERT for the data in it (dataError), the items are split in halves
// and each half inserted on its own, down to the lone records that fail,
// which are rejected; so one bad row costs about 2·log2(len(items)) INSERTs
// and every other row is written. A half may be written before a later one
// fails for another reason and the whole batch is retried: its rows are
// then inserted twice, which the replacing tables absorb. So are the rows
// a failed INSERT left in the table (ClickHouse writes the table before the
// views that may then throw).
func (s *sink) insert(ctx context.Context, t Table, items []pending, rj *rejections) error {
	for len(items) > 0 {
		bad, err := s.send(ctx, t, items)
		switch {
		case bad >= 0:
			rec := items[bad].rec
			rj.add(rec, fmt.Errorf("clickhouse: a row for %s (partition %d offset %d): %w", t.Name(), rec.Partition, rec.Offset, err))
			items = slices.Delete(items, bad, bad+1)
		case err == nil:
			return nil
		case !dataError(err):
			return err
		case len(items) == 1:
			rj.add(items[0].rec, err)
			return nil
		default:
			mid := len(items) / 2
			if err := s.insert(ctx, t, items[:mid], rj); err != nil {
				return err
			}
			return s.insert(ctx, t, items[mid:], rj)
		}
	}
	return nil
}

// send writes items' rows into t in one INSERT. When the client cannot
// encode a row (a value of the wrong type), nothing is sent and bad is the
// index of its item; otherwise bad is -1.
func (s *sink) send(ctx context.Context, t Table, items []pending) (bad int, err error) {
	batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+s.db+"."+t.Name()+" ("+strings.Join(t.Columns(), ", ")+")")
	if err != nil {
		return -1, fmt.Errorf("clickhouse: prepare insert into %s: %w", t.Name(), err)
	}
	// A failed Append leaves the batch unusable (clickhouse-go releases its
	// connection), hence a new INSERT without the item.
	defer batch.Close()
	for i, it := range items {
		for _, row := range it.rows {
			if err := batch.Append(row...); err != nil {
				return i, err
			}
		}
	}
	if err := batch.Send(); err != nil {
		return -1, fmt.Errorf("clickhouse: insert %d rows into %s: %w", batch.Rows(), t.Name(), err)
	}
	return -1, nil
}

// dataError reports whether err is ClickHouse refusing an INSERT for values
// in its rows, which inserting them again cannot fix. These are the codes
// that evaluating a row raises: a DEFAULT or MATERIALIZED expression, a
// materialized view or a constraint that parses, converts, divides or
// checks a value. Every other failure is taken as transient and retried:
// the network, a server down or overloaded (MEMORY_LIMIT_EXCEEDED,
// TOO_MANY_PARTS, TIMEOUT_EXCEEDED), and a schema not yet migrated
// (UNKNOWN_TABLE, NO_SUCH_COLUMN_IN_TABLE), which fails every row alike.
// So does TYPE_MISMATCH (53): over the native protocol a column's type is
// the block's, not a row's, so it names a schema that disagrees with the
// code or a view (every row fails, and bisecting would dead-letter them all).
func dataError(err error) bool {
	var ex *clickhouse.Exception
	if !errors.As(err, &ex) {
		return false
	}
	switch ex.Code {
	case 6, // CANNOT_PARSE_TEXT
		25,  // CANNOT_PARSE_ESCAPE_SEQUENCE
		26,  // CANNOT_PARSE_QUOTED_STRING
		27,  // CANNOT_PARSE_INPUT_ASSERTION_FAILED
		32,  // ATTEMPT_TO_READ_AFTER_EOF: parsing a value too short, toUInt32(''); a client that breaks off never hears it
		38,  // CANNOT_PARSE_DATE
		41,  // CANNOT_PARSE_DATETIME
		69,  // ARGUMENT_OUT_OF_BOUND
		70,  // CANNOT_CONVERT_TYPE
		72,  // CANNOT_PARSE_NUMBER
		117, // INCORRECT_DATA
		128, // TOO_LARGE_ARRAY_SIZE
		131, // TOO_LARGE_STRING_SIZE
		153, // ILLEGAL_DIVISION
		190, // SIZES_OF_ARRAYS_DOESNT_MATCH
		321, // VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
		349, // CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
		376, // CANNOT_PARSE_UUID
		395, // FUNCTION_THROW_IF_VALUE_IS_NON_ZERO: a view's throwIf checks a value
		407, // DECIMAL_OVERFLOW
		441, // CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING
		467, // CANNOT_PARSE_BOOL
		469: // VIOLATED_CONSTRAINT
		return true
	}
	return false
}
