// Package providertest sends webhooks the way each provider does: signed
// with its scheme, posted, and the receiver's answer read. The demo, the
// load generator, the end-to-end tests and ingest's own tests all send
// through it, so there is one copy of each provider's sending side, one
// file per scheme beside this one.
package providertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/shopstream/shopstream/ingest/providers"
)

// Delivery is one webhook as a provider sends it.
type Delivery struct {
	// ID is the provider's delivery id, the same on every retry.
	ID   string
	Body []byte
	// At is when it is signed. Default: now.
	At time.Time
	// Method of the request. Default POST.
	Method string
}

// Signer sets the headers that sign a delivery, as its provider does.
type Signer interface {
	Sign(h http.Header, d Delivery)
}

// NewRequest returns the request a provider sends for d to url.
func NewRequest(ctx context.Context, url string, s Signer, d Delivery) (*http.Request, error) {
	if d.At.IsZero() {
		d.At = time.Now()
	}
	if d.Method == "" {
		d.Method = http.MethodPost
	}
	req, err := http.NewRequestWithContext(ctx, d.Method, url, bytes.NewReader(d.Body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	s.Sign(req.Header, d)
	return req, nil
}

// SignerFor returns the Signer of provider under secret, as the receiver's
// SHOPSTREAM_<NAME>_SECRET holds it.
func SignerFor(provider, secret string) (Signer, error) {
	switch provider {
	case "standardwebhooks":
		key, err := providers.StandardWebhooksKey(secret)
		if err != nil {
			return nil, err
		}
		return StandardWebhooks{Key: key}, nil
	case "shopify":
		return Shopify{Secret: secret}, nil
	case "stripe":
		return Stripe{Secrets: []string{secret}}, nil
	case "webflow":
		return Webflow{Secret: []byte(secret)}, nil
	}
	return nil, fmt.Errorf("providertest: no signer for %q", provider)
}

// Answer is the receiver's answer to a delivery.
type Answer struct {
	// Code is the HTTP status.
	Code int
	// Status is "accepted" or "duplicate" on a 2xx.
	Status string
	// Problem is the error code of a problem-details answer
	// (application/problem+json, its "code" member), and Detail its detail.
	Problem, Detail string
	// Header is the answer's headers (Retry-After, Content-Type).
	Header http.Header
}

// Outcome is the answer's status, else its error code.
func (a Answer) Outcome() string {
	if a.Status != "" {
		return a.Status
	}
	return a.Problem
}

// Post sends d to url and reads the answer. An error means no answer came
// (or it was not the receiver's JSON); the provider would retry.
func Post(ctx context.Context, client *http.Client, url string, s Signer, d Delivery) (Answer, error) {
	req, err := NewRequest(ctx, url, s, d)
	if err != nil {
		return Answer{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return Answer{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return Answer{}, err
	}
	a := Answer{Code: resp.StatusCode, Header: resp.Header}
	if resp.Header.Get("Content-Type") == "application/problem+json" {
		var p struct {
			Code   string `json:"code"`
			Detail string `json:"detail"`
		}
		err = json.Unmarshal(body, &p)
		a.Problem, a.Detail = p.Code, p.Detail
		return a, err
	}
	var ok struct {
		Status string `json:"status"`
	}
	err = json.Unmarshal(body, &ok)
	a.Status = ok.Status
	return a, err
}
