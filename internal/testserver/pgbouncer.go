//go:build unix

package testserver

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// PgBouncer is a real PgBouncer (Debian's pgbouncer package) in front of a
// test server, for the tests of what dbinit does behind a connection
// pooler. It listens on 127.0.0.1 only and accepts any client without a
// password (auth_type trust); it logs in to the server with the server
// URL's user and password.
type PgBouncer struct {
	dir, mode string
	port      int
	cmd       *exec.Cmd
	user, pw  string
}

// StartPgBouncer starts PgBouncer in pool mode mode ("session",
// "transaction" or "statement") in front of the server at serverURL (a URL
// of its maintenance database with a superuser's password). Stop ends it.
func StartPgBouncer(ctx context.Context, serverURL, mode string) (*PgBouncer, error) {
	bin, err := exec.LookPath("pgbouncer")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/pgbouncer"); serr != nil {
			return nil, fmt.Errorf("testserver: pgbouncer is not installed (apt-get install pgbouncer): %w", err)
		}
		bin = "/usr/sbin/pgbouncer"
	}
	u, err := url.Parse(serverURL)
	if err != nil {
		return nil, fmt.Errorf("testserver: server URL: %w", err)
	}
	pw, _ := u.User.Password()
	ra, err := lookupRunAs()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(clusterRoot(), dirPrefix+"pgbouncer-")
	if err != nil {
		return nil, err
	}
	if err := ra.chown(dir); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	b := &PgBouncer{dir: dir, mode: mode, port: port, user: u.User.Username(), pw: pw}
	quote := func(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
	files := map[string]string{
		"users.txt": quote(b.user) + " " + quote(pw) + "\n",
		"pgbouncer.ini": fmt.Sprintf(`[databases]
* = host=%s port=%s
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s
pool_mode = %s
default_pool_size = 4
max_client_conn = 200
ignore_startup_parameters = extra_float_digits
logfile = %s
pidfile = %s
`, u.Hostname(), u.Port(), port, filepath.Join(dir, "users.txt"), mode, filepath.Join(dir, "pgbouncer.log"), filepath.Join(dir, "pgbouncer.pid")),
	}
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			return nil, err
		}
		if err := ra.chown(p); err != nil {
			return nil, err
		}
	}
	b.cmd = exec.Command(bin, filepath.Join(dir, "pgbouncer.ini"))
	ra.apply(b.cmd)
	if err := b.cmd.Start(); err != nil {
		return nil, fmt.Errorf("testserver: start pgbouncer: %w", err)
	}
	// Ready when it accepts TCP connections.
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			return b, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			b.Stop()
			log, _ := os.ReadFile(filepath.Join(dir, "pgbouncer.log"))
			return nil, fmt.Errorf("testserver: pgbouncer did not start: %v\n%s", err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// URL is a URL of database db through PgBouncer, with the server's user
// and password (PgBouncer accepts any).
func (b *PgBouncer) URL(db string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(b.user, b.pw), Host: fmt.Sprintf("127.0.0.1:%d", b.port),
		Path: "/" + db, RawQuery: "sslmode=disable"}
	return u.String()
}

// Stop ends PgBouncer and removes its files.
func (b *PgBouncer) Stop() {
	if b.cmd != nil && b.cmd.Process != nil {
		b.cmd.Process.Signal(syscall.SIGINT) // immediate shutdown
		done := make(chan struct{})
		go func() { b.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			b.cmd.Process.Kill()
			<-done
		}
	}
	os.RemoveAll(b.dir)
}
