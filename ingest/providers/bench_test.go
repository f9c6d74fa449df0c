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
