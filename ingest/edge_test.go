package ingest

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shopstream/shopstream/ingest/providers"
	"github.com/shopstream/shopstream/ingest/providers/providertest"
	"github.com/shopstream/shopstream/schemas/envelope"
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
	m := NewMetrics(prometheus.NewRegistry())
	p, _ := providers.NewStandardWebhooks(providers.StandardWebhooksConfig{Secrets: []string{testSecret}})
	h, err := NewHandler(HandlerConfig{Providers: []providers.Provider{p}, Producer: nopProducer{}, Now: func() time.Time { return testNow },
		Metrics: m})
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
		if n := testutil.ToFloat64(m.Requests.WithLabelValues(c.provider, c.outcome)); n != 1 {
			t.Fatalf("%s %s counted %v times, want 1", c.provider, c.outcome, n)
		}
	}
	if n := testutil.CollectAndCount(m.AckSeconds); n != 1 {
		t.Fatalf("%d ack series, want 1", n)
	}
}

// One correlation id follows a webhook: the sender's X-Request-Id when it
// sent one, else a new one, echoed in the answer and carried in the record.
func TestTheCorrelationIDIsEchoedAndCarried(t *testing.T) {
	prod := &recordingProducer{}
	url := newTestServer(t, prod, nil)
	req := func(id, reqID string) *http.Response {
		r, err := providertest.NewRequest(context.Background(), url+"/webhooks/standardwebhooks", providertest.StandardWebhooks{Key: testKey},
			providertest.Delivery{ID: id, Body: []byte(paidBody), At: testNow})
		if err != nil {
			t.Fatal(err)
		}
		if reqID != "" {
			r.Header.Set("X-Request-Id", reqID)
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if got := req("msg_c1", "req-42").Header.Get("X-Request-Id"); got != "req-42" {
		t.Fatalf("echoed %q, want the sender's req-42", got)
	}
	if v, _ := envelope.Header(prod.recs[0], envelope.HeaderCorrelationID); v != "req-42" {
		t.Fatalf("record carries %q", v)
	}
	made := req("msg_c2", "bad id with spaces").Header.Get("X-Request-Id")
	if made == "" || strings.Contains(made, " ") {
		t.Fatalf("a new id was not made for an unusable one: %q", made)
	}
	if v, _ := envelope.Header(prod.recs[1], envelope.HeaderCorrelationID); v != made {
		t.Fatalf("record carries %q, answer %q", v, made)
	}
}

// Whatever happens to a webhook, no log line holds the secret, the
// signature or what the payload says of a person.
func TestNoSecretSignatureOrPersonalDataIsLogged(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	const personal = `{"type":"order.paid","timestamp":"2026-11-24T11:59:59Z","data":{"order_id":"o-9","customer":{"email":"jane.doe@example.com","name":"Jane Doe"},"line_items":[{"id":"1","sku":"SKU-A","quantity":1}]}}`
	p, _ := providers.NewStandardWebhooks(providers.StandardWebhooksConfig{Secrets: []string{testSecret}})
	for _, prod := range []Producer{&recordingProducer{}, &recordingProducer{err: errors.New("broker gone")}} {
		h, err := NewHandler(HandlerConfig{Providers: []providers.Provider{p}, Producer: prod, Logger: log, Now: func() time.Time { return testNow }})
		if err != nil {
			t.Fatal(err)
		}
		url := newServer(t, h)
		post{id: "msg_p", body: personal}.do(t, url)
		post{id: "msg_p", body: personal}.do(t, url)
		post{id: "msg_f", body: personal, sig: "v1,AAAA"}.do(t, url)
		post{id: "msg_s", body: personal, signedAt: testNow.Add(-time.Hour)}.do(t, url)
		post{id: "msg_m", body: `{"type":"order.paid",`}.do(t, url)
	}
	if logs.Len() == 0 {
		t.Fatal("nothing was logged: the test would prove nothing")
	}
	sig := providers.Sign(testKey, "msg_p", testNow, []byte(personal))
	for _, secret := range []string{testSecret, string(testKey), sig[3:], "jane.doe@example.com", "Jane Doe"} {
		if strings.Contains(logs.String(), secret) {
			t.Fatalf("a log line holds %q:\n%s", secret, logs.String())
		}
	}
}

// A provider's allow-list turns away other addresses with 403 before any
// signature is computed; behind a trusted proxy the forwarded address is
// judged, and a forwarded address from an untrusted peer is not believed.
func TestAllowListJudgesTheTrustedClientAddress(t *testing.T) {
	var allow, proxies []netip.Prefix
	if err := (prefixes{&allow}).Set("203.0.113.0/24, 198.51.100.7, ::ffff:192.0.2.200, ::ffff:192.0.2.128/121"); err != nil {
		t.Fatal(err)
	}
	if err := (prefixes{&proxies}).Set("10.0.0.0/8"); err != nil {
		t.Fatal(err)
	}
	if err := (prefixes{&proxies}).Set("10.0.0.0/33"); err == nil {
		t.Fatal("a bad CIDR was accepted")
	}
	s := Sources{Allow: map[string][]netip.Prefix{"standardwebhooks": allow}, TrustedProxies: proxies}
	reached := 0
	reject := encodeError(time.Second, slog.Default(), func(context.Context, int, string) {})
	h := s.allow("standardwebhooks", func(r *http.Request, err error, w http.ResponseWriter) { reject(r.Context(), err, w) },
		http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached++ }))
	for _, tt := range []struct {
		name, remote, forwarded string
		ok                      bool
	}{
		{"allowed range, direct", "203.0.113.9:5000", "", true},
		{"allowed address, direct", "198.51.100.7:5000", "", true},
		{"elsewhere, direct", "192.0.2.1:5000", "", false},
		{"allowed in the mapped form, direct", "192.0.2.200:5000", "", true},
		{"in a range written in the mapped form", "192.0.2.130:5000", "", true},
		{"a mapped client address", "[::ffff:198.51.100.7]:5000", "", true},
		{"elsewhere claiming an allowed address", "192.0.2.1:5000", "203.0.113.9", false},
		{"allowed, behind the trusted proxy", "10.1.2.3:5000", "203.0.113.9", true},
		{"allowed, behind two trusted proxies", "10.1.2.3:5000", "203.0.113.9, 10.9.9.9", true},
		{"a forged first hop behind the proxy", "10.1.2.3:5000", "203.0.113.9, 192.0.2.1", false},
		{"garbage forwarded", "10.1.2.3:5000", "not-an-ip", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := reached
			r := httptest.NewRequest(http.MethodPost, "/webhooks/standardwebhooks", nil)
			r.RemoteAddr = tt.remote
			if tt.forwarded != "" {
				r.Header.Set("X-Forwarded-For", tt.forwarded)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if got := reached > before; got != tt.ok || (!tt.ok && w.Code != http.StatusForbidden) {
				t.Fatalf("reached %v, status %d; want reached %v", got, w.Code, tt.ok)
			}
		})
	}
}
