package telemetry

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/ingest"
	"github.com/shopstream/shopstream/schemas/avro"
	"github.com/shopstream/shopstream/schemas/envelope"
)

// registry holds the stages' families as internal/app and ingest make
// them, with buckets of 1, 2 and 4 ms so that the quantiles come out round.
type registry struct {
	*prometheus.Registry
	records *prometheus.CounterVec
	seconds *prometheus.HistogramVec
	ingest  ingest.Metrics
}

func newRegistry() registry {
	r := registry{Registry: prometheus.NewRegistry(),
		records: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "shopstream", Name: "records_total"}, []string{"topic", "outcome"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "shopstream", Name: "batch_handle_seconds",
			Buckets: []float64{0.001, 0.002, 0.004}}, []string{"topic"}),
	}
	r.MustRegister(r.records, r.seconds)
	r.ingest = ingest.NewMetrics(r.Registry)
	return r
}

func (r registry) add(topic, outcome string, n float64) {
	r.records.WithLabelValues(topic, outcome).Add(n)
}

func (r registry) observe(topic string, seconds float64, times int) {
	for range times {
		r.seconds.WithLabelValues(topic).Observe(seconds)
	}
}

// producer keeps what it is given, or fails it while failing is set.
type producer struct {
	mu      sync.Mutex
	failing bool
	recs    []*kgo.Record
}

func (p *producer) ProduceSync(_ context.Context, rs ...*kgo.Record) kgo.ProduceResults {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out kgo.ProduceResults
	for _, r := range rs {
		if p.failing {
			out = append(out, kgo.ProduceResult{Record: r, Err: errors.New("broker gone")})
			continue
		}
		p.recs = append(p.recs, r)
		out = append(out, kgo.ProduceResult{Record: r})
	}
	return out
}

// take returns the rows written since the last take, by stage.
func (p *producer) take(t *testing.T) map[string]avro.PipelineMetric {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	rows := map[string]avro.PipelineMetric{}
	for _, rec := range p.recs {
		rows[string(rec.Key)] = decode(t, rec)
	}
	p.recs = nil
	return rows
}

func decode(t *testing.T, rec *kgo.Record) avro.PipelineMetric {
	t.Helper()
	var m avro.PipelineMetric
	if err := avro.Default().Unmarshal(rec.Value, &m); err != nil {
		t.Fatal(err)
	}
	if et, _ := envelope.Header(rec, envelope.HeaderEventType); et != "pipeline.metric" || string(rec.Key) != m.Stage {
		t.Fatalf("record of event type %q keyed %q for stage %q", et, rec.Key, m.Stage)
	}
	return m
}

var stages = map[string]string{"orders": "orders", "inventory.deltas": "inventory", "inventory.movements": "sink"}

func testConfig(reg prometheus.Gatherer, p Producer, log *bytes.Buffer) Config {
	return Config{Gatherer: reg, Instance: "i1", Stages: stages, Producer: p, Topic: "pipeline.metrics",
		Logger: slog.New(slog.NewTextHandler(log, nil))}
}

// want is a stage row's figures; the ids, minute and instance are checked
// apart.
type want struct {
	records, transient, permanent, dead int64
	p50, p95, p99                       float64
}

func check(t *testing.T, rows map[string]avro.PipelineMetric, stage string, minute time.Time, w want) {
	t.Helper()
	m, ok := rows[stage]
	if !ok {
		t.Fatalf("no row for %s among %v", stage, rows)
	}
	got := want{m.Records, m.ErrorsTransient, m.ErrorsPermanent, m.DeadLettered, m.LatencyP50Ms, m.LatencyP95Ms, m.LatencyP99Ms}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	if got.records != w.records || got.transient != w.transient || got.permanent != w.permanent || got.dead != w.dead ||
		!near(got.p50, w.p50) || !near(got.p95, w.p95) || !near(got.p99, w.p99) {
		t.Errorf("%s: %+v, want %+v", stage, got, w)
	}
	id := stage + "/i1/" + minute.Format(time.RFC3339)
	if m.MetricID != id || !m.Minute.Equal(minute) || m.Instance != "i1" || m.Group != "" || m.Partition != -1 || m.Lag != -1 {
		t.Errorf("%s: id %q minute %v instance %q group %q partition %d lag %d; want id %q, minute %v, no group or lag",
			stage, m.MetricID, m.Minute, m.Instance, m.Group, m.Partition, m.Lag, id, minute)
	}
}

// Between two reports the counters and histograms move; each report holds
// exactly what moved since the last, a quiet stage that was once active
// reads as zeros, and a stage never active has no row.
func TestReportsWhatEachStageDidSinceTheLastReport(t *testing.T) {
	reg, p, logs := newRegistry(), &producer{}, &bytes.Buffer{}
	r := newReporter(testConfig(reg, p, logs))
	m0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

	reg.add("orders", "ok", 10)
	reg.add("orders", "rejected", 2)
	reg.add("orders", "transient", 5)
	reg.observe("orders", 0.0005, 4)
	reg.observe("orders", 0.0015, 4)
	reg.add("inventory.movements", "ok", 3)
	reg.observe("inventory.movements", 0.01, 1)
	reg.add("someone.elses", "ok", 100)
	shopify := func(outcome string, n int) {
		for range n {
			reg.ingest.Requests.WithLabelValues("shopify", outcome).Inc()
		}
	}
	shopify("accepted", 7)
	shopify("duplicate", 1)
	shopify("overloaded", 2)
	shopify("paused", 1)
	shopify("invalid_signature", 1)
	reg.ingest.AckSeconds.WithLabelValues("shopify").Observe(0.0007)
	reg.ingest.AckSeconds.WithLabelValues("stripe").Observe(0.0009)
	r.report(t.Context(), m0)
	rows := p.take(t)
	if len(rows) != 3 {
		t.Fatalf("rows for %v; want orders, sink and ingest only", keys(rows))
	}
	check(t, rows, "orders", m0, want{records: 12, transient: 5, dead: 2, p50: 1, p95: 1.9, p99: 1.98})
	// One observation past every bucket: the largest finite bound.
	check(t, rows, "sink", m0, want{records: 3, p50: 4, p95: 4, p99: 4})
	// Two providers' histograms are one stage's: ranks 1, 1.9 and 1.98 of
	// two observations in ingest's bucket from 0.5 to 1 ms.
	check(t, rows, "ingest", m0, want{records: 8, transient: 3, permanent: 1, p50: 0.75, p95: 0.975, p99: 0.995})

	m1 := m0.Add(time.Minute)
	reg.add("orders", "ok", 6)
	reg.add("orders", "permanent", 1)
	reg.observe("orders", 0.003, 10)
	shopify("accepted", 3)
	r.report(t.Context(), m1)
	rows = p.take(t)
	if len(rows) != 3 {
		t.Fatalf("rows for %v; want orders, sink and ingest again", keys(rows))
	}
	check(t, rows, "orders", m1, want{records: 6, permanent: 1, p50: 3, p95: 3.9, p99: 3.98})
	check(t, rows, "sink", m1, want{})
	check(t, rows, "ingest", m1, want{records: 3})
	if logs.Len() > 0 {
		t.Fatalf("logged:\n%s", logs)
	}
}

// A report Kafka did not take is not lost: its counts go with the next.
func TestAReportNotWrittenGoesWithTheNext(t *testing.T) {
	reg, p, logs := newRegistry(), &producer{failing: true}, &bytes.Buffer{}
	r := newReporter(testConfig(reg, p, logs))
	m0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	reg.add("orders", "ok", 4)
	reg.observe("orders", 0.0015, 2)
	r.report(t.Context(), m0)
	if !strings.Contains(logs.String(), "not written") {
		t.Fatalf("a failed report was not logged: %q", logs)
	}
	p.failing = false
	reg.add("orders", "ok", 5)
	reg.observe("orders", 0.0005, 2)
	r.report(t.Context(), m0.Add(time.Minute))
	check(t, p.take(t), "orders", m0.Add(time.Minute), want{records: 9, p50: 1, p95: 1.9, p99: 1.98})
}

// Reports fall on the period's boundaries of wall-clock time, each naming
// the period it covers, and a stop writes the period under way.
func TestRunReportsAtEachBoundaryAndOnStopping(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg, p, logs := newRegistry(), &producer{}, &bytes.Buffer{}
		// synctest's clock starts at midnight; begin within a minute.
		time.Sleep(20 * time.Second)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- Run(ctx, testConfig(reg, p, logs)) }()
		reg.add("orders", "ok", 2)

		time.Sleep(39 * time.Second)
		synctest.Wait()
		if rows := p.take(t); len(rows) != 0 {
			t.Fatalf("reported before the minute was over: %v", rows)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		first := time.Now().Add(-time.Minute).Truncate(time.Minute)
		check(t, p.take(t), "orders", first, want{records: 2})

		reg.add("orders", "ok", 3)
		time.Sleep(15 * time.Second)
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		check(t, p.take(t), "orders", first.Add(time.Minute), want{records: 3})
		if logs.Len() > 0 {
			t.Fatalf("logged:\n%s", logs)
		}
	})
}

func TestConfigNamesTheStageOfEveryGroupTopic(t *testing.T) {
	cfg := testConfig(newRegistry(), &producer{}, &bytes.Buffer{})
	cfg.Groups = map[string][]string{"g": {"orders"}}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "Admin") {
		t.Fatalf("groups without an admin client: %v", err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	cfg.Admin = kadm.NewClient(cl)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg.Groups = map[string][]string{"g": {"webhooks.raw"}}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "webhooks.raw") {
		t.Fatalf("a group topic of no stage: %v", err)
	}
}

func keys(rows map[string]avro.PipelineMetric) []string {
	var out []string
	for k := range rows {
		out = append(out, k)
	}
	return out
}
