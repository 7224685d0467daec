package dbtest_test

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestREADMEExamplesAreCompiled: every Go function the README shows for
// dbtest is in example_test.go, character for character, so the README's
// examples compile and run as tests.
func TestREADMEExamplesAreCompiled(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	examples, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	funcRE := regexp.MustCompile(`(?ms)^func \w+\(.*?^}$`)
	blocks := regexp.MustCompile("(?s)```go\n(.*?)```").FindAllStringSubmatch(string(readme), -1)
	found := 0
	for _, b := range blocks {
		if !strings.Contains(b[1], "dbtest.") {
			continue
		}
		for _, fn := range funcRE.FindAllString(b[1], -1) {
			found++
			if !strings.Contains(string(examples), fn) {
				t.Errorf("the README shows a function that example_test.go does not have verbatim:\n%s", fn)
			}
		}
	}
	if found == 0 {
		t.Fatal("the README shows no dbtest example")
	}
}
