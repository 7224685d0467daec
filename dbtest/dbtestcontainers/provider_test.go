package dbtestcontainers

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/savvi-studio/dbinit/internal/provision"
	"github.com/savvi-studio/dbinit/migrate"
)

func TestMain(m *testing.M) {
	// No registry here: the reaper image cannot be pulled.
	if os.Getenv("TESTCONTAINERS_RYUK_DISABLED") == "" {
		os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	}
	code := m.Run()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	_ = Terminate(ctx)
	cancel()
	os.Exit(code)
}

// TestProviderWithLocalImage starts the offline image through
// testcontainers-go and builds the template and a clone on it, as dbtest
// does when this provider is the server source.
func TestProviderWithLocalImage(t *testing.T) {
	if testing.Short() {
		t.Skip("container test")
	}
	requireDocker(t)
	image := "dbinit/postgres-base:17"
	if out, err := exec.Command("bash", "../../docker/postgres/build-base.sh", "17").CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", image, err, out)
	}
	t.Setenv("DBTEST_IMAGE", image)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	srv, err := Provider{}.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := pgx.ParseConfig(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	maint, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		t.Fatal(err)
	}
	defer maint.Close(ctx)
	set, err := migrate.LoadDir("../../db")
	if err != nil {
		t.Fatal(err)
	}
	p := &provision.Provisioner{Maint: maint, Set: set, Lock: &migrate.AdvisoryLock{Conn: maint, Key: migrate.LockKey("tc"), Timeout: time.Minute}}
	out, err := p.EnsureTemplate(ctx, "tc_template")
	if err != nil || !out.Built || !out.Result.Success {
		t.Fatalf("template: %v %+v", err, out)
	}
	if err := p.Clone(ctx, "tc_template", "tc_clone"); err != nil {
		t.Fatal(err)
	}
	clone, err := pgx.ConnectConfig(ctx, func() *pgx.ConnConfig { c := cc.Copy(); c.Database = "tc_clone"; return c }())
	if err != nil {
		t.Fatal(err)
	}
	defer clone.Close(ctx)
	var n int
	if err := clone.QueryRow(ctx, `SELECT count(*) FROM dbinit.schema_migrations`).Scan(&n); err != nil || n != len(set.Migrations) {
		t.Fatalf("clone history: %d %v", n, err)
	}
}

func requireDocker(t *testing.T) {
	t.Helper()
	if err := exec.Command("docker", "info").Run(); err != nil {
		if ci := os.Getenv("CI"); ci == "true" || ci == "1" {
			t.Fatalf("no Docker engine: %v", err)
		}
		t.Skipf("SKIPPING: no Docker engine (%v)", err)
	}
}
