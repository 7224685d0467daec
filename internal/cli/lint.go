package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/savvi-studio/dbinit/internal/lint"
	"github.com/savvi-studio/dbinit/migrate"
)

// ExitLint is `dbinit lint` (or validate, when the manifest asks for lint)
// finding a rule of error severity.
const ExitLint = 8

func cmdLint(fs *flag.FlagSet) func(context.Context, *run, []string) error {
	asJSON := fs.Bool("json", false, "print the findings as JSON")
	return func(ctx context.Context, r *run, args []string) error {
		set, err := migrate.LoadDir(r.cfg.Dir)
		if err != nil {
			return err
		}
		if len(set.Migrations) == 0 {
			return r.noMigrations(set)
		}
		only, err := selectFiles(set, args)
		if err != nil {
			return err
		}
		findings := lint.Check(set, only)
		if *asJSON {
			enc := json.NewEncoder(r.stdout)
			enc.SetIndent("", "  ")
			if err := enc.Encode(nonNil(findings)); err != nil {
				return err
			}
		} else {
			printFindings(r, findings)
		}
		return lintResult(findings)
	}
}

// selectFiles turns FILE arguments into a filter: a file is named by its
// path, its name in the folder, or its version.
func selectFiles(set *migrate.Set, args []string) (func(*migrate.Migration) bool, error) {
	if len(args) == 0 {
		return nil, nil
	}
	want := map[*migrate.Migration]bool{}
	for _, a := range args {
		found := false
		for _, m := range set.Migrations {
			for _, s := range []*migrate.Script{m.Up, m.Down} {
				if s != nil && (a == s.Path || a == s.File || filepath.Base(a) == s.File || a == fmt.Sprint(m.Version)) {
					want[m], found = true, true
				}
			}
		}
		if !found {
			return nil, &usageError{fmt.Sprintf("lint: %q is not a migration in %s", a, set.Dir)}
		}
	}
	return func(m *migrate.Migration) bool { return want[m] }, nil
}

func printFindings(r *run, findings []lint.Finding) {
	var errs, warns int
	for _, f := range findings {
		fmt.Fprintln(r.stdout, f)
		if f.Severity == lint.Error {
			errs++
		} else {
			warns++
		}
	}
	if len(findings) > 0 {
		fmt.Fprintf(r.stdout, "%d error(s), %d warning(s); docs/lint.md explains each rule and its safe rewrite\n", errs, warns)
	}
}

func lintResult(findings []lint.Finding) error {
	if !lint.HasErrors(findings) {
		return nil
	}
	var rules []string
	for _, f := range findings {
		if f.Severity == lint.Error && !contains(rules, f.Rule) {
			rules = append(rules, f.Rule)
		}
	}
	return &exitError{code: ExitLint, msg: "lint: rules of error severity fired (" + strings.Join(rules, ", ") +
		"); fix the statements, or silence one with -- dbinit:lint-ignore RULE on the line before it"}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// lintRulesHelp lists the rules for `dbinit help lint`.
func lintRulesHelp() string {
	var b strings.Builder
	b.WriteString("Rules (severity, what fires it):\n")
	for _, r := range lint.Rules {
		fmt.Fprintf(&b, "  %-28s %-8s %s\n", r.Name, r.Severity, r.Summary)
	}
	return b.String()
}
