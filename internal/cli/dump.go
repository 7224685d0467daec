package cli

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/savvi-studio/dbinit/internal/config"
	"github.com/savvi-studio/dbinit/internal/dbconn"
)

// lookPath finds an executable in the PATH of dbinit's environment (which
// is the process's, except in tests).
func lookPath(name, path string) (string, error) {
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

// sslmode is the sslmode the configuration names, if it names one.
func (r *run) sslmode() string {
	if u, err := url.Parse(r.cfg.DatabaseURL); err == nil && u.Scheme != "" {
		return u.Query().Get("sslmode")
	}
	return r.environ["PGSSLMODE"]
}

// dumper returns what writes a pg_dump of a database before it is
// migrated, when DBINIT_DUMP_DIR asks for one: pg_dump -Fc into
// <dir>/<database>_<UTC time>.dump. The password goes to pg_dump in its
// environment (PGPASSWORD), never on its command line.
func (r *run) dumper() func(ctx context.Context, database string) (string, error) {
	if r.cfg.DumpDir == "" {
		return nil
	}
	return func(ctx context.Context, database string) (string, error) {
		bin, err := lookPath("pg_dump", r.environ["PATH"])
		if err != nil {
			return "", &config.Error{Msg: "DBINIT_DUMP_DIR is set, but pg_dump is not on the PATH: the dbinit image (FROM scratch) has none; " +
				"run dbinit from the postgres image (Dockerfile.postgres), or rely on DBINIT_SNAPSHOT"}
		}
		path := filepath.Join(r.cfg.DumpDir, fmt.Sprintf("%s_%s.dump", database, time.Now().UTC().Format("20060102T150405")))
		cmd, cleanup, err := r.pgDumpCommand(ctx, bin, database, "--format=custom", "--file="+path)
		if err != nil {
			return "", err
		}
		defer cleanup()
		t0 := time.Now()
		out, err := cmd.CombinedOutput()
		if err != nil {
			os.Remove(path)
			if e := versionMismatch(out); e != nil {
				return "", e
			}
			return "", fmt.Errorf("pg_dump of %s into %s failed (%v); nothing was migrated: %s", dbconn.Ident(database), r.cfg.DumpDir, err, out)
		}
		r.log.Info("pg_dump done", "database", database, "file", path, "duration_ms", time.Since(t0).Milliseconds())
		return path, nil
	}
}

// pgDumpCommand is pg_dump of database with the configuration's server and
// credentials. The password goes to pg_dump in a pgpass file (PGPASSFILE),
// never on its command line or in its environment; cleanup removes the
// file once pg_dump is done.
func (r *run) pgDumpCommand(ctx context.Context, bin, database string, args ...string) (cmd *exec.Cmd, cleanup func(), err error) {
	cc, err := r.cfg.ConnConfig()
	if err != nil {
		return nil, nil, err
	}
	sslmode := r.sslmode()
	if sslmode == "" {
		sslmode = "disable"
		switch {
		case cc.TLSConfig == nil:
		case slices.ContainsFunc(cc.Fallbacks, func(f *pgconn.FallbackConfig) bool { return f.TLSConfig == nil }):
			sslmode = "prefer"
		case cc.TLSConfig.InsecureSkipVerify:
			sslmode = "require"
		default:
			sslmode = "verify-full"
		}
	}
	port := strconv.Itoa(int(cc.Port))
	passfile, cleanup, err := pgpassFile(cc.Host, port, cc.User, cc.Password)
	if err != nil {
		return nil, nil, err
	}
	cmd = exec.CommandContext(ctx, bin, append([]string{"--no-password"}, args...)...)
	env := []string{}
	for _, kv := range os.Environ() {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "PGPASSWORD", "PGPASSWORD_FILE", "PGPASSFILE", "DATABASE_URL", "DATABASE_URL_FILE", "PGSERVICE", "PGHOST", "PGHOSTADDR", "PGPORT", "PGUSER", "PGDATABASE":
		default:
			env = append(env, kv)
		}
	}
	env = append(env, "PGHOST="+cc.Host, "PGPORT="+port, "PGUSER="+cc.User, "PGDATABASE="+database,
		"PGSSLMODE="+sslmode, "PGAPPNAME=dbinit (pg_dump)")
	if passfile != "" {
		env = append(env, "PGPASSFILE="+passfile)
	}
	cmd.Env = env
	return cmd, cleanup, nil
}

// pgDumpOutput runs pg_dump on database with args and returns what it
// wrote; a failure says pg_dump's reason, and an older pg_dump than the
// server is a *config.Error (exit 2).
func (r *run) pgDumpOutput(ctx context.Context, bin, database string, args ...string) ([]byte, error) {
	cmd, cleanup, err := r.pgDumpCommand(ctx, bin, database, args...)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	raw, err := cmd.Output()
	if err != nil {
		if e := versionMismatch(stderr.Bytes()); e != nil {
			return nil, e
		}
		return nil, fmt.Errorf("pg_dump of %s failed (%v): %s", dbconn.Ident(database), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return raw, nil
}

// versionMismatch turns pg_dump's refusal of a newer server into an error
// that says what to install; nil for other failures.
func versionMismatch(out []byte) error {
	if !bytes.Contains(out, []byte("server version mismatch")) {
		return nil
	}
	return &config.Error{Msg: "pg_dump is older than the server and refuses to dump it: install the PostgreSQL client of the server's major version or newer (" +
		strings.TrimSpace(string(out)) + ")"}
}
