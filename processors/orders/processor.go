// Package orders owns the per-order state machine: it consumes canonical
// order events, orders them by the provider's version (never by arrival),
// and turns each state change into one inventory delta per line item, keyed
// by SKU. The transition logic is machine.go, a pure function; the state it
// needs between events lives in Redis, not in process memory, so a
// rebalance loses nothing.
//
// The state is written before the Kafka transaction that carries the
// deltas commits. If the process dies in between, the event is delivered
// again, the state says that this very event caused the transition, and the
// same deltas are emitted again; their stable ids make that harmless.
package orders

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/stream"
	"github.com/shopstream/shopstream/schemas/avro"
	"github.com/shopstream/shopstream/schemas/envelope"
)

// StateStore keeps order states, a batch at a time.
type StateStore interface {
	// LoadMany returns the states of orderIDs; an order never seen has none.
	LoadMany(ctx context.Context, orderIDs []string) (map[string]*State, error)
	// SaveMany stores states.
	SaveMany(ctx context.Context, states map[string]State) error
}

// RedisStates is a StateStore on Redis, one JSON value per order under the
// order's own hash tag, read and written a batch per pipelined round trip
// (a pipeline, not MGET, because the keys of a batch live in many slots of
// a Redis Cluster). A state lives ttl after its order's last event.
type RedisStates struct {
	rdb    redis.Cmdable
	prefix string
	ttl    time.Duration
}

// DefaultStateTTL is how long an order's state outlives its last event:
// longer than the refund windows storefronts give (30 days is common, 60
// not rare), since a refund of an order whose state is gone finds nothing
// sold to give back. It bounds the memory by the orders of a quarter.
const DefaultStateTTL = 90 * 24 * time.Hour

// NewRedisStates returns a StateStore whose keys start with prefix and
// live ttl after their last write (0: DefaultStateTTL).
func NewRedisStates(rdb redis.Cmdable, prefix string, ttl time.Duration) *RedisStates {
	if ttl == 0 {
		ttl = DefaultStateTTL
	}
	return &RedisStates{rdb: rdb, prefix: prefix, ttl: ttl}
}

func (r *RedisStates) key(orderID string) string { return r.prefix + "ord:{" + orderID + "}" }

// LoadMany implements StateStore.
func (r *RedisStates) LoadMany(ctx context.Context, orderIDs []string) (map[string]*State, error) {
	pipe := r.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(orderIDs))
	for i, id := range orderIDs {
		cmds[i] = pipe.Get(ctx, r.key(id))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("orders: load %d states: %w", len(orderIDs), err)
	}
	out := make(map[string]*State, len(orderIDs))
	for i, c := range cmds {
		b, err := c.Bytes()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("orders: load state of %s: %w", orderIDs[i], err)
		}
		var s State
		if err := json.Unmarshal(b, &s); err != nil {
			return nil, fmt.Errorf("orders: state of %s is corrupt: %w", orderIDs[i], err)
		}
		out[orderIDs[i]] = &s
	}
	return out, nil
}

// SaveMany implements StateStore.
func (r *RedisStates) SaveMany(ctx context.Context, states map[string]State) error {
	if len(states) == 0 {
		return nil
	}
	pipe := r.rdb.Pipeline()
	for id, s := range states {
		b, err := json.Marshal(s)
		if err != nil {
			return err
		}
		pipe.Set(ctx, r.key(id), b, r.ttl)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("orders: save %d states: %w", len(states), err)
	}
	return nil
}

// Topics are where the stage produces.
type Topics struct {
	// Deltas receives the deltas of each transition.
	Deltas string
	// Applied receives what was decided for each event (OrderApplied),
	// which the analysts' order tables are made of.
	Applied string
}

// Processor is the stream.RunHandler of the orders stage.
type Processor struct {
	states StateStore
	codec  *avro.Registry
	topics Topics
	now    func() time.Time
}

// NewProcessor returns a Processor that keeps state in states and produces
// to topics.
func NewProcessor(states StateStore, topics Topics) *Processor {
	return &Processor{states: states, codec: avro.Default(), topics: topics, now: time.Now}
}

// HandleRuns runs a polled batch of order events through the state machine
// and returns, in event order, each event's decision and the delta records
// its transition causes.
// The batch's order states are read in one round trip and the changed ones
// written in one, before the transaction that carries the deltas commits.
// A record that is not a valid order event is rejected, for the loop to
// dead-letter.
func (p *Processor) HandleRuns(ctx context.Context, runs [][]*kgo.Record) (stream.Result, error) {
	events, rejected := stream.Decode(runs, p.decode)
	res := stream.Result{Rejected: rejected}
	var ids []string
	seen := map[string]bool{}
	for _, e := range events {
		if !seen[e.Value.OrderID] {
			seen[e.Value.OrderID] = true
			ids = append(ids, e.Value.OrderID)
		}
	}
	if len(events) == 0 {
		return res, nil
	}
	states, err := p.states.LoadMany(ctx, ids)
	if err != nil {
		return stream.Result{}, err
	}
	changed := map[string]State{}
	now := p.now().UTC().Truncate(time.Millisecond)
	for i := range events {
		e := &events[i].Value
		next, ok, t := Step(states[e.OrderID], e)
		d, known := next.Decided[e.EventID]
		if !known {
			d = Decision{After: next.Status, Transition: t, Stale: next.Status != e.Type || next.Version != e.Version, At: now.UnixMilli()}
			next.Decided = maps.Clone(next.Decided)
			if next.Decided == nil {
				next.Decided = map[string]Decision{}
			}
			next.Decided[e.EventID] = d
			ok = true
		}
		recs, err := p.records(e, d, Deltas(next, e, t))
		if err != nil {
			// Rejected before its state moves, so that the order stays as
			// if the event had not come.
			res.Rejected = append(res.Rejected, stream.Rejection{Record: events[i].Record, Err: err})
			continue
		}
		if ok {
			states[e.OrderID] = &next
			changed[e.OrderID] = next
		}
		res.Outputs = append(res.Outputs, recs...)
	}
	if err := p.states.SaveMany(ctx, changed); err != nil {
		return stream.Result{}, err
	}
	return res, nil
}

// transitions are the OrderTransition symbols of the machine's transitions.
var transitions = map[Transition]string{None: avro.TransitionNone, Sale: avro.TransitionSale, Commit: avro.TransitionCommit,
	SaleCommit: avro.TransitionSaleCommit, Release: avro.TransitionRelease, Restock: avro.TransitionRestock}

// records are the event's decision, then its deltas.
func (p *Processor) records(e *avro.OrderEvent, d Decision, deltas []avro.InventoryDelta) ([]*kgo.Record, error) {
	applied, err := envelope.Record(p.topics.Applied, &avro.OrderApplied{Event: *e, StatusAfter: d.After, Transition: transitions[d.Transition],
		Stale: d.Stale, AppliedAt: time.UnixMilli(d.At).UTC()}, "")
	if err != nil {
		return nil, err
	}
	out := make([]*kgo.Record, 1, 1+len(deltas))
	out[0] = applied
	for i := range deltas {
		r, err := envelope.Record(p.topics.Deltas, &deltas[i], "")
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// decode reads and checks one order event record.
func (p *Processor) decode(rec *kgo.Record) (avro.OrderEvent, error) {
	var e avro.OrderEvent
	if err := p.codec.Unmarshal(rec.Value, &e); err != nil {
		return e, err
	}
	return e, Validate(&e)
}

// Validate reports what makes an order event unusable, or nil.
func Validate(e *avro.OrderEvent) error {
	if e.OrderID == "" || e.EventID == "" {
		return fmt.Errorf("orders: event %q of order %q lacks an id", e.EventID, e.OrderID)
	}
	if _, ok := rank[e.Type]; !ok {
		return fmt.Errorf("orders: event %q has type %q", e.EventID, e.Type)
	}
	seen := make(map[string]bool, len(e.Lines))
	for _, l := range e.Lines {
		switch {
		case l.SKU == "" || l.LineID == "":
			return fmt.Errorf("orders: event %q has a line without sku or id", e.EventID)
		case l.Quantity <= 0:
			return fmt.Errorf("orders: event %q line %q has quantity %d", e.EventID, l.LineID, l.Quantity)
		case seen[l.LineID]:
			return fmt.Errorf("orders: event %q repeats line id %q", e.EventID, l.LineID)
		}
		seen[l.LineID] = true
	}
	return nil
}
