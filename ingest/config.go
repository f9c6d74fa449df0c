package ingest

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"

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

	// Kafka is the producer's client. Required.
	Kafka stream.ClientConfig
	// Redis keeps the delivery-id claims that answer a retry "duplicate".
	// Optional: without it duplicates reach Kafka and are absorbed downstream.
	Redis redis.Cmdable
	// Prefix namespaces the claims' keys. Default "".
	Prefix string
	// Topics written. Required.
	Topics topology.Names
	// Ready, if set, is called with the bound address once the listener is open.
	Ready func(addr string)
}

// RegisterFlags registers the stage's own settings.
func (c *Config) RegisterFlags(fs *conf.FlagSet) {
	fs.String(&c.Listen, "listen", DefaultListen, "ingest HTTP address", "SHOPSTREAM_LISTEN")
	fs.Int64(&c.MaxBodyBytes, "max-body-bytes", DefaultMaxBodyBytes, "largest webhook body accepted", "SHOPSTREAM_MAX_BODY_BYTES")
	c.Providers.RegisterFlags(fs)
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
	if c.MaxBodyBytes < 0 {
		return errors.New("ingest: the body limit cannot be negative")
	}
	if c.Topics == (topology.Names{}) {
		return errors.New("ingest: Topics are required")
	}
	_, err := c.Providers.Enabled()
	return err
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
	defer prod.Close()
	log := cfg.Kafka.Logger
	if log == nil {
		log = slog.Default()
	}
	hc := HandlerConfig{Providers: enabled, Producer: prod, Topics: cfg.Topics, MaxBodyBytes: cfg.MaxBodyBytes, Logger: log}
	if cfg.Redis != nil {
		hc.Dedup = NewRedisDedup(cfg.Redis, cfg.Prefix)
	}
	h, err := NewHandler(hc)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
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
