package ingest

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/ingest/providers"
	"github.com/shopstream/shopstream/ingest/providers/providertest"
	"github.com/shopstream/shopstream/schemas/avro"
	"github.com/shopstream/shopstream/topology"
)

var (
	testKey    = []byte("shopstream-test-secret")
	testSecret = "whsec_" + base64.StdEncoding.EncodeToString(testKey)
	testNow    = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
)

const paidBody = `{"type":"order.paid","timestamp":"2026-11-24T11:59:59Z","data":{"order_id":"o-1","line_items":[{"id":"1","sku":"SKU-A","quantity":2}]}}`

func ptr(s string) *string { return &s }

// json with its parameters is json: providers send "; charset=utf-8".
func TestJSONWithACharsetIsAccepted(t *testing.T) {
	prod := &recordingProducer{}
	url := newTestServer(t, prod, nil)
	if resp, a := (post{body: paidBody, contentType: ptr("application/json; charset=utf-8")}).do(t, url); resp.StatusCode != 200 {
		t.Fatalf("got %d %+v", resp.StatusCode, a)
	}
}

// testenvEventually waits up to 5 s for cond.
func testenvEventually(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
	}
}

// recordingProducer keeps what is produced: receipts in recs, the edge's
// outcomes apart in outcomes.
type recordingProducer struct {
	mu       sync.Mutex
	recs     []*kgo.Record
	outcomes []*kgo.Record
	err      error
}

func (p *recordingProducer) Produce(_ context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	p.mu.Lock()
	err := p.err
	switch {
	case err != nil:
	case strings.HasSuffix(r.Topic, topology.Outcomes):
		p.outcomes = append(p.outcomes, r)
	default:
		p.recs = append(p.recs, r)
	}
	p.mu.Unlock()
	promise(r, err)
}

// reported returns the outcomes produced, as "<outcome> <reason> <status>
// <delivery id> <event type>".
func (p *recordingProducer) reported(t *testing.T) []string {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, r := range p.outcomes {
		var o avro.WebhookOutcome
		if err := avro.Default().Unmarshal(r.Value, &o); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s %s %d %s %s", o.Outcome, o.Reason, o.Status, o.DeliveryID, o.EventType))
	}
	return out
}

func newTestServer(t *testing.T, prod Producer, dedup Deduper) string {
	t.Helper()
	p, err := providers.NewStandardWebhooks(providers.StandardWebhooksConfig{Secrets: []string{testSecret}})
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewHandler(HandlerConfig{Providers: []providers.Provider{p}, Producer: prod, Dedup: dedup,
		MaxBodyBytes: 4096, Now: func() time.Time { return testNow }, Topics: topology.NamesFor("")})
	if err != nil {
		t.Fatal(err)
	}
	return newServer(t, h)
}

func newServer(t *testing.T, h http.Handler) string {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

type post struct {
	path, method, id, body string
	contentType            *string
	signedAt               time.Time
	sig                    string
}

// answer is any answer: a problem (application/problem+json), or an
// acceptance's status.
type answer struct {
	Problem
	Accepted struct {
		Status string `json:"status"`
	}
}

func (p post) do(t *testing.T, url string) (*http.Response, answer) {
	t.Helper()
	if p.path == "" {
		p.path = "/webhooks/standardwebhooks"
	}
	if p.id == "" {
		p.id = "msg_1"
	}
	if p.signedAt.IsZero() {
		p.signedAt = testNow
	}
	req, err := providertest.NewRequest(context.Background(), url+p.path, providertest.StandardWebhooks{Key: testKey},
		providertest.Delivery{ID: p.id, Body: []byte(p.body), At: p.signedAt, Method: p.method})
	if err != nil {
		t.Fatal(err)
	}
	if p.sig != "" {
		req.Header.Set("Webhook-Signature", p.sig)
	}
	if p.contentType != nil {
		req.Header.Set("Content-Type", *p.contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a answer
	into := any(&a.Accepted)
	if resp.Header.Get("Content-Type") == "application/problem+json" {
		into = &a.Problem
	}
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		t.Fatalf("answer is not JSON: %v", err)
	}
	return resp, a
}

func TestRejectionsChangeNothing(t *testing.T) {
	prod := &recordingProducer{}
	url := newTestServer(t, prod, nil)
	tests := []struct {
		name   string
		p      post
		status int
		code   string
	}{
		{"bad signature", post{body: paidBody, sig: "v1,AAAA"}, 401, "invalid_signature"},
		{"signed by another key", post{body: paidBody, sig: providers.Sign([]byte("other"), "msg_1", testNow, []byte(paidBody))}, 401, "invalid_signature"},
		{"stale timestamp", post{body: paidBody, signedAt: testNow.Add(-6 * time.Minute)}, 401, "stale_timestamp"},
		{"timestamp from the future", post{body: paidBody, signedAt: testNow.Add(6 * time.Minute)}, 401, "stale_timestamp"},
		{"oversized body", post{body: `{"type":"order.paid","pad":"` + strings.Repeat("x", 5000) + `"}`}, 413, "body_too_large"},
		{"malformed json", post{body: `{"type":"order.paid",`}, 400, "malformed_payload"},
		{"order without id", post{body: `{"type":"order.paid","timestamp":"2026-11-24T11:59:59Z","data":{}}`}, 400, "malformed_payload"},
		{"unknown provider", post{path: "/webhooks/nope", body: paidBody}, 404, "unknown_provider"},
		{"wrong method", post{method: http.MethodGet, body: ""}, 405, "method_not_allowed"},
		{"form instead of json", post{body: paidBody, contentType: ptr("application/x-www-form-urlencoded")}, 415, "unsupported_media_type"},
		{"no content type", post{body: paidBody, contentType: ptr("")}, 415, "unsupported_media_type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := tt.p.do(t, url)
			if resp.StatusCode != tt.status || body.Code != tt.code || body.Detail == "" || body.Status != tt.status ||
				body.Type != "urn:shopstream:problem:"+tt.code || body.Title != http.StatusText(tt.status) {
				t.Fatalf("got %d %+v, want %d %s", resp.StatusCode, body, tt.status, tt.code)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("content type %q", ct)
			}
		})
	}
	if len(prod.recs) != 0 {
		t.Fatalf("rejected deliveries produced %d records", len(prod.recs))
	}
}

func TestAcceptedDeliveryIsWrittenBeforeTheAnswer(t *testing.T) {
	prod := &recordingProducer{}
	url := newTestServer(t, prod, nil)
	resp, _ := post{id: "msg_ok", body: paidBody}.do(t, url)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if len(prod.recs) != 1 {
		t.Fatalf("produced %d records, want one receipt carrying its order event", len(prod.recs))
	}
	raw := prod.recs[0]
	if raw.Topic != topology.WebhooksRaw || string(raw.Key) != "msg_ok" {
		t.Fatalf("record %s/%s", raw.Topic, raw.Key)
	}
	var receipt avro.WebhookReceipt
	if err := avro.Default().Unmarshal(raw.Value, &receipt); err != nil {
		t.Fatal(err)
	}
	if string(receipt.Body) != paidBody || receipt.Headers["webhook-id"] != "msg_ok" {
		t.Fatalf("receipt %+v", receipt)
	}
	if _, ok := receipt.Headers["webhook-signature"]; ok {
		t.Fatal("the receipt kept the signature")
	}
	e := receipt.Event
	if e == nil {
		t.Fatal("the receipt carries no order event")
	}
	if e.EventID != "msg_ok" || e.Type != avro.OrderPaid || e.Lines[0].SKU != "SKU-A" || !e.ReceivedAt.Equal(testNow) || e.CorrelationID == "" {
		t.Fatalf("event %+v", e)
	}
}

func TestNonOrderEventKeepsOnlyAReceipt(t *testing.T) {
	prod := &recordingProducer{}
	url := newTestServer(t, prod, nil)
	resp, _ := post{body: `{"type":"customer.created","timestamp":"2026-11-24T11:59:59Z","data":{}}`}.do(t, url)
	if resp.StatusCode != 200 || len(prod.recs) != 1 || prod.recs[0].Topic != topology.WebhooksRaw {
		t.Fatalf("status %d, %d records", resp.StatusCode, len(prod.recs))
	}
	var receipt avro.WebhookReceipt
	if err := avro.Default().Unmarshal(prod.recs[0].Value, &receipt); err != nil || receipt.Event != nil {
		t.Fatalf("receipt %+v (%v), want one without an event", receipt, err)
	}
}

func TestKafkaFailureIs503WithRetryAfter(t *testing.T) {
	url := newTestServer(t, &recordingProducer{err: errors.New("broker gone")}, nil)
	resp, body := post{body: paidBody}.do(t, url)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "5" || body.Code != "unavailable" {
		t.Fatalf("got %d retry-after %q %+v", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if strings.Contains(body.Detail, "broker gone") {
		t.Fatal("Kafka's detail leaked into the answer")
	}
}

func TestDuplicateDeliveryIsAnsweredWithoutAWrite(t *testing.T) {
	prod := &recordingProducer{}
	dedup := NewRecentDeliveries(0)
	url := newTestServer(t, prod, dedup)
	for i, want := range []string{"accepted", "duplicate"} {
		resp, a := post{id: "msg_dup", body: paidBody}.do(t, url)
		if resp.StatusCode != 200 || a.Accepted.Status != want {
			t.Fatalf("attempt %d: %d %q, want 200 %q", i, resp.StatusCode, a.Accepted.Status, want)
		}
	}
	if len(prod.recs) != 1 {
		t.Fatalf("a duplicate was written again: %d records", len(prod.recs))
	}
	if c, _ := dedup.Claim(context.Background(), "standardwebhooks:msg_busy"); c != ClaimNew {
		t.Fatalf("claim %v", c)
	}
	resp, body := post{id: "msg_busy", body: paidBody}.do(t, url)
	if resp.StatusCode != 409 || body.Code != "delivery_in_flight" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("in flight: %d %+v", resp.StatusCode, body)
	}
}

// A failed write releases the claim: the provider's retry must go through.
func TestFailedWriteReleasesTheClaim(t *testing.T) {
	prod := &recordingProducer{err: errors.New("down")}
	url := newTestServer(t, prod, NewRecentDeliveries(0))
	if resp, _ := (post{id: "msg_r", body: paidBody}).do(t, url); resp.StatusCode != 503 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	prod.err = nil
	if resp, _ := (post{id: "msg_r", body: paidBody}).do(t, url); resp.StatusCode != 200 || len(prod.recs) != 1 {
		t.Fatalf("retry: status %d, %d records", resp.StatusCode, len(prod.recs))
	}
}

// hangingProducer keeps its promises until the test resolves them, as an
// idempotent producer does while the broker is gone.
type hangingProducer struct {
	mu       sync.Mutex
	promises []func()
}

func (p *hangingProducer) Produce(_ context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.promises = append(p.promises, func() { promise(r, nil) })
}

// resolveSoon resolves the next promise once it is made.
func (p *hangingProducer) resolveSoon() {
	for {
		p.mu.Lock()
		n := len(p.promises)
		p.mu.Unlock()
		if n > 0 {
			p.resolve()
			return
		}
		time.Sleep(time.Millisecond)
	}
}

func (p *hangingProducer) resolve() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range p.promises {
		f()
	}
	p.promises = nil
}

// Kafka does not answer: the provider is told 503 when ProduceTimeout
// passes, not left waiting. When the write lands later, the provider's
// retry is answered as a duplicate rather than written again.
func TestNoAcknowledgementIs503InTimeAndALateOneCompletesTheClaim(t *testing.T) {
	prod := &hangingProducer{}
	p, _ := providers.NewStandardWebhooks(providers.StandardWebhooksConfig{Secrets: []string{testSecret}})
	h, err := NewHandler(HandlerConfig{Providers: []providers.Provider{p}, Producer: prod,
		ProduceTimeout: 200 * time.Millisecond, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	url := newServer(t, h)
	resp, a := post{id: "msg_slow", body: paidBody}.do(t, url)
	if resp.StatusCode != 503 || a.Code != "unavailable" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("got %d %+v", resp.StatusCode, a)
	}
	if resp, _ := (post{id: "msg_slow", body: paidBody}).do(t, url); resp.StatusCode != 409 {
		t.Fatalf("a retry while the first write is unresolved: %d, want 409", resp.StatusCode)
	}
	prod.resolve()
	// The late outcome is settled off the request, a moment later.
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, a := post{id: "msg_slow", body: paidBody}.do(t, url)
		if resp.StatusCode == 200 && a.Accepted.Status == "duplicate" {
			break
		}
		if resp.StatusCode != 409 || time.Now().After(deadline) {
			t.Fatalf("a retry after the late acknowledgement: %d %q, want 200 duplicate", resp.StatusCode, a.Accepted.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// More webhooks than MaxInFlight: the ones admitted are answered when Kafka
// acknowledges, the excess is told 503 with Retry-After once QueueWait has
// passed (at once without one), without its body being read or anything
// written.
func TestOverloadIs503WithRetryAfterAndWritesNothing(t *testing.T) {
	for _, wait := range []time.Duration{0, 50 * time.Millisecond} {
		t.Run(fmt.Sprint("queue wait ", wait), func(t *testing.T) {
			prod := &hangingProducer{}
			p, _ := providers.NewStandardWebhooks(providers.StandardWebhooksConfig{Secrets: []string{testSecret}})
			h, err := NewHandler(HandlerConfig{Providers: []providers.Provider{p}, Producer: prod, MaxInFlight: 2,
				QueueWait: wait, Now: func() time.Time { return testNow }})
			if err != nil {
				t.Fatal(err)
			}
			url := newServer(t, h)
			admitted := make(chan int, 2)
			for i := range 2 {
				go func() {
					resp, _ := post{id: fmt.Sprintf("msg_admitted_%d", i), body: paidBody}.do(t, url)
					admitted <- resp.StatusCode
				}()
			}
			testenvEventually(t, func() bool { prod.mu.Lock(); defer prod.mu.Unlock(); return len(prod.promises) == 2 })
			start := time.Now()
			resp, a := post{id: "msg_excess", body: paidBody}.do(t, url)
			if resp.StatusCode != 503 || a.Code != "overloaded" || resp.Header.Get("Retry-After") == "" {
				t.Fatalf("the excess got %d %+v", resp.StatusCode, a)
			}
			if waited := time.Since(start); waited < wait {
				t.Fatalf("the excess was refused after %v, before QueueWait", waited)
			}
			prod.mu.Lock()
			if n := len(prod.promises); n != 2 {
				t.Fatalf("%d writes, want the 2 admitted", n)
			}
			prod.mu.Unlock()
			prod.resolve()
			for range 2 {
				if s := <-admitted; s != 200 {
					t.Fatalf("an admitted webhook got %d", s)
				}
			}
			// Slots are given back: the next one is admitted.
			go prod.resolveSoon()
			if resp, _ := (post{id: "msg_after", body: paidBody}).do(t, url); resp.StatusCode != 200 {
				t.Fatalf("after the overload: %d", resp.StatusCode)
			}
		})
	}
}

// A client that sends its headers and then trickles its body is answered
// 408 once BodyReadTimeout passes, and gives its slot back.
func TestASlowBodyIs408AndFreesItsSlot(t *testing.T) {
	p, _ := providers.NewStandardWebhooks(providers.StandardWebhooksConfig{Secrets: []string{testSecret}})
	prod := &recordingProducer{}
	h, err := NewHandler(HandlerConfig{Providers: []providers.Provider{p}, Producer: prod, MaxInFlight: 1,
		BodyReadTimeout: 200 * time.Millisecond, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	url := newServer(t, h)
	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /webhooks/standardwebhooks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"type\"")
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("a slow body got %d, want 408", resp.StatusCode)
	}
	if r, _ := (post{id: "msg_next", body: paidBody}).do(t, url); r.StatusCode != 200 || len(prod.recs) != 1 {
		t.Fatalf("after the slow client: %d, %d records", r.StatusCode, len(prod.recs))
	}
}

// The stage's documented defaults are the ones it runs with when nothing
// is set.
func TestConfigDefaults(t *testing.T) {
	var c Config
	c.setDefaults()
	if c.Listen != "127.0.0.1:8080" || c.MaxBodyBytes != 1<<20 {
		t.Fatalf("defaults %+v differ from the documented 127.0.0.1:8080 and 1 MiB", c)
	}
	var h HandlerConfig
	h.Providers, h.Producer = []providers.Provider{nil}, nopProducer{}
	if err := h.setDefaults(); err != nil || h.MaxBodyBytes != 1<<20 || h.ProduceTimeout != 10*time.Second || h.RetryAfter != 5*time.Second ||
		h.MaxInFlight != 256 || h.QueueWait != 0 || h.Dedup == nil {
		t.Fatalf("handler defaults %+v (%v) differ from the documented 1 MiB, 10s, 5s, 256 in flight and no queue wait", h, err)
	}
}
