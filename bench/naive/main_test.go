package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/ingest"
	"github.com/shopstream/shopstream/ingest/providers"
	"github.com/shopstream/shopstream/ingest/providers/providertest"
)

// heldProducer never answers, so the one webhook it is given keeps ingest's
// only slot.
type heldProducer struct{ called chan struct{} }

func (p heldProducer) Produce(context.Context, *kgo.Record, func(*kgo.Record, error)) {
	p.called <- struct{}{}
}

// The refusal-only server is the floor of ingest's overload answer, so it
// must write that answer: the same status, body and headers.
func TestRefusalIsIngestsOverloadAnswer(t *testing.T) {
	key := []byte("naive-test-secret")
	p, err := providers.NewStandardWebhooks(providers.StandardWebhooksConfig{Secrets: []string{"whsec_bmFpdmUtdGVzdC1zZWNyZXQ="}})
	if err != nil {
		t.Fatal(err)
	}
	prod := heldProducer{called: make(chan struct{}, 1)}
	h, err := ingest.NewHandler(ingest.HandlerConfig{Providers: []providers.Provider{p}, Producer: prod, MaxInFlight: 1, ProduceTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	request := func(n int) *http.Request {
		d := providertest.Delivery{ID: "msg_" + strconv.Itoa(n), At: time.Now(),
			Body: []byte(`{"type":"order.paid","timestamp":"2026-11-24T11:59:59Z","data":{"order_id":"o-1","line_items":[{"id":"1","sku":"A","quantity":1}]}}`)}
		r, err := providertest.NewRequest(context.Background(), "/webhooks/standardwebhooks", providertest.StandardWebhooks{Key: key}, d)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	go h.ServeHTTP(httptest.NewRecorder(), request(1))
	<-prod.called
	got := httptest.NewRecorder()
	h.ServeHTTP(got, request(2))
	want := httptest.NewRecorder()
	refuse(want, httptest.NewRequest(http.MethodPost, "/webhooks/standardwebhooks", nil))
	if got.Code != want.Code || got.Body.String() != want.Body.String() {
		t.Fatalf("ingest answers %d %q; the refusal-only server %d %q", got.Code, got.Body, want.Code, want.Body)
	}
	for _, k := range []string{"Retry-After", "Content-Type"} {
		if g, w := got.Header().Get(k), want.Header().Get(k); g != w {
			t.Errorf("%s: ingest %q, the refusal-only server %q", k, g, w)
		}
	}
}
