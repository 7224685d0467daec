package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/savvi-studio/dbinit/internal/emptydb"
)

// TestSIGTERM runs the real binary: SIGTERM during a long migration cancels
// the statement, rolls back, drops the unfinished build, releases the lock
// and exits non-zero within 5 seconds.
func TestSIGTERM(t *testing.T) {
	t.Parallel()
	maint := emptydb.New(t)
	bin := filepath.Join(t.TempDir(), "dbinit")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "001_slow.sql"), []byte("CREATE TABLE a (id int);\nSELECT pg_sleep(120);\n"), 0o644)
	tmpl := emptydb.Name(t) + "_t"
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "DATABASE_URL="+emptydb.URL(maint), "DBINIT_DIR="+dir,
		"DBINIT_TEMPLATE="+tmpl, "DBINIT_DATABASE="+emptydb.Name(t)+"_w")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until the slow statement runs.
	conn := emptydb.Conn(t, emptydb.Server(t))
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		_ = conn.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%CREATE TABLE a%pg_sleep(120)%' AND pid <> pg_backend_pid()`).Scan(&n)
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("the migration never started:\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("exit took %s after SIGTERM", d)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Fatalf("exit = %v, want 130\n%s", err, stderr.String())
	}
	var left int
	_ = conn.QueryRow(t.Context(), `SELECT count(*) FROM pg_database WHERE starts_with(datname, $1)`, tmpl).Scan(&left)
	if left != 0 {
		t.Fatalf("%d build databases left", left)
	}
	if strings.Contains(stderr.String(), maint.Password) {
		t.Fatal("password in the output")
	}
}
