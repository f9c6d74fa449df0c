// Package app is shopstream's composition root: which commands exist, which
// stages each runs, and the settings every command shares. Each stage owns
// its Config and Run in its own package; this package only wires shared
// settings into them. Nothing imports it but cmd/shopstream.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/shopstream/shopstream/internal/conf"
)

// IO is what a command reads and writes; Main uses the process's own.
type IO struct {
	Getenv         func(string) (string, bool)
	Stdout, Stderr io.Writer
}

// command is one thing the binary does.
type command struct {
	name, args, summary string
	// stages, when set, makes the command run those stages.
	stages []string
	// flags registers the command's own settings; nil for none.
	flags func(*conf.FlagSet)
	// run does the command; rest is what is left after the flags.
	run func(ctx context.Context, s *settings, rest []string, out io.Writer) error
}

func commands() []*command {
	ops := &operator{}
	rp, dl, rb := &replay{}, &dlq{}, &rebuild{}
	rec := &reconciler{}
	return []*command{
		{name: "run", summary: "ingest, every processor and the ClickHouse sink in one process",
			stages: []string{"ingest", "deliveries", "orders", "inventory", "reconcile", "sink"}},
		{name: "ingest", summary: "the webhook receiver alone", stages: []string{"ingest"}},
		{name: "process deliveries", summary: "once per delivery id: receipts to order events and stock snapshots, alone", stages: []string{"deliveries"}},
		{name: "process orders", summary: "the order state machine alone", stages: []string{"orders"}},
		{name: "process inventory", summary: "the inventory processor alone", stages: []string{"inventory"}},
		{name: "process reconcile", summary: "snapshots of the source of truth against Redis: drift rows, heals (SHOPSTREAM_RECONCILE_HEAL), alone",
			stages: []string{"reconcile"}},
		{name: "sink", summary: "the ClickHouse sink alone", stages: []string{"sink"}},
		{name: "topics plan", summary: "show what topics apply would change", flags: ops.topologyFlags, run: ops.topicsPlan},
		{name: "topics apply", summary: "create or update the Kafka topics the code describes", flags: ops.topologyFlags, run: ops.topicsApply},
		{name: "migrate", summary: "apply the ClickHouse migrations", flags: ops.clickhouseFlags, run: ops.migrate},
		{name: "stock adjust", args: "-sku S -qty N -id ID", summary: "produce a stock adjustment (the same id applies once)",
			flags: ops.adjustFlags, run: ops.adjust},
		{name: "stock show", args: "SKU...", summary: "print stock from Redis", run: ops.show},
		{name: "catalog load", args: "FILE.csv", summary: "load which SKU each storefront item id is (columns source,item_id,sku)",
			run: ops.catalogLoad},
		{name: "catalog show", args: "SOURCE ITEM_ID...", summary: "print the SKU of storefront items", run: ops.catalogShow},
		{name: "providers pause", args: "NAME...", summary: "kill switch: every ingest answers these providers 503 with Retry-After, within a second",
			run: ops.pause},
		{name: "providers resume", args: "NAME...", summary: "take providers off the kill switch", run: ops.resume},
		{name: "providers paused", summary: "list the paused providers", run: ops.paused},
		{name: "reconcile", args: "-snapshot FILE.csv", summary: "each row a snapshot of the source of truth (sku,available[,observed_at]) for the reconcile stage; again: no change",
			flags: rec.flags, run: rec.run},
		{name: "replay", args: "-group G -to earliest|latest|TIME|P:O", summary: "move a stopped consumer group's offsets, so its stage reads history again",
			flags: rp.flags, run: rp.run},
		{name: "dlq inspect", summary: "count the dead letters by topic and error class, and show the newest with their bodies redacted",
			flags: dl.inspectFlags, run: dl.inspect},
		{name: "dlq redrive", args: "-topic T", summary: "produce dead letters to their origin topic again, each once, rate-limited",
			flags: dl.redriveFlags, run: dl.redrive},
		{name: "rebuild inventory", summary: "recompute Redis stock from the delta log into a new namespace, compare, and switch it in (the stage stopped)",
			flags: rb.flags, run: rb.run},
		{name: "demo", summary: "run the pipeline on a burst of signed webhooks and print what landed",
			flags: ops.demoFlags, run: ops.demo},
		{name: "loadgen", args: "-url U | -bare", summary: "load an ingest on loopback with signed webhooks, bounded by -n",
			flags: ops.loadFlags, run: ops.loadgen},
	}
}

// Main runs the command args name and returns the process's exit code.
func Main(ctx context.Context, args []string, sys IO) int {
	if err := Run(ctx, args, sys); err != nil {
		fmt.Fprintln(sys.Stderr, "shopstream:", err)
		return 1
	}
	return 0
}

// Run runs the command args name, until it is done or ctx is.
func Run(ctx context.Context, args []string, sys IO) error {
	if sys.Getenv == nil {
		sys.Getenv = os.LookupEnv
	}
	cmds := commands()
	if len(args) == 0 || slices.Contains([]string{"help", "-h", "-help", "--help"}, args[0]) {
		usage(sys.Stderr, cmds)
		return nil
	}
	cmd, rest, err := find(cmds, args)
	if err != nil {
		return err
	}
	s, fs, stages, metricsListen := cmd.flagSet()
	rest, err = fs.Parse(rest, sys.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(sys.Stderr, "usage: shopstream %s %s\n\n", cmd.name, cmd.args)
		fs.Defaults(sys.Stderr)
		return nil
	}
	if err != nil {
		return err
	}
	if err := s.setup(sys.Stderr); err != nil {
		return err
	}
	if cmd.stages == nil {
		return cmd.run(ctx, s, rest, sys.Stdout)
	}
	if *metricsListen != "" {
		stop, err := serveMetrics(s, *metricsListen)
		if err != nil {
			return err
		}
		defer stop()
	}
	return runStages(ctx, s, stages)
}

// flagSet registers every setting cmd reads: the shared ones, its stages'
// and its own.
func (cmd *command) flagSet() (*settings, *conf.FlagSet, []*stage, *string) {
	s := &settings{}
	fs := conf.New("shopstream " + cmd.name)
	s.registerFlags(fs)
	var stages []*stage
	var metricsListen string
	if cmd.stages != nil {
		stages = (&pipeline{}).selected(cmd.stages)
		metrics := false
		for _, st := range stages {
			st.flags(fs)
			metrics = metrics || st.transactional || st.name == "ingest"
		}
		if metrics {
			fs.String(&metricsListen, "metrics-listen", "", "address that serves Prometheus /metrics of the stages (the transactional ones and ingest); empty: none",
				"SHOPSTREAM_METRICS_LISTEN")
		}
	}
	if cmd.flags != nil {
		cmd.flags(fs)
	}
	return s, fs, stages, &metricsListen
}

// find returns the command args name and the arguments after its name.
func find(cmds []*command, args []string) (*command, []string, error) {
	var subs []string
	for _, c := range cmds {
		name := strings.Fields(c.name)
		if name[0] != args[0] {
			continue
		}
		if len(name) == 1 {
			return c, args[1:], nil
		}
		if len(args) > 1 && args[1] == name[1] {
			return c, args[2:], nil
		}
		subs = append(subs, name[1])
	}
	if subs != nil {
		return nil, nil, fmt.Errorf("%s %s", args[0], strings.Join(subs, "|"))
	}
	return nil, nil, fmt.Errorf("unknown command %q; run shopstream help", args[0])
}

func usage(w io.Writer, cmds []*command) {
	fmt.Fprint(w, "shopstream: e-commerce webhooks to Avro on Kafka, inventory in Redis, analytics in ClickHouse.\n\nusage: shopstream <command> [flags]\n\n")
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-38s %s\n", strings.TrimSpace(c.name+" "+c.args), c.summary)
	}
	fmt.Fprint(w, "\nEvery setting is a flag (`shopstream <command> -h` lists a command's) and an environment variable:\n\n")
	for _, v := range variables() {
		def := v.def
		if def == "" {
			def = "-"
		}
		fmt.Fprintf(w, "  %-38s %-16s %s\n", v.name, def, v.usage)
	}
}

// serveMetrics serves the Prometheus registry until stop is called.
func serveMetrics(s *settings, addr string) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("metrics server stopped", "err", err)
		}
	}()
	return func() { _ = srv.Close() }, nil
}

// variable is an environment variable a command reads, as help lists it.
type variable struct{ name, def, usage string }

// variables returns every environment variable a command of the binary
// reads, sorted by name.
func variables() []variable {
	seen := map[string]variable{}
	for _, c := range commands() {
		_, fs, _, _ := c.flagSet()
		for _, st := range fs.Settings() {
			for _, e := range st.Env {
				seen[e] = variable{e, st.Default, st.Usage}
			}
		}
	}
	out := slices.Collect(maps.Values(seen))
	slices.SortFunc(out, func(a, b variable) int { return strings.Compare(a.name, b.name) })
	return out
}
