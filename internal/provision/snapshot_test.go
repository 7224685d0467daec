package provision

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestSnapshotModes(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := ctxFor(t)
	files := map[string]string{"001_users.sql": twoFiles["001_users.sql"]}
	if _, err := f.srv.Update(ctx, f.target(files), f.working, 0); err != nil {
		t.Fatal(err)
	}
	// Nothing pending: no snapshot, whatever the mode.
	target := f.target(files)
	target.Snapshot, target.SnapshotKeep = SnapshotAlways, 2
	if _, err := f.srv.Update(ctx, target, f.working, 0); err != nil {
		t.Fatal(err)
	}
	if snaps, _ := f.srv.Snapshots(ctx, f.working); len(snaps) != 0 {
		t.Fatalf("snapshots with nothing pending: %v", snaps)
	}
	// Three runs with a new file each: a snapshot before each, the newest
	// two kept, each holding the rows of before its run.
	for i := range 3 {
		c := f.db(f.working)
		if _, err := c.Exec(ctx, `INSERT INTO users VALUES ($1, 'u')`, i+1); err != nil {
			t.Fatal(err)
		}
		c.Close(ctx)
		files["00"+string(rune('2'+i))+"_more.sql"] = "CREATE TABLE more" + string(rune('a'+i)) + " (id int);"
		target := f.target(files)
		target.Snapshot, target.SnapshotKeep = SnapshotAlways, 2
		if _, err := f.srv.Update(ctx, target, f.working, 0); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1100 * time.Millisecond) // names and markers have second precision
	}
	snaps, err := f.srv.Snapshots(ctx, f.working)
	if err != nil || len(snaps) != 2 {
		t.Fatalf("snapshots = %+v, %v; want the newest 2", snaps, err)
	}
	if n := query[int64](t, f.db(snaps[0].Name), `SELECT count(*) FROM users`); n != 3 {
		t.Fatalf("the newest snapshot has %d rows, want the 3 of before the last run", n)
	}
	if n := query[int64](t, f.db(snaps[0].Name), `SELECT count(*) FROM pg_tables WHERE tablename = 'morec'`); n != 0 {
		t.Fatal("the snapshot was taken after migrating")
	}

	// Another session on the working database: always stops, auto skips.
	busy := f.db(f.working)
	defer busy.Close(ctx)
	files["009_last.sql"] = "CREATE TABLE last (id int);"
	target = f.target(files)
	target.Snapshot, target.SnapshotKeep = SnapshotAlways, 2
	_, err = f.srv.Update(ctx, target, f.working, 0)
	var se *SnapshotError
	if !errors.As(err, &se) || !se.Busy {
		t.Fatalf("always with a session connected: err = %v, want a busy SnapshotError", err)
	}
	if n := query[int64](t, busy, `SELECT count(*) FROM pg_tables WHERE tablename = 'last'`); n != 0 {
		t.Fatal("migrated although the snapshot was required and failed")
	}
	target.Snapshot = SnapshotAuto
	if _, err := f.srv.Update(ctx, target, f.working, 0); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(f.log.String(), "no snapshot before migrating") {
		t.Fatalf("the skipped snapshot was not said:\n%s", f.log)
	}
}

// TestRestoreSnapshot: a snapshot is put in place of the working database;
// the working database is kept, renamed, never dropped.
func TestRestoreSnapshot(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := ctxFor(t)
	files := map[string]string{"001_users.sql": twoFiles["001_users.sql"]}
	if _, err := f.srv.Update(ctx, f.target(files), f.working, 0); err != nil {
		t.Fatal(err)
	}
	c := f.db(f.working)
	if _, err := c.Exec(ctx, `INSERT INTO users VALUES (1, 'before')`); err != nil {
		t.Fatal(err)
	}
	c.Close(ctx)
	files["002_posts.sql"] = twoFiles["002_posts.sql"]
	target := f.target(files)
	target.Snapshot, target.SnapshotKeep = SnapshotAlways, 3
	if _, err := f.srv.Update(ctx, target, f.working, 0); err != nil {
		t.Fatal(err)
	}
	c = f.db(f.working)
	if _, err := c.Exec(ctx, `INSERT INTO users VALUES (2, 'after')`); err != nil {
		t.Fatal(err)
	}
	snaps, err := f.srv.Snapshots(ctx, f.working)
	if err != nil || len(snaps) != 1 {
		t.Fatalf("snapshots = %v, %v", snaps, err)
	}
	// A session on the working database does not stop a restore.
	kept, err := f.srv.Restore(ctx, target, f.working, snaps[0].Name)
	if err != nil {
		t.Fatal(err)
	}
	if n := query[int64](t, f.db(f.working), `SELECT count(*) FROM users`); n != 1 {
		t.Fatalf("restored working database has %d rows, want the 1 of before", n)
	}
	if n := query[int64](t, f.db(kept), `SELECT count(*) FROM users`); n != 2 {
		t.Fatalf("the replaced database %s has %d rows, want 2", kept, n)
	}
	snaps, _ = f.srv.Snapshots(ctx, f.working)
	if len(snaps) != 1 || snaps[0].Name != kept || !snaps[0].Replaced {
		t.Fatalf("after restore: %+v", snaps)
	}
	// The restored database is dbinit's working database again: it resets.
	d, _, _ := f.srv.info(ctx, f.working)
	if m, ok := d.marker(); !ok || m.Kind != KindWorking {
		t.Fatalf("restored database marker = %+v, %v", m, ok)
	}
	var refused *RefusedError
	if _, err := f.srv.Restore(ctx, target, f.working, "postgres"); !errors.As(err, &refused) {
		t.Fatalf("restore of a database that is no snapshot: err = %v", err)
	}
}
