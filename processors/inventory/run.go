package inventory

import (
	"context"
	"errors"

	"github.com/redis/go-redis/v9"

	"github.com/shopstream/shopstream/internal/conf"
	"github.com/shopstream/shopstream/internal/stream"
	"github.com/shopstream/shopstream/stock"
)

// Config is the inventory stage's configuration.
type Config struct {
	// Stream is the transactional loop over the deltas topic: its client,
	// group, input, transactional id and middleware, and its tuning
	// (flags). Required.
	Stream stream.TransformConfig
	// Movements is the topic movements are produced to. Required.
	Movements string
	// Redis keeps the stock. Required.
	Redis redis.Cmdable
	// Stock configures the per-SKU store (its key prefix and lock).
	Stock stock.StoreConfig
}

// RegisterFlags registers the stage's own settings.
func (c *Config) RegisterFlags(fs *conf.FlagSet) { c.Stream.RegisterFlags(fs, "inventory") }

// Validate reports what is missing or cannot work.
func (c *Config) Validate() error {
	if c.Movements == "" || c.Redis == nil {
		return errors.New("inventory: Movements and Redis are required")
	}
	return c.Stream.Validate()
}

// Run runs the stage until ctx is done.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	return stream.Transform(ctx, cfg.Stream, NewProcessor(stock.NewStore(cfg.Redis, cfg.Stock), cfg.Movements))
}
