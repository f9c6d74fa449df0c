package reconcile

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shopstream/shopstream/schemas/avro"
)

// Decision is what a reconciliation of one snapshot found and did: every
// field of its drift row that Redis, not the snapshot, supplied. Kept per
// snapshot id, it is what a redelivery re-emits instead of deciding again
// against the Redis of that later day.
type Decision struct {
	// Action is avro.DriftNone, DriftHealed or DriftNeedsReview.
	Action string
	// OnHand and Reserved are the SKU's Redis levels that were compared;
	// InFlight what brought them to when the snapshot was observed: the
	// deltas the source had counted and Redis had not decided, less those
	// Redis had applied and the source had not counted (see Processor).
	OnHand, Reserved, InFlight int64
	// Difference is the snapshot's available less OnHand − Reserved +
	// InFlight; a heal's quantity.
	Difference   int64
	ReconciledAt time.Time
}

// String is the form a Decision is kept in: fields joined by "|", the time
// in Unix milliseconds, readable in redis-cli.
func (d Decision) String() string {
	return strings.Join([]string{d.Action, strconv.FormatInt(d.OnHand, 10), strconv.FormatInt(d.Reserved, 10),
		strconv.FormatInt(d.InFlight, 10), strconv.FormatInt(d.Difference, 10), strconv.FormatInt(d.ReconciledAt.UnixMilli(), 10)}, "|")
}

func parseDecision(s string) (Decision, error) {
	f := strings.Split(s, "|")
	if len(f) != 6 {
		return Decision{}, fmt.Errorf("reconcile: malformed decision %q", s)
	}
	var n [5]int64
	for i := range n {
		v, err := strconv.ParseInt(f[i+1], 10, 64)
		if err != nil {
			return Decision{}, fmt.Errorf("reconcile: malformed decision %q: %w", s, err)
		}
		n[i] = v
	}
	switch f[0] {
	case avro.DriftNone, avro.DriftHealed, avro.DriftNeedsReview:
	default:
		return Decision{}, fmt.Errorf("reconcile: decision %q has action %q", s, f[0])
	}
	return Decision{Action: f[0], OnHand: n[0], Reserved: n[1], InFlight: n[2], Difference: n[3],
		ReconciledAt: time.UnixMilli(n[4]).UTC()}, nil
}

// Recalled is what Memory holds of one SKU.
type Recalled struct {
	// Newest is the greatest observed_at of the SKU's snapshots decided so
	// far; zero for none.
	Newest time.Time
	// Decisions are the kept decisions of the snapshot ids asked for, by id;
	// an id never decided is absent.
	Decisions map[string]Decision
}

// Decided is a new decision for Memory to keep.
type Decided struct {
	SKU, SnapshotID string
	ObservedAt      time.Time
	Decision        Decision
}

// Memory keeps each snapshot's decision and each SKU's newest observed_at.
type Memory interface {
	// Recall returns, for every SKU of want, its newest observed_at and
	// the kept decisions of the snapshot ids want lists for it, in a map
	// that is never nil.
	Recall(ctx context.Context, want map[string][]string) (map[string]Recalled, error)
	// Remember keeps each decision unless its snapshot has one already
	// (the first stands), raises each SKU's newest observed_at to its
	// decisions', and returns the decision kept for each, in order.
	Remember(ctx context.Context, decided []Decided) ([]Decision, error)
}

// RedisMemory is Memory on Redis, every key of a SKU under its hash tag
// beside its stock: <prefix>recon:{SKU}:decided:<snapshot id>, a Decision
// kept for the horizon, and <prefix>recon:{SKU}:observed, the newest
// observed_at in Unix ms, kept for good (one small key a SKU). A decision
// is forgotten after the horizon, as the stock forgets a delta's outcome
// (stock.Prune), so what is kept is bounded by the snapshots of one
// horizon; a snapshot delivered again after that is decided again, and the
// stage never heals it (see Processor).
type RedisMemory struct {
	rdb     redis.Cmdable
	prefix  string
	horizon time.Duration
}

// NewRedisMemory returns a Memory whose keys start with prefix and whose
// decisions are kept for horizon.
func NewRedisMemory(rdb redis.Cmdable, prefix string, horizon time.Duration) *RedisMemory {
	return &RedisMemory{rdb: rdb, prefix: prefix, horizon: horizon}
}

func (m *RedisMemory) decided(sku, snapshotID string) string {
	return m.prefix + "recon:{" + sku + "}:decided:" + snapshotID
}

func (m *RedisMemory) observed(sku string) string { return m.prefix + "recon:{" + sku + "}:observed" }

// Recall implements Memory, in one pipelined round trip.
func (m *RedisMemory) Recall(ctx context.Context, want map[string][]string) (map[string]Recalled, error) {
	pipe := m.rdb.Pipeline()
	type cmds struct {
		decided  []*redis.StringCmd
		observed *redis.StringCmd
	}
	pending := make(map[string]cmds, len(want))
	for sku, ids := range want {
		c := cmds{observed: pipe.Get(ctx, m.observed(sku))}
		for _, id := range ids {
			c.decided = append(c.decided, pipe.Get(ctx, m.decided(sku, id)))
		}
		pending[sku] = c
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("reconcile: recall %d SKUs: %w", len(want), err)
	}
	out := make(map[string]Recalled, len(want))
	for sku, c := range pending {
		r := Recalled{Decisions: map[string]Decision{}}
		switch ms, err := c.observed.Int64(); {
		case errors.Is(err, redis.Nil):
		case err != nil:
			return nil, fmt.Errorf("reconcile: newest observed of %s: %w", sku, err)
		default:
			r.Newest = time.UnixMilli(ms).UTC()
		}
		for i, cmd := range c.decided {
			v, err := cmd.Result()
			if errors.Is(err, redis.Nil) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("reconcile: decision of %s: %w", want[sku][i], err)
			}
			if r.Decisions[want[sku][i]], err = parseDecision(v); err != nil {
				return nil, err
			}
		}
		out[sku] = r
	}
	return out, nil
}

// rememberScript keeps one SKU's decisions and raises its newest observed
// in one atomic step, so that two instances deciding the same snapshot
// (one of them a zombie of a rebalance) end with one decision, which both
// then emit.
// KEYS[1] newest observed (ms), then one key per decision.
// ARGV[1] the newest observed_at among the decisions (ms), ARGV[2] how long
// a decision is kept (ms), then the decisions in the order of their keys.
// Returns the kept decision of each, in order.
var rememberScript = redis.NewScript(`
local out = {}
for i = 2, #KEYS do
  redis.call('SET', KEYS[i], ARGV[i + 1], 'NX', 'PX', ARGV[2])
  out[#out + 1] = redis.call('GET', KEYS[i])
end
local cur = redis.call('GET', KEYS[1])
if not cur or tonumber(ARGV[1]) > tonumber(cur) then
  redis.call('SET', KEYS[1], ARGV[1])
end
return out
`)

// Remember implements Memory: one script call per SKU, all in one
// pipelined round trip (a SKU's keys share a slot; a batch's SKUs do not).
// The script is sent whole each time: snapshots are few beside deltas, and
// that spares handling Redis forgetting a loaded script.
func (m *RedisMemory) Remember(ctx context.Context, decided []Decided) ([]Decision, error) {
	var skus []string
	bySKU := map[string][]int{}
	for i, d := range decided {
		if _, ok := bySKU[d.SKU]; !ok {
			skus = append(skus, d.SKU)
		}
		bySKU[d.SKU] = append(bySKU[d.SKU], i)
	}
	pipe := m.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(skus))
	for j, sku := range skus {
		var newest int64
		keys := []string{m.observed(sku)}
		args := []any{nil, m.horizon.Milliseconds()}
		for _, i := range bySKU[sku] {
			newest = max(newest, decided[i].ObservedAt.UnixMilli())
			keys = append(keys, m.decided(sku, decided[i].SnapshotID))
			args = append(args, decided[i].Decision.String())
		}
		args[0] = newest
		cmds[j] = rememberScript.Eval(ctx, pipe, keys, args...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("reconcile: remember %d decisions: %w", len(decided), err)
	}
	out := make([]Decision, len(decided))
	for j, sku := range skus {
		kept, err := cmds[j].StringSlice()
		if err == nil && len(kept) != len(bySKU[sku]) {
			err = fmt.Errorf("the script returned %d decisions for %d", len(kept), len(bySKU[sku]))
		}
		if err != nil {
			return nil, fmt.Errorf("reconcile: remember decisions of %s: %w", sku, err)
		}
		for n, i := range bySKU[sku] {
			if out[i], err = parseDecision(kept[n]); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}
