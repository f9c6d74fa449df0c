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
