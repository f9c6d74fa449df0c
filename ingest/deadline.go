package ingest

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// deadlines hands out the contexts that bound a write's wait for Kafka
// (HandlerConfig.ProduceTimeout). Writes that start within the same tick, a
// hundredth of the timeout, share one context, which ends the timeout after
// the tick's end: each write waits at least the timeout and at most a tick
// more. A context of its own, with its runtime timer, cost each webhook
// about a microsecond, a tenth of the handler's own work.
type deadlines struct {
	timeout, tick time.Duration
	mu            sync.Mutex
	cur           atomic.Pointer[sharedDeadline]
}

type sharedDeadline struct {
	ctx context.Context
	// cancel is held only because vet's lostcancel check rejects a
	// discarded one. It is never called: the writes that hold ctx wait
	// for its deadline, which frees the context as a call would.
	cancel context.CancelFunc
	// until is the tick's end; writes that start before it share ctx.
	until time.Time
}

func newDeadlines(timeout time.Duration) *deadlines {
	return &deadlines{timeout: timeout, tick: max(timeout/100, time.Millisecond)}
}

// context returns a context that ends between the timeout and the timeout
// and a tick after now.
func (d *deadlines) context(now time.Time) context.Context {
	if c := d.cur.Load(); c != nil && now.Before(c.until) {
		return c.ctx
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if c := d.cur.Load(); c != nil && now.Before(c.until) {
		return c.ctx
	}
	until := now.Add(d.tick)
	ctx, cancel := context.WithDeadline(context.Background(), until.Add(d.timeout))
	d.cur.Store(&sharedDeadline{ctx: ctx, cancel: cancel, until: until})
	return ctx
}
