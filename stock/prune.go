package stock

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// DefaultHorizon is how long the outcome of each delta is remembered: the
// retention of every topic upstream of the delta log (webhooks.raw and
// orders keep 7 days), so that whatever a replay of an upstream stage can
// emit again, the SKU still knows by its id, and longer than any
// provider's retries (about three days).
const DefaultHorizon = 7 * 24 * time.Hour

// DefaultReversibleHorizon is how long the outcome of a sale or a commit is
// remembered: as long as an order's state lives after its last event (the
// orders stage's 90 days), because a release, a commit or a return names
// the sale or commit it takes back, and applies only if it finds it
// applied; forgotten after a week, a refund on day 30 would be refused and
// its units stay reserved for good.
const DefaultReversibleHorizon = 90 * 24 * time.Hour

// reversible says whether a delta id names what a later delta may take
// back: a sale (released, committed) or a commit (returned).
func reversible(id string) bool {
	return strings.HasSuffix(id, ":sale") || strings.HasSuffix(id, ":commit")
}

// Pruned is what one Prune forgot.
type Pruned struct {
	SKUs, Outcomes, LedgerEntries int64
}

// Prune forgets, for every SKU, the outcomes of deltas decided more than
// horizon before now (reversible before now for sales and commits, which
// a later delta may take back; at least horizon), and the ledger entries
// of those that applied, so that the memory of each SKU is bounded. What
// protects a delta redelivered after its outcome was forgotten is the
// SKU's watermark: the delta log position of the last delta decided,
// written in the same script that applies, before which a delta whose id
// is not remembered passes without changing anything. That covers every
// replay of the delta log, which is kept forever; a replay of an upstream
// stage emits its deltas at new positions and is covered by the ids, for
// which the horizon is as long as the upstream topics keep their records.
//
// The watermark is one position: a SKU's deltas are in one partition of
// the delta log. After partitions are added to it (keys then move), run
// `shopstream rebuild inventory` before replaying the log from before the
// change, or the deltas of the old partition whose ids are forgotten would
// apply again.
//
// It takes no lock: each of its steps is one atomic command, an outcome it
// forgets is one no batch in flight can need (its delta is older than the
// horizon, so before the watermark), the ledger is trimmed by what was
// deleted (so two instances pruning at once, or a field a scan returns
// twice, trim it once), from its oldest end while the script appends at
// the other.
func (s *Store) Prune(ctx context.Context, horizon, reversible time.Duration, now time.Time) (Pruned, error) {
	var total Pruned
	cutoff := pruneCutoff{other: now.Add(-max(horizon, 0)).UnixMilli(), reversible: now.Add(-max(horizon, reversible)).UnixMilli()}
	head := s.cfg.Prefix + "inv:{"
	err := scanKeys(ctx, s.rdb, globEscape(head)+"*}:applied", func(key string) error {
		sku := strings.TrimSuffix(strings.TrimPrefix(key, head), "}:applied")
		p, err := s.pruneSKU(ctx, sku, cutoff)
		if err != nil {
			return err
		}
		if p.Outcomes > 0 {
			total.SKUs++
			total.Outcomes += p.Outcomes
			total.LedgerEntries += p.LedgerEntries
		}
		return nil
	})
	if err != nil {
		return total, fmt.Errorf("stock: prune: %w", err)
	}
	return total, nil
}

type pruneCutoff struct{ other, reversible int64 }

func (s *Store) pruneSKU(ctx context.Context, sku string, cutoff pruneCutoff) (Pruned, error) {
	k := KeysFor(s.cfg.Prefix, sku)
	var p Pruned
	var cursor uint64
	for {
		kv, next, err := s.rdb.HScan(ctx, k.Applied, cursor, "", 1000).Result()
		if err != nil {
			return p, err
		}
		var applied, other []string
		for i := 0; i+1 < len(kv); i += 2 {
			parts := strings.SplitN(kv[i+1], "|", 4)
			if len(parts) < 3 {
				continue
			}
			before := cutoff.other
			if reversible(kv[i]) {
				before = cutoff.reversible
			}
			at, err := strconv.ParseInt(parts[2], 10, 64)
			if err != nil || at >= before {
				continue
			}
			if parts[0] == "APPLIED" {
				applied = append(applied, kv[i])
			} else {
				other = append(other, kv[i])
			}
		}
		// What HDEL deleted, not what the scan saw, is what this pass
		// forgot: the ledger is trimmed by it.
		forget := func(ids []string) (int64, error) {
			if len(ids) == 0 {
				return 0, nil
			}
			return s.rdb.HDel(ctx, k.Applied, ids...).Result()
		}
		n, err := forget(applied)
		if err != nil {
			return p, err
		}
		m, err := forget(other)
		if err != nil {
			return p, err
		}
		p.Outcomes += n + m
		p.LedgerEntries += n
		if next == 0 {
			break
		}
		cursor = next
	}
	if p.LedgerEntries > 0 {
		if err := s.rdb.LTrim(ctx, k.Ledger, p.LedgerEntries, -1).Err(); err != nil {
			return p, err
		}
	}
	return p, nil
}
