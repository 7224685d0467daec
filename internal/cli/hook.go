package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// HookError is DBINIT_AFTER_HOOK failing. The migrations it followed stay
// applied. Exit code 1.
type HookError struct {
	Command string
	Code    int // the hook's exit code; -1 when it did not start or was killed
	Output  string
	Err     error
}

func (e *HookError) Error() string {
	out := strings.TrimSpace(e.Output)
	if out != "" {
		out = "; its output:\n" + out
	}
	if e.Code >= 0 {
		return fmt.Sprintf("DBINIT_AFTER_HOOK %q exited %d (the migrations before it are applied)%s", e.Command, e.Code, out)
	}
	return fmt.Sprintf("DBINIT_AFTER_HOOK %q failed: %v (the migrations before it are applied)%s", e.Command, e.Err, out)
}

func (e *HookError) Unwrap() error { return e.Err }

// afterHook runs DBINIT_AFTER_HOOK when the run changed something. The
// hook gets the working database in DATABASE_URL and PGHOST, PGPORT,
// PGUSER, PGDATABASE, and the password in a pgpass file (PGPASSFILE) that
// only this user can read and that is removed afterwards: never on a
// command line, never in the environment.
func (r *run) afterHook(ctx context.Context, changed bool) error {
	hook := strings.TrimSpace(r.cfg.AfterHook)
	if hook == "" || !changed {
		return nil
	}
	cc, err := r.cfg.ConnConfig()
	if err != nil {
		return err
	}
	env := make([]string, 0, len(r.environ)+8)
	for k, v := range r.environ {
		switch k {
		case "PGPASSWORD", "PGPASSWORD_FILE", "DATABASE_URL", "DATABASE_URL_FILE", "PGPASSFILE", "PGSERVICE", "PGSERVICEFILE", "PGSSLPASSWORD":
			continue
		}
		env = append(env, k+"="+v)
	}
	port := strconv.Itoa(int(cc.Port))
	u := url.URL{Scheme: "postgres", User: url.User(cc.User), Host: net.JoinHostPort(cc.Host, port), Path: "/" + r.cfg.Database}
	if mode := r.sslmode(); mode != "" {
		u.RawQuery = "sslmode=" + url.QueryEscape(mode)
	}
	if strings.HasPrefix(cc.Host, "/") { // a unix socket folder
		u.Host, u.RawQuery = "", "host="+url.QueryEscape(cc.Host)+"&port="+port
	}
	env = append(env, "DATABASE_URL="+u.String(), "PGHOST="+cc.Host, "PGPORT="+port,
		"PGUSER="+cc.User, "PGDATABASE="+r.cfg.Database, "DBINIT_DATABASE="+r.cfg.Database)
	passfile, cleanup, err := pgpassFile(cc.Host, port, cc.User, cc.Password)
	if err != nil {
		return &HookError{Command: hook, Code: -1, Err: err}
	}
	defer cleanup()
	if passfile != "" {
		env = append(env, "PGPASSFILE="+passfile)
	}
	var cmd *exec.Cmd
	if runtime.GOOS == "windows" {
		cmd = exec.CommandContext(ctx, "cmd", "/C", hook)
	} else {
		cmd = exec.CommandContext(ctx, "/bin/sh", "-c", hook)
	}
	cmd.Env = env
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	// In text mode the hook's output goes to dbinit's stderr as it comes
	// (a code generator's progress); in JSON mode, where every line dbinit
	// prints is JSON, it is kept for the error only.
	var w io.Writer = &out
	if r.cfg.LogFormat != "json" {
		lw := &lineWriter{w: &redactWriter{w: r.stderr, secrets: secretsOf(r.cfg)}}
		defer lw.Flush()
		w = lw
	}
	cmd.Stdout, cmd.Stderr = w, w
	r.log.Info("running DBINIT_AFTER_HOOK", "command", hook, "database", r.cfg.Database)
	t0 := time.Now()
	err = cmd.Run()
	if err == nil {
		r.log.Info("DBINIT_AFTER_HOOK done", "duration_ms", time.Since(t0).Milliseconds())
		return nil
	}
	he := &HookError{Command: hook, Code: -1, Output: out.String(), Err: err}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() >= 0 {
		he.Code = ee.ExitCode()
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return he
}

// pgpassFile writes a pgpass file (mode 0600) that gives password to user
// on host:port only, for a child process (pg_dump, the after hook); it
// returns "" when there is no password. cleanup removes it.
func pgpassFile(host, port, user, password string) (path string, cleanup func(), err error) {
	if password == "" {
		return "", func() {}, nil
	}
	f, err := os.CreateTemp("", "dbinit-pgpass-*")
	if err != nil {
		return "", func() {}, fmt.Errorf("write a password file for it: %w", err)
	}
	cleanup = func() { os.Remove(f.Name()) }
	esc := strings.NewReplacer(`\`, `\\`, `:`, `\:`)
	// A unix socket folder is matched as "localhost" (libpq's rule).
	if strings.HasPrefix(host, "/") {
		host = "localhost"
	}
	_, werr := fmt.Fprintf(f, "%s:%s:*:%s:%s\n", esc.Replace(host), port, esc.Replace(user), esc.Replace(password))
	if err := f.Close(); werr == nil {
		werr = err
	}
	if werr == nil {
		werr = os.Chmod(f.Name(), 0o600)
	}
	if werr != nil {
		cleanup()
		return "", func() {}, fmt.Errorf("write a password file for it: %w", werr)
	}
	return f.Name(), cleanup, nil
}
