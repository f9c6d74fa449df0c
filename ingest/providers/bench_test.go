package providers

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"
)

// BenchmarkVerify is one signature check of a 1 KiB body.
func BenchmarkVerify(b *testing.B) {
	p, _ := NewStandardWebhooks(StandardWebhooksConfig{Secrets: []string{vecSecret}})
	key, _ := base64.StdEncoding.DecodeString(vecSecret[len("whsec_"):])
	body := []byte(strings.Repeat("x", 1024))
	h := http.Header{}
	h.Set("Webhook-Id", vecID)
	h.Set("Webhook-Timestamp", vecTS)
	h.Set("Webhook-Signature", Sign(key, vecID, vecTime, body))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Verify(h, body, vecTime.Add(time.Second)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMap is the parse and check of a two-line order: the edge's
// minimal validation.
func BenchmarkMap(b *testing.B) {
	p, _ := NewStandardWebhooks(StandardWebhooksConfig{Secrets: []string{vecSecret}})
	body := []byte(`{"type":"order.paid","timestamp":"2026-11-24T11:59:59.123Z","data":{"order_id":"o-1","currency":"EUR","line_items":[{"id":"1","sku":"SKU-A","quantity":2,"unit_price_minor":1999},{"id":"2","sku":"SKU-B","quantity":1,"unit_price_minor":500}]}}`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if e, err := orderOf(p.Map(Delivery{ID: "msg_1"}, body)); err != nil || e == nil {
			b.Fatal(err)
		}
	}
}
