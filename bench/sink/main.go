// Command sink measures the ClickHouse sink stage on the real stack beside
// two baselines from the same run, on the same rows:
//
//   - raw: the rows, decoded beforehand and held in memory, inserted from Go
//     with clickhouse-go's PrepareBatch in batches of the sink's size, one
//     after another on one connection: what the server takes from a client
//     that does nothing else.
//   - sink: the stage itself (sinks/clickhouse Run, a fresh group and a
//     freshly migrated database) over a filled movements topic, from its
//     start until the table holds every row; and from its first rows in
//     the table, which leaves out connecting and joining its group (from
//     0.3s to 5.5s here), as the raw insert's clock starts with a
//     connection open.
//   - kafka engine: ClickHouse's own Kafka table engine reading the same
//     rows as JSONEachRow from a topic of as many partitions, through a
//     materialized view into a copy of the table, from the Kafka table's
//     creation until the copy holds every row.
//
// Raw and sink run in turn, pair by pair, each pair into a database of its
// own; the median of the pairs' ratios holds when the machine's speed
// drifts between runs. The engine runs once, after them. Every table is
// then checked to hold the same rows as the sink's (a checksum of every
// column but the insert time), so the figures compare like with like. It
// prints a line per pair, then one per figure and one of ratios, e.g.
//
//	sink/raw 0.71 from the stage's start (median of the pairs' ratios: 0.71 0.77 0.60), 0.85 from its first row (0.84 0.85 0.90), sink/kafka-engine 2.35 (the median sink's)
//
// `make bench` runs it (bench/run.sh); it needs `make up`. Traffic goes to
// loopback only, and every loop is bounded by -n.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/stream"
	"github.com/shopstream/shopstream/schemas/avro"
	"github.com/shopstream/shopstream/sinks/clickhouse"
	"github.com/shopstream/shopstream/topology"
)

func main() {
	var (
		n         = flag.Int("n", 200000, "movements to fill the topics with")
		skus      = flag.Int("skus", 10000, "distinct SKUs")
		batch     = flag.Int("batch", clickhouse.DefaultMaxRecords, "rows in one INSERT, of the sink and of the raw insert")
		pairs     = flag.Int("pairs", 3, "raw and sink runs, in turn")
		consumers = flag.Int("kafka-consumers", 1, "kafka_num_consumers of the Kafka engine table")
		prof      = flag.String("cpuprofile", "", "write a CPU profile of the sink's runs to this file")
		inFlight  = flag.Int("in-flight", stream.DefaultBatchInFlight, "batches the sink writes at once")
	)
	flag.Parse()
	if err := run(*n, *skus, *batch, *pairs, *consumers, *inFlight, *prof); err != nil {
		fmt.Fprintln(os.Stderr, "sink bench:", err)
		os.Exit(1)
	}
}

func env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// columns are the sink's columns of inventory_movements, in the order
// readRows gives them.
var columns = []string{"movement_id", "sku", "kind", "status", "quantity", "stock_after", "reason", "order_id",
	"correlation_id", "occurred_at", "occurred_ms", "applied_at", "applied_ms", "kafka_partition", "kafka_offset",
	"provider", "received_at", "received_ms", "inserted_at", "inserted_ms", "version"}

// checked are the columns sameRows compares: all but those that say when
// the row was inserted (the version among them), which differ by design.
var checked = slices.DeleteFunc(slices.Clone(columns), func(c string) bool {
	return c == "inserted_at" || c == "inserted_ms" || c == "version"
})

func run(n, skus, batch, pairs, consumers, inFlight int, prof string) error {
	if pairs < 1 {
		return errors.New("-pairs: at least 1")
	}
	ctx := context.Background()
	brokers := strings.Split(env("SHOPSTREAM_KAFKA_BROKERS", "127.0.0.1:9092"), ",")
	chAddr := env("SHOPSTREAM_CLICKHOUSE_ADDR", "127.0.0.1:9000")
	prefix := fmt.Sprintf("bench_sink_%d_", time.Now().UnixNano()%1e9)
	names := topology.NamesFor(prefix)
	jsonTopic := names.Movements + ".json"
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	client := stream.ClientConfig{Brokers: brokers, ClientID: "shopstream-bench", Logger: log}

	kcl, err := kgo.NewClient(client.Options()...)
	if err != nil {
		return err
	}
	defer kcl.Close()
	adm := kadm.NewClient(kcl)
	topics := topology.Topics(topology.Options{Prefix: prefix, ReplicationFactor: 1})
	plan, err := topology.Plan(ctx, adm, topics)
	if err == nil {
		err = topology.Apply(ctx, adm, plan)
	}
	if err == nil {
		_, err = adm.CreateTopic(ctx, topology.DefaultPartitions, 1, nil, jsonTopic)
	}
	if err != nil {
		return fmt.Errorf("topics: %w", err)
	}
	defer func() {
		all := []string{jsonTopic}
		for _, t := range topics {
			all = append(all, t.Name)
		}
		_, _ = adm.DeleteTopics(context.Background(), all...)
	}()

	conn, err := clickhouse.ServerConfig{Addr: chAddr}.Open(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	dbs := make([]string, pairs)
	for i := range dbs {
		dbs[i] = prefix + "pair" + strconv.Itoa(i+1)
		// Dropping the first database stops the Kafka engine's consumers
		// before the topics go.
		defer func() { _ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+dbs[i]) }()
		if _, err := clickhouse.Migrate(ctx, conn, clickhouse.SchemaConfig{DB: dbs[i]}); err != nil {
			return err
		}
		if err := conn.Exec(ctx, "CREATE TABLE "+dbs[i]+".raw_movements AS "+dbs[i]+".inventory_movements"); err != nil {
			return err
		}
	}

	if err := fill(ctx, client, names.Movements, n, skus); err != nil {
		return fmt.Errorf("fill %s: %w", names.Movements, err)
	}
	rows, err := readRows(ctx, brokers, names.Movements, n)
	if err != nil {
		return err
	}
	if err := produce(ctx, client, jsonRecords(jsonTopic, rows)); err != nil {
		return fmt.Errorf("fill %s: %w", jsonTopic, err)
	}

	if prof != "" {
		f, err := os.Create(prof)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	var raws, sinks, ratios, steadyRatios []float64
	for i, db := range dbs {
		if err := quiesce(ctx, conn); err != nil {
			return err
		}
		rawT, err := raw(ctx, conn, db+".raw_movements", rows, batch)
		if err != nil {
			return fmt.Errorf("raw insert: %w", err)
		}
		if err := quiesce(ctx, conn); err != nil {
			return err
		}
		sinkT, err := sink(ctx, conn, clickhouse.Config{
			Server: clickhouse.ServerConfig{Addr: chAddr, Schema: clickhouse.SchemaConfig{DB: db}},
			Stream: stream.BatchConfig{Client: client, Group: db + "_sink", MaxRecords: batch, Linger: clickhouse.DefaultLinger, InFlight: inFlight},
			Topics: names, Logger: log,
		}, n)
		if err != nil {
			return fmt.Errorf("sink: %w", err)
		}
		if err := sameRows(ctx, conn, db+".inventory_movements", db+".raw_movements"); err != nil {
			return err
		}
		fmt.Printf("pair %d: raw insert %s; sink %s; ratio %.2f, %.2f from its first row\n", i+1, rawT, sinkT,
			sinkT.rate()/rawT.rate(), sinkT.steady()/rawT.rate())
		raws, sinks = append(raws, rawT.rate()), append(sinks, sinkT.rate())
		ratios, steadyRatios = append(ratios, sinkT.rate()/rawT.rate()), append(steadyRatios, sinkT.steady()/rawT.rate())
	}
	fmt.Printf("raw insert: %.0f rows/s (median of %d; %d rows, INSERTs of %d rows, one after another on one connection, decoded beforehand)\n",
		median(raws), pairs, n, batch)
	fmt.Printf("sink: %.0f rows/s (median of %d; %d rows from the stage's start, batches of %d, linger %v, %d in flight)\n",
		median(sinks), pairs, n, batch, clickhouse.DefaultLinger, inFlight)

	if err := quiesce(ctx, conn); err != nil {
		return err
	}
	line := fmt.Sprintf("sink/raw %.2f from the stage's start (median of the pairs' ratios:%s), %.2f from its first row (%s)",
		median(ratios), list(ratios), median(steadyRatios), strings.TrimSpace(list(steadyRatios)))
	engineT, err := kafkaEngine(ctx, conn, dbs[0], brokers, prefix+"kafka_engine", jsonTopic, consumers, n)
	if err == nil {
		err = sameRows(ctx, conn, dbs[0]+".inventory_movements", dbs[0]+".kafka_movements")
	}
	if err != nil {
		fmt.Printf("kafka engine: failed: %v\n", err)
	} else {
		fmt.Printf("kafka engine: %s (JSONEachRow, %d consumer(s), from the Kafka table's creation)\n", engineT, consumers)
		line += fmt.Sprintf(", sink/kafka-engine %.2f (the median sink's)", median(sinks)/engineT.rate())
	}
	fmt.Println(line)
	return nil
}

// fill produces n movements to topic, keyed by SKU as the inventory stage
// produces them: sales of one unit, one in ten refused.
func fill(ctx context.Context, client stream.ClientConfig, topic string, n, skus int) error {
	r := rand.New(rand.NewPCG(1, 2))
	at := time.Now().UTC().Truncate(time.Millisecond)
	recs := make([]*kgo.Record, n)
	for i := range recs {
		occurred := at.Add(time.Duration(i) * time.Millisecond)
		m := avro.InventoryMovement{MovementID: "o-" + strconv.Itoa(i) + ":1:sale", SKU: "SKU-" + strconv.Itoa(r.IntN(skus)),
			Kind: avro.DeltaSale, Status: avro.MovementApplied, Quantity: -1, StockAfter: int64(r.IntN(100)),
			OrderID: "o-" + strconv.Itoa(i), CorrelationID: "c-" + strconv.Itoa(i), OccurredAt: occurred, AppliedAt: occurred.Add(40 * time.Millisecond),
			Provider: "shopify", ReceivedAt: occurred.Add(-15 * time.Millisecond)}
		if i%10 == 9 {
			m.Status, m.Reason, m.Quantity = avro.MovementRefused, "insufficient_stock", -5
		}
		v, err := avro.Default().Marshal(&m)
		if err != nil {
			return err
		}
		recs[i] = &kgo.Record{Topic: topic, Key: []byte(m.SKU), Value: v}
	}
	return produce(ctx, client, recs)
}

func produce(ctx context.Context, client stream.ClientConfig, recs []*kgo.Record) error {
	cl, err := client.Producer(30 * time.Second)
	if err != nil {
		return err
	}
	defer cl.Close()
	return cl.ProduceSync(ctx, recs...).FirstErr()
}

// readRows reads topic's n records back and decodes each into the row the
// sink writes for it, as sinks/clickhouse's movements.Rows does, inserted
// now.
func readRows(ctx context.Context, brokers []string, topic string, n int) ([][]any, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	rows := make([][]any, 0, n)
	deadline := time.Now().Add(5 * time.Minute)
	for len(rows) < n {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("read %d of %d records of %s", len(rows), n, topic)
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fetches := cl.PollFetches(pctx)
		cancel()
		for _, rec := range fetches.Records() {
			var m avro.InventoryMovement
			if err := avro.Default().Unmarshal(rec.Value, &m); err != nil {
				return nil, err
			}
			now := time.Now().UTC().Truncate(time.Millisecond)
			rows = append(rows, []any{m.MovementID, m.SKU, m.Kind, m.Status, m.Quantity, m.StockAfter, m.Reason,
				m.OrderID, m.CorrelationID, m.OccurredAt, millis(m.OccurredAt), m.AppliedAt, millis(m.AppliedAt),
				rec.Partition, rec.Offset, m.Provider, m.ReceivedAt, millis(m.ReceivedAt), now, millis(now), math.MaxUint64 - uint64(now.UnixMilli())})
		}
	}
	return rows, nil
}

func millis(t time.Time) uint16 { return uint16(t.Nanosecond() / 1e6) }

// jsonRecords returns rows as JSONEachRow records of topic, a row a record,
// keyed as the movements are; DateTime columns as Unix seconds, which 18.16
// parses.
func jsonRecords(topic string, rows [][]any) []*kgo.Record {
	recs := make([]*kgo.Record, len(rows))
	for i, row := range rows {
		obj := make(map[string]any, len(columns))
		for j, c := range columns {
			v := row[j]
			if t, ok := v.(time.Time); ok {
				v = t.Unix()
			}
			obj[c] = v
		}
		v, _ := json.Marshal(obj) // strings, numbers and times only: it cannot fail
		recs[i] = &kgo.Record{Topic: topic, Key: []byte(row[1].(string)), Value: v}
	}
	return recs
}

// timing is a run's rows and time; for a consumer, also when its first
// rows were in and how many (atFirst).
type timing struct {
	n, atFirst   int
	total, first time.Duration
}

func (t timing) rate() float64 { return float64(t.n) / t.total.Seconds() }

// steady is the rate once the first rows were in: a consumer's own start
// (its connection, joining its group, the first fetch) left out, as the
// raw insert's clock starts with its connection open. A run whose first
// look found every row has no such rate, and is its whole run's.
func (t timing) steady() float64 {
	if t.first == 0 || t.atFirst >= t.n {
		return t.rate()
	}
	return float64(t.n-t.atFirst) / (t.total - t.first).Seconds()
}

func (t timing) String() string {
	s := fmt.Sprintf("%.0f rows/s (%.2fs", t.rate(), t.total.Seconds())
	if t.first > 0 {
		s += fmt.Sprintf("; first row after %.2fs", t.first.Seconds())
		if t.atFirst < t.n {
			s += fmt.Sprintf(", %.0f rows/s from then", t.steady())
		}
	}
	return s + ")"
}

// raw inserts rows into table in batches of batch rows.
func raw(ctx context.Context, conn driver.Conn, table string, rows [][]any, batch int) (timing, error) {
	query := "INSERT INTO " + table + " (" + strings.Join(columns, ", ") + ")"
	t := timing{n: len(rows)}
	start := time.Now()
	for chunk := range slices.Chunk(rows, batch) {
		b, err := conn.PrepareBatch(ctx, query)
		if err != nil {
			return t, err
		}
		for _, row := range chunk {
			if err := b.Append(row...); err != nil {
				return t, err
			}
		}
		if err := b.Send(); err != nil {
			return t, err
		}
	}
	t.total = time.Since(start)
	return t, nil
}

// sink runs the sink stage until its table holds n rows. Its group joins in
// a few tens of milliseconds here: the start is mostly the first batch.
func sink(ctx context.Context, conn driver.Conn, cfg clickhouse.Config, n int) (timing, error) {
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- clickhouse.Run(sctx, cfg) }()
	first, atFirst, err := await(ctx, conn, cfg.Server.Schema.DB+".inventory_movements", n, start, done)
	t := timing{n: n, atFirst: atFirst, total: time.Since(start), first: first}
	stop()
	if runErr := <-done; err == nil && runErr != nil {
		err = runErr
	}
	return t, err
}

// kafkaEngine reads topic with ClickHouse's Kafka engine into
// db.kafka_movements, from the Kafka table's creation until it holds n rows.
//
// The group's offsets are committed at the start beforehand: the engine's
// librdkafka resets a group without offsets to the end of the topic, and
// only the server's config could say otherwise. The engine reads until a
// poll of 500ms finds nothing or stream_flush_interval_ms (7.5s) has passed,
// and only then inserts what it read, in one block, and commits: so its
// first row is in when all are, and its figure includes that last poll.
func kafkaEngine(ctx context.Context, conn driver.Conn, db string, brokers []string, group, topic string, consumers, n int) (timing, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return timing{}, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err == nil {
		err = adm.CommitAllOffsets(ctx, group, starts.Offsets())
	}
	if err != nil {
		return timing{}, fmt.Errorf("commit the engine's start offsets: %w", err)
	}
	if err := conn.Exec(ctx, "CREATE TABLE "+db+".kafka_movements AS "+db+".inventory_movements"); err != nil {
		return timing{}, err
	}
	// The Kafka table has the sink's columns, of the target's own types so
	// that the view converts nothing; the view gives every other column its
	// DEFAULT, which 18.16 does not fill in for a view's target.
	var defs, selects []string
	rows, err := conn.Query(ctx, "SELECT name, type, default_kind, default_expression FROM system.columns "+
		"WHERE database = ? AND table = 'kafka_movements'", db)
	if err != nil {
		return timing{}, err
	}
	for rows.Next() {
		var name, typ, kind, expr string
		if err := rows.Scan(&name, &typ, &kind, &expr); err != nil {
			rows.Close()
			return timing{}, err
		}
		switch {
		case slices.Contains(columns, name):
			defs, selects = append(defs, name+" "+typ), append(selects, name)
		case kind == "DEFAULT":
			selects = append(selects, expr+" AS "+name)
		case kind == "":
			rows.Close()
			return timing{}, fmt.Errorf("kafka_movements.%s: not written by the sink and without a DEFAULT", name)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return timing{}, err
	}
	create := fmt.Sprintf("CREATE TABLE %s.kafka_queue (%s) ENGINE = Kafka SETTINGS kafka_broker_list = '%s', kafka_topic_list = '%s', "+
		"kafka_group_name = '%s', kafka_format = 'JSONEachRow', kafka_num_consumers = %d",
		db, strings.Join(defs, ", "), strings.Join(brokers, ","), topic, group, consumers)
	view := fmt.Sprintf("CREATE MATERIALIZED VIEW %[1]s.kafka_view TO %[1]s.kafka_movements AS SELECT %[2]s FROM %[1]s.kafka_queue",
		db, strings.Join(selects, ", "))
	// The engine's consumers start with its table and read once a view is
	// attached: the clock starts with the table.
	start := time.Now()
	for _, stmt := range []string{create, view} {
		if err := conn.Exec(ctx, stmt); err != nil {
			return timing{}, err
		}
	}
	first, atFirst, err := await(ctx, conn, db+".kafka_movements", n, start, nil)
	return timing{n: n, atFirst: atFirst, total: time.Since(start), first: first}, err
}

// await polls table's count until it reaches n, or fails after a quiet
// minute or when stopped reports; it returns when the first row was there.
func await(ctx context.Context, conn driver.Conn, table string, n int, start time.Time, stopped <-chan error) (first time.Duration, atFirst int, err error) {
	var last uint64
	progress := time.Now()
	for {
		select {
		case err := <-stopped:
			return 0, 0, fmt.Errorf("stopped with %d of %d rows in %s: %v", last, n, table, err)
		default:
		}
		var got uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM "+table).Scan(&got); err != nil {
			return 0, 0, err
		}
		if got > 0 && first == 0 {
			first, atFirst = time.Since(start), int(got)
		}
		if got >= uint64(n) {
			return first, atFirst, nil
		}
		if got != last {
			last, progress = got, time.Now()
		} else if time.Since(progress) > time.Minute {
			return 0, 0, fmt.Errorf("%d of %d rows in %s, none for a minute", got, n, table)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// quiesce waits until the server merges nothing: the parts one writer
// left are merged while the next one runs otherwise, on the same cores.
func quiesce(ctx context.Context, conn driver.Conn) error {
	for range 600 {
		var merges uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM system.merges").Scan(&merges); err != nil {
			return err
		}
		if merges == 0 {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("the server was still merging after a minute")
}

// sameRows checks that two tables hold the same rows, deduplicated: the
// same count and the same sum of a hash of the checked columns.
func sameRows(ctx context.Context, conn driver.Conn, a, b string) error {
	var sums [2]string
	for i, t := range []string{a, b} {
		var count, sum uint64
		q := "SELECT count(), sum(cityHash64(" + strings.Join(checked, ", ") + ")) FROM " + t + " FINAL"
		if err := conn.QueryRow(ctx, q).Scan(&count, &sum); err != nil {
			return err
		}
		sums[i] = fmt.Sprintf("%d rows, checksum %d", count, sum)
	}
	if sums[0] != sums[1] {
		return fmt.Errorf("%s holds %s, %s %s: not the same rows", a, sums[0], b, sums[1])
	}
	return nil
}

func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func list(v []float64) string {
	var b strings.Builder
	for _, x := range v {
		fmt.Fprintf(&b, " %.2f", x)
	}
	return b.String()
}
