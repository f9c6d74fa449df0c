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
	errBlip   = errors.New("redis: connection reset")
	errPoison = stream.Permanentf("not an order event")
	rec       = &kgo.Record{Topic: "orders", Partition: 2, Offset: 41, Key: []byte("o-1"), Value: []byte("v")}
	out       = &kgo.Record{Topic: "inventory.deltas", Value: []byte("delta")}
)

// fake fails with errs in turn, then succeeds with out.
type fake struct {
	errs  []error
	calls int
}

func (f *fake) Handle(context.Context, *kgo.Record) ([]*kgo.Record, error) {
	f.calls++
	if f.calls <= len(f.errs) {
		return nil, f.errs[f.calls-1]
	}
	return []*kgo.Record{out}, nil
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
		{"a permanent error is not retried", []error{errPoison}, 0, errPoison, 1},
		{"retrying stops after MaxElapsed", []error{errBlip, errBlip}, time.Nanosecond, errBlip, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := &fake{errs: tt.errs}
			cfg := fast
			cfg.MaxElapsed = tt.maxElapsed
			_, err := Retry(cfg)(f).Handle(context.Background(), rec)
			if !errors.Is(err, tt.wantErr) || f.calls != tt.wantCalls {
				t.Fatalf("err %v after %d calls, want %v after %d", err, f.calls, tt.wantErr, tt.wantCalls)
			}
		})
	}
	var c RetryConfig
	c.setDefaults()
	if c.Attempts != 3 || c.Backoff.Min != 20*time.Millisecond || c.Backoff.Max != 200*time.Millisecond || c.MaxElapsed != 2*time.Second {
		t.Fatalf("defaults %+v differ from the documented 3 attempts, 20ms to 200ms, 2s in all", c)
	}
}

func TestLoggingNamesTheRecordNotItsValue(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	secret := &kgo.Record{Topic: "orders", Partition: 1, Offset: 7, Value: []byte("jane@example.com")}
	for _, err := range []error{nil, errBlip, errPoison} {
		f := &fake{}
		if err != nil {
			f.errs = []error{err}
		}
		_, _ = Logging(log)(f).Handle(context.Background(), secret)
	}
	logs := buf.String()
	for _, want := range []string{`"level":"DEBUG"`, `"class":"transient"`, `"offset":7`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, "permanent") {
		t.Errorf("a permanent failure is the loop's to log where it dead-letters it:\n%s", logs)
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

func TestWithMetricsCountsByOutcome(t *testing.T) {
	mu := &sync.Mutex{}
	records := counter{mu: mu, by: map[string]float64{}}
	observed := histogram{counter{mu: mu, by: map[string]float64{}}}
	m := WithMetrics(Metrics{Records: records, Duration: observed})
	for _, err := range []error{nil, nil, errBlip, errPoison} {
		f := &fake{}
		if err != nil {
			f.errs = []error{err}
		}
		_, _ = m(f).Handle(context.Background(), rec)
	}
	want := map[string]float64{"topic,orders,outcome,ok": 2, "topic,orders,outcome,transient": 1, "topic,orders,outcome,permanent": 1}
	for k, v := range want {
		if records.by[k] != v {
			t.Errorf("%s = %v, want %v (all: %v)", k, records.by[k], v, records.by)
		}
	}
	if observed.by["topic,orders"] != 4 {
		t.Fatalf("durations observed %v, want 4", observed.by)
	}
}

// Stack retries a blip before anything counts it, and passes a poison
// record's error on at once, for the loop to dead-letter.
func TestStack(t *testing.T) {
	mu := &sync.Mutex{}
	records := counter{mu: mu, by: map[string]float64{}}
	m := Metrics{Records: records, Duration: histogram{counter{mu: mu, by: map[string]float64{}}}}
	log := slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))
	fast := RetryConfig{Backoff: stream.Backoff{Min: time.Microsecond, Max: time.Microsecond}}
	poison := &fake{errs: []error{errPoison}}
	if _, err := Stack(log, m, fast)(poison).Handle(context.Background(), rec); !errors.Is(err, errPoison) || poison.calls != 1 {
		t.Fatalf("poison: %v after %d calls", err, poison.calls)
	}
	blip := &fake{errs: []error{errBlip}}
	outs, err := Stack(log, m, fast)(blip).Handle(context.Background(), rec)
	if err != nil || len(outs) != 1 || outs[0] != out || blip.calls != 2 {
		t.Fatalf("blip: %v %v after %d calls", outs, err, blip.calls)
	}
	if records.by["topic,orders,outcome,ok"] != 1 || records.by["topic,orders,outcome,permanent"] != 1 || records.by["topic,orders,outcome,transient"] != 0 {
		t.Fatalf("counted %v; a blip retried in place is not a failure", records.by)
	}
}
