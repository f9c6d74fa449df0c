package ingest

import (
	"testing"
	"time"
)

func TestDeadlinesAreSharedWithinATick(t *testing.T) {
	d := newDeadlines(10 * time.Second)
	now := time.Now()
	first := d.context(now)
	for _, later := range []time.Duration{0, time.Millisecond, d.tick - time.Nanosecond} {
		if got := d.context(now.Add(later)); got != first {
			t.Fatalf("a write %v into the tick got a context of its own", later)
		}
	}
	next := d.context(now.Add(d.tick))
	if next == first {
		t.Fatal("a write after the tick shares the previous tick's context")
	}
	for _, c := range []struct {
		start time.Time
		got   time.Time
	}{{now, deadlineOf(t, first)}, {now.Add(d.tick), deadlineOf(t, next)}} {
		if wait := c.got.Sub(c.start); wait < d.timeout || wait > d.timeout+d.tick {
			t.Errorf("a write waits %v, want between %v and %v", wait, d.timeout, d.timeout+d.tick)
		}
	}
}

func TestDeadlinesEnd(t *testing.T) {
	d := newDeadlines(20 * time.Millisecond)
	ctx := d.context(time.Now())
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("a write's context never ended")
	}
}

func deadlineOf(t *testing.T, c interface{ Deadline() (time.Time, bool) }) time.Time {
	t.Helper()
	at, ok := c.Deadline()
	if !ok {
		t.Fatal("no deadline")
	}
	return at
}
