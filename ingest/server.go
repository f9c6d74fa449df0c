// Package ingest owns the HTTP edge: it receives provider webhooks, verifies
// them (providers/), maps them to canonical order events, writes one
// record, the receipt with its event, to webhooks.raw, and answers 2xx only
// once Kafka has acknowledged it (acks=all, idempotent producer). Anything
// it cannot take gets a structured JSON error and changes nothing; when
// Kafka cannot take a delivery, or more requests arrive than it can handle
// at once, the answer is 503 with Retry-After, so the provider retries and
// nothing acknowledged is lost.
//
// The edge does only what must happen before the 2xx: verify, check that
// the payload is well formed, persist. Deciding that a delivery id was seen
// before is the deliveries stage's job (processors/deliveries), downstream
// of webhooks.raw; the edge keeps only an in-memory window of what it
// accepted lately, to answer the common retry "duplicate" at no cost.
//
// Transport follows go-kit's split: decode (read, verify, map) is the
// transport's job, the endpoint writes to Kafka, and errors become HTTP
// statuses in one place, errors.go.
package ingest

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"mime"
	"net/http"
	"strings"
	"time"

	httptransport "github.com/go-kit/kit/transport/http"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/time/rate"

	"github.com/shopstream/shopstream/ingest/providers"
	"github.com/shopstream/shopstream/schemas/avro"
	"github.com/shopstream/shopstream/schemas/envelope"
	"github.com/shopstream/shopstream/topology"
)

// Producer is what ingest needs of a Kafka client; *kgo.Client is one.
// Produce must call promise exactly once per record, when Kafka has answered
// or the record has failed.
type Producer interface {
	Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error))
}

// HandlerConfig configures the ingest handler.
type HandlerConfig struct {
	// Providers served, each at POST /webhooks/<name>. Required.
	Providers []providers.Provider
	// Producer writes the receipts. Required.
	Producer Producer
	// Dedup answers a provider's retry of a delivery already accepted
	// without writing it again. Default NewRecentDeliveries(0). Whatever
	// gets past it is absorbed downstream by the deliveries stage.
	Dedup Deduper
	// Topics written. Default topology.NamesFor("").
	Topics topology.Names
	// MaxBodyBytes bounds a webhook body; larger ones get 413. Default 1 MiB.
	MaxBodyBytes int64
	// ProduceTimeout bounds the wait for Kafka's acknowledgement before
	// answering 503. Default 10s, under the 15s or more that providers wait.
	// An idempotent producer does not give up on a record it may have sent,
	// so the answer does not wait for the producer to give up: a delivery
	// answered 503 may still land later, and its dedup claim is settled then.
	ProduceTimeout time.Duration
	// RetryAfter is the Retry-After given with a 503 or 409. Default 5s.
	RetryAfter time.Duration
	// MaxInFlight bounds the webhooks being handled at once, and with it
	// memory (MaxInFlight bodies) and the wait of each one admitted. Default
	// DefaultMaxInFlight.
	MaxInFlight int
	// QueueWait is how long a webhook over MaxInFlight waits for a slot
	// before it is answered 503 with Retry-After. Default 0: not at all.
	QueueWait time.Duration
	// RateLimit is each provider's token bucket: webhooks a second, with
	// bursts of RateBurst (default: a second's worth). Beyond it a webhook
	// is answered 429 with Retry-After. Default 0: no limit.
	RateLimit float64
	RateBurst int
	// Sources are the providers' allow-lists. Default: every address.
	Sources Sources
	// Paused says whether an operator paused a provider (Pauses.Paused);
	// its webhooks get 503 with Retry-After. Default: none is.
	Paused func(provider string) bool
	// Ready says whether Kafka answers; /readyz reports it. Default: always.
	Ready func() bool
	// Metrics records every answer. Default: none.
	Metrics Metrics
	// BodyReadTimeout bounds reading an admitted webhook's body, which
	// holds a slot: providers send kilobytes at once, and a client that
	// trickles its body must not hold a slot for the server's ReadTimeout.
	// It is answered 408. Default 5s.
	BodyReadTimeout time.Duration
	// CustomerKey keys the hash that names an order's customer
	// (OrderEvent.CustomerHash): the same customer gets the same hash
	// from every instance and release as long as the key stays, and
	// without it nobody can tell which email a hash is, as they could for
	// a plain digest of every address they know. Default: none, and then
	// no event names its customer.
	CustomerKey []byte
	// Now is the clock signatures are checked against. Default time.Now.
	Now func() time.Time
	// Logger. Default slog.Default().
	Logger *slog.Logger
}

func (c *HandlerConfig) setDefaults() error {
	if len(c.Providers) == 0 || c.Producer == nil {
		return fmt.Errorf("ingest: Providers and Producer are required")
	}
	if c.Topics == (topology.Names{}) {
		c.Topics = topology.NamesFor("")
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.ProduceTimeout == 0 {
		c.ProduceTimeout = DefaultProduceTimeout
	}
	if c.RetryAfter == 0 {
		c.RetryAfter = 5 * time.Second
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.Dedup == nil {
		c.Dedup = NewRecentDeliveries(0)
	}
	if c.BodyReadTimeout <= 0 {
		c.BodyReadTimeout = 5 * time.Second
	}
	if c.RateLimit > 0 && c.RateBurst <= 0 {
		c.RateBurst = max(1, int(c.RateLimit))
	}
	if c.Ready == nil {
		c.Ready = func() bool { return true }
	}
	if c.Paused == nil {
		c.Paused = func(string) bool { return false }
	}
	c.Metrics.setDefaults()
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// NewHandler returns the ingest HTTP handler: POST /webhooks/{provider},
// GET /healthz (the process answers) and GET /readyz (and Kafka answers).
func NewHandler(cfg HandlerConfig) (http.Handler, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"ok"}`)
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if !cfg.Ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"status":"kafka unreachable"}`)
			return
		}
		_, _ = io.WriteString(w, `{"status":"ready"}`)
	})
	slots := make(chan struct{}, cfg.MaxInFlight)
	waits := newDeadlines(cfg.ProduceTimeout)
	overloaded := answerTo(errOverloaded, cfg.RetryAfter)
	inFlight := cfg.Metrics.InFlight
	for _, p := range cfg.Providers {
		var limiter *rate.Limiter
		if cfg.RateLimit > 0 {
			limiter = rate.NewLimiter(rate.Limit(cfg.RateLimit), cfg.RateBurst)
		}
		s := &service{cfg: cfg, provider: p, waits: waits, secretHeaders: secretHeaders(p.SecretHeaders()), limiter: limiter,
			accepted:  cfg.Metrics.Requests.WithLabelValues(p.Name(), "accepted"),
			duplicate: cfg.Metrics.Requests.WithLabelValues(p.Name(), "duplicate"),
			ack:       cfg.Metrics.AckSeconds.WithLabelValues(p.Name())}
		errorEncoder := encodeError(cfg.RetryAfter, cfg.Logger, s.refused)
		// The allow-list and the pause refuse outside go-kit, which gives
		// the note only to what it decodes, and their refusals are
		// reported with it.
		refuse := func(r *http.Request, err error, w http.ResponseWriter) {
			errorEncoder(withNote(r.Context(), r, cfg.Now), err, w)
		}
		var h http.Handler = httptransport.NewServer(s.accept, s.decode, s.encodeResponse,
			httptransport.ServerBefore(func(ctx context.Context, r *http.Request) context.Context { return withNote(ctx, r, cfg.Now) }),
			httptransport.ServerErrorEncoder(errorEncoder))
		// An overload is not reported (refused says why), so its answer,
		// the same every time, is made once.
		overloads := cfg.Metrics.Requests.WithLabelValues(p.Name(), "overloaded")
		h = admit(slots, inFlight, cfg.QueueWait, cfg.BodyReadTimeout, func(w http.ResponseWriter) {
			overloads.Inc()
			overloaded.write(w)
		}, h)
		h = pause(func() bool { return cfg.Paused(p.Name()) }, refuse, h)
		s.count = cfg.Metrics.outcome(p.Name())
		mux.Handle("POST /webhooks/"+p.Name(), correlate(cfg.Sources.allow(p.Name(), refuse, h)))
	}
	unknown := cfg.Metrics.outcome("unknown")
	errorEncoder := encodeError(cfg.RetryAfter, cfg.Logger, func(_ context.Context, _ int, code string) { unknown(code) })
	mux.Handle("/webhooks/", correlate(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			errorEncoder(r.Context(), errMethod, w)
			return
		}
		errorEncoder(r.Context(), errUnknownProvider, w)
	})))
	return mux, nil
}

// correlate gives every webhook a correlation id: the sender's X-Request-Id
// when it sent a usable one, else a new one. It is echoed in the answer's
// X-Request-Id, carried in the Kafka record's correlation.id header and in
// every log line about the webhook, so one id follows it from the
// provider's log to ClickHouse. The id rides on the request's header, where
// the note (withNote) takes it, and on the answer's, where the error
// encoder's log line reads it.
func correlate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Every request passes here: the map is indexed by the header's
		// canonical name rather than through Set's canonicalization, and
		// one slice serves both headers.
		id := r.Header["X-Request-Id"]
		if len(id) == 0 || !usableID(id[0]) {
			id = []string{newID()}
			r.Header["X-Request-Id"] = id
		}
		w.Header()["X-Request-Id"] = id[:1:1]
		next.ServeHTTP(w, r)
	})
}

// usableID accepts what can be echoed in a header and a log line as it is:
// up to 128 visible ASCII characters.
func usableID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return false
		}
	}
	return true
}

// pause answers 503 (errPaused) to every webhook while paused says so,
// before anything else is done with it.
func pause(paused func() bool, reject func(*http.Request, error, http.ResponseWriter), next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if paused() {
			reject(r, errPaused, w)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// overLimit charges one token of l, when there is a limit, and says when
// a token is due again if there is none now.
func overLimit(l *rate.Limiter) error {
	if l == nil {
		return nil
	}
	res := l.Reserve()
	if d := res.Delay(); d > 0 {
		res.Cancel()
		return rateLimited{after: d}
	}
	return nil
}

// rateLimited is errRateLimited with the wait until the next token, which
// the answer's Retry-After gives.
type rateLimited struct{ after time.Duration }

func (rateLimited) Error() string        { return errRateLimited.Error() }
func (rateLimited) Is(target error) bool { return target == errRateLimited }

// admit lets a webhook through once it holds one of slots, shared by every
// provider, and answers 503 (errOverloaded) to one that found none free
// within wait (at once when wait is 0). Without a bound, a burst beyond
// what Kafka and the CPU take queues every request until all of them time
// out; with it, the webhooks admitted keep their latency and the excess is
// told at once to come back, before its body is read.
func admit(slots chan struct{}, inFlight prometheus.Gauge, wait, bodyRead time.Duration, reject func(http.ResponseWriter), next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case slots <- struct{}{}:
		default:
			if wait <= 0 {
				reject(w)
				return
			}
			t := time.NewTimer(wait)
			select {
			case slots <- struct{}{}:
				t.Stop()
			case <-t.C:
				reject(w)
				return
			case <-r.Context().Done():
				t.Stop()
				reject(w)
				return
			}
		}
		inFlight.Inc()
		defer func() { inFlight.Dec(); <-slots }()
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(bodyRead))
		next.ServeHTTP(w, r)
	})
}

type service struct {
	cfg      HandlerConfig
	provider providers.Provider
	// waits bounds each write's wait for Kafka. It is shared by every
	// provider, so that more writes share each tick's context.
	waits *deadlines
	// secretHeaders are the canonical names of the headers a receipt
	// drops: the provider's signatures and any credentials.
	secretHeaders map[string]bool
	// limiter is the provider's token bucket, charged only by webhooks
	// whose signature verified, so that anyone's unsigned requests cannot
	// spend the provider's tokens. Nil: no limit.
	limiter *rate.Limiter
	// accepted, duplicate and ack are this provider's metrics of a 2xx,
	// count of every other answer, by code.
	accepted, duplicate prometheus.Counter
	ack                 prometheus.Observer
	count               func(code string)
}

// note is what is known of a webhook request as it is read, for the
// outcome reported when it is refused or answered duplicate.
type note struct {
	receivedAt            time.Time
	size                  int64
	correlationID         string
	deliveryID, eventType string
}

type noteKey struct{}

// withNote gives a request its note in ctx, where decode adds the delivery
// once verified and the error encoder reads it. It is given the context
// go-kit passes to decode, to the endpoint and to the error encoder
// (ServerBefore; decode relies on it), or, for a webhook refused before
// decode, the request's own: a request with a new context is a copy of the
// request, which every webhook would pay. The note's receivedAt is then
// taken once admitted, the time the receipt and the signature check use.
func withNote(ctx context.Context, r *http.Request, now func() time.Time) context.Context {
	return context.WithValue(ctx, noteKey{}, &note{receivedAt: now(), size: max(r.ContentLength, 0), correlationID: r.Header.Get("X-Request-Id")})
}

func noteOf(ctx context.Context) *note {
	n, _ := ctx.Value(noteKey{}).(*note)
	return n
}

// refused counts a refusal and reports it on the outcomes topic, except
// Kafka's own failure, which would be written to the Kafka that just
// failed; it is counted in the metrics. An overload does not come here:
// admit answers it with an answer made once and only counts it, since it
// is refused thousands of times a second precisely so that it costs next
// to nothing.
func (s *service) refused(ctx context.Context, status int, code string) {
	s.count(code)
	if code != "unavailable" {
		s.report(ctx, avro.OutcomeRejected, code, status)
	}
}

// report writes an outcome of the edge's own, without waiting: it is
// analytics, not an acknowledged delivery, and a refusal must not wait on
// Kafka. One that Kafka does not take is logged and lost.
func (s *service) report(ctx context.Context, outcome, reason string, status int) {
	n := noteOf(ctx)
	if n == nil || s.cfg.Topics.Outcomes == "" {
		return
	}
	rec, err := envelope.Record(s.cfg.Topics.Outcomes, &avro.WebhookOutcome{OutcomeID: "edge:" + newID(), Provider: s.provider.Name(),
		DeliveryID: n.deliveryID, EventType: n.eventType, Outcome: outcome, Reason: reason, Status: int32(status), Size: n.size,
		ReceivedAt: n.receivedAt.UTC().Truncate(time.Millisecond)}, n.correlationID)
	if err != nil {
		return
	}
	s.cfg.Producer.Produce(context.Background(), rec, func(_ *kgo.Record, err error) {
		if err != nil {
			s.cfg.Logger.Debug("outcome not written", "provider", s.provider.Name(), "outcome", outcome, "err", err)
		}
	})
}

// delivery is a verified, mapped webhook on its way to Kafka.
type delivery struct {
	providers.Delivery
	receivedAt    time.Time
	body          []byte
	headers       map[string]string
	mapped        providers.Mapped
	correlationID string
}

// decode reads, verifies and maps one request. Nothing is written before a
// delivery has passed all three.
func (s *service) decode(ctx context.Context, r *http.Request) (any, error) {
	n := noteOf(ctx)
	receivedAt := n.receivedAt
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return nil, errContentType
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		return nil, err
	}
	d, err := s.provider.Verify(r.Header, body, receivedAt)
	if err != nil {
		return nil, err
	}
	if err := overLimit(s.limiter); err != nil {
		return nil, err
	}
	n.size, n.deliveryID = int64(len(body)), d.ID
	m, err := s.provider.Map(d, body)
	n.eventType = m.Type
	if err != nil {
		return nil, err
	}
	corr := n.correlationID
	at := receivedAt.UTC().Truncate(time.Millisecond)
	if e := m.Order; e != nil {
		e.ReceivedAt, e.CorrelationID = at, corr
		if m.Customer != "" && s.cfg.CustomerKey != nil {
			e.CustomerHash = customerHash(s.cfg.CustomerKey, m.Customer)
		}
	}
	if st := m.Stock; st != nil {
		st.ReceivedAt, st.CorrelationID = at, corr
	}
	return &delivery{Delivery: d, receivedAt: receivedAt, body: body,
		headers: keptHeaders(r.Header, s.secretHeaders), mapped: m, correlationID: corr}, nil
}

// customerHash is the first 16 bytes of HMAC-SHA256(key, customer), in
// hex: 128 bits keep distinct customers apart in any shop's lifetime, at
// half the width analysts group by.
func customerHash(key []byte, customer string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(customer))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// accept writes a verified delivery to Kafka and returns once Kafka has
// acknowledged it.
func (s *service) accept(ctx context.Context, req any) (any, error) {
	d := req.(*delivery)
	key := s.provider.Name() + ":" + d.ID
	claim, err := s.cfg.Dedup.Claim(ctx, key)
	switch {
	case err != nil:
		// Fail open: a duplicate that gets through is absorbed
		// downstream, a refused delivery would be retried for hours.
		s.cfg.Logger.Warn("dedup unavailable; accepting without it", "delivery_id", d.ID, "err", err)
	case claim == ClaimDone:
		s.report(ctx, avro.OutcomeDuplicate, "edge", http.StatusOK)
		return response{Status: "duplicate", DeliveryID: d.ID}, nil
	case claim == ClaimInFlight:
		return nil, errInFlight
	}
	rec, err := s.record(d)
	if err != nil {
		s.settle(key, err)
		return nil, err
	}
	if err := s.write(rec, func(err error) { s.settle(key, err) }); err != nil {
		return nil, err
	}
	return response{Status: "accepted", DeliveryID: d.ID, receivedAt: d.receivedAt}, nil
}

// settle records the outcome of a delivery's write in the dedup store: done
// after Kafka acknowledged it, released after it failed so the provider's
// retry goes through.
func (s *service) settle(key string, err error) {
	// Detached from the request, which may be gone: a Deduper bounds its
	// own calls.
	ctx := context.Background()
	if err != nil {
		_ = s.cfg.Dedup.Release(ctx, key)
	} else if derr := s.cfg.Dedup.Complete(ctx, key); derr != nil {
		s.cfg.Logger.Warn("dedup: could not mark delivery done", "key", key, "err", derr)
	}
}

// write produces rec and returns nil once Kafka acknowledged it, or
// errUnavailable when it failed or ProduceTimeout passed first (waits may
// add up to a hundredth of it). done is
// called once with the final outcome, whenever Kafka gives it: before write
// returns if it came in time, else on a goroutine that waits for it. It is
// never called on the producer's promise goroutine, which runs every
// promise of the client one after another and must not wait on anything.
func (s *service) write(rec *kgo.Record, done func(error)) error {
	result := make(chan error, 1)
	// The context bounds the wait for buffer space and a record not yet
	// sent, and the wait here; it must outlive this request, so it ends by
	// its own deadline.
	ctx := s.waits.context(time.Now())
	s.cfg.Producer.Produce(ctx, rec, func(_ *kgo.Record, err error) { result <- err })
	select {
	case err := <-result:
		return s.written(err, done)
	case <-ctx.Done():
		select {
		case err := <-result: // the answer and the deadline came together
			return s.written(err, done)
		default:
			go func() { done(<-result) }()
			return fmt.Errorf("%w: no acknowledgement within %v", errUnavailable, s.cfg.ProduceTimeout)
		}
	}
}

func (s *service) written(err error, done func(error)) error {
	done(err)
	if err != nil {
		return fmt.Errorf("%w: %v", errUnavailable, err)
	}
	return nil
}

// record is the one record a delivery becomes: its receipt, carrying the
// order event or stock snapshot it maps to.
func (s *service) record(d *delivery) (*kgo.Record, error) {
	return envelope.Record(s.cfg.Topics.WebhooksRaw, &avro.WebhookReceipt{DeliveryID: d.ID, Provider: s.provider.Name(),
		ReceivedAt: d.receivedAt.UTC().Truncate(time.Millisecond), Headers: d.headers, Body: d.body, EventType: d.mapped.Type,
		Event: d.mapped.Order, Stock: d.mapped.Stock}, d.correlationID)
}

func secretHeaders(provider []string) map[string]bool {
	drop := map[string]bool{"Authorization": true, "Cookie": true, "Proxy-Authorization": true}
	for _, k := range provider {
		drop[http.CanonicalHeaderKey(k)] = true
	}
	return drop
}

// keptHeaders are the request headers a receipt keeps: all but drop.
func keptHeaders(h http.Header, drop map[string]bool) map[string]string {
	out := make(map[string]string, len(h))
	for k, v := range h {
		if !drop[http.CanonicalHeaderKey(k)] {
			out[strings.ToLower(k)] = strings.Join(v, ", ")
		}
	}
	return out
}

type response struct {
	Status     string `json:"status"`
	DeliveryID string `json:"delivery_id"`
	receivedAt time.Time
}

func (s *service) encodeResponse(_ context.Context, w http.ResponseWriter, resp any) error {
	r := resp.(response)
	if r.Status == "accepted" {
		s.accepted.Inc()
		s.ack.Observe(time.Since(r.receivedAt).Seconds())
	} else {
		s.duplicate.Inc()
	}
	w.Header()["Content-Type"] = jsonContentType
	_, err := w.Write(r.appendJSON(make([]byte, 0, 64)))
	return err
}

// jsonContentType is shared by every answer, which saves an allocation
// each; net/http only reads it, and Header.Add would copy it.
var jsonContentType = []string{"application/json; charset=utf-8"}

// appendJSON appends what encoding/json's Encoder writes for r. Every
// acceptance is answered with it, so the delivery ids providers use
// (visible ASCII with nothing to escape) are copied as they are; any other
// id goes through encoding/json. The status is one of this file's
// constants, which need no escaping.
func (r response) appendJSON(b []byte) []byte {
	b = append(b, `{"status":"`...)
	b = append(b, r.Status...)
	b = append(b, `","delivery_id":`...)
	if plainJSON(r.DeliveryID) {
		b = append(append(append(b, '"'), r.DeliveryID...), '"')
	} else {
		id, _ := json.Marshal(r.DeliveryID)
		b = append(b, id...)
	}
	return append(b, "}\n"...)
}

// plainJSON says whether encoding/json writes s between quotes unchanged.
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < ' ' || c > '~', c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}

// newID is a correlation id for a request that brought none: it needs to be
// unlikely to repeat, not unpredictable, so it costs no system call.
func newID() string {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], rand.Uint64())
	return hex.EncodeToString(b[:])
}
