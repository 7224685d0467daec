package archtest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/savvi-studio/dbinit"

// layers orders the module's packages: a package may import only packages
// of a lower layer. Test helpers (testserver, emptydb) sit low, beside the
// code they serve; docs/architecture.md shows the same picture.
var layers = map[string]int{
	"internal/sqlsplit":   0,
	"internal/retry":      0,
	"internal/testserver": 0,
	"internal/config":     1,
	"internal/dbconn":     1,
	"internal/emptydb":    1,
	"internal/archtest":   1,
	"migrate":             2,
	"internal/catalog":    2,
	"internal/provision":  3,
	"internal/lint":       3,
	"dbtest":              4,
	"internal/cli":        4,
	"cmd/dbinit":          5,
	"bench/corpus":        3,
	"bench":               5,
	// Modules of their own, joined by go.work.
	"dbtest/dbtestcontainers": 5,
	"docker":                  5,
	// A module of its own, outside go.work: make bench-peers.
	"bench/peers": 5,
}

// repoRoot is two levels up from this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// imports returns, per package directory (relative to the root), the
// module-internal imports of its non-test files.
func imports(t *testing.T, root string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); name == "testdata" || strings.HasPrefix(name, ".") && path != root {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		rel = filepath.ToSlash(rel)
		if _, ok := out[rel]; !ok {
			out[rel] = nil
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if dep, ok := strings.CutPrefix(p, module+"/"); ok {
				out[rel] = append(out[rel], dep)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestLayers: no package imports one of its own layer or above, so there
// is no arrow back up and no cycle; every package has a layer.
func TestLayers(t *testing.T) {
	t.Parallel()
	for pkg, deps := range imports(t, repoRoot(t)) {
		from, ok := layers[pkg]
		if !ok {
			t.Errorf("package %s has no layer in archtest.layers (and docs/architecture.md)", pkg)
			continue
		}
		for _, dep := range deps {
			to, ok := layers[dep]
			switch {
			case !ok:
				t.Errorf("%s imports %s, which has no layer", pkg, dep)
			case to >= from:
				t.Errorf("%s (layer %d) imports %s (layer %d): an arrow back up", pkg, from, dep, to)
			}
		}
	}
}

// TestTestHelpersStayInTests: the packages that start servers and make
// throwaway databases for tests are imported by no production code, except
// testserver by dbtest, whose job it is, by emptydb, a test helper, and by
// bench/peers, the benchmark program that starts its own cluster.
func TestTestHelpersStayInTests(t *testing.T) {
	t.Parallel()
	for pkg, deps := range imports(t, repoRoot(t)) {
		for _, dep := range deps {
			switch {
			case dep == "internal/emptydb":
				t.Errorf("%s imports %s outside its tests", pkg, dep)
			case dep == "internal/testserver" && pkg != "dbtest" && pkg != "internal/emptydb" && pkg != "bench/peers":
				t.Errorf("%s imports %s outside its tests", pkg, dep)
			}
		}
	}
}

// sqlRE finds SQL in a string literal: one that starts as a statement does
// (the way SQL is written in Go code, whole or in pieces joined with +), or
// that calls a server function.
var sqlRE = regexp.MustCompile(`^\s*(?:SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|COMMENT\s+ON|GRANT|REVOKE|SET|RESET|BEGIN|COMMIT|ROLLBACK|WITH|TRUNCATE|VACUUM|ANALYZE|LOCK)\s|\bpg_\w+\(`)

// TestNoSQLInCLI: the command line reads flags, calls provision and
// migrate, and prints; every statement dbinit sends lives below it.
func TestNoSQLInCLI(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(repoRoot(t), "internal", "cli")
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			s, err := strconv.Unquote(lit.Value)
			if err == nil && sqlRE.MatchString(s) {
				t.Errorf("%s: SQL in the command line: %q", fset.Position(lit.Pos()), s)
			}
			return true
		})
	}
	if checked == 0 {
		t.Fatal("no files checked")
	}
}

func TestSQLPatternFindsSQL(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"SELECT 1", "CREATE DATABASE x", "DROP DATABASE IF EXISTS", "SELECT pg_try_advisory_lock($1)"} {
		if !sqlRE.MatchString(s) {
			t.Errorf("pattern misses %q", s)
		}
	}
	for _, s := range []string{"dbinit: select a command", "its database is the maintenance database (locks, CREATE DATABASE)", "clone strategy", "settle"} {
		if sqlRE.MatchString(s) {
			t.Errorf("pattern flags %q", s)
		}
	}
}

// TestUserModuleDependencies: a module that imports only migrate and
// dbtest gets none of testcontainers, Docker or OpenTelemetry, neither in
// its build (go list -deps) nor in its module graph (go list -m all), which
// is what vulnerability scanners and go mod download see.
func TestUserModuleDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command; skipped under -short")
	}
	t.Parallel()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example.com/user\n\ngo 1.26\n\nrequire "+module+" v0.0.0-00010101000000-000000000000\n\nreplace "+module+" => "+repoRoot(t)+"\n")
	// The main module's go.sum covers every module the user's needs (a
	// subset): with it, go mod tidy needs no checksum database, which CI
	// machines cannot reach.
	sums, err := os.ReadFile(filepath.Join(repoRoot(t), "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	write("go.sum", string(sums))
	write("user.go", "package user\n\nimport (\n\t_ \""+module+"/dbtest\"\n\t_ \""+module+"/migrate\"\n)\n")
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(gobin, args...)
		cmd.Dir = dir
		// The module proxy is reachable (go test needed it); the checksum
		// database may not be, and go.sum already has what is verified.
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod", "GOSUMDB=off")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("mod", "tidy")
	forbidden := regexp.MustCompile(`(?i)testcontainers|docker|opentelemetry|moby|containerd`)
	for _, args := range [][]string{{"list", "-deps", "./..."}, {"list", "-m", "all"}} {
		var bad []string
		for _, line := range strings.Split(run(args...), "\n") {
			if forbidden.MatchString(line) {
				bad = append(bad, line)
			}
		}
		sort.Strings(bad)
		if len(bad) > 0 {
			t.Errorf("go %s in a module that imports migrate and dbtest lists:\n\t%s", strings.Join(args, " "), strings.Join(bad, "\n\t"))
		}
	}
}
