package main

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shopstream/shopstream/ingest/providers"
)

type loadOptions struct {
	url         string
	requests    int
	concurrency int
	bare        bool
}

func (o *loadOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&o.url, "url", "", "ingest URL to load, e.g. http://127.0.0.1:8080/webhooks/standardwebhooks")
	fs.IntVar(&o.requests, "n", 20000, "webhooks to send")
	fs.IntVar(&o.concurrency, "c", 64, "webhooks in flight at once")
	fs.BoolVar(&o.bare, "bare", false, "load a bare in-process handler (read the body, answer 200) instead: the baseline of this client and machine")
}

// run sends signed paid-order webhooks, each a new delivery and order, and
// prints throughput and latency. It stops by itself after -n requests.
func (o *loadOptions) run(ctx context.Context, c *config, out io.Writer) error {
	label := o.url
	if o.bare {
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
		o.url, label = "http://"+ln.Addr().String()+"/webhooks/standardwebhooks", "bare handler"
	}
	if o.url == "" {
		return errors.New("loadgen needs -url or -bare")
	}
	if !strings.HasPrefix(o.url, "http://127.") && !strings.HasPrefix(o.url, "http://localhost") {
		return errors.New("loadgen only targets loopback addresses")
	}
	secret := strings.Split(c.secrets, ",")[0]
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil || len(key) == 0 {
		return errors.New("loadgen needs the ingest's SHOPSTREAM_WEBHOOK_SECRET")
	}
	run := time.Now().UnixNano()
	skus := []string{"TEE", "HOODIE", "MUG", "CAP", "SOCKS", "BAG", "HAT", "PIN"}
	transport := &http.Transport{MaxIdleConnsPerHost: o.concurrency, MaxConnsPerHost: o.concurrency}
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}
	var next atomic.Int64
	var mu sync.Mutex
	latencies := make([]time.Duration, 0, o.requests)
	statuses := map[int]int{}
	start := time.Now()
	var wg sync.WaitGroup
	for range o.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(o.requests) || ctx.Err() != nil {
					return
				}
				now := time.Now()
				id := fmt.Sprintf("msg_load_%d_%d", run, i)
				body := fmt.Sprintf(`{"type":"order.paid","timestamp":%q,"data":{"order_id":"load-%d-%d","currency":"EUR","line_items":[{"id":"1","sku":%q,"quantity":1,"unit_price_minor":1999}]}}`,
					now.UTC().Format(time.RFC3339Nano), run, i, skus[i%int64(len(skus))])
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, o.url, strings.NewReader(body))
				req.Header.Set("Webhook-Id", id)
				req.Header.Set("Webhook-Timestamp", fmt.Sprint(now.Unix()))
				req.Header.Set("Webhook-Signature", providers.Sign(key, id, now, []byte(body)))
				t0 := time.Now()
				resp, err := client.Do(req)
				status := 0
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					status = resp.StatusCode
				}
				d := time.Since(t0)
				mu.Lock()
				latencies = append(latencies, d)
				statuses[status]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(latencies)
	pct := func(p float64) time.Duration {
		if len(latencies) == 0 {
			return 0
		}
		return latencies[min(len(latencies)-1, int(float64(len(latencies))*p))].Round(10 * time.Microsecond)
	}
	fmt.Fprintf(out, "loadgen %s: %d webhooks, %d in flight, %v: %.0f/s; latency p50 %v p95 %v p99 %v max %v; status %v\n",
		label, len(latencies), o.concurrency, elapsed.Round(time.Millisecond), float64(len(latencies))/elapsed.Seconds(),
		pct(0.50), pct(0.95), pct(0.99), pct(1), statuses)
	return nil
}
