// Package emptydb gives each of the project's own tests an empty database of
// its own on the shared test server (see internal/testserver), so that tests run
// in parallel without seeing each other. Tests that need the migrated schema
// use the public dbtest package instead.
package emptydb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/savvi-studio/dbinit/internal/testserver"
)

// Server returns the shared test server's maintenance connection settings.
func Server(t testing.TB) *pgx.ConnConfig {
	t.Helper()
	srv := testserver.MustGet(t)
	cc, err := pgx.ParseConfig(srv.URL)
	if err != nil {
		t.Fatalf("emptydb: parse server URL: %v", err)
	}
	return cc
}

var unsafe = regexp.MustCompile(`[^a-z0-9]+`)

// Name returns a database name unique to this test, recognisable in
// pg_database: "t_<test name>_<random>".
func Name(t testing.TB) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	base := strings.Trim(unsafe.ReplaceAllString(strings.ToLower(t.Name()), "_"), "_")
	if len(base) > 40 {
		base = base[len(base)-40:]
	}
	return "t_" + base + "_" + hex.EncodeToString(b[:])
}

// New creates an empty database for the test, drops it when the test ends,
// and returns the settings to connect to it.
func New(t testing.TB) *pgx.ConnConfig {
	t.Helper()
	srv := Server(t)
	name := Name(t)
	Exec(t, srv, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	t.Cleanup(func() { Drop(t, srv, name) })
	cc := srv.Copy()
	cc.Database = name
	return cc
}

// Drop removes a database, ending its sessions.
func Drop(t testing.TB, srv *pgx.ConnConfig, name string) {
	t.Helper()
	Exec(t, srv, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
}

// Conn connects to cc and closes the connection when the test ends.
func Conn(t testing.TB, cc *pgx.ConnConfig) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		t.Fatalf("emptydb: connect to %s: %v", cc.Database, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// Exec runs sql on a fresh connection to cc.
func Exec(t testing.TB, cc *pgx.ConnConfig, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		t.Fatalf("emptydb: connect to %s: %v", cc.Database, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("emptydb: %s: %v", sql, err)
	}
}

// URL renders cc as a connection URL, for handing to the command line.
func URL(cc *pgx.ConnConfig) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(cc.User, cc.Password),
		Host: fmt.Sprintf("%s:%d", cc.Host, cc.Port), Path: "/" + cc.Database, RawQuery: "sslmode=disable"}
	return u.String()
}
