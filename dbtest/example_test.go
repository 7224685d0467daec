package dbtest_test

import (
	"context"
	"os"
	"testing"

	"github.com/savvi-studio/dbinit/dbtest"
)

// TestMain points dbtest at this package's fixture: the project's db/ is
// the user's schema, and no test depends on what it holds.
func TestMain(m *testing.M) {
	os.Setenv("DBINIT_DIR", "testdata/db")
	os.Exit(m.Run())
}

// The README's examples, compiled and run here; readme_test.go checks that
// the README shows them exactly as they are here.

func TestAccounts(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t) // *pgxpool.Pool on a fresh clone of the template; dropped when the test ends
	_, err := pool.Exec(context.Background(), `INSERT INTO app.accounts (email, name) VALUES ('ada@example.com', 'Ada')`)
	if err != nil {
		t.Fatal(err)
	}
}

func TestMigration(t *testing.T) {
	res, err := dbtest.Migration(t) // the template build's *migrate.Result, or the error naming FILE:LINE:COL
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d files applied in %s", len(res.FilesExecuted), res.Duration)
}
