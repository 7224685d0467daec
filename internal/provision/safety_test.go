package provision

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/savvi-studio/dbinit/migrate"
)

// TestReservedNamesRefused: postgres, template0, template1 and the
// maintenance database are never the working database, a clone or the
// template; neither is the template its own working database.
func TestReservedNamesRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := ctxFor(t)
	target := f.target(twoFiles)
	var refused *RefusedError
	for _, name := range []string{"postgres", "template0", "template1", f.maint.Database} {
		if _, err := f.srv.Init(ctx, target, name, false); !errors.As(err, &refused) {
			t.Errorf("working database %s: err = %v, want a RefusedError", name, err)
		}
		if _, err := f.srv.CreateIfMissing(ctx, target, name); !errors.As(err, &refused) {
			t.Errorf("up on %s: err = %v, want a RefusedError", name, err)
		}
		if err := f.srv.CloneTemplate(ctx, target, name, true); !errors.As(err, &refused) {
			t.Errorf("clone into %s: err = %v, want a RefusedError", name, err)
		}
		tt := target
		tt.Template = name
		if _, err := f.srv.EnsureTemplate(ctx, tt); !errors.As(err, &refused) {
			t.Errorf("template %s: err = %v, want a RefusedError", name, err)
		}
	}
	if _, err := f.srv.Init(ctx, target, f.template, false); !errors.As(err, &refused) {
		t.Errorf("working database = template: err = %v, want a RefusedError", err)
	}
	if n := query[int64](t, f.db("template1"), `SELECT count(*) FROM pg_namespace WHERE nspname = 'dbinit'`); n != 0 {
		t.Fatal("template1 was migrated")
	}
}

// TestNonEmptyDatabaseWithoutHistoryRefused: an existing working database
// with somebody's tables and no dbinit history is refused before anything
// is built; an empty one (extensions do not count) is adopted.
func TestNonEmptyDatabaseWithoutHistoryRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := ctxFor(t)
	f.sql("CREATE DATABASE " + pgx.Identifier{f.working}.Sanitize())
	shop := f.db(f.working)
	if _, err := shop.Exec(ctx, `CREATE TABLE orders (id int); INSERT INTO orders VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	_, err := f.srv.Init(ctx, f.target(twoFiles), f.working, false)
	var refused *RefusedError
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), "dbinit baseline --version N") {
		t.Fatalf("err = %v, want a RefusedError saying how to adopt it", err)
	}
	if ok, _ := f.srv.Exists(ctx, f.template); ok {
		t.Fatal("the template was built although the working database was refused")
	}
	if n := query[int64](t, shop, `SELECT count(*) FROM pg_tables WHERE schemaname = 'public'`); n != 1 {
		t.Fatal("the refused database was changed")
	}
	if err := f.srv.CheckAdoptable(ctx, shop); !errors.As(err, &refused) {
		t.Fatalf("CheckAdoptable = %v", err)
	}

	// Empty, with an extension: adopted, every migration applied.
	empty := f.working + "_e"
	f.sql("CREATE DATABASE " + pgx.Identifier{empty}.Sanitize())
	ec := f.db(empty)
	if _, err := ec.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pgcrypto`); err != nil {
		t.Fatal(err)
	}
	out, err := f.srv.Init(ctx, f.target(twoFiles), empty, false)
	if err != nil || out.FilesApplied != 2 || out.State != StateUpdated {
		t.Fatalf("empty database: %+v, %v", out, err)
	}
}

// TestResetRefusesForeignDatabase: DBINIT_RESET drops only a working
// database dbinit made; a copy of one (same history, another OID) is not.
func TestResetRefusesForeignDatabase(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := ctxFor(t)
	target := f.target(twoFiles)
	original := f.working + "_orig"
	if _, err := f.srv.Init(ctx, target, original, false); err != nil {
		t.Fatal(err)
	}
	oc := f.db(original)
	if _, err := oc.Exec(ctx, `INSERT INTO users VALUES (1, 'ada')`); err != nil {
		t.Fatal(err)
	}
	oc.Close(ctx)
	// A DBA's copy, pointed at by DBINIT_DATABASE.
	f.sql("CREATE DATABASE " + pgx.Identifier{f.working}.Sanitize() + " TEMPLATE " + pgx.Identifier{original}.Sanitize())
	_, err := f.srv.Init(ctx, target, f.working, true)
	var refused *RefusedError
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), "DBINIT_RESET") {
		t.Fatalf("err = %v, want a RefusedError", err)
	}
	if n := query[int64](t, f.db(f.working), `SELECT count(*) FROM users`); n != 1 {
		t.Fatal("the copy lost its rows")
	}
	// Without reset the copy is migrated like any database with a history.
	if _, err := f.srv.Init(ctx, target, f.working, false); err != nil {
		t.Fatal(err)
	}
	// clone --replace refuses it too.
	if err := f.srv.CloneTemplate(ctx, target, f.working, true); !errors.As(err, &refused) {
		t.Fatalf("clone --replace: err = %v, want a RefusedError", err)
	}
	// The original, made by dbinit, resets.
	if out, err := f.srv.Init(ctx, target, original, true); err != nil || out.State != StateReset {
		t.Fatalf("reset of dbinit's own: %+v, %v", out, err)
	}
}

// TestDriftStopsInitBeforeBuilding: an edited applied file, or a missing
// one, exits as drift before the template is rebuilt; template and working
// database stay exactly as they were.
func TestDriftStopsInitBeforeBuilding(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := ctxFor(t)
	three := with(twoFiles, "003_comments.sql", "CREATE TABLE comments (id int);")
	if _, err := f.srv.Init(ctx, f.target(three), f.working, false); err != nil {
		t.Fatal(err)
	}
	before := query[string](t, f.conn, `SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1`, f.template)
	logAt := len(f.log.String())

	edited := with(three, "001_users.sql", "CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL, email text);")
	edited["004_more.sql"] = "CREATE TABLE more (id int);"
	_, err := f.srv.Init(ctx, f.target(edited), f.working, false)
	var drift *migrate.DriftError
	if !errors.As(err, &drift) || len(drift.Changed) != 1 || drift.Changed[0].File != "db/001_users.sql" {
		t.Fatalf("edited: err = %v, want drift naming db/001_users.sql", err)
	}
	missing := map[string]string{"001_users.sql": three["001_users.sql"], "003_comments.sql": three["003_comments.sql"]}
	_, err = f.srv.Init(ctx, f.target(missing), f.working, false)
	if !errors.As(err, &drift) || len(drift.Missing) != 1 || drift.Missing[0].Version != 2 {
		t.Fatalf("missing: err = %v, want drift naming version 2", err)
	}
	after := query[string](t, f.conn, `SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1`, f.template)
	if after != before {
		t.Fatalf("the template changed:\n%s\n%s", before, after)
	}
	if strings.Contains(f.log.String()[logAt:], "building template") {
		t.Fatal("a build started despite drift")
	}
	if n := query[int64](t, f.db(f.working), `SELECT count(*) FROM pg_tables WHERE tablename = 'more'`); n != 0 {
		t.Fatal("the working database was changed")
	}
}

// TestTemplateDrift: with no working database, a template built from a file
// that was edited since is drift naming the file, and the template stays;
// Rebuild replaces it; a folder that only adds files rebuilds without
// being asked.
func TestTemplateDrift(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := ctxFor(t)
	if _, err := f.srv.EnsureTemplate(ctx, f.target(twoFiles)); err != nil {
		t.Fatal(err)
	}
	appended := with(twoFiles, "003_comments.sql", "CREATE TABLE comments (id int);")
	if out, err := f.srv.EnsureTemplate(ctx, f.target(appended)); err != nil || !out.Built {
		t.Fatalf("appended: %+v, %v", out, err)
	}
	edited := with(appended, "002_posts.sql", "CREATE TABLE posts (id bigint PRIMARY KEY);")
	target := f.target(edited)
	_, err := f.srv.EnsureTemplate(ctx, target)
	var td *TemplateDriftError
	var drift *migrate.DriftError
	if !errors.As(err, &td) || !errors.As(err, &drift) || !strings.Contains(err.Error(), "db/002_posts.sql") {
		t.Fatalf("err = %v, want a TemplateDriftError naming db/002_posts.sql", err)
	}
	if err := f.srv.CloneTemplate(ctx, target, f.working+"_c", false); !errors.As(err, &td) {
		t.Fatalf("clone: err = %v, want a TemplateDriftError", err)
	}
	if n := query[int64](t, f.conn, `SELECT count(*) FROM pg_database WHERE starts_with(datname, $1)`, f.template+"_"); n != 0 {
		t.Fatalf("%d scratch databases left", n)
	}
	target.Rebuild = true
	if out, err := f.srv.EnsureTemplate(ctx, target); err != nil || !out.Built {
		t.Fatalf("rebuild: %+v, %v", out, err)
	}
}

// TestTemplateCopiesAndFakesAreNotOurs: a copy of dbinit's template, or a
// database with dbinit's comment copied onto it, is refused as the
// template; a template written by a dbinit that did not mark OIDs yet is
// replaced.
func TestTemplateCopiesAndFakesAreNotOurs(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := ctxFor(t)
	target := f.target(twoFiles)
	if _, err := f.srv.EnsureTemplate(ctx, target); err != nil {
		t.Fatal(err)
	}
	comment := query[string](t, f.conn, `SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1`, f.template)
	copied, faked := f.template+"_copy", f.template+"_fake"
	f.sql("CREATE DATABASE " + pgx.Identifier{copied}.Sanitize() + " TEMPLATE " + pgx.Identifier{f.template}.Sanitize())
	f.sql("CREATE DATABASE " + pgx.Identifier{faked}.Sanitize())
	for _, q := range []string{"COMMENT ON DATABASE " + pgx.Identifier{faked}.Sanitize() + " IS '" + comment + "'",
		"ALTER DATABASE " + pgx.Identifier{faked}.Sanitize() + " IS_TEMPLATE true"} {
		if _, err := f.conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	var refused *RefusedError
	for _, name := range []string{copied, faked} {
		tt := f.target(with(twoFiles, "003_x.sql", "SELECT 1;"))
		tt.Template = name
		if _, err := f.srv.EnsureTemplate(ctx, tt); !errors.As(err, &refused) {
			t.Errorf("%s: err = %v, want a RefusedError", name, err)
		}
	}

	// The comment of an older dbinit, without OID, on the template itself.
	legacy := "dbinit template; set=" + target.Set.Hash() + "; files=2; latest=2; built=2026-01-02T03:04:05Z by dbinit v0.1.0"
	if _, err := f.conn.Exec(ctx, "COMMENT ON DATABASE "+pgx.Identifier{f.template}.Sanitize()+" IS '"+legacy+"'"); err != nil {
		t.Fatal(err)
	}
	if out, err := f.srv.EnsureTemplate(ctx, target); err != nil || out.Built {
		t.Fatalf("legacy template not reused: %+v, %v", out, err)
	}
	if out, err := f.srv.EnsureTemplate(ctx, f.target(with(twoFiles, "003_x.sql", "SELECT 1;"))); err != nil || !out.Built {
		t.Fatalf("legacy template not replaced: %+v, %v", out, err)
	}
}

func TestMissingOwnerRole(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	target := f.target(twoFiles)
	target.Owner = "no_such_role_for_dbinit"
	_, err := f.srv.Init(ctxFor(t), target, f.working, false)
	var missing *MissingRoleError
	if !errors.As(err, &missing) || missing.Role != target.Owner {
		t.Fatalf("err = %v, want a MissingRoleError", err)
	}
	if ok, _ := f.srv.Exists(context.Background(), f.working); ok {
		t.Fatal("the working database was created")
	}
}

// TestInterruptedCloneIsFinished: a working database whose clone finished
// on the server after its runner was killed (so it was never marked) is
// recognised by its creation-time connection limit, marked, and can be
// reset later.
func TestInterruptedCloneIsFinished(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := ctxFor(t)
	target := f.target(twoFiles)
	if _, err := f.srv.EnsureTemplate(ctx, target); err != nil {
		t.Fatal(err)
	}
	if err := f.srv.Clone(ctx, f.template, f.working, CloneOptions{}); err != nil {
		t.Fatal(err)
	}
	out, err := f.srv.Init(ctx, target, f.working, false)
	if err != nil || out.State != StateUnchanged {
		t.Fatalf("%+v, %v", out, err)
	}
	d, _, err := f.srv.info(ctx, f.working)
	if err != nil {
		t.Fatal(err)
	}
	if m, ok := d.marker(); !ok || m.Kind != KindWorking || d.creating() {
		t.Fatalf("not marked: %+v (connection limit %d)", d, d.ConnLimit)
	}
	if out, err := f.srv.Init(ctx, target, f.working, true); err != nil || out.State != StateReset {
		t.Fatalf("reset: %+v, %v", out, err)
	}
}

// hookLock runs a function the first time the lock of one name is taken.
type hookLock struct {
	inner LockFunc
	name  string
	once  sync.Once
	fn    func()
}

func (h *hookLock) lock(name string) migrate.Locker {
	if name == h.name {
		h.once.Do(h.fn)
	}
	return h.inner(name)
}

// TestInitChecksADatabaseMadeWhileBuilding: a database someone creates
// under the working database's name while the template builds is checked
// like any existing one: with objects and no history, it is refused.
func TestInitChecksADatabaseMadeWhileBuilding(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := ctxFor(t)
	target := f.target(twoFiles)
	h := &hookLock{inner: target.Lock, name: f.template, fn: func() {
		f.sql("CREATE DATABASE " + pgx.Identifier{f.working}.Sanitize())
		c := f.db(f.working)
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "CREATE TABLE orders (id int); INSERT INTO orders VALUES (1)"); err != nil {
			t.Error(err)
		}
	}}
	target.Lock = h.lock
	_, err := f.srv.Init(ctx, target, f.working, false)
	var refused *RefusedError
	if !errors.As(err, &refused) {
		t.Fatalf("err = %v, want a RefusedError", err)
	}
	if n := query[int64](t, f.db(f.working), `SELECT count(*) FROM pg_namespace WHERE nspname = 'dbinit'`); n != 0 {
		t.Fatal("the foreign database was migrated")
	}
}

// TestConnectionLimitAloneIsNotAMarker: a database with dbinit's
// creation-time connection limit (a person can set it, a restored dump
// carries it) is not dbinit's working database: its comment stays, it is
// not reset, and, holding data without history, it is refused.
func TestConnectionLimitAloneIsNotAMarker(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := ctxFor(t)
	f.sql("CREATE DATABASE " + pgx.Identifier{f.working}.Sanitize() + " CONNECTION LIMIT 1999999937")
	f.sql("COMMENT ON DATABASE " + pgx.Identifier{f.working}.Sanitize() + " IS 'invoices, keep'")
	c := f.db(f.working)
	if _, err := c.Exec(ctx, "CREATE TABLE invoices (id int); INSERT INTO invoices VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	c.Close(ctx)
	var refused *RefusedError
	for _, reset := range []bool{false, true} {
		if _, err := f.srv.Init(ctx, f.target(twoFiles), f.working, reset); !errors.As(err, &refused) {
			t.Fatalf("reset=%v: err = %v, want a RefusedError", reset, err)
		}
	}
	if got := query[string](t, f.conn, `SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1`, f.working); got != "invoices, keep" {
		t.Fatalf("comment = %q", got)
	}
	if n := query[int64](t, f.db(f.working), `SELECT count(*) FROM invoices`); n != 1 {
		t.Fatal("the data is gone")
	}
}

func TestLongTemplateNamesKeepApart(t *testing.T) {
	t.Parallel()
	a, b := strings.Repeat("shop", 12)+"_a", strings.Repeat("shop", 12)+"_b"
	if tempPrefix(a) == tempPrefix(b) {
		t.Fatalf("%q and %q share the temporary prefix %q", a, b, tempPrefix(a))
	}
	if len(tempName(a, "check")) > 63 || !leftoverRE(a).MatchString(tempName(a, "build")) || leftoverRE(b).MatchString(tempName(a, "build")) {
		t.Fatal("temporary names do not fit or cross over")
	}
}
