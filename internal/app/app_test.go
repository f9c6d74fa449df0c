package app

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/shopstream/shopstream/ingest"
	"github.com/shopstream/shopstream/ingest/providers"
	"github.com/shopstream/shopstream/internal/stream"
	chsink "github.com/shopstream/shopstream/sinks/clickhouse"
	"github.com/shopstream/shopstream/topology"
)

func noEnv(string) (string, bool) { return "", false }

func run(args []string, env map[string]string) (string, error) {
	var out bytes.Buffer
	err := Run(context.Background(), args, IO{Stdout: &out, Stderr: &out, Getenv: func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}})
	return out.String(), err
}

// Commands refuse what they cannot do before touching any service.
func TestCommandsRefuseBadArguments(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"frobnicate"}, "unknown command"},
		{[]string{"process", "payments"}, "process deliveries|orders|inventory|reconcile"},
		{[]string{"topics", "delete"}, "topics plan|apply"},
		{[]string{"stock", "adjust", "-sku", "A"}, "needs -sku, a non-zero -qty and -id"},
		{[]string{"stock", "adjust", "-sku", "a{b}", "-qty", "1", "-id", "x"}, "brace"},
		{[]string{"ingest", "-webhook-secret", ""}, "no webhook secret"},
		{[]string{"topics", "plan", "-partitions", "0"}, "at least 1"},
		{[]string{"run", "-log-level", "loud"}, "log level"},
		{[]string{"loadgen", "-url", "http://10.0.0.1/webhooks/standardwebhooks", "-webhook-secret", "whsec_c2VjcmV0"}, "loopback"},
		{[]string{"migrate", "-partitions", "3"}, "flag provided but not defined"},
		{[]string{"providers", "pause", "stripey"}, `no provider "stripey"`},
		{[]string{"providers", "resume"}, "name at least one provider"},
		{[]string{"reconcile"}, "needs -snapshot FILE.csv"},
		{[]string{"reconcile", "-snapshot", "no-such-file.csv"}, "no such file"},
		{[]string{"process", "reconcile", "-reconcile-heal", "*,TEE"}, `"*" already names every SKU`},
	} {
		_, err := run(tt.args, nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("shopstream %s: %v, want an error saying %q", strings.Join(tt.args, " "), err, tt.want)
		}
	}
}

// A variable that does not parse stops the command and is named, never
// silently replaced by the default.
func TestABadVariableIsNamed(t *testing.T) {
	for _, tt := range []struct {
		args []string
		env  map[string]string
	}{
		{[]string{"topics", "plan"}, map[string]string{"SHOPSTREAM_PARTITIONS": "six"}},
		{[]string{"ingest"}, map[string]string{"SHOPSTREAM_MAX_BODY_BYTES": "1MB", "SHOPSTREAM_WEBHOOK_SECRET": "whsec_c2VjcmV0"}},
		{[]string{"ingest"}, map[string]string{"SHOPSTREAM_SIGNATURE_TOLERANCE": "300", "SHOPSTREAM_WEBHOOK_SECRET": "whsec_c2VjcmV0"}},
		{[]string{"process", "orders"}, map[string]string{"SHOPSTREAM_ORDERS_MAX_POLL_RECORDS": "many"}},
	} {
		var bad string
		for k := range tt.env {
			if k != "SHOPSTREAM_WEBHOOK_SECRET" {
				bad = k
			}
		}
		if _, err := run(tt.args, tt.env); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("%s=%q: %v, want an error naming it", bad, tt.env[bad], err)
		}
	}
}

// flagDefaults returns the flags of the command args names, with their
// defaults.
func flagDefaults(t *testing.T, args ...string) map[string]string {
	t.Helper()
	c, _, err := find(commands(), args)
	if err != nil {
		t.Fatal(err)
	}
	_, fs, _, _ := c.flagSet()
	out := map[string]string{}
	for _, s := range fs.Settings() {
		out[s.Flag] = s.Default
	}
	return out
}

// Each command registers only the settings it uses.
func TestCommandsRegisterOnlyTheirSettings(t *testing.T) {
	for _, tt := range []struct {
		cmd        []string
		has, lacks []string
	}{
		{[]string{"migrate"}, []string{"clickhouse", "clickhouse-db"}, []string{"webhook-secret", "partitions", "listen"}},
		{[]string{"ingest"}, []string{"listen", "standardwebhooks-secret", "webhook-secret", "max-body-bytes"}, []string{"clickhouse", "partitions"}},
		{[]string{"sink"}, []string{"clickhouse", "sink-max-records"}, []string{"listen", "webhook-secret"}},
		{[]string{"process", "orders"}, []string{"orders-max-poll-records"}, []string{"inventory-max-poll-records", "clickhouse", "listen"}},
		{[]string{"process", "inventory"}, []string{"inventory-max-poll-records"}, []string{"inventory-concurrency", "orders-concurrency"}},
		{[]string{"topics", "apply"}, []string{"partitions", "replication"}, []string{"clickhouse", "listen"}},
	} {
		defaults := flagDefaults(t, tt.cmd...)
		for _, f := range tt.has {
			if _, ok := defaults[f]; !ok {
				t.Errorf("%v lacks -%s", tt.cmd, f)
			}
		}
		for _, f := range tt.lacks {
			if _, ok := defaults[f]; ok {
				t.Errorf("%v has -%s, which it does not use", tt.cmd, f)
			}
		}
	}
}

// The defaults the flags show are the ones the packages document and use.
func TestFlagDefaultsAreThePackagesDefaults(t *testing.T) {
	fs, top := flagDefaults(t, "run"), flagDefaults(t, "topics", "apply")
	for _, tt := range []struct {
		got, want string
	}{
		{fs["listen"], ingest.DefaultListen},
		{fs["max-body-bytes"], "1048576"},
		{fs["signature-tolerance"], providers.DefaultTolerance.String()},
		{fs["clickhouse-db"], chsink.DefaultDB},
		{fs["sink-max-records"], strconv.Itoa(chsink.DefaultMaxRecords)},
		{fs["orders-max-poll-records"], "2000"},
		{fs["inventory-max-poll-records"], "10000"},
		{top["partitions"], "6"},
		{top["replication"], "3"},
	} {
		if tt.got != tt.want {
			t.Errorf("flag default %s, want %s", tt.got, tt.want)
		}
	}
	if stream.DefaultBatchMaxRecords != 5000 || stream.DefaultMaxPollRecords != 2000 ||
		topology.DefaultPartitions != 6 || topology.DefaultReplicationFactor != 3 {
		t.Fatal("a package default differs from what its doc and this test say")
	}
}

func TestHelp(t *testing.T) {
	out, err := run([]string{"help"}, nil)
	if err != nil || !strings.Contains(out, "process inventory") || !strings.Contains(out, "stock adjust -sku S -qty N -id ID") {
		t.Fatalf("help: %v\n%s", err, out)
	}
	out, err = run([]string{"ingest", "-h"}, nil)
	if err != nil || !strings.Contains(out, "SHOPSTREAM_LISTEN") || strings.Contains(out, "SHOPSTREAM_CLICKHOUSE_ADDR") {
		t.Fatalf("ingest -h: %v\n%s", err, out)
	}
}

// The README's configuration table lists every variable the binary reads,
// with the default the code uses, and nothing else.
func TestReadmeListsEveryVariableWithItsDefault(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `(SHOPSTREAM_[A-Z_]+)` \\| ([^|]+) \\|")
	documented := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(string(readme), -1) {
		documented[m[1]] = strings.Trim(strings.TrimSpace(m[2]), "`")
	}
	for _, v := range variables() {
		doc, ok := documented[v.name]
		delete(documented, v.name)
		switch want := v.def; {
		case !ok:
			t.Errorf("README does not list %s", v.name)
		case v.name == "SHOPSTREAM_INSTANCE":
			if doc != "hostname" {
				t.Errorf("README: %s defaults to %q, the code to the hostname", v.name, doc)
			}
		case want == "" && doc != "empty", want != "" && doc != want:
			t.Errorf("README: %s defaults to %q, the code to %q", v.name, doc, want)
		}
	}
	for name := range documented {
		t.Errorf("README lists %s, which the binary does not read", name)
	}
}
