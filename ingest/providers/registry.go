package providers

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/shopstream/shopstream/internal/conf"
)

// spec is how the registry knows a provider: its name (its path segment,
// /webhooks/<name>, and its settings' names) and how to build it from
// settings. Each provider's file registers its spec in an init function, so
// a new provider is one file.
type spec struct {
	Name string
	// LegacySecret is an older name of the secret setting, still read: a
	// flag name whose variable is SHOPSTREAM_<LEGACY>, upper case with
	// underscores. Optional.
	LegacySecret string
	New          func(settings) (Provider, error)
}

// settings are what a provider is built from.
type settings struct {
	// Secrets accepted, more than one during a rotation.
	Secrets []string
	// Tolerance of the signed timestamp, both ways.
	Tolerance time.Duration
}

var specs = map[string]spec{}

func register(s spec) {
	if _, dup := specs[s.Name]; dup {
		panic("providers: " + s.Name + " registered twice")
	}
	specs[s.Name] = s
}

// Names returns the registered providers' names, sorted.
func Names() []string {
	out := make([]string, 0, len(specs))
	for n := range specs {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// DefaultTolerance is Config.Tolerance when none is set: what the Standard
// Webhooks reference libraries and Stripe's own allow.
const DefaultTolerance = 5 * time.Minute

// Config enables providers: each one whose secrets are set is served, with
// its secrets; the others are not.
type Config struct {
	// Secrets of each provider, by name.
	Secrets map[string][]string
	// Tolerance of signed timestamps. Default 5m (DefaultTolerance).
	Tolerance time.Duration
}

// RegisterFlags registers the secrets (RegisterSecretFlags) and
// -signature-tolerance.
func (c *Config) RegisterFlags(fs *conf.FlagSet) {
	c.RegisterSecretFlags(fs)
	fs.Duration(&c.Tolerance, "signature-tolerance", DefaultTolerance, "accepted age of a signed webhook timestamp",
		"SHOPSTREAM_SIGNATURE_TOLERANCE")
}

// RegisterSecretFlags registers -<name>-secret for every provider, from
// SHOPSTREAM_<NAME>_SECRET (comma-separated during a rotation): what a
// sender needs to sign as the receiver expects.
func (c *Config) RegisterSecretFlags(fs *conf.FlagSet) {
	if c.Secrets == nil {
		c.Secrets = map[string][]string{}
	}
	for _, name := range Names() {
		s := specs[name]
		flag := name + "-secret"
		envs := []string{envName(flag)}
		if s.LegacySecret != "" {
			envs = append(envs, envName(s.LegacySecret))
		}
		fs.Var(secretsValue{c.Secrets, name}, flag, "secrets of "+name+", comma-separated during a rotation; set to serve it", envs...)
		if s.LegacySecret != "" {
			fs.Alias(s.LegacySecret, flag)
		}
	}
}

func envName(flag string) string {
	return "SHOPSTREAM_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// Enabled builds the providers whose secrets are set. None is an error: a
// receiver that serves nobody is a misconfiguration.
func (c Config) Enabled() ([]Provider, error) {
	if c.Tolerance == 0 {
		c.Tolerance = DefaultTolerance
	}
	var out []Provider
	for _, name := range Names() {
		if len(c.Secrets[name]) == 0 {
			continue
		}
		p, err := specs[name].New(settings{Secrets: c.Secrets[name], Tolerance: c.Tolerance})
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		var vars []string
		for _, name := range Names() {
			vars = append(vars, envName(name+"-secret"))
			if l := specs[name].LegacySecret; l != "" {
				vars = append(vars, envName(l))
			}
		}
		return nil, errors.New("no webhook secret: set " + strings.Join(vars, " or ") + " to serve that provider")
	}
	return out, nil
}

type secretsValue struct {
	m    map[string][]string
	name string
}

func (v secretsValue) Set(s string) error {
	var secrets []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			secrets = append(secrets, x)
		}
	}
	v.m[v.name] = secrets
	return nil
}

// String never shows a secret: it is what help prints as a default.
func (v secretsValue) String() string {
	if v.m == nil || len(v.m[v.name]) == 0 {
		return ""
	}
	return fmt.Sprintf("(%d secrets)", len(v.m[v.name]))
}
