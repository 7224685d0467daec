// Package cli is dbinit's command line: it parses arguments and the
// environment, runs one command and decides the exit code. main only builds
// a context and calls Run, so tests call Run directly.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	"github.com/savvi-studio/dbinit/internal/config"
	"github.com/savvi-studio/dbinit/migrate"
)

// Version is set at build time with -ldflags "-X github.com/savvi-studio/dbinit/internal/cli.Version=v1.2.3".
var Version = ""

const usage = `dbinit: PostgreSQL schema initialisation and migrations for containers.

Usage: dbinit [command] [flags]

Commands (no command = init):
  init                   wait for the server, build or reuse the template, create the
                         working database from it or bring it up to date
  wait                   wait until the server accepts connections
  up [--to N]            apply pending migrations to the working database (created empty if absent)
  down (--to N | --steps K)
                         revert applied migrations, newest first
  status [--json]        applied, pending, changed, missing and partial migrations
  plan                   what up would run, touching nothing
  clone [--replace] [--rebuild] NAME
                         create database NAME from the template
  new NAME               create the next NNN_name.sql and NNN_name_down.sql
  baseline --version N   record 1..N as applied without running them
  accept VERSION         record the checksum of an applied file that was edited on purpose
  snapshot list [--json] dbinit's snapshots of the working database
  snapshot restore NAME  put a snapshot in place of the working database (the current one is kept)
  version                print the version

Flags (override the environment):
  --dir DIR              migrations folder (DBINIT_DIR, default ./db)
  --database NAME        working database (DBINIT_DATABASE, default savvi_studio)
  --template NAME        template database (DBINIT_TEMPLATE, default savvi_studio_template);
                         none = production mode: init only brings the working database up to date
  --log-format FORMAT    text or json (DBINIT_LOG_FORMAT)
  --wait-timeout D       how long to wait for the server (DBINIT_WAIT_TIMEOUT, default 60s)
  --lock-timeout D       how long to wait for another runner (DBINIT_LOCK_TIMEOUT, default 5m)

The server is DATABASE_URL (or DATABASE_URL_FILE), else the libpq variables
PGHOST, PGPORT, PGUSER, PGPASSWORD (or PGPASSWORD_FILE), PGDATABASE, PGSSLMODE...
Its database is the maintenance database (locks, CREATE DATABASE), postgres by default.

Exit codes: 0 ok, 1 migration failed, 2 usage/configuration/bad folder,
3 server unreachable, 4 authentication or permission refused, 5 drift,
6 lock timeout, 130 interrupted.
`

// Run runs dbinit with args (without the program name) and returns the exit
// code. environ is the process environment as a map.
func Run(ctx context.Context, args []string, environ map[string]string, stdout, stderr io.Writer) int {
	r := &run{stdout: stdout, stderr: stderr, environ: environ}
	err := explain(r.main(ctx, args))
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		r.printError(err, args)
	}
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	return ExitCode(err)
}

type run struct {
	stdout, stderr io.Writer
	environ        map[string]string
	cfg            *config.Config
	log            *slog.Logger
}

// A command registers its own flags on fs and returns the function that runs
// it with the positional arguments.
type command func(fs *flag.FlagSet) func(ctx context.Context, r *run, args []string) error

func (r *run) main(ctx context.Context, args []string) error {
	name := "init"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	switch name {
	case "help":
		fmt.Fprint(r.stdout, usage)
		return nil
	case "version":
		fmt.Fprintln(r.stdout, "dbinit", version())
		return nil
	}
	cmd, ok := commands[name]
	if !ok {
		return &usageError{fmt.Sprintf("unknown command %q; run `dbinit help`", name)}
	}
	fs := flag.NewFlagSet("dbinit "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var g globalFlags
	g.register(fs)
	runCmd := cmd(fs)
	positional, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(r.stdout, usage)
		return err
	}
	if err != nil {
		return &usageError{fmt.Sprintf("dbinit %s: %v", name, err)}
	}
	cfg, err := config.Load(r.environ)
	if err != nil {
		return err
	}
	if err := g.apply(fs, cfg); err != nil {
		return err
	}
	r.cfg = cfg
	r.log = newLogger(r.stderr, cfg, secretsOf(cfg))
	return runCmd(ctx, r, positional)
}

// globalFlags override the environment.
type globalFlags struct {
	dir, database, template, logFormat string
	waitTimeout, lockTimeout           time.Duration
}

func (g *globalFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&g.dir, "dir", "", "migrations folder")
	fs.StringVar(&g.database, "database", "", "working database")
	fs.StringVar(&g.template, "template", "", "template database")
	fs.StringVar(&g.logFormat, "log-format", "", "text or json")
	fs.DurationVar(&g.waitTimeout, "wait-timeout", 0, "how long to wait for the server")
	fs.DurationVar(&g.lockTimeout, "lock-timeout", 0, "how long to wait for the lock")
}

func (g *globalFlags) apply(fs *flag.FlagSet, cfg *config.Config) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["dir"] {
		cfg.Dir = g.dir
	}
	if set["database"] {
		cfg.Database = g.database
	}
	if set["template"] {
		cfg.Template = g.template
	}
	if set["log-format"] {
		cfg.LogFormat = g.logFormat
	}
	if set["wait-timeout"] {
		cfg.WaitTimeout = g.waitTimeout
	}
	if set["lock-timeout"] {
		cfg.LockTimeout = g.lockTimeout
	}
	return cfg.Validate()
}

// parseInterspersed lets flags follow positional arguments
// (`dbinit clone test_db --replace`), as users expect.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if rest[0] == "--" {
			return append(positional, rest[1:]...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

func version() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// printError reports the error that ends the run: compiler-style text for
// people, or one JSON log line with the place as fields for log pipelines.
// It also works before the configuration was read (a bad flag, a bad
// variable): the format then comes from the flags and the environment as
// given, and the secrets to mask from the environment.
func (r *run) printError(err error, args []string) {
	code := ExitCode(err)
	var secrets []string
	format := requestedFormat(args, r.environ)
	if r.cfg != nil {
		secrets, format = secretsOf(r.cfg), r.cfg.LogFormat
	} else {
		secrets = longSecrets(config.EnvSecrets(r.environ))
	}
	w := &redactWriter{w: r.stderr, secrets: secrets}
	if format == "json" {
		log := r.log
		if log == nil {
			log = slog.New(slog.NewJSONHandler(w, nil))
		}
		attrs := []any{"error", err.Error(), "exit_code", code}
		var sqlErr *migrate.SQLError
		if errors.As(err, &sqlErr) {
			attrs = append(attrs, "file", sqlErr.Path, "line", sqlErr.Line, "col", sqlErr.Col, "sqlstate", sqlErr.Err.Code)
		}
		log.Error("failed", attrs...)
		return
	}
	fmt.Fprintf(w, "dbinit: %s\n", err)
}

// requestedFormat is the log format the flags or the environment ask for,
// read without parsing either (they may be what failed).
func requestedFormat(args []string, environ map[string]string) string {
	format := environ["DBINIT_LOG_FORMAT"]
	for i, a := range args {
		a = strings.TrimLeft(a, "-")
		if v, ok := strings.CutPrefix(a, "log-format="); ok {
			format = v
		} else if a == "log-format" && i+1 < len(args) {
			format = args[i+1]
		}
	}
	return format
}
