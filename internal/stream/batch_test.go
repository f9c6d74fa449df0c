package stream

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	kitprometheus "github.com/go-kit/kit/metrics/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kgo"
)

// arrivals is a fake consumer: each record becomes pollable at its offset
// from start, as fetches bring records in; a poll waits for the next one
// or for its context, as kgo's does.
type arrivals struct {
	start time.Time
	at    []time.Duration
	mu    sync.Mutex
	next  int
}

func (a *arrivals) PollRecords(ctx context.Context, max int) kgo.Fetches {
	for {
		a.mu.Lock()
		var recs []*kgo.Record
		for a.next < len(a.at) && len(recs) < max && time.Since(a.start) >= a.at[a.next] {
			recs = append(recs, &kgo.Record{Topic: "in", Offset: int64(a.next)})
			a.next++
		}
		wait := time.Hour
		if a.next < len(a.at) {
			wait = a.at[a.next] - time.Since(a.start)
		}
		a.mu.Unlock()
		if len(recs) > 0 {
			return kgo.Fetches{{Topics: []kgo.FetchTopic{{Topic: "in", Partitions: []kgo.FetchPartition{{Records: recs}}}}}}
		}
		select {
		case <-ctx.Done():
			return kgo.NewErrFetch(ctx.Err())
		case <-time.After(wait):
		}
	}
}

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func gatherFrom(t *testing.T, at []time.Duration, max int, linger time.Duration) ([]*kgo.Record, time.Duration) {
	t.Helper()
	var logs bytes.Buffer
	start := time.Now()
	recs, stop := gather(t.Context(), &arrivals{start: start, at: at}, max, linger, slog.New(slog.NewTextHandler(&logs, nil)))
	elapsed := time.Since(start)
	if stop {
		t.Fatal("gather stopped with its context alive")
	}
	if logs.Len() > 0 {
		t.Fatalf("a linger that ran out was logged as a failure:\n%s", logs.String())
	}
	return recs, elapsed
}

// The linger runs from the first record's arrival, not from the call, and
// the batch takes what arrives until then and nothing after.
func TestGatherWritesWhenTheOldestRecordHasLingered(t *testing.T) {
	recs, elapsed := gatherFrom(t, []time.Duration{ms(100), ms(150), ms(200), ms(700)}, 100, ms(300))
	if len(recs) != 3 || elapsed < ms(400) {
		t.Fatalf("%d records after %v; want the 3 that came within 300ms of the first, at 400ms or later", len(recs), elapsed)
	}
}

// A full batch goes at once, however long the linger.
func TestGatherWritesAFullBatchWithoutLingering(t *testing.T) {
	recs, elapsed := gatherFrom(t, []time.Duration{0, 0, ms(50), ms(50), ms(50), ms(60)}, 4, 10*time.Second)
	if len(recs) != 4 || elapsed > 5*time.Second {
		t.Fatalf("%d records after %v; want 4 long before the linger", len(recs), elapsed)
	}
}

// No linger is one poll's records, as the loop was before it lingered.
func TestGatherWithoutLingerTakesOnePoll(t *testing.T) {
	recs, _ := gatherFrom(t, []time.Duration{0, 0, ms(100)}, 100, 0)
	if len(recs) != 2 {
		t.Fatalf("%d records; want the 2 the first poll had", len(recs))
	}
}

// A stopped loop says so, and a poll with only errors yields nothing to
// write, so that the loop lets a rebalance in.
func TestGatherStopsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(ms(100)); cancel() }()
	recs, stop := gather(ctx, &arrivals{start: time.Now(), at: []time.Duration{0, time.Hour}}, 100, time.Hour, slog.Default())
	if !stop || len(recs) != 1 {
		t.Fatalf("stop %v with %d records; want a stop with the one record in hand", stop, len(recs))
	}
	var logs bytes.Buffer
	failing := pollFunc(func(context.Context, int) kgo.Fetches {
		return kgo.Fetches{{Topics: []kgo.FetchTopic{{Topic: "in", Partitions: []kgo.FetchPartition{{Partition: 2, Err: context.DeadlineExceeded}}}}}}
	})
	recs, stop = gather(t.Context(), failing, 100, time.Second, slog.New(slog.NewTextHandler(&logs, nil)))
	if stop || len(recs) != 0 || !strings.Contains(logs.String(), "fetch failed") {
		t.Fatalf("stop %v, %d records, logs %q; want nothing to write and the partition's error logged", stop, len(recs), logs.String())
	}
}

type pollFunc func(ctx context.Context, max int) kgo.Fetches

func (f pollFunc) PollRecords(ctx context.Context, max int) kgo.Fetches { return f(ctx, max) }

func TestBatchConfigRefusesALingerThatHoldsRebalancesTooLong(t *testing.T) {
	for _, linger := range []time.Duration{-time.Millisecond, MaxBatchLinger + 1} {
		c := BatchConfig{Group: "g", Inputs: []string{"in"}, Linger: linger}
		if err := c.setDefaults(); err == nil {
			t.Errorf("linger %v accepted", linger)
		}
	}
	c := BatchConfig{Group: "g", Inputs: []string{"in"}}
	if err := c.setDefaults(); err != nil || c.Linger != 0 {
		t.Fatalf("linger %v (%v), documented default 0", c.Linger, err)
	}
}

type batchFunc func(ctx context.Context, recs []*kgo.Record) ([]Rejection, error)

func (f batchFunc) HandleBatch(ctx context.Context, recs []*kgo.Record) ([]Rejection, error) {
	return f(ctx, recs)
}

// The sink's loop counts what the transactional stages' middleware counts,
// in the same families, by each record's own topic.
func TestBatchMetricsCountEachTopicByOutcome(t *testing.T) {
	records := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "records_total"}, []string{"topic", "outcome"})
	seconds := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "batch_handle_seconds"}, []string{"topic"})
	h := measured{m: BatchMetrics{Records: kitprometheus.NewCounter(records), Duration: kitprometheus.NewHistogram(seconds)}}
	recs := []*kgo.Record{{Topic: "a"}, {Topic: "a"}, {Topic: "b"}, {Topic: "a"}}
	h.h = batchFunc(func(context.Context, []*kgo.Record) ([]Rejection, error) {
		return []Rejection{{Record: recs[1], Err: errors.New("poison")}}, nil
	})
	if rejected, err := h.HandleBatch(t.Context(), recs); len(rejected) != 1 || err != nil {
		t.Fatalf("the handler's answer changed: %v %v", rejected, err)
	}
	h.h = batchFunc(func(context.Context, []*kgo.Record) ([]Rejection, error) { return nil, errors.New("clickhouse down") })
	_, _ = h.HandleBatch(t.Context(), recs)
	h.h = batchFunc(func(context.Context, []*kgo.Record) ([]Rejection, error) { return nil, Permanentf("bad table") })
	_, _ = h.HandleBatch(t.Context(), recs[2:3])
	for _, c := range []struct {
		topic, outcome string
		want           float64
	}{{"a", "ok", 2}, {"a", "rejected", 1}, {"b", "ok", 1}, {"b", "rejected", 0}, {"a", "transient", 3}, {"b", "transient", 1}, {"b", "permanent", 1}} {
		if got := testutil.ToFloat64(records.WithLabelValues(c.topic, c.outcome)); got != c.want {
			t.Errorf("%s %s: %v, want %v", c.topic, c.outcome, got, c.want)
		}
	}
	if n := testutil.CollectAndCount(seconds); n != 2 {
		t.Fatalf("%d topics timed, want a and b", n)
	}
	// Each attempt is one observation under every topic it carried.
	if got := histogramCount(t, seconds, "a"); got != 2 {
		t.Fatalf("a's batches observed %d times, want 2", got)
	}
}

func histogramCount(t *testing.T, h *prometheus.HistogramVec, topic string) uint64 {
	t.Helper()
	var m dto.Metric
	if err := h.WithLabelValues(topic).(prometheus.Metric).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

func TestBatchConfigWantsBothMetricsOrNeither(t *testing.T) {
	c := BatchConfig{Group: "g", Inputs: []string{"in"},
		Metrics: BatchMetrics{Records: kitprometheus.NewCounter(prometheus.NewCounterVec(prometheus.CounterOpts{Name: "r"}, []string{"topic", "outcome"}))}}
	if err := c.setDefaults(); err == nil {
		t.Fatal("a Records without a Duration accepted")
	}
}
