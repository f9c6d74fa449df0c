package providers

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/shopstream/shopstream/schemas/avro"
)

// The published Standard Webhooks test vector (the specification's and the
// reference libraries' own): it proves interoperability, which a round trip
// through our own signer could not.
const (
	vecSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vecID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vecTS     = "1614265330"
	vecBody   = `{"test": 2432232314}`
	vecSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

var vecTime = time.Unix(1614265330, 0)

func headers(id, ts, sig string) http.Header {
	h := http.Header{}
	for k, v := range map[string]string{"webhook-id": id, "webhook-timestamp": ts, "webhook-signature": sig} {
		if v != "" {
			h.Set(k, v)
		}
	}
	return h
}

func TestSignReproducesTheTestVector(t *testing.T) {
	key, _ := base64.StdEncoding.DecodeString(vecSecret[len("whsec_"):])
	if got := Sign(key, vecID, vecTime, []byte(vecBody)); got != vecSig {
		t.Fatalf("Sign = %s, want %s", got, vecSig)
	}
}

func TestVerify(t *testing.T) {
	p, err := NewStandardWebhooks(StandardWebhooksConfig{Secrets: []string{vecSecret}})
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := NewStandardWebhooks(StandardWebhooksConfig{Secrets: []string{"whsec_" + base64.StdEncoding.EncodeToString([]byte("new")), vecSecret}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		p    *StandardWebhooks
		h    http.Header
		body string
		now  time.Time
		want error
	}{
		{"test vector", p, headers(vecID, vecTS, vecSig), vecBody, vecTime, nil},
		{"second secret during a rotation", rotated, headers(vecID, vecTS, vecSig), vecBody, vecTime, nil},
		{"one of several signatures", p, headers(vecID, vecTS, "v1,bm9wZQ== v1a,xyz "+vecSig), vecBody, vecTime, nil},
		{"within tolerance, late", p, headers(vecID, vecTS, vecSig), vecBody, vecTime.Add(299 * time.Second), nil},
		{"within tolerance, early clock", p, headers(vecID, vecTS, vecSig), vecBody, vecTime.Add(-299 * time.Second), nil},
		{"tampered body", p, headers(vecID, vecTS, vecSig), `{"test": 2432232315}`, vecTime, ErrInvalidSignature},
		{"other id", p, headers("msg_other", vecTS, vecSig), vecBody, vecTime, ErrInvalidSignature},
		{"timestamp moved within tolerance", p, headers(vecID, "1614265331", vecSig), vecBody, vecTime, ErrInvalidSignature},
		{"asymmetric v1a only", p, headers(vecID, vecTS, "v1a,"+vecSig[3:]), vecBody, vecTime, ErrInvalidSignature},
		{"not base64", p, headers(vecID, vecTS, "v1,%%%"), vecBody, vecTime, ErrInvalidSignature},
		{"stale", p, headers(vecID, vecTS, vecSig), vecBody, vecTime.Add(301 * time.Second), ErrStaleTimestamp},
		{"from the future", p, headers(vecID, vecTS, vecSig), vecBody, vecTime.Add(-301 * time.Second), ErrStaleTimestamp},
		{"timestamp not seconds", p, headers(vecID, "2021-02-25T15:02:10Z", vecSig), vecBody, vecTime, ErrInvalidSignature},
		{"no id", p, headers("", vecTS, vecSig), vecBody, vecTime, ErrMissingSignature},
		{"no timestamp", p, headers(vecID, "", vecSig), vecBody, vecTime, ErrMissingSignature},
		{"no signature", p, headers(vecID, vecTS, ""), vecBody, vecTime, ErrMissingSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := tt.p.Verify(tt.h, []byte(tt.body), tt.now)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
			if err == nil && (d.ID != vecID || !d.SignedAt.Equal(vecTime)) {
				t.Fatalf("delivery %+v", d)
			}
		})
	}
}

func TestNewStandardWebhooksRejectsBadSecrets(t *testing.T) {
	for _, s := range [][]string{nil, {"whsec_"}, {"whsec_not base64!"}} {
		if _, err := NewStandardWebhooks(StandardWebhooksConfig{Secrets: s}); err == nil {
			t.Errorf("secret %q accepted", s)
		}
	}
}

func TestMap(t *testing.T) {
	p, _ := NewStandardWebhooks(StandardWebhooksConfig{Secrets: []string{vecSecret}})
	d := Delivery{ID: "msg_1"}
	const paid = `{"type":"order.paid","timestamp":"2026-11-24T10:00:00.123456Z","data":{"order_id":"o-1","currency":"EUR",
		"line_items":[{"id":"l1","sku":"SKU-A","quantity":2,"unit_price_minor":1999},{"sku":"SKU-B","quantity":1}]}}`
	e, err := orderOf(p.Map(d, []byte(paid)))
	if err != nil {
		t.Fatal(err)
	}
	want := avro.OrderEvent{EventID: "msg_1", Provider: "standardwebhooks", Type: avro.OrderPaid, OrderID: "o-1",
		Version: time.Date(2026, 11, 24, 10, 0, 0, 123e6, time.UTC).UnixMilli(), Currency: "EUR"}
	if e.EventID != want.EventID || e.Type != want.Type || e.OrderID != want.OrderID || e.Version != want.Version ||
		e.Currency != want.Currency || e.Provider != want.Provider || len(e.Lines) != 2 ||
		e.Lines[0] != (avro.LineItem{LineID: "l1", SKU: "SKU-A", Quantity: 2, UnitPriceMinor: 1999}) ||
		e.Lines[1] != (avro.LineItem{LineID: "2", SKU: "SKU-B", Quantity: 1}) {
		t.Fatalf("mapped %+v", e)
	}
	versioned, err := orderOf(p.Map(d, []byte(`{"type":"order.cancelled","timestamp":"2026-11-24T10:00:00Z","data":{"order_id":"o","version":42}}`)))
	if err != nil || versioned.Version != 42 || versioned.Type != avro.OrderCancelled {
		t.Fatalf("versioned: %+v %v", versioned, err)
	}
	if e, err := orderOf(p.Map(d, []byte(`{"type":"customer.created","timestamp":"2026-11-24T10:00:00Z","data":{}}`))); e != nil || err != nil {
		t.Fatalf("a non-order event maps to %v, %v; want nil, nil", e, err)
	}
	for name, body := range map[string]string{
		"not json":          `{"type":`,
		"no type":           `{"timestamp":"2026-11-24T10:00:00Z","data":{"order_id":"o"}}`,
		"bad timestamp":     `{"type":"order.paid","timestamp":"yesterday","data":{"order_id":"o"}}`,
		"no order id":       `{"type":"order.paid","timestamp":"2026-11-24T10:00:00Z","data":{}}`,
		"line without sku":  `{"type":"order.paid","timestamp":"2026-11-24T10:00:00Z","data":{"order_id":"o","line_items":[{"quantity":1}]}}`,
		"negative quantity": `{"type":"order.paid","timestamp":"2026-11-24T10:00:00Z","data":{"order_id":"o","line_items":[{"sku":"S","quantity":-1}]}}`,
		"quantity as text":  `{"type":"order.paid","timestamp":"2026-11-24T10:00:00Z","data":{"order_id":"o","line_items":[{"sku":"S","quantity":"1"}]}}`,
	} {
		if _, err := orderOf(p.Map(d, []byte(body))); !errors.Is(err, ErrMalformedPayload) {
			t.Errorf("%s: err %v, want ErrMalformedPayload", name, err)
		}
	}
}

func FuzzStandardWebhooks(f *testing.F) {
	p, _ := NewStandardWebhooks(StandardWebhooksConfig{Secrets: []string{vecSecret}})
	f.Add(vecID, vecTS, vecSig, []byte(vecBody))
	f.Add("msg", "1614265330", "v1,", []byte(`{"type":"order.paid","timestamp":"2026-11-24T10:00:00Z","data":{"order_id":"o","line_items":[{"sku":"S","quantity":1}]}}`))
	f.Fuzz(func(t *testing.T, id, ts, sig string, body []byte) {
		_, err := p.Verify(headers(id, ts, sig), body, vecTime)
		if err == nil && (id != vecID || string(body) != vecBody) {
			t.Fatalf("verified a delivery that is not the vector: %q %q", id, body)
		}
		e, err := orderOf(p.Map(Delivery{ID: "x"}, body))
		if err != nil && !errors.Is(err, ErrMalformedPayload) {
			t.Fatalf("unclassified error %v", err)
		}
		if e != nil {
			for _, l := range e.Lines {
				if l.SKU == "" || l.Quantity <= 0 {
					t.Fatalf("mapped an invalid line %+v", l)
				}
			}
		}
	})
}

// The specification's own Go library signs, we verify; we sign, it
// verifies: the key, the signed content and the encoding are the
// reference's, byte for byte, which a round trip through our own code
// could not show.
func TestTheReferenceLibraryAndWeAgree(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	ref, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewStandardWebhooks(StandardWebhooksConfig{Secrets: []string{secret}})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"type":"order.paid","timestamp":"2026-11-24T10:00:00Z","data":{"order_id":"o-1","line_items":[{"sku":"S","quantity":1}]}}`)
	now := time.Now()
	sig, err := ref.Sign("msg_ref", now, body)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Verify(headers("msg_ref", strconv.FormatInt(now.Unix(), 10), sig), body, now); err != nil {
		t.Fatalf("the reference library's signature was refused: %v", err)
	}
	key, _ := StandardWebhooksKey(secret)
	ours := headers("msg_ours", strconv.FormatInt(now.Unix(), 10), Sign(key, "msg_ours", now, body))
	if err := ref.Verify(body, ours); err != nil {
		t.Fatalf("the reference library refused our signature: %v", err)
	}
	if err := ref.Verify(append(body, ' '), ours); err == nil {
		t.Fatal("the reference library accepted a tampered body: the test proves nothing")
	}
}

// A key's HMAC states are reused across requests: checks running at once,
// under either of two secrets during a rotation, must each get their own
// state and never a sum left by another.
func TestVerifyConcurrentlyWithReusedStates(t *testing.T) {
	other := "whsec_" + base64.StdEncoding.EncodeToString([]byte("another secret, rotated in"))
	p, err := NewStandardWebhooks(StandardWebhooksConfig{Secrets: []string{vecSecret, other}})
	if err != nil {
		t.Fatal(err)
	}
	keyOf := func(s string) []byte { k, _ := StandardWebhooksKey(s); return k }
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				body := []byte(fmt.Sprintf(`{"n":%d,"g":%d}`, i, g))
				secret := []string{vecSecret, other}[i%2]
				h := http.Header{}
				h.Set("Webhook-Id", vecID)
				h.Set("Webhook-Timestamp", vecTS)
				h.Set("Webhook-Signature", Sign(keyOf(secret), vecID, vecTime, body))
				if _, err := p.Verify(h, body, vecTime); err != nil {
					errs <- fmt.Errorf("goroutine %d, delivery %d: a good signature refused: %w", g, i, err)
					return
				}
				if _, err := p.Verify(h, append(body, ' '), vecTime); !errors.Is(err, ErrInvalidSignature) {
					errs <- fmt.Errorf("goroutine %d, delivery %d: a changed body gave %v, want ErrInvalidSignature", g, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
