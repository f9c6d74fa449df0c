// Package conf is how every shopstream setting is given: a command-line
// flag, whose default comes from an environment variable when that is set,
// else from the code. Each stage and command registers its own settings on
// a FlagSet, so a command shows and accepts only the flags it uses.
//
// An environment variable that does not parse is an error that names the
// variable, never a silent fallback to the default: a typo in a deployment
// must stop the process, not run it with settings nobody chose. The
// standard library's flag package does the parsing; libraries that derive
// variable names from flag names (peterbourgon/ff and the like) would
// rename variables that deployments already set, so the names are given
// here explicitly, one per setting.
package conf

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// FlagSet is a flag.FlagSet whose flags may default to environment variables.
type FlagSet struct {
	fs    *flag.FlagSet
	env   map[string][]string // flag name -> variables, in order of precedence
	usage map[string]string   // flag name -> usage, without the variables
}

// New returns an empty FlagSet for the command name. Parse errors are
// returned, never printed and exited on.
func New(name string) *FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return &FlagSet{fs: fs, env: map[string][]string{}, usage: map[string]string{}}
}

// Var defines a flag whose value, unless the flag is given, comes from the
// first of envs that is set and not empty, else from value's own default.
func (f *FlagSet) Var(value flag.Value, name, usage string, envs ...string) {
	f.usage[name] = usage
	if len(envs) > 0 {
		usage += " (" + strings.Join(envs, " or ") + ")"
	}
	f.fs.Var(value, name, usage)
	f.env[name] = envs
}

// Alias makes alias a second name of the flag name, sharing its value and
// variables: an older spelling that deployments still pass.
func (f *FlagSet) Alias(alias, name string) {
	f.fs.Var(f.fs.Lookup(name).Value, alias, "same as -"+name)
}

// String defines a string setting with default def.
func (f *FlagSet) String(p *string, name, def, usage string, envs ...string) {
	*p = def
	f.Var((*stringValue)(p), name, usage, envs...)
}

// Strings defines a comma-separated list setting with default def.
func (f *FlagSet) Strings(p *[]string, name string, def []string, usage string, envs ...string) {
	*p = def
	f.Var((*listValue)(p), name, usage, envs...)
}

// Int defines an int setting with default def.
func (f *FlagSet) Int(p *int, name string, def int, usage string, envs ...string) {
	*p = def
	f.Var(integer[int]{p}, name, usage, envs...)
}

// Int64 defines an int64 setting with default def.
func (f *FlagSet) Int64(p *int64, name string, def int64, usage string, envs ...string) {
	*p = def
	f.Var(integer[int64]{p}, name, usage, envs...)
}

// Duration defines a duration setting with default def.
func (f *FlagSet) Duration(p *time.Duration, name string, def time.Duration, usage string, envs ...string) {
	*p = def
	f.Var((*durationValue)(p), name, usage, envs...)
}

// Bool defines a boolean flag (no environment variable: a switch given on
// the command line for one run).
func (f *FlagSet) Bool(p *bool, name string, def bool, usage string) {
	f.fs.BoolVar(p, name, def, usage)
}

// Parse applies the environment, then args, so a flag given on the command
// line wins over its variable. It returns the arguments left after the flags.
func (f *FlagSet) Parse(args []string, getenv func(string) (string, bool)) ([]string, error) {
	if getenv == nil {
		getenv = os.LookupEnv
	}
	var errs []error
	f.fs.VisitAll(func(fl *flag.Flag) {
		name, v, ok := lookup(f.env[fl.Name], getenv)
		if !ok {
			return
		}
		// The value is not quoted: a setting may be a secret.
		if err := fl.Value.Set(v); err != nil {
			errs = append(errs, fmt.Errorf("environment variable %s: %w", name, err))
		}
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := f.fs.Parse(args); err != nil {
		return nil, err
	}
	return f.fs.Args(), nil
}

// lookup returns the first of envs that is set and not empty. An empty
// variable counts as unset, as Compose's ${VAR:-} leaves them: it neither
// fails to parse as a number nor hides a later spelling of the setting.
func lookup(envs []string, getenv func(string) (string, bool)) (name, value string, ok bool) {
	for _, e := range envs {
		if v, set := getenv(e); set && v != "" {
			return e, v, true
		}
	}
	return "", "", false
}

// Setting is one registered setting, as help shows it.
type Setting struct {
	Flag, Default, Usage string
	// Env are its variables, in order of precedence; none for a switch.
	Env []string
}

// Settings returns the set's settings, by flag name.
func (f *FlagSet) Settings() []Setting {
	var out []Setting
	f.fs.VisitAll(func(fl *flag.Flag) {
		usage, ok := f.usage[fl.Name]
		if !ok {
			usage = fl.Usage
		}
		out = append(out, Setting{Flag: fl.Name, Default: fl.DefValue, Usage: usage, Env: f.env[fl.Name]})
	})
	return out
}

// Defaults prints the flags with their usage and code defaults.
func (f *FlagSet) Defaults(w io.Writer) {
	f.fs.SetOutput(w)
	f.fs.PrintDefaults()
	f.fs.SetOutput(io.Discard)
}

type stringValue string

func (s *stringValue) Set(v string) error { *s = stringValue(v); return nil }
func (s *stringValue) String() string     { return string(*s) }

type listValue []string

func (l *listValue) Set(v string) error {
	*l = nil
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}
func (l *listValue) String() string { return strings.Join(*l, ",") }

// integer is an int or int64 setting; strconv refuses what is not a whole
// number, where fmt.Sscan would take "12abc" as 12.
type integer[T int | int64] struct{ p *T }

func (i integer[T]) Set(v string) error {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil {
		return errors.New("not an integer")
	}
	*i.p = T(n)
	return nil
}

func (i integer[T]) String() string {
	if i.p == nil {
		return "0"
	}
	return strconv.FormatInt(int64(*i.p), 10)
}

type durationValue time.Duration

func (d *durationValue) Set(v string) error {
	x, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("not a duration such as 5s or 2m")
	}
	*d = durationValue(x)
	return nil
}
func (d *durationValue) String() string { return time.Duration(*d).String() }
