package app

import (
	"maps"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

// The compose file is documentation that runs: if it drifts from the binary
// (a renamed variable, a lost healthcheck), `docker compose up` breaks for
// whoever tries it next, long after the change that caused it.
func TestDockerCompose(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", "..")) // tests run in internal/app
	if err != nil {
		t.Fatal(err)
	}
	const secret = "whsec_compose_test"
	details := types.ConfigDetails{
		WorkingDir:  root,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(root, "docker-compose.yml")}},
		// An explicit map rather than os.Environ, so a developer's shell cannot change the result.
		Environment: types.Mapping{"SHOPSTREAM_WEBHOOK_SECRET": secret},
	}
	project, err := loader.LoadWithContext(t.Context(), details, func(o *loader.Options) {
		// Otherwise the name is derived from the checkout's directory name.
		o.SetProjectName("shopstream", true)
	})
	if err != nil {
		t.Fatalf("loading docker-compose.yml: %v", err)
	}

	want := []string{"clickhouse", "kafka", "migrate", "redis", "shopstream", "topics"}
	if got := slices.Sorted(maps.Keys(project.Services)); !slices.Equal(got, want) {
		t.Fatalf("services = %v, want %v", got, want)
	}

	const healthy, completed = types.ServiceConditionHealthy, types.ServiceConditionCompletedSuccessfully
	// A sample, not the whole block: a literal, a ${VAR:-default} and a value from the
	// explicit map together prove the x-shopstream-env anchor and interpolation took effect.
	appEnv := map[string]string{"SHOPSTREAM_KAFKA_BROKERS": "kafka:29092", "SHOPSTREAM_PARTITIONS": "6", "SHOPSTREAM_WEBHOOK_SECRET": secret}
	tests := []struct {
		name      string
		image     string // a path.Match pattern; "" means built from the repo's Dockerfile
		port      uint32 // 0 means nothing is published
		health    bool
		command   []string
		dependsOn map[string]string
	}{
		{name: "kafka", image: "apache/kafka:4.1.1", port: 9092, health: true},
		{name: "redis", image: "redis:7", port: 6379, health: true},
		{name: "clickhouse", image: "clickhouse/clickhouse-server:?*", port: 9000, health: true},
		{name: "topics", command: []string{"topics", "apply"}, dependsOn: map[string]string{"kafka": healthy}},
		{name: "migrate", command: []string{"migrate"}, dependsOn: map[string]string{"clickhouse": healthy}},
		{name: "shopstream", port: 8080, command: []string{"run"},
			dependsOn: map[string]string{"topics": completed, "migrate": completed, "redis": healthy}},
	}
	for _, tt := range tests {
		svc := project.Services[tt.name]
		if tt.image == "" {
			if b := svc.Build; b == nil {
				t.Errorf("%s: no build section, want the repo's Dockerfile", tt.name)
			} else if b.Context != root || b.Dockerfile != "Dockerfile" {
				t.Errorf("%s: builds %s in %s, want Dockerfile in %s", tt.name, b.Dockerfile, b.Context, root)
			}
			for _, k := range slices.Sorted(maps.Keys(appEnv)) {
				if v, got := appEnv[k], svc.Environment[k]; got == nil || *got != v {
					t.Errorf("%s: %s = %s, want %q", tt.name, k, quoteOrUnset(got), v)
				}
			}
		} else if ok, _ := path.Match(tt.image, svc.Image); !ok {
			t.Errorf("%s: image = %q, want %q", tt.name, svc.Image, tt.image)
		}

		var wantPorts []string
		if tt.port != 0 {
			wantPorts = []string{strconv.Itoa(int(tt.port)) + ":" + strconv.Itoa(int(tt.port))}
		}
		var gotPorts []string
		for _, p := range svc.Ports {
			gotPorts = append(gotPorts, p.Published+":"+strconv.Itoa(int(p.Target)))
		}
		if !slices.Equal(gotPorts, wantPorts) {
			t.Errorf("%s: ports (published:target) = %v, want %v", tt.name, gotPorts, wantPorts)
		}

		if hc := svc.HealthCheck; tt.health && (hc == nil || hc.Disable || len(hc.Test) == 0 || hc.Test[0] == "NONE") {
			t.Errorf("%s: no usable healthcheck (%+v), but dependents wait for service_healthy", tt.name, hc)
		}
		if tt.command != nil && !slices.Equal(svc.Command, tt.command) {
			t.Errorf("%s: command = %q, want %q", tt.name, svc.Command, tt.command)
		}
		gotDeps := map[string]string{}
		for name, d := range svc.DependsOn {
			gotDeps[name] = d.Condition
		}
		if !maps.Equal(gotDeps, tt.dependsOn) {
			t.Errorf("%s: depends_on = %v, want %v", tt.name, gotDeps, tt.dependsOn)
		}
	}

	// A variable the binary does not read is silently ignored, so a typo or a
	// rename would leave the stack running on defaults.
	var known []string
	for _, v := range variables() {
		known = append(known, v.name)
	}
	for _, name := range want {
		for _, k := range slices.Sorted(maps.Keys(project.Services[name].Environment)) {
			if strings.HasPrefix(k, "SHOPSTREAM_") && !slices.Contains(known, k) {
				t.Errorf("%s: sets %s, which the binary does not read", name, k)
			}
		}
	}
}

func quoteOrUnset(s *string) string {
	if s == nil {
		return "unset"
	}
	return strconv.Quote(*s)
}
