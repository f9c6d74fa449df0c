package ingest

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	kitprometheus "github.com/go-kit/kit/metrics/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shopstream/shopstream/ingest/providers"
)

func TestRateLimitIs429WithRetryAfterAndWritesNothing(t *testing.T) {
	prod := &recordingProducer{}
	p, _ := providers.NewStandardWebhooks(providers.StandardWebhooksConfig{Secrets: []string{testSecret}})
	h, err := NewHandler(HandlerConfig{Providers: []providers.Provider{p}, Producer: prod, RateLimit: 0.5, RateBurst: 2,
		Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	url := newServer(t, h)
	for i := range 2 {
		if resp, _ := (post{id: "msg_burst_" + strconv.Itoa(i), body: paidBody}).do(t, url); resp.StatusCode != 200 {
			t.Fatalf("within the burst: %d", resp.StatusCode)
		}
	}
	resp, a := post{id: "msg_over", body: paidBody}.do(t, url)
	if resp.StatusCode != 429 || a.Code != "rate_limited" {
		t.Fatalf("over the limit: %d %+v", resp.StatusCode, a)
	}
	// At half a webhook a second the next token is about 2 s away.
	if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 2 {
		t.Fatalf("Retry-After %q, want the 1-2 s until the next token", resp.Header.Get("Retry-After"))
	}
	if len(prod.recs) != 2 {
		t.Fatalf("%d records, want the 2 within the burst", len(prod.recs))
	}
}

func TestReadyzFollowsKafka(t *testing.T) {
	ready := false
	p, _ := providers.NewStandardWebhooks(providers.StandardWebhooksConfig{Secrets: []string{testSecret}})
	h, err := NewHandler(HandlerConfig{Providers: []providers.Provider{p}, Producer: nopProducer{}, Ready: func() bool { return ready }})
	if err != nil {
		t.Fatal(err)
	}
	url := newServer(t, h)
	for _, want := range []int{503, 200} {
		resp, err := http.Get(url + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("readyz %d with kafka ready=%v, want %d", resp.StatusCode, ready, want)
		}
		ready = true
	}
	if resp, err := http.Get(url + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v", err)
	}
}

// Every answer is counted by provider and outcome (a problem by its code),
// and an acceptance's latency observed.
func TestMetricsCountEveryAnswer(t *testing.T) {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "requests"}, []string{"provider", "outcome"})
	ack := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "ack"}, []string{"provider"})
	p, _ := providers.NewStandardWebhooks(providers.StandardWebhooksConfig{Secrets: []string{testSecret}})
	h, err := NewHandler(HandlerConfig{Providers: []providers.Provider{p}, Producer: nopProducer{}, Now: func() time.Time { return testNow },
		Metrics: Metrics{Requests: kitprometheus.NewCounter(requests), AckSeconds: kitprometheus.NewHistogram(ack),
			InFlight: kitprometheus.NewGauge(prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "in_flight"}, nil))}})
	if err != nil {
		t.Fatal(err)
	}
	url := newServer(t, h)
	post{id: "msg_m", body: paidBody}.do(t, url)
	post{id: "msg_m", body: paidBody}.do(t, url)
	post{id: "msg_bad", body: paidBody, sig: "v1,AAAA"}.do(t, url)
	post{path: "/webhooks/nope", body: paidBody}.do(t, url)
	for _, c := range []struct {
		provider, outcome string
	}{{"standardwebhooks", "accepted"}, {"standardwebhooks", "duplicate"}, {"standardwebhooks", "invalid_signature"}, {"unknown", "unknown_provider"}} {
		if n := testutil.ToFloat64(requests.WithLabelValues(c.provider, c.outcome)); n != 1 {
			t.Fatalf("%s %s counted %v times, want 1", c.provider, c.outcome, n)
		}
	}
	if n := testutil.CollectAndCount(ack); n != 1 {
		t.Fatalf("%d ack series, want 1", n)
	}
}
