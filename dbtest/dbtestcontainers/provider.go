// Package dbtestcontainers lets dbtest start PostgreSQL in a container when
// there is no TEST_DATABASE_URL and no local PostgreSQL binaries. Import it
// for its side effect, from any _test.go file of the test binary:
//
//	import _ "github.com/savvi-studio/dbinit/dbtest/dbtestcontainers"
//
// It is a Go module of its own, github.com/savvi-studio/dbinit/dbtest/dbtestcontainers,
// so that projects that do not need it do not pull testcontainers-go, the
// Docker client and OpenTelemetry into their builds, their go.sum or their
// vulnerability scans.
//
// The image is DBTEST_IMAGE, e.g. "postgres:17", "postgis/postgis:17-3.5" or
// an image built offline with `make postgres-image` ("dbinit/postgres-base:17");
// default "postgres:17". It must honour the official image's environment
// (POSTGRES_PASSWORD) and log "database system is ready to accept
// connections" twice on its first start, as the official image does.
//
// One container serves the whole test binary. With testcontainers' reaper
// (Ryuk) it is removed when the binary exits; where the reaper cannot run
// (no registry to pull it from: TESTCONTAINERS_RYUK_DISABLED=true), call
// [Terminate] from TestMain.
package dbtestcontainers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/savvi-studio/dbinit/dbtest"
)

// DefaultImage is used when DBTEST_IMAGE is not set.
const DefaultImage = "postgres:17"

func init() { dbtest.RegisterProvider(Provider{}) }

// Provider starts PostgreSQL containers for dbtest.
type Provider struct{}

// Name implements dbtest.Provider.
func (Provider) Name() string { return "testcontainers" }

var started struct {
	sync.Mutex
	c testcontainers.Container
}

// Start implements dbtest.Provider: it starts a container and returns its
// superuser URL.
func (Provider) Start(ctx context.Context) (*dbtest.Server, error) {
	image := os.Getenv("DBTEST_IMAGE")
	if image == "" {
		image = DefaultImage
	}
	var b [12]byte
	_, _ = rand.Read(b[:])
	password := hex.EncodeToString(b[:])
	req := testcontainers.ContainerRequest{
		Image:        image,
		Env:          map[string]string{"POSTGRES_PASSWORD": password},
		ExposedPorts: []string{"5432/tcp"},
		// Test settings: durability off, room for parallel tests.
		Cmd:    []string{"postgres", "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=200"},
		Labels: map[string]string{"dev.dbinit.dbtest": "1"},
		// The first start runs a temporary server, then the real one: wait
		// for the second "ready".
		WaitingFor: wait.ForLog("database system is ready to accept connections").WithOccurrence(2).WithStartupTimeout(2 * time.Minute),
	}
	c, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{ContainerRequest: req, Started: true})
	if err != nil {
		if c != nil {
			_ = c.Terminate(context.WithoutCancel(ctx))
		}
		return nil, fmt.Errorf("start %s: %w", image, err)
	}
	started.Lock()
	started.c = c
	started.Unlock()
	port, err := c.MappedPort(ctx, "5432/tcp")
	if err != nil {
		return nil, err
	}
	host, err := hostOf(ctx, c)
	if err != nil {
		return nil, err
	}
	u := url.URL{Scheme: "postgres", User: url.UserPassword("postgres", password),
		Host: fmt.Sprintf("%s:%s", host, port.Port()), Path: "/postgres", RawQuery: "sslmode=disable"}
	return &dbtest.Server{URL: u.String(), Source: "testcontainers:" + image}, nil
}

// hostOf is where the container's published port is reached. With a local
// Docker engine (a unix socket) that is this machine; testcontainers'
// own guess can pick a gateway address when the tests themselves run in a
// container.
func hostOf(ctx context.Context, c testcontainers.Container) (string, error) {
	if os.Getenv("TESTCONTAINERS_HOST_OVERRIDE") == "" {
		if dh := os.Getenv("DOCKER_HOST"); dh == "" || strings.HasPrefix(dh, "unix://") {
			return "127.0.0.1", nil
		}
	}
	return c.Host(ctx)
}

// Terminate removes the container Start made, if any. Call it from TestMain
// where testcontainers' reaper is disabled.
func Terminate(ctx context.Context) error {
	started.Lock()
	defer started.Unlock()
	if started.c == nil {
		return nil
	}
	err := started.c.Terminate(ctx)
	started.c = nil
	return err
}
