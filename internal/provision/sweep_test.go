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
	created, ok := testDatabaseCreated("dbt_", n)
	if !ok || time.Since(created) > time.Minute {
		t.Fatalf("created = %v, %v", created, ok)
	}
	if _, ok := testDatabaseCreated("dbt_", "shop_backup"); ok {
		t.Fatal("a foreign name has an age")
	}
}

// TestSweepRemovesOldDatabases: test databases older than MaxAge with no
// session go; young ones, ones in use and foreign names stay; old
// templates beyond the newest KeepTemplates go.
func TestSweepRemovesOldDatabases(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := ctxFor(t)
	// Prefixes of this test's own, so parallel tests' databases are not in
	// its way.
	suffix := strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	dbPrefix, tplPrefix := "sw"+suffix+"_", "swt"+suffix+"_"
	t.Cleanup(func() { dropAll(t, dbPrefix); dropAll(t, tplPrefix) })
	ts := func(d time.Duration) string { return strconv.FormatInt(time.Now().Add(-d).Unix(), 36) }
	old := dbPrefix + ts(2*time.Hour) + "_killed_run_abcdef"
	busy := dbPrefix + ts(2*time.Hour) + "_inspected_abcdef"
	young := dbPrefix + ts(0) + "_still_running_abcdef"
	foreign := dbPrefix + "notatime"
	for _, n := range []string{old, busy, young, foreign} {
		if err := f.srv.Create(ctx, n, ""); err != nil {
			t.Fatal(err)
		}
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
		m := Marker{Set: strings.Repeat("0", 64), Built: time.Now().Add(time.Duration(i) * time.Hour).UTC().Truncate(time.Second), Version: "test"}
		for _, q := range []string{"COMMENT ON DATABASE " + pgx.Identifier{name}.Sanitize() + " IS '" + m.Comment() + "'",
			"ALTER DATABASE " + pgx.Identifier{name}.Sanitize() + " IS_TEMPLATE true"} {
			if _, err := f.conn.Exec(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
	}
	sw := Sweep{DatabasePrefix: dbPrefix, TemplatePrefix: tplPrefix, Current: tpls[3],
		Lock: &migrate.AdvisoryLock{Conn: f.conn, Key: migrate.LockKey(t.Name())}}
	if err := f.srv.SweepTestDatabases(ctx, sw); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{old: false, busy: true, young: true, foreign: true,
		tpls[0]: false, tpls[1]: true, tpls[2]: true, tpls[3]: true}
	for name, keep := range want {
		if got, err := f.srv.Exists(ctx, name); err != nil || got != keep {
			t.Errorf("%s exists = %v (%v), want %v", name, got, err, keep)
		}
	}
	inUse.Close(ctx)
}
