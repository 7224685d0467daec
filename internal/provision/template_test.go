package provision

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/savvi-studio/dbinit/internal/catalog"
	"github.com/savvi-studio/dbinit/internal/emptydb"
	"github.com/savvi-studio/dbinit/migrate"
)

func TestEnsureTemplateBuildsThenReuses(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := ctxFor(t)
	target := f.target(twoFiles)
	out, err := f.srv.EnsureTemplate(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	if !out.Built || len(out.Result.FilesExecuted) != 2 {
		t.Fatalf("first run: %+v", out)
	}
	ok := query[bool](t, f.conn, `SELECT datistemplate AND NOT datallowconn FROM pg_database WHERE datname = $1`, f.template)
	if !ok {
		t.Fatal("template not marked IS_TEMPLATE and closed to connections")
	}
	comment := query[string](t, f.conn, `SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1`, f.template)
	m, parsed := ParseMarker(comment)
	if !parsed || m.Set != target.Set.Hash() || m.Files != 2 || m.Latest != 2 || m.Version != "test" {
		t.Fatalf("marker = %+v (%v) from %q", m, parsed, comment)
	}
	out, err = f.srv.EnsureTemplate(ctx, target)
	if err != nil || out.Built {
		t.Fatalf("second run rebuilt: %+v %v", out, err)
	}
}

// TestBuildAppliesEnumValueAcrossFiles: the template build commits per
// file, as up does, so a file can use an enum value the file before it
// added.
func TestBuildAppliesEnumValueAcrossFiles(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	out, err := f.srv.EnsureTemplate(ctxFor(t), f.target(map[string]string{
		"001_type.sql":  "CREATE TYPE status AS ENUM ('new');",
		"002_value.sql": "ALTER TYPE status ADD VALUE 'done';",
		"003_use.sql":   "CREATE TABLE s (v status DEFAULT 'done');\nINSERT INTO s VALUES ('done');",
	}))
	if err != nil || !out.Built {
		t.Fatalf("%+v %v", out, err)
	}
}

// TestFailedBuildKeepsTheOldTemplate: a broken new file fails the build
// with its place; the previous template stays, and no build database is
// left behind.
func TestFailedBuildKeepsTheOldTemplate(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := ctxFor(t)
	good := f.target(twoFiles)
	if _, err := f.srv.EnsureTemplate(ctx, good); err != nil {
		t.Fatal(err)
	}
	out, err := f.srv.EnsureTemplate(ctx, f.target(with(twoFiles, "003_broken.sql", "CREATE TABLE broken (id int);\nSELEC 1;")))
	var se *migrate.SQLError
	if !errors.As(err, &se) || se.Path != "db/003_broken.sql" || se.Line != 2 {
		t.Fatalf("err = %v", err)
	}
	// The build started from the old template: only the new file ran.
	if out == nil || !out.Built || out.From != f.template || out.Result == nil || len(out.Result.FilesExecuted) != 0 {
		t.Fatalf("outcome = %+v", out)
	}
	comment := query[string](t, f.conn, `SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1`, f.template)
	if m, _ := ParseMarker(comment); m.Set != good.Set.Hash() {
		t.Fatalf("the template changed after a failed build: %q", comment)
	}
	if n := query[int64](t, f.conn, `SELECT count(*) FROM pg_database WHERE starts_with(datname, $1)`, f.template+"_"); n != 0 {
		t.Fatalf("%d build databases left behind", n)
	}
}

// TestRebuildWithConnectionHeld: someone connected to the template does not
// block or break a rebuild.
func TestRebuildWithConnectionHeld(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := ctxFor(t)
	if _, err := f.srv.EnsureTemplate(ctx, f.target(twoFiles)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.conn.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{f.template}.Sanitize()+" ALLOW_CONNECTIONS true"); err != nil {
		t.Fatal(err)
	}
	held := f.db(f.template)
	done := make(chan error, 1)
	go func() {
		_, err := f.srv.EnsureTemplate(ctx, f.target(with(twoFiles, "003_more.sql", "CREATE TABLE more (id int);")))
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("rebuild blocked by a connection to the template")
	}
	if err := held.Ping(context.Background()); err == nil {
		t.Fatal("the session on the old template survived the swap")
	}
	comment := query[string](t, f.conn, `SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1`, f.template)
	if !strings.Contains(comment, "files=3") {
		t.Fatalf("template comment = %q", comment)
	}
	if !strings.Contains(f.log.String(), "ended the sessions on a database dbinit renames") {
		t.Fatalf("ending the session was not logged:\n%s", f.log)
	}
}

// TestInterruptedBuildLeavesNothing: cancelling a build (SIGTERM) cancels
// the running statement on the server, drops the build database and
// releases the lock.
func TestInterruptedBuildLeavesNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	target := f.target(map[string]string{"001_slow.sql": "CREATE TABLE a (id int);\nSELECT pg_sleep(60);"})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(1500*time.Millisecond, cancel)
	start := time.Now()
	_, err := f.srv.EnsureTemplate(ctx, target)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 7*time.Second {
		t.Fatalf("took %s to stop after the cancel", d)
	}
	if n := query[int64](t, f.conn, `SELECT count(*) FROM pg_database WHERE starts_with(datname, $1)`, f.template); n != 0 {
		t.Fatal("build database left after interruption")
	}
	if n := query[int64](t, f.conn, `SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60)%' AND pid <> pg_backend_pid()`); n != 0 {
		t.Fatal("the statement still runs on the server")
	}
	if n := query[int64](t, f.conn, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`); n != 0 {
		t.Fatal("lock not released")
	}
}

// leftover makes a database as a build that died would leave it: created,
// marked as a build, with dbinit.origin inside.
func (f *fixture) leftover(name, kind string) {
	f.t.Helper()
	ctx := ctxFor(f.t)
	if err := f.srv.Create(ctx, name, ""); err != nil {
		f.t.Fatal(err)
	}
	m, err := f.srv.mark(ctx, name, Marker{Kind: kind, Set: strings.Repeat("0", 64)})
	if err != nil {
		f.t.Fatal(err)
	}
	conn := f.db(name)
	defer conn.Close(ctx)
	if err := writeOrigin(ctx, conn, m); err != nil {
		f.t.Fatal(err)
	}
}

// TestLeftoversRemoved: a build database left by a killed runner is removed
// by the next run, even one that has nothing else to do; one with a
// session is left alone; one named like a leftover without dbinit's marker
// (a backup, a copy) is never touched.
func TestLeftoversRemoved(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := ctxFor(t)
	target := f.target(twoFiles)
	if _, err := f.srv.EnsureTemplate(ctx, target); err != nil {
		t.Fatal(err)
	}
	dead, busy, old := f.template+"_build_0badc0de", f.template+"_build_0badbeef", f.template+"_old_0ddba11a"
	f.leftover(dead, KindBuild)
	f.leftover(busy, KindBuild)
	// A replaced template that a SIGTERM right after the swap left: marked
	// old by the swap, closed to connections like the template was.
	f.leftover(old, KindOld)
	// A template a DBA renamed to keep: its marker says template; theirs now.
	renamed := f.template + "_old_20251231"
	f.leftover(renamed, KindTemplate)
	if _, err := f.conn.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{old}.Sanitize()+" ALLOW_CONNECTIONS false"); err != nil {
		t.Fatal(err)
	}
	// A build whose runner was killed during CREATE DATABASE: the backend
	// finished creating it, nobody marked it.
	unmarked := f.template + "_build_c0ffee00"
	if err := f.srv.Create(ctx, unmarked, ""); err != nil {
		t.Fatal(err)
	}
	lookalike, backup := f.template+"_old_12345678", f.template+"_old_20240131"
	for _, n := range []string{lookalike, backup} {
		f.sql("CREATE DATABASE " + pgx.Identifier{n}.Sanitize())
	}
	inUse := f.db(busy)
	if _, err := f.srv.EnsureTemplate(ctx, target); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(f.log.String(), "dropping leftover of an interrupted build") {
		t.Fatalf("leftover not reported:\n%s", f.log)
	}
	for name, want := range map[string]bool{dead: false, old: false, unmarked: false, busy: true, lookalike: true, backup: true, renamed: true} {
		if got, err := f.srv.Exists(ctx, name); err != nil || got != want {
			t.Errorf("%s exists = %v (%v), want %v", name, got, err, want)
		}
	}
	inUse.Close(ctx)
}

// TestTemplateNameOfSomebodyElsesDatabase: dbinit never replaces (and so
// drops) a database it did not make, nor one PostgreSQL needs.
func TestTemplateNameOfSomebodyElsesDatabase(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := ctxFor(t)
	f.sql("CREATE DATABASE " + pgx.Identifier{f.template}.Sanitize())
	if _, err := f.db(f.template).Exec(ctx, "CREATE TABLE customers (id int); INSERT INTO customers VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	_, err := f.srv.EnsureTemplate(ctx, f.target(twoFiles))
	var refused *RefusedError
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), "has no dbinit marker") {
		t.Fatalf("err = %v, want a RefusedError", err)
	}
	if n := query[int64](t, f.db(f.template), `SELECT count(*) FROM customers`); n != 1 {
		t.Fatal("somebody else's database was touched")
	}
	for _, name := range []string{"template1", "template0", "postgres", f.maint.Database} {
		target := f.target(twoFiles)
		target.Template = name
		if _, err := f.srv.EnsureTemplate(ctx, target); !errors.As(err, &refused) {
			t.Errorf("template %s: err = %v, want a RefusedError", name, err)
		}
	}
}

// TestTenRunnersBuildOnce: ten runners, each with its own maintenance
// connection, started at the same instant, build the template once.
func TestTenRunnersBuildOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const runners = 10
	servers := make([]*Server, runners)
	targets := make([]Target, runners)
	for i := range runners {
		conn := emptydb.Conn(t, f.maint)
		servers[i] = New(conn, Options{})
		targets[i] = f.targetOn(conn, twoFiles)
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	built := make([]bool, runners)
	errs := make([]error, runners)
	for i := range runners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			out, err := servers[i].EnsureTemplate(ctxFor(t), targets[i])
			errs[i] = err
			built[i] = out != nil && out.Built
		}()
	}
	close(start)
	wg.Wait()
	n := 0
	for i := range runners {
		if errs[i] != nil {
			t.Fatalf("runner %d: %v", i, errs[i])
		}
		if built[i] {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("template built %d times, want once", n)
	}
}

func TestMarkerRoundTrip(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 29, 5, 9, 45, 0, time.UTC)
	for _, m := range []Marker{
		{Kind: KindTemplate, Set: strings.Repeat("ab", 32), Files: 7, Latest: 12, Created: at, Version: "v1.2.0", OID: 16384, ID: strings.Repeat("0f", 16)},
		{Kind: KindWorking, Created: at, Version: "dev", OID: 4294967295, ID: strings.Repeat("1e", 16)},
		{Kind: KindTest, Created: at, Version: "dbtest", OID: 1, ID: strings.Repeat("2d", 16)},
	} {
		got, ok := ParseMarker(m.Comment())
		if !ok || got != m {
			t.Errorf("ParseMarker(%q) = %+v, %v", m.Comment(), got, ok)
		}
	}
	// The comment a dbinit that did not mark OIDs wrote on its templates.
	legacy := "dbinit template; set=" + strings.Repeat("ab", 32) + "; files=7; latest=7; built=2026-01-02T03:04:05Z by dbinit v0.1.0"
	if m, ok := ParseMarker(legacy); !ok || m.OID != 0 || m.Kind != KindTemplate || m.Files != 7 {
		t.Errorf("legacy marker = %+v, %v", m, ok)
	}
	for _, c := range []string{"", "dbinit template", "dbinit template; set=xyz; files=1; latest=1; built=now by dbinit v1",
		"a backup of the shop", "dbinit working; created=2026-01-02T03:04:05Z by dbinit v1; oid=12; id=short",
		"dbinit bogus; created=2026-01-02T03:04:05Z by dbinit v1; oid=12; id=" + strings.Repeat("0", 32)} {
		if _, ok := ParseMarker(c); ok {
			t.Errorf("ParseMarker(%q) accepted", c)
		}
	}
}

func TestTempPrefixKeepsNamesShort(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("ä", 31) // 62 bytes
	name := tempName(long, "build")
	if len(name) > 63 {
		t.Fatalf("%q is %d bytes", name, len(name))
	}
	if !leftoverRE(long).MatchString(name) {
		t.Fatalf("%q does not match its own leftover pattern", name)
	}
	if !strings.HasPrefix(name, tempPrefix(long)) || strings.ContainsRune(name, '\uFFFD') {
		t.Fatalf("%q cut a character in half", name)
	}
}

// TestExtendedTemplateEqualsAFreshBuild: a folder that only adds files
// builds the new template from a copy of the old one, applying only the
// new files; the result has the schema and history rows of a template
// built from every file. A template of another name (dbtest's, one per
// set hash) starts from its newest sibling the same way.
func TestExtendedTemplateEqualsAFreshBuild(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := ctxFor(t)
	files := map[string]string{
		"001_users.sql": "CREATE TABLE users (id bigint PRIMARY KEY, email text);\nINSERT INTO users VALUES (1, 'a@example.com');",
		"002_idx.sql":   "CREATE INDEX users_email ON users (email);",
	}
	if _, err := f.srv.EnsureTemplate(ctx, f.target(files)); err != nil {
		t.Fatal(err)
	}
	more := with(files, "003_posts.sql", "CREATE TABLE posts (id int, user_id bigint REFERENCES users);\nCOMMENT ON TABLE posts IS 'p';")
	out, err := f.srv.EnsureTemplate(ctx, f.target(more))
	if err != nil {
		t.Fatal(err)
	}
	if !out.Built || out.From != f.template || len(out.Result.FilesExecuted) != 1 {
		t.Fatalf("outcome = %+v (%v)", out, out.Result.FilesExecuted)
	}
	// A fresh build of the same files, under another name.
	fresh := f.target(more)
	fresh.Template = f.template + "_fresh"
	if out, err := f.srv.EnsureTemplate(ctx, fresh); err != nil || out.From != "" {
		t.Fatalf("fresh build: %+v %v", out, err)
	}
	a, b := f.copyOf(f.template), f.copyOf(fresh.Template)
	sa, err := catalog.Take(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := catalog.Take(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if missing, extra := catalog.Diff(sa.Fingerprint(), sb.Fingerprint()); len(missing)+len(extra) > 0 {
		t.Fatalf("schemas differ:\n%v\n%v", missing, extra)
	}
	rows := `SELECT string_agg(format('%s %s %s %s %s', version, name, checksum, state, statements_done), '; ' ORDER BY version) FROM dbinit.schema_migrations`
	if ha, hb := query[string](t, a, rows), query[string](t, b, rows); ha != hb {
		t.Fatalf("histories differ:\n%s\n%s", ha, hb)
	}
	if n := query[int64](t, a, `SELECT count(*) FROM users`); n != 1 {
		t.Fatalf("the seed row: %d", n)
	}

	// A sibling: a new name, found by prefix.
	sib := f.target(with(more, "004_tags.sql", "CREATE TABLE tags (id int);"))
	sib.Template, sib.Siblings = f.template+"_sib", f.template
	out, err = f.srv.EnsureTemplate(ctx, sib)
	if err != nil || out.From == "" || len(out.Result.FilesExecuted) != 1 {
		t.Fatalf("sibling: %+v %v", out, err)
	}
}
