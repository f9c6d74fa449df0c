// Command naive is the ingest baseline `make bench` measures shopstream
// against: a webhook receiver that does the least a correct one may. It
// reads the body, checks the signature of the provider its path names
// (/webhooks/<name>, every provider whose SHOPSTREAM_<NAME>_SECRET is set),
// writes the body to Kafka with one ProduceSync (acks=all, idempotent: the
// same durability as ingest), and answers 200 once Kafka acknowledged. It
// has no dedup, no mapping and no receipt; it serves on loopback until
// killed.
//
// With -refuse it is the floor of the overload part instead: it answers
// every request 503 overloaded with Retry-After, as ingest answers one
// beyond its bound, reading nothing and writing nothing to Kafka. What a
// refusal costs it is what any net/http server on the machine pays for an
// answered request, and what ingest's refusal is measured against.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/ingest/providers"
	"github.com/shopstream/shopstream/internal/stream"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18082", "address to serve on (loopback)")
	topic := flag.String("topic", "", "topic to write to; required unless -refuse")
	refuse := flag.Bool("refuse", false, "answer every request 503 overloaded, touching nothing")
	flag.Parse()
	var err error
	if *refuse {
		err = serveRefusals(*listen)
	} else {
		err = run(*listen, *topic)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "naive:", err)
		os.Exit(1)
	}
}

func run(listen, topic string) error {
	if topic == "" || !strings.HasPrefix(listen, "127.") {
		return fmt.Errorf("-topic is required and -listen must be a loopback address")
	}
	secrets := map[string][]string{}
	for _, name := range providers.Names() {
		if v := os.Getenv("SHOPSTREAM_" + strings.ToUpper(name) + "_SECRET"); v != "" {
			secrets[name] = strings.Split(v, ",")
		}
	}
	if v := os.Getenv("SHOPSTREAM_WEBHOOK_SECRET"); v != "" && secrets["standardwebhooks"] == nil {
		secrets["standardwebhooks"] = []string{v}
	}
	enabled, err := providers.Config{Secrets: secrets}.Enabled()
	if err != nil {
		return err
	}
	verifiers := map[string]providers.Provider{}
	for _, p := range enabled {
		verifiers[p.Name()] = p
	}
	brokers := strings.Split(os.Getenv("SHOPSTREAM_KAFKA_BROKERS"), ",")
	if brokers[0] == "" {
		brokers = []string{"127.0.0.1:9092"}
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	prod, err := stream.ClientConfig{Brokers: brokers, ClientID: "naive", Logger: log}.Producer(10 * time.Second)
	if err != nil {
		return err
	}
	defer prod.Close()
	return http.ListenAndServe(listen, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, "body", http.StatusRequestEntityTooLarge)
			return
		}
		verifier, ok := verifiers[strings.TrimPrefix(r.URL.Path, "/webhooks/")]
		if !ok {
			http.Error(w, "provider", http.StatusNotFound)
			return
		}
		d, err := verifier.Verify(r.Header, body, time.Now())
		if err != nil {
			http.Error(w, "signature", http.StatusUnauthorized)
			return
		}
		rec := &kgo.Record{Topic: topic, Key: []byte(d.ID), Value: body}
		if err := prod.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"accepted"}`)
	}))
}

// overloaded is ingest's answer to a webhook over its bound, byte for
// byte in its body (TestRefusalIsIngestsOverloadAnswer holds the two
// together).
var overloaded = []byte(`{"type":"urn:shopstream:problem:overloaded","title":"Service Unavailable","status":503,"detail":"too many webhooks in flight","code":"overloaded"}` + "\n")

func serveRefusals(listen string) error {
	if !strings.HasPrefix(listen, "127.") {
		return fmt.Errorf("-listen must be a loopback address")
	}
	return http.ListenAndServe(listen, http.HandlerFunc(refuse))
}

func refuse(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	id := r.Header.Get("X-Request-Id")
	if id == "" {
		id = strconv.FormatUint(rand.Uint64(), 16)
	}
	h.Set("X-Request-Id", id)
	h.Set("Retry-After", "5")
	h.Set("Content-Type", "application/problem+json")
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.Write(overloaded)
}
