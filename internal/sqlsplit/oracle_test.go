package sqlsplit

import (
	"fmt"
	"io"
	"regexp"
	"strings"
)

// This file is a test oracle: an independent, deliberately naive
// transliteration of the flex rules of PostgreSQL's src/fe_utils/psqlscan.l
// (PostgreSQL 17), run the way flex runs them: in the current start state,
// every rule is tried at the current position, the longest match wins, ties
// go to the rule that comes first in the file, and actions may give input
// back (yyless). The hand-written lexer is checked against it by the fuzz
// target and the table tests. It is slow and proud of it.
//
// It differs from psqlscan.l in the same ways as the package, so that the
// two can be compared: psql variables (:name) are not rules here, and a
// backslash command other than \; and \: runs to the end of its line. It
// also skips the inline data of COPY ... FROM STDIN, as psql's main loop
// does around its lexer.

// oracleState is a flex start condition.
type oracleState int

const (
	sINITIAL oracleState = iota
	sXB                  // bit string literal
	sXC                  // C-style comment
	sXD                  // quoted identifier
	sXH                  // hexadecimal string literal
	sXQ                  // standard quoted string
	sXQS                 // after a closing quote: is the literal continued?
	sXE                  // extended (E'...') string
	sXDOLQ               // dollar-quoted string
	sXUI                 // U&"..." identifier
	sXUS                 // U&'...' string
	numOracleStates
)

// oracleDefs are psqlscan.l's definitions in Go regexp syntax. Bytes are
// fed to the regexps as runes 0-255, so \x80-\xff is flex's \200-\377.
var oracleDefs = map[string]string{
	"space":                   `[ \t\n\r\f]`,
	"horiz_space":             `[ \t\f]`,
	"newline":                 `[\n\r]`,
	"non_newline":             `[^\n\r]`,
	"comment":                 `--{non_newline}*`,
	"whitespace":              `{space}+|{comment}`,
	"special_whitespace":      `{space}+|{comment}{newline}`,
	"horiz_whitespace":        `{horiz_space}|{comment}`,
	"whitespace_with_newline": `{horiz_whitespace}*{newline}{special_whitespace}*`,
	"quote":                   `'`,
	"quotecontinue":           `{whitespace_with_newline}{quote}`,
	"quotecontinuefail":       `{whitespace}*-?`,
	"xbstart":                 `[bB]{quote}`,
	"xbinside":                `[^']*`,
	"xhstart":                 `[xX]{quote}`,
	"xhinside":                `[^']*`,
	"xnstart":                 `[nN]{quote}`,
	"xestart":                 `[eE]{quote}`,
	"xeinside":                `[^\\']+`,
	"xeescape":                `[\\][^0-7]`,
	"xeoctesc":                `[\\][0-7]{1,3}`,
	"xehexesc":                `[\\]x[0-9A-Fa-f]{1,2}`,
	"xeunicode":               `[\\](?:u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8})`,
	"xeunicodefail":           `[\\](?:u[0-9A-Fa-f]{0,3}|U[0-9A-Fa-f]{0,7})`,
	"xqstart":                 `{quote}`,
	"xqdouble":                `{quote}{quote}`,
	"xqinside":                `[^']+`,
	"dolq_start":              `[A-Za-z\x80-\xff_]`,
	"dolq_cont":               `[A-Za-z\x80-\xff_0-9]`,
	"dolqdelim":               `\$(?:{dolq_start}{dolq_cont}*)?\$`,
	"dolqfailed":              `\${dolq_start}{dolq_cont}*`,
	"dolqinside":              `[^$]+`,
	"dquote":                  `"`,
	"xdstart":                 `{dquote}`,
	"xdstop":                  `{dquote}`,
	"xddouble":                `{dquote}{dquote}`,
	"xdinside":                `[^"]+`,
	"xuistart":                `[uU]&{dquote}`,
	"xusstart":                `[uU]&{quote}`,
	"xufailed":                `[uU]&`,
	"xcstart":                 `/\*{op_chars}*`,
	"xcstop":                  `\*+/`,
	"xcinside":                `[^*/]+`,
	"ident_start":             `[A-Za-z\x80-\xff_]`,
	"ident_cont":              `[A-Za-z\x80-\xff_0-9\$]`,
	"identifier":              `{ident_start}{ident_cont}*`,
	"typecast":                `::`,
	"dot_dot":                 `\.\.`,
	"colon_equals":            `:=`,
	"equals_greater":          `=>`,
	"less_equals":             `<=`,
	"greater_equals":          `>=`,
	"less_greater":            `<>`,
	"not_equals":              `!=`,
	"self":                    `[,()\[\].;:+\-*/%^<>=]`,
	"op_chars":                "[~!@#^&|`?+\\-*/%<>=]",
	"operator":                `{op_chars}+`,
	"decdigit":                `[0-9]`,
	"hexdigit":                `[0-9A-Fa-f]`,
	"octdigit":                `[0-7]`,
	"bindigit":                `[0-1]`,
	"decinteger":              `{decdigit}(?:_?{decdigit})*`,
	"hexinteger":              `0[xX](?:_?{hexdigit})+`,
	"octinteger":              `0[oO](?:_?{octdigit})+`,
	"bininteger":              `0[bB](?:_?{bindigit})+`,
	"hexfail":                 `0[xX]_?`,
	"octfail":                 `0[oO]_?`,
	"binfail":                 `0[bB]_?`,
	"numeric":                 `(?:{decinteger}\.{decinteger}?)|(?:\.{decinteger})`,
	"numericfail":             `{decinteger}\.\.`,
	"real":                    `(?:{decinteger}|{numeric})[Ee][-+]?{decinteger}`,
	"realfail":                `(?:{decinteger}|{numeric})[Ee][-+]`,
	"param":                   `\${decdigit}+`,
	"integer_junk":            `{decinteger}{identifier}`,
	"numeric_junk":            `{numeric}{identifier}`,
	"real_junk":               `{real}{identifier}`,
	"param_junk":              `\${decdigit}+{identifier}`,
	"other":                   `.`,
	// The package's stand-in for psql's backslash-command lexer.
	"meta": `\\(?:[^;:\n][^\n]*)?`,
}

var defRef = regexp.MustCompile(`\{([a-z_]+)\}`)

// expand replaces {name} references, as flex does, recursively.
func expand(pat string) string {
	return defRef.ReplaceAllStringFunc(pat, func(ref string) string {
		def, ok := oracleDefs[ref[1:len(ref)-1]]
		if !ok {
			panic("oracle: undefined " + ref)
		}
		return "(?:" + expand(def) + ")"
	})
}

// oracle is the scanner state: psqlscan.l's PsqlScanStateData, plus what
// the comparison needs to know.
type oracle struct {
	src   string
	pos   int
	state oracleState

	// psqlscan.l's state.
	xcdepth        int
	dolqstart      string
	stateBeforeStr oracleState
	parenDepth     int
	beginDepth     int
	identCount     int
	identifiers    [4]byte

	// Results.
	litStart int // where the open literal, identifier or comment began
	first    int // first significant token of the current piece, or -1
	pieces   []oraclePiece
	metas    []int
}

type oraclePiece struct{ end, first int }

// action runs a rule's action on the matched text and returns how much of
// it to keep, which is less than len(text) after yyless.
type action func(o *oracle, text string) int

type oracleRule struct {
	name   string
	states []oracleState
	re     *regexp.Regexp
	act    action
}

func rule(name string, states []oracleState, pat string, act action) oracleRule {
	re := regexp.MustCompile(`^(?:` + expand(pat) + `)`)
	re.Longest() // flex takes the longest match
	return oracleRule{name: name, states: states, re: re, act: act}
}

var (
	initial = []oracleState{sINITIAL}
	echo    = func(o *oracle, text string) int { return len(text) }
)

// significant marks a token in INITIAL state that is not whitespace or a
// comment, for the piece's first token.
func significant(act action) action {
	return func(o *oracle, text string) int {
		if o.first < 0 {
			o.first = o.pos
		}
		return act(o, text)
	}
}

func begin(s oracleState) action {
	return significant(func(o *oracle, text string) int {
		o.state = s
		o.litStart = o.pos
		return len(text)
	})
}

func yyless(n int) action {
	return significant(func(o *oracle, text string) int { return n })
}

// oracleRules lists the rules in psqlscan.l order, which settles ties.
var oracleRules = []oracleRule{
	rule("whitespace", initial, `{whitespace}`, echo),
	rule("xcstart", initial, `{xcstart}`, func(o *oracle, text string) int {
		o.xcdepth = 0
		o.state = sXC
		o.litStart = o.pos
		return 2
	}),
	rule("xc xcstart", []oracleState{sXC}, `{xcstart}`, func(o *oracle, text string) int {
		o.xcdepth++
		return 2
	}),
	rule("xc xcstop", []oracleState{sXC}, `{xcstop}`, func(o *oracle, text string) int {
		if o.xcdepth <= 0 {
			o.state = sINITIAL
		} else {
			o.xcdepth--
		}
		return len(text)
	}),
	rule("xc xcinside", []oracleState{sXC}, `{xcinside}`, echo),
	rule("xc op_chars", []oracleState{sXC}, `{op_chars}`, echo),
	rule("xc stars", []oracleState{sXC}, `\*+`, echo),
	rule("xbstart", initial, `{xbstart}`, begin(sXB)),
	rule("xhinside", []oracleState{sXH}, `{xhinside}`, echo),
	rule("xbinside", []oracleState{sXB}, `{xbinside}`, echo),
	rule("xhstart", initial, `{xhstart}`, begin(sXH)),
	rule("xnstart", initial, `{xnstart}`, yyless(1)),
	rule("xqstart", initial, `{xqstart}`, begin(sXQ)), // standard_conforming_strings = on
	rule("xestart", initial, `{xestart}`, begin(sXE)),
	rule("xusstart", initial, `{xusstart}`, begin(sXUS)),
	rule("quote", []oracleState{sXB, sXH, sXQ, sXE, sXUS}, `{quote}`, func(o *oracle, text string) int {
		o.stateBeforeStr = o.state
		o.state = sXQS
		return len(text)
	}),
	rule("quotecontinue", []oracleState{sXQS}, `{quotecontinue}`, func(o *oracle, text string) int {
		o.state = o.stateBeforeStr
		return len(text)
	}),
	rule("quotecontinuefail", []oracleState{sXQS}, `{quotecontinuefail}|{other}`, func(o *oracle, text string) int {
		o.state = sINITIAL
		return 0
	}),
	rule("xqdouble", []oracleState{sXQ, sXE, sXUS}, `{xqdouble}`, echo),
	rule("xqinside", []oracleState{sXQ, sXUS}, `{xqinside}`, echo),
	rule("xeinside", []oracleState{sXE}, `{xeinside}`, echo),
	rule("xeunicode", []oracleState{sXE}, `{xeunicode}`, echo),
	rule("xeunicodefail", []oracleState{sXE}, `{xeunicodefail}`, echo),
	rule("xeescape", []oracleState{sXE}, `{xeescape}`, echo),
	rule("xeoctesc", []oracleState{sXE}, `{xeoctesc}`, echo),
	rule("xehexesc", []oracleState{sXE}, `{xehexesc}`, echo),
	rule("xe other", []oracleState{sXE}, `.`, echo),
	rule("dolqdelim", initial, `{dolqdelim}`, significant(func(o *oracle, text string) int {
		o.dolqstart = text
		o.state = sXDOLQ
		o.litStart = o.pos
		return len(text)
	})),
	rule("dolqfailed", initial, `{dolqfailed}`, yyless(1)),
	rule("xdolq dolqdelim", []oracleState{sXDOLQ}, `{dolqdelim}`, func(o *oracle, text string) int {
		if text == o.dolqstart {
			o.state = sINITIAL
			return len(text)
		}
		return len(text) - 1
	}),
	rule("xdolq dolqinside", []oracleState{sXDOLQ}, `{dolqinside}`, echo),
	rule("xdolq dolqfailed", []oracleState{sXDOLQ}, `{dolqfailed}`, echo),
	rule("xdolq other", []oracleState{sXDOLQ}, `.`, echo),
	rule("xdstart", initial, `{xdstart}`, begin(sXD)),
	rule("xuistart", initial, `{xuistart}`, begin(sXUI)),
	rule("xdstop", []oracleState{sXD}, `{xdstop}`, func(o *oracle, text string) int {
		o.state = sINITIAL
		return len(text)
	}),
	rule("xui dquote", []oracleState{sXUI}, `{dquote}`, func(o *oracle, text string) int {
		o.state = sINITIAL
		return len(text)
	}),
	rule("xddouble", []oracleState{sXD, sXUI}, `{xddouble}`, echo),
	rule("xdinside", []oracleState{sXD, sXUI}, `{xdinside}`, echo),
	rule("xufailed", initial, `{xufailed}`, yyless(1)),
	rule("typecast", initial, `{typecast}`, significant(echo)),
	rule("dot_dot", initial, `{dot_dot}`, significant(echo)),
	rule("colon_equals", initial, `{colon_equals}`, significant(echo)),
	rule("equals_greater", initial, `{equals_greater}`, significant(echo)),
	rule("less_equals", initial, `{less_equals}`, significant(echo)),
	rule("greater_equals", initial, `{greater_equals}`, significant(echo)),
	rule("less_greater", initial, `{less_greater}`, significant(echo)),
	rule("not_equals", initial, `{not_equals}`, significant(echo)),
	rule("(", initial, `\(`, significant(func(o *oracle, text string) int {
		o.parenDepth++
		return 1
	})),
	rule(")", initial, `\)`, significant(func(o *oracle, text string) int {
		if o.parenDepth > 0 {
			o.parenDepth--
		}
		return 1
	})),
	rule(";", initial, `;`, func(o *oracle, text string) int {
		if o.parenDepth == 0 && o.beginDepth == 0 {
			o.identCount = 0
			from := 0
			if n := len(o.pieces); n > 0 {
				from = o.pieces[n-1].end
			}
			o.pieces = append(o.pieces, oraclePiece{end: o.pos + 1, first: o.first})
			o.first = -1
			if o.pieces[len(o.pieces)-1].first < 0 || !(Statement{
				Text:  o.src[from : o.pos+1],
				Start: o.pieces[len(o.pieces)-1].first - from,
			}).CopyFromStdin() {
				return 1
			}
			// psql's MainLoop, not its lexer, passes the data that
			// follows COPY ... FROM STDIN to the server: the rest of the
			// line, then whole lines up to one that is just \. (This asks
			// the package whether the statement is a COPY FROM STDIN,
			// which the classifier tests check on their own.)
			data := 0
			for i, line := range strings.SplitAfter(o.src[o.pos+1:], "\n") {
				data += len(line)
				if i > 0 && (line == "\\.\n" || line == "\\.\r\n") {
					break
				}
			}
			if data > 0 {
				o.first = o.pos + 1
			}
			return 1 + data
		}
		if o.first < 0 {
			o.first = o.pos
		}
		return 1
	}),
	rule(`\;`, initial, `\\[;:]`, significant(func(o *oracle, text string) int {
		if text[1] == ';' {
			o.identCount = 0
		}
		o.metas = append(o.metas, o.pos)
		return 2
	})),
	rule(`\`, initial, `{meta}`, func(o *oracle, text string) int {
		o.metas = append(o.metas, o.pos) // not significant: psql does not send it
		return len(text)
	}),
	rule("self", initial, `{self}`, significant(echo)),
	rule("operator", initial, `{operator}`, significant(func(o *oracle, text string) int {
		// The {operator} action of psqlscan.l, transliterated.
		nchars := len(text)
		slashstar := strings.Index(text, "/*")
		dashdash := strings.Index(text, "--")
		if slashstar >= 0 && dashdash >= 0 {
			if slashstar > dashdash {
				slashstar = dashdash
			}
		} else if slashstar < 0 {
			slashstar = dashdash
		}
		if slashstar >= 0 {
			nchars = slashstar
		}
		if nchars > 1 && (text[nchars-1] == '+' || text[nchars-1] == '-') {
			ic := nchars - 2
			for ; ic >= 0; ic-- {
				if strings.IndexByte("~!@#^&|`?%", text[ic]) >= 0 {
					break
				}
			}
			if ic < 0 {
				for {
					nchars--
					if !(nchars > 1 && (text[nchars-1] == '+' || text[nchars-1] == '-')) {
						break
					}
				}
			}
		}
		return nchars
	})),
	rule("param", initial, `{param}`, significant(echo)),
	rule("param_junk", initial, `{param_junk}`, significant(echo)),
	rule("decinteger", initial, `{decinteger}`, significant(echo)),
	rule("hexinteger", initial, `{hexinteger}`, significant(echo)),
	rule("octinteger", initial, `{octinteger}`, significant(echo)),
	rule("bininteger", initial, `{bininteger}`, significant(echo)),
	rule("hexfail", initial, `{hexfail}`, significant(echo)),
	rule("octfail", initial, `{octfail}`, significant(echo)),
	rule("binfail", initial, `{binfail}`, significant(echo)),
	rule("numeric", initial, `{numeric}`, significant(echo)),
	rule("numericfail", initial, `{numericfail}`, significant(func(o *oracle, text string) int {
		return len(text) - 2
	})),
	rule("real", initial, `{real}`, significant(echo)),
	rule("realfail", initial, `{realfail}`, significant(echo)),
	rule("integer_junk", initial, `{integer_junk}`, significant(echo)),
	rule("numeric_junk", initial, `{numeric_junk}`, significant(echo)),
	rule("real_junk", initial, `{real_junk}`, significant(echo)),
	rule("identifier", initial, `{identifier}`, significant(func(o *oracle, text string) int {
		// The {identifier} action of psqlscan.l, transliterated.
		if o.identCount == 0 {
			o.identifiers = [4]byte{}
		}
		for _, w := range []string{"create", "function", "procedure", "or", "replace"} {
			if isASCIIWord(text, w) && o.identCount < len(o.identifiers) {
				o.identifiers[o.identCount] = w[0]
			}
		}
		o.identCount++
		id := o.identifiers
		if id[0] == 'c' && (id[1] == 'f' || id[1] == 'p' ||
			id[1] == 'o' && id[2] == 'r' && (id[3] == 'f' || id[3] == 'p')) &&
			o.parenDepth == 0 {
			switch {
			case isASCIIWord(text, "begin"):
				o.beginDepth++
			case isASCIIWord(text, "case"):
				if o.beginDepth >= 1 {
					o.beginDepth++
				}
			case isASCIIWord(text, "end"):
				if o.beginDepth > 0 {
					o.beginDepth--
				}
			}
		}
		return len(text)
	})),
	rule("other", initial, `{other}`, significant(echo)),
}

// isASCIIWord is pg_strcasecmp(text, word) == 0, written independently of
// the package's equalFoldASCII.
func isASCIIWord(text, word string) bool {
	if len(text) != len(word) {
		return false
	}
	for i := range len(text) {
		c := text[i]
		if 'A' <= c && c <= 'Z' {
			c = c - 'A' + 'a'
		}
		if c != word[i] {
			return false
		}
	}
	return true
}

// rulesByState indexes oracleRules by start condition, keeping file order.
var rulesByState = func() (by [numOracleStates][]oracleRule) {
	for _, r := range oracleRules {
		for _, s := range r.states {
			by[s] = append(by[s], r)
		}
	}
	return by
}()

// byteReader feeds each byte to the regexps as one rune, 8-bit clean like
// flex's %option 8bit: the match positions it yields are byte offsets.
type byteReader struct {
	s string
	i int
}

func (r *byteReader) ReadRune() (rune, int, error) {
	if r.i >= len(r.s) {
		return 0, 0, io.EOF
	}
	c := r.s[r.i]
	r.i++
	return rune(c), 1, nil
}

// oracleResult is what the oracle found.
type oracleResult struct {
	pieces   []oraclePiece // as Split should cut them
	metas    []int         // offsets of backslash commands
	open     oracleState   // start condition at the end of the input
	litStart int           // where the construct open at the end began
}

// unterminated maps the end state to the token kind Unterminated reports,
// or tokEOF for none.
func (r oracleResult) unterminated() tokenKind {
	switch r.open {
	case sXB, sXH, sXQ, sXE, sXUS:
		return tokString
	case sXD, sXUI:
		return tokQuotedIdent
	case sXDOLQ:
		return tokDollarString
	case sXC:
		return tokBlockComment
	}
	return tokEOF // INITIAL, or xqs, which psql treats as INITIAL
}

func runOracle(src string) oracleResult {
	o := &oracle{src: src, first: -1}
	for o.pos < len(src) {
		best, bestLen := -1, 0
		rules := rulesByState[o.state]
		for i, r := range rules {
			loc := r.re.FindReaderIndex(&byteReader{s: src, i: o.pos})
			if loc != nil && loc[1] > bestLen {
				best, bestLen = i, loc[1]
			}
		}
		if best < 0 {
			panic(fmt.Sprintf("oracle: no rule matches at %d in state %d: %q", o.pos, o.state, src[o.pos:]))
		}
		o.pos += rules[best].act(o, src[o.pos:o.pos+bestLen])
	}
	last := 0
	if n := len(o.pieces); n > 0 {
		last = o.pieces[n-1].end
	}
	if last < len(src) {
		o.pieces = append(o.pieces, oraclePiece{end: len(src), first: o.first})
	}
	return oracleResult{pieces: o.pieces, metas: o.metas, open: o.state, litStart: o.litStart}
}
