package orders

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shopstream/shopstream/internal/conf"
	"github.com/shopstream/shopstream/internal/stream"
)

// Config is the orders stage's configuration.
type Config struct {
	// Stream is the transactional loop over the orders topic: its client,
	// group, input, transactional id and middleware, and its tuning
	// (flags). Required.
	Stream stream.TransformConfig
	// Topics are where deltas and decisions are produced. Required.
	Topics Topics
	// Redis keeps the order states. Required.
	Redis redis.Cmdable
	// Prefix namespaces the state keys. Default "".
	Prefix string
	// StateTTL is how long an order's state outlives its last event.
	// Default DefaultStateTTL.
	StateTTL time.Duration
}

// RegisterFlags registers the stage's own settings.
func (c *Config) RegisterFlags(fs *conf.FlagSet) {
	c.Stream.RegisterFlags(fs, "orders", stream.DefaultMaxPollRecords)
	fs.Duration(&c.StateTTL, "order-state-ttl", DefaultStateTTL, "how long an order's state outlives its last event; a refund after it finds nothing sold",
		"SHOPSTREAM_ORDER_STATE_TTL")
}

// Validate reports what is missing or cannot work.
func (c *Config) Validate() error {
	if c.Topics.Deltas == "" || c.Topics.Applied == "" || c.Redis == nil {
		return errors.New("orders: Topics and Redis are required")
	}
	if c.StateTTL < 0 {
		return errors.New("orders: the state TTL cannot be negative")
	}
	return c.Stream.Validate()
}

// Run runs the stage until ctx is done.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	return stream.Transform(ctx, cfg.Stream, NewProcessor(NewRedisStates(cfg.Redis, cfg.Prefix, cfg.StateTTL), cfg.Topics))
}
