package sqlsplit

import (
	"strings"
	"unicode/utf8"
)

// Keywords returns up to n leading words of the statement, upper-cased:
// the unquoted identifiers and keywords it starts with, skipping whitespace
// and comments. The first token that is not such a word (a quoted
// identifier, a literal, punctuation) ends the list, so
// "CREATE UNIQUE INDEX CONCURRENTLY ..." gives
// ["CREATE" "UNIQUE" "INDEX" "CONCURRENTLY"] for n = 4.
func (s Statement) Keywords(n int) []string {
	var words []string
	c := s.cursor()
	for len(words) < n {
		w := c.word()
		if w == "" {
			break
		}
		words = append(words, w)
	}
	return words
}

// NoTransaction reports whether PostgreSQL refuses to run the statement
// inside a transaction block, and if so names it for a message. These are
// the statements whose implementation calls PreventInTransactionBlock:
//
//	CREATE [UNIQUE] INDEX CONCURRENTLY, DROP INDEX CONCURRENTLY
//	REINDEX ... CONCURRENTLY (in either syntax), REINDEX SCHEMA|DATABASE|SYSTEM
//	VACUUM (but not ANALYZE), CLUSTER without a table name
//	REPACK (CONCURRENTLY) and REPACK without a table name (PostgreSQL 19)
//	CREATE|DROP DATABASE, ALTER DATABASE ... SET TABLESPACE
//	CREATE|DROP TABLESPACE, ALTER SYSTEM, DISCARD ALL
//	ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY
//	CREATE SUBSCRIPTION, unless WITH (create_slot = false) or (connect = false)
//	DROP SUBSCRIPTION (only refused when the subscription has a slot; that
//	  cannot be known from the text, so it always counts)
//	ALTER SUBSCRIPTION ... REFRESH PUBLICATION,
//	ALTER SUBSCRIPTION ... {SET|ADD|DROP} PUBLICATION unless WITH (refresh = false),
//	ALTER SUBSCRIPTION ... SET (failover | two_phase ...)
//
// COMMIT PREPARED and ROLLBACK PREPARED are refused too, but they are
// transaction control; see TransactionControl. CLUSTER and REINDEX TABLE or
// INDEX of a partitioned table are refused as well, which the text of the
// statement cannot show. REFRESH MATERIALIZED VIEW CONCURRENTLY is allowed
// in a transaction block, so not every CONCURRENTLY counts.
func (s Statement) NoTransaction() (what string, ok bool) {
	c := s.cursor()
	switch c.word() {
	case "VACUUM":
		return "VACUUM", true
	case "CREATE":
		switch c.word() {
		case "UNIQUE":
			if c.word() == "INDEX" && c.word() == "CONCURRENTLY" {
				return "CREATE INDEX CONCURRENTLY", true
			}
		case "INDEX":
			// The grammar is CREATE [UNIQUE] INDEX [CONCURRENTLY]
			// [[IF NOT EXISTS] name] ON ..., so CONCURRENTLY can only
			// come right after INDEX.
			if c.word() == "CONCURRENTLY" {
				return "CREATE INDEX CONCURRENTLY", true
			}
		case "DATABASE":
			return "CREATE DATABASE", true
		case "TABLESPACE":
			return "CREATE TABLESPACE", true
		case "SUBSCRIPTION":
			opts := c.withOptions()
			if !opts.off("CREATE_SLOT") && !opts.off("CONNECT") {
				return "CREATE SUBSCRIPTION", true
			}
		}
	case "DROP":
		switch c.word() {
		case "INDEX":
			if c.word() == "CONCURRENTLY" {
				return "DROP INDEX CONCURRENTLY", true
			}
		case "DATABASE":
			return "DROP DATABASE", true
		case "TABLESPACE":
			return "DROP TABLESPACE", true
		case "SUBSCRIPTION":
			return "DROP SUBSCRIPTION", true
		}
	case "REINDEX":
		return c.reindex()
	case "CLUSTER":
		// CLUSTER [VERBOSE] or CLUSTER (options), with nothing after,
		// reclusters every table in its own transaction.
		t := c.next()
		if c.isWord(t, "VERBOSE") {
			t = c.next()
		} else if t.kind == tokLParen {
			c.options()
			t = c.next()
		}
		if c.end(t) {
			return "CLUSTER without a table name", true
		}
	case "REPACK": // PostgreSQL 19
		t := c.next()
		concurrently := false
		if t.kind == tokLParen {
			concurrently = c.options().on("CONCURRENTLY")
			t = c.next()
		}
		if concurrently {
			return "REPACK (CONCURRENTLY)", true
		}
		if c.end(t) {
			return "REPACK without a table name", true
		}
	case "ALTER":
		switch c.word() {
		case "SYSTEM":
			return "ALTER SYSTEM", true
		case "DATABASE":
			// Not ALTER DATABASE name SET tablespace = ..., which would
			// be the (nonexistent) setting "tablespace".
			if c.name() && c.word() == "SET" && c.word() == "TABLESPACE" {
				if t := c.next(); !c.isText(t, "=") && !c.isWord(t, "TO") {
					return "ALTER DATABASE ... SET TABLESPACE", true
				}
			}
		case "SUBSCRIPTION":
			if c.name() {
				return c.alterSubscription()
			}
		case "TABLE":
			if c.detachConcurrently() {
				return "ALTER TABLE ... DETACH PARTITION CONCURRENTLY", true
			}
		}
	case "DISCARD":
		if c.word() == "ALL" {
			return "DISCARD ALL", true
		}
	}
	return "", false
}

// reindex classifies the rest of a REINDEX statement:
// REINDEX [(option, ...)] {INDEX|TABLE|SCHEMA|DATABASE|SYSTEM} [CONCURRENTLY] ...
func (c *cursor) reindex() (what string, ok bool) {
	t := c.next()
	concurrently := false
	if t.kind == tokLParen {
		concurrently = c.options().on("CONCURRENTLY")
		t = c.next()
	}
	switch target := c.upper(t); target {
	case "SCHEMA", "DATABASE", "SYSTEM":
		// These reindex table after table, each in its own transaction.
		return "REINDEX " + target, true
	case "INDEX", "TABLE":
		if concurrently || c.word() == "CONCURRENTLY" {
			return "REINDEX CONCURRENTLY", true
		}
	}
	return "", false
}

// alterSubscription classifies the rest of ALTER SUBSCRIPTION name ...
func (c *cursor) alterSubscription() (what string, ok bool) {
	switch verb := c.word(); verb {
	case "REFRESH":
		return "ALTER SUBSCRIPTION ... REFRESH", true
	case "SET", "ADD", "DROP":
		t := c.next()
		if verb == "SET" && t.kind == tokLParen {
			// Changing these alters the replication slot, which cannot
			// be undone by a rollback.
			opts := c.options()
			for _, name := range []string{"FAILOVER", "TWO_PHASE"} {
				if opts.has(name) {
					return "ALTER SUBSCRIPTION ... SET (" + lowerASCII(name) + ")", true
				}
			}
			break
		}
		// With refresh, the default, the new publications' tables are
		// synchronized outside the transaction.
		if c.isWord(t, "PUBLICATION") && !c.withOptions().off("REFRESH") {
			return "ALTER SUBSCRIPTION ... " + verb + " PUBLICATION", true
		}
	}
	return "", false
}

// detachConcurrently scans the rest of an ALTER TABLE statement for
// DETACH PARTITION name CONCURRENTLY.
func (c *cursor) detachConcurrently() bool {
	for t := c.next(); !c.end(t); t = c.next() {
		if !c.isWord(t, "DETACH") || c.word() != "PARTITION" {
			continue
		}
		// A possibly qualified name: part [. part ...].
		t = c.next()
		for {
			if t.kind != tokIdent && t.kind != tokQuotedIdent {
				return false
			}
			if t = c.next(); !c.isText(t, ".") {
				break
			}
			t = c.next()
		}
		return c.isWord(t, "CONCURRENTLY")
	}
	return false
}

// TransactionControl reports whether the statement starts, ends or aborts a
// transaction: BEGIN, START TRANSACTION, COMMIT, END, ROLLBACK, ABORT,
// COMMIT PREPARED, ROLLBACK PREPARED and PREPARE TRANSACTION. SAVEPOINT,
// RELEASE and ROLLBACK TO SAVEPOINT work within a transaction and do not
// count. (The BEGIN ATOMIC of a function body is never the start of a
// statement, and PL/pgSQL's BEGIN is inside a string.)
func (s Statement) TransactionControl() bool {
	c := s.cursor()
	switch c.word() {
	case "BEGIN", "COMMIT", "END", "ABORT":
		return true
	case "START":
		return c.word() == "TRANSACTION"
	case "ROLLBACK":
		w := c.word()
		if w == "WORK" || w == "TRANSACTION" {
			w = c.word()
		}
		return w != "TO"
	case "PREPARE":
		// PREPARE TRANSACTION 'id', not PREPARE name AS ..., whose name
		// could be "transaction".
		return c.word() == "TRANSACTION" && c.next().kind == tokString
	}
	return false
}

// CopyFromStdin reports whether the statement is COPY ... FROM STDIN, whose
// data follows the statement inline; only psql knows how to feed it.
func (s Statement) CopyFromStdin() bool {
	c := s.cursor()
	if c.word() != "COPY" {
		return false
	}
	// Skip parentheses: a column list, or the query of COPY (...) TO.
	depth := 0
	for t := c.next(); !c.end(t); t = c.next() {
		switch {
		case t.kind == tokLParen:
			depth++
		case t.kind == tokRParen:
			depth--
		case depth == 0 && c.isWord(t, "FROM"):
			return c.word() == "STDIN"
		}
	}
	return false
}

// cursor walks the significant tokens of a statement.
type cursor struct {
	lx lexer
}

func (s Statement) cursor() *cursor {
	return &cursor{lx: lexer{src: s.Text, pos: s.start()}}
}

// next returns the next token that is not whitespace, a comment or a psql
// meta-command, none of which psql would send to the server.
func (c *cursor) next() token {
	for {
		if t := c.lx.next(); !t.insignificant() && t.kind != tokMeta {
			return t
		}
	}
}

// end reports whether t ends the statement. A ";" inside the statement,
// as in CREATE RULE ... DO (a; b), counts as its end too: the classifiers
// only look at a statement's own leading clauses.
func (c *cursor) end(t token) bool {
	return t.kind == tokEOF || t.kind == tokSemicolon
}

// word consumes the next token and returns it upper-cased if it is a word,
// or "" if it is anything else.
func (c *cursor) word() string {
	return c.upper(c.next())
}

// upper returns t upper-cased if it is a word, or "" if it is not.
func (c *cursor) upper(t token) string {
	if t.kind != tokIdent {
		return ""
	}
	return upperASCII(c.text(t))
}

// name consumes a simple name: a word or a quoted identifier.
func (c *cursor) name() bool {
	t := c.next()
	return t.kind == tokIdent || t.kind == tokQuotedIdent
}

func (c *cursor) text(t token) string { return c.lx.src[t.start:t.end] }

// isWord reports whether t is the unquoted word kw, in any case.
func (c *cursor) isWord(t token, kw string) bool {
	return t.kind == tokIdent && equalFoldASCII(c.text(t), kw)
}

// isText reports whether t is exactly the punctuation s.
func (c *cursor) isText(t token, s string) bool {
	return t.kind == tokOther && c.text(t) == s
}

// optionList holds the options of a parenthesized list such as
// (VERBOSE, CONCURRENTLY) or (create_slot = false).
type optionList []option

type option struct {
	name string // upper-cased
	off  bool   // explicitly set to a false value
}

// on reports whether the list sets the option to true, explicitly or by
// naming it alone.
func (l optionList) on(name string) bool {
	for _, o := range l {
		if o.name == name {
			return !o.off
		}
	}
	return false
}

// has reports whether the list names the option, whatever its value.
func (l optionList) has(name string) bool {
	for _, o := range l {
		if o.name == name {
			return true
		}
	}
	return false
}

// off reports whether the list sets the option to false.
func (l optionList) off(name string) bool {
	for _, o := range l {
		if o.name == name {
			return o.off
		}
	}
	return false
}

// options parses a list whose "(" has just been consumed, up to and
// including the matching ")". Each element is name [[=] value].
func (c *cursor) options() optionList {
	var (
		list  optionList
		cur   option
		value string
		named bool
	)
	flush := func() {
		if named {
			cur.off = value != "" && falseValue(value)
			list = append(list, cur)
		}
		cur, value, named = option{}, "", false
	}
	depth := 1
	for t := c.next(); !c.end(t); t = c.next() {
		switch {
		case t.kind == tokLParen:
			depth++
		case t.kind == tokRParen:
			if depth--; depth == 0 {
				flush()
				return list
			}
		case depth > 1 || c.isText(t, "="):
			// Nested lists belong to a value; "=" is optional syntax.
		case c.isText(t, ","):
			flush()
		case !named:
			cur.name, named = c.upper(t), true
		default:
			value = c.text(t)
			if t.kind == tokString && len(value) >= 2 {
				value = value[1 : len(value)-1]
			}
		}
	}
	flush()
	return list
}

// withOptions finds WITH ( ... ) in the rest of the statement and parses it.
func (c *cursor) withOptions() optionList {
	for t := c.next(); !c.end(t); t = c.next() {
		if c.isWord(t, "WITH") {
			if t = c.next(); t.kind == tokLParen {
				return c.options()
			}
		}
	}
	return nil
}

// falseValue reports whether an option value is false the way PostgreSQL's
// parse_bool reads it: 0, off, or a prefix of false or no. Anything else,
// including values it would reject, counts as true, which errs towards
// calling a statement non-transactional.
func falseValue(v string) bool {
	v = lowerASCII(v)
	switch {
	case v == "0", v == "off":
		return true
	case v == "":
		return false
	}
	return len(v) <= len("false") && "false"[:len(v)] == v ||
		len(v) <= len("no") && "no"[:len(v)] == v
}

// upperASCII upper-cases ASCII letters only, as PostgreSQL does for
// keywords, and does not allocate when there is nothing to change.
func upperASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'a' && c <= 'z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if c := b[j]; c >= 'a' && c <= 'z' {
					b[j] = c - ('a' - 'A')
				}
			}
			return string(b)
		}
	}
	return s
}

// lowerASCII lower-cases ASCII letters only.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if c := b[j]; c >= 'A' && c <= 'Z' {
					b[j] = c + ('a' - 'A')
				}
			}
			return string(b)
		}
	}
	return s
}

// ConcurrentIndex reads a CREATE [UNIQUE] INDEX CONCURRENTLY statement:
// the index's name as PostgreSQL stores it (unquoted names folded to lower
// case, quoted ones as written; "" when the statement names none) and the
// table as written, possibly schema-qualified and quoted, ready for
// to_regclass. ok is false for any other statement.
func (s Statement) ConcurrentIndex() (index, table string, ok bool) {
	c := s.cursor()
	if c.word() != "CREATE" {
		return "", "", false
	}
	w := c.word()
	if w == "UNIQUE" {
		w = c.word()
	}
	if w != "INDEX" || c.word() != "CONCURRENTLY" {
		return "", "", false
	}
	t := c.next()
	if c.isWord(t, "IF") {
		if c.word() != "NOT" || c.word() != "EXISTS" {
			return "", "", false
		}
		t = c.next()
	}
	if !c.isWord(t, "ON") {
		if t.kind != tokIdent && t.kind != tokQuotedIdent {
			return "", "", false
		}
		index = c.identifier(t)
		if t = c.next(); !c.isWord(t, "ON") {
			return "", "", false
		}
	}
	t = c.next()
	if c.isWord(t, "ONLY") {
		t = c.next()
	}
	start, end := t.start, t.end
	for t.kind == tokIdent || t.kind == tokQuotedIdent {
		end = t.end
		if dot := c.next(); !c.isText(dot, ".") {
			break
		}
		t = c.next()
	}
	if end == start {
		return "", "", false
	}
	return index, c.lx.src[start:end], true
}

// identifier returns the name an identifier token stands for, cut to the
// 63 bytes PostgreSQL keeps (NAMEDATALEN - 1, at a character boundary), or
// "" for a U&"..." identifier, whose escapes it does not decode.
func (c *cursor) identifier(t token) string {
	text := c.text(t)
	var name string
	switch {
	case t.kind == tokQuotedIdent && strings.HasPrefix(text, `"`):
		name = strings.ReplaceAll(text[1:len(text)-1], `""`, `"`)
	case t.kind == tokQuotedIdent:
		return ""
	default:
		name = lowerASCII(text)
	}
	if len(name) > 63 {
		name = name[:63]
		for len(name) > 0 && !utf8.ValidString(name) {
			name = name[:len(name)-1]
		}
	}
	return name
}

// Ident is an identifier in a text, at a byte offset.
type Ident struct {
	Offset int
	Name   string // as PostgreSQL reads it: unquoted ones lower-cased
}

// LongIdentifiers returns the identifiers in src longer than the 63 bytes
// PostgreSQL keeps (it truncates them, with only a NOTICE), skipping
// strings, comments and dollar-quoted bodies.
func LongIdentifiers(src string) []Ident {
	lx := lexer{src: src}
	var out []Ident
	for {
		t := lx.next()
		if t.kind == tokEOF {
			return out
		}
		var name string
		text := src[t.start:t.end]
		switch {
		case t.kind == tokIdent:
			name = lowerASCII(text)
		case t.kind == tokQuotedIdent && strings.HasPrefix(text, `"`) && !t.open:
			name = strings.ReplaceAll(text[1:len(text)-1], `""`, `"`)
		default:
			continue
		}
		if len(name) > 63 {
			out = append(out, Ident{Offset: t.start, Name: name})
		}
	}
}
