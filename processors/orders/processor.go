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

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/stream"
	"github.com/shopstream/shopstream/schemas/avro"
	"github.com/shopstream/shopstream/schemas/envelope"
)

// StateStore keeps order states.
type StateStore interface {
	Load(ctx context.Context, orderID string) (*State, error)
	Save(ctx context.Context, orderID string, s State) error
}

// RedisStates is a StateStore on Redis, one JSON value per order.
type RedisStates struct {
	rdb    redis.Cmdable
	prefix string
}

// NewRedisStates returns a StateStore whose keys start with prefix.
func NewRedisStates(rdb redis.Cmdable, prefix string) *RedisStates {
	return &RedisStates{rdb: rdb, prefix: prefix}
}

func (r *RedisStates) key(orderID string) string { return r.prefix + "ord:{" + orderID + "}" }

// Load returns the order's state, or nil if it has none.
func (r *RedisStates) Load(ctx context.Context, orderID string) (*State, error) {
	b, err := r.rdb.Get(ctx, r.key(orderID)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("orders: load state of %s: %w", orderID, err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("orders: state of %s is corrupt: %w", orderID, err)
	}
	return &s, nil
}

// Save stores the order's state.
func (r *RedisStates) Save(ctx context.Context, orderID string, s State) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if err := r.rdb.Set(ctx, r.key(orderID), b, 0).Err(); err != nil {
		return fmt.Errorf("orders: save state of %s: %w", orderID, err)
	}
	return nil
}

// Processor is the stream.Handler of the orders stage.
type Processor struct {
	states StateStore
	codec  *avro.Registry
	deltas string
}

// NewProcessor returns a Processor that keeps state in states and produces
// deltas to the deltas topic.
func NewProcessor(states StateStore, deltas string) *Processor {
	return &Processor{states: states, codec: avro.Default(), deltas: deltas}
}

// Handle runs one order event through the state machine and returns the
// delta records its transition causes.
func (p *Processor) Handle(ctx context.Context, rec *kgo.Record) ([]*kgo.Record, error) {
	var e avro.OrderEvent
	if err := p.codec.Unmarshal(rec.Value, &e); err != nil {
		return nil, stream.Permanent(err)
	}
	if err := Validate(&e); err != nil {
		return nil, stream.Permanent(err)
	}
	cur, err := p.states.Load(ctx, e.OrderID)
	if err != nil {
		return nil, err
	}
	next, changed, t := Step(cur, &e)
	if changed {
		if err := p.states.Save(ctx, e.OrderID, next); err != nil {
			return nil, err
		}
	}
	deltas := Deltas(next, &e, t)
	if len(deltas) == 0 {
		return nil, nil
	}
	out := make([]*kgo.Record, len(deltas))
	for i := range deltas {
		if out[i], err = envelope.Record(p.deltas, &deltas[i], ""); err != nil {
			return nil, stream.Permanent(err)
		}
	}
	return out, nil
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
