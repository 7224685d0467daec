package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/savvi-studio/dbinit/dbtest"
	"github.com/savvi-studio/dbinit/internal/provision"
	"github.com/savvi-studio/dbinit/internal/testserver"
	"github.com/savvi-studio/dbinit/migrate"
)

var strategies = []string{"wal_log", "file_copy"}

// corpusTemplate builds (once per server) a template from the corpus with
// dbinit's provisioner and returns its name and size in bytes.
func (s *server) corpusTemplate(b *testing.B, c *benchCorpus) (string, int64) {
	b.Helper()
	const name = "bench_corpus_template"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	target := provision.Target{
		Template: name,
		Set:      c.set,
		Lock:     provision.AdvisoryLocks(s.maint, time.Minute, slog.New(slog.DiscardHandler)),
	}
	if _, err := provision.New(s.maint, provision.Options{Version: "bench"}).EnsureTemplate(ctx, target); err != nil {
		b.Fatal(err)
	}
	var size int64
	if err := s.maint.QueryRow(ctx, `SELECT pg_database_size($1)`, name).Scan(&size); err != nil {
		b.Fatal(err)
	}
	return name, size
}

// BenchmarkClone creates a database from the corpus template: with dbinit's
// provision's Server.Clone and with a raw CREATE DATABASE ... TEMPLATE, with each
// STRATEGY, on both servers.
func BenchmarkClone(b *testing.B) {
	c := getCorpus(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	for _, durable := range []bool{false, true} {
		b.Run(serverName(durable), func(b *testing.B) {
			s := getServer(b, durable)
			tpl, size := s.corpusTemplate(b, c)
			for _, strategy := range strategies {
				clones := map[string]func(name string) error{
					"dbinit-" + strategy: func(name string) error {
						return provision.New(s.maint, provision.Options{}).Clone(ctx, tpl, name, provision.CloneOptions{Strategy: strategy})
					},
					"raw-" + strategy: func(name string) error {
						_, err := s.maint.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s STRATEGY %s",
							pgx.Identifier{name}.Sanitize(), pgx.Identifier{tpl}.Sanitize(), strings.ToUpper(strategy)))
						return err
					},
				}
				for _, kind := range []string{"dbinit-" + strategy, "raw-" + strategy} {
					clone := clones[kind]
					b.Run(kind, func(b *testing.B) {
						var ds []time.Duration
						for b.Loop() {
							name := newName("clone")
							t0 := time.Now()
							if err := clone(name); err != nil {
								b.Fatal(err)
							}
							ds = append(ds, time.Since(t0))
							b.StopTimer()
							s.dropDB(b, name)
							b.StartTimer()
						}
						b.ReportMetric(ms(percentile(ds, 50)), "p50-ms")
						b.ReportMetric(float64(size)/(1<<20), "template-MB")
					})
				}
			}
			// The filesystem's floor for FILE_COPY: the template's files
			// copied by a program, as PostgreSQL copies them (read and
			// write in 64 kB pieces, no fsync), to the same filesystem.
			b.Run("copy-files", func(b *testing.B) {
				var oid uint32
				if err := s.maint.QueryRow(ctx, `SELECT oid FROM pg_database WHERE datname = $1`, tpl).Scan(&oid); err != nil {
					b.Fatal(err)
				}
				src := filepath.Join(s.cluster.DataDir(), "base", strconv.FormatUint(uint64(oid), 10))
				var ds []time.Duration
				var files int
				for b.Loop() {
					dst := filepath.Join(filepath.Dir(s.cluster.DataDir()), newName("copy"))
					t0 := time.Now()
					n, err := copyDir(src, dst)
					if err != nil {
						b.Fatal(err)
					}
					ds = append(ds, time.Since(t0))
					files = n
					b.StopTimer()
					if err := os.RemoveAll(dst); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
				b.ReportMetric(ms(percentile(ds, 50)), "p50-ms")
				b.ReportMetric(float64(files), "files")
			})
		})
	}
}

// copyDir copies the regular files of src into a new folder dst the way
// PostgreSQL's copydir does, and returns how many it copied.
func copyDir(src, dst string) (int, error) {
	ents, err := os.ReadDir(src)
	if err != nil {
		return 0, err
	}
	if err := os.Mkdir(dst, 0o700); err != nil {
		return 0, err
	}
	buf := make([]byte, 64<<10)
	n := 0
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		in, err := os.Open(filepath.Join(src, e.Name()))
		if err != nil {
			return n, err
		}
		out, err := os.OpenFile(filepath.Join(dst, e.Name()), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			in.Close()
			return n, err
		}
		for {
			k, rerr := in.Read(buf)
			if k > 0 {
				if _, werr := out.Write(buf[:k]); werr != nil {
					rerr = werr
				}
			}
			if rerr == io.EOF {
				break
			}
			if rerr != nil {
				in.Close()
				out.Close()
				return n, rerr
			}
		}
		in.Close()
		if err := out.Close(); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// fakeTB is the testing.TB dbtest.New gets from the benchmark: one per
// database, so that each database's cleanup (close the pool, drop it) runs
// when the benchmark says, outside the timed part. Fatalf ends the goroutine.
type fakeTB struct {
	mu       sync.Mutex
	cleanups []func()
	err      error
}

func (t *fakeTB) Helper()                   {}
func (t *fakeTB) Name() string              { return "BenchmarkDBTestNew" }
func (t *fakeTB) Failed() bool              { return false }
func (t *fakeTB) Logf(string, ...any)       {}
func (t *fakeTB) Fatalf(f string, a ...any) { t.fail("dbtest: fatal: "+f, a...) }
func (t *fakeTB) Skipf(f string, a ...any)  { t.fail("dbtest: skip: "+f, a...) }

func (t *fakeTB) fail(f string, a ...any) {
	t.mu.Lock()
	t.err = fmt.Errorf(f, a...)
	t.mu.Unlock()
	runtime.Goexit()
}

func (t *fakeTB) Cleanup(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, f)
}

func (t *fakeTB) cleanup() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
	t.cleanups = nil
}

// inGoroutine runs f where runtime.Goexit is allowed.
func inGoroutine(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	<-done
}

// newDBOp makes one test database. maint is a maintenance connection of the
// worker's own; undo removes what the op made (not timed).
type newDBOp struct {
	name   string
	serial int // databases per iteration when serial; parallel runs always make 16 at once
	run    func(ctx context.Context, maint *pgx.Conn, env *dbtestEnv) (undo func(), err error)
}

// dbtestEnv is the shared test server dbtest uses and its template of the
// corpus.
type dbtestEnv struct {
	c        *benchCorpus
	server   *pgx.ConnConfig
	template string
}

func rawClone(strategy string, connect bool) func(ctx context.Context, maint *pgx.Conn, env *dbtestEnv) (func(), error) {
	return func(ctx context.Context, maint *pgx.Conn, env *dbtestEnv) (func(), error) {
		name := newName("raw")
		_, err := maint.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s STRATEGY %s",
			pgx.Identifier{name}.Sanitize(), pgx.Identifier{env.template}.Sanitize(), strings.ToUpper(strategy)))
		if err != nil {
			return nil, err
		}
		undo := func() { dropOn(maint, name) }
		if !connect {
			return undo, nil
		}
		cc := env.server.Copy()
		cc.Database = name
		conn, err := pgx.ConnectConfig(ctx, cc)
		if err != nil {
			return undo, err
		}
		return func() { conn.Close(context.Background()); undo() }, nil
	}
}

func dropOn(maint *pgx.Conn, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := maint.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		panic(err)
	}
}

func dbtestNew(strategy string, poolSize int) func(ctx context.Context, maint *pgx.Conn, env *dbtestEnv) (func(), error) {
	return func(ctx context.Context, maint *pgx.Conn, env *dbtestEnv) (func(), error) {
		tb := &fakeTB{}
		inGoroutine(func() {
			dbtest.New(tb, dbtest.Dir(env.c.dir), dbtest.Strategy(strategy), dbtest.PoolSize(poolSize))
		})
		return tb.cleanup, tb.err
	}
}

// migrateFresh is what a suite without templates does: an empty database
// per test, migrated from scratch with dbinit's engine (per-file
// transactions, like `dbinit up`).
func migrateFresh(ctx context.Context, maint *pgx.Conn, env *dbtestEnv) (func(), error) {
	name := newName("fresh")
	if _, err := maint.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return nil, err
	}
	undo := func() { dropOn(maint, name) }
	cc := env.server.Copy()
	cc.Database = name
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return undo, err
	}
	defer conn.Close(context.Background())
	m, err := migrate.New(env.c.set, migrate.Options{Version: "bench", Runner: "bench"})
	if err != nil {
		return undo, err
	}
	_, err = m.Up(ctx, conn, migrate.UpOptions{})
	return undo, err
}

var newDBOps = []newDBOp{
	// dbtest's default: file_copy and a pool of 4 ready clones.
	{"dbtest-file_copy", 16, dbtestNew("file_copy", 4)},
	{"dbtest-wal_log", 16, dbtestNew("wal_log", 4)},
	{"dbtest-nopool-file_copy", 16, dbtestNew("file_copy", 0)},
	{"raw-file_copy", 16, rawClone("file_copy", false)},
	{"raw-wal_log", 16, rawClone("wal_log", false)},
	// The clone plus the connection dbtest.New opens to it, for reading
	// dbtest's own overhead.
	{"raw+connect-file_copy", 16, rawClone("file_copy", true)},
	{"migrate", 1, migrateFresh},
}

// BenchmarkDBTestNew measures what a test waits for to get its database, on
// the shared test server dbtest uses (testserver: TEST_DATABASE_URL or a
// throwaway fsync=off cluster): dbtest.New (clone, pool, ping) with each
// STRATEGY, the raw CREATE DATABASE ... TEMPLATE of the same template, and
// migrating an empty database from scratch. serial makes databases one after
// the other; parallel16 makes 16 at once, as 16 parallel tests do. ns/op is
// wall time per database; p50-ms and p95-ms are the latency of one database.
func BenchmarkDBTestNew(b *testing.B) {
	c := getCorpus(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	srv, err := testserver.Get(ctx)
	if err != nil {
		b.Fatal(err)
	}
	cc, err := pgx.ParseConfig(srv.URL)
	if err != nil {
		b.Fatal(err)
	}
	env := &dbtestEnv{c: c, server: cc, template: "dbtpl_" + c.set.Hash()[:16]}
	// The first dbtest.New builds the template; it is not what is measured.
	warm := &fakeTB{}
	inGoroutine(func() { dbtest.New(warm, dbtest.Dir(c.dir)) })
	warm.cleanup()
	if warm.err != nil {
		b.Fatal(warm.err)
	}
	maints := make([]*pgx.Conn, 16)
	for i := range maints {
		if maints[i], err = pgx.ConnectConfig(ctx, cc); err != nil {
			b.Fatal(err)
		}
		defer maints[i].Close(context.Background())
	}
	var exists bool
	if err := maints[0].QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1 AND datistemplate)`, env.template).Scan(&exists); err != nil || !exists {
		b.Fatalf("dbtest's template %s is not there (%v)", env.template, err)
	}
	for _, mode := range []struct {
		name     string
		parallel bool
	}{{"serial", false}, {"parallel16", true}} {
		b.Run(mode.name, func(b *testing.B) {
			for _, op := range newDBOps {
				b.Run(op.name, func(b *testing.B) { benchNewDB(b, ctx, op, mode.parallel, maints, env) })
			}
		})
	}
}

// testBody is what a test does with its database between getting it and
// its cleanup: a few milliseconds, during which dbtest's pool refills.
const testBody = 5 * time.Millisecond

// benchNewDB runs tests: get a database (the latency measured), the test
// body, the cleanup that drops it. serial runs op.serial tests one after the
// other per iteration, parallel16 16 at once. ns/op is the wall time of one
// whole test.
func benchNewDB(b *testing.B, ctx context.Context, op newDBOp, parallel bool, maints []*pgx.Conn, env *dbtestEnv) {
	var (
		mu   sync.Mutex
		ds   []time.Duration
		errs []error
	)
	test := func(maint *pgx.Conn) {
		t0 := time.Now()
		undo, err := op.run(ctx, maint, env)
		d := time.Since(t0)
		if err == nil {
			time.Sleep(testBody)
		}
		if undo != nil {
			undo()
		}
		mu.Lock()
		defer mu.Unlock()
		ds = append(ds, d)
		if err != nil {
			errs = append(errs, err)
		}
	}
	tests := 0
	for b.Loop() {
		if parallel {
			var wg sync.WaitGroup
			for i := range 16 {
				wg.Go(func() { test(maints[i]) })
			}
			wg.Wait()
			tests += 16
		} else {
			for range op.serial {
				test(maints[0])
			}
			tests += op.serial
		}
		if len(errs) > 0 {
			b.Fatal(errs[0])
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(tests), "ns/op")
	b.ReportMetric(ms(percentile(ds, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(ds, 95)), "p95-ms")
}
