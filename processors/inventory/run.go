package inventory

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shopstream/shopstream/internal/conf"
	"github.com/shopstream/shopstream/internal/stream"
	"github.com/shopstream/shopstream/stock"
)

// Config is the inventory stage's configuration.
type Config struct {
	// Stream is the transactional loop over the deltas topic: its client,
	// group, input, transactional id and middleware, and its tuning
	// (flags); its MaxPollRecords defaults to this stage's own
	// DefaultMaxPollRecords. Required.
	Stream stream.TransformConfig
	// Movements is the topic movements are produced to. Required.
	Movements string
	// Redis keeps the stock. Required.
	Redis redis.Cmdable
	// Stock configures the per-SKU store (its key prefix and lock).
	Stock stock.StoreConfig
	// Horizon is how long each SKU remembers the outcome of a delta
	// (stock.Prune), and ReversibleHorizon that of a sale or a commit,
	// which a later delta may take back. Defaults stock.DefaultHorizon and
	// stock.DefaultReversibleHorizon.
	Horizon, ReversibleHorizon time.Duration
	// Logger. Default slog.Default().
	Logger *slog.Logger
}

// DefaultMaxPollRecords is the inventory stage's batch, larger than the
// other stages' (stream.DefaultMaxPollRecords): its Redis work is per SKU,
// so a larger batch shares one script call and one lock round trip among
// more SKUs. bench/stages, 100,000 deltas over 10,000 SKUs uniform, pairs
// in turn on the 2-core development machine (2026-12-02): 5,000 gave
// 34,634, 29,495 and 29,700 deltas/s against 21,804, 20,856 and 24,089 at
// 2,000 in a slow hour, 66,000-71,000 against 52,000-53,000 in a fast one.
// The orders and deliveries stages gained nothing from 5,000. 10,000,
// four pairs in turn later that day: 80,367-86,350 against 60,117-65,394
// uniform (0.23 lock acquisitions a delta against 0.36), and 0.96 and 1.29
// the rate of 5,000 for the hot SKU, 1.06 and 1.19 for Zipf; 20,000 gave
// uniform no more. Under a backlog a transaction then holds about 120 ms
// of work, far inside the SKU locks' 5s; at a steady rate a batch is what
// one poll brings and never fills.
const DefaultMaxPollRecords = 10000

// RegisterFlags registers the stage's own settings.
func (c *Config) RegisterFlags(fs *conf.FlagSet) {
	c.Stream.RegisterFlags(fs, "inventory", DefaultMaxPollRecords)
	fs.Duration(&c.Horizon, "inventory-horizon", stock.DefaultHorizon,
		"how long each SKU remembers the outcome of a delta; no shorter than what webhooks.raw and orders keep", "SHOPSTREAM_INVENTORY_HORIZON")
	fs.Duration(&c.ReversibleHorizon, "inventory-reversible-horizon", stock.DefaultReversibleHorizon,
		"how long each SKU remembers a sale or a commit, which a refund may take back; no shorter than an order's state lives", "SHOPSTREAM_INVENTORY_REVERSIBLE_HORIZON")
}

// WithDefaults returns c with every setting left unset at its default:
// the batch (DefaultMaxPollRecords), the horizons and the logger. Run
// starts from it, and so does whatever else drives this stage's processor
// over the deltas log (a rebuild), so both batch and forget alike.
func (c Config) WithDefaults() Config {
	if c.Stream.MaxPollRecords <= 0 {
		c.Stream.MaxPollRecords = DefaultMaxPollRecords
	}
	if c.Horizon <= 0 {
		c.Horizon = stock.DefaultHorizon
	}
	if c.ReversibleHorizon <= 0 {
		c.ReversibleHorizon = stock.DefaultReversibleHorizon
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports what is missing or cannot work.
func (c *Config) Validate() error {
	if c.Movements == "" || c.Redis == nil {
		return errors.New("inventory: Movements and Redis are required")
	}
	if c.Horizon < 0 || c.ReversibleHorizon < 0 {
		return errors.New("inventory: a horizon cannot be negative")
	}
	return c.Stream.Validate()
}

// Run runs the stage until ctx is done.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg = cfg.WithDefaults()
	store := stock.NewStore(cfg.Redis, cfg.Stock)
	go prune(ctx, store, cfg.Horizon, cfg.ReversibleHorizon, cfg.Logger)
	return stream.Transform(ctx, cfg.Stream, NewProcessor(store, cfg.Movements))
}

// prune forgets what is older than the horizon, a 24th of it at a time (an
// hour for a week), until ctx is done. Every instance prunes: the work is
// idempotent, and one more pass costs a scan.
func prune(ctx context.Context, store *stock.Store, horizon, reversible time.Duration, log *slog.Logger) {
	t := time.NewTicker(max(horizon/24, time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			p, err := store.Prune(ctx, horizon, reversible, now)
			switch {
			case err != nil && ctx.Err() == nil:
				log.Warn("inventory: prune failed; next time", "err", err)
			case p.Outcomes > 0:
				log.Info("inventory: pruned outcomes older than the horizon", "skus", p.SKUs, "outcomes", p.Outcomes,
					"ledger_entries", p.LedgerEntries, "horizon", horizon)
			}
		}
	}
}
