package lint

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/savvi-studio/dbinit/migrate"
)

// TestCorpus: testdata/lint holds migrations with the findings each must
// give (expected.txt: FILE:LINE:COL rule), including traps that must not
// fire: keywords in strings, comments, dollar-quoted bodies, quoted
// identifiers, and statements on tables the same file creates.
func TestCorpus(t *testing.T) {
	set, err := migrate.LoadDir("testdata/lint")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range Check(set, nil) {
		got = append(got, filepath.Base(f.Path)+":"+itoa(f.Line)+":"+itoa(f.Col)+" "+f.Rule)
		if f.Message == "" || (f.Severity != Error && f.Severity != Warning) {
			t.Errorf("finding without message or severity: %+v", f)
		}
	}
	raw, err := os.ReadFile("testdata/lint/expected.txt")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, l := range strings.Split(string(raw), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			want = append(want, l)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("findings differ from testdata/lint/expected.txt\ngot:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
