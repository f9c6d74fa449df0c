package telemetry

import (
	"bytes"
	"context"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/stream"
	"github.com/shopstream/shopstream/internal/testenv"
	"github.com/shopstream/shopstream/schemas/avro"
)

// On the real broker: a group that committed part of one partition, none
// of another and has nothing to read in a third lags by what lies beyond
// its commit (or the log start) up to the high watermark; the rows, and the
// stage's row beside them, are written by the last report of a stopping
// Run.
func TestLagRowsOfAGroupBehindTheHighWatermark(t *testing.T) {
	adm := testenv.Kafka(t)
	prefix := testenv.Namespace(t)
	names := testenv.Topics(t, prefix)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	cl, err := kgo.NewClient(kgo.SeedBrokers(testenv.Brokers()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	produced := map[int32]int{0: 5, 1: 4}
	var recs []*kgo.Record
	for p, n := range produced {
		for range n {
			recs = append(recs, &kgo.Record{Topic: names.Orders, Partition: p, Value: []byte("x")})
		}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	group := prefix + "shopstream-orders"
	var commit kadm.Offsets
	commit.Add(kadm.Offset{Topic: names.Orders, Partition: 0, At: 2, LeaderEpoch: -1})
	if resp, err := adm.CommitOffsets(ctx, group, commit); err != nil || resp.Error() != nil {
		t.Fatalf("commit: %v %v", err, resp.Error())
	}

	producer, err := stream.ClientConfig{Brokers: testenv.Brokers()}.Producer(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	reg, logs := newRegistry(), &bytes.Buffer{}
	reg.add(names.Orders, "ok", 2)
	run, stop := context.WithCancel(ctx)
	stop()
	cfg := Config{Gatherer: reg, Instance: "i1", Stages: map[string]string{names.Orders: "orders"},
		Groups: map[string][]string{group: {names.Orders}}, Admin: adm, Producer: producer, Topic: names.Metrics,
		Logger: slog.New(slog.NewTextHandler(logs, nil))}
	if err := Run(run, cfg); err != nil {
		t.Fatal(err)
	}
	if logs.Len() > 0 {
		t.Fatalf("logged:\n%s", logs)
	}

	minute := time.Now().UTC().Truncate(time.Minute)
	lags := map[int32]avro.PipelineMetric{}
	var stageRows []avro.PipelineMetric
	for _, rec := range testenv.ReadTopic(t, names.Metrics, 4) {
		m := decode(t, rec)
		if m.Group == "" {
			stageRows = append(stageRows, m)
			continue
		}
		if _, dup := lags[m.Partition]; dup {
			t.Fatalf("partition %d reported twice", m.Partition)
		}
		lags[m.Partition] = m
	}
	if len(stageRows) != 1 || stageRows[0].Stage != "orders" || stageRows[0].Records != 2 {
		t.Fatalf("stage rows %+v; want orders' 2 records", stageRows)
	}
	// The test may straddle a minute; the rows name the one they report.
	if got := stageRows[0].Minute; !got.Equal(minute) && !got.Equal(minute.Add(-time.Minute)) {
		t.Fatalf("minute %v, want about %v", got, minute)
	}
	minute = stageRows[0].Minute
	for p, lag := range map[int32]int64{0: 5 - 2, 1: 4, 2: 0} {
		m, ok := lags[p]
		id := "orders/" + minute.Format(time.RFC3339) + "/" + group + "/" + names.Orders + "/" + strconv.Itoa(int(p))
		if !ok || m.Lag != lag || m.Topic != names.Orders || m.Stage != "orders" || m.MetricID != id || !m.Minute.Equal(minute) ||
			m.Instance != "i1" || m.Records != 0 {
			t.Errorf("partition %d: %+v; want lag %d, id %s", p, m, lag, id)
		}
	}
	if len(lags) != 3 {
		t.Fatalf("lag rows for partitions %v, want 0, 1 and 2", lags)
	}
}
