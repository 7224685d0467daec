package testserver

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Environment variables read by this package.
const (
	EnvDatabaseURL = "TEST_DATABASE_URL"
	EnvBinDir      = "TEST_PG_BINDIR"
	EnvOwnerPID    = "TEST_PG_OWNER_PID"
	EnvTmpDir      = "TEST_PG_TMPDIR"
)

// Server is a reachable PostgreSQL server for tests.
type Server struct {
	// URL of the maintenance database with superuser credentials, e.g.
	// "postgres://postgres:secret@127.0.0.1:54321/postgres?sslmode=disable".
	URL string
	// Source says where the server came from: "TEST_DATABASE_URL",
	// "local:<binary directory>", or a provider name.
	Source string
	// Version is server_version_num, e.g. 150018.
	Version int
}

// A Provider can supply a server when TEST_DATABASE_URL is not set and no
// local binaries exist (e.g. testcontainers). Providers live in separate
// packages, so that users who do not need them do not import them, and add
// themselves with [Register], typically from an init function.
type Provider interface {
	// Name identifies the provider in Server.Source and in error messages.
	Name() string
	// Start returns a running server that stays up until the process
	// exits. Get calls it at most once per process (unless Get's context
	// ended while it ran). If the returned Server has no Source, the
	// provider's name is used.
	Start(ctx context.Context) (*Server, error)
}

// ErrNoServer is wrapped by the error [Get] returns when no server could be
// had: no TEST_DATABASE_URL, no usable local binaries and no provider that
// could start one. Errors that are not ErrNoServer mean that something was
// explicitly configured (TEST_DATABASE_URL, TEST_PG_BINDIR) and is broken.
var ErrNoServer = errors.New("testserver: no PostgreSQL server available for tests")

var (
	providersMu sync.Mutex
	providers   []Provider
)

// Register adds a provider, tried after TEST_DATABASE_URL and local
// binaries, in registration order. Providers registered after the first
// call to [Get] are not consulted by it.
func Register(p Provider) {
	if p == nil {
		panic("testserver: Register(nil)")
	}
	providersMu.Lock()
	defer providersMu.Unlock()
	providers = append(providers, p)
}

func registeredProviders() []Provider {
	providersMu.Lock()
	defer providersMu.Unlock()
	return append([]Provider(nil), providers...)
}

var global struct {
	mu   sync.Mutex
	done bool
	srv  *Server
	err  error
}

// Get returns the server for this process, starting one if needed (see the
// package documentation for the order in which sources are tried). It
// resolves once per process; later calls return the same result, except
// that a failure caused by ctx ending is not remembered.
func Get(ctx context.Context) (*Server, error) {
	global.mu.Lock()
	defer global.mu.Unlock()
	if !global.done {
		srv, err := defaultResolver().resolve(ctx)
		if err != nil && ctx.Err() != nil {
			return nil, err
		}
		global.done, global.srv, global.err = true, srv, err
	}
	if global.err != nil {
		return nil, global.err
	}
	s := *global.srv
	return &s, nil
}

// TB is the part of testing.TB that [MustGet] needs.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
}

// MustGet returns [Get]'s server for a test. Under `go test -short` it
// skips the test without looking for a server (short runs start no
// PostgreSQL); otherwise a missing or broken server fails the test, never
// skips it. (With a TB whose Fatalf and Skipf return, MustGet returns nil.)
func MustGet(tb TB) *Server {
	tb.Helper()
	return mustGet(tb, Get, testing.Short())
}

func mustGet(tb TB, get func(context.Context) (*Server, error), short bool) *Server {
	tb.Helper()
	if short {
		tb.Skipf("needs a PostgreSQL server; skipped under -short")
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	srv, err := get(ctx)
	switch {
	case err == nil:
		return srv
	case errors.Is(err, ErrNoServer):
		tb.Fatalf("%v\n"+
			"This test needs PostgreSQL. Install the server (apt-get install postgresql,\n"+
			"brew install postgresql), set %s to its bin directory, or set\n"+
			"%s=postgres://postgres:PASSWORD@HOST:PORT/postgres.\n"+
			"`go test -short` skips the tests that need a server.", err, EnvBinDir, EnvDatabaseURL)
	default:
		tb.Fatalf("%v", err)
	}
	return nil
}

// resolver holds Get's dependencies, so that tests can replace them.
type resolver struct {
	getenv    func(string) string
	findBin   func() (binDir string, err error)
	local     func(ctx context.Context, binDir string) (*Server, error)
	providers []Provider
}

func defaultResolver() *resolver {
	return &resolver{
		getenv: os.Getenv,
		findBin: func() (string, error) {
			return findBinDir(os.Getenv, defaultBinGlobs)
		},
		local: func(ctx context.Context, binDir string) (*Server, error) {
			return sharedServer(ctx, binDir, ownerPID(os.Getenv))
		},
		providers: registeredProviders(),
	}
}

func (r *resolver) resolve(ctx context.Context) (*Server, error) {
	if u := r.getenv(EnvDatabaseURL); u != "" {
		v, err := probe(ctx, u)
		if err != nil {
			return nil, fmt.Errorf("testserver: %s is set (%s) but the server does not answer: %w", EnvDatabaseURL, redact(u), err)
		}
		return &Server{URL: u, Source: EnvDatabaseURL, Version: v}, nil
	}
	tried := []string{EnvDatabaseURL + ": not set"}

	explicitBin := r.getenv(EnvBinDir) != ""
	binDir, err := r.findBin()
	switch {
	case err != nil && explicitBin:
		return nil, err
	case err != nil:
		tried = append(tried, "local binaries: "+err.Error())
	default:
		srv, err := r.local(ctx, binDir)
		if err == nil {
			return srv, nil
		}
		if explicitBin || ctx.Err() != nil {
			return nil, err
		}
		tried = append(tried, fmt.Sprintf("local cluster from %s: %v", binDir, err))
	}

	if len(r.providers) == 0 {
		tried = append(tried, "providers: none registered")
	}
	for _, p := range r.providers {
		srv, err := startProvider(ctx, p)
		if err == nil {
			return srv, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		tried = append(tried, fmt.Sprintf("provider %s: %v", p.Name(), err))
	}
	return nil, fmt.Errorf("%w; tried:\n\t- %s", ErrNoServer, strings.Join(tried, "\n\t- "))
}

func startProvider(ctx context.Context, p Provider) (*Server, error) {
	srv, err := p.Start(ctx)
	if err != nil {
		return nil, err
	}
	if srv == nil || srv.URL == "" {
		return nil, errors.New("returned no server URL")
	}
	s := *srv
	if s.Source == "" {
		s.Source = p.Name()
	}
	v, err := probe(ctx, s.URL)
	if err != nil {
		return nil, fmt.Errorf("its server (%s) does not answer: %w", redact(s.URL), err)
	}
	s.Version = v
	return &s, nil
}

// probe connects to url and returns server_version_num.
func probe(ctx context.Context, url string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var v int
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&v); err != nil {
		return 0, err
	}
	return v, nil
}

// redact hides the password of a connection URL for error messages.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		return "(unparseable URL)"
	}
	return u.Redacted()
}

// buildURL returns the maintenance-database URL of a local cluster.
func buildURL(port int, password string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(superuser, password),
		Host:     fmt.Sprintf("127.0.0.1:%d", port),
		Path:     "/postgres",
		RawQuery: "sslmode=disable",
	}
	return u.String()
}
