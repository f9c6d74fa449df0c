// Command shopstream is the one binary of the pipeline. Each stage runs
// alone (ingest, process orders, process inventory, sink) or all together
// (run); topics, migrate and stock are the operator's tools; demo runs the
// whole pipeline on a burst of signed webhooks and prints what landed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

const usage = `shopstream: e-commerce webhooks to Avro on Kafka, inventory in Redis, analytics in ClickHouse.

usage: shopstream <command> [flags]

  run                   ingest, both processors and the ClickHouse sink in one process
  ingest                the webhook receiver alone
  process orders        the order state machine alone
  process inventory     the inventory processor alone
  sink                  the ClickHouse sink alone
  topics plan|apply     show or apply the Kafka topics the code describes
  migrate               apply the ClickHouse migrations
  stock adjust          produce a stock adjustment: -sku S -qty N -id ID
  stock show SKU...     print stock from Redis
  demo                  run the pipeline on a burst of signed webhooks and print what landed
  loadgen               load an ingest on loopback with signed webhooks: -url U (or -bare) -n N -c C

Every command takes the flags below; each defaults to its environment variable.
`

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "shopstream:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(os.Stderr, usage)
		printFlags()
		return nil
	}
	cmd, args := args[0], args[1:]
	sub := ""
	if (cmd == "process" || cmd == "topics" || cmd == "stock") && len(args) > 0 {
		sub, args = args[0], args[1:]
	}
	c := &config{}
	fs := flag.NewFlagSet("shopstream "+cmd, flag.ContinueOnError)
	c.register(fs)
	var adj adjustment
	var demo demoOptions
	var load loadOptions
	switch cmd {
	case "stock":
		adj.register(fs)
	case "demo":
		demo.register(fs)
	case "loadgen":
		load.register(fs)
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := c.setup(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	switch cmd {
	case "run":
		return runStages(ctx, c, "ingest", "orders", "inventory", "sink")
	case "ingest", "sink":
		return runStages(ctx, c, cmd)
	case "process":
		if sub != "orders" && sub != "inventory" {
			return errors.New("process orders|inventory")
		}
		return runStages(ctx, c, sub)
	case "topics":
		return topics(ctx, c, sub, os.Stdout)
	case "migrate":
		return migrate(ctx, c, os.Stdout)
	case "stock":
		switch sub {
		case "adjust":
			return adj.run(ctx, c)
		case "show":
			return showStock(ctx, c, fs.Args(), os.Stdout)
		}
		return errors.New("stock adjust|show")
	case "demo":
		return demo.run(ctx, c, os.Stdout)
	case "loadgen":
		return load.run(ctx, c, os.Stdout)
	}
	return fmt.Errorf("unknown command %q; run shopstream help", cmd)
}

func printFlags() {
	fs := flag.NewFlagSet("shopstream", flag.ContinueOnError)
	(&config{}).register(fs)
	fs.SetOutput(os.Stderr)
	fs.PrintDefaults()
}
