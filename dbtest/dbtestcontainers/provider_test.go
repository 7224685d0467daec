package dbtestcontainers

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/savvi-studio/dbinit/dbtest"
)

// image is built offline from Debian packages (no registry here).
const image = "dbinit/postgres-base:17"

// TestMain starts one container through the provider and hands it to
// dbtest as TEST_DATABASE_URL, so the tests below run dbtest end to end on
// it. No registry is reachable here, so testcontainers' reaper cannot run:
// the container is terminated at the end instead.
func TestMain(m *testing.M) {
	if os.Getenv("TESTCONTAINERS_RYUK_DISABLED") == "" {
		os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if !isShort() {
		if err := start(); err != nil {
			fmt.Fprintln(os.Stderr, "dbtestcontainers:", err)
			return 1
		}
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := Terminate(ctx); err != nil {
				fmt.Fprintln(os.Stderr, "dbtestcontainers: terminate:", err)
			}
		}()
	}
	return m.Run()
}

func isShort() bool {
	for _, a := range os.Args[1:] {
		if a == "-test.short" || a == "-test.short=true" {
			return true
		}
	}
	return false
}

// start builds the image if needed and starts the container.
func start() error {
	if out, err := exec.Command("docker", "info").CombinedOutput(); err != nil {
		return fmt.Errorf("the container tests need a Docker engine (go test -short skips them): %v\n%s", err, out)
	}
	if out, err := exec.Command("bash", "../../docker/postgres/build-base.sh", "17").CombinedOutput(); err != nil {
		return fmt.Errorf("build %s: %v\n%s", image, err, out)
	}
	os.Setenv("DBTEST_IMAGE", image)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	srv, err := Provider{}.Start(ctx)
	if err != nil {
		return err
	}
	if srv.Source != "testcontainers:"+image {
		return fmt.Errorf("source = %q", srv.Source)
	}
	os.Setenv("TEST_DATABASE_URL", srv.URL)
	return nil
}

// TestDBTestOnContainer: dbtest builds the template and clones databases
// on the container the provider started.
func TestDBTestOnContainer(t *testing.T) {
	t.Parallel()
	res, err := dbtest.Migration(t, dbtest.Dir("testdata/db"))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.FilesExecuted) != 2 {
		t.Fatalf("files executed = %v", res.FilesExecuted)
	}
	pool := dbtest.New(t, dbtest.Dir("testdata/db"))
	ctx := context.Background()
	var v string
	if err := pool.QueryRow(ctx, `SELECT current_setting('server_version_num')`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v[:2] != "17" {
		t.Fatalf("server %s is not the container's PostgreSQL 17", v)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO accounts (name) VALUES ('ada')`); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM accounts`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("accounts = %d, %v", n, err)
	}
}
