package docker

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
)

// projectLabel marks every image this project builds (make clean).
const projectLabel = "io.github.savvi-studio.dbinit.project=dbinit"

// TestMain removes the images the tests built for themselves (the dbinit and
// postgres-dbinit e2e images); the base images stay as the cache they are
// (make clean removes them).
func TestMain(m *testing.M) {
	code := m.Run()
	if images.err == nil && images.built {
		exec.Command("docker", "image", "rm", dbinitImage, "dbinit/postgres-dbinit:e2e-15", "dbinit/postgres-dbinit:e2e-17").Run()
	}
	os.Exit(code)
}

// runUp runs docker/up.sh (what make up runs after building the image) for
// the stack s, with extra environment.
func (s *stack) runUp(extra ...string) (string, int) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "up.sh")
	files := []string{}
	for i := 0; i+1 < len(s.files); i += 2 {
		if s.files[i] == "-f" {
			f, _ := filepath.Abs(s.files[i+1])
			files = append(files, f)
		}
	}
	cmd.Env = append(append(s.env, "COMPOSE_FILE="+strings.Join(files, ":"), "COMPOSE_PROJECT_NAME="+s.project,
		"COMPOSE="+strings.Join(composeCommand(), " ")), extra...)
	out, err := cmd.CombinedOutput()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			s.t.Fatalf("up.sh: %v\n%s", err, out)
		}
		code = ee.ExitCode()
	}
	return string(out), code
}

// TestMakeUp: what a user sees from make up. Success says what dbinit did,
// what the app saw and how to connect; a port already taken is replaced by a
// free one; a new migration reaches the app; a broken one shows dbinit's
// FILE:LINE:COL and caret and exits with dbinit's code; the app stops at
// once on SIGTERM.
func TestMakeUp(t *testing.T) {
	requireDocker(t)
	s := newStack(t, "dbinit/postgres-base:17")
	// Without POSTGRES_PORT, and 5432 busy (held here, or by a local server).
	env := make([]string, 0, len(s.env))
	for _, e := range s.env {
		if !strings.HasPrefix(e, "POSTGRES_PORT=") {
			env = append(env, e)
		}
	}
	s.env = env
	if l, err := net.Listen("tcp", "127.0.0.1:5432"); err == nil {
		defer l.Close()
	}
	out, code := s.runUp()
	if code != 0 {
		t.Fatalf("up.sh exited %d:\n%s", code, out)
	}
	m := regexp.MustCompile(`port 5432 is taken .*publishing PostgreSQL on (\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no word on the port:\n%s", out)
	}
	fmt.Sscan(m[1], &s.port)
	for _, want := range []string{`msg="init done"`, "template_state=built template_files=3", "database_state=created", "version=3",
		"app ready: 3 migrations applied, latest 3", "psql -h 127.0.0.1 -p " + m[1] + " -U postgres savvi_studio"} {
		if !strings.Contains(out, want) {
			t.Fatalf("up.sh output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, s.password) {
		t.Fatal("up.sh printed the password")
	}
	// The working database is there, on the port it printed.
	if n := one[int64](t, s.conn("savvi_studio"), `SELECT count(*) FROM dbinit.schema_migrations`); n != 3 {
		t.Fatalf("history rows = %d", n)
	}

	// A new migration: the app's output follows; the port stays.
	writeFile(t, filepath.Join(s.dir, "004_account_name.sql"), "ALTER TABLE app.accounts ADD COLUMN name text;\n")
	out, code = s.runUp()
	if code != 0 || !strings.Contains(out, "files_applied=1") || !strings.Contains(out, "app ready: 4 migrations applied, latest 4") ||
		strings.Contains(out, "is taken") || !strings.Contains(out, "-p "+m[1]+" ") {
		t.Fatalf("second make up (exit %d):\n%s", code, out)
	}

	// The app ends at SIGTERM (it does not wait out docker's 10 seconds to be killed).
	id, _ := s.compose("ps", "-q", "app")
	id = strings.TrimSpace(id)
	if stop, err := exec.Command("docker", "stop", "-t", "30", id).CombinedOutput(); err != nil {
		t.Fatalf("docker stop: %v %s", err, stop)
	}
	if st, _ := exec.Command("docker", "inspect", "-f", "{{.State.ExitCode}}", id).Output(); strings.TrimSpace(string(st)) != "0" {
		t.Fatalf("the app was killed instead of ending at SIGTERM: exit %s", st)
	}

	// A broken migration: dbinit's own error, its exit code, what to do.
	writeFile(t, filepath.Join(s.dir, "005_broken.sql"), "CREATE TABLE app.tags (id int);\nSELECT no_such_column FROM app.accounts;\n")
	out, code = s.runUp()
	if code != 1 {
		t.Fatalf("up.sh exited %d, want dbinit's 1:\n%s", code, out)
	}
	for _, want := range []string{"dbinit exited 1", "/db/005_broken.sql:2:8: ERROR 42703", "| SELECT no_such_column", "^", "Next: fix"} {
		if !strings.Contains(out, want) {
			t.Fatalf("up.sh output lacks %q:\n%s", want, out)
		}
	}
	if id, _ := s.compose("ps", "-q", "app"); strings.TrimSpace(id) != "" {
		t.Fatal("the app was started although dbinit failed")
	}
}

// TestImageBuildsFromSource: docker/Dockerfile (Go inside Docker, the path
// for users with a registry) builds a working image, through the compose
// file's build section as `docker compose up --build` uses it. The Go image
// comes from this machine's Go and the offline Debian base, as no registry
// is reachable here.
func TestImageBuildsFromSource(t *testing.T) {
	requireDocker(t)
	t.Parallel()
	builder := goBuilderImage(t)
	tag := fmt.Sprintf("dbinit:e2e-source-%d", time.Now().UnixNano()%1e9)
	t.Cleanup(func() {
		exec.Command("docker", "image", "rm", "-f", tag).Run()
		// The classic builder keeps the build stage as an untagged image.
		exec.Command("docker", "image", "prune", "-f", "--filter", "label="+projectLabel).Run()
	})
	c := composeCommand()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c[0], append(c[1:], "-f", "../docker-compose.yml", "-p", fmt.Sprintf("dbinitsrc%d", os.Getpid()), "build", "dbinit")...)
	cmd.Env = append(os.Environ(), "DBINIT_IMAGE="+tag, "GO_IMAGE="+builder)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("compose build: %v\n%s", err, out)
	}
	out, err := exec.Command("docker", "run", "--rm", "--read-only", tag, "--version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "dbinit ") {
		t.Fatalf("--version: %v %s", err, out)
	}
	out, err = exec.Command("docker", "image", "inspect", "-f", "{{.Config.User}} {{.Config.Env}} {{.Os}}", tag).CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "65532:65532 ") || !strings.Contains(string(out), "DBINIT_DIR=/db") {
		t.Fatalf("image config: %v %s", err, out)
	}
	// The migrations are in it, and it runs against a server like the prebuilt image.
	out, _ = exec.Command("docker", "run", "--rm", "--entrypoint", "/usr/local/bin/dbinit", tag, "help", "validate").CombinedOutput()
	if !strings.Contains(string(out), "Usage: dbinit validate") {
		t.Fatalf("help: %s", out)
	}
}

// goBuilderImage makes a stand-in for the official golang image: the
// offline Debian base with this machine's Go and CA certificates, tagged by
// Go version and reused.
func goBuilderImage(t *testing.T) string {
	t.Helper()
	tag := "dbinit/go-builder:" + runtime.Version()
	if exec.Command("docker", "image", "inspect", tag).Run() == nil {
		return tag
	}
	goroot := runtime.GOROOT()
	if out, err := exec.Command("go", "env", "GOROOT").Output(); err == nil {
		goroot = strings.TrimSpace(string(out))
	}
	id, err := exec.Command("docker", "create", "dbinit/postgres-base:17", "true").Output()
	if err != nil {
		t.Fatal(err)
	}
	container := strings.TrimSpace(string(id))
	defer exec.Command("docker", "rm", "-f", container).Run()
	proxy, _ := exec.Command("go", "env", "GOPROXY").Output()
	steps := [][]string{
		{"docker", "cp", goroot, container + ":/usr/local/go"},
		{"docker", "cp", "-L", "/etc/ssl/certs/ca-certificates.crt", container + ":/etc/ssl/certs/ca-certificates.crt"},
		{"docker", "commit", "--change", "ENV PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"--change", "ENV GOTOOLCHAIN=local GOPROXY=" + strings.TrimSpace(string(proxy)),
			"--change", "LABEL " + projectLabel, container, tag},
	}
	for _, s := range steps {
		if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(s, " "), err, out)
		}
	}
	return tag
}
