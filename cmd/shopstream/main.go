// Command shopstream is the one binary of the pipeline; `shopstream help`
// lists its commands. What each command does is wired in internal/app.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/shopstream/shopstream/internal/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := app.Main(ctx, os.Args[1:], app.IO{Stdout: os.Stdout, Stderr: os.Stderr})
	stop()
	os.Exit(code)
}
