package docker

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/savvi-studio/dbinit/bench/corpus"
	"github.com/savvi-studio/dbinit/internal/dbconn"
	"github.com/savvi-studio/dbinit/internal/provision"
	"github.com/savvi-studio/dbinit/internal/testserver"
	"github.com/savvi-studio/dbinit/migrate"
)

// The reliability tests run the real dbinit binary against durable
// PostgreSQL 15, 17 and 18 servers (15 from the local binaries, 17 and 18
// in containers of the offline images) and break things while it works:
// dbinit killed with SIGKILL at a random moment, the server crashed
// (SIGKILL of the postmaster) at a random moment, many runners started at
// once through different maintenance databases. After each blow the next
// run must converge: exit 0, the template complete and built from the
// folder, the working database's history equal to the folder, not one of
// the rows written between trials lost, no password in any output.
//
// make test runs a few trials per server; make reliability runs the counts
// docs/reliability.md reports (RELIABILITY_TRIALS, RELIABILITY_RUNNERS).

// trialServer is a durable PostgreSQL server that can be crashed.
type trialServer interface {
	name() string
	url() string // maintenance database "postgres", with the password
	password() string
	crash(t *testing.T)   // SIGKILL the postmaster, as a power cut would
	restart(t *testing.T) // start it again: crash recovery
}

type localServer struct{ c *testserver.Cluster }

func (s localServer) name() string     { return "PostgreSQL 15 (local)" }
func (s localServer) url() string      { return s.c.URL() }
func (s localServer) password() string { u, _ := pgx.ParseConfig(s.c.URL()); return u.Password }
func (s localServer) crash(*testing.T) { s.c.Kill() }
func (s localServer) restart(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := s.c.Restart(ctx); err != nil {
		t.Fatal(err)
	}
}

type containerServer struct {
	major, container, pw string
	port                 int
}

func (s *containerServer) name() string     { return "PostgreSQL " + s.major + " (container)" }
func (s *containerServer) password() string { return s.pw }
func (s *containerServer) url() string {
	return fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/postgres?sslmode=disable", s.pw, s.port)
}
func (s *containerServer) crash(t *testing.T) {
	if out, err := exec.Command("docker", "kill", "-s", "KILL", s.container).CombinedOutput(); err != nil {
		t.Fatalf("docker kill: %v\n%s", err, out)
	}
	exec.Command("docker", "wait", s.container).Run()
}
func (s *containerServer) restart(t *testing.T) {
	if out, err := exec.Command("docker", "start", s.container).CombinedOutput(); err != nil {
		t.Fatalf("docker start: %v\n%s", err, out)
	}
}

// startContainer starts dbinit/postgres-base:major, durable (the image's
// defaults), with room for many runners.
func startContainer(t *testing.T, major string) *containerServer {
	t.Helper()
	s := &containerServer{major: major, pw: "rel-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-secret", port: freePort(t),
		container: fmt.Sprintf("dbinit-rel-%s-%d", major, time.Now().UnixNano()%1e9)}
	out, err := exec.Command("docker", "run", "-d", "--name", s.container, "-e", "POSTGRES_PASSWORD="+s.pw,
		"-p", fmt.Sprintf("127.0.0.1:%d:5432", s.port), "dbinit/postgres-base:"+major,
		"postgres", "-c", "max_connections=300").CombinedOutput()
	if err != nil {
		t.Fatalf("docker run: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := exec.Command("docker", "logs", "--tail", "50", s.container).CombinedOutput()
			t.Logf("server log:\n%s", logs)
		}
		exec.Command("docker", "rm", "-f", "-v", s.container).Run()
	})
	return s
}

func startLocalDurable(t *testing.T) localServer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := testserver.StartLocal(ctx, testserver.LocalOptions{Durable: true, Settings: map[string]string{"max_connections": "300"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop(context.Background()) })
	return localServer{c}
}

// servers returns the servers the reliability tests run on.
func servers(t *testing.T) []func(t *testing.T) trialServer {
	return []func(t *testing.T) trialServer{
		func(t *testing.T) trialServer { return startLocalDurable(t) },
		func(t *testing.T) trialServer { return startContainer(t, "17") },
		func(t *testing.T) trialServer { return startContainer(t, "18") },
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

var binary struct {
	once sync.Once
	path string
	err  error
}

// dbinitBinary builds the binary once per test process.
func dbinitBinary(t *testing.T) string {
	t.Helper()
	binary.once.Do(func() {
		dir, err := os.MkdirTemp("", "dbinit-rel-")
		if err != nil {
			binary.err = err
			return
		}
		binary.path = filepath.Join(dir, "dbinit")
		out, err := exec.Command("go", "build", "-o", binary.path, "../cmd/dbinit").CombinedOutput()
		if err != nil {
			binary.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binary.err != nil {
		t.Fatal(binary.err)
	}
	return binary.path
}

// figures are what a server's trials found.
type figures struct {
	mu                               sync.Mutex
	runs, killed, crashed, converged int
	landed                           int // blows that hit a run still going (the others came after it ended)
	rowsWritten, rowsLost            int
	passwordsPrinted                 int
	runners, builds, clones          int
}

func (f *figures) add(fn func(f *figures)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// target is one application's template and working database on a server.
type target struct {
	t        *testing.T
	srv      trialServer
	bin      string
	dir      string
	template string
	working  string
	fig      *figures
}

func newTarget(t *testing.T, srv trialServer, files int, fig *figures) *target {
	t.Helper()
	suffix := strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	tg := &target{t: t, srv: srv, bin: dbinitBinary(t), dir: t.TempDir(), template: "rel_t_" + suffix, working: "rel_w_" + suffix, fig: fig}
	if err := corpus.Write(tg.dir, files); err != nil {
		t.Fatal(err)
	}
	tg.write(files+1, "rows", "CREATE TABLE reliability_rows (id bigint PRIMARY KEY, trial int NOT NULL);\n")
	return tg
}

func (tg *target) write(version int, name, sql string) {
	tg.t.Helper()
	path := filepath.Join(tg.dir, fmt.Sprintf("%04d_%s.sql", version, name))
	if err := os.WriteFile(path, []byte(sql), 0o644); err != nil {
		tg.t.Fatal(err)
	}
}

// command is `dbinit init` for this target through maintenance database maint.
func (tg *target) command(ctx context.Context, maint string) *exec.Cmd {
	u := strings.Replace(tg.srv.url(), "/postgres?", "/"+maint+"?", 1)
	cmd := exec.CommandContext(ctx, tg.bin, "init")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+u, "DBINIT_DIR="+tg.dir, "DBINIT_DATABASE="+tg.working,
		"DBINIT_TEMPLATE="+tg.template, "DBINIT_WAIT_TIMEOUT=120s", "DBINIT_LOCK_TIMEOUT=5m")
	return cmd
}

// run runs init to the end and returns its exit code and output.
func (tg *target) run(maint string) (int, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	cmd := tg.command(ctx, maint)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		code = -1 // could not run it at all; the caller reports the output
		out.WriteString(err.Error())
	}
	tg.seen(out.String())
	return code, out.String()
}

// seen counts the password in an output.
func (tg *target) seen(out string) {
	n := strings.Count(out, tg.srv.password())
	tg.fig.add(func(f *figures) { f.runs++; f.passwordsPrinted += n })
}

func (tg *target) conn(db string) *pgx.Conn {
	tg.t.Helper()
	cc, err := pgx.ParseConfig(tg.srv.url())
	if err != nil {
		tg.t.Fatal(err)
	}
	cc.Database = db
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := dbconn.Connect(ctx, cc, dbconn.Options{Timeout: 2 * time.Minute})
	if err != nil {
		tg.t.Fatal(err)
	}
	return conn
}

// verify checks that the target converged: the template is complete and
// built from the folder, the working database has every file applied and
// every row written so far; after the stray sessions of killed runs are
// gone, one more run leaves no temporary database behind.
func (tg *target) verify(rows int) {
	tg.t.Helper()
	ctx := context.Background()
	set, err := migrate.LoadDir(tg.dir)
	if err != nil {
		tg.t.Fatal(err)
	}
	maint := tg.conn("postgres")
	defer maint.Close(ctx)
	var comment string
	var isTemplate bool
	if err := maint.QueryRow(ctx, `SELECT datistemplate, coalesce(shobj_description(oid, 'pg_database'), '') FROM pg_database WHERE datname = $1`, tg.template).Scan(&isTemplate, &comment); err != nil {
		tg.t.Fatalf("template: %v", err)
	}
	if m, ok := provision.ParseMarker(comment); !ok || !isTemplate || m.Set != set.Hash() {
		tg.t.Fatalf("template not complete or not built from the folder: template=%v %q", isTemplate, comment)
	}
	work := tg.conn(tg.working)
	defer work.Close(ctx)
	var applied, lost int
	if err := work.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state = 'applied') FROM dbinit.schema_migrations`).Scan(&applied); err != nil {
		tg.t.Fatal(err)
	}
	if applied != len(set.Migrations) {
		tg.t.Fatalf("working database has %d of %d files applied", applied, len(set.Migrations))
	}
	var have int
	if err := work.QueryRow(ctx, `SELECT count(*) FROM reliability_rows`).Scan(&have); err != nil {
		tg.t.Fatal(err)
	}
	lost = rows - have
	tg.fig.add(func(f *figures) { f.rowsLost += lost; f.converged++ })
	if lost != 0 {
		tg.t.Errorf("%d of %d rows lost", lost, rows)
	}
	var invalid int
	if err := work.QueryRow(ctx, `SELECT count(*) FROM pg_index WHERE NOT indisvalid`).Scan(&invalid); err != nil || invalid != 0 {
		tg.t.Fatalf("%d INVALID indexes in the working database (%v)", invalid, err)
	}
}

// noLeftovers waits for stray sessions of killed runs, runs init once more
// and checks that no temporary database of this target is left.
func (tg *target) noLeftovers() {
	tg.t.Helper()
	ctx := context.Background()
	maint := tg.conn("postgres")
	defer maint.Close(ctx)
	for range 600 {
		var n int
		if err := maint.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE starts_with(datname, $1) AND backend_type = 'client backend'`, tg.template+"_").Scan(&n); err != nil || n == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, out := tg.run("postgres"); code != 0 {
		tg.t.Fatalf("run after the trials: exit %d\n%s", code, out)
	}
	var left []string
	rows, err := maint.Query(ctx, `SELECT datname FROM pg_database WHERE starts_with(datname, $1)`, tg.template+"_")
	if err == nil {
		left, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil || len(left) > 0 {
		tg.t.Fatalf("temporary databases left: %v (%v)", left, err)
	}
}

// insertRows writes n rows into the working database, as the application
// would between deployments.
func (tg *target) insertRows(from, n, trial int) {
	tg.t.Helper()
	work := tg.conn(tg.working)
	defer work.Close(context.Background())
	if _, err := work.Exec(context.Background(), `INSERT INTO reliability_rows SELECT g, $3 FROM generate_series($1::bigint, $2::bigint) g`, from, from+n-1, trial); err != nil {
		tg.t.Fatal(err)
	}
}

// trialFile is the migration a trial adds: a table with rows, an index
// built concurrently, a function, a slow statement that widens the window
// a kill can land in.
func trialFile(i int) (name, sql string) {
	switch i % 4 {
	case 0:
		return "trial_table", fmt.Sprintf("CREATE TABLE trial_%d (id int PRIMARY KEY, note text);\nINSERT INTO trial_%d SELECT g, md5(g::text) FROM generate_series(1, 2000) g;\nSELECT pg_sleep(0.2);\n", i, i)
	case 1:
		return "trial_index", fmt.Sprintf("-- dbinit:no-transaction\nCREATE TABLE IF NOT EXISTS trial_%d (id int, v int);\nINSERT INTO trial_%d SELECT g, g %% 97 FROM generate_series(1, 20000) g;\nCREATE INDEX CONCURRENTLY IF NOT EXISTS trial_%d_v ON trial_%d (v);\n", i, i, i, i)
	case 2:
		return "trial_function", fmt.Sprintf("CREATE FUNCTION trial_%d(x int) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT x * %d $$;\nSELECT pg_sleep(0.2);\n", i, i)
	default:
		return "trial_column", "ALTER TABLE reliability_rows ADD COLUMN IF NOT EXISTS note_" + strconv.Itoa(i) + " text;\nSELECT pg_sleep(0.3);\n"
	}
}

// TestReliability runs the kill, crash and concurrency trials on every
// server.
func TestReliability(t *testing.T) {
	requireDocker(t)
	trials := envInt("RELIABILITY_TRIALS", 4)
	runners := envInt("RELIABILITY_RUNNERS", 8)
	for i, start := range servers(t) {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			srv := start(t)
			fig := &figures{}
			t.Run("kill", func(t *testing.T) { killTrials(t, srv, trials, fig) })
			t.Run("concurrent", func(t *testing.T) { concurrentRunners(t, srv, runners, fig) })
			if fig.passwordsPrinted != 0 {
				t.Errorf("the password was printed %d times", fig.passwordsPrinted)
			}
			t.Logf("%s: %d dbinit runs; %d trials (%d dbinit killed, %d server crashed; %d hit a run still going), %d converged; "+
				"rows written %d, lost %d; %d concurrent runners: %d template builds, %d working-database clones; passwords printed %d",
				srv.name(), fig.runs, fig.killed+fig.crashed, fig.killed, fig.crashed, fig.landed, fig.converged, fig.rowsWritten, fig.rowsLost,
				fig.runners, fig.builds, fig.clones, fig.passwordsPrinted)
		})
	}
}

// killTrials adds a migration, starts init, and kills dbinit (or crashes
// the server, every third trial) at a random moment of the run; then init
// must converge.
func killTrials(t *testing.T, srv trialServer, trials int, fig *figures) {
	tg := newTarget(t, srv, 40, fig)
	if code, out := tg.run("postgres"); code != 0 {
		t.Fatalf("first run: exit %d\n%s", code, out)
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 42))
	rows, version := 0, 1000
	tg.insertRows(1, 100, 0)
	rows += 100
	for i := range trials {
		version++
		name, sql := trialFile(i)
		tg.write(version, name, sql)
		ctx, cancel := context.WithCancel(context.Background())
		cmd := tg.command(ctx, "postgres")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// A run here takes about a second: land the blow anywhere in it.
		time.Sleep(time.Duration(rng.IntN(1200)) * time.Millisecond)
		crash := i%3 == 2
		if crash {
			srv.crash(t)
			fig.add(func(f *figures) { f.crashed++ })
		} else {
			cmd.Process.Signal(syscall.SIGKILL)
			fig.add(func(f *figures) { f.killed++ })
		}
		err := cmd.Wait()
		cancel()
		if err != nil { // killed, or failed because the server went away
			fig.add(func(f *figures) { f.landed++ })
		}
		tg.seen(out.String())
		if crash {
			srv.restart(t)
		}
		if code, out := tg.run("postgres"); code != 0 {
			t.Fatalf("trial %d (%s): the run after the blow exited %d\n%s", i, map[bool]string{true: "server crash", false: "dbinit killed"}[crash], code, out)
		}
		tg.verify(rows)
		tg.insertRows(rows+1, 50, i+1)
		rows += 50
	}
	tg.verify(rows)
	tg.noLeftovers()
	fig.add(func(f *figures) { f.rowsWritten += rows })
}

// concurrentRunners starts n runners at once on a new target, half through
// the maintenance database postgres and half through another one: the
// template is built once and the working database cloned once. Then a new
// file and n runners again: the template made once more, extended from the
// old one (template_state=extended) rather than rebuilt, no clone, the file
// applied once.
func concurrentRunners(t *testing.T, srv trialServer, n int, fig *figures) {
	tg := newTarget(t, srv, 20, fig)
	maint := tg.conn("postgres")
	other := "rel_maint_" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	if _, err := maint.Exec(context.Background(), "CREATE DATABASE "+other); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		maint.Exec(context.Background(), "DROP DATABASE IF EXISTS "+other+" WITH (FORCE)")
		maint.Close(context.Background())
	})
	round := func(wantBuilt, wantExtended, wantCreated, wantUpdated int) {
		t.Helper()
		outs := make([]string, n)
		codes := make([]int, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				db := "postgres"
				if i%2 == 1 {
					db = other
				}
				codes[i], outs[i] = tg.run(db)
			}()
		}
		close(start)
		wg.Wait()
		built, extended, created, updated := 0, 0, 0, 0
		for i := range n {
			if codes[i] != 0 {
				t.Fatalf("runner %d exited %d\n%s", i, codes[i], outs[i])
			}
			built += strings.Count(outs[i], "template_state=built")
			extended += strings.Count(outs[i], "template_state=extended")
			created += strings.Count(outs[i], "database_state=created")
			updated += strings.Count(outs[i], "database_state=updated")
		}
		fig.add(func(f *figures) { f.runners += n; f.builds += built + extended; f.clones += created })
		if built != wantBuilt || extended != wantExtended || created != wantCreated || updated != wantUpdated {
			t.Fatalf("%d runners: template built %d times, extended %d, working database created %d, updated %d; want %d, %d, %d, %d",
				n, built, extended, created, updated, wantBuilt, wantExtended, wantCreated, wantUpdated)
		}
	}
	round(1, 0, 1, 0)
	tg.insertRows(1, 100, 0)
	tg.write(2000, "more", "CREATE TABLE more_rows (id int);\nSELECT pg_sleep(0.2);\n")
	round(0, 1, 0, 1)
	tg.verify(100)
	fig.add(func(f *figures) { f.rowsWritten += 100 })
}
