package migrate

import (
	"fmt"
	"io/fs"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// NewFile is one file of a new migration, to be written into the folder.
type NewFile struct {
	Name string // "008_add_users.sql"
	Text string
}

// NameError says a name cannot become a migration file name.
type NameError struct {
	Name   string
	Reason string
}

func (e *NameError) Error() string { return fmt.Sprintf("migration name %q: %s", e.Name, e.Reason) }

// directiveTodo marks a file `dbinit new` wrote and nobody has written yet.
const directiveTodo = "-- dbinit:todo"

var nameCleanRE = regexp.MustCompile(`[^a-z0-9_]+`)

// Scaffold returns the next migration's up and down files for the folder
// fsys: the version after the highest in the folder, zero-padded like the
// folder's files (at least three digits), and name in lower case with every
// run of other characters turned into "_" ("Add users!" -> "add_users").
// It reads the folder's file names only; files that are not migrations are
// ignored, as Load ignores them.
func Scaffold(fsys fs.FS, name string) (up, down NewFile, err error) {
	clean := strings.Trim(nameCleanRE.ReplaceAllString(strings.ToLower(name), "_"), "_")
	switch {
	case clean == "":
		return up, down, &NameError{Name: name, Reason: "it has no letters or digits to make a file name from"}
	case strings.HasSuffix(clean, "_down"):
		return up, down, &NameError{Name: name, Reason: "it may not end in _down; the down file is made for you"}
	}
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return up, down, &LoadError{Dir: ".", Problems: []Problem{{Path: ".", Msg: "cannot read the migration folder: " + pathErrReason(err)}}}
	}
	var highest int64
	width := 3
	for _, e := range entries {
		m := fileNameRE.FindStringSubmatch(e.Name())
		if m == nil || e.IsDir() {
			continue
		}
		v, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil {
			return up, down, &NameError{Name: name, Reason: fmt.Sprintf("the folder has %s, whose version is too large to follow", e.Name())}
		}
		if v > highest {
			highest = v
		}
		width = max(width, len(m[1]))
	}
	if highest == math.MaxInt64 {
		return up, down, &NameError{Name: name, Reason: fmt.Sprintf("the highest version in the folder is %d, the largest there can be; no version can follow it", highest)}
	}
	base := fmt.Sprintf("%0*d_%s", width, highest+1, clean)
	up = NewFile{Name: base + ".sql", Text: fmt.Sprintf("-- %s: %s\n%s\n-- Write the migration below and remove the line above: until then dbinit refuses to run this file.\n"+
		"-- It runs in one transaction with its history row. For CREATE INDEX CONCURRENTLY and the like,\n-- put %q in these leading comment lines.\n\n",
		base, strings.ReplaceAll(clean, "_", " "), directiveTodo, directiveNoTransaction)}
	down = NewFile{Name: base + "_down.sql", Text: fmt.Sprintf("-- %s_down: reverses %s.sql\n%s\n-- Write the reverse below and remove the line above (or delete this file if there is none).\n\n",
		base, base, directiveTodo)}
	return up, down, nil
}
