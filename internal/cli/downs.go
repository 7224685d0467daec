package cli

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/savvi-studio/dbinit/internal/config"
)

// cmdGenerateDown writes a version's down file from the catalog.
func cmdGenerateDown(fs *flag.FlagSet) func(context.Context, *run, []string) error {
	force := fs.Bool("force", false, "replace an existing down file")
	return func(ctx context.Context, r *run, args []string) error {
		if len(args) != 1 {
			return &usageError{"generate-down: needs exactly one VERSION"}
		}
		v, err := strconv.ParseInt(args[0], 10, 64)
		if err != nil || v <= 0 {
			return &usageError{fmt.Sprintf("generate-down: %q is not a version number", args[0])}
		}
		srv, target, closeAll, err := r.server(ctx)
		if err != nil {
			return err
		}
		defer closeAll()
		m := target.Set.Find(v)
		if m == nil {
			return &usageError{fmt.Sprintf("generate-down: there is no file with version %d in %s", v, target.Set.Dir)}
		}
		name := strings.TrimSuffix(m.Up.File, ".sql") + "_down.sql"
		path := filepath.Join(r.cfg.Dir, name)
		if m.Down != nil && !*force {
			return &config.Error{Msg: fmt.Sprintf("generate-down: %s exists; --force replaces it (dbinit check-down %d shows whether it works)", path, v)}
		}
		sql, warnings, err := srv.GenerateDown(ctx, target, r.cfg.Database, v)
		if err != nil {
			return err
		}
		var data []string
		for _, st := range m.Up.Statements {
			if kw := strings.ToUpper(firstWord(st.SQL())); kw == "INSERT" || kw == "UPDATE" || kw == "DELETE" || kw == "MERGE" || kw == "COPY" || kw == "TRUNCATE" {
				line := fmt.Sprintf("%s:%d", m.Up.Path, st.Line)
				data = append(data, line)
			}
		}
		if len(data) > 0 {
			msg := fmt.Sprintf("the up file changes data (%s): generate-down reverses schema changes only; reverse the data changes by hand if they matter", strings.Join(data, ", "))
			warnings = append(warnings, msg)
			sql += "\n-- WARNING: " + msg + "\n"
		}
		header := fmt.Sprintf("-- %s: reverses %s. Written by dbinit generate-down; check it with dbinit check-down --from %d.\n", strings.TrimSuffix(name, ".sql"), m.Up.File, v)
		if m.Up.NoTransaction {
			header += "-- The up file runs without a transaction; this one runs in one.\n"
		}
		if err := writeAtomic(path, []byte(header+sql)); err != nil {
			return err
		}
		for _, w := range warnings {
			r.log.Warn("generate-down: "+w, "file", path)
		}
		fmt.Fprintln(r.stdout, path)
		return nil
	}
}

func firstWord(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexAny(s, " \t\r\n(;"); i >= 0 {
		return s[:i]
	}
	return s
}

// cmdCheckDown proves that down files reverse their up files.
func cmdCheckDown(fs *flag.FlagSet) func(context.Context, *run, []string) error {
	from := fs.Int64("from", 1, "check the versions from this one on")
	return func(ctx context.Context, r *run, args []string) error {
		if err := noArgs("check-down", args); err != nil {
			return err
		}
		srv, target, closeAll, err := r.server(ctx)
		if err != nil {
			return err
		}
		defer closeAll()
		checks, err := srv.CheckDown(ctx, target, r.cfg.Database, *from)
		if err != nil {
			return err
		}
		var failed, ok, none int
		for _, c := range checks {
			switch {
			case c.Err != nil:
				failed++
				fmt.Fprintf(r.stdout, "%d FAILED: %v\n", c.Version, c.Err)
			case c.NoDown:
				none++
				fmt.Fprintf(r.stdout, "%d no down file\n", c.Version)
			case c.OK():
				ok++
				fmt.Fprintf(r.stdout, "%d ok      %s\n", c.Version, c.Path)
			default:
				failed++
				fmt.Fprintf(r.stdout, "%d DIFFERS %s does not put the schema back:\n", c.Version, c.Path)
				for _, l := range c.Missing {
					fmt.Fprintf(r.stdout, "    missing: %s\n", l)
				}
				for _, l := range c.Extra {
					fmt.Fprintf(r.stdout, "    left over: %s\n", l)
				}
			}
			if c.Reapply != nil {
				fmt.Fprintf(r.stdout, "    note: the up file failed when applied again after the down file, which left schema or rows behind (the next versions were checked on a database built anew): %v\n", c.Reapply)
			}
		}
		fmt.Fprintf(r.stdout, "%d down file(s) reverse their up file, %d do not, %d version(s) have none\n", ok, failed, none)
		if failed > 0 {
			return &exitError{code: ExitDrift, msg: fmt.Sprintf("check-down: %d down file(s) do not put the schema back as it was before their up file", failed)}
		}
		return nil
	}
}
