package provision

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestInitLifecycle(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := ctxFor(t)

	out, err := f.srv.Init(ctx, f.target(twoFiles), f.working, false)
	if err != nil {
		t.Fatal(err)
	}
	if !out.Template.Built || out.State != StateCreated || out.FilesApplied != 0 {
		t.Fatalf("fresh: %+v", out)
	}
	work := f.db(f.working)
	if n := query[int64](t, work, `SELECT count(*) FROM dbinit.schema_migrations`); n != 2 {
		t.Fatalf("history rows = %d", n)
	}

	out, err = f.srv.Init(ctx, f.target(twoFiles), f.working, false)
	if err != nil || out.Template.Built || out.State != StateUnchanged {
		t.Fatalf("no-op: %+v %v", out, err)
	}

	// Data, then a new file: the working database gets only that file and
	// keeps its rows.
	if _, err := work.Exec(ctx, `INSERT INTO users VALUES (1, 'ada')`); err != nil {
		t.Fatal(err)
	}
	three := with(twoFiles, "003_comments.sql", "CREATE TABLE comments (id bigint PRIMARY KEY, body text);")
	out, err = f.srv.Init(ctx, f.target(three), f.working, false)
	if err != nil || !out.Template.Built || out.State != StateUpdated || out.FilesApplied != 1 {
		t.Fatalf("new file: %+v %v", out, err)
	}
	if n := query[int64](t, work, `SELECT count(*) FROM users`); n != 1 {
		t.Fatal("the working database lost its data")
	}

	// Reset: dropped and cloned again, said loudly.
	work.Close(ctx)
	out, err = f.srv.Init(ctx, f.target(three), f.working, true)
	if err != nil || out.State != StateReset {
		t.Fatalf("reset: %+v %v", out, err)
	}
	if !strings.Contains(f.log.String(), "DROPPING the working database") {
		t.Fatalf("reset not announced:\n%s", f.log)
	}
	if n := query[int64](t, f.db(f.working), `SELECT count(*) FROM users`); n != 0 {
		t.Fatal("reset kept the data")
	}
}

// TestInitFailureLeavesWorkingDatabase: a broken new file stops init at the
// template build; the working database is not touched.
func TestInitFailureLeavesWorkingDatabase(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := ctxFor(t)
	if _, err := f.srv.Init(ctx, f.target(twoFiles), f.working, false); err != nil {
		t.Fatal(err)
	}
	_, err := f.srv.Init(ctx, f.target(with(twoFiles, "003_broken.sql", "CREATE TABLE broken (id int);\nSELECT nope;")), f.working, false)
	if err == nil || !strings.Contains(err.Error(), "db/003_broken.sql:2:8") {
		t.Fatalf("err = %v", err)
	}
	if n := query[int64](t, f.db(f.working), `SELECT count(*) FROM pg_tables WHERE tablename = 'broken'`); n != 0 {
		t.Fatal("the working database was touched by a failed build")
	}
}

func TestCloneTemplate(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := ctxFor(t)
	target := f.target(twoFiles)
	name := f.working + "_c"
	if err := f.srv.CloneTemplate(ctx, target, name, false); err != nil {
		t.Fatal(err)
	}
	c := f.db(name)
	if n := query[int64](t, c, `SELECT count(*) FROM dbinit.schema_migrations`); n != 2 {
		t.Fatalf("clone history = %d", n)
	}
	if _, err := c.Exec(ctx, `INSERT INTO users VALUES (1, 'ada')`); err != nil {
		t.Fatal(err)
	}
	c.Close(ctx)
	var exists *ExistsError
	if err := f.srv.CloneTemplate(ctx, target, name, false); !errors.As(err, &exists) || !strings.Contains(err.Error(), "--replace") {
		t.Fatalf("err = %v, want an ExistsError", err)
	}
	if err := f.srv.CloneTemplate(ctx, target, name, true); err != nil {
		t.Fatal(err)
	}
	if n := query[int64](t, f.db(name), `SELECT count(*) FROM users`); n != 0 {
		t.Fatal("--replace kept the old rows")
	}
	var refused *RefusedError
	for _, bad := range []string{f.template, "template1", "postgres"} {
		if err := f.srv.CloneTemplate(ctx, target, bad, true); !errors.As(err, &refused) {
			t.Errorf("clone into %s: err = %v, want a RefusedError", bad, err)
		}
	}
}

func TestCreateIfMissing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := ctxFor(t)
	target := f.target(twoFiles)
	created, err := f.srv.CreateIfMissing(ctx, target, f.working)
	if err != nil || !created {
		t.Fatalf("created = %v, %v", created, err)
	}
	if n := query[int64](t, f.db(f.working), `SELECT count(*) FROM pg_tables WHERE schemaname = 'public'`); n != 0 {
		t.Fatal("the new database is not empty")
	}
	if created, err = f.srv.CreateIfMissing(ctx, target, f.working); err != nil || created {
		t.Fatalf("second call: created = %v, %v", created, err)
	}
}

func TestCloneStrategy(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := ctxFor(t)
	if _, err := f.srv.EnsureTemplate(ctx, f.target(twoFiles)); err != nil {
		t.Fatal(err)
	}
	for i, s := range []string{StrategyDefault, StrategyWALLog, StrategyFileCopy, "FILE_COPY"} {
		name := f.working + "_s" + string(rune('0'+i))
		if err := f.srv.Clone(ctx, f.template, name, CloneOptions{Strategy: s}); err != nil {
			t.Errorf("strategy %q: %v", s, err)
		}
	}
	err := f.srv.Clone(ctx, f.template, f.working+"_bad", CloneOptions{Strategy: "rsync"})
	if err == nil || !strings.Contains(err.Error(), `"rsync"`) {
		t.Fatalf("err = %v", err)
	}
	if ok, _ := f.srv.Exists(context.Background(), f.working+"_bad"); ok {
		t.Fatal("a clone with a bad strategy was created")
	}
}
