//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package testserver

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"time"
)

// Local clusters need flock, setsid and signals; elsewhere only
// TEST_DATABASE_URL and providers are available.
const localSupported = false

type runAs struct{}

func lookupRunAs() (*runAs, error)                         { return nil, errUnsupported }
func (ra *runAs) apply(*exec.Cmd)                          {}
func (ra *runAs) chown(string) error                       { return nil }
func (ra *runAs) checkReachable(string) error              { return nil }
func ownedDir(string, os.FileMode) error                   { return errUnsupported }
func fileOwnedByMe(fs.FileInfo) bool                       { return false }
func processAlive(int) bool                                { return false }
func processName(int) string                               { return "" }
func killPostmaster(int)                                   {}
func quitPostmaster(int)                                   {}
func tryLockFile(string) (func(), bool)                    { return nil, false }
func startWatchdog(int, string, string) (*exec.Cmd, error) { return nil, errUnsupported }
func lockFile(context.Context, string) (func(), error)     { return nil, errUnsupported }

func waitDead([]int, time.Duration) bool { return true }
