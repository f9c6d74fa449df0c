package reconcile

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/conf"
	"github.com/shopstream/shopstream/internal/stream"
	"github.com/shopstream/shopstream/stock"
)

// Heal names the SKUs whose drift the stage corrects: none (the default,
// ""), every SKU ("*"), or a comma-separated list. It is a flag.Value.
type Heal struct {
	all  bool
	skus []string
}

// Enabled reports whether the drift of sku is corrected.
func (h Heal) Enabled(sku string) bool { return h.all || slices.Contains(h.skus, sku) }

// String implements flag.Value.
func (h *Heal) String() string {
	if h.all {
		return "*"
	}
	return strings.Join(h.skus, ",")
}

// Set implements flag.Value, refusing a SKU that cannot name keys and a
// "*" beside SKUs, which would say two things.
func (h *Heal) Set(v string) error {
	*h = Heal{}
	if strings.TrimSpace(v) == "" {
		return nil
	}
	for _, sku := range strings.Split(v, ",") {
		switch sku = strings.TrimSpace(sku); sku {
		case "*":
			h.all = true
		default:
			if err := stock.ValidSKU(sku); err != nil {
				return fmt.Errorf("heal: %w", err)
			}
			h.skus = append(h.skus, sku)
		}
	}
	if h.all && len(h.skus) > 0 {
		return errors.New(`heal: "*" already names every SKU`)
	}
	return nil
}

// Config is the reconcile stage's configuration.
type Config struct {
	// Stream is the transactional loop over inventory.snapshots: its
	// client, group, input, transactional id and middleware, and its
	// tuning (flags). Required.
	Stream stream.TransformConfig
	// Topics are where drift rows and heals go; Topics.Deltas is also
	// read for the deltas Redis is compared with. Required.
	Topics Topics
	// InventoryGroup is the inventory stage's consumer group, whose
	// committed offsets say which deltas Redis has decided. Required.
	InventoryGroup string
	// Redis holds the stock and the decisions. Required.
	Redis redis.Cmdable
	// Prefix namespaces the keys, the stock's included. Default "".
	Prefix string
	// Heal names the SKUs corrected. Default none.
	Heal Heal
}

// RegisterFlags registers the stage's own settings.
func (c *Config) RegisterFlags(fs *conf.FlagSet) {
	c.Stream.RegisterFlags(fs, "reconcile", stream.DefaultMaxPollRecords)
	fs.Var(&c.Heal, "reconcile-heal", `SKUs whose drift the reconcile stage corrects with an ADJUSTMENT delta: empty none, "*" every SKU, else comma-separated`,
		"SHOPSTREAM_RECONCILE_HEAL")
}

// Validate reports what is missing or cannot work.
func (c *Config) Validate() error {
	if c.Topics.Drift == "" || c.Topics.Deltas == "" || c.InventoryGroup == "" || c.Redis == nil {
		return errors.New("reconcile: Topics, InventoryGroup and Redis are required")
	}
	return c.Stream.Validate()
}

// Run runs the stage until ctx is done.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	cl, err := kgo.NewClient(cfg.Stream.Client.Options()...)
	if err != nil {
		return err
	}
	defer cl.Close()
	deltaLog := &KafkaDeltaLog{Client: cfg.Stream.Client.Options(), Admin: kadm.NewClient(cl), Group: cfg.InventoryGroup,
		DeltaTopic: cfg.Topics.Deltas, SnapshotTopic: cfg.Stream.Input}
	return stream.Transform(ctx, cfg.Stream, NewProcessor(NewRedisStock(cfg.Redis, cfg.Prefix), deltaLog,
		NewRedisMemory(cfg.Redis, cfg.Prefix, stock.DefaultHorizon), cfg.Heal, cfg.Topics))
}
