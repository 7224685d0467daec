package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// initCmd is `dbinit init` run as a process, the way an init container
// runs it: over TCP with the password, working database db, template tpl.
func initCmd(ctx context.Context, bin string, s *server, c *benchCorpus, db, tpl string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, bin, "init")
	cmd.Env = []string{
		"DATABASE_URL=" + s.url,
		"DBINIT_DIR=" + c.dir,
		"DBINIT_DATABASE=" + db,
		"DBINIT_TEMPLATE=" + tpl,
	}
	return cmd
}

// runInit runs `dbinit init` and checks what its summary line says it did.
func runInit(ctx context.Context, bin string, s *server, c *benchCorpus, db, tpl string, want ...string) error {
	cmd := initCmd(ctx, bin, s, c, db, tpl)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("dbinit init: %w\n%s", err, tail(out.String(), 20))
	}
	for _, w := range want {
		if !strings.Contains(out.String(), w) {
			return fmt.Errorf("dbinit init: output lacks %q:\n%s", w, tail(out.String(), 5))
		}
	}
	return nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// BenchmarkInit runs the built binary, `dbinit init`:
//
//   - full: a fresh template name and working database name per iteration,
//     so every run builds the template from the 300 files and clones the
//     working database from it (what the first start of an environment
//     does);
//   - noop: the same names again with nothing changed, including the
//     process start (what every later start does). Target: at most 150 ms.
func BenchmarkInit(b *testing.B) {
	c := getCorpus(b)
	bin := dbinitBinary(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	b.Run("full", func(b *testing.B) {
		for _, durable := range []bool{false, true} {
			b.Run(serverName(durable), func(b *testing.B) {
				s := getServer(b, durable)
				for b.Loop() {
					db, tpl := newName("init"), newName("init_tpl")
					if err := runInit(ctx, bin, s, c, db, tpl, "template_state=built", "database_state=created"); err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					s.dropDB(b, db)
					s.dropTemplate(b, tpl)
					b.StartTimer()
				}
			})
		}
	})
	// extend: the development loop. Template and working database exist
	// for the 300 files; one file is added; init builds the new template
	// from a copy of the old one with only that file, and applies it to
	// the working database. Compare with full (every file, from empty):
	// the goal is at most 0.3x.
	b.Run("extend", func(b *testing.B) {
		more := extendedCorpus(b, c)
		for _, durable := range []bool{false, true} {
			b.Run(serverName(durable), func(b *testing.B) {
				s := getServer(b, durable)
				for b.Loop() {
					b.StopTimer()
					db, tpl := newName("ext"), newName("ext_tpl")
					if err := runInit(ctx, bin, s, c, db, tpl, "template_state=built"); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
					if err := runInit(ctx, bin, s, more, db, tpl, "template_state=extended", "template_files=1", "files_applied=1"); err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					s.dropDB(b, db)
					s.dropTemplate(b, tpl)
					b.StartTimer()
				}
			})
		}
	})
	b.Run("noop", func(b *testing.B) {
		for _, durable := range []bool{false, true} {
			b.Run(serverName(durable), func(b *testing.B) {
				s := getServer(b, durable)
				db, tpl := newName("noop"), newName("noop_tpl")
				if err := runInit(ctx, bin, s, c, db, tpl, "template_state=built"); err != nil {
					b.Fatal(err)
				}
				defer func() {
					s.dropDB(b, db)
					s.dropTemplate(b, tpl)
				}()
				// A few runs per iteration, for a median worth the name;
				// ns/op is per run.
				const runs = 4
				var ds []time.Duration
				for b.Loop() {
					for range runs {
						t0 := time.Now()
						if err := runInit(ctx, bin, s, c, db, tpl, "template_state=reused", "database_state=unchanged"); err != nil {
							b.Fatal(err)
						}
						ds = append(ds, time.Since(t0))
					}
				}
				b.ReportMetric(float64(sum(ds).Nanoseconds())/float64(len(ds)), "ns/op")
				b.ReportMetric(ms(percentile(ds, 50)), "p50-ms")
				b.ReportMetric(ms(percentile(ds, 100)), "max-ms")
			})
		}
	})
	// The floor of a process that connects and asks one question, the way
	// dbinit does (TCP, the password): psql -c 'select 1'.
	b.Run("floor-psql", func(b *testing.B) {
		s := getServer(b, false)
		const runs = 4
		var ds []time.Duration
		for b.Loop() {
			for range runs {
				cmd := exec.CommandContext(ctx, s.psql, "-X", "-q", "-d", s.url, "-c", "select 1")
				t0 := time.Now()
				if out, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("psql: %v %s", err, out)
				}
				ds = append(ds, time.Since(t0))
			}
		}
		b.ReportMetric(float64(sum(ds).Nanoseconds())/float64(len(ds)), "ns/op")
		b.ReportMetric(ms(percentile(ds, 50)), "p50-ms")
		b.ReportMetric(ms(percentile(ds, 100)), "max-ms")
	})
}

// extendedCorpus is the corpus plus one file, in a folder of its own.
func extendedCorpus(b *testing.B, c *benchCorpus) *benchCorpus {
	b.Helper()
	dir := filepath.Join(workDir(b), "db-plus-one")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	for _, f := range c.files {
		raw, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), raw, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	extra := fmt.Sprintf("%03d_add_audit_notes.sql", corpusFiles+1)
	if err := os.WriteFile(filepath.Join(dir, extra), []byte("CREATE TABLE audit.notes (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body text NOT NULL);\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	return &benchCorpus{dir: dir}
}
