//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package testserver

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func startLocal(t *testing.T, opts LocalOptions) *Cluster {
	t.Helper()
	needLocal(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	c, err := StartLocal(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("StartLocal (initdb + start) took %v; port %d, data %s", time.Since(start).Round(time.Millisecond), c.Port(), c.DataDir())
	t.Cleanup(func() { c.Stop(context.Background()) })
	return c
}

func TestStartLocalDefaults(t *testing.T) {
	t.Parallel()
	c := startLocal(t, LocalOptions{
		Password: "s3cret 'quoted'",
		Settings: map[string]string{"max_connections": "300", "application_name": `it's a \ test`},
	})
	conn := connect(t, c.URL())
	for setting, want := range map[string]string{
		"fsync":               "off",
		"synchronous_commit":  "off",
		"full_page_writes":    "off",
		"max_connections":     "300",
		"listen_addresses":    "127.0.0.1",
		"port":                strconv.Itoa(c.Port()),
		"shared_buffers":      "128MB",
		"server_encoding":     "UTF8",
		"application_name":    `it's a \ test`,
		"password_encryption": "scram-sha-256",
	} {
		if got := queryString(t, conn, "SHOW "+setting); got != want {
			t.Errorf("SHOW %s = %q, want %q", setting, got, want)
		}
	}
	if v := c.Version(); v < 90000 {
		t.Errorf("Version = %d", v)
	}
	if s := c.Server(); s.URL != c.URL() || !strings.HasPrefix(s.Source, "local:") {
		t.Errorf("Server() = %+v", s)
	}
	expectAuthFailure(t, withPassword(t, c.URL(), "s3cret"))

	fi, err := os.Stat(c.DataDir())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("data dir mode %v", fi.Mode())
	}
	if os.Geteuid() == 0 {
		ra, _ := lookupRunAs()
		if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != ra.uid {
			t.Errorf("running as root: data dir owned by uid %d, want postgres (%d)", st.Uid, ra.uid)
		}
	}
	if _, err := os.Stat(c.LogFile()); err != nil {
		t.Errorf("log file: %v", err)
	}

	base := c.baseDir
	conn.Close(context.Background())
	if err := c.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(base); !os.IsNotExist(err) {
		t.Errorf("after Stop, %s: %v (want it removed)", base, err)
	}
	if err := c.Stop(context.Background()); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if err := c.Restart(context.Background()); err == nil {
		t.Error("Restart after Stop succeeded")
	}
}

func TestStartLocalDurableKillRestart(t *testing.T) {
	t.Parallel()
	c := startLocal(t, LocalOptions{Durable: true})
	ctx := context.Background()
	conn := connect(t, c.URL())
	for _, setting := range []string{"fsync", "synchronous_commit", "full_page_writes"} {
		if got := queryString(t, conn, "SHOW "+setting); got != "on" {
			t.Errorf("Durable: SHOW %s = %q, want on", setting, got)
		}
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE t (v text); INSERT INTO t VALUES ('before the crash')"); err != nil {
		t.Fatal(err)
	}
	pm := postmasterPID(c.DataDir())
	kids := childPIDs(pm)
	if len(kids) == 0 {
		t.Errorf("postmaster %d has no children?", pm)
	}

	c.Kill()
	for _, p := range append(kids, pm) {
		if processAlive(p) {
			t.Errorf("after Kill, process %d (%s) is alive", p, processName(p))
		}
	}
	if _, err := conn.Exec(ctx, "SELECT 1"); err == nil {
		t.Error("query on a killed server succeeded")
	}
	c.Kill() // no-op on a dead server

	port := c.Port()
	if err := c.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if c.Port() != port {
		t.Errorf("port changed from %d to %d", port, c.Port())
	}
	conn2 := connect(t, c.URL())
	if got := queryString(t, conn2, "SELECT v FROM t"); got != "before the crash" {
		t.Errorf("after crash recovery: %q", got)
	}
	if !strings.Contains(tail(c.LogFile(), 200), "not properly shut down") {
		t.Errorf("the log does not show crash recovery:\n%s", tail(c.LogFile(), 30))
	}

	// Restart of a running server.
	old := postmasterPID(c.DataDir())
	if err := c.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if postmasterPID(c.DataDir()) == old || processAlive(old) {
		t.Errorf("Restart did not restart the postmaster (pid %d)", old)
	}
	conn3 := connect(t, c.URL())
	if got := queryString(t, conn3, "SELECT v FROM t"); got != "before the crash" {
		t.Errorf("after restart: %q", got)
	}
	conn2.Close(ctx)
	conn3.Close(ctx)

	pm = postmasterPID(c.DataDir())
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if processAlive(pm) {
		t.Errorf("postmaster %d alive after Stop", pm)
	}
	if _, err := os.Stat(c.DataDir()); !os.IsNotExist(err) {
		t.Errorf("data dir after Stop: %v", err)
	}
}

func TestStartLocalRejectsBadOptions(t *testing.T) {
	for _, opts := range []LocalOptions{
		{Password: "two\nlines"},
		{Settings: map[string]string{"port": "5432"}},
		{Settings: map[string]string{"bad name": "x"}},
		{BinDir: t.TempDir()},
	} {
		if c, err := StartLocal(context.Background(), opts); err == nil {
			c.Stop(context.Background())
			t.Errorf("StartLocal(%+v) succeeded", opts)
		}
	}
}

// helperResult is what TestHelperProcess prints.
type helperResult struct {
	URL       string `json:"url"`
	DataDir   string `json:"datadir"`
	StartTime string `json:"start_time"`
	Error     string `json:"error,omitempty"`
}

// TestHelperProcess is not a test: other tests run the test binary again
// with TESTPG_HELPER set, to act as another test binary of the same go
// test run (TESTPG_HELPER=shared) or as a process that starts a private
// cluster and exits without stopping it (TESTPG_HELPER=private).
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv("TESTPG_HELPER")
	if mode == "" {
		t.Skip("helper process only")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var url string
	var err error
	switch mode {
	case "shared":
		var dir string
		if dir, err = findBinDir(os.Getenv, defaultBinGlobs); err == nil {
			var srv *Server
			if srv, err = sharedServer(ctx, dir, ownerPID(os.Getenv)); err == nil {
				url = srv.URL
			}
		}
	case "private":
		var c *Cluster
		if c, err = StartLocal(ctx, LocalOptions{}); err == nil {
			url = c.URL()
		}
	}
	res := helperResult{URL: url}
	if err == nil {
		conn := connect(t, url)
		res.DataDir = queryString(t, conn, "SELECT current_setting('data_directory')")
		res.StartTime = queryString(t, conn, "SELECT pg_postmaster_start_time()::text")
	} else {
		res.Error = err.Error()
	}
	b, _ := json.Marshal(res)
	fmt.Printf("\nRESULT:%s\n", b)
}

func runHelper(t *testing.T, mode string, env ...string) helperResult {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "TESTPG_HELPER="+mode)
	cmd.Env = append(cmd.Env, env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper: %v\n%s%s", err, out, stderr.Bytes())
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "RESULT:"); ok {
			var res helperResult
			if err := json.Unmarshal([]byte(rest), &res); err != nil {
				t.Fatal(err)
			}
			if res.Error != "" {
				t.Fatalf("helper: %s", res.Error)
			}
			return res
		}
	}
	t.Fatalf("helper printed no result:\n%s%s", out, stderr.Bytes())
	return helperResult{}
}

// waitGone waits until dir has been removed and the postmaster that ran
// in it (pid pm) is dead.
func waitGone(t *testing.T, dir string, pm int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		_, err := os.Stat(dir)
		if os.IsNotExist(err) && !processAlive(pm) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s stat: %v; postmaster %d alive: %v", timeout, dir, err, pm, processAlive(pm))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSharedAcrossProcesses plays a go test run: a "go command" (here a
// sleep process) whose test binaries (here helper processes) start at the
// same time. They must share one cluster, which must disappear when the
// "go command" exits.
func TestSharedAcrossProcesses(t *testing.T) {
	t.Parallel()
	needLocal(t)
	owner := exec.Command("sleep", "600")
	if err := owner.Start(); err != nil {
		t.Fatal(err)
	}
	ownerGone := false
	defer func() {
		if !ownerGone {
			owner.Process.Kill()
			owner.Wait()
		}
	}()
	dir := sharedDir(owner.Process.Pid)

	const n = 4
	results := make([]helperResult, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		wg.Go(func() {
			results[i] = runHelper(t, "shared", fmt.Sprintf("%s=%d", EnvOwnerPID, owner.Process.Pid))
		})
	}
	wg.Wait()
	t.Logf("%d processes got the shared cluster in %v", n, time.Since(start).Round(time.Millisecond))
	for i := 1; i < n; i++ {
		if results[i] != results[0] {
			t.Errorf("process %d got %+v, process 0 got %+v", i, results[i], results[0])
		}
	}
	if want := filepath.Join(dir, "data"); results[0].DataDir != want {
		t.Errorf("data directory %s, want %s", results[0].DataDir, want)
	}
	var st sharedState
	if b, err := os.ReadFile(filepath.Join(dir, "state.json")); err != nil {
		t.Fatal(err)
	} else if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	if st.Owner != owner.Process.Pid || buildURL(st.Port, st.Password) != results[0].URL {
		t.Errorf("state %+v does not match", st)
	}
	pm := postmasterPID(filepath.Join(dir, "data"))
	if !processAlive(pm) {
		t.Fatalf("postmaster %d is not running", pm)
	}

	// A later process of the same run reuses it, even in-process.
	srv, err := sharedServer(context.Background(), "/unused", owner.Process.Pid)
	if err != nil || srv.URL != results[0].URL {
		t.Errorf("later sharedServer = %+v, %v", srv, err)
	}

	// The "go command" exits: the watchdog removes everything.
	owner.Process.Kill()
	owner.Wait()
	ownerGone = true
	waitGone(t, dir, pm, 20*time.Second)
}

// TestPrivateClusterDiesWithProcess: a process that starts a private
// cluster and exits without stopping it leaves nothing behind.
func TestPrivateClusterDiesWithProcess(t *testing.T) {
	t.Parallel()
	needLocal(t)
	res := runHelper(t, "private")
	base := filepath.Dir(res.DataDir)
	if !strings.HasPrefix(filepath.Base(base), dirPrefix) {
		t.Fatalf("unexpected data directory %s", res.DataDir)
	}
	// The postmaster.pid may already be gone; find the pid before it is.
	pm := postmasterPID(res.DataDir)
	waitGone(t, base, pm, 20*time.Second)
}
