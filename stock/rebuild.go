package stock

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// What a rebuild needs of the stock model: which SKUs a namespace holds,
// which of a SKU's keys are state that the delta log decides and which are
// settings an operator made, and a switch of one namespace's state into
// another's, atomic per SKU.
//
// A rebuild (shopstream rebuild inventory) applies the delta log into a
// namespace of its own through ApplyRuns, then moves each SKU's state
// into the live namespace with one script call per SKU. Every reader of
// stock reads one SKU at a time (apply.lua, Levels, Stock, Ledger), and a
// script runs alone in Redis, so a reader sees a SKU all before or all
// after its switch, never its new stock beside its old ledger. Across SKUs
// the switch is not one instant, and needs not be: nothing reads two SKUs
// as one, and the inventory stage, the one writer, is stopped meanwhile.

// StateKeys returns the keys of k that the delta log decides: what
// ApplyRuns writes. The lock is nobody's state, and the backorder flag is
// a setting that no delta carries.
func (k Keys) StateKeys() []string {
	return []string{k.Stock, k.Applied, k.Ledger, k.Reserved, k.Watermark}
}

// switchScript moves one SKU's state from a namespace into another, key by
// key; a key the source lacks is deleted from the destination, so that the
// destination holds exactly the source's state. KEYS: the destination's
// keys, then the source's, in the same order, all of one SKU.
var switchScript = redis.NewScript(`
local n = #KEYS / 2
for i = 1, n do
  if redis.call('EXISTS', KEYS[n + i]) == 1 then
    redis.call('RENAME', KEYS[n + i], KEYS[i])
  else
    redis.call('DEL', KEYS[i])
  end
end
return n`)

// switchBatch is how many SKUs' switches go in one pipelined round trip.
const switchBatch = 500

// Switch moves the state of skus from the namespace from into the
// namespace to, each SKU in one atomic step (see StateKeys): afterwards
// to holds, for each SKU, exactly what from held, and from holds none of
// it. Settings (backorder) and locks stay where they are.
func Switch(ctx context.Context, rdb redis.Cmdable, from, to string, skus []string) error {
	if err := switchScript.Load(ctx, rdb).Err(); err != nil {
		return fmt.Errorf("stock: load the switch script: %w", err)
	}
	for batch := range slices.Chunk(skus, switchBatch) {
		pipe := rdb.Pipeline()
		for _, sku := range batch {
			switchScript.EvalSha(ctx, pipe, append(KeysFor(to, sku).StateKeys(), KeysFor(from, sku).StateKeys()...))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("stock: switch %d SKUs from %q to %q: %w", len(batch), from, to, err)
		}
	}
	return nil
}

// CopyBackorders sets in the namespace to the backorder flag of each of
// skus that has one in from: a setting, not state, which a rebuild's
// namespace needs before it applies, so that its sales are refused or
// allowed as the live namespace's are.
func CopyBackorders(ctx context.Context, rdb redis.Cmdable, from, to string, skus []string) error {
	for batch := range slices.Chunk(skus, switchBatch) {
		pipe := rdb.Pipeline()
		cmds := make([]*redis.StringCmd, len(batch))
		for i, sku := range batch {
			cmds[i] = pipe.Get(ctx, KeysFor(from, sku).Backorder)
		}
		_, _ = pipe.Exec(ctx) // redis.Nil for most; each result is read below
		set := rdb.Pipeline()
		for i, c := range cmds {
			v, err := c.Result()
			if errors.Is(err, redis.Nil) {
				continue
			}
			if err != nil {
				return fmt.Errorf("stock: backorder of %s: %w", batch[i], err)
			}
			set.Set(ctx, KeysFor(to, batch[i]).Backorder, v, 0)
		}
		if set.Len() == 0 {
			continue
		}
		if _, err := set.Exec(ctx); err != nil {
			return fmt.Errorf("stock: copy backorders: %w", err)
		}
	}
	return nil
}

// SKUs returns, sorted, every SKU that has a key in the namespace prefix.
// It scans the whole keyspace (every master's, on a Redis Cluster): an
// operator's command, not a stage's.
func SKUs(ctx context.Context, rdb redis.Cmdable, prefix string) ([]string, error) {
	head := prefix + "inv:{"
	seen := map[string]bool{}
	err := scanKeys(ctx, rdb, globEscape(head)+"*", func(key string) error {
		if sku, _, ok := strings.Cut(strings.TrimPrefix(key, head), "}:"); ok {
			seen[sku] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("stock: SKUs under %q: %w", prefix, err)
	}
	out := make([]string, 0, len(seen))
	for sku := range seen {
		out = append(out, sku)
	}
	slices.Sort(out)
	return out, nil
}

// Drop deletes every key of skus in the namespace prefix: a rebuild's
// namespace once it is switched in, or given up.
func Drop(ctx context.Context, rdb redis.Cmdable, prefix string, skus []string) error {
	for batch := range slices.Chunk(skus, switchBatch) {
		pipe := rdb.Pipeline()
		for _, sku := range batch {
			k := KeysFor(prefix, sku)
			pipe.Del(ctx, append(k.StateKeys(), k.Backorder, k.Lock)...)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("stock: drop %d SKUs under %q: %w", len(batch), prefix, err)
		}
	}
	return nil
}

// LedgerLengths returns how many entries each of skus' ledgers holds, in
// one round trip.
func (s *Store) LedgerLengths(ctx context.Context, skus []string) ([]int64, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.IntCmd, len(skus))
	for i, sku := range skus {
		cmds[i] = pipe.LLen(ctx, KeysFor(s.cfg.Prefix, sku).Ledger)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("stock: ledger lengths of %d SKUs: %w", len(skus), err)
	}
	out := make([]int64, len(skus))
	for i, c := range cmds {
		out[i] = c.Val()
	}
	return out, nil
}

// scanKeys calls each with every key that matches pattern, scanning every
// master of a Redis Cluster (a SCAN on the client would read one node's).
// The masters are scanned at once, so each is called under a lock: its
// caller need not be safe for concurrent use.
func scanKeys(ctx context.Context, rdb redis.Cmdable, pattern string, each func(key string) error) error {
	var mu sync.Mutex
	scan := func(ctx context.Context, c redis.Cmdable) error {
		iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
		for iter.Next(ctx) {
			mu.Lock()
			err := each(iter.Val())
			mu.Unlock()
			if err != nil {
				return err
			}
		}
		return iter.Err()
	}
	if cluster, ok := rdb.(*redis.ClusterClient); ok {
		return cluster.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return scan(ctx, c) })
	}
	return scan(ctx, rdb)
}

// globEscape escapes what SCAN's MATCH would read as a pattern.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
