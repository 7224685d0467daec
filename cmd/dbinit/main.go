// Command dbinit initialises and migrates PostgreSQL databases from a folder
// of numbered SQL files. See `dbinit help` and the README.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/savvi-studio/dbinit/internal/cli"
	"github.com/savvi-studio/dbinit/internal/config"
)

func main() {
	// Kubernetes stops pods with SIGTERM; a terminal with SIGINT. Either
	// cancels the running statement, rolls back and releases the lock.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], config.Environ(os.Environ()), os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
