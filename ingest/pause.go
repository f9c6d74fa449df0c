package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Pauses is the kill switch: the providers an operator paused, kept in
// Redis so that every instance obeys and a restart keeps them. A paused
// provider's webhooks are answered 503 with Retry-After, so the provider
// retries them later and nothing is lost.
//
// Instances read the set before they serve and then every PollEvery,
// rather than on each request, so the request path stays free of Redis: a
// pause takes effect within that interval. While Redis does not answer, an
// instance keeps the state it last read, since guessing either way would be
// wrong for some provider; one that starts while Redis is away serves
// every provider until it answers.
type Pauses struct {
	rdb  redis.Cmdable
	key  string
	set  atomic.Pointer[map[string]bool]
	log  *slog.Logger
	down atomic.Bool
}

// DefaultPollEvery is how often an instance reads the paused providers.
const DefaultPollEvery = time.Second

// NewPauses returns the kill switch whose state is under prefix.
func NewPauses(rdb redis.Cmdable, prefix string, log *slog.Logger) *Pauses {
	p := &Pauses{rdb: rdb, key: prefix + "ingest:paused", log: log}
	p.set.Store(&map[string]bool{})
	return p
}

// Pause pauses provider on every instance.
func (p *Pauses) Pause(ctx context.Context, provider string) error {
	if err := p.rdb.SAdd(ctx, p.key, provider).Err(); err != nil {
		return fmt.Errorf("ingest: pause %s: %w", provider, err)
	}
	return nil
}

// Resume resumes provider on every instance.
func (p *Pauses) Resume(ctx context.Context, provider string) error {
	if err := p.rdb.SRem(ctx, p.key, provider).Err(); err != nil {
		return fmt.Errorf("ingest: resume %s: %w", provider, err)
	}
	return nil
}

// List returns the paused providers, as Redis has them now.
func (p *Pauses) List(ctx context.Context) ([]string, error) {
	names, err := p.rdb.SMembers(ctx, p.key).Result()
	if err != nil {
		return nil, fmt.Errorf("ingest: paused providers: %w", err)
	}
	return names, nil
}

// Paused reports whether provider was paused when the set was last read.
func (p *Pauses) Paused(provider string) bool { return (*p.set.Load())[provider] }

// Refresh reads the set once.
func (p *Pauses) Refresh(ctx context.Context) error {
	names, err := p.List(ctx)
	if err != nil {
		if !p.down.Swap(true) {
			p.log.Warn("kill switch: Redis does not answer; keeping the paused providers last read", "err", err)
		}
		return err
	}
	if p.down.Swap(false) {
		p.log.Info("kill switch: Redis answers again")
	}
	set := make(map[string]bool, len(names))
	for _, n := range names {
		set[n] = true
	}
	p.set.Store(&set)
	return nil
}

// Watch refreshes the set every interval until ctx is done.
func (p *Pauses) Watch(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		_ = p.Refresh(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
