package conf

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

type settings struct {
	addr    string
	list    []string
	n       int
	big     int64
	timeout time.Duration
	on      bool
}

func register() (*FlagSet, *settings) {
	var s settings
	fs := New("t")
	fs.String(&s.addr, "addr", "127.0.0.1:1", "address", "T_ADDR", "T_OLD_ADDR")
	fs.Strings(&s.list, "list", []string{"a"}, "list", "T_LIST")
	fs.Int(&s.n, "n", 6, "n", "T_N")
	fs.Int64(&s.big, "big", 1<<20, "big", "T_BIG")
	fs.Duration(&s.timeout, "timeout", 5*time.Second, "timeout", "T_TIMEOUT")
	fs.Bool(&s.on, "on", false, "switch")
	fs.Alias("old-addr", "addr")
	return fs, &s
}

func TestSettingsComeFromFlagsThenVariablesThenCode(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		env  map[string]string
		want settings
	}{
		{"code defaults", nil, nil, settings{"127.0.0.1:1", []string{"a"}, 6, 1 << 20, 5 * time.Second, false}},
		{"variables", nil, map[string]string{"T_ADDR": "h:2", "T_LIST": "x, y,,z", "T_N": "9", "T_BIG": "-3", "T_TIMEOUT": "1m"},
			settings{"h:2", []string{"x", "y", "z"}, 9, -3, time.Minute, false}},
		{"the first variable wins", nil, map[string]string{"T_ADDR": "new:1", "T_OLD_ADDR": "old:1"},
			settings{"new:1", []string{"a"}, 6, 1 << 20, 5 * time.Second, false}},
		{"an older variable", nil, map[string]string{"T_OLD_ADDR": "old:1"},
			settings{"old:1", []string{"a"}, 6, 1 << 20, 5 * time.Second, false}},
		{"an empty variable does not hide an older one", nil, map[string]string{"T_ADDR": "", "T_OLD_ADDR": "old:1"},
			settings{"old:1", []string{"a"}, 6, 1 << 20, 5 * time.Second, false}},
		{"an empty variable is unset", nil, map[string]string{"T_ADDR": "", "T_N": ""},
			settings{"127.0.0.1:1", []string{"a"}, 6, 1 << 20, 5 * time.Second, false}},
		{"a flag wins over its variable", []string{"-n", "7", "-old-addr", "alias:1", "-on"}, map[string]string{"T_N": "9", "T_ADDR": "h:2"},
			settings{"alias:1", []string{"a"}, 7, 1 << 20, 5 * time.Second, true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fs, s := register()
			if _, err := fs.Parse(tt.args, env(tt.env)); err != nil {
				t.Fatal(err)
			}
			if s.addr != tt.want.addr || !slices.Equal(s.list, tt.want.list) || s.n != tt.want.n || s.big != tt.want.big ||
				s.timeout != tt.want.timeout || s.on != tt.want.on {
				t.Fatalf("%+v, want %+v", *s, tt.want)
			}
		})
	}
}

func TestABadVariableIsAnErrorNamingIt(t *testing.T) {
	for name, value := range map[string]string{"T_N": "6x", "T_BIG": "1MB", "T_TIMEOUT": "300"} {
		fs, _ := register()
		_, err := fs.Parse(nil, env(map[string]string{name: value}))
		if err == nil || !strings.Contains(err.Error(), name) || strings.Contains(err.Error(), value) {
			t.Errorf("%s=%s: %v, want an error naming %s but not quoting its value, which may be a secret", name, value, err, name)
		}
	}
}

func TestSettingsListsFlagsDefaultsAndVariables(t *testing.T) {
	fs, _ := register()
	got := map[string]Setting{}
	for _, s := range fs.Settings() {
		got[s.Flag] = s
	}
	if s := got["addr"]; s.Default != "127.0.0.1:1" || !slices.Equal(s.Env, []string{"T_ADDR", "T_OLD_ADDR"}) ||
		s.Usage != "address" {
		t.Fatalf("addr: %+v", s)
	}
	if s := got["timeout"]; s.Default != "5s" {
		t.Fatalf("timeout: %+v", s)
	}
	if s := got["on"]; len(s.Env) != 0 {
		t.Fatalf("a switch has variables: %+v", s)
	}
}
