package sqlsplit

import "strings"

// tokenKind classifies a token. The lexer distinguishes only what statement
// splitting, checking and classification need; operators and punctuation
// that play no part in any of those are all tokOther.
type tokenKind uint8

const (
	tokEOF          tokenKind = iota
	tokSpace                  // run of [ \t\n\r\f]
	tokLineComment            // -- up to, not including, the next \n or \r
	tokBlockComment           // /* ... */, nested
	tokIdent                  // unquoted identifier or keyword
	tokQuotedIdent            // "..." or U&"..."
	tokString                 // '...', E'...', B'...', X'...', U&'...', with continuation lines
	tokDollarString           // $tag$ ... $tag$
	tokNumber                 // numeric literal, including any trailing junk PostgreSQL rejects
	tokParam                  // $1
	tokSemicolon              // ;
	tokLParen                 // (
	tokRParen                 // )
	tokMeta                   // psql backslash command, with its arguments
	tokForced                 // psql's \; or \:, a ";" or ":" that does not end the statement
	tokCopyData               // inline data after COPY ... FROM STDIN; see scanner
	tokOther                  // anything else: operators, punctuation, stray bytes
)

// token is a half-open byte range [start, end) of the input. open is set
// when a quote, quoted identifier, dollar quote or comment runs to the end
// of the input without being closed.
type token struct {
	kind  tokenKind
	open  bool
	start int
	end   int
}

// insignificant reports whether the token is whitespace or a comment, which
// PostgreSQL treats as a token separator and nothing more.
func (t token) insignificant() bool {
	return t.kind == tokSpace || t.kind == tokLineComment || t.kind == tokBlockComment
}

// Character classes, following the flex definitions in PostgreSQL's
// src/backend/parser/scan.l. They are byte classes, not rune classes: the
// server lexer treats every byte with the high bit set as a letter, whatever
// the encoding, so invalid UTF-8 lexes exactly as it does there.
const (
	classSpace      = 1 << iota // [ \t\n\r\f]; \v is not whitespace to PostgreSQL
	classIdentStart             // [A-Za-z\200-\377_]
	classIdentCont              // [A-Za-z\200-\377_0-9\$]
	classDigit                  // [0-9]
	classDolqCont               // [A-Za-z\200-\377_0-9]: dollar-quote tags cannot contain "$"
)

var charClass = func() (t [256]uint8) {
	for _, c := range []byte(" \t\n\r\f") {
		t[c] |= classSpace
	}
	for c := 0; c < 256; c++ {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= 0x80 {
			t[c] |= classIdentStart | classIdentCont | classDolqCont
		}
		if c >= '0' && c <= '9' {
			t[c] |= classIdentCont | classDolqCont | classDigit
		}
	}
	t['$'] |= classIdentCont
	return t
}()

func is(c byte, class uint8) bool { return charClass[c]&class != 0 }

// at returns src[i], or 0 past the end, so that lookahead needs no bounds
// checks. A real NUL byte is harmless: no rule looks ahead for one.
func at(src string, i int) byte {
	if i < len(src) {
		return src[i]
	}
	return 0
}

// lexer splits SQL text into tokens the way PostgreSQL's lexer does
// (src/backend/parser/scan.l, mirrored for psql in src/fe_utils/psqlscan.l),
// assuming standard_conforming_strings = on, and also recognizes psql's
// backslash commands. It never fails: text the server would reject still
// becomes tokens, so that boundaries are always defined.
type lexer struct {
	src string
	pos int
}

// next returns the token starting at l.pos and advances past it.
func (l *lexer) next() token {
	src, p := l.src, l.pos
	if p >= len(src) {
		return token{kind: tokEOF, start: len(src), end: len(src)}
	}
	kind, end, open := tokOther, p+1, false
	switch c := src[p]; {
	case is(c, classSpace):
		kind, end = tokSpace, spaceEnd(src, p+1)
	case c == '-' && at(src, p+1) == '-':
		// "--" starts a comment even in the middle of an operator such as
		// "=--": the server's operator rule stops short of it.
		kind, end = tokLineComment, lineEnd(src, p+2)
	case c == '/' && at(src, p+1) == '*':
		// Likewise "/*", even in "+/*".
		kind = tokBlockComment
		end, open = blockCommentEnd(src, p+2)
	case c == '\'':
		kind = tokString
		end, open = quoteEnd(src, p+1, quoteStandard)
	case c == '"':
		kind = tokQuotedIdent
		end, open = quotedIdentEnd(src, p+1)
	case c == '$':
		kind, end, open = dollar(src, p)
	case is(c, classDigit) || c == '.' && is(at(src, p+1), classDigit):
		kind, end = tokNumber, numberEnd(src, p)
	case is(c, classIdentStart):
		kind, end, open = word(src, p)
	case c == ';':
		kind = tokSemicolon
	case c == '(':
		kind = tokLParen
	case c == ')':
		kind = tokRParen
	case c == '\\':
		kind, end = metaCommand(src, p)
	}
	l.pos = end
	return token{kind: kind, open: open, start: p, end: end}
}

func spaceEnd(src string, i int) int {
	for i < len(src) && is(src[i], classSpace) {
		i++
	}
	return i
}

// lineEnd returns the index of the next \n or \r at or after i, or len(src).
// Both end a "--" comment, as in scan.l.
func lineEnd(src string, i int) int {
	if k := strings.IndexAny(src[i:], "\n\r"); k >= 0 {
		return i + k
	}
	return len(src)
}

// blockCommentEnd returns the end of a block comment whose opening "/*"
// ends at i. PostgreSQL block comments nest, unlike C's: "/* a /* b */ c */"
// is one comment.
func blockCommentEnd(src string, i int) (end int, open bool) {
	depth := 0
	for i < len(src) {
		switch src[i] {
		case '*':
			if at(src, i+1) == '/' {
				if depth == 0 {
					return i + 2, false
				}
				depth--
				i += 2
				continue
			}
		case '/':
			if at(src, i+1) == '*' {
				depth++
				i += 2
				continue
			}
		}
		i++
	}
	return len(src), true
}

// quoteMode selects the rules for the body of a single-quoted literal.
type quoteMode uint8

const (
	// quoteStandard is '...', N'...' and U&'...': '' stands for a quote and
	// a backslash is an ordinary character (standard_conforming_strings).
	quoteStandard quoteMode = iota
	// quoteEscape is E'...': a backslash escapes the next byte, so \' and
	// \\ do not end the string; '' still stands for a quote.
	quoteEscape
	// quoteBits is B'...' and X'...': the scanner has no '' rule for them,
	// so B'1''0' is B'1' followed by the separate literal '0'.
	quoteBits
)

// quoteEnd returns the end of a single-quoted literal whose opening quote
// ends at i.
func quoteEnd(src string, i int, mode quoteMode) (end int, open bool) {
	for {
		var k int
		if mode == quoteEscape {
			k = strings.IndexAny(src[i:], `\'`)
		} else {
			k = strings.IndexByte(src[i:], '\'')
		}
		if k < 0 {
			return len(src), true
		}
		q := i + k
		if src[q] == '\\' {
			// Skipping one byte is enough: no multi-byte escape can
			// contain a quote or a backslash.
			i = min(q+2, len(src))
			continue
		}
		if mode != quoteBits && at(src, q+1) == '\'' {
			i = q + 2
			continue
		}
		// SQL continues a literal across whitespace that contains a
		// newline: 'a'<newline>'b' is 'ab'. The continuation keeps the
		// mode, so in E'x'<newline>'\'' the \' is still an escape.
		if next, ok := continuation(src, q+1); ok {
			i = next
			continue
		}
		return q + 1, false
	}
}

// continuation reports whether the literal whose closing quote ends at i is
// continued, and if so where the body resumes. Between the two quotes there
// must be only whitespace and "--" comments, including at least one newline
// (scan.l's {quotecontinue}); a /* */ comment ends the literal.
func continuation(src string, i int) (resume int, ok bool) {
	newline := false
	for i < len(src) {
		switch src[i] {
		case ' ', '\t', '\f':
			i++
		case '\n', '\r':
			newline = true
			i++
		case '-':
			if at(src, i+1) != '-' {
				return 0, false
			}
			i = lineEnd(src, i+2)
		case '\'':
			return i + 1, newline
		default:
			return 0, false
		}
	}
	return 0, false
}

// quotedIdentEnd returns the end of a quoted identifier whose opening double
// quote ends at i; "" stands for a double quote.
func quotedIdentEnd(src string, i int) (end int, open bool) {
	for {
		k := strings.IndexByte(src[i:], '"')
		if k < 0 {
			return len(src), true
		}
		q := i + k
		if at(src, q+1) != '"' {
			return q + 1, false
		}
		i = q + 2
	}
}

// dollar lexes the token starting with the "$" at p: a parameter ($1), a
// dollar-quoted string ($$...$$, $tag$...$tag$), or a lone "$".
//
// A "$" inside an identifier (a$b, foo$$bar) never gets here: identifiers
// may contain "$" after their first character and are lexed whole.
func dollar(src string, p int) (kind tokenKind, end int, open bool) {
	i := p + 1
	switch c := at(src, i); {
	case is(c, classDigit):
		for i < len(src) && is(src[i], classDigit) {
			i++
		}
		return tokParam, junkEnd(src, i), false
	case c == '$' || is(c, classIdentStart):
		for i < len(src) && is(src[i], classDolqCont) {
			i++
		}
		if at(src, i) != '$' {
			// "$name" with no closing "$" of the tag: scan.l gives back
			// everything but the "$", and name is lexed afresh.
			break
		}
		tag := src[p : i+1]
		body := i + 1
		// Every "$" in the body is a point where scan.l tries to match a
		// tag, and a tag can only end at a "$", so the first occurrence
		// of the opening tag is exactly where the lexer stops.
		k := strings.Index(src[body:], tag)
		if k < 0 {
			return tokDollarString, len(src), true
		}
		return tokDollarString, body + k + len(tag), false
	}
	return tokOther, p + 1, false
}

// numberEnd returns the end of the numeric literal at p, which starts with
// a digit or with "." and a digit. It follows PostgreSQL 16 and later, where
// an identifier directly after a number is part of one (invalid) token:
// 123abc and 0x1fg are each a single token, and so is 1e (so 1e'x' is not
// an escape string), while 1e- is a token that swallows the "-" (so 1e--x
// has no comment in it).
func numberEnd(src string, p int) int {
	i := p
	if src[i] != '.' {
		i = decimalEnd(src, i)
		if at(src, i) != '.' {
			return numberTail(src, i)
		}
		if at(src, i+1) == '.' {
			// 1..10 is 1, "..", 10.
			return i
		}
	}
	i++ // the "."
	if is(at(src, i), classDigit) {
		i = decimalEnd(src, i)
	}
	return numberTail(src, i)
}

// decimalEnd returns the end of {decinteger}, digits with single
// underscores between them, starting at the digit at i.
func decimalEnd(src string, i int) int {
	i++
	for i < len(src) {
		if is(src[i], classDigit) {
			i++
		} else if src[i] == '_' && is(at(src, i+1), classDigit) {
			i += 2
		} else {
			break
		}
	}
	return i
}

// numberTail extends a number ending at i by an exponent and by trailing
// identifier characters. Hex, octal and binary literals need no rule of
// their own: 0x1F is 0 followed by identifier characters, and the token
// ends at the same place either way.
func numberTail(src string, i int) int {
	if c := at(src, i); c == 'e' || c == 'E' {
		if s := at(src, i+1); s == '+' || s == '-' {
			if !is(at(src, i+2), classDigit) {
				return i + 2 // {realfail}
			}
			return junkEnd(src, decimalEnd(src, i+2))
		}
	}
	return junkEnd(src, i)
}

// junkEnd extends a token ending at i by an identifier that directly
// follows it, which the server lexes as part of the token (and rejects).
func junkEnd(src string, i int) int {
	if !is(at(src, i), classIdentStart) {
		return i
	}
	i++
	for i < len(src) && is(src[i], classIdentCont) {
		i++
	}
	return i
}

// word lexes a token starting with an identifier character: an identifier,
// or a literal with a prefix: B'...', X'...', E'...', N'...', U&'...' or
// U&"...".
func word(src string, p int) (kind tokenKind, end int, open bool) {
	next := at(src, p+1)
	switch src[p] | 0x20 { // ASCII lower case; bytes >= 0x80 match nothing here
	case 'b', 'x':
		if next == '\'' {
			end, open = quoteEnd(src, p+2, quoteBits)
			return tokString, end, open
		}
	case 'e':
		if next == '\'' {
			end, open = quoteEnd(src, p+2, quoteEscape)
			return tokString, end, open
		}
	case 'n':
		if next == '\'' {
			// psql lexes the N on its own and the rest as a plain
			// string; keeping that split keeps the string's opening
			// position identical to psql's.
			return tokOther, p + 1, false
		}
	case 'u':
		if next == '&' {
			switch at(src, p+2) {
			case '\'':
				end, open = quoteEnd(src, p+3, quoteStandard)
				return tokString, end, open
			case '"':
				end, open = quotedIdentEnd(src, p+3)
				return tokQuotedIdent, end, open
			}
			// "U&" not followed by a quote: psql emits the U alone,
			// without counting it as an identifier.
			return tokOther, p + 1, false
		}
	}
	i := p + 1
	for i < len(src) && is(src[i], classIdentCont) {
		i++
	}
	return tokIdent, i, false
}

// metaCommand lexes the psql backslash command at p. psql reads a
// meta-command's arguments up to the end of the line, so quotes and
// semicolons there are not SQL. The exceptions are \; and \:, which psql's
// SQL lexer handles itself, putting a ";" or ":" into the statement.
func metaCommand(src string, p int) (kind tokenKind, end int) {
	if c := at(src, p+1); c == ';' || c == ':' {
		return tokForced, p + 2
	}
	if k := strings.IndexByte(src[p:], '\n'); k >= 0 {
		return tokMeta, p + k
	}
	return tokMeta, len(src)
}
