package stream

import (
	"log/slog"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Headers a dead-lettered record carries besides its own, so an operator can
// see why it failed and where it came from without decoding the body.
const (
	HeaderErrorClass      = "dlq.error.class"
	HeaderErrorReason     = "dlq.error.reason"
	HeaderOriginTopic     = "dlq.origin.topic"
	HeaderOriginPartition = "dlq.origin.partition"
	HeaderOriginOffset    = "dlq.origin.offset"
	HeaderFailedAt        = "dlq.failed.at"
)

// maxReason bounds the reason header: an error that quotes its input must
// not carry a whole payload (or personal data in it) into headers and logs.
const maxReason = 512

// DeadLetter returns the record to produce to dlqTopic for rec, which failed
// with err: the same key, value and headers, plus the dlq.* headers.
func DeadLetter(rec *kgo.Record, dlqTopic string, err error, now time.Time) *kgo.Record {
	reason := err.Error()
	if len(reason) > maxReason {
		reason = reason[:maxReason]
	}
	headers := make([]kgo.RecordHeader, 0, len(rec.Headers)+6)
	headers = append(headers, rec.Headers...)
	headers = append(headers,
		kgo.RecordHeader{Key: HeaderErrorClass, Value: []byte(Class(err))},
		kgo.RecordHeader{Key: HeaderErrorReason, Value: []byte(reason)},
		kgo.RecordHeader{Key: HeaderOriginTopic, Value: []byte(rec.Topic)},
		kgo.RecordHeader{Key: HeaderOriginPartition, Value: []byte(strconv.Itoa(int(rec.Partition)))},
		kgo.RecordHeader{Key: HeaderOriginOffset, Value: []byte(strconv.FormatInt(rec.Offset, 10))},
		kgo.RecordHeader{Key: HeaderFailedAt, Value: []byte(now.UTC().Format(time.RFC3339Nano))},
	)
	return &kgo.Record{Topic: dlqTopic, Key: rec.Key, Value: rec.Value, Headers: headers}
}

// deadLetters returns the dead letters of rejected records, each to the DLQ
// dlq names for its topic, and logs each: the one place both loops turn a
// rejection into a record, so its class and headers cannot differ. A topic
// dlq names no DLQ for ("") is a DLQ itself, whose records are already
// kept there: a rejected one is logged and passed over, rather than
// dead-lettered to a topic that does not exist, which would stall its
// partition for good.
func deadLetters(rejected []Rejection, dlq func(topic string) string, log *slog.Logger) []*kgo.Record {
	now := time.Now()
	dead := make([]*kgo.Record, 0, len(rejected))
	for _, r := range rejected {
		to := dlq(r.Record.Topic)
		if to == "" {
			log.Error("passing over a dead letter that cannot be handled; it stays in its topic", "topic", r.Record.Topic,
				"partition", r.Record.Partition, "offset", r.Record.Offset, "err", r.Err)
			continue
		}
		log.Warn("dead-lettering record", "topic", r.Record.Topic,
			"partition", r.Record.Partition, "offset", r.Record.Offset, "err", r.Err)
		dead = append(dead, DeadLetter(r.Record, to, Permanent(r.Err), now))
	}
	return dead
}
