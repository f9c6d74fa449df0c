package stream

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff is an exponential backoff with jitter between retries.
type Backoff struct {
	// Min is the first wait. Default 100ms.
	Min time.Duration
	// Max caps the wait. Default 5s.
	Max time.Duration
}

func (b *Backoff) setDefaults() {
	if b.Min == 0 {
		b.Min = 100 * time.Millisecond
	}
	if b.Max == 0 {
		b.Max = 5 * time.Second
	}
}

// Wait returns the wait before retry attempt (1-based): Min doubled per
// attempt up to Max, less up to a fifth at random so that instances that
// failed together do not retry together.
func (b Backoff) Wait(attempt int) time.Duration {
	b.setDefaults()
	d := b.Max
	if attempt < 31 {
		if e := b.Min << (attempt - 1); e > 0 && e < b.Max {
			d = e
		}
	}
	return d - time.Duration(rand.Int64N(int64(d)/5+1))
}

// Sleep waits before retry attempt; false if ctx ended first.
func (b Backoff) Sleep(ctx context.Context, attempt int) bool {
	t := time.NewTimer(b.Wait(attempt))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
