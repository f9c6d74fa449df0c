package loadgen

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopstream/shopstream/ingest/providers"
)

// receiver verifies every webhook with each provider's own verifier, as
// ingest does, counts the deliveries it saw, and answers every third one 503
// with Retry-After, so that a run's printed figures can be checked against
// what the server saw.
type receiver struct {
	verifiers map[string]providers.Provider
	mu        sync.Mutex
	seen      map[string]int
	bad       atomic.Int64
	n         atomic.Int64
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	v := rc.verifiers[strings.TrimPrefix(r.URL.Path, "/webhooks/")]
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if v == nil || r.Method != http.MethodPost || mt != "application/json" {
		rc.bad.Add(1)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	d, err := v.Verify(r.Header, body, time.Now())
	if err != nil {
		rc.bad.Add(1)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	rc.mu.Lock()
	rc.seen[v.Name()+":"+d.ID]++
	rc.mu.Unlock()
	if rc.n.Add(1)%3 == 0 {
		w.Header().Set("Retry-After", "5")
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	_, _ = io.WriteString(w, `{"status":"accepted"}`)
}

var (
	statusLine  = regexp.MustCompile(`status map\[200:(\d+) 503:(\d+)\]`)
	refusalLine = regexp.MustCompile(`: (\d+) answered 503, .*, (\d+) without Retry-After`)
)

func TestRunSendsEveryWebhookOnceSignedAndCountsAnswers(t *testing.T) {
	secrets := map[string][]string{
		"standardwebhooks": {"whsec_" + base64.StdEncoding.EncodeToString([]byte("loadgen-test-secret-0123456789"))},
		"shopify":          {"shpss_loadgen_test"},
		"stripe":           {"whsec_loadgen_test"},
		"webflow":          {"loadgen-test-webflow"},
	}
	enabled, err := providers.Config{Secrets: secrets}.Enabled()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"closed loop, one provider", Config{Requests: 60, Concurrency: 4}},
		{"open loop, every provider in turn", Config{Requests: 60, Concurrency: 4, Rate: 600, Mix: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := &receiver{verifiers: map[string]providers.Provider{}, seen: map[string]int{}}
			for _, p := range enabled {
				rc.verifiers[p.Name()] = p
			}
			srv := httptest.NewServer(rc)
			defer srv.Close()
			cfg := tc.cfg
			cfg.URL = srv.URL + "/webhooks/standardwebhooks"
			cfg.Providers = providers.Config{Secrets: secrets}
			var out bytes.Buffer
			if err := Run(context.Background(), cfg, &out); err != nil {
				t.Fatal(err)
			}
			if rc.bad.Load() != 0 {
				t.Fatalf("%d webhooks failed verification or were malformed", rc.bad.Load())
			}
			if len(rc.seen) != cfg.Requests {
				t.Fatalf("the receiver saw %d distinct deliveries, want %d", len(rc.seen), cfg.Requests)
			}
			for id, n := range rc.seen {
				if n != 1 {
					t.Fatalf("delivery %s arrived %d times", id, n)
				}
			}
			if cfg.Mix {
				byProvider := map[string]int{}
				for id := range rc.seen {
					byProvider[id[:strings.Index(id, ":")]]++
				}
				if len(byProvider) != len(enabled) {
					t.Fatalf("deliveries by provider %v, want all %d providers", byProvider, len(enabled))
				}
			}
			m := statusLine.FindStringSubmatch(out.String())
			if m == nil {
				t.Fatalf("no status line in %q", out.String())
			}
			if ok, _ := strconv.Atoi(m[1]); ok != 40 {
				t.Errorf("printed %s answered 200, the receiver answered 40:\n%s", m[1], out.String())
			}
			if refused, _ := strconv.Atoi(m[2]); refused != 20 {
				t.Errorf("printed %s answered 503, the receiver answered 20:\n%s", m[2], out.String())
			}
			r := refusalLine.FindStringSubmatch(out.String())
			if r == nil || r[1] != "20" || r[2] != "0" {
				t.Errorf("want 20 refusals, all with Retry-After, in:\n%s", out.String())
			}
		})
	}
}
