package ingest

import (
	"context"
	"sync"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// Claim is what a Deduper knows of a delivery.
type Claim int

const (
	// ClaimNew: not seen; the caller now holds the claim.
	ClaimNew Claim = iota
	// ClaimDone: accepted before; answer without writing again.
	ClaimDone
	// ClaimInFlight: another request is writing it now.
	ClaimInFlight
)

// Deduper remembers accepted deliveries so that a provider's retry of one
// is answered without a second write. Claim takes a claim on a new
// delivery; Complete makes it "done" once Kafka acknowledged; Release drops
// it when the write failed so the retry can go through.
type Deduper interface {
	Claim(ctx context.Context, key string) (Claim, error)
	Complete(ctx context.Context, key string) error
	Release(ctx context.Context, key string) error
}

// DefaultRecentDeliveries is how many accepted deliveries an instance
// remembers: about 30 MB, and minutes of history at thousands a second.
const DefaultRecentDeliveries = 200_000

// RecentDeliveries is the edge's Deduper: the deliveries this instance
// accepted lately, in memory. It is a first answer, not the guarantee. A
// retry that reaches another instance, comes after a restart or after its
// delivery left the window is written to webhooks.raw again, and the
// deliveries stage, which remembers every delivery id in Redis for the
// topic's retention, lets exactly one through. Keeping the shared record
// off the request path is what lets the edge answer at about the cost of
// one Kafka write (two fsynced Redis round trips a request held ingest to a
// third of that; see the README's performance section).
type RecentDeliveries struct {
	mu       sync.Mutex
	inFlight map[string]struct{}
	done     *simplelru.LRU[string, struct{}]
}

// NewRecentDeliveries remembers up to size accepted deliveries (default
// DefaultRecentDeliveries when size <= 0), the least recently claimed
// forgotten first.
func NewRecentDeliveries(size int) *RecentDeliveries {
	if size <= 0 {
		size = DefaultRecentDeliveries
	}
	done, _ := simplelru.NewLRU[string, struct{}](size, nil) // errs only for size <= 0
	return &RecentDeliveries{inFlight: map[string]struct{}{}, done: done}
}

// Claim implements Deduper.
func (r *RecentDeliveries) Claim(_ context.Context, key string) (Claim, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done.Contains(key) {
		return ClaimDone, nil
	}
	if _, ok := r.inFlight[key]; ok {
		return ClaimInFlight, nil
	}
	r.inFlight[key] = struct{}{}
	return ClaimNew, nil
}

// Complete implements Deduper.
func (r *RecentDeliveries) Complete(_ context.Context, key string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.inFlight, key)
	r.done.Add(key, struct{}{})
	return nil
}

// Release implements Deduper.
func (r *RecentDeliveries) Release(_ context.Context, key string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.inFlight, key)
	return nil
}
