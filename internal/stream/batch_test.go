package stream

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

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
