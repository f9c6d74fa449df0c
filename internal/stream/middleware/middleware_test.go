package middleware

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/kit/metrics"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/stream"
)

var (
	errBlip = errors.New("redis: connection reset")
	rec     = &kgo.Record{Topic: "orders", Partition: 2, Offset: 41, Key: []byte("o-1"), Value: []byte("jane@example.com")}
	poison  = &kgo.Record{Topic: "orders", Partition: 2, Offset: 42, Key: []byte("o-2"), Value: []byte("junk")}
	runs    = [][]*kgo.Record{{rec}, {poison}}
	out     = &kgo.Record{Topic: "inventory.deltas", Value: []byte("delta")}
)

// fake fails with errs in turn, then succeeds: one output, and the poison
// record rejected.
type fake struct {
	errs  []error
	calls int
}

func (f *fake) HandleRuns(context.Context, [][]*kgo.Record) (stream.Result, error) {
	f.calls++
	if f.calls <= len(f.errs) {
		return stream.Result{}, f.errs[f.calls-1]
	}
	return stream.Result{Outputs: []*kgo.Record{out}, Rejected: []stream.Rejection{{Record: poison, Err: errors.New("not an order")}}}, nil
}

func TestRetry(t *testing.T) {
	fast := RetryConfig{Attempts: 3, Backoff: stream.Backoff{Min: time.Microsecond, Max: time.Microsecond}}
	for _, tt := range []struct {
		name       string
		errs       []error
		maxElapsed time.Duration
		wantErr    error
		wantCalls  int
	}{
		{"a blip is retried in place", []error{errBlip, errBlip}, 0, nil, 3},
		{"the last transient error is returned", []error{errBlip, errBlip, errBlip}, 0, errBlip, 3},
		{"retrying stops after MaxElapsed", []error{errBlip, errBlip}, time.Nanosecond, errBlip, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := &fake{errs: tt.errs}
			cfg := fast
			cfg.MaxElapsed = tt.maxElapsed
			res, err := Retry(cfg)(f).HandleRuns(context.Background(), runs)
			if !errors.Is(err, tt.wantErr) || f.calls != tt.wantCalls {
				t.Fatalf("err %v after %d calls, want %v after %d", err, f.calls, tt.wantErr, tt.wantCalls)
			}
			if err == nil && (len(res.Outputs) != 1 || len(res.Rejected) != 1) {
				t.Fatalf("result %+v, want the last attempt's", res)
			}
		})
	}
	var c RetryConfig
	c.setDefaults()
	if c.Attempts != 3 || c.Backoff.Min != 20*time.Millisecond || c.Backoff.Max != 200*time.Millisecond || c.MaxElapsed != 2*time.Second {
		t.Fatalf("defaults %+v differ from the documented 3 attempts, 20ms to 200ms, 2s in all", c)
	}
}

func TestLoggingNamesTheBatchNotItsValues(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	for _, errs := range [][]error{nil, {errBlip}} {
		_, _ = Logging(log)(&fake{errs: errs}).HandleRuns(context.Background(), runs)
	}
	logs := buf.String()
	for _, want := range []string{`"level":"DEBUG"`, `"rejected":1`, `"class":"transient"`, `"records":2`, `"topic":"orders"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, "jane@example.com") {
		t.Fatal("a record's value reached the log")
	}
}

// counter and histogram keep what they were given, by label values.
type counter struct {
	mu  *sync.Mutex
	by  map[string]float64
	lvs []string
}

func newCounter() counter { return counter{mu: &sync.Mutex{}, by: map[string]float64{}} }

func (c counter) With(lvs ...string) metrics.Counter {
	return counter{c.mu, c.by, append(append([]string{}, c.lvs...), lvs...)}
}

func (c counter) Add(d float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.by[strings.Join(c.lvs, ",")] += d
}

type histogram struct{ counter }

func (h histogram) With(lvs ...string) metrics.Histogram {
	return histogram{h.counter.With(lvs...).(counter)}
}
func (h histogram) Observe(float64) { h.Add(1) }

func TestWithMetricsCountsRecordsByOutcome(t *testing.T) {
	records, batches := newCounter(), histogram{newCounter()}
	m := WithMetrics(Metrics{Records: records, Duration: batches})
	for _, errs := range [][]error{nil, nil, {errBlip}} {
		_, _ = m(&fake{errs: errs}).HandleRuns(context.Background(), runs)
	}
	want := map[string]float64{"topic,orders,outcome,ok": 2, "topic,orders,outcome,rejected": 2, "topic,orders,outcome,transient": 2}
	for k, v := range want {
		if records.by[k] != v {
			t.Errorf("%s = %v, want %v (all: %v)", k, records.by[k], v, records.by)
		}
	}
	if batches.by["topic,orders"] != 3 {
		t.Fatalf("batches observed %v, want 3", batches.by)
	}
}

// Stack retries a blip before anything counts it as a failure.
func TestStack(t *testing.T) {
	records := newCounter()
	m := Metrics{Records: records, Duration: histogram{newCounter()}}
	log := slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))
	fast := RetryConfig{Backoff: stream.Backoff{Min: time.Microsecond, Max: time.Microsecond}}
	blip := &fake{errs: []error{errBlip}}
	res, err := Stack(log, m, fast)(blip).HandleRuns(context.Background(), runs)
	if err != nil || len(res.Outputs) != 1 || blip.calls != 2 {
		t.Fatalf("blip: %+v %v after %d calls", res, err, blip.calls)
	}
	if records.by["topic,orders,outcome,ok"] != 1 || records.by["topic,orders,outcome,transient"] != 0 {
		t.Fatalf("counted %v; a blip retried in place is not a failure", records.by)
	}
}
