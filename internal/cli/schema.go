package cli

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"github.com/jackc/pgx/v5"
	"os"
	"regexp"
	"strings"

	"github.com/savvi-studio/dbinit/internal/config"
	"github.com/savvi-studio/dbinit/internal/provision"
	"github.com/savvi-studio/dbinit/migrate"
)

// cmdDumpSchema writes the schema the folder builds, as pg_dump
// --schema-only prints it, made deterministic: for review, and for code
// generators (sqlc, kysely-codegen) that read a schema file.
func cmdDumpSchema(fs *flag.FlagSet) func(context.Context, *run, []string) error {
	out := fs.String("o", "", "write to this file instead of standard output")
	return func(ctx context.Context, r *run, args []string) error {
		if err := noArgs("dump-schema", args); err != nil {
			return err
		}
		schema, version, err := r.schema(ctx)
		if err != nil {
			return err
		}
		if *out == "" {
			_, err := r.stdout.Write(schema)
			return err
		}
		if old, err := os.ReadFile(*out); err == nil && bytes.Equal(old, schema) {
			r.log.Info("schema file is up to date", "file", *out, "version", version)
			return nil
		}
		if err := writeAtomic(*out, schema); err != nil {
			return err
		}
		r.log.Info("schema written", "file", *out, "version", version, "bytes", len(schema))
		return nil
	}
}

// schema dumps the schema of a scratch copy of the template (built or
// updated first), or of the working database itself when --database names
// it on the command line.
func (r *run) schema(ctx context.Context) ([]byte, int64, error) {
	bin, err := lookPath("pg_dump", r.environ["PATH"])
	if err != nil {
		return nil, 0, &config.Error{Msg: "dump-schema needs pg_dump on the PATH (the PostgreSQL client, of the server's major version or newer)"}
	}
	srv, target, closeAll, err := r.server(ctx)
	if err != nil {
		return nil, 0, err
	}
	defer closeAll()
	dump := func(ctx context.Context, database string) ([]byte, error) {
		return r.pgDumpOutput(ctx, bin, database, "--schema-only", "--no-owner", "--exclude-schema=dbinit")
	}
	version := target.Set.Latest()
	var raw []byte
	if r.flagsSet["database"] {
		applied, err := r.historyOf(ctx, srv, r.cfg.Database)
		if err != nil {
			return nil, 0, err
		}
		version = 0
		for _, a := range applied {
			version = max(version, a.Version)
		}
		raw, err = dump(ctx, r.cfg.Database)
		if err != nil {
			return nil, 0, err
		}
	} else {
		err = srv.Scratch(ctx, target, r.cfg.Database, provision.Latest, func(ctx context.Context, name string, _ *pgx.Conn) error {
			raw, err = dump(ctx, name)
			return err
		})
		if err != nil {
			return nil, 0, err
		}
	}
	header := fmt.Sprintf("-- The schema at migration version %d, written by dbinit dump-schema (pg_dump --schema-only).\n"+
		"-- Generated: do not edit; run dbinit dump-schema again after adding a migration.\n\n", version)
	return append([]byte(header), cleanDump(raw, false)...), version, nil
}

// historyOf reads the history of database (none when it has no history).
func (r *run) historyOf(ctx context.Context, srv *provision.Server, database string) ([]migrate.Applied, error) {
	conn, err := r.connectTo(srv.Conn())(ctx, database)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return migrate.ReadHistory(ctx, conn)
}

var (
	// restrictRE: pg_dump 17.6, 16.10, 15.14 and later fence the dump with
	// psql meta-commands carrying a random key.
	restrictRE = regexp.MustCompile(`(?m)^\\(un)?restrict [A-Za-z0-9]+\n`)
	// versionRE: "-- Dumped from database version 15.18 (...)".
	versionRE = regexp.MustCompile(`(?m)^-- Dumped (from database|by pg_dump) version .*\n`)
	bannerRE  = regexp.MustCompile(`(?m)^--\n-- PostgreSQL database dump( complete)?\n--\n`)
	// settingRE: the session settings pg_dump prints before objects.
	settingRE   = regexp.MustCompile(`(?m)^(SET [a-z_]+ = .*;|SELECT pg_catalog\.set_config\('search_path', '', false\);)\n`)
	timeoutsRE  = regexp.MustCompile(`(?m)^SET (statement_timeout|lock_timeout|idle_in_transaction_session_timeout|transaction_timeout) = .*;\n`)
	blankRunsRE = regexp.MustCompile(`\n{3,}`)
)

// cleanDump makes pg_dump's plain-text output deterministic: no random
// \restrict key, no version banners. Without settings the session
// settings go too (a schema file for review and codegen); with them
// (a squashed migration) only the timeouts go, which are dbinit's to set.
func cleanDump(raw []byte, settings bool) []byte {
	raw = bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n"))
	raw = restrictRE.ReplaceAll(raw, nil)
	raw = versionRE.ReplaceAll(raw, nil)
	raw = bannerRE.ReplaceAll(raw, nil)
	if settings {
		raw = timeoutsRE.ReplaceAll(raw, nil)
	} else {
		raw = settingRE.ReplaceAll(raw, nil)
	}
	raw = blankRunsRE.ReplaceAll(raw, []byte("\n\n"))
	return append(bytes.TrimSpace(raw), '\n')
}

// checkSchemaFile compares a committed schema file with what the folder
// builds now: a *exitError (5) naming the first difference when it is
// stale.
func (r *run) checkSchemaFile(ctx context.Context, path string) error {
	committed, err := os.ReadFile(path)
	if err != nil {
		return &config.Error{Msg: fmt.Sprintf("validate --schema: %v", err)}
	}
	now, version, err := r.schema(ctx)
	if err != nil {
		return err
	}
	if bytes.Equal(committed, now) {
		return nil
	}
	a, b := strings.Split(string(committed), "\n"), strings.Split(string(now), "\n")
	line := 0
	for line < len(a) && line < len(b) && a[line] == b[line] {
		line++
	}
	at := func(l []string) string {
		if line < len(l) {
			return fmt.Sprintf("%q", l[line])
		}
		return "the end of the file"
	}
	return &exitError{code: ExitDrift, msg: fmt.Sprintf("%s:%d: stale: the migrations (version %d) build a different schema; first difference: the file has %s, the migrations give %s; "+
		"regenerate it with dbinit dump-schema -o %s (and the code generated from it)", path, line+1, version, at(a), at(b), path)}
}
