package bench

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/savvi-studio/dbinit/internal/provision"
)

// BenchmarkSnapshot measures what DBINIT_SNAPSHOT costs before a migration:
// the server-side copy of a working database holding the 300-file corpus
// (22 MB, 1,235 files), made with provision's Snapshot (CREATE DATABASE ...
// TEMPLATE with the server's default strategy, and the marker), on both
// servers.
func BenchmarkSnapshot(b *testing.B) {
	c := getCorpus(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	for _, durable := range []bool{false, true} {
		b.Run(serverName(durable), func(b *testing.B) {
			s := getServer(b, durable)
			tpl, size := s.corpusTemplate(b, c)
			srv := provision.New(s.maint, provision.Options{Logger: slog.New(slog.DiscardHandler), Version: "bench"})
			working := newName("snapw")
			if err := srv.Clone(ctx, tpl, working, provision.CloneOptions{}); err != nil {
				b.Fatal(err)
			}
			defer s.dropDB(b, working)
			var ds []time.Duration
			for b.Loop() {
				t0 := time.Now()
				name, err := srv.Snapshot(ctx, working, provision.SnapshotAlways, 1000)
				if err != nil || !strings.Contains(name, "_snap_") {
					b.Fatalf("snapshot: %q, %v", name, err)
				}
				ds = append(ds, time.Since(t0))
				b.StopTimer()
				s.dropDB(b, name)
				time.Sleep(1100 * time.Millisecond) // names have second precision
				b.StartTimer()
			}
			b.ReportMetric(ms(percentile(ds, 50)), "p50-ms")
			b.ReportMetric(float64(size)/1e6, "db-MB")
		})
	}
}
