package cli

import (
	"context"
	"flag"
	"fmt"

	"github.com/savvi-studio/dbinit/internal/lint"
	"github.com/savvi-studio/dbinit/migrate"
)

// cmdValidate runs every check that needs no server: what loading the
// folder checks (names, duplicates, encoding, splitting, directives, links
// out of the folder), files `dbinit new` wrote that nobody has written
// yet, and the manifest. Without --schema it never connects, so it runs in
// a pre-commit hook and in CI without a database.
func cmdValidate(fs *flag.FlagSet) func(context.Context, *run, []string) error {
	schema := fs.String("schema", "", "also compare this committed dump-schema file with the schema the migrations build (needs the server and pg_dump)")
	return func(ctx context.Context, r *run, args []string) error {
		if err := noArgs("validate", args); err != nil {
			return err
		}
		set, err := migrate.LoadDir(r.cfg.Dir)
		if err != nil {
			return err
		}
		if len(set.Migrations) == 0 {
			return r.noMigrations(set)
		}
		if problems := set.Unwritten(); len(problems) > 0 {
			return &migrate.LoadError{Dir: set.Dir, Problems: problems}
		}
		if err := set.CheckManifest(); err != nil {
			return err
		}
		var downs, noTx, empty int
		for _, m := range set.Migrations {
			if m.Down != nil {
				downs++
			}
			if m.Up.NoTransaction {
				noTx++
			}
			if len(m.Up.Statements) == 0 {
				empty++
			}
		}
		manifest := "no " + migrate.ManifestFile
		if set.Manifest != nil {
			manifest = migrate.ManifestFile + " agrees"
		}
		if set.Manifest != nil && set.Manifest.Lint {
			findings := lint.Check(set, nil)
			printFindings(r, findings)
			if err := lintResult(findings); err != nil {
				return err
			}
			manifest += "; lint passes"
		}
		if *schema != "" {
			if err := r.checkSchemaFile(ctx, *schema); err != nil {
				return err
			}
			manifest += "; " + *schema + " is current"
		}
		fmt.Fprintf(r.stdout, "%s: %d migration(s), versions %d to %d; %d with a down file, %d no-transaction, %d empty (recorded no-ops); %s; ok\n",
			set.Dir, len(set.Migrations), set.Migrations[0].Version, set.Latest(), downs, noTx, empty, manifest)
		return nil
	}
}
