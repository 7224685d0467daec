package cli

import (
	"context"
	"flag"
	"fmt"

	"github.com/savvi-studio/dbinit/migrate"
)

// cmdValidate runs every check that needs no server: what loading the
// folder checks (names, duplicates, encoding, splitting, directives, links
// out of the folder) and files `dbinit new` wrote that nobody has written
// yet. It never connects, so it runs in a pre-commit hook and in CI
// without a database.
func cmdValidate(fs *flag.FlagSet) func(context.Context, *run, []string) error {
	return func(ctx context.Context, r *run, args []string) error {
		if err := noArgs("validate", args); err != nil {
			return err
		}
		set, err := r.loadSet()
		if err != nil {
			return err
		}
		if problems := set.Unwritten(); len(problems) > 0 {
			return &migrate.LoadError{Dir: set.Dir, Problems: problems}
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
		fmt.Fprintf(r.stdout, "%s: %d migration(s), versions %d to %d; %d with a down file, %d no-transaction, %d empty (recorded no-ops); ok\n",
			set.Dir, len(set.Migrations), set.Migrations[0].Version, set.Latest(), downs, noTx, empty)
		return nil
	}
}
