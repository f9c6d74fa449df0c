package ingest

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/ingest/providers"
	"github.com/shopstream/shopstream/internal/conf"
	"github.com/shopstream/shopstream/internal/stream"
	"github.com/shopstream/shopstream/topology"
)

// Defaults of Config and HandlerConfig.
const (
	DefaultListen       = "127.0.0.1:8080"
	DefaultMaxBodyBytes = 1 << 20
	// DefaultProduceTimeout is under the 15s or more that providers wait.
	DefaultProduceTimeout = 10 * time.Second
	// DefaultMaxInFlight is twice what this machine's peak needs: at about
	// 15,000 webhooks/s with 5-10 ms for Kafka's acknowledgement, about 150
	// are in flight (Little's law). Beyond 256 a request admitted would
	// only queue behind the others for the same CPU.
	DefaultMaxInFlight = 256
	// DefaultQueueWait is no wait: a webhook that finds every slot taken is
	// answered 503 at once. Measured at twice ingest's peak rate, a 20 ms
	// wait kept the excess's goroutines and connections busy while the
	// webhooks admitted needed the CPU: 37% of the peak was accepted, against
	// 66% with no wait.
	DefaultQueueWait = 0
)

// Config is the ingest stage's configuration: its own settings (flags),
// then what the composition root hands it.
type Config struct {
	// Listen is the HTTP address. Default 127.0.0.1:8080.
	Listen string
	// MaxBodyBytes bounds a webhook body; larger ones get 413. Default 1 MiB.
	MaxBodyBytes int64
	// Providers says which providers are served, with their secrets.
	Providers providers.Config
	// MaxInFlight and QueueWait bound the webhooks handled at once
	// (HandlerConfig). Defaults DefaultMaxInFlight and DefaultQueueWait.
	MaxInFlight int
	QueueWait   time.Duration
	// RecentDeliveries is how many accepted delivery ids the instance
	// remembers to answer a retry "duplicate". Default
	// DefaultRecentDeliveries.
	RecentDeliveries int
	// RateLimit and RateBurst are each provider's token bucket
	// (HandlerConfig). Default 0: no limit.
	RateLimit int
	RateBurst int

	// CustomerKey keys the customer hash of order events
	// (HandlerConfig.CustomerKey). Default "": no customer hash.
	CustomerKey string

	// Sources are the providers' allow-lists (-<name>-allow) and the
	// trusted proxies (-trusted-proxies). Default: every address.
	Sources Sources

	// Metrics records every answer. Default: none.
	Metrics Metrics
	// Redis keeps the kill switch (Pauses) under Prefix. Optional: without
	// it no provider can be paused.
	Redis  redis.Cmdable
	Prefix string

	// Kafka is the producer's client. Required.
	Kafka stream.ClientConfig
	// Topics written. Required.
	Topics topology.Names
	// Ready, if set, is called with the bound address once the listener is open.
	Ready func(addr string)
}

// RegisterFlags registers the stage's own settings.
func (c *Config) RegisterFlags(fs *conf.FlagSet) {
	fs.String(&c.Listen, "listen", DefaultListen, "ingest HTTP address", "SHOPSTREAM_LISTEN")
	fs.Int64(&c.MaxBodyBytes, "max-body-bytes", DefaultMaxBodyBytes, "largest webhook body accepted", "SHOPSTREAM_MAX_BODY_BYTES")
	fs.Int(&c.MaxInFlight, "max-in-flight", DefaultMaxInFlight, "webhooks handled at once; more wait -queue-wait, then get 503", "SHOPSTREAM_MAX_IN_FLIGHT")
	fs.Duration(&c.QueueWait, "queue-wait", DefaultQueueWait, "how long a webhook over -max-in-flight waits for a slot before 503 (0: not at all)", "SHOPSTREAM_QUEUE_WAIT")
	fs.Int(&c.RateLimit, "rate-limit", 0, "webhooks a second each provider may send; more get 429 with Retry-After (0: no limit)", "SHOPSTREAM_RATE_LIMIT")
	fs.Int(&c.RateBurst, "rate-burst", 0, "burst above -rate-limit a provider may send at once (0: a second's worth)", "SHOPSTREAM_RATE_BURST")
	fs.Int(&c.RecentDeliveries, "recent-deliveries", DefaultRecentDeliveries, "accepted delivery ids remembered in memory to answer a retry \"duplicate\"", "SHOPSTREAM_RECENT_DELIVERIES")
	fs.String(&c.CustomerKey, "customer-hash-key", "", "key of the hash that names an order's customer for analysts, the same on every instance; empty: none",
		"SHOPSTREAM_CUSTOMER_HASH_KEY")
	c.Providers.RegisterFlags(fs)
	c.Sources.Allow = map[string][]netip.Prefix{}
	for _, name := range providers.Names() {
		list := new([]netip.Prefix)
		fs.Var(allowList{prefixes{list}, c.Sources.Allow, name}, name+"-allow",
			"addresses and CIDRs that may send "+name+"'s webhooks, comma-separated; empty: any", "SHOPSTREAM_"+strings.ToUpper(name)+"_ALLOW")
	}
	fs.Var(prefixes{&c.Sources.TrustedProxies}, "trusted-proxies",
		"load balancers whose X-Forwarded-For is believed, as CIDRs; empty: none", "SHOPSTREAM_TRUSTED_PROXIES")
}

// allowList is a provider's -<name>-allow, stored in the map under its name.
type allowList struct {
	prefixes
	m    map[string][]netip.Prefix
	name string
}

func (a allowList) Set(s string) error {
	if err := a.prefixes.Set(s); err != nil {
		return err
	}
	a.m[a.name] = *a.p
	return nil
}

func (c *Config) setDefaults() {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
}

// Validate reports what is missing or cannot work, before anything starts.
func (c *Config) Validate() error {
	if c.MaxBodyBytes < 0 || c.MaxInFlight < 0 || c.QueueWait < 0 || c.RecentDeliveries < 0 || c.RateLimit < 0 || c.RateBurst < 0 {
		return errors.New("ingest: the body limit, in-flight bound, queue wait, recent deliveries and rate limit cannot be negative")
	}
	if c.Topics == (topology.Names{}) {
		return errors.New("ingest: Topics are required")
	}
	_, err := c.Providers.Enabled()
	return err
}

// watchKafka keeps ready true while the brokers answer, checked every 2 s:
// /readyz then takes an instance that cannot write out of a load
// balancer's rotation before its webhooks get 503s.
func watchKafka(ctx context.Context, cl *kgo.Client, ready *atomic.Bool) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		ready.Store(cl.Ping(pctx) == nil)
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Run serves webhooks until ctx is done, then stops accepting and lets the
// requests in flight get Kafka's answer before the producer closes.
func Run(ctx context.Context, cfg Config) error {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	enabled, _ := cfg.Providers.Enabled()
	prod, err := cfg.Kafka.Producer(DefaultProduceTimeout)
	if err != nil {
		return err
	}
	defer func() {
		// What the edge reported without waiting (refusals, duplicates)
		// is still buffered; Close alone would drop it.
		fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = prod.Flush(fctx)
		cancel()
		prod.Close()
	}()
	log := cfg.Kafka.Logger
	if log == nil {
		log = slog.Default()
	}
	var ready atomic.Bool
	go watchKafka(ctx, prod, &ready)
	hc := HandlerConfig{Providers: enabled, Producer: prod, Topics: cfg.Topics, MaxBodyBytes: cfg.MaxBodyBytes,
		MaxInFlight: cfg.MaxInFlight, QueueWait: cfg.QueueWait, Dedup: NewRecentDeliveries(cfg.RecentDeliveries),
		RateLimit: float64(cfg.RateLimit), RateBurst: cfg.RateBurst, Ready: ready.Load, Metrics: cfg.Metrics, Sources: cfg.Sources, Logger: log}
	if cfg.CustomerKey != "" {
		hc.CustomerKey = []byte(cfg.CustomerKey)
	}
	if cfg.Redis != nil {
		pauses := NewPauses(cfg.Redis, cfg.Prefix, log)
		// Read once before the listener opens, so that a restart keeps a
		// pause from its first webhook on. If Redis does not answer then,
		// the instance serves every provider until it does: refusing all
		// of them because Redis is away would stop every shop's webhooks.
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_ = pauses.Refresh(rctx)
		cancel()
		go pauses.Watch(ctx, DefaultPollEvery)
		hc.Paused = pauses.Paused
	}
	h, err := NewHandler(hc)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	// Timeouts so that slow clients cannot pin connections: headers within
	// 5 s, the whole request within 30 s, the answer within Kafka's wait and
	// a margin, and an idle keep-alive connection closed after 2 minutes.
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: DefaultProduceTimeout + 5*time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	log.Info("ingest listening", "addr", ln.Addr().String())
	if cfg.Ready != nil {
		cfg.Ready(ln.Addr().String())
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), DefaultProduceTimeout+5*time.Second)
	defer cancel()
	return srv.Shutdown(shutdownCtx)
}
