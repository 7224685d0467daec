// Command peers applies the same generated migration folders with dbinit and
// with the tools people use instead of it, on one throwaway PostgreSQL
// cluster, and writes the figures and a plot.
//
//	cd bench/peers && GOWORK=off go run .      (or: make bench-peers)
//
// Runners: dbinit up; dbinit init (template build + clone); psql -1 of the
// concatenation (the floor: one session, one transaction); psql per file (the
// postgres image's docker-entrypoint-initdb.d); goose v3, golang-migrate v4
// and tern v2, built from this module's pinned versions (its go.mod's tool
// lines, so that none of them is a dependency of dbinit). Every run gets a
// new empty database; runners alternate, in a rotated order each
// repetition; every client connects over the server's Unix socket, as
// initdb.d's psql does. Reported: the median wall time and its spread (min
// and max), the ratio to the floor, and the peak RSS of the runner's
// processes (for psql per file, the largest of its processes). psql per
// file runs once at 1,000 files and more: it is an order of magnitude slower
// than the others, and its spread changes no conclusion.
//
// The peer formats: goose files carry "-- +goose Up" and one
// StatementBegin/End block around the file (so goose sends the file in one
// round trip, its fastest way); golang-migrate files are NNN_name.up.sql;
// tern files are the plain files.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/savvi-studio/dbinit/bench/corpus"
	"github.com/savvi-studio/dbinit/internal/testserver"
)

func main() {
	sizesFlag := flag.String("sizes", "100,1000,5000", "corpus sizes, in files")
	reps := flag.Int("reps", 3, "repetitions of every runner at every size")
	out := flag.String("out", "../../docs", "folder for peers.png and peers.md")
	durable := flag.Bool("durable", false, "PostgreSQL's default durability instead of fsync, synchronous_commit and full_page_writes off")
	bigMB := flag.Int("bigfile", 50, "size in MB of the single seed file applied by dbinit up and psql -1 (0: skip)")
	only := flag.String("runners", "", "comma-separated runner names to run (default: all)")
	flag.Parse()
	var sizes []int
	for _, f := range strings.Split(*sizesFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			log.Fatalf("-sizes: %q is not a number of files", f)
		}
		sizes = append(sizes, n)
	}
	if err := run(sizes, *reps, *out, *durable, *bigMB, *only); err != nil {
		log.Fatal(err)
	}
}

// bench is one benchmark session: the server, the built tools, the work folder.
type bench struct {
	work    string
	bin     string // built tools
	psql    string
	socket  string
	port    int
	maint   *pgx.Conn
	seq     int
	durable bool
	// dropLater: databases a run made besides its own (dbinit init's
	// template), dropped after it.
	dropLater []string
	// tables: how many tables each size's corpus leaves, from the first
	// runner; every other runner must leave as many.
	tables map[int]int
}

// connURL is the URL of database db over the Unix socket, trust.
func (b *bench) connURL(db string) string {
	return fmt.Sprintf("postgres://postgres@/%s?host=%s&port=%d&sslmode=disable", db, b.socket, b.port)
}

func run(sizes []int, reps int, out string, durable bool, bigMB int, only string) error {
	ctx := context.Background()
	work, err := os.MkdirTemp("", "dbinit-peers-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if _, err := os.Stat(gnuTime); err != nil {
		return fmt.Errorf("%s measures each runner's peak RSS: apt-get install time", gnuTime)
	}
	b := &bench{work: work, bin: filepath.Join(work, "bin"), durable: durable}
	log.Printf("building the runners into %s", b.bin)
	if err := b.buildTools(ctx); err != nil {
		return err
	}
	cluster, err := testserver.StartLocal(ctx, testserver.LocalOptions{Durable: durable})
	if err != nil {
		return err
	}
	defer cluster.Stop(context.Background())
	b.port = cluster.Port()
	b.socket = cluster.DataDir()
	if _, err := os.Stat(filepath.Join(b.socket, fmt.Sprintf(".s.PGSQL.%d", b.port))); err != nil {
		return fmt.Errorf("the cluster has no Unix socket in %s: %w", b.socket, err)
	}
	binDir := strings.TrimPrefix(cluster.Server().Source, "local:")
	b.psql = filepath.Join(binDir, "psql")
	if b.maint, err = pgx.Connect(ctx, b.connURL("postgres")); err != nil {
		return err
	}
	defer b.maint.Close(context.Background())
	var version string
	if err := b.maint.QueryRow(ctx, "SHOW server_version").Scan(&version); err != nil {
		return err
	}

	runners := allRunners
	if only != "" {
		runners = nil
		for _, r := range allRunners {
			if slices.Contains(strings.Split(only, ","), r.name) {
				runners = append(runners, r)
			}
		}
	}
	res := &results{sizes: sizes, reps: reps, server: version, durable: durable, tools: b.toolVersions()}
	for _, n := range sizes {
		dirs, err := b.writeCorpus(n)
		if err != nil {
			return err
		}
		for rep := range reps {
			// Rotate the order, so no runner always follows the same one.
			for k := range runners {
				r := runners[(k+rep)%len(runners)]
				if r.name == "psql per file" && n >= 1000 && rep > 0 {
					// Ten times slower than the rest (a process and a
					// connection per file): one run is enough to place it.
					continue
				}
				m, err := b.measure(ctx, r, dirs)
				if err != nil {
					return fmt.Errorf("%s, %d files: %w", r.name, n, err)
				}
				res.add(r.name, n, m)
				log.Printf("%5d files  %-16s %8.3f s  %6.1f MB", n, r.name, m.wall.Seconds(), float64(m.rssKB)/1024)
			}
		}
	}
	if bigMB > 0 {
		if err := b.bigFile(ctx, bigMB, res); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	if err := res.plot(filepath.Join(out, "peers.png")); err != nil {
		return err
	}
	table := res.markdown(machine())
	if err := os.WriteFile(filepath.Join(out, "peers.md"), []byte(table), 0o644); err != nil {
		return err
	}
	fmt.Print(table)
	return nil
}

// buildTools builds dbinit from this checkout and the peers at the versions
// this module pins.
func (b *bench) buildTools(ctx context.Context) error {
	// dbinit as make build builds it, in its own module (its go.sum, not
	// this module's, whose versions the peers' dependencies raise).
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", filepath.Join(b.bin, "dbinit"), "./cmd/dbinit")
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/dbinit (in %s): %w\n%s", cmd.Dir, err, out)
	}
	builds := [][]string{
		// Only goose's PostgreSQL driver: the others pull cgo and large
		// modules in for nothing.
		{"goose", "-tags", "no_clickhouse no_libsql no_mssql no_mysql no_sqlite3 no_vertica no_ydb no_duckdb", "github.com/pressly/goose/v3/cmd/goose"},
		{"migrate", "-tags", "postgres", "github.com/golang-migrate/migrate/v4/cmd/migrate"},
		{"tern", "github.com/jackc/tern/v2"},
	}
	for _, bl := range builds {
		args := append([]string{"build", "-trimpath", "-o", filepath.Join(b.bin, bl[0])}, bl[1:]...)
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

// corpusDirs are one corpus in every runner's format.
type corpusDirs struct {
	n       int
	plain   string   // NNN_name.sql: dbinit, tern
	files   []string // the plain files, in order
	all     string   // the concatenation
	goose   string
	migrate string
}

func (b *bench) writeCorpus(n int) (*corpusDirs, error) {
	base := filepath.Join(b.work, strconv.Itoa(n))
	d := &corpusDirs{n: n, plain: filepath.Join(base, "plain"), all: filepath.Join(base, "all.sql"),
		goose: filepath.Join(base, "goose"), migrate: filepath.Join(base, "migrate")}
	for _, dir := range []string{d.plain, d.goose, d.migrate} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
	}
	var all strings.Builder
	for _, f := range corpus.Generate(n) {
		path := filepath.Join(d.plain, f.Name)
		d.files = append(d.files, path)
		all.WriteString(f.SQL)
		all.WriteString("\n")
		if err := os.WriteFile(path, []byte(f.SQL), 0o644); err != nil {
			return nil, err
		}
		g := "-- +goose Up\n-- +goose StatementBegin\n" + f.SQL + "\n-- +goose StatementEnd\n"
		if err := os.WriteFile(filepath.Join(d.goose, f.Name), []byte(g), 0o644); err != nil {
			return nil, err
		}
		up := strings.TrimSuffix(f.Name, ".sql") + ".up.sql"
		if err := os.WriteFile(filepath.Join(d.migrate, up), []byte(f.SQL), 0o644); err != nil {
			return nil, err
		}
	}
	return d, os.WriteFile(d.all, []byte(all.String()), 0o644)
}

// measurement is one run of one runner.
type measurement struct {
	wall  time.Duration
	rssKB int64
}

// runner applies a corpus to the empty database db.
type runner struct {
	name string
	run  func(ctx context.Context, b *bench, d *corpusDirs, db string) (rssKB int64, err error)
}

var allRunners = []runner{
	{"dbinit up", func(ctx context.Context, b *bench, d *corpusDirs, db string) (int64, error) {
		return b.cmd(ctx, b.dbinitEnv(d.plain, db, db+"_unused"), filepath.Join(b.bin, "dbinit"), "up")
	}},
	{"dbinit init", func(ctx context.Context, b *bench, d *corpusDirs, db string) (int64, error) {
		b.dropLater = append(b.dropLater, db+"_tpl")
		return b.cmd(ctx, b.dbinitEnv(d.plain, db, db+"_tpl"), filepath.Join(b.bin, "dbinit"), "init")
	}},
	{"psql -1", func(ctx context.Context, b *bench, d *corpusDirs, db string) (int64, error) {
		return b.cmd(ctx, nil, b.psql, "-X", "-q", "-1", "-v", "ON_ERROR_STOP=1", "-f", d.all, b.connURL(db))
	}},
	{"psql per file", func(ctx context.Context, b *bench, d *corpusDirs, db string) (int64, error) {
		var peak int64
		for _, f := range d.files {
			rss, err := b.cmd(ctx, nil, b.psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", f, b.connURL(db))
			if err != nil {
				return peak, err
			}
			peak = max(peak, rss)
		}
		return peak, nil
	}},
	{"goose", func(ctx context.Context, b *bench, d *corpusDirs, db string) (int64, error) {
		return b.cmd(ctx, nil, filepath.Join(b.bin, "goose"), "-dir", d.goose, "postgres", b.connURL(db), "up")
	}},
	{"golang-migrate", func(ctx context.Context, b *bench, d *corpusDirs, db string) (int64, error) {
		return b.cmd(ctx, nil, filepath.Join(b.bin, "migrate"), "-path", d.migrate, "-database", b.connURL(db), "up")
	}},
	{"tern", func(ctx context.Context, b *bench, d *corpusDirs, db string) (int64, error) {
		return b.cmd(ctx, nil, filepath.Join(b.bin, "tern"), "migrate", "--migrations", d.plain, "--conn-string", b.connURL(db))
	}},
}
