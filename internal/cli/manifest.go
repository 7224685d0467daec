package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	iofs "io/fs"
	"os"
	"path/filepath"

	"github.com/savvi-studio/dbinit/internal/config"
	"github.com/savvi-studio/dbinit/migrate"
)

// cmdManifest writes db/migrations.json from the files, keeping the
// hand-kept fields (description, depends_on) of the manifest it replaces.
func cmdManifest(fs *flag.FlagSet) func(context.Context, *run, []string) error {
	force := fs.Bool("force", false, "write it anew even when the current manifest cannot be read (its description and depends_on fields are lost)")
	check := fs.Bool("check", false, "write nothing; exit 5 when the manifest is not what dbinit manifest would write")
	return func(ctx context.Context, r *run, args []string) error {
		if err := noArgs("manifest", args); err != nil {
			return err
		}
		set, err := migrate.LoadDirWith(r.cfg.Dir, migrate.LoadOptions{SkipManifest: true})
		if err != nil {
			return err
		}
		if len(set.Migrations) == 0 {
			return r.noMigrations(set)
		}
		if problems := set.Unwritten(); len(problems) > 0 {
			return &migrate.LoadError{Dir: set.Dir, Problems: problems}
		}
		path := filepath.Join(r.cfg.Dir, migrate.ManifestFile)
		oldRaw, err := os.ReadFile(path)
		var old *migrate.Manifest
		switch {
		case errors.Is(err, iofs.ErrNotExist):
		case err != nil:
			return &config.Error{Msg: fmt.Sprintf("manifest: %v", err)}
		default:
			if old, err = migrate.ParseManifest(oldRaw); err != nil && !*force {
				hint := ""
				if bytes.Contains(oldRaw, []byte("<<<<<<<")) {
					hint = " It has git conflict markers: two branches added migrations. Renumber yours above the other branch's, keep both sides' entries, and run dbinit manifest again."
				}
				return &config.Error{Msg: fmt.Sprintf("manifest: %s: %v.%s (dbinit manifest --force writes it anew from the files; its description and depends_on fields are then lost)", path, err, hint)}
			}
		}
		m := migrate.BuildManifest(set, old)
		raw := m.Marshal()
		if *check {
			if !bytes.Equal(raw, oldRaw) {
				return &exitError{code: ExitDrift, msg: fmt.Sprintf("manifest --check: %s is not what dbinit manifest would write; run dbinit manifest and commit it", path)}
			}
			return nil
		}
		if bytes.Equal(raw, oldRaw) {
			fmt.Fprintf(r.stdout, "%s is up to date (%d migrations, head %s)\n", path, len(m.Migrations), m.Head)
			return nil
		}
		if err := writeAtomic(path, raw); err != nil {
			return err
		}
		fmt.Fprintf(r.stdout, "wrote %s (%d migrations, head %s)\n", path, len(m.Migrations), m.Head)
		return nil
	}
}

// writeAtomic replaces path with data through a temporary file in the same
// folder, so a reader never sees half a file.
func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return &config.Error{Msg: fmt.Sprintf("write %s: %v", path, err)}
	}
	_, werr := tmp.Write(data)
	if err := tmp.Chmod(0o644); werr == nil {
		werr = err
	}
	if err := tmp.Close(); werr == nil {
		werr = err
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), path)
	}
	if werr != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, werr)
	}
	return nil
}
