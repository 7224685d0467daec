package migrate

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/savvi-studio/dbinit/internal/sqlsplit"
)

// setHashFormat is the version of what the migration-set hash covers
// (format 2: the text checksums). A dbinit that hashes differently never
// mistakes a template built by an older one for current. The history
// table's own layout (format 3) is upgraded in place by ensureHistory, so
// it needs no new hash.
const setHashFormat = 2

// directiveNoTransaction, as a leading comment line, runs a file statement by
// statement outside a transaction.
const directiveNoTransaction = "-- dbinit:no-transaction"

// Migration is one version: its up file and, when there is one, its down file.
type Migration struct {
	Version int64   // 7 for "007_add_users.sql"
	Name    string  // "add_users"
	Up      *Script // never nil
	Down    *Script // nil when there is no down file
	// DependsOn lists versions that must be applied before this one
	// (depends_on in the manifest).
	DependsOn []int64
}

// Range is an inclusive range of versions, "1-7".
type Range struct{ From, To int64 }

func (r Range) String() string { return fmt.Sprintf("%d-%d", r.From, r.To) }

// LintIgnore is one -- dbinit:lint-ignore line: the rules it silences, for
// the whole file (in the leading comment block) or for the statement that
// follows it.
type LintIgnore struct {
	Line  int // 1-based line of the directive
	Rules []string
	File  bool
}

// ReplacedFile is one file a squashed file replaces.
type ReplacedFile struct {
	Version  int64
	Name     string
	Checksum string // the file's text checksum, or a prefix of it (at least 16 hex digits)
}

// Contains reports whether v is in the range.
func (r Range) Contains(v int64) bool { return v >= r.From && v <= r.To }

// Script is one checked, split SQL file.
type Script struct {
	File string // name inside the folder, "007_add_users.sql"
	Path string // name as shown to users, "db/007_add_users.sql"
	SQL  string // text sent to the server: the file without a UTF-8 BOM
	// Checksum is the hex SHA-256 of the file's text with a leading
	// byte-order mark dropped and line endings made "\n": a file checked out
	// with CRLF on Windows has the same checksum.
	Checksum string
	// BytesChecksum is the hex SHA-256 of the file's bytes as found on disk,
	// the checksum dbinit recorded before history format 2.
	BytesChecksum string
	NoTransaction bool        // the file starts with -- dbinit:no-transaction
	Statements    []Statement // the statements, in order; comment-only pieces are left out
	// Todo: the file still has the -- dbinit:todo line `dbinit new` writes:
	// it is not written yet, and is refused when it would run.
	Todo bool
	// Replaces is the file's -- dbinit:replaces FROM-TO: a squashed file
	// that stands for versions FROM to TO (its own), whose files moved out
	// of the folder. nil for ordinary files.
	Replaces *Range
	// ReplacedFiles are the files a squashed file replaces, as a database
	// must have them applied for the squashed file to be recorded over
	// them: its -- dbinit:replaced lines (dbinit squash writes them), else
	// the files in the folder's squashed/ subfolder.
	ReplacedFiles []ReplacedFile
	// LintIgnore are the file's -- dbinit:lint-ignore lines.
	LintIgnore []LintIgnore
	// LockTimeout and StatementTimeout are the file's own -- dbinit:lock-timeout
	// and -- dbinit:statement-timeout; nil when it sets none (the
	// Migrator's apply).
	LockTimeout, StatementTimeout *time.Duration

	dropsPrepared bool // a statement is DISCARD or DEALLOCATE

	// sendable is SQL followed by resetAfterFile, in the same memory as
	// SQL: what a transactional file sends, without copying a large file
	// once more to append the trailer. "" for a Script not made by Load.
	sendable string
}

// withTrailer returns SQL followed by resetAfterFile.
func (s *Script) withTrailer() string {
	if s.sendable != "" {
		return s.sendable
	}
	return s.SQL + resetAfterFile
}

// Statement is one statement of a script, cut where psql would cut it.
type Statement struct {
	// Text is the statement as it is sent, with the comments and white
	// space before it, up to and including its ";".
	Text string
	// Offset is the byte offset of Text in Script.SQL.
	Offset int
	// Start is the byte offset in Text of the statement's first token.
	Start int
	// Line is the 1-based line of the statement's first token in the file.
	Line int

	dropsPrepared bool   // DISCARD or DEALLOCATE: the session's prepared statements are gone after it
	setsSession   bool   // SET or RESET of a session setting (search_path, ROLE, ...): replayed on resume
	index, table  string // CREATE INDEX CONCURRENTLY: the index's name ("" when unnamed) and its table as written
	concurrent    bool   // CREATE INDEX CONCURRENTLY
}

// SQL returns the statement without the comments and white space before it.
func (s Statement) SQL() string { return s.Text[s.Start:] }

// Set is a loaded, checked migration folder.
type Set struct {
	Dir        string       // folder as shown to users, "db"
	Migrations []*Migration // ordered by Version
	Manifest   *Manifest    // the folder's migrations.json; nil when it has none
}

// Problem is one thing wrong with a migration folder.
type Problem struct {
	Path      string // "db/007_add_users.sql"; the folder itself for folder-wide problems
	Line, Col int    // 1-based; 0 when the problem concerns the whole file
	Msg       string
}

func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d:%d: %s", p.Path, p.Line, p.Col, p.Msg)
	}
	return fmt.Sprintf("%s: %s", p.Path, p.Msg)
}

// LoadError lists every problem found in a migration folder. Nothing has
// touched a database when it is returned. It maps to exit code 2.
type LoadError struct {
	Dir      string
	Problems []Problem
}

func (e *LoadError) Error() string {
	var b strings.Builder
	if len(e.Problems) == 1 {
		p := e.Problems[0]
		if p.Path == e.Dir && p.Line == 0 {
			return fmt.Sprintf("migration folder %s: %s", e.Dir, p.Msg)
		}
		fmt.Fprintf(&b, "migration folder %s: %s", e.Dir, p)
		return b.String()
	}
	fmt.Fprintf(&b, "migration folder %s has %d problems:", e.Dir, len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

// fileNameRE is the shape of a migration file name. The name part is kept to
// characters that need no quoting in shells, URLs or YAML.
var fileNameRE = regexp.MustCompile(`^([0-9]+)_([A-Za-z0-9][A-Za-z0-9_.-]*)\.sql$`)

var directiveRE = regexp.MustCompile(`^\s*--\s*dbinit:\s*(\S*)[ \t]*(.*?)\s*$`)

// LoadDir loads the migration folder dir from disk. A file that is a
// symbolic link is read only when the link resolves inside the folder (the
// layout of a Kubernetes ConfigMap or Secret mount: 001_a.sql ->
// ..data/001_a.sql); a link leading anywhere else is a problem, and its
// target is never read.
func LoadDir(dir string) (*Set, error) { return LoadDirWith(dir, LoadOptions{}) }

// LoadOptions change what loading reads.
type LoadOptions struct {
	// SkipManifest loads the files without the folder's migrations.json
	// (for writing it anew when it cannot be read).
	SkipManifest bool
}

// LoadDirWith is LoadDir with options.
func LoadDirWith(dir string, opts LoadOptions) (*Set, error) {
	fail := func(msg string) (*Set, error) {
		return nil, &LoadError{Dir: dir, Problems: []Problem{{Path: dir, Msg: msg}}}
	}
	st, err := os.Stat(dir)
	if err != nil {
		return fail("cannot read the migration folder: " + pathErrReason(err))
	}
	if !st.IsDir() {
		return fail("not a folder")
	}
	if problems := outsideLinks(dir); len(problems) > 0 {
		return nil, &LoadError{Dir: dir, Problems: problems}
	}
	// os.Root refuses, again, any path that would leave the folder: a link
	// changed after the check above cannot lead out either.
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fail("cannot read the migration folder: " + pathErrReason(err))
	}
	defer root.Close()
	return load(root.FS(), dir, opts)
}

// outsideLinks reports the .sql entries of dir that are symbolic links
// resolving outside dir.
func outsideLinks(dir string) []Problem {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil // Load reports it
	}
	base, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil
	}
	var problems []Problem
	for _, e := range entries {
		if e.Type()&fs.ModeSymlink == 0 || !strings.EqualFold(path.Ext(e.Name()), ".sql") {
			continue
		}
		display := path.Join(filepathToSlash(dir), e.Name())
		target, err := filepath.EvalSymlinks(filepath.Join(dir, e.Name()))
		if err != nil {
			problems = append(problems, Problem{Path: display, Msg: "is a symbolic link that leads nowhere: " + pathErrReason(err)})
			continue
		}
		if rel, err := filepath.Rel(base, target); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			problems = append(problems, Problem{Path: display, Msg: "is a symbolic link to a file outside the migration folder; dbinit follows links only when they stay inside the folder (as a Kubernetes ConfigMap mount's do): copy the file into the folder instead"})
		}
	}
	return problems
}

// Load reads every migration file at the top of fsys. dir is how the folder is
// named in messages ("db"). Every file is checked and split before Load
// returns; all problems are reported together in a *LoadError.
func Load(fsys fs.FS, dir string) (*Set, error) { return load(fsys, dir, LoadOptions{}) }

func load(fsys fs.FS, dir string, opts LoadOptions) (*Set, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, &LoadError{Dir: dir, Problems: []Problem{{Path: dir, Msg: "cannot read the migration folder: " + pathErrReason(err)}}}
	}
	var (
		problems []Problem
		ups      = map[int64]*Script{}
		upNames  = map[int64]string{}
		downs    = map[int64]*Script{}
		downName = map[int64]string{}
	)
	display := func(name string) string { return path.Join(filepathToSlash(dir), name) }
	type job struct {
		name, base string
		version    int64
		isDown     bool
	}
	var jobs []job
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.EqualFold(path.Ext(name), ".sql") {
			continue // README.md, migrations.json, subfolders: not ours
		}
		m := fileNameRE.FindStringSubmatch(name)
		if m == nil {
			problems = append(problems, Problem{Path: display(name), Msg: "name does not match <digits>_<name>.sql or <digits>_<name>_down.sql (name: letters, digits, _ . -; extension lower case)"})
			continue
		}
		version, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil {
			problems = append(problems, Problem{Path: display(name), Msg: fmt.Sprintf("version %s is too large", m[1])})
			continue
		}
		if version == 0 {
			problems = append(problems, Problem{Path: display(name), Msg: "version 0 is reserved (it means \"nothing applied\"); start at 1"})
			continue
		}
		base, isDown := strings.CutSuffix(m[2], "_down")
		if isDown && base == "" {
			problems = append(problems, Problem{Path: display(name), Msg: "down file has no name before _down"})
			continue
		}
		jobs = append(jobs, job{name: name, version: version, base: base, isDown: isDown})
	}
	// Reading, checking and splitting the files is most of loading: done
	// in parallel, one file per goroutine of a pool, collected in order.
	parsed := make([]struct {
		s        *Script
		problems []Problem
		err      error
	}, len(jobs))
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(runtime.GOMAXPROCS(0), len(jobs)) {
		wg.Go(func() {
			for i := range next {
				raw, err := readScript(fsys, jobs[i].name)
				if err != nil {
					parsed[i].err = err
					continue
				}
				parsed[i].s, parsed[i].problems = parseScript(jobs[i].name, display(jobs[i].name), raw)
			}
		})
	}
	for i := range jobs {
		next <- i
	}
	close(next)
	wg.Wait()
	for i, j := range jobs {
		name, version, base, isDown := j.name, j.version, j.base, j.isDown
		if err := parsed[i].err; err != nil {
			problems = append(problems, Problem{Path: display(name), Msg: "cannot read: " + pathErrReason(err)})
			continue
		}
		s := parsed[i].s
		problems = append(problems, parsed[i].problems...)
		if isDown {
			if prev, dup := downs[version]; dup {
				problems = append(problems, Problem{Path: display(name), Msg: fmt.Sprintf("version %d already has a down file %s", version, prev.File)})
				continue
			}
			downs[version], downName[version] = s, base
		} else {
			if prev, dup := ups[version]; dup {
				problems = append(problems, Problem{Path: display(name), Msg: fmt.Sprintf("version %d is also used by %s (versions compare by value: 007 and 7 are the same)", version, prev.File)})
				continue
			}
			ups[version], upNames[version] = s, base
		}
	}
	for v, d := range downs {
		up, ok := ups[v]
		switch {
		case !ok:
			problems = append(problems, Problem{Path: d.Path, Msg: fmt.Sprintf("down file without an up file: there is no version %d", v)})
		case upNames[v] != downName[v]:
			problems = append(problems, Problem{Path: d.Path, Msg: fmt.Sprintf("down file's name does not match its up file %s (expected %s)", up.File, strings.TrimSuffix(up.File, ".sql")+"_down.sql")})
		}
	}
	for _, d := range downs {
		if d.Replaces != nil {
			problems = append(problems, Problem{Path: d.Path, Msg: "dbinit:replaces belongs in the up file of a squashed migration, not in its down file"})
		}
	}
	for v, up := range ups {
		r := up.Replaces
		if r == nil {
			if len(up.ReplacedFiles) > 0 {
				problems = append(problems, Problem{Path: up.Path, Msg: "has dbinit:replaced lines but no dbinit:replaces FROM-TO"})
			}
			continue
		}
		if len(up.ReplacedFiles) == 0 {
			up.ReplacedFiles = squashedFiles(fsys, *r)
		}
		problems = append(problems, checkReplacedFiles(up, v)...)
		if r.To != v || r.From < 1 || r.From > r.To {
			problems = append(problems, Problem{Path: up.Path, Msg: fmt.Sprintf("dbinit:replaces %s: a squashed file carries the last version it replaces (replaces 1-%d for version %d)", r, v, v)})
			continue
		}
		for ov, other := range ups {
			switch {
			case ov != v && r.Contains(ov):
				problems = append(problems, Problem{Path: other.Path, Msg: fmt.Sprintf("version %d is replaced by %s (dbinit:replaces %s): move this file out of the folder (dbinit squash puts replaced files in squashed/)", ov, up.File, r)})
			case ov != v && other.Replaces != nil && other.Replaces.From <= r.To && r.From <= other.Replaces.To && ov > v:
				problems = append(problems, Problem{Path: other.Path, Msg: fmt.Sprintf("dbinit:replaces %s overlaps %s (replaces %s)", other.Replaces, up.File, r)})
			}
		}
	}
	var manifest *Manifest
	if !opts.SkipManifest {
		var manifestProblems []Problem
		manifest, manifestProblems = readManifest(fsys, display(ManifestFile))
		problems = append(problems, manifestProblems...)
	}
	if len(problems) > 0 {
		slices.SortStableFunc(problems, func(a, b Problem) int { return strings.Compare(a.Path, b.Path) })
		return nil, &LoadError{Dir: dir, Problems: problems}
	}
	set := &Set{Dir: dir, Manifest: manifest}
	for v, up := range ups {
		set.Migrations = append(set.Migrations, &Migration{Version: v, Name: upNames[v], Up: up, Down: downs[v]})
	}
	slices.SortFunc(set.Migrations, func(a, b *Migration) int { return cmpInt64(a.Version, b.Version) })
	if manifest != nil {
		for _, e := range manifest.Migrations {
			if m := set.Find(e.Version); m != nil && m.Name == e.Name {
				m.DependsOn = slices.Clone(e.DependsOn)
			}
		}
	}
	return set, nil
}

// squashedFiles reads the up files in the folder's squashed/ subfolder
// whose versions are in r: what a squashed file without dbinit:replaced
// lines replaces. Unreadable or misnamed files are left out (the squashed
// file is then refused where it would be recorded).
func squashedFiles(fsys fs.FS, r Range) []ReplacedFile {
	entries, err := fs.ReadDir(fsys, squashedDir)
	if err != nil {
		return nil
	}
	var out []ReplacedFile
	for _, e := range entries {
		m := fileNameRE.FindStringSubmatch(e.Name())
		if m == nil || e.IsDir() || strings.HasSuffix(m[2], "_down") {
			continue
		}
		v, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil || !r.Contains(v) {
			continue
		}
		raw, err := fs.ReadFile(fsys, squashedDir+"/"+e.Name())
		if err != nil {
			continue
		}
		out = append(out, ReplacedFile{Version: v, Name: m[2], Checksum: textChecksum(raw)})
	}
	slices.SortFunc(out, func(a, b ReplacedFile) int { return cmpInt64(a.Version, b.Version) })
	return out
}

// squashedDir is the subfolder dbinit squash moves replaced files to.
const squashedDir = "squashed"

// checkReplacedFiles checks a squashed file's list of replaced files: in
// its range, one per version, its own version among them.
func checkReplacedFiles(up *Script, version int64) []Problem {
	r := up.Replaces
	if len(up.ReplacedFiles) == 0 {
		return nil // refused where it would be recorded, with what to do
	}
	var problems []Problem
	seen := map[int64]bool{}
	for _, f := range up.ReplacedFiles {
		switch {
		case !r.Contains(f.Version):
			problems = append(problems, Problem{Path: up.Path, Msg: fmt.Sprintf("dbinit:replaced %d is outside dbinit:replaces %s", f.Version, r)})
		case seen[f.Version]:
			problems = append(problems, Problem{Path: up.Path, Msg: fmt.Sprintf("dbinit:replaced lists version %d twice", f.Version)})
		}
		seen[f.Version] = true
	}
	if !seen[version] {
		problems = append(problems, Problem{Path: up.Path, Msg: fmt.Sprintf("dbinit:replaced does not list version %d, the last replaced file, whose number the squashed file carries", version)})
	}
	return problems
}

// replaced returns the squashed migration that replaces version v (v below
// its own version), or nil.
func (s *Set) replaced(v int64) *Migration {
	for _, m := range s.Migrations {
		if r := m.Up.Replaces; r != nil && r.Contains(v) && v != m.Version {
			return m
		}
	}
	return nil
}

// readScript reads a migration file into a buffer with room after it for
// resetAfterFile, so that a large file is held in memory once (see
// parseScript).
func readScript(fsys fs.FS, name string) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size := 0
	if info, err := f.Stat(); err == nil && info.Size() < 1<<40 {
		size = int(info.Size())
	}
	buf := make([]byte, 0, size+len(resetAfterFile)+1)
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, 64<<10)
		}
		n, err := f.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// parseScript checks one file and splits it into statements. It takes
// raw over: the Script's strings share its memory, so it must not change
// afterwards.
func parseScript(file, display string, raw []byte) (*Script, []Problem) {
	sum := sha256.Sum256(raw)
	bytesSum := hex.EncodeToString(sum[:])
	textSum := bytesSum // the same text, unless it has a BOM or CRs to drop
	if bytes.HasPrefix(raw, []byte("\uFEFF")) || bytes.IndexByte(raw, '\r') >= 0 {
		textSum = textChecksum(raw)
	}
	s := &Script{File: file, Path: display, BytesChecksum: bytesSum, Checksum: textSum}
	at := func(src string, off int, msg string) Problem {
		line, col := sqlsplit.Pos(src, off)
		return Problem{Path: display, Line: line, Col: col, Msg: msg}
	}
	if i := bytes.IndexByte(raw, 0); i >= 0 {
		return s, []Problem{at(string(raw[:i]), i, "contains a NUL byte; migration files must be UTF-8 text")}
	}
	if !utf8.Valid(raw) {
		i := firstInvalidUTF8(raw)
		return s, []Problem{at(string(raw[:i]), i, "is not valid UTF-8; save the file as UTF-8")}
	}
	// An empty or comment-only file is a no-op that is recorded like any
	// other: projects keep such files to hold a version number.
	//
	// The file's text is held once: SQL, every statement's Text and the
	// text sent with its trailer (sendable) are strings over raw's memory,
	// with the trailer appended in the room readScript left (a 50 MB seed
	// file is then 50 MB, not 150, until it is sent).
	n := len(raw)
	buf := append(raw, resetAfterFile...)
	whole := unsafe.String(unsafe.SliceData(buf), len(buf))
	bom := 0
	if strings.HasPrefix(whole, "\uFEFF") {
		bom = len("\uFEFF")
	}
	text := whole[bom:n]
	s.SQL, s.sendable = text, whole[bom:]

	var problems []Problem
	dirs, directiveProblems := directives(display, text)
	problems = append(problems, directiveProblems...)
	noTx := dirs.noTx
	s.NoTransaction = noTx
	s.Todo = dirs.todo
	s.LockTimeout, s.StatementTimeout = dirs.lockTimeout, dirs.statementTimeout
	s.Replaces, s.ReplacedFiles = dirs.replaces, dirs.replaced
	s.LintIgnore = dirs.lintIgnore

	a := sqlsplit.Analyze(text) // one pass: statements, an open quote, meta-commands
	if p := a.Unterminated; p != nil {
		problems = append(problems, Problem{Path: display, Line: p.Line, Col: p.Col, Msg: p.Msg})
	}
	for _, p := range a.MetaCommands {
		problems = append(problems, Problem{Path: display, Line: p.Line, Col: p.Col, Msg: p.Msg})
	}
	for _, st := range a.Statements {
		if st.Empty {
			continue
		}
		ms := Statement{Text: st.Text, Offset: st.Offset, Start: st.Start, Line: st.Line + strings.Count(st.Text[:st.Start], "\n")}
		kw := st.Keywords(2)
		if len(kw) > 0 && (kw[0] == "DISCARD" || kw[0] == "DEALLOCATE") {
			ms.dropsPrepared = true
			s.dropsPrepared = true
		}
		if len(kw) > 1 && (kw[0] == "SET" || kw[0] == "RESET") && kw[1] != "LOCAL" && kw[1] != "TRANSACTION" && kw[1] != "CONSTRAINTS" {
			ms.setsSession = true
		}
		ms.index, ms.table, ms.concurrent = st.ConcurrentIndex()
		s.Statements = append(s.Statements, ms)
		start := st.Offset + st.Start
		if st.TransactionControl() {
			problems = append(problems, at(text, start, fmt.Sprintf("%s: transaction control is not allowed in migrations; dbinit runs each file in its own transaction (or, with %q, statement by statement)", strings.Join(st.Keywords(2), " "), directiveNoTransaction)))
		}
		if st.CopyFromStdin() {
			problems = append(problems, at(text, start, "COPY ... FROM STDIN needs psql to feed the data; use INSERT, or COPY from a file the server can read"))
		}
		if what, ok := st.NoTransaction(); ok && !noTx {
			problems = append(problems, at(text, start, fmt.Sprintf("%s cannot run inside a transaction; add the line %q at the top of the file so it runs statement by statement", what, directiveNoTransaction)))
		}
	}
	return s, problems
}

// fileDirectives are what a file's leading comment block asks for.
type fileDirectives struct {
	noTx             bool
	todo             bool
	lockTimeout      *time.Duration
	statementTimeout *time.Duration
	replaces         *Range
	replaced         []ReplacedFile
	lintIgnore       []LintIgnore
}

// knownDirectives lists the directives, for the message about an unknown one.
const knownDirectives = "no-transaction, lock-timeout DURATION, statement-timeout DURATION, replaces FROM-TO, replaced VERSION NAME CHECKSUM, lint-ignore RULE, todo"

// directives reads "-- dbinit:..." lines. They count only in the leading
// comment block; anywhere else they would silently do nothing, so they are
// reported.
func directives(display, text string) (d fileDirectives, problems []Problem) {
	leading := true
	for i, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if leading && trimmed != "" && !strings.HasPrefix(trimmed, "--") {
			leading = false
		}
		if !strings.Contains(line, "dbinit:") {
			continue // most lines: no need for the regular expression
		}
		m := directiveRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		col := strings.Index(line, "--") + 1
		bad := func(msg string) { problems = append(problems, Problem{Path: display, Line: i + 1, Col: col, Msg: msg}) }
		duration := func() *time.Duration {
			v, err := time.ParseDuration(m[2])
			if m[2] == "0" {
				v, err = 0, nil
			}
			if err != nil || v < 0 {
				bad(fmt.Sprintf("dbinit:%s needs a duration such as 30s, 5m or 0 (none), not %q", m[1], m[2]))
				return nil
			}
			return &v
		}
		switch {
		case m[1] == "lint-ignore":
			// Anywhere: in the leading block for the whole file, else for
			// the statement that follows.
			rules := strings.FieldsFunc(m[2], func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
			if len(rules) == 0 {
				bad("dbinit:lint-ignore needs the name of a lint rule (dbinit lint --help lists them)")
				continue
			}
			d.lintIgnore = append(d.lintIgnore, LintIgnore{Line: i + 1, Rules: rules, File: leading})
		case !leading:
			bad("dbinit directives only count in the comment lines at the top of the file, before any SQL")
		case m[1] == "no-transaction":
			d.noTx = true
		case m[1] == "todo":
			d.todo = true
		case m[1] == "lock-timeout":
			d.lockTimeout = duration()
		case m[1] == "statement-timeout":
			d.statementTimeout = duration()
		case m[1] == "replaces":
			from, to, ok := strings.Cut(m[2], "-")
			f, err1 := strconv.ParseInt(strings.TrimSpace(from), 10, 64)
			t, err2 := strconv.ParseInt(strings.TrimSpace(to), 10, 64)
			if !ok || err1 != nil || err2 != nil {
				bad(fmt.Sprintf("dbinit:replaces needs a range of versions such as 1-7, not %q", m[2]))
				continue
			}
			d.replaces = &Range{From: f, To: t}
		case m[1] == "replaced":
			f := strings.Fields(m[2])
			var v int64
			var err error = errors.New("fields")
			if len(f) == 3 {
				v, err = strconv.ParseInt(f[0], 10, 64)
			}
			if err != nil || len(f[2]) < 16 || strings.Trim(f[2], "0123456789abcdef") != "" {
				bad(fmt.Sprintf("dbinit:replaced needs VERSION NAME CHECKSUM (at least 16 hex digits), not %q", m[2]))
				continue
			}
			d.replaced = append(d.replaced, ReplacedFile{Version: v, Name: f[1], Checksum: f[2]})
		default:
			bad(fmt.Sprintf("unknown directive dbinit:%s (known: %s)", strings.TrimSpace(m[1]+" "+m[2]), knownDirectives))
		}
	}
	return d, problems
}

// normalize drops a leading byte-order mark and makes every line ending
// "\n", so that a file's checksum does not depend on how git checked it
// out.
func normalize(raw []byte) []byte {
	raw = bytes.TrimPrefix(raw, []byte("\uFEFF"))
	if bytes.IndexByte(raw, '\r') < 0 {
		return raw
	}
	raw = bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n"))
	return bytes.ReplaceAll(raw, []byte("\r"), []byte("\n"))
}

func textChecksum(raw []byte) string {
	sum := sha256.Sum256(normalize(raw))
	return hex.EncodeToString(sum[:])
}

// Checksum kinds recorded in the history (checksum_kind).
const (
	ChecksumText  = "text"  // Script.Checksum: line endings and a byte-order mark ignored
	ChecksumBytes = "bytes" // Script.BytesChecksum: rows from before history format 2
)

// Matches reports whether the file is the one a history row recorded: by
// the text checksum for rows that record one, and for older rows, which
// recorded the bytes, by the bytes as they are or as they would be with LF
// or CRLF line endings, with or without a byte-order mark.
func (s *Script) Matches(a Applied) bool {
	if a.RecordedOver && s.Replaces == nil && a.Replaced != nil {
		// The release before a squash, on a history the squash was
		// recorded over: its last replaced file is what the row recorded
		// first.
		a = *a.Replaced
	}
	if a.ChecksumKind != ChecksumBytes {
		return a.Checksum == s.Checksum
	}
	if a.Checksum == s.BytesChecksum {
		return true
	}
	lf := []byte(strings.ReplaceAll(s.SQL, "\r\n", "\n"))
	lf = bytes.ReplaceAll(lf, []byte("\r"), []byte("\n"))
	crlf := bytes.ReplaceAll(lf, []byte("\n"), []byte("\r\n"))
	for _, v := range [][]byte{lf, crlf} {
		for _, bom := range []string{"", "\uFEFF"} {
			sum := sha256.Sum256(append([]byte(bom), v...))
			if hex.EncodeToString(sum[:]) == a.Checksum {
				return true
			}
		}
	}
	return false
}

// Hash identifies the migration set for template reuse: the history format
// plus the version, name and text checksum of every up file. A template
// built from the same hash is the same database.
func (s *Set) Hash() string { return s.HashUpTo(s.Latest()) }

// HashUpTo is the Hash of the set's files up to and including version: a
// template built from a set whose Hash equals it holds exactly those files,
// and this set adds only files after them.
func (s *Set) HashUpTo(version int64) string { return s.hashUpTo(version, setHashFormat) }

// LegacyHashUpTo is HashUpTo as a dbinit before history format 2 computed
// it (over the bytes checksums): a template it built holds the same files
// when its set hash equals this.
func (s *Set) LegacyHashUpTo(version int64) string { return s.hashUpTo(version, 1) }

func (s *Set) hashUpTo(version int64, format int) string {
	h := sha256.New()
	fmt.Fprintf(h, "dbinit-set\x00format=%d\x00", format)
	var buf [8]byte
	for _, m := range s.Migrations {
		if m.Version > version {
			break
		}
		binary.BigEndian.PutUint64(buf[:], uint64(m.Version))
		h.Write(buf[:])
		sum := m.Up.Checksum
		if format == 1 {
			sum = m.Up.BytesChecksum
		}
		fmt.Fprintf(h, "%s\x00%s\x00", m.Name, sum)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Unwritten lists the files that still carry the -- dbinit:todo line of
// `dbinit new`, as problems: running one would record an empty
// migration, and writing it later would be drift.
func (s *Set) Unwritten() []Problem {
	var out []Problem
	for _, m := range s.Migrations {
		for _, sc := range []*Script{m.Up, m.Down} {
			if sc != nil && sc.Todo {
				out = append(out, Problem{Path: sc.Path, Msg: todoMsg})
			}
		}
	}
	return out
}

const todoMsg = "still has the -- dbinit:todo line that dbinit new writes: write the migration (and remove the line), or delete the file"

// Latest returns the highest version in the set, 0 when it is empty.
func (s *Set) Latest() int64 {
	if len(s.Migrations) == 0 {
		return 0
	}
	return s.Migrations[len(s.Migrations)-1].Version
}

// Find returns the migration with the given version.
func (s *Set) Find(version int64) *Migration {
	i, ok := slices.BinarySearchFunc(s.Migrations, version, func(m *Migration, v int64) int { return cmpInt64(m.Version, v) })
	if !ok {
		return nil
	}
	return s.Migrations[i]
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func firstInvalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(b)
}

func pathErrReason(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

func filepathToSlash(p string) string { return strings.ReplaceAll(p, string(os.PathSeparator), "/") }
