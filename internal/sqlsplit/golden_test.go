package sqlsplit

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*/expected.json from the current results")

// golden is what expected.json records for an input.sql.
type golden struct {
	Statements   []goldenStatement `json:"statements"`
	Unterminated *goldenProblem    `json:"unterminated,omitempty"`
	MetaCommands []goldenProblem   `json:"meta_commands,omitempty"`
}

type goldenStatement struct {
	Offset             int      `json:"offset"`
	Line               int      `json:"line"`
	Start              int      `json:"start"`
	Empty              bool     `json:"empty"`
	Keywords           []string `json:"keywords,omitempty"`
	NoTransaction      string   `json:"no_transaction,omitempty"`
	TransactionControl bool     `json:"transaction_control,omitempty"`
	CopyFromStdin      bool     `json:"copy_from_stdin,omitempty"`
	Text               string   `json:"text"`
}

type goldenProblem struct {
	Offset int    `json:"offset"`
	Line   int    `json:"line"`
	Col    int    `json:"col"`
	Msg    string `json:"msg"`
}

// TestGolden runs every testdata/<case>/input.sql through the package and
// compares with testdata/<case>/expected.json; go test -update rewrites the
// expected files after a deliberate change.
func TestGolden(t *testing.T) {
	inputs, err := filepath.Glob(filepath.Join("testdata", "*", "input.sql"))
	if err != nil {
		t.Fatal(err)
	}
	if len(inputs) < 8 {
		t.Fatalf("found %d golden cases, want at least 8", len(inputs))
	}
	for _, input := range inputs {
		dir := filepath.Dir(input)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			src, err := os.ReadFile(input)
			if err != nil {
				t.Fatal(err)
			}
			got := goldenOf(t, string(src))
			path := filepath.Join(dir, "expected.json")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("results differ from %s (run go test -update after a deliberate change):\n got %s\nwant %s", path, got, want)
			}
		})
	}
}

func goldenOf(t *testing.T, src string) []byte {
	var g golden
	for _, s := range checkSplit(t, src) {
		gs := goldenStatement{
			Offset:             s.Offset,
			Line:               s.Line,
			Start:              s.Start,
			Empty:              s.Empty,
			Keywords:           s.Keywords(4),
			TransactionControl: s.TransactionControl(),
			CopyFromStdin:      s.CopyFromStdin(),
			Text:               s.Text,
		}
		gs.NoTransaction, _ = s.NoTransaction()
		g.Statements = append(g.Statements, gs)
	}
	if p := Unterminated(src); p != nil {
		gp := goldenProblem(*p)
		g.Unterminated = &gp
	}
	for _, p := range MetaCommands(src) {
		g.MetaCommands = append(g.MetaCommands, goldenProblem(p))
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep <> and & readable in SQL text
	enc.SetIndent("", "  ")
	if err := enc.Encode(g); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
