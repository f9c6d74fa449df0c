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

// DefaultMaxPollRecords is the inventory stage's batch. A batch costs two
// Redis round trips and one transaction whatever its size, and Redis is
// what bounds the stage: measured with bench/stages (10,000 SKUs uniform,
// this 2-core machine), 500 a batch gave 16-17k deltas/s, 2,000 gave
// 24-28k and 5,000 gave 34k, each transaction then open about 150 ms. 2,000
// takes most of the gain and keeps a batch's delay to tens of milliseconds.
const DefaultMaxPollRecords = 2000

// RegisterFlags registers the stage's own settings.
func (c *Config) RegisterFlags(fs *conf.FlagSet) {
	if c.Stream.MaxPollRecords == 0 {
		c.Stream.MaxPollRecords = DefaultMaxPollRecords
	}
	c.Stream.RegisterFlags(fs, "inventory")
}

// Validate reports what is missing or cannot work.
func (c *Config) Validate() error {
	if c.Movements == "" || c.Redis == nil {
		return errors.New("inventory: Movements and Redis are required")
	}
	return c.Stream.Validate()
}

// Run runs the stage until ctx is done.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Stream.MaxPollRecords == 0 {
		cfg.Stream.MaxPollRecords = DefaultMaxPollRecords
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	return stream.TransformRuns(ctx, cfg.Stream, NewProcessor(stock.NewStore(cfg.Redis, cfg.Stock), cfg.Movements))
}
