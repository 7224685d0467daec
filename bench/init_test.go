package bench

import (
	"context"
	"fmt"
	"os/exec"
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
}
