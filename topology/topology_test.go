package topology_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/shopstream/shopstream/internal/testenv"
	"github.com/shopstream/shopstream/topology"
)

func TestApplyIsIdempotentAndRepairsDrift(t *testing.T) {
	adm := testenv.Kafka(t)
	ctx := context.Background()
	prefix := testenv.Namespace(t)
	topics := topology.Topics(topology.Options{Prefix: prefix, Partitions: 2, ReplicationFactor: 1})

	plan, err := topology.Plan(ctx, adm, topics)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan) != len(topics) {
		t.Fatalf("first plan has %d steps, want %d creates: %v", len(plan), len(topics), plan)
	}
	if err := topology.Apply(ctx, adm, plan); err != nil {
		t.Fatal(err)
	}
	settled(t, adm, topics)

	// The snapshots keep each SKU's latest by compaction, not by age.
	rc, err := adm.DescribeTopicConfigs(ctx, prefix+topology.Snapshots)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := rc.On(prefix+topology.Snapshots, nil); err != nil || !hasConfig(c.Configs, "cleanup.policy", "compact") {
		t.Fatalf("snapshots topic configs %+v, %v", c.Configs, err)
	}

	// An operator changed retention by hand, and the code now wants more partitions.
	v := "1000"
	if _, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: &v}}, prefix+topology.Orders); err != nil {
		t.Fatal(err)
	}
	// The broker answers the change before it reads it back (see settled);
	// a fresh CI machine's slow disk once delayed it past the plan below.
	waitConfig(t, adm, prefix+topology.Orders, "retention.ms", v)
	grown := topology.Topics(topology.Options{Prefix: prefix, Partitions: 4, ReplicationFactor: 1})
	plan, err = topology.Plan(ctx, adm, grown)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[topology.ActionKind]int{}
	for _, a := range plan {
		kinds[a.Kind]++
	}
	// The data topics grow; the DLQs keep their one partition.
	data := 0
	for _, tp := range grown {
		if tp.Partitions == 4 {
			data++
		}
	}
	if kinds[topology.AlterConfig] != 1 || kinds[topology.AddPartitions] != data || len(plan) != data+1 {
		t.Fatalf("plan %v", plan)
	}
	if err := topology.Apply(ctx, adm, plan); err != nil {
		t.Fatal(err)
	}
	settled(t, adm, grown)
	// Fewer partitions than the cluster has is drift to report, not to apply.
	shrunk := topology.Topics(topology.Options{Prefix: prefix, Partitions: 2, ReplicationFactor: 1})
	plan, _ = topology.Plan(ctx, adm, shrunk)
	for _, a := range plan {
		if a.Kind != topology.Drift {
			t.Fatalf("shrinking planned %v", a)
		}
	}
	if len(plan) != data {
		t.Fatalf("want %d drift reports, got %v", data, plan)
	}
}

// A replication factor the cluster cannot give is refused by the plan with
// what to set, before any topic is touched.
func TestPlanRefusesMoreReplicasThanBrokers(t *testing.T) {
	adm := testenv.Kafka(t)
	topics := topology.Topics(topology.Options{Prefix: testenv.Namespace(t)})
	_, err := topology.Plan(context.Background(), adm, topics)
	if err == nil || !strings.Contains(err.Error(), "SHOPSTREAM_REPLICATION") {
		t.Fatalf("err %v; the default replication of %d on one broker must be refused", err, topology.DefaultReplicationFactor)
	}
	// Topics that exist are not created again, so a plan with nothing to
	// create answers whatever the replication asked for.
	prefix := testenv.Namespace(t)
	testenv.Topics(t, prefix)
	plan, err := topology.Plan(context.Background(), adm, topology.Topics(topology.Options{Prefix: prefix, Partitions: 3}))
	if err != nil {
		t.Fatalf("plan over existing topics: %v", err)
	}
	for _, a := range plan {
		if a.Kind == topology.Create {
			t.Fatalf("plans to create an existing topic: %v", a)
		}
	}
}

// settled waits until a plan for topics has nothing to do, as it must soon
// after they were applied: the broker reads back what it was told only once
// the metadata log has it.
func settled(t *testing.T, adm *kadm.Client, topics []topology.Topic) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, func() error {
		plan, err := topology.Plan(t.Context(), adm, topics)
		if err == nil && len(plan) > 0 {
			err = fmt.Errorf("a plan after apply still has %v; want nothing to do", plan)
		}
		return err
	})
}

// waitConfig waits until topic's described configs say key is value.
func waitConfig(t *testing.T, adm *kadm.Client, topic, key, value string) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, func() error {
		rc, err := adm.DescribeTopicConfigs(t.Context(), topic)
		if err != nil {
			return err
		}
		c, err := rc.On(topic, nil)
		if err == nil && !hasConfig(c.Configs, key, value) {
			err = fmt.Errorf("%s: %s does not read back as %s yet", topic, key, value)
		}
		return err
	})
}

func hasConfig(cs []kadm.Config, key, value string) bool {
	for _, c := range cs {
		if c.Key == key && c.Value != nil && *c.Value == value {
			return true
		}
	}
	return false
}
