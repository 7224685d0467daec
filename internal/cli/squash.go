package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/jackc/pgx/v5"
	iofs "io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/savvi-studio/dbinit/internal/config"
	"github.com/savvi-studio/dbinit/migrate"
)

// squashedDir is where dbinit squash moves the files it replaced; the
// loader ignores subfolders.
const squashedDir = "squashed"

// cmdSquash replaces the files up to a version with one file written from
// the database they build: pg_dump of a scratch database at that version,
// schema and rows. The file carries -- dbinit:replaces FROM-TO, so a
// database that has every replaced version records it without running it,
// and a new database runs it instead of them.
func cmdSquash(fs *flag.FlagSet) func(context.Context, *run, []string) error {
	to := fs.Int64("to", 0, "the last version to squash; the new file carries it")
	return func(ctx context.Context, r *run, args []string) error {
		if len(args) != 1 {
			return &usageError{"squash: needs --to N and exactly one NAME, e.g. dbinit squash --to 40 baseline"}
		}
		if *to <= 0 {
			return &usageError{"squash: needs --to N (N > 0)"}
		}
		bin, err := lookPath("pg_dump", r.environ["PATH"])
		if err != nil {
			return &config.Error{Msg: "squash needs pg_dump on the PATH (the PostgreSQL client, of the server's major version or newer)"}
		}
		set, err := r.loadSet()
		if err != nil {
			return err
		}
		last := set.Find(*to)
		if last == nil {
			return &usageError{fmt.Sprintf("squash: there is no version %d in %s", *to, set.Dir)}
		}
		// Squashed files do not nest: a squash starts after the last one.
		var replaced []*migrate.Migration
		for _, m := range set.Migrations {
			if m.Version > *to {
				break
			}
			if m.Up.Replaces != nil {
				replaced = nil
				continue
			}
			replaced = append(replaced, m)
		}
		if len(replaced) < 2 || replaced[len(replaced)-1].Version != *to {
			return &usageError{fmt.Sprintf("squash: versions up to %d hold fewer than two files after the last squashed file; there is nothing to squash", *to)}
		}
		from := replaced[0].Version
		name := fmt.Sprintf("%0*d_%s.sql", len(strings.SplitN(last.Up.File, "_", 2)[0]), *to, args[0])
		if !squashNameRE.MatchString(args[0]) || strings.HasSuffix(args[0], "_down") {
			return &usageError{fmt.Sprintf("squash: %q does not make a migration name (letters, digits, _ . -; not ending in _down)", args[0])}
		}

		srv, target, closeAll, err := r.server(ctx)
		if err != nil {
			return err
		}
		defer closeAll()
		dump := func(ctx context.Context, database string, extra ...string) ([]byte, error) {
			return r.pgDumpOutput(ctx, bin, database, append([]string{"--no-owner", "--exclude-schema=dbinit"}, extra...)...)
		}
		// The schema and rows at version N, and the schema alone to check
		// the new file against.
		var body, want []byte
		err = srv.Scratch(ctx, target, r.cfg.Database, *to, func(ctx context.Context, db string, _ *pgx.Conn) error {
			var err error
			if body, err = dump(ctx, db, "--inserts"); err != nil {
				return err
			}
			want, err = dump(ctx, db, "--schema-only")
			return err
		})
		if err != nil {
			return err
		}
		var b strings.Builder
		fmt.Fprintf(&b, "-- dbinit:replaces %d-%d\n", from, *to)
		for _, m := range replaced {
			fmt.Fprintf(&b, "-- dbinit:replaced %d %s %s\n", m.Version, m.Name, m.Up.Checksum[:16])
		}
		fmt.Fprintf(&b, "-- Versions %d to %d squashed by dbinit squash: the schema and rows they built, from pg_dump.\n"+
			"-- A database that has exactly the files listed above applied records this file without running it;\n"+
			"-- a new one runs it. The replaced files are in %s/, for databases that still need them.\n\n", from, *to, squashedDir)
		text := b.String() + string(cleanDump(body, true))

		// Write it, move the replaced files, and check the folder builds
		// the same schema; undo everything when it does not.
		ch, err := squashFiles(r.cfg.Dir, name, text, replaced)
		if err != nil {
			return ch.undo(err)
		}
		newSet, err := migrate.LoadDirWith(r.cfg.Dir, migrate.LoadOptions{SkipManifest: true})
		if err != nil {
			return ch.undo(fmt.Errorf("squash: the new file does not load: %w", err))
		}
		newTarget := target
		newTarget.Set = newSet
		newTarget.Template = "none" // a scratch build from the new files, not a template
		var got []byte
		err = srv.Scratch(ctx, newTarget, r.cfg.Database, *to, func(ctx context.Context, db string, _ *pgx.Conn) error {
			var err error
			got, err = dump(ctx, db, "--schema-only")
			return err
		})
		if err == nil && !bytes.Equal(cleanDump(got, false), cleanDump(want, false)) {
			err = fmt.Errorf("squash: %s builds a different schema than versions %d to %d (please report this)", name, from, *to)
		}
		if err != nil {
			return ch.undo(err)
		}
		if set.Manifest != nil {
			m := migrate.BuildManifest(newSet, set.Manifest)
			if err := writeAtomic(filepath.Join(r.cfg.Dir, migrate.ManifestFile), m.Marshal()); err != nil {
				return ch.undo(err)
			}
		}
		fmt.Fprintf(r.stdout, "wrote %s (replaces %d-%d); moved %d file(s) to %s\n", filepath.Join(r.cfg.Dir, name), from, *to, len(ch.moved), filepath.Join(r.cfg.Dir, squashedDir))
		fmt.Fprintf(r.stdout, "%s has no down file: reverting below version %d means restoring a backup. Commit the new file and %s/ together.\n", name, *to, squashedDir)
		return nil
	}
}

// folderChange is what squash did to the folder, so that it can be undone.
type folderChange struct {
	dir        string
	moved      [][2]string // {from, to}, in order
	created    string      // the squashed file, once this run wrote it
	createdDir bool        // squashed/ did not exist before
}

// undo puts the folder back as it was and returns cause, saying whether
// that worked: the new file goes first (its name may be a moved file's),
// then every file moves back.
func (c *folderChange) undo(cause error) error {
	var failed []string
	if c.created != "" {
		if err := os.Remove(c.created); err != nil && !errors.Is(err, iofs.ErrNotExist) {
			failed = append(failed, err.Error())
		}
	}
	for i := len(c.moved) - 1; i >= 0; i-- {
		if err := os.Rename(c.moved[i][1], c.moved[i][0]); err != nil {
			failed = append(failed, err.Error())
		}
	}
	if c.createdDir {
		os.Remove(filepath.Join(c.dir, squashedDir)) // only when empty
	}
	if len(failed) > 0 {
		return fmt.Errorf("%w; undoing it failed too, restore these by hand: %s", cause, strings.Join(failed, "; "))
	}
	return fmt.Errorf("%w; the folder is as it was", cause)
}

// squashFiles moves the replaced files into dir/squashed/ and writes the
// squashed file.
func squashFiles(dir, name, text string, replaced []*migrate.Migration) (*folderChange, error) {
	c := &folderChange{dir: dir}
	sq := filepath.Join(dir, squashedDir)
	if _, err := os.Stat(sq); errors.Is(err, iofs.ErrNotExist) {
		c.createdDir = true
	}
	if err := os.MkdirAll(sq, 0o755); err != nil {
		return c, &config.Error{Msg: fmt.Sprintf("squash: %v", err)}
	}
	for _, m := range replaced {
		for _, s := range []*migrate.Script{m.Up, m.Down} {
			if s == nil {
				continue
			}
			src, dst := filepath.Join(dir, s.File), filepath.Join(sq, s.File)
			if _, err := os.Lstat(dst); !errors.Is(err, iofs.ErrNotExist) {
				return c, &config.Error{Msg: fmt.Sprintf("squash: %s already exists", dst)}
			}
			if err := os.Rename(src, dst); err != nil {
				return c, fmt.Errorf("squash: %w", err)
			}
			c.moved = append(c.moved, [2]string{src, dst})
		}
	}
	// The last replaced file had the squashed file's number: its move
	// made room for the new file.
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return c, &config.Error{Msg: fmt.Sprintf("squash: %v", err)}
	}
	c.created = path
	_, werr := f.WriteString(text)
	if err := f.Close(); werr == nil {
		werr = err
	}
	return c, werr
}

var squashNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
