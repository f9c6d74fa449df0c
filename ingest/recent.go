package ingest

import (
	"context"
	"hash/maphash"
	"sync"
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
// remembers at least: minutes of history at thousands a second, in about
// 10 MB.
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
//
// It keeps two generations of 128-bit keyed hashes of the delivery keys:
// when the newer holds size entries it becomes the older and the older is
// dropped, so between size and twice size deliveries are remembered. An LRU
// of the keys themselves was tried first; under load its list element per
// delivery and the garbage collector's scan of every key string cost ingest
// a tenth of its CPU, and maps of fixed-size values are not scanned. A
// false "duplicate" would drop a delivery, so the digest is two 64-bit
// hashes under separate random seeds: a collision needs both to collide,
// for keys that come only from signed requests.
type RecentDeliveries struct {
	seeds [2]maphash.Seed
	size  int

	mu         sync.Mutex
	inFlight   map[digest]struct{}
	done, prev map[digest]struct{}
}

type digest [2]uint64

// NewRecentDeliveries remembers the last size accepted deliveries at least
// (DefaultRecentDeliveries when size <= 0).
func NewRecentDeliveries(size int) *RecentDeliveries {
	if size <= 0 {
		size = DefaultRecentDeliveries
	}
	return &RecentDeliveries{seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}, size: size,
		inFlight: map[digest]struct{}{}, done: map[digest]struct{}{}, prev: map[digest]struct{}{}}
}

func (r *RecentDeliveries) digest(key string) digest {
	return digest{maphash.String(r.seeds[0], key), maphash.String(r.seeds[1], key)}
}

// Claim implements Deduper.
func (r *RecentDeliveries) Claim(_ context.Context, key string) (Claim, error) {
	d := r.digest(key)
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.done[d]; ok {
		return ClaimDone, nil
	}
	if _, ok := r.prev[d]; ok {
		return ClaimDone, nil
	}
	if _, ok := r.inFlight[d]; ok {
		return ClaimInFlight, nil
	}
	r.inFlight[d] = struct{}{}
	return ClaimNew, nil
}

// Complete implements Deduper.
func (r *RecentDeliveries) Complete(_ context.Context, key string) error {
	d := r.digest(key)
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.inFlight, d)
	if len(r.done) >= r.size {
		r.prev, r.done = r.done, make(map[digest]struct{}, r.size)
	}
	r.done[d] = struct{}{}
	return nil
}

// Release implements Deduper.
func (r *RecentDeliveries) Release(_ context.Context, key string) error {
	d := r.digest(key)
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.inFlight, d)
	return nil
}
