package docker

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/savvi-studio/dbinit/internal/dbconn"
	"github.com/savvi-studio/dbinit/migrate"
)

// The end-to-end tests drive the real images with the local Docker engine:
// compose from nothing, re-runs, a new migration, a broken one, and the
// postgres image's entrypoint mode, on PostgreSQL 15 and 17. Nothing is
// pulled: the images are built here (docker/build-image.sh,
// docker/postgres/build-base.sh). Without a Docker engine they fail under
// CI=true and are skipped elsewhere.

const dbinitImage = "dbinit:e2e"

var images struct {
	once  sync.Once
	err   error
	built bool // the e2e images exist: TestMain removes them at the end
}

func requireDocker(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("container tests are not short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		t.Fatalf("no Docker engine answers (%v: %s); the container tests need one (go test -short skips them)", err, bytes.TrimSpace(out))
	}
	images.once.Do(func() {
		images.err = buildImages()
		images.built = true
	})
	if images.err != nil {
		t.Fatal(images.err)
	}
}

// buildImages builds dbinit's image and the offline PostgreSQL images. The
// base images are cached by a hash of their inputs, so only the first run on
// a machine pays for them.
func buildImages() error {
	steps := [][]string{
		{"bash", "build-image.sh", "dbinit", dbinitImage},
		{"bash", "postgres/build-base.sh", "15"},
		{"bash", "postgres/build-base.sh", "17"},
		{"bash", "postgres/build-base.sh", "18"},
		{"bash", "build-image.sh", "postgres", "dbinit/postgres-dbinit:e2e-15", "dbinit/postgres-base:15"},
		{"bash", "build-image.sh", "postgres", "dbinit/postgres-dbinit:e2e-17", "dbinit/postgres-base:17"},
	}
	for _, s := range steps {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		out, err := exec.CommandContext(ctx, s[0], s[1:]...).CombinedOutput()
		cancel()
		if err != nil {
			return fmt.Errorf("%s: %v\n%s", strings.Join(s, " "), err, out)
		}
	}
	return nil
}

func composeCommand() []string {
	if exec.Command("docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}
	}
	return []string{"docker-compose"}
}

// stack is one compose project with its own port, password and migrations.
type stack struct {
	t        *testing.T
	project  string
	dir      string // migrations mounted at /db
	env      []string
	port     int
	password string
	files    []string
}

func newStack(t *testing.T, pgImage string) *stack {
	t.Helper()
	tmp := t.TempDir()
	s := &stack{t: t, project: fmt.Sprintf("dbinite2e%d", time.Now().UnixNano()%1e9), dir: filepath.Join(tmp, "db"), password: "e2e-" + fmt.Sprint(time.Now().UnixNano())}
	if err := os.CopyFS(s.dir, os.DirFS("testdata/db")); err != nil {
		t.Fatal(err)
	}
	// The dbinit image runs as uid 65532 and reads the bind-mounted files.
	chmodAll(t, tmp)
	pw := filepath.Join(tmp, "password")
	if err := os.WriteFile(pw, []byte(s.password+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	override := filepath.Join(tmp, "override.yml")
	if err := os.WriteFile(override, []byte(fmt.Sprintf("version: \"3.8\"\nservices:\n  dbinit:\n    volumes: [\"%s:/db:ro\"]\n", s.dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	s.port = freePort(t)
	s.env = append(os.Environ(), "POSTGRES_IMAGE="+pgImage, "DBINIT_IMAGE="+dbinitImage,
		fmt.Sprintf("POSTGRES_PORT=%d", s.port), "POSTGRES_PASSWORD_FILE="+pw)
	s.files = []string{"-f", "../docker-compose.yml", "-f", override, "-p", s.project}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := s.compose("logs", "--no-color")
			t.Logf("compose logs:\n%s", out)
		}
		s.compose("down", "-v", "--remove-orphans")
	})
	return s
}

func chmodAll(t *testing.T, dir string) {
	t.Helper()
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if fi.IsDir() {
			return os.Chmod(p, 0o755)
		}
		return os.Chmod(p, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (s *stack) compose(args ...string) (string, error) {
	c := composeCommand()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c[0], append(append(c[1:], s.files...), args...)...)
	cmd.Env = s.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (s *stack) up() (string, error) { return s.compose("up", "-d") }

// exitCode of a service's container, waiting until it has exited.
func (s *stack) exitCode(service string) int {
	s.t.Helper()
	id, err := s.compose("ps", "-q", service)
	id = strings.TrimSpace(id)
	if err != nil || id == "" {
		s.t.Fatalf("no container for %s: %v %s", service, err, id)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		out, err := exec.Command("docker", "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", id).Output()
		if err != nil {
			s.t.Fatal(err)
		}
		var status string
		var code int
		fmt.Sscan(string(out), &status, &code)
		if status == "exited" {
			return code
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.t.Fatalf("%s did not exit", service)
	return -1
}

func (s *stack) logs(service string) string {
	out, _ := s.compose("logs", "--no-color", service)
	return out
}

func (s *stack) conn(db string) *pgx.Conn {
	s.t.Helper()
	cc, err := pgx.ParseConfig(fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, db))
	if err != nil {
		s.t.Fatal(err)
	}
	cc.Password = s.password
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := dbconn.Connect(ctx, cc, dbconn.Options{Timeout: 60 * time.Second})
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func one[T any](t *testing.T, conn *pgx.Conn, sql string, args ...any) T {
	t.Helper()
	var v T
	if err := conn.QueryRow(context.Background(), sql, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

func TestComposeLifecycle(t *testing.T) {
	requireDocker(t)
	s := newStack(t, "dbinit/postgres-base:17")

	// 1. From nothing: dbinit exits 0, template and working database exist, the app starts.
	if out, err := s.up(); err != nil {
		t.Fatalf("compose up: %v\n%s", err, out)
	}
	if code := s.exitCode("dbinit"); code != 0 {
		t.Fatalf("dbinit exited %d:\n%s", code, s.logs("dbinit"))
	}
	maint := s.conn("postgres")
	if !one[bool](t, maint, `SELECT datistemplate FROM pg_database WHERE datname = 'savvi_studio_template'`) {
		t.Fatal("template not marked")
	}
	work := s.conn("savvi_studio")
	if n := one[int64](t, work, `SELECT count(*) FROM dbinit.schema_migrations`); n != 3 {
		t.Fatalf("history rows = %d", n)
	}
	waitFor(t, func() bool { return strings.Contains(s.logs("app"), "app ready: 3 migrations applied") }, "the app to start")

	// 2. Up again: a no-op; rows in the working database survive.
	if _, err := work.Exec(context.Background(), `INSERT INTO app.accounts (email) VALUES ('ada@example.com')`); err != nil {
		t.Fatal(err)
	}
	if out, err := s.compose("up", "-d", "--no-deps", "--force-recreate", "dbinit"); err != nil {
		t.Fatalf("compose up: %v\n%s", err, out)
	}
	if code := s.exitCode("dbinit"); code != 0 {
		t.Fatalf("second run exited %d", code)
	}
	if logs := s.logs("dbinit"); !strings.Contains(logs, "template_state=reused") || !strings.Contains(logs, "database_state=unchanged") {
		t.Fatalf("second run was not a no-op:\n%s", logs)
	}

	// 3. A new migration: template rebuilt, working database gets only that file, data kept.
	writeFile(t, filepath.Join(s.dir, "004_account_name.sql"), "ALTER TABLE app.accounts ADD COLUMN name text;\n")
	if out, err := s.compose("up", "-d", "--no-deps", "--force-recreate", "dbinit"); err != nil {
		t.Fatalf("compose up: %v\n%s", err, out)
	}
	if code := s.exitCode("dbinit"); code != 0 {
		t.Fatalf("third run exited %d:\n%s", code, s.logs("dbinit"))
	}
	if logs := s.logs("dbinit"); !strings.Contains(logs, "template_state=extended") || !strings.Contains(logs, "files_applied=1") {
		t.Fatalf("third run:\n%s", logs)
	}
	if n := one[int64](t, work, `SELECT count(*) FROM app.accounts WHERE name IS NULL`); n != 1 {
		t.Fatalf("data lost or column missing: %d rows", n)
	}

	// 4. A broken migration: exit 1 with FILE:LINE:COL, the app does not start, nothing lost.
	writeFile(t, filepath.Join(s.dir, "005_broken.sql"), "CREATE TABLE app.tags (id int);\nSELECT no_such_column FROM app.accounts;\n")
	if out, err := s.compose("rm", "-s", "-f", "-v", "app"); err != nil {
		t.Fatalf("compose rm: %v\n%s", err, out)
	}
	if out, err := s.compose("up", "-d", "--no-deps", "--force-recreate", "dbinit"); err != nil {
		t.Fatalf("compose up: %v\n%s", err, out)
	}
	if code := s.exitCode("dbinit"); code != 1 {
		t.Fatalf("dbinit exited %d, want 1", code)
	}
	// The app is gated on dbinit's success: compose refuses to start it.
	if out, err := s.compose("up", "-d", "app"); err == nil {
		t.Fatalf("compose started the app although dbinit failed:\n%s", out)
	}
	if logs := s.logs("dbinit"); !strings.Contains(logs, "/db/005_broken.sql:2:8: ERROR 42703") {
		t.Fatalf("no FILE:LINE:COL in the log:\n%s", logs)
	}
	if id, _ := s.compose("ps", "-q", "app"); strings.TrimSpace(id) != "" {
		t.Fatal("the app container was created although dbinit failed")
	}
	if n := one[int64](t, work, `SELECT count(*) FROM app.accounts`); n != 1 {
		t.Fatal("data lost")
	}
	if n := one[int64](t, work, `SELECT count(*) FROM pg_tables WHERE tablename = 'tags'`); n != 0 {
		t.Fatal("the broken file was half-applied")
	}
}

// TestComposePostgres15: the same stack on the PostgreSQL 15 image.
func TestComposePostgres15(t *testing.T) {
	requireDocker(t)
	s := newStack(t, "dbinit/postgres-base:15")
	if out, err := s.up(); err != nil {
		t.Fatalf("compose up: %v\n%s", err, out)
	}
	if code := s.exitCode("dbinit"); code != 0 {
		t.Fatalf("dbinit exited %d:\n%s", code, s.logs("dbinit"))
	}
	work := s.conn("savvi_studio")
	if v := one[string](t, work, `SELECT current_setting('server_version_num')`); !strings.HasPrefix(v, "15") {
		t.Fatalf("server %s", v)
	}
	if n := one[int64](t, work, `SELECT count(*) FROM dbinit.schema_migrations`); n != 3 {
		t.Fatalf("history rows = %d", n)
	}
}

// TestEntrypointMode: Dockerfile.postgres runs dbinit during the first start
// of an empty volume.
func TestEntrypointMode(t *testing.T) {
	requireDocker(t)
	for _, major := range []string{"15", "17"} {
		t.Run("postgres"+major, func(t *testing.T) {
			port := freePort(t)
			name := fmt.Sprintf("dbinit-e2e-entry-%s-%d", major, time.Now().UnixNano()%1e9)
			out, err := exec.Command("docker", "run", "-d", "--name", name, "-e", "POSTGRES_PASSWORD=entry-secret",
				"-p", fmt.Sprintf("127.0.0.1:%d:5432", port), "dbinit/postgres-dbinit:e2e-"+major).CombinedOutput()
			if err != nil {
				t.Fatalf("docker run: %v\n%s", err, out)
			}
			t.Cleanup(func() {
				if t.Failed() {
					logs, _ := exec.Command("docker", "logs", name).CombinedOutput()
					t.Logf("container log:\n%s", logs)
				}
				exec.Command("docker", "rm", "-f", "-v", name).Run()
			})
			s := &stack{t: t, port: port, password: "entry-secret"}
			maint := s.conn("postgres")
			if !one[bool](t, maint, `SELECT datistemplate FROM pg_database WHERE datname = 'savvi_studio_template'`) {
				t.Fatal("template not built in entrypoint mode")
			}
			// The image carries the project's db/, whatever it holds.
			set, err := migrate.LoadDir("../db")
			if err != nil {
				t.Fatal(err)
			}
			work := s.conn("savvi_studio")
			if n := one[int64](t, work, `SELECT count(*) FROM dbinit.schema_migrations`); n != int64(len(set.Migrations)) {
				t.Fatalf("history rows = %d, want the %d files of db/", n, len(set.Migrations))
			}
			logs, _ := exec.Command("docker", "logs", name).CombinedOutput()
			if !strings.Contains(string(logs), "database_state=created") {
				t.Fatalf("dbinit did not run at first start:\n%s", logs)
			}
		})
	}
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, ok func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
