package testserver

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// sharedState is state.json in a shared cluster's directory.
type sharedState struct {
	Port     int       `json:"port"`
	Password string    `json:"password"`
	BinDir   string    `json:"bindir"`
	DataDir  string    `json:"datadir"`
	Version  int       `json:"version"`
	Owner    int       `json:"owner_pid"`
	Creator  int       `json:"creator_pid"`
	Created  time.Time `json:"created"`
}

// ownerPID is the process whose lifetime bounds the shared cluster: the go
// command that runs the test binaries, so that all packages of one
// `go test ./...` share a cluster. A binary not run by go (run by hand, by
// a debugger, by -exec) gets a cluster of its own.
func ownerPID(getenv func(string) string) int {
	if v := getenv(EnvOwnerPID); v != "" {
		if pid, err := strconv.Atoi(v); err == nil && pid > 0 {
			return pid
		}
	}
	ppid := os.Getppid()
	if name := processName(ppid); name == "go" || strings.HasPrefix(name, "go1.") {
		return ppid
	}
	return os.Getpid()
}

// sharedDir is the state directory of the shared cluster bounded by owner.
func sharedDir(owner int) string {
	return filepath.Join(clusterRoot(), fmt.Sprintf("%s%d-%d", dirPrefix, os.Geteuid(), owner))
}

// sharedServer returns the cluster shared by all processes with the same
// owner, creating it if this process is the first.
func sharedServer(ctx context.Context, binDir string, owner int) (*Server, error) {
	if !localSupported {
		return nil, errUnsupported
	}
	cleanupStaleOnce()
	ra, err := lookupRunAs()
	if err != nil {
		return nil, err
	}
	base := sharedDir(owner)
	mode := os.FileMode(0o700)
	if ra != nil {
		mode = 0o711 // postgres must be able to reach data/
	}
	if err := ownedDir(base, mode); err != nil {
		return nil, err
	}
	unlock, err := lockFile(ctx, filepath.Join(base, "lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()

	statePath := filepath.Join(base, "state.json")
	if b, err := os.ReadFile(statePath); err == nil {
		var st sharedState
		if json.Unmarshal(b, &st) == nil && st.Port != 0 && processAlive(postmasterPID(st.DataDir)) {
			return &Server{URL: buildURL(st.Port, st.Password), Source: "local:" + st.BinDir, Version: st.Version}, nil
		}
		// The server of an earlier process died: build a new one.
		os.Remove(statePath)
	}

	c := newCluster(base, binDir, ra, LocalOptions{})
	if pm := postmasterPID(c.dataDir); processAlive(pm) && processName(pm) == "postgres" {
		quitPostmaster(pm) // a half-built cluster of a crashed creator
	}
	if err := c.prepareBase(); err != nil {
		return nil, err
	}
	wd, err := startWatchdog(owner, base, c.dataDir)
	if err != nil {
		return nil, err
	}
	wd.Process.Release()
	if err := c.initdb(ctx); err != nil {
		return nil, fmt.Errorf("testserver: creating the shared cluster in %s: %w", base, err)
	}
	if err := c.startNew(ctx); err != nil {
		return nil, fmt.Errorf("testserver: starting the shared cluster in %s: %w", base, err)
	}
	st := sharedState{
		Port: c.port, Password: c.password, BinDir: binDir, DataDir: c.dataDir, Version: c.version,
		Owner: owner, Creator: os.Getpid(), Created: time.Now(),
	}
	b, err := json.MarshalIndent(st, "", "\t")
	if err != nil {
		return nil, err
	}
	tmp := statePath + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, statePath); err != nil {
		return nil, err
	}
	return c.Server(), nil
}

var cleanupStaleOnce = sync.OnceFunc(cleanupStale)

// cleanupStale removes cluster directories of this user whose owner
// process is dead, normally the watchdog's job. It shuts down their
// postmasters first.
func cleanupStale() {
	if !localSupported {
		return
	}
	tmp := clusterRoot()
	prefix := fmt.Sprintf("%s%d-", dirPrefix, os.Geteuid())
	ents, err := os.ReadDir(tmp)
	if err != nil {
		return
	}
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		owner, err := strconv.Atoi(pidStr)
		if err != nil || processAlive(owner) {
			continue
		}
		dir := filepath.Join(tmp, e.Name())
		fi, err := os.Lstat(dir)
		if err != nil || !fi.IsDir() || !fileOwnedByMe(fi) {
			continue
		}
		unlock, ok := tryLockFile(filepath.Join(dir, "lock"))
		if !ok {
			continue
		}
		if pm := postmasterPID(filepath.Join(dir, "data")); processAlive(pm) && processName(pm) == "postgres" {
			quitPostmaster(pm)
		}
		os.RemoveAll(dir)
		unlock()
	}
}
