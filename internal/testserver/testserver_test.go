package testserver

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func connect(t *testing.T, u string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatalf("connect %s: %v", redact(u), err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func queryString(t *testing.T, conn *pgx.Conn, sql string) string {
	t.Helper()
	var s string
	if err := conn.QueryRow(context.Background(), sql).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

func withPassword(t *testing.T, u, pw string) string {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	p.User = url.UserPassword(p.User.Username(), pw)
	return p.String()
}

func expectAuthFailure(t *testing.T, u string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, u)
	if err == nil {
		conn.Close(ctx)
		t.Fatal("connecting with a wrong password succeeded")
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "28P01" {
		t.Fatalf("connecting with a wrong password: got %v, want SQLSTATE 28P01", err)
	}
}

func TestGet(t *testing.T) {
	srv := MustGet(t)
	t.Logf("server: source=%s version=%d url=%s", srv.Source, srv.Version, redact(srv.URL))
	if srv.Version < 90000 {
		t.Errorf("Version = %d, want a server_version_num", srv.Version)
	}
	conn := connect(t, srv.URL)
	if got := queryString(t, conn, "SELECT 1::text"); got != "1" {
		t.Errorf("SELECT 1 = %q", got)
	}
	if got := queryString(t, conn, "SELECT current_setting('is_superuser')"); got != "on" {
		t.Errorf("is_superuser = %q, want on", got)
	}

	again, err := Get(context.Background())
	if err != nil || *again != *srv {
		t.Errorf("second Get = %+v, %v; want %+v", again, err, srv)
	}

	if !strings.HasPrefix(srv.Source, "local:") {
		t.Skipf("server from %s; the password checks below are for local clusters", srv.Source)
	}
	expectAuthFailure(t, withPassword(t, srv.URL, "wrong-password"))
	u, _ := url.Parse(srv.URL)
	if pw, _ := u.User.Password(); len(pw) < 16 {
		t.Errorf("generated password %q is too short", pw)
	}
	if u.Hostname() != "127.0.0.1" {
		t.Errorf("host = %q, want 127.0.0.1", u.Hostname())
	}
}

// needLocal returns the local binary directory for a test that starts a
// server: skipped under -short, failed when there are no binaries.
func needLocal(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a PostgreSQL server; skipped under -short")
	}
	dir, err := findBinDir(os.Getenv, defaultBinGlobs)
	if err != nil {
		t.Fatalf("no local PostgreSQL binaries: %v", err)
	}
	return dir
}

type fakeTB struct {
	fatal, skip string
}

func (f *fakeTB) Helper()                        {}
func (f *fakeTB) Fatalf(format string, a ...any) { f.fatal = fmt.Sprintf(format, a...) }
func (f *fakeTB) Skipf(format string, a ...any)  { f.skip = fmt.Sprintf(format, a...) }

func TestMustGetSkipOrFail(t *testing.T) {
	noServer := func(context.Context) (*Server, error) {
		return nil, fmt.Errorf("%w; tried: everything", ErrNoServer)
	}
	broken := func(context.Context) (*Server, error) {
		return nil, errors.New("testserver: TEST_DATABASE_URL is set but broken")
	}
	ok := func(context.Context) (*Server, error) { return &Server{URL: "x"}, nil }

	called := false
	spy := func(context.Context) (*Server, error) { called = true; return &Server{URL: "x"}, nil }
	for _, tc := range []struct {
		name      string
		get       func(context.Context) (*Server, error)
		short     bool
		wantFatal bool
		wantSkip  bool
	}{
		{"ok", ok, false, false, false},
		{"none fails", noServer, false, true, false},
		{"broken fails", broken, false, true, false},
		{"short skips without looking", spy, true, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeTB{}
			srv := mustGet(f, tc.get, tc.short)
			if (f.fatal != "") != tc.wantFatal || (f.skip != "") != tc.wantSkip {
				t.Errorf("fatal=%q skip=%q; want fatal %v, skip %v", f.fatal, f.skip, tc.wantFatal, tc.wantSkip)
			}
			if (srv != nil) != (f.fatal == "" && f.skip == "") {
				t.Errorf("server = %v", srv)
			}
			if tc.name == "none fails" && !strings.Contains(f.fatal, "TEST_DATABASE_URL") {
				t.Errorf("failure does not say how to get a server: %s", f.fatal)
			}
		})
	}
	if called {
		t.Error("-short looked for a server")
	}
}

type fakeProvider struct {
	name string
	srv  *Server
	err  error
}

func (p fakeProvider) Name() string                           { return p.name }
func (p fakeProvider) Start(context.Context) (*Server, error) { return p.srv, p.err }

func TestResolveOrder(t *testing.T) {
	ctx := context.Background()
	env := func(m map[string]string) func(string) string {
		return func(k string) string { return m[k] }
	}
	noBin := func() (string, error) { return "", errors.New("nothing in /nowhere") }
	noLocal := func(context.Context, string) (*Server, error) {
		t.Error("local called")
		return nil, errors.New("unexpected")
	}

	t.Run("URL that does not answer", func(t *testing.T) {
		r := &resolver{
			getenv:  env(map[string]string{EnvDatabaseURL: "postgres://u:hunter2@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=5"}),
			findBin: noBin, local: noLocal,
		}
		_, err := r.resolve(ctx)
		if err == nil || errors.Is(err, ErrNoServer) {
			t.Fatalf("err = %v; want a failure that is not ErrNoServer", err)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("error leaks the password: %v", err)
		}
		if !strings.Contains(err.Error(), EnvDatabaseURL) {
			t.Errorf("error does not name %s: %v", EnvDatabaseURL, err)
		}
	})

	t.Run("nothing at all", func(t *testing.T) {
		r := &resolver{getenv: env(nil), findBin: noBin, local: noLocal}
		_, err := r.resolve(ctx)
		if !errors.Is(err, ErrNoServer) {
			t.Fatalf("err = %v; want ErrNoServer", err)
		}
		for _, want := range []string{"TEST_DATABASE_URL: not set", "nothing in /nowhere", "providers: none registered"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error does not mention %q:\n%v", want, err)
			}
		}
	})

	t.Run("explicit bindir that is broken", func(t *testing.T) {
		r := &resolver{getenv: env(map[string]string{EnvBinDir: "/nowhere"}), findBin: noBin, local: noLocal}
		_, err := r.resolve(ctx)
		if err == nil || errors.Is(err, ErrNoServer) {
			t.Fatalf("err = %v; want a failure that is not ErrNoServer", err)
		}
	})

	t.Run("providers after a failing local cluster", func(t *testing.T) {
		srv := MustGet(t)
		r := &resolver{
			getenv:  env(nil),
			findBin: func() (string, error) { return "/opt/pg/bin", nil },
			local: func(context.Context, string) (*Server, error) {
				return nil, errors.New("initdb exploded")
			},
			providers: []Provider{
				fakeProvider{name: "broken", err: errors.New("no docker")},
				fakeProvider{name: "good", srv: &Server{URL: srv.URL}},
			},
		}
		got, err := r.resolve(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got.Source != "good" || got.Version != srv.Version {
			t.Errorf("got %+v; want source good, version %d", got, srv.Version)
		}

		r.providers = r.providers[:1]
		_, err = r.resolve(ctx)
		if !errors.Is(err, ErrNoServer) {
			t.Fatalf("err = %v; want ErrNoServer", err)
		}
		for _, want := range []string{"initdb exploded", "provider broken: no docker", "/opt/pg/bin"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error does not mention %q:\n%v", want, err)
			}
		}
	})
}

func TestFindBinDir(t *testing.T) {
	mk := func(dir string, bins ...string) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, b := range bins {
			if err := os.WriteFile(filepath.Join(dir, b), []byte("#!/bin/sh\n"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	root := t.TempDir()
	mk(filepath.Join(root, "9.6", "bin"), serverBinaries...)
	mk(filepath.Join(root, "15", "bin"), serverBinaries...)
	mk(filepath.Join(root, "16", "bin"), "pg_ctl", "initdb") // no postgres
	globs := []string{filepath.Join(root, "*", "bin")}

	t.Setenv("PATH", t.TempDir()) // no pg_config or initdb on PATH
	got, err := findBinDir(func(string) string { return "" }, globs)
	if want := filepath.Join(root, "15", "bin"); err != nil || got != want {
		t.Errorf("findBinDir = %q, %v; want %q", got, err, want)
	}

	explicit := filepath.Join(root, "9.6", "bin")
	got, err = findBinDir(func(k string) string {
		if k == EnvBinDir {
			return explicit
		}
		return ""
	}, globs)
	if err != nil || got != explicit {
		t.Errorf("with %s: %q, %v", EnvBinDir, got, err)
	}

	_, err = findBinDir(func(k string) string {
		if k == EnvBinDir {
			return filepath.Join(root, "16", "bin")
		}
		return ""
	}, globs)
	if err == nil || !strings.Contains(err.Error(), "postgres") {
		t.Errorf("with a bindir lacking postgres: %v", err)
	}

	_, err = findBinDir(func(string) string { return "" }, []string{filepath.Join(root, "none*")})
	if err == nil || !strings.Contains(err.Error(), "no initdb on PATH") || !strings.Contains(err.Error(), "no pg_config on PATH") {
		t.Errorf("with nothing: %v", err)
	}

	// pg_config on PATH wins over the globs.
	pathDir := t.TempDir()
	script := fmt.Sprintf("#!/bin/sh\necho %s\n", explicit)
	if err := os.WriteFile(filepath.Join(pathDir, "pg_config"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", pathDir)
	if got, err := findBinDir(func(string) string { return "" }, globs); err != nil || got != explicit {
		t.Errorf("with pg_config on PATH: %q, %v; want %q", got, err, explicit)
	}
}

func TestStaleCleanup(t *testing.T) {
	if !localSupported {
		t.Skip(errUnsupported)
	}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := cmd.Process.Pid
	if processAlive(dead) {
		t.Skip("pid reused already")
	}
	stale := filepath.Join(clusterRoot(), fmt.Sprintf("%s%d-%d-x", dirPrefix, os.Geteuid(), dead))
	if err := os.MkdirAll(filepath.Join(stale, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	live := filepath.Join(clusterRoot(), fmt.Sprintf("%s%d-%d-x", dirPrefix, os.Geteuid(), os.Getpid()))
	if err := os.MkdirAll(live, 0o700); err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(live)
	cleanupStale()
	if _, err := os.Stat(stale); err == nil {
		os.RemoveAll(stale)
		t.Errorf("stale directory %s survived", stale)
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("live directory %s was removed", live)
	}
}
