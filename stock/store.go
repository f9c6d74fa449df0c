// Package stock owns the per-SKU stock model in Redis: the keys (every key
// of a SKU under the SKU's hash tag, so one SKU lives in one Redis Cluster
// slot), apply.lua, which checks and records a delta's id in the same
// atomic step that changes the stock, the per-SKU lock, and the ledger of
// applied deltas. The inventory processor applies deltas through it;
// operator commands (stock show, and the reconcile and rebuild to come)
// read and freeze SKUs through it. It imports no stage.
package stock

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/bsm/redislock"
	"github.com/redis/go-redis/v9"
)

//go:embed apply.lua
var applyLua string

var applyScript = redis.NewScript(applyLua)

// Outcome is what Apply decided for a delta.
type Outcome struct {
	// Status is avro.MovementApplied or avro.MovementRefused.
	Status string
	// StockAfter is the stock once applied, or the stock that refused it.
	StockAfter int64
	// Reason says why a delta was refused.
	Reason string
	// AppliedAt is when the delta was first decided; a redelivery returns
	// the first decision's time, so the movement it re-emits is identical.
	AppliedAt time.Time
	// Duplicate is true when the delta had been decided before.
	Duplicate bool
}

// StoreConfig configures a Store.
type StoreConfig struct {
	// Prefix namespaces every key (a test run, a rebuild). Default "".
	Prefix string
	// LockTTL is how long a SKU's lock lives if its holder dies. Default 5s.
	LockTTL time.Duration
	// LockWait is how long Apply waits for a SKU's lock before giving up
	// with a transient error. Default 2s.
	LockWait time.Duration
}

// Store keeps per-SKU stock in Redis.
type Store struct {
	rdb    redis.Cmdable
	locker *redislock.Client
	cfg    StoreConfig
}

// NewStore returns a Store on rdb.
func NewStore(rdb redis.Cmdable, cfg StoreConfig) *Store {
	if cfg.LockTTL == 0 {
		cfg.LockTTL = 5 * time.Second
	}
	if cfg.LockWait == 0 {
		cfg.LockWait = 2 * time.Second
	}
	return &Store{rdb: rdb, locker: redislock.New(rdb), cfg: cfg}
}

// Keys are one SKU's Redis keys. The SKU is the hash tag of each.
type Keys struct{ Stock, Applied, Ledger, Backorder, Lock string }

// KeysFor returns the keys of sku under prefix.
func KeysFor(prefix, sku string) Keys {
	base := prefix + "inv:{" + sku + "}:"
	return Keys{base + "stock", base + "applied", base + "ledger", base + "backorder", base + "lock"}
}

// ValidSKU reports why sku cannot name Redis keys, or nil. Braces would
// change the hash tag and so the slot; the length bounds key size.
func ValidSKU(sku string) error {
	switch {
	case sku == "":
		return errors.New("empty sku")
	case len(sku) > 200:
		return fmt.Errorf("sku longer than 200 bytes")
	case strings.ContainsAny(sku, "{}"):
		return fmt.Errorf("sku %q contains a brace", sku)
	}
	return nil
}

// Delta is what Apply needs of an inventory delta.
type Delta struct {
	ID, SKU  string
	Quantity int64
	// Reverses names the delta this one gives back (a restock's sale); it
	// applies only if that one was applied.
	Reverses string
}

// Apply applies d to its SKU's stock once per delta id, under the SKU's
// lock. The script checks and records deltaID in the same atomic step that
// changes the stock; the lock serialises instances that both believe they
// own the SKU's partition during a rebalance, and is what other per-SKU
// operations (reconcile, rebuild) take to freeze a SKU. A sale that would
// take stock below zero is refused unless the SKU allows backorders, and so
// is a restock of a sale that was refused; a refusal is recorded too, so a
// replay decides the same way.
//
// Errors are Redis or lock failures, all worth retrying.
func (s *Store) Apply(ctx context.Context, d Delta, now time.Time) (Outcome, error) {
	sku := d.SKU
	k := KeysFor(s.cfg.Prefix, sku)
	lockCtx, cancel := context.WithTimeout(ctx, s.cfg.LockWait)
	lock, err := s.locker.Obtain(lockCtx, k.Lock, s.cfg.LockTTL, &redislock.Options{
		RetryStrategy: redislock.ExponentialBackoff(2*time.Millisecond, 100*time.Millisecond),
	})
	cancel()
	if err != nil {
		return Outcome{}, fmt.Errorf("stock: lock %s: %w", sku, err)
	}
	defer func() {
		// A lock that expired or could not be released frees itself by TTL.
		_ = lock.Release(context.WithoutCancel(ctx))
	}()
	res, err := applyScript.Run(ctx, s.rdb, []string{k.Stock, k.Applied, k.Ledger, k.Backorder},
		d.ID, d.Quantity, now.UnixMilli(), d.Reverses).Slice()
	if err != nil {
		return Outcome{}, fmt.Errorf("stock: apply %s to %s: %w", d.ID, sku, err)
	}
	if len(res) != 2 {
		return Outcome{}, fmt.Errorf("stock: apply script returned %v", res)
	}
	out, err := parseOutcome(fmt.Sprint(res[1]))
	if err != nil {
		return Outcome{}, err
	}
	out.Duplicate = res[0] == int64(1)
	return out, nil
}

func parseOutcome(s string) (Outcome, error) {
	parts := strings.SplitN(s, "|", 4)
	if len(parts) != 4 {
		return Outcome{}, fmt.Errorf("stock: malformed outcome %q", s)
	}
	stock, err1 := strconv.ParseInt(parts[1], 10, 64)
	at, err2 := strconv.ParseInt(parts[2], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return Outcome{}, fmt.Errorf("stock: malformed outcome %q: %w", s, err)
	}
	return Outcome{Status: parts[0], StockAfter: stock, AppliedAt: time.UnixMilli(at).UTC(), Reason: parts[3]}, nil
}

// Stock returns sku's stock; 0 for a SKU never seen.
func (s *Store) Stock(ctx context.Context, sku string) (int64, error) {
	v, err := s.rdb.Get(ctx, KeysFor(s.cfg.Prefix, sku).Stock).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	return v, err
}

// LedgerEntry is one applied delta as the ledger records it.
type LedgerEntry struct {
	DeltaID    string
	Quantity   int64
	StockAfter int64
}

// Ledger returns sku's applied deltas in the order they were applied.
func (s *Store) Ledger(ctx context.Context, sku string) ([]LedgerEntry, error) {
	raw, err := s.rdb.LRange(ctx, KeysFor(s.cfg.Prefix, sku).Ledger, 0, -1).Result()
	if err != nil {
		return nil, err
	}
	out := make([]LedgerEntry, len(raw))
	for i, r := range raw {
		// The id may itself hold '|'; quantity and stock are the last two fields.
		j := strings.LastIndexByte(r, '|')
		k := strings.LastIndexByte(r[:max(j, 0)], '|')
		if k < 0 {
			return nil, fmt.Errorf("stock: malformed ledger entry %q", r)
		}
		q, err1 := strconv.ParseInt(r[k+1:j], 10, 64)
		a, err2 := strconv.ParseInt(r[j+1:], 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("stock: malformed ledger entry %q: %w", r, err)
		}
		out[i] = LedgerEntry{DeltaID: r[:k], Quantity: q, StockAfter: a}
	}
	return out, nil
}
