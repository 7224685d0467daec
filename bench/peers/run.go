package main

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// dbinitEnv is the environment of a dbinit run on database db with template tpl.
func (b *bench) dbinitEnv(dir, db, tpl string) []string {
	return []string{
		"DATABASE_URL=" + b.connURL("postgres"),
		"DBINIT_DIR=" + dir,
		"DBINIT_DATABASE=" + db,
		"DBINIT_TEMPLATE=" + tpl,
	}
}

// cmd runs a program to completion under GNU time and returns its peak RSS
// in kB. (The rusage Go's os/exec reports is no use here: Go starts a child
// in its own address space, whose high-water mark the child inherits.) The
// output is kept only to explain a failure.
func (b *bench) cmd(ctx context.Context, env []string, name string, args ...string) (int64, error) {
	rssFile := filepath.Join(b.work, "rss")
	c := exec.CommandContext(ctx, gnuTime, append([]string{"-f", "%M", "-o", rssFile, name}, args...)...)
	c.Env = append(append(os.Environ(), "PGAPPNAME=peers"), env...)
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	err := c.Run()
	var rss int64
	if raw, rerr := os.ReadFile(rssFile); rerr == nil {
		lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
		rss, _ = strconv.ParseInt(lines[len(lines)-1], 10, 64)
	}
	if err != nil {
		tail := out.String()
		if len(tail) > 4000 {
			tail = "…" + tail[len(tail)-4000:]
		}
		return rss, fmt.Errorf("%s: %w\n%s", filepath.Base(name), err, tail)
	}
	return rss, nil
}

// gnuTime measures a process's peak RSS: Debian's package "time".
const gnuTime = "/usr/bin/time"

// measure gives r a new empty database, times it applying d, checks what it
// left and drops the database.
func (b *bench) measure(ctx context.Context, r runner, d *corpusDirs) (measurement, error) {
	b.seq++
	db := fmt.Sprintf("peers_%d_%d", os.Getpid(), b.seq)
	if _, err := b.maint.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()); err != nil {
		return measurement{}, err
	}
	b.dropLater = append(b.dropLater[:0], db)
	defer b.drop()
	t0 := time.Now()
	rss, err := r.run(ctx, b, d, db)
	m := measurement{wall: time.Since(t0), rssKB: rss}
	if err != nil {
		return m, err
	}
	n, err := b.tableCount(ctx, db)
	if err != nil {
		return m, err
	}
	if b.tables == nil {
		b.tables = map[int]int{}
	}
	if want, ok := b.tables[d.n]; !ok {
		b.tables[d.n] = n
	} else if n != want {
		return m, fmt.Errorf("left %d tables, other runners %d", n, want)
	}
	return m, nil
}

// tableCount counts the tables the corpus made (not the runners' own
// history tables).
func (b *bench) tableCount(ctx context.Context, db string) (int, error) {
	conn, err := pgx.Connect(ctx, b.connURL(db))
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	var n int
	err = conn.QueryRow(ctx, `SELECT count(*) FROM pg_tables
		WHERE schemaname NOT IN ('pg_catalog', 'information_schema', 'dbinit')
		  AND tablename NOT IN ('goose_db_version', 'schema_migrations', 'schema_version')`).Scan(&n)
	return n, err
}

// drop removes what the last run made.
func (b *bench) drop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, db := range b.dropLater {
		id := pgx.Identifier{db}.Sanitize()
		_, _ = b.maint.Exec(ctx, "ALTER DATABASE "+id+" IS_TEMPLATE false")
		if _, err := b.maint.Exec(ctx, "DROP DATABASE IF EXISTS "+id+" WITH (FORCE)"); err != nil {
			fmt.Fprintln(os.Stderr, "drop", db, err)
		}
	}
	b.dropLater = b.dropLater[:0]
}

// bigFile applies one seed file of mb megabytes (a table and multi-row
// INSERTs) with dbinit up and with psql -1.
func (b *bench) bigFile(ctx context.Context, mb int, res *results) error {
	dir := filepath.Join(b.work, "big")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	path := filepath.Join(dir, "001_seed.sql")
	var sb strings.Builder
	sb.WriteString("CREATE TABLE seed (id bigint PRIMARY KEY, name text NOT NULL, payload text);\n")
	rng := rand.New(rand.NewPCG(1, 2))
	for id := 1; sb.Len() < mb<<20; {
		sb.WriteString("INSERT INTO seed (id, name, payload) VALUES\n")
		for k := range 500 {
			if k > 0 {
				sb.WriteString(",\n")
			}
			fmt.Fprintf(&sb, "  (%d, 'name %d', '%s')", id, id, strings.Repeat("x", 20+rng.IntN(100)))
			id++
		}
		sb.WriteString(";\n")
	}
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		return err
	}
	d := &corpusDirs{n: -1, plain: dir, files: []string{path}, all: path}
	for _, name := range []string{"dbinit up", "psql -1"} {
		for _, r := range allRunners {
			if r.name != name {
				continue
			}
			m, err := b.measure(ctx, r, d)
			if err != nil {
				return fmt.Errorf("%d MB file, %s: %w", mb, name, err)
			}
			res.big = append(res.big, bigResult{runner: name, mb: mb, m: m})
		}
	}
	return nil
}

// machine describes where the figures come from.
func machine() string {
	var b strings.Builder
	cpu := "unknown CPU"
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(raw), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	fmt.Fprintf(&b, "%s, %d CPUs", cpu, runtime.NumCPU())
	if raw, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		fmt.Sscanf(strings.SplitN(string(raw), "\n", 2)[0], "MemTotal: %d kB", &kb)
		fmt.Fprintf(&b, ", %.0f GiB", float64(kb)/(1<<20))
	}
	if raw, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		fmt.Fprintf(&b, ", Linux %s", strings.TrimSpace(string(raw)))
	}
	fmt.Fprintf(&b, ", %s", runtime.Version())
	return b.String()
}

// toolVersions reads the module versions the runners were built from.
func (b *bench) toolVersions() string {
	var parts []string
	for _, t := range []struct{ bin, module string }{
		{"goose", "github.com/pressly/goose/v3"},
		{"migrate", "github.com/golang-migrate/migrate/v4"},
		{"tern", "github.com/jackc/tern/v2"},
	} {
		info, err := buildinfo.ReadFile(filepath.Join(b.bin, t.bin))
		if err != nil {
			continue
		}
		v := info.Main.Version
		if info.Main.Path != t.module {
			for _, dep := range info.Deps {
				if dep.Path == t.module {
					v = dep.Version
				}
			}
		}
		parts = append(parts, t.module+" "+v)
	}
	return strings.Join(parts, ", ")
}
