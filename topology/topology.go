// Package topology owns shopstream's Kafka topics as code: their names,
// partition counts, replication and retention, and the plan that brings a
// cluster to them through the admin API (kadm). Applying a plan twice
// changes nothing the second time.
//
// It imports no package of the project, so every stage can ask it for topic
// names without depending on another stage.
package topology

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// Base topic names; Options.Prefix is put in front of each.
const (
	WebhooksRaw = "webhooks.raw"
	Orders      = "orders"
	Deltas      = "inventory.deltas"
	Movements   = "inventory.movements"
	// Snapshots holds what the sources of truth say each SKU's stock is,
	// keyed by SKU and compacted: it keeps the latest of every SKU for as
	// long as the SKU exists, so a reconciler that starts from earliest
	// reads every SKU's current truth without a week of history.
	Snapshots = "inventory.snapshots"
	// What the analysts' tables are made of, beside the movements: what
	// became of each webhook request, what the orders stage decided for
	// each order event, each reconciliation's drift, and each stage's
	// work by the minute.
	Outcomes   = "webhooks.outcomes"
	Applied    = "orders.applied"
	StockDrift = "inventory.drift"
	Metrics    = "pipeline.metrics"
)

// DLQ is the dead-letter topic of topic: where records that cannot be
// processed go, with the reason in their headers.
func DLQ(topic string) string { return topic + ".dlq" }

const (
	day = 24 * 60 * 60 * 1000
	// forever keeps the delta log whole: Redis can be rebuilt from it.
	forever = -1
)

// Options size the topics for a cluster.
type Options struct {
	// Prefix namespaces every topic (and, by convention, consumer groups),
	// so that several environments or test runs share one cluster. Default "".
	Prefix string
	// Partitions of each data topic; the unit of parallelism of every
	// consumer group. Default 6 (DefaultPartitions).
	Partitions int32
	// ReplicationFactor of every topic. Default 3
	// (DefaultReplicationFactor); a single local broker needs 1, and Plan
	// says so rather than let the broker refuse each topic.
	ReplicationFactor int16
}

// Defaults of Options.
const (
	DefaultPartitions        = 6
	DefaultReplicationFactor = 3
)

func (o *Options) setDefaults() {
	if o.Partitions == 0 {
		o.Partitions = DefaultPartitions
	}
	if o.ReplicationFactor == 0 {
		o.ReplicationFactor = DefaultReplicationFactor
	}
}

// Names are the topic names under one prefix.
type Names struct {
	WebhooksRaw, Orders, Deltas, Movements, Snapshots string
	Outcomes, Applied, Drift, Metrics                 string
}

// NamesFor returns the topic names under prefix.
func NamesFor(prefix string) Names {
	return Names{
		WebhooksRaw: prefix + WebhooksRaw,
		Orders:      prefix + Orders,
		Deltas:      prefix + Deltas,
		Movements:   prefix + Movements,
		Snapshots:   prefix + Snapshots,
		Outcomes:    prefix + Outcomes,
		Applied:     prefix + Applied,
		Drift:       prefix + StockDrift,
		Metrics:     prefix + Metrics,
	}
}

// Group is the consumer group of a stage ("deliveries", "orders",
// "inventory", "reconcile", "clickhouse") under prefix: the name operators
// pass to replay and a benchmark reads a stage's committed offsets by.
func Group(prefix, stage string) string { return prefix + "shopstream-" + stage }

// Topic is one topic as it should be.
type Topic struct {
	Name              string
	Partitions        int32
	ReplicationFactor int16
	Configs           map[string]string
}

// Topics returns every topic shopstream uses.
func Topics(o Options) []Topic {
	o.setDefaults()
	minISR := "1"
	if o.ReplicationFactor >= 3 {
		minISR = "2"
	}
	n := NamesFor(o.Prefix)
	topic := func(name string, retentionMs int64, partitions int32) Topic {
		return Topic{Name: name, Partitions: partitions, ReplicationFactor: o.ReplicationFactor, Configs: map[string]string{
			"cleanup.policy":      "delete",
			"retention.ms":        strconv.FormatInt(retentionMs, 10),
			"min.insync.replicas": minISR,
		}}
	}
	// The snapshots share the deltas' partitioning (key SKU, the same
	// count), so that one consumer of a partition of each sees every
	// change of its SKUs. A compacted partition keeps its active segment
	// whole, so segments roll daily and a replaced snapshot is gone within
	// about a day; it stays readable for a day after a SKU's tombstone.
	compacted := func(name string, partitions int32) Topic {
		return Topic{Name: name, Partitions: partitions, ReplicationFactor: o.ReplicationFactor, Configs: map[string]string{
			"cleanup.policy":      "compact",
			"segment.ms":          strconv.FormatInt(day, 10),
			"delete.retention.ms": strconv.FormatInt(day, 10),
			"min.insync.replicas": minISR,
		}}
	}
	dlqPartitions := int32(1)
	// What is upstream of the delta log keeps a week, the horizon over
	// which each SKU remembers its deltas' ids (stock.DefaultHorizon): a
	// replay of an upstream stage emits its deltas again at new positions,
	// which only their ids guard, so it must never reach further back than
	// they are remembered. The delta log itself is kept whole.
	return []Topic{
		topic(n.WebhooksRaw, 7*day, o.Partitions),
		topic(n.Orders, 7*day, o.Partitions),
		topic(n.Deltas, forever, o.Partitions),
		topic(n.Movements, 30*day, o.Partitions),
		compacted(n.Snapshots, o.Partitions),
		topic(n.Outcomes, 30*day, o.Partitions),
		topic(n.Applied, 30*day, o.Partitions),
		topic(n.Drift, 30*day, o.Partitions),
		topic(n.Metrics, 7*day, o.Partitions),
		topic(DLQ(n.WebhooksRaw), 14*day, dlqPartitions),
		topic(DLQ(n.Orders), 14*day, dlqPartitions),
		topic(DLQ(n.Deltas), 14*day, dlqPartitions),
		topic(DLQ(n.Movements), 14*day, dlqPartitions),
		topic(DLQ(n.Outcomes), 14*day, dlqPartitions),
		topic(DLQ(n.Applied), 14*day, dlqPartitions),
		topic(DLQ(n.Drift), 14*day, dlqPartitions),
		topic(DLQ(n.Metrics), 14*day, dlqPartitions),
		topic(DLQ(n.Snapshots), 14*day, dlqPartitions),
	}
}

// ActionKind says what an Action does.
type ActionKind string

const (
	Create        ActionKind = "create"
	AddPartitions ActionKind = "add-partitions"
	AlterConfig   ActionKind = "alter-config"
	// Drift is a difference the plan reports but does not change: fewer
	// partitions or another replication factor need an operator.
	Drift ActionKind = "drift"
)

// Action is one step of a plan.
type Action struct {
	Kind   ActionKind
	Topic  Topic
	Detail string
	// For AddPartitions: the total partitions after the step.
	// For AlterConfig: the keys and values to set.
	partitions int32
	configs    map[string]string
}

func (a Action) String() string {
	return fmt.Sprintf("%-15s %-36s %s", a.Kind, a.Topic.Name, a.Detail)
}

// Admin is what Plan and Apply need of kadm.Client.
type Admin interface {
	ListTopics(ctx context.Context, topics ...string) (kadm.TopicDetails, error)
	DescribeTopicConfigs(ctx context.Context, topics ...string) (kadm.ResourceConfigs, error)
	CreateTopic(ctx context.Context, partitions int32, rf int16, configs map[string]*string, topic string) (kadm.CreateTopicResponse, error)
	UpdatePartitions(ctx context.Context, set int, topics ...string) (kadm.CreatePartitionsResponses, error)
	AlterTopicConfigs(ctx context.Context, configs []kadm.AlterConfig, topics ...string) (kadm.AlterConfigsResponses, error)
	ListBrokers(ctx context.Context) (kadm.BrokerDetails, error)
}

var _ Admin = (*kadm.Client)(nil)

// Plan compares the cluster with topics and returns the steps that bring it
// there; none when it is there already.
func Plan(ctx context.Context, adm Admin, topics []Topic) ([]Action, error) {
	names := make([]string, len(topics))
	for i, t := range topics {
		names[i] = t.Name
	}
	details, err := adm.ListTopics(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("topology: list topics: %w", err)
	}
	var existing []string
	var missing []Topic
	for _, t := range topics {
		if d, ok := details[t.Name]; ok && d.Err == nil {
			existing = append(existing, t.Name)
		} else {
			missing = append(missing, t)
		}
	}
	if err := checkReplicas(ctx, adm, missing); err != nil {
		return nil, err
	}
	current := map[string]map[string]string{}
	if len(existing) > 0 {
		rcs, err := adm.DescribeTopicConfigs(ctx, existing...)
		if err != nil {
			return nil, fmt.Errorf("topology: describe configs: %w", err)
		}
		for _, rc := range rcs {
			if rc.Err != nil {
				return nil, fmt.Errorf("topology: describe configs of %s: %w", rc.Name, rc.Err)
			}
			m := map[string]string{}
			for _, c := range rc.Configs {
				if c.Value != nil {
					m[c.Key] = *c.Value
				}
			}
			current[rc.Name] = m
		}
	}

	var plan []Action
	for _, t := range topics {
		d, ok := details[t.Name]
		if !ok || d.Err != nil {
			plan = append(plan, Action{Kind: Create, Topic: t,
				Detail: fmt.Sprintf("partitions=%d replication=%d %s", t.Partitions, t.ReplicationFactor, formatConfigs(t.Configs))})
			continue
		}
		have := int32(len(d.Partitions))
		switch {
		case have < t.Partitions:
			plan = append(plan, Action{Kind: AddPartitions, Topic: t, partitions: t.Partitions,
				Detail: fmt.Sprintf("partitions %d -> %d (keys move to new partitions; per-key order holds only for new records)", have, t.Partitions)})
		case have > t.Partitions:
			plan = append(plan, Action{Kind: Drift, Topic: t,
				Detail: fmt.Sprintf("has %d partitions, wants %d; Kafka cannot remove partitions", have, t.Partitions)})
		}
		if rf := int16(d.Partitions.NumReplicas()); rf != t.ReplicationFactor {
			plan = append(plan, Action{Kind: Drift, Topic: t,
				Detail: fmt.Sprintf("has replication %d, wants %d; change it with a partition reassignment", rf, t.ReplicationFactor)})
		}
		diff := map[string]string{}
		for k, v := range t.Configs {
			if current[t.Name][k] != v {
				diff[k] = v
			}
		}
		if len(diff) > 0 {
			plan = append(plan, Action{Kind: AlterConfig, Topic: t, configs: diff, Detail: formatConfigs(diff)})
		}
	}
	return plan, nil
}

// checkReplicas refuses to plan topics that the cluster has too few brokers
// to replicate, with what to set, instead of letting the broker refuse each.
// Only topics to be created are checked, so a plan during a broker's
// restart that has nothing to create still answers.
func checkReplicas(ctx context.Context, adm Admin, create []Topic) error {
	if len(create) == 0 {
		return nil
	}
	brokers, err := adm.ListBrokers(ctx)
	if err != nil {
		return fmt.Errorf("topology: list brokers: %w", err)
	}
	for _, t := range create {
		if int(t.ReplicationFactor) > len(brokers) {
			return fmt.Errorf("topology: replication factor %d needs %d brokers and the cluster has %d; "+
				"set SHOPSTREAM_REPLICATION (or -replication) to at most %d", t.ReplicationFactor, t.ReplicationFactor, len(brokers), len(brokers))
		}
	}
	return nil
}

// Apply carries out plan, skipping Drift, and stops at the first failure.
// A topic another process created in the meantime is not a failure. It
// returns once the metadata shows every created or grown topic with its
// partitions, so what starts next finds them.
func Apply(ctx context.Context, adm Admin, plan []Action) error {
	want := map[string]int32{}
	for _, a := range plan {
		if a.Kind == Create || a.Kind == AddPartitions {
			want[a.Topic.Name] = a.Topic.Partitions
		}
		switch a.Kind {
		case Create:
			cfg := map[string]*string{}
			for k, v := range a.Topic.Configs {
				cfg[k] = &v
			}
			resp, err := adm.CreateTopic(ctx, a.Topic.Partitions, a.Topic.ReplicationFactor, cfg, a.Topic.Name)
			if err == nil {
				err = resp.Err
			}
			if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
				return fmt.Errorf("topology: create %s: %w", a.Topic.Name, err)
			}
		case AddPartitions:
			resps, err := adm.UpdatePartitions(ctx, int(a.partitions), a.Topic.Name)
			if err == nil {
				err = resps.Error()
			}
			if err != nil {
				return fmt.Errorf("topology: partitions of %s: %w", a.Topic.Name, err)
			}
		case AlterConfig:
			var alters []kadm.AlterConfig
			for k, v := range a.configs {
				alters = append(alters, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: &v})
			}
			resps, err := adm.AlterTopicConfigs(ctx, alters, a.Topic.Name)
			if err == nil {
				for _, r := range resps {
					if r.Err != nil {
						err = r.Err
					}
				}
			}
			if err != nil {
				return fmt.Errorf("topology: configs of %s: %w", a.Topic.Name, err)
			}
		}
	}
	return waitVisible(ctx, adm, want)
}

func waitVisible(ctx context.Context, adm Admin, want map[string]int32) error {
	if len(want) == 0 {
		return nil
	}
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		details, err := adm.ListTopics(ctx, names...)
		missing := ""
		for _, n := range names {
			if d, ok := details[n]; err == nil && (!ok || d.Err != nil || int32(len(d.Partitions)) < want[n]) {
				missing = n
			}
		}
		if err == nil && missing == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topology: %s not visible in metadata: %w", missing, errors.Join(err, ctx.Err()))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func formatConfigs(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, " ")
}
