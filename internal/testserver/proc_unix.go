//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package testserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const localSupported = true

// runAs is the system user that initdb, pg_ctl and postgres run as when
// this process is root (they refuse to run as root). nil means "as this
// process".
type runAs struct {
	uid, gid   int
	name, home string
}

func lookupRunAs() (*runAs, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root; initdb and postgres refuse to run as root and there is no \"postgres\" user to run them as (%v): create one (e.g. useradd --system postgres) or run the tests as an ordinary user", err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("user postgres has a non-numeric uid/gid %q/%q", u.Uid, u.Gid)
	}
	return &runAs{uid: uid, gid: gid, name: u.Username, home: u.HomeDir}, nil
}

func (ra *runAs) apply(cmd *exec.Cmd) {
	if ra == nil {
		return
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: uint32(ra.uid), Gid: uint32(ra.gid)},
	}
	if ra.home != "" {
		cmd.Env = append(cmd.Env, "HOME="+ra.home)
	}
}

func (ra *runAs) chown(path string) error {
	if ra == nil {
		return nil
	}
	return os.Chown(path, ra.uid, ra.gid)
}

// checkReachable verifies that ra can traverse every directory from / to
// dir, so that postgres running as ra can reach its data directory.
func (ra *runAs) checkReachable(dir string) error {
	if ra == nil {
		return nil
	}
	for d := dir; ; {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		perm := fi.Mode().Perm()
		if ok && !(perm&0o001 != 0 ||
			int(st.Uid) == ra.uid && perm&0o100 != 0 ||
			int(st.Gid) == ra.gid && perm&0o010 != 0) {
			return fmt.Errorf("running as root, so PostgreSQL runs as user %q, which cannot enter %s (mode %v); point TEST_PG_TMPDIR (or TMPDIR) at a directory it can reach, such as /tmp", ra.name, d, fi.Mode())
		}
		parent := filepath.Dir(d)
		if parent == d {
			return nil
		}
		d = parent
	}
}

// ownedDir creates dir (mode 0700), or accepts it if it already exists as a
// real directory owned by this user; then sets its mode.
func ownedDir(dir string, mode os.FileMode) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%s exists but is not a directory owned by uid %d", dir, os.Geteuid())
	}
	return os.Chmod(dir, mode)
}

func fileOwnedByMe(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Geteuid()
}

// lockFile takes an exclusive flock on path, polling so that ctx can end
// the wait. The returned function releases it.
func lockFile(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	fd := int(f.Fd())
	for {
		err := syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if err != syscall.EWOULDBLOCK && err != syscall.EINTR {
			f.Close()
			return nil, fmt.Errorf("flock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for the lock on %s: %w", path, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return func() {
		syscall.Flock(fd, syscall.LOCK_UN)
		f.Close()
	}, nil
}

// tryLockFile takes the lock on an existing lock file without waiting. It
// reports false if someone else holds it. A missing file counts as locked
// by nobody.
func tryLockFile(path string) (func(), bool) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return func() {}, true
	}
	if err != nil {
		return nil, false
	}
	if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		f.Close()
		return nil, false
	}
	return func() { f.Close() }, true
}

// processAlive reports whether pid is a live process. Zombies count as
// dead: in containers whose init does not reap orphans, a postmaster that
// has exited stays a zombie forever.
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err == syscall.ESRCH {
		return false
	}
	if runtime.GOOS != "linux" {
		return true
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return !errors.Is(err, fs.ErrNotExist)
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return true
	}
	state := b[i+2]
	return state != 'Z' && state != 'X'
}

// processName returns the command name of pid ("" if unknown).
func processName(pid int) string {
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil {
		return strings.TrimSpace(string(b))
	}
	if runtime.GOOS == "linux" {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ps", "-o", "comm=", "-p", strconv.Itoa(pid)).Output()
	if err != nil {
		return ""
	}
	return filepath.Base(strings.TrimSpace(string(out)))
}

// childPIDs lists the children of pid.
func childPIDs(pid int) []int {
	var kids []int
	if runtime.GOOS == "linux" {
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			k, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
			if err != nil {
				continue
			}
			i := bytes.LastIndexByte(b, ')')
			if i < 0 {
				continue
			}
			f := strings.Fields(string(b[i+1:]))
			if len(f) > 1 && f[1] == strconv.Itoa(pid) {
				kids = append(kids, k)
			}
		}
		return kids
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, "pgrep", "-P", strconv.Itoa(pid)).Output()
	for _, f := range strings.Fields(string(out)) {
		if k, err := strconv.Atoi(f); err == nil {
			kids = append(kids, k)
		}
	}
	return kids
}

// killPostmaster SIGKILLs the postmaster and all its children at once (the
// postmaster is stopped first so that it forks nothing new meanwhile) and
// waits for them to die.
func killPostmaster(pm int) {
	syscall.Kill(pm, syscall.SIGSTOP)
	kids := childPIDs(pm)
	for _, k := range kids {
		syscall.Kill(k, syscall.SIGKILL)
	}
	syscall.Kill(pm, syscall.SIGKILL)
	waitDead(append(kids, pm), 10*time.Second)
}

// quitPostmaster asks the postmaster for an immediate shutdown (SIGQUIT),
// and SIGKILLs it if it is still there after 10s.
func quitPostmaster(pm int) {
	syscall.Kill(pm, syscall.SIGQUIT)
	if !waitDead([]int{pm}, 10*time.Second) {
		killPostmaster(pm)
	}
}

func waitDead(pids []int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		alive := false
		for _, p := range pids {
			if processAlive(p) {
				alive = true
				break
			}
		}
		if !alive {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// watchdogScript waits until process $1 is gone (or directory $2 has been
// removed by someone else), then shuts down the postmaster of data
// directory $3 (SIGQUIT = immediate shutdown, SIGKILL after ~10s) and
// removes $2.
const watchdogScript = `
owner=$1 dir=$2 data=$3
alive() {
	kill -0 "$1" 2>/dev/null || return 1
	[ -d /proc/self ] || return 0
	s=$(sed -n 's/^.*) \(.\).*$/\1/p' "/proc/$1/stat" 2>/dev/null)
	[ -n "$s" ] && [ "$s" != Z ] && [ "$s" != X ]
}
ispostgres() {
	[ -r "/proc/$1/comm" ] || return 0
	[ "$(cat "/proc/$1/comm" 2>/dev/null)" = postgres ]
}
while alive "$owner" && [ -d "$dir" ]; do sleep 1; done
[ -d "$dir" ] || exit 0
pm=$(sed -n 1p "$data/postmaster.pid" 2>/dev/null)
case $pm in ''|*[!0-9]*) pm= ;; esac
if [ -n "$pm" ] && alive "$pm" && ispostgres "$pm"; then
	kill -QUIT "$pm" 2>/dev/null
	i=0
	while alive "$pm" && [ $i -lt 100 ]; do sleep 0.1 2>/dev/null || sleep 1; i=$((i+1)); done
	alive "$pm" && kill -KILL "$pm" 2>/dev/null
fi
rm -rf "$dir"
`

// startWatchdog starts a detached process, in its own session so that
// terminal signals do not reach it, that removes the cluster in dir once
// process owner has exited. Its standard streams are /dev/null, so it does
// not keep go test's output pipes open.
func startWatchdog(owner int, dir, dataDir string) (*exec.Cmd, error) {
	cmd := exec.Command("/bin/sh", "-c", watchdogScript, "testserver-watchdog", strconv.Itoa(owner), dir, dataDir)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the cleanup watchdog: %w", err)
	}
	return cmd, nil
}
