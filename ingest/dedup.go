package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
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
// is answered without a second write. Claim takes a short-lived claim on a
// new delivery; Complete makes it permanent once Kafka acknowledged;
// Release drops it when the write failed so the retry can go through.
type Deduper interface {
	Claim(ctx context.Context, key string) (Claim, error)
	Complete(ctx context.Context, key string) error
	Release(ctx context.Context, key string) error
}

// RedisDedup is a Deduper on Redis.
type RedisDedup struct {
	rdb    redis.Cmdable
	prefix string
	// claimTTL outlives a produce (ProduceTimeout) so a claim is not taken
	// twice while its write may still succeed; doneTTL covers providers'
	// retry windows (Stripe and Svix retry for about three days).
	claimTTL, doneTTL time.Duration
}

// NewRedisDedup returns a Deduper whose keys start with prefix.
func NewRedisDedup(rdb redis.Cmdable, prefix string) *RedisDedup {
	return &RedisDedup{rdb: rdb, prefix: prefix + "ingest:seen:", claimTTL: 30 * time.Second, doneTTL: 7 * 24 * time.Hour}
}

const (
	pending = "pending"
	done    = "done"
)

// Claim implements Deduper.
func (d *RedisDedup) Claim(ctx context.Context, key string) (Claim, error) {
	for range 2 {
		ok, err := d.rdb.SetNX(ctx, d.prefix+key, pending, d.claimTTL).Result()
		if err != nil {
			return 0, fmt.Errorf("dedup: claim: %w", err)
		}
		if ok {
			return ClaimNew, nil
		}
		v, err := d.rdb.Get(ctx, d.prefix+key).Result()
		switch {
		case errors.Is(err, redis.Nil):
			continue // the claim expired between the two calls
		case err != nil:
			return 0, fmt.Errorf("dedup: claim: %w", err)
		case v == done:
			return ClaimDone, nil
		default:
			return ClaimInFlight, nil
		}
	}
	return ClaimInFlight, nil
}

// Complete implements Deduper.
func (d *RedisDedup) Complete(ctx context.Context, key string) error {
	return d.rdb.Set(ctx, d.prefix+key, done, d.doneTTL).Err()
}

// Release implements Deduper.
func (d *RedisDedup) Release(ctx context.Context, key string) error {
	return d.rdb.Del(ctx, d.prefix+key).Err()
}
