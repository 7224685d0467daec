package dbtest

import (
	"context"

	"github.com/savvi-studio/dbinit/internal/testserver"
)

// Server is a PostgreSQL server for tests.
type Server struct {
	// URL of the maintenance database with superuser credentials,
	// "postgres://postgres:secret@127.0.0.1:54321/postgres?sslmode=disable".
	URL string
	// Source says where the server came from, "testcontainers:postgres:17";
	// "" = the provider's name.
	Source string
}

// A Provider supplies a server when TEST_DATABASE_URL is not set and no
// local PostgreSQL binaries exist: a container, a cloud instance, a server
// started by the test suite itself.
type Provider interface {
	// Name identifies the provider in messages, "testcontainers".
	Name() string
	// Start returns a running server that stays up until the process
	// exits. It is called at most once per process.
	Start(ctx context.Context) (*Server, error)
}

// RegisterProvider adds p to the sources of a server, after
// TEST_DATABASE_URL and the local binaries, in registration order. Call it
// from an init function or TestMain, before the first test asks for a
// database.
func RegisterProvider(p Provider) {
	if p == nil {
		panic("dbtest: RegisterProvider(nil)")
	}
	testserver.Register(provider{p})
}

// provider adapts a Provider to the internal interface.
type provider struct{ p Provider }

func (a provider) Name() string { return a.p.Name() }

func (a provider) Start(ctx context.Context) (*testserver.Server, error) {
	s, err := a.p.Start(ctx)
	if err != nil || s == nil {
		return nil, err
	}
	return &testserver.Server{URL: s.URL, Source: s.Source}, nil
}
