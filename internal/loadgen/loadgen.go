// Package loadgen is `shopstream loadgen`: it sends signed paid-order
// webhooks, each a new delivery and order, to an ingest on loopback, and
// prints throughput and latency. With -bare it loads a bare in-process
// handler instead, the baseline of this client and machine. It stops by
// itself after -n requests.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/shopstream/shopstream/ingest/providers"
	"github.com/shopstream/shopstream/ingest/providers/providertest"
	"github.com/shopstream/shopstream/internal/conf"
)

// Config is the load generator's settings.
type Config struct {
	// URL of the ingest to load; loopback only.
	URL string
	// Requests to send. Default 20000.
	Requests int
	// Concurrency is how many are in flight at once. Default 64.
	Concurrency int
	// Rate, when set, sends open loop: Rate webhooks a second whatever the
	// answers, latency measured from each one's intended send time.
	// Default 0: closed loop, Concurrency at a time.
	Rate int
	// Bare loads an in-process handler that reads the body and answers 200.
	Bare bool
	// Mix sends from every provider whose secret is set, in turn, each to
	// its own path beside -url's; otherwise only from -url's provider.
	Mix bool
	// Providers holds the Standard Webhooks secret the ingest accepts.
	Providers providers.Config
}

func (c *Config) setDefaults() {
	if c.Requests == 0 {
		c.Requests = 20000
	}
	if c.Concurrency == 0 {
		c.Concurrency = 64
	}
}

// RegisterFlags registers -url, -n, -c, -rate, -bare and the providers' secrets.
func (c *Config) RegisterFlags(fs *conf.FlagSet) {
	fs.String(&c.URL, "url", "", "ingest URL to load, e.g. http://127.0.0.1:8080/webhooks/standardwebhooks")
	fs.Int(&c.Requests, "n", 20000, "webhooks to send")
	fs.Int(&c.Concurrency, "c", 64, "webhooks in flight at once")
	fs.Int(&c.Rate, "rate", 0, "webhooks a second, open loop (latency from the intended send time); 0: closed loop, -c at a time")
	fs.Bool(&c.Mix, "mix", false, "send from every provider whose secret is set, in turn, each to its path beside -url's")
	fs.Bool(&c.Bare, "bare", false, "load a bare in-process handler (read the body, answer 200) instead: the baseline of this client and machine")
	c.Providers.RegisterSecretFlags(fs)
}

// sender is one provider the load comes from: its path, how it signs and
// what its paid order looks like.
type sender struct {
	provider string
	signer   providertest.Signer
	body     func(providertest.Order, time.Time) []byte
}

var paidOrder = map[string]func(providertest.Order, time.Time) []byte{
	"standardwebhooks": func(o providertest.Order, at time.Time) []byte { return o.StandardWebhooks("order.paid", at) },
	"shopify":          func(o providertest.Order, at time.Time) []byte { return o.Shopify("paid", at, false) },
	"stripe":           func(o providertest.Order, at time.Time) []byte { return o.Stripe("payment_intent.succeeded", at) },
	"webflow": func(o providertest.Order, at time.Time) []byte {
		return o.Webflow("ecomm_new_order", "unfulfilled", at)
	},
}

// senders are the providers the load comes from: the one -url names, or
// with Mix every provider whose secret is set, in turn.
func (c Config) senders() ([]sender, error) {
	names := []string{c.URL[strings.LastIndex(c.URL, "/")+1:]}
	if c.Mix {
		names = providers.Names()
	}
	var out []sender
	for _, n := range names {
		secrets := c.Providers.Secrets[n]
		if len(secrets) == 0 || paidOrder[n] == nil {
			continue
		}
		signer, err := providertest.SignerFor(n, secrets[0])
		if err != nil {
			return nil, fmt.Errorf("loadgen: the %s secret: %w", n, err)
		}
		out = append(out, sender{provider: n, signer: signer, body: paidOrder[n]})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("loadgen needs the secret of %s that the ingest has, e.g. SHOPSTREAM_STANDARDWEBHOOKS_SECRET", strings.Join(names, " or "))
	}
	return out, nil
}

// maxRun is how long an open-loop run may last: under the 5 minutes a
// receiver accepts a signature's age.
const maxRun = 4 * time.Minute

// Run sends the load and prints what it measured to out.
func Run(ctx context.Context, cfg Config, out io.Writer) error {
	cfg.setDefaults()
	label := cfg.URL
	if cfg.Bare {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.ReadAll(r.Body)
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"status":"accepted"}`)
		})}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
		cfg.URL, label = "http://"+ln.Addr().String()+"/webhooks/standardwebhooks", "bare handler"
	}
	if cfg.URL == "" {
		return errors.New("loadgen needs -url or -bare")
	}
	// Webhooks are signed before the run; a run longer than the receiver's
	// tolerance would send stale signatures.
	if cfg.Rate > 0 && time.Duration(cfg.Requests)*time.Second/time.Duration(cfg.Rate) > maxRun {
		return fmt.Errorf("loadgen: -n %d at -rate %d lasts longer than %v, and the signatures made before it would be stale", cfg.Requests, cfg.Rate, maxRun)
	}
	if !strings.HasPrefix(cfg.URL, "http://127.") && !strings.HasPrefix(cfg.URL, "http://localhost") {
		return errors.New("loadgen only targets loopback addresses")
	}
	mix, err := cfg.senders()
	if err != nil {
		return err
	}
	base := cfg.URL[:strings.LastIndex(cfg.URL, "/")+1]
	run := time.Now().UnixNano()
	skus := []string{"TEE", "HOODIE", "MUG", "CAP", "SOCKS", "BAG", "HAT", "PIN"}
	// fasthttp's client, not net/http's: on this machine's two cores the
	// client shares the CPU with the server it measures, and net/http's
	// cost about 100 µs of CPU a request (a goroutine each for reading and
	// writing every connection, and their hand-offs), half a core at
	// 5,000/s; fasthttp's does the round trip on the caller's goroutine.
	target, err := url.Parse(cfg.URL)
	if err != nil {
		return fmt.Errorf("loadgen: -url: %w", err)
	}
	client := &fasthttp.HostClient{Addr: target.Host,
		MaxConns: cfg.Concurrency, MaxConnWaitTimeout: 30 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second,
		NoDefaultUserAgentHeader: true,
		// fasthttp gives up a connect after 3 s; thousands of connections
		// opened at once to an overloaded server may wait longer in its
		// accept queue, and then they are its latency, not a failure.
		Dial: func(addr string) (net.Conn, error) { return fasthttp.DialTimeout(addr, 30*time.Second) }}
	var mu sync.Mutex
	latencies := make([]time.Duration, 0, cfg.Requests)
	statuses := map[int]int{}
	// Refusals are timed apart: an overloaded server must say "retry" fast,
	// and a refusal without Retry-After tells the provider nothing.
	var refusals, refusalsSent []time.Duration
	refusalsWithoutRetryAfter := 0
	// Every webhook is signed before the clock starts, so that the client
	// spends its share of this machine's two cores sending, not signing:
	// at tens of thousands a second the signing alone took a large part of
	// a core, and the server's figure paid for it.
	prepared := make([]*fasthttp.Request, cfg.Requests)
	for i := range prepared {
		now := time.Now().UTC()
		s := mix[i%len(mix)]
		// Shopify and Stripe name orders by number: unique per run too.
		o := providertest.Order{ID: fmt.Sprintf("load-%d-%d", run, i), ShopifyID: run%1_000_000_000*1_000_000 + int64(i), At: now,
			Lines: []providertest.Line{{ID: 1, Qty: 1, Price: 1999, SKU: skus[i%len(skus)]}}}
		body := s.body(o, now)
		signed, err := providertest.NewRequest(ctx, base+s.provider, s.signer,
			providertest.Delivery{ID: fmt.Sprintf("msg_load_%d_%d", run, i), Body: body, At: now})
		if err != nil {
			return err
		}
		req := &fasthttp.Request{}
		req.Header.SetMethod(signed.Method)
		req.SetRequestURI(signed.URL.String())
		for k, vs := range signed.Header {
			for _, v := range vs {
				req.Header.Add(k, v)
			}
		}
		req.SetBodyRaw(body)
		prepared[i] = req
	}
	// send sends webhook i and records its latency from intended, the time
	// it was meant to leave: in the open loop a request that had to wait
	// for a free slot counts that wait, so a slow server cannot hide its
	// queue by slowing the client down (coordinated omission).
	send := func(i int64, intended time.Time) {
		req := prepared[i]
		prepared[i] = nil
		sent := time.Now()
		if sent.Before(intended) {
			intended = sent // sent early, by the pacing below: time it from now
		}
		resp := fasthttp.AcquireResponse()
		status, retryAfter := 0, ""
		if err := client.Do(req, resp); err == nil {
			status, retryAfter = resp.StatusCode(), string(resp.Header.Peek("Retry-After"))
		}
		fasthttp.ReleaseResponse(resp)
		d := time.Since(intended)
		mu.Lock()
		latencies = append(latencies, d)
		statuses[status]++
		if status == http.StatusServiceUnavailable {
			refusals = append(refusals, d)
			refusalsSent = append(refusalsSent, time.Since(sent))
			if retryAfter == "" {
				refusalsWithoutRetryAfter++
			}
		}
		mu.Unlock()
	}
	start := time.Now()
	var wg sync.WaitGroup
	if cfg.Rate > 0 {
		// Open loop: request i leaves at start + i/rate whatever the
		// answers, at most Concurrency in flight.
		slots := make(chan struct{}, cfg.Concurrency)
		interval := time.Second / time.Duration(cfg.Rate)
		for i := range int64(cfg.Requests) {
			intended := start.Add(time.Duration(i) * interval)
			// A sleep costs tens of microseconds, more than the interval
			// at tens of thousands a second: sleep only when a
			// millisecond or more ahead, and send what is due in between.
			if d := time.Until(intended); d > time.Millisecond {
				time.Sleep(d)
			}
			if ctx.Err() != nil {
				break
			}
			slots <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-slots; wg.Done() }()
				send(i, intended)
			}()
		}
	} else {
		var next atomic.Int64
		for range cfg.Concurrency {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := next.Add(1) - 1
					if i >= int64(cfg.Requests) || ctx.Err() != nil {
						return
					}
					send(i, time.Now())
				}
			}()
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	pct := func(p float64) time.Duration { return percentile(latencies, p) }
	mode := fmt.Sprintf("%d in flight", cfg.Concurrency)
	if cfg.Rate > 0 {
		mode = fmt.Sprintf("open loop at %d/s, at most %d in flight", cfg.Rate, cfg.Concurrency)
	}
	fmt.Fprintf(out, "loadgen %s: %d webhooks, %s, %v: %.0f/s, %.0f accepted/s; latency p50 %v p95 %v p99 %v max %v; status %v\n",
		label, len(latencies), mode, elapsed.Round(time.Millisecond), float64(len(latencies))/elapsed.Seconds(),
		float64(statuses[200])/elapsed.Seconds(), pct(0.50), pct(0.95), pct(0.99), pct(1), statuses)
	if len(refusals) > 0 {
		// From the intended time the client's own lag counts; from the
		// send, only the server's answer does.
		fmt.Fprintf(out, "loadgen %s: %d answered 503, p99 %v max %v from the intended send time, p99 %v from the send, %d without Retry-After\n",
			label, len(refusals), percentile(refusals, 0.99), percentile(refusals, 1), percentile(refusalsSent, 0.99), refusalsWithoutRetryAfter)
	}
	return nil
}

// percentile sorts d and returns its p-th percentile (0 to 1).
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[min(len(d)-1, int(float64(len(d))*p))].Round(10 * time.Microsecond)
}
