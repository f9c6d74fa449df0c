package deliveries

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shopstream/shopstream/internal/conf"
	"github.com/shopstream/shopstream/internal/stream"
	"github.com/shopstream/shopstream/stock"
)

// DefaultHorizon is how long a delivery's first sighting is remembered:
// webhooks.raw's retention, longer than any provider's retry span.
const DefaultHorizon = 7 * 24 * time.Hour

// Config is the deliveries stage's configuration.
type Config struct {
	// Stream is the transactional loop over webhooks.raw: its client,
	// group, input, transactional id and middleware, and its tuning
	// (flags). Required.
	Stream stream.TransformConfig
	// Topics are where order events and stock snapshots are forwarded to.
	// Required.
	Topics Topics
	// Redis remembers first sightings and holds the catalog. Required.
	Redis redis.Cmdable
	// Prefix namespaces the keys (the catalog's included). Default "".
	Prefix string
	// Horizon is how long a first sighting is remembered. Default
	// DefaultHorizon.
	Horizon time.Duration
}

// RegisterFlags registers the stage's own settings.
func (c *Config) RegisterFlags(fs *conf.FlagSet) {
	c.Stream.RegisterFlags(fs, "deliveries", stream.DefaultMaxPollRecords)
}

// Validate reports what is missing or cannot work.
func (c *Config) Validate() error {
	if c.Topics.Orders == "" || c.Topics.Snapshots == "" || c.Topics.Outcomes == "" || c.Redis == nil {
		return errors.New("deliveries: Topics and Redis are required")
	}
	if c.Horizon < 0 {
		return errors.New("deliveries: Horizon cannot be negative")
	}
	return c.Stream.Validate()
}

// Run runs the stage until ctx is done.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg.Horizon == 0 {
		cfg.Horizon = DefaultHorizon
	}
	return stream.Transform(ctx, cfg.Stream, NewProcessor(NewRedisFirstSeen(cfg.Redis, cfg.Prefix, cfg.Horizon),
		stock.NewCatalog(cfg.Redis, cfg.Prefix), cfg.Topics))
}
