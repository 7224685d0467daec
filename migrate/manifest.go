package migrate

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strconv"
	"strings"
)

// ManifestFile is the optional manifest beside the migration files. When it
// exists it is the reviewed record of the folder: every file with its
// checksum, and what only a person can say (a description, dependencies).
// A folder that disagrees with it never reaches a database.
const ManifestFile = "migrations.json"

// manifestFormat is the manifest's format version.
const manifestFormat = 1

// Manifest is db/migrations.json.
type Manifest struct {
	Format int `json:"format"`
	// Lint asks validate to run dbinit lint too (kept by hand).
	Lint       bool            `json:"lint,omitempty"`
	Migrations []ManifestEntry `json:"migrations"`
	// Head names the last version and a checksum of every entry. Every
	// change to the folder changes this one line, so two branches that
	// each add a migration conflict in git instead of merging into a
	// folder nobody reviewed.
	Head string `json:"head"`
}

// ManifestEntry is one version. Version, Name, Up, Down, Mode and Replaces
// come from the files (dbinit manifest writes them); Description and
// DependsOn are kept by hand and preserved.
type ManifestEntry struct {
	Version     int64   `json:"version"`
	Name        string  `json:"name"`
	Up          string  `json:"up"`             // Script.Checksum of the up file
	Down        string  `json:"down,omitempty"` // of the down file; "" when there is none
	Mode        string  `json:"mode"`           // "transaction" or "no-transaction"
	Replaces    string  `json:"replaces,omitempty"`
	Description string  `json:"description,omitempty"`
	DependsOn   []int64 `json:"depends_on,omitempty"`
}

// Transaction modes in the manifest.
const (
	ModeTransaction   = "transaction"
	ModeNoTransaction = "no-transaction"
)

// ManifestError says the folder and its manifest disagree: a file edited,
// renamed, renumbered, added or removed since the manifest was written, or
// a dependency that cannot hold. Nothing touched a database. Exit code 5.
type ManifestError struct {
	Dir      string
	Problems []Problem
}

func (e *ManifestError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s/%s and the folder disagree; nothing was run:", e.Dir, ManifestFile)
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

// readManifest parses migrations.json from fsys; nil when there is none.
func readManifest(fsys fs.FS, display string) (*Manifest, []Problem) {
	raw, err := fs.ReadFile(fsys, ManifestFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, []Problem{{Path: display, Msg: "cannot read: " + pathErrReason(err)}}
	}
	m, err := ParseManifest(raw)
	if err != nil {
		p := Problem{Path: display, Msg: err.Error()}
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		off := int64(-1)
		switch {
		case errors.As(err, &se):
			off = se.Offset
		case errors.As(err, &te):
			off = te.Offset
		}
		if off >= 0 {
			p.Line = bytes.Count(raw[:min(int(off), len(raw))], []byte("\n")) + 1
			p.Col = int(off) - bytes.LastIndexByte(raw[:min(int(off), len(raw))], '\n')
		}
		return nil, []Problem{p}
	}
	return m, nil
}

// ParseManifest reads a manifest strictly: an unknown field (a typo such as
// "depends-on") is an error rather than a dependency silently ignored.
func ParseManifest(raw []byte) (*Manifest, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("not a valid manifest: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("not a valid manifest: text after the JSON object")
	}
	if m.Format != manifestFormat {
		return nil, fmt.Errorf("manifest format %d; this dbinit reads format %d", m.Format, manifestFormat)
	}
	return &m, nil
}

// BuildManifest returns the manifest of set, keeping the hand-kept fields
// (description, depends_on) of old's entries for the same version and
// name. old may be nil.
func BuildManifest(set *Set, old *Manifest) *Manifest {
	kept := map[int64]ManifestEntry{}
	if old != nil {
		for _, e := range old.Migrations {
			kept[e.Version] = e
		}
	}
	m := &Manifest{Format: manifestFormat, Migrations: []ManifestEntry{}}
	if old != nil {
		m.Lint = old.Lint
	}
	for _, mig := range set.Migrations {
		e := entryOf(mig)
		if k, ok := kept[mig.Version]; ok && k.Name == mig.Name {
			e.Description, e.DependsOn = k.Description, slices.Clone(k.DependsOn)
			slices.Sort(e.DependsOn)
			e.DependsOn = slices.Compact(e.DependsOn)
		}
		m.Migrations = append(m.Migrations, e)
	}
	m.Head = head(m.Migrations)
	return m
}

func entryOf(mig *Migration) ManifestEntry {
	e := ManifestEntry{Version: mig.Version, Name: mig.Name, Up: mig.Up.Checksum, Mode: ModeTransaction}
	if mig.Down != nil {
		e.Down = mig.Down.Checksum
	}
	if mig.Up.NoTransaction {
		e.Mode = ModeNoTransaction
	}
	if r := mig.Up.Replaces; r != nil {
		e.Replaces = r.String()
	}
	return e
}

// head is "<last version>:<checksum of every entry>".
func head(entries []ManifestEntry) string {
	h := sha256.New()
	var last int64
	for _, e := range entries {
		fmt.Fprintf(h, "%d\x00%s\x00%s\x00%s\x00%s\x00%s\x00%v\n", e.Version, e.Name, e.Up, e.Down, e.Mode, e.Replaces, e.DependsOn)
		last = max(last, e.Version)
	}
	return strconv.FormatInt(last, 10) + ":" + hex.EncodeToString(h.Sum(nil))[:16]
}

// Marshal returns the manifest as written to disk: fixed field order, two
// spaces of indentation, a trailing newline. The same manifest always gives
// the same bytes.
func (m *Manifest) Marshal() []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		panic(err) // plain strings and numbers only
	}
	return b.Bytes()
}

// ManifestProblems compares the folder with its manifest: nil when there is
// no manifest or they agree.
func (s *Set) ManifestProblems() []Problem {
	if s.Manifest == nil {
		return nil
	}
	mf := s.manifestPath()
	var problems []Problem
	add := func(path, format string, args ...any) {
		problems = append(problems, Problem{Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	listed := map[int64]ManifestEntry{}
	for _, e := range s.Manifest.Migrations {
		if _, dup := listed[e.Version]; dup {
			add(mf, "lists version %d twice", e.Version)
		}
		listed[e.Version] = e
	}
	byName := map[string]*Migration{}
	for _, m := range s.Migrations {
		byName[m.Name] = m
	}
	for _, m := range s.Migrations {
		e, ok := listed[m.Version]
		if !ok {
			add(m.Up.Path, "is not in %s: run `dbinit manifest` and commit the result with the file", ManifestFile)
			continue
		}
		want := entryOf(m)
		switch {
		case e.Name != want.Name:
			add(m.Up.Path, "is listed in %s as version %d %q: a migration was renamed (restore the name, or run `dbinit manifest` if it has never been applied anywhere)", ManifestFile, e.Version, e.Name)
		case e.Up != want.Up:
			add(m.Up.Path, "was edited after %s recorded it (checksum %s, now %s): restore it, or write a new migration", ManifestFile, short(e.Up), short(want.Up))
		}
		switch {
		case e.Down != want.Down && want.Down == "":
			add(m.Up.Path, "lost its down file, which %s lists", ManifestFile)
		case e.Down != want.Down && e.Down == "":
			add(m.Down.Path, "is not in %s: run `dbinit manifest`", ManifestFile)
		case e.Down != want.Down:
			add(m.Down.Path, "was edited after %s recorded it: run `dbinit manifest` if that is deliberate", ManifestFile)
		}
		if e.Mode != want.Mode && e.Up == want.Up {
			add(m.Up.Path, "is listed as %q but the file says %q", e.Mode, want.Mode)
		}
		if e.Replaces != want.Replaces && e.Up == want.Up {
			add(m.Up.Path, "is listed with replaces %q but the file says %q", e.Replaces, want.Replaces)
		}
	}
	for _, e := range s.Manifest.Migrations {
		if s.Find(e.Version) != nil {
			continue
		}
		if m, ok := byName[e.Name]; ok {
			add(m.Up.Path, "is listed in %s as version %d: a migration was renumbered, which reorders what databases ran; restore its number", ManifestFile, e.Version)
			continue
		}
		if s.replaced(e.Version) != nil {
			continue // squashed: the file moved to squashed/
		}
		add(mf, "lists version %d (%s) but the folder has no such file: restore it (or run `dbinit manifest` if it was never applied anywhere)", e.Version, e.Name)
	}
	problems = append(problems, s.dependencyProblems()...)
	if len(problems) == 0 && s.Manifest.Head != head(s.Manifest.Migrations) {
		add(mf, "its head line does not match its entries (edited by hand, or a merge): run `dbinit manifest`")
	}
	return problems
}

// dependencyProblems checks depends_on: every dependency a version of the
// folder (or one a squashed file replaced), earlier than the version that
// needs it, and no cycles.
func (s *Set) dependencyProblems() []Problem {
	var problems []Problem
	for _, m := range s.Migrations {
		for _, d := range m.DependsOn {
			switch {
			case d == m.Version:
				problems = append(problems, Problem{Path: m.Up.Path, Msg: fmt.Sprintf("depends on itself (depends_on in %s)", ManifestFile)})
			case s.Find(d) == nil && s.replaced(d) == nil:
				problems = append(problems, Problem{Path: m.Up.Path, Msg: fmt.Sprintf("depends on version %d, which is not in the folder", d)})
			case d > m.Version:
				problems = append(problems, Problem{Path: m.Up.Path, Msg: fmt.Sprintf("depends on version %d, which comes after it: files apply in version order, so that can never hold; renumber one of them", d)})
			}
		}
	}
	if cycle := s.dependencyCycle(); cycle != nil {
		var names []string
		for _, v := range cycle {
			names = append(names, strconv.FormatInt(v, 10))
		}
		problems = append(problems, Problem{Path: s.manifestPath(), Msg: "depends_on has a cycle: " + strings.Join(names, " -> ")})
	}
	return problems
}

// dependencyCycle returns one cycle of depends_on, or nil.
func (s *Set) dependencyCycle() []int64 {
	const (
		unseen = iota
		active
		done
	)
	state := map[int64]int{}
	var stack []int64
	var visit func(v int64) []int64
	visit = func(v int64) []int64 {
		state[v] = active
		stack = append(stack, v)
		if m := s.Find(v); m != nil {
			for _, d := range m.DependsOn {
				switch state[d] {
				case active:
					i := slices.Index(stack, d)
					return append(slices.Clone(stack[i:]), d)
				case unseen:
					if c := visit(d); c != nil {
						return c
					}
				}
			}
		}
		stack = stack[:len(stack)-1]
		state[v] = done
		return nil
	}
	for _, m := range s.Migrations {
		if state[m.Version] == unseen {
			if c := visit(m.Version); c != nil {
				return c
			}
		}
	}
	return nil
}

func (s *Set) manifestPath() string { return strings.TrimSuffix(s.Dir, "/") + "/" + ManifestFile }

// CheckManifest returns a *ManifestError when the folder and its manifest
// disagree, nil otherwise (also when there is no manifest).
func (s *Set) CheckManifest() error {
	if p := s.ManifestProblems(); len(p) > 0 {
		return &ManifestError{Dir: s.Dir, Problems: p}
	}
	return nil
}
