package testserver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

// serverBinaries are the programs a local cluster needs.
var serverBinaries = []string{"pg_ctl", "initdb", "postgres"}

// defaultBinGlobs are the well-known installation directories, searched
// after TEST_PG_BINDIR and PATH. The highest version wins.
var defaultBinGlobs = []string{
	"/usr/lib/postgresql/*/bin",          // Debian, Ubuntu
	"/usr/pgsql-*/bin",                   // RHEL, Fedora (PGDG)
	"/opt/homebrew/opt/postgresql@*/bin", // Homebrew, Apple silicon
	"/usr/local/opt/postgresql@*/bin",    // Homebrew, Intel
	"/usr/local/pgsql/bin",               // built from source
}

// checkBinDir reports whether dir holds executable pg_ctl, initdb and
// postgres.
func checkBinDir(dir string) error {
	var missing []string
	for _, b := range serverBinaries {
		name := b
		if runtime.GOOS == "windows" {
			name += ".exe"
		}
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.IsDir() || (runtime.GOOS != "windows" && fi.Mode()&0o111 == 0) {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s has no %s", dir, strings.Join(missing, ", "))
	}
	return nil
}

// findBinDir locates the PostgreSQL server binaries: TEST_PG_BINDIR, then
// PATH (pg_config --bindir, then the directory of initdb), then the highest
// version matching globs. The error lists everything it tried.
func findBinDir(getenv func(string) string, globs []string) (string, error) {
	if dir := getenv(EnvBinDir); dir != "" {
		if err := checkBinDir(dir); err != nil {
			return "", fmt.Errorf("testserver: %s=%s is unusable: %w", EnvBinDir, dir, err)
		}
		return dir, nil
	}
	tried := []string{EnvBinDir + " not set"}

	if pgConfig, err := exec.LookPath("pg_config"); err != nil {
		tried = append(tried, "no pg_config on PATH")
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := exec.CommandContext(ctx, pgConfig, "--bindir").Output()
		cancel()
		dir := strings.TrimSpace(string(out))
		switch {
		case err != nil:
			tried = append(tried, fmt.Sprintf("%s --bindir failed: %v", pgConfig, err))
		case checkBinDir(dir) != nil:
			tried = append(tried, fmt.Sprintf("%s --bindir: %v", pgConfig, checkBinDir(dir)))
		default:
			return dir, nil
		}
	}

	if initdb, err := exec.LookPath("initdb"); err != nil {
		tried = append(tried, "no initdb on PATH")
	} else {
		if real, err := filepath.EvalSymlinks(initdb); err == nil {
			initdb = real
		}
		dir := filepath.Dir(initdb)
		if err := checkBinDir(dir); err != nil {
			tried = append(tried, "initdb on PATH: "+err.Error())
		} else {
			return dir, nil
		}
	}

	var candidates []string
	for _, g := range globs {
		m, _ := filepath.Glob(g)
		candidates = append(candidates, m...)
	}
	sort.SliceStable(candidates, func(i, j int) bool {
		return versionKey(candidates[i]) > versionKey(candidates[j])
	})
	for _, dir := range candidates {
		if err := checkBinDir(dir); err != nil {
			tried = append(tried, err.Error())
			continue
		}
		return dir, nil
	}
	if len(candidates) == 0 {
		tried = append(tried, "nothing in "+strings.Join(globs, ", "))
	}
	return "", errors.New(strings.Join(tried, "; "))
}

var versionRE = regexp.MustCompile(`\d+(\.\d+)?`)

// versionKey extracts a sortable version from an installation directory
// such as /usr/lib/postgresql/15/bin or /usr/pgsql-9.6/bin.
func versionKey(dir string) float64 {
	m := versionRE.FindString(dir)
	v, _ := strconv.ParseFloat(m, 64)
	return v
}
