package migrate

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/savvi-studio/dbinit/internal/sqlsplit"
)

// DriftItem is one disagreement between the folder and the history.
type DriftItem struct {
	Version int64
	File    string // path of the file, or the recorded name when the file is gone
	Msg     string
}

// DriftError says the history and the folder disagree: applied files that
// changed, applied versions whose file is gone, new files below the highest
// applied version, partial files that cannot resume. Nothing was applied.
// Returned by PlanUp, PlanDown and the Migrator; exit code 5.
type DriftError struct {
	Dir        string
	Changed    []DriftItem
	Missing    []DriftItem
	OutOfOrder []DriftItem
	Partial    []DriftItem
}

func (e *DriftError) any() bool {
	return len(e.Changed)+len(e.Missing)+len(e.OutOfOrder)+len(e.Partial) > 0
}

func (e *DriftError) Error() string {
	var b strings.Builder
	b.WriteString("drift: the history and the migration folder disagree; nothing was applied")
	for _, group := range [][]DriftItem{e.Changed, e.Missing, e.OutOfOrder, e.Partial} {
		for _, it := range group {
			fmt.Fprintf(&b, "\n  %s (version %d) %s", it.File, it.Version, it.Msg)
		}
	}
	return b.String()
}

// PlanError says a requested run cannot be carried out as asked (e.g. a down
// file is missing). Nothing was run. Exit code 2.
type PlanError struct{ Problems []string }

func (e *PlanError) Error() string {
	if len(e.Problems) == 1 {
		return "cannot plan: " + e.Problems[0] + "; nothing was run"
	}
	return "cannot plan; nothing was run:\n  " + strings.Join(e.Problems, "\n  ")
}

// LockTimeoutError says another runner held the migration lock for longer than
// the lock timeout. Exit code 6.
type LockTimeoutError struct {
	Waited time.Duration
	Holder string // "pid 4711, application dbinit, connected since 12:00:01", when known
}

func (e *LockTimeoutError) Error() string {
	msg := fmt.Sprintf("another runner held the migration lock for %s (DBINIT_LOCK_TIMEOUT)", e.Waited.Round(time.Millisecond))
	if e.Holder != "" {
		msg += ": " + e.Holder
	}
	return msg
}

// SQLError is a failed statement in a migration file, placed in the file.
// Exit code 1.
type SQLError struct {
	Path      string // "db/007_add_users.sql"
	Version   int64
	Line, Col int    // 1-based, characters, in the file; 0 when the server gives no place
	Statement int    // 1-based number of the failing statement in the file; 0 when unknown
	Source    string // the file's line at Line
	// AtCommit: the file ran, and COMMIT failed (a deferred constraint or
	// constraint trigger); no statement of the file is to blame alone.
	AtCommit bool
	Err      *pgconn.PgError
}

// LockLostError says dbinit's lock was no longer held while it worked (an
// administrator or idle_session_timeout ended the lock's session, or the
// file released it: DISCARD ALL, pg_advisory_unlock_all on the migrated
// connection), or another runner recorded a file this run was applying.
// The run stopped; the file in hand was rolled back. Exit code 6.
type LockLostError struct {
	Path string // the file in hand
	Why  string
}

func (e *LockLostError) Error() string {
	return fmt.Sprintf("%s: %s; stopped so that no other runner's work overlaps this one's (the file was rolled back): run dbinit again", e.Path, e.Why)
}

// ConnectionLostError says the connection to the server broke while a
// file ran (the server restarted, an administrator ended the session, the
// network failed). A transactional file was rolled back by the server and is
// not recorded; in a no-transaction file, the statement that was running
// may or may not have completed, and the file stays partial. Exit code 3.
type ConnectionLostError struct {
	Path          string // "db/007_add_users.sql"
	Statement     int    // 1-based statement that was running; 0 for a transactional file
	NoTransaction bool
	// AtCommit: the file had run and the connection broke while its history
	// row and COMMIT were sent: it may or may not be committed.
	AtCommit bool
	Err      error
}

func (e *ConnectionLostError) Error() string {
	if e.AtCommit {
		return fmt.Sprintf("connection to the server lost while committing %s: it may or may not have been committed (the file and its history row commit together, so the next run sees which and applies it only if it is not recorded): %v", e.Path, e.Err)
	}
	if e.NoTransaction {
		return fmt.Sprintf("connection to the server lost while running %s (statement %d); the statements before it are recorded, "+
			"that one may or may not have completed: run dbinit again when the server is back (it resumes there): %v", e.Path, e.Statement, e.Err)
	}
	return fmt.Sprintf("connection to the server lost while running %s; the server rolled the file back and it is not recorded: run dbinit again when the server is back: %v", e.Path, e.Err)
}

func (e *ConnectionLostError) Unwrap() error { return e.Err }

func (e *SQLError) Unwrap() error { return e.Err }

// Error renders the failure like a compiler does: FILE:LINE:COL, SQLSTATE and
// message, the server's DETAIL, HINT, CONTEXT and inner QUERY, then the source
// line with a caret under the column.
func (e *SQLError) Error() string {
	var b strings.Builder
	p := e.Err
	place := e.Path
	switch {
	case e.Line > 0:
		place = fmt.Sprintf("%s:%d:%d", e.Path, e.Line, e.Col)
	case e.AtCommit:
		place = e.Path + ": at COMMIT, after every statement of the file ran (a deferred constraint or trigger); the file was rolled back"
	}
	fmt.Fprintf(&b, "%s: %s %s: %s", place, p.Severity, p.Code, p.Message)
	if p.Detail != "" {
		fmt.Fprintf(&b, "\nDETAIL: %s", p.Detail)
	}
	if p.Hint != "" {
		fmt.Fprintf(&b, "\nHINT: %s", p.Hint)
	}
	if p.Where != "" {
		fmt.Fprintf(&b, "\nCONTEXT: %s", p.Where)
	}
	if p.InternalQuery != "" {
		fmt.Fprintf(&b, "\nQUERY: %s", p.InternalQuery)
	}
	if e.Line > 0 {
		gutter := fmt.Sprintf("%5d | ", e.Line)
		fmt.Fprintf(&b, "\n%s%s\n%s%s^", gutter, e.Source, strings.Repeat(" ", len(gutter)-2)+"| ", caretPad(e.Source, e.Col))
	}
	return b.String()
}

// caretPad keeps tabs so the caret lines up under the column in a terminal.
func caretPad(line string, col int) string {
	var b strings.Builder
	i := 1
	for _, r := range line {
		if i >= col {
			break
		}
		if r == '\t' {
			b.WriteByte('\t')
		} else {
			b.WriteByte(' ')
		}
		i++
	}
	for ; i < col; i++ {
		b.WriteByte(' ')
	}
	return b.String()
}

// newSQLError places a server error in a script. stmt is the index of the
// failing statement; base is the byte offset in the script of the text that
// was sent (0 when the whole file was sent, the statement's offset when
// statements run one by one).
func newSQLError(s *Script, version int64, stmt int, base int, bytePositions bool, pgErr *pgconn.PgError) *SQLError {
	off := -1
	if pgErr.Position > 0 {
		sent := s.SQL[base:]
		if bytePositions {
			off = base + min(int(pgErr.Position)-1, len(sent))
		} else {
			off = base + sqlsplit.RuneToByte(sent, int(pgErr.Position)-1)
		}
		// The server parses a whole multi-statement string before running
		// any of it, so a syntax error says nothing about which statement
		// ran last: find the statement from the place.
		for i, st := range s.Statements {
			// An error at the end of input belongs to the last statement.
			if off >= st.Offset && (off < st.Offset+len(st.Text) || i == len(s.Statements)-1) {
				stmt = i
			}
		}
	} else if stmt >= 0 && stmt < len(s.Statements) {
		// Errors at run time (constraint violations, RAISE in a DO block) carry
		// no position: point at the line of the DO block that raised, or else
		// at the start of the statement that failed.
		st := s.Statements[stmt]
		off = st.Offset + st.Start
		if o, ok := doBlockLine(st, pgErr.Where); ok {
			off = st.Offset + o
			// An error in a query the DO block itself runs: the server
			// gives the position inside that query.
			if o2, ok := internalPosition(st, o, pgErr); ok {
				off = st.Offset + o2
			}
		}
	}
	e := &SQLError{Path: s.Path, Version: version, Statement: stmt + 1, Err: pgErr}
	if off >= 0 {
		e.Line, e.Col = sqlsplit.Pos(s.SQL, off)
		e.Source = lineAt(s.SQL, off)
	}
	return e
}

var (
	doLineRE   = regexp.MustCompile(`PL/pgSQL function inline_code_block line ([0-9]+) `)
	doBodyRE   = regexp.MustCompile(`(?is)^DO\s+(?:LANGUAGE\s+\S+\s+)?(\$[A-Za-z_0-9]*\$|E?')`)
	indentedRE = regexp.MustCompile(`^[ \t]*`)
)

// doBlockLine finds, for an error raised inside a DO block, the offset in
// the statement of the line PL/pgSQL names in the error's context ("line 3"
// counts from the line the body's quote opens on).
func doBlockLine(st Statement, where string) (int, bool) {
	// The DO block is the outermost frame: the last one in CONTEXT, below
	// the functions it called.
	all := doLineRE.FindAllStringSubmatch(where, -1)
	if all == nil {
		return 0, false
	}
	n, _ := strconv.Atoi(all[len(all)-1][1])
	text := st.Text[st.Start:]
	body := doBodyRE.FindStringSubmatchIndex(text)
	if body == nil || n < 1 {
		return 0, false
	}
	off := body[3] // just after the opening quote
	for ; n > 1; n-- {
		i := strings.IndexByte(text[off:], '\n')
		if i < 0 {
			return 0, false
		}
		off += i + 1
	}
	off += len(indentedRE.FindString(text[off:]))
	return st.Start + off, true
}

// internalPosition places an error inside a query that a DO block runs
// (its InternalQuery, at InternalPosition) in the statement. lineOff is the
// offset in st.Text of the PL/pgSQL statement doBlockLine found. It only
// answers when the DO block is the innermost frame (not a function it
// called) and the query can be found in the source: PL/pgSQL blanks an
// INTO clause with spaces of the same length, so the query lines up with
// the source from the statement's first character, or, for EXECUTE of a
// literal, appears in it verbatim.
func internalPosition(st Statement, lineOff int, pgErr *pgconn.PgError) (int, bool) {
	q := pgErr.InternalQuery
	if q == "" || pgErr.InternalPosition <= 0 {
		return 0, false
	}
	innermost, _, _ := strings.Cut(pgErr.Where, "\n")
	if !strings.HasPrefix(innermost, "PL/pgSQL function inline_code_block line ") {
		return 0, false
	}
	within := sqlsplit.RuneToByte(q, int(pgErr.InternalPosition)-1)
	text := st.Text
	// The PL/pgSQL statement starts where doBlockLine points.
	if lines(q, text[lineOff:]) {
		return lineOff + within, true
	}
	// Or the query is a literal further on (EXECUTE '...'): only when it
	// appears once, so the place is certain.
	end := strings.IndexByte(text[lineOff:], ';')
	if end < 0 {
		end = len(text) - lineOff
	}
	stmtText := text[lineOff:]
	if i := strings.Index(stmtText, q); i >= 0 && i < end+len(q) && strings.Count(stmtText, q) == 1 {
		return lineOff + i + within, true
	}
	return 0, false
}

// lines reports whether src starts with q, where q may have spaces in
// place of src's characters (a blanked INTO clause).
func lines(q, src string) bool {
	if len(src) < len(q) {
		return false
	}
	for i := 0; i < len(q); i++ {
		if q[i] != src[i] && q[i] != ' ' && !(q[i] == '\n' && src[i] == ' ') {
			return false
		}
	}
	return true
}

func lineAt(src string, off int) string {
	start := strings.LastIndexByte(src[:off], '\n') + 1
	end := strings.IndexByte(src[off:], '\n')
	if end < 0 {
		end = len(src)
	} else {
		end += off
	}
	return strings.TrimRight(src[start:end], "\r")
}

// asPgError returns the server error inside err, if any.
func asPgError(err error) (*pgconn.PgError, bool) {
	var pgErr *pgconn.PgError
	ok := errors.As(err, &pgErr)
	return pgErr, ok
}
