package sqlsplit

import "strings"

// scanner runs the lexer with psql's statement rules on top: it knows which
// ";" ends a statement, and that the data of COPY ... FROM STDIN follows
// its statement inline, as in a pg_dump file.
type scanner struct {
	lx lexer
	b  boundary

	// The statement being scanned: where it starts, where its first
	// significant token starts (-1 for none yet), and whether that token
	// is the word COPY.
	from  int
	first int
	copy  bool

	ended bool // the last token ended the statement; start a new one
	data  bool // COPY data comes next
}

func newScanner(src string) scanner {
	return scanner{lx: lexer{src: src}, first: -1}
}

// next returns the next token, and whether it is a ";" that ends the
// statement. Until the following call, s.from and s.first describe the
// statement that the token belongs to; at tokEOF, the unterminated rest.
func (s *scanner) next() (t token, ends bool) {
	if s.ended {
		s.ended = false
		s.from, s.first, s.copy = s.lx.pos, -1, false
	}
	if s.data {
		s.data = false
		if end := copyDataEnd(s.lx.src, s.lx.pos); end > s.lx.pos {
			t = token{kind: tokCopyData, start: s.lx.pos, end: end}
			s.lx.pos = end
			s.first = t.start
			return t, false
		}
	}
	t = s.lx.next()
	if t.kind == tokEOF || t.insignificant() || t.kind == tokMeta {
		// psql keeps meta-commands out of the statement it sends.
		return t, false
	}
	switch t.kind {
	case tokSemicolon:
		if s.b.semicolon() {
			s.ended = true
			s.data = s.copy && s.copyFromStdin(t.end)
			return t, true
		}
	case tokIdent:
		word := s.lx.src[t.start:t.end]
		s.b.identifier(word)
		if s.first < 0 {
			s.copy = equalFoldASCII(word, "copy")
		}
	case tokLParen:
		s.b.parenDepth++
	case tokRParen:
		// psql ignores unbalanced closing parentheses.
		if s.b.parenDepth > 0 {
			s.b.parenDepth--
		}
	case tokForced:
		// psql's \; puts a ";" into the statement without ending it, yet
		// restarts the CREATE FUNCTION detection as a real one would.
		if s.lx.src[t.start+1] == ';' {
			s.b.identifiers = 0
		}
	}
	if s.first < 0 {
		s.first = t.start
	}
	return t, false
}

// copyFromStdin reports whether the statement that has just ended at end is
// COPY ... FROM STDIN. It is only asked for statements starting with COPY,
// so the rest of the input is lexed once.
func (s *scanner) copyFromStdin(end int) bool {
	st := Statement{Text: s.lx.src[s.from:end], Start: s.first - s.from}
	return st.CopyFromStdin()
}

// copyDataEnd returns the end of the inline data of a COPY ... FROM STDIN
// statement ending at p. psql sends the server the lines after the
// statement's line, up to a line that is just \. (the end-of-data marker),
// or to the end of the input. The rest of the statement's own line is taken
// as data too, which psql would run as SQL after the data; a file that does
// this is rejected for its COPY anyway.
func copyDataEnd(src string, p int) int {
	i := p
	for first := true; ; first = false {
		k := strings.IndexByte(src[i:], '\n')
		if k < 0 {
			return len(src)
		}
		line := src[i : i+k+1]
		i += k + 1
		if !first && (line == "\\.\n" || line == "\\.\r\n") {
			return i
		}
	}
}

// boundary is psql's state for deciding whether a ";" ends a statement
// (psqlscan.l): the parenthesis depth, and a heuristic for SQL-standard
// function bodies.
//
// A body written as BEGIN ATOMIC ... END contains semicolons that must not
// end the CREATE statement. Short of parsing, psql watches whether the
// statement starts with CREATE [OR REPLACE] {FUNCTION|PROCEDURE} and, if so,
// counts BEGIN and END outside parentheses, and CASE too once inside a
// BEGIN, since CASE also closes with END. This mirrors that heuristic
// exactly, quirks included, so that dbinit splits files the way psql does.
type boundary struct {
	parenDepth int
	beginDepth int
	// identifiers counts the identifiers of the statement so far; words
	// records the first letter of each of the first four if it is one of
	// CREATE, OR, REPLACE, FUNCTION or PROCEDURE, and 0 otherwise.
	identifiers int
	words       [4]byte
}

// semicolon reports whether a ";" ends the statement, and if so resets the
// state for the next one.
func (b *boundary) semicolon() bool {
	if b.parenDepth > 0 || b.beginDepth > 0 {
		return false
	}
	b.identifiers = 0
	return true
}

// identifier feeds an unquoted identifier or keyword to the heuristic.
func (b *boundary) identifier(w string) {
	if b.identifiers == 0 {
		b.words = [4]byte{}
	}
	if b.identifiers < len(b.words) {
		switch {
		case equalFoldASCII(w, "create"), equalFoldASCII(w, "function"),
			equalFoldASCII(w, "procedure"), equalFoldASCII(w, "or"),
			equalFoldASCII(w, "replace"):
			b.words[b.identifiers] = w[0] | 0x20
		}
	}
	b.identifiers++
	if b.parenDepth > 0 || !b.routine() {
		return
	}
	switch {
	case equalFoldASCII(w, "begin"):
		b.beginDepth++
	case equalFoldASCII(w, "case"):
		if b.beginDepth > 0 {
			b.beginDepth++
		}
	case equalFoldASCII(w, "end"):
		if b.beginDepth > 0 {
			b.beginDepth--
		}
	}
}

// routine reports whether the statement began with
// CREATE [OR REPLACE] {FUNCTION|PROCEDURE}.
func (b *boundary) routine() bool {
	w := &b.words
	return w[0] == 'c' && (w[1] == 'f' || w[1] == 'p' ||
		w[1] == 'o' && w[2] == 'r' && (w[3] == 'f' || w[3] == 'p'))
}

// equalFoldASCII reports whether s and t are equal ignoring ASCII case
// only. strings.EqualFold also folds Unicode, so that "caſe" (with a long
// s) would equal "case", which PostgreSQL's pg_strcasecmp does not do.
func equalFoldASCII(s, t string) bool {
	if len(s) != len(t) {
		return false
	}
	for i := 0; i < len(s); i++ {
		a, b := s[i], t[i]
		if a >= 'A' && a <= 'Z' {
			a += 'a' - 'A'
		}
		if b >= 'A' && b <= 'Z' {
			b += 'a' - 'A'
		}
		if a != b {
			return false
		}
	}
	return true
}
