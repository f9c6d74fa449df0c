package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/stream"
	"github.com/shopstream/shopstream/internal/testenv"
	"github.com/shopstream/shopstream/topology"
)

// The tables below stand for an order event and its lines: a record's value
// "a=1,b=2" is one row of heads and a row per item of numbers. numbers
// computes a column from the text on the server (DEFAULT toUInt32(text)),
// so an item "p=x" is a row the client sends and ClickHouse refuses for
// what it holds; "p=" (an empty count) is a row the client cannot encode.
const (
	createNumbers = "CREATE TABLE %s.numbers (id String, text String, number UInt32 DEFAULT toUInt32(text)) ENGINE = ReplacingMergeTree ORDER BY id"
	createHeads   = "CREATE TABLE %s.heads (id String, items Int64) ENGINE = ReplacingMergeTree ORDER BY id"
)

type numbers struct{}

func (numbers) Name() string      { return "numbers" }
func (numbers) Columns() []string { return []string{"id", "text"} }
func (numbers) Rows(rec *kgo.Record) ([][]any, error) {
	var rows [][]any
	for _, item := range items(rec) {
		id, text, _ := strings.Cut(item, "=")
		rows = append(rows, []any{id, text})
	}
	return rows, nil
}

type heads struct{}

func (heads) Name() string      { return "heads" }
func (heads) Columns() []string { return []string{"id", "items"} }
func (heads) Rows(rec *kgo.Record) ([][]any, error) {
	if string(rec.Value) == "!" {
		return nil, errors.New("not a list of items")
	}
	// What the client cannot encode: a string for an Int64 column.
	var n any = int64(len(items(rec)))
	if strings.HasSuffix(string(rec.Value), "=") {
		n = "unknown"
	}
	return [][]any{{string(rec.Key), n}}, nil
}

func items(rec *kgo.Record) []string {
	if len(rec.Value) == 0 || string(rec.Value) == "!" {
		return nil
	}
	return strings.Split(string(rec.Value), ",")
}

const testTopic = "t"

func testRoutes(topic string) map[string][]Table {
	return map[string][]Table{topic: {heads{}, numbers{}}}
}

// testDB returns a connection to a fresh database with the given tables.
func testDB(t *testing.T, creates ...string) (driver.Conn, string) {
	t.Helper()
	db := strings.TrimSuffix(testenv.Namespace(t), "_")
	conn := testenv.ClickHouse(t, db)
	for _, c := range creates {
		if err := conn.Exec(context.Background(), fmt.Sprintf(c, db)); err != nil {
			t.Fatal(err)
		}
	}
	return conn, db
}

func records(values ...string) []*kgo.Record {
	recs := make([]*kgo.Record, len(values))
	for i, v := range values {
		recs[i] = &kgo.Record{Topic: testTopic, Partition: 0, Offset: int64(i), Key: []byte("r" + strconv.Itoa(i)), Value: []byte(v)}
	}
	return recs
}

func ids(t *testing.T, conn driver.Conn, db, table string) []string {
	t.Helper()
	rows, err := conn.Query(context.Background(), "SELECT id FROM "+db+"."+table+" FINAL ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		out = append(out, id)
	}
	return out
}

func rejectedOffsets(rejected []stream.Rejection) []int64 {
	var out []int64
	for _, r := range rejected {
		out = append(out, r.Record.Offset)
	}
	return out
}

// One topic feeds two tables, a record becoming one row of one and a row
// per item (or none) of the other.
func TestOneRecordBecomesRowsOfSeveralTables(t *testing.T) {
	conn, db := testDB(t, createNumbers, createHeads)
	rejected, err := newSink(conn, db, testRoutes(testTopic)).HandleBatch(t.Context(), records("a=1,b=2", "", "c=3"))
	if err != nil || len(rejected) != 0 {
		t.Fatalf("rejected %v, err %v", rejected, err)
	}
	if got := ids(t, conn, db, "heads"); !slices.Equal(got, []string{"r0", "r1", "r2"}) {
		t.Errorf("heads %v", got)
	}
	if got := ids(t, conn, db, "numbers"); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("numbers %v", got)
	}
}

// A record with a row ClickHouse can never accept is found by bisecting the
// batch and rejected, permanently and saying why; every other row is in.
func TestRowTheServerRefusesIsRejectedAndTheRestInserted(t *testing.T) {
	conn, db := testDB(t, createNumbers, createHeads)
	values := []string{"a=1", "b=2", "c=3,d=4", "e=5", "f=6,p=x,g=7", "h=8", "i=9", "j=10", "k=11"}
	rejected, err := newSink(conn, db, testRoutes(testTopic)).HandleBatch(t.Context(), records(values...))
	if err != nil {
		t.Fatal(err)
	}
	if got := rejectedOffsets(rejected); !slices.Equal(got, []int64{4}) {
		t.Fatalf("rejected offsets %v, want [4]", got)
	}
	reason := rejected[0].Err
	if !stream.IsPermanent(reason) || !strings.Contains(reason.Error(), "code: 6") ||
		!strings.Contains(reason.Error(), "Cannot parse string 'x' as UInt32") || !strings.Contains(reason.Error(), "numbers") {
		t.Errorf("reason %q (permanent %v): want the table and ClickHouse's CANNOT_PARSE_TEXT", reason, stream.IsPermanent(reason))
	}
	want := []string{"a", "b", "c", "d", "e", "h", "i", "j", "k"}
	if got := ids(t, conn, db, "numbers"); !slices.Equal(got, want) {
		t.Errorf("numbers %v, want %v", got, want)
	}
	// The rejected record's other table took its row: heads holds all nine.
	if got := ids(t, conn, db, "heads"); len(got) != len(values) {
		t.Errorf("heads %v", got)
	}
}

// Failures that are not about the rows are returned, for the loop to retry
// the batch, and nothing is rejected: a table not migrated yet, a view that
// disagrees with its table's types (every row fails alike), a connection
// that is gone.
func TestFailuresNotAboutTheRowsAreReturned(t *testing.T) {
	recs := records("a=1", "b=2")
	t.Run("no table", func(t *testing.T) {
		conn, db := testDB(t, createNumbers)
		rejected, err := newSink(conn, db, testRoutes(testTopic)).HandleBatch(t.Context(), recs)
		if err == nil || len(rejected) != 0 || !strings.Contains(err.Error(), "code: 60") {
			t.Fatalf("rejected %v, err %v; want UNKNOWN_TABLE returned", rejected, err)
		}
	})
	t.Run("view of the wrong type", func(t *testing.T) {
		conn, db := testDB(t, createNumbers, createHeads,
			"CREATE TABLE %[1]s.counted (id String, n Int64) ENGINE = MergeTree ORDER BY id",
			"CREATE MATERIALIZED VIEW %[1]s.count_view TO %[1]s.counted AS SELECT id, toUInt8(items) AS n FROM %[1]s.heads")
		rejected, err := newSink(conn, db, testRoutes(testTopic)).HandleBatch(t.Context(), recs)
		if err == nil || len(rejected) != 0 || !strings.Contains(err.Error(), "code: 53") {
			t.Fatalf("rejected %v, err %v; want TYPE_MISMATCH returned", rejected, err)
		}
	})
	t.Run("connection closed", func(t *testing.T) {
		conn, db := testDB(t, createNumbers, createHeads)
		conn.Close()
		rejected, err := newSink(conn, db, testRoutes(testTopic)).HandleBatch(t.Context(), recs)
		if err == nil || len(rejected) != 0 {
			t.Fatalf("rejected %v, err %v", rejected, err)
		}
	})
}

// A record that cannot become rows, or whose row the client cannot encode,
// is rejected; the others are written. "p=" fails in both tables (the
// server cannot parse an empty count either) and is rejected once.
func TestRecordTheClientCannotWriteIsRejected(t *testing.T) {
	conn, db := testDB(t, createNumbers, createHeads)
	rejected, err := newSink(conn, db, testRoutes(testTopic)).HandleBatch(t.Context(), records("a=1", "!", "b=2", "p=", "c=3"))
	if err != nil {
		t.Fatal(err)
	}
	if got := rejectedOffsets(rejected); !slices.Equal(got, []int64{1, 3}) {
		t.Fatalf("rejected offsets %v, want [1 3]", got)
	}
	for _, r := range rejected {
		if !stream.IsPermanent(r.Err) || !strings.Contains(r.Err.Error(), "heads") {
			t.Errorf("offset %d: reason %q", r.Record.Offset, r.Err)
		}
	}
	if !strings.Contains(rejected[1].Err.Error(), "converting string to Int64") {
		t.Errorf("reason %q: want the client's encoding error", rejected[1].Err)
	}
	if got := ids(t, conn, db, "heads"); !slices.Equal(got, []string{"r0", "r2", "r4"}) {
		t.Errorf("heads %v", got)
	}
	if got := ids(t, conn, db, "numbers"); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("numbers %v", got)
	}
}

// Through the real loop: the poison record lands in the DLQ with its class
// and reason, and the records after it in its partition are written and
// committed; the partition does not stall on it.
func TestPoisonRecordIsDeadLetteredByTheLoop(t *testing.T) {
	conn, db := testDB(t, createNumbers, createHeads)
	prefix := testenv.Namespace(t)
	topic := testenv.Topics(t, prefix).Movements
	cl, err := kgo.NewClient(kgo.SeedBrokers(testenv.Brokers()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// One key: one partition, the poison between the others.
	for _, v := range []string{"a=1", "p=x", "b=2"} {
		if err := cl.ProduceSync(t.Context(), &kgo.Record{Topic: topic, Key: []byte("k"), Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	group := prefix + "sink"
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- stream.Batch(ctx, stream.BatchConfig{Client: stream.ClientConfig{Brokers: testenv.Brokers()}, Group: group,
			Inputs: []string{topic}, Backoff: stream.Backoff{Min: 10 * time.Millisecond}}, newSink(conn, db, testRoutes(topic)))
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	testenv.Eventually(t, 30*time.Second, func() error {
		if got := ids(t, conn, db, "numbers"); !slices.Equal(got, []string{"a", "b"}) {
			return fmt.Errorf("numbers %v", got)
		}
		return nil
	})
	dead := testenv.ReadTopic(t, topology.DLQ(topic), 1)
	if len(dead) != 1 || string(dead[0].Value) != "p=x" {
		t.Fatalf("%d dead letters", len(dead))
	}
	headers := map[string]string{}
	for _, h := range dead[0].Headers {
		headers[h.Key] = string(h.Value)
	}
	if headers[stream.HeaderErrorClass] != stream.ClassPermanent || !strings.Contains(headers[stream.HeaderErrorReason], "code: 6") ||
		headers[stream.HeaderOriginOffset] != "1" {
		t.Errorf("dead letter headers %v", headers)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		offsets, err := testenv.Kafka(t).FetchOffsets(context.Background(), group)
		if err != nil {
			return err
		}
		for _, o := range offsets.Sorted() {
			if o.Topic == topic && o.At == 3 {
				return nil
			}
		}
		return fmt.Errorf("%s has not committed past the poison: %v", group, offsets.Sorted())
	})
}
