package clickhouse

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/stream"
	"github.com/shopstream/shopstream/topology"
)

// createColumns returns the columns of table as its migrations create them,
// less those created with a DEFAULT, which an INSERT leaves to the server,
// and with those a later migration adds (their DEFAULT is for the rows
// already there; the sink writes them).
func createColumns(t *testing.T, table string) []string {
	t.Helper()
	ms, err := Migrations(SchemaConfig{})
	if err != nil {
		t.Fatal(err)
	}
	create := regexp.MustCompile(`(?s)CREATE TABLE IF NOT EXISTS \S+\.` + table + `\s.*?\((.*)\)\s*ENGINE`)
	alter := regexp.MustCompile(`(?s)^ALTER TABLE \S+\.` + table + `\s`)
	added := regexp.MustCompile(`ADD COLUMN (\S+)`)
	var cols []string
	created := false
	for _, m := range ms {
		for _, stmt := range m.Statements {
			if found := create.FindStringSubmatch(stmt); found != nil {
				created = true
				for _, line := range strings.Split(found[1], "\n") {
					f := strings.Fields(strings.TrimSuffix(strings.TrimSpace(line), ","))
					if len(f) >= 2 && !slices.Contains(f, "DEFAULT") {
						cols = append(cols, f[0])
					}
				}
			}
			if alter.MatchString(stmt) {
				for _, a := range added.FindAllStringSubmatch(stmt, -1) {
					cols = append(cols, a[1])
				}
			}
		}
	}
	if !created {
		t.Fatalf("no migration creates %s", table)
	}
	return cols
}

// Every routed table names exactly the columns its migration creates, in
// any order, so an INSERT can neither miss a column nor name one that is
// not there.
func TestEveryTableMatchesItsMigration(t *testing.T) {
	for topic, tables := range routes(topology.NamesFor("")) {
		for _, table := range tables {
			want := createColumns(t, table.Name())
			got := slices.Clone(table.Columns())
			slices.Sort(want)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("%s (from %s): columns %v, migration %v", table.Name(), topic, got, want)
			}
		}
	}
}

// A record of a topic that routes nowhere is rejected, not dropped.
func TestUnroutedTopicIsRejected(t *testing.T) {
	s := newSink(nil, "db", routes(topology.NamesFor("")))
	rec := &kgo.Record{Topic: "elsewhere", Value: []byte("x")}
	rejected, err := s.HandleBatch(t.Context(), []*kgo.Record{rec})
	if err != nil || len(rejected) != 1 || rejected[0].Record != rec {
		t.Fatalf("rejected %v, err %v", rejected, err)
	}
}

// A ClickHouse that does not answer is tried again, with backoff, until the
// stage is stopped: the sink waits rather than fails, so it never takes the
// stages beside it down.
func TestConnectRetriesUntilStopped(t *testing.T) {
	var logs bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	conn, err := ServerConfig{Addr: "127.0.0.1:1"}.Connect(ctx, stream.Backoff{Min: 10 * time.Millisecond, Max: 20 * time.Millisecond},
		slog.New(slog.NewTextHandler(&logs, nil)))
	if conn != nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("conn %v, err %v; want none and the context's error", conn, err)
	}
	if n := strings.Count(logs.String(), "clickhouse not reachable; retrying"); n < 3 {
		t.Fatalf("%d attempts logged, want several:\n%s", n, logs.String())
	}
}
