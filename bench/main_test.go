package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/savvi-studio/dbinit/bench/corpus"
	"github.com/savvi-studio/dbinit/internal/testserver"
	"github.com/savvi-studio/dbinit/migrate"
)

// corpusFiles is the size of the migration folder every benchmark uses.
const corpusFiles = 300

// Everything below is set up lazily, by the first benchmark that needs it,
// so that `go test ./...` (no -bench) starts nothing, and torn down by
// TestMain.
func TestMain(m *testing.M) {
	code := m.Run()
	stopServers()
	if work.dir != "" {
		os.RemoveAll(work.dir)
	}
	os.Exit(code)
}

var work struct {
	once sync.Once
	dir  string
	err  error
}

// workDir is a temporary folder for the corpus and the binary.
func workDir(b *testing.B) string {
	b.Helper()
	work.once.Do(func() { work.dir, work.err = os.MkdirTemp("", "dbinit-bench-") })
	if work.err != nil {
		b.Fatal(work.err)
	}
	return work.dir
}

// benchCorpus is the generated folder and what the benchmarks derive from it.
type benchCorpus struct {
	dir    string       // the folder of numbered files
	files  []string     // their paths, in order
	all    string       // every file concatenated, for psql -1
	set    *migrate.Set // loaded once
	tables int          // tables the corpus creates, to check a run
	bytes  int
}

var corpusOnce struct {
	once sync.Once
	c    *benchCorpus
	err  error
}

func getCorpus(b *testing.B) *benchCorpus {
	b.Helper()
	root := workDir(b)
	corpusOnce.once.Do(func() {
		c := &benchCorpus{dir: filepath.Join(root, "db"), all: filepath.Join(root, "all.sql")}
		if err := corpus.Write(c.dir, corpusFiles); err != nil {
			corpusOnce.err = err
			return
		}
		var all strings.Builder
		for _, f := range corpus.Generate(corpusFiles) {
			c.files = append(c.files, filepath.Join(c.dir, f.Name))
			all.WriteString(f.SQL)
			all.WriteString("\n")
			c.bytes += len(f.SQL)
			if strings.Contains(f.Name, "_create_") {
				c.tables++
			}
		}
		c.tables++ // audit.events, in the bootstrap file
		if err := os.WriteFile(c.all, []byte(all.String()), 0o644); err != nil {
			corpusOnce.err = err
			return
		}
		c.set, corpusOnce.err = migrate.LoadDir(c.dir)
		corpusOnce.c = c
	})
	if corpusOnce.err != nil {
		b.Fatal(corpusOnce.err)
	}
	return corpusOnce.c
}

// server is a private throwaway cluster.
type server struct {
	name    string // "fsync=off" or "fsync=on"
	cluster *testserver.Cluster
	url     string          // maintenance database over TCP with the password, as a container would connect
	local   *pgx.ConnConfig // maintenance database over the Unix socket (trust) when there is one, else TCP
	socket  string          // the socket's folder, "" when there is none
	psql    string          // the psql binary next to the server's
	maint   *pgx.Conn       // on local; used only by the benchmark's goroutine
}

var servers struct {
	mu sync.Mutex
	m  map[bool]*server
}

func serverName(durable bool) string {
	if durable {
		return "fsync=on"
	}
	return "fsync=off"
}

// getServer starts (once) a cluster with fsync, synchronous_commit and
// full_page_writes off, or one with PostgreSQL's default durability.
func getServer(b *testing.B, durable bool) *server {
	b.Helper()
	servers.mu.Lock()
	defer servers.mu.Unlock()
	if s := servers.m[durable]; s != nil {
		return s
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// track_wal_io_timing: BenchmarkApply reports the WAL flushes of a run.
	c, err := testserver.StartLocal(ctx, testserver.LocalOptions{Durable: durable, Settings: map[string]string{"track_wal_io_timing": "on"}})
	if err != nil {
		b.Fatal(err)
	}
	s := &server{name: serverName(durable), cluster: c, url: c.URL()}
	if servers.m == nil {
		servers.m = map[bool]*server{}
	}
	servers.m[durable] = s // stopped by TestMain even if the rest fails
	binDir := strings.TrimPrefix(c.Server().Source, "local:")
	s.psql = filepath.Join(binDir, "psql")
	if _, err := os.Stat(s.psql); err != nil {
		if s.psql, err = exec.LookPath("psql"); err != nil {
			b.Fatalf("no psql next to %s or on PATH", binDir)
		}
	}
	connString := c.URL()
	if _, err := os.Stat(filepath.Join(c.DataDir(), fmt.Sprintf(".s.PGSQL.%d", c.Port()))); err == nil {
		s.socket = c.DataDir()
		connString = fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres sslmode=disable", s.socket, c.Port())
	}
	if s.local, err = pgx.ParseConfig(connString); err != nil {
		b.Fatal(err)
	}
	if s.maint, err = pgx.ConnectConfig(ctx, s.local); err != nil {
		b.Fatal(err)
	}
	return s
}

func stopServers() {
	servers.mu.Lock()
	defer servers.mu.Unlock()
	for _, s := range servers.m {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if s.maint != nil {
			s.maint.Close(ctx)
		}
		if err := s.cluster.Stop(ctx); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
		cancel()
	}
}

// forDB connects to database name the way the benchmarks apply migrations:
// over the Unix socket when there is one, as psql does in the postgres
// image's docker-entrypoint-initdb.d.
func (s *server) forDB(name string) *pgx.ConnConfig {
	cc := s.local.Copy()
	cc.Database = name
	return cc
}

var dbSeq atomic.Int64

// newName returns a database name not used before in this process.
func newName(kind string) string {
	return fmt.Sprintf("bench_%s_%d_%d", kind, os.Getpid(), dbSeq.Add(1))
}

func (s *server) exec(b *testing.B, sql string) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := s.maint.Exec(ctx, sql); err != nil {
		b.Fatalf("%s: %v", sql, err)
	}
}

// walSyncs returns how many times the server has flushed WAL to disk since
// the statistics were last reset, and the time it took, once no session is
// left on database db (a backend reports its statistics when it exits).
// Flushes are not counted when fsync is off.
func (s *server) walSyncs(b *testing.B, db string) (int64, time.Duration) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		var n int
		if err := s.maint.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = $1`, db).Scan(&n); err != nil {
			b.Fatal(err)
		}
		if n == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	var syncs int64
	var msec float64
	if err := s.maint.QueryRow(ctx, `SELECT wal_sync, wal_sync_time FROM pg_stat_wal`).Scan(&syncs, &msec); err != nil {
		b.Fatal(err)
	}
	return syncs, time.Duration(msec * float64(time.Millisecond))
}

func (s *server) createDB(b *testing.B, name string) {
	b.Helper()
	s.exec(b, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
}

func (s *server) dropDB(b *testing.B, name string) {
	b.Helper()
	s.exec(b, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
}

func (s *server) dropTemplate(b *testing.B, name string) {
	b.Helper()
	s.exec(b, "ALTER DATABASE "+pgx.Identifier{name}.Sanitize()+" IS_TEMPLATE false")
	s.dropDB(b, name)
}

// psqlCmd runs psql against database db with no psqlrc and the connection
// in libpq's variables only.
func (s *server) psqlCmd(ctx context.Context, db string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, s.psql, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	host := "127.0.0.1"
	if s.socket != "" {
		host = s.socket
	}
	cc, _ := pgx.ParseConfig(s.url)
	cmd.Env = append(cmd.Env,
		"PGHOST="+host, fmt.Sprintf("PGPORT=%d", s.cluster.Port()), "PGUSER=postgres",
		"PGPASSWORD="+cc.Password, "PGDATABASE="+db, "PGSSLMODE=disable", "PGAPPNAME=bench-psql")
	return cmd
}

func run(cmd *exec.Cmd) error {
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	return nil
}

// checkApplied checks that database db holds the corpus' schema.
func (s *server) checkApplied(b *testing.B, c *benchCorpus, db string) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, s.forDB(db))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	var tables, events int
	err = conn.QueryRow(ctx, `
SELECT (SELECT count(*) FROM pg_tables WHERE schemaname IN ('core', 'billing', 'catalog', 'ops', 'audit')),
       (SELECT count(*) FROM audit.events)`).Scan(&tables, &events)
	if err != nil {
		b.Fatal(err)
	}
	if tables != c.tables || events == 0 {
		b.Fatalf("%s: %d tables (want %d), %d audit events", db, tables, c.tables, events)
	}
}

var binOnce struct {
	once sync.Once
	path string
	err  error
}

// dbinitBinary builds cmd/dbinit as `make build` does, once.
func dbinitBinary(b *testing.B) string {
	b.Helper()
	dir := workDir(b)
	binOnce.once.Do(func() {
		goCmd, err := exec.LookPath("go")
		if err != nil {
			binOnce.err = errors.New("no go command on PATH to build cmd/dbinit")
			return
		}
		out := filepath.Join(dir, "dbinit")
		cmd := exec.Command(goCmd, "build", "-trimpath", "-ldflags", "-s -w", "-o", out, "github.com/savvi-studio/dbinit/cmd/dbinit")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if binOnce.err = run(cmd); binOnce.err == nil {
			binOnce.path = out
		}
	})
	if binOnce.err != nil {
		b.Fatal(binOnce.err)
	}
	return binOnce.path
}

// percentile is the nearest-rank percentile of ds, p in (0, 100].
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func sum(ds []time.Duration) time.Duration {
	var t time.Duration
	for _, d := range ds {
		t += d
	}
	return t
}
