package provision

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/savvi-studio/dbinit/migrate"
)

func TestTestDatabaseName(t *testing.T) {
	t.Parallel()
	n := TestDatabaseName("dbt_", "TestUsers/Create a user with a very long name that goes on and on and on")
	if len(n) > 63 || !strings.HasPrefix(n, "dbt_") || !strings.Contains(n, "_on_and_on_") {
		t.Fatalf("name = %q (%d bytes)", n, len(n))
	}
}

// TestSweepRemovesOldDatabases: test databases dbinit marked, older than
// MaxAge and with no session go; young ones, ones in use and ones without
// dbinit's marker (whatever their name) stay; old templates beyond the
// newest KeepTemplates go.
func TestSweepRemovesOldDatabases(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := ctxFor(t)
	// Prefixes of this test's own, so parallel tests' databases are not in
	// its way.
	suffix := strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	dbPrefix, tplPrefix := "sw"+suffix+"_", "swt"+suffix+"_"
	t.Cleanup(func() { dropAll(t, dbPrefix); dropAll(t, tplPrefix) })
	old, busy, young := dbPrefix+"killed_run", dbPrefix+"inspected", dbPrefix+"still_running"
	unmarked, copied := dbPrefix+"a_backup", dbPrefix+"copy_of_killed_run"
	for _, n := range []string{old, busy, young} {
		if err := f.srv.Create(ctx, n, ""); err != nil {
			t.Fatal(err)
		}
	}
	f.sql("CREATE DATABASE " + pgx.Identifier{unmarked}.Sanitize())
	for n, age := range map[string]time.Duration{old: 2 * time.Hour, busy: 2 * time.Hour, young: 0} {
		if _, err := f.srv.mark(ctx, n, Marker{Kind: KindTest, Created: time.Now().Add(-age).UTC().Truncate(time.Second)}); err != nil {
			t.Fatal(err)
		}
	}
	// A copy of a marked database has no comment: not dbinit's.
	f.sql("CREATE DATABASE " + pgx.Identifier{copied}.Sanitize() + " TEMPLATE " + pgx.Identifier{old}.Sanitize())
	// A comment copied by hand names another OID: not dbinit's either.
	comment := query[string](t, f.conn, `SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1`, old)
	if _, err := f.conn.Exec(ctx, "COMMENT ON DATABASE "+pgx.Identifier{unmarked}.Sanitize()+" IS '"+comment+"'"); err != nil {
		t.Fatal(err)
	}
	inUse := f.db(busy)
	// Four templates, built an hour apart; the newest is current.
	var tpls []string
	for i := range 4 {
		name := tplPrefix + strings.Repeat(strconv.Itoa(i), 16)
		tpls = append(tpls, name)
		if err := f.srv.Create(ctx, name, ""); err != nil {
			t.Fatal(err)
		}
		m := Marker{Kind: KindTemplate, Set: strings.Repeat("0", 64), Created: time.Now().Add(time.Duration(i) * time.Hour).UTC().Truncate(time.Second)}
		if _, err := f.srv.mark(ctx, name, m); err != nil {
			t.Fatal(err)
		}
		if _, err := f.conn.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{name}.Sanitize()+" IS_TEMPLATE true"); err != nil {
			t.Fatal(err)
		}
	}
	sw := Sweep{DatabasePrefix: dbPrefix, TemplatePrefix: tplPrefix, Current: tpls[3],
		Lock: &migrate.AdvisoryLock{Conn: f.conn, Key: migrate.LockKey(t.Name())}}
	if err := f.srv.SweepTestDatabases(ctx, sw); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{old: false, busy: true, young: true, unmarked: true, copied: true,
		tpls[0]: false, tpls[1]: true, tpls[2]: true, tpls[3]: true}
	for name, keep := range want {
		if got, err := f.srv.Exists(ctx, name); err != nil || got != keep {
			t.Errorf("%s exists = %v (%v), want %v", name, got, err, keep)
		}
	}
	inUse.Close(ctx)
}

// TestClaimTest: a clone made ahead and marked long ago is renamed for a
// test and marked again, so the sweep counts its age from the claim; a
// clone that is gone is reported, not an error.
func TestClaimTest(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := ctxFor(t)
	prefix := "cl" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36) + "_"
	t.Cleanup(func() { dropAll(t, prefix) })
	ahead, mine := prefix+"pool", prefix+"test"
	if err := f.srv.Create(ctx, ahead, ""); err != nil {
		t.Fatal(err)
	}
	made, err := f.srv.mark(ctx, ahead, Marker{Kind: KindTest, Created: time.Now().Add(-2 * time.Hour).UTC().Truncate(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := f.srv.ClaimTest(ctx, ahead, mine); !ok || err != nil {
		t.Fatalf("ClaimTest = %v, %v", ok, err)
	}
	if got, _ := f.srv.Exists(ctx, ahead); got {
		t.Fatal("the clone made ahead is still there under its old name")
	}
	d, ok, err := f.srv.info(ctx, mine)
	if err != nil || !ok {
		t.Fatalf("claimed database: %v %v", ok, err)
	}
	m, ok := d.marker()
	if !ok || m.Kind != KindTest || m.OID != made.OID || time.Since(m.Created) > time.Minute {
		t.Fatalf("marker after the claim: %+v (ok %v), want a test marker of OID %d made now", m, ok, made.OID)
	}
	if ok, err := f.srv.ClaimTest(ctx, ahead, prefix+"other"); ok || err != nil {
		t.Fatalf("ClaimTest of a database that is gone = %v, %v; want false, nil", ok, err)
	}
}
