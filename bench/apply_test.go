package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/savvi-studio/dbinit/migrate"
)

// applyMethod loads the whole corpus into the empty database db.
type applyMethod struct {
	name string
	run  func(ctx context.Context, s *server, c *benchCorpus, db string) error
}

var applyMethods = []applyMethod{
	// What `dbinit up` does: read and check the folder, connect, apply each
	// file in a transaction of its own with its history row.
	{"dbinit", engine},
	// A reference for dbinit's per-file mode without its asynchronous
	// commits: each file and a minimal history row in a transaction of its
	// own, every commit synchronous (the session's default), on one
	// connection; no LoadDir, no session reset. Its wal-syncs on fsync=on,
	// next to dbinit's, show what the trick saves.
	{"tx-per-file-sync", func(ctx context.Context, s *server, c *benchCorpus, db string) error {
		conn, err := pgx.ConnectConfig(ctx, s.forDB(db))
		if err != nil {
			return err
		}
		defer conn.Close(context.WithoutCancel(ctx))
		if _, err := conn.Exec(ctx, `CREATE TABLE bench_history (version bigint PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
			return err
		}
		for i, m := range c.set.Migrations {
			err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				if _, err := tx.Conn().PgConn().Exec(ctx, m.Up.SQL).ReadAll(); err != nil {
					return fmt.Errorf("%s: %w", c.files[i], err)
				}
				_, err := tx.Exec(ctx, `INSERT INTO bench_history (version, name) VALUES ($1, $2)`, m.Version, m.Name)
				return err
			})
			if err != nil {
				return err
			}
		}
		return nil
	}},
	// The floor: one psql session, one transaction, one file.
	{"psql-1", func(ctx context.Context, s *server, c *benchCorpus, db string) error {
		return run(s.psqlCmd(ctx, db, "-X", "-q", "-1", "-v", "ON_ERROR_STOP=1", "-f", c.all))
	}},
	// What the postgres image's docker-entrypoint-initdb.d does: one psql
	// per file, every statement committed on its own.
	{"psql-per-file", func(ctx context.Context, s *server, c *benchCorpus, db string) error {
		for _, f := range c.files {
			if err := run(s.psqlCmd(ctx, db, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", f)); err != nil {
				return err
			}
		}
		return nil
	}},
}

func engine(ctx context.Context, s *server, c *benchCorpus, db string) error {
	{
		set, err := migrate.LoadDir(c.dir)
		if err != nil {
			return err
		}
		conn, err := pgx.ConnectConfig(ctx, s.forDB(db))
		if err != nil {
			return err
		}
		defer conn.Close(context.WithoutCancel(ctx))
		m, err := migrate.New(set, migrate.Options{Version: "bench", Runner: "bench"})
		if err != nil {
			return err
		}
		res, err := m.Up(ctx, conn, migrate.UpOptions{})
		if err != nil {
			return err
		}
		if len(res.FilesExecuted) != len(c.files) {
			return fmt.Errorf("%d files applied, want %d", len(res.FilesExecuted), len(c.files))
		}
		return nil
	}
}

// BenchmarkApply loads the 300-file corpus into a fresh empty database per
// iteration, with dbinit's engine and with psql, on a server without fsync
// and on one with PostgreSQL's default durability.
func BenchmarkApply(b *testing.B) {
	c := getCorpus(b)
	for _, durable := range []bool{false, true} {
		b.Run(serverName(durable), func(b *testing.B) {
			s := getServer(b, durable)
			for _, m := range applyMethods {
				b.Run(m.name, func(b *testing.B) { benchApply(b, s, c, m) })
			}
		})
	}
}

func benchApply(b *testing.B, s *server, c *benchCorpus, m applyMethod) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	var (
		ds       []time.Duration
		syncs    int64
		syncTime time.Duration
	)
	for b.Loop() {
		b.StopTimer()
		db := newName("apply")
		s.createDB(b, db)
		s.exec(b, `SELECT pg_stat_reset_shared('wal')`)
		b.StartTimer()
		t0 := time.Now()
		if err := m.run(ctx, s, c, db); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(t0))
		b.StopTimer()
		n, d := s.walSyncs(b, db)
		syncs, syncTime = syncs+n, syncTime+d
		s.checkApplied(b, c, db)
		s.dropDB(b, db)
		b.StartTimer()
	}
	b.ReportMetric(float64(len(c.files)*len(ds))/sum(ds).Seconds(), "files/s")
	b.ReportMetric(ms(percentile(ds, 50)), "p50-ms")
	if s.name == serverName(true) {
		// WAL flushes (fsync) per run, anyone's, and their total time.
		b.ReportMetric(float64(syncs)/float64(len(ds)), "wal-syncs")
		b.ReportMetric(ms(syncTime)/float64(len(ds)), "wal-sync-ms")
	}
}

// BenchmarkLoad is the client-side part of every run: reading, checksumming
// and splitting the folder (migrate.LoadDir). No server.
func BenchmarkLoad(b *testing.B) {
	c := getCorpus(b)
	for b.Loop() {
		if _, err := migrate.LoadDir(c.dir); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(c.bytes))
}
