package telemetry

import (
	"math"

	dto "github.com/prometheus/client_model/go"
)

// The families the stages record into the registry: the stream loops'
// (internal/app/settings.go builds them for stream/middleware and the
// sink's loop) and ingest's (ingest/metrics.go). A rename there is a rename
// here.
const (
	recordsFamily  = "shopstream_records_total"
	handleFamily   = "shopstream_batch_handle_seconds"
	ingestRequests = "shopstream_ingest_requests_total"
	ingestAck      = "shopstream_ingest_ack_seconds"
)

// IngestStage is the stage name of the webhook receiver's rows.
const IngestStage = "ingest"

// transientIngest are the ingest answers that ask the provider to send the
// same delivery again later (ingest's classify gives them a Retry-After,
// or a 429 its own): the pipeline could not take it then, the delivery was
// not at fault. Every other problem code is the request's fault, which
// sending it again will not mend.
var transientIngest = map[string]bool{
	"overloaded": true, "unavailable": true, "paused": true, "rate_limited": true,
	"delivery_in_flight": true, "request_timeout": true, "internal": true,
}

// totals are a stage's counters as the registry has them: cumulative since
// the process started.
type totals struct {
	records, transient, permanent, deadLettered float64
	// latency is the stage latency's histogram, in seconds: cumulative
	// counts by upper bound, +Inf holding every observation.
	latency map[float64]float64
}

func (t *totals) addHistogram(h *dto.Histogram) {
	if t.latency == nil {
		t.latency = map[float64]float64{}
	}
	for _, b := range h.GetBucket() {
		if !math.IsInf(b.GetUpperBound(), 1) {
			t.latency[b.GetUpperBound()] += float64(b.GetCumulativeCount())
		}
	}
	t.latency[inf] += float64(h.GetSampleCount())
}

// active reports whether the stage ever did anything.
func (t totals) active() bool {
	return t.records+t.transient+t.permanent > 0 || t.latency[inf] > 0
}

// minus returns what t counted since prev.
func (t totals) minus(prev totals) totals {
	d := totals{records: t.records - prev.records, transient: t.transient - prev.transient,
		permanent: t.permanent - prev.permanent, deadLettered: t.deadLettered - prev.deadLettered,
		latency: make(map[float64]float64, len(t.latency))}
	for le, n := range t.latency {
		d.latency[le] = n - prev.latency[le]
	}
	return d
}

// buckets returns t's latency histogram in milliseconds, for quantile.
func (t totals) buckets() []bucket {
	bs := make([]bucket, 0, len(t.latency))
	for le, n := range t.latency {
		bs = append(bs, bucket{le: le * 1000, count: n})
	}
	return bs
}

// byStage sums the families into each stage's totals. A stream series
// whose topic stages does not name is some other loop's and is left out.
func byStage(families []*dto.MetricFamily, stages map[string]string) map[string]*totals {
	out := map[string]*totals{}
	stage := func(name string) *totals {
		if out[name] == nil {
			out[name] = &totals{}
		}
		return out[name]
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			switch f.GetName() {
			case recordsFamily:
				s, ok := stages[label(m, "topic")]
				if !ok {
					continue
				}
				t, n := stage(s), m.GetCounter().GetValue()
				switch label(m, "outcome") {
				case "ok":
					t.records += n
				case "rejected":
					// The loop dead-letters every record it rejects.
					t.records += n
					t.deadLettered += n
				case "transient":
					t.transient += n
				case "permanent":
					t.permanent += n
				}
			case handleFamily:
				if s, ok := stages[label(m, "topic")]; ok {
					stage(s).addHistogram(m.GetHistogram())
				}
			case ingestRequests:
				t, n := stage(IngestStage), m.GetCounter().GetValue()
				switch outcome := label(m, "outcome"); {
				case outcome == "accepted" || outcome == "duplicate":
					t.records += n
				case transientIngest[outcome]:
					t.transient += n
				default:
					t.permanent += n
				}
			case ingestAck:
				stage(IngestStage).addHistogram(m.GetHistogram())
			}
		}
	}
	return out
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
