package sqlsplit

import (
	"strings"
	"unicode/utf8"
)

// Pos converts a byte offset in src to a 1-based line and a 1-based column
// counted in characters (runes), as editors and PostgreSQL count. Lines end
// at '\n', so a CRLF file numbers its lines as an editor does. An offset
// inside a multi-byte character gives that character's column; offsets out
// of range are clamped to the input. Each byte of invalid UTF-8 counts as
// one character.
func Pos(src string, byteOffset int) (line, col int) {
	off := max(0, min(byteOffset, len(src)))
	lineStart := strings.LastIndexByte(src[:off], '\n') + 1
	line = 1 + strings.Count(src[:lineStart], "\n")
	return line, column(src, lineStart, off)
}

// column returns the 1-based column of off on the line starting at
// lineStart.
func column(src string, lineStart, off int) int {
	col := 1
	for i := lineStart; i < off; {
		_, size := utf8.DecodeRuneInString(src[i:])
		if i+size > off {
			break // off is inside this character
		}
		i += size
		col++
	}
	return col
}

// RuneToByte converts a 0-based rune (character) index into src to a byte
// offset. PostgreSQL reports error positions in characters; this turns one
// (minus 1) into an offset into the text that was sent. Indexes past the end
// give len(src) and negative ones give 0. Each byte of invalid UTF-8 counts
// as one character, as in Pos.
func RuneToByte(src string, runeIndex int) int {
	i := 0
	for n := 0; n < runeIndex && i < len(src); n++ {
		_, size := utf8.DecodeRuneInString(src[i:])
		i += size
	}
	return i
}

// lineTracker computes positions for increasing offsets in one pass, so that
// reporting many problems in a large file, or on one long line, stays linear.
type lineTracker struct {
	src  string
	off  int // offset up to which characters have been counted
	line int // line number at off
	col  int // column at off
}

func newLineTracker(src string) *lineTracker {
	return &lineTracker{src: src, line: 1, col: 1}
}

// pos returns the line and column of off, which must not be smaller than in
// the previous call. It counts exactly as Pos does.
func (t *lineTracker) pos(off int) (line, col int) {
	off = max(t.off, min(off, len(t.src)))
	seg := t.src[t.off:off]
	if k := strings.LastIndexByte(seg, '\n'); k >= 0 {
		t.line += strings.Count(seg, "\n")
		t.off += k + 1
		t.col = 1
	}
	for t.off < off {
		_, size := utf8.DecodeRuneInString(t.src[t.off:])
		if t.off+size > off {
			break // off is inside this character; stay at its start
		}
		t.off += size
		t.col++
	}
	return t.line, t.col
}
