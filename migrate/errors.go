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
	Line, Col int    // 1-based, characters, in the file
	Statement int    // 1-based number of the failing statement in the file
	Source    string // the file's line at Line
	Err       *pgconn.PgError
}

func (e *SQLError) Unwrap() error { return e.Err }

// Error renders the failure like a compiler does: FILE:LINE:COL, SQLSTATE and
// message, the server's DETAIL, HINT, CONTEXT and inner QUERY, then the source
// line with a caret under the column.
func (e *SQLError) Error() string {
	var b strings.Builder
	p := e.Err
	place := e.Path
	if e.Line > 0 {
		place = fmt.Sprintf("%s:%d:%d", e.Path, e.Line, e.Col)
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
