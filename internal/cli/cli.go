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
	readOnly       bool            // the command changes nothing (status, plan)
	flagsSet       map[string]bool // the flags given on the command line
}

func (r *run) main(ctx context.Context, args []string) error {
	// Global flags may come before the command: dbinit --dir db status.
	var g globalFlags
	gfs := newFlagSet("dbinit")
	g.register(gfs)
	showVersion := gfs.Bool("version", false, "print the version")
	if err := checkFlags(gfs, "", args, true); err != nil {
		return err
	}
	if err := gfs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(r.stdout, usageText())
		}
		return flagError("", err)
	}
	if *showVersion {
		fmt.Fprintln(r.stdout, "dbinit", version())
		return nil
	}
	args = gfs.Args()
	name := "init"
	if len(args) > 0 && args[0] != "--" {
		name, args = args[0], args[1:]
	}
	switch name {
	case "help":
		if len(args) == 0 {
			fmt.Fprint(r.stdout, usageText())
			return nil
		}
		sp, ok := lookup(args[0])
		if !ok {
			return unknownCommand(args[0])
		}
		commandHelp(r.stdout, sp)
		return nil
	case "version":
		fmt.Fprintln(r.stdout, "dbinit", version())
		return nil
	}
	sp, ok := lookup(name)
	if !ok || sp.command == nil {
		return unknownCommand(name)
	}
	fs := newFlagSet("dbinit " + name)
	var after globalFlags // the global flags after the command; they win
	after.register(fs)
	runCmd := sp.command(fs)
	if err := checkFlags(fs, name, args, false); err != nil {
		return err
	}
	positional, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		commandHelp(r.stdout, sp)
		return err
	}
	if err != nil {
		return flagError(name, err)
	}
	cfg, err := config.Load(r.environ)
	if err != nil {
		return err
	}
	set := visited(gfs, fs)
	g.apply(visited(gfs), cfg)
	after.apply(visited(fs), cfg)
	if err := validateFlags(set, cfg); err != nil {
		return err
	}
	if sp.readOnly && !set["wait-timeout"] && r.environ["DBINIT_WAIT_TIMEOUT"] == "" {
		// A report should not wait a minute for a mistyped host.
		cfg.WaitTimeout = 5 * time.Second
	}
	r.cfg, r.readOnly, r.flagsSet = cfg, sp.readOnly, set
	r.log = newLogger(r.stderr, cfg, secretsOf(cfg))
	return runCmd(ctx, r, positional)
}

func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

func unknownCommand(name string) error {
	var names []string
	for _, s := range specs {
		names = append(names, s.name)
	}
	msg := fmt.Sprintf("unknown command %q", name)
	if c := suggest(name, names); c != "" {
		msg += fmt.Sprintf("; did you mean %q?", c)
	}
	return &usageError{msg + " (dbinit help lists the commands)"}
}

// checkFlags reports an unknown flag with the closest known one, before
// the flag package's own message (which names no alternative). Only the
// flags before the first argument count when stopAtArg is set (the global
// flags before the command).
func checkFlags(fs *flag.FlagSet, cmd string, args []string, stopAtArg bool) error {
	for _, a := range args {
		if a == "--" {
			return nil
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			if stopAtArg {
				return nil
			}
			continue
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if name == "h" || name == "help" || fs.Lookup(name) != nil {
			continue
		}
		var known []string
		fs.VisitAll(func(f *flag.Flag) { known = append(known, f.Name) })
		msg := fmt.Sprintf("unknown flag --%s", name)
		if c := suggest(name, known); c != "" {
			msg += fmt.Sprintf("; did you mean --%s?", c)
		}
		if cmd != "" {
			return &usageError{cmd + ": " + msg + " (dbinit help " + cmd + ")"}
		}
		return &usageError{msg + " (dbinit help)"}
	}
	return nil
}

// flagError words a flag package error.
func flagError(cmd string, err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	msg := strings.Replace(err.Error(), "flag -", "flag --", 1)
	if cmd != "" {
		msg = cmd + ": " + msg
	}
	return &usageError{msg}
}

func visited(sets ...*flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	for _, fs := range sets {
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	}
	return set
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

// apply puts the flags that were given over the environment.
func (g *globalFlags) apply(set map[string]bool, cfg *config.Config) {
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
}

// validateFlags checks the configuration with the flags applied, naming
// the flag when a flag's value is what is wrong.
func validateFlags(set map[string]bool, cfg *config.Config) error {
	err := cfg.Validate()
	var ce *config.Error
	if errors.As(err, &ce) {
		for flagName, variable := range map[string]string{"dir": "DBINIT_DIR", "database": "DBINIT_DATABASE", "template": "DBINIT_TEMPLATE",
			"log-format": "DBINIT_LOG_FORMAT", "wait-timeout": "DBINIT_WAIT_TIMEOUT", "lock-timeout": "DBINIT_LOCK_TIMEOUT"} {
			if set[flagName] {
				ce.Msg = strings.ReplaceAll(ce.Msg, variable, "--"+flagName)
			}
		}
	}
	return err
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

// version is the -ldflags version, else the module's (go install
// ...@v1.2.0), else the VCS revision go build stamped ("devel-1a2b3c4d5e6f",
// with "-dirty" for uncommitted changes), else "dev".
func version() string {
	if Version != "" {
		return Version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch {
		case s.Key == "vcs.revision":
			rev = s.Value
		case s.Key == "vcs.modified" && s.Value == "true":
			dirty = "-dirty"
		}
	}
	if rev == "" {
		return "dev"
	}
	return "devel-" + rev[:min(12, len(rev))] + dirty
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
