package stream

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
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
	recs, stop := gather(t.Context(), &arrivals{start: start, at: at}, max, linger, nil, slog.New(slog.NewTextHandler(&logs, nil)))
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
	recs, stop := gather(ctx, &arrivals{start: time.Now(), at: []time.Duration{0, time.Hour}}, 100, time.Hour, nil, slog.Default())
	if !stop || len(recs) != 1 {
		t.Fatalf("stop %v with %d records; want a stop with the one record in hand", stop, len(recs))
	}
	var logs bytes.Buffer
	failing := pollFunc(func(context.Context, int) kgo.Fetches {
		return kgo.Fetches{{Topics: []kgo.FetchTopic{{Topic: "in", Partitions: []kgo.FetchPartition{{Partition: 2, Err: context.DeadlineExceeded}}}}}}
	})
	recs, stop = gather(t.Context(), failing, 100, time.Second, nil, slog.New(slog.NewTextHandler(&logs, nil)))
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

// feed is a fake batchClient: each poll takes one slice sent on polls, or
// waits for one or for its context; commits are kept in order.
type feed struct {
	polls   chan []*kgo.Record
	mu      sync.Mutex
	commits []int64 // the last offset of each commit
}

func (f *feed) PollRecords(ctx context.Context, _ int) kgo.Fetches {
	select {
	case recs := <-f.polls:
		return kgo.Fetches{{Topics: []kgo.FetchTopic{{Topic: "in", Partitions: []kgo.FetchPartition{{Records: recs}}}}}}
	case <-ctx.Done():
		return kgo.NewErrFetch(ctx.Err())
	}
}

func (f *feed) CommitRecords(_ context.Context, rs ...*kgo.Record) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.commits = append(f.commits, rs[len(rs)-1].Offset)
	return nil
}

func (f *feed) committed() []int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.commits)
}

func (f *feed) AllowRebalance() {}

func (f *feed) ProduceSync(context.Context, ...*kgo.Record) kgo.ProduceResults { return nil }

func records(from, n int) []*kgo.Record {
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: "in", Offset: int64(from + i)}
	}
	return recs
}

func startLoop(t *testing.T, inFlight int, h BatchHandler) (*feed, context.CancelFunc, <-chan struct{}) {
	t.Helper()
	f := &feed{polls: make(chan []*kgo.Record)}
	cfg := BatchConfig{Group: "g", Inputs: []string{"in"}, MaxRecords: 10, InFlight: inFlight, Backoff: Backoff{Min: time.Millisecond, Max: time.Millisecond}}
	if err := cfg.setDefaults(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		batchLoop{cl: f, cfg: cfg, h: h, log: slog.New(slog.DiscardHandler)}.run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-stopped })
	return f, cancel, stopped
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
	}
}

// The next batch is written while the one before it still is, and a batch
// written first is committed only after every batch polled before it.
func TestBatchLoopWritesTheNextBatchWhileCommittingInOrder(t *testing.T) {
	secondStarted, releaseFirst := make(chan struct{}), make(chan struct{})
	f, _, _ := startLoop(t, 2, batchFunc(func(_ context.Context, recs []*kgo.Record) ([]Rejection, error) {
		switch recs[0].Offset {
		case 0:
			<-releaseFirst
		case 10:
			close(secondStarted)
		}
		return nil, nil
	}))
	f.polls <- records(0, 10)
	f.polls <- records(10, 10)
	select {
	case <-secondStarted:
	case <-time.After(10 * time.Second):
		t.Fatal("the second batch waited for the first to be written")
	}
	time.Sleep(20 * time.Millisecond)
	if c := f.committed(); len(c) != 0 {
		t.Fatalf("committed %v before the first batch was written", c)
	}
	close(releaseFirst)
	waitFor(t, "both batches committed, with no more records coming", func() bool { return len(f.committed()) == 2 })
	if c := f.committed(); !slices.Equal(c, []int64{9, 19}) {
		t.Fatalf("commits %v, want the first batch's then the second's", c)
	}
}

// A failing batch is retried and holds back the commit of every batch
// after it, which would otherwise name records never written.
func TestBatchLoopCommitsNothingPastAFailingBatch(t *testing.T) {
	var mu sync.Mutex
	failing := true
	f, _, _ := startLoop(t, 2, batchFunc(func(_ context.Context, recs []*kgo.Record) ([]Rejection, error) {
		mu.Lock()
		defer mu.Unlock()
		if recs[0].Offset == 0 && failing {
			return nil, errors.New("clickhouse down")
		}
		return nil, nil
	}))
	f.polls <- records(0, 10)
	f.polls <- records(10, 10)
	time.Sleep(50 * time.Millisecond)
	if c := f.committed(); len(c) != 0 {
		t.Fatalf("committed %v while the first batch failed", c)
	}
	mu.Lock()
	failing = false
	mu.Unlock()
	waitFor(t, "both batches committed once the first was written", func() bool { return len(f.committed()) == 2 })
	if c := f.committed(); !slices.Equal(c, []int64{9, 19}) {
		t.Fatalf("commits %v, want 9 then 19", c)
	}
}

// One in flight writes one batch at a time, as the loop did before it
// overlapped them; so does any number for batches the linger closed,
// which are no backlog.
func TestBatchLoopWritesOneAtATimeWithOneInFlightOrBatchesNotFull(t *testing.T) {
	for _, tt := range []struct {
		name           string
		inFlight, size int
	}{{"one in flight", 1, 10}, {"not full", 2, 5}} {
		t.Run(tt.name, func(t *testing.T) { writesOneAtATime(t, tt.inFlight, tt.size) })
	}
}

func writesOneAtATime(t *testing.T, inFlight, size int) {
	var mu sync.Mutex
	busy, overlapped := 0, false
	f, _, _ := startLoop(t, inFlight, batchFunc(func(context.Context, []*kgo.Record) ([]Rejection, error) {
		mu.Lock()
		busy++
		overlapped = overlapped || busy > 1
		mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		mu.Lock()
		busy--
		mu.Unlock()
		return nil, nil
	}))
	for i := range 5 {
		f.polls <- records(size*i, size)
	}
	waitFor(t, "five commits", func() bool { return len(f.committed()) == 5 })
	mu.Lock()
	defer mu.Unlock()
	if overlapped {
		t.Fatalf("two batches of %d were written at once with InFlight %d", size, inFlight)
	}
}

// A stopped loop commits nothing it has not written, and returns only
// after the batches it started have stopped.
func TestBatchLoopStopsWithoutCommittingWhatIsUnwritten(t *testing.T) {
	entered, stoppedWriting := make(chan struct{}), make(chan struct{})
	f, cancel, loopDone := startLoop(t, 2, batchFunc(func(ctx context.Context, recs []*kgo.Record) ([]Rejection, error) {
		close(entered)
		<-ctx.Done()
		time.Sleep(20 * time.Millisecond)
		close(stoppedWriting)
		return nil, ctx.Err()
	}))
	f.polls <- records(0, 10)
	<-entered
	cancel()
	<-loopDone
	select {
	case <-stoppedWriting:
	default:
		t.Fatal("the loop returned while a batch was still being written")
	}
	if c := f.committed(); len(c) != 0 {
		t.Fatalf("committed %v of a batch never written", c)
	}
}
