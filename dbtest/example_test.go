package dbtest_test

import (
	"context"
	"testing"

	"github.com/savvi-studio/dbinit/dbtest"
)

// The README's first example: every test gets its own migrated database.
func ExampleNew() {
	testNodes := func(t *testing.T) {
		t.Parallel()
		pool := dbtest.New(t)
		_, err := pool.Exec(context.Background(), `INSERT INTO graph.nodes (kind, name, slug) VALUES ('person', 'Ada', 'ada')`)
		if err != nil {
			t.Fatal(err)
		}
	}
	_ = testNodes
}

// The README's second example: assert on the migration result, like the
// "migration adds table" fixture.
func ExampleMigration() {
	testMigration := func(t *testing.T) {
		res := dbtest.Migration(t)
		if !res.Success {
			t.Fatalf("migrations failed: %v", res.Errors)
		}
		t.Logf("%d files applied", len(res.FilesExecuted))
	}
	_ = testMigration
}

// TestMigrationAddsTable is the seed's "migration adds table" check in Go.
func TestMigrationAddsTable(t *testing.T) {
	t.Parallel()
	res := dbtest.Migration(t)
	if !res.Success || len(res.Errors) != 0 {
		t.Fatalf("migration failed: %v", res.Errors)
	}
	if len(res.FilesExecuted) != 7 {
		t.Fatalf("FilesExecuted = %v", res.FilesExecuted)
	}
	pool := dbtest.New(t)
	var exists bool
	err := pool.QueryRow(context.Background(),
		`SELECT EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = 'graph' AND tablename = 'edges')`).Scan(&exists)
	if err != nil || !exists {
		t.Fatalf("graph.edges missing: %v", err)
	}
}
