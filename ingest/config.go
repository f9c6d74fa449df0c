package ingest

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/ingest/providers"
	"github.com/shopstream/shopstream/internal/conf"
	"github.com/shopstream/shopstream/internal/stream"
	"github.com/shopstream/shopstream/topology"
)

// Defaults of Config.
const (
	DefaultListen       = "127.0.0.1:8080"
	DefaultMaxBodyBytes = 1 << 20
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

// Validate reports what is missing or cannot work, before anything starts.
func (c *Config) Validate() error {
	if c.Listen == "" || c.MaxBodyBytes <= 0 {
		return errors.New("ingest: a listen address and a positive body limit are required")
	}
	if c.Topics == (topology.Names{}) {
		return errors.New("ingest: Topics are required")
	}
	_, err := c.Providers.Enabled()
	return err
}

// produceTimeout bounds the wait for Kafka's acknowledgement; it is the
// handler's default, under the 15s or more that providers wait.
const produceTimeout = 10 * time.Second

// Run serves webhooks until ctx is done, then stops accepting and lets the
// requests in flight get Kafka's answer before the producer closes.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	enabled, _ := cfg.Providers.Enabled()
	prod, err := kgo.NewClient(append(cfg.Kafka.Options(), stream.ProducerOptions(produceTimeout)...)...)
	if err != nil {
		return err
	}
	defer prod.Close()
	hc := HandlerConfig{Providers: enabled, Producer: prod, Topics: cfg.Topics, MaxBodyBytes: cfg.MaxBodyBytes,
		ProduceTimeout: produceTimeout, Logger: cfg.Kafka.Logger}
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
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second}
	log := hc.Logger
	if log == nil {
		log = slog.Default()
	}
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
	shutdownCtx, cancel := context.WithTimeout(context.Background(), produceTimeout+5*time.Second)
	defer cancel()
	return srv.Shutdown(shutdownCtx)
}
