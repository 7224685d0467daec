package dbconn

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/savvi-studio/dbinit/internal/testserver"
)

func TestRetryable(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{&pgconn.PgError{Code: "57P03"}, true}, // the database system is starting up
		{&pgconn.PgError{Code: "53300"}, true}, // too many connections
		{&pgconn.PgError{Code: "57P01"}, true}, // terminating connection due to administrator command
		{&pgconn.PgError{Code: "08006"}, true},
		{&pgconn.PgError{Code: "28P01"}, false}, // password authentication failed
		{&pgconn.PgError{Code: "28000"}, false}, // no pg_hba.conf entry
		{&pgconn.PgError{Code: "3D000"}, false}, // database does not exist
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, true},
		{&net.DNSError{Err: "no such host", Name: "postgres", IsNotFound: true}, true},
		{errInitServer, true},
	}
	for _, tt := range tests {
		if got := Retryable(tt.err); got != tt.want {
			t.Errorf("Retryable(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// TestWaitSurvivesRestart: a server that is down when dbinit starts and
// comes up a little later is waited for, not reported as unreachable.
func TestWaitSurvivesRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL server; skipped under -short")
	}
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := testserver.StartLocal(ctx, testserver.LocalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop(context.Background())
	cc, err := pgx.ParseConfig(c.URL())
	if err != nil {
		t.Fatal(err)
	}
	c.Kill()
	time.AfterFunc(1500*time.Millisecond, func() {
		if err := c.Restart(ctx); err != nil {
			t.Errorf("restart: %v", err)
		}
	})
	start := time.Now()
	conn, err := Connect(ctx, cc, Options{Timeout: 60 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("after %s: %v", time.Since(start), err)
	}
	conn.Close(ctx)
	if time.Since(start) < time.Second {
		t.Fatal("connected to a server that was down")
	}

	// Authentication failures are final at once, not retried until the deadline.
	bad := cc.Copy()
	bad.Password = "wrong"
	start = time.Now()
	_, err = Connect(ctx, bad, Options{Timeout: 30 * time.Second})
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "28P01" || time.Since(start) > 5*time.Second {
		t.Fatalf("bad password: %v after %s", err, time.Since(start))
	}

	// Past the deadline: a WaitError with the last reason.
	c.Kill()
	_, err = Connect(ctx, cc, Options{Timeout: 500 * time.Millisecond})
	var we *WaitError
	if !errors.As(err, &we) || we.Last == nil {
		t.Fatalf("err = %v, want WaitError", err)
	}
}
