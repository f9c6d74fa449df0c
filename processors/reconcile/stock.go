package reconcile

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/shopstream/shopstream/stock"
)

// Position is a place in the delta log.
type Position struct {
	Partition int32
	// Offset is -1 for none.
	Offset int64
}

// decided reports whether the delta at offset of partition is at or
// before p: decided already, when p is a SKU's watermark.
func (p Position) decided(partition int32, offset int64) bool {
	return p.Partition == partition && offset <= p.Offset
}

// after is the first offset of partition that p does not cover.
func (p Position) after(partition int32) int64 {
	if p.Partition == partition {
		return p.Offset + 1
	}
	return 0
}

// Stock is what the stage reads of SKUs' stock in Redis.
type Stock interface {
	// Levels returns the levels of skus, in order (stock.Store.Levels).
	Levels(ctx context.Context, skus []string) ([]stock.Level, error)
	// Watermarks returns the delta log position of the last delta decided
	// for each of skus, in order: every delta of the SKU at or before it
	// was applied, refused or passed, never to change the stock again.
	Watermarks(ctx context.Context, skus []string) ([]Position, error)
	// Outcomes returns, by SKU, the status (avro.MovementApplied or
	// avro.MovementRefused) of each of the ids listed for it that Redis
	// decided and still remembers; an id it never decided is absent.
	Outcomes(ctx context.Context, ids map[string][]string) (map[string]map[string]string, error)
}

// RedisStock is Stock on Redis: a stock.Store, and what apply.lua writes
// beside each SKU's stock in the same atomic step, which the store does
// not read for others: the watermark (stock.Keys.Watermark,
// "partition:offset") and each delta's outcome (stock.Keys.Applied, a
// hash of delta id to "STATUS|...").
type RedisStock struct {
	*stock.Store
	rdb    redis.Cmdable
	prefix string
}

// NewRedisStock returns the Stock of rdb under prefix.
func NewRedisStock(rdb redis.Cmdable, prefix string) *RedisStock {
	return &RedisStock{Store: stock.NewStore(rdb, stock.StoreConfig{Prefix: prefix}), rdb: rdb, prefix: prefix}
}

// Watermarks implements Stock, in one pipelined round trip.
func (r *RedisStock) Watermarks(ctx context.Context, skus []string) ([]Position, error) {
	pipe := r.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(skus))
	for i, sku := range skus {
		cmds[i] = pipe.Get(ctx, stock.KeysFor(r.prefix, sku).Watermark)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("reconcile: watermarks of %d SKUs: %w", len(skus), err)
	}
	out := make([]Position, len(skus))
	for i, c := range cmds {
		out[i] = Position{Offset: -1}
		v, err := c.Result()
		switch {
		case errors.Is(err, redis.Nil):
			continue
		case err != nil:
			return nil, fmt.Errorf("reconcile: watermark of %s: %w", skus[i], err)
		}
		part, off, _ := strings.Cut(v, ":")
		p, err1 := strconv.ParseInt(part, 10, 32)
		o, err2 := strconv.ParseInt(off, 10, 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("reconcile: watermark of %s is %q, not partition:offset", skus[i], v)
		}
		out[i] = Position{Partition: int32(p), Offset: o}
	}
	return out, nil
}

// Outcomes implements Stock: an HMGET of each SKU's outcomes, all in one
// pipelined round trip.
func (r *RedisStock) Outcomes(ctx context.Context, ids map[string][]string) (map[string]map[string]string, error) {
	pipe := r.rdb.Pipeline()
	cmds := make(map[string]*redis.SliceCmd, len(ids))
	for sku, list := range ids {
		if len(list) > 0 {
			cmds[sku] = pipe.HMGet(ctx, stock.KeysFor(r.prefix, sku).Applied, list...)
		}
	}
	if len(cmds) == 0 {
		return nil, nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("reconcile: outcomes of %d SKUs: %w", len(cmds), err)
	}
	out := make(map[string]map[string]string, len(cmds))
	for sku, c := range cmds {
		got := map[string]string{}
		for i, v := range c.Val() {
			if s, ok := v.(string); ok {
				status, _, _ := strings.Cut(s, "|")
				got[ids[sku][i]] = status
			}
		}
		out[sku] = got
	}
	return out, nil
}
