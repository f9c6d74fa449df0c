// Package stock owns the per-SKU stock model in Redis: the keys (every key
// of a SKU under the SKU's hash tag, so one SKU lives in one Redis Cluster
// slot), apply.lua, which checks and records a delta's id in the same
// atomic step that changes the stock, the per-SKU lock, and the ledger of
// applied deltas. The inventory processor applies deltas through it;
// operator commands (stock show, and the reconcile and rebuild to come)
// read and freeze SKUs through it. It imports no stage.
//
// The lock is a key of the SKU's own, SET NX PX with a random token: the
// same format bsm/redislock takes, so an operator command can freeze a SKU
// with redislock. The apply path takes it itself because it takes the
// locks of a whole batch of SKUs in one pipelined round trip, which
// redislock (one round trip per Obtain) cannot.
package stock

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

//go:embed apply.lua
var applyLua string

var applyScript = redis.NewScript(applyLua)

// releaseScript frees a lock that still holds the caller's token, and no
// other.
var releaseScript = redis.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`)

// statusPassed is the script's status of a delta at or before its SKU's
// watermark whose outcome is no longer remembered.
const statusPassed = "PASSED"

// ErrLockLost is returned by ApplyRuns when a SKU's lock expired, or was
// taken by another holder, before its run was applied: that run changed
// nothing. Transient: apply the batch again.
var ErrLockLost = errors.New("stock: a SKU's lock was lost before its run was applied")

// ErrLockBusy is returned by ApplyRuns when a SKU's lock stayed held by
// another (an instance finishing its batch during a rebalance, an operator
// freezing the SKU) for LockWait. Nothing was applied. Transient.
var ErrLockBusy = errors.New("stock: a SKU's lock is held by another")

// Outcome is what ApplyRuns decided for a delta.
type Outcome struct {
	// Status is avro.MovementApplied or avro.MovementRefused.
	Status string
	// StockAfter is the stock that can be sold once applied, or the stock
	// that refused it; ReservedAfter the units reserved then.
	StockAfter, ReservedAfter int64
	// Reason says why a delta was refused.
	Reason string
	// AppliedAt is when the delta was first decided; a redelivery returns
	// the first decision's time, so the movement it re-emits is identical.
	AppliedAt time.Time
	// Duplicate is true when the delta had been decided before.
	Duplicate bool
	// Passed is true for a delta decided before whose outcome is not
	// remembered any more (Prune): it changed nothing now, and there is no
	// movement to emit again.
	Passed bool
}

// StoreConfig configures a Store.
type StoreConfig struct {
	// Prefix namespaces every key (a test run, a rebuild). Default "".
	Prefix string
	// LockTTL is how long a SKU's lock lives if its holder dies. Default 5s.
	LockTTL time.Duration
	// LockWait is how long ApplyRuns waits for a SKU's lock before giving
	// up with ErrLockBusy. Default 2s.
	LockWait time.Duration
}

// Store keeps per-SKU stock in Redis.
type Store struct {
	rdb redis.Cmdable
	cfg StoreConfig
}

// NewStore returns a Store on rdb.
func NewStore(rdb redis.Cmdable, cfg StoreConfig) *Store {
	if cfg.LockTTL == 0 {
		cfg.LockTTL = 5 * time.Second
	}
	if cfg.LockWait == 0 {
		cfg.LockWait = 2 * time.Second
	}
	return &Store{rdb: rdb, cfg: cfg}
}

// Keys are one SKU's Redis keys. The SKU is the hash tag of each.
type Keys struct{ Stock, Applied, Ledger, Backorder, Lock, Reserved, Watermark string }

// KeysFor returns the keys of sku under prefix.
func KeysFor(prefix, sku string) Keys {
	base := prefix + "inv:{" + sku + "}:"
	return Keys{base + "stock", base + "applied", base + "ledger", base + "backorder", base + "lock", base + "reserved", base + "watermark"}
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

// Delta is what ApplyRuns needs of an inventory delta; its SKU is its run's.
type Delta struct {
	ID, SKU string
	// Quantity is the signed change of the stock that can be sold;
	// Reserved the signed change of the units paid orders hold.
	Quantity, Reserved int64
	// Reverses names the delta this one takes back (a release's sale, a
	// restock's commit); it applies only if that one was applied.
	Reverses string
	// Position is where the delta is in the delta log, "partition:offset",
	// or "" for one that is not there. A delta at or before the last
	// position decided for its SKU, whose id is remembered no more (Prune),
	// passes without changing anything.
	Position string
}

// Run is one SKU's deltas, in the order they are to be applied.
type Run struct {
	SKU    string
	Deltas []Delta
}

// ApplyRuns applies each run's deltas to its SKU's stock, in order, once per
// delta id, and returns each delta's outcome, run by run. It costs two round
// trips for the whole batch, however many SKUs it holds: one pipeline takes
// every SKU's lock, a second runs apply.lua, each call for the runs of many
// SKUs (of one hash slot on a Redis Cluster). For each SKU the script checks
// that its lock still holds this batch's token (a lock that expired
// mid-batch, whose SKU another holder may have taken, changes nothing of
// that SKU), checks and records each delta id in the same atomic step that
// changes the stock, and releases the lock. A sale that would take stock below zero is refused
// unless the SKU allows backorders, and so is a restock of a sale that was
// refused; a refusal is recorded too, so a replay decides the same way.
//
// Runs of the same SKU are applied as one, in the order given. Errors are
// Redis failures, ErrLockBusy and ErrLockLost, all worth retrying: runs that
// were applied before the error are deduplicated when the batch is applied
// again, and return the outcomes they had.
func (s *Store) ApplyRuns(ctx context.Context, runs []Run, now time.Time) ([][]Outcome, error) {
	if len(runs) == 0 {
		return nil, nil
	}
	bySKU := map[string]int{}
	var merged []Run
	for _, r := range runs {
		for _, d := range r.Deltas {
			if d.SKU != r.SKU {
				return nil, fmt.Errorf("stock: delta %s names SKU %q in a run of %q", d.ID, d.SKU, r.SKU)
			}
		}
		if i, ok := bySKU[r.SKU]; ok {
			merged[i].Deltas = append(merged[i].Deltas, r.Deltas...)
			continue
		}
		bySKU[r.SKU] = len(merged)
		merged = append(merged, Run{SKU: r.SKU, Deltas: slices.Clone(r.Deltas)})
	}
	tokens, err := s.lock(ctx, merged)
	if err != nil {
		return nil, err
	}
	outs, err := s.applyLocked(ctx, merged, tokens, now)
	if err != nil {
		return nil, err
	}
	result := make([][]Outcome, len(runs))
	next := make([]int, len(merged))
	for i, r := range runs {
		m, a := bySKU[r.SKU], next[bySKU[r.SKU]]
		result[i] = outs[m][a : a+len(r.Deltas) : a+len(r.Deltas)]
		next[m] += len(r.Deltas)
	}
	return result, nil
}

// lock takes the lock of every run's SKU, all or none. When one is held by
// another it gives back what it took, waits (with jitter, so that two
// callers who want each other's SKUs do not retry in step), and tries them
// all again, until LockWait has passed: holding some locks while waiting
// for others could deadlock two callers whose SKUs overlap. A lock is taken
// with SET NX GET, so a pipeline that go-redis sends again after a timeout
// finds its own token and counts the lock as taken.
func (s *Store) lock(ctx context.Context, runs []Run) ([]string, error) {
	tokens := make([]string, len(runs))
	for i := range tokens {
		tokens[i] = newToken()
	}
	deadline := time.Now().Add(s.cfg.LockWait)
	for attempt := 1; ; attempt++ {
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.StatusCmd, len(runs))
		for i, r := range runs {
			cmds[i] = pipe.SetArgs(ctx, KeysFor(s.cfg.Prefix, r.SKU).Lock, tokens[i],
				redis.SetArgs{Mode: "NX", Get: true, TTL: s.cfg.LockTTL})
		}
		_, _ = pipe.Exec(ctx) // each command's own result is read below
		busy := ""
		for i, c := range cmds {
			held, err := c.Result()
			switch {
			case errors.Is(err, redis.Nil), err == nil && held == tokens[i]:
			case err != nil:
				s.release(runs, tokens)
				return nil, fmt.Errorf("stock: lock %s: %w", runs[i].SKU, err)
			default:
				busy = runs[i].SKU
			}
		}
		if busy == "" {
			return tokens, nil
		}
		s.release(runs, tokens)
		wait := min(time.Duration(attempt)*2*time.Millisecond, 50*time.Millisecond)
		wait = wait/2 + time.Duration(mrand.Int64N(int64(wait)))
		if time.Now().Add(wait).After(deadline) {
			return nil, fmt.Errorf("%w: %s, for %v", ErrLockBusy, busy, s.cfg.LockWait)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// release frees every run's lock that still holds this call's token, in
// one round trip, on a context of its own: a cancelled batch must not leave
// its SKUs frozen for LockTTL. A lock since taken by another, or already
// released by its script, is left alone.
func (s *Store) release(runs []Run, tokens []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	pipe := s.rdb.Pipeline()
	for i, r := range runs {
		releaseScript.Eval(ctx, pipe, []string{KeysFor(s.cfg.Prefix, r.SKU).Lock}, tokens[i])
	}
	_, _ = pipe.Exec(ctx) // a lock not released frees itself by its TTL
}

// A call of apply.lua carries the runs of at most callSKUs SKUs and
// callDeltas deltas (a longer run goes alone): enough that a batch is a
// handful of commands rather than one a SKU, little enough that one call
// does not hold Redis, which runs nothing else meanwhile, for long (128
// runs of one delta took 1.2 to 2.1 ms of Redis time on the development
// machine; 32 a call was slower, 512 no faster).
const (
	callSKUs   = 128
	callDeltas = 1024
)

// calls groups runs into calls of apply.lua, as indexes into runs. A script
// may touch only keys of the node it runs on, so which SKUs may share a call
// depends on the client: on one node (*redis.Client) any; on a Redis
// Cluster those of one hash slot; on any other client (a redis.Ring, which
// spreads hash tags over its shards its own way, or a wrapper) only one.
func (s *Store) calls(runs []Run) [][]int {
	group := func(int) string { return "" }
	switch s.rdb.(type) {
	case *redis.Client:
	case *redis.ClusterClient:
		group = func(i int) string { return strconv.Itoa(Slot(KeysFor(s.cfg.Prefix, runs[i].SKU).Stock)) }
	default:
		group = func(i int) string { return runs[i].SKU }
	}
	byGroup := map[string][]int{}
	var groups []string
	for i := range runs {
		g := group(i)
		if _, ok := byGroup[g]; !ok {
			groups = append(groups, g)
		}
		byGroup[g] = append(byGroup[g], i)
	}
	var calls [][]int
	for _, g := range groups {
		var call []int
		deltas := 0
		for _, i := range byGroup[g] {
			n := len(runs[i].Deltas)
			if len(call) > 0 && (len(call) == callSKUs || deltas+n > callDeltas) {
				calls = append(calls, call)
				call, deltas = nil, 0
			}
			call, deltas = append(call, i), deltas+n
		}
		calls = append(calls, call)
	}
	return calls
}

// applyLocked runs apply.lua once per call (see calls), all in one
// pipelined round trip. Calls whose script Redis did not know (NOSCRIPT,
// after a restart) changed nothing; the script is loaded and they alone are
// sent again.
func (s *Store) applyLocked(ctx context.Context, runs []Run, tokens []string, now time.Time) ([][]Outcome, error) {
	at := strconv.FormatInt(now.UnixMilli(), 10)
	out := make([][]Outcome, len(runs))
	pending := s.calls(runs)
	var (
		firstErr error
		failed   int
	)
	fail := func(i int, err error) {
		failed++
		if firstErr == nil {
			firstErr = fmt.Errorf("stock: apply %d deltas to %s: %w", len(runs[i].Deltas), runs[i].SKU, err)
		}
	}
	for attempt := 0; len(pending) > 0; attempt++ {
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.Cmd, len(pending))
		for j, call := range pending {
			keys := make([]string, 0, 5*len(call))
			args := []any{at}
			for _, i := range call {
				r, k := runs[i], KeysFor(s.cfg.Prefix, runs[i].SKU)
				keys = append(keys, k.Stock, k.Applied, k.Ledger, k.Backorder, k.Lock, k.Reserved, k.Watermark)
				args = append(args, tokens[i], len(r.Deltas))
				for _, d := range r.Deltas {
					args = append(args, d.ID, d.Quantity, d.Reserved, d.Reverses, d.Position)
				}
			}
			cmds[j] = applyScript.EvalSha(ctx, pipe, keys, args...)
		}
		_, _ = pipe.Exec(ctx) // each command's own result is read below
		var again [][]int
		for j, call := range pending {
			res, err := cmds[j].Slice()
			if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") && attempt == 0 {
				again = append(again, call)
				continue
			}
			if err == nil && len(res) != len(call) {
				err = fmt.Errorf("stock: apply script returned %d runs for %d", len(res), len(call))
			}
			if err != nil {
				for _, i := range call {
					fail(i, err)
				}
				continue
			}
			for n, i := range call {
				if res[n] == "LOCKLOST" {
					fail(i, ErrLockLost)
					continue
				}
				if out[i], err = parseOutcomes(res[n], len(runs[i].Deltas)); err != nil {
					fail(i, err)
				}
			}
		}
		if len(again) > 0 {
			if err := applyScript.Load(ctx, s.rdb).Err(); err != nil {
				s.release(runs, tokens)
				return nil, fmt.Errorf("stock: load apply.lua: %w", err)
			}
		}
		pending = again
	}
	if firstErr != nil {
		s.release(runs, tokens)
		if failed > 1 {
			firstErr = fmt.Errorf("%w (and %d more SKUs)", firstErr, failed-1)
		}
		return nil, firstErr
	}
	return out, nil
}

func parseOutcomes(v any, n int) ([]Outcome, error) {
	res, ok := v.([]any)
	if !ok || len(res) != 2*n {
		return nil, fmt.Errorf("stock: apply script returned a malformed run for %d deltas", n)
	}
	out := make([]Outcome, n)
	for i := range out {
		o, err := parseOutcome(fmt.Sprint(res[2*i+1]))
		if err != nil {
			return nil, err
		}
		o.Duplicate = res[2*i] == int64(1)
		if o.Status == statusPassed {
			o.Passed, o.Status = true, ""
		}
		out[i] = o
	}
	return out, nil
}

func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func parseOutcome(s string) (Outcome, error) {
	parts := strings.SplitN(s, "|", 5)
	if len(parts) < 4 {
		return Outcome{}, fmt.Errorf("stock: malformed outcome %q", s)
	}
	stock, err1 := strconv.ParseInt(parts[1], 10, 64)
	at, err2 := strconv.ParseInt(parts[2], 10, 64)
	var reserved int64
	var err3 error
	// Recorded before reservations: four fields, nothing reserved.
	if len(parts) == 5 {
		reserved, err3 = strconv.ParseInt(parts[4], 10, 64)
	}
	if err := errors.Join(err1, err2, err3); err != nil {
		return Outcome{}, fmt.Errorf("stock: malformed outcome %q: %w", s, err)
	}
	return Outcome{Status: parts[0], StockAfter: stock, ReservedAfter: reserved, AppliedAt: time.UnixMilli(at).UTC(), Reason: parts[3]}, nil
}

// Level is one SKU's stock in Redis.
type Level struct {
	SKU string
	// OnHand is what the shop holds; Reserved what paid orders hold of it
	// until they ship or are cancelled.
	OnHand, Reserved int64
}

// Available is what can still be sold: on hand less reserved.
func (l Level) Available() int64 { return l.OnHand - l.Reserved }

// Levels returns the levels of skus, in order, read in one round trip (a
// pipeline: the SKUs live in many slots of a Redis Cluster). A SKU never
// stocked has zeros.
func (s *Store) Levels(ctx context.Context, skus []string) ([]Level, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.SliceCmd, len(skus))
	for i, sku := range skus {
		k := KeysFor(s.cfg.Prefix, sku)
		cmds[i] = pipe.MGet(ctx, k.Stock, k.Reserved)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("stock: levels of %d SKUs: %w", len(skus), err)
	}
	out := make([]Level, len(skus))
	for i, c := range cmds {
		// The stock key holds what can be sold, so that a sale's check is
		// one comparison; on hand is that and what is reserved.
		var n [2]int64
		for j := range n {
			v, ok := c.Val()[j].(string)
			if !ok {
				continue
			}
			var err error
			if n[j], err = strconv.ParseInt(v, 10, 64); err != nil {
				return nil, fmt.Errorf("stock: %s of %s is %q", []string{"stock", "reserved"}[j], skus[i], v)
			}
		}
		out[i] = Level{SKU: skus[i], OnHand: n[0] + n[1], Reserved: n[1]}
	}
	return out, nil
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
