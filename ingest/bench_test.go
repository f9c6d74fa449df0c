package ingest

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/ingest/providers"
	"github.com/shopstream/shopstream/ingest/providers/providertest"
)

type nopProducer struct{}

func (nopProducer) Produce(_ context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	promise(r, nil)
}

// benchRequest makes signed requests of body, each a new delivery, so that
// the edge's window of recent deliveries never answers "duplicate".
func benchRequest(b *testing.B, body string) func() *http.Request {
	signer := providertest.StandardWebhooks{Key: testKey}
	n := 0
	return func() *http.Request {
		n++
		d := providertest.Delivery{ID: "msg_bench_" + strconv.Itoa(n), Body: []byte(body), At: time.Unix(1795521600, 0)}
		req, err := providertest.NewRequest(context.Background(), "/webhooks/standardwebhooks", signer, d)
		if err != nil {
			b.Fatal(err)
		}
		return req
	}
}

// BenchmarkHandler is ingest's own work per webhook (read, verify, map,
// encode one record) with Kafka replaced by a no-op; BenchmarkBareHandler
// reads the same body and answers, the floor any handler pays.
func BenchmarkHandler(b *testing.B) {
	p, _ := providers.NewStandardWebhooks(providers.StandardWebhooksConfig{Secrets: []string{testSecret}})
	h, _ := NewHandler(HandlerConfig{Providers: []providers.Provider{p}, Producer: nopProducer{},
		Now: func() time.Time { return time.Unix(1795521600, 0) }})
	newReq := benchRequest(b, paidBody)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, newReq())
		if w.Code != 200 || !strings.Contains(w.Body.String(), "accepted") {
			b.Fatal(w.Code, w.Body.String())
		}
	}
}

func BenchmarkBareHandler(b *testing.B) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"accepted"}`)
	})
	newReq := benchRequest(b, paidBody)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, newReq())
	}
}

// blockingProducer never answers, so the webhooks it is given hold their
// slots; it says on called when it has one.
type blockingProducer struct{ called chan struct{} }

func (p blockingProducer) Produce(context.Context, *kgo.Record, func(*kgo.Record, error)) {
	p.called <- struct{}{}
}

// BenchmarkRefusal is what a webhook refused for overload costs the handler
// (every slot held): under overload most requests take this path, and the
// share of the peak still accepted depends on its cost against an
// acceptance's.
func BenchmarkRefusal(b *testing.B) {
	p, _ := providers.NewStandardWebhooks(providers.StandardWebhooksConfig{Secrets: []string{testSecret}})
	prod := blockingProducer{called: make(chan struct{}, 1)}
	h, _ := NewHandler(HandlerConfig{Providers: []providers.Provider{p}, Producer: prod, MaxInFlight: 1,
		ProduceTimeout: time.Hour, Now: func() time.Time { return time.Unix(1795521600, 0) }})
	newReq := benchRequest(b, paidBody)
	go h.ServeHTTP(httptest.NewRecorder(), newReq())
	<-prod.called
	req := newReq()
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusServiceUnavailable {
			b.Fatal(w.Code, w.Body.String())
		}
	}
}
