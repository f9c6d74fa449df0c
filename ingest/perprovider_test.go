package ingest

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shopstream/shopstream/ingest/providers"
	"github.com/shopstream/shopstream/ingest/providers/providertest"
)

// kind is one provider as a test sends to it: how it signs, under the
// secret the receiver has and under another, a good body and a signed but
// malformed one, and whether it signs its timestamp.
type kind struct {
	name            string
	signer, forger  providertest.Signer
	good, malformed string
	signsTime       bool
}

func kinds(now time.Time) []kind {
	return []kind{
		{"standardwebhooks", providertest.StandardWebhooks{Key: testKey}, providertest.StandardWebhooks{Key: []byte("other")},
			`{"type":"order.paid","timestamp":"2026-11-24T11:59:59Z","data":{"order_id":"o-1","line_items":[{"id":"1","sku":"A","quantity":1}]}}`,
			`{"type":"order.paid",`, true},
		{"shopify", providertest.Shopify{Secret: "shopify-secret"}, providertest.Shopify{Secret: "other"},
			`{"id":1001,"updated_at":"2026-11-24T11:59:59Z","created_at":"2026-11-24T11:59:59Z","currency":"EUR","financial_status":"paid","line_items":[{"id":1,"sku":"A","quantity":1,"price":"1.00"}]}`,
			`{"id":"one thousand","line_items":[{"id":1,"sku":"A","quantity":1,"price":"1.00"}]}`, false},
		{"stripe", providertest.Stripe{Secrets: []string{"whsec_stripe"}}, providertest.Stripe{Secrets: []string{"whsec_other"}},
			fmt.Sprintf(`{"id":"evt_1","object":"event","type":"payment_intent.succeeded","created":%d,"data":{"object":{"object":"payment_intent","currency":"eur","metadata":{"order_id":"o-1"}}}}`, now.Unix()),
			`{"id":"evt_2","object":"event","type":"payment_intent.succeeded","created":1,"data":{"object":"not an object"}}`, true},
		{"webflow", providertest.Webflow{Secret: []byte("webflow-secret")}, providertest.Webflow{Secret: []byte("other")},
			`{"triggerType":"ecomm_new_order","payload":{"orderId":"wf-1","status":"unfulfilled","acceptedOn":"2026-11-24T11:59:59Z","purchasedItems":[{"count":1,"variantId":"v1","variantSKU":"A","variantPrice":{"unit":"EUR","value":"100"}}]}}`,
			`{"triggerType":"ecomm_new_order","payload":{"orderId":""}}`, true},
	}
}

// Every bad input, to every provider, gets its status and a problem body
// and writes nothing; the good delivery of each is accepted.
func TestEveryProviderRefusesBadInput(t *testing.T) {
	now := testNow
	enabled, err := providers.Config{Secrets: map[string][]string{"standardwebhooks": {testSecret}, "shopify": {"shopify-secret"},
		"stripe": {"whsec_stripe"}, "webflow": {"webflow-secret"}}}.Enabled()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range kinds(now) {
		t.Run(k.name, func(t *testing.T) {
			prod := &recordingProducer{}
			paused := false
			h, err := NewHandler(HandlerConfig{Providers: enabled, Producer: prod, MaxBodyBytes: 4096, RateLimit: 1000, RateBurst: 1000,
				Paused: func(string) bool { return paused }, Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			url := newServer(t, h) + "/webhooks/" + k.name
			send := func(signer providertest.Signer, body string, at time.Time, edit func(*http.Request)) (int, string) {
				req, err := providertest.NewRequest(context.Background(), url, signer, providertest.Delivery{ID: "d-" + k.name, Body: []byte(body), At: at})
				if err != nil {
					t.Fatal(err)
				}
				if edit != nil {
					edit(req)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				var b bytes.Buffer
				_, _ = b.ReadFrom(resp.Body)
				if resp.StatusCode >= 400 && resp.Header.Get("Content-Type") != "application/problem+json" {
					t.Fatalf("a %d answer is %q, not problem details", resp.StatusCode, resp.Header.Get("Content-Type"))
				}
				return resp.StatusCode, b.String()
			}
			cases := []badCase{
				{"signed by another secret", k.forger, k.good, now, nil, 401, "invalid_signature"},
				{"tampered after signing", k.signer, k.good, now, func(r *http.Request) {
					r.Body = ioNopCloser(strings.Replace(k.good, "1", "2", 1))
				}, 401, "invalid_signature"},
				{"no signature", k.signer, k.good, now, func(r *http.Request) {
					for _, h := range []string{"Webhook-Signature", "X-Shopify-Hmac-Sha256", "Stripe-Signature", "X-Webflow-Signature"} {
						r.Header.Del(h)
					}
				}, 401, "missing_signature"},
				{"malformed payload", k.signer, k.malformed, now, nil, 400, "malformed_payload"},
				{"oversized body", k.signer, k.good + strings.Repeat(" ", 5000), now, nil, 413, "body_too_large"},
				{"not json", k.signer, k.good, now, func(r *http.Request) { r.Header.Set("Content-Type", "text/plain") }, 415, "unsupported_media_type"},
				{"wrong method", k.signer, k.good, now, func(r *http.Request) { r.Method = http.MethodPut }, 405, "method_not_allowed"},
			}
			if k.signsTime {
				cases = append(cases,
					badCase{"stale timestamp", k.signer, k.good, now.Add(-time.Hour), nil, 401, "stale_timestamp"},
					badCase{"timestamp from the future", k.signer, k.good, now.Add(time.Hour), nil, 401, "stale_timestamp"})
			}
			for _, c := range cases {
				if status, body := send(c.signer, c.body, c.at, c.edit); status != c.status || !strings.Contains(body, `"code":"`+c.code+`"`) {
					t.Errorf("%s: %d %s, want %d %s", c.name, status, body, c.status, c.code)
				}
			}
			paused = true
			if status, body := send(k.signer, k.good, now, nil); status != 503 || !strings.Contains(body, `"code":"paused"`) {
				t.Errorf("paused: %d %s", status, body)
			}
			paused = false
			if len(prod.recs) != 0 {
				t.Fatalf("bad input wrote %d records", len(prod.recs))
			}
			if status, body := send(k.signer, k.good, now, nil); status != 200 || len(prod.recs) != 1 {
				t.Fatalf("the good delivery: %d %s", status, body)
			}
			if status, body := send(k.signer, k.good, now, nil); status != 200 || !strings.Contains(body, "duplicate") || len(prod.recs) != 1 {
				t.Fatalf("the good delivery again: %d %s", status, body)
			}
			// Every refusal on the provider's own path, and the duplicate,
			// is reported for analysts with its reason; what reached
			// another route (a PUT) is the mux's, not the provider's.
			var want []string
			for _, c := range cases {
				if c.code != "method_not_allowed" {
					want = append(want, fmt.Sprintf("REJECTED %s %d", c.code, c.status))
				}
			}
			want = append(want, "REJECTED paused 503", "DUPLICATE edge 200")
			got := prod.reported(t)
			if len(got) != len(want) {
				t.Fatalf("outcomes %q, want %q", got, want)
			}
			for i := range want {
				if !strings.HasPrefix(got[i], want[i]) {
					t.Errorf("outcome %d: %q, want %q...", i, got[i], want[i])
				}
			}
			if dup := strings.Fields(got[len(got)-1]); len(dup) != 5 {
				t.Errorf("the duplicate's outcome %q names no delivery or event type", got[len(got)-1])
			}
			t.Logf("%d bad inputs refused, the good one accepted", len(cases)+1)
		})
	}
}

type badCase struct {
	name   string
	signer providertest.Signer
	body   string
	at     time.Time
	edit   func(*http.Request)
	status int
	code   string
}

// Each provider has a token bucket of its own: one over its rate is told
// 429, another provider is not.
func TestEveryProviderIsRateLimitedAlone(t *testing.T) {
	enabled, err := providers.Config{Secrets: map[string][]string{"standardwebhooks": {testSecret}, "shopify": {"shopify-secret"},
		"stripe": {"whsec_stripe"}, "webflow": {"webflow-secret"}}}.Enabled()
	if err != nil {
		t.Fatal(err)
	}
	prod := &recordingProducer{}
	h, err := NewHandler(HandlerConfig{Providers: enabled, Producer: prod, RateLimit: 0.01, RateBurst: 1, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	url := newServer(t, h)
	for _, k := range kinds(testNow) {
		for i, want := range []int{200, 429} {
			req, err := providertest.NewRequest(context.Background(), url+"/webhooks/"+k.name, k.signer,
				providertest.Delivery{ID: fmt.Sprint("rl-", i), Body: []byte(k.good), At: testNow})
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want || (want == 429 && resp.Header.Get("Retry-After") == "") {
				t.Fatalf("%s, webhook %d: %d, want %d", k.name, i, resp.StatusCode, want)
			}
		}
	}
	if len(prod.recs) != 4 {
		t.Fatalf("%d records, want one per provider", len(prod.recs))
	}
}

func ioNopCloser(s string) *nopBody { return &nopBody{strings.NewReader(s)} }

type nopBody struct{ *strings.Reader }

func (nopBody) Close() error { return nil }
